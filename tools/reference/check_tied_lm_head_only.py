"""transformers loads every tied tiny fixture when the shared matrix is
stored only as the output layer (no embedding tensor), to the same logits:
the shape that crates/models/tests/parity.rs
`tied_embeddings_stored_as_lm_head_only_load` checks attnscope reads.

    cd <repo> && /work/refenv/bin/python tools/reference/check_tied_lm_head_only.py
"""
import json, shutil, sys, tempfile, torch
from pathlib import Path
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText
T = Path("crates/models/tests/fixtures/tiny")
names = {"gpt2": ("lm_head.weight", "transformer.wte.weight"), "mpt": ("lm_head.weight", "transformer.wte.weight"),
         "gpt_neox": ("embed_out.weight", "gpt_neox.embed_in.weight"), "bloom": ("lm_head.weight", "transformer.word_embeddings.weight"),
         "gemma3_multimodal": ("language_model.lm_head.weight", "language_model.model.embed_tokens.weight")}
for d in sorted(T.iterdir()):
    if not (d / "config.json").exists(): continue
    cfg = json.loads((d / "config.json").read_text())
    if cfg.get("tie_word_embeddings") is False: continue
    head, emb = names.get(d.name, ("lm_head.weight", "model.embed_tokens.weight"))
    w = load_file(str(d / "model.safetensors"))
    w[head] = w.pop(emb)
    with tempfile.TemporaryDirectory() as td:
        shutil.copy(d / "config.json", td)
        save_file(w, f"{td}/model.safetensors", metadata={"format": "pt"})
        ref = load_file(str(d / "reference.safetensors"))
        auto = AutoModelForImageTextToText if cfg["model_type"] == "gemma3" else AutoModelForCausalLM
        m = auto.from_pretrained(td, dtype=torch.float32, attn_implementation="eager").eval()
        with torch.no_grad():
            lg = m(input_ids=ref["token_ids"][None], use_cache=False).logits[0]
        print(d.name, "max|dlogits| =", float((lg - ref["logits"]).abs().max()))
