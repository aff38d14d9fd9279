//! System commands: `system df`, `info`, `version`, `events`.

use std::io::Write;

use http_body_util::BodyExt;

use super::filters_json;
use super::images::{image_header, image_row, print_out, ImageSummary};
use crate::cli::Cli;
use crate::client::{Query, CLIENT_API_VERSION};
use crate::error::{Error, Result};
use crate::flags::Parsed;
use crate::format::json::Json;
use crate::format::template::{Data, Template};
use crate::format::typed::{
    as_go_struct, CLIENT_ONLY_INFO, DOCKER_INFO, EVENT_MESSAGE, INFO, VERSION_INFO,
};
use crate::format::units::{
    bytes_size, human_since, human_size, human_size_with_precision, now_unix, reformat_date,
    LocalTime,
};
use crate::format::{ellipsis, render_rows, tabwriter, truncate_id, JSON, TABLE};
use crate::reference::INDEX_SERVER;

async fn get_doc(cli: &mut Cli, path: &str, operation: &'static str) -> Result<Json> {
    let bytes = cli.client().get_bytes(path, &Query::new()).await?;
    Json::parse(&bytes).map_err(|source| Error::Decode { operation, source })
}

fn template_status(e: impl std::fmt::Display) -> Error {
    Error::TemplateStatus(format!("template parsing error: {e}"))
}

/// Go's `GOARCH` name for the machine.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn pct(part: i64, total: i64) -> String {
    if total > 0 {
        format!("{} ({}%)", human_size(part as f64), part * 100 / total)
    } else {
        human_size(part as f64)
    }
}

/// `system df`.
pub async fn df(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let du = get_doc(cli, "/system/df", "disk usage").await?;
    let images = du.get("Images").map(Json::items).unwrap_or(&[]);
    let containers = du.get("Containers").map(Json::items).unwrap_or(&[]);
    let volumes = du.get("Volumes").map(Json::items).unwrap_or(&[]);
    let cache = du.get("BuildCache").map(Json::items).unwrap_or(&[]);
    let builder_size: i64 = cache
        .iter()
        .filter(|c| !c.get("Shared").is_some_and(Json::bool))
        .map(|c| c.get("Size").map_or(0, Json::int))
        .sum();
    let mut format = p.string("format");
    if format.is_empty() {
        format = TABLE.to_string();
    }
    if p.bool("verbose") {
        return df_verbose(&format, images, containers, volumes, cache, builder_size);
    }
    let format = match format.as_str() {
        TABLE => "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}".to_string(),
        "raw" => "type: {{.Type}}\ntotal: {{.TotalCount}}\nactive: {{.Active}}\nsize: {{.Size}}\nreclaimable: {{.Reclaimable}}\n".to_string(),
        _ => format,
    };
    let int = |j: &Json, k: &str| j.get(k).map_or(0, Json::int);
    let row = |kind: &str, total: usize, active: usize, size: String, reclaimable: String| {
        Data::from_fields(&[
            ("Type", kind.to_string()),
            ("TotalCount", total.to_string()),
            ("Active", active.to_string()),
            ("Size", size),
            ("Reclaimable", reclaimable),
        ])
    };
    let layers = int(&du, "LayersSize");
    let used: i64 = images
        .iter()
        .filter(|i| int(i, "Containers") != 0 && int(i, "Size") != -1 && int(i, "SharedSize") != -1)
        .map(|i| int(i, "Size") - int(i, "SharedSize"))
        .sum();
    let active_state = |c: &Json| {
        matches!(
            c.get("State").map(Json::str),
            Some("running" | "paused" | "restarting")
        )
    };
    let container_size: i64 = containers.iter().map(|c| int(c, "SizeRw")).sum();
    let container_reclaimable: i64 = containers
        .iter()
        .filter(|c| !active_state(c))
        .map(|c| int(c, "SizeRw"))
        .sum();
    let usage = |v: &Json, k: &str| v.path(&["UsageData", k]).map_or(0, Json::int);
    let volume_total: i64 = volumes
        .iter()
        .filter(|v| usage(v, "Size") != -1)
        .map(|v| usage(v, "Size"))
        .sum();
    let volume_reclaimable: i64 = volumes
        .iter()
        .filter(|v| usage(v, "Size") != -1 && usage(v, "RefCount") == 0)
        .map(|v| usage(v, "Size"))
        .sum();
    let in_use = |c: &&Json| c.get("InUse").is_some_and(Json::bool);
    let cache_in_use: i64 = cache
        .iter()
        .filter(|c| in_use(c) && !c.get("Shared").is_some_and(Json::bool))
        .map(|c| int(c, "Size"))
        .sum();
    let rows = vec![
        row(
            "Images",
            images.len(),
            images.iter().filter(|i| int(i, "Containers") > 0).count(),
            human_size(layers as f64),
            pct(layers - used, layers),
        ),
        row(
            "Containers",
            containers.len(),
            containers.iter().filter(|c| active_state(c)).count(),
            human_size(container_size as f64),
            pct(container_reclaimable, container_size),
        ),
        row(
            "Local Volumes",
            volumes.len(),
            volumes.iter().filter(|v| usage(v, "RefCount") > 0).count(),
            human_size(volume_total as f64),
            pct(volume_reclaimable, volume_total),
        ),
        row(
            "Build Cache",
            cache.len(),
            cache.iter().filter(in_use).count(),
            human_size(builder_size as f64),
            human_size((builder_size - cache_in_use) as f64),
        ),
    ];
    let header = Data::header(&[
        ("Type", "TYPE"),
        ("TotalCount", "TOTAL"),
        ("Active", "ACTIVE"),
        ("Size", "SIZE"),
        ("Reclaimable", "RECLAIMABLE"),
    ]);
    print_out(&render_rows(&format, &header, &rows)?)
}

