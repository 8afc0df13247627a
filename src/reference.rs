//! Container image references: parsing `[host[:port]/]path[:tag][@digest]` (the
//! distribution/reference grammar Docker, containerd and every registry client use)
//! and normalising the name, so that `nginx`, `docker.io/nginx` and
//! `index.docker.io/library/nginx` are recognised as one repository while a rewrite
//! still keeps the spelling the user wrote.

use std::fmt;
use std::net::Ipv6Addr;

/// The normalised host of Docker Hub.
pub const DOCKER_HUB: &str = "docker.io";

/// Other spellings of Docker Hub's host, all normalised to [`DOCKER_HUB`].
const DOCKER_HUB_ALIASES: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// Longest name (host and path, without tag or digest) the grammar allows.
const NAME_MAX: usize = 255;

/// Longest tag the grammar allows.
const TAG_MAX: usize = 128;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Normalised registry host: "docker.io" for Docker Hub (no host, "docker.io",
    /// "index.docker.io", "registry-1.docker.io" all become "docker.io"); otherwise
    /// host[:port] lower-cased as written.
    pub registry: String,
    /// Repository path; single-component Docker Hub names get "library/"
    /// ("nginx" -> "library/nginx").
    pub repository: String,
    /// The tag, without the ':'.
    pub tag: Option<String>,
    /// "sha256:<64 hex>" etc.
    pub digest: Option<String>,
    /// The name exactly as written, i.e. the input minus ":tag" and "@digest" — kept
    /// so rewrites preserve the user's spelling.
    pub written_name: String,
}

/// A string that is not a valid image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    /// The reference as given (cut at 300 characters).
    pub input: String,
    /// What is wrong with it.
    #[source]
    pub reason: Invalid,
}

/// What is wrong with a reference: which part breaks the grammar, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("reference is empty")]
    Empty,
    #[error("reference contains whitespace")]
    Whitespace,
    #[error("reference has more than one '@'")]
    SeveralAts,
    #[error("repository name is empty")]
    EmptyName,
    #[error("name is {0} characters long, the limit is {NAME_MAX}")]
    NameTooLong(usize),
    /// The name with Docker Hub's `docker.io/library/` added is over the limit; `start` is
    /// the canonical name's first characters.
    #[error("name is {len} characters long as {start}..., the limit is {NAME_MAX}")]
    CanonicalTooLong { len: usize, start: String },
    #[error("repository path after registry {host:?} is empty")]
    EmptyPath { host: String },
    #[error("registry host {host:?} has no closing ']'")]
    Unclosed { host: String },
    #[error("registry host {host:?}: {addr:?} is not an IPv6 address")]
    NotIpv6 { host: String, addr: String },
    #[error("registry host {host:?}: expected ':port' after ']'")]
    AfterBracket { host: String },
    #[error("registry host {host:?} has no host name")]
    NoHostName { host: String },
    #[error("registry host {host:?}: port {port:?} is not a number")]
    PortNotNumber { host: String, port: String },
    #[error("registry host {host:?}: port {port} is out of range (1-65535)")]
    PortRange { host: String, port: String },
    #[error("registry host {host:?} has an empty label")]
    EmptyLabel { host: String },
    #[error("invalid character {c:?} in registry host {host:?}")]
    HostChar { c: char, host: String },
    #[error("registry host {host:?}: label {label:?} must not start or end with '-'")]
    LabelHyphen { host: String, label: String },
    #[error("repository path has an empty component (a leading, trailing or doubled '/')")]
    EmptyComponent,
    #[error("repository name must be lowercase")]
    Uppercase,
    #[error("invalid character {c:?} in repository path component {component:?}")]
    PathChar { c: char, component: String },
    #[error("repository path component {component:?} must start and end with a letter or digit")]
    ComponentEdge { component: String },
    #[error("invalid separator {run:?} in repository path component {component:?}")]
    Separator { run: String, component: String },
    #[error("tag is empty (nothing after ':')")]
    EmptyTag,
    #[error("tag {tag:?} must start with a letter, digit or '_'")]
    TagStart { tag: String },
    #[error("invalid character {c:?} in tag {tag:?}")]
    TagChar { c: char, tag: String },
    #[error("tag is {0} characters long, the limit is {TAG_MAX}")]
    TagTooLong(usize),
    #[error("digest is empty (nothing after '@')")]
    EmptyDigest,
    #[error("digest {digest:?} must have the form algorithm:hex")]
    DigestForm { digest: String },
    #[error("digest {digest:?}: {algorithm} needs lowercase hex digits")]
    DigestCase { digest: String, algorithm: String },
    #[error("digest {digest:?}: {algorithm} needs {want} hex digits, got {got}")]
    DigestLength {
        digest: String,
        algorithm: String,
        want: usize,
        got: usize,
    },
    #[error("digest {digest:?}: invalid algorithm {algorithm:?}")]
    DigestAlgorithm { digest: String, algorithm: String },
    #[error("digest {digest:?}: expected at least 32 hex digits after {algorithm:?}")]
    DigestShort { digest: String, algorithm: String },
}

