import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TEST = ("--configfile", "config/test.yaml")


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


def snakemake(cwd: Path, *args: str, check: bool = True, timeout: float = 2400,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    if "slurm" not in args:  # not `--profile slurm`
        env["PATH"] = f"{_NO_SCONTROL}{os.pathsep}{env.get('PATH', '')}"
    # The Slurm runs are background work: at a lower CPU priority they take the cores the tests in the
    # foreground leave idle (tools/local-slurm's PropagatePrioProcess gives their jobs the same nice value;
    # with autogroup scheduling, foreground_priority does it).
    nice = ["nice", "-n", "10"] if "slurm" in args and "-n" not in args else []
    res = subprocess.run([*nice, SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, env=env,
                         timeout=timeout)
    if check:
        assert_ran(res)
    return res


def assert_ran(res: subprocess.CompletedProcess) -> None:
    if res.returncode:
        raise AssertionError(f"snakemake {' '.join(res.args[1:])} failed ({res.returncode}):\n{res.stdout[-3000:]}\n"
                             f"{res.stderr[-5000:]}")


def selected(request, fixture: str) -> bool:
    """Whether a test of this session uses ``fixture``, directly or through another fixture."""
    return any(fixture in getattr(item, "fixturenames", ()) for item in request.session.items)


def pytest_collection_modifyitems(config, items):
    """The tests that read the Slurm runs or compare two whole runs go last: the Slurm runs go on in the
    background meanwhile, and the other workflow tests need only the local run."""
    late = ("slurm_runs", "two_runs")
    items.sort(key=lambda item: any(f in getattr(item, "fixturenames", ()) for f in late))  # stable


@pytest.fixture(scope="session")
def local_run(request, tmp_path_factory):
    """A finished run of the test config, in a copy of the project. When the session holds the Slurm tests,
    their runs start first and go on in the background (pytest keeps a failure or skip of that fixture for the
    Slurm tests to report; this run goes on); the failing-job scenario starts from this run once it is done."""
    slurm = None
    if selected(request, "slurm_runs"):
        try:
            slurm = request.getfixturevalue("slurm_runs")
        except (Exception, pytest.skip.Exception):
            pass
    first = copy_project(tmp_path_factory.mktemp("wf") / "a/clone")
    try:
        snakemake(first, "--cores", "2", *TEST)
    except BaseException as e:
        if slurm:
            slurm["local"].set_exception(e)
        raise
    if slurm:  # a private copy, taken before other tests run Snakemake in this one (locks, reports)
        base = first.parent / "failing-base"
        shutil.copytree(first, base, symlinks=True)
        slurm["local"].set_result(base)
    return first


@pytest.fixture(scope="session")
def two_runs(request, local_run, tmp_path_factory):
    """Two finished runs of the test config in copies of the project at different paths, expected to hold the
    same bytes: the local run and, when the session holds the Slurm tests and the cluster runs, the Slurm run
    (a third full run would add nothing but minutes); otherwise a second local run."""
    if selected(request, "slurm_runs"):
        try:
            return [local_run, request.getfixturevalue("slurm_runs")["run"].result()["dir"]]
        except (Exception, pytest.skip.Exception):  # the Slurm tests report why; a second local run stands in
            pass
    second = copy_project(tmp_path_factory.mktemp("wf") / "b/deeper/other")
    snakemake(second, "--cores", "2", *TEST)
    return [local_run, second]


@pytest.fixture(scope="session")
def report_zip(local_run):
    """The report of the local run, written once for the tests that read it."""
    snakemake(local_run, "--cores", "2", *TEST, "--report", "results/report.zip")
    return local_run / "results/report.zip"


def planned_jobs(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Counter:
    """The jobs a run would execute, per rule, read from the dry run's job table."""
    res = snakemake(cwd, "-n", *args, env=env)
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


# --- Slurm (test_slurm.py) ---------------------------------------------------------------------------------

LOCAL_SLURM = str(ROOT / "tools/local-slurm")
# The README's Slurm command, on the test config: the profile named slurm that `make slurm-profile` installs in
# the user's config directory (XDG_CONFIG_HOME points at a folder of the test's own).
SLURM = ("--profile", "slurm", *TEST)
# The full run as the profile's comment advises on a cluster with few slots (tools/local-slurm has four): at most
# 8 jobs in Slurm's queue, so Snakemake's rule priorities (the training and capture chain first) pick what goes
# next, not Slurm's first come, first served (with the profile's 100, the chain's jobs waited minutes behind
# dozens of short ones and ended the run); greedy: the default scheduler solves an ILP at every pick.
SLURM_FEW_SLOTS = ("--jobs", "8", "--scheduler", "greedy")
# A site's own profile named slurm: its account and partition live in default-resources, which nothing the
# project loads may replace. A cluster without accounting (tools/local-slurm) asks for squeue status checks.
SITE_ACCOUNT, SITE_PARTITION = "moelab-site", "tpu"
SITE_PROFILE = f"""executor: slurm
jobs: 10
latency-wait: 60
slurm-status-command: squeue
slurm-init-seconds-before-status-checks: 2
default-resources:
  slurm_account: "{SITE_ACCOUNT}"
  slurm_partition: "{SITE_PARTITION}"
"""
# what the site run builds: a synthetic trace and its load statistics (two sbatch jobs)
SITE_TARGET = "results/stats/random-E16-k4/layers.parquet"
JOBCOMP = Path(os.environ.get("MOELAB_SLURM_STATE", "/var/lib/moelab-slurm")) / "jobcomp.log"


@pytest.fixture(scope="session")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("tools/local-slurm needs root (apt, daemons, /etc/slurm)")
    was_up = subprocess.run([LOCAL_SLURM, "status"], capture_output=True).returncode == 0
    res = subprocess.run([LOCAL_SLURM, "start"], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    before = foreground_priority(-10)
    yield
    foreground_priority(before)
    if not was_up:
        subprocess.run([LOCAL_SLURM, "stop"], capture_output=True, timeout=300)


AUTOGROUP = Path("/proc/self/autogroup")


def foreground_priority(nice: int) -> int:
    """Set this session's scheduling group to ``nice``; return what it was (0 where there is none).

    Linux's autogroup scheduling (on by default) shares the CPU between sessions before any nice value counts,
    and every Slurm job runs in a session of its own: four running jobs would take four fifths of the cores
    from the whole test session, nice 10 or not. The tests in the foreground (and the local run the Slurm
    runs are compared with) keep their share this way; the Slurm jobs take what they leave idle."""
    try:
        old = int(AUTOGROUP.read_text().split("nice")[1])
        AUTOGROUP.write_text(str(nice))
        return old
    except (OSError, IndexError, ValueError):  # no autogroup scheduling in this kernel: nice values suffice
        return 0


def slurm_jobs(workdir) -> list[dict]:
    """Slurm's own record of the jobs submitted from ``workdir`` (kept by slurmctld for MinJobAge)."""
    out = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i|%k|%P|%T|%m|%Z"],
                         capture_output=True, text=True, check=True).stdout
    jobs = []
    for line in out.splitlines():
        jobid, comment, partition, state, mem, wd = line.split("|")
        if os.path.realpath(wd) != os.path.realpath(workdir):
            continue
        m = re.fullmatch(r"rule_(\w+?)(_wildcards_.*)?", comment)
        assert m, f"Slurm job {jobid} has no rule in its comment: {comment!r}"
        jobs.append({"id": int(jobid), "rule": m[1], "job": comment, "partition": partition, "state": state,
                     "mem": mem})
    return sorted(jobs, key=lambda j: j["id"])


def slurm_records(workdir) -> list[dict]:
    """Slurm's job completion records (slurm.conf JobCompLoc) of the jobs that ran in ``workdir``."""
    recs = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in JOBCOMP.read_text().splitlines()]
    return [r for r in recs if os.path.realpath(r.get("WorkDir", "")) == os.path.realpath(workdir)]


def make_slurm_profile(d: Path) -> list[str]:
    """`make slurm-profile` in a copy ``d``, with this checkout's venv, which is set up already: ``-o`` keeps make
    from reinstalling it from the copy (a copy's pyproject.toml can be newer than the venv's stamp, and an
    editable install from the copy would point the venv at a temporary folder)."""
    venv = ROOT / ".venv"
    return ["make", "-C", str(d), "slurm-profile", f"VENV={venv}", "-o", str(venv / ".installed")]


def install_slurm_profile(d: Path, home: Path) -> dict[str, str]:
    """`make slurm-profile` as the README says, into a config home of the test's own; the env that finds it."""
    env = {"XDG_CONFIG_HOME": str(home)}
    res = subprocess.run(make_slurm_profile(d), capture_output=True, text=True, env={**os.environ, **env},
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    installed = home / "snakemake/slurm/config.yaml"
    assert installed.read_bytes() == (ROOT / "profiles/slurm/config.yaml").read_bytes(), res.stdout
    return env


def slurm_run_of_the_test_config(d: Path) -> dict:
    copy_project(d)
    env = install_slurm_profile(d, d.parent / "config-home")
    planned = planned_jobs(d, *SLURM, env=env)
    t0 = time.perf_counter()
    res = snakemake(d, *SLURM, *SLURM_FEW_SLOTS, timeout=2400, env=env)
    seconds = time.perf_counter() - t0
    # the jobs Snakemake ran itself (the workflow's local rules), as its log names them
    local = Counter(re.findall(r"^localrule (\w+):", res.stdout + res.stderr, re.M))
    # read at once: squeue forgets a finished job after MinJobAge, and the tests may come much later
    return {"dir": d, "planned": planned, "jobs": slurm_jobs(d), "local": local, "seconds": seconds, "env": env}


def slurm_run_with_a_site_profile(d: Path) -> dict:
    """`snakemake --profile slurm` with the site's own profile named slurm; `make slurm-profile` keeps it."""
    copy_project(d)
    home = d.parent / "site-config-home"
    (home / "snakemake/slurm").mkdir(parents=True)
    (home / "snakemake/slurm/config.yaml").write_text(SITE_PROFILE)
    env = {"XDG_CONFIG_HOME": str(home)}
    kept = subprocess.run(make_slurm_profile(d), capture_output=True, text=True, env={**os.environ, **env},
                          timeout=120)
    # at the head of the queue (root may lower a job's nice value), beside the full run instead of behind it
    ahead = [f"{rule}:slurm_extra='--nice=-1000'" for rule in ("generate_synthetic_trace", "compute_load_stats")]
    res = snakemake(d, "--profile", "slurm", SITE_TARGET, *TEST, "--set-resources", *ahead, timeout=1200, env=env,
                    check=False)
    return {"dir": d, "run": res, "kept": kept, "profile": (home / "snakemake/slurm/config.yaml").read_text(),
            "records": slurm_records(d)}


# what the failing-job scenario asks for: two jobs that read the trace it corrupts (every job that reads it fails;
# two are enough to show it, and keep the scenario's Slurm jobs few)
FAILING_TARGETS = ("results/stats/random-E16-k4/layers.parquet", "results/coactivation/random-E16-k4/layers.parquet")


def slurm_run_with_a_failing_job(local: Future) -> dict:
    """test_a_failing_job_says_why_and_a_rerun_resumes's runs, through `--profile slurm`, on a copy of the
    finished local run; the test checks what they record, in order."""
    work = local.result().parent / "failing"
    local.result().rename(work)
    env = install_slurm_profile(work, work.parent / "failing-config-home")
    trace = work / "results/synthetic/random-E16-k4/trace.parquet"
    good = trace.read_bytes()
    trace.write_bytes(good[: len(good) // 2])  # a corrupt trace: every job that reads it fails
    # ahead of the full Slurm run's queued jobs (root may lower a job's nice value), so this scenario ends
    # while that run goes on, instead of waiting behind it with the executor's status checks backing off
    ahead = [f"{rule}:slurm_extra='--nice=-1000'" for rule in ("compute_load_stats", "coactivation")]
    args = ("--profile", "slurm", *FAILING_TARGETS, *TEST, "--set-resources", *ahead)
    failing = snakemake(work, *args, check=False, timeout=2400, env=env)
    failed = slurm_jobs(work)  # the copy's first Slurm jobs
    trace.write_bytes(good)  # fixed: the rerun runs what depends on the trace, nothing else, and completes
    planned = planned_jobs(work, *args, env=env)
    rerun = snakemake(work, *args, check=False, timeout=2400, env=env)
    return {"dir": work, "failing": failing, "failed": failed, "planned": planned, "rerun": rerun}


@pytest.fixture(scope="session")
def slurm_runs(request, cluster, tmp_path_factory):
    """The Slurm runs, in background threads: much of their time is spent waiting (on Slurm's scheduling, on
    the profile's status checks, on retries), so the other tests go on meanwhile. The full run; beside it the site
    profile's run, its two jobs put at the head of Slurm's queue (behind the full run's they would wait for it to
    end); the failing-job scenario beside them, once the local run (which sets ``local``) is done. local_run starts them when the session holds a
    Slurm test; the Slurm tests wait for what they read."""
    local = Future()
    with ThreadPoolExecutor(3, thread_name_prefix="slurm") as pool:
        run = pool.submit(slurm_run_of_the_test_config, tmp_path_factory.mktemp("slurm") / "p")
        failing = pool.submit(slurm_run_with_a_failing_job, local) if selected(request, "slurm_failure") else None
        site = (pool.submit(slurm_run_with_a_site_profile, tmp_path_factory.mktemp("slurm-site") / "p")
                if selected(request, "slurm_site") else None)
        yield {"run": run, "failing": failing, "site": site, "local": local}
        if not local.done():  # no local run this session: the failing scenario has nothing to start from
            local.set_exception(RuntimeError("the local run of the test config did not run in this session"))
        for job in (run, failing, site):  # leaving early (a failure, ^C): what has not started never starts;
            if job:                       # what has, ends before the cluster stops
                job.cancel()
