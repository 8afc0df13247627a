//! Helm values: `values*.yaml` files, Flux `HelmRelease` `spec.values`, Argo CD
//! `helm.valuesObject`.
//!
//! Three shapes, in this order (a scalar belongs to the first that claims it):
//! 1. the key paths of [`ScanOptions::helm`](super::ScanOptions::helm) (`image.tag`, ...); a
//!    path's keys may also be one literal dotted key (`image.tag: v1`); a `spec` path names one
//!    key holding the whole reference (Argo CD Image Updater's `helm.image-spec`), whatever its
//!    name (`images.backend: ghcr.io/acme/backend:1.2.3`);
//! 2. any mapping with a scalar `repository` and a `tag` or `digest` key, plus an optional
//!    `registry` (`image: {repository, tag}`, `image: {registry, repository, tag}`, Bitnami's
//!    `image: {registry, repository, tag, digest}`); `version` in place of `tag` beside a
//!    `registry` (`image: {registry, repository, version}`; without a `registry`,
//!    `{repository, version}` is a chart reference, not an image); and the same keys written
//!    as literal dotted keys of one mapping, as Argo CD Image Updater writes them
//!    (`image.repository: x` or `image.name: x`, with `image.tag: v1`);
//! 3. a whole `repo:tag` string under `image`, or under a key ending in `image` or `Image`
//!    (`sidecarImage: ghcr.io/acme/side:1.0.0`, `initImage:`) when it holds a tag or digest.
//!
//! A null value (`tag:`) or an empty string (`digest: ""`) counts as absent. A shape whose keys hold an alias or a collection is
//! left out: it cannot be spliced.

use std::path::Path as FsPath;

use super::scan::{self, Node, NodeKind, Path, Segment};
use super::{Format, Found, HelmKeys, Parts, Site};

/// Flux's HelmRelease API group.
pub const HELM_RELEASE_GROUP: &str = "helm.toolkit.fluxcd.io";

/// Whether the file is a values file: `values*.yaml` / `values*.yml`.
pub fn is_values_file(path: &FsPath) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("values") && (n.ends_with(".yaml") || n.ends_with(".yml")))
}

/// The `spec.values` of a Flux HelmRelease document (or of a Flux v1 helm-operator one), if
/// it is one.
pub fn helm_release_values(root: &Node) -> Option<&Node> {
    let (api, kind) = scan::api_version_kind(root);
    let v1 = super::flux_v1::is_helm_operator_release(root);
    if (v1 || scan::in_group(api, HELM_RELEASE_GROUP)) && kind == Some("HelmRelease") {
        root.get_path(&["spec", "values"])
    } else {
        None
    }
}

/// Parse a key path `a.b[0].c` into segments; `None` when malformed.
pub fn parse_key_path(path: &str) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if key.is_empty() && (out.is_empty() || rest.is_empty()) {
            return None;
        }
        if !key.is_empty() {
            out.push(Segment::Key(key.to_owned()));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let close = r.find(']')?;
            out.push(Segment::Index(r[..close].parse().ok()?));
            rest = &r[close + 1..];
        }
        if !rest.is_empty() {
            return None;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The node at `segments` below `node`. Keys may also be written as one literal dotted key
/// (`image.tag: v1`, as Argo CD Image Updater writes them): at each mapping the nested key is
/// tried first, then the following keys joined with `.`.
fn lookup<'a>(node: &'a Node, segments: &[Segment]) -> Option<&'a Node> {
    let Some(first) = segments.first() else {
        return Some(node);
    };
    if let Segment::Index(i) = first {
        return lookup(node.as_sequence()?.get(*i)?, &segments[1..]);
    }
    let mut key = String::new();
    for (n, seg) in segments.iter().enumerate() {
        let Segment::Key(k) = seg else { break };
        if n > 0 {
            key.push('.');
        }
        key.push_str(k);
        if let Some(found) = node.get(&key).and_then(|v| lookup(v, &segments[n + 1..])) {
            return Some(found);
        }
    }
    None
}

