//! Digests and platforms of tags, against multi-platform indexes the test pushes to the real
//! registry: what digest pinning and platform policies rely on.

use crate::common;

use common::{bare_env, block_on, registries, test_options, Fault, FaultProxy, Registry};
use image_updater::registry::Registries;

fn source_for(addr: &str) -> Registries {
    let yaml = format!("registries:\n  - host: r.test\n    api: http://{addr}\n");
    registries(&yaml, test_options(bare_env()))
}

#[test]
fn oci_index_and_docker_list_digests_and_platforms() {
    let registry = Registry::start();
    let (index, manifests) = registry.push_index(
        "acme/multi",
        "1.0.0",
        &["linux/amd64", "linux/arm64/v8", "linux/arm/v7"],
    );
    assert_eq!(manifests.len(), 3);
    let (list, _) =
        registry.push_docker_list("acme/multi", "0.9.0", &["linux/amd64", "windows/amd64"]);
    let single = registry.push_image("acme/multi", &["0.1.0"]).remove(0);

    let regs = source_for(&registry.addr);
    let s = regs.source("r.test");
    block_on(async {
        assert_eq!(s.digest("acme/multi", "1.0.0").await.unwrap(), index);
        assert_eq!(
            s.platforms("acme/multi", "1.0.0").await.unwrap(),
            Some(vec![
                "linux/amd64".to_string(),
                "linux/arm64/v8".to_string(),
                "linux/arm/v7".to_string()
            ]),
            "attestation entries are not platforms"
        );
        assert_eq!(s.digest("acme/multi", "0.9.0").await.unwrap(), list);
        assert_eq!(
            s.platforms("acme/multi", "0.9.0").await.unwrap(),
            Some(vec!["linux/amd64".to_string(), "windows/amd64".to_string()])
        );
        // A single-platform image: its manifest's digest, its config's platform.
        assert_eq!(s.digest("acme/multi", "0.1.0").await.unwrap(), single);
        assert_eq!(
            s.platforms("acme/multi", "0.1.0").await.unwrap(),
            Some(vec!["linux/amd64".to_string()])
        );
        let e = s.digest("acme/multi", "9.9.9").await.unwrap_err();
        assert!(
            e.message.contains("tag 9.9.9") && e.message.contains("404"),
            "{e}"
        );
    });
}

#[test]
fn digest_without_the_header_is_the_hash_of_the_manifest() {
    let registry = Registry::start();
    let (index, _) = registry.push_index("acme/multi", "2.0.0", &["linux/amd64"]);
    let proxy = FaultProxy::start(&registry.addr);
    proxy.inject(
        "/manifests/2.0.0",
        [Fault::NoDigestHeader, Fault::NoDigestHeader],
    );
    let regs = source_for(&proxy.addr);
    let d = block_on(async { regs.source("r.test").digest("acme/multi", "2.0.0").await }).unwrap();
    assert_eq!(d, index);
    let seen: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.contains("/manifests/"))
        .collect();
    assert_eq!(
        seen,
        [
            "HEAD /v2/acme/multi/manifests/2.0.0",
            "GET /v2/acme/multi/manifests/2.0.0"
        ]
    );
}
