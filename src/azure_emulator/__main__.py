"""Command line: `python -m azure_emulator serve --port 0 --ready-file FILE [options]`.

Starts the emulator on loopback and writes FILE (JSON) once both listeners accept connections:
`arm_endpoint`, `authority_host`, `ca_file`, `tenant_id`, `subscription_id`, `client_id`, `client_secret`,
`imds_endpoint`, `identity_endpoint`, `identity_header`, plus `control_url` and `state_dir`.
Runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from azure_emulator import assertions, behaviour, state, tls, tokens
from azure_emulator.emulator import Emulator
from azure_emulator.server import Server

STATE_FILE = "state.json"
SIGNING_KEY_FILE = "token-signing.key"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m azure_emulator", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve ARM, Entra and the managed-identity endpoints")
    serve.add_argument("--port", type=int, default=0, help="HTTPS port (0: any free port)")
    serve.add_argument("--imds-port", type=int, default=0, help="HTTP port of the managed-identity endpoints")
    serve.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    serve.add_argument("--ready-file", type=Path, required=True, help="JSON written once listening")
    serve.add_argument(
        "--state-dir", type=Path, help="CA, keys and state.json (default: FILE's folder/<FILE name>.state)"
    )
    serve.add_argument(
        "--persist", action="store_true", help="save the world to state.json after each change"
    )
    serve.add_argument(
        "--principal-delay", type=float, default=0.0, help="seconds a new principal stays unknown to RBAC"
    )
    serve.add_argument(
        "--subscription-id", type=_guid, help="ID of the emulated subscription (default: a new random GUID)"
    )
    serve.add_argument(
        "--tenant-id", type=_guid, help="ID of the emulated tenant (default: a new random GUID)"
    )
    serve.add_argument("--page-size", type=int, default=100, help="items per page of every list")
    serve.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    serve.add_argument("--lro-seconds", type=float, default=0.0, help="how long VM writes stay InProgress")
    serve.add_argument(
        "--fic-write-seconds", type=float, default=0.05, help="how long a FIC write holds its identity"
    )
    serve.add_argument("--throttle", action="store_true", help="enforce ARM's token-bucket limits (429)")
    serve.add_argument(
        "--custom-role-limit",
        type=_count,
        default=behaviour.CUSTOM_ROLE_LIMIT,
        help="custom role definitions per tenant (RoleDefinitionLimitExceeded beyond)",
    )
    serve.add_argument(
        "--role-assignment-limit",
        type=_count,
        default=behaviour.ROLE_ASSIGNMENT_LIMIT,
        help="role assignments per subscription (RoleAssignmentLimitExceeded beyond)",
    )
    serve.add_argument(
        "--verify-assertion-signatures",
        action="store_true",
        help="check client assertions against their issuer's published keys",
    )
    serve.add_argument("--trusted-ca-file", type=Path, help="extra CA bundle for fetching issuers' keys")
    serve.add_argument("--log-level", default="WARNING")
    return parser


def _guid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a GUID") from None


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 0")
    return number


def _signing_key(state_dir: Path) -> bytes:
    path = state_dir / SIGNING_KEY_FILE
    if not path.exists():
        path.write_bytes(secrets.token_bytes(32))
        path.chmod(0o600)
    return path.read_bytes()


def build_emulator(args: argparse.Namespace, state_dir: Path) -> Emulator:
    state_file = state_dir / STATE_FILE
    if args.persist and state_file.exists():
        # A saved world keeps its own IDs; asking for others would silently be a different subscription.
        world = state.load(state_file)
        for flag, wanted, saved in (
            ("--subscription-id", args.subscription_id, world.subscription_id),
            ("--tenant-id", args.tenant_id, world.tenant_id),
        ):
            if wanted is not None and wanted != saved:
                raise SystemExit(f"{flag} {wanted} differs from {saved} saved in {state_file}")
    else:
        world = state.new_world(tenant_id=args.tenant_id, subscription_id=args.subscription_id)
    knobs = behaviour.Behaviour(
        principal_delay=args.principal_delay,
        page_size=max(1, args.page_size),
        fic_write_seconds=args.fic_write_seconds,
        lro_seconds=args.lro_seconds,
        verify_assertion_signatures=args.verify_assertion_signatures,
        custom_role_limit=args.custom_role_limit,
        role_assignment_limit=args.role_assignment_limit,
    )
    if args.latency > 0:
        knobs.latency.append(behaviour.LatencyRule(args.latency))
    knobs.throttle.configure(enforced=args.throttle)
    emulator = Emulator(
        world=world,
        issuer=tokens.TokenIssuer(_signing_key(state_dir), world.tenant_id),
        knobs=knobs,
        assertion_verifier=assertions.AssertionVerifier(args.trusted_ca_file),
        identity_header=secrets.token_urlsafe(24),
        state_file=state_file if args.persist else None,
    )
    emulator.changed()
    return emulator


def _write_atomically(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        json.dump(content, handle, indent=2)
        temporary = Path(handle.name)
    os.replace(temporary, path)


def _bound_port(runner: web.AppRunner) -> int:
    # With port 0 the OS picks the port; the runner reports the bound address of its one site.
    return int(runner.addresses[0][1])


async def serve(args: argparse.Namespace) -> None:
    ready_file: Path = args.ready_file
    state_dir: Path = args.state_dir
    ca_file, cert_file, key_file = tls.ensure_certificates(state_dir)
    emulator = build_emulator(args, state_dir)
    server = Server(emulator)

    https_runner = web.AppRunner(server.https_app(), access_log=None)
    http_runner = web.AppRunner(server.http_app(), access_log=None)
    await https_runner.setup()
    await http_runner.setup()
    https_site = web.TCPSite(
        https_runner, args.host, args.port, ssl_context=tls.server_ssl_context(cert_file, key_file)
    )
    http_site = web.TCPSite(http_runner, args.host, args.imds_port)
    await https_site.start()
    await http_site.start()

    host = f"[{args.host}]" if ":" in args.host else args.host
    base = f"https://{host}:{_bound_port(https_runner)}"
    plain = f"http://{host}:{_bound_port(http_runner)}"
    bootstrap = emulator.world.bootstrap_principal()
    _write_atomically(
        ready_file,
        {
            "arm_endpoint": base,
            "authority_host": base,
            "ca_file": str(ca_file),
            "tenant_id": emulator.world.tenant_id,
            "subscription_id": emulator.world.subscription_id,
            "client_id": bootstrap.app_id,
            "client_secret": bootstrap.client_secret,
            "imds_endpoint": plain,
            "identity_endpoint": f"{plain}/msi/token",
            "identity_header": emulator.identity_header,
            "control_url": f"{base}/_emulator",
            "state_dir": str(state_dir),
            "pid": os.getpid(),
        },
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await https_runner.cleanup()
        await http_runner.cleanup()
        emulator.changed()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.ready_file = args.ready_file.resolve()
    args.state_dir = (args.state_dir or args.ready_file.parent / f"{args.ready_file.name}.state").resolve()
    args.state_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
