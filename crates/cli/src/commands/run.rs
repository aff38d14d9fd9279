//! Commands that create, start and attach to containers: `run`, `create`, `start`,
//! `attach` and `exec`, with docker's order of requests (create, attach, wait, start)
//! and exit statuses (125 for the CLI and daemon, 126/127 when the command cannot run,
//! else the container's).

use std::io::Write;

use http::Method;
use serde_json::{json, Value};

use super::images::print_out;
use super::runopts::{build_create_request, CreateRequest};
use super::stream::{
    forward_signals, monitor_tty_size, pump, resize, resolve_detach_keys, Attached, Background,
    ResizeTarget, StreamEnd,
};
use crate::cli::{show_stream_on, Cli};
use crate::client::{empty, escape_path, read_body, Client, Query};
use crate::error::{Error, Result};
use crate::flags::{Parsed, BIN};
use crate::format::json::Json;
use crate::reference::{validate_any, Reference};
use crate::term;

/// docker's `withHelp`: "berth: MESSAGE" and a pointer to the command's help.
fn with_help(message: &str, command: &str) -> String {
    format!("{BIN}: {message}\n\nRun '{BIN} {command} --help' for more information")
}

/// docker's `toStatusError`: 127 when the command was not found, 126 when it could not
/// be run, 125 otherwise.
fn to_status_error(error: Error) -> Error {
    if let Error::Status { .. } = error {
        return error;
    }
    let message = error.to_string();
    let code = if message.contains("executable file not found")
        || message.contains("no such file or directory")
        || message.contains("system cannot find the file specified")
    {
        127
    } else if message.contains("permission denied") || message.contains("is a directory") {
        126
    } else {
        125
    };
    Error::Status {
        code,
        message: with_help(&message, "run"),
    }
}

/// `In().CheckTty`: a TTY with stdin attached needs a terminal on stdin.
fn check_tty(attach_stdin: bool, tty: bool) -> Result<()> {
    if tty && attach_stdin && !term::stdin_is_terminal() {
        return Err(Error::InvalidArgument(
            "the input device is not a TTY".to_string(),
        ));
    }
    Ok(())
}

/// The detach keys: the flag, else `detachKeys` from the configuration.
fn detach_keys(cli: &mut Cli, flag: &str) -> String {
    if !flag.is_empty() {
        return flag.to_string();
    }
    cli.configs()
        .ok()
        .and_then(|c| c.berth.setting("detachKeys").map(str::to_string))
        .unwrap_or_default()
}

/// A `--cidfile` being written: removed again unless the ID made it in.
struct CidFile {
    path: String,
    written: bool,
}

impl CidFile {
    fn create(path: &str) -> Result<Option<CidFile>> {
        if path.is_empty() {
            return Ok(None);
        }
        if std::path::Path::new(path).exists() {
            return Err(Error::InvalidArgument(format!(
                "container ID file found, make sure the other container isn't running or delete {path}"
            )));
        }
        std::fs::File::create(path).map_err(|e| {
            Error::InvalidArgument(format!(
                "failed to create the container ID file: open {path}: {}",
                crate::error::go_io_error(&e)
            ))
        })?;
        Ok(Some(CidFile {
            path: path.to_string(),
            written: false,
        }))
    }

    fn write(&mut self, id: &str) -> Result<()> {
        std::fs::write(&self.path, id).map_err(|e| {
            Error::InvalidArgument(format!(
                "failed to write the container ID to the file: {}",
                crate::error::go_io_error(&e)
            ))
        })?;
        self.written = true;
        Ok(())
    }
}

