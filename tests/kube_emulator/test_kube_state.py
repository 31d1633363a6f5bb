"""Server lifecycle: objects, CRDs and the resourceVersion counter survive a restart with --state-dir, and
a watch resuming from before the restart is told its resourceVersion is gone (410), as after a compaction.
Also CRD changes at run time: several served versions sharing storage, and deleting a CRD."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from fixtures.kube_emulator import WIDGETS_CRD, KubeEmulatorInfo, start_kube_emulator

WIDGET = "/apis/example.dev/v1/namespaces/default/widgets"


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
