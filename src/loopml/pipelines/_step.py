"""``@loopml.step``: a plain typed function that a pipeline can call, cache and retry."""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from collections.abc import Callable, Sequence
from typing import Any, overload

from loopml.errors import InvalidParameter, PipelineDefinitionError
from loopml.pipelines._graph import OutputRef, current_graph
from loopml.pipelines._task import Resources

__all__ = ["Step", "function_payload", "resolve_step_function", "step"]

# Modules whose code cannot be imported by name in a worker (scripts, files loaded
# by path): their steps travel by value.
_BY_VALUE_PREFIXES = ("__main__", "loopml_pipeline_")


class Step:
    """A step: the wrapped function plus how to run it.

    Calling a step inside a ``@loopml.pipeline`` function records it in the DAG and
    returns placeholders for its outputs; outside a pipeline it is an error (call
    ``step.function(...)`` to run the plain function).
    """

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        cache: bool = True,
        retries: int = 0,
        backoff: float = 1.0,
        timeout: float | None = None,
        resources: Resources | None = None,
        packages: Sequence[str] = (),
        outputs: Sequence[str] | None = None,
    ) -> None:
        if not callable(function):
            raise InvalidParameter(f"@loopml.step decorates a function; got {function!r}.")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidParameter(
                f"The 'retries' option of a step must be an int >= 0; got {retries!r}."
            )
        if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
            raise InvalidParameter(
                f"The 'timeout' option of a step must be seconds > 0; got {timeout!r}."
            )
        if isinstance(backoff, bool) or not isinstance(backoff, int | float) or backoff < 0:
            raise InvalidParameter(
                f"The 'backoff' option of a step must be seconds >= 0; got {backoff!r}."
            )
        if outputs is not None and (isinstance(outputs, str) or len(outputs) < 2):
            raise InvalidParameter(
                "The 'outputs' option of a step names two or more outputs, e.g. "
                f"outputs=('train', 'test'); got {outputs!r}."
            )
        self.function = function
        self.name = name or function.__name__
        self.cache = bool(cache)
        self.retries = retries
        self.backoff = float(backoff)
        self.timeout = None if timeout is None else float(timeout)
        self.resources = resources or Resources()
        self.packages = tuple(packages)
        self.output_names = None if outputs is None else tuple(outputs)
        self.signature = inspect.signature(function)
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        graph = current_graph()
        if graph is None:
            raise PipelineDefinitionError(
                f"Step {self.name!r} was called outside a pipeline. Call it inside a "
                f"@loopml.pipeline function, or run the plain function with "
                f"{self.name}.function(...)."
            )
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise PipelineDefinitionError(f"Step {self.name!r}: {exc}.") from None
        bound.apply_defaults()
        inputs: dict[str, OutputRef] = {}
        constants: dict[str, Any] = {}
        for argument, value in bound.arguments.items():
            if isinstance(value, OutputRef):
                inputs[argument] = value
            else:
                constants[argument] = value
        node = graph.add_step(self, inputs, constants)
        if self.output_names is None:
            return OutputRef(node.name)
        return tuple(OutputRef(node.name, i, n) for i, n in enumerate(self.output_names))

    def __repr__(self) -> str:
        return f"Step({self.name!r})"


def resolve_step_function(module: str, qualname: str) -> Callable[..., Any]:
    """In a worker: import the step ``module.qualname`` and return its plain function."""
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target.function if isinstance(target, Step) else target


class _StepFunctionReference:
    """Unpickles to the step's function by importing it, so tracebacks keep file and line."""

    def __init__(self, module: str, qualname: str) -> None:
        self.module = module
        self.qualname = qualname

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return resolve_step_function, (self.module, self.qualname)


def function_payload(step: Step) -> bytes:
    """What a worker needs to call ``step``: a reference when importable, else the code.

    ``@loopml.step`` replaces the module attribute with the Step, which defeats
    cloudpickle's by-reference test, so importable steps are referenced here
    explicitly; scripts and file-loaded modules ship their code, with its file name
    and source so that a failing step's traceback shows them (``_shipping``).
    """
    import cloudpickle

    from loopml.pipelines._shipping import dumps_by_value

    function = step.function
    module_name = getattr(function, "__module__", None) or "__main__"
    module = sys.modules.get(module_name)
    importable = module is not None and not module_name.startswith(_BY_VALUE_PREFIXES)
    if importable:
        target: Any = module
        for part in function.__qualname__.split("."):
            target = getattr(target, part, None)
        if target is step:
            payload: bytes = cloudpickle.dumps(
                _StepFunctionReference(module_name, function.__qualname__)
            )
            return payload
    return dumps_by_value(function)


@overload
def step(function: Callable[..., Any], /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    cache: bool = True,
    retries: int = 0,
    backoff: float = 1.0,
    timeout: float | None = None,
    resources: Resources | None = None,
    packages: Sequence[str] = (),
    outputs: Sequence[str] | None = None,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    function: Callable[..., Any] | None = None,
    /,
    **options: Any,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Make a function a pipeline step.

    Args:
        function: the function (when used as ``@loopml.step`` without arguments).
        **options: ``name``, ``cache`` (reuse outputs when the cache key matches),
            ``retries`` and ``backoff`` (seconds, doubled per attempt), ``timeout``
            (seconds), ``resources`` (:class:`loopml.Resources`, honoured by the Ray
            executor), ``packages`` (distributions whose versions join the cache key),
            ``outputs`` (names, when the function returns a tuple of several values).

    Example:
        >>> @loopml.step(retries=2, timeout=600)
        ... def train(frame, lr: float = 0.1):
        ...     ...
    """
    if function is not None:
        return Step(function, **options)

    def decorate(inner: Callable[..., Any]) -> Step:
        return Step(inner, **options)

    return decorate
