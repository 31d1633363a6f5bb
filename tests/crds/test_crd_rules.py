"""Static checks of the CRDs in crds/ against what a real kube-apiserver 1.32 enforces, and against the code.

An API server refuses a CRD whose schema is not structural, whose list types are malformed, whose CEL
rules do not compile, use `oldSelf` where no old value correlates, or whose estimated CEL cost is over
its limits; and it silently prunes every field the schema does not declare. None of that shows in tests
against a lenient server, so the rules are encoded here.

The CEL cost estimate is the emulator's (`kube_emulator.cel_cost`, whose docstring gives the method: a
model of the apiserver's static estimator). The apiserver's limits are 10,000,000 per rule and
100,000,000 per CRD; the project's own budget here is a thousand times lower (today's CRDs total a few
hundred), so an edit that inflates a rule (an unbounded string read in a rule, a macro over a list
without maxItems) fails here long before a cluster would refuse the CRD.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import re
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from azure_identity_operator.api import access_policy as policy_api
from azure_identity_operator.api import federated_identity_credential as fic_api
from azure_identity_operator.api import role_assignment as ra_api
from azure_identity_operator.api import role_definition as rd_api
from azure_identity_operator.api import system_assigned_identity as sai_api
from azure_identity_operator.api import user_assigned_identity as uai_api
from azure_identity_operator.api import workload_identity as wi_api
from azure_identity_operator.handlers.policies import PolicyBook
from azure_identity_operator.status import conditions, outcome, report
from kube_emulator import cel, cel_cost, crd_rules, schema
from kube_emulator.cel_cost import estimate_rule_cost, rule_variables

REPO = Path(__file__).resolve().parents[2]
CRDS_DIR = REPO / "crds"
RECONCILERS_DIR = REPO / "src" / "azure_identity_operator" / "reconcilers"

PER_RULE_LIMIT = cel_cost.PER_RULE_LIMIT
PER_CRD_LIMIT = cel_cost.PER_CRD_LIMIT
PROJECT_RULE_BUDGET = 10_000
PROJECT_CRD_BUDGET = 100_000
COLUMN_TYPES_BY_SCHEMA_TYPE = {
    "string": {"string"},
    "integer": {"integer", "number"},
    "number": {"number"},
    "array": {"string"},  # kubectl prints a list as its JSON, e.g. ["Reader","Key Vault Secrets User"]
}
BUILT_IN_SHORT_NAMES = frozenset(
    {"cm", "cs", "csr", "crd", "crds", "deploy", "ds", "ep", "ev", "hpa", "ing", "limits", "netpol", "no",
     "ns", "pc", "pdb", "po", "psp", "pv", "pvc", "quota", "rc", "rs", "sa", "sc", "sts", "svc"}
)  # fmt: skip
CONDITION_TYPES = (conditions.READY, conditions.RECONCILING, conditions.STALLED)


# Loading ------------------------------------------------------------------------------------------------


def load_crds() -> dict[str, dict[str, Any]]:
    crds: dict[str, dict[str, Any]] = {}
    for path in sorted(CRDS_DIR.glob("identityoperator.dev_*.yaml")):
        crd = yaml.safe_load(path.read_text())
        crds[crd["spec"]["names"]["kind"]] = crd
    return crds


CRDS = load_crds()
POLICY_KIND = "IdentityAccessPolicy"
KINDS = sorted(CRDS)


def version_of(kind: str) -> dict[str, Any]:
    (version,) = CRDS[kind]["spec"]["versions"]
    return dict(version)


def root_schema(kind: str) -> dict[str, Any]:
    return dict(version_of(kind)["schema"]["openAPIV3Schema"])


@dataclasses.dataclass(frozen=True)
class Node:
    """One schema node, its path, and how many times a rule on it may run per object."""

    path: str
    schema: Mapping[str, Any]
    cardinality: float
    under_rule: bool


def walk(
    node: Mapping[str, Any], path: str = "", cardinality: float = 1, under_rule: bool = False
) -> Iterator[Node]:
    under_rule = under_rule or bool(node.get("x-kubernetes-validations"))
    yield Node(path, node, cardinality, under_rule)
    for name, child in (node.get("properties") or {}).items():
        yield from walk(child, f"{path}.{name}", cardinality, under_rule)
    additional = node.get("additionalProperties")
    if isinstance(additional, Mapping):
        bound = node.get("maxProperties", math.inf)
        yield from walk(additional, f"{path}[*]", cardinality * bound, under_rule)
    items = node.get("items")
    if isinstance(items, Mapping):
        yield from walk(items, f"{path}[]", cardinality * node.get("maxItems", math.inf), under_rule)


def all_nodes() -> Iterator[tuple[str, Node]]:
    for kind in KINDS:
        for node in walk(root_schema(kind)):
            yield kind, node


def all_rules() -> Iterator[tuple[str, Node, dict[str, Any]]]:
    for kind, node in all_nodes():
        for rule in node.schema.get("x-kubernetes-validations") or []:
            yield kind, node, rule


RULE_IDS = [f"{kind}{node.path or '.'}: {rule['rule']}" for kind, node, rule in all_rules()]


# Cost estimate ------------------------------------------------------------------------------------------


def crd_cost(kind: str) -> tuple[float, list[tuple[str, float]]]:
    rows = []
    for rule_kind, node, rule in all_rules():
        if rule_kind == kind:
            estimate = estimate_rule_cost(rule["rule"], rule_variables(node.schema, rule["rule"]))
            rows.append((f"{node.path or '.'}: {rule['rule']}", estimate.cost * node.cardinality))
    return sum(cost for _, cost in rows), rows


# Structural schema, list types, formats ---------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_structural_and_kube_apiserver_accepts_it(kind: str) -> None:
    problems = crd_rules.check_schema(root_schema(kind), validate_default=schema.default_problems)
    problems += crd_rules.check_printer_columns(version_of(kind), "spec.versions[0]")
    assert [problem.render() for problem in problems] == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_node_is_typed_and_objects_are_either_structs_or_maps(kind: str) -> None:
    for node in walk(root_schema(kind)):
        where = f"{kind}{node.path}"
        assert node.schema.get("type") in crd_rules.OPENAPI_TYPES, f"{where}: no type"
        assert not (node.schema.get("properties") and "additionalProperties" in node.schema), where
        assert "uniqueItems" not in node.schema, where
        assert "x-kubernetes-preserve-unknown-fields" not in node.schema, (
            f"{where}: nothing here is free-form"
        )
        if node.schema.get("type") == "array":
            assert isinstance(node.schema.get("items"), Mapping), f"{where}: arrays need one items schema"
        if node.path == ".metadata":
            assert dict(node.schema) == {"type": "object"}, "metadata may constrain only name/generateName"
        if "format" in node.schema:
            assert node.schema["format"] in crd_rules.SUPPORTED_FORMATS, where
        if "nullable" in node.schema:
            pytest.fail(f"{where}: nullable is unused by the operator; status removals are merge-patch nulls")


@pytest.mark.parametrize("kind", KINDS)
def test_defaults_validate_against_their_own_schema(kind: str) -> None:
    for node in walk(root_schema(kind)):
        if "default" in node.schema:
            assert schema.default_problems(node.schema["default"], node.schema) == [], f"{kind}{node.path}"
            assert node.path.startswith(".spec."), f"{kind}{node.path}: defaults belong in spec"


@pytest.mark.parametrize("kind", KINDS)
def test_list_types(kind: str) -> None:
    for node in walk(root_schema(kind)):
        list_type = node.schema.get("x-kubernetes-list-type")
        if list_type is None:
            assert "x-kubernetes-list-map-keys" not in node.schema
            continue
        items = node.schema["items"]
        if list_type == "set":
            assert items["type"] in crd_rules.SCALAR_TYPES, f"{kind}{node.path}: sets hold scalars"
        if list_type == "map":
            keys = node.schema["x-kubernetes-list-map-keys"]
            assert keys, f"{kind}{node.path}: a map list needs its keys"
            for key in keys:
                key_schema = items["properties"][key]
                assert key_schema["type"] in crd_rules.SCALAR_TYPES
                assert key in items.get("required", []) or "default" in key_schema, f"{kind}{node.path}.{key}"


@pytest.mark.parametrize("kind", KINDS)
def test_conditions_are_a_map_keyed_by_type(kind: str) -> None:
    conditions_schema = root_schema(kind)["properties"]["status"]["properties"]["conditions"]
    assert conditions_schema["x-kubernetes-list-type"] == "map"
    assert conditions_schema["x-kubernetes-list-map-keys"] == ["type"]
    assert {"type", "status"} <= set(conditions_schema["items"]["required"])


def test_the_checks_catch_what_kube_apiserver_refuses() -> None:
    """Each rule the checks above rely on, shown failing on a schema kube-apiserver refuses."""
    broken: dict[str, Any] = {
        "type": "object",
        "properties": {
            "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
            "spec": {
                "type": "object",
                "properties": {
                    "untyped": {"description": "no type"},
                    "both": {
                        "type": "object",
                        "properties": {"a": {"type": "string"}},
                        "additionalProperties": {"type": "string"},
                    },
                    "keyed": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                    },
                    "unkeyed": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "items": {"type": "object"},
                    },
                    "objects": {
                        "type": "array",
                        "x-kubernetes-list-type": "set",
                        "items": {"type": "object", "properties": {"a": {"type": "string"}}},
                    },
                    "atomic": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"a": {"type": "string"}},
                            "x-kubernetes-validations": [{"rule": "self.a == oldSelf.a"}],
                        },
                    },
                    "unique": {"type": "array", "uniqueItems": True, "items": {"type": "string"}},
                    "when": {"type": "string", "format": "rfc3339"},
                    "lookahead": {"type": "string", "pattern": "^(?!x)"},
                    "count": {"type": "integer", "default": "three"},
                    "ruled": {
                        "type": "object",
                        "properties": {"a": {"type": "string"}},
                        "x-kubernetes-validations": [
                            {"rule": "has(self.a)", "fieldPath": ".b", "reason": "Whatever"},
                            {"rule": "has(self.a)", "optionalOldSelf": True},
                            {"rule": "self.b == 'x'"},
                            {"rule": "self.a.toUpper() == 'X'"},
                        ],
                    },
                    "names": {
                        "type": "array",
                        "items": {"type": "string"},
                        "x-kubernetes-validations": [{"rule": "self.all(n, n.matches('^[a-z]+$'))"}],
                    },
                },
            },
        },
    }
    problems = {problem.field for problem in crd_rules.check_schema(broken, schema.default_problems)}
    spec = "openAPIV3Schema.properties[spec]"
    assert problems == {
        "openAPIV3Schema.properties[metadata]",
        "openAPIV3Schema.properties[metadata].properties[labels].type",
        f"{spec}.properties[untyped].type",
        f"{spec}.properties[both].additionalProperties",
        f"{spec}.properties[keyed].items.properties[name]",
        f"{spec}.properties[unkeyed].x-kubernetes-list-map-keys",
        f"{spec}.properties[objects].items.type",
        f"{spec}.properties[atomic].items.x-kubernetes-validations[0].rule",
        f"{spec}.properties[unique].uniqueItems",
        f"{spec}.properties[when].format",
        f"{spec}.properties[lookahead].pattern",
        f"{spec}.properties[count].default",
        f"{spec}.properties[ruled].x-kubernetes-validations[0].fieldPath",
        f"{spec}.properties[ruled].x-kubernetes-validations[0].reason",
        f"{spec}.properties[ruled].x-kubernetes-validations[1].optionalOldSelf",
        f"{spec}.properties[ruled].x-kubernetes-validations[2].rule",  # undefined field b
        f"{spec}.properties[ruled].x-kubernetes-validations[3].rule",  # toUpper() is no CEL function
        f"{spec}.properties[names].x-kubernetes-validations[0].rule",  # cost over the per-rule limit
        "openAPIV3Schema",  # total cost: the atomic list's rule may run for a million items
    }


# CEL rules ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "node", "rule"), list(all_rules()), ids=RULE_IDS)
def test_rule_compiles_uses_only_132_functions_and_declared_fields(
    kind: str, node: Node, rule: dict[str, Any]
) -> None:
    cel.compile_rule(rule["rule"])
    assert cel_cost.unknown_functions(rule["rule"]) == set(), "not in kube-apiserver 1.32's CEL environment"
    estimate = estimate_rule_cost(rule["rule"], rule_variables(node.schema, rule["rule"]))
    assert estimate.undeclared == [], "fields the schema does not declare (the apiserver's type check fails)"
    assert set(rule) <= {"rule", "message", "messageExpression", "reason", "fieldPath", "optionalOldSelf"}
    assert rule.get("message"), "every rule says what is wrong in words"
    if "oldSelf" in rule["rule"]:
        assert not re.search(r"\[\]", node.path), "transition rules only where old values correlate"


@pytest.mark.parametrize(("kind", "node", "rule"), list(all_rules()), ids=RULE_IDS)
def test_rule_reads_only_bounded_values_and_costs_little(kind: str, node: Node, rule: dict[str, Any]) -> None:
    estimate = estimate_rule_cost(rule["rule"], rule_variables(node.schema, rule["rule"]))
    assert estimate.unbounded == []
    assert math.isfinite(node.cardinality), "a rule under a list or map without maxItems/maxProperties"
    assert estimate.cost * node.cardinality <= PROJECT_RULE_BUDGET, estimate.cost
    assert estimate.cost <= PER_RULE_LIMIT


@pytest.mark.parametrize("kind", KINDS)
def test_crd_total_cost_is_far_below_the_apiserver_limit(kind: str) -> None:
    total, rows = crd_cost(kind)
    assert total <= PROJECT_CRD_BUDGET, rows
    assert total <= PER_CRD_LIMIT


@pytest.mark.parametrize("kind", KINDS)
def test_every_string_array_and_map_under_a_rule_is_bounded(kind: str) -> None:
    """Rules compare and traverse whole subtrees; the apiserver sizes each by its declared bounds."""
    for node in walk(root_schema(kind)):
        if not node.under_rule:
            continue
        where = f"{kind}{node.path}"
        node_type = node.schema.get("type")
        if node_type == "string":
            assert "maxLength" in node.schema or "enum" in node.schema, f"{where}: no maxLength"
        elif node_type == "array":
            assert "maxItems" in node.schema, f"{where}: no maxItems"
        elif node_type == "object" and "additionalProperties" in node.schema:
            assert "maxProperties" in node.schema, f"{where}: no maxProperties"


def test_the_cost_estimate_flags_what_the_apiserver_refuses() -> None:
    unbounded_list = {"type": "array", "items": {"type": "string"}}
    estimate = estimate_rule_cost("self.all(x, x.matches('^[a-z]+$'))", {"self": unbounded_list})
    assert estimate.unbounded
    assert estimate.cost > PER_RULE_LIMIT
    bounded_list = {"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 100}}
    estimate = estimate_rule_cost("self.all(x, x.matches('^[a-z]+$'))", {"self": bounded_list})
    assert estimate.unbounded == []
    assert estimate.cost < 1_000
    big = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert estimate_rule_cost("has(self.a) && size(self.a) > 1", {"self": big}).unbounded == []
    assert estimate_rule_cost("self.a == 'x'", {"self": big}).unbounded
    assert estimate_rule_cost("self.b == 'x'", {"self": big}).undeclared == ["self.b"]


# Names, printer columns, subresources ------------------------------------------------------------------


def test_names_scope_and_subresources() -> None:
    short_names: list[str] = []
    for kind, crd in CRDS.items():
        spec = crd["spec"]
        names = spec["names"]
        assert names["listKind"] == f"{kind}List"
        assert names["singular"] == kind.lower()
        assert names["plural"] == names["plural"].lower()
        if kind == POLICY_KIND:
            # Cluster-wide guardrails, not an identity: `kubectl get azureidentity` does not list them.
            assert spec["scope"] == "Cluster"
            assert set(names["categories"]) == {"azure"}
        else:
            assert spec["scope"] == "Namespaced"
            assert set(names["categories"]) == {"azure", "azureidentity"}
        short_names += names["shortNames"]
        versions = spec["versions"]
        assert [(v["name"], v["served"], v["storage"]) for v in versions] == [("v1alpha1", True, True)]
        assert versions[0]["subresources"] == {"status": {}}
    assert len(short_names) == len(set(short_names)), short_names
    assert not set(short_names) & BUILT_IN_SHORT_NAMES


def schema_at_json_path(root: Mapping[str, Any], json_path: str) -> Mapping[str, Any] | None:
    """The schema node a printer column's JSONPath reads (filters and indices step into list items)."""
    if json_path == ".metadata.creationTimestamp":
        return {"type": "string", "format": "date-time"}
    node: Mapping[str, Any] | None = root
    for name, bracket in re.findall(r"\.([A-Za-z_]\w*)|(\[[^\]]*\])", json_path):
        if node is None:
            return None
        node = node.get("items") if bracket else (node.get("properties") or {}).get(name)
    return node


