"""The CRDs the deployment installs: crds/kustomization.yaml lists exactly the CRD files in crds/, every
CRD reaches both overlays, and the kinds the RBAC grants are exactly the kinds the CRDs define. (An API
server accepting them is covered by test_install_sequence.py.)
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .manifests import CRDS_DIR, GROUP, KINDS, OVERLAYS, POLICY_PLURAL, Manifest, all_of


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


def test_rbac_grants_exactly_the_kinds_the_crds_define() -> None:
    plurals = {yaml.safe_load(path.read_text())["spec"]["names"]["plural"] for path in crd_files()}
    assert plurals == set(KINDS) | {POLICY_PLURAL}
