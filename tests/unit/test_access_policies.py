"""Access policies on plain data: what each rule allows and denies, how several policies combine (deny
wins), the defaults without a policy, label selectors, and what the policy book tells the controller about
changes (which namespaces to re-check, which policies' status to write)."""

from __future__ import annotations

from typing import Any

import pytest

from azure_identity_operator.api import access_policy as api
from azure_identity_operator.handlers.policies import PolicyBook
from azure_identity_operator.reconcilers import access

SUB = "00000000-0000-0000-0000-000000000001"
TEAM_A = f"/subscriptions/{SUB}/resourceGroups/team-a-web"
OTHER = f"/subscriptions/{SUB}/resourceGroups/billing"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CLUSTER_ISSUER = "https://oidc.cluster.test/issuer"


def policy(name: str = "team-a", **spec: Any) -> access.Policy:
    spec.setdefault("namespaceSelector", {"matchLabels": {"team": "a"}})
    return access.Policy(name, api.parse_spec(spec))


def grant(
    role: str | None = "Reader",
    role_id: str | None = READER,
    scope: str = TEAM_A,
    *,
    principal: str = "11111111-0000-0000-0000-000000000001",
    own: bool = True,
) -> access.Grant:
    return access.Grant(
        role_name=role, role_id=role_id, scope=scope, principal_id=principal, own_identity=own
    )


def check(
    policies: list[access.Policy], request: access.Request, *, restricted: bool = False
) -> access.Denial | None:
    return access.evaluate(policies, {"team": "a"}, [request], restricted_default=restricted)


