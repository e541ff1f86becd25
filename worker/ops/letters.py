"""Dead letters as read back from the DLQ topic: their headers parsed, counted and shown.

Pure: ``worker.ops.dlq_inspect`` reads the topic and feeds these. The worker appends its
``dlq.*`` headers after the record's own (``worker.kafka.dlq.dead_letter_headers``), so when a
name appears twice (a record that was itself a dead letter once) the last one is the
worker's and wins.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from worker.ops.printable import shown

# confluent_kafka's TIMESTAMP_* constants: 0 not available, 1 create time, 2 log append time.
_TIMESTAMP_TYPES = {0: "none", 1: "CreateTime", 2: "LogAppendTime"}
Headers = Sequence[tuple[str, bytes | str | None]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int  # in the DLQ topic
    offset: int
    key: bytes | None
    value: bytes | None
    code: str
    message: str
    fullstory_code: str | None  # FullStory's own code, for a user it refused
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    job_id: str | None
    timestamp_ms: int | None
    timestamp_type: str


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else value.decode("utf-8", "backslashreplace")


def _number(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def parse(
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None,
    timestamp: tuple[int, int],
) -> DeadLetter:
    """One record of the DLQ topic; a missing header reads as empty (code ``?``)."""
    found = {name: _text(raw) for name, raw in headers or () if name.startswith("dlq.")}
    kind, ms = timestamp
    return DeadLetter(
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        code=found.get("dlq.error.code") or "?",
        message=found.get("dlq.error.message", ""),
        fullstory_code=found.get("dlq.fullstory.code"),
        source_topic=found.get("dlq.source.topic", ""),
        source_partition=_number(found.get("dlq.source.partition", "")),
        source_offset=_number(found.get("dlq.source.offset", "")),
        job_id=found.get("dlq.job.id"),
        timestamp_ms=ms if kind else None,
        timestamp_type=_TIMESTAMP_TYPES.get(kind, str(kind)),
    )


@dataclass(frozen=True, slots=True)
class Summary:
    total: int
    by_code: dict[str, int]  # most frequent first, ties by name
    by_source: dict[str, int]  # "topic[partition]" -> count, likewise
    matching: int  # letters with the chosen code (all of them without one)
    shown: tuple[DeadLetter, ...]  # the first ``limit`` of those, in DLQ order


@dataclass(slots=True)
class Tally:
    """Counts every letter added, and keeps only the first ``limit`` with ``code`` (any code
    when None): a DLQ of millions is read in constant memory."""

    code: str | None = None
    limit: int = 50
    total: int = 0
    matching: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    shown: list[DeadLetter] = field(default_factory=list)

    def add(self, letter: DeadLetter) -> None:
        self.total += 1
        self.codes[letter.code] += 1
        self.sources[f"{letter.source_topic}[{letter.source_partition}]"] += 1
        if self.code is None or letter.code == self.code:
            self.matching += 1
            if len(self.shown) < self.limit:
                self.shown.append(letter)

    def summary(self) -> Summary:
        def ordered(counts: Counter[str]) -> dict[str, int]:
            return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

        return Summary(
            self.total,
            ordered(self.codes),
            ordered(self.sources),
            self.matching,
            tuple(self.shown),
        )


def _when(letter: DeadLetter) -> str | None:
    if letter.timestamp_ms is None:
        return None
    moment = datetime.fromtimestamp(letter.timestamp_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds")


def letter_json(letter: DeadLetter, values: bool) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "partition": letter.partition,
        "offset": letter.offset,
        "key": None if letter.key is None else _text(letter.key),
        "code": letter.code,
        "fullstory_code": letter.fullstory_code,
        "message": letter.message,
        "source": {
            "topic": letter.source_topic,
            "partition": letter.source_partition,
            "offset": letter.source_offset,
        },
        "job_id": letter.job_id,
        "timestamp": _when(letter),
        "timestamp_type": letter.timestamp_type,
    }
    if values:
        shown["value_hex"] = None if letter.value is None else letter.value.hex()
    return shown


def summary_json(summary: Summary, values: bool) -> dict[str, Any]:
    return {
        "total": summary.total,
        "by_code": summary.by_code,
        "by_source": summary.by_source,
        "matching": summary.matching,
        "records": [letter_json(letter, values) for letter in summary.shown],
    }


def render(summary: Summary, values: bool) -> str:
    lines = [f"{summary.total} dead letters", "", "by error code:"]
    lines += [f"  {count:>8}  {shown(code)}" for code, count in summary.by_code.items()]
    lines += ["", "by source:"]
    lines += [f"  {count:>8}  {shown(source)}" for source, count in summary.by_source.items()]
    lines += ["", f"showing {len(summary.shown)} of {summary.matching}:"]
    for letter in summary.shown:
        key = "-" if letter.key is None else shown(_text(letter.key))
        source = shown(f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}")
        job = f" job {shown(letter.job_id)}" if letter.job_id else ""
        code = shown(letter.code)
        if letter.fullstory_code is not None:
            code += f" (FullStory: {shown(letter.fullstory_code)})"
        lines.append(
            f"  [{letter.partition}]@{letter.offset} {_when(letter) or '-'} "
            f"({shown(letter.timestamp_type)}) key {key} {code} from {source}{job}: "
            f"{shown(letter.message)}"
        )
        if values:
            lines.append(f"      value {'-' if letter.value is None else letter.value.hex()}")
    return "\n".join(lines)
