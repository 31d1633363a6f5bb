"""The rendered operator Deployment: pod security, resources, probes, process wiring and configuration.

Checked on what `kubectl kustomize` renders for each overlay, so a patch in an overlay cannot weaken what
the base declares. Covers the "restricted" Pod Security Standard fields, the writable /tmp, requests and
limits, the exact operator command line, the ConfigMap keys, workload identity, peering identity, metrics
and the PodDisruptionBudget.
"""

from __future__ import annotations

from typing import Any

from .manifests import OPERATOR_NAME, OPERATOR_NAMESPACE, Manifest, all_of, only

CONFIG_MAP = "azure-identity-operator-config"
CONFIG_KEYS = {
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "IDENTITY_OPERATOR_OIDC_ISSUER",
    "IDENTITY_OPERATOR_SYNC_INTERVAL",
    "IDENTITY_OPERATOR_LOG_FORMAT",
    "IDENTITY_OPERATOR_DEFAULT_POLICY",
    "IDENTITY_OPERATOR_POLICY_EXISTING_GRANTS",
    "IDENTITY_OPERATOR_CLUSTER_ID",
    "IDENTITY_OPERATOR_ROLE_ASSIGNMENT_LIMIT",
    "IDENTITY_OPERATOR_CUSTOM_ROLE_LIMIT",
}
COMMON_ARGS = [
    "--liveness=http://0.0.0.0:8080/healthz",
    "--metrics-port=9090",
    "--peering=azure-identity-operator",
]


def pod_spec(objects: list[Manifest]) -> dict[str, Any]:
    spec: dict[str, Any] = only(objects, "Deployment", OPERATOR_NAME)["spec"]["template"]["spec"]
    return spec


def operator_container(objects: list[Manifest]) -> dict[str, Any]:
    (container,) = pod_spec(objects)["containers"]
    assert container["name"] == "operator"
    return dict(container)


def test_pod_runs_as_non_root_with_runtime_default_seccomp(overlay_objects: list[Manifest]) -> None:
    pod = pod_spec(overlay_objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "initContainers" not in pod
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(field), field


def test_container_is_locked_down(overlay_objects: list[Manifest]) -> None:
    security = operator_container(overlay_objects)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 65532, "the image's operator user (Dockerfile)"
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security.get("privileged", False) is False
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}


def test_tmp_is_the_only_writable_path(overlay_objects: list[Manifest]) -> None:
    pod = pod_spec(overlay_objects)
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = operator_container(overlay_objects)["volumeMounts"]
    assert [(mount["name"], mount["mountPath"]) for mount in mounts] == [("tmp", "/tmp")]
    assert set(volumes) == {"tmp"}
    assert "emptyDir" in volumes["tmp"]
    assert volumes["tmp"]["emptyDir"].get("sizeLimit"), "a bounded emptyDir cannot fill the node's disk"


def test_resources_are_requested_and_limited(overlay_objects: list[Manifest]) -> None:
    resources = operator_container(overlay_objects)["resources"]
    for bound in ("requests", "limits"):
        assert set(resources[bound]) == {"cpu", "memory"}, bound


def test_operator_command_line(rendered_overlays: dict[str, list[Manifest]]) -> None:
    # The image's ENTRYPOINT is `python -m azure_identity_operator`; the Deployment only adds arguments.
    cluster_wide = operator_container(rendered_overlays["cluster-wide"])
    namespaced = operator_container(rendered_overlays["namespaced"])
    for container in (cluster_wide, namespaced):
        assert "command" not in container
    assert cluster_wide["args"] == [*COMMON_ARGS, "--all-namespaces"]
    assert namespaced["args"][: len(COMMON_ARGS)] == COMMON_ARGS
    extra = namespaced["args"][len(COMMON_ARGS) :]
    assert extra, "the namespaced overlay names the namespaces it watches"
    assert all(arg.startswith("--namespace=") and len(arg) > len("--namespace=") for arg in extra)


def test_probes_use_the_liveness_and_readiness_endpoints(overlay_objects: list[Manifest]) -> None:
    container = operator_container(overlay_objects)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"healthz": 8080, "metrics": 9090}
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}, probe
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_configuration_comes_from_the_config_map(overlay_objects: list[Manifest]) -> None:
    config_map = only(overlay_objects, "ConfigMap", CONFIG_MAP)
    assert config_map["metadata"]["namespace"] == OPERATOR_NAMESPACE
    assert set(config_map["data"]) == CONFIG_KEYS
    assert config_map["data"]["IDENTITY_OPERATOR_LOG_FORMAT"] == "json"
    assert float(config_map["data"]["IDENTITY_OPERATOR_SYNC_INTERVAL"]) > 0
    assert operator_container(overlay_objects)["envFrom"] == [{"configMapRef": {"name": CONFIG_MAP}}]


def test_workload_identity_is_the_default_credential(overlay_objects: list[Manifest]) -> None:
    deployment = only(overlay_objects, "Deployment", OPERATOR_NAME)
    service_account = only(overlay_objects, "ServiceAccount", OPERATOR_NAME)
    config_map = only(overlay_objects, "ConfigMap", CONFIG_MAP)
    assert deployment["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod_spec(overlay_objects)["serviceAccountName"] == OPERATOR_NAME
    annotation = service_account["metadata"]["annotations"]["azure.workload.identity/client-id"]
    assert annotation == config_map["data"]["AZURE_CLIENT_ID"], "one client ID, copied by kustomize"


def test_peering_identity_is_the_pod_name(overlay_objects: list[Manifest]) -> None:
    env = {variable["name"]: variable for variable in operator_container(overlay_objects)["env"]}
    assert env["POD_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_an_active_replica_and_a_standby(overlay_objects: list[Manifest]) -> None:
    deployment = only(overlay_objects, "Deployment", OPERATOR_NAME)
    assert deployment["spec"]["replicas"] == 2
    # Every replica gets the same args: a fixed --priority would tie them, and kopf pauses tied peers.
    # Without it, each process picks its own random priority.
    assert not any(arg.startswith("--priority") for arg in operator_container(overlay_objects)["args"])
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    (spread,) = pod_spec(overlay_objects)["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway", "a single-node cluster still runs both"
    assert selects(
        spread["labelSelector"]["matchLabels"], deployment["spec"]["template"]["metadata"]["labels"]
    )


def test_metrics_are_discoverable(overlay_objects: list[Manifest]) -> None:
    template = only(overlay_objects, "Deployment", OPERATOR_NAME)["spec"]["template"]
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
        "prometheus.io/path": "/metrics",
    }
    (service,) = all_of(overlay_objects, "Service")
    assert service["spec"]["ports"] == [
        {"name": "http-metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert selects(service["spec"]["selector"], template["metadata"]["labels"])


def test_disruption_budget_covers_the_operator_pods(overlay_objects: list[Manifest]) -> None:
    budget = only(overlay_objects, "PodDisruptionBudget")
    template = only(overlay_objects, "Deployment", OPERATOR_NAME)["spec"]["template"]
    assert selects(budget["spec"]["selector"]["matchLabels"], template["metadata"]["labels"])
    # One pod at a time, so one stays; and a Deployment scaled to one replica never blocks a node drain.
    assert budget["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in budget["spec"]


def test_operator_namespace_enforces_the_restricted_pod_security_standard(
    overlay_objects: list[Manifest],
) -> None:
    namespace = only(overlay_objects, "Namespace", OPERATOR_NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())
