"""OpenAPI v3 documents (`/openapi/v3` and one per group-version), as kubectl needs them.

`kubectl apply` reads them to learn that PATCH accepts the `fieldValidation` parameter (so validation
happens server-side), and `kubectl explain` renders a kind's schema from them. CRD kinds carry their
`openAPIV3Schema`; built-in kinds carry a loose schema (their fields are not validated here).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from kube_emulator.resources import Registry, ResourceType

JsonObject = dict[str, Any]

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
LIST_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"

_OBJECT_META_SCHEMA: JsonObject = {
    "description": "ObjectMeta is metadata that all persisted resources must have, which includes all "
    "objects users must create.",
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Name must be unique within a namespace."},
        "generateName": {
            "type": "string",
            "description": "Optional prefix the server uses to generate a unique name.",
        },
        "namespace": {
            "type": "string",
            "description": "Namespace defines the space within which each name must be unique.",
        },
        "uid": {
            "type": "string",
            "description": "UID is the unique in time and space value for this object.",
        },
        "resourceVersion": {
            "type": "string",
            "description": "An opaque value that represents the internal version of this object.",
        },
        "generation": {
            "type": "integer",
            "format": "int64",
            "description": "A sequence number representing a specific generation of the desired state.",
        },
        "creationTimestamp": {
            "type": "string",
            "format": "date-time",
            "description": "Time at which the object was created.",
        },
        "deletionTimestamp": {
            "type": "string",
            "format": "date-time",
            "description": "Time at which the object will be deleted.",
        },
        "deletionGracePeriodSeconds": {
            "type": "integer",
            "format": "int64",
            "description": "Seconds allowed for graceful termination.",
        },
        "labels": {
            "type": "object",
            "additionalProperties": {"type": "string", "default": ""},
            "description": "Map of string keys and values used to organize and categorize objects.",
        },
        "annotations": {
            "type": "object",
            "additionalProperties": {"type": "string", "default": ""},
            "description": "Unstructured key value map stored with a resource.",
        },
        "finalizers": {
            "type": "array",
            "items": {"type": "string", "default": ""},
            "x-kubernetes-list-type": "set",
            "description": "Must be empty before the object is deleted from the registry.",
        },
        "ownerReferences": {
            "type": "array",
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "description": "List of objects depended by this object.",
        },
        "managedFields": {
            "type": "array",
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "description": "Maps workflow-id and version to the fields that are managed by that workflow.",
        },
    },
}

_LIST_META_SCHEMA: JsonObject = {
    "description": "ListMeta describes metadata that synthetic resources must have.",
    "type": "object",
    "properties": {
        "resourceVersion": {"type": "string"},
        "continue": {"type": "string"},
        "remainingItemCount": {"type": "integer", "format": "int64"},
    },
}


def schema_name(resource: ResourceType, kind: str | None = None) -> str:
    prefix = ".".join(reversed(resource.group.split("."))) if resource.group else "io.k8s.api.core"
    return f"{prefix}.{resource.version}.{kind or resource.kind}"


def _gvk(resource: ResourceType, kind: str | None = None) -> list[JsonObject]:
    return [{"group": resource.group, "version": resource.version, "kind": kind or resource.kind}]


def kind_schema(resource: ResourceType) -> JsonObject:
    if resource.schema:
        document = copy.deepcopy(dict(resource.schema))
    else:
        document = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        document["description"] = f"{resource.kind} is a built-in {resource.api_version} kind."
    properties = document.setdefault("properties", {})
    properties["apiVersion"] = {
        "type": "string",
        "description": "APIVersion defines the versioned schema of this representation of an object.",
    }
    properties["kind"] = {
        "type": "string",
        "description": "Kind is a string value representing the REST resource this object represents.",
    }
    properties["metadata"] = {
        "allOf": [{"$ref": f"#/components/schemas/{OBJECT_META}"}],
        "default": {},
        "description": "Standard object's metadata.",
    }
    document["type"] = "object"
    document["x-kubernetes-group-version-kind"] = _gvk(resource)
    return document


def _list_schema(resource: ResourceType) -> JsonObject:
    return {
        "type": "object",
        "description": f"{resource.list_kind} is a list of {resource.kind}",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{schema_name(resource)}"}},
            "metadata": {"allOf": [{"$ref": f"#/components/schemas/{LIST_META}"}], "default": {}},
        },
        "x-kubernetes-group-version-kind": _gvk(resource, resource.list_kind),
    }


def _query(name: str, description: str, schema_type: str = "string") -> JsonObject:
    return {
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": schema_type, "uniqueItems": True},
    }


_WRITE_PARAMETERS = [
    _query("dryRun", "When present, indicates that modifications should not be persisted."),
    _query(
        "fieldManager",
        "fieldManager is a name associated with the actor or entity that is making these changes.",
    ),
    _query(
        "fieldValidation",
        "fieldValidation instructs the server on how to handle unknown or duplicate fields in the request.",
    ),
]


def _operation(
    resource: ResourceType,
    action: str,
    operation_id: str,
    *,
    kind: str | None = None,
    body: bool = False,
    patch: bool = False,
) -> JsonObject:
    reference = {"$ref": f"#/components/schemas/{schema_name(resource, kind)}"}
    operation: JsonObject = {
        "operationId": operation_id,
        "tags": [resource.group or "core"],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": resource.group,
            "version": resource.version,
            "kind": kind or resource.kind,
        },
    }
    if body or patch:
        operation["parameters"] = list(_WRITE_PARAMETERS)
    if patch:
        operation["parameters"].append(_query("force", "Force is going to force Apply requests.", "boolean"))
        content_types = [
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ]
        operation["requestBody"] = {
            "content": {content_type: {"schema": {"type": "object"}} for content_type in content_types},
            "required": True,
        }
    elif body:
        operation["requestBody"] = {"content": {"*/*": {"schema": reference}}, "required": True}
    return operation


def _paths(resource: ResourceType) -> JsonObject:
    base = f"/apis/{resource.group}/{resource.version}" if resource.group else f"/api/{resource.version}"
    scope = "/namespaces/{namespace}" if resource.namespaced else ""
    collection = f"{base}{scope}/{resource.plural}"
    item = f"{collection}/{{name}}"
    name = resource.kind
    parameters = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    if resource.namespaced:
        parameters.append({"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}})
    paths: JsonObject = {
        collection: {
            "get": _operation(resource, "list", f"list{name}", kind=resource.list_kind),
            "post": _operation(resource, "post", f"create{name}", body=True),
            "delete": _operation(resource, "deletecollection", f"deletecollection{name}"),
        },
        item: {
            "get": _operation(resource, "get", f"read{name}"),
            "put": _operation(resource, "put", f"replace{name}", body=True),
            "patch": _operation(resource, "patch", f"patch{name}", patch=True),
            "delete": _operation(resource, "delete", f"delete{name}"),
            "parameters": parameters,
        },
    }
    if resource.has_status_subresource:
        paths[f"{item}/status"] = {
            "get": _operation(resource, "get", f"read{name}Status"),
            "put": _operation(resource, "put", f"replace{name}Status", body=True),
            "patch": _operation(resource, "patch", f"patch{name}Status", patch=True),
            "parameters": parameters,
        }
    return paths


def group_version_document(registry: Registry, group: str, version: str) -> JsonObject | None:
    resources = registry.group_version_resources(group, version)
    if not resources:
        return None
    paths: JsonObject = {}
    schemas: JsonObject = {OBJECT_META: _OBJECT_META_SCHEMA, LIST_META: _LIST_META_SCHEMA}
    for resource in resources:
        paths.update(_paths(resource))
        schemas[schema_name(resource)] = kind_schema(resource)
        schemas[schema_name(resource, resource.list_kind)] = _list_schema(resource)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (payloads here are short: one-byte lengths suffice)."""
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


