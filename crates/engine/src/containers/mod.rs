//! Containers: their records, lifecycle (through one berth-shim each), streams and logs.
//!
//! Each container is a directory under `<data-root>/containers/<id>` holding its record
//! (`container.json`), its writable layer (`rw/`), the overlay mount point (`rootfs/`),
//! its /etc files, OCI bundle (`config.json`), logs and the shim's exit record. Runtime
//! files: the shim's diagnostics under `<exec-root>/containers/<id>`, its socket under
//! `<exec-root>/shims`, the runtime's state under `<exec-root>/runtime`.
//!
//! Operations that change a container's lifecycle hold its `lifecycle` lock; the record
//! itself sits behind a plain mutex that is never held across an await.

pub mod commit;
mod exec;
pub mod files;
pub mod health;
mod lifecycle;
mod mounts;
mod names;
pub mod record;
mod setup;
mod shim;
pub mod stats;
mod streams;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard_stubs::models::{ContainerConfig, HostConfig};
use tokio::sync::watch;

pub use exec::{ExecConfig, ExecView};
pub use lifecycle::ALREADY_STARTED;
pub use record::{format_time, Record, State, Status};
pub use setup::detach_keys;
pub use streams::{AttachStream, LogLine, LogsOptions};

use crate::error::{Error, Result};
use crate::events::Events;
use crate::images::Images;
use crate::volumes::Volumes;
use record::now_nanos;

/// What waiters watch: bumped on every exit and on removal.
#[derive(Debug, Clone, Copy, Default)]
pub struct Change {
    pub exits: u64,
    pub exit_code: i32,
    pub removed: bool,
}

/// One container in memory.
pub struct Container {
    pub id: String,
    dir: PathBuf,
    run_dir: PathBuf,
    record: Mutex<Record>,
    lifecycle: tokio::sync::Mutex<()>,
    changes: watch::Sender<Change>,
    /// Attach requests made before the start; connected before the program runs.
    pending_attach: Mutex<Vec<streams::PendingAttach>>,
    /// Doubling delay of restart-policy restarts.
    backoff: Mutex<std::time::Duration>,
}

