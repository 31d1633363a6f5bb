"""ARM-wide behaviour and the control endpoint: response headers, the error envelope for malformed and
unknown requests (never a 500), injected faults and latency, token-bucket throttling with 429 and
Retry-After, request counting (also by calling principal), and state persisted across a restart.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.msi import ManagedServiceIdentityClient

from fixtures.azure_emulator import (
    AzureEmulatorInfo,
    start_emulator_process,
    stop_emulator_process,
    wait_until_ready,
)

MSI = "2024-11-30"


def _identity_url(info: AzureEmulatorInfo, group: str, name: str) -> str:
    return (
        f"/subscriptions/{info.subscription_id}/resourceGroups/{group}"
        f"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}?api-version={MSI}"
    )


def test_response_headers(azure_emulator: AzureEmulatorInfo, resource_group: str) -> None:
    write = azure_emulator.raw(
        "PUT",
        _identity_url(azure_emulator, resource_group, "headers"),
        {"location": "westus"},
        headers={"x-ms-correlation-request-id": "corr-123"},
    )
    assert write.headers["content-type"] == "application/json; charset=utf-8"
    assert write.headers["x-ms-correlation-request-id"] == "corr-123"
    uuid.UUID(write.headers["x-ms-request-id"])
    assert write.headers["cache-control"] == "no-cache"
    assert int(write.headers["x-ms-ratelimit-remaining-subscription-writes"]) < 200
    assert int(write.headers["x-ms-ratelimit-remaining-subscription-global-writes"]) < 3000
    read = azure_emulator.raw("GET", _identity_url(azure_emulator, resource_group, "headers"))
    assert "x-ms-ratelimit-remaining-subscription-reads" in read.headers
    tenant_level = azure_emulator.raw(
        "GET", "/providers/Microsoft.ManagedIdentity/operations?api-version=2024-11-30"
    )
    assert tenant_level.status == 200
    assert "x-ms-ratelimit-remaining-tenant-reads" in tenant_level.headers


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        (
            "GET",
            "/subscriptions/not-a-guid/resourcegroups?api-version=2022-09-01",
            None,
            400,
            "InvalidSubscriptionId",
        ),
        (
            "GET",
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2022-09-01",
            None,
            404,
            "SubscriptionNotFound",
        ),
        ("GET", "/subscriptions/{s}/somethingElse?api-version=2022-09-01", None, 404, "InvalidRequestUri"),
        ("POST", "/subscriptions/{s}/resourcegroups/{g}?api-version=2022-09-01", {}, 405, "MethodNotAllowed"),
        ("DELETE", "/subscriptions/{s}/resourcegroups?api-version=2022-09-01", None, 405, "MethodNotAllowed"),
        (
            "PUT",
            "/subscriptions/{s}/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=2024-11-30",
            {},
            405,
            "MethodNotAllowed",
        ),
        (
            "POST",
            "/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Authorization/roleAssignments"
            "?api-version=2022-04-01",
            {},
            405,
            "MethodNotAllowed",
        ),
        (
            "PUT",
            "/subscriptions/{s}/resourcegroups/{g}?api-version=2022-09-01",
            [],
            400,
            "InvalidRequestContent",
        ),
        (
            "PUT",
            "/subscriptions/{s}/resourcegroups/bad*name?api-version=2022-09-01",
            {"location": "x"},
            400,
            "InvalidResourceGroup",
        ),
        (
            "GET",
            "/subscriptions/{s}/resourcegroups/{g}?api-version=1900-01-01",
            None,
            400,
            "InvalidApiVersionParameter",
        ),
        (
            "PUT",
            "/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Authorization/roleAssignments/"
            "6c0b5f4e-1d3a-4b1e-9c7d-0a1b2c3d4e5f?api-version=2022-04-01",
            {"properties": "nope"},
            400,
            "InvalidRequestContent",
        ),
        (
            "PUT",
            "/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Compute/virtualMachines/vm?api-version=2024-07-01",
            {"location": "westus", "identity": "SystemAssigned"},
            400,
            "InvalidRequestContent",
        ),
        (
            "PUT",
            "/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Compute/virtualMachines/vm?api-version=2024-07-01",
            {"location": "westus", "tags": {"n": 1}},
            400,
            "InvalidTag",
        ),
        (
            "PUT",
            "/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Web/sites/app?api-version=2023-12-01",
            {"location": "westus", "identity": {"type": "UserAssigned", "userAssignedIdentities": "x"}},
            400,
            "InvalidRequestContent",
        ),
        (
            "GET",
            "/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
            "?api-version=2024-11-30&$skiptoken=abc",
            None,
            400,
            "InvalidSkipToken",
        ),
        (
            "GET",
            "/providers/Microsoft.Authorization/roleAssignments/x/y?api-version=2022-04-01",
            None,
            400,
            "InvalidResourceType",
        ),
    ],
)
def test_bad_requests_get_arm_errors_not_500(
    azure_emulator: AzureEmulatorInfo,
    resource_group: str,
    method: str,
    path: str,
    body: object,
    status: int,
    code: str,
) -> None:
    response = azure_emulator.raw(
        method, path.format(s=azure_emulator.subscription_id, g=resource_group), body
    )
    assert (response.status, response.error_code()) == (status, code), response.body
    assert isinstance(response.body["error"]["message"], str)


def test_injected_fault_then_sdk_retry(
    azure_emulator: AzureEmulatorInfo, msi_client: ManagedServiceIdentityClient, resource_group: str
) -> None:
    msi_client.user_assigned_identities.create_or_update(resource_group, "flaky", {"location": "westus"})
    azure_emulator.inject_fault(
        path_regex="/userAssignedIdentities/flaky$", method="GET", status=503, code="ServiceUnavailable"
    )
    raw = azure_emulator.raw("GET", _identity_url(azure_emulator, resource_group, "flaky"))
    assert (raw.status, raw.error_code()) == (503, "ServiceUnavailable")
    assert azure_emulator.raw("GET", _identity_url(azure_emulator, resource_group, "flaky")).status == 200

    azure_emulator.reset_counts()
    azure_emulator.inject_fault(
        path_regex="/userAssignedIdentities/flaky$",
        method="PUT",
        status=429,
        code="TooManyRequests",
        retry_after=1,
    )
    msi_client.user_assigned_identities.create_or_update(resource_group, "flaky", {"location": "westus"})
    assert azure_emulator.arm_write_count("/userAssignedIdentities/flaky") == 2  # the 429, then the retry
    azure_emulator.inject_fault(path_regex="never-matches", status=500, code="X", count=3)
    assert len(azure_emulator.control("GET", "faults")["faults"]) == 1
    azure_emulator.clear_faults()
    assert azure_emulator.control("GET", "faults")["faults"] == []


def test_injected_latency(azure_emulator: AzureEmulatorInfo, resource_group: str) -> None:
    url = _identity_url(azure_emulator, resource_group, "slow")
    azure_emulator.set_latency(0.6, path_regex="/userAssignedIdentities/slow$", method="GET")
    try:
        started = time.monotonic()
        assert azure_emulator.raw("GET", url).status == 404
        assert time.monotonic() - started >= 0.6
        # Only matching requests wait.
        started = time.monotonic()
        azure_emulator.raw("GET", _identity_url(azure_emulator, resource_group, "fast"))
        assert time.monotonic() - started < 0.6
    finally:
        azure_emulator.clear_latency()
    assert azure_emulator.control("GET", "settings")["latency"] == []
    started = time.monotonic()
    azure_emulator.raw("GET", url)
    assert time.monotonic() - started < 0.6


def test_throttling_with_retry_after(azure_emulator: AzureEmulatorInfo, resource_group: str) -> None:
    azure_emulator.set_throttling(True, {"writes": (2, 0.01)})
    try:
        statuses = [
            azure_emulator.raw(
                "PUT", _identity_url(azure_emulator, resource_group, f"burst-{i}"), {"location": "westus"}
            )
            for i in range(3)
        ]
        assert [s.status for s in statuses] == [201, 201, 429]
        throttled = statuses[2]
        assert throttled.error_code() == "SubscriptionRequestsThrottled"
        assert int(throttled.headers["retry-after"]) >= 1
        assert throttled.headers["x-ms-ratelimit-remaining-subscription-writes"] == "0"
        # Reads have their own bucket.
        assert (
            azure_emulator.raw("GET", _identity_url(azure_emulator, resource_group, "burst-0")).status == 200
        )
    finally:
        azure_emulator.set_throttling(False)
    assert (
        azure_emulator.raw(
            "PUT", _identity_url(azure_emulator, resource_group, "burst-3"), {"location": "westus"}
        ).status
        == 201
    )


def test_request_counts_tell_throttled_answers_by_method_and_status(
    azure_emulator: AzureEmulatorInfo, resource_group: str
) -> None:
    azure_emulator.set_throttling(True, {"writes": (1, 0.01)})
    try:
        azure_emulator.reset_counts()
        url = _identity_url(azure_emulator, resource_group, "counted-throttle")
        assert azure_emulator.raw("PUT", url, {"location": "westus"}).status == 201
        assert azure_emulator.raw("PUT", url, {"location": "westus"}).status == 429
        assert azure_emulator.raw("GET", url).status == 200
        requests = azure_emulator.control("GET", "requests")
        # (A token request, should the bootstrap token be renewed meanwhile, is a POST: left out.)
        answers = {k: n for k, n in requests["responses"].items() if not k.startswith("POST ")}
        assert answers == {"PUT 201": 1, "PUT 429": 1, "GET 200": 1}
        # A throttled request is counted as received too.
        assert sum(n for k, n in requests["counts"].items() if not k.startswith("POST ")) == 3
    finally:
        azure_emulator.set_throttling(False)
    azure_emulator.reset_counts()
    assert azure_emulator.control("GET", "requests") == {"counts": {}, "responses": {}, "callers": {}}


def test_request_counts_prove_a_second_pass_writes_nothing(
    azure_emulator: AzureEmulatorInfo, msi_client: ManagedServiceIdentityClient, resource_group: str
) -> None:
    azure_emulator.reset_counts()
    msi_client.user_assigned_identities.create_or_update(resource_group, "counted", {"location": "westus"})
    msi_client.user_assigned_identities.get(resource_group, "counted")
    counts = azure_emulator.request_counts()
    put_key = next(
        k for k in counts if k.startswith("PUT ") and k.endswith("/userAssignedIdentities/counted")
    )
    assert counts[put_key] == 1
    assert azure_emulator.arm_write_count() == 1
    azure_emulator.reset_counts()
    msi_client.user_assigned_identities.get(resource_group, "counted")
    assert azure_emulator.arm_write_count() == 0
    assert sum(azure_emulator.request_counts().values()) == 1


def test_request_counts_by_caller_tell_principals_sharing_a_subscription_apart(
    azure_emulator: AzureEmulatorInfo, msi_client: ManagedServiceIdentityClient, resource_group: str
) -> None:
    other = azure_emulator.create_service_principal("second-client")
    # Reader on the group: its reads succeed, its writes are refused, and both are its own.
    reader = "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"
    scope = f"/subscriptions/{azure_emulator.subscription_id}/resourceGroups/{resource_group}"
    assignment = azure_emulator.raw(
        "PUT",
        f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}?api-version=2022-04-01",
        {
            "properties": {
                "roleDefinitionId": reader,
                "principalId": other.object_id,
                "principalType": "ServicePrincipal",
            }
        },
    )
    assert assignment.status == 201
    theirs = ManagedServiceIdentityClient(
        azure_emulator.credential(other.client_id, other.client_secret),
        azure_emulator.subscription_id,
        **azure_emulator.client_options(),
    )
    azure_emulator.reset_counts()
    msi_client.user_assigned_identities.create_or_update(
        resource_group, "by-bootstrap", {"location": "westus"}
    )
    theirs.user_assigned_identities.get(resource_group, "by-bootstrap")
    with pytest.raises(HttpResponseError):
        theirs.user_assigned_identities.update(resource_group, "by-bootstrap", {"tags": {"mine": "no"}})

    counts = azure_emulator.caller_counts(other.object_id)
    assert sorted(key.split(" ")[0] for key in counts) == ["GET", "PATCH"]
    assert all(key.endswith("/userAssignedIdentities/by-bootstrap") for key in counts)
    assert azure_emulator.arm_write_count(caller=other.object_id) == 1, "the refused PATCH, counted as sent"
    assert azure_emulator.arm_write_count("by-bootstrap") == 2, "the bootstrap's PUT and the other's PATCH"
    azure_emulator.reset_counts()
    assert azure_emulator.caller_counts(other.object_id) == {}


def test_control_endpoint_rejects_bad_input(azure_emulator: AzureEmulatorInfo) -> None:
    bad_regex = azure_emulator.raw(
        "POST", "/_emulator/faults", {"pathRegex": "(", "status": 500, "code": "X"}, token=""
    )
    assert bad_regex.status == 400
    unknown = azure_emulator.raw("GET", "/_emulator/nothing-here", token="")
    assert unknown.status == 404


def test_state_persists_across_restart(tmp_path: Path) -> None:
    ready, log = tmp_path / "ready.json", tmp_path / "log"
    state_dir = tmp_path / "state"
    process = start_emulator_process(ready, log, "--persist", "--state-dir", str(state_dir))
    try:
        wait_until_ready(process, ready, log)
        first = AzureEmulatorInfo.from_ready_file(ready)
        group = f"/subscriptions/{first.subscription_id}/resourcegroups/kept?api-version=2022-09-01"
        assert first.raw("PUT", group, {"location": "westus"}).status == 201
        created = first.raw("PUT", _identity_url(first, "kept", "durable"), {"location": "westus"})
    finally:
        stop_emulator_process(process)
    ready.unlink()
    flags = ("--principal-delay", "5", "--page-size", "7", "--lro-seconds", "0.5", "--throttle")
    process = start_emulator_process(ready, log, "--persist", "--state-dir", str(state_dir), *flags)
    try:
        wait_until_ready(process, ready, log)
        second = AzureEmulatorInfo.from_ready_file(ready)
        assert (second.subscription_id, second.client_id, second.ca_file) == (
            first.subscription_id,
            first.client_id,
            first.ca_file,
        )
        again = second.raw("GET", _identity_url(second, "kept", "durable"))
        assert again.status == 200
        assert again.body["properties"]["principalId"] == created.body["properties"]["principalId"]
        settings = second.control("GET", "settings")
        assert (settings["principalDelaySeconds"], settings["pageSize"], settings["lroSeconds"]) == (
            5,
            7,
            0.5,
        )
        assert settings["throttlingEnabled"] is True
    finally:
        stop_emulator_process(process)


def test_subscription_and_tenant_ids_can_be_chosen_and_a_saved_world_keeps_its_own(tmp_path: Path) -> None:
    ready, log = tmp_path / "ready.json", tmp_path / "log"
    state_dir = tmp_path / "state"
    chosen = ("--subscription-id", "00000000-0000-0000-0000-000000000000")
    tenant = ("--tenant-id", "22222222-2222-2222-2222-222222222222")
    process = start_emulator_process(ready, log, "--persist", "--state-dir", str(state_dir), *chosen, *tenant)
    try:
        wait_until_ready(process, ready, log)
        info = AzureEmulatorInfo.from_ready_file(ready)
        assert (info.subscription_id, info.tenant_id) == (chosen[1], tenant[1])
        group = f"/subscriptions/{info.subscription_id}/resourcegroups/rg?api-version=2022-09-01"
        assert info.raw("PUT", group, {"location": "westus"}).status == 201
    finally:
        stop_emulator_process(process)
    ready.unlink()
    other = ("--subscription-id", "11111111-1111-1111-1111-111111111111")
    process = start_emulator_process(ready, log, "--persist", "--state-dir", str(state_dir), *other)
    assert process.wait(timeout=30) != 0
    assert "differs from 00000000-0000-0000-0000-000000000000" in log.read_text()
    process = start_emulator_process(ready, log, "--persist", "--state-dir", str(state_dir), *chosen)
    try:
        wait_until_ready(process, ready, log)
        assert AzureEmulatorInfo.from_ready_file(ready).subscription_id == chosen[1]
    finally:
        stop_emulator_process(process)
    not_a_guid = start_emulator_process(tmp_path / "r2.json", log, "--subscription-id", "sub-1")
    assert not_a_guid.wait(timeout=30) == 2
    assert "is not a GUID" in log.read_text()
