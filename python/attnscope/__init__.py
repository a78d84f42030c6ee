"""attnscope for Python: the energy field of every attention head, on the Rust core.

The numbers come from the same Rust code as the ``attnscope`` command
(``crates/field`` for the math), so a head measured here equals the same
head measured by the CLI.

- :func:`analyze_head`: one head, numpy (n, d) in, a dict of measures out.
- :func:`analyze_layer`: one layer, (heads, n, d) and (kv_heads, n, d) in,
  a ``pyarrow.Table`` with heads.parquet's columns out.
- :func:`analyze`: the CLI's ``analyze`` pipeline, in-process.
- :class:`Monitor`: the training monitor's rules and files.
- ``attnscope.torch.capture``: Q/K of any transformers model.
- ``attnscope.hf.MonitorCallback``: the monitor as a transformers ``TrainerCallback``.
- ``attnscope.ray.sweep``: models × texts × ctxs on a Ray cluster, into Parquet.

Every measure is defined in docs/definitions.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import _core
from ._core import AttnscopeError, CheckFailed

__version__ = _core.__version__

__all__ = [
    "analyze_head",
    "analyze_layer",
    "key_spread",
    "analyze",
    "tokenize",
    "capture_rust",
    "Analysis",
    "Monitor",
    "MONITOR_MEASURES",
    "AttnscopeError",
    "CheckFailed",
    "__version__",
]

PathLike = Union[str, os.PathLike]


def _as_float_array(x: Any, what: str) -> np.ndarray:
    """x as a C-contiguous float32/float64 ndarray, without a copy when it already is one.

    Torch tensors (CPU) are viewed through numpy; other float dtypes
    (float16, bfloat16) are widened to float32, the precision the measures mimic.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor
        t = x.detach().cpu()
        if str(t.dtype) not in ("torch.float32", "torch.float64"):
            t = t.float()
        x = t.numpy()
    a = np.asarray(x)
    if a.dtype not in (np.float32, np.float64):
        if a.dtype.kind == "f":
            a = a.astype(np.float32)
        else:
            raise TypeError(f"{what} must hold floats (float32 or float64), got dtype {a.dtype}")
    return np.ascontiguousarray(a)


def analyze_head(
    q: Any,
    k: Any,
    scale: float,
    *,
    window: Optional[int] = None,
    alibi_slope: Optional[float] = None,
    softcap: Optional[float] = None,
    w_q: Any = None,
    w_k: Any = None,
    method: str = "factored",
    max_check_rows: int = 1024,
    keep_key_energy: bool = False,
    keep_leverage: bool = False,
) -> dict:
    """Every measure of one attention head (docs/definitions.md).

    q, k: (n, d) float32 or float64 numpy arrays, exactly as the model's dot
    product sees them (after biases, QK-norm, rotary; for GQA the key of the KV
    head this query head reads). C-contiguous float32/float64 arrays are
    borrowed, not copied, and the GIL is released while Rust runs.
    scale: the logit scale s (usually 1/sqrt(d)). window: sliding window width
    (query i sees i-w < j <= i). alibi_slope: ALiBi slope m (bias -m(i-j)).
    softcap: Gemma-2 style soft-cap c. w_q, w_k: (d_model, d) projection
    slices, for the learned-interaction measures.

    f32 inputs: the shift-consistency check mimics an f32 softmax; f64 inputs: f64.
    Returns a dict keyed by the measure names of docs/definitions.md.
    Raises ValueError on bad input (shapes, non-finite values, window 0).
    """
    qa, ka = _as_float_array(q, "q"), _as_float_array(k, "k")
    wq = None if w_q is None else _as_float_array(w_q, "w_q")
    wk = None if w_k is None else _as_float_array(w_k, "w_k")
    return _core.analyze_head(
        qa, ka, float(scale), window=window, alibi_slope=alibi_slope, softcap=softcap,
        w_q=wq, w_k=wk, method=method, max_check_rows=max_check_rows,
        keep_key_energy=keep_key_energy, keep_leverage=keep_leverage,
    )


