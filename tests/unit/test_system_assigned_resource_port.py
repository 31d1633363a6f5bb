"""The pure parts of the generic-resource adapter: api-version choice, identity blocks in and out."""

from __future__ import annotations

from azure_identity_operator.arm.resources import IdentityPatch
from azure_identity_operator.arm.sdk import resources as adapter

from .fake_resources import VM, uai

PROVIDER = {
    "namespace": "Microsoft.Web",
    "resourceTypes": [
        {
            "resourceType": "sites",
            "apiVersions": ["2025-06-01-beta", "2025-03-01-privatepreview", "2024-04-01", "2023-12-01"],
            "capabilities": "SupportsTags",
        },
        {
            "resourceType": "sites/slots",
            "apiVersions": ["2025-01-01-preview", "2024-04-01", "2022-03-01"],
            "capabilities": "CrossResourceGroupResourceMove, SystemAssignedResourceIdentity, SupportsTags",
        },
        {"resourceType": "previewOnly", "apiVersions": ["2024-01-01-preview", "2025-01-01-preview"]},
    ],
}


def test_newest_stable_api_version_is_discovered_per_type() -> None:
    slots = adapter.type_info_from_provider(PROVIDER, "SITES/slots")
    assert slots is not None
    assert slots.type == "Microsoft.Web/sites/slots"
    assert slots.api_version == "2024-04-01"
    assert slots.identity_capability
    sites = adapter.type_info_from_provider(PROVIDER, "sites")
    assert sites is not None
    assert sites.api_version == "2024-04-01"  # a "-beta" or "-privatepreview" version is no stable one
    assert not sites.identity_capability
    preview = adapter.type_info_from_provider(PROVIDER, "previewOnly")
    assert preview is not None
    assert preview.api_version == "2025-01-01-preview"
    assert adapter.type_info_from_provider(PROVIDER, "sites/functions") is None


def test_identity_block_is_read_in_any_spelling() -> None:
    body = {
        "id": VM,
        "name": "vm1",
        "type": "Microsoft.Compute/virtualMachines",
        "etag": '"7"',
        "identity": {
            "type": "SystemAssigned,UserAssigned",
            "principalId": "p",
            "tenantId": "t",
            "userAssignedIdentities": {uai("a"): {"principalId": "pa", "clientId": "ca"}},
        },
    }
    resource = adapter.resource_from_body(body)
    assert resource.etag == '"7"'
    assert resource.identity.system_assigned
    assert resource.identity.principal_id == "p"
    assert resource.identity.attached(uai("A").upper()) is not None
    assert resource.identity.type_spelling == "SystemAssigned,UserAssigned"
    bare = adapter.resource_from_body({"id": VM, "name": "vm1", "type": "t"})
    assert not bare.identity.system_assigned
    assert bare.identity.user_assigned == ()


def test_patch_body_sends_null_to_detach_and_omits_an_empty_map() -> None:
    detach = IdentityPatch(
        type="SystemAssigned, UserAssigned", user_assigned={uai("a"): False, uai("b"): True}
    )
    assert adapter.patch_body(detach) == {
        "identity": {
            "type": "SystemAssigned, UserAssigned",
            "userAssignedIdentities": {uai("a"): None, uai("b"): {}},
        }
    }
    assert adapter.patch_body(IdentityPatch(type="None")) == {"identity": {"type": "None"}}


def test_a_write_the_provider_ignored_is_recognised() -> None:
    enable = IdentityPatch(type="SystemAssigned")
    ignored = adapter.resource_from_body({"id": VM, "name": "n", "type": "t"}).identity
    assert not adapter.applied(enable, ignored)
    done = adapter.resource_from_body(
        {"id": VM, "name": "n", "type": "t", "identity": {"type": "SystemAssigned", "principalId": "p"}}
    ).identity
    assert adapter.applied(enable, done)
    attach = IdentityPatch(type="UserAssigned", user_assigned={uai("a"): True})
    assert not adapter.applied(attach, done)
