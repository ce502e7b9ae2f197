"""Dataset references: ``credit``, ``credit:2``, ``credit@latest``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopml._names import check_name, version_number
from loopml.errors import InvalidParameter

__all__ = ["DatasetRef", "check_dataset_name", "parse_ref"]

_REF = re.compile(r"(?P<name>[^:@]+)(?::(?P<version>\d+)|@(?P<alias>[A-Za-z_]+))?")


@dataclass(frozen=True)
class DatasetRef:
    """A parsed reference: a dataset name and a version number, or None for the latest."""

    name: str
    version: int | None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}:{self.version}"


def check_dataset_name(name: object) -> str:
    """Return ``name`` if it can name a dataset."""
    return check_name("dataset", name)


def parse_ref(ref: object) -> DatasetRef:
    """Parse ``name``, ``name:N`` or ``name@latest``.

    Raises:
        InvalidParameter: the text is not a dataset reference, or its number is over
            :data:`loopml._names.MAX_VERSION`.
    """
    if not isinstance(ref, str):
        raise InvalidParameter(
            f"A dataset reference must be a str like 'credit:2'; got {type(ref).__name__}."
        )
    match = _REF.fullmatch(ref.strip())
    if match is None:
        raise InvalidParameter(
            f"{ref!r} is not a dataset reference; use 'name', 'name:N' or 'name@latest'."
        )
    alias = match.group("alias")
    if alias is not None and alias != "latest":
        raise InvalidParameter(
            f"Unknown dataset alias {alias!r} in {ref!r}; the only alias is '@latest'."
        )
    version = match.group("version")
    return DatasetRef(
        check_dataset_name(match.group("name")),
        None if version is None else version_number(version, ref),
    )