/// At most this many characters of a bad reference are quoted in its error.
const QUOTED: usize = 300;

/// `s`, cut to [`QUOTED`] characters with an ellipsis, so a huge scalar never floods a report.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(QUOTED) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

impl ImageRef {
    /// Parses a reference such as `nginx`, `ghcr.io/acme/web:1.2.3` or
    /// `localhost:5000/app@sha256:…`.
    pub fn parse(s: &str) -> Result<ImageRef, ReferenceError> {
        parse_reference(s).map_err(|reason| ReferenceError {
            input: shorten(s),
            reason,
        })
    }

    /// The normalised repository name: "docker.io/library/nginx", "ghcr.io/acme/web",
    /// "localhost:5000/x".
    pub fn canonical_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `written_name:tag`, plus `@digest` when given — the text that replaces this
    /// reference in a manifest, keeping the user's spelling of the name.
    pub fn with_tag(&self, tag: &str, digest: Option<&str>) -> String {
        match digest {
            Some(d) => format!("{}:{tag}@{d}", self.written_name),
            None => format!("{}:{tag}", self.written_name),
        }
    }
}

impl fmt::Display for ImageRef {
    /// The canonical name, then `:tag` and `@digest` as present.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ImageRef {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

/// The parser proper; the error is the reason only, [`ImageRef::parse`] adds the input.
fn parse_reference(s: &str) -> Result<ImageRef, Invalid> {
    if s.is_empty() {
        return Err(Invalid::Empty);
    }
    if s.chars().any(char::is_whitespace) {
        return Err(Invalid::Whitespace);
    }

    let (rest, digest) = match s.split_once('@') {
        Some((_, digest)) if digest.contains('@') => return Err(Invalid::SeveralAts),
        Some((rest, digest)) => (rest, Some(digest)),
        None => (s, None),
    };
    // The tag follows the last ':' unless that ':' belongs to a host's port
    // (then a '/' follows it).
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };

    if name.is_empty() {
        return Err(Invalid::EmptyName);
    }
    if name.len() > NAME_MAX {
        return Err(Invalid::NameTooLong(name.len()));
    }
    let (host, path) = split_host(name);
    if let Some(host) = host {
        validate_host(host)?;
        if path.is_empty() {
            return Err(Invalid::EmptyPath {
                host: host.to_string(),
            });
        }
    }
    for component in path.split('/') {
        validate_component(component)?;
    }
    if let Some(tag) = tag {
        validate_tag(tag)?;
    }
    if let Some(digest) = digest {
        validate_digest(digest)?;
    }

