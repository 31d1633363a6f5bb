"""The operator's RBAC is exactly the declared least-privilege set, and it is bound to the operator.

The expected sets below are the single statement, outside the manifests, of what the operator may do;
a change to either side fails here until both agree, so widening a permission is always deliberate.
Covers: the cluster-wide ClusterRole; the namespaced overlay's per-namespace Roles and minimal ClusterRole;
bindings to the operator's ServiceAccount; the watched namespaces agreeing across args, Roles and peering
objects; a comment on every rule.
"""

from __future__ import annotations

import re

from .manifests import (
    DEPLOY_DIR,
    GROUP,
    KINDS,
    OPERATOR_NAME,
    OPERATOR_NAMESPACE,
    PART_KINDS,
    Manifest,
    all_of,
    only,
)

Permission = tuple[str, str, str]
"""(API group, resource or resource/subresource, verb)"""


def grants(group: str, resources: list[str], verbs: list[str]) -> set[Permission]:
    return {(group, resource, verb) for resource in resources for verb in verbs}


IN_EACH_SERVED_NAMESPACE: set[Permission] = (
    grants(GROUP, list(KINDS), ["list", "watch", "patch"])
    | grants(GROUP, list(PART_KINDS), ["create", "delete"])
    | grants(GROUP, [f"{kind}/status" for kind in KINDS], ["patch"])
    | grants("", ["events"], ["create"])
    | grants("", ["configmaps"], ["get", "create", "patch"])
    | grants("", ["serviceaccounts"], ["get", "patch"])
)
"""What the operator does to objects in a namespace it serves."""

KOPF_CRD_OBSERVATION: set[Permission] = grants(
    "apiextensions.k8s.io", ["customresourcedefinitions"], ["list", "watch"]
)
"""What kopf reads at cluster scope in every mode."""

POLICIES_AND_CLUSTER: set[Permission] = (
    grants("", ["namespaces"], ["list", "watch"])
    | grants(GROUP, ["identityaccesspolicies"], ["list", "watch"])
    | grants(GROUP, ["identityaccesspolicies/status"], ["patch"])
    | {("", "namespaces[kube-system]", "get")}
)
"""At cluster scope in every mode: the namespaces' labels and the access policies that select them, and
the kube-system namespace, whose uid names the cluster."""

NON_RESOURCE = "<nonResourceURL>"
ISSUER_DISCOVERY: set[Permission] = {(NON_RESOURCE, "/.well-known/openid-configuration", "get")}
"""The cluster's service-account issuer, read at start-up in every mode."""

KOPF_CLUSTER_OBSERVATION: set[Permission] = KOPF_CRD_OBSERVATION | grants(
    "", ["namespaces"], ["list", "watch"]
)
"""What kopf reads at cluster scope when it serves a list of namespaces: it also follows the namespaces.
Serving all of them, it never lists or watches namespaces."""

EXPECTED_CLUSTER_WIDE_CLUSTER_ROLE = (
    IN_EACH_SERVED_NAMESPACE
    | KOPF_CRD_OBSERVATION
    | ISSUER_DISCOVERY
    | POLICIES_AND_CLUSTER
    | grants("kopf.dev", ["clusterkopfpeerings"], ["list", "watch", "patch"])
)
EXPECTED_NAMESPACED_CLUSTER_ROLE = KOPF_CLUSTER_OBSERVATION | ISSUER_DISCOVERY | POLICIES_AND_CLUSTER
EXPECTED_NAMESPACED_ROLE = IN_EACH_SERVED_NAMESPACE | grants(
    "kopf.dev", ["kopfpeerings"], ["list", "watch", "patch"]
)

RULE_FILES = (
    DEPLOY_DIR / "overlays" / "cluster-wide" / "clusterrole.yaml",
    DEPLOY_DIR / "overlays" / "namespaced" / "clusterrole.yaml",
    DEPLOY_DIR / "overlays" / "namespaced" / "watched-namespace" / "role.yaml",
)


def permissions(role: Manifest) -> set[Permission]:
    found: set[Permission] = set()
    for rule in role["rules"]:
        if "nonResourceURLs" in rule:
            assert set(rule) == {"nonResourceURLs", "verbs"}, f"unexpected rule fields: {sorted(rule)}"
            found |= grants(NON_RESOURCE, rule["nonResourceURLs"], rule["verbs"])
            continue
        assert set(rule) <= {"apiGroups", "resources", "resourceNames", "verbs"}, (
            f"unexpected rule fields: {sorted(rule)}"
        )
        resources = rule["resources"]
        if "resourceNames" in rule:  # e.g. namespaces[kube-system]: only those objects
            resources = [f"{r}[{name}]" for r in resources for name in rule["resourceNames"]]
        for group in rule["apiGroups"]:
            found |= grants(group, resources, rule["verbs"])
    return found


