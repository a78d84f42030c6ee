//! Borrowing numpy arrays as `field::Values` without copying them.

use field::Values;
use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// A read-only borrow of a C-contiguous float32 or float64 numpy array.
pub enum Arr<'py> {
    F32(PyReadonlyArrayDyn<'py, f32>),
    F64(PyReadonlyArrayDyn<'py, f64>),
}

impl<'py> Arr<'py> {
    /// Borrows `obj` (a numpy array of float32 or float64, any shape) as `what`.
    pub fn borrow(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Self> {
        if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'py, f32>>() {
            return Ok(Arr::F32(a));
        }
        if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'py, f64>>() {
            return Ok(Arr::F64(a));
        }
        let dtype = obj.getattr("dtype").map(|d| d.to_string()).unwrap_or_else(|_| obj.get_type().to_string());
        Err(PyTypeError::new_err(format!("{what} must be a numpy array of float32 or float64, got {dtype}")))
    }

    pub fn shape(&self) -> &[usize] {
        match self {
            Arr::F32(a) => a.shape(),
            Arr::F64(a) => a.shape(),
        }
    }

    /// The values in row-major order, borrowed (C-contiguous arrays only).
    pub fn values(&self, what: &str) -> PyResult<Values<'_>> {
        let err = |_| PyValueError::new_err(format!("{what} must be C-contiguous (np.ascontiguousarray)"));
        Ok(match self {
            Arr::F32(a) => Values::F32(a.as_slice().map_err(err)?),
            Arr::F64(a) => Values::F64(a.as_slice().map_err(err)?),
        })
    }

    /// Checks the number of dimensions and returns the shape.
    pub fn dims(&self, what: &str, ndim: usize, names: &str) -> PyResult<Vec<usize>> {
        let s = self.shape();
        if s.len() != ndim {
            return Err(PyValueError::new_err(format!("{what} must have shape {names}, got {s:?}")));
        }
        Ok(s.to_vec())
    }
}

/// Rows `r0..r1` of a row-major matrix with `cols` columns.
pub fn rows<'a>(v: Values<'a>, r0: usize, r1: usize, cols: usize) -> Values<'a> {
    match v {
        Values::F32(s) => Values::F32(&s[r0 * cols..r1 * cols]),
        Values::F64(s) => Values::F64(&s[r0 * cols..r1 * cols]),
    }
}
