"""The catalogue of every ``LOOPML_*`` environment variable.

Each setting is declared once, here, with its type, default and a one-line doc;
code reads settings through :func:`get` and never through ``os.environ``
directly, so ``loopml settings`` can show every knob and its current value.

Example:
    >>> from loopml import settings
    >>> settings.get("LOOPML_FLUSH_INTERVAL") > 0
    True
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopml.errors import SettingError

__all__ = [
    "SETTINGS",
    "Setting",
    "artifact_uri",
    "get",
    "home",
    "iter_settings",
    "project",
    "store_uri",
]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected one of {sorted(_TRUE | _FALSE - {''})}")


def _parse_positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("expected a number greater than 0")
    return value


def _parse_non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError("expected a number >= 0")
    return value


def _parse_non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("expected an integer >= 0")
    return value


def _parse_positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("expected an integer greater than 0")
    return value


_DURATION_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def _parse_duration(raw: str) -> float:
    """``30d``, ``12h``, ``15m``, ``0s``, ``2w`` or a plain number of seconds → seconds."""
    text = raw.strip().lower()
    unit = _DURATION_UNITS.get(text[-1:]) if text else None
    number = text[:-1] if unit is not None else text
    problem = "expected a duration >= 0 such as 30d, 12h, 15m or 0s"
    try:
        value = float(number) * (unit or 1.0)
    except ValueError:
        raise ValueError(problem) from None
    if not 0 <= value < float("inf"):
        raise ValueError(problem)
    return value


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, type, default and meaning."""

    name: str
    type_name: str
    default: Any
    doc: str
    parse: Callable[[str], Any]

    def value(self) -> Any:
        """Return the current value: the parsed variable, or the default when unset.

        Raises:
            SettingError: the variable is set to something its type cannot parse.
        """
        raw = os.environ.get(self.name)
        if raw is None:
            return self.default
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise SettingError(
                f"{self.name} must be a {self.type_name}; got {raw!r} ({exc})."
            ) from None


def _str(raw: str) -> str:
    return raw


