"""Stored checks are data, not code: custom checks by registered name, bounded rules."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from loopml.artifacts import ArtifactStore
from loopml.data import DataClient, expect, expectations_from_yaml, register_check
from loopml.data._expectations import Custom
from loopml.data._normalize import normalize_table
from loopml.data._rules import MAX_CONSTANT_BITS, MAX_EXPONENT, MAX_RULE_CHARS
from loopml.data._schema import dump_yaml
from loopml.data._validate import validate_batches
from loopml.errors import InvalidParameter, SchemaError, UntrustedCheckError
from loopml.store import open_store, tables


@pytest.fixture
def data(store_uri: str, tmp_path: Path) -> Iterator[DataClient]:
    store = open_store(store_uri)
    yield DataClient(store, ArtifactStore.from_uri(str(tmp_path / "artifacts")))
    store.close()


def _store_expectations(data: DataClient, name: str, entries: list[dict[str, object]]) -> None:
    """Write an expectations revision straight into the store, as an older loopml (or a
    teammate with write access to the database) could have, bypassing save_schema."""
    schema = tables.DATASET_SCHEMA
    with data.store.write() as conn:
        latest = conn.execute(
            select(schema)
            .join(tables.DATASET, tables.DATASET.c.id == schema.c.dataset_id)
            .where(tables.DATASET.c.name == name)
            .order_by(schema.c.revision.desc())
            .limit(1)
        ).one()
        conn.execute(
            schema.insert().values(
                dataset_id=latest.dataset_id,
                revision=latest.revision + 1,
                schema_yaml=latest.schema_yaml,
                expectations_yaml=dump_yaml({"version": 1, "expectations": entries}),
                author="someone",
                created_at=latest.created_at,
            )
        )


def _marker_frame(marker: Path) -> pd.DataFrame:
    # subprocess.getoutput(frame) runs ``sh -c`` with the frame's column names as arguments.
    return pd.DataFrame({f"touch {marker}": [1, 2, 3]})


def test_stored_custom_check_by_import_path_never_runs_without_trust(
    data: DataClient, tmp_path: Path
) -> None:
    """Issue 12 item 8: a stored ``custom`` check of ``subprocess:getoutput`` used to run a
    shell command for whoever validated; now it is refused unless the caller trusts it."""
    marker = tmp_path / "pwned"
    frame = _marker_frame(marker)
    data.register("shell", frame, project="p")
    _store_expectations(data, "shell", [{"kind": "custom", "function": "subprocess:getoutput"}])
    with pytest.raises(UntrustedCheckError, match=r"subprocess:getoutput.*register_check"):
        data.validate(frame, against="shell", project="p")
    with pytest.raises(UntrustedCheckError, match="trust=True"):
        data.register("shell", frame.assign(extra=1), project="p", strict=True)
    assert not marker.exists()
    assert [v.version for v in data.list_versions("shell", project="p")] == [1]


def test_stored_custom_check_module_is_not_even_imported(
    data: DataClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12 item 8: reading or validating a schema that names ``module:function`` does
    not import the module (an import runs its top-level code)."""
    module = f"lp_evil_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "imported"
    (tmp_path / f"{module}.py").write_text(
        f"open({str(marker)!r}, 'w').close()\ndef check(frame):\n    return True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    frame = pd.DataFrame({"x": [1, 2]})
    data.register("plain", frame, project="p")
    _store_expectations(data, "plain", [{"kind": "custom", "function": f"{module}:check"}])
    data.get_schema("plain", project="p")
    with pytest.raises(UntrustedCheckError):
        data.validate(frame, against="plain@latest", project="p")
    assert not marker.exists()
    assert module not in sys.modules
    # An explicit trust imports and runs it.
    assert data.validate(frame, against="plain", project="p", trust=True).passed
    assert marker.exists()


def test_registered_check_runs_by_its_name(data: DataClient) -> None:
    """Issue 12 item 8: checks registered in the process are saved and found by name."""

    @register_check("tests.trust.small_x")
    def small_x(frame: pd.DataFrame) -> pd.Series:
        return frame["x"] < 10

    data.register("named", pd.DataFrame({"x": [1, 2]}), project="p")
    data.save_schema("named", project="p", expectations=[expect.custom(small_x)])
    _, _, stored = data.get_schema("named", project="p")
    assert stored == [Custom(function="tests.trust.small_x")]
    report = data.validate(pd.DataFrame({"x": [1, 20, 30]}), against="named", project="p")
    [check] = [c for c in report.checks if c.kind == "custom"]
    assert (check.name, check.passed, check.failing_count) == (
        "custom(tests.trust.small_x)",
        False,
        2,
    )


def test_unregistered_check_name_is_a_clear_error(data: DataClient) -> None:
    frame = pd.DataFrame({"x": [1]})
    data.register("ghost", frame, project="p")
    _store_expectations(data, "ghost", [{"kind": "custom", "function": "nobody.registered.me"}])
    with pytest.raises(SchemaError, match=r"register_check\('nobody.registered.me'\)"):
        data.validate(frame, against="ghost", project="p", trust=True)


def test_trusted_path_that_does_not_import_names_it(data: DataClient) -> None:
    frame = pd.DataFrame({"x": [1]})
    data.register("broken", frame, project="p")
    _store_expectations(data, "broken", [{"kind": "custom", "function": "no_such_module_x:f"}])
    with pytest.raises(SchemaError, match="cannot be imported"):
        data.validate(frame, against="broken", project="p", trust=True)
    _store_expectations(data, "broken", [{"kind": "custom", "function": "os:sep"}])
    with pytest.raises(SchemaError, match="not a callable"):
        data.validate(frame, against="broken", project="p", trust=True)


def test_register_check_refuses_bad_names_and_clashes() -> None:
    with pytest.raises(InvalidParameter, match="register_check"):
        register_check("pkg.mod:function")
    register_check("tests.trust.clash", len)
    register_check("tests.trust.clash", len)  # the same function again is fine
    with pytest.raises(InvalidParameter, match="already registered"):
        register_check("tests.trust.clash", sum)


def test_rule_with_unbounded_power_is_refused_not_evaluated(tmp_path: Path) -> None:
    """Issue 12 item 8: ``a > 9**9**9`` used to hang the validating process; a stored rule
    like it is now refused before any data is read. Run in a child process with a
    generous deadline, so old code fails this test instead of hanging the suite."""
    home = tmp_path / "home"
    script = f"""
import pandas as pd
from loopml.artifacts import ArtifactStore
from loopml.data import DataClient
from loopml.data._schema import dump_yaml
from loopml.data._validate import validate_batches
from loopml.errors import SchemaError
from loopml.store import open_store, tables
from sqlalchemy import select

store = open_store("sqlite:///{home}/loopml.db")
data = DataClient(store, ArtifactStore.from_uri("{home}/artifacts"))
frame = pd.DataFrame({{"a": [1, 2]}})
data.register("d", frame, project="p")
with store.write() as conn:
    conn.execute(tables.DATASET_SCHEMA.update().values(expectations_yaml=dump_yaml(
        [{{"kind": "expression", "rule": "a > 9**9**9"}}])))
try:
    data.validate(frame, against="d", project="p")
except SchemaError as exc:
    print("refused:", exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "'**'" in done.stdout, done.stdout


# --- rules: random input is refused or runs, never hangs -------------------------------

_COLUMNS = ["a", "b", "`c d`"]
_SAFE_ATOMS = st.sampled_from(_COLUMNS) | st.integers(-1000, 1000).map(str)


def _safe_rule() -> st.SearchStrategy[str]:
    """Rules within every limit: small literals, small exponents, no nested powers."""

    def grow(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        binary = st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "%"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        )
        power = st.tuples(st.sampled_from(_COLUMNS), st.integers(0, 4)).map(
            lambda t: f"({t[0]} ** {t[1]})"
        )
        return binary | power

    arithmetic = st.recursive(_SAFE_ATOMS, grow, max_leaves=6)
    return st.tuples(arithmetic, st.sampled_from(["<", "<=", "==", "!=", ">"]), arithmetic).map(
        lambda t: f"{t[0]} {t[1]} {t[2]}"
    )


def _costly_rule() -> st.SearchStrategy[str]:
    """Rules that break a limit: each would be slow, huge or code if accepted."""
    big = st.integers(2**64, 2**200).map(str)
    exponent = st.integers(MAX_EXPONENT + 1, 10**12).map(str)
    tower = st.lists(st.integers(2, 99).map(str), min_size=3, max_size=6).map("**".join)
    literal_power = st.tuples(
        st.integers(2**32, 2**63), st.integers(MAX_CONSTANT_BITS // 32 + 1, MAX_EXPONENT)
    ).map(lambda t: f"{t[0]}**{t[1]}")
    text_times = st.integers(10**6, 10**18).map(lambda n: f"'x' * {n}")
    list_times = st.integers(10**6, 10**18).map(lambda n: f"[1] * {n}")
    code = st.sampled_from(
        ["__import__('os')", "a.__class__", "a[0]", "(lambda: 1)()", "[x for x in a]", "@a"]
    )
    long = st.integers(MAX_RULE_CHARS // 4 + 1, 2 * MAX_RULE_CHARS).map(
        lambda n: " + ".join(["a"] * n)
    )
    deep = st.integers(40, 400).map(lambda n: "-" * n + "a")
    bad = st.one_of(
        big,
        st.sampled_from(_COLUMNS).flatmap(lambda c: exponent.map(lambda e: f"{c} ** {e}")),
        tower,
        literal_power,
        text_times,
        list_times,
        code,
        long,
        deep,
    )
    side = st.sampled_from(_COLUMNS)
    return st.tuples(side, st.sampled_from(["<", ">", "=="]), bad, st.booleans()).map(
        lambda t: f"{t[0]} {t[1]} {t[2]}" if t[3] else f"{t[2]} {t[1]} {t[0]}"
    )


def _yaml_rule(rule: str) -> str:
    return dump_yaml([{"kind": "expression", "rule": rule}])


@settings(max_examples=150, deadline=None)
@given(rule=_costly_rule())
def test_costly_or_code_rules_are_refused_when_read(rule: str) -> None:
    """Issue 12 item 8: random rules past a limit are refused with a SchemaError when read
    (so never evaluated)."""
    with pytest.raises(SchemaError, match=r"Expectation #1 .*\(expression\).* rule "):
        expectations_from_yaml(_yaml_rule(rule))


_FRAME = pd.DataFrame({"a": [1, -2, 3, 0], "b": [0.5, 2.0, -1.0, 4.0], "c d": [7, 8, 9, 10]})


@settings(max_examples=150, deadline=None)
@given(rule=_safe_rule())
def test_rules_within_the_limits_are_accepted_and_evaluate(rule: str) -> None:
    [expectation] = expectations_from_yaml(_yaml_rule(rule))
    table = normalize_table(pa.Table.from_pandas(_FRAME, preserve_index=False))
    report = validate_batches(table.to_batches(), None, [expectation], "t")
    [check] = report.checks
    assert check.kind == "expression"
