//! One configurable decoder for every family, driven by [`ArchSpec`].
//!
//! The forward pass follows HF transformers' eager implementations step by
//! step (f32 throughout, the same order of operations where it matters for
//! rounding), so Q, K and logits agree with it to f32 precision. Shapes:
//! t tokens, h query heads, h_kv KV heads, d = d_head, D = d_model.
//!
//! Attention is computed in query chunks, so memory stays O(h·chunk·t)
//! rather than O(h·t²): long contexts (32k) fit in a few hundred MB.
//!
//! Weights: each layer is read from the mapped file and dequantized just
//! before it runs, on a prefetch thread, and dropped after it
//! ([`ModelWeights::for_each_layer`]); memory holds at most two layers as
//! f32, whatever the model's depth. The same f32 values as a whole-model
//! load, so Q, K and logits are unchanged bit for bit.

use candle_core::{Device, Tensor, D};

use crate::arch::{Activation, ArchSpec, BlockKind, LogitTransform, Mlp, NormKind, Positions, QkNorm};
use crate::capture::{LayerCapture, Observer};
use std::ops::ControlFlow;

use crate::profile::{time, Phase};
use crate::softmax::{alibi_mask, causal_mask, masked_softmax_in_place, Support};
use crate::weights::{LayerWeights, ModelWeights, Norm};
use crate::{fused, rope, Checkpoint, Error, Result};

/// Which rows of logits [`Model::forward_logits`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position: (1, vocab).
    Last,
    /// Every position: (t, vocab).
    All,
}

/// Environment variable that, set to `resident`, makes [`Model::load`] keep
/// every weight in memory as f32 (the behaviour before streaming).
pub const WEIGHTS_ENV: &str = "ATTNSCOPE_WEIGHTS";

/// Upper bound on attention score elements held at once (f32): 2^24 = 64 MB.
const SCORE_BUDGET: usize = 1 << 24;

/// Most queries per attention chunk. A chunk of c queries computes scores
/// for keys up to its last query, so causal attention over t tokens does
/// ≈ (1 + c/t)× the causal work instead of 2× with one t×t block.
const QUERY_CHUNK: usize = 128;

/// Most score elements (f32) of one chunk for which the chunks run as two
/// concurrent tasks: 2^23 = 32 MiB. Each task allocates its scores from its
/// own thread's malloc arena; glibc serves blocks of 64 MiB and more in such
/// an arena by mmap whatever its thresholds ([`crate::alloc`]), so at the
/// score budget every chunk would fault its buffer in again. Longer inputs
/// (t > 7281 for SmolLM2's 9 heads and 128-query chunks) keep one chunk
/// after another, with the memory figures measured for them.
const TASK_SCORES: usize = 1 << 23;

/// Queries per attention chunk for `h` heads over `t` tokens with at most
/// `max_chunk` queries: as many as keep h·chunk·t score elements within
/// `SCORE_BUDGET`, at least 1, at most t.
fn chunk_queries(h: usize, t: usize, max_chunk: usize) -> usize {
    (SCORE_BUDGET / (h * t).max(1)).clamp(1, t.max(1)).min(max_chunk)
}

/// Attention score elements (f32) the default decoder holds at once for
/// `n_heads` heads over `t` tokens: h·chunk·t for the default chunk (one
/// chunk's logits; the memory guard counts the copies it makes).
pub fn attention_scores_per_chunk(n_heads: usize, t: usize) -> u64 {
    (n_heads as u64).saturating_mul(chunk_queries(n_heads, t, QUERY_CHUNK) as u64).saturating_mul(t as u64)
}

pub struct Model {
    pub spec: ArchSpec,
    weights: ModelWeights,
    device: Device,
    query_chunk: usize,
}

