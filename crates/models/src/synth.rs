//! Synthetic Llama-shaped GGUF files with random Q4_0 weights, to measure
//! scale (memory, time per layer) without downloading a model.
//!
//! The file is a valid GGUF v3 `llama` model: Q4_0 projections, embedding
//! and output layer, F32 norms (all ones), and a tiny SentencePiece
//! vocabulary of 259 tokens (`<unk>`, `<s>`, `</s>` and the 256 byte tokens),
//! so any UTF-8 text tokenizes byte by byte. Weights are uniform random
//! 4-bit codes with one scale per block chosen so that each projection has
//! standard deviation ≈ 1/√fan_in: activations stay finite through any
//! depth. [`write_gguf`] writes tensor by tensor through a small buffer and
//! never holds the model in memory (a 70B-shaped file of ~36 GiB is written
//! with a few MB of RSS).
//!
//! Presets: [`SynthSpec::llama_7b`] (Llama-2-7B shape) and
//! [`SynthSpec::llama_70b`] (Llama-2-70B shape), plus [`SynthSpec::small`]
//! for tests. `cargo run --release -p attnscope-models --example synth_gguf` writes
//! them from the command line.

use std::io::{self, BufWriter, Write};
use std::path::Path;

/// The shape of a synthetic Llama model. Dimensions that feed a Q4_0 row
/// (d_model, d_ff) must be multiples of 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthSpec {
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub d_ff: usize,
    pub context_length: usize,
}

impl SynthSpec {
    /// Llama-2-7B shape: 32 layers, d_model 4096, 32 heads (head_dim 128),
    /// no GQA, FFN 11008. About 3.4 GiB as Q4_0 (with the tiny vocabulary).
    pub fn llama_7b() -> Self {
        Self { n_layers: 32, d_model: 4096, n_heads: 32, n_kv_heads: 32, d_ff: 11008, context_length: 4096 }
    }
    /// Llama-2-70B shape: 80 layers, d_model 8192, 64 heads (head_dim 128),
    /// 8 KV heads, FFN 28672. About 36 GiB as Q4_0.
    pub fn llama_70b() -> Self {
        Self { n_layers: 80, d_model: 8192, n_heads: 64, n_kv_heads: 8, d_ff: 28672, context_length: 4096 }
    }
    /// A small model for tests: d_model 512, 8 heads (head_dim 64), 4 KV
    /// heads, FFN 1536, `n_layers` layers (~1.7 MB of Q4_0 per layer).
    pub fn small(n_layers: usize) -> Self {
        Self { n_layers, d_model: 512, n_heads: 8, n_kv_heads: 4, d_ff: 1536, context_length: 2048 }
    }
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }
    /// Bytes of tensor data (without header and padding).
    pub fn data_bytes(&self) -> u64 {
        self.tensors().iter().map(|t| t.bytes()).sum()
    }

    fn tensors(&self) -> Vec<TensorPlan> {
        let (dm, ff, kv) = (self.d_model as u64, self.d_ff as u64, (self.n_kv_heads * self.head_dim()) as u64);
        let v = VOCAB as u64;
        let q = |name: String, ne: [u64; 2]| TensorPlan { name, ne: ne.to_vec(), kind: Kind::Q4_0 };
        let ones = |name: String| TensorPlan { name, ne: vec![dm], kind: Kind::Ones };
        let mut ts = vec![q("token_embd.weight".into(), [dm, v]), ones("output_norm.weight".into()), q("output.weight".into(), [dm, v])];
        for l in 0..self.n_layers {
            let b = |s: &str| format!("blk.{l}.{s}");
            ts.push(ones(b("attn_norm.weight")));
            ts.push(q(b("attn_q.weight"), [dm, dm]));
            ts.push(q(b("attn_k.weight"), [dm, kv]));
            ts.push(q(b("attn_v.weight"), [dm, kv]));
            ts.push(q(b("attn_output.weight"), [dm, dm]));
            ts.push(ones(b("ffn_norm.weight")));
            ts.push(q(b("ffn_gate.weight"), [dm, ff]));
            ts.push(q(b("ffn_up.weight"), [dm, ff]));
            ts.push(q(b("ffn_down.weight"), [ff, dm]));
        }
        ts
    }

    fn check(&self) -> io::Result<()> {
        let ok = self.n_layers > 0
            && self.n_heads > 0
            && self.n_kv_heads > 0
            && self.n_heads.is_multiple_of(self.n_kv_heads)
            && self.d_model.is_multiple_of(self.n_heads)
            && self.head_dim().is_multiple_of(2)
            && self.d_model.is_multiple_of(32)
            && self.d_ff.is_multiple_of(32)
            && (self.n_kv_heads * self.head_dim()).is_multiple_of(32);
        if ok {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::InvalidInput, format!("inconsistent synthetic shape {self:?}")))
        }
    }
}

