//! Helpers shared by the command-line tests: a fresh scratch directory and
//! the built `attnscope` binary.
#![allow(dead_code)] // each test file uses a subset

use std::path::PathBuf;
use std::process::{Command, Output};

/// An empty directory `attnscope-<test file>-<name>-<pid>` under the system
/// temp dir (removed first if a previous run left it). The test file is the
/// caller's: all test files share one process (one test binary), so two files
/// may use the same `name` at the same time.
#[track_caller]
pub fn tempdir(name: &str) -> PathBuf {
    let file =
        std::path::Path::new(std::panic::Location::caller().file()).file_stem().and_then(|s| s.to_str()).unwrap_or("test").to_owned();
    let d = std::env::temp_dir().join(format!("attnscope-{file}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The `attnscope` binary built for these tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_attnscope"))
}

/// Runs `attnscope ARGS` to completion.
pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("runs the binary")
}

/// A deterministic, learnable text of about 24 KB (words of a small
/// vocabulary drawn by an LCG), written to `dir/text.txt`: training input
/// for the train / monitor tests.
pub fn learnable_text(dir: &std::path::Path) -> PathBuf {
    let words = ["the", "king", "and", "queen", "of", "a", "castle", "said", "to", "her", "his", "good", "lord", "night", "day"];
    let mut s = String::new();
    let mut x: u64 = 7;
    while s.len() < 24_000 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        s.push_str(words[(x >> 33) as usize % words.len()]);
        s.push(if (x >> 20).is_multiple_of(9) { '\n' } else { ' ' });
    }
    let p = dir.join("text.txt");
    std::fs::write(&p, s).unwrap();
    p
}