/// A part at `node`: `Ok(None)` when absent, null or an empty string (Bitnami's
/// `digest: ""`, `helm create`'s `tag: ""`: the chart's default applies), `Err` when not a
/// scalar.
fn part(node: Option<&Node>, path: &Path) -> Result<Option<Found>, ()> {
    match node {
        None => Ok(None),
        Some(n) if n.is_null() || n.as_str() == Some("") => Ok(None),
        Some(n) => n.to_found(path).map(Some).ok_or(()),
    }
}

fn split_site(format: Format, keys: Option<usize>, parts: [Option<Found>; 4]) -> Option<Site> {
    let [registry, name, tag, digest] = parts;
    if registry.is_none() && name.is_none() && tag.is_none() && digest.is_none() {
        return None;
    }
    let parts = Parts::Split {
        registry,
        name,
        tag,
        digest,
    };
    Some(Site {
        format,
        policy: None,
        keys,
        line: parts.report_line(),
        parts,
    })
}

/// Sites for configured key paths below `root` (paths reported from `prefix`).
pub fn keyed_sites(
    root: &Node,
    prefix: &Path,
    keys: &[HelmKeys],
    format: Format,
    out: &mut Vec<Site>,
) {
    for (i, k) in keys.iter().enumerate() {
        if let Some(spec) = &k.spec {
            let Some(segments) = parse_key_path(spec) else {
                continue;
            };
            let mut path = prefix.clone();
            path.0.extend(segments.iter().cloned());
            if let Ok(Some(whole)) = part(lookup(root, &segments), &path) {
                out.push(Site {
                    format,
                    policy: None,
                    keys: Some(i),
                    line: whole.line,
                    parts: Parts::Whole(whole),
                });
            }
            continue;
        }
        let mut parts: [Option<Found>; 4] = Default::default();
        let mut ok = true;
        let wanted = [&k.registry, &k.repository, &k.tag, &k.digest];
        for (slot, key) in parts.iter_mut().zip(wanted) {
            let Some(key) = key else { continue };
            let Some(segments) = parse_key_path(key) else {
                continue;
            };
            let mut path = prefix.clone();
            path.0.extend(segments.iter().cloned());
            match part(lookup(root, &segments), &path) {
                Ok(found) => *slot = found,
                Err(()) => ok = false,
            }
        }
        if ok {
            out.extend(split_site(format, Some(i), parts));
        }
    }
}

/// The keys naming the parts of a split reference, after a dotted key's prefix: the name
/// (`repository`, or `name` in a dotted key: Argo CD Image Updater's `image.name`), the tag
/// (`tag`, or `version` beside a `registry`), `registry` and `digest`.
const PART_KEYS: [&str; 6] = ["registry", "repository", "name", "tag", "version", "digest"];

/// Site of shape 2 in `entries` (a mapping at `path`) with keys `{prefix}repository` and so on:
/// `prefix` is empty for nested keys, `image.` for literal dotted keys (`image.tag: v1`).
fn split_shape(entries: &[(Node, Node)], path: &Path, prefix: &str, out: &mut Vec<Site>) {
    let get = |key: &str| {
        let key = format!("{prefix}{key}");
        entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key.as_str()))
            .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), v))
    };
    let name_key = match get("repository") {
        Some(_) => "repository",
        None if !prefix.is_empty() => "name",
        None => return,
    };
    let Some((_, repo)) = get(name_key) else {
        return;
    };
    if repo.as_str().is_none() || repo.is_null() {
        return;
    }
    // `version` stands for the tag only beside a `registry` and without a `tag`: a chart
    // reference is `{repository: https://..., version: 1.2.3}`.
    let tag_key = if get("tag").is_some() {
        "tag"
    } else if get("version").is_some() && get("registry").is_some() {
        "version"
    } else if get("digest").is_some() {
        "tag"
    } else {
        return;
    };
    let at = |key: &str| {
        let mut p = path.clone();
        let found = get(key);
        p.push(Segment::Key(
            found
                .as_ref()
                .map_or_else(|| format!("{prefix}{key}"), |(k, _)| k.clone()),
        ));
        part(found.map(|(_, v)| v), &p)
    };
    if let (Ok(registry), Ok(name), Ok(tag), Ok(digest)) =
        (at("registry"), at(name_key), at(tag_key), at("digest"))
    {
        out.extend(split_site(
            Format::Helm,
            None,
            [registry, name, tag, digest],
        ));
    }
}

