//! A small, bounds-checked GGUF v2/v3 reader (header, metadata, tensor
//! infos, data section). Format reference: ggml's `docs/gguf.md`.
//!
//! Unlike candle's reader, every count, length and offset read from the file
//! is checked against the file length before anything is allocated or
//! sliced, so a corrupt or hostile file gives [`Error::Format`] naming the
//! file, never a panic or a huge allocation. Tensor data is dequantized by
//! candle's kernels (`qtensor_from_ggml`) after the byte range is checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};

use super::{mmap_file, ByteReader};
use crate::{Error, Result};

const FORMAT: &str = "GGUF";
/// "GGUF" little-endian.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
const MAX_DIMS: u32 = 4;
const MAX_ARRAY_DEPTH: u32 = 4;

/// One metadata value (all GGUF value types, arrays included).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Value>),
}

impl Value {
    /// Any integer type as u64 (negative values → None).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v as i64),
            Value::I16(v) => Some(v as i64),
            Value::I32(v) => Some(v as i64),
            Value::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }
    /// Any float or integer type as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// Where one tensor lives in the file.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `ne[0]` is the fastest-varying (innermost) dimension, so
    /// the HF/row-major shape is `ne` reversed. 2-D weight: ne = [in, out].
    pub ne: Vec<usize>,
    /// Raw ggml type id.
    pub ggml_type: u32,
    /// Absolute byte range in the file (checked to lie inside it).
    pub start: usize,
    pub len: usize,
}

impl TensorInfo {
    /// Row-major shape (ne reversed), e.g. (out, in) for a 2-D weight.
    pub fn shape(&self) -> Vec<usize> {
        self.ne.iter().rev().copied().collect()
    }
    /// Rows of `ne[0]` values: the product of the outer dims.
    pub fn n_rows(&self) -> usize {
        self.ne[1..].iter().product()
    }
}

/// A parsed GGUF file: metadata, tensor table, and the mapped bytes.
pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: BTreeMap<String, TensorInfo>,
    mmap: memmap2::Mmap,
}

/// ggml type id → (name, candle dtype if we can dequantize it, block size, bytes per block).
fn ggml_type(id: u32) -> Option<(&'static str, Option<GgmlDType>, usize, usize)> {
    use GgmlDType as G;
    Some(match id {
        0 => ("F32", Some(G::F32), 1, 4),
        1 => ("F16", Some(G::F16), 1, 2),
        2 => ("Q4_0", Some(G::Q4_0), 32, 18),
        3 => ("Q4_1", Some(G::Q4_1), 32, 20),
        6 => ("Q5_0", None, 32, 22),
        7 => ("Q5_1", None, 32, 24),
        8 => ("Q8_0", Some(G::Q8_0), 32, 34),
        9 => ("Q8_1", None, 32, 36),
        10 => ("Q2_K", None, 256, 84),
        11 => ("Q3_K", None, 256, 110),
        12 => ("Q4_K", Some(G::Q4K), 256, 144),
        13 => ("Q5_K", Some(G::Q5K), 256, 176),
        14 => ("Q6_K", Some(G::Q6K), 256, 210),
        15 => ("Q8_K", None, 256, 292),
        30 => ("BF16", Some(G::BF16), 1, 2),
        _ => return None,
    })
}

/// The tensor types [`GgufFile::load_f32`] dequantizes.
pub const SUPPORTED_TYPES: &str = "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K";

/// Whether [`GgufFile::load_f32`] can dequantize ggml type `id`.
pub fn ggml_type_supported(id: u32) -> bool {
    ggml_type(id).is_some_and(|t| t.1.is_some())
}

/// Human name of a ggml type id (e.g. "Q4_1", or "type 23").
pub fn ggml_type_name(id: u32) -> String {
    ggml_type(id).map(|t| t.0.to_string()).unwrap_or_else(|| format!("ggml type {id}"))
}

/// True if the first bytes of `path` are the GGUF magic.
/// (False, without opening it, for anything but a regular file.)
pub fn has_magic(path: &Path) -> bool {
    use std::io::Read;
    if super::regular_file_len(path).is_err() {
        return false;
    }
    let mut m = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut m)).is_ok() && m == GGUF_MAGIC
}