def test_roles_by_name_or_id_allow_and_deny() -> None:
    allowing = policy(roles={"allow": ["reader", "Key Vault Secrets User"]})
    assert check([allowing], grant()) is None
    assert check([allowing], grant("Reader", None)) is None
    denied = check([allowing], grant("Contributor", "b24988ac-6180-42a0-ab88-20f7382dd24c"))
    assert denied is not None
    assert denied.rule == "spec.roles.allow"
    assert "Contributor" in denied.describe()
    assert "IdentityAccessPolicy team-a" in denied.describe()
    by_id = policy(
        roles={"deny": [f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{OWNER}"]}
    )
    owner = check([by_id], grant("Owner", OWNER))
    assert owner is not None
    assert owner.rule == "spec.roles.deny"
    assert check([policy(roles={"allow": []})], grant()) is not None  # an empty allow list allows nothing


def test_scopes_are_globs_that_cover_everything_below() -> None:
    team = policy(scopes={"allow": [f"/subscriptions/{SUB}/resourceGroups/TEAM-A-*"]})
    assert check([team], grant(scope=TEAM_A)) is None
    vault = f"{TEAM_A}/providers/Microsoft.KeyVault/vaults/kv"
    assert check([team], grant(scope=vault)) is None
    outside = check([team], grant(scope=OTHER))
    assert outside is not None
    assert outside.rule == "spec.scopes.allow"
    subscription_wide = check([team], grant(scope=f"/subscriptions/{SUB}"))
    assert subscription_wide is not None
    no_vaults = policy(scopes={"deny": ["**/providers/Microsoft.KeyVault/vaults/*"]})
    assert check([no_vaults], grant(scope=vault)) is not None
    assert check([no_vaults], grant(scope=TEAM_A)) is None
    # `*` stays within a segment: a pattern names a level, and covers what is below it.
    one_level = policy(scopes={"allow": [f"/subscriptions/{SUB}/resourceGroups/*"]})
    assert check([one_level], grant(scope=vault)) is None
    assert check([one_level], grant(scope=f"/subscriptions/{SUB}")) is not None
    not_a_group = policy(scopes={"allow": [f"/subscriptions/{SUB}/resourceGroups/team-*-web"]})
    assert check([not_a_group], grant(scope=TEAM_A)) is None
    assert check([not_a_group], grant(scope=f"/subscriptions/{SUB}/resourceGroups/team/x/y-web")) is not None


def test_only_identities_of_the_namespace_unless_principals_are_listed() -> None:
    raw = grant(own=False, principal="22222222-0000-0000-0000-000000000002")
    denied = check([policy()], raw)
    assert denied is not None
    assert denied.rule == "spec.principals.allow"
    assert check([policy()], grant(own=True)) is None
    assert check([policy(principals={"allow": ["22222222-0000-0000-0000-000000000002"]})], raw) is None
    assert check([policy(principals={"allow": ["*"]})], raw) is None


def test_where_identities_live_and_which_resources_they_touch() -> None:
    rules = policy(
        identities={
            "resourceGroups": {"allow": [f"/subscriptions/{SUB}/resourceGroups/team-a-*"]},
            "locations": {"allow": ["westeurope", "north*"]},
        },
        resources={
            "allow": [f"/subscriptions/{SUB}/resourceGroups/team-a-*"],
            "deny": ["**/virtualMachines/*-prod"],
        },
    )
    assert check([rules], access.NewIdentity(resource_group_id=TEAM_A, location="West Europe")) is None
    assert check([rules], access.NewIdentity(resource_group_id=TEAM_A, location="northeurope")) is None
    assert check([rules], access.NewIdentity(resource_group_id=OTHER, location="westeurope")) is not None
    assert check([rules], access.NewIdentity(resource_group_id=TEAM_A, location="eastus")) is not None
    vm = f"{TEAM_A}/providers/Microsoft.Compute/virtualMachines/batch"
    use = access.UseResource(resource_id=vm, action="enable the system-assigned identity of")
    assert check([rules], use) is None
    prod = access.UseResource(resource_id=f"{vm}-prod", action="attach an identity to")
    denied = check([rules], prod)
    assert denied is not None
    assert "may not attach an identity to" in denied.message
    assert check([rules], access.UseResource(resource_id=f"{OTHER}/providers/x/y/z", action="a")) is not None


def test_credentials_trust_their_own_namespace_unless_more_is_listed() -> None:
    own = access.Trust(issuer=CLUSTER_ISSUER, subject="system:serviceaccount:team-a:api", own_account=True)
    github = access.Trust(
        issuer="https://token.actions.githubusercontent.com",
        subject="repo:org/app:ref:refs/heads/main",
        own_account=False,
    )
    assert check([policy()], own) is None
    denied = check([policy()], github)
    assert denied is not None
    assert denied.rule == "spec.federatedCredentials.issuers.allow"
    listed = policy(
        federatedCredentials={
            "issuers": {"allow": ["https://token.actions.githubusercontent.com"]},
            "subjects": {"allow": ["repo:org/*"]},
        }
    )
    assert check([listed], github) is None
    other_repo = access.Trust(
        issuer=github.issuer, subject="repo:evil/app:ref:refs/heads/main", own_account=False
    )
    assert check([listed], other_repo) is not None
    no_own = policy(federatedCredentials={"subjects": {"deny": ["system:serviceaccount:*:default"]}})
    default_account = access.Trust(
        issuer=CLUSTER_ISSUER, subject="system:serviceaccount:team-a:default", own_account=True
    )
    assert check([no_own], default_account) is not None


def test_policies_combine_deny_wins() -> None:
    broad = policy("broad", roles={"allow": ["Reader", "Contributor"]})
    narrow = policy("narrow", roles={"deny": ["Contributor"]})
    contributor = grant("Contributor", "b24988ac-6180-42a0-ab88-20f7382dd24c")
    denied = check([broad, narrow], contributor)
    assert denied is not None
    assert denied.policy == "narrow"
    assert check([broad, narrow], grant()) is None
    # A policy that selects another namespace has no say here.
    elsewhere = policy("elsewhere", namespaceSelector={"matchLabels": {"team": "b"}}, roles={"allow": []})
    assert check([broad, elsewhere], grant()) is None


@pytest.mark.parametrize("restricted", [False, True])
def test_without_a_policy_the_default_decides(restricted: bool) -> None:
    owner = check([], grant("Owner", OWNER), restricted=restricted)
    assert (owner is not None) == restricted
    by_id_only = check([], grant(None, OWNER), restricted=restricted)
    assert (by_id_only is not None) == restricted
    uaa = check([], grant("User Access Administrator", None), restricted=restricted)
    assert (uaa is not None) == restricted
    assert check([], grant(), restricted=restricted) is None
    if owner is not None:
        assert owner.policy == access.RESTRICTED_DEFAULT
        assert "IDENTITY_OPERATOR_DEFAULT_POLICY" in owner.describe()


def test_label_selectors() -> None:
    selector = api.LabelSelector.model_validate(
        {
            "matchLabels": {"tier": "prod"},
            "matchExpressions": [
                {"key": "team", "operator": "In", "values": ["a", "b"]},
                {"key": "sandbox", "operator": "DoesNotExist"},
            ],
        }
    )
    assert selector.selects({"tier": "prod", "team": "a"})
    assert not selector.selects({"tier": "prod", "team": "c"})
    assert not selector.selects({"tier": "prod", "team": "a", "sandbox": "yes"})
    assert not selector.selects({"team": "a"})
    assert api.LabelSelector().selects({"anything": "x"})


def test_the_book_says_which_namespaces_a_change_concerns() -> None:
    book = PolicyBook()
    book.set_namespace("team-a", {"team": "a"})
    book.set_namespace("team-b", {"team": "b"})
    assert book.set_policy("team-a", {"namespaceSelector": {"matchLabels": {"team": "a"}}}) == {"team-a"}
    assert book.status_of("team-a")["namespaces"] == ["team-a"]
    # Re-labelled: the policy now selects it too.
    assert book.set_namespace("team-b", {"team": "a"}) == {"team-a"}
    assert book.status_of("team-a")["namespaceCount"] == 2
    # Re-targeted: both the old and the new selection are concerned.
    assert book.set_policy("team-a", {"namespaceSelector": {"matchLabels": {"team": "c"}}}) == {
        "team-a",
        "team-b",
    }
    assert book.set_policy("team-a", None) == set()
    assert not book.policies
    assert book.knows("unseen")  # with no policy in force, labels do not matter
    book.set_policy("all", {"namespaceSelector": {}})
    assert not book.knows("unseen")


def test_custom_roles_are_judged_as_the_grants_they_make_possible() -> None:
    team = policy(
        scopes={"allow": [f"/subscriptions/{SUB}/resourceGroups/team-a-*"]}, roles={"allow": ["Reader"]}
    )
    inside = access.DefineRole(role_name="Vault Reader", scope=TEAM_A, privileged=False)
    assert check([team], inside) is None
    outside = check([team], access.DefineRole(role_name="Vault Reader", scope=OTHER, privileged=False))
    assert outside is not None
    assert outside.rule == "spec.scopes.allow"
    # A role that reaches role assignments is as privileged as Owner: only a policy listing it allows it.
    escalating = access.DefineRole(role_name="Grant Anything", scope=TEAM_A, privileged=True)
    assert check([team], escalating) is not None
    assert check([policy(roles={"allow": ["Grant Anything"]})], escalating) is None
    assert check([], escalating, restricted=True) is not None
    assert check([], escalating, restricted=False) is None  # permissive: as before policies existed
