//! HTTP Helm chart repositories (issue 18): a repository's `index.yaml`, read once per run,
//! bounded by `limits.response_bytes`, and the versions of each chart in it
//! (`entries.<chart>[].version`).
//!
//! With a cache directory (`IMAGE_UPDATER_CHART_CACHE`), the index's body is kept there with
//! its `ETag` and `Last-Modified`, and the next run asks with `If-None-Match` /
//! `If-Modified-Since`: a `304 Not Modified` answer reads the kept body instead. Without one,
//! each run fetches each index once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::StatusCode;
use serde::Deserialize;

/// Where and how indexes are fetched.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// The longest one request may take.
    pub request_timeout: Duration,
    /// The longest index read, in bytes (`limits.response_bytes`).
    pub response_bytes: u64,
    /// Where bodies and validators are kept between runs, if anywhere.
    pub cache_dir: Option<PathBuf>,
}

/// Why an index could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{url}: {message}")]
    Fetch { url: String, message: String },
    #[error("{url}: not a Helm repository index: {message}")]
    Parse { url: String, message: String },
}

/// The part of `index.yaml` read: each chart's versions (every other field is skipped).
#[derive(Debug, Deserialize)]
struct Index {
    #[serde(default)]
    entries: HashMap<String, Option<Vec<Entry>>>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    /// A plain scalar is read as written (`1.0` stays `1.0`).
    #[serde(default)]
    version: Option<String>,
}

/// Each chart's versions in an index body, in the index's order.
pub fn parse_index(url: &str, body: &[u8]) -> Result<HashMap<String, Vec<String>>, IndexError> {
    let text = std::str::from_utf8(body).map_err(|e| IndexError::Parse {
        url: url.to_string(),
        message: e.to_string(),
    })?;
    // The body is already bounded (`limits.response_bytes`); the parser's node and event
    // budgets (250,000 nodes by default, which a 20 MB index such as Bitnami's exceeds) are
    // scaled to it: a node or an event takes at least a byte of YAML. Alias expansion keeps
    // the library's limits.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = budget.max_nodes.max(text.len());
    budget.max_events = budget.max_events.max(text.len().saturating_mul(2));
    budget.max_total_scalar_bytes = budget.max_total_scalar_bytes.max(text.len());
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    let index: Index =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| IndexError::Parse {
            url: url.to_string(),
            message: e.to_string(),
        })?;
    Ok(index
        .entries
        .into_iter()
        .map(|(chart, list)| {
            let versions = list
                .unwrap_or_default()
                .into_iter()
                .filter_map(|e| e.version)
                .collect();
            (chart, versions)
        })
        .collect())
}

/// The URL of the index of the repository at `repository` (`https://host/path`).
pub fn index_url(repository: &str) -> String {
    format!("{}/index.yaml", repository.trim_end_matches('/'))
}

