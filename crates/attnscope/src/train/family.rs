//! The three trainable families as data: an HF `config.json` with the
//! family's own field names, and the initial value of every parameter. The
//! parameter names and shapes are not here: they come from the loader's own
//! name table ([`models::weights::weight_specs`]), and training runs the
//! same decoder (`models::Model`) that `analyze` uses.

use anyhow::{bail, Result};
use models::Family;
use serde_json::{json, Value};

/// The families `train` builds: GPT-2 (learned positions, LayerNorm, GELU
/// (tanh), Conv1D, tied embeddings), GPT-NeoX (parallel residual, partial
/// rotary 25 %, fused per-head qkv) and Llama (RMSNorm, RoPE, SwiGLU,
/// grouped-query attention).
pub const TRAINABLE: [Family; 3] = [Family::Gpt2, Family::GptNeox, Family::Llama];

/// `--family`: gpt2, gpt_neox (or gpt-neox, neox) or llama.
pub fn parse_family(s: &str) -> Result<Family> {
    Ok(match s {
        "gpt2" => Family::Gpt2,
        "gpt_neox" | "gpt-neox" | "neox" => Family::GptNeox,
        "llama" => Family::Llama,
        other => bail!("--family: `{other}` is not one of gpt2, gpt_neox, llama"),
    })
}

/// Size of the model to train.
#[derive(Debug, Clone)]
pub struct Shape {
    pub family: Family,
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    /// Llama only (GQA); the others use n_heads.
    pub n_kv_heads: usize,
    pub ctx: usize,
    pub vocab: usize,
}

/// How a parameter starts (as HF's `_init_weights`: normal std 0.02, norms 1, biases 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    Normal(f64),
    Ones,
    Zeros,
}

pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

