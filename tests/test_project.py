"""Project consistency: env pins agree with pyproject; rule inputs list the modules they import."""

import re
import tomllib
from pathlib import Path

import yaml

from moelab.deps import module_files

ROOT = Path(__file__).resolve().parents[1]


def pins() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(d.split("==") for d in deps)


def test_env_files_pin_the_same_versions_as_pyproject():
    want = pins()
    for env in sorted((ROOT / "envs").glob("*.yaml")):
        spec = yaml.safe_load(env.read_text())
        pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
        for line in pip:
            name, version = line.split("==")
            assert want.get(name) == version, f"{env.name}: {name}=={version}, pyproject pins {want.get(name)}"


def test_every_rule_conda_env_exists():
    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        for env in re.findall(r'"\.\./\.\./(envs/[^"]+)"', smk.read_text()):
            assert (ROOT / env).exists(), f"{smk.name} names missing {env}"


def test_module_files_follow_moelab_imports():
    files = {p.name for p in module_files("moelab.synthetic.scenarios")}
    assert {"scenarios.py", "assign.py", "loads.py", "powerlaw.py", "drift.py", "stream.py", "traces.py"} <= files
    assert "stats.py" not in files and "plots.py" not in files


def _imports(module: str) -> set[str]:
    """Every moelab module ``module`` reaches through its imports (its own file excluded)."""
    own = {p.relative_to(ROOT / "src").with_suffix("").as_posix().replace("/", ".") for p in module_files(module)}
    return {m.removesuffix(".__init__") for m in own} - {module, "moelab"}


def test_modules_import_down_the_stages_never_across_or_back():
    # expert grouping is shared: neither the co-activation analysis nor static placement imports the other
    assert _imports("moelab.grouping") == set()
    assert not {m for m in _imports("moelab.placement.static") if m.startswith("moelab.coactivation")}
    assert not {m for m in _imports("moelab.coactivation") if m.startswith("moelab.placement")}
    # the kernel registry sits above torch and Triton; neither imports it or the other's way back
    assert "moelab.kernels.triton_moe" not in _imports("moelab.kernels.torch_moe")
    assert "moelab.kernels.registry" not in _imports("moelab.kernels.triton_moe")
    # the routing study and PERFT take token windows from their own module, not the embedded checkpoint's
    assert "moelab.tiny" not in _imports("moelab.routing.study") | _imports("moelab.routing.perft")


def test_config_specs_are_light_and_the_library_never_imports_the_workflow_config():
    # the workflow builds every spec at start (each Slurm job parses the workflow twice): no torch, no stage code
    for spec in ("moelab.spec", "moelab.routing.spec", "moelab.kernels.spec", "moelab.capture_spec"):
        light = {"moelab.spec", "moelab.model_shape", "moelab.routing.names", "moelab.routing", "moelab.kernels"}
        heavy = _imports(spec) - light  # (the package __init__ files import nothing)
        assert not heavy, f"{spec} imports {sorted(heavy)}"
    users = [p for p in (ROOT / "src/moelab").rglob("*.py") if p.name != "config.py" and re.search(
        r"^\s*(from moelab\.config import|import moelab\.config|from moelab import .*\bconfig\b)", p.read_text(), re.M)]
    assert not users, f"library modules import moelab.config: {users}"


