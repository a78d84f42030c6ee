//! Controlled faults injected into training at a known step, into known
//! heads, so that the monitor's localisation can be scored
//! (`attnscope monitor-eval`, docs/monitor.md).
//!
//! | kind | what | where (L layers, H query heads, H_kv KV heads) |
//! |---|---|---|
//! | `lr-spike` | learning rate × `--fault-factor` (50) for `--fault-steps` (10) steps | every head |
//! | `collapse` | W_Q (and q bias) of 3 query heads × 10, and W_K (and k bias) of their KV heads × 10 | layer 0, query heads 0, 1, 2 |
//! | `reset` | Q, K, V rows and O columns of 2 heads re-drawn from normal(0, 0.02), biases 0 | layer L−1, the last 2 query heads (they share one KV head in the llama default) |
//! | `key` | rank-1 spike s·u vᵀ added to one KV head's W_K, ‖s·u vᵀ‖_F = 10·‖W_K(head)‖_F, u, v random unit vectors | layer 0, KV head 0 |
//! | `data` | every training window of `--fault-steps` (50) steps is one token repeated (the text's most frequent byte) | no head in particular |
//!
//! The heads a fault hits are the query heads whose Q or K changed: with
//! grouped-query attention a KV-head fault hits every query head that shares
//! that KV head (llama default: 4 query heads on 2 KV heads, so `collapse`
//! hits all 4 heads of layer 0, `key` hits heads 0 and 1). Weight faults act
//! on the HF tensors in place, in each family's own layout: Llama
//! `q_proj`/`k_proj`/`v_proj` (out, in) and `o_proj` columns; GPT-2 `c_attn`
//! Conv1D (in, 3·D) = [q | k | v] columns and `c_proj` rows; GPT-NeoX
//! `query_key_value` (3·D, in) with rows ordered (head, {q, k, v}, d_head) and
//! `dense` columns. Random draws use their own RNG (seed + 0xFA17), so the
//! training batches stay those of the healthy run with the same seed.

use anyhow::{bail, Context, Result};
use candle_core::{Tensor, Var};
use serde::Serialize;

use super::family::Shape;
use super::Rng;
use models::Family;

/// The kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    LrSpike,
    Collapse,
    Reset,
    Key,
    Data,
}

impl FaultKind {
    pub const ALL: [FaultKind; 5] = [FaultKind::Collapse, FaultKind::Reset, FaultKind::Key, FaultKind::Data, FaultKind::LrSpike];

    pub fn name(self) -> &'static str {
        match self {
            Self::LrSpike => "lr-spike",
            Self::Collapse => "collapse",
            Self::Reset => "reset",
            Self::Key => "key",
            Self::Data => "data",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .with_context(|| format!("`{s}` is not a fault kind (lr-spike, collapse, reset, key, data)"))
    }

    /// Default duration in steps (`--fault-steps` overrides): 10 for the LR
    /// spike, 50 for the data fault, 1 (a one-off edit) for weight faults.
    pub fn default_steps(self) -> u64 {
        match self {
            Self::LrSpike => 10,
            Self::Data => 50,
            _ => 1,
        }
    }

    /// Whether the fault targets particular heads (recall / precision apply).
    pub fn targets_heads(self) -> bool {
        matches!(self, Self::Collapse | Self::Reset | Self::Key)
    }
}

/// `KIND@STEP`, e.g. `collapse@300`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSpec {
    pub kind: FaultKind,
    pub at: u64,
}

impl FaultSpec {
    pub fn parse(s: &str) -> Result<Self> {
        let Some((kind, step)) = s.split_once('@') else {
            bail!("--fault: `{s}` is not KIND@STEP (KIND: lr-spike, collapse, reset, key, data)");
        };
        let kind = FaultKind::parse(kind).context("--fault")?;
        let at = step.parse::<u64>().map_err(|_| anyhow::anyhow!("--fault: `{step}` is not a step number"))?;
        if at == 0 {
            bail!("--fault: the step must be ≥ 1 (training steps count from 1)");
        }
        Ok(Self { kind, at })
    }
}

