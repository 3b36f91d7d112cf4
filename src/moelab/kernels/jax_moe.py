"""MoE layer forward passes in JAX, the interface of ``torch_moe``::

    impl(x [T, H], ids [T, k] (local expert ids, -1 = not on this rank), weights [T, k], gate_up [E, H, 2F],
         down [E, F, H]) -> [T, H]

- ``dense``: one-hot dispatch and combine tensors ``[T, E, C]`` with capacity ``ceil(cf * pairs / E)`` (first
  come, in token order; dropped pairs counted), two batched einsums: GShard's formulation;
- ``ragged``: sort the pairs by expert, ``jax.lax.ragged_dot`` for both projections (the unfused GMM path);
- ``pallas_gmm``: the same with a Pallas grouped matmul of our own: each expert's rows padded to whole
  ``block_m`` tiles, the tile -> expert table passed by scalar prefetch so the weight block follows it;
- ``pallas_fused``: one Pallas kernel per tile does the dispatch (a one-hot gather of its rows), both
  matmuls, the activation and the weighted combine into the output (the reference's fused kernel; top-k
  itself comes from the trace);
- ``shard_map_ep``: expert parallelism over a device mesh: experts sharded, every rank runs the ragged path
  on its own experts, outputs summed across ranks.

Pallas runs compiled on TPU and in interpret mode elsewhere; interpret timings are labelled ``interpret``
and never compared with compiled ones. Everything here imports only jax and numpy."""

from __future__ import annotations

import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np


def act_and_mul(h: jax.Array, activation: str) -> jax.Array:
    gate, up = jnp.split(h, 2, axis=-1)
    if activation == "silu":
        return jax.nn.silu(gate) * up
    if activation == "gelu":
        return jax.nn.gelu(gate, approximate=True) * up
    if activation == "swigluoai":
        gate = jnp.minimum(gate, 7.0)
        up = jnp.clip(up, -7.0, 7.0)
        return gate * jax.nn.sigmoid(1.702 * gate) * (up + 1)
    raise ValueError(f"activation {activation!r}: expected silu, gelu or swigluoai")


def capacity(pairs: int, experts: int, factor: float) -> int:
    return max(1, math.ceil(factor * pairs / experts))


# ---- dense one-hot dispatch ---------------------------------------------------------------------------------

def dense(x, ids, weights, gate_up, down, *, activation="silu", capacity_factor=1.25, pairs=None):  # noqa: ANN001
    """Returns (output, dropped pairs). ``pairs`` (static) sizes the capacity; default: every slot."""
    T, k = ids.shape
    E = gate_up.shape[0]
    C = capacity(T * k if pairs is None else pairs, E, capacity_factor)
    onehot = jax.nn.one_hot(ids.reshape(-1), E, dtype=jnp.int32)  # [T*k, E]; -1 gives a zero row
    slot = jnp.cumsum(onehot, axis=0) * onehot - 1  # position of each pair in its expert, token order
    keep = (slot >= 0) & (slot < C)
    dispatch = (jax.nn.one_hot(jnp.where(keep, slot, -1), C, dtype=x.dtype)).reshape(T, k, E, C).sum(1)
    combine = (jax.nn.one_hot(jnp.where(keep, slot, -1), C, dtype=x.dtype)
               * weights.reshape(-1)[:, None, None].astype(x.dtype)).reshape(T, k, E, C).sum(1)
    xe = jnp.einsum("tec,th->ech", dispatch, x)
    h = act_and_mul(jnp.einsum("ech,ehf->ecf", xe, gate_up), activation)
    y = jnp.einsum("ecf,efh->ech", h, down)
    dropped = jnp.sum((ids.reshape(-1) >= 0)) - jnp.sum(keep)
    return jnp.einsum("tec,ech->th", combine, y), dropped


# ---- sorted pairs: ragged_dot and the Pallas grouped matmul ----------------------------------------------------

def _sort(ids, experts):  # noqa: ANN001, ANN202
    """Slots sorted by expert (non-local last), group sizes [E] and which sorted slots are real."""
    flat = ids.reshape(-1)
    e = jnp.where(flat >= 0, flat, experts)
    order = jnp.argsort(e, stable=True)
    sizes = jnp.bincount(e, length=experts + 1)[:experts].astype(jnp.int32)
    return order, sizes, e[order] < experts


def ragged(x, ids, weights, gate_up, down, *, activation="silu"):  # noqa: ANN001
    k = ids.shape[1]
    order, sizes, valid = _sort(ids, gate_up.shape[0])
    token = order // k
    h = jax.lax.ragged_dot(x[token], gate_up, sizes)  # rows past the groups come back zero
    h = act_and_mul(h, activation) * jnp.where(valid, weights.reshape(-1)[order], 0)[:, None].astype(x.dtype)
    y = jax.lax.ragged_dot(h, down, sizes)
    return jnp.zeros_like(x).at[token].add(y)


