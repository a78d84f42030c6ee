//! The summary table of `compress` (compress.json `table`, stdout, the
//! page): built from the typed records, printed from the typed table.

use serde::Serialize;

use super::observers::HeadSpectral;
use super::{BasisKind, Experiment, Record};
use crate::stats;

/// One value per basis (JSON: `{"data": …, "weights": …, "random": …}`).
#[derive(Clone, Debug, Serialize)]
pub struct PerBasis<T> {
    pub data: T,
    pub weights: T,
    pub random: T,
}

impl<T> PerBasis<T> {
    fn from_fn(f: impl Fn(BasisKind) -> T) -> Self {
        PerBasis { data: f(BasisKind::Data), weights: f(BasisKind::Weights), random: f(BasisKind::Random) }
    }
    pub fn get(&self, k: BasisKind) -> &T {
        match k {
            BasisKind::Data => &self.data,
            BasisKind::Weights => &self.weights,
            BasisKind::Random => &self.random,
        }
    }
}

/// Median and range over heads (finite values only).
#[derive(Clone, Debug, Serialize)]
pub struct MedianRange {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl MedianRange {
    /// `None` when no value is finite.
    fn of(v: &[f64]) -> Option<MedianRange> {
        let s = stats::sorted_finite(v);
        Some(MedianRange { median: stats::median(&s), min: *s.first()?, max: *s.last()? })
    }
}

/// How often the data basis beats the weights basis at equal r.
#[derive(Clone, Debug, Serialize)]
pub struct Wins {
    pub data_wins: usize,
    pub of: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct DataBeatsWeights {
    pub kl: Wins,
    pub top1: Wins,
    pub loss: Wins,
}

/// The curves at one r: means over heads (pattern), loss change (keys).
#[derive(Clone, Debug, Serialize)]
pub struct ByR {
    pub r: usize,
    /// min(r, d)/d.
    pub ratio: f64,
    pub mean_kl: PerBasis<f64>,
    pub mean_top1: PerBasis<f64>,
    /// Relative loss change of the all-layer key-cache run at key rank min(r, d).
    pub loss_delta: PerBasis<Option<f64>>,
}

/// The table of the companion paper's format, plus the per-r curves it
/// summarises. Field order is the JSON order.
#[derive(Clone, Debug, Serialize)]
pub struct Table {
    pub model: String,
    pub n_layers: usize,
    pub n_heads: usize,
    pub head_dim: usize,
    pub ctx: usize,
    pub heads: usize,
    pub loss_full: f64,
    #[serde(rename = "k90_E")]
    pub k90_e: Option<MedianRange>,
    #[serde(rename = "k90_M")]
    pub k90_m: Option<MedianRange>,
    pub spectral_gap: Option<MedianRange>,
    /// Smallest listed r from which on every listed r has mean KL ≤ 0.01 nats.
    #[serde(rename = "r_mean_kl_le_0.01")]
    pub r_mean_kl: PerBasis<Option<usize>>,
    /// Smallest listed r from which on every listed r has |loss change| ≤ 1 %.
    #[serde(rename = "r_abs_loss_delta_le_1pct")]
    pub r_abs_loss_delta: PerBasis<Option<usize>>,
    pub data_beats_weights: DataBeatsWeights,
    pub by_r: Vec<ByR>,
}

/// Mean over heads of a pattern measure, per (basis, r).
fn pattern_mean(records: &[Record], kind: BasisKind, r: usize, top1: bool) -> f64 {
    let v: Vec<f64> = records
        .iter()
        .filter(|x| x.experiment == Experiment::Pattern && x.basis == kind && x.r == r)
        .filter_map(|x| if top1 { x.top1 } else { x.kl })
        .collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn model_loss_delta(records: &[Record], kind: BasisKind, r: usize) -> Option<f64> {
    records.iter().find(|x| x.experiment == Experiment::Keys && x.layer.is_none() && x.basis == kind && x.r == r).and_then(|x| x.loss_delta)
}

impl Table {
    pub fn build(
        source: &str,
        spec: &models::ArchSpec,
        ctx: usize,
        r_list: &[usize],
        records: &[Record],
        spectral: &[HeadSpectral],
        loss_full: f64,
    ) -> Table {
        let d = spec.head_dim;
        // The smallest r of the list from which on every listed r meets the criterion.
        let from_on = |ok: &dyn Fn(usize) -> bool| -> Option<usize> {
            let mut best = None;
            for &r in r_list.iter().rev() {
                if !ok(r) {
                    break;
                }
                best = Some(r);
            }
            best
        };
        let r_mean_kl = PerBasis::from_fn(|k| from_on(&|r| pattern_mean(records, k, r, false) <= 0.01));
        let r_abs_loss_delta = PerBasis::from_fn(|k| from_on(&|r| model_loss_delta(records, k, r).is_some_and(|x| x.abs() <= 0.01)));
        // data vs weights at equal r, over the ranks where the two can differ (r < d + 1 for the
        // pattern; key rank < d for the loss, where every basis keeps all keys).
        let (mut kl_w, mut kl_n, mut t1_w, mut t1_n, mut ls_w, mut ls_n) = (0, 0, 0, 0, 0, 0);
        let mut by_r = Vec::new();
        for &r in r_list {
            let kl = |k| pattern_mean(records, k, r, false);
            let t1 = |k| pattern_mean(records, k, r, true);
            let ld = |k| model_loss_delta(records, k, r);
            if r <= d {
                kl_n += 1;
                kl_w += usize::from(kl(BasisKind::Data) < kl(BasisKind::Weights));
                t1_n += 1;
                t1_w += usize::from(t1(BasisKind::Data) > t1(BasisKind::Weights));
            }
            if r < d {
                if let (Some(a), Some(b)) = (ld(BasisKind::Data), ld(BasisKind::Weights)) {
                    ls_n += 1;
                    ls_w += usize::from(a < b);
                }
            }
            by_r.push(ByR {
                r,
                ratio: r.min(d) as f64 / d as f64,
                mean_kl: PerBasis::from_fn(kl),
                mean_top1: PerBasis::from_fn(t1),
                loss_delta: PerBasis::from_fn(ld),
            });
        }
        let wins = |data_wins, of| Wins { data_wins, of };
        Table {
            model: source.to_string(),
            n_layers: spec.n_layers,
            n_heads: spec.n_heads,
            head_dim: d,
            ctx,
            heads: spectral.len(),
            loss_full,
            k90_e: MedianRange::of(&spectral.iter().map(|s| s.k90 as f64).collect::<Vec<_>>()),
            k90_m: MedianRange::of(&spectral.iter().filter_map(|s| s.k90_learned.map(|k| k as f64)).collect::<Vec<_>>()),
            spectral_gap: MedianRange::of(&spectral.iter().filter_map(|s| s.spectral_gap).collect::<Vec<_>>()),
            r_mean_kl,
            r_abs_loss_delta,
            data_beats_weights: DataBeatsWeights { kl: wins(kl_w, kl_n), top1: wins(t1_w, t1_n), loss: wins(ls_w, ls_n) },
            by_r,
        }
    }

    /// The table as plain text (stdout, the page, docs).
    pub fn text(&self) -> String {
        let mr = |v: &Option<MedianRange>| match v {
            Some(m) => format!("median {}  range {}–{}", f(m.median), f(m.min), f(m.max)),
            None => "median –  range –––".to_string(),
        };
        let mut s = format!(
            "attnscope compress: {} ({} layers × {} heads, d = {}), ctx {}, full loss {:.4} nats\n",
            self.model, self.n_layers, self.n_heads, self.head_dim, self.ctx, self.loss_full
        );
        s += &format!("  k90 of E          {}\n", mr(&self.k90_e));
        s += &format!("  k90 of M          {}\n", mr(&self.k90_m));
        s += &format!("  spectral gap      {}   (effective rank of M / of E)\n", mr(&self.spectral_gap));
        s += "                              data  weights   random\n";
        let row = |name: &str, v: &PerBasis<Option<usize>>| {
            let g = |x: Option<usize>| f(x.map_or(f64::NAN, |x| x as f64));
            format!("  {name:<26}{:>6}{:>9}{:>9}\n", g(v.data), g(v.weights), g(v.random))
        };
        s += &row("r for mean KL ≤ 0.01", &self.r_mean_kl);
        s += &row("r for |loss change| ≤ 1 %", &self.r_abs_loss_delta);
        let w = &self.data_beats_weights;
        s += &format!(
            "  data beats weights at equal r: mean KL {}/{}, top-1 {}/{}, key-cache loss {}/{}\n",
            w.kl.data_wins, w.kl.of, w.top1.data_wins, w.top1.of, w.loss.data_wins, w.loss.of
        );
        s += "     r  ratio |   mean KL: data   weights    random | top-1: data weights random | loss Δ: data   weights    random\n";
        let o = |x: &Option<f64>| f(x.unwrap_or(f64::NAN));
        for b in &self.by_r {
            let (kl, t1, ld) = (&b.mean_kl, &b.mean_top1, &b.loss_delta);
            s += &format!(
                "  {:>4} {:>6.3} | {:>14} {:>9} {:>9} | {:>11} {:>7} {:>6} | {:>12} {:>9} {:>9}\n",
                b.r,
                b.ratio,
                f(kl.data),
                f(kl.weights),
                f(kl.random),
                f(t1.data),
                f(t1.weights),
                f(t1.random),
                o(&ld.data),
                o(&ld.weights),
                o(&ld.random)
            );
        }
        s
    }
}

/// A table cell: "–" for a missing value, integers plainly, else 3
/// decimals, or scientific below 0.01.
fn f(x: f64) -> String {
    match x {
        x if !x.is_finite() => "–".into(),
        x if x == x.round() && x.abs() < 1e6 => format!("{x:.0}"),
        x if x.abs() >= 0.01 => format!("{x:.3}"),
        x => format!("{x:.2e}"),
    }
}
