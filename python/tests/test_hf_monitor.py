"""attnscope.hf.MonitorCallback with a tiny GPT-2 under transformers' Trainer."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from attnscope.hf import MonitorCallback  # noqa: E402

VOCAB, SEQ, STEPS, EVERY, SPIKE_AT, SPIKE_STEPS, LR = 64, 32, 60, 5, 40, 10, 5e-4
# This toy GPT-2's heads do not form (entropy ≤ 0.9 × uniform) within the 40
# steps before the spike, so the monitor's per-head warm-up is shortened: every
# head counts as formed (so the reverted rule, which needs formed heads, is
# off), and 2 observations settle a measure.
RULES = dict(formed_frac=1.01, settle=2, min_history=2, revert_frac=0.0)


def dataset(seed=0, n=64):
    """Sequences from a fixed random Markov chain: learnable, so training is healthy."""
    rng = np.random.default_rng(seed)
    trans = rng.dirichlet(np.full(VOCAB, 0.1), size=VOCAB)
    rows = []
    for _ in range(n):
        x = [int(rng.integers(VOCAB))]
        for _ in range(SEQ - 1):
            x.append(int(rng.choice(VOCAB, p=trans[x[-1]])))
        t = torch.tensor(x)
        rows.append({"input_ids": t, "labels": t.clone()})
    return rows


class LrSpike(transformers.TrainerCallback):
    """The learning rate × `factor` for the optimizer steps at..at+SPIKE_STEPS-1
    (the constant schedule resets it after each step, so it is set before each)."""

    def __init__(self, at, factor):
        self.at, self.factor = at, factor

    def on_step_begin(self, args, state, control, optimizer=None, **kw):
        if self.at <= state.global_step < self.at + SPIKE_STEPS:
            for g in optimizer.param_groups:
                g["lr"] = LR * self.factor


def train(tmp_path, seed, spike=None, rules=RULES):
    transformers.set_seed(seed)
    cfg = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=SEQ, vocab_size=VOCAB)
    model = transformers.GPT2LMHeadModel(cfg)
    data = dataset()
    probe = data[0]["input_ids"].tolist()
    out = tmp_path / f"monitor-{seed}-{spike}"
    cb = MonitorCallback(probe, every=EVERY, out=str(out), **rules)
    callbacks = [cb] + ([LrSpike(SPIKE_AT, spike)] if spike else [])
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "trainer"), max_steps=STEPS, per_device_train_batch_size=8,
        learning_rate=LR, lr_scheduler_type="constant", logging_steps=10, save_strategy="no",
        report_to=[], seed=seed, use_cpu=True, disable_tqdm=True, dataloader_num_workers=0,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks)
    trainer.train()
    return cb, trainer, out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_runs_raise_no_alert(tmp_path, seed):
    cb, trainer, out = train(tmp_path, seed)
    assert cb.alerts == [], [a["message"] for a in cb.alerts]
    lines = (out / "monitor.jsonl").read_text().splitlines()
    # one observation before training + one every EVERY steps, 2 layers × 2 heads each
    assert len(lines) == (STEPS // EVERY + 1) * 4
    # key_spread of each KV head is recorded (GPT-2: one KV head per head), in [0, 1 − 1/d)
    d = 32 // 2
    spreads = [json.loads(x)["key_spread"] for x in lines]
    assert all(s is not None and 0.0 <= s <= 1.0 - 1.0 / d + 1e-12 for s in spreads), spreads[:8]
    assert (out / "alerts.jsonl").read_text() == ""
    assert (out / "monitor.html").exists()
    assert not any("attnscope_alerts" in e for e in trainer.state.log_history)


def test_lr_spike_alerts_at_the_first_observation_after_it(tmp_path):
    # The toy's spike moves its heads by tens of percent, not the 30-100-fold
    # fall of a collapse: the band on x itself with z 6, participation_ratio
    # watched too (the rules before the log band).
    old = dict(log_band=False, z_max=6.0, band_measures=["key_coherence", "participation_ratio", "attention_entropy"])
    cb, trainer, out = train(tmp_path, 0, spike=50, rules=dict(RULES, **old))
    steps = sorted({a["step"] for a in cb.alerts})
    assert steps, "the spike raised no alert"
    # the first observation after the spike starts (it lasts steps SPIKE_AT .. SPIKE_AT + SPIKE_STEPS - 1)
    assert steps[0] == SPIKE_AT + EVERY, [a["message"] for a in cb.alerts]
    written = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines()]
    assert len(written) == len(cb.alerts)
    logged = [e for e in trainer.state.log_history if "attnscope_alerts" in e]
    assert logged and logged[0]["step"] == SPIKE_AT + EVERY


def test_monitor_watches_key_spread_when_given(tmp_path):
    """key_spread (optional in a head dict) is in the default band: a head whose
    keys collapse onto one direction (0.31 → 0.05, robust z ≈ −36) alerts on it alone."""
    import attnscope

    def head(step, ks=None):
        h = dict(layer=0, head=0, kv_head=0, n=64, d=16, key_coherence=2.0, participation_ratio=0.5, k90=2,
                 attention_entropy=2.0 + 0.02 * (step % 3))
        if ks is not None:
            h["key_spread"] = ks
        return h

    assert "key_spread" in attnscope.default_rules()["band_measures"]
    m = attnscope.Monitor(str(tmp_path / "ks"))
    for s in range(16):
        assert m.observe(s * 10, [head(s, 0.3 + 0.01 * (s % 3))]) == []
    a = m.observe(160, [head(16, 0.05)])
    assert [(x["measure"], x["rule"]) for x in a] == [("key_spread", "band")], a
    assert 30 < a[0]["severity"] < 40, a
    # Without it, the measure is simply not watched.
    m = attnscope.Monitor()
    assert all(m.observe(s * 10, [head(s)]) == [] for s in range(18))


def test_monitor_step_rule_sees_a_jump_inside_a_wide_band(tmp_path):
    """A head whose key_spread grows 9 % per observation has a wide band; a jump
    back into it (0.49 → 0.07) is far out of its usual steps: one "step" alert
    (default step_max from Rust), none with step_max=0."""
    import math

    import attnscope

    def head(s, ks):
        return dict(layer=0, head=0, kv_head=0, n=64, d=16, key_coherence=2.0, participation_ratio=0.5, k90=2,
                    attention_entropy=2.0, key_spread=ks)

    trend = [0.02 * math.exp(0.09 * s) * (1.0 + 0.01 * (s % 3)) for s in range(35)]
    assert attnscope.default_rules()["step_max"] == 8.0
    for step_max, want in [(None, [("key_spread", "step")]), (0.0, [])]:
        m = attnscope.Monitor(str(tmp_path / f"step-{step_max}"), **({} if step_max is None else {"step_max": step_max}))
        assert all(m.observe(s * 10, [head(s, v)]) == [] for s, v in enumerate(trend))
        a = m.observe(350, [head(35, 0.07)])
        assert [(x["measure"], x["rule"]) for x in a] == want, a


def test_monitor_jump_rule_sees_a_collapse_before_the_head_forms(tmp_path):
    """A head at 0.96 × uniform attention (not formed, so its entropy band is not
    warm) whose entropy falls 35-fold in one observation: one "jump" alert
    (default jump from Rust), none with jump=0."""
    import math

    import attnscope

    uniform = sum(math.log(i) for i in range(1, 65)) / 64

    def head(e):
        return dict(layer=0, head=0, kv_head=0, n=64, d=16, key_coherence=2.0, participation_ratio=0.5, k90=2,
                    attention_entropy=e)

    assert attnscope.default_rules()["jump"] == 10.0
    for jump, want in [(None, [("attention_entropy", "jump")]), (0.0, [])]:
        m = attnscope.Monitor(str(tmp_path / f"jump-{jump}"), **({} if jump is None else {"jump": jump}))
        assert all(m.observe(s * 10, [head(0.96 * uniform)]) == [] for s in range(20))
        a = m.observe(200, [head(0.96 * uniform / 35)])
        assert [(x["measure"], x["rule"]) for x in a] == want, a


def test_monitor_band_rule_needs_a_jump_not_a_drift(tmp_path):
    """A formed head at entropy 2.0 that sharpens to 1.0 over three observations
    (its last step carries 32 % of the distance from its median) raises no
    alert with the default band_step_frac (0.5, from Rust); with
    band_step_frac=0 the band rule alerts when it crosses."""
    import attnscope

    def head(e):
        return dict(layer=0, head=0, kv_head=0, n=64, d=16, key_coherence=2.0, participation_ratio=0.5, k90=2,
                    attention_entropy=e)

    assert attnscope.default_rules()["band_step_frac"] == 0.5
    for frac, want in [(None, []), (0.0, [("attention_entropy", "band")])]:
        m = attnscope.Monitor(str(tmp_path / f"drift-{frac}"), **({} if frac is None else {"band_step_frac": frac}))
        assert all(m.observe(s * 10, [head(2.0 + 0.02 * (s % 3))]) == [] for s in range(20))
        a = [x for i, e in enumerate([1.6, 1.25, 1.0, 1.0]) for x in m.observe(200 + 10 * i, [head(e)])]
        assert [(x["measure"], x["rule"]) for x in a] == want, a


def test_monitor_watches_key_spread_of_a_head_that_has_not_formed(tmp_path):
    """key_spread does not wait for the head's attention to form (default
    unformed_measures from Rust): a head at uniform attention whose keys' spread
    falls 10-fold alerts on it; with unformed_measures=[] it is not watched."""
    import math

    import attnscope

    uniform = sum(math.log(i) for i in range(1, 65)) / 64

    def head(s, ks):
        return dict(layer=0, head=0, kv_head=0, n=64, d=16, key_coherence=2.0, participation_ratio=0.5, k90=2,
                    attention_entropy=uniform, key_spread=ks)

    assert attnscope.default_rules()["unformed_measures"] == ["key_spread"]
    for unformed, want in [(None, [("key_spread", "band")]), ([], [])]:
        m = attnscope.Monitor(str(tmp_path / f"u-{unformed}"), **({} if unformed is None else {"unformed_measures": unformed}))
        assert all(m.observe(s * 10, [head(s, 0.3 * (1.0 + 0.03 * (s % 3)))]) == [] for s in range(30))
        a = m.observe(300, [head(30, 0.03)])
        assert [(x["measure"], x["rule"]) for x in a] == want, a
    with pytest.raises(ValueError, match="unformed_measures"):
        attnscope.Monitor(unformed_measures=["loss"])


def test_key_spread_of_known_keys():
    """1 − λ₁/Σλ of the centred keys: orthogonal centred columns with squared
    norms 9, 1, 4 give 1 − 9/14; keys on one line give 0; float64 agrees."""
    import attnscope

    n = 8
    walsh = np.array([[1.0 if (i >> c) & 1 == 0 else -1.0 for c in range(3)] for i in range(n)])
    k = (5.0 + walsh * np.array([3.0, 1.0, 2.0])).astype(np.float32)
    assert abs(attnscope.key_spread(k) - (1 - 9 / 14)) < 1e-9
    assert abs(attnscope.key_spread(k.astype(np.float64)) - (1 - 9 / 14)) < 1e-9
    line = np.array([[1.0 + i, 2.0 - 2.0 * i, 0.5] for i in range(n)], dtype=np.float32)
    assert abs(attnscope.key_spread(line)) < 1e-9
    assert np.isnan(attnscope.key_spread(np.ones((4, 3), np.float32)))
    with pytest.raises(ValueError):
        attnscope.key_spread(np.ones((2, 3, 4), np.float32))
