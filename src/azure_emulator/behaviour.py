"""Run-time knobs tests turn through the control endpoint: principal replication delay, latency, injected
faults, ARM throttling buckets, page size, Azure RBAC's count limits, and a count of every request received.

Kept apart from the ARM handlers so the server applies them uniformly (latency, faults, throttling and
counting happen before any handler runs).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re
import time


@dataclasses.dataclass(frozen=True)
class FaultRule:
    """Answer the next `remaining` requests matching method + path regex with a canned ARM error."""

    path_regex: str
    status: int
    code: str
    message: str
    method: str | None = None  # None: any method
    remaining: int = 1
    retry_after: float | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return re.search(self.path_regex, path, re.IGNORECASE) is not None


@dataclasses.dataclass(frozen=True)
class LatencyRule:
    seconds: float
    path_regex: str = ""
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return re.search(self.path_regex, path, re.IGNORECASE) is not None


@dataclasses.dataclass(frozen=True)
class BucketLimits:
    """One ARM token bucket: `capacity` requests, refilled at `refill_per_second`."""

    capacity: float
    refill_per_second: float


# Azure's current limits per subscription and principal (reads 250 @ 25/s, writes and deletes 200 @ 10/s).
DEFAULT_LIMITS: dict[str, BucketLimits] = {
    "reads": BucketLimits(250, 25),
    "writes": BucketLimits(200, 10),
    "deletes": BucketLimits(200, 10),
}
# The subscription-global bucket is 15 times the per-principal one.
GLOBAL_FACTOR = 15

# Azure RBAC's count limits: custom roles per tenant (2,000 in Azure operated by 21Vianet), and role
# assignments per subscription (at subscription, resource-group and resource scopes; management-group
# and root assignments do not count). Tests lower them to reach the limits with a few requests.
CUSTOM_ROLE_LIMIT = 5000
ROLE_ASSIGNMENT_LIMIT = 4000


def operation_kind(method: str) -> str:
    upper = method.upper()
    if upper in ("GET", "HEAD", "OPTIONS"):
        return "reads"
    if upper == "DELETE":
        return "deletes"
    return "writes"


@dataclasses.dataclass
class _Bucket:
    tokens: float
    updated_at: float


class Throttle:
    """Token buckets per (subscription, principal, kind) plus the subscription-global ones.

    Buckets are always counted, so the rate-limit headers are truthful; requests are refused with 429 only
    while `enforced` is on.
    """

    def __init__(self) -> None:
        self.enforced = False
        self.limits: dict[str, BucketLimits] = dict(DEFAULT_LIMITS)
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}

    def configure(self, *, enforced: bool, limits: dict[str, BucketLimits] | None = None) -> None:
        self.enforced = enforced
        if limits is not None:
            self.limits = {**DEFAULT_LIMITS, **limits}
        self._buckets.clear()

    def _take(self, key: tuple[str, str, str], limits: BucketLimits, now: float) -> tuple[bool, float, float]:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(limits.capacity, now)
        bucket.tokens = min(
            limits.capacity, bucket.tokens + (now - bucket.updated_at) * limits.refill_per_second
        )
        bucket.updated_at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return True, bucket.tokens, 0.0
        wait = (1 - bucket.tokens) / limits.refill_per_second if limits.refill_per_second > 0 else 3600.0
        return False, bucket.tokens, wait

    def take(
        self, subscription: str | None, principal: str, method: str
    ) -> tuple[bool, dict[str, str], float]:
        """Spend one token; returns (allowed, rate-limit headers, seconds until a token is back).

        Requests outside any subscription (tenant level) draw on tenant buckets, reported as such."""
        kind = operation_kind(method)
        limits = self.limits[kind]
        now = time.monotonic()
        scope = subscription or "tenant"
        own_ok, own_left, own_wait = self._take((scope, principal, kind), limits, now)
        global_limits = BucketLimits(
            limits.capacity * GLOBAL_FACTOR, limits.refill_per_second * GLOBAL_FACTOR
        )
        global_ok, global_left, global_wait = self._take((scope, "*", kind), global_limits, now)
        level = "subscription" if subscription else "tenant"
        headers = {
            f"x-ms-ratelimit-remaining-{level}-{kind}": str(math.floor(own_left)),
            f"x-ms-ratelimit-remaining-{level}-global-{kind}": str(math.floor(global_left)),
        }
        allowed = (own_ok and global_ok) or not self.enforced
        return allowed, headers, max(own_wait, global_wait)


@dataclasses.dataclass
class Behaviour:
    """All knobs, with the defaults tests expect: no delay, no latency, no faults, no throttling."""

    principal_delay: float = 0.0
    page_size: int = 100
    # How long a federated-credential write holds its identity; a second write in that window gets 409.
    fic_write_seconds: float = 0.05
    # How long a long-running write (VM PUT/PATCH) stays InProgress; 0 answers with the final state at once.
    lro_seconds: float = 0.0
    # Check client assertions' signatures against their issuer's published keys, as Entra does.
    verify_assertion_signatures: bool = False
    custom_role_limit: int = CUSTOM_ROLE_LIMIT
    role_assignment_limit: int = ROLE_ASSIGNMENT_LIMIT
    latency: list[LatencyRule] = dataclasses.field(default_factory=list)
    faults: list[FaultRule] = dataclasses.field(default_factory=list)
    throttle: Throttle = dataclasses.field(default_factory=Throttle)
    request_counts: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    # Answers by method and status (`"PUT 429"`), so a caller can tell throttled requests from served ones.
    response_counts: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    # ARM requests by the caller's object id (from its bearer token), then `"METHOD /path"`: which of
    # several clients sharing one subscription sent what.
    caller_counts: dict[str, collections.Counter[str]] = dataclasses.field(default_factory=dict)

    def latency_for(self, method: str, path: str) -> float:
        return sum(rule.seconds for rule in self.latency if rule.matches(method, path))

    def take_fault(self, method: str, path: str) -> FaultRule | None:
        """The first fault rule matching this request, spending one of its uses."""
        for index, rule in enumerate(self.faults):
            if rule.matches(method, path):
                if rule.remaining <= 1:
                    del self.faults[index]
                else:
                    self.faults[index] = dataclasses.replace(rule, remaining=rule.remaining - 1)
                return rule
        return None

    def count(self, method: str, path: str) -> None:
        self.request_counts[f"{method.upper()} {path}"] += 1

    def count_response(self, method: str, status: int) -> None:
        self.response_counts[f"{method.upper()} {status}"] += 1

    def count_caller(self, caller: str, method: str, path: str) -> None:
        self.caller_counts.setdefault(caller.lower(), collections.Counter())[f"{method.upper()} {path}"] += 1
