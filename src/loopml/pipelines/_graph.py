"""The DAG of a pipeline, built by calling its function once with tracing on.

Calling a step inside a pipeline does not run it: it records a node and returns
:class:`OutputRef` placeholders that later steps take as inputs. An approval gate
is a node that every node traced after it depends on, and that depends on every
node traced before it — "pause here".
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from loopml.errors import PipelineDefinitionError

if TYPE_CHECKING:
    from loopml.pipelines._step import Step

__all__ = ["Graph", "Node", "OutputRef", "current_graph", "tracing"]


@dataclass(frozen=True)
class OutputRef:
    """A placeholder for output ``index`` of node ``node`` (what a step call returns)."""

    node: str
    index: int = 0
    name: str | None = None

    def __iter__(self) -> Iterator[OutputRef]:
        raise PipelineDefinitionError(
            f"Step {self.node!r} has one output; to return several, declare them with "
            "@loopml.step(outputs=('a', 'b'))."
        )

    def __bool__(self) -> bool:
        raise PipelineDefinitionError(
            f"The output of step {self.node!r} is not known while the pipeline is built; "
            "decide inside a step, not in the pipeline function."
        )


@dataclass
class Node:
    """A step call or an approval gate."""

    name: str
    kind: Literal["step", "gate"]
    step: Step | None = None
    inputs: dict[str, OutputRef] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    after: list[str] = field(default_factory=list)
    message: str | None = None
    approvers_role: str | None = None

    @property
    def upstream(self) -> list[str]:
        """Every node this one waits for."""
        return sorted({ref.node for ref in self.inputs.values()} | set(self.after))

    def describe(self) -> dict[str, Any]:
        """JSON-able description, stored with the pipeline run."""
        return {
            "name": self.name,
            "kind": self.kind,
            "step": None if self.step is None else self.step.name,
            "inputs": {k: [r.node, r.index] for k, r in self.inputs.items()},
            "constants": self.constants,
            "after": self.after,
            "message": self.message,
            "approvers_role": self.approvers_role,
            "outputs": None if self.step is None else self.step.output_names,
        }


class Graph:
    """Nodes in the order they were traced (a topological order by construction)."""

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.nodes: dict[str, Node] = {}
        self._last_gate: str | None = None

    def add_step(self, step: Step, inputs: dict[str, OutputRef], constants: dict[str, Any]) -> Node:
        """Record a call of ``step``; a step called twice gets ``name_2``, ``name_3`` …"""
        name = self._unique(step.name)
        for argument, value in constants.items():
            _check_constant(step.name, argument, value)
        after = [self._last_gate] if self._last_gate else []
        node = Node(name, "step", step=step, inputs=inputs, constants=constants, after=after)
        self.nodes[name] = node
        return node

    def add_gate(self, name: str, message: str, approvers_role: str | None) -> Node:
        """Record an approval gate after everything traced so far."""
        node = Node(
            self._unique(name),
            "gate",
            after=list(self.nodes),
            message=message,
            approvers_role=approvers_role,
        )
        self.nodes[node.name] = node
        self._last_gate = node.name
        return node

    def check(self) -> None:
        """Refuse an empty graph, unknown references and cycles."""
        if not any(n.kind == "step" for n in self.nodes.values()):
            raise PipelineDefinitionError(
                f"Pipeline {self.pipeline!r} calls no step; decorate its steps with @loopml.step "
                "and call them inside the pipeline function."
            )
        seen: set[str] = set()
        for node in self.nodes.values():
            for upstream in node.upstream:
                if upstream not in self.nodes:
                    raise PipelineDefinitionError(
                        f"Step {node.name!r} takes an output of {upstream!r}, which is not part "
                        f"of pipeline {self.pipeline!r}."
                    )
                if upstream not in seen:
                    raise PipelineDefinitionError(
                        f"Pipeline {self.pipeline!r} has a cycle through {node.name!r} and "
                        f"{upstream!r}."
                    )
            seen.add(node.name)

    def describe(self) -> dict[str, Any]:
        """JSON-able description of the whole DAG."""
        return {"nodes": [node.describe() for node in self.nodes.values()]}

    def _unique(self, base: str) -> str:
        if base not in self.nodes:
            return base
        index = 2
        while f"{base}_{index}" in self.nodes:
            index += 1
        return f"{base}_{index}"


_current: contextvars.ContextVar[Graph | None] = contextvars.ContextVar(
    "loopml_pipeline_graph", default=None
)


def current_graph() -> Graph | None:
    """The graph being traced, or None outside a pipeline."""
    return _current.get()


@contextmanager
def tracing(graph: Graph) -> Iterator[Graph]:
    """Trace step calls into ``graph`` while the block runs."""
    token = _current.set(graph)
    try:
        yield graph
    finally:
        _current.reset(token)


def _check_constant(step: str, argument: str, value: Any) -> None:
    """Constants are stored with the run and hashed into cache keys: they must be JSON."""
    try:
        json.dumps(value, allow_nan=True, sort_keys=True)
    except (TypeError, ValueError):
        raise PipelineDefinitionError(
            f"Argument {argument!r} of step {step!r} is a {type(value).__name__}, which a "
            "pipeline cannot record as a constant; pass JSON values (numbers, text, lists, "
            "dicts) or produce it in a step and pass that step's output."
        ) from None
