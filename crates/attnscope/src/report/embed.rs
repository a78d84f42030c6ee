//! The data behind report.html's interactive parts (heat-map selectors and
//! the per-head panel), embedded in the page as one JSON object whose long
//! vectors are little-endian float32 (or int8) in base64.
//!
//! Per run: every scalar measure of every head, and the singular spectrum of
//! E. Per head: the spectrum of W_Q W_Kᵀ (weights only, the same in every
//! run). Drill-down per run: key energies c_j and leverages ℓ_j (float32).
//! Per text: the field E of the first t ≤ 128 tokens (a run's top-left tile
//! does not depend on its context length, see [`field::energy_tile`]), as
//! int8 with one float scale per head, and the token labels.
//!
//! Size: c_j and ℓ_j of every run cost 8·n bytes a head (SmolLM2's default
//! 3 texts × 3 ctx: 11.6 MB before base64), so the page embeds them within
//! [`EMBED_BUDGET`]: one run per text first (its shortest), with the largest
//! tile side that fits, then further runs, shortest first, while they fit.
//! A run without its own c_j / ℓ_j shows those of the embedded run of its
//! text, and the panel says so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{head_json, ModelInfo, RunRecord};
use crate::observer::HeadRecord;

/// Side of the field tile kept per run (the first 128 tokens).
pub const TILE_TOKENS: usize = 128;
/// Bytes of base64 the page may embed, all vectors together, so that the
/// default SmolLM2 report (3 texts × 3 ctx) stays ≤ 8 MB with its HTML.
pub const EMBED_BUDGET: usize = 6_800_000;
/// Tile sides tried, largest first, when the budget is tight.
const TILE_SIDES: [usize; 8] = [128, 112, 96, 80, 64, 48, 32, 16];

/// Drill-down data of one run, kept in its run file (for resuming) and not
/// written to report.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Drill {
    /// One label per token of the run's window: the token decoded alone,
    /// whitespace made visible (`·` for a space, `↵` for a newline).
    pub tokens: Vec<String>,
    /// Side t of the tiles: min(n, [`TILE_TOKENS`]).
    pub tile_tokens: usize,
    pub heads: Vec<DrillHead>,
}

/// One head's drill-down vectors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillHead {
    pub layer: usize,
    pub head: usize,
    /// c_j, n × f32 LE, base64.
    pub key_energy: String,
    /// ℓ_j of [K, 1], n × f32 LE, base64.
    pub leverage: String,
    /// max |E_ij| over the tile: int8 code 127 stands for this value.
    pub tile_scale: f64,
    /// round(127·E_ij / tile_scale) as int8, packed lower triangle (row i
    /// holds j = 0..=i, starting at i(i+1)/2), base64.
    pub tile: String,
}

impl Drill {
    /// Takes c_j and ℓ_j from the records (they must have been kept) and the
    /// tiles from [`crate::observer::TileObserver`].
    pub fn collect(heads: &[HeadRecord], tiles: Vec<(usize, usize, Vec<f64>)>, tokens: Vec<String>, tile_tokens: usize) -> Drill {
        let mut by_head: BTreeMap<(usize, usize), Vec<f64>> = tiles.into_iter().map(|(l, h, t)| ((l, h), t)).collect();
        let heads = heads
            .iter()
            .map(|h| {
                let tile = by_head.remove(&(h.layer, h.head)).unwrap_or_default();
                let scale = tile.iter().fold(0f64, |m, x| m.max(x.abs()));
                let codes: Vec<u8> = tile
                    .iter()
                    .map(|x| if scale > 0.0 { (127.0 * x / scale).round().clamp(-127.0, 127.0) as i8 as u8 } else { 0 })
                    .collect();
                DrillHead {
                    layer: h.layer,
                    head: h.head,
                    key_energy: b64_f32(h.field.key_energy.as_deref().unwrap_or_default()),
                    leverage: b64_f32(h.field.leverage.as_deref().unwrap_or_default()),
                    tile_scale: scale,
                    tile: b64(&codes),
                }
            })
            .collect();
        Drill { tokens, tile_tokens, heads }
    }
}

