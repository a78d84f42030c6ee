//! Fingerprints that decide whether a finished run may be reused: a model
//! file replaced at the same path, another tokenizer, or other tokens must
//! never be mixed into one report.
//!
//! A file's fingerprint is its size, its mtime (ns) and FNV-1a 64 of its
//! first [`HEAD_BYTES`] (the header: GGUF metadata and tensor table,
//! safetensors JSON, llama2.c header) and of [`SAMPLES`] blocks of
//! [`SAMPLE_BYTES`] spread evenly over the rest (tensor bytes), the last
//! block included. About 1.3 MB read per file whatever its size. A
//! directory's is that of each regular file in it (sorted by name; hidden
//! files skipped). Not a cryptographic hash: it detects replacement and
//! edits, not an adversary who keeps size, mtime and every sampled byte.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, Result};

/// Bytes hashed from the start of every file.
pub const HEAD_BYTES: u64 = 1 << 20;
/// Blocks sampled after the head.
pub const SAMPLES: u64 = 64;
/// Size of one sampled block.
pub const SAMPLE_BYTES: u64 = 4096;

/// FNV-1a 64 over `bytes`, continuing from `h`.
pub fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    h
}

pub const FNV_START: u64 = 0xcbf29ce484222325;

/// FNV-1a 64 of token ids (little-endian u32s), as 16 hex digits.
pub fn of_ids(ids: &[u32]) -> String {
    let h = ids.iter().fold(FNV_START, |h, id| fnv(h, &id.to_le_bytes()));
    format!("{h:016x}")
}

/// The fingerprint of a file or a directory (see the module docs).
pub fn of_path(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot fingerprint {}", path.display()))?;
    if !meta.is_dir() {
        return of_file(path);
    }
    let mut files: Vec<_> = std::fs::read_dir(path)
        .with_context(|| format!("cannot fingerprint {}", path.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    let mut parts = Vec::new();
    for f in files {
        parts.push(format!("{}={}", f.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned()), of_file(&f)?));
    }
    Ok(format!("dir:{:016x}", fnv(FNV_START, parts.join(";").as_bytes())))
}

fn of_file(path: &Path) -> Result<String> {
    let ctx = || format!("cannot fingerprint {}", path.display());
    let meta = std::fs::metadata(path).with_context(ctx)?;
    let size = meta.len();
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    let mut f = std::fs::File::open(path).with_context(ctx)?;
    let mut h = FNV_START;
    let mut buf = vec![0u8; HEAD_BYTES.min(size) as usize];
    f.read_exact(&mut buf).with_context(ctx)?;
    h = fnv(h, &buf);
    if size > HEAD_BYTES {
        let rest = size - HEAD_BYTES;
        let mut block = vec![0u8; SAMPLE_BYTES.min(rest) as usize];
        for i in 0..SAMPLES {
            // Evenly spaced; the last block ends at the end of the file.
            let at = HEAD_BYTES + (rest - block.len() as u64) * i / (SAMPLES - 1);
            f.seek(SeekFrom::Start(at)).with_context(ctx)?;
            f.read_exact(&mut block).with_context(ctx)?;
            h = fnv(h, &block);
        }
    }
    Ok(format!("size {size}, mtime {mtime}, fnv {h:016x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_byte_size_or_mtime_changes_the_fingerprint() {
        let dir = std::env::temp_dir().join(format!("attnscope-fp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("m.bin");
        let mut bytes = vec![7u8; 3 << 20];
        std::fs::write(&p, &bytes).unwrap();
        let a = of_path(&p).unwrap();
        assert_eq!(a, of_path(&p).unwrap());
        // A byte in the last sampled block, same size, mtime restored.
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        *bytes.last_mut().unwrap() = 8;
        std::fs::write(&p, &bytes).unwrap();
        std::fs::File::options().write(true).open(&p).unwrap().set_modified(mtime).unwrap();
        let b = of_path(&p).unwrap();
        assert_ne!(a, b);
        // The header.
        bytes[10] = 1;
        std::fs::write(&p, &bytes).unwrap();
        std::fs::File::options().write(true).open(&p).unwrap().set_modified(mtime).unwrap();
        assert_ne!(b, of_path(&p).unwrap());
        // The directory sees its files.
        let d1 = of_path(&dir).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        assert_ne!(d1, of_path(&dir).unwrap());
        assert_ne!(of_ids(&[1, 2]), of_ids(&[2, 1]));
        std::fs::remove_dir_all(&dir).ok();
    }
}
