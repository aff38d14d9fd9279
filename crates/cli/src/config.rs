//! The client configuration file (`config.json`, docker's format) and registry
//! credentials: stored as `auth` = base64(user:password) or an identity token, or kept by a
//! `docker-credential-<helper>` program; docker's own `~/.docker/config.json` is read as a
//! fallback.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The config file's name inside the config directory.
pub const CONFIG_FILE: &str = "config.json";

/// Credentials for one registry, in the JSON shape of docker's `AuthConfig` (which is also
/// what the `X-Registry-Auth` header and `POST /auth` carry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub serveraddress: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identitytoken: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub registrytoken: String,
}

impl AuthConfig {
    /// Whether these credentials can authenticate at all.
    pub fn is_empty(&self) -> bool {
        self.username.is_empty()
            && self.password.is_empty()
            && self.identitytoken.is_empty()
            && self.registrytoken.is_empty()
    }

    /// The `X-Registry-Auth` header value: base64url of the JSON, as docker encodes it.
    pub fn encode_header(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string());
        URL_SAFE.encode(json)
    }
}

/// A loaded `config.json`. Fields the CLI does not use are kept when the file is saved.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    path: PathBuf,
    fields: Map<String, Value>,
    auths: BTreeMap<String, AuthConfig>,
}

