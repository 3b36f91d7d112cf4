"""Partial reruns: a change to one stage's parameters or code reruns exactly that stage and its dependents."""

import os
import re
import shutil
import signal
import subprocess
import time
import zipfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pyarrow.parquet as pq
import pytest
import yaml

from .conftest import SNAKEMAKE, differing, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

TEST = ("--configfile", "config/test.yaml")


@pytest.fixture(scope="module")
def finished(local_run, tmp_path_factory):
    """A copy of a finished run of the test config (outputs, logs and Snakemake's records)."""
    d = tmp_path_factory.mktemp("rerun") / "p"
    shutil.copytree(local_run, d, symlinks=True)
    assert not planned_jobs(d, *TEST), "a copy of a finished run should have nothing to do"
    return d


@pytest.fixture(scope="module")
def downstream(finished):
    """Rule -> every rule that depends on it, transitively, from Snakemake's rule graph."""
    dot = snakemake(finished, "--rulegraph", *TEST).stdout
    label = dict(re.findall(r'(\d+)\[label = "(\w+)"', dot))
    edges = defaultdict(set)
    for a, b in re.findall(r"(\d+) -> (\d+)", dot):
        edges[label[a]].add(label[b])

    def closure(*roots):
        seen, todo = set(roots), list(roots)
        while todo:
            for nxt in edges[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    return closure


def with_config(d, name, edit):
    cfg = yaml.safe_load((d / "config/test.yaml").read_text())
    edit(cfg)
    (d / f"config/{name}.yaml").write_text(yaml.safe_dump(cfg))
    return ("--configfile", f"config/{name}.yaml")


def test_a_reordered_config_reruns_nothing(finished):
    # yaml.safe_dump sorts the keys: the same config, written in another order
    assert not planned_jobs(finished, *with_config(finished, "reordered", lambda c: None))


EXPORTS = {"export_placements"}  # placements in the engines' files, static and dynamic
DYNAMIC = {"dynamic_placement", "plot_dynamic_placement", "all"} | EXPORTS
# the grid; a user's policy (config/test.yaml runs one) is scored against each cell's own DS-EPLB rows
GRID = {"dynamic_grid_cell", "user_policy_grid", "collect_dynamic_grid", "collect_summary", "all"}
IMPORTED_GRID = {"imported_grid", "user_policy_imported", "collect_imported_grid", "collect_summary",
                 "all"}  # the grid's policies on the imported loads
# the decision per grid cell (from the workload models) and per imported load
DECIDE_GRID = {"decide_grid", "collect_decision", "collect_summary", "all"}
DECIDE = DECIDE_GRID | {"decide_placement"}
# the workload models (each fitted after the one it keeps parameters from); the grid runs on them
WORKLOADS = {"fit_workload", "predict_workload", "collect_hotness_predictions", "plot_hotness_predictions",
             "collect_summary", "all"} | GRID | DECIDE_GRID
# moelab's written competition submission: the grids score it
SUBMISSION = {"competition_submission", "all"} | GRID | IMPORTED_GRID
PLACEMENT_FIGS = {"collect_placement", "plot_placement", "collect_summary", "all"}
STATIC = {"static_placement"} | PLACEMENT_FIGS | EXPORTS
COACT_FIGS = {"collect_coactivation", "plot_coactivation_gain", "plot_coactivation_heatmap", "plot_domain_expert",
              "tiny_checkpoint_table", "collect_summary", "all"}
STATS_FIGS = {"collect_load_stats", "plot_device_loads", "plot_drift_timeline", "plot_expert_loads",
              "plot_layer_loads", "plot_alpha_comparison", "plot_top20_share", "tiny_checkpoint_table", "collect_summary",
              "all"}
TRACE_DOWNSTREAM = {"compute_load_stats", "coactivation", "cache_simulation"} | STATIC | STATS_FIGS | COACT_FIGS
# A synthetic trace feeds no checkpoint figure (heatmaps, domain x expert, layer loads, trained vs untrained,
# co-activation gain); a captured one feeds no synthetic-shape figure.
SYNTHETIC_DOWNSTREAM = TRACE_DOWNSTREAM - {"plot_coactivation_heatmap", "plot_domain_expert", "plot_layer_loads",
                                           "tiny_checkpoint_table", "plot_coactivation_gain"}
KERNELS = {"kernel_workloads", "kernel_bench_torch", "kernel_bench_jax", "kernel_alpha", "collect_kernel_bench", "all"}
ROUTING_CAPACITY = {"routing_capacity", "collect_routing_capacity", "collect_routing_bench", "all"}
ROUTING_STUDY = {"routing_train", "collect_routing_study", "collect_routing_bench", "collect_summary", "all"}
ROUTING_PERFT = {"routing_perft", "plot_routing_perft", "all"}
CAPTURED_DOWNSTREAM = (TRACE_DOWNSTREAM - {"plot_device_loads", "plot_expert_loads", "plot_drift_timeline"}) \
    | {"capture_summary", "proxy", "dynamic_placement", "plot_dynamic_placement"} \
    | (KERNELS - {"kernel_bench_jax"}) \
    | ROUTING_CAPACITY  # captured-tiny is timed in torch (JAX times a synthetic trace only) and swept
# changes that reach only some jobs of their stage's rule: the rule graph's dependents are a superset
PARTIAL = {"one scenario's drift", "capture length", "training steps", "corpus size"}

# every rule that takes the dynamic policies' blocks (placement.eplb, .policy, .score) as a parameter
POLICY_USERS = {"dynamic_placement", "dynamic_grid_cell", "imported_grid", "user_policy_grid", "user_policy_imported",
                "decide_grid", "decide_placement"}
# (what changes, the stage's own rules, every rule that must rerun, exact job counts where they say more)
PARAM_CHANGES = {
    "cache capacities": (lambda c: c["placement"].update(cache_capacities=[0.25, 0.75]), {"cache_simulation"},
                         {"cache_simulation"} | PLACEMENT_FIGS, {"cache_simulation": 9}),
    "static load slack": (lambda c: c["placement"].update(load_slack=0.1), {"static_placement"},
                          STATIC, {"static_placement": 9, "export_placements": 1}),
    "balance CV budgets": (lambda c: c["placement"].update(cv_budgets=[0.0, 0.01]), {"static_placement"},
                           STATIC, {"static_placement": 9}),
    "matched-CV tolerance": (lambda c: c["placement"].update(cv_match=0.01), {"collect_placement"},
                             PLACEMENT_FIGS, {"collect_placement": 1}),
    "dynamic seconds per call": (lambda c: c["placement"]["dynamic"].update(policy_seconds=0.1),
                                 {"dynamic_placement"}, DYNAMIC, {"dynamic_placement": 4, "export_placements": 1}),
    "score constants": (lambda c: c["placement"]["score"].update(bandwidth=1e12), POLICY_USERS,
                        DYNAMIC | GRID | IMPORTED_GRID | DECIDE,
                        {"dynamic_placement": 4, "dynamic_grid_cell": 3, "imported_grid": 2, "decide_grid": 1,
                         "decide_placement": 2}),
    "devices x slots sweep": (lambda c: c["placement"].update(sweep_redundant_slots=[0, 2]), {"dynamic_placement"},
                              DYNAMIC, {"dynamic_placement": 4}),
    "workload fits": (lambda c: c["placement"]["workloads"].update(max_evaluations=3),
                      {"fit_workload", "predict_workload"}, WORKLOADS,
                      {"fit_workload": 5, "predict_workload": 5, "dynamic_grid_cell": 3}),
    # the predictions table's seeds: the fits stand
    "workload prediction seeds": (lambda c: c["placement"]["workloads"].update(seeds=[1, 3]),
                                  {"predict_workload"},
                                  WORKLOADS - GRID - DECIDE_GRID - {"fit_workload"} | {"collect_summary", "all"},
                                  {"predict_workload": 5}),
    "grid drift scales": (lambda c: c["placement"]["grid"].update(drift_scales=[0, 1, 2]),
                          {"dynamic_grid_cell", "decide_grid"}, GRID | DECIDE_GRID,
                          {"dynamic_grid_cell": 6, "decide_grid": 1}),  # x0, x2: ShareGPT EP 32, 256; Qwen3 EP32
    # moelab's policy is one block, wherever it runs: captured traces, imported loads, the grid
    "moelab's policy": (lambda c: c["placement"]["policy"].update(halflife=32), POLICY_USERS,
                        DYNAMIC | GRID | IMPORTED_GRID | DECIDE,
                        {"dynamic_placement": 4, "dynamic_grid_cell": 3, "imported_grid": 2, "decide_placement": 2}),
    # the submission has its own settings (the evaluator's cadence): the file and the scores that load it
    "moelab's submission": (lambda c: c["placement"]["submission"].update(halflife=16), {"competition_submission"},
                            SUBMISSION, {"competition_submission": 1, "dynamic_grid_cell": 3, "imported_grid": 2}),
    "DS-EPLB's cadence": (lambda c: c["placement"]["eplb"].update(call_interval=12), POLICY_USERS,
                          DYNAMIC | GRID | IMPORTED_GRID | DECIDE,
                          {"dynamic_placement": 4, "dynamic_grid_cell": 3, "imported_grid": 2}),
    "co-activation MI draws": (lambda c: c["coactivation"].update(mi_draws=6), {"coactivation"},
                               {"coactivation"} | COACT_FIGS, {"coactivation": 9}),
    "power-law sampler figure": (lambda c: c["figures"].update(powerlaw_samples=400), {"sample_powerlaw"},
                                 {"sample_powerlaw", "plot_powerlaw_comparison", "plot_top20_share", "all"},
                                 {"sample_powerlaw": 1}),
    "timeline window": (lambda c: c["figures"].update(timeline_window=8), {"compute_load_stats"},
                        {"compute_load_stats"} | STATS_FIGS, {"compute_load_stats": 10}),
    "one scenario's drift": (lambda c: c["drift"]["phases"].update(walk_sigma=0.03), {"generate_synthetic_trace"},
                             {"generate_synthetic_trace"} | SYNTHETIC_DOWNSTREAM,
                             {"generate_synthetic_trace": 1, "compute_load_stats": 1, "coactivation": 1}),
    "capture length": (lambda c: c["capture"].update(max_iterations=20), {"capture"},
                       {"capture"} | CAPTURED_DOWNSTREAM, {"capture": 2, "proxy": 1}),
    "training steps": (lambda c: c["tiny"].update(steps=7), {"train_tiny"},
                       {"train_tiny", "capture", "plot_tiny_training"} | CAPTURED_DOWNSTREAM | ROUTING_PERFT,
                       {"capture": 2}),
    "kernel token counts": (lambda c: c["kernels"].update(tokens=[8, 32]), {"kernel_workloads"}, KERNELS,
                            {"kernel_workloads": 3, "kernel_bench_torch": 3, "kernel_bench_jax": 1}),
    "kernel timing": (lambda c: c["kernels"].update(iters=4), {"kernel_bench_torch", "kernel_bench_jax"},
                      {"kernel_bench_torch", "kernel_bench_jax", "collect_kernel_bench", "all"},
                      {"kernel_bench_torch": 3, "kernel_bench_jax": 1}),
    "JAX implementations": (lambda c: c["kernels"]["jax"].update(implementations=["jax-ragged"]),
                            {"kernel_bench_jax"}, {"kernel_bench_jax", "collect_kernel_bench", "all"},
                            {"kernel_bench_jax": 1}),
    "corpus size": (lambda c: c["corpus"].update(max_chars=5000), {"corpus"},
                    {"corpus", "tokenizer", "train_tiny", "capture", "plot_tiny_training"} | CAPTURED_DOWNSTREAM
                    | ROUTING_STUDY | ROUTING_PERFT, {"corpus": 1, "routing_train": 3}),
    "capacity factors": (lambda c: c["routing"]["capacity"].update(factors=[1.0, 1.5]), {"routing_capacity"},
                         ROUTING_CAPACITY, {"routing_capacity": 3}),
    "routing study steps": (lambda c: c["routing"]["train"].update(steps=3), {"routing_train"}, ROUTING_STUDY,
                            {"routing_train": 3}),
    "PERFT steps": (lambda c: c["routing"]["perft"].update(steps=3), {"routing_perft"}, ROUTING_PERFT,
                    {"routing_perft": 1}),
}


@pytest.fixture(scope="module")
def param_jobs(finished):
    """Every parameter change's dry run, two at a time: each reads its own config file and a dry run writes
    nothing, so they are independent (and the suite's other worker is idle by now)."""
    def plan(item):
        n, change = item
        return change, planned_jobs(finished, *with_config(finished, f"changed{n}", PARAM_CHANGES[change][0]))

    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(plan, enumerate(PARAM_CHANGES)))


