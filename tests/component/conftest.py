"""Component tests of the poll loop: the real loop, importer, batcher and commit stage, with
Kafka, FullStory and the DLQ replaced by the fakes of ``tests.fakes``. No broker, no HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.component.loop import Loop
from tests.fakes import FakeKafka, ScriptedFullStory


@pytest.fixture
def kafka() -> FakeKafka:
    return FakeKafka(partitions=2)


@pytest.fixture
def fullstory() -> ScriptedFullStory:
    return ScriptedFullStory()


@pytest.fixture
def make_loop(kafka: FakeKafka, fullstory: ScriptedFullStory) -> Iterator[Callable[..., Loop]]:
    """Build loops over the test's Kafka and FullStory; their job threads end at teardown,
    and any rule a fake saw broken fails the test."""
    loops: list[Loop] = []
    apis: list[ScriptedFullStory] = [fullstory]

    def make(fullstory: ScriptedFullStory = fullstory, **settings: Any) -> Loop:
        loop = Loop(kafka, fullstory, **settings)
        apis.append(fullstory)
        loops.append(loop)
        return loop

    yield make
    for loop in loops:
        loop.close()
    problems = [v for api in apis for v in api.violations] + [
        v for loop in loops for v in loop.source.violations
    ]
    assert not problems, problems
