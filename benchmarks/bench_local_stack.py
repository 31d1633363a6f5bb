"""How long `make run` takes to show the product working: from nothing to every example Ready.

Figures, over a few rounds of a fresh local stack: time until both emulators listen, the operator is ready
and the Azure resources the examples name exist; time from applying every example until all their objects
are Ready; and the workload identity check (token exchange and two ARM reads).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from local_stack.stack import DEFAULT_EXAMPLES, EXAMPLES_DIR, LocalStack

ROUNDS = 3


def _round() -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory(prefix="bench-local-stack-") as folder:
        stack = LocalStack(workdir=Path(folder), examples=(), say=lambda _: None)
        started = time.perf_counter()
        try:
            stack.up()
            up = time.perf_counter()
            stack.examples = [EXAMPLES_DIR / name for name in DEFAULT_EXAMPLES]
            stack.apply_examples(timeout=120)
            ready = time.perf_counter()
            stack.check_workload_identity()
            checked = time.perf_counter()
        finally:
            stack.down()
        return up - started, ready - up, checked - ready


def main() -> None:
    rounds = [_round() for _ in range(ROUNDS)]
    for label, values in zip(
        ("emulators + operator + Azure resources up", "every example applied and Ready", "workload check"),
        zip(*rounds, strict=True),
        strict=True,
    ):
        median, low, high = statistics.median(values), min(values), max(values)
        print(f"{label}: median {median:.2f} s (min {low:.2f}, max {high:.2f})")
    total = [sum(r) for r in rounds]
    print(f"make run, start to 'Press Ctrl-C': median {statistics.median(total):.2f} s over {ROUNDS} rounds")


if __name__ == "__main__":
    main()
