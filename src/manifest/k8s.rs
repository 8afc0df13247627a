//! Kubernetes workload image discovery: `image:` of every container in any kind of object.
//!
//! Rather than knowing each kind's layout (Pod, Deployment, CronJob's `jobTemplate`, Argo
//! Rollout, `List` items, ...), any `containers`, `initContainers` or `ephemeralContainers`
//! sequence anywhere in a document counts, and each of its mapping items contributes its
//! direct `image` scalar.

use std::collections::{HashMap, HashSet};

use super::scan::{self, Node, NodeKind, Path};
use super::Found;
#[cfg(test)]
use super::ManifestError;

/// Keys whose sequence items are container specs.
pub const CONTAINER_KEYS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// Every `image:` scalar value under `containers`, `initContainers` and `ephemeralContainers`
/// sequences of any kind (Pod, Deployment, StatefulSet, DaemonSet, Job, CronJob jobTemplate,
/// ReplicaSet, Argo Rollout, ...), anywhere in the document tree, in every document of a
/// multi-document file (`---`), including `List` items. Errors when the text is not valid YAML
/// (e.g. a Helm template with `{{ }}`).
///
/// Aliases are resolved, never expanded: a container that is an alias (`- *web`), merges one
/// (`<<: *base`) or whose `image` is one (`image: *img`) yields the anchored scalar, where it
/// is written, once however many aliases use it. An `image` that is a mapping or a sequence
/// is not an occurrence. Results are in source order.
///
/// The scan itself goes through [`images_in`] per document; this whole-text form serves the
/// tests only.
#[cfg(test)]
pub(crate) fn find_container_images(text: &str) -> Result<Vec<Found>, ManifestError> {
    let mut found = Vec::new();
    for doc in scan::parse_documents(text)? {
        if let Some(root) = &doc.root {
            images_in(root, &mut found);
        }
    }
    found.sort_by_key(|f| f.span.start);
    Ok(found)
}

/// Container images below `root`, appended to `out` (paths relative to `root`; an image found
/// through an alias has the path of the container that uses it).
pub fn images_in(root: &Node, out: &mut Vec<Found>) {
    let mut anchors: HashMap<usize, &Node> = HashMap::new();
    scan::walk(root, &mut Path::default(), &mut |node, _| {
        if node.anchor != 0 {
            anchors.insert(node.anchor, node);
        }
    });
    let mut seen: HashSet<usize> = out.iter().map(|f| f.span.start).collect();
    scan::walk(root, &mut Path::default(), &mut |node, path| {
        let Some(key) = path.last_key() else {
            return;
        };
        if !CONTAINER_KEYS.contains(&key) {
            return;
        }
        let Some(items) = resolve(node, &anchors).as_sequence() else {
            return;
        };
        let mut path = path.clone();
        for (i, item) in items.iter().enumerate() {
            let Some(image) = image_of(resolve(item, &anchors), &anchors, 0) else {
                continue;
            };
            let image = resolve(image, &anchors);
            path.push(scan::Segment::Index(i));
            path.push(scan::Segment::Key("image".to_owned()));
            if !image.is_null() && seen.insert(image.span.start) {
                out.extend(image.to_found(&path));
            }
            path.pop();
            path.pop();
        }
    });
}

/// The node an alias stands for (the node itself when it is not an alias).
fn resolve<'a>(node: &'a Node, anchors: &HashMap<usize, &'a Node>) -> &'a Node {
    match node.kind {
        NodeKind::Alias(id) => anchors.get(&id).copied().unwrap_or(node),
        _ => node,
    }
}