impl Container {
    /// A copy of the record.
    pub fn record(&self) -> Record {
        self.record.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the record in place (listings that look at every container need no copy).
    pub fn with_record<T>(&self, f: impl FnOnce(&Record) -> T) -> T {
        f(&self.record.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Changes the record and saves it.
    fn update(&self, f: impl FnOnce(&mut Record)) -> Result<Record> {
        let mut record = self.record.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut record);
        record.save(&self.dir)?;
        Ok(record.clone())
    }

    /// The shim's socket: `<exec-root>/shims/<first 24 hex of the id>.sock`, short enough
    /// for a socket address (108 bytes) under any reasonable exec root.
    fn socket(&self) -> PathBuf {
        let run_root = self.run_dir.parent().and_then(Path::parent).unwrap_or(Path::new("/"));
        run_root.join("shims").join(format!("{}.sock", &self.id[..24]))
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    fn exit_file(&self) -> PathBuf {
        self.dir.join("exit.json")
    }

    pub fn log_dir(&self) -> &Path {
        &self.dir
    }

    fn notify(&self, f: impl FnOnce(&mut Change)) {
        self.changes.send_modify(f);
    }

    pub fn status(&self) -> Status {
        self.with_record(|r| r.state.status)
    }
}

#[derive(Default)]
struct Table {
    by_id: HashMap<String, Arc<Container>>,
    /// Name → id.
    names: HashMap<String, String>,
}

/// What `wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl std::str::FromStr for WaitCondition {
    type Err = Error;
    fn from_str(s: &str) -> Result<WaitCondition> {
        match s {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(Error::InvalidArgument(format!("invalid condition: \"{other}\""))),
        }
    }
}

/// The container service.
pub struct Containers {
    root: PathBuf,
    run_root: PathBuf,
    runtime_root: PathBuf,
    shim_binary: PathBuf,
    images: Arc<Images>,
    volumes: Arc<Volumes>,
    events: Events,
    table: Mutex<Table>,
    /// Exec instances by id.
    execs: Mutex<HashMap<String, Arc<exec::Exec>>>,
    /// Containers removed lately: (id, last exit code, when), for waits that arrive late.
    removed: Mutex<VecDeque<(String, i32, Instant)>>,
}

/// How long a wait may arrive after what it waits for (see [`Containers::wait`]).
const RACE_WINDOW: Duration = Duration::from_secs(2);

/// The result of a create.
pub struct Created {
    pub id: String,
    pub warnings: Vec<String>,
}

impl Containers {
    /// Loads every container; removes directories a crash left without a record.
    pub fn open(data_root: &Path, exec_root: &Path, images: Arc<Images>, volumes: Arc<Volumes>, events: Events) -> Result<Containers> {
        let root = data_root.join("containers");
        let run_root = exec_root.join("containers");
        let runtime_root = exec_root.join("runtime");
        for dir in [&root, &run_root, &runtime_root, &exec_root.join("shims")] {
            std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        }
        let containers = Containers {
            root: root.clone(),
            run_root,
            runtime_root,
            shim_binary: shim::find_binary(),
            images,
            volumes,
            events,
            table: Mutex::new(Table::default()),
            execs: Mutex::new(HashMap::new()),
            removed: Mutex::new(VecDeque::new()),
        };
        let entries = std::fs::read_dir(&root).map_err(Error::io("read", &root))?;
        let mut table = Table::default();
        for entry in entries.flatten() {
            let dir = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !dir.join(record::RECORD_FILE).exists() {
                // A create or remove that did not finish.
                remove_files(&dir);
                continue;
            }
            match Record::load(&dir) {
                Ok(record) => {
                    table.names.insert(record.name.clone(), record.id.clone());
                    let c = containers.make(record, dir);
                    table.by_id.insert(c.id.clone(), c);
                }
                Err(e) => tracing::error!("skipping container {}: {e}", dir.display()),
            }
        }
        *containers.table.lock().unwrap_or_else(|e| e.into_inner()) = table;
        Ok(containers)
    }

    fn make(&self, record: Record, dir: PathBuf) -> Arc<Container> {
        let exit_code = record.state.exit_code;
        Arc::new(Container {
            id: record.id.clone(),
            run_dir: self.run_root.join(&record.id),
            dir,
            record: Mutex::new(record),
            lifecycle: tokio::sync::Mutex::new(()),
            changes: watch::channel(Change { exits: 0, exit_code, removed: false }).0,
            pending_attach: Mutex::new(vec![]),
            backoff: Mutex::new(lifecycle::INITIAL_BACKOFF),
        })
    }

    /// Finds a container by full id, name, or unique id prefix (docker's order).
    pub fn get(&self, name_or_id: &str) -> Result<Arc<Container>> {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let key = name_or_id.strip_prefix('/').unwrap_or(name_or_id);
        if let Some(c) = table.by_id.get(key) {
            return Ok(c.clone());
        }
        if let Some(id) = table.names.get(key) {
            if let Some(c) = table.by_id.get(id) {
                return Ok(c.clone());
            }
        }
        if !key.is_empty() && key.chars().all(|c| c.is_ascii_hexdigit()) {
            let mut matches = table.by_id.values().filter(|c| c.id.starts_with(key));
            if let Some(first) = matches.next() {
                if matches.next().is_some() {
                    return Err(Error::InvalidArgument(format!("multiple IDs found with provided prefix: {key}")));
                }
                return Ok(first.clone());
            }
        }
        Err(Error::NotFound(format!("No such container: {name_or_id}")))
    }

    /// Every container.
    pub fn all(&self) -> Vec<Arc<Container>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).by_id.values().cloned().collect()
    }

