//! tokenizer.json special-token handling against transformers 5.24's
//! `AutoTokenizer.from_pretrained(dir)(text)["input_ids"]`, for
//! combinations of post-processor and tokenizer_config.json flags. The
//! expected ids were produced by transformers on exactly these files
//! (tiny fixture tokenizers, text "Before we").

use std::path::{Path, PathBuf};

use models::TextTokenizer;
use serde_json::{json, Value};

const TEXT: &str = "Before we";
const PLAIN: [u32; 5] = [35, 70, 71, 360, 325];

fn tiny(family: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/tiny/{family}/tokenizer.json"));
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn setup(tag: &str, tokenizer: &Value, config: Option<Value>) -> PathBuf {
    let d = std::env::temp_dir().join(format!("attnscope-tokhf-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("tokenizer.json"), serde_json::to_vec(tokenizer).unwrap()).unwrap();
    if let Some(c) = config {
        std::fs::write(d.join("tokenizer_config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
    }
    d.join("tokenizer.json")
}

fn ids(path: &Path) -> (Vec<u32>, bool) {
    let t = TextTokenizer::from_tokenizer_json(path).unwrap();
    let ids = t.encode(TEXT).unwrap();
    assert_eq!(t.adds_bos(), ids.first() == Some(&1), "adds_bos() agrees with encode()");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    (ids, t.adds_bos())
}

fn with_bos() -> Vec<u32> {
    let mut v = vec![1];
    v.extend(PLAIN);
    v
}

#[test]
fn post_processor_is_authoritative_over_add_bos_token() {
    let llama = tiny("llama"); // TemplateProcessing adds <s>
    let gpt2 = tiny("gpt2"); // ByteLevel post-processor, no BOS
    let cfg = |add: Option<bool>, class: Option<&str>| {
        let mut c = json!({"bos_token": "<s>", "eos_token": "<|endoftext|>"});
        if let Some(a) = add {
            c["add_bos_token"] = json!(a);
        }
        if let Some(k) = class {
            c["tokenizer_class"] = json!(k);
        }
        Some(c)
    };
    assert_eq!(ids(&setup("a", &llama, cfg(Some(false), None))).0, with_bos());
    assert_eq!(ids(&setup("b", &llama, None)).0, with_bos());
    let mut eos_cfg = cfg(Some(true), None).unwrap();
    eos_cfg["add_eos_token"] = json!(true);
    assert_eq!(ids(&setup("c", &llama, Some(eos_cfg))).0, with_bos());
    assert_eq!(ids(&setup("d", &llama, cfg(Some(true), Some("GPTNeoXTokenizer")))).0, PLAIN.to_vec());
    assert_eq!(ids(&setup("e", &gpt2, cfg(Some(true), None))).0, PLAIN.to_vec());
    let mut null_pp = gpt2.clone();
    null_pp["post_processor"] = Value::Null;
    assert_eq!(ids(&setup("f", &null_pp, cfg(Some(true), None))).0, PLAIN.to_vec());
    assert_eq!(ids(&setup("g", &null_pp, cfg(None, None))).0, PLAIN.to_vec());
}

#[test]
fn bos_id_found_without_tokenizer_config() {
    let p = setup("h", &tiny("llama"), None);
    let t = TextTokenizer::from_tokenizer_json(&p).unwrap();
    assert_eq!(t.bos_id(), Some(1));
    assert!(t.adds_bos());
    let _ = std::fs::remove_dir_all(p.parent().unwrap());
}

#[test]
fn corrupt_tokenizer_json_names_the_file() {
    let d = std::env::temp_dir().join(format!("attnscope-tokhf-bad-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("tokenizer.json");
    std::fs::write(&p, b"{\"model\": 3}").unwrap();
    let e = TextTokenizer::from_tokenizer_json(&p).err().unwrap();
    assert!(e.to_string().contains("tokenizer.json"), "{e}");
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn stored_truncation_and_padding_do_not_apply() {
    // transformers: tokenizer(text) neither truncates nor pads by default.
    let mut t = tiny("gpt2");
    t["truncation"] = json!({"direction": "Right", "max_length": 2, "strategy": "LongestFirst", "stride": 0});
    t["padding"] = json!({"strategy": {"Fixed": 16}, "direction": "Right", "pad_to_multiple_of": null, "pad_id": 0, "pad_type_id": 0, "pad_token": "<|endoftext|>"});
    assert_eq!(ids(&setup("trunc", &t, None)).0, PLAIN.to_vec());
}
