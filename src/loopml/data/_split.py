"""Reproducible row splits (train/valid/test), optionally stratified."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.errors import InvalidParameter

__all__ = ["split_indices"]


def split_indices(
    table: pa.Table,
    fractions: Mapping[str, float],
    *,
    seed: int,
    stratify: str | None = None,
) -> dict[str, np.ndarray]:
    """Assign every row to one part; the same inputs always give the same rows.

    Rows are shuffled with ``numpy.random.default_rng(seed)``; with ``stratify``
    each class is shuffled and cut separately, so every part keeps the class mix.
    Each part's indices are returned in ascending order (the parts keep the
    original row order).

    Raises:
        InvalidParameter: empty or non-positive fractions, fractions that do not sum
            to 1, a non-int seed, or an unknown ``stratify`` column.
    """
    _check(fractions, seed)
    names = list(fractions)
    weights = np.array([fractions[n] for n in names], dtype=float)
    rng = np.random.default_rng(seed)
    if stratify is None:
        groups = [np.arange(table.num_rows)]
    else:
        if stratify not in table.column_names:
            raise InvalidParameter(
                f"The 'stratify' parameter of split must name a column; got {stratify!r} "
                f"(columns: {table.column_names})."
            )
        codes = pc.dictionary_encode(table[stratify]).combine_chunks().indices
        labels = codes.fill_null(-1).to_numpy(zero_copy_only=False)
        groups = [np.flatnonzero(labels == code) for code in np.unique(labels)]
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for group in groups:
        shuffled = rng.permutation(group)
        bounds = _cut_points(len(shuffled), weights)
        for name, start, stop in zip(names, bounds[:-1], bounds[1:], strict=True):
            parts[name].append(shuffled[start:stop])
    return {n: np.sort(np.concatenate(chunks)) for n, chunks in parts.items()}


def _cut_points(count: int, weights: np.ndarray) -> list[int]:
    """Cumulative boundaries; rounding so sizes add up to ``count`` exactly."""
    cumulative = np.cumsum(weights) / weights.sum()
    return [0, *(round(count * c) for c in cumulative[:-1]), count]


def _check(fractions: Mapping[str, float], seed: int) -> None:
    if not isinstance(fractions, Mapping) or not fractions:
        raise InvalidParameter(
            "The 'fractions' parameter of split must be a non-empty mapping like "
            f"{{'train': 0.8, 'test': 0.2}}; got {fractions!r}."
        )
    for name, value in fractions.items():
        if not isinstance(name, str) or not name:
            raise InvalidParameter(f"Split names must be non-empty str; got {name!r}.")
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise InvalidParameter(
                f"The fraction of split {name!r} must be a number > 0; got {value!r}."
            )
    total = sum(fractions.values())
    if not math.isclose(total, 1.0, abs_tol=1e-9):
        raise InvalidParameter(f"Split fractions must sum to 1; got {total}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidParameter(f"The 'seed' parameter of split must be an int; got {seed!r}.")
