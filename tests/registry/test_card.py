"""Model cards: the sections in Markdown and HTML, escaping, and no network references."""

from __future__ import annotations

import importlib.metadata
import re

import numpy as np
import pytest

from loopml.approvals import current_identity
from loopml.data import DataClient
from loopml.registry._card import ModelCard, build_card
from loopml.registry._client import RegistryClient
from loopml.tracking import TrackingClient

POLICY = """\
- auc >= 0.8
- {kind: beats_champion, metric: auc, n_resamples: 200}
- {kind: fairness, sensitive: group, max: 0.5}
- {kind: approvals, count: 1}
"""
SECTIONS = (
    "Intended use",
    "Limitations",
    "Training data",
    "Metrics",
    "Fairness",
    "Policy results",
    "Approvals",
    "Lineage",
    "How to load",
    "Requirements",
)


@pytest.fixture
def card() -> ModelCard:
    """``m/2`` evaluated against champion ``m/1``, with a run, data, approval and a hostile text."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    import loopml.data

    tracking = TrackingClient()
    registry = RegistryClient(tracking.store, tracking.artifacts)
    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    features = features.iloc[:, :5]
    frame = features.copy()
    frame["target"] = target.to_numpy()
    frame["group"] = np.where(np.arange(len(frame)) % 2 == 0, "a", "b")
    train = loopml.data.register("train", frame.iloc[:400], project="p")
    loopml.data.register("eval", frame.iloc[400:], project="p")
    run = tracking.create_run(project="p", name="fit")
    DataClient(tracking.store, tracking.artifacts).load(train.ref, project="p", run_id=run)
    tracking.log_metric(run, "train_auc", 0.97)
    tracking.end_run(run)
    tracking.flush()
    x, y = features.iloc[:400], target.iloc[:400]
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(x, y)
    registry.register(stump, "m", project="p", input_example=features.head(3))
    better = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    registry.register(better, "m", project="p", run_id=run, input_example=features.head(3))
    registry.set_policy("m", POLICY, project="p")
    registry.promote("m/1", project="p", force=True, reason="baseline")
    registry.describe(
        "m", project="p", intended_use="<script>alert(1)</script> triage", limitations="toy"
    )
    registry.approve("m/2", project="p")
    registry.evaluate("m/2", "eval:1", project="p", target="target", sensitive=["group"])
    built = build_card(registry, "m/2", "p")
    tracking.close()
    return built


def test_the_card_holds_every_section(card: ModelCard) -> None:
    assert card.ref == "m/2"
    assert card.training_data[0].ref == "train:1"
    assert card.training_data[0].rows == 400
    auc = next(m for m in card.metrics if m.name == "auc")
    assert auc.value is not None and auc.has_interval  # from the bootstrap vs the champion
    assert any(m.name == "train_auc" and m.source == "training run" for m in card.metrics)
    assert {f.group for f in card.fairness} == {"a", "b"}
    assert card.approvals == ((current_identity(), None),)
    assert any("dataset train:1" in e.source for e in card.lineage)
    markdown = card.to_markdown()
    for section in SECTIONS:
        assert f"## {section}" in markdown
    assert "95% CI" in markdown
    assert 'loopml.models.load("m/2", project="p")' in markdown
    sklearn = f"scikit-learn=={importlib.metadata.version('scikit-learn')}"
    assert card.requirements is not None and sklearn in card.requirements
    assert f"```text\n{chr(10).join(card.requirements)}\n```" in markdown


def test_the_html_page_escapes_user_text_and_loads_nothing(card: ModelCard) -> None:
    page = card.to_html()
    for section in SECTIONS:
        assert f"<h2>{section}</h2>" in page
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; triage" in page
    assert not re.search(r"https?://", page)
    assert "<style>" in page and "<link" not in page
    assert "scikit-learn==" in page and "loopml models requirements m/2" in page


def test_a_card_without_evaluation_says_there_is_no_interval() -> None:
    from sklearn.tree import DecisionTreeClassifier

    tracking = TrackingClient()
    registry = RegistryClient(tracking.store, tracking.artifacts)
    model = DecisionTreeClassifier().fit(np.array([[0.0], [1.0]]), np.array([0, 1]))
    registry.register(model, "bare", project="p")
    markdown = build_card(registry, "bare", "p").to_markdown()
    tracking.close()
    assert "Not written yet." in markdown
    assert "No metrics" in markdown
    assert "Not evaluated against a promotion policy." in markdown
