"""The kinds the emulator serves: built-in resources, CRD-defined ones, and the discovery documents.

A `ResourceType` describes one served (group, version, plural). Several versions of a CRD share one
storage (objects are stored once and only their `apiVersion` changes on the way out, as with a CRD whose
conversion strategy is `None`). The `Registry` answers discovery (`/api`, `/apis`, group-version lists).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

JsonObject = dict[str, Any]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = ("get", "patch", "update")


@dataclasses.dataclass(frozen=True)
class PrinterColumn:
    """One column of the server-side Table `kubectl get` renders (a CRD's `additionalPrinterColumns`)."""

    name: str
    type: str
    json_path: str
    description: str = ""
    format: str = ""
    priority: int = 0


@dataclasses.dataclass(frozen=True)
class ResourceType:
    """One served resource: where it lives in the URL space, its names, and how to treat its objects."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    schema: Mapping[str, Any] | None = None
    printer_columns: tuple[PrinterColumn, ...] = ()
    custom: bool = False
    has_generation: bool = False
    verbs: tuple[str, ...] = ALL_VERBS
    stored_as: tuple[str, str] | None = None  # (group, plural) of another resource that holds the objects
    # False where kube-apiserver's strategy refuses a PUT without metadata.resourceVersion (custom
    # resources and CRDs); most built-in kinds take one as "replace whatever is stored"
    unconditional_update: bool = True
    selectable_fields: tuple[str, ...] = ()  # a CRD version's selectableFields, as field selector paths

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> tuple[str, str]:
        return self.stored_as or (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def has_status_subresource(self) -> bool:
        return "status" in self.subresources

    @property
    def field_selectors(self) -> frozenset[str] | None:
        """The fields a field selector may name; None for built-in kinds, which accept any field path."""
        if not self.custom:
            return None
        return frozenset(METADATA_FIELD_SELECTORS + self.selectable_fields)


_AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp")

# What every custom resource can be selected by, besides its CRD's selectableFields
METADATA_FIELD_SELECTORS = ("metadata.name", "metadata.namespace")


def _builtin(
    group: str,
    version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short_names: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    subresources: Iterable[str] = (),
    columns: tuple[PrinterColumn, ...] = (_AGE,),
    has_generation: bool = False,
    stored_as: tuple[str, str] | None = None,
    unconditional_update: bool = True,
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        short_names=short_names,
        categories=categories,
        subresources=frozenset(subresources),
        printer_columns=columns,
        has_generation=has_generation,
        stored_as=stored_as,
        unconditional_update=unconditional_update,
    )


def builtin_resources() -> list[ResourceType]:
    """The built-in resources an operator and its users touch; they are stored without schema checks."""
    return [
        _builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            namespaced=False,
            short_names=("ns",),
            subresources=("status", "finalize"),
            columns=(PrinterColumn("Status", "string", ".status.phase"), _AGE),
        ),
        _builtin(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            short_names=("cm",),
            columns=(PrinterColumn("Data", "integer", "#count:data,binaryData"), _AGE),
        ),
        _builtin(
            "",
            "v1",
            "secrets",
            "Secret",
            columns=(
                PrinterColumn("Type", "string", ".type"),
                PrinterColumn("Data", "integer", "#count:data"),
                _AGE,
            ),
        ),
        _builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            short_names=("sa",),
            subresources=("token",),
            columns=(PrinterColumn("Secrets", "integer", "#count:secrets"), _AGE),
        ),
        _builtin(
            "",
            "v1",
            "events",
            "Event",
            short_names=("ev",),
            columns=(
                PrinterColumn("Last Seen", "date", "#lastseen"),
                PrinterColumn("Type", "string", ".type"),
                PrinterColumn("Reason", "string", ".reason"),
                PrinterColumn("Object", "string", "#involvedobject"),
                PrinterColumn("Message", "string", ".message"),
            ),
        ),
        _builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            short_names=("ev",),
            columns=(
                PrinterColumn("Type", "string", ".type"),
                PrinterColumn("Reason", "string", ".reason"),
                PrinterColumn("Note", "string", ".note"),
                _AGE,
            ),
            stored_as=("", "events"),
        ),
        # Stored only (nothing schedules or runs them): served so `kubectl get pods`, `get all` and
        # `cluster-info` answer as on a cluster.
        _builtin(
            "",
            "v1",
            "pods",
            "Pod",
            short_names=("po",),
            categories=("all",),
            subresources=("status",),
            columns=(PrinterColumn("Status", "string", ".status.phase"), _AGE),
        ),
        _builtin(
            "",
            "v1",
            "services",
            "Service",
            short_names=("svc",),
            categories=("all",),
            subresources=("status",),
            columns=(
                PrinterColumn("Type", "string", ".spec.type"),
                PrinterColumn("Cluster-IP", "string", ".spec.clusterIP"),
                _AGE,
            ),
        ),
        _builtin(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            short_names=("pdb",),
            subresources=("status",),
            has_generation=True,
        ),
        _builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            columns=(PrinterColumn("Holder", "string", ".spec.holderIdentity"), _AGE),
        ),
        _builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            namespaced=False,
            short_names=("crd", "crds"),
            categories=("api-extensions",),
            subresources=("status",),
            columns=(
                PrinterColumn("Created At", "string", ".metadata.creationTimestamp", format="date-time"),
            ),
            has_generation=True,
            unconditional_update=False,
        ),
        _builtin("rbac.authorization.k8s.io", "v1", "roles", "Role"),
        _builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
        _builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
        _builtin(
            "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False
        ),
        _builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            short_names=("deploy",),
            categories=("all",),
            subresources=("status",),
            has_generation=True,
        ),
    ]


_VERSION_PATTERN = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key that puts versions in Kubernetes' preferred order: GA, then beta, then alpha, newest first."""
    match = _VERSION_PATTERN.match(version)
    if not match:
        return (3, 0, 0, version)
    major = int(match.group(1))
    stage = {None: 0, "beta": 1, "alpha": 2}[match.group(2)]
    minor = int(match.group(3) or 0)
    return (stage, -major, -minor, version)


def crd_resource_types(crd: Mapping[str, Any]) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition serves, one per served version."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group", "")
    kind = names.get("kind", "")
    plural = names.get("plural", "")
    result: list[ResourceType] = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = set((version.get("subresources") or {}).keys())
        columns = tuple(
            PrinterColumn(
                name=column.get("name", ""),
                type=column.get("type", "string"),
                json_path=column.get("jsonPath", ""),
                description=column.get("description", ""),
                format=column.get("format", ""),
                priority=int(column.get("priority", 0)),
            )
            for column in version.get("additionalPrinterColumns") or []
        )
        if not version.get("additionalPrinterColumns"):
            columns = (_AGE,)
        result.append(
            ResourceType(
                group=group,
                version=version.get("name", ""),
                plural=plural,
                singular=names.get("singular") or kind.lower(),
                kind=kind,
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=frozenset(subresources),
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=columns,
                custom=True,
                has_generation=True,
                unconditional_update=False,
                selectable_fields=tuple(
                    str(field.get("jsonPath", "")).lstrip(".")
                    for field in version.get("selectableFields") or []
                ),
            )
        )
    return result


