//! A libFuzzer-free fuzz loop for stable Rust: mutates the seed corpus of a
//! target with a seeded RNG for a fixed time and calls the target under
//! `catch_unwind`. Usage:
//!
//! ```text
//! cargo run --release --manifest-path fuzz/Cargo.toml --bin fuzz_loop -- TARGET SECONDS [RNG_SEED]
//! cargo run --release --manifest-path fuzz/Cargo.toml --bin fuzz_loop -- TARGET repro FILE...
//! ```
//!
//! Feedback without coverage instrumentation: an input whose *outcome* (the
//! error message with numbers removed, or how far an `Ok` got) has not been
//! seen before joins the corpus. A panic is saved to
//! `fuzz/artifacts/TARGET/crash-<hash>` (the first 8 of each kind) and the loop goes on; an input that
//! takes over a second is saved as `slow-<hash>`. An abort (e.g. a failed
//! allocation) kills the process: the input is the scratch file the target
//! last wrote (in /dev/shm/attnscope-fuzz-PID/), which the loop also copies
//! to `fuzz/artifacts/TARGET/last-input` every 256 iterations, or before
//! every run when `FUZZ_SAVE_EVERY=1`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[u64] = &[
    0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 127, 128, 255, 256, 511, 512, 1023, 1024, 4095, 4096, 65535, 65536,
    0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x1_0000_0000, 1 << 40, 1 << 60, i64::MAX as u64, u64::MAX, u64::MAX - 1,
];

const JSON_TOKENS: &[&str] = &[
    "0", "-1", "1", "2", "3", "64", "1e308", "-1e308", "1e-320", "NaN", "null", "true", "false", "\"\"", "[]", "{}",
    "18446744073709551615", "18446744073709551616", "4294967296", "9007199254740993", "0.5", "-0.0", "\"llama\"",
    "\"gpt2\"", "\"gpt_neox\"", "\"gemma2\"", "\"qwen3\"", "\"olmo2\"", "\"bert\"", "\"\\u0000\"", "\"\\ud800\"",
    "[1,2]", "{\"type\":\"linear\",\"factor\":0}", "{\"rope_type\":\"llama3\",\"factor\":8,\"low_freq_factor\":1,\"high_freq_factor\":4,\"original_max_position_embeddings\":0}",
];

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut b = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        // Bias positions towards the first 4 KiB, where headers and lengths live.
        let span = if rng.below(3) == 0 { b.len() } else { b.len().min(4096) };
        let at = rng.below(span.max(1));
        match rng.below(12) {
            0 if !b.is_empty() => {
                let i = at.min(b.len() - 1);
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = at.min(b.len() - 1);
                b[i] = [0, 0xff, 0x7f, 0x80, 1][rng.below(5)];
            }
            2 | 3 => {
                // An interesting integer, little-endian, 1/2/4/8 bytes wide.
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let w = [1, 2, 4, 8][rng.below(4)];
                let v = if rng.below(4) == 0 { v.wrapping_add(rng.below(5) as u64).wrapping_sub(2) } else { v };
                for i in 0..w {
                    if at + i < b.len() {
                        b[at + i] = (v >> (8 * i)) as u8;
                    }
                }
            }
            4 if !b.is_empty() => b.truncate(at.min(b.len() - 1)),
            5 => {
                let n = 1 + rng.below(64);
                let end = (at + n).min(b.len());
                b.drain(at.min(end)..end);
            }
            6 => {
                let n = 1 + rng.below(32);
                let fill = rng.next() as u8;
                let pos = at.min(b.len());
                b.splice(pos..pos, std::iter::repeat(fill).take(n));
            }
            7 if !b.is_empty() => {
                // Copy a chunk over another place.
                let n = 1 + rng.below(64.min(b.len()));
                let src = rng.below(b.len() - n + 1);
                let chunk = b[src..src + n].to_vec();
                let dst = at.min(b.len().saturating_sub(n));
                b[dst..dst + n].copy_from_slice(&chunk);
            }
            8 if !corpus.is_empty() => {
                // Splice with another corpus entry.
                let other = &corpus[rng.below(corpus.len())];
                let cut_a = at.min(b.len());
                let cut_b = rng.below(other.len() + 1);
                b.truncate(cut_a);
                b.extend_from_slice(&other[cut_b..]);
            }
            9 | 10 => {
                // JSON-aware: replace a number / literal / string token.
                if let Some((s, e)) = json_token(&b, at) {
                    let t = JSON_TOKENS[rng.below(JSON_TOKENS.len())].as_bytes();
                    b.splice(s..e, t.iter().copied());
                }
            }
            _ if !b.is_empty() => {
                let i = at.min(b.len() - 1);
                b[i] = rng.next() as u8;
            }
            _ => b.push(rng.next() as u8),
        }
    }
    b
}