/// `<unk>`, `<s>`, `</s>`, then `<0x00>` … `<0xFF>`.
pub const VOCAB: usize = 259;
const ALIGN: u64 = 32;
/// Q4_0: 32 values in 18 bytes (f16 scale, 16 bytes of 4-bit codes).
const Q4_0_BLOCK: u64 = 32;
const Q4_0_BYTES: u64 = 18;
/// √E[(q − 8)²] for q uniform in 0..16: the std of a Q4_0 code.
const CODE_STD: f64 = 4.636809247747852;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Q4_0,
    /// F32 ones (norm weights).
    Ones,
}

struct TensorPlan {
    name: String,
    /// ggml order: ne[0] is the row (input) dimension.
    ne: Vec<u64>,
    kind: Kind,
}

impl TensorPlan {
    fn elems(&self) -> u64 {
        self.ne.iter().product()
    }
    fn bytes(&self) -> u64 {
        match self.kind {
            Kind::Q4_0 => self.elems() / Q4_0_BLOCK * Q4_0_BYTES,
            Kind::Ones => 4 * self.elems(),
        }
    }
    fn ggml_type(&self) -> u32 {
        match self.kind {
            Kind::Q4_0 => 2,
            Kind::Ones => 0,
        }
    }
}

/// SplitMix64: fast, seedable, good enough for random codes. The same
/// algorithm as `field::Rng`, kept here because `models` (loaders and the
/// decoder) does not depend on `field` (the math crate), and a synthetic test
/// checkpoint is not worth that dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn put_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

enum Meta<'a> {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(&'a str),
    Strs(Vec<String>),
    F32s(Vec<f32>),
    I32s(Vec<i32>),
}

fn put_kv(w: &mut impl Write, key: &str, v: &Meta) -> io::Result<()> {
    put_str(w, key)?;
    match v {
        Meta::U32(x) => {
            w.write_all(&4u32.to_le_bytes())?;
            w.write_all(&x.to_le_bytes())
        }
        Meta::F32(x) => {
            w.write_all(&6u32.to_le_bytes())?;
            w.write_all(&x.to_le_bytes())
        }
        Meta::Bool(x) => {
            w.write_all(&7u32.to_le_bytes())?;
            w.write_all(&[*x as u8])
        }
        Meta::Str(s) => {
            w.write_all(&8u32.to_le_bytes())?;
            put_str(w, s)
        }
        Meta::Strs(v) => {
            w.write_all(&9u32.to_le_bytes())?;
            w.write_all(&8u32.to_le_bytes())?;
            w.write_all(&(v.len() as u64).to_le_bytes())?;
            v.iter().try_for_each(|s| put_str(w, s))
        }
        Meta::F32s(v) => {
            w.write_all(&9u32.to_le_bytes())?;
            w.write_all(&6u32.to_le_bytes())?;
            w.write_all(&(v.len() as u64).to_le_bytes())?;
            v.iter().try_for_each(|x| w.write_all(&x.to_le_bytes()))
        }
        Meta::I32s(v) => {
            w.write_all(&9u32.to_le_bytes())?;
            w.write_all(&5u32.to_le_bytes())?;
            w.write_all(&(v.len() as u64).to_le_bytes())?;
            v.iter().try_for_each(|x| w.write_all(&x.to_le_bytes()))
        }
    }
}

