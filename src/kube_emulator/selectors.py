"""Label and field selectors, parsed once per request and matched against stored objects."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping
from typing import Any

from kube_emulator.errors import bad_request


@dataclasses.dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" also match objects that lack the label, as in Kubernetes
        return not present or labels[self.key] not in self.values


@dataclasses.dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(requirement.matches(labels) for requirement in self.requirements)


_SET_PATTERN = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts if part.strip()]


def parse_label_selector(text: str | None) -> LabelSelector:
    if not text:
        return LabelSelector()
    requirements: list[Requirement] = []
    for part in _split_top_level(text):
        for operator in ("!=", "==", "="):
            if operator in part and "(" not in part:
                key, value = (side.strip() for side in part.split(operator, 1))
                requirements.append(Requirement(key, "!=" if operator == "!=" else "=", frozenset({value})))
                break
        else:
            match = _SET_PATTERN.match(part)
            if not match:
                raise bad_request(f"unable to parse requirement: {part!r}")
            negated, key, set_operator, values = match.groups()
            if set_operator:
                members = frozenset(value.strip() for value in values.split(",") if value.strip())
                requirements.append(Requirement(key, set_operator, members))
            else:
                requirements.append(Requirement(key, "!exists" if negated else "exists"))
    return LabelSelector(tuple(requirements))


def field_value(obj: Mapping[str, Any], path: str) -> str | None:
    """The value at a dotted path, as the string a field selector compares against."""
    if path == "source":  # core Events expose `source` as the reporting component
        path = "source.component"
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    if current is None or isinstance(current, (dict, list)):
        return None
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


@dataclasses.dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[tuple[str, bool, str], ...] = ()  # (path, equal?, value)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for path, equal, value in self.requirements:
            actual = field_value(obj, path) or ""
            if (actual == value) != equal:
                return False
        return True

    def exact_name(self) -> str | None:
        for path, equal, value in self.requirements:
            if path == "metadata.name" and equal:
                return value
        return None


def parse_field_selector(text: str | None, known: Collection[str] | None = None) -> FieldSelector:
    """Parse a field selector; with `known`, a field outside it is refused as kube-apiserver refuses it
    (for custom resources: anything but metadata.name, metadata.namespace and the CRD's selectableFields)."""
    if not text:
        return FieldSelector()
    requirements: list[tuple[str, bool, str]] = []
    for part in _split_top_level(text):
        for operator in ("!=", "==", "="):
            if operator in part:
                path, value = (side.strip() for side in part.split(operator, 1))
                requirements.append((path, operator != "!=", value))
                break
        else:
            raise bad_request(f'invalid selector: {text!r}; can\'t understand "{part}"')
    if known is not None:
        for path, _, _ in requirements:
            if path not in known:
                raise bad_request(
                    f'"{path}" is not a known field selector: only "metadata.name", "metadata.namespace"'
                )
    return FieldSelector(tuple(requirements))
