"""loopml.integrations.optuna: a real Optuna study, each trial a child run of the study's run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

import loopml
from loopml.errors import InvalidParameter
from loopml.integrations.optuna import RUN_ID_ATTR, LoopmlCallback, optimize
from loopml.tracking import _fluent
from loopml.tracking._records import Run

PROJECT = "optuna-tests"


@pytest.fixture(autouse=True)
def quiet_optuna() -> Iterator[None]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        for run in reversed(list(_fluent._stack)):
            run.end()


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -2.0, 2.0)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    return (x - 1.0) ** 2 + (0.5 if kind == "b" else 0.0)


def _children(parent: str) -> dict[int, Run]:
    runs = _fluent.search_runs(project=PROJECT)
    assert isinstance(runs, list)
    children = [run for run in runs if run.parent_id == parent]
    return {int(run.tags["optuna.trial_number"]): run for run in children}


def test_a_study_is_a_parent_run_and_each_trial_a_child_run(fluent_store: str) -> None:
    study = optuna.create_study(study_name="quadratic", sampler=optuna.samplers.RandomSampler(0))
    run_id = optimize(study, _objective, n_trials=6, project=PROJECT)

    study_run = loopml.get_run(run_id)
    assert (study_run.name, study_run.status, study_run.project) == (
        "quadratic",
        "finished",
        PROJECT,
    )
    assert study_run.params["optuna.direction"] == "minimize"
    assert study_run.params["optuna.study_name"] == "quadratic"
    assert study_run.params["best_x"] == str(study.best_params["x"])
    assert study_run.params["best_kind"] == study.best_params["kind"]
    assert study_run.tags["best_params.x"] == str(study.best_params["x"])
    assert study_run.metrics["best_value"] == pytest.approx(study.best_value)
    assert study_run.metrics["n_trials"] == 6
    assert study_run.metrics["n_complete"] == 6
    best_so_far = [p.value for p in loopml.get_metric_history(run_id, "best_value")]
    assert [p.step for p in loopml.get_metric_history(run_id, "best_value")] == list(range(6))
    assert best_so_far == sorted(best_so_far, reverse=True)  # never worse

    children = _children(run_id)
    assert sorted(children) == list(range(6))
    for trial in study.trials:
        child = children[trial.number]
        assert child.status == "finished"
        assert child.tags["optuna.trial_state"] == "complete"
        assert child.params == {"x": str(trial.params["x"]), "kind": trial.params["kind"]}
        assert child.metrics["value"] == pytest.approx(trial.value)
        assert trial.user_attrs[RUN_ID_ATTR] == child.id


def test_pruned_trials_keep_their_intermediate_values_and_end_killed() -> None:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(3):
            trial.report(x * (step + 1), step)
            loopml.log_metric("inside", float(step), step=step)  # lands in the trial's run
        if trial.number % 2 == 1:
            raise optuna.TrialPruned()
        return x

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(1))
    run_id = optimize(study, objective, n_trials=4, project=PROJECT)

    children = _children(run_id)
    pruned = children[1]
    assert (pruned.status, pruned.tags["optuna.trial_state"]) == ("killed", "pruned")
    # Optuna gives a pruned trial its last reported value.
    assert pruned.metrics["value"] == pytest.approx(study.trials[1].intermediate_values[2])
    history = loopml.get_metric_history(pruned.id, "intermediate_value")
    assert [p.step for p in history] == [0, 1, 2]
    assert [p.value for p in history] == pytest.approx(
        [study.trials[1].intermediate_values[s] for s in range(3)]
    )
    assert [p.step for p in loopml.get_metric_history(pruned.id, "inside")] == [0, 1, 2]
    assert children[0].status == "finished"
    study_run = loopml.get_run(run_id)
    assert study_run.params["optuna.direction"] == "maximize"
    assert (study_run.metrics["n_complete"], study_run.metrics["n_pruned"]) == (2, 2)
    assert "inside" not in study_run.metrics


def test_a_caught_failure_is_one_failed_trial_run_and_the_study_goes_on() -> None:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        if trial.number == 1:
            raise ValueError("bad region")
        return x

    study = optuna.create_study()
    run_id = optimize(study, objective, n_trials=3, project=PROJECT, catch=(ValueError,))

    children = _children(run_id)
    assert sorted(children) == [0, 1, 2]  # one run per trial, none twice
    failed = children[1]
    assert (failed.status, failed.tags["optuna.trial_state"]) == ("failed", "failed")
    assert failed.failure is not None
    assert failed.failure["message"] == "bad region"
    assert "x" in failed.params
    assert loopml.get_run(run_id).metrics["n_failed"] == 1
    assert loopml.get_run(run_id).status == "finished"


def test_an_uncaught_failure_fails_the_trial_and_the_study_run_and_propagates() -> None:
    def objective(trial: optuna.Trial) -> float:
        trial.suggest_int("n", 1, 3)
        raise RuntimeError("broken objective")

    study = optuna.create_study(study_name="broken")
    with pytest.raises(RuntimeError, match="broken objective"):
        optimize(study, objective, n_trials=2, project=PROJECT)

    runs = _fluent.search_runs(project=PROJECT)
    assert isinstance(runs, list)
    study_run = next(run for run in runs if run.name == "broken")
    assert study_run.status == "failed"
    (trial_run,) = _children(study_run.id).values()
    assert trial_run.status == "failed"
    assert _fluent.active_run() is None


def test_the_active_run_is_the_study_run_and_stays_open() -> None:
    with loopml.start_run(name="search", project=PROJECT) as parent:
        run_id = optimize(optuna.create_study(), _objective, n_trials=2)
        assert run_id == parent.id
        assert loopml.get_run(parent.id).status == "running"
        assert _fluent.active_run() is parent
    assert set(_children(parent.id)) == {0, 1}
    assert loopml.get_run(parent.id).status == "finished"


def test_the_callback_alone_records_trials_run_in_threads() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(2))
    tracker = LoopmlCallback(project=PROJECT, run_name="threaded")
    study.optimize(tracker.track(_objective), n_trials=6, n_jobs=2, callbacks=[tracker])
    tracker.end()

    assert tracker.study_run_id is not None
    study_run = loopml.get_run(tracker.study_run_id)
    assert (study_run.name, study_run.status) == ("threaded", "finished")
    children = _children(tracker.study_run_id)
    assert sorted(children) == list(range(6))
    assert {t.user_attrs[RUN_ID_ATTR] for t in study.trials} == {r.id for r in children.values()}
    assert all(run.status == "finished" for run in children.values())


def test_a_plain_callback_without_track_still_makes_a_run_per_trial() -> None:
    study = optuna.create_study(directions=["minimize", "maximize"])
    tracker = LoopmlCallback(project=PROJECT)

    def two(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0.0, 1.0)
        return x, 1.0 - x

    study.optimize(two, n_trials=3, callbacks=[tracker])
    tracker.end()

    assert tracker.study_run_id is not None
    study_run = loopml.get_run(tracker.study_run_id)
    assert study_run.params["optuna.direction"] == "minimize,maximize"
    assert "best_value" not in study_run.metrics  # no single best with two objectives
    for run in _children(tracker.study_run_id).values():
        assert {"values_0", "values_1"} <= set(run.metrics)
        assert run.metrics["values_0"] + run.metrics["values_1"] == pytest.approx(1.0)


@pytest.mark.parametrize("n_trials", [0, -1, 2.5, True, "3"])
def test_a_bad_trial_count_is_refused_before_any_run(n_trials: object, loopml_home: Path) -> None:
    with pytest.raises(InvalidParameter, match="'n_trials' parameter of optimize"):
        optimize(optuna.create_study(), _objective, n_trials=n_trials, project=PROJECT)  # type: ignore[arg-type]
    assert not loopml_home.exists()  # not even a store (listing projects would say so)


def test_without_optuna_the_callback_says_which_extra_installs_it() -> None:
    program = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'optuna':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from loopml.errors import InvalidParameter\n"
        "from loopml.integrations.optuna import LoopmlCallback\n"  # importing needs no optuna
        "try:\n"
        "    LoopmlCallback()\n"
        "except InvalidParameter as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=300
    )
    assert "pip install 'loopml[optuna]'" in done.stdout
