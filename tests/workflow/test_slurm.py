"""The test config through the Slurm profile on a real single-node Slurm cluster (tools/local-slurm)."""

import os
import re
import shutil
import subprocess
import time
from collections import Counter

import pytest

from .conftest import ROOT, copy_project, differing, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

LOCAL_SLURM = str(ROOT / "tools/local-slurm")
# Exactly the README's Slurm command, on the test config.
SLURM = ("--workflow-profile", "profiles/slurm", "--configfile", "config/test.yaml")
# profiles/slurm's partitions: capture, proxy and the torch kernels to gpu, the JAX kernels to tpu, the rest cpu
PARTITION = {"capture": "gpu", "proxy": "gpu", "kernel_bench_torch": "gpu", "kernel_bench_jax": "tpu"}


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("tools/local-slurm needs root (apt, daemons, /etc/slurm)")
    was_up = subprocess.run([LOCAL_SLURM, "status"], capture_output=True).returncode == 0
    res = subprocess.run([LOCAL_SLURM, "start"], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    yield
    if not was_up:
        subprocess.run([LOCAL_SLURM, "stop"], capture_output=True, timeout=300)


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


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    d = copy_project(tmp_path_factory.mktemp("slurm") / "p")
    planned = planned_jobs(d, *SLURM)
    t0 = time.perf_counter()
    snakemake(d, *SLURM, timeout=1200)
    print(f"\nSlurm run of the test config: {len(slurm_jobs(d))} jobs in {time.perf_counter() - t0:.0f} s")
    return d, planned


def test_every_job_goes_through_sbatch(slurm_run):
    d, planned = slurm_run
    jobs = slurm_jobs(d)
    assert Counter(j["rule"] for j in jobs) == planned - Counter({"all": planned["all"]})  # `all` is local
    assert {j["state"] for j in jobs} == {"COMPLETED"}
    for j in jobs:
        assert j["partition"] == PARTITION.get(j["rule"], "cpu"), j


def test_slurm_outputs_match_a_local_run(slurm_run, two_runs):
    d, _ = slurm_run
    assert not differing(d, two_runs[0])


def test_a_failing_job_says_why_and_a_rerun_resumes(slurm_run, two_runs):
    d, _ = slurm_run
    work = d.parent / "failing"
    shutil.copytree(d, work, symlinks=True)
    before = {j["id"] for j in slurm_jobs(work)}
    trace = work / "results/synthetic/random-E16-k4/trace.parquet"
    good = trace.read_bytes()
    trace.write_bytes(good[: len(good) // 2])  # a corrupt trace: every job that reads it fails
    res = snakemake(work, *SLURM, check=False, timeout=1200)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "random-E16-k4/trace.parquet" in out and "TraceError" in out, out[-4000:]
    failed = [j for j in slurm_jobs(work) if j["id"] not in before]
    assert failed and all(j["state"] == "FAILED" for j in failed), failed
    # profiles/slurm retries twice with memory growing per attempt: three sbatch records per failing job.
    attempts = Counter(j["job"] for j in failed)
    assert max(attempts.values()) == 3, attempts
    job = max(attempts, key=attempts.get)
    mems = [int(j["mem"].rstrip("M")) for j in failed if j["job"] == job]
    assert mems == [mems[0], 2 * mems[0], 3 * mems[0]], mems

    trace.write_bytes(good)  # fixed: the rerun runs what depends on the trace, nothing else, and completes
    planned = planned_jobs(work, *SLURM)
    assert "generate_synthetic_trace" not in planned and "train_tiny" not in planned, planned
    assert planned["compute_load_stats"] == 1 and planned["coactivation"] == 1, planned
    snakemake(work, *SLURM, timeout=1200)
    assert not differing(work, two_runs[0])
