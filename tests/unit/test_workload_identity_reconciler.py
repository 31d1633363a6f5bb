"""WorkloadIdentity hooks on plain data: the parts it derives from its spec, what it writes to make the
cluster match (and that a second pass writes nothing), how it reports the parts' states as one Ready, and
its deletion. The cluster is an in-memory set of objects; the ServiceAccounts are `FakeServiceAccounts`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest

from azure_identity_operator.api import constants
from azure_identity_operator.api import workload_identity as api
from azure_identity_operator.api.common import InvalidSpecError
from azure_identity_operator.api.references import PrincipalSnapshot
from azure_identity_operator.reconcilers import flow
from azure_identity_operator.reconcilers.kube_port import KubernetesError
from azure_identity_operator.reconcilers.workload_identities import WorkloadIdentityHooks
from azure_identity_operator.status import outcome, reasons
from unit.fake_kube import FakeServiceAccounts

NAMESPACE = "team"
SCOPE = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-a"
OTHER_SCOPE = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-b"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CLIENT_ID = "11111111-0000-0000-0000-000000000001"
TENANT_ID = "22222222-0000-0000-0000-000000000002"


class Cluster:
    """The operator's objects of one namespace (`OwnedObjectsPort` in memory), as the controller sees them."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], flow.KubeObject] = {}
        self.writes: list[tuple[str, str, str]] = []
        self._uids = 0

    def add(self, kind: str, name: str, spec: Mapping[str, Any], *, owner_uid: str | None = None) -> None:
        self._uids += 1
        self.objects[(kind, name)] = flow.KubeObject(
            kind=kind,
            name=name,
            uid=f"uid-{self._uids}",
            spec=dict(spec),
            owner_uid=owner_uid,
            deleting=False,
            current=False,
            ready="Unknown",
            reason="",
            message="",
        )

    def report(
        self, kind: str, name: str, ready: bool, reason: str = reasons.SUCCEEDED, message: str = ""
    ) -> None:
        """The part's own reconcile reported (its status for its current generation)."""
        self.objects[(kind, name)] = dataclasses.replace(
            self.objects[(kind, name)],
            current=True,
            ready="True" if ready else "False",
            reason=reason,
            message=message,
        )

    def report_all_ready(self) -> None:
        for kind, name in list(self.objects):
            self.report(kind, name, True)

    def sibling(self, kind: str, name: str) -> flow.KubeObject | None:
        return self.objects.get((kind, name))

    def owned_by(self, uid: str) -> tuple[flow.KubeObject, ...]:
        return tuple(o for _, o in sorted(self.objects.items()) if o.owner_uid == uid)

    async def create_owned(
        self,
        *,
        kind: constants.Kind,
        namespace: str,
        name: str,
        spec: Mapping[str, Any],
        owner: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> None:
        assert labels == {constants.WORKLOAD_IDENTITY_LABEL: owner["name"]}
        if (kind.kind, name) in self.objects:
            raise KubernetesError(409, f"{kind.plural} {name!r} already exists")
        self.writes.append(("create", kind.kind, name))
        self.add(kind.kind, name, spec, owner_uid=owner["uid"])

    async def replace_owned_spec(
        self, *, kind: constants.Kind, namespace: str, name: str, uid: str, spec: Mapping[str, Any]
    ) -> None:
        self.writes.append(("replace", kind.kind, name))
        found = self.objects[(kind.kind, name)]
        assert found.uid == uid
        self.objects[(kind.kind, name)] = dataclasses.replace(found, spec=dict(spec), current=False)

    async def delete_owned(self, *, kind: constants.Kind, namespace: str, name: str, uid: str) -> None:
        self.writes.append(("delete", kind.kind, name))
        found = self.objects[(kind.kind, name)]
        assert found.uid == uid
        self.objects[(kind.kind, name)] = dataclasses.replace(found, deleting=True)

    def finish_deletions(self) -> None:
        """The parts' finalizers cleaned Azure up: they are gone."""
        self.objects = {key: o for key, o in self.objects.items() if not o.deleting}


def identity_snapshot(name: str = "billing", *, ready: bool = True) -> PrincipalSnapshot:
    return PrincipalSnapshot(
        kind=constants.USER_ASSIGNED_IDENTITY.kind,
        namespace=NAMESPACE,
        name=name,
        ready=ready,
        deleting=False,
        principal_id="33333333-0000-0000-0000-000000000003",
        client_id=CLIENT_ID,
        tenant_id=TENANT_ID,
        resource_id=f"{SCOPE}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
    )


def spec(roles: list[dict[str, str]] | None = None, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "serviceAccountName": "billing",
        "identity": {"resourceGroup": "rg-a", "location": "westeurope"},
        "roles": [{"roleDefinitionId": READER, "scope": SCOPE}] if roles is None else roles,
    }
    base.update(fields)
    return base


@dataclasses.dataclass
class World:
    cluster: Cluster = dataclasses.field(default_factory=Cluster)
    accounts: FakeServiceAccounts = dataclasses.field(
        default_factory=lambda: FakeServiceAccounts((NAMESPACE, "billing"))
    )
    identity: PrincipalSnapshot | None = None
    shared: tuple[str, ...] = ()
    reported: bool = False
    """Whether the spec's generation was reported already (a later pass is then drift, not a change)."""

    def __post_init__(self) -> None:
        self.hooks = WorkloadIdentityHooks(self.cluster, self.accounts)

    def state(
        self, raw: Mapping[str, Any], *, name: str = "billing", deleting: bool = False
    ) -> flow.ObjectState:
        uid = f"uid-{name}"
        return flow.ObjectState(
            kind=constants.WORKLOAD_IDENTITY.kind,
            namespace=NAMESPACE,
            name=name,
            uid=uid,
            generation=1,
            spec=raw,
            status={"observedGeneration": 1} if self.reported else {},
            deleting_since=1.0 if deleting else None,
            identity=self.identity,
            shared_with=lambda _key: self.shared,
            sibling=self.cluster.sibling,
            owned=self.cluster.owned_by(uid),
        )

    def reconcile(self, raw: Mapping[str, Any], **kwargs: Any) -> outcome.Outcome:
        return asyncio.run(flow.reconcile(self.hooks, self.state(raw, **kwargs)))

    def remove(self, raw: Mapping[str, Any], **kwargs: Any) -> flow.Removal:
        return asyncio.run(flow.remove(self.hooks, self.state(raw, deleting=True, **kwargs)))

    def settle(self, raw: Mapping[str, Any]) -> outcome.Outcome:
        """Create the parts, let each report Ready and Azure report the identity, then reconcile again."""
        self.reconcile(raw)
        self.cluster.report_all_ready()
        self.identity = identity_snapshot()
        result = self.reconcile(raw)
        self.reported = True
        return result


# --- the parts a spec stands for ----------------------------------------------------------------------


def test_a_new_identity_is_three_parts_with_every_default_written_out() -> None:
    desired = api.desired_workload(api.parse_spec(spec()), name="billing")
    identity, credential, role = desired.parts
    assert (identity.kind, identity.name) == (constants.USER_ASSIGNED_IDENTITY, "billing")
    assert identity.spec == {"resourceGroup": "rg-a", "location": "westeurope", "deletionPolicy": "Delete"}
    assert credential.spec == {
        "identityRef": {"name": "billing"},
        "serviceAccountRef": {"name": "billing"},
        "audiences": ["api://AzureADTokenExchange"],
        "deletionPolicy": "Delete",
    }
    assert role.name.startswith("billing-")
    assert role.spec == {
        "principal": {"identityRef": {"kind": "UserAssignedIdentity", "name": "billing"}},
        "scope": SCOPE,
        "roleDefinitionId": READER,
        "deletionPolicy": "Delete",
    }


def test_role_part_names_follow_role_and_scope_not_their_order() -> None:
    first = {"role": "Reader", "scope": SCOPE}
    second = {"role": "Key Vault Secrets User", "scope": OTHER_SCOPE}
    names = [p.name for p in api.desired_workload(api.parse_spec(spec([first, second])), name="b").parts]
    reordered = [p.name for p in api.desired_workload(api.parse_spec(spec([second, first])), name="b").parts]
    assert sorted(names) == sorted(reordered)
    case_changed = api.desired_workload(
        api.parse_spec(spec([{"role": "reader", "scope": SCOPE.upper() + "/"}])), name="b"
    )
    assert case_changed.parts[-1].name == api.role_part_name("b", api.RoleSpec(role="Reader", scope=SCOPE))


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (spec(identityRef={"name": "x"}), "exactly one of identity"),
        ({"serviceAccountName": "billing", "roles": []}, "exactly one of identity"),
        (spec(serviceAccountName="system:serviceaccount:other:admin"), "not a ServiceAccount name"),
        (spec([{"role": "Reader", "scope": SCOPE}, {"role": "reader", "scope": SCOPE}]), "same role"),
        (spec([{"scope": SCOPE}]), "exactly one of role or roleDefinitionId"),
        (spec(identity={"location": "westeurope"}), "spec.identity.resourceGroup"),
    ],
)
def test_an_undecidable_spec_is_invalid_and_writes_nothing(raw: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidSpecError, match=says):
        api.desired_workload(api.parse_spec(raw), name="billing")
    world = World()
    result = world.reconcile(raw)
    assert result.reason == reasons.INVALID_SPEC
    assert world.cluster.writes == []


