//! Registry credentials and authentication: the AuthConfig docker sends (X-Registry-Auth,
//! POST /auth), WWW-Authenticate challenges, and bearer tokens from a token server.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The key under which docker stores Docker Hub credentials.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Credentials as the Docker API carries them (`X-Registry-Auth`, `POST /auth`, config.json).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// base64("username:password"), as config.json stores it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(
        rename = "serveraddress",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub server_address: String,
    /// A refresh token a token server gave at login; used instead of the password.
    #[serde(
        rename = "identitytoken",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub identity_token: String,
    /// A bearer token sent to the registry as it is.
    #[serde(
        rename = "registrytoken",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub registry_token: String,
}

/// Secrets stay out of logs.
impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |s: &str| if s.is_empty() { "" } else { "<set>" };
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("password", &set(&self.password))
            .field("auth", &set(&self.auth))
            .field("server_address", &self.server_address)
            .field("identity_token", &set(&self.identity_token))
            .field("registry_token", &set(&self.registry_token))
            .finish()
    }
}

impl AuthConfig {
    /// Decodes an `X-Registry-Auth` header: base64url JSON (padding optional, the standard
    /// alphabet accepted too). An empty header means no credentials.
    pub fn from_header(value: &str) -> Result<Option<AuthConfig>, Error> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(None);
        }
        let bad = |reason: String| Error::InvalidAuthHeader { reason };
        let json = URL_SAFE_LENIENT
            .decode(value)
            .or_else(|_| STANDARD_LENIENT.decode(value))
            .map_err(|e| bad(format!("not base64: {e}")))?;
        let config: AuthConfig = serde_json::from_slice(&json).map_err(|e| bad(e.to_string()))?;
        Ok(Some(config))
    }

    /// Encodes the config for an `X-Registry-Auth` header (base64url JSON).
    pub fn to_header(&self) -> String {
        // Serialising a struct of strings cannot fail.
        URL_SAFE_LENIENT.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// The username and password, taken from `auth` when the fields are empty.
    pub fn username_password(&self) -> Option<(String, String)> {
        if !self.username.is_empty() || !self.password.is_empty() {
            return Some((self.username.clone(), self.password.clone()));
        }
        if self.auth.is_empty() {
            return None;
        }
        let decoded = STANDARD_LENIENT.decode(self.auth.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, pass) = text.split_once(':')?;
        Some((user.to_string(), pass.trim_end_matches('\0').to_string()))
    }

    /// True when the config carries no credential at all.
    pub fn is_anonymous(&self) -> bool {
        self.username_password().is_none()
            && self.identity_token.is_empty()
            && self.registry_token.is_empty()
    }

    /// A key that tells credentials apart in caches without keeping them in clear.
    pub(crate) fn cache_key(&self) -> String {
        use sha2::Digest as _;
        let (user, pass) = self.username_password().unwrap_or_default();
        let material = format!(
            "{user}\0{pass}\0{}\0{}",
            self.identity_token, self.registry_token
        );
        hex::encode(sha2::Sha256::digest(material.as_bytes()))
    }
}

/// The key credentials for a registry domain are stored under (docker's config.json and
/// `POST /auth`): Docker Hub's is `https://index.docker.io/v1/`, others are the domain.
pub fn auth_key(domain: &str) -> String {
    match domain {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_AUTH_KEY.to_string(),
        other => other.to_string(),
    }
}

