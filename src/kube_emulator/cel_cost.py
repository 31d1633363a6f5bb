"""What kube-apiserver checks of a CEL rule against its schema before it accepts a CRD: that the fields the
rule reads are declared (its type check), that it calls only functions of the Kubernetes 1.32 CEL
environment, and that its estimated cost is within the limits.

The cost estimate models the apiserver's static estimator (k8s.io/apiserver/pkg/cel;
limits from apiextensions validation: 10,000,000 per rule, 100,000,000 per CRD):

- every value a rule reads costs 1 plus 0.1 per byte of its largest JSON form, which is what equality and
  string operations are charged; `has(x)` and `size(x)` cost 1 whatever x holds; every operator costs 1;
- `x.matches(re)` costs ceil(0.1 * bytes of x) * ceil(0.25 * length of re);
- a macro (`all`, `exists`, `exists_one`, `map`, `filter`) costs its range's largest element count times
  its body;
- a string's largest form is its `maxLength` (or longest `enum` value), an array's `maxItems` items, a
  map's `maxProperties` entries; anything unbounded counts as the 3 MiB request limit, as the apiserver
  assumes;
- a rule's cost toward the CRD total is multiplied by how often it can run per object: the product of the
  `maxItems`/`maxProperties` of the lists and maps above it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

PER_RULE_LIMIT = 10_000_000  # apiextensions StaticEstimatedCostLimit
PER_CRD_LIMIT = 100_000_000  # apiextensions StaticEstimatedCRDCostLimit
MAX_REQUEST_BYTES = 3 * 1024 * 1024  # what the estimator assumes for anything unbounded

MACROS = frozenset({"all", "exists_one", "exists", "map", "filter"})

# Functions and macros a CRD rule may call in kube-apiserver 1.32: CEL's standard set, and the libraries of
# the Kubernetes base environment up to 1.31 (the compatibility version a 1.32 apiserver compiles new rules
# for): strings, lists, regex, urls, quantity, sets, ip and cidr, format. Not semver (1.33).
KUBERNETES_132_FUNCTIONS = frozenset(
    {
        # standard CEL
        "has", "size", "matches", "startsWith", "endsWith", "contains", "all", "exists", "exists_one",
        "map", "filter", "int", "uint", "double", "string", "bytes", "bool", "type", "dyn", "duration",
        "timestamp", "getFullYear", "getMonth", "getDayOfMonth", "getDayOfWeek", "getHours", "getMinutes",
        "getSeconds", "getMilliseconds", "getDate", "getDayOfYear",
        # Kubernetes strings and lists
        "charAt", "indexOf", "lastIndexOf", "lowerAscii", "upperAscii", "replace", "split", "substring",
        "trim", "join", "isSorted", "sum", "min", "max",
        # regex and urls
        "find", "findAll", "url", "isURL", "getScheme", "getHost", "getHostname", "getPort",
        "getEscapedPath", "getQuery",
        # quantity (1.29), ip and cidr (1.31)
        "quantity", "isQuantity", "sign", "asInteger", "asApproximateFloat", "isInteger", "add", "sub",
        "isLessThan", "isGreaterThan", "compareTo", "ip", "isIP", "cidr", "isCIDR", "family",
        "isUnspecified", "isLoopback", "isLinkLocalMulticast", "isLinkLocalUnicast", "isGlobalUnicast",
        "containsIP", "containsCIDR", "prefixLength", "masked",
        # strings v2 (1.29), sets (1.29), math and bindings, optionals
        "format", "quote", "equivalent", "intersects", "greatest", "least", "bind", "of", "none",
        "ofNonZeroValue", "orValue", "hasValue", "value", "or",
        # the format library (1.31): format.dns1123Label().validate(s) and friends
        "named", "validate", "dns1123Label", "dns1123Subdomain", "dns1035Label", "qualifiedName",
        "dns1123LabelPrefix", "dns1123SubdomainPrefix", "dns1035LabelPrefix", "labelValue", "uri", "uuid",
        "byte", "date", "datetime",
    }
)  # fmt: skip

_REFERENCE = re.compile(r"(?<![\w.])([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)*)")
_OPERATOR = re.compile(r"&&|\|\||==|!=|<=|>=|[<>!+*/%?-]")
_CALL = re.compile(r"([A-Za-z_]\w*)\s*\(")
_STRING_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


@dataclasses.dataclass
class Estimate:
    """A rule's estimated cost, and what the estimate found wrong with the rule."""

    cost: float = 0
    undeclared: list[str] = dataclasses.field(default_factory=list)
    unbounded: list[str] = dataclasses.field(default_factory=list)


def max_bytes(node: Mapping[str, Any]) -> float:
    """The largest JSON form of a value of this schema node, in bytes (inf when unbounded)."""
    node_type = node.get("type")
    if "enum" in node:
        return max((len(str(value)) for value in node["enum"]), default=0) + 2
    if node_type == "string":
        return float(node.get("maxLength", math.inf)) + 2
    if node_type in ("integer", "number"):
        return 20
    if node_type == "boolean":
        return 5
    if node_type == "array":
        items = node.get("items")
        item_bytes = max_bytes(items) if isinstance(items, Mapping) else math.inf
        return float(node.get("maxItems", math.inf)) * (item_bytes + 1) + 2
    if node_type == "object":
        additional = node.get("additionalProperties")
        if isinstance(additional, Mapping):
            # Map keys carry no maxLength: the estimator bounds them by the request size.
            return (
                float(node.get("maxProperties", math.inf)) * (MAX_REQUEST_BYTES + max_bytes(additional) + 4)
                + 2
            )
        properties = node.get("properties") or {}
        if not properties or node.get("x-kubernetes-preserve-unknown-fields"):
            return math.inf
        return sum(len(name) + 4 + max_bytes(child) for name, child in properties.items()) + 2
    return math.inf


