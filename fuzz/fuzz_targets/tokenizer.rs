//! libFuzzer target `tokenizer`: see attnscope_fuzz::tokenizer and docs/hardening.md.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = attnscope_fuzz::tokenizer(data);
});
