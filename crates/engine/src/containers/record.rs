//! What berthd keeps about a container: one `container.json` per container directory,
//! replaced whole (temp + rename), so a crash leaves the old or the new record, never a
//! mix. Its presence is what makes the directory a container.

use std::path::{Path, PathBuf};

use bollard_stubs::models::{ContainerConfig, HostConfig, MountPoint};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const RECORD_FILE: &str = "container.json";

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Has a live process (a shim serving it).
    pub fn is_live(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

/// The container's state, as `inspect` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub pid: i32,
    pub shim_pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub oom_killed: bool,
    /// Nanoseconds since the epoch; 0 = never.
    pub started_at: i128,
    pub finished_at: i128,
    /// Stopped by the user (`stop`, `kill`): `unless-stopped` and `always` do not restart it.
    pub manually_stopped: bool,
    pub health: Option<Health>,
}

/// Healthcheck results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<HealthResult>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HealthResult {
    pub start: i128,
    pub end: i128,
    pub exit_code: i64,
    pub output: String,
}

/// Everything berthd knows about one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// Without docker's leading slash.
    pub name: String,
    pub created: i128,
    /// The image id (`sha256:...`).
    pub image: String,
    /// The container's configuration, merged with the image's.
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub state: State,
    pub restart_count: i64,
    /// The image's layer directories, top first: the overlay's lower directories.
    pub layers: Vec<PathBuf>,
    pub mounts: Vec<MountPoint>,
    #[serde(default)]
    pub exec_ids: Vec<String>,
    /// The program and its arguments, as `inspect` shows them (Path, Args).
    pub path: String,
    pub args: Vec<String>,
}

impl Record {
    /// Reads `dir/container.json`.
    pub fn load(dir: &Path) -> Result<Record> {
        let path = dir.join(RECORD_FILE);
        let bytes = std::fs::read(&path).map_err(Error::io("read", &path))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Internal(format!("{}: {e}", path.display())))
    }

    /// Replaces `dir/container.json`. No fsync: a crash of berthd keeps the page cache,
    /// and after a power loss every container is stopped anyway; an older record is then
    /// consistent with what is on disk.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(RECORD_FILE);
        let tmp = dir.join(".container.json.tmp");
        let bytes = serde_json::to_vec(self).map_err(|e| Error::Internal(format!("encode container record: {e}")))?;
        std::fs::write(&tmp, bytes).map_err(Error::io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(Error::io("rename", &path))
    }

    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
}

/// Docker's time format: RFC 3339 with nanoseconds; the zero time for "never".
pub fn format_time(nanos: i128) -> String {
    if nanos == 0 {
        return "0001-01-01T00:00:00Z".to_string();
    }
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string())
}

pub fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_like_docker() {
        assert_eq!(format_time(0), "0001-01-01T00:00:00Z");
        assert_eq!(format_time(1_700_000_000_123_456_789), "2023-11-14T22:13:20.123456789Z");
    }

    #[test]
    fn record_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let record = Record {
            id: "a".repeat(64),
            name: "web".into(),
            created: 5,
            image: "sha256:x".into(),
            config: ContainerConfig { cmd: Some(vec!["sh".into()]), ..Default::default() },
            host_config: HostConfig::default(),
            state: State { status: Status::Exited, exit_code: 3, ..Default::default() },
            restart_count: 0,
            layers: vec![],
            mounts: vec![],
            exec_ids: vec![],
            path: "sh".into(),
            args: vec![],
        };
        record.save(dir.path()).unwrap();
        let back = Record::load(dir.path()).unwrap();
        assert_eq!(back.state.exit_code, 3);
        assert_eq!(back.config.cmd, record.config.cmd);
        assert!(!dir.path().join(".container.json.tmp").exists());
    }
}
