"""In-process units of the emulator: JSON patch, merge and strategic merge patch, label and field
selectors (and which fields a custom resource may be selected by), printer-column JSONPath, and field
ownership for server-side apply."""

from __future__ import annotations

from typing import Any

import pytest

from kube_emulator import fields, patches, resources, selectors, tables
from kube_emulator.errors import ApiError


def test_json_patch_operations_and_failures() -> None:
    document = {"a": {"b": [1, 2]}, "c": "x"}
    patched = patches.apply_json_patch(
        document,
        [
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "replace", "path": "/c", "value": "y"},
            {"op": "copy", "from": "/c", "path": "/d"},
            {"op": "move", "from": "/a/b", "path": "/e"},
            {"op": "remove", "path": "/a"},
            {"op": "add", "path": "/f~1g", "value": True},
            {"op": "test", "path": "/e/2", "value": 3},
        ],
    )
    assert patched == {"c": "y", "d": "y", "e": [1, 2, 3], "f/g": True}
    assert document == {"a": {"b": [1, 2]}, "c": "x"}, "the input is never mutated"
    for failing in (
        [{"op": "test", "path": "/c", "value": "nope"}],
        [{"op": "remove", "path": "/missing"}],
        [{"op": "replace", "path": "/a/zz", "value": 1}],
    ):
        with pytest.raises(ApiError) as error:
            patches.apply_json_patch(document, failing)
        assert error.value.code == 422


def test_merge_and_strategic_merge_patches() -> None:
    current: dict[str, Any] = {
        "metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
        "secrets": [{"name": "one"}, {"name": "two"}],
        "list": [1, 2],
    }
    assert patches.apply_merge_patch(
        current, {"metadata": {"labels": {"a": None, "c": "3"}}, "list": [9]}
    ) == {
        "metadata": {"labels": {"b": "2", "c": "3"}, "finalizers": ["x"]},
        "secrets": [{"name": "one"}, {"name": "two"}],
        "list": [9],
    }
    strategic = patches.apply_strategic_merge_patch(
        current,
        {
            "metadata": {"finalizers": ["y"], "$deleteFromPrimitiveList/finalizers": ["x"]},
            "secrets": [{"name": "two", "$patch": "delete"}, {"name": "three"}],
            "list": [9],
        },
    )
    assert strategic["metadata"]["finalizers"] == ["y"]
    assert strategic["secrets"] == [{"name": "one"}, {"name": "three"}]
    assert strategic["list"] == [9]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["web-prod", "web-dev"]),
        ("app==web,env!=prod", ["web-dev"]),
        ("env in (prod, staging)", ["web-prod", "db"]),
        ("env notin (prod)", ["web-dev", "db", "bare"]),
        ("tier", ["db"]),
        ("!env", ["bare"]),
    ],
)
def test_label_selectors(selector: str, expected: list[str]) -> None:
    objects = [
        {"metadata": {"name": "web-prod", "labels": {"app": "web", "env": "prod"}}},
        {"metadata": {"name": "web-dev", "labels": {"app": "web", "env": "dev"}}},
        {"metadata": {"name": "db", "labels": {"app": "db", "env": "staging", "tier": "data"}}},
        {"metadata": {"name": "bare"}},
    ]
    parsed = selectors.parse_label_selector(selector)
    assert [obj["metadata"]["name"] for obj in objects if parsed.matches(obj)] == expected


def test_field_selectors() -> None:
    event = {
        "metadata": {"name": "e", "namespace": "n"},
        "involvedObject": {"name": "w", "uid": "u"},
        "source": {"component": "kopf"},
    }
    assert selectors.parse_field_selector("involvedObject.name=w,involvedObject.uid=u").matches(event)
    assert not selectors.parse_field_selector("involvedObject.name!=w").matches(event)
    assert selectors.parse_field_selector("source=kopf,metadata.namespace==n").matches(event)
    assert selectors.parse_field_selector("metadata.name=e").exact_name() == "e"


def test_custom_resources_are_selected_by_metadata_and_their_selectable_fields_only() -> None:
    version = {
        "name": "v1",
        "served": True,
        "storage": True,
        "selectableFields": [{"jsonPath": ".spec.color"}],
    }
    crd = {
        "spec": {
            "group": "example.dev",
            "names": {"plural": "gizmos", "kind": "Gizmo"},
            "versions": [version],
        }
    }
    (gizmos,) = resources.crd_resource_types(crd)
    known = gizmos.field_selectors
    gizmo = {"metadata": {"name": "g", "namespace": "n"}, "spec": {"color": "red", "size": 2}}
    assert selectors.parse_field_selector(
        "metadata.name=g,metadata.namespace=n,spec.color=red", known
    ).matches(gizmo)
    with pytest.raises(ApiError) as refused:
        selectors.parse_field_selector("spec.size=2", known)
    assert (refused.value.code, refused.value.reason) == (400, "BadRequest")
    assert refused.value.message == (
        '"spec.size" is not a known field selector: only "metadata.name", "metadata.namespace"'
    )
    configmaps = resources.Registry().lookup("", "v1", "configmaps")
    assert configmaps is not None
    assert configmaps.field_selectors is None


def test_printer_column_paths() -> None:
    obj = {
        "spec": {"items": [{"name": "a"}, {"name": "b"}]},
        "status": {
            "conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]
        },
    }
    assert tables.evaluate_path(obj, '.status.conditions[?(@.type=="Ready")].status') == ["True"]
    assert tables.evaluate_path(obj, ".spec.items[*].name") == ["a", "b"]
    assert tables.evaluate_path(obj, ".spec.items[1].name") == ["b"]
    assert tables.evaluate_path(obj, ".spec.missing") == []


def test_apply_removes_fields_a_manager_stops_applying_and_keeps_others() -> None:
    live: dict[str, Any] = {"metadata": {"name": "x"}, "spec": {"a": 1, "b": 2, "c": 3}}
    fields.record_update(
        None,
        live,
        manager="tool",
        operation="Apply",
        subresource="",
        api_version="v1",
        now="t",
        owned={("spec", "a"), ("spec", "b")},
    )
    fields.record_update(
        {**live},
        live,
        manager="editor",
        operation="Update",
        subresource="",
        api_version="v1",
        now="t",
        owned={("spec", "c")},
    )
    merged, owned = fields.server_side_apply(
        live, {"apiVersion": "v1", "kind": "K", "spec": {"a": 5}}, manager="tool", force=False
    )
    assert merged["spec"] == {"a": 5, "c": 3}
    assert owned == {("spec", "a")}
    with pytest.raises(ApiError) as conflict:
        fields.server_side_apply(
            live, {"apiVersion": "v1", "kind": "K", "spec": {"c": 4}}, manager="tool", force=False
        )
    assert conflict.value.code == 409
