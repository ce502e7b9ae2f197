"""What a firing does: run a pipeline in a child process, or post to a webhook.

A pipeline action imports and runs code named by a stored trigger, so it runs only
when the scheduler trusts it: the trigger was stored by the account the scheduler
runs as, or the scheduler was started with ``--trust``. It runs as
``python -m loopml pipelines run REF --json`` in a child process (a crash or a hang
of the pipeline never takes the scheduler with it), bounded by the action's
``timeout``; the run's id and status are the firing's result. Parameters may name the
newest event's fields (``{event.version}``), filled in as text.

An automation action starts an attempt of the named automation (once per firing: the
attempt's key is the firing's id); the scheduler advances it from then on.

A webhook action posts the firing (trigger, key, events) as JSON, with monitoring's
SSRF-checked webhook client (loopback and private addresses refused unless
``LOOPML_WEBHOOK_ALLOW_PRIVATE``) and an ``Idempotency-Key`` header holding the
firing's id, so a receiver can drop a repeat after a scheduler crash.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from loopml.errors import AutomationError
from loopml.store import Store

__all__ = ["ActionFailed", "fill_params", "run_action"]

_OUTPUT_LIMIT = 2000


class ActionFailed(AutomationError):
    """A firing's action failed; its message is the firing's recorded error."""


def fill_params(params: Mapping[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with each ``{event.FIELD}`` replaced by that field of ``event`` (text).

    Raises:
        ActionFailed: a template names a field the event does not have.
    """
    filled: dict[str, Any] = {}
    for key, value in params.items():
        if not isinstance(value, str):
            filled[key] = value
            continue
        try:
            filled[key] = value.format_map({"event": _Fields(event)})
        except KeyError as exc:
            raise ActionFailed(
                f"The parameter {key!r} names the event field {exc.args[0]!r}, which the "
                f"event does not have (its fields: {', '.join(sorted(event)) or 'none'})."
            ) from None
    return filled


class _Fields:
    """``{event.FIELD}`` in a template: attribute access over the event's data only."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self._data:
            raise KeyError(name)
        return self._data[name]


def run_action(
    action: Mapping[str, Any],
    *,
    firing: Mapping[str, Any],
    project: str,
    trusted: bool,
    store: Store | None = None,
) -> dict[str, Any]:
    """Do ``action`` for ``firing`` and return what to record as its result.

    ``store`` is needed by an automation action (it starts an attempt there).

    Raises:
        ActionFailed: the action failed, timed out, or may not run untrusted.
    """
    events = [e for e in firing.get("events", []) if "key" in e]
    newest: Mapping[str, Any] = events[-1]["data"] if events else {}
    if "automation" in action:
        return _automation(str(action["automation"]), firing, project, store)
    if "webhook" in action:
        return _webhook(str(action["webhook"]), firing, float(action.get("timeout", 30.0)))
    if not trusted:
        raise ActionFailed(
            "This trigger runs a pipeline, which imports and runs code, and was stored by "
            "another account: start the scheduler with --trust to run it."
        )
    return _pipeline(action, newest, project)


def _pipeline(action: Mapping[str, Any], event: Mapping[str, Any], project: str) -> dict[str, Any]:
    params = fill_params(action.get("params") or {}, event)
    command = [sys.executable, "-m", "loopml.cli", "pipelines", "run", str(action["pipeline"])]
    for key, value in params.items():
        command += ["--param", f"{key}={'' if value is None else value}"]
    command += ["--project", project, "--json"]
    timeout = float(action.get("timeout", 3600.0))
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "LOOPML_PROJECT": project},
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ActionFailed(
            f"The pipeline {action['pipeline']} did not finish within {timeout:g} s; stopped."
        ) from None
    record = _last_json(done.stdout)
    if done.returncode != 0 and record is None:
        raise ActionFailed(
            f"The pipeline {action['pipeline']} could not run (exit {done.returncode}): "
            f"{_tail(done.stderr)}"
        )
    run = record or {}
    result = {
        "pipeline": action["pipeline"],
        "params": params,
        "run": run.get("id") or run.get("run_id"),
        "status": run.get("status"),
        "exit": done.returncode,
    }
    if done.returncode != 0:
        raise ActionFailed(
            f"The pipeline run {result['run']} ended {result['status']}: {_tail(done.stderr)}"
        )
    return result


def _automation(
    name: str, firing: Mapping[str, Any], project: str, store: Store | None
) -> dict[str, Any]:
    from loopml.automation._automation_store import AutomationStore

    if store is None:
        raise ActionFailed(f"The automation {name!r} can only be started with a store.")
    attempt = AutomationStore(store).start(
        name, project=project, key=f"firing-{firing.get('id')}", events=firing.get("events", [])
    )
    return {"automation": name, "attempt": attempt.id}


def _webhook(url: str, firing: Mapping[str, Any], timeout: float) -> dict[str, Any]:
    from loopml.errors import AlertDeliveryFailed, ForbiddenAddress
    from loopml.monitoring import WebhookSink

    sink = WebhookSink(
        url,
        timeout=min(timeout, 60.0),
        headers={"Idempotency-Key": f"loopml-firing-{firing.get('id')}"},
    )
    body = {
        "kind": "loopml.trigger.firing",
        "firing": firing.get("id"),
        "trigger": firing.get("trigger"),
        "dedup_key": firing.get("dedup_key"),
        "events": firing.get("events", []),
    }
    try:
        sink.send(body)
    except (AlertDeliveryFailed, ForbiddenAddress) as exc:
        raise ActionFailed(str(exc)) from None
    return {"webhook": sink.shown_url, "delivered": True}


def _last_json(text: str) -> dict[str, Any] | None:
    """The JSON object ``--json`` printed (the last line that parses as one)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            return value if isinstance(value, dict) else None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    # The CLI's one ``error:`` line says what failed; the ``hint:`` after it does not.
    errors = [line for line in lines if line.startswith("error:")]
    return ((errors or lines)[-1] if lines else "no output")[-_OUTPUT_LIMIT:]