impl GgufFile {
    /// Parses header, metadata and tensor table of `path`, checking every
    /// tensor's byte range against the file length.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let mmap = mmap_file(path)?;
        let (version, metadata, tensors) = parse(&mmap, path)?;
        Ok(GgufFile { path: path.to_path_buf(), version, metadata, tensors, mmap })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// Metadata `key` as an unsigned integer: `None` when absent; an error
    /// naming the key when present with another type or a negative value
    /// (never a silent default for a corrupt value).
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| self.meta_err(key, "a non-negative integer")),
        }
    }

    /// Metadata `key` as a finite number (NaN and ±Inf are errors naming the key).
    pub fn opt_finite(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_f64().filter(|x| x.is_finite()).map(Some).ok_or_else(|| self.meta_err(key, "a finite number")),
        }
    }

    /// Metadata `key` as a bool (another type is an error naming the key).
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| self.meta_err(key, "a bool")),
        }
    }

    /// Error for a missing/mistyped metadata key.
    pub fn meta_err(&self, key: &str, want: &str) -> Error {
        Error::Format {
            path: self.path.clone(),
            format: FORMAT,
            reason: match self.get(key) {
                Some(v) => format!("metadata `{key}` is {}, not {want}", describe_value(v)),
                None => format!("metadata `{key}` missing or not {want}"),
            },
        }
    }

    /// Dequantizes tensor `info` to f32, row-major shape `info.shape()`,
    /// straight from the mapped blocks with candle's own kernels (the same
    /// `to_float` as `QTensor::dequantize`, so bit-identical to it), then
    /// releases the mapped pages it read.
    pub fn load_f32(&self, info: &TensorInfo) -> Result<Tensor> {
        self.load_f32_checked(info, None).map(|(t, _)| t)
    }

    /// [`Self::load_f32`], with its rows un-permuted like
    /// [`super::reverse_permute`] for `unpermute: Some(n_head)`, and whether
    /// every value is finite when the type's dequantization kernel checked
    /// as it wrote (`None`: not checked). A 2-D tensor whose type has such a
    /// kernel (Q4_1, Q8_0) is dequantized row by row straight into its
    /// un-permuted place (no second copy of the tensor); anything else is
    /// dequantized whole and then permuted, as before.
    pub fn load_f32_checked(&self, info: &TensorInfo, unpermute: Option<usize>) -> Result<(Tensor, Option<bool>)> {
        let shape = info.shape();
        let rows = info.n_rows();
        let kernel = ggml_type(info.ggml_type).and_then(|(_, dt, ..)| dt).and_then(super::dequant::kernel);
        let in_place = unpermute.filter(|&h| h > 0 && info.ne.len() == 2 && info.ne[0] > 0 && rows > 0 && rows.is_multiple_of(2 * h));
        if let (Some(n_head), Some(kernel)) = (in_place, kernel) {
            let (values, finite) = self.dequantize_unpermuted(info, n_head, kernel)?;
            return Ok((Tensor::from_vec(values, shape, &Device::Cpu)?, Some(finite)));
        }
        let n: usize = shape.iter().product();
        let out = self.dequantize_rows(info, 0..rows)?;
        debug_assert_eq!(out.values.len(), n);
        let t = Tensor::from_vec(out.values, shape, &Device::Cpu)?;
        let t = match unpermute {
            Some(n_head) => super::reverse_permute(&t, n_head).map_err(|err| Error::Tensor {
                path: self.path.clone(),
                name: info.name.clone(),
                reason: format!("Q/K un-permute: {err}"),
            })?,
            None => t,
        };
        Ok((t, out.finite))
    }

    /// The 2-D tensor `info` (rows divisible by 2·n_head) dequantized by
    /// `kernel` with row h·2·dim + p·dim + j taken from stored row
    /// h·2·dim + 2·j + p (dim = rows / n_head / 2): the layout
    /// [`super::reverse_permute`] gives, written once. Returns the values
    /// and whether all are finite; releases the mapped pages.
    fn dequantize_unpermuted(&self, info: &TensorInfo, n_head: usize, kernel: super::dequant::Kernel) -> Result<(Vec<f32>, bool)> {
        let (raw, row_bytes) = self.raw_rows(info, 0..info.n_rows())?;
        let (cols, rows) = (info.ne[0], info.n_rows());
        let dim = rows / n_head / 2;
        let mut values: Vec<f32> = Vec::with_capacity(rows * cols);
        let mut finite = true;
        for (i, out) in values.spare_capacity_mut()[..rows * cols].chunks_exact_mut(cols).enumerate() {
            let (h, r) = (i / (2 * dim), i % (2 * dim));
            let src = h * 2 * dim + 2 * (r % dim) + r / dim;
            let bad = || Error::Tensor { path: self.path.clone(), name: info.name.clone(), reason: "row size mismatch".into() };
            finite &= kernel(&raw[src * row_bytes..(src + 1) * row_bytes], out).ok_or_else(bad)?;
        }
        // SAFETY: every row of rows·cols values was written above (a kernel
        // that returns Some wrote its whole row).
        unsafe { values.set_len(rows * cols) };
        super::release(&self.mmap, info.start, raw.len());
        Ok((values, finite))
    }

    /// Rows `rows` (indices along the outermost dim) of the 2-D tensor
    /// `info` as f32 (len(rows), cols): only those rows are read and
    /// dequantized. Rows must be in range (callers check).
    pub fn load_rows_f32(&self, info: &TensorInfo, rows: &[u32]) -> Result<Tensor> {
        let cols = info.ne[0];
        let mut out = Vec::with_capacity(rows.len() * cols);
        for &r in rows {
            out.extend(self.dequantize_rows(info, r as usize..r as usize + 1)?.values);
        }
        Ok(Tensor::from_vec(out, (rows.len(), cols), &Device::Cpu)?)
    }

    /// Rows `rows` of `info` (a row = `ne[0]` values, whole blocks) as f32,
    /// then the mapped pages of those rows released.
    fn dequantize_rows(&self, info: &TensorInfo, rows: std::ops::Range<usize>) -> Result<super::dequant::Dequantized> {
        let (raw, row_bytes) = self.raw_rows(info, rows.clone())?;
        let dtype = ggml_type(info.ggml_type).and_then(|(_, dt, ..)| dt).ok_or_else(|| self.unsupported(info))?;
        let out = super::dequant::to_f32_vec(dtype, raw, rows.len() * info.ne[0]).ok_or_else(|| self.unsupported(info))?;
        super::release(&self.mmap, info.start + rows.start * row_bytes, raw.len());
        Ok(out)
    }

    fn unsupported(&self, info: &TensorInfo) -> Error {
        Error::Unsupported {
            path: self.path.clone(),
            what: "GGUF tensor type",
            detail: format!("tensor `{}` has type {} (supported: {SUPPORTED_TYPES})", info.name, ggml_type_name(info.ggml_type)),
        }
    }

    /// The mapped bytes of rows `rows` of `info` (a row = `ne[0]` values,
    /// whole blocks), and the bytes of one row; errors for an unsupported
    /// type or sizes that disagree.
    fn raw_rows(&self, info: &TensorInfo, rows: std::ops::Range<usize>) -> Result<(&[u8], usize)> {
        let (_, dtype, block, block_bytes) = ggml_type(info.ggml_type).ok_or_else(|| self.unsupported(info))?;
        let dtype = dtype.ok_or_else(|| self.unsupported(info))?;
        let bad = |reason: String| Error::Tensor { path: self.path.clone(), name: info.name.clone(), reason };
        let cols = info.ne[0];
        let n_rows = info.n_rows();
        // Sizes were checked in `parse`; these keep this function panic-free regardless.
        let row_bytes = cols / block * block_bytes;
        if !cols.is_multiple_of(block) || row_bytes.checked_mul(n_rows) != Some(info.len) || rows.end > n_rows {
            return Err(bad(format!("{} bytes do not hold {n_rows} rows of {cols} {dtype:?} values", info.len)));
        }
        let start = info.start + rows.start * row_bytes;
        let len = rows.len() * row_bytes;
        let raw = self.mmap.get(start..start + len).ok_or_else(|| bad("data range lies outside the file".into()))?;
        Ok((raw, row_bytes))
    }

    /// Hands the mapped pages of the metadata and tensor table back to the
    /// page cache (everything was parsed into owned values).
    pub(crate) fn release_header(&self) {
        let first = self.tensors.values().map(|t| t.start).min().unwrap_or(self.mmap.len());
        super::release(&self.mmap, 0, first);
    }
}

