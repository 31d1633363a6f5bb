"""The patch formats kubectl, kopf and the kubernetes client send: JSON patch (RFC 6902), JSON merge patch
(RFC 7386) and strategic merge patch (for built-in kinds).

Patches work on deep copies: stored objects are never mutated in place, so readers can share them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from kube_emulator.errors import ApiError, bad_request

# Strategic-merge list keys of the fields the built-in kinds served here carry ("" = list of scalars
# merged as a set). Lists not listed are replaced whole, as for lists without a patch strategy.
STRATEGIC_MERGE_KEYS: dict[str, str] = {
    "finalizers": "",
    "ownerReferences": "uid",
    "secrets": "name",
    "imagePullSecrets": "name",
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
}


def _unprocessable(message: str) -> ApiError:
    return ApiError(422, "Invalid", message)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _unprocessable(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _resolve_parent(document: Any, parts: list[str], path: str) -> Any:
    current = document
    for part in parts[:-1]:
        if isinstance(current, dict):
            if part not in current:
                raise _unprocessable(f"jsonpatch: path {path!r} does not exist: missing key {part!r}")
            current = current[part]
        elif isinstance(current, list):
            index = _list_index(current, part, path, allow_end=False)
            current = current[index]
        else:
            raise _unprocessable(f"jsonpatch: path {path!r} does not exist")
    return current


def _list_index(container: list[Any], part: str, path: str, *, allow_end: bool) -> int:
    if part == "-" and allow_end:
        return len(container)
    if not part.isdigit():
        raise _unprocessable(f"jsonpatch: invalid array index {part!r} in {path!r}")
    index = int(part)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise _unprocessable(f"jsonpatch: array index {index} out of bounds in {path!r}")
    return index


def _get(document: Any, path: str) -> Any:
    current = document
    for part in _pointer(path):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list):
            current = current[_list_index(current, part, path, allow_end=False)]
        else:
            raise _unprocessable(f"jsonpatch: path {path!r} does not exist")
    return current


def _add(document: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _resolve_parent(document, parts, path)
    if isinstance(parent, dict):
        parent[parts[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, parts[-1], path, allow_end=True), value)
    else:
        raise _unprocessable(f"jsonpatch add operation does not apply: doc is missing path: {path!r}")
    return document


def _remove(document: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise _unprocessable("jsonpatch: cannot remove the whole document")
    parent = _resolve_parent(document, parts, path)
    if isinstance(parent, dict):
        if parts[-1] not in parent:
            raise _unprocessable(f"jsonpatch remove operation does not apply: doc is missing path: {path!r}")
        del parent[parts[-1]]
    elif isinstance(parent, list):
        del parent[_list_index(parent, parts[-1], path, allow_end=False)]
    else:
        raise _unprocessable(f"jsonpatch remove operation does not apply: doc is missing path: {path!r}")
    return document


def apply_json_patch(document: Any, operations: Any) -> Any:
    """RFC 6902. A failed `test` or a missing path is answered with 422, as kube-apiserver does."""
    if not isinstance(operations, list):
        raise bad_request("json patch must be a list of operations")
    result = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, Mapping):
            raise bad_request("json patch operations must be objects")
        op = operation.get("op")
        path = str(operation.get("path", ""))
        if op == "add":
            result = _add(result, path, copy.deepcopy(operation.get("value")))
        elif op == "remove":
            result = _remove(result, path)
        elif op == "replace":
            _get(result, path)
            result = _remove(result, path) if _pointer(path) else result
            result = _add(result, path, copy.deepcopy(operation.get("value")))
        elif op == "move":
            source = str(operation.get("from", ""))
            value = _get(result, source)
            result = _remove(result, source)
            result = _add(result, path, value)
        elif op == "copy":
            value = copy.deepcopy(_get(result, str(operation.get("from", ""))))
            result = _add(result, path, value)
        elif op == "test":
            try:
                actual = _get(result, path)
            except ApiError:
                actual = None
            if actual != operation.get("value"):
                raise _unprocessable(
                    f"the server rejected our request due to an error in our request: "
                    f"testing value {path} failed: test operation does not apply: "
                    f"is {actual!r}, expected {operation.get('value')!r}"
                )
        else:
            raise bad_request(f"Unexpected kind of json patch operation: {op!r}")
    return result


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, `null` deletes, everything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def apply_strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge patch for the built-in kinds: like a merge patch, but lists with a known merge key
    merge element by element, and the `$patch`, `$retainKeys`, `$deleteFromPrimitiveList/` and
    `$setElementOrder/` directives are honoured."""
    return _strategic(copy.deepcopy(target), patch, field="")


def _strategic(target: Any, patch: Any, field: str) -> Any:
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {key: copy.deepcopy(value) for key, value in patch.items() if key != "$patch"}
    result: dict[str, Any] = target if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            if isinstance(result.get(name), list):
                result[name] = [item for item in result[name] if item not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in STRATEGIC_MERGE_KEYS and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, STRATEGIC_MERGE_KEYS[key])
        elif isinstance(value, Mapping):
            merged = _strategic(result.get(key), value, key)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = copy.deepcopy(value)
    if isinstance(retain, list):
        for key in list(result):
            if key not in retain:
                del result[key]
    return result


def _merge_list(current: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    if not merge_key:
        merged = list(current)
        for item in patch:
            if item not in merged:
                merged.append(copy.deepcopy(item))
        return merged
    if any(isinstance(item, Mapping) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(item) for item in patch if not (isinstance(item, Mapping) and "$patch" in item)]
    merged = list(current)
    for item in patch:
        if not isinstance(item, Mapping) or merge_key not in item:
            merged.append(copy.deepcopy(item))
            continue
        index = next(
            (
                i
                for i, existing in enumerate(merged)
                if isinstance(existing, Mapping) and existing.get(merge_key) == item[merge_key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append(copy.deepcopy(dict(item)))
        else:
            merged[index] = _strategic(merged[index], item, "")
    return merged