@pytest.mark.parametrize("change", PARAM_CHANGES)
def test_a_parameter_change_reruns_its_stage_and_dependents_only(param_jobs, downstream, change):
    edit, roots, expected, counts = PARAM_CHANGES[change]
    jobs = param_jobs[change]
    assert set(jobs) == expected, f"unexpected: {set(jobs) - expected}, missing: {expected - set(jobs)}"
    if change in PARTIAL:  # only some of the root rule's jobs change: their dependents are a subset
        assert expected < downstream(*roots)
    else:
        assert expected == downstream(*roots), "the expected set is not the rule graph's dependents"
    for rule, n in counts.items():
        assert jobs[rule] == n, (rule, jobs)


# (module edited, rules whose scripts import it, every rule that must rerun). The summary page (collect_summary)
# reads the collected tables: it follows every stage with a headline. Co-activation and static placement
# share moelab.grouping: an edit there reaches both; an edit to the co-activation analysis reaches only its own.
CODE_CHANGES = {
    "placement/policies.py": (POLICY_USERS | {"competition_submission", "collect_decision"},
                              DYNAMIC | GRID | IMPORTED_GRID | SUBMISSION | DECIDE),
    # the competition's loop: the workload fits and the grids' competition score, nothing else
    "placement/competition.py": ({"fit_workload", "predict_workload", "dynamic_grid_cell", "imported_grid",
                                  "competition_submission", "user_policy_grid", "user_policy_imported",
                                  "decide_grid", "decide_placement", "collect_decision"},
                                 WORKLOADS | IMPORTED_GRID | SUBMISSION | DECIDE),
    "placement/hotness_model.py": ({"fit_workload", "predict_workload", "dynamic_grid_cell", "imported_grid",
                                    "user_policy_grid", "user_policy_imported", "decide_grid", "decide_placement",
                                    "collect_decision"}, WORKLOADS | IMPORTED_GRID | DECIDE),
    "placement/bound.py": ({"dynamic_grid_cell", "imported_grid", "user_policy_grid", "user_policy_imported",
                            "decide_grid", "decide_placement", "collect_decision"},
                           GRID | IMPORTED_GRID | DECIDE),
    "placement/static.py": ({"static_placement", "kernel_workloads"}, STATIC | KERNELS),
    "exports/maps.py": ({"export_placements", "decide_grid", "decide_placement"}, EXPORTS | DECIDE),
    "cache.py": ({"cache_simulation"}, {"cache_simulation"} | PLACEMENT_FIGS),
    "coactivation.py": ({"coactivation"}, {"coactivation"} | COACT_FIGS),
    "grouping.py": ({"coactivation", "static_placement", "kernel_workloads"},
                    {"coactivation"} | STATIC | COACT_FIGS | KERNELS),
    "stats.py": ({"compute_load_stats", "coactivation"},
                 {"compute_load_stats", "coactivation"} | STATS_FIGS
                 | COACT_FIGS),
    "kernels/torch_moe.py": ({"kernel_bench_torch", "kernel_bench_jax", "kernel_alpha"}, KERNELS - {"kernel_workloads"}),
    "kernels/jax_moe.py": ({"kernel_bench_jax"}, {"kernel_bench_jax", "collect_kernel_bench", "all"}),
    "kernels/workloads.py": ({"kernel_workloads", "kernel_bench_torch", "kernel_bench_jax", "kernel_alpha"}, KERNELS),
    "tables.py": ({"capture_summary", "collect_coactivation", "collect_load_stats", "collect_placement",
                   "plot_placement", "plot_dynamic_placement", "tiny_checkpoint_table", "collect_hotness_predictions",
                   "plot_hotness_predictions",
                   "collect_dynamic_grid", "collect_imported_grid", "collect_decision",
                   "collect_routing_capacity", "collect_routing_study", "plot_routing_perft", "collect_summary"},
                  {"capture_summary", "collect_coactivation", "collect_load_stats", "collect_placement",
                   "plot_dynamic_placement", "tiny_checkpoint_table", "plot_alpha_comparison", "plot_top20_share",
                   "plot_placement", "collect_hotness_predictions", "plot_hotness_predictions",
                   "collect_dynamic_grid", "collect_imported_grid", "collect_decision",
                   "collect_routing_capacity", "collect_routing_study", "plot_routing_perft", "collect_summary",
                   "all"}),
    "routing/dispatch.py": ({"routing_capacity", "routing_train", "collect_routing_study"},
                            ROUTING_CAPACITY | ROUTING_STUDY),
    "routing/routers.py": ({"routing_train", "collect_routing_study"}, ROUTING_STUDY),
    "routing/plots.py": ({"collect_routing_capacity", "collect_routing_study", "collect_routing_bench",
                          "plot_routing_perft"},
                         {"collect_routing_capacity", "collect_routing_study", "collect_routing_bench",
                          "plot_routing_perft", "collect_summary", "all"}),
    "capture.py": ({"capture", "proxy", "routing_perft"}, {"capture"} | CAPTURED_DOWNSTREAM | ROUTING_PERFT),
    "routing/perft.py": ({"routing_perft"}, ROUTING_PERFT),
}
PARTIAL_CODE = {"capture.py"}  # reaches captured traces only, not the synthetic-shape figures


