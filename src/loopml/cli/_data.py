"""``loopml data …``: register, list, inspect, validate, compare and edit datasets.

Every command is a thin face over :mod:`loopml.data`; errors it raises (unknown
dataset, unreadable file, a schema that does not parse) become the app's one red
line and exit code 1.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.syntax import Syntax

from loopml.cli import _data_delete
from loopml.cli import _data_views as views
from loopml.cli._output import out, print_json
from loopml.errors import DataValidationError, LoopmlError, SchemaError

if TYPE_CHECKING:
    from loopml.data import DatasetSchema, DatasetVersion, Expectation, ValidationReport

__all__ = ["app", "edit_document", "parse_document", "schema_document"]

app = typer.Typer(
    help="Register, inspect, validate and compare versioned datasets.", no_args_is_help=True
)


class Format(StrEnum):
    """The file formats ``--format`` can force."""

    csv = "csv"
    parquet = "parquet"
    jsonl = "jsonl"


_Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
_Project = Annotated[
    str | None, typer.Option("--project", "-p", help="Project (default: LOOPML_PROJECT).")
]
_Name = Annotated[str, typer.Argument(help="The dataset name.", metavar="NAME")]
_Source = Annotated[
    str,
    typer.Argument(
        help="A CSV, Parquet (file or folder) or JSON-lines file, or a URL to one.",
        metavar="PATH",
    ),
]
_Trust = Annotated[
    bool,
    typer.Option(
        "--trust",
        help="Import stored custom checks named by 'module:function' path. This runs code "
        "chosen by whoever saved the schema: use it only if you trust them.",
    ),
]
_FormatOption = Annotated[
    Format | None,
    typer.Option("--format", help="Read the file as this format (default: from its suffix)."),
]


def _project_name(project: str | None) -> str:
    from loopml import settings

    return settings.project(project)


# -- data add ------------------------------------------------------------------------


@app.command("add")
def add(
    name: _Name,
    path: _Source,
    project: _Project = None,
    description: Annotated[
        str | None, typer.Option("--description", "-d", help="Free text about the dataset.")
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option(
            "--key", "-k", help="A key column (repeat for several); row order then does not count."
        ),
    ] = None,
    parent: Annotated[
        list[str] | None,
        typer.Option("--parent", help="A version this data was derived from, e.g. 'raw:3'."),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Quarantine a version that fails its checks, and exit 1."),
    ] = False,
    format: _FormatOption = None,
    trust: _Trust = False,
    as_json: _Json = False,
) -> None:
    """Register the data at PATH as the next version of dataset NAME (or find its twin).

    Identical data returns the existing version. The data is checked against the
    dataset's schema and expectations; the first version's schema is inferred.
    """
    import loopml.data

    try:
        version = loopml.data.register(
            name,
            path,
            project=project,
            description=description,
            parents=parent or (),
            key=key,
            strict=strict,
            format=format.value if format else None,
            trust=trust,
        )
    except DataValidationError as exc:
        report: ValidationReport | None = exc.report  # type: ignore[assignment]
        quarantined = loopml.data.get(exc.version, project=project) if exc.version else None
        _show_added(quarantined, report, existing=exc.existing, as_json=as_json)
        raise
    existing = not version.is_new
    report = (
        loopml.data.report(version.ref, project=project) if version.report_passed is False else None
    )
    _show_added(version, report, existing=existing, as_json=as_json)
    if version.version == 1 and version.is_new and not key and not as_json:
        _suggest_keys(version)
    if version.report_passed is False and (strict or version.status == "quarantined"):
        # Only an identical earlier version gets here: a new one is quarantined and raised.
        failed = len(report.failed_checks) if report else 0
        state = (
            "is quarantined"
            if version.status == "quarantined"
            else "was stored as ready (registered without --strict)"
        )
        message = (
            f"{version.ref} holds identical data and {state}; it failed {failed} check(s) "
            f"when it was registered (see 'loopml data show {version.ref}')."
        )
        if strict:
            raise DataValidationError(message, report=report, version=version.ref)
        if not as_json:
            out().print(f"warning: {message}", style="yellow", highlight=False)


def _suggest_keys(version: DatasetVersion) -> None:
    """Name the columns of a new, unkeyed dataset that look like row ids."""
    from loopml.data._infer import key_candidates

    candidates = key_candidates(version.profile.columns)
    if candidates:
        names = ", ".join(map(repr, candidates))
        out().print(
            f"hint: {names} look(s) like row ids, so the inferred schema puts no range on "
            f"them; to check that ids stay unique, mark them 'unique: true' with 'loopml data "
            f"schema {version.name} --edit' (or declare keys with --key when registering).",
            style="dim",
            highlight=False,
        )


def _show_added(
    version: DatasetVersion | None,
    report: ValidationReport | None,
    *,
    existing: bool,
    as_json: bool,
) -> None:
    if as_json:
        data: dict[str, Any] = views.version_json(version) if version else {}
        data["existing"] = existing
        data["report"] = None if report is None else report.to_dict()
        print_json(data)
        return
    console = out()
    if version is not None:
        console.print(views.version_panel(version, existing=existing))
    if report is None or report.passed:
        return
    if version is not None and version.status == "ready":
        console.print(
            f"warning: {version.ref} fails {len(report.failed_checks)} of "
            f"{len(report.checks)} checks; it is stored as ready (use --strict to quarantine "
            "failing data).",
            style="yellow",
            highlight=False,
        )
    for renderable in views.report_renderables(report, only_failing=True):
        console.print(renderable)


# -- data list / versions / show -----------------------------------------------------


@app.command("list")
def list_datasets(project: _Project = None, as_json: _Json = False) -> None:
    """List the datasets of a project with their latest usable version."""
    import loopml.data
    from loopml.cli._client import require_project

    require_project(project)
    datasets = loopml.data.datasets(project=project)
    if as_json:
        print_json([views.dataset_json(d) for d in datasets])
        return
    if not datasets:
        out().print(
            f"No datasets in project {_project_name(project)!r}. "
            "Register one with 'loopml data add NAME PATH'.",
            style="dim",
            highlight=False,
        )
        return
    out().print(views.datasets_table(datasets, _project_name(project)))


@app.command("versions")
def list_versions(
    name: _Name,
    project: _Project = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also list deleted versions (marked 'deleted').")
    ] = False,
    deleted: Annotated[bool, typer.Option("--deleted", help="List only deleted versions.")] = False,
    as_json: _Json = False,
) -> None:
    """List the versions of a dataset, oldest first, quarantined ones included.

    Deleted versions are left out unless --all (every version) or --deleted (only them).
    """
    import loopml.data

    if show_all and deleted:
        raise typer.BadParameter("use either --all or --deleted, not both.", param_hint="--deleted")
    which: Literal["hide", "show", "only"] = "only" if deleted else "show" if show_all else "hide"
    versions = loopml.data.versions(name, project=project, deleted=which)
    if as_json:
        print_json([views.version_json(v) for v in versions])
        return
    if not versions:
        hint = "" if which != "hide" else f" (deleted ones: 'loopml data versions {name} --all')"
        out().print(
            f"Dataset {name!r} has no {'deleted ' if deleted else ''}versions{hint}.",
            style="dim",
            highlight=False,
        )
        return
    out().print(views.versions_table(versions))


app.command("delete")(_data_delete.delete)
app.command("restore")(_data_delete.restore)


@app.command("show")
def show(
    ref: Annotated[
        str,
        typer.Argument(
            help="NAME (latest usable version), NAME:VERSION or NAME@latest.", metavar="REF"
        ),
    ],
    project: _Project = None,
    as_json: _Json = False,
) -> None:
    """Show a version: metadata, parents, column profiles and its stored validation result."""
    import loopml.data

    version = loopml.data.get(ref, project=project)
    report = loopml.data.report(version.ref, project=project)
    # A deleted version's metadata stays readable; the panel says it is deleted.
    if as_json:
        data = views.version_json(version, profile=True)
        data["report"] = None if report is None else report.to_dict()
        print_json(data)
        return
    console = out()
    console.print(views.version_panel(version))
    console.print(views.columns_table(version.profile))
    console.print()
    if report is None:
        console.print(
            "No checks ran when this version was registered: its dataset had no schema yet "
            "(the schema was inferred from it).",
            style="dim",
        )
        return
    for renderable in views.report_renderables(report, only_failing=not report.passed):
        console.print(renderable)


# -- data validate -------------------------------------------------------------------


@app.command("validate")
def validate(
    name: Annotated[
        str,
        typer.Argument(
            help="The dataset whose schema and checks apply: NAME or NAME@latest (its newest "
            "schema revision) or NAME:VERSION (the revision in force for that version).",
            metavar="REF",
        ),
    ],
    path: _Source,
    project: _Project = None,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write the report as a self-contained HTML page."),
    ] = None,
    format: _FormatOption = None,
    trust: _Trust = False,
    as_json: _Json = False,
) -> None:
    """Check the data at PATH against dataset REF's schema and expectations.

    Exits with status 1 when a check fails (after printing the report).
    """
    import loopml.data

    fmt = format.value if format else None
    report = loopml.data.validate(path, against=name, project=project, format=fmt, trust=trust)
    if html is not None:
        _write_html(report, path, fmt, html)
    if as_json:
        data = report.to_dict()
        data["html"] = None if html is None else str(html)
        print_json(data)
    else:
        console = out()
        for renderable in views.report_renderables(report, only_failing=False):
            console.print(renderable)
        if html is not None:
            console.print(f"HTML report: {html}", highlight=False)
    if not report.passed:
        raise typer.Exit(1)


def _write_html(report: ValidationReport, path: str, fmt: str | None, target: Path) -> None:
    """Write the report with the profile of the validated data (one or two more passes)."""
    from loopml.data._profile import build_profile
    from loopml.data._sources import open_source

    source = open_source(path, format=fmt)
    profile = build_profile(source.batches, source.schema)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(report.to_html(profile), encoding="utf-8")


# -- data diff -------------------------------------------------------------------------


@app.command("diff")
def diff(
    old: Annotated[
        str, typer.Argument(help="The reference version, e.g. 'credit:1'.", metavar="OLD")
    ],
    new: Annotated[
        str, typer.Argument(help="The version compared with it, e.g. 'credit:2'.", metavar="NEW")
    ],
    project: _Project = None,
    as_json: _Json = False,
) -> None:
    """Compare two versions: schema changes and, per column, statistics and drift (PSI)."""
    import loopml.data

    old_version = loopml.data.get(old, project=project)
    new_version = loopml.data.get(new, project=project)
    result = loopml.data.diff(old_version.ref, new_version.ref, project=project)
    # Deleted versions may be compared: only their stored profiles are read.
    deleted = [v.ref for v in (old_version, new_version) if v.deleted]
    if as_json:
        print_json(
            {"old": old_version.ref, "new": new_version.ref, "deleted": deleted, **result.to_dict()}
        )
        return
    console = out()
    for ref in deleted:
        console.print(f"note: {ref} is deleted (its metadata is compared).", style="magenta")
    for renderable in views.diff_renderables(old_version.ref, new_version.ref, result):
        console.print(renderable)


# -- data schema -----------------------------------------------------------------------


@app.command("schema")
def schema(
    name: _Name,
    project: _Project = None,
    edit: Annotated[
        bool,
        typer.Option("--edit", help="Edit schema and expectations in $VISUAL/$EDITOR, then save."),
    ] = False,
    set_file: Annotated[
        Path | None,
        typer.Option(
            "--set",
            help="Save a new revision from this YAML file ('schema:' and 'expectations:' keys).",
            metavar="FILE",
        ),
    ] = None,
    as_json: _Json = False,
) -> None:
    """Print a dataset's schema and expectations as YAML, or save a new revision."""
    import loopml.data

    if edit and set_file is not None:
        raise typer.BadParameter("use either --edit or --set, not both.", param_hint="--set")
    revision, current, expectations = loopml.data.get_schema(name, project=project)
    if set_file is not None:
        text = set_file.read_text(encoding="utf-8")
        if parse_document(text) == (current, expectations):
            _say(as_json, name, revision, f"No changes; the schema stays at revision {revision}.")
            return
        saved = _save(name, project, text)
        _say(as_json, name, saved, f"Saved revision {saved} of the schema of dataset {name!r}.")
        return
    if edit:
        original = edit_document(name, revision, current, expectations)
        path = _run_editor(original)
        text = path.read_text(encoding="utf-8")
        if text == original:
            path.unlink()
            _say(as_json, name, revision, f"No changes; the schema stays at revision {revision}.")
            return
        try:
            saved = _save(name, project, text)
        except SchemaError as exc:
            raise SchemaError(f"{exc} Nothing saved; your edit is kept in {path}.") from exc
        path.unlink()
        _say(as_json, name, saved, f"Saved revision {saved} of the schema of dataset {name!r}.")
        return
    if as_json:
        print_json(
            {
                "name": name,
                "revision": revision,
                "schema": current.to_dict(),
                "expectations": [e.to_dict() for e in expectations],
            }
        )
        return
    # The printed document is what --set reads back (and what --edit opens).
    document = schema_document(name, revision, current, expectations)
    console = out()
    if console.is_terminal:
        console.print(Syntax(document, "yaml", background_color="default"))
    else:
        sys.stdout.write(document)


