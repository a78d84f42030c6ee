//! One head and one layer: numpy in, `field::analyze` out.

use attnscope::observer::HeadRecord;
use field::{HeadInput, Method, Params, Values};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rayon::prelude::*;

use crate::arrays::{rows, Arr};
use crate::json_to_py;

/// What every head of a call shares.
struct Settings {
    scale: f64,
    window: Option<usize>,
    softcap: Option<f64>,
    params: Params,
}

fn params(method: &str, max_check_rows: usize, keep_key_energy: bool, keep_leverage: bool) -> PyResult<Params> {
    let method = match method {
        "factored" => Method::Factored,
        "dense" => Method::Dense,
        other => return Err(PyValueError::new_err(format!("method must be \"factored\" or \"dense\", got {other:?}"))),
    };
    Ok(Params { method, max_check_rows, keep_key_energy, keep_leverage, ..Params::default() })
}

/// One head's input, borrowed.
fn input<'a>(
    q: Values<'a>,
    k: Values<'a>,
    n: usize,
    d: usize,
    s: &Settings,
    alibi: Option<f64>,
    w: Option<(Values<'a>, Values<'a>, usize)>,
) -> HeadInput<'a> {
    let mut h = HeadInput::new(q, k, n, d, s.scale);
    if let Some(win) = s.window {
        h = h.with_window(win);
    }
    if let Some(m) = alibi {
        h = h.with_alibi(m);
    }
    if let Some(c) = s.softcap {
        h = h.with_softcap(c);
    }
    if let Some((wq, wk, d_model)) = w {
        h = h.with_weights(wq, wk, d_model);
    }
    h
}

fn field_err(e: field::FieldError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// Every measure of one head (see attnscope.analyze_head).
#[pyfunction]
#[pyo3(signature = (q, k, scale, *, window=None, alibi_slope=None, softcap=None, w_q=None, w_k=None,
                    method="factored", max_check_rows=1024, keep_key_energy=false, keep_leverage=false))]
#[allow(clippy::too_many_arguments)]
pub fn analyze_head(
    py: Python<'_>,
    q: &Bound<'_, PyAny>,
    k: &Bound<'_, PyAny>,
    scale: f64,
    window: Option<usize>,
    alibi_slope: Option<f64>,
    softcap: Option<f64>,
    w_q: Option<&Bound<'_, PyAny>>,
    w_k: Option<&Bound<'_, PyAny>>,
    method: &str,
    max_check_rows: usize,
    keep_key_energy: bool,
    keep_leverage: bool,
) -> PyResult<Py<PyAny>> {
    let (qa, ka) = (Arr::borrow(q, "q")?, Arr::borrow(k, "k")?);
    let qs = qa.dims("q", 2, "(n, d)")?;
    let ks = ka.dims("k", 2, "(n, d)")?;
    if qs != ks {
        return Err(PyValueError::new_err(format!("q and k must have the same shape (n, d), got {qs:?} and {ks:?}")));
    }
    let (wqa, wka) = match (w_q, w_k) {
        (Some(a), Some(b)) => (Some(Arr::borrow(a, "w_q")?), Some(Arr::borrow(b, "w_k")?)),
        (None, None) => (None, None),
        _ => return Err(PyValueError::new_err("give both w_q and w_k, or neither")),
    };
    let weights = match (&wqa, &wka) {
        (Some(a), Some(b)) => {
            let (sa, sb) = (a.dims("w_q", 2, "(d_model, d)")?, b.dims("w_k", 2, "(d_model, d)")?);
            if sa != sb || sa[1] != qs[1] {
                return Err(PyValueError::new_err(format!(
                    "w_q and w_k must both be (d_model, d) with d = {}, got {sa:?} and {sb:?}",
                    qs[1]
                )));
            }
            Some((a.values("w_q")?, b.values("w_k")?, sa[0]))
        }
        _ => None,
    };
    let s = Settings { scale, window, softcap, params: params(method, max_check_rows, keep_key_energy, keep_leverage)? };
    let head = input(qa.values("q")?, ka.values("k")?, qs[0], qs[1], &s, alibi_slope, weights);
    let out = py.detach(|| field::analyze(&head, &s.params)).map_err(field_err)?;
    let v = serde_json::to_value(&out).map_err(|e| PyValueError::new_err(e.to_string()))?;
    json_to_py(py, &v)
}

