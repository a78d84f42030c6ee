#!/usr/bin/env python3
"""Regenerate every reference fixture of attnscope's `models` crate.

    /work/refenv/bin/python tools/reference/make_fixtures.py [--only NAME ...]

Writes under crates/models/tests/fixtures/:

  tiny/tokenizer.json            byte-level BPE (vocab 384) shared by the tiny models
  tiny/<family>/                 random tiny HF model (config.json, model.safetensors,
                                 tokenizer.json, tokenizer_config.json) and its
                                 reference.safetensors + reference.json
  stories260K/                   reference of the real stories260K model (GGUF weights,
                                 llama2.c tokenizer), tokenization.json, greedy.json
  smollm2/                       reference of SmolLM2-135M-Instruct Q4_1 (GGUF),
                                 tokenization.json, greedy.json
  smollm2_long/                  SmolLM2 over 300 tokens (more than one attention
                                 chunk of the decoder): k of layer 29, q of one head,
                                 logits of 6 rows (vocabulary prefix)

Everything is deterministic (fixed seeds, CPU, float32, eager attention); the
last step re-loads every tiny model directory and checks its logits, its
tokenizer and every captured attention pattern, and prints a summary table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import capture  # noqa: E402
from llama2c_tokenizer import Llama2cTokenizer  # noqa: E402

REPO = HERE.parent.parent
FIXTURES = REPO / "crates" / "models" / "tests" / "fixtures"
TINY = FIXTURES / "tiny"

SHARED = Path(os.environ.get("ATTNSCOPE_SHARED", "/work/shared"))
SHAKESPEARE = SHARED / "texts" / "tinyshakespeare.txt"
STORIES_DIR = SHARED / "models" / "stories260K"
SMOLLM2_DIR = Path(os.environ.get("ATTNSCOPE_MODELS", Path.home() / ".cache" / "attnscope" / "models"))
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GPL3 = Path("/usr/share/common-licenses/GPL-3")

SEED = 1234
# A line of Shakespeare (from the training slice), ~24 tokens with the tiny BPE.
TINY_TEXT = "Before we proceed any further, hear me speak."
STORIES_TEXT = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."

torch.use_deterministic_algorithms(True)
torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

def log(msg: str) -> None:
    print(msg, flush=True)


def write_json(path: Path, obj) -> None:
    """Indented JSON, but with lists of plain numbers kept on one line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, indent=1, ensure_ascii=False)
    text = re.sub(
        r"\[\s*(-?[0-9][0-9.eE+-]*(?:,\s*-?[0-9][0-9.eE+-]*)*)\s*\]",
        lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]",
        text,
    )
    assert json.loads(text) == obj
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> dict:
    """Save contiguous tensors with safetensors; return {name: {dtype, shape}}."""
    from safetensors.torch import save_file

    tensors = {k: v.contiguous() for k, v in tensors.items()}
    save_file(tensors, str(path), metadata={"generator": "tools/reference/make_fixtures.py"})
    return {k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape)} for k, v in tensors.items()}


def versions() -> dict:
    import transformers

    return {"transformers_version": transformers.__version__, "torch_version": torch.__version__}


def max_scaled_qk(c: capture.LayerCapture) -> float:
    """max |scaling * q_i . k_j| over the causal support (before any soft-cap)."""
    group = c.q.shape[0] // c.k.shape[0]
    s = c.scaling * c.q @ c.k.repeat_interleave(group, dim=0).transpose(1, 2)
    t = s.shape[-1]
    return float(s.abs().masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), 0).max())


def layer_meta(cap: capture.Capture) -> list[dict]:
    out = []
    for c in cap.layers:
        m = {"layer": c.layer, "scaling": c.scaling, "sliding_window": c.sliding_window, "softcap": c.softcap,
             "max_abs_scaled_qk": round(max_scaled_qk(c), 6)}
        if c.alibi_slopes is not None:
            m["alibi_slopes"] = c.alibi_slopes
        out.append(m)
    return out


def qk_tensors(cap: capture.Capture, layers: list[int]) -> dict[str, torch.Tensor]:
    """q.{l} [h,t,d], k.{l} [h_kv,t,d], attn.{l} [h,t,t] for the given layers."""
    out = {}
    for l in layers:
        c = cap.layers[l]
        out[f"q.{l}"] = c.q
        out[f"k.{l}"] = c.k
        out[f"attn.{l}"] = c.probs
    return out


def check_patterns(cap: capture.Capture) -> float:
    """Every layer's pattern must follow from (q, k, scaling, window, softcap)."""
    return max(capture.check_against_dot_product(c) for c in cap.layers)


COMMON_NOTES = [
    "q.{l}/k.{l} are the query/key exactly as they enter the attention dot product "
    "(after projection biases, QK-norm and rotary), batch dim dropped.",
    "k.{l} has one row block per KV head (not repeated); query head h reads KV head "
    "h // (n_heads / n_kv_heads) (transformers repeat_kv = repeat_interleave).",
    "attn.{l} [h,t,t] is the softmax output of transformers' eager path "
    "(0 outside the causal/sliding support).",
    "config.json carries both transformers-5 `rope_parameters` and the legacy top-level "
    "`rope_theta` (+ `rope_scaling`, gpt_neox `rotary_pct`/`rotary_emb_base`), same values.",
    "logit of key j for query i = softcap(scaling * q_i . k_j) if softcap else scaling * q_i . k_j; "
    "support: j <= i, and j > i - sliding_window when sliding_window is set.",
]


# --------------------------------------------------------------------------
# a. the tiny shared tokenizer
# --------------------------------------------------------------------------

