"""Canary analysis: false decisions and detection speed of the always-valid test vs peeking.

Simulates canaries whose error rate is compared at a look every ``--step`` requests per
arm (default 50) up to ``--max`` per arm (default 20,000), seeded, and decides each look
three ways:

* ``mSPRT``: loopml's rule (``loopml.automation._sequential``: the same moment and
  boundary functions ``decide`` uses, default policy, alpha 0.05, margin 0, at least
  500 requests per arm before any verdict);
* ``peeking z``: the two-proportion z-test (pooled variance, two-sided 5 %) repeated at
  every look after the same 500 requests: what a dashboard with a fixed threshold does;
* ``fixed z``: the same z-test once, at ``--fixed-n`` requests per arm (default 2,300:
  80 % power for 1 % → 2 % planned in advance), no look before.

For A/A canaries (1 % vs 1 %) any promote or rollback is false; for 1 % → 2 % the table
gives the power (rolled back before the maximum) and the median requests per arm at the
decision. Usage: ``.venv/bin/python bench/canary_analysis.py [--canaries 2000] [--markdown]``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import numpy as np
from scipy.stats import beta, norm

from loopml.automation._sequential import CanaryPolicy, boundary, proportion_moments

POLICY = CanaryPolicy()


def simulate(rate_a: float, rate_b: float, args: argparse.Namespace, seed: int):
    rng = np.random.default_rng(seed)
    looks = args.max // args.step
    x_a = np.cumsum(rng.binomial(args.step, rate_a, (args.canaries, looks)), axis=1)
    x_b = np.cumsum(rng.binomial(args.step, rate_b, (args.canaries, looks)), axis=1)
    n_a = args.step * np.arange(1, looks + 1.0)
    n_b = n_a
    return np.broadcast_to(n_a, x_a.shape), x_a, np.broadcast_to(n_b, x_b.shape), x_b


def first_look(z: np.ndarray, critical: np.ndarray | float, smaller: np.ndarray):
    """Per canary: decided at all, decided "worse", the smaller arm's requests then."""
    signal = (np.abs(z) > critical) & (smaller >= POLICY.min_samples_per_arm)
    decided = signal.any(axis=1)
    rows, look = np.arange(len(signal)), signal.argmax(axis=1)
    at = np.where(decided, smaller[rows, look], np.nan)
    return decided, decided & (z[rows, look] > 0), at


def msprt(n_a, x_a, n_b, x_b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    value_a, value_b, variance = proportion_moments(n_a, x_a, n_b, x_b)
    smaller = np.minimum(n_a, n_b)
    c = boundary(smaller, alpha=POLICY.alpha, mixing_samples=POLICY.mixing_samples)
    return first_look((value_b - value_a) / np.sqrt(variance), c, smaller)


def pooled_z(n_a, x_a, n_b, x_b) -> np.ndarray:
    pooled = (x_a + x_b) / (n_a + n_b)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(se > 0, (x_b / n_b - x_a / n_a) / se, 0.0)


def peeking(n_a, x_a, n_b, x_b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = pooled_z(n_a, x_a, n_b, x_b)
    return first_look(z, norm.ppf(1 - POLICY.alpha / 2), np.minimum(n_a, n_b))


def fixed(n_a, x_a, n_b, x_b, fixed_n: int, step: int) -> tuple[np.ndarray, ...]:
    look = fixed_n // step - 1
    z = pooled_z(n_a[:, look], x_a[:, look], n_b[:, look], x_b[:, look])
    decided = np.abs(z) > norm.ppf(1 - POLICY.alpha / 2)
    return decided, decided & (z > 0), np.where(decided, float(n_a[0, look]), np.nan)


def interval(hits: int, total: int) -> str:
    low = beta.ppf(0.025, hits, total - hits + 1) if hits else 0.0
    high = beta.ppf(0.975, hits + 1, total - hits) if hits < total else 1.0
    return f"[{low:.3f}, {high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canaries", type=int, default=2_000)
    parser.add_argument("--step", type=int, default=50, help="requests per arm between looks")
    parser.add_argument("--max", type=int, default=20_000, help="requests per arm at most")
    parser.add_argument("--fixed-n", type=int, default=2_300)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = []
    for label, rate_b, seed in (
        ("A/A 1 % vs 1 %", 0.01, args.seed),
        ("1 % → 2 %", 0.02, args.seed + 1),
    ):
        arrays = simulate(0.01, rate_b, args, seed)
        for method, (decided, worse, at) in (
            ("mSPRT (loopml)", msprt(*arrays)),
            ("peeking z", peeking(*arrays)),
            (f"fixed z at {args.fixed_n}", fixed(*arrays, args.fixed_n, args.step)),
        ):
            hits = int(decided.sum()) if rate_b == 0.01 else int(worse.sum())
            share = hits / args.canaries
            detected = worse.any() and rate_b != 0.01  # A/A: no detection to time
            median = float(np.nanmedian(np.where(worse, at, np.nan))) if detected else math.nan
            rows.append((label, method, share, interval(hits, args.canaries), median))
    seconds = time.perf_counter() - started
    header = ("canaries", "method", "false decisions / power", "95% CI", "median req/arm")
    print(
        f"{args.canaries} canaries per row, a look every {args.step} requests per arm up to "
        f"{args.max}, 50/50 split, alpha {POLICY.alpha}, "
        f"min {POLICY.min_samples_per_arm}/arm; {seconds:.1f} s, load average "
        f"{os.getloadavg()[0]:.1f}, {platform.machine()} x {os.cpu_count()} CPUs"
    )
    widths = (16, 18, 24, 16, 15)
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(":---" for _ in header) + "|")
    else:
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for label, method, share, ci, median in rows:
        cells = (label, method, f"{share:.3f}", ci, "-" if math.isnan(median) else f"{median:,.0f}")
        if args.markdown:
            print("| " + " | ".join(cells) + " |")
        else:
            print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))


if __name__ == "__main__":
    main()
