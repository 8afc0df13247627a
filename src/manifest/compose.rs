//! docker-compose: `services.*.image` of `compose*.yaml` and `docker-compose*.yaml` files
//! (`.yml` too), the names `docker compose` reads by default and their overrides.

use std::path::Path as FsPath;

use super::scan::{Node, Path, Segment};
use super::{Format, Site};

/// Whether the file name is a compose file: `compose*.y(a)ml` or `docker-compose*.y(a)ml`.
pub fn is_compose_file(path: &FsPath) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
        (n.starts_with("compose") || n.starts_with("docker-compose"))
            && (n.ends_with(".yaml") || n.ends_with(".yml"))
    })
}

/// Every service's `image` scalar (not null) as a whole reference.
pub fn sites(root: &Node, out: &mut Vec<Site>) {
    let Some(services) = root.get("services").and_then(Node::as_mapping) else {
        return;
    };
    for (name, service) in services {
        let Some(image) = service.get("image").filter(|i| !i.is_null()) else {
            continue;
        };
        let path = Path(vec![
            Segment::Key("services".into()),
            Segment::Key(name.as_str().unwrap_or("?").to_owned()),
            Segment::Key("image".into()),
        ]);
        if let Some(found) = image.to_found(&path) {
            out.push(Site::whole(Format::Compose, found));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::scan::parse_documents;
    use crate::manifest::Parts;

    #[test]
    fn services_images() {
        let text = "\
name: app
services:
  web:
    image: \"ghcr.io/acme/web:1.2\"   # pinned
    ports: [\"8080:80\"]
  db:
    image: postgres:15.4
  built:
    build: .
  nulled:
    image:
  aliased:
    image: *img
x-base: &img redis:7
";
        let text = text.replace(
            "*img\nx-base: &img redis:7",
            "&img redis:7\n  again:\n    image: *img",
        );
        let docs = parse_documents(&text).unwrap();
        let mut out = Vec::new();
        sites(docs[0].root.as_ref().unwrap(), &mut out);
        let got: Vec<(String, String, usize)> = out
            .into_iter()
            .map(|s| match s.parts {
                Parts::Whole(f) => (f.value, f.path, s.line),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "ghcr.io/acme/web:1.2".into(),
                    "services.web.image".into(),
                    4
                ),
                ("postgres:15.4".into(), "services.db.image".into(), 7),
                ("redis:7".into(), "services.aliased.image".into(), 13),
            ]
        );
    }

    #[test]
    fn file_names() {
        for yes in [
            "compose.yaml",
            "compose.override.yml",
            "docker-compose.yml",
            "a/docker-compose.prod.yaml",
        ] {
            assert!(is_compose_file(FsPath::new(yes)), "{yes}");
        }
        for no in ["composer.json", "my-compose.yaml", "docker-compose.json"] {
            assert!(!is_compose_file(FsPath::new(no)), "{no}");
        }
    }
}
