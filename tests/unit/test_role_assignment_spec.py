"""The RoleAssignment spec model and the hooks that read objects for the controller: role definition ID
forms, condition version default, the scope checked as an ARM ID (`RoleAssignmentHooks.parse`), which
identity an object references (`RoleAssignmentHooks.reference`), and the key under which other objects
declaring the same grant are found (`RoleAssignmentHooks.sharing_keys`, `ObjectState.shared_with`).
"""

from __future__ import annotations

from typing import Any

import pytest

from azure_identity_operator.api import role_assignment as api
from azure_identity_operator.reconcilers.role_assignments import RoleAssignmentHooks

from .fake_authorization import FakeAuthorization
from .objects import object_state

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
    parsed = api.parse_spec(
        spec(scope=SCOPE + "/", condition="@Resource[x] StringEquals 'y'", conditionVersion="2.0")
    )
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
        ({"condition": "x"}, "go together"),
        ({"conditionVersion": "2.0"}, "go together"),
        ({"roleRef": {"name": "custom"}}, "exactly one of role"),
    ],
)
def test_invalid_specs_name_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(api.InvalidSpec, match=field.replace(".", r"\.")):
        api.parse_spec(spec(**overrides))


def hooks() -> RoleAssignmentHooks:
    return RoleAssignmentHooks(FakeAuthorization())


def test_the_scope_is_checked_as_an_arm_id_when_the_spec_is_parsed() -> None:
    parsed = hooks().parse(object_state("RoleAssignment", "reader", spec=spec(scope=SCOPE.upper())))
    assert parsed.role == "Reader"
    with pytest.raises(api.InvalidSpec, match=r"spec\.scope"):
        hooks().parse(object_state("RoleAssignment", "reader", spec=spec(scope=f"{SCOPE}/providers/x")))


def test_the_referenced_identity_is_read_from_the_raw_spec() -> None:
    assert hooks().reference(spec()) == ("UserAssignedIdentity", "app")
    system = spec(principal={"identityRef": {"kind": "SystemAssignedIdentity", "name": "vm"}})
    assert hooks().reference(system) == ("SystemAssignedIdentity", "vm")
    assert hooks().reference(spec(principal={"principalId": READER})) is None
    assert hooks().reference(spec(principal={"identityRef": {"name": ""}})) is None
    assert hooks().reference(spec(principal="app")) is None
    assert hooks().reference({}) is None


def test_objects_declaring_the_same_grant_share_the_name_they_last_reported() -> None:
    reported = object_state("RoleAssignment", "mine", spec=spec(), status={"name": "ABC-Def"})
    assert tuple(hooks().sharing_keys(reported)) == ("abc-def",)
    assert tuple(hooks().sharing_keys(object_state("RoleAssignment", "new", spec=spec()))) == ()


def test_the_objects_sharing_a_key_are_what_the_state_says() -> None:
    others = {"abc-def": ["ns/theirs"]}
    state = object_state("RoleAssignment", "mine", spec=spec(), shared_with=lambda key: others.get(key, []))
    assert list(state.shared_with("abc-def")) == ["ns/theirs"]
    assert list(state.shared_with("unknown")) == []
    assert list(object_state("RoleAssignment", "alone").shared_with("abc-def")) == []
