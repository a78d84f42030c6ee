//! `attnscope._core`: the Rust side of the Python package (python/attnscope).
//!
//! Thin on purpose: every measure comes from `field::analyze`, the pipeline
//! is `attnscope::analyze::run`, the monitor is `attnscope::monitor::Monitor`,
//! and the decoder is `models::Model`. This crate only converts arguments
//! (numpy arrays are borrowed, never copied) and releases the GIL while Rust
//! runs. Python-facing names and docs live in python/attnscope/.
//!
//! Build: maturin (pyproject.toml at the repo root) sets
//! `PYO3_BUILD_EXTENSION_MODULE`, so the extension does not link libpython;
//! under `cargo test --workspace` the crate (no Rust tests) links against the
//! libpython pyo3 finds, like any embedding build.

mod arrays;
mod head;
mod monitor;
mod pipeline;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use pyo3::IntoPyObjectExt;
use serde_json::Value;

pyo3::create_exception!(
    _core,
    AttnscopeError,
    pyo3::exceptions::PyException,
    "A user-facing attnscope error (bad model, text, option); the message says what to fix."
);
pyo3::create_exception!(
    _core,
    CheckFailed,
    AttnscopeError,
    "analyze(dense_check=True) found a measure that differs between the factored and the dense path."
);

/// A JSON value as the equivalent Python object (dict, list, str, int, float, bool, None).
pub(crate) fn json_to_py(py: Python<'_>, v: &Value) -> PyResult<Py<PyAny>> {
    Ok(match v {
        Value::Null => py.None(),
        Value::Bool(b) => b.into_py_any(py)?,
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.into_py_any(py)?,
            (None, Some(i)) => i.into_py_any(py)?,
            _ => n.as_f64().unwrap_or(f64::NAN).into_py_any(py)?,
        },
        Value::String(s) => s.into_py_any(py)?,
        Value::Array(a) => {
            let items = a.iter().map(|x| json_to_py(py, x)).collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_py_any(py)?
        }
        Value::Object(o) => {
            let d = PyDict::new(py);
            for (k, x) in o {
                d.set_item(k, json_to_py(py, x)?)?;
            }
            d.into_py_any(py)?
        }
    })
}

/// An anyhow error as a Python exception: `CheckFailed` for a failed
/// `--dense-check`, else `AttnscopeError`, with the whole context chain on one line.
pub(crate) fn to_py_err(e: anyhow::Error) -> PyErr {
    if e.downcast_ref::<attnscope::CheckFailed>().is_some() {
        CheckFailed::new_err(format!("{e:#}"))
    } else {
        AttnscopeError::new_err(format!("{e:#}"))
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // The binary's allocator setting (the library never changes it itself).
    models::alloc::tune();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("AttnscopeError", py.get_type::<AttnscopeError>())?;
    m.add("CheckFailed", py.get_type::<CheckFailed>())?;
    m.add_function(wrap_pyfunction!(head::analyze_head, m)?)?;
    m.add_function(wrap_pyfunction!(head::analyze_layer_parquet, m)?)?;
    m.add_function(wrap_pyfunction!(head::key_spread, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::analyze, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::tokenize, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::capture_rust, m)?)?;
    m.add_function(wrap_pyfunction!(monitor::default_rules, m)?)?;
    m.add_class::<monitor::Monitor>()?;
    Ok(())
}
