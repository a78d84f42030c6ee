//! report.html in a real headless Chromium (Debian `chromium` and
//! `chromium-driver`), driven through chromedriver's W3C WebDriver HTTP API
//! with a few lines of HTTP/1.1 over std::net (no browser crate).
//!
//! Opens `report.html#head=L3H2` of a stories260K report, checks that the
//! head panel shows L3H2's values from report.json with at least 3 plots,
//! clicks another head in a heat map and checks that the panel follows.
//! Skips with a message when Chromium is missing, except under `CI=true`.

use crate::common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{run, tempdir};
use serde_json::{json, Value};

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().flat_map(|n| std::env::split_paths(&path).map(move |d| d.join(n))).find(|p| p.is_file())
}

/// One HTTP/1.1 request to chromedriver; the JSON body of the answer.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connects to chromedriver");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Read the head, then exactly Content-Length bytes or chunks up to the
    // last one (chromedriver may keep the connection open).
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let done = |raw: &[u8]| -> Option<Vec<u8>> {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let rest = &raw[split + 4..];
        if let Some(len) = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok()) {
            return (rest.len() >= len).then(|| rest[..len].to_vec());
        }
        if !head.contains("transfer-encoding: chunked") {
            return None;
        }
        let (mut out, mut at) = (Vec::new(), 0);
        loop {
            let eol = rest[at..].windows(2).position(|w| w == b"\r\n")?;
            let len = usize::from_str_radix(String::from_utf8_lossy(&rest[at..at + eol]).trim(), 16).ok()?;
            if len == 0 {
                return Some(out);
            }
            let start = at + eol + 2;
            if rest.len() < start + len + 2 {
                return None;
            }
            out.extend_from_slice(&rest[start..start + len]);
            at = start + len + 2;
        }
    };
    let body = loop {
        if let Some(body) = done(&raw) {
            break body;
        }
        let k = s.read(&mut buf).expect("reads the answer");
        assert!(k > 0, "{method} {path}: connection closed early: {}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..k]);
    };
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {}", String::from_utf8_lossy(&body)))
}

/// A chromedriver process with one Chromium session; both end on drop.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
    profile: PathBuf,
}

