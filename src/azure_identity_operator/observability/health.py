"""The metrics port: `/metrics` (Prometheus text format) and `/readyz` (readiness).

Liveness is kopf's own probe (`--liveness`), which answers as long as the event loop runs. Readiness is
stricter: it answers 200 only once every registered check passes — the operator has finished start-up
and kopf has discovered the kinds and namespaces it serves, so its watches run. Until then, and whenever
a check fails, it answers 503 and names the checks that failed. Both are served on the operator's event
loop, so a blocked loop shows up as a failing probe, which is what a probe is for.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

logger = logging.getLogger(__name__)

ReadinessCheck = Callable[[], bool]


@dataclasses.dataclass
class Readiness:
    """Named checks that must all pass for the operator to be ready."""

    checks: dict[str, ReadinessCheck] = dataclasses.field(default_factory=dict)

    def add(self, name: str, check: ReadinessCheck) -> None:
        self.checks[name] = check

    def failing(self) -> list[str]:
        failed: list[str] = []
        for name, check in self.checks.items():
            try:
                passed = check()
            except Exception:
                logger.exception("Readiness check %s failed with an exception", name)
                passed = False
            if not passed:
                failed.append(name)
        return failed


class MetricsServer:
    """An aiohttp server on the operator's event loop serving `/metrics` and `/readyz`."""

    def __init__(self, *, registry: CollectorRegistry, readiness: Readiness) -> None:
        self._registry = registry
        self._readiness = readiness
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def start(self, host: str, port: int) -> None:
        runner = web.AppRunner(self.application(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        # Port 0 asks the OS for a free port; the runner knows which one it got.
        addresses = runner.addresses
        self.port = int(addresses[0][1]) if addresses else port
        logger.info("Serving /metrics and /readyz on %s:%s", host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _readyz(self, _: web.Request) -> web.Response:
        failed = self._readiness.failing()
        if failed:
            return web.Response(status=503, text="not ready: " + ", ".join(failed) + "\n")
        return web.Response(text="ok\n")
