"""The canary's sequential test: its level under many looks, its power, its state and policy.

The simulations are seeded and vectorised: the A/A grids run every look of every canary
through the module's own moment and boundary functions (the ones ``decide`` uses), and a
sample of the canaries is replayed look by look through ``CanaryState`` and ``decide`` to
check that the two agree.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import beta

from loopml.automation._canary_state import (
    CanaryState,
    Moments,
    correctness,
    error_rate,
    latency_exceedance,
    loss,
)
from loopml.automation._sequential import (
    CanaryPolicy,
    Decision,
    boundary,
    decide,
    mean_moments,
    proportion_moments,
)
from loopml.errors import InvalidParameter

POLICY = CanaryPolicy(alpha=0.05, min_samples_per_arm=500, max_samples_per_arm=20_000)


def _clopper_pearson(hits: int, total: int) -> tuple[float, float]:
    low = beta.ppf(0.025, hits, total - hits + 1) if hits else 0.0
    high = beta.ppf(0.975, hits + 1, total - hits) if hits < total else 1.0
    return float(low), float(high)


def _first_decisions(lower: np.ndarray, upper: np.ndarray, smaller: np.ndarray) -> np.ndarray:
    """Per canary: the first look's decision (+1 rollback, -1 promote, 0 none), margin 0."""
    eligible = smaller >= POLICY.min_samples_per_arm
    rollback, promote = (lower > 0) & eligible, (upper < 0) & eligible
    decided = rollback | promote
    first = decided.argmax(axis=1)
    rows = np.arange(lower.shape[0])
    return np.where(decided.any(axis=1), np.where(rollback[rows, first], 1, -1), 0)


def _simulate_shares(
    rate_a: float, rate_b: float, canaries: int, per_look: tuple[int, int], looks: int, seed: int
) -> tuple[np.ndarray, ...]:
    """Cumulative (n, events) per arm at every look of every canary."""
    rng = np.random.default_rng(seed)
    step_a, step_b = per_look
    events_a = np.cumsum(rng.binomial(step_a, rate_a, (canaries, looks)), axis=1)
    events_b = np.cumsum(rng.binomial(step_b, rate_b, (canaries, looks)), axis=1)
    n_a = np.broadcast_to(step_a * np.arange(1, looks + 1), events_a.shape)
    n_b = np.broadcast_to(step_b * np.arange(1, looks + 1), events_b.shape)
    return n_a, events_a, n_b, events_b


def _share_decisions(
    n_a: np.ndarray, x_a: np.ndarray, n_b: np.ndarray, x_b: np.ndarray
) -> np.ndarray:
    value_a, value_b, variance = proportion_moments(n_a, x_a, n_b, x_b)
    smaller = np.minimum(n_a, n_b)
    radius = boundary(smaller, alpha=POLICY.alpha, mixing_samples=POLICY.mixing_samples)
    radius = radius * np.sqrt(variance)
    harm = value_b - value_a
    return _first_decisions(harm - radius, harm + radius, smaller)


def _replay(n_a: np.ndarray, x_a: np.ndarray, n_b: np.ndarray, x_b: np.ndarray) -> int:
    """One canary through CanaryState and decide, look by look: the first decision's code."""
    state = CanaryState.start([error_rate()], at=0.0)
    previous = (0, 0, 0, 0)
    for look in range(len(n_a)):
        now = (int(n_a[look]), int(x_a[look]), int(n_b[look]), int(x_b[look]))
        at = float(look + 1)
        state = state.add_counts(
            "error_rate", "champion", n=now[0] - previous[0], events=now[1] - previous[1], at=at
        )
        state = state.add_counts(
            "error_rate", "candidate", n=now[2] - previous[2], events=now[3] - previous[3], at=at
        )
        previous = now
        decision = decide(state, POLICY).decision
        if decision is Decision.ROLLBACK:
            return 1
        if decision is Decision.PROMOTE:
            return -1
        assert decision in (Decision.CONTINUE, Decision.INCONCLUSIVE)
    return 0


@pytest.mark.parametrize(
    ("split", "per_look", "seed"),
    [
        ("50/50, a look every 50 requests per arm", (50, 50), 15),
        ("80/20, a look every 250 requests", (200, 50), 16),
    ],
)
def test_aa_canaries_keep_false_decisions_at_alpha(
    split: str, per_look: tuple[int, int], seed: int
) -> None:
    """1,200 A/A canaries at a 1 % error rate, 400 looks each up to 20,000 requests."""
    canaries, looks = 1_200, 400
    arrays = _simulate_shares(0.01, 0.01, canaries, per_look, looks, seed)
    decisions = _share_decisions(*arrays)
    false = int(np.count_nonzero(decisions))
    low, high = _clopper_pearson(false, canaries)
    rate = false / canaries
    message = (
        f"{split}: {false} of {canaries} A/A canaries falsely promoted or rolled back "
        f"(rate {rate:.4f}, 95% CI [{low:.4f}, {high:.4f}]; alpha {POLICY.alpha})"
    )
    assert rate <= POLICY.alpha, message
    # decide() on real states agrees with the vectorised grid, decided canaries included.
    sample = list(np.flatnonzero(decisions)[:10]) + list(range(30))
    for index in sample:
        replayed = _replay(*(array[index] for array in arrays))
        assert replayed == decisions[index], f"canary {index}: {message}"


