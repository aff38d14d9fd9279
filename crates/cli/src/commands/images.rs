//! Local image commands: `images`, `inspect`, `history`, `tag`, `rmi`, `image prune`.

use std::io::Write;

use bollard_stubs::models::{HistoryResponseItem, ImageDeleteResponseItem, ImagePruneResponse};
use http::Method;
use serde::Deserialize;

use super::{filters_json, platform_json, require_api};
use crate::cli::Cli;
use crate::client::{empty, escape_path, read_body, Query};
use crate::error::{Error, Result};
use crate::flags::{Parsed, BIN};
use crate::format::json::{compact, indent, Json};
use crate::format::template::{Data, Template};
use crate::format::typed::IMAGE_INSPECT;
use crate::format::units::{human_since, human_size, human_size_with_precision, LocalTime};
use crate::format::{ellipsis, render_rows, truncate_id, TABLE};
use crate::reference::{self, Reference};

/// An entry of `GET /images/json`; missing fields take docker's "unknown" values.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ImageSummary {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "RepoTags")]
    pub repo_tags: Option<Vec<String>>,
    #[serde(rename = "RepoDigests")]
    pub repo_digests: Option<Vec<String>>,
    #[serde(rename = "Created")]
    pub created: i64,
    #[serde(rename = "Size")]
    pub size: i64,
    #[serde(rename = "SharedSize")]
    pub shared_size: i64,
    #[serde(rename = "Containers")]
    pub containers: i64,
}

impl Default for ImageSummary {
    fn default() -> ImageSummary {
        ImageSummary {
            id: String::new(),
            repo_tags: None,
            repo_digests: None,
            created: 0,
            size: 0,
            shared_size: -1,
            containers: -1,
        }
    }
}

impl ImageSummary {
    fn tags(&self) -> &[String] {
        self.repo_tags.as_deref().unwrap_or(&[])
    }

    fn digests(&self) -> &[String] {
        self.repo_digests.as_deref().unwrap_or(&[])
    }

    /// Untagged and undigested, or carrying docker's `<none>` placeholders.
    pub fn is_dangling(&self) -> bool {
        let (tags, digests) = (self.tags(), self.digests());
        (tags.is_empty() && digests.is_empty())
            || (tags == ["<none>:<none>"] && digests == ["<none>@<none>"])
    }
}

const DEFAULT_IMAGE_TABLE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}";
const DEFAULT_IMAGE_TABLE_WITH_DIGEST: &str = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}";

