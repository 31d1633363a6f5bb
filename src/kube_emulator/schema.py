"""Structural-schema processing of custom resources: pruning, defaulting and validation.

The order is kube-apiserver's: unknown fields are pruned (and reported, so strict field validation can
reject them), `null`s in non-nullable fields are dropped, `default`s are applied, then the object is
validated against the OpenAPI v3 keywords and, when that passes, against its `x-kubernetes-validations`
CEL rules (transition rules see `oldSelf` on updates).
"""

from __future__ import annotations

import copy
import ipaddress
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from kube_emulator import cel
from kube_emulator.errors import FieldError

# ObjectMeta fields a client may send; anything else under metadata is dropped like an unknown field.
OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)

_MISSING = object()
_regex_cache: dict[str, re.Pattern[str]] = {}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _pattern(text: str) -> re.Pattern[str]:
    compiled = _regex_cache.get(text)
    if compiled is None:
        compiled = re.compile(text)
        _regex_cache[text] = compiled
    return compiled


# Pruning ---------------------------------------------------------------------------------------------


def prune(obj: dict[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Remove fields the schema does not declare (in place); return their paths for strict validation."""
    unknown: list[str] = []
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        for key in list(metadata):
            if key not in OBJECT_META_FIELDS:
                unknown.append(f"metadata.{key}")
                del metadata[key]
    properties = schema.get("properties") or {}
    for key in list(obj):
        if key in ("apiVersion", "kind", "metadata"):
            continue
        if key not in properties and not schema.get("x-kubernetes-preserve-unknown-fields"):
            unknown.append(key)
            del obj[key]
        elif key in properties:
            obj[key] = _prune_value(obj[key], properties[key], key, unknown)
            if obj[key] is _MISSING:
                del obj[key]
    return unknown


def _prune_value(value: Any, schema: Mapping[str, Any], path: str, unknown: list[str]) -> Any:
    if value is None:
        return None if schema.get("nullable") else _MISSING
    if isinstance(value, dict):
        keep = {"apiVersion", "kind", "metadata"} if schema.get("x-kubernetes-embedded-resource") else set()
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        for key in list(value):
            child_path = _join(path, key)
            if properties is not None and key in properties:
                value[key] = _prune_value(value[key], properties[key], child_path, unknown)
            elif isinstance(additional, Mapping):
                value[key] = _prune_value(value[key], additional, f"{path}[{key}]", unknown)
            elif preserve or additional is True or key in keep:
                continue
            elif properties is None and schema.get("type") != "object":
                continue  # not a structural object node (e.g. int-or-string); leave it to validation
            else:
                unknown.append(child_path)
                del value[key]
                continue
            if value[key] is _MISSING:
                del value[key]
        return value
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            pruned = [
                _prune_value(item, items, f"{path}[{index}]", unknown) for index, item in enumerate(value)
            ]
            return [item for item in pruned if item is not _MISSING]
    return value


# Defaulting ------------------------------------------------------------------------------------------


def apply_defaults(value: Any, schema: Mapping[str, Any]) -> Any:
    """Set `default`s of absent properties (in place), depth first as the API server does."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, child_schema in properties.items():
            if (
                key == "metadata"
                and not schema.get("x-kubernetes-embedded-resource")
                and "apiVersion" in value
            ):
                continue
            if key not in value and "default" in child_schema:
                value[key] = copy.deepcopy(child_schema["default"])
            if key in value:
                value[key] = apply_defaults(value[key], child_schema)
        additional = schema.get("additionalProperties")
        if isinstance(additional, Mapping):
            for key in value:
                if key not in properties:
                    value[key] = apply_defaults(value[key], additional)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                value[index] = apply_defaults(item, items)
    return value


# Validation ------------------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _render(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(_type_name(value))
    return json.dumps(value)


def _type_matches(value: Any, expected: str, schema: Mapping[str, Any]) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)
    if expected == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "array":
        return isinstance(value, list)
    if expected == "object":
        return isinstance(value, dict)
    return True


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$"
)
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


def _format_holds(format_name: str, value: str) -> bool:
    """The string formats kube-apiserver checks (go-openapi strfmt); unknown formats pass, as there."""
    if format_name in ("date-time", "datetime"):
        return bool(_DATE_TIME.match(value))
    if format_name == "date":
        return bool(_DATE.match(value))
    if format_name in ("uuid", "uuid3", "uuid4", "uuid5"):
        return bool(_UUID.match(value))
    if format_name == "hostname":
        return bool(_HOSTNAME.match(value))
    if format_name == "byte":
        return len(value) % 4 == 0 and bool(_BASE64.match(value))
    if format_name in ("ipv4", "ipv6", "cidr"):
        try:
            if format_name == "cidr":
                ipaddress.ip_network(value, strict=False)
            else:
                address = ipaddress.ip_address(value)
                return address.version == (4 if format_name == "ipv4" else 6)
        except ValueError:
            return False
        return True
    return True


