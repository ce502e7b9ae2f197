"""A read stream that checks the blob's hash when it reaches the end."""

from __future__ import annotations

import hashlib
import io
from typing import BinaryIO

from loopml._urls import redact_url
from loopml.errors import ArtifactIntegrityError

__all__ = ["VerifyingReader", "integrity_error"]


def integrity_error(expected: str, actual: str, where: str) -> ArtifactIntegrityError:
    """Return the error for a blob whose bytes no longer hash to its address."""
    return ArtifactIntegrityError(
        f"Blob {expected} in {redact_url(where)} is corrupted: its bytes hash to {actual}. "
        "The blob must be restored from a copy or re-logged; delete it with "
        "ArtifactStore.delete to let a later put store it again."
    )


class VerifyingReader(io.RawIOBase):
    """Stream a blob while hashing it; raise at end of stream on a mismatch.

    Bytes are handed out as they arrive, so a caller that needs verified data
    before using any of it should read to the end first (or use
    ``ArtifactStore.get_bytes`` / ``get_file``, which do).
    """

    def __init__(self, raw: BinaryIO, digest: str, where: str) -> None:
        super().__init__()
        self._raw = raw
        self._digest = digest
        self._where = where
        self._hash = hashlib.sha256()
        self._at_eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self._at_eof:
            self._check()
            return 0
        view = memoryview(buffer).cast("B")
        data = self._raw.read(len(view))
        if not data:
            self._at_eof = True
            self._check()
            return 0
        view[: len(data)] = data
        self._hash.update(data)
        return len(data)

    def _check(self) -> None:
        actual = self._hash.hexdigest()
        if actual != self._digest:
            raise integrity_error(self._digest, actual, self._where)

    def close(self) -> None:
        if not self.closed:
            try:
                self._raw.close()
            finally:
                super().close()
