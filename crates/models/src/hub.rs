//! Hub ids (`owner/name`) → a local HF directory in the standard HF cache.
//!
//! Cache location, as huggingface_hub: `$HF_HUB_CACHE`, else `$HF_HOME/hub`,
//! else `~/.cache/huggingface/hub`. Layout:
//! `models--owner--name/{refs/main, snapshots/<commit>/<file>, blobs/}`.
//!
//! Online (default): hf-hub's sync API (honouring `HF_ENDPOINT`,
//! `HF_TOKEN`) downloads `config.json`,
//! `tokenizer.json` + `tokenizer_config.json` (if the repo has them) and the
//! safetensors (`model.safetensors`, or the shards of
//! `model.safetensors.index.json`) into that cache. Offline
//! (`HF_HUB_OFFLINE=1`), or when any download fails, the snapshot that
//! `refs/main` names is used directly from the cache.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// True for strings shaped like a hub id: `owner/name`, plain characters.
pub fn looks_like_repo_id(s: &str) -> bool {
    let mut parts = s.split('/');
    let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let ok = |p: &str| {
        !p.is_empty() && !p.starts_with('.') && !p.starts_with('-') && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    ok(a) && ok(b)
}

/// The HF hub cache directory (see module docs).
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("hub");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("huggingface").join("hub")
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// Resolves `repo_id` to a snapshot directory holding `config.json`,
/// the tokenizer files (if any) and the safetensors.
pub fn resolve(repo_id: &str) -> Result<PathBuf> {
    resolve_in(repo_id, &cache_dir(), offline())
}

/// [`resolve`] with an explicit cache directory and offline flag.
pub fn resolve_in(repo_id: &str, cache: &Path, offline: bool) -> Result<PathBuf> {
    if !looks_like_repo_id(repo_id) {
        return Err(Error::Hub(format!("`{repo_id}` is not a hub id of the form owner/name")));
    }
    if offline {
        return from_cache(repo_id, cache);
    }
    match download(repo_id, cache) {
        Ok(dir) => Ok(dir),
        Err(online) => from_cache(repo_id, cache)
            .map_err(|cached| Error::Hub(format!("{repo_id}: download failed ({online}); and from the cache: {cached}"))),
    }
}

/// The cached snapshot `refs/main` points to; it must hold `config.json`.
pub fn from_cache(repo_id: &str, cache: &Path) -> Result<PathBuf> {
    let repo_dir = cache.join(format!("models--{}", repo_id.replace('/', "--")));
    let refs = repo_dir.join("refs").join("main");
    let commit =
        std::fs::read_to_string(&refs).map_err(|e| Error::Hub(format!("{repo_id} is not in the cache ({}: {e})", refs.display())))?;
    let commit = commit.trim();
    if commit.is_empty() || !commit.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::Hub(format!("{}: `{commit}` is not a commit hash", refs.display())));
    }
    let snap = repo_dir.join("snapshots").join(commit);
    if !snap.join("config.json").is_file() {
        return Err(Error::Hub(format!("{repo_id}: cached snapshot {} has no config.json", snap.display())));
    }
    Ok(snap)
}

fn download(repo_id: &str, cache: &Path) -> std::result::Result<PathBuf, String> {
    use hf_hub::api::sync::ApiBuilder;
    // Token from the cache's `token` file (hf-hub default), or $HF_TOKEN;
    // endpoint from $HF_ENDPOINT (mirrors), as huggingface_hub.
    let mut builder = ApiBuilder::from_cache(hf_hub::Cache::new(cache.to_path_buf())).with_progress(false);
    if let Some(endpoint) = std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty()) {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(token) = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()) {
        builder = builder.with_token(Some(token));
    }
    let api = builder.build().map_err(|e| e.to_string())?;
    let repo = api.model(repo_id.to_string());
    let config = repo.get("config.json").map_err(|e| format!("config.json: {e}"))?;
    for optional in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"] {
        let _ = repo.get(optional);
    }
    match repo.get("model.safetensors.index.json") {
        Ok(index) => {
            let text = crate::formats::read_capped_string(&index, crate::formats::JSON_MAX_BYTES).map_err(|e| e.to_string())?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            let map = v.get("weight_map").and_then(|m| m.as_object()).ok_or("index without weight_map")?;
            let mut shards: Vec<&str> = map.values().filter_map(|f| f.as_str()).collect();
            shards.sort_unstable();
            shards.dedup();
            for s in shards {
                repo.get(s).map_err(|e| format!("{s}: {e}"))?;
            }
        }
        Err(_) => {
            repo.get("model.safetensors").map_err(|e| format!("model.safetensors: {e}"))?;
        }
    }
    config.parent().map(Path::to_path_buf).ok_or_else(|| "config.json has no parent directory".into())
}