def _table_from_parquet(data: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(data))


def analyze_layer(
    Q: Any,
    K: Any,
    scale: float,
    *,
    layer: int = 0,
    window: Optional[int] = None,
    alibi_slopes: Optional[Sequence[float]] = None,
    softcap: Optional[float] = None,
    w_q: Any = None,
    w_k: Any = None,
    method: str = "factored",
    max_check_rows: int = 1024,
) -> pa.Table:
    """Every head of one layer, heads in parallel (Rust threads, GIL released).

    Q: (heads, n, d); K: (kv_heads, n, d) with heads a multiple of kv_heads
    (query head h reads KV head h // (heads // kv_heads), as transformers'
    repeat_kv). w_q: (heads, d_model, d), w_k: (kv_heads, d_model, d).
    alibi_slopes: one slope per query head.

    Returns a pyarrow.Table with exactly heads.parquet's columns for one run:
    ``layer``, ``head``, ``kv_head``, then every scalar measure, same types.
    """
    qa, ka = _as_float_array(Q, "Q"), _as_float_array(K, "K")
    wq = None if w_q is None else _as_float_array(w_q, "w_q")
    wk = None if w_k is None else _as_float_array(w_k, "w_k")
    slopes = None if alibi_slopes is None else [float(s) for s in alibi_slopes]
    data = _core.analyze_layer_parquet(
        qa, ka, float(scale), layer=int(layer), window=window, alibi_slopes=slopes,
        softcap=softcap, w_q=wq, w_k=wk, method=method, max_check_rows=max_check_rows,
    )
    return _table_from_parquet(data)


class Analysis(NamedTuple):
    """What :func:`analyze` returns: report.json as a dict, heads.parquet as a Table."""

    report: dict
    heads: pa.Table


def key_spread(k: Any) -> float:
    """The monitor's key-side measure of one KV head's keys ``k`` (n, d):
    1 − λ₁/Σλ of the Gram of the keys centred over the n positions, the share
    of their variance outside the top direction, in [0, 1 − 1/d]
    (docs/definitions.md). NaN when the centred keys are all zero.
    float64 keys are rounded to float32 first (the decoder's precision)."""
    return _core.key_spread(_as_float_array(k, "k"))


def _paths(xs: Union[PathLike, Iterable[PathLike]]) -> list:
    if isinstance(xs, (str, os.PathLike)):
        return [os.fspath(xs)]
    return [os.fspath(x) for x in xs]


def analyze(
    model: str,
    texts: Union[PathLike, Iterable[PathLike]],
    ctxs: Union[int, Iterable[int]],
    out: Optional[PathLike] = None,
    layers: Union[None, str, Iterable[int]] = None,
    *,
    tokenizer: Optional[PathLike] = None,
    threads: Optional[int] = None,
    dense_check: bool = False,
    beyond_trained_context: bool = False,
    force: bool = False,
    quiet: bool = True,
) -> Analysis:
    """``attnscope analyze`` in this process: the same pipeline, the same files.

    model: an HF directory, a .gguf file, a llama2.c .bin or a hub id.
    texts: UTF-8 text files. ctxs: context lengths. out: the output directory
    (default ``out/analyze``, as the CLI). layers: ``"0-3,7"`` or a list of ints.
    Finished (text, ctx) runs in ``out/runs/`` are reused, as with the CLI.

    Returns Analysis(report, heads): report.json as a dict, heads.parquet as a
    pyarrow Table. Raises AttnscopeError (bad model, text, ctx, ...) or
    CheckFailed (dense_check found a difference).
    """
    out = os.fspath(out) if out is not None else "out/analyze"
    if isinstance(ctxs, int):
        ctxs = [ctxs]
    if layers is not None and not isinstance(layers, str):
        layers = ",".join(str(int(x)) for x in layers)
    _core.analyze(
        os.fspath(model), _paths(texts), [int(c) for c in ctxs], out,
        layers=layers, tokenizer=None if tokenizer is None else os.fspath(tokenizer),
        threads=threads, dense_check=dense_check,
        beyond_trained_context=beyond_trained_context, force=force, quiet=quiet,
    )
    report = json.loads(Path(out, "report.json").read_text())
    return Analysis(report, pq.read_table(os.path.join(out, "heads.parquet")))


