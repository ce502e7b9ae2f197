"""``loopml predict``: batch-score a Parquet or CSV file with a model or an endpoint.

A thin face over :func:`loopml.serving._scoring.score_file`: it streams the input in
chunks, writes the input columns plus the predictions to a Parquet file (atomically:
an existing output survives any failure), and shows a Rich progress bar on stderr
when stderr is an interactive terminal. The one-line summary (or ``--json``) goes
to stdout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from loopml.cli._client import open_client
from loopml.cli._format import fmt_duration
from loopml.cli._output import out, print_json

if TYPE_CHECKING:
    from loopml.serving._scoring import ScoringResult

__all__ = ["predict"]


def predict(
    model_or_endpoint: Annotated[
        str,
        typer.Argument(
            help="A model reference (credit/7, credit@champion, models:/credit) or an "
            "endpoint name (its primary route with the largest weight is used).",
            metavar="MODEL_OR_ENDPOINT",
        ),
    ],
    source: Annotated[
        str,
        typer.Argument(
            help="Input: a .parquet or .csv file, a folder of Parquet files, or a URL.",
            metavar="INPUT",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="The Parquet file to write (replaced atomically)."),
    ],
    chunk_rows: Annotated[
        int | None,
        typer.Option(
            "--chunk-rows",
            help="Rows predicted, and held in memory, at a time (default: 50,000).",
            show_default=False,
        ),
    ] = None,
    proba: Annotated[
        bool,
        typer.Option(
            "--probabilities",
            "--proba",
            help="Also write one proba_<class> column per class (the model needs predict_proba).",
        ),
    ] = False,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Project (default: LOOPML_PROJECT).")
    ] = None,
    trust: Annotated[
        bool,
        typer.Option(
            "--trust", help="Load pickled (pyfunc) models registered by someone other than you."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Score every row of INPUT and write it with its predictions to a Parquet file.

    A name that is both an endpoint and a model means the endpoint; write
    NAME@latest for the model's newest version.
    """
    from loopml import settings
    from loopml.serving._scoring import DEFAULT_CHUNK_ROWS, score_file

    with open_client() as client, _progress_bar() as on_progress:
        result = score_file(
            source,
            output,
            model_or_endpoint,
            store=client.store,
            artifacts=client.artifacts,
            project=settings.project(project),
            chunk_rows=DEFAULT_CHUNK_ROWS if chunk_rows is None else chunk_rows,
            proba=proba,
            trust=trust,
            on_progress=on_progress,
        )
    if as_json:
        print_json(result)
        return
    out().print(summary(result), highlight=False, markup=False, soft_wrap=True)


def summary(result: ScoringResult) -> str:
    """The one-line summary: rows, chunks, the version (and endpoint), output and time."""
    via = (
        "" if result.endpoint is None else f" via endpoint {result.endpoint} rev {result.revision}"
    )
    chunks = "1 chunk" if result.chunks == 1 else f"{result.chunks} chunks"
    return (
        f"Scored {result.rows:,} rows ({chunks}) with {result.model_version}{via} "
        f"→ {result.destination} in {fmt_duration(result.seconds)}."
    )


@contextmanager
def _progress_bar() -> Iterator[Callable[[int, int | None], None]]:
    """Yield an ``on_progress`` callback drawing a transient bar on an interactive stderr."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    progress = Progress(
        TextColumn("Scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_interactive,
    )
    task = progress.add_task("scoring", total=None)

    def update(done: int, total: int | None) -> None:
        progress.update(task, completed=done, total=total)

    with progress:
        yield update
