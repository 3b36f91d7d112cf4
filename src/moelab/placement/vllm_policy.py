"""moelab's policy as a vLLM EPLB policy class (``docs/stages/placement.md``, "moelab's policy in vLLM").

vLLM's EPLB calls ``rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_ranks,
old_global_expert_indices)`` every ``step_interval`` steps: ``weight`` ``[layers, logical experts]`` is the load
summed over its window, ``old_global_expert_indices`` ``[layers, num_replicas]`` the physical-to-logical map in
service. vLLM's own policy (DeepSeek's EPLB) answers a fresh map and so moves nearly every slot at each call;
:class:`MoelabEplbPolicy` answers moelab's placement laid out over the slots in service
(:func:`moelab.placement.policies.moelab_policy`): a layer changes only where its balance gains at least
``min_gain``, and what stays is left in its slot, so vLLM copies fewer expert weights.

It is global (``num_groups`` and ``num_nodes`` are not used, like DS-EPLB's global mode). The window arrives
summed, so the policy's smoothing has nothing to weigh. Settings are class attributes: subclass to change them.
vLLM selects its policy from ``--eplb-config``'s ``policy`` among its built-in ones only; a
``vllm.general_plugins`` entry point can put this class in its place (the docs show how).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from moelab.placement.policies import moelab_policy
from moelab.placement.simulator import SimSpec

try:  # vLLM is not a dependency: the class subclasses vLLM's base where vLLM is installed
    from vllm.distributed.eplb.policy.abstract import AbstractEplbPolicy as _Base
except Exception:  # noqa: BLE001 - any import failure (absent, or a build without CUDA)
    _Base = object


def initial_map(layers: int, experts: int, replicas: int) -> np.ndarray:
    """vLLM's map before any rebalancing: physical slot ``p`` holds logical expert ``p mod E``."""
    return np.broadcast_to(np.arange(replicas) % experts, (layers, replicas)).copy()


class MoelabEplbPolicy(_Base):  # type: ignore[misc, valid-type]
    """moelab's policy behind vLLM's ``rebalance_experts``: slots kept through ``old_global_expert_indices``."""

    step_interval: ClassVar[int] = 3000  # vLLM's default --eplb-config step_interval: the horizon of a placement
    settings: ClassVar[dict[str, Any]] = {"halflife": 1.0, "accept": "target", "min_gain": 0.01,
                                          "horizon_calls": 1.0, "max_moves": 8, "recount_steps": 0}

    @classmethod
    def rebalance_experts(cls, weight: Any, num_replicas: int, num_groups: int, num_nodes: int, num_ranks: int,
                          old_global_expert_indices: Any = None) -> Any:
        """The new physical-to-logical map ``[layers, num_replicas]`` (int64, on ``weight``'s device)."""
        import torch

        load = weight.detach().to("cpu", torch.float64).numpy() if hasattr(weight, "detach") else \
            np.asarray(weight, np.float64)
        if load.ndim != 2:
            raise ValueError(f"weight: expected [layers, logical experts], got shape {tuple(load.shape)}")
        L, E = load.shape
        if num_replicas % num_ranks or num_replicas < E:
            raise ValueError(f"num_replicas={num_replicas}: expected a multiple of num_ranks={num_ranks}, at least "
                             f"the {E} logical experts")
        S = num_replicas // num_ranks
        if old_global_expert_indices is None:
            old = initial_map(L, E, num_replicas)
        else:
            old = np.asarray(old_global_expert_indices.detach().cpu().numpy()
                             if hasattr(old_global_expert_indices, "detach") else old_global_expert_indices)
            if old.shape != (L, num_replicas):
                raise ValueError(f"old_global_expert_indices: expected [{L}, {num_replicas}], got {old.shape}")
            old = old.astype(np.int64)
        spec = SimSpec(num_ranks, S, window=1, interval=cls.step_interval)
        policy = moelab_policy(spec, total_iterations=cls.step_interval, **cls.settings)
        new, _ = policy(load[None], old.reshape(L, num_ranks, S))
        out = torch.from_numpy(np.ascontiguousarray(new.reshape(L, num_replicas), dtype=np.int64))
        return out.to(weight.device) if hasattr(weight, "device") else out