impl Model {
    /// Builds the decoder for a checkpoint: its spec from the config, every
    /// weight checked against the family's name table (names and shapes;
    /// no data read). Layers then stream from the checkpoint's mapped file
    /// during each forward pass (NaN-checked as they load); in-memory
    /// sources, or `ATTNSCOPE_WEIGHTS=resident`, keep every weight loaded
    /// instead. Leaves the process's allocator alone: a binary that wants
    /// freed buffers reused calls [`crate::alloc::tune`] itself.
    pub fn load(checkpoint: &Checkpoint) -> Result<Model> {
        let resident = std::env::var(WEIGHTS_ENV).is_ok_and(|v| v == "resident");
        Self::load_with(checkpoint, resident)
    }

    /// [`Model::load`] with every weight loaded now (`resident`) or streamed.
    pub fn load_with(checkpoint: &Checkpoint, resident: bool) -> Result<Model> {
        let spec = ArchSpec::from_hf_config(&checkpoint.config)?;
        let weights = ModelWeights::load(&checkpoint.tensors, &spec, resident)?;
        Ok(Model { spec, weights, device: Device::Cpu, query_chunk: QUERY_CHUNK })
    }

    /// Re-reads the weights of a resident model from its checkpoint's
    /// tensors, for tensors updated in place since [`Model::load`] (a
    /// training step on a [`Checkpoint::from_tensors`] checkpoint). The
    /// config is not parsed again and in-memory tensors are not NaN-checked
    /// again; weights the name table uses as views of the stored tensors
    /// (transposes) are current without it, but the ones it copies
    /// (GPT-2's split of `c_attn`, GPT-NeoX's per-head `query_key_value`)
    /// are not. A no-op for a streamed model, which reads every pass.
    pub fn refresh(&mut self) -> Result<()> {
        self.weights.refresh()
    }

    /// Whether every weight is held in memory (else layers stream per pass).
    pub fn is_resident(&self) -> bool {
        self.weights.is_resident()
    }

    /// Sets the most queries per attention chunk (default 128, at least 1).
    /// Results do not depend on it beyond f32 rounding of the score GEMMs
    /// (tested: chunk 1 … t agree to 1e-6 relative); only speed and the
    /// size of the score buffer do.
    pub fn set_query_chunk(&mut self, chunk: usize) {
        self.query_chunk = chunk.max(1);
    }

    /// Runs the model over `ids` (one sequence, positions 0..t), handing each
    /// layer's Q/K to `observer` if given, and returns the logits `rows`
    /// asks for (f32): (1, vocab) for [`Logits::Last`], (t, vocab) for
    /// [`Logits::All`].
    pub fn forward_logits(&self, ids: &[u32], rows: Logits, observer: Option<&mut dyn Observer>) -> Result<Tensor> {
        self.run(ids, Some(rows), observer)?.ok_or(Error::Internal("a pass asked for logits returned none"))
    }

    /// Runs the model over `ids` for its queries and keys only: each layer's
    /// Q/K go to `observer`, no LM head is read, and the pass stops after
    /// the observer's [`Observer::last_layer`].
    pub fn forward_capture(&self, ids: &[u32], observer: &mut dyn Observer) -> Result<()> {
        self.run(ids, None, Some(observer)).map(drop)
    }