/// The JSON scalar token (number, literal or string) at or after `at`.
fn json_token(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let start = (at..b.len()).find(|&i| b[i] == b'"' || b[i] == b'-' || b[i].is_ascii_digit() || b[i] == b't' || b[i] == b'f' || b[i] == b'n')?;
    if b[start] == b'"' {
        let mut i = start + 1;
        while i < b.len() && b[i] != b'"' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        return Some((start, (i + 1).min(b.len())));
    }
    let end = (start..b.len()).find(|&i| !(b[i].is_ascii_alphanumeric() || b".-+".contains(&b[i]))).unwrap_or(b.len());
    Some((start, end))
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x100000001b3))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: fuzz_loop TARGET SECONDS [RNG_SEED] | fuzz_loop TARGET repro FILE...";
    let target = args.first().expect(usage).clone();
    if !attnscope_fuzz::TARGETS.contains(&target.as_str()) {
        eprintln!("unknown target {target}; targets: {:?}", attnscope_fuzz::TARGETS);
        std::process::exit(2);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let artifacts = root.join("artifacts").join(&target);
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let panics = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let panics = panics.clone();
        std::panic::set_hook(Box::new(move |info| {
            let loc = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
            let msg = info.payload().downcast_ref::<&str>().map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned()).unwrap_or_default();
            *panics.lock().unwrap() = format!("{msg} at {loc}");
        }));
    }
    let run_one = |data: &[u8]| -> Result<String, String> {
        std::panic::catch_unwind(|| attnscope_fuzz::run_target(&target, data).unwrap())
            .map_err(|_| panics.lock().unwrap().clone())
    };

    if args.get(1).map(String::as_str) == Some("repro") {
        let mut failed = false;
        for f in &args[2..] {
            let data = std::fs::read(f).expect("read input");
            match run_one(&data) {
                Ok(o) => println!("{f}: {o}"),
                Err(p) => {
                    println!("{f}: PANIC {p}");
                    failed = true;
                }
            }
        }
        std::fs::remove_dir_all(attnscope_fuzz::work()).ok();
        std::process::exit(failed as i32);
    }

    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).expect(usage);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0x5EED_0000_0007);
    let mut rng = Rng(seed | 1);
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    for dir in [root.join("seeds").join(&target), root.join("corpus").join(&target)] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
        files.sort();
        corpus.extend(files.iter().filter_map(|p| std::fs::read(p).ok()));
    }
    assert!(!corpus.is_empty(), "no seeds in fuzz/seeds/{target}");
    let n_seeds = corpus.len();
    let mut seen: HashSet<String> = HashSet::new();
    let mut crashes: HashSet<String> = HashSet::new();
    let mut crash_counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for c in corpus.clone() {
        match run_one(&c) {
            Ok(o) => {
                seen.insert(o);
            }
            Err(p) => eprintln!("seed panics: {p}"),
        }
    }
    let new_corpus = root.join("corpus").join(&target);
    std::fs::create_dir_all(&new_corpus).ok();
    let save_every = std::env::var("FUZZ_SAVE_EVERY").is_ok_and(|v| v == "1");
    let (start, end) = (Instant::now(), Instant::now() + Duration::from_secs(secs));
    let (mut iters, mut last_report) = (0u64, Instant::now());
    while Instant::now() < end {
        // Half the time a seed, half the time anything in the corpus.
        let parent = &corpus[if rng.below(2) == 0 { rng.below(n_seeds) } else { rng.below(corpus.len()) }];
        let input = mutate(&mut rng, parent, &corpus);
        if save_every || iters % 256 == 0 {
            std::fs::write(artifacts.join("last-input"), &input).ok();
        }
        let t0 = Instant::now();
        let result = run_one(&input);
        let took = t0.elapsed();
        iters += 1;
        match result {
            Ok(outcome) => {
                if took > Duration::from_secs(1) {
                    std::fs::write(artifacts.join(format!("slow-{:016x}", fnv(&input))), &input).ok();
                    eprintln!("SLOW {:.1}s: {outcome}", took.as_secs_f64());
                }
                if seen.insert(outcome) && corpus.len() < 2000 {
                    std::fs::write(new_corpus.join(format!("{:016x}", fnv(&input))), &input).ok();
                    corpus.push(input);
                }
            }
            Err(p) => {
                // One kind = one panic message with the numbers removed; the
                // first 8 inputs of each kind are kept.
                let key: String = p.chars().filter(|c| !c.is_ascii_digit()).collect();
                let path = artifacts.join(format!("crash-{:016x}", fnv(&input)));
                let seen_kind = crash_counts.entry(key.clone()).or_insert(0usize);
                *seen_kind += 1;
                if *seen_kind <= 8 {
                    std::fs::write(&path, &input).ok();
                }
                if crashes.insert(key) {
                    eprintln!("CRASH (new): {p}\n  input: {}", path.display());
                }
            }
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            last_report = Instant::now();
            eprintln!("{target}: {:.0}s {} execs ({:.0}/s), corpus {}, outcomes {}, crash kinds {}",
                start.elapsed().as_secs_f64(), iters, iters as f64 / start.elapsed().as_secs_f64(), corpus.len(), seen.len(), crashes.len());
        }
    }
    println!("{target}: done: {:.0}s, {iters} execs, corpus {}, outcomes {}, crash kinds {}", start.elapsed().as_secs_f64(), corpus.len(), seen.len(), crashes.len());
    std::fs::remove_dir_all(attnscope_fuzz::work()).ok();
    std::process::exit(if crashes.is_empty() { 0 } else { 1 });
}
