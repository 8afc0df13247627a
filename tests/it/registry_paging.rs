//! Tag lists read completely: 2,500 tags through a registry front that caps pages at 100 and
//! links the next page, and a registry that ignores `n` read in one request.

use crate::common;

use common::{bare_env, block_on, registries, test_options, FaultProxy, PagingFront, Registry};

/// A registry whose `acme/many` holds 0.0.1 plus 2,500 more tags, written straight into its
/// storage (pushing each would take minutes).
fn many_tags() -> Registry {
    let registry = Registry::start();
    let digest = registry.push_image("acme/many", &["0.0.1"]).remove(0);
    let tags_dir = registry
        .storage_dir()
        .join("docker/registry/v2/repositories/acme/many/_manifests/tags");
    for major in 1..=5 {
        for minor in 0..500 {
            let dir = tags_dir.join(format!("{major}.{minor}.0")).join("current");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("link"), &digest).unwrap();
        }
    }
    registry
}

fn list_via(addr: &str) -> Vec<String> {
    let yaml = format!("registries:\n  - host: many.test\n    api: http://{addr}\n");
    let regs = registries(&yaml, test_options(bare_env()));
    block_on(async { regs.source("many.test").list_tags("acme/many").await }).unwrap()
}

#[test]
fn link_header_pages_2500_tags_capped_at_100_until_exhausted() {
    let registry = many_tags();
    let front = PagingFront::start(&registry.addr, 100);
    let tags = list_via(&front.addr);
    assert_eq!(tags.len(), 2501);
    let mut sorted = tags.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 2501, "no tag twice");
    let pages: Vec<String> = front
        .requests()
        .into_iter()
        .filter(|r| r.contains("/tags/list"))
        .collect();
    // We ask for 1000, the front gives 100 and a Link: 26 pages, each after the previous.
    assert_eq!(pages.len(), 26, "{pages:?}");
    assert!(pages[0].ends_with("/tags/list?n=1000"), "{pages:?}");
    assert!(pages[1..].iter().all(|p| p.contains("last=")), "{pages:?}");
}

#[test]
fn a_registry_that_ignores_n_is_read_in_one_request() {
    let registry = many_tags();
    let proxy = FaultProxy::start(&registry.addr);
    assert_eq!(list_via(&proxy.addr).len(), 2501);
    assert_eq!(proxy.count("/tags/list"), 1, "{:?}", proxy.requests());
}