/// Whether `key` holds a whole reference (shape 3): `image`, or a key ending in `image` or
/// `Image` (`sidecarImage`, `initImage`) whose value has a tag or digest.
fn whole_image_key(key: &str, value: &str) -> bool {
    if key == "image" {
        return true;
    }
    let last = value.rsplit('/').next().unwrap_or(value);
    (key.ends_with("Image") || key.ends_with("image")) && (last.contains(':') || last.contains('@'))
}

/// Sites of the built-in shapes (2 and 3 of the module doc) below `root`.
pub fn shape_sites(root: &Node, prefix: &Path, out: &mut Vec<Site>) {
    let mut path = prefix.clone();
    scan::walk(root, &mut path, &mut |node, path| {
        let Some(entries) = node.as_mapping() else {
            return;
        };
        // 2. repository + tag/digest (+ registry), registry + repository + version
        split_shape(entries, path, "", out);
        // 2'. the same as literal dotted keys (`image.repository`, `image.tag`), each
        // prefix once, in source order
        let mut prefixes: Vec<&str> = Vec::new();
        for (k, _) in entries {
            let Some((p, leaf)) = k.as_str().and_then(|k| k.rsplit_once('.')) else {
                continue;
            };
            if !p.is_empty() && PART_KEYS.contains(&leaf) && !prefixes.contains(&p) {
                prefixes.push(p);
            }
        }
        for p in prefixes {
            split_shape(entries, path, &format!("{p}."), out);
        }
        // 3. image: "repo:tag", sidecarImage: "repo:tag"
        for (k, image) in entries {
            let Some(key) = k.as_str() else { continue };
            if let NodeKind::Scalar { value, .. } = &image.kind {
                if !image.is_null()
                    && !value.is_empty()
                    && !value.contains(char::is_whitespace)
                    && whole_image_key(key, value)
                {
                    let mut p = path.clone();
                    p.push(Segment::Key(key.to_owned()));
                    out.extend(image.to_found(&p).map(|f| Site {
                        format: Format::Helm,
                        policy: None,
                        keys: None,
                        line: f.line,
                        parts: Parts::Whole(f),
                    }));
                }
            }
        }
    });
}

