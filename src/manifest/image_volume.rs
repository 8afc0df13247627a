//! Kubernetes image volumes: `volumes[].image.reference` of a pod spec (an OCI image mounted
//! as a read-only volume).
//!
//! As for containers, no kind's layout is assumed: any mapping holding both a `containers`
//! sequence and a `volumes` sequence is a pod spec (a Pod's `spec`, a Deployment's
//! `spec.template.spec`, a CronJob's `jobTemplate`, ...), and each volume with an `image`
//! mapping contributes its `reference` scalar.

use super::scan::{self, Node, Path, Segment};
use super::{Format, Site};

/// Every image volume's `reference` in the document, in source order.
pub fn sites(root: &Node, out: &mut Vec<Site>) {
    scan::walk(root, &mut Path::default(), &mut |node, path| {
        if node.get("containers").and_then(Node::as_sequence).is_none() {
            return;
        }
        let Some(volumes) = node.get("volumes").and_then(Node::as_sequence) else {
            return;
        };
        for (i, volume) in volumes.iter().enumerate() {
            let Some(reference) = volume.get("image").and_then(|i| i.get("reference")) else {
                continue;
            };
            if reference.is_null() {
                continue;
            }
            let mut p = path.clone();
            p.push(Segment::Key("volumes".into()));
            p.push(Segment::Index(i));
            p.push(Segment::Key("image".into()));
            p.push(Segment::Key("reference".into()));
            if let Some(found) = reference.to_found(&p) {
                out.push(Site::whole(Format::ImageVolume, found));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::scan::parse_documents;
    use crate::manifest::Parts;

    #[test]
    fn volume_references_of_pod_specs() {
        let text = "\
kind: Deployment
spec:
  template:
    spec:
      containers: [{name: web, image: nginx:1.25}]
      volumes:
        - name: data
          image:
            reference: ghcr.io/acme/data:1.0   # the model
            pullPolicy: IfNotPresent
        - name: tmp
          emptyDir: {}
        - name: empty
          image: {reference: }
other:
  volumes: [{image: {reference: not-a-pod:1}}]
";
        let docs = parse_documents(text).unwrap();
        let mut out = Vec::new();
        sites(docs[0].root.as_ref().unwrap(), &mut out);
        let got: Vec<(String, String, usize)> = out
            .into_iter()
            .map(|s| match s.parts {
                Parts::Whole(f) => (f.path, f.value, s.line),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [(
                "spec.template.spec.volumes[0].image.reference".into(),
                "ghcr.io/acme/data:1.0".into(),
                9
            )]
        );
    }
}
