//! libFuzzer target `llama2c`: see attnscope_fuzz::llama2c and docs/hardening.md.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = attnscope_fuzz::llama2c(data);
});