def build_tiny_tokenizer():
    """Byte-level BPE, vocab 384, trained on the first 200 KB of tinyshakespeare."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    text = SHAKESPEARE.read_text(encoding="utf-8")[:200_000]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=["<|endoftext|>", "<s>"],  # ids 0 and 1
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    # one "sentence" per line keeps training deterministic and quick
    tok.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
    assert tok.get_vocab_size() == 384, tok.get_vocab_size()
    assert tok.token_to_id("<|endoftext|>") == 0 and tok.token_to_id("<s>") == 1
    TINY.mkdir(parents=True, exist_ok=True)
    tok.save(str(TINY / "tokenizer.json"))
    return tok


def family_tokenizer(base_path: Path, add_bos: bool):
    """The shared tokenizer, with a BOS-adding post-processor when the family adds BOS."""
    from tokenizers import Tokenizer, processors

    tok = Tokenizer.from_file(str(base_path))
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


# --------------------------------------------------------------------------
# b/c. tiny random models, one per family
# --------------------------------------------------------------------------

# Common sizes: hidden 64, 2 layers, 4 heads of dim 16, MLP 64, max positions 64,
# a large initializer range so attention is far from uniform.  The MLP is 64
# (not 128) and embeddings are tied (except tiny/llama) to keep each model
# directory around 300 KB: the MLP does not matter for the attention fixtures.
BASE = dict(
    vocab_size=384,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    intermediate_size=64,
    max_position_embeddings=64,
    initializer_range=0.2,
    tie_word_embeddings=True,
)


def tiny_configs() -> dict[str, tuple[object, bool, list[str]]]:
    """family -> (config, add_bos, notes)."""
    from transformers import (
        Gemma2Config,
        GPT2Config,
        GPTNeoXConfig,
        LlamaConfig,
        MistralConfig,
        Olmo2Config,
        Qwen2Config,
        Qwen3Config,
    )

    bos_eos = dict(bos_token_id=1, eos_token_id=0, pad_token_id=None)  # <s>, <|endoftext|>
    eot = dict(bos_token_id=0, eos_token_id=0, pad_token_id=None)  # <|endoftext|> only
    rope = {"rope_type": "default", "rope_theta": 10000.0}
    cfgs = {}
    cfgs["llama"] = (
        LlamaConfig(**{**BASE, "tie_word_embeddings": False}, rope_parameters=rope, **bos_eos),
        True,
        ["GQA 4 heads / 2 KV heads, rope_theta 10000, UNTIED lm_head (lm_head.weight present)."],
    )
    cfgs["llama3_scaled"] = (
        LlamaConfig(
            **BASE,
            rope_parameters={
                "rope_type": "llama3",
                "rope_theta": 10000.0,
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 32,
            },
            **bos_eos,
        ),
        True,
        [
            "llama3 rope scaling (factor 8, low 1, high 4, original_max_position_embeddings 32): "
            "with head_dim 16 the 8 frequencies fall in all three regimes (kept, smoothed, divided).",
            "tied embeddings (no lm_head.weight).",
        ],
    )
    cfgs["mistral"] = (
        MistralConfig(**BASE, rope_parameters=rope, sliding_window=8, **bos_eos),
        True,
        ["sliding_window 8 on every layer: key j visible to query i iff i-8 < j <= i."],
    )
    cfgs["qwen2"] = (
        Qwen2Config(**BASE, rope_parameters=rope, use_sliding_window=False, sliding_window=None, **eot),
        False,
        ["q/k/v projection biases (randomised, non-zero); no sliding window."],
    )
    cfgs["qwen3"] = (
        Qwen3Config(**BASE, rope_parameters=rope, use_sliding_window=False, sliding_window=None, **eot),
        False,
        ["QK-norm: RMSNorm over each head's head_dim (q_norm/k_norm weight [16]) before rotary."],
    )
    cfgs["olmo2"] = (
        Olmo2Config(**BASE, rope_parameters=rope, **eot),
        False,
        ["QK-norm over the FULL projection (q_norm weight [64], k_norm weight [32]) before the "
         "head split and rotary; post-norm blocks (post_attention_layernorm, post_feedforward_layernorm)."],
    )
    cfgs["gemma2"] = (
        Gemma2Config(
            **BASE,
            rope_parameters=rope,
            hidden_activation="gelu_pytorch_tanh",
            query_pre_attn_scalar=32,
            attn_logit_softcapping=5.0,
            final_logit_softcapping=10.0,
            sliding_window=8,
            layer_types=["sliding_attention", "full_attention"],
            **bos_eos,
        ),
        True,
        [
            "scaling = query_pre_attn_scalar**-0.5 = 32**-0.5 (not head_dim**-0.5).",
            "attention logit soft-cap 5.0 (applied before the mask), final logit soft-cap 10.0 "
            "(logits in reference are after it).",
            "layer 0 sliding window 8, layer 1 full attention; GeGLU (gelu_pytorch_tanh) MLP; "
            "RMSNorm weights used as (1 + w); embeddings scaled by sqrt(hidden).",
        ],
    )
    cfgs["gpt2"] = (
        GPT2Config(
            vocab_size=384, n_embd=64, n_layer=2, n_head=4, n_inner=64, n_positions=64,
            initializer_range=0.2, **eot,
        ),
        False,
        ["Conv1D weights stored [in, out]; fused c_attn (q|k|v along out); learned positions wpe; "
         "tied head; LayerNorm with bias; gelu_new."],
    )
    cfgs["gpt_neox"] = (
        GPTNeoXConfig(
            vocab_size=384, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=64, initializer_range=0.2,
            rotary_pct=0.25, rotary_emb_base=10000, use_parallel_residual=True,
            tie_word_embeddings=True, **eot,
        ),
        False,
        ["partial rotary: only the first 4 of 16 dims per head are rotated (rotary_pct 0.25);",
         "fused query_key_value, interleaved PER HEAD as [h0: q k v][h1: q k v]...; "
         "parallel residual; embed_out TIED to embed_in here (real Pythia unties it)."],
    )
    cfgs.update(new_family_configs(bos_eos, eot))
    for _name, (cfg, _bos, _notes) in cfgs.items():
        cfg.dtype = "float32"
    return cfgs


# The five families added last (Gemma 3, Phi-3, StableLM 2, BLOOM, MPT).  Kept smaller than BASE where the family
# allows it (the fixtures directory has a size budget).
GEMMA3_SIZES = dict(
    vocab_size=384, hidden_size=32, num_hidden_layers=6, num_attention_heads=2, num_key_value_heads=1,
    head_dim=16, intermediate_size=32, max_position_embeddings=64, initializer_range=0.2,
    tie_word_embeddings=True,
)


# Phi-3 and StableLM: hidden 32, 2 heads x 16 sharing 1 KV head, MLP 32, tied.
SMALL = dict(
    vocab_size=384, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
    head_dim=16, intermediate_size=32, max_position_embeddings=64, initializer_range=0.2,
    tie_word_embeddings=True,
)


def new_family_configs(bos_eos: dict, eot: dict) -> dict:
    from transformers import BloomConfig, Gemma3TextConfig, MptConfig, Phi3Config, StableLmConfig

    cfgs = {}
    cfgs["gemma3"] = (
        Gemma3TextConfig(
            **GEMMA3_SIZES,
            hidden_activation="gelu_pytorch_tanh",
            query_pre_attn_scalar=24,
            sliding_window=8,
            rope_parameters={
                "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
            },
            **bos_eos,
        ),
        True,
        [
            "gemma3_text: 6 layers, the default pattern (layer_types): layers 0-4 sliding (window 8, "
            "rope base 10000), layer 5 full attention (rope base 1e6).",
            "RMSNorm on q and k per head with (1 + w), like every Gemma norm; sandwich norms; GeGLU.",
            "scaling = query_pre_attn_scalar**-0.5 = 24**-0.5; embeddings scaled by sqrt(hidden).",
            "tiny/gemma3_gguf holds the same weights as GGUF (written with the gguf package).",
        ],
    )
    cfgs["phi3"] = (
        Phi3Config(
            **SMALL, rope_parameters=rope_default(), sliding_window=8,
            bos_token_id=1, eos_token_id=0, pad_token_id=None,
        ),
        False,
        ["fused qkv_proj ([q | k | v] rows) and gate_up_proj ([gate | up] rows); GQA 2/1; "
         "sliding_window 8 on every layer (transformers' Phi3 masks with it)."],
    )
    cfgs["stablelm"] = (
        StableLmConfig(
            **{k: v for k, v in SMALL.items() if k not in ("head_dim", "tie_word_embeddings")},
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
            use_qkv_bias=True, tie_word_embeddings=True, **eot,
        ),
        False,
        ["partial rotary (0.25: 4 of 16 dims per head); LayerNorm with bias; q/k/v biases; GQA 2/1."],
    )
    cfgs["bloom"] = (
        BloomConfig(vocab_size=384, hidden_size=24, n_layer=2, n_head=3, initializer_range=0.2, **eot),
        False,
        ["ALiBi, 3 heads of 8 (not a power of two: the extra-slope branch); fused query_key_value "
         "interleaved per head [h0: q k v][h1: q k v]...; LayerNorm on the word embeddings; tied head."],
    )
    cfgs["mpt"] = (
        MptConfig(
            d_model=24, n_heads=3, n_layers=2, expansion_ratio=4, max_seq_len=64, vocab_size=384,
            initializer_range=0.2, attn_config={"alibi_bias_max": 8}, **eot,
        ),
        False,
        ["ALiBi, 3 heads of 8 (not a power of two: MPT's odd-then-even slope order); fused Wqkv "
         "([q | k | v] rows); bias-free LayerNorm and linears; tied head."],
    )
    return cfgs


def rope_default() -> dict:
    return {"rope_type": "default", "rope_theta": 10000.0}


def randomise_vectors(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Perturb every 1-D parameter (norm weights, biases) by N(0, 0.2).

    The default init sets them to exactly 1 or 0, which would hide a
    missing norm weight, a (1 + w) convention or a forgotten bias.
    """
    with torch.no_grad():
        for _name, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(0.2 * torch.randn(p.shape, generator=gen))


