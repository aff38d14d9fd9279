//! Moving images in and out: `pull`, `push`, `save`, `load`, `import`.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use http::Method;
use http_body_util::BodyExt;

use super::images::print_out;
use super::{platform_json, require_api};
use crate::cli::{show_stream, Cli};
use crate::client::{empty, escape_path, from_reader, Body, Query};
use crate::config::AuthConfig;
use crate::error::{Error, Result};
use crate::flags::Parsed;
use crate::reference::Reference;
use crate::term;

const AUTH_HEADER: &str = "X-Registry-Auth";

/// Parses the reference of `pull`/`push` with docker's `--all-tags` rules, printing
/// "Using default tag" when the tag is implied.
fn transfer_reference(name: &str, all_tags: bool, quiet: bool) -> Result<Reference> {
    let reference = Reference::parse_normalized(name)?;
    if all_tags && !reference.is_name_only() {
        return Err(Error::InvalidArgument(
            "tag can't be used with --all-tags/-a".to_string(),
        ));
    }
    if !all_tags && reference.is_name_only() {
        let reference = reference.with_default_tag();
        if !quiet {
            print_out(&format!(
                "Using default tag: {}\n",
                reference.tag().unwrap_or("latest")
            ))?;
        }
        return Ok(reference);
    }
    Ok(reference)
}

/// Asks for credentials on a terminal after the daemon answered "unauthorized", as
/// docker's privilege function does; `None` when there is no terminal to ask on.
fn prompt_credentials(key: &str, stored: &AuthConfig, action: &str) -> Result<Option<AuthConfig>> {
    if !term::stdin_is_terminal() {
        return Ok(None);
    }
    let mut out = io::stdout();
    let io_error = |source| Error::Io {
        operation: "reading credentials",
        source,
    };
    writeln!(out, "\nLogin prior to {action}:").map_err(io_error)?;
    let prompt = if stored.username.is_empty() {
        "Username: ".to_string()
    } else {
        format!("Username ({}): ", stored.username)
    };
    let mut username = term::read_line(&mut out, &prompt)
        .map_err(io_error)?
        .unwrap_or_default();
    if username.is_empty() {
        username = stored.username.clone();
    }
    if username.is_empty() {
        return Err(Error::InvalidArgument(
            "Error: Non-null Username Required".to_string(),
        ));
    }
    let password = term::read_secret(&mut out, "Password: ")
        .map_err(io_error)?
        .unwrap_or_default();
    writeln!(out).map_err(io_error)?;
    if password.is_empty() {
        return Err(Error::InvalidArgument(
            "Error: Password Required".to_string(),
        ));
    }
    Ok(Some(AuthConfig {
        username,
        password,
        serveraddress: key.to_string(),
        ..AuthConfig::default()
    }))
}

/// POSTs with the stored credentials, retrying once with prompted ones when the daemon
/// says the registry refused them.
async fn post_with_auth(
    cli: &mut Cli,
    path: &str,
    query: &Query,
    key: &str,
    action: &str,
) -> Result<http::Response<hyper::body::Incoming>> {
    let auth = cli.registry_auth(key);
    let headers = [(AUTH_HEADER, auth.encode_header())];
    match cli
        .client()
        .request(Method::POST, path, query, &headers, empty())
        .await
    {
        Err(Error::Daemon {
            status: 401,
            message,
        }) => match prompt_credentials(key, &auth, action)? {
            Some(prompted) => {
                let headers = [(AUTH_HEADER, prompted.encode_header())];
                cli.client()
                    .request(Method::POST, path, query, &headers, empty())
                    .await
            }
            None => Err(Error::Daemon {
                status: 401,
                message,
            }),
        },
        other => other,
    }
}

/// `pull`.
pub async fn pull(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let all = p.bool("all-tags");
    let quiet = p.bool("quiet");
    let reference = transfer_reference(&p.args[0], all, quiet)?;
    let mut query = Query::new().add("fromImage", reference.name());
    if !all {
        query = query.add("tag", reference.tag_or_digest());
    }
    let platform = p.string("platform");
    if !platform.is_empty() {
        query = query.add("platform", platform.to_lowercase());
    }
    let response =
        post_with_auth(cli, "/images/create", &query, &reference.auth_key(), "pull").await?;
    show_stream(response, quiet, &mut |_| {}).await?;
    print_out(&format!("{reference}\n"))
}

