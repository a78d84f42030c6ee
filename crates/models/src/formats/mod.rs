//! One loader per on-disk format, each normalising to the [`crate::Checkpoint`]
//! contract (HF config + HF-named f32 tensors in HF layouts), behind one
//! trait, [`TensorSource`]. This module depends on nothing in
//! [`crate::checkpoint`]; the checkpoint wraps a source.
//!
//! Shared here: a bounds-checked little-endian byte reader (every length read
//! from a file is checked against the bytes that remain *before* anything is
//! allocated from it), memory mapping, and the Q/K un-permutation that GGUF
//! llama and llama2.c checkpoints need.

pub mod dequant;
pub mod gguf;
pub mod gguf_model;
pub mod hf_dir;
pub mod llama2c;
pub mod memory;

use std::path::{Path, PathBuf};

use candle_core::Tensor;

use crate::{Error, Result};

/// A source of raw tensors under HF names. Implemented once per format.
pub trait TensorSource: Send + Sync {
    /// All tensor names (HF names), sorted.
    fn names(&self) -> Vec<String>;
    /// Shape of `name` in the HF layout, without reading its data.
    fn shape(&self, name: &str) -> Option<Vec<usize>>;
    /// Reads and dequantizes `name` to an f32 CPU tensor in the HF layout.
    /// File sources then release the mapped pages they read (the f32 copy is
    /// all that stays in memory).
    fn load(&self, name: &str) -> Result<Tensor>;
    /// [`Self::load`], with whether the source checked every value for
    /// NaN/Inf as it dequantized them: `Some(all finite)`, or `None` when
    /// it did not, and [`crate::TensorStore::get`] checks (the default).
    fn load_checked(&self, name: &str) -> Result<(Tensor, Option<bool>)> {
        Ok((self.load(name)?, None))
    }
    /// Rows `rows` of the 2-D tensor `name` (r, cols) as f32 (len(rows), cols),
    /// bit-identical to `load(name)` then `index_select(rows, 0)`. File
    /// sources dequantize only those rows (a quantized embedding table stays
    /// in the file). Every row index must be below the tensor's row count.
    fn load_rows(&self, name: &str, rows: &[u32]) -> Result<Tensor> {
        let t = self.load(name)?;
        let ids = Tensor::from_slice(rows, rows.len(), t.device())?;
        Ok(t.index_select(&ids, 0)?)
    }
    /// Bytes `name` takes as stored (quantized blocks, F16 …), `None` if unknown.
    fn stored_bytes(&self, name: &str) -> Option<u64> {
        self.shape(name).map(|s| 4 * s.iter().map(|&d| d as u64).product::<u64>())
    }
    /// True when the tensors already live in memory (a training loop's live
    /// weights): the decoder then keeps them all, with their autograd
    /// identity, instead of streaming one layer at a time.
    fn resident(&self) -> bool {
        false
    }
    /// True when every tensor was checked for NaN/Inf when the source was
    /// built (an in-memory source): [`crate::TensorStore::get`] then does
    /// not check again on every read. File sources return false: their
    /// tensors are checked as they are dequantized.
    fn prechecked(&self) -> bool {
        false
    }
    /// One-line description used in error messages (usually the file path).
    fn describe(&self) -> String;
}

/// `name`'s entry in a file source's name → entry table, or the error that
/// names the tensor and the file.
pub(crate) fn entry<'m, E>(map: &'m std::collections::BTreeMap<String, E>, name: &str, source: &dyn TensorSource) -> Result<&'m E> {
    map.get(name).ok_or_else(|| Error::MissingTensor { name: name.to_string(), source_desc: source.describe() })
}

/// Largest JSON side file read whole (config.json, tokenizer_config.json,
/// model.safetensors.index.json; real ones are a few KB to a few MB).
pub const JSON_MAX_BYTES: u64 = 64 << 20;
/// Largest tokenizer file read whole (tokenizer.json of a 256k-token
/// vocabulary is about 35 MB; a llama2.c tokenizer.bin a few MB).
pub const TOKENIZER_MAX_BYTES: u64 = 512 << 20;

/// The size of `path` if it is a regular file (after symlinks). A FIFO, a
/// device, a socket or a directory is an error naming it, found by `stat`
/// alone: nothing is opened, so a FIFO with no writer cannot block.
pub fn regular_file_len(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    let kind = file_kind(&meta);
    Err(io_err(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("not a regular file ({kind})"))))
}

/// What a file that is not a regular one is, for an error message:
/// "a directory", "a FIFO", "a device", "a socket", else "not a plain file".
pub fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a plain file"
    }
}

/// Reads a regular file whole, refusing one larger than `cap` bytes (also
/// if it grows past `cap` while it is read).
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let too_big = |n: u64| {
        io_err(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{n} bytes is more than the {cap} bytes this file may have")),
        )
    };
    let len = regular_file_len(path)?;
    if len > cap {
        return Err(too_big(len));
    }
    let mut buf = Vec::with_capacity(len as usize);
    std::fs::File::open(path).and_then(|f| f.take(cap + 1).read_to_end(&mut buf)).map_err(|e| io_err(path, e))?;
    if buf.len() as u64 > cap {
        return Err(too_big(buf.len() as u64));
    }
    Ok(buf)
}

