//! kustomize `images:` entries: `name` (the match key), `newName`, `newTag`, `digest`.
//!
//! A document is a kustomization when it is `kind: Kustomization` (or `Component`) of
//! `kustomize.config.k8s.io`, or when the file is named `kustomization.yaml`,
//! `kustomization.yml` or `Kustomization` and the document says no other kind or API group.
//! (Flux's own `Kustomization`, `kustomize.toolkit.fluxcd.io`, is not one.)

use std::path::Path as FsPath;

use super::scan::{self, Node, Path, Segment};
use super::{Format, Parts, Site};

/// kustomize's API group.
pub const GROUP: &str = "kustomize.config.k8s.io";

/// Whether the file name is one kustomize reads by itself.
pub fn is_kustomization_file(path: &FsPath) -> bool {
    matches!(
        path.file_name().and_then(|n| n.to_str()),
        Some("kustomization.yaml" | "kustomization.yml" | "Kustomization")
    )
}

/// Whether `root` is a kustomization (`by_name`: the file is named like one).
pub fn is_kustomization(root: &Node, by_name: bool) -> bool {
    let (api, kind) = scan::api_version_kind(root);
    let kind_ok = matches!(kind, Some("Kustomization" | "Component"));
    if scan::in_group(api, GROUP) {
        return kind_ok || (by_name && kind.is_none());
    }
    by_name && api.is_none() && (kind.is_none() || kind_ok)
}

/// The `images:` entries of a kustomization `root` as sites: `name` is `newName` if present,
/// else the entry's `name` (the match key); `tag` is `newTag`; `digest` is `digest`. An entry
/// with neither `newTag` nor `digest` is still a site (its tag is `None`). Entries whose
/// values are not scalars (aliases, say) are left out.
pub fn sites(root: &Node, out: &mut Vec<Site>) {
    let Some(images) = root.get("images").and_then(Node::as_sequence) else {
        return;
    };
    for (i, entry) in images.iter().enumerate() {
        if entry.as_mapping().is_none() {
            continue;
        }
        let mut path = Path(vec![Segment::Key("images".into()), Segment::Index(i)]);
        let mut part = |key: &str| -> Result<Option<super::Found>, ()> {
            let Some(node) = entry.get(key) else {
                return Ok(None);
            };
            if node.is_null() || node.as_str() == Some("") {
                return Ok(None);
            }
            path.push(Segment::Key(key.into()));
            let found = node.to_found(&path).ok_or(());
            path.pop();
            found.map(Some)
        };
        let (Ok(name), Ok(new_name), Ok(tag), Ok(digest)) = (
            part("name"),
            part("newName"),
            part("newTag"),
            part("digest"),
        ) else {
            continue;
        };
        let Some(name) = new_name.or(name) else {
            continue;
        };
        let parts = Parts::Split {
            registry: None,
            name: Some(name),
            tag,
            digest,
        };
        out.push(Site {
            format: Format::Kustomize,
            policy: None,
            keys: None,
            line: parts.report_line(),
            parts,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::scan::parse_documents;

    fn found(text: &str, by_name: bool) -> Vec<(String, Option<String>, Option<String>, usize)> {
        let mut out = Vec::new();
        for doc in parse_documents(text).unwrap() {
            let Some(root) = &doc.root else { continue };
            if is_kustomization(root, by_name) {
                sites(root, &mut out);
            }
        }
        out.into_iter()
            .map(|s| match s.parts {
                Parts::Split {
                    name, tag, digest, ..
                } => {
                    let name = name.unwrap();
                    assert_eq!(
                        &text[name.span.clone()].trim_matches(['"', '\'']),
                        &name.value
                    );
                    (
                        name.path,
                        tag.map(|t| t.value),
                        digest.map(|d| d.value),
                        s.line,
                    )
                }
                other => panic!("{other:?}"),
            })
            .collect()
    }

    const KUST: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [deploy.yaml]
images:
  - name: ghcr.io/acme/web
    newTag: 1.2.0 # keep
  - name: nginx
    newName: registry.example.com/mirror/nginx
    newTag: \"1.25\"
  - name: api
    digest: sha256:0123
  - name: bare
  - name: postgres
    newTag: 15.4
";

    #[test]
    fn entries_by_kind() {
        let got = found(KUST, false);
        assert_eq!(
            got,
            [
                ("images[0].name".into(), Some("1.2.0".into()), None, 6),
                ("images[1].newName".into(), Some("1.25".into()), None, 9),
                (
                    "images[2].name".into(),
                    None,
                    Some("sha256:0123".into()),
                    10
                ),
                ("images[3].name".into(), None, None, 12),
                ("images[4].name".into(), Some("15.4".into()), None, 14),
            ]
        );
    }

    #[test]
    fn by_file_name_without_kind_and_not_flux_kustomizations() {
        let bare = "images:\n- name: a\n  newTag: v1\n";
        assert_eq!(found(bare, true).len(), 1);
        assert_eq!(found(bare, false).len(), 0);
        let flux = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nimages:\n- name: a\n  newTag: v1\n";
        assert_eq!(found(flux, true).len(), 0);
        let component = "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nimages: [{name: a, newTag: v2}]\n";
        assert_eq!(found(component, false)[0].1.as_deref(), Some("v2"));
        let other = "apiVersion: v1\nkind: ConfigMap\nimages:\n- name: a\n  newTag: v1\n";
        assert_eq!(found(other, true).len(), 0);
        assert!(is_kustomization_file(FsPath::new("a/b/kustomization.yml")));
        assert!(is_kustomization_file(FsPath::new("Kustomization")));
        assert!(!is_kustomization_file(FsPath::new("kustomization.json")));
    }

    #[test]
    fn aliases_and_odd_entries_are_skipped() {
        let text = "kind: Kustomization\napiVersion: kustomize.config.k8s.io/v1beta1\nt: &t v1\nimages:\n- name: a\n  newTag: *t\n- just-a-string\n- newTag: v3\n- name: b\n  newTag:\n";
        let got = found(text, false);
        assert_eq!(got, [("images[3].name".into(), None, None, 9)]);
    }
}
