//! `berth` against the real `docker` CLI, talking to the same daemon: the same commands
//! must print the same output and exit with the same status.
//!
//! Point `BERTH_TEST_DAEMON` at a daemon socket to test against it; otherwise each test
//! starts a private dockerd (and is skipped when dockerd is not installed).

mod common;

use common::{mask_digests, rootfs_tar, unique, Registry, TestEnv};

/// Keeps a table's header first and sorts the rows: the daemon orders images created in
/// the same second arbitrarily, so two listings may differ only in row order.
fn sort_rows(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    if lines.len() > 1 {
        let header_is_table =
            lines[0].contains("   ") && lines[0].chars().all(|c| !c.is_lowercase());
        let start = usize::from(header_is_table);
        lines[start..].sort_unstable();
    }
    lines.join("\n")
}

/// Template error details differ between Go's text/template and gtmpl; what must agree is
/// that the error is reported, how, and the exit status.
fn template_errors(text: &str) -> String {
    text.lines()
        .map(|line| {
            for prefix in ["template parsing error:", "Error parsing format:"] {
                if line.starts_with(prefix) {
                    return format!("{prefix} <detail>");
                }
            }
            line.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn all_sorted(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines.join("\n")
}

#[test]
fn import_then_list_images_in_every_format() {
    let Some(env) = TestEnv::new() else { return };
    let repo = unique("list");
    let tar = rootfs_tar().display().to_string();
    let label = format!("LABEL suite={repo}");
    let b = env
        .berth(&[
            "import",
            "-m",
            "imported by berth",
            "-c",
            &label,
            "-c",
            "CMD [\"sh\"]",
            &tar,
            &format!("{repo}:berth"),
        ])
        .ok();
    env.track(&format!("{repo}:berth"));
    let d = env
        .docker(&[
            "import",
            "-m",
            "imported by docker",
            "-c",
            &label,
            "-c",
            "CMD [\"sh\"]",
            &tar,
            &format!("{repo}:docker"),
        ])
        .ok();
    env.track(&format!("{repo}:docker"));
    assert_eq!(mask_digests(&b.stdout), "sha256:<digest>\n");
    assert_eq!(mask_digests(&b.stdout), mask_digests(&d.stdout));

    let bytes = std::fs::read(rootfs_tar()).expect("reading rootfs tar");
    let from_stdin = env
        .berth_stdin(&["import", "-", &format!("{repo}:stdin")], &bytes)
        .ok();
    env.track(&format!("{repo}:stdin"));
    assert_eq!(mask_digests(&from_stdin.stdout), "sha256:<digest>\n");

    let reference = format!("reference={repo}");
    let by_repo = format!("{repo}:berth");
    let by_label = format!("label=suite={repo}");
    let before = format!("before={repo}:stdin");
    let cases: Vec<Vec<&str>> = vec![
        vec!["images", "--filter", &reference],
        vec!["image", "ls", "-f", &reference, "-q"],
        vec!["image", "list", "-f", &reference, "--no-trunc"],
        vec!["images", "-f", &reference, "--digests"],
        vec!["images", "-f", &reference, "--format", "{{json .}}"],
        vec!["images", "-f", &reference, "--format", "json"],
        vec!["images", "-f", &reference, "--format", "table {{.Repository}}\t{{.Tag}}\t{{.Size}}\t{{.VirtualSize}}\t{{.Containers}}"],
        vec!["images", "-f", &reference, "--format", "{{.ID}} {{.CreatedAt}} {{.SharedSize}} {{.UniqueSize}} {{.Digest}}"],
        vec!["images", "-f", &reference, "--format", "table {{.ID}}", "--digests"],
        vec!["images", "-f", &reference, "--format", "{{upper .Repository}}|{{title .Tag}}|{{pad .Tag 1 1}}|{{truncate .ID 4}}|{{join (split .Repository \"x\") \"-\"}}"],
        vec!["images", "-f", &by_label, "-f", "dangling=false"],
        vec!["images", "-a", "-f", &before, "-f", &by_label],
        vec!["images", &by_repo],
        vec!["images", "--filter", "reference=berthtest-no-such-image"],
        vec!["images", "-f", &reference, "--format", "raw"],
    ];
    for args in cases {
        env.compare_clock_with(&args, sort_rows);
    }
    env.compare_clock_with(&["images", "-q", "-f", &reference], all_sorted);
}

#[test]
fn tag_and_remove_images() {
    let Some(env) = TestEnv::new() else { return };
    let repo = unique("tag");
    let src = format!("{repo}:src");
    let id = env.import_image(&src, &[]);

    env.compare(&["tag", "berthtest-no-such-image", "x"]);
    env.compare(&["tag", &src, "Bad"]);
    let digest_target = format!("{repo}@sha256:{}", "a".repeat(64));
    env.compare(&["tag", &src, &digest_target]);

    let b = env.berth(&["tag", &src, &format!("{repo}:b1")]).ok();
    env.track(&format!("{repo}:b1"));
    let d = env.docker(&["tag", &src, &format!("{repo}:d1")]).ok();
    env.track(&format!("{repo}:d1"));
    assert_eq!((b.stdout.as_str(), b.stderr.as_str()), ("", ""));
    assert_eq!(b, d);
    env.compare_clock_with(&["images", "-f", &format!("reference={repo}")], sort_rows);

    let b = env.berth(&["rmi", &format!("{repo}:b1")]);
    let d = env.docker(&["rmi", &format!("{repo}:d1")]);
    assert_eq!(b.stdout.replace(":b1", ":x"), d.stdout.replace(":d1", ":x"));
    assert_eq!(b.stdout, format!("Untagged: {repo}:b1\n"));
    assert_eq!(b.code, d.code);

    env.compare(&["rmi", "berthtest-no-such-image"]);
    env.compare(&["rmi", "-f", "berthtest-no-such-image"]);
    env.compare(&["image", "rm", "berthtest-no-such-image", "berthtest-other"]);

    // An image with two names cannot be removed by ID without force.
    env.docker(&["tag", &src, &format!("{repo}:second")]).ok();
    env.compare(&["rmi", &id]);

    // Forced removal by ID untags every name and deletes the image.
    let twin = format!("{repo}twin:src");
    let twin_id = env.import_image(&twin, &[]);
    env.docker(&["tag", &twin, &format!("{repo}twin:second")])
        .ok();
    let b = env.berth(&["rmi", "-f", "--no-prune", &id]);
    let d = env.docker(&["rmi", "-f", "--no-prune", &twin_id]);
    assert_eq!(b.code, 0, "{b:?}");
    // The layer is deleted with whichever image was its last user, so compare the
    // untagging and the image's own deletion.
    let untagged = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with("Untagged:"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        untagged(&b.stdout),
        untagged(&d.stdout.replace(&format!("{repo}twin"), &repo))
    );
    assert!(b.stdout.contains(&format!("Deleted: {id}\n")), "{b:?}");
    assert!(d.stdout.contains(&format!("Deleted: {twin_id}\n")), "{d:?}");
}

#[test]
fn inspect_like_docker() {
    let Some(env) = TestEnv::new() else { return };
    let name = format!("{}:v1", unique("inspect"));
    env.import_image(
        &name,
        &[
            "-c",
            "LABEL b=2",
            "-c",
            "LABEL a=1",
            "-c",
            "ENV X=1",
            "-c",
            "CMD [\"sh\"]",
            "-c",
            "WORKDIR /tmp",
            "-c",
            "EXPOSE 80/tcp",
        ],
    );
    let plain = format!("{}:plain", unique("inspect"));
    env.import_image(&plain, &[]);
    env.compare(&["inspect", &name]);
    env.compare(&["image", "inspect", &name, &plain]);
    env.compare(&["image", "inspect", "--format", "json", &name]);
    for template in [
        "{{.Id}}",
        "{{.ID}}",
        "{{json .Config}}",
        "{{json .Config.Labels}} {{.Config.Labels}} {{index .Config.Labels \"a\"}}",
        "{{index .Config.Labels \"missing\"}}|{{.Config.ExposedPorts}}",
        "{{.Config.Env}} {{.Config.Cmd}} {{.Config.WorkingDir}} {{json .Config.ExposedPorts}}",
        "{{.RepoTags}} {{index .RepoTags 0}} {{len .RepoTags}} {{.RepoDigests}}",
        "{{.Size}} {{.VirtualSize}} {{.Os}}/{{.Architecture}} {{.Created}} {{.Comment}}",
        "{{json .RootFS}} {{.RootFS.Type}} {{range .RootFS.Layers}}{{.}}{{end}}",
        "{{.Metadata}} {{.Metadata.LastTagTime}} {{json .Metadata}}",
        "{{json .}}",
        "{{.ContainerConfig}}",
        "{{.Config}}",
        "{{if .Config.Labels}}labelled{{else}}plain{{end}}",
        "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
    ] {
        env.compare(&["image", "inspect", "-f", template, &name]);
    }
    for template in [
        "{{.Foo}}",
        "{{.Config.Nope}}",
        "{{.Id",
        "{{nosuchfunction .Id}}",
    ] {
        env.compare_with(
            &["image", "inspect", "-f", template, &name],
            template_errors,
        );
    }
    env.compare(&[
        "image",
        "inspect",
        "-f",
        "{{.Config.Labels}} {{json .Config}}",
        &plain,
    ]);
    env.compare(&["inspect", "-f", "{{.Id}}", &name, "berthtest-no-such-image"]);
    env.compare(&["inspect", "--type", "image", "berthtest-no-such-image"]);
    env.compare(&["image", "inspect", "berthtest-no-such-image"]);
    env.compare(&["inspect", "--type", "nonsense", &name]);
}

#[test]
fn history_like_docker() {
    let Some(env) = TestEnv::new() else { return };
    let name = format!("{}:v1", unique("history"));
    env.import_image(&name, &["-m", "a commit message"]);
    for args in [
        vec!["history", name.as_str()],
        vec!["image", "history", "--no-trunc", name.as_str()],
        vec!["history", "-H=false", name.as_str()],
        vec!["history", "--human=false", "--no-trunc", name.as_str()],
        vec!["history", "-q", name.as_str()],
        vec!["history", "--format", "{{json .}}", name.as_str()],
        vec![
            "history",
            "--format",
            "table {{.ID}}\t{{.CreatedBy}}\t{{.Comment}}",
            name.as_str(),
        ],
        vec!["history", "berthtest-no-such-image"],
    ] {
        env.compare_clock(&args);
    }
}

#[test]
fn save_and_load_round_trip() {
    let Some(env) = TestEnv::new() else { return };
    let name = format!("{}:v1", unique("save"));
    env.import_image(&name, &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let berth_tar = dir.path().join("berth.tar");
    let docker_tar = dir.path().join("docker.tar");
    let b = env
        .berth(&["save", "-o", &berth_tar.display().to_string(), &name])
        .ok();
    let d = env
        .docker(&["save", "-o", &docker_tar.display().to_string(), &name])
        .ok();
    assert_eq!(b, d);
    let berth_bytes = std::fs::read(&berth_tar).expect("berth archive");
    assert_eq!(
        berth_bytes,
        std::fs::read(&docker_tar).expect("docker archive")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&berth_tar)
        .expect("archive metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("listing")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 2, "no temporary files left: {names:?}");

    let to_stdout = env.berth(&["image", "save", &name]).ok();
    assert_eq!(to_stdout.raw_stdout, berth_bytes);

    env.compare(&["save", "berthtest-no-such-image"]);
    env.compare(&["save", "-o", "/dev/null", &name]);

    let load_file = berth_tar.display().to_string();
    env.docker(&["rmi", &name]).ok();
    let b = env.berth(&["load", "-i", &load_file]);
    env.docker(&["rmi", &name]).ok();
    let d = env.docker(&["load", "-i", &load_file]);
    assert_eq!(b, d);
    assert_eq!(b.stdout, format!("Loaded image: {name}\n"));

    env.docker(&["rmi", &name]).ok();
    let b = env.berth_stdin(&["load"], &berth_bytes);
    env.docker(&["rmi", &name]).ok();
    let d = env.docker_stdin(&["load"], &berth_bytes);
    assert_eq!(b, d);
    env.compare(&["load", "-q", "-i", &load_file]);
    env.compare(&["load", "-i", "/berthtest/no/such/file.tar"]);
    // Empty standard input: the daemon names a temporary directory of its own.
    env.compare_with(&["image", "load"], |s| {
        let mut out = String::new();
        for c in s.chars() {
            if !c.is_ascii_digit() {
                out.push(c);
            } else if !out.ends_with('#') {
                out.push('#');
            }
        }
        out
    });
}

/// Replaces both registries' addresses with one placeholder.
fn mask_registries(text: &str, registries: &[&Registry]) -> String {
    registries.iter().fold(text.to_string(), |t, r| {
        t.replace(&r.address(), "<registry>")
    })
}

#[test]
fn push_and_pull_against_a_local_registry() {
    let Some(env) = TestEnv::new() else { return };
    let for_berth = Registry::start(None);
    let for_docker = Registry::start(None);
    let base = format!("{}:v1", unique("push"));
    env.import_image(&base, &[]);
    let repo = unique("repo");
    let berth_ref = format!("{}/{repo}:v1", for_berth.address());
    let docker_ref = format!("{}/{repo}:v1", for_docker.address());
    for r in [&berth_ref, &docker_ref] {
        env.docker(&["tag", &base, r]).ok();
        env.track(r);
    }
    let regs = [&for_berth, &for_docker];
    let mask = |s: &str| mask_registries(s, &regs);

    let b = env.berth(&["push", &berth_ref]);
    let d = env.docker(&["push", &docker_ref]);
    assert_eq!(b.code, 0, "{b:?}");
    assert_eq!(
        (mask(&b.stdout), mask(&b.stderr), b.code),
        (mask(&d.stdout), mask(&d.stderr), d.code)
    );
    assert!(b.stdout.contains("v1: digest: sha256:"), "{b:?}");

    // Name only: the default tag is used, and does not exist.
    let b = env.berth(&["push", &format!("{}/{repo}", for_berth.address())]);
    let d = env.docker(&["push", &format!("{}/{repo}", for_docker.address())]);
    assert_eq!(
        (mask(&b.stdout), mask(&b.stderr), b.code),
        (mask(&d.stdout), mask(&d.stderr), d.code)
    );

    let b = env.berth(&["image", "push", "-q", &berth_ref]);
    let d = env.docker(&["image", "push", "-q", &docker_ref]);
    assert_eq!((mask(&b.stdout), b.code), (mask(&d.stdout), d.code));

    let pull_pair = |args: &[&str], b_ref: &str, d_ref: &str| {
        let _ = env.docker(&["rmi", b_ref]);
        let mut b_args = args.to_vec();
        b_args.push(b_ref);
        let b = env.berth(&b_args);
        let _ = env.docker(&["rmi", d_ref]);
        let mut d_args = args.to_vec();
        d_args.push(d_ref);
        let d = env.docker(&d_args);
        assert_eq!(
            (mask(&b.stdout), mask(&b.stderr), b.code),
            (mask(&d.stdout), mask(&d.stderr), d.code),
            "pull {args:?}"
        );
        b
    };
    let b = pull_pair(&["pull"], &berth_ref, &docker_ref);
    assert!(b.stdout.ends_with(&format!("{berth_ref}\n")), "{b:?}");
    pull_pair(&["image", "pull", "-q"], &berth_ref, &docker_ref);
    pull_pair(
        &["pull", "--all-tags"],
        &format!("{}/{repo}", for_berth.address()),
        &format!("{}/{repo}", for_docker.address()),
    );
    pull_pair(
        &["pull"],
        &format!("{}/{repo}:missing", for_berth.address()),
        &format!("{}/{repo}:missing", for_docker.address()),
    );
    env.compare_with(&["pull", "-a", &berth_ref], |s| s.to_string());

    // By digest: the reference printed at the end keeps the digest.
    let digest_line = env
        .docker(&["inspect", "-f", "{{index .RepoDigests 0}}", &berth_ref])
        .ok()
        .stdout;
    let by_digest = digest_line.trim().to_string();
    env.track(&by_digest);
    let b = env.berth(&["pull", &by_digest]).ok();
    assert!(b.stdout.ends_with(&format!("{by_digest}\n")), "{b:?}");
    for r in [&berth_ref, &docker_ref] {
        env.track(r);
    }
}

#[test]
fn login_and_logout_against_a_registry_with_htpasswd() {
    let Some(env) = TestEnv::new() else { return };
    let registry = Registry::start(Some(("tester", "s3cret")));
    let address = registry.address();

    let wrong = [
        "login",
        "-u",
        "tester",
        "--password-stdin",
        address.as_str(),
    ];
    let b = env.berth_stdin(&wrong, b"wrong\n");
    let d = env.docker_stdin(&wrong, b"wrong\n");
    assert_eq!(
        (env.normalize(&b.stderr), b.code),
        (env.normalize(&d.stderr), d.code)
    );
    assert_ne!(b.code, 0);
    assert!(
        !env.berth_config.join("config.json").exists(),
        "nothing stored on failure"
    );

    let login = [
        "login",
        "-u",
        "tester",
        "--password-stdin",
        address.as_str(),
    ];
    let b = env.berth_stdin(&login, b"s3cret\n");
    let d = env.docker_stdin(&login, b"s3cret\n");
    assert_eq!(b.stdout, "Login Succeeded\n");
    assert_eq!(
        (b.stdout.clone(), env.normalize(&b.stderr), b.code),
        (d.stdout.clone(), env.normalize(&d.stderr), d.code)
    );
    let read_config = |dir: &std::path::Path| -> serde_json::Value {
        let text = std::fs::read_to_string(dir.join("config.json")).expect("config.json");
        serde_json::from_str(&text).expect("config.json is JSON")
    };
    assert_eq!(
        read_config(&env.berth_config),
        read_config(&env.docker_config)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.berth_config.join("config.json"))
        .expect("config metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The stored credentials are sent with pushes and pulls.
    let name = format!("{address}/{}:v1", unique("auth"));
    let base = format!("{}:v1", unique("authbase"));
    env.import_image(&base, &[]);
    env.docker(&["tag", &base, &name]).ok();
    env.track(&name);
    env.berth(&["push", &name]).ok();
    env.docker(&["rmi", &name]).ok();
    env.berth(&["pull", "-q", &name]).ok();
    env.docker(&["rmi", &name]).ok();
    env.compare(&["pull", "-q", &name]);

    // With stored credentials, login without a user re-checks them.
    env.compare(&["login", &address]);
    let b = env.berth(&["login", "-u", "tester", "-p", "s3cret", &address]);
    let d = env.docker(&["login", "-u", "tester", "-p", "s3cret", &address]);
    assert_eq!(
        (b.stdout, env.normalize(&b.stderr), b.code),
        (d.stdout, env.normalize(&d.stderr), d.code)
    );

    env.compare(&["logout", &address]);
    assert_eq!(
        read_config(&env.berth_config),
        read_config(&env.docker_config)
    );
    assert!(read_config(&env.berth_config)["auths"]
        .as_object()
        .is_some_and(|a| a.is_empty()));
    env.compare(&["logout", &address]);
    env.compare(&["login", "-u", "tester", &address]);
    env.compare(&["login", "--password-stdin", &address]);
    env.compare(&[
        "login",
        "-p",
        "x",
        "--password-stdin",
        "-u",
        "tester",
        &address,
    ]);

    // Without its own credentials berth falls back to docker's configuration.
    env.docker(&["rmi", &name]).ok();
    let d = env.docker_stdin(&login, b"s3cret\n");
    assert_eq!(d.code, 0, "{d:?}");
    env.berth(&["pull", "-q", &name]).ok();
    env.docker(&["logout", &address]).ok();
    env.docker(&["rmi", &name]).ok();
    let b = env.berth(&["pull", &name]);
    assert_ne!(
        b.code, 0,
        "anonymous pull from an authenticated registry must fail: {b:?}"
    );
}

#[test]
fn login_stores_credentials_with_a_credential_helper() {
    let Some(env) = TestEnv::new() else { return };
    let registry = Registry::start(Some(("tester", "s3cret")));
    let address = registry.address();
    let bin = env.home.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let store = env.home.path().join("helper-store.json");
    let helper = bin.join("docker-credential-berthtest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nf={}\ncase \"$1\" in\n get) s=$(cat); if [ -f \"$f\" ]; then cat \"$f\"; else echo 'credentials not found in native keychain'; exit 1; fi;;\n store) cat > \"$f\";;\n erase) rm -f \"$f\";;\nesac\n",
            store.display()
        ),
    )
    .expect("writing helper");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755))
        .expect("chmod helper");
    std::fs::write(
        env.berth_config.join("config.json"),
        r#"{"credsStore":"berthtest"}"#,
    )
    .expect("config");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut login = env.berth_env(
        &["login", "-u", "tester", "-p", "s3cret", &address],
        &[("PATH", &path)],
    );
    login = login.ok();
    assert_eq!(login.stdout, "Login Succeeded\n");
    let config = std::fs::read_to_string(env.berth_config.join("config.json")).expect("config");
    assert!(
        !config.contains("s3cret") && !config.contains("auth\""),
        "{config}"
    );
    let stored = std::fs::read_to_string(&store).expect("helper store");
    assert!(stored.contains("s3cret"), "{stored}");

    let name = format!("{address}/{}:v1", unique("helper"));
    let base = format!("{}:v1", unique("helperbase"));
    env.import_image(&base, &[]);
    env.docker(&["tag", &base, &name]).ok();
    env.track(&name);
    env.berth_env(&["push", "-q", &name], &[("PATH", &path)])
        .ok();

    env.berth_env(&["logout", &address], &[("PATH", &path)])
        .ok();
    assert!(!store.exists(), "logout erases the helper's entry");
}

#[test]
fn system_df_like_docker() {
    let Some(env) = TestEnv::new() else { return };
    env.import_image(&format!("{}:v1", unique("df")), &[]);
    env.compare(&["system", "df"]);
    env.compare(&["system", "df", "--format", "{{json .}}"]);
    env.compare(&[
        "system",
        "df",
        "--format",
        "table {{.Type}}\t{{.TotalCount}}",
    ]);
    env.compare_with(&["system", "df", "-v"], |s| {
        // Image rows come from the daemon in no fixed order.
        let mut out = Vec::new();
        let mut block: Vec<&str> = Vec::new();
        for line in s.lines() {
            if line.is_empty() || line.ends_with("usage:") || line.starts_with("Build cache usage")
            {
                block.sort_unstable();
                out.append(&mut block);
                out.push(line);
            } else {
                block.push(line);
            }
        }
        block.sort_unstable();
        out.append(&mut block);
        out.join("\n")
    });
    env.compare_with(
        &[
            "system",
            "df",
            "-v",
            "--format",
            "{{range .Images}}{{.ID}} {{.Size}}\n{{end}}",
        ],
        all_sorted,
    );
}

#[test]
fn version_and_info_agree_on_the_server() {
    let Some(env) = TestEnv::new() else { return };
    for template in [
        "{{.Server.Version}} {{.Server.APIVersion}} {{.Server.MinAPIVersion}} {{.Server.Os}}/{{.Server.Arch}}",
        "{{json .Server}}",
        "{{json .Server.Components}} {{.Server.Platform.Name}} {{.Server.KernelVersion}}",
        "{{range .Server.Components}}{{.Name}}={{.Version}};{{end}}",
        "{{.Client.Os}} {{.Client.Arch}} {{.Client.Context}}",
    ] {
        env.compare(&["version", "--format", template]);
    }
    env.compare_with(&["version", "-f", "{{.Server.Nope"], template_errors);
    // The server part of the default layout is the same; the client part names the client.
    let server_part = |s: &str| s.split("\nServer:").nth(1).unwrap_or("").to_string();
    env.compare_with(&["version"], server_part);

    for template in [
        "{{.ServerVersion}} {{.Driver}} {{.OSType}} {{.Architecture}} {{.NCPU}} {{.MemTotal}}",
        "{{json .Plugins}} {{.DockerRootDir}} {{json .RegistryConfig}} {{.IndexServerAddress}}",
        "{{.Images}} {{.Containers}} {{.CgroupDriver}} {{.CgroupVersion}} {{.DefaultRuntime}}",
        "{{.ClientInfo.Context}} {{.ClientInfo.Debug}}",
        "{{.HTTPProxy}}|{{.HTTPSProxy}}|{{.NoProxy}}|{{.Swarm.LocalNodeState}}",
    ] {
        env.compare(&["info", "--format", template]);
        env.compare(&["system", "info", "-f", template]);
    }
    // Everything but the client version line.
    env.compare_clock_with(&["info"], |s| {
        s.lines()
            .filter(|l| !l.starts_with(" Version:"))
            .collect::<Vec<_>>()
            .join("\n")
    });
}

#[test]
fn api_version_is_negotiated_and_can_be_forced() {
    let Some(env) = TestEnv::new() else { return };
    let server = env
        .docker(&["version", "--format", "{{.Server.APIVersion}}"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let negotiated = env
        .berth(&["version", "--format", "{{.Client.APIVersion}}"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let parse = |v: &str| -> (u32, u32) {
        let (a, b) = v.split_once('.').unwrap_or((v, "0"));
        (a.parse().unwrap_or(0), b.parse().unwrap_or(0))
    };
    let expected = if parse(&server) < (1, 45) {
        server.clone()
    } else {
        "1.45".to_string()
    };
    assert_eq!(negotiated, expected, "server speaks {server}");
    let forced = env
        .berth_env(
            &["version", "--format", "{{.Client.APIVersion}}"],
            &[("BERTH_API_VERSION", "1.40")],
        )
        .ok();
    assert_eq!(forced.stdout, "1.40\n");
    let b = env.berth_env(
        &["images", "-q", "-f", "reference=berthtest-none"],
        &[("BERTH_API_VERSION", "1.40")],
    );
    let d = env.docker_env(
        &["images", "-q", "-f", "reference=berthtest-none"],
        &[("DOCKER_API_VERSION", "1.40")],
    );
    assert_eq!(b, d);
}

#[test]
fn events_between_since_and_until() {
    let Some(env) = TestEnv::new() else { return };
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    let since = now();
    let name = format!("{}:v1", unique("events"));
    env.import_image(&name, &[]);
    let second = format!("{}:v2", unique("events"));
    env.docker(&["tag", &name, &second]).ok();
    env.track(&second);
    env.docker(&["rmi", &second]).ok();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let until = (now() + 1).to_string();
    let since = since.to_string();
    let filter = format!("image={name}");
    let window = [
        "events",
        "--since",
        since.as_str(),
        "--until",
        until.as_str(),
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        window.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    for extra in [
        vec!["--filter", filter.as_str()],
        vec!["-f", "type=image", "-f", "event=untag"],
        vec!["--filter", filter.as_str(), "--format", "{{json .}}"],
        vec!["--filter", filter.as_str(), "--format", "json"],
        vec![
            "--filter",
            filter.as_str(),
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Status}} {{.ID}} {{.Scope}}",
        ],
    ] {
        let args = with(&extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let b = env.compare(&args);
        assert!(!b.stdout.is_empty(), "events {args:?} printed nothing");
    }
    let since_secs: i64 = since.parse().unwrap_or(0);
    let rfc3339 = time::OffsetDateTime::from_unix_timestamp(since_secs)
        .map(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        })
        .unwrap_or_default();
    env.compare(&[
        "events", "--since", &rfc3339, "--until", &until, "--filter", &filter,
    ]);
    env.compare(&[
        "system", "events", "--since", "10m", "--until", &until, "--filter", &filter,
    ]);
    env.compare(&["events", "--since", "yesterday", "--until", &until]);
    env.compare_with(
        &["events", "--format", "{{.Nope", "--until", &until],
        template_errors,
    );
}

#[test]
fn image_prune_asks_first_and_honours_filters() {
    let Some(env) = TestEnv::new() else { return };
    let tar = rootfs_tar().display().to_string();
    let berth_label = unique("prune-berth");
    let docker_label = unique("prune-docker");
    for label in [&berth_label, &docker_label] {
        // Untagged imports are dangling.
        let id = env
            .docker(&["import", "-c", &format!("LABEL prunetest={label}"), &tar])
            .ok()
            .stdout
            .trim()
            .to_string();
        env.track(&id);
    }
    let b = env.berth_stdin(
        &[
            "image",
            "prune",
            "--filter",
            &format!("label=prunetest={berth_label}"),
        ],
        b"n\n",
    );
    let d = env.docker_stdin(
        &[
            "image",
            "prune",
            "--filter",
            &format!("label=prunetest={docker_label}"),
        ],
        b"n\n",
    );
    assert_eq!(b, d);
    assert!(
        b.stdout
            .starts_with("WARNING! This will remove all dangling images."),
        "{b:?}"
    );

    let b = env.berth(&[
        "image",
        "prune",
        "-f",
        "--filter",
        &format!("label=prunetest={berth_label}"),
    ]);
    let d = env.docker(&[
        "image",
        "prune",
        "-f",
        "--filter",
        &format!("label=prunetest={docker_label}"),
    ]);
    // Both delete their image; the shared layer goes with the last image using it.
    let head = |s: &str| {
        mask_digests(s)
            .lines()
            .take(2)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!((head(&b.stdout), b.code), (head(&d.stdout), d.code));
    assert!(
        b.stdout.contains("Deleted Images:\ndeleted: sha256:"),
        "{b:?}"
    );
    assert!(b.stdout.contains("\n\nTotal reclaimed space: "), "{b:?}");
    env.compare(&[
        "image",
        "prune",
        "-f",
        "--filter",
        "label=prunetest=berthtest-nothing",
    ]);
    env.compare(&[
        "image",
        "prune",
        "-a",
        "-f",
        "--filter",
        "label=prunetest=berthtest-nothing",
    ]);
    let b = env.berth_stdin(
        &[
            "image",
            "prune",
            "-a",
            "--filter",
            "label=prunetest=berthtest-nothing",
        ],
        b"y\n",
    );
    let d = env.docker_stdin(
        &[
            "image",
            "prune",
            "-a",
            "--filter",
            "label=prunetest=berthtest-nothing",
        ],
        b"y\n",
    );
    assert_eq!(b, d);
}

#[test]
fn usage_errors_match_docker() {
    let Some(env) = TestEnv::new() else { return };
    // docker prints "SRun" in the "at most N arguments" message; berth prints "Run".
    let docker_typo = |s: &str| s.replace("SRun '", "Run '");
    for args in [
        vec!["no-such-command"],
        vec!["images", "--no-such-flag"],
        vec!["images", "-x"],
        vec!["images", "-f"],
        vec!["images", "--filter", "nonsense"],
        vec!["tag", "one"],
        vec!["history"],
        vec!["image", "no-such-subcommand"],
        vec!["image", "prune", "extra"],
        vec!["save"],
        vec!["pull", "UPPER"],
        vec!["pull", "-a", "busybox:1"],
        vec!["push", &"a".repeat(64)],
        vec!["search", "--limit", "x", "term"],
        vec!["search"],
        vec!["login", "a", "b"],
        vec!["inspect"],
        vec!["events", "extra"],
    ] {
        env.compare_with(&args, docker_typo);
    }
    // An unreachable daemon.
    let b = env.berth(&["-H", "unix:///berthtest/no/such.sock", "images"]);
    let d = env.docker(&["-H", "unix:///berthtest/no/such.sock", "images"]);
    assert_eq!(
        (env.normalize(&b.stderr), b.code),
        (env.normalize(&d.stderr), d.code)
    );
}

#[test]
fn search_reports_registry_errors_like_docker() {
    let Some(env) = TestEnv::new() else { return };
    let registry = Registry::start(None);
    env.compare_with(
        &["search", &format!("{}/berthtest", registry.address())],
        |s| s.replace(&registry.address(), "<registry>"),
    );
}

#[test]
fn terminals_get_progress_bars_prompts_and_protection() {
    let Some(env) = TestEnv::new() else { return };
    let registry = Registry::start(Some(("tester", "s3cret")));
    let address = registry.address();

    // Login prompts for the user name and reads the password without echo.
    let Some(login) = env.berth_on_terminal(&["login", &address], &["tester\n", "s3cret\n"]) else {
        return;
    };
    assert_eq!(login.code, 0, "{login:?}");
    assert!(login.stdout.contains("Username: tester"), "{login:?}");
    assert!(login.stdout.contains("Password: "), "{login:?}");
    assert!(
        !login.stdout.contains("s3cret"),
        "the password was echoed: {login:?}"
    );
    assert!(login.stdout.contains("Login Succeeded"), "{login:?}");

    // A pull draws one line per layer, updated in place, with progress bars. The layer
    // is unique to this test so that it is really downloaded.
    let dir = tempfile::tempdir().expect("layer dir");
    std::fs::write(dir.path().join("payload"), unique("payload").repeat(20_000)).expect("payload");
    let layer = dir.path().join("layer.tar");
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .arg("-cf")
        .arg(&layer)
        .arg("payload")
        .status()
        .expect("running tar");
    assert!(status.success());
    let name = format!("{address}/{}:v1", unique("tty"));
    env.track(&name);
    let imported = env
        .docker(&["import", &layer.display().to_string(), &name])
        .ok();
    env.track(imported.stdout.trim());
    env.berth(&["push", "-q", &name]).ok();
    env.docker(&["rmi", &name]).ok();
    let pull = env
        .berth_on_terminal(&["pull", &name], &[])
        .expect("script is installed");
    assert_eq!(pull.code, 0, "{pull:?}");
    assert!(
        pull.stdout.contains("\x1b[2K\r"),
        "no line updates: {pull:?}"
    );
    assert!(
        pull.stdout.contains("\x1b[1A") && pull.stdout.contains("\x1b[1B"),
        "{pull:?}"
    );
    assert!(pull.stdout.contains(": Pulling fs layer"), "{pull:?}");
    assert!(pull.stdout.contains(" [="), "no progress bar: {pull:?}");
    assert!(pull.stdout.contains(": Pull complete"), "{pull:?}");
    assert!(pull.stdout.trim_end().ends_with(&name), "{pull:?}");

    // save does not write an archive to a terminal.
    let save = env
        .berth_on_terminal(&["save", &name], &[])
        .expect("script is installed");
    assert_ne!(save.code, 0);
    assert!(
        save.stdout
            .contains("cowardly refusing to save to a terminal"),
        "{save:?}"
    );
}
