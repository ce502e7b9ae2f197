"""Which schema revision a validation uses: the newest, or the one in force for a version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from loopml.artifacts import ArtifactStore
from loopml.data import ColumnSchema, DataClient, expect
from loopml.errors import DatasetNotFound
from loopml.store import open_store


@pytest.fixture
def data(store_uri: str, tmp_path: Path) -> Iterator[DataClient]:
    store = open_store(store_uri)
    yield DataClient(store, ArtifactStore.from_uri(str(tmp_path / "artifacts")))
    store.close()


def _x(*values: int) -> pd.DataFrame:
    return pd.DataFrame({"x": list(values)})


def test_validating_against_a_version_uses_its_schema_revision(data: DataClient) -> None:
    """Issue 12 item 18b: validating against ``name:N`` used the newest schema revision; it
    now uses the revision in force when version N was registered."""
    v1 = data.register("d", _x(0, 10), project="p")  # revision 1 is inferred from it: [0, 10]
    assert v1.schema_revision is None
    _, schema, _ = data.get_schema("d", project="p")
    narrow = schema.with_column(ColumnSchema("x", "int64", min=0, max=5))
    assert data.save_schema("d", project="p", schema=narrow) == 2
    v2 = data.register("d", _x(1, 2), project="p")
    assert v2.schema_revision == 2
    assert data.save_schema("d", project="p", expectations=[expect.row_count(min=3)]) == 3

    delivery = _x(8, 9)
    first = data.validate(delivery, against="d:1", project="p")
    assert (first.against, first.passed) == ("d@schema:1", True)
    second = data.validate(delivery, against="d:2", project="p")
    assert (second.against, second.passed) == ("d@schema:2", False)
    assert [c.kind for c in second.checks if not c.passed] == ["in_range"]
    for newest in ("d", "d@latest"):
        report = data.validate(delivery, against=newest, project="p")
        assert report.against == "d@schema:3"
        assert [c.kind for c in report.checks if not c.passed] == ["in_range", "row_count"]


def test_validating_against_a_missing_version_names_it(data: DataClient) -> None:
    data.register("d", _x(1), project="p")
    with pytest.raises(DatasetNotFound, match="no version 7"):
        data.validate(_x(1), against="d:7", project="p")