def no_wildcards(role: Manifest) -> None:
    for rule in role["rules"]:
        for field in ("apiGroups", "resources", "nonResourceURLs", "verbs"):
            assert "*" not in rule.get(field, ()), f"{role['metadata']['name']}: wildcard in {field}"


def binds_operator(binding: Manifest, role_kind: str, role_name: str) -> None:
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": role_kind,
        "name": role_name,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": OPERATOR_NAME, "namespace": OPERATOR_NAMESPACE}
    ]


def operator_args(objects: list[Manifest]) -> list[str]:
    args: list[str] = only(objects, "Deployment", OPERATOR_NAME)["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    return args


def test_cluster_wide_grants_exactly_the_declared_set(rendered_overlays: dict[str, list[Manifest]]) -> None:
    objects = rendered_overlays["cluster-wide"]
    (cluster_role,) = all_of(objects, "ClusterRole")
    assert not all_of(objects, "Role"), "cluster-wide needs no namespaced Roles"
    no_wildcards(cluster_role)
    assert permissions(cluster_role) == EXPECTED_CLUSTER_WIDE_CLUSTER_ROLE
    (binding,) = all_of(objects, "ClusterRoleBinding")
    binds_operator(binding, "ClusterRole", cluster_role["metadata"]["name"])
    assert not all_of(objects, "RoleBinding")


def test_namespaced_grants_only_kopf_observation_at_cluster_scope(
    rendered_overlays: dict[str, list[Manifest]],
) -> None:
    objects = rendered_overlays["namespaced"]
    (cluster_role,) = all_of(objects, "ClusterRole")
    no_wildcards(cluster_role)
    assert permissions(cluster_role) == EXPECTED_NAMESPACED_CLUSTER_ROLE
    (binding,) = all_of(objects, "ClusterRoleBinding")
    binds_operator(binding, "ClusterRole", cluster_role["metadata"]["name"])


def test_namespaced_grants_the_declared_set_in_each_watched_namespace(
    rendered_overlays: dict[str, list[Manifest]],
) -> None:
    objects = rendered_overlays["namespaced"]
    watched = {
        arg.removeprefix("--namespace=") for arg in operator_args(objects) if arg.startswith("--namespace=")
    }
    assert watched, "the namespaced overlay watches at least one namespace"
    roles = {role["metadata"]["namespace"]: role for role in all_of(objects, "Role")}
    bindings = {binding["metadata"]["namespace"]: binding for binding in all_of(objects, "RoleBinding")}
    peerings = {peering["metadata"]["namespace"]: peering for peering in all_of(objects, "KopfPeering")}
    assert set(roles) == watched
    assert set(bindings) == watched
    assert set(peerings) == watched
    for namespace in watched:
        no_wildcards(roles[namespace])
        assert permissions(roles[namespace]) == EXPECTED_NAMESPACED_ROLE, namespace
        binds_operator(bindings[namespace], "Role", roles[namespace]["metadata"]["name"])


def test_peering_object_matches_the_operator_peering_name(overlay_objects: list[Manifest]) -> None:
    args = operator_args(overlay_objects)
    (peering_arg,) = [arg for arg in args if arg.startswith("--peering=")]
    name = peering_arg.removeprefix("--peering=")
    peering_kind = "ClusterKopfPeering" if "--all-namespaces" in args else "KopfPeering"
    other_kind = "KopfPeering" if peering_kind == "ClusterKopfPeering" else "ClusterKopfPeering"
    peerings = all_of(overlay_objects, peering_kind)
    assert peerings
    assert {peering["metadata"]["name"] for peering in peerings} == {name}
    assert not all_of(overlay_objects, other_kind)


def test_the_expected_sets_differ_where_the_modes_differ() -> None:
    # Guards the comparisons above against comparing a set with itself.
    assert EXPECTED_NAMESPACED_ROLE != EXPECTED_CLUSTER_WIDE_CLUSTER_ROLE
    assert not EXPECTED_NAMESPACED_CLUSTER_ROLE & IN_EACH_SERVED_NAMESPACE
    assert ("kopf.dev", "clusterkopfpeerings", "patch") not in EXPECTED_NAMESPACED_ROLE


def test_every_rule_says_why() -> None:
    for path in RULE_FILES:
        lines = path.read_text().splitlines()
        rule_starts = [
            index for index, line in enumerate(lines) if re.match(r"^  - (apiGroups|nonResourceURLs):", line)
        ]
        assert rule_starts, path
        for index in rule_starts:
            assert lines[index - 1].lstrip().startswith("#"), (
                f"{path.name}:{index + 1}: rule without a comment"
            )
