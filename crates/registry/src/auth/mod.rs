//! Access control from `[auth]`: users from an htpasswd file, per-repository rules, and
//! either Basic authentication or the token flow (the registry serves its own token realm
//! at `/token` and checks the tokens it issued on every request).
//!
//! Anonymous callers lacking permission get 401 with a challenge (so clients can log in);
//! authenticated users lacking it get 403 `DENIED`. With tokens, a request its token does
//! not cover gets 401 `insufficient_scope` (the client fetches a token for that scope),
//! unless the rules refuse the token's user anyway: then 403.

pub mod htpasswd;
pub mod rules;
pub mod token;

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{self, HeaderMap};
use http::StatusCode;
use serde_json::json;

use crate::config;
use crate::error::{Error, Result};
use crate::hooks::{Access, Action, Scope};
use crate::names::RepoName;
use htpasswd::Htpasswd;
use rules::{Allowed, Rules};
use token::{Claims, ResourceActions, Tokens};

/// Largest token request body read (the OAuth2 form is a few hundred bytes).
const MAX_FORM: usize = 64 << 10;

/// Who a request comes from.
enum Caller {
    Anonymous,
    User(String),
    Token(Claims),
}

impl Caller {
    fn name(&self) -> Option<&str> {
        match self {
            Caller::Anonymous => None,
            Caller::User(u) => Some(u),
            Caller::Token(c) => Some(c.sub.as_str()).filter(|s| !s.is_empty()),
        }
    }
}

/// Access control per `[auth]`.
pub struct Auth {
    users: Option<Htpasswd>,
    rules: Rules,
    realm: String,
    tokens: Option<Tokens>,
    /// Whether clients reach the registry over TLS (for the token realm URL).
    tls: bool,
    /// The listening address, for the realm when a request has no usable `Host`.
    addr: String,
}

/// Runs CPU-heavy work (bcrypt) without stalling other requests on the same thread.
fn cpu_heavy<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// `user:password` from a Basic `Authorization` value.
fn basic_credentials(encoded: &str) -> Option<(String, String)> {
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Whether a `Host` header value is safe to put into a challenge.
fn plain_host(host: &str) -> bool {
    !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
}

fn verb(action: Action) -> &'static str {
    match action {
        Action::Pull => "pull from",
        Action::Push => "push to",
        Action::Delete => "delete from",
    }
}

/// The token scope a request needs: pushing also asks for pull, as clients need both.
fn repository_scope(name: &str, actions: &[Action]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for a in actions {
        if *a == Action::Push && !names.contains(&"pull") {
            names.push("pull");
        }
        if !names.contains(&a.as_str()) {
            names.push(a.as_str());
        }
    }
    format!("repository:{name}:{}", names.join(","))
}

impl Auth {
    /// Reads the htpasswd file and the token key (made when missing; the default key is
    /// `<root>/token.key`). `tls` and `addr` describe the listener, for token realms.
    pub fn new(config: &config::Auth, root: &Path, tls: bool, addr: String) -> Result<Auth> {
        let users = config.htpasswd.as_deref().map(Htpasswd::load).transpose()?;
        let tokens = config.token.as_ref().map(|t| Tokens::open(t, &root.join("token.key"))).transpose()?;
        Ok(Auth { users, rules: Rules::new(config.repositories.clone()), realm: config.realm.clone(), tokens, tls, addr })
    }

    /// The token service, when configured.
    pub fn tokens(&self) -> Option<&Tokens> {
        self.tokens.as_ref()
    }

    /// The `/token` endpoint (GET and the OAuth2 POST), when tokens are configured.
    pub fn router(self: Arc<Auth>) -> Router {
        Router::new().route("/token", get(get_token).post(post_token)).with_state(self)
    }

    fn check_password(&self, user: &str, password: &str) -> bool {
        self.users.as_ref().is_some_and(|u| cpu_heavy(|| u.verify(user, password)))
    }

