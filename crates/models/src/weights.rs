//! Per-family weight-name tables: HF tensor names → the decoder's canonical
//! layout. This is the only per-family code besides [`crate::arch`]; each
//! transpose or split carries its reason.
//!
//! When: a family's table is one function that builds one layer's weights
//! from the store, plus one for the rest (embedding and output names, final
//! norm, learned positions). [`ModelWeights::load`] runs every layer's table
//! at load time only to check names and shapes (no data is read). The
//! decoder then loads each layer just before it runs, on a prefetch thread,
//! and drops it after ([`ModelWeights::for_each_layer`]), so memory holds at
//! most two layers as f32 whatever the depth. The token embedding stays in
//! the file (only the rows of the tokens in use are read), and the output
//! layer is read only when logits are asked for. In-memory sources (a
//! training loop's live weights) are kept resident instead, as they are.
//!
//! Canonical layout: every linear map is `w: (in, out)`, so a layer computes
//! `x @ w + b` with x (t, in). For an nn.Linear checkpoint tensor (out, in)
//! `w` is its transposed *view* (no copy at load: the GEMM reads either
//! layout at the same speed, bit-identical results); a GPT-2 Conv1D is
//! already (in, out).

use std::ops::ControlFlow;

use candle_core::{DType, Device, Tensor, D};

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

    /// x (t, in) → (t, out). The GEMM is [`crate::matmul::matmul`]: the
    /// bits of `x.matmul(w)`, without zeroing the output first.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = crate::matmul::matmul(x, &self.w)?;
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
    /// RMSNorm or LayerNorm, with its eps (an RMSNorm's weight offset is
    /// already in `w`).
    pub kind: NormKind,
}

impl Norm {
    /// Normalises over the last dim of x (.., n).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self.kind {
            NormKind::Rms { eps, .. } if x.track_op() || self.w.track_op() => {
                // Training (gradients tracked): candle-nn's fused rms_norm has no
                // backward, so use differentiable ops, in HF's order.
                let var = x.sqr()?.mean_keepdim(D::Minus1)?;
                Ok(x.broadcast_div(&(var + eps)?.sqrt()?)?.broadcast_mul(&self.w)?)
            }
            NormKind::Rms { eps, .. } => Ok(candle_nn::ops::rms_norm(x, &self.w, eps as f32)?),
            NormKind::Layer { eps } => {
                let mean = x.mean_keepdim(D::Minus1)?;
                let xc = x.broadcast_sub(&mean)?;
                let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
                let y = xc.broadcast_div(&(var + eps)?.sqrt()?)?.broadcast_mul(&self.w)?;
                Ok(match &self.b {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                })
            }
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

/// The weights of a model, held as the decoder needs them: what every
/// forward pass uses (final norm, learned positions) in memory; the layers,
/// the embedding and the output layer read from the store when needed.
pub struct ModelWeights {
    /// BLOOM: LayerNorm applied to the token embeddings.
    pub embed_norm: Option<Norm>,
    /// (positions, d_model) learned positions (GPT-2).
    pub pos_embed: Option<Tensor>,
    pub final_norm: Norm,
    /// HF name of the token embeddings (vocab, d_model).
    embed_name: String,
    /// HF name of the output layer (vocab, d_model), the embeddings when tied.
    head_name: String,
    store: TensorStore,
    spec: ArchSpec,
    /// Every layer, the embeddings and the output layer loaded once, for an
    /// in-memory source ([`TensorStore::resident`]).
    resident: Option<Resident>,
}

struct Resident {
    /// (vocab, d_model)
    embed: Tensor,
    layers: Vec<LayerWeights>,
    /// (d_model, vocab): the transposed view of the output layer.
    lm_head: Tensor,
}

/// What a family's table gives besides its layers.
struct Globals {
    embed_name: String,
    head_name: String,
    embed_norm: Option<Norm>,
    pos_embed: Option<Tensor>,
    final_norm: Norm,
}

/// Reads tensors, checking each one's shape against the spec.
struct Reader<'a> {
    mode: Mode<'a>,
}

