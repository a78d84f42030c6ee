#!/usr/bin/env python3
"""Reference fixtures for attnscope's per-head measures (dense f64, measures.py).

    /work/refenv/bin/python tools/reference/make_measure_fixtures.py [--only smollm2 stories260K]

Writes under crates/attnscope/tests/fixtures/measures/:

  smollm2_gpl3_256.json              SmolLM2-135M-Instruct Q4_1, first 256 tokens of GPL-3
                                     (no BOS), 30 layers x 9 heads
  stories260K_tinyshakespeare_256.json
                                     stories260K, BOS + first 255 tokens of tinyshakespeare
                                     (llama2.c tokenizer), 5 layers x 8 heads

Q, K (post-rotary, per KV head) and the model's own attention pattern come from
transformers' eager attention via capture.py; W_Q^h, W_K^h are the slices of
q_proj / k_proj (dequantized GGUF weights as transformers loads them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import capture  # noqa: E402
import make_fixtures as mf  # noqa: E402  (paths, GGUF loader, JSON writer, tokenizers)
from llama2c_tokenizer import Llama2cTokenizer  # noqa: E402
from measures import head_measures  # noqa: E402

OUT = mf.REPO / "crates" / "attnscope" / "tests" / "fixtures" / "measures"
CTX = 256
SIG_DIGITS = 10

MEASURE_NAMES = [
    "zero_sum_residual", "shift_consistency", "shift_consistency_f64_softmax", "attention_entropy",
    "rank_bound", "numerical_rank", "spectrum", "k90", "k99", "effective_rank", "stable_rank",
    "k90_learned", "effective_rank_learned", "spectral_gap", "participation_ratio", "top1pct_share",
    "argmax_key", "key_coherence", "energy_leverage_spearman",
]


def rnd(x):
    """Round floats to SIG_DIGITS significant digits (recursively); ints/None unchanged."""
    if isinstance(x, float):
        return float(f"{x:.{SIG_DIGITS}g}")
    if isinstance(x, list):
        return [rnd(v) for v in x]
    return x


def head_weights(model, layer: int, head: int, kv_head: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """W_Q^h, W_K^h as d_model x d slices with q = x W_Q (before rotary)."""
    attn = model.model.layers[layer].self_attn
    wq = attn.q_proj.weight.detach().double().numpy().T  # [d_model, n_heads*d]
    wk = attn.k_proj.weight.detach().double().numpy().T  # [d_model, n_kv*d]
    return wq[:, head * d:(head + 1) * d], wk[:, kv_head * d:(kv_head + 1) * d]


def all_head_measures(model, cap: capture.Capture) -> list[dict]:
    heads = []
    for c in cap.layers:
        n_heads, n, d = c.q.shape
        group = n_heads // c.k.shape[0]
        assert c.softcap is None, "soft-capped models are not handled by measures.py"
        for h in range(n_heads):
            kv = h // group
            wq, wk = head_weights(model, c.layer, h, kv, d)
            m = head_measures(
                c.q[h].numpy(), c.k[kv].numpy(), c.scaling, c.sliding_window,
                probs=c.probs[h].numpy(), w_q=wq, w_k=wk,
            )
            assert sorted(m) == sorted(MEASURE_NAMES), list(m)
            heads.append({"layer": c.layer, "head": h, "kv_head": kv, **{k: rnd(m[k]) for k in MEASURE_NAMES}})
    return heads


def summarize(name: str, heads: list[dict]) -> None:
    mf.log(f"  {name}: {len(heads)} heads")
    for key in ["numerical_rank", "k90", "participation_ratio", "key_coherence", "zero_sum_residual",
                "shift_consistency", "shift_consistency_f64_softmax"]:
        v = np.array([h[key] for h in heads if h[key] is not None], dtype=float)
        mf.log(f"    {key:30s} min {v.min():.4g}  median {np.median(v):.4g}  max {v.max():.4g}")


def smollm2_ids(n: int) -> list[int]:
    from transformers import AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(mf.SMOLLM2_DIR, gguf_file=mf.SMOLLM2_GGUF)
    gpl = mf.GPL3.read_text(encoding="utf-8")
    ids = hf_tok(gpl, add_special_tokens=True)["input_ids"][:n]
    real = mf.smollm2_real_pretokenizer(hf_tok).encode(gpl).ids[:n]
    assert ids == real, "transformers' GGUF tokenizer and the real SmolLM2 pre-tokenizer disagree"
    assert len(ids) == n
    return ids


def make_smollm2() -> Path:
    import transformers

    ids = smollm2_ids(CTX)
    model = mf.load_gguf_model(mf.SMOLLM2_DIR, mf.SMOLLM2_GGUF)
    cap = capture.run_capture(model, ids)
    mf.check_patterns(cap)
    heads = all_head_measures(model, cap)
    summarize("smollm2", heads)
    path = OUT / "smollm2_gpl3_256.json"
    mf.write_json(path, {
        "model": mf.SMOLLM2_GGUF,
        "text_source": str(mf.GPL3),
        "ctx": CTX,
        "token_ids": ids,
        "transformers_version": transformers.__version__,
        "notes": NOTES + [
            "tokens: the first 256 ids of the whole GPL-3 text, no BOS, transformers' GGUF tokenizer "
            "(checked equal to the real SmolLM2 pre-tokenizer Digits(individual)+ByteLevel on these ids)",
            "query head h reads KV head h // 3",
        ],
        "heads": heads,
    })
    return path


def stories_ids(n: int) -> list[int]:
    tok = Llama2cTokenizer(str(mf.STORIES_DIR / "tok512.bin"), vocab_size=512)
    text = mf.SHAKESPEARE.read_text(encoding="utf-8")
    # llama2.c's encoder merges over the whole string (no pre-tokenizer); a prefix far longer
    # than n tokens gives the same first n ids as the whole text (checked on two prefix lengths).
    a = tok.encode(text[:6000], bos=True)[:n]
    b = tok.encode(text[:12000], bos=True)[:n]
    assert a == b and len(a) == n and a[0] == 1
    return a


def make_stories() -> Path:
    import transformers

    ids = stories_ids(CTX)
    model = mf.load_gguf_model(mf.STORIES_DIR, "stories260K.gguf")
    cap = capture.run_capture(model, ids)
    mf.check_patterns(cap)
    heads = all_head_measures(model, cap)
    summarize("stories260K", heads)
    path = OUT / "stories260K_tinyshakespeare_256.json"
    mf.write_json(path, {
        "model": "stories260K.gguf",
        "text_source": "tinyshakespeare.txt",
        "ctx": CTX,
        "token_ids": ids,
        "transformers_version": transformers.__version__,
        "notes": NOTES + [
            "tokens: BOS (1) + the llama2.c tokenizer (tok512.bin, tools/reference/llama2c_tokenizer.py) "
            "ids of tinyshakespeare.txt, first 256 in all",
            "query head h reads KV head h // 2",
        ],
        "heads": heads,
    })
    return path


NOTES = [
    "generated by tools/reference/make_measure_fixtures.py with tools/reference/measures.py: dense f64 "
    "(n x n extended field E, full numpy SVD), written from SPEC.md + docs/definitions.md",
    "q, k: transformers eager attention inputs (post-rotary, float32, widened to f64); the model's "
    "pattern P (for shift_consistency, attention_entropy) is transformers' float32 softmax output",
    "shift_consistency: null when that float32 P underflowed to 0 somewhere on the support (log P = -inf; "
    "happens on stories260K); float32 P that is subnormal (< 1.18e-38) has few significant bits, so "
    "shift_consistency can reach ~1e-3 there (stories260K). attnscope instead recomputes an f32 "
    "max-subtracted log-softmax (docs/definitions.md), which never underflows: compare with a loose tolerance",
    "shift_consistency_f64_softmax: the same with P from an f64 log-softmax of the f64 logits",
    "spectrum: the top min(n, d+1) singular values; k90/k99/effective_rank/stable_rank use them",
    "learned: M = W_Q^h W_K^h^T from the dequantized q_proj/k_proj weights as transformers loads the GGUF",
    f"floats rounded to {SIG_DIGITS} significant digits",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=["smollm2", "stories260K"])
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    for name in args.only:
        path = {"smollm2": make_smollm2, "stories260K": make_stories}[name]()
        mf.log(f"  wrote {path.relative_to(mf.REPO)} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