/// All Helm sites of a values tree: configured keys first, then the built-in shapes.
pub fn values_sites(root: &Node, prefix: &Path, keys: &[HelmKeys], out: &mut Vec<Site>) {
    keyed_sites(root, prefix, keys, Format::Helm, out);
    shape_sites(root, prefix, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::scan::parse_documents;

    fn sites_of(text: &str, keys: &[HelmKeys]) -> Vec<Site> {
        let docs = parse_documents(text).unwrap();
        let mut out = Vec::new();
        values_sites(
            docs[0].root.as_ref().unwrap(),
            &Path::default(),
            keys,
            &mut out,
        );
        out
    }

    fn split(site: &Site) -> [Option<&str>; 4] {
        match &site.parts {
            Parts::Split {
                registry,
                name,
                tag,
                digest,
            } => [registry, name, tag, digest].map(|p| p.as_ref().map(|f| f.value.as_str())),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn common_shapes() {
        let text = "\
image:
  repository: ghcr.io/acme/web
  tag: 1.2.0
  pullPolicy: IfNotPresent
postgresql:
  image:
    registry: docker.io
    repository: bitnami/postgresql
    tag: 15.4.0-debian-11-r0
    digest: \"\"
metrics:
  image: {repository: prom/exporter, tag: \"0.15\"}
worker:
  image: ghcr.io/acme/worker:2.0
other:
  repository: https://charts.example.com
  image: \"\"
";
        let sites = sites_of(text, &[]);
        assert_eq!(sites.len(), 4, "{sites:#?}");
        assert_eq!(
            split(&sites[0]),
            [None, Some("ghcr.io/acme/web"), Some("1.2.0"), None]
        );
        assert_eq!(sites[0].line, 3);
        assert_eq!(
            split(&sites[1]),
            [
                Some("docker.io"),
                Some("bitnami/postgresql"),
                Some("15.4.0-debian-11-r0"),
                None // `digest: ""` is Bitnami's "no digest", not an empty one
            ]
        );
        assert_eq!(
            split(&sites[2]),
            [None, Some("prom/exporter"), Some("0.15"), None]
        );
        match &sites[3].parts {
            Parts::Whole(f) => {
                assert_eq!(f.value, "ghcr.io/acme/worker:2.0");
                assert_eq!(f.path, "worker.image");
            }
            other => panic!("{other:?}"),
        }
        assert!(sites
            .iter()
            .all(|s| s.format == Format::Helm && s.keys.is_none()));
    }

    #[test]
    fn version_keys_image_suffixes_and_dotted_keys() {
        let text = "\
app:
  image:
    registry: ghcr.io
    repository: acme/app
    version: 2.1.0
chart:
  repository: https://charts.example.com
  version: 1.2.3
sidecarImage: ghcr.io/acme/side:1.0.0
initImage: \"busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000\"
pullImage: true
baseImage: ubuntu
image.name: ghcr.io/acme/web
image.tag: v1.0.0
worker:
  image.repository: ghcr.io/acme/worker
  image.tag: '3.0'
  image.pullPolicy: Always
";
        let mut sites = sites_of(text, &[]);
        sites.sort_by_key(|s| s.parts.scalars()[0].span.start);
        assert_eq!(sites.len(), 5, "{sites:#?}");
        assert_eq!(
            split(&sites[0]),
            [Some("ghcr.io"), Some("acme/app"), Some("2.1.0"), None]
        );
        let tag_path = |s: &Site| match &s.parts {
            Parts::Split { tag: Some(t), .. } => t.path.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(tag_path(&sites[0]), "app.image.version");
        let whole: Vec<(String, String)> = sites[1..3]
            .iter()
            .map(|s| match &s.parts {
                Parts::Whole(f) => (f.path.clone(), f.value.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            whole[0],
            ("sidecarImage".into(), "ghcr.io/acme/side:1.0.0".into())
        );
        assert_eq!(whole[1].0, "initImage");
        assert_eq!(
            split(&sites[3]),
            [None, Some("ghcr.io/acme/web"), Some("v1.0.0"), None]
        );
        assert_eq!(tag_path(&sites[3]), "image.tag");
        assert_eq!(
            split(&sites[4]),
            [None, Some("ghcr.io/acme/worker"), Some("3.0"), None]
        );
        assert_eq!(tag_path(&sites[4]), "worker.image.tag");
        assert_eq!(sites[4].line, 17);
    }

    #[test]
    fn a_spec_path_names_one_key_holding_the_whole_reference() {
        // Argo CD Image Updater's helm.image-spec: any key name, nested or literal dotted.
        let text = "images:\n  backend: ghcr.io/acme/backend:1.0.0\nfrontend.canonical: 'ghcr.io/acme/fe:2.0.0'\nempty: ''\n";
        let spec = |p: &str| HelmKeys {
            spec: Some(p.into()),
            // Ignored beside a spec, as in Image Updater.
            tag: Some("images.tag".into()),
            ..Default::default()
        };
        let sites = sites_of(
            text,
            &[
                spec("images.backend"),
                spec("frontend.canonical"),
                spec("empty"),
                spec("missing"),
            ],
        );
        let got: Vec<(Option<usize>, usize, &str)> = sites
            .iter()
            .filter_map(|s| match &s.parts {
                Parts::Whole(f) if s.keys.is_some() => Some((s.keys, s.line, f.value.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(
            got,
            [
                (Some(0), 2, "ghcr.io/acme/backend:1.0.0"),
                (Some(1), 3, "ghcr.io/acme/fe:2.0.0")
            ]
        );
    }

    #[test]
    fn configured_paths_find_literal_dotted_keys() {
        let text = "image.tag: v1\napp:\n  image.tag: v2\nnested:\n  image:\n    tag: v3\n";
        let keys = |p: &str| HelmKeys {
            tag: Some(p.into()),
            ..Default::default()
        };
        let sites = sites_of(
            text,
            &[
                keys("image.tag"),
                keys("app.image.tag"),
                keys("nested.image.tag"),
            ],
        );
        let tags: Vec<[Option<&str>; 4]> = sites.iter().map(split).collect();
        assert_eq!(
            tags,
            [
                [None, None, Some("v1"), None],
                [None, None, Some("v2"), None],
                [None, None, Some("v3"), None]
            ]
        );
    }

    #[test]
    fn configured_key_paths() {
        let text = "\
app:
  img:
    host: registry.example.com
    path: team/app
  version: 15.4
sidecars:
  - name: s
    ver: v1
";
        let keys = vec![
            HelmKeys {
                registry: Some("app.img.host".into()),
                repository: Some("app.img.path".into()),
                tag: Some("app.version".into()),
                digest: Some("app.digest".into()),
                spec: None,
            },
            HelmKeys {
                tag: Some("sidecars[0].ver".into()),
                ..Default::default()
            },
            HelmKeys {
                tag: Some("missing.tag".into()),
                ..Default::default()
            },
        ];
        let sites = sites_of(text, &keys);
        assert_eq!(sites.len(), 2);
        assert_eq!(
            split(&sites[0]),
            [
                Some("registry.example.com"),
                Some("team/app"),
                Some("15.4"),
                None
            ]
        );
        assert_eq!(sites[0].keys, Some(0));
        assert_eq!(sites[0].line, 5);
        assert_eq!(split(&sites[1]), [None, None, Some("v1"), None]);
        assert_eq!(sites[1].keys, Some(1));
        match &sites[1].parts {
            Parts::Split { tag: Some(t), .. } => assert_eq!(t.path, "sidecars[0].ver"),
            _ => unreachable!(),
        }
    }

    #[test]
    fn null_alias_and_collection_values() {
        let text = "\
t: &t v1
a:
  repository: x
  tag:
b:
  repository: y
  tag: *t
c:
  repository: [z]
  tag: v1
d:
  image: *t
";
        let sites = sites_of(text, &[]);
        assert_eq!(sites.len(), 1, "{sites:#?}");
        assert_eq!(split(&sites[0]), [None, Some("x"), None, None]);
    }

    #[test]
    fn key_paths_and_file_names() {
        assert_eq!(
            parse_key_path("a.b[2][0].c"),
            Some(vec![
                Segment::Key("a".into()),
                Segment::Key("b".into()),
                Segment::Index(2),
                Segment::Index(0),
                Segment::Key("c".into())
            ])
        );
        for bad in ["", "a..b", ".a", "a[x]", "a[1", "a[1]b"] {
            assert_eq!(parse_key_path(bad), None, "{bad}");
        }
        assert!(is_values_file(FsPath::new("charts/web/values.yaml")));
        assert!(is_values_file(FsPath::new("values-prod.yml")));
        assert!(!is_values_file(FsPath::new("prod-values.yaml")));
        assert!(!is_values_file(FsPath::new("values.json")));
    }

    #[test]
    fn helm_release_values_only_for_flux_helm_releases() {
        let text = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nspec:\n  values:\n    image: {repository: a, tag: b}\n---\napiVersion: v1\nkind: HelmRelease\nspec: {values: {}}\n";
        let docs = parse_documents(text).unwrap();
        assert!(helm_release_values(docs[0].root.as_ref().unwrap()).is_some());
        assert!(helm_release_values(docs[1].root.as_ref().unwrap()).is_none());
    }
}