enum Mode<'a> {
    /// Read from the store (shape- and NaN-checked).
    Load(&'a TensorStore),
    /// Check names and shapes only, returning a zero-strided placeholder of
    /// the right shape (no data read, nothing allocated for it).
    Check(&'a TensorStore),
    /// No store: note every name and shape the table asks for (once each),
    /// in the canonical layout, and return placeholders ([`weight_specs`]).
    Record(std::sync::Mutex<Vec<WeightSpec>>),
}

fn placeholder(shape: &[usize]) -> Result<Tensor> {
    Ok(Tensor::zeros((), DType::F32, &Device::Cpu)?.broadcast_as(shape)?)
}

impl<'a> Reader<'a> {
    fn load(store: &'a TensorStore) -> Self {
        Reader { mode: Mode::Load(store) }
    }
    fn dry(store: &'a TensorStore) -> Self {
        Reader { mode: Mode::Check(store) }
    }
    /// The store being read; `None` when recording the canonical layout.
    fn store(&self) -> Option<&'a TensorStore> {
        match self.mode {
            Mode::Load(s) | Mode::Check(s) => Some(s),
            Mode::Record(_) => None,
        }
    }
    /// Whether `name` exists (probes for a layout variant); `canonical`
    /// answers when recording.
    fn has(&self, name: &str, canonical: bool) -> bool {
        self.store().map_or(canonical, |s| s.contains(name))
    }
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let store = match &self.mode {
            Mode::Record(seen) => {
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                if !seen.iter().any(|w| w.name == name) {
                    seen.push(WeightSpec { name: name.to_string(), shape: shape.to_vec() });
                }
                return placeholder(shape);
            }
            Mode::Check(store) => {
                let actual = store.shape(name).ok_or_else(|| Error::MissingTensor { name: name.into(), source_desc: store.describe() })?;
                if actual != shape {
                    return Err(Error::Shape { name: name.into(), expected: shape.to_vec(), actual });
                }
                return placeholder(shape);
            }
            Mode::Load(store) => store,
        };
        let t = store.get(name)?;
        if t.dims() != shape {
            return Err(Error::Shape { name: name.into(), expected: shape.to_vec(), actual: t.dims().to_vec() });
        }
        Ok(t)
    }
    /// An optional tensor: read if present (always listed when recording).
    fn opt(&self, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        if self.has(name, true) {
            self.get(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }
    /// Checks that `name` exists with `shape`, without reading it.
    fn check(&self, name: &str, shape: &[usize]) -> Result<()> {
        match self.mode {
            Mode::Load(store) => Reader::dry(store).get(name, shape).map(drop),
            _ => self.get(name, shape).map(drop),
        }
    }
    fn norm(&self, prefix: &str, n: usize, spec: &ArchSpec) -> Result<Norm> {
        let w = self.get(&format!("{prefix}.weight"), &[n])?;
        Ok(match spec.norm {
            kind @ NormKind::Rms { weight_offset, .. } => {
                let w = if weight_offset != 0.0 { (w + weight_offset as f64)? } else { w };
                Norm { w, b: None, kind }
            }
            kind @ NormKind::Layer { .. } => Norm { w, b: self.opt(&format!("{prefix}.bias"), &[n])?, kind },
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

impl LayerWeights {
    /// Layer `l`'s weights by the family's name table, read from `store`
    /// and dequantized to f32 (shape- and NaN-checked).
    pub fn load(store: &TensorStore, spec: &ArchSpec, l: usize) -> Result<LayerWeights> {
        layer(&Reader::load(store), spec, l)
    }
}

/// The family's per-layer table.
fn layer(r: &Reader, spec: &ArchSpec, l: usize) -> Result<LayerWeights> {
    match spec.family {
        Family::Gpt2 => gpt2_layer(r, spec, l),
        Family::GptNeox => neox_layer(r, spec, l),
        Family::Bloom => bloom_layer(r, spec, l),
        Family::Mpt => mpt_layer(r, spec, l),
        _ => llama_like_layer(r, spec, l),
    }
}

/// The family's table for everything outside the layers.
fn globals(r: &Reader, spec: &ArchSpec) -> Result<Globals> {
    match spec.family {
        Family::Gpt2 => load_gpt2(r, spec),
        Family::GptNeox => load_neox(r, spec),
        Family::Bloom => load_bloom(r, spec),
        Family::Mpt => load_mpt(r, spec),
        _ => load_llama_like(r, spec),
    }
}

/// One tensor a checkpoint holds: HF name and HF shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightSpec {
    pub name: String,
    pub shape: Vec<usize>,
}

/// Every tensor a checkpoint of `spec` holds, by the same name table the
/// loader reads ([`ModelWeights::load`]), in the layout of the family's
/// `*ForCausalLM` class as transformers saves it (`model.…`, `transformer.…`,
/// `gpt_neox.…`). Optional tensors the table accepts (LayerNorm biases,
/// GPT-NeoX's `query_key_value` bias) are listed; a tied output layer is not.
///
/// Order: token embeddings, learned positions, then each layer's tensors in
/// the order its forward pass applies them (norm, attention, norm, MLP;
/// weight before bias), then the remaining norms (final norm) and the
/// output layer. A training loop that creates its parameters from this list
/// gets exactly what the loader reads back.
pub fn weight_specs(spec: &ArchSpec) -> Result<Vec<WeightSpec>> {
    let record = || Reader { mode: Mode::Record(Default::default()) };
    let taken = |r: Reader| match r.mode {
        Mode::Record(seen) => seen.into_inner().unwrap_or_else(|e| e.into_inner()),
        _ => unreachable!("a recording reader"),
    };
    let r = record();
    let g = globals(&r, spec)?;
    let global = taken(r);
    let r = record();
    for l in 0..spec.n_layers {
        layer(&r, spec, l)?;
    }
    let layers = taken(r);
    let (head, rest): (Vec<_>, Vec<_>) = global.into_iter().partition(|w| w.name == g.head_name && g.head_name != g.embed_name);
    let (embeds, norms): (Vec<_>, Vec<_>) = rest.into_iter().partition(|w| w.shape.len() == 2);
    Ok(embeds.into_iter().chain(layers).chain(norms).chain(head).collect())
}

impl ModelWeights {
    /// Checks every weight the decoder needs against the family's name
    /// table (names and shapes, no data read), and loads the small ones
    /// every pass uses. A resident source ([`TensorStore::resident`]) has
    /// everything loaded here instead, as before streaming existed; so has
    /// any source when `resident` is true.
    pub fn load(store: &TensorStore, spec: &ArchSpec, resident: bool) -> Result<ModelWeights> {
        let r = Reader::load(store);
        let g = globals(&r, spec)?;
        let resident = if resident || store.resident() {
            let embed = r.get(&g.embed_name, &[spec.vocab_size, spec.d_model])?;
            let layers = par_layers(spec.n_layers, |l| layer(&r, spec, l))?;
            let lm_head =
                if g.head_name == g.embed_name { embed.t()? } else { r.get(&g.head_name, &[spec.vocab_size, spec.d_model])?.t()? };
            Some(Resident { embed, layers, lm_head })
        } else {
            let dry = Reader::dry(store);
            for l in 0..spec.n_layers {
                layer(&dry, spec, l)?;
            }
            None
        };
        Ok(ModelWeights {
            embed_norm: g.embed_norm,
            pos_embed: g.pos_embed,
            final_norm: g.final_norm,
            embed_name: g.embed_name,
            head_name: g.head_name,
            store: store.clone(),
            spec: spec.clone(),
            resident,
        })
    }

    /// Re-reads resident weights from the store (see
    /// [`crate::Model::refresh`]); a no-op when streamed.
    pub fn refresh(&mut self) -> Result<()> {
        if self.resident.is_some() {
            *self = ModelWeights::load(&self.store, &self.spec, true)?;
        }
        Ok(())
    }

    /// Whether every weight is held in memory (else layers are streamed).
    pub fn is_resident(&self) -> bool {
        self.resident.is_some()
    }

    /// Token embeddings of `ids`: (t, d_model) f32. Streamed: only these
    /// rows are read and dequantized (ids must be below the vocabulary size).
    pub fn embed(&self, ids: &[u32]) -> Result<Tensor> {
        match &self.resident {
            Some(res) => Ok(res.embed.index_select(&Tensor::from_slice(ids, ids.len(), res.embed.device())?, 0)?),
            None => self.store.get_rows(&self.embed_name, ids),
        }
    }

    /// The output layer as (d_model, vocab): the transposed view of
    /// (vocab, d_model), read from the store unless resident.
    pub fn lm_head(&self) -> Result<Tensor> {
        match &self.resident {
            Some(res) => Ok(res.lm_head.clone()),
            None => Ok(Reader::load(&self.store).get(&self.head_name, &[self.spec.vocab_size, self.spec.d_model])?.t()?),
        }
    }

    /// Runs `f` on layers 0, 1, … n−1 in order until it breaks.
    ///
    /// Resident: on the held layers. Streamed: a prefetch thread loads
    /// layer l+1 (reading and dequantizing it from the mapped file) while
    /// `f` runs on layer l, and each layer is dropped when `f` returns, so
    /// at most two layers exist as f32 at any time. With `head`, the output
    /// layer (d_model, vocab) is prefetched after the last layer and
    /// returned. Errors: the first of `f`'s and the loader's, in layer order.
    pub fn for_each_layer(
        &self,
        n: usize,
        head: bool,
        mut f: impl FnMut(usize, &LayerWeights) -> Result<ControlFlow<()>>,
    ) -> Result<Option<Tensor>> {
        let n = n.min(self.spec.n_layers);
        if let Some(res) = &self.resident {
            for (l, lw) in res.layers.iter().enumerate().take(n) {
                if f(l, lw)?.is_break() {
                    return Ok(None);
                }
            }
            return if head { Ok(Some(res.lm_head.clone())) } else { Ok(None) };
        }
        #[allow(clippy::large_enum_variant)] // one in flight per layer
        enum Staged {
            Layer(LayerWeights),
            Head(Tensor),
        }
        std::thread::scope(|s| {
            // Rendezvous channel: the loader hands layer l+1 over only when
            // the caller asks for it, after dropping layer l.
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Staged>>(0);
            s.spawn(move || {
                for l in 0..n {
                    let lw = LayerWeights::load(&self.store, &self.spec, l).map(Staged::Layer);
                    let failed = lw.is_err();
                    if tx.send(lw).is_err() || failed {
                        return;
                    }
                }
                if head {
                    let _ = tx.send(self.lm_head().map(Staged::Head));
                }
            });
            let lost = || Error::Internal("the layer loader thread stopped");
            for l in 0..n {
                let staged = crate::profile::time(crate::profile::Phase::WaitWeights, || rx.recv());
                let Staged::Layer(lw) = staged.map_err(|_| lost())?? else { return Err(lost()) };
                if f(l, &lw)?.is_break() {
                    return Ok(None);
                }
            }
            if !head {
                return Ok(None);
            }
            match crate::profile::time(crate::profile::Phase::WaitWeights, || rx.recv()).map_err(|_| lost())?? {
                Staged::Head(t) => Ok(Some(t)),
                Staged::Layer(_) => Err(lost()),
            }
        })
    }
}

/// HF names of the token embeddings (vocab, d_model) and of the output
/// layer (vocab, d_model), both shape-checked (no data read).
///
/// Tied models (or an absent output layer, as in SmolLM2's GGUF) reuse the
/// embeddings. A tied checkpoint may also store the shared matrix only as
/// the output layer (some save paths write `lm_head.weight` and drop the
/// embedding, and transformers ties them back on load): then the output
/// layer is the embedding.
fn embed_and_head(r: &Reader, embed: &str, head: &str, spec: &ArchSpec) -> Result<(String, String)> {
    let shape = [spec.vocab_size, spec.d_model];
    if spec.tie_embeddings && !r.has(embed, true) && r.has(head, false) {
        r.check(head, &shape)?;
        return Ok((head.to_string(), head.to_string()));
    }
    r.check(embed, &shape)?;
    if !spec.tie_embeddings && r.has(head, true) {
        r.check(head, &shape)?;
        return Ok((embed.to_string(), head.to_string()));
    }
    Ok((embed.to_string(), embed.to_string()))
}

/// Where a llama-layout checkpoint keeps its decoder: `model.` (every
/// `*ForCausalLM`), or the language model inside a multimodal Gemma 3
/// (`model.language_model.` in transformers 5, `language_model.model.`
/// before), whose output layer is then `lm_head` / `language_model.lm_head`.
fn llama_prefixes(r: &Reader) -> (&'static str, &'static str) {
    // Probed by the final norm: the embedding may be absent (tied, stored as the head).
    if r.has("model.language_model.norm.weight", false) {
        ("model.language_model.", "lm_head.weight")
    } else if r.has("language_model.model.norm.weight", false) {
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
    parts.try_into().map_err(|_| Error::Internal("fused projection split"))
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

fn load_llama_like(r: &Reader, spec: &ArchSpec) -> Result<Globals> {
    let (base, head) = llama_prefixes(r);
    let (embed_name, head_name) = embed_and_head(r, &format!("{base}embed_tokens.weight"), head, spec)?;
    Ok(Globals {
        embed_name,
        head_name,
        embed_norm: None,
        pos_embed: None,
        final_norm: r.norm(&format!("{base}norm"), spec.d_model, spec)?,
    })
}

fn llama_like_layer(r: &Reader, spec: &ArchSpec, l: usize) -> Result<LayerWeights> {
    let (dm, h, hkv, d, ff) = (spec.d_model, spec.n_heads, spec.n_kv_heads, spec.head_dim, spec.d_ff);
    let (base, _) = llama_prefixes(r);
    let p = format!("{base}layers.{l}");
    let norm = |name: &str| r.norm(&format!("{p}.{name}"), dm, spec);
    // Read in forward order (see `weight_specs`): attention side, then MLP side.
    let (attn_norm, attn_post_norm) = match spec.block {
        BlockKind::PostNorm => (norm("post_attention_layernorm")?, None),
        BlockKind::Sandwich => (norm("input_layernorm")?, Some(norm("post_attention_layernorm")?)),
        // StableLM's parallel blocks feed one norm to both branches.
        _ => (norm("input_layernorm")?, None),
    };
    let (q_norm, k_norm) = match spec.qk_norm {
        QkNorm::None => (None, None),
        QkNorm::PerHead => {
            (Some(r.norm(&format!("{p}.self_attn.q_norm"), d, spec)?), Some(r.norm(&format!("{p}.self_attn.k_norm"), d, spec)?))
        }
        QkNorm::Full => {
            (Some(r.norm(&format!("{p}.self_attn.q_norm"), h * d, spec)?), Some(r.norm(&format!("{p}.self_attn.k_norm"), hkv * d, spec)?))
        }
    };
    let phi3 = spec.family == Family::Phi3;
    let (q, k, v) = if phi3 {
        // qkv_proj (h·d + 2·h_kv·d, D) = [q | k | v] rows.
        let qkv = r.get(&format!("{p}.self_attn.qkv_proj.weight"), &[(h + 2 * hkv) * d, dm])?;
        let [q, k, v] = split_rows(&qkv, [h * d, hkv * d, hkv * d])?;
        (q, k, v)
    } else {
        (
            r.linear(&format!("{p}.self_attn.q_proj"), h * d, dm, spec.qkv_bias)?,
            r.linear(&format!("{p}.self_attn.k_proj"), hkv * d, dm, spec.qkv_bias)?,
            r.linear(&format!("{p}.self_attn.v_proj"), hkv * d, dm, spec.qkv_bias)?,
        )
    };
    let o = r.linear(&format!("{p}.self_attn.o_proj"), dm, h * d, false)?;
    let (mlp_norm, mlp_post_norm) = match spec.block {
        BlockKind::PostNorm => (norm("post_feedforward_layernorm")?, None),
        BlockKind::Sandwich => (norm("pre_feedforward_layernorm")?, Some(norm("post_feedforward_layernorm")?)),
        BlockKind::Parallel => (norm("input_layernorm")?, None),
        _ => (norm("post_attention_layernorm")?, None),
    };
    let (gate, up) = if phi3 {
        // gate_up_proj (2·d_ff, D) = [gate | up] rows.
        let gu = r.get(&format!("{p}.mlp.gate_up_proj.weight"), &[2 * ff, dm])?;
        let [gate, up] = split_rows(&gu, [ff, ff])?;
        (Some(gate), up)
    } else {
        let gated = matches!(spec.mlp, Mlp::Gated(_));
        (
            if gated { Some(r.linear(&format!("{p}.mlp.gate_proj"), ff, dm, false)?) } else { None },
            r.linear(&format!("{p}.mlp.up_proj"), ff, dm, false)?,
        )
    };
    let down = r.linear(&format!("{p}.mlp.down_proj"), dm, ff, false)?;
    Ok(LayerWeights { attn_norm, mlp_norm, attn_post_norm, mlp_post_norm, q, k, v, o, q_norm, k_norm, gate, up, down })
}

/// GPT2LMHeadModel saves under `transformer.`; bare GPT2Model checkpoints do not.
fn gpt2_prefix(r: &Reader) -> &'static str {
    if r.has("transformer.wte.weight", true) || r.has("transformer.ln_f.weight", true) {
        "transformer."
    } else {
        ""
    }
}

fn load_gpt2(r: &Reader, spec: &ArchSpec) -> Result<Globals> {
    let dm = spec.d_model;
    let pre = gpt2_prefix(r);
    let (embed_name, head_name) = embed_and_head(r, &format!("{pre}wte.weight"), "lm_head.weight", spec)?;
    let wpe = format!("{pre}wpe.weight");
    let n_pos = match r.store() {
        Some(store) => store.shape(&wpe).map(|s| s[0]).unwrap_or(0),
        None => spec.max_positions.unwrap_or(0),
    };
    Ok(Globals {
        embed_name,
        head_name,
        embed_norm: None,
        pos_embed: Some(r.get(&wpe, &[n_pos, dm])?),
        final_norm: r.norm(&format!("{pre}ln_f"), dm, spec)?,
    })
}

fn gpt2_layer(r: &Reader, spec: &ArchSpec, l: usize) -> Result<LayerWeights> {
    let dm = spec.d_model;
    let p = format!("{}h.{l}", gpt2_prefix(r));
    // Read in forward order (see `weight_specs`).
    let attn_norm = r.norm(&format!("{p}.ln_1"), dm, spec)?;
    // Conv1D c_attn: (d_model, 3·d_model) = [q | k | v] column blocks.
    let qkv_w = r.get(&format!("{p}.attn.c_attn.weight"), &[dm, 3 * dm])?;
    let qkv_b = r.get(&format!("{p}.attn.c_attn.bias"), &[3 * dm])?;
    let split = |i: usize| -> Result<Linear> {
        Ok(Linear { w: qkv_w.narrow(1, i * dm, dm)?.contiguous()?, b: Some(qkv_b.narrow(0, i * dm, dm)?) })
    };
    let o = r.conv1d(&format!("{p}.attn.c_proj"), dm, dm)?;
    let mlp_norm = r.norm(&format!("{p}.ln_2"), dm, spec)?;
    let up = r.conv1d(&format!("{p}.mlp.c_fc"), dm, spec.d_ff)?;
    let down = r.conv1d(&format!("{p}.mlp.c_proj"), spec.d_ff, dm)?;
    Ok(LayerWeights {
        attn_norm,
        mlp_norm,
        attn_post_norm: None,
        mlp_post_norm: None,
        q: split(0)?,
        k: split(1)?,
        v: split(2)?,
        o,
        q_norm: None,
        k_norm: None,
        gate: None,
        up,
        down,
    })
}

fn load_neox(r: &Reader, spec: &ArchSpec) -> Result<Globals> {
    let (embed_name, head_name) = embed_and_head(r, "gpt_neox.embed_in.weight", "embed_out.weight", spec)?;
    Ok(Globals {
        embed_name,
        head_name,
        embed_norm: None,
        pos_embed: None,
        final_norm: r.norm("gpt_neox.final_layer_norm", spec.d_model, spec)?,
    })
}

fn neox_layer(r: &Reader, spec: &ArchSpec, l: usize) -> Result<LayerWeights> {
    let (dm, h, d) = (spec.d_model, spec.n_heads, spec.head_dim);
    let p = format!("gpt_neox.layers.{l}");
    // Read in forward order (see `weight_specs`): both norms see the block input.
    let attn_norm = r.norm(&format!("{p}.input_layernorm"), dm, spec)?;
    let mlp_norm = r.norm(&format!("{p}.post_attention_layernorm"), dm, spec)?;
    // Fused query_key_value (3·h·d, d_model): output rows ordered (head, {q,k,v}, d).
    let w = r.get(&format!("{p}.attention.query_key_value.weight"), &[3 * h * d, dm])?;
    let b = r.opt(&format!("{p}.attention.query_key_value.bias"), &[3 * h * d])?;
    let [q, k, v] = split_per_head_qkv(&w, b.as_ref(), h, d, dm)?;
    Ok(LayerWeights {
        attn_norm,
        mlp_norm,
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
}

/// BloomForCausalLM saves under `transformer.`; the bigscience checkpoints (BloomModel) do not.
fn bloom_prefix(r: &Reader) -> &'static str {
    if r.has("transformer.word_embeddings.weight", true) || r.has("transformer.h.0.input_layernorm.weight", true) {
        "transformer."
    } else {
        ""
    }
}

fn load_bloom(r: &Reader, spec: &ArchSpec) -> Result<Globals> {
    let pre = bloom_prefix(r);
    let (embed_name, head_name) = embed_and_head(r, &format!("{pre}word_embeddings.weight"), "lm_head.weight", spec)?;
    Ok(Globals {
        embed_name,
        head_name,
        embed_norm: Some(r.norm(&format!("{pre}word_embeddings_layernorm"), spec.d_model, spec)?),
        pos_embed: None,
        final_norm: r.norm(&format!("{pre}ln_f"), spec.d_model, spec)?,
    })
}

fn bloom_layer(r: &Reader, spec: &ArchSpec, l: usize) -> Result<LayerWeights> {
    let (dm, h, d) = (spec.d_model, spec.n_heads, spec.head_dim);
    let p = format!("{}h.{l}", bloom_prefix(r));
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
}

fn load_mpt(r: &Reader, spec: &ArchSpec) -> Result<Globals> {
    let (embed_name, head_name) = embed_and_head(r, "transformer.wte.weight", "lm_head.weight", spec)?;
    Ok(Globals { embed_name, head_name, embed_norm: None, pos_embed: None, final_norm: r.norm("transformer.norm_f", spec.d_model, spec)? })
}

fn mpt_layer(r: &Reader, spec: &ArchSpec, l: usize) -> Result<LayerWeights> {
    let (dm, h, d) = (spec.d_model, spec.n_heads, spec.head_dim);
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
}