/// What a fault did, written to OUT/fault.json and summary.json.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    pub kind: FaultKind,
    /// First training step the fault acts on (weight faults: applied just
    /// before this step's update).
    pub step: u64,
    /// Steps it lasts.
    pub steps: u64,
    pub layer: Option<usize>,
    /// The KV heads whose weights changed (weight faults).
    pub kv_heads: Vec<usize>,
    /// The query heads hit, as (layer, head).
    pub hit_heads: Vec<(usize, usize)>,
    pub description: String,
}

/// Where one head's rows sit in a family's attention tensors.
struct Layout {
    dm: usize,
    dh: usize,
    h: usize,
    hkv: usize,
}

impl Layout {
    fn of(shape: &Shape) -> Self {
        Layout { dm: shape.d_model, dh: shape.head_dim(), h: shape.n_heads, hkv: shape.n_kv_heads }
    }
    fn kv_of(&self, q_head: usize) -> usize {
        q_head / (self.h / self.hkv)
    }
    fn queries_of(&self, kv: usize) -> impl Iterator<Item = usize> {
        let g = self.h / self.hkv;
        kv * g..(kv + 1) * g
    }
    /// The (layer, query head) pairs a fault on query heads `qs` and KV
    /// heads `kvs` of `layer` reaches: those heads plus every query head
    /// that reads one of the KV heads; sorted, without repeats.
    fn hit_heads(&self, layer: usize, qs: &[usize], kvs: &[usize]) -> Vec<(usize, usize)> {
        let mut hit: Vec<usize> = qs.to_vec();
        hit.extend(kvs.iter().flat_map(|&kv| self.queries_of(kv)));
        hit.sort_unstable();
        hit.dedup();
        hit.into_iter().map(|h| (layer, h)).collect()
    }
}

/// One of q, k, v, or the output projection.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    Q,
    K,
    V,
    O,
}

/// The weights of one layer's attention as (tensor name, flat indices of the
/// elements that belong to head `head` of `part`), for weights and biases.
fn head_elems(family: Family, lay: &Layout, layer: usize, part: Part, head: usize) -> Vec<(String, Vec<usize>)> {
    let (dm, dh, h) = (lay.dm, lay.dh, lay.h);
    let rows = |r0: usize, ncols: usize| -> Vec<usize> { (r0..r0 + dh).flat_map(|r| (0..ncols).map(move |c| r * ncols + c)).collect() };
    let cols = |c0: usize, nrows: usize, ncols: usize| -> Vec<usize> {
        (0..nrows).flat_map(|r| (c0..c0 + dh).map(move |c| r * ncols + c)).collect()
    };
    let range = |s: usize| -> Vec<usize> { (s..s + dh).collect() };
    match family {
        Family::Gpt2 => {
            let b = format!("transformer.h.{layer}.attn");
            let off = |i: usize| i * dm + head * dh;
            match part {
                Part::Q | Part::K | Part::V => {
                    let i = [Part::Q, Part::K, Part::V].iter().position(|p| *p == part).unwrap_or(0);
                    vec![(format!("{b}.c_attn.weight"), cols(off(i), dm, 3 * dm)), (format!("{b}.c_attn.bias"), range(off(i)))]
                }
                Part::O => vec![(format!("{b}.c_proj.weight"), rows(head * dh, dm))],
            }
        }
        Family::GptNeox => {
            let b = format!("gpt_neox.layers.{layer}.attention");
            match part {
                Part::Q | Part::K | Part::V => {
                    let i = [Part::Q, Part::K, Part::V].iter().position(|p| *p == part).unwrap_or(0);
                    let r0 = (head * 3 + i) * dh;
                    vec![(format!("{b}.query_key_value.weight"), rows(r0, dm)), (format!("{b}.query_key_value.bias"), range(r0))]
                }
                Part::O => {
                    let _ = h;
                    vec![(format!("{b}.dense.weight"), cols(head * dh, dm, dm))]
                }
            }
        }
        // Llama (the trainable families are checked by `Shape::validate`).
        _ => {
            let b = format!("model.layers.{layer}.self_attn");
            match part {
                Part::Q => vec![(format!("{b}.q_proj.weight"), rows(head * dh, dm))],
                Part::K => vec![(format!("{b}.k_proj.weight"), rows(head * dh, dm))],
                Part::V => vec![(format!("{b}.v_proj.weight"), rows(head * dh, dm))],
                Part::O => vec![(format!("{b}.o_proj.weight"), cols(head * dh, dm, dm))],
            }
        }
    }
}

