//! A token service for the distribution registry's `auth: token` mode, as Docker Hub's and
//! GHCR's: `GET /token?service=…&scope=…` (Basic credentials optional) and OAuth2's
//! `POST /token` with `grant_type=refresh_token` (Docker identity tokens) or `password`.
//!
//! Tokens are ES256 JWTs signed with a key generated here; its self-signed certificate is
//! the registry's `rootcertbundle`, and the JWT header's `kid` is libtrust's key id. The
//! claims are the registry's: `iss`, `aud` (a string), integer `exp`/`nbf`/`iat`, and
//! `access: [{type: repository, name, actions}]`. Anonymous callers get `pull` on public
//! repositories only; known users get `pull` and `push` everywhere; bad credentials get 401.

use std::collections::HashMap;
use std::io::{BufReader, Read as _, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rcgen::{CertificateParams, KeyPair, PublicKeyData, SigningKey, PKCS_ECDSA_P256_SHA256};

use super::http::{content_length, header_value, read_headers, read_line};

pub const SERVICE: &str = "test-registry";
pub const ISSUER: &str = "test-issuer";

/// What the token service saw: one entry per token request.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub method: String,
    pub scope: String,
    /// The user the credentials named (Basic or refresh token); None when anonymous.
    pub user: Option<String>,
    /// Whether a token was issued.
    pub granted: bool,
}

struct State {
    users: HashMap<String, String>,
    refresh_tokens: HashMap<String, String>,
    public: Vec<String>,
    /// `expires_in` reported to clients.
    expires_in: u64,
    /// Seconds from now to the JWT's `exp` (less than `expires_in` to force a 401 refresh;
    /// the registry allows 60 s of leeway past `exp`, so a negative value makes a token that
    /// is accepted for only a moment).
    jwt_lifetime: i64,
    seen: Vec<TokenRequest>,
}

pub struct TokenIssuer {
    /// "127.0.0.1:PORT".
    pub addr: String,
    /// The certificate bundle for the registry's `rootcertbundle`.
    pub cert_path: PathBuf,
    state: Arc<Mutex<State>>,
    _dir: tempfile::TempDir,
}

impl TokenIssuer {
    /// A token service knowing `users` (name, password); `public` repositories are
    /// readable anonymously.
    pub fn start(users: &[(&str, &str)], public: &[&str]) -> TokenIssuer {
        let dir = tempfile::Builder::new()
            .prefix("token-issuer-")
            .tempdir()
            .unwrap();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("generate ES256 key");
        let cert = CertificateParams::new(vec!["token-issuer".to_string()])
            .unwrap()
            .self_signed(&key)
            .expect("self-sign the token certificate");
        let cert_path = dir.path().join("token.crt");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        let kid = libtrust_kid(&key.subject_public_key_info());

        let state = Arc::new(Mutex::new(State {
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            refresh_tokens: HashMap::new(),
            public: public.iter().map(|s| s.to_string()).collect(),
            expires_in: 300,
            jwt_lifetime: 300,
            seen: Vec::new(),
        }));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let key = Arc::new(key);
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (state, key, kid) = (shared.clone(), key.clone(), kid.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &state, &key, &kid);
                });
            }
        });
        TokenIssuer {
            addr,
            cert_path,
            state,
            _dir: dir,
        }
    }

    /// The registry's `auth:` block for this service.
    pub fn registry_auth_yaml(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: http://{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.addr,
            self.cert_path.display()
        )
    }

    /// Accept `token` as an OAuth2 refresh token (a Docker identity token) for `user`.
    pub fn add_refresh_token(&self, token: &str, user: &str) {
        self.state
            .lock()
            .unwrap()
            .refresh_tokens
            .insert(token.into(), user.into());
    }

    /// Tell clients tokens last `expires_in` seconds, while the JWTs' `exp` is `jwt` seconds
    /// from issuance (the registry adds 60 s of leeway).
    pub fn set_lifetimes(&self, expires_in: u64, jwt: i64) {
        let mut s = self.state.lock().unwrap();
        s.expires_in = expires_in;
        s.jwt_lifetime = jwt;
    }

    /// The token requests so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.lock().unwrap().seen.clone()
    }
}

