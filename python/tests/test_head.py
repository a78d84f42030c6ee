"""attnscope.analyze_head and analyze_layer against a dense numpy reference."""

import numpy as np
import pyarrow.parquet as pq
import pytest

import attnscope

import dense_ref

CASES = [
    # n, d, dtype, window, alibi slope, weights
    (40, 8, np.float64, None, None, False),
    (40, 8, np.float32, None, None, True),
    (37, 6, np.float64, 5, None, False),
    (37, 6, np.float32, 1, None, False),
    (50, 8, np.float64, None, 0.25, True),
    (33, 4, np.float32, 7, 0.5, False),
    (20, 16, np.float64, None, None, False),  # n < d + 1: full rank
]


def make(n, d, dtype, seed, d_model=24):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, d)).astype(dtype)
    k = (rng.normal(size=(n, d)) + rng.normal(size=(1, d))).astype(dtype)  # a common key offset, as in real models
    wq = rng.normal(size=(d_model, d)).astype(dtype)
    wk = rng.normal(size=(d_model, d)).astype(dtype)
    return q, k, wq, wk


@pytest.mark.parametrize("n,d,dtype,window,slope,weights", CASES)
@pytest.mark.parametrize("method", ["factored", "dense"])
def test_head_equals_dense_numpy(n, d, dtype, window, slope, weights, method):
    q, k, wq, wk = make(n, d, dtype, seed=n * 100 + d)
    scale = 1 / np.sqrt(d)
    kw = dict(w_q=wq, w_k=wk) if weights else {}
    got = attnscope.analyze_head(q, k, scale, window=window, alibi_slope=slope, method=method,
                                 keep_key_energy=True, keep_leverage=True, **kw)
    ref = dense_ref.head(q, k, scale, window=window, alibi_slope=slope, **kw)
    assert got["n"] == n and got["d"] == d and got["method"] == method
    # exact integers
    for key in ["rank_bound", "numerical_rank", "k90", "k99", "argmax_key"]:
        assert got[key] == ref[key], key
    assert got["rank_bound_holds"] and got["rank_bound_applicable"]
    assert got["zero_sum_residual"] <= 1e-10
    rel = 1e-8
    np.testing.assert_allclose(got["spectrum"], ref["spectrum"], rtol=rel, atol=1e-10 * ref["spectrum"][0])
    np.testing.assert_allclose(got["key_energy"], ref["key_energy"], rtol=1e-7, atol=1e-10 * ref["key_energy"].max())
    np.testing.assert_allclose(got["leverage"], ref["leverage"], rtol=1e-7, atol=1e-10)
    for key in ["effective_rank", "stable_rank", "participation_ratio", "top1pct_share", "key_coherence"]:
        assert got[key] == pytest.approx(ref[key], rel=rel), key
    assert got["energy_leverage_spearman"] == pytest.approx(ref["energy_leverage_spearman"], abs=1e-9)
    # the entropy and shift check mimic the model's precision: f32 rounding for f32 heads
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert got["attention_entropy"] == pytest.approx(ref["attention_entropy"], rel=tol)
    assert got["shift_consistency"] <= (1e-4 if dtype == np.float32 else 1e-10) * (1 + np.abs(ref["spectrum"]).max())
    if weights:
        assert got["k90_learned"] == ref["k90_learned"]
        assert got["effective_rank_learned"] == pytest.approx(ref["effective_rank_learned"], rel=1e-6 if dtype == np.float32 else 1e-10)
        assert got["spectral_gap"] == pytest.approx(ref["spectral_gap"], rel=1e-6 if dtype == np.float32 else 1e-9)
        assert got["k90_gap"] == ref["k90_gap"]
    else:
        assert got["k90_learned"] is None and got["spectral_gap"] is None and got["k90_gap"] is None


def test_head_differs_when_the_input_differs():
    """The comparison above can fail: a changed key changes the measures."""
    q, k, _, _ = make(30, 4, np.float64, seed=1)
    a = attnscope.analyze_head(q, k, 0.5)
    k2 = k.copy()
    k2[3] += 5.0
    b = attnscope.analyze_head(q, k2, 0.5)
    assert a["key_coherence"] != pytest.approx(b["key_coherence"], rel=1e-6)
    ref = dense_ref.head(q, k, 0.5)
    assert b["participation_ratio"] != pytest.approx(ref["participation_ratio"], rel=1e-8)


