"""The static checks kube-apiserver runs on a CRD's `openAPIV3Schema` before it accepts the CRD.

A CRD that breaks them is refused with 422 `Invalid`, so a product whose CRDs pass here but not there
would only find out on a real cluster. Checked: the schema is structural (every node has a `type` unless
it is int-or-string or preserves unknown fields; `properties` and `additionalProperties` exclude each
other; no `uniqueItems: true`, `$ref`, `patternProperties` and friends), `metadata` constrains only `name`
and `generateName`, `format`s are ones go-openapi knows, `pattern`s compile, defaults validate against
their own schema, list types (`map` keys are required or defaulted scalars, `set` items are scalars),
and `x-kubernetes-validations` entries (`reason`, `fieldPath`, and `oldSelf` only where an old value
correlates). Each problem is a `FieldError` whose path starts at `openAPIV3Schema`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kube_emulator import cel_cost
from kube_emulator.errors import FieldError

OPENAPI_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object"})
SCALAR_TYPES = frozenset({"string", "number", "integer", "boolean"})

# JSON-schema keywords `JSONSchemaProps` cannot carry in apiextensions.k8s.io/v1, or forbids in CRDs.
FORBIDDEN_KEYWORDS = frozenset(
    {"$ref", "$schema", "id", "definitions", "dependencies", "patternProperties", "additionalItems"}
)

# The formats kube-apiserver's go-openapi registry knows (apiextensions `SupportedFormats`); others are
# refused when the CRD is created.
SUPPORTED_FORMATS = frozenset(
    {
        "bsonobjectid",
        "uri",
        "email",
        "hostname",
        "ipv4",
        "ipv6",
        "cidr",
        "mac",
        "uuid",
        "uuid3",
        "uuid4",
        "uuid5",
        "isbn",
        "isbn10",
        "isbn13",
        "creditcard",
        "ssn",
        "hexcolor",
        "rgbcolor",
        "byte",
        "password",
        "date",
        "duration",
        "datetime",
        "date-time",
        "int32",
        "int64",
        "float",
        "double",
    }
)

RULE_REASONS = frozenset(
    {"FieldValueRequired", "FieldValueForbidden", "FieldValueInvalid", "FieldValueDuplicate"}
)
LIST_TYPES = frozenset({"atomic", "set", "map"})

_COST_HINT = (
    "try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and "
    "strings are declared"
)
_OLD_SELF = re.compile(r"\boldSelf\b")
# RE2 (Go's regexp) has no lookaround and no backreferences; Python's `re` has both.
_NOT_RE2 = re.compile(r"\(\?[=!<]|\\[1-9]|\(\?P=")
# A `fieldPath` is a JSON path made of `.name` and `['name']` steps (list indices are not allowed).
_FIELD_PATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\['([^']+)'\]")


def check_schema(schema: Mapping[str, Any], validate_default: Any = None) -> list[FieldError]:
    """Every problem kube-apiserver would report for this `openAPIV3Schema` (empty when it is accepted).

    `validate_default(value, schema) -> list[str]` checks a `default` against its schema (the emulator
    passes its own validator); without it defaults are not checked.
    """
    problems: list[FieldError] = []
    total_cost = [0.0]
    _walk(
        schema,
        "openAPIV3Schema",
        problems,
        root=True,
        correlatable=True,
        validate_default=validate_default,
        cardinality=1,
        total_cost=total_cost,
    )
    if total_cost[0] > cel_cost.PER_CRD_LIMIT:
        _error(
            problems,
            "openAPIV3Schema",
            "FieldValueForbidden",
            "Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema "
            f"exceeds budget by factor of {cel_cost.limit_factor(total_cost[0], cel_cost.PER_CRD_LIMIT)} "
            f"({_COST_HINT})",
        )
    return problems


def _error(problems: list[FieldError], path: str, reason: str, message: str) -> None:
    problems.append(FieldError(path, reason, message))


def _walk(
    node: Any,
    path: str,
    problems: list[FieldError],
    *,
    root: bool,
    correlatable: bool,
    validate_default: Any,
    cardinality: float,
    total_cost: list[float],
) -> None:
    if not isinstance(node, Mapping):
        _error(problems, path, "FieldValueInvalid", "Invalid value: must be a schema object")
        return
    for keyword in sorted(FORBIDDEN_KEYWORDS & node.keys()):
        _error(problems, f"{path}.{keyword}", "FieldValueForbidden", f"Forbidden: {keyword} is not supported")
    if node.get("uniqueItems") is True:
        _error(
            problems,
            f"{path}.uniqueItems",
            "FieldValueForbidden",
            "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        )
    node_type = node.get("type")
    untyped_allowed = node.get("x-kubernetes-int-or-string") is True or (
        node.get("x-kubernetes-preserve-unknown-fields") is True and not root
    )
    if not node_type and not untyped_allowed:
        _error(
            problems,
            f"{path}.type",
            "FieldValueRequired",
            "Required value: must not be empty for specified object fields",
        )
    elif node_type and node_type not in OPENAPI_TYPES:
        _error(problems, f"{path}.type", "FieldValueNotSupported", f'Unsupported value: "{node_type}"')
    if root and node_type not in (None, "object"):
        _error(problems, f"{path}.type", "FieldValueInvalid", "Invalid value: must be object at the root")
    if node.get("properties") and node.get("additionalProperties") not in (None, True):
        _error(
            problems,
            f"{path}.additionalProperties",
            "FieldValueForbidden",
            "Forbidden: additionalProperties and properties are mutual exclusive",
        )
    _check_format_and_pattern(node, path, problems)
    _check_list_type(node, path, problems)
    total_cost[0] += _check_rules(node, path, problems, correlatable=correlatable) * cardinality
    if "default" in node and validate_default is not None:
        for message in validate_default(node["default"], node):
            _error(problems, f"{path}.default", "FieldValueInvalid", f"Invalid value: {message}")

    properties = node.get("properties") or {}
    for name, child in properties.items():
        child_path = f"{path}.properties[{name}]"
        if root and name == "metadata":
            _check_root_metadata(child, child_path, problems)
            continue
        _walk(
            child,
            child_path,
            problems,
            root=False,
            correlatable=correlatable,
            validate_default=validate_default,
            cardinality=cardinality,
            total_cost=total_cost,
        )
    additional = node.get("additionalProperties")
    if isinstance(additional, Mapping):
        _walk(
            additional,
            f"{path}.additionalProperties",
            problems,
            root=False,
            correlatable=correlatable,
            validate_default=validate_default,
            cardinality=cardinality * _bound(node.get("maxProperties")),
            total_cost=total_cost,
        )
    items = node.get("items")
    if node_type == "array" and items is None:
        _error(
            problems, f"{path}.items", "FieldValueRequired", "Required value: must be specified for arrays"
        )
    if isinstance(items, list):
        _error(
            problems,
            f"{path}.items",
            "FieldValueForbidden",
            "Forbidden: items must be a schema object, not an array",
        )
    elif items is not None:
        # Kubernetes correlates old and new list items only for list-type map and set; items of atomic
        # (or untyped) lists have no old value, so transition rules below them are refused.
        items_correlatable = correlatable and node.get("x-kubernetes-list-type") in ("map", "set")
        _walk(
            items,
            f"{path}.items",
            problems,
            root=False,
            correlatable=items_correlatable,
            validate_default=validate_default,
            cardinality=cardinality * _bound(node.get("maxItems")),
            total_cost=total_cost,
        )
    for combinator in ("allOf", "anyOf", "oneOf"):
        for index, branch in enumerate(node.get(combinator) or []):
            _check_value_validation(branch, f"{path}.{combinator}[{index}]", problems)
    if "not" in node:
        _check_value_validation(node["not"], f"{path}.not", problems)


def _check_root_metadata(node: Any, path: str, problems: list[FieldError]) -> None:
    if not isinstance(node, Mapping):
        return
    allowed_keys = {"type", "properties", "description"}
    extra = sorted(set(node) - allowed_keys)
    properties = node.get("properties") or {}
    extra_properties = sorted(set(properties) - {"name", "generateName"})
    if extra or extra_properties:
        _error(
            problems,
            path,
            "FieldValueForbidden",
            "Forbidden: must not specify anything other than name and generateName, "
            "but metadata is implicitly specified",
        )
    if node.get("type") not in (None, "object"):
        _error(problems, f"{path}.type", "FieldValueInvalid", "Invalid value: must be object")
    for name, child in properties.items():
        if isinstance(child, Mapping) and child.get("type") not in (None, "string"):
            _error(
                problems,
                f"{path}.properties[{name}].type",
                "FieldValueInvalid",
                "Invalid value: must be string",
            )


def _check_value_validation(node: Any, path: str, problems: list[FieldError]) -> None:
    """Inside `allOf`/`anyOf`/`oneOf`/`not` only value validations may appear: no types or defaults."""
    if not isinstance(node, Mapping):
        return
    for keyword in ("type", "default", "description", "nullable", "additionalProperties"):
        if keyword in node:
            _error(
                problems,
                f"{path}.{keyword}",
                "FieldValueForbidden",
                f"Forbidden: {keyword} must not be used inside value validations (allOf, anyOf, oneOf, not)",
            )
    for name, child in (node.get("properties") or {}).items():
        _check_value_validation(child, f"{path}.properties[{name}]", problems)
    if isinstance(node.get("items"), Mapping):
        _check_value_validation(node["items"], f"{path}.items", problems)


def _check_format_and_pattern(node: Mapping[str, Any], path: str, problems: list[FieldError]) -> None:
    format_name = node.get("format")
    if format_name and format_name not in SUPPORTED_FORMATS:
        _error(problems, f"{path}.format", "FieldValueNotSupported", f'Unsupported value: "{format_name}"')
    pattern = node.get("pattern")
    if pattern is None:
        return
    try:
        re.compile(pattern)
    except re.error as error:
        _error(problems, f"{path}.pattern", "FieldValueInvalid", f"Invalid value: {pattern!r}: {error}")
        return
    if _NOT_RE2.search(pattern):
        _error(
            problems,
            f"{path}.pattern",
            "FieldValueInvalid",
            f"Invalid value: {pattern!r}: lookaround and backreferences are not RE2 syntax",
        )


def _check_list_type(node: Mapping[str, Any], path: str, problems: list[FieldError]) -> None:
    list_type = node.get("x-kubernetes-list-type")
    keys = node.get("x-kubernetes-list-map-keys")
    if list_type is None:
        if keys:
            _error(
                problems,
                f"{path}.x-kubernetes-list-map-keys",
                "FieldValueForbidden",
                "Forbidden: must not be set if x-kubernetes-list-type is not map",
            )
        return
    if node.get("type") != "array":
        _error(
            problems,
            f"{path}.x-kubernetes-list-type",
            "FieldValueInvalid",
            "Invalid value: must only be used for arrays",
        )
        return
    if list_type not in LIST_TYPES:
        _error(
            problems,
            f"{path}.x-kubernetes-list-type",
            "FieldValueNotSupported",
            f'Unsupported value: "{list_type}"',
        )
        return
    raw_items = node.get("items")
    items: Mapping[str, Any] = raw_items if isinstance(raw_items, Mapping) else {}
    if (
        list_type == "set"
        and items.get("type") not in SCALAR_TYPES
        and items.get("x-kubernetes-map-type") != "atomic"
    ):
        _error(
            problems,
            f"{path}.items.type",
            "FieldValueInvalid",
            "Invalid value: must be a scalar type (or an atomic map) if x-kubernetes-list-type is set",
        )
    if list_type != "map":
        if keys:
            _error(
                problems,
                f"{path}.x-kubernetes-list-map-keys",
                "FieldValueForbidden",
                "Forbidden: must not be set if x-kubernetes-list-type is not map",
            )
        return
    if not keys:
        _error(
            problems,
            f"{path}.x-kubernetes-list-map-keys",
            "FieldValueRequired",
            "Required value: must not be empty if x-kubernetes-list-type is map",
        )
        return
    if items.get("type") != "object":
        _error(
            problems,
            f"{path}.items.type",
            "FieldValueInvalid",
            "Invalid value: must be object if x-kubernetes-list-type is map",
        )
        return
    required = set(items.get("required") or [])
    properties = items.get("properties") or {}
    for index, key in enumerate(keys):
        key_schema = properties.get(key)
        key_path = f"{path}.x-kubernetes-list-map-keys[{index}]"
        if not isinstance(key_schema, Mapping):
            _error(
                problems,
                key_path,
                "FieldValueInvalid",
                f'Invalid value: "{key}": must be a property of the items',
            )
            continue
        if key_schema.get("type") not in SCALAR_TYPES:
            _error(
                problems,
                key_path,
                "FieldValueInvalid",
                f'Invalid value: "{key}": must be a scalar typed property',
            )
        if key not in required and "default" not in key_schema:
            _error(
                problems,
                f"{path}.items.properties[{key}]",
                "FieldValueRequired",
                "Required value: this property is in x-kubernetes-list-map-keys, so it must have a default "
                "or be a required property",
            )
        if key_schema.get("nullable") is True:
            _error(
                problems,
                f"{path}.items.properties[{key}].nullable",
                "FieldValueForbidden",
                "Forbidden: this property is in x-kubernetes-list-map-keys, so it must not be nullable",
            )


def _bound(limit: Any) -> float:
    """How many items or entries a list or map may hold: its declared bound, else what fits in a request."""
    return float(limit) if isinstance(limit, int) else float(cel_cost.MAX_REQUEST_BYTES // 3)


def _check_rules(
    node: Mapping[str, Any], path: str, problems: list[FieldError], *, correlatable: bool
) -> float:
    """Report the node's rule problems; return the estimated cost of its rules for one evaluation."""
    total = 0.0
    for index, rule in enumerate(node.get("x-kubernetes-validations") or []):
        rule_path = f"{path}.x-kubernetes-validations[{index}]"
        if not isinstance(rule, Mapping) or not rule.get("rule"):
            _error(
                problems, f"{rule_path}.rule", "FieldValueRequired", "Required value: rule is not specified"
            )
            continue
        text = str(rule["rule"])
        for function in sorted(cel_cost.unknown_functions(text)):
            _error(
                problems,
                f"{rule_path}.rule",
                "FieldValueInvalid",
                f"Invalid value: {text!r}: compilation failed: ERROR: <input>: undeclared reference to "
                f"'{function}' (in container '')",
            )
        estimate = cel_cost.estimate_rule_cost(text, cel_cost.rule_variables(node, text))
        for field in estimate.undeclared:
            _error(
                problems,
                f"{rule_path}.rule",
                "FieldValueInvalid",
                f"Invalid value: {text!r}: compilation failed: ERROR: <input>: undefined field "
                f"'{field.rsplit('.', 1)[-1]}' ({field})",
            )
        if estimate.cost > cel_cost.PER_RULE_LIMIT:
            _error(
                problems,
                f"{rule_path}.rule",
                "FieldValueForbidden",
                "Forbidden: estimated rule cost exceeds budget by factor of "
                f"{cel_cost.limit_factor(estimate.cost, cel_cost.PER_RULE_LIMIT)} ({_COST_HINT})",
            )
        total += estimate.cost
        if _OLD_SELF.search(text) and not correlatable:
            _error(
                problems,
                f"{rule_path}.rule",
                "FieldValueInvalid",
                f"Invalid value: {text!r}: oldSelf cannot be used on the uncorrelatable portion of the "
                "schema (items of lists whose x-kubernetes-list-type is neither map nor set)",
            )
        if rule.get("optionalOldSelf") and not _OLD_SELF.search(text):
            _error(
                problems,
                f"{rule_path}.optionalOldSelf",
                "FieldValueForbidden",
                "Forbidden: may not be set if oldSelf is not used in rule",
            )
        reason = rule.get("reason")
        if reason is not None and reason not in RULE_REASONS:
            _error(
                problems, f"{rule_path}.reason", "FieldValueNotSupported", f'Unsupported value: "{reason}"'
            )
        message = rule.get("message")
        if message is not None and (not str(message).strip() or "\n" in str(message)):
            _error(
                problems,
                f"{rule_path}.message",
                "FieldValueInvalid",
                "Invalid value: message must be non-empty and must not contain line breaks",
            )
        field_path = rule.get("fieldPath")
        if field_path is not None and not _field_path_exists(node, str(field_path)):
            _error(
                problems,
                f"{rule_path}.fieldPath",
                "FieldValueInvalid",
                f"Invalid value: {field_path!r}: fieldPath must be a valid path to a field of this schema",
            )

    return total


