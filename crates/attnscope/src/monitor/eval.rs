//! `attnscope monitor-eval`: the monitor's false-alarm and fault-localisation
//! study (docs/monitor.md). Trains healthy runs (families × seeds) and fault
//! runs (families × faults × fault seeds) with `attnscope train` as child
//! processes, keeps every run's observation series (OUT/runs/NAME/monitor/
//! monitor.jsonl), and scores them with the rules given on the command line
//! (re-scoring saved series needs no training: `--rescore`). Writes
//! OUT/eval.json, OUT/runs.csv and OUT/eval.md.
//!
//! Scoring: a healthy run's alerts are false alarms (per run, and per 1,000
//! head-observations). A fault at step `a` is scored over the observations
//! at steps a ..= a + window: the flagged heads are those with any alert
//! there; recall = |flagged ∩ hit| / |hit|, precision = |flagged ∩ hit| /
//! |flagged| (heads hit: OUT/runs/NAME/fault.json); the delay is the first
//! alert's step − a (on a hit head for head faults, on any head otherwise);
//! the validation-loss change at detection is val_loss at that step (eval
//! at every monitor observation) minus the last val_loss before the fault,
//! and minus the healthy run's (same seed) val_loss at the same step.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};

use super::{Alert, HeadPoint, Monitor, Rules};
use crate::train::faults::FaultKind;

/// What `monitor-eval` runs (its flags, parsed).
#[derive(Debug, Clone)]
pub struct MonitorEvalOptions {
    /// Training text (tinyshakespeare for the study in docs/monitor.md).
    pub text: PathBuf,
    pub out: PathBuf,
    /// Families (comma-separated).
    pub families: Vec<String>,
    /// Seeds of the healthy runs (comma-separated; empty: none).
    pub seeds: Vec<u64>,
    /// Seeds of the fault runs.
    pub fault_seeds: Vec<u64>,
    /// Faults (comma-separated: collapse, reset, key, data, lr-spike; `none`: no fault runs).
    pub faults: Vec<String>,
    /// More fault runs: (faults, seeds) pairs, each run on every family, besides faults × fault_seeds.
    pub fault_sets: Vec<(Vec<String>, Vec<u64>)>,
    /// Training steps (the learning-rate schedule of every run).
    pub steps: u64,
    /// Step of every fault.
    pub fault_at: u64,
    /// Scoring window after the fault, in steps.
    pub window: u64,
    /// Monitor (and validation) every N steps.
    pub monitor_every: u64,
    /// Training runs at a time (each on one thread).
    pub jobs: usize,
    /// Only score the runs already in OUT/runs (no training).
    pub rescore: bool,
    /// An extra argument for every `attnscope train` run (repeat), e.g. --train-arg=--d-model --train-arg=32.
    pub train_arg: Vec<String>,
    pub rules: Rules,
}

/// One planned training run.
struct Plan {
    name: String,
    family: String,
    seed: u64,
    fault: Option<FaultKind>,
}

/// Healthy runs (families × seeds), then for each fault set (faults × seeds; the first is
/// --faults × --fault-seeds) its runs on every family; a run planned twice is planned once.
fn plan(args: &MonitorEvalOptions, fault_sets: &[(Vec<FaultKind>, Vec<u64>)]) -> Vec<Plan> {
    let mut v = Vec::new();
    for f in &args.families {
        for &s in &args.seeds {
            v.push(Plan { name: format!("{f}-s{s}-healthy"), family: f.clone(), seed: s, fault: None });
        }
    }
    for (faults, seeds) in fault_sets {
        for &k in faults {
            for f in &args.families {
                for &s in seeds {
                    let name = format!("{f}-s{s}-{}", k.name());
                    if !v.iter().any(|p: &Plan| p.name == name) {
                        v.push(Plan { name, family: f.clone(), seed: s, fault: Some(k) });
                    }
                }
            }
        }
    }
    v
}

