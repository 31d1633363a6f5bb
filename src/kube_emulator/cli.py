"""Command line: `python -m kube_emulator serve --port 0 --ready-file FILE [--state-dir DIR]`.

Once listening, the server writes a kubeconfig (for kubectl, the kubernetes client and kopf) and then the
ready file, as JSON with `server` (URL) and `kubeconfig` (path). With --state-dir, objects survive a
restart: they are saved there on shutdown and every few seconds, and loaded at start.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from kube_emulator.audit import AuditLog
from kube_emulator.authorization import ADMIN_TOKEN
from kube_emulator.certificates import ensure_certificates
from kube_emulator.objects import WriteOptions
from kube_emulator.server import KubeApiServer, Settings
from kube_emulator.store import Store
from kube_emulator.tokens import TokenIssuer

logger = logging.getLogger("kube_emulator")


def kubeconfig_document(
    server: str, namespace: str = "default", certificate_authority: bytes | None = None
) -> dict[str, Any]:
    cluster: dict[str, Any] = {"server": server}
    if certificate_authority is not None:
        cluster["certificate-authority-data"] = base64.b64encode(certificate_authority).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kube-emulator", "cluster": cluster}],
        "users": [{"name": "kube-emulator", "user": {"token": ADMIN_TOKEN}}],
        "contexts": [
            {
                "name": "kube-emulator",
                "context": {"cluster": "kube-emulator", "user": "kube-emulator", "namespace": namespace},
            }
        ],
        "current-context": "kube-emulator",
        "preferences": {},
    }


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _parse_projection(text: str) -> tuple[str, str, Path]:
    account, _, path = text.partition("=")
    namespace, _, name = account.partition("/")
    if not (namespace and name and path):
        raise SystemExit(f"--project-token wants NAMESPACE/NAME=PATH, not {text!r}")
    return namespace, name, Path(path)


async def _project_token(
    server: KubeApiServer, projection: tuple[str, str, Path], *, audience: str, lifetime: int
) -> None:
    """Write a service account's token to a file and renew it at 80% of its lifetime, as the kubelet does
    for a projected volume (workload identity SDKs re-read the file)."""
    namespace, name, path = projection
    accounts = server.registry.lookup("", "v1", "serviceaccounts")
    assert accounts is not None
    assert server.issuer is not None
    request = {"spec": {"audiences": [audience], "expirationSeconds": lifetime}}
    loop = asyncio.get_running_loop()
    while True:
        account_object = server.store.get(accounts.storage_key, (namespace, name))
        if account_object is None:
            await asyncio.sleep(0.2)  # not created yet
            continue
        token = server.issuer.token_request(account_object, request)["status"]["token"]
        await loop.run_in_executor(None, _write_atomically, path, token)
        await asyncio.sleep(max(1.0, lifetime * 0.8))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kube_emulator", description="A local Kubernetes API server.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the Kubernetes API over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--ready-file", type=Path, help="JSON file written once listening")
    serve.add_argument("--state-dir", type=Path, help="keep objects, the signing key and the kubeconfig here")
    serve.add_argument("--kubeconfig", type=Path, help="where to write the kubeconfig (default: state dir)")
    serve.add_argument("--audit-file", type=Path, help="append one JSON line per request to this file")
    serve.add_argument("--issuer", help="service account token issuer URL (default: the server URL)")
    serve.add_argument(
        "--project-token",
        action="append",
        default=[],
        metavar="NAMESPACE/NAME=PATH",
        help="keep a token of this service account in PATH, refreshed before it expires, as the kubelet "
        "projects one into a pod (repeatable); written once the service account exists",
    )
    serve.add_argument("--projected-token-audience", default="api://AzureADTokenExchange")
    serve.add_argument("--projected-token-seconds", type=int, default=3600)
    serve.add_argument(
        "--bookmark-interval", type=float, default=60.0, help="seconds between watch bookmarks"
    )
    serve.add_argument(
        "--history", type=int, default=20000, help="changes kept per resource for watch resumes"
    )
    serve.add_argument("--save-interval", type=float, default=5.0, help="seconds between state saves")
    serve.add_argument(
        "--tls", action="store_true", help="serve HTTPS with a CA and certificate made in the state dir"
    )
    serve.add_argument(
        "--authorization",
        choices=("AlwaysAllow", "RBAC"),
        default="AlwaysAllow",
        help="RBAC: service account tokens are held to their Roles and ClusterRoles (the kubeconfig's "
        "token stays an administrator)",
    )
    serve.add_argument("--log-level", default="WARNING")
    return parser


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    raise RuntimeError("the server is not listening on a TCP port")


def _prepare_dirs(state_dir: Path | None) -> Path:
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
        return state_dir
    return Path(tempfile.mkdtemp(prefix="kube-emulator-"))


async def serve(arguments: argparse.Namespace) -> None:
    projected = [_parse_projection(text) for text in arguments.project_token]
    if arguments.authorization == "RBAC" and not arguments.tls:
        raise SystemExit("--authorization RBAC needs --tls: kubectl sends no credentials over plain HTTP")
    state_dir: Path | None = arguments.state_dir
    work_dir = _prepare_dirs(state_dir)
    store = Store(history_limit=arguments.history)
    state_file = state_dir / "state.json" if state_dir else None
    if state_file is not None and state_file.exists():
        store.restore(json.loads(state_file.read_text(encoding="utf-8")))
    server = KubeApiServer(
        store=store,
        audit=AuditLog(arguments.audit_file),
        settings=Settings(
            bookmark_interval=arguments.bookmark_interval, authorization=arguments.authorization
        ),
    )
    server.api.restore_registry()
    runner = web.AppRunner(server.app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    certificates = ensure_certificates(work_dir, arguments.host) if arguments.tls else None
    ssl_context = certificates.server_context() if certificates else None
    site = web.TCPSite(runner, arguments.host, arguments.port, ssl_context=ssl_context)
    await site.start()
    port = _bound_port(runner)
    url = f"{'https' if certificates else 'http'}://{arguments.host}:{port}"
    server.issuer = TokenIssuer(
        arguments.issuer or url, work_dir / "sa-signing-key.pem" if state_dir else None
    )
    if "default" not in {obj["metadata"]["name"] for obj in store.iter_objects(("", "namespaces"), None)}:
        namespaces = server.registry.lookup("", "v1", "namespaces")
        assert namespaces is not None
        for name in ("default", "kube-system", "kube-public"):
            server.api.create(
                namespaces, "", {"metadata": {"name": name}}, WriteOptions(manager="kube-apiserver")
            )
    store.start_history()
    kubeconfig_path: Path = arguments.kubeconfig or work_dir / "kubeconfig"
    authority = certificates.ca_file.read_bytes() if certificates else None
    _write_atomically(
        kubeconfig_path, yaml.safe_dump(kubeconfig_document(url, certificate_authority=authority))
    )
    ready = {"server": url, "kubeconfig": str(kubeconfig_path.resolve())}  # noqa: ASYNC240
    if certificates is not None:
        ready["certificateAuthority"] = str(certificates.ca_file.resolve())
    if arguments.ready_file is not None:
        _write_atomically(
            arguments.ready_file,
            json.dumps(ready),
        )
    logger.warning("kube-emulator listening on %s (kubeconfig %s)", url, kubeconfig_path)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)

    async def save() -> None:
        if state_file is None:
            return
        # The snapshot is taken on the loop (stored objects are never changed in place, only replaced),
        # then serialised and written in a thread so requests are not held up by large states.
        snapshot = store.snapshot()
        text = await loop.run_in_executor(None, json.dumps, snapshot)
        await loop.run_in_executor(None, _write_atomically, state_file, text)

    projections = [
        asyncio.create_task(
            _project_token(
                server,
                projection,
                audience=arguments.projected_token_audience,
                lifetime=arguments.projected_token_seconds,
            )
        )
        for projection in projected
    ]
    saved_version = store.resource_version
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=arguments.save_interval)
        if store.resource_version != saved_version:
            saved_version = store.resource_version
            await save()
    for projection_task in projections:
        projection_task.cancel()
    await server.stop_watches()
    await save()
    server.audit.close()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    arguments = _parser().parse_args(argv)
    logging.basicConfig(
        level=arguments.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    if arguments.command == "serve":
        asyncio.run(serve(arguments))
