"""Signatures: inference, storage, input conversion and every way enforcement refuses input."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopml.errors import InvalidParameter, ModelError, SignatureError
from loopml.registry._signature import (
    COLUMN_TYPES,
    ColumnSpec,
    Signature,
    as_frame,
    infer_signature,
)

SIG = Signature(
    inputs=(
        ColumnSpec("age", "integer"),
        ColumnSpec("income", "float", nullable=True),
        ColumnSpec("member", "boolean"),
        ColumnSpec("city", "string"),
        ColumnSpec("joined", "datetime"),
    ),
    outputs=(ColumnSpec("prediction", "integer"),),
)


def good() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [31, 40],
            "income": [1000.5, None],
            "member": [True, False],
            "city": ["Oslo", "Lima"],
            "joined": pd.to_datetime(["2020-01-01", "2021-06-30"]),
        }
    )


# --- inference -------------------------------------------------------------------------


def test_infer_types_and_nullability() -> None:
    frame = good().assign(
        small=pd.array([1, None], dtype="Int64"),
        flag=pd.Series([True, None], dtype=object),
        kind=pd.Categorical(["a", "b"]),
        when=pd.to_datetime(pd.Series(["2020-01-01", None])).dt.tz_localize("UTC"),
    )
    sig = infer_signature(frame, np.array([0, 1]))
    assert [(c.name, c.type, c.nullable) for c in sig.inputs] == [
        ("age", "integer", False),
        ("income", "float", True),
        ("member", "boolean", False),
        ("city", "string", False),
        ("joined", "datetime", False),
        ("small", "integer", True),
        ("flag", "boolean", True),
        ("kind", "string", False),
        ("when", "datetime", True),
    ]
    assert sig.outputs == (ColumnSpec("prediction", "integer"),)


def test_infer_outputs() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    assert infer_signature(frame).outputs == ()
    assert infer_signature(frame, pd.Series(["a", None])).outputs == (
        ColumnSpec("prediction", "string", nullable=True),
    )
    proba = np.array([[0.1, 0.9], [0.8, 0.2]])
    assert [c.name for c in infer_signature(frame, proba).outputs] == ["0", "1"]
    labelled = infer_signature(frame, proba, output_names=["no", "yes"]).outputs
    assert labelled == (ColumnSpec("no", "float"), ColumnSpec("yes", "float"))
    outputs = infer_signature(frame, pd.DataFrame({"lo": [1, 2], "hi": [3.0, 4.0]})).outputs
    assert outputs == (ColumnSpec("lo", "integer"), ColumnSpec("hi", "float"))
    with pytest.raises(InvalidParameter, match="'output_names'"):
        infer_signature(frame, proba, output_names=["only"])
    with pytest.raises(ModelError, match="shape"):
        infer_signature(frame, np.zeros((2, 2, 2)))


def test_infer_refuses_what_it_cannot_type() -> None:
    with pytest.raises(ModelError, match=r"column 'm'.*mixed"):
        infer_signature(pd.DataFrame({"m": pd.Series([1, "a"], dtype=object)}))
    with pytest.raises(ModelError, match=r"column 'e'.*only missing values"):
        infer_signature(pd.DataFrame({"e": pd.Series([None, None], dtype=object)}))
    with pytest.raises(ModelError, match=r"column 'd'.*timedelta"):
        infer_signature(pd.DataFrame({"d": pd.to_timedelta([1, 2], unit="s")}))
    with pytest.raises(InvalidParameter, match="'example'"):
        infer_signature(np.zeros((2, 2)))  # type: ignore[arg-type]


# --- storage and construction ----------------------------------------------------------


def test_dict_round_trip() -> None:
    stored = SIG.to_dict()
    assert stored["inputs"][0] == {"name": "age", "type": "integer", "nullable": False}
    assert Signature.from_dict(stored) == SIG
    with pytest.raises(ModelError, match="Not a stored model signature"):
        Signature.from_dict({"inputs": [{"name": "a", "type": "tensor", "nullable": False}]})
    with pytest.raises(ModelError, match="Not a stored model signature"):
        Signature.from_dict({"inputs": [{"name": "a"}]})


def test_construction_is_validated() -> None:
    with pytest.raises(InvalidParameter, match="'type' parameter of ColumnSpec"):
        ColumnSpec("a", "int")
    with pytest.raises(InvalidParameter, match="'name' parameter of ColumnSpec"):
        ColumnSpec("", "float")
    with pytest.raises(InvalidParameter, match="'a' more than once"):
        Signature(inputs=(ColumnSpec("a", "float"), ColumnSpec("a", "integer")))
    listed = Signature(inputs=[ColumnSpec("a", "float")])  # type: ignore[arg-type]
    assert listed.inputs == (ColumnSpec("a", "float"),) and hash(listed)


# --- enforcement -----------------------------------------------------------------------


def test_enforce_orders_drops_and_casts() -> None:
    frame = good()[["joined", "city", "member", "income", "age"]].assign(extra=[1, 2])
    frame["income"] = [1000, 2000]  # ints for a float column are cast
    frame["age"] = [31.0, 40.0]  # whole floats for an integer column are cast
    out = SIG.enforce(frame)
    assert list(out.columns) == SIG.input_names
    assert out["age"].dtype == np.int64 and out["age"].tolist() == [31, 40]
    assert out["income"].dtype == np.float64
    assert out["member"].dtype == bool
    assert out.index.equals(frame.index)


def test_enforce_python_objects_and_nullable_columns() -> None:
    sig = Signature(
        inputs=(
            ColumnSpec("n", "integer", nullable=True),
            ColumnSpec("b", "boolean", nullable=True),
            ColumnSpec("t", "datetime"),
        )
    )
    frame = pd.DataFrame(
        {
            "n": pd.Series([2**60, None, 3.0], dtype=object),
            "b": pd.Series([True, None, np.False_], dtype=object),
            "t": ["2024-01-02", "2024-01-03T04:05:06", dt.date(2024, 1, 4)],
        }
    )
    out = sig.enforce(frame)
    assert str(out["n"].dtype) == "Int64" and out["n"][0] == 2**60 and out["n"].isna()[1]
    assert str(out["b"].dtype) == "boolean"
    assert pd.api.types.is_datetime64_any_dtype(out["t"])
    assert out["t"][1] == pd.Timestamp("2024-01-03 04:05:06")


def test_enforce_names_the_missing_column_and_its_type() -> None:
    with pytest.raises(
        SignatureError, match="column 'age' is missing; the model expects an integer column 'age'"
    ):
        SIG.enforce(good().drop(columns="age"))


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("income", ["1000", "abc"], r"'income' holds '1000' \(str\) at row 0.*a float column"),
        ("age", [31.5, 40.0], r"'age' holds 31\.5.*not a whole number.*an integer column 'age'"),
        ("age", ["31", "40"], r"'age' holds '31'.*an integer column 'age'"),
        ("age", [True, False], r"'age' holds True.*an integer column 'age'"),
        ("income", [True, False], r"'income' holds True.*a float column 'income'"),
        ("member", [1, 0], r"'member' holds 1.*a boolean column 'member'"),
        ("city", [1, 2], r"'city' holds 1.*a string column 'city'"),
        ("city", ["Oslo", 3], r"'city' holds 3 \(int\) at row 1.*a string column 'city'"),
        ("joined", ["2020-01-01", "yesterday"], r"'joined' holds 'yesterday'.*a datetime column"),
        ("joined", [1, 2], r"'joined' holds 1.*a datetime column 'joined'"),
        ("age", [float("inf"), 1.0], r"'age' holds inf.*an integer column 'age'"),
        ("age", [1e30, 1.0], r"'age' holds 1e\+30.*64 bits"),
    ],
)
def test_enforce_refuses_values_of_the_wrong_type(
    column: str, values: list[Any], message: str
) -> None:
    frame = good()
    frame[column] = pd.Series(values, dtype=object if column != "age" else None)
    with pytest.raises(SignatureError, match=message):
        SIG.enforce(frame)


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("age", [31, None]),
        ("age", pd.array([31, None], dtype="Int64")),
        ("member", [True, None]),
        ("city", ["Oslo", None]),
        ("joined", [pd.Timestamp("2020-01-01"), None]),
    ],
)
def test_enforce_refuses_nulls_in_non_nullable_columns(column: str, values: Any) -> None:
    frame = good()
    frame[column] = values
    with pytest.raises(SignatureError, match=rf"'{column}' has 1 missing value \(first at row 1\)"):
        SIG.enforce(frame)


def test_enforce_refuses_duplicates_and_non_frames() -> None:
    frame = pd.concat([good(), good()[["age"]]], axis=1)
    with pytest.raises(SignatureError, match="'age' appears more than once"):
        SIG.enforce(frame)
    with pytest.raises(InvalidParameter, match="as_frame"):
        SIG.enforce({"age": [1]})  # type: ignore[arg-type]
    assert issubclass(SignatureError, ValueError)


def test_enforce_without_inputs_returns_the_frame() -> None:
    frame = good()
    assert Signature(inputs=()).enforce(frame) is frame


# --- as_frame --------------------------------------------------------------------------


def test_as_frame_accepts_the_usual_shapes() -> None:
    sig = Signature(inputs=(ColumnSpec("a", "integer"), ColumnSpec("b", "float")))
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]})
    assert as_frame(frame, sig) is frame
    pd.testing.assert_frame_equal(as_frame({"a": [1, 2], "b": [0.5, 1.5]}, sig), frame)
    pd.testing.assert_frame_equal(as_frame([{"a": 1, "b": 0.5}, {"a": 2, "b": 1.5}], sig), frame)
    pd.testing.assert_frame_equal(as_frame({"a": 1, "b": 0.5}, sig), frame.iloc[:1])
    pd.testing.assert_frame_equal(as_frame([[1, 0.5], [2, 1.5]], sig), frame)
    array = as_frame(np.array([[1.0, 0.5], [2.0, 1.5]]), sig)
    assert list(array.columns) == ["a", "b"]
    pd.testing.assert_frame_equal(sig.enforce(array), frame)
    unnamed: list[object] = list(as_frame(np.zeros((2, 3)), None).columns)
    assert unnamed == [0, 1, 2]
    assert list(as_frame([], sig).columns) == ["a", "b"]
    pa = pytest.importorskip("pyarrow")
    pd.testing.assert_frame_equal(as_frame(pa.Table.from_pandas(frame), sig), frame)


def test_as_frame_refuses_the_wrong_width_and_kind() -> None:
    sig = Signature(inputs=(ColumnSpec("a", "integer"), ColumnSpec("b", "float")))
    with pytest.raises(SignatureError, match=r"3 values; the model expects 2 columns \(a, b\)"):
        as_frame(np.zeros((1, 3)), sig)
    with pytest.raises(SignatureError, match="different lengths"):
        as_frame([[1, 2], [1]], sig)
    with pytest.raises(InvalidParameter, match="2-D array"):
        as_frame(np.zeros(2), sig)
    with pytest.raises(InvalidParameter, match="Got str instead"):
        as_frame("a,b", sig)


# --- property: frames built from a signature always pass -------------------------------

_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "integer": st.integers(-(2**53), 2**53),
    "float": st.floats(allow_nan=False),
    "boolean": st.booleans(),
    "string": st.text(max_size=5),
    "datetime": st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1)),
}


@st.composite
def signatures_and_rows(draw: st.DrawFn) -> tuple[Signature, list[dict[str, Any]]]:
    names = draw(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=5, unique=True))
    specs = tuple(
        ColumnSpec(name, draw(st.sampled_from(COLUMN_TYPES)), draw(st.booleans())) for name in names
    )
    n = draw(st.integers(0, 6))
    rows = [
        {
            s.name: draw(st.none() | _VALUES[s.type] if s.nullable else _VALUES[s.type])
            for s in specs
        }
        for _ in range(n)
    ]
    return Signature(inputs=specs), rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signatures_and_rows(), st.sampled_from(["columns", "records", "rows"]), st.randoms())
def test_frames_built_from_a_signature_pass_enforce(
    case: tuple[Signature, list[dict[str, Any]]], shape: str, random: Any
) -> None:
    sig, rows = case
    names = sig.input_names
    if shape == "columns":
        shuffled = random.sample(names, len(names))
        data: Any = {name: [row[name] for row in rows] for name in shuffled}
    elif shape == "records":
        data = rows
    else:
        data = [[row[name] for name in names] for row in rows]
    out = sig.enforce(as_frame(data, sig))
    assert list(out.columns) == names and len(out) == len(rows)
    for spec in sig.inputs:
        column = out[spec.name]
        expected = [row[spec.name] for row in rows]
        assert [v is None for v in expected] == column.isna().tolist()
        present = [(v, w) for v, w in zip(expected, column, strict=True) if v is not None]
        if spec.type == "datetime":
            assert all(pd.Timestamp(v) == w for v, w in present)
        else:
            assert all(v == w for v, w in present)
        if spec.type == "float":
            assert column.dtype == np.float64
        elif spec.type == "integer":
            assert str(column.dtype) == ("Int64" if spec.nullable else "int64")
        elif spec.type == "boolean":
            assert str(column.dtype) == ("boolean" if spec.nullable else "bool")


def test_errors_name_the_row_label_as_plain_python() -> None:
    frame = good().set_axis(pd.Index([10, 28], dtype="int64"))
    frame["age"] = pd.Series(["31", "x"], index=frame.index, dtype=object)
    with pytest.raises(SignatureError, match=r"at row 10,") as caught:
        SIG.enforce(frame)
    assert "np." not in str(caught.value)
