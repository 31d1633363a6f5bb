"""`UserAssignedIdentity`: make Azure hold the identity the spec declares, export and attach it, report it.

`ensure` reads the identity, creates it when it is missing (an identity deleted behind our back is created
again and its new IDs reported), adopts one that already exists under that name, converges its tags when
they differ, and writes nothing otherwise; then exports its IDs to the ConfigMap `exportTo` names (under
the keys it gives) and attaches it to the resources `attachTo` lists (`reconcilers.attachments`).

Its tags are `spec.tags` plus the ownership marker `ownership.OWNER_TAG` naming this cluster and object
(`reconcilers.ownership`): the marker is part of what the operator writes, so it is never drift to remove,
and is put back when it goes missing. An identity whose marker names any other owner (another cluster, or
another object of this one) is neither adopted, changed nor deleted: `OwnedElsewhere`, unless the object is
annotated `identityoperator.dev/adopt: "true"`.

`remove` derives the identity from the spec, never from status (anyone allowed to write `/status` could
point it at another object's identity): it detaches that identity, then deletes it if Azure holds it in
the declared location and no other owner's marker is on it. The spec is parsed once per pass, in `parse`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from azure_identity_operator.api import constants
from azure_identity_operator.api import user_assigned_identity as api
from azure_identity_operator.arm import errors, ids
from azure_identity_operator.arm.identities import Identity, IdentityPort, IdentityRef
from azure_identity_operator.arm.resources import ResourcePort
from azure_identity_operator.reconcilers import access, attachments, flow, ownership
from azure_identity_operator.reconcilers.kube_port import ClusterIdentity, ConfigMapPort, KubernetesError
from azure_identity_operator.status import outcome, reasons


@dataclasses.dataclass(frozen=True, kw_only=True)
class ParsedIdentity:
    """The spec as written and as Azure should hold it."""

    spec: api.UserAssignedIdentitySpec
    desired: api.DesiredIdentity

    @property
    def ref(self) -> IdentityRef:
        return identity_ref(self.desired)

    @property
    def where(self) -> str:
        return f"identity {self.desired.name!r} in resource group {self.desired.resource_group!r}"


def desired_from_spec(
    spec: Mapping[str, Any] | None, *, object_name: str, default_subscription_id: str
) -> ParsedIdentity:
    """Parse and validate the spec with Azure's rules; raise `InvalidSpecError` saying what to fix."""
    parsed = api.parse_spec(spec)
    desired = api.desired_identity(
        parsed, object_name=object_name, default_subscription_id=default_subscription_id
    )
    if not ids.is_guid(desired.subscription_id):
        raise api.InvalidSpecError(f"spec.subscriptionId {desired.subscription_id!r} is not a GUID")
    if not ids.is_valid_resource_group_name(desired.resource_group):
        raise api.InvalidSpecError(
            f"spec.resourceGroup {desired.resource_group!r} is not a valid resource group name "
            "(1-90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.')"
        )
    if not ids.is_valid_identity_name(desired.name):
        source = "spec.azureName" if desired.name != object_name else "metadata.name (set spec.azureName)"
        raise api.InvalidSpecError(
            f"{source}: {desired.name!r} is not a valid identity name "
            "(3-128 letters, digits, '-' or '_', starting with a letter or digit)"
        )
    if any(ownership.is_owner_tag(name) for name in desired.tags):
        raise api.InvalidSpecError(
            f"spec.tags: {ownership.OWNER_TAG!r} is the operator's ownership marker (it names this cluster "
            "and object, and the operator writes it itself); remove it from spec.tags"
        )
    if len(desired.tags) >= MAX_TAGS:
        raise api.InvalidSpecError(
            f"spec.tags: {len(desired.tags)} tags; Azure allows {MAX_TAGS} per resource and the operator's "
            f"ownership marker is one of them, so at most {MAX_TAGS - 1}"
        )
    return ParsedIdentity(spec=parsed, desired=desired)


MAX_TAGS = 50
"""Azure's limit on the tags of one resource."""

_UNOBSERVED: Mapping[str, Any] = {
    "id": None,
    "principalId": None,
    "clientId": None,
    "tenantId": None,
    "adopted": None,
}
"""Status IDs removed when the identity turns out to be another owner's: this object has none."""


def identity_ref(desired: api.DesiredIdentity) -> IdentityRef:
    return IdentityRef(desired.subscription_id, desired.resource_group, desired.name)


