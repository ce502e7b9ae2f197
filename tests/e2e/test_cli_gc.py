"""``loopml gc``: dry run by default, --yes deletes, grace from LOOPML_GC_GRACE."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import Cli, Seeded

from loopml.tracking import TrackingClient


def _orphan(sdk: TrackingClient) -> str:
    return sdk.artifacts.put_bytes(b"nobody refers to me" * 10)


def test_young_orphans_are_kept_by_default(cli: Cli, seeded: Seeded, sdk: TrackingClient) -> None:
    digest = _orphan(sdk)
    result = cli("gc", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dry_run"] is True
    assert report["grace_seconds"] == 3600
    assert report["unreferenced"] == []
    assert report["kept_young"] == 1
    assert sdk.artifacts.exists(digest)


def test_grace_comes_from_the_setting(cli: Cli, seeded: Seeded, sdk: TrackingClient) -> None:
    _orphan(sdk)
    report = json.loads(cli("gc", "--json", env={"LOOPML_GC_GRACE": "0.000001"}).stdout)
    assert report["grace_seconds"] == 0.000001
    assert len(report["unreferenced"]) == 1


def test_dry_run_then_delete(cli: Cli, seeded: Seeded, sdk: TrackingClient, tmp_path: Path) -> None:
    digest = _orphan(sdk)
    dry = cli("gc", "--grace", "0")
    assert dry.exit_code == 0, dry.output
    assert digest in dry.stdout
    assert "1 unreferenced blob(s), 190 B, would be deleted" in dry.stdout
    assert "rerun with --yes" in dry.stdout
    assert sdk.artifacts.exists(digest)

    done = cli("gc", "--grace", "0", "--yes")
    assert done.exit_code == 0, done.output
    assert "1 unreferenced blob(s), 190 B, deleted" in done.stdout
    assert not sdk.artifacts.exists(digest)

    again = json.loads(cli("gc", "--grace", "0", "--json").stdout)
    assert again["unreferenced"] == [] and again["reclaimable_bytes"] == 0
    # Referenced artifacts survive, files and folders alike.
    got = cli("artifacts", "get", seeded.good, "model", "--dest", str(tmp_path / "m"))
    assert got.exit_code == 0, got.output
    assert (tmp_path / "m" / "model" / "sub" / "config.json").exists()
