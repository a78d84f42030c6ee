//! The integration tests of this crate, as one test binary (one link of
//! the dependency stack instead of one per file). Each file is a module;
//! run one with `cargo test --release -p <package> --test integration <module>`.

mod cli_analyze;
mod cli_bad_input;
mod cli_compress;
mod cli_determinism;
mod cli_families;
mod cli_monitor_eval;
mod cli_resume_kill;
mod cli_streaming;
mod cli_train_monitor;
mod common;
mod measures_reference;
mod monitor_lib;
mod report_browser;