def add_legacy_rope_keys(config_path: Path) -> None:
    """Also write the transformers-4 spellings of the rotary settings.

    transformers 5 saves them only as `rope_parameters`; configs on the hub
    (and most in the wild) use top-level `rope_theta`, `rope_scaling`, and for
    GPT-NeoX `rotary_pct` / `rotary_emb_base`.  Writing both (same values)
    lets the Rust loader be tested on the spelling real checkpoints use;
    verify_tiny() checks that transformers still loads the directory to
    identical logits.
    """
    cfg = json.loads(config_path.read_text())
    rp = cfg.get("rope_parameters")
    if not rp or "rope_theta" not in rp:  # none, or per layer type (Gemma 3)
        return
    cfg["rope_theta"] = rp["rope_theta"]
    if rp.get("rope_type", "default") != "default":
        cfg["rope_scaling"] = {k: v for k, v in rp.items() if k != "rope_theta"}
    if cfg["model_type"] == "gpt_neox":
        cfg["rotary_pct"] = rp.get("partial_rotary_factor", 1.0)
        cfg["rotary_emb_base"] = rp["rope_theta"]
    config_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def tokenizer_config(add_bos: bool, family: str) -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": add_bos,
        "add_eos_token": False,
        "bos_token": "<s>" if add_bos else "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": None,
        "model_max_length": 64,
        "clean_up_tokenization_spaces": False,
        "comment": f"random test tokenizer for the tiny {family} fixture; BOS added: {add_bos}",
    }


def make_tiny(family: str, cfg, add_bos: bool, notes: list[str], index: int) -> dict:
    from transformers import AutoModelForCausalLM

    out = TINY / family
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    torch.manual_seed(SEED + index)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    gen = torch.Generator().manual_seed(SEED + 100 + index)
    randomise_vectors(model, gen)
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    # drop generation_config.json: not needed by the fixtures
    (out / "generation_config.json").unlink(missing_ok=True)
    add_legacy_rope_keys(out / "config.json")

    tok = family_tokenizer(TINY / "tokenizer.json", add_bos)
    tok.save(str(out / "tokenizer.json"))
    write_json(out / "tokenizer_config.json", tokenizer_config(add_bos, family))

    ids = tok.encode(TINY_TEXT).ids
    cap = capture.run_capture(model, ids)
    err = check_patterns(cap)

    # the capture implementation must not change the model: compare with plain eager
    model.set_attn_implementation("eager")
    with torch.no_grad():
        eager_logits = model(input_ids=cap.token_ids[None], use_cache=False).logits[0]
    assert torch.equal(eager_logits, cap.logits), f"{family}: capture changed the logits"

    n_layers = len(cap.layers)
    tensors = {"token_ids": cap.token_ids, "logits": cap.logits}
    tensors.update(qk_tensors(cap, list(range(n_layers))))
    tensor_meta = save_tensors(out / "reference.safetensors", tensors)

    tc = cfg.get_text_config()
    meta = {
        "model": f"tiny/{family}",
        "random_test_model": True,
        "model_type": cfg.model_type,
        **versions(),
        "text": TINY_TEXT,
        "add_bos": add_bos,
        "token_ids": cap.token_ids.tolist(),
        "n_tokens": len(ids),
        "n_layers": n_layers,
        "n_heads": cap.layers[0].q.shape[0],
        "n_kv_heads": cap.layers[0].k.shape[0],
        "head_dim": cap.layers[0].q.shape[2],
        "vocab_size": tc.vocab_size,
        "layers": layer_meta(cap),
        "final_logit_softcap": getattr(tc, "final_logit_softcapping", None),
        "captured_layers": list(range(n_layers)),
        "tensors": tensor_meta,
        "pattern_recompute_max_abs_err": err,
        "notes": notes + COMMON_NOTES,
    }
    write_json(out / "reference.json", meta)
    log(f"  tiny/{family}: t={len(ids)} layers={[ (m['sliding_window'], m['softcap']) for m in meta['layers']]}")
    return meta


