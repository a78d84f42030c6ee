//! The bridge from the forward pass to the field: analyses every head of a
//! layer as soon as the decoder produces its Q and K (heads in parallel),
//! then lets the tensors go. Memory: O(h·n·d) for one layer plus results.

use anyhow::Result;
use field::{HeadField, HeadInput, HeadWeights, KeyFactor, Method, Params};
use indicatif::ProgressBar;
use models::{LayerCapture, LogitTransform, Observer, ObserverError};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// One head's measures on one run, in report order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeadRecord {
    pub layer: usize,
    pub head: usize,
    pub kv_head: usize,
    #[serde(flatten)]
    pub field: HeadField,
}

/// Which layers to analyse.
#[derive(Debug, Clone)]
pub struct LayerSet(pub Option<Vec<usize>>);

impl LayerSet {
    /// Parses `0-3,7` (inclusive ranges), checked against `n_layers`.
    pub fn parse(spec: Option<&str>, n_layers: usize) -> Result<LayerSet> {
        let Some(spec) = spec else { return Ok(LayerSet(None)) };
        let mut layers = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (part, part),
            };
            let parse = |s: &str| s.parse::<usize>().map_err(|_| anyhow::anyhow!("--layers: `{part}` is not a layer or range like 0-3"));
            let (a, b) = (parse(a)?, parse(b)?);
            if a > b || b >= n_layers {
                anyhow::bail!("--layers: `{part}` is outside the model's layers 0-{}", n_layers - 1);
            }
            layers.extend(a..=b);
        }
        layers.sort_unstable();
        layers.dedup();
        if layers.is_empty() {
            anyhow::bail!("--layers selects no layer");
        }
        Ok(LayerSet(Some(layers)))
    }

    pub fn contains(&self, l: usize) -> bool {
        self.0.as_ref().is_none_or(|v| v.binary_search(&l).is_ok())
    }

    pub fn count(&self, n_layers: usize) -> usize {
        self.0.as_ref().map_or(n_layers, Vec::len)
    }

    pub fn last(&self) -> Option<usize> {
        self.0.as_ref().and_then(|v| v.last().copied())
    }
}

/// One layer's capture as owned host data: Q (h, n, d) and K (h_kv, n, d)
/// row-major f32, and every head's W_Q^h / W_K^h as d_model × d row-major.
pub struct LayerQk {
    pub h: usize,
    pub hkv: usize,
    pub n: usize,
    pub d: usize,
    pub d_model: usize,
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub w_q_heads: Vec<Vec<f32>>,
    pub w_k_heads: Vec<Vec<f32>>,
}

impl LayerQk {
    pub fn from_capture(cap: &LayerCapture<'_>) -> Result<Self> {
        let (h, n, d) = cap.q.dims3()?;
        let hkv = cap.k.dim(0)?;
        Ok(LayerQk {
            h,
            hkv,
            n,
            d,
            d_model: cap.w_q.dim(0)?,
            q: cap.q.flatten_all()?.to_vec1::<f32>()?,
            k: cap.k.flatten_all()?.to_vec1::<f32>()?,
            w_q_heads: head_weights(cap.w_q, h, d)?,
            w_k_heads: head_weights(cap.w_k, hkv, d)?,
        })
    }
}

/// Every head's W^h as d_model × d row-major, from a captured projection
/// `w` (d_model, heads·d): head h is the column block h·d .. (h+1)·d. The
/// decoder holds `w` as the transposed view of an (heads·d, d_model) tensor,
/// so reading that layout avoids a strided copy.
fn head_weights(w: &candle_core::Tensor, heads: usize, d: usize) -> Result<Vec<Vec<f32>>> {
    let d_model = w.dim(0)?;
    let rows = w.t()?.contiguous()?.flatten_all()?.to_vec1::<f32>()?; // (heads·d, d_model)
    Ok((0..heads)
        .map(|h| {
            let mut out = vec![0f32; d_model * d];
            for c in 0..d {
                let row = &rows[(h * d + c) * d_model..(h * d + c + 1) * d_model];
                for (i, &v) in row.iter().enumerate() {
                    out[i * d + c] = v;
                }
            }
            out
        })
        .collect())
}

/// A measure that differs between the factored and the dense path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mismatch {
    pub layer: usize,
    pub head: usize,
    pub detail: String,
}