/// The registry host of a server address as `docker login` accepts it:
/// `https://localhost:5000/v2/` -> `localhost:5000`; Docker Hub's names -> `docker.io`.
pub fn registry_domain(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or_default();
    match host {
        "" | "docker.io" | "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    }
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercase scheme: `bearer`, `basic`.
    pub scheme: String,
    /// Parameters with lowercase names: `realm`, `service`, `scope`, `error`.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses `WWW-Authenticate` values (RFC 7235): several headers, several challenges per header.
pub fn parse_challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for value in values {
        let mut p = Parser {
            s: value.as_bytes(),
            i: 0,
        };
        while p.peek().is_some() {
            p.skip(|c| c == b' ' || c == b'\t' || c == b',');
            let scheme = p.token();
            if scheme.is_empty() {
                // Junk where a scheme should be: step over it.
                p.i = (p.i + 1).min(p.s.len());
                continue;
            }
            let mut challenge = Challenge {
                scheme: scheme.to_ascii_lowercase(),
                params: BTreeMap::new(),
            };
            while p.peek().is_some() {
                p.skip(|c| c == b' ' || c == b'\t');
                let save = p.i;
                let name = p.token();
                p.skip(|c| c == b' ' || c == b'\t');
                if !name.is_empty() && p.eat(b'=') {
                    p.skip(|c| c == b' ' || c == b'\t');
                    let value = if p.peek() == Some(b'"') {
                        p.quoted()
                    } else {
                        p.token()
                    };
                    challenge.params.insert(name.to_ascii_lowercase(), value);
                    p.skip(|c| c == b' ' || c == b'\t');
                    // Anything up to the next comma is not ours (a token68's padding, junk).
                    p.skip(|c| c != b',');
                    p.eat(b',');
                } else if !name.is_empty() {
                    // A bare token: the next challenge's scheme.
                    p.i = save;
                    break;
                } else if !p.eat(b',') {
                    p.i = (p.i + 1).min(p.s.len());
                }
            }
            out.push(challenge);
        }
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
    }
    fn token(&mut self) -> String {
        let start = self.i;
        self.skip(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&c));
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }
    fn quoted(&mut self) -> String {
        self.i += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        out.push(n);
                        self.i += 1;
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The scope for a repository: `repository:<path>:pull` or `...:pull,push`.
pub fn repository_scope(path: &str, push: bool) -> String {
    format!(
        "repository:{path}:{}",
        if push { "pull,push" } else { "pull" }
    )
}

/// What a token server answered.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub token: String,
    pub expires_in: Duration,
    pub refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    expires_in: u64,
    #[serde(default)]
    refresh_token: String,
}

/// Tokens live at least this long (docker's minimum).
const MIN_TOKEN_LIFETIME: u64 = 60;

/// A token request to the realm of a bearer challenge.
pub(crate) struct TokenRequest<'a> {
    pub realm: &'a str,
    pub service: Option<&'a str>,
    pub scopes: &'a [String],
    pub auth: Option<&'a AuthConfig>,
    /// Ask for a refresh token (docker login does).
    pub offline: bool,
}

