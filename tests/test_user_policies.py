"""Users' own policies (placement.policies) in the grid, and moelab's policy as a vLLM policy class."""

import numpy as np
import polars as pl
import pytest
import torch

from moelab.placement import submission, user_grid
from moelab.placement.dynamic_grid import CellSpec, evaluate_hotness
from moelab.placement.eplb import rebalance
from moelab.placement.policy_specs import SubmissionSpec
from moelab.placement.user_policies import Runner, UserPolicyError, UserPolicySpec, policy_specs
from moelab.placement.vllm_policy import MoelabEplbPolicy, initial_map
from moelab.spec import ConfigError
from test_dynamic_grid import GRID, MODEL, POL

# DS-EPLB written by a user, once in each API: run as a user's policy, it must score exactly as the built-in one
DS_EPLB_COMPETITION = """
import numpy as np
from moelab.placement.eplb import rebalance as eplb

def rebalance(hotness, n_device, n_red_expert):
    w, L, E = hotness.shape
    slots = (E + n_red_expert) // n_device
    table, _, _ = eplb(np.asarray(hotness, np.float64).sum(0), n_device * slots, 1, 1, n_device)
    return True, np.arange(L), table.reshape(L, n_device, slots), {"aux": 1}
"""
DS_EPLB_VLLM = """
import torch
from moelab.placement.eplb import rebalance

class DeepSeekLike:
    @classmethod
    def rebalance_experts(cls, weight, num_replicas, num_groups, num_nodes, num_ranks, old_global_expert_indices=None):
        assert weight.dtype == torch.int64 and old_global_expert_indices.shape == (weight.shape[0], num_replicas)
        p2l, log2phy, count = rebalance(weight.double().numpy(), num_replicas, num_groups, num_nodes, num_ranks)
        return torch.from_numpy(p2l), torch.from_numpy(log2phy), torch.from_numpy(count)
"""


def user(tmp_path, name, text, api, **more):
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = UserPolicySpec.from_config({"name": name, "path": str(path), "api": api, **more})
    spec.check_file()
    return spec


@pytest.fixture(scope="module")
def cell_and_hot():
    cell = CellSpec.from_config(GRID)
    return cell, np.rint(cell.model(MODEL, 1.0).generate(1))  # whole counts: vLLM's loads are integers


@pytest.mark.parametrize("api", ["competition", "vllm"])
def test_a_users_ds_eplb_scores_exactly_as_the_built_in_one(tmp_path, cell_and_hot, api):
    cell, hot = cell_and_hot
    path = tmp_path / "submission.py"
    submission.write(path, SubmissionSpec(**POL.moelab.settings()))
    tables = evaluate_hotness(hot, cell, POL, 32, ("modelled", "measured"), {"workload": "w", "ep": 32},
                              submission=submission.load(path), full_layers=MODEL.layers)
    spec = user(tmp_path, "mine", DS_EPLB_COMPETITION if api == "competition" else DS_EPLB_VLLM, api)
    rows = user_grid.evaluate(spec, spec.load(), hot, cell, POL, 32, tables, {"workload": "w", "ep": 32},
                              full_layers=MODEL.layers)
    # the cell ran 2 of 58 layers, paced as the full model; DS-EPLB's seconds (0.1) charged to the user's calls
    eplb = tables["modelled"].filter(policy="DS-EPLB").row(0, named=True)
    mine = rows["modelled"]
    assert mine["score_vs_eplb"] == 100.0 and mine["transmit"] == eplb["transmit"] > 0
    assert mine["competition_score"] == pytest.approx(100.0)
    assert mine["competition_transmit"] == eplb["competition_transmit"]
    assert mine["seconds_per_call"] == 0.1 and mine["user_policy"] and not eplb["user_policy"]
    both = user_grid.frames([rows], tables)
    assert both["modelled"].columns == tables["modelled"].columns  # one table with the built-in rows
    assert pl.concat([tables["modelled"], both["modelled"]]).height == tables["modelled"].height + 1
    # its own time per call, when the entry gives one: ceil(0.5 / 0.08) = 7 iterations per call
    slow = user_grid.evaluate(UserPolicySpec.from_config({**spec.to_config(), "seconds_per_call": 0.5}),
                              spec.load(), hot, cell, POL, 32, tables, {"workload": "w", "ep": 32},
                              full_layers=MODEL.layers)["modelled"]
    assert slow["delay_iterations"] == 7 * slow["calls"] and slow["score_vs_eplb"] < 100


