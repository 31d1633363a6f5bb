"""RoleDefinition hooks on plain data, against an in-memory Azure RBAC: the deterministic GUID, create,
a second pass that writes nothing, an in-place update (same GUID), drift repaired, the custom-role limit
told before Azure, a name another role holds, deletion blocked while assignments use the role (naming
them) and released once they are gone; and a RoleAssignment's roleRef waiting for it, then using it."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from azure_identity_operator.api import constants
from azure_identity_operator.api import role_definition as api
from azure_identity_operator.arm.authorization import RoleAssignmentProperties
from azure_identity_operator.reconcilers import access, flow
from azure_identity_operator.reconcilers.kube_port import ClusterIdentity
from azure_identity_operator.reconcilers.role_assignments import RoleAssignmentHooks
from azure_identity_operator.reconcilers.role_definitions import RoleDefinitionHooks
from azure_identity_operator.status import outcome, reasons

from .fake_authorization import SUBSCRIPTION, FakeAuthorization, role_id

RG = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-app"
CLUSTER = ClusterIdentity("east")


def spec(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "roleName": "Billing Secrets Reader",
        "description": "reads billing secrets",
        "permissions": [
            {
                "actions": ["Microsoft.KeyVault/vaults/read"],
                "dataActions": ["Microsoft.KeyVault/vaults/secrets/getSecret/action"],
            }
        ],
        "assignableScopes": [RG],
    }
    base.update(changes)
    return base


def state(
    raw: dict[str, Any], *, generation: int = 1, observed: int | None = None, deleting: bool = False
) -> flow.ObjectState:
    return flow.ObjectState(
        kind=constants.ROLE_DEFINITION.kind,
        namespace="team",
        name="billing-reader",
        uid="uid-rd",
        generation=generation,
        spec=raw,
        status={"observedGeneration": observed} if observed is not None else {},
        deleting_since=1.0 if deleting else None,
    )


def run(hooks: RoleDefinitionHooks, obj: flow.ObjectState) -> outcome.Outcome:
    return asyncio.run(flow.reconcile(hooks, obj))


def test_the_custom_role_has_a_guid_of_its_cluster_namespace_and_name() -> None:
    first = api.role_definition_guid("east", "team", "billing-reader")
    assert first == api.role_definition_guid("east", "team", "billing-reader")
    assert first != api.role_definition_guid("west", "team", "billing-reader")
    assert first != api.role_definition_guid("east", "team", "other")


def test_created_once_then_updated_in_place_and_drift_repaired() -> None:
    port = FakeAuthorization()
    hooks = RoleDefinitionHooks(port, cluster=CLUSTER)
    created = run(hooks, state(spec()))
    assert created.ready
    assert [c.reason for c in created.changes] == [outcome.CREATED]
    guid = api.role_definition_guid("east", "team", "billing-reader")
    assert created.observed["name"] == guid
    port.reset_counts()
    again = run(hooks, state(spec(), observed=1))
    assert port.writes == 0
    assert again.changes == ()

    changed = run(hooks, state(spec(description="reads billing and audit secrets"), generation=2, observed=1))
    assert [c.reason for c in changed.changes] == [outcome.UPDATED]
    assert list(port.definitions) == [guid]  # the same role, changed in place
    assert port.definitions[guid].description == "reads billing and audit secrets"

    port.definitions[guid] = dataclasses.replace(port.definitions[guid], role_name="Edited In Portal")
    repaired = run(
        hooks, state(spec(description="reads billing and audit secrets"), generation=2, observed=2)
    )
    assert [c.reason for c in repaired.changes] == [outcome.DRIFT_REPAIRED]
    assert port.definitions[guid].role_name == "Billing Secrets Reader"


def test_limits_and_name_clashes_are_said_before_or_as_azure_refuses() -> None:
    port = FakeAuthorization()
    port.custom_roles.update({f"Role {i}": f"0000000{i}-0000-0000-0000-000000000000" for i in range(3)})
    full = run(RoleDefinitionHooks(port, cluster=CLUSTER, custom_role_limit=3), state(spec()))
    assert full.reason == reasons.ROLE_DEFINITION_LIMIT_EXCEEDED
    assert port.writes == 0
    port = FakeAuthorization()
    asyncio.run(
        port.put_custom_role(
            RG,
            "11111111-1111-1111-1111-111111111111",
            dataclasses.replace(_definition(), role_name="Billing Secrets Reader"),
        )
    )
    clash = run(RoleDefinitionHooks(port, cluster=CLUSTER), state(spec()))
    assert clash.reason == reasons.CONFLICT
    assert "roleName" in clash.message


def _definition() -> Any:
    from azure_identity_operator.arm.authorization import Permission, RoleDefinition

    return RoleDefinition(
        id="",
        role_name="x",
        role_type="CustomRole",
        assignable_scopes=(RG,),
        permissions=(Permission(actions=("a",)),),
    )


def test_deletion_waits_for_the_assignments_that_use_it_and_names_them() -> None:
    port = FakeAuthorization()
    hooks = RoleDefinitionHooks(port, cluster=CLUSTER)
    run(hooks, state(spec()))
    guid = api.role_definition_guid("east", "team", "billing-reader")
    port.seed(
        "a1",
        RoleAssignmentProperties(
            scope=RG, role_definition_id=role_id(guid), principal_id="p1", principal_type="ServicePrincipal"
        ),
    )
    blocked = asyncio.run(flow.remove(hooks, state(spec(), deleting=True)))
    assert not blocked.done
    assert blocked.result.reason == reasons.DELETION_BLOCKED
    assert "a1 at" in blocked.result.message
    port.assignments.clear()
    released = asyncio.run(flow.remove(hooks, state(spec(), deleting=True)))
    assert released.done
    assert guid not in port.definitions


def test_a_role_assignment_names_it_with_role_ref_and_waits_for_it() -> None:
    port = FakeAuthorization()
    port.known_principals.add("p1")
    hooks = RoleAssignmentHooks(port, cluster=CLUSTER)
    raw = {
        "principal": {
            "principalId": "00000000-0000-0000-0000-0000000000p1".replace("p1", "01"),
            "principalType": "User",
        },
        "roleRef": {"name": "billing-reader"},
        "scope": RG,
    }
    siblings: dict[tuple[str, str], flow.KubeObject] = {}
    obj = flow.ObjectState(
        kind=constants.ROLE_ASSIGNMENT.kind,
        namespace="team",
        name="grant",
        uid="uid-ra",
        generation=1,
        spec=raw,
        sibling=lambda kind, name: siblings.get((kind, name)),
    )
    missing = asyncio.run(flow.reconcile(hooks, obj))
    assert missing.reason == reasons.REFERENCE_NOT_FOUND
    siblings[(constants.ROLE_DEFINITION.kind, "billing-reader")] = flow.KubeObject(
        kind=constants.ROLE_DEFINITION.kind,
        name="billing-reader",
        uid="u",
        spec={},
        owner_uid=None,
        deleting=False,
        current=True,
        ready="False",
        reason=reasons.RECONCILING,
        message="",
    )
    waiting = asyncio.run(flow.reconcile(hooks, obj))
    assert waiting.reason == reasons.WAITING_FOR_ROLE_DEFINITION
    assert not waiting.needs_user_action
    run(RoleDefinitionHooks(port, cluster=CLUSTER), state(spec()))
    siblings[(constants.ROLE_DEFINITION.kind, "billing-reader")] = dataclasses.replace(
        siblings[(constants.ROLE_DEFINITION.kind, "billing-reader")], ready="True", reason=reasons.SUCCEEDED
    )
    granted = asyncio.run(flow.reconcile(hooks, obj))
    assert granted.ready, granted.message
    guid = api.role_definition_guid("east", "team", "billing-reader")
    assert granted.observed["roleDefinitionId"].endswith(guid)
    assert granted.observed["roleName"] == "Billing Secrets Reader"


def test_a_custom_role_reaching_role_assignments_is_privileged_for_the_policies() -> None:
    hooks = RoleDefinitionHooks(FakeAuthorization(), cluster=CLUSTER)

    def privileged(*actions: str) -> bool:
        raw = spec(permissions=[{"actions": list(actions)}])
        [request] = hooks.requests(state(raw), hooks.parse(state(raw)))
        assert isinstance(request, access.DefineRole)
        return request.privileged

    assert privileged("*")
    assert privileged("Microsoft.Authorization/roleAssignments/write")
    assert privileged("Microsoft.Authorization/*")
    assert privileged("*/write")
    assert not privileged("*/read")
    assert not privileged("Microsoft.KeyVault/vaults/read")
