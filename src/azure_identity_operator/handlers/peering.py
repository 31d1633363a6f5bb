"""Replicas hand over without overlapping: a starting operator ranks below every live peer.

kopf's peering pauses every operator that sees a live peer of higher priority, and resumes it once no
such peer is left. With priorities drawn at random, a replica that starts during a rollout outranks the
active one half the time, and then both work for a moment: the newcomer resumes as soon as it looks at the
peering object, the old one pauses only when it notices the newcomer's entry. Ranking every newcomer below
the live peers removes that window: a starting replica stands by until the active one has left the peering
object (a clean shutdown) or its entry has expired (a crash), so only one replica works at any moment.

The startup handler runs before kopf's peering starts; it reads the peering object with the operator's own
client (`kube_api`, logged in as kopf logs in; kopf's own API client is not logged in yet) using `list`,
the verb the RBAC grants on it.
"""

from __future__ import annotations

import datetime
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import kopf

from azure_identity_operator.handlers import kube_api

PEERING_GROUP = "kopf.dev"
PEERING_VERSION = "v1"
PRIORITY_GAP = (1, 1000)
"""How far below the lowest live peer a newcomer ranks: random, so that replicas starting together do not
tie (kopf pauses every peer when priorities tie)."""

logger = logging.getLogger(__name__)


def live_priorities(status: Mapping[str, Any] | None, *, now: datetime.datetime) -> list[int]:
    """Priorities of the peers in a peering object's status whose liveness has not expired."""
    found: list[int] = []
    for entry in (status or {}).values():
        if not isinstance(entry, Mapping):
            continue
        try:
            lastseen = datetime.datetime.fromisoformat(str(entry["lastseen"]))
            lifetime = float(entry.get("lifetime", 60))
            priority = int(entry.get("priority", 0))
        except (KeyError, TypeError, ValueError):
            continue
        if lastseen.tzinfo is None:
            lastseen = lastseen.replace(tzinfo=datetime.UTC)
        if lastseen + datetime.timedelta(seconds=lifetime) > now:
            found.append(priority)
    return found


def priority_below(priorities: Iterable[int], *, default: int) -> int:
    """`default` when no peer is alive, else a priority below the lowest live one."""
    existing = list(priorities)
    if not existing:
        return default
    return min(existing) - random.randint(*PRIORITY_GAP)


async def peering_statuses(
    client: kube_api.KubeClient, name: str, namespaces: Sequence[str]
) -> list[Mapping[str, Any] | None]:
    """The status of the peering object `name` in each namespace, or of the cluster one."""
    prefix = f"/apis/{PEERING_GROUP}/{PEERING_VERSION}"
    if namespaces:
        paths = [f"{prefix}/namespaces/{quote(namespace, safe='')}/kopfpeerings" for namespace in namespaces]
    else:
        paths = [f"{prefix}/clusterkopfpeerings"]
    statuses: list[Mapping[str, Any] | None] = []
    for path in paths:
        found = await client.request("GET", path, params={"fieldSelector": f"metadata.name={name}"})
        statuses += [item.get("status") for item in (found or {}).get("items") or ()]
    return statuses


def rank_below_live_peers(
    registry: kopf.OperatorRegistry, settings: kopf.OperatorSettings, *, namespaces: Sequence[str]
) -> None:
    """Register the startup handler that lowers this process's peering priority below every live peer."""

    @kopf.on.startup(registry=registry)
    async def rank_below_peers(**_: Any) -> None:
        name = settings.peering.name
        client = kube_api.KubeClient(lambda: kube_api.login(settings))
        try:
            statuses = await peering_statuses(client, name, namespaces)
        except kube_api.KubeApiError as error:
            # kopf reports a missing peering object itself; keep the drawn priority.
            logger.warning("Could not read the peering object %r to rank below live peers: %s", name, error)
            return
        finally:
            await client.close()
        now = datetime.datetime.now(datetime.UTC)
        priorities = [priority for status in statuses for priority in live_priorities(status, now=now)]
        settings.peering.priority = priority_below(priorities, default=settings.peering.priority)
        if priorities:
            logger.info(
                "%d live peer(s) in %r: this replica takes priority %d and works once they leave",
                len(priorities),
                name,
                settings.peering.priority,
            )