fn train_command(args: &MonitorEvalOptions, p: &Plan, dir: &Path) -> Result<Command> {
    let exe = std::env::current_exe().context("cannot find the attnscope executable")?;
    let mut c = Command::new(exe);
    let text = args.text.to_str().context("--text is not UTF-8")?;
    let dir_s = dir.to_str().context("--out is not UTF-8")?;
    let (steps, seed, every) = (args.steps.to_string(), p.seed.to_string(), args.monitor_every.to_string());
    c.args(["train", "--family", &p.family, "--text", text, "--steps", &steps, "--seed", &seed]);
    c.args(["--eval-every", &every, "--monitor-every", &every, "--quiet", "--out", dir_s]);
    if let Some(k) = p.fault {
        let stop = (args.fault_at + args.window + args.monitor_every).min(args.steps);
        c.args(["--fault", &format!("{}@{}", k.name(), args.fault_at), "--stop-at", &stop.to_string()]);
    }
    c.args(&args.train_arg);
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        c.env("RAYON_NUM_THREADS", "1");
    }
    Ok(c)
}

/// Trains the runs that have no summary.json yet, `jobs` at a time.
fn train_all(args: &MonitorEvalOptions, plans: &[Plan]) -> Result<()> {
    let runs = args.out.join("runs");
    std::fs::create_dir_all(&runs).with_context(|| format!("cannot create {}", runs.display()))?;
    let todo: Vec<&Plan> = plans.iter().filter(|p| !runs.join(&p.name).join("summary.json").is_file()).collect();
    eprintln!("attnscope monitor-eval: {} runs planned, {} to train", plans.len(), todo.len());
    let mut running: Vec<(String, PathBuf, Child)> = Vec::new();
    let mut queue = todo.into_iter();
    loop {
        while running.len() < args.jobs.max(1) {
            let Some(p) = queue.next() else { break };
            let dir = runs.join(&p.name);
            let log = runs.join(format!("{}.log", p.name));
            let f = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
            let child = train_command(args, p, &dir)?.stdout(Stdio::null()).stderr(f).spawn().context("cannot start attnscope train")?;
            eprintln!("attnscope monitor-eval: training {}", p.name);
            running.push((p.name.clone(), log, child));
        }
        if running.is_empty() {
            return Ok(());
        }
        // Wait for any child to finish.
        let mut done = None;
        while done.is_none() {
            for (i, (_, _, c)) in running.iter_mut().enumerate() {
                if let Some(st) = c.try_wait()? {
                    done = Some((i, st));
                    break;
                }
            }
            if done.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
        let (i, st) = done.context("no child")?;
        let (name, log, _) = running.remove(i);
        if !st.success() {
            for (_, _, c) in running.iter_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
            let last = std::fs::read_to_string(&log).unwrap_or_default().lines().rfind(|l| !l.trim().is_empty()).unwrap_or("").to_string();
            bail!("training run {name} failed: {last} (log: {})", log.display());
        }
    }
}

/// A run's observation series, grouped by step.
fn read_series(path: &Path) -> Result<Vec<Vec<HeadPoint>>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut by_step: BTreeMap<u64, Vec<HeadPoint>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let p: HeadPoint =
            serde_json::from_str(line).with_context(|| format!("{} line {}: not a monitor record", path.display(), i + 1))?;
        by_step.entry(p.step).or_default().push(p);
    }
    Ok(by_step
        .into_values()
        .map(|mut v| {
            v.sort_by_key(|p| (p.layer, p.head));
            v
        })
        .collect())
}

/// val_loss by step from train.jsonl.
fn read_val(path: &Path) -> Result<BTreeMap<u64, f64>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut m = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).with_context(|| format!("{}: not JSON", path.display()))?;
        if let (Some(s), Some(l)) = (v["step"].as_u64(), v["val_loss"].as_f64()) {
            m.insert(s, l);
        }
    }
    Ok(m)
}

/// The rules applied to one saved series.
pub fn score_series(series: Vec<Vec<HeadPoint>>, rules: &Rules) -> Result<(Vec<Alert>, usize)> {
    let mut mon = Monitor::new(Vec::new(), rules.clone(), None)?;
    let mut n = 0;
    for obs in series {
        n += obs.len();
        mon.observe_points(obs)?;
    }
    Ok((mon.alerts().to_vec(), n))
}

fn head(l: usize, h: usize) -> String {
    format!("L{l}H{h}")
}

#[derive(Serialize, Clone)]
struct HealthyRow {
    run: String,
    family: String,
    seed: u64,
    head_observations: usize,
    alerts: usize,
    alerted_heads: Vec<String>,
    alert_steps: Vec<u64>,
    /// The alerts, most severe first (at most 20).
    alert_messages: Vec<String>,
}

