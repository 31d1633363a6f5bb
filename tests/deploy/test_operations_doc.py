"""docs/operations.md says what the manifests do: its example overlay renders with the settings it shows,
its configuration table lists exactly the ConfigMap's keys, every deploy/ path it names exists, and what it
says the operator's RBAC reaches is what the overlays grant.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from .manifests import CRDS_DIR, DEPLOY_DIR, KINDS, OVERLAYS, REPO_ROOT, Manifest, all_of, only, render

DOC = REPO_ROOT / "docs" / "operations.md"
EXAMPLE_MARKER = "<!-- the block below is rendered by tests/deploy/test_operations_doc.py -->"
EXAMPLE_OVERLAY = "deploy/overlays/my-cluster"
CORE_RESOURCES = {
    "ConfigMaps": "configmaps",
    "Events": "events",
    "Namespaces": "namespaces",
    "Pods": "pods",
    "Secrets": "secrets",
    "ServiceAccounts": "serviceaccounts",
    "Services": "services",
}
"""Core kinds, as the doc names them in prose, and the resource each is in RBAC rules."""

ROLE_ASSIGNMENT_AZURE_ACCESS = (
    "`Microsoft.Authorization/roleAssignments/write` and `/delete`",
    "Role Based Access Control Administrator (least privilege; can be constrained with a condition",
    "or User Access Administrator (or Owner)",
)
"""What the operator's own Azure identity needs to manage RoleAssignments, said alike wherever it is said."""
GUIDES = (REPO_ROOT / "README.md", DOC, REPO_ROOT / "docs" / "usage.md")

Permission = tuple[str, str, str]
"""(API group, resource or resource/subresource, verb)"""


def example_overlay() -> str:
    text = DOC.read_text()
    assert EXAMPLE_MARKER in text
    after = text.split(EXAMPLE_MARKER, 1)[1]
    match = re.search(r"```yaml\n(.*?)\n\s*```", after, flags=re.DOTALL)
    assert match is not None
    lines = match.group(1).splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines) + "\n"


def test_example_overlay_renders_with_the_settings_it_shows(tmp_path: Path) -> None:
    # A copy of the repository's deploy/ and crds/, so the example sits where the doc puts it.
    shutil.copytree(DEPLOY_DIR, tmp_path / "deploy")
    shutil.copytree(CRDS_DIR, tmp_path / "crds")
    overlay = tmp_path / EXAMPLE_OVERLAY
    overlay.mkdir()
    text = example_overlay()
    (overlay / "kustomization.yaml").write_text(text)
    literals = dict(
        literal.split("=", 1) for literal in yaml.safe_load(text)["configMapGenerator"][0]["literals"]
    )

    objects = render(overlay)

    config_map = only(objects, "ConfigMap", "azure-identity-operator-config")
    for key, value in literals.items():
        assert config_map["data"][key] == value
    assert config_map["data"]["IDENTITY_OPERATOR_LOG_FORMAT"] == "json", "shipped values are kept"
    service_account = only(objects, "ServiceAccount", "azure-identity-operator")
    assert (
        service_account["metadata"]["annotations"]["azure.workload.identity/client-id"]
        == literals["AZURE_CLIENT_ID"]
    )
    assert only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [
        {"configMapRef": {"name": "azure-identity-operator-config"}}
    ]


def test_configuration_table_lists_exactly_the_config_map_keys() -> None:
    shipped = dict(
        line.split("=", 1)
        for line in (DEPLOY_DIR / "base" / "config.env").read_text().splitlines()
        if line.strip()
    )
    section = DOC.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    table = section.split("| key |", 1)[1].split("\n\n", 1)[0]
    documented = re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.MULTILINE)
    assert sorted(documented) == sorted(shipped)
    for key, value in shipped.items():
        if value:
            assert re.search(rf"^\| `{key}` \| `{re.escape(value)}` \|", table, flags=re.MULTILINE), key


def test_every_deploy_path_the_doc_names_exists() -> None:
    named = set(re.findall(r"(?<![\w/])(deploy/[\w./-]*[\w-])", DOC.read_text()))
    shipped = {path for path in named if not path.startswith(EXAMPLE_OVERLAY)}
    assert shipped
    for path in shipped:
        assert (REPO_ROOT / path).exists(), path


def section(title: str) -> str:
    return DOC.read_text().split(f"\n## {title}", 1)[1].split("\n## ", 1)[0]


NON_RESOURCE = "non-resource URL"


def granted(roles: list[Manifest]) -> set[Permission]:
    """(API group, resource, verb) of every rule; a non-resource URL rule as (NON_RESOURCE, URL, verb)."""
    return {
        (group, resource, verb)
        for role in roles
        for rule in role["rules"]
        for group, resources in (
            [(NON_RESOURCE, rule["nonResourceURLs"])]
            if "nonResourceURLs" in rule
            else [(group, rule["resources"]) for group in rule["apiGroups"]]
        )
        for resource in resources
        for verb in rule["verbs"]
    }


