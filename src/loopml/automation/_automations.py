"""Declared continuous-training automations: :class:`AutomationSpec`, stored per project.

An automation chains, for one model and one endpoint: retrain (run the training
pipeline with the triggering event's fields), gate (evaluate the candidate against the
model's promotion policy on a dataset), approve (wait for the approvals the policy asks
for, up to a timeout), canary (a new deployment revision sending ``canary_share`` % of
the traffic to the candidate), analyse (the always-valid sequential test of
:mod:`~loopml.automation._sequential` on live traffic and feedback), then promote or
roll back. Each run of it is an attempt (:mod:`~loopml.automation._attempt`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from loopml._names import check_name
from loopml.automation._sequential import CanaryPolicy
from loopml.automation._spec import Action
from loopml.errors import InvalidParameter

__all__ = ["AutomationSpec"]

_MAX_TIMEOUT = 30 * 24 * 3600.0


@dataclass(frozen=True)
class AutomationSpec:
    """A continuous-training automation for one model behind one endpoint.

    Attributes:
        name: unique in its project.
        model: the registry model the training pipeline registers versions of.
        endpoint: the deployment whose traffic the canary shares.
        pipeline: the training pipeline, ``MODULE:NAME`` or ``path.py:NAME``.
        params: its parameters; text may name the triggering event's fields
            (``{event.version}``).
        evaluation_data: the dataset version the gate evaluates on (``credit-test:3``;
            may name event fields too).
        target: the label column of ``evaluation_data``.
        canary_share: percent of the traffic sent to the candidate, in (0, 100).
        alias: the alias the candidate must beat and, when promoted, takes.
        analysis: the sequential test's level, margins (by metric: ``accuracy``),
            minimum and maximum samples per arm and maximum duration.
        approval_timeout: seconds to wait for the approvals the policy asks for.
        retrain_timeout: seconds the training pipeline may run.
        description: free text for people.

    Raises:
        InvalidParameter: naming the parameter, for a value out of its range.
    """

    name: str
    model: str
    endpoint: str
    pipeline: str
    evaluation_data: str
    target: str
    params: Mapping[str, Any] = field(default_factory=dict)
    canary_share: float = 10.0
    alias: str = "champion"
    analysis: CanaryPolicy = field(default_factory=CanaryPolicy)
    approval_timeout: float = 86_400.0
    retrain_timeout: float = 3_600.0
    description: str = ""

    def __post_init__(self) -> None:
        check_name("automation", self.name)
        check_name("model", self.model)
        check_name("endpoint", self.endpoint)
        for name in ("evaluation_data", "target", "alias"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip() or len(value) > 1024:
                raise InvalidParameter(
                    f"The {name!r} parameter of an automation must be non-empty text of at "
                    f"most 1024 characters. Got {value!r} instead."
                )
        # The training action is checked as a trigger's pipeline action is.
        Action(pipeline=self.pipeline, params=self.params, timeout=self.retrain_timeout)
        share = self.canary_share
        if (
            isinstance(share, bool)
            or not isinstance(share, int | float)
            or not math.isfinite(share)
            or not 0 < share < 100
        ):
            raise InvalidParameter(
                "The 'canary_share' parameter of an automation must be a percentage in "
                f"(0, 100). Got {share!r} instead."
            )
        if not isinstance(self.analysis, CanaryPolicy):
            raise InvalidParameter(
                "The 'analysis' parameter of an automation must be a CanaryPolicy. "
                f"Got {type(self.analysis).__name__} instead."
            )
        timeout = self.approval_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            timeout = -1.0
        if not 0 < timeout <= _MAX_TIMEOUT:
            raise InvalidParameter(
                "The 'approval_timeout' parameter of an automation must be a number of "
                f"seconds in (0, {_MAX_TIMEOUT:.0f}]. Got {self.approval_timeout!r} instead."
            )
        if not isinstance(self.description, str):
            raise InvalidParameter(
                f"The 'description' parameter of an automation must be text. "
                f"Got {type(self.description).__name__} instead."
            )

    @property
    def action(self) -> Action:
        """The retrain step as a pipeline action (run as a trigger's action is)."""
        return Action(pipeline=self.pipeline, params=self.params, timeout=self.retrain_timeout)

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-able data (what is stored)."""
        data = asdict(self)
        data["params"] = dict(self.params)
        data["analysis"] = {**asdict(self.analysis), "margins": dict(self.analysis.margins)}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AutomationSpec:
        """Rebuild a spec written by :meth:`to_dict`.

        Raises:
            InvalidParameter: an unknown field or a bad value.
        """
        if not isinstance(data, Mapping):
            raise InvalidParameter(f"An automation spec must be a mapping; got {data!r}.")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidParameter(
                f"An automation spec has no field {unknown[0]!r} "
                f"(fields: {', '.join(sorted(known))})."
            )
        values = dict(data)
        analysis = values.pop("analysis", None)
        try:
            spec = cls(**values)
            if analysis is not None:
                spec = replace(spec, analysis=CanaryPolicy(**dict(analysis)))
        except TypeError as exc:
            raise InvalidParameter(f"A bad automation spec: {exc}.") from None
        return spec
