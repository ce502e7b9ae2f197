"""Optuna studies in loopml: the study is a parent run, each trial a child run.

Either let :func:`optimize` run the study::

    import optuna
    from loopml.integrations.optuna import optimize

    study = optuna.create_study(direction="maximize")
    run_id = optimize(study, objective, n_trials=20)

or pass a :class:`LoopmlCallback` to ``study.optimize`` yourself, wrapping the
objective with :meth:`LoopmlCallback.track` so that what it logs
(``loopml.log_metric``) lands in the trial's run::

    tracker = LoopmlCallback()
    study.optimize(tracker.track(objective), n_trials=20, callbacks=[tracker])
    tracker.end()

Each **trial run** (kind ``experiment``, a child of the study run) holds the
trial's params as params, its objective value as the metric ``value`` (``values_0``,
``values_1`` … for several objectives), what it reported with ``trial.report`` as
the metric history ``intermediate_value`` (step = the reported step), and the tags
``optuna.trial_number`` and ``optuna.trial_state`` (``complete``, ``pruned`` or
``failed``). Its status is ``finished`` for a complete trial, ``killed`` for a
pruned one (the pruner stopped it early) and ``failed`` for a failed one.

The **study run** is the active run when the study starts (it is then left open)
or else a run named after the study that :meth:`LoopmlCallback.end` ends. It holds
the params ``optuna.study_name`` and ``optuna.direction`` (``maximize``/
``minimize``, comma-separated for several objectives); after every trial the
metrics ``best_value`` (step = trial number; single objective only), ``n_trials``,
``n_complete``, ``n_pruned`` and ``n_failed``, and the tags ``best_params.NAME``;
when it ends, the best trial's params as params ``best_NAME``.

Trials run in threads (``n_jobs > 1``) each get their run, but :meth:`~LoopmlCallback.track`
makes it the active run only in the main thread (loopml's active run is shared by
a process's threads); every trial's run id is its user attribute ``loopml_run_id``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidParameter
from loopml.tracking import get_client
from loopml.tracking._fluent import ActiveRun, _ending_status, active_run, start_run

if TYPE_CHECKING:
    import optuna

__all__ = ["RUN_ID_ATTR", "LoopmlCallback", "optimize"]

RUN_ID_ATTR = "loopml_run_id"
"""The trial user attribute holding the id of the trial's run."""

_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}
_STATUSES: dict[str, Any] = {"complete": "finished", "pruned": "killed", "failed": "failed"}


