"""The ``loopml.`` namespace of run tags, params and metrics belongs to loopml (issue 12 item 5).

Every public write path refuses it, nothing is written when it does, and the
registry's "only autolog's own pickle" gate cannot be fooled through the API.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

import loopml
from loopml.errors import InvalidParameter, ReservedKeyError, UntrustedModelError
from loopml.registry import RegistryClient
from loopml.tracking import TrackingClient
from loopml.tracking._autolog import MODEL_DIGEST_TAG
from loopml.tracking._reserved import set_loopml_tags

P = "p"


def _writes(client: TrackingClient, run_id: str, key: str) -> list[Callable[[], Any]]:
    return [
        lambda: client.set_tag(run_id, key, "x"),
        lambda: client.set_tags(run_id, {"ok": "1", key: "x"}),
        lambda: client.log_batch(run_id, [("m", 1.0, 0)], params={"p": 1}, tags={key: "x"}),
        lambda: client.log_batch(run_id, [("m", 1.0, 0)], params={key: 1}),
        lambda: client.log_batch(run_id, [(key, 1.0, 0)], tags={"t": "1"}),
        lambda: client.log_param(run_id, key, 1),
        lambda: client.log_params(run_id, {"p": 1, key: 2}),
        lambda: client.log_metric(run_id, key, 1.0),
        lambda: client.log_metrics(run_id, {key: 1.0}),
        lambda: client.create_run(project=P, tags={key: "x"}, capture_context=False),
        lambda: client.create_run(project=P, params={key: "x"}, capture_context=False),
    ]


@pytest.mark.parametrize("key", [MODEL_DIGEST_TAG, "loopml.anything", "LoopML.Autolog.x"])
def test_the_public_api_cannot_forge_autologs_model_digest(
    client: TrackingClient, key: str
) -> None:
    """Issue 12 item 5: no public write path sets a ``loopml.`` key, and a refused
    call writes nothing at all (not even the valid keys given with it)."""
    run_id = client.create_run(project=P, capture_context=False)
    for write in _writes(client, run_id, key):
        with pytest.raises(ReservedKeyError, match="reserved") as refused:
            write()
        assert isinstance(refused.value, InvalidParameter)
    client.flush()
    run = client.get_run(run_id)
    assert (run.tags, run.params, run.metrics) == ({}, {}, {})
    assert [r.id for r in client.search_runs(project=P)] == [run_id]


def test_the_fluent_api_refuses_loopml_keys(fluent_store: str) -> None:
    """Issue 12 item 5: ``loopml.start_run(tags=...)``, ``set_tag`` and friends refuse too."""
    with pytest.raises(ReservedKeyError):
        loopml.start_run(project=P, tags={MODEL_DIGEST_TAG: "sha256:..."})
    with loopml.start_run(project=P) as run:
        for write in (
            lambda: loopml.set_tag(MODEL_DIGEST_TAG, "x"),
            lambda: loopml.set_tags({MODEL_DIGEST_TAG: "x"}),
            lambda: run.set_tag(MODEL_DIGEST_TAG, "x"),
            lambda: loopml.log_batch(tags={MODEL_DIGEST_TAG: "x"}),
            lambda: loopml.log_param("loopml.x", 1),
            lambda: loopml.log_metric("loopml.x", 1.0),
        ):
            with pytest.raises(ReservedKeyError):
                write()
    assert loopml.get_run(run.id).tags == {}


def test_a_forged_digest_cannot_get_a_hand_made_pickle_registered(
    client: TrackingClient, tmp_path: Path
) -> None:
    """Issue 12 item 5: the registry's runs:/ gate stays closed for a pickle logged by hand."""
    import json
    import pickle

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps(LogisticRegression()))
    (folder / "loopml-model.json").write_text(json.dumps({"flavor": "sklearn"}))
    run_id = client.create_run(project=P, capture_context=False)
    logged = client.log_artifact(run_id, folder, "model")
    with pytest.raises(ReservedKeyError):
        client.set_tag(run_id, MODEL_DIGEST_TAG, logged.digest)
    registry = RegistryClient(client.store, client.artifacts)
    with pytest.raises(UntrustedModelError, match="trust=True"):
        registry.register(f"runs:/{run_id}/model", "m", project=P)


def test_autolog_still_writes_its_digest_and_registers_from_the_run(fluent_store: str) -> None:
    """Issue 12 item 5: loopml's own writer keeps working (autolog → runs:/ register)."""
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    loopml.autolog()
    try:
        with loopml.start_run(project=P) as run:
            LogisticRegression().fit(X, [0, 0, 1, 1])
    finally:
        loopml.autolog(disable=True)
    assert MODEL_DIGEST_TAG in loopml.get_run(run.id).tags
    version = loopml.models.register(f"runs:/{run.id}/model", "m", project=P)
    assert version.source_run_id == run.id


def test_the_internal_writer_writes_only_loopml_keys(client: TrackingClient) -> None:
    run_id = client.create_run(project=P, capture_context=False)
    set_loopml_tags(client, run_id, {"loopml.cached_from": "abc"})
    assert client.get_run(run_id).tags == {"loopml.cached_from": "abc"}
    with pytest.raises(InvalidParameter, match=r"only 'loopml\.' keys"):
        set_loopml_tags(client, run_id, {"stage": "dev"})


_PLAIN = st.from_regex(r"[A-Za-z0-9_.\-/]{1,30}", fullmatch=True)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    key=st.one_of(
        _PLAIN,
        st.builds(
            str.__add__,
            st.sampled_from(["loopml.", "LOOPML.", "Loopml.", "loopml", "loop.ml.", "xloopml."]),
            _PLAIN,
        ),
    )
)
def test_only_the_loopml_prefix_is_reserved(client: TrackingClient, key: str) -> None:
    """Issue 12 item 5: any other key is still accepted as before."""
    run_id = client.create_run(project=P, capture_context=False)
    if key.casefold().startswith("loopml."):
        with pytest.raises(ReservedKeyError):
            client.set_tag(run_id, key, "v")
    else:
        client.set_tag(run_id, key, "v")
        assert client.get_run(run_id).tags == {key: "v"}
