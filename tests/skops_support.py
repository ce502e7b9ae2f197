"""A crafted skops file, for tests that loading never runs code a file names (tests only)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path


def poison_skops(path: Path, marker: Path) -> None:
    """Rewrite the skops file at ``path`` so that a trusting load runs ``touch marker``.

    The root estimator gets an attribute built by a "reduce" entry whose
    constructor is ``os.system``: what a crafted ``schema.json`` can ask for.
    """
    with zipfile.ZipFile(path) as original:
        members = {name: original.read(name) for name in original.namelist()}
    schema = json.loads(members["schema.json"])
    command = {
        "__class__": "str",
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(f"touch {marker}"),
        "is_json": True,
        "__id__": 1,
    }
    attributes = schema["content"]
    attributes["content"]["evil"] = {
        "__class__": "system",
        "__module__": "os",
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": [command],
            "__id__": 2,
        },
        "__id__": 3,
    }
    key_types = attributes["key_types"]["content"]
    key_types.append(dict(key_types[0]))
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as rewritten:
        for name, data in members.items():
            rewritten.writestr(name, data)
