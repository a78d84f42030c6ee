//! The three forward-pass observers of `compress`: calibration (keeps each
//! layer's Q and K), evaluation (rank-r fidelity of every head and basis, and
//! the key-side projectors), and key replacement (the key-cache experiment).

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use field::{gram, Basis, HeadInput, KeyBasis, Params};
use indicatif::ProgressBar;
use models::capture::Tensor;
use models::{LayerCapture, LogitTransform, Observer, ObserverError};
use rayon::prelude::*;

use super::{BasisKind, Record};
use crate::observer::LayerQk;

/// One layer's calibration queries and keys (f32, as the model used them).
pub struct CalibLayer {
    pub q: Vec<f32>, // (h, n, d)
    pub k: Vec<f32>, // (h_kv, n, d)
    pub n: usize,
}

/// Keeps every layer's Q and K on the calibration text.
#[derive(Default)]
pub struct CalibObserver<'a> {
    pub layers: Vec<CalibLayer>,
    pub bar: Option<&'a ProgressBar>,
}

fn check_plain(cap: &LayerCapture<'_>) -> std::result::Result<(), ObserverError> {
    if cap.logit_transform != LogitTransform::None || cap.alibi_slopes.is_some() {
        return Err("compress needs plain bilinear logits (no soft-capping, no ALiBi); this model's attention is not rank-bounded".into());
    }
    Ok(())
}

impl Observer for CalibObserver<'_> {
    fn on_layer(&mut self, cap: &LayerCapture<'_>) -> std::result::Result<(), ObserverError> {
        check_plain(cap)?;
        let n = cap.q.dims3()?.1;
        self.layers.push(CalibLayer { q: cap.q.flatten_all()?.to_vec1::<f32>()?, k: cap.k.flatten_all()?.to_vec1::<f32>()?, n });
        if let Some(b) = self.bar {
            b.inc(1);
        }
        Ok(())
    }
}

/// Seed of the random basis of query head `head` (pattern experiment).
pub fn head_seed(base: u64, layer: usize, head: usize) -> u64 {
    base.wrapping_add(1000 * layer as u64 + head as u64)
}

/// Seed of the random key basis of KV head `kv` (key-cache experiment).
pub fn kv_seed(base: u64, layer: usize, kv: usize) -> u64 {
    base.wrapping_add(1000 * layer as u64 + 500 + kv as u64)
}

/// Head-level spectral measures on the evaluation text (for the table).
#[derive(Clone, Debug)]
pub struct HeadSpectral {
    pub k90: usize,
    pub k90_learned: Option<usize>,
    pub spectral_gap: Option<f64>,
}

/// Key-side projectors of one layer: (basis, key rank) → Tᵀ per KV head,
/// (h_kv, d, d) row-major f32, so that K' = K·Tᵀ.
pub type LayerKeyT = BTreeMap<(BasisKind, usize), Vec<f32>>;

pub struct EvalObserver<'a> {
    pub calib: &'a [CalibLayer],
    pub r_list: &'a [usize],
    pub key_ranks: &'a [usize],
    pub seed: u64,
    pub params: Params,
    pub records: Vec<Record>,
    pub spectral: Vec<HeadSpectral>,
    pub key_t: Vec<LayerKeyT>,
    pub bar: &'a ProgressBar,
}