/// Gets a bearer token: POST with the refresh token when the credentials hold an identity
/// token (OAuth2), otherwise GET with basic auth (anonymous without credentials).
pub(crate) async fn fetch_token(
    http: &reqwest::Client,
    req: &TokenRequest<'_>,
) -> Result<Token, Error> {
    let fail = |status: Option<u16>, detail: String| Error::Token {
        realm: req.realm.to_string(),
        status,
        detail,
    };
    let mut url =
        url::Url::parse(req.realm).map_err(|e| fail(None, format!("invalid realm: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(fail(None, "the realm is not an http(s) URL".into()));
    }
    let identity_token = req
        .auth
        .map(|a| a.identity_token.as_str())
        .filter(|t| !t.is_empty());
    let request = if let Some(refresh) = identity_token {
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", "docker"),
        ];
        if let Some(service) = req.service {
            form.push(("service", service));
        }
        let scope = req.scopes.join(" ");
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        if req.offline {
            form.push(("access_type", "offline"));
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        http.post(url)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
    } else {
        let credentials = req.auth.and_then(AuthConfig::username_password);
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = req.service {
                q.append_pair("service", service);
            }
            for scope in req.scopes {
                q.append_pair("scope", scope);
            }
            if let Some((user, _)) = &credentials {
                q.append_pair("account", user);
            }
            if req.offline {
                q.append_pair("offline_token", "true");
                q.append_pair("client_id", "docker");
            }
        }
        let mut r = http.get(url);
        if let Some((user, pass)) = credentials {
            r = r.basic_auth(user, Some(pass));
        }
        r
    };
    let resp = request
        .send()
        .await
        .map_err(|e| fail(None, crate::client::error_chain(&e)))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| fail(Some(status.as_u16()), crate::client::error_chain(&e)))?;
    if !status.is_success() {
        return Err(fail(
            Some(status.as_u16()),
            crate::client::error_detail(status, &body),
        ));
    }
    let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
        fail(
            Some(status.as_u16()),
            format!("the answer is not a token response: {e}"),
        )
    })?;
    let token = if parsed.token.is_empty() {
        parsed.access_token
    } else {
        parsed.token
    };
    if token.is_empty() {
        return Err(fail(
            Some(status.as_u16()),
            "the answer holds no token".into(),
        ));
    }
    Ok(Token {
        token,
        expires_in: Duration::from_secs(parsed.expires_in.max(MIN_TOKEN_LIFETIME)),
        refresh_token: Some(parsed.refresh_token).filter(|t| !t.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn header_round_trip_and_leniency() {
        let a = AuthConfig {
            username: "alice".into(),
            password: "s3cr3t?>".into(),
            server_address: "localhost:5000".into(),
            ..AuthConfig::default()
        };
        let h = a.to_header();
        assert_eq!(AuthConfig::from_header(&h).unwrap(), Some(a.clone()));
        assert_eq!(
            AuthConfig::from_header(h.trim_end_matches('=')).unwrap(),
            Some(a.clone())
        );
        let std = STANDARD.encode(serde_json::to_vec(&a).unwrap());
        assert_eq!(AuthConfig::from_header(&std).unwrap(), Some(a));
        assert_eq!(AuthConfig::from_header("").unwrap(), None);
        let e = AuthConfig::from_header("!!!").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid X-Registry-Auth header: not base64"),
            "{e}"
        );
        let e = AuthConfig::from_header(&URL_SAFE_LENIENT.encode("[1]")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid X-Registry-Auth header: "),
            "{e}"
        );
        let json = r#"{"username":"u","password":"p","auth":"","email":"","serveraddress":"s","identitytoken":"i","registrytoken":"r"}"#;
        let parsed = AuthConfig::from_header(&URL_SAFE_LENIENT.encode(json))
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                parsed.identity_token.as_str(),
                parsed.registry_token.as_str()
            ),
            ("i", "r")
        );
        assert!(!format!("{parsed:?}").contains("\"p\""));
    }

    #[test]
    fn auth_field_is_decoded() {
        let a = AuthConfig {
            auth: STANDARD.encode("bob:pa:ss"),
            ..AuthConfig::default()
        };
        assert_eq!(a.username_password(), Some(("bob".into(), "pa:ss".into())));
        assert!(!a.is_anonymous());
        assert!(AuthConfig::default().is_anonymous());
        assert_ne!(a.cache_key(), AuthConfig::default().cache_key());
    }

    #[test]
    fn keys_and_domains() {
        assert_eq!(auth_key("docker.io"), DOCKER_HUB_AUTH_KEY);
        assert_eq!(auth_key("localhost:5000"), "localhost:5000");
        assert_eq!(registry_domain("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(
            registry_domain("http://localhost:5000/v2/"),
            "localhost:5000"
        );
        assert_eq!(registry_domain("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(registry_domain(""), "docker.io");
    }

    #[test]
    fn challenges() {
        let c = parse_challenges([
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
        ]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(
            c[0].param("scope"),
            Some("repository:samalba/my-app:pull,push")
        );

        let c = parse_challenges([
            r#"Basic realm="a \"quoted\" realm", Bearer realm=https://x/t, error=insufficient_scope"#,
        ]);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("a \"quoted\" realm"));
        assert_eq!(c[1].param("realm"), Some("https://x/t"));
        assert_eq!(c[1].param("error"), Some("insufficient_scope"));

        let c = parse_challenges(["Negotiate abc==", "Basic"]);
        assert_eq!(
            c.iter().map(|c| c.scheme.as_str()).collect::<Vec<_>>(),
            ["negotiate", "basic"]
        );
        let c = parse_challenges(["Basic, Bearer realm=x"]);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[1].param("realm"), Some("x"));
        assert!(parse_challenges([""]).is_empty());
        assert_eq!(parse_challenges(["\"=,"]).len(), 0);
    }
}
