"""`python -m azure_identity_operator`: run the operator against the current kubeconfig (or in-cluster).

Watches all namespaces unless `--namespace` (or `IDENTITY_OPERATOR_NAMESPACES`) names some. Azure settings
come from the environment; see `config.Settings` and the README's configuration table.

Operations: `--liveness URL` serves kopf's liveness probe; `--metrics-port` serves `/metrics` and `/readyz`;
`--log-format json` (or `IDENTITY_OPERATOR_LOG_FORMAT=json`) writes one JSON object per line; `--peering`
coordinates replicas so that only one reconciles at a time (see docs/operations.md).
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # The operator never uses the official `kubernetes` client (its own requests go through
    # `handlers.kube_api`), but kopf imports it whenever it is importable (kopf._cogs.helpers.thirdparty, for
    # its optional support of that client's models): ~40 MiB of resident memory for nothing. It stays
    # installed beside the operator in development, for the tests; a `None` in `sys.modules` makes every
    # `import kubernetes` fail as for a missing package, so kopf takes it as absent. Only when run as the
    # program: a process that imports this module keeps its `kubernetes`.
    sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]

import argparse
import asyncio
import logging
import random
from typing import Any

import kopf

from azure_identity_operator import __name__ as package_name
from azure_identity_operator import app, config
from azure_identity_operator.handlers import kopf_context, peering
from azure_identity_operator.observability import health, metrics
from azure_identity_operator.observability import logging as operator_logging

PEERING_PRIORITY_RANGE = (1, 2**31 - 1)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m azure_identity_operator", description=__doc__)
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", "-n", action="append", default=[], help="watch this namespace (repeatable)"
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace (default)")
    parser.add_argument(
        "--liveness", metavar="URL", help="serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve /metrics (Prometheus) and /readyz on this port (0 picks a free one)",
    )
    parser.add_argument(
        "--metrics-address",
        default="0.0.0.0",
        metavar="ADDRESS",
        help="bind the metrics port to this address",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="log lines as text or as JSON objects (default: IDENTITY_OPERATOR_LOG_FORMAT, else text)",
    )
    parser.add_argument(
        "--peering", metavar="NAME", help="coordinate replicas through this kopf peering object"
    )
    parser.add_argument(
        "--priority",
        type=int,
        metavar="N",
        help="peering priority: the live replica with the highest one works, the others stand by "
        "(default: below every live replica, so a starting one waits for the active one to leave)",
    )
    parser.add_argument(
        "--peering-lifetime",
        type=int,
        metavar="SECONDS",
        help="how long a silent replica counts as alive before a standby takes over (kopf's default: 60)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = config.Settings.from_env()
    except config.ConfigError as error:
        print(f"azure-identity-operator: {error}", file=sys.stderr)
        return 2
    operator_logging.configure(log_format=args.log_format or settings.log_format, verbose=args.verbose)
    # Reads package metadata from disk: done here, before the event loop starts.
    version = _version()
    metrics.OPERATOR.build_info.labels(version=version).set(1)
    namespaces = tuple(args.namespace) or settings.namespaces
    logging.getLogger(package_name).info(
        "Azure Identity Operator %s: subscription %s, tenant %s, ARM %s, watching %s, drift checks every %gs",
        version,
        settings.subscription_id,
        settings.tenant_id or "(from the credential)",
        settings.resource_manager_endpoint,
        "namespaces " + ", ".join(namespaces) if namespaces else "all namespaces",
        settings.sync_interval,
    )
    operator = app.build(settings, peering_name=args.peering)
    operator_logging.set_object_provider(kopf_context.kopf_handler_object)
    if args.peering:
        if args.priority is not None:
            operator.settings.peering.priority = args.priority
        else:
            operator.settings.peering.priority = random.randint(*PEERING_PRIORITY_RANGE)
            peering.rank_below_live_peers(operator.registry, operator.settings, namespaces=namespaces)
        if args.peering_lifetime is not None:
            operator.settings.peering.lifetime = args.peering_lifetime
    asyncio.run(serve(args, operator, namespaces=namespaces))
    return 0


async def serve(args: argparse.Namespace, operator: app.Operator, *, namespaces: tuple[str, ...]) -> None:
    """Run kopf, with the metrics port beside it when asked for."""
    started = asyncio.Event()
    insights = _kopf_insights()
    readiness = health.Readiness()
    readiness.add("startup", started.is_set)
    if insights is not None:
        readiness.add("resources-discovered", insights.ready_resources.is_set)
        readiness.add("namespaces-discovered", insights.ready_namespaces.is_set)
    server: health.MetricsServer | None = None
    if args.metrics_port is not None:
        server = health.MetricsServer(registry=metrics.OPERATOR.registry, readiness=readiness)
        await server.start(args.metrics_address, args.metrics_port)
    kopf_kwargs: dict[str, Any] = {"insights": insights} if insights is not None else {}
    try:
        await kopf.operator(
            registry=operator.registry,
            settings=operator.settings,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=args.liveness,
            standalone=args.peering is None,
            peering_name=args.peering,
            ready_flag=started,
            **kopf_kwargs,
        )
    finally:
        if server is not None:
            await server.stop()


def _kopf_insights() -> Any | None:
    """kopf's record of the kinds and namespaces it serves, whose flags say its watches can start.

    `kopf.operator(insights=...)` is public, the class is not re-exported; without it, readiness falls
    back to start-up alone.
    """
    try:
        from kopf._cogs.structs.references import Insights
    except ImportError:
        return None
    return Insights()


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("azure-identity-operator")
    except metadata.PackageNotFoundError:
        return f"{package_name} (not installed)"


if __name__ == "__main__":
    sys.exit(main())
