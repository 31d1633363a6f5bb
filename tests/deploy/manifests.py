"""Where the packaging and deployment files are, and how tests render and pick apart the kustomizations.

Rendering uses the kustomize built into kubectl (`kubectl kustomize`), exactly what `kubectl apply -k` runs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"
CRDS_DIR = REPO_ROOT / "crds"

OVERLAYS = ("cluster-wide", "namespaced")
"""The installable shapes under deploy/overlays/."""

KUSTOMIZATIONS = (
    DEPLOY_DIR / "crds",
    DEPLOY_DIR / "base",
    *(DEPLOY_DIR / "overlays" / name for name in OVERLAYS),
)

GROUP = "identityoperator.dev"
KINDS = (
    "userassignedidentities",
    "federatedidentitycredentials",
    "roleassignments",
    "systemassignedidentities",
    "workloadidentities",
    "roledefinitions",
)
"""The operator's kinds (plural names), as its RBAC grants them."""
POLICY_PLURAL = "identityaccesspolicies"
"""The cluster-scoped access policies: read and given a status, never written otherwise."""
PART_KINDS = ("userassignedidentities", "federatedidentitycredentials", "roleassignments")
"""The kinds a WorkloadIdentity is made of: the operator creates and deletes objects of these."""

OPERATOR_NAMESPACE = "azure-identity-operator"
OPERATOR_NAME = "azure-identity-operator"

Manifest = dict[str, Any]


def kubectl_path() -> str:
    found = shutil.which("kubectl")
    assert found is not None, "kubectl (with its built-in kustomize) is needed to render deploy/"
    return found


def render(kustomization_dir: Path) -> list[Manifest]:
    """The objects `kubectl apply -k kustomization_dir` would send, in order."""
    result = subprocess.run(
        [kubectl_path(), "kustomize", str(kustomization_dir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, f"kubectl kustomize {kustomization_dir} failed:\n{result.stderr}"
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def only(objects: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    matching = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(matching) == 1, f"expected exactly one {kind} {name or ''}, found {len(matching)}"
    return matching[0]


def all_of(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] == kind]
