"""The dead-letter producer (``worker.loop.ports.DeadLetterSink``): letters are confirmed only when
the test says, and, as with librdkafka, confirmations reach the loop inside ``poll``/``flush``
on the loop's own thread."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from tests.fakes.clock import FakeClock
from worker.errors import DeadLetterCode
from worker.records import SourceRecord


@dataclass
class DeadLetter:
    record: SourceRecord
    code: DeadLetterCode
    message: str
    job_id: str | None
    fullstory_code: str | None = None
    confirmed: bool = False


class FakeDeadLetters:
    def __init__(self, clock: FakeClock, auto_confirm: bool = False) -> None:
        self.clock = clock
        self.auto_confirm = auto_confirm
        self.letters: list[DeadLetter] = []
        self._unconfirmed: deque[tuple[DeadLetter, Callable[[], None]]] = deque()
        self._confirmed: deque[Callable[[], None]] = deque()

    def confirm(self, count: int | None = None) -> int:
        """Kafka acknowledges the oldest ``count`` unconfirmed letters (all if None);
        the loop hears of it at its next ``poll``. Returns how many were confirmed."""
        done = 0
        while self._unconfirmed and (count is None or done < count):
            letter, on_delivered = self._unconfirmed.popleft()
            letter.confirmed = True
            self._confirmed.append(on_delivered)
            done += 1
        return done

    def offsets(self) -> list[int]:
        return [letter.record.offset for letter in self.letters]

    # -- worker.loop.ports.DeadLetterSink ---------------------------------------------------------

    def send(
        self,
        record: SourceRecord,
        code: DeadLetterCode,
        message: str,
        on_delivered: Callable[[], None],
        job_id: str | None = None,
        fullstory_code: str | None = None,
    ) -> None:
        letter = DeadLetter(record, code, message, job_id, fullstory_code)
        self.letters.append(letter)
        self._unconfirmed.append((letter, on_delivered))
        if self.auto_confirm:
            self.confirm()

    def poll(self, timeout: float) -> None:
        if not self._confirmed:
            self.clock.waited(timeout)
        while self._confirmed:
            self._confirmed.popleft()()

    def pending(self) -> int:
        return len(self._unconfirmed) + len(self._confirmed)

    def flush(self, timeout: float) -> int:
        self.poll(timeout)
        return self.pending()