def make_gemma3_gguf() -> dict:
    """tiny/gemma3 written as GGUF (architecture `gemma3`) with the `gguf`
    package, the way llama.cpp's convert_hf_to_gguf.py writes Gemma 3: the
    tensor names of gguf's own name map, every `*norm.weight` stored as
    (1 + w), f32 tensors, the tiny BPE tokenizer as `gpt2` tokens + merges.

    Checked against transformers: it loads this GGUF itself (its Gemma 3
    GGUF support subtracts the 1 again); its forward pass is stored as this
    fixture's reference. transformers' GGUF config reads no
    `query_pre_attn_scalar` (default 256) and no layer pattern (default 6),
    so its scale differs from tiny/gemma3's (1/16 against 24**-0.5): layer
    0's q and k equal tiny/gemma3's, later layers and the logits do not.
    """
    import gguf
    from safetensors.torch import load_file

    src = TINY / "gemma3"
    out = TINY / "gemma3_gguf"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cfg = json.loads((src / "config.json").read_text())
    weights = load_file(str(src / "model.safetensors"))
    n_layers = cfg["num_hidden_layers"]
    path = out / "model.gguf"
    w = gguf.GGUFWriter(str(path), "gemma3")
    w.add_name("tiny random gemma3 (attnscope test fixture)")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(n_layers)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg["rope_parameters"]["full_attention"]["rope_theta"])
    w.add_sliding_window(cfg["sliding_window"])
    # tokenizer: the tiny byte-level BPE, as llama.cpp writes a gpt2-type vocabulary
    tj = json.loads((src / "tokenizer.json").read_text())
    vocab = tj["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    assert [vocab[t] for t in tokens] == list(range(len(tokens)))
    special = {a["content"] for a in tj.get("added_tokens", []) if a.get("special")}
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, n_layers)
    for hf, t in weights.items():
        base = hf.removesuffix(".weight")
        g = names.get_name(base)
        assert g is not None, hf
        data = t.float()
        if hf.endswith("norm.weight"):
            data = data + 1  # llama.cpp stores Gemma norms as (1 + w)
        w.add_tensor(g + ".weight", data.numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    model = load_gguf_model(out, "model.gguf")
    ref = load_file(str(src / "reference.safetensors"))
    ids = ref["token_ids"].tolist()
    cap = capture.run_capture(model, ids)
    err = check_patterns(cap)
    # layer 0 sees only the embeddings: its q, k must equal tiny/gemma3's
    dq = float((cap.layers[0].q - ref["q.0"]).abs().max())
    dk = float((cap.layers[0].k - ref["k.0"]).abs().max())
    assert dq < 1e-5 and dk < 1e-5, (dq, dk)
    layers = [0, n_layers - 1]
    tensors = {"token_ids": cap.token_ids, "logits": cap.logits}
    tensors.update(qk_tensors(cap, layers))
    tensor_meta = save_tensors(out / "reference.safetensors", tensors)
    tc = model.config
    meta = {
        "model": "tiny/gemma3_gguf/model.gguf",
        "random_test_model": True,
        "model_type": tc.model_type,
        **versions(),
        "text": TINY_TEXT,
        "add_bos": True,
        "token_ids": ids,
        "n_tokens": len(ids),
        "n_layers": n_layers,
        "n_heads": cap.layers[0].q.shape[0],
        "n_kv_heads": cap.layers[0].k.shape[0],
        "head_dim": cap.layers[0].q.shape[2],
        "vocab_size": tc.vocab_size,
        "layers": layer_meta(cap),
        "final_logit_softcap": None,
        "captured_layers": layers,
        "tensors": tensor_meta,
        "pattern_recompute_max_abs_err": err,
        "layer0_max_abs_diff_q_vs_tiny_gemma3": dq,
        "layer0_max_abs_diff_k_vs_tiny_gemma3": dk,
        "notes": [
            "weights: the tiny/gemma3 safetensors written as GGUF (gguf package), norms stored as 1 + w; "
            "reference: transformers loading this GGUF (AutoModelForCausalLM, gguf_file=).",
            "transformers' GGUF config has no query_pre_attn_scalar (default 256, so scaling 1/16 here "
            "vs 24**-0.5 in tiny/gemma3) and derives layer_types from the default pattern 6; layer 0's "
            "q/k equal tiny/gemma3's (layer0_max_abs_diff_*), later layers differ through the scale.",
            "token ids: the tiny tokenizer (from tiny/gemma3/tokenizer.json); transformers' Gemma GGUF "
            "tokenizer converter reads SentencePiece vocabularies only, so it is not used here.",
        ] + COMMON_NOTES,
    }
    write_json(out / "reference.json", meta)
    log(f"  tiny/gemma3_gguf: layer 0 |dq| {dq:.1e} |dk| {dk:.1e} vs tiny/gemma3, attn recompute err {err:.1e}, "
        f"{path.stat().st_size / 1024:.0f} KB")
    return meta


def make_gemma3_multimodal() -> dict:
    """tiny/gemma3's decoder inside a multimodal `gemma3` checkpoint
    (Gemma3ForConditionalGeneration: `text_config`, a 1-layer SigLIP vision
    tower, the decoder under `language_model.model.*` as save_pretrained
    writes it), stored in bfloat16 to keep it small (attnscope reads BF16
    as f32, as transformers does with dtype=float32). Reference:
    transformers re-loading the directory cold, text only.
    """
    from safetensors.torch import load_file
    from transformers import (AutoModelForImageTextToText, Gemma3Config, Gemma3ForConditionalGeneration,
                              Gemma3TextConfig, SiglipVisionConfig)

    src = TINY / "gemma3"
    out = TINY / "gemma3_multimodal"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tc = json.loads((src / "config.json").read_text())
    drop = ("architectures", "transformers_version", "model_type", "_sliding_window_pattern", "dtype")
    text = Gemma3TextConfig(**{k: v for k, v in tc.items() if k not in drop})
    vision = SiglipVisionConfig(hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=1,
                                image_size=28, patch_size=14)
    cfg = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                       boi_token_index=2, eoi_token_index=3, image_token_index=4)
    torch.manual_seed(SEED + 200)
    model = Gemma3ForConditionalGeneration(cfg).eval()
    weights = load_file(str(src / "model.safetensors"))
    lm = model.model.language_model
    missing, unexpected = lm.load_state_dict({k.removeprefix("model."): v for k, v in weights.items()}, strict=False)
    assert not unexpected and all("embed_scale" in k for k in missing), (missing, unexpected)
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    (out / "generation_config.json").unlink(missing_ok=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(src / f, out / f)

    capture.register()
    model = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32,
                                                        attn_implementation=capture.CAPTURE_IMPL).eval()
    ref = load_file(str(src / "reference.safetensors"))
    ids = ref["token_ids"].tolist()
    cap = capture.run_capture(model, ids)
    err = check_patterns(cap)
    n_layers = len(cap.layers)
    layers = [0, n_layers - 1]
    tensors = {"token_ids": cap.token_ids, "logits": cap.logits}
    tensors.update({k: v for k, v in qk_tensors(cap, layers).items() if not k.startswith("attn.")})
    tensor_meta = save_tensors(out / "reference.safetensors", tensors)
    dlogits = float((cap.logits - ref["logits"]).abs().max())
    meta = {
        "model": "tiny/gemma3_multimodal",
        "random_test_model": True,
        "model_type": "gemma3",
        **versions(),
        "text": TINY_TEXT,
        "add_bos": True,
        "token_ids": ids,
        "n_tokens": len(ids),
        "n_layers": n_layers,
        "n_heads": cap.layers[0].q.shape[0],
        "n_kv_heads": cap.layers[0].k.shape[0],
        "head_dim": cap.layers[0].q.shape[2],
        "vocab_size": text.vocab_size,
        "layers": layer_meta(cap),
        "final_logit_softcap": None,
        "captured_layers": layers,
        "tensors": tensor_meta,
        "pattern_recompute_max_abs_err": err,
        "max_abs_dlogits_vs_tiny_gemma3_f32": dlogits,
        "notes": [
            "tiny/gemma3's decoder weights rounded to bfloat16, inside Gemma3ForConditionalGeneration "
            "(random 1-layer SigLIP tower, unused for text); reference from transformers loading this "
            "directory with dtype float32; text only (no image tokens).",
            "q/k of the first and last layer only; no attn.* tensors (size).",
        ] + COMMON_NOTES,
    }
    write_json(out / "reference.json", meta)
    size = dir_size(out) / 1024
    log(f"  tiny/gemma3_multimodal: t={len(ids)} attn recompute err {err:.1e}, "
        f"max|dlogits| vs f32 tiny/gemma3 {dlogits:.1e} (bf16 rounding), {size:.0f} KB")
    return meta


