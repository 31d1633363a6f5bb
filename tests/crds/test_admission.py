"""What the CRDs' bounds refuse at admission, through kubectl and the Kubernetes API emulator: input Azure
would refuse is stopped before the operator ever sees it. Server-side dry runs only, so nothing is stored
for a running operator to reconcile.
"""

from __future__ import annotations

import json

import pytest

from fixtures.kube_emulator import KubeEmulatorInfo

GUID = "00000000-0000-0000-0000-000000000000"


def dry_run(kube: KubeEmulatorInfo, namespace: str, body: dict[str, object]) -> str:
    """stderr of a server-side dry-run create ('' when the object would be accepted)."""
    result = kube.kubectl(
        "create", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(body), check=False
    )
    return result.stderr if result.returncode else ""


def identity(spec: dict[str, object]) -> dict[str, object]:
    return {
        "apiVersion": "identityoperator.dev/v1alpha1",
        "kind": "UserAssignedIdentity",
        "metadata": {"name": "bounded"},
        "spec": {"resourceGroup": "rg", "location": "westeurope", **spec},
    }


def credential(spec: dict[str, object]) -> dict[str, object]:
    return {
        "apiVersion": "identityoperator.dev/v1alpha1",
        "kind": "FederatedIdentityCredential",
        "metadata": {"name": "bounded"},
        "spec": {"identityRef": {"name": "bounded"}, "subject": "system:serviceaccount:a:b", **spec},
    }


def assignment(spec: dict[str, object]) -> dict[str, object]:
    return {
        "apiVersion": "identityoperator.dev/v1alpha1",
        "kind": "RoleAssignment",
        "metadata": {"name": "bounded"},
        "spec": {
            "principal": {"principalId": GUID},
            "role": "Reader",
            "scope": f"/subscriptions/{GUID}",
            **spec,
        },
    }


@pytest.mark.usefixtures("operator_crds")
@pytest.mark.parametrize(
    ("body", "refusal"),
    [
        (identity({"tags": {"t" * 513: "v"}}), 'spec.tags: Invalid value: "object": tag names must be 1-512'),
        (identity({"tags": {"team": "v" * 257}}), "may not be more than 256 bytes"),
        (identity({"tags": {f"k{n}": "v" for n in range(50)}}), "must have at most 49 items"),
        (
            identity({"attachTo": [f"/subscriptions/{GUID}/resourceGroups/rg"] * 101}),
            "must have at most 100 items",
        ),
        (
            credential({"audiences": ["api://AzureADTokenExchange", "api://other"]}),
            "must have at most 1 items",
        ),
        (credential({"subject": "s" * 601}), "may not be more than 600 bytes"),
        (assignment({"condition": "c" * 8193, "conditionVersion": "2.0"}), "may not be more than 8192 bytes"),
        (assignment({"principal": {"principalId": GUID + "0"}}), "spec.principal.principalId"),
    ],
    ids=[
        "tag-name",
        "tag-value",
        "tag-count",
        "attach-count",
        "audiences",
        "subject",
        "condition",
        "principal",
    ],
)
def test_input_azure_refuses_is_refused_at_admission(
    kube_emulator: KubeEmulatorInfo, namespace: str, body: dict[str, object], refusal: str
) -> None:
    stderr = dry_run(kube_emulator, namespace, body)
    assert refusal in stderr, stderr


def exported_to(config_map: str) -> dict[str, object]:
    return identity({"exportTo": {"configMap": {"name": config_map}}})


@pytest.mark.usefixtures("operator_crds")
@pytest.mark.parametrize(
    "name",
    ["UPPER", "sp ace", "dots..double", "-leading", "trailing-", ".dot", "dot.", "a" * 254],
    ids=["upper-case", "space", "empty-label", "leading-dash", "trailing-dash", "leading-dot", "trailing-dot",
         "too-long"],
)  # fmt: skip
def test_a_config_map_name_the_api_server_would_refuse_is_refused_at_admission(
    kube_emulator: KubeEmulatorInfo, namespace: str, name: str
) -> None:
    """The ConfigMap is created by the operator, long after admission: a name Kubernetes refuses for a
    ConfigMap would only show as the operator failing on every retry."""
    stderr = dry_run(kube_emulator, namespace, exported_to(name))
    assert "spec.exportTo.configMap.name" in stderr, stderr
    assert f'Invalid value: "{name}"' in stderr or "may not be more than 253 bytes" in stderr, stderr