@pytest.fixture(scope="module")
def code_jobs(finished, tmp_path_factory):
    """Every module edit's dry run, two at a time: an edit changes the tree, so each of the two runs at once
    works on its own copy of the finished run."""
    second = tmp_path_factory.mktemp("rerun-code") / "p"
    shutil.copytree(finished, second, symlinks=True)

    def plan(d, module):
        path = d / "src/moelab" / module
        original = path.read_bytes()
        try:
            path.write_bytes(original + b"\n# an edit\n")
            return module, planned_jobs(d, *TEST)
        finally:
            path.write_bytes(original)
            os.utime(path, (1, 1))  # back to older than every output, as before the edit

    modules = list(CODE_CHANGES)
    with ThreadPoolExecutor(2) as pool:
        halves = pool.map(lambda d, ms: [plan(d, m) for m in ms], (finished, second), (modules[0::2], modules[1::2]))
        return dict(pair for half in halves for pair in half)


@pytest.mark.parametrize("module", CODE_CHANGES)
def test_editing_a_module_reruns_the_stages_that_import_it(code_jobs, downstream, module):
    roots, expected = CODE_CHANGES[module]
    jobs = code_jobs[module]
    assert set(jobs) == expected, f"unexpected: {set(jobs) - expected}, missing: {expected - set(jobs)}"
    if module in PARTIAL_CODE:
        assert expected < downstream(*roots)
    else:
        assert expected == downstream(*roots)