# --- reconcile ---------------------------------------------------------------------------------------------


def test_the_parts_are_created_owned_then_the_account_annotated_and_a_second_pass_writes_nothing() -> None:
    world = World()
    first = world.reconcile(spec())
    assert [w[:2] for w in world.cluster.writes] == [
        ("create", "UserAssignedIdentity"),
        ("create", "FederatedIdentityCredential"),
        ("create", "RoleAssignment"),
    ]
    assert all(o.owner_uid == "uid-billing" for o in world.cluster.objects.values())
    assert not first.ready
    assert first.reason in reasons.PROGRESSING
    [created] = first.changes  # one Event for the three parts
    assert created.reason == outcome.CREATED
    assert "UserAssignedIdentity billing" in created.message
    assert "FederatedIdentityCredential billing" in created.message

    world.cluster.writes.clear()
    waiting = world.reconcile(spec())
    assert world.cluster.writes == []
    assert waiting.reason in reasons.PROGRESSING
    assert not waiting.needs_user_action

    world.cluster.report_all_ready()
    world.identity = identity_snapshot()
    ready = world.reconcile(spec())
    assert ready.ready, ready.message
    assert world.accounts.accounts[(NAMESPACE, "billing")]["metadata"]["annotations"] == {
        api.CLIENT_ID_ANNOTATION: CLIENT_ID,
        api.TENANT_ID_ANNOTATION: TENANT_ID,
    }
    assert ready.observed["clientId"] == CLIENT_ID
    assert [(p["kind"], p["ready"]) for p in ready.observed["parts"]] == [
        ("UserAssignedIdentity", "True"),
        ("FederatedIdentityCredential", "True"),
        ("RoleAssignment", "True"),
        ("ServiceAccount", "True"),
    ]

    world.accounts.writes.clear()
    again = world.reconcile(spec())
    assert world.cluster.writes == []
    assert world.accounts.writes == []
    assert again.changes == ()
    assert dataclasses.replace(again, changes=()) == dataclasses.replace(ready, changes=())


