"""A monitor's configuration: what it watches, against what, which checks, how it alerts.

A :class:`MonitorSpec` is plain data, validated when it is made, stored as JSON in the
``monitor`` table and written or read as YAML (:func:`spec_from_yaml`). Every field
has a default a serious user would pick; everything read from a file or a stored row
goes through :meth:`MonitorSpec.from_dict`, which names what is wrong.

Reference syntax (``reference=``):

* ``training`` (default) -- the dataset version the watched model version was
  trained on (its registry lineage);
* ``dataset:NAME:N`` (or ``dataset:NAME`` for the latest version) -- any dataset version;
* ``window:LENGTH@-AGO`` -- the endpoint's own predictions over LENGTH, ending AGO
  before the run (``window:7d@-14d``: the 7 days that ended 14 days ago);
  ``window:START/END`` with ISO times for a fixed window;
* ``file:PATH`` -- a Parquet, CSV or JSON-lines file.

The current data is the last ``window`` (``30m``, ``6h``, ``1d``, ``1w``) of the
endpoint's prediction log (optionally one route or model version), or the latest
version of ``dataset`` when the monitor watches a dataset instead of an endpoint.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from loopml._names import check_name, closest
from loopml.errors import InvalidParameter

__all__ = [
    "CHECK_OPTIONS",
    "DEFAULT_CHECKS",
    "MonitorSpec",
    "parse_duration_ms",
    "read_spec_yaml",
    "spec_from_yaml",
]

# ASCII digits only: ``\d`` would also take Arabic-Indic and other Unicode digits.
_DURATION = re.compile(r"([0-9]{1,6})(m|h|d|w)")
_MAX_DURATION_MS = 3660 * 86_400_000  # ten years: longer is a typo, and overflows dates
_MAX_COUNT = 10**12  # rows, samples, labels: far beyond any window, well inside JSON's ints
_MAX_COLUMNS = 10_000
_MAX_DESCRIPTION = 10_000
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_WINDOW_AGO = re.compile(r"window:([0-9]{1,6}[mhdw])@-([0-9]{1,6}[mhdw])")
_WINDOW_RANGE = re.compile(r"window:([^/]+)/([^/]+)")

CHECK_OPTIONS: dict[str, frozenset[str]] = {
    "drift": frozenset({"columns", "methods", "tolerances", "fdr", "share"}),
    "data_quality": frozenset({"dataset"}),
    "multivariate": frozenset({"threshold", "sample"}),
    "performance": frozenset({"metrics", "thresholds", "min_labels", "task"}),
    "estimated_performance": frozenset({"metrics", "thresholds", "min_rows"}),
    "fairness": frozenset({"sensitive", "thresholds", "positive", "min_group"}),
    "attribution": frozenset({"method", "ndcg_threshold", "sample"}),
}
"""The checks a monitor can run, with the options each takes."""

DEFAULT_CHECKS: dict[str, dict[str, Any]] = {"drift": {}, "data_quality": {}, "performance": {}}
"""What a monitor checks when ``checks`` is not given."""

_FIELDS = (
    "name",
    "endpoint",
    "route",
    "model_version",
    "dataset",
    "reference",
    "window",
    "columns",
    "checks",
    "schedule",
    "min_rows",
    "sinks",
    "alert_on_no_data",
    "label",
    "description",
)


def parse_duration_ms(text: object, parameter: str) -> int:
    """``"30m"``, ``"6h"``, ``"1d"``, ``"2w"`` in milliseconds.

    Raises:
        InvalidParameter: ``text`` is not such a duration.
    """
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    milliseconds = int(match.group(1)) * _UNIT_MS[match.group(2)] if match else 0
    if not 0 < milliseconds <= _MAX_DURATION_MS:
        raise InvalidParameter(
            f"The {parameter!r} parameter must be a duration such as '30m', '6h', '1d' or "
            f"'2w' (a positive whole number and one of m, h, d, w; at most ten years). "
            f"Got {text!r} instead."
        )
    return milliseconds


@dataclass(frozen=True)
class MonitorSpec:
    """A monitor's configuration (see the module docstring for the syntax).

    Attributes:
        name: The monitor's name, unique in its project.
        endpoint: The endpoint whose prediction log is watched.
        route: Only this route's predictions (``canary`` or ``credit@canary``).
        model_version: Only this model version's predictions (``credit/3``).
        dataset: Watch the latest version of this dataset instead of an endpoint.
        reference: What the current data is compared with.
        window: How much of the prediction log one run judges, back from the run.
        columns: The input columns to check (default: the model's signature, else all).
        checks: Check kind (:data:`CHECK_OPTIONS`) to its options.
        schedule: Cron text (``"0 6 * * *"``) for a scheduler; ``None`` runs on demand.
        min_rows: Fewer current rows than this and the run's status is ``no_data``.
        sinks: Where alerts go: ``"log"``, ``{"webhook": URL, "format": "slack"}``,
            ``{"command": [argv...]}``.
        alert_on_no_data: Open an alert when a run has too little data to judge.
        label: The label column of a watched dataset (for performance and fairness).
        description: Free text.
    """

    name: str
    endpoint: str | None = None
    route: str | None = None
    model_version: str | None = None
    dataset: str | None = None
    reference: str = "training"
    window: str = "1d"
    columns: tuple[str, ...] | None = None
    checks: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: dict(DEFAULT_CHECKS))
    schedule: str | None = None
    min_rows: int = 100
    sinks: tuple[Any, ...] = ("log",)
    alert_on_no_data: bool = True
    label: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        check_name("monitor", self.name)
        if (self.endpoint is None) == (self.dataset is None):
            raise InvalidParameter(
                f"Monitor {self.name!r} must watch exactly one of 'endpoint' or 'dataset'. "
                f"Got endpoint={self.endpoint!r}, dataset={self.dataset!r}."
            )
        for attribute in ("endpoint", "route", "model_version", "dataset", "label"):
            _optional_text(getattr(self, attribute), attribute)
        if self.dataset is not None and (self.route or self.model_version):
            raise InvalidParameter(
                "'route' and 'model_version' select predictions of an endpoint; a monitor "
                f"of dataset {self.dataset!r} has none."
            )
        parse_duration_ms(self.window, "window")
        check_reference(self.reference)
        if self.dataset is not None and self.reference.startswith("window:"):
            raise InvalidParameter(
                f"A monitor of dataset {self.dataset!r} cannot take a prediction-log window "
                f"as reference ({self.reference!r}): use 'dataset:NAME:N' or 'file:PATH'."
            )
        if self.columns is not None:
            object.__setattr__(self, "columns", _column_names(self.columns, "columns"))
        object.__setattr__(self, "checks", _checked_checks(self.checks))
        if self.schedule is not None:
            check_cron(self.schedule)
        _check_int(self.min_rows, "min_rows")
        if isinstance(self.sinks, str | Mapping) or not isinstance(self.sinks, Sequence):
            raise InvalidParameter(
                f"The 'sinks' parameter must be a list of sinks. Got {self.sinks!r} instead."
            )
        object.__setattr__(self, "sinks", tuple(self.sinks))
        if not isinstance(self.alert_on_no_data, bool):
            raise InvalidParameter(
                "The 'alert_on_no_data' parameter must be true or false. "
                f"Got {self.alert_on_no_data!r} instead."
            )
        _optional_text(self.description, "description", _MAX_DESCRIPTION, allowed="\n\t")

    @property
    def window_ms(self) -> int:
        """The window in milliseconds."""
        return parse_duration_ms(self.window, "window")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict, what is stored and what YAML holds."""
        return {
            "name": self.name,
            "endpoint": self.endpoint,
            "route": self.route,
            "model_version": self.model_version,
            "dataset": self.dataset,
            "reference": self.reference,
            "window": self.window,
            "columns": None if self.columns is None else list(self.columns),
            "checks": {kind: dict(options) for kind, options in self.checks.items()},
            "schedule": self.schedule,
            "min_rows": self.min_rows,
            "sinks": list(self.sinks),
            "alert_on_no_data": self.alert_on_no_data,
            "label": self.label,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: object) -> MonitorSpec:
        """Build a spec from untrusted data (YAML, JSON, a stored row).

        Raises:
            InvalidParameter: ``data`` is not a mapping, has an unknown key or a bad value.
        """
        if not isinstance(data, Mapping):
            raise InvalidParameter(
                f"A monitor is a mapping of settings. Got {type(data).__name__} instead."
            )
        unknown = [str(k) for k in data if k not in _FIELDS]
        if unknown:
            hint = closest(unknown[0], _FIELDS)
            raise InvalidParameter(
                f"Unknown monitor setting {unknown[0]!r}"
                + (f" (did you mean {hint!r}?)" if hint else "")
                + f". Settings: {', '.join(_FIELDS)}."
            )
        values = dict(data)
        if "name" not in values:
            raise InvalidParameter("A monitor needs a 'name'.")
        if values.get("columns") is not None and isinstance(values["columns"], list):
            values["columns"] = tuple(values["columns"])
        if values.get("sinks") is not None and isinstance(values["sinks"], list):
            values["sinks"] = tuple(values["sinks"])
        if values.get("checks") is None:
            values.pop("checks", None)
        return cls(**values)


class _MonitorLoader(yaml.SafeLoader):
    """A safe loader that refuses aliases and repeated keys.

    Aliases let a 1 kB file expand to gigabytes once stored as JSON ("billion
    laughs"); a repeated key silently overrides what a reviewer read first.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed here", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[object] = set()
            for key_node, _ in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} appears twice", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def spec_from_yaml(source: str | Path) -> MonitorSpec:
    """Read a monitor from a YAML file (a path) or YAML text.

    Raises:
        InvalidParameter: the file cannot be read, is not YAML, or is not a valid monitor.
    """
    return MonitorSpec.from_dict(read_spec_yaml(source, "monitor"))


def read_spec_yaml(source: str | Path, what: str) -> Any:
    """The data of a stored object's YAML (a path, or the text): safe types only, no
    aliases, no repeated keys, bounded size and depth.

    Raises:
        InvalidParameter: the file cannot be read or is not such YAML (naming ``what``).
    """
    if isinstance(source, Path):
        try:
            text = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidParameter(f"Cannot read {what} file {str(source)!r}: {exc}") from None
    else:
        text = source
    if len(text) > 1_000_000:
        raise InvalidParameter(f"A {what}'s YAML must be under 1 MB.")
    try:
        return yaml.load(text, Loader=_MonitorLoader)  # noqa: S506 -- a SafeLoader
    except yaml.YAMLError as exc:
        raise InvalidParameter(f"The {what} is not valid YAML: {_one_line(exc)}") from None
    except RecursionError:
        raise InvalidParameter(f"The {what}'s YAML is nested too deeply.") from None


def _one_line(exc: yaml.YAMLError) -> str:
    """PyYAML's message quotes the source over several lines; the CLI shows one."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem is None or mark is None:
        return " ".join(str(exc).split())
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"


def check_reference(reference: object) -> str:
    """Validate a reference (see the module docstring); return it.

    Raises:
        InvalidParameter: it has none of the accepted forms.
    """
    if isinstance(reference, str):
        _optional_text(reference, "reference", 4096, allowed="")
        if reference == "training":
            return reference
        if reference.startswith("dataset:") and len(reference) > len("dataset:"):
            return reference
        if reference.startswith("file:") and len(reference) > len("file:"):
            return reference
        match = _WINDOW_AGO.fullmatch(reference)
        if match:
            parse_duration_ms(match.group(1), "reference")
            parse_duration_ms(match.group(2), "reference")
            return reference
        match = _WINDOW_RANGE.fullmatch(reference)
        if match:
            from loopml.serving._reading import time_bound_ms

            start = time_bound_ms(match.group(1), "reference window start")
            end = time_bound_ms(match.group(2), "reference window end")
            if start < end:
                return reference
    raise InvalidParameter(
        "The 'reference' parameter must be 'training', 'dataset:NAME[:N]', 'file:PATH', "
        "'window:LENGTH@-AGO' (e.g. 'window:7d@-14d') or 'window:START/END' (ISO times, "
        f"START before END). Got {reference!r} instead."
    )


def window_reference_ms(reference: str, now_ms: int) -> tuple[int, int]:
    """The ``[start, end)`` in ms of a ``window:`` reference, at ``now_ms``."""
    match = _WINDOW_AGO.fullmatch(reference)
    if match:
        end = now_ms - parse_duration_ms(match.group(2), "reference")
        return end - parse_duration_ms(match.group(1), "reference"), end
    from loopml.serving._reading import time_bound_ms

    match = _WINDOW_RANGE.fullmatch(reference)
    if not match:
        check_reference(reference)
        raise InvalidParameter(f"{reference!r} is not a window reference.")
    return time_bound_ms(match.group(1), "reference"), time_bound_ms(match.group(2), "reference")


def check_cron(text: object, parameter: str = "schedule") -> str:
    """Validate cron text (five fields, or ``@daily`` style), return it.

    Raises:
        InvalidParameter: croniter does not accept it.
    """
    from croniter import croniter

    fields = text.split() if isinstance(text, str) else []
    five = len(fields) == 5 or (len(fields) == 1 and fields[0].startswith("@"))
    if not isinstance(text, str) or not five or not croniter.is_valid(text):
        raise InvalidParameter(
            f"The {parameter!r} parameter must be cron text such as '0 6 * * *' (minute hour "
            f"day-of-month month day-of-week) or '@daily'. Got {text!r} instead."
        )
    return text


def _optional_text(value: object, parameter: str, longest: int = 250, allowed: str = "") -> None:
    """Control characters in a name rewrite terminal lines and split log records."""
    if value is None:
        return
    if (
        not isinstance(value, str)
        or not value
        or len(value) > longest
        or any(unicodedata.category(c) == "Cc" and c not in allowed for c in value)
    ):
        raise InvalidParameter(
            f"The {parameter!r} parameter must be a non-empty text of at most {longest} "
            f"characters without control characters. Got {_shown(value)} instead."
        )


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_int(value: object, parameter: str, where: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_COUNT:
        raise InvalidParameter(
            f"The {parameter!r} parameter{where} must be an int from 1 to {_MAX_COUNT}. "
            f"Got {_shown(value)} instead."
        )


def _finite(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _bound(value: object) -> bool:
    """A threshold: a number, or performance's ``[operator, number]``."""
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        return isinstance(value[0], str) and _finite(value[1])
    return _finite(value)


def _column_names(names: object, parameter: str, where: str = "") -> tuple[str, ...]:
    items = (names,) if isinstance(names, str) else names
    if isinstance(items, Mapping) or not isinstance(items, Sequence) or not items:
        items = ()
    if 0 < len(items) <= _MAX_COLUMNS:
        for name in items:
            _optional_text(name, parameter)
        if len(set(items)) == len(items):
            return tuple(items)
    raise InvalidParameter(
        f"The {parameter!r} parameter{where} must be a list of 1 to {_MAX_COLUMNS} distinct "
        f"column names. Got {_shown(names)} instead."
    )


def _check_options(kind: str, options: Mapping[str, Any]) -> None:
    """Type-check a check's options now, so a bad one is refused when the monitor is saved."""
    where = f" of check {kind!r}"
    for option, value in options.items():
        if option in ("columns", "sensitive"):
            _column_names(value, option, where)
        elif option in ("fdr", "share", "threshold", "ndcg_threshold"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                value = None
            if value is None or not 0 < value <= 1:
                raise InvalidParameter(
                    f"The {option!r} parameter{where} must be a number in (0, 1]. "
                    f"Got {_shown(options[option])} instead."
                )
        elif option in ("sample", "min_labels", "min_group", "min_rows"):
            _check_int(value, option, where)
        elif option in ("tolerances", "thresholds"):
            if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and _bound(v) for k, v in value.items()
            ):
                raise InvalidParameter(
                    f"The {option!r} parameter{where} must map names to finite numbers "
                    f"(or, for performance, to [operator, number]). Got {_shown(value)} instead."
                )
        elif option in ("methods", "metrics"):
            if isinstance(value, Mapping):
                _column_names(list(value), option, where)
                for text in value.values():
                    _optional_text(text, option)
            else:
                _column_names(value, option, where)
        elif option == "positive":
            if not (value is None or isinstance(value, str | bool) or _finite(value)):
                raise InvalidParameter(
                    f"The 'positive' parameter{where} must be a label (text, number or bool). "
                    f"Got {_shown(value)} instead."
                )
        else:  # dataset, method, task: one name each
            _optional_text(value, option)


def _checked_checks(checks: object) -> dict[str, dict[str, Any]]:
    if isinstance(checks, Sequence) and not isinstance(checks, str):
        checks = {str(kind): {} for kind in checks}
    if not isinstance(checks, Mapping) or not checks:
        raise InvalidParameter(
            "The 'checks' parameter must name at least one check, as a list of kinds or a "
            f"mapping of kind to options. Got {checks!r} instead."
        )
    result: dict[str, dict[str, Any]] = {}
    for kind, options in checks.items():
        if kind not in CHECK_OPTIONS:
            hint = closest(str(kind), CHECK_OPTIONS)
            raise InvalidParameter(
                f"Unknown check {kind!r}"
                + (f" (did you mean {hint!r}?)" if hint else "")
                + f". Checks: {', '.join(CHECK_OPTIONS)}."
            )
        options = {} if options is None else options
        if not isinstance(options, Mapping):
            raise InvalidParameter(
                f"The options of check {kind!r} must be a mapping. Got {options!r} instead."
            )
        for option in options:
            if option not in CHECK_OPTIONS[kind]:
                allowed = sorted(CHECK_OPTIONS[kind])
                raise InvalidParameter(
                    f"Check {kind!r} has no option {option!r}. Options: {', '.join(allowed)}."
                )
        _check_options(str(kind), options)
        result[str(kind)] = dict(options)
    if "fairness" in result and not result["fairness"].get("sensitive"):
        raise InvalidParameter(
            "The 'fairness' check needs 'sensitive': the column(s) whose groups to compare."
        )
    return result
