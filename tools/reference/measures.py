"""Independent, dense f64 reference of attnscope's per-head measures.

Written from /work/shared/SPEC.md (and the open choices recorded in
docs/definitions.md), not from the Rust code: everything is formed densely
(the n x n extended field E and its full SVD), which is O(n^3) per head and
meant for n up to a few thousand.

    from measures import head_measures
    m = head_measures(q, k, scale, window=None, probs=P, w_q=Wq_h, w_k=Wk_h)

q, k: (n, d) as the model's dot product sees them (post-rotary; for GQA the
key of the KV head this query head reads).  probs: (n, n) the softmax output
the model produced (e.g. transformers' eager attention), optional.  w_q, w_k:
(d_model, d) slices with q = x @ w_q before rotary, optional.

No position bias (ALiBi) and no soft-cap are handled here: the models the
fixtures use have neither.
"""

from __future__ import annotations

import math

import numpy as np

EPS = np.finfo(np.float64).eps
K_SLACK = 1e-9  # relative slack on the 90 % / 99 % thresholds (definitions.md §3)
TIE_TOL = 1e-9  # Spearman: values within TIE_TOL * max|x| are ties (definitions.md §5)


# --------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------

def support_mask(n: int, window: int | None = None) -> np.ndarray:
    """C as a boolean (n, n) matrix: C[i, j] = j in C_i."""
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    c = j <= i
    if window is not None:
        if window <= 0:
            raise ValueError("window must be >= 1")
        c &= j > i - window
    return c


