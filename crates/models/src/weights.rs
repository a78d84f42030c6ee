//! Per-family weight-name tables: HF tensor names → the decoder's canonical
//! layout. This is the only per-family code besides [`crate::arch`]; each
//! transpose or split carries its reason.
//!
//! Canonical layout: every linear map is `w: (in, out)`, so a layer computes
//! `x @ w + b` with x (t, in). For an nn.Linear checkpoint tensor (out, in)
//! `w` is its transposed *view* (no copy at load: the GEMM reads either
//! layout at the same speed, bit-identical results); a GPT-2 Conv1D is
//! already (in, out).

use candle_core::{Tensor, D};

use crate::arch::{ArchSpec, BlockKind, Family, Mlp, NormKind, QkNorm};
use crate::{Error, Result, TensorStore};

/// y = x @ w (+ b).
pub struct Linear {
    /// (in, out): contiguous, or the transposed view of an (out, in) tensor.
    pub w: Tensor,
    /// (out,)
    pub b: Option<Tensor>,
}

impl Linear {
    /// From an nn.Linear weight (out, in): its transposed view.
    fn from_out_in(w: Tensor, b: Option<Tensor>) -> Result<Self> {
        Ok(Self { w: w.t()?, b })
    }

    /// x (t, in) → (t, out).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.w)?;
        Ok(match &self.b {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

pub struct Norm {
    /// (n,) scale, offset already added (Gemma stores w − 1).
    pub w: Tensor,
    /// (n,) LayerNorm bias.
    pub b: Option<Tensor>,
    pub eps: f64,
    pub rms: bool,
}

impl Norm {
    /// Normalises over the last dim of x (.., n).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.rms && (x.track_op() || self.w.track_op()) {
            // Training (gradients tracked): candle-nn's fused rms_norm has no
            // backward, so use differentiable ops, in HF's order.
            let var = x.sqr()?.mean_keepdim(D::Minus1)?;
            Ok(x.broadcast_div(&(var + self.eps)?.sqrt()?)?.broadcast_mul(&self.w)?)
        } else if self.rms {
            Ok(candle_nn::ops::rms_norm(x, &self.w, self.eps as f32)?)
        } else {
            let mean = x.mean_keepdim(D::Minus1)?;
            let xc = x.broadcast_sub(&mean)?;
            let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
            let y = xc.broadcast_div(&(var + self.eps)?.sqrt()?)?.broadcast_mul(&self.w)?;
            Ok(match &self.b {
                Some(b) => y.broadcast_add(b)?,
                None => y,
            })
        }
    }
}

pub struct LayerWeights {
    /// Pre-attention norm (PreNorm, Parallel, Sandwich) or post-attention norm (PostNorm).
    pub attn_norm: Norm,
    /// Pre-MLP norm (PreNorm, Parallel, Sandwich) or post-MLP norm (PostNorm).
    pub mlp_norm: Norm,
    /// Sandwich only: norms applied to the attention / MLP outputs.
    pub attn_post_norm: Option<Norm>,
    pub mlp_post_norm: Option<Norm>,
    /// (d_model, h·d)
    pub q: Linear,
    /// (d_model, h_kv·d)
    pub k: Linear,
    /// (d_model, h_kv·d)
    pub v: Linear,
    /// (h·d, d_model)
    pub o: Linear,
    /// QK-norm weights: (d,) per head, or (h·d,) / (h_kv·d,) for full.
    pub q_norm: Option<Norm>,
    pub k_norm: Option<Norm>,
    /// Gated MLPs only: (d_model, d_ff)
    pub gate: Option<Linear>,
    /// (d_model, d_ff)
    pub up: Linear,
    /// (d_ff, d_model)
    pub down: Linear,
}

pub struct ModelWeights {
    /// (vocab, d_model) token embeddings.
    pub embed: Tensor,
    /// BLOOM: LayerNorm applied to the token embeddings.
    pub embed_norm: Option<Norm>,
    /// (positions, d_model) learned positions (GPT-2).
    pub pos_embed: Option<Tensor>,
    pub layers: Vec<LayerWeights>,
    pub final_norm: Norm,
    /// (d_model, vocab): the transposed view of the output layer (vocab,
    /// d_model), or of the embeddings when tied.
    pub lm_head: Tensor,
}

/// Reads tensors, checking each one's shape against the spec.
struct Reader<'a> {
    store: &'a TensorStore,
}

