"""Run every benchmark: python -m bench [--quick] [--only NAME[,NAME]] (or make bench).

Each benchmark runs in its own child process (`python -m bench.<name> ...`), so one that crashes, hangs
or leaks memory cannot spoil the others, and each starts from a clean interpreter (what a user's studio
does). Every child merges its figures into bench/results.json (BENCH_RESULTS overrides the path);
afterwards the markdown table is written to docs/benchmarks.md (--doc overrides, --no-doc skips).
`--quick` uses few repetitions and small sizes: a smoke test of the harness, not figures to quote.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name: (full arguments, --quick arguments, timeout in seconds for the full run)
BENCHES: dict[str, tuple[list[str], list[str], int]] = {
    "startup": ([], ["--repeats", "1"], 600),
    "manager": ([], ["--repeats", "1"], 600),
    "label": ([], ["--repeats", "3", "--images", "32"], 1200),
    "chat": (["--threads", "1"], ["--repeats", "2", "--tokens", "16", "--threads", "1"], 1200),
    "inspect": ([], ["--repeats", "3"], 1800),
    "overhead": ([], ["--repeats", "3"], 1200),
    "paint": ([], ["--steps", "4", "--size", "64", "--repeats", "2"], 1800),
    "tape": ([], ["--repeats", "1"], 1800),
    "responsiveness": ([], ["--repeats", "1", "--steps", "4", "--size", "128", "--idle-s", "1"], 1200),
    "memory": ([], ["--quick"], 1800),
    "gpu": ([], ["--quick"], 3600),
}


def run_one(name: str, quick: bool, env: dict) -> tuple[bool, float]:
    full, fast, timeout = BENCHES[name]
    cmd = [sys.executable, "-m", f"bench.{name}", *(fast if quick else full)]
    print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=timeout if not quick else min(timeout, 900))
        ok = proc.returncode == 0
        if not ok:
            print(f"FAILED {name}: exit status {proc.returncode}", flush=True)
    except subprocess.TimeoutExpired:
        print(f"FAILED {name}: timed out", flush=True)
        ok = False
    return ok, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few repetitions: checks the harness, figures are rough")
    ap.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(BENCHES)}")
    ap.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"), help="markdown table to write")
    ap.add_argument("--no-doc", action="store_true", help="do not write the markdown table")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHES)}")

    from bench.common import load, machine, save

    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["BENCH_QUICK"] = "1" if args.quick else "0"
    # Bytecode caching on, as in an installed app, but outside the working tree (see bench.startup).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", os.path.join(tempfile.gettempdir(), "studio-bench-pycache"))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    os.environ.update({k: env[k] for k in ("QT_QPA_PLATFORM", "HF_HUB_OFFLINE")})

    data = load()
    data["machine"] = machine()  # the first benchmark that imports torch adds the device
    data["machine"]["load_average_at_start"] = data["machine"].pop("load_average", None)
    save(data)
    failed, seconds = [], {}
    for name in names:
        ok, secs = run_one(name, args.quick, env)
        seconds[name] = round(secs, 1)
        if not ok:
            failed.append(name)
    data = load()
    try:
        data["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    data["last_run"] = {"benchmarks": names, "quick": args.quick, "failed": failed, "seconds": seconds,
                        "finished_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    save(data)
    if not args.no_doc:
        from bench.report import write_markdown

        write_markdown(data, Path(args.doc))
        print(f"wrote {args.doc}")
    print(f"results: {', '.join(f'{k} {v} s' for k, v in seconds.items())}"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