def _names(raw: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in raw.split(",") if name.strip())


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting(
            "LOOPML_HOME",
            "path",
            ".loopml",
            "Folder of the embedded store (loopml.db) and local artifacts.",
            _str,
        ),
        Setting(
            "LOOPML_STORE_URI",
            "URI",
            None,
            "Metadata store URL (sqlite:///… or postgresql+psycopg://…); "
            "default: SQLite in LOOPML_HOME.",
            _str,
        ),
        Setting(
            "LOOPML_ARTIFACT_URI",
            "URI",
            None,
            "Artifact store: a folder or any fsspec URL (s3://bucket/prefix); "
            "default: LOOPML_HOME/artifacts.",
            _str,
        ),
        Setting(
            "LOOPML_PROJECT",
            "str",
            "default",
            "Project used when a call names none.",
            _str,
        ),
        Setting(
            "LOOPML_FLUSH_INTERVAL",
            "float (s)",
            1.0,
            "Longest time a logged metric point waits in memory before it is written.",
            _parse_positive_float,
        ),
        Setting(
            "LOOPML_FLUSH_MAX_POINTS",
            "int",
            10_000,
            "Buffered metric points that trigger an early write.",
            _parse_positive_int,
        ),
        Setting(
            "LOOPML_HEARTBEAT_INTERVAL",
            "float (s)",
            10.0,
            "How often a running run records that its process is alive.",
            _parse_positive_float,
        ),
        Setting(
            "LOOPML_HEARTBEAT_TIMEOUT",
            "float (s)",
            60.0,
            "A running run whose heartbeat is older than this is shown as lost.",
            _parse_positive_float,
        ),
        Setting(
            "LOOPML_CAPTURE_PACKAGES",
            "bool",
            True,
            "Record the installed package versions with every run.",
            _parse_bool,
        ),
        Setting(
            "LOOPML_GC_GRACE",
            "float (s)",
            3600.0,
            "loopml gc never deletes a blob younger than this (it may belong to a "
            "write in progress).",
            _parse_positive_float,
        ),
        Setting(
            "LOOPML_GC_DELETED_GRACE",
            "duration",
            30 * 86400.0,
            "loopml gc permanently removes runs and dataset versions deleted longer ago "
            "than this (30d, 12h, 0s …; restore them before then).",
            _parse_duration,
        ),
        Setting(
            "LOOPML_SERVE_POLL_INTERVAL",
            "float (s)",
            2.0,
            "How often loopml serve checks the store for new deployment revisions and "
            "alias moves (0: never; the loaded models are served until restart).",
            _parse_non_negative_float,
        ),
        Setting(
            "LOOPML_SERVE_MAX_BATCH_SIZE",
            "int",
            64,
            "Most rows loopml serve predicts in one model call (an endpoint's "
            "max_batch_size setting overrides it).",
            _parse_positive_int,
        ),
        Setting(
            "LOOPML_SERVE_MAX_WAIT_MS",
            "float (ms)",
            0.0,
            "How long the first request of a batch waits for more (0: batches form only "
            "from requests that arrive while the model is busy; max_wait_ms overrides it).",
            _parse_non_negative_float,
        ),
        Setting(
            "LOOPML_SERVE_MAX_QUEUE",
            "int",
            1024,
            "Requests that may wait per route; beyond it loopml serve answers 503 with "
            "Retry-After.",
            _parse_positive_int,
        ),
        Setting(
            "LOOPML_SERVE_LOG_PROBABILITIES",
            "bool",
            False,
            "Whether loopml serve logs every request's class probabilities (one more "
            "predict_proba call per batch) for models that have them, so monitors can "
            "estimate performance before labels arrive (an endpoint's log_probabilities "
            "setting overrides it).",
            _parse_bool,
        ),
        Setting(
            "LOOPML_APPROVER_ROLES",
            "path",
            None,
            "YAML file mapping each approver role to the identities (OS accounts) that "
            "hold it, e.g. 'risk: [alice, bob]'; approving with a role needs it. "
            "Default: LOOPML_HOME/approver-roles.yaml.",
            _str,
        ),
        Setting(
            "LOOPML_TRUSTED_TYPES",
            "names",
            (),
            "Comma-separated type names a skops file (scikit-learn model or pipeline value) "
            "may restore beyond loopml's allow-list; trust only types you have reviewed.",
            _names,
        ),
        Setting(
            "LOOPML_SERVE_TOKEN",
            "str",
            None,
            "Bearer token loopml serve requires on every request but health probes "
            "(Authorization: Bearer <token>); unset: no token. Safer than --token, which "
            "other users can see in the process list.",
            _str,
        ),
        Setting(
            "LOOPML_SERVE_ALLOWED_HOSTS",
            "comma-separated host names",
            "",
            "Host names loopml serve answers to besides localhost, 127.0.0.1, [::1] and "
            "the bound address (any port); '*' answers any Host (DNS rebinding then "
            "reaches the server).",
            _str,
        ),
        Setting(
            "LOOPML_SERVE_MAX_ROWS",
            "int",
            100_000,
            "Most rows one request to loopml serve may hold (422 beyond).",
            _parse_positive_int,
        ),
        Setting(
            "LOOPML_SERVE_MAX_COLUMNS",
            "int",
            1_024,
            "Most columns one request to loopml serve may hold, for models without an "
            "input signature (with one, only its columns are taken).",
            _parse_positive_int,
        ),
        Setting(
            "LOOPML_SERVE_MAX_HEADER_BYTES",
            "int",
            64 * 1024,
            "Most bytes of a request line and headers loopml serve reads (431 beyond).",
            _parse_positive_int,
        ),
        Setting(
            "LOOPML_SERVE_MAX_HEADERS",
            "int",
            100,
            "Most headers one request to loopml serve may have (431 beyond).",
            _parse_positive_int,
        ),
        Setting(
            "LOOPML_SERVE_HEADER_TIMEOUT",
            "float (s)",
            10.0,
            "How long loopml serve waits for a request's headers (408 after).",
            _parse_positive_float,
        ),
        Setting(
            "LOOPML_SERVE_MAX_CONNECTIONS",
            "int",
            1_024,
            "Most connections one loopml serve process holds at once (503 beyond).",
            _parse_positive_int,
        ),
        Setting(
            "LOOPML_SERVE_KEEP_ALIVE",
            "float (s)",
            5.0,
            "How long loopml serve keeps an idle keep-alive connection open.",
            _parse_positive_float,
        ),
        Setting(
            "LOOPML_WEBHOOK_ALLOW_PRIVATE",
            "bool",
            False,
            "Let alert webhooks reach loopback, link-local, private and other non-public "
            "addresses (off: such URLs are refused, so a monitor cannot probe the local "
            "network or cloud metadata services).",
            _parse_bool,
        ),
        Setting(
            "LOOPML_WEBHOOK_TIMEOUT",
            "float (s)",
            5.0,
            "How long an alert webhook waits to connect, and then for the whole answer.",
            _parse_positive_float,
        ),
        Setting(
            "LOOPML_WEBHOOK_RETRIES",
            "int",
            3,
            "How many times an alert webhook is retried, with exponential backoff, after "
            "a connection error, a 5xx or a 429 (0: one attempt only).",
            _parse_non_negative_int,
        ),
        Setting(
            "LOOPML_DEBUG",
            "bool",
            False,
            "Show full tracebacks in the CLI (same as --debug).",
            _parse_bool,
        ),
        Setting(
            "LOOPML_TEST_POSTGRES_URL",
            "URI",
            "postgresql+psycopg://postgres@127.0.0.1:5432/test",
            "Tests only: the PostgreSQL server the contract tests create databases on.",
            _str,
        ),
        Setting(
            "LOOPML_REQUIRE_POSTGRES",
            "bool",
            False,
            "Tests only: fail the test run when that server is unreachable (CI sets it) "
            "instead of skipping the PostgreSQL tests.",
            _parse_bool,
        ),
    )
}


def get(name: str) -> Any:
    """Return the current value of the setting ``name``.

    Raises:
        SettingError: ``name`` is not a declared setting, or its value does not parse.
    """
    try:
        setting = SETTINGS[name]
    except KeyError:
        raise SettingError(f"{name!r} is not a loopml setting.") from None
    return setting.value()


def iter_settings() -> Iterator[tuple[Setting, Any]]:
    """Yield every setting with its current value, in declaration order."""
    for setting in SETTINGS.values():
        yield setting, setting.value()


def project(name: str | None = None) -> str:
    """Return ``name``, or the default project (``LOOPML_PROJECT``) when it is None."""
    return name if name is not None else str(get("LOOPML_PROJECT"))


def home() -> Path:
    """Return the loopml home folder (not created)."""
    return Path(get("LOOPML_HOME")).expanduser()


def store_uri() -> str:
    """Return the metadata store URI in force."""
    explicit: str | None = get("LOOPML_STORE_URI")
    if explicit:
        return explicit
    return f"sqlite:///{(home() / 'loopml.db').absolute()}"


def artifact_uri() -> str:
    """Return the artifact store URI in force."""
    explicit: str | None = get("LOOPML_ARTIFACT_URI")
    if explicit:
        return explicit
    return str((home() / "artifacts").absolute())