#[derive(Serialize, Clone)]
struct FaultRow {
    run: String,
    family: String,
    seed: u64,
    fault: String,
    fault_step: u64,
    hit_heads: Vec<String>,
    flagged_heads: Vec<String>,
    recall: Option<f64>,
    precision: Option<f64>,
    detected: bool,
    delay: Option<u64>,
    val_before: Option<f64>,
    val_at_detection: Option<f64>,
    val_change_at_detection: Option<f64>,
    val_change_vs_healthy: Option<f64>,
    val_change_end_of_window: Option<f64>,
    alerts_before_fault: usize,
    alerts_in_window: usize,
    top_alerts: Vec<String>,
}

fn last_at_or_before(m: &BTreeMap<u64, f64>, s: u64) -> Option<f64> {
    m.range(..=s).next_back().map(|(_, v)| *v)
}

fn score_fault(
    args: &MonitorEvalOptions,
    p: &Plan,
    dir: &Path,
    rules: &Rules,
    healthy_val: Option<&BTreeMap<u64, f64>>,
) -> Result<FaultRow> {
    let (alerts, _) = score_series(read_series(&dir.join("monitor/monitor.jsonl"))?, rules)?;
    let rec: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("fault.json")).with_context(|| format!("{}: no fault.json", dir.display()))?,
    )?;
    let at = rec["step"].as_u64().context("fault.json: no step")?;
    let kind = p.fault.context("not a fault run")?;
    let hit: BTreeSet<(usize, usize)> = rec["hit_heads"]
        .as_array()
        .context("fault.json: no hit_heads")?
        .iter()
        .filter_map(|x| Some((x[0].as_u64()? as usize, x[1].as_u64()? as usize)))
        .collect();
    let end = at + args.window;
    let win: Vec<&Alert> = alerts.iter().filter(|a| a.step >= at && a.step <= end).collect();
    let flagged: BTreeSet<(usize, usize)> = win.iter().map(|a| (a.layer, a.head)).collect();
    let tp = flagged.intersection(&hit).count();
    let targeted = kind.targets_heads();
    let det_step = win.iter().filter(|a| !targeted || hit.contains(&(a.layer, a.head))).map(|a| a.step).min();
    let val = read_val(&dir.join("train.jsonl"))?;
    let val_before = at.checked_sub(1).and_then(|s| last_at_or_before(&val, s));
    let val_det = det_step.and_then(|s| last_at_or_before(&val, s));
    let diff = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
    let mut sorted = win.clone();
    sorted.sort_by(|a, b| b.severity.total_cmp(&a.severity));
    Ok(FaultRow {
        run: p.name.clone(),
        family: p.family.clone(),
        seed: p.seed,
        fault: kind.name().into(),
        fault_step: at,
        hit_heads: hit.iter().map(|&(l, h)| head(l, h)).collect(),
        flagged_heads: flagged.iter().map(|&(l, h)| head(l, h)).collect(),
        recall: targeted.then(|| tp as f64 / hit.len().max(1) as f64),
        precision: (targeted && !flagged.is_empty()).then(|| tp as f64 / flagged.len() as f64),
        detected: det_step.is_some(),
        delay: det_step.map(|s| s - at),
        val_before,
        val_at_detection: val_det,
        val_change_at_detection: diff(val_det, val_before),
        val_change_vs_healthy: diff(val_det, det_step.and_then(|s| healthy_val.and_then(|h| h.get(&s).copied()))),
        val_change_end_of_window: diff(last_at_or_before(&val, end), val_before),
        alerts_before_fault: alerts.iter().filter(|a| a.step < at).count(),
        alerts_in_window: win.len(),
        top_alerts: sorted.iter().take(5).map(|a| a.to_string()).collect(),
    })
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.prec$}"))
}

