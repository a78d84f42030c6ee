#!/usr/bin/env python3
"""Prints the model-level table the README quotes, from an attnscope report.json.

    scripts/summarize_report.py out/default/report.json

Standard library only.
"""
import json
import sys


def main(path: str) -> None:
    r = json.load(open(path))
    s = r["summary"]
    c = s["checks"]
    runs = r["runs"]
    print(f"model: {r['model']['source']} ({len(runs)} runs: "
          f"{sorted({x['ctx'] for x in runs})} ctx x {len({x['text'] for x in runs})} texts)")
    print(f"checks: all_pass={c['all_pass']} heads={c['heads_checked']} numerical_rank={c['numerical_rank_counts']} "
          f"zero_sum_max={c['zero_sum_residual_max']:.1e} shift_max={c['shift_consistency_max']:.1e}")
    print("| measure | min | p10 | median | p90 | max | spread of run medians | across texts | across ctx |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in ["k90", "participation_ratio", "key_coherence"]:
        pm = s["per_model"][m]
        a = pm["all_runs"]
        f = (lambda v: f"{v:.0f}") if m == "k90" else (lambda v: f"{v:.3g}")
        print(f"| {m} | {f(a['min'])} | {f(a['p10'])} | {f(a['median'])} | {f(a['p90'])} | {f(a['max'])} | "
              f"{pm['median_spread_across_runs']:.3g} | {pm['median_spread_across_texts']:.3g} | "
              f"{pm['median_spread_across_ctx']:.3g} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/default/report.json")
