//! berth-runc: a runc-compatible command line over berth-runtime.

mod features;
mod spec_cmd;
mod update;

use anyhow::{anyhow, bail, Context, Result};
use berth_runtime::container::{self, CreateOptions, ExecOptions};
use clap::{Parser, Subcommand};
use oci_spec::runtime::Process;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "berth-runc", version, about = "Run OCI containers (runc-compatible)")]
struct Cli {
    /// Root directory for container state
    #[arg(long, global = true, default_value = "/run/berth-runc", env = "BERTH_RUNC_ROOT")]
    root: PathBuf,
    /// Log file (errors are also written here)
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Debug logging
    #[arg(long, global = true)]
    debug: bool,
    /// Use the systemd cgroup driver (not supported)
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Accepted for compatibility; rootless mode is detected (before the subcommand only,
    /// as `spec --rootless` is a different flag)
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,
    /// Accepted for compatibility (checkpointing is not supported)
    #[arg(long, global = true, hide = true)]
    criu: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct CreateArgs {
    id: String,
    /// Path to the bundle directory
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket that receives the pty master
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// File to write the container's pid to
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Accepted for compatibility
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass N extra fds (from 3) to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
}

#[derive(Subcommand)]
enum Command {
    /// Create a container
    Create(CreateArgs),
    /// Start a created container
    Start { id: String },
    /// Create and start a container
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Detach from the container's process
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits
        #[arg(long)]
        keep: bool,
    },
    /// Print a container's state
    State { id: String },
    /// Send a signal to a container
    Kill {
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
        /// Signal every process in the container
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a container
    Delete {
        id: String,
        /// Kill a running container first
        #[arg(short, long)]
        force: bool,
    },
    /// Run a process in a running container
    Exec(ExecArgs),
    /// List a container's processes
    Ps {
        id: String,
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Arguments for ps(1)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze a container's processes
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// List containers
    List {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a default config.json
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long = "rootless")]
        spec_rootless: bool,
    },
    /// Print the runtime's features (JSON)
    Features,
    /// Print container events and resource statistics
    Events {
        id: String,
        /// Print stats once and exit
        #[arg(long)]
        stats: bool,
        /// Interval between stats
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// Update a container's resource limits
    Update(update::UpdateArgs),
}

#[derive(clap::Args)]
struct ExecArgs {
    id: String,
    /// Command and arguments (unless -p is given)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Environment variables (KEY=VALUE)
    #[arg(short, long)]
    env: Vec<String>,
    /// Allocate a terminal
    #[arg(short, long)]
    tty: bool,
    /// uid[:gid]
    #[arg(short, long)]
    user: Option<String>,
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// process.json describing the process
    #[arg(short, long)]
    process: Option<PathBuf>,
    #[arg(short, long)]
    detach: bool,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    #[arg(long = "process-label")]
    process_label: Option<String>,
    #[arg(long)]
    apparmor: Option<String>,
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// Add a capability
    #[arg(short, long)]
    cap: Vec<String>,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
    /// Accepted for compatibility
    #[arg(long)]
    cgroup: Vec<String>,
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
}

fn main() {
    // Commands that enter a container re-exec from a sealed binary; doing it before any
    // parsing saves that work in the first process. `dispatch` checks again (no-op once
    // sealed), so a command this guess misses is still covered.
    if std::env::args().skip(1).any(|a| matches!(a.as_str(), "create" | "run" | "exec")) {
        let _ = berth_runtime::selfexe::ensure_sealed();
    }
    let cli = Cli::parse();
    if cli.debug {
        let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_max_level(tracing::Level::DEBUG).try_init();
    } else {
        let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_max_level(tracing::Level::WARN).without_time().try_init();
    }
    let code = match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            log_error(&cli, &msg);
            eprintln!("berth-runc: {msg}");
            1
        }
    };
    std::process::exit(code);
}

/// Writes the error where containerd and conmon look for it: the --log file.
fn log_error(cli: &Cli, msg: &str) {
    let Some(path) = &cli.log else { return };
    let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) else { return };
    let time = berth_runtime::state::now_rfc3339();
    let line = if cli.log_format == "json" {
        serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string()
    } else {
        format!("time={time:?} level=error msg={msg:?}")
    };
    let _ = writeln!(f, "{line}");
}

