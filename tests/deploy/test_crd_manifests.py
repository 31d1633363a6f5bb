"""The CRDs the deployment installs: crds/kustomization.yaml lists exactly the CRD files in crds/, every
CRD reaches both overlays, RBAC covers every kind served, and the API server (the Kubernetes emulator,
driven by real kubectl) accepts the rendered CRDs and serves the kinds they define.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .manifests import CRDS_DIR, GROUP, KINDS, OVERLAYS, Manifest, all_of


def crd_files() -> list[Path]:
    return sorted(path for path in CRDS_DIR.glob("*.yaml") if path.name != "kustomization.yaml")


def test_crds_kustomization_lists_every_crd_file_and_nothing_else() -> None:
    kustomization = yaml.safe_load((CRDS_DIR / "kustomization.yaml").read_text())
    listed: list[str] = kustomization.get("resources") or []
    assert len(listed) == len(set(listed)), "a CRD file listed twice"
    assert sorted(listed) == [path.name for path in crd_files()]
    assert not list(CRDS_DIR.glob("*.yml")), "CRD files end in .yaml"


def test_crd_files_are_named_after_what_they_define() -> None:
    for path in crd_files():
        documents = [document for document in yaml.safe_load_all(path.read_text()) if document]
        assert len(documents) == 1, f"{path.name}: one CRD per file"
        (crd,) = documents
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1", path.name
        assert crd["kind"] == "CustomResourceDefinition", path.name
        plural = crd["spec"]["names"]["plural"]
        assert crd["spec"]["group"] == GROUP, path.name
        assert crd["metadata"]["name"] == f"{plural}.{GROUP}", path.name
        assert path.name == f"{GROUP}_{plural}.yaml"


def test_every_crd_is_installed_by_every_overlay(rendered_overlays: dict[str, list[Manifest]]) -> None:
    ours = {yaml.safe_load(path.read_text())["metadata"]["name"] for path in crd_files()}
    for overlay in OVERLAYS:
        installed = {
            crd["metadata"]["name"] for crd in all_of(rendered_overlays[overlay], "CustomResourceDefinition")
        }
        assert installed == ours | {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}, overlay


def test_rbac_covers_every_served_kind() -> None:
    for path in crd_files():
        crd = yaml.safe_load(path.read_text())
        assert crd["spec"]["names"]["plural"] in KINDS, (
            f"{path.name}: a kind the operator's RBAC does not grant"
        )
