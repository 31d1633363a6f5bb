"""The API semantics through the `kubernetes` client and plain HTTP: CRUD and Status bodies, optimistic
concurrency (409), JSON-patch tests (422), generateName, generation, the status subresource, finalizers,
namespaces, list pagination and selectors, watches (resume, selectors, bookmarks, timeouts), Leases,
events.k8s.io, service account tokens and the audit log."""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fixtures.kube_emulator import KubeEmulatorInfo

GROUP, VERSION, PLURAL = "example.dev", "v1", "widgets"


@pytest.fixture(scope="module")
def client(kube_emulator: KubeEmulatorInfo) -> Iterator[kubernetes.client.ApiClient]:
    api_client = kubernetes.config.new_client_from_config(config_file=str(kube_emulator.kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture
def core(client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(client)


@pytest.fixture
def custom(client: kubernetes.client.ApiClient, widgets_crd: str) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(client)


def http(
    info: KubeEmulatorInfo, method: str, path: str, body: Any = None, content_type: str = "application/json"
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        info.server + path, data=data, method=method, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def watch_events(info: KubeEmulatorInfo, path: str, count: int) -> list[dict[str, Any]]:
    """The first `count` events of a watch (then the client hangs up)."""
    with urllib.request.urlopen(info.server + path, timeout=15) as response:
        return [json.loads(response.readline()) for _ in range(count)]


def new_widget(
    custom: kubernetes.client.CustomObjectsApi, namespace: str, name: str, **metadata: Any
) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": name, **metadata},
        "spec": {"size": 1},
    }
    created: dict[str, Any] = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    return created


def test_missing_objects_answer_404_with_a_status_body(
    kube_emulator: KubeEmulatorInfo, namespace: str
) -> None:
    code, status = http(kube_emulator, "GET", f"/api/v1/namespaces/{namespace}/configmaps/absent")
    assert code == 404
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "absent" not found',
        "reason": "NotFound",
        "details": {"name": "absent", "kind": "configmaps"},
        "code": 404,
    }


def test_create_get_replace_delete_with_optimistic_concurrency(
    core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    created = core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings"}, "data": {"a": "1"}}
    )
    assert created.metadata.uid
    assert created.metadata.creation_timestamp
    assert created.metadata.resource_version
    with pytest.raises(kubernetes.client.ApiException) as exists:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "settings"}})
    assert exists.value.status == 409
    assert json.loads(exists.value.body)["reason"] == "AlreadyExists"
    created.data = {"a": "2"}
    replaced = core.replace_namespaced_config_map("settings", namespace, created)
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    created.data = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(kubernetes.client.ApiException) as stale:
        core.replace_namespaced_config_map("settings", namespace, created)
    assert stale.value.status == 409
    assert json.loads(stale.value.body)["reason"] == "Conflict"
    core.delete_namespaced_config_map("settings", namespace)
    with pytest.raises(kubernetes.client.ApiException) as gone:
        core.read_namespaced_config_map("settings", namespace)
    assert gone.value.status == 404


