//! The real registry behind TLS with a CA the test makes: trusted through `ca_file`, refused
//! clearly without it, reached with `insecure`; and never a silent fallback to plain HTTP.

use crate::common;

use common::{bare_env, block_on, registries, test_options, Registry, TestCa};

fn tls_registry(ca: &TestCa) -> Registry {
    let mut registry = Registry::start();
    registry.push_image("acme/web", &["1.0.0", "1.2.0"]);
    registry.restart_with("", Some((&ca.cert_path, &ca.key_path)));
    registry
}

fn list(yaml: &str, host: &str) -> Result<Vec<String>, String> {
    let regs = registries(yaml, test_options(bare_env()));
    block_on(async { regs.source(host).list_tags("acme/web").await }).map_err(|e| e.to_string())
}

#[test]
fn ca_file_trusts_the_registry_and_without_it_the_error_says_what_to_set() {
    let ca = TestCa::new();
    let registry = tls_registry(&ca);
    let host = registry.addr.clone();

    let with_ca = format!(
        "registries:\n  - host: {host}\n    ca_file: {}\n",
        ca.ca_path.display()
    );
    let mut tags = list(&with_ca, &host).unwrap();
    tags.sort();
    assert_eq!(tags, ["1.0.0", "1.2.0"]);

    // No config at all: verified TLS against the system roots fails, at once and clearly.
    let started = std::time::Instant::now();
    let e = list("registries: []\n", &host).unwrap_err();
    assert!(e.contains("certificate"), "{e}");
    assert!(e.contains("ca_file"), "{e}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "a certificate error is not retried"
    );

    // A ca_file that is not there.
    let missing = format!("registries:\n  - host: {host}\n    ca_file: /nonexistent/ca.pem\n");
    let e = list(&missing, &host).unwrap_err();
    assert!(e.contains("ca_file /nonexistent/ca.pem"), "{e}");
}

#[test]
fn insecure_accepts_an_unverified_certificate_and_plain_http() {
    let ca = TestCa::new();
    let registry = tls_registry(&ca);
    let yaml = format!(
        "registries:\n  - host: {}\n    insecure: true\n",
        registry.addr
    );
    assert_eq!(list(&yaml, &registry.addr).unwrap().len(), 2);

    // A plain-HTTP registry: without insecure it is an error, never a silent fallback to
    // HTTP (the registry logs no request for the tags)...
    let plain = Registry::start();
    plain.push_image("acme/web", &["0.1.0"]);
    let e = list("registries: []\n", &plain.addr).unwrap_err();
    assert!(
        e.contains("https://") && e.contains("insecure: true"),
        "{e}"
    );
    assert!(
        !plain.log().contains("acme/web/tags/list"),
        "{}",
        plain.log()
    );
    // ...and insecure reaches it after HTTPS fails.
    let yaml = format!(
        "registries:\n  - host: {}\n    insecure: true\n",
        plain.addr
    );
    assert_eq!(list(&yaml, &plain.addr).unwrap(), ["0.1.0"]);
    assert!(
        plain.log().contains("acme/web/tags/list"),
        "{}",
        plain.log()
    );
}
