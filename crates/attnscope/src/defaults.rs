//! Defaults that make `attnscope analyze` work on a fresh machine after
//! `scripts/setup.sh`: the model cache and the texts every Debian has.

use std::path::PathBuf;

/// The cache directory and the default model file (fetched by
/// `scripts/setup.sh`): one definition, in `models`.
pub use models::paths::default_model;

/// Where Debian keeps the license texts the default texts are taken from.
const LICENSES: &str = "/usr/share/common-licenses";

/// English texts present on every Debian machine: GPL-3, Apache-2.0 and
/// MPL-2.0 (`analyze`'s default texts, in this order).
pub fn default_texts() -> Vec<PathBuf> {
    ["GPL-3", "Apache-2.0", "MPL-2.0"].iter().map(|n| PathBuf::from(LICENSES).join(n)).collect()
}

/// `compress`'s default calibration text: the first default text (GPL-3).
pub fn default_calib_text() -> PathBuf {
    default_texts().swap_remove(0)
}

/// `compress`'s default evaluation text: the second default text (Apache-2.0).
pub fn default_eval_text() -> PathBuf {
    default_texts().swap_remove(1)
}
