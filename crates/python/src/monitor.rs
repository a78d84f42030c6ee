//! `attnscope.Monitor`: the Rust monitor's rules and files, fed with heads
//! measured from Python (a PyTorch model under capture).

use std::path::PathBuf;

use attnscope::monitor::{self as mon, HeadPoint, Rules};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::{json_to_py, to_py_err};

/// `Rules::default()` as a dict (the monitor's defaults, from Rust): the
/// keyword arguments of `Monitor`.
#[pyfunction]
pub fn default_rules(py: Python<'_>) -> PyResult<Py<PyDict>> {
    let r = Rules::default();
    let d = PyDict::new(py);
    d.set_item("z_max", r.z_max)?;
    d.set_item("min_history", r.min_history)?;
    d.set_item("window", r.window)?;
    d.set_item("rel_floor", r.rel_floor)?;
    d.set_item("band_measures", r.band_measures.iter().map(|m| m.name()).collect::<Vec<_>>())?;
    d.set_item("unformed_measures", r.unformed_measures.iter().map(|m| m.name()).collect::<Vec<_>>())?;
    d.set_item("settle", r.settle)?;
    d.set_item("settle_tol", r.settle_tol)?;
    d.set_item("formed_frac", r.formed_frac)?;
    d.set_item("consecutive", r.consecutive)?;
    d.set_item("band_step_frac", r.band_step_frac)?;
    d.set_item("step_max", r.step_max)?;
    d.set_item("step_min_history", r.step_min_history)?;
    d.set_item("relative", r.relative)?;
    d.set_item("band_after", r.band_after)?;
    d.set_item("coherence_max", r.coherence_max)?;
    d.set_item("coherence_frac", r.coherence_frac)?;
    d.set_item("collapse", r.collapse)?;
    d.set_item("collapse_k90", r.collapse_k90)?;
    d.set_item("log_band", r.log_band)?;
    d.set_item("revert_frac", r.revert_frac)?;
    d.set_item("jump", r.jump)?;
    d.set_item("left_frac", r.left_frac)?;
    Ok(d.unbind())
}

#[pyclass(module = "attnscope._core", name = "Monitor", unsendable)]
pub struct Monitor {
    inner: mon::Monitor,
}

#[pymethods]
impl Monitor {
    #[new]
    #[pyo3(signature = (out, z_max, min_history, window, rel_floor, band_measures, unformed_measures, settle, settle_tol, formed_frac,
                        consecutive, band_step_frac, step_max, step_min_history, relative, band_after, coherence_max, coherence_frac, collapse, collapse_k90,
                        log_band, revert_frac, jump, left_frac))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        out: Option<PathBuf>,
        z_max: f64,
        min_history: usize,
        window: usize,
        rel_floor: f64,
        band_measures: Vec<String>,
        unformed_measures: Vec<String>,
        settle: usize,
        settle_tol: f64,
        formed_frac: f64,
        consecutive: usize,
        band_step_frac: f64,
        step_max: f64,
        step_min_history: usize,
        relative: f64,
        band_after: u64,
        coherence_max: Option<f64>,
        coherence_frac: f64,
        collapse: bool,
        collapse_k90: bool,
        log_band: bool,
        revert_frac: f64,
        jump: f64,
        left_frac: f64,
    ) -> PyResult<Self> {
        let parse = |what: &str, names: &[String]| {
            names
                .iter()
                .map(|m| {
                    mon::Measure::parse(m).ok_or_else(|| {
                        PyValueError::new_err(format!(
                            "{what}: unknown measure {m:?}; known: {}",
                            mon::Measure::ALL.map(mon::Measure::name).join(", ")
                        ))
                    })
                })
                .collect::<PyResult<Vec<_>>>()
        };
        let band_measures = parse("band_measures", &band_measures)?;
        let unformed_measures = parse("unformed_measures", &unformed_measures)?;
        let rules = Rules {
            z_max,
            min_history,
            window,
            rel_floor,
            band_measures,
            unformed_measures,
            settle,
            settle_tol,
            formed_frac,
            consecutive,
            band_step_frac,
            step_max,
            step_min_history,
            relative,
            band_after,
            coherence_max,
            coherence_frac,
            collapse,
            collapse_k90,
            log_band,
            revert_frac,
            jump,
            left_frac,
        };
        rules.validate().map_err(PyValueError::new_err)?;
        let inner = mon::Monitor::new(Vec::new(), rules, out.as_deref()).map_err(to_py_err)?;
        Ok(Monitor { inner })
    }

    /// Applies the rules to one observation: `heads` is a list of dicts with
    /// layer, head, kv_head, n, d, key_coherence, participation_ratio, k90,
    /// attention_entropy, and optionally key_spread. Returns the new alerts as dicts.
    #[pyo3(signature = (step, heads, checkpoint=None))]
    fn observe(
        &mut self,
        py: Python<'_>,
        step: u64,
        heads: Vec<Bound<'_, PyDict>>,
        checkpoint: Option<String>,
    ) -> PyResult<Vec<Py<PyAny>>> {
        let mut points = Vec::with_capacity(heads.len());
        for h in &heads {
            let get = |k: &str| -> PyResult<Bound<'_, PyAny>> {
                h.get_item(k)?.ok_or_else(|| PyValueError::new_err(format!("Monitor.observe: a head has no {k:?}")))
            };
            points.push(HeadPoint {
                checkpoint: checkpoint.clone(),
                step,
                layer: get("layer")?.extract()?,
                head: get("head")?.extract()?,
                kv_head: get("kv_head")?.extract()?,
                n: get("n")?.extract()?,
                d: get("d")?.extract()?,
                key_coherence: get("key_coherence")?.extract()?,
                participation_ratio: get("participation_ratio")?.extract()?,
                k90: get("k90")?.extract()?,
                attention_entropy: get("attention_entropy")?.extract()?,
                // Optional: NaN (not watched) when the caller does not measure it.
                key_spread: match h.get_item("key_spread")? {
                    Some(v) if !v.is_none() => v.extract()?,
                    _ => f64::NAN,
                },
            });
        }
        points.sort_by_key(|p| (p.layer, p.head));
        let alerts = self.inner.observe_points(points).map_err(to_py_err)?;
        alerts
            .iter()
            .map(|a| {
                let v = serde_json::to_value(a).map_err(|e| PyValueError::new_err(e.to_string()))?;
                let obj = json_to_py(py, &v)?;
                obj.bind(py).set_item("message", a.to_string())?;
                Ok(obj)
            })
            .collect()
    }

    /// Every alert so far, as dicts.
    fn alerts(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        self.inner
            .alerts()
            .iter()
            .map(|a| json_to_py(py, &serde_json::to_value(a).map_err(|e| PyValueError::new_err(e.to_string()))?))
            .collect()
    }

    /// Writes monitor.html (when an output directory was given); returns the summary.
    #[pyo3(signature = (title="attnscope monitor"))]
    fn finish(&mut self, py: Python<'_>, title: &str) -> PyResult<Py<PyAny>> {
        let v = self.inner.finish(title).map_err(to_py_err)?;
        json_to_py(py, &v)
    }
}
