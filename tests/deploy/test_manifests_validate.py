"""Every kustomization under deploy/ renders, and every object it renders is valid for Kubernetes 1.32.

Built-in kinds are checked against the Kubernetes 1.32 OpenAPI schemas shipped by `kubernetes-validate`,
in strict mode (an unknown or misspelt field is an error, as `kubectl apply` with server-side field
validation makes it). Custom objects (kopf's peering objects) are checked against the CRD schema rendered
alongside them. Covers: rendering of base and overlays, schema validity, the image reference, namespaces.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from .manifests import (
    DEPLOY_DIR,
    KUSTOMIZATIONS,
    OPERATOR_NAMESPACE,
    REPO_ROOT,
    Manifest,
    all_of,
    only,
    render,
)

KUBERNETES_VERSION = "1.32.0"
IMAGE = "ghcr.io/azure-identity-operator/azure-identity-operator:0.1.0"

CLUSTER_SCOPED_BUILTIN_KINDS = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}


def validate_builtin(manifest: Manifest) -> None:
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def crd_for(objects: list[Manifest], manifest: Manifest) -> Manifest | None:
    group, _, version = manifest["apiVersion"].rpartition("/")
    for crd in all_of(objects, "CustomResourceDefinition"):
        if crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == manifest["kind"]:
            assert any(v["name"] == version and v["served"] for v in crd["spec"]["versions"])
            return crd
    return None


def validate_custom(crd: Manifest, manifest: Manifest) -> None:
    version = manifest["apiVersion"].rpartition("/")[2]
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    jsonschema.validate(manifest, served["schema"]["openAPIV3Schema"])
    namespaced = crd["spec"]["scope"] == "Namespaced"
    assert ("namespace" in manifest["metadata"]) == namespaced, f"{manifest['kind']} scope"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS, ids=lambda p: str(Path(p).relative_to(REPO_ROOT)))
def test_every_kustomization_renders_and_validates(kustomization: Path) -> None:
    objects = render(kustomization)
    assert objects, f"{kustomization} rendered nothing"
    keys = [
        (o["apiVersion"], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects
    ]
    assert len(keys) == len(set(keys)), "two objects with the same identity"
    for manifest in objects:
        crd = crd_for(objects, manifest)
        if crd is not None:
            validate_custom(crd, manifest)
        else:
            # Raises SchemaNotFoundError for a kind that is neither built in nor defined alongside.
            validate_builtin(manifest)


def test_strict_validation_rejects_a_misspelt_field(rendered_overlays: dict[str, list[Manifest]]) -> None:
    # Guards the test above: the validator must see the fields, not just the kind.
    deployment = copy.deepcopy(only(rendered_overlays["cluster-wide"], "Deployment"))
    validate_builtin(deployment)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContxt"] = container.pop("securityContext")
    with pytest.raises(jsonschema.ValidationError):
        validate_builtin(deployment)
    deployment["spec"]["replicas"] = "one"
    with pytest.raises(jsonschema.ValidationError):
        validate_builtin(deployment)


def test_custom_objects_are_checked_against_their_crd(rendered_overlays: dict[str, list[Manifest]]) -> None:
    objects = rendered_overlays["cluster-wide"]
    peering = only(objects, "ClusterKopfPeering")
    crd = crd_for(objects, peering)
    assert crd is not None
    bad = copy.deepcopy(peering)
    bad["status"] = "not an object"
    with pytest.raises(jsonschema.ValidationError):
        validate_custom(crd, bad)


def test_overlays_run_the_released_image(overlay_objects: list[Manifest]) -> None:
    (container,) = only(overlay_objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == IMAGE


def test_namespaced_objects_have_a_namespace(overlay_objects: list[Manifest]) -> None:
    # kubectl would otherwise put them into whatever namespace the user's context points at.
    for manifest in overlay_objects:
        namespace = manifest["metadata"].get("namespace")
        if manifest["kind"] in CLUSTER_SCOPED_BUILTIN_KINDS:
            assert namespace is None, manifest["metadata"]["name"]
        elif manifest["kind"] in {"Role", "RoleBinding", "KopfPeering"}:
            assert namespace, manifest["metadata"]["name"]
        elif manifest["kind"] != "ClusterKopfPeering":
            assert namespace == OPERATOR_NAMESPACE, f"{manifest['kind']} {manifest['metadata']['name']}"


def test_the_operator_namespace_is_created_first(overlay_objects: list[Manifest]) -> None:
    assert overlay_objects[0]["kind"] == "Namespace"
    assert overlay_objects[0]["metadata"]["name"] == OPERATOR_NAMESPACE


def test_every_manifest_under_deploy_is_used() -> None:
    # A manifest no kustomization lists is never installed: a forgotten file, or a rule that only seems
    # to be in effect.
    listed: set[Path] = set()
    for kustomization in DEPLOY_DIR.rglob("kustomization.yaml"):
        resources = yaml.safe_load(kustomization.read_text()).get("resources") or []
        listed |= {(kustomization.parent / resource).resolve() for resource in resources}
    manifests = {path.resolve() for path in DEPLOY_DIR.rglob("*.yaml") if path.name != "kustomization.yaml"}
    assert manifests - listed == set()
