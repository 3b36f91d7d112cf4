"""DeepSeek's expert-parallel load balancer (EPLB), written from its description (``docs/stages/placement.md``).

``rebalance(weight[L, E], P, G, N, D)`` replicates experts to ``P`` physical slots and packs them
onto ``D`` GPUs in ``N`` nodes. Hierarchical when ``G % N == 0`` (expert groups packed onto nodes,
replication and GPU packing within each node), else global (one group, one node).

Conventions that make the output match the published code (deepseek-ai/EPLB, ``eplb.py``) slot for slot:
- balanced packing: items by weight descending (ties: lower index first), each to the lightest
  pack that is not full (ties: lower pack index); within a pack, slots follow packing order.
  When packs hold one item each (as many items as packs) the reference skips the sort and keeps
  the items in index order (item i in pack i), and so do we: same balance, same slots;
- replication: extra replicas one at a time to the expert with the largest load / count (ties:
  lower index); extra physical ids follow the originals, in the order added.

Every step is vectorised over layers: a loop over items or replicas, never over layers.
"""

from __future__ import annotations

import numpy as np


def balanced_packing(weight: np.ndarray, num_packs: int) -> tuple[np.ndarray, np.ndarray]:
    """Pack ``n`` items per row into ``num_packs`` packs of exactly ``n / num_packs`` items.

    weight: ``[L, n]``. Returns (pack ``[L, n]``, rank inside the pack ``[L, n]``).
    """
    L, n = weight.shape
    if n % num_packs:
        raise ValueError(f"{n} items do not split into {num_packs} equal packs")
    per_pack = n // num_packs
    pack = np.empty((L, n), np.int64)
    rank = np.empty((L, n), np.int64)
    if per_pack == 1:  # one item per pack: item i goes to pack i, weights unread (as the reference)
        pack[:] = np.arange(n)
        rank[:] = 0
        return pack, rank
    order = np.argsort(-weight, axis=1, kind="stable")
    load = np.zeros((L, num_packs))
    count = np.zeros((L, num_packs), np.int64)
    rows = np.arange(L)
    for j in range(n):
        item = order[:, j]
        masked = np.where(count < per_pack, load, np.inf)
        p = np.argmin(masked, axis=1)  # ties: lowest pack index
        pack[rows, item] = p
        rank[rows, item] = count[rows, p]
        load[rows, p] += weight[rows, item]
        count[rows, p] += 1
    return pack, rank


def replicate_experts(weight: np.ndarray, num_phy: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replicate ``E`` logical experts into ``num_phy`` physical ones, minimising the largest
    load per replica. weight ``[L, E]``. Returns phy2log ``[L, P]``, rank (replica index of each
    physical expert) ``[L, P]``, logcnt ``[L, E]``."""
    L, E = weight.shape
    if num_phy < E:
        raise ValueError(f"{num_phy} physical slots cannot hold {E} experts")
    phy2log = np.empty((L, num_phy), np.int64)
    rank = np.zeros((L, num_phy), np.int64)
    phy2log[:, :E] = np.arange(E)
    logcnt = np.ones((L, E), np.int64)
    rows = np.arange(L)
    for i in range(E, num_phy):
        e = np.argmax(weight / logcnt, axis=1)  # ties: lowest index
        phy2log[:, i] = e
        rank[:, i] = logcnt[rows, e]
        logcnt[rows, e] += 1
    return phy2log, rank, logcnt


def _inverse(perm: np.ndarray) -> np.ndarray:
    inv = np.empty_like(perm)
    np.put_along_axis(inv, perm, np.broadcast_to(np.arange(perm.shape[1]), perm.shape), axis=1)
    return inv


def rebalance_hierarchical(weight: np.ndarray, num_physical: int, num_groups: int, num_nodes: int,
                           num_gpus: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns phy2log ``[L, P]``, phyrank ``[L, P]``, logcnt ``[L, E]``."""
    L, E = weight.shape
    group_size = E // num_groups
    groups_per_node = num_groups // num_nodes
    phy_per_gpu = num_physical // num_gpus
    gpus_per_node = num_gpus // num_nodes
    # (1) groups onto nodes; renumber experts so each node holds a contiguous block ("mlog")
    group_pack, group_rank = balanced_packing(weight.reshape(L, num_groups, group_size).sum(-1), num_nodes)
    log2mlog = (((group_pack * groups_per_node + group_rank) * group_size)[:, :, None]
                + np.arange(group_size)[None, None, :]).reshape(L, E)
    mlog2log = _inverse(log2mlog)
    # (2) replicate within each node
    tokens_per_mlog = np.take_along_axis(weight, mlog2log, 1).reshape(L * num_nodes, E // num_nodes)
    phy2mlog, phyrank, mlogcnt = replicate_experts(tokens_per_mlog, num_physical // num_nodes)
    # (3) physical experts onto the node's GPUs, each carrying load / count
    tokens_per_phy = np.take_along_axis(tokens_per_mlog / mlogcnt, phy2mlog, 1)
    pack, rank = balanced_packing(tokens_per_phy, gpus_per_node)
    phy2pphy = pack * phy_per_gpu + rank
    pphy2phy = _inverse(phy2pphy)
    # (4) back to logical ids
    pphy2mlog = np.take_along_axis(phy2mlog, pphy2phy, 1)
    pphy2mlog = (pphy2mlog.reshape(L, num_nodes, -1)
                 + np.arange(0, E, E // num_nodes)[None, :, None]).reshape(L, -1)
    pphy2log = np.take_along_axis(mlog2log, pphy2mlog, 1)
    pphyrank = np.take_along_axis(phyrank, pphy2phy, 1).reshape(L, -1)
    logcnt = np.take_along_axis(mlogcnt.reshape(L, -1), log2mlog, 1)
    return pphy2log, pphyrank, logcnt


def rebalance(weight: np.ndarray, num_replicas: int, num_groups: int, num_nodes: int,
              num_gpus: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EPLB. weight ``[L, E]`` loads. Returns phy2log ``[L, P]`` (slot s lives on GPU
    ``s // (P / D)``), log2phy ``[L, E, maxcount]`` (-1 padded) and logcnt ``[L, E]``."""
    weight = np.asarray(weight, dtype=np.float64)
    if weight.ndim != 2:
        raise ValueError(f"weight must be [layers, experts], got shape {weight.shape}")
    L, E = weight.shape
    if num_replicas % num_gpus or num_gpus % num_nodes:
        raise ValueError(f"num_replicas={num_replicas} must divide evenly over num_gpus={num_gpus}, "
                         f"and num_gpus over num_nodes={num_nodes}")
    if num_groups % num_nodes == 0 and E % num_groups == 0:
        phy2log, phyrank, logcnt = rebalance_hierarchical(weight, num_replicas, num_groups, num_nodes,
                                                          num_gpus)
    else:
        phy2log, phyrank, logcnt = rebalance_hierarchical(weight, num_replicas, 1, 1, num_gpus)
    maxcount = int(logcnt.max())
    log2phy = np.full((L, E, maxcount), -1, np.int64)
    rows = np.repeat(np.arange(L), num_replicas)
    log2phy[rows, phy2log.ravel(), phyrank.ravel()] = np.tile(np.arange(num_replicas), L)
    return phy2log, log2phy, logcnt
