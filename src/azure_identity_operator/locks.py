"""Keyed `asyncio.Lock`s: one lock per key, alive only while someone holds or waits for it.

Work on one object is serialized by the controller; two things more are serialized across objects:
credential writes under one identity (Azure refuses concurrent ones) and read-modify-writes of one
resource's identity block. Each keeps a `KeyedLocks`; keys are compared the way ARM compares IDs when the
caller passes `normalize=arm_id_key`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable


def arm_id_key(resource_id: str) -> str:
    """ARM IDs are case-insensitive and may carry a trailing slash."""
    return resource_id.strip().rstrip("/").lower()


class KeyedLocks:
    """`lock(key)` returns the same lock for equal keys while it is in use; unused locks are dropped.

    A weak-value mapping keeps the table as small as the work in flight: `async with` holds a reference
    for as long as the lock is held, and every waiter holds one until it acquires it.
    """

    def __init__(self, normalize: Callable[[str], str] = str) -> None:
        self._normalize = normalize
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def lock(self, key: str) -> asyncio.Lock:
        normalized = self._normalize(key)
        lock = self._locks.get(normalized)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[normalized] = lock
        return lock
