"""ARM ID parsing and validation, case-insensitive comparison, and deterministic role-assignment names."""

import pytest

from azure_identity_operator.arm import ids

SUB = "11111111-2222-3333-4444-555555555555"


def test_parses_each_scope_kind() -> None:
    assert ids.parse_resource_id(f"/subscriptions/{SUB}").scope_kind == "subscription"
    group = ids.parse_resource_id(f"/subscriptions/{SUB}/resourceGroups/rg-1")
    assert (group.scope_kind, group.resource_group) == ("resourceGroup", "rg-1")
    slot = ids.parse_resource_id(
        f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Web/sites/app/slots/staging"
    )
    assert slot.scope_kind == "resource"
    assert slot.resource_type == "Microsoft.Web/sites/slots"
    assert slot.name == "app/staging"


def test_round_trips_to_the_canonical_form() -> None:
    raw = f"/subscriptions/{SUB}/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
    assert ids.same_id(str(ids.parse_resource_id(raw)), raw)
    assert "/resourceGroups/" in str(ids.parse_resource_id(raw))


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("subscriptions/x", "must start with /subscriptions"),
        ("/subscriptions/not-a-guid", "not a GUID"),
        (f"/subscriptions/{SUB}/resourceGroups", "expected /resourceGroups/<name>"),
        (f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Web/sites", "after the resource group"),
        (
            f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Web/sites/a/slots",
            "followed by a name",
        ),
        (f"/subscriptions/{SUB}/resourceGroups/bad.", "not a valid resource group name"),
        (f"/subscriptions/{SUB}/resourceGroups/rg/providers/notanamespace/x/y", "not a resource provider"),
    ],
)
def test_rejects_malformed_ids_saying_why(value: str, complaint: str) -> None:
    with pytest.raises(ids.InvalidResourceId, match=complaint):
        ids.parse_resource_id(value)


def test_name_rules() -> None:
    assert ids.is_valid_identity_name("id-1_a")
    assert not ids.is_valid_identity_name("ab")
    assert not ids.is_valid_identity_name("-abc")
    assert not ids.is_valid_identity_name("a" * 129)
    assert ids.is_valid_federated_credential_name("fic-1")
    assert not ids.is_valid_federated_credential_name("a" * 121)


def test_role_assignment_name_is_a_stable_uuid5_of_the_grant() -> None:
    scope = f"/subscriptions/{SUB}/resourceGroups/RG"
    role = (
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
        "ACDD72A7-3385-48EF-BD42-F606FBA81AE7"
    )
    principal = "AAAAAAAA-0000-0000-0000-000000000001"
    name = ids.role_assignment_name(scope=scope, principal_id=principal, role_definition_id=role)
    assert ids.is_guid(name)
    assert name[14] == "5"  # version nibble
    # Casing and the role definition's ID form do not matter; what is granted does.
    tenant_form = "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"
    assert name == ids.role_assignment_name(
        scope=scope.lower() + "/", principal_id=principal.lower(), role_definition_id=tenant_form
    )
    assert name != ids.role_assignment_name(
        scope=f"/subscriptions/{SUB}", principal_id=principal, role_definition_id=role
    )
