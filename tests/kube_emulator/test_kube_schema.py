"""Structural schema processing in-process: pruning, defaults, OpenAPI keyword validation, and the CEL
rules CRDs of this project use (transition rules with oldSelf, one-of, regex, size, string functions)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kube_emulator import schema

SPEC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["name"],
            "x-kubernetes-validations": [
                {"rule": "self.name == oldSelf.name", "message": "name is immutable"},
                {
                    "rule": "!has(oldSelf.location) || has(self.location)",
                    "message": "location cannot be unset",
                },
                {
                    "rule": "has(self.principalId) != has(self.principalName)",
                    "message": "set exactly one principal",
                },
            ],
            "properties": {
                "name": {
                    "type": "string",
                    "maxLength": 24,
                    "x-kubernetes-validations": [
                        {
                            "rule": "self.matches('^[a-z][a-z0-9-]*$')",
                            "message": "lowercase letters, digits, dashes",
                        },
                        {"rule": "self.lowerAscii() == self", "message": "must be lowercase"},
                    ],
                },
                "location": {"type": "string", "enum": ["westeurope", "eastus"]},
                "principalId": {"type": "string", "pattern": "^[0-9a-f-]{36}$"},
                "principalName": {"type": "string"},
                "scope": {
                    "type": "string",
                    "x-kubernetes-validations": [
                        {"rule": "self.startsWith('/subscriptions/')", "message": "scope must be an ARM ID"}
                    ],
                },
                "tags": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "x-kubernetes-validations": [{"rule": "size(self) <= 2", "message": "at most two tags"}],
                },
                "replicas": {"type": "integer", "minimum": 1, "maximum": 5, "default": 1},
                "mode": {"type": "string", "default": "Managed"},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        },
        "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
    },
}


def resource(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.dev/v1", "kind": "Thing", "metadata": {"name": "x"}, "spec": spec}


def messages(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    _unknown, errors = schema.process(obj, SPEC_SCHEMA, old)
    return [error.render() for error in errors]


def test_defaults_are_applied_and_unknown_fields_pruned_and_reported() -> None:
    obj = resource(name="a", principalId="0" * 36, extra=1, free={"anything": {"goes": True}})
    obj["metadata"]["bogus"] = "x"
    unknown, errors = schema.process(obj, SPEC_SCHEMA, None)
    assert errors == []
    assert sorted(unknown) == ["metadata.bogus", "spec.extra"]
    assert obj["spec"] == {
        "name": "a",
        "principalId": "0" * 36,
        "free": {"anything": {"goes": True}},
        "replicas": 1,
        "mode": "Managed",
    }


def test_openapi_keywords_are_enforced_with_kubernetes_messages() -> None:
    found = messages(resource(name="a", principalId="nope", location="mars", replicas=9))
    assert 'spec.location: Unsupported value: "mars": supported values: "westeurope", "eastus"' in found
    assert "spec.replicas: Invalid value: 9: spec.replicas in body should be less than or equal to 5" in found
    assert any(
        message.startswith('spec.principalId: Invalid value: "nope": spec.principalId in body should match')
        for message in found
    )
    assert messages(resource(principalId="0" * 36)) == ["spec.name: Required value"]
    assert messages(resource(name="a", principalId="0" * 36, replicas="two")) == [
        'spec.replicas: Invalid value: "two": spec.replicas in body must be of type integer: "string"'
    ]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"name": "Bad_Name", "principalId": "0" * 36},
            'spec.name: Invalid value: "Bad_Name": lowercase letters, digits, dashes',
        ),
        ({"name": "ABC", "principalId": "0" * 36}, 'spec.name: Invalid value: "ABC": must be lowercase'),
        ({"name": "a"}, 'spec: Invalid value: "object": set exactly one principal'),
        (
            {"name": "a", "principalId": "0" * 36, "principalName": "b"},
            'spec: Invalid value: "object": set exactly one principal',
        ),
        (
            {"name": "a", "principalName": "b", "scope": "/tenants/x"},
            'spec.scope: Invalid value: "/tenants/x": scope must be an ARM ID',
        ),
        (
            {"name": "a", "principalName": "b", "tags": {"a": "1", "b": "2", "c": "3"}},
            'spec.tags: Invalid value: "object": at most two tags',
        ),
    ],
)
def test_cel_rules_reject_what_they_should(spec: dict[str, Any], expected: str) -> None:
    assert expected in messages(resource(**spec))


def test_cel_rules_accept_valid_objects() -> None:
    assert messages(resource(name="ok-1", principalName="b", scope="/subscriptions/1", tags={"a": "1"})) == []


def test_transition_rules_see_old_self_only_on_update() -> None:
    old = resource(name="first", principalName="p", location="eastus")
    schema.process(old, SPEC_SCHEMA, None)
    renamed = copy.deepcopy(old)
    renamed["spec"]["name"] = "second"
    assert 'spec: Invalid value: "object": name is immutable' in messages(renamed, old)
    unset = copy.deepcopy(old)
    del unset["spec"]["location"]
    assert 'spec: Invalid value: "object": location cannot be unset' in messages(unset, old)
    unchanged = copy.deepcopy(old)
    assert messages(unchanged, old) == []


def test_updates_ratchet_values_that_were_stored_before() -> None:
    old = resource(
        name="legacy", principalName="p", replicas=9, scope="/tenants/t"
    )  # stored under laxer rules
    updated = copy.deepcopy(old)
    updated["spec"]["location"] = "eastus"
    assert messages(updated, old) == []
    updated["spec"]["replicas"] = 8
    assert messages(updated, old) == [
        "spec.replicas: Invalid value: 8: spec.replicas in body should be less than or equal to 5"
    ]


@pytest.mark.parametrize(
    ("field_schema", "good", "bad"),
    [
        ({"type": "string", "format": "date-time"}, "2026-01-02T03:04:05.123456+00:00", "yesterday"),
        ({"type": "string", "format": "uuid"}, "6f1c2a4e-0000-4000-8000-000000000001", "not-a-uuid"),
        ({"type": "string", "format": "byte"}, "aGVsbG8=", "not base64!"),
        ({"type": "integer", "format": "int32"}, 2**31 - 1, 2**31),
    ],
)
def test_formats_are_checked(field_schema: dict[str, Any], good: Any, bad: Any) -> None:
    document = {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"x": field_schema}}},
    }
    assert schema.process(resource(x=good), document, None)[1] == []
    _unknown, errors = schema.process(resource(x=bad), document, None)
    assert [error.render() for error in errors] == [
        f"spec.x: Invalid value: {json.dumps(bad)}: spec.x in body must be of type {field_schema['format']}: "
        f"{json.dumps(bad)}"
    ]