/// Column titles of image rows.
pub fn image_header() -> Data {
    Data::header(&[
        ("ID", "IMAGE ID"),
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("Digest", "DIGEST"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("Size", "SIZE"),
        ("Containers", "CONTAINERS"),
        ("VirtualSize", "SIZE"),
        ("SharedSize", "SHARED SIZE"),
        ("UniqueSize", "UNIQUE SIZE"),
    ])
}

/// docker's `NewImageFormat`.
fn image_format(source: &str, quiet: bool, digest: bool) -> String {
    match source {
        TABLE if quiet => "{{.ID}}".to_string(),
        TABLE if digest => DEFAULT_IMAGE_TABLE_WITH_DIGEST.to_string(),
        TABLE => DEFAULT_IMAGE_TABLE.to_string(),
        "raw" if quiet => "image_id: {{.ID}}".to_string(),
        "raw" if digest => "repository: {{ .Repository }}\ntag: {{.Tag}}\ndigest: {{.Digest}}\nimage_id: {{.ID}}\ncreated_at: {{.CreatedAt}}\nvirtual_size: {{.Size}}\n".to_string(),
        "raw" => "repository: {{ .Repository }}\ntag: {{.Tag}}\nimage_id: {{.ID}}\ncreated_at: {{.CreatedAt}}\nvirtual_size: {{.Size}}\n".to_string(),
        _ if crate::format::is_table(source) && digest && !source.contains("{{.Digest}}") => {
            format!("{source}\t{{{{.Digest}}}}")
        }
        _ => source.to_string(),
    }
}

/// One row of the image table (docker's `imageContext`).
pub fn image_row(image: &ImageSummary, repo: &str, tag: &str, digest: &str, trunc: bool) -> Data {
    let id = if trunc {
        truncate_id(&image.id)
    } else {
        image.id.clone()
    };
    let shared = if image.shared_size == -1 {
        "N/A".to_string()
    } else {
        human_size(image.shared_size as f64)
    };
    let unique = if image.size == -1 || image.shared_size == -1 {
        "N/A".to_string()
    } else {
        human_size((image.size - image.shared_size) as f64)
    };
    let containers = if image.containers == -1 {
        "N/A".to_string()
    } else {
        image.containers.to_string()
    };
    Data::from_fields(&[
        ("ID", id),
        ("Repository", repo.to_string()),
        ("Tag", tag.to_string()),
        ("Digest", digest.to_string()),
        ("CreatedSince", human_since(image.created)),
        (
            "CreatedAt",
            LocalTime::from_unix(image.created, 0).go_string(),
        ),
        ("Size", human_size_with_precision(image.size as f64, 3)),
        ("Containers", containers),
        ("VirtualSize", human_size(image.size as f64)),
        ("SharedSize", shared),
        ("UniqueSize", unique),
    ])
}

/// docker's `imageFormat`: a row per repository and tag (and digest when shown).
fn image_rows(
    images: &[ImageSummary],
    trunc: bool,
    show_digests: bool,
    need_digest: bool,
) -> Vec<Data> {
    let mut rows = Vec::new();
    for image in images {
        if image.is_dangling() {
            rows.push(image_row(image, "<none>", "<none>", "<none>", trunc));
            continue;
        }
        // Repositories in order of first appearance; docker iterates a Go map here.
        let mut tags: Vec<(String, Vec<String>)> = Vec::new();
        let mut digests: Vec<(String, Vec<String>)> = Vec::new();
        let push = |list: &mut Vec<(String, Vec<String>)>, repo: String, value: String| match list
            .iter_mut()
            .find(|(r, _)| *r == repo)
        {
            Some((_, values)) => values.push(value),
            None => list.push((repo, vec![value])),
        };
        for tagged in image.tags() {
            if let Ok(r) = Reference::parse_normalized(tagged) {
                if let Some(tag) = r.tag() {
                    push(&mut tags, r.familiar_name(), tag.to_string());
                }
            }
        }
        for digested in image.digests() {
            if let Ok(r) = Reference::parse_normalized(digested) {
                if let Some(d) = r.digest() {
                    push(&mut digests, r.familiar_name(), d.to_string());
                }
            }
        }
        for (repo, repo_tags) in &tags {
            let repo_digests = match digests.iter().position(|(r, _)| r == repo) {
                Some(i) => digests.remove(i).1,
                None => Vec::new(),
            };
            let repo_digests = if need_digest {
                repo_digests
            } else {
                Vec::new()
            };
            for tag in repo_tags {
                if repo_digests.is_empty() {
                    rows.push(image_row(image, repo, tag, "<none>", trunc));
                }
                for d in &repo_digests {
                    rows.push(image_row(image, repo, tag, d, trunc));
                }
            }
        }
        for (repo, repo_digests) in &digests {
            if show_digests {
                for d in repo_digests {
                    rows.push(image_row(image, repo, "<none>", d, trunc));
                }
            } else {
                rows.push(image_row(image, repo, "<none>", "", trunc));
            }
        }
    }
    rows
}

/// `images` / `image ls`.
pub async fn list(cli: &mut Cli, p: &Parsed, called_as_images: bool) -> Result<()> {
    let mut filters = p.list("filter");
    let match_name = p.args.first().cloned().unwrap_or_default();
    if !match_name.is_empty() {
        filters.push(format!("reference={match_name}"));
    }
    let mut query = Query::new();
    if let Some(f) = filters_json(&filters) {
        query = query.add("filters", f);
    }
    if p.bool("all") {
        query = query.add("all", "1");
    }
    let images: Vec<ImageSummary> = cli
        .client()
        .get_json("/images/json", &query, "image list")
        .await?;
    let quiet = p.bool("quiet");
    let mut format = p.string("format");
    if format.is_empty() {
        format = match cli.configs()?.berth.images_format() {
            Some(f) if !quiet => f.to_string(),
            _ => TABLE.to_string(),
        };
    }
    let show_digests = p.bool("digests");
    let format = image_format(&format, quiet, show_digests);
    let need_digest = show_digests || format.contains("{{.Digest}}");
    let rows = image_rows(&images, !p.bool("no-trunc"), show_digests, need_digest);
    let text = render_rows(&format, &image_header(), &rows)?;
    print_out(&text)?;
    if !match_name.is_empty() && images.is_empty() && called_as_images {
        ambiguous_hint(&match_name);
    }
    Ok(())
}

fn ambiguous_hint(name: &str) {
    const SUBCOMMANDS: [&str; 13] = [
        "build", "history", "import", "inspect", "list", "load", "ls", "prune", "pull", "push",
        "rm", "save", "tag",
    ];
    if SUBCOMMANDS.contains(&name) {
        eprintln!("\nNo images found matching \"{name}\": did you mean \"{BIN} image {name}\"?");
    }
}

/// Writes command output to standard output.
pub fn print_out(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|source| Error::Io {
            operation: "writing output",
            source,
        })
}

