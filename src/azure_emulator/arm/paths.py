"""ARM resource ids: parsing the path of a resource request into subscription, resource group, namespace
and the type/name chain, and spelling ids the way each resource provider spells them.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ResourcePath:
    """`/subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{t1}/{n1}[/{t2}/{n2}...][/{tN}]`.

    `names` has one entry fewer than `types` when the path addresses a collection (a list request).
    """

    subscription_id: str
    resource_group: str
    namespace: str
    types: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def is_collection(self) -> bool:
        return len(self.names) < len(self.types)

    @property
    def type_path(self) -> str:
        """`sites/slots`, the key the provider catalogue uses."""
        return "/".join(self.types)

    @property
    def resource_group_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"

    def resource_id(self, *, resource_groups_segment: str = "resourceGroups") -> str:
        chain = "/".join(f"{t}/{n}" for t, n in zip(self.types, self.names, strict=False))
        return (
            f"/subscriptions/{self.subscription_id}/{resource_groups_segment}/{self.resource_group}"
            f"/providers/{self.namespace}/{chain}"
        )

    def parent(self) -> ResourcePath | None:
        """The resource this one is nested under (a site for a slot), or None at top level."""
        if len(self.types) < 2:
            return None
        return dataclasses.replace(self, types=self.types[:-1], names=self.names[: len(self.types) - 1])

    def with_canonical_types(self, namespace: str, type_path: str) -> ResourcePath:
        """The same path with the provider's own casing of namespace and types."""
        return dataclasses.replace(self, namespace=namespace, types=tuple(type_path.split("/")))


def parse_resource_path(segments: tuple[str, ...]) -> ResourcePath | None:
    """Parse segments of `/subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/...`; None if not that."""
    if len(segments) < 7:
        return None
    lowered = [s.lower() for s in segments]
    if lowered[0] != "subscriptions" or lowered[2] != "resourcegroups" or lowered[4] != "providers":
        return None
    chain = segments[6:]
    if any(part.lower() == "providers" for part in chain[::2]):
        return None  # an extension resource (`.../providers/Microsoft.Authorization/...`): not ours
    return ResourcePath(
        subscription_id=segments[1],
        resource_group=segments[3],
        namespace=segments[5],
        types=tuple(chain[0::2]),
        names=tuple(chain[1::2]),
    )


def parse_resource_id(resource_id: str) -> ResourcePath | None:
    path = parse_resource_path(tuple(p for p in resource_id.split("/") if p))
    if path is None or path.is_collection:
        return None
    return path