impl Reader<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self.store.get(name)?;
        if t.dims() != shape {
            return Err(Error::Shape { name: name.into(), expected: shape.to_vec(), actual: t.dims().to_vec() });
        }
        Ok(t)
    }
    fn opt(&self, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        if self.store.contains(name) { self.get(name, shape).map(Some) } else { Ok(None) }
    }
    fn norm(&self, prefix: &str, n: usize, spec: &ArchSpec) -> Result<Norm> {
        let w = self.get(&format!("{prefix}.weight"), &[n])?;
        Ok(match spec.norm {
            NormKind::Rms { eps, weight_offset } => {
                let w = if weight_offset != 0.0 { (w + weight_offset as f64)? } else { w };
                Norm { w, b: None, eps, rms: true }
            }
            NormKind::Layer { eps } => {
                Norm { w, b: self.opt(&format!("{prefix}.bias"), &[n])?, eps, rms: false }
            }
        })
    }
    /// An nn.Linear `prefix.weight` (out, in) with optional bias.
    fn linear(&self, prefix: &str, out: usize, inp: usize, bias: bool) -> Result<Linear> {
        let w = self.get(&format!("{prefix}.weight"), &[out, inp])?;
        let b = if bias { Some(self.get(&format!("{prefix}.bias"), &[out])?) } else { None };
        Linear::from_out_in(w, b)
    }
    /// A GPT-2 Conv1D `prefix.weight`, already (in, out).
    fn conv1d(&self, prefix: &str, inp: usize, out: usize) -> Result<Linear> {
        let w = self.get(&format!("{prefix}.weight"), &[inp, out])?;
        let b = self.get(&format!("{prefix}.bias"), &[out])?;
        Ok(Linear { w, b: Some(b) })
    }
}

/// Loads layer 0..n with `f` in parallel (dequantizing and transposing are
/// CPU-bound); on failure, the error of the lowest failing layer, as a
/// sequential load would report it.
fn par_layers<T: Send>(n: usize, f: impl Fn(usize) -> Result<T> + Sync) -> Result<Vec<T>> {
    use rayon::prelude::*;
    let results: Vec<Result<T>> = (0..n).into_par_iter().map(&f).collect();
    results.into_iter().collect()
}

impl ModelWeights {
    /// Loads every weight the decoder needs, by the family's name table.
    pub fn load(store: &TensorStore, spec: &ArchSpec) -> Result<ModelWeights> {
        let r = Reader { store };
        match spec.family {
            Family::Gpt2 => load_gpt2(&r, spec),
            Family::GptNeox => load_neox(&r, spec),
            Family::Bloom => load_bloom(&r, spec),
            Family::Mpt => load_mpt(&r, spec),
            _ => load_llama_like(&r, spec),
        }
    }
}

/// Token embeddings (vocab, d_model) and the output layer as (d_model, vocab).
///
/// Tied models (or an absent output layer, as in SmolLM2's GGUF) reuse the
/// embeddings. A tied checkpoint may also store the shared matrix only as
/// the output layer (some save paths write `lm_head.weight` and drop the
/// embedding, and transformers ties them back on load): then the output
/// layer is the embedding.
fn embed_and_head(r: &Reader, embed_name: &str, head_name: &str, spec: &ArchSpec) -> Result<(Tensor, Tensor)> {
    let shape = [spec.vocab_size, spec.d_model];
    if spec.tie_embeddings && !r.store.contains(embed_name) && r.store.contains(head_name) {
        let head = r.get(head_name, &shape)?;
        let t = head.t()?;
        return Ok((head, t));
    }
    let embed = r.get(embed_name, &shape)?;
    let head = if spec.tie_embeddings { None } else { r.opt(head_name, &shape)? };
    let lm_head = head.as_ref().unwrap_or(&embed).t()?;
    Ok((embed, lm_head))
}

/// Where a llama-layout checkpoint keeps its decoder: `model.` (every
/// `*ForCausalLM`), or the language model inside a multimodal Gemma 3
/// (`model.language_model.` in transformers 5, `language_model.model.`
/// before), whose output layer is then `lm_head` / `language_model.lm_head`.
fn llama_prefixes(r: &Reader) -> (&'static str, &'static str) {
    // Probed by the final norm: the embedding may be absent (tied, stored as the head).
    if r.store.contains("model.language_model.norm.weight") {
        ("model.language_model.", "lm_head.weight")
    } else if r.store.contains("language_model.model.norm.weight") {
        ("language_model.model.", "language_model.lm_head.weight")
    } else {
        ("model.", "lm_head.weight")
    }
}