/// `image inspect`: the raw JSON indented, compact, or through a template.
pub async fn inspect(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let format = p.string("format");
    let template = match format.as_str() {
        "" | "json" => None,
        source => Some(
            Template::parse(source)
                .map_err(|e| Error::TemplateStatus(format!("template parsing error: {e}")))?,
        ),
    };
    let mut query = Query::new();
    let platform = p.string("platform");
    if !platform.is_empty() {
        require_api(cli, "1.49", "--platform").await?;
        query = query.add("platform", platform_json(&platform)?);
    }
    let mut raws: Vec<Vec<u8>> = Vec::new();
    let mut errors: Vec<Error> = Vec::new();
    let mut output = String::new();
    for name in &p.args {
        let path = format!("/images/{}/json", escape_path(name));
        let raw = match cli.client().get_bytes(&path, &query).await {
            Ok(raw) => raw,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        match &template {
            None => raws.push(raw.to_vec()),
            Some(template) => {
                let rendered = Json::parse(&raw)
                    .map_err(|source| Error::Decode {
                        operation: "inspect data",
                        source,
                    })
                    .and_then(|doc| {
                        // docker runs the template over its Go struct first and over the
                        // raw JSON only when that fails.
                        template
                            .render(&Data::typed(&doc, IMAGE_INSPECT))
                            .or_else(|_| template.render(&Data::raw(&doc)))
                            .map_err(|e| {
                                Error::InvalidArgument(format!("template parsing error: {e}"))
                            })
                    });
                match rendered {
                    Ok(text) => {
                        output.push_str(&text);
                        output.push('\n');
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    finish_inspect(output, template.is_some(), &raws, &format, errors)
}

const DEFAULT_HISTORY_TABLE: &str =
    "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
const NON_HUMAN_HISTORY_TABLE: &str =
    "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
/// History entries created before 2000-01-01 have no meaningful date.
const EPOCH_2000: i64 = 946_684_800;

/// `history`.
pub async fn history(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let name = &p.args[0];
    let mut query = Query::new();
    let platform = p.string("platform");
    if !platform.is_empty() {
        require_api(cli, "1.48", "--platform").await?;
        query = query.add("platform", platform_json(&platform)?);
    }
    let items: Vec<HistoryResponseItem> = cli
        .client()
        .get_json(
            &format!("/images/{}/history", escape_path(name)),
            &query,
            "image history",
        )
        .await?;
    let human = p.bool_or("human", true);
    let trunc = !p.bool("no-trunc");
    let mut format = p.string("format");
    if format.is_empty() {
        format = TABLE.to_string();
    }
    if format == TABLE {
        format = if p.bool("quiet") {
            "{{.ID}}"
        } else if human {
            DEFAULT_HISTORY_TABLE
        } else {
            NON_HUMAN_HISTORY_TABLE
        }
        .to_string();
    }
    let rows: Vec<Data> = items
        .iter()
        .map(|h| {
            let created_at = LocalTime::from_unix(h.created, 0).rfc3339();
            let created_since = if !human {
                created_at.clone()
            } else if h.created <= EPOCH_2000 {
                "N/A".to_string()
            } else {
                human_since(h.created)
            };
            let created_by = h.created_by.replace('\t', " ");
            Data::from_fields(&[
                (
                    "ID",
                    if trunc {
                        truncate_id(&h.id)
                    } else {
                        h.id.clone()
                    },
                ),
                ("CreatedSince", created_since),
                ("CreatedAt", created_at),
                (
                    "CreatedBy",
                    if trunc {
                        ellipsis(&created_by, 45)
                    } else {
                        created_by
                    },
                ),
                (
                    "Size",
                    if human {
                        human_size_with_precision(h.size as f64, 3)
                    } else {
                        h.size.to_string()
                    },
                ),
                ("Comment", h.comment.clone()),
            ])
        })
        .collect();
    let header = Data::header(&[
        ("ID", "IMAGE"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("CreatedBy", "CREATED BY"),
        ("Size", "SIZE"),
        ("Comment", "COMMENT"),
    ]);
    print_out(&render_rows(&format, &header, &rows)?)
}

/// `tag`.
pub async fn tag(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let (source, target) = (&p.args[0], &p.args[1]);
    let invalid = |name: &str, e: reference::ReferenceError| {
        Error::InvalidArgument(format!(
            "Error parsing reference: \"{name}\" is not a valid repository/tag: {e}"
        ))
    };
    reference::validate_any(source).map_err(|e| invalid(source, e))?;
    let target_ref = Reference::parse_normalized(target).map_err(|e| invalid(target, e))?;
    if target_ref.digest().is_some() {
        return Err(Error::InvalidArgument(
            "refusing to create a tag with a digest reference".to_string(),
        ));
    }
    let target_ref = target_ref.with_default_tag();
    let query = Query::new()
        .add("repo", target_ref.name())
        .add("tag", target_ref.tag().unwrap_or("latest"));
    let response = cli
        .client()
        .request(
            Method::POST,
            &format!("/images/{}/tag", escape_path(source)),
            &query,
            &[],
            empty(),
        )
        .await?;
    read_body(response).await?;
    Ok(())
}

/// `rmi` / `image rm`.
pub async fn remove(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let force = p.bool("force");
    let mut query = Query::new();
    if force {
        query = query.add("force", "1");
    }
    if p.bool("no-prune") {
        query = query.add("noprune", "1");
    }
    for platform in p.list("platform") {
        require_api(cli, "1.50", "--platform").await?;
        query = query.add("platforms", platform_json(&platform)?);
    }
    let mut errors = Vec::new();
    let mut fatal = false;
    for name in &p.args {
        let path = format!("/images/{}", escape_path(name));
        let result = async {
            let response = cli
                .client()
                .request(Method::DELETE, &path, &query, &[], empty())
                .await?;
            let body = read_body(response).await?;
            serde_json::from_slice::<Vec<ImageDeleteResponseItem>>(&body).map_err(|source| {
                Error::Decode {
                    operation: "image remove",
                    source,
                }
            })
        }
        .await;
        match result {
            Ok(deleted) => {
                let mut text = String::new();
                for item in deleted {
                    match (item.deleted, item.untagged) {
                        (Some(d), _) if !d.is_empty() => text.push_str(&format!("Deleted: {d}\n")),
                        (_, u) => text.push_str(&format!("Untagged: {}\n", u.unwrap_or_default())),
                    }
                }
                print_out(&text)?;
            }
            Err(e) => {
                if !e.is_not_found() {
                    fatal = true;
                }
                errors.push(e);
            }
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    let error = if errors.len() == 1 {
        errors.remove(0)
    } else {
        Error::Multiple(errors)
    };
    if !force || fatal {
        return Err(error);
    }
    eprintln!("{error}");
    Ok(())
}

/// `image prune`.
pub async fn prune(cli: &mut Cli, p: &Parsed) -> Result<()> {
    let all = p.bool("all");
    let mut filters = p.list("filter");
    filters.push(format!("dangling={}", !all));
    let filters = super::prune_filters(cli, filters)?;
    let warning = if all {
        "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?"
    } else {
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
    };
    let body = super::confirm_and_prune(cli, p.bool("force"), warning, "/images/prune", &filters).await?;
    let report: ImagePruneResponse =
        serde_json::from_slice(&body).map_err(|source| Error::Decode {
            operation: "image prune",
            source,
        })?;
    let deleted = report.images_deleted.unwrap_or_default();
    let mut text = String::new();
    let mut reclaimed = 0;
    if !deleted.is_empty() {
        text.push_str("Deleted Images:\n");
        for item in deleted {
            match (item.untagged, item.deleted) {
                (Some(u), _) if !u.is_empty() => text.push_str(&format!("untagged: {u}\n")),
                (_, d) => text.push_str(&format!("deleted: {}\n", d.unwrap_or_default())),
            }
        }
        text.push('\n');
        reclaimed = report.space_reclaimed.unwrap_or(0);
    }
    text.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(reclaimed as f64)
    ));
    print_out(&text)
}

/// The end of every `inspect`: docker prints the rendered templates, or the objects found
/// as one JSON array (indented unless `--format json`), then fails with what was not found.
pub fn finish_inspect(mut output: String, templated: bool, raws: &[Vec<u8>], format: &str, mut errors: Vec<Error>) -> Result<()> {
    if templated {
        if output.is_empty() {
            output.push('\n');
        }
    } else if raws.is_empty() {
        output.push_str("[]\n");
    } else {
        let mut joined = b"[".to_vec();
        for (i, raw) in raws.iter().enumerate() {
            if i > 0 {
                joined.push(b',');
            }
            joined.extend_from_slice(raw);
        }
        joined.push(b']');
        output.push_str(&if format.is_empty() { indent(&joined, "", "    ") } else { compact(&joined) });
        output.push('\n');
    }
    print_out(&output)?;
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Multiple(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(tags: &[&str], digests: &[&str]) -> ImageSummary {
        ImageSummary {
            id: "sha256:c133017346038e208ae46a008f405159497a1c7bca968435d31f8eb1a2c9e4c1".into(),
            repo_tags: Some(tags.iter().map(|s| s.to_string()).collect()),
            repo_digests: Some(digests.iter().map(|s| s.to_string()).collect()),
            created: 0,
            size: 1_986_676,
            shared_size: -1,
            containers: -1,
        }
    }

    fn table(images: &[ImageSummary], format: &str, digests: bool) -> String {
        let format = image_format(format, false, digests);
        let need = digests || format.contains("{{.Digest}}");
        render_rows(
            &format,
            &image_header(),
            &image_rows(images, true, digests, need),
        )
        .unwrap()
    }

    #[test]
    fn rows_per_repository_and_tag() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let images = vec![
            summary(
                &["a:1", "a:2", "127.0.0.1:5000/b:x"],
                &[&format!("a@{digest}")],
            ),
            summary(&[], &[]),
            summary(&[], &[&format!("c@{digest}")]),
        ];
        assert_eq!(
            table(&images, "{{.Repository}} {{.Tag}}", false),
            "a 1\na 2\n127.0.0.1:5000/b x\n<none> <none>\nc <none>\n"
        );
        assert_eq!(
            table(&images, "{{.Repository}} {{.Tag}} {{.Digest}}", true),
            format!("a 1 {digest}\na 2 {digest}\n127.0.0.1:5000/b x <none>\n<none> <none> <none>\nc <none> {digest}\n")
        );
    }

    #[test]
    fn default_table_and_json() {
        let images = vec![summary(&["testimg:v1"], &[])];
        let text = table(&images, TABLE, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "REPOSITORY   TAG       IMAGE ID       CREATED        SIZE"
        );
        assert!(
            lines[1].starts_with("testimg      v1        c13301734603   "),
            "{text}"
        );
        assert!(lines[1].ends_with("   1.99MB"), "{text}");
        let json = table(&images, "{{json .}}", false);
        assert!(
            json.starts_with(r#"{"Containers":"N/A","CreatedAt":"#),
            "{json}"
        );
        assert!(json.contains(r#""Digest":"\u003cnone\u003e","ID":"c13301734603","Repository":"testimg","SharedSize":"N/A","Size":"1.99MB","Tag":"v1","UniqueSize":"N/A","VirtualSize":"1.987MB"}"#), "{json}");
        assert_eq!(
            table(&images, "table {{.ID}}", true).lines().next(),
            Some("IMAGE ID       DIGEST")
        );
    }

    #[test]
    fn dangling_detection() {
        assert!(summary(&[], &[]).is_dangling());
        assert!(summary(&["<none>:<none>"], &["<none>@<none>"]).is_dangling());
        assert!(!summary(&["a:b"], &[]).is_dangling());
    }
}
