"""Run every benchmark under bench/ (``make bench``); each prints its own figures."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def preflight() -> list[str]:
    """Warnings to read before the run starts, not fifty minutes into it: what would make its figures incomparable."""
    from bench.bench_serving import HTTPX_CAVEAT, load_generator, run_wrk

    return [] if load_generator("auto")[0] is run_wrk else [f"bench_serving.py: {HTTPX_CAVEAT}"]


def main() -> int:
    for warning in preflight():
        print(warning, flush=True)
    failed = 0
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"== {script.name}", flush=True)
        failed += subprocess.call([sys.executable, str(script)]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
