"""The operator's ARM budget: every ARM request waits here for a token before it is sent.

ARM meters each subscription per principal with token buckets, one per kind of request (reads 250 with
25/s refill, writes and deletes 200 with 10/s, documented for the regional throttling model); a request
past the bucket gets 429 and `Retry-After`. Sending requests ARM will refuse only spends the budget of
everyone on the subscription, so the operator keeps the same buckets on its side:

- one bucket per (subscription, reads | writes | deletes), sized by the settings (ARM's numbers by
  default, times a share when several operator instances use one principal);
- kept in step with ARM: each response's `x-ms-ratelimit-remaining-subscription-*` headers lower the
  bucket to what ARM says is left (other clients of the same principal spend it too);
- a 429 that arrives anyway empties the bucket and pauses it, for every waiter, for `Retry-After`;
- waiters are served by priority (a user's change, then a retry, then background drift checks), and
  within one priority round-robin by namespace, so one team's thousand objects do not starve another's.

A waiter that will wait long tells its object through `report_queued` (a context variable the
controller sets), so the object shows `Queued` with the expected wait instead of an error.

Pure asyncio, no SDK: `arm.sdk.session` calls it from a pipeline policy.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import enum
import heapq
import itertools
import time
from collections.abc import Callable, Mapping

KINDS = ("reads", "writes", "deletes")


class Priority(enum.IntEnum):
    USER = 0
    """Creation, a spec change, a deletion, a wake-up: what a person waits for."""
    RETRY = 1
    BACKGROUND = 2
    """Drift checks."""


priority: contextvars.ContextVar[Priority] = contextvars.ContextVar("arm_priority", default=Priority.USER)
"""The priority of the ARM requests made in this context (set per reconcile by the controller)."""
fairness_key: contextvars.ContextVar[str] = contextvars.ContextVar("arm_fairness_key", default="")
"""Whose requests these are (the object's namespace): waiters of one priority are served round-robin."""
report_queued: contextvars.ContextVar[Callable[[float], None] | None] = contextvars.ContextVar(
    "arm_report_queued", default=None
)
"""Called once with the expected wait in seconds when a request of this context must wait long."""

QUEUED_REPORT_SECONDS = 5.0
"""Waits shorter than this are not worth telling the object about."""


@dataclasses.dataclass(frozen=True)
class BucketLimits:
    capacity: float
    refill_per_second: float


ARM_DEFAULTS: Mapping[str, BucketLimits] = {
    "reads": BucketLimits(250, 25),
    "writes": BucketLimits(200, 10),
    "deletes": BucketLimits(200, 10),
}


def kind_of(method: str) -> str:
    """Which bucket an HTTP method draws on."""
    upper = method.upper()
    if upper in ("GET", "HEAD", "OPTIONS"):
        return "reads"
    if upper == "DELETE":
        return "deletes"
    return "writes"


def subscription_of(path: str) -> str:
    """The subscription an ARM path is in (lower-cased), or `tenant` for tenant-level requests."""
    parts = [part for part in path.split("/") if part]
    if len(parts) >= 2 and parts[0].lower() == "subscriptions":
        return parts[1].lower()
    return "tenant"


@dataclasses.dataclass(order=True)
class _Waiter:
    priority: int
    rank: int
    sequence: int
    future: asyncio.Future[None] = dataclasses.field(compare=False)
    key: str = dataclasses.field(compare=False)


class _Bucket:
    def __init__(self, limits: BucketLimits, now: float) -> None:
        self.limits = limits
        self.tokens = limits.capacity
        self.updated = now
        self.paused_until = 0.0
        self.waiters: list[_Waiter] = []
        self.served: dict[tuple[int, str], int] = {}
        """Grants (and pending requests) per (priority, fairness key): the round-robin rank."""
        self.dispatcher: asyncio.Task[None] | None = None

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.limits.capacity, self.tokens + elapsed * self.limits.refill_per_second)
        self.updated = now

    def wait_for_token(self, now: float) -> float:
        """Seconds until one token is available (0 when one is)."""
        self.refill(now)
        paused = max(0.0, self.paused_until - now)
        if self.tokens >= 1:
            return paused
        missing = (1 - self.tokens) / self.limits.refill_per_second if self.limits.refill_per_second else 3600
        return max(paused, missing)


