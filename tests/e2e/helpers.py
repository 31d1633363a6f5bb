"""Helpers the end-to-end tests share: Azure resources created as their owners would (with the real sync
SDK), manifests applied together, and ARM request counts read from the Azure emulator."""

from __future__ import annotations

from typing import Any

import yaml
from azure.mgmt.resource.resources import ResourceManagementClient

from fixtures.azure_emulator import AzureEmulatorInfo
from fixtures.kube_emulator import KubeEmulatorInfo
from fixtures.operator import apply, ready_condition

API_VERSIONS = {"virtualMachines": "2024-11-01", "sites": "2024-04-01", "slots": "2024-04-01"}
"""api-versions of the resource types that carry managed identities in these tests."""


def api_version(resource_id: str) -> str:
    return API_VERSIONS[resource_id.rstrip("/").split("/")[-2]]


def create_resource(
    client: ResourceManagementClient, resource_id: str, identity: dict[str, Any] | None = None
) -> None:
    """Create a VM, app or slot in `westus`, with `identity` as its identity block when given."""
    body: dict[str, Any] = {"location": "westus"}
    if identity is not None:
        body["identity"] = identity
    client.resources.begin_create_or_update_by_id(
        resource_id, api_version=api_version(resource_id), parameters=body
    ).result()


def identity_of(client: ResourceManagementClient, resource_id: str) -> dict[str, Any]:
    """The resource's identity block as Azure returns it (`{}` when it has none)."""
    resource = client.resources.get_by_id(resource_id, api_version=api_version(resource_id))
    return dict(resource.as_dict().get("identity") or {})


OWNER_TAG = "identityoperator.dev_owner"
"""The tag naming the owner of an identity the operator created or adopted (part of its API)."""


def cluster_id(kube: KubeEmulatorInfo) -> str:
    """The cluster's ID as an operator that is given none takes it: the uid of namespace kube-system."""
    return kube.kubectl("get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}").stdout.strip()


def owner(kube: KubeEmulatorInfo, namespace: str, name: str) -> str:
    """The ownership marker naming an object of the cluster behind `kube`: `<cluster>/<namespace>/<name>`."""
    return f"{cluster_id(kube)}/{namespace}/{name}"


def marked(tags: dict[str, str], kube: KubeEmulatorInfo, namespace: str, name: str) -> dict[str, str]:
    """`tags` as Azure holds them for an identity of object `namespace/name`: with its ownership marker."""
    return {**tags, OWNER_TAG: owner(kube, namespace, name)}


def marked_description(text: str | None, owner_marker: str) -> str:
    """A role assignment's description as the operator writes it: the spec's text, then the marker."""
    marker = f"[managed by azure-identity-operator: {owner_marker}]"
    return f"{text} {marker}" if text else marker


def rg_scope(azure: AzureEmulatorInfo, resource_group: str) -> str:
    """The ARM ID of a resource group of the emulator's subscription: a scope to grant roles at."""
    return f"/subscriptions/{azure.subscription_id}/resourceGroups/{resource_group}"


def is_ready(body: dict[str, Any]) -> bool:
    """Whether the object's Ready condition is True."""
    return ready_condition(body).get("status") == "True"


def apply_all(kube: KubeEmulatorInfo, namespace: str, *manifests: dict[str, Any]) -> None:
    """`kubectl apply` of several manifests as one multi-document YAML."""
    apply(kube, namespace, yaml.safe_dump_all(manifests))


def arm_reads(azure: AzureEmulatorInfo, resource_group: str) -> int:
    """ARM GETs so far under the resource group (the emulator counts requests by method and path)."""
    return sum(
        count
        for key, count in azure.request_counts().items()
        if key.startswith("GET ") and f"/{resource_group.lower()}/" in key.lower()
    )


def identity_manifest(name: str, resource_group: str, extra: str = "", *, tags: str | None = None) -> str:
    """A UserAssignedIdentity in westeurope; `tags` is the inside of a YAML flow map ("team: a, env: b"),
    `extra` more indented spec lines."""
    tag_line = f"  tags: {{{tags}}}\n" if tags is not None else ""
    return (
        "apiVersion: identityoperator.dev/v1alpha1\n"
        "kind: UserAssignedIdentity\n"
        f"metadata:\n  name: {name}\n"
        f"spec:\n  resourceGroup: {resource_group}\n  location: westeurope\n{tag_line}{extra}"
    )