def test_replacing_a_custom_resource_needs_its_resource_version(
    kube_emulator: KubeEmulatorInfo,
    core: kubernetes.client.CoreV1Api,
    custom: kubernetes.client.CustomObjectsApi,
    namespace: str,
) -> None:
    created = new_widget(custom, namespace, "replaced")
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/replaced"
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": "replaced"},
        "spec": {"size": 2},
    }
    invalid = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'{PLURAL}.{GROUP} "replaced" is invalid: metadata.resourceVersion: Invalid value: 0x0: '
        "must be specified for an update",
        "reason": "Invalid",
        "details": {
            "name": "replaced",
            "group": GROUP,
            "kind": PLURAL,
            "causes": [
                {
                    "reason": "FieldValueInvalid",
                    "message": "Invalid value: 0x0: must be specified for an update",
                    "field": "metadata.resourceVersion",
                }
            ],
        },
        "code": 422,
    }
    assert http(kube_emulator, "PUT", path, body) == (422, invalid)
    assert http(kube_emulator, "PUT", f"{path}/status", {**body, "status": {"phase": "x"}}) == (422, invalid)
    body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    code, replaced = http(kube_emulator, "PUT", path, body)
    assert (code, replaced["spec"]["size"]) == (200, 2)
    # kubectl replace sends the stored resourceVersion when the manifest has none
    manifest = {**body, "metadata": {"name": "replaced"}, "spec": {"size": 3}}
    kube_emulator.kubectl("replace", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    stored = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "replaced")
    assert stored["spec"]["size"] == 3
    crd = http(
        kube_emulator, "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{PLURAL}.{GROUP}"
    )[1]
    del crd["metadata"]["resourceVersion"]
    code, refused = http(
        kube_emulator, "PUT", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{PLURAL}.{GROUP}", crd
    )
    assert (code, refused["details"]["kind"]) == (422, "customresourcedefinitions")
    # A ConfigMap, like most built-in kinds, takes a replacement without one
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "plain"}, "data": {"a": "1"}})
    code, config_map = http(
        kube_emulator,
        "PUT",
        f"/api/v1/namespaces/{namespace}/configmaps/plain",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "plain"}, "data": {"a": "2"}},
    )
    assert (code, config_map["data"]) == (200, {"a": "2"})


def test_patches_check_resource_version_and_json_patch_tests(
    kube_emulator: KubeEmulatorInfo, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    created = core.create_namespaced_config_map(namespace, {"metadata": {"name": "p"}, "data": {"a": "1"}})
    path = f"/api/v1/namespaces/{namespace}/configmaps/p"
    failing_test = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "0"},
        {"op": "add", "path": "/data/b", "value": "2"},
    ]
    code, status = http(kube_emulator, "PATCH", path, failing_test, "application/json-patch+json")
    assert (code, status["code"]) == (422, 422)
    passing_test = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": created.metadata.resource_version},
        {"op": "add", "path": "/data/b", "value": "2"},
    ]
    code, patched = http(kube_emulator, "PATCH", path, passing_test, "application/json-patch+json")
    assert code == 200
    assert patched["data"] == {"a": "1", "b": "2"}
    stale = {"metadata": {"resourceVersion": created.metadata.resource_version}, "data": {"c": "3"}}
    code, status = http(kube_emulator, "PATCH", path, stale, "application/merge-patch+json")
    assert (code, status["reason"]) == (409, "Conflict")
    code, patched = http(kube_emulator, "PATCH", path, {"data": {"a": None}}, "application/merge-patch+json")
    assert code == 200
    assert patched["data"] == {"b": "2"}
    code, patched = http(
        kube_emulator,
        "PATCH",
        path,
        {"metadata": {"finalizers": ["x/y"]}},
        "application/strategic-merge-patch+json",
    )
    assert patched["metadata"]["finalizers"] == ["x/y"]
    code, patched = http(
        kube_emulator,
        "PATCH",
        path,
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x/y"]}},
        "application/strategic-merge-patch+json",
    )
    assert "finalizers" not in patched["metadata"]


def test_generate_name_and_namespaces_must_exist(core: kubernetes.client.CoreV1Api, namespace: str) -> None:
    created = core.create_namespaced_config_map(namespace, {"metadata": {"generateName": "gen-"}})
    assert created.metadata.name.startswith("gen-")
    assert len(created.metadata.name) == 9
    with pytest.raises(kubernetes.client.ApiException) as missing:
        core.create_namespaced_config_map("no-such-namespace", {"metadata": {"name": "x"}})
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["message"] == 'namespaces "no-such-namespace" not found'
    assert core.read_namespaced_service_account("default", namespace).metadata.uid, "made with the namespace"


