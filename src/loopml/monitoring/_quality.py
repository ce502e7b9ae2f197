"""Production data quality: a dataset's saved schema and expectations applied to served inputs.

The rules are the ones ``loopml.data.validate`` applies to a new delivery (types,
ranges, allowed values, null rates, custom checks registered in this process); each
becomes a ``data_quality`` :class:`CheckResult` whose statistic is the share of
offending rows, with the count and a sample of them in ``detail``. Extra columns
(the prediction log's own) are not judged; a schema column the current data lacks is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from loopml.monitoring._results import CheckResult

if TYPE_CHECKING:
    from loopml.data import DataClient

__all__ = ["data_quality"]

_SAMPLE = 5


def data_quality(
    data: DataClient, table: pa.Table, *, against: str, project: str, columns: list[str]
) -> list[CheckResult]:
    """Judge ``table``'s ``columns`` by the schema and expectations of dataset ``against``.

    Args:
        data: The data client.
        table: The current rows (model inputs among other columns).
        against: ``name:N`` (the schema in force for that version) or ``name``.
        project: The dataset's project.
        columns: The input columns to judge; other columns of ``table`` are ignored.

    Returns:
        One result per rule; ``alert`` when any row breaks it.
    """
    present = [c for c in columns if c in table.column_names]
    report = data.validate(
        table.select(present), against=against, project=project, expectations=(), format=None
    )
    rows = max(report.row_count, 1)
    results: list[CheckResult] = []
    for check in report.checks:
        if check.column is not None and check.column not in columns:
            continue
        share = check.failing_count / rows
        results.append(
            CheckResult(
                check="data_quality",
                column=check.column or "",
                method=check.kind,
                statistic=share,
                threshold=0.0,
                status="ok" if check.passed else "alert",
                message=check.message or check.name,
                detail={
                    "rule": check.name,
                    "failing": check.failing_count,
                    "rows": report.row_count,
                    "sample": [dict(s) for s in check.failing_sample[:_SAMPLE]],
                    "against": against,
                },
            )
        )
    return results
