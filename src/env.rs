//! The process environment, read once: an [`Env`] snapshot taken at the edge (`main`, or a
//! library user building a [`crate::Request`]) and handed to every part that reads a variable
//! (registry credentials and timing, forge detection, git credentials and host keys, CI
//! outputs), so no part reads the process environment on its own and tests hand in theirs.

use std::collections::HashMap;

/// A snapshot of environment variables. `Debug` shows the names only: values are often
/// secrets (tokens, passwords, keys).
#[derive(Clone, Default)]
pub struct Env(HashMap<String, String>);

impl Env {
    /// The process's environment (variables that are not UTF-8 are left out).
    pub fn from_process() -> Env {
        Env(std::env::vars().collect())
    }

    /// Exactly these variables.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env(pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect())
    }

    /// Set one variable.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    /// A variable's value; empty counts as unset.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.raw(key).filter(|v| !v.is_empty())
    }

    /// A variable's value as set, empty included (for the variables whose mere presence
    /// counts, such as `NO_COLOR`).
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Every variable, in no particular order (for a child process's environment).
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether a CI flag is on: set, not empty, not `false` and not `0`.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| v != "false" && v != "0")
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        f.debug_tuple("Env").field(&names).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_unset_but_present() {
        let env = Env::from_pairs([("A", ""), ("B", "x"), ("CI", "false")]);
        assert_eq!(env.get("A"), None);
        assert_eq!(env.raw("A"), Some(""));
        assert_eq!(env.get("B"), Some("x"));
        assert_eq!(env.raw("C"), None);
        assert!(!env.flag("CI"));
        assert!(env.flag("B"));
    }

    #[test]
    fn debug_shows_names_not_values() {
        let env = Env::from_pairs([("GITHUB_TOKEN", "ghp_secret"), ("A", "1")]);
        let shown = format!("{env:?}");
        assert_eq!(shown, r#"Env(["A", "GITHUB_TOKEN"])"#);
    }
}
