"""Authentication and RBAC authorization, for `--authorization RBAC`.

Callers are identified by their bearer token: a service account token this server issued (signature and
expiry checked) is that service account, with the groups kube-apiserver gives it; the kubeconfig's token is
an administrator (`system:masters`); no token is `system:anonymous`. Resource requests are then allowed only
if a RoleBinding in the namespace or a ClusterRoleBinding grants the verb on the resource (and
subresource, and name), as kube-apiserver's RBAC authorizer decides. Discovery, OpenAPI, health and OIDC
endpoints are open to everyone, as the default `system:discovery` and `system:public-info-viewer` roles
make them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from kube_emulator.store import Store

ADMIN_TOKEN = "kube-emulator"
ADMIN_USER = "kube-emulator-admin"
RBAC_GROUP = "rbac.authorization.k8s.io"


@dataclasses.dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        return "system:masters" in self.groups


ADMIN = UserInfo(ADMIN_USER, ("system:masters", "system:authenticated"))
ANONYMOUS = UserInfo("system:anonymous", ("system:unauthenticated",))


def service_account_user(namespace: str, name: str) -> UserInfo:
    return UserInfo(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
    )


@dataclasses.dataclass(frozen=True)
class RequestAttributes:
    """What a resource request does, in the terms RBAC rules use."""

    verb: str
    api_group: str
    resource: str
    subresource: str
    namespace: str
    name: str


def _subject_matches(subject: Mapping[str, Any], user: UserInfo, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    name = subject.get("name")
    if kind == "User":
        return bool(name == user.name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{namespace}:{name}"
    return False


def _rule_allows(rule: Mapping[str, Any], request: RequestAttributes) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and request.verb not in verbs:
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and request.api_group not in groups:
        return False
    resources = rule.get("resources") or []
    if request.subresource:
        wanted = {
            f"{request.resource}/{request.subresource}",
            f"{request.resource}/*",
            f"*/{request.subresource}",
        }
    else:
        wanted = {request.resource, "*"}
    if not wanted & set(resources) and "*" not in resources:
        return False
    names = rule.get("resourceNames") or []
    return not names or (bool(request.name) and request.name in names)


class RbacAuthorizer:
    """Decides resource requests from the Roles, ClusterRoles and their bindings in the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _objects(self, plural: str, namespace: str | None) -> Iterator[Mapping[str, Any]]:
        return self._store.iter_objects((RBAC_GROUP, plural), namespace)

    def _rules(self, role_ref: Mapping[str, Any], namespace: str) -> list[Mapping[str, Any]]:
        if role_ref.get("kind") == "Role":
            role = self._store.get((RBAC_GROUP, "roles"), (namespace, str(role_ref.get("name"))))
        else:
            role = self._store.get((RBAC_GROUP, "clusterroles"), ("", str(role_ref.get("name"))))
        return list((role or {}).get("rules") or [])

    def allowed(self, user: UserInfo, request: RequestAttributes) -> bool:
        if user.is_admin:
            return True
        bindings: list[tuple[Mapping[str, Any], str]] = [
            (binding, "") for binding in self._objects("clusterrolebindings", None)
        ]
        if request.namespace:
            bindings += [
                (binding, request.namespace) for binding in self._objects("rolebindings", request.namespace)
            ]
        for binding, namespace in bindings:
            if not any(
                _subject_matches(subject, user, namespace) for subject in binding.get("subjects") or []
            ):
                continue
            if any(
                _rule_allows(rule, request) for rule in self._rules(binding.get("roleRef") or {}, namespace)
            ):
                return True
        return False


def forbidden_message(user: UserInfo, request: RequestAttributes) -> str:
    resource = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    subject = f'{request.resource} "{request.name}"' if request.name else request.resource
    where = f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
    return (
        f'{subject} is forbidden: User "{user.name}" cannot {request.verb} resource "{resource}" '
        f'in API group "{request.api_group}" {where}'
    )
