"""kubectl against the emulator: apply (client- and server-side), get with printer columns, short names
and categories, wait on conditions, status patches, delete with finalizers, explain, describe with
events, server-side validation messages, and the imperative `create` commands (protobuf bodies)."""

from __future__ import annotations

import base64
import json
import re

from fixtures.kube_emulator import KubeEmulatorInfo


def widget(object_name: str, size: int = 3, **spec: object) -> str:
    return json.dumps(
        {
            "apiVersion": "example.dev/v1",
            "kind": "Widget",
            "metadata": {"name": object_name},
            "spec": {"size": size, **spec},
        }
    )


def test_get_renders_the_crd_printer_columns_by_short_name_and_category(
    kube_emulator: KubeEmulatorInfo, namespace: str, widgets_crd: str
) -> None:
    kube_emulator.kubectl("apply", "-n", namespace, "-f", "-", input=widget("small", 2))
    output = kube_emulator.kubectl("get", "wd", "-n", namespace).stdout.splitlines()
    assert output[0].split() == ["NAME", "SIZE", "READY", "AGE"]
    assert output[1].split()[:2] == ["small", "2"]
    by_category = kube_emulator.kubectl("get", "examples", "-n", namespace, "-o", "name").stdout
    assert by_category.strip() == "widget.example.dev/small"


def test_client_side_apply_is_idempotent_and_applies_changes(
    kube_emulator: KubeEmulatorInfo, namespace: str, widgets_crd: str
) -> None:
    def apply(manifest: str) -> str:
        return kube_emulator.kubectl("apply", "-n", namespace, "-f", "-", input=manifest).stdout.strip()

    assert apply(widget("csa", 3)) == "widget.example.dev/csa created"
    assert apply(widget("csa", 3)) == "widget.example.dev/csa unchanged"
    assert apply(widget("csa", 5, name="renamed")) == "widget.example.dev/csa configured"
    assert apply(widget("csa", 5)) == "widget.example.dev/csa configured"
    spec = json.loads(
        kube_emulator.kubectl("get", "widget", "csa", "-n", namespace, "-o", "jsonpath={.spec}").stdout
    )
    assert spec == {"size": 5, "color": "red"}, "defaults applied, removed fields removed"


def test_server_side_apply_owns_fields_and_reports_conflicts(
    kube_emulator: KubeEmulatorInfo, namespace: str, widgets_crd: str
) -> None:
    def apply(manifest: str, *flags: str, check: bool = True) -> str:
        result = kube_emulator.kubectl(
            "apply", "--server-side", "-n", namespace, "-f", "-", *flags, input=manifest, check=check
        )
        return (result.stdout + result.stderr).strip()

    assert apply(widget("ssa", 3, name="first")) == "widget.example.dev/ssa serverside-applied"
    assert apply(widget("ssa", 4)) == "widget.example.dev/ssa serverside-applied"
    spec = json.loads(
        kube_emulator.kubectl("get", "widget", "ssa", "-n", namespace, "-o", "jsonpath={.spec}").stdout
    )
    assert spec == {"size": 4, "color": "red"}, "a field the manager stopped applying is removed"
    kube_emulator.kubectl(
        "patch", "widget", "ssa", "-n", namespace, "--type=merge", "-p", '{"spec":{"size":6}}'
    )
    conflict = apply(widget("ssa", 8), check=False)
    assert 'conflict with "kubectl-patch"' in conflict
    assert ".spec.size" in conflict
    assert apply(widget("ssa", 8), "--force-conflicts") == "widget.example.dev/ssa serverside-applied"
    managers = json.loads(
        kube_emulator.kubectl(
            "get", "widget", "ssa", "-n", namespace, "-o", "json", "--show-managed-fields"
        ).stdout
    )["metadata"]["managedFields"]
    assert {(entry["manager"], entry["operation"]) for entry in managers} == {("kubectl", "Apply")}