fn df_verbose(
    format: &str,
    images: &[Json],
    containers: &[Json],
    volumes: &[Json],
    cache: &[Json],
    builder_size: i64,
) -> Result<()> {
    let trunc = crate::format::is_table(format);
    let image_rows: Vec<Data> = images
        .iter()
        .map(|i| {
            let summary: ImageSummary =
                serde_json::from_str(&i.to_go_json(false)).unwrap_or_default();
            let (mut repo, mut tag) = ("<none>".to_string(), "<none>".to_string());
            if let Some(first) = summary.repo_tags.as_deref().and_then(<[String]>::first) {
                if !summary.is_dangling() {
                    if let Ok(r) = crate::reference::Reference::parse_normalized(first) {
                        if let Some(t) = r.tag() {
                            repo = r.familiar_name();
                            tag = t.to_string();
                        }
                    }
                }
            }
            image_row(&summary, &repo, &tag, "", trunc)
        })
        .collect();
    let str_of = |j: &Json, k: &str| j.get(k).map(Json::str).unwrap_or("").to_string();
    let container_rows: Vec<Data> = containers
        .iter()
        .map(|c| {
            let id = str_of(c, "Id");
            let command = str_of(c, "Command");
            let command = if trunc {
                ellipsis(&command, 20)
            } else {
                command
            };
            let local_volumes = c
                .get("Mounts")
                .map(Json::items)
                .unwrap_or(&[])
                .iter()
                .filter(|m| m.get("Driver").map(Json::str) == Some("local"))
                .count();
            let names: Vec<String> = c
                .get("Names")
                .map(Json::items)
                .unwrap_or(&[])
                .iter()
                .map(|n| n.str().trim_start_matches('/').to_string())
                .collect();
            let names = if trunc {
                names
                    .iter()
                    .find(|n| !n.contains('/'))
                    .map(|n| vec![n.clone()])
                    .unwrap_or(names)
            } else {
                names
            };
            let image = str_of(c, "Image");
            Data::from_fields(&[
                ("ID", if trunc { truncate_id(&id) } else { id }),
                (
                    "Image",
                    if image.is_empty() {
                        "<no image>".to_string()
                    } else {
                        image
                    },
                ),
                ("Command", format!("{command:?}")),
                ("LocalVolumes", local_volumes.to_string()),
                (
                    "Size",
                    human_size_with_precision(c.get("SizeRw").map_or(0, Json::int) as f64, 3),
                ),
                (
                    "RunningFor",
                    human_since(c.get("Created").map_or(0, Json::int)),
                ),
                ("Status", str_of(c, "Status")),
                ("Names", names.join(",")),
            ])
        })
        .collect();
    let volume_rows: Vec<Data> = volumes
        .iter()
        .map(|v| {
            let (links, size) = match v.get("UsageData") {
                Some(u @ Json::Object(_)) => (
                    u.get("RefCount").map_or(0, Json::int).to_string(),
                    human_size(u.get("Size").map_or(0, Json::int) as f64),
                ),
                _ => ("N/A".to_string(), "N/A".to_string()),
            };
            Data::from_fields(&[
                ("Name", str_of(v, "Name")),
                ("Links", links),
                ("Size", size),
            ])
        })
        .collect();
    let mut sorted_cache: Vec<&Json> = cache.iter().collect();
    sorted_cache.sort_by(|a, b| {
        let (la, lb) = (str_of(a, "LastUsedAt"), str_of(b, "LastUsedAt"));
        let key = |s: &str| parse_rfc3339(s);
        match (key(&la), key(&lb)) {
            (None, None) => str_of(a, "ID").cmp(&str_of(b, "ID")),
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => x
                .partial_cmp(&y)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| str_of(a, "ID").cmp(&str_of(b, "ID"))),
        }
    });
    let cache_rows: Vec<Data> = sorted_cache
        .iter()
        .map(|c| {
            let id = str_of(c, "ID");
            let mut id = if trunc { truncate_id(&id) } else { id };
            let in_use = c.get("InUse").is_some_and(Json::bool);
            if in_use {
                id.push('*');
            }
            let since = |k: &str| {
                parse_rfc3339(&str_of(c, k))
                    .map(|t| human_since(t as i64))
                    .unwrap_or_default()
            };
            Data::from_fields(&[
                ("ID", id),
                ("CacheType", str_of(c, "Type")),
                (
                    "Size",
                    human_size_with_precision(c.get("Size").map_or(0, Json::int) as f64, 3),
                ),
                ("CreatedSince", since("CreatedAt")),
                ("LastUsedSince", since("LastUsedAt")),
                (
                    "UsageCount",
                    c.get("UsageCount").map_or(0, Json::int).to_string(),
                ),
                (
                    "Shared",
                    c.get("Shared").is_some_and(Json::bool).to_string(),
                ),
            ])
        })
        .collect();

    if format != TABLE {
        let data = Data::with_lists(vec![
            ("Images", image_rows),
            ("Containers", container_rows),
            ("Volumes", volume_rows),
            ("BuildCache", cache_rows),
        ]);
        let source = crate::format::template_source(format);
        let template = Template::parse(&source).map_err(template_status)?;
        return print_out(&template.render(&data)?);
    }
    let mut out = String::from("Images space usage:\n\n");
    out.push_str(&render_rows(
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
        &image_header(),
        &image_rows,
    )?);
    out.push_str("\nContainers space usage:\n\n");
    out.push_str(&render_rows(
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
        &Data::header(&[
            ("ID", "CONTAINER ID"),
            ("Image", "IMAGE"),
            ("Command", "COMMAND"),
            ("LocalVolumes", "LOCAL VOLUMES"),
            ("Size", "SIZE"),
            ("RunningFor", "CREATED"),
            ("Status", "STATUS"),
            ("Names", "NAMES"),
        ]),
        &container_rows,
    )?);
    out.push_str("\nLocal Volumes space usage:\n\n");
    out.push_str(&render_rows(
        "table {{.Name}}\t{{.Links}}\t{{.Size}}",
        &Data::header(&[
            ("Name", "VOLUME NAME"),
            ("Links", "LINKS"),
            ("Size", "SIZE"),
        ]),
        &volume_rows,
    )?);
    out.push_str(&format!(
        "\nBuild cache usage: {}\n\n",
        human_size(builder_size as f64)
    ));
    out.push_str(&render_rows(
        "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}",
        &Data::header(&[
            ("ID", "CACHE ID"),
            ("CacheType", "CACHE TYPE"),
            ("Size", "SIZE"),
            ("CreatedSince", "CREATED"),
            ("LastUsedSince", "LAST USED"),
            ("UsageCount", "USAGE"),
            ("Shared", "SHARED"),
        ]),
        &cache_rows,
    )?);
    print_out(&out)
}

