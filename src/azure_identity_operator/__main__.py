"""`python -m azure_identity_operator`: run the operator against the current kubeconfig (or in-cluster).

Watches all namespaces unless `--namespace` (or `IDENTITY_OPERATOR_NAMESPACES`) names some. Azure settings
come from the environment; see `config.Settings` and the README's configuration table.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import kopf

from azure_identity_operator import app, config


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
        "--peering", metavar="NAME", help="coordinate replicas through this kopf peering object"
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
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    namespaces = tuple(args.namespace) or settings.namespaces
    operator = app.build(settings, peering_name=args.peering)
    asyncio.run(
        kopf.operator(
            registry=operator.registry,
            settings=operator.settings,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=args.liveness,
            standalone=args.peering is None,
            peering_name=args.peering,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
