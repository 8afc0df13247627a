//! The one type for a secret the crate holds: a forge token, a registry password or token, a
//! git token. It prints as `***` (`Debug` and `Display`), [`Secret::expose`] gives the value
//! for the one place that needs it (a request header, a credential callback), and
//! [`Secret::scrub`] blanks it out of a message a server may have echoed it into.
//!
//! The value lives in a [`secrecy::SecretString`], which zeroes its memory when dropped.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::http::{percent_decode, percent_encode};

/// A value shorter than this is no real secret: blanking it out would garble ordinary words.
const MIN_SCRUBBED: usize = 4;

/// A secret string: prints as `***`; [`Secret::expose`] is for the request header only.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(SecretString::from(value.into()))
    }

    /// The secret itself: only for building the header (or credential) that carries it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// `text` with every occurrence of the secret replaced by `***`, in each shape an echo may
    /// give it ([`Secret::shapes`]).
    pub fn scrub(&self, text: &str) -> String {
        scrub_all(std::slice::from_ref(self), text)
    }

    /// The secret as it is, percent-encoded as a query or form would (upper- or lower-case
    /// hex, a space as `%20` or `+`), and percent-decoded once (a password holding `%2F` comes
    /// back as `/`); shapes too short to be a secret are left out.
    fn shapes(&self) -> Vec<String> {
        let raw = self.expose();
        let upper = percent_encode(raw);
        let lower = lower_hex(&upper);
        let form = upper.replace("%20", "+");
        let decoded = percent_decode(raw);
        let mut out = vec![raw.to_string(), upper, lower, form, decoded];
        out.retain(|s| s.len() >= MIN_SCRUBBED);
        out
    }
}

/// `text` with every shape of every secret in `secrets` replaced by `***`, longest first (so a
/// secret containing another is blanked out whole).
pub fn scrub_all(secrets: &[Secret], text: &str) -> String {
    let mut shapes: Vec<String> = secrets.iter().flat_map(Secret::shapes).collect();
    shapes.sort_by_key(|s| std::cmp::Reverse(s.len()));
    shapes.dedup();
    let mut t = text.to_string();
    for s in &shapes {
        if t.contains(s.as_str()) {
            t = t.replace(s.as_str(), "***");
        }
    }
    t
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `%2F` -> `%2f` in every escape.
fn lower_hex(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut left = 0;
    for c in s.chars() {
        if c == '%' {
            left = 2;
            out.push(c);
        } else if left > 0 {
            left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_stars_and_scrubs() {
        let s = Secret::new("ghp_supersecret");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "ghp_supersecret");
        assert_eq!(
            s.scrub("token ghp_supersecret was refused"),
            "token *** was refused"
        );
        // Too short to be a token: ordinary words stay.
        assert_eq!(Secret::new("ab").scrub("a b ab abc"), "a b ab abc");
        assert_eq!(Secret::new("x"), Secret::new("x"));
        assert_ne!(Secret::new("x"), Secret::new("y"));
    }

    /// Passwords that look like URL syntax are blanked out in every shape an echo may take:
    /// raw, percent-encoded (either case, a space as `+`), and decoded once.
    #[test]
    fn url_shaped_secrets_are_scrubbed_in_every_encoding() {
        for pass in ["pa/ss-word@1", "pass%2Fword-2", "p@ss word/3"] {
            let secret = Secret::new(pass);
            let upper = percent_encode(pass);
            let echoes = [
                pass.to_string(),
                upper.clone(),
                lower_hex(&upper),
                upper.replace("%20", "+"),
                percent_decode(pass),
            ];
            for echo in echoes {
                let text = secret.scrub(&format!("denied: password={echo};"));
                assert_eq!(text, "denied: password=***;", "{pass} as {echo}");
            }
        }
        assert_eq!(percent_encode("a b/c~d"), "a%20b%2Fc~d");
        assert_eq!(percent_decode("a%2fb%zz%"), "a/b%zz%");
        assert_eq!(percent_decode("%FF"), "%FF");
    }

    /// A secret holding another (a `user:password` pair and its password) is blanked out
    /// whole, not left with a stray half.
    #[test]
    fn longest_secret_goes_first() {
        let both = [Secret::new("hunter22"), Secret::new("admin:hunter22")];
        assert_eq!(scrub_all(&both, "sent admin:hunter22"), "sent ***");
    }
}