/// Seconds since the epoch of an RFC 3339 timestamp.
fn parse_rfc3339(s: &str) -> Option<f64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp() as f64 + f64::from(t.nanosecond()) / 1e9)
}

/// The client part of `version` and `info`, in docker's JSON shape.
fn client_version(api_version: Option<&str>) -> Json {
    let mut fields = vec![("Version".to_string(), Json::from(env!("CARGO_PKG_VERSION")))];
    if let Some(v) = api_version {
        fields.push(("ApiVersion".to_string(), Json::from(v)));
    }
    fields.extend([
        (
            "DefaultAPIVersion".to_string(),
            Json::from(CLIENT_API_VERSION),
        ),
        ("Os".to_string(), Json::from(std::env::consts::OS)),
        ("Arch".to_string(), Json::from(go_arch())),
        ("Context".to_string(), Json::from("default")),
    ]);
    Json::Object(fields)
}

/// `version`.
pub async fn version(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let format = p.string("format");
    let template = match format.as_str() {
        "" => None,
        JSON => Some(Template::parse("{{json .}}").map_err(template_status)?),
        source => Some(Template::parse(source).map_err(template_status)?),
    };
    let server = get_doc(cli, "/version", "version").await;
    let api_version = cli
        .client()
        .api_version()
        .await
        .unwrap_or_else(|_| CLIENT_API_VERSION.to_string());
    let client = client_version(Some(&api_version));
    let server = server.map(normalize_server_version);
    let mut doc = vec![("Client".to_string(), client.clone())];
    if let Ok(s) = &server {
        doc.push(("Server".to_string(), s.clone()));
    }
    let doc = Json::Object(doc);
    let text = match &template {
        Some(t) => format!("{}\n", t.render(&Data::typed(&doc, VERSION_INFO))?),
        None => tabwriter::align(&version_text(&client, server.as_ref().ok()), 20, 1),
    };
    print_out(&text)?;
    server.map(|_| ())
}

/// Adds the Engine component when the daemon lists none, and shows its build time the
/// way docker does.
fn normalize_server_version(mut server: Json) -> Json {
    let Json::Object(fields) = &mut server else {
        return server;
    };
    let top = |fields: &[(String, Json)], k: &str| {
        fields
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or(Json::from(""))
    };
    let has_engine = fields.iter().any(|(k, v)| {
        k == "Components"
            && v.items()
                .iter()
                .any(|c| c.get("Name").map(Json::str) == Some("Engine"))
    });
    if !has_engine {
        let details = Json::Object(vec![
            ("ApiVersion".into(), top(fields, "ApiVersion")),
            ("MinAPIVersion".into(), top(fields, "MinAPIVersion")),
            ("GitCommit".into(), top(fields, "GitCommit")),
            ("GoVersion".into(), top(fields, "GoVersion")),
            ("Os".into(), top(fields, "Os")),
            ("Arch".into(), top(fields, "Arch")),
            (
                "BuildTime".into(),
                Json::from(reformat_date(top(fields, "BuildTime").str())),
            ),
            (
                "Experimental".into(),
                Json::from(top(fields, "Experimental").bool().to_string()),
            ),
        ]);
        let engine = Json::Object(vec![
            ("Name".into(), Json::from("Engine")),
            ("Version".into(), top(fields, "Version")),
            ("Details".into(), details),
        ]);
        match fields.iter_mut().find(|(k, _)| k == "Components") {
            Some((_, Json::Array(list))) => list.push(engine),
            Some((_, other)) => *other = Json::Array(vec![engine]),
            None => fields.push(("Components".into(), Json::Array(vec![engine]))),
        }
        return server;
    }
    for (k, v) in fields.iter_mut() {
        let (true, Json::Array(components)) = (k == "Components", v) else {
            continue;
        };
        for component in components.iter_mut() {
            if component.get("Name").map(Json::str) != Some("Engine") {
                continue;
            }
            let Json::Object(cfields) = component else {
                continue;
            };
            for (ck, cv) in cfields.iter_mut() {
                let (true, Json::Object(details)) = (ck == "Details", cv) else {
                    continue;
                };
                for (dk, dv) in details.iter_mut() {
                    if dk == "BuildTime" {
                        *dv = Json::from(reformat_date(dv.str()));
                    }
                }
            }
        }
    }
    server
}

