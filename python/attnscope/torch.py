"""Capture Q and K of any Hugging Face transformers model, exactly as it uses them.

    import attnscope.torch
    with attnscope.torch.capture(model) as cap:
        model(input_ids, use_cache=False)
    heads = cap.analyze()          # pyarrow Table, heads.parquet's columns, all layers

How: transformers (>= 4.56, all of 5.x) routes every decoder's attention
through ``AttentionInterface``. Inside the ``with`` block the model runs an
attention implementation named ``attnscope_<previous>`` that records its
arguments and then calls the implementation the model was using before
(``sdpa``, ``eager``, ...), so the model computes exactly what it computed
without capture. So Q and K are recorded after projection biases, QK-norm and
rotary, K per KV head before ``repeat_kv`` (query head h reads KV head
h // (heads // kv_heads)), with the scale, sliding window and soft-cap the
layer passes to its attention.

Pitfall handled: a custom attention implementation gets ``attention_mask=None``
(and the attention silently turns bidirectional from layer 1 on) unless a mask
function is registered under the same name; the previous implementation's mask
function is registered with it. Each recorded layer's mask is also checked
against the causal (or windowed) support the measures assume.

W_Q and W_K per head are read from the attention module: ``q_proj``/``k_proj``
(Llama, Mistral, Qwen, Gemma, OLMo, Phi, ...), GPT-2's ``c_attn``, GPT-NeoX's
``query_key_value`` and a fused ``qkv_proj``; for any other layout the learned
measures are null.

Only batch row ``batch_index`` (default 0) is captured; feed one unpadded
sequence. A later forward pass inside the same block replaces the earlier one.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import pyarrow as pa
import torch
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

import attnscope

__all__ = ["capture", "LayerQK"]

_PREFIX = "attnscope_"


@dataclass
class LayerQK:
    """One layer as its attention saw it (batch row ``batch_index``)."""

    layer: int
    q: np.ndarray  # (h, n, d)
    k: np.ndarray  # (h_kv, n, d), not repeated for GQA
    scale: float
    window: Optional[int]
    softcap: Optional[float]
    w_q: Optional[np.ndarray]  # (h, d_model, d): q = x @ w_q[h] (+ bias) before rotary/QK-norm
    w_k: Optional[np.ndarray]  # (h_kv, d_model, d)
    mask_ok: bool  # the mask the model used is the causal/windowed support assumed


_ACTIVE: List["capture"] = []


def _family_eager(module: torch.nn.Module):
    """The family's own eager attention function (defined beside its module)."""
    fn = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    if fn is None:
        raise RuntimeError(f"{type(module).__module__} defines no eager_attention_forward")
    return fn


def _inner(name: str, module):
    """The implementation the model used before capture."""
    prev = name[len(_PREFIX):]
    if prev == "eager" or prev not in ALL_ATTENTION_FUNCTIONS:
        return _family_eager(module)
    return ALL_ATTENTION_FUNCTIONS[prev]


def _tensor(x: torch.Tensor) -> np.ndarray:
    x = x.detach()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    return x.cpu().numpy().copy()


def _mask_matches(mask: Any, n: int, window: Optional[int], b: int, module, name: str) -> bool:
    """True when ``mask`` (bool = visible, float = additive) is the support C.

    No mask means causal only for an implementation that then sets
    ``is_causal`` (sdpa, flash); for eager it means bidirectional attention.
    """
    if mask is None:
        inner = name[len(_PREFIX):]
        return inner not in ("eager",) and inner in ALL_ATTENTION_FUNCTIONS \
            and bool(getattr(module, "is_causal", True)) and window is None
    if not torch.is_tensor(mask):
        return True  # a BlockMask (flex attention) is not inspected
    m = mask[b if mask.shape[0] > 1 else 0]
    m = m[0] if m.dim() == 3 else m
    m = m[-n:, -n:]
    visible = m if m.dtype == torch.bool else m > torch.finfo(m.dtype).min / 2
    i = torch.arange(n, device=m.device)[:, None]
    j = torch.arange(n, device=m.device)[None, :]
    want = j <= i
    if window is not None:
        want &= j > i - window
    return bool(torch.equal(visible.to(torch.bool), want))


def _attention(module, query, key, value, attention_mask, **kwargs):
    """The registered implementation: run the previous one, then record."""
    name = module.config._attn_implementation
    out = _inner(name, module)(module, query, key, value, attention_mask, **kwargs)
    for cap in _ACTIVE:
        if id(module) in cap._modules:
            cap._record(module, query, key, attention_mask, kwargs)
    return out


def _register(prev: str) -> str:
    name = _PREFIX + prev
    if name not in ALL_ATTENTION_FUNCTIONS:
        AttentionInterface.register(name, _attention)
    # Without a mask function under the same name transformers passes no mask at all.
    mask_fn = ALL_MASK_ATTENTION_FUNCTIONS[prev] if prev in ALL_MASK_ATTENTION_FUNCTIONS else eager_mask
    ALL_MASK_ATTENTION_FUNCTIONS.register(name, mask_fn)
    return name


def _split_heads(w: torch.Tensor, heads: int, d: int) -> np.ndarray:
    """(heads·d, d_model) nn.Linear weight -> (heads, d_model, d) with q = x @ W[h]."""
    d_model = w.shape[-1]
    return _tensor(w.reshape(heads, d, d_model).transpose(1, 2))


