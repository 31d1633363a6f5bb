"""The Kubernetes API emulator refuses CRDs that kube-apiserver 1.32 refuses, and accepts the product's.

Without this a CRD edit that a real cluster rejects (a non-structural schema, a transition rule under an
atomic list, a rule too costly to admit) would pass every test run against the emulator.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from fixtures.kube_emulator import KubeEmulatorInfo

CRDS_DIR = Path(__file__).resolve().parents[2] / "crds"


def gadget_crd(spec_schema: dict[str, object], name: str) -> str:
    plural = f"{name}s"
    return yaml.safe_dump(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.refused.example.dev"},
            "spec": {
                "group": "refused.example.dev",
                "scope": "Namespaced",
                "names": {"plural": plural, "singular": name, "kind": name.capitalize()},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {"type": "object", "properties": {"spec": spec_schema}}
                        },
                    }
                ],
            },
        }
    )


def test_the_product_crds_are_accepted(kube_emulator: KubeEmulatorInfo) -> None:
    # "created", or "unchanged" once another test of the session has applied them.
    result = kube_emulator.kubectl("apply", "--dry-run=server", "-k", str(CRDS_DIR))
    assert result.stdout.count(".identityoperator.dev ") == 7, result.stdout
    assert result.stdout.count("(server dry run)") == 7, result.stdout


def test_a_non_structural_schema_is_refused(kube_emulator: KubeEmulatorInfo) -> None:
    schema = {
        "type": "object",
        "properties": {
            "free": {"description": "no type"},
            "both": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "additionalProperties": {"type": "string"},
            },
        },
    }
    result = kube_emulator.kubectl("apply", "-f", "-", input=gadget_crd(schema, "gadget"), check=False)
    assert result.returncode != 0
    assert 'The CustomResourceDefinition "gadgets.refused.example.dev" is invalid' in result.stderr
    assert "properties[free].type: Required value" in result.stderr
    assert "additionalProperties and properties are mutual exclusive" in result.stderr
    listed = kube_emulator.kubectl("get", "crd", "-o", "name").stdout
    assert "gadgets.refused.example.dev" not in listed


def test_a_list_map_without_required_keys_and_a_transition_rule_on_atomic_items_are_refused(
    kube_emulator: KubeEmulatorInfo,
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "ports": {
                "type": "array",
                "maxItems": 4,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8}}},
            },
            "rules": {
                "type": "array",
                "maxItems": 4,
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "maxLength": 8}},
                    "x-kubernetes-validations": [{"rule": "self.name == oldSelf.name", "message": "fixed"}],
                },
            },
        },
    }
    result = kube_emulator.kubectl("apply", "-f", "-", input=gadget_crd(schema, "widget"), check=False)
    assert result.returncode != 0
    assert "it must have a default or be a required property" in result.stderr
    assert "oldSelf cannot be used on the uncorrelatable portion of the schema" in result.stderr


def test_rules_over_unbounded_values_that_cost_too_much_are_refused(kube_emulator: KubeEmulatorInfo) -> None:
    unbounded = {
        "type": "object",
        "properties": {
            "names": {
                "type": "array",
                "items": {"type": "string"},
                "x-kubernetes-validations": [
                    {"rule": "self.all(n, n.matches('^[a-z]+$'))", "message": "lower"}
                ],
            }
        },
    }
    result = kube_emulator.kubectl("apply", "-f", "-", input=gadget_crd(unbounded, "gizmo"), check=False)
    assert result.returncode != 0
    assert "estimated rule cost exceeds budget by factor of" in result.stderr

    bounded = yaml.safe_load(yaml.safe_dump(unbounded))
    bounded["properties"]["names"]["maxItems"] = 20
    bounded["properties"]["names"]["items"]["maxLength"] = 63
    accepted = kube_emulator.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=gadget_crd(bounded, "gizmo")
    )
    assert "created (server dry run)" in accepted.stdout


def test_a_rule_reading_an_undeclared_field_is_refused(kube_emulator: KubeEmulatorInfo) -> None:
    schema = {
        "type": "object",
        "properties": {"size": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.sise > 0", "message": "positive"}],
    }
    result = kube_emulator.kubectl("apply", "-f", "-", input=gadget_crd(schema, "doohickey"), check=False)
    assert result.returncode != 0
    assert "undefined field 'sise'" in result.stderr
