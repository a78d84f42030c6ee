//! Hub ids resolved offline from a pre-filled HF cache (no network here):
//! the tiny llama fixture is laid out as
//! `models--attnscope-test--tiny-llama/{refs/main, snapshots/<rev>/*, blobs/*}`
//! with snapshot files symlinked to blobs, as huggingface_hub writes it.

use std::path::{Path, PathBuf};

use models::{hub, Checkpoint, Format};

const REPO: &str = "attnscope-test/tiny-llama";
const REV: &str = "0123456789abcdef0123456789abcdef01234567";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny/llama")
}

/// A fresh cache dir holding REPO at REV.
fn filled_cache(tag: &str) -> PathBuf {
    let cache = std::env::temp_dir().join(format!("attnscope-hub-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let repo = cache.join("models--attnscope-test--tiny-llama");
    let snap = repo.join("snapshots").join(REV);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), format!("{REV}\n")).unwrap();
    for (i, f) in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"].iter().enumerate() {
        let blob = repo.join("blobs").join(format!("blob{i}"));
        std::fs::copy(fixture().join(f), &blob).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(Path::new("../../blobs").join(format!("blob{i}")), snap.join(f)).unwrap();
        #[cfg(not(unix))]
        std::fs::copy(&blob, snap.join(f)).unwrap();
    }
    cache
}

#[test]
fn offline_resolution_from_filled_cache() {
    let cache = filled_cache("resolve");
    let snap = hub::resolve_in(REPO, &cache, true).unwrap();
    assert!(snap.ends_with(REV));
    let c = Checkpoint::open(snap.to_str().unwrap(), None).unwrap();
    assert_eq!(c.format, Format::HfDir);
    assert_eq!(c.config["model_type"], "llama");
    assert!(c.tensors.get("lm_head.weight").is_ok());
    let ids = c.tokenizer.unwrap().encode("Before we").unwrap();
    assert_eq!(ids[0], 1);
    let _ = std::fs::remove_dir_all(cache);
}

/// Set in the child process that [`hub_id_through_checkpoint_open_with_env`]
/// starts: that child runs the test's body with `HF_HUB_*` set.
const HUB_ENV_CHILD: &str = "ATTNSCOPE_TEST_HUB_ENV_CHILD";

#[test]
fn hub_id_through_checkpoint_open_with_env() {
    // The environment is process-wide and the tests of this binary run on
    // parallel threads, so the variables are never set here: this test runs
    // itself again as a child process (the same test binary, filtered to this
    // test) with the variables given to the child only.
    if std::env::var_os(HUB_ENV_CHILD).is_none() {
        let cache = filled_cache("env");
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "loaders_hub::hub_id_through_checkpoint_open_with_env", "--include-ignored", "--test-threads=1"])
            .env(HUB_ENV_CHILD, "1")
            .env("HF_HUB_CACHE", &cache)
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&cache);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child test run failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let cache = std::env::var_os("HF_HUB_CACHE").unwrap();
    assert!(Path::new(&cache).is_dir());
    let c = Checkpoint::open(REPO, None).unwrap();
    assert_eq!(c.format, Format::HfDir);
    assert_eq!(c.source, REPO);
    assert!(c.path.ends_with(REV));
    let e = Checkpoint::open("attnscope-test/not-cached", None).err().unwrap();
    assert!(e.to_string().contains("attnscope-test/not-cached"), "{e}");
}

#[test]
fn missing_and_malformed_cache_entries_are_errors() {
    let cache = filled_cache("bad");
    assert!(hub::resolve_in("nobody/nothing", &cache, true).is_err());
    assert!(hub::resolve_in("not a repo id", &cache, true).is_err());
    let refs = cache.join("models--attnscope-test--tiny-llama/refs/main");
    std::fs::write(&refs, "../../etc").unwrap();
    let e = hub::resolve_in(REPO, &cache, true).unwrap_err();
    assert!(e.to_string().contains("commit"), "{e}");
    assert!(hub::looks_like_repo_id("HuggingFaceTB/SmolLM2-135M"));
    assert!(!hub::looks_like_repo_id("./model.gguf"));
    assert!(!hub::looks_like_repo_id("/abs/path"));
    let _ = std::fs::remove_dir_all(cache);
}

#[test]
fn failed_download_falls_back_to_cache() {
    // No network here (or an unknown repo online): the download fails and
    // the cached snapshot is used.
    let cache = filled_cache("fallback");
    let t = std::time::Instant::now();
    let snap = hub::resolve_in(REPO, &cache, false).unwrap();
    assert!(snap.ends_with(REV));
    eprintln!("online attempt + fallback took {:?}", t.elapsed());
    let _ = std::fs::remove_dir_all(cache);
}
