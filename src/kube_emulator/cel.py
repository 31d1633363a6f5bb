"""`x-kubernetes-validations` rules: CEL compiled once per rule text and evaluated with `self` and, for
transition rules, `oldSelf`.

The CEL engine is `cel-python` (celpy). On top of standard CEL it gets the Kubernetes string and list
library functions that CRD authors use (`lowerAscii`, `upperAscii`, `trim`, `replace`, `split`, `join`,
`indexOf`, `lastIndexOf`, `substring`, `charAt`, `isSorted`, `sum`, `min`, `max`, `isURL`).
Not evaluated: the optional syntax (`self.?x`, `orValue`), `quantity()`, `ip()`, `cidr()`, `url()`
accessors, `format()`, `authorizer`, and estimated-cost limits; `date-time` strings stay strings.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any

import celpy
import celpy.adapter
import celpy.celtypes as celtypes

_OLD_SELF = re.compile(r"\boldSelf\b")


class CelCompileError(ValueError):
    """A rule that does not compile; the CRD that carries it is rejected."""


def _string(value: Any) -> celtypes.StringType:
    return celtypes.StringType(value)


def _lower_ascii(text: Any) -> celtypes.StringType:
    return _string("".join(c.lower() if c.isascii() else c for c in str(text)))


def _upper_ascii(text: Any) -> celtypes.StringType:
    return _string("".join(c.upper() if c.isascii() else c for c in str(text)))


def _trim(text: Any) -> celtypes.StringType:
    return _string(str(text).strip())


def _replace(text: Any, old: Any, new: Any, limit: Any = -1) -> celtypes.StringType:
    return _string(str(text).replace(str(old), str(new), int(limit)))


def _split(text: Any, separator: Any, limit: Any = -1) -> celtypes.ListType:
    count = int(limit)
    if count == 0:
        return celtypes.ListType([])
    parts = str(text).split(str(separator), count - 1 if count > 0 else -1)
    return celtypes.ListType([_string(part) for part in parts])


def _join(items: Any, separator: Any = "") -> celtypes.StringType:
    return _string(str(separator).join(str(item) for item in items))


def _index_of(container: Any, item: Any, start: Any = 0) -> celtypes.IntType:
    if isinstance(container, str):
        return celtypes.IntType(str(container).find(str(item), int(start)))
    for index, element in enumerate(container):
        if element == item:
            return celtypes.IntType(index)
    return celtypes.IntType(-1)


def _last_index_of(container: Any, item: Any) -> celtypes.IntType:
    if isinstance(container, str):
        return celtypes.IntType(str(container).rfind(str(item)))
    for index in range(len(container) - 1, -1, -1):
        if container[index] == item:
            return celtypes.IntType(index)
    return celtypes.IntType(-1)


def _substring(text: Any, start: Any, end: Any = None) -> celtypes.StringType:
    value = str(text)
    return _string(value[int(start) : len(value) if end is None else int(end)])


def _char_at(text: Any, index: Any) -> celtypes.StringType:
    value = str(text)
    position = int(index)
    return _string(value[position] if position < len(value) else "")


def _is_sorted(items: Any) -> celtypes.BoolType:
    values = list(items)
    return celtypes.BoolType(all(values[i] <= values[i + 1] for i in range(len(values) - 1)))


def _sum(items: Any) -> Any:
    values = list(items)
    if not values:
        return celtypes.IntType(0)
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


def _min(items: Any) -> Any:
    return min(list(items))


def _max(items: Any) -> Any:
    return max(list(items))


def _is_url(text: Any) -> celtypes.BoolType:
    parsed = urllib.parse.urlparse(str(text))
    return celtypes.BoolType(bool(parsed.scheme) and (bool(parsed.netloc) or parsed.scheme == "file"))


KUBERNETES_FUNCTIONS: dict[str, Any] = {
    "lowerAscii": _lower_ascii,
    "upperAscii": _upper_ascii,
    "trim": _trim,
    "replace": _replace,
    "split": _split,
    "join": _join,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "substring": _substring,
    "charAt": _char_at,
    "isSorted": _is_sorted,
    "sum": _sum,
    "min": _min,
    "max": _max,
    "isURL": _is_url,
}


@dataclasses.dataclass(frozen=True)
class CompiledRule:
    text: str
    runner: Any
    uses_old_self: bool


_environment_lock = threading.Lock()
_environments: list[celpy.Environment] = []  # built on first use: building the CEL parser takes ~0.5 s
_compiled: dict[str, CompiledRule] = {}


def _environment() -> celpy.Environment:
    if not _environments:
        _environments.append(celpy.Environment())
    return _environments[0]


def compile_rule(text: str) -> CompiledRule:
    """Compile once per distinct rule text; the emulator serves many objects of few CRDs."""
    cached = _compiled.get(text)
    if cached is not None:
        return cached
    with _environment_lock:
        try:
            environment = _environment()
            ast = environment.compile(text)
            runner = environment.program(ast, functions=KUBERNETES_FUNCTIONS)
        except Exception as error:  # celpy raises lark and CEL errors of several classes
            raise CelCompileError(f"compilation failed: {error}") from error
    compiled = CompiledRule(text=text, runner=runner, uses_old_self=bool(_OLD_SELF.search(text)))
    _compiled[text] = compiled
    return compiled


def to_cel(value: Any) -> Any:
    return celpy.adapter.json_to_cel(value)


class CelEvaluationError(Exception):
    """A rule raised an error (e.g. a missing field without `has()`): the write is rejected."""


def evaluate(rule: CompiledRule, variables: Mapping[str, Any]) -> Any:
    activation = {name: to_cel(value) for name, value in variables.items()}
    try:
        result = rule.runner.evaluate(activation)
    except Exception as error:
        raise CelEvaluationError(str(error)) from error
    if isinstance(result, Exception):
        raise CelEvaluationError(str(result.args[0] if result.args else result))
    return result