def rule_bodies() -> dict[str, str]:
    """Each rule's text, by name, from workflow/rules/*.smk."""
    out = {}
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        for m in re.finditer(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", smk.read_text(), re.S | re.M):
            out[m[1]] = m[2]
    return out


def test_every_rule_declares_its_resources_so_no_profile_needs_defaults():
    bodies = rule_bodies()
    assert len(bodies) > 40, sorted(bodies)
    for name, body in bodies.items():
        res = re.search(r"^    resources:\n(.*?)(?=^    \w+:|\Z)", body, re.S | re.M)
        assert res and "mem_mb" in res[1] and "runtime" in res[1], f"rule {name}: resources lack mem_mb/runtime"


def test_the_default_profile_sets_nothing_a_cluster_profile_sets():
    # Snakemake loads profiles/default next to any --profile, and its keys replace the other profile's
    # wholesale: a default-resources here would drop a site's account and partition.
    default = yaml.safe_load((ROOT / "profiles/default/config.yaml").read_text())
    slurm = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert not {"default-resources", "set-resources", "executor", "jobs", "retries"} & set(default), default
    for key in set(default) & set(slurm):
        assert default[key] == slurm[key], key


def test_the_fast_import_scanner_finds_what_the_syntax_tree_finds():
    from moelab import deps

    files = [*(ROOT / "src/moelab").rglob("*.py"), *(ROOT / "workflow/scripts").glob("*.py"),
             *(ROOT / "benchmarks").glob("*.py")]
    assert len(files) > 100
    for f in files:
        assert sorted(set(deps._imports(f.resolve()))) == sorted(set(deps._imports_ast(f.resolve()))), f


# --- no result is copied by hand outside results/ (the summary page and the tables hold them) --------------

# A measured-looking number: a decimal or a percentage, not part of a name, path, version pin or range key.
_FIGURE = re.compile(r"(?<![\w.\-/=:])[-+−]?\d+(?:\.\d+)?\s?%|(?<![\w.\-/=:])[-+−]?\d+\.\d+(?![\w.])")
# A sentence that gives an outside source for its numbers (published work we compare with).
_ATTRIBUTED = re.compile(r"publish|arXiv|claim|\bcites?\b|paper|reference document", re.I)
# Numbers that are definitions, not results; anything else must be a config value or an attributed figure.
_DEFINITIONS = {
    "1.0": "a gain of 1.0 is chance; PAR 1.0 is perfect balance",
    "1.00": "the null pipeline's gain by construction",
    "1.000": "the null pipeline's gain by construction",
    "0.05": "the significance level of the routing tests",
    "0.1": "the smallest exact permutation p-value with three seeds a side",
    "0.08": "the competition's seconds per iteration (its delay accounting)",
    "0.8": "the power-law sampler's support is [1, 0.8 x reference_tokens]",
    "10%": "the learning-rate schedule's floor",
    "20%": "the top-20% share is defined on the top 20% of experts",
    "3.11": "the Python version the README asks for",
}


def _config_values() -> set[str]:
    out: set[str] = set()

    def walk(v) -> None:  # noqa: ANN001
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.add(str(v))

    for f in (ROOT / "config").glob("*.yaml"):
        walk(yaml.safe_load(f.read_text()))
    return out


def unattributed_figures(text: str, allowed: set[str], strict: bool = False) -> list[str]:
    """Decimals and percentages in prose (code spans, code blocks and report templating left out) that are
    neither in ``allowed`` nor in a sentence citing an outside source, nor under a "Published work" heading.
    ``strict``: no sentence may cite its way out (the README quotes nothing)."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    found, heading = [], ""
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines()
        if lines and lines[0].startswith("#"):
            heading = lines[0]
        if not strict and "published work" in heading.lower():
            continue
        units = lines if any(line.lstrip().startswith("|") for line in lines) else \
            re.split(r"(?<=[.!?;:])\s+", " ".join(lines))
        for unit in units:
            prose = re.sub(r"``.*?``|`[^`]*`|\{\{.*?\}\}|\{%.*?%\}", "", unit)
            if not strict and _ATTRIBUTED.search(prose):
                continue
            found += [f"{m.group().strip()} in: {prose.strip()[:120]}" for m in _FIGURE.finditer(prose)
                      if m.group().strip().lstrip("+-−") not in allowed]
    return found


def test_no_measured_figure_is_copied_into_the_readme_docs_or_captions():
    """Results live in results/ and the report's summary page: a number typed into the README, a doc page or
    a caption goes stale the day the pipeline changes. Config values, definitions and cited published figures
    are what may appear."""
    allowed = _config_values() | set(_DEFINITIONS)
    bad = unattributed_figures((ROOT / "README.md").read_text(), set(_DEFINITIONS), strict=True)
    for f in [ROOT / "config/README.md", *sorted((ROOT / "docs").rglob("*.md")),
              *sorted((ROOT / "workflow/report").glob("*.rst"))]:
        bad += [f"{f.relative_to(ROOT)}: {b}" for b in unattributed_figures(f.read_text(), allowed)]
    assert not bad, "hand-copied figures (point to results/tables/summary.html instead):\n" + "\n".join(bad)


def test_the_copied_figure_check_catches_a_quoted_result():
    allowed = _config_values() | set(_DEFINITIONS)
    assert unattributed_figures("moelab scores 116.2 against DS-EPLB at EP32.", allowed)
    assert unattributed_figures("Static placement cuts devices per token by 17.1% at 4 devices.", allowed)
    assert unattributed_figures("| captured-tiny | gain 2.10 |", allowed)
    assert not unattributed_figures("The published study reports a gain of 1.4-2.1 per layer.", allowed)
    assert unattributed_figures("Our routing study gains 2.3 perplexity points over hash routing.", allowed)
    assert not unattributed_figures("## Published work it compares with\n\nDS-EPLB: mean PAR 1.2570.", allowed)
    assert not unattributed_figures("Run `snakemake --config seed=3.5` then read 1.00 for the null.", allowed)
    assert unattributed_figures("A published study reports 1.4 per layer.", set(_DEFINITIONS), strict=True)