def _projection_weights(module, h: int, hkv: int, d: int):
    """(w_q, w_k) per head, or (None, None) for an unknown layout."""
    mt = getattr(module.config, "model_type", "")
    with torch.no_grad():
        if hasattr(module, "q_proj") and hasattr(module, "k_proj") and hasattr(module.q_proj, "weight"):
            wq, wk = module.q_proj.weight, module.k_proj.weight
            if wq.shape[0] == h * d and wk.shape[0] == hkv * d:
                return _split_heads(wq, h, d), _split_heads(wk, hkv, d)
        if mt == "gpt2" and hasattr(module, "c_attn") and not getattr(module, "is_cross_attention", False):
            w = module.c_attn.weight  # Conv1D: (d_model, 3·h·d), y = x @ w; q | k | v
            d_model = w.shape[0]
            q = w[:, : h * d].reshape(d_model, h, d).permute(1, 0, 2)
            k = w[:, h * d: 2 * h * d].reshape(d_model, h, d).permute(1, 0, 2)
            return _tensor(q), _tensor(k)
        if mt == "gpt_neox" and hasattr(module, "query_key_value"):
            w = module.query_key_value.weight  # (h·3·d, d_model): per head [q | k | v]
            d_model = w.shape[-1]
            w4 = w.reshape(h, 3, d, d_model)
            return _tensor(w4[:, 0].transpose(1, 2)), _tensor(w4[:, 1].transpose(1, 2))
        if hasattr(module, "qkv_proj") and hasattr(module.qkv_proj, "weight"):
            w = module.qkv_proj.weight  # (h·d + 2·h_kv·d, d_model): q | k | v
            if w.shape[0] == (h + 2 * hkv) * d:
                return _split_heads(w[: h * d], h, d), _split_heads(w[h * d: (h + hkv) * d], hkv, d)
    return None, None


class capture:
    """Context manager: records every attention layer's Q, K, W_Q, W_K, scale,
    window and soft-cap while the model runs inside the block.

    ``layers``: record only these layer indices (default: all).
    ``weights``: also read W_Q/W_K (for the learned measures).
    ``batch_index``: which batch row to record.
    After the block, ``cap.layers`` maps layer index -> :class:`LayerQK`, and
    :meth:`analyze` measures every head.
    """

    def __init__(self, model: torch.nn.Module, *, layers: Optional[List[int]] = None,
                 weights: bool = True, batch_index: int = 0) -> None:
        self.model = model
        self.only = None if layers is None else set(int(x) for x in layers)
        self.weights = weights
        self.batch_index = batch_index
        self.layers: Dict[int, LayerQK] = {}
        self._modules = {id(m) for m in model.modules()}
        self._prev: Optional[str] = None

    def __enter__(self) -> "capture":
        prev = getattr(self.model.config, "_attn_implementation", None) or "eager"
        if not isinstance(prev, str):
            raise TypeError(f"attnscope.torch.capture: unsupported attention implementation {prev!r}")
        if prev.startswith(_PREFIX):
            raise RuntimeError("attnscope.torch.capture: this model is already being captured")
        self._prev = prev
        self.model.set_attn_implementation(_register(prev))
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _ACTIVE.remove(self)
        self.model.set_attn_implementation(self._prev)

    def _record(self, module, query, key, attention_mask, kwargs) -> None:
        layer = int(getattr(module, "layer_idx", len(self.layers)))
        if self.only is not None and layer not in self.only:
            return
        b = self.batch_index
        q, k = query[b], key[b]  # (h, n, d), (h_kv, n, d)
        h, n, d = q.shape
        hkv = k.shape[0]
        if k.shape[1] != n:
            raise RuntimeError(f"layer {layer}: {k.shape[1]} keys for {n} queries (a KV cache?); "
                               "call the model once with use_cache=False inside capture")
        scale = kwargs.get("scaling")
        scale = float(d ** -0.5 if scale is None else scale)
        window = kwargs.get("sliding_window")
        window = None if window is None or int(window) >= n else int(window)
        softcap = kwargs.get("softcap")
        w_q, w_k = _projection_weights(module, h, hkv, d) if self.weights else (None, None)
        self.layers[layer] = LayerQK(
            layer=layer, q=_tensor(q), k=_tensor(k), scale=scale, window=window,
            softcap=None if softcap is None else float(softcap), w_q=w_q, w_k=w_k,
            mask_ok=_mask_matches(attention_mask, n, window, b, module, module.config._attn_implementation),
        )

    def analyze(self, *, method: str = "factored", max_check_rows: int = 1024,
                strict: bool = True) -> pa.Table:
        """Every head of every captured layer: heads.parquet's columns
        (``layer``, ``head``, ``kv_head``, every scalar measure), rows by (layer, head).

        strict: refuse layers whose attention mask was not the causal support
        (padding, bidirectional or prefix attention), which the measures assume.
        """
        if not self.layers:
            raise RuntimeError("attnscope.torch.capture: nothing captured; run the model inside the `with` block")
        if strict and self.only is None:
            cfg = self.model.config
            cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
            missing = sorted(set(range(getattr(cfg, "num_hidden_layers", 0))) - set(self.layers))
            if missing:
                raise RuntimeError(f"layers {missing} were not routed through transformers' attention "
                                   "interface, so they were not captured")
        tables = []
        for layer in sorted(self.layers):
            c = self.layers[layer]
            if strict and not c.mask_ok:
                raise RuntimeError(f"layer {layer}: the attention mask is not the causal "
                                   "(windowed) support; pass one unpadded sequence, or strict=False")
            tables.append(attnscope.analyze_layer(
                c.q, c.k, c.scale, layer=layer, window=c.window, softcap=c.softcap,
                w_q=c.w_q, w_k=c.w_k, method=method, max_check_rows=max_check_rows))
        return pa.concat_tables(tables)
