"""Run or resume a pipeline in a process of its own (the tests' stand-in for the CLI).

    python lp_run.py run MODULE:PIPELINE '{"n": 3}'   → prints {"run_id", "status"}
    python lp_run.py resume RUN_ID                    → prints {"run_id", "status"}

The main guard matters: the local executor's workers import ``__main__``.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from loopml.pipelines import resume
    from loopml.pipelines._loader import load_pipeline

    if argv[0] == "run":
        pipeline = load_pipeline(argv[1])
        params = json.loads(argv[2]) if len(argv) > 2 else {}
        run = pipeline.run(params=params, max_workers=2)
    elif argv[0] == "resume":
        run = resume(argv[1], max_workers=2)
    else:
        print(f"unknown command {argv[0]!r}", file=sys.stderr)
        return 2
    print(json.dumps({"run_id": run.id, "status": run.status}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