class ArmBudget:
    """The token buckets of every subscription the operator talks to."""

    def __init__(
        self,
        limits: Mapping[str, BucketLimits] = ARM_DEFAULTS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = dict(limits)
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._sequence = itertools.count()

    def _bucket(self, subscription: str, kind: str) -> _Bucket:
        key = (subscription.lower(), kind)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self._limits[kind], self._clock())
        return bucket

    def expected_wait(self, subscription: str, kind: str) -> float:
        """How long a request queued now would wait (all waiters ahead of it served first)."""
        bucket = self._bucket(subscription, kind)
        now = self._clock()
        first = bucket.wait_for_token(now)
        queued = len(bucket.waiters)
        return first + queued / bucket.limits.refill_per_second if bucket.limits.refill_per_second else first

    async def acquire(self, subscription: str, kind: str) -> float:
        """Wait for one token of the bucket; the seconds waited."""
        bucket = self._bucket(subscription, kind)
        now = self._clock()
        if not bucket.waiters and bucket.wait_for_token(now) == 0:
            bucket.tokens -= 1
            return 0.0
        level = int(priority.get())
        key = fairness_key.get()
        rank = bucket.served.get((level, key), 0)
        bucket.served[(level, key)] = rank + 1
        waiter = _Waiter(level, rank, next(self._sequence), asyncio.get_running_loop().create_future(), key)
        expected = self.expected_wait(subscription, kind)
        heapq.heappush(bucket.waiters, waiter)
        reporter = report_queued.get()
        if reporter is not None and expected >= QUEUED_REPORT_SECONDS:
            reporter(expected)
        if bucket.dispatcher is None or bucket.dispatcher.done():
            bucket.dispatcher = asyncio.get_running_loop().create_task(self._dispatch(bucket))
        try:
            await waiter.future
        finally:
            if not waiter.future.done():
                waiter.future.cancel()  # the dispatcher skips it
        return self._clock() - now

    async def _dispatch(self, bucket: _Bucket) -> None:
        """Hand out tokens to waiters, best first, as the bucket refills."""
        while bucket.waiters:
            wait = bucket.wait_for_token(self._clock())
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            waiter = heapq.heappop(bucket.waiters)
            if waiter.future.done():
                continue  # cancelled while waiting
            bucket.tokens -= 1
            waiter.future.set_result(None)
        # Ranks only order waiters that overlap in time; with no one waiting, everyone starts even.
        bucket.served.clear()

    def observe(self, subscription: str, kind: str, headers: Mapping[str, str], status: int) -> None:
        """Keep the bucket in step with what ARM reported: the remaining requests, or a 429's pause."""
        bucket = self._bucket(subscription, kind)
        now = self._clock()
        bucket.refill(now)
        remaining = [
            _number(headers.get(f"x-ms-ratelimit-remaining-subscription-{kind}")),
            # The subscription-wide (all principals) bucket is 15 times larger; when it runs low, it rules.
            _number(headers.get(f"x-ms-ratelimit-remaining-subscription-global-{kind}")),
        ]
        for left in remaining:
            if left is not None and left < bucket.tokens:
                bucket.tokens = left
        if status == 429:
            retry_after = _retry_after(headers)
            bucket.tokens = 0.0
            bucket.paused_until = max(bucket.paused_until, now + retry_after)


THROTTLED_DEFAULT_PAUSE_SECONDS = 10.0


def _retry_after(headers: Mapping[str, str]) -> float:
    for name, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001), ("Retry-After", 1.0)):
        value = _number(headers.get(name))
        if value is not None:
            return value * scale
    return THROTTLED_DEFAULT_PAUSE_SECONDS


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def parse_limits(text: str, *, share: float = 1.0) -> dict[str, BucketLimits]:
    """`reads=250:25,writes=200:10` (capacity:refill per second), the rest ARM's defaults; each scaled by
    `share`, this instance's part of a principal's budget. `ValueError` says what is wrong."""
    if not 0 < share <= 1:
        raise ValueError(f"the share must be in (0, 1], not {share}")
    limits = dict(ARM_DEFAULTS)
    for item in (part.strip() for part in text.split(",") if part.strip()):
        kind, _, value = item.partition("=")
        capacity, _, refill = value.partition(":")
        if kind.strip() not in KINDS:
            raise ValueError(f"{kind.strip()!r} is not one of {', '.join(KINDS)}")
        try:
            limits[kind.strip()] = BucketLimits(float(capacity), float(refill))
        except ValueError:
            raise ValueError(f"{item!r}: write <kind>=<capacity>:<refill per second>") from None
        if limits[kind.strip()].capacity < 1 or limits[kind.strip()].refill_per_second <= 0:
            raise ValueError(f"{item!r}: the capacity must be at least 1 and the refill positive")
    return {
        kind: BucketLimits(max(1.0, value.capacity * share), value.refill_per_second * share)
        for kind, value in limits.items()
    }
