"""``loopml settings``: every ``LOOPML_*`` setting, its type, default, value and meaning.

Nothing secret is printed: a setting whose name says it holds a secret (a token, a
password, a key) shows only whether it is set, and URLs in any value or error lose
their credentials (``loopml._urls``).
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from loopml.cli._output import out, print_json

__all__ = ["show_settings", "shown_value"]

_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|(?:^|_)KEY(?:_|$)|CREDENTIAL")
_HIDDEN = "*** (set)"


def shown_value(name: str, value: Any) -> Any:
    """Return a setting's value as ``loopml settings`` prints it.

    A secret setting (by its name) shows ``*** (set)`` when set; any text has the
    credentials of URLs in it hidden (a store URL may carry a password).
    """
    if _SECRET_NAME.search(name) and value not in (None, ""):
        return _HIDDEN
    if isinstance(value, str):
        from loopml._urls import redact_text

        return redact_text(value)
    return value


def _shown_error(name: str, message: str) -> str:
    """A setting's parse error, without the raw value when the setting is secret."""
    from loopml._urls import redact_text

    raw = os.environ.get(name, "")
    return redact_text(message, (raw,) if _SECRET_NAME.search(name) else ())


def show_settings(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show every LOOPML_* setting: type, default, current value and what it does."""
    from loopml import settings
    from loopml.errors import SettingError

    rows: list[dict[str, Any]] = []
    for setting in settings.SETTINGS.values():
        row: dict[str, Any] = {
            "name": setting.name,
            "type": setting.type_name,
            "default": shown_value(setting.name, setting.default),
            "doc": setting.doc,
        }
        # A malformed value is shown, not fatal: this is where people look for it.
        try:
            row["value"] = shown_value(setting.name, setting.value())
        except SettingError as exc:
            row["value"] = None
            row["error"] = _shown_error(setting.name, str(exc))
        rows.append(row)
    if as_json:
        print_json(rows)
        return
    table = Table(title="loopml settings", title_justify="left", expand=True, show_lines=True)
    table.add_column("setting", overflow="fold", ratio=3)
    table.add_column("type", no_wrap=True)
    table.add_column("default", overflow="fold", ratio=1)
    table.add_column("current", overflow="fold", ratio=2)
    for row in rows:
        if "error" in row:
            current = Text(row["error"], style="red")
        else:
            changed = row["value"] != row["default"]
            current = Text(_text(row["value"]), style="bold green" if changed else "dim")
        label = Text(row["name"], style="bold")
        label.append(f"\n{row['doc']}", style="dim")
        table.add_row(label, row["type"], _text(row["default"]), current)
    out().print(table)


def _text(value: Any) -> str:
    return "-" if value is None else str(value)
