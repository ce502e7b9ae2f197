"""How model versions and evaluation results show: one-line reprs, escaped HTML tables.

Also: ``EvaluationResult.failures`` is a property, like ``passed``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from display_support import EVIL, check_html, check_repr
from loopml.data import DataClient
from loopml.registry import EvaluationResult, MetricThreshold, Policy, RegistryClient
from loopml.tracking import TrackingClient

P = "p"


@pytest.fixture
def registry(client: TrackingClient) -> Iterator[RegistryClient]:
    yield RegistryClient(client.store, client.artifacts)


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x0, x1 = rng.normal(size=(2, rows))
    label = (3.0 * x0 + rng.logistic(size=rows) > 0).astype("int64")
    return pd.DataFrame({"x0": x0, "x1": x1, "label": label})


def _version_and_evaluation(
    client: TrackingClient, registry: RegistryClient
) -> tuple[str, EvaluationResult]:
    train = _frame(300, seed=1)
    run_id = client.create_run(project=P, name="train")
    client.log_params(run_id, {"C": 1.0, "note": EVIL})
    client.log_metric(run_id, "accuracy", 0.91)
    client.end_run(run_id)
    model = LogisticRegression().fit(train[["x0", "x1"]], train["label"])
    version = registry.register(
        model,
        "credit",
        project=P,
        run_id=run_id,
        input_example=train[["x0", "x1"]][:5],
        description=EVIL,
        tags={"owner": EVIL},
    )
    registry.set_policy(
        "credit",
        Policy([MetricThreshold.parse("accuracy >= 0.5"), MetricThreshold.parse("auc >= 0.9999")]),
        project=P,
    )
    test = DataClient(client.store, client.artifacts).register(
        "credit-test", _frame(200, seed=7), project=P
    )
    return version.ref, registry.evaluate(version.ref, test.ref, project=P, target="label")


def test_a_model_versions_repr_is_short_and_its_html_escaped(
    client: TrackingClient, registry: RegistryClient
) -> None:
    ref, _ = _version_and_evaluation(client, registry)
    version = registry.get_version(ref, project=P)

    check_repr(repr(version), "<ModelVersion credit/1 candidate sklearn accuracy=0.91")
    text = check_html(version._repr_html_(), "ModelVersion credit/1", "candidate", "accuracy")
    assert "0.91" in text
    assert sum(t.startswith("<script>alert") for t in text) == 3  # description, param, tag
    assert registry.get_version(ref, project=P) == version  # equality untouched
    assert len(repr(dataclasses.asdict(version))) > len(repr(version))


def test_an_evaluation_results_repr_names_failing_checks_and_failures_is_a_property(
    client: TrackingClient, registry: RegistryClient
) -> None:
    _, result = _version_and_evaluation(client, registry)

    assert not result.passed
    assert [name for name, _ in result.failures] == ["auc >= 0.9999"]
    check_repr(
        repr(result),
        f"<EvaluationResult credit/1 evaluation {result.evaluation}: "
        "failed 1 of 2 checks (auc >= 0.9999)>",
    )
    text = check_html(
        result._repr_html_(), "EvaluationResult credit/1", "1 check(s) failed", "Checks (2)"
    )
    assert {"auc >= 0.9999", "FAILED", "accuracy >= 0.5", "passed", "credit-test:1"} <= set(text)
