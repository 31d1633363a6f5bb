"""Server-side Tables for `kubectl get`: the Name column plus each resource's printer columns.

Printer-column paths are the JSONPath subset CRDs use: `.a.b`, `.a[0]`, `.a[*].b` and filters such as
`.status.conditions[?(@.type=="Ready")].status`. Date columns are rendered as ages ("5m"), as kubectl
shows them.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from kube_emulator.resources import PrinterColumn, ResourceType

JsonObject = dict[str, Any]

_TOKEN = re.compile(
    r"\.([A-Za-z0-9_\-/$]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*(==|!=)\s*(\"[^\"]*\"|'[^']*'|[^)]+)\)\]|\['([^']+)'\]"
)


def evaluate_path(obj: Any, path: str) -> list[Any]:
    """Every value a printer-column JSONPath selects (empty when nothing matches)."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    current = [obj]
    position = 0
    while position < len(path):
        match = _TOKEN.match(path, position)
        if not match:
            return []
        position = match.end()
        key, index, filter_path, operator, filter_value, quoted_key = match.groups()
        key = key or quoted_key
        selected: list[Any] = []
        for value in current:
            if key is not None:
                if isinstance(value, Mapping) and key in value:
                    selected.append(value[key])
            elif index is not None:
                if isinstance(value, list):
                    if index == "*":
                        selected.extend(value)
                    elif int(index) < len(value):
                        selected.append(value[int(index)])
            else:
                expected = filter_value.strip().strip("\"'")
                for item in value if isinstance(value, list) else []:
                    found = evaluate_path(item, "." + filter_path)
                    actual = str(found[0]) if found else None
                    if (actual == expected) == (operator == "=="):
                        selected.append(item)
        current = selected
    return current


def human_age(timestamp: str, now: datetime.datetime | None = None) -> str:
    try:
        then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return "<unknown>"
    if then.tzinfo is None:
        then = then.replace(tzinfo=datetime.UTC)
    seconds = int(((now or datetime.datetime.now(datetime.UTC)) - then).total_seconds())
    if seconds < 0:
        seconds = 0
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def _cell(obj: Mapping[str, Any], column: PrinterColumn) -> Any:
    if column.json_path.startswith("#count:"):
        total = 0
        for field in column.json_path[len("#count:") :].split(","):
            value = obj.get(field)
            total += len(value) if isinstance(value, (list, dict)) else 0
        return total
    if column.json_path == "#lastseen":
        timestamp = (
            obj.get("lastTimestamp")
            or obj.get("eventTime")
            or (obj.get("metadata") or {}).get("creationTimestamp")
        )
        return human_age(str(timestamp)) if timestamp else "<unknown>"
    if column.json_path == "#involvedobject":
        involved = obj.get("involvedObject") or {}
        return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"
    values = evaluate_path(obj, column.json_path)
    if not values:
        return None
    value = (
        values[0]
        if len(values) == 1
        else ",".join(str(v) if not isinstance(v, (dict, list)) else json.dumps(v) for v in values)
    )
    if column.type == "date" and isinstance(value, str):
        return human_age(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def column_definitions(resource: ResourceType) -> list[JsonObject]:
    definitions: list[JsonObject] = [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "description": "Name must be unique within a namespace.",
            "priority": 0,
        }
    ]
    for column in resource.printer_columns:
        definitions.append(
            {
                "name": column.name,
                "type": "string" if column.type == "date" else column.type,
                "format": column.format,
                "description": column.description,
                "priority": column.priority,
            }
        )
    return definitions


def _partial(obj: Mapping[str, Any]) -> JsonObject:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def rows(
    resource: ResourceType, objects: Iterable[Mapping[str, Any]], include_object: str
) -> list[JsonObject]:
    rendered: list[JsonObject] = []
    for obj in objects:
        cells: list[Any] = [(obj.get("metadata") or {}).get("name", "")]
        cells.extend(_cell(obj, column) for column in resource.printer_columns)
        row: JsonObject = {"cells": cells}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = _partial(obj)
        rendered.append(row)
    return rendered


def table(
    resource: ResourceType,
    objects: Iterable[Mapping[str, Any]],
    *,
    list_metadata: Mapping[str, Any],
    include_object: str,
    with_columns: bool = True,
) -> JsonObject:
    result: JsonObject = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(list_metadata),
        "columnDefinitions": column_definitions(resource) if with_columns else [],
        "rows": rows(resource, objects, include_object),
    }
    return result
