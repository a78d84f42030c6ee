//! Writes a synthetic Llama-shaped GGUF with random Q4_0 weights and a
//! 259-token byte vocabulary ([`models::synth`]), tensor by tensor.
//!
//! ```text
//! cargo run --release -p attnscope-models --example synth_gguf -- 7b  /work/bigmodels/llama7b-shape.Q4_0.gguf
//! cargo run --release -p attnscope-models --example synth_gguf -- 70b /work/bigmodels/llama70b-shape.Q4_0.gguf
//! cargo run --release -p attnscope-models --example synth_gguf -- small out.gguf --layers 24
//! ```
//!
//! Options: `--layers N` overrides the preset's depth; `--seed S` (default 0).

use std::path::PathBuf;
use std::process::ExitCode;

use models::synth::{write_gguf, SynthSpec};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("synth_gguf: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let usage = "usage: synth_gguf <7b|70b|small> <out.gguf> [--layers N] [--seed S]";
    let (preset, out) = match args {
        [p, o, ..] => (p.as_str(), PathBuf::from(o)),
        _ => return Err(usage.into()),
    };
    let mut spec = match preset {
        "7b" => SynthSpec::llama_7b(),
        "70b" => SynthSpec::llama_70b(),
        "small" => SynthSpec::small(6),
        other => return Err(format!("unknown preset `{other}`; {usage}")),
    };
    let mut seed = 0u64;
    let mut rest = args[2..].iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value; {usage}"))?;
        let num = value.parse::<u64>().map_err(|_| format!("{flag} {value}: not a number"))?;
        match flag.as_str() {
            "--layers" => spec.n_layers = num as usize,
            "--seed" => seed = num,
            _ => return Err(format!("unknown option {flag}; {usage}")),
        }
    }
    let started = std::time::Instant::now();
    let bytes = write_gguf(&out, &spec, seed).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!(
        "synth_gguf: wrote {} ({:.2} GiB, {} layers, d_model {}, {} heads / {} KV, FFN {}) in {:.1} s",
        out.display(),
        bytes as f64 / (1u64 << 30) as f64,
        spec.n_layers,
        spec.d_model,
        spec.n_heads,
        spec.n_kv_heads,
        spec.d_ff,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