def every_role(rendered_overlays: dict[str, list[Manifest]]) -> list[Manifest]:
    return [
        role
        for name in OVERLAYS
        for role in all_of(rendered_overlays[name], "ClusterRole") + all_of(rendered_overlays[name], "Role")
    ]


def test_what_the_cluster_wide_cluster_role_reaches_is_what_it_grants(
    rendered_overlays: dict[str, list[Manifest]],
) -> None:
    paragraph = section("Choosing what the operator watches").split("**Cluster-wide**", 1)[1]
    paragraph = paragraph.split("\n\n", 1)[0]
    named = {resource for word, resource in CORE_RESOURCES.items() if re.search(rf"\b{word}\b", paragraph)}
    (cluster_role,) = all_of(rendered_overlays["cluster-wide"], "ClusterRole")
    core = {resource for group, resource, _ in granted([cluster_role]) if group == ""}
    assert named == core
    assert "own kinds" in paragraph


def test_what_the_doc_says_the_operator_cannot_read_is_granted_by_no_role(
    rendered_overlays: dict[str, list[Manifest]],
) -> None:
    match = re.search(r"The operator cannot read ([^.]*?),? or anything else", section("RBAC"))
    assert match is not None
    named = [CORE_RESOURCES[word] for word in re.split(r",\s*|\s+or\s+", match.group(1))]
    assert named
    reached = {resource for group, resource, _ in granted(every_role(rendered_overlays)) if group == ""}
    assert set(named) & reached == set()


def test_the_rbac_table_lists_exactly_what_the_overlays_grant(
    rendered_overlays: dict[str, list[Manifest]],
) -> None:
    table = section("RBAC").split("| API group |", 1)[1].split("\n\n", 1)[0]
    documented: set[Permission] = set()
    for row in table.splitlines()[2:]:
        group_cell, resources_cell, verbs_cell = (cell.strip() for cell in row.strip("|").split("|")[:3])
        group = "" if group_cell == "core" else group_cell.strip("`")
        if resources_cell == "the six namespaced kinds":
            resources = list(KINDS)
        elif resources_cell == "`<kind>/status`":
            resources = [f"{kind}/status" for kind in KINDS]
        else:
            resources = re.findall(r"`([a-z./-]+)`", resources_cell)
        assert resources, row
        documented |= {(group, r, verb.strip()) for r in resources for verb in verbs_cell.split(",")}
    assert documented == granted(every_role(rendered_overlays))


def test_every_guide_names_the_same_azure_access_for_role_assignments() -> None:
    """The README and the guides once named different roles; a reader must get one answer everywhere."""
    for guide in GUIDES:
        text = guide.read_text()
        # Lines on the operator's own Azure access for role assignments (access policies name these
        # roles too, as roles teams may or may not grant: those lines say something else).
        lines = [
            line
            for line in text.splitlines()
            if re.search(r"Administrator|\bOwner\b", line)
            and re.search(r"RoleAssignment|roleAssignments/write", line)
            and "IdentityAccessPolicy" not in line
        ]
        assert lines, f"{guide.name} does not say which Azure role RoleAssignments need"
        for line in lines:
            for part in ROLE_ASSIGNMENT_AZURE_ACCESS:
                assert part in line, (guide.name, line)
    tables = [
        next(
            line for line in path.read_text().splitlines() if line.lstrip().startswith("| `RoleAssignment` |")
        )
        for path in (REPO_ROOT / "README.md", DOC)
    ]
    assert tables[0].strip() == tables[1].strip()


def test_the_worked_access_policies_are_valid_and_combine_as_the_doc_says() -> None:
    """The multi-tenant section's policies parse as the operator reads them, and do what the text says."""
    from azure_identity_operator.api import access_policy
    from azure_identity_operator.reconcilers import access

    block = section("Multi-tenant clusters: who may grant what").split("```yaml\n", 1)[1].split("```", 1)[0]
    policies = [
        access.Policy(document["metadata"]["name"], access_policy.parse_spec(document["spec"]))
        for document in yaml.safe_load_all(block)
    ]
    assert [policy.name for policy in policies] == ["baseline", "team-payments", "team-search"]
    sub = "/subscriptions/00000000-0000-0000-0000-000000000001"

    def decide(labels: dict[str, str], role: str, scope: str) -> access.Denial | None:
        request = access.Grant(role_name=role, role_id=None, scope=scope, principal_id="p", own_identity=True)
        return access.evaluate(policies, labels, [request], restricted_default=True)

    payments = {"team": "payments"}
    assert decide(payments, "Reader", f"{sub}/resourceGroups/payments-web") is None
    assert decide(payments, "Owner", f"{sub}/resourceGroups/payments-web") is not None  # baseline denies
    assert decide(payments, "Reader", sub) is not None  # a whole subscription: baseline allows none
    assert decide(payments, "Reader", f"{sub}/resourceGroups/search-web") is not None
    search = {"team": "search"}
    assert decide(search, "Key Vault Secrets User", f"{sub}/resourceGroups/search-web") is not None
