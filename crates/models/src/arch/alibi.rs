//! The ALiBi families (BLOOM, MPT): their specs, and their slopes exactly
//! as transformers computes them (f32).

use serde_json::Value;

use super::*;

impl ArchSpec {
    /// BLOOM: ALiBi, LayerNorm (with bias) everywhere including on the word
    /// embeddings, tanh-GELU MLP of 4·D, biases on every linear.
    pub(super) fn bloom(cfg: &Cfg) -> Result<ArchSpec> {
        let d_model = cfg.usize_any(&["hidden_size", "n_embed"])?;
        let n_heads = cfg.usize_any(&["n_head", "num_attention_heads"])?;
        let n_layers = cfg.layers(&["n_layer", "num_hidden_layers"])?;
        if cfg.bool_or("apply_residual_connection_post_layernorm", false) {
            return Err(Error::Config("bloom with apply_residual_connection_post_layernorm is not supported".into()));
        }
        let head_dim = d_model / n_heads.max(1);
        Ok(ArchSpec {
            family: Family::Bloom,
            n_layers,
            d_model,
            n_heads,
            n_kv_heads: n_heads,
            head_dim,
            d_ff: 4 * d_model,
            vocab_size: cfg.usize("vocab_size")?,
            max_positions: cfg.opt_usize("seq_length"),
            norm: NormKind::Layer { eps: cfg.opt_f64("layer_norm_epsilon").unwrap_or(1e-5) },
            positions: Positions::None,
            local_rope_theta: None,
            position_bias: PositionBias::Alibi { slopes: bloom_alibi_slopes(n_heads) },
            embed_norm: true,
            mlp: Mlp::Plain(Activation::GeluTanh),
            block: BlockKind::PreNorm,
            qk_norm: QkNorm::None,
            qkv_bias: true,
            linear_bias: true,
            attn_scale: 1.0 / (head_dim as f64).sqrt(),
            windows: vec![None; n_layers],
            attn_logit_transform: LogitTransform::None,
            final_logit_transform: LogitTransform::None,
            embed_scale: None,
            tie_embeddings: cfg.bool_or("tie_word_embeddings", true),
        })
    }

    /// MPT as transformers runs it: ALiBi (always), bias-free linears and
    /// LayerNorms, erf-GELU MLP of 4·D (`expansion_ratio`).
    pub(super) fn mpt(cfg: &Cfg) -> Result<ArchSpec> {
        let d_model = cfg.usize_any(&["d_model", "hidden_size"])?;
        let n_heads = cfg.usize_any(&["n_heads", "num_attention_heads"])?;
        let n_layers = cfg.layers(&["n_layers", "num_hidden_layers"])?;
        let head_dim = d_model / n_heads.max(1);
        let attn = cfg.0.get("attn_config").cloned().unwrap_or(Value::Null);
        let attn = Cfg::new(&attn);
        if attn.bool_or("qk_ln", false) || attn.opt_f64("clip_qkv").is_some() {
            return Err(Error::Config("mpt with attn_config.qk_ln or clip_qkv is not supported".into()));
        }
        let scale = attn.opt_f64("softmax_scale").unwrap_or(1.0 / (head_dim as f64).sqrt());
        let bias_max = attn.opt_f64("alibi_bias_max").unwrap_or(8.0);
        attn.check()?;
        let ratio = cfg.opt_usize("expansion_ratio").unwrap_or(4);
        Ok(ArchSpec {
            family: Family::Mpt,
            n_layers,
            d_model,
            n_heads,
            n_kv_heads: n_heads,
            head_dim,
            d_ff: ratio * d_model,
            vocab_size: cfg.usize("vocab_size")?,
            max_positions: cfg.opt_usize("max_seq_len"),
            norm: NormKind::Layer { eps: cfg.opt_f64("layer_norm_epsilon").unwrap_or(1e-5) },
            positions: Positions::None,
            local_rope_theta: None,
            position_bias: PositionBias::Alibi { slopes: mpt_alibi_slopes(n_heads, bias_max) },
            embed_norm: false,
            mlp: Mlp::Plain(Activation::GeluErf),
            block: BlockKind::PreNorm,
            qk_norm: QkNorm::None,
            qkv_bias: false,
            linear_bias: false,
            attn_scale: scale,
            windows: vec![None; n_layers],
            attn_logit_transform: LogitTransform::None,
            final_logit_transform: LogitTransform::None,
            embed_scale: None,
            tie_embeddings: cfg.bool_or("tie_word_embeddings", true),
        })
    }
}

/// BLOOM's ALiBi slopes, as transformers' `_get_alibi_slopes` computes them (f32).
pub fn bloom_alibi_slopes(n_heads: usize) -> Vec<f64> {
    let closest = 1usize << (usize::BITS - 1 - n_heads.max(1).leading_zeros());
    let base_of = |n: usize| 2f64.powf(-(2f64.powf(-((n as f64).log2() - 3.0)))) as f32;
    let base = base_of(closest);
    let mut slopes: Vec<f64> = (1..=closest).map(|p| base.powf(p as f32) as f64).collect();
    if closest != n_heads {
        let extra = base_of(2 * closest);
        let remaining = closest.min(n_heads - closest);
        slopes.extend((0..remaining).map(|i| extra.powf((2 * i + 1) as f32) as f64));
    }
    slopes
}

/// MPT's ALiBi slopes, as transformers' `build_mpt_alibi_tensor` computes
/// them (f32): 1 / 2^(k·max/n2) for k = 1..n2 (n2 the next power of two),
/// odd entries first when n2 ≠ h.
pub fn mpt_alibi_slopes(n_heads: usize, bias_max: f64) -> Vec<f64> {
    let n2 = n_heads.max(1).next_power_of_two();
    let step = (bias_max / n2 as f64) as f32;
    let all: Vec<f32> = (1..=n2).map(|k| 1.0 / 2f32.powf(k as f32 * step)).collect();
    let ordered: Vec<f32> = if n2 == n_heads { all } else { all.iter().skip(1).step_by(2).chain(all.iter().step_by(2)).copied().collect() };
    ordered.into_iter().take(n_heads).map(f64::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// transformers' `_get_alibi_slopes` and `build_mpt_alibi_tensor`,
    /// printed by torch (f32) for these head counts.
    #[test]
    fn alibi_slopes_match_transformers() {
        let close = |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-7 * y);
        assert!(close(&bloom_alibi_slopes(4), &[0.25, 0.0625, 0.015625, 0.00390625]));
        let b3 = bloom_alibi_slopes(3);
        assert!(close(&b3, &[0.0625, 0.00390625, 0.25]), "{b3:?}");
        let b6 = bloom_alibi_slopes(6);
        assert!(close(&b6, &[0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125]), "{b6:?}");
        assert!(close(&mpt_alibi_slopes(4, 8.0), &bloom_alibi_slopes(4)));
        let m3 = mpt_alibi_slopes(3, 8.0);
        assert!(close(&m3, &[0.0625, 0.00390625, 0.25]), "{m3:?}");
        let m6 = mpt_alibi_slopes(6, 8.0);
        let want: Vec<f64> = [2, 4, 6, 8, 1, 3].iter().map(|&k| 2f64.powi(-k)).collect();
        assert!(close(&m6, &want), "{m6:?}");
    }
}
