//! Bearer tokens: JWTs signed with ES256 (ECDSA on P-256 with SHA-256) by the registry's
//! key, in the format of distribution's token authentication, so the reference registry
//! can trust them too. The header names the key by its libtrust key id (`kid`) and, when
//! a certificate is configured, carries it (`x5c`).
//!
//! Signing and verifying use `ring`, already in the workspace for TLS: ES256 is one call
//! each way, and a JWT is two base64url JSON segments; a JWT crate would bring a second
//! crypto backend for no more than that.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::config;
use crate::error::{Error, Result};
use crate::fsutil::{ensure_dir, sync_dir};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(10);

/// The `token_use` claim of refresh tokens; access tokens have none.
const REFRESH: &str = "refresh";

/// The DER prefix of a P-256 SubjectPublicKeyInfo, before the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Actions granted on one resource (`type` is `repository` or `registry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceActions {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// The `aud` claim: one audience (as this registry writes it) or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, service: &str) -> bool {
        match self {
            Audience::One(a) => a == service,
            Audience::Many(all) => all.iter().any(|a| a == service),
        }
    }
}

/// The claims of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user; empty for anonymous tokens.
    pub sub: String,
    pub aud: Audience,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<ResourceActions>,
    /// `refresh` for refresh tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_use: Option<String>,
    /// For refresh tokens: the fingerprint of the user's password entry when issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pwd: Option<String>,
}

impl Claims {
    /// Whether the token grants `action` on the resource (`*` grants every action).
    pub fn grants(&self, kind: &str, name: &str, action: &str) -> bool {
        self.access
            .iter()
            .any(|r| r.kind == kind && r.name == name && r.actions.iter().any(|a| a == action || a == "*"))
    }
}

/// A freshly signed access token.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
    pub expires_in: u64,
    pub issued_at: SystemTime,
}

/// The token issuer and verifier.
pub struct Tokens {
    pub issuer: String,
    pub service: String,
    /// A fixed realm URL, else derived from each request.
    pub realm: Option<String>,
    expiry: Duration,
    refresh_expiry: Duration,
    key: EcdsaKeyPair,
    kid: String,
    x5c: Option<Vec<String>>,
    rng: SystemRandom,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The libtrust key id of a public key: the first 240 bits of the SHA-256 of its DER
/// SubjectPublicKeyInfo, in base32, in groups of four joined by `:`.
pub fn libtrust_key_id(spki_der: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(spki_der);
    // 30 bytes are 48 base32 characters, without padding.
    let mut chars = Vec::with_capacity(48);
    for chunk in digest[..30].chunks(5) {
        let bits = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        for i in (0..8).rev() {
            chars.push(ALPHABET[((bits >> (i * 5)) & 31) as usize]);
        }
    }
    chars.chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":")
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The PKCS#8 document in a PEM key file.
fn parse_key(path: &Path, pem: &[u8]) -> Result<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::PrivateKeyDer;
    let bad = |reason: String| Error::TokenKey { path: path.to_path_buf(), reason };
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(PrivateKeyDer::Pkcs8(der)) => Ok(der.secret_pkcs8_der().to_vec()),
        Ok(PrivateKeyDer::Sec1(_)) => Err(bad(
            "an EC PRIVATE KEY (SEC1) file; convert it to PKCS#8 with openssl pkcs8 -topk8 -nocrypt".into(),
        )),
        Ok(_) => Err(bad("not a P-256 (ES256) key in PKCS#8 PEM".into())),
        Err(e) => Err(bad(format!("no PEM private key: {e}"))),
    }
}

/// Makes a new P-256 key at `path`, readable by its owner only. The file appears whole
/// or not at all; when another process made one first, that one is used.
fn create_key(path: &Path) -> Result<Vec<u8>> {
    let rng = SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| Error::TokenKey { path: path.to_path_buf(), reason: "generating a key failed".into() })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    ensure_dir(&dir)?;
    let tmp = dir.join(format!(".token-key-{:032x}", rand::random::<u128>()));
    let result = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(Error::io("create", &tmp))?;
        f.write_all(pem_encode("PRIVATE KEY", doc.as_ref()).as_bytes()).map_err(Error::io("write", &tmp))?;
        f.sync_all().map_err(Error::io("fsync", &tmp))?;
        // A link, unlike a rename, never replaces a key another process made meanwhile.
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => {
                sync_dir(&dir)?;
                tracing::info!(path = %path.display(), "token signing key created");
                Ok(doc.as_ref().to_vec())
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let pem = std::fs::read(path).map_err(Error::io("read token key", path))?;
                parse_key(path, &pem)
            }
            Err(e) => Err(Error::io("link token key", path)(e)),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

fn load_or_create_key(path: &Path) -> Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(pem) => {
            use std::os::unix::fs::PermissionsExt;
            if std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                tracing::warn!(path = %path.display(), "token key is readable by others than its owner");
            }
            parse_key(path, &pem)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => create_key(path),
        Err(e) => Err(Error::io("read token key", path)(e)),
    }
}

