"""Credentials in a source URL open the data but are never stored or shown."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pandas as pd
import pytest
from sqlalchemy import select

from loopml.artifacts import ArtifactStore
from loopml.data import ColumnSchema, DataClient, DatasetSchema
from loopml.data._profile import build_profile
from loopml.data._sources import open_source
from loopml.errors import DataSourceError
from loopml.store import open_store, tables

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def data(store_uri: str, tmp_path: Path) -> Iterator[DataClient]:
    store = open_store(store_uri)
    yield DataClient(store, ArtifactStore.from_uri(str(tmp_path / "artifacts")))
    store.close()


@pytest.fixture
def bucket() -> Iterator[str]:
    """A fresh in-memory bucket, read through URLs that carry a key and a secret."""
    name = f"bucket-{uuid.uuid4().hex[:8]}"
    yield name
    fs = fsspec.filesystem("memory")
    for path in fs.find(f"/AKIAKEY:{SECRET}@{name}"):
        fs.rm(path)


def _write_csv(url: str, frame: pd.DataFrame) -> None:
    with fsspec.open(url, "w") as handle:
        frame.to_csv(handle, index=False)


def test_source_url_credentials_are_never_stored_or_shown(data: DataClient, bucket: str) -> None:
    """Issue 12 item 16: ``memory://KEY:SECRET@bucket/x.csv`` was stored and printed verbatim;
    the data is still read through the real URL, but the version, its stored row, the
    stored report, the HTML report and reprs show ``KEY:***@``."""
    url = f"memory://AKIAKEY:{SECRET}@{bucket}/x.csv"
    shown = f"memory://AKIAKEY:***@{bucket}/x.csv"
    _write_csv(url, pd.DataFrame({"x": [1, 2, 3]}))
    v1 = data.register("d", url, project="p")
    assert v1.row_count == 3
    assert v1.source == shown
    assert SECRET not in repr(v1)
    data.save_schema("d", project="p", schema=DatasetSchema((ColumnSchema("x", "int64", max=2),)))
    _write_csv(url, pd.DataFrame({"x": [1, 2, 3, 4]}))
    v2 = data.register("d", url, project="p")
    with data.store.read() as conn:
        stored = conn.execute(select(tables.DATASET_VERSION.c.source)).scalars().all()
    assert stored == [shown, shown]
    report = data.report(v2.ref, project="p")
    assert report is not None and not report.passed
    assert report.source == shown
    assert v2.report_digest is not None
    assert SECRET not in data.artifacts.get_bytes(v2.report_digest).decode()
    validated = data.validate(url, against="d", project="p")
    assert validated.source == shown
    source = open_source(url)
    html = validated.to_html(build_profile(source.batches, source.schema))
    assert SECRET not in html and SECRET not in repr(source) and SECRET not in repr(validated)


@pytest.mark.parametrize(
    ("path", "fmt", "message"),
    [
        ("absent.csv", None, "no such file or folder"),
        ("x.csv", "parquet", "not a readable Parquet file"),
        ("x.txt", None, "unknown format"),
        ("folder", None, "holds no Parquet files"),
    ],
)
def test_source_errors_never_show_the_secret(
    bucket: str, path: str, fmt: str | None, message: str
) -> None:
    """Issue 12 item 16: errors about a source name its URL without its credentials."""
    base = f"memory://AKIAKEY:{SECRET}@{bucket}"
    _write_csv(f"{base}/x.csv", pd.DataFrame({"x": [1]}))
    _write_csv(f"{base}/x.txt", pd.DataFrame({"x": [1]}))
    _write_csv(f"{base}/folder/notes.csv", pd.DataFrame({"x": [1]}))
    with pytest.raises(DataSourceError, match=message) as caught:
        open_source(f"{base}/{path}", format=fmt)
    assert SECRET not in str(caught.value)
    assert f"AKIAKEY:***@{bucket}" in str(caught.value)
    assert caught.value.__cause__ is None or SECRET not in str(caught.value.__cause__)


def test_errors_while_streaming_never_show_the_secret(bucket: str) -> None:
    """Issue 12 item 16: a read that fails part-way names the URL without its credentials."""
    url = f"memory://AKIAKEY:{SECRET}@{bucket}/mixed.jsonl"
    rows = ['{"x": 1}'] * 1_200_000 + ['{"x": "text"}']  # past the first 8 MiB block
    with fsspec.open(url, "w") as handle:
        handle.write("\n".join(rows))
    source = open_source(url)
    with pytest.raises(DataSourceError, match="mixed types") as caught:
        for _ in source.batches():
            pass
    assert SECRET not in str(caught.value)


def test_query_string_secrets_are_not_stored(data: DataClient, bucket: str) -> None:
    """Issue 12 item 16: a presigned-style query string keeps its names, loses its values."""
    folder = f"memory://{bucket}/signed"
    _write_csv(f"{folder}/x.csv", pd.DataFrame({"x": [1]}))
    # fsspec's memory filesystem takes the query as part of the path: the object
    # "x.csv?X-Amz-Signature=…" exists under the real URL.
    url = f"{folder}/y.csv?X-Amz-Signature={SECRET}"
    _write_csv(url, pd.DataFrame({"x": [1]}))
    version = data.register("q", url, project="p", format="csv")
    assert version.source == f"{folder}/y.csv?X-Amz-Signature=***"