pub struct FieldObserver<'a> {
    pub layers: LayerSet,
    pub params: Params,
    pub dense_check: bool,
    pub records: Vec<HeadRecord>,
    pub mismatches: Vec<Mismatch>,
    pub bar: &'a ProgressBar,
    /// `Some`: also every KV head's [`field::key_spread`] of the analysed
    /// layers, keyed by (layer, kv_head), from the keys the analysis already
    /// holds (the monitor's key-side measure, docs/monitor.md). `None`: not measured.
    pub key_spread: Option<BTreeMap<(usize, usize), f64>>,
}

/// σ(W_Q W_Kᵀ) of every (layer, head) analysed so far, for one model's
/// weights: `analyze` keeps it across its runs (texts × contexts), since the
/// learned spectrum depends on the weights only. Never valid across a weight
/// update (the monitor does not use it).
pub type LearnedSpectra = HashMap<(usize, usize), Vec<f64>>;

impl FieldObserver<'_> {
    /// Analyses every head of the captured layer. Work shared between heads is
    /// done once: the key side (QR of [K, 1], leverage) per KV head, and, with
    /// `learned`, the learned spectrum per (layer, head) across calls. Results
    /// are bit-identical to analysing each head alone (field's tests).
    fn analyse_layer(&mut self, cap: &LayerCapture<'_>, mut learned: Option<&mut LearnedSpectra>) -> Result<()> {
        let LayerQk { h, hkv, n, d, d_model, q, k, w_q_heads, w_k_heads } = LayerQk::from_capture(cap)?;
        let group = h / hkv;
        let layer = cap.layer;
        if let Some(spread) = self.key_spread.as_mut() {
            for g in 0..hkv {
                spread.insert((layer, g), field::key_spread(&k[g * n * d..(g + 1) * n * d], n, d));
            }
        }
        let (scale, window, transform) = (cap.scale, cap.window, cap.logit_transform);
        let slopes = cap.alibi_slopes.map(<[f64]>::to_vec);
        let params = &self.params;
        let dense_check = self.dense_check;
        let factored = params.method == Method::Factored && transform == LogitTransform::None;
        // A KV head whose keys fail to factor gets none: its query heads then
        // report the error themselves, with their layer and head.
        let key_factors: Vec<Option<KeyFactor>> = if factored && group > 1 {
            (0..hkv).into_par_iter().map(|g| KeyFactor::new(&k[g * n * d..(g + 1) * n * d], n, d).ok()).collect()
        } else {
            Vec::new()
        };
        if let Some(cache) = learned.as_deref_mut().filter(|_| factored) {
            let missing: Vec<usize> = (0..h).filter(|&head| !cache.contains_key(&(layer, head))).collect();
            let computed: Vec<(usize, Option<Vec<f64>>)> = missing
                .into_par_iter()
                .map(|head| {
                    let w = HeadWeights { w_q: (&w_q_heads[head]).into(), w_k: (&w_k_heads[head / group]).into(), d_model };
                    (head, field::learned_spectrum(&w, d).ok())
                })
                .collect();
            for (head, sv) in computed {
                if let Some(sv) = sv {
                    cache.insert((layer, head), sv);
                }
            }
        }
        let learned = learned.as_deref();
        let results: Vec<Result<(HeadRecord, Vec<Mismatch>)>> = (0..h)
            .into_par_iter()
            .map(|head| {
                let kv_head = head / group;
                let mut input =
                    HeadInput::new(&q[head * n * d..(head + 1) * n * d], &k[kv_head * n * d..(kv_head + 1) * n * d], n, d, scale)
                        .with_weights(&w_q_heads[head], &w_k_heads[kv_head], d_model);
                if let Some(Some(kf)) = key_factors.get(kv_head) {
                    input = input.with_key_factor(kf);
                }
                if let Some(sv) = learned.and_then(|c| c.get(&(layer, head))) {
                    input = input.with_learned_spectrum(sv);
                }
                if let Some(w) = window {
                    input = input.with_window(w);
                }
                if let Some(s) = &slopes {
                    input = input.with_alibi(s[head]);
                }
                if let LogitTransform::Softcap(c) = transform {
                    input = input.with_softcap(c);
                }
                let field = field::analyze(&input, params).map_err(|e| anyhow::anyhow!("layer {layer} head {head}: {e}"))?;
                let mut mismatches = Vec::new();
                if dense_check {
                    let dense_params = Params { method: Method::Dense, ..params.clone() };
                    let dense =
                        field::analyze(&input, &dense_params).map_err(|e| anyhow::anyhow!("layer {layer} head {head} (dense): {e}"))?;
                    mismatches.extend(field::compare(&field, &dense).into_iter().map(|detail| Mismatch { layer, head, detail }));
                }
                Ok((HeadRecord { layer, head, kv_head, field }, mismatches))
            })
            .collect();
        for r in results {
            let (rec, mm) = r?;
            self.records.push(rec);
            self.mismatches.extend(mm);
        }
        self.bar.inc(1);
        Ok(())
    }
}

