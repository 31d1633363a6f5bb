"""Server lifecycle: objects, CRDs and the resourceVersion counter survive a restart with --state-dir, and
a watch resuming from before the restart is told its resourceVersion is gone (410), as after a compaction.
Also CRD changes at run time (several served versions sharing storage, deleting a CRD) and serving over
TLS (--tls) to kubectl, the kubernetes client and a kopf operator held to RBAC (--authorization RBAC), and
service account tokens projected into files (--project-token)."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from fixtures.kube_emulator import WIDGETS_CRD, KubeEmulatorInfo, start_kube_emulator

WIDGET = "/apis/example.dev/v1/namespaces/default/widgets"
SAMPLE_OPERATOR = Path(__file__).parent / "sample_operator.py"
OPERATOR_RBAC = Path(__file__).parent / "manifests" / "widget-operator-rbac.yaml"


def read(info: KubeEmulatorInfo, path: str) -> Any:
    with urllib.request.urlopen(info.server + path, timeout=10) as response:
        return json.loads(response.readline())


def test_state_survives_a_restart_and_old_watches_get_410(tmp_path: Path) -> None:
    first = start_kube_emulator(tmp_path / "state")
    try:
        first.info.kubectl("apply", "-f", str(WIDGETS_CRD))
        manifest = {
            "apiVersion": "example.dev/v1",
            "kind": "Widget",
            "metadata": {"name": "kept"},
            "spec": {"size": 2},
        }
        first.info.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        before = read(first.info, f"{WIDGET}/kept")
        # A resource whose every object is gone before the restart is in no saved state, yet a watch
        # resuming from before the deletion must not miss it
        first.info.kubectl("create", "configmap", "passing", "-n", "kube-public")
        passing = read(first.info, "/api/v1/namespaces/kube-public/configmaps/passing")
        first.info.kubectl("delete", "configmap", "passing", "-n", "kube-public")
    finally:
        first.stop()
    second = start_kube_emulator(tmp_path / "state")
    try:
        after = read(second.info, f"{WIDGET}/kept")
        assert after == before
        second.info.kubectl("patch", "widget", "kept", "--type=merge", "-p", '{"spec":{"size":3}}')
        patched = read(second.info, f"{WIDGET}/kept")
        assert int(patched["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
        resume_from = int(before["metadata"]["resourceVersion"]) - 1
        event = read(second.info, f"{WIDGET}?watch=1&resourceVersion={resume_from}")
        assert event["type"] == "ERROR"
        assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
        emptied = "/api/v1/namespaces/kube-public/configmaps?watch=1&resourceVersion="
        event = read(second.info, emptied + passing["metadata"]["resourceVersion"])
        assert (event["type"], event["object"]["code"]) == ("ERROR", 410)
    finally:
        second.stop()


def gadget_crd(versions: list[dict[str, object]]) -> str:
    return json.dumps(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "gadgets.example.dev"},
            "spec": {
                "group": "example.dev",
                "scope": "Cluster",
                "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                "versions": versions,
            },
        }
    )


def test_versions_share_storage_and_deleting_a_crd_removes_its_objects(
    kube_emulator: KubeEmulatorInfo,
) -> None:
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    versions = [
        {"name": "v1beta1", "served": True, "storage": False, "schema": schema},
        {"name": "v1", "served": True, "storage": True, "schema": schema},
    ]
    kube_emulator.kubectl("apply", "-f", "-", input=gadget_crd(versions))
    gadget = {
        "apiVersion": "example.dev/v1beta1",
        "kind": "Gadget",
        "metadata": {"name": "g"},
        "spec": {"x": 1},
    }
    kube_emulator.kubectl("apply", "-f", "-", input=json.dumps(gadget))
    as_v1 = json.loads(kube_emulator.kubectl("get", "--raw", "/apis/example.dev/v1/gadgets/g").stdout)
    assert (as_v1["apiVersion"], as_v1["spec"]) == ("example.dev/v1", {"x": 1})
    group = json.loads(kube_emulator.kubectl("get", "--raw", "/apis/example.dev").stdout)
    assert group["preferredVersion"]["version"] == "v1"
    kube_emulator.kubectl("delete", "crd", "gadgets.example.dev")
    missing = kube_emulator.kubectl("get", "--raw", "/apis/example.dev/v1/gadgets/g", check=False)
    assert missing.returncode != 0
    kube_emulator.kubectl("apply", "-f", "-", input=gadget_crd(versions))
    listing = json.loads(kube_emulator.kubectl("get", "--raw", "/apis/example.dev/v1/gadgets").stdout)
    assert listing["items"] == [], "objects of a deleted CRD do not come back with it"
    kube_emulator.kubectl("delete", "crd", "gadgets.example.dev")


def test_kopf_over_tls_as_a_service_account_held_to_rbac(tmp_path: Path) -> None:
    """Production-like: HTTPS with the server's CA, the operator authenticated by its service account's
    token and held by RBAC to widget-operator-rbac.yaml, which must be all it needs."""
    running = start_kube_emulator(tmp_path / "tls", "--tls", "--authorization", "RBAC")
    operator: subprocess.Popen[bytes] | None = None
    try:
        admin = running.info
        assert admin.server.startswith("https://127.0.0.1:")
        ready = json.loads((tmp_path / "tls" / "ready.json").read_text())
        context = ssl.create_default_context(cafile=ready["certificateAuthority"])
        with urllib.request.urlopen(
            f"{admin.server}/.well-known/openid-configuration", context=context
        ) as answer:
            assert json.loads(answer.read())["issuer"] == admin.server
        client = kubernetes.config.new_client_from_config(config_file=str(admin.kubeconfig))
        names = [item.metadata.name for item in kubernetes.client.CoreV1Api(client).list_namespace().items]
        assert "default" in names
        client.close()
        admin.kubectl("apply", "-f", str(WIDGETS_CRD))
        admin.kubectl("create", "serviceaccount", "widget-operator")
        admin.kubectl("apply", "-f", str(OPERATOR_RBAC))
        token = admin.kubectl("create", "token", "widget-operator").stdout.strip()
        operator_config = yaml.safe_load(admin.kubeconfig.read_text())
        operator_config["users"][0]["user"]["token"] = token
        operator_kubeconfig = tmp_path / "operator-kubeconfig"
        operator_kubeconfig.write_text(yaml.safe_dump(operator_config))
        environment = {**os.environ, "KUBECONFIG": str(operator_kubeconfig)}
        command = [sys.executable, "-m", "kopf", "run", "--standalone", "-n", "default", str(SAMPLE_OPERATOR)]
        operator = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment
        )
        manifest = {
            "apiVersion": "example.dev/v1",
            "kind": "Widget",
            "metadata": {"name": "secure"},
            "spec": {"size": 1},
        }
        admin.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        admin.kubectl("wait", "--for=condition=Ready", "widget/secure", "--timeout=20s")
        admin.kubectl("delete", "widget", "secure", "--timeout=20s")
        calls = [
            r for r in admin.audit_records() if r["user"] == "system:serviceaccount:default:widget-operator"
        ]
        assert {(r["verb"], r["resource"], r["subresource"]) for r in calls} >= {
            ("watch", "widgets", ""),
            ("patch", "widgets", "status"),
            ("create", "configmaps", ""),
            ("create", "events", ""),
            ("delete", "configmaps", ""),
        }
        assert [r for r in calls if r["code"] in (401, 403)] == []
    finally:
        if operator is not None:
            operator.terminate()
            operator.wait(timeout=15)
        running.stop()


def test_projected_token_appears_once_the_service_account_exists(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    running = start_kube_emulator(
        tmp_path / "projected",
        "--project-token",
        f"default/workload={token_file}",
        "--projected-token-seconds",
        "600",
    )
    try:
        assert not token_file.exists()
        running.info.kubectl("create", "serviceaccount", "workload", "-n", "default")
        deadline = time.monotonic() + 10
        while not token_file.exists():
            assert time.monotonic() < deadline, "no token was projected"
            time.sleep(0.05)
        payload = token_file.read_text().split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert claims["sub"] == "system:serviceaccount:default:workload"
        assert claims["aud"] == ["api://AzureADTokenExchange"]
        assert claims["exp"] - claims["iat"] == 600
    finally:
        running.stop()


def test_rbac_holds_service_accounts_to_their_roles(tmp_path: Path) -> None:
    running = start_kube_emulator(tmp_path / "rbac", "--authorization", "RBAC", "--tls")
    try:
        admin = running.info
        admin.kubectl("create", "namespace", "team")
        admin.kubectl("create", "serviceaccount", "reader", "-n", "team")
        grants = [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "config-reader", "namespace": "team"},
                "rules": [
                    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
                    {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "reader", "namespace": "team"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "config-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "team"}],
            },
        ]
        admin.kubectl(
            "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": grants})
        )
        token = admin.kubectl("create", "token", "reader", "-n", "team").stdout.strip()

        def as_reader(*args: str) -> subprocess.CompletedProcess[str]:
            return admin.kubectl(f"--token={token}", "-n", "team", *args, check=False)

        assert as_reader("get", "configmaps").returncode == 0
        assert as_reader("create", "token", "reader").returncode == 0
        denied = as_reader("create", "configmap", "x", "--from-literal=a=b")
        assert 'configmaps is forbidden: User "system:serviceaccount:team:reader" cannot create resource' in (
            denied.stderr
        )
        assert 'in API group "" in the namespace "team"' in denied.stderr
        assert "at the cluster scope" in as_reader("get", "namespaces").stderr
        assert "forbidden" in as_reader("get", "configmaps", "-n", "default").stderr
        unknown = admin.kubectl("--token=made-up", "get", "configmaps", check=False)
        assert "Unauthorized" in unknown.stderr
        records = [r for r in admin.audit_records() if r["user"] == "system:serviceaccount:team:reader"]
        assert {(r["verb"], r["resource"], r["code"]) for r in records} >= {
            ("list", "configmaps", 200),
            ("create", "configmaps", 403),
        }
    finally:
        running.stop()
