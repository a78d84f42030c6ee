//! The integration tests of this crate, as one test binary (one link of
//! the dependency stack instead of one per file). Each file is a module;
//! run one with `cargo test --release -p <package> --test integration <module>`.

mod common;
mod loaders;
mod loaders_bad_input;
mod loaders_hub;
mod loaders_smollm2;
mod loaders_synthetic;
mod loaders_util;
mod parity;
mod streaming;
mod tokenizer;
mod tokenizer_gguf_pre;
mod tokenizer_hf;
