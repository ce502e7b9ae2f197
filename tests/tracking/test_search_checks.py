"""search_runs answers instead of staying silent, on SQLite and PostgreSQL.

An unknown project is an error, a filter key no run has is a warning, params
compare as numbers against unquoted numbers, and a run id prefix under four
characters is refused as too short.
"""

from __future__ import annotations

import re
import uuid
import warnings
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopml.errors import InvalidParameter, LoopmlWarning, ProjectNotFound, RunNotFound
from loopml.store import NUMBER_PATTERN
from loopml.tracking import TrackingClient

# --- unknown project -----------------------------------------------------------------------


def test_an_unknown_project_is_an_error_naming_it_and_is_not_created(
    client: TrackingClient,
) -> None:
    client.create_run(project="vision")
    with pytest.raises(ProjectNotFound) as caught:
        client.search_runs("visoin")
    message = str(caught.value)
    assert "'visoin'" in message
    assert "did you mean 'vision'?" in message
    assert "loopml projects list" in message
    assert client.list_projects() == ["vision"]
    with pytest.raises(ProjectNotFound, match="there are: 'vision'"):
        client.search_runs("zzz", "metrics.auc > 0")
    assert client.list_projects() == ["vision"]


def test_an_existing_project_without_runs_is_an_empty_answer(client: TrackingClient) -> None:
    run_id = client.create_run(project="vision")
    client.end_run(run_id)
    assert [r.id for r in client.search_runs("vision")] == [run_id]
    assert client.search_runs("vision", "status = 'failed'") == []


# --- unknown filter keys -------------------------------------------------------------------


@pytest.fixture
def logged(client: TrackingClient) -> TrackingClient:
    run_id = client.create_run(
        project="p", params={"learning_rate": 0.1, "C": 1}, tags={"team": "vision"}
    )
    client.log_metric(run_id, "accuracy", 0.93)
    client.end_run(run_id)
    other = client.create_run(project="other", params={"only_here": 1})
    client.log_metric(other, "elsewhere", 1.0)
    client.end_run(other)
    return client


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ("metrics.acuracy > 0.9", r"metrics\.acuracy \(closest: metrics\.accuracy\)"),
        ("params.learning_rat = 0.1", r"params\.learning_rat \(closest: params\.learning_rate\)"),
        ("tags.tema = 'vision'", r"tags\.tema \(closest: tags\.team\)"),
        ("metrics.zzz > 0", r"metrics\.zzz: no run of project 'p' has logged it"),
        # A key of another project, or of another kind, is unknown here.
        ("metrics.elsewhere > 0", r"metrics\.elsewhere"),
        ("metrics.C > 0", r"metrics\.C"),
        ("tags.x is null", r"tags\.x"),
    ],
)
def test_a_key_no_run_has_logged_warns_and_the_search_still_answers(
    logged: TrackingClient, filter_text: str, expected: str
) -> None:
    with pytest.warns(LoopmlWarning, match=expected) as caught:
        runs = logged.search_runs("p", filter_text)
    assert len(caught) == 1
    assert "project 'p'" in str(caught[0].message)
    if "is null" in filter_text:
        assert len(runs) == 1  # a missing key is null on every run
    else:
        assert runs == []


def test_every_unknown_key_is_named_in_one_warning(logged: TrackingClient) -> None:
    text = "metrics.acuracy > 0.9 or (params.learning_rat = 0.1 and not tags.tema = 'x')"
    with pytest.warns(LoopmlWarning) as caught:
        logged.search_runs("p", text)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith("unknown filter keys ")
    for key in ("metrics.acuracy", "params.learning_rat", "tags.tema"):
        assert key in message


def test_known_keys_and_attributes_do_not_warn(logged: TrackingClient) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runs = logged.search_runs(
            "p",
            "metrics.accuracy > 0.9 and params.C = 1 and tags.team = 'vision' "
            "and status = 'finished'",
        )
        assert len(runs) == 1
        assert logged.search_runs("p", "metrics.accuracy > 0.99") == []


# --- numeric params ------------------------------------------------------------------------


@pytest.fixture
def numbers(client: TrackingClient) -> TrackingClient:
    for name, value in [
        ("one-float", "1.0"),
        ("one-int", "1"),
        ("one-padded", "1.00"),
        ("half", "0.5"),
        ("exp", "2e0"),
        ("huge", "1e999"),
        ("word", "rbf"),
        ("nan", "nan"),
        ("blank", ""),
    ]:
        run_id = client.create_run(project="num", name=name, params={"C": value})
        client.end_run(run_id)
    return client


