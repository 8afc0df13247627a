//! What an image's config says of it, read once per tag: its build time, for Argo CD Image
//! Updater's `newest-build` strategy (the candidate tags are ordered by their image config's
//! `created` time, newest first), and its labels and the manifest's annotations, for the
//! app-change links of a delivery (`org.opencontainers.image.source` and `.revision`, see
//! [`crate::deliver::app_changes`]). One manifest and one config are read per tag
//! ([`image_facts`], cached for the run by the caller); newest-build looks at most at
//! [`MAX_CANDIDATES`] candidates, and a tag whose time cannot be read is an error naming it,
//! never a guess.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{RegistryError, TagSource};

/// The most candidate tags whose build times one policy reads; more is an error asking to
/// narrow them (`allow-tags`, `ignore-tags`).
pub const MAX_CANDIDATES: usize = 100;

/// The OCI annotation of an image's build time.
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";

/// Image facts read this run, by canonical repository and tag, or why there are none.
pub type CreatedCache = HashMap<(String, String), Result<ImageFacts, BuildTimeError>>;

/// What one read of a tag's manifest and config says of the image ([`image_facts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFacts {
    /// Whether the tag names one image (not an index or an artifact): only then is there one
    /// build time. (An index's labels are its first platform's.)
    pub single_image: bool,
    /// The config's `created`, as written.
    pub created: Option<String>,
    /// The config's `config.Labels` with string values.
    pub labels: BTreeMap<String, String>,
    /// The manifest's (or index's) `annotations` with string values.
    pub annotations: BTreeMap<String, String>,
}

impl ImageFacts {
    /// The value of `key` as a config label, else as a manifest annotation.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.labels
            .get(key)
            .or_else(|| self.annotations.get(key))
            .map(String::as_str)
    }

    /// The build time a stage's `min_age` reads (issue 22): the config's `created`, else the
    /// manifest's `org.opencontainers.image.created` annotation (an index or an artifact has
    /// only the latter).
    pub fn created_or_annotated(&self) -> Result<(i64, u32), BuildTimeError> {
        let created = match (&self.created, self.annotations.get(CREATED_ANNOTATION)) {
            (Some(c), _) | (None, Some(c)) => c,
            (None, None) => return Err(BuildTimeError::NoCreated),
        };
        parse_rfc3339(created).ok_or_else(|| BuildTimeError::NotRfc3339(created.clone()))
    }

    /// The build time: seconds and nanoseconds since the Unix epoch.
    pub fn build_time(&self) -> Result<(i64, u32), BuildTimeError> {
        if !self.single_image {
            return Err(BuildTimeError::NotSingleImage);
        }
        let created = self.created.as_deref().ok_or(BuildTimeError::NoCreated)?;
        parse_rfc3339(created).ok_or_else(|| BuildTimeError::NotRfc3339(created.to_string()))
    }
}

/// Why a tag has no build time. Clone, as it is cached for the run ([`CreatedCache`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BuildTimeError {
    #[error("image config is not valid JSON: {0}")]
    NotJson(#[source] Arc<serde_json::Error>),
    #[error("created {0:?} is not an RFC 3339 time")]
    NotRfc3339(String),
    #[error("its image config has no created time")]
    NoCreated,
    #[error("not a single image (an index or an artifact): no one build time")]
    NotSingleImage,
    /// The manifest or config could not be read from the registry.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Why [`newest_build`] cannot pick a tag.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NewestBuildError {
    #[error(
        "newest-build: {count} tags pass the filters, and the build times of at most \
         {MAX_CANDIDATES} are read; narrow them with allow-tags or ignore-tags"
    )]
    TooManyCandidates { count: usize },
    #[error("newest-build: tag {tag} of {canonical}: {source}")]
    Tag {
        tag: String,
        canonical: String,
        #[source]
        source: BuildTimeError,
    },
}

/// The facts of `tag` of `repository` from one manifest and one config read.
pub async fn image_facts(
    source: &dyn TagSource,
    repository: &str,
    tag: &str,
) -> Result<ImageFacts, BuildTimeError> {
    let doc = source.image_config(repository, tag).await?;
    let mut facts = ImageFacts {
        annotations: doc.annotations,
        ..ImageFacts::default()
    };
    if let Some(config) = doc.config {
        let (created, labels) = config_facts(&config)?;
        facts.single_image = !doc.index;
        facts.created = created;
        facts.labels = labels;
    }
    Ok(facts)
}

/// [`image_facts`] through the run's cache: one read per (repository, tag).
pub async fn cached_facts(
    source: &dyn TagSource,
    canonical: &str,
    repository: &str,
    tag: &str,
    cache: &mut CreatedCache,
) -> Result<ImageFacts, BuildTimeError> {
    let key = (canonical.to_string(), tag.to_string());
    if let Some(r) = cache.get(&key) {
        return r.clone();
    }
    let r = image_facts(source, repository, tag).await;
    cache.insert(key, r.clone());
    r
}