fn markdown(args: &MonitorEvalOptions, rules: &Rules, healthy: &[HealthyRow], faults: &[FaultRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# attnscope monitor-eval\n");
    let _ = writeln!(s, "Rules: {rules:?}\n");
    let more: String = args.fault_sets.iter().map(|(f, seeds)| format!(" + {} on seeds {seeds:?}", f.join(","))).collect();
    let _ = writeln!(s, "Healthy runs: families {:?}, seeds {:?}, {} steps; fault runs: {} on seeds {:?}{more}, fault at step {}, window {} steps; monitor and validation every {} steps.\n", args.families, args.seeds, args.steps, args.faults.join(","), args.fault_seeds, args.fault_at, args.window, args.monitor_every);
    if !healthy.is_empty() {
        let _ = writeln!(s, "## False alarms (healthy runs)\n\n| family | runs | alerts per run | head-observations | alerts per 1,000 head-observations | alerted heads |\n|---|---|---|---|---|---|");
        for f in &args.families {
            let rows: Vec<&HealthyRow> = healthy.iter().filter(|r| &r.family == f).collect();
            let obs: usize = rows.iter().map(|r| r.head_observations).sum();
            let al: usize = rows.iter().map(|r| r.alerts).sum();
            let heads: BTreeSet<String> = rows.iter().flat_map(|r| r.alerted_heads.iter().map(|h| format!("s{} {h}", r.seed))).collect();
            let per: Vec<String> = rows.iter().map(|r| r.alerts.to_string()).collect();
            let _ = writeln!(
                s,
                "| {f} | {} | {} | {obs} | {:.2} | {} |",
                rows.len(),
                per.join(" / "),
                1000.0 * al as f64 / obs.max(1) as f64,
                if heads.is_empty() { "–".into() } else { heads.into_iter().collect::<Vec<_>>().join(", ") }
            );
        }
        let obs: usize = healthy.iter().map(|r| r.head_observations).sum();
        let al: usize = healthy.iter().map(|r| r.alerts).sum();
        let _ =
            writeln!(s, "| **all** | {} | {al} in total | {obs} | **{:.2}** | |\n", healthy.len(), 1000.0 * al as f64 / obs.max(1) as f64);
    }
    if !faults.is_empty() {
        let _ = writeln!(s, "## Faults (window: {} steps from the fault)\n\n| fault | family | seed | heads hit | heads flagged | recall | precision | delay (steps) | val loss before | Δ val at detection | Δ vs healthy | Δ val end of window | alerts before fault |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|", args.window);
        for r in faults {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.fault,
                r.family,
                r.seed,
                if r.fault == "data" || r.fault == "lr-spike" { "(all)".into() } else { r.hit_heads.join(" ") },
                if r.flagged_heads.is_empty() { "–".into() } else { r.flagged_heads.join(" ") },
                opt(r.recall, 2),
                opt(r.precision, 2),
                r.delay.map_or("not detected".into(), |d| d.to_string()),
                opt(r.val_before, 3),
                opt(r.val_change_at_detection, 3),
                opt(r.val_change_vs_healthy, 3),
                opt(r.val_change_end_of_window, 3),
                r.alerts_before_fault
            );
        }
        s.push_str(&pooled(args, faults));
    }
    s
}

/// (min, max) of the finite values, as "a to b" (or "–").
fn range(v: impl Iterator<Item = f64>) -> String {
    let v = crate::stats::sorted_finite(&v.collect::<Vec<_>>());
    match (v.first(), v.last()) {
        (Some(lo), Some(hi)) if lo == hi => format!("{lo:.3}"),
        (Some(lo), Some(hi)) => format!("{lo:.3} to {hi:.3}"),
        _ => "–".into(),
    }
}