impl EvalObserver<'_> {
    fn layer(&mut self, cap: &LayerCapture<'_>) -> Result<()> {
        let LayerQk { h, hkv, n, d, d_model, q, k, w_q_heads: wq_heads, w_k_heads: wk_heads } = LayerQk::from_capture(cap)?;
        let group = h / hkv;
        let l = cap.layer;
        let cal = self.calib.get(l).ok_or_else(|| anyhow!("no calibration data for layer {l}"))?;
        let cn = cal.n;
        let (scale, window) = (cap.scale, cap.window);
        let (r_list, seed, params) = (self.r_list, self.seed, &self.params);
        #[allow(clippy::too_many_arguments)]
        fn make<'x>(
            qs: &'x [f32],
            ks: &'x [f32],
            nn: usize,
            d: usize,
            scale: f64,
            window: Option<usize>,
            wq: &'x [f32],
            wk: &'x [f32],
            d_model: usize,
        ) -> HeadInput<'x> {
            let mut x = HeadInput::new(qs, ks, nn, d, scale);
            if let Some(w) = window {
                x = x.with_window(w);
            }
            x.with_weights(wq, wk, d_model)
        }
        type HeadOut = (Vec<Record>, HeadSpectral);
        let per_head: Vec<Result<HeadOut>> = (0..h)
            .into_par_iter()
            .map(|head| {
                let kv = head / group;
                let (wq, wk) = (&wq_heads[head][..], &wk_heads[kv][..]);
                let eval =
                    make(&q[head * n * d..(head + 1) * n * d], &k[kv * n * d..(kv + 1) * n * d], n, d, scale, window, wq, wk, d_model);
                let calib = make(
                    &cal.q[head * cn * d..(head + 1) * cn * d],
                    &cal.k[kv * cn * d..(kv + 1) * cn * d],
                    cn,
                    d,
                    scale,
                    window,
                    wq,
                    wk,
                    d_model,
                );
                let ctx = |e: field::FieldError| anyhow!("layer {l} head {head}: {e}");
                let f = field::analyze(&eval, &Params { keep_key_energy: false, ..params.clone() }).map_err(ctx)?;
                let spectral = HeadSpectral { k90: f.k90, k90_learned: f.k90_learned, spectral_gap: f.spectral_gap };
                let mut recs = Vec::with_capacity(3 * r_list.len());
                for &r in r_list {
                    for kind in BasisKind::ALL {
                        let (basis, src) = match kind {
                            BasisKind::Data => (Basis::Data, &calib),
                            BasisKind::Weights => (Basis::Weights, &eval),
                            BasisKind::Random => (Basis::Random { seed: head_seed(seed, l, head) }, &eval),
                        };
                        let proj = field::projector(src, &basis, r).map_err(ctx)?;
                        let fid = field::rank_r_fidelity(&eval, &proj, params).map_err(ctx)?;
                        recs.push(Record::pattern(l, head, kind, r, fid.kl, fid.top1));
                    }
                }
                Ok((recs, spectral))
            })
            .collect();
        for res in per_head {
            let (recs, sp) = res?;
            self.records.extend(recs);
            self.spectral.push(sp);
        }
        // Key-side projectors per KV head.
        let mut layer_t = LayerKeyT::new();
        let bases: Vec<(KeyBasis, KeyBasis)> = (0..hkv)
            .map(|g| -> Result<(KeyBasis, KeyBasis)> {
                let sum = |mats: Vec<Vec<f64>>| {
                    mats.into_iter().reduce(|a, b| a.iter().zip(&b).map(|(x, y)| x + y).collect()).unwrap_or_default()
                };
                let heads = g * group..(g + 1) * group;
                let gq_data = sum(heads.clone().map(|hq| gram(&cal.q[hq * cn * d..(hq + 1) * cn * d], cn, d, false)).collect());
                let gk_data = gram(&cal.k[g * cn * d..(g + 1) * cn * d], cn, d, true);
                let gq_w = sum(heads.map(|hq| gram(&wq_heads[hq], d_model, d, false)).collect());
                let gk_w = gram(&wk_heads[g], d_model, d, false);
                let ctx = |e: field::FieldError| anyhow!("layer {l} kv head {g}: {e}");
                Ok((KeyBasis::new(&gk_data, &gq_data, d).map_err(ctx)?, KeyBasis::new(&gk_w, &gq_w, d).map_err(ctx)?))
            })
            .collect::<Result<_>>()?;
        for &kr in self.key_ranks {
            for kind in BasisKind::ALL {
                let mut tt = Vec::with_capacity(hkv * d * d);
                for (g, (data, weights)) in bases.iter().enumerate() {
                    let t: Vec<f64> = match kind {
                        BasisKind::Data => data.projector(kr),
                        BasisKind::Weights => weights.projector(kr),
                        // The same seeded directions as field's random basis.
                        BasisKind::Random => field::random_key_projector(d, kr, kv_seed(seed, l, g)),
                    };
                    // store Tᵀ: K' (rows) = K·Tᵀ
                    tt.extend((0..d * d).map(|x| t[(x % d) * d + x / d] as f32));
                }
                layer_t.insert((kind, kr), tt);
            }
        }
        self.key_t.push(layer_t);
        self.bar.inc(1);
        Ok(())
    }
}

impl Observer for EvalObserver<'_> {
    fn on_layer(&mut self, cap: &LayerCapture<'_>) -> std::result::Result<(), ObserverError> {
        check_plain(cap)?;
        self.layer(cap).map_err(|e| e.to_string().into())
    }
}

/// Replaces the keys of the chosen layers by K·Tᵀ.
pub struct KeyObserver<'a> {
    /// Per layer: Tᵀ per KV head (h_kv, d, d), or None to keep the keys.
    pub transforms: Vec<Option<&'a [f32]>>,
}

impl Observer for KeyObserver<'_> {
    fn on_layer(&mut self, _cap: &LayerCapture<'_>) -> std::result::Result<(), ObserverError> {
        Ok(())
    }

    fn transform_keys(&mut self, layer: usize, k: &Tensor) -> std::result::Result<Option<Tensor>, ObserverError> {
        let Some(Some(tt)) = self.transforms.get(layer) else { return Ok(None) };
        let (hkv, _, d) = k.dims3()?;
        let t = Tensor::from_slice(tt, (hkv, d, d), k.device())?;
        Ok(Some(k.contiguous()?.matmul(&t)?))
    }
}
