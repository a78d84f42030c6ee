"""A dense numpy reference of one head's measures, written from
docs/definitions.md (E formed n×n, full SVD), with windows and ALiBi.
Independent of the Rust code; O(n³), for small test heads only."""

from __future__ import annotations

import math

import numpy as np

EPS = np.finfo(np.float64).eps


def support(n, window=None):
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    c = j <= i
    if window is not None:
        c &= j > i - window
    return c


def k_frac(sig, frac):
    e2 = sig ** 2
    tot = e2.sum()
    if tot <= 0:
        return 0
    return int(np.argmax(np.cumsum(e2) >= frac * tot * (1 - 1e-9)) + 1)


def eff_rank(sig):
    tot = sig.sum()
    if tot <= 0:
        return 0.0
    p = sig[sig > 0] / tot
    return float(math.exp(-(p * np.log(p)).sum()))


def ranks(x):
    order = np.argsort(x, kind="stable")
    xs = x[order]
    tol = 1e-9 * np.abs(x).max()
    r = np.empty(len(x))
    start = 0
    for t in range(1, len(x) + 1):
        if t == len(x) or xs[t] - xs[t - 1] > tol:
            r[order[start:t]] = (start + 1 + t) / 2.0
            start = t
    return r


def spearman(x, y):
    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = math.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    return None if den == 0 else float((rx * ry).sum() / den)


def head(q, k, scale, window=None, alibi_slope=None, w_q=None, w_k=None):
    q = np.asarray(q, np.float64)
    k = np.asarray(k, np.float64)
    n, d = q.shape
    c = support(n, window)
    s = scale * q @ k.T
    if alibi_slope is not None:
        i, j = np.arange(n)[:, None], np.arange(n)[None, :]
        s = s - alibi_slope * (i - j)  # extended linearly into the future (definitions.md)
    m = np.where(c, s, 0).sum(1) / c.sum(1)
    e = s - m[:, None]
    out = {"n": n, "d": d}
    x = np.where(c, s, -np.inf)
    z = x - x.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    p = np.where(c, np.exp(logp), 0)
    out["attention_entropy"] = float((-(np.where(p > 0, p * np.where(c, logp, 0), 0)).sum(1)).mean())
    lp = np.where(c, logp, 0)
    cent = lp - (lp.sum(1) / c.sum(1))[:, None]
    out["shift_consistency"] = float(np.where(c, np.abs(e - cent), 0).max())
    p_dim = d + 1 + (alibi_slope is not None)
    sig = np.linalg.svd(e, compute_uv=False)
    out["rank_bound"] = p_dim
    out["numerical_rank"] = int((sig > sig[0] * max(n, d) * EPS).sum())
    spec = sig[: min(n, p_dim)]
    out["spectrum"] = spec
    out["k90"], out["k99"] = k_frac(spec, 0.9), k_frac(spec, 0.99)
    out["effective_rank"] = eff_rank(spec)
    out["stable_rank"] = float((spec ** 2).sum() / spec[0] ** 2)
    if w_q is not None:
        sm = np.linalg.svd(np.asarray(w_q, np.float64) @ np.asarray(w_k, np.float64).T, compute_uv=False)[: min(w_q.shape[0], d)]
        out["k90_learned"] = k_frac(sm, 0.9)
        out["effective_rank_learned"] = eff_rank(sm)
        out["spectral_gap"] = out["effective_rank_learned"] / out["effective_rank"]
        out["k90_gap"] = out["k90_learned"] / out["k90"] if out["k90"] > 0 else None
    cj = np.where(c, e * e, 0).sum(0) / c.sum(0)
    kk = max(1, n // 100)
    if cj.sum() == 0:  # definitions.md: an even spread of nothing
        out["participation_ratio"], out["top1pct_share"] = 1.0, kk / n
    else:
        out["participation_ratio"] = float(cj.sum() ** 2 / (n * (cj ** 2).sum()))
        out["top1pct_share"] = float(np.sort(cj)[::-1][:kk].sum() / cj.sum())
    out["argmax_key"] = int(np.argmax(cj))
    b = np.hstack([k, np.ones((n, 1))])
    u, sb, _ = np.linalg.svd(b, full_matrices=False)
    r = int((sb > sb[0] * max(b.shape) * EPS).sum())
    lev = (u[:, :r] ** 2).sum(1)
    out["key_coherence"] = float(n / r * lev.max())
    out["energy_leverage_spearman"] = spearman(cj, lev)
    out["key_energy"] = cj
    out["leverage"] = lev
    return out