def test_the_account_is_annotated_only_with_the_identity_azure_reported() -> None:
    world = World()
    world.reconcile(spec())
    world.cluster.report_all_ready()
    # Every part Ready, but this process has not observed the identity in Azure (no snapshot).
    result = world.reconcile(spec())
    assert not result.ready
    assert result.reason == reasons.WAITING_FOR_IDENTITY
    assert world.accounts.writes == []


def test_roles_added_changed_and_removed_follow_the_spec() -> None:
    world = World()
    world.settle(spec())
    [old_role] = [name for kind, name in world.cluster.objects if kind == "RoleAssignment"]
    world.cluster.writes.clear()

    world.reconcile(spec([{"role": "Reader", "scope": OTHER_SCOPE}, {"role": "Contributor", "scope": SCOPE}]))
    assert sorted(w[0] for w in world.cluster.writes) == ["create", "create", "delete"]
    assert ("delete", "RoleAssignment", old_role) in world.cluster.writes
    world.cluster.finish_deletions()
    assert len([k for k in world.cluster.objects if k[0] == "RoleAssignment"]) == 2


def test_a_part_edited_by_hand_gets_its_spec_back_and_one_being_deleted_is_waited_for() -> None:
    world = World()
    world.settle(spec())
    edited = world.cluster.objects[("FederatedIdentityCredential", "billing")]
    world.cluster.objects[("FederatedIdentityCredential", "billing")] = dataclasses.replace(
        edited, spec={**edited.spec, "serviceAccountRef": {"name": "admin"}}
    )
    world.cluster.writes.clear()
    repaired = world.reconcile(spec())
    assert world.cluster.writes == [("replace", "FederatedIdentityCredential", "billing")]
    assert world.cluster.objects[("FederatedIdentityCredential", "billing")].spec["serviceAccountRef"] == {
        "name": "billing"
    }
    assert [c.reason for c in repaired.changes] == [outcome.DRIFT_REPAIRED]

    world.cluster.report_all_ready()
    role = next(key for key in world.cluster.objects if key[0] == "RoleAssignment")
    world.cluster.objects[role] = dataclasses.replace(world.cluster.objects[role], deleting=True)
    world.cluster.writes.clear()
    waiting = world.reconcile(spec())
    assert world.cluster.writes == []
    assert not waiting.ready
    world.cluster.finish_deletions()
    world.reconcile(spec())
    assert world.cluster.writes == [("create", "RoleAssignment", role[1])]


