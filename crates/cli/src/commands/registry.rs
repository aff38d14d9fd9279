//! Registry commands: `login`, `logout`, `search`.

use std::io::{self, Read, Write};

use bollard_stubs::models::{ImageSearchResponseItem, SystemAuthResponse};
use http::Method;

use super::filters_json;
use super::images::print_out;
use crate::cli::Cli;
use crate::client::{full, read_body, Query};
use crate::config::{convert_to_hostname, AuthConfig};
use crate::error::{Error, Result};
use crate::flags::{Parsed, BIN};
use crate::format::template::Data;
use crate::format::{ellipsis, render_rows};
use crate::reference::{auth_key_for_domain, search_index, INDEX_SERVER};
use crate::term;

const UNENCRYPTED_WARNING: &str = "\nWARNING! Your credentials are stored unencrypted in '{path}'.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/go/credential-store/\n";

/// `POST /auth`: the daemon checks the credentials against the registry.
async fn authenticate(cli: &mut Cli, auth: &AuthConfig) -> Result<SystemAuthResponse> {
    let body = serde_json::to_vec(auth).unwrap_or_default();
    let headers = [("Content-Type", "application/json".to_string())];
    let response = cli
        .client()
        .request(Method::POST, "/auth", &Query::new(), &headers, full(body))
        .await?;
    let bytes = read_body(response).await?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
        operation: "login",
        source,
    })
}

/// Saves credentials, warning (once) when a password is kept in clear.
fn store_credentials(cli: &mut Cli, auth: AuthConfig) -> Result<()> {
    let configs = cli.configs()?;
    let in_clear = configs
        .berth
        .store_auth(auth)
        .map_err(|e| Error::InvalidArgument(format!("Error saving credentials: {e}")))?;
    if in_clear {
        let path = configs.berth.path().display().to_string();
        eprintln!("{}", UNENCRYPTED_WARNING.replace("{path}", &path));
    }
    Ok(())
}

/// `login`.
pub async fn login(cli: &mut Cli, p: &Parsed) -> Result<()> {
    if p.changed("password-stdin") {
        if p.changed("password") {
            return Err(Error::InvalidArgument(
                "conflicting options: cannot specify both --password and --password-stdin"
                    .to_string(),
            ));
        }
        if !p.changed("username") {
            return Err(Error::InvalidArgument(
                "the --password-stdin option requires --username to be set".to_string(),
            ));
        }
    }
    let mut user = p.string("username");
    let mut password = p.string("password");
    if p.changed("username") && user.is_empty() {
        return Err(Error::InvalidArgument("username is empty".to_string()));
    }
    if p.changed("password") && password.is_empty() {
        return Err(Error::InvalidArgument("password is empty".to_string()));
    }
    if !password.is_empty() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    if p.bool("password-stdin") {
        let mut contents = String::new();
        io::stdin()
            .read_to_string(&mut contents)
            .map_err(|source| Error::Io {
                operation: "reading password from stdin",
                source,
            })?;
        let trimmed = contents.strip_suffix('\n').unwrap_or(&contents);
        password = trimmed.strip_suffix('\r').unwrap_or(trimmed).to_string();
    }
    let server = match p.args.first() {
        Some(s) if !s.is_empty() && s != "docker.io" => s.clone(),
        _ => INDEX_SERVER.to_string(),
    };
    let is_default = server == INDEX_SERVER;
    let server = if is_default {
        server
    } else {
        convert_to_hostname(&server)
    };

    // Stored credentials are tried first when none are given.
    let mut stored = AuthConfig::default();
    if user.is_empty() && password.is_empty() {
        stored = cli.configs()?.get_auth(&server).unwrap_or_default();
    }
    stored.serveraddress = server.clone();
    stored.identitytoken.clear();
    if !stored.username.is_empty() && !stored.password.is_empty() {
        let mut err = io::stderr();
        let _ = writeln!(
            err,
            "Authenticating with existing credentials... [Username: {}]",
            stored.username
        );
        let _ = writeln!(
            err,
            "\n Info -> To login with a different account, run '{BIN} logout' followed by '{BIN} login'\n\n"
        );
        match authenticate(cli, &stored).await {
            Ok(response) => {
                let mut auth = stored.clone();
                if let Some(token) = response.identity_token.filter(|t| !t.is_empty()) {
                    auth.password.clear();
                    auth.identitytoken = token;
                }
                store_credentials(cli, auth)?;
                return print_out(&format!("{}\n", response.status));
            }
            Err(Error::Daemon { status: 401, .. }) => {
                eprintln!("Stored credentials invalid or expired");
            }
            Err(e) => eprintln!("Login did not succeed, error: {e}"),
        }
    }

    if (user.is_empty() || password.is_empty()) && !term::stdin_is_terminal() {
        return Err(Error::InvalidArgument(
            "Error: Cannot perform an interactive login from a non TTY device".to_string(),
        ));
    }
    let mut out = io::stdout();
    let io_error = |source| Error::Io {
        operation: "reading credentials",
        source,
    };
    user = user.trim().to_string();
    if user.is_empty() {
        if is_default {
            let _ = writeln!(out, "Log in with your Docker ID or email address to push and pull images from Docker Hub. If you don't have a Docker ID, head over to https://hub.docker.com/ to create one.");
        }
        let default_user = stored.username.trim().to_string();
        let prompt = if default_user.is_empty() {
            "Username: ".to_string()
        } else {
            format!("Username ({default_user}): ")
        };
        user = term::read_line(&mut out, &prompt)
            .map_err(io_error)?
            .unwrap_or_default();
        if user.is_empty() {
            user = default_user;
        }
        if user.is_empty() {
            return Err(Error::InvalidArgument(
                "Error: Non-null Username Required".to_string(),
            ));
        }
    }
    password = password.trim().to_string();
    if password.is_empty() {
        password = term::read_secret(&mut out, "Password: ")
            .map_err(io_error)?
            .unwrap_or_default();
        let _ = writeln!(out);
        if password.is_empty() {
            return Err(Error::InvalidArgument(
                "Error: Password Required".to_string(),
            ));
        }
    }
    let mut auth = AuthConfig {
        username: user,
        password,
        serveraddress: server,
        ..AuthConfig::default()
    };
    let response = authenticate(cli, &auth).await?;
    if let Some(token) = response.identity_token.filter(|t| !t.is_empty()) {
        auth.password.clear();
        auth.identitytoken = token;
    }
    store_credentials(cli, auth)?;
    print_out(&format!("{}\n", response.status))
}