@pytest.mark.parametrize(
    ("filter_text", "names"),
    [
        ("params.C = 1.0", {"one-float", "one-int", "one-padded"}),
        ("params.C = 1", {"one-float", "one-int", "one-padded"}),
        ("params.C == 1e0", {"one-float", "one-int", "one-padded"}),
        ("params.C = '1.0'", {"one-float"}),
        ("params.C = '1'", {"one-int"}),
        ("params.C > 0.5", {"one-float", "one-int", "one-padded", "exp", "huge"}),
        ("params.C <= 1", {"one-float", "one-int", "one-padded", "half"}),
        ("params.C != 1", {"half", "exp", "huge"}),
        ("params.C in (0.5, 2)", {"half", "exp"}),
        ("params.C not in (1, 2)", {"half", "huge"}),
        ("params.C in ('rbf', '1')", {"word", "one-int"}),
        ("params.C = 'rbf'", {"word"}),
        ("params.C = nan", {"nan"}),
        ("not params.C = 1", {"half", "exp", "huge", "word", "nan", "blank"}),
    ],
)
def test_unquoted_numbers_compare_params_as_numbers(
    numbers: TrackingClient, filter_text: str, names: set[str]
) -> None:
    assert {run.name for run in numbers.search_runs("num", filter_text)} == names


def test_tags_compare_as_text_except_for_ordering(client: TrackingClient) -> None:
    for value in ("1", "1.0", "abc"):
        client.set_tag(client.create_run(project="t", name=value), "x", value)
    assert {r.name for r in client.search_runs("t", "tags.x = 1")} == {"1"}
    assert {r.name for r in client.search_runs("t", "tags.x >= 1")} == {"1", "1.0"}


_NUMBER = re.compile(NUMBER_PATTERN)
_TEXTS = st.one_of(
    st.integers(-50, 50).map(str),
    st.builds(lambda n, k: repr(n / 2**k), st.integers(-400, 400), st.integers(0, 4)),
    st.builds(lambda n, k: f"{n / 2**k:.4e}", st.integers(-400, 400), st.integers(0, 4)),
    st.builds(lambda n: f" {n:+d} ", st.integers(-9, 9)),
    st.sampled_from(
        [
            "",
            "1.",
            ".5",
            "-.25",
            "1e999",
            "-1e999",
            "1e-999",
            "0x10",
            "1_0",
            "inf",
            "-inf",
            "nan",
            "NaN",
            "abc",
            "1,5",
            "\u0661",
            "1e",
            "e1",
            "+",
            "-",
            ".",
            "1.2.3",
            "1e1000",
            " ",
        ]
    ),
)


def _oracle(text: str, op: str, number: float) -> bool:
    if _NUMBER.match(text) is None:
        return False
    value, target = Decimal(text.strip()), Decimal(repr(number))
    return {
        "=": value == target,
        "!=": value != target,
        "<": value < target,
        "<=": value <= target,
        ">": value > target,
        ">=": value >= target,
    }[op]


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(_TEXTS, min_size=1, max_size=6, unique=True),
    op=st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
    target=st.builds(lambda n, k: n / 2**k, st.integers(-100, 100), st.integers(0, 3)),
)
def test_numeric_param_comparisons_match_a_decimal_oracle_on_every_back_end(
    client: TrackingClient, texts: list[str], op: str, target: float
) -> None:
    project = f"prop-{abs(hash((tuple(texts), op, target)))}"
    ids = {client.create_run(project=project, params={"v": text}): text for text in texts}
    found = {run.id for run in client.search_runs(project, f"params.v {op} {target!r}")}
    assert found == {run_id for run_id, text in ids.items() if _oracle(text, op, target)}


# --- run id prefixes -----------------------------------------------------------------------


def test_a_prefix_under_four_characters_is_too_short(client: TrackingClient) -> None:
    run_id = client.create_run(project="p")
    for short in (run_id[:1], run_id[:3], "", "zz"):
        with pytest.raises(InvalidParameter, match=r"too short: give at least 4 characters"):
            client.resolve_run_id(short)
    assert client.resolve_run_id(run_id[:4]) == run_id
    assert client.resolve_run_id(run_id) == run_id
    with pytest.raises(RunNotFound):
        client.resolve_run_id("zzzz")


def test_an_ambiguous_prefix_is_still_an_error(
    client: TrackingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Run ids are random; make two share their first eight characters.
    made = iter([uuid.UUID("abcdef01" + "0" * 23 + "1"), uuid.UUID("abcdef01" + "0" * 23 + "2")])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(made))
    first, second = client.create_run(project="p"), client.create_run(project="p")
    monkeypatch.undo()
    with pytest.raises(InvalidParameter, match="names several runs"):
        client.resolve_run_id("abcdef01")
    assert client.resolve_run_id(first[:-1] + "1") == first
    assert client.resolve_run_id(second) == second