def test_a_part_needing_the_user_is_the_reason_of_the_whole() -> None:
    world = World()
    world.settle(spec())
    role = next(key for key in world.cluster.objects if key[0] == "RoleAssignment")
    world.cluster.report(*role, False, reasons.ROLE_NOT_FOUND, "no role 'Readr' at the scope")
    world.cluster.report("FederatedIdentityCredential", "billing", False, reasons.RECONCILING, "busy")
    result = world.reconcile(spec())
    assert result.reason == reasons.ROLE_NOT_FOUND
    assert result.needs_user_action
    assert f"RoleAssignment {role[1]}: no role 'Readr'" in result.message
    assert result.message.startswith("2 of 4 parts not Ready")


def test_a_missing_service_account_is_said_and_looked_for_again() -> None:
    world = World(accounts=FakeServiceAccounts())
    result = world.settle(spec())
    assert result.reason == reasons.SERVICE_ACCOUNT_NOT_FOUND
    assert result.retry_after is not None
    assert f"ServiceAccount {NAMESPACE}/billing does not exist" in result.message
    world.accounts.create(NAMESPACE, "billing")
    assert world.reconcile(spec()).ready


def test_nothing_is_taken_over_and_a_service_account_acts_as_one_identity() -> None:
    world = World()
    world.cluster.add("UserAssignedIdentity", "billing", {"resourceGroup": "rg-a", "location": "westeurope"})
    taken = world.reconcile(spec())
    assert taken.reason == reasons.CONFLICT
    assert "UserAssignedIdentity billing already exists" in taken.message
    assert world.cluster.writes == []

    world = World(shared=(f"{NAMESPACE}/another",))
    assert world.reconcile(spec()).reason == reasons.CONFLICT
    first = World(shared=(f"{NAMESPACE}/zulu",))
    assert first.reconcile(spec()).reason != reasons.CONFLICT


