//! Root integration tests against the real kernel. They adapt to the host's layout
//! (v1, hybrid or pure v2) and skip without root. `tests/v2-guest.sh` runs this binary
//! in a pure-v2 VM.

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use berth_cgroups::{layout, Cgroup, Layout};
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxHugepageLimitBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources,
    LinuxResourcesBuilder,
};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: needs root");
    }
    root
}

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "berth-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A child shell that waits for a line on stdin, then runs `script`.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
}

impl Proc {
    fn spawn(script: &str) -> Proc {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("read _go; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(BufReader::new);
        Proc {
            child,
            stdin,
            stdout,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn go(&mut self) {
        let mut s = self.stdin.take().expect("go twice");
        s.write_all(b"go\n").unwrap();
    }

    fn output(&mut self) -> String {
        let mut out = String::new();
        let r = self.stdout.as_mut().unwrap();
        let mut line = String::new();
        while r.read_line(&mut line).unwrap() > 0 {
            out.push_str(&line);
            line.clear();
        }
        let _ = self.child.wait();
        out
    }
}

/// Owns a test cgroup and its processes; cleans up on drop, also after a failed assertion.
struct Guard {
    cg: Cgroup,
    procs: Vec<Proc>,
}

impl Guard {
    fn new(tag: &str) -> Guard {
        let path = PathBuf::from("/").join(unique(tag));
        let cg = Cgroup::resolve(Some(&path), "unused").unwrap();
        Guard {
            cg,
            procs: Vec::new(),
        }
    }

    fn spawn_inside(&mut self, script: &str) -> usize {
        let p = Proc::spawn(script);
        self.cg.add_process(p.pid()).unwrap();
        self.procs.push(p);
        self.procs.len() - 1
    }

    /// The file of `controller` (v1 name) for this cgroup, wherever it is mounted.
    fn file(&self, controller: &str, v2_name: &str, v1_name: &str) -> (bool, PathBuf) {
        match self.cg.v1_path(controller) {
            Some(p) => (true, p.join(v1_name)),
            None => (false, self.cg.v2_path().unwrap().join(v2_name)),
        }
    }

    fn read(&self, controller: &str, v2_name: &str, v1_name: &str) -> (bool, String) {
        let (v1, p) = self.file(controller, v2_name, v1_name);
        let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        (v1, s.trim().to_string())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Frozen tasks do not die until thawed.
        let _ = self.cg.thaw();
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        if let Err(e) = self.cg.destroy() {
            eprintln!("cleanup: {e}");
        }
    }
}

fn dev(
    allow: bool,
    typ: LinuxDeviceType,
    major: i64,
    minor: i64,
    access: &str,
) -> LinuxDeviceCgroup {
    LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .typ(typ)
        .major(major)
        .minor(minor)
        .access(access)
        .build()
        .unwrap()
}

fn deny_all() -> LinuxDeviceCgroup {
    LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .unwrap()
}

fn has_hugepage_2mb() -> bool {
    Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists()
}

fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn layout_matches_mounted_hierarchies() {
    let l = layout().unwrap();
    let hs = berth_cgroups::hierarchies().unwrap();
    eprintln!("layout {l:?}");
    // The v2 guest sets this so a silent fall-back to another layout cannot pass.
    if let Ok(want) = std::env::var("BERTH_CGROUPS_EXPECT_LAYOUT") {
        assert_eq!(format!("{l:?}"), want);
    }
    let v2_at = |p: &str| {
        hs.iter()
            .any(|h| h.version == 2 && h.mount_point == Path::new(p))
    };
    match l {
        Layout::V2 => assert!(v2_at("/sys/fs/cgroup"), "{hs:?}"),
        Layout::Hybrid => {
            assert!(v2_at("/sys/fs/cgroup/unified"), "{hs:?}");
            assert!(hs
                .iter()
                .any(|h| h.version == 1 && h.controllers.iter().any(|c| c == "memory")));
        }
        Layout::V1 => assert!(hs.iter().all(|h| h.version == 1)),
    }
}

#[test]
fn resolve_touches_nothing_and_places_paths() {
    let name = unique("resolve");
    let abs = PathBuf::from("/").join(&name).join("leaf");
    let cg = Cgroup::resolve(Some(&abs), "x").unwrap();
    let hs = berth_cgroups::hierarchies().unwrap();
    for p in cg.paths() {
        assert!(!p.exists(), "{} created by resolve", p.display());
        assert!(
            p.ends_with(Path::new(&name).join("leaf")),
            "{}",
            p.display()
        );
        assert!(hs
            .iter()
            .any(|h| p.parent().unwrap().parent().unwrap() == h.mount_point));
    }
    match layout().unwrap() {
        Layout::V1 => assert!(cg.v2_path().is_none()),
        Layout::V2 => {
            assert_eq!(
                cg.v2_path().unwrap(),
                Path::new("/sys/fs/cgroup").join(&name).join("leaf")
            );
            assert_eq!(cg.paths().count(), 1);
        }
        Layout::Hybrid => {
            assert_eq!(
                cg.v2_path().unwrap(),
                Path::new("/sys/fs/cgroup/unified").join(&name).join("leaf")
            );
            assert!(cg.v1_path("name=systemd").is_some());
        }
    }
    // Default path is /<container id>.
    let d = Cgroup::resolve(None, &name).unwrap();
    for p in d.paths() {
        assert_eq!(p.file_name().unwrap(), name.as_str());
    }
    // Relative paths go below the caller's own cgroup of each hierarchy.
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let rel = Cgroup::resolve(Some(Path::new(&name)), "x").unwrap();
    if let Some(mem) = rel.v1_path("memory") {
        let own_mem = own
            .lines()
            .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
            .unwrap();
        let want = Path::new("/sys/fs/cgroup/memory")
            .join(own_mem.trim_start_matches('/'))
            .join(&name);
        assert_eq!(mem, want.as_path());
    }
    let e = Cgroup::resolve(Some(Path::new("/a/../../etc")), "x").unwrap_err();
    assert!(e.to_string().contains("\"..\""), "{e}");
    assert!(Cgroup::resolve(None, "../x").is_err());
    // The state file round trip.
    let json = serde_json::to_string(&cg).unwrap();
    let back: Cgroup = serde_json::from_str(&json).unwrap();
    assert_eq!(
        back.paths().collect::<Vec<_>>(),
        cg.paths().collect::<Vec<_>>()
    );
}

#[test]
fn create_is_idempotent_and_destroy_removes_everything() {
    if !is_root() {
        return;
    }
    let g = Guard::new("create");
    g.cg.create().unwrap();
    g.cg.create().unwrap();
    for p in g.cg.paths() {
        assert!(p.is_dir(), "{}", p.display());
    }
    if let Some(cpuset) = g.cg.v1_path("cpuset") {
        let cpus = std::fs::read_to_string(cpuset.join("cpuset.cpus")).unwrap();
        assert!(
            !cpus.trim().is_empty(),
            "cpuset.cpus copied from the parent"
        );
    }
    // An empty resource set writes nothing and succeeds.
    g.cg.apply(&LinuxResources::default()).unwrap();
    // A sub-cgroup the container made is removed with it.
    let first = g.cg.paths().next().unwrap().to_path_buf();
    std::fs::create_dir(first.join("nested")).unwrap();
    g.cg.destroy().unwrap();
    for p in g.cg.paths() {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    // Destroying again is fine.
    g.cg.destroy().unwrap();
}

#[test]
fn nested_create_fills_intermediate_levels() {
    if !is_root() {
        return;
    }
    let top = unique("nested");
    let path = PathBuf::from("/").join(&top).join("a/b");
    let cg = Cgroup::resolve(Some(&path), "x").unwrap();
    let top_cg = Cgroup::resolve(Some(&PathBuf::from("/").join(&top)), "x").unwrap();
    let mid_cg = Cgroup::resolve(Some(&PathBuf::from("/").join(&top).join("a")), "x").unwrap();
    struct Cleanup(Vec<Cgroup>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for c in &self.0 {
                let _ = c.destroy();
            }
        }
    }
    let _c = Cleanup(vec![cg.clone(), mid_cg, top_cg]);
    cg.create().unwrap();
    let mut p = Proc::spawn("exec sleep 10");
    // Adding a process needs non-empty cpusets on every level (v1) and delegated
    // controllers on v2.
    let added = cg.add_process(p.pid());
    let _ = p.child.kill();
    let _ = p.child.wait();
    added.unwrap();
    if let Some(v2) = cg.v2_path() {
        let parent = v2.parent().unwrap();
        let ctl = std::fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap();
        let mount = v2.ancestors().nth(3).unwrap();
        let avail = std::fs::read_to_string(mount.join("cgroup.controllers")).unwrap();
        for c in avail.split_whitespace() {
            assert!(
                ctl.split_whitespace().any(|e| e == c),
                "{c} not delegated: {ctl}"
            );
        }
    }
}

#[test]
fn limits_are_written_and_read_back() {
    if !is_root() {
        return;
    }
    let g = Guard::new("limits");
    g.cg.create().unwrap();
    let v1_cpu = g.cg.v1_path("cpu").is_some();
    let mut cpu = LinuxCpuBuilder::default()
        .shares(512u64)
        .quota(50_000i64)
        .period(100_000u64)
        .cpus("0")
        .mems("0");
    if v1_cpu {
        cpu = cpu
            .realtime_period(1_000_000u64)
            .realtime_runtime(10_000i64);
    }
    let mut res = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64i64 << 20)
                .reservation(32i64 << 20)
                .build()
                .unwrap(),
        )
        .cpu(cpu.build().unwrap())
        .pids(LinuxPidsBuilder::default().limit(64i64).build().unwrap());
    if has_hugepage_2mb() {
        res = res.hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(8i64 << 20)
            .build()
            .unwrap()]);
    }
    g.cg.apply(&res.build().unwrap()).unwrap();

    let (v1, v) = g.read("memory", "memory.max", "memory.limit_in_bytes");
    assert_eq!(v, (64u64 << 20).to_string(), "v1={v1}");
    let (_, v) = g.read("memory", "memory.low", "memory.soft_limit_in_bytes");
    assert_eq!(v, (32u64 << 20).to_string());
    let (v1, v) = g.read("cpu", "cpu.weight", "cpu.shares");
    assert_eq!(
        v,
        if v1 {
            "512".to_string()
        } else {
            berth_cgroups::shares_to_weight(512).to_string()
        }
    );
    if v1 {
        assert_eq!(g.read("cpu", "", "cpu.cfs_quota_us").1, "50000");
        assert_eq!(g.read("cpu", "", "cpu.cfs_period_us").1, "100000");
        assert_eq!(g.read("cpu", "", "cpu.rt_runtime_us").1, "10000");
    } else {
        assert_eq!(g.read("cpu", "cpu.max", "").1, "50000 100000");
    }
    assert_eq!(g.read("pids", "pids.max", "pids.max").1, "64");
    assert_eq!(g.read("cpuset", "cpuset.cpus", "cpuset.cpus").1, "0");
    assert_eq!(g.read("cpuset", "cpuset.mems", "cpuset.mems").1, "0");
    if has_hugepage_2mb() {
        let (_, v) = g.read("hugetlb", "hugetlb.2MB.max", "hugetlb.2MB.limit_in_bytes");
        assert_eq!(v, (8u64 << 20).to_string());
    }

    // Update: only the given fields change.
    let upd = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(0i64).build().unwrap())
        .memory(
            LinuxMemoryBuilder::default()
                .limit(128i64 << 20)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    g.cg.apply(&upd).unwrap();
    assert_eq!(g.read("pids", "pids.max", "pids.max").1, "max");
    assert_eq!(
        g.read("memory", "memory.max", "memory.limit_in_bytes").1,
        (128u64 << 20).to_string()
    );
    assert_eq!(g.read("cpuset", "cpuset.cpus", "cpuset.cpus").1, "0");
}