class Validator:
    """Validates one object against one schema; collects every error, as kube-apiserver reports them all."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def _invalid(self, path: str, value: Any, message: str) -> None:
        self.errors.append(
            FieldError(path, "FieldValueInvalid", f"Invalid value: {_render(value)}: {message}")
        )

    def validate(self, value: Any, schema: Mapping[str, Any], path: str) -> None:
        if value is None:
            if not schema.get("nullable") and schema.get("type"):
                self._invalid(path, value, f'{path} in body must be of type {schema.get("type")}: "null"')
            return
        expected = schema.get("type")
        if expected and not _type_matches(value, str(expected), schema):
            self._invalid(
                path, value, f"{path} in body must be of type {expected}: {json.dumps(_type_name(value))}"
            )
            return
        if "enum" in schema and value not in schema["enum"]:
            supported = ", ".join(_render(option) for option in schema["enum"])
            self.errors.append(
                FieldError(
                    path,
                    "FieldValueNotSupported",
                    f"Unsupported value: {_render(value)}: supported values: {supported}",
                )
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            self._numbers(value, schema, path)
        elif isinstance(value, str):
            self._strings(value, schema, path)
        elif isinstance(value, list):
            self._arrays(value, schema, path)
        elif isinstance(value, dict):
            self._objects(value, schema, path)
        self._combinators(value, schema, path)

    def _numbers(self, value: float, schema: Mapping[str, Any], path: str) -> None:
        limit = {"int32": 2**31, "int64": 2**63}.get(str(schema.get("format")))
        if limit is not None and not -limit <= value < limit:
            self._invalid(
                path, value, f"{path} in body must be of type {schema['format']}: {json.dumps(value)}"
            )
        if "minimum" in schema:
            minimum = schema["minimum"]
            if schema.get("exclusiveMinimum") and value <= minimum:
                self._invalid(path, value, f"{path} in body should be greater than {minimum}")
            elif value < minimum:
                self._invalid(path, value, f"{path} in body should be greater than or equal to {minimum}")
        if "maximum" in schema:
            maximum = schema["maximum"]
            if schema.get("exclusiveMaximum") and value >= maximum:
                self._invalid(path, value, f"{path} in body should be less than {maximum}")
            elif value > maximum:
                self._invalid(path, value, f"{path} in body should be less than or equal to {maximum}")
        multiple = schema.get("multipleOf")
        if multiple and not math.isclose(value / multiple, round(value / multiple)):
            self._invalid(path, value, f"{path} in body should be a multiple of {multiple}")

    def _strings(self, value: str, schema: Mapping[str, Any], path: str) -> None:
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            self.errors.append(
                FieldError(
                    path, "FieldValueTooLong", f"Too long: may not be more than {schema['maxLength']} bytes"
                )
            )
        if "minLength" in schema and len(value) < schema["minLength"]:
            self._invalid(path, value, f"{path} in body should be at least {schema['minLength']} chars long")
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            self._invalid(path, value, f"{path} in body should match '{schema['pattern']}'")
        format_name = schema.get("format")
        if isinstance(format_name, str) and not _format_holds(format_name, value):
            self._invalid(path, value, f"{path} in body must be of type {format_name}: {json.dumps(value)}")

    def _arrays(self, value: list[Any], schema: Mapping[str, Any], path: str) -> None:
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            self.errors.append(
                FieldError(
                    path,
                    "FieldValueTooMany",
                    f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                )
            )
        if "minItems" in schema and len(value) < schema["minItems"]:
            self._invalid(path, value, f"{path} in body should have at least {schema['minItems']} items")
        list_type = schema.get("x-kubernetes-list-type")
        if schema.get("uniqueItems") or list_type == "set":
            seen: list[Any] = []
            for index, item in enumerate(value):
                if item in seen:
                    self.errors.append(
                        FieldError(
                            f"{path}[{index}]", "FieldValueDuplicate", f"Duplicate value: {_render(item)}"
                        )
                    )
                seen.append(item)
        if list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys") or []
            seen_keys: list[tuple[Any, ...]] = []
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    key = tuple(item.get(name) for name in keys)
                    if key in seen_keys:
                        rendered = json.dumps(dict(zip(keys, key, strict=True)))
                        self.errors.append(
                            FieldError(
                                f"{path}[{index}]", "FieldValueDuplicate", f"Duplicate value: {rendered}"
                            )
                        )
                    seen_keys.append(key)
        items = schema.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                self.validate(item, items, f"{path}[{index}]")

    def _objects(self, value: dict[str, Any], schema: Mapping[str, Any], path: str) -> None:
        for name in schema.get("required") or []:
            if name not in value:
                self.errors.append(FieldError(_join(path, name), "FieldValueRequired", "Required value"))
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            self.errors.append(
                FieldError(
                    path,
                    "FieldValueTooMany",
                    f"Too many: {len(value)}: must have at most {schema['maxProperties']} items",
                )
            )
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            self._invalid(
                path, value, f"{path} in body should have at least {schema['minProperties']} properties"
            )
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, child in value.items():
            if key in properties:
                if path == "" and key == "metadata":
                    continue
                self.validate(child, properties[key], _join(path, key))
            elif isinstance(additional, Mapping):
                self.validate(child, additional, f"{path}[{key}]")

    def _combinators(self, value: Any, schema: Mapping[str, Any], path: str) -> None:
        def passes(sub_schema: Mapping[str, Any]) -> bool:
            probe = Validator()
            probe.validate(value, sub_schema, path)
            return not probe.errors

        for sub_schema in schema.get("allOf") or []:
            self.validate(value, sub_schema, path)
        any_of = schema.get("anyOf")
        if any_of and not any(passes(sub) for sub in any_of):
            self._invalid(
                path, value, f"{path} in body must be valid against at least one of the anyOf schemas"
            )
        one_of = schema.get("oneOf")
        if one_of and sum(1 for sub in one_of if passes(sub)) != 1:
            self._invalid(path, value, f"{path} in body must validate one and only one schema (oneOf)")
        negated = schema.get("not")
        if negated and passes(negated):
            self._invalid(path, value, f"{path} in body must not validate the schema (not)")


def default_problems(value: Any, node: Mapping[str, Any]) -> list[str]:
    """Why a `default` does not hold for its own schema node (kube-apiserver refuses such a CRD): it must
    survive pruning unchanged and pass the node's OpenAPI validation."""
    wrapper = {"type": "object", "properties": {"value": node}}
    candidate = {"value": copy.deepcopy(value)}
    unknown = prune(candidate, wrapper)
    problems = [f"must not have unknown fields: {field.removeprefix('value.')}" for field in unknown]
    validator = Validator()
    validator.validate(candidate.get("value"), node, "default")
    problems.extend(error.render() for error in validator.errors)
    return problems


