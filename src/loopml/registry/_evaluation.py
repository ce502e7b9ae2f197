"""What a promotion policy's checks see (EvaluationData) and say (CheckOutcome)."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from loopml.errors import InvalidParameter

__all__ = [
    "AnyArray",
    "Check",
    "CheckOutcome",
    "EvaluationData",
    "PolicyCheck",
    "fail",
    "fmt",
    "is_number",
    "num",
]

AnyArray = npt.NDArray[Any]


def fail(parameter: str, expected: str, got: object) -> InvalidParameter:
    return InvalidParameter(f"The '{parameter}' parameter must be {expected}. Got {got!r} instead.")


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def fmt(value: float) -> str:
    return f"{value:.4g}"


def num(value: float) -> str:
    """Exact but short: ``0.85`` rather than ``0.8500000000000001`` or ``8.5e-01``."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


@dataclass(frozen=True, kw_only=True)
class EvaluationData:
    """Everything a policy looks at for one candidate version.

    Arrays are converted with :func:`numpy.asarray`; per-row arrays must match
    ``y_true`` in length.

    Attributes:
        y_true: The true targets of the evaluation set.
        candidate_pred: The candidate's predicted labels (or values, for regression).
        candidate_proba: The candidate's scores/probabilities, if it has them.
        champion_pred: The current champion's predictions on the same rows; ``None``
            with ``champion_proba`` and ``champion_metrics`` means "no champion yet".
        champion_proba: The champion's scores/probabilities on the same rows.
        groups: Sensitive columns of the evaluation set, by name.
        metrics: The candidate's metrics on this data, by name.
        champion_metrics: The champion's metrics on this data, if there is one.
        training_data_passed: Whether the training data's quality report passed;
            ``None`` when there is no report.
        latency_p95_ms: Measured p95 single-row predict time, in milliseconds.
        approvals: ``(identity, role)`` pairs of the human approvals given so far.
        registered_by: The identity that registered the version.
        champion_alias: The alias the candidate is compared with (``"champion"``);
            ``None`` when the evaluation asked for no comparison.
        candidate_is_champion: The alias already points at the candidate, so there
            is no other version to compare with.
    """

    y_true: npt.ArrayLike
    candidate_pred: npt.ArrayLike
    candidate_proba: npt.ArrayLike | None = None
    champion_pred: npt.ArrayLike | None = None
    champion_proba: npt.ArrayLike | None = None
    groups: Mapping[str, npt.ArrayLike] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    champion_metrics: Mapping[str, float] | None = None
    training_data_passed: bool | None = None
    latency_p95_ms: float | None = None
    approvals: Sequence[tuple[str, str | None]] = ()
    registered_by: str | None = None
    champion_alias: str | None = "champion"
    candidate_is_champion: bool = False

    def __post_init__(self) -> None:
        y = np.asarray(self.y_true)
        if y.ndim != 1:
            raise fail("y_true", "a one-dimensional array", f"shape {y.shape}")
        object.__setattr__(self, "y_true", y)
        for name in ("candidate_pred", "candidate_proba", "champion_pred", "champion_proba"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, self._rows(name, value))
        groups = {str(k): self._rows(f"groups[{k!r}]", v) for k, v in self.groups.items()}
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "approvals", tuple((str(i), r) for i, r in self.approvals))

    def _rows(self, name: str, value: npt.ArrayLike) -> AnyArray:
        array = np.asarray(value)
        n = len(np.asarray(self.y_true))
        if array.ndim == 0 or len(array) != n:
            raise fail(name, f"an array with one entry per row of y_true ({n})", array.shape)
        return array

    @classmethod
    def for_approvals(
        cls, approvals: Sequence[tuple[str, str | None]], registered_by: str | None = None
    ) -> EvaluationData:
        """Return data without evaluation rows, for re-checking :class:`Approvals` alone.

        Args:
            approvals: ``(identity, role)`` pairs of the approvals given so far.
            registered_by: The identity that registered the version.
        """
        empty = np.empty(0)
        return cls(
            y_true=empty, candidate_pred=empty, approvals=approvals, registered_by=registered_by
        )

    @property
    def has_champion(self) -> bool:
        """Whether a champion exists to compare against."""
        return not (
            self.champion_pred is None
            and self.champion_proba is None
            and self.champion_metrics is None
        )

    def array(self, name: str) -> AnyArray | None:
        """Return the named per-row array (``y_true``, ``candidate_pred``, …) or ``None``."""
        value = getattr(self, name)
        return None if value is None else np.asarray(value)


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one check on one version (stored as its ``policy_result``).

    Attributes:
        name: The check's name, unique within its policy.
        kind: The check's stable alias.
        passed: Whether the check passed.
        reason: A sentence saying why.
        details: The numbers behind the decision (JSON-compatible).
    """

    name: str
    kind: str
    passed: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the outcome as plain data."""
        return dataclasses.asdict(self)


@runtime_checkable
class Check(Protocol):
    """What a policy needs of a check."""

    @property
    def kind(self) -> str:
        """The stable alias the check is saved under."""

    @property
    def name(self) -> str:
        """The check's name, unique within a policy."""

    def evaluate(self, data: EvaluationData) -> CheckOutcome:
        """Evaluate the check on one version's data."""

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"kind": ..., <fields>}``."""


@dataclass(frozen=True)
class PolicyCheck(ABC):
    """Base of the built-in check kinds.

    ``name`` defaults to a description of the check (e.g. ``"auc >= 0.85"``).
    Evaluation problems with the data itself (a metric undefined on it, mismatched
    shapes) make the check fail with the problem as its reason rather than raise.
    """

    kind: ClassVar[str]
    name: str = field(default="", kw_only=True)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.generic):  # numpy scalars do not survive YAML or JSON
                object.__setattr__(self, f.name, value.item())
        self._validate()
        if not isinstance(self.name, str):
            raise fail("name", "a string", self.name)
        if not self.name:
            object.__setattr__(self, "name", self.default_name())

    def _validate(self) -> None:  # noqa: B027 - optional hook, most kinds override it
        """Raise :class:`InvalidParameter` for bad field values."""

    @abstractmethod
    def default_name(self) -> str:
        """The name used when none is given."""

    @abstractmethod
    def _evaluate(self, data: EvaluationData) -> tuple[bool, str, dict[str, Any]]:
        """Return ``(passed, reason, details)``."""

    def evaluate(self, data: EvaluationData) -> CheckOutcome:
        """Evaluate the check on one version's data.

        Args:
            data: The version's evaluation data, approvals and reports.

        Returns:
            The outcome, with a readable reason.
        """
        try:
            passed, reason, details = self._evaluate(data)
        except InvalidParameter as exc:
            passed, reason, details = False, f"could not be evaluated: {exc}", {}
        return CheckOutcome(self.name, self.kind, bool(passed), reason, details)

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"kind": ..., <every field>}``; ``name`` only when not the default."""
        entry: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            if f.name != "name":
                entry[f.name] = getattr(self, f.name)
        if self.name != self.default_name():
            entry["name"] = self.name
        return entry