fn var<'a>(vars: &'a [(String, Var)], name: &str) -> Result<&'a Var> {
    vars.iter().find(|(n, _)| n == name).map(|(_, v)| v).with_context(|| format!("fault: no tensor {name}"))
}

/// Applies `f` to the elements `idx` of tensor `name` (in place).
fn edit(vars: &[(String, Var)], name: &str, idx: &[usize], mut f: impl FnMut(usize, f32) -> f32) -> Result<()> {
    let v = var(vars, name)?;
    let dims = v.dims().to_vec();
    let mut data = v.as_tensor().flatten_all()?.to_vec1::<f32>()?;
    for (k, &i) in idx.iter().enumerate() {
        data[i] = f(k, data[i]);
    }
    v.set(&Tensor::from_vec(data, dims, v.device())?)?;
    Ok(())
}

fn is_bias(name: &str) -> bool {
    name.ends_with(".bias")
}

/// Applies a weight fault (collapse, reset, key) to `vars` and says what it
/// hit; for the LR spike and the data fault only records it (the training
/// loop acts on those).
pub fn apply(spec: FaultSpec, steps: u64, shape: &Shape, vars: &[(String, Var)], seed: u64) -> Result<FaultRecord> {
    let lay = Layout::of(shape);
    let fam = shape.family;
    let mut rng = Rng::new(seed ^ 0xFA17);
    let (nl, dh) = (shape.n_layers, lay.dh);
    let all_heads = || -> Vec<(usize, usize)> { (0..nl).flat_map(|l| (0..lay.h).map(move |h| (l, h))).collect() };
    let mut rec =
        FaultRecord { kind: spec.kind, step: spec.at, steps, layer: None, kv_heads: vec![], hit_heads: vec![], description: String::new() };
    match spec.kind {
        FaultKind::LrSpike => {
            rec.hit_heads = all_heads();
            rec.description = format!("learning rate × factor for {steps} steps from step {}", spec.at);
        }
        FaultKind::Data => {
            rec.hit_heads = all_heads();
            rec.description = format!("{steps} steps of batches made of one repeated token from step {}", spec.at);
        }
        FaultKind::Collapse => {
            let layer = 0;
            let qs: Vec<usize> = (0..lay.h.min(3)).collect();
            let mut kvs: Vec<usize> = qs.iter().map(|&q| lay.kv_of(q)).collect();
            kvs.dedup();
            for &q in &qs {
                for (name, idx) in head_elems(fam, &lay, layer, Part::Q, q) {
                    edit(vars, &name, &idx, |_, x| 10.0 * x)?;
                }
            }
            for &kv in &kvs {
                for (name, idx) in head_elems(fam, &lay, layer, Part::K, kv) {
                    edit(vars, &name, &idx, |_, x| 10.0 * x)?;
                }
            }
            rec.layer = Some(layer);
            rec.kv_heads = kvs.clone();
            rec.hit_heads = lay.hit_heads(layer, &qs, &kvs);
            rec.description =
                format!("layer {layer}: W_Q (and q bias) of query heads {qs:?} × 10, W_K (and k bias) of KV heads {kvs:?} × 10");
        }
        FaultKind::Reset => {
            let layer = nl - 1;
            let qs: Vec<usize> = (lay.h.saturating_sub(2)..lay.h).collect();
            let mut kvs: Vec<usize> = qs.iter().map(|&q| lay.kv_of(q)).collect();
            kvs.dedup();
            let redraw = |part: Part, head: usize, rng: &mut Rng| -> Result<()> {
                for (name, idx) in head_elems(fam, &lay, layer, part, head) {
                    let bias = is_bias(&name);
                    edit(vars, &name, &idx, |_, _| if bias { 0.0 } else { (rng.normal() * 0.02) as f32 })?;
                }
                Ok(())
            };
            for &q in &qs {
                redraw(Part::Q, q, &mut rng)?;
                redraw(Part::O, q, &mut rng)?;
            }
            for &kv in &kvs {
                redraw(Part::K, kv, &mut rng)?;
                redraw(Part::V, kv, &mut rng)?;
            }
            rec.layer = Some(layer);
            rec.kv_heads = kvs.clone();
            rec.hit_heads = lay.hit_heads(layer, &qs, &kvs);
            rec.description = format!(
                "layer {layer}: Q and O of query heads {qs:?}, K and V of KV heads {kvs:?} re-drawn from normal(0, 0.02), their biases 0"
            );
        }
        FaultKind::Key => {
            let (layer, kv) = (0, 0);
            let elems = head_elems(fam, &lay, layer, Part::K, kv);
            let (name, idx) = elems.first().context("fault: no key weight")?;
            let w = var(vars, name)?.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            let norm = idx.iter().map(|&i| (w[i] as f64).powi(2)).sum::<f64>().sqrt();
            let unit = |n: usize, rng: &mut Rng| -> Vec<f64> {
                let v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
                let s = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                v.into_iter().map(|x| x / s).collect()
            };
            let u = unit(dh, &mut rng);
            let v = unit(lay.dm, &mut rng);
            let s = 10.0 * norm;
            // idx enumerates the head's (d_head × d_model) block in (head dim, model dim) order
            // for Llama / NeoX (rows) and in (model dim, head dim) order for GPT-2 (columns).
            let gpt2 = fam == Family::Gpt2;
            edit(vars, name, idx, |k, x| {
                let (a, b) = if gpt2 { (k % dh, k / dh) } else { (k / lay.dm, k % lay.dm) };
                x + (s * u[a] * v[b]) as f32
            })?;
            rec.layer = Some(layer);
            rec.kv_heads = vec![kv];
            rec.hit_heads = lay.queries_of(kv).map(|h| (layer, h)).collect();
            rec.description =
                format!("layer {layer}: rank-1 spike s·u·vᵀ added to W_K of KV head {kv}, ‖s·u·vᵀ‖_F = 10 × ‖W_K‖_F = {s:.3}");
        }
    }
    Ok(rec)
}

