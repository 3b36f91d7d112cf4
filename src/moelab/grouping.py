"""Expert grouping: split experts into equal groups that fire together, under an optional balance constraint.

Both the co-activation analysis (``coactivation.py``: is the structure real?) and static placement
(``placement/static.py``: put each group on one device) use these, so neither imports the other.

- :func:`pair_counts`: the co-activation matrix of a ``[tokens, k]`` expert set;
- :func:`cluster`: greedy growth + best-swap refinement of equal-size groups maximising the affinity
  inside groups, optionally under a load cap or a budget on the window load CV;
- :func:`window_loads` / :func:`window_cv`: loads in consecutive windows of a stream, and the mean over
  windows of the group-load CV (how much a grouping swings as the traffic mix moves);
- :func:`intra_share`: the share of pairs that a grouping keeps inside a group.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def _pair_counts(experts: np.ndarray, E: int) -> np.ndarray:  # pragma: no cover - numba
    n, k = experts.shape
    out = np.zeros((E, E), np.int64)
    for i in range(n):
        for a in range(k):
            x = experts[i, a]
            for b in range(a + 1, k):
                out[x, experts[i, b]] += 1
    return out


def pair_counts(experts: np.ndarray, num_experts: int) -> np.ndarray:
    """Symmetric ``[E, E]`` int64: tokens that selected both experts (diagonal 0)."""
    m = _pair_counts(np.ascontiguousarray(experts), int(num_experts))
    return m + m.T


def window_loads(experts: np.ndarray, num_experts: int, windows: int) -> np.ndarray:
    """Per-expert loads ``[windows, E]`` in consecutive equal windows of ``experts`` ``[tokens, k]``
    (windows with no tokens are dropped)."""
    chunks = np.array_split(experts, max(1, min(windows, experts.shape[0])))
    return np.array([np.bincount(c.ravel(), minlength=num_experts) for c in chunks if c.size], np.float64)


def window_cv(window_loads: np.ndarray, labels: np.ndarray, groups: int) -> float:
    """Mean over windows of the CV of group loads: ``window_loads [windows, E]``."""
    g = window_loads @ np.eye(groups)[labels]
    return float((g.std(1) / g.mean(1)).mean())


def cluster(affinity: np.ndarray, groups: int, order_hint: np.ndarray | None = None,
            init: np.ndarray | None = None, loads: np.ndarray | None = None,
            cap: float | None = None, window_loads: np.ndarray | None = None,
            cv_budget: float | None = None) -> np.ndarray:
    """Split experts into ``groups`` groups of equal size maximising the affinity inside groups.

    Greedy growth (a seed, then the expert with the most affinity to the group so far; seeds in
    ``order_hint`` order, default by id), or the labels ``init``, followed by best-swap
    refinement until no swap of two experts between groups increases the within-group affinity.
    With ``loads`` and ``cap``, a swap may not push a group's total load above ``cap`` (start from
    an ``init`` that respects it). With ``window_loads [windows, E]`` (loads in consecutive windows
    of the fitted stream) and ``cv_budget``, a swap may not raise the mean over windows of the
    group-load CV above ``cv_budget``: experts whose loads rise and fall together (one domain's)
    then do not pile onto one group, which is what unbalances it when the mix moves.
    Returns ``[E]`` group labels.
    """
    A = np.asarray(affinity, dtype=np.float64).copy()
    E = A.shape[0]
    if E % groups:
        raise ValueError(f"{E} experts do not split into {groups} equal groups")
    np.fill_diagonal(A, 0.0)
    size = E // groups
    if init is not None:
        labels = np.asarray(init).copy()
    else:
        labels = np.full(E, -1)
        hint = np.arange(E) if order_hint is None else np.asarray(order_hint)
        for g in range(groups):
            seed = next(int(e) for e in hint if labels[e] < 0)
            labels[seed] = g
            members = [seed]
            for _ in range(size - 1):
                score = A[:, members].sum(1)
                score[labels >= 0] = -np.inf
                e = int(np.argmax(score))  # ties: lowest id
                labels[e] = g
                members.append(e)
    onehot = np.eye(groups)[labels]
    S = A @ onehot  # S[e, g]: affinity of e to group g
    capped = loads is not None and cap is not None
    if capped:
        w = np.asarray(loads, np.float64)
        group_load = w @ onehot
    windowed = window_loads is not None and cv_budget is not None
    if windowed:
        W = np.asarray(window_loads, np.float64)
        wmean = W.sum(1) / groups  # [n]: a window's mean group load (swaps keep it)
        GW = W @ onehot  # [n, G]
        swing = W[:, None, :] - W[:, :, None]  # [n, a, b]: w_b - w_a per window
    for _ in range(10 * E):
        own = S[np.arange(E), labels]
        cross = S[:, labels]  # cross[a, b] = S[a, group of b]
        delta = cross + cross.T - 2 * A - own[:, None] - own[None, :]
        delta[labels[:, None] == labels[None, :]] = -np.inf
        if capped:  # after swapping a and b: group(a) gains w_b - w_a, group(b) the opposite
            diff = w[None, :] - w[:, None]
            gl = group_load[labels]
            delta[(gl[:, None] + diff > cap) | (gl[None, :] - diff > cap)] = -np.inf
        if windowed:  # only two groups change, so each window's sum of squares updates in O(1)
            ga_load = GW[:, labels][:, :, None]  # [n, a, 1]: load of a's group
            gb_load = GW[:, labels][:, None, :]
            sq = ((GW ** 2).sum(1)[:, None, None] - ga_load ** 2 - gb_load ** 2
                  + (ga_load + swing) ** 2 + (gb_load - swing) ** 2)
            var = np.maximum(sq / groups - wmean[:, None, None] ** 2, 0.0)
            cv = (np.sqrt(var) / wmean[:, None, None]).mean(0)
            delta[cv > cv_budget] = -np.inf
        a, b = np.unravel_index(int(np.argmax(delta)), delta.shape)
        if delta[a, b] <= 1e-9:
            break
        ga, gb = labels[a], labels[b]
        S[:, ga] += A[:, b] - A[:, a]
        S[:, gb] += A[:, a] - A[:, b]
        if capped:
            group_load[ga] += w[b] - w[a]
            group_load[gb] += w[a] - w[b]
        if windowed:
            GW[:, ga] += W[:, b] - W[:, a]
            GW[:, gb] += W[:, a] - W[:, b]
        labels[a], labels[b] = gb, ga
    return labels


def intra_share(pairs: np.ndarray, labels: np.ndarray) -> float:
    """Share of co-activation pairs whose two experts are in one group."""
    same = labels[:, None] == labels[None, :]
    total = pairs.sum()
    return float(pairs[same].sum() / total) if total else float("nan")
