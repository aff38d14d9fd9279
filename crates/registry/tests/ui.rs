//! The web UI. In headless Chromium: images pushed with skopeo (an index with two
//! platforms, and an image whose labels and environment hold markup), then the home page,
//! a search, the repositories and their manifests, checked in the DOM Chromium built and
//! saved as screenshots. Over HTTP: access control of the pages with Basic credentials,
//! in Basic and token mode, and bad paths.
//!
//! Needs `chromium` (Debian package), skopeo and python3; tests skip with a message when
//! one is missing. `BERTH_UI_SCREENSHOTS=DIR` keeps a copy of the screenshots in DIR.

mod common;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

const SCRIPT: &str = "<script>alert(1)</script>";
const ESCAPED_SCRIPT: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";

/// Kills a process group when dropped (Chromium starts helper processes).
struct Group(i32);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: signalling the process group of a child this test started.
        unsafe { libc::kill(-self.0, libc::SIGKILL) };
    }
}

/// Headless Chromium with a private profile directory.
struct Chromium {
    program: PathBuf,
    profile: TempDir,
}

impl Chromium {
    fn find() -> Option<Chromium> {
        let program = ["chromium", "chromium-browser"].iter().find_map(|name| {
            std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
        });
        let Some(program) = program else {
            eprintln!("skipping: chromium is not installed (apt-get install chromium)");
            return None;
        };
        Some(Chromium { program, profile: TempDir::new().unwrap() })
    }

    /// Runs Chromium on `url` with `args`; returns stdout. Fails the test after 90 s.
    fn run(&self, args: &[String], url: &str) -> String {
        let out_dir = TempDir::new().unwrap();
        let (stdout, stderr) = (out_dir.path().join("stdout"), out_dir.path().join("stderr"));
        let mut child = Command::new(&self.program)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--hide-scrollbars", "--disable-dev-shm-usage"])
            .arg(format!("--user-data-dir={}", self.profile.path().display()))
            .args(args)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .process_group(0)
            .spawn()
            .expect("starting chromium");
        let _group = Group(child.id() as i32);
        let deadline = Instant::now() + Duration::from_secs(90);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "chromium {url} took longer than 90s: {}", std::fs::read_to_string(&stderr).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "chromium {args:?} {url}: {status}\n{}", std::fs::read_to_string(&stderr).unwrap_or_default());
        std::fs::read_to_string(&stdout).unwrap()
    }

    /// The DOM after loading `url`, serialized.
    fn dom(&self, url: &str) -> String {
        let dom = self.run(&["--dump-dom".to_string()], url);
        assert!(dom.contains("</html>"), "no page from {url}: {dom}");
        dom
    }

    /// A 1280x900 screenshot of `url` in `file`; checks it is a PNG of that size.
    fn screenshot(&self, url: &str, file: &Path) {
        self.run(&[format!("--screenshot={}", file.display()), "--window-size=1280,900".to_string()], url);
        let png = std::fs::read(file).unwrap_or_else(|e| panic!("screenshot of {url}: {e}"));
        assert!(png.len() > 1000 && png.starts_with(b"\x89PNG\r\n\x1a\n"), "screenshot of {url} is not a PNG ({} bytes)", png.len());
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!((width, height), (1280, 900), "screenshot of {url}");
        if let Some(keep) = std::env::var_os("BERTH_UI_SCREENSHOTS") {
            let _ = std::fs::create_dir_all(&keep);
            let _ = std::fs::copy(file, Path::new(&keep).join(file.file_name().unwrap()));
        }
    }
}

/// A file tree with one file, for a one-layer image.
fn layer_dir(work: &Path, name: &str, content: &str) -> PathBuf {
    let dir = work.join(name);
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(dir.join("etc").join(name), content).unwrap();
    dir
}

fn make_image(work: &Path, out: &str, args: &[&str]) -> String {
    run(Command::new("python3").arg(repo_root().join("tests/make-image.py")).arg(work.join(out)).args(args)).trim().to_string()
}

fn blob_json(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(&digest[7..])).unwrap()).unwrap()
}

/// Config plus layer sizes of an image manifest.
fn image_size(manifest: &Value) -> u64 {
    manifest["config"]["size"].as_u64().unwrap() + manifest["layers"].as_array().unwrap().iter().map(|l| l["size"].as_u64().unwrap()).sum::<u64>()
}

fn assert_has(page: &str, what: &str, needle: &str) {
    assert!(page.contains(needle), "{what}: {needle:?} missing in:\n{page}");
}