# An OpenAPI v2 document (gnostic protobuf, as kubectl downloads it) with no definitions: kubectl then
# skips client-side schema checks of kinds it cannot find and reports unmapped kinds as "no matches for
# kind", as against a real server before a CRD is installed. Validation itself happens server-side (v3).
OPENAPI_V2_PROTOBUF = (
    _field(1, b"2.0")
    + _field(2, _field(1, b"Kubernetes") + _field(2, b"v1.32.0"))
    + _field(8, b"")
    + _field(9, b"")
)
OPENAPI_V2_CONTENT_TYPE = "application/octet-stream"  # what kube-openapi answers the protobuf Accept with


def _path_key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def document_hash(document: Mapping[str, Any]) -> str:
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()[:64].upper()


def root_document(registry: Registry, hashes: Mapping[str, str]) -> JsonObject:
    paths: JsonObject = {}
    keys = {(r.group, r.version) for r in registry.all_resources()}
    for group, version in sorted(keys):
        key = _path_key(group, version)
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={hashes.get(key, '0')}"}
    return {"paths": paths}


class OpenApiCache:
    """Builds documents lazily and only again after the served set of resources changed."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._generation = -1
        self._documents: dict[str, bytes] = {}
        self._hashes: dict[str, str] = {}

    def _refresh(self) -> None:
        if self._generation == self._registry.generation:
            return
        self._documents.clear()
        self._hashes.clear()
        for group, version in {(r.group, r.version) for r in self._registry.all_resources()}:
            document = group_version_document(self._registry, group, version)
            if document is not None:
                key = _path_key(group, version)
                self._documents[key] = json.dumps(document).encode()
                self._hashes[key] = document_hash(document)
        self._generation = self._registry.generation

    def root(self) -> JsonObject:
        self._refresh()
        return root_document(self._registry, self._hashes)

    def document(self, key: str) -> bytes | None:
        self._refresh()
        return self._documents.get(key)