# CEL -------------------------------------------------------------------------------------------------

_REASON_TEXT = {
    "FieldValueInvalid": None,
    "FieldValueForbidden": "Forbidden",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
}


def compile_schema_rules(schema: Mapping[str, Any]) -> list[str]:
    """Compile every CEL rule in a schema; return the problems (a CRD carrying any is rejected)."""
    problems: list[str] = []

    def walk(node: Any, path: str) -> None:
        if not isinstance(node, Mapping):
            return
        for rule in node.get("x-kubernetes-validations") or []:
            for key in ("rule", "messageExpression"):
                text = rule.get(key)
                if text:
                    try:
                        cel.compile_rule(text)
                    except cel.CelCompileError as error:
                        problems.append(f"{path}.x-kubernetes-validations: {key} {text!r}: {error}")
        for key, child in (node.get("properties") or {}).items():
            walk(child, f"{path}.properties[{key}]")
        for key in ("items", "additionalProperties"):
            walk(node.get(key), f"{path}.{key}")

    walk(schema, "openAPIV3Schema")
    return problems


def validate_rules(
    value: Any, old: Any, schema: Mapping[str, Any], path: str, errors: list[FieldError]
) -> None:
    """Evaluate `x-kubernetes-validations` depth first; `old` is `_MISSING` where no old value correlates."""
    if value is None:
        return
    for rule in schema.get("x-kubernetes-validations") or []:
        _check_rule(rule, value, old, path, errors)
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        old_map = old if isinstance(old, dict) else {}
        for key, child in value.items():
            if path == "" and key == "metadata":
                continue
            child_old = old_map.get(key, _MISSING)
            if key in properties:
                validate_rules(child, child_old, properties[key], _join(path, key), errors)
            elif isinstance(additional, Mapping):
                validate_rules(child, child_old, additional, f"{path}[{key}]", errors)
    elif isinstance(value, list):
        items = schema.get("items")
        if not isinstance(items, Mapping):
            return
        list_type = schema.get("x-kubernetes-list-type")
        keys = schema.get("x-kubernetes-list-map-keys") or []
        old_by_key: dict[Any, Any] = {}
        if isinstance(old, list):
            for item in old:
                if list_type == "map" and isinstance(item, dict):
                    old_by_key[json.dumps([item.get(k) for k in keys])] = item
                elif list_type == "set":
                    old_by_key[json.dumps(item, sort_keys=True)] = item
        for index, item in enumerate(value):
            if list_type == "map" and isinstance(item, dict):
                item_old = old_by_key.get(json.dumps([item.get(k) for k in keys]), _MISSING)
            elif list_type == "set":
                item_old = old_by_key.get(json.dumps(item, sort_keys=True), _MISSING)
            else:
                item_old = _MISSING  # atomic lists do not correlate old items, as in Kubernetes
            validate_rules(item, item_old, items, f"{path}[{index}]", errors)


