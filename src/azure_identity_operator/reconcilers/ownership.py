"""Ownership markers: which cluster and which object an Azure resource the operator writes belongs to.

Several clusters (each with its own operator) may share one subscription, and two objects may declare the
same Azure resource. Without a record in Azure itself, each would take the resource for its own: adopt it,
rewrite its tags at every drift check, delete it with its object. So everything the operator creates or
adopts carries a marker naming its owner, `<cluster ID>/<namespace>/<name>`:

- a user-assigned identity, in the Azure tag `OWNER_TAG` (tag values hold at most 256 characters; a longer
  owner is shortened with a hash, see `Owner.tag_value`);
- a role assignment, at the end of its `description`: the user's text (`spec.description`), a space, and
  `[managed by azure-identity-operator: <owner>]` (`marked_description`, read back by `split_description`).

Federated identity credentials and system-assigned identities have neither tags nor a description in Azure
and carry no marker.

The rules the kinds apply (`reconcilers.user_assigned_identities`, `reconcilers.role_assignments`): a
resource without a marker is adopted as before, and marked; a marker naming this object is the operator's
own; a marker naming another owner (`Claim.FOREIGN`, or for an identity also `Claim.SIBLING`) means the
resource is never adopted, changed or deleted (`reasons.OWNED_ELSEWHERE`) unless the object carries
`ADOPT_ANNOTATION: "true"`, which takes it over and rewrites the marker. Role assignments of one cluster are
shared grants: a marker naming another object of this cluster (`Claim.SIBLING`) is a co-owner's.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import re
from collections.abc import Mapping

from azure_identity_operator.api import constants
from azure_identity_operator.reconcilers import flow
from azure_identity_operator.reconcilers.kube_port import ClusterIdentity

OWNER_TAG = "identityoperator.dev_owner"
"""The Azure tag naming the owner of a user-assigned identity. Part of the API: never renamed. Azure tag
names are case-insensitive, so it is found in any case, and `spec.tags` may not use it."""

ADOPT_ANNOTATION = f"{constants.GROUP}/adopt"
"""`"true"` lets the object take over an Azure resource whose marker names another owner (another cluster,
or another object), rewriting the marker to name this object."""

DESCRIPTION_MARKER_PREFIX = "[managed by azure-identity-operator: "
"""How the marker at the end of a role assignment's description begins."""

_DESCRIPTION_MARKER = re.compile(r"\[managed by azure-identity-operator: ([^\s\[\]]+)\]")
TAG_VALUE_LIMIT = 256
"""Azure's limit on the length of a tag value."""


@dataclasses.dataclass(frozen=True)
class Owner:
    """An object of the operator's kinds in one cluster, as markers name it."""

    cluster: str | None
    """The cluster ID (`IDENTITY_OPERATOR_CLUSTER_ID`, else the kube-system namespace's uid); `None` when
    the operator knows none, and the marker then names the namespace and name only."""
    namespace: str
    name: str

    @property
    def value(self) -> str:
        """`<cluster>/<namespace>/<name>`, or `<namespace>/<name>` without a cluster ID. Neither part can
        contain a slash (Kubernetes names, and cluster IDs as configured or a uid)."""
        local = f"{self.namespace}/{self.name}"
        return f"{self.cluster}/{local}" if self.cluster else local

    @property
    def tag_value(self) -> str:
        """`value`, shortened to fit a tag value: when it is longer than 256 characters, the name is cut and
        followed by `~` and 16 hex digits of the whole value's SHA-256, so distinct owners stay distinct."""
        full = self.value
        if len(full) <= TAG_VALUE_LIMIT:
            return full
        digest = hashlib.sha256(full.encode()).hexdigest()[:16]
        keep = TAG_VALUE_LIMIT - len(full) + len(self.name) - len(digest) - 1
        return dataclasses.replace(self, name=f"{self.name[:keep]}~{digest}").value

    @property
    def object_key(self) -> str:
        """`<namespace>/<name>`, as `flow.ObjectState.shared_with` names objects."""
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, marker: str) -> Owner | None:
        """The owner a marker names, `None` when it is not in the operator's format."""
        parts = marker.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            return None
        return cls(None, *parts) if len(parts) == 2 else cls(*parts)


