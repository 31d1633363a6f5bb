"""Speed of the Kubernetes API emulator: request latency as history grows, list and watch costs, and
fan-out to many concurrent watchers. Starts `python -m kube_emulator serve` and drives it over HTTP."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

OBJECTS = 3000
WATCHERS = 50
UPDATES = 200


def _start(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    ready = directory / "ready.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kube_emulator",
            "serve",
            "--port",
            "0",
            "--ready-file",
            str(ready),
            "--state-dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("kube_emulator did not start")
        time.sleep(0.05)
    return process, json.loads(ready.read_text())["server"]


async def _watch(session: aiohttp.ClientSession, url: str, expected: int, started: asyncio.Event) -> float:
    received = 0
    async with session.get(url) as response:
        started.set()
        async for _line in response.content:
            received += 1
            if received >= expected:
                return time.monotonic()
    return time.monotonic()


async def _measure(server: str) -> None:
    base = f"{server}/api/v1/namespaces/bench/configmaps"
    async with aiohttp.ClientSession() as session:
        await session.post(f"{server}/api/v1/namespaces", json={"metadata": {"name": "bench"}})
        latencies: list[float] = []
        started = time.monotonic()
        for index in range(OBJECTS):
            before = time.perf_counter()
            async with session.post(
                base,
                json={
                    "metadata": {"name": f"cm-{index}", "labels": {"n": str(index % 10)}},
                    "data": {"i": str(index)},
                },
            ) as response:
                await response.read()
            latencies.append(time.perf_counter() - before)
        elapsed = time.monotonic() - started
        print(f"create {OBJECTS} configmaps sequentially: {elapsed:.2f} s ({OBJECTS / elapsed:.0f}/s)")
        first, last = latencies[:200], latencies[-200:]
        print(
            f"create latency, first 200: median {statistics.median(first) * 1000:.2f} ms; "
            f"last 200: median {statistics.median(last) * 1000:.2f} ms"
        )
        before = time.perf_counter()
        async with session.get(base) as response:
            listing = await response.json()
        print(f"list {len(listing['items'])} configmaps: {(time.perf_counter() - before) * 1000:.1f} ms")
        before = time.perf_counter()
        async with session.get(base, params={"labelSelector": "n=3"}) as response:
            selected = await response.json()
        selected_ms = (time.perf_counter() - before) * 1000
        print(f"list with label selector ({len(selected['items'])} match): {selected_ms:.1f} ms")
        version = listing["metadata"]["resourceVersion"]

        watch_url = f"{base}?watch=1&resourceVersion={version}&timeoutSeconds=60"
        ready_events = [asyncio.Event() for _ in range(WATCHERS)]
        watchers = [asyncio.create_task(_watch(session, watch_url, UPDATES, ready)) for ready in ready_events]
        await asyncio.gather(*(ready.wait() for ready in ready_events))
        started = time.monotonic()
        for index in range(UPDATES):
            async with session.patch(
                f"{base}/cm-{index}",
                json={"data": {"updated": "yes"}},
                headers={"Content-Type": "application/merge-patch+json"},
            ) as response:
                await response.read()
        writes_done = time.monotonic()
        finished = await asyncio.gather(*watchers)
        delivered = WATCHERS * UPDATES
        print(
            f"{UPDATES} updates with {WATCHERS} watchers: writes {writes_done - started:.2f} s, "
            f"all {delivered} events delivered after {max(finished) - started:.2f} s "
            f"({delivered / (max(finished) - started):.0f} events/s)"
        )

        async def create_many(worker: int) -> None:
            for index in range(100):
                async with session.post(base, json={"metadata": {"name": f"p-{worker}-{index}"}}) as response:
                    await response.read()

        started = time.monotonic()
        await asyncio.gather(*(create_many(worker) for worker in range(20)))
        elapsed = time.monotonic() - started
        print(f"2000 creates from 20 concurrent clients: {elapsed:.2f} s ({2000 / elapsed:.0f}/s)")
        before = time.perf_counter()
        async with session.get(f"{base}?watch=1&resourceVersion={version}&timeoutSeconds=1") as response:
            lines = len((await response.read()).splitlines())
        backlog_ms = (time.perf_counter() - before - 1) * 1000
        print(f"resume a watch across {lines} changes: {backlog_ms:.0f} ms (plus its 1 s timeout)")
        await _custom_resources(session, server)


VALIDATED_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gauges.bench.dev"},
    "spec": {
        "group": "bench.dev",
        "scope": "Namespaced",
        "names": {"plural": "gauges", "singular": "gauge", "kind": "Gauge"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["name"],
                                "x-kubernetes-validations": [
                                    {"rule": "has(self.a) != has(self.b)"},
                                    {"rule": "!has(oldSelf.region) || self.region == oldSelf.region"},
                                ],
                                "properties": {
                                    "name": {
                                        "type": "string",
                                        "maxLength": 40,
                                        "x-kubernetes-validations": [
                                            {"rule": "self.matches('^[a-z][a-z0-9-]*$')"},
                                            {"rule": "self.lowerAscii() == self"},
                                        ],
                                    },
                                    "region": {"type": "string", "enum": ["westeurope", "eastus"]},
                                    "a": {"type": "integer", "minimum": 0},
                                    "b": {"type": "string"},
                                },
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


async def _custom_resources(session: aiohttp.ClientSession, server: str) -> None:
    """Writes of custom resources pay for schema checks and CEL rules (four here, as in the operator's)."""
    await session.post(f"{server}/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=VALIDATED_CRD)
    base = f"{server}/apis/bench.dev/v1/namespaces/bench/gauges"
    count = 500
    started = time.monotonic()
    for index in range(count):
        body = {
            "metadata": {"name": f"g-{index}"},
            "spec": {"name": f"g-{index}", "region": "eastus", "a": index},
        }
        async with session.post(base, json=body) as response:
            assert response.status == 201, await response.text()
    elapsed = time.monotonic() - started
    each_ms = elapsed / count * 1000
    print(f"create {count} custom resources with 4 CEL rules: {elapsed:.2f} s ({each_ms:.1f} ms each)")
    started = time.monotonic()
    for index in range(count):
        async with session.patch(
            f"{base}/g-{index}",
            json={"spec": {"a": index + 1}},
            headers={"Content-Type": "application/merge-patch+json"},
        ) as response:
            assert response.status == 200, await response.text()
    elapsed = time.monotonic() - started
    print(f"merge-patch {count} of them: {elapsed:.2f} s ({elapsed / count * 1000:.1f} ms each)")


def _resident_megabytes(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-kube-emulator-") as directory:
        started = time.monotonic()
        process, server = _start(Path(directory))
        print(f"start until ready: {time.monotonic() - started:.2f} s")
        try:
            asyncio.run(_measure(server))
            resident = _resident_megabytes(process.pid)
            print(f"server resident memory with {OBJECTS + 2000} objects: {resident:.0f} MB")
        finally:
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
