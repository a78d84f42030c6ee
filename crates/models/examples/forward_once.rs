//! One forward pass and nothing else, for instruction counts that a shared
//! machine's load does not move:
//!
//!     RAYON_NUM_THREADS=1 valgrind --tool=callgrind \
//!         target/release/examples/forward_once [MODEL] [T]
//!
//! With a third argument PASSES (default 1), runs that many passes (for
//! `perf record`, whose samples then weigh warm passes over the first).
//!
//! MODEL defaults to SmolLM2-135M-Instruct Q4_1 in the attnscope cache, T
//! to 128 (SmolLM2 at T = 256 ran over 20 minutes under callgrind on the
//! shared 2-core machine). Token ids are the same deterministic spread `forward_bench` uses.
//! `callgrind_annotate --inclusive=yes` then splits the pass by function
//! (candle's GEMM kernels, the decoder's fused kernels, dequantization).

use models::{Checkpoint, Logits, Model};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    models::alloc::tune(); // as the attnscope binary does
    let args: Vec<String> = std::env::args().collect();
    let default = format!("{}/.cache/attnscope/models/SmolLM2-135M-Instruct.Q4_1.gguf", std::env::var("HOME").unwrap_or_default());
    let path = args.get(1).cloned().unwrap_or(default);
    let t: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(128);
    let passes: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1).max(1);
    let model = Model::load(&Checkpoint::open(&path, None)?)?;
    let vocab = model.spec.vocab_size;
    let ids: Vec<u32> = (0..t).map(|i| (i * 7919 % (vocab - 1)) as u32 + 1).collect();
    let mut logits = model.forward_logits(&ids, Logits::Last, None)?;
    for _ in 1..passes {
        logits = model.forward_logits(&ids, Logits::Last, None)?;
    }
    println!("{t} tokens, logits {:?}", logits.dims());
    Ok(())
}