    /// The forward pass; `logits: None` computes no LM head.
    fn run(&self, ids: &[u32], logits: Option<Logits>, mut observer: Option<&mut dyn Observer>) -> Result<Option<Tensor>> {
        let spec = &self.spec;
        let t = ids.len();
        if t == 0 {
            return Err(Error::EmptyInput);
        }
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= spec.vocab_size) {
            return Err(Error::TokenOutOfRange { id: bad, vocab: spec.vocab_size });
        }
        // x: (t, D)
        let mut x = self.weights.embed(ids)?;
        if let Some(s) = spec.embed_scale {
            // Gemma multiplies by √D rounded to the activation dtype.
            x = (x * (s as f32) as f64)?;
        }
        if let Some(norm) = &self.weights.embed_norm {
            x = norm.forward(&x)?;
        }
        if let Some(pos) = &self.weights.pos_embed {
            let n_pos = pos.dim(0)?;
            if t > n_pos {
                return Err(Error::TooManyTokens { tokens: t, positions: n_pos });
            }
            x = x.add(&pos.narrow(0, 0, t)?)?;
        }
        let rope_tables = match spec.positions {
            Positions::Rotary { theta, rotary_dim, scaling } => {
                let inv = rope::inv_freq(theta, rotary_dim, scaling);
                Some(rope::tables(&inv, t, &self.device)?)
            }
            Positions::Learned | Positions::None => None,
        };
        // Gemma 3: sliding-window layers rotate with their own base, unscaled.
        let local_rope_tables = match (spec.positions, spec.local_rope_theta) {
            (Positions::Rotary { rotary_dim, .. }, Some(theta)) => {
                let inv = rope::inv_freq(theta, rotary_dim, crate::arch::RopeScaling::None);
                Some(rope::tables(&inv, t, &self.device)?)
            }
            _ => None,
        };
        let last_needed = match (logits, observer.as_ref().and_then(|o| o.last_layer())) {
            (None, Some(l)) => l.min(spec.n_layers - 1),
            _ => spec.n_layers - 1,
        };
        let want_head = logits.is_some();
        let lm_head = self.weights.for_each_layer(last_needed + 1, want_head, |l, lw| {
            // Reborrow with a shorter trait-object lifetime for this layer.
            let obs: Option<&mut dyn Observer> = match observer {
                Some(ref mut o) => Some(&mut **o),
                None => None,
            };
            let rope_tables = match (&local_rope_tables, spec.windows[l]) {
                (Some(local), Some(_)) => Some(local),
                _ => rope_tables.as_ref(),
            };
            if logits.is_none() && l == last_needed {
                // Only this layer's Q/K are still wanted: project, hand them
                // to the observer, stop (no V, no attention, no MLP).
                let input = match spec.block {
                    BlockKind::PostNorm => x.clone(),
                    _ => lw.attn_norm.forward(&x)?,
                };
                self.queries_keys(l, lw, &input, rope_tables, obs)?;
                return Ok(ControlFlow::Break(()));
            }
            let attn = |h: &Tensor, obs: Option<&mut dyn Observer>| self.attention(l, lw, h, rope_tables, obs);
            let nr = |f: &dyn Fn() -> Result<Tensor>| time(Phase::NormsResidual, f);
            x = match spec.block {
                BlockKind::PreNorm => {
                    let a = attn(&nr(&|| lw.attn_norm.forward(&x))?, obs)?;
                    // x1 = x + a (in a's buffer) and its norm, in one pass.
                    let (x1, n) = time(Phase::NormsResidual, || add_then_norm(&x, a, &lw.mlp_norm))?;
                    let m = self.mlp(lw, &n)?;
                    time(Phase::NormsResidual, || residual(&x1, m))?
                }
                BlockKind::Parallel => {
                    let a = attn(&lw.attn_norm.forward(&x)?, obs)?;
                    let m = self.mlp(lw, &lw.mlp_norm.forward(&x)?)?;
                    ((m + a)? + &x)?
                }
                BlockKind::PostNorm => {
                    let x1 = (&x + lw.attn_norm.forward(&attn(&x, obs)?)?)?;
                    (&x1 + lw.mlp_norm.forward(&self.mlp(lw, &x1)?)?)?
                }
                BlockKind::Sandwich => {
                    let post_a = lw.attn_post_norm.as_ref().ok_or_else(|| Error::Internal("sandwich block without its post norms"))?;
                    let post_m = lw.mlp_post_norm.as_ref().ok_or_else(|| Error::Internal("sandwich block without its post norms"))?;
                    let x1 = (&x + post_a.forward(&attn(&lw.attn_norm.forward(&x)?, obs)?)?)?;
                    (&x1 + post_m.forward(&self.mlp(lw, &lw.mlp_norm.forward(&x1)?)?)?)?
                }
            };
            Ok(ControlFlow::Continue(()))
        })?;
        let Some(lm_head) = lm_head else { return Ok(None) };
        let rows = match logits {
            None => return Ok(None),
            Some(Logits::Last) => x.narrow(0, t - 1, 1)?,
            Some(Logits::All) => x,
        };
        let h = self.weights.final_norm.forward(&rows)?;
        let mut out = time(Phase::LmHead, || crate::matmul::matmul(&h, &lm_head))?;
        if let LogitTransform::Softcap(c) = spec.final_logit_transform {
            out = ((out / c)?.tanh()? * c)?;
        }
        Ok(Some(out))
    }

    /// Self-attention of layer `l` over normalised input `x` (t, D) → (t, D).
    fn attention(
        &self,
        l: usize,
        lw: &LayerWeights,
        x: &Tensor,
        rope_tables: Option<&(Tensor, Tensor)>,
        observer: Option<&mut dyn Observer>,
    ) -> Result<Tensor> {
        let spec = &self.spec;
        let (t, _) = x.dims2()?;
        let (h, d) = (spec.n_heads, spec.head_dim);
        let v = time(Phase::Projections, || heads(lw.v.forward(x)?, spec.n_kv_heads, d))?; // (h_kv, t, d)
        let (q, k) = self.queries_keys(l, lw, x, rope_tables, observer)?;
        let out = self.chunked_attention(&q, &k, &v, spec.windows[l])?; // (h, t, d)
        let out = time(Phase::AttnPv, || out.transpose(0, 1)?.contiguous()?.reshape((t, h * d)))?;
        time(Phase::Projections, || lw.o.forward(&out))
    }

    /// Layer `l`'s queries (h, t, d) and keys (h_kv, t, d) exactly as its dot
    /// products use them (biases, QK-norm, rotary), after the observer has
    /// seen them (and possibly replaced the keys).
    fn queries_keys(
        &self,
        l: usize,
        lw: &LayerWeights,
        x: &Tensor,
        rope_tables: Option<&(Tensor, Tensor)>,
        observer: Option<&mut dyn Observer>,
    ) -> Result<(Tensor, Tensor)> {
        let spec = &self.spec;
        let (h, hkv, d) = (spec.n_heads, spec.n_kv_heads, spec.head_dim);
        let (mut q, mut k) = time(Phase::Projections, || Ok::<_, Error>((lw.q.forward(x)?, lw.k.forward(x)?)))?; // (t, h·d), (t, h_kv·d)
        let (q, mut k) = time(Phase::Rope, || {
            if spec.qk_norm == QkNorm::Full {
                q = norm_of(&lw.q_norm)?.forward(&q)?;
                k = norm_of(&lw.k_norm)?.forward(&k)?;
            }
            let mut q = heads(q, h, d)?; // (h, t, d)
            let mut k = heads(k, hkv, d)?; // (h_kv, t, d)
            if spec.qk_norm == QkNorm::PerHead {
                q = norm_of(&lw.q_norm)?.forward(&q)?;
                k = norm_of(&lw.k_norm)?.forward(&k)?;
            }
            if let Some((cos, sin)) = rope_tables {
                q = rope::apply(&q, cos, sin)?;
                k = rope::apply(&k, cos, sin)?;
            }
            Ok::<_, Error>((q, k))
        })?;
        let window = spec.windows[l];
        if let Some(obs) = observer {
            let cap = LayerCapture {
                layer: l,
                q: &q,
                k: &k,
                scale: spec.attn_scale,
                window,
                alibi_slopes: spec.position_bias.slopes(),
                logit_transform: spec.attn_logit_transform,
                w_q: &lw.q.w,
                w_k: &lw.k.w,
            };
            obs.on_layer(&cap).map_err(Error::Observer)?;
            if let Some(kt) = obs.transform_keys(l, &k).map_err(Error::Observer)? {
                if kt.dims() != k.dims() {
                    return Err(Error::Observer(format!("transform_keys changed the key shape {:?} to {:?}", k.dims(), kt.dims()).into()));
                }
                k = kt.to_dtype(k.dtype())?.contiguous()?;
            }
        }
        Ok((q, k))
    }

    /// softmax(s·q·kᵀ + mask)·v over query chunks. q (h, t, d), k/v (h_kv, t, d) → (h, t, d).
    ///
    /// On the CPU inference path with two or more pool threads, the chunks
    /// run as two tasks of about equal causal work ([`balanced_halves`]),
    /// each chunk's GEMMs on one thread ([`crate::matmul::matmul_one_thread`]):
    /// attention's GEMMs (inner dimension d = 64, one chunk's scores) scale
    /// poorly when each is split over the threads. Every chunk computes
    /// exactly what it computes in sequence (same GEMM shapes, same bits);
    /// two chunks' scores are in memory at once instead of one, in two
    /// threads' arenas (at most [`TASK_SCORES`] elements each).
    fn chunked_attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, window: Option<usize>) -> Result<Tensor> {
        let spec = &self.spec;
        let (h, t, d) = q.dims3()?;
        let hkv = spec.n_kv_heads;
        let g = spec.group_size();
        let chunk = chunk_queries(h, t, self.query_chunk);
        // Inference reads each chunk's keys and values in place (row-major
        // GEMM operands with a row stride of t, no per-chunk copy); the
        // tracked path keeps contiguous copies.
        let tracked = q.track_op() || k.track_op() || v.track_op();
        let kt = time(Phase::AttnQk, || k.transpose(1, 2)?.contiguous())?; // (h_kv, d, t)
        let slopes: Option<Vec<f32>> = spec.position_bias.slopes().map(|s| s.iter().map(|&m| m as f32).collect());
        let ops = ChunkOperands {
            qg: q.reshape((hkv, g, t, d))?, // (h_kv, g, t, d)
            kt,
            v: v.clone(),
            window,
            slopes: slopes.as_deref(),
            tracked,
        };
        // Chunk i covers queries [c0, c0 + len) and keys [lo, c0 + len).
        let chunks: Vec<(usize, usize)> = (0..t).step_by(chunk).map(|c0| (c0, chunk.min(t - c0))).collect();
        let tasks = !tracked && q.device().is_cpu() && chunks.len() > 1 && h * chunk * t <= TASK_SCORES && rayon::current_num_threads() > 1;
        let outs = if tasks {
            // A chunk's causal work: its queries times the keys they see.
            let work: Vec<usize> = chunks.iter().map(|&(c0, len)| len * (c0 + len - first_key(c0, window))).collect();
            let (a, b) = balanced_halves(&work);
            let run = |ids: &[usize]| -> Result<Vec<Tensor>> {
                ids.iter().map(|&i| self.attention_chunk(&ops, chunks[i], crate::matmul::matmul_one_thread)).collect()
            };
            let (oa, ob) = time(Phase::AttnTasks, || rayon::join(|| run(&a), || run(&b)));
            let mut outs: Vec<Option<Tensor>> = vec![None; chunks.len()];
            for (i, o) in a.iter().zip(oa?).chain(b.iter().zip(ob?)) {
                outs[*i] = Some(o);
            }
            outs.into_iter().collect::<Option<Vec<Tensor>>>().ok_or(Error::Internal("an attention chunk was not computed"))?
        } else {
            chunks.iter().map(|&c| self.attention_chunk(&ops, c, crate::matmul::matmul)).collect::<Result<Vec<Tensor>>>()?
        };
        Ok(time(Phase::AttnPv, || Tensor::cat(&outs, 1))?)
    }

    /// One query chunk (c0, len) of [`Model::chunked_attention`], its GEMMs
    /// by `mm`: → (h, len, d).
    fn attention_chunk(&self, ops: &ChunkOperands, (c0, len): (usize, usize), mm: MatmulFn) -> Result<Tensor> {
        let spec = &self.spec;
        let (hkv, g, _, d) = ops.qg.dims4()?;
        let h = hkv * g;
        let c1 = c0 + len;
        // Keys any query of this chunk can see: [lo, c1).
        let lo = first_key(c0, ops.window);
        let nk = c1 - lo;
        let qk = time(Phase::AttnQk, || {
            let qc = ops.qg.narrow(2, c0, len)?.contiguous()?.reshape((hkv, g * len, d))?;
            let kc = ops.kt.narrow(2, lo, nk)?; // (h_kv, d, nk)
            let kc = if ops.tracked { kc.contiguous()? } else { kc };
            mm(&qc, &kc) // (h_kv, g·len, nk)
        })?;
        let support = Support { c0, len, lo, window: ops.window, slopes: ops.slopes };
        let fused = match spec.attn_logit_transform {
            LogitTransform::None if !qk.track_op() => {
                time(Phase::AttnSoftmax, || masked_softmax_in_place(&qk, spec.attn_scale as f32, support))?
            }
            _ => false,
        };
        let p = if fused {
            qk
        } else {
            let mut s = (qk * spec.attn_scale)?;
            if let LogitTransform::Softcap(c) = spec.attn_logit_transform {
                s = ((s / c)?.tanh()? * c)?;
            }
            let s = s.reshape((hkv, g, len, nk))?;
            let s = match support.slopes {
                None => s.broadcast_add(&causal_mask(support, nk, &self.device)?)?, // (len, nk)
                Some(_) => (s + alibi_mask(support, nk, &self.device)?.reshape((hkv, g, len, nk))?)?,
            };
            let p = if s.track_op() {
                // Training (gradients tracked): the fused softmax has no backward.
                let e = s.broadcast_sub(&s.max_keepdim(D::Minus1)?.detach())?.exp()?;
                e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?
            } else {
                candle_nn::ops::softmax_last_dim(&s)?
            };
            p.reshape((hkv, g * len, nk))?
        };
        time(Phase::AttnPv, || {
            let vc = ops.v.narrow(1, lo, nk)?; // (h_kv, nk, d)
            let vc = if ops.tracked { vc.contiguous()? } else { vc };
            Ok::<_, Error>(mm(&p, &vc)?.reshape((h, len, d))?)
        })
    }

    /// Feed-forward block on normalised input (t, D) → (t, D).
    fn mlp(&self, lw: &LayerWeights, x: &Tensor) -> Result<Tensor> {
        time(Phase::Mlp, || self.mlp_untimed(lw, x))
    }

    fn mlp_untimed(&self, lw: &LayerWeights, x: &Tensor) -> Result<Tensor> {
        let hidden = match self.spec.mlp {
            Mlp::Gated(act) => {
                let gate = lw.gate.as_ref().ok_or_else(|| Error::Internal("gated MLP without gate weight"))?;
                let (g, u) = (gate.forward(x)?, lw.up.forward(x)?);
                // g is the gate GEMM's fresh output: silu(g)·u may go in its buffer.
                if act == Activation::Silu && fused::swiglu_in_place(&g, &u)? {
                    g
                } else {
                    (activate(&g, act)? * u)?
                }
            }
            Mlp::Plain(act) => activate(&lw.up.forward(x)?, act)?,
        };
        lw.down.forward(&hidden)
    }

    /// Greedy decoding: appends `n_new` argmax tokens to `prompt` (stops early
    /// at `stop`). Recomputes the full prefix each step (no KV cache): meant
    /// for short checks, not for serving.
    pub fn greedy(&self, prompt: &[u32], n_new: usize, stop: Option<u32>) -> Result<Vec<u32>> {
        let mut ids = prompt.to_vec();
        for _ in 0..n_new {
            let logits = self.forward_logits(&ids, Logits::Last, None)?;
            let next = logits.squeeze(0)?.argmax(D::Minus1)?.to_scalar::<u32>()?;
            if Some(next) == stop {
                break;
            }
            ids.push(next);
        }
        Ok(ids.split_off(prompt.len()))
    }
}

