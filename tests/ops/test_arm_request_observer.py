"""The ARM pipeline policy: every attempt counted by operation and status code with its latency, throttling
waits recorded from the response headers, and one log line per response carrying the ARM request ID.

Runs a real azure-core async pipeline (with its retry policy) against a small aiohttp server on a loopback
port that throttles the first attempt, so the retry and the resent attempt both pass through the policy.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web
from azure.core import AsyncPipelineClient
from azure.core.pipeline.policies import AsyncRetryPolicy
from azure.core.rest import AsyncHttpResponse, HttpRequest

from azure_identity_operator.arm.sdk.session import ArmRequestObserver
from azure_identity_operator.observability import metrics

PATH = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/app"
)
OPERATION = "Microsoft.ManagedIdentity/userAssignedIdentities/write"


def test_attempts_throttling_and_request_ids_are_recorded(caplog: pytest.LogCaptureFixture) -> None:
    recorded = metrics.OperatorMetrics(process_metrics=False)
    attempts: list[str] = []

    async def identity(request: web.Request) -> web.Response:
        attempts.append(request.method)
        if len(attempts) == 1:
            return web.json_response(
                {"error": {"code": "TooManyRequests", "message": "slow down"}},
                status=429,
                headers={"retry-after-ms": "20", "x-ms-request-id": "throttled-request"},
            )
        return web.json_response({"name": "app"}, status=201, headers={"x-ms-request-id": "created-request"})

    async def scenario() -> None:
        app = web.Application()
        app.router.add_put(PATH, identity)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            client: AsyncPipelineClient[HttpRequest, AsyncHttpResponse] = AsyncPipelineClient(
                f"http://127.0.0.1:{port}",
                policies=[AsyncRetryPolicy(retry_backoff_factor=0.01), ArmRequestObserver(recorded)],
            )
            async with client:
                request = HttpRequest("PUT", f"http://127.0.0.1:{port}{PATH}?api-version=2024-11-30", json={})
                response = await client.send_request(request)
                assert response.status_code == 201
        finally:
            await runner.cleanup()

    with caplog.at_level(logging.DEBUG, logger="azure_identity_operator.arm.sdk.session"):
        asyncio.run(scenario())

    assert attempts == ["PUT", "PUT"]
    for code in ("429", "201"):
        value = recorded.registry.get_sample_value(
            "azure_identity_operator_arm_requests_total",
            {"operation": OPERATION, "method": "PUT", "status_code": code},
        )
        assert value == 1, code
    latency_count = recorded.registry.get_sample_value(
        "azure_identity_operator_arm_request_duration_seconds_count",
        {"operation": OPERATION, "method": "PUT"},
    )
    assert latency_count == 2
    throttle_sum = recorded.registry.get_sample_value(
        "azure_identity_operator_arm_throttle_wait_seconds_sum", {"operation": OPERATION}
    )
    assert throttle_sum == pytest.approx(0.02)
    request_ids = [getattr(record, "arm_request_id", None) for record in caplog.records]
    assert request_ids == ["throttled-request", "created-request"]
    assert [getattr(record, "status_code", None) for record in caplog.records] == [429, 201]


def test_a_request_without_response_is_counted_as_none() -> None:
    recorded = metrics.OperatorMetrics(process_metrics=False)

    async def scenario() -> None:
        # A port nothing listens on: bind one, note it, close it.
        server = await asyncio.start_server(lambda *_: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        client: AsyncPipelineClient[HttpRequest, AsyncHttpResponse] = AsyncPipelineClient(
            f"http://127.0.0.1:{port}",
            policies=[AsyncRetryPolicy(retry_total=0), ArmRequestObserver(recorded)],
        )
        async with client:
            with pytest.raises(Exception, match=r"(?i)connect"):
                await client.send_request(HttpRequest("GET", f"http://127.0.0.1:{port}{PATH}"))

    asyncio.run(scenario())
    value = recorded.registry.get_sample_value(
        "azure_identity_operator_arm_requests_total",
        {
            "operation": "Microsoft.ManagedIdentity/userAssignedIdentities/read",
            "method": "GET",
            "status_code": "none",
        },
    )
    assert value == 1