def test_generation_and_the_status_subresource(
    custom: kubernetes.client.CustomObjectsApi, namespace: str
) -> None:
    args = (GROUP, VERSION, namespace, PLURAL, "gen")
    created = new_widget(custom, namespace, "gen")
    assert created["metadata"]["generation"] == 1
    labelled = custom.patch_namespaced_custom_object(*args, {"metadata": {"labels": {"a": "b"}}})
    assert labelled["metadata"]["generation"] == 1
    resized = custom.patch_namespaced_custom_object(
        *args, {"spec": {"size": 2}, "status": {"phase": "ignored"}}
    )
    assert resized["metadata"]["generation"] == 2
    assert "status" not in resized
    status = {"status": {"observedGeneration": 2}, "spec": {"size": 9}}
    with_status = custom.patch_namespaced_custom_object_status(*args, status)
    assert with_status["status"] == {"observedGeneration": 2}
    assert with_status["spec"]["size"] == 2
    assert with_status["metadata"]["generation"] == 2
    same = custom.patch_namespaced_custom_object(*args, {"spec": {"size": 2}})
    assert same["metadata"]["resourceVersion"] == with_status["metadata"]["resourceVersion"], (
        "no-op writes store nothing"
    )


def test_finalizers_hold_deletion_until_removed(
    custom: kubernetes.client.CustomObjectsApi, namespace: str
) -> None:
    args = (GROUP, VERSION, namespace, PLURAL, "held")
    new_widget(custom, namespace, "held", finalizers=["example.dev/finalizer"])
    custom.delete_namespaced_custom_object(*args)
    marked = custom.get_namespaced_custom_object(*args)
    assert marked["metadata"]["deletionTimestamp"]
    with pytest.raises(kubernetes.client.ApiException) as forbidden:
        custom.patch_namespaced_custom_object(
            *args, {"metadata": {"finalizers": ["example.dev/finalizer", "other/new"]}}
        )
    assert forbidden.value.status == 422
    custom.patch_namespaced_custom_object(*args, {"metadata": {"finalizers": None}})
    with pytest.raises(kubernetes.client.ApiException) as gone:
        custom.get_namespaced_custom_object(*args)
    assert gone.value.status == 404


def test_the_deleted_event_carries_the_object_as_last_stored_with_its_finalizers(
    kube_emulator: KubeEmulatorInfo, custom: kubernetes.client.CustomObjectsApi, namespace: str
) -> None:
    args = (GROUP, VERSION, namespace, PLURAL, "kept")
    created = new_widget(custom, namespace, "kept", finalizers=["example.dev/a", "example.dev/b"])
    custom.delete_namespaced_custom_object(*args)
    custom.patch_namespaced_custom_object(*args, {"metadata": {"finalizers": ["example.dev/b"]}})
    last_stored = custom.get_namespaced_custom_object(*args)
    released = custom.patch_namespaced_custom_object(*args, {"metadata": {"finalizers": None}})
    assert "finalizers" not in released["metadata"], "the writer gets back what it wrote"
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    since = created["metadata"]["resourceVersion"]
    events = watch_events(kube_emulator, f"{path}?watch=1&resourceVersion={since}", 3)
    assert [event["type"] for event in events] == ["MODIFIED", "MODIFIED", "DELETED"]
    deleted = events[2]["object"]
    assert deleted["metadata"]["finalizers"] == ["example.dev/b"]
    assert deleted["metadata"]["deletionTimestamp"] == last_stored["metadata"]["deletionTimestamp"]
    assert deleted["metadata"]["resourceVersion"] == released["metadata"]["resourceVersion"]
    assert int(deleted["metadata"]["resourceVersion"]) > int(last_stored["metadata"]["resourceVersion"])
    without_version = {key: value for key, value in deleted["metadata"].items() if key != "resourceVersion"}
    assert without_version == {
        key: value for key, value in last_stored["metadata"].items() if key != "resourceVersion"
    }


def test_schema_violations_answer_422(custom: kubernetes.client.CustomObjectsApi, namespace: str) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": "bad"},
        "spec": {"size": 0, "color": "green"},
    }
    with pytest.raises(kubernetes.client.ApiException) as rejected:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    status = json.loads(rejected.value.body)
    assert (rejected.value.status, status["reason"]) == (422, "Invalid")
    assert {cause["field"] for cause in status["details"]["causes"]} == {"spec.size", "spec.color"}


