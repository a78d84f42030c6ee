//! The three trainable families as data: an HF `config.json` with the
//! family's own field names, and the HF tensor names, shapes and initial
//! values of every parameter. The forward pass is not here: training runs the
//! same decoder (`models::Model`) that `analyze` uses, loaded from these
//! names.

use anyhow::{bail, Result};
use serde_json::{json, Value};

/// A trainable decoder family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainFamily {
    /// GPT-2: learned positions, LayerNorm, GELU (tanh), Conv1D, tied embeddings.
    Gpt2,
    /// GPT-NeoX: parallel residual, partial rotary (25 %), fused per-head qkv.
    GptNeox,
    /// Llama: RMSNorm, RoPE, SwiGLU, grouped-query attention.
    Llama,
}

impl TrainFamily {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "gpt2" => Self::Gpt2,
            "gpt_neox" | "gpt-neox" | "neox" => Self::GptNeox,
            "llama" => Self::Llama,
            other => bail!("--family: `{other}` is not one of gpt2, gpt_neox, llama"),
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Gpt2 => "gpt2",
            Self::GptNeox => "gpt_neox",
            Self::Llama => "llama",
        }
    }
}

/// Size of the model to train.
#[derive(Debug, Clone)]
pub struct Shape {
    pub family: TrainFamily,
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
            TrainFamily::Llama => (8 * self.d_model / 3).div_ceil(8) * 8,
            _ => 4 * self.d_model,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.n_heads == 0 || self.d_model % self.n_heads != 0 {
            bail!("d_model {} is not a multiple of {} heads", self.d_model, self.n_heads);
        }
        if self.n_kv_heads == 0 || self.n_heads % self.n_kv_heads != 0 {
            bail!("{} heads cannot share {} KV heads", self.n_heads, self.n_kv_heads);
        }
        if self.family == TrainFamily::GptNeox && (self.head_dim() / 4) % 2 != 0 {
            bail!("gpt_neox rotary dim (head_dim/4 = {}) must be even", self.head_dim() / 4);
        }
        Ok(())
    }

    /// config.json, with the family's HF field names (loadable by transformers).
    pub fn hf_config(&self, eos: u32) -> Value {
        let (dm, h, l, v, ctx) = (self.d_model, self.n_heads, self.n_layers, self.vocab, self.ctx);
        match self.family {
            TrainFamily::Gpt2 => json!({
                "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
                "n_embd": dm, "n_head": h, "n_layer": l, "n_positions": ctx, "n_ctx": ctx,
                "n_inner": null, "vocab_size": v, "activation_function": "gelu_new",
                "layer_norm_epsilon": 1e-5, "initializer_range": 0.02,
                "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
                "scale_attn_weights": true, "tie_word_embeddings": true,
                "bos_token_id": eos, "eos_token_id": eos, "torch_dtype": "float32", "dtype": "float32"
            }),
            TrainFamily::GptNeox => json!({
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
            TrainFamily::Llama => json!({
                "architectures": ["LlamaForCausalLM"], "model_type": "llama",
                "hidden_size": dm, "num_attention_heads": h, "num_key_value_heads": self.n_kv_heads,
                "num_hidden_layers": l, "intermediate_size": self.d_ff(), "vocab_size": v,
                "max_position_embeddings": ctx, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
                "hidden_act": "silu", "attention_bias": false, "mlp_bias": false,
                "tie_word_embeddings": false, "initializer_range": 0.02,
                "bos_token_id": eos, "eos_token_id": eos, "torch_dtype": "float32", "dtype": "float32"
            }),
        }
    }

    /// Every parameter: HF name, HF shape, initial value.
    pub fn params(&self) -> Vec<ParamSpec> {
        let (dm, v, ff) = (self.d_model, self.vocab, self.d_ff());
        let std = 0.02;
        let mut out = Vec::new();
        let mut p = |name: String, shape: Vec<usize>, init: Init| out.push(ParamSpec { name, shape, init });
        match self.family {
            TrainFamily::Gpt2 => {
                p("transformer.wte.weight".into(), vec![v, dm], Init::Normal(std));
                p("transformer.wpe.weight".into(), vec![self.ctx, dm], Init::Normal(std));
                for l in 0..self.n_layers {
                    let b = format!("transformer.h.{l}");
                    p(format!("{b}.ln_1.weight"), vec![dm], Init::Ones);
                    p(format!("{b}.ln_1.bias"), vec![dm], Init::Zeros);
                    p(format!("{b}.attn.c_attn.weight"), vec![dm, 3 * dm], Init::Normal(std));
                    p(format!("{b}.attn.c_attn.bias"), vec![3 * dm], Init::Zeros);
                    p(format!("{b}.attn.c_proj.weight"), vec![dm, dm], Init::Normal(std));
                    p(format!("{b}.attn.c_proj.bias"), vec![dm], Init::Zeros);
                    p(format!("{b}.ln_2.weight"), vec![dm], Init::Ones);
                    p(format!("{b}.ln_2.bias"), vec![dm], Init::Zeros);
                    p(format!("{b}.mlp.c_fc.weight"), vec![dm, ff], Init::Normal(std));
                    p(format!("{b}.mlp.c_fc.bias"), vec![ff], Init::Zeros);
                    p(format!("{b}.mlp.c_proj.weight"), vec![ff, dm], Init::Normal(std));
                    p(format!("{b}.mlp.c_proj.bias"), vec![dm], Init::Zeros);
                }
                p("transformer.ln_f.weight".into(), vec![dm], Init::Ones);
                p("transformer.ln_f.bias".into(), vec![dm], Init::Zeros);
            }
            TrainFamily::GptNeox => {
                p("gpt_neox.embed_in.weight".into(), vec![v, dm], Init::Normal(std));
                for l in 0..self.n_layers {
                    let b = format!("gpt_neox.layers.{l}");
                    for n in ["input_layernorm", "post_attention_layernorm"] {
                        p(format!("{b}.{n}.weight"), vec![dm], Init::Ones);
                        p(format!("{b}.{n}.bias"), vec![dm], Init::Zeros);
                    }
                    p(format!("{b}.attention.query_key_value.weight"), vec![3 * dm, dm], Init::Normal(std));
                    p(format!("{b}.attention.query_key_value.bias"), vec![3 * dm], Init::Zeros);
                    p(format!("{b}.attention.dense.weight"), vec![dm, dm], Init::Normal(std));
                    p(format!("{b}.attention.dense.bias"), vec![dm], Init::Zeros);
                    p(format!("{b}.mlp.dense_h_to_4h.weight"), vec![ff, dm], Init::Normal(std));
                    p(format!("{b}.mlp.dense_h_to_4h.bias"), vec![ff], Init::Zeros);
                    p(format!("{b}.mlp.dense_4h_to_h.weight"), vec![dm, ff], Init::Normal(std));
                    p(format!("{b}.mlp.dense_4h_to_h.bias"), vec![dm], Init::Zeros);
                }
                p("gpt_neox.final_layer_norm.weight".into(), vec![dm], Init::Ones);
                p("gpt_neox.final_layer_norm.bias".into(), vec![dm], Init::Zeros);
                p("embed_out.weight".into(), vec![v, dm], Init::Normal(std));
            }
            TrainFamily::Llama => {
                let kv = self.n_kv_heads * self.head_dim();
                p("model.embed_tokens.weight".into(), vec![v, dm], Init::Normal(std));
                for l in 0..self.n_layers {
                    let b = format!("model.layers.{l}");
                    p(format!("{b}.input_layernorm.weight"), vec![dm], Init::Ones);
                    p(format!("{b}.self_attn.q_proj.weight"), vec![dm, dm], Init::Normal(std));
                    p(format!("{b}.self_attn.k_proj.weight"), vec![kv, dm], Init::Normal(std));
                    p(format!("{b}.self_attn.v_proj.weight"), vec![kv, dm], Init::Normal(std));
                    p(format!("{b}.self_attn.o_proj.weight"), vec![dm, dm], Init::Normal(std));
                    p(format!("{b}.post_attention_layernorm.weight"), vec![dm], Init::Ones);
                    p(format!("{b}.mlp.gate_proj.weight"), vec![ff, dm], Init::Normal(std));
                    p(format!("{b}.mlp.up_proj.weight"), vec![ff, dm], Init::Normal(std));
                    p(format!("{b}.mlp.down_proj.weight"), vec![dm, ff], Init::Normal(std));
                }
                p("model.norm.weight".into(), vec![dm], Init::Ones);
                p("lm_head.weight".into(), vec![v, dm], Init::Normal(std));
            }
        }
        out
    }
}
