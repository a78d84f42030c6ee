//! Gemma 3's config: the decoder config inside multimodal checkpoints, the
//! defaults hub configs leave out, and the local / global rope bases.

use serde_json::Value;

use super::*;

/// The decoder config of a Gemma 3 checkpoint: `text_config` for the
/// multimodal `gemma3`, the config itself for `gemma3_text`, with
/// `Gemma3TextConfig`'s defaults filled in (hub configs state only what
/// differs from them).
pub(super) fn gemma3_text_config(config: &Value) -> Result<Value> {
    let mut text = if config.get("model_type").and_then(Value::as_str) == Some("gemma3") {
        config
            .get("text_config")
            .filter(|v| v.is_object())
            .cloned()
            .ok_or_else(|| Error::Config("gemma3 config has no `text_config` object".into()))?
    } else {
        config.clone()
    };
    let defaults = serde_json::json!({
        "vocab_size": 262_208, "hidden_size": 2304, "intermediate_size": 9216,
        "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4,
        "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh",
        "max_position_embeddings": 131_072, "rms_norm_eps": 1e-6,
        "query_pre_attn_scalar": 256, "sliding_window": 4096,
    });
    if let (Some(t), Some(d)) = (text.as_object_mut(), defaults.as_object()) {
        for (k, v) in d {
            // Absent keys take the default; so do nulls, except an explicit
            // `sliding_window: null`, which means no window.
            let fill = match t.get(k) {
                None => true,
                Some(Value::Null) => k != "sliding_window",
                Some(_) => false,
            };
            if fill {
                t.insert(k.clone(), v.clone());
            }
        }
        if config.get("model_type").and_then(Value::as_str) == Some("gemma3") {
            if let Some(tie) = config.get("tie_word_embeddings") {
                t.entry("tie_word_embeddings").or_insert(tie.clone());
            }
        }
    }
    Ok(text)
}

/// Gemma 3 rotary settings: (global base, global scaling, local base).
/// transformers 5 writes `rope_parameters: {full_attention: {..},
/// sliding_attention: {..}}`; older configs `rope_theta` (1e6),
/// `rope_local_base_freq` (1e4) and a `rope_scaling` for the global layers.
pub(super) fn gemma3_rope(cfg: &Cfg) -> Result<(f64, RopeScaling, f64)> {
    let rp = cfg.0.get("rope_parameters");
    let part = |kind: &str| rp.and_then(|r| r.get(kind)).filter(|v| v.is_object());
    let theta_of = |v: Option<&Value>| v.and_then(|v| v.get("rope_theta")).and_then(Value::as_f64);
    let global = theta_of(part("full_attention")).or_else(|| cfg.opt_f64("rope_theta")).unwrap_or(1_000_000.0);
    let local = theta_of(part("sliding_attention")).or_else(|| cfg.opt_f64("rope_local_base_freq")).unwrap_or(10_000.0);
    let scaling = match part("full_attention") {
        Some(p) => rope_scaling_of(Some(p))?,
        None => rope_scaling(cfg)?,
    };
    if let Some(p) = part("sliding_attention") {
        if rope_scaling_of(Some(p))? != RopeScaling::None {
            return Err(Error::Config("gemma3: rope scaling on sliding-window layers is not supported".into()));
        }
    }
    Ok((global, scaling, local))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gemma3_legacy_and_multimodal_configs() {
        // A hub-style multimodal config: text_config states only what differs
        // from Gemma3TextConfig's defaults; legacy rope keys; no layer_types.
        let spec = ArchSpec::from_hf_config(&json!({
            "model_type": "gemma3",
            "text_config": {"model_type": "gemma3_text", "hidden_size": 2560, "intermediate_size": 10240,
                            "num_hidden_layers": 34, "rope_scaling": {"rope_type": "linear", "factor": 8.0},
                            "sliding_window": 1024},
            "vision_config": {"model_type": "siglip_vision_model"}
        }))
        .unwrap();
        assert_eq!(spec.family, Family::Gemma3);
        assert_eq!((spec.n_heads, spec.n_kv_heads, spec.head_dim, spec.vocab_size), (8, 4, 256, 262_208));
        assert!((spec.attn_scale - 1.0 / 16.0).abs() < 1e-15);
        assert_eq!(spec.windows[0], Some(1024));
        assert_eq!(spec.windows[5], None);
        assert_eq!(spec.windows.iter().filter(|w| w.is_none()).count(), 5); // layers 5, 11, 17, 23, 29
        assert_eq!(spec.positions, Positions::Rotary { theta: 1e6, rotary_dim: 256, scaling: RopeScaling::Linear { factor: 8.0 } });
        assert_eq!(spec.local_rope_theta, Some(10_000.0));
        assert_eq!(spec.qk_norm, QkNorm::PerHead);
        assert_eq!(spec.norm, NormKind::Rms { eps: 1e-6, weight_offset: 1.0 });
        // rope_local_base_freq and sliding_window_pattern, pre-transformers-5 style
        let spec = ArchSpec::from_hf_config(&json!({
            "model_type": "gemma3_text", "num_hidden_layers": 4, "rope_theta": 5e5, "rope_local_base_freq": 2e4,
            "sliding_window_pattern": 2, "sliding_window": 16
        }))
        .unwrap();
        assert_eq!(spec.windows, [Some(16), None, Some(16), None]);
        assert_eq!(spec.local_rope_theta, Some(2e4));
        assert!(matches!(spec.positions, Positions::Rotary { theta, .. } if theta == 5e5));
        let err = ArchSpec::from_hf_config(&json!({"model_type": "gemma3"})).unwrap_err().to_string();
        assert!(err.contains("text_config"), "{err}");
    }
}