/// The certificate chain for `x5c`; its first certificate must hold `spki`.
fn load_chain(path: &Path, spki: &[u8]) -> Result<Vec<String>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let bad = |reason: String| Error::TokenKey { path: path.to_path_buf(), reason };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<std::result::Result<_, _>>())
        .map_err(|e| bad(format!("reading the certificate: {e}")))?;
    let Some(leaf) = chain.first() else { return Err(bad("holds no certificate".into())) };
    if !leaf.as_ref().windows(spki.len()).any(|w| w == spki) {
        return Err(bad("the certificate is not for the token key".into()));
    }
    Ok(chain.iter().map(|c| STANDARD.encode(c.as_ref())).collect())
}

fn segment(value: &impl Serialize) -> Result<String> {
    let json = serde_json::to_vec(value).map_err(|e| Error::Internal(format!("encoding a token: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

impl Tokens {
    /// Loads the signing key (making it when the file does not exist) and the optional
    /// certificate. `default_key` is used when the configuration names no key.
    pub fn open(config: &config::Token, default_key: &Path) -> Result<Tokens> {
        let key_path = config.key.clone().unwrap_or_else(|| default_key.to_path_buf());
        let pkcs8 = load_or_create_key(&key_path)?;
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng).map_err(|e| Error::TokenKey {
            path: key_path.clone(),
            reason: format!("not a P-256 (ES256) key: {e}"),
        })?;
        let spki = [&P256_SPKI_PREFIX[..], key.public_key().as_ref()].concat();
        let x5c = config.cert.as_deref().map(|c| load_chain(c, &spki)).transpose()?;
        Ok(Tokens {
            issuer: config.issuer.clone(),
            service: config.service.clone(),
            realm: config.realm.clone(),
            expiry: config.expiry,
            refresh_expiry: config.refresh_expiry,
            kid: libtrust_key_id(&spki),
            key,
            x5c,
            rng,
        })
    }

    /// The key id in token headers.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    fn claims(&self, sub: &str, lifetime: Duration) -> Claims {
        let now = now_secs();
        Claims {
            iss: self.issuer.clone(),
            sub: sub.to_string(),
            aud: Audience::One(self.service.clone()),
            exp: now + lifetime.as_secs().max(1),
            nbf: now,
            iat: now,
            jti: format!("{:032x}", rand::random::<u128>()),
            access: Vec::new(),
            token_use: None,
            pwd: None,
        }
    }

    fn sign(&self, claims: &Claims) -> Result<String> {
        let mut header = serde_json::json!({ "typ": "JWT", "alg": "ES256", "kid": self.kid });
        if let Some(x5c) = &self.x5c {
            header["x5c"] = serde_json::json!(x5c);
        }
        let input = format!("{}.{}", segment(&header)?, segment(claims)?);
        let signature = self
            .key
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| Error::Internal("signing a token failed".into()))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
    }

    /// An access token for `sub` (empty: anonymous) granting `access`.
    pub fn issue(&self, sub: &str, access: Vec<ResourceActions>) -> Result<Issued> {
        let mut claims = self.claims(sub, self.expiry);
        claims.access = access;
        Ok(Issued { token: self.sign(&claims)?, expires_in: claims.exp - claims.iat, issued_at: SystemTime::now() })
    }

    /// A refresh token for `user`, tied to the fingerprint of the password entry.
    pub fn issue_refresh(&self, user: &str, fingerprint: &str) -> Result<String> {
        let mut claims = self.claims(user, self.refresh_expiry);
        claims.token_use = Some(REFRESH.into());
        claims.pwd = Some(fingerprint.into());
        self.sign(&claims)
    }

    /// Checks an access token: signature, issuer, audience, validity period; what it may
    /// do is the caller's to check. The error says why it is not valid.
    pub fn verify_access(&self, token: &str) -> std::result::Result<Claims, String> {
        let claims = self.verify(token)?;
        match claims.token_use {
            None => Ok(claims),
            Some(_) => Err("a refresh token is not an access token".into()),
        }
    }

    /// Checks a refresh token like an access token; it must be one.
    pub fn verify_refresh(&self, token: &str) -> std::result::Result<Claims, String> {
        let claims = self.verify(token)?;
        match claims.token_use.as_deref() {
            Some(REFRESH) if claims.pwd.is_some() && !claims.sub.is_empty() => Ok(claims),
            _ => Err("not a refresh token".into()),
        }
    }

    fn verify(&self, token: &str) -> std::result::Result<Claims, String> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err("malformed token".into());
        };
        let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|_| "malformed token".to_string());
        let header: serde_json::Value = serde_json::from_slice(&decode(header)?).map_err(|_| "malformed token header")?;
        // Only ES256: an `alg` chosen by the token (such as `none`) is never trusted.
        if header["alg"] != "ES256" {
            return Err(format!("unsupported token algorithm {}", header["alg"]));
        }
        if header.get("kid").is_some_and(|k| k != self.kid.as_str()) {
            return Err("token signed by an unknown key".into());
        }
        let input_len = token.len() - signature.len() - 1;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref())
            .verify(&token.as_bytes()[..input_len], &decode(signature)?)
            .map_err(|_| "bad token signature".to_string())?;
        let claims: Claims = serde_json::from_slice(&decode(payload)?).map_err(|e| format!("malformed token claims: {e}"))?;
        if claims.iss != self.issuer {
            return Err(format!("token from another issuer {:?}", claims.iss));
        }
        if !claims.aud.contains(&self.service) {
            return Err("token for another service".into());
        }
        let (now, leeway) = (now_secs(), LEEWAY.as_secs());
        if now > claims.exp + leeway {
            return Err("token expired".into());
        }
        if now + leeway < claims.nbf {
            return Err("token not valid yet".into());
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> config::Token {
        config::Token {
            issuer: "iss".into(),
            service: "svc".into(),
            key: Some(dir.join("keys/token.key")),
            cert: None,
            expiry: Duration::from_secs(60),
            refresh_expiry: Duration::from_secs(600),
            realm: None,
        }
    }

    fn tamper(token: &str, f: impl FnOnce(&mut serde_json::Value)) -> String {
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        f(&mut claims);
        format!("{}.{}.{}", parts[0], segment(&claims).unwrap(), parts[2])
    }

    #[test]
    fn sign_verify_and_refuse() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let tokens = Tokens::open(&cfg, Path::new("unused")).unwrap();
        let key_file = dir.path().join("keys/token.key");
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
        // The same key after a restart.
        let again = Tokens::open(&cfg, Path::new("unused")).unwrap();
        assert_eq!(again.kid(), tokens.kid());
        assert_eq!(std::fs::read_dir(dir.path().join("keys")).unwrap().count(), 1, "no temporary file left");

        let access = vec![ResourceActions { kind: "repository".into(), name: "a".into(), actions: vec!["pull".into()] }];
        let issued = tokens.issue("alice", access.clone()).unwrap();
        let claims = again.verify_access(&issued.token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.access.clone()), ("alice", access));
        assert!(claims.grants("repository", "a", "pull"));
        assert!(!claims.grants("repository", "a", "push"));
        assert!(!claims.grants("repository", "b", "pull"));
        assert_eq!(issued.expires_in, 60);

        let more = tamper(&issued.token, |c| c["access"][0]["actions"] = serde_json::json!(["pull", "push"]));
        assert_eq!(tokens.verify_access(&more).unwrap_err(), "bad token signature");
        let none_alg = format!("{}.{}.", segment(&serde_json::json!({"alg": "none"})).unwrap(), issued.token.split('.').nth(1).unwrap());
        assert!(tokens.verify_access(&none_alg).unwrap_err().contains("algorithm"));
        assert!(tokens.verify_access("a.b").is_err());
        assert!(tokens.verify_refresh(&issued.token).is_err());

        let refresh = tokens.issue_refresh("alice", "fp").unwrap();
        assert_eq!(tokens.verify_refresh(&refresh).unwrap().pwd.as_deref(), Some("fp"));
        assert!(tokens.verify_access(&refresh).is_err());

        // Another key's tokens are refused.
        let other_dir = tempfile::tempdir().unwrap();
        let other = Tokens::open(&config(other_dir.path()), Path::new("unused")).unwrap();
        assert!(tokens.verify_access(&other.issue("alice", vec![]).unwrap().token).is_err());

        // Expired, and another issuer or audience (signed properly).
        let mut c = tokens.claims("alice", Duration::from_secs(1));
        c.exp = now_secs() - LEEWAY.as_secs() - 5;
        assert_eq!(tokens.verify_access(&tokens.sign(&c).unwrap()).unwrap_err(), "token expired");
        let mut c = tokens.claims("alice", Duration::from_secs(60));
        c.nbf = now_secs() + 3600;
        assert!(tokens.verify_access(&tokens.sign(&c).unwrap()).is_err());
        let mut c = tokens.claims("alice", Duration::from_secs(60));
        c.iss = "evil".into();
        assert!(tokens.verify_access(&tokens.sign(&c).unwrap()).is_err());
        let mut c = tokens.claims("alice", Duration::from_secs(60));
        c.aud = Audience::Many(vec!["x".into(), "svc".into()]);
        assert!(tokens.verify_access(&tokens.sign(&c).unwrap()).is_ok());
        c.aud = Audience::One("x".into());
        assert!(tokens.verify_access(&tokens.sign(&c).unwrap()).is_err());
    }

    #[test]
    fn key_id_format() {
        let kid = libtrust_key_id(b"any");
        assert_eq!(kid.len(), 12 * 4 + 11);
        assert!(kid.split(':').all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))));
    }

    #[test]
    fn refuses_bad_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        let path = dir.path().join("bad.key");
        std::fs::write(&path, "not a key").unwrap();
        cfg.key = Some(path.clone());
        let e = Tokens::open(&cfg, Path::new("unused")).err().unwrap().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
    }
}
