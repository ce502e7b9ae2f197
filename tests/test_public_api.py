"""The public surface: pinned names, and an import that stays cheap."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import loopml
import loopml.errors


def test_public_names_are_pinned() -> None:
    assert loopml.__all__ == [
        "ActiveRun",
        "Metric",
        "Resources",
        "Run",
        "TrackingClient",
        "__version__",
        "active_run",
        "approval_gate",
        "autolog",
        "data",
        "delete_run",
        "end_run",
        "get_metric_history",
        "get_run",
        "log_artifact",
        "log_batch",
        "log_dict",
        "log_figure",
        "log_metric",
        "log_metrics",
        "log_note",
        "log_param",
        "log_params",
        "log_text",
        "models",
        "pipeline",
        "restore_run",
        "search_runs",
        "set_tag",
        "set_tags",
        "start_run",
        "step",
    ]
    for name in loopml.__all__:
        assert getattr(loopml, name) is not None


def test_dir_lists_the_public_names_only() -> None:
    import loopml.pipelines  # a submodule imported so far is not a public name of loopml

    assert dir(loopml) == sorted(loopml.__all__)


def _fresh(code: str) -> None:
    """Run ``code`` in a fresh interpreter, where nothing of loopml is imported yet."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "statement",
    [
        "import loopml.models as m; assert callable(m.register)",
        "from loopml.models import register, load, ModelVersion, EvaluationResult",
        "import loopml; assert loopml.models.register is loopml.registry.register",
        "import sys, loopml.models; assert loopml.models is sys.modules['loopml.models']",
        "from loopml import models; import loopml.registry as r; assert models.load is r.load",
        "import loopml.data; from loopml.data import register, DatasetVersion",
        "import loopml.pipelines; from loopml.pipelines import step, PipelineRun",
        "import loopml.serving; from loopml.serving import predictions",
        "import loopml.tracking; from loopml.tracking import Run, start_run",
    ],
)
def test_every_documented_import_form_works_in_a_fresh_interpreter(statement: str) -> None:
    _fresh(statement)


def test_loopml_models_reexports_the_registry_surface() -> None:
    import loopml.models
    import loopml.registry

    assert loopml.models.__all__ == loopml.registry.__all__
    for name in loopml.models.__all__:
        assert getattr(loopml.models, name) is getattr(loopml.registry, name)


def test_every_error_derives_from_loopml_error() -> None:
    for name in loopml.errors.__all__:
        error = getattr(loopml.errors, name)
        if issubclass(error, Warning):  # warnings have their own root
            assert issubclass(error, loopml.errors.LoopmlWarning)
        else:
            assert issubclass(error, loopml.errors.LoopmlError)


def test_importing_loopml_does_no_io_starts_no_thread_and_loads_nothing_heavy(
    tmp_path: object,
) -> None:
    probe = (
        "import sys, threading, json, os\n"
        "before = set(os.listdir('.'))\n"
        "import loopml\n"
        "heavy = [m for m in ('sqlalchemy', 'pandas', 'numpy', 'sklearn', 'pyarrow', 'alembic',"
        " 'loopml.models', 'loopml.registry', 'loopml.data', 'loopml.pipelines')"
        " if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'threads': threading.active_count(),"
        " 'new_files': sorted(set(os.listdir('.')) - before)}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=str(tmp_path), capture_output=True, text=True, check=True
    )
    report = json.loads(out.stdout)
    assert report == {"heavy": [], "threads": 1, "new_files": []}