def _say(as_json: bool, name: str, revision: int, message: str) -> None:
    if as_json:
        print_json({"name": name, "revision": revision})
    else:
        out().print(message, highlight=False)


def schema_document(
    name: str, revision: int, schema: DatasetSchema, expectations: list[Expectation]
) -> str:
    """The YAML of a schema revision as ``data schema`` prints it and ``--set`` reads it.

    The schema is under ``schema:``, the checks under ``expectations:``.
    """
    header = (
        f"# Schema and expectations of dataset {name!r} (revision {revision}).\n"
        f"# Save an edited copy with: loopml data schema {name} --set FILE\n"
        f"{_DOCUMENT_HELP}"
    )
    return header + _document_body(schema, expectations)


def edit_document(
    name: str, revision: int, schema: DatasetSchema, expectations: list[Expectation]
) -> str:
    """The YAML people edit: the schema under ``schema:``, the checks under ``expectations:``."""
    header = (
        f"# Schema and expectations of dataset {name!r} (revision {revision}).\n"
        "# Save and close the editor to store them as a new revision; leave the file\n"
        "# unchanged to keep the current one.\n"
        f"{_DOCUMENT_HELP}"
    )
    return header + _document_body(schema, expectations)


_DOCUMENT_HELP = (
    "# Per column: type (Arrow), nullable and optionally unique, min, max\n"
    "# (inclusive), allowed (a list), pattern (a regex). Expectations: a list of\n"
    "# {kind: range|in_set|regex|unique|not_null_rate|row_count|freshness|\n"
    "# expression|custom, ...}.\n"
)


