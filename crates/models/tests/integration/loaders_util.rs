//! Shared helpers for the loader tests (a module of this binary; the
//! attnscope crate's tests include it with `#[path]`): temp dirs, a minimal GGUF v3 writer, a
//! tiny llama2.c writer, and an error check that the message names the file.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use models::{Checkpoint, Error};

/// A fresh directory under the system temp dir, removed (with its files) when
/// the guard drops, also when the test panics.
pub struct TmpDir(PathBuf);

impl std::ops::Deref for TmpDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TmpDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn tmpdir(tag: &str) -> TmpDir {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!("attnscope-bad-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TmpDir(d)
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Opens `path` and expects an error mentioning its file name.
pub fn expect_err(path: &Path, tok: Option<&Path>) -> Error {
    let res = std::panic::catch_unwind(|| Checkpoint::open(path.to_str().unwrap(), tok));
    let res = res.unwrap_or_else(|_| panic!("panicked on {}", path.display()));
    let Err(e) = res else { panic!("{} opened although corrupt", path.display()) };
    let msg = e.to_string();
    let name = path.file_name().unwrap().to_str().unwrap();
    let tok_name = tok.and_then(|t| t.file_name()).and_then(|n| n.to_str()).unwrap_or("\u{0}");
    assert!(msg.contains(name) || msg.contains(tok_name), "error does not name the file: {msg}");
    e
}

// ---------- a minimal GGUF writer ----------

pub enum Kv {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(&'static str),
    Strs(Vec<String>),
    F32s(Vec<f32>),
    I32s(Vec<i32>),
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend((s.len() as u64).to_le_bytes());
    b.extend(s.as_bytes());
}

pub struct T {
    pub name: String,
    pub ne: Vec<u64>,
    pub ty: u32,
    pub data: Vec<u8>,
}

pub fn f32_tensor(name: &str, ne: &[u64], f: impl Fn(usize) -> f32) -> T {
    let n: u64 = ne.iter().product();
    let data = (0..n as usize).flat_map(|i| f(i).to_le_bytes()).collect();
    T { name: name.into(), ne: ne.to_vec(), ty: 0, data }
}

/// GGUF v3 bytes; tensor data aligned to `general.alignment` if given, else 32.
pub fn gguf(kvs: &[(&str, Kv)], tensors: &[T]) -> Vec<u8> {
    let align = kvs
        .iter()
        .find_map(|(k, v)| match (k, v) {
            (&"general.alignment", Kv::U32(a)) => Some(*a as u64),
            _ => None,
        })
        .unwrap_or(32);
    let mut b = Vec::new();
    b.extend(b"GGUF");
    b.extend(3u32.to_le_bytes());
    b.extend((tensors.len() as u64).to_le_bytes());
    b.extend((kvs.len() as u64).to_le_bytes());
    for (k, v) in kvs {
        put_str(&mut b, k);
        match v {
            Kv::U32(x) => {
                b.extend(4u32.to_le_bytes());
                b.extend(x.to_le_bytes());
            }
            Kv::F32(x) => {
                b.extend(6u32.to_le_bytes());
                b.extend(x.to_le_bytes());
            }
            Kv::Bool(x) => {
                b.extend(7u32.to_le_bytes());
                b.push(*x as u8);
            }
            Kv::Str(s) => {
                b.extend(8u32.to_le_bytes());
                put_str(&mut b, s);
            }
            Kv::Strs(v) => {
                b.extend(9u32.to_le_bytes());
                b.extend(8u32.to_le_bytes());
                b.extend((v.len() as u64).to_le_bytes());
                v.iter().for_each(|s| put_str(&mut b, s));
            }
            Kv::F32s(v) => {
                b.extend(9u32.to_le_bytes());
                b.extend(6u32.to_le_bytes());
                b.extend((v.len() as u64).to_le_bytes());
                v.iter().for_each(|x| b.extend(x.to_le_bytes()));
            }
            Kv::I32s(v) => {
                b.extend(9u32.to_le_bytes());
                b.extend(5u32.to_le_bytes());
                b.extend((v.len() as u64).to_le_bytes());
                v.iter().for_each(|x| b.extend(x.to_le_bytes()));
            }
        }
    }
    let mut off = 0u64;
    let mut offs = Vec::new();
    for t in tensors {
        put_str(&mut b, &t.name);
        b.extend((t.ne.len() as u32).to_le_bytes());
        t.ne.iter().for_each(|d| b.extend(d.to_le_bytes()));
        b.extend(t.ty.to_le_bytes());
        b.extend(off.to_le_bytes());
        offs.push(off);
        off += (t.data.len() as u64).div_ceil(align) * align;
    }
    while !(b.len() as u64).is_multiple_of(align) {
        b.push(0);
    }
    let start = b.len();
    for (t, o) in tensors.iter().zip(offs) {
        b.resize(start + o as usize, 0);
        b.extend(&t.data);
    }
    b
}

pub const D: u64 = 8; // hidden
pub const H: u32 = 2; // heads (d_head 4)
pub const HKV: u32 = 1;

/// A valid 1-layer model of `arch` with F32 weights (values i·0.001).
pub fn tiny_model(arch: &'static str, extra: Vec<(&'static str, Kv)>, mut tensors: Vec<T>) -> Vec<u8> {
    let mut kvs: Vec<(&str, Kv)> = vec![("general.architecture", Kv::Str(arch))];
    let k = |s: &str| -> &'static str { Box::leak(format!("{arch}.{s}").into_boxed_str()) };
    kvs.push((k("embedding_length"), Kv::U32(D as u32)));
    kvs.push((k("feed_forward_length"), Kv::U32(16)));
    kvs.push((k("block_count"), Kv::U32(1)));
    kvs.push((k("attention.head_count"), Kv::U32(H)));
    kvs.push((k("attention.head_count_kv"), Kv::U32(HKV)));
    kvs.push((k("attention.layer_norm_rms_epsilon"), Kv::F32(1e-6)));
    kvs.push((k("context_length"), Kv::U32(32)));
    kvs.extend(extra);
    let v = |i: usize| i as f32 * 0.001;
    let kv_dim = D / H as u64 * HKV as u64;
    let mut ts = vec![
        f32_tensor("token_embd.weight", &[D, 16], v),
        f32_tensor("output_norm.weight", &[D], v),
        f32_tensor("blk.0.attn_norm.weight", &[D], v),
        f32_tensor("blk.0.attn_q.weight", &[D, D], v),
        f32_tensor("blk.0.attn_k.weight", &[D, kv_dim], v),
        f32_tensor("blk.0.attn_v.weight", &[D, kv_dim], v),
        f32_tensor("blk.0.attn_output.weight", &[D, D], v),
        f32_tensor("blk.0.ffn_norm.weight", &[D], v),
        f32_tensor("blk.0.ffn_gate.weight", &[D, 16], v),
        f32_tensor("blk.0.ffn_up.weight", &[D, 16], v),
        f32_tensor("blk.0.ffn_down.weight", &[16, D], v),
    ];
    for t in tensors.drain(..) {
        ts.retain(|x| x.name != t.name);
        ts.push(t);
    }
    gguf(&kvs, &ts)
}

// ---------- llama2.c ----------

/// A valid llama2.c v0 file: dim 8, hidden 16, 1 layer, 2 heads, 1 KV head.
pub fn tiny_llama2c(vocab: i32, seq: i32, with_freq: bool) -> Vec<u8> {
    let (dim, hid, l, kv_dim) = (8usize, 16usize, 1usize, 4usize);
    let mut b = Vec::new();
    for x in [dim as i32, hid as i32, l as i32, 2, 1, vocab, seq] {
        b.extend(x.to_le_bytes());
    }
    let v = vocab.unsigned_abs() as usize;
    let mut n = v * dim + l * dim + l * dim * dim + 2 * l * kv_dim * dim + l * dim * dim + l * dim + 3 * l * hid * dim + dim;
    if with_freq {
        n += 2 * seq as usize * 2;
    }
    if vocab < 0 {
        n += v * dim;
    }
    b.extend((0..n).flat_map(|i| (i as f32 * 1e-3).to_le_bytes()));
    b
}
