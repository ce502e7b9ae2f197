"""What every autologged framework shares: settings, the nesting guard, runs, safe logging.

Each framework module (scikit-learn, XGBoost, LightGBM) patches its library's
training entry points with wrappers that call :func:`guarded`: only the outermost
autologged call in a thread logs, whichever framework it belongs to, so a
scikit-learn ``Pipeline`` around an ``XGBClassifier``, or an ``LGBMClassifier``
whose ``fit`` fits a scikit-learn ``LabelEncoder`` and calls ``lightgbm.train``,
logs once.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.tracking._fluent import ActiveRun, active_run, get_client, start_run
from loopml.tracking._reserved import set_loopml_tags
from loopml.tracking._validate import MAX_KEY_LENGTH

__all__ = [
    "CONFIGS",
    "MODEL_DIGEST_TAG",
    "MODEL_DIR",
    "MODEL_META_FILE",
    "SCHEMA_FILE",
    "Config",
    "guarded",
    "is_number",
    "log",
    "log_model_folder",
    "open_run",
    "qualified_name",
    "safely",
    "safely_quiet",
    "text_params",
]

MODEL_DIGEST_TAG = "loopml.autolog.model_digest"
MODEL_DIR = "model"
MODEL_META_FILE = "loopml-model.json"
SCHEMA_FILE = "input_schema.json"

log = logging.getLogger("loopml.tracking._autolog")


@dataclass(frozen=True)
class Config:
    """What one enabled framework logs (see :func:`loopml.autolog`)."""

    log_models: bool
    log_input_info: bool
    project: str | None


CONFIGS: dict[str, Config] = {}
"""The enabled frameworks (``"sklearn"``, ``"xgboost"``, ``"lightgbm"``) and their settings."""


class _Depth(threading.local):
    # How many autologged calls are running in this thread: only the outermost one logs.
    value = 0


_depth = _Depth()
_reported: set[tuple[str, type[BaseException]]] = set()


def guarded(
    framework: str,
    original: Callable[..., Any],
    logged: Callable[[Config], Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Call ``logged(config)`` for the outermost call of an enabled framework, else ``original``.

    Args:
        framework: the framework whose wrapper was called.
        original: the unpatched function, called with ``args`` and ``kwargs`` when
            this call is not to be logged.
        logged: calls the original and logs it.
        args: the call's positional arguments.
        kwargs: the call's keyword arguments.
    """
    config = CONFIGS.get(framework)
    if config is None or _depth.value > 0:
        return original(*args, **kwargs)
    _depth.value += 1
    try:
        return logged(config)
    finally:
        _depth.value -= 1


def open_run(config: Config, name: str, params: Mapping[str, str]) -> tuple[ActiveRun, bool]:
    """Return the run to log into and whether this call started it (and must end it).

    The active run, unless it already holds one of ``params`` with another value
    (params are immutable): then a child run of it. Without an active run, a run
    of its own named ``name``.
    """
    active = active_run()
    if active is None:
        return start_run(name=name, project=config.project), True
    info = active.info
    if any(key in info.params and info.params[key] != value for key, value in params.items()):
        return start_run(name=name, project=info.project), True  # a child of ``active``
    return active, False


def text_params(params: Mapping[str, Any]) -> dict[str, str]:
    """``params`` as text, nested estimators shown by class name; unusable keys left out."""
    return {
        str(key): str(_displayable(value))
        for key, value in params.items()
        if 0 < len(str(key)) <= MAX_KEY_LENGTH
    }


def _displayable(value: Any) -> Any:
    """``value`` with every estimator in it replaced by its class name."""
    if hasattr(value, "get_params") and not isinstance(value, type):
        return type(value).__name__
    if isinstance(value, list | tuple):
        return type(value)(_displayable(item) for item in value)
    if isinstance(value, dict):
        return {key: _displayable(item) for key, item in value.items()}
    return value


def log_model_folder(
    run: ActiveRun,
    write: Callable[[Path], None],
    meta: Mapping[str, Any],
) -> None:
    """Log the artifact folder ``model``: what ``write`` puts there, plus ``loopml-model.json``.

    ``meta`` (with ``flavor``) goes into ``loopml-model.json`` beside the Python and
    loopml versions. The folder's digest becomes the run's
    ``loopml.autolog.model_digest`` tag, which the registry checks before it
    loads ``runs:/RUN/model``.
    """
    from loopml._version import __version__ as loopml_version

    described = {
        "python_version": platform.python_version(),
        "loopml_version": loopml_version,
        **meta,
    }
    with tempfile.TemporaryDirectory(prefix="loopml-autolog-") as folder:
        model_dir = Path(folder) / MODEL_DIR
        model_dir.mkdir()
        write(model_dir)
        (model_dir / MODEL_META_FILE).write_text(json.dumps(described, indent=2, sort_keys=True))
        logged = get_client().log_artifact(run.id, model_dir, MODEL_DIR)
        set_loopml_tags(get_client(), run.id, {MODEL_DIGEST_TAG: logged.digest})


def qualified_name(cls: type) -> str:
    """``module.QualName`` of a class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite real number (not a bool)."""
    try:
        return not isinstance(value, bool) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def safely_quiet(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``, or None (logged at debug level) if it raises."""
    try:
        return function(*args)
    except Exception as exc:
        log.debug("autolog could not call %s: %s", getattr(function, "__name__", function), exc)
        return None


def safely(what: str, function: Callable[..., Any], *args: Any) -> Any:
    """Call ``function``; on error, report it (once per kind of failure) and return None."""
    try:
        return function(*args)
    except Exception as exc:
        key = (what, type(exc))
        first = key not in _reported
        _reported.add(key)
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "loopml.autolog could not %s (the training is not affected): %s: %s",
            what,
            type(exc).__name__,
            exc,
            exc_info=log.isEnabledFor(logging.DEBUG),
        )
        return None
