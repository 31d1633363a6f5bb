"""The project's layering is the one declared in pyproject.toml, checked by import-linter."""

import shutil
import subprocess
import sys
from pathlib import Path


def test_import_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports is not None, "import-linter is part of the test extras"
    result = subprocess.run([lint_imports], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
