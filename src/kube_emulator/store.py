"""Object storage, the resourceVersion counter, and watch fan-out.

Objects are stored per (group, plural) as immutable-by-convention dicts: every write stores a new dict, so
readers serialise stored objects without copying. Each collection keeps a bounded history of change
events for watches that resume from a resourceVersion; its cost does not grow with total history. The
history (the watch window) begins when the server starts serving, as a kube-apiserver's watch cache begins
at its initial list: a watch from before it, or from a change the bounded history has dropped, is told its
resourceVersion is too old (410). Writers publish to watchers through per-watcher queues, so a slow watcher
never blocks a writer.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kube_emulator.errors import ApiError

JsonObject = dict[str, Any]
ObjectKey = tuple[str, str]  # (namespace, name); namespace is "" for cluster-scoped objects
StorageKey = tuple[str, str]  # (group, plural)


@dataclasses.dataclass(frozen=True)
class Change:
    """One committed write, as watchers see it."""

    resource_version: int
    type: str  # ADDED, MODIFIED, DELETED
    obj: JsonObject
    old: JsonObject | None
    # Serialised watch events of this change, shared by every watcher that sends the same bytes
    encoded: dict[tuple[str, str], bytes] = dataclasses.field(default_factory=dict, compare=False)


WatchEvent = tuple[str, JsonObject, dict[tuple[str, str], bytes] | None]


class Watcher:
    """One open watch: a filter and a queue of changes that passed it (None = the watch must end)."""

    def __init__(self, matches: Callable[[JsonObject], bool], namespace: str | None) -> None:
        self.matches = matches
        self.namespace = namespace
        self.queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()

    def offer(self, change: Change) -> None:
        event = self.translate(change)
        if event is not None:
            self.queue.put_nowait(event)

    def translate(self, change: Change) -> WatchEvent | None:
        """Map a change onto this watcher's view: objects moving in or out of the selection are reported
        as ADDED or DELETED, as kube-apiserver does for selector watches."""
        if (
            self.namespace is not None
            and (change.obj.get("metadata") or {}).get("namespace", "") != self.namespace
        ):
            return None
        new_matches = self.matches(change.obj)
        old_matches = change.old is not None and self.matches(change.old)
        event_type: str | None
        if change.type == "ADDED":
            event_type = "ADDED" if new_matches else None
        elif change.type == "DELETED":
            event_type = "DELETED" if new_matches or old_matches else None
        elif new_matches:
            event_type = "MODIFIED" if old_matches else "ADDED"
        else:
            event_type = "DELETED" if old_matches else None
        return None if event_type is None else (event_type, change.obj, change.encoded)


class Collection:
    """All objects of one resource (every served version shares it)."""

    def __init__(self, history_limit: int, history_start: int) -> None:
        self.objects: dict[ObjectKey, JsonObject] = {}
        self.history: collections.deque[Change] = collections.deque(maxlen=history_limit)
        self.watchers: set[Watcher] = set()
        # changes with a resourceVersion <= this may be missing from history
        self.truncated_before = history_start
        self.by_namespace: dict[str, set[ObjectKey]] = collections.defaultdict(set)


class Store:
    """The emulator's whole state; all calls run on the event loop thread, so no locking is needed."""

    def __init__(self, *, history_limit: int = 20000) -> None:
        self.resource_version = 0
        self._history_limit = history_limit
        # Where every collection's history begins, those created later too: a resource first written
        # after the start has no change before it that a watch could miss, but one written before a
        # restart may have had changes (deletions of all its objects) that no history holds.
        self._history_start = 0
        self._collections: dict[StorageKey, Collection] = {}

    def collection(self, key: StorageKey) -> Collection:
        found = self._collections.get(key)
        if found is None:
            found = self._collections[key] = Collection(self._history_limit, self._history_start)
        return found

    def start_history(self) -> None:
        """Open the watch window at the current resourceVersion (the server is ready to serve): changes
        made before, restored from a saved state or by the server setting itself up, cannot be resumed
        from, as on a kube-apiserver that has been running a while."""
        self._history_start = self.resource_version
        for collection in self._collections.values():
            collection.history.clear()
            collection.truncated_before = self.resource_version

    def next_resource_version(self) -> int:
        self.resource_version += 1
        return self.resource_version

    def get(self, key: StorageKey, object_key: ObjectKey) -> JsonObject | None:
        return self.collection(key).objects.get(object_key)

    def iter_objects(self, key: StorageKey, namespace: str | None) -> Iterator[JsonObject]:
        collection = self.collection(key)
        if namespace is None:
            keys = sorted(collection.objects)
        else:
            keys = sorted(collection.by_namespace.get(namespace, ()))
        for object_key in keys:
            yield collection.objects[object_key]

    def count_in_namespace(self, namespace: str) -> int:
        return sum(len(c.by_namespace.get(namespace, ())) for c in self._collections.values())

    def storage_keys(self) -> list[StorageKey]:
        return list(self._collections)

    def commit(self, key: StorageKey, change_type: str, obj: JsonObject, old: JsonObject | None) -> None:
        """Store (or remove, for DELETED) an object whose metadata.resourceVersion is already set."""
        collection = self.collection(key)
        metadata = obj["metadata"]
        object_key = (metadata.get("namespace", ""), metadata["name"])
        if change_type == "DELETED":
            collection.objects.pop(object_key, None)
            collection.by_namespace[object_key[0]].discard(object_key)
        else:
            collection.objects[object_key] = obj
            collection.by_namespace[object_key[0]].add(object_key)
        resource_version = int(metadata["resourceVersion"])
        change = Change(resource_version, change_type, obj, old)
        if len(collection.history) == collection.history.maxlen:
            collection.truncated_before = collection.history[0].resource_version
        collection.history.append(change)
        for watcher in list(collection.watchers):
            watcher.offer(change)

    def drop_collection(self, key: StorageKey) -> None:
        """Forget a resource entirely (its CRD was deleted); open watches end."""
        collection = self._collections.pop(key, None)
        if collection is not None:
            for watcher in collection.watchers:
                watcher.queue.put_nowait(None)

    def changes_since(self, key: StorageKey, resource_version: int) -> list[Change]:
        """Changes after a resourceVersion, or 410 Gone when history no longer reaches back that far."""
        collection = self.collection(key)
        if resource_version < collection.truncated_before:
            raise ApiError(
                410,
                "Expired",
                f"too old resource version: {resource_version} ({collection.truncated_before})",
            )
        found: list[Change] = []
        for change in reversed(collection.history):
            if change.resource_version <= resource_version:
                break
            found.append(change)
        found.reverse()
        return found

    def add_watcher(self, key: StorageKey, watcher: Watcher) -> None:
        self.collection(key).watchers.add(watcher)

    def remove_watcher(self, key: StorageKey, watcher: Watcher) -> None:
        collection = self._collections.get(key)
        if collection is not None:
            collection.watchers.discard(watcher)

    def close_watchers(self) -> None:
        """End every open watch (the server is stopping)."""
        for collection in self._collections.values():
            for watcher in collection.watchers:
                watcher.queue.put_nowait(None)

    def object_count(self) -> int:
        return sum(len(c.objects) for c in self._collections.values())

    def watcher_count(self) -> int:
        return sum(len(c.watchers) for c in self._collections.values())

    # Persistence -------------------------------------------------------------------------------------

    def snapshot(self) -> JsonObject:
        return {
            "resourceVersion": self.resource_version,
            "collections": [
                {"group": key[0], "plural": key[1], "objects": list(collection.objects.values())}
                for key, collection in self._collections.items()
                if collection.objects
            ],
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        self.resource_version = int(snapshot.get("resourceVersion", 0))
        for entry in snapshot.get("collections", []):
            collection = self.collection((entry["group"], entry["plural"]))
            for obj in entry["objects"]:
                metadata = obj["metadata"]
                object_key = (metadata.get("namespace", ""), metadata["name"])
                collection.objects[object_key] = obj
                collection.by_namespace[object_key[0]].add(object_key)
        # history does not survive a restart: a watch resuming from before it is told its version is too old
        self.start_history()
