"""End-to-end speed: `attnscope analyze` against the dense route people use today.

The dense route ("peer"): HF transformers, eager attention, Q/K captured with
capture.py, then every measure computed densely per head with measures.py
(an n x n energy field and its full SVD per head, numpy f64). attnscope: the
release binary, factored path. Both on SmolLM2-135M-Instruct Q4_1, the first
`ctx` tokens of one text; both timed from a cold start (model load included)
and reported separately for load and compute. attnscope runs --repeat times
(median reported), the dense route once. The numbers of both routes are
compared head by head.

    /work/refenv/bin/python tools/reference/bench_analyze.py --ctx 512 2048

At large ctx the dense route is slow (one 2048 x 2048 SVD per head, 270 heads):
`--dense-layers 0,14,29` computes only those layers densely and extrapolates
its measure time linearly to all layers; the report says so.

`--dense-repeat N` runs the dense route N times, alternating with the
attnscope runs (attnscope, dense, attnscope, dense, ...), and reports the
median of each: both then see the same load. The 1-minute load average is
recorded before and after each ctx.

`--baseline-exe PATH` also times another attnscope binary (e.g. a build of
main), alternating with this one run by run, and reports the ratio of the two
medians: on a shared machine that ratio is steadier than either time.

Run from the repository root after `cargo build --release`. Not part of CI.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import capture  # noqa: E402
import measures  # noqa: E402

ROOT = HERE.parent.parent
CACHE = Path(os.environ.get("ATTNSCOPE_CACHE", Path.home() / ".cache/attnscope"))
GGUF = CACHE / "models/SmolLM2-135M-Instruct.Q4_1.gguf"

COMPARE = ["numerical_rank", "k90", "k99", "effective_rank", "stable_rank", "participation_ratio",
           "top1pct_share", "key_coherence", "spectral_gap"]
REL_TOL = 1e-4  # HF and attnscope Q/K agree to ~1e-6 relative in f32


def run_attnscope(text: Path, ctx: int, out: Path, exe: Path = ROOT / "target/release/attnscope") -> tuple[float, dict]:
    t0 = time.perf_counter()
    subprocess.run([str(exe), "analyze", "--model", str(GGUF), "--text", str(text), "--ctx", str(ctx),
                    "--out", str(out), "--quiet"], check=True)
    wall = time.perf_counter() - t0
    report = json.loads((out / "report.json").read_text())
    return wall, report


def run_dense(text: Path, ctx: int, layers: list[int] | None, ids_head: list[int]) -> tuple[dict, list[dict]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(GGUF.parent, gguf_file=GGUF.name)
    model = AutoModelForCausalLM.from_pretrained(GGUF.parent, gguf_file=GGUF.name, torch_dtype=torch.float32)
    model.eval()
    t_load = time.perf_counter() - t0
    # transformers' GGUF tokenizer lacks SmolLM2's Digits pre-tokenizer; use the real one,
    # as attnscope does, so that both routes see the same tokens.
    import make_fixtures
    real = make_fixtures.smollm2_real_pretokenizer(tok)
    ids = real.encode(text.read_text()).ids[:ctx]
    assert len(ids) == ctx, f"{text} has only {len(ids)} tokens"
    assert ids[:8] == ids_head, f"token ids differ from attnscope's: {ids[:8]} vs {ids_head}"
    t1 = time.perf_counter()
    cap = capture.run_capture(model, ids)
    t_forward = time.perf_counter() - t1
    cfg = model.config
    h, hkv = cfg.num_attention_heads, cfg.num_key_value_heads
    d = cfg.hidden_size // h
    use = layers if layers is not None else list(range(cfg.num_hidden_layers))
    t2 = time.perf_counter()
    heads = []
    for lc in cap.layers:
        if lc.layer not in use:
            continue
        attn = model.model.layers[lc.layer].self_attn
        wq = attn.q_proj.weight.detach().double().numpy()
        wk = attn.k_proj.weight.detach().double().numpy()
        for head in range(h):
            g = head // (h // hkv)
            m = measures.head_measures(
                lc.q[head].numpy(), lc.k[g].numpy(), lc.scaling, lc.sliding_window,
                probs=lc.probs[head].numpy(),
                w_q=wq[head * d:(head + 1) * d].T, w_k=wk[g * d:(g + 1) * d].T)
            m.update(layer=lc.layer, head=head)
            heads.append(m)
    t_measures = time.perf_counter() - t2
    scale = cfg.num_hidden_layers / len(use)
    timing = {"load_s": t_load, "forward_s": t_forward, "measures_s": t_measures,
              "layers_measured": len(use), "measures_s_all_layers": t_measures * scale,
              "extrapolated": scale != 1.0}
    timing["total_s"] = t_load + t_forward + timing["measures_s_all_layers"]
    return timing, heads


def compare(ours: list[dict], dense: list[dict]) -> dict:
    by_key = {(x["layer"], x["head"]): x for x in ours}
    worst = {m: 0.0 for m in COMPARE}
    mismatches = []
    for dh in dense:
        oh = by_key[(dh["layer"], dh["head"])]
        for m in COMPARE:
            a, b = oh.get(m), dh.get(m)
            if a is None or b is None:
                continue
            err = abs(a - b) / max(abs(b), 1e-300)
            worst[m] = max(worst[m], err)
            if m in ("numerical_rank",) and a != b:
                mismatches.append((dh["layer"], dh["head"], m, a, b))
            elif m in ("k90", "k99") and abs(a - b) > 1:
                mismatches.append((dh["layer"], dh["head"], m, a, b))
            elif m not in ("numerical_rank", "k90", "k99") and err > REL_TOL:
                mismatches.append((dh["layer"], dh["head"], m, a, b))
    return {"heads_compared": len(dense), "worst_relative_error": worst, "mismatches": mismatches[:20],
            "n_mismatches": len(mismatches)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ctx", type=int, nargs="+", default=[512, 2048])
    ap.add_argument("--text", type=Path, default=Path("/usr/share/common-licenses/GPL-3"))
    ap.add_argument("--dense-layers", default=None,
                    help="comma-separated layers for the dense route at ctx > 1024 (default 0,14,29); 'all' for every layer")
    ap.add_argument("--out", type=Path, default=ROOT / "out/bench_analyze.json")
    ap.add_argument("--repeat", type=int, default=5,
                    help="attnscope runs per ctx (each from a cold process start); the median is reported. "
                         "On a shared 2-core machine one run varies by ±15 %%; the dense route (minutes) runs once")
    ap.add_argument("--dense-repeat", type=int, default=1,
                    help="dense-route runs per ctx, alternating with the attnscope runs; the median is reported")
    ap.add_argument("--baseline-exe", type=Path, default=None,
                    help="another attnscope binary to time in the same run, alternating with this one")
    args = ap.parse_args()
    results = []
    for ctx in args.ctx:
        if args.dense_layers == "all" or (args.dense_layers is None and ctx <= 1024):
            layers = None
        else:
            layers = [int(x) for x in (args.dense_layers or "0,14,29").split(",")]
        load_before = os.getloadavg()[0]
        walls, base_walls, dense_runs = [], [], []
        for i in range(max(1, args.repeat, args.dense_repeat)):
            if i < max(1, args.repeat):
                with tempfile.TemporaryDirectory() as tmp:
                    w, report = run_attnscope(args.text, ctx, Path(tmp))
                walls.append(w)
                if args.baseline_exe is not None:
                    with tempfile.TemporaryDirectory() as tmp:
                        base_walls.append(run_attnscope(args.text, ctx, Path(tmp), args.baseline_exe)[0])
            if i < max(1, args.dense_repeat):
                dense_runs.append(run_dense(args.text, ctx, layers, report["runs"][0]["token_ids_head"]))
        wall = float(np.median(walls))
        ours = report["runs"][0]["heads"]
        dense_totals = [t["total_s"] for t, _ in dense_runs]
        # the run whose total is the median (the lower middle for an even count)
        timing, dense = sorted(dense_runs, key=lambda r: r[0]["total_s"])[(len(dense_runs) - 1) // 2]
        cmp = compare(ours, dense)
        row = {"ctx": ctx, "attnscope_s": wall, "attnscope_runs_s": walls, "dense": timing,
               "dense_runs_s": dense_totals, "speedup": timing["total_s"] / wall, "compare": cmp,
               "load_avg_1min": [load_before, os.getloadavg()[0]]}
        if base_walls:
            base = float(np.median(base_walls))
            row.update(baseline_s=base, baseline_runs_s=base_walls, baseline_over_attnscope=base / wall,
                       baseline_speedup=timing["total_s"] / base)
            print(f"ctx {ctx}: baseline {args.baseline_exe} {base:.2f} s (median of {len(base_walls)}: "
                  f"{', '.join(f'{x:.2f}' for x in base_walls)}) | baseline / attnscope {base / wall:.2f} | "
                  f"baseline speedup over dense {row['baseline_speedup']:.1f}x", flush=True)
        results.append(row)
        print(f"ctx {ctx}: attnscope {wall:.2f} s (median of {len(walls)}: {', '.join(f'{x:.2f}' for x in walls)}) | dense route {timing['total_s']:.1f} s "
              f"(load {timing['load_s']:.1f}, forward {timing['forward_s']:.1f}, measures "
              f"{timing['measures_s_all_layers']:.1f}{' extrapolated from ' + str(timing['layers_measured']) + ' layers' if timing['extrapolated'] else ''}) "
              f"| speedup {row['speedup']:.1f}x | {cmp['heads_compared']} heads compared, "
              f"{cmp['n_mismatches']} mismatches | dense runs {', '.join(f'{x:.1f}' for x in dense_totals)} s "
              f"| load average {row['load_avg_1min'][0]:.1f} -> {row['load_avg_1min'][1]:.1f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
