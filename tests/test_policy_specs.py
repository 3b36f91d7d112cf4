"""moelab's policy, DS-EPLB's cadence and the score: one block each, the same policy wherever it runs."""

import numpy as np
import pytest
import yaml

from moelab.placement import dynamic_eval, dynamic_grid
from moelab.placement import simulator as sim
from moelab.placement.policy_specs import DynamicPolicies
from moelab.spec import ConfigError

PLACEMENT = {"eplb": {"call_interval": 32, "window": 32},
             "policy": {"call_interval": 8, "window": 32, "halflife": 8, "accept": "pays", "min_gain": 0.01,
                        "horizon_calls": 1, "max_moves": 4, "recount_steps": 0},
             "score": {"zero_to_one": True, "par_weight": 60, "slot_bytes": 88080384, "bandwidth": 9e11}}


def test_each_block_is_checked_and_its_errors_name_the_dotted_key():
    with pytest.raises(ConfigError, match="placement.policy: accept='maybe'"):
        DynamicPolicies.from_config({**PLACEMENT, "policy": {**PLACEMENT["policy"], "accept": "maybe"}})
    with pytest.raises(ConfigError, match=r"placement.eplb: missing keys \['window'\]"):
        DynamicPolicies.from_config({**PLACEMENT, "eplb": {"call_interval": 32}})
    with pytest.raises(ConfigError, match=r"placement.score: unknown keys \['interval'\]"):
        DynamicPolicies.from_config({**PLACEMENT, "score": {**PLACEMENT["score"], "interval": 4}})
    with pytest.raises(ConfigError, match="placement.policy: expected a mapping"):
        DynamicPolicies.from_config({k: v for k, v in PLACEMENT.items() if k != "policy"})
    # what a rule passes: the three blocks and nothing else of placement
    assert DynamicPolicies.blocks({**PLACEMENT, "devices": [2]}) == PLACEMENT


def test_the_shipped_configs_tune_the_policy_once():
    """config/full.yaml merges over config/config.yaml key by key: the tuned policy is written only in
    config.yaml, and full.yaml's grid runs it."""
    full = yaml.safe_load(open("config/full.yaml"))["placement"]
    base = yaml.safe_load(open("config/config.yaml"))["placement"]
    assert not {"policy", "eplb", "score"} & set(full) and "policy" not in full["grid"]
    DynamicPolicies.from_config(base)


def test_one_first_call_rule_every_policy_first_called_once_its_own_interval_has_passed():
    pol = DynamicPolicies.from_config(PLACEMENT)
    rng = np.random.default_rng(0)
    hot = rng.poisson(rng.dirichlet(np.full(16, 0.3), size=2) * 300, size=(100, 2, 16)).astype(float)
    seen = []

    def spy(window, current):
        seen.append(len(window))
        return current, np.arange(current.shape[0])

    for name, first in (("DS-EPLB", 32), ("moelab", 8)):
        seen.clear()
        spec = pol.sim_spec(name, 4, 5)
        r = sim.simulate(hot, spy, spec)
        assert spec.interval == first and r["calls"] == len(seen) >= 2
        assert seen[0] == first  # the first call sees exactly the iterations before it


def test_moelab_is_the_same_policy_in_the_captured_trace_evaluation_and_in_the_grid():
    """The dynamic evaluation (captured traces, imported loads) and the grid build moelab from one block: on
    the same hotness, devices and delays, the two give the same run, redeployment for redeployment."""
    pol = DynamicPolicies.from_config(PLACEMENT)
    rng = np.random.default_rng(1)
    hot = rng.poisson(rng.dirichlet(np.full(32, 0.3), size=2) * 500, size=(120, 2, 32)).astype(float)
    d = dynamic_eval.DynamicSpec.from_config({"devices": 4, "redundant_slots": 1, "policy_seconds": 0, "nodes": 1,
                                              "expert_groups": 1, "oracle": False})
    captured = dynamic_eval.run_policies(hot, d, pol)
    cell = dynamic_grid.CellSpec.from_config({"layers": None, "iterations": None,
                                              "seconds_per_call": {"DS-EPLB": 0, "moelab": 0, "submission": 0},
                                              "seconds_source": "test", "iteration_seconds": 0.08})
    specs = dynamic_grid.sim_specs(cell, pol, 32, 4, measured=False)
    for name in ("DS-EPLB", "moelab"):
        grid = sim.simulate(hot, pol.build(name, specs[name], 120), specs[name])
        assert np.array_equal(grid["par"], captured[name]["par"]) and grid["transmit"] == captured[name]["transmit"]
    assert captured["moelab"]["calls"] > captured["DS-EPLB"]["calls"] > 0