class LoopmlCallback:
    """An Optuna callback that records a study as a parent run and each trial as a child run.

    Args:
        project: project of the runs it starts (default ``LOOPML_PROJECT``, or the
            active run's).
        run_name: name of the study run it starts (default: the study's name).

    Raises:
        InvalidParameter: Optuna is not installed (``pip install 'loopml[optuna]'``).

    Example:
        >>> import optuna
        >>> from loopml.integrations.optuna import LoopmlCallback
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study()
        >>> tracker = LoopmlCallback()
        >>> objective = lambda trial: (trial.suggest_float("x", -1, 1) - 0.5) ** 2
        >>> study.optimize(tracker.track(objective), n_trials=3, callbacks=[tracker])
        >>> tracker.end()
        >>> import loopml
        >>> loopml.get_run(tracker.study_run_id).params["optuna.direction"]
        'minimize'
    """

    def __init__(self, *, project: str | None = None, run_name: str | None = None) -> None:
        _require_optuna()
        self.project = project
        self.run_name = run_name
        self.study_run_id: str | None = None
        self._study: optuna.Study | None = None
        self._owned: ActiveRun | None = None
        self._trial_runs: dict[int, str] = {}
        self._active: dict[int, ActiveRun] = {}
        self._done: set[int] = set()
        self._lock = threading.RLock()

    # -- the study run ---------------------------------------------------------------------

    def _study_run(self, study: optuna.Study) -> str:
        """The study's run: the active run, or one this callback starts (once)."""
        with self._lock:
            if self.study_run_id is not None:
                return self.study_run_id
            current = active_run()
            if current is not None:
                self.study_run_id = current.id
            else:
                self._owned = start_run(
                    name=self.run_name or study.study_name, project=self.project
                )
                self.study_run_id = self._owned.id
            self._study = study
            directions = ",".join(d.name.lower() for d in study.directions)
            get_client().log_params(
                self.study_run_id,
                {"optuna.study_name": study.study_name, "optuna.direction": directions},
            )
            return self.study_run_id

    def end(self, error: BaseException | None = None) -> None:
        """Log the best trial's params on the study run; end that run if this callback started it.

        Args:
            error: the exception that stopped the study, if any (the run it
                started is then failed, or killed by a ``KeyboardInterrupt``).
        """
        with self._lock:
            if self.study_run_id is None:
                return
            if self._study is not None and error is None:
                best = _best_trial(self._study)
                if best is not None:
                    params = {f"best_{key}": value for key, value in best.params.items()}
                    get_client().log_params(self.study_run_id, _text(params))
            if self._owned is not None:
                self._owned.end(_ending_status(error), error)
                self._owned = None

    # -- trial runs --------------------------------------------------------------------------

    def track(self, objective: Callable[[optuna.Trial], Any]) -> Callable[[optuna.Trial], Any]:
        """Wrap ``objective`` so each trial's run exists (and is active) while it runs.

        In the main thread the trial's run is the active run, so ``loopml.log_metric``
        inside the objective logs to it. An exception other than a pruning ends the
        run as failed before it propagates.
        """
        import optuna

        @functools.wraps(objective)
        def tracked(trial: optuna.Trial) -> Any:
            parent = self._study_run(trial.study)
            main = threading.current_thread() is threading.main_thread()
            if main:
                run = start_run(name=f"trial-{trial.number}", parent_id=parent)
                run_id = run.id
                with self._lock:
                    self._active[trial.number] = run
            else:
                run_id = get_client().create_run(name=f"trial-{trial.number}", parent_id=parent)
            with self._lock:
                self._trial_runs[trial.number] = run_id
            trial.set_user_attr(RUN_ID_ATTR, run_id)
            try:
                return objective(trial)
            except optuna.TrialPruned:
                raise  # the callback records it
            except BaseException as error:
                # Optuna calls the callback only for the exceptions it was told to
                # catch: record the trial here, whatever Optuna does next.
                self._record_trial(run_id, trial.number, trial.params, "failed", [], {})
                self._finish_run(trial.number, _ending_status(error), error)
                with self._lock:
                    self._done.add(trial.number)
                raise

        return tracked

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Record a finished trial (Optuna calls this after each trial)."""
        parent = self._study_run(study)
        state = _STATES.get(trial.state.name)
        if state is None:  # RUNNING or WAITING: nothing to record yet
            return
        with self._lock:
            if trial.number in self._done:  # recorded by track() as it failed
                self._done.discard(trial.number)
                run_id = None
            else:
                run_id = self._trial_runs.get(trial.number) or get_client().create_run(
                    name=f"trial-{trial.number}", parent_id=parent
                )
                self._trial_runs[trial.number] = run_id
        if run_id is not None:
            values = list(trial.values or [])
            self._record_trial(
                run_id, trial.number, trial.params, state, values, trial.intermediate_values
            )
            self._finish_run(trial.number, _STATUSES[state], None)
        self._update_study_run(study, parent, trial.number)

    def _record_trial(
        self,
        run_id: str,
        number: int,
        params: dict[str, Any],
        state: str,
        values: list[float],
        intermediate: dict[int, float],
    ) -> None:
        metrics: list[tuple[str, float, int]] = [
            ("intermediate_value", float(value), int(step))
            for step, value in sorted(intermediate.items())
        ]
        if len(values) == 1:
            metrics.append(("value", float(values[0]), 0))
        else:
            metrics.extend((f"values_{i}", float(v), 0) for i, v in enumerate(values))
        get_client().log_batch(
            run_id,
            metrics,
            params=_text(params),
            tags={"optuna.trial_number": number, "optuna.trial_state": state},
        )

    def _update_study_run(self, study: optuna.Study, run_id: str, step: int) -> None:
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        counts = {
            "n_trials": len(trials),
            "n_complete": sum(t.state == TrialState.COMPLETE for t in trials),
            "n_pruned": sum(t.state == TrialState.PRUNED for t in trials),
            "n_failed": sum(t.state == TrialState.FAIL for t in trials),
        }
        metrics = [(key, float(value), step) for key, value in counts.items()]
        tags: dict[str, Any] = {}
        best = _best_trial(study)
        if best is not None:
            if best.value is not None:
                metrics.append(("best_value", float(best.value), step))
            tags = {f"best_params.{key}": value for key, value in _text(best.params).items()}
        get_client().log_batch(run_id, metrics, tags=tags)

    def _finish_run(self, number: int, status: Any, error: BaseException | None) -> None:
        with self._lock:
            run_id = self._trial_runs.pop(number, None)
            active = self._active.pop(number, None)
        if active is not None:
            active.end(status, error)
        elif run_id is not None:
            get_client().end_run(run_id, status, error)


def optimize(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], Any],
    n_trials: int | None = None,
    *,
    project: str | None = None,
    run_name: str | None = None,
    callbacks: Iterable[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
    **kwargs: Any,
) -> str:
    """Run ``study.optimize`` with every trial a child run of the study's run.

    Args:
        study: the Optuna study.
        objective: the objective; what it logs with ``loopml.log_metric`` goes to
            its trial's run (when trials run in the main thread).
        n_trials: passed to ``study.optimize``.
        project: project of the runs started (default ``LOOPML_PROJECT``, or the
            active run's).
        run_name: name of the study run (default: the study's name); ignored when
            a run is active (it becomes the study run and stays open).
        callbacks: more Optuna callbacks, called after loopml's.
        **kwargs: more arguments of ``study.optimize`` (``timeout``, ``n_jobs``,
            ``catch`` …).

    Returns:
        The id of the study run.

    Raises:
        InvalidParameter: Optuna is not installed, or ``n_trials`` is not a
            positive int (or None).
    """
    if n_trials is not None and (
        isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1
    ):
        raise InvalidParameter(
            f"The 'n_trials' parameter of optimize must be a positive int or None; "
            f"got {n_trials!r}."
        )
    tracker = LoopmlCallback(project=project, run_name=run_name)
    run_id = tracker._study_run(study)
    try:
        study.optimize(
            tracker.track(objective),
            n_trials=n_trials,
            callbacks=[tracker, *callbacks],
            **kwargs,
        )
    except BaseException as error:
        tracker.end(error)
        raise
    tracker.end()
    return run_id


def _best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best complete trial of a single-objective study, if any."""
    if len(study.directions) != 1:
        return None
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def _text(params: dict[str, Any]) -> dict[str, str]:
    return {str(key): str(value) for key, value in params.items()}


def _require_optuna() -> None:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise InvalidParameter(
            "loopml.integrations.optuna needs Optuna; install it with pip install 'loopml[optuna]'."
        ) from None
