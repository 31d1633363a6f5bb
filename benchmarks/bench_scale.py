"""The operator at scale: many identities and role assignments at once, under ARM's real throttling.

Runs the real operator process on the local stack (both emulators, `local_stack.stack.LocalStack`, with
the operator's `IDENTITY_OPERATOR_SYNC_INTERVAL=60`) and prints a table of figures next to their targets.

Scenario A, throttled. The Azure emulator runs with `--throttle` (ARM's token buckets per subscription and
principal: reads 250 burst refilled at 25/s, writes 200 burst refilled at 10/s; 429 + Retry-After beyond
them; see src/azure_emulator/README.md). The benchmark creates 10 resource groups in Azure, then N
UserAssignedIdentities and N RoleAssignments (each `principal.identityRef` to its own identity, role
Reader, scope = that identity's resource group), spread round-robin over the 10 groups. All 2N objects
are created at once straight through the Kubernetes API (8 concurrent POSTs, identities first, then the
assignments; no kubectl, so kubectl's own start-up and per-object round trips cost nothing), just after
the buckets are reset to full (`PUT /_emulator/throttling`, the same buckets as `--throttle`).

- T: from the first POST until every object's Ready condition is True, polled with one list call per kind
  (every second; for large N every N/2000 s, so the polls do not eat the 2 cores the operator has).
- T_min: the floor ARM's buckets put under the minimal work, 2N writes (one PUT per identity, one per
  assignment) and about 2N reads. A bucket of capacity C refilled at r per second lets through at most
  C + r*t requests in t seconds, so M requests of one kind need at least max(0, (M - C) / r) seconds; the
  read and write buckets are independent, so T_min = max((2N - 200) / 10, (2N - 250) / 25). For
  N = 1000: writes (2000 - 200) / 10 = 180 s, reads (2000 - 250) / 25 = 70 s, so T_min = 180 s. (The
  subscription-global buckets are 15 times larger and never bind for one principal; the operator's token
  requests go to Entra, not through ARM's buckets.) For N <= 100 the minimal work fits in the bursts and
  T_min is 0, so T/T_min is not a figure there.
- 429 answers the emulator sent, and their share of every request it received (token requests
  included; they are few).
- Objects that ever showed an error reason: at every poll, an object whose Ready condition is False with
  a reason other than the progress ones (`Reconciling`, `WaitingForIdentity`, `WaitingForPrincipal`,
  `Queued`, `Deleting`) counts once, whatever the reason; `Throttled` and `AzureError` count as error
  reasons here, since users see them. Reasons are printed with the number of objects that showed each. A
  reason shown for less than a poll interval can be missed.
- ARM reads (GET/HEAD) and writes (PUT/PATCH/POST/DELETE) under /subscriptions and /providers per object
  (of 2N) from the first POST until all are Ready, counted from the emulator's request counts; requests
  answered 429 are included (they were sent). Then the steady state: over a window of 70 s (at least one
  full 60 s interval) right after all are Ready, reads and writes per object per interval =
  count / 2N / (window / 60). The drift checks of objects made together fall due together (60 s ±10%
  after their last reconcile), so with a small N, all Ready within seconds, the window holds exactly one
  check per object and the figure reads 60/70 of the true one; with N = 1000, made over minutes, the
  checks are spread and the window averages them. The raw counts are printed under the table.
- Kubernetes writes (every verb but get, list and watch: create, update, patch, delete) made by the
  operator, per object during creation and per object per interval in the steady state, from the
  Kubernetes API emulator's audit log (`--audit-file`; requests of this benchmark and of kubectl are told
  apart by their User-Agent), with a breakdown by verb and resource.
- The operator's resident memory at the end (VmRSS) and its peak (VmHWM), from /proc.

Scenario B, unthrottled: 5,000 and then 10,000 UserAssignedIdentities on one stack (5,000 created, then
5,000 more; spread over the same 10 groups, created as in A): for each size, the time until the added ones
are all Ready, the operator's resident memory (current and peak) and the resident memory per object
above its idle figure before the first apply.

Settings (environment):
- `BENCH_SCALE_N` (default 1000): N of scenario A; 0 skips it. E.g. `BENCH_SCALE_N=100` for a quick try.
- `BENCH_SCALE_B` (default `5000,10000`): the sizes of scenario B; empty skips it.
- `BENCH_SCALE_SKIP_10K=1`: leaves 10,000 out of scenario B.
- `BENCH_SCALE_STEADY_SECONDS` (default 70): the steady-state window of A.
- `BENCH_SCALE_TIMEOUT` (default max(480, 2 T_min + 60) s for A; for each size of B
  max(900, 0.15 s per identity + 120) s): how long to wait for all Ready; past it the figures measured so
  far are printed, marked as not all Ready.

Time: scenario A with N = 1000 takes start-up (~15 s) + T + 70 s of steady state: under 10 minutes on 2
cores as long as T stays under 8 minutes, and the timeout above stops it there (printing what it measured)
otherwise. Scenario B is unthrottled on both sides: the Azure emulator does not throttle and the
operator's own ARM budget is set out of the way (`IDENTITY_OPERATOR_ARM_BUCKETS`), so it measures the
operator's own time and memory per object, not ARM's 10 writes a second. `BENCH_SCALE_SKIP_10K=1` or
`BENCH_SCALE_B=5000` shortens it. `BENCH_SCALE_N=100 BENCH_SCALE_B=500` is a
run of about 2 minutes for checking that it works.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import http.client
import json
import os
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks import process
from local_stack.stack import LocalStack

NAMESPACE = "default"
GROUP_VERSION = "identityoperator.dev/v1alpha1"
SYNC_INTERVAL = 60.0
RESOURCE_GROUPS = tuple(f"rg-scale-{index:02d}" for index in range(10))
LOCATION = "westeurope"
USER_AGENT = "bench-scale/1"
APPLY_THREADS = 8
PROGRESS_REASONS = frozenset(
    {"Reconciling", "WaitingForIdentity", "WaitingForPrincipal", "Queued", "Deleting"}
)
READ_VERBS = frozenset({"get", "list", "watch"})
ARM_READS = frozenset({"GET", "HEAD"})
ARM_WRITES = frozenset({"PUT", "PATCH", "POST", "DELETE"})
# ARM's buckets as the emulator enforces them with --throttle (azure_emulator.behaviour.DEFAULT_LIMITS).
READ_BUCKET = (250.0, 25.0)
WRITE_BUCKET = (200.0, 10.0)

# Targets, printed next to the figures.
TARGET_T_RATIO = 1.15
TARGET_429_SHARE = 0.01
TARGET_CREATION_READS = 1.2
TARGET_STEADY_READS = 0.1
TARGET_RSS_AT_5000_MIB = 150.0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def _say(message: str) -> None:
    """Progress, on stderr so that stdout keeps only the figures."""
    print(message, file=sys.stderr, flush=True)


# --- the stack -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ScaleStack(LocalStack):
    """The local stack with the Azure emulator's `--throttle` (when asked) and the Kubernetes API
    emulator's audit log in a file.

    Neither emulator saves its state here: `make run`'s Azure emulator writes its whole world to disk
    after every change (`--persist`), which with thousands of identities costs more CPU per request than
    the operator does and turns the benchmark into one of the emulator's disk writes; the Kubernetes
    emulator's periodic snapshot is put off the same way. The state dies with the temporary folder anyway.
    """

    throttle: bool = False

    @property
    def audit_path(self) -> Path:
        return self.workdir / "kube-audit.jsonl"

    def _start_emulator(self, name: str, arguments: list[str]) -> dict[str, Any]:
        if name == "azure-emulator":
            arguments = [argument for argument in arguments if argument != "--persist"]
            if self.throttle:
                arguments.append("--throttle")
        if name == "kube-emulator":
            arguments = [*arguments, "--audit-file", str(self.audit_path), "--save-interval", "86400"]
        return super()._start_emulator(name, arguments)

    def operator_env(self) -> dict[str, str]:
        env = super().operator_env()
        if not self.throttle:
            # Unthrottled means on both sides: the operator's own ARM budget (ARM's buckets, 10 writes/s)
            # would otherwise pace scenario B as ARM would, and measure ARM's limit rather than the
            # operator's time and memory per object.
            env["IDENTITY_OPERATOR_ARM_BUCKETS"] = ",".join(
                f"{kind}=1000000:1000000" for kind in ("reads", "writes", "deletes")
            )
        return env

    @property
    def operator_pid(self) -> int:
        (operator,) = [child for child in self.children if child.name == "operator"]
        return operator.process.pid


class Kube:
    """The Kubernetes API emulator over plain HTTP, one keep-alive connection per thread."""

    def __init__(self, server: str) -> None:
        parsed = urllib.parse.urlsplit(server)
        self._host, self._port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=120)
            self._local.connection = connection
        return connection

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            connection = self._connection()
            try:
                connection.request(method, path, body=data, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except (ConnectionError, http.client.HTTPException):
                connection.close()
                self._local.connection = None
                if attempt:
                    raise
                continue
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: {response.status} {payload[:300]!r}")
            return json.loads(payload) if payload else None
        raise AssertionError("unreachable")

    def items(self, plural: str) -> list[dict[str, Any]]:
        listed = self.request("GET", f"/apis/{GROUP_VERSION}/namespaces/{NAMESPACE}/{plural}")
        items: list[dict[str, Any]] = listed["items"]
        return items


class Azure:
    """The Azure emulator: ARM as the bootstrap principal, and the control endpoint."""

    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack
        self._context = ssl.create_default_context(cafile=stack.azure["ca_file"])

    def _call(self, method: str, url: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers=headers,
        )
        with urllib.request.urlopen(request, context=self._context, timeout=60) as response:
            payload = response.read()
            return json.loads(payload) if payload else None

    def create_resource_groups(self, names: Iterable[str]) -> None:
        token = self._stack.arm_token()
        base = f"{self._stack.azure['arm_endpoint']}/subscriptions/{self._stack.azure['subscription_id']}"
        for name in names:
            self._call(
                "PUT", f"{base}/resourceGroups/{name}?api-version=2022-09-01", {"location": LOCATION}, token
            )

    def refill_buckets(self) -> None:
        """Every bucket full again, enforcement as --throttle set it (the default limits)."""
        self._call("PUT", f"{self._stack.azure['control_url']}/throttling", {"enabled": True})

    def reset_counts(self) -> None:
        self._call("DELETE", f"{self._stack.azure['control_url']}/requests")

    def counts(self) -> tuple[collections.Counter[str], collections.Counter[str]]:
        """(requests by "METHOD /path", answers by "METHOD STATUS") since the last reset."""
        answer = self._call("GET", f"{self._stack.azure['control_url']}/requests")
        return collections.Counter(answer["counts"]), collections.Counter(answer.get("responses") or {})


# --- objects ---------------------------------------------------------------------------------------------


def _identity(index: int) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "UserAssignedIdentity",
        "metadata": {"name": f"scale-{index:05d}", "namespace": NAMESPACE},
        "spec": {"resourceGroup": RESOURCE_GROUPS[index % len(RESOURCE_GROUPS)], "location": LOCATION},
    }


def _assignment(index: int, subscription_id: str) -> dict[str, Any]:
    group = RESOURCE_GROUPS[index % len(RESOURCE_GROUPS)]
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "RoleAssignment",
        "metadata": {"name": f"scale-{index:05d}", "namespace": NAMESPACE},
        "spec": {
            "principal": {"identityRef": {"name": f"scale-{index:05d}"}},
            "role": "Reader",
            "scope": f"/subscriptions/{subscription_id}/resourceGroups/{group}",
        },
    }


def _plural(kind: str) -> str:
    return {"UserAssignedIdentity": "userassignedidentities", "RoleAssignment": "roleassignments"}[kind]


def _create_all(kube: Kube, objects: Sequence[Mapping[str, Any]]) -> None:
    def create(body: Mapping[str, Any]) -> None:
        kube.request("POST", f"/apis/{GROUP_VERSION}/namespaces/{NAMESPACE}/{_plural(body['kind'])}", body)

    with concurrent.futures.ThreadPoolExecutor(APPLY_THREADS) as pool:
        for future in [pool.submit(create, body) for body in objects]:
            future.result()


def _ready_condition(item: Mapping[str, Any]) -> Mapping[str, Any]:
    for condition in (item.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return dict(condition)
    return {}


@dataclasses.dataclass
class Watcher:
    """What the polls saw: Ready objects, and every error reason each object ever showed."""

    kube: Kube
    plurals: Sequence[str]
    ready: dict[str, bool] = dataclasses.field(default_factory=dict)
    errors: dict[str, set[str]] = dataclasses.field(default_factory=lambda: collections.defaultdict(set))
    not_ready_reasons: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    polls: int = 0
    poll_seconds: float = 0.0

    def poll(self) -> int:
        """One list per kind; returns how many objects are Ready."""
        started = time.perf_counter()
        self.not_ready_reasons.clear()
        for plural in self.plurals:
            for item in self.kube.items(plural):
                key = f"{plural}/{item['metadata']['name']}"
                condition = _ready_condition(item)
                status, reason = condition.get("status"), str(condition.get("reason") or "")
                self.ready[key] = status == "True"
                if status == "False" and reason not in PROGRESS_REASONS:
                    self.errors[key].add(reason or "(none)")
                if status != "True":
                    self.not_ready_reasons[f"{status or 'no condition'} {reason}".strip()] += 1
        self.polls += 1
        self.poll_seconds += time.perf_counter() - started
        return sum(self.ready.values())

    def reasons_seen(self) -> collections.Counter[str]:
        """Error reason -> number of objects that ever showed it."""
        return collections.Counter(reason for reasons in self.errors.values() for reason in reasons)


def _wait_all_ready(
    stack: ScaleStack, watcher: Watcher, total: int, started: float, timeout: float, interval: float
) -> float | None:
    """Seconds from `started` until all `total` objects are Ready (None on timeout)."""
    next_progress = started + 60
    while True:
        polled = time.perf_counter()
        ready = watcher.poll()
        now = time.perf_counter()
        if ready >= total:
            return now - started
        failed = stack.failed_child()
        if failed is not None:
            raise RuntimeError(f"{failed.name} exited:\n{failed.log_tail()}")
        if now - started > timeout:
            return None
        if now >= next_progress:
            _say(f"  {ready}/{total} Ready after {now - started:.0f} s")
            next_progress += 60
        time.sleep(max(0.0, interval - (time.perf_counter() - polled)))


# --- measurements ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ArmCounts:
    reads: int
    writes: int
    throttled: int
    total: int
    tokens: int

    @staticmethod
    def between(
        before: tuple[collections.Counter[str], collections.Counter[str]],
        after: tuple[collections.Counter[str], collections.Counter[str]],
    ) -> ArmCounts:
        requests = after[0] - before[0]
        responses = after[1] - before[1]
        reads = writes = tokens = 0
        for key, count in requests.items():
            method, _, path = key.partition(" ")
            if path.lower().startswith(("/subscriptions", "/providers")):
                if method in ARM_READS:
                    reads += count
                elif method in ARM_WRITES:
                    writes += count
            elif path.endswith("/token"):
                tokens += count
        throttled = sum(count for key, count in responses.items() if key.endswith(" 429"))
        return ArmCounts(reads, writes, throttled, sum(requests.values()), tokens)


class Audit:
    """The operator's requests from the Kubernetes API emulator's audit file, read window by window."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = path.stat().st_size if path.exists() else 0

    def skip(self) -> None:
        self.take()

    def take(self) -> collections.Counter[str]:
        """The operator's writes since the last call, by "verb resource[/subresource]"."""
        with self._path.open("rb") as file:
            file.seek(self._offset)
            chunk = file.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        writes: collections.Counter[str] = collections.Counter()
        for line in complete.splitlines():
            record = json.loads(line)
            agent = str(record.get("userAgent") or "")
            if agent.startswith((USER_AGENT, "kubectl")) or record.get("verb") in READ_VERBS:
                continue
            resource = record.get("resource") or record.get("path")
            if record.get("subresource"):
                resource = f"{resource}/{record['subresource']}"
            writes[f"{record.get('verb')} {resource}"] += 1
        return writes