/// (t, n·d) → (n, t, d) contiguous.
fn heads(m: Tensor, n: usize, d: usize) -> Result<Tensor> {
    let t = m.dim(0)?;
    Ok(m.reshape((t, n, d))?.transpose(0, 1)?.contiguous()?)
}

/// The first key that a query chunk starting at position `c0` can see: 0
/// for causal attention, else the first key of its first query's window.
fn first_key(c0: usize, window: Option<usize>) -> usize {
    window.map_or(0, |w| (c0 + 1).saturating_sub(w))
}

/// A GEMM of the attention chunks: [`crate::matmul::matmul`] or its
/// one-thread form.
type MatmulFn = fn(&Tensor, &Tensor) -> Result<Tensor>;

/// What every query chunk of one layer's attention reads.
struct ChunkOperands<'a> {
    /// Queries grouped by KV head: (h_kv, g, t, d).
    qg: Tensor,
    /// Keys transposed: (h_kv, d, t).
    kt: Tensor,
    /// Values: (h_kv, t, d).
    v: Tensor,
    window: Option<usize>,
    /// ALiBi slopes per query head, if any.
    slopes: Option<&'a [f32]>,
    /// Gradients tracked: chunks of K and V are copied contiguous.
    tracked: bool,
}

/// Splits items of cost `work` into two lists of indices (each ascending)
/// whose total costs are as equal as greedy assignment makes them: largest
/// first, each to the lighter list. Every index lands in exactly one list.
fn balanced_halves(work: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..work.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(work[i]));
    let (mut a, mut b, mut wa, mut wb) = (vec![], vec![], 0usize, 0usize);
    for i in order {
        if wa <= wb {
            a.push(i);
            wa += work[i];
        } else {
            b.push(i);
            wb += work[i];
        }
    }
    a.sort_unstable();
    b.sort_unstable();
    (a, b)
}

