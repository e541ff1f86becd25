"""What ``preview`` shows, worked out from records already read. Pure: no I/O.

The records go through the worker's own intake (``loop/intake``: the decoder, FullStory's
rules, the merge into one unit per uid and partition, deletes, skips) and its batcher
(``loop/batch``: batches of at most ``BATCH_MAX_USERS`` users, oldest first, one unit per uid;
deletes apart); the bodies are ``fullstory/importer.encode_body``'s bytes. So a preview shows
what ``run`` would send for these records, except what only FullStory decides (a user it
rejects) and the org budget's smaller batches.

Peer text (uids, names, values, topics, messages) is printed through ``printable.shown``;
emails and property values are shown because the operator asked for them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from worker.errors import InvalidRecord, RegistryUnavailable, WorkerError
from worker.events.change import CLEAR, Cleared, Event, Skip
from worker.events.merge import UserUpdate, declared_type
from worker.fullstory.importer import encode_body
from worker.loop.batch import Batch, Batcher
from worker.loop.commit.watermark import Span
from worker.loop.intake import Intake
from worker.ops.printable import shown
from worker.records import Fetched, Message, TopicPartition


@dataclass(frozen=True, slots=True)
class User:
    """One request object (or one delete): the fold of ``records`` records of ``tp``."""

    update: UserUpdate
    tp: TopicPartition
    records: int


@dataclass(frozen=True, slots=True)
class Letter:
    """A record that would be dead-lettered."""

    topic: str
    partition: int
    offset: int
    code: str
    message: str


@dataclass(slots=True)
class Preview:
    batches: list[list[User]] = field(default_factory=list)  # one POST each
    deletes: list[User] = field(default_factory=list)  # ON_DELETE=delete
    letters: list[Letter] = field(default_factory=list)
    skipped: Counter[Skip] = field(default_factory=Counter)


def parse_moment(text: str) -> int:
    """``--from-timestamp``: epoch milliseconds, or an ISO-8601 time with its UTC offset."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--from-timestamp {text!r} is not epoch ms nor ISO-8601") from None
    if moment.tzinfo is None:
        raise ValueError("--from-timestamp needs a UTC offset, e.g. 2026-11-26T00:00:00+00:00")
    return int(moment.timestamp() * 1000)


def fold(
    runs: Sequence[Fetched],
    read: Callable[[Message], Event],
    *,
    batch_max_users: int,
    deletes: bool,
) -> Preview:
    """The users, deletes, dead letters and skips ``run`` would make of ``runs``; a registry
    that does not answer is a ``WorkerError`` (``run`` would wait for it)."""
    preview = Preview()
    failed: list[RegistryUnavailable] = []

    def reading(message: Message) -> Event:
        try:
            return read(message)
        except RegistryUnavailable as exc:
            failed.append(exc)
            raise

    def invalid(tp: TopicPartition, offset: int, _m: Message, exc: InvalidRecord) -> Span:
        preview.letters.append(Letter(tp[0], tp[1], offset, str(exc.code), exc.message))
        return Span(offset)

    batcher = Batcher(batch_max_users, max_wait_s=0.0)
    intake = Intake(reading, batcher, deletes=deletes, on_skipped=preview.skipped.update)
    intake.extend(runs)
    if not intake.decode(0.0, lambda *_: None, invalid):
        raise WorkerError(f"the schema registry did not answer: {failed[-1] if failed else ''}")
    while True:
        cut = batcher.take_deletes()
        if cut is not None:
            preview.deletes += _users(cut)
        else:
            cut = batcher.take(0.0)
            if cut is None:
                return preview
            preview.batches.append(_users(cut))
        batcher.release(cut)  # as if its job ended: the uid's next unit may go


def _users(batch: Batch) -> list[User]:
    return [User(unit.update, unit.tp, len(unit.offsets)) for unit in batch.units.values()]


def bodies(preview: Preview, declare_types: bool) -> list[Any]:
    """Each POST /v2/users/batch body, as the importer encodes it."""
    return [
        orjson.loads(encode_body([u.update for u in batch], declare_types))
        for batch in preview.batches
    ]


def as_json(preview: Preview, declare_types: bool) -> dict[str, Any]:
    return {
        "bodies": bodies(preview, declare_types),
        "deletes": [{"uid": u.update.uid, "records": u.records} for u in preview.deletes],
        "dead_letters": [
            {
                "topic": x.topic,
                "partition": x.partition,
                "offset": x.offset,
                "code": x.code,
                "message": x.message,
            }
            for x in preview.letters
        ],
        "skipped": {str(reason): n for reason, n in sorted(preview.skipped.items())},
    }


def _value(value: object) -> str:
    return shown(json.dumps(value, ensure_ascii=False))


def _user_lines(user: User) -> list[str]:
    update = user.update
    records = f"{user.records} record{'s' if user.records != 1 else ''}"
    lines = [f"  {shown(update.uid)}  ({records}, {shown(user.tp[0])}[{user.tp[1]}])"]
    for name in ("display_name", "email"):
        value = getattr(update, name)
        if value is not None:
            lines.append(f"    {name}: {'null (cleared)' if value is CLEAR else _value(value)}")
    for prop, value in update.properties.items():
        if isinstance(value, Cleared):
            lines.append(f"    {shown(prop)} = null (cleared)")
        else:
            lines.append(f"    {shown(prop)} = {_value(value)} ({declared_type(value)})")
    return lines


def lines(preview: Preview) -> list[str]:
    """The text output: the users per request, the deletes, the dead letters, the skips."""
    users = sum(len(batch) for batch in preview.batches)
    out = [f"would send {users} user(s) in {len(preview.batches)} request(s)"]
    for number, batch in enumerate(preview.batches, 1):
        out.append(f"request {number}: {len(batch)} user(s)")
        for user in batch:
            out += _user_lines(user)
    if preview.deletes:
        out.append(f"would delete {len(preview.deletes)} user(s)")
        out += [line for user in preview.deletes for line in _user_lines(user)]
    out.append(f"would dead-letter {len(preview.letters)} record(s)")
    out += [
        f"  {shown(x.topic)}[{x.partition}]@{x.offset} {shown(x.code)}: {shown(x.message)}"
        for x in preview.letters
    ]
    if preview.skipped:
        counts = ", ".join(f"{reason} {n}" for reason, n in sorted(preview.skipped.items()))
        out.append(f"would skip (acknowledge, send nothing) {counts}")
    return out
