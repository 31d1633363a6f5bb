"""Kinds served under two APIs from one storage: `events.k8s.io/v1` Events are core v1 Events with other
field names, as in kube-apiserver, so an event posted through either API is listed by both (and
`kubectl describe`, which reads core Events, shows events posted as `events.k8s.io/v1`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JsonObject = dict[str, Any]

# events.k8s.io/v1 field -> core v1 field (fields with the same name in both are not listed)
EVENTS_V1_TO_CORE = {
    "regarding": "involvedObject",
    "note": "message",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
    "reportingController": "reportingComponent",
}
CORE_TO_EVENTS_V1 = {core: events for events, core in EVENTS_V1_TO_CORE.items()}


def _rename(obj: Mapping[str, Any], names: Mapping[str, str], api_version: str) -> JsonObject:
    renamed = {names.get(key, key): value for key, value in obj.items()}
    renamed["apiVersion"] = api_version
    return renamed


def converts(group: str, kind: str) -> bool:
    return group == "events.k8s.io" and kind == "Event"


def to_stored(group: str, kind: str, obj: Mapping[str, Any]) -> JsonObject:
    """An object as written through `group` in its stored (core) form; others are returned as they are."""
    if not converts(group, kind):
        return dict(obj)
    return _rename(obj, EVENTS_V1_TO_CORE, "v1")


def to_served(group: str, version: str, kind: str, obj: Mapping[str, Any]) -> JsonObject:
    """A stored object in the form `group`/`version` serves it."""
    return _rename(obj, CORE_TO_EVENTS_V1, f"{group}/{version}")