    /// Establishes the caller from the `Authorization` header; the error tells why the
    /// credentials were refused and whether they were a token.
    fn identify(&self, headers: &HeaderMap) -> std::result::Result<Caller, (String, bool)> {
        let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(Caller::Anonymous) };
        let value = value.to_str().map_err(|_| ("malformed Authorization header".to_string(), false))?;
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let (user, password) = basic_credentials(rest).ok_or(("malformed Basic credentials".to_string(), false))?;
            // Some clients (containers/image) answer a Basic challenge with empty
            // credentials when they have none: that is an anonymous request.
            if user.is_empty() && password.is_empty() {
                return Ok(Caller::Anonymous);
            }
            return match self.check_password(&user, &password) {
                true => Ok(Caller::User(user)),
                false => Err(("incorrect username or password".into(), false)),
            };
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            if let Some(tokens) = &self.tokens {
                return tokens.verify_access(rest.trim()).map(Caller::Token).map_err(|e| (e, true));
            }
        }
        Err((format!("unsupported authorization scheme {scheme:?}"), false))
    }

    /// The realm URL of token challenges.
    fn token_realm(&self, headers: &HeaderMap, tokens: &Tokens) -> String {
        if let Some(realm) = &tokens.realm {
            return realm.clone();
        }
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).filter(|h| plain_host(h)).unwrap_or(&self.addr);
        format!("{}://{host}/token", if self.tls { "https" } else { "http" })
    }

    fn challenge(&self, headers: &HeaderMap, scope: Option<&str>, error: Option<&str>) -> String {
        let Some(tokens) = &self.tokens else { return format!("Basic realm=\"{}\"", self.realm) };
        let mut c = format!("Bearer realm=\"{}\",service=\"{}\"", self.token_realm(headers, tokens), tokens.service);
        if let Some(scope) = scope {
            c.push_str(&format!(",scope=\"{scope}\""));
        }
        if let Some(error) = error {
            c.push_str(&format!(",error=\"{error}\""));
        }
        c
    }

    fn unauthorized(&self, headers: &HeaderMap, scope: Option<&str>, error: Option<&str>, reason: String) -> Error {
        Error::Unauthorized { challenge: self.challenge(headers, scope, error), reason }
    }

    /// What `user` may do in a repository.
    fn allowed(&self, user: Option<&str>, name: &str) -> Allowed {
        self.rules.allowed(user, name)
    }

    /// The actions of `requested` (`*`: all) that `user` may do in repository `name`.
    fn grant_repository(&self, user: Option<&str>, name: &str, requested: &[&str]) -> Vec<String> {
        let allowed = self.allowed(user, name);
        let mut granted = Vec::new();
        for action in [Action::Pull, Action::Push, Action::Delete] {
            let asked = requested.iter().any(|r| *r == action.as_str() || *r == "*");
            if asked && allowed.permits(action) {
                granted.push(action.as_str().to_string());
            }
        }
        granted
    }

    /// The access a token for `user` gets: per requested scope (`type:name:actions`, several
    /// per string separated by spaces), what was asked and the rules allow.
    fn grant(&self, user: Option<&str>, scopes: &[String]) -> Result<Vec<ResourceActions>> {
        let mut access = Vec::new();
        for scope in scopes.iter().flat_map(|s| s.split_whitespace()) {
            let invalid = || Error::TokenRequest(format!("invalid scope {scope:?}: expected type:name:actions"));
            let (kind, rest) = scope.split_once(':').ok_or_else(invalid)?;
            let (name, actions) = rest.rsplit_once(':').ok_or_else(invalid)?;
            let requested: Vec<&str> = actions.split(',').map(str::trim).collect();
            // `repository(plugin)` and the like are repositories of a class.
            let granted = match kind.split('(').next().unwrap_or(kind) {
                "repository" => {
                    RepoName::parse(name).map_err(|e| Error::TokenRequest(format!("invalid scope {scope:?}: {e}")))?;
                    self.grant_repository(user, name, &requested)
                }
                "registry" if name == "catalog" && user.is_some() && requested.contains(&"*") => vec!["*".to_string()],
                "registry" => Vec::new(),
                _ => continue,
            };
            access.push(ResourceActions { kind: kind.to_string(), name: name.to_string(), actions: granted });
        }
        Ok(access)
    }

    /// The user of Basic credentials on a token request; `None` without credentials.
    fn token_user(&self, headers: &HeaderMap) -> Result<Option<String>> {
        let refused = |reason: &str| Error::Unauthorized {
            challenge: format!("Basic realm=\"{}\"", self.realm),
            reason: reason.to_string(),
        };
        let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
        let value = value.to_str().map_err(|_| refused("malformed Authorization header"))?;
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(refused("the token endpoint takes Basic credentials"));
        }
        let (user, password) = basic_credentials(rest).ok_or_else(|| refused("malformed Basic credentials"))?;
        if user.is_empty() && password.is_empty() {
            return Ok(None);
        }
        match self.check_password(&user, &password) {
            true => Ok(Some(user)),
            false => Err(refused("incorrect username or password")),
        }
    }

    fn check_service(tokens: &Tokens, service: Option<&str>) -> Result<()> {
        match service {
            Some(s) if !s.is_empty() && s != tokens.service => {
                Err(Error::TokenRequest(format!("unknown service {s:?}; this registry is {:?}", tokens.service)))
            }
            _ => Ok(()),
        }
    }

    /// `GET /token?service=&scope=&account=&offline_token=`.
    fn token_get(&self, headers: &HeaderMap, query: &[(String, String)]) -> Result<serde_json::Value> {
        let tokens = self.tokens.as_ref().ok_or_else(|| Error::Internal("no token service".into()))?;
        let get = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        Self::check_service(tokens, get("service"))?;
        let user = self.token_user(headers)?;
        if let (Some(account), Some(user)) = (get("account").filter(|a| !a.is_empty()), &user) {
            if account != user {
                return Err(Error::TokenRequest(format!("account {account:?} does not match the credentials of {user:?}")));
            }
        }
        let scopes: Vec<String> = query.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.clone()).collect();
        let offline = get("offline_token") == Some("true");
        self.respond_with_token(tokens, user.as_deref(), &scopes, offline, "get")
    }

    /// `POST /token` with the OAuth2 password or refresh_token grant.
    fn token_post(&self, form: &[(String, String)]) -> Result<serde_json::Value> {
        let tokens = self.tokens.as_ref().ok_or_else(|| Error::Internal("no token service".into()))?;
        let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        Self::check_service(tokens, get("service"))?;
        let refused = |reason: &str| Error::Unauthorized {
            challenge: format!("Basic realm=\"{}\"", self.realm),
            reason: reason.to_string(),
        };
        let scopes: Vec<String> = get("scope").map(|s| vec![s.to_string()]).unwrap_or_default();
        match get("grant_type") {
            Some("password") => {
                let (Some(user), Some(password)) = (get("username"), get("password")) else {
                    return Err(Error::TokenRequest("the password grant needs username and password".into()));
                };
                if !self.check_password(user, password) {
                    return Err(refused("incorrect username or password"));
                }
                self.respond_with_token(tokens, Some(user), &scopes, get("access_type") == Some("offline"), "password")
            }
            Some("refresh_token") => {
                let Some(refresh) = get("refresh_token") else {
                    return Err(Error::TokenRequest("the refresh_token grant needs refresh_token".into()));
                };
                let claims = tokens.verify_refresh(refresh).map_err(|e| refused(&format!("invalid refresh token: {e}")))?;
                let current = self
                    .users
                    .as_ref()
                    .is_some_and(|u| u.fingerprint_matches(&claims.sub, claims.pwd.as_deref().unwrap_or("")));
                if !current {
                    return Err(refused("refresh token revoked: the user or password changed"));
                }
                self.respond_with_token(tokens, Some(&claims.sub), &scopes, false, "refresh_token")
            }
            other => Err(Error::TokenRequest(format!("unsupported grant_type {:?}", other.unwrap_or("")))),
        }
    }

    fn respond_with_token(&self, tokens: &Tokens, user: Option<&str>, scopes: &[String], offline: bool, grant: &str) -> Result<serde_json::Value> {
        let access = self.grant(user, scopes)?;
        let issued = tokens.issue(user.unwrap_or(""), access.clone())?;
        tracing::debug!(user = user.unwrap_or(""), grant, access = ?access, "token issued");
        let mut body = json!({
            "token": issued.token,
            "access_token": issued.token,
            "expires_in": issued.expires_in,
            "issued_at": humantime::format_rfc3339_seconds(issued.issued_at).to_string(),
        });
        if !scopes.is_empty() {
            body["scope"] = json!(scopes.join(" "));
        }
        if let (true, Some(user)) = (offline, user) {
            let fingerprint = self.users.as_ref().and_then(|u| u.fingerprint(user)).unwrap_or_default();
            body["refresh_token"] = json!(tokens.issue_refresh(user, &fingerprint)?);
        }
        Ok(body)
    }
}

