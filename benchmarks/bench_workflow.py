"""How long Snakemake takes to decide there is nothing to do (the goal: a no-op run under 10 s).

Run after a complete pipeline run of the default config (`make run`); prints the median of 5 no-op runs and,
when the local Slurm cluster is up (tools/local-slurm start), of 5 through the Slurm profile.

    .venv/bin/python benchmarks/bench_workflow.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def no_op(*args: str) -> float:
    t0 = time.perf_counter()
    res = subprocess.run([SNAKEMAKE, *args], cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if "Nothing to be done" not in res.stdout + res.stderr:
        sys.exit("the pipeline is not up to date: run `make run` first\n" + (res.stdout + res.stderr)[-2000:])
    return elapsed


def main() -> None:
    local = [no_op("--cores", "2") for _ in range(5)]
    print(f"no-op run, local: {statistics.median(local):.2f} s median of 5 (goal < 10 s)")
    if subprocess.run([str(ROOT / "tools/local-slurm"), "status"], capture_output=True).returncode == 0:
        slurm = [no_op("--workflow-profile", "profiles/slurm") for _ in range(5)]
        print(f"no-op run, Slurm profile: {statistics.median(slurm):.2f} s median of 5 (goal < 10 s)")


if __name__ == "__main__":
    main()
