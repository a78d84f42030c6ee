"""attnscope.torch.capture on tiny random transformers models (made here from a config)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import attnscope  # noqa: E402
from attnscope.torch import capture  # noqa: E402

COMMON = dict(vocab_size=96, max_position_embeddings=64)


def configs():
    from transformers import Gemma2Config, GPT2Config, GPTNeoXConfig, LlamaConfig, Qwen2Config
    return {
        "llama": LlamaConfig(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, rope_theta=10000.0, **COMMON),
        "qwen2": Qwen2Config(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, **COMMON),
        "gpt2": GPT2Config(n_embd=48, n_layer=2, n_head=4, n_positions=64, vocab_size=96,
                           scale_attn_by_inverse_layer_idx=True),
        "gpt_neox": GPTNeoXConfig(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                                  rotary_pct=0.5, **COMMON),
        "gemma2": Gemma2Config(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                               num_key_value_heads=2, head_dim=12, sliding_window=8, attn_logit_softcapping=20.0,
                               query_pre_attn_scalar=12, **COMMON),
    }


FAMILIES = ["llama", "qwen2", "gpt2", "gpt_neox", "gemma2"]
N = 24


def make(family, impl="default", rust_compatible=False):
    """impl: "default" (sdpa, or eager where the family has no sdpa: Gemma 2) or "eager".
    rust_compatible: GPT-2 without scale_attn_by_inverse_layer_idx (the Rust decoder refuses it)."""
    torch.manual_seed(0)
    cfg = configs()[family]
    if rust_compatible and family == "gpt2":
        cfg.scale_attn_by_inverse_layer_idx = False
    kw = {} if impl == "default" else {"attn_implementation": impl}
    model = transformers.AutoModelForCausalLM.from_config(cfg, **kw).eval()
    with torch.no_grad():  # random biases too, so that "after biases" is tested
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)
    ids = torch.randint(0, 96, (1, N), generator=torch.Generator().manual_seed(1))
    return model, ids


@pytest.mark.parametrize("impl", ["default", "eager"])
@pytest.mark.parametrize("family", FAMILIES)
def test_logits_unchanged_and_every_layer_captured(family, impl):
    model, ids = make(family, impl)
    impl = model.config._attn_implementation
    assert impl in ("sdpa", "eager")
    with torch.no_grad():
        before = model(ids, use_cache=False).logits
        with capture(model) as cap:
            during = model(ids, use_cache=False).logits
        after = model(ids, use_cache=False).logits
    assert (during - before).abs().max().item() <= 1e-5
    assert torch.equal(before, after), "the model's attention implementation is restored"
    assert model.config._attn_implementation == impl
    assert sorted(cap.layers) == [0, 1]
    for c in cap.layers.values():
        assert c.mask_ok
        assert c.w_q is not None and c.w_q.shape[0] == c.q.shape[0] and c.w_k.shape[0] == c.k.shape[0]
    t = cap.analyze()
    heads = model.config.num_attention_heads
    assert t.num_rows == 2 * heads
    assert t.column_names[:3] == ["layer", "head", "kv_head"]
    assert all(v is not None for v in t.column("k90_learned").to_pylist())
    if family == "gemma2":
        assert cap.layers[0].softcap == 20.0 and cap.layers[0].window == 8 and cap.layers[1].window is None
        assert set(t.column("logit_transform").to_pylist()) == {"softcap"}


@pytest.mark.parametrize("family", FAMILIES)
def test_captured_qk_reproduce_the_models_own_attention(family):
    """softmax over C_i of softcap(scale·q·k) from the capture = the model's eager probabilities."""
    model, ids = make(family, "eager")
    with torch.no_grad(), capture(model) as cap:
        out = model(ids, use_cache=False, output_attentions=True)
    for layer, probs in enumerate(out.attentions):
        c = cap.layers[layer]
        group = c.q.shape[0] // c.k.shape[0]
        k = np.repeat(c.k.astype(np.float64), group, axis=0)
        s = c.scale * np.einsum("hid,hjd->hij", c.q.astype(np.float64), k)
        if c.softcap is not None:
            s = c.softcap * np.tanh(s / c.softcap)
        i, j = np.arange(N)[:, None], np.arange(N)[None, :]
        sup = j <= i
        if c.window is not None:
            sup &= j > i - c.window
        s = np.where(sup, s, -np.inf)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        assert np.abs(p - probs[0].double().numpy()).max() < 1e-5, f"{family} layer {layer}"


# the Rust decoder's families among these (all five)
@pytest.mark.parametrize("family", FAMILIES)
def test_qk_equal_the_rust_decoder(family, tmp_path):
    model, ids = make(family, rust_compatible=True)
    model.save_pretrained(tmp_path)
    with torch.no_grad(), capture(model) as cap:
        model(ids, use_cache=False)
    rust = attnscope.capture_rust(str(tmp_path), ids[0].tolist())
    assert len(rust) == len(cap.layers)
    for r in rust:
        c = cap.layers[r["layer"]]
        for key in ["q", "k", "w_q", "w_k"]:
            a, b = getattr(c, key), r[key]
            assert a.shape == b.shape, (family, key)
            err = np.abs(a - b).max() / (np.abs(b).max() + 1e-30)
            assert err < 1e-5, (family, r["layer"], key, err)
        assert c.scale == pytest.approx(r["scale"], rel=1e-12)
        assert c.softcap == r["softcap"]
        assert c.window == (None if r["window"] is None or r["window"] >= N else r["window"])


def test_without_the_mask_function_attention_turns_bidirectional():
    """The pitfall the capture handles: no mask function under the name -> no mask."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
    model, ids = make("llama", "eager")
    with torch.no_grad():
        before = model(ids, use_cache=False).logits
        with capture(model) as cap:
            name = model.config._attn_implementation
            saved = ALL_MASK_ATTENTION_FUNCTIONS._global_mapping.pop(name)
            try:
                broken = model(ids, use_cache=False).logits
            finally:
                ALL_MASK_ATTENTION_FUNCTIONS._global_mapping[name] = saved
    assert (broken - before).abs().max().item() > 1e-3
    assert not all(c.mask_ok for c in cap.layers.values())
    with pytest.raises(RuntimeError, match="causal"):
        cap.analyze()
