"""Housekeeping over the store and the artifact store together (garbage collection)."""

from __future__ import annotations

from loopml.maintenance._gc import GcReport, KeptItem, PurgeReport, collect_garbage

__all__ = ["GcReport", "KeptItem", "PurgeReport", "collect_garbage"]