/// libtrust's key id: SHA-256 of the DER SubjectPublicKeyInfo, its first 30 bytes in base32
/// (no padding), in 12 groups of 4 joined by `:`.
pub fn libtrust_kid(spki_der: &[u8]) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(spki_der);
    let b32 = base32(&hash[..30]);
    b32.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for b in bytes {
        buf = (buf << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// An ASN.1 DER ECDSA signature (`SEQUENCE { r INTEGER, s INTEGER }`) as JWS wants it: r‖s,
/// each 32 bytes.
fn der_to_raw(der: &[u8]) -> Vec<u8> {
    fn int(d: &[u8]) -> (&[u8], &[u8]) {
        assert_eq!(d[0], 0x02, "INTEGER expected");
        let len = d[1] as usize;
        (&d[2..2 + len], &d[2 + len..])
    }
    assert_eq!(der[0], 0x30, "SEQUENCE expected");
    let body = if der[1] & 0x80 != 0 {
        &der[2 + (der[1] & 0x7f) as usize..]
    } else {
        &der[2..]
    };
    let (r, rest) = int(body);
    let (s, _) = int(rest);
    let mut out = vec![0u8; 64];
    let r = &r[r.len().saturating_sub(32)..];
    let s = &s[s.len().saturating_sub(32)..];
    out[32 - r.len()..32].copy_from_slice(r);
    out[64 - s.len()..].copy_from_slice(s);
    out
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn jwt(key: &KeyPair, kid: &str, sub: &str, access: serde_json::Value, lifetime: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "kid": kid});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": sub, "aud": SERVICE,
        "exp": now + lifetime, "nbf": now - 120, "iat": now - 120,
        "jti": format!("{now}-{}", rand_suffix()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = der_to_raw(&key.sign(signing_input.as_bytes()).expect("sign JWT"));
    format!("{signing_input}.{}", b64url(&sig))
}

fn rand_suffix() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn decode_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (unescape(k), unescape(v)))
        .collect()
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve(stream: TcpStream, state: &Mutex<State>, key: &KeyPair, kid: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let line = read_line(&mut reader)?;
    let headers = read_headers(&mut reader)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("/"),
    );
    let (_, query) = target.split_once('?').unwrap_or((target, ""));
    let mut params = decode_query(query);
    if method == "POST" {
        let mut body = vec![0u8; content_length(&headers).unwrap_or(0) as usize];
        reader.read_exact(&mut body)?;
        params.extend(decode_query(&String::from_utf8_lossy(&body)));
    }
    let scope = params.get("scope").cloned().unwrap_or_default();
    let mut st = state.lock().unwrap();

    // Who is asking: Basic credentials, a refresh token, a password grant, or nobody.
    let basic = header_value(&headers, "authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        });
    let claimed: Option<(String, bool)> =
        match (params.get("grant_type").map(String::as_str), &basic) {
            (Some("refresh_token"), _) => {
                let t = params.get("refresh_token").cloned().unwrap_or_default();
                Some(match st.refresh_tokens.get(&t) {
                    Some(u) => (u.clone(), true),
                    None => ("<refresh token>".into(), false),
                })
            }
            (Some("password"), _) => {
                let u = params.get("username").cloned().unwrap_or_default();
                let ok = st.users.get(&u) == params.get("password");
                Some((u, ok))
            }
            (_, Some((u, p))) => Some((u.clone(), st.users.get(u) == Some(p))),
            _ => None,
        };
    if let Some((user, false)) = &claimed {
        st.seen.push(TokenRequest {
            method,
            scope,
            user: Some(user.clone()),
            granted: false,
        });
        drop(st);
        return respond(
            stream,
            401,
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#,
        );
    }
    let user = claimed.map(|(u, _)| u);

    let mut access = Vec::new();
    for one in scope.split(' ').filter(|s| !s.is_empty()) {
        let mut f = one.splitn(3, ':');
        let (kind, name, actions) = (
            f.next().unwrap_or(""),
            f.next().unwrap_or(""),
            f.next().unwrap_or(""),
        );
        if kind != "repository" {
            continue;
        }
        let granted: Vec<&str> = actions
            .split(',')
            .filter(|a| match &user {
                Some(_) => true,
                None => *a == "pull" && st.public.iter().any(|p| p == name),
            })
            .collect();
        if !granted.is_empty() {
            access
                .push(serde_json::json!({"type": "repository", "name": name, "actions": granted}));
        }
    }
    let granted = !access.is_empty();
    let token = jwt(
        key,
        kid,
        user.as_deref().unwrap_or(""),
        serde_json::Value::Array(access),
        st.jwt_lifetime,
    );
    let expires_in = st.expires_in;
    st.seen.push(TokenRequest {
        method: method.clone(),
        scope,
        user,
        granted,
    });
    drop(st);
    let body = if method == "POST" {
        serde_json::json!({"access_token": token, "expires_in": expires_in, "scope": ""})
    } else {
        serde_json::json!({"token": token, "access_token": token, "expires_in": expires_in})
    };
    respond(stream, 200, &body.to_string())
}

fn respond(mut out: TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}