/// docker's default `version` layout, before column alignment.
fn version_text(client: &Json, server: Option<&Json>) -> String {
    let s = |j: &Json, k: &str| j.get(k).map(Json::go_text).unwrap_or_default();
    let mut out = String::from("Client:\n");
    out.push_str(&format!(" Version:\t{}\n", s(client, "Version")));
    let api = s(client, "ApiVersion");
    let default_api = s(client, "DefaultAPIVersion");
    out.push_str(&format!(" API version:\t{api}"));
    if api != default_api {
        out.push_str(&format!(" (downgraded from {default_api})"));
    }
    out.push('\n');
    out.push_str(&format!(
        " OS/Arch:\t{}/{}\n Context:\t{}",
        s(client, "Os"),
        s(client, "Arch"),
        s(client, "Context")
    ));
    if let Some(server) = server {
        out.push_str("\n\nServer:");
        let platform = server
            .path(&["Platform", "Name"])
            .map(Json::str)
            .unwrap_or("");
        if !platform.is_empty() {
            out.push(' ');
            out.push_str(platform);
        }
        for component in server.get("Components").map(Json::items).unwrap_or(&[]) {
            let name = s(component, "Name");
            out.push_str(&format!("\n {name}:"));
            let detail = |k: &str| {
                component
                    .path(&["Details", k])
                    .map(Json::go_text)
                    .unwrap_or_else(|| "<no value>".to_string())
            };
            if name == "Engine" {
                out.push_str(&format!(
                    "\n  Version:\t{}\n  API version:\t{} (minimum version {})\n  Go version:\t{}\n  Git commit:\t{}\n  Built:\t{}\n  OS/Arch:\t{}/{}\n  Experimental:\t{}",
                    s(component, "Version"),
                    detail("ApiVersion"),
                    detail("MinAPIVersion"),
                    detail("GoVersion"),
                    detail("GitCommit"),
                    detail("BuildTime"),
                    detail("Os"),
                    detail("Arch"),
                    detail("Experimental"),
                ));
            } else {
                out.push_str(&format!("\n  Version:\t{}", s(component, "Version")));
                let mut keys: Vec<&str> = component
                    .get("Details")
                    .map(Json::fields)
                    .unwrap_or(&[])
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect();
                keys.sort_unstable();
                for key in keys {
                    out.push_str(&format!("\n  {key}:\t{}", detail(key)));
                }
            }
        }
    }
    out.push('\n');
    out
}

/// `info`.
pub async fn info(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let format = p.string("format");
    let debug = cli.debug;
    let client_info = {
        let mut fields = vec![("Debug".to_string(), Json::Bool(debug))];
        fields.extend(client_version(None).fields().iter().cloned());
        fields.push(("Plugins".to_string(), Json::Array(Vec::new())));
        fields.push(("Warnings".to_string(), Json::Null));
        Json::Object(fields)
    };
    if format.is_empty() {
        return info_pretty(cli, &client_info, debug).await;
    }
    let source = if format == JSON {
        "{{json .}}"
    } else {
        format.as_str()
    };
    let template = Template::parse(source).map_err(template_status)?;
    let client_only = Json::Object(vec![("ClientInfo".to_string(), client_info.clone())]);
    // docker asks the daemon only when the template needs more than the client's part.
    let has_field = source
        .as_bytes()
        .windows(2)
        .any(|w| w[0] == b'.' && w[1].is_ascii_alphabetic());
    let needs_server = !has_field
        || template
            .render(&Data::typed(&client_only, CLIENT_ONLY_INFO))
            .is_err();
    let mut fields: Vec<(String, Json)> = Vec::new();
    let mut connect_error = None;
    if needs_server {
        match get_doc(cli, "/info", "info").await {
            Ok(doc) => fields.extend(doc.fields().iter().map(|(k, v)| {
                if k == "RegistryConfig" {
                    (k.clone(), registry_config_as_docker_encodes_it(v))
                } else {
                    (k.clone(), v.clone())
                }
            })),
            Err(e @ (Error::Connect { .. } | Error::ConnectPermission { .. })) => {
                connect_error = Some(e)
            }
            Err(e) => {
                eprintln!("{e}");
                fields.push((
                    "ServerErrors".to_string(),
                    Json::Array(vec![Json::from(e.to_string())]),
                ));
            }
        }
    }
    if let Some(e) = connect_error {
        return Err(e);
    }
    fields.push(("ClientInfo".to_string(), client_info));
    let doc = Json::Object(fields);
    let text = template.render(&Data::typed(&doc, DOCKER_INFO))?;
    print_out(&format!("{text}\n"))
}