/// The fault rows pooled over seeds, per fault × family and per fault over all families:
/// recall = Σ |flagged ∩ hit| / Σ |hit|, precision = Σ |flagged ∩ hit| / Σ |flagged|.
fn pooled(args: &MonitorEvalOptions, faults: &[FaultRow]) -> String {
    let mut s = format!("\n## Faults pooled over seeds (window: {} steps)\n\n| fault | family | seeds | detected | recall (pooled) | precision (pooled) | delay per run (steps) | Δ val at detection | Δ vs healthy |\n|---|---|---|---|---|---|---|---|---|\n", args.window);
    let mut kinds: Vec<&str> = Vec::new();
    for r in faults {
        if !kinds.contains(&r.fault.as_str()) {
            kinds.push(&r.fault);
        }
    }
    for k in kinds {
        let mut groups: Vec<(String, Vec<&FaultRow>)> =
            args.families.iter().map(|f| (f.clone(), faults.iter().filter(|r| r.fault == k && &r.family == f).collect())).collect();
        groups.push(("**all**".into(), faults.iter().filter(|r| r.fault == k).collect()));
        for (fam, rows) in groups.into_iter().filter(|(_, r)| !r.is_empty()) {
            let targeted = rows.iter().all(|r| r.recall.is_some());
            let (mut tp, mut hit, mut fl) = (0usize, 0usize, 0usize);
            for r in &rows {
                tp += r.flagged_heads.iter().filter(|h| r.hit_heads.contains(h)).count();
                hit += r.hit_heads.len();
                fl += r.flagged_heads.len();
            }
            let ratio = |a: usize, b: usize| if targeted && b > 0 { format!("{:.2} ({a}/{b})", a as f64 / b as f64) } else { "–".into() };
            let seeds: Vec<String> = rows.iter().map(|r| r.seed).collect::<BTreeSet<_>>().iter().map(|s| s.to_string()).collect();
            let delays: Vec<String> = rows.iter().map(|r| r.delay.map_or("–".into(), |d| d.to_string())).collect();
            let _ = writeln!(
                s,
                "| {k} | {fam} | {} | {}/{} | {} | {} | {} | {} | {} |",
                seeds.join(","),
                rows.iter().filter(|r| r.detected).count(),
                rows.len(),
                ratio(tp, hit),
                ratio(tp, fl),
                delays.join(" "),
                range(rows.iter().filter_map(|r| r.val_change_at_detection)),
                range(rows.iter().filter_map(|r| r.val_change_vs_healthy)),
            );
        }
    }
    s
}