/// The token a data fault repeats: the most frequent id of `ids`.
pub fn most_frequent(ids: &[u32]) -> u32 {
    let mut count = std::collections::HashMap::new();
    for &i in ids {
        *count.entry(i).or_insert(0usize) += 1;
    }
    count.into_iter().max_by_key(|&(i, c)| (c, std::cmp::Reverse(i))).map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::Trainable;

    fn shape(family: Family, kv: usize) -> Shape {
        Shape { family, d_model: 16, n_layers: 2, n_heads: 4, n_kv_heads: kv, ctx: 8, vocab: 11 }
    }

    /// Which elements of which tensors differ between two weight sets.
    fn changed(a: &[(String, Var)], b: &[(String, Var)]) -> Vec<(String, Vec<usize>)> {
        a.iter()
            .zip(b)
            .filter_map(|((n, x), (_, y))| {
                let x = x.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let y = y.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let d: Vec<usize> = (0..x.len()).filter(|&i| x[i] != y[i]).collect();
                (!d.is_empty()).then(|| (n.clone(), d))
            })
            .collect()
    }

    fn copy(t: &Trainable) -> Vec<(String, Var)> {
        t.vars.iter().map(|(n, v)| (n.clone(), Var::from_tensor(&v.as_tensor().copy().unwrap()).unwrap())).collect()
    }

    #[test]
    fn parse_kinds() {
        assert_eq!(FaultSpec::parse("collapse@300").unwrap(), FaultSpec { kind: FaultKind::Collapse, at: 300 });
        assert_eq!(FaultSpec::parse("lr-spike@5").unwrap().kind, FaultKind::LrSpike);
        assert!(
            FaultSpec::parse("nan@3").is_err()
                && FaultSpec::parse("key").is_err()
                && FaultSpec::parse("key@x").is_err()
                && FaultSpec::parse("key@0").is_err()
        );
    }

    #[test]
    fn llama_collapse_scales_q_rows_of_three_heads_and_both_kv_heads() {
        let t = Trainable::init(shape(Family::Llama, 2), &mut Rng::new(1)).unwrap();
        let before = copy(&t);
        let r = apply(FaultSpec { kind: FaultKind::Collapse, at: 3 }, 1, &t.shape, &t.vars, 1).unwrap();
        // 3 query heads on KV heads 0 and 1: all 4 query heads hit.
        assert_eq!(r.hit_heads, vec![(0, 0), (0, 1), (0, 2), (0, 3)]);
        let c = changed(&before, &t.vars);
        let names: Vec<&str> = c.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight"]);
        // q_proj: rows 0..12 of 16 (3 heads × d_head 4); k_proj: all 8 rows.
        assert_eq!(c[0].1.len(), 12 * 16);
        assert_eq!(*c[0].1.last().unwrap(), 12 * 16 - 1);
        assert_eq!(c[1].1.len(), 8 * 16);
        let x = before[t.vars.iter().position(|(n, _)| n == "model.layers.0.self_attn.q_proj.weight").unwrap()]
            .1
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let y =
            var(&t.vars, "model.layers.0.self_attn.q_proj.weight").unwrap().as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!((y[5] - 10.0 * x[5]).abs() < 1e-6);
    }

    #[test]
    fn gpt2_reset_touches_the_heads_columns_of_c_attn_and_rows_of_c_proj() {
        let t = Trainable::init(shape(Family::Gpt2, 4), &mut Rng::new(2)).unwrap();
        let before = copy(&t);
        let r = apply(FaultSpec { kind: FaultKind::Reset, at: 3 }, 1, &t.shape, &t.vars, 2).unwrap();
        assert_eq!(r.hit_heads, vec![(1, 2), (1, 3)]);
        let c = changed(&before, &t.vars);
        // Biases are 0 at init and reset to 0: only the weights differ.
        let names: Vec<&str> = c.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["transformer.h.1.attn.c_attn.weight", "transformer.h.1.attn.c_proj.weight"]);
        // c_attn (16, 48): columns 8..16 (q), 24..32 (k), 40..48 (v) of every row.
        let cols: std::collections::BTreeSet<usize> = c[0].1.iter().map(|i| i % 48).collect();
        let want: std::collections::BTreeSet<usize> = (8..16).chain(24..32).chain(40..48).collect();
        assert_eq!(cols, want);
        // c_proj (16, 16): rows 8..16.
        let rows: std::collections::BTreeSet<usize> = c[1].1.iter().map(|i| i / 16).collect();
        assert_eq!(rows, (8..16).collect());
    }

    #[test]
    fn neox_key_spike_is_rank_one_on_the_heads_k_rows() {
        // d_model 32: d_head 8 (NeoX's rotary needs an even d_head / 4).
        let t = Trainable::init(Shape { d_model: 32, ..shape(Family::GptNeox, 4) }, &mut Rng::new(3)).unwrap();
        let before = copy(&t);
        let r = apply(FaultSpec { kind: FaultKind::Key, at: 3 }, 1, &t.shape, &t.vars, 3).unwrap();
        assert_eq!(r.hit_heads, vec![(0, 0)]);
        let c = changed(&before, &t.vars);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, "gpt_neox.layers.0.attention.query_key_value.weight");
        // Head 0's k rows are rows 8..16 of the (96, 32) per-head interleaved qkv.
        let rows: std::collections::BTreeSet<usize> = c[0].1.iter().map(|i| i / 32).collect();
        assert_eq!(rows, (8..16).collect());
        // The difference is rank 1: every 2 × 2 minor vanishes.
        let x =
            before[t.vars.iter().position(|(n, _)| n == &c[0].0).unwrap()].1.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let y = var(&t.vars, &c[0].0).unwrap().as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let d = |r: usize, k: usize| (y[r * 32 + k] - x[r * 32 + k]) as f64;
        let minor = d(8, 0) * d(9, 1) - d(8, 1) * d(9, 0);
        assert!(minor.abs() < 1e-5 * (d(8, 0).abs() + 1.0) * (d(9, 1).abs() + 1.0), "{minor}");
        assert!(d(8, 0).abs() > 0.0 && d(9, 1).abs() > 0.0);
    }

    #[test]
    fn most_frequent_id() {
        assert_eq!(most_frequent(&[3, 1, 3, 2, 1, 3]), 3);
    }
}
