"""Least privilege, derived from what the operator does: the Kubernetes API calls of real operator runs,
read from the Kubernetes emulator's audit log, against the RBAC that deploy/ installs.

Each installation shape runs once — namespaced (`-n NS --peering`, a KopfPeering in NS) and cluster-wide
(`-A --peering`, a ClusterKopfPeering) — through a scenario that exercises every Kubernetes write the
operator has: identities exporting their IDs to a ConfigMap that exists and to one it creates, a federated
credential woken by its identity, Ready transitions posted as Events, and a deletion through the finalizer.
The test fails if the operator used a permission deploy/ does not grant, or if deploy/ grants one that the
operator never used. For the second, the operator's four kinds count as one: kopf and the handler runtime
treat them alike, so the verbs the scenario's kinds needed are the verbs each of them needs.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterable
from typing import Any

import pytest
import yaml

from fixtures.azure_emulator import AzureEmulatorInfo
from fixtures.kube_emulator import KubeEmulatorInfo

from .conftest import ROOT, StartOperator, identity_manifest, operator_base_env, wait_ready
from .operators import eventually

pytestmark = pytest.mark.e2e

Permission = tuple[str, str, str]
"""(API group, resource or resource/subresource, verb)"""

PEERING = "azure-identity-operator"
NON_RESOURCE = "<nonResourceURL>"
NON_RESOURCE_PREFIXES = ("/.well-known/", "/openid/")
"""Non-resource URLs that RBAC guards by default (unlike API discovery, which every user may read)."""


def render(overlay: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "deploy" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def granted(roles: Iterable[dict[str, Any]]) -> set[Permission]:
    found: set[Permission] = set()
    for role in roles:
        for rule in role.get("rules") or ():
            for url in rule.get("nonResourceURLs") or ():
                found |= {(NON_RESOURCE, url, verb) for verb in rule.get("verbs") or ()}
            for group in rule.get("apiGroups") or ():
                for resource in rule.get("resources") or ():
                    for verb in rule.get("verbs") or ():
                        found.add((group, resource, verb))
    return found


def audit_records(kube: KubeEmulatorInfo) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(kube.kubectl("get", "--raw", "/debug/audit").stdout)["records"]
    return records


def settled_audit_records(kube: KubeEmulatorInfo, since: int) -> list[dict[str, Any]]:
    """The records after `since`, once the server has also recorded the watches the stopped operator ended
    (a watch is recorded when its stream closes)."""
    previous = -1
    deadline = time.monotonic() + 10
    while True:
        records = audit_records(kube)[since:]
        # Reading the audit log is a request too (kubectl's): count only the others.
        count = sum(1 for record in records if not record["userAgent"].startswith("kubectl"))
        if count == previous or time.monotonic() > deadline:
            return records
        previous = count
        time.sleep(0.5)


def used(records: Iterable[dict[str, Any]], *, namespaced: bool, namespace: str) -> set[Permission]:
    """Permissions the operator's own requests needed (kubectl's, and discovery, need none of ours), in
    `namespace` or at cluster scope: requests in other namespaces are other tests' operators ending."""
    found: set[Permission] = set()
    for record in records:
        if record["userAgent"].startswith("kubectl"):
            continue
        if not record["resource"]:
            # API discovery needs no grant; the OIDC discovery document does (at cluster scope).
            if not namespaced and record["path"].startswith(NON_RESOURCE_PREFIXES):
                found.add((NON_RESOURCE, record["path"], record["verb"]))
            continue
        if record["namespace"] not in ("", namespace) or bool(record["namespace"]) != namespaced:
            continue
        resource = record["resource"] + (f"/{record['subresource']}" if record["subresource"] else "")
        found.add((record["apiGroup"], resource, record["verb"]))
    return found


