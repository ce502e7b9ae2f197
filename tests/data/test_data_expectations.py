"""Each expectation kind, passing and failing, and the expectations' YAML form."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from loopml.data import register_check
from loopml.data._expect import expect, expectations_from_yaml, expectations_to_yaml
from loopml.data._expectations import Custom, Expectation
from loopml.data._normalize import normalize_table
from loopml.data._report import CheckResult
from loopml.data._validate import validate_batches
from loopml.errors import InvalidParameter, SchemaError

NOW = dt.datetime.now(dt.UTC)


@register_check("tests.positive_balance")
def positive_balance(frame: pd.DataFrame) -> pd.Series:
    """A custom check registered as ``tests.positive_balance``."""
    return frame["balance"] >= 0


def always_true(frame: pd.DataFrame) -> bool:
    return True


@pytest.fixture
def table() -> pa.Table:
    return normalize_table(
        pa.table(
            {
                "id": [1, 2, 3, 3, 5, 1],
                "age": [18, 130, None, 40, -1, 22],
                "state": ["CA", "NY", "XX", "CA", None, "TX"],
                "email": ["a@x.io", "bad", "c@y.org", None, "e@z.com", "nope"],
                "start": [1, 5, 3, 4, 9, 2],
                "end": [2, 4, 3, None, 8, 2],
                "balance": [10.0, -5.0, 0.0, 3.0, -1.0, None],
                "updated_at": pa.array(
                    [NOW - dt.timedelta(hours=h) for h in (48, 30, 5, 4, 3, 2)],
                    pa.timestamp("ns", "UTC"),
                ),
            }
        )
    )


def check(table: pa.Table, expectation: Expectation, chunk: int = 4) -> CheckResult:
    report = validate_batches(table.to_batches(max_chunksize=chunk), None, [expectation], "t")
    (result,) = report.checks
    assert report.passed is result.passed
    return result


def rows(result: CheckResult) -> list[int]:
    return [r["row"] for r in result.failing_sample]


def test_range(table: pa.Table) -> None:
    failed = check(table, expect.between("age", 0, 120))
    assert (failed.passed, failed.failing_count, rows(failed)) == (False, 2, [1, 4])
    assert [r["value"] for r in failed.failing_sample] == [130, -1]
    assert failed.kind == "range" and failed.column == "age"
    assert check(table, expect.between("age", -1, 130)).passed
    assert check(table, expect.between("age", max=200)).passed


def test_in_set(table: pa.Table) -> None:
    failed = check(table, expect.in_set("state", ["CA", "NY"]))
    assert (failed.failing_count, rows(failed)) == (2, [2, 5])  # the missing value passes
    assert check(table, expect.in_set("state", ["CA", "NY", "XX", "TX"])).passed


def test_regex(table: pa.Table) -> None:
    failed = check(table, expect.matches("email", r"^[^@]+@[^@]+\.[a-z]+$"))
    assert (failed.failing_count, rows(failed)) == (2, [1, 5])
    assert failed.failing_sample[0] == {"row": 1, "value": "bad"}
    assert check(table, expect.matches("state", r"^[A-Z]{2}$")).passed


def test_unique_across_batches(table: pa.Table) -> None:
    failed = check(table, expect.unique("id"), chunk=2)
    # row 3 repeats row 2 (same batch), row 5 repeats row 0 (three batches earlier)
    assert (failed.failing_count, rows(failed)) == (2, [3, 5])
    assert failed.failing_sample[1] == {"row": 5, "value": 1}
    assert check(table, expect.unique("start")).passed
    assert check(table, expect.unique("id", "state")).passed
    pairs = normalize_table(pa.table({"a": [1, 1, 1, None], "b": ["x", "y", "x", "x"]}))
    pair = check(pairs, expect.unique("a", "b"), chunk=2)
    assert (pair.failing_count, rows(pair)) == (1, [2])  # a missing key is not compared
    assert pair.column is None and pair.failing_sample[0]["values"] == {"a": 1, "b": "x"}


def test_not_null_rate(table: pa.Table) -> None:
    failed = check(table, expect.not_null_rate("email", min_rate=0.9))
    assert (failed.passed, failed.failing_count, rows(failed)) == (False, 1, [3])
    assert "0.8333" in failed.message
    assert check(table, expect.not_null_rate("email", min_rate=0.8)).passed
    with pytest.raises(InvalidParameter, match="min_rate"):
        expect.not_null_rate("email", min_rate=1.5)


def test_row_count(table: pa.Table) -> None:
    assert check(table, expect.row_count(min=6, max=6)).passed
    failed = check(table, expect.row_count(min=1000))
    assert not failed.passed and failed.failing_count == 0 and "6 rows" in failed.message
    assert not check(table, expect.row_count(max=5)).passed


def test_freshness(table: pa.Table) -> None:
    assert check(table, expect.fresh("updated_at", max_age="1d")).passed
    assert check(table, expect.fresh("updated_at", max_age=dt.timedelta(hours=3))).passed
    assert not check(table, expect.fresh("updated_at", max_age="30m")).passed
    with pytest.raises(InvalidParameter, match="max_age"):
        expect.fresh("updated_at", max_age="soon")


def test_naive_timestamps_count_as_utc() -> None:
    naive = NOW.replace(tzinfo=None) - dt.timedelta(minutes=5)
    table = normalize_table(pa.table({"ts": pa.array([naive], pa.timestamp("us"))}))
    assert check(table, expect.fresh("ts", "1h")).passed


def test_expression(table: pa.Table) -> None:
    failed = check(table, expect.rule("start <= end"))
    # row 3 has no end: not judged
    assert (failed.failing_count, rows(failed)) == (2, [1, 4])
    assert failed.failing_sample[0] == {"row": 1, "values": {"start": 5, "end": 4}}
    assert check(table, expect.rule("start <= end + 1 or start == 9")).passed
    assert check(table, expect.rule("(start > 0) & (start < 10)")).passed


def test_expression_with_spaced_column_name() -> None:
    table = normalize_table(pa.table({"unit price": [1.0, 2.0], "cost": [0.5, 3.0]}))
    failed = check(table, expect.rule("`unit price` >= cost"))
    assert (failed.failing_count, rows(failed)) == (1, [1])


@pytest.mark.parametrize(
    "rule",
    [
        "__import__('os').system('true')",
        "start.abs() > 0",
        "start[0] > 1",
        "lambda: 1",
        "a <=",
        "a = 1",
        "@start > 1",
    ],
)
def test_expression_refuses_code(rule: str) -> None:
    with pytest.raises(InvalidParameter, match="rule"):
        expect.rule(rule)


def test_custom(table: pa.Table) -> None:
    failed = check(table, expect.custom(positive_balance))
    # NaN >= 0 is False: the function decides about missing values
    assert (failed.failing_count, rows(failed)) == (3, [1, 4, 5])
    assert failed.failing_sample[0]["values"]["balance"] == -5.0
    whole = check(table, expect.custom(lambda f: len(f) < 3, name="small batches"), chunk=4)
    assert (whole.name, whole.passed, whole.failing_count) == ("small batches", False, 4)
    assert check(table, expect.custom(always_true)).passed


def test_missing_column_fails_without_crashing(table: pa.Table) -> None:
    for expectation in (
        expect.between("nope", 0, 1),
        expect.unique("nope"),
        expect.rule("nope > 1"),
        expect.fresh("nope", "1d"),
    ):
        result = check(table, expectation)
        assert not result.passed and "nope" in result.message


def test_sample_is_bounded_with_global_row_numbers() -> None:
    table = normalize_table(pa.table({"x": list(range(100))}))
    failed = check(table, expect.between("x", max=49), chunk=7)
    assert failed.failing_count == 50
    assert rows(failed) == list(range(50, 60))


def test_factory_validation() -> None:
    with pytest.raises(InvalidParameter, match="regular expression"):
        expect.matches("email", "(")
    with pytest.raises(InvalidParameter, match="min"):
        expect.between("age")
    with pytest.raises(InvalidParameter, match="at least one column"):
        expect.unique()


ALL: list[Expectation] = [
    expect.between("age", 0, 120, name="adult age"),
    expect.in_set("state", ["CA", "NY"]),
    expect.matches("email", r"^\S+@\S+$"),
    expect.unique("id"),
    expect.unique("id", "state"),
    expect.not_null_rate("income", min_rate=0.95),
    expect.row_count(min=1000),
    expect.fresh("updated_at", max_age="1d"),
    expect.rule("start <= end"),
    expect.custom(positive_balance),
]


def test_yaml_round_trip() -> None:
    text = expectations_to_yaml(ALL)
    for alias in ("range", "in_set", "regex", "unique", "not_null_rate", "row_count"):
        assert f"kind: {alias}\n" in text
    assert "function: tests.positive_balance\n" in text
    loaded = expectations_from_yaml(text)
    # A stored custom check keeps its name until a validation resolves it.
    assert loaded[:-1] == ALL[:-1]
    assert loaded[-1] == Custom(function="tests.positive_balance")
    assert loaded[-1].resolved(trust=False) == Custom(
        function=positive_balance, name="custom(tests.positive_balance)"
    )


def test_yaml_accepts_a_bare_list() -> None:
    loaded = expectations_from_yaml("- {kind: range, column: age, min: 0}\n- kind: row_count\n")
    assert loaded == [expect.between("age", 0), expect.row_count()]
    assert expectations_from_yaml("") == []


def test_lambda_cannot_be_saved() -> None:
    with pytest.raises(SchemaError, match="cannot be saved"):
        expectations_to_yaml([expect.custom(lambda f: True)])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("- kind: range\n  column: a\n  min: [\n", "does not parse"),
        ("kind: range\n", "must hold a list"),
        ("expectations: {kind: range}\n", r"must hold a list.*\(line 1\)"),
        ("- {kind: range, column: a, min: 0}\n- {kind: nope}\n", r"#2 \(line 2\).*unknown kind"),
        ("- {kind: range, column: a, mn: 0}\n", r"#1 \(line 1\).*unknown field.*mn"),
        ("- {kind: range, column: a}\n", r"#1.*needs 'min', 'max'"),
        ("- {kind: regex, column: a, pattern: '('}\n", r"#1.*regular expression"),
        ("- {kind: in_set}\n", r"#1.*invalid"),
        ("- {kind: row_count, min: many}\n", r"#1.*integers"),
        ("- just text\n", r"#1.*must be a mapping"),
        ("- {kind: custom, function: 'not a name'}\n", r"#1.*registered with"),
        ("- {kind: expression, rule: 'open(\"f\")'}\n", r"#1.*Call is not allowed"),
    ],
)
def test_broken_yaml_names_the_entry(text: str, match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        expectations_from_yaml(text)


def test_entries_are_reusable_across_validations(table: pa.Table) -> None:
    unique = expect.unique("id")
    first = check(table, unique)
    second = check(table, unique)
    assert first == second


def test_a_rule_that_cannot_be_evaluated_fails_with_a_reason(table: pa.Table) -> None:
    result = check(table, expect.between("state", 0, 10))
    assert not result.passed and "could not be evaluated: TypeError" in result.message
