"""Bulk drift checks with plain data: each kind's `survey` compares many Ready objects against one Azure
listing (identities per resource group, assignments per subscription, credentials per identity) and
names only the objects that drifted; a listing that fails transiently keeps every status.

Covers: matching objects cost one read per group and no write; a deleted, moved, re-tagged or edited
resource and a status that disagrees with Azure are each flagged; identities with attachments are left to
a full reconcile; a throttled listing reports a failed check, not drift.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from azure_identity_operator.api.references import PrincipalSnapshot
from azure_identity_operator.arm.authorization import RoleAssignmentProperties
from azure_identity_operator.arm.errors import ArmError
from azure_identity_operator.arm.identities import IdentityRef
from azure_identity_operator.reconcilers import flow
from azure_identity_operator.reconcilers.federated_identity_credentials import (
    FederatedIdentityCredentialHooks,
)
from azure_identity_operator.reconcilers.kube_port import ClusterIssuer
from azure_identity_operator.reconcilers.role_assignments import RoleAssignmentHooks
from azure_identity_operator.reconcilers.user_assigned_identities import UserAssignedIdentityHooks
from azure_identity_operator.status import reasons

from .fake_authorization import SUBSCRIPTION, FakeAuthorization
from .fake_kube import FakeServiceAccounts
from .fake_resources import FakeResourcePort
from .fakes import TENANT_ID, FakeIdentityPort
from .objects import Life

ISSUER = "https://oidc.cluster.test"


def identity_hooks(port: FakeIdentityPort) -> UserAssignedIdentityHooks:
    return UserAssignedIdentityHooks(
        port, FakeResourcePort(), None, default_subscription_id=SUBSCRIPTION, default_tenant_id=TENANT_ID
    )


def ready_identities(port: FakeIdentityPort, names: list[str], group: str = "rg-a") -> list[Life]:
    lives = []
    for name in names:
        life = Life(
            identity_hooks(port),
            {"resourceGroup": group, "location": "westeurope", "tags": {"team": "a"}},
            name=name,
            writes=lambda: len(port.writes),
        )
        assert life.reconcile().ready
        lives.append(life)
    return lives


def reads_of(port: FakeIdentityPort, method: str) -> int:
    return sum(1 for name, _ in port.reads if name == method)


def survey(hooks: Any, lives: list[Life], **overrides: Any) -> dict[str, flow.Verdict]:
    states = [life.state(**overrides) for life in lives]
    return dict(asyncio.run(hooks.survey(states)))


def test_identities_are_checked_with_one_list_per_resource_group() -> None:
    port = FakeIdentityPort()
    lives = ready_identities(port, ["one", "two", "three"]) + ready_identities(port, ["four"], group="rg-b")
    writes, lists = len(port.writes), reads_of(port, "list_identities")
    verdicts = survey(identity_hooks(port), lives)
    assert set(verdicts) == {"team/one", "team/two", "team/three", "team/four"}
    assert all(not v.drifted and v.failed is None for v in verdicts.values())
    assert verdicts["team/one"].observed is not None
    assert verdicts["team/one"].observed["principalId"] == lives[0].status["principalId"]
    assert reads_of(port, "list_identities") - lists == 2, "one listing per resource group"
    assert reads_of(port, "get_identity") == 4, "no GET beyond the four creations"
    assert len(port.writes) == writes


def test_an_identity_deleted_retagged_or_misreported_is_flagged_and_only_it() -> None:
    port = FakeIdentityPort()
    gone, retagged, forged, fine = ready_identities(port, ["gone", "retagged", "forged", "fine"])
    port.delete_identity_directly(IdentityRef(SUBSCRIPTION, "rg-a", "gone"))
    asyncio.run(port.update_identity_tags(IdentityRef(SUBSCRIPTION, "rg-a", "retagged"), tags={"x": "y"}))
    forged.status = {**forged.status, "principalId": "00000000-0000-0000-0000-00000000dead"}
    verdicts = survey(identity_hooks(port), [gone, retagged, forged, fine])
    assert {key for key, v in verdicts.items() if v.drifted} == {"team/gone", "team/retagged", "team/forged"}


def test_identities_with_attachments_are_left_to_a_full_reconcile() -> None:
    port = FakeIdentityPort()
    (life,) = ready_identities(port, ["attached"])
    state = dataclasses.replace(life.state(), spec={**life.spec, "attachTo": ["/subscriptions/x"]})
    verdicts = asyncio.run(identity_hooks(port).survey([state]))
    assert verdicts["team/attached"].drifted


def test_a_throttled_listing_is_a_failed_check_not_drift() -> None:
    port = FakeIdentityPort()
    lives = ready_identities(port, ["one", "two"])
    port.fail_next("list_identities", ArmError(status=429, code="TooManyRequests", message="slow down"))
    verdicts = survey(identity_hooks(port), lives)
    assert all(v.failed == reasons.THROTTLED and not v.drifted for v in verdicts.values())


def principal(principal_id: str) -> PrincipalSnapshot:
    return PrincipalSnapshot(
        kind="UserAssignedIdentity",
        namespace="team",
        name="app",
        ready=True,
        deleting=False,
        principal_id=principal_id,
        client_id=None,
        tenant_id=None,
        resource_id=None,
    )


def test_assignments_are_checked_with_one_list_per_subscription() -> None:
    port = FakeAuthorization()
    hooks = RoleAssignmentHooks(port)
    lives = []
    for index in range(3):
        principal_id = f"1111111{index}-1111-1111-1111-111111111111"
        life = Life(
            hooks,
            {
                "principal": {"identityRef": {"name": f"app-{index}"}},
                "role": "Reader",
                "scope": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-{index}",
            },
            name=f"grant-{index}",
            writes=lambda: port.writes,
        )
        life.identity = principal(principal_id)
        assert life.reconcile().ready
        lives.append(life)
    port.reset_counts()
    verdicts = dict(asyncio.run(hooks.survey([life.state() for life in lives])))
    assert all(not v.drifted for v in verdicts.values()), verdicts
    assert port.calls["list_role_assignments"] == 1
    assert port.calls["get_role_assignment"] == 0
    assert port.writes == 0

    # Deleted behind our back, edited (a condition added), or the identity re-created with a new principal.
    deleted, edited, followed = lives
    asyncio.run(port.delete_role_assignment(deleted.status["scope"], deleted.status["name"]))
    current = port.at_scope(edited.status["scope"])[0]
    port.seed(current.name, dataclasses.replace(current.properties, condition="@Resource[x] == 'y'"))
    followed.identity = principal("99999999-9999-9999-9999-999999999999")
    verdicts = dict(asyncio.run(hooks.survey([life.state() for life in lives])))
    assert all(v.drifted for v in verdicts.values()), verdicts


def test_credentials_are_checked_with_one_list_per_identity() -> None:
    port = FakeIdentityPort()
    (identity_life,) = ready_identities(port, ["app"])
    snapshot = PrincipalSnapshot(
        kind="UserAssignedIdentity",
        namespace="team",
        name="app",
        ready=True,
        deleting=False,
        principal_id=identity_life.status["principalId"],
        client_id=identity_life.status["clientId"],
        tenant_id=TENANT_ID,
        resource_id=identity_life.status["id"],
    )
    hooks = FederatedIdentityCredentialHooks(port, FakeServiceAccounts(), issuer=ClusterIssuer(ISSUER))
    lives = []
    for name in ("ci-runner", "web-server"):
        life = Life(
            hooks,
            {"identityRef": {"name": "app"}, "subject": f"system:serviceaccount:team:{name}"},
            name=name,
            writes=lambda: len(port.writes),
        )
        life.identity = snapshot
        assert life.reconcile().ready
        lives.append(life)
    lists, gets = reads_of(port, "list_federated_credentials"), reads_of(port, "get_federated_credential")
    verdicts = dict(asyncio.run(hooks.survey([life.state() for life in lives])))
    assert all(not v.drifted for v in verdicts.values()), verdicts
    assert reads_of(port, "list_federated_credentials") - lists == 1
    assert reads_of(port, "get_federated_credential") == gets

    ref = IdentityRef(SUBSCRIPTION, "rg-a", "app")
    asyncio.run(port.delete_federated_credential(ref, "web-server"))
    verdicts = dict(asyncio.run(hooks.survey([life.state() for life in lives])))
    assert {key for key, v in verdicts.items() if v.drifted} == {"team/web-server"}


KNOWN = "11111111-1111-1111-1111-111111111111"


def test_a_status_pointing_at_another_assignment_is_flagged() -> None:
    port = FakeAuthorization()
    port.known_principals.add(KNOWN)
    hooks = RoleAssignmentHooks(port)
    life = Life(
        hooks,
        {
            "principal": {"principalId": KNOWN, "principalType": "ServicePrincipal"},
            "role": "Reader",
            "scope": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg",
        },
        name="grant",
        writes=lambda: port.writes,
    )
    assert life.reconcile().ready
    other = port.seed(
        "0a1b2c3d-0000-0000-0000-000000000000",
        RoleAssignmentProperties(
            scope=f"/subscriptions/{SUBSCRIPTION}/resourceGroups/other",
            role_definition_id=life.status["roleDefinitionId"],
            principal_id="22222222-2222-2222-2222-222222222222",
            principal_type="ServicePrincipal",
        ),
    )
    life.status = {**life.status, "name": other.name, "scope": other.properties.scope}
    verdicts = dict(asyncio.run(hooks.survey([life.state()])))
    assert verdicts["team/grant"].drifted