def test_an_existing_identity_is_used_and_reported_but_not_owned() -> None:
    world = World()
    world.cluster.add("UserAssignedIdentity", "shared", {"resourceGroup": "rg-a", "location": "westeurope"})
    raw = spec(identityRef={"name": "shared"})
    del raw["identity"]
    world.reconcile(raw)
    assert ("create", "UserAssignedIdentity", "billing") not in world.cluster.writes
    assert world.hooks.reference_for("billing", raw) == ("UserAssignedIdentity", "shared")
    world.cluster.report_all_ready()
    world.identity = identity_snapshot("shared")
    result = world.reconcile(raw)
    assert result.ready, result.message
    assert result.observed["parts"][0]["name"] == "shared"
    assert world.cluster.owned_by("uid-billing")
    assert all(o.name != "shared" for o in world.cluster.owned_by("uid-billing"))


def test_a_refused_part_is_invalid_and_an_unanswered_write_is_retried() -> None:
    world = World()

    async def refuse(**_: Any) -> None:
        raise KubernetesError(422, 'RoleAssignment "x" is invalid: spec.scope: Invalid value')

    world.cluster.create_owned = refuse  # type: ignore[method-assign]
    assert world.reconcile(spec()).reason == reasons.INVALID_SPEC

    async def unanswered(**_: Any) -> None:
        raise KubernetesError(None, "connection reset")

    world.cluster.create_owned = unanswered  # type: ignore[method-assign]
    retried = world.reconcile(spec())
    assert retried.reason == reasons.RECONCILING
    assert retried.retry_after is not None


# --- deletion ----------------------------------------------------------------------------------------------


def test_deletion_waits_for_the_parts_cleanup_then_removes_only_its_annotations() -> None:
    world = World()
    world.settle(spec())
    account = world.accounts.accounts[(NAMESPACE, "billing")]
    account["metadata"]["annotations"]["team.example/owner"] = "billing"
    world.cluster.writes.clear()

    waiting = world.remove(spec())
    assert not waiting.done
    assert sorted(w[0] for w in world.cluster.writes) == ["delete"] * 3
    assert account["metadata"]["annotations"][api.CLIENT_ID_ANNOTATION] == CLIENT_ID

    world.cluster.writes.clear()
    still = world.remove(spec())
    assert not still.done
    assert world.cluster.writes == []  # deleted once, then waited for

    world.cluster.finish_deletions()
    done = world.remove(spec())
    assert done.done
    assert account["metadata"]["annotations"] == {"team.example/owner": "billing"}


def test_an_orphaning_workload_identity_still_removes_its_parts_which_keep_azure() -> None:
    world = World()
    world.settle(spec(deletionPolicy="Orphan"))
    assert {o.spec["deletionPolicy"] for o in world.cluster.objects.values()} == {"Orphan"}
    removal = world.remove(spec(deletionPolicy="Orphan"))
    assert not removal.done
    assert [w[0] for w in world.cluster.writes].count("delete") == 3


def test_a_service_account_another_workload_identity_declares_keeps_its_annotations() -> None:
    world = World()
    world.settle(spec())
    world.cluster.finish_deletions()
    world.cluster.objects.clear()
    world.shared = (f"{NAMESPACE}/another",)
    assert world.remove(spec()).done
    annotations = world.accounts.accounts[(NAMESPACE, "billing")]["metadata"]["annotations"]
    assert annotations[api.CLIENT_ID_ANNOTATION] == CLIENT_ID


def test_a_part_name_held_by_an_object_being_deleted_is_waited_for_not_a_conflict() -> None:
    world = World()
    world.cluster.add("UserAssignedIdentity", "billing", {"resourceGroup": "rg-a"}, owner_uid="uid-previous")
    key = ("UserAssignedIdentity", "billing")
    world.cluster.objects[key] = dataclasses.replace(world.cluster.objects[key], deleting=True)
    waiting = world.reconcile(spec())
    assert waiting.reason != reasons.CONFLICT
    assert ("create", "UserAssignedIdentity", "billing") not in world.cluster.writes
    world.cluster.finish_deletions()
    world.reconcile(spec())
    assert ("create", "UserAssignedIdentity", "billing") in world.cluster.writes