def run_scenario(kube: KubeEmulatorInfo, namespace: str, resource_group: str, subscription_id: str) -> None:
    """Every Kubernetes write the operator makes, each at least once."""
    suffix = uuid.uuid4().hex[:6]
    # An access policy governing the namespace (its status is written; its rules allow the scenario).
    kube.kubectl("label", "namespace", namespace, f"least-privilege={suffix}")
    policy = {
        "apiVersion": "identityoperator.dev/v1alpha1",
        "kind": "IdentityAccessPolicy",
        "metadata": {"name": f"least-privilege-{suffix}"},
        "spec": {
            "namespaceSelector": {"matchLabels": {"least-privilege": suffix}},
            "roles": {"allow": ["Reader"]},
            "scopes": {"allow": [f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"]},
        },
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(policy))
    existing, created = f"ids-existing-{suffix}", f"ids-created-{suffix}"
    kube.kubectl("create", "configmap", "-n", namespace, existing, "--from-literal=owner=someone-else")
    exporting, deleted = f"exporting-{suffix}", f"deleted-{suffix}"
    for name, config_map in ((exporting, existing), (deleted, created)):
        manifest = json.loads(identity_manifest(name, namespace, resource_group))
        manifest["spec"]["exportTo"] = {"configMap": {"name": config_map}}
        kube.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    kube.kubectl("create", "serviceaccount", "-n", namespace, "workload")
    credential = {
        "apiVersion": "identityoperator.dev/v1alpha1",
        "kind": "FederatedIdentityCredential",
        "metadata": {"name": f"workload-{suffix}", "namespace": namespace},
        # The issuer: the cluster's, as the API server publishes it.
        "spec": {"identityRef": {"name": exporting}, "serviceAccountRef": {"name": "workload"}},
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(credential))
    run_workload_identity(
        kube, namespace, f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
    )
    wait_ready(kube, namespace, exporting, deleted)
    kube.kubectl(
        "wait",
        "--for=condition=Ready",
        "--timeout=30s",
        "-n",
        namespace,
        f"fic/workload-{suffix}",
        timeout=40,
    )
    for config_map in (existing, created):
        data = json.loads(kube.kubectl("get", "configmap", "-n", namespace, config_map, "-o", "json").stdout)[
            "data"
        ]
        assert data.get("clientId"), config_map
    kube.kubectl("delete", "-n", namespace, "userassignedidentity", deleted, "--wait=false")
    eventually(
        lambda: (
            kube.kubectl("get", "-n", namespace, "userassignedidentity", deleted, check=False).returncode != 0
        ),
        timeout=30,
        what="the deleted identity to be gone",
    )
    eventually(
        lambda: (
            kube.kubectl(
                "get",
                "identityaccesspolicy",
                f"least-privilege-{suffix}",
                "-o",
                "jsonpath={.status.namespaceCount}",
            ).stdout.strip()
            == "1"
        ),
        timeout=30,
        what="the policy's status",
    )
    kube.kubectl("delete", "identityaccesspolicy", f"least-privilege-{suffix}")


def run_workload_identity(kube: KubeEmulatorInfo, namespace: str, scope: str) -> None:
    """A WorkloadIdentity made, its role removed (its part deleted), then deleted with its parts and its
    ServiceAccount's annotations."""
    name = f"billing-{uuid.uuid4().hex[:6]}"
    resource_group = scope.rsplit("/", 1)[1]
    kube.kubectl("create", "serviceaccount", "-n", namespace, name)
    workload: dict[str, Any] = {
        "apiVersion": "identityoperator.dev/v1alpha1",
        "kind": "WorkloadIdentity",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "serviceAccountName": name,
            "identity": {"resourceGroup": resource_group, "location": "westus"},
            "roles": [{"role": "Reader", "scope": scope}],
        },
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(workload))
    kube.kubectl(
        "wait",
        "--for=condition=Ready",
        "--timeout=30s",
        "-n",
        namespace,
        f"workloadidentity/{name}",
        timeout=40,
    )
    workload["spec"]["roles"] = []
    kube.kubectl("apply", "-f", "-", input=json.dumps(workload))
    eventually(
        lambda: (
            not kube.kubectl(
                "get",
                "-n",
                namespace,
                "roleassignments",
                "-l",
                f"identityoperator.dev/workload-identity={name}",
                "-o",
                "name",
            ).stdout.strip()
        ),
        timeout=30,
        what="the removed role's part to be deleted",
    )
    kube.kubectl("delete", "-n", namespace, "workloadidentity", name, "--timeout=60s", timeout=70)


OUR_KINDS = (
    "userassignedidentities",
    "federatedidentitycredentials",
    "roleassignments",
    "systemassignedidentities",
    "workloadidentities",
    "roledefinitions",
)


def per_kind(permissions: set[Permission]) -> set[Permission]:
    """The operator's own kinds folded into one: kopf and the handler runtime treat every kind alike, so the
    verbs the scenario's kinds needed stand for the verbs any of them needs."""
    folded: set[Permission] = set()
    for group, resource, verb in permissions:
        plural, _, subresource = resource.partition("/")
        if group == "identityoperator.dev" and plural in OUR_KINDS:
            resource = "<kind>" + (f"/{subresource}" if subresource else "")
        folded.add((group, resource, verb))
    return folded


def compare(*, used_permissions: set[Permission], granted_permissions: set[Permission], where: str) -> None:
    missing = used_permissions - granted_permissions
    unused = per_kind(granted_permissions) - per_kind(used_permissions)
    assert not missing, f"{where}: the operator used permissions deploy/ does not grant: {sorted(missing)}"
    assert not unused, f"{where}: deploy/ grants permissions the operator never used: {sorted(unused)}"


def test_namespaced_installation_grants_exactly_what_the_operator_uses(
    start_operator: StartOperator,
    azure_emulator: AzureEmulatorInfo,
    ops_kube: KubeEmulatorInfo,
    resource_group: str,
    ops_namespace: str,
) -> None:
    objects = render("namespaced")
    roles = [o for o in objects if o["kind"] == "Role"]
    cluster_roles = [o for o in objects if o["kind"] == "ClusterRole"]
    assert roles
    assert cluster_roles
    ops_kube.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "kopf.dev/v1",
                "kind": "KopfPeering",
                "metadata": {"name": PEERING, "namespace": ops_namespace},
            }
        ),
    )
    before = len(audit_records(ops_kube))
    operator = start_operator(
        "least-privilege-namespaced",
        # No configured issuer: the operator reads the cluster's from the API server.
        env=operator_base_env(azure_emulator, ops_kube, IDENTITY_OPERATOR_OIDC_ISSUER=""),
        args=["-n", ops_namespace, f"--peering={PEERING}"],
    )
    operator.wait_ready()
    run_scenario(ops_kube, ops_namespace, resource_group, azure_emulator.subscription_id)
    operator.stop()
    records = settled_audit_records(ops_kube, before)
    assert {
        r["namespace"] for r in records if r["namespace"] and not r["userAgent"].startswith("kubectl")
    } == {ops_namespace}
    # Every watched namespace's Role is the same; one stands for all.
    compare(
        used_permissions=used(records, namespaced=True, namespace=ops_namespace),
        granted_permissions=granted(roles[:1]),
        where="namespaced overlay, Role in each watched namespace",
    )
    compare(
        used_permissions=used(records, namespaced=False, namespace=ops_namespace),
        granted_permissions=granted(cluster_roles),
        where="namespaced overlay, ClusterRole",
    )