/// Splits a fused projection (rows, in) into consecutive row blocks of the
/// given sizes, each as a [`Linear`] (Phi-3 `qkv_proj` = [q | k | v],
/// `gate_up_proj` = [gate | up]; MPT `Wqkv` = [q | k | v]).
fn split_rows<const N: usize>(w: &Tensor, sizes: [usize; N]) -> Result<[Linear; N]> {
    let starts: [usize; N] = std::array::from_fn(|i| sizes[..i].iter().sum());
    let parts: Vec<Linear> =
        starts.iter().zip(sizes).map(|(&s, n)| Linear::from_out_in(w.narrow(0, s, n)?, None)).collect::<Result<_>>()?;
    parts.try_into().map_err(|_| Error::Config("fused projection split".into()))
}

fn load_llama_like(r: &Reader, spec: &ArchSpec) -> Result<ModelWeights> {
    let (dm, h, hkv, d, ff) = (spec.d_model, spec.n_heads, spec.n_kv_heads, spec.head_dim, spec.d_ff);
    let (base, head_name) = llama_prefixes(r);
    let (embed, lm_head) = embed_and_head(r, &format!("{base}embed_tokens.weight"), head_name, spec)?;
    let layers = par_layers(spec.n_layers, |l| {
        let p = format!("{base}layers.{l}");
        let (attn_norm, mlp_norm, attn_post_norm, mlp_post_norm) = match spec.block {
            BlockKind::PostNorm => (
                r.norm(&format!("{p}.post_attention_layernorm"), dm, spec)?,
                r.norm(&format!("{p}.post_feedforward_layernorm"), dm, spec)?,
                None,
                None,
            ),
            BlockKind::Sandwich => (
                r.norm(&format!("{p}.input_layernorm"), dm, spec)?,
                r.norm(&format!("{p}.pre_feedforward_layernorm"), dm, spec)?,
                Some(r.norm(&format!("{p}.post_attention_layernorm"), dm, spec)?),
                Some(r.norm(&format!("{p}.post_feedforward_layernorm"), dm, spec)?),
            ),
            // StableLM's parallel blocks feed one norm to both branches.
            BlockKind::Parallel => (
                r.norm(&format!("{p}.input_layernorm"), dm, spec)?,
                r.norm(&format!("{p}.input_layernorm"), dm, spec)?,
                None,
                None,
            ),
            _ => (
                r.norm(&format!("{p}.input_layernorm"), dm, spec)?,
                r.norm(&format!("{p}.post_attention_layernorm"), dm, spec)?,
                None,
                None,
            ),
        };
        let (q_norm, k_norm) = match spec.qk_norm {
            QkNorm::None => (None, None),
            QkNorm::PerHead => (
                Some(r.norm(&format!("{p}.self_attn.q_norm"), d, spec)?),
                Some(r.norm(&format!("{p}.self_attn.k_norm"), d, spec)?),
            ),
            QkNorm::Full => (
                Some(r.norm(&format!("{p}.self_attn.q_norm"), h * d, spec)?),
                Some(r.norm(&format!("{p}.self_attn.k_norm"), hkv * d, spec)?),
            ),
        };
        let gated = matches!(spec.mlp, Mlp::Gated(_));
        let (q, k, v, gate, up) = if spec.family == Family::Phi3 {
            // qkv_proj (h·d + 2·h_kv·d, D) = [q | k | v] rows; gate_up_proj (2·d_ff, D) = [gate | up].
            let qkv = r.get(&format!("{p}.self_attn.qkv_proj.weight"), &[(h + 2 * hkv) * d, dm])?;
            let [q, k, v] = split_rows(&qkv, [h * d, hkv * d, hkv * d])?;
            let gu = r.get(&format!("{p}.mlp.gate_up_proj.weight"), &[2 * ff, dm])?;
            let [gate, up] = split_rows(&gu, [ff, ff])?;
            (q, k, v, Some(gate), up)
        } else {
            (
                r.linear(&format!("{p}.self_attn.q_proj"), h * d, dm, spec.qkv_bias)?,
                r.linear(&format!("{p}.self_attn.k_proj"), hkv * d, dm, spec.qkv_bias)?,
                r.linear(&format!("{p}.self_attn.v_proj"), hkv * d, dm, spec.qkv_bias)?,
                if gated { Some(r.linear(&format!("{p}.mlp.gate_proj"), ff, dm, false)?) } else { None },
                r.linear(&format!("{p}.mlp.up_proj"), ff, dm, false)?,
            )
        };
        Ok(LayerWeights {
            attn_norm,
            mlp_norm,
            attn_post_norm,
            mlp_post_norm,
            q,
            k,
            v,
            o: r.linear(&format!("{p}.self_attn.o_proj"), dm, h * d, false)?,
            q_norm,
            k_norm,
            gate,
            up,
            down: r.linear(&format!("{p}.mlp.down_proj"), dm, ff, false)?,
        })
    })?;
    let final_norm = r.norm(&format!("{base}norm"), dm, spec)?;
    Ok(ModelWeights { embed, embed_norm: None, pos_embed: None, layers, final_norm, lm_head })
}

