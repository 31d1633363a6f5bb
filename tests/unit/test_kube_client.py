"""The operator's own Kubernetes client (`handlers.kube_api`) logs in from a `kopf.ConnectionInfo` as kopf
does, against the Kubernetes emulator served over TLS and held to RBAC: the CA from data or a path, a
service account's bearer token (read again after a 401 and when due), basic auth and schemes, `insecure`;
a client certificate and key, from paths or data, against a small TLS server that requires one (the
emulator takes no client certificates). `KubeWriter` maps the API's answers onto what the controller and
the reconcilers expect.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import ssl
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import kopf
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from azure_identity_operator.api import constants
from azure_identity_operator.handlers import kube_api
from azure_identity_operator.handlers.kube import KubeWriter, ObjectGone, WriteConflict
from azure_identity_operator.reconcilers.kube_port import KubernetesError
from fixtures.kube_emulator import KubeEmulatorInfo, start_kube_emulator
from kube_emulator.certificates import ensure_certificates

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "team"
SERVICE_ACCOUNT = "identity-operator"


def run(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make()

    return asyncio.run(main())


def fixed(info: kopf.ConnectionInfo) -> kube_api.Login:
    """A login that always returns `info`."""
    return lambda: info


def get(info: kopf.ConnectionInfo, path: str) -> Any:
    """One GET with a client logged in with `info`."""
    return run(
        lambda: with_client(kube_api.KubeClient(fixed(info)), lambda client: client.request("GET", path))
    )


async def with_client(client: kube_api.KubeClient, use: Callable[[kube_api.KubeClient], Awaitable[T]]) -> T:
    try:
        return await use(client)
    finally:
        await client.close()


@pytest.fixture(scope="module")
def secure_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KubeEmulatorInfo, Path]]:
    """An emulator over HTTPS with RBAC; a service account allowed to read ConfigMaps in `team`.
    Yields the admin's view and the CA file."""
    state = tmp_path_factory.mktemp("secure-kube")
    running = start_kube_emulator(state, "--tls", "--authorization", "RBAC")
    try:
        admin = running.info
        admin.kubectl("create", "namespace", NAMESPACE)
        admin.kubectl("create", "serviceaccount", "-n", NAMESPACE, SERVICE_ACCOUNT)
        admin.kubectl("create", "configmap", "-n", NAMESPACE, "settings", "--from-literal=a=b")
        grants = [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "reader", "namespace": NAMESPACE},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "reader", "namespace": NAMESPACE},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
                "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}],
            },
        ]
        admin.kubectl(
            "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": grants})
        )
        ready = json.loads((state / "ready.json").read_text())
        yield admin, Path(ready["certificateAuthority"])
    finally:
        running.stop()


def service_account_token(admin: KubeEmulatorInfo) -> str:
    return admin.kubectl("create", "token", "-n", NAMESPACE, SERVICE_ACCOUNT).stdout.strip()


CONFIG_MAP = f"/api/v1/namespaces/{NAMESPACE}/configmaps/settings"


