import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, copy_project, differing, result_files, snakemake

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A fresh copy of the project: the checkout's own results/, logs/ and .snakemake/ (after `make report`,
    say) would leave a dry run nothing to do, and Snakemake writes .snakemake/ where it runs (--lint: its log)."""
    return copy_project(tmp_path_factory.mktemp("checkout") / "p")


def test_lint_is_clean(checkout):
    res = snakemake(checkout, "--lint")
    assert "Congratulations" in res.stdout + res.stderr, res.stdout + res.stderr


def test_snakefmt_is_clean(checkout):
    res = subprocess.run([str(Path(sys.executable).with_name("snakefmt")), "--check", "."], cwd=checkout,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_default_config_dry_run(checkout):
    res = snakemake(checkout, "-n", "--quiet", "rules")
    assert "generate_synthetic_trace" in res.stdout, res.stdout


def test_gpu_config_plans_the_kernel_benchmarks(checkout):
    """config/gpu.yaml validates and plans GPU kernel jobs (they run only where CUDA is: not here)."""
    res = snakemake(checkout, "results/bench/kernels/summary.md", "-n", "--configfile", "config/gpu.yaml")
    out = res.stdout + res.stderr
    assert "kernel_bench_torch" in out and "powerlaw-alpha1.2-E8-k2" in out and "gpu=1" in out, out[-3000:]


# (an edit to config/test.yaml, what the error must say)
BAD_CONFIGS = [
    (lambda c: c["synthetic"]["scenarios"].append({"kind": "powerlaw", "alpha": -1}), "alpha=-1 must be >= 0"),
    (lambda c: c["synthetic"]["shapes"].append({"num_experts": 4, "top_k": 8}), "top_k=8 exceeds num_experts=4"),
    (lambda c: c.update(ep_sizes=[3]), "not divisible by EP size 3"),
    (lambda c: c["synthetic"]["scenarios"].append({"kind": "zipf"}), "kind"),
    (lambda c: c.pop("concurrency"), "concurrency"),
    (lambda c: c["synthetic"]["scenarios"].append({"kind": "imbalanced", "imbalance_factor": 9}),
     "imbalance_factor=9"),
    (lambda c: c["synthetic"]["scenarios"].append({"kind": "powerlaw", "alpha": 1, "drift": "nope"}),
     "drift='nope' is not defined"),
    (lambda c: c["capture"]["models"].append({"name": "gone", "path": "/no/such/checkpoint"}),
     "capture.models[2]: path='/no/such/checkpoint': expected a folder with config.json"),
    (lambda c: c["capture"]["models"].append({"name": "olmoe", "path": "allenai/OLMoE 1B"}),
     "neither a local folder nor a well-formed hub id"),
    (lambda c: c["capture"].update(proxy=["nope"]), "capture: proxy[0]='nope' is not a capture.models name"),
    (lambda c: c["coactivation"].update(groups=3), "coactivation.groups=3 must divide tiny.num_experts=8"),
    (lambda c: c["corpus"].update(domains=["prose", "poetry"]), "['poetry'] are not built-in domains"),
    (lambda c: c["kernels"]["traces"].append("powerlaw-alpha9-E16-k4"),
     "kernels.traces: 'powerlaw-alpha9-E16-k4' is not a trace this config makes"),
    (lambda c: c["kernels"].update(shapes=["Mixtral-8x7B"]),
     "has 16 experts, top-4, and no entry of kernels.shapes ['Mixtral-8x7B'] has that routing"),
    (lambda c: c["kernels"].update(ep_sizes=[3]), "kernels: ep_sizes: 3 does not divide kernels.devices=2"),
    (lambda c: c["kernels"].update(shapes=["no-such-model"]), "'no-such-model' is neither a built-in shape"),
    (lambda c: c["routing"]["capacity"]["traces"].append("captured-nope"),
     "routing.capacity.traces[2]: 'captured-nope' is not a trace this config makes"),
    (lambda c: c["routing"]["capacity"].update(batch_tokens=8), "routing.capacity.batch_tokens=8 is below"),
    (lambda c: c["routing"]["train"].update(top_k=9), "routing.train: top_k=9 exceeds num_experts=4"),
    (lambda c: c["routing"]["perft"]["variants"].append(c["routing"]["perft"]["variants"][0]),
     "routing.perft: variants[3] repeats an earlier variant"),
    (lambda c: c["placement"]["dynamic"].update(nodes=3), "placement.dynamic: nodes=3 must divide devices=4"),
    # moelab's policy is configured once, in placement.policy: an old placement.dynamic key is refused by name
    (lambda c: c["placement"]["dynamic"].update(halflife=32), "('halflife' was unexpected)"),
    (lambda c: c["routing"]["train"].update(strategies=["softk", "magic"]), "magic"),
    (lambda c: c["routing"]["perft"].update(model="nope"), "routing.perft.model='nope' is not a capture.models name"),
    (lambda c: c["placement"].update(sweep_devices=[3]), "placement.sweep_devices: 3 does not divide"),
    (lambda c: c["placement"].update(cv_budgets=[-0.01]), "On instance['placement']['cv_budgets'][0]"),
    # a user's dump: a key its format cannot use, a rank file missing, a file that is not what the format says
    (lambda c: c["imports"].append({"name": "x", "format": "competition-npy", "path": "x.npy", "ep_size": 4}),
     "imports[2].ep_size: does not apply to format 'competition-npy'"),
    (lambda c: c["imports"].append({"name": "x", "format": "sglang-per-pass", "ep_size": 4,
                                    "path": "examples/imports/sglang-per-pass"}),
     "import error: examples/imports/sglang-per-pass/expert_distribution_recorder_<time>_2.pt: missing rank file "
     "for rank 2 (ep_size=4)"),
    (lambda c: c["imports"].append({"name": "x", "format": "sglang-per-pass", "ep_size": 3,
                                    "path": "examples/imports/sglang-per-pass"}),
     "imports[2].ep_size=3: placement.dynamic: nodes=2 must divide devices=3"),
    (lambda c: c["imports"].append({"name": "x", "format": "competition-npy", "path": "README.md"}),
     "import error: README.md: not a readable .npy array"),
    (lambda c: c["imports"].append({"name": "sglang_example", "format": "competition-npy", "path": "x.npy"}),
     "imports[2].name='sglang_example' repeats an earlier entry"),
    # a workload model needs published cells to fit on; the published-cells file is read before any job
    (lambda c: c["placement"]["workloads"]["models"].update(Alpaca={"model": "DS-R1", "dataset": "Alpaca",
                                                                     "fit": ["skew"], "start": {"skew": 0.5}}),
     "placement.workloads.models.Alpaca: config/published/competition_sweep.csv has no published cell to fit for "
     "DS-R1 on 'Alpaca'"),
    (lambda c: c["placement"]["workloads"].update(published="README.md"),
     "placement.workloads.published: README.md: line 1: expected the header model,dataset,ep,policy,interval,"
     "mean_par,transmit"),
    (lambda c: c["placement"]["grid"].update(workloads=["ShareGPT", "Alpaca"]),
     "placement.grid.workloads: ['Alpaca'] are not in placement.workloads.models"),
    # a user's policy: its file is parsed (never run) before any job
    (lambda c: c["placement"]["policies"].append({"name": "mine", "path": "policies/mine.py", "api": "vllm"}),
     "placement.policies.mine (policies/mine.py): no such file"),
]


# Through Snakemake itself, one of each kind of check (the schema, the specs, a user's file, a policy file): each
# stops the run before any job. Every other case is read by the same checks in this process (before_any_job).
THROUGH_SNAKEMAKE = ("On instance['placement']['cv_budgets'][0]", "alpha=-1 must be >= 0",
                     "import error: README.md: not a readable .npy array",
                     "placement.policies.mine (policies/mine.py): no such file")


def before_any_job(cfg: dict) -> str:
    """What workflow/rules/validation.smk runs on the config before any job, in this process: the schema, the
    specs and their cross-checks (moelab.config.check), the cheap checks of every imported file. The error's text,
    as the workflow prints it, or "" when the config passes."""
    from snakemake.utils import validate

    import moelab.config as mconfig

    try:
        validate(cfg, str(ROOT / "workflow/schemas/config.schema.yaml"))
    except Exception as exc:  # noqa: BLE001 - Snakemake's WorkflowError, as the workflow raises it
        return str(exc)
    try:
        mconfig.check(cfg)
    except mconfig.ConfigError as exc:
        return f"config error: {exc}"
    try:
        for spec in mconfig.import_specs(cfg).values():
            spec.check_files()
    except ValueError as exc:
        return f"import error: {exc}"
    return ""


@pytest.fixture(scope="module")
def bad_config_runs(tmp_path_factory):
    """Snakemake on each bad config of THROUGH_SNAKEMAKE, in a copy of the project each, two at a time."""
    def run(message):
        n = next(k for k, (_, m) in enumerate(BAD_CONFIGS) if m == message)
        d = copy_project(tmp_path_factory.mktemp("bad") / "p")
        cfg = yaml.safe_load((d / "config/test.yaml").read_text())
        BAD_CONFIGS[n][0](cfg)
        (d / "config/config.yaml").write_text(yaml.safe_dump(cfg))
        return message, (snakemake(d, "--cores", "1", check=False), (d / "results").exists())

    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(run, THROUGH_SNAKEMAKE))


@pytest.mark.parametrize("message", THROUGH_SNAKEMAKE)
def test_bad_config_stops_before_any_job(bad_config_runs, message):
    res, ran = bad_config_runs[message]
    assert res.returncode != 0
    assert message in res.stdout + res.stderr, (res.stdout + res.stderr)[-3000:]
    assert not ran, "a job ran despite the bad config"


@pytest.mark.parametrize("n", range(len(BAD_CONFIGS)), ids=[m[:60] for _, m in BAD_CONFIGS])
def test_bad_config_is_refused_with_a_message_naming_the_key(n, monkeypatch):
    monkeypatch.chdir(ROOT)  # the config's paths are the checkout's
    cfg = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    assert before_any_job(cfg) == "", "config/test.yaml itself should pass"
    edit, message = BAD_CONFIGS[n]
    edit(cfg)
    assert message in before_any_job(cfg)


def test_an_imported_trace_can_be_a_kernel_workload(checkout, tmp_path):
    """A token-level import is a trace like a captured one: listed in kernels.traces, it is cut into kernel
    workloads and timed (its experts and top-k are known from the config entry before any job)."""
    d = copy_project(tmp_path / "p")
    cfg = yaml.safe_load((d / "config/test.yaml").read_text())
    cfg["kernels"]["traces"].append("imported-flame_example")
    cfg["kernels"]["shapes"].append({"name": "flame", "hidden": 32, "ffn": 16, "experts": 64, "top_k": 6})
    (d / "config/kernels.yaml").write_text(yaml.safe_dump(cfg))
    res = snakemake(d, "-n", "--configfile", "config/kernels.yaml")
    out = res.stdout + res.stderr
    assert "results/kernels/workloads/imported-flame_example.parquet" in out, out[-3000:]
    assert "results/bench/kernels/torch/imported-flame_example.parquet" in out, out[-3000:]


def test_two_fresh_copies_give_identical_bytes(two_runs):
    a, b = two_runs
    files = [str(f) for f in result_files(a)]
    assert any(f.endswith("trace.parquet") for f in files) and any(f.endswith(".png") for f in files)
    assert not differing(a, b), f"outputs differ between the two copies: {differing(a, b)}"


def test_no_op_rerun_runs_nothing(local_run):
    # how long it takes is measured in benchmarks/bench_workflow.py, not here
    res = snakemake(local_run, "--cores", "2", "--configfile", "config/test.yaml")
    assert "Nothing to be done" in res.stdout + res.stderr


def test_report_zip_holds_every_figure(report_zip):
    names = zipfile.ZipFile(report_zip).namelist()
    for fig in ("powerlaw_comparison.svg", "top20_share.svg", "expert_loads-E16-k4.svg", "load_stats.html",
                "coactivation_gain.svg", "coactivation_heatmap-captured-tiny.svg", "domain_expert-captured-tiny.svg",
                "tiny_checkpoint.html", "capture_summary.html", "alpha_comparison.svg", "tiny_training.svg",
                "static_placement.svg", "cache_miss.svg", "static_placement.html", "cache.html",
                "static_frontier.svg", "static_matched.html",
                "dynamic_placement.svg", "dynamic_placement.html", "hotness_predictions-ShareGPT.svg", "hotness_predictions-Mix.svg",
                "hotness_predictions-Qwen3-LmSys.svg", "hotness_predictions.html",
                "dynamic_grid_scores.svg", "dynamic_grid_frontier.svg", "dynamic_grid.html",
                "prefetch_hits.svg", "prefetch.html", "dynamic_frontier.svg", "kernel_latency.svg",
                "kernel_speedup.svg", "kernel_roofline.svg", "kernel_placement.svg", "summary.html",
                "kernel_alpha.svg", "routing_drop_rate.svg", "routing_capacity.html", "routing_study.html",
                "routing_significance.html", "routing_convergence.svg", "routing_load_vs_ppl.svg",
                "routing_expert_load.svg", "routing_heatmap.svg", "routing_token_type.svg",
                "routing_capacity_throughput.svg", "routing_frontier.svg", "routing_perft_frontier.svg",
                "routing_perft.html", "dynamic_slots.svg", "dynamic_slots.html", "imported_grid.html",
                "coactivation_heatmap-imported-flame_example.svg", "layer_loads-imported-flame_example.svg"):
        assert any(n.endswith(fig) for n in names), f"{fig} not in report: {names[:20]}"


def test_the_summary_page_is_read_from_the_runs_own_tables(local_run):
    """Every headline on the summary page comes from a table of this run, with the command that rebuilds it."""
    import polars as pl

    from moelab import summary_page

    r = local_run / "results/tables"
    page = pl.read_parquet(r / "summary.parquet")
    assert set(page["table"]) == set(summary_page.STAGES)  # the test config runs every stage that has a headline
    again = summary_page.build({name: pl.read_parquet(r / f"{name}.parquet") for name in summary_page.STAGES},
                          "snakemake --cores all {target}")
    assert page.equals(again)
    assert (r / "summary.html").read_text().count("<tr>") == page.height + 1


def test_a_copy_runs_its_own_code(tmp_path):
    """Jobs import moelab from the checkout they run in, not from the venv's (editable) install."""
    d = copy_project(tmp_path / "p")
    with open(d / "src/moelab/plots.py", "a") as fh:  # imported by plotting jobs only, not by the Snakefile
        fh.write('\nraise RuntimeError("this copy\'s plots module")\n')
    res = snakemake(d, "results/figures/powerlaw_comparison.svg", "--cores", "1", "--configfile", "config/test.yaml",
                    check=False)
    assert res.returncode != 0
    assert "this copy's plots module" in res.stdout + res.stderr, (res.stdout + res.stderr)[-3000:]


