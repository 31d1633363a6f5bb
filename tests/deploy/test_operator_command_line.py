"""The operator accepts the command line each overlay's Deployment gives it, and the shipped configuration
(no subscription yet) makes it refuse to start with a message naming the missing setting.

Runs the real `python -m azure_identity_operator` (the image's entrypoint) with the overlay's args and the
ConfigMap's data as its environment, as the pod would; it needs no cluster to get that far. The overlays'
processes run side by side to keep the test short.
"""

from __future__ import annotations

import os
import subprocess
import sys

from .manifests import OVERLAYS, Manifest, only


def test_operator_accepts_the_deployment_args_and_names_a_missing_setting(
    rendered_overlays: dict[str, list[Manifest]],
) -> None:
    processes: dict[str, subprocess.Popen[str]] = {}
    for overlay in OVERLAYS:
        objects = rendered_overlays[overlay]
        container = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        config = only(objects, "ConfigMap", "azure-identity-operator-config")["data"]
        assert config["AZURE_SUBSCRIPTION_ID"] == "", "the shipped configuration leaves it to the user"
        environment = {"PATH": os.environ.get("PATH", ""), "POD_ID": "azure-identity-operator-0", **config}
        processes[overlay] = subprocess.Popen(
            [sys.executable, "-m", "azure_identity_operator", *container["args"]],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    for overlay, process in processes.items():
        output, _ = process.communicate(timeout=60)
        assert "unrecognized arguments" not in output, f"{overlay}: {output}"
        assert "error: argument" not in output, f"{overlay}: {output}"
        assert process.returncode != 0, f"{overlay}: {output}"
        assert "AZURE_SUBSCRIPTION_ID" in output, f"{overlay}: {output}"


def test_the_operator_process_does_without_the_kubernetes_client() -> None:
    """The operator's requests go through kopf and its own small client; kopf would import the official
    `kubernetes` client (~40 MiB resident) whenever it is importable, as it is in the development
    environment: run as the program, the operator keeps it out. The image does not install it at all."""
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['azure_identity_operator', '--help']\n"
        "try:\n"
        "    runpy.run_module('azure_identity_operator', run_name='__main__', alter_sys=True)\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = sorted(name for name, module in sys.modules.items() if module is not None)\n"
        "print('kopf' in loaded, [name for name in loaded if name.split('.')[0] == 'kubernetes'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.splitlines()[-1] == "True []", result.stdout + result.stderr
    importable = subprocess.run(
        [sys.executable, "-c", "import kubernetes"], capture_output=True, text=True, timeout=60, check=False
    )
    assert importable.returncode == 0, "installed for the tests, so this test proves the operator avoids it"