def tile_layout(sizes: jax.Array, rows: int, block_m: int):
    """Each expert's rows padded to whole tiles: (padded row of each sorted row, expert of each tile, number
    of tiles). Static bound: ``ceil(rows / block_m) + E`` tiles; spare tiles point at expert 0 with no rows."""
    E = sizes.shape[0]
    tiles = (sizes + block_m - 1) // block_m
    n_tiles = -(-rows // block_m) + E
    tile_start = jnp.cumsum(tiles) - tiles  # first tile of each expert
    row_start = jnp.cumsum(sizes) - sizes
    r = jnp.arange(rows)
    e_of_row = jnp.clip(jnp.searchsorted(jnp.cumsum(sizes), r, side="right"), 0, E - 1)
    padded = tile_start[e_of_row] * block_m + (r - row_start[e_of_row])
    m = jnp.arange(n_tiles)
    e_of_tile = jnp.searchsorted(jnp.cumsum(tiles), m, side="right")
    return padded, jnp.where(e_of_tile < E, e_of_tile, 0).astype(jnp.int32), n_tiles


def _gmm_kernel(tile_expert_ref, a_ref, b_ref, o_ref):  # noqa: ANN001, ARG001 - scalar prefetch ref
    o_ref[...] = jnp.dot(a_ref[...], b_ref[0], preferred_element_type=jnp.float32).astype(o_ref.dtype)


def pallas_gmm_call(a, b, tile_expert, block_m, interpret):  # noqa: ANN001, ANN201
    """``a [tiles * block_m, K]`` (tile-aligned groups) times ``b[tile_expert[tile]]``."""
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import tpu as pltpu

    M, K = a.shape
    E, _, N = b.shape
    block_n = N if N <= 512 else math.gcd(N, 512)
    spec = pltpu.PrefetchScalarGridSpec(
        num_scalar_prefetch=1, grid=(M // block_m, N // block_n),
        in_specs=[pl.BlockSpec((block_m, K), lambda i, j, t: (i, 0)),
                  pl.BlockSpec((1, K, block_n), lambda i, j, t: (t[i], 0, j))],
        out_specs=pl.BlockSpec((block_m, block_n), lambda i, j, t: (i, j)))
    return pl.pallas_call(_gmm_kernel, out_shape=jax.ShapeDtypeStruct((M, N), a.dtype), grid_spec=spec,
                          interpret=interpret)(tile_expert, a, b)


def pallas_gmm(x, ids, weights, gate_up, down, *, activation="silu", block_m=64, interpret=True):  # noqa: ANN001
    k = ids.shape[1]
    order, sizes, valid = _sort(ids, gate_up.shape[0])
    token = order // k
    rows = order.shape[0]
    padded, tile_expert, n_tiles = tile_layout(sizes, rows, block_m)
    a = jnp.zeros((n_tiles * block_m, x.shape[1]), x.dtype).at[padded].set(x[token])
    h = pallas_gmm_call(a, gate_up, tile_expert, block_m, interpret)
    wt = jnp.where(valid, weights.reshape(-1)[order], 0).astype(x.dtype)
    h = jnp.zeros((n_tiles * block_m,), x.dtype).at[padded].set(wt)[:, None] * act_and_mul(h, activation)
    y = pallas_gmm_call(h, down, tile_expert, block_m, interpret)
    return jnp.zeros_like(x).at[token].add(y[padded])


# ---- the fused kernel ---------------------------------------------------------------------------------------

def _fused_kernel(tile_expert_ref, tok_ref, wt_ref, x_ref, gu_ref, dn_ref, o_ref, *,  # noqa: ANN001, ARG001
                  activation, tokens):
    from jax.experimental import pallas as pl

    @pl.when(pl.program_id(0) == 0)
    def _():
        o_ref[...] = jnp.zeros_like(o_ref)

    # dispatch as a one-hot matmul (how TPU kernels gather rows), both projections, weighted combine
    onehot = (tok_ref[...][:, None] == jnp.arange(tokens)[None, :]).astype(x_ref.dtype)  # [block_m, T]
    xt = jnp.dot(onehot, x_ref[...], preferred_element_type=jnp.float32).astype(x_ref.dtype)
    h = jnp.dot(xt, gu_ref[0], preferred_element_type=jnp.float32)
    h = act_and_mul(h, activation).astype(x_ref.dtype) * wt_ref[...][:, None]
    y = jnp.dot(h, dn_ref[0], preferred_element_type=jnp.float32)
    o_ref[...] += jnp.dot(onehot.T, y.astype(x_ref.dtype), preferred_element_type=jnp.float32).astype(o_ref.dtype)


def pallas_fused(x, ids, weights, gate_up, down, *, activation="silu", block_m=64, interpret=True):  # noqa: ANN001
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import tpu as pltpu

    T, k = ids.shape
    H = x.shape[1]
    E, _, F2 = gate_up.shape
    order, sizes, valid = _sort(ids, E)
    padded, tile_expert, n_tiles = tile_layout(sizes, order.shape[0], block_m)
    M = n_tiles * block_m
    tok = jnp.zeros((M,), jnp.int32).at[padded].set((order // k).astype(jnp.int32))
    wt = jnp.zeros((M,), x.dtype).at[padded].set(jnp.where(valid, weights.reshape(-1)[order], 0).astype(x.dtype))
    spec = pltpu.PrefetchScalarGridSpec(
        num_scalar_prefetch=1, grid=(n_tiles,),
        in_specs=[pl.BlockSpec((block_m,), lambda i, t: (i,)), pl.BlockSpec((block_m,), lambda i, t: (i,)),
                  pl.BlockSpec((T, H), lambda i, t: (0, 0)),
                  pl.BlockSpec((1, H, F2), lambda i, t: (t[i], 0, 0)),
                  pl.BlockSpec((1, F2 // 2, H), lambda i, t: (t[i], 0, 0))],
        out_specs=pl.BlockSpec((T, H), lambda i, t: (0, 0)))
    kernel = functools.partial(_fused_kernel, activation=activation, tokens=T)
    return pl.pallas_call(kernel, out_shape=jax.ShapeDtypeStruct((T, H), x.dtype), grid_spec=spec,
                          interpret=interpret)(tile_expert, tok, wt, x, gate_up, down)


# ---- expert parallelism over a mesh -------------------------------------------------------------------------

def place_ep(mesh, x, ids, weights, gate_up, down):  # noqa: ANN001, ANN201
    """Put the layer's arrays on the mesh as ``shard_map_ep`` expects them: experts split, the rest replicated."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    rep, split = NamedSharding(mesh, P()), NamedSharding(mesh, P("ep"))
    return (jax.device_put(x, rep), jax.device_put(ids, rep), jax.device_put(weights, rep),
            jax.device_put(gate_up, split), jax.device_put(down, split))


def shard_map_ep(x, ids, weights, gate_up, down, *, mesh, activation="silu"):  # noqa: ANN001
    """Experts split contiguously over the mesh axis ``ep``; tokens replicated; outputs summed. Arguments
    placed by :func:`place_ep`."""
    from jax.sharding import PartitionSpec as P

    E = gate_up.shape[0]
    n = mesh.shape["ep"]
    local = E // n

    def rank(x, ids, weights, gu, dn):  # noqa: ANN001, ANN202
        e0 = jax.lax.axis_index("ep") * local
        lid = jnp.where((ids >= e0) & (ids < e0 + local), ids - e0, -1)
        return jax.lax.psum(ragged(x, lid, weights, gu, dn, activation=activation), "ep")

    f = jax.shard_map(rank, mesh=mesh, in_specs=(P(), P(), P(), P("ep"), P("ep")), out_specs=P())
    return f(x, ids, weights, gate_up, down)


def init_distributed() -> bool:
    """Multi-host runs: initialise ``jax.distributed`` from the Slurm environment when the job has more than
    one task (JAX reads the coordinator, process count and id from SLURM_* itself). False when single-process."""
    if int(os.environ.get("SLURM_NTASKS", "1")) <= 1:
        return False
    jax.distributed.initialize()
    return True


def interpret_mode() -> bool:
    """Pallas compiles on TPU (and GPU via Triton); everywhere else it is interpreted."""
    return jax.default_backend() not in ("tpu",)


def implementations(capacity_factor: float, activation: str) -> dict:
    """Name -> (jitted ``fn(x, ids, weights, gate_up, down) -> (out, dropped)``, device_kind override)."""
    interp = interpret_mode()
    kind = "interpret" if interp else None
    return {
        "jax-dense": (jax.jit(functools.partial(dense, activation=activation, capacity_factor=capacity_factor)),
                      None),
        "jax-ragged": (jax.jit(lambda *a: (ragged(*a, activation=activation), 0)), None),
        "jax-pallas-gmm": (jax.jit(lambda *a: (pallas_gmm(*a, activation=activation, interpret=interp), 0)), kind),
        "jax-pallas-fused": (jax.jit(lambda *a: (pallas_fused(*a, activation=activation, interpret=interp), 0)),
                             kind),
    }


def to_jax(a: np.ndarray, dtype=None) -> jax.Array:  # noqa: ANN001
    return jnp.asarray(a, dtype=dtype)