TINY_README = """# Tiny RANDOM test models — not trained, output is meaningless

Every directory here is a randomly initialised Hugging Face causal LM
(`AutoModelForCausalLM.from_config`, fixed seed, float32) made by
`tools/reference/make_fixtures.py`.  They exist only so that attnscope's
Rust loaders and forward passes can be checked, family by family, against
transformers.  Do not use them for anything else.

- `tokenizer.json`: byte-level BPE, vocab 384 (`<|endoftext|>` = 0, `<s>` = 1),
  trained on the first 200 KB of tinyshakespeare.  Each model directory has a
  copy whose post-processor adds BOS `<s>` exactly when the real family does
  (llama, llama3_scaled, mistral, gemma2, gemma3: yes; qwen2, qwen3, olmo2, gpt2,
  gpt_neox, phi3, stablelm, bloom, mpt: no), and a matching `tokenizer_config.json`.
- sizes: hidden 64, 2 layers, 4 heads × 16 (GQA families: 2 KV heads), MLP 64,
  max positions 64, initializer_range 0.2, tied embeddings except tiny/llama; every 1-D parameter (norm weights,
  biases) is perturbed by N(0, 0.2) so that norms and biases matter.  Smaller, to
  keep the directory small: phi3 and stablelm (hidden 32, 2 heads × 16, 1 KV head,
  MLP 32), gemma3 (the same, 6 layers: 5 sliding + 1 global), bloom and mpt
  (hidden 24, 3 heads × 8: not a power of two, so the ALiBi slopes take their
  extra branch).
- `gemma3_gguf/`: tiny/gemma3's weights as a GGUF file (architecture `gemma3`),
  with its own reference from transformers loading that GGUF.
- `reference.safetensors` / `reference.json`: transformers' eager float32
  forward pass on one line of Shakespeare; see tools/reference/README.md.
"""


# --------------------------------------------------------------------------
# d. stories260K (real model: GGUF weights + llama2.c tokenizer)
# --------------------------------------------------------------------------

def load_gguf_model(directory: Path, gguf_file: str):
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(directory, gguf_file=gguf_file)
    # stories260K.gguf stores pad_token_id = 0xFFFFFFFF (-1 as uint32), which
    # transformers turns into an out-of-range padding index: drop it.
    if cfg.pad_token_id is not None and not (0 <= cfg.pad_token_id < cfg.vocab_size):
        cfg.pad_token_id = None
    capture.register()
    model = AutoModelForCausalLM.from_pretrained(
        directory, gguf_file=gguf_file, config=cfg, dtype=torch.float32, attn_implementation=capture.CAPTURE_IMPL
    )
    model.eval()
    return model


@torch.no_grad()
def greedy(model, prompt_ids: list[int], n_new: int, stop: int | None = None) -> list[int]:
    """Plain greedy decoding with full re-computation (no KV cache)."""
    model.set_attn_implementation("eager")
    ids = list(prompt_ids)
    new = []
    for _ in range(n_new):
        logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
        nxt = int(torch.argmax(logits))
        if stop is not None and nxt == stop:
            break
        ids.append(nxt)
        new.append(nxt)
    model.set_attn_implementation(capture.CAPTURE_IMPL)
    return new