BAD = {
    "raises": ("raise RuntimeError('out of memory')", r"call 1: raised RuntimeError: out of memory"),
    "shape": ("return True, [0, 1], np.zeros((2, 4, 3), int)", r"call 1: returned a placement of shape \(2, 4, 3\)"),
    "drops": ("t = np.zeros((2, 4, 5), int); t[:] = np.arange(20).reshape(4, 5) % 16; t[1, 0, 0] = 1; t[1, 3, 1] = 2; "
              "return True, [0, 1], t", r"call 1: layer 1: no slot holds expert\(s\) \[0\]"),
    "nan": ("t = np.tile(np.arange(20.0) % 16, (2, 1)).reshape(2, 4, 5); t[0, 2, 1] = np.nan; return True, [1, 0], t",
            r"call 1: layer 0: slot 11 holds nan, not an expert id"),
    "priority": ("return True, [5], np.tile(np.arange(20) % 16, (2, 1)).reshape(2, 4, 5)",
                 r"call 1: priority names layer\(s\) \[5\], outside 0\.\.1"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_policy_that_fails_stops_with_its_name_the_call_and_the_layer(tmp_path, case):
    body, message = BAD[case]
    spec = user(tmp_path, "broken", f"import numpy as np\ndef rebalance(hotness, n_device, n_red_expert):\n"
                                    f"    {body}\n", "competition")
    runner = Runner(spec, spec.load(), 4, 5, 2, 16)
    with pytest.raises(UserPolicyError, match=r"placement\.policies\.broken \(.*broken\.py\): " + message):
        runner.competition(np.ones((8, 2, 16)))


def test_policy_entries_are_checked_before_any_job(tmp_path):
    with pytest.raises(ConfigError, match=r"placement\.policies\[0\]: api: 'sglang', expected one of competition, vllm"):
        policy_specs([{"name": "a", "path": "a.py", "api": "sglang"}])
    with pytest.raises(ConfigError, match=r"placement\.policies\[1\]\.name: 'a' is used twice"):
        policy_specs([{"name": "a", "path": "a.py", "api": "competition"}] * 2)
    with pytest.raises(ConfigError, match=r"'moelab' is a built-in policy's name"):
        policy_specs([{"name": "moelab", "path": "a.py", "api": "competition"}], ("moelab",))
    with pytest.raises(ConfigError, match=r"placement\.policies\.gone \(.*gone\.py\): no such file"):
        UserPolicySpec.from_config({"name": "gone", "path": str(tmp_path / "gone.py"), "api": "vllm"}).check_file()
    with pytest.raises(ConfigError, match=r"defines no function rebalance"):
        user(tmp_path, "empty", "x = 1\n", "competition")
    two = "class A:\n    def rebalance_experts(self): pass\nclass B:\n    def rebalance_experts(self): pass\n"
    with pytest.raises(ConfigError, match=r"expected one class with rebalance_experts, found \['A', 'B'\]"):
        user(tmp_path, "two", two, "vllm")
    assert user(tmp_path, "two", two, "vllm", **{"class": "B"}).load().__name__ == "B"


def test_moelab_in_vllm_keeps_slots_through_old_global_expert_indices():
    rng = np.random.default_rng(3)
    L, E, ranks, replicas = 3, 16, 4, 20
    weight = torch.from_numpy(rng.integers(0, 1000, (L, E)) * (1 + (np.arange(E) < 3) * 20))  # int64, as vLLM's
    first = MoelabEplbPolicy.rebalance_experts(weight, replicas, 1, 1, ranks, torch.from_numpy(
        initial_map(L, E, replicas)))
    assert first.dtype == torch.int64 and first.shape == (L, replicas)
    for row in first.numpy():
        assert np.bincount(row, minlength=E).min() >= 1  # every expert has a slot
    # the same load again: nothing to gain, nothing moves
    again = MoelabEplbPolicy.rebalance_experts(weight, replicas, 1, 1, ranks, first)
    assert torch.equal(again, first)
    # a changed load: moelab moves fewer slots than DeepSeek's EPLB placed afresh (what vLLM's own policy does)
    shifted = torch.from_numpy(np.roll(weight.numpy(), 5, axis=1))
    ours = MoelabEplbPolicy.rebalance_experts(shifted, replicas, 1, 1, ranks, first).numpy()
    fresh, _, _ = rebalance(shifted.double().numpy(), replicas, 1, 1, ranks)
    assert 0 < (ours != first.numpy()).sum() < (fresh != first.numpy()).sum()
    assert MoelabEplbPolicy.rebalance_experts(weight, replicas, 1, 1, ranks).shape == (L, replicas)  # no old map