    let registry = match host {
        None => DOCKER_HUB.to_string(),
        Some(h) => {
            let lower = h.to_ascii_lowercase();
            if DOCKER_HUB_ALIASES.contains(&lower.as_str()) {
                DOCKER_HUB.to_string()
            } else {
                lower
            }
        }
    };
    let repository = if registry == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    // Docker measures the limit on the normalised name (`docker.io/library/` added), so a
    // name it would reject is not accepted here either: its canonical name would not parse.
    let canonical = registry.len() + 1 + repository.len();
    if canonical > NAME_MAX {
        return Err(Invalid::CanonicalTooLong {
            len: canonical,
            start: format!(
                "{registry}/{}",
                repository.chars().take(20).collect::<String>()
            ),
        });
    }

    Ok(ImageRef {
        registry,
        repository,
        tag: tag.map(str::to_string),
        digest: digest.map(str::to_string),
        written_name: name.to_string(),
    })
}

/// Splits off the registry host: the first component is a host iff there is more
/// than one component and it contains '.' or ':', is "localhost", or is a bracketed
/// IPv6 address.
fn split_host(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.starts_with('[') =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// Checks `domain[:port]`, `ipv4[:port]` or `[ipv6][:port]`.
fn validate_host(host: &str) -> Result<(), Invalid> {
    let h = || host.to_string();
    let port = if let Some(inner) = host.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return Err(Invalid::Unclosed { host: h() });
        };
        if addr.parse::<Ipv6Addr>().is_err() {
            return Err(Invalid::NotIpv6 {
                host: h(),
                addr: addr.to_string(),
            });
        }
        match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err(Invalid::AfterBracket { host: h() }),
            },
        }
    } else {
        let (domain, port) = match host.split_once(':') {
            Some((domain, port)) => (domain, Some(port)),
            None => (host, None),
        };
        if domain.is_empty() {
            return Err(Invalid::NoHostName { host: h() });
        }
        for label in domain.split('.') {
            validate_label(host, label)?;
        }
        port
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Invalid::PortNotNumber {
                host: h(),
                port: port.to_string(),
            });
        }
        if port.parse::<u16>().is_err() {
            return Err(Invalid::PortRange {
                host: h(),
                port: port.to_string(),
            });
        }
    }
    Ok(())
}

/// One dot-separated label of a host name: letters, digits and inner hyphens.
fn validate_label(host: &str, label: &str) -> Result<(), Invalid> {
    let host = host.to_string();
    if label.is_empty() {
        return Err(Invalid::EmptyLabel { host });
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(Invalid::HostChar { c, host });
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(Invalid::LabelHyphen {
            host,
            label: label.to_string(),
        });
    }
    Ok(())
}

fn is_separator(b: u8) -> bool {
    matches!(b, b'.' | b'_' | b'-')
}

/// One path component: `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
fn validate_component(c: &str) -> Result<(), Invalid> {
    let component = || c.to_string();
    if c.is_empty() {
        return Err(Invalid::EmptyComponent);
    }
    if c.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(Invalid::Uppercase);
    }
    if let Some(ch) = c.chars().find(|ch| {
        !(ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-'))
    }) {
        return Err(Invalid::PathChar {
            c: ch,
            component: component(),
        });
    }
    let bytes = c.as_bytes();
    if is_separator(bytes[0]) || is_separator(bytes[bytes.len() - 1]) {
        return Err(Invalid::ComponentEdge {
            component: component(),
        });
    }
    let mut i = 0;
    while i < bytes.len() {
        if !is_separator(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_separator(bytes[i]) {
            i += 1;
        }
        let run = &c[start..i];
        let ok = matches!(run, "." | "_" | "__") || run.bytes().all(|b| b == b'-');
        if !ok {
            return Err(Invalid::Separator {
                run: run.to_string(),
                component: component(),
            });
        }
    }
    Ok(())
}

/// A tag: `[\w][\w.-]{0,127}`.
fn validate_tag(tag: &str) -> Result<(), Invalid> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let Some(first) = tag.chars().next() else {
        return Err(Invalid::EmptyTag);
    };
    if !is_word(first) {
        return Err(Invalid::TagStart {
            tag: tag.to_string(),
        });
    }
    if let Some(c) = tag.chars().find(|&c| !(is_word(c) || c == '.' || c == '-')) {
        return Err(Invalid::TagChar {
            c,
            tag: tag.to_string(),
        });
    }
    if tag.len() > TAG_MAX {
        return Err(Invalid::TagTooLong(tag.len()));
    }
    Ok(())
}

