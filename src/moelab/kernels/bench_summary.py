"""The reference benchmark's CSV and markdown summaries, from benchmark rows (plain dicts: no polars, so
the standalone entry point writes them too)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict

CSV_COLUMNS = ["implementation", "scenario", "num_tokens", "ep_size", "tp_size", "num_experts",
               "num_experts_per_tok", "latency_mean_ms", "latency_std_ms", "latency_p50_ms", "latency_p95_ms",
               "latency_p99_ms", "max_load", "min_load", "avg_load", "max_imbalance", "throughput_tok_per_sec",
               "shape", "placement", "rank_imbalance", "dtype", "device_kind", "device_name"]
BASELINE = "loop"


def to_csv(rows: list[dict]) -> str:
    """The reference's columns (scenario = our trace id), then ours."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(CSV_COLUMNS)
    for r in rows:
        rec = {**r, "scenario": r["trace"], "num_tokens": r["tokens"], "ep_size": r["ep"],
               "tp_size": r["devices"], "num_experts": r["experts"], "num_experts_per_tok": r["top_k"],
               "shape": r["shape_label"]}
        out.writerow([_fmt(rec[c]) for c in CSV_COLUMNS])
    return buf.getvalue()


def _fmt(v: object) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _key(r: dict) -> tuple:
    return (r["device_name"], r["shape_label"], r["dtype"], r["ep"], r["placement"], r["trace"], r["tokens"])


def _speedup(r: dict, base: dict | None) -> str:
    if r["device_kind"] == "interpret":
        return "- (interpret mode)"  # never compared with compiled code
    return f"{base['latency_p50_ms'] / r['latency_p50_ms']:.2f}x" if base else "-"


def to_markdown(rows: list[dict], title: str = "MoE kernel benchmark") -> str:
    """One table per (device, shape, EP, placement, scenario, tokens): each implementation's latency and
    throughput, with its speedup over the per-expert loop (medians)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[_key(r)].append(r)
    lines = [f"# {title}", ""]
    for key in sorted(groups):
        device, shape, dtype, ep, placement, trace, tokens = key
        rs = sorted(groups[key], key=lambda r: r["implementation"])
        r0 = rs[0]
        base = next((r for r in rs if r["implementation"] == BASELINE), None)
        lines += [f"## {trace}, {tokens} tokens: {shape}, {dtype}, EP={ep} TP={r0['tp']} ({placement})", "",
                  f"{r0['device_kind']} `{device}`; experts {r0['experts']}, top-{r0['top_k']}; "
                  f"expert max/mean load {r0['max_imbalance']:.2f}x; busiest rank {r0['rank']} carries "
                  f"{r0['rank_imbalance']:.2f}x the mean rank's pairs", "",
                  "| implementation | p50 (ms) | mean (ms) | p95 (ms) | p99 (ms) | tokens/s | TFLOP/s | "
                  "roofline | dropped | speedup vs loop (p50) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rs:
            speed = _speedup(r, base)
            roof = max(r["frac_peak_flops"], r["frac_peak_bw"])
            lines.append(f"| {r['implementation']} | {r['latency_p50_ms']:.4f} | {r['latency_mean_ms']:.4f} | "
                         f"{r['latency_p95_ms']:.4f} | {r['latency_p99_ms']:.4f} | "
                         f"{r['throughput_tok_per_sec']:.1f} | {r['tflops']:.4f} | {roof:.1%} | "
                         f"{r['dropped_pairs']} | {speed} |")
        lines.append("")
    return "\n".join(lines)


def to_html(rows: list[dict], title: str = "MoE kernel benchmark") -> str:
    """The markdown summary's tables as one self-contained HTML page (for the report)."""
    import html

    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
           "<style>body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse;margin-bottom:1em}"
           "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right} td:first-child{text-align:left}</style>",
           "</head><body>"]
    table: list[str] = []
    for line in to_markdown(rows, title).splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= {"-"}:
                continue
            tag = "th" if not table else "td"
            table.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if table:
            out.append("<table><thead>" + table[0] + "</thead><tbody>" + "".join(table[1:]) + "</tbody></table>")
            table = []
        if line.startswith("# "):
            out.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            out.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    if table:
        out.append("<table><thead>" + table[0] + "</thead><tbody>" + "".join(table[1:]) + "</tbody></table>")
    return "\n".join(out + ["</body></html>"])