def make_stories() -> dict:
    out = FIXTURES / "stories260K"
    out.mkdir(parents=True, exist_ok=True)
    tok = Llama2cTokenizer(str(STORIES_DIR / "tok512.bin"), vocab_size=512)

    # tokenization cases (BOS added, as run.c does)
    cases = [
        "Once upon a time",
        " leading space",
        "two  spaces and trailing ",
        "line one\nline two\n",
        "Hello, world! (yes?) \"quoted\" -- dash; semi: colon.",
        "In 2024 she was 3.14 years old.",
        "café naïve",
        "smile 🙂 ok",
        "",
    ]
    write_json(
        out / "tokenization.json",
        [{"text": s, "ids": tok.encode(s, bos=True)} for s in cases],
    )

    model = load_gguf_model(STORIES_DIR, "stories260K.gguf")
    ids = tok.encode(STORIES_TEXT, bos=True)
    cap = capture.run_capture(model, ids)
    err = check_patterns(cap)
    n_layers = len(cap.layers)
    tensors = {"token_ids": cap.token_ids, "logits": cap.logits}
    tensors.update(qk_tensors(cap, list(range(n_layers))))
    tensor_meta = save_tensors(out / "reference.safetensors", tensors)
    meta = {
        "model": "stories260K.gguf",
        "model_type": model.config.model_type,
        **versions(),
        "text": STORIES_TEXT,
        "add_bos": True,
        "tokenizer": "llama2.c run.c encode port (tools/reference/llama2c_tokenizer.py) on tok512.bin",
        "token_ids": ids,
        "n_tokens": len(ids),
        "n_layers": n_layers,
        "n_heads": cap.layers[0].q.shape[0],
        "n_kv_heads": cap.layers[0].k.shape[0],
        "head_dim": cap.layers[0].q.shape[2],
        "vocab_size": model.config.vocab_size,
        "layers": layer_meta(cap),
        "final_logit_softcap": None,
        "captured_layers": list(range(n_layers)),
        "tensors": tensor_meta,
        "pattern_recompute_max_abs_err": err,
        "notes": [
            "weights: transformers' GGUF loader (un-permutes llama.cpp's Q/K row order), f32.",
            "token ids from the llama2.c tokenizer, NOT from transformers (it cannot read this GGUF's "
            "tokenizer).",
        ] + COMMON_NOTES,
    }
    write_json(out / "reference.json", meta)

    # greedy continuation: run.c with an empty prompt starts from BOS alone
    # and stops when BOS is sampled.
    expected = (STORIES_DIR / "stories260K.md").read_text(encoding="utf-8")
    expected = expected.split("-t 0.0\n", 1)[1].split("```", 1)[0]
    results = {}
    for label, prompt in (("bos_only", [1]), ("once_upon_a_time", tok.encode("Once upon a time", bos=True))):
        gen = greedy(model, prompt, 60, stop=1)
        text = tok.decode(prompt + gen)
        results[label] = {"prompt_ids": prompt, "generated_ids": gen, "text": text,
                          "matches_stories260K_md": expected.startswith(text)}
        log(f"  stories260K greedy {label}: match={results[label]['matches_stories260K_md']} {text[:80]!r}")
    # the whole published sample: run.c's default 256 steps from BOS
    full = tok.decode([1] + greedy(model, [1], 256, stop=1))
    full_match = full.strip() == expected.strip()
    log(f"  stories260K greedy 256 steps from BOS reproduces the whole stories260K.md sample: {full_match}")
    best = "bos_only" if results["bos_only"]["matches_stories260K_md"] else "once_upon_a_time"
    greedy_json = dict(results[best])
    greedy_json["prompt"] = "" if best == "bos_only" else "Once upon a time"
    greedy_json["full_256_step_sample_matches_stories260K_md"] = full_match
    greedy_json["notes"] = [
        "greedy argmax, no KV cache, f32; like run.c -t 0.0 (stops on BOS, none within 60 tokens).",
        "text = run.c decode of prompt+generated (space after BOS stripped, <0xXX> -> byte).",
        f"other prompt: {'once_upon_a_time' if best == 'bos_only' else 'bos_only'} "
        f"matches={results['once_upon_a_time' if best == 'bos_only' else 'bos_only']['matches_stories260K_md']}",
        "reference: the greedy sample in stories260K.md ($ ./run stories260K.bin -z tok512.bin -t 0.0).",
    ]
    write_json(out / "greedy.json", greedy_json)
    meta["greedy"] = {k: v["matches_stories260K_md"] for k, v in results.items()}
    meta["greedy"]["full_256_steps"] = full_match
    return meta


# --------------------------------------------------------------------------
# e. SmolLM2-135M-Instruct Q4_1 (real model, GGUF weights and tokenizer)
# --------------------------------------------------------------------------

def smollm2_real_pretokenizer(hf_tok):
    """A copy of transformers' GGUF tokenizer with the pre-tokenizer of the
    real SmolLM2 tokenizer.json: Sequence[Digits(individual), ByteLevel]."""
    from tokenizers import Tokenizer, pre_tokenizers

    t = Tokenizer.from_str(hf_tok.backend_tokenizer.to_str())
    t.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)]
    )
    return t


