"""A grouped GEMM of our own in Triton, and the MoE forward built on it (same interface as torch_moe).

Rows sorted by expert are cut into tiles of ``BLOCK_M`` rows that never straddle two experts; each program
computes one ``BLOCK_M x BLOCK_N`` tile of one expert's product. The tile table is built on the device
from the sorted expert ids with a fixed upper bound on the number of tiles (``ceil(P / BLOCK_M) + E``;
spare tiles exit at once), so nothing synchronises with the host and the whole layer can be captured in a
CUDA graph. On a CPU the kernel runs in Triton's interpreter (``TRITON_INTERPRET=1``) for tests only."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from moelab.kernels.torch_moe import ExpertWeights, act_and_mul, scatter_rows, sorted_slots

BLOCK_M = 64


def _configs() -> list:
    return [triton.Config({"BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
            for bn, bk, w, s in ((128, 64, 4, 3), (128, 32, 4, 4), (64, 64, 4, 3), (256, 64, 8, 3),
                                 (128, 128, 8, 2))]


@triton.jit
def _grouped_gemm_kernel(a_ptr, b_ptr, c_ptr, tile_expert, tile_row0, tile_row_end, N, K,
                         stride_am, stride_ak, stride_be, stride_bk, stride_bn, stride_cm, stride_cn,
                         BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    e = tl.load(tile_expert + pid_m)
    if e < 0:  # a spare tile of the fixed-size grid
        return
    row0 = tl.load(tile_row0 + pid_m)
    row_end = tl.load(tile_row_end + pid_m)
    rm = row0 + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    a = a_ptr + rm[:, None].to(tl.int64) * stride_am + rk[None, :] * stride_ak
    b = b_ptr + e.to(tl.int64) * stride_be + rk[:, None] * stride_bk + rn[None, :] * stride_bn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        a_tile = tl.load(a, mask=(rm[:, None] < row_end) & (rk[None, :] + k0 < K), other=0.0)
        b_tile = tl.load(b, mask=(rk[:, None] + k0 < K) & (rn[None, :] < N), other=0.0)
        acc = tl.dot(a_tile, b_tile, acc)
        a += BLOCK_K * stride_ak
        b += BLOCK_K * stride_bk
    c = c_ptr + rm[:, None].to(tl.int64) * stride_cm + rn[None, :] * stride_cn
    tl.store(c, acc.to(c_ptr.dtype.element_ty), mask=(rm[:, None] < row_end) & (rn[None, :] < N))


_kernel = triton.autotune(configs=_configs(), key=["N", "K"])(_grouped_gemm_kernel)


def tile_table(offs: torch.Tensor, rows: int, block_m: int = BLOCK_M) -> tuple[torch.Tensor, ...]:
    """Expert, first row and end row of each tile (expert -1: spare), ``ceil(rows / block_m) + E`` tiles."""
    E = offs.numel()
    ends = offs.to(torch.int64)
    starts = ends - torch.diff(ends, prepend=ends.new_zeros(1))
    tiles = (ends - starts + block_m - 1) // block_m
    first_tile = torch.cumsum(tiles, 0) - tiles
    n_tiles = -(-rows // block_m) + E
    m = torch.arange(n_tiles, device=offs.device)
    expert = torch.searchsorted(torch.cumsum(tiles, 0), m, right=True)
    real = expert < E
    e = expert.clamp(max=E - 1)
    row0 = starts[e] + (m - first_tile[e]) * block_m
    return (torch.where(real, e, -1).to(torch.int32), row0.to(torch.int32), ends[e].to(torch.int32))


def grouped_mm(a: torch.Tensor, b: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
    """``a [P, K]`` rows grouped by ``offs`` (int32 end offsets, as ``torch._grouped_mm``) times
    ``b [E, K, N]``; rows past ``offs[-1]`` are left zero."""
    P, K = a.shape
    N = b.shape[2]
    c = torch.zeros(P, N, device=a.device, dtype=a.dtype)
    te, r0, r1 = tile_table(offs, P)
    grid = lambda meta: (te.numel(), triton.cdiv(N, meta["BLOCK_N"]))  # noqa: E731 - Triton's grid idiom
    args = (a, b, c, te, r0, r1, N, K, a.stride(0), a.stride(1), b.stride(0), b.stride(1), b.stride(2),
            c.stride(0), c.stride(1))
    if a.is_cuda:
        _kernel[grid](*args, BLOCK_M=BLOCK_M)
    else:  # Triton's interpreter (tests): the autotuner needs a GPU to time its configs
        _grouped_gemm_kernel[grid](*args, BLOCK_M=BLOCK_M, BLOCK_N=32, BLOCK_K=32)
    return c


def moe_triton(x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, w: ExpertWeights) -> torch.Tensor:
    order, offs, valid = sorted_slots(ids, w.experts, compact=False)  # static shapes: CUDA-graph capturable
    token = order // ids.shape[1]
    h = grouped_mm(x.index_select(0, token), w.gate_up, offs)
    h = act_and_mul(h, w.activation) * weights.reshape(-1)[order, None].to(h.dtype)
    return scatter_rows(x, token, grouped_mm(h, w.down, offs), valid)