#[test]
fn errors_name_the_file_and_value() {
    if !is_root() {
        return;
    }
    let g = Guard::new("errors");
    g.cg.create().unwrap();
    let res = LinuxResourcesBuilder::default()
        .cpu(LinuxCpuBuilder::default().cpus("4096").build().unwrap())
        .build()
        .unwrap();
    let e = g.cg.apply(&res).unwrap_err().to_string();
    let (_, file) = g.file("cpuset", "cpuset.cpus", "cpuset.cpus");
    assert!(
        e.starts_with(&format!("write 4096 to {}: ", file.display())),
        "{e}"
    );
    assert!(!e.ends_with('.'));
    let res = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .shares(1u64 << 40)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    if g.cg.v1_path("cpu").is_some() {
        let e = g.cg.apply(&res).unwrap_err().to_string();
        assert!(e.contains("cpu shares"), "{e}");
    }
}

#[test]
fn unified_resources_follow_the_layout() {
    if !is_root() {
        return;
    }
    let g = Guard::new("unified");
    g.cg.create().unwrap();
    let mut u = std::collections::HashMap::new();
    u.insert("memory.high".to_string(), (256u64 << 20).to_string());
    let res = LinuxResourcesBuilder::default().unified(u).build().unwrap();
    match layout().unwrap() {
        Layout::V2 => {
            g.cg.apply(&res).unwrap();
            let v = std::fs::read_to_string(g.cg.v2_path().unwrap().join("memory.high")).unwrap();
            assert_eq!(v.trim(), (256u64 << 20).to_string());
        }
        Layout::Hybrid => {
            let e = g.cg.apply(&res).unwrap_err().to_string();
            assert!(e.contains("mounted as cgroup v1"), "{e}");
            if has_hugepage_2mb() && g.cg.v1_path("hugetlb").is_none() {
                let mut u = std::collections::HashMap::new();
                u.insert("hugetlb.2MB.max".to_string(), (4u64 << 20).to_string());
                g.cg.apply(&LinuxResourcesBuilder::default().unified(u).build().unwrap())
                    .unwrap();
            }
        }
        Layout::V1 => {
            let e = g.cg.apply(&res).unwrap_err().to_string();
            assert!(e.contains("need cgroup v2"), "{e}");
        }
    }
}

