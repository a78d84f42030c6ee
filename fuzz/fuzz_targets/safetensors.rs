//! libFuzzer target `safetensors`: see attnscope_fuzz::safetensors and docs/hardening.md.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = attnscope_fuzz::safetensors(data);
});
