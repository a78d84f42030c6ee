import json, shutil, sys, tempfile, torch
from pathlib import Path
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM
T = Path("crates/models/tests/fixtures/tiny")
names = {"gpt2": ("lm_head.weight", "transformer.wte.weight"), "mpt": ("lm_head.weight", "transformer.wte.weight"),
         "gpt_neox": ("embed_out.weight", "gpt_neox.embed_in.weight"), "bloom": ("lm_head.weight", "transformer.word_embeddings.weight")}
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
        m = AutoModelForCausalLM.from_pretrained(td, dtype=torch.float32, attn_implementation="eager").eval()
        with torch.no_grad():
            lg = m(input_ids=ref["token_ids"][None], use_cache=False).logits[0]
        print(d.name, "max|dlogits| =", float((lg - ref["logits"]).abs().max()))