    /// A container using image `id`, preferring a running one: (id, running).
    pub fn image_users(&self, image_id: &str) -> Option<(String, bool)> {
        let users: Vec<(String, bool)> = self
            .all()
            .into_iter()
            .filter_map(|c| c.with_record(|r| (r.image == image_id).then(|| (c.id.clone(), r.state.status.is_live()))))
            .collect();
        users.iter().find(|(_, running)| *running).or(users.first()).cloned()
    }

    fn publish(&self, c: &Container, action: &str, extra: &[(&str, String)]) {
        let record = c.record();
        let mut attributes = BTreeMap::new();
        attributes.insert("image".to_string(), record.config.image.clone().unwrap_or_default());
        attributes.insert("name".to_string(), record.name.clone());
        for (k, v) in record.config.labels.iter().flatten() {
            attributes.insert(k.clone(), v.clone());
        }
        for (k, v) in extra {
            attributes.insert(k.to_string(), v.clone());
        }
        self.events.publish("container", action, &c.id, attributes);
    }

    /// Creates a container from an image; nothing runs yet.
    pub fn create(&self, name: Option<&str>, mut config: ContainerConfig, host: HostConfig) -> Result<Created> {
        let image_ref = config.image.clone().filter(|i| !i.is_empty()).ok_or_else(|| Error::InvalidArgument("no image specified".into()))?;
        let image = self.images.lookup(&image_ref).map_err(|e| match e {
            Error::NoSuchImage(_) => Error::NoSuchImage(image_ref.clone()),
            other => other,
        })?;
        let view = self.images.view(&image)?;
        setup::merge_image_config(&mut config, &view.config)?;
        let mut warnings = setup::validate(&config, &host)?;
        let mut layers = self.images.layer_paths(&image)?;
        layers.reverse();

        let id = random_id();
        let mut host = host;
        setup::normalize(&id, &mut config, &mut host);
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => names::validate(n)?,
            None => String::new(),
        };
        // Reserve the name first: two creates racing for it must not both win.
        let name = self.reserve_name(&name, &id)?;
        let mounts = match self.plan_mounts(&config, &host) {
            Ok(m) => m,
            Err(e) => {
                self.table.lock().unwrap_or_else(|e| e.into_inner()).names.remove(&name);
                return Err(e);
            }
        };
        let made = (|| -> Result<Arc<Container>> {
            let dir = self.root.join(&id);
            for sub in ["rw/upper", "rw/work", "rootfs"] {
                let p = dir.join(sub);
                std::fs::create_dir_all(&p).map_err(Error::io("create", &p))?;
            }
            let (path, args) = setup::command(&config);
            if path.is_empty() {
                return Err(Error::InvalidArgument("no command specified".into()));
            }
            let record = Record {
                id: id.clone(),
                name: name.clone(),
                created: now_nanos(),
                image: image.id.clone(),
                config,
                host_config: host,
                state: State::default(),
                restart_count: 0,
                layers,
                mounts: mounts.clone(),
                exec_ids: vec![],
                path,
                args,
            };
            record.save(&dir)?;
            Ok(self.make(record, dir))
        })();
        let c = match made {
            Ok(c) => c,
            Err(e) => {
                let _ = berth_snapshot::remove_tree(&self.root.join(&id));
                self.remove_anonymous_volumes(&mounts, &id);
                self.table.lock().unwrap_or_else(|e| e.into_inner()).names.remove(&name);
                return Err(e);
            }
        };
        self.table.lock().unwrap_or_else(|e| e.into_inner()).by_id.insert(id.clone(), c.clone());
        self.publish(&c, "create", &[]);
        warnings.retain(|w| !w.is_empty());
        Ok(Created { id, warnings })
    }

    fn reserve_name(&self, name: &str, id: &str) -> Result<String> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if name.is_empty() {
            loop {
                let candidate = names::generate();
                if !table.names.contains_key(&candidate) {
                    table.names.insert(candidate.clone(), id.to_string());
                    return Ok(candidate);
                }
            }
        }
        if let Some(other) = table.names.get(name) {
            return Err(Error::Conflict(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
            )));
        }
        table.names.insert(name.to_string(), id.to_string());
        Ok(name.to_string())
    }

    /// Renames a container.
    pub fn rename(&self, name_or_id: &str, new_name: &str) -> Result<()> {
        let c = self.get(name_or_id)?;
        let new_name = names::validate(new_name)?;
        let old = c.record().name;
        if old == new_name {
            return Err(Error::InvalidArgument("Renaming a container with the same name as its current name".into()));
        }
        self.reserve_name(&new_name, &c.id)?;
        if let Err(e) = c.update(|r| r.name = new_name.clone()) {
            self.table.lock().unwrap_or_else(|e| e.into_inner()).names.remove(&new_name);
            return Err(e);
        }
        self.table.lock().unwrap_or_else(|e| e.into_inner()).names.remove(&old);
        self.publish(&c, "rename", &[("oldName", format!("/{old}"))]);
        Ok(())
    }

    /// Checks that a wait can be answered: the container exists (or, for `removed`, was
    /// just removed).
    pub fn wait_check(&self, name_or_id: &str, condition: WaitCondition) -> Result<()> {
        match self.get(name_or_id) {
            Ok(_) => Ok(()),
            Err(_) if condition == WaitCondition::Removed && self.recently_removed(name_or_id).is_some() => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn recently_removed(&self, id: &str) -> Option<i32> {
        let mut removed = self.removed.lock().unwrap_or_else(|e| e.into_inner());
        removed.retain(|(_, _, at)| at.elapsed() < RACE_WINDOW);
        removed.iter().find(|(rid, _, _)| rid == id || (id.len() >= 12 && rid.starts_with(id))).map(|(_, code, _)| *code)
    }

    /// Waits until the condition holds; returns the exit code.
    ///
    /// Clients send the wait and then the start on another connection, so a short-lived
    /// container can be started, exit and even be removed before the wait arrives: an
    /// exit of a run started within the last moments counts as the next exit, and a
    /// removal within them as the removal.
    pub async fn wait(&self, name_or_id: &str, condition: WaitCondition) -> Result<i32> {
        let c = match self.get(name_or_id) {
            Ok(c) => c,
            Err(e) => return self.recently_removed(name_or_id).ok_or(e),
        };
        let mut rx = c.changes.subscribe();
        let start = *rx.borrow_and_update();
        let record = c.record();
        let status = record.state.status;
        let not_running = !status.is_live() && status != Status::Restarting;
        let just_ran = record.state.started_at != 0 && now_nanos() - record.state.started_at < RACE_WINDOW.as_nanos() as i128;
        match condition {
            WaitCondition::NotRunning if not_running => return Ok(record.state.exit_code),
            WaitCondition::NextExit if not_running && just_ran => return Ok(record.state.exit_code),
            _ => {}
        }
        loop {
            let now = *rx.borrow_and_update();
            let done = match condition {
                WaitCondition::NotRunning | WaitCondition::NextExit => now.exits > start.exits,
                WaitCondition::Removed => now.removed,
            };
            if done {
                return Ok(now.exit_code);
            }
            if rx.changed().await.is_err() {
                // The container is gone.
                return Ok(rx.borrow().exit_code);
            }
        }
    }

    /// Removes a container: `force` kills a running one first.
    pub async fn remove(&self, name_or_id: &str, force: bool, volumes: bool) -> Result<()> {
        let c = self.get(name_or_id)?;
        let _guard = c.lifecycle.lock().await;
        self.remove_locked(&c, force, volumes).await
    }

    async fn remove_locked(&self, c: &Arc<Container>, force: bool, volumes: bool) -> Result<()> {
        let status = c.status();
        if status == Status::Removing {
            return Err(Error::Conflict(format!("removal of container {} is already in progress", c.id)));
        }
        if status.is_live() || status == Status::Restarting {
            if !force {
                let (what, hint) = if status == Status::Paused { ("paused", "Unpause and then stop") } else { ("running", "Stop") };
                return Err(Error::Conflict(format!(
                    "You cannot remove a {what} container {}. {hint} the container before attempting removal or force remove",
                    c.id
                )));
            }
            self.kill_and_wait(c).await?;
        }
        // In memory only: the rename below is what removes the record, in one step.
        c.record.lock().unwrap_or_else(|e| e.into_inner()).state.status = Status::Removing;
        let graveyard = self.root.join(format!(".removing-{}", c.id));
        std::fs::rename(&c.dir, &graveyard).map_err(Error::io("rename", &c.dir))?;
        let record = c.record();
        {
            let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
            table.by_id.remove(&c.id);
            table.names.remove(&record.name);
        }
        let _ = std::fs::remove_dir_all(&c.run_dir);
        self.forget_execs(&c.id);
        c.pending_attach.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if volumes {
            self.remove_anonymous_volumes(&record.mounts, &c.id);
        }
        {
            let mut removed = self.removed.lock().unwrap_or_else(|e| e.into_inner());
            removed.retain(|(_, _, at)| at.elapsed() < RACE_WINDOW);
            removed.push_back((c.id.clone(), record.state.exit_code, Instant::now()));
        }
        self.publish(c, "destroy", &[]);
        c.notify(|ch| ch.removed = true);
        // The files go after the answer: unmounting an overlay syncs its upper filesystem
        // (milliseconds), and nothing refers to them any more. A crash meanwhile leaves a
        // `.removing-` directory, removed at the next start.
        tokio::task::spawn_blocking(move || remove_files(&graveyard));
        Ok(())
    }

    /// Removes every stopped container matching the filters; returns ids and bytes freed.
    pub async fn prune(&self, keep: impl Fn(&Record) -> bool) -> Result<(Vec<String>, u64)> {
        let mut removed = vec![];
        let mut freed = 0;
        for c in self.all() {
            let record = c.record();
            if record.state.status.is_live() || record.state.status == Status::Restarting || keep(&record) {
                continue;
            }
            let size = self.size_rw(&c);
            if self.remove(&c.id, false, false).await.is_ok() {
                removed.push(c.id.clone());
                freed += size;
            }
        }
        self.events.publish("container", "prune", "", BTreeMap::from([("reclaimed".to_string(), freed.to_string())]));
        Ok((removed, freed))
    }

    /// Bytes in the container's writable layer.
    pub fn size_rw(&self, c: &Container) -> u64 {
        berth_snapshot::disk_usage(&c.dir.join("rw/upper")).unwrap_or(0)
    }

    /// Bytes of the image layers under the container.
    pub fn size_root_fs(&self, c: &Container) -> u64 {
        let layers = c.record().layers;
        self.size_rw(c) + layers.iter().map(|l| berth_snapshot::disk_usage(l).unwrap_or(0)).sum::<u64>()
    }

    pub fn count(&self) -> (usize, usize, usize, usize) {
        let all = self.all();
        let mut running = 0;
        let mut paused = 0;
        for c in &all {
            match c.status() {
                Status::Running | Status::Restarting => running += 1,
                Status::Paused => paused += 1,
                _ => {}
            }
        }
        (all.len(), running, paused, all.len() - running - paused)
    }
}

/// Unmounts a removed container's rootfs (if still mounted) and deletes its directory;
/// never descends into a mount it could not take away.
fn remove_files(dir: &Path) {
    let rootfs = dir.join("rootfs");
    match berth_snapshot::unmount(&rootfs) {
        Ok(()) => {}
        Err(e) if is_mounted(&rootfs) => {
            tracing::warn!("keeping {}: {e}", dir.display());
            return;
        }
        Err(_) => {}
    }
    if let Err(e) = berth_snapshot::remove_tree(dir) {
        tracing::warn!("removing container files: {e}");
    }
}

fn is_mounted(path: &Path) -> bool {
    let target = path.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| m.lines().any(|l| l.split(' ').nth(4) == Some(target.as_str())))
}

fn random_id() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}
