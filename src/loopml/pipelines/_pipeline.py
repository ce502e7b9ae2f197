"""``@loopml.pipeline``: a function that calls steps; its parameters are typed and checked."""

from __future__ import annotations

import functools
import inspect
import json
import types
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, overload

from loopml.errors import InvalidParameter, PipelineDefinitionError
from loopml.pipelines._graph import Graph, current_graph, tracing

if TYPE_CHECKING:
    from loopml.pipelines._records import PipelineRun
    from loopml.pipelines._runner import Event

__all__ = ["Pipeline", "approval_gate", "pipeline"]

_EMPTY = inspect.Parameter.empty


class Pipeline:
    """A pipeline: builds its DAG from its parameters and runs it.

    Example:
        >>> @loopml.pipeline
        ... def training(lr: float = 0.1):
        ...     frame = load()
        ...     train(frame, lr=lr)
        >>> run = training.run(params={"lr": 0.05})      # doctest: +SKIP
    """

    def __init__(self, function: Callable[..., Any], name: str | None = None) -> None:
        if not callable(function):
            raise InvalidParameter(f"@loopml.pipeline decorates a function; got {function!r}.")
        self.function = function
        self.name = name or function.__name__
        self.signature = inspect.signature(function)
        try:
            self._hints = typing.get_type_hints(function)
        except Exception:  # unresolvable annotations: fall back to the defaults' types
            self._hints = {}
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if current_graph() is not None:
            return self.function(*args, **kwargs)  # a pipeline used inside another
        raise PipelineDefinitionError(
            f"Pipeline {self.name!r} is run with {self.name}.run(params={{…}}) or "
            f"`loopml pipelines run MODULE:{self.name}`, not called."
        )

    @property
    def reference(self) -> str:
        """``module:name`` (or ``path/to/file.py:name`` for scripts) to find it again."""
        from loopml.pipelines._loader import reference_of

        return reference_of(self.function)

    def resolve_params(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """Check and coerce parameters (text from the CLI becomes the annotated type).

        Raises:
            PipelineDefinitionError: an unknown, missing or mistyped parameter.
        """
        given = dict(given or {})
        known = self.signature.parameters
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise PipelineDefinitionError(
                f"Pipeline {self.name!r} has no parameter(s) {unknown}; its parameters are "
                f"{list(known) or 'none'}."
            )
        resolved: dict[str, Any] = {}
        for name, parameter in known.items():
            if name in given:
                resolved[name] = self._coerce(name, parameter, given[name])
            elif parameter.default is not _EMPTY:
                resolved[name] = parameter.default
            else:
                raise PipelineDefinitionError(
                    f"Pipeline {self.name!r} needs parameter {name!r}"
                    f"{_type_hint_text(self._hints.get(name))}; pass it with -p {name}=… "
                    f"or params={{'{name}': …}}."
                )
        return resolved

    def build(self, params: Mapping[str, Any]) -> Graph:
        """Trace the pipeline function with ``params`` into a checked DAG."""
        graph = Graph(self.name)
        with tracing(graph):
            self.function(**params)
        graph.check()
        return graph

    def run(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        executor: str = "local",
        cache: bool = True,
        max_workers: int | None = None,
        ray_address: str | None = None,
        project: str | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> PipelineRun:
        """Run the pipeline and return the recorded run.

        Args:
            params: pipeline parameters (checked and coerced against the signature).
            executor: ``local`` (worker processes) or ``ray``.
            cache: reuse outputs of steps whose cache key matches an earlier success.
            max_workers: parallel steps on the local executor (default: CPU count).
            ray_address: Ray cluster to connect to (default: start a local Ray).
            project: project of the run (default ``LOOPML_PROJECT``).
            on_event: called with every step status change (for live views).

        Raises:
            PipelineDefinitionError: bad parameters or DAG, before any step runs.
            StepFailed: a step failed; the run is recorded as failed and can be resumed.
        """
        from loopml.pipelines._runner import Runner

        resolved = self.resolve_params(params)
        graph = self.build(resolved)
        runner = Runner(
            executor=executor,
            max_workers=max_workers,
            ray_address=ray_address,
            on_event=on_event,
        )
        return runner.start(self, graph, resolved, cache=cache, project=project)

    def _coerce(self, name: str, parameter: inspect.Parameter, value: Any) -> Any:
        expected = self._hints.get(name)
        if expected is None and parameter.default not in (_EMPTY, None):
            expected = type(parameter.default)
        return coerce_param(self.name, name, expected, value)

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r})"


def coerce_param(pipeline: str, name: str, expected: Any, value: Any) -> Any:
    """Return ``value`` as the ``expected`` type (parsing text), or raise naming the parameter."""
    optional = False
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(expected) if a is not type(None)]
        optional = len(members) < len(typing.get_args(expected))
        expected = members[0] if len(members) == 1 else None
    if value is None and optional:
        return None
    if expected in (None, Any, inspect.Parameter.empty) or not isinstance(expected, type):
        return _parse_text(value) if isinstance(value, str) else value
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = _from_text(expected, value)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed
    raise PipelineDefinitionError(
        f"Parameter {name!r} of pipeline {pipeline!r} must be {expected.__name__}; "
        f"got {type(value).__name__} {value!r}."
    )


def _from_text(expected: type, text: str) -> Any:
    if expected is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        return None
    if expected in (int, float, str):
        return expected(text)
    if expected in (list, dict, tuple):
        loaded = json.loads(text)
        return expected(loaded) if isinstance(loaded, list | dict) else None
    return None


def _parse_text(text: str) -> Any:
    """Untyped parameters from the CLI: JSON when it parses, else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _type_hint_text(hint: Any) -> str:
    return f" ({getattr(hint, '__name__', str(hint))})" if hint is not None else ""


@overload
def pipeline(function: Callable[..., Any], /) -> Pipeline: ...


@overload
def pipeline(*, name: str | None = None) -> Callable[[Callable[..., Any]], Pipeline]: ...


def pipeline(
    function: Callable[..., Any] | None = None, /, *, name: str | None = None
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Make a function that calls steps a pipeline (``@loopml.pipeline``).

    Its parameters become the pipeline's parameters: typed, checked before any step
    runs, recorded with the run and passed to steps as constants.
    """
    if function is not None:
        return Pipeline(function, name=name)

    def decorate(inner: Callable[..., Any]) -> Pipeline:
        return Pipeline(inner, name=name)

    return decorate


def approval_gate(message: str, approvers_role: str | None = None, name: str = "approval") -> None:
    """Pause the pipeline here until a person approves (``loopml approvals approve ID``).

    Every step called after the gate waits for the decision; the run is recorded as
    ``waiting_for_approval`` and the process may exit. ``loopml pipelines resume RUN_ID``
    continues past an approved gate, or ends the run as ``rejected``. With
    ``approvers_role``, only an identity the approver-roles file
    (``LOOPML_APPROVER_ROLES``) gives that role can decide.

    Raises:
        PipelineDefinitionError: called outside a pipeline function.
    """
    graph = current_graph()
    if graph is None:
        raise PipelineDefinitionError(
            "loopml.approval_gate() belongs inside a @loopml.pipeline function."
        )
    if not isinstance(message, str) or not message.strip():
        raise InvalidParameter("An approval gate needs a message saying what to approve.")
    graph.add_gate(name, message, approvers_role)
