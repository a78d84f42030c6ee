"""attnscope's head monitor as a transformers ``TrainerCallback``.

    from attnscope.hf import MonitorCallback
    cb = MonitorCallback("The quick brown fox ...", every=50, out="out/monitor")
    Trainer(model=model, args=args, train_dataset=ds, callbacks=[cb]).train()

Every ``every`` optimizer steps (and once before the first), the callback
runs the probe through the model being trained (eval mode, no grad, inside
``attnscope.torch.capture``), measures every head with the Rust core (plus
``key_spread`` of every KV head's keys, as the Rust trainer's monitor) and
applies the Rust monitor's rules (:class:`attnscope.Monitor`, defaults =
``Rules::default()``). It writes ``monitor.jsonl``, ``monitor.csv`` and
``alerts.jsonl`` under ``out`` as it goes, and ``monitor.html`` at the end.
Alerts go into the Trainer's logs: ``state.log_history`` (saved in
trainer_state.json) gets an entry ``{"step": s, "attnscope_alerts": [...]}``,
and each alert is logged as a warning on the ``attnscope`` logger.
"""

from __future__ import annotations

import logging
from typing import Any, List, Optional, Sequence, Union

import pyarrow as pa
import torch
from transformers import TrainerCallback

import attnscope
from attnscope.torch import capture

__all__ = ["MonitorCallback", "with_key_spread"]

logger = logging.getLogger("attnscope")


def with_key_spread(heads: pa.Table, cap: capture) -> pa.Table:
    """``heads`` (from ``cap.analyze()``) with a ``key_spread`` column: each
    head's value is :func:`attnscope.key_spread` of the keys of its KV head,
    as captured, so the monitor watches it as the Rust trainer's does."""
    spread = {(layer, g): attnscope.key_spread(c.k[g]) for layer, c in cap.layers.items() for g in range(c.k.shape[0])}
    col = [spread[(layer, kv)] for layer, kv in zip(heads.column("layer").to_pylist(), heads.column("kv_head").to_pylist())]
    return heads.append_column("key_spread", pa.array(col, pa.float64()))


class MonitorCallback(TrainerCallback):
    """Measure every head on a probe every ``every`` steps; alert when one leaves its band.

    probe: the probe text (tokenized with the Trainer's ``processing_class``)
    or a list of token ids. ctx: keep the first ``ctx`` tokens (default: all).
    out: directory for monitor.jsonl / monitor.csv / alerts.jsonl / monitor.html
    (None: nothing written). Other keyword arguments override the monitor's
    rules (see ``attnscope.default_rules()``).
    """

    def __init__(self, probe: Union[str, Sequence[int]], *, every: int = 50, ctx: Optional[int] = None,
                 out: Optional[str] = "out/monitor", tokenizer: Any = None, **rules: Any) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.probe = probe
        self.every = every
        self.ctx = ctx
        self.tokenizer = tokenizer
        self.monitor = attnscope.Monitor(out, **rules)
        self.alerts: List[dict] = []
        self._last_step: Optional[int] = None

    def _ids(self, kwargs) -> torch.Tensor:
        if isinstance(self.probe, str):
            tok = self.tokenizer or kwargs.get("processing_class") or kwargs.get("tokenizer")
            if tok is None:
                raise ValueError("MonitorCallback: a text probe needs a tokenizer (tokenizer= or the Trainer's processing_class)")
            ids = tok(self.probe, add_special_tokens=False)["input_ids"]
        else:
            ids = list(self.probe)
        if self.ctx is not None:
            if len(ids) < self.ctx:
                raise ValueError(f"MonitorCallback: the probe has {len(ids)} tokens, fewer than ctx={self.ctx}")
            ids = ids[: self.ctx]
        if len(ids) < 2:
            raise ValueError("MonitorCallback: the probe needs at least 2 tokens")
        return torch.tensor([ids], dtype=torch.long)

    def observe(self, model: torch.nn.Module, step: int, state=None, **kwargs) -> List[dict]:
        """Measure ``model`` now and apply the rules; returns the new alerts."""
        if self._last_step == step:
            return []
        self._last_step = step
        ids = self._ids(kwargs)
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), capture(model) as cap:
                model(input_ids=ids.to(device), use_cache=False)
            heads = with_key_spread(cap.analyze(), cap)
        finally:
            model.train(was_training)
        new = self.monitor.observe(step, heads)
        if new:
            self.alerts.extend(new)
            for a in new:
                logger.warning("attnscope alert: %s", a["message"])
            if state is not None:
                state.log_history.append({"step": step, "attnscope_alerts": [a["message"] for a in new]})
        return new

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None and state.is_world_process_zero:
            self.observe(model, state.global_step, state, **kwargs)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None and state.is_world_process_zero and state.global_step % self.every == 0:
            self.observe(model, state.global_step, state, **kwargs)

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.summary = self.monitor.finish("attnscope monitor (transformers Trainer)")
