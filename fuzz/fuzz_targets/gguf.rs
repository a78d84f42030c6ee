//! libFuzzer target `gguf`: see attnscope_fuzz::gguf and docs/hardening.md.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = attnscope_fuzz::gguf(data);
});