class UserAssignedIdentityHooks(flow.BaseHooks[ParsedIdentity]):
    kind = constants.USER_ASSIGNED_IDENTITY
    action = "reconciling the identity"
    removal = "deleting the identity"

    def __init__(
        self,
        identities: IdentityPort,
        resources: ResourcePort,
        config_maps: ConfigMapPort | None,
        *,
        default_subscription_id: str,
        default_tenant_id: str | None,
        cluster: ClusterIdentity | None = None,
    ) -> None:
        self._identities = identities
        self._resources = resources
        self._config_maps = config_maps
        self._default_subscription_id = default_subscription_id
        self._default_tenant_id = default_tenant_id
        self._cluster = cluster or ClusterIdentity()
        """Read at each pass: the cluster ID may be discovered after the hooks are built."""

    def parse(self, obj: flow.ObjectState) -> ParsedIdentity:
        return desired_from_spec(
            obj.spec, object_name=obj.name, default_subscription_id=self._default_subscription_id
        )

    def deletion_policy(self, spec: ParsedIdentity) -> str:
        return spec.spec.deletion_policy

    def requests(self, obj: flow.ObjectState, spec: ParsedIdentity) -> list[access.Request]:
        desired = spec.desired
        group = f"/subscriptions/{desired.subscription_id}/resourceGroups/{desired.resource_group}"
        requests: list[access.Request] = [
            access.NewIdentity(resource_group_id=group, location=desired.location)
        ]
        requests += [
            access.UseResource(resource_id=resource_id, action="attach an identity to")
            for resource_id in spec.spec.attach_to
        ]
        return requests

    async def ensure(self, obj: flow.ObjectState, spec: ParsedIdentity) -> outcome.Outcome:
        result = await self._ensure_identity(obj, spec)
        if not result.ready:
            return result
        exported = await self._export(obj, spec, result)
        if exported is not None:
            return exported
        return await attachments.reconcile_for_identity(
            self._resources,
            identity_outcome=result,
            attach_to=spec.spec.attach_to,
            status=obj.status,
        )

    async def _ensure_identity(self, obj: flow.ObjectState, spec: ParsedIdentity) -> outcome.Outcome:
        desired, ref, where = spec.desired, spec.ref, spec.where
        owner = ownership.owner_of(obj, self._cluster)
        tags = ownership.marked_tags(desired.tags, owner)
        try:
            current = await self._identities.get_identity(ref)
        except errors.ArmError as error:
            return _explained(error, action=f"reading {where}", desired=desired)

        changes: list[outcome.Change] = []
        adopted = bool(obj.status.get("adopted", False))
        recorded = obj.status.get("id")
        if current is None:
            try:
                current = await self._identities.create_or_update_identity(
                    ref, location=desired.location, tags=tags
                )
            except errors.ArmError as error:
                return _explained(error, action=f"creating {where}", desired=desired)
            if isinstance(recorded, str) and ids.same_id(recorded, current.id):
                changes.append(
                    outcome.Change(
                        reason=outcome.RECREATED,
                        message=f"{where} was missing in Azure: created it again, with new principal "
                        f"{current.principal_id} and client ID {current.client_id}",
                    )
                )
            else:
                changes.append(
                    outcome.Change(
                        reason=outcome.CREATED,
                        message=f"created {where} (principal {current.principal_id}, "
                        f"client ID {current.client_id})",
                    )
                )
            adopted = False
        else:
            marker = ownership.tag_marker(current.tags)
            claim = ownership.claim(marker, owner, as_tag=True)
            if claim in (ownership.Claim.SIBLING, ownership.Claim.FOREIGN):
                assert marker is not None
                if not ownership.adopt_requested(obj):
                    return _owned_elsewhere(where, marker, owner)
                adopted = True
                changes.append(
                    outcome.Change(
                        reason=outcome.ADOPTED,
                        message=f"took over {where} from {ownership.describe(marker, owner, self.kind.kind)} "
                        f"({ownership.ADOPT_ANNOTATION}=true): its ownership marker now names this object",
                    )
                )
            elif not recorded:
                # Found under this name before this object recorded any identity: taken over as it is, and
                # marked as this object's.
                adopted = True
                if claim is ownership.Claim.UNMARKED:
                    changes.append(
                        outcome.Change(
                            reason=outcome.ADOPTED,
                            message=f"adopted {where}, which carried no ownership marker, and marked it "
                            "as this object's",
                        )
                    )

        if _normalized_location(current.location) != _normalized_location(desired.location):
            return outcome.not_ready(
                reasons.CONFLICT,
                f"{where} already exists in location {current.location!r}, not {desired.location!r}; "
                "an identity cannot move: set spec.location to its location or choose another spec.azureName",
            )
        if dict(current.tags) != tags:
            spec_tags_differ = _user_tags(current.tags) != dict(desired.tags)
            marker_differs = ownership.tag_marker(current.tags) != owner.tag_value
            try:
                current = await self._identities.update_identity_tags(ref, tags=tags)
            except errors.ArmError as error:
                return _explained(
                    error, action=f"updating the tags of {where}", desired=desired
                ).with_changes(*changes)
            if not changes:
                if spec_tags_differ:
                    message = f"made the tags of {where} match the spec" + (
                        "" if obj.spec_changed else " again (they were changed in Azure)"
                    )
                    if marker_differs:
                        message += f", with its ownership marker {ownership.OWNER_TAG}"
                else:
                    message = f"put back the ownership marker {ownership.OWNER_TAG} of {where}"
                changes.append(
                    outcome.Change(
                        reason=outcome.UPDATED if obj.spec_changed else outcome.DRIFT_REPAIRED,
                        message=message,
                    )
                )

        return outcome.succeeded(
            f"{'adopted ' if adopted else ''}{where} is ready (client ID {current.client_id})",
            observed=_observed(current, self._default_tenant_id, adopted),
            changes=tuple(changes),
        )

    async def survey(self, objects: Sequence[flow.ObjectState]) -> dict[str, flow.Verdict]:
        """Drift check of many identities: one list per resource group instead of a GET per identity.

        An identity matches when Azure holds it in the declared location with exactly the declared tags
        and this object's ownership marker, its status shows the IDs Azure does, and its exported ConfigMap
        is current (read from Kubernetes, not ARM). Identities attached to resources are checked one by
        one: their attachments live on the resources.
        """
        verdicts: dict[str, flow.Verdict] = {}
        groups: dict[tuple[str, str], list[tuple[flow.ObjectState, ParsedIdentity]]] = {}
        for obj in objects:
            try:
                parsed = self.parse(obj)
            except api.InvalidSpecError:
                verdicts[flow.object_key(obj)] = flow.Verdict(drifted=True, why="invalid spec")
                continue
            if parsed.spec.attach_to:
                verdicts[flow.object_key(obj)] = flow.Verdict(drifted=True, why="attachments")
                continue
            group = (parsed.desired.subscription_id.lower(), parsed.desired.resource_group.lower())
            groups.setdefault(group, []).append((obj, parsed))
        for (subscription_id, resource_group), members in groups.items():
            try:
                listed = await self._identities.list_identities(subscription_id, resource_group)
            except errors.ArmError as error:
                verdicts.update({flow.object_key(obj): flow.unlisted(error) for obj, _ in members})
                continue
            by_name = {identity.name.lower(): identity for identity in listed}
            for obj, parsed in members:
                verdicts[flow.object_key(obj)] = await self._verdict(
                    obj, parsed, by_name.get(parsed.desired.name.lower())
                )
        return verdicts

    async def _verdict(
        self, obj: flow.ObjectState, parsed: ParsedIdentity, current: Identity | None
    ) -> flow.Verdict:
        if current is None:
            return flow.Verdict(drifted=True, why="missing in Azure")
        if _normalized_location(current.location) != _normalized_location(parsed.desired.location):
            return flow.Verdict(drifted=True, why="another location")
        if dict(current.tags) != ownership.marked_tags(
            parsed.desired.tags, ownership.owner_of(obj, self._cluster)
        ):
            return flow.Verdict(drifted=True, why="tags differ")
        observed = _observed(current, self._default_tenant_id, bool(obj.status.get("adopted", False)))
        if any(obj.status.get(field) != observed[field] for field in ("id", "principalId", "clientId")):
            return flow.Verdict(drifted=True, why="status differs from Azure")
        exported = await self._export(obj, parsed, outcome.succeeded("", observed))
        if exported is not None:
            return flow.Verdict(drifted=True, why="export failed")
        return flow.Verdict(observed=observed)

    async def _export(
        self, obj: flow.ObjectState, spec: ParsedIdentity, result: outcome.Outcome
    ) -> outcome.Outcome | None:
        """Copy the IDs to the ConfigMap `spec.exportTo.configMap` names, under the keys it gives; `None`
        when that is done.

        Only the exported keys are written: keys a previous spec exported and this one no longer names
        stay, like every other key of the ConfigMap. A failure keeps the identity's IDs in status: without
        them the next pass would take the identity this object created for an adopted one.
        """
        export_to = spec.spec.export_to
        if self._config_maps is None or export_to is None or export_to.config_map is None:
            return None
        name = export_to.config_map.name
        observed = result.observed
        values = {
            "clientId": observed.get("clientId"),
            "principalId": observed.get("principalId"),
            "tenantId": observed.get("tenantId"),
            "resourceId": observed.get("id"),
        }
        data = {
            key: str(values[id_name])
            for id_name, key in export_to.config_map.exported_keys().items()
            if values[id_name]
        }
        try:
            await self._config_maps.export_config_map(
                namespace=obj.namespace,
                name=name,
                data=data,
                owner={
                    "apiVersion": constants.API_VERSION,
                    "kind": self.kind.kind,
                    "name": obj.name,
                    "uid": obj.uid,
                },
            )
        except KubernetesError as error:
            if error.status in (400, 422):
                # The API server refused the object the user named: only the spec can fix that.
                return outcome.not_ready(
                    reasons.INVALID_SPEC,
                    f"spec.exportTo.configMap.name {name!r}: the Kubernetes API refused the ConfigMap: "
                    f"{error.message}",
                    observed=observed,
                ).with_changes(*result.changes)
            return outcome.not_ready(
                reasons.OPERATOR_ERROR,
                f"exporting the identity's IDs to ConfigMap {name!r}: {error}",
                retry_after=flow.UNEXPECTED_ERROR_RETRY_SECONDS,
                observed=observed,
            ).with_changes(*result.changes)
        return None

    async def remove(self, obj: flow.ObjectState, spec: ParsedIdentity) -> flow.Removal:
        """Detach, then delete the identity the spec names if Azure holds it where the spec says.

        Never one that merely shares the name in another location: that one is a `Conflict` the object
        never took over; nor one whose ownership marker names another owner: the object is released, with
        a Warning Event saying the identity stays in Azure.
        """
        ref, where = spec.ref, spec.where
        current = await self._identities.get_identity(ref)
        if current is None:
            return flow.removed(f"{where} is not in Azure")
        if _normalized_location(current.location) != _normalized_location(spec.desired.location):
            return flow.removed(f"{where} in {current.location!r} was never this object's: left in Azure")
        owner = ownership.owner_of(obj, self._cluster)
        marker = ownership.tag_marker(current.tags)
        if marker and ownership.claim(marker, owner, as_tag=True) is not ownership.Claim.OURS:
            left = (
                f"{where} belongs to {ownership.describe(marker, owner, self.kind.kind)} (tag "
                f"{ownership.OWNER_TAG}={marker}): left in Azure, neither detached nor deleted"
            )
            return flow.Removal(
                done=True,
                result=outcome.not_ready(reasons.DELETING, left),
                warning=f"{self.kind.kind} {obj.namespace}/{obj.name} released without deleting: {left}",
            )
        detached = await attachments.detach_before_deletion(
            self._resources,
            identity_id=current.id,
            attach_to=spec.spec.attach_to,
            status=obj.status,
        )
        if detached is not None:
            return flow.blocked(detached)
        await self._identities.delete_identity(ref)
        return flow.removed(
            f"deleted {where}", outcome.Change(reason=outcome.DELETED, message=f"deleted {where}")
        )


