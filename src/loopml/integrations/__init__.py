"""Integrations with other libraries of the field, each in its own module, each imported lazily.

- :mod:`loopml.integrations.optuna`: an Optuna study as a parent run, each trial a
  child run (``pip install 'loopml[optuna]'``).

Importing this package imports none of those libraries.
"""

from __future__ import annotations

__all__: list[str] = []
