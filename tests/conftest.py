"""Fixtures shared by every test: an isolated LOOPML_HOME, and stores on every back-end.

``store_uri`` is parametrised over SQLite and PostgreSQL; each PostgreSQL test gets
a database of its own, created and dropped here, on the server named by
``LOOPML_TEST_POSTGRES_URL``. When that server cannot be reached the PostgreSQL
tests are skipped, with one line saying so at the end of the run; with
``LOOPML_REQUIRE_POSTGRES=1`` (CI sets it in ``.ci/run``) the run stops instead.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from loopml import settings
from loopml._urls import redact_text
from loopml.tracking import TrackingClient, _fluent

# The suite runs on shared machines where other work takes the CPU (CI included), so
# the default profile judges no example by its speed: no deadline and no `too_slow`
# health check. `HYPOTHESIS_PROFILE=strict` restores Hypothesis's own defaults for a
# quiet machine where slow generation is worth hearing about.
hypothesis_settings.register_profile(
    "busy", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.register_profile("strict", hypothesis_settings.get_profile("default"))
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "busy"))

_ISOLATED = (
    "LOOPML_STORE_URI",
    "LOOPML_ARTIFACT_URI",
    "LOOPML_PROJECT",
    "LOOPML_DEBUG",
    "LOOPML_REQUIRE_POSTGRES",
)


@pytest.fixture(autouse=True)
def loopml_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point LOOPML_HOME at a fresh folder and forget the default fluent client."""
    home = tmp_path / "loopml-home"
    monkeypatch.setenv("LOOPML_HOME", str(home))
    for name in _ISOLATED:
        monkeypatch.delenv(name, raising=False)
    _reset_fluent()
    yield home
    _reset_fluent()


def _reset_fluent() -> None:
    client = _fluent._client
    _fluent._stack.clear()
    if client is not None:
        client.close()
    _fluent._client = None
    _fluent._client_pid = None


def postgres_server_url() -> str:
    """URL of the PostgreSQL server used by the tests."""
    return str(settings.get("LOOPML_TEST_POSTGRES_URL"))


def _admin_connect():  # type: ignore[no-untyped-def]
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(postgres_server_url())
    return psycopg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=url.database,
        autocommit=True,
        connect_timeout=5,
    )


@functools.cache
def postgres_problem() -> str | None:
    """Why the PostgreSQL test server cannot be used, or None when it answers.

    Probed once per process (each xdist worker probes for itself).
    """
    try:
        with _admin_connect() as conn:
            conn.execute("SELECT 1")
    except ImportError as exc:
        return f"its driver is not installed ({exc}; pip install loopml[postgres])"
    except Exception as exc:
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def pytest_configure(config: pytest.Config) -> None:
    """With ``LOOPML_REQUIRE_POSTGRES=1``, stop before any test when the server is unusable."""
    if not settings.get("LOOPML_REQUIRE_POSTGRES") or hasattr(config, "workerinput"):
        return
    problem = postgres_problem()
    if problem is not None:
        raise pytest.UsageError(
            f"LOOPML_REQUIRE_POSTGRES=1 but PostgreSQL at {redact_text(postgres_server_url())} "
            f"is not usable: {problem}"
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests marked ``slow`` first, each group in its collected order.

    pytest-xdist hands tests out in this order (``--dist worksteal``, the Makefile):
    started first, the long tests run beside the short ones, and what is left at the
    end, when one worker takes over half of the other's queue, is short.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _skip_postgres(problem: str) -> None:
    pytest.skip(
        f"PostgreSQL at {redact_text(postgres_server_url())} is unreachable ({problem}): "
        "PostgreSQL tests skipped (LOOPML_REQUIRE_POSTGRES=1 makes this an error)"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Report every PostgreSQL skip at one place, so ``-ra`` folds them into ONE line."""
    report = yield
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and "LOOPML_REQUIRE_POSTGRES" in longrepr[2]:
        report.longrepr = (__file__, _skip_postgres.__code__.co_firstlineno, longrepr[2])
    return report


def create_postgres_database() -> str:
    """Create an empty database and return its SQLAlchemy URL."""
    from sqlalchemy.engine import make_url

    name = f"loopml_test_{uuid.uuid4().hex[:12]}"
    try:
        with _admin_connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # the server is part of the test machine; say so loudly
        pytest.fail(f"PostgreSQL at {postgres_server_url()} is not usable: {exc}")
    return make_url(postgres_server_url()).set(database=name).render_as_string(False)


def drop_postgres_database(url: str) -> None:
    """Drop a database made by :func:`create_postgres_database`."""
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    with _admin_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store URI on each back-end."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'loopml.db'}"
        return
    problem = postgres_problem()
    if problem is not None:
        _skip_postgres(problem)
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
def client(store_uri: str, tmp_path: Path) -> Iterator[TrackingClient]:
    """A TrackingClient on a fresh store (each back-end) and a local artifact folder."""
    tracking = TrackingClient(store_uri, str(tmp_path / "artifacts"))
    yield tracking
    tracking.close()


@pytest.fixture
def fluent_store(store_uri: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make the fluent API (loopml.start_run …) use ``store_uri``."""
    monkeypatch.setenv("LOOPML_STORE_URI", store_uri)
    _reset_fluent()
    return store_uri


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """An existing folder nobody, root included, can write into (immutable when run as root)."""
    import os
    import subprocess

    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() == 0:
        made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
        if made.returncode != 0:
            pytest.skip(f"cannot make a folder read-only for root: {made.stderr.decode()}")
        try:
            yield folder
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=False)
    else:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
