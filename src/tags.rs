//! The `tags` command: one image's tags (from its registry, an OCI layout directory, or lines
//! of text) that pass a policy, best first, and with `--verbose` why each other tag was
//! dropped. With `--current TAG` the policy is seen from that tag, as a run sees the tag in a
//! manifest (`update:` and `versioning: docker` keep its suffix and precision), and the report
//! says what a run would write in its place.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::env::Env;
use crate::error::Error;
use crate::escape;
use crate::pipeline::load_config;
use crate::policy::{self, Policy};
use crate::reference::ImageRef;
use crate::registry::{layout::LayoutSource, Registries, TagSource};
use crate::report::{self, TagsReport};
use crate::resolve::valid_tags;

/// Where `tags` reads from.
pub enum TagInput {
    /// The registry of the image (or an `oci-layout:PATH` directory), with the credentials
    /// and the registry settings of `config` (a config file) and `env`.
    Registry { config: Option<PathBuf>, env: Env },
    /// One tag a line.
    Lines(String),
}

/// List the tags of `image` passing `policy` (seen from `current`, when given), best first.
pub async fn list_tags(
    image: &str,
    policy: &Policy,
    current: Option<&str>,
    input: TagInput,
    explain: bool,
) -> Result<TagsReport, Error> {
    let tags: Vec<String> = match input {
        TagInput::Lines(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        TagInput::Registry { config, env } => from_registry(image, config, env).await?,
    };
    let (tags, invalid) = valid_tags(tags);
    // The same view of the policy and the same decision as the select stage's.
    let policy = policy.relative_to(current);
    let policy = policy.as_ref();
    let sel = policy.select(&tags);
    let update = current.and_then(|c| policy.update_from(Some(c), &tags).map(|u| u.to));
    let dropped = if explain {
        let invalid = invalid.into_iter().map(|t| report::Dropped {
            tag: t.escape_debug().to_string(),
            why: "not a valid OCI tag".into(),
        });
        policy
            .explain(&tags)
            .into_iter()
            .filter_map(|v| match v.outcome {
                policy::Outcome::Dropped(why) => Some(report::Dropped { tag: v.tag, why }),
                policy::Outcome::Candidate { .. } => None,
            })
            .chain(invalid)
            .collect()
    } else {
        Vec::new()
    };
    Ok(TagsReport {
        image: image.to_string(),
        candidates: sel.candidates,
        latest: sel.latest,
        current: current.map(str::to_string),
        update,
        dropped,
    })
}

/// The tags of `image` as its registry (or `oci-layout:` directory) lists them.
async fn from_registry(
    image: &str,
    config: Option<PathBuf>,
    env: Env,
) -> Result<Vec<String>, Error> {
    if let Some(path) = image.strip_prefix("oci-layout:") {
        let src = LayoutSource::new("oci-layout", Path::new(path));
        return src
            .list_tags("")
            .await
            .map_err(|e| Error::Failed(e.to_string()));
    }
    if let Some(hint) = local_path_hint(image) {
        return Err(Error::Usage(hint));
    }
    let r = ImageRef::parse(image).map_err(|e| Error::Usage(e.to_string()))?;
    // The config's paths (`oci-layout:`, `ca_file`) are its repo's: resolved from the config
    // file's directory, wherever the command is run from.
    let root = config
        .as_deref()
        .and_then(Path::parent)
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let (cfg, _) = load_config(&root, config.as_deref())?;
    let registries = Registries::new(&cfg.registries, &cfg.limits, &root, env);
    let source: Arc<dyn TagSource> = registries.source(&r.registry);
    source
        .list_tags(&r.repository)
        .await
        .map_err(|e| Error::Failed(e.to_string()))
}

/// Why `image` (as given to `tags`) is a path on this machine and not an image: it starts
/// like a path (`/`, `./`, `../`, `~`), or names a directory holding an OCI image layout.
/// Said before any request, with the `oci-layout:` spelling that reads it.
fn local_path_hint(image: &str) -> Option<String> {
    let path = Path::new(image);
    let path_like = ["/", "./", "../", "~"].iter().any(|p| image.starts_with(p));
    let layout =
        path.is_dir() && (path.join("oci-layout").is_file() || path.join("index.json").is_file());
    (path_like || layout).then(|| {
        format!(
            "{image} is a path on this machine, not an image; an OCI image layout directory is \
             read with the oci-layout: prefix: tags oci-layout:{image}",
            image = escape::text_line(image)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_not_images() {
        assert!(local_path_hint("./layout").is_some());
        assert!(local_path_hint("/srv/x").is_some());
        assert!(local_path_hint("ghcr.io/acme/web").is_none());
    }

    #[tokio::test]
    async fn lines_are_trimmed_filtered_and_ranked() {
        let policy = Policy::new(policy::PolicyKind::Semver("^1".into()), &[], false).unwrap();
        let r = list_tags(
            "x",
            &policy,
            None,
            TagInput::Lines(" 1.0.0\n\n1.2.0 \n2.0.0\nbad tag\n".into()),
            true,
        )
        .await
        .unwrap();
        assert_eq!(r.latest.as_deref(), Some("1.2.0"));
        assert!(
            r.dropped.iter().any(|d| d.why == "not a valid OCI tag"),
            "{:?}",
            r.dropped
        );
    }
}