fn dispatch(cli: &Cli) -> Result<i32> {
    if cli.systemd_cgroup {
        bail!("the systemd cgroup driver is not supported: use the cgroupfs driver (drop --systemd-cgroup)");
    }
    let root = cli.root.as_path();
    match &cli.command {
        Command::Create(a) => {
            seal()?;
            container::create(&create_options(root, a, false))?;
            Ok(0)
        }
        Command::Start { id } => {
            container::start(root, id)?;
            Ok(0)
        }
        Command::Run { create, detach, keep } => {
            seal()?;
            if *detach {
                container::create(&create_options(root, create, false))?;
                container::start(root, &create.id)?;
                return Ok(0);
            }
            container::block_signals()?;
            let mut created = container::create(&create_options(root, create, true))?;
            let console = created.take_console()?;
            let started = created.start();
            let code = match started {
                Ok(()) => container::wait_foreground(created.pid, console),
                Err(e) => Err(e),
            };
            if !*keep {
                container::delete(root, &create.id, true)?;
            }
            Ok(code?)
        }
        Command::State { id } => {
            let st = container::state(root, id)?;
            println!("{}", serde_json::to_string_pretty(&st)?);
            Ok(0)
        }
        Command::Kill { id, signal, all } => {
            container::kill(root, id, parse_signal(signal)?, *all)?;
            Ok(0)
        }
        Command::Delete { id, force } => {
            container::delete(root, id, *force)?;
            Ok(0)
        }
        Command::Exec(a) => exec(root, a),
        Command::Ps { id, format, ps_args } => ps(root, id, format, ps_args),
        Command::Pause { id } => Ok(container::pause(root, id).map(|_| 0)?),
        Command::Resume { id } => Ok(container::resume(root, id).map(|_| 0)?),
        Command::List { format, quiet } => list(root, format, *quiet),
        Command::Spec { bundle, spec_rootless } => {
            spec_cmd::write_spec(bundle, *spec_rootless)?;
            Ok(0)
        }
        Command::Features => {
            println!("{}", serde_json::to_string_pretty(&features::features())?);
            Ok(0)
        }
        Command::Events { id, stats, interval } => events(root, id, *stats, interval),
        Command::Update(a) => {
            let resources = update::resources(a)?;
            container::update(root, &a.id, &resources)?;
            Ok(0)
        }
    }
}

/// Re-executes from a sealed copy before doing anything that enters a container.
fn seal() -> Result<()> {
    berth_runtime::selfexe::ensure_sealed().context("re-exec from a sealed copy of berth-runc")
}

fn create_options<'a>(root: &'a Path, a: &'a CreateArgs, foreground: bool) -> CreateOptions<'a> {
    CreateOptions {
        root,
        id: &a.id,
        bundle: &a.bundle,
        console_socket: a.console_socket.as_deref(),
        pid_file: a.pid_file.as_deref(),
        no_pivot: a.no_pivot,
        preserve_fds: a.preserve_fds,
        foreground,
    }
}

/// Accepts "KILL", "SIGKILL", "kill" and numbers, as runc does.
fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal {s:?}: numbers go from 1 to 64");
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    if let Some(rt) = name.strip_prefix("SIGRTMIN") {
        let base = libc::SIGRTMIN();
        let off: i32 = if rt.is_empty() { 0 } else { rt.trim_start_matches('+').parse().map_err(|_| anyhow!("invalid signal {s:?}"))? };
        return Ok(base + off);
    }
    name.parse::<nix::sys::signal::Signal>().map(|s| s as i32).map_err(|_| anyhow!("invalid signal {s:?}"))
}

fn exec(root: &Path, a: &ExecArgs) -> Result<i32> {
    let config = container::config(root, &a.id)?;
    let process = match &a.process {
        Some(p) => {
            let data = std::fs::read(p).with_context(|| format!("read {}", p.display()))?;
            berth_runtime::spec::parse_json::<Process>(&data, &p.display().to_string())?
        }
        None => exec_process_from_flags(&config, a)?,
    };
    seal()?;
    let foreground = !a.detach;
    if foreground {
        container::block_signals()?;
    }
    let started = container::exec(ExecOptions {
        root,
        id: &a.id,
        process,
        console_socket: a.console_socket.as_deref(),
        pid_file: a.pid_file.as_deref(),
        detach: a.detach,
        preserve_fds: a.preserve_fds,
    })?;
    if a.detach {
        return Ok(0);
    }
    Ok(container::wait_foreground(started.pid, started.console)?)
}

