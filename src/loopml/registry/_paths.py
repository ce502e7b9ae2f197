"""Files a model's metadata names: always inside the model's own verified folder."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from loopml.errors import MetadataPathError, ModelError

__all__ = ["model_file"]


def model_file(folder: Path, name: object, what: str) -> Path:
    """The file ``name`` (read from a model's metadata) inside its verified ``folder``.

    ``folder`` is materialised afresh from a verified manifest, so the regular
    files below it are exactly the manifest's files. ``name`` must be a relative
    POSIX path without ``.``/``..`` parts that resolves, symlinks followed, to a
    regular file inside ``folder``.

    Args:
        folder: the model's folder.
        name: the relative path from the metadata.
        what: what the path is, for messages (``"pickle_file of loopml-model.json"``).

    Raises:
        MetadataPathError: ``name`` is not a plain relative path, or leads outside
            ``folder``.
        ModelError: no such file in ``folder``.
    """
    if not isinstance(name, str) or not name:
        raise MetadataPathError(f"{what} must be a file name; got {name!r}.")
    pure = PurePosixPath(name)
    if "\\" in name or pure.is_absolute() or any(p in ("", ".", "..") for p in name.split("/")):
        raise MetadataPathError(
            f"{what} must be a relative path inside the model's folder; got {name!r}."
        )
    path = folder.joinpath(*pure.parts)
    if not path.is_file():
        raise ModelError(f"{folder} holds no {name} ({what}): the model was not saved that way.")
    if not path.resolve().is_relative_to(folder.resolve()):
        raise MetadataPathError(f"{what} {name!r} leads outside the model's folder {folder}.")
    return path