fn pad(w: &mut impl Write, written: u64) -> io::Result<u64> {
    let n = written.div_ceil(ALIGN) * ALIGN - written;
    w.write_all(&vec![0u8; n as usize])?;
    Ok(n)
}

/// Writes tensor data: random Q4_0 blocks with std ≈ 1/√ne[0], or ones.
fn write_data(w: &mut impl Write, t: &TensorPlan, rng: &mut Rng) -> io::Result<()> {
    const BUF_BLOCKS: usize = 1 << 16;
    match t.kind {
        Kind::Ones => {
            let one = 1f32.to_le_bytes();
            for _ in 0..t.elems() {
                w.write_all(&one)?;
            }
        }
        Kind::Q4_0 => {
            let scale = 1.0 / (CODE_STD * (t.ne[0] as f64).sqrt());
            let mut left = t.elems() / Q4_0_BLOCK;
            let mut buf = Vec::with_capacity(BUF_BLOCKS * Q4_0_BYTES as usize);
            while left > 0 {
                let n = left.min(BUF_BLOCKS as u64);
                buf.clear();
                for _ in 0..n {
                    let (a, b) = (rng.next(), rng.next());
                    // Block scale within ±25 % of the target, so scales vary as in real files.
                    let jitter = 0.75 + 0.5 * ((a >> 40) as f64 / (1u64 << 24) as f64);
                    buf.extend_from_slice(&half::f16::from_f64(scale * jitter).to_le_bytes());
                    buf.extend_from_slice(&b.to_le_bytes());
                    buf.extend_from_slice(&rng.next().to_le_bytes());
                }
                w.write_all(&buf)?;
                left -= n;
            }
        }
    }
    Ok(())
}

/// Writes a synthetic Llama GGUF of shape `spec` to `path`, tensor by
/// tensor (a few MB of memory whatever the size). Deterministic in `seed`.
/// Returns the file size in bytes.
pub fn write_gguf(path: &Path, spec: &SynthSpec, seed: u64) -> io::Result<u64> {
    spec.check()?;
    let tensors = spec.tensors();
    let mut tokens = vec!["<unk>".to_string(), "<s>".to_string(), "</s>".to_string()];
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    let mut types = vec![2i32, 3, 3];
    types.extend(std::iter::repeat_n(6, 256));
    let name = format!("synthetic llama {} layers d_model {} (random Q4_0, attnscope models::synth)", spec.n_layers, spec.d_model);
    let kvs: Vec<(&str, Meta)> = vec![
        ("general.architecture", Meta::Str("llama")),
        ("general.name", Meta::Str(&name)),
        ("llama.embedding_length", Meta::U32(spec.d_model as u32)),
        ("llama.feed_forward_length", Meta::U32(spec.d_ff as u32)),
        ("llama.block_count", Meta::U32(spec.n_layers as u32)),
        ("llama.attention.head_count", Meta::U32(spec.n_heads as u32)),
        ("llama.attention.head_count_kv", Meta::U32(spec.n_kv_heads as u32)),
        ("llama.attention.layer_norm_rms_epsilon", Meta::F32(1e-5)),
        ("llama.context_length", Meta::U32(spec.context_length as u32)),
        ("llama.rope.freq_base", Meta::F32(10000.0)),
        ("llama.rope.dimension_count", Meta::U32(spec.head_dim() as u32)),
        ("tokenizer.ggml.model", Meta::Str("llama")),
        ("tokenizer.ggml.tokens", Meta::Strs(tokens)),
        ("tokenizer.ggml.scores", Meta::F32s(vec![0.0; VOCAB])),
        ("tokenizer.ggml.token_type", Meta::I32s(types)),
        ("tokenizer.ggml.unknown_token_id", Meta::U32(0)),
        ("tokenizer.ggml.bos_token_id", Meta::U32(1)),
        ("tokenizer.ggml.eos_token_id", Meta::U32(2)),
        ("tokenizer.ggml.add_bos_token", Meta::Bool(true)),
    ];
    let file = std::fs::File::create(path)?;
    let mut w = CountingWriter { inner: BufWriter::with_capacity(1 << 20, file), n: 0 };
    w.write_all(b"GGUF")?;
    w.write_all(&3u32.to_le_bytes())?;
    w.write_all(&(tensors.len() as u64).to_le_bytes())?;
    w.write_all(&(kvs.len() as u64).to_le_bytes())?;
    for (k, v) in &kvs {
        put_kv(&mut w, k, v)?;
    }
    let mut off = 0u64;
    for t in &tensors {
        put_str(&mut w, &t.name)?;
        w.write_all(&(t.ne.len() as u32).to_le_bytes())?;
        for d in &t.ne {
            w.write_all(&d.to_le_bytes())?;
        }
        w.write_all(&t.ggml_type().to_le_bytes())?;
        w.write_all(&off.to_le_bytes())?;
        off += t.bytes().div_ceil(ALIGN) * ALIGN;
    }
    let n = w.n;
    pad(&mut w, n)?;
    let mut rng = Rng(seed);
    for t in &tensors {
        write_data(&mut w, t, &mut rng)?;
        pad(&mut w, t.bytes())?;
    }
    w.inner.flush()?;
    Ok(w.n)
}

