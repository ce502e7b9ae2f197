"""The version of loopml (one place; the package and the CLI read it here)."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
