"""A Griffe extension for the API reference: ``Example:`` sections are examples.

loopml's docstrings follow the Google style with a singular ``Example:`` heading
(as Napoleon reads it); Griffe's Google parser knows only the plural and would
render the doctest as prose (and read ``[1, 0]`` output as a link). Loaded by
``mkdocs.yml``; the source files are left as they are.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADING = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Read a docstring's ``Example:`` heading as ``Examples:``."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the heading when the object is created, before its docstring is parsed."""
        if obj.docstring is not None:
            obj.docstring.value = _HEADING.sub(r"\1Examples:", obj.docstring.value)
