//! Faults between us and the real registry, injected by a proxy the tests run: 429 with
//! `Retry-After`, 503 bursts, resets, a stalled answer, cut-off and broken JSON. Retries are
//! bounded and counted at the proxy, the run's deadline holds, one registry down leaves the
//! others alone, and the concurrency and rate limits hold on the wire.

use crate::common;

use std::time::{Duration, Instant};

use common::{bare_env, block_on, registries, test_options, Fault, FaultProxy, Registry};
use image_updater::reference::ImageRef;
use image_updater::registry::{Registries, RegistryOptions};

fn setup() -> (Registry, FaultProxy) {
    let registry = Registry::start();
    registry.push_image("acme/web", &["1.0.0", "1.1.0"]);
    let proxy = FaultProxy::start(&registry.addr);
    (registry, proxy)
}

fn via(proxy: &FaultProxy, extra: &str, options: RegistryOptions) -> Registries {
    let yaml = format!(
        "registries:\n  - host: faulty.test\n    api: http://{}\n{extra}",
        proxy.addr
    );
    registries(&yaml, options)
}

fn list(regs: &Registries) -> Result<Vec<String>, String> {
    block_on(async { regs.source("faulty.test").list_tags("acme/web").await })
        .map_err(|e| e.to_string())
}

#[test]
fn retry_after_is_honoured_on_429() {
    let (_registry, proxy) = setup();
    proxy.inject("/tags/list", [Fault::Status(429, Some("1".into()))]);
    let regs = via(&proxy, "", test_options(bare_env()));
    let started = Instant::now();
    assert_eq!(list(&regs).unwrap().len(), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited as asked"
    );
    assert_eq!(proxy.count("/tags/list"), 2, "{:?}", proxy.requests());
}

#[test]
fn bursts_resets_and_cut_off_bodies_are_retried() {
    let (_registry, proxy) = setup();
    proxy.inject(
        "/tags/list",
        [
            Fault::Status(503, None),
            Fault::Status(502, None),
            Fault::Close,
            Fault::Truncate,
            Fault::HalfJson,
        ],
    );
    let mut options = test_options(bare_env());
    options.max_attempts = 6;
    let regs = via(&proxy, "", options);
    assert_eq!(list(&regs).unwrap().len(), 2);
    assert_eq!(proxy.count("/tags/list"), 6, "{:?}", proxy.requests());
}

#[test]
fn a_stalled_answer_times_out_and_is_retried() {
    let (_registry, proxy) = setup();
    proxy.inject("/tags/list", [Fault::Stall(Duration::from_secs(8))]);
    let mut options = test_options(bare_env());
    options.request_timeout = Duration::from_secs(1);
    let regs = via(&proxy, "", options);
    let started = Instant::now();
    assert_eq!(list(&regs).unwrap().len(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(proxy.count("/tags/list"), 2);
}

#[test]
fn retries_are_bounded_and_a_long_retry_after_is_not_waited_for() {
    let (_registry, proxy) = setup();
    proxy.inject("/tags/list", vec![Fault::Status(503, None); 10]);
    let mut options = test_options(bare_env());
    options.max_attempts = 3;
    let regs = via(&proxy, "", options);
    let e = list(&regs).unwrap_err();
    assert!(
        e.contains("503") && e.contains("gave up after 3 attempts"),
        "{e}"
    );
    assert!(e.contains("faulty.test: acme/web"), "{e}");
    assert_eq!(proxy.count("/tags/list"), 3);

    let (_registry, proxy) = setup();
    proxy.inject("/tags/list", [Fault::Status(429, Some("3600".into()))]);
    let regs = via(&proxy, "", test_options(bare_env()));
    let started = Instant::now();
    let e = list(&regs).unwrap_err();
    assert!(e.contains("retry after 3600s"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(proxy.count("/tags/list"), 1);
}

#[test]
fn the_deadline_holds_and_a_dead_or_stalled_registry_leaves_the_others_alone() {
    let (registry, stalled) = setup();
    stalled.inject(
        "/tags/list",
        vec![Fault::Stall(Duration::from_secs(30)); 10],
    );
    let yaml = format!(
        "registries:\n  - host: stalled.test\n    api: http://{}\n  - host: dead.test\n    api: http://127.0.0.1:1\n  - host: fine.test\n    api: http://{}\n",
        stalled.addr, registry.addr
    );
    let mut options = test_options(bare_env());
    options.request_timeout = Duration::from_secs(20);
    options.deadline = Duration::from_secs(3);
    options.max_attempts = 3;
    let regs = registries(&yaml, options);
    let images: Vec<ImageRef> = [
        "stalled.test/acme/web",
        "dead.test/acme/web",
        "fine.test/acme/web",
    ]
    .iter()
    .map(|s| ImageRef::parse(s).unwrap())
    .collect();
    let started = Instant::now();
    let results = block_on(regs.resolve_all(images.iter()));
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the 3 s deadline held: {took:?}"
    );
    let stalled_err = results["stalled.test/acme/web"]
        .as_ref()
        .unwrap_err()
        .to_string();
    assert!(stalled_err.contains("deadline"), "{stalled_err}");
    let dead_err = results["dead.test/acme/web"]
        .as_ref()
        .unwrap_err()
        .to_string();
    assert!(dead_err.starts_with("dead.test: acme/web: "), "{dead_err}");
    assert!(dead_err.to_lowercase().contains("connect"), "{dead_err}");
    assert_eq!(results["fine.test/acme/web"].as_ref().unwrap().len(), 2);
}

/// Twelve repositories behind the proxy.
fn twelve() -> (Registry, FaultProxy, Vec<ImageRef>) {
    let registry = Registry::start();
    let images = (0..12)
        .map(|i| {
            registry.push_image(&format!("acme/app{i}"), &["1.0.0"]);
            ImageRef::parse(&format!("faulty.test/acme/app{i}")).unwrap()
        })
        .collect();
    let proxy = FaultProxy::start(&registry.addr);
    (registry, proxy, images)
}

#[test]
fn max_concurrency_holds_at_the_proxy() {
    let (_registry, proxy, images) = twelve();
    proxy.set_delay(Duration::from_millis(200));
    let regs = via(
        &proxy,
        "    max_concurrency: 3\n    requests_per_second: 1000\n",
        test_options(bare_env()),
    );
    let results = block_on(regs.resolve_all(images.iter()));
    assert!(results.values().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(proxy.count("/tags/list"), 12);
    let max = proxy.max_in_flight();
    assert!(
        (2..=3).contains(&max),
        "at most 3 in flight, and concurrency was used: {max}"
    );
}

#[test]
fn requests_per_second_holds_at_the_proxy() {
    let (_registry, proxy, images) = twelve();
    let regs = via(
        &proxy,
        "    max_concurrency: 8\n    requests_per_second: 5\n",
        test_options(bare_env()),
    );
    let results = block_on(regs.resolve_all(images.iter()));
    assert!(results.values().all(|r| r.is_ok()), "{results:?}");
    let arrivals = proxy.arrivals();
    assert_eq!(arrivals.len(), 12);
    // 5 a second: any 6 consecutive requests span at least 5 intervals of 200 ms.
    for w in arrivals.windows(6) {
        let span = w[5] - w[0];
        assert!(
            span >= Duration::from_millis(950),
            "6 requests within {span:?}"
        );
    }
}
