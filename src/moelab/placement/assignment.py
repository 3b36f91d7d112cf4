"""The linear assignment problem in numpy alone: what ``align`` (moelab's policy) matches devices with.

A shortest-augmenting-path solver (Crouse, "On implementing 2D rectangular assignment algorithms", IEEE TAES
2016), the method SciPy's ``linear_sum_assignment`` uses, with the same order of rows, the same order in which
columns are scanned and removed, and the same tie rule (among the columns at the least path cost, an unassigned
one ends the path), so it returns SciPy's assignment, ties included (``tests/test_submission.py`` checks this
on random matrices full of ties). SciPy's compiled solver is used where SciPy is installed (the same answer,
faster); without it this module needs numpy alone, so moelab's policy runs where only numpy is: the
competition submission (:mod:`moelab.placement.submission`).
"""

from __future__ import annotations

from functools import cache

import numpy as np


@cache
def _compiled():
    """SciPy's solver, or None where SciPy is absent. Imported on first use: scipy.optimize takes a quarter of a
    second to import, and the workflow imports this module in every Snakemake process (each job starts two)."""
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        return None
    return linear_sum_assignment


def linear_sum_assignment(cost: np.ndarray, maximize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of a least-cost (``maximize``: greatest) assignment of a square or wide cost matrix;
    rows in order. A tall matrix is solved transposed, as SciPy does."""
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"expected a matrix, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError("the cost matrix holds inf or NaN")
    if maximize:
        c = -c
    if (scipy_solver := _compiled()) is not None:
        rows, cols = scipy_solver(c)
        return np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    return solve(c)


def solve(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The numpy solver on a finite float64 cost matrix, minimising (SciPy's answer, ties included)."""
    if c.shape[0] > c.shape[1]:
        cols, rows = _solve(c.T)
        order = np.argsort(rows, kind="stable")
        return rows[order], cols[order]
    return _solve(c)


def _solve(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nr, nc = c.shape
    u, v = np.zeros(nr), np.zeros(nc)
    col4row = np.full(nr, -1, np.int64)
    row4col = np.full(nc, -1, np.int64)
    for cur in range(nr):
        spc = np.full(nc, np.inf)  # shortest path cost to each column
        path = np.full(nc, -1, np.int64)
        seen_rows = np.zeros(nr, bool)
        seen_cols = np.zeros(nc, bool)
        remaining = np.arange(nc)[::-1].copy()  # columns still to scan, in the reference's order
        n_rem = nc
        min_val, i, sink = 0.0, cur, -1
        while sink == -1:
            seen_rows[i] = True
            js = remaining[:n_rem]
            r = min_val + c[i, js] - u[i] - v[js]
            better = r < spc[js]
            path[js[better]] = i
            spc[js[better]] = r[better]
            s = spc[js]
            lowest = s.min()
            at = np.flatnonzero(s == lowest)
            free = at[row4col[js[at]] == -1]
            index = int(free[-1]) if len(free) else int(at[0])  # the scan keeps the last free tie, else the first
            min_val = lowest
            j = int(remaining[index])
            if row4col[j] == -1:
                sink = j
            else:
                i = int(row4col[j])
            seen_cols[j] = True
            n_rem -= 1
            remaining[index] = remaining[n_rem]
        u[cur] += min_val
        others = seen_rows.copy()
        others[cur] = False
        rows = np.flatnonzero(others)
        u[rows] += min_val - spc[col4row[rows]]
        v[seen_cols] -= min_val - spc[seen_cols]
        j = sink
        while True:
            i = int(path[j])
            row4col[j] = i
            col4row[i], j = j, int(col4row[i])
            if i == cur:
                break
    return np.arange(nr), col4row