def test_list_pagination_and_selectors(core: kubernetes.client.CoreV1Api, namespace: str) -> None:
    for index in range(5):
        core.create_namespaced_config_map(
            namespace,
            {"metadata": {"name": f"cm-{index}", "labels": {"parity": "even" if index % 2 == 0 else "odd"}}},
        )
    first = core.list_namespaced_config_map(namespace, limit=2)
    assert [item.metadata.name for item in first.items] == [
        "cm-0",
        "cm-1",
    ]
    assert first.metadata.remaining_item_count == 3
    rest = core.list_namespaced_config_map(namespace, limit=10, _continue=first.metadata._continue)
    assert [item.metadata.name for item in rest.items] == ["cm-2", "cm-3", "cm-4"]
    odd = core.list_namespaced_config_map(namespace, label_selector="parity in (odd)")
    assert [item.metadata.name for item in odd.items] == ["cm-1", "cm-3"]
    not_even = core.list_namespaced_config_map(namespace, label_selector="parity!=even,parity")
    assert [item.metadata.name for item in not_even.items] == ["cm-1", "cm-3"]
    named = core.list_namespaced_config_map(namespace, field_selector="metadata.name=cm-4")
    assert [item.metadata.name for item in named.items] == ["cm-4"]


def test_custom_resources_answer_field_selectors_on_name_and_namespace_only(
    kube_emulator: KubeEmulatorInfo, custom: kubernetes.client.CustomObjectsApi, namespace: str
) -> None:
    new_widget(custom, namespace, "one")
    new_widget(custom, namespace, "two")
    collection = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    code, listing = http(kube_emulator, "GET", f"{collection}?fieldSelector=metadata.name%3Dtwo")
    assert (code, [item["metadata"]["name"] for item in listing["items"]]) == (200, ["two"])
    code, listing = http(
        kube_emulator,
        "GET",
        f"/apis/{GROUP}/{VERSION}/{PLURAL}?fieldSelector=metadata.namespace%3D{namespace}",
    )
    assert (code, len(listing["items"])) == (200, 2)
    refused = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": '"spec.size" is not a known field selector: only "metadata.name", "metadata.namespace"',
        "reason": "BadRequest",
        "code": 400,
    }
    for query in ("", "watch=1&", "watch=1&resourceVersion=0&"):
        assert http(kube_emulator, "GET", f"{collection}?{query}fieldSelector=spec.size%3D1") == (
            400,
            refused,
        )
    assert http(kube_emulator, "DELETE", f"{collection}?fieldSelector=spec.size%3D1") == (400, refused)
    assert len(custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]) == 2
    # Built-in kinds keep answering selectors on their own fields
    code, listing = http(
        kube_emulator, "GET", f"/api/v1/namespaces/{namespace}/events?fieldSelector=reason%3Dx"
    )
    assert (code, listing["items"]) == (200, [])


def test_watch_resumes_from_a_resource_version_with_full_objects(
    kube_emulator: KubeEmulatorInfo, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    start = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "w", "labels": {"watched": "yes"}}, "data": {"a": "1"}}
    )
    core.patch_namespaced_config_map("w", namespace, {"data": {"a": "2"}})
    core.patch_namespaced_config_map("w", namespace, {"metadata": {"labels": {"watched": "no"}}})
    core.delete_namespaced_config_map("w", namespace)
    base = f"/api/v1/namespaces/{namespace}/configmaps?watch=1&resourceVersion={start}"
    events = watch_events(kube_emulator, base, 4)
    assert [event["type"] for event in events] == ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]
    assert events[1]["object"]["data"] == {"a": "2"}
    assert events[1]["object"]["kind"] == "ConfigMap"
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "later", "labels": {"watched": "yes"}}}
    )
    selected = watch_events(kube_emulator, base + "&labelSelector=watched%3Dyes", 4)
    assert [event["type"] for event in selected] == ["ADDED", "MODIFIED", "DELETED", "ADDED"], (
        "leaving the selection is a DELETED"
    )
    assert selected[3]["object"]["metadata"]["name"] == "later"