fn norm_of(n: &Option<crate::weights::Norm>) -> Result<&crate::weights::Norm> {
    n.as_ref().ok_or_else(|| Error::Internal("QK-norm weight missing"))
}

/// x + a and its `norm`: (sum, normed). The CPU f32 inference path adds
/// into a's buffer (`a` must be an op's fresh output) and normalises in the
/// same pass, bit-identical to the ops ([`fused::add_rms_norm`]).
fn add_then_norm(x: &Tensor, a: Tensor, norm: &Norm) -> Result<(Tensor, Tensor)> {
    if let NormKind::Rms { eps, .. } = norm.kind {
        if let Some(n) = fused::add_rms_norm(&a, x, &norm.w, eps as f32)? {
            return Ok((a, n));
        }
    }
    let sum = (x + &a)?;
    let n = norm.forward(&sum)?;
    Ok((sum, n))
}

/// The residual add x + a, into a's buffer on the CPU f32 inference path
/// (`a` must be an op's fresh output; bit-identical, [`fused::add_in_place`]).
fn residual(x: &Tensor, a: Tensor) -> Result<Tensor> {
    if fused::add_in_place(&a, x)? {
        return Ok(a);
    }
    Ok((x + &a)?)
}

fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    Ok(match act {
        Activation::Silu => x.silu()?,
        Activation::GeluTanh => x.gelu()?,
        Activation::GeluErf => x.gelu_erf()?,
    })
}

#[cfg(test)]
mod tests {
    use super::balanced_halves;

    /// Every index in exactly one half; the causal chunk costs of 4 chunks
    /// (1 : 2 : 3 : 4) split 0 + 3 against 1 + 2; one item, one empty half.
    #[test]
    fn balanced_halves_cover_and_balance() {
        assert_eq!(balanced_halves(&[1, 2, 3, 4]), (vec![0, 3], vec![1, 2]));
        assert_eq!(balanced_halves(&[5]), (vec![0], vec![]));
        let work: Vec<usize> = (1..=33).map(|i| i * 7 % 11 + 1).collect();
        let (a, b) = balanced_halves(&work);
        let mut all: Vec<usize> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..work.len()).collect::<Vec<_>>());
        let (wa, wb): (usize, usize) = (a.iter().map(|&i| work[i]).sum(), b.iter().map(|&i| work[i]).sum());
        assert!(wa.abs_diff(wb) <= *work.iter().max().unwrap(), "{wa} vs {wb}");
    }
}