def field_path_steps(field_path: str) -> list[str] | None:
    """The property names of a rule's `fieldPath` (`.a.b`, `.a['b-c']`), or None if it does not parse."""
    steps: list[str] = []
    position = 0
    while position < len(field_path):
        match = _FIELD_PATH_STEP.match(field_path, position)
        if match is None:
            return None
        steps.append(match.group(1) or match.group(2))
        position = match.end()
    return steps or None


def _field_path_exists(node: Mapping[str, Any], field_path: str) -> bool:
    steps = field_path_steps(field_path)
    if steps is None:
        return False
    current: Any = node
    for step in steps:
        if not isinstance(current, Mapping):
            return False
        properties = current.get("properties") or {}
        additional = current.get("additionalProperties")
        if step in properties:
            current = properties[step]
        elif isinstance(additional, Mapping):
            current = additional
        else:
            return False
    return True


PRINTER_COLUMN_TYPES = frozenset({"integer", "number", "string", "boolean", "date"})
PRINTER_COLUMN_FORMATS = frozenset(
    {"int32", "int64", "float", "double", "byte", "date", "date-time", "password"}
)
# kube-apiserver only asks a printer column's JSONPath to start with '.'; it parses it when it prints.
_COLUMN_PATH = re.compile(r"^\.")


