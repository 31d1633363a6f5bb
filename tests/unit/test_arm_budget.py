"""The ARM budget: bucket arithmetic, keeping in step with ARM's headers, the pause after a 429, waiters
served by priority and round-robin by namespace, the Queued report, and the settings' format."""

from __future__ import annotations

import asyncio

import pytest

from azure_identity_operator.arm import budget
from azure_identity_operator.arm.budget import ArmBudget, BucketLimits, Priority

SUB = "00000000-0000-0000-0000-000000000001"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_lets_its_capacity_through_then_refills_at_its_rate() -> None:
    clock = Clock()
    limits = {"writes": BucketLimits(3, 2), "reads": BucketLimits(1, 1), "deletes": BucketLimits(1, 1)}
    arm = ArmBudget(limits, clock=clock)

    async def scenario() -> None:
        for _ in range(3):
            assert await arm.acquire(SUB, "writes") == 0.0
        assert arm.expected_wait(SUB, "writes") == pytest.approx(0.5)  # 1 token at 2/s
        clock.now += 1.0  # two tokens back
        assert await arm.acquire(SUB, "writes") == 0.0
        assert await arm.acquire(SUB, "writes") == 0.0
        assert arm.expected_wait(SUB, "writes") == pytest.approx(0.5)
        # Buckets are per subscription and kind.
        assert await arm.acquire("other", "writes") == 0.0
        assert await arm.acquire(SUB, "reads") == 0.0

    asyncio.run(scenario())


def test_armss_remaining_count_lowers_the_bucket_and_never_raises_it() -> None:
    clock = Clock()
    arm = ArmBudget(clock=clock)
    arm.observe(SUB, "writes", {"x-ms-ratelimit-remaining-subscription-writes": "12"}, 200)
    assert arm.expected_wait(SUB, "writes") == 0.0
    arm.observe(SUB, "writes", {"x-ms-ratelimit-remaining-subscription-writes": "0"}, 200)
    assert arm.expected_wait(SUB, "writes") == pytest.approx(0.1)  # ARM says none left: one at 10/s
    arm.observe(SUB, "writes", {"x-ms-ratelimit-remaining-subscription-writes": "199"}, 200)
    assert arm.expected_wait(SUB, "writes") == pytest.approx(0.1), "a higher count is not trusted over ours"
    clock.now += 10
    arm.observe(SUB, "reads", {"x-ms-ratelimit-remaining-subscription-global-reads": "0"}, 200)
    assert arm.expected_wait(SUB, "reads") > 0, "the subscription-wide count rules when it is lower"


def test_a_429_pauses_the_bucket_for_everyone_for_retry_after() -> None:
    clock = Clock()
    arm = ArmBudget(clock=clock)
    arm.observe(SUB, "writes", {"Retry-After": "17"}, 429)
    assert arm.expected_wait(SUB, "writes") == pytest.approx(17)
    clock.now += 17
    assert arm.expected_wait(SUB, "writes") == 0.0
    arm.observe(SUB, "deletes", {"retry-after-ms": "1500"}, 429)
    assert arm.expected_wait(SUB, "deletes") == pytest.approx(1.5)


def test_waiters_are_served_by_priority_then_round_robin_by_namespace() -> None:
    limits = {kind: BucketLimits(1, 200) for kind in budget.KINDS}
    arm = ArmBudget(limits)
    served: list[str] = []

    async def request(name: str, level: Priority, namespace: str) -> None:
        budget.priority.set(level)
        budget.fairness_key.set(namespace)
        await arm.acquire(SUB, "writes")
        served.append(name)

    async def scenario() -> None:
        await arm.acquire(SUB, "writes")  # the bucket is empty now: everyone below waits
        tasks = [
            asyncio.create_task(request("drift-1", Priority.BACKGROUND, "a")),
            asyncio.create_task(request("a-1", Priority.USER, "a")),
            asyncio.create_task(request("a-2", Priority.USER, "a")),
            asyncio.create_task(request("a-3", Priority.USER, "a")),
            asyncio.create_task(request("b-1", Priority.USER, "b")),
            asyncio.create_task(request("retry-1", Priority.RETRY, "b")),
            asyncio.create_task(request("b-2", Priority.USER, "b")),
        ]
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    assert served == ["a-1", "b-1", "a-2", "b-2", "a-3", "retry-1", "drift-1"]


def test_a_long_wait_is_reported_once_with_its_expected_length() -> None:
    limits = {kind: BucketLimits(1, 0.5) for kind in budget.KINDS}
    arm = ArmBudget(limits)
    reported: list[float] = []

    async def scenario() -> None:
        await arm.acquire(SUB, "writes")
        await arm.acquire(SUB, "writes")  # ~2 s: below the threshold, no report
        budget.report_queued.set(reported.append)
        for _ in range(3):
            arm.observe(SUB, "writes", {"Retry-After": "30"}, 429)
            waiting = asyncio.create_task(arm.acquire(SUB, "writes"))
            await asyncio.sleep(0.01)
            waiting.cancel()

    asyncio.run(scenario())
    assert len(reported) == 3
    assert all(seconds >= 29 for seconds in reported)


def test_the_settings_format_and_the_share() -> None:
    limits = budget.parse_limits("writes=100:5", share=0.5)
    assert limits["writes"] == BucketLimits(50, 2.5)
    assert limits["reads"] == BucketLimits(125, 12.5)
    for bad in ("writes=100", "posts=1:1", "writes=0:1", "reads=10:0"):
        with pytest.raises(ValueError, match=r"\S"):
            budget.parse_limits(bad)
    with pytest.raises(ValueError, match="share"):
        budget.parse_limits("", share=1.5)


@pytest.mark.parametrize(
    ("method", "path", "kind", "subscription"),
    [
        ("GET", f"/subscriptions/{SUB.upper()}/resourceGroups/rg", "reads", SUB),
        ("PUT", f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/x", "writes", SUB),
        ("PATCH", f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/x/vm", "writes", SUB),
        ("DELETE", f"/subscriptions/{SUB}/resourceGroups/rg", "deletes", SUB),
        ("GET", "/providers/Microsoft.Authorization/roleDefinitions", "reads", "tenant"),
    ],
)
def test_requests_draw_on_their_subscriptions_bucket_of_their_kind(
    method: str, path: str, kind: str, subscription: str
) -> None:
    assert budget.kind_of(method) == kind
    assert budget.subscription_of(path) == subscription
