"""How deep the values of a writer schema can nest; the registry refuses a schema whose values
can nest without end (its named types refer to themselves) or deeper than ``MAX_DEPTH``. Pure.

fastavro's compiled reader (and the skipping of a writer field the reader schema lacks)
recurses in C once per level of a value's nesting, with no limit: a 20 KB value nesting a
self-referring record 20,000 deep, or a 900 KB schema without recursion nesting arrays 36,000
deep, ends the process with SIGSEGV. A value nests at most as deep as its schema, so a schema
with no cycle among its named types and at most ``MAX_DEPTH`` levels bounds every value's
recursion, whatever its bytes.

Read from the schema's JSON as the registry sent it (before fastavro parses it), with Avro's
name rules: a named type (record, error, enum, fixed) has the fullname of its ``name`` when
that is dotted, else of its own ``namespace`` or the enclosing one; a reference by a name
without a dot is looked up in the enclosing namespace first, then in the null namespace.
Every container is a level: a record, an array, a map, a union. A reference to a name the
schema does not define is left to fastavro, which refuses it. Nothing here recurses: a schema
nested as deep as its 1 MiB cap allows is walked with an explicit stack.

The names must be the ones fastavro gives, or a cycle hides between the two readings: a named
type whose ``name`` is not a text, or whose ``namespace`` is a truthy non-text (fastavro makes
``"True.Node"`` of ``"namespace": true``), is refused (``bad_writer_schema``), and a falsy
``namespace`` (``null``, ``""``, ``false``) means none, as fastavro takes it. So is a schema
carrying fastavro's own markers (``__fastavro_parsed``, ``__named_schemas``): with them,
fastavro takes named types from the marker instead of the schema's definitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.errors import DeadLetterCode, InvalidRecord

# Levels a value may nest (records, arrays, maps, unions): far below the ~30,000 at which
# fastavro's reader exhausts an 8 MiB stack, and far above real schemas (a Debezium envelope
# is 4: record, union, row record, union). Like serde_json's 128 and protobuf's 100.
MAX_DEPTH = 128
_NAMED = frozenset({"record", "error", "enum", "fixed"})
_FASTAVRO_MARKERS = ("__fastavro_parsed", "__named_schemas")
_SHOWN_NAMES = 4  # names of a cycle shown in a letter's message
_SHOWN_CHARS = 80  # characters of each


@dataclass
class _Node:
    """The root, or a named type: the levels of its own containers (``leaf``), and for each
    named type it holds, how many levels down."""

    leaf: int = 0
    edges: list[tuple[str, int]] = field(default_factory=list)


def check_nesting(schema: Any, schema_id: int) -> None:
    """Raises ``InvalidRecord`` (``recursive_schema``, ``schema_too_deep``) when the values of
    ``schema`` (its JSON) can nest without end or deeper than ``MAX_DEPTH``."""
    nodes = _graph(schema, schema_id)
    cycle = _cycle(nodes)
    if cycle is not None:
        shown = " -> ".join(name[:_SHOWN_CHARS] for name in cycle[:_SHOWN_NAMES])
        more = " -> ..." if len(cycle) > _SHOWN_NAMES else ""
        raise InvalidRecord(
            DeadLetterCode.RECURSIVE_SCHEMA,
            f"schema id {schema_id} is recursive: {shown}{more} -> {cycle[0][:_SHOWN_CHARS]} "
            "(a value could nest without end; its reader would recurse in C)",
        )
    levels = _depth(nodes)
    if levels > MAX_DEPTH:
        raise InvalidRecord(
            DeadLetterCode.SCHEMA_TOO_DEEP,
            f"schema id {schema_id} nests {levels} levels deep; at most {MAX_DEPTH} are read",
        )


_ROOT = ""  # the root's key among the nodes: no named type has an empty fullname


def _graph(schema: Any, schema_id: int) -> dict[str, _Node]:
    """The root and each named type, with the named types each holds and how deep."""
    nodes: dict[str, _Node] = {_ROOT: _Node()}
    references: list[tuple[str, int, str, str]] = []  # owner, levels, name, namespace
    # (type expression, enclosing namespace, owning node, levels above it within the owner)
    stack: list[tuple[Any, str, str, int]] = [(schema, "", _ROOT, 0)]
    while stack:
        expr, namespace, owner, level = stack.pop()
        node = nodes[owner]
        if isinstance(expr, str):
            references.append((owner, level, expr, namespace))
        elif isinstance(expr, list):  # a union
            node.leaf = max(node.leaf, level + 1)
            stack.extend((branch, namespace, owner, level + 1) for branch in expr)
        elif isinstance(expr, dict):
            kind = expr.get("type")
            name = expr.get("name")
            if any(marker in expr for marker in _FASTAVRO_MARKERS):
                raise _unnamable(schema_id, "carries fastavro's own parse markers")
            if not isinstance(kind, str):  # {"type": {...}} or {"type": [...]}
                stack.append((kind, namespace, owner, level))
            elif kind in _NAMED and "name" in expr:
                own = expr.get("namespace", namespace)
                if not isinstance(name, str) or not name or (own and not isinstance(own, str)):
                    raise _unnamable(schema_id, f"names a {kind} by a name that is not a text")
                fullname = _fullname(name, own or "")
                named = nodes.setdefault(fullname, _Node())
                node.edges.append((fullname, level))
                if kind in ("record", "error"):
                    named.leaf = max(named.leaf, 1)
                    inner = fullname.rpartition(".")[0]
                    stack.extend((t, inner, fullname, 1) for t in _field_types(expr))
            elif kind in ("record", "error"):  # no name: fastavro refuses it; read it anyway
                node.leaf = max(node.leaf, level + 1)
                stack.extend((t, namespace, owner, level + 1) for t in _field_types(expr))
            elif kind in ("array", "map"):
                node.leaf = max(node.leaf, level + 1)
                inner_type = expr.get("items" if kind == "array" else "values")
                stack.append((inner_type, namespace, owner, level + 1))
            elif kind not in _NAMED:  # {"type": "string"}, {"type": "Node"}
                stack.append((kind, namespace, owner, level))
    for owner, level, name, namespace in references:
        target = _resolve(name, namespace, nodes)
        if target is not None:
            nodes[owner].edges.append((target, level))
    return nodes


def _field_types(record: dict[str, Any]) -> list[Any]:
    fields = record.get("fields")
    if not isinstance(fields, list):
        return []
    return [f.get("type") for f in fields if isinstance(f, dict)]


def _unnamable(schema_id: int, why: str) -> InvalidRecord:
    return InvalidRecord(
        DeadLetterCode.BAD_WRITER_SCHEMA, f"schema id {schema_id} {why} (its names are unsure)"
    )


def _fullname(name: str, namespace: str) -> str:
    """As fastavro's ``schema_name``: a dotted name is whole, else it is in ``namespace``
    (the type's own, or the enclosing one when it has none)."""
    if "." in name:
        return name
    return f"{namespace}.{name}" if namespace else name


def _resolve(name: str, namespace: str, nodes: dict[str, _Node]) -> str | None:
    """The named type ``name`` refers to from within ``namespace``, or None (a primitive, or
    a name the schema does not define)."""
    if "." not in name and namespace and f"{namespace}.{name}" in nodes:
        return f"{namespace}.{name}"
    return name if name and name in nodes else None


def _cycle(nodes: dict[str, _Node]) -> list[str] | None:
    """The named types of one cycle, in order, or None when there is none (an iterative
    depth-first search: a type reached again while it is still being walked closes a cycle)."""
    done: set[str] = set()
    for start in nodes:
        if start in done:
            continue
        path: list[str] = [start]
        on_path = {start}
        pending = [iter(nodes[start].edges)]
        while pending:
            step = next(pending[-1], None)
            if step is None:
                pending.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
                continue
            target = step[0]
            if target in on_path:
                return path[path.index(target) :]
            if target not in done:
                path.append(target)
                on_path.add(target)
                pending.append(iter(nodes[target].edges))
    return None


def _depth(nodes: dict[str, _Node]) -> int:
    """The most levels a value can nest, from the root; the graph has no cycle."""
    depth: dict[str, int] = {}
    stack = [_ROOT]
    while stack:
        name = stack[-1]
        if name in depth:  # reached from two parents before it was done
            stack.pop()
            continue
        waiting = [t for t, _ in nodes[name].edges if t not in depth]
        if waiting:
            stack.extend(waiting)
            continue
        stack.pop()
        node = nodes[name]
        depth[name] = max([node.leaf] + [level + depth[t] for t, level in node.edges])
    return depth[_ROOT]
