"""The API semantics of object writes and reads: what kube-apiserver's registry layer does.

Create, update, patch, apply and delete go through one write pipeline: server-owned metadata is kept,
status and main resource are separated when the status subresource is on, custom resources are pruned,
defaulted and validated against their schema (CEL rules included), `generation` bumps only on changes
outside metadata and status, writes that change nothing are not stored, and deletions honour finalizers.
Side effects of writing CRDs (serving their resources) and namespaces (termination) live here too.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime
import json
import random
import re
import uuid
from collections.abc import Mapping
from typing import Any

from kube_emulator import conversions, crd_rules, fields, patches, schema
from kube_emulator.errors import (
    ApiError,
    FieldError,
    already_exists,
    bad_request,
    conflict,
    invalid,
    not_found,
)
from kube_emulator.resources import Registry, ResourceType, crd_resource_types
from kube_emulator.selectors import FieldSelector, LabelSelector
from kube_emulator.store import JsonObject, StorageKey, Store

NAMESPACES: StorageKey = ("", "namespaces")
CRDS: StorageKey = ("apiextensions.k8s.io", "customresourcedefinitions")
IMMUTABLE_WHEN_SET: dict[StorageKey, tuple[str, ...]] = {
    ("", "configmaps"): ("data", "binaryData"),
    ("", "secrets"): ("data",),
}
"""Kinds whose `immutable: true` freezes these fields (and itself), as kube-apiserver validates updates."""

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SERVER_METADATA = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Top-level fields of the built-in kinds (besides apiVersion, kind, metadata). Their nested fields are not
# checked: unknown top-level fields are pruned, or rejected under strict field validation.
BUILTIN_FIELDS: dict[StorageKey, frozenset[str]] = {
    ("", "configmaps"): frozenset({"data", "binaryData", "immutable"}),
    ("", "secrets"): frozenset({"data", "stringData", "type", "immutable"}),
    ("", "namespaces"): frozenset({"spec", "status"}),
    ("", "serviceaccounts"): frozenset({"secrets", "imagePullSecrets", "automountServiceAccountToken"}),
    ("", "events"): frozenset(
        {
            "involvedObject",
            "reason",
            "message",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "type",
            "eventTime",
            "series",
            "action",
            "related",
            "reportingComponent",
            "reportingInstance",
        }
    ),
    ("coordination.k8s.io", "leases"): frozenset({"spec"}),
    ("", "pods"): frozenset({"spec", "status"}),
    ("", "services"): frozenset({"spec", "status"}),
    ("policy", "poddisruptionbudgets"): frozenset({"spec", "status"}),
    ("apiextensions.k8s.io", "customresourcedefinitions"): frozenset({"spec", "status"}),
    ("rbac.authorization.k8s.io", "roles"): frozenset({"rules"}),
    ("rbac.authorization.k8s.io", "clusterroles"): frozenset({"rules", "aggregationRule"}),
    ("rbac.authorization.k8s.io", "rolebindings"): frozenset({"subjects", "roleRef"}),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): frozenset({"subjects", "roleRef"}),
    ("apps", "deployments"): frozenset({"spec", "status"}),
}


def _prune_builtin(resource: ResourceType, candidate: JsonObject) -> list[str]:
    known = BUILTIN_FIELDS.get(resource.storage_key)
    unknown: list[str] = []
    metadata = candidate.get("metadata") or {}
    for key in list(metadata):
        if key not in schema.OBJECT_META_FIELDS:
            unknown.append(f"metadata.{key}")
            del metadata[key]
    if known is None:
        return unknown
    for key in list(candidate):
        if key not in known and key not in ("apiVersion", "kind", "metadata"):
            unknown.append(key)
            del candidate[key]
    return unknown


def _normalise_time(text: str, *, micro: bool) -> str:
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    moment = moment.astimezone(datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class WriteOptions:
    """Per-request knobs of a write, from its query parameters."""

    manager: str = "unknown"
    dry_run: bool = False
    field_validation: str = "Warn"  # Strict, Warn or Ignore
    force: bool = False


@dataclasses.dataclass
class WriteResult:
    obj: JsonObject
    created: bool = False
    warnings: list[str] = dataclasses.field(default_factory=list)


def present(resource: ResourceType, obj: JsonObject) -> JsonObject:
    """The stored object as served at `resource`'s version (only apiVersion differs between versions of a
    CRD; events.k8s.io Events are converted from core Events)."""
    if conversions.converts(resource.group, resource.kind):
        return conversions.to_served(resource.group, resource.version, resource.kind, obj)
    if obj.get("apiVersion") == resource.api_version:
        return obj
    return {**obj, "apiVersion": resource.api_version}


def _without_volatile(obj: Mapping[str, Any]) -> JsonObject:
    metadata = {
        k: v for k, v in (obj.get("metadata") or {}).items() if k not in ("resourceVersion", "managedFields")
    }
    return {**obj, "metadata": metadata}


class Api:
    """Reads and writes objects with kube-apiserver semantics on top of a `Store`."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self._orphaning = False  # set while a delete asked to orphan dependents (no garbage collection)

    # Reads -------------------------------------------------------------------------------------------

    def get(self, resource: ResourceType, namespace: str, name: str) -> JsonObject:
        obj = self.store.get(resource.storage_key, (namespace, name))
        if obj is None:
            raise not_found(resource.plural, resource.group, name)
        return present(resource, obj)

    def list(
        self,
        resource: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        field_selector: FieldSelector,
        *,
        limit: int = 0,
        continue_token: str = "",
    ) -> JsonObject:
        start_after: tuple[str, str] | None = None
        if continue_token:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                start_after = (decoded["namespace"], decoded["name"])
            except (ValueError, KeyError, TypeError) as error:
                raise ApiError(410, "Expired", "the provided continue parameter is too old") from error
        items: list[JsonObject] = []
        remaining = 0
        next_token = ""
        for obj in self.store.iter_objects(resource.storage_key, namespace):
            metadata = obj["metadata"]
            key = (metadata.get("namespace", ""), metadata["name"])
            if start_after is not None and key <= start_after:
                continue
            served = present(resource, obj)
            if not (labels.matches(served) and field_selector.matches(served)):
                continue
            if limit and len(items) >= limit:
                remaining += 1
                continue
            items.append(served)
        if remaining:
            last = items[-1]["metadata"]
            token = json.dumps({"namespace": last.get("namespace", ""), "name": last["name"]})
            next_token = base64.urlsafe_b64encode(token.encode()).decode()
        list_metadata: JsonObject = {"resourceVersion": str(self.store.resource_version)}
        if next_token:
            list_metadata["continue"] = next_token
            list_metadata["remainingItemCount"] = remaining
        return {
            "kind": resource.list_kind,
            "apiVersion": resource.api_version,
            "metadata": list_metadata,
            "items": items,
        }

    # Writes ------------------------------------------------------------------------------------------

    def _require_namespace(self, resource: ResourceType, namespace: str, *, creating: bool) -> None:
        if not resource.namespaced:
            return
        found = self.store.get(NAMESPACES, ("", namespace))
        if found is None:
            raise not_found("namespaces", "", namespace)
        if creating and found["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f'{resource.plural} "..." is forbidden: unable to create new content in namespace '
                f"{namespace} "
                "because it is being terminated",
                kind=resource.plural,
                group=resource.group,
            )

    def _check_identity(self, resource: ResourceType, body: Mapping[str, Any], namespace: str) -> None:
        kind = body.get("kind")
        if kind and kind != resource.kind:
            raise bad_request(
                f"the kind of the provided object ({kind}) does not match the resource ({resource.kind})"
            )
        api_version = body.get("apiVersion")
        if api_version and api_version != resource.api_version:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({resource.api_version})"
            )
        body_namespace = (body.get("metadata") or {}).get("namespace")
        if resource.namespaced and body_namespace and body_namespace != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )

    def _finish(
        self,
        resource: ResourceType,
        candidate: JsonObject,
        old: JsonObject | None,
        options: WriteOptions,
        *,
        subresource: str,
        owned: set[fields.Path] | None = None,
        operation: str = "Update",
    ) -> WriteResult:
        """Validate and store `candidate` (a private copy) as the new state of an object."""
        warnings: list[str] = []
        name = candidate["metadata"]["name"]
        errors: list[FieldError] = []
        if resource.custom and resource.schema:
            unknown, errors = schema.process(candidate, resource.schema, old)
        else:
            unknown = _prune_builtin(resource, candidate)
        if unknown or errors:
            if unknown and options.field_validation == "Strict":
                joined = ", ".join(f'unknown field "{path}"' for path in unknown)
                raise bad_request(
                    f'{resource.kind} in version "{resource.version}" cannot be handled as a '
                    f"{resource.kind}: "
                    f"strict decoding error: {joined}"
                )
            if unknown and options.field_validation == "Warn":
                warnings.extend(f'unknown field "{path}"' for path in unknown)
            if errors:
                raise invalid(resource.kind, resource.group, name, errors)
        self._validate_builtin(resource, candidate, old)
        if old is not None:
            if self._unchanged(old, candidate):
                return WriteResult(present(resource, old), warnings=warnings)
            if resource.has_generation:
                generation = int(old["metadata"].get("generation", 1))
                if self._spec_changed(resource, old, candidate):
                    generation += 1
                candidate["metadata"]["generation"] = generation
        elif resource.has_generation:
            candidate["metadata"]["generation"] = 1
        fields.record_update(
            old,
            candidate,
            manager=options.manager,
            operation=operation,
            subresource=subresource if subresource == "status" else "",
            api_version=resource.api_version,
            now=now(),
            owned=owned,
        )
        if options.dry_run:
            candidate["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"] if old else ""
            return WriteResult(present(resource, candidate), created=old is None, warnings=warnings)
        if (
            old is not None
            and old["metadata"].get("deletionTimestamp")
            and not candidate["metadata"].get("finalizers")
        ):
            # The write that removes the last finalizer is never stored: the object goes as it was last
            # stored, so the DELETED event still lists its finalizers (kube-apiserver's comes from etcd's
            # previous value). The writer gets back what it wrote.
            removed = self._remove(resource.storage_key, old)
            candidate["metadata"]["resourceVersion"] = removed["metadata"]["resourceVersion"]
            return WriteResult(present(resource, candidate), warnings=warnings)
        candidate["metadata"]["resourceVersion"] = str(self.store.next_resource_version())
        self._before_commit(resource, candidate, old)
        self.store.commit(resource.storage_key, "ADDED" if old is None else "MODIFIED", candidate, old)
        if old is None and resource.storage_key == NAMESPACES:
            self._create_default_service_account(candidate["metadata"]["name"])
        return WriteResult(present(resource, candidate), created=old is None, warnings=warnings)

    def _create_default_service_account(self, namespace: str) -> None:
        """What kube-controller-manager does for every new namespace (pods run as `default` unless told)."""
        accounts = self.registry.lookup("", "v1", "serviceaccounts")
        if accounts is not None and self.store.get(accounts.storage_key, (namespace, "default")) is None:
            self.create(
                accounts,
                namespace,
                {"metadata": {"name": "default"}},
                WriteOptions(manager="kube-controller-manager"),
            )

    @staticmethod
    def _unchanged(old: JsonObject, new: JsonObject) -> bool:
        return _without_volatile(old) == _without_volatile(new)

    @staticmethod
    def _spec_changed(resource: ResourceType, old: JsonObject, new: JsonObject) -> bool:
        ignored = (
            {"metadata", "status"} if resource.has_status_subresource or not resource.custom else {"metadata"}
        )
        old_rest = {k: v for k, v in old.items() if k not in ignored and k not in ("apiVersion",)}
        new_rest = {k: v for k, v in new.items() if k not in ignored and k not in ("apiVersion",)}
        return old_rest != new_rest or bool(
            new["metadata"].get("deletionTimestamp") and not old["metadata"].get("deletionTimestamp")
        )

    def create(
        self, resource: ResourceType, namespace: str, body: JsonObject, options: WriteOptions
    ) -> WriteResult:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be an object")
        self._check_identity(resource, body, namespace)
        candidate = copy.deepcopy(body)
        candidate["apiVersion"] = resource.api_version
        candidate["kind"] = resource.kind
        candidate = conversions.to_stored(resource.group, resource.kind, candidate)
        metadata = candidate.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise bad_request("metadata must be an object")
        if not metadata.get("name"):
            prefix = metadata.get("generateName")
            if not prefix:
                raise invalid(
                    resource.kind,
                    resource.group,
                    "",
                    [
                        FieldError(
                            "metadata.name",
                            "FieldValueRequired",
                            "Required value: name or generateName is required",
                        )
                    ],
                )
            for _ in range(10):
                metadata["name"] = prefix + "".join(random.choices(_GENERATE_ALPHABET, k=5))
                if (
                    self.store.get(
                        resource.storage_key, (namespace if resource.namespaced else "", metadata["name"])
                    )
                    is None
                ):
                    break
        self._validate_name(resource, metadata["name"])
        self._require_namespace(resource, namespace, creating=True)
        if resource.namespaced:
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        if (
            self.store.get(resource.storage_key, (metadata.get("namespace", ""), metadata["name"]))
            is not None
        ):
            raise already_exists(resource.plural, resource.group, metadata["name"])
        for key in (*_SERVER_METADATA, "resourceVersion", "selfLink", "managedFields"):
            metadata.pop(key, None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = now()
        if resource.has_status_subresource and resource.custom:
            candidate.pop("status", None)
        self._default_builtin(resource, candidate)
        return self._finish(resource, candidate, None, options, subresource="")

    def _validate_name(self, resource: ResourceType, name: str) -> None:
        pattern = _LABEL if resource.plural == "namespaces" else _SUBDOMAIN
        limit = 63 if resource.plural == "namespaces" else 253
        if len(name) > limit or not pattern.match(name):
            what = "RFC 1123 label" if resource.plural == "namespaces" else "RFC 1123 subdomain"
            raise invalid(
                resource.kind,
                resource.group,
                name,
                [
                    FieldError(
                        "metadata.name",
                        "FieldValueInvalid",
                        f'Invalid value: "{name}": a lowercase {what} must consist of lower case '
                        "alphanumeric "
                        "characters, '-' or '.', and must start and end with an alphanumeric character",
                    )
                ],
            )

    def _merge_for_update(
        self, resource: ResourceType, old: JsonObject, body: JsonObject, subresource: str
    ) -> JsonObject:
        """The candidate new state from a full replacement body, keeping what clients cannot change."""
        if subresource == "status":
            candidate = copy.deepcopy(old)
            if "status" in body:
                candidate["status"] = copy.deepcopy(body["status"])
            else:
                candidate.pop("status", None)
            return candidate
        candidate = copy.deepcopy(body)
        candidate["apiVersion"] = resource.api_version
        candidate["kind"] = resource.kind
        candidate = conversions.to_stored(resource.group, resource.kind, candidate)
        metadata = candidate.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise bad_request("metadata must be an object")
        old_metadata = old["metadata"]
        if metadata.get("name") not in (None, old_metadata["name"]):
            raise bad_request(
                f"the name of the object ({metadata.get('name')}) does not match the name on the URL "
                f"({old_metadata['name']})"
            )
        metadata["name"] = old_metadata["name"]
        if "namespace" in old_metadata:
            metadata["namespace"] = old_metadata["namespace"]
        for key in _SERVER_METADATA:
            if key in old_metadata:
                metadata[key] = old_metadata[key]
            else:
                metadata.pop(key, None)
        metadata.pop("selfLink", None)
        metadata["managedFields"] = old_metadata.get("managedFields", [])
        if resource.has_status_subresource and resource.custom:
            if "status" in old:
                candidate["status"] = copy.deepcopy(old["status"])
            else:
                candidate.pop("status", None)
        if old_metadata.get("deletionTimestamp"):
            added = set(metadata.get("finalizers") or []) - set(old_metadata.get("finalizers") or [])
            if added:
                raise invalid(
                    resource.kind,
                    resource.group,
                    old_metadata["name"],
                    [
                        FieldError(
                            "metadata.finalizers",
                            "FieldValueForbidden",
                            "Forbidden: no new finalizers can be added if the object is being deleted",
                        )
                    ],
                )
        if not metadata.get("finalizers"):
            metadata.pop("finalizers", None)
        self._default_builtin(resource, candidate)
        return candidate

    def _current(self, resource: ResourceType, namespace: str, name: str) -> JsonObject:
        self._require_namespace(resource, namespace, creating=False)
        old = self.store.get(resource.storage_key, (namespace if resource.namespaced else "", name))
        if old is None:
            raise not_found(resource.plural, resource.group, name)
        return old

    def update(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        body: JsonObject,
        options: WriteOptions,
        *,
        subresource: str = "",
    ) -> WriteResult:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be an object")
        self._check_identity(resource, body, namespace)
        old = self._current(resource, namespace, name)
        requested_version = (body.get("metadata") or {}).get("resourceVersion")
        if not requested_version and not resource.unconditional_update:
            # kube-apiserver names the resource (not the kind) in this message, and prints the missing
            # version as Go prints a zero uint64
            raise invalid(
                resource.plural,
                resource.group,
                name,
                [
                    FieldError(
                        "metadata.resourceVersion",
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        if requested_version and requested_version != old["metadata"]["resourceVersion"]:
            raise conflict(resource.plural, resource.group, name)
        candidate = self._merge_for_update(resource, old, body, subresource)
        return self._finish(resource, candidate, old, options, subresource=subresource)

    def patch(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        patch_type: str,
        patch_body: Any,
        options: WriteOptions,
        *,
        subresource: str = "",
    ) -> WriteResult:
        if patch_type == "apply":
            return self.apply(resource, namespace, name, patch_body, options, subresource=subresource)
        old = self._current(resource, namespace, name)
        served = present(resource, old)
        if patch_type == "json":
            patched = patches.apply_json_patch(served, patch_body)
        elif patch_type == "merge":
            patched = patches.apply_merge_patch(served, patch_body)
        elif patch_type == "strategic":
            if resource.custom:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: "
                    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                )
            patched = patches.apply_strategic_merge_patch(served, patch_body)
        else:
            raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {patch_type!r}")
        if not isinstance(patched, dict):
            raise bad_request("the patched object must be an object")
        patched_version = (patched.get("metadata") or {}).get("resourceVersion")
        if patched_version and patched_version != old["metadata"]["resourceVersion"]:
            raise conflict(resource.plural, resource.group, name)
        self._check_identity(resource, patched, namespace)
        candidate = self._merge_for_update(resource, old, patched, subresource)
        return self._finish(resource, candidate, old, options, subresource=subresource)

    def apply(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        applied: Any,
        options: WriteOptions,
        *,
        subresource: str = "",
    ) -> WriteResult:
        if not isinstance(applied, dict):
            raise bad_request("the applied configuration must be an object")
        self._check_identity(resource, applied, namespace)
        if not applied.get("apiVersion") or not applied.get("kind"):
            raise bad_request("apiVersion and kind must be set in an applied configuration")
        applied_name = (applied.get("metadata") or {}).get("name")
        if applied_name and applied_name != name:
            raise bad_request(
                f"the name of the object ({applied_name}) does not match the name on the URL ({name})"
            )
        old = self.store.get(resource.storage_key, (namespace if resource.namespaced else "", name))
        if old is None:
            if subresource:
                raise not_found(resource.plural, resource.group, name)
            body = copy.deepcopy(applied)
            body.setdefault("metadata", {})["name"] = name
            self._check_identity(resource, body, namespace)
            created = self.create(resource, namespace, body, dataclasses.replace(options, dry_run=True))
            stored = copy.deepcopy(created.obj)
            owned = fields.leaf_paths(applied)
            candidate = stored
            candidate["metadata"].pop("managedFields", None)
            candidate["metadata"].pop("generation", None)
            return self._finish(
                resource, candidate, None, options, subresource="", owned=owned, operation="Apply"
            )
        self._require_namespace(resource, namespace, creating=False)
        stored_form = conversions.to_stored(resource.group, resource.kind, applied)
        merged, owned = fields.server_side_apply(
            old, stored_form, manager=options.manager, force=options.force
        )
        candidate = self._merge_for_update(resource, old, merged, subresource)
        return self._finish(
            resource, candidate, old, options, subresource=subresource, owned=owned, operation="Apply"
        )

    def delete(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        options: Mapping[str, Any],
        *,
        dry_run: bool = False,
    ) -> JsonObject:
        old = self._current(resource, namespace, name)
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != old["metadata"]["uid"]:
            raise conflict(resource.plural, resource.group, name)
        if (
            preconditions.get("resourceVersion")
            and preconditions["resourceVersion"] != old["metadata"]["resourceVersion"]
        ):
            raise conflict(resource.plural, resource.group, name)
        if dry_run:
            return present(resource, old)
        self._orphaning = options.get("propagationPolicy") == "Orphan" or bool(
            options.get("orphanDependents")
        )
        try:
            return present(resource, self.delete_stored(resource.storage_key, old))
        finally:
            self._orphaning = False

    def delete_stored(self, key: StorageKey, old: JsonObject) -> JsonObject:
        """Delete a stored object: mark it when finalizers remain, remove it otherwise."""
        metadata = old["metadata"]
        if key == NAMESPACES:
            return self._terminate_namespace(old)
        if metadata.get("finalizers"):
            if metadata.get("deletionTimestamp"):
                return old
            marked = copy.deepcopy(old)
            marked["metadata"]["deletionTimestamp"] = now()
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            if "generation" in metadata:
                marked["metadata"]["generation"] = int(metadata["generation"]) + 1
            marked["metadata"]["resourceVersion"] = str(self.store.next_resource_version())
            self.store.commit(key, "MODIFIED", marked, old)
            return marked
        return self._remove(key, old)

    def _owner_exists(self, dependent: JsonObject, reference: Mapping[str, Any]) -> bool:
        group = str(reference.get("apiVersion", "")).rpartition("/")[0]
        namespace = dependent["metadata"].get("namespace", "")
        for resource in self.registry.all_resources():
            if resource.group == group and resource.kind == reference.get("kind"):
                found = self.store.get(
                    resource.storage_key,
                    (namespace if resource.namespaced else "", str(reference.get("name"))),
                )
                return found is not None and found["metadata"]["uid"] == reference.get("uid")
        return False

    def _remove(self, key: StorageKey, stored: JsonObject) -> JsonObject:
        """Remove a stored object; its DELETED event carries it as stored, at the deletion's version."""
        removed = copy.deepcopy(stored)
        removed["metadata"]["resourceVersion"] = str(self.store.next_resource_version())
        self.store.commit(key, "DELETED", removed, stored)
        if key == CRDS:
            self._on_crd_removed(removed)
        if not self._orphaning:
            self._collect_dependents(removed)
        namespace = removed["metadata"].get("namespace")
        if namespace:
            self._maybe_finish_namespace(namespace)
        return removed

    def _collect_dependents(self, owner: JsonObject) -> None:
        """Background garbage collection: delete objects whose only owners are gone."""
        uid = owner["metadata"]["uid"]
        namespace = owner["metadata"].get("namespace")
        for key in self.store.storage_keys():
            for obj in list(
                self.store.iter_objects(key, namespace) if namespace else self.store.iter_objects(key, None)
            ):
                references = obj["metadata"].get("ownerReferences") or []
                if not any(reference.get("uid") == uid for reference in references):
                    continue
                remaining = [reference for reference in references if reference.get("uid") != uid]
                if not any(self._owner_exists(obj, reference) for reference in remaining):
                    self.delete_stored(key, obj)

    # Namespaces --------------------------------------------------------------------------------------

    def _terminate_namespace(self, old: JsonObject) -> JsonObject:
        name = old["metadata"]["name"]
        if not old["metadata"].get("deletionTimestamp"):
            marked = copy.deepcopy(old)
            marked["metadata"]["deletionTimestamp"] = now()
            marked.setdefault("status", {})["phase"] = "Terminating"
            marked["metadata"]["resourceVersion"] = str(self.store.next_resource_version())
            self.store.commit(NAMESPACES, "MODIFIED", marked, old)
            for key in self.store.storage_keys():
                if key == NAMESPACES:
                    continue
                for obj in list(self.store.iter_objects(key, name)):
                    self.delete_stored(key, obj)
        current = self.store.get(NAMESPACES, ("", name))
        if current is not None and self._maybe_finish_namespace(name):
            return current
        return current if current is not None else old

    def _maybe_finish_namespace(self, namespace: str) -> bool:
        found = self.store.get(NAMESPACES, ("", namespace))
        if found is None or not found["metadata"].get("deletionTimestamp"):
            return False
        if self.store.count_in_namespace(namespace):
            return False
        if found["metadata"].get("finalizers"):
            return False
        self._remove(NAMESPACES, found)
        return True

    # Built-in kinds ----------------------------------------------------------------------------------

    def _default_builtin(self, resource: ResourceType, candidate: JsonObject) -> None:
        if resource.storage_key == ("", "secrets"):
            string_data = candidate.pop("stringData", None)
            if isinstance(string_data, dict):
                data = candidate.setdefault("data", {})
                for key, value in string_data.items():
                    data[key] = base64.b64encode(str(value).encode()).decode()
            candidate.setdefault("type", "Opaque")
        elif resource.storage_key in (("", "events"), ("events.k8s.io", "events")):
            # Timestamps are re-serialised the way Go's metav1.Time and MicroTime print them
            for field, micro in (("firstTimestamp", False), ("lastTimestamp", False), ("eventTime", True)):
                if isinstance(candidate.get(field), str):
                    candidate[field] = _normalise_time(candidate[field], micro=micro)
        elif resource.storage_key == NAMESPACES:
            candidate.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            status = candidate.setdefault("status", {})
            status["phase"] = "Terminating" if candidate["metadata"].get("deletionTimestamp") else "Active"
            candidate["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = candidate[
                "metadata"
            ]["name"]

    def _validate_builtin(
        self, resource: ResourceType, candidate: JsonObject, old: JsonObject | None
    ) -> None:
        if resource.storage_key in IMMUTABLE_WHEN_SET:
            self._check_immutable(resource, candidate, old)
        if resource.storage_key != CRDS:
            return
        name = candidate["metadata"]["name"]
        spec = candidate.get("spec") or {}
        names = spec.get("names") or {}
        errors: list[FieldError] = []
        for field, value in (
            ("spec.group", spec.get("group")),
            ("spec.names.plural", names.get("plural")),
            ("spec.names.kind", names.get("kind")),
        ):
            if not value:
                errors.append(FieldError(field, "FieldValueRequired", "Required value"))
        if spec.get("group") and names.get("plural") and name != f"{names['plural']}.{spec['group']}":
            errors.append(
                FieldError(
                    "metadata.name",
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                )
            )
        versions = spec.get("versions") or []
        if not versions:
            errors.append(
                FieldError(
                    "spec.versions",
                    "FieldValueInvalid",
                    "Invalid value: null: must have exactly one version marked as storage version",
                )
            )
        elif sum(1 for version in versions if version.get("storage")) != 1:
            errors.append(
                FieldError(
                    "spec.versions",
                    "FieldValueInvalid",
                    "Invalid value: must have exactly one version marked as storage version",
                )
            )
        for index, version in enumerate(versions):
            openapi = (version.get("schema") or {}).get("openAPIV3Schema")
            if not openapi:
                errors.append(
                    FieldError(
                        f"spec.versions[{index}].schema.openAPIV3Schema",
                        "FieldValueRequired",
                        "Required value: schemas are required",
                    )
                )
            else:
                for structural in crd_rules.check_schema(openapi, validate_default=schema.default_problems):
                    errors.append(
                        dataclasses.replace(
                            structural, field=f"spec.versions[{index}].schema.{structural.field}"
                        )
                    )
                errors.extend(crd_rules.check_printer_columns(version, f"spec.versions[{index}]"))
                for problem in schema.compile_schema_rules(openapi):
                    errors.append(
                        FieldError(
                            f"spec.versions[{index}].schema.{problem.split(':', 1)[0]}",
                            "FieldValueInvalid",
                            f"Invalid value: {problem.split(':', 1)[1].strip()}",
                        )
                    )
        if old is not None and spec.get("scope") != (old.get("spec") or {}).get("scope"):
            errors.append(FieldError("spec.scope", "FieldValueInvalid", "Invalid value: field is immutable"))
        if errors:
            raise invalid("CustomResourceDefinition", "apiextensions.k8s.io", name, errors)
        status = candidate.setdefault("status", {})
        status["acceptedNames"] = {k: v for k, v in names.items()}
        timestamp = (
            (old or {}).get("status", {}).get("conditions", [{}])[0].get("lastTransitionTime")
            if old
            else None
        )
        transition = timestamp or now()
        status["conditions"] = [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": transition,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": transition,
            },
        ]
        stored = set((old or {}).get("status", {}).get("storedVersions") or [])
        stored |= {version["name"] for version in versions if version.get("storage")}
        status["storedVersions"] = sorted(stored)

    @staticmethod
    def _check_immutable(resource: ResourceType, candidate: JsonObject, old: JsonObject | None) -> None:
        """An immutable ConfigMap or Secret keeps its data and stays immutable (ValidateConfigMapUpdate)."""
        if old is None or old.get("immutable") is not True:
            return
        forbidden = "Forbidden: field is immutable when `immutable` is set"
        errors = []
        if candidate.get("immutable") is not True:
            errors.append(FieldError("immutable", "FieldValueForbidden", forbidden))
        for field in IMMUTABLE_WHEN_SET[resource.storage_key]:
            if (candidate.get(field) or {}) != (old.get(field) or {}):
                errors.append(FieldError(field, "FieldValueForbidden", forbidden))
        if errors:
            kind = "ConfigMap" if resource.storage_key == ("", "configmaps") else "Secret"
            raise invalid(kind, "", candidate["metadata"]["name"], errors)

    def _before_commit(self, resource: ResourceType, candidate: JsonObject, old: JsonObject | None) -> None:
        if resource.storage_key == CRDS and not candidate["metadata"].get("deletionTimestamp"):
            self.registry.set_crd(candidate["metadata"]["name"], crd_resource_types(candidate))

    def _on_crd_removed(self, crd: JsonObject) -> None:
        spec = crd.get("spec") or {}
        key = (spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
        for obj in list(self.store.iter_objects(key, None)):
            final = copy.deepcopy(obj)
            final["metadata"]["resourceVersion"] = str(self.store.next_resource_version())
            self.store.commit(key, "DELETED", final, obj)
        self.store.drop_collection(key)
        self.registry.set_crd(crd["metadata"]["name"], [])

    def restore_registry(self) -> None:
        """Serve the resources of every stored CRD (after loading a saved state)."""
        for crd in self.store.iter_objects(CRDS, None):
            self.registry.set_crd(crd["metadata"]["name"], crd_resource_types(crd))