/// `push`.
pub async fn push(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let all = p.bool("all-tags");
    let quiet = p.bool("quiet");
    let reference = transfer_reference(&p.args[0], all, quiet)?;
    if reference.digest().is_some() {
        return Err(Error::InvalidArgument(
            "cannot push a digest reference".to_string(),
        ));
    }
    let mut query = Query::new();
    if !all {
        if let Some(tag) = reference.tag() {
            query = query.add("tag", tag);
        }
    }
    let platform = p.string("platform");
    if !platform.is_empty() {
        require_api(cli, "1.46", "--platform").await?;
        query = query.add("platform", platform_json(&platform)?);
    }
    let path = format!("/images/{}/push", escape_path(&reference.name()));
    let response = post_with_auth(cli, &path, &query, &reference.auth_key(), "push").await?;
    show_stream(response, quiet, &mut |_| {}).await?;
    if quiet {
        print_out(&format!("{reference}\n"))?;
    }
    Ok(())
}

/// Checks the `-o` target as docker's atomic writer does: an existing path must be a
/// regular file, and its directory must exist.
fn check_output_path(path: &Path) -> Result<()> {
    check_output_path_for(path, "failed to save image")
}

/// `check_output_path` with the error prefix of another command.
pub fn check_output_path_for(path: &Path, prefix: &str) -> Result<()> {
    let refuse =
        |what: &str| Error::InvalidArgument(format!("{prefix}: cannot write to a {what} file"));
    if let Ok(meta) = std::fs::metadata(path) {
        let kind = meta.file_type();
        if kind.is_dir() {
            return Err(refuse("directory"));
        }
        if kind.is_char_device() {
            return Err(refuse("character device"));
        }
        if kind.is_block_device() {
            return Err(refuse("block device"));
        }
        if kind.is_fifo() {
            return Err(refuse("named pipe"));
        }
        if kind.is_socket() {
            return Err(refuse("socket"));
        }
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{prefix}: invalid output path: stat {}: no such file or directory",
            dir.display()
        )));
    }
    Ok(())
}

/// A file written under a temporary name and renamed into place only on success.
pub struct PendingFile {
    temp: PathBuf,
    target: PathBuf,
    file: Option<File>,
    /// Operation names in errors: creating, writing.
    operations: (&'static str, &'static str),
}

/// Operation names of `save -o`.
const SAVE_OPERATIONS: (&str, &str) = (
    "failed to save image: creating",
    "failed to save image: writing",
);

impl PendingFile {
    fn create(target: &Path) -> Result<PendingFile> {
        PendingFile::create_for(target, SAVE_OPERATIONS)
    }

    /// A pending file whose errors name `operations` (creating, writing).
    pub fn create_for(
        target: &Path,
        operations: (&'static str, &'static str),
    ) -> Result<PendingFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|source| Error::File {
                operation: operations.0,
                path: temp.clone(),
                source,
            })?;
        Ok(PendingFile {
            temp,
            target: target.to_path_buf(),
            file: Some(file),
            operations,
        })
    }

    /// Appends data.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        match self.file.as_mut() {
            Some(file) => file.write_all(data).map_err(|source| Error::File {
                operation: self.operations.1,
                path: self.temp.clone(),
                source,
            }),
            None => Ok(()),
        }
    }

    /// Syncs the data and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        let result = match self.file.as_ref() {
            Some(file) => file
                .sync_all()
                .and_then(|()| std::fs::rename(&self.temp, &self.target)),
            None => Ok(()),
        };
        match result {
            Ok(()) => {
                // Committed: nothing left for Drop to remove.
                self.file = None;
                Ok(())
            }
            Err(source) => Err(Error::File {
                operation: self.operations.1,
                path: self.target.clone(),
                source,
            }),
        }
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        // Not committed: remove the partial file.
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// `save`.
pub async fn save(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let output = p.string("output");
    let mut pending = None;
    if output.is_empty() {
        if term::stdout_is_terminal() {
            return Err(Error::InvalidArgument(
                "cowardly refusing to save to a terminal. Use the -o flag or redirect".to_string(),
            ));
        }
    } else {
        check_output_path(Path::new(&output))?;
    }
    let mut query = Query::new();
    for name in &p.args {
        query = query.add("names", name.as_str());
    }
    let platform = p.string("platform");
    if !platform.is_empty() {
        require_api(cli, "1.48", "--platform").await?;
        query = query.add("platform", platform_json(&platform)?);
    }
    let response = cli
        .client()
        .request(Method::GET, "/images/get", &query, &[], empty())
        .await?;
    if !output.is_empty() {
        pending = Some(PendingFile::create(Path::new(&output))?);
    }
    let mut stdout = io::stdout().lock();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|source| Error::Transport {
            operation: "reading image archive",
            source,
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        match pending.as_mut() {
            Some(file) => file.write(&data)?,
            None => stdout.write_all(&data).map_err(|source| Error::Io {
                operation: "writing image archive",
                source,
            })?,
        }
    }
    match pending {
        Some(file) => file.commit(),
        None => stdout.flush().map_err(|source| Error::Io {
            operation: "writing image archive",
            source,
        }),
    }
}

