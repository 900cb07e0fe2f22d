"""Run every benchmark: python -m bench (or make bench). Writes bench/results.json."""
from __future__ import annotations

import importlib
import sys

BENCHES = ["bench.startup", "bench.manager", "bench.label"]


def main() -> int:
    failed = []
    for name in BENCHES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            print(f"skip {name}: {exc}")
            continue
        print(f"== {name}")
        try:
            mod.main([])
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            print(f"FAILED {name}: {exc}")
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