/// A digest: `algorithm:hex`. sha256 and sha512 are checked strictly (lowercase hex
/// of the exact length); other algorithms follow the general grammar
/// (`[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*` then at least 32 hex digits).
fn validate_digest(digest: &str) -> Result<(), Invalid> {
    if digest.is_empty() {
        return Err(Invalid::EmptyDigest);
    }
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(Invalid::DigestForm {
            digest: digest.to_string(),
        });
    };
    let strict_len = match algorithm {
        "sha256" => Some(64),
        "sha512" => Some(128),
        _ => None,
    };
    if let Some(len) = strict_len {
        if !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Invalid::DigestCase {
                digest: digest.to_string(),
                algorithm: algorithm.to_string(),
            });
        }
        if hex.len() != len {
            return Err(Invalid::DigestLength {
                digest: digest.to_string(),
                algorithm: algorithm.to_string(),
                want: len,
                got: hex.len(),
            });
        }
        return Ok(());
    }
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.split(['-', '_', '+', '.']).all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric())
        });
    if !algorithm_ok {
        return Err(Invalid::DigestAlgorithm {
            digest: digest.to_string(),
            algorithm: algorithm.to_string(),
        });
    }
    if hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Invalid::DigestShort {
            digest: digest.to_string(),
            algorithm: algorithm.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reason is typed ([`Invalid`]) and the message reads as it always has.
    #[test]
    fn errors_name_the_reason() {
        let e = ImageRef::parse("ghcr.io/acme/web@sha256:abc").unwrap_err();
        assert!(matches!(
            e.reason,
            Invalid::DigestLength {
                want: 64,
                got: 3,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "invalid image reference \"ghcr.io/acme/web@sha256:abc\": digest \"sha256:abc\": sha256 needs 64 hex digits, got 3"
        );
        let e = ImageRef::parse("reg.example:99999/web").unwrap_err();
        assert_eq!(
            e.reason.to_string(),
            "registry host \"reg.example:99999\": port 99999 is out of range (1-65535)"
        );
        let long = "a".repeat(250);
        let e = ImageRef::parse(&long).unwrap_err();
        assert_eq!(
            e.reason.to_string(),
            format!(
                "name is 268 characters long as docker.io/library/{}..., the limit is 255",
                "a".repeat(12)
            )
        );
    }

    #[test]
    fn huge_bad_references_are_quoted_short() {
        let e = ImageRef::parse(&format!("A{}", "b".repeat(5_000_000))).unwrap_err();
        assert!(e.to_string().len() < 1_000, "{}", e.to_string().len());
        assert!(e.input.ends_with('…'));
    }

    const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// Expected result: `Ok((registry, repository, tag, digest))` or `Err(part of the reason)`.
    type Expect =
        Result<(&'static str, &'static str, Option<String>, Option<String>), &'static str>;

    fn ok(
        registry: &'static str,
        repository: &'static str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Expect {
        Ok((
            registry,
            repository,
            tag.map(str::to_string),
            digest.map(str::to_string),
        ))
    }

    fn table() -> Vec<(String, Expect)> {
        let sha512 = format!("sha512:{}", "ab".repeat(64));
        let long_tag = "a".repeat(129);
        let max_tag = "a".repeat(128);
        let long_name = format!("ghcr.io/{}", "a".repeat(250));
        let t: Vec<(String, Expect)> = vec![
            // Docker Hub forms
            ("nginx".into(), ok("docker.io", "library/nginx", None, None)),
            (
                "nginx:1.25".into(),
                ok("docker.io", "library/nginx", Some("1.25"), None),
            ),
            (
                "library/nginx:latest".into(),
                ok("docker.io", "library/nginx", Some("latest"), None),
            ),
            (
                "docker.io/nginx".into(),
                ok("docker.io", "library/nginx", None, None),
            ),
            (
                "docker.io/library/nginx:1".into(),
                ok("docker.io", "library/nginx", Some("1"), None),
            ),
            (
                "index.docker.io/nginx".into(),
                ok("docker.io", "library/nginx", None, None),
            ),
            (
                "registry-1.docker.io/bitnami/redis:7.2".into(),
                ok("docker.io", "bitnami/redis", Some("7.2"), None),
            ),
            (
                "Docker.IO/nginx".into(),
                ok("docker.io", "library/nginx", None, None),
            ),
            (
                "bitnami/redis".into(),
                ok("docker.io", "bitnami/redis", None, None),
            ),
            ("a/b/c".into(), ok("docker.io", "a/b/c", None, None)),
            // other registries, nested paths
            (
                "ghcr.io/acme/web:1.2.3".into(),
                ok("ghcr.io", "acme/web", Some("1.2.3"), None),
            ),
            ("ghcr.io/web".into(), ok("ghcr.io", "web", None, None)),
            (
                "GHCR.io/acme/web".into(),
                ok("ghcr.io", "acme/web", None, None),
            ),
            (
                "registry.gitlab.com/group/sub/project/image:v2".into(),
                ok(
                    "registry.gitlab.com",
                    "group/sub/project/image",
                    Some("v2"),
                    None,
                ),
            ),
            (
                "quay.io/prometheus/node-exporter:v1.7.0".into(),
                ok("quay.io", "prometheus/node-exporter", Some("v1.7.0"), None),
            ),
            (
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:prod".into(),
                ok(
                    "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
                    "app",
                    Some("prod"),
                    None,
                ),
            ),
            // localhost, ports, IPs
            ("localhost/app".into(), ok("localhost", "app", None, None)),
            (
                "localhost:5000/app:dev".into(),
                ok("localhost:5000", "app", Some("dev"), None),
            ),
            (
                "localhost:5000".into(),
                ok("docker.io", "library/localhost", Some("5000"), None),
            ),
            (
                "registry.example.com:5000/team/app:1.0".into(),
                ok("registry.example.com:5000", "team/app", Some("1.0"), None),
            ),
            (
                "10.0.0.1:5000/app:1".into(),
                ok("10.0.0.1:5000", "app", Some("1"), None),
            ),
            (
                "192.168.1.10/app".into(),
                ok("192.168.1.10", "app", None, None),
            ),
            (
                "[::1]:5000/app:1.0".into(),
                ok("[::1]:5000", "app", Some("1.0"), None),
            ),
            (
                "[2001:db8::1]/team/app".into(),
                ok("[2001:db8::1]", "team/app", None, None),
            ),
            (
                "[2001:DB8::1]:443/app".into(),
                ok("[2001:db8::1]:443", "app", None, None),
            ),
            // separators in path components
            (
                "ghcr.io/a_b/c__d/e--f/g.h-i:x".into(),
                ok("ghcr.io", "a_b/c__d/e--f/g.h-i", Some("x"), None),
            ),
            // tags and digests
            (
                format!("nginx@{SHA}"),
                ok("docker.io", "library/nginx", None, Some(SHA)),
            ),
            (
                format!("ghcr.io/acme/web:1.2.3@{SHA}"),
                ok("ghcr.io", "acme/web", Some("1.2.3"), Some(SHA)),
            ),
            (
                format!("localhost:5000/app@{SHA}"),
                ok("localhost:5000", "app", None, Some(SHA)),
            ),
            (
                format!("nginx@{sha512}"),
                ok("docker.io", "library/nginx", None, Some(&sha512)),
            ),
            (
                "nginx:_under.score-Tag".into(),
                ok("docker.io", "library/nginx", Some("_under.score-Tag"), None),
            ),
            (
                format!("nginx:{max_tag}"),
                ok("docker.io", "library/nginx", Some(&max_tag), None),
            ),
            // errors
            ("".into(), Err("reference is empty")),
            ("Foo:bar".into(), Err("repository name must be lowercase")),
            (
                "ghcr.io/Acme/web".into(),
                Err("repository name must be lowercase"),
            ),
            ("nginx:".into(), Err("tag is empty")),
            ("nginx@".into(), Err("digest is empty")),
            (":1.0".into(), Err("repository name is empty")),
            (" nginx".into(), Err("whitespace")),
            ("nginx :1".into(), Err("whitespace")),
            ("nginx\n".into(), Err("whitespace")),
            ("/nginx".into(), Err("empty component")),
            ("nginx/".into(), Err("empty component")),
            ("acme//web".into(), Err("empty component")),
            (
                "ghcr.io/".into(),
                Err("repository path after registry \"ghcr.io\" is empty"),
            ),
            (
                "ghcr.io/-web".into(),
                Err("must start and end with a letter or digit"),
            ),
            (
                "ghcr.io/web-".into(),
                Err("must start and end with a letter or digit"),
            ),
            ("ghcr.io/we..b".into(), Err("invalid separator \"..\"")),
            ("ghcr.io/we___b".into(), Err("invalid separator \"___\"")),
            ("ghcr.io/we_-b".into(), Err("invalid separator \"_-\"")),
            ("ghcr.io/we$b".into(), Err("invalid character '$'")),
            (
                "nginx:-bad".into(),
                Err("must start with a letter, digit or '_'"),
            ),
            (
                "nginx:.bad".into(),
                Err("must start with a letter, digit or '_'"),
            ),
            ("nginx:a+b".into(), Err("invalid character '+' in tag")),
            (
                format!("nginx:{long_tag}"),
                Err("tag is 129 characters long"),
            ),
            (long_name, Err("name is 258 characters long")),
            // Fuzz regression (fuzz/regressions/reference/long-hub-name-canonical-past-255):
            // 240 characters as written, 258 once normalised, which Docker refuses.
            (
                "a".repeat(240),
                Err("name is 258 characters long as docker.io/library/aaaa"),
            ),
            ("nginx@sha256:abc".into(), Err("needs 64 hex digits, got 3")),
            (
                format!("nginx@{}", SHA.to_uppercase().replace("SHA256", "sha256")),
                Err("needs lowercase hex digits"),
            ),
            (
                "nginx@sha256".into(),
                Err("must have the form algorithm:hex"),
            ),
            (
                "nginx@md5!:0123456789abcdef0123456789abcdef".into(),
                Err("invalid algorithm"),
            ),
            (format!("nginx@{SHA}@{SHA}"), Err("more than one '@'")),
            (
                "localhost:port/app".into(),
                Err("port \"port\" is not a number"),
            ),
            ("localhost:99999/app".into(), Err("out of range")),
            ("localhost:/app".into(), Err("port \"\" is not a number")),
            (
                "exa_mple.com/app".into(),
                Err("invalid character '_' in registry host"),
            ),
            (
                "-example.com/app".into(),
                Err("must not start or end with '-'"),
            ),
            ("example..com/app".into(), Err("empty label")),
            ("[::1/app".into(), Err("no closing ']'")),
            ("[zz::1]:5000/app".into(), Err("is not an IPv6 address")),
            ("nginx:1:2".into(), Err("invalid character ':'")),
        ];
        t
    }

    #[test]
    fn reference_table() {
        let table = table();
        assert!(table.len() >= 40);
        for (input, expect) in table {
            let got = ImageRef::parse(&input);
            match (got, expect) {
                (Ok(r), Ok((registry, repository, tag, digest))) => {
                    assert_eq!(r.registry, registry, "registry of {input:?}");
                    assert_eq!(r.repository, repository, "repository of {input:?}");
                    assert_eq!(r.tag, tag, "tag of {input:?}");
                    assert_eq!(r.digest, digest, "digest of {input:?}");
                }
                (Err(e), Err(want)) => {
                    assert!(
                        e.reason.to_string().contains(want),
                        "{input:?}: error {:?} does not contain {want:?}",
                        e.reason
                    );
                    assert_eq!(e.input, input);
                }
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    /// Fuzz regression (`fuzz/regressions/reference/long-hub-name-canonical-past-255`): the
    /// 255-character limit holds for the normalised name, as in Docker, so a name short enough
    /// as written but not once `docker.io/library/` is in front is refused.
    #[test]
    fn name_limit_counts_the_normalised_name() {
        let at_limit = ImageRef::parse(&format!("{}:1.0", "a".repeat(237))).unwrap();
        assert_eq!(at_limit.canonical_name().len(), 255);
        let again = ImageRef::parse(&at_limit.canonical_name()).unwrap();
        assert_eq!(again.canonical_name(), at_limit.canonical_name());
        let err = ImageRef::parse(&"a".repeat(238)).unwrap_err().to_string();
        assert!(
            err.contains("name is 256 characters long as docker.io/library/"),
            "{err}"
        );
        let err = ImageRef::parse(&format!("index.docker.io/{}", "a".repeat(238)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("name is 256 characters long"), "{err}");
    }

    #[test]
    fn error_message_quotes_input() {
        let e = ImageRef::parse("Foo:bar").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"invalid image reference "Foo:bar": repository name must be lowercase"#
        );
        let e = ImageRef::parse("nginx\t").unwrap_err();
        assert!(e.to_string().contains(r#""nginx\t""#), "{e}");
    }

    #[test]
    fn written_name_keeps_spelling() {
        let r = ImageRef::parse(&format!("Docker.io/nginx:1.0@{SHA}")).unwrap();
        assert_eq!(r.written_name, "Docker.io/nginx");
        assert_eq!(r.with_tag("1.1", None), "Docker.io/nginx:1.1");
        assert_eq!(
            r.with_tag("1.1", Some(SHA)),
            format!("Docker.io/nginx:1.1@{SHA}")
        );
        let r = ImageRef::parse("localhost:5000/app").unwrap();
        assert_eq!(r.written_name, "localhost:5000/app");
        assert_eq!(r.with_tag("2", None), "localhost:5000/app:2");
    }

    #[test]
    fn canonical_name_and_display() {
        let cases = [
            (
                "nginx",
                "docker.io/library/nginx",
                "docker.io/library/nginx",
            ),
            (
                "index.docker.io/library/nginx:1",
                "docker.io/library/nginx",
                "docker.io/library/nginx:1",
            ),
            (
                "ghcr.io/acme/web:1.2",
                "ghcr.io/acme/web",
                "ghcr.io/acme/web:1.2",
            ),
            ("localhost:5000/x", "localhost:5000/x", "localhost:5000/x"),
        ];
        for (input, canonical, display) in cases {
            let r = ImageRef::parse(input).unwrap();
            assert_eq!(r.canonical_name(), canonical, "{input}");
            assert_eq!(r.to_string(), display, "{input}");
        }
        let r = ImageRef::parse(&format!("nginx:1@{SHA}")).unwrap();
        assert_eq!(r.to_string(), format!("docker.io/library/nginx:1@{SHA}"));
    }

    #[test]
    fn docker_hub_spellings_are_one_repository() {
        let names = [
            "nginx",
            "library/nginx",
            "docker.io/nginx",
            "docker.io/library/nginx",
            "index.docker.io/nginx",
            "registry-1.docker.io/library/nginx",
        ];
        for n in names {
            assert_eq!(
                ImageRef::parse(n).unwrap().canonical_name(),
                "docker.io/library/nginx",
                "{n}"
            );
        }
    }

    #[test]
    fn from_str_matches_parse() {
        let r: ImageRef = "ghcr.io/acme/web:1".parse().unwrap();
        assert_eq!(r, ImageRef::parse("ghcr.io/acme/web:1").unwrap());
    }
}