impl Observer for FieldObserver<'_> {
    fn on_layer(&mut self, cap: &LayerCapture<'_>) -> std::result::Result<(), ObserverError> {
        if !self.layers.contains(cap.layer) {
            return Ok(());
        }
        self.analyse_layer(cap, None).map_err(|e| e.to_string().into())
    }

    fn last_layer(&self) -> Option<usize> {
        self.layers.last()
    }
}

/// Wraps a [`FieldObserver`] and also keeps, for every analysed head, the
/// energy field of the first `tokens` tokens (packed lower triangle, see
/// [`field::energy_tile`]) for the report's drill-down panel. Costs
/// O(h·t²·d) per layer; t = 128 is ~1 ms a head.
///
/// `analyze`'s observer: it also reuses `learned` (the learned spectra of the
/// model's heads) across runs, and fills it on the first.
pub struct TileObserver<'o, 'b> {
    pub inner: &'o mut FieldObserver<'b>,
    pub tokens: usize,
    /// (layer, head, tile) in the order computed.
    pub tiles: Vec<(usize, usize, Vec<f64>)>,
    /// Learned spectra kept across the runs of one model (see [`LearnedSpectra`]).
    pub learned: &'o mut LearnedSpectra,
}

impl TileObserver<'_, '_> {
    fn tiles_of(&mut self, cap: &LayerCapture<'_>) -> Result<()> {
        let (h, n, d) = cap.q.dims3()?;
        let hkv = cap.k.dim(0)?;
        let t = self.tokens.min(n);
        // Only the first t rows of Q and K enter the tile: (h, t, d) and (h_kv, t, d).
        let q = cap.q.narrow(1, 0, t)?.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let k = cap.k.narrow(1, 0, t)?.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let group = h / hkv;
        let layer = cap.layer;
        let tiles: Vec<Result<(usize, usize, Vec<f64>)>> = (0..h)
            .into_par_iter()
            .map(|head| {
                let kv = head / group;
                let mut input = HeadInput::new(&q[head * t * d..(head + 1) * t * d], &k[kv * t * d..(kv + 1) * t * d], t, d, cap.scale);
                if let Some(w) = cap.window {
                    input = input.with_window(w);
                }
                if let Some(s) = cap.alibi_slopes {
                    input = input.with_alibi(s[head]);
                }
                if let LogitTransform::Softcap(c) = cap.logit_transform {
                    input = input.with_softcap(c);
                }
                let tile = field::energy_tile(&input, t).map_err(|e| anyhow::anyhow!("layer {layer} head {head} (field tile): {e}"))?;
                Ok((layer, head, tile))
            })
            .collect();
        for r in tiles {
            self.tiles.push(r?);
        }
        Ok(())
    }
}

impl Observer for TileObserver<'_, '_> {
    fn on_layer(&mut self, cap: &LayerCapture<'_>) -> std::result::Result<(), ObserverError> {
        if self.tokens > 0 && self.inner.layers.contains(cap.layer) {
            self.tiles_of(cap).map_err(|e| -> ObserverError { e.to_string().into() })?;
        }
        if !self.inner.layers.contains(cap.layer) {
            return Ok(());
        }
        self.inner.analyse_layer(cap, Some(self.learned)).map_err(|e| e.to_string().into())
    }

    fn last_layer(&self) -> Option<usize> {
        self.inner.last_layer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_ranges() {
        let s = LayerSet::parse(Some("0-2, 7,2"), 10).unwrap();
        assert_eq!(s.0, Some(vec![0, 1, 2, 7]));
        assert!(s.contains(7) && !s.contains(3));
        assert!(LayerSet::parse(Some("3-1"), 10).is_err());
        assert!(LayerSet::parse(Some("10"), 10).is_err());
        assert!(LayerSet::parse(Some("x"), 10).is_err());
        assert!(LayerSet::parse(None, 4).unwrap().contains(3));
    }
}