impl Browser {
    fn start(chromium: &Path, chromedriver: &Path, profile: PathBuf) -> Browser {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts chromedriver");
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(30), "chromedriver did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.to_str().unwrap(), "args": args}}}});
        let mut browser = Browser { driver, port, session: String::new(), profile };
        let answer = http(port, "POST", "/session", Some(&caps));
        browser.session = answer["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}")).to_string();
        browser
    }

    fn cmd(&self, method: &str, what: &str, body: Option<&Value>) -> Value {
        let v = http(self.port, method, &format!("/session/{}/{what}", self.session), body);
        assert!(v["value"].get("error").is_none(), "{what}: {v}");
        v["value"].clone()
    }

    fn js(&self, script: &str) -> Value {
        self.cmd("POST", "execute/sync", Some(&json!({"script": script, "args": []})))
    }

    /// Polls `script` until it returns true (10 s).
    fn wait_for(&self, script: &str) {
        let t0 = Instant::now();
        while self.js(script) != json!(true) {
            assert!(t0.elapsed() < Duration::from_secs(10), "timed out waiting for: {script}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn click(&self, css: &str) {
        let el = self.cmd("POST", "element", Some(&json!({"using": "css selector", "value": css})));
        let id = el.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("an element id").to_string();
        self.cmd("POST", &format!("element/{id}/click"), Some(&json!({})));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = std::panic::catch_unwind(|| http(self.port, "DELETE", &format!("/session/{}", self.session), None));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The panel's state, read from the page.
const PANEL: &str = "const p = document.getElementById('head-panel');
  const v = (m) => { const td = p.querySelector('td[data-measure=\"' + m + '\"]'); return td ? td.dataset.value : null; };
  return {hidden: p.hidden, layer: p.dataset.layer, head: p.dataset.head, run: p.dataset.run, title: (p.querySelector('h2') || {}).textContent,
    plots: p.querySelectorAll('svg.plot').length, k90: v('k90'), k90_gap: v('k90_gap'), pr: v('participation_ratio'),
    hash: location.hash, selected: document.querySelectorAll('svg.heatmap rect.sel').length};";

/// Checks the panel against report.json's record of (layer, head) in the panel's run.
fn check_panel(state: &Value, report: &Value, layer: u64, head: u64) {
    assert_eq!(state["hidden"], false, "{state}");
    assert_eq!((state["layer"].as_str(), state["head"].as_str()), (Some(&*layer.to_string()), Some(&*head.to_string())), "{state}");
    assert_eq!(state["title"].as_str(), Some(&*format!("Head L{layer}H{head}")));
    assert!(state["plots"].as_u64().unwrap() >= 3, "at least 3 plots: {state}");
    let run: usize = state["run"].as_str().unwrap().parse().unwrap();
    let rec = report["runs"][run]["heads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["layer"] == layer && h["head"] == head)
        .expect("the head in report.json");
    assert_eq!(state["k90"].as_str().unwrap(), rec["k90"].to_string(), "{state}");
    let pr: f64 = state["pr"].as_str().unwrap().parse().unwrap();
    let want = rec["participation_ratio"].as_f64().unwrap();
    assert!((pr - want).abs() <= 1e-6 * want.abs(), "participation_ratio {pr} vs {want}");
    let gap: f64 = state["k90_gap"].as_str().unwrap().parse().unwrap();
    assert!((gap - rec["k90_gap"].as_f64().unwrap()).abs() < 1e-6, "k90_gap {gap} vs {}", rec["k90_gap"]);
}

#[test]
fn report_opens_head_from_fragment_and_follows_clicks_in_chromium() {
    let dir = testdata::stories_dir();
    let (chromium, driver) = (which(&["chromium", "chromium-browser"]), which(&["chromedriver"]));
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: chromium and chromedriver are required (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipping the browser test: chromium / chromedriver not found (apt-get install chromium chromium-driver)");
        return;
    };
    let out = tempdir("browser");
    let text = testdata::shared_root().join("texts/tinyshakespeare.txt");
    let (model, tok) = (dir.join("stories260K.bin"), dir.join("tok512.bin"));
    let o = run(&[
        "analyze",
        "--model",
        model.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
        "--text",
        text.to_str().unwrap(),
        "--ctx",
        "64,128",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let page = out.join("report.html");

    let browser = Browser::start(&chromium, &driver, out.join("profile"));
    browser.cmd("POST", "url", Some(&json!({"url": format!("file://{}#head=L3H2", page.display())})));
    browser.wait_for("return document.body.dataset.ready === '1';");
    let state = browser.js(PANEL);
    check_panel(&state, &report, 3, 2);
    assert_eq!(state["selected"], 3, "every heat map marks the head: {state}");
    // Every heat map has its colour scale and both selectors.
    let maps = browser
        .js("return ['svg.heatmap rect.legend', 'select.hm-measure', 'select.hm-run'].map((s) => document.querySelectorAll(s).length);");
    assert_eq!(maps, json!([3, 3, 3]));
    // The panel's plots: spectra, E tile, key energy, scatter.
    let kinds = browser.js("return Array.from(document.querySelectorAll('#head-panel figcaption')).map((f) => f.textContent);");
    for want in ["Singular spectra", "Energy field E", "Key energy", "Delocalization"] {
        assert!(kinds.as_array().unwrap().iter().any(|k| k.as_str().unwrap().starts_with(want)), "no `{want}` plot: {kinds}");
    }

    // Click another head: the panel follows, and so does the URL.
    browser.click("figure.heatmap-figure rect.cell[data-layer='1'][data-head='5']");
    browser.wait_for("return document.getElementById('head-panel').dataset.layer === '1';");
    let state = browser.js(PANEL);
    check_panel(&state, &report, 1, 5);
    assert_eq!(state["hash"], "#head=L1H5");

    // The measure selector recolours a map and its hover text names the measure.
    let tip = browser.js(
        "const s = document.querySelector('select.hm-measure'); s.value = String(Array.from(s.options).findIndex((o) => o.text === 'k90_gap'));
         s.dispatchEvent(new Event('change'));
         return document.querySelector('figure.heatmap-figure rect.cell[data-layer=\"1\"][data-head=\"5\"]').getAttribute('data-tip');",
    );
    assert!(tip.as_str().unwrap().starts_with("layer 1 · head 5 · k90_gap = "), "{tip}");
    drop(browser);
    std::fs::remove_dir_all(&out).ok();
}