def test_a_service_account_token_over_tls_trusting_the_ca_data(
    secure_kube: tuple[KubeEmulatorInfo, Path],
) -> None:
    admin, ca_file = secure_kube
    info = kopf.ConnectionInfo(
        server=admin.server,
        ca_data=base64.b64encode(ca_file.read_bytes()).decode(),
        token=service_account_token(admin),
    )

    async def use(client: kube_api.KubeClient) -> tuple[Any, kube_api.KubeApiError]:
        found = await client.request("GET", CONFIG_MAP)
        with pytest.raises(kube_api.KubeApiError) as refused:
            await client.request(
                "POST",
                f"/api/v1/namespaces/{NAMESPACE}/configmaps",
                body={"metadata": {"name": "not-allowed"}, "data": {}},
            )
        return found, refused.value

    found, refused = run(lambda: with_client(kube_api.KubeClient(fixed(info)), use))
    assert found["data"] == {"a": "b"}
    assert refused.status == 403
    assert refused.reason == "Forbidden"
    assert f'"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}" cannot create' in refused.message
    records = [r for r in admin.audit_records() if r["userAgent"] == kube_api.USER_AGENT]
    assert {r["user"] for r in records} == {f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"}


def test_the_ca_from_a_path_and_the_kubeconfig_login(
    secure_kube: tuple[KubeEmulatorInfo, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    admin, ca_file = secure_kube
    monkeypatch.setenv("KUBECONFIG", str(admin.kubeconfig))
    from_kubeconfig = kube_api.login()
    assert from_kubeconfig.server == admin.server
    assert from_kubeconfig.ca_data, "the emulator's kubeconfig carries its CA as data"
    from_path = kopf.ConnectionInfo(server=admin.server, ca_path=str(ca_file), token=from_kubeconfig.token)
    for info in (from_kubeconfig, from_path):
        assert get(info, CONFIG_MAP)["metadata"]["name"] == "settings"


def test_a_server_the_ca_does_not_vouch_for_is_not_trusted_unless_insecure(
    secure_kube: tuple[KubeEmulatorInfo, Path], tmp_path: Path
) -> None:
    admin, _ = secure_kube
    token = service_account_token(admin)
    other_ca = ensure_certificates(tmp_path / "other", "127.0.0.1").ca_file
    untrusted = kopf.ConnectionInfo(server=admin.server, ca_path=str(other_ca), token=token)
    with pytest.raises(kube_api.KubeApiError) as failed:
        get(untrusted, CONFIG_MAP)
    assert failed.value.status is None
    assert "certificate" in str(failed.value).lower()
    insecure = kopf.ConnectionInfo(server=admin.server, insecure=True, token=token)
    assert get(insecure, CONFIG_MAP)["data"] == {"a": "b"}


def test_a_rotated_token_is_read_again_after_a_401(
    secure_kube: tuple[KubeEmulatorInfo, Path], tmp_path: Path
) -> None:
    """As the kubelet rotates a projected token in its file: the client reads the file again when the
    server refuses the one it has, and repeats the request."""
    admin, ca_file = secure_kube
    token_file = tmp_path / "token"
    token_file.write_text("expired-or-revoked\n")
    logins: list[str] = []

    def login() -> kopf.ConnectionInfo:
        token = token_file.read_text().strip()
        logins.append(token)
        return kopf.ConnectionInfo(server=admin.server, ca_path=str(ca_file), token=token)

    async def use(client: kube_api.KubeClient) -> Any:
        with pytest.raises(kube_api.KubeApiError) as refused:
            await client.request("GET", CONFIG_MAP)
        assert refused.value.status == 401
        token_file.write_text(service_account_token(admin) + "\n")
        return await client.request("GET", CONFIG_MAP)

    found = run(lambda: with_client(kube_api.KubeClient(login), use))
    assert found["data"] == {"a": "b"}
    assert logins[:2] == ["expired-or-revoked", "expired-or-revoked"], "a 401 logs in again once"
    assert len(logins) == 3


def test_credentials_are_read_again_when_due_and_before_they_expire(
    secure_kube: tuple[KubeEmulatorInfo, Path],
) -> None:
    admin, ca_file = secure_kube
    token = service_account_token(admin)
    logins = 0

    def login(expiration: datetime.datetime | None) -> kopf.ConnectionInfo:
        nonlocal logins
        logins += 1
        return kopf.ConnectionInfo(
            server=admin.server, ca_path=str(ca_file), token=token, expiration=expiration
        )

    async def three_requests(client: kube_api.KubeClient) -> None:
        for _ in range(3):
            await client.request("GET", CONFIG_MAP)

    run(lambda: with_client(kube_api.KubeClient(lambda: login(None)), three_requests))
    assert logins == 1
    logins = 0
    run(lambda: with_client(kube_api.KubeClient(lambda: login(None), relogin_interval=0), three_requests))
    assert logins == 3
    logins = 0
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=5)
    run(lambda: with_client(kube_api.KubeClient(lambda: login(soon)), three_requests))
    assert logins == 3, "credentials about to expire are renewed before each use"
    logins = 0
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    run(lambda: with_client(kube_api.KubeClient(lambda: login(later)), three_requests))
    assert logins == 1


def test_authorization_headers_follow_kopf() -> None:
    def header(**fields: Any) -> str | None:
        return kube_api.authorization(kopf.ConnectionInfo(server="https://k", **fields))

    assert header(token="t") == "Bearer t"
    assert header(scheme="Negotiate", token="t") == "Negotiate t"
    assert header(scheme="Custom") == "Custom"
    assert header(username="u", password="p", token="t") == "Basic " + base64.b64encode(b"u:p").decode()
    assert header() is None


def test_no_answer_and_no_credentials_are_errors_without_a_status(tmp_path: Path) -> None:
    closed = kopf.ConnectionInfo(server="http://127.0.0.1:9", token="t")
    with pytest.raises(kube_api.KubeApiError) as failed:
        get(closed, "/api")
    assert failed.value.status is None

    def no_login() -> kopf.ConnectionInfo:
        raise kopf.LoginError("nothing to log in with")

    with pytest.raises(kube_api.KubeApiError, match="nothing to log in with") as failed:
        run(lambda: with_client(kube_api.KubeClient(no_login), lambda c: c.request("GET", "/api")))
    assert failed.value.status is None


# --- client certificates -------------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def client_certificate(directory: Path) -> tuple[bytes, bytes, bytes]:
    """(CA, certificate, key) as PEM: a client certificate for `operator-user` and the CA that signed it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("clients-ca"))
        .issuer_name(_name("clients-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("operator-user"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca.public_bytes(pem), certificate.public_bytes(pem), key_pem


async def serve_requiring_client_certificates(
    directory: Path, clients_ca: bytes
) -> tuple[web.AppRunner, str, Path]:
    """An HTTPS server that answers the common name of the client certificate presented; (runner, URL,
    its CA file)."""
    serving = ensure_certificates(directory, "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(serving.certificate_file, serving.key_file)
    context.load_verify_locations(cadata=clients_ca.decode())
    context.verify_mode = ssl.CERT_REQUIRED

    async def whoami(request: web.Request) -> web.Response:
        assert request.transport is not None
        peer = request.transport.get_extra_info("peercert")
        names = [value for field in peer["subject"] for key, value in field if key == "commonName"]
        return web.json_response({"user": names[0]})

    app = web.Application()
    app.router.add_get("/whoami", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"https://127.0.0.1:{port}", serving.ca_file


def test_a_client_certificate_from_paths_or_from_data(tmp_path: Path) -> None:
    clients_ca, certificate, key = client_certificate(tmp_path)
    (tmp_path / "client.crt").write_bytes(certificate)
    (tmp_path / "client.key").write_bytes(key)

    async def main() -> list[Any]:
        runner, server, server_ca = await serve_requiring_client_certificates(tmp_path / "server", clients_ca)
        try:
            answers: list[Any] = []
            for info in (
                kopf.ConnectionInfo(
                    server=server,
                    ca_path=str(server_ca),
                    certificate_path=str(tmp_path / "client.crt"),
                    private_key_path=str(tmp_path / "client.key"),
                ),
                kopf.ConnectionInfo(
                    server=server,
                    ca_data=base64.b64encode(server_ca.read_bytes()).decode(),
                    certificate_data=base64.b64encode(certificate).decode(),
                    private_key_data=base64.b64encode(key).decode(),
                ),
                kopf.ConnectionInfo(
                    server=server,
                    ca_data=server_ca.read_text(),
                    certificate_data=certificate.decode(),
                    private_key_data=key.decode(),
                ),
            ):
                answers.append(await with_client(kube_api.KubeClient(fixed(info)), _whoami))
            without = kopf.ConnectionInfo(server=server, ca_path=str(server_ca), token="t")
            try:
                await with_client(kube_api.KubeClient(fixed(without)), _whoami)
            except kube_api.KubeApiError as error:
                answers.append(error.status)
            return answers
        finally:
            await runner.cleanup()

    before = set(os.listdir(tempfile_directory()))
    assert run(main) == [{"user": "operator-user"}] * 3 + [None]
    assert set(os.listdir(tempfile_directory())) <= before, "the certificate and key files are removed"


async def _whoami(client: kube_api.KubeClient) -> Any:
    return await client.request("GET", "/whoami")


def tempfile_directory() -> str:
    return tempfile.gettempdir()


# --- KubeWriter ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def writer_kube(secure_kube: tuple[KubeEmulatorInfo, Path]) -> KubeEmulatorInfo:
    """The module's own emulator (no operator of the test session watches it) with the operator's CRDs."""
    admin, _ = secure_kube
    for path in sorted((REPO_ROOT / "crds").glob("identityoperator.dev_*.yaml")):
        admin.kubectl("apply", "-f", str(path))
    admin.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/userassignedidentities.identityoperator.dev",
    )
    return admin


@pytest.fixture
def writer_namespace(writer_kube: KubeEmulatorInfo) -> str:
    name = f"writer-{uuid.uuid4().hex[:8]}"
    writer_kube.kubectl("create", "namespace", name)
    return name


def admin_writer(kube: KubeEmulatorInfo, monkeypatch: pytest.MonkeyPatch) -> KubeWriter:
    """A writer logged in as the operator logs in, here from the (administrator's) kubeconfig."""
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
    return KubeWriter.from_environment()


def test_writer_patches_status_and_finalizers_and_maps_conflicts_and_gone_objects(
    writer_kube: KubeEmulatorInfo, writer_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube, namespace = writer_kube, writer_namespace
    name = f"id-{uuid.uuid4().hex[:6]}"
    manifest = {
        "apiVersion": constants.API_VERSION,
        "kind": "UserAssignedIdentity",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"resourceGroup": "rg", "location": "westus"},
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    plural = "userassignedidentities"

    def read() -> dict[str, Any]:
        found: dict[str, Any] = json.loads(
            kube.kubectl("get", "-n", namespace, plural, name, "-o", "json").stdout
        )
        return found

    async def scenario(writer: KubeWriter) -> None:
        stale = read()
        where = {"plural": plural, "namespace": namespace, "name": name}
        patched = await writer.patch_status(**where, status={"observedGeneration": 1})
        assert patched["status"]["observedGeneration"] == 1
        with pytest.raises(WriteConflict):
            await writer.add_finalizer(**where, body=stale)  # the status patch made it stale
        added = await writer.add_finalizer(**where, body=read())
        assert added["metadata"]["finalizers"] == [constants.FINALIZER]
        await writer.remove_finalizer(**where, body=added)
        assert not read()["metadata"].get("finalizers")
        with pytest.raises(WriteConflict):
            await writer.remove_finalizer(**where, body=added)  # the list changed meanwhile
        kube.kubectl("delete", "-n", namespace, plural, name)
        with pytest.raises(ObjectGone):
            await writer.patch_status(**where, status={"observedGeneration": 2})
        await writer.remove_finalizer(**where, body=added)  # gone counts as done

    run(lambda: with_writer(admin_writer(kube, monkeypatch), scenario))


async def with_writer(writer: KubeWriter, use: Callable[[KubeWriter], Awaitable[T]]) -> T:
    try:
        return await use(writer)
    finally:
        await writer.close()


def test_writer_posts_events_and_exports_config_maps(
    writer_kube: KubeEmulatorInfo, writer_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube, namespace = writer_kube, writer_namespace
    owner = {"apiVersion": constants.API_VERSION, "kind": "UserAssignedIdentity", "name": "x", "uid": "u-1"}

    async def scenario(writer: KubeWriter) -> list[Any]:
        await writer.post_event(
            involved={**owner, "namespace": namespace},
            type_="Normal",
            reason="Created",
            message="m" * 2000,
        )
        results: list[Any] = [
            await writer.export_config_map(namespace=namespace, name="ids", data={"a": "1"}, owner=owner),
            await writer.export_config_map(namespace=namespace, name="ids", data={"a": "1"}, owner=owner),
            await writer.export_config_map(namespace=namespace, name="ids", data={"b": "2"}, owner=None),
            await writer.read_config_map(namespace=namespace, name="missing"),
        ]
        try:
            await writer.export_config_map(namespace=namespace, name="Not_Valid", data={}, owner=None)
        except KubernetesError as error:
            results.append((error.status, error.message))
        return results

    results = run(lambda: with_writer(admin_writer(kube, monkeypatch), scenario))
    assert results[:4] == [True, False, True, None]
    status, message = results[4]
    assert status == 422
    assert "Not_Valid" in message
    config_map = json.loads(kube.kubectl("get", "-n", namespace, "configmap", "ids", "-o", "json").stdout)
    assert config_map["data"] == {"a": "1", "b": "2"}
    assert config_map["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    (event,) = json.loads(kube.kubectl("get", "-n", namespace, "events", "-o", "json").stdout)["items"]
    assert (event["reason"], event["source"]["component"]) == ("Created", "azure-identity-operator")
    assert len(event["message"]) == 1024
