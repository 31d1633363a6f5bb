"""The install sequence docs/operations.md gives works against an API server, and the reason for its order.

This is also where the CRDs (the operator's own and kopf's) are applied to an API server: it must accept
them, report them Established and serve their kinds.

The overlays are installed into a fresh Kubernetes emulator with real kubectl: CRDs first with
`kubectl apply --server-side -k deploy/crds` and `kubectl wait --for=condition=Established`, then the
overlay. Sending everything at once fails for the kopf peering object, whose kind the server does not
serve until its CRD exists; that is checked too. The emulator serves no controllers, so this proves the API
server accepts every object (schema, scope, namespaces), not that pods run. Kinds the emulator does not
serve are listed in UNSERVED_BY_THE_EMULATOR and left out; they are schema-checked offline in
test_manifests_validate.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fixtures.kube_emulator import KubeEmulatorInfo, start_kube_emulator

from .manifests import DEPLOY_DIR, OVERLAYS, Manifest, all_of, only, render

UNSERVED_BY_THE_EMULATOR = {"PodDisruptionBudget"}
PART_OF = "app.kubernetes.io/part-of=azure-identity-operator"


@pytest.fixture
def fresh_api_server(tmp_path: Path) -> Iterator[KubeEmulatorInfo]:
    running = start_kube_emulator(tmp_path / "kube")
    try:
        yield running.info
    finally:
        # Its state is thrown away with tmp_path: no need to wait for a graceful shutdown.
        running.process.kill()
        running.process.wait(timeout=10)


def served_kinds(api_server: KubeEmulatorInfo) -> set[str]:
    table = api_server.kubectl("api-resources", "--no-headers", "-o", "wide").stdout.splitlines()
    # Columns: NAME [SHORTNAMES] APIVERSION NAMESPACED KIND VERBS...; KIND is the field after true/false.
    kinds = set()
    for row in table:
        fields = row.split()
        scope_index = next(index for index, field in enumerate(fields) if field in {"true", "false"})
        kinds.add(fields[scope_index + 1])
    return kinds


def installable(builtin_kinds: set[str], objects: list[Manifest]) -> list[Manifest]:
    defined_by_crds = {crd["spec"]["names"]["kind"] for crd in all_of(objects, "CustomResourceDefinition")}
    unserved = {o["kind"] for o in objects} - builtin_kinds - defined_by_crds
    assert unserved <= UNSERVED_BY_THE_EMULATOR, f"kinds neither built in nor defined here: {unserved}"
    return [o for o in objects if o["kind"] not in unserved]


def test_documented_install_sequence(fresh_api_server: KubeEmulatorInfo, tmp_path: Path) -> None:
    # One fresh server for both overlays: the first install meets an empty cluster, the second one an
    # installed operator, as when an installation is switched from one shape to the other.
    api = fresh_api_server
    builtin_kinds = served_kinds(api)
    for attempt, overlay in enumerate(OVERLAYS):
        objects = render(DEPLOY_DIR / "overlays" / overlay)
        to_install = installable(builtin_kinds, objects)
        manifest = tmp_path / f"{overlay}.yaml"
        manifest.write_text(yaml.safe_dump_all(to_install))
        args = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        for watched in (arg.removeprefix("--namespace=") for arg in args if arg.startswith("--namespace=")):
            api.kubectl("create", "namespace", watched)  # the doc: watched namespaces exist beforehand

        if attempt == 0:
            # All at once: kubectl cannot validate or map the peering object before its CRD is served.
            at_once = api.kubectl("apply", "--server-side", "-f", str(manifest), check=False)
            assert at_once.returncode != 0

        # The documented order.
        api.kubectl("apply", "--server-side", "-k", str(DEPLOY_DIR / "crds"))
        api.kubectl("wait", "--for=condition=Established", "crd", "-l", PART_OF, "--timeout=20s")
        if attempt == 0:
            crd_kinds = {crd["spec"]["names"]["kind"] for crd in all_of(objects, "CustomResourceDefinition")}
            assert crd_kinds <= served_kinds(api) - builtin_kinds, "every CRD's kind is served"
            peerings = api.kubectl("get", "clusterkopfpeerings,kopfpeerings", "-A", "-o", "name").stdout
            assert peerings.split() == [], "the failed attempt created no peering object"
        api.kubectl("apply", "--server-side", "-f", str(manifest))

        stored: list[Manifest] = yaml.safe_load(api.kubectl("get", "-f", str(manifest), "-o", "json").stdout)[
            "items"
        ]
        assert sorted((o["kind"], o["metadata"]["name"]) for o in stored) == sorted(
            (o["kind"], o["metadata"]["name"]) for o in to_install
        ), overlay
        deployment = only(stored, "Deployment")
        assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == args, overlay
