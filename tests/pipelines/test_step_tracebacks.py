"""A failing step's traceback shows the user's file, line and source line.

Steps from scripts and from files loaded by path travel to workers by value;
cloudpickle alone would name their code ``<dynamic-code>`` and show no source.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import loopml
from loopml.errors import StepFailed
from loopml.pipelines import load_pipeline
from loopml.pipelines._shipping import MAX_SOURCE_CHARS, dumps_by_value

SCRIPT = textwrap.dedent(
    """
    import json
    import loopml


    def helper(x):
        return 1 / x


    @loopml.step
    def divide(x: int) -> float:
        return helper(x)


    @loopml.pipeline
    def flow(x: int = 0):
        divide(x)


    if __name__ == "__main__":
        try:
            flow.run()
        except loopml.errors.StepFailed as failed:
            print(json.dumps(loopml.get_run(failed.run_id).failure))
    """
)


def _line_of(text: str, needle: str) -> int:
    """1-based number of the line of ``text`` holding ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _assert_points_at(traceback: str, path: Path, text: str, function: str, source: str) -> None:
    assert "<dynamic-code>" not in traceback
    assert f'File "{path}", line {_line_of(text, source)}, in {function}\n    {source}\n' in (
        traceback
    )


def test_a_step_defined_in_a_script_fails_with_the_scripts_file_line_and_source(
    tmp_path: Path,
) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    failure = json.loads(done.stdout.strip().splitlines()[-1])

    assert failure["type"] == "ZeroDivisionError"
    _assert_points_at(failure["traceback"], script, SCRIPT, "divide", "return helper(x)")
    _assert_points_at(failure["traceback"], script, SCRIPT, "helper", "return 1 / x")


def test_a_step_from_a_file_loaded_by_path_fails_with_that_files_line_and_source(
    tmp_path: Path,
) -> None:
    path = tmp_path / "flows_by_path.py"
    path.write_text(SCRIPT)
    flow = load_pipeline(f"{path}:flow")
    with pytest.raises(StepFailed) as raised:
        flow.run(max_workers=1)

    failure = loopml.get_run(raised.value.run_id).failure
    assert failure is not None
    _assert_points_at(failure["traceback"], path.resolve(), SCRIPT, "divide", "return helper(x)")
    _assert_points_at(failure["traceback"], path.resolve(), SCRIPT, "helper", "return 1 / x")


def test_shipped_code_shows_its_source_where_the_file_does_not_exist(tmp_path: Path) -> None:
    # As on a Ray node: the worker has the payload but not the user's file.
    path = tmp_path / "gone.py"
    path.write_text(SCRIPT)
    namespace: dict[str, object] = {"__name__": "gone"}
    exec(compile(SCRIPT, str(path), "exec"), namespace)
    payload = dumps_by_value(namespace["helper"])  # type: ignore[arg-type]
    path.unlink()

    probe = (
        "import pickle, sys, traceback\n"
        "helper = pickle.loads(sys.stdin.buffer.read())\n"
        "try:\n    helper(0)\n"
        "except ZeroDivisionError as e:\n    print(''.join(traceback.format_exception(e)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], input=payload, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    _assert_points_at(done.stdout.decode(), path, SCRIPT, "helper", "return 1 / x")


def test_a_source_too_large_to_ship_leaves_file_and_line_only(tmp_path: Path) -> None:
    path = tmp_path / "huge.py"
    text = "def fail():\n    raise RuntimeError('huge')\n" + "#" * MAX_SOURCE_CHARS + "\n"
    path.write_text(text)
    namespace: dict[str, object] = {}
    exec(compile(text, str(path), "exec"), namespace)
    payload = dumps_by_value(namespace["fail"])  # type: ignore[arg-type]

    assert len(payload) < MAX_SOURCE_CHARS
    probe = (
        "import pickle, sys, traceback\n"
        "fail = pickle.loads(sys.stdin.buffer.read())\n"
        "try:\n    fail()\n"
        "except RuntimeError as e:\n    print(''.join(traceback.format_exception(e)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], input=payload, capture_output=True, timeout=120
    )
    assert f'File "{path}", line 2, in fail' in done.stdout.decode()


def test_code_marshal_cannot_write_still_ships_as_cloudpickle_would() -> None:
    def answer() -> object:
        return 42

    # A constant marshal refuses: only code built by hand has one.
    code = answer.__code__
    answer.__code__ = code.replace(co_consts=(*code.co_consts, _Unmarshallable()))

    shipped = pickle.loads(dumps_by_value(answer))
    assert shipped() == 42
    assert shipped.__code__.co_filename == "<dynamic-code>"


class _Unmarshallable:
    """A picklable constant that marshal cannot write."""
