//! The energy field of the first t tokens, for pictures: E_ij for i, j < t
//! on and below the diagonal (the keys each query can see causally).
//!
//! Because C_i ⊆ {0..=i}, the row mean m_i of query i < t needs only keys
//! j ≤ i < t, so this top-left tile of E is exact: it equals the n×n field's
//! entries whatever n is (a longer context changes nothing in it). Cost
//! O(t²·d), memory O(t²).

use crate::error::Result;
use crate::input::{HeadInput, LogitTransform};
use crate::linalg::{compensated_sum, dot};

/// Number of entries of a packed lower triangle (diagonal included) of t rows.
pub fn tile_len(t: usize) -> usize {
    t * (t + 1) / 2
}

/// Reads Q and K of one head and returns E_ij = S_ij − m_i for the first
/// t' = min(t, n) rows, j = 0..=i, packed row by row (row i starts at
/// i(i+1)/2; length [`tile_len`]`(t')`), in f64. Equals the dense reference
/// field on those entries to rounding (the same per-entry formula: scale,
/// ALiBi, soft-cap, then the compensated mean over C_i).
pub fn energy_tile(head: &HeadInput<'_>, t: usize) -> Result<Vec<f64>> {
    head.validate()?;
    let (t, d) = (t.min(head.n), head.d);
    let mut out = Vec::with_capacity(tile_len(t));
    let mut row = Vec::with_capacity(t);
    // the first t rows widened to f64 once (exact), so the inner loop is a plain dot
    let q: Vec<f64> = (0..t * d).map(|x| head.q.get(x)).collect();
    let k: Vec<f64> = (0..t * d).map(|x| head.k.get(x)).collect();
    for i in 0..t {
        row.clear();
        let qi = &q[i * d..(i + 1) * d];
        for j in 0..=i {
            let mut x = head.scale * dot(qi, &k[j * d..(j + 1) * d]);
            if let Some(m) = head.alibi_slope {
                x += m * (j as f64 - i as f64);
            }
            if let LogitTransform::Softcap(c) = head.transform {
                x = c * (x / c).tanh();
            }
            row.push(x);
        }
        let support = head.support_range(i);
        let m = compensated_sum(support.clone().map(|j| row[j])) / support.len() as f64;
        out.extend(row.iter().map(|x| x - m));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dense;

    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn tile_equals_the_dense_field_for_every_support_and_transform() {
        let (n, d) = (23, 5);
        let (q, k) = (values(n * d, 1), values(n * d, 2));
        let plain = HeadInput::new(&q, &k, n, d, 0.7);
        for head in [plain, plain.with_window(4), plain.with_alibi(0.3), plain.with_softcap(1.5)] {
            let e = dense::field(&head);
            let scale = (0..n).flat_map(|i| (0..n).map(move |j| (i, j))).fold(0f64, |m, (i, j)| m.max(e[(i, j)].abs()));
            for t in [0, 1, 7, n, n + 10] {
                let tile = energy_tile(&head, t).unwrap();
                let t = t.min(n);
                assert_eq!(tile.len(), tile_len(t));
                for i in 0..t {
                    for j in 0..=i {
                        let got = tile[tile_len(i) + j];
                        assert!((got - e[(i, j)]).abs() <= 1e-12 * scale, "({i},{j}) {got} vs {}", e[(i, j)]);
                    }
                }
            }
        }
    }

    #[test]
    fn tile_of_a_prefix_is_the_prefix_of_the_tile() {
        // A longer context leaves the first t tokens' field unchanged.
        let d = 3;
        let (q, k) = (values(40 * d, 3), values(40 * d, 4));
        let long = energy_tile(&HeadInput::new(&q, &k, 40, d, 0.5), 16).unwrap();
        let short = energy_tile(&HeadInput::new(&q[..16 * d], &k[..16 * d], 16, d, 0.5), 16).unwrap();
        assert_eq!(long, short);
        assert!(energy_tile(&HeadInput::new(&q, &k, 0, d, 0.5), 4).is_err());
    }
}
