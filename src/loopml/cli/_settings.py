"""``loopml settings``: every ``LOOPML_*`` setting, its type, default, value and meaning."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from loopml.cli._output import out, print_json

__all__ = ["show_settings"]


def _shown(setting_type: str, value: Any) -> Any:
    """Hide passwords in URIs (a store URL may carry one)."""
    if setting_type == "URI" and isinstance(value, str):
        from loopml.store import redacted

        return redacted(value)
    return value


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
            "default": _shown(setting.type_name, setting.default),
            "doc": setting.doc,
        }
        # A malformed value is shown, not fatal: this is where people look for it.
        try:
            row["value"] = _shown(setting.type_name, setting.value())
        except SettingError as exc:
            row["value"] = None
            row["error"] = str(exc)
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
