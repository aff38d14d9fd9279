//! What a container needs before its shim starts: the image's config merged in at
//! create, its /etc files, user and mounts resolved, and the OCI bundle written (the
//! rules themselves are berth-spec's); plus the small parsers of signals and detach keys.

use std::collections::{BTreeMap, HashMap};

use bollard_stubs::models::{ContainerConfig, ExecConfig, HostConfig};
use serde_json::Value;

use super::{Container, Containers, Record};
use crate::error::{Error, Result};

pub(super) fn spec_error(e: berth_spec::Error) -> Error {
    match e.kind() {
        berth_spec::ErrorKind::NotFound => Error::NotFound(e.to_string()),
        berth_spec::ErrorKind::InvalidArgument => Error::InvalidArgument(e.to_string()),
        _ => Error::Internal(e.to_string()),
    }
}

/// Docker's merge of the image's config into the container's, at create time.
pub fn merge_image_config(config: &mut ContainerConfig, image_config: &Value) -> Result<()> {
    let image: bollard_stubs::models::ImageConfig = match image_config.get("config") {
        Some(v) if !v.is_null() => serde_json::from_value(v.clone()).map_err(|e| Error::Internal(format!("image config: {e}")))?,
        _ => Default::default(),
    };
    berth_spec::merge_image_config(config, &image);
    Ok(())
}

/// Checks a create request; returns docker's warnings.
pub fn validate(config: &ContainerConfig, host: &HostConfig) -> Result<Vec<String>> {
    berth_spec::validate(config, host).map_err(spec_error)?;
    let (driver, options) = log_config(host);
    berth_logfile::LogConfig::parse(&driver, &options).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    Ok(vec![])
}

/// Fills what dockerd fills at create time, so `inspect` shows what docker's does.
pub fn normalize(id: &str, config: &mut ContainerConfig, host: &mut HostConfig) {
    use bollard_stubs::models::{HostConfigLogConfig, RestartPolicy, RestartPolicyNameEnum};
    if config.hostname.as_deref().is_none_or(str::is_empty) {
        config.hostname = Some(id[..12].to_string());
    }
    for field in [&mut config.domainname, &mut config.user, &mut config.working_dir] {
        field.get_or_insert_with(String::new);
    }
    for field in [&mut config.attach_stdin, &mut config.attach_stdout, &mut config.attach_stderr, &mut config.tty, &mut config.open_stdin, &mut config.stdin_once] {
        field.get_or_insert(false);
    }
    config.labels.get_or_insert_with(Default::default);
    let log = host.log_config.get_or_insert_with(HostConfigLogConfig::default);
    if log.typ.as_deref().is_none_or(str::is_empty) {
        log.typ = Some("json-file".into());
    }
    log.config.get_or_insert_with(Default::default);
    if host.network_mode.as_deref().is_none_or(|m| m.is_empty() || m == "default") {
        // No bridge networking yet: the default is an empty network namespace.
        host.network_mode = Some("none".into());
    }
    let restart = host.restart_policy.get_or_insert_with(RestartPolicy::default);
    if restart.name.is_none() || restart.name == Some(RestartPolicyNameEnum::EMPTY) {
        restart.name = Some(RestartPolicyNameEnum::NO);
    }
    restart.maximum_retry_count.get_or_insert(0);
    if host.shm_size.is_none_or(|s| s == 0) {
        host.shm_size = Some(64 << 20);
    }
    if host.ipc_mode.as_deref().is_none_or(str::is_empty) {
        host.ipc_mode = Some("private".into());
    }
    host.auto_remove.get_or_insert(false);
    host.privileged.get_or_insert(false);
    host.readonly_rootfs.get_or_insert(false);
    host.runtime.get_or_insert_with(|| "berth".into());
}

/// The program and its arguments: ENTRYPOINT followed by CMD.
pub fn command(config: &ContainerConfig) -> (String, Vec<String>) {
    let mut all = config.entrypoint.clone().unwrap_or_default();
    all.extend(config.cmd.clone().unwrap_or_default());
    let mut it = all.into_iter();
    (it.next().unwrap_or_default(), it.collect())
}

/// The container's log driver and options (`json-file` by default).
pub fn log_config(host: &HostConfig) -> (String, HashMap<String, String>) {
    let log = host.log_config.as_ref();
    let driver = log.and_then(|l| l.typ.clone()).filter(|d| !d.is_empty()).unwrap_or_else(|| "json-file".into());
    let options = log.and_then(|l| l.config.clone()).unwrap_or_default().into_iter().collect();
    (driver, options)
}

