"""The API server accepts the CRDs the deployment installs and serves the kinds they define.

Drives the Kubernetes emulator with real kubectl, the way docs/operations.md installs: `kubectl apply
--server-side` of `deploy/crds`, `kubectl wait --for=condition=Established`, then the peering objects the
overlays create.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from fixtures.kube_emulator import KubeEmulatorInfo

from .manifests import DEPLOY_DIR, render

GROUP = "identityoperator.dev"


def test_the_api_server_accepts_the_crds_and_serves_their_kinds(
    kube_emulator: KubeEmulatorInfo, namespace: str, tmp_path: Path
) -> None:
    crds = render(DEPLOY_DIR / "crds")
    manifest = tmp_path / "crds.yaml"
    manifest.write_text(yaml.safe_dump_all(crds))

    kube_emulator.kubectl("apply", "--server-side", "-f", str(manifest))
    names = [crd["metadata"]["name"] for crd in crds]
    kube_emulator.kubectl(
        "wait", "--for=condition=Established", "--timeout=20s", *(f"crd/{name}" for name in names)
    )

    served = set(kube_emulator.kubectl("api-resources", "-o", "name").stdout.split())
    assert set(names) <= served
    ours = [crd for crd in crds if crd["spec"]["group"] == GROUP]
    assert {crd["metadata"]["name"] for crd in ours} == {
        path.name.removeprefix(f"{GROUP}_").removesuffix(".yaml") + f".{GROUP}"
        for path in (DEPLOY_DIR.parent / "crds").glob(f"{GROUP}_*.yaml")
    }
    # An upgrade applies the CRDs again: nothing to change, no error.
    kube_emulator.kubectl("apply", "--server-side", "-f", str(manifest))

    peerings = [
        {
            "apiVersion": "kopf.dev/v1",
            "kind": "ClusterKopfPeering",
            "metadata": {"name": "azure-identity-operator"},
        },
        {
            "apiVersion": "kopf.dev/v1",
            "kind": "KopfPeering",
            "metadata": {"name": "azure-identity-operator", "namespace": namespace},
        },
    ]
    kube_emulator.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(peerings))
    assert kube_emulator.kubectl(
        "get", "clusterkopfpeering", "azure-identity-operator", "-o", "name"
    ).stdout.split() == ["clusterkopfpeering.kopf.dev/azure-identity-operator"]
    assert kube_emulator.kubectl("get", "kopfpeerings", "-n", namespace, "-o", "name").stdout.split() == [
        "kopfpeering.kopf.dev/azure-identity-operator"
    ]
