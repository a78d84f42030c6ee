//! attnscope: the command-line tool. A thin binary over the attnscope
//! library (`src/lib.rs`), itself over the `models` and `field` crates.
//! Exit codes: 0 success, 1 a check failed (--dense-check), 2 any
//! user-facing error (one clear line on stderr). Never a panic.

use attnscope::{analyze, cli, compress, monitor, train, CheckFailed};
use clap::Parser;

fn main() {
    attnscope::tune_process();
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Analyze(args) => analyze::run(&args),
        cli::Command::Compress(args) => compress::run(&args),
        cli::Command::Train(args) => train::run(&args),
        cli::Command::Monitor(args) => monitor::run(&args),
    };
    if let Err(err) = result {
        let code = if err.downcast_ref::<CheckFailed>().is_some() { 1 } else { 2 };
        // One line: the context chain joined.
        let msg = err.chain().map(|e| e.to_string()).collect::<Vec<_>>().join(": ");
        eprintln!("attnscope: error: {msg}");
        std::process::exit(code);
    }
}
