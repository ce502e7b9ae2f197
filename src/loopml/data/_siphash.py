"""SipHash-2-4 of many byte strings at once, in NumPy: pandas' string hash without pandas.

The sketches name categories by a 64-bit hash, stored in saved sketches and profiles,
so the hash must never change: it is ``pandas.util.hash_array`` of the UTF-8 bytes
(SipHash-2-4 under pandas' key ``0123456789123456``, then pandas' mixing step).
Importing pandas for it cost a drift check on two Parquet files 37 MiB resident; this
computes the same numbers (``tests/data/test_siphash.py`` compares them with pandas')
vectorised across the strings: one SipHash compression per 8-byte word, all the
strings with a word at that position at once.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["siphash_strings"]

U64 = npt.NDArray[np.uint64]

_KEY = b"0123456789123456"  # pandas' default hash_key
_K0 = np.uint64(int.from_bytes(_KEY[:8], "little"))
_K1 = np.uint64(int.from_bytes(_KEY[8:], "little"))
_INIT = (
    np.uint64(0x736F6D6570736575) ^ _K0,
    np.uint64(0x646F72616E646F6D) ^ _K1,
    np.uint64(0x6C7967656E657261) ^ _K0,
    np.uint64(0x7465646279746573) ^ _K1,
)
# pandas' _hash_ndarray spreads the SipHash values with the SplitMix64 finaliser's steps.
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def siphash_strings(values: pa.Array) -> U64:
    """``pandas.util.hash_array(values, categorize=False)`` of strings or bytes, as uint64.

    Args:
        values: A string, large string or (large) binary Arrow array without nulls.

    Returns:
        One hash per value.
    """
    raw = values.cast(pa.large_binary())
    n = len(raw)
    if n == 0:
        return np.empty(0, dtype=np.uint64)
    offsets = np.frombuffer(raw.buffers()[1], dtype=np.int64, count=n + 1, offset=raw.offset * 8)
    data = raw.buffers()[2]
    blob = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, np.uint8)
    lengths = np.diff(offsets)
    words = _padded_words(blob[offsets[0] : offsets[-1]], offsets - offsets[0], lengths)
    v0, v1, v2, v3 = (np.full(n, v, dtype=np.uint64) for v in _INIT)
    count = lengths // 8 + 1  # the last word holds the tail bytes and the length
    # Longest first, so the strings that still have a word at position j are a prefix.
    order = np.argsort(-count, kind="stable")
    first = (np.cumsum(count) - count)[order]
    count = count[order]
    with np.errstate(over="ignore"):
        for j in range(int(count[0])):
            a = int(np.searchsorted(-count, -j, side="left"))  # count > j for [:a]
            m = words[first[:a] + j]
            v3[:a] ^= m
            _rounds(2, v0[:a], v1[:a], v2[:a], v3[:a])
            v0[:a] ^= m
        v2 ^= np.uint64(0xFF)
        _rounds(4, v0, v1, v2, v3)
        h = v0 ^ v1 ^ v2 ^ v3
        h ^= h >> np.uint64(30)
        h *= _MIX1
        h ^= h >> np.uint64(27)
        h *= _MIX2
        h ^= h >> np.uint64(31)
    out = np.empty(n, dtype=np.uint64)
    out[order] = h
    return out


def _padded_words(
    blob: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
) -> U64:
    """Each string's bytes zero-padded to whole 8-byte words, its length mod 256 last."""
    count = lengths // 8 + 1
    word_start = np.cumsum(count) - count
    padded = np.zeros(int(count.sum()) * 8, dtype=np.uint8)
    # Byte k of string i goes to 8 * word_start[i] + k.
    shift = np.repeat(8 * word_start - starts[:-1], lengths)
    padded[np.arange(blob.size) + shift] = blob
    padded[8 * (word_start + count) - 1] = (lengths & 0xFF).astype(np.uint8)
    return padded.view("<u8").astype(np.uint64, copy=False)


def _rounds(times: int, v0: U64, v1: U64, v2: U64, v3: U64) -> None:
    """``times`` SipRounds, in place (the arguments may be views)."""
    for _ in range(times):
        v0 += v1
        _rotl(v1, 13)
        v1 ^= v0
        _rotl(v0, 32)
        v2 += v3
        _rotl(v3, 16)
        v3 ^= v2
        v0 += v3
        _rotl(v3, 21)
        v3 ^= v0
        v2 += v1
        _rotl(v1, 17)
        v1 ^= v2
        _rotl(v2, 32)


def _rotl(x: U64, b: int) -> None:
    high = x >> np.uint64(64 - b)
    x <<= np.uint64(b)
    x |= high