/// `logout`.
pub async fn logout(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let (server, is_default) = match p.args.first() {
        Some(s) if !s.is_empty() => (s.clone(), false),
        _ => (INDEX_SERVER.to_string(), true),
    };
    let mut to_erase = vec![server.clone()];
    let mut hostname = server.clone();
    if !is_default {
        hostname = convert_to_hostname(&server);
        to_erase.extend([
            hostname.clone(),
            format!("http://{hostname}"),
            format!("https://{hostname}"),
        ]);
    }
    print_out(&format!("Removing login credentials for {hostname}\n"))?;
    let configs = cli.configs()?;
    let mut failures = Vec::new();
    for key in &to_erase {
        if let Err(e) = configs.berth.erase_auth(key) {
            failures.push((key.clone(), e));
        }
    }
    if failures.len() == to_erase.len() {
        eprintln!("WARNING: could not erase credentials:");
        for (key, e) in failures {
            eprintln!("{key}: {e}");
        }
    }
    Ok(())
}

/// `search`.
pub async fn search(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let term = &p.args[0];
    let filters = p.list("filter");
    if filters
        .iter()
        .any(|f| f.trim().to_lowercase().starts_with("is-automated"))
    {
        eprintln!("WARNING: the \"is-automated\" filter is deprecated, and searching for \"is-automated=true\" will not yield any results in future.");
    }
    let key = auth_key_for_domain(&search_index(term));
    let auth = cli.registry_auth(&key);
    let mut query = Query::new().add("term", term.as_str());
    let limit = p.int("limit");
    if limit > 0 {
        query = query.add("limit", limit.to_string());
    }
    if let Some(f) = filters_json(&filters) {
        query = query.add("filters", f);
    }
    let headers = [("X-Registry-Auth", auth.encode_header())];
    let response = cli
        .client()
        .request(
            Method::GET,
            "/images/search",
            &query,
            &headers,
            crate::client::empty(),
        )
        .await?;
    let body = read_body(response).await?;
    let results: Vec<ImageSearchResponseItem> =
        serde_json::from_slice(&body).map_err(|source| Error::Decode {
            operation: "image search",
            source,
        })?;
    let trunc = !p.bool("no-trunc");
    let rows: Vec<Data> = results
        .iter()
        .map(|r| {
            let mut description = r
                .description
                .clone()
                .unwrap_or_default()
                .replace(['\n', '\r'], " ");
            if trunc {
                description = ellipsis(&description, 45);
            }
            let official = r.is_official.unwrap_or(false);
            let fields = [
                ("Name", r.name.clone().unwrap_or_default()),
                ("Description", description),
                ("StarCount", r.star_count.unwrap_or(0).to_string()),
                ("IsOfficial", if official { "[OK]" } else { "" }.to_string()),
            ];
            // In JSON docker writes the flag as "true"/"false" rather than "[OK]".
            let json_fields = [
                fields[0].clone(),
                fields[1].clone(),
                fields[2].clone(),
                ("IsOfficial", official.to_string()),
            ];
            Data::from_fields_with_json(&fields, &json_fields)
        })
        .collect();
    let mut format = p.string("format");
    if format.is_empty() || format == "table" {
        format = "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}".to_string();
    }
    let header = Data::header(&[
        ("Name", "NAME"),
        ("Description", "DESCRIPTION"),
        ("StarCount", "STARS"),
        ("IsOfficial", "OFFICIAL"),
    ]);
    print_out(&render_rows(&format, &header, &rows)?)
}
