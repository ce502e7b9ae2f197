"""Code fingerprints and cache keys: change code, params or inputs -> miss; nothing -> hit."""

from __future__ import annotations

import functools
import importlib
import json
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loopml.errors import InvalidParameter
from loopml.pipelines import _fingerprint, _versions
from loopml.pipelines._cache_key import cache_key
from loopml.pipelines._fingerprint import code_fingerprint

HELPERS = """
import math

THRESHOLD = 0.5


def deep(x):
    return x * THRESHOLD


def clean(x):
    return deep(x) + math.floor(x)
"""

STEPS = '''
import helpers


def train(x):
    """Train the model."""
    return helpers.clean(x) * 2
'''


class Project:
    """Writes small project modules into a fresh folder per version and imports them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions = 0
        self.names: set[str] = set()

    def load(self, **sources: str) -> types.SimpleNamespace:
        folder = self.root / f"v{self.versions}"
        self.versions += 1
        folder.mkdir()
        for name, text in sources.items():
            (folder / f"{name}.py").write_text(textwrap.dedent(text))
            sys.modules.pop(name, None)
        self.names.update(sources)
        sys.path.insert(0, str(folder))
        importlib.invalidate_caches()
        try:
            modules = {name: importlib.import_module(name) for name in sources}
        finally:
            sys.path.remove(str(folder))
        return types.SimpleNamespace(folder=folder, **modules)

    def close(self) -> None:
        for name in self.names:
            sys.modules.pop(name, None)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    made = Project(tmp_path)
    yield made
    made.close()


def train_fingerprint(project: Project, steps: str = STEPS, helpers: str = HELPERS) -> str:
    return code_fingerprint(project.load(helpers=helpers, steps=steps).steps.train)


# --- code_fingerprint: what does not change it -------------------------------------------


def test_same_code_gives_the_same_fingerprint_in_another_process(project: Project) -> None:
    steps = STEPS + "\ncheck = lambda x: x in {'a', 'b', 'c', 'd'}  # bytecode, frozenset\n"
    loaded = project.load(helpers=HELPERS, steps=steps)
    here = [code_fingerprint(loaded.steps.train), code_fingerprint(loaded.steps.check)]
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(loaded.folder)!r})\n"
        "import steps\n"
        "from loopml.pipelines._fingerprint import code_fingerprint\n"
        "print(json.dumps([code_fingerprint(steps.train), code_fingerprint(steps.check)]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout) == here


def test_comments_blank_lines_docstrings_and_formatting_do_not_change_it(
    project: Project,
) -> None:
    reformatted = '''
    import helpers



    def train(x):
        # a comment that explains nothing
        """A new docstring."""

        return (
            helpers.clean(x)    *   2   # trailing comment
        )
    '''
    helpers_with_docs = '"""Helpers."""\n' + HELPERS.replace(
        "def deep(x):\n", 'def deep(x):\n    """Scale."""\n\n'
    )
    assert train_fingerprint(project) == train_fingerprint(project, reformatted, helpers_with_docs)


def test_unrelated_project_code_does_not_change_it(project: Project) -> None:
    extra = HELPERS + "\n\ndef unused():\n    return 42\n"
    assert train_fingerprint(project) == train_fingerprint(project, helpers=extra)


def test_reload_after_an_edit_is_seen(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    loaded = project.load(helpers=HELPERS, steps=STEPS)
    before = code_fingerprint(loaded.steps.train)
    (loaded.folder / "steps.py").write_text(STEPS.replace("* 2", "* 20"))
    monkeypatch.syspath_prepend(str(loaded.folder))
    reloaded = importlib.reload(loaded.steps)
    assert code_fingerprint(reloaded.train) != before


# --- code_fingerprint: what changes it ---------------------------------------------------


def test_changing_the_body_changes_it(project: Project) -> None:
    assert train_fingerprint(project) != train_fingerprint(project, STEPS.replace("* 2", "* 3"))


def test_changing_a_helper_two_levels_deep_changes_it(project: Project) -> None:
    changed = HELPERS.replace("return x * THRESHOLD", "return x * THRESHOLD + 1")
    assert train_fingerprint(project) != train_fingerprint(project, helpers=changed)


def test_changing_a_referenced_module_constant_changes_it(project: Project) -> None:
    changed = HELPERS.replace("THRESHOLD = 0.5", "THRESHOLD = 0.7")
    assert train_fingerprint(project) != train_fingerprint(project, helpers=changed)


def test_changing_a_constant_used_as_a_default_changes_it(project: Project) -> None:
    steps = "import helpers\n\ndef train(x, t=helpers.THRESHOLD):\n    return x * t\n"
    changed = HELPERS.replace("THRESHOLD = 0.5", "THRESHOLD = 0.7")
    assert train_fingerprint(project, steps) != train_fingerprint(project, steps, changed)


def test_a_library_is_represented_by_its_version(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = "import numpy as np\n\ndef train(x):\n    return np.mean(x)\n"
    before = train_fingerprint(project, steps)
    real = _versions.package_version
    monkeypatch.setattr(_versions, "VERSIONS", _versions.Versions())
    monkeypatch.setattr(
        _versions, "package_version", lambda name: "0.0.1" if name == "numpy" else real(name)
    )
    assert train_fingerprint(project, steps) != before


def test_changing_a_decorated_helper_changes_it(project: Project) -> None:
    helpers = HELPERS + "\n\nimport functools\n\n@functools.cache\ndef table(n):\n    return n\n"
    steps = "import helpers\n\ndef train(x):\n    return helpers.table(x)\n"
    changed = helpers.replace("return n\n", "return n + 1\n")
    assert train_fingerprint(project, steps, helpers) != train_fingerprint(project, steps, changed)


def local_decorator(function: Callable[..., object]) -> Callable[..., object]:
    @functools.wraps(function)
    def wrapper(*args: object) -> object:
        return function(*args)

    return wrapper


@pytest.mark.parametrize("decorator", [local_decorator, functools.singledispatch])
def test_a_decorated_step_is_followed_through_wrapped(
    project: Project, decorator: Callable[[Callable[..., object]], Callable[..., object]]
) -> None:
    # singledispatch's wrapper is library code: only __wrapped__ leads to the step.
    loaded = project.load(helpers=HELPERS, steps=STEPS)
    same = project.load(helpers=HELPERS, steps=STEPS)
    changed = project.load(helpers=HELPERS.replace("0.5", "0.6"), steps=STEPS)
    fingerprint = code_fingerprint(decorator(loaded.steps.train))
    assert fingerprint == code_fingerprint(decorator(same.steps.train))
    assert fingerprint != code_fingerprint(decorator(changed.steps.train))


def test_changing_a_project_class_method_changes_it(project: Project) -> None:
    helpers = HELPERS + "\n\nclass Scaler:\n    def scale(self, x):\n        return deep(x)\n"
    steps = "from helpers import Scaler\n\ndef train(x):\n    return Scaler().scale(x)\n"
    changed = helpers.replace("THRESHOLD = 0.5", "THRESHOLD = 0.9")
    assert train_fingerprint(project, steps, helpers) != train_fingerprint(project, steps, changed)


def test_an_import_inside_the_step_is_followed(project: Project) -> None:
    steps = "def train(x):\n    from helpers import clean\n    return clean(x)\n"
    changed = HELPERS.replace("THRESHOLD = 0.5", "THRESHOLD = 0.9")
    assert train_fingerprint(project, steps) != train_fingerprint(project, steps, changed)


# --- code_fingerprint: shapes of code ----------------------------------------------------


def test_mutual_recursion_terminates(project: Project) -> None:
    helpers = (
        "def even(n):\n    return n == 0 or odd(n - 1)\n\n"
        "def odd(n):\n    return n != 0 and even(n - 1)\n"
    )
    steps = "import helpers\n\ndef train(n):\n    return helpers.even(n)\n"
    first = train_fingerprint(project, steps, helpers)
    assert first == train_fingerprint(project, steps, helpers)
    assert first != train_fingerprint(project, steps, helpers.replace("n - 1)\n", "n - 2)\n", 1))


def test_lambdas_work_and_differ_by_body() -> None:
    assert code_fingerprint(lambda x: x + 1) == code_fingerprint(lambda x: x + 1)
    assert code_fingerprint(lambda x: x + 1) != code_fingerprint(lambda x: x + 2)


def test_nested_functions_cover_their_closures() -> None:
    def make(k: int) -> types.FunctionType:
        def inner(x: int) -> int:
            return x * k

        return inner  # type: ignore[return-value]

    assert code_fingerprint(make(1)) == code_fingerprint(make(1))
    assert code_fingerprint(make(1)) != code_fingerprint(make(2))


def test_a_self_recursive_nested_function_terminates() -> None:
    def outer() -> types.FunctionType:
        def fact(n: int) -> int:
            return 1 if n < 2 else n * fact(n - 1)

        return fact  # type: ignore[return-value]

    assert len(code_fingerprint(outer())) == 64


def test_code_without_source_is_hashed_from_bytecode() -> None:
    def define(body: str) -> types.FunctionType:
        namespace: dict[str, object] = {"__name__": "__main__"}
        exec(compile(f"def cell(x):\n    return {body}\n", "<cell>", "exec"), namespace)
        return namespace["cell"]  # type: ignore[return-value]

    assert code_fingerprint(define("x + 1")) == code_fingerprint(define("x + 1"))
    assert code_fingerprint(define("x + 1")) != code_fingerprint(define("x - 1"))


def test_partials_bound_methods_and_callable_instances_work(project: Project) -> None:
    loaded = project.load(helpers=HELPERS, steps=STEPS)
    partial = functools.partial(loaded.steps.train, 1)
    assert code_fingerprint(partial) != code_fingerprint(functools.partial(loaded.steps.train, 2))
    assert len(code_fingerprint(loaded.helpers.math.floor)) == 64
    assert len(code_fingerprint(json.dumps)) == 64


def test_library_and_stdlib_code_are_not_project_local(project: Project) -> None:
    loaded = project.load(helpers=HELPERS, steps=STEPS)
    walk = _fingerprint._Walk()
    assert walk.token(json.dumps) == ["stdlib", "json"]
    assert walk.token(code_fingerprint)[0] == "package"  # loopml itself
    assert walk.token(loaded.steps.train) == ["node", 0]


def test_a_non_callable_is_rejected() -> None:
    with pytest.raises(InvalidParameter, match="'function' parameter"):
        code_fingerprint(42)  # type: ignore[arg-type]


def test_fingerprints_are_stable_and_distinct_across_many_steps(project: Project) -> None:
    steps = "import helpers\n" + "".join(
        f"\ndef step{i}(x):\n    return helpers.clean(x) + {i}\n" for i in range(20)
    )
    loaded = project.load(helpers=HELPERS, steps=steps)
    functions = [getattr(loaded.steps, f"step{i}") for i in range(20)]
    cold = [code_fingerprint(function) for function in functions]
    warm = [code_fingerprint(function) for function in functions]
    assert warm == cold
    assert len(set(warm)) == 20


# --- cache_key ----------------------------------------------------------------------------

CODE = "c" * 64
BASE = {
    "step_name": "train",
    "code": CODE,
    "inputs": {"features": "f" * 64, "labels": "l" * 64},
    "constants": {"alpha": 0.5, "layers": [32, 16], "options": {"a": 1, "b": 2}},
    "packages": ["numpy"],
}


def key(**changes: object) -> str:
    return cache_key(**{**BASE, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {"step_name": "evaluate"},
        {"code": "d" * 64},
        {"inputs": {"features": "g" * 64, "labels": "l" * 64}},
        {"inputs": {"features": "f" * 64}},
        {"constants": {"alpha": 0.6, "layers": [32, 16], "options": {"a": 1, "b": 2}}},
        {"constants": {"alpha": 0.5, "layers": [32, 16], "options": {"a": 1, "b": 3}}},
        {"constants": {"alpha": 0.5, "layers": [16, 32], "options": {"a": 1, "b": 2}}},
        {"packages": ["numpy", "pandas"]},
        {"packages": []},
    ],
    ids=lambda changes: ",".join(changes),
)
def test_cache_key_changes_with_each_part(changes: dict[str, object]) -> None:
    assert key(**changes) != key()


def test_cache_key_ignores_mapping_and_package_order() -> None:
    assert key() == key(
        inputs={"labels": "l" * 64, "features": "f" * 64},
        constants={"options": {"b": 2, "a": 1}, "layers": [32, 16], "alpha": 0.5},
        packages=["numpy", "numpy"],
    )
    assert key(packages=["numpy", "pandas"]) == key(packages=["pandas", "NumPy>=1.26"])


def test_cache_key_changes_with_a_package_version(monkeypatch: pytest.MonkeyPatch) -> None:
    before = key()
    monkeypatch.setattr(_versions, "VERSIONS", _versions.Versions())
    monkeypatch.setattr(_versions, "package_version", lambda name: "0.0.1")
    assert key() != before


def test_cache_key_tells_constant_types_apart() -> None:
    assert key(constants={"x": 1}) != key(constants={"x": 1.0})
    assert key(constants={"x": 1}) != key(constants={"x": True})
    assert key(constants={"x": "1"}) != key(constants={"x": 1})
    assert key(constants={"x": {"$type": "set", "$items": [1]}}) != key(constants={"x": {1}})


def test_cache_key_accepts_constants_that_are_not_json() -> None:
    assert key(constants={"x": {3, 1, 2}}) == key(constants={"x": {2, 3, 1}})
    assert key(constants={"x": {1: "a", 2: "b"}}) == key(constants={"x": {2: "b", 1: "a"}})
    assert key(constants={"x": float("nan")}) == key(constants={"x": float("nan")})
    assert key(constants={"x": Path("a")}) != key(constants={"x": Path("b")})


def test_cache_key_counts_a_missing_package_as_not_installed() -> None:
    missing = "loopml-no-such-distribution"
    assert key(packages=[missing]) == key(packages=[missing])
    assert key(packages=[missing]) != key(packages=[])


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"packages": "numpy"}, "wrap it in a list"),
        ({"packages": ["=="]}, "distribution names"),
        ({"step_name": ""}, "'step_name' parameter"),
        ({"inputs": {"df": 3}}, "'inputs' parameter"),
    ],
)
def test_cache_key_rejects_bad_arguments(changes: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidParameter, match=match):
        key(**changes)


def test_a_wrapped_cycle_terminates() -> None:
    def first() -> None: ...

    def second() -> None: ...

    first.__wrapped__ = second  # type: ignore[attr-defined]
    second.__wrapped__ = first  # type: ignore[attr-defined]
    assert len(code_fingerprint(first)) == 64
