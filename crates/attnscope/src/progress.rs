//! Progress bars on stderr: shown only on a terminal and without --quiet.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    enabled: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Self { enabled: !quiet && std::io::stderr().is_terminal() }
    }

    /// A bar of `len` steps with a label; hidden when progress is off.
    pub fn bar(&self, len: u64, label: &str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::new(len);
        let style = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        pb.set_style(style);
        pb.set_prefix(label.to_string());
        pb
    }

    /// A spinner for steps of unknown length (loading, tokenizing).
    pub fn spinner(&self, label: &str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::new_spinner();
        pb.set_message(label.to_string());
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        pb
    }
}