impl Shape {
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }

    pub fn d_ff(&self) -> usize {
        match self.family {
            // SwiGLU: about 8/3·D, rounded to a multiple of 8.
            Family::Llama => (8 * self.d_model / 3).div_ceil(8) * 8,
            _ => 4 * self.d_model,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if !TRAINABLE.contains(&self.family) {
            bail!("{} is not a trainable family (gpt2, gpt_neox, llama)", self.family.name());
        }
        if self.n_heads == 0 || !self.d_model.is_multiple_of(self.n_heads) {
            bail!("d_model {} is not a multiple of {} heads", self.d_model, self.n_heads);
        }
        if self.n_kv_heads == 0 || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            bail!("{} heads cannot share {} KV heads", self.n_heads, self.n_kv_heads);
        }
        if self.family == Family::GptNeox && !(self.head_dim() / 4).is_multiple_of(2) {
            bail!("gpt_neox rotary dim (head_dim/4 = {}) must be even", self.head_dim() / 4);
        }
        Ok(())
    }

    /// config.json, with the family's HF field names (loadable by transformers).
    pub fn hf_config(&self, eos: u32) -> Result<Value> {
        let (dm, h, l, v, ctx) = (self.d_model, self.n_heads, self.n_layers, self.vocab, self.ctx);
        Ok(match self.family {
            Family::Gpt2 => json!({
                "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
                "n_embd": dm, "n_head": h, "n_layer": l, "n_positions": ctx, "n_ctx": ctx,
                "n_inner": null, "vocab_size": v, "activation_function": "gelu_new",
                "layer_norm_epsilon": 1e-5, "initializer_range": 0.02,
                "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
                "scale_attn_weights": true, "tie_word_embeddings": true,
                "bos_token_id": eos, "eos_token_id": eos, "torch_dtype": "float32", "dtype": "float32"
            }),
            Family::GptNeox => json!({
                "architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox",
                "hidden_size": dm, "num_attention_heads": h, "num_hidden_layers": l,
                "intermediate_size": self.d_ff(), "vocab_size": v, "max_position_embeddings": ctx,
                "rotary_pct": 0.25, "rotary_emb_base": 10000,
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
                "hidden_act": "gelu", "layer_norm_eps": 1e-5, "use_parallel_residual": true,
                "attention_bias": true, "tie_word_embeddings": false, "initializer_range": 0.02,
                "attention_dropout": 0.0, "hidden_dropout": 0.0,
                "bos_token_id": eos, "eos_token_id": eos, "torch_dtype": "float32", "dtype": "float32"
            }),
            Family::Llama => json!({
                "architectures": ["LlamaForCausalLM"], "model_type": "llama",
                "hidden_size": dm, "num_attention_heads": h, "num_key_value_heads": self.n_kv_heads,
                "num_hidden_layers": l, "intermediate_size": self.d_ff(), "vocab_size": v,
                "max_position_embeddings": ctx, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
                "hidden_act": "silu", "attention_bias": false, "mlp_bias": false,
                "tie_word_embeddings": false, "initializer_range": 0.02,
                "bos_token_id": eos, "eos_token_id": eos, "torch_dtype": "float32", "dtype": "float32"
            }),
            other => bail!("{} is not a trainable family (gpt2, gpt_neox, llama)", other.name()),
        })
    }

    /// Every parameter: HF name and shape from the loader's name table
    /// ([`models::weights::weight_specs`], in its order, which fixes the
    /// order of the random draws), and its initial value as HF's
    /// `_init_weights` sets it: matrices (embeddings, projections) normal
    /// with std 0.02, biases 0, norm weights (the other 1-D tensors) 1.
    pub fn params(&self, config: &Value) -> Result<Vec<ParamSpec>> {
        let spec = models::ArchSpec::from_hf_config(config)?;
        let std = 0.02;
        Ok(models::weights::weight_specs(&spec)?
            .into_iter()
            .map(|w| {
                let init = if w.shape.len() >= 2 {
                    Init::Normal(std)
                } else if w.name.ends_with(".bias") {
                    Init::Zeros
                } else {
                    Init::Ones
                };
                ParamSpec { name: w.name, shape: w.shape, init }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parameters are the loader's names and shapes, initialised as HF
    /// does, with the embeddings first and an untied output layer last.
    #[test]
    fn params_follow_the_loader_table() {
        let shape = |family| Shape { family, d_model: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, ctx: 8, vocab: 40 };
        for family in TRAINABLE {
            let s = shape(family);
            s.validate().unwrap();
            let p = s.params(&s.hf_config(0).unwrap()).unwrap();
            let first = &p[0];
            assert_eq!((first.shape.clone(), first.init), (vec![40, 32], Init::Normal(0.02)), "{family:?}");
            let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
            let expect_last = match family {
                Family::Gpt2 => "transformer.ln_f.bias",
                Family::GptNeox => "embed_out.weight",
                _ => "lm_head.weight",
            };
            assert_eq!(names.last(), Some(&expect_last), "{family:?}");
            assert!(p.iter().all(|p| p.init != Init::Ones || p.shape == vec![32]), "{family:?}");
        }
        let s = shape(Family::Llama);
        let p = s.params(&s.hf_config(0).unwrap()).unwrap();
        let layer0: Vec<&str> = p.iter().map(|p| p.name.as_str()).filter(|n| n.starts_with("model.layers.0.")).collect();
        assert_eq!(
            layer0,
            [
                "input_layernorm.weight",
                "self_attn.q_proj.weight",
                "self_attn.k_proj.weight",
                "self_attn.v_proj.weight",
                "self_attn.o_proj.weight",
                "post_attention_layernorm.weight",
                "mlp.gate_proj.weight",
                "mlp.up_proj.weight",
                "mlp.down_proj.weight"
            ]
            .map(|n| format!("model.layers.0.{n}"))
        );
        assert_eq!(p.iter().find(|p| p.name.ends_with("k_proj.weight")).unwrap().shape, vec![16, 32]);
    }
}