@pytest.mark.parametrize("kind", KINDS)
def test_printer_columns_read_declared_fields_of_their_type(kind: str) -> None:
    columns = version_of(kind)["additionalPrinterColumns"]
    assert [column["name"] for column in columns][:2] == ["Ready", "Reason"]
    assert columns[-1] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    for column in columns:
        target = schema_at_json_path(root_schema(kind), column["jsonPath"])
        assert target is not None, f"{column['name']}: {column['jsonPath']} is not in the schema"
        if column["type"] == "date":
            assert target.get("format") == "date-time"
        else:
            assert column["type"] in COLUMN_TYPES_BY_SCHEMA_TYPE[target["type"]], column
        assert column.get("priority", 0) in (0, 1)


def test_a_default_role_assignment_line_fits_a_terminal_and_shows_the_requested_role() -> None:
    """An ARM scope runs to hundreds of characters: it is shown with `-o wide` only. The Role column reads
    `status.roleName`, which the operator reports even while the role is unresolved (the name requested)."""
    columns = {column["name"]: column for column in version_of("RoleAssignment")["additionalPrinterColumns"]}
    default = [name for name, column in columns.items() if column.get("priority", 0) == 0]
    assert default == ["Ready", "Reason", "Role", "Age"]
    assert columns["Scope"] == {"name": "Scope", "type": "string", "priority": 1, "jsonPath": ".spec.scope"}
    assert columns["Role"]["jsonPath"] == ".status.roleName"
    role_name = root_schema("RoleAssignment")["properties"]["status"]["properties"]["roleName"]
    assert role_name["type"] == "string"
    assert "spec.role requests" in role_name["description"]