# --- the table -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Table:
    title: str
    rows: list[tuple[str, str, str, str]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def add(self, figure: str, value: str, target: str = "", met: bool | None = None) -> None:
        self.rows.append((figure, value, target, "" if met is None else ("yes" if met else "NO")))

    def print(self) -> None:
        header = ("figure", "value", "target", "met")
        widths = [max(len(row[i]) for row in [header, *self.rows]) for i in range(4)]
        print(f"\n{self.title}")
        line = "  ".join("-" * width for width in widths)
        print(line)
        for row in [header, *self.rows]:
            print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
            if row is header:
                print(line)
        print(line)
        for note in self.notes:
            print(f"  {note}")
        sys.stdout.flush()


def _per(count: float, objects: int) -> str:
    return f"{count / objects:.2f}" if objects else "n/a"


def _breakdown(writes: collections.Counter[str]) -> str:
    return ", ".join(f"{key} {count}" for key, count in writes.most_common()) or "none"


def t_min_seconds(writes: int, reads: int) -> tuple[float, float, float]:
    """(T_min, writes floor, reads floor): M requests through a bucket of capacity C refilled at r per
    second take at least max(0, (M - C) / r) seconds; the two buckets are independent."""
    write_floor = max(0.0, (writes - WRITE_BUCKET[0]) / WRITE_BUCKET[1])
    read_floor = max(0.0, (reads - READ_BUCKET[0]) / READ_BUCKET[1])
    return max(write_floor, read_floor), write_floor, read_floor


def _poll_interval(objects: int) -> float:
    return max(1.0, objects / 2000)


def _new_stack(directory: str, *, throttle: bool) -> ScaleStack:
    stack = ScaleStack(
        Path(directory), examples=(), sync_interval=SYNC_INTERVAL, say=lambda _: None, throttle=throttle
    )
    stack.up()
    Azure(stack).create_resource_groups(RESOURCE_GROUPS)
    time.sleep(2)  # let the operator's start-up settle before its idle memory is read
    return stack


# --- scenario A ------------------------------------------------------------------------------------------


def scenario_a(n: int) -> None:
    objects = 2 * n
    t_min, write_floor, read_floor = t_min_seconds(objects, objects)
    timeout = _env_float("BENCH_SCALE_TIMEOUT", max(480.0, 2 * t_min + 60))
    steady_seconds = _env_float("BENCH_SCALE_STEADY_SECONDS", 70.0)
    interval = _poll_interval(objects)
    _say(f"scenario A: {n} identities + {n} role assignments, ARM throttled (T_min {t_min:.0f} s)")
    with tempfile.TemporaryDirectory(prefix="bench-scale-a-") as directory:
        stack = _new_stack(directory, throttle=True)
        try:
            azure, kube = Azure(stack), Kube(stack.kube["server"])
            pid = stack.operator_pid
            idle_rss, _ = process.resident_mib(pid)
            subscription = stack.azure["subscription_id"]
            manifests = [_identity(i) for i in range(n)] + [_assignment(i, subscription) for i in range(n)]
            audit = Audit(stack.audit_path)
            watcher = Watcher(kube, ("userassignedidentities", "roleassignments"))

            azure.refill_buckets()
            azure.reset_counts()
            audit.skip()
            start_counts = azure.counts()
            cpu_start = process.cpu_seconds(pid)
            started = time.perf_counter()
            _create_all(kube, manifests)
            applied = time.perf_counter() - started
            elapsed = _wait_all_ready(stack, watcher, objects, started, timeout, interval)
            ready_counts = azure.counts()
            creation_kube = audit.take()
            cpu_creation = process.cpu_seconds(pid) - cpu_start
            creation = ArmCounts.between(start_counts, ready_counts)
            ready_rss, ready_peak = process.resident_mib(pid)

            steady: ArmCounts | None = None
            steady_kube: collections.Counter[str] = collections.Counter()
            window = 0.0
            if elapsed is not None:
                _say(f"  all Ready after {elapsed:.1f} s; steady state for {steady_seconds:.0f} s")
                window_start = time.perf_counter()
                while time.perf_counter() - window_start < steady_seconds:
                    time.sleep(min(5.0, max(0.0, steady_seconds - (time.perf_counter() - window_start))))
                    watcher.poll()  # an error reason shown by a drift check counts as well
                window = time.perf_counter() - window_start
                steady = ArmCounts.between(ready_counts, azure.counts())
                steady_kube = audit.take()
            end_rss, end_peak = process.resident_mib(pid)
            _print_a(
                n=n,
                elapsed=elapsed,
                timeout=timeout,
                applied=applied,
                interval=interval,
                floors=(t_min, write_floor, read_floor),
                creation=creation,
                creation_kube=creation_kube,
                cpu_creation=cpu_creation,
                steady=steady,
                steady_kube=steady_kube,
                window=window,
                watcher=watcher,
                memory=(idle_rss, ready_rss, ready_peak, end_rss, end_peak),
            )
        finally:
            stack.down()


def _print_a(
    *,
    n: int,
    elapsed: float | None,
    timeout: float,
    applied: float,
    interval: float,
    floors: tuple[float, float, float],
    creation: ArmCounts,
    creation_kube: collections.Counter[str],
    cpu_creation: float,
    steady: ArmCounts | None,
    steady_kube: collections.Counter[str],
    window: float,
    watcher: Watcher,
    memory: tuple[float, float, float, float, float],
) -> None:
    objects = 2 * n
    t_min, write_floor, read_floor = floors
    idle_rss, ready_rss, ready_peak, end_rss, end_peak = memory
    table = Table(
        f"Scenario A: {n} UserAssignedIdentities + {n} RoleAssignments over {len(RESOURCE_GROUPS)} resource "
        f"groups, ARM throttled, sync interval {SYNC_INTERVAL:.0f} s"
    )
    ready_now = sum(watcher.ready.values())
    if elapsed is None:
        table.add(
            f"T: apply -> all {objects} Ready",
            f"not reached in {timeout:.0f} s ({ready_now}/{objects} Ready)",
            "",
            False,
        )
    else:
        table.add(f"T: apply -> all {objects} Ready", f"{elapsed:.1f} s")
    table.add(
        "T_min from ARM's buckets",
        f"{t_min:.1f} s (writes {write_floor:.0f} s, reads {read_floor:.0f} s)",
    )
    if t_min > 0:
        ratio = (elapsed if elapsed is not None else timeout) / t_min
        shown = f"{ratio:.2f}" if elapsed is not None else f"> {ratio:.2f}"
        table.add("T / T_min", shown, f"<= {TARGET_T_RATIO}", elapsed is not None and ratio <= TARGET_T_RATIO)
    else:
        table.add("T / T_min", "n/a (the minimal work fits in the bursts)", f"<= {TARGET_T_RATIO}")
    share = creation.throttled / creation.total if creation.total else 0.0
    throttled_all = creation.throttled + (steady.throttled if steady else 0)
    total_all = creation.total + (steady.total if steady else 0)
    share_all = throttled_all / total_all if total_all else 0.0
    table.add(
        "429 answers / all requests (creation)",
        f"{creation.throttled} / {creation.total} ({share:.1%})",
        f"<= {TARGET_429_SHARE:.0%}",
        share <= TARGET_429_SHARE,
    )
    if steady is not None:
        table.add(
            "429 answers / all requests (whole run)",
            f"{throttled_all} / {total_all} ({share_all:.1%})",
            f"<= {TARGET_429_SHARE:.0%}",
            share_all <= TARGET_429_SHARE,
        )
    reasons = watcher.reasons_seen()
    table.add(
        "objects that ever showed an error reason",
        f"{len(watcher.errors)} of {objects}",
        "0",
        not watcher.errors,
    )
    table.add(
        "ARM reads / object (creation)",
        _per(creation.reads, objects),
        f"<= {TARGET_CREATION_READS}",
        creation.reads / objects <= TARGET_CREATION_READS,
    )
    table.add("ARM writes / object (creation)", _per(creation.writes, objects), "1.00 (minimal)")
    kube_creation = sum(creation_kube.values())
    table.add("Kubernetes writes / object (creation)", _per(kube_creation, objects))
    if steady is not None and window > 0:
        intervals = window / SYNC_INTERVAL
        reads = steady.reads / objects / intervals
        writes = steady.writes / objects / intervals
        kube_writes = sum(steady_kube.values()) / objects / intervals
        table.add(
            "ARM reads / object / interval (steady)",
            f"{reads:.3f}",
            f"<= {TARGET_STEADY_READS}",
            reads <= TARGET_STEADY_READS,
        )
        table.add("ARM writes / object / interval (steady)", f"{writes:.3f}", "0", steady.writes == 0)
        table.add(
            "Kubernetes writes / object / interval (steady)",
            f"{kube_writes:.3f}",
            "0",
            not steady_kube,
        )
    else:
        table.add("steady state", "not measured (not all Ready)")
    table.add("operator RSS: idle / at all Ready", f"{idle_rss:.1f} / {ready_rss:.1f} MiB")
    table.add("operator RSS at the end (VmRSS)", f"{end_rss:.1f} MiB")
    table.add("operator peak RSS (VmHWM)", f"{max(ready_peak, end_peak):.1f} MiB")
    table.notes.append(
        f"apply: {objects} POSTs in {applied:.1f} s straight to the Kubernetes API "
        f"({APPLY_THREADS} threads); "
        f"Ready polled every {interval:.0f} s with one list per kind ({watcher.polls} polls, "
        f"{watcher.poll_seconds / max(1, watcher.polls):.2f} s each on average)"
    )
    table.notes.append(
        "error reasons seen (objects): "
        + (", ".join(f"{reason} {count}" for reason, count in reasons.most_common()) or "none")
    )
    if elapsed is None:
        table.notes.append(
            "not Ready at the timeout: "
            + ", ".join(f"{reason} {count}" for reason, count in watcher.not_ready_reasons.most_common())
        )
    table.notes.append(
        f"ARM during creation: {creation.reads} reads, {creation.writes} writes (429s included), "
        f"{creation.tokens} token requests; operator CPU {cpu_creation:.1f} s"
    )
    table.notes.append(f"Kubernetes writes during creation: {_breakdown(creation_kube)}")
    if steady is not None:
        table.notes.append(
            f"steady window {window:.0f} s = {window / SYNC_INTERVAL:.2f} intervals: "
            f"ARM {steady.reads} reads ({steady.reads / objects:.2f} per object in the window), "
            f"{steady.writes} writes, {steady.throttled} 429s; Kubernetes writes: {_breakdown(steady_kube)}"
        )
    table.print()


# --- scenario B ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SizeResult:
    count: int
    added: int
    """Identities created for this size (the stack already held the rest)."""
    elapsed: float | None
    ready: int
    idle_rss: float
    rss: float
    peak: float
    errors: collections.Counter[str]
    cpu: float
    interval: float
    poll_seconds: float


def scenario_b_sizes(sizes: Sequence[int]) -> Iterator[SizeResult]:
    """One stack grown to each size in turn (5,000, then 5,000 more to 10,000): each result is measured
    when that many identities are Ready, its time for the identities added since the previous size."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-b-") as directory:
        stack = _new_stack(directory, throttle=False)
        try:
            kube = Kube(stack.kube["server"])
            pid = stack.operator_pid
            idle_rss, _ = process.resident_mib(pid)
            watcher = Watcher(kube, ("userassignedidentities",))
            created = 0
            for count in sorted(sizes):
                timeout = _env_float("BENCH_SCALE_TIMEOUT", max(900.0, 0.15 * (count - created) + 120))
                interval = _poll_interval(count)
                _say(f"scenario B: {count - created} more identities ({count} in all), no throttling")
                manifests = [_identity(i) for i in range(created, count)]
                cpu_start = process.cpu_seconds(pid)
                started = time.perf_counter()
                _create_all(kube, manifests)
                elapsed = _wait_all_ready(stack, watcher, count, started, timeout, interval)
                rss, peak = process.resident_mib(pid)
                yield SizeResult(
                    count=count,
                    added=count - created,
                    elapsed=elapsed,
                    ready=sum(watcher.ready.values()),
                    idle_rss=idle_rss,
                    rss=rss,
                    peak=peak,
                    errors=watcher.reasons_seen(),
                    cpu=process.cpu_seconds(pid) - cpu_start,
                    interval=interval,
                    poll_seconds=watcher.poll_seconds / max(1, watcher.polls),
                )
                created = count
                if elapsed is None:
                    return
        finally:
            stack.down()


def scenario_b(sizes: Sequence[int]) -> None:
    """One table per size, printed as soon as it is measured."""
    for result in scenario_b_sizes(sizes):
        label = f"{result.count:,}"
        table = Table(
            f"Scenario B: {label} UserAssignedIdentities over {len(RESOURCE_GROUPS)} resource groups, "
            f"no throttling, sync interval {SYNC_INTERVAL:.0f} s"
        )
        if result.elapsed is None:
            table.add("apply -> all Ready", f"not reached ({result.ready}/{result.count} Ready)", "", False)
        else:
            table.add(
                f"apply {result.added:,} more -> all {result.count:,} Ready",
                f"{result.elapsed:.1f} s ({result.added / result.elapsed:.0f}/s)",
            )
        at_5000 = result.count == 5000
        table.add(
            "operator RSS now / peak",
            f"{result.rss:.1f} / {result.peak:.1f} MiB",
            f"<= {TARGET_RSS_AT_5000_MIB:.0f} MiB" if at_5000 else "",
            max(result.rss, result.peak) <= TARGET_RSS_AT_5000_MIB if at_5000 else None,
        )
        table.add("operator RSS idle (before the apply)", f"{result.idle_rss:.1f} MiB")
        table.add(
            "RSS per object above idle (now / peak)",
            f"{(result.rss - result.idle_rss) * 1024 / result.count:.1f} / "
            f"{(result.peak - result.idle_rss) * 1024 / result.count:.1f} KiB",
        )
        table.notes.append(
            f"operator CPU {result.cpu:.1f} s; polled every {result.interval:.1f} s "
            f"({result.poll_seconds:.2f} s a poll); error reasons seen (objects): "
            + (", ".join(f"{r} {c}" for r, c in result.errors.most_common()) or "none")
        )
        table.print()


def main() -> None:
    n = _env_int("BENCH_SCALE_N", 1000)
    sizes_text = os.environ.get("BENCH_SCALE_B", "5000,10000")
    sizes = [int(size) for size in sizes_text.replace(" ", "").split(",") if size]
    if os.environ.get("BENCH_SCALE_SKIP_10K", "").strip() not in ("", "0"):
        sizes = [size for size in sizes if size != 10000]
    steps: list[Callable[[], None]] = []
    if n > 0:
        steps.append(lambda: scenario_a(n))
    if sizes:
        steps.append(lambda: scenario_b(sizes))
    for step in steps:
        step()


if __name__ == "__main__":
    main()
