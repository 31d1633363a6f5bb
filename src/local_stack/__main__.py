"""`make run` / `python -m local_stack`: the whole product on this machine, until Ctrl-C.

Starts the Azure emulator, the Kubernetes API emulator and the operator, creates the Azure resources the
examples refer to, applies every example (a user-assigned identity with a federated credential for a
ServiceAccount, role assignments on a Key Vault and on resource groups, system-assigned identities of an
App Service slot and a VM with roles, an identity attached to that VM, and a WorkloadIdentity), waits until
all are Ready, signs in as the WorkloadIdentity's workload with its ServiceAccount token, and prints
`kubectl get` output and the kubeconfig to play with. Ctrl-C stops everything.
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


def try_it(stack: LocalStack, workdir: Path, namespace: str) -> str:
    """Copy-paste commands for the running stack."""
    ns = "" if namespace == "default" else f" -n {namespace}"
    azure = stack.azure
    return (
        "The local stack is up. Try it (in another shell):\n"
        f"  export KUBECONFIG={stack.kubeconfig}\n"
        "  kubectl get azureidentity -A -o wide                  # every kind, with Azure IDs\n"
        f"  kubectl describe wi billing{ns}                          # its parts' states\n"
        f"  kubectl get azureidentity -l identityoperator.dev/workload-identity=billing{ns}   # its parts\n"
        f"  kubectl get serviceaccount billing{ns} -o yaml           # annotated with its client ID\n"
        f"  kubectl describe uai demo-workload{ns}                   # conditions and Events\n"
        f"  kubectl get configmap demo-workload-identity{ns} -o yaml # the IDs, for workloads\n"
        f"  kubectl delete ra demo-workload-reader{ns}               # removed from Azure too\n"
        f"  kubectl apply -f examples/role-assignment.yaml{ns}       # and granted again\n"
        f"  kubectl wait --for=condition=Ready ra --all{ns}\n"
        "What Azure holds now (the emulator's whole state):\n"
        f"  curl -s --cacert {azure['ca_file']} {azure['control_url']}/state\n"
        f"The operator's metrics: curl -s {stack.metrics_url}\n"
        f"Logs: {workdir}/operator.log, azure-emulator.log, kube-emulator.log\n"
        "Press Ctrl-C to stop."
    )


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
        if EXAMPLES_DIR / "workload-identity.yaml" in examples:
            try:
                print(stack.check_workload_identity().summary(), flush=True)
            except Exception as error:  # a failed check leaves the stack up to look into
                print(f"Workload identity check failed: {error!r}", file=sys.stderr, flush=True)
            print(flush=True)
        if examples:
            print(
                f"$ kubectl get azureidentity -A\n{stack.kubectl('get', 'azureidentity', '-A').stdout}",
                flush=True,
            )
        print(try_it(stack, workdir, args.namespace), flush=True)
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
        # A second Ctrl-C (or a SIGINT sent to the whole process group) must not cut the shutdown short and
        # leave emulators behind; each child is stopped with a bounded wait, then killed.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.down()


if __name__ == "__main__":
    sys.exit(main())
