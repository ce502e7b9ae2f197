"""``loopml quickstart``: the sample data, the same bytes every time, nothing overwritten."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
from cli_support import Cli

from loopml.cli._quickstart import FILES


def _digests(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FILES}


def test_writes_the_same_files_every_time(cli: Cli, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b" / "nested"
    result = cli("quickstart", str(first), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files"] == [str(first / name) for name in FILES]
    assert cli("quickstart", str(second)).exit_code == 0
    assert _digests(first) == _digests(second)


def test_the_data_is_realistic_and_the_delivery_has_defects(cli: Cli, tmp_path: Path) -> None:
    assert cli("quickstart", str(tmp_path)).exit_code == 0
    credit = pd.read_csv(tmp_path / "credit.csv")
    delivery = pd.read_parquet(tmp_path / "delivery.parquet")
    assert list(credit.columns) == ["id", "age", "income", "region", "default"]
    assert list(delivery.columns) == list(credit.columns)
    assert credit["id"].is_unique and not set(credit["id"]) & set(delivery["id"])
    assert credit.notna().all().all() and credit["income"].gt(0).all()
    assert 0.1 < credit["default"].mean() < 0.4
    assert delivery["age"].isna().sum() > 0
    assert delivery["income"].lt(0).sum() > 0
    assert set(delivery["region"]) - set(credit["region"]) == {"central"}
    assert delivery["income"].median() > credit["income"].median()


def test_refuses_to_overwrite_unless_forced(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "credit.csv").write_text("mine\n")
    result = cli("quickstart", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "credit.csv" in result.stderr and "--force" in result.stderr
    assert (tmp_path / "credit.csv").read_text() == "mine\n"
    assert not (tmp_path / "delivery.parquet").exists()
    assert cli("quickstart", str(tmp_path), "--force").exit_code == 0
    assert (tmp_path / "credit.csv").read_text().startswith("id,age,income,region,default\n")


def test_a_file_in_place_of_the_folder_is_one_clear_error(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("")
    result = cli("quickstart", str(target))
    assert result.exit_code == 1
    assert "is a file" in result.stderr