/// [`read_capped`] as UTF-8 text.
pub fn read_capped_string(path: &Path, cap: u64) -> Result<String> {
    String::from_utf8(read_capped(path, cap)?).map_err(|e| {
        io_err(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not valid UTF-8 (first bad byte at offset {})", e.utf8_error().valid_up_to()),
            ),
        )
    })
}

/// Memory-maps `path` read-only (a regular file only).
pub(crate) fn mmap_file(path: &Path) -> Result<memmap2::Mmap> {
    regular_file_len(path)?;
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    // SAFETY: the map is read-only; we document that model files must not be
    // modified while a checkpoint is open (the same assumption as candle,
    // safetensors and llama.cpp make).
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| io_err(path, e))
}

/// Hands the pages of `mmap[start..start + len]` back to the page cache
/// (`MADV_DONTNEED`): they leave this process's resident set, and a later
/// read faults them in again from the page cache or the file, with the same
/// bytes. Called once a tensor's stored bytes have been converted to f32, so
/// that a model larger than RAM can be streamed. Best effort: errors are
/// ignored (the pages then simply stay until the kernel reclaims them).
pub(crate) fn release(mmap: &memmap2::Mmap, start: usize, len: usize) {
    #[cfg(unix)]
    if len > 0 && start.checked_add(len).is_some_and(|end| end <= mmap.len()) {
        // SAFETY: a read-only shared file mapping; MADV_DONTNEED only drops
        // page-table entries, so every later read sees the same file bytes
        // (model files must not change while open, as `mmap_file` says).
        let _ = unsafe { mmap.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len) };
    }
}

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io { path: path.to_path_buf(), source }
}

/// A cursor over a byte slice; every read is bounds-checked and reports the
/// file, the format and the offset on failure.
pub(crate) struct ByteReader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
    pub path: PathBuf,
    pub format: &'static str,
}

impl<'a> ByteReader<'a> {
    pub fn new(buf: &'a [u8], path: &Path, format: &'static str) -> Self {
        Self { buf, pos: 0, path: path.to_path_buf(), format }
    }
    pub fn err(&self, reason: impl Into<String>) -> Error {
        Error::Format { path: self.path.clone(), format: self.format, reason: reason.into() }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// The next `n` bytes; an error (never a panic) if fewer remain.
    pub fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "truncated: {what} needs {n} bytes at offset {} but only {} remain (file is {} bytes)",
                self.pos,
                self.remaining(),
                self.buf.len()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let b = self.bytes(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }
    pub fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    pub fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }
    pub fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }
    pub fn f64(&mut self, what: &str) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }
    /// A u64 length that must fit in the remaining bytes when each element
    /// takes at least `min_elem_bytes` (checked before any allocation).
    pub fn checked_len(&self, n: u64, min_elem_bytes: usize, what: &str) -> Result<usize> {
        let need = (n as u128) * (min_elem_bytes as u128);
        if need > self.remaining() as u128 {
            return Err(self.err(format!(
                "{what}: declared count {n} needs at least {need} bytes at offset {} but only {} remain",
                self.pos,
                self.remaining()
            )));
        }
        Ok(n as usize)
    }
}

/// Un-permutes Q/K projection rows from the interleaved rotary layout of
/// llama.cpp / llama2.c to HF's rotate-half layout, exactly like
/// transformers' `LlamaTensorProcessor._reverse_permute_weights`:
/// `w.reshape(n_head, dim, 2, *rest).swapaxes(2, 1).reshape(w.shape)` with
/// `dim = rows / n_head / 2`. `w`: (n_head·d_head, in) or (n_head·d_head,).
pub(crate) fn reverse_permute(w: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let dims = w.dims().to_vec();
    let rows = dims[0];
    if n_head == 0 || !rows.is_multiple_of(2 * n_head) {
        candle_core::bail!("cannot un-permute {rows} rows into {n_head} heads of rotary pairs");
    }
    let dim = rows / n_head / 2;
    let mut split = vec![n_head, dim, 2];
    split.extend_from_slice(&dims[1..]);
    // (n_head, dim, 2, in) → (n_head, 2, dim, in) → (rows, in)
    w.reshape(split)?.transpose(1, 2)?.contiguous()?.reshape(dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn reverse_permute_matches_numpy_reference() {
        // 2 heads, d_head 4 → dim 2; rows r = h*4 + j*2 + p  ↦  h*4 + p*2 + j.
        let w = Tensor::arange(0f32, 8., &Device::Cpu).unwrap().reshape((8, 1)).unwrap();
        let u = reverse_permute(&w, 2).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(u, vec![0., 2., 1., 3., 4., 6., 5., 7.]);
    }

    #[test]
    fn reader_rejects_overlong_lengths_without_allocating() {
        let buf = [1u8, 2, 3];
        let r = ByteReader::new(&buf, Path::new("x.bin"), "test");
        assert!(r.checked_len(u64::MAX, 1, "array").is_err());
        assert!(r.checked_len(3, 1, "array").is_ok());
    }
}
