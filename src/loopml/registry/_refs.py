"""Model references: ``credit``, ``credit/3``, ``credit@champion``, ``models:/credit/3``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopml._names import check_name, version_number
from loopml.errors import InvalidParameter

__all__ = ["ModelRef", "check_alias", "check_model_name", "parse_model_ref"]

_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,63}")
_REF = re.compile(
    r"(?:models:/)?(?P<name>[^/@:]+)(?:/(?P<version>\d+)|@(?P<alias>[^/@:]+)|/(?P<alias2>[A-Za-z][^/@:]*))?"
)


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: the model and a version number, an alias, or neither (latest)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}/{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def check_model_name(name: object) -> str:
    """Return ``name`` if it can name a model."""
    return check_name("model", name)


def check_alias(alias: object) -> str:
    """Return ``alias`` if it can name an alias (``champion``, ``challenger`` …)."""
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias) or alias == "latest":
        raise InvalidParameter(
            "An alias must start with a letter and use letters, digits, '_' and '-' "
            f"(at most 64 characters; 'latest' is reserved); got {alias!r}."
        )
    return alias


def parse_model_ref(ref: object) -> ModelRef:
    """Parse ``name``, ``name/N``, ``name@alias``, ``models:/name/N`` or ``models:/name@alias``.

    Raises:
        InvalidParameter: the text is not a model reference, or its version number is
            too large (over :data:`loopml._names.MAX_VERSION`).
    """
    if not isinstance(ref, str):
        raise InvalidParameter(f"A model reference must be a str; got {type(ref).__name__}.")
    match = _REF.fullmatch(ref.strip())
    if match is None:
        raise InvalidParameter(
            f"{ref!r} is not a model reference; use 'name', 'name/3', 'name@champion' or "
            "'models:/name/3'."
        )
    name = check_model_name(match.group("name"))
    version = match.group("version")
    alias = match.group("alias") or match.group("alias2")
    if alias == "latest":
        alias = None
    return ModelRef(name, None if version is None else version_number(version, ref), alias)
