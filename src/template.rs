//! The user's templates filled with the values of updates: commit messages, pull-request
//! titles ([`fill_template`], [`commit_message`]) and branch names ([`render_branch`], made
//! valid git refs by [`sanitize_ref`]).

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::config;
use crate::report::Update;
use crate::shard::fnv1a;

/// Fill a template with the values of `updates`: with one update (or the first) its values fill
/// `{{ name }}`, `{{ image }}`, `{{ old_tag }}` and `{{ new_tag }}`; `{{ summary }}` and
/// `{{ count }}` describe all of them.
pub fn fill_template(template: &str, updates: &[Update]) -> String {
    let mut names: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for u in updates {
        if seen.insert((&u.policy, &u.to)) {
            names.push(format!("{} to {}", u.policy, u.to));
        }
    }
    let summary = match names.len() {
        0 => "no updates".to_string(),
        1..=3 => format!("update {}", names.join(", ")),
        n => format!("update {n} images"),
    };
    let first = updates.first();
    let pick = |f: fn(&Update) -> &str| first.map(f).unwrap_or_default().to_string();
    template
        .replace("{{ name }}", &pick(|u| &u.policy))
        .replace("{{ image }}", &pick(|u| &u.image))
        .replace("{{ old_tag }}", &pick(|u| &u.from))
        .replace("{{ new_tag }}", &pick(|u| &u.to))
        .replace("{{ count }}", &updates.len().to_string())
        .replace("{{ summary }}", &summary)
}

/// A commit message from its template ([`fill_template`]); a commit with several updates lists
/// each in the body; `signoff` adds a `Signed-off-by:` trailer.
pub fn commit_message(
    template: &str,
    updates: &[Update],
    signoff: Option<&config::Author>,
) -> String {
    commit_message_with(template, updates, signoff, "")
}

/// [`commit_message`] with a paragraph of plain text (`more`, empty for none) after the list
/// of updates and before the trailer: what changed in the app
/// ([`crate::deliver::app_changes::commit_text`]).
pub fn commit_message_with(
    template: &str,
    updates: &[Update],
    signoff: Option<&config::Author>,
    more: &str,
) -> String {
    let subject = fill_template(template, updates);
    let mut body = String::new();
    if updates.len() > 1 {
        body.push_str("\n\n");
        for u in updates {
            body.push_str(&format!(
                "- {}: {} {} -> {} ({}:{})\n",
                u.policy, u.image, u.from, u.to, u.file, u.line
            ));
        }
    }
    let mut message = format!("{}{}", subject.trim_end(), body.trim_end());
    if !more.trim().is_empty() {
        message.push_str("\n\n");
        message.push_str(more.trim_end());
    }
    if let Some(a) = signoff {
        message.push_str(&format!("\n\nSigned-off-by: {} <{}>", a.name, a.email));
    }
    message + "\n"
}

/// A branch name from its template, for the group `name` (a policy name, or `all`) and its
/// `updates`: `{{ name }}`, `{{ image }}`, `{{ new_tag }}` (of the first update), `{{ hash }}`
/// (a stable hash of every update's image, tag and file); a valid git ref ([`sanitize_ref`]).
pub fn render_branch(template: &str, name: &str, updates: &[Update]) -> String {
    let first = updates.first();
    let mut key = String::new();
    for u in updates {
        let _ = write!(key, "{}={}@{};", u.image, u.to, u.file);
    }
    let raw = template
        .replace("{{ name }}", name)
        .replace("{{ image }}", first.map_or("", |u| u.image.as_str()))
        .replace("{{ new_tag }}", first.map_or("", |u| u.to.as_str()))
        .replace("{{ hash }}", &format!("{:016x}", fnv1a(key.as_bytes())));
    sanitize_ref(&raw)
}

/// Whether a branch template names its branch from the group name alone, so the branch of a
/// policy with no update can be known (to close its pull request).
pub fn branch_needs_updates(template: &str) -> bool {
    ["{{ new_tag }}", "{{ hash }}", "{{ image }}"]
        .iter()
        .any(|v| template.contains(v))
}

/// Make `raw` a valid git branch name (git check-ref-format): forbidden characters become
/// `-`, no `..`, `//`, leading or trailing `/` or `.`, no `.lock` component ending.
pub fn sanitize_ref(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/') {
                c
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("..") {
        s = s.replace("..", ".");
    }
    while s.contains("//") {
        s = s.replace("//", "/");
    }
    let parts: Vec<String> = s
        .split('/')
        .map(|p| {
            let p = p.trim_matches('.');
            let p = p.strip_suffix(".lock").unwrap_or(p);
            p.to_string()
        })
        .filter(|p| !p.is_empty())
        .collect();
    let s = parts.join("/");
    if s.is_empty() {
        "image-updater".to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(policy: &str, to: &str, file: &str) -> Update {
        Update {
            policy: policy.into(),
            image: format!("ghcr.io/acme/{policy}"),
            file: file.into(),
            line: 3,
            from: "1.0.0".into(),
            to: to.into(),
            digest: None,
            note: None,
        }
    }

    #[test]
    fn commit_message_templates() {
        let one = commit_message(
            "bump {{ name }} to {{ new_tag }}",
            &[update("web", "1.1.0", "a.yaml")],
            None,
        );
        assert_eq!(one, "bump web to 1.1.0\n");
        let two = commit_message(
            "chore: {{ summary }}",
            &[
                update("web", "1.1.0", "a.yaml"),
                update("api", "2.0.0", "a.yaml"),
            ],
            None,
        );
        let signed = commit_message(
            "x",
            &[update("web", "1.1.0", "a.yaml")],
            Some(&config::Author::default()),
        );
        assert_eq!(
            signed,
            "x\n\nSigned-off-by: image-updater <image-updater@example.invalid>\n"
        );
        assert!(
            two.starts_with("chore: update web to 1.1.0, api to 2.0.0\n\n- web:"),
            "{two}"
        );
        let linked = commit_message_with(
            "x",
            &[update("web", "1.1.0", "a.yaml")],
            Some(&config::Author::default()),
            "What changed in the app:\n- web\n",
        );
        assert_eq!(
            linked,
            "x\n\nWhat changed in the app:\n- web\n\nSigned-off-by: image-updater <image-updater@example.invalid>\n"
        );
    }

    #[test]
    fn refs_are_sanitised() {
        assert_eq!(sanitize_ref("image-updater/web"), "image-updater/web");
        assert_eq!(
            sanitize_ref("image-updater/ghcr.io/acme/web:1.2"),
            "image-updater/ghcr.io/acme/web-1.2"
        );
        assert_eq!(sanitize_ref("a..b//c/.d/e.lock/"), "a.b/c/d/e");
        assert_eq!(sanitize_ref("x y~z^?*[\\"), "x-y-z-----");
        assert_eq!(sanitize_ref("///"), "image-updater");
    }

    #[test]
    fn branch_templates() {
        let u = [update("web", "1.2.0", "a.yaml")];
        assert_eq!(
            render_branch("image-updater/{{ name }}", "web", &u),
            "image-updater/web"
        );
        assert_eq!(
            render_branch("deps/{{ image }}-{{ new_tag }}", "web", &u),
            "deps/ghcr.io/acme/web-1.2.0"
        );
        let h = render_branch("u/{{ hash }}", "web", &u);
        assert_eq!(h.len(), "u/".len() + 16);
        assert_eq!(h, render_branch("u/{{ hash }}", "web", &u), "stable");
        assert!(!branch_needs_updates("image-updater/{{ name }}"));
        assert!(branch_needs_updates("u/{{ hash }}"));
    }
}