@pytest.mark.parametrize("kind", KINDS)
def test_explain_has_a_description_for_every_field(kind: str) -> None:
    """`kubectl explain` shows these descriptions; only names of referenced objects go without one."""
    self_explained = (".identityRef.name", ".serviceAccountRef.name", ".configMap.name", ".identityRef.kind")
    missing = [
        node.path
        for node in walk(root_schema(kind))
        if node.path not in ("", ".metadata")
        and not node.path.endswith(("[]", "[*]", *self_explained))
        and not node.schema.get("description")
    ]
    assert missing == []
    assert root_schema(kind).get("description")


# The schema against the code ------------------------------------------------------------------------------


SPEC_MODELS: dict[str, type[pydantic.BaseModel]] = {
    "UserAssignedIdentity": uai_api.UserAssignedIdentitySpec,
    "FederatedIdentityCredential": fic_api.FederatedIdentityCredentialSpec,
    "RoleAssignment": ra_api.RoleAssignmentSpec,
    "SystemAssignedIdentity": sai_api.SystemAssignedIdentitySpec,
    "WorkloadIdentity": wi_api.WorkloadIdentitySpec,
    "RoleDefinition": rd_api.RoleDefinitionSpec,
    POLICY_KIND: policy_api.IdentityAccessPolicySpec,
}