/// Fetch and parse the index of `repository`: one GET (conditional when a cache entry exists).
pub async fn fetch(
    client: &reqwest::Client,
    repository: &str,
    options: &IndexOptions,
) -> Result<HashMap<String, Vec<String>>, IndexError> {
    let url = index_url(repository);
    let fail = |message: String| IndexError::Fetch {
        url: url.clone(),
        message,
    };
    let cached = options
        .cache_dir
        .as_deref()
        .map(|d| CacheEntry::at(d, &url));
    let mut request = client.get(&url).timeout(options.request_timeout);
    if let Some(c) = cached.as_ref().filter(|c| c.body.is_file()) {
        if let Some(etag) = c.read_meta("etag") {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(modified) = c.read_meta("last-modified") {
            request = request.header(IF_MODIFIED_SINCE, modified);
        }
    }
    let resp = request.send().await.map_err(|e| fail(e.to_string()))?;
    use crate::observe::{Counters, COUNTERS};
    Counters::add(&COUNTERS.registry_requests, 1);
    let status = resp.status();
    if status == StatusCode::NOT_MODIFIED {
        if let Some(c) = &cached {
            if let Ok(body) = std::fs::read(&c.body) {
                return parse_index(&url, &body);
            }
        }
        return Err(fail(
            "answered 304 Not Modified, but no cached index is kept".into(),
        ));
    }
    if !status.is_success() {
        let body = crate::http::read_body(resp, 64 * 1024)
            .await
            .unwrap_or_default();
        return Err(fail(format!(
            "answered {status}: {}",
            crate::http::error_text(&body)
        )));
    }
    let header = |name| {
        resp.headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let (etag, modified) = (header(ETAG), header(LAST_MODIFIED));
    let body = crate::http::read_body(resp, options.response_bytes)
        .await
        .map_err(|e| fail(e.to_string()))?;
    Counters::add(&COUNTERS.registry_bytes, body.len() as u64);
    let versions = parse_index(&url, &body)?;
    if let Some(c) = &cached {
        // A cache that cannot be written costs the next run a full fetch, nothing more.
        if let Err(e) = c.store(&body, etag.as_deref(), modified.as_deref()) {
            tracing::warn!("chart index cache: {e}");
        }
    }
    Ok(versions)
}

/// Where one index is kept: `DIR/<sha256 of the URL>.yaml` and its validators beside it.
struct CacheEntry {
    body: PathBuf,
    dir: PathBuf,
    stem: String,
}

impl CacheEntry {
    fn at(dir: &Path, url: &str) -> CacheEntry {
        use sha2::Digest as _;
        let stem = hex(&sha2::Sha256::digest(url.as_bytes()));
        CacheEntry {
            body: dir.join(format!("{stem}.yaml")),
            dir: dir.to_path_buf(),
            stem,
        }
    }

    fn meta(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}.{name}", self.stem))
    }

    fn read_meta(&self, name: &str) -> Option<String> {
        let v = std::fs::read_to_string(self.meta(name)).ok()?;
        let v = v.trim();
        (!v.is_empty() && v.chars().all(|c| c.is_ascii_graphic() || c == ' ')).then(|| v.into())
    }

    fn store(
        &self,
        body: &[u8],
        etag: Option<&str>,
        modified: Option<&str>,
    ) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        for (name, value) in [("etag", etag), ("last-modified", modified)] {
            match value {
                Some(v) => std::fs::write(self.meta(name), v)?,
                None => {
                    let _ = std::fs::remove_file(self.meta(name));
                }
            }
        }
        // Body last, through a temporary file: a stopped run leaves no half index.
        let tmp = self.dir.join(format!("{}.yaml.tmp", self.stem));
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, &self.body)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_per_chart_and_other_fields_skipped() {
        let body = b"apiVersion: v1\nentries:\n  podinfo:\n    - version: 6.1.0\n      urls: [https://x/podinfo-6.1.0.tgz]\n      digest: abc\n    - version: \"6.0.0\"\n      created: 2024-01-01T00:00:00Z\n  old:\n    - version: 1.0\n  empty:\ngenerated: 2024-01-01T00:00:00Z\n";
        let got = parse_index("u", body).unwrap();
        assert_eq!(got["podinfo"], ["6.1.0", "6.0.0"]);
        assert_eq!(got["old"], ["1.0"]);
        assert!(got["empty"].is_empty());
        let err = parse_index("https://c.test/index.yaml", b"entries: [1, 2]\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("https://c.test/index.yaml: not a Helm"),
            "{err}"
        );
    }

    #[test]
    fn a_large_index_is_read_whole() {
        // 3,000 versions of 100 fields each: 600,000 nodes, past the parser's default budget.
        let mut body = String::from("apiVersion: v1\nentries:\n  big:\n");
        for v in 0..3_000 {
            body.push_str(&format!("    - version: 1.{v}.0\n      keywords:\n"));
            for k in 0..100 {
                body.push_str(&format!("        - k{k}\n"));
            }
        }
        let got = parse_index("u", body.as_bytes()).unwrap();
        assert_eq!(got["big"].len(), 3_000);
        assert_eq!(got["big"][2_999], "1.2999.0");
    }

    #[test]
    fn index_url_joins_without_doubling_slashes() {
        assert_eq!(
            index_url("https://c.test/x/"),
            "https://c.test/x/index.yaml"
        );
        assert_eq!(
            index_url("http://127.0.0.1:1"),
            "http://127.0.0.1:1/index.yaml"
        );
    }
}
