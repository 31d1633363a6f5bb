"""docs/operations.md says what the manifests do: its example overlay renders with the settings it shows,
its configuration table lists exactly the ConfigMap's keys, and every deploy/ path it names exists.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from .manifests import CRDS_DIR, DEPLOY_DIR, REPO_ROOT, only, render

DOC = REPO_ROOT / "docs" / "operations.md"
EXAMPLE_MARKER = "<!-- the block below is rendered by tests/deploy/test_operations_doc.py -->"
EXAMPLE_OVERLAY = "deploy/overlays/my-cluster"


def example_overlay() -> str:
    text = DOC.read_text()
    assert EXAMPLE_MARKER in text
    after = text.split(EXAMPLE_MARKER, 1)[1]
    match = re.search(r"```yaml\n(.*?)\n\s*```", after, flags=re.DOTALL)
    assert match is not None
    lines = match.group(1).splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines) + "\n"


def test_example_overlay_renders_with_the_settings_it_shows(tmp_path: Path) -> None:
    # A copy of the repository's deploy/ and crds/, so the example sits where the doc puts it.
    shutil.copytree(DEPLOY_DIR, tmp_path / "deploy")
    shutil.copytree(CRDS_DIR, tmp_path / "crds")
    overlay = tmp_path / EXAMPLE_OVERLAY
    overlay.mkdir()
    text = example_overlay()
    (overlay / "kustomization.yaml").write_text(text)
    literals = dict(
        literal.split("=", 1) for literal in yaml.safe_load(text)["configMapGenerator"][0]["literals"]
    )

    objects = render(overlay)

    config_map = only(objects, "ConfigMap", "azure-identity-operator-config")
    for key, value in literals.items():
        assert config_map["data"][key] == value
    assert config_map["data"]["IDENTITY_OPERATOR_LOG_FORMAT"] == "json", "shipped values are kept"
    service_account = only(objects, "ServiceAccount", "azure-identity-operator")
    assert (
        service_account["metadata"]["annotations"]["azure.workload.identity/client-id"]
        == literals["AZURE_CLIENT_ID"]
    )
    assert only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [
        {"configMapRef": {"name": "azure-identity-operator-config"}}
    ]


def test_configuration_table_lists_exactly_the_config_map_keys() -> None:
    shipped = dict(
        line.split("=", 1)
        for line in (DEPLOY_DIR / "base" / "config.env").read_text().splitlines()
        if line.strip()
    )
    section = DOC.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    table = section.split("| key |", 1)[1].split("\n\n", 1)[0]
    documented = re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.MULTILINE)
    assert sorted(documented) == sorted(shipped)
    for key, value in shipped.items():
        if value:
            assert re.search(rf"^\| `{key}` \| `{re.escape(value)}` \|", table, flags=re.MULTILINE), key


def test_every_deploy_path_the_doc_names_exists() -> None:
    named = set(re.findall(r"(?<![\w/])(deploy/[\w./-]*[\w-])", DOC.read_text()))
    shipped = {path for path in named if not path.startswith(EXAMPLE_OVERLAY)}
    assert shipped
    for path in shipped:
        assert (REPO_ROOT / path).exists(), path