pub fn run(args: &MonitorEvalOptions) -> Result<()> {
    let rules = args.rules.clone();
    for f in &args.families {
        crate::train::family::parse_family(f)?;
    }
    let faults: Vec<FaultKind> = if args.faults.iter().any(|f| f == "none") {
        Vec::new()
    } else {
        args.faults.iter().map(|f| FaultKind::parse(f)).collect::<Result<_>>().context("--faults")?
    };
    let mut fault_sets = vec![(faults.clone(), args.fault_seeds.clone())];
    for (f, seeds) in &args.fault_sets {
        let kinds = f.iter().map(|f| FaultKind::parse(f)).collect::<Result<Vec<_>>>().context("--fault-set")?;
        fault_sets.push((kinds, seeds.clone()));
    }
    let any_fault = fault_sets.iter().any(|(k, s)| !k.is_empty() && !s.is_empty());
    if args.monitor_every == 0 || args.steps == 0 {
        bail!("--monitor-every and --steps must be ≥ 1");
    }
    if any_fault && (args.fault_at == 0 || args.fault_at >= args.steps) {
        bail!("--fault-at must be in 1..--steps");
    }
    crate::texts::regular_file(&args.text, "text")?;
    let plans = plan(args, &fault_sets);
    if plans.is_empty() {
        bail!("nothing to run: give --seeds or --faults");
    }
    if !args.rescore {
        train_all(args, &plans)?;
    }
    let runs = args.out.join("runs");
    if args.rescore && !runs.is_dir() {
        bail!("--rescore: {} does not exist (no runs to score)", runs.display());
    }
    let mut healthy = Vec::new();
    let mut fault_rows = Vec::new();
    let mut healthy_val: BTreeMap<(String, u64), BTreeMap<u64, f64>> = BTreeMap::new();
    // With --rescore, runs not (yet) finished are listed as missing, not scored.
    let mut missing = Vec::new();
    let finished = |p: &Plan, missing: &mut Vec<String>| -> bool {
        let ok = runs.join(&p.name).join("summary.json").is_file();
        if !ok {
            missing.push(p.name.clone());
        }
        ok
    };
    for p in plans.iter().filter(|p| p.fault.is_none()) {
        let dir = runs.join(&p.name);
        if !finished(p, &mut missing) {
            continue;
        }
        let (alerts, n) = score_series(read_series(&dir.join("monitor/monitor.jsonl"))?, &rules)?;
        healthy_val.insert((p.family.clone(), p.seed), read_val(&dir.join("train.jsonl"))?);
        healthy.push(HealthyRow {
            run: p.name.clone(),
            family: p.family.clone(),
            seed: p.seed,
            head_observations: n,
            alerts: alerts.len(),
            alerted_heads: alerts.iter().map(|a| head(a.layer, a.head)).collect::<BTreeSet<_>>().into_iter().collect(),
            alert_steps: alerts.iter().map(|a| a.step).collect::<BTreeSet<_>>().into_iter().collect(),
            alert_messages: {
                let mut v: Vec<&Alert> = alerts.iter().collect();
                v.sort_by(|a, b| b.severity.total_cmp(&a.severity));
                v.iter().take(20).map(|a| a.to_string()).collect()
            },
        });
    }
    for p in plans.iter().filter(|p| p.fault.is_some()) {
        let dir = runs.join(&p.name);
        if !finished(p, &mut missing) {
            continue;
        }
        // The healthy run of the same family and seed, for the loss comparison (trained if planned).
        let hv = healthy_val
            .get(&(p.family.clone(), p.seed))
            .cloned()
            .or_else(|| read_val(&runs.join(format!("{}-s{}-healthy", p.family, p.seed)).join("train.jsonl")).ok());
        fault_rows.push(score_fault(args, p, &dir, &rules, hv.as_ref())?);
    }
    let obs: usize = healthy.iter().map(|r| r.head_observations).sum();
    let al: usize = healthy.iter().map(|r| r.alerts).sum();
    let doc = json!({
        "rules": format!("{rules:?}"),
        "settings": {"families": args.families, "seeds": args.seeds, "fault_seeds": args.fault_seeds, "faults": faults.iter().map(|k| k.name()).collect::<Vec<_>>(), "fault_sets": args.fault_sets,
                     "steps": args.steps, "fault_at": args.fault_at, "window": args.window, "monitor_every": args.monitor_every, "train_args": args.train_arg},
        "healthy": {"runs": healthy, "alerts": al, "head_observations": obs, "alerts_per_1000_head_observations": 1000.0 * al as f64 / obs.max(1) as f64},
        "faults": fault_rows,
        "missing_runs": missing,
    });
    std::fs::write(args.out.join("eval.json"), serde_json::to_string_pretty(&doc)? + "\n")?;
    let mut csv = String::from("run,family,seed,fault,head_observations,alerts,hit_heads,flagged_heads,recall,precision,delay,val_change_at_detection,val_change_vs_healthy,alerts_before_fault\n");
    for r in &healthy {
        let _ =
            writeln!(csv, "{},{},{},,{},{},,{},,,,,,", r.run, r.family, r.seed, r.head_observations, r.alerts, r.alerted_heads.join(" "));
    }
    for r in &fault_rows {
        let o = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
        let _ = writeln!(
            csv,
            "{},{},{},{},,{},{},{},{},{},{},{},{},{}",
            r.run,
            r.family,
            r.seed,
            r.fault,
            r.alerts_in_window,
            r.hit_heads.join(" "),
            r.flagged_heads.join(" "),
            o(r.recall),
            o(r.precision),
            r.delay.map_or(String::new(), |d| d.to_string()),
            o(r.val_change_at_detection),
            o(r.val_change_vs_healthy),
            r.alerts_before_fault
        );
    }
    std::fs::write(args.out.join("runs.csv"), csv)?;
    let mut md = markdown(args, &rules, &healthy, &fault_rows);
    if !missing.is_empty() {
        let _ = writeln!(md, "\n**Missing (not finished, not scored):** {}", missing.join(", "));
        eprintln!("attnscope monitor-eval: warning: {} planned runs are not finished and were not scored", missing.len());
    }
    std::fs::write(args.out.join("eval.md"), &md)?;
    println!("{md}");
    eprintln!(
        "attnscope monitor-eval: {} healthy runs ({al} alerts in {obs} head-observations), {} fault runs; wrote {}",
        healthy.len(),
        fault_rows.len(),
        args.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_value_at_or_before() {
        let m: BTreeMap<u64, f64> = [(10, 1.0), (20, 2.0)].into_iter().collect();
        assert_eq!(last_at_or_before(&m, 19), Some(1.0));
        assert_eq!(last_at_or_before(&m, 20), Some(2.0));
        assert_eq!(last_at_or_before(&m, 5), None);
    }
}
