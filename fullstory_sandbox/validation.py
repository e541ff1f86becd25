"""Per-user validation of one BatchUserImportRequest (also used by `POST /v2/users`).

`validate_user` is pure: it returns a `ValidUser` ready to upsert, or the first
`UserError` found. In a batch an invalid user fails alone (it is listed under the job's
errors); it never fails the whole request.

Rules (FullStory v2 limits), with the error code each produces:
- the request is not an object                               -> `invalid_user`
- `uid` missing, not a string, empty or over 256 characters  -> `invalid_uid`
- `uid` matching the injected `reject_uids` pattern          -> `invalid_user`
- `display_name` not a string or over 256 characters         -> `invalid_display_name`
- `email` not a string or over 128 characters                -> `invalid_email`
- `properties` not an object                                 -> `invalid_properties`
- `schema` not `{"properties": {name: type}}` of known types -> `invalid_schema`
- a property name not `^[A-Za-z][A-Za-z0-9_]*$`, or whose dotted path is over 512
  characters                                                 -> `invalid_property_name`
- a top-level property value whose compact UTF-8 JSON encoding exceeds 8192 bytes
                                                             -> `property_too_large`
- more than 500 unique (leaf, dotted-path) properties        -> `too_many_properties`
- an array holding objects or arrays                         -> `invalid_property_value`
- a value contradicting its declared schema type             -> `type_mismatch`
- a value contradicting its name's type suffix (v1 naming, `visits_int`: a suffix declares
  the type when the schema does not, and the property is stored without it)
                                                             -> `type_mismatch`
`display_name` and `email` may be null (which clears them on upsert).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fullstory_sandbox.proptypes import (
    DECLARABLE_TYPES,
    conforms,
    infer_type,
    is_primitive,
    normalize,
    suffix_of,
)

UID_MAX_CHARS = 256
DISPLAY_NAME_MAX_CHARS = 256
EMAIL_MAX_CHARS = 128
PROPERTY_NAME_MAX_CHARS = 512
PROPERTY_VALUE_MAX_BYTES = 8192
MAX_PROPERTIES_PER_USER = 500
PROPERTY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class UserError:
    """Why one user was refused: a snake_case `code` and a human `message`."""

    code: str
    message: str


@dataclass(frozen=True)
class ValidUser:
    """A user that passed every rule.

    `fields` holds only the top-level fields present in the request (`display_name`,
    `email`); `properties` the top-level property values (normalized to their declared
    type); `types` the type of every non-null leaf, keyed by dotted path.
    """

    uid: str
    fields: Mapping[str, str | None]
    properties: Mapping[str, object]
    types: Mapping[str, str]


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.error = UserError(code, message)


def validate_user(
    request: object, reject_uids: re.Pattern[str] | None = None
) -> ValidUser | UserError:
    """Validates one request object; returns the upsert-ready user or the first error."""
    try:
        return _validate(request, reject_uids)
    except _Refused as refused:
        return refused.error


def _validate(request: object, reject_uids: re.Pattern[str] | None) -> ValidUser:
    if not isinstance(request, dict):
        raise _Refused("invalid_user", "each request must be a JSON object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise _Refused("invalid_uid", "uid is required and must be a non-empty string")
    if len(uid) > UID_MAX_CHARS:
        raise _Refused("invalid_uid", f"uid is longer than {UID_MAX_CHARS} characters")
    if reject_uids is not None and reject_uids.search(uid):
        raise _Refused("invalid_user", "user rejected by the sandbox reject_uids fault")
    fields = {}
    if "display_name" in request:
        fields["display_name"] = _text_field(request, "display_name", DISPLAY_NAME_MAX_CHARS)
    if "email" in request:
        fields["email"] = _text_field(request, "email", EMAIL_MAX_CHARS)
    raw_properties = request.get("properties")
    if raw_properties is None:
        raw_properties = {}
    if not isinstance(raw_properties, dict):
        raise _Refused("invalid_properties", "properties must be a JSON object")
    declared = _declared_types(request.get("schema"))
    for name, value in raw_properties.items():
        kind = value.__class__
        if kind is bool or kind is float or (kind is str and len(value) <= _SURELY_SMALL):
            continue  # the common values, which cannot be that large (`_larger_than`)
        if _larger_than(value, PROPERTY_VALUE_MAX_BYTES):
            raise _Refused(
                "property_too_large",
                f"property {name!r} is larger than {PROPERTY_VALUE_MAX_BYTES} bytes",
            )
    walk = _PropertyWalk(declared)
    properties = walk.node(raw_properties, "")
    return ValidUser(uid=uid, fields=fields, properties=properties, types=walk.types)


def _text_field(request: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = request[name]
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Refused(f"invalid_{name}", f"{name} must be a string")
    if len(value) > limit:
        raise _Refused(f"invalid_{name}", f"{name} is longer than {limit} characters")
    return value


def _declared_types(schema: object) -> dict[str, str]:
    """Flattens `schema.properties` (nested objects or dotted keys) to dotted path -> type."""
    if schema is None:
        return {}
    if not isinstance(schema, dict):
        raise _Refused("invalid_schema", "schema must be a JSON object")
    properties = schema.get("properties") or {}
    if isinstance(properties, dict) and all(
        entry.__class__ is str and entry in DECLARABLE_TYPES for entry in properties.values()
    ):
        return properties  # flat, as a batch's users mostly are: already path -> type
    declared: dict[str, str] = {}
    _flatten_schema(properties, "", declared)
    return declared


def _flatten_schema(node: object, prefix: str, declared: dict[str, str]) -> None:
    if not isinstance(node, dict):
        raise _Refused("invalid_schema", "schema.properties must be a JSON object")
    for name, entry in node.items():
        path = f"{prefix}{name}"
        if isinstance(entry, dict):
            _flatten_schema(entry, f"{path}.", declared)
        elif isinstance(entry, str) and entry in DECLARABLE_TYPES:
            declared[path] = entry
        else:
            raise _Refused(
                "invalid_schema",
                f"schema type for {path!r} is not one of {sorted(DECLARABLE_TYPES)}",
            )


class _PropertyWalk:
    """One pass over a user's properties: checks names, arrays and types, records the type
    of every non-null leaf, and counts leaves against the per-user limit."""

    def __init__(self, declared: Mapping[str, str]) -> None:
        self.declared = declared
        self.types: dict[str, str] = {}
        self.leaves = 0

    def node(self, node: Mapping[str, object], prefix: str) -> dict[str, object]:
        """The normalized values of one object level below `prefix`."""
        normalized: dict[str, object] = {}
        for name, value in node.items():
            path = f"{prefix}{name}"
            named = _name(name)
            if named is None:
                raise _Refused("invalid_property_name", f"property name {path!r} is not allowed")
            if len(path) > PROPERTY_NAME_MAX_CHARS:
                raise _Refused(
                    "invalid_property_name",
                    f"property name {path[:40]!r}... is longer than {PROPERTY_NAME_MAX_CHARS}",
                )
            if named is _PLAIN:
                # The common case, a scalar under a plain name that is undeclared or declared
                # a type its value has as it is: only its type is recorded.
                kind = type(value)
                declared = self.declared.get(path)
                plain = _INFERRED.get(kind) if declared is None else _AS_IS.get((declared, kind))
                if plain is not None:
                    self.leaves += 1
                    if self.leaves > MAX_PROPERTIES_PER_USER:
                        raise _Refused(
                            "too_many_properties",
                            f"more than {MAX_PROPERTIES_PER_USER} properties",
                        )
                    self.types[path] = plain
                    normalized[name] = value
                    continue
            suffix = suffix_of(name) if path not in self.declared else None
            if suffix is not None and not isinstance(value, dict):
                # v1 naming: the suffix declares the type, the name is stored without it
                name = name[: -len(suffix) - 1]
                path = f"{prefix}{name}"
            if isinstance(value, dict):
                if path in self.declared:
                    raise _Refused(
                        "type_mismatch",
                        f"property {path!r} is an object, declared {self.declared[path]!r}",
                    )
                normalized[name] = self.node(value, f"{path}.")
                continue
            self.leaves += 1
            if self.leaves > MAX_PROPERTIES_PER_USER:
                raise _Refused(
                    "too_many_properties", f"more than {MAX_PROPERTIES_PER_USER} properties"
                )
            normalized[name] = self.leaf(path, value, suffix)
        return normalized

    def leaf(self, path: str, value: object, suffix: str | None = None) -> object:
        """The normalized value of one leaf; records its declared (by the schema or the
        name's type suffix) or inferred type."""
        if isinstance(value, list) and not all(is_primitive(item) for item in value):
            raise _Refused(
                "invalid_property_value",
                f"property {path!r}: arrays may hold only strings, numbers and booleans",
            )
        declared = suffix or self.declared.get(path)
        if declared is None:
            inferred = infer_type(value)
            if inferred is not None:
                self.types[path] = inferred
            return value
        if not conforms(declared, value):
            raise _Refused(
                "type_mismatch", f"property {path!r} does not match declared type {declared!r}"
            )
        if value is not None:
            self.types[path] = declared
        return normalize(declared, value)


_PLAIN = ""  # a valid name without a type suffix
# A string this long is at most 6 bytes a character as JSON, 2 quotes: within the value limit.
_SURELY_SMALL = (PROPERTY_VALUE_MAX_BYTES - 2) // 6
# What a scalar's type infers to (`infer_type`), by its exact Python type.
_INFERRED: dict[type, str] = {str: "str", bool: "bool", int: "real", float: "real"}
# A declared type a scalar of this exact Python type conforms to unchanged (`conforms` and
# `normalize` say the same; an integral float declared `int` is normalized, so not here).
_AS_IS: dict[tuple[str, type], str] = {
    ("str", str): "str",
    ("bool", bool): "bool",
    ("int", int): "int",
    ("real", int): "real",
    ("real", float): "real",
}
_NAMES: dict[str, str | None] = {}  # name -> its type suffix, _PLAIN, or None (invalid)
_NAMES_MAX = 10_000


def _name(name: str) -> str | None:
    """Whether a property name is valid, and its suffix: checked once per distinct name (a
    batch repeats the same few names for every user), in a bounded cache."""
    known = _NAMES.get(name, False)
    if known is not False:
        return known  # type: ignore[return-value]
    result = (suffix_of(name) or _PLAIN) if PROPERTY_NAME.fullmatch(name) else None
    if len(_NAMES) >= _NAMES_MAX:
        _NAMES.clear()
    _NAMES[name] = result
    return result


def _larger_than(value: object, limit: int) -> bool:
    """Whether ``value`` as compact UTF-8 JSON is longer than ``limit`` bytes. Encoding every
    value costs a tenth of a second per 10,000-user batch: a bool, a float or a short string
    cannot be that long (a character takes at most 6 bytes, as an escape), nor can an integer
    of 18 digits, so those are not."""
    if isinstance(value, bool | float) or value is None:
        return False
    if isinstance(value, int) and -(10**18) < value < 10**18:
        return False
    if isinstance(value, str) and len(value) * 6 + 2 <= limit:
        return False
    encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return len(encoded) > limit
