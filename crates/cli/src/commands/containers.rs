//! Container commands that do not attach: `ps`, `stop`, `kill`, `restart`, `rm`,
//! `pause`, `unpause`, `wait`, `rename`, `top`, `port`, `diff`, `export`, `commit`,
//! `update`, `logs`, `container prune` and `inspect`.

use std::io::{self, Write};
use std::path::Path;

use gtmpl::Value;
use http::Method;
use http_body_util::BodyExt;
use serde_json::json;

use super::decode;
use super::images::{finish_inspect, print_out};
use super::runopts::{go_quote, parse_restart_policy};
use super::stream::Demux;
use super::transfer::{check_output_path_for, PendingFile};
use super::{filters_json, prune_filters};
use crate::cli::Cli;
use crate::client::{empty, escape_path, read_body, Query};
use crate::error::{Error, Result};
use crate::flags::Parsed;
use crate::format::json::{write_go_string, Json};
use crate::format::template::{Data, Template};
use crate::format::typed::{as_go_struct, Field, CONTAINER_INSPECT, IMAGE_INSPECT, VOLUME};
use crate::format::units::{human_since, human_size_with_precision, LocalTime};
use crate::format::{ellipsis, render_rows, truncate_id, TABLE};
use crate::reference::Reference;
use crate::term;

const DEFAULT_PS_TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// Column titles of container rows.
fn container_header() -> Data {
    Data::header(&[
        ("ID", "CONTAINER ID"),
        ("Names", "NAMES"),
        ("Image", "IMAGE"),
        ("Command", "COMMAND"),
        ("CreatedAt", "CREATED AT"),
        ("RunningFor", "CREATED"),
        ("Ports", "PORTS"),
        ("State", "STATE"),
        ("Status", "STATUS"),
        ("Size", "SIZE"),
        ("Labels", "LABELS"),
        ("Mounts", "MOUNTS"),
        ("LocalVolumes", "LOCAL VOLUMES"),
        ("Networks", "NETWORKS"),
        ("Platform", "PLATFORM"),
    ])
}

/// docker's `NewContainerFormat`.
fn container_format(source: &str, quiet: bool, size: bool) -> String {
    match source {
        TABLE | "" if quiet => "{{.ID}}".to_string(),
        TABLE | "" => {
            let mut format = DEFAULT_PS_TABLE.to_string();
            if size {
                format.push_str("\t{{.Size}}");
            }
            format
        }
        "raw" if quiet => "container_id: {{.ID}}".to_string(),
        "raw" => {
            let mut format = "container_id: {{.ID}}\nimage: {{.Image}}\ncommand: {{.Command}}\ncreated_at: {{.CreatedAt}}\nstate: {{- pad .State 1 0}}\nstatus: {{- pad .Status 1 0}}\nnames: {{.Names}}\nlabels: {{- pad .Labels 1 0}}\nports: {{- pad .Ports 1 0}}\n".to_string();
            if size {
                format.push_str("size: {{.Size}}\\n");
            }
            format
        }
        _ if quiet => "{{.ID}}".to_string(),
        other => other.to_string(),
    }
}

/// A published or exposed port of a container summary.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Port {
    ip: String,
    private: u16,
    public: u16,
    kind: String,
}

/// Go's `net.JoinHostPort`.
fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// docker's `DisplayablePorts`: consecutive ports grouped into ranges, host mappings last.
fn displayable_ports(mut ports: Vec<Port>) -> String {
    ports.sort_by(|a, b| {
        (a.private, &a.ip, a.public, &a.kind).cmp(&(b.private, &b.ip, b.public, &b.kind))
    });
    let mut groups: Vec<(String, u16, u16)> = Vec::new();
    let mut result = Vec::new();
    let mut host_mappings = Vec::new();
    let form = |key: &str, first: u16, last: u16| {
        let (ip, kind) = match key.split_once('/') {
            Some((ip, kind)) => (ip, kind),
            None => ("", key),
        };
        let mut group = first.to_string();
        if first != last {
            group = format!("{group}-{last}");
        }
        if !ip.is_empty() {
            group = format!("{}->{group}", join_host_port(ip, &group));
        }
        format!("{group}/{kind}")
    };
    for port in &ports {
        let mut key = port.kind.clone();
        if !port.ip.is_empty() {
            if port.public != port.private {
                host_mappings.push(format!(
                    "{}->{}/{}",
                    join_host_port(&port.ip, &port.public.to_string()),
                    port.private,
                    port.kind
                ));
                continue;
            }
            key = format!("{}/{}", port.ip, port.kind);
        }
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            None => groups.push((key, port.private, port.private)),
            Some(group) if port.private == group.2.wrapping_add(1) => group.2 = port.private,
            Some(group) => {
                result.push(form(&group.0, group.1, group.2));
                group.1 = port.private;
                group.2 = port.private;
            }
        }
    }
    for (key, first, last) in &groups {
        result.push(form(key, *first, *last));
    }
    result.extend(host_mappings);
    result.join(", ")
}

