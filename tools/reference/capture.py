"""Capture the exact attention inputs of a Hugging Face causal LM.

attnscope's Rust forward passes are checked against this independent
reference.  For every attention layer we record the query and key tensors
*exactly as they enter the attention dot product* -- after projection biases,
QK-norm and (full or partial) rotary embedding -- together with the logit
scale, the sliding window and the logit soft-cap the model applies, the
attention probabilities the model's own softmax produced, and the final
logits.

How: transformers (>= 4.48, and all of 5.x) routes every modern decoder's
attention through ``ALL_ATTENTION_FUNCTIONS``.  We register an attention
implementation named ``"capture"`` that records its arguments and then calls
the model family's own ``eager_attention_forward`` (so the numerics are those
of ``attn_implementation="eager"``).  Because the implementation has a custom
name we also register the eager mask builder under the same name, otherwise
transformers would build no mask at all for an unknown implementation.

The keys are recorded per KV head, *before* ``repeat_kv`` (GQA/MQA expansion).
GPT-2 and GPT-NeoX use the same interface in transformers 5 (checked by
``check_capture_covers_all_layers``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

CAPTURE_IMPL = "capture"


@dataclass
class LayerCapture:
    """What one attention layer fed into its dot product (batch index 0)."""

    layer: int
    q: torch.Tensor  # [n_heads, t, head_dim]
    k: torch.Tensor  # [n_kv_heads, t, head_dim]  (NOT repeated for GQA)
    probs: torch.Tensor  # [n_heads, t, t] softmax output of the model's eager path
    scaling: float
    sliding_window: int | None
    softcap: float | None
    # ALiBi slope per query head (bias -m_h (i - j)), BLOOM / MPT only
    alibi_slopes: list[float] | None = None


@dataclass
class Recorder:
    """Collects LayerCapture objects while it is the active recorder."""

    layers: dict[int, LayerCapture] = field(default_factory=dict)


_ACTIVE: Recorder | None = None


def _family_eager(module: torch.nn.Module):
    """The family's own eager attention function (defined next to its module)."""
    mod = sys.modules[type(module).__module__]
    fn = getattr(mod, "eager_attention_forward", None)
    if fn is None:
        raise RuntimeError(f"{type(module).__module__} has no eager_attention_forward")
    return fn


def _capture_attention(module, query, key, value, attention_mask, **kwargs):
    """Attention function registered as "capture": record, then run eager."""
    out, weights = _family_eager(module)(module, query, key, value, attention_mask, **kwargs)
    if _ACTIVE is not None:
        layer = int(module.layer_idx)
        if layer in _ACTIVE.layers:
            raise RuntimeError(f"layer {layer} captured twice in one forward pass")
        # The scale actually used: eager functions fall back to head_dim**-0.5 when
        # scaling is None (only GPT-2 passes it explicitly anyway).
        scaling = kwargs.get("scaling")
        if scaling is None:
            scaling = query.shape[-1] ** -0.5
        sliding_window = kwargs.get("sliding_window")
        softcap = kwargs.get("softcap")
        _ACTIVE.layers[layer] = LayerCapture(
            layer=layer,
            q=query[0].detach().float().clone(),
            k=key[0].detach().float().clone(),
            probs=weights[0].detach().float().clone(),
            scaling=float(scaling),
            sliding_window=None if sliding_window is None else int(sliding_window),
            softcap=None if softcap is None else float(softcap),
        )
    return out, weights


