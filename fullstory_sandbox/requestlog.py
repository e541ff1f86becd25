"""The log of /v2 requests and the answer counters behind `/_sandbox/requests` and `/stats`.

Each record is appended just before its answer is written (or the connection reset), so
a client that got an answer always finds it logged. Times: `time_monotonic` is when the
request was read (`time.monotonic()` of the sandbox process; CLOCK_MONOTONIC is
system-wide on Linux, so other local processes can compare), `answered_monotonic` when
the answer left, `time` the wall arrival time. The log keeps the newest `limit` records;
the counters count everything since the last reset.
Not thread-safe: callers hold the sandbox lock.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime

from fullstory_sandbox.clock import isoformat
from fullstory_sandbox.messages import JsonObject


@dataclass
class RequestRecord:
    """One /v2 request. `status` None means the connection was reset without an answer."""

    method: str
    path: str
    endpoint: str
    received_mono: float
    received_wall: datetime
    idempotency_key: str | None
    status: int | None = None
    retry_after: int | None = None
    fault: str | None = None
    replayed: bool = False
    job_id: str | None = None
    answered_mono: float | None = None
    seq: int = 0

    def to_json(self) -> JsonObject:
        return {
            "seq": self.seq,
            "time": isoformat(self.received_wall),
            "time_monotonic": self.received_mono,
            "answered_monotonic": self.answered_mono,
            "method": self.method,
            "path": self.path,
            "endpoint": self.endpoint,
            "status": self.status,
            "idempotency_key": self.idempotency_key,
            "retry_after": self.retry_after,
            "fault": self.fault,
            "replayed": self.replayed,
            "job_id": self.job_id,
        }


class RequestLog:
    def __init__(self, limit: int) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=limit)
        self._by_status: Counter[str] = Counter()
        self._replays = 0
        self._seq = 0

    def append(self, record: RequestRecord) -> None:
        self._seq += 1
        record.seq = self._seq
        self._records.append(record)
        self._by_status["reset" if record.status is None else str(record.status)] += 1
        self._replays += record.replayed

    def entries(self) -> list[JsonObject]:
        return [record.to_json() for record in self._records]

    def counts(self) -> JsonObject:
        """`{"total", "by_status": {"200": n, "429": n, "reset": n, ...}, "replays"}`."""
        return {"total": self._seq, "by_status": dict(self._by_status), "replays": self._replays}

    def clear(self) -> None:
        self._records.clear()
        self._by_status.clear()
        self._replays = 0
        self._seq = 0
