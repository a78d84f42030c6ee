//! Test helpers: where real models are (see `models::testdata`).
#![allow(unused_imports)]
pub use models::testdata::*;