def _explained(error: errors.ArmError, *, action: str, desired: api.DesiredIdentity) -> outcome.Outcome:
    """The classified outcome, with a hint where the fix is on the user's side."""
    result = errors.outcome_for(error, action=action)
    if error.is_transient:
        return result
    if error.code == "ResourceGroupNotFound":
        return dataclasses.replace(
            result,
            message=f"{result.message}. Create resource group {desired.resource_group!r} in subscription "
            f"{desired.subscription_id} or correct spec.resourceGroup",
        )
    if error.code in ("SubscriptionNotFound", "InvalidSubscriptionId"):
        return dataclasses.replace(
            result,
            message=f"{result.message}. Correct spec.subscriptionId (it defaults to the operator's "
            "AZURE_SUBSCRIPTION_ID) or give the operator access to that subscription",
        )
    return result


def _observed(identity: Identity, default_tenant_id: str | None, adopted: bool) -> dict[str, Any]:
    return {
        "id": identity.id,
        "principalId": identity.principal_id,
        "clientId": identity.client_id,
        "tenantId": identity.tenant_id or default_tenant_id,
        "adopted": adopted,
    }


def _user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The tags an identity carries apart from the ownership marker."""
    return {name: value for name, value in tags.items() if not ownership.is_owner_tag(name)}


def _owned_elsewhere(where: str, marker: str, owner: ownership.Owner) -> outcome.Outcome:
    return outcome.not_ready(
        reasons.OWNED_ELSEWHERE,
        f"{where} belongs to {ownership.describe(marker, owner, 'UserAssignedIdentity')} (tag "
        f"{ownership.OWNER_TAG}={marker}): it is neither adopted, changed nor deleted for this object. "
        f"Choose another spec.azureName, or annotate {ownership.ADOPT_ANNOTATION}=true to take it over "
        "(its owner then reports OwnedElsewhere)",
        observed=_UNOBSERVED,
    )


def _normalized_location(location: str) -> str:
    """ARM answers `westeurope` for `West Europe`."""
    return "".join(location.split()).lower()
