//! `attnscope monitor-eval` flags.

use std::path::PathBuf;

use clap::Args;

use super::rules::RuleArgs;
use crate::monitor::eval::MonitorEvalOptions;

pub(super) const ABOUT: &str = "Run the monitor's study: false alarms on healthy training runs, and recall, precision,
delay and validation-loss change for injected faults (docs/monitor.md).

Trains OUT/runs/FAMILY-sSEED-healthy for every --families × --seeds (--steps steps) and
OUT/runs/FAMILY-sSEED-FAULT for every --families × --faults × --fault-seeds (fault at
--fault-at, stopped --window + --monitor-every steps later), with `attnscope train` as child
processes (--jobs at a time, one thread each); a run whose summary.json exists is kept.
Then scores every run's saved monitor series with the rules given here and writes
OUT/eval.json, OUT/runs.csv and OUT/eval.md. --rescore only scores (no training).";

#[derive(Args, Debug, Clone)]
pub struct MonitorEvalArgs {
    /// Training text (tinyshakespeare for the study in docs/monitor.md).
    #[arg(long)]
    pub text: PathBuf,
    #[arg(long, default_value = "out/monitor-eval")]
    pub out: PathBuf,
    /// Families (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = vec!["gpt2".to_string(), "gpt_neox".to_string(), "llama".to_string()])]
    pub families: Vec<String>,
    /// Seeds of the healthy runs (comma-separated; `''` or `none`: no healthy runs).
    #[arg(long, value_delimiter = ',', default_values_t = vec!["1".to_string(), "2".to_string(), "3".to_string(), "4".to_string(), "5".to_string()])]
    pub seeds: Vec<String>,
    /// Seeds of the fault runs (`''` or `none`: no fault runs).
    #[arg(long, value_delimiter = ',', default_values_t = vec!["1".to_string()])]
    pub fault_seeds: Vec<String>,
    /// Faults (comma-separated: collapse, reset, key, data, lr-spike; `none`: no fault runs).
    #[arg(long, value_delimiter = ',', default_values_t = vec!["collapse".to_string(), "reset".to_string(), "key".to_string(), "data".to_string(), "lr-spike".to_string()])]
    pub faults: Vec<String>,
    /// More fault runs (repeat): FAULTS:SEEDS, e.g. `key,data:2,3,4,5` adds those faults on
    /// those seeds (every family) to --faults × --fault-seeds.
    #[arg(long, value_name = "FAULTS:SEEDS")]
    pub fault_set: Vec<String>,
    /// Training steps (the learning-rate schedule of every run).
    #[arg(long, default_value_t = 600)]
    pub steps: u64,
    /// Step of every fault.
    #[arg(long, default_value_t = 300)]
    pub fault_at: u64,
    /// Scoring window after the fault, in steps.
    #[arg(long, default_value_t = 50)]
    pub window: u64,
    /// Monitor (and validation) every N steps.
    #[arg(long, default_value_t = 10)]
    pub monitor_every: u64,
    /// Training runs at a time (each on one thread).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Only score the runs already in OUT/runs (no training).
    #[arg(long)]
    pub rescore: bool,
    /// An extra argument for every `attnscope train` run (repeat), e.g. --train-arg=--d-model --train-arg=32.
    #[arg(long, allow_hyphen_values = true)]
    pub train_arg: Vec<String>,
    #[command(flatten)]
    pub rules: RuleArgs,
}

impl MonitorEvalArgs {
    pub fn options(&self) -> anyhow::Result<MonitorEvalOptions> {
        Ok(MonitorEvalOptions {
            text: self.text.clone(),
            out: self.out.clone(),
            families: self.families.clone(),
            seeds: parse_seeds(&self.seeds, "--seeds")?,
            fault_seeds: parse_seeds(&self.fault_seeds, "--fault-seeds")?,
            faults: self.faults.clone(),
            fault_sets: self.fault_set.iter().map(|s| parse_fault_set(s)).collect::<anyhow::Result<_>>()?,
            steps: self.steps,
            fault_at: self.fault_at,
            window: self.window,
            monitor_every: self.monitor_every,
            jobs: self.jobs,
            rescore: self.rescore,
            train_arg: self.train_arg.clone(),
            rules: self.rules.rules()?,
        })
    }
}

/// Seeds from a comma-separated list; empty pieces and `none` are no seed.
fn parse_seeds(v: &[String], flag: &str) -> anyhow::Result<Vec<u64>> {
    v.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty() && *s != "none")
        .map(|s| s.parse::<u64>().map_err(|_| anyhow::anyhow!("{flag}: `{s}` is not a seed (a whole number ≥ 0)")))
        .collect()
}

/// `FAULTS:SEEDS` (`key,data:2,3,4,5`): the faults (names checked when the study runs) and seeds.
fn parse_fault_set(s: &str) -> anyhow::Result<(Vec<String>, Vec<u64>)> {
    let (f, seeds) = s.split_once(':').ok_or_else(|| anyhow::anyhow!("--fault-set: `{s}` is not FAULTS:SEEDS (e.g. key,data:2,3,4,5)"))?;
    let faults: Vec<String> = f.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect();
    let seeds = parse_seeds(&seeds.split(',').map(str::to_string).collect::<Vec<_>>(), "--fault-set")?;
    if faults.is_empty() || seeds.is_empty() {
        anyhow::bail!("--fault-set: `{s}` names no fault or no seed (FAULTS:SEEDS, e.g. key,data:2,3,4,5)");
    }
    Ok((faults, seeds))
}

#[cfg(test)]
mod tests {
    use super::{parse_fault_set, parse_seeds};

    #[test]
    fn fault_sets_name_faults_and_seeds() {
        assert_eq!(parse_fault_set("key,data:2,3").unwrap(), (vec!["key".to_string(), "data".to_string()], vec![2, 3]));
        for bad in ["key", "key:", ":2", "key:x"] {
            assert!(parse_fault_set(bad).unwrap_err().to_string().starts_with("--fault-set"), "{bad}");
        }
    }

    #[test]
    fn seeds_may_be_empty() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_seeds(&v(&[""]), "--seeds").unwrap(), Vec::<u64>::new());
        assert_eq!(parse_seeds(&v(&["none"]), "--seeds").unwrap(), Vec::<u64>::new());
        assert_eq!(parse_seeds(&v(&["101", "2"]), "--seeds").unwrap(), vec![101, 2]);
        assert!(parse_seeds(&v(&["x"]), "--seeds").unwrap_err().to_string().contains("`x` is not a seed"));
    }
}