def test_watch_from_before_the_watch_window_gets_one_expired_error_event_and_ends(
    kube_emulator: KubeEmulatorInfo, namespace: str
) -> None:
    """resourceVersion 1 predates the server's start (its own namespaces were written before it served),
    so even a resource with few changes cannot be resumed from there, as on a kube-apiserver that has
    been running a while: 200, one ERROR event with a 410 Status, then the end of the stream."""
    for path in ("/api/v1/namespaces", f"/api/v1/namespaces/{namespace}/configmaps"):
        with urllib.request.urlopen(
            f"{kube_emulator.server}{path}?watch=1&resourceVersion=1", timeout=10
        ) as answer:
            assert answer.status == 200
            lines = answer.read().splitlines()  # returns only once the server has ended the stream
        assert len(lines) == 1
        event = json.loads(lines[0])
        assert event["type"] == "ERROR"
        status = event["object"]
        assert {key: status[key] for key in ("kind", "apiVersion", "status", "reason", "code")} == {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "Expired",
            "code": 410,
        }
        assert re.fullmatch(r"too old resource version: 1 \(\d+\)", status["message"]), status["message"]


def test_watch_without_resource_version_starts_with_current_objects_and_sends_bookmarks(
    kube_emulator: KubeEmulatorInfo, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "present"}})
    events = watch_events(
        kube_emulator, f"/api/v1/namespaces/{namespace}/configmaps?watch=true&allowWatchBookmarks=true", 2
    )
    assert events[0]["type"] == "ADDED"
    assert events[0]["object"]["metadata"]["name"] == "present"
    assert events[1]["type"] == "BOOKMARK", "the session's server sends a bookmark every second"
    assert set(events[1]["object"]["metadata"]) == {"resourceVersion"}


