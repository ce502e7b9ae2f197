"""Materializers: how a step's values are kept in the artifact store, chosen by type.

A materializer writes a value into a fresh folder and reads it back; the folder
is stored with :meth:`ArtifactStore.put_dir`, together with a small
``loopml-value.json`` naming the materializer by its stable alias (never an
import path, so stored values survive refactors) and the value's type.

Built-in aliases: ``pandas.parquet``, ``pyarrow.parquet``, ``polars.parquet``,
``numpy.npy``, ``json``, ``sklearn.skops``, ``loopml.dataset_version`` and, for
anything else, ``cloudpickle`` (whose values are *executable*: loading them runs
pickled code). Materializers registered with :func:`register_materializer` are
asked first. See :mod:`loopml.pipelines._materializers_builtin` for what each
built-in keeps and how it hashes.

Example:
    >>> import tempfile
    >>> from loopml.artifacts import ArtifactStore
    >>> artifacts = ArtifactStore.from_uri(tempfile.mkdtemp())
    >>> stored = store_value({"accuracy": 0.93, "classes": [0, 1]}, artifacts)
    >>> stored.materializer, stored.executable
    ('json', False)
    >>> load_value(stored, artifacts)
    {'accuracy': 0.93, 'classes': [0, 1]}
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from loopml.errors import InvalidParameter, MaterializerError, UntrustedTypesError
from loopml.pipelines._materializers_builtin import BUILTIN_MATERIALIZERS
from loopml.pipelines._task import StoredValue

if TYPE_CHECKING:
    from loopml.artifacts import ArtifactStore

__all__ = [
    "VALUE_FILE",
    "Materializer",
    "get_materializer",
    "load_value",
    "materializer_for",
    "register_materializer",
    "store_value",
]

VALUE_FILE = "loopml-value.json"
_log = logging.getLogger("loopml.pipelines")


class Materializer(Protocol):
    """Saves values of some types to a folder and loads them back.

    Attributes:
        name: the stable alias saved with every value (``"myorg.image"``); it is
            how the value is loaded again, so never change it.
        executable: loading runs code chosen by whoever wrote the files (pickle);
            such values are refused by ``load_value(..., trust_executable=False)``.
    """

    name: str
    executable: bool

    def handles(self, value: object) -> bool:
        """Tell whether this materializer stores ``value`` (cheap: no heavy imports)."""
        ...

    def save(self, value: object, folder: Path) -> str:
        """Write ``value`` into the empty ``folder``; return its content hash."""
        ...

    def load(self, folder: Path) -> object:
        """Read the value back (everything: ``folder`` is deleted afterwards)."""
        ...


_BUILTIN = {m.name: m for m in BUILTIN_MATERIALIZERS}
_CATCH_ALL = _BUILTIN["cloudpickle"]
_user: list[Materializer] = []
_lock = threading.Lock()


def _type_name(kind: type) -> str:
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def register_materializer(materializer: Materializer) -> None:
    """Store values of your own types with ``materializer``.

    Registered materializers are asked before the built-ins, in registration
    order; registering a name again replaces the earlier one in its place.
    Register at import time of the module that defines your steps, so that
    worker processes have it too.

    Args:
        materializer: an object with ``name``, ``executable``, ``handles``,
            ``save`` and ``load`` (see :class:`Materializer`).

    Raises:
        InvalidParameter: the object lacks one of those, its name is empty or
            is a built-in alias.

    Example:
        >>> class Point:
        ...     def __init__(self, x: float, y: float) -> None:
        ...         self.x, self.y = x, y
        >>> class PointMaterializer:
        ...     name, executable = "example.point", False
        ...     def handles(self, value): return isinstance(value, Point)
        ...     def save(self, value, folder):
        ...         (folder / "p.txt").write_text(f"{value.x} {value.y}")
        ...         return f"{value.x} {value.y}"
        ...     def load(self, folder):
        ...         return Point(*map(float, (folder / "p.txt").read_text().split()))
        >>> register_materializer(PointMaterializer())
        >>> materializer_for(Point(1, 2)).name
        'example.point'
    """
    name = getattr(materializer, "name", None)
    methods = [
        m for m in ("handles", "save", "load") if not callable(getattr(materializer, m, None))
    ]
    if not isinstance(name, str) or not name.strip() or methods:
        raise InvalidParameter(
            "The 'materializer' parameter of register_materializer must have a non-empty "
            "'name' and the methods handles, save and load. Got "
            f"{type(materializer).__name__} with name {name!r}"
            + (f", lacking {', '.join(methods)}" if methods else "")
            + " instead."
        )
    if not isinstance(getattr(materializer, "executable", None), bool):
        raise InvalidParameter(
            "The 'materializer' parameter of register_materializer must have a bool "
            f"'executable' attribute. Got {getattr(materializer, 'executable', None)!r} "
            "instead."
        )
    if name in _BUILTIN:
        raise InvalidParameter(
            f"The 'materializer' parameter of register_materializer must not use a built-in "
            f"alias ({', '.join(sorted(_BUILTIN))}): values stored under it must keep "
            f"loading. Got {name!r} instead."
        )
    with _lock:
        for i, known in enumerate(_user):
            if known.name == name:
                _user[i] = materializer
                return
        _user.append(materializer)


def get_materializer(name: str) -> Materializer:
    """Return the materializer saved under the alias ``name``.

    Args:
        name: a built-in alias such as ``"pandas.parquet"`` or a registered one.

    Returns:
        The materializer.

    Raises:
        MaterializerError: no materializer has that alias (one registered in
            another process must be registered in this one too).
    """
    with _lock:
        for materializer in _user:
            if materializer.name == name:
                return materializer
    if name in _BUILTIN:
        return _BUILTIN[name]
    raise MaterializerError(
        f"No materializer is named {name!r}; known: "
        f"{', '.join(sorted([*_BUILTIN, *(m.name for m in _user)]))}. A value stored with "
        "your own materializer needs register_materializer() in this process as well."
    )


def materializer_for(value: object) -> Materializer:
    """Return the materializer that stores ``value``: registered ones first, then built-ins.

    Args:
        value: any value.

    Returns:
        The first materializer whose ``handles(value)`` is true; ``cloudpickle``
        when no other is.

    Raises:
        MaterializerError: a registered materializer's ``handles`` raised.
    """
    with _lock:
        user = list(_user)
    for materializer in user:
        try:
            if materializer.handles(value):
                return materializer
        except Exception as exc:  # a user's code; say whose
            raise MaterializerError(
                f"The materializer {materializer.name!r} failed to tell whether it handles "
                f"a value of type {_type_name(type(value))!r}: {type(exc).__name__}: {exc}"
            ) from exc
    for materializer in BUILTIN_MATERIALIZERS:
        if materializer.handles(value):
            return materializer
    return _CATCH_ALL


def _save(materializer: Materializer, value: object, artifacts: ArtifactStore) -> StoredValue:
    type_name = _type_name(type(value))
    with tempfile.TemporaryDirectory(prefix="loopml-value-") as tmp:
        folder = Path(tmp)
        content_hash = materializer.save(value, folder)
        if not isinstance(content_hash, str) or not content_hash:
            raise MaterializerError(
                f"The materializer {materializer.name!r} must return the content hash (a "
                f"non-empty str) from save(). Got {content_hash!r} instead."
            )
        if (folder / VALUE_FILE).exists():
            raise MaterializerError(
                f"The materializer {materializer.name!r} must not write {VALUE_FILE!r}: "
                "loopml writes it."
            )
        meta = {
            "loopml_value": 1,
            "materializer": materializer.name,
            "type_name": type_name,
            "content_hash": content_hash,
            "executable": materializer.executable,
        }
        (folder / VALUE_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        digest = artifacts.put_dir(folder)
    return StoredValue(
        materializer=materializer.name,
        digest=digest,
        content_hash=content_hash,
        type_name=type_name,
        executable=materializer.executable,
    )


def store_value(value: object, artifacts: ArtifactStore) -> StoredValue:
    """Save ``value`` with its materializer and store the folder in ``artifacts``.

    When a built-in data format cannot hold this particular value (a pandas
    column of mixed types, an estimator skops cannot represent, an integer too
    long for JSON) it is stored with cloudpickle instead, and marked executable.

    Args:
        value: the value to keep.
        artifacts: the store to keep it in.

    Returns:
        The :class:`StoredValue` locating it, with its content hash.

    Raises:
        MaterializerError: nothing can store a value of this type (a generator,
            a lock, an open file), or a registered materializer failed; the
            message names the type.
        ArtifactError: the artifact store cannot be written.
    """
    materializer = materializer_for(value)
    type_name = _type_name(type(value))
    if materializer.name in _BUILTIN and materializer is not _CATCH_ALL:
        try:
            return _save(materializer, value, artifacts)
        except MaterializerError:
            raise
        except (ValueError, TypeError, NotImplementedError, RecursionError) as exc:
            _log.warning(
                "The %s materializer cannot store this %s (%s: %s); storing it with "
                "cloudpickle instead, which makes it executable.",
                materializer.name,
                type_name,
                type(exc).__name__,
                exc,
            )
            materializer = _CATCH_ALL
    try:
        return _save(materializer, value, artifacts)
    except MaterializerError:
        raise
    except Exception as exc:  # pickling runs arbitrary __reduce__ code; any failure is the value's
        if materializer is _CATCH_ALL:
            raise MaterializerError(
                f"cannot store a value of type {type_name!r}: no materializer handles it and "
                f"cloudpickle failed ({type(exc).__name__}: {exc}). Return data that can be "
                "saved (frames, arrays, JSON-able values, estimators) or register a "
                "materializer for this type with register_materializer()."
            ) from exc
        raise MaterializerError(
            f"cannot store a value of type {type_name!r}: the materializer "
            f"{materializer.name!r} failed ({type(exc).__name__}: {exc})."
        ) from exc


def load_value(
    stored: StoredValue, artifacts: ArtifactStore, *, trust_executable: bool = True
) -> object:
    """Load a value kept by :func:`store_value`.

    Args:
        stored: where the value is.
        artifacts: the store holding it.
        trust_executable: allow values whose loading runs pickled code
            (``cloudpickle``); pass False for values from a store you do not control.

    Returns:
        The value, of the type it was stored with (JSON tuples come back as lists).

    Raises:
        MaterializerError: the alias is unknown here, the value is executable and
            not trusted, the stored folder is not the value described, or its
            materializer failed to read it.
        UntrustedTypesError: a stored scikit-learn value names types outside the
            skops allow-list (nothing was built).
        ArtifactNotFound: the stored files are missing.
        ArtifactIntegrityError: the stored files are corrupted.
    """
    materializer = get_materializer(stored.materializer)
    if (stored.executable or materializer.executable) and not trust_executable:
        raise MaterializerError(
            f"Refusing to load the {stored.type_name!r} value stored with "
            f"{stored.materializer!r} (digest {stored.digest[:12]}): loading it runs pickled "
            "code, which can do anything its writer wanted. Pass trust_executable=True if "
            "you trust whoever wrote this store."
        )
    with tempfile.TemporaryDirectory(prefix="loopml-value-") as tmp:
        folder = artifacts.get_dir(stored.digest, Path(tmp) / "value")
        try:
            meta = json.loads((folder / VALUE_FILE).read_text(encoding="utf-8"))
            written_by = meta["materializer"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MaterializerError(
                f"The artifact {stored.digest[:12]} is not a stored value ({VALUE_FILE} is "
                f"missing or unreadable: {exc})."
            ) from exc
        if written_by != stored.materializer:
            raise MaterializerError(
                f"The artifact {stored.digest[:12]} was written by the materializer "
                f"{written_by!r}, not {stored.materializer!r} as recorded."
            )
        try:
            return materializer.load(folder)
        except (MaterializerError, UntrustedTypesError):
            raise
        except Exception as exc:  # a library's or a user's reader; keep the cause
            raise MaterializerError(
                f"cannot load the {stored.type_name!r} value stored with "
                f"{stored.materializer!r} (digest {stored.digest[:12]}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