/// A metadata value for an error message: scalars in full (NaN shows as
/// NaN), strings quoted and cut, arrays by length.
fn describe_value(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("the string {:?}", s.chars().take(40).collect::<String>()),
        Value::Array(a) => format!("an array of {}", a.len()),
        Value::F32(x) => format!("{x} (f32)"),
        Value::F64(x) => format!("{x} (f64)"),
        Value::Bool(b) => format!("{b}"),
        other => other.as_i64().map_or_else(|| "a value of another type".into(), |i| i.to_string()),
    }
}

type Parsed = (u32, BTreeMap<String, Value>, BTreeMap<String, TensorInfo>);

fn parse(buf: &[u8], path: &Path) -> Result<Parsed> {
    let mut r = ByteReader::new(buf, path, FORMAT);
    let magic = r.array::<4>("magic")?;
    if magic != GGUF_MAGIC {
        return Err(r.err(format!("wrong magic {magic:02x?}, expected \"GGUF\"")));
    }
    let version = r.u32("version")?;
    if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
        return Err(r.err("big-endian GGUF files are not supported"));
    }
    if version != 2 && version != 3 {
        return Err(r.err(format!("unsupported GGUF version {version} (supported: 2, 3)")));
    }
    let n_tensors = r.u64("tensor count")?;
    let n_kv = r.u64("metadata count")?;
    // Each KV takes ≥ 8 (key len) + 4 (type) + 1 bytes; each tensor info ≥ 8+4+4+8.
    let n_kv = r.checked_len(n_kv, 13, "metadata count")?;
    let n_tensors = r.checked_len(n_tensors, 24, "tensor count")?;

    let mut metadata = BTreeMap::new();
    for i in 0..n_kv {
        let key = read_string(&mut r, &format!("metadata key #{i}"))?;
        let ty = r.u32(&format!("type of `{key}`"))?;
        let v = read_value(&mut r, ty, &key, 0)?;
        metadata.insert(key, v);
    }

    let mut infos = Vec::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let name = read_string(&mut r, &format!("tensor name #{i}"))?;
        let n_dims = r.u32(&format!("n_dims of `{name}`"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(r.err(format!("tensor `{name}` has {n_dims} dims (1..={MAX_DIMS})")));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = r.u64(&format!("dims of `{name}`"))?;
            ne.push(usize::try_from(d).map_err(|_| r.err(format!("tensor `{name}` dim {d} too large")))?);
        }
        let ty = r.u32(&format!("type of `{name}`"))?;
        let off = r.u64(&format!("offset of `{name}`"))?;
        infos.push((name, ne, ty, off));
    }

    let alignment = match metadata.get("general.alignment") {
        None => 32,
        Some(v) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a as usize,
            _ => return Err(r.err(format!("general.alignment {v:?} is not a power of two"))),
        },
    };
    let data_start = r.pos.div_ceil(alignment) * alignment;
    if data_start > buf.len() {
        return Err(r.err(format!("truncated: data section starts at {data_start} but the file is {} bytes", buf.len())));
    }
    let data_len = buf.len() - data_start;

    let mut tensors = BTreeMap::new();
    for (name, ne, ty, off) in infos {
        let Some(n_elems) = ne.iter().try_fold(1u128, |a, &d| a.checked_mul(d as u128)) else {
            return Err(r.err(format!("tensor `{name}` dims {ne:?} overflow")));
        };
        if n_elems > isize::MAX as u128 {
            return Err(r.err(format!("tensor `{name}` dims {ne:?} are too large")));
        }
        let len = match ggml_type(ty) {
            Some((tname, _, block, bytes)) => {
                // ggml quantizes along rows: ne[0] must be whole blocks (as gguf.c checks).
                if ne[0] % block != 0 {
                    return Err(
                        r.err(format!("tensor `{name}` ({tname}) has rows of {} values, not a multiple of its block size {block}", ne[0]))
                    );
                }
                n_elems / block as u128 * bytes as u128
            }
            // Size unknown: only the offset can be checked; loading it errors.
            None => 0,
        };
        if off % alignment as u64 != 0 {
            return Err(r.err(format!("tensor `{name}` offset {off} is not aligned to {alignment}")));
        }
        if off as u128 + len > data_len as u128 {
            return Err(r.err(format!(
                "tensor `{name}` data [{off}, {}) lies beyond the data section ({data_len} bytes): file truncated or corrupt",
                off as u128 + len
            )));
        }
        let info = TensorInfo { name: name.clone(), ne, ggml_type: ty, start: data_start + off as usize, len: len as usize };
        if tensors.insert(name.clone(), info).is_some() {
            return Err(r.err(format!("duplicate tensor `{name}`")));
        }
    }
    // Two tensors sharing bytes is corrupt (gguf.c lays them out one after
    // another); accepting it would read one tensor's bytes as another's.
    let mut ranges: Vec<&TensorInfo> = tensors.values().filter(|t| t.len > 0).collect();
    ranges.sort_by_key(|t| t.start);
    for w in ranges.windows(2) {
        if w[1].start < w[0].start + w[0].len {
            return Err(r.err(format!(
                "tensors `{}` and `{}` overlap: data [{}, {}) and [{}, {})",
                w[0].name,
                w[1].name,
                w[0].start - data_start,
                w[0].start - data_start + w[0].len,
                w[1].start - data_start,
                w[1].start - data_start + w[1].len
            )));
        }
    }
    Ok((version, metadata, tensors))
}