def strip_string_literals(text: str) -> str:
    """String literals replaced by same-length placeholders, so their contents are never parsed as CEL."""
    return _STRING_LITERAL.sub(lambda match: "'" + "_" * (len(match.group(0)) - 2) + "'", text)


def unknown_functions(rule: str) -> set[str]:
    """Functions the rule calls that the 1.32 CEL environment does not declare."""
    return set(_CALL.findall(strip_string_literals(rule))) - KUBERNETES_132_FUNCTIONS


def _matching_paren(text: str, open_index: int) -> int:
    depth = 0
    for index in range(open_index, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index
    return len(text) - 1


def _resolve(root: Mapping[str, Any], steps: list[str]) -> tuple[Mapping[str, Any] | None, bool]:
    """The node `steps` reach from `root`, and whether the path is declared (free-form nodes accept all)."""
    node: Mapping[str, Any] = root
    for step in steps:
        properties = node.get("properties") or {}
        additional = node.get("additionalProperties")
        if step in properties:
            node = properties[step]
        elif isinstance(additional, Mapping):
            node = additional
        elif node.get("x-kubernetes-preserve-unknown-fields") or "__" in step or not properties:
            # Free-form, an escaped name, or an object whose fields the schema leaves to the apiserver
            # (the root's metadata): let it through rather than refuse what kube-apiserver accepts.
            return None, True
        else:
            return None, False
    return node, True


def estimate_rule_cost(rule: str, variables: Mapping[str, Mapping[str, Any]]) -> Estimate:
    """The estimate described in the module docstring for `rule`, with `variables` (`self`, `oldSelf`)
    bound to schema nodes."""
    estimate = Estimate()
    _estimate(strip_string_literals(rule), variables, estimate, multiplier=1)
    return estimate


def _estimate(
    text: str, variables: Mapping[str, Mapping[str, Any]], estimate: Estimate, multiplier: float
) -> None:
    position = 0
    outside_macros: list[str] = []  # the text outside macro bodies, whose operators are charged here
    while True:
        match = _REFERENCE.search(text, position)
        if match is None:
            outside_macros.append(text[position:])
            estimate.cost += multiplier * len(_OPERATOR.findall("".join(outside_macros)))
            return
        outside_macros.append(text[position : match.end()])
        name = match.group(1)
        position = match.end()
        if name not in variables:
            continue  # a function name, a keyword (true, null, in) or a literal
        steps = [step for step in match.group(2).split(".") if step]
        method = steps.pop() if steps and text[match.end() : match.end() + 1] == "(" else None
        node, declared = _resolve(variables[name], steps)
        where = name + "".join(f".{step}" for step in steps)
        if not declared:
            estimate.undeclared.append(where)
            continue
        if node is None:
            node = {}
        before = text[: match.start()].rstrip()
        if before.endswith(("has(", "size(")) or method == "size":
            estimate.cost += multiplier
            continue
        if method in MACROS:
            close_index = _matching_paren(text, match.end())
            variable, _, body = text[match.end() + 1 : close_index].partition(",")
            if node.get("type") == "array":
                items = node.get("items")
                element: Mapping[str, Any] = items if isinstance(items, Mapping) else {}
                count = float(node.get("maxItems", math.inf))
            else:
                element = {"type": "string"}  # macros over a map range over its keys
                count = float(node.get("maxProperties", math.inf))
            if math.isinf(count):
                estimate.unbounded.append(
                    f"{where}.{method}() ranges over a collection with no maxItems/maxProperties"
                )
                count = MAX_REQUEST_BYTES
            _estimate(body, {**variables, variable.strip(): element}, estimate, multiplier * count)
            position = close_index + 1
            outside_macros.append(")")
            continue
        size = max_bytes(node)
        if math.isinf(size):
            estimate.unbounded.append(f"{where} is read but has no maxLength/maxItems/maxProperties")
        traversal = math.ceil(0.1 * min(size, MAX_REQUEST_BYTES))
        if method == "matches":
            close_index = _matching_paren(text, match.end())
            pattern_length = max(close_index - match.end() - 3, 1)
            estimate.cost += multiplier * traversal * math.ceil(0.25 * pattern_length)
            outside_macros.append(text[match.end() : close_index + 1])
            position = close_index + 1
        else:
            estimate.cost += multiplier * (1 + traversal)


def rule_variables(node: Mapping[str, Any], rule: str) -> dict[str, Mapping[str, Any]]:
    variables: dict[str, Mapping[str, Any]] = {"self": node}
    if re.search(r"\boldSelf\b", rule):
        variables["oldSelf"] = node
    return variables


def limit_factor(cost: float, limit: float) -> str:
    return f"{cost / limit:.1f}x"
