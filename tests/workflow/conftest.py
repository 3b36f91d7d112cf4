import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def project_files() -> list[str]:
    """Tracked and untracked-but-not-ignored files: what a fresh clone would hold."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.split("\n")
    return [f for f in out if f and (ROOT / f).is_file()]


def copy_project(dest: Path) -> Path:
    for f in project_files():
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, dest / f)
    return dest


# When Snakemake starts, the Slurm executor plugin runs `scontrol show config` for a help text; with slurm
# installed (test_slurm installs it) but no controller up, that probe waits 9 s, in every Snakemake process
# (each local job starts one). Runs that do not use the Slurm profile see an scontrol that answers at once.
_NO_SCONTROL = Path(tempfile.mkdtemp(prefix="moelab-no-scontrol-"))
(_NO_SCONTROL / "scontrol").write_text("#!/bin/sh\nexit 1\n")
(_NO_SCONTROL / "scontrol").chmod(0o755)


def snakemake(cwd: Path, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if "profiles/slurm" not in args:
        env["PATH"] = f"{_NO_SCONTROL}{os.pathsep}{env.get('PATH', '')}"
    res = subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and res.returncode:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({res.returncode}):\n{res.stdout[-3000:]}\n"
                             f"{res.stderr[-5000:]}")
    return res


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory):
    """The test config run end to end in two copies of the project at different paths."""
    runs = []
    for where in ("a/clone", "b/deeper/other"):
        d = copy_project(tmp_path_factory.mktemp("wf") / where)
        snakemake(d, "--cores", "2", "--configfile", "config/test.yaml")
        runs.append(d)
    return runs


def planned_jobs(cwd: Path, *args: str) -> Counter:
    """The jobs a run would execute, per rule, read from the dry run's job table."""
    res = snakemake(cwd, "-n", *args)
    out = res.stdout + res.stderr
    if "Nothing to be done" in out:
        return Counter()
    table = out.split("Job stats:", 1)[1].split("total", 1)[0]
    return Counter({m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)})


def result_files(d: Path) -> list[Path]:
    """Everything under results/ that must be byte-identical for the same config (timings excluded)."""
    return sorted(p.relative_to(d) for p in (d / "results").rglob("*")
                  if p.is_file() and p.relative_to(d / "results").parts[0] != "bench"
                  and not p.name.startswith("report."))


def differing(a: Path, b: Path) -> list[str]:
    fa, fb = result_files(a), result_files(b)
    assert fa == fb, f"different files: {sorted(set(map(str, fa)) ^ set(map(str, fb)))[:10]}"
    return [str(f) for f in fa if (a / f).read_bytes() != (b / f).read_bytes()]