/// `key_spread` of one KV head's keys k (n, d): 1 − λ₁/Σλ of the centred keys'
/// Gram (see attnscope.key_spread; docs/definitions.md). float64 keys are
/// rounded to float32 first, the precision the decoder's keys have; NaN when
/// the centred keys are all zero or not finite.
#[pyfunction]
pub fn key_spread(py: Python<'_>, k: &Bound<'_, PyAny>) -> PyResult<f64> {
    let ka = Arr::borrow(k, "k")?;
    let ks = ka.dims("k", 2, "(n, d)")?;
    let keys: Vec<f32> = match ka.values("k")? {
        field::Values::F32(v) => v.to_vec(),
        field::Values::F64(v) => v.iter().map(|&x| x as f32).collect(),
    };
    Ok(py.detach(|| field::key_spread(&keys, ks[0], ks[1])))
}

/// Every head of one layer, in parallel, as heads.parquet bytes with the
/// columns `layer, head, kv_head` + every scalar measure (see attnscope.analyze_layer).
#[pyfunction]
#[pyo3(signature = (q, k, scale, *, layer=0, window=None, alibi_slopes=None, softcap=None, w_q=None, w_k=None,
                    method="factored", max_check_rows=1024))]
#[allow(clippy::too_many_arguments)]
pub fn analyze_layer_parquet<'py>(
    py: Python<'py>,
    q: &Bound<'py, PyAny>,
    k: &Bound<'py, PyAny>,
    scale: f64,
    layer: usize,
    window: Option<usize>,
    alibi_slopes: Option<Vec<f64>>,
    softcap: Option<f64>,
    w_q: Option<&Bound<'py, PyAny>>,
    w_k: Option<&Bound<'py, PyAny>>,
    method: &str,
    max_check_rows: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let (qa, ka) = (Arr::borrow(q, "Q")?, Arr::borrow(k, "K")?);
    let qs = qa.dims("Q", 3, "(heads, n, d)")?;
    let ks = ka.dims("K", 3, "(kv_heads, n, d)")?;
    let (h, n, d, hkv) = (qs[0], qs[1], qs[2], ks[0]);
    if ks[1] != n || ks[2] != d {
        return Err(PyValueError::new_err(format!("K must be (kv_heads, n, d) with n = {n}, d = {d}, got {ks:?}")));
    }
    if h == 0 || hkv == 0 || h % hkv != 0 {
        return Err(PyValueError::new_err(format!(
            "the number of query heads ({h}) must be a positive multiple of the number of KV heads ({hkv})"
        )));
    }
    if let Some(sl) = &alibi_slopes {
        if sl.len() != h {
            return Err(PyValueError::new_err(format!("alibi_slopes needs one slope per query head ({h}), got {}", sl.len())));
        }
    }
    let (wqa, wka) = match (w_q, w_k) {
        (Some(a), Some(b)) => (Some(Arr::borrow(a, "W_Q")?), Some(Arr::borrow(b, "W_K")?)),
        (None, None) => (None, None),
        _ => return Err(PyValueError::new_err("give both w_q and w_k, or neither")),
    };
    let weights = match (&wqa, &wka) {
        (Some(a), Some(b)) => {
            let sa = a.dims("w_q", 3, "(heads, d_model, d)")?;
            let sb = b.dims("w_k", 3, "(kv_heads, d_model, d)")?;
            if sa[0] != h || sb[0] != hkv || sa[2] != d || sb[2] != d || sa[1] != sb[1] {
                return Err(PyValueError::new_err(format!(
                    "w_q must be (heads={h}, d_model, d={d}) and w_k (kv_heads={hkv}, d_model, d={d}), got {sa:?} and {sb:?}"
                )));
            }
            Some((a.values("w_q")?, b.values("w_k")?, sa[1]))
        }
        _ => None,
    };
    let s = Settings { scale, window, softcap, params: params(method, max_check_rows, false, false)? };
    let (qv, kv) = (qa.values("Q")?, ka.values("K")?);
    let group = h / hkv;
    let result: Result<Vec<HeadRecord>, String> = py.detach(|| {
        (0..h)
            .into_par_iter()
            .map(|head| {
                let kv_head = head / group;
                let w = weights
                    .map(|(wq, wk, dm)| (rows(wq, head * dm, (head + 1) * dm, d), rows(wk, kv_head * dm, (kv_head + 1) * dm, d), dm));
                let slope = alibi_slopes.as_ref().map(|sl| sl[head]);
                let inp = input(rows(qv, head * n, (head + 1) * n, d), rows(kv, kv_head * n, (kv_head + 1) * n, d), n, d, &s, slope, w);
                field::analyze(&inp, &s.params)
                    .map(|field| HeadRecord { layer, head, kv_head, field })
                    .map_err(|e| format!("layer {layer} head {head}: {e}"))
            })
            .collect()
    });
    let records = result.map_err(PyValueError::new_err)?;
    let bytes = attnscope::report::records_parquet(&records).map_err(|e| PyValueError::new_err(format!("{e:#}")))?;
    Ok(PyBytes::new(py, &bytes))
}
