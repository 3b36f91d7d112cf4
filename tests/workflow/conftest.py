import os
import shutil
import subprocess
import sys
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


def snakemake(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    res = subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, env=env)
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