def make_smollm2() -> dict:
    from transformers import AutoTokenizer

    out = FIXTURES / "smollm2"
    out.mkdir(parents=True, exist_ok=True)
    gguf = SMOLLM2_DIR / SMOLLM2_GGUF
    if not gguf.exists():
        raise FileNotFoundError(f"{gguf} missing (set ATTNSCOPE_MODELS)")
    hf_tok = AutoTokenizer.from_pretrained(SMOLLM2_DIR, gguf_file=SMOLLM2_GGUF)
    real_tok = smollm2_real_pretokenizer(hf_tok)
    pre = hf_tok.backend_tokenizer.pre_tokenizer
    log(f"  smollm2 transformers GGUF pre-tokenizer: {pre}")

    def enc(s: str) -> list[int]:
        return hf_tok(s, add_special_tokens=True)["input_ids"]

    cases = [
        "The capital of France is",
        " leading space",
        "In 2024 and 3.14, about 1000000 people",
        "x12 = a1b2c3 + 007",
        "def f(x):\n    return x**2  # square\n",
        "multiple     spaces\tand\ttabs",
        "line one\n\nline three\r\n",
        "café naïve — 東京 🙂",
        "<|im_start|>user\nHi<|im_end|>",
        "",
        # whitespace runs right before a digit: here the two pre-tokenizers differ
        "Version 3,  29 June",
        "total:\n\n2 items",
        "  0. Definitions.",
    ]
    tok_cases = []
    for s in cases:
        real_ids = real_tok.encode(s).ids
        tf_ids = enc(s)
        case = {"text": s, "ids": real_ids, "ids_transformers_gguf": tf_ids, "agree": real_ids == tf_ids}
        if not case["agree"]:
            case["note"] = (
                "transformers' GGUF converter pre-tokenizes with ByteLevel only (GPT-2 regex, no "
                "Digits split), so a whitespace run before a digit is split differently; `ids` follows "
                "the real SmolLM2 tokenizer (Digits(individual) then ByteLevel, as llama.cpp's 'smollm' pre)."
            )
        tok_cases.append(case)
    write_json(out / "tokenization.json", tok_cases)
    disagreements = [c["text"] for c in tok_cases if not c["agree"]]

    model = load_gguf_model(SMOLLM2_DIR, SMOLLM2_GGUF)
    gpl = GPL3.read_text(encoding="utf-8")
    all_ids = enc(gpl[:2000])
    ids = all_ids[:32]
    text = hf_tok.decode(ids)
    assert enc(text) == ids, "GPL-3 prefix does not round-trip"
    assert real_tok.encode(text).ids == ids, "the two SmolLM2 pre-tokenizers disagree on the reference text"
    # where on the whole GPL-3 text do the two pre-tokenizers first disagree?
    full_tf, full_real = enc(gpl), real_tok.encode(gpl).ids
    first_div = next((i for i, (x, y) in enumerate(zip(full_tf, full_real)) if x != y), None)
    assert gpl.startswith(text)
    cap = capture.run_capture(model, ids)
    err = check_patterns(cap)
    t = len(ids)
    rows = [0, t // 3, (2 * t) // 3, t - 1]
    layers = [0, 14, 29]
    tensors = {
        "token_ids": cap.token_ids,
        "logits_last": cap.logits[-1],
        "logits_argmax": cap.logits.argmax(dim=-1),
        "logits_rows": cap.logits[rows],
    }
    tensors.update(qk_tensors(cap, layers))
    tensor_meta = save_tensors(out / "reference.safetensors", tensors)
    meta = {
        "model": SMOLLM2_GGUF,
        "model_type": model.config.model_type,
        **versions(),
        "text": text,
        "text_source": "the first 32 tokens of /usr/share/common-licenses/GPL-3 (text = that exact prefix)",
        "add_bos": False,
        "token_ids": ids,
        "n_tokens": t,
        "n_layers": len(cap.layers),
        "n_heads": cap.layers[0].q.shape[0],
        "n_kv_heads": cap.layers[0].k.shape[0],
        "head_dim": cap.layers[0].q.shape[2],
        "vocab_size": model.config.vocab_size,
        "layers": layer_meta(cap),
        "final_logit_softcap": None,
        "captured_layers": layers,
        "logits_rows_positions": rows,
        "tensors": tensor_meta,
        "pattern_recompute_max_abs_err": err,
        "tokenizer_pre_tokenizer_transformers": str(pre),
        "tokenizer_disagreements": disagreements,
        "gpl3_tokenizers": {
            "n_tokens_transformers_gguf": len(full_tf),
            "n_tokens_smollm2_pretokenizer": len(full_real),
            "first_divergent_token_index": first_div,
        },
        "notes": [
            "weights: transformers' GGUF loader, Q4_1/Q8_0 dequantized to f32; tied embeddings.",
            "token ids: transformers' GGUF tokenizer (no BOS: add_bos_token = false); identical here to "
            "the real SmolLM2 pre-tokenizer (Digits(individual) + ByteLevel), see tokenization.json.",
            "only layers 0, 14, 29 are captured (q/k/attn); layers lists every layer's settings.",
        ] + COMMON_NOTES,
    }
    write_json(out / "reference.json", meta)

    prompt = "The capital of France is"
    p_ids = enc(prompt)
    gen = greedy(model, p_ids, 12)
    write_json(out / "greedy.json", {
        "prompt": prompt, "prompt_ids": p_ids, "generated_ids": gen,
        "text": hf_tok.decode(gen), "full_text": hf_tok.decode(p_ids + gen),
        "notes": ["greedy argmax (do_sample False), 12 new tokens, no EOS stop, f32 eager, no KV cache."],
    })
    log(f"  smollm2 greedy: {hf_tok.decode(p_ids + gen)!r}")
    meta["greedy_text"] = hf_tok.decode(gen)
    return meta


LONG_T = 300
LONG_VOCAB = 2048


def make_smollm2_long() -> dict:
    """SmolLM2 over 300 tokens: the decoder's attention runs in query chunks
    (128 queries), so only a context longer than a chunk checks that chunks,
    their key ranges and their causal masks are stitched together exactly.

    Kept small: token ids, k.29 [h_kv,t,d], q.29 of head 0 [1,t,d], and the
    logits of a few rows restricted to the first 2048 vocabulary entries
    (every entry depends on the whole final hidden state of its row).
    """
    from transformers import AutoTokenizer

    out = FIXTURES / "smollm2_long"
    out.mkdir(parents=True, exist_ok=True)
    hf_tok = AutoTokenizer.from_pretrained(SMOLLM2_DIR, gguf_file=SMOLLM2_GGUF)
    real_tok = smollm2_real_pretokenizer(hf_tok)
    gpl = GPL3.read_text(encoding="utf-8")
    ids = hf_tok(gpl[:4000], add_special_tokens=True)["input_ids"][:LONG_T]
    text = hf_tok.decode(ids)
    assert gpl.startswith(text)
    assert hf_tok(text, add_special_tokens=True)["input_ids"] == ids, "GPL-3 prefix does not round-trip"
    assert real_tok.encode(text).ids == ids, "the two SmolLM2 pre-tokenizers disagree on the long text"
    model = load_gguf_model(SMOLLM2_DIR, SMOLLM2_GGUF)
    cap = capture.run_capture(model, ids)
    t = len(ids)
    rows = [0, 127, 128, 255, 256, t - 1]
    c = cap.layers[29]
    tensors = {
        "token_ids": cap.token_ids,
        "k.29": c.k,
        "q.29.head0": c.q[0:1],
        "logits_rows_vocab_prefix": cap.logits[rows][:, :LONG_VOCAB],
    }
    tensor_meta = save_tensors(out / "reference.safetensors", tensors)
    meta = {
        "model": SMOLLM2_GGUF,
        "model_type": model.config.model_type,
        **versions(),
        "text": text,
        "text_source": f"the first {t} tokens of /usr/share/common-licenses/GPL-3 (text = that exact prefix)",
        "add_bos": False,
        "token_ids": ids,
        "n_tokens": t,
        "n_layers": len(cap.layers),
        "n_heads": c.q.shape[0],
        "n_kv_heads": c.k.shape[0],
        "head_dim": c.q.shape[2],
        "logits_rows_positions": rows,
        "logits_vocab_prefix": LONG_VOCAB,
        "tensors": tensor_meta,
        "pattern_recompute_max_abs_err": check_patterns(cap),
        "notes": [
            "Checks attention over more than one query chunk of attnscope's decoder (chunks of 128 queries).",
            "q.29.head0 is query head 0 of layer 29; k.29 every KV head of layer 29.",
            "logits_rows_vocab_prefix: rows logits_rows_positions, vocabulary ids 0..2047.",
        ] + COMMON_NOTES,
    }
    write_json(out / "reference.json", meta)
    return meta


# --------------------------------------------------------------------------
# 4. verification
# --------------------------------------------------------------------------

def verify_tiny(family: str) -> dict:
    """Re-load the saved directory cold and compare against reference.safetensors."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = TINY / family
    ref = load_file(str(d / "reference.safetensors"))
    meta = json.loads((d / "reference.json").read_text())
    tok = AutoTokenizer.from_pretrained(d)
    tok_ids = tok(meta["text"])["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        logits = model(input_ids=ref["token_ids"][None], use_cache=False).logits[0]
    size = sum(f.stat().st_size for f in d.iterdir())
    model_size = sum(f.stat().st_size for f in d.iterdir() if not f.name.startswith("reference"))
    return {
        "family": family,
        "t": int(ref["token_ids"].numel()),
        "tok_ok": tok_ids == ref["token_ids"].tolist(),
        "dlogits": float((logits - ref["logits"]).abs().max()),
        "pattern_err": meta["pattern_recompute_max_abs_err"],
        "windows": [l["sliding_window"] for l in meta["layers"]],
        "softcap": meta["layers"][0]["softcap"],
        "scaling": meta["layers"][0]["scaling"],
        "model_kb": model_size / 1024,
        "dir_kb": size / 1024,
    }


def dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="subset: tiny, gemma3_gguf, gemma3_multimodal, stories260K, smollm2, smollm2_long, verify")
    ap.add_argument("--families", nargs="*",
                    help="with --only tiny: remake only these tiny families (the shared tokenizer is kept)")
    args = ap.parse_args()
    want = set(args.only or ["tiny", "stories260K", "smollm2", "smollm2_long", "verify"])
    capture.register()
    np.random.seed(SEED)

    cfgs = tiny_configs()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HERE / "FIXTURES_README.md", FIXTURES / "README.md")
    if "tiny" in want:
        log("tiny tokenizer + models")
        if not args.families:
            build_tiny_tokenizer()
        (TINY / "README.md").write_text(TINY_README)
        for i, (family, (cfg, add_bos, notes)) in enumerate(cfgs.items()):
            if not args.families or family in args.families:
                make_tiny(family, cfg, add_bos, notes, i)
    if "gemma3_multimodal" in want:
        log("gemma3_multimodal")
        make_gemma3_multimodal()
    if "gemma3_gguf" in want:
        log("gemma3_gguf")
        make_gemma3_gguf()
    real = []
    if "stories260K" in want:
        log("stories260K")
        real.append(make_stories())
    if "smollm2" in want:
        log("smollm2")
        m = make_smollm2()
        log(f"  smollm2 tokenizer disagreements: {m['tokenizer_disagreements']}")
        real.append(m)
    if "smollm2_long" in want:
        log("smollm2_long")
        m = make_smollm2_long()
        log(f"  smollm2_long: t={m['n_tokens']} attn recompute err={m['pattern_recompute_max_abs_err']:.1e}")
    ok = True
    for m in real:
        log(f"{m['model']}: t={m['n_tokens']} layers={m['n_layers']} heads={m['n_heads']}/{m['n_kv_heads']} "
            f"d={m['head_dim']} attn recompute err={m['pattern_recompute_max_abs_err']:.1e}"
            + (f" greedy matches stories260K.md: {m['greedy']}" if "greedy" in m else "")
            + (f" greedy: {m['greedy_text']!r}" if "greedy_text" in m else ""))
        if "greedy" in m:
            ok &= all(m["greedy"].values())
    if "verify" in want:
        log("\nverification (tiny models re-loaded from disk with transformers):")
        hdr = f"{'family':14} {'t':>3} {'tok':>4} {'max|dlogit|':>11} {'attn err':>9} {'scaling':>8} {'softcap':>7} {'windows':>12} {'model KB':>8} {'dir KB':>7}"
        log(hdr)
        for family in cfgs:
            r = verify_tiny(family)
            ok &= r["tok_ok"] and r["dlogits"] < 1e-5
            log(f"{r['family']:14} {r['t']:>3} {str(r['tok_ok']):>4} {r['dlogits']:>11.2e} {r['pattern_err']:>9.1e} "
                f"{r['scaling']:>8.4f} {str(r['softcap']):>7} {str(r['windows']):>12} {r['model_kb']:>8.1f} {r['dir_kb']:>7.1f}")
        for sub in ["tiny", "stories260K", "smollm2", "smollm2_long"]:
            p = FIXTURES / sub
            if p.exists():
                log(f"size {sub}: {dir_size(p) / 1024:.1f} KB")
        log(f"size total: {dir_size(FIXTURES) / 1024:.1f} KB")
    if not ok:
        sys.exit("verification FAILED")
    log("done")


if __name__ == "__main__":
    main()
