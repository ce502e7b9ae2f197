"""``loopml pipelines …``: run (line output when not on a terminal), list, show, resume, errors.

The pipelines live in a module written to the test's folder, imported as
``MODULE:PIPELINE`` with that folder as the working directory (so runs record a
reference that ``resume`` can import again), or as ``path/to/file.py:PIPELINE``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_support import LOOPML, Cli, subprocess_env

from loopml import settings
from loopml.store import open_store

FLOWS = """
from pathlib import Path

import loopml


@loopml.step
def make(n: int) -> list:
    return list(range(n))


@loopml.step
def total(xs: list) -> int:
    if Path(__file__).with_name("BREAK").exists():
        raise ValueError("boom")
    return sum(xs)


@loopml.step
def double(xs: list) -> list:
    return [2 * x for x in xs]


@loopml.pipeline
def pipe(n: int):
    xs = make(n)
    total(xs)
    total(double(xs))
"""


@dataclass(frozen=True)
class Flows:
    """A pipeline module in the working directory."""

    folder: Path
    module: str

    def ref(self, name: str = "pipe") -> str:
        return f"{self.module}:{name}"

    def breaking(self, broken: bool) -> None:
        flag = self.folder / "BREAK"
        if broken:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)


@pytest.fixture
def flows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flows]:
    module = f"lp_flows_{uuid.uuid4().hex[:8]}"  # unique: sys.modules outlives the test
    (tmp_path / f"{module}.py").write_text(FLOWS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    yield Flows(tmp_path, module)
    sys.modules.pop(module, None)


def _one_error_line(result: object, starts: str) -> None:
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    lines = result.stderr.splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {starts}"), lines[0]


def _latest(cli: Cli) -> dict[str, object]:
    runs = json.loads(cli("pipelines", "list", "--json").stdout)
    latest: dict[str, object] = runs[0]
    return latest


def test_run_prints_a_line_per_event_then_reuses_the_cache(cli: Cli, flows: Flows) -> None:
    result = cli("pipelines", "run", flows.ref(), "-P", "n=3")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"Running pipeline pipe (4 steps) from {flows.ref()} on the local executor" in out
    for step in ("make", "total", "double", "total_2"):
        assert f"▶ {step} " in out
        assert f"✓ {step} " in out
    run = _latest(cli)
    assert f"✓ Pipeline run {run['id']} finished in " in out
    assert "4 steps, 4 ran, 0 cached." in out
    assert run["params"] == {"n": 3}  # "3" typed by the pipeline's annotation

    again = cli("pipelines", "run", flows.ref(), "-P", "n=3")
    assert again.exit_code == 0, again.output
    assert f"↺ make     cached    from run {str(run['id'])[:8]}" in again.stdout
    assert "4 steps, 0 ran, 4 cached." in again.stdout
    assert "▶" not in again.stdout

    fresh = cli("pipelines", "run", flows.ref(), "-P", "n=3", "--no-cache")
    assert fresh.exit_code == 0, fresh.output
    assert "4 steps, 4 ran, 0 cached." in fresh.stdout


def test_list_and_show(cli: Cli, flows: Flows) -> None:
    assert cli("pipelines", "run", flows.ref(), "-P", "n=4").exit_code == 0
    assert cli("pipelines", "run", flows.ref(), "-P", "n=4").exit_code == 0
    runs = json.loads(cli("pipelines", "list", "--json").stdout)
    assert [r["status"] for r in runs] == ["finished", "finished"]
    cached, ran = runs

    table = cli("pipelines", "list").stdout
    assert "Pipeline runs of project 'default'" in table
    assert f"{cached['id'][:8]} │ pipe" in table
    assert "4/4 (4 cached)" in table
    assert "n=4" in table
    assert "No pipeline runs found." in cli("pipelines", "list", "--pipeline", "other").stdout

    shown = json.loads(cli("pipelines", "show", cached["id"][:6], "--json").stdout)
    assert shown["id"] == cached["id"]
    assert list(shown["steps"]) == ["make", "total", "double", "total_2"]
    assert shown["steps"]["total_2"]["needs"] == ["double"]
    for name, step in shown["steps"].items():
        assert step["status"] == "cached"
        assert step["cached_from"] == ran["steps"][name]["run_id"]
        assert step["cached_from_pipeline_run"] == ran["id"]
    original = json.loads(cli("pipelines", "show", ran["id"], "--json").stdout)
    assert all(s["duration_seconds"] >= 0 for s in original["steps"].values())
    assert original["duration_seconds"] > 0

    result = cli("pipelines", "show", cached["id"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"Pipeline run {cached['id'][:8]}" in out
    assert f"reference     {flows.ref()}" in out
    assert out.count("↺ cached") == 4
    assert out.count(f"from run {ran['id'][:8]}") == 4
    assert "double" in out


def test_runs_show_of_a_step_run_names_its_pipeline_run_and_step(cli: Cli, flows: Flows) -> None:
    assert cli("pipelines", "run", flows.ref(), "--param", "n=2").exit_code == 0
    run = _latest(cli)
    step_run = run["steps"]["double"]["run_id"]  # type: ignore[index]

    shown = json.loads(cli("runs", "show", step_run, "--json").stdout)
    assert shown["tags"]["loopml.pipeline.run_id"] == run["id"]
    assert shown["tags"]["loopml.pipeline.name"] == "pipe"
    assert shown["tags"]["loopml.pipeline.step"] == "double"
    text = cli("runs", "show", step_run)
    assert text.exit_code == 0, text.output
    assert re.search(rf"loopml\.pipeline\.run_id +{run['id']}", text.stdout)
    assert re.search(r"loopml\.pipeline\.step +double", text.stdout)
    assert re.search(r"python_version +\d", text.stdout)  # the pipeline's context


def test_a_failed_step_says_how_to_resume_and_resume_reuses_finished_steps(
    cli: Cli, flows: Flows
) -> None:
    flows.breaking(True)
    result = cli("pipelines", "run", flows.ref(), "-P", "n=3")
    assert result.exit_code == 1
    run = _latest(cli)
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: pipeline run {run['id']} failed at step 'total': ValueError: boom"
    assert lines[1].startswith(f"hint: fix it, then run `loopml pipelines resume {run['id']}`")
    assert "loopml runs show" in lines[1]
    assert "✗ total    failed" in result.stdout
    assert "Traceback" not in result.output

    shown = cli("pipelines", "show", str(run["id"])).stdout
    assert "✗ failed" in shown
    assert f"Then: loopml pipelines resume {run['id']}" in shown

    flows.breaking(False)
    resumed = cli("pipelines", "resume", str(run["id"])[:8])
    assert resumed.exit_code == 0, resumed.output
    assert "reused by resume" in resumed.stdout
    assert f"✓ Pipeline run {run['id']} finished" in resumed.stdout
    after = json.loads(cli("pipelines", "show", str(run["id"]), "--json").stdout)
    assert after["status"] == "finished"
    assert after["steps"]["make"]["run_id"] == run["steps"]["make"]["run_id"]  # type: ignore[index]

    _one_error_line(
        cli("pipelines", "resume", str(run["id"])),
        f"Pipeline run {run['id']} is finished; only failed",
    )


@pytest.mark.parametrize(
    ("args", "starts"),
    [
        (["nope"], "'nope' is not a pipeline reference"),
        (["no_such_module_xyz:pipe"], "Cannot import module 'no_such_module_xyz'"),
        (["{module}:missing"], "Module '{module}' has no 'missing'"),
        (["{module}:make"], "'{module}:make' is a Step, not a pipeline"),
        (["{module}:pipe"], "Pipeline 'pipe' needs parameter 'n' (int)"),
        (["{module}:pipe", "-P", "n=three"], "Parameter 'n' of pipeline 'pipe' must be int"),
        (["{module}:pipe", "-P", "n=1", "-P", "m=2"], "Pipeline 'pipe' has no parameter(s)"),
        (["{module}:pipe", "-P", "n"], "The --param/-P option takes KEY=VALUE"),
        (["{module}:pipe", "-P", "n=1", "-P", "n=2"], "Parameter 'n' is given twice"),
        (["missing.py:pipe"], "No pipeline file missing.py"),
    ],
)
def test_bad_references_and_params_are_one_line(
    cli: Cli, flows: Flows, args: list[str], starts: str
) -> None:
    filled = [a.format(module=flows.module) for a in args]
    result = cli("pipelines", "run", *filled)
    _one_error_line(result, starts.format(module=flows.module))
    assert result.stdout == ""
    listed = cli("pipelines", "list", "--json")  # nothing started: no store, project or run
    assert listed.stdout.strip() == "[]" or listed.stderr.startswith("error: No ")


def test_ray_missing_is_one_line(cli: Cli, flows: Flows, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = cli("pipelines", "run", flows.ref(), "-P", "n=1", "--executor", "ray")
    _one_error_line(result, "The ray executor needs Ray: pip install 'loopml[ray]'.")


def test_unknown_run_is_one_line(cli: Cli) -> None:
    # Without a store there is no run to show or resume, and looking creates none.
    _one_error_line(cli("pipelines", "show", "abcdef"), "No loopml store at ")
    _one_error_line(cli("pipelines", "resume", "abcdef"), "No loopml store at ")
    open_store(settings.store_uri()).close()
    _one_error_line(cli("pipelines", "show", "abcdef"), "No run with id 'abcdef'.")
    _one_error_line(cli("pipelines", "resume", "abcdef"), "No run with id 'abcdef'.")


@pytest.mark.slow
def test_run_a_file_in_a_real_process(tmp_path: Path) -> None:
    script = tmp_path / "flows.py"
    script.write_text(FLOWS)
    done = subprocess.run(
        [str(LOOPML), "pipelines", "run", f"{script}:pipe", "-P", "n=3"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "✓ total_2" in done.stdout
    assert "4 steps, 4 ran, 0 cached." in done.stdout
    listed = subprocess.run(
        [str(LOOPML), "pipelines", "list", "--json"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
        check=True,
    )
    (run,) = json.loads(listed.stdout)
    assert run["status"] == "finished"
    assert run["steps"]["total_2"]["outputs"][0]["materializer"] == "json"


@pytest.mark.slow
def test_reproduce_a_run_from_its_commit(tmp_path: Path) -> None:
    """A file pipeline run inside a git repository is reproduced from the commit, even
    after the working tree changed; the report says every output matched."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "flows.py").write_text(FLOWS)
    git_env = {
        **subprocess_env(),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    for command in (["git", "init", "-q"], ["git", "add", "."], ["git", "commit", "-qm", "v1"]):
        subprocess.run(command, cwd=repo, env=git_env, check=True)

    def loopml(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(LOOPML), *args],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            cwd=repo,
            timeout=180,
            check=False,
        )

    assert loopml("pipelines", "run", "flows.py:pipe", "-P", "n=4").returncode == 0
    (run,) = json.loads(loopml("pipelines", "list", "--json").stdout)
    (repo / "flows.py").write_text(FLOWS.replace("sum(xs)", "sum(xs) + 1"))  # not committed

    done = loopml("pipelines", "reproduce", run["id"][:8], "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["reproduced"] is True
    assert report["commit"] == run["git_commit"]
    assert {s["step"] for s in report["steps"]} == {"make", "total", "double", "total_2"}
    assert all(s["matches"] for s in report["steps"])


def test_run_and_resume_print_the_run_as_json(cli: Cli, flows: Flows) -> None:
    flows.breaking(True)
    failed = cli("pipelines", "run", flows.ref(), "-P", "n=3", "--project", "flows", "--json")
    assert failed.exit_code == 1
    record = json.loads(failed.stdout)
    assert record["status"] == "failed" and record["steps"]["total"]["status"] == "failed"
    assert failed.stderr.startswith(f"error: pipeline run {record['id']} failed at step 'total'")

    flows.breaking(False)
    resumed = cli("pipelines", "resume", record["id"], "--json")
    assert resumed.exit_code == 0, resumed.output
    finished = json.loads(resumed.stdout)
    assert (finished["id"], finished["status"]) == (record["id"], "finished")
    assert finished["params"] == {"n": 3}
    again = cli("pipelines", "run", flows.ref(), "-P", "n=3", "-p", "flows", "--json")
    assert {step["status"] for step in json.loads(again.stdout)["steps"].values()} == {"cached"}