impl Access for Auth {
    fn authorize(&self, request: &http::request::Parts, scope: Scope<'_>) -> Result<Option<String>> {
        let headers = &request.headers;
        let scope_text = match scope {
            Scope::Base => None,
            Scope::Catalog => Some("registry:catalog:*".to_string()),
            Scope::Repository { name, actions } => Some(repository_scope(name, actions)),
        };
        let scope_text = scope_text.as_deref();
        let caller = match self.identify(headers) {
            Ok(c) => c,
            Err((reason, was_token)) => {
                let error = was_token.then_some("invalid_token");
                return Err(self.unauthorized(headers, scope_text, error, reason));
            }
        };
        let insufficient = |reason: String| self.unauthorized(headers, scope_text, Some("insufficient_scope"), reason);
        match scope {
            Scope::Base => match caller {
                Caller::Anonymous => Err(self.unauthorized(headers, None, None, "log in to use this registry".into())),
                _ => Ok(caller.name().map(String::from)),
            },
            Scope::Catalog => match &caller {
                Caller::Anonymous => Err(self.unauthorized(headers, scope_text, None, "listing repositories needs a login".into())),
                Caller::Token(c) if !c.grants("registry", "catalog", "*") => {
                    Err(insufficient("the token does not grant registry:catalog:*".into()))
                }
                _ => Ok(caller.name().map(String::from)),
            },
            Scope::Repository { name, actions } => {
                let refused_by_rules = |user: &str| {
                    let allowed = self.allowed(Some(user), name);
                    actions.iter().find(|a| !allowed.permits(**a)).map(|a| Error::Denied {
                        user: user.to_string(),
                        what: format!("{} repository {name}", verb(*a)),
                    })
                };
                if let Caller::Token(claims) = &caller {
                    if actions.iter().all(|a| claims.grants("repository", name, a.as_str())) {
                        return Ok(caller.name().map(String::from));
                    }
                    if let Some(denied) = caller.name().and_then(refused_by_rules) {
                        return Err(denied);
                    }
                    return Err(insufficient(format!("the token does not grant {}", scope_text.unwrap_or(""))));
                }
                match caller.name() {
                    Some(user) => match refused_by_rules(user) {
                        Some(denied) => Err(denied),
                        None => Ok(Some(user.to_string())),
                    },
                    None => {
                        let allowed = self.allowed(None, name);
                        match actions.iter().find(|a| !allowed.permits(**a)) {
                            None => Ok(None),
                            Some(a) => Err(self.unauthorized(headers, scope_text, None, format!("log in to {} repository {name}", verb(*a)))),
                        }
                    }
                }
            }
        }
    }

    fn pullable(&self, request: &http::request::Parts, mut names: Vec<String>) -> Vec<String> {
        let caller = self.identify(&request.headers).unwrap_or(Caller::Anonymous);
        names.retain(|n| self.allowed(caller.name(), n).pull);
        names
    }
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    let body = body.to_string();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn token_response(method: &http::Method, result: Result<serde_json::Value>) -> Response {
    match result {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => {
            tracing::debug!(error = %e, "token request refused");
            crate::http::error_response(method, &e)
        }
    }
}

async fn get_token(State(auth): State<Arc<Auth>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let query: Vec<(String, String)> =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    token_response(&parts.method, auth.token_get(&parts.headers, &query))
}

async fn post_token(State(auth): State<Arc<Auth>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let result = match axum::body::to_bytes(body, MAX_FORM).await {
        Ok(bytes) => auth.token_post(&form_urlencoded::parse(&bytes).into_owned().collect::<Vec<_>>()),
        Err(e) => Err(Error::Body(e.to_string())),
    };
    token_response(&parts.method, result)
}
