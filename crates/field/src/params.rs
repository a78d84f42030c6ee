//! How to compute: method selection and the few knobs of the analysis.

/// Which implementation computes the measures. Both give the same numbers
/// within the tolerances of the crate README.
/// Serialised (report.json, heads.csv) as `"factored"` / `"dense"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Never forms an n×n matrix: O(n·d²) time, O(n·d) memory, f64 internally.
    #[default]
    Factored,
    /// Reference: forms E (n×n, f64) and takes its full SVD. O(n³) time, O(n²) memory.
    Dense,
}

impl Method {
    /// `"factored"` or `"dense"`, as serialised.
    pub fn name(self) -> &'static str {
        match self {
            Method::Factored => "factored",
            Method::Dense => "dense",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Knobs of [`crate::analyze`] and [`crate::rank_r_fidelity`].
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Implementation (default [`Method::Factored`]).
    pub method: Method,
    /// Row checks (zero-sum, shift consistency, entropy, rank-r fidelity) use all
    /// rows when n ≤ this, else this many evenly spaced rows including the first
    /// and the last. Default 1024. Must be ≥ 1.
    pub max_check_rows: usize,
    /// Keep the key energies c_j in the output (`key_energy`). Default false.
    pub keep_key_energy: bool,
    /// Keep the leverage scores ℓ_j in the output (`leverage`). Default false.
    pub keep_leverage: bool,
    /// Soft-capped fields are computed densely; longer sequences are an error.
    /// Default 4096 (an n×n f64 matrix of 128 MiB).
    pub max_dense_n: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params { method: Method::Factored, max_check_rows: 1024, keep_key_energy: false, keep_leverage: false, max_dense_n: 4096 }
    }
}

impl Params {
    /// The default parameters with the dense reference method.
    pub fn dense() -> Self {
        Params { method: Method::Dense, ..Params::default() }
    }
}