fn assert_lacks(page: &str, what: &str, needle: &str) {
    assert!(!page.contains(needle), "{what}: {needle:?} present in:\n{page}");
}

#[test]
fn pages_in_headless_chromium() {
    if !have("skopeo", "skopeo") || !have("python3", "python3") {
        return;
    }
    let Some(chromium) = Chromium::find() else { return };
    let reg = Registry::start();
    let work = TempDir::new().unwrap();
    let w = work.path();

    // An index over two platforms, and an image whose labels and environment hold markup.
    let amd = layer_dir(w, "amd", "amd64 layer");
    let arm = layer_dir(w, "arm", "arm64 layer, a little longer");
    let index_digest = make_image(w, "multi", &["--index", &format!("linux/amd64={}", amd.display()), &format!("linux/arm64/v8={}", arm.display())]);
    let config = serde_json::json!({
        "Env": ["PATH=/bin", "GREETING=<b>hi</b>"],
        "Entrypoint": ["/bin/busybox"],
        "Cmd": ["sh", "-c", "echo hi"],
        "Labels": {"org.opencontainers.image.description": format!("{SCRIPT} the web app"), "evil": SCRIPT},
    });
    let image_digest = make_image(w, "web", &["--layer", &amd.to_string_lossy(), "--layer", &arm.to_string_lossy(), "--config-json", &config.to_string()]);
    let dest = |repo: &str| format!("docker://{}/{repo}", reg.addr);
    run(Command::new("skopeo").args(["copy", "-q", "--dest-tls-verify=false", "--all", "--preserve-digests", &format!("oci:{}:latest", w.join("multi").display()), &dest("multi/arch:v1")]));
    for tag in ["v1", "latest"] {
        run(Command::new("skopeo").args(["copy", "-q", "--dest-tls-verify=false", "--preserve-digests", &format!("oci:{}:latest", w.join("web").display()), &dest(&format!("web/app:{tag}"))]));
    }

    // What the pages must show, from the layouts.
    let index = blob_json(&w.join("multi"), &index_digest);
    let children: Vec<(String, String, u64)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let digest = m["digest"].as_str().unwrap().to_string();
            let p = &m["platform"];
            let mut platform = format!("{}/{}", p["os"].as_str().unwrap(), p["architecture"].as_str().unwrap());
            if let Some(v) = p["variant"].as_str() {
                platform = format!("{platform}/{v}");
            }
            let size = image_size(&blob_json(&w.join("multi"), &digest));
            (digest, platform, size)
        })
        .collect();
    let index_size: u64 = children.iter().map(|c| c.2).sum();
    let image = blob_json(&w.join("web"), &image_digest);
    let image_total = image_size(&image);

    let url = |path: &str| reg.url(path);
    let shots = w.join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    // Home (through the redirect from /): both repositories, the description as text.
    let home = chromium.dom(&url("/"));
    for needle in [r#"data-repo="multi/arch""#, r#"data-repo="web/app""#, r#"href="/ui/r/web/app""#, "2 repositories", ESCAPED_SCRIPT] {
        assert_has(&home, "home", needle);
    }
    assert_lacks(&home, "home", "<script");
    chromium.screenshot(&url("/"), &shots.join("home.png"));

    // Search: the form sends GET ?q=, so this URL is what submitting it loads.
    let found = chromium.dom(&url("/ui/?q=ARCH"));
    assert_has(&found, "search", r#"data-repo="multi/arch""#);
    assert_has(&found, "search", r#"value="ARCH""#);
    assert_lacks(&found, "search", r#"data-repo="web/app""#);
    chromium.screenshot(&url("/ui/?q=ARCH"), &shots.join("search.png"));
    let none = chromium.dom(&url("/ui/?q=%3Cscript%3E"));
    assert_has(&none, "search without results", "No repository matches");
    assert_lacks(&none, "search without results", "<script");

    // The index's repository: tag, digest, size of both images, platforms, push time.
    let repo = chromium.dom(&url("/ui/r/multi/arch"));
    for needle in [
        r#"data-tag="v1""#.to_string(),
        index_digest.clone(),
        format!(r#"href="/ui/r/multi/arch/m/{index_digest}""#),
        format!(r#"data-bytes="{index_size}""#),
        "linux/amd64".to_string(),
        "linux/arm64/v8".to_string(),
        "<time datetime=".to_string(),
    ] {
        assert_has(&repo, "multi/arch", &needle);
    }
    chromium.screenshot(&url("/ui/r/multi/arch"), &shots.join("repository.png"));

    // The image's repository: both tags on one digest.
    let repo = chromium.dom(&url("/ui/r/web/app"));
    for needle in [r#"data-tag="latest""#, r#"data-tag="v1""#, &image_digest, &format!(r#"data-bytes="{image_total}""#), ESCAPED_SCRIPT] {
        assert_has(&repo, "web/app", needle);
    }
    assert_lacks(&repo, "web/app", "<script");

    // The index: its entries with platforms and sizes, linking to them.
    let page = chromium.dom(&url(&format!("/ui/r/multi/arch/m/{index_digest}")));
    assert_has(&page, "index", "application/vnd.oci.image.index.v1+json");
    for (digest, platform, size) in &children {
        assert_has(&page, "index", &format!(r#"href="/ui/r/multi/arch/m/{digest}""#));
        assert_has(&page, "index", platform);
        assert_has(&page, "index", &format!(r#"data-bytes="{size}""#));
    }
    chromium.screenshot(&url(&format!("/ui/r/multi/arch/m/{index_digest}")), &shots.join("index.png"));

    // One of its images, as reached by the link.
    let (arm_digest, _, arm_size) = &children[1];
    let page = chromium.dom(&url(&format!("/ui/r/multi/arch/m/{arm_digest}")));
    assert_has(&page, "arm64 image", "linux/arm64/v8");
    assert_has(&page, "arm64 image", &format!(r#"data-bytes="{arm_size}""#));

    // The image: config, layers, run settings, labels and history, all markup as text.
    let page = chromium.dom(&url(&format!("/ui/r/web/app/m/{image_digest}")));
    let config_digest = image["config"]["digest"].as_str().unwrap();
    assert_has(&page, "image", config_digest);
    for layer in image["layers"].as_array().unwrap() {
        assert_has(&page, "image", layer["digest"].as_str().unwrap());
        assert_has(&page, "image", &format!(r#"data-bytes="{}""#, layer["size"]));
        assert_has(&page, "image", layer["mediaType"].as_str().unwrap());
    }
    for needle in [
        format!(r#"data-bytes="{image_total}""#),
        r#"["/bin/busybox"]"#.to_string(),
        r#"["sh","-c","echo hi"]"#.to_string(),
        "GREETING=&lt;b&gt;hi&lt;/b&gt;".to_string(),
        format!("{ESCAPED_SCRIPT} the web app"),
        "org.opencontainers.image.description".to_string(),
        "make-image.py layer 0".to_string(),
        "make-image.py layer 1".to_string(),
        "linux/amd64".to_string(),
    ] {
        assert_has(&page, "image", &needle);
    }
    assert_lacks(&page, "image", "<script");
    assert_lacks(&page, "image", "<b>hi");
    chromium.screenshot(&url(&format!("/ui/r/web/app/m/{image_digest}")), &shots.join("image.png"));

    // A missing repository is a page too.
    let missing = chromium.dom(&url("/ui/r/no/such"));
    assert_has(&missing, "missing repository", "404");
}

/// A registry with the test users and rules (`library/*` public, `alice/*` alice's);
/// `None` when htpasswd is missing.
fn start_auth(extra: &str) -> Option<(Registry, TempDir)> {
    let dir = TempDir::new().unwrap();
    if !write_htpasswd(&dir.path().join("htpasswd"), USERS) {
        return None;
    }
    let reg = Registry::start_with_config(dir.path(), &auth_toml(dir.path(), extra));
    Some((reg, dir))
}

async fn get(c: &reqwest::Client, reg: &Registry, path: &str) -> (StatusCode, String, reqwest::header::HeaderMap) {
    let r = c.get(reg.url(path)).send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    (status, r.text().await.unwrap(), headers)
}

fn challenge(headers: &reqwest::header::HeaderMap) -> &str {
    headers.get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn pages_follow_access_rules() {
    for extra in ["", "token = { service = \"berth-test\" }"] {
        let Some((reg, _dir)) = start_auth(extra) else { return };
        let mode = if extra.is_empty() { "basic" } else { "token" };
        let alice = client_as("alice", "wonderland");
        let public = try_push_image(&alice, &reg, "library/pub", "v1", "pub").await.unwrap();
        try_push_image(&alice, &reg, "alice/secret", "v1", "secret").await.unwrap();
        let secret_digest = sha256(&try_push_image(&alice, &reg, "alice/secret", "v2", "secret2").await.unwrap());
        let anonymous = client();

        // The list: anonymous viewers see public repositories and a way to log in.
        let (status, page, headers) = get(&anonymous, &reg, "/ui/").await;
        assert_eq!(status, StatusCode::OK, "{mode}: {page}");
        assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"), "{mode}");
        assert!(headers["content-security-policy"].to_str().unwrap().contains("default-src 'none'"), "{mode}");
        assert!(page.contains(r#"data-repo="library/pub""#) && !page.contains("alice/secret"), "{mode}: {page}");
        assert!(page.contains(r#"href="/ui/login""#), "{mode}: {page}");
        let (_, page, _) = get(&alice, &reg, "/ui/").await;
        assert!(page.contains(r#"data-repo="library/pub""#) && page.contains(r#"data-repo="alice/secret""#), "{mode}: {page}");
        assert!(page.contains("signed in as <b>alice</b>"), "{mode}: {page}");
        let (_, page, _) = get(&client_as("bob", "builder"), &reg, "/ui/?q=secret").await;
        assert!(page.contains("No repository matches") && !page.contains(r#"data-repo="alice/secret""#), "{mode}: {page}");

        // Wrong credentials are refused with a challenge a browser answers.
        let (status, _, headers) = get(&client_as("alice", "wrong"), &reg, "/ui/").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{mode}");
        assert!(challenge(&headers).starts_with("Basic realm="), "{mode}: {headers:?}");

        // Repository and manifest pages need pull access.
        for path in ["/ui/r/alice/secret".to_string(), format!("/ui/r/alice/secret/m/{secret_digest}")] {
            let (status, page, headers) = get(&anonymous, &reg, &path).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{mode} {path}: {page}");
            assert!(challenge(&headers).starts_with("Basic realm="), "{mode} {path}: {headers:?}");
            assert!(!page.contains(&secret_digest), "{mode} {path}: {page}");
            let (status, page, _) = get(&client_as("bob", "builder"), &reg, &path).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{mode} {path}: {page}");
            let (status, page, _) = get(&alice, &reg, &path).await;
            assert_eq!(status, StatusCode::OK, "{mode} {path}: {page}");
            assert!(page.contains(&secret_digest), "{mode} {path}: {page}");
        }
        let (status, page, _) = get(&anonymous, &reg, &format!("/ui/r/library/pub/m/{}", sha256(&public))).await;
        assert_eq!(status, StatusCode::OK, "{mode}: {page}");

        // Logging in: a challenge until the credentials are right, then back to the list.
        let (status, _, headers) = get(&anonymous, &reg, "/ui/login").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{mode}");
        assert!(challenge(&headers).starts_with("Basic realm="), "{mode}: {headers:?}");
        let (status, _, headers) = get(&alice, &reg, "/ui/login").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{mode}");
        assert_eq!(headers["location"], "/ui/", "{mode}");

        // Missing and malformed.
        let (status, _, _) = get(&alice, &reg, "/ui/r/alice/nothing").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{mode}");
        let (status, page, _) = get(&alice, &reg, "/ui/r/Alice").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{mode}: {page}");
        assert!(page.contains("invalid repository name"), "{mode}: {page}");
        let (status, page, _) = get(&alice, &reg, "/ui/r/alice/secret/m/sha256:zz").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{mode}: {page}");
        let (status, page, _) = get(&alice, &reg, "/ui/?page=0").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{mode}: {page}");
    }
}

#[tokio::test]
async fn root_redirects_and_lists_page() {
    let reg = Registry::start();
    for i in 0..35 {
        push_image(&reg, &format!("many/repo{i:02}"), "v1", &format!("seed{i}")).await;
    }
    let c = client();
    let r = c.get(reg.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&r, "location"), "/ui/");
    let (status, page, _) = get(&c, &reg, "/ui/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("35 repositories") && page.contains(r#"data-repo="many/repo29""#) && !page.contains(r#"data-repo="many/repo30""#), "{page}");
    assert!(page.contains(r#"href="/ui/?page=2""#), "{page}");
    let (_, page, _) = get(&c, &reg, "/ui/?page=2").await;
    assert!(page.contains(r#"data-repo="many/repo30""#) && page.contains(r#"data-repo="many/repo34""#) && !page.contains(r#"data-repo="many/repo29""#), "{page}");
    assert!(page.contains(r#"href="/ui/?page=1""#) && page.contains("Page 2 of 2"), "{page}");
    // The API is still answered next to the UI.
    let (status, body, _) = get(&c, &reg, "/v2/_catalog?n=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