/// docker re-encodes the registry configuration through a map: keys sorted, and the
/// retired `AllowNondistributableArtifacts*` lists dropped when empty.
fn registry_config_as_docker_encodes_it(config: &Json) -> Json {
    fn sorted(j: &Json) -> Json {
        match j {
            Json::Object(fields) => {
                let mut fields: Vec<(String, Json)> =
                    fields.iter().map(|(k, v)| (k.clone(), sorted(v))).collect();
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                Json::Object(fields)
            }
            Json::Array(items) => Json::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    match sorted(config) {
        Json::Object(fields) => Json::Object(
            fields
                .into_iter()
                .filter(|(k, v)| {
                    !(k.starts_with("AllowNondistributableArtifacts") && v.items().is_empty())
                })
                .collect(),
        ),
        other => other,
    }
}

async fn info_pretty(cli: &mut Cli, client_info: &Json, debug: bool) -> Result<()> {
    let mut out = String::from("Client:\n");
    let c = |k: &str| client_info.get(k).map(Json::go_text).unwrap_or_default();
    out.push_str(&format!(" Version:    {}\n", c("Version")));
    out.push_str(&format!(" Context:    {}\n", c("Context")));
    out.push_str(&format!(" Debug Mode: {}\n", c("Debug")));
    out.push_str("\nServer:\n");
    let server = get_doc(cli, "/info", "info").await;
    let username = cli.registry_auth(INDEX_SERVER).username;
    match server {
        Ok(info) => {
            // Fields the daemon leaves out read as Go's zero values, as in docker.
            let info = as_go_struct(&info, INFO);
            let warnings = server_info_text(&info, &username, debug, &mut out);
            print_out(&out)?;
            for w in warnings {
                eprintln!("{w}");
            }
            Ok(())
        }
        Err(e @ (Error::Connect { .. } | Error::ConnectPermission { .. })) => {
            print_out(&out)?;
            Err(e)
        }
        Err(e) => {
            print_out(&out)?;
            eprintln!("ERROR: {e}");
            Err(Error::InvalidArgument(
                "errors pretty printing info".to_string(),
            ))
        }
    }
}

/// docker's `prettyPrintServerInfo`; returns the daemon's warnings.
fn server_info_text(info: &Json, username: &str, debug: bool, out: &mut String) -> Vec<String> {
    let v = |k: &str| info.get(k).map(Json::go_text).unwrap_or_default();
    let line = |out: &mut String, label: &str, value: String| {
        out.push_str(label);
        out.push(' ');
        out.push_str(&value);
        out.push('\n');
    };
    let nonempty = |out: &mut String, label: &str, value: String| {
        if !value.is_empty() && value != "<nil>" {
            line(out, label, value);
        }
    };
    let int = |k: &str| info.get(k).map_or(0, Json::int).to_string();
    let strings = |j: Option<&Json>| -> Vec<String> {
        j.map(Json::items)
            .unwrap_or(&[])
            .iter()
            .map(|s| s.go_text())
            .collect()
    };
    line(out, " Containers:", int("Containers"));
    line(out, "  Running:", int("ContainersRunning"));
    line(out, "  Paused:", int("ContainersPaused"));
    line(out, "  Stopped:", int("ContainersStopped"));
    line(out, " Images:", int("Images"));
    nonempty(out, " Server Version:", v("ServerVersion"));
    nonempty(out, " Storage Driver:", v("Driver"));
    for pair in info.get("DriverStatus").map(Json::items).unwrap_or(&[]) {
        let items = pair.items();
        if items.len() >= 2 {
            out.push_str(&format!(
                "  {}: {}\n",
                items[0].go_text(),
                items[1].go_text()
            ));
        }
    }
    for pair in info.get("SystemStatus").map(Json::items).unwrap_or(&[]) {
        let items = pair.items();
        if items.len() >= 2 {
            out.push_str(&format!(
                " {}: {}\n",
                items[0].go_text(),
                items[1].go_text()
            ));
        }
    }
    nonempty(out, " Logging Driver:", v("LoggingDriver"));
    nonempty(out, " Cgroup Driver:", v("CgroupDriver"));
    nonempty(out, " Cgroup Version:", v("CgroupVersion"));
    out.push_str(" Plugins:\n");
    let plugins = |k: &str| strings(info.path(&["Plugins", k])).join(" ");
    line(out, "  Volume:", plugins("Volume"));
    line(out, "  Network:", plugins("Network"));
    let authorization = plugins("Authorization");
    if !authorization.is_empty() {
        line(out, "  Authorization:", authorization);
    }
    line(out, "  Log:", plugins("Log"));
    let cdi = strings(info.get("CDISpecDirs"));
    if !cdi.is_empty() {
        out.push_str(" CDI spec directories:\n");
        for dir in cdi {
            out.push_str(&format!("  {dir}\n"));
        }
    }
    let devices = info
        .get("DiscoveredDevices")
        .map(Json::items)
        .unwrap_or(&[]);
    if !devices.is_empty() {
        out.push_str(" Discovered Devices:\n");
        for d in devices {
            out.push_str(&format!(
                "  {}: {}\n",
                d.get("Source").map(Json::go_text).unwrap_or_default(),
                d.get("ID").map(Json::go_text).unwrap_or_default()
            ));
        }
    }
    let swarm = |k: &str| {
        info.path(&["Swarm", k])
            .map(Json::go_text)
            .unwrap_or_default()
    };
    let state = swarm("LocalNodeState");
    line(out, " Swarm:", state.clone());
    if state != "inactive" && state != "locked" {
        line(out, "  NodeID:", swarm("NodeID"));
        if !swarm("Error").is_empty() {
            line(out, "  Error:", swarm("Error"));
        }
        line(out, "  Is Manager:", swarm("ControlAvailable"));
        line(out, "  Node Address:", swarm("NodeAddr"));
    }
    let runtimes: Vec<&str> = info
        .get("Runtimes")
        .map(Json::fields)
        .unwrap_or(&[])
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    if !runtimes.is_empty() {
        line(out, " Runtimes:", runtimes.join(" "));
        line(out, " Default Runtime:", v("DefaultRuntime"));
    }
    if v("OSType") == "linux" {
        line(out, " Init Binary:", v("InitBinary"));
        let commit = |k: &str| info.path(&[k, "ID"]).map(Json::go_text).unwrap_or_default();
        line(out, " containerd version:", commit("ContainerdCommit"));
        line(out, " runc version:", commit("RuncCommit"));
        line(out, " init version:", commit("InitCommit"));
        let options = strings(info.get("SecurityOptions"));
        if !options.is_empty() {
            out.push_str(" Security Options:\n");
            for option in options {
                for part in option.split(',') {
                    match part.split_once('=') {
                        Some(("name", name)) => out.push_str(&format!("  {name}\n")),
                        Some(("profile", profile)) => {
                            out.push_str(&format!("   Profile: {profile}\n"))
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    if v("OSType") == "windows" {
        line(out, " Default Isolation:", v("Isolation"));
    }
    nonempty(out, " Kernel Version:", v("KernelVersion"));
    nonempty(out, " Operating System:", v("OperatingSystem"));
    nonempty(out, " OSType:", v("OSType"));
    nonempty(out, " Architecture:", v("Architecture"));
    line(out, " CPUs:", int("NCPU"));
    line(
        out,
        " Total Memory:",
        bytes_size(info.get("MemTotal").map_or(0, Json::int) as f64),
    );
    nonempty(out, " Name:", v("Name"));
    nonempty(out, " ID:", v("ID"));
    line(out, " Docker Root Dir:", v("DockerRootDir"));
    let server_debug = info.get("Debug").is_some_and(Json::bool);
    line(out, " Debug Mode:", server_debug.to_string());
    if server_debug || debug {
        line(out, "  File Descriptors:", int("NFd"));
        line(out, "  Goroutines:", int("NGoroutines"));
        line(out, "  System Time:", v("SystemTime"));
        line(out, "  EventsListeners:", int("NEventsListener"));
    }
    nonempty(out, " HTTP Proxy:", v("HttpProxy"));
    nonempty(out, " HTTPS Proxy:", v("HttpsProxy"));
    nonempty(out, " No Proxy:", v("NoProxy"));
    nonempty(out, " Username:", username.to_string());
    let labels = strings(info.get("Labels"));
    if !labels.is_empty() {
        out.push_str(" Labels:\n");
        for label in labels {
            out.push_str(&format!("  {label}\n"));
        }
    }
    line(
        out,
        " Experimental:",
        info.get("ExperimentalBuild")
            .is_some_and(Json::bool)
            .to_string(),
    );
    let registry = info.get("RegistryConfig");
    let cidrs = strings(registry.and_then(|r| r.get("InsecureRegistryCIDRs")));
    let index_configs = registry
        .and_then(|r| r.get("IndexConfigs"))
        .map(Json::fields)
        .unwrap_or(&[]);
    if !cidrs.is_empty() || !index_configs.is_empty() {
        out.push_str(" Insecure Registries:\n");
        for (_, config) in index_configs {
            if !config.get("Secure").is_some_and(Json::bool) {
                out.push_str(&format!(
                    "  {}\n",
                    config.get("Name").map(Json::go_text).unwrap_or_default()
                ));
            }
        }
        for cidr in cidrs {
            out.push_str(&format!("  {cidr}\n"));
        }
    }
    let mirrors = strings(registry.and_then(|r| r.get("Mirrors")));
    if !mirrors.is_empty() {
        out.push_str(" Registry Mirrors:\n");
        for mirror in mirrors {
            out.push_str(&format!("  {mirror}\n"));
        }
    }
    line(
        out,
        " Live Restore Enabled:",
        info.get("LiveRestoreEnabled")
            .is_some_and(Json::bool)
            .to_string(),
    );
    nonempty(out, " Product License:", v("ProductLicense"));
    let pools = info
        .get("DefaultAddressPools")
        .map(Json::items)
        .unwrap_or(&[]);
    if !pools.is_empty() {
        out.push_str(" Default Address Pools:\n");
        for pool in pools {
            out.push_str(&format!(
                "   Base: {}, Size: {}\n",
                pool.get("Base").map(Json::go_text).unwrap_or_default(),
                pool.get("Size").map(Json::go_text).unwrap_or_default()
            ));
        }
    }
    out.push('\n');
    strings(info.get("Warnings"))
}

/// docker's `GetTimestamp`: a duration ("10m") before now, an RFC 3339 date or time (in
/// the local zone when none is given), or a Unix timestamp passed through.
pub fn api_timestamp(value: &str, now: f64, local_offset: i64) -> Result<String> {
    if value != "0" {
        if let Some(seconds) = parse_go_duration(value) {
            return Ok(format!("{}", (now - seconds) as i64));
        }
    }
    let in_location = !value.contains(['z', 'Z', '+']) && value.matches('-').count() != 3;
    match parse_date_time(value, in_location, local_offset) {
        Some((secs, nanos)) => Ok(format!("{secs}.{nanos:09}")),
        None => {
            if value.contains('-') {
                return Err(Error::InvalidArgument(format!(
                    "parsing time \"{value}\": cannot parse as RFC 3339 time"
                )));
            }
            let (s, frac) = value.split_once('.').unwrap_or((value, "0"));
            let valid = !s.is_empty()
                && s.parse::<i64>().is_ok()
                && frac.bytes().all(|b| b.is_ascii_digit())
                && !frac.is_empty();
            if valid {
                Ok(value.to_string())
            } else {
                Err(Error::InvalidArgument(format!(
                    "failed to parse value as time or duration: \"{value}\""
                )))
            }
        }
    }
}

/// Go's `time.ParseDuration`, in seconds.
fn parse_go_duration(s: &str) -> Option<f64> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(if negative { -total } else { total })
}

/// Parses "2006-01-02[T15[:04[:05[.999999999]]]][Z|±07:00]" to Unix seconds and nanos.
fn parse_date_time(value: &str, in_location: bool, local_offset: i64) -> Option<(i64, u32)> {
    let digits = |s: &str| -> Option<i64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let date = value.get(..10)?;
    let (year, month, day) = (
        digits(date.get(..4)?)?,
        digits(date.get(5..7)?)?,
        digits(date.get(8..10)?)?,
    );
    if &date[4..5] != "-"
        || &date[7..8] != "-"
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
    {
        return None;
    }
    let mut rest = &value[10..];
    let (mut hour, mut minute, mut second, mut nanos) = (0, 0, 0, 0u32);
    if let Some(t) = rest.strip_prefix('T') {
        let end = t.find(['Z', 'z', '+', '-']).unwrap_or(t.len());
        let (clock, zone) = t.split_at(end);
        let (clock, frac) = match clock.split_once('.') {
            Some((c, f)) => (c, Some(f)),
            None => (clock, None),
        };
        let parts: Vec<&str> = clock.split(':').collect();
        if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.len() != 2) {
            return None;
        }
        hour = digits(parts[0])?;
        minute = parts.get(1).map_or(Some(0), |p| digits(p))?;
        second = parts.get(2).map_or(Some(0), |p| digits(p))?;
        if let Some(frac) = frac {
            if frac.is_empty() || frac.len() > 9 {
                return None;
            }
            nanos = (digits(frac)? * 10i64.pow(9 - frac.len() as u32)) as u32;
        }
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        rest = zone;
    }
    let offset = if rest.is_empty() {
        if !in_location {
            return None;
        }
        local_offset
    } else if rest == "Z" || rest == "z" {
        0
    } else {
        let sign = match &rest[..1] {
            "+" => 1,
            "-" => -1,
            _ => return None,
        };
        let (h, m) = rest[1..].split_once(':')?;
        sign * (digits(h)? * 3600 + digits(m)? * 60)
    };
    let days = days_from_civil(year, month as u32, day as u32);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some((secs, nanos))
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `events`: prints events as they arrive, until `--until` or interruption.
pub async fn events(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let format = p.string("format");
    let template = match format.as_str() {
        "" => None,
        JSON => Some(Template::parse("{{json .}}")),
        source => Some(Template::parse(source)),
    }
    .transpose()
    .map_err(|e| Error::TemplateStatus(format!("Error parsing format: {e}")))?;
    let now = now_unix();
    let offset = LocalTime::from_unix(now as i64, 0).offset;
    let mut query = Query::new();
    for (flag, key) in [("since", "since"), ("until", "until")] {
        let value = p.string(flag);
        if !value.is_empty() {
            query = query.add(key, api_timestamp(&value, now, offset)?);
        }
    }
    if let Some(f) = filters_json(&p.list("filter")) {
        query = query.add("filters", f);
    }
    let response = cli
        .client()
        .request(
            http::Method::GET,
            "/events",
            &query,
            &[],
            crate::client::empty(),
        )
        .await?;
    let mut body = response.into_body();
    let mut buffer: Vec<u8> = Vec::new();
    let mut stdout = std::io::stdout().lock();
    let write_error = |source| Error::Io {
        operation: "writing events",
        source,
    };
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|source| Error::Transport {
            operation: "reading events",
            source,
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buffer.extend_from_slice(&data);
        let mut stream = serde_json::Deserializer::from_slice(&buffer).into_iter::<Json>();
        let mut consumed = 0;
        let mut events = Vec::new();
        loop {
            match stream.next() {
                Some(Ok(event)) => {
                    consumed = stream.byte_offset();
                    events.push(event);
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(source)) => {
                    return Err(Error::Decode {
                        operation: "events",
                        source,
                    })
                }
                None => {
                    consumed = stream.byte_offset();
                    break;
                }
            }
        }
        buffer.drain(..consumed);
        for event in events {
            let line = match &template {
                Some(t) => format!("{}\n", t.render(&Data::typed(&event, EVENT_MESSAGE))?),
                None => event_line(&event),
            };
            stdout.write_all(line.as_bytes()).map_err(write_error)?;
            stdout.flush().map_err(write_error)?;
        }
    }
    Ok(())
}

/// docker's default event line: time, type, action, actor and sorted attributes.
fn event_line(event: &Json) -> String {
    let mut out = String::new();
    let time_nano = event.get("timeNano").map_or(0, Json::int);
    let time = event.get("time").map_or(0, Json::int);
    if time_nano != 0 {
        let t = LocalTime::from_unix(
            time_nano.div_euclid(1_000_000_000),
            time_nano.rem_euclid(1_000_000_000) as u32,
        );
        out.push_str(&format!("{} ", t.rfc3339_nano_fixed()));
    } else if time != 0 {
        out.push_str(&format!(
            "{} ",
            LocalTime::from_unix(time, 0).rfc3339_nano_fixed()
        ));
    }
    let s = |k: &str| event.get(k).map(Json::str).unwrap_or("");
    out.push_str(&format!(
        "{} {} {}",
        s("Type"),
        s("Action"),
        event.path(&["Actor", "ID"]).map(Json::str).unwrap_or("")
    ));
    let mut attributes: Vec<(String, String)> = event
        .path(&["Actor", "Attributes"])
        .map(Json::fields)
        .unwrap_or(&[])
        .iter()
        .map(|(k, v)| (k.clone(), v.go_text()))
        .collect();
    if !attributes.is_empty() {
        attributes.sort();
        let joined: Vec<String> = attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!(" ({})", joined.join(", ")));
    }
    out.push('\n');
    out
}

/// `system check [--repair]`: berthd's store check. Lists each problem; exits 1 when one
/// is left unrepaired.
pub async fn check(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let query = if p.bool("repair") {
        Query::new().add("repair", "1")
    } else {
        Query::new()
    };
    let response = cli
        .client()
        .request(
            hyper::Method::POST,
            "/system/check",
            &query,
            &[],
            crate::client::empty(),
        )
        .await?;
    let bytes = crate::client::read_body(response).await?;
    if p.string("format") == "json" {
        println!("{}", String::from_utf8_lossy(&bytes).trim_end());
        return Ok(());
    }
    let report = Json::parse(&bytes).map_err(|source| Error::Decode {
        operation: "check report",
        source,
    })?;
    let int = |k: &str| report.get(k).map_or(0, Json::int);
    let mut line = format!(
        "Checked {} blobs, {} layers, {} images",
        int("blobs"),
        int("layers"),
        int("images")
    );
    if int("partial_downloads") > 0 {
        line.push_str(&format!(
            " ({} partial downloads kept for resuming)",
            int("partial_downloads")
        ));
    }
    println!("{line}");
    let problems = report.get("problems").map(Json::items).unwrap_or(&[]);
    let mut unrepaired = 0;
    for problem in problems {
        let what = problem.get("what").map_or("", Json::str);
        let repaired = problem.get("repaired").is_some_and(Json::bool);
        unrepaired += usize::from(!repaired);
        println!(
            "{} {what}",
            if repaired { "repaired:" } else { "problem: " }
        );
    }
    if problems.is_empty() {
        println!("No problems found");
    }
    if int("reclaimed") > 0 {
        println!("Reclaimed {}", human_size(int("reclaimed") as f64));
    }
    if unrepaired > 0 {
        return Err(Error::Stream(format!(
            "{unrepaired} problem(s) left: run `berth system check --repair`"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_like_docker() {
        let now = 1_000_000.0;
        assert_eq!(api_timestamp("10m", now, 0).unwrap(), "999400");
        assert_eq!(api_timestamp("1h30m", now, 0).unwrap(), "994600");
        assert_eq!(api_timestamp("0", now, 0).unwrap(), "0");
        assert_eq!(api_timestamp("1700000000", now, 0).unwrap(), "1700000000");
        assert_eq!(
            api_timestamp("1700000000.5", now, 0).unwrap(),
            "1700000000.5"
        );
        assert_eq!(
            api_timestamp("2026-11-22T20:04:03Z", now, 0).unwrap(),
            "1795377843.000000000"
        );
        assert_eq!(
            api_timestamp("2026-11-22T21:04:03.25+01:00", now, 0).unwrap(),
            "1795377843.250000000"
        );
        assert_eq!(
            api_timestamp("2026-11-22T20:04:03", now, 3600).unwrap(),
            "1795374243.000000000"
        );
        assert_eq!(
            api_timestamp("2026-11-22", now, 0).unwrap(),
            "1795305600.000000000"
        );
        assert!(api_timestamp("yesterday", now, 0).is_err());
        assert!(api_timestamp("2026-13-01", now, 0).is_err());
    }

    #[test]
    fn event_lines() {
        let e = Json::parse(br#"{"status":"tag","id":"sha256:c1","Type":"image","Action":"tag","Actor":{"ID":"sha256:c1","Attributes":{"name":"a:b","b":"x"}},"scope":"local","time":1795377843,"timeNano":1795377843419826396}"#).unwrap();
        let line = event_line(&e);
        assert!(
            line.ends_with(" image tag sha256:c1 (b=x, name=a:b)\n"),
            "{line}"
        );
        let t = Template::parse("{{.Status}} {{.ID}} {{.Actor.ID}} {{json .}}").unwrap();
        let text = t.render(&Data::typed(&e, EVENT_MESSAGE)).unwrap();
        assert!(
            text.starts_with("tag sha256:c1 sha256:c1 {\"status\":\"tag\""),
            "{text}"
        );
    }

    #[test]
    fn version_layout() {
        let client = client_version(Some("1.41"));
        let server = normalize_server_version(
            Json::parse(br#"{"Platform":{"Name":""},"Components":[{"Name":"Engine","Version":"20.10.24","Details":{"ApiVersion":"1.41","Arch":"amd64","BuildTime":"2026-05-07T21:09:36.000000000+00:00","Experimental":"false","GitCommit":"5d6db84","GoVersion":"go1.19.8","MinAPIVersion":"1.12","Os":"linux"}},{"Name":"runc","Version":"1.1.5","Details":{"GitCommit":"abc"}}],"Version":"20.10.24"}"#).unwrap(),
        );
        let text = tabwriter::align(&version_text(&client, Some(&server)), 20, 1);
        assert!(
            text.contains("\n API version:       1.41 (downgraded from 1.45)\n"),
            "{text}"
        );
        assert!(text.contains("\nServer:\n Engine:\n  Version:          20.10.24\n  API version:      1.41 (minimum version 1.12)\n"), "{text}");
        assert!(
            text.contains("  Built:            Thu May  7 21:09:36 2026\n"),
            "{text}"
        );
        assert!(
            text.ends_with(" runc:\n  Version:          1.1.5\n  GitCommit:        abc\n"),
            "{text}"
        );
        let synthesized = normalize_server_version(
            Json::parse(br#"{"Version":"1","ApiVersion":"1.45","MinAPIVersion":"1.24","Os":"linux","Arch":"amd64","Experimental":true}"#).unwrap(),
        );
        assert_eq!(
            synthesized.path(&["Components"]).unwrap().items()[0]
                .path(&["Details", "Experimental"])
                .unwrap()
                .str(),
            "true"
        );
    }

    #[test]
    fn info_layout() {
        let info = Json::parse(br#"{"Containers":0,"ContainersRunning":0,"ContainersPaused":0,"ContainersStopped":0,"Images":1,"Driver":"overlay2","DriverStatus":[["Backing Filesystem","extfs"]],"Plugins":{"Volume":["local"],"Network":["bridge","host"],"Authorization":null,"Log":["json-file"]},"Swarm":{"LocalNodeState":"inactive"},"Runtimes":{"runc":{"path":"runc"}},"DefaultRuntime":"runc","OSType":"linux","InitBinary":"docker-init","ContainerdCommit":{"ID":"c1"},"RuncCommit":{"ID":"r1"},"InitCommit":{"ID":""},"SecurityOptions":["name=seccomp,profile=default"],"NCPU":2,"MemTotal":25276502016,"DockerRootDir":"/var/lib/x","Debug":false,"RegistryConfig":{"InsecureRegistryCIDRs":["127.0.0.0/8"],"IndexConfigs":{}},"LiveRestoreEnabled":false,"Warnings":["WARNING: x"]}"#).unwrap();
        let mut out = String::new();
        let warnings = server_info_text(&info, "", false, &mut out);
        assert_eq!(warnings, vec!["WARNING: x"]);
        assert!(out.starts_with(" Containers: 0\n  Running: 0\n"), "{out}");
        assert!(out.contains(" Storage Driver: overlay2\n  Backing Filesystem: extfs\n"));
        assert!(
            out.contains(" Plugins:\n  Volume: local\n  Network: bridge host\n  Log: json-file\n")
        );
        assert!(out.contains(" Security Options:\n  seccomp\n   Profile: default\n"));
        assert!(out.contains(" Total Memory: 23.54GiB\n"));
        assert!(out.contains(" Insecure Registries:\n  127.0.0.0/8\n"));
        assert!(out.ends_with(" Live Restore Enabled: false\n\n"));
    }
}
