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
