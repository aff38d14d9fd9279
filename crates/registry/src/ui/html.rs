//! The web UI's HTML: escaping, the page layout with its inline CSS, and one function per
//! page. Every value that comes from a request or from stored content goes through
//! [`esc`]; pages have no JavaScript.

use std::fmt::Write as _;
use std::time::SystemTime;

use super::inspect::{Descriptor, ImageConfig, ManifestView, Shape, TagInfo};
use crate::search::SearchResults;

/// Escapes text for HTML element content and double- or single-quoted attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Encodes a query parameter value for a URL.
fn query_value(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `1.5 MiB`: binary units, one decimal.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A size cell: human text, exact bytes in `data-bytes` and the title.
fn size_cell(bytes: u64) -> String {
    format!(r#"<td class="size" data-bytes="{bytes}" title="{bytes} bytes">{}</td>"#, human_size(bytes))
}

/// `<time>` in UTC, or a dash when unknown.
fn time(t: Option<SystemTime>) -> String {
    match t {
        Some(t) => {
            let rfc = humantime::format_rfc3339_seconds(t).to_string();
            let shown = rfc.replacen('T', " ", 1).replace('Z', " UTC");
            format!(r#"<time datetime="{}">{}</time>"#, esc(&rfc), esc(&shown))
        }
        None => "–".to_string(),
    }
}

fn repo_link(name: &str) -> String {
    format!("/ui/r/{}", esc(name))
}

fn manifest_link(name: &str, digest: &str) -> String {
    format!("/ui/r/{}/m/{}", esc(name), esc(digest))
}

const STYLE: &str = "\
*{box-sizing:border-box}\
body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1c2430;background:#f5f7fa}\
a{color:#0b5cad;text-decoration:none}a:hover{text-decoration:underline}\
header{display:flex;gap:1.5rem;align-items:center;padding:.7rem 2rem;background:#14324f;color:#fff}\
header a{color:#fff}.brand{font-weight:700;font-size:1.1rem}\
header form{flex:1;display:flex;gap:.4rem;max-width:36rem}\
header input{flex:1;padding:.4rem .6rem;border:0;border-radius:4px;font:inherit}\
header button{padding:.4rem .9rem;border:0;border-radius:4px;background:#3d8bd9;color:#fff;font:inherit;cursor:pointer}\
.who{margin-left:auto;font-size:.9rem;opacity:.9}\
main{max-width:78rem;margin:0 auto;padding:1.2rem 2rem 3rem}\
h1{font-size:1.5rem;margin:.4rem 0 .8rem;word-break:break-all}h2{font-size:1.15rem;margin:1.6rem 0 .5rem}\
.crumbs{font-size:.9rem;color:#5a6573}\
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid #dde3ea;border-radius:6px}\
th,td{text-align:left;padding:.45rem .7rem;border-bottom:1px solid #e8edf2;vertical-align:top}\
th{background:#eef2f6;font-size:.85rem;color:#3c4856;font-weight:600}\
td.size{white-space:nowrap;text-align:right}th.size{text-align:right}\
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.82rem}\
td code{word-break:break-all}\
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1.2rem;background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:.8rem 1rem;margin:0}\
dl.facts dt{font-weight:600;color:#3c4856}dl.facts dd{margin:0;word-break:break-all}\
ul.plain{margin:0;padding-left:1.1rem}\
ol.history{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:.6rem 1rem .6rem 2.4rem;margin:0}\
ol.history li{padding:.15rem 0}ol.history code{white-space:pre-wrap;word-break:break-all}\
pre{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:.8rem;overflow:auto}\
.pager{margin-top:.8rem;display:flex;gap:1rem;align-items:center}\
.muted{color:#5a6573}.pull code{background:#fff;border:1px solid #dde3ea;border-radius:4px;padding:.2rem .4rem}\
.platform{display:inline-block;background:#e4eef8;border-radius:3px;padding:0 .35rem;margin:0 .25rem .15rem 0;font-size:.82rem}\
dl.run-config{margin-top:.6rem}table.labels th,table.annotations th{width:30%;word-break:break-all}\
details{margin-top:1.4rem}summary{cursor:pointer;font-weight:600}\
";

/// Who is looking, for the header.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    pub user: Option<String>,
    /// Whether the registry has logins (so an anonymous viewer is offered one).
    pub can_log_in: bool,
}

/// A whole page around `body`.
pub fn layout(title: &str, viewer: &Viewer, query: &str, body: &str) -> String {
    let who = match (&viewer.user, viewer.can_log_in) {
        (Some(user), _) => format!(r#"<span class="who">signed in as <b>{}</b></span>"#, esc(user)),
        (None, true) => r#"<span class="who"><a href="/ui/login">Log in</a></span>"#.to_string(),
        (None, false) => String::new(),
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · berth-registry</title><style>{STYLE}</style></head>
<body><header><a class="brand" href="/ui/">berth-registry</a>
<form class="search" method="get" action="/ui/"><input type="search" name="q" value="{query}" placeholder="Search repositories" aria-label="Search repositories"><button type="submit">Search</button></form>
{who}</header>
<main>
{body}
</main></body></html>
"#,
        title = esc(title),
        query = esc(query),
    )
}

/// Previous/next links for page `page` of `pages`; `link(n)` is the URL of page n
/// (already escaped).
fn pager(page: usize, pages: usize, link: impl Fn(usize) -> String) -> String {
    if pages <= 1 {
        return String::new();
    }
    let mut out = String::from(r#"<nav class="pager">"#);
    if page > 1 {
        let _ = write!(out, r#"<a rel="prev" href="{}">← Previous</a>"#, link(page - 1));
    }
    let _ = write!(out, r#"<span class="muted">Page {page} of {pages}</span>"#);
    if page < pages {
        let _ = write!(out, r#"<a rel="next" href="{}">Next →</a>"#, link(page + 1));
    }
    out.push_str("</nav>");
    out
}

/// The home page: the repository list, or search results when there is a query.
pub fn home(viewer: &Viewer, results: &SearchResults) -> String {
    let query = results.query.as_str();
    let mut body = String::new();
    if query.is_empty() {
        body.push_str("<h1>Repositories</h1>");
    } else {
        let _ = write!(body, "<h1>Repositories matching “{}”</h1>", esc(query));
    }
    let count = match results.num_results {
        1 => "1 repository".to_string(),
        n => format!("{n} repositories"),
    };
    let _ = write!(body, r#"<p class="muted count">{count}</p>"#);
    if results.results.is_empty() {
        let hint = if viewer.user.is_none() && viewer.can_log_in {
            r#" <a href="/ui/login">Log in</a> to see the repositories you may pull."#
        } else {
            ""
        };
        let none = if query.is_empty() { "No repositories here yet.".to_string() } else { format!("No repository matches “{}”.", esc(query)) };
        let _ = write!(body, r#"<p class="empty">{none}{hint}</p>"#);
    } else {
        body.push_str(r#"<table class="repos"><thead><tr><th>Repository</th><th>Description</th></tr></thead><tbody>"#);
        for r in &results.results {
            let _ = write!(
                body,
                r#"<tr data-repo="{name}"><td class="name"><a href="{link}">{name}</a></td><td class="description">{desc}</td></tr>"#,
                name = esc(&r.name),
                link = repo_link(&r.name),
                desc = esc(&r.description),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str(&pager(results.page, results.num_pages, |n| {
        if query.is_empty() {
            format!("/ui/?page={n}")
        } else {
            esc(&format!("/ui/?q={}&page={n}", query_value(query)))
        }
    }));
    let title = if query.is_empty() { "Repositories".to_string() } else { format!("Search: {query}") };
    layout(&title, viewer, query, &body)
}

/// What the repository page shows.
pub struct RepositoryPage<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    /// The `Host` the viewer reached the registry by, for the pull command.
    pub host: Option<&'a str>,
    pub tags: &'a [TagInfo],
    pub total_tags: usize,
    pub page: usize,
    pub pages: usize,
}

/// A repository's tags.
pub fn repository(viewer: &Viewer, p: &RepositoryPage<'_>) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<nav class="crumbs"><a href="/ui/">Repositories</a> / {name}</nav><h1>{name}</h1>"#,
        name = esc(p.name)
    );
    if let Some(d) = p.description {
        let _ = write!(body, r#"<p class="description">{}</p>"#, esc(d));
    }
    if let (Some(host), Some(first)) = (p.host, p.tags.first()) {
        let _ = write!(body, r#"<p class="pull"><code>docker pull {}/{}:{}</code></p>"#, esc(host), esc(p.name), esc(&first.tag));
    }
    let count = match p.total_tags {
        1 => "1 tag".to_string(),
        n => format!("{n} tags"),
    };
    let _ = write!(body, r#"<h2>Tags</h2><p class="muted">{count}</p>"#);
    if !p.tags.is_empty() {
        body.push_str(r#"<table class="tags"><thead><tr><th>Tag</th><th>Digest</th><th class="size">Size</th><th>Pushed</th><th>Platforms</th></tr></thead><tbody>"#);
        for t in p.tags {
            let platforms: String = t.platforms.iter().map(|p| format!(r#"<span class="platform">{}</span>"#, esc(p))).collect();
            let _ = write!(
                body,
                r#"<tr data-tag="{tag}"><td class="tag"><b>{tag}</b></td><td class="digest"><a href="{link}"><code>{digest}</code></a><br><span class="muted">{media}</span></td>{size}<td class="pushed">{pushed}</td><td class="platforms">{platforms}</td></tr>"#,
                tag = esc(&t.tag),
                link = manifest_link(p.name, &t.digest),
                digest = esc(&t.digest),
                media = esc(&t.media_type),
                size = size_cell(t.size),
                pushed = time(t.pushed),
            );
        }
        body.push_str("</tbody></table>");
    }
    let name = p.name;
    body.push_str(&pager(p.page, p.pages, |n| format!("{}?page={n}", repo_link(name))));
    layout(p.name, viewer, "", &body)
}

/// What the manifest page shows.
pub struct ManifestPage<'a> {
    pub name: &'a str,
    pub view: &'a ManifestView,
    pub tags: &'a [String],
    pub pushed: Option<SystemTime>,
    /// The image size (config and layers), or for an index that of its images.
    pub total_size: u64,
    /// For an index: each entry's image size, in order.
    pub child_sizes: &'a [u64],
    pub config: Option<&'a ImageConfig>,
    /// Why the config is not shown, when it is not.
    pub config_note: Option<&'a str>,
    pub pretty: &'a str,
}

fn json_list(items: &Option<Vec<String>>) -> String {
    match items {
        Some(items) => format!("<code>{}</code>", esc(&serde_json::to_string(items).unwrap_or_default())),
        None => r#"<span class="muted">none</span>"#.to_string(),
    }
}

fn map_table(class: &str, map: &std::collections::BTreeMap<String, String>) -> String {
    let mut out = format!(r#"<table class="{class}"><tbody>"#);
    for (k, v) in map {
        let _ = write!(out, r#"<tr><th><code>{}</code></th><td>{}</td></tr>"#, esc(k), esc(v));
    }
    out.push_str("</tbody></table>");
    out
}

fn descriptor_row(label: &str, d: &Descriptor) -> String {
    format!(
        r#"<tr><td class="muted">{label}</td><td class="digest"><code>{digest}</code></td>{size}<td class="media-type">{media}</td></tr>"#,
        digest = esc(&d.digest),
        size = size_cell(d.size),
        media = esc(&d.media_type),
    )
}

/// One manifest: an image's config and layers, or an index's entries.
pub fn manifest(viewer: &Viewer, p: &ManifestPage<'_>) -> String {
    let v = p.view;
    let digest = v.digest.to_string();
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<nav class="crumbs"><a href="/ui/">Repositories</a> / <a href="{link}">{name}</a> / manifest</nav><h1>{name}@{digest}</h1>"#,
        link = repo_link(p.name),
        name = esc(p.name),
        digest = esc(&digest),
    );
    body.push_str(r#"<dl class="facts">"#);
    let _ = write!(body, r#"<dt>Digest</dt><dd class="digest"><code>{}</code></dd>"#, esc(&digest));
    let _ = write!(body, r#"<dt>Media type</dt><dd class="media-type">{}</dd>"#, esc(&v.media_type));
    if let Some(t) = &v.artifact_type {
        let _ = write!(body, r#"<dt>Artifact type</dt><dd>{}</dd>"#, esc(t));
    }
    let _ = write!(body, r#"<dt>Manifest size</dt><dd data-bytes="{n}">{n} bytes</dd>"#, n = v.body.len());
    let _ = write!(
        body,
        r#"<dt>Total size</dt><dd class="total-size" data-bytes="{n}" title="{n} bytes">{}</dd>"#,
        human_size(p.total_size),
        n = p.total_size
    );
    let _ = write!(body, r#"<dt>Pushed</dt><dd>{}</dd>"#, time(p.pushed));
    let tags = if p.tags.is_empty() {
        r#"<span class="muted">untagged</span>"#.to_string()
    } else {
        p.tags.iter().map(|t| format!(r#"<span class="platform">{}</span>"#, esc(t))).collect()
    };
    let _ = write!(body, r#"<dt>Tags</dt><dd class="tags">{tags}</dd>"#);
    if let Some(c) = p.config {
        if let Some(platform) = &c.platform {
            let _ = write!(body, r#"<dt>Platform</dt><dd class="platform-of">{}</dd>"#, esc(platform));
        }
        if let Some(created) = &c.created {
            let _ = write!(body, r#"<dt>Created</dt><dd>{}</dd>"#, esc(created));
        }
    }
    body.push_str("</dl>");

    match &v.shape {
        Shape::Image { config, layers } => {
            body.push_str(r#"<h2>Config</h2><table class="config-blob"><thead><tr><th></th><th>Digest</th><th class="size">Size</th><th>Media type</th></tr></thead><tbody>"#);
            body.push_str(&descriptor_row("config", config));
            body.push_str("</tbody></table>");
            match p.config {
                Some(c) => {
                    body.push_str(r#"<dl class="facts run-config">"#);
                    let _ = write!(body, r#"<dt>Entrypoint</dt><dd class="entrypoint">{}</dd>"#, json_list(&c.entrypoint));
                    let _ = write!(body, r#"<dt>Cmd</dt><dd class="cmd">{}</dd>"#, json_list(&c.cmd));
                    if let Some(w) = &c.working_dir {
                        let _ = write!(body, r#"<dt>Working dir</dt><dd><code>{}</code></dd>"#, esc(w));
                    }
                    if let Some(u) = &c.user {
                        let _ = write!(body, r#"<dt>User</dt><dd><code>{}</code></dd>"#, esc(u));
                    }
                    body.push_str(r#"<dt>Env</dt><dd><ul class="plain env">"#);
                    for e in &c.env {
                        let _ = write!(body, "<li><code>{}</code></li>", esc(e));
                    }
                    body.push_str("</ul></dd></dl>");
                    body.push_str("<h2>Labels</h2>");
                    if c.labels.is_empty() {
                        body.push_str(r#"<p class="muted">No labels.</p>"#);
                    } else {
                        body.push_str(&map_table("labels", &c.labels));
                    }
                }
                None => {
                    let _ = write!(body, r#"<p class="muted config-note">{}</p>"#, esc(p.config_note.unwrap_or("")));
                }
            }
            let _ = write!(body, "<h2>Layers</h2>");
            body.push_str(r#"<table class="layers"><thead><tr><th>#</th><th>Digest</th><th class="size">Size</th><th>Media type</th></tr></thead><tbody>"#);
            for (i, l) in layers.iter().enumerate() {
                body.push_str(&descriptor_row(&(i + 1).to_string(), l));
            }
            body.push_str("</tbody></table>");
            if let Some(c) = p.config.filter(|c| !c.history.is_empty()) {
                body.push_str(r#"<h2>History</h2><ol class="history">"#);
                for h in &c.history {
                    let _ = write!(body, "<li><code>{}</code></li>", esc(h));
                }
                body.push_str("</ol>");
            }
        }
        Shape::Index { manifests } => {
            body.push_str(r#"<h2>Manifests</h2><table class="children"><thead><tr><th>Platform</th><th>Digest</th><th class="size">Size</th><th>Media type</th></tr></thead><tbody>"#);
            for (i, m) in manifests.iter().enumerate() {
                let size = p.child_sizes.get(i).copied().unwrap_or(0);
                let _ = write!(
                    body,
                    r#"<tr><td class="platform-of">{platform}</td><td class="digest"><a href="{link}"><code>{digest}</code></a></td>{size}<td class="media-type">{media}</td></tr>"#,
                    platform = esc(m.platform.as_deref().unwrap_or("–")),
                    link = manifest_link(p.name, &m.digest),
                    digest = esc(&m.digest),
                    size = size_cell(size),
                    media = esc(&m.media_type),
                );
            }
            body.push_str("</tbody></table>");
        }
    }
    if !v.annotations.is_empty() {
        body.push_str("<h2>Annotations</h2>");
        body.push_str(&map_table("annotations", &v.annotations));
    }
    let _ = write!(body, r#"<details><summary>Manifest JSON</summary><pre class="raw">{}</pre></details>"#, esc(p.pretty));
    layout(&format!("{}@{}", p.name, digest), viewer, "", &body)
}

/// An error page.
pub fn error(viewer: &Viewer, status: http::StatusCode, message: &str) -> String {
    let body = format!(
        r#"<h1>{} {}</h1><p class="error">{}</p><p><a href="/ui/">Back to the repositories</a></p>"#,
        status.as_u16(),
        esc(status.canonical_reason().unwrap_or("")),
        esc(message)
    );
    layout(status.canonical_reason().unwrap_or("Error"), viewer, "", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(esc(r#"<script>alert("x" & 'y')</script>"#), "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;");
        let page = layout("<t>", &Viewer { user: Some("<u>".into()), can_log_in: true }, "\"><script>", "");
        assert!(!page.contains("<script>") && !page.contains("<t>") && !page.contains("<u>"), "{page}");
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(100 << 20), "100.0 MiB");
    }

    #[test]
    fn pager_links() {
        let r = SearchResults { num_pages: 3, num_results: 7, page: 2, page_size: 3, query: "a&b".into(), results: vec![] };
        let page = home(&Viewer::default(), &r);
        assert!(page.contains(r#"href="/ui/?q=a%26b&amp;page=1""#), "{page}");
        assert!(page.contains(r#"href="/ui/?q=a%26b&amp;page=3""#), "{page}");
    }
}