impl Drop for CidFile {
    fn drop(&mut self) {
        if !self.written {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `POST /images/create` for `run`/`create`, the progress on standard error.
async fn pull_image(
    cli: &mut Cli,
    reference: &Reference,
    platform: &str,
    quiet: bool,
) -> Result<()> {
    let mut query = Query::new()
        .add("fromImage", reference.name())
        .add("tag", reference.tag_or_digest());
    if !platform.is_empty() {
        query = query.add("platform", platform.to_lowercase());
    }
    let auth = cli.registry_auth(&reference.auth_key());
    let headers = [("X-Registry-Auth", auth.encode_header())];
    let response = cli
        .client()
        .request(Method::POST, "/images/create", &query, &headers, empty())
        .await?;
    show_stream_on(response, quiet, &mut |_| {}, true).await
}

/// docker's `createContainer`: pulls when asked to or when the image is missing, creates,
/// prints the daemon's warnings and writes the `--cidfile`.
async fn create_container(cli: &mut Cli, req: &CreateRequest, p: &Parsed) -> Result<String> {
    let mut cidfile = CidFile::create(&req.cidfile)?;
    validate_any(&req.image)?;
    let named = Reference::parse_normalized(&req.image)
        .ok()
        .map(Reference::with_default_tag);
    let pull = p.string("pull");
    let quiet = p.bool("quiet");
    let platform = p.string("platform");
    let mut query = Query::new();
    let api = cli.client().api_version().await?;
    if !platform.is_empty() && !crate::client::version_less(&api, "1.41") {
        query = query.add("platform", platform_path(&platform)?);
    }
    let name = p.string("name");
    if !name.is_empty() {
        query = query.add("name", name);
    }
    if pull == "always" {
        if let Some(reference) = &named {
            pull_image(cli, reference, &platform, quiet).await?;
        }
    }
    let response = match cli
        .client()
        .post_json("/containers/create", &query, &req.body)
        .await
    {
        Ok(response) => response,
        Err(e) if e.is_not_found() && named.is_some() && (pull.is_empty() || pull == "missing") => {
            let Some(reference) = &named else {
                return Err(e);
            };
            if !quiet {
                eprintln!("Unable to find image '{}' locally", reference.familiar());
            }
            pull_image(cli, reference, &platform, quiet).await?;
            cli.client()
                .post_json("/containers/create", &query, &req.body)
                .await?
        }
        Err(e) => return Err(e),
    };
    let body = read_body(response).await?;
    let created = Json::parse(&body).map_err(|source| Error::Decode {
        operation: "container create",
        source,
    })?;
    let id = created
        .get("Id")
        .map(|j| j.str().to_string())
        .unwrap_or_default();
    let mut warnings: Vec<String> = created
        .get("Warnings")
        .map(|w| w.items().iter().map(|x| x.str().to_string()).collect())
        .unwrap_or_default();
    if let Some(dns) = req.dns.iter().find_map(|d| {
        d.parse::<std::net::IpAddr>()
            .ok()
            .filter(|ip| ip.is_loopback())
    }) {
        warnings.push(format!("Localhost DNS ({dns}) may fail in containers."));
    }
    for warning in warnings {
        eprintln!("WARNING: {warning}");
    }
    if let Some(cidfile) = cidfile.as_mut() {
        cidfile.write(&id)?;
    }
    Ok(id)
}

/// `os/arch/variant` for the `platform` query parameter.
fn platform_path(platform: &str) -> Result<String> {
    let parts: Vec<&str> = platform.split('/').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(Error::InvalidArgument(format!(
            "error parsing specified platform: \"{platform}\": unknown operating system or architecture: invalid argument"
        )));
    }
    Ok(parts
        .iter()
        .map(|p| p.to_lowercase())
        .collect::<Vec<_>>()
        .join("/"))
}

fn validate_pull(pull: &str, command: &str) -> Result<()> {
    match pull {
        "" | "always" | "missing" | "never" => Ok(()),
        other => Err(Error::Status {
            code: 125,
            message: with_help(
                &format!(
                    "invalid pull option: '{other}': must be one of \"always\", \"missing\" or \"never\""
                ),
                command,
            ),
        }),
    }
}

/// Builds the create request, with docker's 125 status for bad options.
async fn create_request(cli: &mut Cli, p: &Parsed, command: &str) -> Result<CreateRequest> {
    validate_pull(&p.string("pull"), command)?;
    let api = cli.client().api_version().await?;
    build_create_request(p, &p.args[0], &p.args[1..], &api, term::stdout_size()).map_err(
        |message| Error::Status {
            code: 125,
            message: with_help(&message, command),
        },
    )
}

/// `create`.
pub async fn create(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let req = create_request(cli, p, "create").await?;
    let id = create_container(cli, &req, p).await?;
    print_out(&format!("{id}\n"))
}

/// The attach query of a container.
fn attach_query(stdin: bool, stdout: bool, stderr: bool, detach_keys: &str) -> Query {
    let mut query = Query::new().add("stream", "1");
    if stdin {
        query = query.add("stdin", "1");
    }
    if stdout {
        query = query.add("stdout", "1");
    }
    if stderr {
        query = query.add("stderr", "1");
    }
    query.add_nonempty("detachKeys", detach_keys)
}

/// docker's `waitExitOrRemoved`: the wait request is on its way (its headers answered)
/// before this returns, so an exit right after start is not missed.
async fn wait_exit_or_removed(
    cli: &mut Cli,
    id: &str,
    removed: bool,
) -> Result<tokio::task::JoinHandle<i32>> {
    let mut client = cli.client().fork().await?;
    let condition = if removed { "removed" } else { "next-exit" };
    let query = Query::new().add("condition", condition);
    let response = client
        .request(
            Method::POST,
            &format!("/containers/{id}/wait"),
            &query,
            &[],
            empty(),
        )
        .await;
    Ok(tokio::spawn(async move {
        let result = match response {
            Ok(response) => read_body(response).await,
            Err(e) => Err(e),
        };
        match result.map(|body| Json::parse(&body)) {
            Ok(Ok(doc)) => {
                if let Some(message) = doc
                    .path(&["Error", "Message"])
                    .map(|m| m.str().to_string())
                    .filter(|m| !m.is_empty())
                {
                    eprintln!("Error waiting for container: {message}");
                    return 125;
                }
                doc.get("StatusCode").map_or(0, |c| c.int() as i32)
            }
            Ok(Err(e)) => {
                eprintln!("error waiting for container: {e}");
                125
            }
            Err(e) => {
                eprintln!("error waiting for container: {e}");
                125
            }
        }
    }))
}

async fn start_container(client: &mut Client, id: &str) -> Result<()> {
    let response = client
        .request(
            Method::POST,
            &format!("/containers/{}/start", escape_path(id)),
            &Query::new(),
            &[],
            empty(),
        )
        .await?;
    read_body(response).await?;
    Ok(())
}

fn exit_with(status: i32) -> Result<()> {
    if status == 0 {
        Ok(())
    } else {
        Err(Error::Status {
            code: status,
            message: String::new(),
        })
    }
}

/// Waits for the stream task; a panicked or aborted task counts as done.
async fn stream_result(task: tokio::task::JoinHandle<Result<StreamEnd>>) -> Result<StreamEnd> {
    task.await.unwrap_or(Ok(StreamEnd::Done))
}

/// `run`.
pub async fn run(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let mut req = create_request(cli, p, "run").await?;
    let detach = p.bool("detach");
    if !detach {
        check_tty(req.attach_stdin, req.tty)?;
    } else {
        if !p.list("attach").is_empty() {
            return Err(Error::InvalidArgument(
                "conflicting options: cannot specify both --attach and --detach".to_string(),
            ));
        }
        req.detach();
    }
    let id = create_container(cli, &req, p)
        .await
        .map_err(to_status_error)?;
    let _signals = if p.bool_or("sig-proxy", true) {
        Some(Background::spawn(forward_signals(
            cli.client().fork().await?,
            id.clone(),
        )))
    } else {
        None
    };
    let attach = req.attach_stdin || req.attach_stdout || req.attach_stderr;
    let mut stream = None;
    if attach {
        let keys = detach_keys(cli, &p.string("detach-keys"));
        let query = attach_query(
            req.attach_stdin,
            req.attach_stdout,
            req.attach_stderr,
            &keys,
        );
        let conn = cli
            .client()
            .hijack(&format!("/containers/{id}/attach"), &query, None)
            .await?;
        let attached = Attached {
            stdin: req.attach_stdin,
            stdout: req.attach_stdout,
            stderr: req.attach_stderr,
            tty: req.tty,
            detach_keys: resolve_detach_keys(&keys),
        };
        stream = Some(tokio::spawn(async move { pump(conn, &attached).await }));
    }
    let mut status = wait_exit_or_removed(cli, &id, req.auto_remove).await?;
    if let Err(e) = start_container(cli.client(), &id).await {
        if let Some(task) = stream.take() {
            task.abort();
            let _ = task.await;
        }
        if req.auto_remove {
            let _ = status.await;
        }
        return Err(to_status_error(e));
    }
    let Some(mut stream) = stream else {
        return print_out(&format!("{id}\n"));
    };
    let _resize = if req.tty && term::stdout_is_terminal() {
        Some(Background::spawn(monitor_tty_size(
            cli.client().fork().await?,
            ResizeTarget::Container(id.clone()),
        )))
    } else {
        None
    };
    tokio::select! {
        result = &mut stream => {
            match result.unwrap_or(Ok(StreamEnd::Done))? {
                StreamEnd::Detached => Ok(()),
                StreamEnd::Done => exit_with(status.await.unwrap_or(125)),
            }
        }
        code = &mut status => {
            let code = code.unwrap_or(125);
            if !req.attach_stdout && !req.attach_stderr {
                stream.abort();
            }
            // The output may still be draining after the exit.
            let _ = stream_result(stream).await;
            exit_with(code)
        }
    }
}

/// A container's state and settings that attaching depends on.
struct AttachTarget {
    id: String,
    tty: bool,
    open_stdin: bool,
    auto_remove: bool,
}

async fn inspect_target(cli: &mut Cli, name: &str) -> Result<(AttachTarget, Json)> {
    let raw = cli
        .client()
        .get_bytes(
            &format!("/containers/{}/json", escape_path(name)),
            &Query::new(),
        )
        .await?;
    let doc = Json::parse(&raw).map_err(|source| Error::Decode {
        operation: "container inspect",
        source,
    })?;
    let flag = |path: &[&str]| doc.path(path).is_some_and(Json::bool);
    let target = AttachTarget {
        id: doc
            .get("Id")
            .map(|j| j.str().to_string())
            .unwrap_or_default(),
        tty: flag(&["Config", "Tty"]),
        open_stdin: flag(&["Config", "OpenStdin"]),
        auto_remove: flag(&["HostConfig", "AutoRemove"]),
    };
    Ok((target, doc))
}

/// `start`.
pub async fn start(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let attach = p.bool("attach");
    let interactive = p.bool("interactive");
    if !attach && !interactive {
        let mut failed = Vec::new();
        for name in &p.args {
            match start_container(cli.client(), name).await {
                Ok(()) => print_out(&format!("{name}\n"))?,
                Err(e) => {
                    eprintln!("{e}");
                    failed.push(name.clone());
                }
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        return Err(Error::InvalidArgument(format!(
            "Error: failed to start containers: {}",
            failed.join(", ")
        )));
    }
    if p.args.len() > 1 {
        return Err(Error::InvalidArgument(
            "you cannot start and attach multiple containers at once".to_string(),
        ));
    }
    let (target, _) = inspect_target(cli, &p.args[0]).await?;
    let _signals = if !target.tty {
        Some(Background::spawn(forward_signals(
            cli.client().fork().await?,
            target.id.clone(),
        )))
    } else {
        None
    };
    let keys = detach_keys(cli, &p.string("detach-keys"));
    let stdin = interactive && target.open_stdin;
    let query = attach_query(stdin, true, true, &keys);
    let conn = cli
        .client()
        .hijack(&format!("/containers/{}/attach", target.id), &query, None)
        .await?;
    let attached = Attached {
        stdin,
        stdout: true,
        stderr: true,
        tty: target.tty,
        detach_keys: resolve_detach_keys(&keys),
    };
    let stream = tokio::spawn(async move { pump(conn, &attached).await });
    let status = wait_exit_or_removed(cli, &target.id, target.auto_remove).await?;
    if let Err(e) = start_container(cli.client(), &target.id).await {
        stream.abort();
        let _ = stream.await;
        if target.auto_remove {
            let _ = status.await;
        }
        return Err(e);
    }
    let _resize = if target.tty && term::stdout_is_terminal() {
        Some(Background::spawn(monitor_tty_size(
            cli.client().fork().await?,
            ResizeTarget::Container(target.id.clone()),
        )))
    } else {
        None
    };
    if stream_result(stream).await? == StreamEnd::Detached {
        return Ok(());
    }
    exit_with(status.await.unwrap_or(125))
}

/// docker's `inspectContainerAndCheckState`.
fn check_attachable(doc: &Json) -> Result<()> {
    let state = |key: &str| doc.path(&["State", key]).is_some_and(Json::bool);
    let message = if !state("Running") {
        "You cannot attach to a stopped container, start it first"
    } else if state("Paused") {
        "You cannot attach to a paused container, unpause it first"
    } else if state("Restarting") {
        "You cannot attach to a restarting container, wait until it is running"
    } else {
        return Ok(());
    };
    Err(Error::InvalidArgument(message.to_string()))
}

/// `attach`.
pub async fn attach(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let name = &p.args[0];
    // Waiting starts first so that an exit during the attach is seen.
    let mut waiter = cli.client().fork().await?;
    let wait_path = format!("/containers/{}/wait", escape_path(name));
    let wait = tokio::spawn(async move {
        let response = waiter
            .request(Method::POST, &wait_path, &Query::new(), &[], empty())
            .await?;
        read_body(response).await
    });
    let (target, doc) = inspect_target(cli, name).await?;
    check_attachable(&doc)?;
    let no_stdin = p.bool("no-stdin");
    check_tty(!no_stdin, target.tty)?;
    let keys = detach_keys(cli, &p.string("detach-keys"));
    let stdin = !no_stdin && target.open_stdin;
    let _signals = if p.bool_or("sig-proxy", true) && !target.tty {
        Some(Background::spawn(forward_signals(
            cli.client().fork().await?,
            target.id.clone(),
        )))
    } else {
        None
    };
    let query = attach_query(stdin, true, true, &keys);
    let conn = cli
        .client()
        .hijack(
            &format!("/containers/{}/attach", escape_path(name)),
            &query,
            None,
        )
        .await?;
    let (_, doc) = inspect_target(cli, name).await?;
    check_attachable(&doc)?;
    let _resize = if target.tty && term::stdout_is_terminal() {
        let mut client = cli.client().fork().await?;
        let (rows, cols) = term::stdout_size();
        let resize_target = ResizeTarget::Container(target.id.clone());
        let _ = resize(&mut client, &resize_target, rows + 1, cols + 1).await;
        Some(Background::spawn(monitor_tty_size(client, resize_target)))
    } else {
        None
    };
    let attached = Attached {
        stdin,
        stdout: true,
        stderr: true,
        tty: target.tty,
        detach_keys: resolve_detach_keys(&keys),
    };
    if pump(conn, &attached).await? == StreamEnd::Detached {
        wait.abort();
        return Ok(());
    }
    let body = match wait.await {
        Ok(result) => result?,
        Err(_) => return Ok(()),
    };
    let doc = Json::parse(&body).map_err(|source| Error::Decode {
        operation: "container wait",
        source,
    })?;
    if let Some(message) = doc
        .path(&["Error", "Message"])
        .map(|m| m.str().to_string())
        .filter(|m| !m.is_empty())
    {
        return Err(Error::InvalidArgument(message));
    }
    exit_with(doc.get("StatusCode").map_or(0, |c| c.int() as i32))
}

/// `exec`.
pub async fn exec(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let name = &p.args[0];
    let mut env: Vec<String> = Vec::new();
    for file in p.list("env-file") {
        env.extend(super::runopts::read_kv_file(&file, true).map_err(Error::InvalidArgument)?);
    }
    env.extend(p.list("env"));
    let detach = p.bool("detach");
    let tty = p.bool("tty");
    let attach_stdin = !detach && p.bool("interactive");
    let keys = detach_keys(cli, &p.string("detach-keys"));
    cli.client()
        .get_bytes(
            &format!("/containers/{}/json", escape_path(name)),
            &Query::new(),
        )
        .await?;
    if !detach {
        check_tty(attach_stdin, tty)?;
    }
    let console = if tty {
        let (rows, cols) = term::stdout_size();
        json!([rows, cols])
    } else {
        Value::Null
    };
    let mut body = json!({
        "User": p.string("user"),
        "Privileged": p.bool("privileged"),
        "Tty": tty,
        "AttachStdin": attach_stdin,
        "AttachStderr": !detach,
        "AttachStdout": !detach,
        "Detach": detach,
        "DetachKeys": keys,
        "Env": if env.is_empty() { Value::Null } else { json!(env) },
        "WorkingDir": p.string("workdir"),
        "Cmd": &p.args[1..],
    });
    if tty {
        body["ConsoleSize"] = console.clone();
    }
    let response = cli
        .client()
        .post_json(
            &format!("/containers/{}/exec", escape_path(name)),
            &Query::new(),
            &body,
        )
        .await?;
    let created = Json::parse(&read_body(response).await?).map_err(|source| Error::Decode {
        operation: "exec create",
        source,
    })?;
    let exec_id = created
        .get("Id")
        .map(|j| j.str().to_string())
        .unwrap_or_default();
    if exec_id.is_empty() {
        return Err(Error::InvalidArgument("exec ID empty".to_string()));
    }
    let mut start = json!({"Detach": detach, "Tty": tty});
    if tty {
        start["ConsoleSize"] = console;
    }
    let start_path = format!("/exec/{exec_id}/start");
    if detach {
        let response = cli
            .client()
            .post_json(&start_path, &Query::new(), &start)
            .await?;
        read_body(response).await?;
        return Ok(());
    }
    let conn = cli
        .client()
        .hijack(&start_path, &Query::new(), Some(&start))
        .await?;
    let attached = Attached {
        stdin: attach_stdin,
        stdout: true,
        stderr: true,
        tty,
        detach_keys: resolve_detach_keys(&keys),
    };
    let _resize = if tty && term::stdin_is_terminal() {
        Some(Background::spawn(monitor_tty_size(
            cli.client().fork().await?,
            ResizeTarget::Exec(exec_id.clone()),
        )))
    } else {
        None
    };
    pump(conn, &attached).await?;
    let _ = std::io::stdout().flush();
    let inspect = cli
        .client()
        .get_bytes(&format!("/exec/{exec_id}/json"), &Query::new())
        .await?;
    let doc = Json::parse(&inspect).map_err(|source| Error::Decode {
        operation: "exec inspect",
        source,
    })?;
    exit_with(doc.get("ExitCode").map_or(0, |c| c.int() as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_errors_follow_docker() {
        let e = to_status_error(Error::Daemon {
            status: 400,
            message: "OCI runtime create failed: exec: \"nope\": executable file not found in $PATH: unknown".into(),
        });
        assert_eq!(e.exit_code(), 127);
        assert!(e
            .to_string()
            .starts_with("berth: Error response from daemon: OCI runtime"));
        assert!(e
            .to_string()
            .ends_with("\n\nRun 'berth run --help' for more information"));
        let e = to_status_error(Error::Daemon {
            status: 400,
            message: "exec: \"/etc\": permission denied".into(),
        });
        assert_eq!(e.exit_code(), 126);
        let e = to_status_error(Error::Daemon {
            status: 409,
            message: "Conflict.".into(),
        });
        assert_eq!(e.exit_code(), 125);
    }

    #[test]
    fn attach_queries_like_docker() {
        let q = attach_query(true, true, false, "ctrl-a");
        let c = Client::new("unix:///x", Some("1.45".into())).unwrap();
        drop(c);
        assert_eq!(
            format!("{q:?}"),
            format!(
                "{:?}",
                Query::new()
                    .add("stream", "1")
                    .add("stdin", "1")
                    .add("stdout", "1")
                    .add("detachKeys", "ctrl-a")
            )
        );
    }
}
