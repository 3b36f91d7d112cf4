"""The test config through the Slurm profile on a real single-node Slurm cluster (tools/local-slurm).

The runs themselves are in conftest.py (slurm_runs): they go on in background threads while other tests run."""

from collections import Counter

import pytest

from .conftest import assert_ran, differing

pytestmark = pytest.mark.workflow

# profiles/slurm's partitions: capture, proxy and the torch kernels to gpu, the JAX kernels to tpu, the rest cpu
PARTITION = {"capture": "gpu", "proxy": "gpu", "kernel_bench_torch": "gpu", "kernel_bench_jax": "tpu"}


@pytest.fixture(scope="module")
def slurm_run(slurm_runs):
    run = slurm_runs["run"].result()
    print(f"\nSlurm run of the test config: {len(run['jobs'])} jobs in {run['seconds']:.0f} s")
    return run


@pytest.fixture(scope="module")
def slurm_failure(slurm_runs, local_run):  # the scenario starts from the local run: that run first
    return slurm_runs["failing"].result()


def test_every_job_goes_through_sbatch(slurm_run):
    """Every job but the tables and figures (the Snakefile's local rules, run by Snakemake itself) and `all`."""
    jobs, planned, local = slurm_run["jobs"], slurm_run["planned"], slurm_run["local"]
    assert local == Counter({r: n for r, n in planned.items() if r == "all" or r.startswith(("collect_", "plot_"))})
    assert Counter(j["rule"] for j in jobs) == planned - local
    assert {j["state"] for j in jobs} == {"COMPLETED"}
    for j in jobs:
        assert j["partition"] == PARTITION.get(j["rule"], "cpu"), j


def test_slurm_outputs_match_a_local_run(slurm_run, local_run):
    assert not differing(slurm_run["dir"], local_run)


def test_a_failing_job_says_why_and_a_rerun_resumes(slurm_failure, local_run):
    res = slurm_failure["failing"]  # a corrupt trace: every job that reads it fails
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "random-E16-k4/trace.parquet" in out and "TraceError" in out, out[-4000:]
    failed = slurm_failure["failed"]
    assert failed and all(j["state"] == "FAILED" for j in failed), failed
    # profiles/slurm retries twice with memory growing per attempt: three sbatch records per failing job.
    attempts = Counter(j["job"] for j in failed)
    assert max(attempts.values()) == 3, attempts
    job = max(attempts, key=attempts.get)
    mems = [int(j["mem"].rstrip("M")) for j in failed if j["job"] == job]
    assert mems == [mems[0], 2 * mems[0], 3 * mems[0]], mems

    # fixed: the rerun runs what depends on the trace, nothing else, and completes
    planned = slurm_failure["planned"]
    assert "generate_synthetic_trace" not in planned and "train_tiny" not in planned, planned
    assert planned["compute_load_stats"] == 1 and planned["coactivation"] == 1, planned
    assert_ran(slurm_failure["rerun"])
    assert not differing(slurm_failure["dir"], local_run)


@pytest.fixture(scope="module")
def slurm_site(slurm_runs):
    return slurm_runs["site"].result()


def test_the_literal_profile_slurm_keeps_a_site_profiles_account_and_partition(slurm_site):
    from .conftest import SITE_ACCOUNT, SITE_PARTITION, SITE_PROFILE

    kept = slurm_site["kept"]
    assert kept.returncode == 0 and "exists already" in kept.stdout, kept.stdout + kept.stderr
    assert slurm_site["profile"] == SITE_PROFILE  # `make slurm-profile` left the site's profile alone
    assert_ran(slurm_site["run"])
    records = slurm_site["records"]  # Slurm's own job completion records, not Snakemake's
    assert len(records) == 2, records
    for r in records:
        assert r["JobState"] == "COMPLETED", r
        assert r["Account"] == SITE_ACCOUNT and r["Partition"] == SITE_PARTITION, r
