"""Live per-arm counts of a canary, read from the prediction log and its feedback.

The prediction log holds no server errors (a failed request is not logged), so the
compared metric is ``correctness``: a labelled row counts as an event when the
prediction equals its label. The champion arm is every primary or canary row answered
by another version than the candidate; shadows are left out (they answer nothing).

The state is rebuilt from every row logged since the canary started at each look
rather than updated from a cursor: labels arrive late and may be replaced, and a
rebuilt state is right after a restart by construction. The test of
:mod:`~loopml.automation._sequential` stays valid whenever and however often it looks.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from loopml.artifacts import ArtifactStore
from loopml.automation._canary_state import Arm, CanaryState, correctness
from loopml.serving._predlog import SHADOW_MARK
from loopml.serving._predlog_reading import read_predictions
from loopml.store import Store

__all__ = ["METRIC", "ArmCounts", "live_state"]

METRIC = "accuracy"
"""The name of the compared metric (the key of its margin in a ``CanaryPolicy``)."""


@dataclass(frozen=True)
class ArmCounts:
    """What one look read: predictions and labelled rows (and correct ones) per arm."""

    predictions: dict[str, int]
    labelled: dict[str, int]
    correct: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return {"predictions": self.predictions, "labelled": self.labelled, "correct": self.correct}


def live_state(
    store: Store,
    artifacts: ArtifactStore,
    endpoint: str,
    candidate: str,
    *,
    since_ms: int,
    now_ms: int,
) -> tuple[CanaryState, ArmCounts]:
    """The canary's state from ``endpoint``'s rows since ``since_ms``, and the counts read.

    Args:
        store: the metadata store.
        artifacts: the artifact store holding the log's segments.
        endpoint: the endpoint.
        candidate: the candidate's version reference (``credit/7``).
        since_ms: when the canary revision went live.
        now_ms: the time of this look.
    """
    frame = read_predictions(store, artifacts, endpoint, since_ms=since_ms, with_feedback=True)
    arms = {arm.value: 0 for arm in Arm}
    predicted, labelled, correct = dict(arms), dict(arms), dict(arms)
    for request_id, route, version, output, label in zip(
        frame["request_id"].tolist(),
        frame["route"].tolist(),
        frame["model_version"].tolist(),
        frame["output"].tolist(),
        frame["label"].tolist(),
        strict=True,
    ):
        if SHADOW_MARK in str(request_id) or str(route).startswith("shadow:"):
            continue
        arm = Arm.CANDIDATE.value if str(version) == candidate else Arm.CHAMPION.value
        predicted[arm] += 1
        pairs = _pairs(output, label)
        labelled[arm] += len(pairs)
        correct[arm] += sum(1 for got, want in pairs if got == want)
    state = CanaryState.start([correctness(METRIC)], at=since_ms / 1000)
    for arm in Arm:
        state = state.add_counts(
            METRIC, arm, n=labelled[arm.value], events=correct[arm.value], at=now_ms / 1000
        )
    return state, ArmCounts(predicted, labelled, correct)


def _pairs(output: Any, label: Any) -> list[tuple[Any, Any]]:
    """Row-wise ``(prediction, label)``; none when unlabelled or when they do not pair up."""
    if label is None or (isinstance(label, float) and math.isnan(label)):
        return []
    try:
        value = json.loads(output) if isinstance(output, str) else output
    except ValueError:
        return []
    predicted = value if isinstance(value, list) else [value]
    given = label if isinstance(label, list) else [label] if len(predicted) == 1 else None
    if given is None or len(given) != len(predicted):
        return []
    return list(zip(predicted, given, strict=True))
