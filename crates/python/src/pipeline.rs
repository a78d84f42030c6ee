//! The CLI's pipeline and the Rust decoder, called in-process.

use std::path::PathBuf;

use anyhow::Context;
use attnscope::analyze::AnalyzeOptions;
use attnscope::observer::LayerQk;
use attnscope::options::{ModelOptions, RunOptions};
use models::{Checkpoint, LayerCapture, LogitTransform, Model, Observer, ObserverError};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::to_py_err;

/// `attnscope analyze` with these arguments, in this process (same files as the CLI).
#[pyfunction]
#[pyo3(signature = (model, texts, ctxs, out, *, layers=None, tokenizer=None, threads=None,
                    dense_check=false, beyond_trained_context=false, force=false, quiet=true))]
#[allow(clippy::too_many_arguments)]
pub fn analyze(
    py: Python<'_>,
    model: String,
    texts: Vec<PathBuf>,
    ctxs: Vec<usize>,
    out: PathBuf,
    layers: Option<String>,
    tokenizer: Option<PathBuf>,
    threads: Option<usize>,
    dense_check: bool,
    beyond_trained_context: bool,
    force: bool,
    quiet: bool,
) -> PyResult<()> {
    let args = AnalyzeOptions {
        source: ModelOptions { model: Some(model), tokenizer },
        texts,
        ctx: ctxs,
        layers,
        dense_check,
        beyond_trained_context,
        run: RunOptions { threads, quiet, out },
        force,
    };
    attnscope::tune_process();
    py.detach(|| attnscope::analyze::run(&args)).map_err(to_py_err)
}

/// The token ids attnscope feeds the model for `text` (the CLI's tokenizer).
#[pyfunction]
#[pyo3(signature = (model, text, *, tokenizer=None))]
pub fn tokenize(py: Python<'_>, model: String, text: String, tokenizer: Option<PathBuf>) -> PyResult<Vec<u32>> {
    py.detach(|| -> anyhow::Result<Vec<u32>> {
        let ck = Checkpoint::open(&model, tokenizer.as_deref()).with_context(|| format!("cannot load model {model}"))?;
        let tok = ck.tokenizer.as_ref().with_context(|| format!("no tokenizer found for {model}; pass tokenizer="))?;
        Ok(tok.encode(&text)?)
    })
    .map_err(to_py_err)
}

/// One captured layer, owned.
struct Captured {
    layer: usize,
    qk: LayerQk,
    scale: f64,
    window: Option<usize>,
    softcap: Option<f64>,
    alibi: Option<Vec<f64>>,
}

struct Collect(Vec<Captured>);

impl Observer for Collect {
    fn on_layer(&mut self, cap: &LayerCapture<'_>) -> Result<(), ObserverError> {
        let qk = LayerQk::from_capture(cap).map_err(|e| e.to_string())?;
        self.0.push(Captured {
            layer: cap.layer,
            qk,
            scale: cap.scale,
            window: cap.window,
            softcap: match cap.logit_transform {
                LogitTransform::None => None,
                LogitTransform::Softcap(c) => Some(c),
            },
            alibi: cap.alibi_slopes.map(<[f64]>::to_vec),
        });
        Ok(())
    }
}

/// Q, K, W_Q, W_K, scale, window, softcap of every layer of the Rust decoder
/// on `token_ids`: a list of dicts, q (h, n, d), k (h_kv, n, d), w_q (h, d_model, d),
/// w_k (h_kv, d_model, d), all float32.
#[pyfunction]
pub fn capture_rust(py: Python<'_>, model: String, token_ids: Vec<u32>) -> PyResult<Vec<Py<PyDict>>> {
    let layers = py
        .detach(|| -> anyhow::Result<Vec<Captured>> {
            let ck = Checkpoint::open(&model, None).with_context(|| format!("cannot load model {model}"))?;
            let m = Model::load(&ck).with_context(|| format!("cannot load model {model}"))?;
            let mut obs = Collect(Vec::new());
            m.forward_capture(&token_ids, &mut obs)?;
            Ok(obs.0)
        })
        .map_err(to_py_err)?;
    let mut out = Vec::new();
    for c in layers {
        let LayerQk { h, hkv, n, d, d_model, q, k, w_q_heads, w_k_heads } = c.qk;
        let arr = |v: Vec<f32>, shape: [usize; 3]| PyArray1::from_vec(py, v).reshape(shape);
        let d_ = PyDict::new(py);
        d_.set_item("layer", c.layer)?;
        d_.set_item("q", arr(q, [h, n, d])?)?;
        d_.set_item("k", arr(k, [hkv, n, d])?)?;
        d_.set_item("w_q", arr(w_q_heads.concat(), [h, d_model, d])?)?;
        d_.set_item("w_k", arr(w_k_heads.concat(), [hkv, d_model, d])?)?;
        d_.set_item("scale", c.scale)?;
        d_.set_item("window", c.window)?;
        d_.set_item("softcap", c.softcap)?;
        d_.set_item("alibi_slopes", c.alibi)?;
        out.push(d_.unbind());
    }
    Ok(out)
}
