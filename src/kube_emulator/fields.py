"""Field ownership (`metadata.managedFields`) and server-side apply.

Ownership is tracked per manager as a set of leaf paths: maps are granular, lists are atomic (owned as a
whole, like lists without `x-kubernetes-list-type: map|set`). Apply merges the applied configuration into
the live object, removes fields the same manager applied before and no longer applies (unless another
manager owns them), and reports conflicts with other managers unless forced.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from kube_emulator.errors import ApiError, FieldError

Path = tuple[str, ...]
JsonObject = dict[str, Any]

_UNMANAGED_METADATA = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "generateName",
    }
)


def leaf_paths(obj: Mapping[str, Any]) -> set[Path]:
    paths: set[Path] = set()

    def walk(value: Any, prefix: Path) -> None:
        if isinstance(value, Mapping) and value:
            for key, child in value.items():
                walk(child, (*prefix, key))
        else:
            paths.add(prefix)

    for key, value in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if key == "metadata" and isinstance(value, Mapping):
            for meta_key, meta_value in value.items():
                if meta_key not in _UNMANAGED_METADATA:
                    walk(meta_value, ("metadata", meta_key))
            continue
        walk(value, (key,))
    return paths


_ABSENT = object()


def get_path(obj: Any, path: Path) -> Any:
    current = obj
    for part in path:
        if not isinstance(current, Mapping) or part not in current:
            return _ABSENT
        current = current[part]
    return current


def delete_path(obj: JsonObject, path: Path) -> None:
    parents: list[tuple[JsonObject, str]] = []
    current: Any = obj
    for part in path[:-1]:
        if not isinstance(current, dict) or part not in current:
            return
        parents.append((current, part))
        current = current[part]
    if isinstance(current, dict):
        current.pop(path[-1], None)
    # Remove maps the deletion emptied, so an un-applied field leaves no `{}` behind
    for parent, key in reversed(parents):
        if parent[key] == {} and key not in ("metadata",):
            del parent[key]
        else:
            break


def changed_paths(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> set[Path]:
    return {path for path in leaf_paths(new) if old is None or get_path(old, path) != get_path(new, path)}


def to_fields_v1(paths: Iterable[Path]) -> JsonObject:
    tree: JsonObject = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return tree


def from_fields_v1(fields: Mapping[str, Any]) -> set[Path]:
    paths: set[Path] = set()

    def walk(node: Mapping[str, Any], prefix: Path) -> None:
        children = [key for key in node if key.startswith("f:")]
        if not children and prefix:
            paths.add(prefix)
        for key in children:
            walk(node[key], (*prefix, key[2:]))

    walk(fields, ())
    return paths


def _entries(obj: Mapping[str, Any]) -> list[JsonObject]:
    return list((obj.get("metadata") or {}).get("managedFields") or [])


def _entry_key(entry: Mapping[str, Any]) -> tuple[str, str, str]:
    return (entry.get("manager", ""), entry.get("operation", ""), entry.get("subresource", ""))


def record_update(
    old: Mapping[str, Any] | None,
    new: JsonObject,
    *,
    manager: str,
    operation: str,
    subresource: str,
    api_version: str,
    now: str,
    owned: set[Path] | None = None,
) -> None:
    """Give `manager` the fields this write set and take them from everyone else (in place on `new`)."""
    taken = changed_paths(old, new) if owned is None else owned
    live = leaf_paths(new)
    entries: list[JsonObject] = []
    mine: JsonObject | None = None
    for entry in _entries(old or {}):
        paths = from_fields_v1(entry.get("fieldsV1") or {})
        if _entry_key(entry) == (manager, operation, subresource):
            mine = entry
            continue
        remaining = {path for path in paths - taken if path in live}
        if remaining:
            entries.append({**entry, "fieldsV1": to_fields_v1(remaining)})
    previous = from_fields_v1(mine.get("fieldsV1") or {}) if mine and owned is None else set()
    my_paths = {path for path in (previous | taken) if path in live}
    if my_paths:
        entry = {
            "manager": manager,
            "operation": operation,
            "apiVersion": api_version,
            "time": now,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(my_paths),
        }
        if subresource:
            entry["subresource"] = subresource
        entries.append(entry)
    if entries:
        new.setdefault("metadata", {})["managedFields"] = entries
    else:
        new.get("metadata", {}).pop("managedFields", None)


def _deep_merge(target: Any, patch: Any) -> Any:
    if isinstance(target, dict) and isinstance(patch, Mapping):
        for key, value in patch.items():
            target[key] = _deep_merge(target.get(key), value)
        return target
    return copy.deepcopy(patch)


def server_side_apply(
    current: Mapping[str, Any], applied: Mapping[str, Any], *, manager: str, force: bool
) -> tuple[JsonObject, set[Path]]:
    """Merge an applied configuration into the live object; return it and the paths `manager` now owns.

    Raises 409 Conflict when another manager owns a field the configuration sets to a different value.
    """
    applied_paths = leaf_paths(applied)
    conflicts: list[tuple[str, Path]] = []
    previously_applied: set[Path] = set()
    others: set[Path] = set()
    for entry in _entries(current):
        paths = from_fields_v1(entry.get("fieldsV1") or {})
        if _entry_key(entry) == (manager, "Apply", ""):
            previously_applied = paths
            continue
        others |= paths
        for path in paths & applied_paths:
            if get_path(current, path) != get_path(applied, path):
                conflicts.append((entry.get("manager", ""), path))
    if conflicts and not force:
        causes = [
            FieldError(".".join(path), "FieldManagerConflict", f'conflict with "{owner}": .{".".join(path)}')
            for owner, path in conflicts
        ]
        summary = "\n".join(f"- {cause.message}" for cause in causes)
        raise ApiError(
            409,
            "Conflict",
            f"Apply failed with {len(causes)} conflict{'s' if len(causes) > 1 else ''}: {summary}",
            causes=causes,
        )
    merged = copy.deepcopy(dict(current))
    body = {key: value for key, value in applied.items() if key not in ("apiVersion", "kind")}
    _deep_merge(merged, body)
    for path in previously_applied - applied_paths - others:
        delete_path(merged, path)
    return merged, applied_paths