/// A token as an axis label: whitespace made visible, control characters dropped.
pub fn token_label(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            ' ' => Some('·'),
            '\n' => Some('↵'),
            '\t' => Some('⇥'),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// Labels of `ids`, each decoded alone (a byte-level token that is half a
/// UTF-8 character shows as U+FFFD).
pub fn token_labels(tokenizer: &models::TextTokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter().map(|&id| token_label(&tokenizer.decode(&[id]).unwrap_or_else(|_| format!("#{id}")))).collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn b64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(b64_len(bytes.len()));
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let v = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(v >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Length of the base64 text of `n` bytes.
pub fn b64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Values as little-endian f32 in base64 (non-finite stays NaN / ±inf).
pub fn b64_f32(v: &[f64]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
    b64(&bytes)
}

/// Decodes standard base64 (for tests and for re-slicing stored tiles).
pub fn unb64(s: &str) -> Vec<u8> {
    let val = |c: u8| B64.iter().position(|&b| b == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for chunk in s.as_bytes().chunks(4) {
        let vals: Vec<u32> = chunk.iter().filter_map(|&c| val(c)).collect();
        let v = vals.iter().enumerate().fold(0u32, |acc, (i, x)| acc | x << (18 - 6 * i));
        for i in 0..vals.len().saturating_sub(1) {
            out.push((v >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// What the page embeds: the tile side and which runs carry c_j / ℓ_j.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Tile side (0 = no tiles).
    pub tile: usize,
    /// Per run: embed its own c_j and ℓ_j.
    pub drill: Vec<bool>,
}

/// Chooses what fits in `budget` bytes of base64 besides `fixed`.
/// `runs[i]` = (text index, n, whether the run has drill-down data, tile
/// side it has); `cells` = heads per run.
pub fn plan(runs: &[(usize, usize, bool, usize)], cells: usize, fixed: usize, budget: usize) -> Plan {
    let n_texts = runs.iter().map(|r| r.0 + 1).max().unwrap_or(0);
    let cl = |n: usize| 2 * b64_len(4 * n * cells);
    // The shortest run with drill-down data of each text.
    let first: Vec<Option<usize>> =
        (0..n_texts).map(|t| (0..runs.len()).filter(|&i| runs[i].0 == t && runs[i].2).min_by_key(|&i| runs[i].1)).collect();
    let tile_cost = |side: usize| -> usize {
        first.iter().flatten().map(|&i| b64_len(field::tile_len(side.min(runs[i].3)) * cells) + b64_len(4 * cells)).sum()
    };
    let base: usize = fixed + first.iter().flatten().map(|&i| cl(runs[i].1)).sum::<usize>();
    let mut drill = vec![false; runs.len()];
    let Some(tile) = TILE_SIDES.iter().copied().chain([0]).find(|&s| base + tile_cost(s) <= budget) else {
        return Plan { tile: 0, drill };
    };
    for &i in first.iter().flatten() {
        drill[i] = true;
    }
    let mut used = base + tile_cost(tile);
    let mut rest: Vec<usize> = (0..runs.len()).filter(|&i| runs[i].2 && !drill[i]).collect();
    rest.sort_by_key(|&i| runs[i].1);
    for i in rest {
        if used + cl(runs[i].1) <= budget {
            used += cl(runs[i].1);
            drill[i] = true;
        }
    }
    Plan { tile, drill }
}

/// Short label of a run: the text's file name and the context length.
pub fn run_label(run: &RunRecord) -> String {
    format!("{} @{}", run.text.rsplit('/').next().unwrap_or(&run.text), run.ctx)
}

/// Names of the scalar measures of a head record (numbers and booleans), in report order.
pub fn scalar_measures(runs: &[RunRecord]) -> Vec<String> {
    let skip = ["layer", "head", "kv_head", "n", "d", "check_rows"];
    let Some(h) = runs.iter().flat_map(|r| r.heads.first()).next() else { return Vec::new() };
    let Value::Object(o) = head_json(h) else { return Vec::new() };
    o.iter()
        .filter(|(k, v)| !skip.contains(&k.as_str()) && (v.is_number() || v.is_boolean() || v.is_null()))
        .map(|(k, _)| k.clone())
        .collect()
}

fn as_num(v: Option<&Value>) -> f64 {
    match v {
        Some(Value::Bool(b)) => f64::from(u8::from(*b)),
        Some(x) => x.as_f64().unwrap_or(f64::NAN),
        None => f64::NAN,
    }
}

/// The page's data object (see the module doc). Cells are indexed
/// layer · n_heads + head over all the model's layers; heads a run did not
/// analyse are NaN.
pub fn page_data(info: &ModelInfo, runs: &[RunRecord]) -> Value {
    let (nl, nh) = (info.n_layers, info.n_heads);
    let cells = nl * nh;
    let measures = scalar_measures(runs);
    let cell = |h: &HeadRecord| (h.layer < nl && h.head < nh).then_some(h.layer * nh + h.head);
    let k_len = runs.iter().flat_map(|r| r.heads.iter().map(|h| h.field.spectrum.len())).max().unwrap_or(0);
    let mut fixed = 0usize;
    let mut run_objs = Vec::new();
    for r in runs {
        let mut vals = vec![f64::NAN; measures.len() * cells];
        let mut spectra = vec![0.0; cells * k_len];
        for h in &r.heads {
            let Some(c) = cell(h) else { continue };
            let v = head_json(h);
            for (m, name) in measures.iter().enumerate() {
                vals[m * cells + c] = as_num(v.get(name));
            }
            for (k, s) in h.field.spectrum.iter().enumerate() {
                spectra[c * k_len + k] = *s;
            }
        }
        let (values, spectra) = (b64_f32(&vals), b64_f32(&spectra));
        fixed += values.len() + spectra.len();
        run_objs.push(json!({"label": run_label(r), "text": r.text, "ctx": r.ctx, "n": r.n_tokens, "values": values, "spectra": spectra}));
    }
    let d_len = runs.iter().flat_map(|r| r.heads.iter().filter_map(|h| h.field.spectrum_learned.as_ref().map(Vec::len))).max().unwrap_or(0);
    let mut learned = vec![0.0; cells * d_len];
    for h in runs.iter().flat_map(|r| r.heads.iter()) {
        if let (Some(c), Some(s)) = (cell(h), h.field.spectrum_learned.as_ref()) {
            learned[c * d_len..c * d_len + s.len()].copy_from_slice(s);
        }
    }
    let learned = b64_f32(&learned);
    fixed += learned.len();

    let mut texts: Vec<&str> = Vec::new();
    for r in runs {
        if !texts.contains(&r.text.as_str()) {
            texts.push(&r.text);
        }
    }
    let text_of = |r: &RunRecord| texts.iter().position(|t| *t == r.text).unwrap_or(0);
    let shape: Vec<(usize, usize, bool, usize)> =
        runs.iter().map(|r| (text_of(r), r.n_tokens, r.drill.is_some(), r.drill.as_ref().map_or(0, |d| d.tile_tokens))).collect();
    let plan = plan(&shape, cells, fixed, EMBED_BUDGET);

    // Drill-down vectors, indexed by run (null where not embedded).
    let mut drills = vec![Value::Null; runs.len()];
    for (i, r) in runs.iter().enumerate() {
        if plan.drill[i] {
            drills[i] = drill_vectors(r, cells, nh);
        }
        // A run without its own vectors borrows those of the longest embedded run of its text.
        let from = if plan.drill[i] {
            Some(i)
        } else {
            (0..runs.len()).filter(|&j| plan.drill[j] && shape[j].0 == shape[i].0).max_by_key(|&j| runs[j].n_tokens)
        };
        let obj = run_objs[i].as_object_mut().expect("a run is an object");
        obj.insert("drill_from".into(), json!(from));
        obj.insert("text_index".into(), json!(shape[i].0));
    }
    let text_objs: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(t, name)| {
            // Labels from the longest run of the text (windows are prefixes of each other).
            let tokens = runs
                .iter()
                .filter(|r| text_of(r) == t)
                .filter_map(|r| r.drill.as_ref())
                .max_by_key(|d| d.tokens.len())
                .map(|d| d.tokens.clone());
            let tile_run = (0..runs.len()).filter(|&i| plan.drill[i] && shape[i].0 == t).min_by_key(|&i| runs[i].n_tokens);
            let tile =
                tile_run.and_then(|i| runs[i].drill.as_ref()).filter(|_| plan.tile > 0).map(|d| tile_object(d, plan.tile, cells, nh));
            json!({"text": name, "tokens": tokens, "tile": tile})
        })
        .collect();
    json!({
        "model": {"source": info.source, "n_layers": nl, "n_heads": nh, "n_kv_heads": info.n_kv_heads, "head_dim": info.head_dim},
        "measures": measures,
        "spectrum_len": k_len,
        "learned_len": d_len,
        "learned": learned,
        "runs": run_objs,
        "drills": drills,
        "texts": text_objs,
        "embed_budget": EMBED_BUDGET,
        "tile_side": plan.tile,
    })
}

/// c_j and ℓ_j of every head of one run: cells × n f32 each (zeros for heads not analysed).
fn drill_vectors(r: &RunRecord, cells: usize, nh: usize) -> Value {
    let Some(d) = &r.drill else { return Value::Null };
    let n = r.n_tokens;
    let (mut c, mut l) = (vec![0u8; cells * n * 4], vec![0u8; cells * n * 4]);
    for h in &d.heads {
        let i = h.layer * nh + h.head;
        if i >= cells {
            continue;
        }
        for (dst, src) in [(&mut c, &h.key_energy), (&mut l, &h.leverage)] {
            let bytes = unb64(src);
            let len = bytes.len().min(n * 4);
            dst[i * n * 4..i * n * 4 + len].copy_from_slice(&bytes[..len]);
        }
    }
    json!({"c": b64(&c), "l": b64(&l)})
}

/// The tiles of every head cut to side `side` (a packed prefix), int8 base64, with their scales.
fn tile_object(d: &Drill, side: usize, cells: usize, nh: usize) -> Value {
    let side = side.min(d.tile_tokens);
    let len = field::tile_len(side);
    let mut codes = vec![0u8; cells * len];
    let mut scales = vec![0.0; cells];
    for h in &d.heads {
        let i = h.layer * nh + h.head;
        if i >= cells {
            continue;
        }
        let bytes = unb64(&h.tile);
        let take = bytes.len().min(len);
        codes[i * len..i * len + take].copy_from_slice(&bytes[..take]);
        scales[i] = h.tile_scale;
    }
    json!({"side": side, "codes": b64(&codes), "scales": b64_f32(&scales)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_matches_the_standard() {
        assert_eq!(b64(b""), "");
        assert_eq!(b64(b"f"), "Zg==");
        assert_eq!(b64(b"fo"), "Zm8=");
        assert_eq!(b64(b"foo"), "Zm9v");
        assert_eq!(b64(b"foobar"), "Zm9vYmFy");
        let bytes: Vec<u8> = (0..=255u8).chain((0..100).map(|x| x * 7)).collect();
        for n in [0, 1, 2, 3, 4, 5, 100, bytes.len()] {
            assert_eq!(unb64(&b64(&bytes[..n])), &bytes[..n]);
            assert_eq!(b64(&bytes[..n]).len(), b64_len(n));
        }
        // f32 little-endian: 1.0 = 00 00 80 3f
        assert_eq!(unb64(&b64_f32(&[1.0])), vec![0, 0, 0x80, 0x3f]);
    }

    #[test]
    fn drill_keeps_c_and_l_as_f32_and_the_tile_as_int8_of_its_max() {
        let (n, d) = (12, 3);
        let q: Vec<f64> = (0..n * d).map(|x| ((x * 7 % 11) as f64 - 5.0) / 3.0).collect();
        let k: Vec<f64> = (0..n * d).map(|x| ((x * 5 % 13) as f64 - 6.0) / 4.0).collect();
        let input = field::HeadInput::new(&q, &k, n, d, 0.5);
        let params = field::Params { keep_key_energy: true, keep_leverage: true, ..field::Params::default() };
        let rec = HeadRecord { layer: 1, head: 2, kv_head: 0, field: field::analyze(&input, &params).unwrap() };
        let tile = field::energy_tile(&input, 8).unwrap();
        let drill = Drill::collect(std::slice::from_ref(&rec), vec![(1, 2, tile.clone())], vec!["a".into(); n], 8);
        let h = &drill.heads[0];
        let f32s = |s: &str| unb64(s).chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64).collect::<Vec<_>>();
        let c = rec.field.key_energy.as_ref().unwrap();
        assert!(f32s(&h.key_energy).iter().zip(c).all(|(a, b)| (a - b).abs() <= 1e-6 * b.abs().max(1e-30)));
        assert_eq!(f32s(&h.leverage).len(), n);
        let max = tile.iter().fold(0f64, |m, x| m.max(x.abs()));
        assert_eq!(h.tile_scale, max);
        let codes: Vec<i8> = unb64(&h.tile).into_iter().map(|b| b as i8).collect();
        assert_eq!(codes.len(), field::tile_len(8));
        assert!(codes.iter().any(|&c| c.abs() == 127));
        for (code, e) in codes.iter().zip(&tile) {
            assert!((*code as f64 / 127.0 * max - e).abs() <= max / 254.0 + 1e-12, "{code} vs {e}");
        }
    }

    #[test]
    fn labels_show_whitespace() {
        assert_eq!(token_label(" the\n"), "·the↵");
        assert_eq!(token_label("a\u{1}b"), "ab");
    }

    #[test]
    fn plan_fits_the_budget_shortest_runs_first() {
        // 2 texts × ctx 256, 1024; 100 heads.
        let runs = [(0, 256, true, 128), (0, 1024, true, 128), (1, 256, true, 128), (1, 1024, true, 128)];
        let cells = 100;
        let cl = |n: usize| 2 * b64_len(4 * n * cells);
        let tile = |s: usize| 2 * (b64_len(field::tile_len(s) * cells) + b64_len(4 * cells));
        // Everything fits.
        let all = 2 * cl(256) + 2 * cl(1024) + tile(128);
        assert_eq!(plan(&runs, cells, 0, all), Plan { tile: 128, drill: vec![true; 4] });
        // One byte less: the last (longest) run is left out.
        assert_eq!(plan(&runs, cells, 0, all - 1), Plan { tile: 128, drill: vec![true, true, true, false] });
        // Only the short runs, with a smaller tile.
        let p = plan(&runs, cells, 0, 2 * cl(256) + tile(64));
        assert_eq!(p, Plan { tile: 64, drill: vec![true, false, true, false] });
        // Not even that: nothing.
        assert_eq!(plan(&runs, cells, 0, 2 * cl(256) - 1), Plan { tile: 0, drill: vec![false; 4] });
        // A text without drill-down data costs nothing.
        let p = plan(&[(0, 256, false, 0), (1, 256, true, 128)], cells, 0, cl(256) + tile(128) / 2);
        assert_eq!(p, Plan { tile: 128, drill: vec![false, true] });
    }
}