/// The `created` time (as written) and the `config.Labels` (string values) of an image config.
pub fn config_facts(
    config: &[u8],
) -> Result<(Option<String>, BTreeMap<String, String>), BuildTimeError> {
    #[derive(serde::Deserialize)]
    struct Config {
        created: Option<String>,
        #[serde(default)]
        config: Option<Inner>,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(rename = "Labels", default)]
        labels: Option<BTreeMap<String, serde_json::Value>>,
    }
    let config: Config =
        serde_json::from_slice(config).map_err(|e| BuildTimeError::NotJson(Arc::new(e)))?;
    let labels = config
        .config
        .and_then(|c| c.labels)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            _ => None,
        })
        .collect();
    Ok((config.created, labels))
}

/// The `created` time of an image config: `Ok(None)` when it has none.
pub fn config_created(config: &[u8]) -> Result<Option<(i64, u32)>, BuildTimeError> {
    let (created, _) = config_facts(config)?;
    created
        .map(|c| parse_rfc3339(&c).ok_or(BuildTimeError::NotRfc3339(c)))
        .transpose()
}

/// An RFC 3339 time (`2024-05-01T10:00:00Z`, fractions and `+hh:mm` offsets too) as seconds
/// and nanoseconds since the Unix epoch.
pub fn parse_rfc3339(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: u32 = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = s.get(start..i)?;
        if digits.is_empty() {
            return None;
        }
        let padded: String = digits
            .chars()
            .chain(std::iter::repeat('0'))
            .take(9)
            .collect();
        nanos = padded.parse().ok()?;
    }
    let offset = match s.get(i..)? {
        "Z" | "z" => 0,
        zone if zone.len() == 6 && matches!(&zone[..1], "+" | "-") && &zone[3..4] == ":" => {
            let h: i64 = zone[1..3].parse().ok()?;
            let m: i64 = zone[4..6].parse().ok()?;
            let secs = h * 3600 + m * 60;
            if zone.starts_with('-') {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((
        days * 86_400 + hour * 3600 + minute * 60 + second - offset,
        nanos,
    ))
}

/// The candidate built last, by image config `created` time (a tie goes to the candidate
/// listed first, the policy's best). `candidates` are the tags passing the policy's filters.
pub async fn newest_build(
    source: &dyn TagSource,
    canonical: &str,
    repository: &str,
    candidates: &[String],
    cache: &mut CreatedCache,
) -> Result<Option<String>, NewestBuildError> {
    if candidates.len() > MAX_CANDIDATES {
        return Err(NewestBuildError::TooManyCandidates {
            count: candidates.len(),
        });
    }
    let mut best: Option<(&String, (i64, u32))> = None;
    for tag in candidates {
        let created = cached_facts(source, canonical, repository, tag, cache)
            .await
            .and_then(|f| f.build_time())
            .map_err(|source| NewestBuildError::Tag {
                tag: tag.clone(),
                canonical: canonical.to_string(),
                source,
            })?;
        if best.is_none_or(|(_, t)| created > t) {
            best = Some((tag, created));
        }
    }
    Ok(best.map(|(t, _)| t.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(
            parse_rfc3339("2024-05-01T10:00:00Z"),
            Some((1_714_557_600, 0))
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T12:00:00.5+02:00"),
            Some((1_714_557_600, 500_000_000))
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T23:59:59.123456789Z"),
            Some((951_868_799, 123_456_789))
        );
        for bad in [
            "2024-05-01",
            "2024-13-01T00:00:00Z",
            "2024-05-01T00:00:00",
            "2024-05-01T00:00:00.Z",
            "2024-05-01T00:00:00+0200",
            "x024-05-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn config_times() {
        assert_eq!(
            config_created(br#"{"created":"2024-05-01T10:00:00Z","os":"linux"}"#).unwrap(),
            Some((1_714_557_600, 0))
        );
        assert_eq!(config_created(br#"{"os":"linux"}"#).unwrap(), None);
        assert_eq!(
            config_created(br#"{"created":"yesterday"}"#)
                .unwrap_err()
                .to_string(),
            r#"created "yesterday" is not an RFC 3339 time"#
        );
        let e = config_created(b"not json").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("image config is not valid JSON: "));
        assert!(std::error::Error::source(&e).is_some_and(|s| s.is::<Arc<serde_json::Error>>()));
    }

    #[test]
    fn config_labels_and_build_times_from_one_read() {
        let (created, labels) = config_facts(
            br#"{"created":"2024-05-01T10:00:00Z","config":{"Labels":{"org.opencontainers.image.revision":"abc","n":1}}}"#,
        )
        .unwrap();
        assert_eq!(created.as_deref(), Some("2024-05-01T10:00:00Z"));
        assert_eq!(labels.len(), 1, "only string values");
        assert_eq!(labels["org.opencontainers.image.revision"], "abc");
        let (_, none) = config_facts(br#"{"config":{"Labels":null}}"#).unwrap();
        assert!(none.is_empty());
        let facts = ImageFacts {
            single_image: true,
            created,
            labels,
            annotations: [
                (
                    "org.opencontainers.image.revision".to_string(),
                    "def".to_string(),
                ),
                ("x".to_string(), "y".to_string()),
            ]
            .into(),
        };
        assert_eq!(
            facts.get("org.opencontainers.image.revision"),
            Some("abc"),
            "a label wins"
        );
        assert_eq!(facts.get("x"), Some("y"));
        assert_eq!(facts.build_time().unwrap(), (1_714_557_600, 0));
        let index = ImageFacts::default();
        assert!(matches!(
            index.build_time(),
            Err(BuildTimeError::NotSingleImage)
        ));
    }
}