def _check_rule(rule: Mapping[str, Any], value: Any, old: Any, path: str, errors: list[FieldError]) -> None:
    text = rule.get("rule", "")
    compiled = cel.compile_rule(text)
    if not compiled.uses_old_self and old is not _MISSING and old == value:
        return  # validation ratcheting: a value stored before is not judged again by the same rule
    variables: dict[str, Any] = {"self": value}
    if compiled.uses_old_self:
        if old is _MISSING:
            if not rule.get("optionalOldSelf"):
                return  # transition rules run only on updates where an old value correlates
            variables["oldSelf"] = None
        else:
            variables["oldSelf"] = old
    field_path = path
    if rule.get("fieldPath"):
        field_path = (
            path + str(rule["fieldPath"])
            if str(rule["fieldPath"]).startswith(".")
            else _join(path, rule["fieldPath"])
        )
        field_path = field_path.lstrip(".")
    reason = rule.get("reason") or "FieldValueInvalid"
    try:
        result = cel.evaluate(compiled, variables)
    except cel.CelEvaluationError as error:
        errors.append(
            FieldError(field_path, "FieldValueInvalid", f"Invalid value: {_render(value)}: {text}: {error}")
        )
        return
    if bool(result):
        return
    message = rule.get("message") or f"failed rule: {text}"
    if rule.get("messageExpression"):
        try:
            message = str(cel.evaluate(cel.compile_rule(rule["messageExpression"]), variables))
        except (cel.CelEvaluationError, cel.CelCompileError):
            message = rule.get("message") or f"failed rule: {text}"
    prefix = _REASON_TEXT.get(reason)
    if prefix is None:
        errors.append(
            FieldError(
                field_path,
                reason,
                f"Invalid value: {_render(value)}: {message}",
            )
        )
    else:
        errors.append(FieldError(field_path, reason, f"{prefix}: {message}"))


_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[([^\]]*)\]")


def _resolve(obj: Any, path: str) -> Any:
    current = obj
    for name, bracket in _PATH_TOKEN.findall(path):
        key: Any = name or bracket
        if isinstance(current, list):
            if not str(key).isdigit() or int(key) >= len(current):
                return _MISSING
            current = current[int(key)]
        elif isinstance(current, dict) and key in current:
            current = current[key]
        else:
            return _MISSING
    return current


def _unchanged_at(new: Any, old: Any, error: FieldError) -> bool:
    """Validation ratcheting (kube-apiserver 1.32 default): errors in values that did not change on an
    update are let through, so objects stored under an older schema stay writable."""
    path = error.field
    if error.reason == "FieldValueRequired":
        path = path.rpartition(".")[0]
    before = _resolve(old, path)
    return before is not _MISSING and before == _resolve(new, path)


def process(
    obj: dict[str, Any], schema: Mapping[str, Any] | None, old: dict[str, Any] | None
) -> tuple[list[str], list[FieldError]]:
    """Prune, default and validate a custom resource in place; return (unknown fields, errors)."""
    if not schema:
        return [], []
    unknown = prune(obj, schema)
    apply_defaults(obj, schema)
    validator = Validator()
    validator.validate({k: v for k, v in obj.items() if k != "metadata"}, schema, "")
    errors = validator.errors
    if old is not None:
        errors = [error for error in errors if not _unchanged_at(obj, old, error)]
    if not errors:
        validate_rules(obj, old if old is not None else _MISSING, schema, "", errors)
    return unknown, errors