def test_imported_dumps_flow_through_statistics_placement_grid_and_exports(local_run):
    """config/test.yaml imports an SGLang per_pass dump (hotness) and a FLAME-MoE folder (a trace): both reach
    the load statistics, the dynamic policies, the imported grid and the exports, and every export reads back
    to the placement the pipeline computed."""
    import numpy as np
    import polars as pl

    from moelab import exports

    r = local_run / "results"
    hot, trace = "imported-sglang_example", "imported-flame_example"
    stats = pl.read_parquet(r / "tables/load_stats.parquet")
    assert {hot, trace} <= set(stats["trace"])
    assert stats.filter(pl.col("trace") == hot)["saturated_share"].null_count() == 2  # no fixed concurrency
    grid = pl.read_parquet(r / "tables/imported_grid.parquet")
    assert set(grid["workload"]) == {hot, trace} and set(grid["ep"]) == {32}  # 64 experts: EP256 cannot split
    main = grid.filter(~pl.col("eplb_variant"))  # DS-EPLB's variants are rows too (a short load calls some never)
    assert set(main["policy"]) == {"Default", "DS-EPLB", "moelab", "greedy"}  # greedy: a user's policy file
    assert main.filter((pl.col("workload") == hot) & (pl.col("policy") != "Default"))["calls"].min() >= 1
    assert main.filter(pl.col("user_policy"))["policy"].unique().to_list() == ["greedy"]
    models = pl.read_parquet(r / "tables/dynamic_grid.parquet")
    assert models.filter(pl.col("policy") == "greedy").height == models.filter(pl.col("policy") == "moelab").height
    # the decision: per load, EP size and budget, one choice, with the engine flags and the static files they name
    decision = pl.read_parquet(r / "tables/decision.parquet")
    assert {hot, trace} <= set(decision["source"])
    chosen = decision.filter(pl.col("chosen"))
    assert chosen.group_by("source", "ep", "redundant_per_device").len()["len"].max() == 1
    assert decision.filter(~pl.col("loadable"))["redundant_per_device"].unique().to_list() == [0.5]
    static = decision.filter((pl.col("source") == hot) & (pl.col("candidate") == "static")).row(0, named=True)
    path = static["sglang"].split("--init-expert-location ")[1]
    assert exports.read_sglang(local_run / path).shape[1] == static["slots_per_device"] * static["ep"]
    dynamic = pl.read_parquet(r / "placement/dynamic" / f"{hot}.parquet")
    assert {"DS-EPLB", "moelab"} <= set(dynamic["policy"])
    assert pl.read_parquet(r / "placement/static" / f"{trace}.parquet").height > 0
    manifests = pl.read_parquet(r / "exports/manifest.parquet")
    for kind, source in (("dynamic", hot), ("dynamic", trace), ("static", trace)):
        manifest = manifests.filter((pl.col("kind") == kind) & (pl.col("trace") == source))
        assert manifest.height > 0
        for row in manifest.iter_rows(named=True):
            folder = r / "exports" / kind / source
            sg = next(f for f in row["files"] if f.endswith(".sglang.json"))
            p2l = exports.read_sglang(folder / sg)
            assert p2l.shape == (row["layers"], row["physical"]) and row["physical"] % row["devices"] == 0
            assert np.array_equal(exports.read_vllm(folder / sg.replace(".sglang.json", ".vllm.pt")), p2l)
    moves = pl.read_parquet(r / "placement/dynamic" / f"{hot}-redeployments.parquet")
    for (policy,), g in moves.group_by(["policy"]):  # the final deployment in the files is the simulator's last
        final = {}
        for layer, slots in g.sort("iteration", maintain_order=True).select("layer", "slots").iter_rows():
            final[layer] = slots
        want = np.array([final[k] for k in sorted(final)])
        got = exports.read_sglang(r / "exports/dynamic" / hot / f"{policy.lower().replace(' ', '-')}.sglang.json")
        assert np.array_equal(got[want >= 0], want[want >= 0]), policy

