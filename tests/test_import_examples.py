"""The example dumps config/test.yaml imports are what tools/make-import-examples writes, byte for byte, and
read back to the load they were made from."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from moelab.imports import ImportSpec, read_hotness, read_trace

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples/imports"


def test_the_committed_examples_are_what_the_tool_writes(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "tools/make-import-examples"), str(tmp_path)], check=True,
                   capture_output=True)
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(EXAMPLES) for p in EXAMPLES.rglob("*") if p.is_file())
    assert made == committed
    for f in made:
        assert (tmp_path / f).read_bytes() == (EXAMPLES / f).read_bytes(), f


def test_the_examples_import_as_the_test_config_says():
    hot = read_hotness(ImportSpec.from_config({"name": "s", "format": "sglang-per-pass",
                                               "path": str(EXAMPLES / "sglang-per-pass"), "ep_size": 2}))
    assert hot.shape == (300, 2, 64) and (hot.sum(2) > 0).all()
    meta, table = read_trace(ImportSpec.from_config({"name": "f", "format": "flame-moe", "top_k": 6,
                                                     "path": str(EXAMPLES / "flame-moe"), "concurrency": 16}), 7)
    assert (meta.num_experts, meta.top_k, meta.n_moe_layers, meta.concurrency) == (64, 6, 2, 16)
    assert table.num_rows == 2048 * 2
    assert np.isin(np.unique(np.concatenate(table.column("experts").to_pylist())), np.arange(64)).all()
