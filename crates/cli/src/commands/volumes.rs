//! `volume create`, `volume ls`, `volume rm` and `volume prune` (`volume inspect` is
//! the shared inspect in `containers`).


use http::Method;
use serde_json::{json, Map, Value};

use super::decode;
use super::containers::natural_less;
use super::images::print_out;
use super::{filters_json, prune_filters};
use crate::cli::Cli;
use crate::client::{empty, escape_path, read_body, Query};
use crate::error::{Error, Result};
use crate::flags::Parsed;
use crate::format::json::Json;
use crate::format::template::Data;
use crate::format::units::human_size;
use crate::format::{render_rows, TABLE};

/// `volume create`.
pub async fn create(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let mut name = p.string("name");
    if let Some(positional) = p.args.first() {
        if !name.is_empty() {
            return Err(Error::InvalidArgument(
                "conflicting options: cannot specify a volume-name through both --name and as a positional arg".to_string(),
            ));
        }
        name = positional.clone();
    }
    let driver = if p.changed("driver") {
        p.string("driver")
    } else {
        "local".to_string()
    };
    let map_of = |values: Vec<String>| -> Map<String, Value> {
        values
            .into_iter()
            .map(|v| {
                let (k, val) = v.split_once('=').unwrap_or((v.as_str(), ""));
                (k.to_string(), json!(val))
            })
            .collect()
    };
    let mut body = Map::new();
    body.insert("Driver".into(), json!(driver));
    let options = map_of(p.list("opt"));
    if !options.is_empty() {
        body.insert("DriverOpts".into(), Value::Object(options));
    }
    let labels = map_of(p.list("label"));
    if !labels.is_empty() {
        body.insert("Labels".into(), Value::Object(labels));
    }
    if !name.is_empty() {
        body.insert("Name".into(), json!(name));
    }
    let response = cli
        .client()
        .post_json("/volumes/create", &Query::new(), &Value::Object(body))
        .await?;
    let volume = decode(&read_body(response).await?, "volume create")?;
    print_out(&format!(
        "{}\n",
        volume.get("Name").map(Json::str).unwrap_or("")
    ))
}

fn volume_header() -> Data {
    Data::header(&[
        ("ID", "ID"),
        ("Name", "VOLUME NAME"),
        ("Group", "GROUP"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("Availability", "AVAILABILITY"),
        ("Mountpoint", "MOUNTPOINT"),
        ("Labels", "LABELS"),
        ("Links", "LINKS"),
        ("Size", "SIZE"),
        ("Status", "STATUS"),
    ])
}

/// One row of `volume ls` (docker's `volumeContext`).
fn volume_row(v: &Json) -> Data {
    let text = |key: &str| v.get(key).map(|j| j.str().to_string()).unwrap_or_default();
    let labels: Vec<String> = v
        .get("Labels")
        .map(|l| {
            l.fields()
                .iter()
                .map(|(k, val)| format!("{k}={}", val.str()))
                .collect()
        })
        .unwrap_or_default();
    let usage = v.get("UsageData").filter(|u| !matches!(u, Json::Null));
    let (links, size) = match usage {
        Some(u) => (
            u.get("RefCount").map_or(0, Json::int).to_string(),
            human_size(u.get("Size").map_or(0, Json::int) as f64),
        ),
        None => ("N/A".to_string(), "N/A".to_string()),
    };
    let cluster = v.get("ClusterVolume").filter(|c| !matches!(c, Json::Null));
    let (group, availability, status) = match cluster {
        None => ("N/A".to_string(), "N/A".to_string(), "N/A".to_string()),
        Some(c) => {
            let spec = |key: &str| {
                c.path(&["Spec", key])
                    .map(|j| j.str().to_string())
                    .unwrap_or_default()
            };
            let created = c
                .path(&["Info", "VolumeID"])
                .is_some_and(|id| !id.str().is_empty());
            let nodes = c.get("PublishStatus").map_or(0, |s| s.items().len());
            let status = match (created, nodes) {
                (false, _) => "pending creation".to_string(),
                (true, 0) => "created".to_string(),
                (true, 1) => "in use (1 node)".to_string(),
                (true, n) => format!("in use ({n} nodes)"),
            };
            (spec("Group"), spec("Availability"), status)
        }
    };
    Data::from_fields(&[
        ("Availability", availability),
        ("Driver", text("Driver")),
        ("Group", group),
        ("Labels", labels.join(",")),
        ("Links", links),
        ("Mountpoint", text("Mountpoint")),
        ("Name", text("Name")),
        ("Scope", text("Scope")),
        ("Size", size),
        ("Status", status),
    ])
}

/// `volume ls`.
pub async fn list(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let mut query = Query::new();
    if let Some(f) = filters_json(&p.list("filter")) {
        query = query.add("filters", f);
    }
    let raw = cli.client().get_bytes("/volumes", &query).await?;
    let doc = decode(&raw, "volume list")?;
    let mut volumes: Vec<&Json> = doc
        .get("Volumes")
        .map(Json::items)
        .unwrap_or(&[])
        .iter()
        .collect();
    volumes.sort_by(|a, b| {
        natural_less(
            a.get("Name").map(Json::str).unwrap_or(""),
            b.get("Name").map(Json::str).unwrap_or(""),
        )
    });
    let quiet = p.bool("quiet");
    let mut format = p.string("format");
    if format.is_empty() {
        format = match cli.configs()?.berth.setting("volumesFormat") {
            Some(f) if !quiet => f.to_string(),
            _ => TABLE.to_string(),
        };
    }
    let format = match format.as_str() {
        TABLE if quiet => "{{.Name}}".to_string(),
        TABLE => "table {{.Driver}}\t{{.Name}}".to_string(),
        "raw" if quiet => "name: {{.Name}}".to_string(),
        "raw" => "name: {{.Name}}\\ndriver: {{.Driver}}\\n".to_string(),
        other => other.to_string(),
    };
    let rows: Vec<Data> = volumes.into_iter().map(volume_row).collect();
    print_out(&render_rows(&format, &volume_header(), &rows)?)
}

/// `volume rm`.
pub async fn remove(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let mut query = Query::new();
    if p.bool("force") {
        query = query.add("force", "1");
    }
    let mut errors = Vec::new();
    for name in &p.args {
        let result = async {
            let response = cli
                .client()
                .request(
                    Method::DELETE,
                    &format!("/volumes/{}", escape_path(name)),
                    &query,
                    &[],
                    empty(),
                )
                .await?;
            read_body(response).await
        }
        .await;
        match result {
            Ok(_) => print_out(&format!("{name}\n"))?,
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Multiple(errors)),
    }
}

/// `volume prune`.
pub async fn prune(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let mut filters = prune_filters(cli, p.list("filter"))?;
    let version = cli.client().api_version().await?;
    let all_warning = "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue?";
    let mut warning = "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue?";
    if !crate::client::version_less(&version, "1.42") {
        if p.bool("all") {
            if filters
                .iter()
                .any(|f| f.split_once('=').map(|(k, _)| k.trim()) == Some("all"))
            {
                return Err(Error::InvalidArgument(
                    "conflicting options: cannot specify both --all and --filter all=1".to_string(),
                ));
            }
            filters.push("all=true".to_string());
            warning = all_warning;
        }
    } else {
        warning = all_warning;
    }
    let body = super::confirm_and_prune(cli, p.bool("force"), warning, "/volumes/prune", &filters).await?;
    let report = decode(&body, "volume prune")?;
    print_out(&super::prune_report(&report, "VolumesDeleted", "Deleted Volumes:"))
}