def test_field_selectors_find_events_of_an_object(
    kube_emulator: KubeEmulatorInfo, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    uid = str(uuid.uuid4())
    for name, involved in (("mine", "target"), ("other", "bystander")):
        core.create_namespaced_event(
            namespace,
            {
                "metadata": {"name": name},
                "involvedObject": {"kind": "Widget", "name": involved, "namespace": namespace, "uid": uid},
                "reason": "Test",
                "message": name,
                "type": "Normal",
            },
        )
    selector = f"involvedObject.name=target,involvedObject.namespace={namespace},involvedObject.uid={uid}"
    found = core.list_namespaced_event(namespace, field_selector=selector)
    assert [event.message for event in found.items] == ["mine"]


def test_leases_and_both_event_apis_are_served(
    client: kubernetes.client.ApiClient, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    coordination = kubernetes.client.CoordinationV1Api(client)
    lease = coordination.create_namespaced_lease(
        namespace,
        {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}},
    )
    lease.spec.holder_identity = "b"
    assert coordination.replace_namespaced_lease("leader", namespace, lease).spec.holder_identity == "b"
    events = kubernetes.client.EventsV1Api(client)
    created = events.create_namespaced_event(
        namespace,
        {
            "metadata": {"name": "e"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reason": "R",
            "action": "A",
            "reportingController": "c",
            "reportingInstance": "i",
            "note": "n",
            "type": "Normal",
            "regarding": {"kind": "Widget", "name": "x"},
        },
    )
    assert created.note == "n"
    assert created.regarding.name == "x"
    as_core = core.list_namespaced_event(namespace, field_selector="involvedObject.name=x").items
    assert [(event.message, event.reporting_component) for event in as_core] == [("n", "c")]
    core.create_namespaced_event(
        namespace,
        {
            "metadata": {"name": "f"},
            "involvedObject": {"kind": "Widget", "name": "y"},
            "message": "m",
            "eventTime": "2026-01-01T00:00:00.000000Z",
        },
    )
    as_events_v1 = events.list_namespaced_event(namespace, field_selector="regarding.name=y").items
    assert [event.note for event in as_events_v1] == ["m"]


def test_namespace_deletion_removes_its_objects(
    kube_emulator: KubeEmulatorInfo, core: kubernetes.client.CoreV1Api
) -> None:
    name = f"doomed-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_config_map(name, {"metadata": {"name": "x"}})
    core.delete_namespace(name)
    with pytest.raises(kubernetes.client.ApiException) as gone:
        core.read_namespace(name)
    assert gone.value.status == 404
    assert core.list_namespaced_config_map(name).items == []


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_token_requests_are_signed_by_the_published_key(
    kube_emulator: KubeEmulatorInfo, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "workload"}})
    code, answer = http(
        kube_emulator,
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/workload/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"audiences": ["api://AzureADTokenExchange"], "expirationSeconds": 600},
        },
    )
    assert code == 201
    token = answer["status"]["token"]
    header, payload, signature = token.split(".")
    claims = json.loads(_b64decode(payload))
    _, discovery = http(kube_emulator, "GET", "/.well-known/openid-configuration")
    assert claims["iss"] == discovery["issuer"] == kube_emulator.server
    assert claims["sub"] == f"system:serviceaccount:{namespace}:workload"
    assert claims["aud"] == ["api://AzureADTokenExchange"]
    assert claims["exp"] - claims["iat"] == 600
    _, jwks = http(kube_emulator, "GET", "/openid/v1/jwks")
    key = next(k for k in jwks["keys"] if k["kid"] == json.loads(_b64decode(header))["kid"])
    public_key = rsa.RSAPublicNumbers(
        int.from_bytes(_b64decode(key["e"]), "big"), int.from_bytes(_b64decode(key["n"]), "big")
    ).public_key()
    public_key.verify(
        _b64decode(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    as_workload = urllib.request.Request(
        f"{kube_emulator.server}/api/v1/namespaces/{namespace}/serviceaccounts/workload",
        headers={"Authorization": f"Bearer {token}"},
    )
    urllib.request.urlopen(as_workload, timeout=10).close()
    _, audit = http(kube_emulator, "GET", "/debug/audit")
    users = {r["user"] for r in audit["records"] if r["namespace"] == namespace and r["verb"] == "get"}
    assert users == {f"system:serviceaccount:{namespace}:workload"}


def test_audit_log_records_verbs_resources_and_user_agents(
    kube_emulator: KubeEmulatorInfo, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "audited"}})
    core.patch_namespaced_config_map("audited", namespace, {"data": {"a": "1"}})
    _, audit = http(kube_emulator, "GET", "/debug/audit")
    mine = [
        record
        for record in audit["records"]
        if record["namespace"] == namespace and record["resource"] == "configmaps"
    ]
    assert [(record["verb"], record["name"], record["code"]) for record in mine] == [
        ("create", "", 201),
        ("patch", "audited", 200),
    ]
    assert mine[0]["userAgent"].startswith("OpenAPI-Generator")
    on_disk = kube_emulator.audit_records()
    assert any(record["name"] == "audited" and record["verb"] == "patch" for record in on_disk)


def test_dependents_are_garbage_collected_unless_orphaned(
    custom: kubernetes.client.CustomObjectsApi, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    for name, propagation in (("owner", "Background"), ("orphaner", "Orphan")):
        owner = new_widget(custom, namespace, name)
        reference = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Widget",
            "name": name,
            "uid": owner["metadata"]["uid"],
        }
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": f"{name}-data", "ownerReferences": [reference]}}
        )
        custom.delete_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, body={"propagationPolicy": propagation}
        )
    remaining = [item.metadata.name for item in core.list_namespaced_config_map(namespace).items]
    assert remaining == ["orphaner-data"]