/// A container's `image` value: its own key, else one from its merge keys (`<<: *base`,
/// `<<: [*a, *b]`, first wins), bounded in depth.
fn image_of<'a>(
    container: &'a Node,
    anchors: &HashMap<usize, &'a Node>,
    depth: usize,
) -> Option<&'a Node> {
    if let Some(image) = container.get("image") {
        return Some(image);
    }
    if depth > 8 {
        return None;
    }
    let merged = resolve(container.get("<<")?, anchors);
    match merged.as_sequence() {
        Some(items) => items
            .iter()
            .find_map(|m| image_of(resolve(m, anchors), anchors, depth + 1)),
        None => image_of(merged, anchors, depth + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(usize, String, String)> {
        find_container_images(text)
            .unwrap()
            .into_iter()
            .map(|f| {
                assert_eq!(
                    scan::line_at(text, f.span.start),
                    f.line,
                    "line of {}",
                    f.value
                );
                (f.line, f.value, f.path)
            })
            .collect()
    }

    const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      initContainers:
        - name: migrate
          image: 'ghcr.io/acme/migrate:0.1'
      containers:
        - name: web
          image: ghcr.io/acme/web:1.2.0 # {\"$imagepolicy\": \"flux-system:web\"}
          env:
            - name: image
              value: not-this
        - name: sidecar
          image: \"docker.io/library/nginx:1.25\"
";

    #[test]
    fn deployment_with_init_containers_quotes_and_marker_comment() {
        let found = find_container_images(DEPLOYMENT).unwrap();
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].value, "ghcr.io/acme/migrate:0.1");
        assert_eq!(
            &DEPLOYMENT[found[0].span.clone()],
            "'ghcr.io/acme/migrate:0.1'"
        );
        assert_eq!(found[0].path, "spec.template.spec.initContainers[0].image");
        assert_eq!(found[0].line, 10);
        assert_eq!(found[1].value, "ghcr.io/acme/web:1.2.0");
        assert_eq!(&DEPLOYMENT[found[1].span.clone()], "ghcr.io/acme/web:1.2.0");
        assert_eq!(found[1].path, "spec.template.spec.containers[0].image");
        assert_eq!(found[1].line, 13);
        assert_eq!(
            &DEPLOYMENT[found[2].span.clone()],
            "\"docker.io/library/nginx:1.25\""
        );
        assert_eq!(found[2].path, "spec.template.spec.containers[1].image");
    }

    #[test]
    fn multi_document_crlf_and_bom() {
        let text = "\u{feff}# leading comment\r\n---\r\napiVersion: v1\r\nkind: Pod\r\nspec:\r\n  containers:\r\n  - name: a\r\n    image: nginx:1.2\r\n---\r\napiVersion: v1\r\nkind: ConfigMap\r\ndata: {image: nope}\r\n---\r\nkind: Pod\r\nspec:\r\n  ephemeralContainers:\r\n  - image: \"busybox:1.36\"\r\n";
        let found = find_container_images(text).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(&text[found[0].span.clone()], "nginx:1.2");
        assert_eq!(found[0].line, 8);
        assert_eq!(&text[found[1].span.clone()], "\"busybox:1.36\"");
        assert_eq!(found[1].value, "busybox:1.36");
        assert_eq!(found[1].path, "spec.ephemeralContainers[0].image");
        assert_eq!(found[1].line, 17);
    }

    #[test]
    fn flow_style_containers() {
        let text = "spec:\n  containers: [{name: a, image: \"x:1\"}, {name: b, image: y:2}]\n";
        let v = values(text);
        assert_eq!(
            v,
            [
                (2, "x:1".into(), "spec.containers[0].image".into()),
                (2, "y:2".into(), "spec.containers[1].image".into())
            ]
        );
    }

    #[test]
    fn cronjob_and_list_items() {
        let text = "\
apiVersion: v1
kind: List
items:
  - apiVersion: batch/v1
    kind: CronJob
    spec:
      schedule: '*/5 * * * *'
      jobTemplate:
        spec:
          template:
            spec:
              containers:
                - name: job
                  image: registry.example.com:5000/jobs/cleanup:2024.01.02
              restartPolicy: OnFailure
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    spec:
      template:
        spec:
          containers:
          - image: ghcr.io/acme/api@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
";
        let v = values(text);
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0].1,
            "registry.example.com:5000/jobs/cleanup:2024.01.02".to_string()
        );
        assert_eq!(
            v[0].2,
            "items[0].spec.jobTemplate.spec.template.spec.containers[0].image"
        );
        assert_eq!(v[0].0, 14);
        assert!(v[1].1.starts_with("ghcr.io/acme/api@sha256:"));
        assert_eq!(v[1].2, "items[1].spec.template.spec.containers[0].image");
    }

    #[test]
    fn image_keys_elsewhere_are_ignored() {
        let text = "\
image:
  repository: ghcr.io/acme/web
  tag: 1.2.0
containers:
  image: not-a-sequence
other:
  - image: not-under-containers
spec:
  containers:
    - name: a
      image: {repository: x}
    - name: b
      image: [x]
    - name: c
    - just-a-string
    - name: d
      image:
";
        // Mappings, sequences and the empty (null) `image:` of d are not references.
        assert_eq!(find_container_images(text).unwrap(), []);
    }

    #[test]
    fn anchors_aliases_and_tags() {
        let text = "\
base: &img ghcr.io/acme/web:1.0
spec:
  containers:
    - name: a
      image: *img
    - name: b
      image: &other !!str ghcr.io/acme/other:2.0
  initContainers: *missing_is_fine_if_defined
";
        // An undefined alias is a YAML error.
        assert!(find_container_images(text).is_err());
        let text = text.replace("*missing_is_fine_if_defined", "[]");
        let found = find_container_images(&text).unwrap();
        // The alias is resolved to the anchored scalar, which is where it is edited.
        let got: Vec<(&str, &str)> = found
            .iter()
            .map(|f| (f.value.as_str(), &text[f.span.clone()]))
            .collect();
        assert_eq!(
            got,
            [
                ("ghcr.io/acme/web:1.0", "ghcr.io/acme/web:1.0"),
                ("ghcr.io/acme/other:2.0", "ghcr.io/acme/other:2.0")
            ]
        );
        assert_eq!(found[0].path, "spec.containers[0].image");
    }

    #[test]
    fn aliased_and_merged_containers_yield_the_anchor_once() {
        let text = "\
x-base: &base
  image: ghcr.io/acme/web:1.0
  imagePullPolicy: IfNotPresent
x-more: &more {name: m}
spec:
  containers:
  - <<: *base
    name: a
  - *base
  - <<: [*more, *base]
    name: c
  - name: d
    image: &img ghcr.io/acme/web:1.1
  initContainers:
  - name: e
    image: *img
  ephemeralContainers: *missing
";
        assert!(find_container_images(text).is_err(), "undefined alias");
        let text = text.replace("*missing", "[]");
        let found = values(&text);
        assert_eq!(
            found,
            [
                (
                    2,
                    "ghcr.io/acme/web:1.0".into(),
                    "spec.containers[0].image".into()
                ),
                (
                    13,
                    "ghcr.io/acme/web:1.1".into(),
                    "spec.containers[3].image".into()
                ),
            ]
        );
    }

    #[test]
    fn helm_templates_are_errors() {
        let chart = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include \"chart.fullname\" . }}
  labels:
    {{- include \"chart.labels\" . | nindent 4 }}
spec:
  template:
    spec:
      containers:
        - name: {{ .Chart.Name }}
          image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"
";
        assert!(find_container_images(chart).is_err());
        let valid_but_template = "spec:\n  containers:\n    - image: {{ .Values.image }}\n";
        assert!(matches!(
            find_container_images(valid_but_template),
            Err(ManifestError::Template { line: 3, .. })
        ));
        let broken = "spec:\n  containers:\n    - image: \"x\n";
        assert!(matches!(
            find_container_images(broken),
            Err(ManifestError::Yaml { .. })
        ));
    }

    #[test]
    fn empty_and_comment_only_files() {
        assert!(find_container_images("").unwrap().is_empty());
        assert!(find_container_images("# nothing\n---\n---\n")
            .unwrap()
            .is_empty());
    }
}
