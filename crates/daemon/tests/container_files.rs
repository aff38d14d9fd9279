//! The real docker CLI copying files in and out of containers on berthd (running, created
//! and exited ones, through volumes), attempts to escape the container's filesystem with
//! symlinks and hostile archives, `export`, `diff`, and `commit` with its options.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

fn setup() -> Option<(Daemon, tempfile::TempDir)> {
    if !have(&["docker", "tar"]) {
        return None;
    }
    let work = tempfile::Builder::new().prefix("container-files-").tempdir_in("/var/tmp").unwrap();
    let daemon = Daemon::start(&[]);
    load_busybox(&daemon, work.path(), "busybox:latest");
    Some((daemon, work))
}

fn docker_in(daemon: &Daemon, args: &[&str], stdin: &[u8]) -> Output {
    daemon.docker_with(docker_cli(), args, Some(stdin))
}

/// `docker cp <from> -` as bytes.
fn cp_out(daemon: &Daemon, from: &str) -> Vec<u8> {
    let out = daemon.docker(&["cp", from, "-"]);
    assert!(out.status.success(), "docker cp {from} - failed: {}", stderr(&out));
    out.stdout
}

/// The listing of a tar stream, one `name[ -> target]` a line.
fn tar_names(tar: &[u8]) -> Vec<String> {
    let out = run(std::process::Command::new("tar").arg("tf").arg("-"), Some(tar));
    ok(out).lines().map(str::to_string).collect()
}

/// The content of the one file in a tar stream.
fn tar_content(tar: &[u8]) -> String {
    ok(run(std::process::Command::new("tar").arg("xOf").arg("-"), Some(tar)))
}

fn exec(daemon: &Daemon, container: &str, script: &str) -> String {
    ok(daemon.docker(&["exec", container, "sh", "-c", script]))
}