/// Builds the exec'd process from the container's own process and the flags.
fn exec_process_from_flags(config: &oci_spec::runtime::Spec, a: &ExecArgs) -> Result<Process> {
    if a.command.is_empty() {
        bail!("exec needs a command (or -p process.json)");
    }
    let mut p = config.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    let mut env = p.env().clone().unwrap_or_default();
    for e in &a.env {
        if !e.contains('=') {
            bail!("--env {e:?}: expected KEY=VALUE");
        }
        let key = e.split('=').next().unwrap_or_default();
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u.parse::<u32>(), g.parse::<u32>()),
            None => (u.parse::<u32>(), Ok(p.user().gid())),
        };
        let (Ok(uid), Ok(gid)) = (uid, gid) else { bail!("--user {u:?}: expected uid[:gid] as numbers") };
        p.user_mut().set_uid(uid);
        p.user_mut().set_gid(gid);
    }
    if !a.additional_gids.is_empty() {
        p.user_mut().set_additional_gids(Some(a.additional_gids.clone()));
    }
    if let Some(l) = &a.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    if let Some(aa) = &a.apparmor {
        p.set_apparmor_profile(Some(aa.clone()));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.cap.is_empty() {
        // Added capabilities go to bounding, effective, permitted and ambient; never to
        // inheritable (CVE-2022-29162).
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for c in &a.cap {
            let cap: oci_spec::runtime::Capability = serde_json::from_value(serde_json::Value::String(c.clone()))
                .map_err(|_| anyhow!("--cap {c:?}: unknown capability"))?;
            let with = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(with(caps.bounding()));
            caps.set_effective(with(caps.effective()));
            caps.set_permitted(with(caps.permitted()));
            caps.set_ambient(with(caps.ambient()));
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

fn ps(root: &Path, id: &str, format: &str, ps_args: &[String]) -> Result<i32> {
    let pids = container::pids(root, id)?;
    if format == "json" {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(0);
    }
    let args = if ps_args.is_empty() { vec!["-ef".to_string()] } else { ps_args.to_vec() };
    let out = std::process::Command::new("ps").args(&args).output().context("run ps")?;
    if !out.status.success() {
        bail!("ps {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header.split_whitespace().position(|h| h == "PID").ok_or_else(|| anyhow!("ps output has no PID column"))?;
    println!("{header}");
    for line in lines {
        let pid = line.split_whitespace().nth(pid_col).and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(0)
}

fn list(root: &Path, format: &str, quiet: bool) -> Result<i32> {
    let all = container::list(root)?;
    if quiet {
        for (rec, _) in &all {
            println!("{}", rec.id);
        }
        return Ok(0);
    }
    if format == "json" {
        let v: Vec<_> = all
            .iter()
            .map(|(rec, status)| {
                let st = rec.oci_state(*status);
                serde_json::json!({
                    "ociVersion": st.oci_version, "id": st.id, "pid": st.pid, "status": st.status,
                    "bundle": st.bundle, "rootfs": st.rootfs, "created": st.created, "owner": st.owner,
                    "annotations": st.annotations,
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&v)?);
        return Ok(0);
    }
    let mut out = String::from("ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n");
    for (rec, status) in &all {
        let pid = if *status == berth_runtime::state::Status::Stopped { 0 } else { rec.pid };
        out.push_str(&format!("{}\t{}\t{}\t{}\t{}\t{}\n", rec.id, pid, status, rec.bundle.display(), rec.created, rec.owner));
    }
    print!("{}", align_tabs(&out));
    Ok(0)
}

/// Aligns tab-separated columns like Go's tabwriter with padding 3.
fn align_tabs(text: &str) -> String {
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, s)| if i + 1 == r.len() { s.to_string() } else { format!("{s:<w$}", w = widths[i] + 3) })
            .collect();
        out.push_str(line.join("").trim_end());
        out.push('\n');
    }
    out
}

fn events(root: &Path, id: &str, once: bool, interval: &str) -> Result<i32> {
    let every = parse_duration(interval)?;
    loop {
        let stats = container::stats(root, id)?;
        let ev = serde_json::json!({"type": "stats", "id": id, "data": stats});
        println!("{ev}");
        if once {
            return Ok(0);
        }
        std::thread::sleep(every);
    }
}

fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len()));
    let n: f64 = num.parse().map_err(|_| anyhow!("invalid duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid duration {s:?}"),
    };
    if secs <= 0.0 {
        bail!("invalid duration {s:?}: must be positive");
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("hup").unwrap(), 1);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("SIGNOPE").unwrap_err().to_string().contains("SIGNOPE"));
        assert_eq!(parse_signal("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), std::time::Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), std::time::Duration::from_millis(250));
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn tabs() {
        assert_eq!(align_tabs("ID\tPID\nabc\t1\n"), "ID    PID\nabc   1\n");
    }
}
