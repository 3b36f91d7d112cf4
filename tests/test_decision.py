"""The decision per load: three parts (fit, choose, report), budgets the engines can hold, engine settings."""

import json

import numpy as np
import pytest

from moelab.placement.decision import DecisionSpec, decide, engine_settings, parts, trivial
from moelab.placement.policy_specs import DynamicPolicies
from moelab.spec import ConfigError

PLACEMENT = {"eplb": {"call_interval": 16, "window": 16},
             "policy": dict(call_interval=8, window=16, halflife=4, accept="target", min_gain=0.01, horizon_calls=1,
                            max_moves=0, recount_steps=0),
             "score": {"zero_to_one": True, "par_weight": 60.0, "slot_bytes": 88080384.0, "bandwidth": 9e11}}
POL = DynamicPolicies.from_config(PLACEMENT)
SECONDS = {"DS-EPLB": 0.0, "moelab": 0.0}
E, L, EP = 16, 2, 4


def load(rng, iterations, phase_every=None):
    """Skewed counts; with ``phase_every``, the popular experts move to other devices every that many iterations."""
    base = rng.dirichlet(np.full(E, 0.3), size=L) * 4000
    out = []
    for i in range(iterations):
        shift = 0 if phase_every is None else (i // phase_every) * 5
        out.append(np.roll(base, shift, axis=1))
    return rng.poisson(np.array(out)).astype(float)


def chosen(rows):
    return next(r for r in rows if r["chosen"])


def test_parts_and_budgets_the_engines_cannot_hold():
    assert parts(100, 0.5) == (50, 75)
    with pytest.raises(ValueError, match="too few to fit, choose and report"):
        parts(2, 0.5)
    rows, static = decide(np.ones((12, L, E)), POL, EP, 0.5, 0.5, (8,), SECONDS, 0.08, {"source": "s"})
    assert static is None and rows == [{"source": "s", "ep": EP, "redundant_per_device": 0.5,
                                        "memory_gb_per_device": 0.5 * 88080384 / 1e9, "loadable": False,
                                        "candidate": None, "chosen": False}]
    assert engine_settings(rows[0], E)["sglang"].startswith("not loadable")
    assert trivial(1, 4, 2, 3).tolist() == [[[0, 1, 2], [3, 0, 1]]]  # physical slot p holds p mod E
    with pytest.raises(ConfigError, match=r"redundant_per_device=\[1, 1\]"):
        DecisionSpec.from_config({"redundant_per_device": [1, 1], "eplb_intervals": [8], "min_gain": 0.01})


def test_a_stationary_load_needs_no_rebalancing_and_a_shifting_one_does(rng):
    still, _ = decide(load(rng, 240), POL, EP, 1.0, 0.5, (8, 32), SECONDS, 0.08, {"source": "still"})
    pick = chosen(still)
    assert pick["candidate"] == "static" and not pick["rebalancing_pays"] and pick["holds"]
    assert {r["candidate"] for r in still} == {"Default", "static", "DS-EPLB@8", "DS-EPLB@32", "moelab"}
    default = next(r for r in still if r["candidate"] == "Default")
    assert pick["par_report"] < default["par_report"] and pick["gb_per_hour"] == 0
    moving, _ = decide(load(rng, 240, phase_every=30), POL, EP, 1.0, 0.5, (8, 32), SECONDS, 0.08,
                       {"source": "moving"})
    pick = chosen(moving)
    assert pick["rebalances"] and pick["rebalancing_pays"] and pick["gb_per_hour"] > 0
    static = next(r for r in moving if r["candidate"] == "static")
    assert pick["time_choose"] < static["time_choose"]


def test_the_choice_is_made_before_the_part_it_is_reported_on(rng):
    """Stationary until the reported part, where the popular experts move: the choice (made before) is the
    static placement, and the table says it does not hold there."""
    hot = load(rng, 240)
    hot[180:] = load(rng, 60, phase_every=10)
    rows, _ = decide(hot, POL, EP, 1.0, 0.5, (8,), SECONDS, 0.08, {"source": "late"})
    assert chosen(rows)["candidate"] == "static" and not chosen(rows)["holds"]
    assert min(rows, key=lambda r: r["time_report"])["rebalances"]


def test_engine_settings_spell_each_engines_options(rng):
    rows, _ = decide(load(rng, 120, phase_every=20), POL, EP, 1.0, 0.5, (8,), SECONDS, 0.08, {"source": "s"})
    by = {r["candidate"]: engine_settings(r, E, {"sglang": "x.sglang.json", "vllm": "x.vllm.pt",
                                                  "trtllm": "x.trtllm.yaml"}) for r in rows}
    eplb = by["DS-EPLB@8"]
    assert eplb["sglang"] == ("--ep-size 4 --ep-num-redundant-experts 4 --enable-eplb --eplb-algorithm deepseek "
                              "--eplb-rebalance-num-iterations 8")
    config = json.loads(eplb["vllm"].split("--eplb-config '")[1].rstrip("'"))
    assert config == {"num_redundant_experts": 4, "step_interval": 8, "window_size": 8}
    assert by["static"]["sglang"].endswith("--init-expert-location x.sglang.json")
    assert by["static"]["trtllm"].startswith("num_slots: 20, layer_updates_per_iter: 0")
    assert by["moelab"]["sglang"].startswith("not available") and "MoelabEplbPolicy" in by["moelab"]["vllm"]
    assert by["Default"]["sglang"].endswith("--init-expert-location trivial")