#[test]
fn processes_freeze_thaw_and_stats() {
    if !is_root() {
        return;
    }
    let mut g = Guard::new("procs");
    g.cg.create().unwrap();
    assert!(g.cg.pids().unwrap().is_empty());
    let i = g.spawn_inside("exec sleep 10");
    let pid = g.procs[i].pid();
    assert_eq!(g.cg.pids().unwrap(), [pid]);
    // The exec after joining charges fresh memory to the cgroup.
    g.procs[i].go();

    assert!(!g.cg.is_frozen().unwrap());
    g.cg.freeze().unwrap();
    assert!(g.cg.is_frozen().unwrap());
    assert_eq!(g.cg.pids().unwrap(), [pid]);
    g.cg.thaw().unwrap();
    assert!(!g.cg.is_frozen().unwrap());

    let mut stats = g.cg.stats().unwrap();
    let usage_seen = wait_until(|| {
        stats = g.cg.stats().unwrap();
        stats.memory.usage.usage > 0
    });
    assert!(usage_seen, "memory usage stays 0: {stats:?}");
    assert_eq!(stats.pids.current, 1);
    let json = serde_json::to_value(&stats).unwrap();
    eprintln!("stats: {json}");
    assert!(
        json["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "{json}"
    );
    assert!(
        json.get("cpu").is_some() && json.get("hugetlb").is_some(),
        "{json}"
    );
    if has_hugepage_2mb() {
        assert!(stats.hugetlb.contains_key("2MB"), "{json}");
    }

    // Killing the process and destroying leaves nothing behind.
    let mut p = g.procs.pop().unwrap();
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    assert!(wait_until(|| g.cg.pids().unwrap().is_empty()));
    g.cg.destroy().unwrap();
    for p in g.cg.paths() {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

#[test]
fn device_rules_are_enforced() {
    if !is_root() {
        return;
    }
    let mut g = Guard::new("devices");
    g.cg.create().unwrap();
    // Deny everything, allow /dev/zero (1:5) and read-only /dev/full (1:7).
    let rules = vec![
        deny_all(),
        dev(true, LinuxDeviceType::C, 1, 5, "rwm"),
        dev(true, LinuxDeviceType::C, 1, 7, "r"),
    ];
    g.cg.apply(
        &LinuxResourcesBuilder::default()
            .devices(rules)
            .build()
            .unwrap(),
    )
    .unwrap();
    if let Some(d) = g.cg.v1_path("devices") {
        let list = std::fs::read_to_string(d.join("devices.list")).unwrap();
        assert_eq!(list, "c 1:5 rwm\nc 1:7 r\n");
    }
    let script = "if cat /dev/null; then echo null-ok; else echo null-denied; fi; \
                  if head -c1 /dev/zero >/dev/zero; then echo zero-ok; else echo zero-denied; fi; \
                  if head -c1 /dev/full >/dev/zero; then echo full-read-ok; fi; \
                  if echo x >>/dev/full; then echo full-write-ok; else echo full-write-denied; fi";
    let i = g.spawn_inside(script);
    g.procs[i].go();
    let out = g.procs[i].output();
    assert!(out.contains("null-denied"), "{out}");
    assert!(out.contains("zero-ok"), "{out}");
    assert!(out.contains("full-read-ok"), "{out}");
    assert!(out.contains("full-write-denied"), "{out}");

    // Update to a new list: /dev/null allowed now, /dev/zero not.
    let rules = vec![deny_all(), dev(true, LinuxDeviceType::C, 1, 3, "rwm")];
    g.cg.apply(
        &LinuxResourcesBuilder::default()
            .devices(rules)
            .build()
            .unwrap(),
    )
    .unwrap();
    if let Some(d) = g.cg.v1_path("devices") {
        let list = std::fs::read_to_string(d.join("devices.list")).unwrap();
        assert_eq!(list, "c 1:3 rwm\n");
    }
    let i = g.spawn_inside(
        "if cat /dev/null; then echo null-ok; fi; if head -c1 /dev/zero >/dev/null; then echo zero-ok; else echo zero-denied; fi",
    );
    g.procs[i].go();
    let out = g.procs[i].output();
    assert!(out.contains("null-ok"), "{out}");
    assert!(out.contains("zero-denied"), "{out}");
}