def test_softcap_marks_the_rank_bound_not_applicable():
    q, k, _, _ = make(24, 4, np.float64, seed=2)
    r = attnscope.analyze_head(q * 10, k * 10, 0.5, softcap=5.0)
    assert r["logit_transform"] == "softcap" and r["softcap"] == 5.0 and not r["rank_bound_applicable"]


@pytest.mark.parametrize("bad,msg", [
    (lambda q, k: (q, k[:-1]), "same shape"),
    (lambda q, k: (q[None], k[None]), "shape"),
    (lambda q, k: (q.astype(np.int64), k), "float32 or float64"),
])
def test_bad_input_raises_one_clear_error(bad, msg):
    q, k, _, _ = make(10, 4, np.float64, seed=3)
    with pytest.raises((ValueError, TypeError), match=msg):
        attnscope.analyze_head(*bad(q, k), 0.5)


def test_non_finite_and_window_zero_raise_value_error():
    q, k, _, _ = make(10, 4, np.float64, seed=4)
    q[2, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        attnscope.analyze_head(q, k, 0.5)
    with pytest.raises(ValueError, match="window"):
        attnscope.analyze_head(k, k, 0.5, window=0)


def test_inputs_are_not_copied_and_views_are_accepted():
    """C-contiguous float arrays go to Rust as they are; a strided view is made contiguous."""
    q, k, _, _ = make(16, 4, np.float32, seed=5)
    assert attnscope._as_float_array(q, "q") is q
    big = np.ascontiguousarray(np.repeat(k, 2, axis=1))
    view = big[:, ::2]
    assert not view.flags.c_contiguous
    a = attnscope.analyze_head(q, view, 0.5)
    b = attnscope.analyze_head(q, k, 0.5)
    assert a["spectrum"] == b["spectrum"]


def test_layer_table_matches_heads_and_gqa(tmp_path):
    rng = np.random.default_rng(7)
    h, hkv, n, d, dm = 4, 2, 30, 8, 16
    Q = rng.normal(size=(h, n, d)).astype(np.float32)
    K = rng.normal(size=(hkv, n, d)).astype(np.float32)
    WQ = rng.normal(size=(h, dm, d)).astype(np.float32)
    WK = rng.normal(size=(hkv, dm, d)).astype(np.float32)
    t = attnscope.analyze_layer(Q, K, 0.3, layer=3, window=9, w_q=WQ, w_k=WK)
    cols = t.column_names
    assert cols[:3] == ["layer", "head", "kv_head"]
    assert t.num_rows == h
    rows = t.to_pylist()
    for r in rows:
        one = attnscope.analyze_head(Q[r["head"]], K[r["head"] // 2], 0.3, window=9, w_q=WQ[r["head"]], w_k=WK[r["head"] // 2])
        assert r["layer"] == 3 and r["kv_head"] == r["head"] // 2
        for key in ["key_coherence", "participation_ratio", "k90", "effective_rank", "k90_learned", "attention_entropy"]:
            assert r[key] == one[key], key
    # exactly heads.parquet's columns after text, ctx (vectors such as the spectrum stay out)
    assert "spectrum" not in cols and "key_energy" not in cols
    assert cols == [c for c in HEADS_PARQUET_COLUMNS if c not in ("text", "ctx")]


def test_layer_rejects_bad_gqa():
    Q = np.zeros((3, 5, 4), np.float32)
    K = np.zeros((2, 5, 4), np.float32)
    with pytest.raises(ValueError, match="multiple"):
        attnscope.analyze_layer(Q, K, 0.5)


# heads.parquet's columns as the CLI writes them, whatever the model (declared once in
# crates/attnscope/src/report/schema.rs; checked against a real file in test_pipeline.py)
HEADS_PARQUET_COLUMNS = [
    "text", "ctx", "layer", "head", "kv_head", "n", "d", "method", "logit_transform", "softcap", "check_rows",
    "zero_sum_residual", "shift_consistency", "attention_entropy", "rank_bound", "numerical_rank",
    "rank_bound_holds", "rank_bound_applicable", "k90", "k99", "effective_rank", "stable_rank",
    "k90_learned", "effective_rank_learned", "spectral_gap", "k90_gap", "participation_ratio", "top1pct_share",
    "argmax_key", "key_coherence", "energy_leverage_spearman",
]