def owner_of(obj: flow.ObjectState, cluster: ClusterIdentity) -> Owner:
    """The owner that objects' markers name: this cluster and the object's namespace and name."""
    return Owner(cluster.value, obj.namespace, obj.name)


class Claim(enum.Enum):
    """How a marker relates to an object."""

    UNMARKED = "unmarked"
    """No marker: adopted as any existing resource is, and marked."""
    OURS = "ours"
    """The marker names this object."""
    SIBLING = "sibling"
    """The marker names another object of this cluster."""
    FOREIGN = "foreign"
    """The marker names an object of another cluster, or is not in the operator's format."""


def claim(marker: str | None, owner: Owner, *, as_tag: bool = False) -> Claim:
    """How `marker` (a tag value when `as_tag`, else a description's) relates to `owner`."""
    if not marker:
        return Claim.UNMARKED
    if marker == (owner.tag_value if as_tag else owner.value):
        return Claim.OURS
    named = Owner.parse(marker)
    if named is not None and named.cluster == owner.cluster:
        return Claim.SIBLING
    return Claim.FOREIGN


def describe(marker: str, owner: Owner, kind: str) -> str:
    """The owner a marker names, for messages: "RoleAssignment team/reader of cluster east"."""
    named = Owner.parse(marker)
    if named is None:
        return f"an owner this operator cannot read ({marker!r})"
    if named.cluster == owner.cluster:
        where = "this cluster" if named.cluster else "a cluster without an ID, as is this one"
    else:
        where = f"cluster {named.cluster}" if named.cluster else "a cluster without an ID"
    return f"{kind} {named.object_key} of {where}"


def adopt_requested(obj: flow.ObjectState) -> bool:
    return str(obj.annotations.get(ADOPT_ANNOTATION, "")).strip().lower() == "true"


# --- tags ---------------------------------------------------------------------------------------------------


def is_owner_tag(name: str) -> bool:
    return name.lower() == OWNER_TAG


def tag_marker(tags: Mapping[str, str]) -> str | None:
    """The owner the tags name (the value of `OWNER_TAG`, in whatever case Azure holds its name)."""
    return next((value for name, value in tags.items() if is_owner_tag(name)), None)


def marked_tags(tags: Mapping[str, str], owner: Owner) -> dict[str, str]:
    """`tags` and the marker naming `owner`: exactly what an identity of `owner` carries in Azure."""
    return {
        **{name: value for name, value in tags.items() if not is_owner_tag(name)},
        OWNER_TAG: owner.tag_value,
    }


# --- descriptions -------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Description:
    """A role assignment's description read apart: the user's text and the marker's owner."""

    text: str | None
    marker: str | None


def split_description(description: str | None) -> Description:
    """The marker is the last `[managed by azure-identity-operator: ...]` in the description, wherever it
    stands (someone may have appended text after it); the text is what remains around it, trimmed."""
    if not description:
        return Description(None, None)
    markers = list(_DESCRIPTION_MARKER.finditer(description))
    if not markers:
        return Description(description, None)
    found = markers[-1]
    before, after = description[: found.start()].rstrip(), description[found.end() :].strip()
    text = f"{before} {after}" if before and after else before or after
    return Description(text or None, found.group(1))


def marked_description(text: str | None, marker: str) -> str:
    """The description Azure holds: the user's text, a space, and the marker naming `marker`."""
    suffix = f"{DESCRIPTION_MARKER_PREFIX}{marker}]"
    return f"{text} {suffix}" if text else suffix


def contains_marker(text: str) -> bool:
    return _DESCRIPTION_MARKER.search(text) is not None