def test_a_regression_from_1_to_3_percent_errors_is_rolled_back() -> None:
    canaries = 500
    arrays = _simulate_shares(0.01, 0.03, canaries, (50, 50), 400, seed=3)
    decisions = _share_decisions(*arrays)
    power = float(np.mean(decisions == 1))
    assert power >= 0.99, f"power {power:.3f} over {canaries} canaries"
    assert not np.any(decisions == -1), "a worse candidate was promoted"


def test_aa_canaries_on_a_skewed_loss_keep_the_level() -> None:
    """1,000 A/A canaries on an exponential (skewed) loss, a look every 50 rows per arm."""
    canaries, looks, step = 1_000, 100, 50
    rng = np.random.default_rng(7)
    sums, moments = [], []
    for _ in range(2):
        rows = rng.exponential(1.0, (canaries, looks, step))
        n = step * np.arange(1, looks + 1)
        batch_mean = rows.mean(axis=2)
        batch_m2 = ((rows - batch_mean[..., None]) ** 2).sum(axis=2)
        sums.append(np.cumsum(batch_mean * step, axis=1))
        # Chan's merge of equal-sized batches, cumulated: within + between-batch squares.
        mean = sums[-1] / n
        between = (
            np.cumsum(batch_m2, axis=1) + np.cumsum(step * batch_mean**2, axis=1) - n * mean**2
        )
        moments.append((np.broadcast_to(n, mean.shape), mean, between))
    value_a, value_b, variance = mean_moments(moments[0], moments[1])
    smaller = moments[0][0]
    radius = boundary(smaller, alpha=POLICY.alpha, mixing_samples=POLICY.mixing_samples)
    radius = radius * np.sqrt(variance)
    harm = value_b - value_a
    decisions = _first_decisions(harm - radius, harm + radius, smaller)
    false = int(np.count_nonzero(decisions))
    low, high = _clopper_pearson(false, canaries)
    assert false / canaries <= POLICY.alpha, (
        f"{false} of {canaries} loss A/A canaries falsely decided "
        f"(95% CI [{low:.4f}, {high:.4f}]; alpha {POLICY.alpha})"
    )


def _state(champion: tuple[int, int], candidate: tuple[int, int], metric: str = "error_rate"):
    kinds = {"error_rate": error_rate(), "accuracy": correctness()}
    state = CanaryState.start([kinds[metric]], at=0.0)
    state = state.add_counts(metric, "champion", n=champion[0], events=champion[1], at=60.0)
    return state.add_counts(metric, "candidate", n=candidate[0], events=candidate[1], at=60.0)


def test_direction_higher_is_better_for_accuracy() -> None:
    worse = decide(_state((5_000, 4_500), (5_000, 4_200), "accuracy"), POLICY)
    better = decide(_state((5_000, 4_200), (5_000, 4_500), "accuracy"), POLICY)
    assert worse.decision is Decision.ROLLBACK, worse.reason
    assert better.decision is Decision.PROMOTE, better.reason
    assert worse.metrics[0].harm == pytest.approx(0.06)
    assert worse.metrics[0].p_worse is not None and worse.metrics[0].p_worse <= POLICY.alpha


def test_a_margin_promotes_an_equal_candidate_and_none_promotes_nothing() -> None:
    equal = _state((20_000, 200), (20_000, 200))
    policy = CanaryPolicy(margins={"error_rate": 0.005}, max_samples_per_arm=20_000)
    promoted = decide(equal, policy)
    assert promoted.decision is Decision.PROMOTE, promoted.reason
    assert promoted.metrics[0].upper is not None and promoted.metrics[0].upper < 0.005
    unproven = decide(equal, CanaryPolicy(max_samples_per_arm=20_000))
    assert unproven.decision is Decision.INCONCLUSIVE
    assert "without proof" in unproven.reason


def test_not_enough_data_is_its_own_state() -> None:
    verdict = decide(_state((300, 0), (300, 30)), POLICY)
    assert verdict.decision is Decision.CONTINUE
    assert "not enough data yet (300 of 500" in verdict.reason
    empty = decide(CanaryState.start([error_rate()], at=0.0), POLICY)
    assert empty.decision is Decision.CONTINUE and empty.metrics[0].harm is None