/// What `prepare` settled that the shim needs.
pub struct Prepared {
    pub log_driver: String,
    pub log_options: BTreeMap<String, String>,
    pub log_attrs: BTreeMap<String, String>,
}

/// Writes the container's /etc files and its OCI bundle (`config.json`), with the
/// rootfs mounted.
pub fn prepare(containers: &Containers, c: &Container, record: &Record) -> Result<Prepared> {
    let rootfs = c.rootfs();
    let host = &record.host_config;
    let config = &record.config;
    let hostname = config.hostname.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| record.short_id().to_string());
    let network_mode = host.network_mode.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| "none".into());
    let hosts = if network_mode == "host" && host.extra_hosts.as_deref().unwrap_or_default().is_empty() {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        berth_spec::hosts_file(&hostname, &[], host.extra_hosts.as_deref().unwrap_or_default(), &network_mode).map_err(spec_error)?
    };
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv = berth_spec::resolv_conf(
        &host_resolv,
        host.dns.as_deref().unwrap_or_default(),
        host.dns_search.as_deref().unwrap_or_default(),
        host.dns_options.as_deref().unwrap_or_default(),
        &network_mode,
    );
    let etc = |name: &str, content: &str| -> Result<std::path::PathBuf> {
        let path = c.dir.join(name);
        std::fs::write(&path, content).map_err(Error::io("write", &path))?;
        Ok(path)
    };
    let hostname_path = etc("hostname", &format!("{hostname}\n"))?;
    let hosts_path = etc("hosts", &hosts)?;
    let resolv_path = etc("resolv.conf", &resolv)?;

    let user = berth_spec::resolve_user(&rootfs, config.user.as_deref().unwrap_or(""), host.group_add.as_deref().unwrap_or_default())
        .map_err(spec_error)?;
    let init = host.init.unwrap_or(false).then(berth_init::find).transpose().map_err(|e| Error::Internal(e.to_string()))?;
    let namespace_paths = containers.namespace_paths(host)?;
    let (driver, options) = log_config(host);
    let log = berth_logfile::LogConfig::parse(&driver, &options).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let (path, args) = command(config);
    let info = berth_logfile::ContainerInfo {
        id: record.id.clone(),
        name: record.name.clone(),
        image_id: record.image.clone(),
        image_name: config.image.clone().unwrap_or_default(),
        command: std::iter::once(path).chain(args).collect(),
        labels: config.labels.clone().unwrap_or_default(),
        env: config.env.clone().unwrap_or_default(),
        daemon_name: "berthd".into(),
    };
    let attrs = log.attributes(&info).map_err(|e| Error::InvalidArgument(e.to_string()))?;

    // Volumes are acquired from here on: a failure lets go of them again.
    let mounts = containers.resolve_mounts(c, config, host)?;
    let ctx = berth_spec::Context {
        id: &record.id,
        rootfs: &rootfs,
        config,
        host,
        user: &user,
        mounts: &mounts,
        etc_files: berth_spec::EtcFiles { hostname: Some(&hostname_path), hosts: Some(&hosts_path), resolv_conf: Some(&resolv_path) },
        shm_path: None,
        namespace_paths,
        cgroup_parent: host.cgroup_parent.as_deref().filter(|p| !p.is_empty()).unwrap_or("/berth"),
        init_path: init.as_deref(),
        seccomp_profile: None,
    };
    let written = berth_spec::build(&ctx).map_err(spec_error).and_then(|spec| {
        let path = c.dir.join("config.json");
        let bytes = serde_json::to_vec(&spec).map_err(|e| Error::Internal(format!("encode the OCI spec: {e}")))?;
        std::fs::write(&path, bytes).map_err(Error::io("write", &path))
    });
    if let Err(e) = written {
        containers.release_volumes(c);
        return Err(e);
    }
    Ok(Prepared { log_driver: driver, log_options: options.into_iter().collect(), log_attrs: attrs })
}