class Registry:
    """Every served resource type, indexed for URL routing and discovery."""

    def __init__(self) -> None:
        self._by_group_version: dict[tuple[str, str], dict[str, ResourceType]] = {}
        self._crd_owned: dict[str, list[ResourceType]] = {}
        self.generation = 0  # bumps whenever the served set changes (used for OpenAPI document hashes)
        for resource in builtin_resources():
            self._add(resource)

    def _add(self, resource: ResourceType) -> None:
        self._by_group_version.setdefault((resource.group, resource.version), {})[resource.plural] = resource

    def _remove(self, resource: ResourceType) -> None:
        key = (resource.group, resource.version)
        plurals = self._by_group_version.get(key, {})
        plurals.pop(resource.plural, None)
        if not plurals:
            self._by_group_version.pop(key, None)

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_group_version.get((group, version), {}).get(plural)

    def has_group_version(self, group: str, version: str) -> bool:
        return (group, version) in self._by_group_version

    def group_version_resources(self, group: str, version: str) -> list[ResourceType]:
        return sorted(self._by_group_version.get((group, version), {}).values(), key=lambda r: r.plural)

    def all_resources(self) -> list[ResourceType]:
        return [resource for plurals in self._by_group_version.values() for resource in plurals.values()]

    def versions_of(self, group: str, plural: str) -> list[ResourceType]:
        found = [r for r in self.all_resources() if r.group == group and r.plural == plural]
        return sorted(found, key=lambda r: version_priority(r.version))

    def set_crd(self, crd_name: str, resources: list[ResourceType]) -> None:
        for old in self._crd_owned.pop(crd_name, []):
            self._remove(old)
        for resource in resources:
            self._add(resource)
        if resources:
            self._crd_owned[crd_name] = resources
        self.generation += 1

    def groups(self) -> dict[str, list[str]]:
        """Group name → served versions in preferred order (the core group is left out)."""
        versions: dict[str, set[str]] = {}
        for group, version in self._by_group_version:
            if group:
                versions.setdefault(group, set()).add(version)
        return {group: sorted(found, key=version_priority) for group, found in sorted(versions.items())}

    # Discovery documents -----------------------------------------------------------------------------

    def api_versions(self) -> JsonObject:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        }

    def api_group(self, group: str) -> JsonObject | None:
        versions = self.groups().get(group)
        if not versions:
            return None
        entries = [{"groupVersion": f"{group}/{version}", "version": version} for version in versions]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": entries,
            "preferredVersion": entries[0],
        }

    def api_group_list(self) -> JsonObject:
        groups = []
        for group in self.groups():
            document = self.api_group(group)
            assert document is not None
            document.pop("kind")
            document.pop("apiVersion")
            groups.append(document)
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def api_resource_list(self, group: str, version: str) -> JsonObject | None:
        if not self.has_group_version(group, version):
            return None
        resources: list[JsonObject] = []
        for resource in self.group_version_resources(group, version):
            entry: JsonObject = {
                "name": resource.plural,
                "singularName": resource.singular,
                "namespaced": resource.namespaced,
                "kind": resource.kind,
                "verbs": list(resource.verbs),
            }
            if resource.short_names:
                entry["shortNames"] = list(resource.short_names)
            if resource.categories:
                entry["categories"] = list(resource.categories)
            entry["storageVersionHash"] = ""
            resources.append(entry)
            for subresource in sorted(resource.subresources):
                sub_entry: JsonObject = {
                    "name": f"{resource.plural}/{subresource}",
                    "singularName": "",
                    "namespaced": resource.namespaced,
                    "kind": resource.kind,
                    "verbs": list(SUBRESOURCE_VERBS),
                }
                if subresource == "token":
                    sub_entry.update(group="authentication.k8s.io", version="v1", kind="TokenRequest")
                    sub_entry["verbs"] = ["create"]
                if subresource == "finalize":
                    sub_entry["verbs"] = ["update"]
                resources.append(sub_entry)
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }
