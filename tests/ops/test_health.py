"""The metrics port: `/readyz` answers 503 naming the failing checks until all pass, `/metrics` serves the
registry in Prometheus text format. A real aiohttp server on a free loopback port, read with aiohttp."""

from __future__ import annotations

import asyncio

import aiohttp

from azure_identity_operator.observability import health, metrics


def test_readyz_follows_the_checks_and_metrics_are_served() -> None:
    async def scenario() -> None:
        recorded = metrics.OperatorMetrics(process_metrics=False)
        recorded.record_reconcile(
            kind="UserAssignedIdentity", ready=True, needs_user=False, reason="Succeeded", seconds=0.1
        )
        started = asyncio.Event()
        readiness = health.Readiness()
        readiness.add("startup", started.is_set)
        readiness.add("broken", lambda: 1 / 0 == 0)
        server = health.MetricsServer(registry=recorded.registry, readiness=readiness)
        await server.start("127.0.0.1", 0)
        base = f"http://127.0.0.1:{server.port}"
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/readyz") as response:
                    assert response.status == 503
                    assert await response.text() == "not ready: startup, broken\n"
                started.set()
                del readiness.checks["broken"]
                async with session.get(f"{base}/readyz") as response:
                    assert response.status == 200
                async with session.get(f"{base}/metrics") as response:
                    assert response.status == 200
                    assert response.headers["Content-Type"].startswith("text/plain")
                    body = await response.text()
            assert (
                'azure_identity_operator_reconciles_total{kind="UserAssignedIdentity",reason="Succeeded",'
                'result="success"} 1.0' in body
            )
        finally:
            await server.stop()

    asyncio.run(scenario())
