"""The MoE layer implementations by name: the one module above ``torch_moe.py`` and ``triton_moe.py``.

``triton_moe`` builds on ``torch_moe``'s primitives (slot sorting, activation, scatter); neither imports this
module, so there is no import circle. The benchmark asks here for what runs on this machine.
"""

from __future__ import annotations

import torch

from moelab.kernels.torch_moe import moe_capacity, moe_grouped, moe_loop


def triton_available() -> tuple[bool, str]:
    """Whether the Triton grouped GEMM can run here, and why not."""
    if not torch.cuda.is_available():
        return False, "no CUDA device (Triton kernels run on GPUs only)"
    try:
        import triton  # noqa: F401
    except ImportError:
        return False, "triton is not installed"
    return True, ""


def implementations(capacity_factor: float) -> dict:
    """Name -> ``fn(x, ids, weights, w) -> (out, dropped)``; the Triton kernel only where it can run."""
    impls = {
        "loop": lambda x, i, g, w: (moe_loop(x, i, g, w), 0),
        "grouped": lambda x, i, g, w: (moe_grouped(x, i, g, w), 0),
        "capacity": lambda x, i, g, w: moe_capacity(x, i, g, w, capacity_factor),
    }
    ok, _ = triton_available()
    if ok:
        from moelab.kernels.triton_moe import moe_triton

        impls["triton"] = lambda x, i, g, w: (moe_triton(x, i, g, w), 0)
    return impls