fn load_gpt2(r: &Reader, spec: &ArchSpec) -> Result<ModelWeights> {
    let dm = spec.d_model;
    // GPT2LMHeadModel saves under `transformer.`; bare GPT2Model checkpoints do not.
    let pre = if r.store.contains("transformer.wte.weight") || r.store.contains("transformer.ln_f.weight") { "transformer." } else { "" };
    let (embed, lm_head) = embed_and_head(r, &format!("{pre}wte.weight"), "lm_head.weight", spec)?;
    let n_pos = r.store.shape(&format!("{pre}wpe.weight")).map(|s| s[0]).unwrap_or(0);
    let pos_embed = Some(r.get(&format!("{pre}wpe.weight"), &[n_pos, dm])?);
    let layers = par_layers(spec.n_layers, |l| {
        let p = format!("{pre}h.{l}");
        // Conv1D c_attn: (d_model, 3·d_model) = [q | k | v] column blocks.
        let qkv_w = r.get(&format!("{p}.attn.c_attn.weight"), &[dm, 3 * dm])?;
        let qkv_b = r.get(&format!("{p}.attn.c_attn.bias"), &[3 * dm])?;
        let split = |i: usize| -> Result<Linear> {
            Ok(Linear { w: qkv_w.narrow(1, i * dm, dm)?.contiguous()?, b: Some(qkv_b.narrow(0, i * dm, dm)?) })
        };
        Ok(LayerWeights {
            attn_norm: r.norm(&format!("{p}.ln_1"), dm, spec)?,
            mlp_norm: r.norm(&format!("{p}.ln_2"), dm, spec)?,
            attn_post_norm: None,
            mlp_post_norm: None,
            q: split(0)?,
            k: split(1)?,
            v: split(2)?,
            o: r.conv1d(&format!("{p}.attn.c_proj"), dm, dm)?,
            q_norm: None,
            k_norm: None,
            gate: None,
            up: r.conv1d(&format!("{p}.mlp.c_fc"), dm, spec.d_ff)?,
            down: r.conv1d(&format!("{p}.mlp.c_proj"), spec.d_ff, dm)?,
        })
    })?;
    let final_norm = r.norm(&format!("{pre}ln_f"), dm, spec)?;
    Ok(ModelWeights { embed, embed_norm: None, pos_embed, layers, final_norm, lm_head })
}

fn load_neox(r: &Reader, spec: &ArchSpec) -> Result<ModelWeights> {
    let (dm, h, d) = (spec.d_model, spec.n_heads, spec.head_dim);
    let (embed, lm_head) = embed_and_head(r, "gpt_neox.embed_in.weight", "embed_out.weight", spec)?;
    let layers = par_layers(spec.n_layers, |l| {
        let p = format!("gpt_neox.layers.{l}");
        // Fused query_key_value (3·h·d, d_model): output rows ordered (head, {q,k,v}, d).
        let w = r.get(&format!("{p}.attention.query_key_value.weight"), &[3 * h * d, dm])?;
        let b = r.opt(&format!("{p}.attention.query_key_value.bias"), &[3 * h * d])?;
        let [q, k, v] = split_per_head_qkv(&w, b.as_ref(), h, d, dm)?;
        Ok(LayerWeights {
            attn_norm: r.norm(&format!("{p}.input_layernorm"), dm, spec)?,
            mlp_norm: r.norm(&format!("{p}.post_attention_layernorm"), dm, spec)?,
            attn_post_norm: None,
            mlp_post_norm: None,
            q,
            k,
            v,
            o: r.linear(&format!("{p}.attention.dense"), dm, h * d, true)?,
            q_norm: None,
            k_norm: None,
            gate: None,
            up: r.linear(&format!("{p}.mlp.dense_h_to_4h"), spec.d_ff, dm, true)?,
            down: r.linear(&format!("{p}.mlp.dense_4h_to_h"), dm, spec.d_ff, true)?,
        })
    })?;
    let final_norm = r.norm("gpt_neox.final_layer_norm", dm, spec)?;
    Ok(ModelWeights { embed, embed_norm: None, pos_embed: None, layers, final_norm, lm_head })
}