/// docker's container `Image` column: the reference without digest, or a short ID.
fn display_image(image: &str, image_id: &str, trunc: bool) -> String {
    if image.is_empty() {
        return "<no image>".to_string();
    }
    if !trunc {
        return image.to_string();
    }
    let short = truncate_id(image_id);
    if short == truncate_id(image) {
        return short;
    }
    match Reference::parse_normalized(image) {
        Ok(r) => match r.tag() {
            Some(tag) => format!("{}:{tag}", r.familiar_name()),
            None => r.familiar_name(),
        },
        Err(_) => image.to_string(),
    }
}

/// One row of `ps` (docker's `ContainerContext`).
fn container_row(c: &Json, trunc: bool) -> Data {
    let id = c.get("Id").map(|j| j.str().to_string()).unwrap_or_default();
    let mut names: Vec<String> = c
        .get("Names")
        .map(|n| {
            n.items()
                .iter()
                .map(|s| s.str().chars().skip(1).collect())
                .collect()
        })
        .unwrap_or_default();
    if trunc {
        if let Some(name) = names.iter().find(|n| !n.contains('/')) {
            names = vec![name.clone()];
        }
    }
    let text = |key: &str| c.get(key).map(|j| j.str().to_string()).unwrap_or_default();
    let created = c.get("Created").map_or(0, Json::int);
    let mut command = text("Command");
    if trunc {
        command = ellipsis(&command, 20);
    }
    let ports: Vec<Port> = c
        .get("Ports")
        .map(|list| {
            list.items()
                .iter()
                .map(|p| Port {
                    ip: p.get("IP").map(|j| j.str().to_string()).unwrap_or_default(),
                    private: p.get("PrivatePort").map_or(0, |j| j.int() as u16),
                    public: p.get("PublicPort").map_or(0, |j| j.int() as u16),
                    kind: p
                        .get("Type")
                        .map(|j| j.str().to_string())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let size_rw = c.get("SizeRw").map_or(0, Json::int);
    let size_root = c.get("SizeRootFs").map_or(0, Json::int);
    let mut size = human_size_with_precision(size_rw as f64, 3);
    if size_root > 0 {
        size = format!(
            "{size} (virtual {})",
            human_size_with_precision(size_root as f64, 3)
        );
    }
    let mut labels: Vec<String> = c
        .get("Labels")
        .map(|l| {
            l.fields()
                .iter()
                .map(|(k, v)| format!("{k}={}", v.str()))
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    let mounts = c.get("Mounts").map(Json::items).unwrap_or(&[]);
    let mount_names: Vec<String> = mounts
        .iter()
        .map(|m| {
            let name = m.get("Name").map(Json::str).unwrap_or("");
            let name = if name.is_empty() {
                m.get("Source").map(Json::str).unwrap_or("")
            } else {
                name
            };
            if trunc {
                ellipsis(name, 15)
            } else {
                name.to_string()
            }
        })
        .collect();
    let local_volumes = mounts
        .iter()
        .filter(|m| m.get("Driver").map(Json::str) == Some("local"))
        .count();
    let mut networks: Vec<String> = c
        .path(&["NetworkSettings", "Networks"])
        .map(|n| n.fields().iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    networks.sort();
    let fields: Vec<(&str, String)> = vec![
        ("Command", go_quote(&command)),
        ("CreatedAt", LocalTime::from_unix(created, 0).go_string()),
        ("ID", if trunc { truncate_id(&id) } else { id.clone() }),
        (
            "Image",
            display_image(&text("Image"), &text("ImageID"), trunc),
        ),
        ("Labels", labels.join(",")),
        ("LocalVolumes", local_volumes.to_string()),
        ("Mounts", mount_names.join(",")),
        ("Names", names.join(",")),
        ("Networks", networks.join(",")),
        ("Ports", displayable_ports(ports)),
        ("RunningFor", human_since(created)),
        ("Size", size),
        ("State", text("State")),
        ("Status", text("Status")),
    ];
    let mut json_text = String::from("{");
    let mut sorted: Vec<(&str, Option<&String>)> =
        fields.iter().map(|(k, v)| (*k, Some(v))).collect();
    sorted.push(("Platform", None));
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (i, (key, value)) in sorted.iter().enumerate() {
        if i > 0 {
            json_text.push(',');
        }
        write_go_string(&mut json_text, key, true);
        json_text.push(':');
        match value {
            Some(v) => write_go_string(&mut json_text, v, true),
            None => json_text.push_str("null"),
        }
    }
    json_text.push('}');
    let mut values: Vec<(&str, Value)> = fields
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    values.push(("Platform", Value::Nil));
    Data::from_values(values, json_text)
}

/// `ps` / `container ls`.
pub async fn list(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let quiet = p.bool("quiet");
    let mut format = p.string("format");
    if format.is_empty() {
        format = cli
            .configs()?
            .berth
            .setting("psFormat")
            .unwrap_or("")
            .to_string();
    } else if quiet {
        eprintln!("WARNING: Ignoring custom format, because both --format and --quiet are set.");
    }
    let mut size = p.bool("size");
    if !format.is_empty() {
        let source = crate::format::template_source(&format);
        Template::parse_table(&source)
            .map_err(|e| Error::InvalidArgument(format!("failed to parse template: {e}")))?;
        if !quiet && !size && !p.changed("size") && source.contains(".Size") {
            size = true;
        }
    }
    let mut limit = if p.changed("last") { p.int("last") } else { -1 };
    if p.bool("latest") && limit == -1 {
        limit = 1;
    }
    let mut query = Query::new();
    if p.bool("all") {
        query = query.add("all", "1");
    }
    if limit > 0 {
        query = query.add("limit", limit.to_string());
    }
    if size {
        query = query.add("size", "1");
    }
    if let Some(f) = filters_json(&p.list("filter")) {
        query = query.add("filters", f);
    }
    let raw = cli.client().get_bytes("/containers/json", &query).await?;
    let containers = decode(&raw, "container list")?;
    let trunc = !p.bool("no-trunc");
    let rows: Vec<Data> = containers
        .items()
        .iter()
        .map(|c| container_row(c, trunc))
        .collect();
    let format = container_format(&format, quiet, size);
    print_out(&render_rows(&format, &container_header(), &rows)?)
}

/// Runs `action` for every named container, printing each name that succeeded; the
/// failures are reported together afterwards, as docker's `errors.Join` does.
async fn for_each_container(
    cli: &mut Cli,
    names: &[String],
    method: Method,
    path_of: impl Fn(&str) -> String,
    query: &Query,
    ignore_not_found: bool,
) -> Result<()> {
    let mut errors = Vec::new();
    for name in names {
        let result = async {
            let response = cli
                .client()
                .request(method.clone(), &path_of(name), query, &[], empty())
                .await?;
            read_body(response).await
        }
        .await;
        match result {
            Ok(_) => print_out(&format!("{name}\n"))?,
            Err(e) if ignore_not_found && e.is_not_found() => eprintln!("{e}"),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Multiple(errors)),
    }
}

fn container_path(name: &str, action: &str) -> String {
    format!("/containers/{}/{action}", escape_path(name))
}

/// `stop` and `restart`: `--timeout` (or the deprecated `--time`) and `--signal`.
async fn stop_query(cli: &mut Cli, p: &Parsed) -> Result<Query> {
    if p.changed("time") && p.changed("timeout") {
        return Err(Error::InvalidArgument(
            "conflicting options: cannot specify both --timeout and --time".to_string(),
        ));
    }
    if p.changed("time") {
        eprintln!("Flag --time has been deprecated, use --timeout instead");
    }
    let mut query = Query::new();
    if p.changed("timeout") {
        query = query.add("t", p.int("timeout").to_string());
    } else if p.changed("time") {
        query = query.add("t", p.int("time").to_string());
    }
    let signal = p.string("signal");
    if !signal.is_empty() {
        let version = cli.client().api_version().await?;
        if !crate::client::version_less(&version, "1.42") {
            query = query.add("signal", signal);
        }
    }
    Ok(query)
}

/// `stop`.
pub async fn stop(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let query = stop_query(cli, p).await?;
    for_each_container(
        cli,
        &p.args,
        Method::POST,
        |n| container_path(n, "stop"),
        &query,
        false,
    )
    .await
}

/// `restart`.
pub async fn restart(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let query = stop_query(cli, p).await?;
    for_each_container(
        cli,
        &p.args,
        Method::POST,
        |n| container_path(n, "restart"),
        &query,
        false,
    )
    .await
}

/// `kill`.
pub async fn kill(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let query = Query::new().add_nonempty("signal", &p.string("signal"));
    for_each_container(
        cli,
        &p.args,
        Method::POST,
        |n| container_path(n, "kill"),
        &query,
        false,
    )
    .await
}

/// `pause` and `unpause`.
pub async fn pause(cli: &mut Cli, p: &Parsed, action: &str) -> Result<()> {
    for_each_container(
        cli,
        &p.args,
        Method::POST,
        |n| container_path(n, action),
        &Query::new(),
        false,
    )
    .await
}

/// `rm`.
pub async fn remove(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let mut query = Query::new();
    if p.bool("volumes") {
        query = query.add("v", "1");
    }
    if p.bool("link") {
        query = query.add("link", "1");
    }
    let force = p.bool("force");
    if force {
        query = query.add("force", "1");
    }
    if p.args.iter().any(|n| n.trim_matches('/').is_empty()) {
        return Err(Error::InvalidArgument(
            "container name cannot be empty".to_string(),
        ));
    }
    for_each_container(
        cli,
        &p.args,
        Method::DELETE,
        |n| format!("/containers/{}", escape_path(n.trim_matches('/'))),
        &query,
        force,
    )
    .await
}

/// `wait`.
pub async fn wait(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let mut errors = Vec::new();
    for name in &p.args {
        let result = async {
            let response = cli
                .client()
                .request(
                    Method::POST,
                    &container_path(name, "wait"),
                    &Query::new(),
                    &[],
                    empty(),
                )
                .await?;
            decode(&read_body(response).await?, "container wait")
        }
        .await;
        match result {
            Ok(doc) => print_out(&format!("{}\n", doc.get("StatusCode").map_or(0, Json::int)))?,
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Multiple(errors)),
    }
}

/// `rename`.
pub async fn rename(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let (old, new) = (p.args[0].trim(), p.args[1].trim());
    if old.is_empty() || new.is_empty() {
        return Err(Error::InvalidArgument(
            "Error: Neither old nor new names may be empty".to_string(),
        ));
    }
    let query = Query::new().add("name", new);
    let result = async {
        let response = cli
            .client()
            .request(
                Method::POST,
                &container_path(old, "rename"),
                &query,
                &[],
                empty(),
            )
            .await?;
        read_body(response).await
    }
    .await;
    if let Err(e) = result {
        eprintln!("{e}");
        return Err(Error::InvalidArgument(format!(
            "Error: failed to rename container named {old}"
        )));
    }
    Ok(())
}

/// `top`.
pub async fn top(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let mut query = Query::new();
    if p.args.len() > 1 {
        query = query.add("ps_args", p.args[1..].join(" "));
    }
    let raw = cli
        .client()
        .get_bytes(&container_path(&p.args[0], "top"), &query)
        .await?;
    let doc = decode(&raw, "container top")?;
    let join = |row: &Json| {
        row.items()
            .iter()
            .map(|c| c.str().to_string())
            .collect::<Vec<_>>()
            .join("\t")
    };
    let mut text = join(doc.get("Titles").unwrap_or(&Json::Null));
    text.push('\n');
    for process in doc.get("Processes").map(Json::items).unwrap_or(&[]) {
        text.push_str(&join(process));
        text.push('\n');
    }
    print_out(&crate::format::tabwriter::align(&text, 20, 3))
}

/// Go's `sortorder.NaturalLess`: digit runs compare as numbers.
pub fn natural_less(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (ca, cb) = (a[i], b[j]);
        if ca.is_ascii_digit() && cb.is_ascii_digit() {
            let si = i;
            while i < a.len() && a[i] == b'0' {
                i += 1;
            }
            let sj = j;
            while j < b.len() && b[j] == b'0' {
                j += 1;
            }
            let (ni, nj) = (i, j);
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let (da, db) = (&a[ni..i], &b[nj..j]);
            let order = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
            if order != std::cmp::Ordering::Equal {
                return order;
            }
            let zeros = (ni - si).cmp(&(nj - sj));
            if zeros != std::cmp::Ordering::Equal {
                return zeros;
            }
            continue;
        }
        if ca != cb {
            return ca.cmp(&cb);
        }
        i += 1;
        j += 1;
    }
    (a.len() - i).cmp(&(b.len() - j))
}

/// `port`.
pub async fn port(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let name = &p.args[0];
    let raw = cli
        .client()
        .get_bytes(
            &format!("/containers/{}/json", escape_path(name)),
            &Query::new(),
        )
        .await?;
    let doc = decode(&raw, "container inspect")?;
    let ports = doc.path(&["NetworkSettings", "Ports"]);
    let frontends = |key: &str| -> Vec<String> {
        ports
            .and_then(|p| p.get(key))
            .map(Json::items)
            .unwrap_or(&[])
            .iter()
            .map(|f| {
                join_host_port(
                    f.get("HostIp").map(Json::str).unwrap_or(""),
                    f.get("HostPort").map(Json::str).unwrap_or(""),
                )
            })
            .collect()
    };
    let mut out: Vec<String> = Vec::new();
    if let Some(wanted) = p.args.get(1) {
        let (number, proto) = wanted.split_once('/').unwrap_or((wanted.as_str(), ""));
        let proto = if proto.is_empty() { "tcp" } else { proto };
        if number.parse::<u16>().is_err() {
            return Err(Error::InvalidArgument(format!(
                "Error: invalid port ({number}): strconv.ParseUint: parsing {}: invalid syntax",
                go_quote(number)
            )));
        }
        out = frontends(&format!("{number}/{proto}"));
        if out.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "Error: No public port '{wanted}' published for {name}"
            )));
        }
    } else {
        for (from, _) in ports.map(Json::fields).unwrap_or(&[]) {
            for frontend in frontends(from) {
                out.push(format!("{from} -> {frontend}"));
            }
        }
    }
    if out.is_empty() {
        return Ok(());
    }
    out.sort_by(|a, b| natural_less(a, b));
    print_out(&format!("{}\n", out.join("\n")))
}

/// `diff`.
pub async fn diff(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let name = &p.args[0];
    if name.is_empty() {
        return Err(Error::InvalidArgument(
            "Container name cannot be empty".to_string(),
        ));
    }
    let raw = cli
        .client()
        .get_bytes(&container_path(name, "changes"), &Query::new())
        .await?;
    let changes = decode(&raw, "container changes")?;
    let mut text = String::new();
    for change in changes.items() {
        let kind = match change.get("Kind").map_or(-1, Json::int) {
            0 => "C",
            1 => "A",
            2 => "D",
            _ => "",
        };
        let path = change.get("Path").map(Json::str).unwrap_or("");
        text.push_str(&format!("{kind} {path}\n"));
    }
    print_out(&text)
}

/// Copies a response body to a writer as it arrives.
async fn copy_body(
    response: http::Response<hyper::body::Incoming>,
    operation: &'static str,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|source| Error::Transport { operation, source })?;
        if let Ok(data) = frame.into_data() {
            sink(&data)?;
        }
    }
    Ok(())
}

fn stdout_error(source: io::Error) -> Error {
    Error::Io {
        operation: "writing output",
        source,
    }
}

/// `export`.
pub async fn export(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let output = p.string("output");
    if output.is_empty() {
        if term::stdout_is_terminal() {
            return Err(Error::InvalidArgument(
                "cowardly refusing to save to a terminal. Use the -o flag or redirect".to_string(),
            ));
        }
    } else {
        check_output_path_for(Path::new(&output), "failed to export container")?;
    }
    let response = cli
        .client()
        .request(
            Method::GET,
            &container_path(&p.args[0], "export"),
            &Query::new(),
            &[],
            empty(),
        )
        .await?;
    if output.is_empty() {
        let mut stdout = io::stdout().lock();
        copy_body(response, "reading container export", |data| {
            stdout.write_all(data).map_err(stdout_error)
        })
        .await?;
        return stdout.flush().map_err(stdout_error);
    }
    let mut pending = PendingFile::create_for(
        Path::new(&output),
        (
            "failed to export container: creating",
            "failed to export container: writing",
        ),
    )?;
    copy_body(response, "reading container export", |data| {
        pending.write(data)
    })
    .await?;
    pending.commit()
}

/// `commit`.
pub async fn commit(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let mut repository = String::new();
    let mut tag = String::new();
    if let Some(reference) = p.args.get(1) {
        let parsed = Reference::parse_normalized(reference)?;
        if parsed.digest().is_some() {
            return Err(Error::InvalidArgument(
                "refusing to create a tag with a digest reference".to_string(),
            ));
        }
        let parsed = parsed.with_default_tag();
        tag = parsed.tag().unwrap_or("").to_string();
        repository = parsed.name();
    }
    let mut query = Query::new()
        .add("container", p.args[0].as_str())
        .add("repo", repository)
        .add("tag", tag)
        .add("comment", p.string("message"))
        .add("author", p.string("author"));
    for change in p.list("change") {
        query = query.add("changes", change);
    }
    if !p.bool_or("pause", true) {
        query = query.add("pause", "0");
    }
    let response = cli
        .client()
        .request(Method::POST, "/commit", &query, &[], empty())
        .await?;
    let doc = decode(&read_body(response).await?, "commit")?;
    print_out(&format!("{}\n", doc.get("Id").map(Json::str).unwrap_or("")))
}

/// `container prune`.
pub async fn prune(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let filters = prune_filters(cli, p.list("filter"))?;
    let warning = "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?";
    let body = super::confirm_and_prune(cli, p.bool("force"), warning, "/containers/prune", &filters).await?;
    let report = decode(&body, "container prune")?;
    print_out(&super::prune_report(&report, "ContainersDeleted", "Deleted Containers:"))
}

/// `update`.
pub async fn update(cli: &mut Cli, p: &Parsed, flag_count: usize) -> Result<()> {
    if flag_count == 0 {
        return Err(Error::InvalidArgument(
            "you must provide one or more flags when using this command".to_string(),
        ));
    }
    let restart = p.string("restart");
    let restart_policy = if restart.is_empty() {
        json!({"Name": "", "MaximumRetryCount": 0})
    } else {
        parse_restart_policy(&restart).map_err(Error::InvalidArgument)?
    };
    let number = |name: &str| p.string(name).parse::<i64>().unwrap_or(0);
    let pids = if p.int("pids-limit") != 0 {
        json!(p.int("pids-limit"))
    } else {
        serde_json::Value::Null
    };
    let body = json!({
        "CpuShares": p.int("cpu-shares"),
        "Memory": number("memory"),
        "NanoCpus": number("cpus"),
        "CgroupParent": "",
        "BlkioWeight": number("blkio-weight"),
        "BlkioWeightDevice": null,
        "BlkioDeviceReadBps": null,
        "BlkioDeviceWriteBps": null,
        "BlkioDeviceReadIOps": null,
        "BlkioDeviceWriteIOps": null,
        "CpuPeriod": p.int("cpu-period"),
        "CpuQuota": p.int("cpu-quota"),
        "CpuRealtimePeriod": p.int("cpu-rt-period"),
        "CpuRealtimeRuntime": p.int("cpu-rt-runtime"),
        "CpusetCpus": p.string("cpuset-cpus"),
        "CpusetMems": p.string("cpuset-mems"),
        "Devices": null,
        "DeviceCgroupRules": null,
        "DeviceRequests": null,
        "MemoryReservation": number("memory-reservation"),
        "MemorySwap": number("memory-swap"),
        "MemorySwappiness": null,
        "OomKillDisable": null,
        "PidsLimit": pids,
        "Ulimits": null,
        "CpuCount": 0,
        "CpuPercent": 0,
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
        "RestartPolicy": restart_policy,
    });
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for name in &p.args {
        let result = async {
            let response = cli
                .client()
                .post_json(&container_path(name, "update"), &Query::new(), &body)
                .await?;
            decode(&read_body(response).await?, "container update")
        }
        .await;
        match result {
            Ok(doc) => {
                print_out(&format!("{name}\n"))?;
                for w in doc.get("Warnings").map(Json::items).unwrap_or(&[]) {
                    warnings.push(w.str().to_string());
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !warnings.is_empty() {
        print_out(&format!("{}\n", warnings.join("\n")))?;
    }
    if !errors.is_empty() {
        return Err(Error::InvalidArgument(errors.join("\n")));
    }
    Ok(())
}

/// `logs`.
pub async fn logs(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let raw = cli
        .client()
        .get_bytes(
            &format!("/containers/{}/json", escape_path(&p.args[0])),
            &Query::new(),
        )
        .await?;
    let doc = decode(&raw, "container inspect")?;
    let id = doc.get("Id").map(Json::str).unwrap_or("").to_string();
    let tty = doc.path(&["Config", "Tty"]).is_some_and(Json::bool);
    let now = crate::format::units::now_unix();
    let offset = LocalTime::from_unix(now as i64, 0).offset;
    let mut query = Query::new().add("stdout", "1").add("stderr", "1");
    for key in ["since", "until"] {
        let value = p.string(key);
        if !value.is_empty() {
            query = query.add(key, super::system::api_timestamp(&value, now, offset)?);
        }
    }
    if p.bool("timestamps") {
        query = query.add("timestamps", "1");
    }
    if p.bool("details") {
        query = query.add("details", "1");
    }
    if p.bool("follow") {
        query = query.add("follow", "1");
    }
    let tail = if p.changed("tail") {
        p.string("tail")
    } else {
        "all".to_string()
    };
    query = query.add_nonempty("tail", &tail);
    let response = cli
        .client()
        .request(
            Method::GET,
            &format!("/containers/{id}/logs"),
            &query,
            &[],
            empty(),
        )
        .await?;
    let mut demux = Demux::default();
    copy_body(response, "reading logs", |data| {
        let mut stdout = io::stdout().lock();
        if tty {
            stdout.write_all(data).map_err(stdout_error)?;
            stdout.flush().map_err(stdout_error)
        } else {
            demux.feed(data, &mut stdout, &mut io::stderr().lock())
        }
    })
    .await
}

/// What `inspect` looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InspectKind {
    /// Any object (`inspect`), or one type with `--type`.
    Any,
    Container,
    Volume,
}

/// One object found: its raw JSON, the Go struct templates see first, and its type.
struct Found {
    raw: Vec<u8>,
    fields: Option<&'static [Field]>,
    kind: &'static str,
}

const OBJECT_TYPES: &str = "\"config\", \"container\", \"image\", \"network\", \"node\", \"plugin\", \"secret\", \"service\", \"task\", \"volume\"";

/// docker's `isErrSkippable` for auto-detection.
fn skippable(e: &Error) -> bool {
    let message = e.to_string();
    e.is_not_found()
        || message.contains("not supported")
        || message.contains("invalid reference format")
}

async fn find_object(cli: &mut Cli, name: &str, wanted: &str, size: bool) -> Result<Found> {
    let escaped = escape_path(name);
    let candidates: [(&'static str, String, Option<&'static [Field]>); 5] = [
        (
            "container",
            format!("/containers/{escaped}/json"),
            Some(CONTAINER_INSPECT),
        ),
        (
            "image",
            format!("/images/{escaped}/json"),
            Some(IMAGE_INSPECT),
        ),
        ("network", format!("/networks/{escaped}"), None),
        ("volume", format!("/volumes/{escaped}"), Some(VOLUME)),
        ("plugin", format!("/plugins/{escaped}/json"), None),
    ];
    for (kind, path, fields) in candidates {
        if !wanted.is_empty() && wanted != kind {
            continue;
        }
        let query = if kind == "container" && size {
            Query::new().add("size", "1")
        } else {
            Query::new()
        };
        match cli.client().get_bytes(&path, &query).await {
            Ok(raw) => {
                if size && kind != "container" {
                    eprintln!("WARNING: --size ignored for {kind}");
                }
                return Ok(Found {
                    raw: raw.to_vec(),
                    fields,
                    kind,
                });
            }
            Err(e) if wanted.is_empty() && skippable(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    if !wanted.is_empty() {
        // Swarm objects: this daemon has none.
        return Err(Error::InvalidArgument(format!(
            "Error: No such {wanted}: {name}"
        )));
    }
    Err(Error::InvalidArgument(format!(
        "Error: No such object: {name}"
    )))
}

/// `inspect`, `container inspect` and `volume inspect`, with docker's `inspect.Inspect`:
/// raw JSON indented, `json` compact, or a template run over the Go struct and then,
/// except for volumes, over the raw JSON.
pub async fn inspect(cli: &mut Cli, p: &Parsed, kind: InspectKind) -> Result<()> {
    let wanted = match kind {
        InspectKind::Any => p.string("type"),
        InspectKind::Container => "container".to_string(),
        InspectKind::Volume => "volume".to_string(),
    };
    if kind == InspectKind::Any {
        if p.changed("type") && wanted.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "type is empty: must be one of {OBJECT_TYPES}"
            )));
        }
        if !wanted.is_empty() && !OBJECT_TYPES.contains(&format!("\"{wanted}\"")) {
            return Err(Error::InvalidArgument(format!(
                "unknown type: \"{wanted}\": must be one of {OBJECT_TYPES}"
            )));
        }
    }
    let format = p.string("format");
    let template = match format.as_str() {
        "" | "json" => None,
        source => Some(
            Template::parse(source)
                .map_err(|e| Error::TemplateStatus(format!("template parsing error: {e}")))?,
        ),
    };
    let size = kind != InspectKind::Volume && p.bool("size");
    let mut errors: Vec<Error> = Vec::new();
    let mut raws: Vec<Vec<u8>> = Vec::new();
    let mut output = String::new();
    for name in &p.args {
        let found = match find_object(cli, name, &wanted, size).await {
            Ok(found) => found,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        // `volume inspect` hands docker's inspector no raw JSON: it prints the struct.
        let typed_only = kind == InspectKind::Volume;
        let doc = match Json::parse(&found.raw) {
            Ok(doc) => doc,
            Err(source) => {
                errors.push(Error::Decode {
                    operation: "inspect data",
                    source,
                });
                continue;
            }
        };
        match &template {
            None => {
                if typed_only {
                    let fields = found.fields.unwrap_or(VOLUME);
                    raws.push(as_go_struct(&doc, fields).to_go_json(true).into_bytes());
                } else {
                    raws.push(found.raw);
                }
            }
            Some(template) => {
                let typed = found
                    .fields
                    .map(|fields| template.render(&Data::typed(&doc, fields)));
                let rendered = match typed {
                    Some(Ok(text)) => Ok(text),
                    Some(Err(e)) if typed_only => Err(e),
                    _ => template.render(&Data::raw(&doc)),
                };
                match rendered {
                    Ok(text) => {
                        output.push_str(&text);
                        output.push('\n');
                    }
                    Err(e) => errors.push(Error::InvalidArgument(format!(
                        "template parsing error: {e}"
                    ))),
                }
            }
        }
        let _ = found.kind;
    }
    finish_inspect(output, template.is_some(), &raws, &format, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(ip: &str, private: u16, public: u16, kind: &str) -> Port {
        Port {
            ip: ip.into(),
            private,
            public,
            kind: kind.into(),
        }
    }

    #[test]
    fn ports_display_like_docker() {
        assert_eq!(
            displayable_ports(vec![
                port("", 80, 0, "tcp"),
                port("", 81, 0, "tcp"),
                port("", 90, 0, "udp")
            ]),
            "80-81/tcp, 90/udp"
        );
        assert_eq!(
            displayable_ports(vec![port("0.0.0.0", 80, 8080, "tcp")]),
            "0.0.0.0:8080->80/tcp"
        );
        assert_eq!(
            displayable_ports(vec![
                port("0.0.0.0", 80, 80, "tcp"),
                port("::", 80, 80, "tcp")
            ]),
            "0.0.0.0:80->80/tcp, [::]:80->80/tcp"
        );
        assert_eq!(displayable_ports(Vec::new()), "");
    }

    #[test]
    fn images_display_like_docker() {
        let id = format!("sha256:{}", "a".repeat(64));
        assert_eq!(display_image("busybox", &id, true), "busybox");
        let pinned = format!("busybox:1.36@sha256:{}", "b".repeat(64));
        assert_eq!(display_image(&pinned, &id, true), "busybox:1.36");
        assert_eq!(display_image(&id, &id, true), "aaaaaaaaaaaa");
        assert_eq!(display_image("", &id, true), "<no image>");
        assert_eq!(display_image("Busybox", &id, false), "Busybox");
    }

    #[test]
    fn rows_and_json() {
        let c = Json::parse(br#"{"Id":"28ba07d8c2ac2400a78d9ec4ebbc4cac25d9a8f5279f5c5802490ae030cd3d05","Names":["/x1"],"Image":"busybox","ImageID":"sha256:94","Command":"sleep 100","Created":1700000000,"Ports":[],"Labels":{"b":"2","a":"1"},"State":"running","Status":"Up 2 seconds","NetworkSettings":{"Networks":{"bridge":{}}},"Mounts":[]}"#).unwrap();
        let row = container_row(&c, true);
        let text = render_rows(
            "{{.ID}}|{{.Names}}|{{.Command}}|{{.Labels}}|{{.Networks}}|{{.Size}}",
            &container_header(),
            std::slice::from_ref(&row),
        )
        .unwrap();
        assert_eq!(text, "28ba07d8c2ac|x1|\"sleep 100\"|a=1,b=2|bridge|0B\n");
        let json = render_rows("json", &container_header(), &[row]).unwrap();
        assert!(
            json.starts_with(r#"{"Command":"\"sleep 100\"","CreatedAt":"#),
            "{json}"
        );
        assert!(
            json.contains(r#""Networks":"bridge","Platform":null,"Ports":"","#),
            "{json}"
        );
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["80/tcp -> 0.0.0.0:9", "8080/tcp -> x", "443/tcp -> y"];
        v.sort_by(|a, b| natural_less(a, b));
        assert_eq!(
            v,
            vec!["80/tcp -> 0.0.0.0:9", "443/tcp -> y", "8080/tcp -> x"]
        );
    }
}