fn open_input(path: &str) -> Result<Body> {
    let file = File::open(path).map_err(|source| Error::File {
        operation: "open",
        path: PathBuf::from(path),
        source,
    })?;
    Ok(from_reader(Box::new(file)))
}

/// `load`.
pub async fn load(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let input = p.string("input");
    let body = if input.is_empty() {
        if term::stdin_is_terminal() {
            return Err(Error::InvalidArgument(
                "requested load from stdin, but stdin is empty".to_string(),
            ));
        }
        from_reader(Box::new(io::stdin()))
    } else {
        open_input(&input)?
    };
    let quiet = p.bool("quiet") || !term::stdout_is_terminal();
    let mut query = Query::new().add("quiet", if quiet { "1" } else { "0" });
    let platform = p.string("platform");
    if !platform.is_empty() {
        require_api(cli, "1.48", "--platform").await?;
        query = query.add("platform", platform_json(&platform)?);
    }
    let headers = [("Content-Type", "application/x-tar".to_string())];
    let response = cli
        .client()
        .request(Method::POST, "/images/load", &query, &headers, body)
        .await?;
    let is_json = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        == Some("application/json");
    if is_json {
        return show_stream(response, false, &mut |_| {}).await;
    }
    let bytes = crate::client::read_body(response).await?;
    print_out(&String::from_utf8_lossy(&bytes))
}

/// `import`.
pub async fn import(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let source = &p.args[0];
    let repository = p.args.get(1).cloned().unwrap_or_default();
    if !repository.is_empty() {
        Reference::parse_normalized(&repository)?;
    }
    let (from_src, body) = if source == "-" {
        ("-".to_string(), from_reader(Box::new(io::stdin())))
    } else if source.starts_with("https://") || source.starts_with("http://") {
        (source.clone(), empty())
    } else {
        ("-".to_string(), open_input(source)?)
    };
    let mut query = Query::new()
        .add("fromSrc", from_src)
        .add_nonempty("repo", &repository)
        .add_nonempty("message", &p.string("message"))
        .add_nonempty("platform", &p.string("platform").to_lowercase());
    for change in p.list("change") {
        query = query.add("changes", change);
    }
    let response = cli
        .client()
        .request(Method::POST, "/images/create", &query, &[], body)
        .await?;
    show_stream(response, false, &mut |_| {}).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_paths_are_checked() {
        assert!(check_output_path(Path::new("/dev/null"))
            .unwrap_err()
            .to_string()
            .contains("cannot write to a character device file"));
        let dir = tempfile::tempdir().unwrap();
        assert!(check_output_path(dir.path()).is_err());
        assert!(check_output_path(&dir.path().join("new.tar")).is_ok());
        assert!(check_output_path(&dir.path().join("missing/new.tar")).is_err());
    }

    #[test]
    fn pending_files_commit_or_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.tar");
        {
            let mut f = PendingFile::create(&target).unwrap();
            f.write(b"partial").unwrap();
        }
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
        std::fs::write(&target, b"old").unwrap();
        let mut f = PendingFile::create(&target).unwrap();
        f.write(b"new").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn all_tags_rules() {
        assert!(transfer_reference("busybox:1", true, true).is_err());
        assert_eq!(
            transfer_reference("busybox", false, true)
                .unwrap()
                .to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            transfer_reference("busybox", true, true)
                .unwrap()
                .to_string(),
            "docker.io/library/busybox"
        );
    }
}