/// A fused (3·h·d, D) projection whose output rows are ordered (head,
/// {q, k, v}, d), as GPT-NeoX and BLOOM store `query_key_value`: the q, k
/// and v maps with their biases.
fn split_per_head_qkv(w: &Tensor, b: Option<&Tensor>, h: usize, d: usize, dm: usize) -> Result<[Linear; 3]> {
    let w = w.reshape((h, 3, d, dm))?;
    let b = b.map(|b| b.reshape((h, 3, d))).transpose()?;
    let part = |i: usize| -> Result<Linear> {
        let wi = w.narrow(1, i, 1)?.reshape((h * d, dm))?;
        let bi = b.as_ref().map(|b| b.narrow(1, i, 1).and_then(|x| x.reshape(h * d))).transpose()?;
        Linear::from_out_in(wi, bi)
    };
    Ok([part(0)?, part(1)?, part(2)?])
}

fn load_bloom(r: &Reader, spec: &ArchSpec) -> Result<ModelWeights> {
    let (dm, h, d) = (spec.d_model, spec.n_heads, spec.head_dim);
    // BloomForCausalLM saves under `transformer.`; the bigscience checkpoints (BloomModel) do not.
    let pre = if r.store.contains("transformer.word_embeddings.weight") || r.store.contains("transformer.h.0.input_layernorm.weight") {
        "transformer."
    } else {
        ""
    };
    let (embed, lm_head) = embed_and_head(r, &format!("{pre}word_embeddings.weight"), "lm_head.weight", spec)?;
    let embed_norm = Some(r.norm(&format!("{pre}word_embeddings_layernorm"), dm, spec)?);
    let layers = par_layers(spec.n_layers, |l| {
        let p = format!("{pre}h.{l}");
        // Fused query_key_value (3·h·d, D): rows ordered (head, {q,k,v}, d), as GPT-NeoX.
        let w = r.get(&format!("{p}.self_attention.query_key_value.weight"), &[3 * h * d, dm])?;
        let b = r.get(&format!("{p}.self_attention.query_key_value.bias"), &[3 * h * d])?;
        let [q, k, v] = split_per_head_qkv(&w, Some(&b), h, d, dm)?;
        Ok(LayerWeights {
            attn_norm: r.norm(&format!("{p}.input_layernorm"), dm, spec)?,
            mlp_norm: r.norm(&format!("{p}.post_attention_layernorm"), dm, spec)?,
            attn_post_norm: None,
            mlp_post_norm: None,
            q,
            k,
            v,
            o: r.linear(&format!("{p}.self_attention.dense"), dm, h * d, true)?,
            q_norm: None,
            k_norm: None,
            gate: None,
            up: r.linear(&format!("{p}.mlp.dense_h_to_4h"), spec.d_ff, dm, true)?,
            down: r.linear(&format!("{p}.mlp.dense_4h_to_h"), dm, spec.d_ff, true)?,
        })
    })?;
    let final_norm = r.norm(&format!("{pre}ln_f"), dm, spec)?;
    Ok(ModelWeights { embed, embed_norm, pos_embed: None, layers, final_norm, lm_head })
}

fn load_mpt(r: &Reader, spec: &ArchSpec) -> Result<ModelWeights> {
    let (dm, h, d) = (spec.d_model, spec.n_heads, spec.head_dim);
    let (embed, lm_head) = embed_and_head(r, "transformer.wte.weight", "lm_head.weight", spec)?;
    let layers = par_layers(spec.n_layers, |l| {
        let p = format!("transformer.blocks.{l}");
        // Wqkv (3·D, D) = [q | k | v] rows (transformers chunks it in three).
        let w = r.get(&format!("{p}.attn.Wqkv.weight"), &[3 * h * d, dm])?;
        let [q, k, v] = split_rows(&w, [h * d, h * d, h * d])?;
        Ok(LayerWeights {
            attn_norm: r.norm(&format!("{p}.norm_1"), dm, spec)?,
            mlp_norm: r.norm(&format!("{p}.norm_2"), dm, spec)?,
            attn_post_norm: None,
            mlp_post_norm: None,
            q,
            k,
            v,
            o: r.linear(&format!("{p}.attn.out_proj"), dm, h * d, false)?,
            q_norm: None,
            k_norm: None,
            gate: None,
            up: r.linear(&format!("{p}.ffn.up_proj"), spec.d_ff, dm, false)?,
            down: r.linear(&format!("{p}.ffn.down_proj"), dm, spec.d_ff, false)?,
        })
    })?;
    let final_norm = r.norm("transformer.norm_f", dm, spec)?;
    Ok(ModelWeights { embed, embed_norm: None, pos_embed: None, layers, final_norm, lm_head })
}