def test_the_maximum_duration_ends_without_a_silent_verdict() -> None:
    state = _state((600, 6), (600, 7)).add_counts("error_rate", "champion", n=0, events=0, at=9e4)
    verdict = decide(state, POLICY)
    assert verdict.decision is Decision.INCONCLUSIVE
    assert "90000 s reached the maximum of 86400 s" in verdict.reason


def test_a_rollback_on_one_metric_wins_and_alpha_is_split() -> None:
    state = CanaryState.start([error_rate(), latency_exceedance(250.0), loss()], at=0.0)
    state = state.add_counts("error_rate", "champion", n=5_000, events=50, at=1.0)
    state = state.add_counts("error_rate", "candidate", n=5_000, events=50, at=1.0)
    state = state.add_counts("latency", "champion", n=5_000, events=250, at=1.0)
    state = state.add_counts("latency", "candidate", n=5_000, events=600, at=1.0)
    verdict = decide(state, POLICY)
    assert verdict.decision is Decision.ROLLBACK
    assert verdict.reason.startswith("latency: candidate worse")
    assert all(m.alpha == pytest.approx(0.05 / 3) for m in verdict.metrics)
    assert verdict.metrics[2].decision is Decision.CONTINUE  # no labels yet
    json.dumps(verdict.to_dict())


@given(
    champion=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)), max_size=5),
    losses=st.lists(st.floats(-1e6, 1e6), max_size=40),
    cut=st.integers(0, 40),
)
def test_state_round_trips_through_json_and_updates_add_up(
    champion: list[tuple[int, int]], losses: list[float], cut: int
) -> None:
    state = CanaryState.start([error_rate(), loss()], at=0.0)
    for step, (a, b) in enumerate(champion):
        rows, events = max(a, b), min(a, b)
        state = state.add_counts("error_rate", "champion", n=rows, events=events, at=step)
    state = state.add_values("loss", "candidate", losses[:cut], at=10.0)
    state = state.add_values("loss", "candidate", losses[cut:], at=10.0)
    assert CanaryState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    merged = state.metric("loss").candidate
    whole = Moments().add(losses)
    assert isinstance(merged, Moments) and merged.n == whole.n
    assert merged.mean == pytest.approx(whole.mean, rel=1e-9, abs=1e-6)
    assert merged.m2 == pytest.approx(whole.m2, rel=1e-9, abs=1e-3)
    json.dumps(decide(state, POLICY).to_dict())


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 0.7}, "alpha"),
        ({"alpha": math.nan}, "alpha"),
        ({"margins": {"error_rate": -0.01}}, "margins"),
        ({"margins": {"error_rate": math.inf}}, "margins"),
        ({"min_samples_per_arm": 0}, "min_samples_per_arm"),
        ({"min_samples_per_arm": True}, "min_samples_per_arm"),
        ({"max_samples_per_arm": 100}, "max_samples_per_arm"),
        ({"max_duration_s": 0}, "max_duration_s"),
        ({"max_duration_s": math.inf}, "max_duration_s"),
        ({"mixing_samples": 2.5}, "mixing_samples"),
    ],
)
def test_bad_policy_values_name_the_parameter(arguments: dict[str, object], parameter: str) -> None:
    with pytest.raises(InvalidParameter, match=f"'{parameter}' parameter of CanaryPolicy"):
        CanaryPolicy(**arguments)  # type: ignore[arg-type]


def test_bad_updates_and_damaged_states_raise_invalid_parameter() -> None:
    state = CanaryState.start([error_rate(), loss()], at=100.0)
    with pytest.raises(InvalidParameter, match="'events' value must be at most 'n'"):
        state.add_counts("error_rate", "champion", n=1, events=2, at=101.0)
    with pytest.raises(InvalidParameter, match="'arm' parameter"):
        state.add_counts("error_rate", "canary", n=1, events=0, at=101.0)
    with pytest.raises(InvalidParameter, match="'metric' parameter must be one of"):
        state.add_counts("latency", "champion", n=1, events=0, at=101.0)
    with pytest.raises(InvalidParameter, match="use add_values"):
        state.add_counts("loss", "champion", n=1, events=0, at=101.0)
    with pytest.raises(InvalidParameter, match="must be finite"):
        state.add_values("loss", "champion", [1.0, math.nan], at=101.0)
    with pytest.raises(InvalidParameter, match="back in time"):
        state.add_counts("error_rate", "champion", n=1, events=0, at=99.0)
    with pytest.raises(InvalidParameter, match="each once"):
        CanaryState.start([error_rate(), error_rate()], at=0.0)
    with pytest.raises(InvalidParameter, match="'threshold_ms' value must be > 0"):
        latency_exceedance(0.0)
    damaged = state.to_dict()
    damaged["metrics"][0]["champion"]["events"] = -1
    with pytest.raises(InvalidParameter, match="'events' value must be a count"):
        CanaryState.from_dict(damaged)
    with pytest.raises(InvalidParameter, match="damaged"):
        CanaryState.from_dict({"format": 1, "started_at": 0.0})
