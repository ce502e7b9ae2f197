"""``loopml quickstart [DIR]``: write the small sample data the README and the docs use.

Three files, the same bytes on every machine (a seeded NumPy generator, no
download):

- ``credit.csv``: 2,000 loan applicants: ``id`` (the key), ``age``, ``income``
  (monthly), ``region`` and ``default`` (the 0/1 target, driven by age and income).
- ``delivery.parquet``: a second delivery of 500 new applicants from the same
  population, with the defects a real feed has: incomes up 15 % (a drift), a few
  missing ages, a few negative incomes (a sign bug) and a region never seen before.
- ``flows.py``: a training pipeline on ``credit.csv`` (load → split → train → score).

Existing files are never overwritten unless ``--force`` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from loopml.cli._output import out, print_json

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

__all__ = ["FILES", "credit_frame", "delivery_frame", "quickstart"]

FILES = ("credit.csv", "delivery.parquet", "flows.py")
"""The files ``loopml quickstart`` writes, in order."""

_SEED = 13
_ROWS = 2_000
_DELIVERY_ROWS = 500
_REGIONS = ("north", "south", "east", "west")
_REGION_SHARES = (0.35, 0.30, 0.20, 0.15)
_MEDIAN_INCOME = 3_200.0

_FLOWS = '''\
"""A training pipeline on the quickstart's credit data: load -> split -> train -> score.

Run it with `loopml pipelines run flows.py:training --param C=0.5`. Steps run in
worker processes; a step whose code, inputs and parameters are unchanged is cached.
"""

from pathlib import Path

import loopml
import loopml.data

DATA = Path(__file__).resolve().parent / "credit.csv"
FEATURES = ["age", "income"]


@loopml.step
def load() -> loopml.data.DatasetVersion:
    """Register credit.csv (identical data is the same version)."""
    return loopml.data.register("credit", DATA, key=["id"])


@loopml.step(outputs=("train_set", "test_set"))
def split(dataset: loopml.data.DatasetVersion, seed: int):
    """Split 80/20, stratified on the target, the same way every time."""
    parts = loopml.data.split(
        dataset.ref, {"train": 0.8, "test": 0.2}, seed=seed, stratify="default"
    )
    return parts["train"], parts["test"]


@loopml.step
def train(train_set: loopml.data.DatasetVersion, C: float):
    """A scaled logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = loopml.data.load(train_set.ref)
    loopml.log_params({"model": "logistic_regression", "C": C})
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C))
    return model.fit(frame[FEATURES], frame["default"])


@loopml.step
def score(model, test_set: loopml.data.DatasetVersion) -> float:
    """Test AUC, logged on this step's run."""
    from sklearn.metrics import roc_auc_score

    frame = loopml.data.load(test_set.ref)
    auc = float(roc_auc_score(frame["default"], model.predict_proba(frame[FEATURES])[:, 1]))
    loopml.log_metric("test_auc", auc)
    return auc


@loopml.pipeline
def training(C: float = 1.0, seed: int = 42):
    train_set, test_set = split(load(), seed=seed)
    score(train(train_set, C=C), test_set)
'''


def credit_frame() -> pd.DataFrame:
    """The applicants of ``credit.csv``: the same rows on every machine."""
    import numpy as np

    rng = np.random.default_rng(_SEED)
    return _applicants(rng, np.arange(1, _ROWS + 1), income_factor=1.0)


def delivery_frame() -> pd.DataFrame:
    """The second delivery: new applicants with a drift and a few defects (see the module)."""
    import numpy as np

    rng = np.random.default_rng(_SEED + 1)
    ids = np.arange(_ROWS + 1, _ROWS + _DELIVERY_ROWS + 1)
    frame = _applicants(rng, ids, income_factor=1.15)
    missing_age = rng.choice(len(frame), 8, replace=False)
    frame["age"] = frame["age"].astype("Int64")
    frame.loc[missing_age, "age"] = None
    negative = rng.choice(len(frame), 5, replace=False)
    frame.loc[negative, "income"] = -frame.loc[negative, "income"]
    new_region = rng.choice(len(frame), 12, replace=False)
    frame.loc[new_region, "region"] = "central"
    return frame


def _applicants(
    rng: np.random.Generator, ids: npt.NDArray[np.int64], *, income_factor: float
) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    count = len(ids)
    age = np.clip(np.round(rng.normal(41, 12, count)), 18, 80).astype("int64")
    income = np.round(_MEDIAN_INCOME * rng.lognormal(0.0, 0.45, count) * income_factor, 2)
    region = rng.choice(np.array(_REGIONS), count, p=_REGION_SHARES)
    # Younger applicants and lower incomes default more often; the region adds a little.
    offset = np.select([region == "south", region == "east"], [0.2, -0.1], 0.0)
    logit = -1.7 - 0.09 * (age - 41) - 3.5 * np.log(income / (_MEDIAN_INCOME * income_factor))
    default = (rng.random(count) < 1 / (1 + np.exp(-(logit + offset)))).astype("int64")
    return pd.DataFrame(
        {"id": ids, "age": age, "income": income, "region": region, "default": default}
    )


def quickstart(
    directory: Annotated[
        Path, typer.Argument(help="Folder to write the files into (made if missing).")
    ] = Path(),
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite files that already exist.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Write the sample data the README uses: credit.csv, delivery.parquet and flows.py.

    The data is generated from a fixed seed, so every machine gets the same files.
    Files that exist are left alone (an error names them) unless --force is given.
    """
    targets = [directory / name for name in FILES]
    if not force:
        existing = [str(path) for path in targets if path.exists()]
        if existing:
            raise FileExistsError(
                f"quickstart would overwrite {', '.join(existing)}; "
                "pass --force to replace, or choose another folder"
            )
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"quickstart needs a folder, but {directory} is a file")
    directory.mkdir(parents=True, exist_ok=True)
    credit_frame().to_csv(targets[0], index=False)
    delivery_frame().to_parquet(targets[1], index=False)
    targets[2].write_text(_FLOWS, encoding="utf-8")
    if as_json:
        print_json({"folder": str(directory.resolve()), "files": [str(p) for p in targets]})
        return
    console = out()
    console.print(f"Wrote sample data to {directory.resolve()}:", highlight=False)
    console.print(f"  {FILES[0]:<18} {_ROWS:,} loan applicants (id, age, income, region, default)")
    console.print(f"  {FILES[1]:<18} {_DELIVERY_ROWS} new applicants, with a drift and defects")
    console.print(f"  {FILES[2]:<18} a training pipeline: loopml pipelines run flows.py:training")
