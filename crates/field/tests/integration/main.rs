//! The integration tests of this crate, as one test binary (one link of
//! the dependency stack instead of one per file). Each file is a module;
//! run one with `cargo test --release -p <package> --test integration <module>`.

mod agreement;
mod common;
mod edges;
mod errors;
mod faults;
mod rank_r;
