"""The RoleAssignment spec model and the handler helpers that read objects: role definition ID forms,
condition version default, which identity an object references, and which other objects share a grant.
"""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from azure_identity_operator.api import role_assignment as api
from azure_identity_operator.handlers import role_assignments as handlers

SUBSCRIPTION = "00000000-0000-0000-0000-00000000aaaa"
OTHER_SUBSCRIPTION = "00000000-0000-0000-0000-00000000bbbb"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
SCOPE = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg"


def spec(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {"principal": {"identityRef": {"name": "app"}}, "role": "Reader", "scope": SCOPE}
    value.update(overrides)
    return value


@pytest.mark.parametrize(
    ("written", "expected_subscription"),
    [
        (READER, SUBSCRIPTION),
        (READER.upper(), SUBSCRIPTION),
        (f"/providers/Microsoft.Authorization/roleDefinitions/{READER}", SUBSCRIPTION),
        (
            f"/subscriptions/{OTHER_SUBSCRIPTION}/providers/microsoft.authorization/roleDefinitions/{READER}/",
            OTHER_SUBSCRIPTION,
        ),
    ],
)
def test_role_definition_ids_are_normalized_to_the_subscription_form(
    written: str, expected_subscription: str
) -> None:
    parsed = api.parse_spec(spec(role=None, roleDefinitionId=written))
    assert parsed.full_role_definition_id(SUBSCRIPTION) == (
        f"/subscriptions/{expected_subscription}/providers/Microsoft.Authorization/roleDefinitions/{READER}"
    )


def test_defaults_and_condition_version() -> None:
    parsed = api.parse_spec(spec(scope=SCOPE + "/", condition="@Resource[x] StringEquals 'y'"))
    assert parsed.deletion_policy == "Delete"
    assert parsed.principal.identity_ref is not None
    assert parsed.principal.identity_ref.kind == "UserAssignedIdentity"
    assert parsed.normalized_scope == SCOPE
    assert parsed.effective_condition_version == "2.0"
    assert api.parse_spec(spec()).effective_condition_version is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"principal": {}}, "spec.principal"),
        ({"principal": {"identityRef": {"name": "app"}, "principalType": "User"}}, "principalType"),
        ({"role": None}, "exactly one of role"),
        ({"role": "  "}, "spec.role"),
        ({"role": None, "roleDefinitionId": "Reader"}, "spec.roleDefinitionId"),
        ({"scope": "rg"}, "spec.scope"),
        ({"deletionPolicy": "Keep"}, "spec.deletionPolicy"),
        ({"conditionVersion": "1.0", "condition": "x"}, "conditionVersion"),
    ],
)
def test_invalid_specs_name_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(api.InvalidSpec, match=field.replace(".", r"\.")):
        api.parse_spec(spec(**overrides))


def test_the_referenced_identity_is_read_from_the_raw_body() -> None:
    assert handlers.referenced_identity({"spec": spec()}) == ("UserAssignedIdentity", "app")
    system = spec(principal={"identityRef": {"kind": "SystemAssignedIdentity", "name": "vm"}})
    assert handlers.referenced_identity({"spec": system}) == ("SystemAssignedIdentity", "vm")
    raw = spec(principal={"principalId": READER})
    assert handlers.referenced_identity({"spec": raw}) is None
    assert handlers.referenced_identity({}) is None


def test_other_live_objects_recording_the_same_assignment_are_found() -> None:
    body = kopf.Body({"metadata": {"uid": "me", "namespace": "ns", "name": "mine"}})
    index = {
        "shared": [
            ("me", "ns", "mine", False),
            ("other", "ns", "theirs", False),
            ("gone", "ns", "old", True),
        ],
        "alone": [("me", "ns", "mine", False)],
    }
    declared_elsewhere = handlers.declared_elsewhere_fn(body, {handlers.ASSIGNMENT_INDEX: index})
    assert list(declared_elsewhere("SHARED")) == ["ns/theirs"]
    assert list(declared_elsewhere("alone")) == []
    assert list(declared_elsewhere("unknown")) == []
    assert list(handlers.declared_elsewhere_fn(body, {})("shared")) == []