struct CountingWriter<W: Write> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Checkpoint, Logits, Model};

    /// A small synthetic file opens, has the stated shape and sizes, runs
    /// a forward pass with finite logits, and tokenizes text byte by byte.
    #[test]
    fn small_model_loads_and_runs() {
        let dir = std::env::temp_dir().join(format!("attnscope-synth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("small.gguf");
        let spec = SynthSpec { n_layers: 2, ..SynthSpec::small(2) };
        let size = write_gguf(&path, &spec, 7).unwrap();
        assert_eq!(size, std::fs::metadata(&path).unwrap().len());
        assert!(size >= spec.data_bytes());
        let ck = Checkpoint::open(path.to_str().unwrap(), None).unwrap();
        assert_eq!(ck.config["num_hidden_layers"], 2);
        assert_eq!(ck.config["num_key_value_heads"], 4);
        assert_eq!(ck.config["vocab_size"], VOCAB);
        let q = ck.tensors.get("model.layers.1.self_attn.q_proj.weight").unwrap();
        let v = q.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let std = (v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        let want = 1.0 / (spec.d_model as f64).sqrt();
        assert!((std / want - 1.0).abs() < 0.1, "weight std {std} vs {want}");
        let tok = ck.tokenizer.as_ref().unwrap();
        let ids = tok.encode("ab").unwrap();
        assert!(ids.len() >= 2 && ids.iter().all(|&i| (i as usize) < VOCAB), "{ids:?}");
        let model = Model::load(&ck).unwrap();
        let logits = model.forward_logits(&ids, Logits::All, None).unwrap();
        assert_eq!(logits.dims(), &[ids.len(), VOCAB]);
        assert!(logits.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().all(|x| x.is_finite()));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn presets_have_the_stated_shapes_and_sizes() {
        let s7 = SynthSpec::llama_7b();
        assert_eq!((s7.n_layers, s7.d_model, s7.n_heads, s7.head_dim()), (32, 4096, 32, 128));
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        assert!((3.3..3.6).contains(&gib(s7.data_bytes())), "{}", gib(s7.data_bytes()));
        let s70 = SynthSpec::llama_70b();
        assert_eq!((s70.n_layers, s70.d_model, s70.n_heads, s70.n_kv_heads, s70.d_ff), (80, 8192, 64, 8, 28672));
        assert!((35.0..38.0).contains(&gib(s70.data_bytes())), "{}", gib(s70.data_bytes()));
        assert!(SynthSpec { d_ff: 100, ..s7 }.check().is_err());
    }
}