impl ConfigFile {
    /// Loads `dir/config.json`; a missing file is an empty configuration.
    pub fn load(dir: &Path) -> Result<ConfigFile> {
        let path = dir.join(CONFIG_FILE);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(Error::File {
                    operation: "reading config file",
                    path,
                    source,
                })
            }
        };
        Self::parse(path, &text)
    }

    fn parse(path: PathBuf, text: &[u8]) -> Result<ConfigFile> {
        let mut fields = if text.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            serde_json::from_slice::<Map<String, Value>>(text).map_err(|source| Error::Config {
                path: path.clone(),
                source,
            })?
        };
        let mut auths = BTreeMap::new();
        if let Some(Value::Object(entries)) = fields.remove("auths") {
            for (server, entry) in entries {
                let mut auth: AuthConfig =
                    serde_json::from_value(entry).map_err(|source| Error::Config {
                        path: path.clone(),
                        source,
                    })?;
                if !auth.auth.is_empty() {
                    let (user, password) = decode_auth(&auth.auth).map_err(|message| {
                        Error::InvalidArgument(format!(
                            "loading config file {}: {message}",
                            path.display()
                        ))
                    })?;
                    auth.username = user;
                    auth.password = password;
                }
                auth.auth.clear();
                auth.serveraddress = server.clone();
                auths.insert(server, auth);
            }
        }
        Ok(ConfigFile {
            path,
            fields,
            auths,
        })
    }

    /// The file this configuration is read from and saved to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn string_field(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// A string setting (`psFormat`, `detachKeys`, ...), when present and not empty.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.string_field(name)
    }

    /// `imagesFormat`: the default `--format` of `images`.
    pub fn images_format(&self) -> Option<&str> {
        self.string_field("imagesFormat")
    }

    /// `pruneFilters`: filters added to every prune.
    pub fn prune_filters(&self) -> Vec<String> {
        self.fields
            .get("pruneFilters")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The credential helper for `server`: `credHelpers[server]`, else `credsStore`.
    pub fn helper_for(&self, server: &str) -> Option<String> {
        if !server.is_empty() {
            if let Some(helper) = self
                .fields
                .get("credHelpers")
                .and_then(|h| h.get(server))
                .and_then(Value::as_str)
            {
                return Some(helper.to_string());
            }
        }
        self.string_field("credsStore").map(str::to_string)
    }

    /// Credentials stored in the file for `server` (matching also by host name, as
    /// docker's file store does).
    fn file_get(&self, server: &str) -> AuthConfig {
        if let Some(auth) = self.auths.get(server) {
            return auth.clone();
        }
        self.auths
            .iter()
            .find(|(key, _)| convert_to_hostname(key) == server)
            .map(|(_, auth)| auth.clone())
            .unwrap_or_default()
    }

    /// The credentials for `server`, from its helper or from the file.
    pub fn get_auth(&self, server: &str) -> Result<AuthConfig> {
        let mut auth = self.file_get(server);
        if let Some(helper) = self.helper_for(server) {
            if let Some(stored) = helper_get(&helper, server)? {
                auth.username = stored.username;
                auth.password = stored.password;
                auth.identitytoken = stored.identitytoken;
                auth.serveraddress = server.to_string();
            }
        }
        Ok(auth)
    }

    /// Stores credentials (in the helper if one is configured) and saves the file.
    /// Returns whether a password was written to the file in clear.
    pub fn store_auth(&mut self, mut auth: AuthConfig) -> Result<bool> {
        let server = auth.serveraddress.clone();
        if let Some(helper) = self.helper_for(&server) {
            helper_store(&helper, &auth)?;
            auth.username.clear();
            auth.password.clear();
            auth.identitytoken.clear();
        }
        let in_clear = !auth.password.is_empty();
        if self.auths.get(&server) == Some(&auth) {
            return Ok(false);
        }
        self.auths.insert(server, auth);
        self.save()?;
        Ok(in_clear)
    }

    /// Removes the credentials for `server` from the helper and the file.
    pub fn erase_auth(&mut self, server: &str) -> Result<()> {
        if let Some(helper) = self.helper_for(server) {
            helper_erase(&helper, server)?;
        }
        if self.auths.remove(server).is_some() {
            self.save()?;
        }
        Ok(())
    }

    /// Whether the file holds an entry for `server`.
    #[cfg(test)]
    pub fn has_auth(&self, server: &str) -> bool {
        self.auths.contains_key(server)
    }

    /// The file's JSON text: docker's layout, tab-indented, `auth` encoded.
    pub fn to_json(&self) -> String {
        let mut fields = self.fields.clone();
        let mut auths = Map::new();
        for (server, auth) in &self.auths {
            let mut entry = AuthConfig {
                email: auth.email.clone(),
                identitytoken: auth.identitytoken.clone(),
                registrytoken: auth.registrytoken.clone(),
                ..AuthConfig::default()
            };
            if !auth.username.is_empty() || !auth.password.is_empty() {
                entry.auth = STANDARD.encode(format!("{}:{}", auth.username, auth.password));
            }
            auths.insert(
                server.clone(),
                serde_json::to_value(entry).unwrap_or(Value::Null),
            );
        }
        fields.insert("auths".to_string(), Value::Object(auths));
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
        if Value::Object(fields).serialize(&mut serializer).is_err() {
            return "{}".to_string();
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Writes the file atomically (temporary file, then rename) with mode 0600.
    pub fn save(&self) -> Result<()> {
        let file_error = |operation, source| Error::File {
            operation,
            path: self.path.clone(),
            source,
        };
        // Follow a symlinked config.json to its target, as docker does.
        let target = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        let dir = target.parent().unwrap_or_else(|| Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| file_error("creating directory for", e))?;
        write_atomic(&target, self.to_json().as_bytes(), 0o600)
            .map_err(|e| file_error("saving config file", e))
    }
}

/// Writes `data` to a temporary file next to `path` and renames it over `path`, so
/// readers see the old or the new content, never a partial one.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        file.write_all(data)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn decode_auth(auth: &str) -> std::result::Result<(String, String), String> {
    let decoded = STANDARD
        .decode(auth.trim())
        .map_err(|e| format!("invalid auth value: {e}"))?;
    let text = String::from_utf8_lossy(&decoded);
    match text.split_once(':') {
        Some((user, password)) if !user.is_empty() => {
            Ok((user.to_string(), password.trim_matches('\0').to_string()))
        }
        _ => Err("Invalid auth configuration file".to_string()),
    }
}

/// docker's `ConvertToHostname`: "https://host:port/v1/" is "host:port".
pub fn convert_to_hostname(address: &str) -> String {
    let stripped = address.split_once("://").map_or(address, |(_, rest)| rest);
    stripped.split('/').next().unwrap_or(stripped).to_string()
}

#[derive(Serialize, Deserialize)]
struct HelperCredentials {
    #[serde(rename = "ServerURL", default)]
    server_url: String,
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin.
fn run_helper(helper: &str, action: &str, input: &[u8]) -> Result<(bool, String)> {
    let program = format!("docker-credential-{helper}");
    let helper_error = |message: String| Error::CredentialHelper {
        helper: helper.to_string(),
        message,
    };
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| helper_error(format!("running {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| helper_error(format!("writing to {program}: {e}")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| helper_error(format!("waiting for {program}: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Ok((output.status.success(), stdout))
}

fn helper_get(helper: &str, server: &str) -> Result<Option<AuthConfig>> {
    let (ok, out) = run_helper(helper, "get", server.as_bytes())?;
    if !ok {
        if out.contains("credentials not found") {
            return Ok(None);
        }
        return Err(Error::CredentialHelper {
            helper: helper.to_string(),
            message: out,
        });
    }
    let creds: HelperCredentials =
        serde_json::from_str(&out).map_err(|e| Error::CredentialHelper {
            helper: helper.to_string(),
            message: format!("invalid output: {e}"),
        })?;
    let mut auth = AuthConfig {
        serveraddress: server.to_string(),
        ..AuthConfig::default()
    };
    if creds.username == "<token>" {
        auth.identitytoken = creds.secret;
    } else {
        auth.username = creds.username;
        auth.password = creds.secret;
    }
    Ok(Some(auth))
}

fn helper_store(helper: &str, auth: &AuthConfig) -> Result<()> {
    let creds = if auth.identitytoken.is_empty() {
        HelperCredentials {
            server_url: auth.serveraddress.clone(),
            username: auth.username.clone(),
            secret: auth.password.clone(),
        }
    } else {
        HelperCredentials {
            server_url: auth.serveraddress.clone(),
            username: "<token>".to_string(),
            secret: auth.identitytoken.clone(),
        }
    };
    let input = serde_json::to_vec(&creds).unwrap_or_default();
    let (ok, out) = run_helper(helper, "store", &input)?;
    if ok {
        Ok(())
    } else {
        Err(Error::CredentialHelper {
            helper: helper.to_string(),
            message: out,
        })
    }
}

fn helper_erase(helper: &str, server: &str) -> Result<()> {
    let (ok, out) = run_helper(helper, "erase", server.as_bytes())?;
    if ok || out.contains("credentials not found") {
        Ok(())
    } else {
        Err(Error::CredentialHelper {
            helper: helper.to_string(),
            message: out,
        })
    }
}

/// The CLI's configuration plus docker's, which is consulted for credentials berth's own
/// file lacks.
#[derive(Debug, Clone)]
pub struct Configs {
    pub berth: ConfigFile,
    pub docker: Option<ConfigFile>,
}

impl Configs {
    /// Loads `config_dir/config.json` and, when present, `docker_dir/config.json`.
    pub fn load(config_dir: &Path, docker_dir: Option<&Path>) -> Result<Configs> {
        let berth = ConfigFile::load(config_dir)?;
        let docker = match docker_dir {
            Some(dir) if dir != config_dir && dir.join(CONFIG_FILE).exists() => {
                // A broken docker config must not break berth; it is only a fallback.
                ConfigFile::load(dir).ok()
            }
            _ => None,
        };
        Ok(Configs { berth, docker })
    }

    /// Credentials for `server`: berth's store first, then docker's.
    pub fn get_auth(&self, server: &str) -> Result<AuthConfig> {
        let auth = self.berth.get_auth(server)?;
        if !auth.is_empty() {
            return Ok(auth);
        }
        if let Some(docker) = &self.docker {
            if let Ok(found) = docker.get_auth(server) {
                if !found.is_empty() {
                    return Ok(found);
                }
            }
        }
        Ok(auth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_docker_format() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            r#"{"auths":{"127.0.0.1:5000":{"auth":"dXNlcjpwYXNz"},"https://index.docker.io/v1/":{"identitytoken":"tok"}},"imagesFormat":"{{.ID}}","psFormat":"x"}"#,
        )
        .unwrap();
        let mut cfg = ConfigFile::load(dir.path()).unwrap();
        let auth = cfg.get_auth("127.0.0.1:5000").unwrap();
        assert_eq!(
            (auth.username.as_str(), auth.password.as_str()),
            ("user", "pass")
        );
        assert_eq!(auth.serveraddress, "127.0.0.1:5000");
        assert_eq!(
            cfg.get_auth("https://index.docker.io/v1/")
                .unwrap()
                .identitytoken,
            "tok"
        );
        assert_eq!(cfg.images_format(), Some("{{.ID}}"));

        let stored = cfg
            .store_auth(AuthConfig {
                username: "u2".into(),
                password: "p:2".into(),
                serveraddress: "reg.example:443".into(),
                ..Default::default()
            })
            .unwrap();
        assert!(stored);
        let text = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            json["auths"]["reg.example:443"]["auth"],
            STANDARD.encode("u2:p:2")
        );
        assert_eq!(json["auths"]["127.0.0.1:5000"]["auth"], "dXNlcjpwYXNz");
        assert_eq!(json["psFormat"], "x");
        assert!(json["auths"]["reg.example:443"].get("username").is_none());
        assert!(text.contains("\n\t\"auths\": {"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(CONFIG_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let reloaded = ConfigFile::load(dir.path()).unwrap();
        assert_eq!(
            reloaded.get_auth("reg.example:443").unwrap().password,
            "p:2"
        );

        cfg.erase_auth("reg.example:443").unwrap();
        assert!(!ConfigFile::load(dir.path())
            .unwrap()
            .has_auth("reg.example:443"));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from(CONFIG_FILE)]);
    }

    #[test]
    fn missing_and_broken_files() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ConfigFile::load(dir.path()).unwrap();
        assert!(cfg.get_auth("x").unwrap().is_empty());
        std::fs::write(dir.path().join(CONFIG_FILE), "{not json").unwrap();
        let err = ConfigFile::load(dir.path()).unwrap_err();
        assert!(err.to_string().starts_with("loading config file"), "{err}");
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            r#"{"auths":{"x":{"auth":"!!"}}}"#,
        )
        .unwrap();
        assert!(ConfigFile::load(dir.path()).is_err());
    }

    #[test]
    fn falls_back_to_docker_config_and_matches_hostnames() {
        let berth = tempfile::tempdir().unwrap();
        let docker = tempfile::tempdir().unwrap();
        std::fs::write(
            docker.path().join(CONFIG_FILE),
            r#"{"auths":{"https://reg.example:5000/v1/":{"auth":"YTpi"}}}"#,
        )
        .unwrap();
        let configs = Configs::load(berth.path(), Some(docker.path())).unwrap();
        let auth = configs.get_auth("reg.example:5000").unwrap();
        assert_eq!((auth.username.as_str(), auth.password.as_str()), ("a", "b"));
        assert!(configs.get_auth("other").unwrap().is_empty());
    }

    #[test]
    fn credential_helpers_use_the_docker_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let store = dir.path().join("store");
        let script = format!(
            "#!/bin/sh\nset -e\nf={}\ncase \"$1\" in\n get) s=$(cat); if [ -f \"$f\" ]; then cat \"$f\"; else echo 'credentials not found in native keychain'; exit 1; fi;;\n store) cat > \"$f\";;\n erase) rm -f \"$f\";;\nesac\n",
            store.display()
        );
        let helper = bin.join("docker-credential-test");
        std::fs::write(&helper, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        // The helper is found through PATH; this test owns the variable's change.
        std::env::set_var("PATH", path);

        std::fs::write(dir.path().join(CONFIG_FILE), r#"{"credsStore":"test"}"#).unwrap();
        let mut cfg = ConfigFile::load(dir.path()).unwrap();
        assert!(cfg.get_auth("reg:1").unwrap().is_empty());
        cfg.store_auth(AuthConfig {
            username: "u".into(),
            password: "secret".into(),
            serveraddress: "reg:1".into(),
            ..Default::default()
        })
        .unwrap();
        let text = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
        assert!(!text.contains("secret"), "{text}");
        let stored: Value = serde_json::from_slice(&std::fs::read(&store).unwrap()).unwrap();
        assert_eq!(stored["Secret"], "secret");
        let auth = cfg.get_auth("reg:1").unwrap();
        assert_eq!(
            (auth.username.as_str(), auth.password.as_str()),
            ("u", "secret")
        );
        cfg.erase_auth("reg:1").unwrap();
        assert!(!store.exists());
    }

    #[test]
    fn encodes_registry_auth_header() {
        let empty = AuthConfig::default();
        assert_eq!(empty.encode_header(), "e30=");
        let auth = AuthConfig {
            username: "u".into(),
            password: "p".into(),
            serveraddress: "s".into(),
            ..Default::default()
        };
        let decoded = URL_SAFE.decode(auth.encode_header()).unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            r#"{"username":"u","password":"p","serveraddress":"s"}"#
        );
        assert_eq!(
            convert_to_hostname("https://index.docker.io/v1/"),
            "index.docker.io"
        );
        assert_eq!(convert_to_hostname("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
