"""`make bench`: runs every benchmark module in this folder and prints its figures.

Each module runs in a process of its own, so one benchmark's environment (credentials, CA bundles read
once at import by the TLS stack) and leftover threads never skew or break the next.
"""

import pkgutil
import subprocess
import sys
from pathlib import Path


def main() -> int:
    folder = Path(__file__).parent
    failed = []
    for module in sorted(pkgutil.iter_modules([str(folder)]), key=lambda m: m.name):
        if not module.name.startswith("bench_"):
            continue
        print(f"== {module.name}", flush=True)
        result = subprocess.run(
            [sys.executable, "-c", f"from benchmarks.{module.name} import main; main()"],
            cwd=folder.parent,
            check=False,
        )
        if result.returncode != 0:
            failed.append(module.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