/// One ustar entry (`kind` b'0' file, b'1' hardlink, b'2' symlink, b'5' directory).
fn tar_entry(name: &str, kind: u8, link: &str, data: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    header[100..107].copy_from_slice(format!("{:07o}", if kind == b'5' { 0o755 } else { 0o644 }).as_bytes());
    header[108..115].copy_from_slice(b"0000000");
    header[116..123].copy_from_slice(b"0000000");
    header[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
    header[136..147].copy_from_slice(b"00000000000");
    header[156] = kind;
    header[157..157 + link.len()].copy_from_slice(link.as_bytes());
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn tar_of(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out = entries.concat();
    out.extend_from_slice(&[0; 1024]);
    out
}

/// A name no host path has, removed from the host's root if a bug puts it there.
struct HostCanary(PathBuf);

impl HostCanary {
    fn new(tag: &str) -> HostCanary {
        HostCanary(PathBuf::from(format!("/berth-escape-{tag}-{}", std::process::id())))
    }
    fn name(&self) -> String {
        self.0.file_name().unwrap().to_string_lossy().into_owned()
    }
    fn assert_absent(&self) {
        assert!(!self.0.exists(), "{} was written on the host", self.0.display());
    }
}

impl Drop for HostCanary {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn rootfs_mounted(daemon: &Daemon, id: &str) -> bool {
    let rootfs = daemon.data_root.join("containers").join(id).join("rootfs");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo.lines().any(|l| l.split(' ').nth(4) == Some(rootfs.to_str().unwrap()))
}

#[test]
fn cp_in_and_out_of_running_and_stopped_containers() {
    let Some((daemon, work)) = setup() else { return };
    let host = work.path().join("host");
    std::fs::create_dir_all(host.join("dir/sub")).unwrap();
    std::fs::write(host.join("file.txt"), "from the host\n").unwrap();
    std::fs::write(host.join("dir/a"), "a\n").unwrap();
    std::fs::write(host.join("dir/sub/b"), "b\n").unwrap();
    let h = |p: &str| host.join(p).display().to_string();

    ok(daemon.docker(&["run", "-d", "--name", "web", "busybox", "sh", "-c", "mkdir -p /srv/d; echo hi > /srv/d/f; ln -sf f /srv/d/lf; sleep 1000"]));
    exec(&daemon, "web", "test -f /srv/d/f");

    // Into a running container: a file into a directory, a file under a new name, a tree.
    ok(daemon.docker(&["cp", &h("file.txt"), "web:/srv/"]));
    ok(daemon.docker(&["cp", &h("file.txt"), "web:/srv/renamed.txt"]));
    ok(daemon.docker(&["cp", &h("dir"), "web:/srv/tree"]));
    ok(daemon.docker(&["cp", &format!("{}/.", h("dir")), "web:/srv/d"]));
    assert_eq!(exec(&daemon, "web", "cat /srv/file.txt /srv/renamed.txt /srv/tree/a /srv/tree/sub/b /srv/d/a /srv/d/sub/b"), "from the host\nfrom the host\na\nb\na\nb\n");
    // Through a symlink to a file: the file is replaced, the link stays.
    ok(daemon.docker(&["cp", &h("file.txt"), "web:/srv/d/lf"]));
    assert_eq!(exec(&daemon, "web", "cat /srv/d/f; readlink /srv/d/lf"), "from the host\nf\n");
    // A tar on stdin.
    let tar = tar_of(&[tar_entry("streamed/", b'5', "", b""), tar_entry("streamed/x", b'0', "", b"streamed\n")]);
    ok(docker_in(&daemon, &["cp", "-", "web:/srv"], &tar));
    assert_eq!(exec(&daemon, "web", "cat /srv/streamed/x"), "streamed\n");

    // Out of it: a file, a directory with and without `/.`, a symlink as itself.
    let back = work.path().join("back");
    std::fs::create_dir(&back).unwrap();
    ok(daemon.docker(&["cp", "web:/srv/d/f", &back.join("f").display().to_string()]));
    assert_eq!(std::fs::read_to_string(back.join("f")).unwrap(), "from the host\n");
    ok(daemon.docker(&["cp", "web:/srv/tree", &back.display().to_string()]));
    assert_eq!(std::fs::read_to_string(back.join("tree/sub/b")).unwrap(), "b\n");
    let names = tar_names(&cp_out(&daemon, "web:/srv/tree"));
    assert_eq!(names, ["tree/", "tree/a", "tree/sub/", "tree/sub/b"]);
    let names = tar_names(&cp_out(&daemon, "web:/srv/tree/."));
    assert_eq!(names, ["./", "./a", "./sub/", "./sub/b"]);
    assert_eq!(tar_names(&cp_out(&daemon, "web:/srv/d/lf")), ["lf"]);
    assert_eq!(tar_content(&cp_out(&daemon, "web:/srv/file.txt")), "from the host\n");

    // Errors name what was wrong.
    let e = fails(daemon.docker(&["cp", "web:/no/such", "-"]));
    assert!(e.contains("Could not find the file /no/such in container web"), "{e}");
    let e = fails(daemon.docker(&["cp", &h("file.txt"), "web:/no/such/file"]));
    assert!(e.contains("Could not find the file /no/such in container web"), "{e}");
    let e = fails(daemon.docker(&["cp", "web:/srv/file.txt/x", "-"]));
    assert!(e.contains("not a directory"), "{e}");
    let e = fails(daemon.docker(&["cp", "nosuch:/x", "-"]));
    assert!(e.contains("No such container"), "{e}");
    let e = fails(docker_in(&daemon, &["cp", "-", "web:/srv/file.txt"], &tar));
    assert!(e.contains("must be a directory"), "{e}");
    // An existing directory is not replaced by a file, nor a file by a directory.
    let clash = tar_of(&[tar_entry("d", b'0', "", b"x")]);
    let e = fails(docker_in(&daemon, &["cp", "-", "web:/srv"], &clash));
    assert!(e.contains("cannot overwrite directory"), "{e}");
    let clash = tar_of(&[tar_entry("file.txt/", b'5', "", b"")]);
    let e = fails(docker_in(&daemon, &["cp", "-", "web:/srv"], &clash));
    assert!(e.contains("cannot overwrite non-directory"), "{e}");

    // A created (never started) container and an exited one: mounted for the copy only.
    let created = ok(daemon.docker(&["create", "--name", "fresh", "busybox", "cat", "/copied.txt"])).trim().to_string();
    ok(daemon.docker(&["cp", &h("file.txt"), "fresh:/copied.txt"]));
    assert!(!rootfs_mounted(&daemon, &created), "the temporary mount stayed");
    assert_eq!(tar_content(&cp_out(&daemon, "fresh:/copied.txt")), "from the host\n");
    assert_eq!(ok(daemon.docker(&["start", "-a", "fresh"])), "from the host\n");
    assert!(!rootfs_mounted(&daemon, &created));
    ok(daemon.docker(&["cp", &h("dir"), "fresh:/later"]));
    assert_eq!(tar_names(&cp_out(&daemon, "fresh:/later/sub")), ["sub/", "sub/b"]);
    assert!(!rootfs_mounted(&daemon, &created));
    ok(daemon.docker(&["stop", "web"]));
    let web = ok(daemon.docker(&["inspect", "-f", "{{.Id}}", "web"])).trim().to_string();
    assert_eq!(tar_content(&cp_out(&daemon, "web:/srv/streamed/x")), "streamed\n");
    assert!(!rootfs_mounted(&daemon, &web));
    // `-a` gives the files to the container's user; without it they keep the archive's owner.
    ok(daemon.docker(&["create", "--name", "owned", "-u", "test", "busybox", "true"]));
    ok(daemon.docker(&["cp", "-a", &h("file.txt"), "owned:/tmp/"]));
    ok(daemon.docker(&["cp", &h("file.txt"), "owned:/tmp/plain.txt"]));
    let owners = |path: &str| {
        let listing = ok(run(std::process::Command::new("tar").args(["--numeric-owner", "-tvf", "-"]), Some(&cp_out(&daemon, path))));
        listing.split_whitespace().nth(1).unwrap_or_default().to_string()
    };
    assert_eq!(owners("owned:/tmp/file.txt"), "1000/1000");
    assert_eq!(owners("owned:/tmp/plain.txt"), "0/0");
    // Started again, it sees what was copied while it was stopped.
    ok(daemon.docker(&["cp", &h("file.txt"), "web:/srv/while-stopped"]));
    ok(daemon.docker(&["start", "web"]));
    assert_eq!(exec(&daemon, "web", "cat /srv/while-stopped"), "from the host\n");
}

#[test]
fn cp_cannot_leave_the_container() {
    let Some((daemon, work)) = setup() else { return };
    let setup_links = "echo container-shadow > /etc/shadow && ln -s / /tmp/link && ln -s ../../../../.. /tmp/rel && ln -s /etc/shadow /tmp/shadow-link";
    ok(daemon.docker(&["run", "-d", "--name", "evil", "busybox", "sh", "-c", &format!("{setup_links} && sleep 1000")]));
    ok(daemon.docker(&["run", "--name", "evil-stopped", "busybox", "sh", "-c", setup_links]));
    exec(&daemon, "evil", "test -L /tmp/shadow-link");

    for c in ["evil", "evil-stopped"] {
        // Reads through the links find the container's file, never the host's.
        for path in ["/tmp/link/etc/shadow", "/tmp/rel/etc/shadow", "/tmp/rel/../../../../etc/shadow", "/tmp/link/../../etc/shadow"] {
            assert_eq!(tar_content(&cp_out(&daemon, &format!("{c}:{path}"))), "container-shadow\n", "{c}:{path}");
        }
        // The link itself comes out as a link; its target is named inside the container.
        assert_eq!(tar_names(&cp_out(&daemon, &format!("{c}:/tmp/shadow-link"))), ["shadow-link"]);
        let followed = work.path().join(format!("followed-{c}"));
        ok(daemon.docker(&["cp", "-L", &format!("{c}:/tmp/shadow-link"), &followed.display().to_string()]));
        assert_eq!(std::fs::read_to_string(&followed).unwrap(), "container-shadow\n");

        // Writes through the links land in the container's root.
        let canary = HostCanary::new(&format!("file-{c}"));
        let local = work.path().join(canary.name());
        std::fs::write(&local, "evil\n").unwrap();
        ok(daemon.docker(&["cp", &local.display().to_string(), &format!("{c}:/tmp/link")]));
        ok(daemon.docker(&["cp", &local.display().to_string(), &format!("{c}:/tmp/rel/")]));
        canary.assert_absent();
        assert_eq!(tar_content(&cp_out(&daemon, &format!("{c}:/{}", canary.name()))), "evil\n");

        // Archives that climb out with `..`, or through a link to `/`, or hardlink a host file.
        let canary = HostCanary::new(&format!("tar-{c}"));
        let climbing = tar_of(&[tar_entry(&format!("../../../../../../{}", canary.name()), b'0', "", b"x")]);
        let e = fails(docker_in(&daemon, &["cp", "-", &format!("{c}:/tmp")], &climbing));
        assert!(e.contains("is outside of"), "{e}");
        let e = fails(docker_in(&daemon, &["cp", "-", &format!("{c}:/tmp/link")], &climbing));
        assert!(e.contains("is outside of"), "{e}");
        let hardlink = tar_of(&[tar_entry("pw", b'1', "../../../etc/passwd", b"")]);
        let e = fails(docker_in(&daemon, &["cp", "-", &format!("{c}:/tmp")], &hardlink));
        assert!(e.contains("is outside of"), "{e}");
        let through_link = tar_of(&[
            tar_entry("esc", b'2', "/", b""),
            tar_entry(&format!("esc/{}", canary.name()), b'0', "", b"confined\n"),
            tar_entry("up", b'2', "../../../../../..", b""),
            tar_entry(&format!("up/{}-2", canary.name()), b'0', "", b"confined\n"),
        ]);
        ok(docker_in(&daemon, &["cp", "-", &format!("{c}:/tmp")], &through_link));
        canary.assert_absent();
        assert!(!Path::new(&format!("{}-2", canary.0.display())).exists(), "written on the host");
        // Confined to the directory extracted into.
        assert_eq!(tar_content(&cp_out(&daemon, &format!("{c}:/tmp/{}", canary.name()))), "confined\n");
        assert_eq!(tar_content(&cp_out(&daemon, &format!("{c}:/tmp/{}-2", canary.name()))), "confined\n");
    }
    assert!(!std::fs::read_to_string("/etc/shadow").unwrap_or_default().contains("container-shadow"), "the host's shadow was written");
}

#[test]
fn cp_through_volumes() {
    let Some((daemon, work)) = setup() else { return };
    let local = work.path().join("note");
    std::fs::write(&local, "in the volume\n").unwrap();
    let local = local.display().to_string();
    ok(daemon.docker(&["run", "-d", "--name", "vol", "-v", "data:/data", "-v", "ro:/ro:ro", "busybox", "sleep", "1000"]));
    ok(daemon.docker(&["cp", &local, "vol:/data/"]));
    assert_eq!(ok(daemon.docker(&["run", "--rm", "-v", "data:/v", "busybox", "cat", "/v/note"])), "in the volume\n");
    let e = fails(daemon.docker(&["cp", &local, "vol:/ro/"]));
    assert!(e.contains("mounted volume is marked read-only"), "{e}");
    // Stopped: the volume is still what /data shows.
    ok(daemon.docker(&["stop", "-t", "0", "vol"]));
    std::fs::write(work.path().join("note"), "while stopped\n").unwrap();
    ok(daemon.docker(&["cp", &local, "vol:/data/note2"]));
    assert_eq!(tar_content(&cp_out(&daemon, "vol:/data/note")), "in the volume\n");
    assert_eq!(tar_names(&cp_out(&daemon, "vol:/data")), ["data/", "data/note", "data/note2"]);
    assert_eq!(ok(daemon.docker(&["run", "--rm", "-v", "data:/v", "busybox", "cat", "/v/note2"])), "while stopped\n");
}

#[test]
fn export_and_diff() {
    let Some((daemon, _work)) = setup() else { return };
    let script = "echo added > /added && rm /etc/group && echo more >> /etc/passwd && mkdir -p /newdir/sub && rm -rf /home && mkdir /home && touch /home/fresh";
    ok(daemon.docker(&["run", "-d", "--name", "changed", "-v", "vol:/data", "busybox", "sh", "-c", &format!("{script} && echo x > /data/in-volume && sleep 1000")]));
    exec(&daemon, "changed", "test -f /home/fresh && test -f /data/in-volume");
    let diff = ok(daemon.docker(&["diff", "changed"]));
    let lines: Vec<&str> = diff.lines().collect();
    for want in ["A /added", "C /etc", "D /etc/group", "C /etc/passwd", "C /home", "A /home/fresh", "D /home/test", "A /newdir", "A /newdir/sub"] {
        assert!(lines.contains(&want), "{want} missing from:\n{diff}");
    }
    assert!(!diff.contains("in-volume"), "volumes are not in the diff:\n{diff}");
    assert!(!lines.iter().any(|l| l.ends_with("/bin") || l.ends_with("/bin/busybox")), "{diff}");

    for state in ["running", "stopped"] {
        let tar = ok_bytes(daemon.docker(&["export", "changed"]));
        let names = tar_names(&tar);
        for want in ["bin/busybox", "added", "etc/passwd", "home/fresh", "newdir/sub/"] {
            assert!(names.iter().any(|n| n == want), "{state}: {want} not exported");
        }
        for gone in ["etc/group", "home/test/", "data/in-volume"] {
            assert!(!names.iter().any(|n| n == gone), "{state}: {gone} exported");
        }
        ok(daemon.docker(&["stop", "-t", "0", "changed"]));
    }
    assert_eq!(ok(daemon.docker(&["diff", "changed"])), diff, "the diff of the stopped container");
    let e = fails(daemon.docker(&["export", "nosuch"]));
    assert!(e.contains("No such container"), "{e}");
    let e = fails(daemon.docker(&["diff", "nosuch"]));
    assert!(e.contains("No such container"), "{e}");
}

fn ok_bytes(o: Output) -> Vec<u8> {
    assert!(o.status.success(), "command failed: {}", stderr(&o));
    o.stdout
}

#[test]
fn commit_makes_an_image_of_the_container() {
    let Some((daemon, _work)) = setup() else { return };
    ok(daemon.docker(&["run", "-d", "--name", "src", "-e", "KEEP=kept", "busybox", "sh", "-c", "echo committed > /hello && rm /etc/group && sleep 1000"]));
    exec(&daemon, "src", "test -f /hello");
    let id = ok(daemon.docker(&[
        "commit", "-m", "a message", "-a", "An Author", "-c", r#"CMD ["cat", "/hello"]"#, "-c", "ENV ADDED=1", "-c", "LABEL purpose=test", "-c", "WORKDIR /tmp", "src", "made:v1",
    ]))
    .trim()
    .to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    // Paused for the commit only.
    assert_eq!(ok(daemon.docker(&["inspect", "-f", "{{.State.Status}}", "src"])).trim(), "running");

    assert_eq!(ok(daemon.docker(&["run", "--rm", "made:v1"])), "committed\n");
    assert_eq!(ok(daemon.docker(&["run", "--rm", "made:v1", "sh", "-c", "echo $KEEP $ADDED $(pwd); test -e /etc/group || echo no-group"])), "kept 1 /tmp\nno-group\n");
    let inspect = ok(daemon.docker(&["image", "inspect", "-f", "{{.Comment}}|{{.Author}}|{{json .Config.Cmd}}|{{.Config.Labels.purpose}}|{{len .RootFS.Layers}}", "made:v1"]));
    assert_eq!(inspect.trim(), r#"a message|An Author|["cat","/hello"]|test|2"#);
    let history = ok(daemon.docker(&["history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}", "made:v1"]));
    assert!(history.lines().next().unwrap().ends_with("sleep 1000|a message"), "{history}");

    // Without changes: an empty layer is not added; without a name the image has none.
    ok(daemon.docker(&["create", "--name", "untouched", "busybox", "true"]));
    let bare = ok(daemon.docker(&["commit", "--pause=false", "untouched"])).trim().to_string();
    let layers = ok(daemon.docker(&["image", "inspect", "-f", "{{len .RootFS.Layers}}|{{len .RepoTags}}", &bare]));
    assert_eq!(layers.trim(), "1|0");
    // A commit of a commit stacks.
    ok(daemon.docker(&["run", "--name", "second", "made:v1", "sh", "-c", "echo two > /two"]));
    ok(daemon.docker(&["commit", "second", "made:v2"]));
    assert_eq!(ok(daemon.docker(&["run", "--rm", "made:v2", "cat", "/hello", "/two"])), "committed\ntwo\n");
    // The events docker sends.
    // Replayed from the daemon's history; asked again for a moment when the machine is
    // busy (the replay ends at the time the CLI computes for `--until 0s`).
    let mut events = String::new();
    for _ in 0..50 {
        events = ok(daemon.docker(&["events", "--since", "0", "--until", "0s", "--filter", "container=src", "--format", "{{.Action}}"]));
        if events.contains("pause") && events.contains("commit") && events.contains("unpause") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(events.contains("pause") && events.contains("commit") && events.contains("unpause"), "{events}");

    let e = fails(daemon.docker(&["commit", "-c", "RUN make", "src"]));
    assert!(e.contains("not a valid change command"), "{e}");
    let e = fails(daemon.docker(&["commit", "nosuch"]));
    assert!(e.contains("No such container"), "{e}");
}
