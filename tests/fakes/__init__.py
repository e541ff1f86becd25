"""Fakes of the worker's peers for component tests of the poll loop (no broker, no HTTP).

Each fake follows its real counterpart's contract closely enough that the loop cannot tell
the difference, and every step a peer takes that the loop must wait for (a job ending, a dead
letter confirmed, a commit answered) happens only when the test says so:

* ``FakeClock``: time moves when the test advances it, or when the loop waits (a poll that
  returns nothing took its timeout);
* ``FakeKafka`` and ``ScriptedSource``: partition logs and the group's committed offsets
  (shared, like a broker), and one consumer-group member with scripted rebalances and commit
  results;
* ``ScriptedFullStory``: the batch import API; jobs stay PROCESSING until finished;
* ``FakeDeadLetters``: the DLQ producer; a dead letter is confirmed only when told.
"""

from tests.fakes.clock import FakeClock
from tests.fakes.dlq import DeadLetter, FakeDeadLetters
from tests.fakes.fullstory import FakeJob, ScriptedFullStory
from tests.fakes.kafka import Commit, FakeKafka, ScriptedSource

__all__ = [
    "Commit",
    "DeadLetter",
    "FakeClock",
    "FakeDeadLetters",
    "FakeJob",
    "FakeKafka",
    "ScriptedFullStory",
    "ScriptedSource",
]
