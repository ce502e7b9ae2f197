"""Register and deploy the serving benchmark's forest in loopml, and count what was logged.

Usage (``bench/serving.py`` runs both, with ``LOOPML_HOME`` set to a fresh folder)::

    .venv/bin/python bench/workers/loopml_serving.py setup --workdir DIR
    .venv/bin/python bench/workers/loopml_serving.py count --workdir DIR --wal DIR/wal

``setup`` reads ``DIR/forest.pkl`` and ``DIR/example.json`` (see
``mlflow_serving.py``), registers the forest as ``bench-forest`` with the example
rows (loopml infers the signature the server checks every request against) and
points the endpoint ``bench`` at that version with all of the traffic, every
setting at its default. ``count`` runs after the server has shut down: it reads
the endpoint's prediction log (segments, plus anything left in the WAL folder)
and prints how many requests were logged. Each prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

ENDPOINT = "bench"
MODEL = "bench-forest"


def setup(workdir: Path) -> dict[str, object]:
    import pandas as pd
    import sklearn

    import loopml
    from loopml.serving._deployments import get_client

    example = json.loads((workdir / "example.json").read_text())
    with (workdir / "forest.pkl").open("rb") as f:
        forest = pickle.load(f)  # our own file, written a moment ago by bench/serving.py
    frame = pd.DataFrame(example["data"], columns=example["columns"])
    version = loopml.models.register(forest, MODEL, input_example=frame)
    deployment = get_client().set(
        ENDPOINT, [f"{version.ref}:100"], project=loopml.settings.project(None)
    )
    return {
        "endpoint": deployment.endpoint,
        "routes": [str(r) for r in deployment.routes],
        "model": version.ref,
        "flavor": version.flavor,
        "loopml": loopml.__version__,
        "sklearn": sklearn.__version__,
        "python": sys.version.split()[0],
    }


def count(wal: Path) -> dict[str, object]:
    from loopml.serving._claim import local_log_folders
    from loopml.serving._predlog_reading import read_predictions
    from loopml.tracking import get_client

    tracking = get_client()
    logged = read_predictions(
        tracking.store, tracking.artifacts, ENDPOINT, wal_folders=local_log_folders(wal)
    )
    return {"logged": len(logged), "request_ids": int(logged["request_id"].nunique())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["setup", "count"])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--wal", type=Path, help="the server's --log-folder (for count)")
    args = parser.parse_args(argv)
    if args.command == "setup":
        result = setup(args.workdir.absolute())
    else:
        if args.wal is None:
            parser.error("count needs --wal")
        result = count(args.wal.absolute())
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