def tokenize(model: str, text: str, *, tokenizer: Optional[PathLike] = None) -> list:
    """The token ids attnscope's own tokenizer gives ``text`` for ``model`` (no truncation)."""
    return _core.tokenize(os.fspath(model), text, tokenizer=None if tokenizer is None else os.fspath(tokenizer))


def capture_rust(model: str, token_ids: Sequence[int]) -> list:
    """Q, K, W_Q, W_K of every layer of attnscope's Rust decoder on ``token_ids``.

    A list (one dict per layer) with ``q`` (h, n, d), ``k`` (h_kv, n, d),
    ``w_q`` (h, d_model, d), ``w_k`` (h_kv, d_model, d) float32 arrays and
    ``scale``, ``window``, ``softcap``, ``alibi_slopes``. For comparing
    another implementation's capture (e.g. attnscope.torch) with the CLI's.
    """
    return _core.capture_rust(os.fspath(model), [int(t) for t in token_ids])


MONITOR_MEASURES = ("key_coherence", "participation_ratio", "k90", "attention_entropy")


class Monitor:
    """The Rust training monitor (docs/monitor.md): per-head bands and alert rules.

    Every observation is one (step, heads) pair, heads as measured by
    :func:`analyze_layer` or ``attnscope.torch.capture(...).analyze()`` (a
    pyarrow Table or a list of dicts with layer, head, kv_head, n, d and the
    four monitored measures, and optionally ``key_spread`` (:func:`key_spread`
    of the head's KV head; ``attnscope.hf.MonitorCallback`` adds it): without
    it, that measure is not watched). With ``out``, writes monitor.jsonl, monitor.csv
    and alerts.jsonl as it goes, and monitor.html on :meth:`finish`.

    Rules default to the Rust ``Rules::default()`` (see :func:`default_rules`);
    pass any of them as keyword arguments to override.
    """

    def __init__(self, out: Optional[PathLike] = None, **rules: Any) -> None:
        cfg = default_rules()
        unknown = set(rules) - set(cfg)
        if unknown:
            raise TypeError(f"unknown monitor rule(s) {sorted(unknown)}; known: {sorted(cfg)}")
        cfg.update(rules)
        cfg["band_measures"] = list(cfg["band_measures"])
        cfg["unformed_measures"] = list(cfg["unformed_measures"])
        self.rules = cfg
        self.out = None if out is None else os.fspath(out)
        self._m = _core.Monitor(self.out, **cfg)

    def observe(self, step: int, heads: Any, checkpoint: Optional[str] = None) -> list:
        """Applies the rules to one observation; returns the new alerts (dicts with a ``message``)."""
        if isinstance(heads, pa.Table):
            extra = ["key_spread"] if "key_spread" in heads.column_names else []
            heads = heads.select(["layer", "head", "kv_head", "n", "d", *MONITOR_MEASURES, *extra]).to_pylist()
        return self._m.observe(int(step), list(heads), checkpoint)

    @property
    def alerts(self) -> list:
        """Every alert so far."""
        return self._m.alerts()

    def finish(self, title: str = "attnscope monitor") -> dict:
        """Writes monitor.html (with ``out``) and returns a summary dict."""
        return self._m.finish(title)


def default_rules() -> dict:
    """The Rust monitor's default rules (``Rules::default()``) as a dict."""
    return dict(_core.default_rules())
