"""The child process of a reproduction: run the recorded pipeline inside the worktree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from loopml import settings
from loopml.errors import LoopmlError, PipelineDefinitionError
from loopml.pipelines._reproduce_git import GIT_LOCATION_VARIABLES
from loopml.pipelines._runner import Event
from loopml.tracking import TrackingClient

__all__ = ["run_child", "run_in_child"]

_CHILD_PROGRAM = "from loopml.pipelines._reproduce_child import run_in_child; run_in_child()"
_STDERR_TAIL = 4000


def run_child(
    client: TrackingClient,
    worktree: Path,
    paths: Sequence[Path],
    spec: dict[str, Any],
    on_event: Callable[[Event], None] | None,
) -> str:
    """Run the pipeline in a child process inside ``worktree``; return the new run's id.

    The child prints one JSON object a line: ``{"event": …}`` as steps change state,
    then ``{"run_id": …}`` or ``{"error": …}``.
    """
    env = {k: v for k, v in os.environ.items() if k not in GIT_LOCATION_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(p) for p in paths] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env["LOOPML_STORE_URI"] = _absolute_store_uri(client.store.uri)
    env["LOOPML_ARTIFACT_URI"] = _absolute_artifact_uri(client.artifacts.uri)
    env["LOOPML_HOME"] = str(settings.home().absolute())
    # Bytecode files would make the worktree dirty in the new run's git record.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    answer: dict[str, Any] = {}
    # stderr goes to a file: a pipe nobody reads while stdout is followed could fill up.
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as stderr:
        with subprocess.Popen(
            [sys.executable, "-c", _CHILD_PROGRAM],
            cwd=worktree,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as child:
            try:
                assert child.stdin is not None and child.stdout is not None
                child.stdin.write(json.dumps({**spec, "events": on_event is not None}))
                child.stdin.close()
                for line in child.stdout:
                    message = _json_object(line)
                    if "event" in message and on_event is not None:
                        on_event(Event(**message["event"]))
                    elif "run_id" in message or "error" in message:
                        answer = message
            except BaseException:  # interrupted, or on_event raised: do not wait for the run
                child.kill()
                raise
            returncode = child.wait()
        stderr.seek(0)
        errors = stderr.read()[-_STDERR_TAIL:].strip()
    if answer.get("run_id"):
        return str(answer["run_id"])
    problem = answer.get("error") or errors or f"the child process exited with {returncode}"
    raise PipelineDefinitionError(
        f"Re-running the pipeline at commit {spec['commit'][:12]} failed before it started: "
        f"{problem}"
    )


def _json_object(line: str) -> dict[str, Any]:
    """The JSON object on ``line``; empty for anything else the recorded code printed."""
    try:
        message = json.loads(line)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


def _absolute_store_uri(uri: str) -> str:
    """The child runs elsewhere: a relative SQLite path must name the same file."""
    from sqlalchemy.engine import make_url

    url = make_url(uri)
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return uri
    if database.startswith("file:") or Path(database).is_absolute():
        return uri
    return url.set(database=str(Path(database).absolute())).render_as_string(hide_password=False)


def _absolute_artifact_uri(uri: str) -> str:
    return uri if "://" in uri else str(Path(uri).expanduser().absolute())


def run_in_child() -> None:
    """The child's program: load the pipeline from the worktree, run it, print its id."""
    spec = json.load(sys.stdin)
    print(json.dumps(_child_answer(spec)), flush=True)


def _print_event(event: Event) -> None:
    print(json.dumps({"event": asdict(event)}), flush=True)


def _child_answer(spec: dict[str, Any]) -> dict[str, Any]:
    import inspect

    from loopml.errors import StepFailed
    from loopml.pipelines._loader import load_pipeline

    worktree = Path(spec["worktree"]).resolve()
    try:
        pipeline = load_pipeline(spec["reference"])
        source = Path(inspect.getfile(pipeline.function)).resolve()
    except (LoopmlError, TypeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    if not source.is_relative_to(worktree):
        return {
            "error": f"{spec['reference']!r} was imported from {source}, not from the checked "
            "out commit; is the package installed in a way that shadows PYTHONPATH?"
        }
    try:
        run = pipeline.run(
            params=spec["params"],
            cache=False,
            executor=spec["executor"],
            project=spec["project"],
            on_event=_print_event if spec.get("events") else None,
        )
    except StepFailed as exc:
        return {"run_id": exc.run_id}
    except LoopmlError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"run_id": run.id}


# -- comparing -------------------------------------------------------------------------------