def _document_body(schema: DatasetSchema, expectations: list[Expectation]) -> str:
    from loopml.data._schema import dump_yaml

    if expectations:
        body = {"schema": schema.to_dict(), "expectations": [e.to_dict() for e in expectations]}
        return dump_yaml(body)
    # An empty value, not "[]": entries can then be added below it as they are.
    example = "# - {kind: not_null_rate, column: COLUMN, min_rate: 0.99}\n"
    return dump_yaml({"schema": schema.to_dict()}) + "expectations:\n" + example


def parse_document(text: str) -> tuple[DatasetSchema | None, list[Expectation] | None]:
    """Read an edited document back; ``None`` for a part it leaves out (kept as is).

    Raises:
        SchemaError: the YAML does not parse, has other top-level keys, or holds an
            invalid schema or expectation (the message names it).
    """
    from loopml.data import DatasetSchema, expectations_from_yaml
    from loopml.data._schema import load_yaml

    data = load_yaml(text, what="schema and expectations")
    if not isinstance(data, dict):
        raise SchemaError(
            "The schema file must be a mapping with 'schema' and/or 'expectations' keys; "
            f"got {type(data).__name__}."
        )
    # 'name' and 'revision' (in the --json output) say where a document came from.
    unknown = sorted(map(str, set(data) - {"schema", "expectations", "name", "revision"}))
    if unknown:
        raise SchemaError(
            f"The schema file has unknown top-level key(s) {unknown}; "
            "expected 'schema' and/or 'expectations'."
        )
    schema = DatasetSchema.from_dict(data["schema"]) if "schema" in data else None
    # The whole text, so that error messages give line numbers in the file people edit.
    expectations = expectations_from_yaml(text) if "expectations" in data else None
    return schema, expectations


def _editor() -> list[str]:
    command = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    return shlex.split(command)


def _run_editor(text: str) -> Path:
    """Open the editor on ``text`` in a temp file; return the file once the editor exits."""
    handle, name = tempfile.mkstemp(prefix="loopml-schema-", suffix=".yaml")
    path = Path(name)
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(text)
    command = [*_editor(), str(path)]
    try:
        done = subprocess.run(command, check=False)
    except OSError as exc:
        path.unlink()
        raise LoopmlError(f"Cannot start the editor {command[0]!r}: {exc}.") from exc
    if done.returncode != 0:
        path.unlink()
        raise LoopmlError(
            f"The editor {command[0]!r} exited with status {done.returncode}; nothing saved."
        )
    return path


def _save(name: str, project: str | None, text: str) -> int:
    """Parse an edited document and store it as the next schema revision."""
    import loopml.data

    new_schema, new_expectations = parse_document(text)
    return loopml.data.save_schema(
        name, schema=new_schema, expectations=new_expectations, project=project
    )