fn read_string(r: &mut ByteReader, what: &str) -> Result<String> {
    let n = r.u64(what)?;
    let n = r.checked_len(n, 1, what)?;
    let b = r.bytes(n, what)?;
    // GGUF strings are UTF-8; tolerate invalid bytes in vocab entries.
    Ok(String::from_utf8_lossy(b).into_owned())
}

fn read_value(r: &mut ByteReader, ty: u32, key: &str, depth: u32) -> Result<Value> {
    Ok(match ty {
        0 => Value::U8(r.u8(key)?),
        1 => Value::I8(r.u8(key)? as i8),
        2 => Value::U16(r.u16(key)?),
        3 => Value::I16(r.u16(key)? as i16),
        4 => Value::U32(r.u32(key)?),
        5 => Value::I32(r.i32(key)?),
        6 => Value::F32(r.f32(key)?),
        7 => match r.u8(key)? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            b => return Err(r.err(format!("metadata `{key}`: bool byte {b}"))),
        },
        8 => Value::Str(read_string(r, key)?),
        9 => {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(r.err(format!("metadata `{key}`: arrays nested too deeply")));
            }
            let elem_ty = r.u32(key)?;
            let n = r.u64(key)?;
            let min = match elem_ty {
                0 | 1 | 7 => 1,
                2 | 3 => 2,
                4..=6 => 4,
                8 | 10..=12 => 8,
                9 => 12,
                t => return Err(r.err(format!("metadata `{key}`: unknown array element type {t}"))),
            };
            let n = r.checked_len(n, min, key)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(read_value(r, elem_ty, key, depth + 1)?);
            }
            Value::Array(v)
        }
        10 => Value::U64(r.u64(key)?),
        11 => Value::I64(r.u64(key)? as i64),
        12 => Value::F64(r.f64(key)?),
        t => return Err(r.err(format!("metadata `{key}`: unknown value type {t}"))),
    })
}