def _nested_models(annotation: Any) -> list[type[pydantic.BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        return [model for argument in typing.get_args(annotation) for model in _nested_models(argument)]
    return []


def model_paths(model: type[pydantic.BaseModel], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, field in model.model_fields.items():
        alias = field.alias or name
        yield f"{prefix}.{alias}", field.annotation
        for nested in _nested_models(field.annotation):
            yield from model_paths(nested, f"{prefix}.{alias}")


@pytest.mark.parametrize("kind", KINDS)
def test_every_spec_field_the_operator_reads_is_declared_and_nothing_else(kind: str) -> None:
    """An undeclared field is pruned by the apiserver before the operator sees it; a declared field the
    operator ignores would be a setting that silently does nothing."""
    # A list's items are read through the list (`.roles.role` for `.roles[].role`); a map's values are not.
    declared = {
        node.path.removeprefix(".spec").replace("[]", "")
        for node in walk(root_schema(kind)["properties"]["spec"], ".spec")
        if "[*]" not in node.path and not node.path.endswith("[]")
    } - {""}
    read = {path for path, _ in model_paths(SPEC_MODELS[kind])}
    assert read - declared == set(), "read by the operator but pruned by the apiserver"
    assert declared - read == set(), "declared but never read by the operator"


def _dict_keys(candidates: list[ast.expr | None]) -> Iterator[str]:
    for candidate in candidates:
        for inner in ast.walk(candidate) if candidate is not None else ():
            if isinstance(inner, ast.Dict):
                yield from (key.value for key in inner.keys if isinstance(key, ast.Constant))


def _status_dict_keys(tree: ast.AST) -> Iterator[str]:
    """Keys of the dict literals reconcilers report as `observed` status (see `Outcome.observed`)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "observed":
            yield from _dict_keys([node.value])
        elif isinstance(node, ast.Assign):
            names = {target.id for target in node.targets if isinstance(target, ast.Name)}
            if names & {"observed", "GONE_FIELDS"}:
                yield from _dict_keys([node.value])
        elif isinstance(node, ast.FunctionDef) and node.name == "_observed":
            yield from _returned_keys(node)


def _returned_keys(function: ast.FunctionDef) -> Iterator[str]:
    yield from _dict_keys([node.value for node in ast.walk(function) if isinstance(node, ast.Return)])


STATUS_WRITERS = {
    "UserAssignedIdentity": ["user_assigned_identities.py", "attachments.py"],
    "FederatedIdentityCredential": ["federated_identity_credentials.py"],
    "RoleAssignment": ["role_assignments.py"],
    "SystemAssignedIdentity": ["system_assigned_identities.py"],
    "WorkloadIdentity": ["workload_identities.py"],
    "RoleDefinition": ["role_definitions.py"],
}


ADOPTING_KINDS = ("UserAssignedIdentity", "RoleAssignment")
"""The kinds that take over an Azure resource that existed before the object."""
ADOPTED_DESCRIPTION = (
    "true when the operator took over an Azure resource that existed before this object; false when it"
    " created it"
)


def status_fields_written(kind: str) -> set[str]:
    if kind == POLICY_KIND:
        # Written by the controller from what the policy book says, plus what every status has.
        fields = set(PolicyBook().status_of("any")) - {"problem"}
        return fields | {"observedGeneration", "conditions"}
    written: set[str] = set()
    for file_name in STATUS_WRITERS[kind]:
        written |= set(_status_dict_keys(ast.parse((RECONCILERS_DIR / file_name).read_text())))
    assert len(written) >= 2, "the scan found no status writes: the reconcilers changed shape, update it"
    return written


@pytest.mark.parametrize("kind", KINDS)
def test_every_status_field_the_operator_writes_is_declared(kind: str) -> None:
    """Undeclared status fields are pruned: the operator would see its status never settle and loop."""
    status = root_schema(kind)["properties"]["status"]["properties"]
    assert status_fields_written(kind) - set(status) == set()


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_that_adopts_declares_adopted_alike(kind: str) -> None:
    """`status.adopted` means one thing whichever kind reports it, so tools and readers can rely on it."""
    status = root_schema(kind)["properties"]["status"]["properties"]
    if kind in ADOPTING_KINDS or "adopted" in status_fields_written(kind):
        assert status.get("adopted") == {"type": "boolean", "description": ADOPTED_DESCRIPTION}
    else:
        assert "adopted" not in status


def test_every_attachment_entry_field_is_declared() -> None:
    tree = ast.parse((RECONCILERS_DIR / "attachments.py").read_text())
    (to_status,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "to_status"]
    entry_keys = set(_returned_keys(to_status))
    entry_schema = root_schema("UserAssignedIdentity")["properties"]["status"]["properties"]["attachments"]
    assert {"resourceId", "state"} <= entry_keys <= set(entry_schema["items"]["properties"])


@pytest.mark.parametrize("kind", KINDS)
def test_every_condition_the_operator_writes_fits_the_schema(kind: str) -> None:
    status_schema = root_schema(kind)["properties"]["status"]
    previous: dict[str, Any] | None = None
    for result in (
        outcome.not_ready("AzureError", "Azure refused", retry_after=5),
        outcome.not_ready("InvalidSpec", "fix the spec"),
        outcome.succeeded("done"),
    ):
        written = report.next_status(previous, result, generation=3, now="2026-01-02T03:04:05Z")
        validator = schema.Validator()
        validator.validate(written, status_schema, "status")
        assert validator.errors == []
        assert {condition["type"] for condition in written["conditions"]} <= set(CONDITION_TYPES)
        previous = written
    types_written = set()
    for result in (
        outcome.not_ready("AzureError", "x", retry_after=5),
        outcome.not_ready("InvalidSpec", "x"),
    ):
        types_written |= {
            c["type"] for c in report.next_status(None, result, generation=1, now="t")["conditions"]
        }
    assert types_written == set(CONDITION_TYPES)


def test_status_fields_dependants_read_are_declared_by_the_identity_kinds() -> None:
    uai_status = root_schema("UserAssignedIdentity")["properties"]["status"]["properties"]
    sai_status = root_schema("SystemAssignedIdentity")["properties"]["status"]["properties"]
    assert {"principalId", "clientId", "tenantId", "id"} <= set(uai_status)
    assert {"principalId", "tenantId", "resourceId"} <= set(sai_status)
    ra_status = set(root_schema("RoleAssignment")["properties"]["status"]["properties"])
    assert {
        field.alias or name for name, field in ra_api.RoleAssignmentStatus.model_fields.items()
    } <= ra_status