def test_partial_rerun_then_report_reflects_it(finished):
    """Run a changed placement stage for real: upstream files stay untouched, the report shows the new rows."""
    args = with_config(finished, "capacity", lambda c: c["placement"].update(cache_capacities=[0.25, 0.75]))
    upstream = [p for stage in ("corpus", "models", "synthetic", "captured", "proxy", "stats", "coactivation",
                                "placement") for p in (finished / "results" / stage).rglob("*.parquet")]
    stamps = {p: p.stat().st_mtime_ns for p in upstream}
    res = snakemake(finished, "--cores", "2", *args)
    assert "cache_simulation" in res.stdout + res.stderr
    assert {p: p.stat().st_mtime_ns for p in upstream} == stamps, "an upstream output was rewritten"
    snakemake(finished, "--cores", "2", *args, "--report", "results/report.zip")
    with zipfile.ZipFile(finished / "results/report.zip") as z:
        table = next(n for n in z.namelist() if n.endswith("cache.html"))
        assert "0.75" in z.read(table).decode(), "the report's cache table does not show the new capacity share"
    assert not planned_jobs(finished, *args)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), children before grandchildren."""
    children = defaultdict(list)
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                ppid = int(open(f"/proc/{stat}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children[ppid].append(int(stat))
    out, todo = [], [pid]
    while todo:
        kids = children[todo.pop()]
        out += kids
        todo += kids
    return out


def cmdline(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
    except OSError:  # gone meanwhile
        return ""


def test_a_killed_run_leaves_no_half_outputs_and_the_next_run_completes(local_run, tmp_path):
    d = tmp_path / "p"
    shutil.copytree(local_run, d, symlinks=True)
    for stage in ("coactivation", "tables", "figures"):  # as if the run had not got this far yet
        shutil.rmtree(d / "results" / stage)
    with open(tmp_path / "run.log", "w") as log:
        proc = subprocess.Popen([SNAKEMAKE, "--cores", "2", *TEST], cwd=d, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        # until a coactivation script runs (not only its rule announced: other tests load the machine meanwhile)
        while "rule coactivation:" not in (tmp_path / "run.log").read_text() \
                or not any("coactivation" in cmdline(p) for p in descendants(proc.pid)):
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before a coactivation job"
            time.sleep(0.1)
        time.sleep(1.0)  # mid-job: coactivation scripts are running
        tree = [proc.pid, *descendants(proc.pid)]
        assert len(tree) > 2, "no job process to kill"
        for pid in tree:  # Snakemake and every job process at once: no clean-up anywhere
            os.kill(pid, signal.SIGKILL)
        proc.wait()
    time.sleep(0.5)
    assert not any(os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split()[2] != "Z"
                   for pid in tree), "a killed process is still running"
    for p in (d / "results").rglob("*"):  # every output that exists is whole
        if p.suffix == ".parquet" and not p.name.startswith("."):
            pq.read_metadata(p)
        elif p.suffix == ".png" and not p.name.startswith("."):
            assert p.read_bytes().endswith(b"IEND\xaeB`\x82"), p
    snakemake(d, "--unlock", *TEST)  # a SIGKILL leaves Snakemake's lock behind; README: --unlock
    snakemake(d, "--cores", "2", *TEST)
    assert not list((d / "results").rglob(".*tmp*")), "temporary files left after the run completed"
    assert not differing(d, local_run)  # what the run made again is what it had made


def test_a_changed_import_file_reruns_exactly_its_dependents(finished):
    """A user's dump is an input like any other: new content in one layer file of the FLAME-MoE example reruns
    that import and what reads it (one trace's jobs, the tables and figures that collect it), nothing else."""
    import pyarrow.parquet as pq

    path = finished / "examples/imports/flame-moe/1.parquet"
    original = path.read_bytes()
    try:
        table = pq.read_table(path)
        pq.write_table(table.take(list(range(table.num_rows))[::-1]), path)  # same shape, other content
        # files only: other tests change parameters on this copy (the cache capacities), not what is tested here
        jobs = planned_jobs(finished, *TEST, "--rerun-triggers", "mtime", "input")
    finally:
        path.write_bytes(original)
        os.utime(path, (1, 1))
    one = {"import_trace", "compute_load_stats", "coactivation", "cache_simulation", "static_placement",
           "dynamic_placement", "imported_grid", "plot_coactivation_heatmap", "plot_layer_loads",
           "user_policy_imported", "decide_placement"}
    assert jobs == {**{rule: 1 for rule in one}, "export_placements": 1, "collect_load_stats": 1,
                    "collect_coactivation": 1, "collect_placement": 1, "collect_imported_grid": 1,
                    "plot_dynamic_placement": 1, "plot_alpha_comparison": 1, "plot_placement": 1,
                    "plot_top20_share": 1, "collect_summary": 1, "collect_decision": 1, "all": 1}, jobs


def test_a_users_policy_file_reruns_its_jobs_only_and_a_failing_one_leaves_no_table(finished, downstream, tmp_path):
    """config/test.yaml runs a user's policy (examples/policies/greedy_copies.py) on the grid and the imports: an
    edit to its file reruns its two jobs and what collects them; a version that raises stops its job with the
    policy's name and the call, and leaves no table of that policy behind."""
    path = finished / "examples/policies/greedy_copies.py"
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\n# an edit\n")
        jobs = planned_jobs(finished, *TEST, "--rerun-triggers", "mtime", "input")
    finally:
        path.write_bytes(original)
        os.utime(path, (1, 1))
    assert set(jobs) == downstream("user_policy_grid", "user_policy_imported"), jobs
    assert jobs["user_policy_grid"] == jobs["user_policy_imported"] == 1
    d = tmp_path / "p"  # a run for real: on a copy, so the other tests' dry runs see the finished run
    shutil.copytree(finished, d, symlinks=True)
    (d / "examples/policies/greedy_copies.py").write_text(
        "def rebalance(hotness, n_device, n_red_expert):\n    raise MemoryError('no room')\n")
    target = "results/placement/grid-policies/greedy/grid.parquet"
    res = snakemake(d, target, *TEST, "--cores", "1", check=False)
    out = res.stdout + res.stderr + (d / "logs/placement/grid-policies/greedy-grid.log").read_text()
    assert res.returncode != 0
    assert "placement.policies.greedy (examples/policies/greedy_copies.py): call 1: raised MemoryError" in out, \
        out[-3000:]
    assert not (d / target).exists()
