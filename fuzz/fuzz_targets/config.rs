//! libFuzzer target `config`: see attnscope_fuzz::config and docs/hardening.md.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = attnscope_fuzz::config(data);
});
