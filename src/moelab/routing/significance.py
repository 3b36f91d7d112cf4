"""Which differences between routing strategies the training study's seeds support.

Every pair of strategies at each (study, capacity factor) is compared on the per-seed values of one metric
(validation perplexity by default):

- the decision rests on a two-sided **Welch t-test** (unequal variances, ``scipy.stats.ttest_ind(...,
  equal_var=False)``);
- beside it, for information, the exact two-sided **permutation test** over seed labels (every split of the
  pooled values into groups of the two sizes; statistic |mean_a - mean_b|). With few seeds it cannot reach
  small p-values at all (3 against 3 seeds: at least 2/20 = 0.1), which is why it does not decide;
- **Holm's step-down correction** over the family of every tested pair in the table (all studies and capacity
  factors together); a pair is significant when its Holm-adjusted p-value is below ``alpha``.

A pair with fewer than 2 seeds on a side, or no seed-to-seed variance on either side, is not tested: its
p-values are null, it is not significant, it is not in the family, and its ``note`` says why.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
from scipy import stats

ALPHA = 0.05
TEST = "Welch t"
PERMUTATION_MAX_SPLITS = 100_000  # beyond this many label splits the permutation p is left null

SCHEMA = {"study": pl.String, "capacity_factor": pl.Float64, "metric": pl.String, "strategy_a": pl.String,
          "strategy_b": pl.String, "n_a": pl.Int64, "n_b": pl.Int64, "mean_a": pl.Float64, "mean_b": pl.Float64,
          "std_a": pl.Float64, "std_b": pl.Float64, "diff": pl.Float64, "test": pl.String,
          "p_value": pl.Float64, "p_permutation": pl.Float64, "p_holm": pl.Float64, "alpha": pl.Float64,
          "significant": pl.Boolean, "note": pl.String}


def holm(p: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values, in the input's order; ``None`` entries stay ``None`` and are not
    in the family. The i-th smallest of m p-values becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``."""
    tested = sorted((v, i) for i, v in enumerate(p) if v is not None)
    m = len(tested)
    out: list[float | None] = [None] * len(p)
    running = 0.0
    for rank, (v, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * v))
        out[i] = running
    return out


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances)."""
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def permutation_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Exact two-sided permutation p-value of |mean_a - mean_b| over every relabelling of the pooled values
    into groups of sizes len(a), len(b); ``None`` past ``PERMUTATION_MAX_SPLITS`` splits."""
    n_a, pooled = len(a), np.asarray([*a, *b], dtype=float)
    if math.comb(len(pooled), n_a) > PERMUTATION_MAX_SPLITS:
        return None
    total = pooled.sum()
    observed = abs(np.mean(a) - np.mean(b))
    hits = splits = 0
    for idx in itertools.combinations(range(len(pooled)), n_a):
        s = pooled[list(idx)].sum()
        d = abs(s / n_a - (total - s) / (len(pooled) - n_a))
        hits += d >= observed - 1e-12 * max(1.0, observed)
        splits += 1
    return hits / splits


def _untested(n_a: int, n_b: int, std_a: float | None, std_b: float | None) -> str:
    if min(n_a, n_b) < 2:
        return "fewer than 2 seeds on a side: no test"
    if std_a == 0 and std_b == 0:
        return "no seed-to-seed variance on either side: t undefined, no test"
    return ""


