"""Log the serving benchmark's forest to MLflow; runs in the peers' virtualenv.

Usage (``bench/serving.py --vs mlflow`` does this once, before serving)::

    .venv-peers/bin/python bench/workers/mlflow_serving.py --workdir DIR

``DIR`` holds ``forest.pkl`` (the fitted forest, pickled by ``bench/serving.py``
with the same scikit-learn version) and ``example.json`` (column names and the
first rows of the training frame). The model is logged as MLflow documents it:
``mlflow.sklearn.log_model`` with the input example (so MLflow infers and, when
serving, enforces a signature), into a SQLite tracking store in ``DIR`` and an
experiment whose artifacts live in ``DIR/mlruns``. MLflow's default format for
scikit-learn models is skops, which loads only trusted types: a forest's trees
(``sklearn.tree._tree.Tree``) must be named. Prints one JSON line: the model URI
to pass to ``mlflow models serve``, the environment it needs and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
from pathlib import Path

# Keep MLflow offline and quiet: no telemetry, no git-binary warning.
OFFLINE_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GIT_PYTHON_REFRESH": "quiet",
}
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    workdir: Path = args.workdir.absolute()

    for name in [n for n in os.environ if n.startswith("MLFLOW_")]:
        del os.environ[name]
    env = OFFLINE_ENV | {"MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    os.environ.update(env)

    import mlflow
    import pandas as pd
    import sklearn

    example = json.loads((workdir / "example.json").read_text())
    if example["sklearn"] != sklearn.__version__:
        raise SystemExit(
            f"scikit-learn {sklearn.__version__} here, {example['sklearn']} in loopml's venv: "
            "the forest is pickled across the two, so both venvs need the same version."
        )
    with (workdir / "forest.pkl").open("rb") as f:
        forest = pickle.load(f)  # our own file, written a moment ago by bench/serving.py
    frame = pd.DataFrame(example["data"], columns=example["columns"])

    experiment = mlflow.create_experiment(
        "bench-serving", artifact_location=(workdir / "mlruns").as_uri()
    )
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            forest, name="model", input_example=frame, skops_trusted_types=TRUSTED_TYPES
        )
    print(
        json.dumps(
            {
                "model_uri": info.model_uri,
                "env": env,
                "mlflow": mlflow.__version__,
                "sklearn": sklearn.__version__,
                "python": sys.version.split()[0],
                "serialization": info.flavors.get("sklearn", {}).get("serialization_format"),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
