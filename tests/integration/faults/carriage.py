"""Which sandbox job carried which source record. Pure: records and jobs in, links out.

The worker folds a uid's records (in offset order, non-null values win, property types
declared from Avro) into one request object per uid per job, and a batch takes every
buffered record of a uid it includes, so a job's request for a uid is the fold of a *run*
of that uid's records: consecutive in the uid's offset order. Only the request objects are
visible from outside, so the run is recovered from them:

* a run ``r_i .. r_j`` of a uid's records *matches* job ``J`` when every record in it was
  produced before ``J`` was created (within ``TOLERANCE_S``) and folding it gives exactly
  ``J``'s request for the uid: the same ``display_name`` and ``email`` (absent when no
  record set them), the same property values with the same JSON types, and a ``schema``
  declaring each property's type from its value;
* a record is *possibly carried* by ``J`` when it lies in some matching run;
* a record is *certainly carried* by ``J`` when it lies in every matching run (the runs'
  intersection).

The true run always matches, so possible carriers never miss the real one (used where
leniency is safe: the earliest a record could have been acknowledged), and certain
carriers are never wrong (used where only a sure link may fail a scenario: a record sent
twice). The two differ only for records that change nothing in the fold: one whose values
all equal what the run before it already set, or whose every value a later record of the
run overrides.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.integration.faults.jobs import JobSpan
from tests.integration.faults.topics import Record

TOLERANCE_S = 0.05

Key = tuple[int, int]  # (partition, offset)
Field = tuple[str, ...]  # ("display_name",), ("email",) or ("properties", name)
Typed = tuple[str, Any]  # (JSON type, value): 1, 1.0 and True differ


@dataclass
class Links:
    """Per record (partition, offset): the ids of the jobs that possibly/certainly carried it."""

    possible: dict[Key, set[str]] = field(default_factory=lambda: defaultdict(set))
    certain: dict[Key, set[str]] = field(default_factory=lambda: defaultdict(set))


def declared(value: Any) -> str:
    """The FullStory type the worker declares for an Avro value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "real"
    return "str"


def _typed(value: Any) -> Typed:
    return (type(value).__name__, value)


def sets(event: Mapping[str, Any] | None) -> dict[Field, Typed]:
    """What folding one event sets: its non-null fields and properties."""
    found: dict[Field, Typed] = {}
    if event is None:
        return found
    for name in ("display_name", "email"):
        if event.get(name) is not None:
            found[(name,)] = _typed(event[name])
    for name, value in (event.get("properties") or {}).items():
        if value is not None:
            found[("properties", name)] = _typed(value)
    return found


def request_fields(request: Mapping[str, Any]) -> dict[Field, Typed] | None:
    """A request object as the fields a fold would set; None when no fold can produce it
    (an unknown key, a null value, a schema that does not declare each value's type)."""
    if set(request) - {"uid", "display_name", "email", "properties", "schema"}:
        return None
    found: dict[Field, Typed] = {}
    for name in ("display_name", "email"):
        if name in request:
            if request[name] is None:
                return None
            found[(name,)] = _typed(request[name])
    properties = request.get("properties") or {}
    schema = request.get("schema") or {}
    if not isinstance(properties, dict) or not isinstance(schema, dict):
        return None
    declared_types = schema.get("properties") or {}
    if declared_types != {name: declared(value) for name, value in properties.items()}:
        return None
    for name, value in properties.items():
        if value is None:
            return None
        found[("properties", name)] = _typed(value)
    return found


def matching_runs(
    records: Sequence[Record], request: Mapping[str, Any], created_s: float
) -> list[tuple[int, int]]:
    """Every run ``(i, j)`` (inclusive indexes into one uid's records, in offset order)
    whose fold is ``request`` and whose records were all produced before ``created_s``."""
    target = request_fields(request)
    if target is None:
        return []
    produced = [r.produced_s <= created_s + TOLERANCE_S for r in records]
    runs = []
    for end in range(len(records)):
        if not produced[end]:
            continue
        # Fold backwards from ``end``: the first value met for a field is the one that wins,
        # and earlier records can only add fields, so a wrong or extra field ends the walk.
        folded: dict[Field, Typed] = {}
        for start in range(end, -1, -1):
            if not produced[start]:
                break
            extra = {k: v for k, v in sets(records[start].event).items() if k not in folded}
            if any(target.get(k) != v for k, v in extra.items()):
                break
            folded.update(extra)
            if len(folded) == len(target):
                runs.append((start, end))
    return runs


def link(records: Sequence[Record], jobs: Sequence[JobSpan]) -> Links:
    """Each record's possible and certain carriers among ``jobs`` (see the module doc)."""
    by_uid: dict[str, list[Record]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        if record.uid is not None:
            by_uid[record.uid].append(record)
    links = Links()
    for job in jobs:
        for uid, request in job.requests.items():
            runs_of = by_uid.get(uid, [])
            runs = matching_runs(runs_of, request, job.created_s)
            if not runs:
                continue
            for start, end in runs:
                for record in runs_of[start : end + 1]:
                    links.possible[(record.partition, record.offset)].add(job.id)
            first, last = max(s for s, _ in runs), min(e for _, e in runs)
            for record in runs_of[first : last + 1]:
                links.certain[(record.partition, record.offset)].add(job.id)
    return links


def unmatched(records: Sequence[Record], jobs: Sequence[JobSpan]) -> list[str]:
    """Request objects that are not the fold of any run of their uid's records (the worker
    sent a change nobody produced, or mangled one), and jobs carrying a uid twice."""
    by_uid: dict[str, list[Record]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        if record.uid is not None:
            by_uid[record.uid].append(record)
    problems = [
        f"job {job.id}: the request for {uid} is no fold of its records: {request!r}"
        for job in jobs
        for uid, request in job.requests.items()
        if not matching_runs(by_uid.get(uid, []), request, job.created_s)
    ]
    problems += [
        f"job {job.id} holds a uid twice" for job in jobs if len(set(job.uids)) != len(job.uids)
    ]
    return problems