def test_watch_with_initial_events_and_end_of_watch_when_the_client_leaves(
    kube_emulator: KubeEmulatorInfo, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "initial"}})
    path = (
        f"/api/v1/namespaces/{namespace}/configmaps?watch=1&sendInitialEvents=true"
        "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
    )
    _, before = http(kube_emulator, "GET", "/debug/stats")
    response = urllib.request.urlopen(kube_emulator.server + path, timeout=10)
    first = json.loads(response.readline())
    marker = json.loads(response.readline())
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "initial")
    assert marker["type"] == "BOOKMARK"
    assert marker["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    _, during = http(kube_emulator, "GET", "/debug/stats")
    assert during["watchers"] == before["watchers"] + 1
    _, audit = http(kube_emulator, "GET", "/debug/audit")
    assert any(r["verb"] == "watch" and r["namespace"] == namespace for r in audit["records"]), (
        "an open watch is already in the audit log"
    )
    response.close()
    deadline = time.monotonic() + 5
    while http(kube_emulator, "GET", "/debug/stats")[1]["watchers"] > before["watchers"]:
        assert time.monotonic() < deadline, "the server keeps a watch whose client left"
        time.sleep(0.1)


def test_watch_ends_at_its_timeout(kube_emulator: KubeEmulatorInfo, namespace: str) -> None:
    started = time.monotonic()
    with urllib.request.urlopen(
        f"{kube_emulator.server}/api/v1/namespaces/{namespace}/configmaps?watch=1&timeoutSeconds=1",
        timeout=15,
    ) as response:
        assert response.read() == b""
    assert 0.9 < time.monotonic() - started < 5


def test_watch_as_table_as_kubectl_get_watch_asks(
    kube_emulator: KubeEmulatorInfo, custom: kubernetes.client.CustomObjectsApi, namespace: str
) -> None:
    new_widget(custom, namespace, "tabled")
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "tabled", {"spec": {"size": 7}})
    request = urllib.request.Request(
        f"{kube_emulator.server}/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}?watch=1",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        event = json.loads(response.readline())
    table = event["object"]
    assert (event["type"], table["kind"]) == ("ADDED", "Table")
    assert [column["name"] for column in table["columnDefinitions"]] == ["Name", "Size", "Ready", "Age"]
    assert table["rows"][0]["cells"][:3] == ["tabled", 7, None]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_delete_collection_by_label(core: kubernetes.client.CoreV1Api, namespace: str) -> None:
    for name, team in (("a", "red"), ("b", "red"), ("c", "blue")):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": {"team": team}}})
    core.delete_collection_namespaced_config_map(namespace, label_selector="team=red")
    assert [item.metadata.name for item in core.list_namespaced_config_map(namespace).items] == ["c"]


def test_an_immutable_config_map_keeps_its_data(kube_emulator: KubeEmulatorInfo, namespace: str) -> None:
    """As kube-apiserver validates ConfigMap updates: with `immutable: true`, data and the flag itself are
    frozen (422 Invalid, Forbidden causes); metadata still changes."""
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    status, _ = http(
        kube_emulator,
        "POST",
        path,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "frozen"}, "data": {"a": "1"},
         "immutable": True},
    )  # fmt: skip
    assert status == 201
    merge = "application/merge-patch+json"
    status, body = http(kube_emulator, "PATCH", f"{path}/frozen", {"data": {"a": "2"}}, merge)
    assert status == 422
    assert body["reason"] == "Invalid"
    assert body["message"] == (
        'ConfigMap "frozen" is invalid: data: Forbidden: field is immutable when `immutable` is set'
    )
    status, body = http(kube_emulator, "PATCH", f"{path}/frozen", {"immutable": False}, merge)
    assert status == 422
    assert body["details"]["causes"][0]["field"] == "immutable"
    status, body = http(kube_emulator, "PATCH", f"{path}/frozen", {"metadata": {"labels": {"x": "y"}}}, merge)
    assert status == 200
    assert body["data"] == {"a": "1"}
