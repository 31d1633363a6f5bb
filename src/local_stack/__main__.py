"""`make run` / `python -m local_stack`: the whole product on this machine, until Ctrl-C.

Starts the Azure emulator, the Kubernetes API emulator and the operator, applies the examples (a
user-assigned identity with a federated credential for a ServiceAccount), waits until they are Ready, and
prints `kubectl get` output and the kubeconfig to play with. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from local_stack.stack import DEFAULT_EXAMPLES, EXAMPLES_DIR, LocalStack, StackError


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local_stack", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir", type=Path, help="logs, kubeconfig and emulator state (default: a new temporary folder)"
    )
    parser.add_argument(
        "--example",
        action="append",
        type=Path,
        help=f"manifest to apply (repeatable; default: {', '.join(DEFAULT_EXAMPLES)} from examples/)",
    )
    parser.add_argument("--no-examples", action="store_true", help="apply nothing")
    parser.add_argument("--namespace", default="default", help="namespace of the examples")
    parser.add_argument(
        "--sync-interval", type=float, default=30.0, help="the operator's drift check interval"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds the examples may take to be Ready"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="azure-identity-operator-"))
    if args.no_examples:
        examples: list[Path] = []
    else:
        examples = args.example or [EXAMPLES_DIR / name for name in DEFAULT_EXAMPLES]
    stack = LocalStack(
        workdir=workdir.resolve(),
        examples=examples,
        namespace=args.namespace,
        sync_interval=args.sync_interval,
        say=lambda line: print(line, flush=True),
    )

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        stack.up(ready_timeout=args.timeout)
        print(flush=True)
        print(
            stack.kubectl(
                "get", "-n", args.namespace, "userassignedidentities,federatedidentitycredentials"
            ).stdout
        )
        print(
            "The local stack is up. Try it:\n"
            f"  export KUBECONFIG={stack.kubeconfig}\n"
            "  kubectl get azureidentity -A -o wide\n"
            f"  kubectl describe uai -n {args.namespace}\n"
            f"Logs: {workdir}/operator.log, azure-emulator.log, kube-emulator.log\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        while True:
            failed = stack.failed_child()
            if failed is not None:
                print(f"{failed.name} exited unexpectedly:\n{failed.log_tail()}", file=sys.stderr, flush=True)
                return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nStopping the operator and the emulators...", flush=True)
        return 0
    except StackError as error:
        print(f"local stack: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        stack.down()


if __name__ == "__main__":
    sys.exit(main())
