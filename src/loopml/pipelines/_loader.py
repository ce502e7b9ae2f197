"""Finding a pipeline again from ``module:name`` or ``path/to/file.py:name``."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import PipelineDefinitionError

if TYPE_CHECKING:
    from loopml.pipelines._pipeline import Pipeline

__all__ = ["load_pipeline", "reference_of"]

_FILE_MODULE_PREFIX = "loopml_pipeline_"


def reference_of(function: Callable[..., Any]) -> str:
    """How to import ``function``'s pipeline later: ``module:qualname``, or a file's path.

    The module attribute named after the function holds the Pipeline, whatever
    name the pipeline was given.
    """
    module = getattr(function, "__module__", None) or "__main__"
    if module == "__main__" or module.startswith(_FILE_MODULE_PREFIX):
        # Scripts, and files loaded by path: only their path finds them again.
        path = getattr(sys.modules.get(module), "__file__", None)
        qualname = function.__qualname__
        return f"{Path(path).resolve()}:{qualname}" if path else f"{module}:{qualname}"
    return f"{module}:{function.__qualname__}"


def load_pipeline(reference: str) -> Pipeline:
    """Import the pipeline named by ``module:name`` or ``file.py:name``.

    The current folder is importable, as for ``python -m``.

    Raises:
        PipelineDefinitionError: a malformed reference, a module or file that cannot be
            imported, or a name that is not a ``@loopml.pipeline``.
    """
    from loopml.pipelines._pipeline import Pipeline

    module_name, sep, attribute = reference.rpartition(":")
    if not sep or not module_name or not attribute:
        raise PipelineDefinitionError(
            f"{reference!r} is not a pipeline reference; use MODULE:PIPELINE "
            "(e.g. training.pipelines:train) or path/to/file.py:PIPELINE."
        )
    module = _import(module_name, reference)
    target: Any = module
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise PipelineDefinitionError(
                f"Module {module_name!r} has no {attribute!r} (from {reference!r})."
            )
    if not isinstance(target, Pipeline):
        raise PipelineDefinitionError(
            f"{reference!r} is a {type(target).__name__}, not a pipeline; decorate it with "
            "@loopml.pipeline."
        )
    return target


def _import(module_name: str, reference: str) -> Any:
    if module_name.endswith(".py") or "/" in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise PipelineDefinitionError(f"No pipeline file {path} (from {reference!r}).")
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
        name = f"{_FILE_MODULE_PREFIX}{digest}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise PipelineDefinitionError(f"Cannot import {path} (from {reference!r}).")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        _execute(spec.loader, module, reference)
        # Worker processes cannot import a module loaded from a path: ship its code.
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)
        return module
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise PipelineDefinitionError(
            f"Cannot import module {module_name!r} (from {reference!r}): {exc}."
        ) from None


def _execute(loader: Any, module: Any, reference: str) -> None:
    try:
        loader.exec_module(module)
    except Exception as exc:
        raise PipelineDefinitionError(
            f"Importing {reference!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
