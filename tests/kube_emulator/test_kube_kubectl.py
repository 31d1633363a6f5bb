"""kubectl against the emulator: apply (client- and server-side), get with printer columns, wait,
status patches, delete, explain, describe."""

from __future__ import annotations

import json

from fixtures.kube_emulator import KubeEmulatorInfo


def widget(name: str, size: int = 3, **spec: object) -> str:
    return json.dumps(
        {
            "apiVersion": "example.dev/v1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": {"size": size, **spec},
        }
    )


def test_get_renders_the_crd_printer_columns(
    kube_emulator: KubeEmulatorInfo, namespace: str, widgets_crd: str
) -> None:
    kube_emulator.kubectl("apply", "-n", namespace, "-f", "-", input=widget("small", 2))
    output = kube_emulator.kubectl("get", "wd", "-n", namespace).stdout.splitlines()
    assert output[0].split() == ["NAME", "SIZE", "READY", "AGE"]
    assert output[1].split()[:2] == ["small", "2"]
