"""Process-wide tuning for a long-lived worker with many small objects and a few threads.

Both are measured in bench/RESULTS.md (the 1M-event backlog): the loop allocates a few
short-lived containers per record, freed at once by reference counting, while the pending
users are many long-lived objects; job threads encode request bodies of a few MB.
"""

from __future__ import annotations

import ctypes
import gc
import os

_M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def tune_garbage_collector() -> None:
    """Collect the youngest generation every 10,000 container allocations instead of 700
    (each collection re-examines the survivors: the pending users), and leave the objects made
    while starting out of every collection."""
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives every thread that allocates its own malloc arena, and keeps what a job
    thread freed there for that thread: after encoding a few request bodies, tens of MB more
    resident memory per thread. Cap the arenas, as ``MALLOC_ARENA_MAX`` would, unless that
    variable is set or this is not glibc. Call it before any thread starts."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return
    mallopt(_M_ARENA_MAX, arenas)
