"""Random writer schemas and bodies for them, as careless or hostile producers make them.

``schema_fields`` generates fields of records, unions, arrays, maps, enums, fixed and named
types nested in each other, with namespaces, dotted names and references by short name and by
fullname, some of them to a named type still being defined (a recursive schema: the generator
says which). ``body`` encodes a value of a parsed schema by hand, without recursing (fastavro's
writer recurses as its reader does), shallow or as deep as a recursive schema allows.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field
from typing import Any

_PRIMITIVES = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"]
_NAMESPACES = [None, None, None, "x", "y.z", ""]


@dataclass
class _Named:
    fullname: str
    namespace: str


@dataclass
class SchemaFields:
    """Generates fields; ``recursive``: whether one refers to a named type that holds it."""

    rng: random.Random
    max_depth: int = 4
    recursive: bool = False
    _count: int = 0
    _defined: list[_Named] = field(default_factory=list)
    _open: list[_Named] = field(default_factory=list)

    def fields(self, namespace: str, count: int) -> list[dict[str, Any]]:
        return [{"name": f"g{i}", "type": self.type(namespace, 1)} for i in range(count)]

    def type(self, namespace: str, depth: int) -> Any:
        rng = self.rng
        if depth >= self.max_depth or rng.random() < 0.25:
            return self._reference(namespace) or rng.choice(_PRIMITIVES)
        kind = rng.choice(["record", "record", "union", "union", "array", "map", "ref", "enum"])
        if kind == "record":
            return self._record(namespace, depth)
        if kind == "union":
            return ["null", self.type(namespace, depth + 1)]
        if kind == "array":
            return {"type": "array", "items": self.type(namespace, depth + 1)}
        if kind == "map":
            return {"type": "map", "values": self.type(namespace, depth + 1)}
        if kind == "ref":
            return self._reference(namespace) or "long"
        self._count += 1
        if rng.random() < 0.5:
            return {"type": "enum", "name": f"E{self._count}", "symbols": ["A", "B", "C"]}
        return {"type": "fixed", "name": f"F{self._count}", "size": rng.randint(0, 4)}

    def _record(self, namespace: str, depth: int) -> dict[str, Any]:
        self._count += 1
        name = f"N{self._count}"
        own = self.rng.choice(_NAMESPACES)
        schema: dict[str, Any] = {"type": "record", "name": name}
        if self.rng.random() < 0.15:  # a dotted name: its own namespace, whatever is around
            schema["name"] = name = f"q{self._count}.{name}"
            fullname, inner = name, name.rpartition(".")[0]
        else:
            if own is not None:
                schema["namespace"] = own
            inner = namespace if own is None else own
            fullname = f"{inner}.{name}" if inner else name
        this = _Named(fullname, inner)
        self._open.append(this)
        schema["fields"] = [
            {"name": f"f{i}", "type": self.type(inner, depth + 1)}
            for i in range(self.rng.randint(1, 3))
        ]
        self._open.pop()
        self._defined.append(this)
        return schema

    def _reference(self, namespace: str) -> Any:
        """A name for a defined type or one being defined (recursion: the name, or the name in
        a union with null or as an array's items), valid from here."""
        targets = self._defined + self._open
        if not targets or self.rng.random() < 0.4:
            return None
        target = self.rng.choice(targets)
        if target.namespace == namespace:
            name = target.fullname.rpartition(".")[2] if self.rng.random() < 0.5 else None
        elif not target.namespace:
            return None  # a null-namespace type cannot be named from within a namespace
        else:
            name = None
        if target not in self._open:
            return name or target.fullname
        self.recursive = True
        # mostly as a producer writes a tree (optional, or items), now and then required (a
        # record that must hold itself: no value ends, not even an empty one)
        shape = self.rng.random()
        if shape < 0.7:
            return ["null", name or target.fullname]
        if shape < 0.9:
            return {"type": "array", "items": name or target.fullname}
        return name or target.fullname


def body(
    parsed: Any, named: dict[str, Any], rng: random.Random, depth: int, max_bytes: int = 1 << 20
) -> bytes:
    """A value of ``parsed`` (fastavro's parsed schema; ``named``: its named types by
    fullname), encoded by hand with an explicit stack. Unions, arrays and maps go deeper
    while fewer than ``depth`` levels are open and end at once past it. Cut at ``max_bytes``
    or after 2 * ``depth`` + 1,000 types (a record that must hold itself never ends)."""
    out = bytearray()
    stack: list[tuple[Any, int]] = [(parsed, 0)]
    budget = 2 * depth + 1_000
    while stack and budget and len(out) < max_bytes:
        budget -= 1
        schema, level = stack.pop()
        if isinstance(schema, bytes):
            out += schema
            continue
        if isinstance(schema, str) and schema in named:
            schema = named[schema]
        deeper = level < depth
        if isinstance(schema, list):
            order = sorted(range(len(schema)), key=lambda i: _leads_on(schema[i], named))
            index = order[-1] if deeper else order[0]
            out += _long(index)
            stack.append((schema[index], level + 1))
        elif isinstance(schema, str):
            out += _primitive(schema, rng)
        elif isinstance(schema, dict):
            kind = schema.get("type")
            if kind in ("record", "error"):
                stack.extend((f["type"], level + 1) for f in reversed(schema["fields"]))
            elif kind in ("array", "map"):
                inner = schema["items" if kind == "array" else "values"]
                count = 1 if deeper else rng.choice([0, 0, 1, 2])
                items: list[tuple[Any, int]] = [(b"\x00", level)]
                for _ in range(count):
                    items.append((inner, level + 1))
                    if kind == "map":
                        items.append((_string(f"k{rng.randint(0, 9)}"), level))
                if count:
                    items.append((_long(count), level))
                stack.extend(items)
            elif kind == "enum":
                out += _long(rng.randrange(len(schema["symbols"])))
            elif kind == "fixed":
                out += rng.randbytes(schema["size"])
            else:
                stack.append((kind, level))
    return bytes(out)


def _leads_on(branch: Any, named: dict[str, Any]) -> int:
    """How much a union branch can nest: a record or container first, null last."""
    if isinstance(branch, str) and branch in named:
        branch = named[branch]
    if isinstance(branch, dict) and branch.get("type") in ("record", "error", "array", "map"):
        return 2
    return 0 if branch == "null" else 1


def _long(value: int) -> bytes:
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value & ~0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode()
    return _long(len(data)) + data


def _primitive(kind: str, rng: random.Random) -> bytes:
    if kind == "null":
        return b""
    if kind == "boolean":
        return bytes([rng.randint(0, 1)])
    if kind in ("int", "long"):
        return _long(rng.randint(-(2**31), 2**31 - 1))
    if kind == "float":
        return struct.pack("<f", rng.uniform(-1e6, 1e6))
    if kind == "double":
        return struct.pack("<d", rng.uniform(-1e6, 1e6))
    if kind == "bytes":
        return _long(3) + rng.randbytes(3)
    return _string(rng.choice(["u1", "user-7", "é", "x" * 20]))
