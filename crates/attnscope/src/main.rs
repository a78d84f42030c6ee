//! attnscope: the command-line tool. A thin binary over the attnscope
//! library (`src/lib.rs`), itself over the `models` and `field` crates.
//! Exit codes: 0 success, 1 a check failed (--dense-check), 2 any
//! user-facing error (one clear line on stderr, argument errors included),
//! 3 the mechanism invariants failed for some head (one warning line; the
//! report is written). Never a panic.

use attnscope::{cli, oneline, CheckFailed, InvariantsFailed};
use clap::error::ErrorKind;
use clap::Parser;

fn main() {
    attnscope::tune_process();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match e.kind() {
            // --help / --version print as clap prints them, to stdout, exit 0.
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => e.exit(),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
                eprintln!(
                    "attnscope: error: no subcommand given: analyze, compress, train, monitor or monitor-eval (see attnscope --help)"
                );
                std::process::exit(2);
            }
            _ => {
                eprintln!("attnscope: error: {}", oneline::clap_error(&e.to_string()));
                std::process::exit(2);
            }
        },
    };
    if let Err(err) = cli.command.run() {
        let msg = oneline::chain(err.chain().map(|e| e.to_string()));
        if err.downcast_ref::<InvariantsFailed>().is_some() {
            eprintln!("attnscope: warning: {msg}");
            std::process::exit(3);
        }
        let code = if err.downcast_ref::<CheckFailed>().is_some() { 1 } else { 2 };
        eprintln!("attnscope: error: {msg}");
        std::process::exit(code);
    }
}
