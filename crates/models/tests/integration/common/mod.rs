//! Test helpers: where real models are (the `testdata` dev-dependency).
#![allow(unused_imports)]
pub use testdata::*;