def register() -> None:
    """Register the "capture" attention implementation (idempotent)."""
    AttentionInterface.register(CAPTURE_IMPL, _capture_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(CAPTURE_IMPL, eager_mask)


@dataclass
class Capture:
    token_ids: torch.Tensor  # int64 [t]
    logits: torch.Tensor  # f32 [t, vocab]
    layers: list[LayerCapture]


def _alibi_hooks(model, rec: Recorder) -> list:
    """BLOOM and MPT compute attention inside their own modules (no
    attention interface): a forward hook on each attention module recomputes
    q and k with the module's own fused projection and split, and takes the
    probabilities the module returned (run with output_attentions=True)."""
    mt = model.config.model_type
    if mt == "bloom":
        from transformers.models.bloom.modeling_bloom import _get_alibi_slopes

        blocks = model.transformer.h
        slopes = _get_alibi_slopes(model.config.n_head, torch.device("cpu")).tolist()

        def qk(attn, x):
            q, k, _v = attn._reshape(attn.query_key_value(x))  # [b, h, t, d] each
            return q[0], k[0], attn.inv_norm_factor

        modules = [b.self_attention for b in blocks]
    elif mt == "mpt":
        from transformers.models.mpt.modeling_mpt import build_mpt_alibi_tensor

        cfg = model.config
        t = 2  # slopes are the bias difference between two adjacent keys
        bias = build_mpt_alibi_tensor(cfg.n_heads, t, cfg.attn_config.alibi_bias_max)
        slopes = (bias[:, 0, 1] - bias[:, 0, 0]).tolist()

        def qk(attn, x):
            q, k, _v = attn.Wqkv(x).chunk(3, dim=2)
            b, t, _ = x.shape
            q = q.reshape(b, t, attn.n_heads, attn.head_dim).transpose(1, 2)
            k = k.reshape(b, t, attn.n_heads, attn.head_dim).transpose(1, 2)
            return q[0], k[0], attn.softmax_scale

        modules = [b.attn for b in model.transformer.blocks]
    else:
        return []
    handles = []
    for layer, m in enumerate(modules):
        def hook(mod, args, kwargs, out, layer=layer):
            x = args[0] if args else kwargs["hidden_states"]
            q, k, scaling = qk(mod, x)
            rec.layers[layer] = LayerCapture(
                layer=layer, q=q.detach().float().clone(), k=k.detach().float().clone(),
                probs=out[1][0].detach().float().clone(), scaling=float(scaling),
                sliding_window=None, softcap=None, alibi_slopes=[float(v) for v in slopes],
            )
        handles.append(m.register_forward_hook(hook, with_kwargs=True))
    return handles


@torch.no_grad()
def run_capture(model, token_ids: list[int] | torch.Tensor) -> Capture:
    """One forward pass of ``model`` (loaded with attn_implementation="capture")."""
    global _ACTIVE
    register()
    alibi = model.config.model_type in ("bloom", "mpt")
    if not alibi and model.config._attn_implementation != CAPTURE_IMPL:
        model.set_attn_implementation(CAPTURE_IMPL)
    ids = torch.as_tensor(token_ids, dtype=torch.long).reshape(1, -1)
    rec = Recorder()
    _ACTIVE = rec
    handles = _alibi_hooks(model, rec)
    try:
        out = model(input_ids=ids, use_cache=False, **({"output_attentions": True} if alibi else {}))
    finally:
        _ACTIVE = None
        for h in handles:
            h.remove()
    n_layers = model.config.get_text_config().num_hidden_layers
    check_capture_covers_all_layers(rec, n_layers)
    return Capture(
        token_ids=ids[0].clone(),
        logits=out.logits[0].float().clone(),
        layers=[rec.layers[i] for i in range(n_layers)],
    )


def check_capture_covers_all_layers(rec: Recorder, n_layers: int) -> None:
    """Fail loudly if some layer bypassed the attention interface."""
    missing = sorted(set(range(n_layers)) - set(rec.layers))
    if missing:
        raise RuntimeError(
            f"attention of layers {missing} was not routed through the attention "
            "interface; use forward hooks for this family"
        )


def check_against_dot_product(cap: LayerCapture, atol: float = 1e-5) -> float:
    """Recompute the attention pattern from the captured q, k and settings.

    This is the contract attnscope relies on: softmax over the support C_i of
    softcap(scaling * q_i . k_j).  Returns the max abs difference to the
    probabilities the model itself produced and raises if it exceeds atol.
    """
    h, t, _ = cap.q.shape
    group = h // cap.k.shape[0]
    k = cap.k.repeat_interleave(group, dim=0)  # query head h reads KV head h // group
    s = cap.scaling * cap.q.double() @ k.double().transpose(1, 2)
    i = torch.arange(t).unsqueeze(1)
    j = torch.arange(t).unsqueeze(0)
    if cap.alibi_slopes is not None:
        m = torch.tensor(cap.alibi_slopes, dtype=torch.float64).view(-1, 1, 1)
        s = s + m * (j - i).double()
    if cap.softcap is not None:
        s = cap.softcap * torch.tanh(s / cap.softcap)
    support = j <= i
    if cap.sliding_window is not None:
        support &= j > i - cap.sliding_window
    s = s.masked_fill(~support, float("-inf"))
    p = torch.softmax(s, dim=-1)
    err = (p - cap.probs.double()).abs().max().item()
    if err > atol:
        raise AssertionError(f"layer {cap.layer}: recomputed attention differs by {err:.3g}")
    return err
