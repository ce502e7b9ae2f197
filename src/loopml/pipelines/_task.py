"""What crosses from the pipeline runner to a worker and back: tasks and results."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from loopml.errors import InvalidParameter

__all__ = ["Resources", "StepResult", "StepTask", "StoredValue", "parse_memory"]


@dataclass(frozen=True)
class StoredValue:
    """A step's value kept in the artifact store.

    Attributes:
        materializer: stable alias of the materializer that wrote it.
        digest: artifact-store digest of the folder the materializer wrote.
        content_hash: identity of the value (of the data, where the materializer can).
        type_name: the value's Python type, for messages.
        executable: loading it runs pickled code.
    """

    materializer: str
    digest: str
    content_hash: str
    type_name: str
    executable: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredValue:
        """Inverse of :meth:`to_dict`."""
        return cls(
            materializer=str(data["materializer"]),
            digest=str(data["digest"]),
            content_hash=str(data["content_hash"]),
            type_name=str(data["type_name"]),
            executable=bool(data.get("executable", False)),
        )


_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3}
_UNITS.update({"gb": 1000**3, "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2})
_UNITS.update({"gi": 1024**3, "gib": 1024**3, "t": 1000**4, "tb": 1000**4, "tib": 1024**4})
_MEMORY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def parse_memory(value: int | str | None) -> int | None:
    """Bytes from ``4GiB``, ``512MB``, ``1e9`` bytes as an int, or None.

    Raises:
        InvalidParameter: text that is not a memory size.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidParameter(f"A memory size must be bytes or text like '4GiB'; got {value!r}.")
    if isinstance(value, int):
        if value <= 0:
            raise InvalidParameter(f"A memory size must be positive; got {value}.")
        return value
    match = _MEMORY.fullmatch(str(value))
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise InvalidParameter(
            f"A memory size must look like '512MiB' or '4GiB' (units {sorted(_UNITS)}); "
            f"got {value!r}."
        )
    return int(float(match.group(1)) * _UNITS[unit])


@dataclass(frozen=True)
class Resources:
    """What a step asks of the machine; executors that can honour it do (Ray).

    Example:
        >>> Resources(cpus=2, memory="4GiB").memory
        4294967296
    """

    cpus: float = 1.0
    gpus: float = 0.0
    memory: int | str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.cpus, bool) or not isinstance(self.cpus, int | float) or self.cpus < 0:
            raise InvalidParameter(f"Resources(cpus=…) must be a number >= 0; got {self.cpus!r}.")
        if isinstance(self.gpus, bool) or not isinstance(self.gpus, int | float) or self.gpus < 0:
            raise InvalidParameter(f"Resources(gpus=…) must be a number >= 0; got {self.gpus!r}.")
        object.__setattr__(self, "memory", parse_memory(self.memory))

    @property
    def memory_bytes(self) -> int | None:
        """The memory request in bytes."""
        return self.memory if isinstance(self.memory, int) else None


@dataclass(frozen=True)
class StepTask:
    """Everything a worker needs to run one step; picklable."""

    run_id: str
    step_name: str
    function: bytes
    inputs: dict[str, StoredValue]
    constants: dict[str, Any]
    output_names: tuple[str, ...] | None
    store_uri: str
    artifact_uri: str
    timeout: float | None
    retries: int
    backoff: float
    resources: Resources


@dataclass(frozen=True)
class StepResult:
    """What a worker reports back for one step."""

    status: Literal["finished", "failed", "timeout"]
    outputs: tuple[StoredValue, ...]
    error_type: str | None
    error_message: str | None
    traceback: str | None
    attempts: int
    stdout: str
    stderr: str
    cpu_seconds: float
    peak_memory_bytes: int
    wall_seconds: float