def test_status_patch_wait_describe_and_events(
    kube_emulator: KubeEmulatorInfo, namespace: str, widgets_crd: str
) -> None:
    kube_emulator.kubectl("apply", "-n", namespace, "-f", "-", input=widget("ready", 1))
    status = {
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "Done", "message": "all good"}]
        }
    }
    kube_emulator.kubectl(
        "patch",
        "widget",
        "ready",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    waited = kube_emulator.kubectl(
        "wait", "--for=condition=Ready", "widget/ready", "-n", namespace, "--timeout=5s"
    )
    assert waited.stdout.strip() == "widget.example.dev/ready condition met"
    uid = kube_emulator.kubectl(
        "get", "widget", "ready", "-n", namespace, "-o", "jsonpath={.metadata.uid}"
    ).stdout
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "ready.1"},
        "involvedObject": {
            "apiVersion": "example.dev/v1",
            "kind": "Widget",
            "name": "ready",
            "namespace": namespace,
            "uid": uid,
        },
        "reason": "Checked",
        "message": "looked at it",
        "type": "Normal",
        "source": {"component": "tester"},
        "count": 1,
    }
    kube_emulator.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(event))
    described = kube_emulator.kubectl("describe", "widget", "ready", "-n", namespace).stdout
    assert re.search(r"Message:\s+all good", described)
    events_section = described.split("Events:")[1]
    assert "Checked" in events_section
    assert "looked at it" in events_section
    columns = kube_emulator.kubectl("get", "wd", "ready", "-n", namespace, "--no-headers").stdout.split()
    assert columns[:3] == ["ready", "1", "True"]


def test_delete_waits_for_finalizers(
    kube_emulator: KubeEmulatorInfo, namespace: str, widgets_crd: str
) -> None:
    manifest = json.loads(widget("final", 1))
    manifest["metadata"]["finalizers"] = ["example.dev/finalizer"]
    kube_emulator.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    kube_emulator.kubectl("delete", "widget", "final", "-n", namespace, "--wait=false")
    marked = kube_emulator.kubectl(
        "get", "widget", "final", "-n", namespace, "-o", "jsonpath={.metadata.deletionTimestamp}"
    ).stdout
    assert marked
    kube_emulator.kubectl(
        "patch",
        "widget",
        "final",
        "-n",
        namespace,
        "--type=json",
        "-p",
        '[{"op":"remove","path":"/metadata/finalizers"}]',
    )
    gone = kube_emulator.kubectl("get", "widget", "final", "-n", namespace, check=False)
    assert 'widgets.example.dev "final" not found' in gone.stderr


def test_server_side_validation_messages(
    kube_emulator: KubeEmulatorInfo, namespace: str, widgets_crd: str
) -> None:
    def apply(manifest: str) -> str:
        return kube_emulator.kubectl(
            "apply", "-n", namespace, "-f", "-", input=manifest, check=False
        ).stderr.strip()

    assert 'strict decoding error: unknown field "spec.bogus"' in apply(widget("v", 3, bogus=True))
    too_big = apply(widget("v", 30))
    assert "spec.size: Invalid value: 30: spec.size in body should be less than or equal to 10" in too_big
    kube_emulator.kubectl("apply", "-n", namespace, "-f", "-", input=widget("v", 3, color="blue"))
    immutable = apply(widget("v", 3, color="red"))
    assert 'The Widget "v" is invalid: spec: Invalid value: "object": color is immutable' in immutable
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}, "bogus": 1}
    assert 'ConfigMap: strict decoding error: unknown field "bogus"' in apply(json.dumps(config_map))
    uninstalled = {"apiVersion": "nowhere.dev/v1", "kind": "Ghost", "metadata": {"name": "g"}}
    assert 'no matches for kind "Ghost" in version "nowhere.dev/v1"' in apply(json.dumps(uninstalled))


def test_explain_reads_the_openapi_v3_schema(kube_emulator: KubeEmulatorInfo, widgets_crd: str) -> None:
    explained = kube_emulator.kubectl("explain", "widgets.spec").stdout
    assert "KIND:       Widget" in explained
    assert "What the widget should be." in explained
    assert "size\t<integer> -required-" in explained


def test_imperative_create_commands(kube_emulator: KubeEmulatorInfo, namespace: str) -> None:
    kube_emulator.kubectl("create", "configmap", "settings", "-n", namespace, "--from-literal=mode=fast")
    kube_emulator.kubectl(
        "create", "secret", "generic", "creds", "-n", namespace, "--from-literal=password=s3cret"
    )
    kube_emulator.kubectl("create", "serviceaccount", "robot", "-n", namespace)
    kube_emulator.kubectl(
        "annotate", "serviceaccount", "robot", "-n", namespace, "azure.workload.identity/client-id=abc"
    )
    token = kube_emulator.kubectl(
        "create", "token", "robot", "-n", namespace, "--audience=api://AzureADTokenExchange"
    ).stdout
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == f"system:serviceaccount:{namespace}:robot"
    secret = json.loads(kube_emulator.kubectl("get", "secret", "creds", "-n", namespace, "-o", "json").stdout)
    assert (secret["type"], base64.b64decode(secret["data"]["password"])) == ("Opaque", b"s3cret")
    table = kube_emulator.kubectl("get", "configmaps,serviceaccounts", "-n", namespace).stdout
    assert "configmap/settings" in table
    assert "serviceaccount/robot" in table