@pytest.mark.usefixtures("operator_crds")
@pytest.mark.parametrize("name", ["app-ids", "a.b-c", "0", "ids.v1", "a" * 253])
def test_a_dns_subdomain_config_map_name_is_accepted(
    kube_emulator: KubeEmulatorInfo, namespace: str, name: str
) -> None:
    assert dry_run(kube_emulator, namespace, exported_to(name)) == ""


def exported_under(keys: dict[str, object]) -> dict[str, object]:
    return identity({"exportTo": {"configMap": {"name": "app-env", "keys": keys}}})


@pytest.mark.usefixtures("operator_crds")
@pytest.mark.parametrize(
    ("keys", "refusal"),
    [
        ({"clientID": "AZURE_CLIENT_ID"}, 'unknown field "spec.exportTo.configMap.keys.clientID"'),
        ({"clientId": "AZURE CLIENT ID"}, "spec.exportTo.configMap.keys.clientId in body should match"),
        ({"clientId": "a" * 254}, "may not be more than 253 bytes"),
        ({"tenantId": "."}, "a ConfigMap key must not be '.' or start with '..'"),
        ({"tenantId": "..data"}, "a ConfigMap key must not be '.' or start with '..'"),
        (
            {"clientId": "AZURE_ID", "principalId": "AZURE_ID"},
            "clientId and principalId cannot be exported under the same key",
        ),
        (
            {"tenantId": "ID", "resourceId": "ID", "clientId": "AZURE_CLIENT_ID"},
            "tenantId and resourceId cannot be exported under the same key",
        ),
        ({}, "should have at least 1 properties"),
    ],
    ids=[
        "unknown-id",
        "space",
        "too-long",
        "dot",
        "dot-dot-prefix",
        "shared-key",
        "shared-key-of-three",
        "empty",
    ],
)
def test_config_map_keys_kubernetes_or_the_operator_would_refuse_are_refused_at_admission(
    kube_emulator: KubeEmulatorInfo, namespace: str, keys: dict[str, object], refusal: str
) -> None:
    """Only the four IDs can be named, each under a ConfigMap key of its own (`IsConfigMapKey`)."""
    stderr = dry_run(kube_emulator, namespace, exported_under(keys))
    assert refusal in stderr, stderr


@pytest.mark.usefixtures("operator_crds")
@pytest.mark.parametrize(
    "keys",
    [
        {"clientId": "AZURE_CLIENT_ID", "tenantId": "AZURE_TENANT_ID"},
        {"clientId": "a" * 253, "principalId": ".principal", "tenantId": "tenant.id", "resourceId": "id-1"},
        {"resourceId": "clientId"},
    ],
    ids=["env-names", "every-id", "one-id"],
)
def test_config_map_keys_kubernetes_accepts_are_accepted(
    kube_emulator: KubeEmulatorInfo, namespace: str, keys: dict[str, object]
) -> None:
    assert dry_run(kube_emulator, namespace, exported_under(keys)) == ""


@pytest.mark.usefixtures("operator_crds")
def test_input_within_the_bounds_is_accepted(kube_emulator: KubeEmulatorInfo, namespace: str) -> None:
    tags = {"t" * 512: "v" * 256, **{f"k{n}": "v" for n in range(48)}}
    assert dry_run(kube_emulator, namespace, identity({"tags": tags})) == ""
    assert dry_run(kube_emulator, namespace, credential({"audiences": ["api://custom"]})) == ""
    condition = {"condition": "c" * 8192, "conditionVersion": "2.0"}
    assert dry_run(kube_emulator, namespace, assignment(condition)) == ""