def test_cluster_wide_installation_grants_exactly_what_the_operator_uses(
    start_operator: StartOperator,
    azure_emulator: AzureEmulatorInfo,
    ops_kube: KubeEmulatorInfo,
    resource_group: str,
    ops_namespace: str,
) -> None:
    objects = render("cluster-wide")
    cluster_roles = [o for o in objects if o["kind"] == "ClusterRole"]
    assert cluster_roles
    peering = f"{PEERING}-{uuid.uuid4().hex[:6]}"
    ops_kube.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": peering}}
        ),
    )
    before = len(audit_records(ops_kube))
    operator = start_operator(
        "least-privilege-cluster-wide",
        # No configured issuer: the operator reads the cluster's from the API server.
        env=operator_base_env(azure_emulator, ops_kube, IDENTITY_OPERATOR_OIDC_ISSUER=""),
        args=["-A", f"--peering={peering}"],
    )
    operator.wait_ready()
    run_scenario(ops_kube, ops_namespace, resource_group, azure_emulator.subscription_id)
    operator.stop()
    records = settled_audit_records(ops_kube, before)
    # A ClusterRole grants in every namespace: the namespaced and cluster-scoped calls together.
    compare(
        used_permissions=used(records, namespaced=True, namespace=ops_namespace)
        | used(records, namespaced=False, namespace=ops_namespace),
        granted_permissions=granted(cluster_roles),
        where="cluster-wide overlay, ClusterRole",
    )