def significance(metrics: pl.DataFrame, column: str = "val_ppl", alpha: float = ALPHA) -> pl.DataFrame:
    """Every pair of strategies at each study and capacity factor (``strategy_a`` the one with the lower mean
    of ``column``, ``diff = mean_b - mean_a``): seed counts, means and stds, the Welch t p-value (which
    decides), the exact permutation p-value, the Holm-adjusted p-value over every tested pair of the table,
    and ``significant = p_holm < alpha``. Non-finite values (a diverged run) are left out of the seeds."""
    if "study" not in metrics.columns:
        metrics = metrics.with_columns(study=pl.lit("base"))
    values = (metrics.filter(pl.col(column).is_not_null() & pl.col(column).is_finite())
              .group_by("study", "capacity_factor", "strategy")
              .agg(pl.col(column).sort_by("seed") if "seed" in metrics.columns else pl.col(column))
              .sort("study", "capacity_factor", "strategy"))
    groups: dict[tuple, list[dict]] = {}
    for study, cf, strategy, vals in values.iter_rows():
        v = [float(x) for x in vals]
        groups.setdefault((study, float(cf)), []).append(
            {"strategy": strategy, "values": v, "mean": float(np.mean(v)),
             "std": float(np.std(v, ddof=1)) if len(v) > 1 else None})
    rows = []
    for (study, cf), recs in groups.items():
        recs.sort(key=lambda r: (r["mean"], r["strategy"]))
        for i, a in enumerate(recs):
            for b in recs[i + 1:]:
                n_a, n_b = len(a["values"]), len(b["values"])
                note = _untested(n_a, n_b, a["std"], b["std"])
                rows.append({"study": study, "capacity_factor": cf, "metric": column,
                             "strategy_a": a["strategy"], "strategy_b": b["strategy"], "n_a": n_a, "n_b": n_b,
                             "mean_a": a["mean"], "mean_b": b["mean"], "std_a": a["std"], "std_b": b["std"],
                             "diff": b["mean"] - a["mean"], "test": TEST,
                             "p_value": None if note else welch_p(a["values"], b["values"]),
                             "p_permutation": None if note else permutation_p(a["values"], b["values"]),
                             "alpha": alpha, "note": note})
    for r, adjusted in zip(rows, holm([r["p_value"] for r in rows])):
        r["p_holm"] = adjusted
        r["significant"] = adjusted is not None and adjusted < alpha
    return pl.DataFrame(rows, schema=SCHEMA)


def family_size(sig: pl.DataFrame) -> int:
    """Pairs in the Holm family: those with a p-value."""
    return int(sig.get_column("p_value").is_not_null().sum())


def title(sig: pl.DataFrame) -> str:
    """The table's title: the test, the correction, the family size and alpha."""
    metric = sig.get_column("metric")[0] if sig.height else "val_ppl"
    alpha = sig.get_column("alpha")[0] if sig.height else ALPHA
    m, untested = family_size(sig), sig.height - family_size(sig)
    rest = f"; {untested} pair(s) untested (see note)" if untested else ""
    return (f"Strategy pairs on per-seed {metric}: two-sided {TEST}-test (unequal variances), Holm step-down "
            f"correction over the {m} tested pairs of this table, significant when p_holm < {alpha:g}{rest}; "
            f"p_permutation (exact, over seed labels) is shown, not used")


def compute_note(sig: pl.DataFrame, top_k: Mapping[str, int]) -> str:
    """Where a ``top1`` pair meets a top-k strategy (k > 1, ``top_k``: study -> k), the fact that ``top1``
    sends each token to one expert and so runs 1/k of their expert FLOPs; empty if no such pair."""
    by_k: dict[int, list[str]] = {}
    for study in sig.get_column("study").unique().sort():
        k = top_k.get(study, 1)
        pairs = sig.filter((pl.col("study") == study)
                           & ((pl.col("strategy_a") == "top1") != (pl.col("strategy_b") == "top1")))
        if k > 1 and pairs.height:
            by_k.setdefault(k, []).append(study)
    parts = []
    for k, studies in sorted(by_k.items()):
        share = "half" if k == 2 else f"1/{k} of"
        parts.append(f"top1 routes each token to 1 expert and every other strategy to k={k} (expert choice: "
                     f"capacity for {k} per token), so top1 runs {share} the expert FLOPs of the top-{k} "
                     f"strategies: its pairs compare unequal compute (studies "
                     f"{', '.join(repr(s) for s in studies)})")
    return "; ".join(parts)
