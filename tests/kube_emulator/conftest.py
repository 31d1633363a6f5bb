"""Fixtures of the emulator's own tests: the Widget CRD (example.dev/v1) installed once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.kube_emulator import KubeEmulatorInfo

MANIFESTS = Path(__file__).parent / "manifests"


@pytest.fixture(scope="session")
def widgets_crd(kube_emulator: KubeEmulatorInfo) -> str:
    """The Widget CRD applied and established; returns its resource name."""
    kube_emulator.kubectl("apply", "-f", str(MANIFESTS / "widgets-crd.yaml"))
    kube_emulator.kubectl("wait", "--for=condition=Established", "crd/widgets.example.dev", "--timeout=10s")
    return "widgets.example.dev"