def check_printer_columns(version: Mapping[str, Any], path: str) -> list[FieldError]:
    """The checks kube-apiserver runs on a version's `additionalPrinterColumns`."""
    problems: list[FieldError] = []
    seen: set[str] = set()
    for index, column in enumerate(version.get("additionalPrinterColumns") or []):
        column_path = f"{path}.additionalPrinterColumns[{index}]"
        name = column.get("name")
        if not name:
            _error(problems, f"{column_path}.name", "FieldValueRequired", "Required value")
        elif name in seen:
            _error(problems, f"{column_path}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"')
        seen.add(str(name))
        column_type = column.get("type")
        if not column_type:
            _error(problems, f"{column_path}.type", "FieldValueRequired", "Required value")
        elif column_type not in PRINTER_COLUMN_TYPES:
            _error(
                problems,
                f"{column_path}.type",
                "FieldValueNotSupported",
                f'Unsupported value: "{column_type}"',
            )
        column_format = column.get("format")
        if column_format and column_format not in PRINTER_COLUMN_FORMATS:
            _error(
                problems,
                f"{column_path}.format",
                "FieldValueNotSupported",
                f'Unsupported value: "{column_format}"',
            )
        priority = column.get("priority", 0)
        if not isinstance(priority, int) or priority < 0:
            _error(
                problems,
                f"{column_path}.priority",
                "FieldValueInvalid",
                f"Invalid value: {priority}: must be >= 0",
            )
        json_path = column.get("jsonPath")
        if not json_path:
            _error(problems, f"{column_path}.jsonPath", "FieldValueRequired", "Required value")
        elif not _COLUMN_PATH.match(str(json_path)):
            _error(
                problems,
                f"{column_path}.jsonPath",
                "FieldValueInvalid",
                f'Invalid value: "{json_path}": must be a simple json path starting with .',
            )
    return problems
