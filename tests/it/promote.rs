//! `promote STAGE [IMAGE] [--force] [--reason TEXT]` (issue 22) against the real registry and
//! real git remotes: soak is ignored only with `--force`, the commit records who asked and
//! why, and a promotion backwards locks the image as `set` does.

use crate::common::{self, git, output_text};
use crate::stages::{pending, scenario, DEV_STAGING};

fn built() -> Vec<(&'static str, &'static str, i64)> {
    vec![
        ("acme/web", "1.1.0", 900),
        ("acme/web", "1.2.0", 800),
        ("acme/web", "1.3.0", 700),
        ("acme/api", "2.0.0", 900),
    ]
}

#[test]
fn promote_waits_for_the_soak_unless_forced_and_says_who_asked_and_why() {
    let s = scenario("  mode: commit\n", DEV_STAGING, &built());
    s.commit(
        72,
        &[
            ("dev", "web", "1.1.0"),
            ("dev", "api", "2.0.0"),
            ("staging", "web", "1.1.0"),
            ("staging", "api", "2.0.0"),
        ],
    );
    s.commit(2, &[("dev", "web", "1.3.0")]);
    let main_before = git(&s.bare, &["rev-parse", "main"]);

    let o = s.run(&["promote", "staging", "web", "--path", s.work()], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    let report = common::output_json(&o);
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("promote staging: web not promoted: soaking until"),
        "{message}"
    );
    assert!(message.ends_with("(--force promotes it now)"), "{message}");
    assert_eq!(git(&s.bare, &["rev-parse", "main"]), main_before);

    let o = s.run(
        &[
            "promote",
            "staging",
            "web",
            "--force",
            "--reason",
            "hotfix for incident 7",
            "--path",
            s.work(),
        ],
        &[("GITHUB_ACTOR", "alice")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(s.remote_tag("staging", "web"), "1.3.0");
    let report = common::output_json(&o);
    assert_eq!(report["updates"][0]["to"], "1.3.0");
    assert_eq!(
        report["updates"][0]["note"],
        "promoted with --force: soak not over"
    );
    let message = s.last_message();
    assert!(
        message.starts_with("chore(images): promote web 1.3.0 to staging"),
        "{message}"
    );
    assert!(
        message.contains("Promoted by alice: hotfix for incident 7"),
        "{message}"
    );
    assert!(message.contains("Soak ignored (--force)."), "{message}");
}

#[test]
fn a_backwards_promotion_locks_the_image_and_run_does_not_move_back_on_its_own() {
    let s = scenario("  mode: commit\n", DEV_STAGING, &built());
    s.commit(
        72,
        &[
            ("dev", "web", "1.3.0"),
            ("dev", "api", "2.0.0"),
            ("staging", "web", "1.3.0"),
            ("staging", "api", "2.0.0"),
        ],
    );
    s.commit(30, &[("dev", "web", "1.2.0")]);

    // A run never moves a stage backwards: it says what would.
    let o = s.run(&["run", s.work(), "--stage", "staging"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let report = common::output_json(&o);
    assert_eq!(
        pending(&report, "staging"),
        [(
            "web".to_string(),
            "1.2.0".to_string(),
            "dev holds 1.2.0, lower than 1.3.0: promote staging moves it back".to_string()
        )]
    );
    assert_eq!(s.remote_tag("staging", "web"), "1.3.0");

    // promote does, and locks the image; the commit names who asked (git's user here).
    let user = git(&s.work, &["config", "user.name"]);
    let o = s.run(
        &[
            "promote",
            "staging",
            "web",
            "--reason",
            "1.3 breaks logins",
            "--path",
            s.work(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(s.remote_tag("staging", "web"), "1.2.0");
    let report = common::output_json(&o);
    assert_eq!(report["updates"][0]["note"], "rollback: a lower version");
    let message = s.last_message();
    assert!(
        message.contains(&format!("Promoted by {}", user.trim())),
        "{message}"
    );
    assert!(message.contains(": 1.3 breaks logins"), "{message}");
    let config = git(&s.bare, &["show", "main:.image-updater.yaml"]);
    let web = format!("{}/acme/web", s.registry.addr);
    assert!(config.contains("locks:"), "{config}");
    assert!(config.contains(&web), "{config}");
    assert!(
        config.contains("rolled back from 1.3.0 to 1.2.0 by image-updater promote staging"),
        "{config}"
    );

    // The lock holds: the next run leaves the image where it is, and says why.
    let o = s.run(&["run", s.work()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(s.remote_tag("dev", "web"), "1.2.0");
    assert_eq!(s.remote_tag("staging", "web"), "1.2.0");
    let report = common::output_json(&o);
    assert!(
        report["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["reason"]
                .as_str()
                .unwrap()
                .starts_with("locked: rolled back")),
        "{report:#}"
    );
}

#[test]
fn promote_refuses_a_first_stage_and_an_image_the_stage_does_not_hold() {
    let s = scenario("  mode: commit\n", DEV_STAGING, &built());
    s.commit(72, &[("dev", "web", "1.1.0"), ("staging", "web", "1.1.0")]);
    let o = s.run(&["promote", "dev", "--path", s.work()], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("stage dev has no from"));
    let o = s.run(&["promote", "staging", "db", "--path", s.work()], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("promote: no reference of db in the files of stage staging"));
}
