"""moelab's policy through the competition's API, and written as a standalone numpy-only submission file."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from moelab.placement import assignment, competition, competition_api, submission
from moelab.placement.policy_specs import SubmissionSpec

POLICY = SubmissionSpec(halflife=16, accept="pays", min_gain=0.01, horizon_calls=1,
                    max_moves=8, recount_steps=0)


def _hot(seed, iterations=900, layers=3, experts=32):
    rng = np.random.default_rng(seed)
    return rng.poisson(rng.dirichlet(np.full(experts, 0.4), size=layers) * 2000,
                       size=(iterations, layers, experts)).astype(float)


def test_the_numpy_assignment_is_scipys_ties_included():
    from scipy.optimize import linear_sum_assignment as scipy_lsa

    rng = np.random.default_rng(0)
    for case in range(600):
        n = int(rng.integers(1, 14))
        m = n if case % 2 else int(rng.integers(1, 14))
        c = rng.integers(0, 3, (n, m)).astype(float) if case % 3 else rng.random((n, m))
        ours = assignment.solve(c)
        want = scipy_lsa(c)
        assert np.array_equal(ours[0], want[0]) and np.array_equal(ours[1], want[1]), (case, c)
    with pytest.raises(ValueError, match="inf or NaN"):
        assignment.linear_sum_assignment(np.array([[1.0, np.inf]]))


def test_the_api_keeps_each_cases_tables_apart_and_reset_forgets_them():
    competition_api.configure(POLICY.settings())
    a, b = _hot(1)[:256], _hot(2, experts=64)[:256]
    alone_a = competition_api.rebalance(a, 8, 8)
    competition_api.reset()
    alone_b = competition_api.rebalance(b, 8, 8)
    competition_api.reset()
    mixed_a, mixed_b = competition_api.rebalance(a, 8, 8), competition_api.rebalance(b, 8, 8)
    for alone, mixed in ((alone_a, mixed_a), (alone_b, mixed_b)):
        assert alone[0] is True and np.array_equal(alone[1], mixed[1]) and np.array_equal(alone[2], mixed[2])
    change, priority, table = mixed_a
    assert table.shape == (3, 8, 5) and set(np.unique(table)) == set(range(32))  # every expert kept
    assert len(priority) == len(set(priority.tolist())) <= 3
    with pytest.raises(ValueError, match="n_red_expert=3"):
        competition_api.rebalance(a, 8, 3)
    with pytest.raises(ValueError, match="expected exactly"):
        competition_api.configure({"halflife": 16})


def test_the_written_file_is_the_packages_policy(tmp_path):
    path = tmp_path / "submission.py"
    submission.write(path, POLICY)
    written = submission.load(path)
    competition_api.configure(POLICY.settings())
    hot = _hot(3, iterations=1200)
    runs = [competition.simulate(hot, lambda w, m=m: m.rebalance(w, 8, 8), 256, devices=8, delay=lambda c, s: 2)
            for m in (written, competition_api)]
    assert runs[0]["calls"] >= 3 and runs[0]["transmit"] > 0
    assert np.array_equal(runs[0]["par"], runs[1]["par"]) and runs[0]["transmit"] == runs[1]["transmit"]
    assert "SETTINGS = {'halflife': 16" in path.read_text()


def test_the_written_file_needs_numpy_alone(tmp_path):
    """Run in an interpreter that sees the standard library and numpy only (no site-packages, no moelab)."""
    path = tmp_path / "submission.py"
    submission.write(path, POLICY)
    site = tmp_path / "numpy-only"
    site.mkdir()
    import numpy

    root = Path(numpy.__file__).parent
    for p in root.parent.glob("numpy*"):
        os.symlink(p, site / p.name)
    code = (f"import sys; sys.path.insert(0, {str(site)!r}); import importlib.util as u; "
            f"s = u.spec_from_file_location('sub', {str(path)!r}); m = u.module_from_spec(s); s.loader.exec_module(m); "
            f"import numpy as np; h = np.random.default_rng(0).poisson(50, (256, 2, 16)).astype(float); "
            f"c, p, t = m.rebalance(h, 4, 4); assert c and t.shape == (2, 4, 5); "
            f"bad = [k for k in sys.modules if k.split('.')[0] in ('scipy', 'moelab', 'polars', 'torch')]; "
            f"assert not bad, bad; print('ok', sorted(set(np.unique(t))) == list(range(16)))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok True"


def test_bundling_refuses_a_module_that_needs_more_than_numpy(monkeypatch):
    monkeypatch.setattr(submission, "BUNDLED", submission.BUNDLED + ("moelab.placement.dynamic_eval",))
    with pytest.raises(ValueError, match="moelab.placement.dynamic_eval imports polars"):
        submission.source(POLICY)
