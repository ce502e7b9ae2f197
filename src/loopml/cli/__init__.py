"""The ``loopml`` command line: a thin face over the service layer (Typer + Rich).

Example:
    $ loopml demo
    $ loopml runs list --project demo --order-by "metrics.test_auc DESC"
"""

from __future__ import annotations

from loopml.cli._app import app, main

__all__ = ["app", "main"]