def extended_logits(q, k, scale: float) -> np.ndarray:
    """S = s Q K^T over all i, j (the extended field), f64."""
    q = np.asarray(q, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    return scale * (q @ k.T)


def energy_field(s: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E = S - m 1^T, m_i = mean of S_ij over C_i.  Returns (E, m)."""
    cnt = c.sum(axis=1)
    m = np.where(c, s, 0.0).sum(axis=1) / cnt
    return s - m[:, None], m


def zero_sum_residual(e: np.ndarray, c: np.ndarray) -> float:
    """max_i |sum_{C_i} E_ij| / sum_{C_i} |E_ij| (rows with a zero field give 0)."""
    ec = np.where(c, e, 0.0)
    num = np.abs(ec.sum(axis=1))
    den = np.abs(ec).sum(axis=1)
    ratio = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return float(ratio.max())


def centred_log(logp: np.ndarray, c: np.ndarray) -> np.ndarray:
    """log P_ij - mean_{C_i} log P_i. on the support (0 elsewhere)."""
    lp = np.where(c, logp, 0.0)
    mean = lp.sum(axis=1) / c.sum(axis=1)
    return np.where(c, logp - mean[:, None], 0.0)


def shift_consistency(e: np.ndarray, logp: np.ndarray, c: np.ndarray) -> float:
    """max over the support of |E_ij - (log P_ij - mean_{C_i} log P_i.)|."""
    d = np.where(c, np.abs(e - centred_log(logp, c)), 0.0)
    return float(d.max())


def log_softmax_f64(s: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Max-subtracted log-softmax over each row's support, f64 (-inf off it)."""
    x = np.where(c, s, -np.inf)
    mx = x.max(axis=1, keepdims=True)
    z = x - mx
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def attention_entropy(p: np.ndarray, c: np.ndarray) -> float:
    """mean over rows of -sum_{C_i} P_ij log P_ij (nats); 0 log 0 = 0."""
    p = np.where(c, np.asarray(p, dtype=np.float64), 0.0)
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return float((-plogp.sum(axis=1)).mean())


def k_fraction(sig: np.ndarray, frac: float) -> int:
    """Fewest leading k with sum_{<=k} sigma^2 >= frac * sum sigma^2."""
    e2 = np.asarray(sig, dtype=np.float64) ** 2
    tot = e2.sum()
    if tot <= 0:
        return 0
    cum = np.cumsum(e2)
    return int(np.argmax(cum >= frac * tot * (1 - K_SLACK)) + 1)


def effective_rank(sig: np.ndarray) -> float:
    """exp(-sum p log p), p = sigma / sum sigma (zeros contribute nothing)."""
    sig = np.asarray(sig, dtype=np.float64)
    tot = sig.sum()
    if tot <= 0:
        return 0.0
    p = sig[sig > 0] / tot
    return float(math.exp(-(p * np.log(p)).sum()))


def stable_rank(sig: np.ndarray) -> float:
    sig = np.asarray(sig, dtype=np.float64)
    if sig.size == 0 or sig[0] <= 0:
        return 0.0
    return float((sig**2).sum() / sig[0] ** 2)


def key_energy(e: np.ndarray, c: np.ndarray) -> np.ndarray:
    """c_j = mean of E_ij^2 over R_j = {i : j in C_i} (a column mean over the support)."""
    e2 = np.where(c, e * e, 0.0)
    return e2.sum(axis=0) / c.sum(axis=0)


def participation_ratio(cj: np.ndarray) -> float:
    n = cj.size
    s2 = (cj**2).sum()
    if s2 == 0:
        return 1.0
    return float(cj.sum() ** 2 / (n * s2))


def top1pct_share(cj: np.ndarray) -> float:
    n = cj.size
    kk = max(1, n // 100)
    tot = cj.sum()
    if tot == 0:
        return kk / n
    return float(np.sort(cj)[::-1][:kk].sum() / tot)


def leverage(b: np.ndarray) -> tuple[np.ndarray, int]:
    """Leverage scores of the rows of b: l_j = b_j^T (B^T B)^+ b_j, and r = rank(B).

    Via the thin SVD of B: l_j = ||U_r[j]||^2 with r = #sigma > sigma_1 max(n, p) eps.
    """
    b = np.asarray(b, dtype=np.float64)
    u, sig, _ = np.linalg.svd(b, full_matrices=False)
    if sig.size == 0 or sig[0] == 0:
        return np.zeros(b.shape[0]), 0
    r = int((sig > sig[0] * max(b.shape) * EPS).sum())
    return (u[:, :r] ** 2).sum(axis=1), r


def average_ranks(x: np.ndarray, tol_rel: float = TIE_TOL) -> np.ndarray:
    """1-based ranks, ties (values within tol_rel * max|x| of their sorted neighbour) averaged."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    order = np.argsort(x, kind="stable")
    xs = x[order]
    tol = tol_rel * (np.abs(x).max() if n else 0.0)
    ranks = np.empty(n)
    start = 0
    for t in range(1, n + 1):
        if t == n or xs[t] - xs[t - 1] > tol:
            ranks[order[start:t]] = (start + 1 + t) / 2.0  # mean of start+1 .. t
            start = t
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's rho = Pearson correlation of average ranks; None if undefined."""
    if len(x) < 2:
        return None
    rx, ry = average_ranks(x), average_ranks(y)
    rx = rx - rx.mean()
    ry = ry - ry.mean()
    den = math.sqrt((rx**2).sum() * (ry**2).sum())
    if den == 0:
        return None
    return float((rx * ry).sum() / den)


# --------------------------------------------------------------------------
# one head
# --------------------------------------------------------------------------

def head_measures(
    q,
    k,
    scale: float,
    window: int | None = None,
    probs=None,
    w_q=None,
    w_k=None,
    keep_vectors: bool = False,
) -> dict:
    """Every per-head measure of SPEC.md, dense and in f64."""
    q = np.asarray(q, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    n, d = q.shape
    assert k.shape == (n, d), (q.shape, k.shape)
    c = support_mask(n, window)

    s = extended_logits(q, k, scale)
    e, _m = energy_field(s, c)
    out: dict = {}

    # §1 invariants on rows
    out["zero_sum_residual"] = zero_sum_residual(e, c)
    logp64 = log_softmax_f64(s, c)
    if probs is not None:
        p = np.asarray(probs, dtype=np.float64)
        on = p[c]
        if (on <= 0).any():
            # the model's softmax underflowed on the support: log P = -inf there
            out["shift_consistency"] = None
        else:
            logp_model = np.where(c, np.log(np.where(c, p, 1.0)), -np.inf)
            out["shift_consistency"] = shift_consistency(e, logp_model, c)
        out["attention_entropy"] = attention_entropy(p, c)
    else:
        out["shift_consistency"] = None
        out["attention_entropy"] = attention_entropy(np.exp(logp64), c)
    out["shift_consistency_f64_softmax"] = shift_consistency(e, logp64, c)

    # §2-3 rank bound and spectrum (full n x n SVD of the extended field)
    rank_bound = d + 1
    sig = np.linalg.svd(e, compute_uv=False)
    out["rank_bound"] = rank_bound
    out["numerical_rank"] = int((sig > sig[0] * max(n, d) * EPS).sum()) if sig[0] > 0 else 0
    spec = sig[: min(n, rank_bound)]
    out["spectrum"] = [float(x) for x in spec]
    out["k90"] = k_fraction(spec, 0.90)
    out["k99"] = k_fraction(spec, 0.99)
    out["effective_rank"] = effective_rank(spec)
    out["stable_rank"] = stable_rank(spec)

    # learned interaction M = W_Q W_K^T (d_model x d_model)
    if w_q is not None and w_k is not None:
        w_q = np.asarray(w_q, dtype=np.float64)
        w_k = np.asarray(w_k, dtype=np.float64)
        sm = np.linalg.svd(w_q @ w_k.T, compute_uv=False)[: min(w_q.shape[0], d)]
        out["k90_learned"] = k_fraction(sm, 0.90)
        out["effective_rank_learned"] = effective_rank(sm)
        er = out["effective_rank"]
        out["spectral_gap"] = out["effective_rank_learned"] / er if er > 0 else None
    else:
        out["k90_learned"] = out["effective_rank_learned"] = out["spectral_gap"] = None

    # §4 key energy
    cj = key_energy(e, c)
    out["participation_ratio"] = participation_ratio(cj)
    out["top1pct_share"] = top1pct_share(cj)
    out["argmax_key"] = int(np.argmax(cj))

    # §5 leverage of B = [K, 1]
    lev, r = leverage(np.hstack([k, np.ones((n, 1))]))
    out["key_coherence"] = float(n / r * lev.max()) if r > 0 else None
    out["energy_leverage_spearman"] = spearman(cj, lev)

    if keep_vectors:
        out["key_energy"] = cj
        out["leverage"] = lev
        out["singular_values"] = sig
    return out