/// The OCI process of an exec: the container's process with the exec's command, env,
/// user, working directory, terminal and privileges.
pub fn exec_process(c: &Container, exec: &ExecConfig) -> Result<Value> {
    let path = c.dir.join("config.json");
    let spec: Value = serde_json::from_slice(&std::fs::read(&path).map_err(Error::io("read", &path))?)
        .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
    let mut process = spec.get("process").cloned().unwrap_or_else(|| Value::Object(Default::default()));
    process["args"] = serde_json::json!(exec.cmd.clone().unwrap_or_default());
    process["terminal"] = Value::Bool(exec.tty.unwrap_or(false));
    if let Some(size) = exec.console_size.as_ref().filter(|s| s.len() == 2) {
        process["consoleSize"] = serde_json::json!({ "height": size[0], "width": size[1] });
    } else if let Some(obj) = process.as_object_mut() {
        obj.remove("consoleSize");
    }
    let mut env: Vec<String> = process["env"].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect()).unwrap_or_default();
    for kv in exec.env.iter().flatten() {
        let key = kv.split('=').next().unwrap_or(kv);
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    process["env"] = serde_json::json!(env);
    if let Some(dir) = exec.working_dir.as_deref().filter(|d| !d.is_empty()) {
        process["cwd"] = Value::String(dir.to_string());
    }
    if let Some(user) = exec.user.as_deref().filter(|u| !u.is_empty()) {
        let record = c.record();
        let user = berth_spec::resolve_user(&c.rootfs(), user, record.host_config.group_add.as_deref().unwrap_or_default()).map_err(spec_error)?;
        process["user"] = serde_json::json!({ "uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids });
    }
    if exec.privileged.unwrap_or(false) {
        let all = berth_spec::known_capabilities();
        process["capabilities"] = serde_json::json!({ "bounding": all, "effective": all, "permitted": all });
    }
    Ok(process)
}

/// Docker's detach keys: `ctrl-<x>` and single characters, comma separated; default
/// ctrl-p,ctrl-q.
pub fn detach_keys(spec: Option<&str>) -> Result<Vec<u8>> {
    let spec = spec.filter(|s| !s.is_empty()).unwrap_or("ctrl-p,ctrl-q");
    let mut keys = vec![];
    for key in spec.split(',') {
        let bad = || Error::InvalidArgument(format!("Invalid detach keys ({key}) provided"));
        if let Some(c) = key.strip_prefix("ctrl-") {
            let c = c.as_bytes();
            if c.len() != 1 {
                return Err(bad());
            }
            keys.push(match c[0] {
                b'a'..=b'z' => c[0] - b'a' + 1,
                b'@' => 0,
                b'[' => 27,
                b'\\' => 28,
                b']' => 29,
                b'^' => 30,
                b'_' => 31,
                _ => return Err(bad()),
            });
        } else if key.len() == 1 {
            keys.push(key.as_bytes()[0]);
        } else {
            return Err(bad());
        }
    }
    Ok(keys)
}

/// A signal by name (`TERM`, `SIGTERM`, `sigterm`) or number.
pub fn parse_signal(text: &str) -> Result<i32> {
    let bad = || Error::InvalidArgument(format!("Invalid signal: {text}"));
    if let Ok(n) = text.parse::<i32>() {
        return if (1..=64).contains(&n) { Ok(n) } else { Err(bad()) };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let offset: i32 = if rest.is_empty() { 0 } else { rest.strip_prefix('+').and_then(|n| n.parse().ok()).ok_or_else(bad)? };
        return Ok(libc::SIGRTMIN() + offset);
    }
    let sig: nix::sys::signal::Signal = format!("SIG{name}").parse().map_err(|_| bad())?;
    Ok(sig as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("TERM").unwrap(), 15);
        assert_eq!(parse_signal("sigkill").unwrap(), 9);
        assert_eq!(parse_signal("SIGUSR1").unwrap(), 10);
        assert_eq!(parse_signal("3").unwrap(), 3);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }

    #[test]
    fn detach_keys_like_docker() {
        assert_eq!(detach_keys(None).unwrap(), vec![16, 17]);
        assert_eq!(detach_keys(Some("ctrl-a,x")).unwrap(), vec![1, b'x']);
        assert!(detach_keys(Some("ctrl-ab")).is_err());
        assert!(detach_keys(Some("abc")).is_err());
    }

    #[test]
    fn command_is_entrypoint_then_cmd() {
        let c = ContainerConfig { entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]), cmd: Some(vec!["echo hi".into()]), ..Default::default() };
        assert_eq!(command(&c), ("/bin/sh".to_string(), vec!["-c".to_string(), "echo hi".to_string()]));
    }
}
