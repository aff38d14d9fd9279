//! A container's mounts: decided at create as docker does (volumes created, anonymous
//! ones named, `--volumes-from` copied), recorded for inspect and in-use checks, and
//! resolved to host paths at each start (binds checked, volumes filled from the image).

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use berth_spec::{BindOptions, MountRequest, MountSource, ResolvedMount, ResolvedSource};
use bollard_stubs::models::{ContainerConfig, HostConfig, MountPoint, MountPointTypeEnum};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};

use super::{setup::spec_error, Container, Containers};
use crate::error::{Error, Result};

impl Containers {
    /// Decides a new container's mounts: `--volumes-from` first, then its own requests
    /// (which take a destination over, except anonymous volumes). Named volumes are created
    /// when missing and anonymous ones get their names now, so a created container
    /// already holds its volumes. On error, the anonymous volumes made here are removed.
    pub(super) fn plan_mounts(&self, config: &ContainerConfig, host: &HostConfig) -> Result<Vec<MountPoint>> {
        let requests = berth_spec::mount_requests(config, host).map_err(spec_error)?;
        let mut points = self.volumes_from(host)?;
        let inherited = points.len();
        let mut made = vec![];
        let planned = (|| -> Result<()> {
            for request in &requests {
                let taken = points.iter().position(|p| p.destination.as_deref() == Some(request.destination.as_str()));
                let point = match &request.source {
                    MountSource::HostPath(path) => MountPoint {
                        typ: Some(MountPointTypeEnum::BIND),
                        source: Some(path.display().to_string()),
                        destination: Some(request.destination.clone()),
                        mode: Some(if request.read_only { "ro".into() } else { String::new() }),
                        rw: Some(!request.read_only),
                        propagation: request.propagation.clone(),
                        ..Default::default()
                    },
                    MountSource::Volume { name, driver, .. } => {
                        // An anonymous volume does not displace an inherited mount.
                        if name.is_none() && taken.is_some_and(|i| i < inherited) {
                            continue;
                        }
                        let volume = self.volumes.create(name.as_deref(), driver.as_deref(), Default::default(), Default::default(), name.is_none())?;
                        if name.is_none() {
                            made.push(volume.name.clone());
                        }
                        MountPoint {
                            typ: Some(MountPointTypeEnum::VOLUME),
                            source: Some(self.volumes.data_path(&volume.name).display().to_string()),
                            name: Some(volume.name),
                            destination: Some(request.destination.clone()),
                            driver: Some(volume.driver),
                            mode: Some(if request.read_only { "ro".into() } else { "z".into() }),
                            rw: Some(!request.read_only),
                            propagation: Some(String::new()),
                        }
                    }
                    MountSource::Tmpfs { .. } => MountPoint {
                        typ: Some(MountPointTypeEnum::TMPFS),
                        source: Some(String::new()),
                        destination: Some(request.destination.clone()),
                        mode: Some(String::new()),
                        rw: Some(!request.read_only),
                        propagation: Some(String::new()),
                        ..Default::default()
                    },
                };
                match taken {
                    Some(i) => points[i] = point,
                    None => points.push(point),
                }
            }
            Ok(())
        })();
        match planned {
            Ok(()) => Ok(points),
            Err(e) => {
                for name in made {
                    let _ = self.volumes.remove(&name, &[]);
                }
                Err(e)
            }
        }
    }

    /// The bind and volume mounts of the containers `--volumes-from` names, each
    /// `container[:ro|:rw]` (without a mode, each mount keeps its own).
    fn volumes_from(&self, host: &HostConfig) -> Result<Vec<MountPoint>> {
        let mut points: Vec<MountPoint> = vec![];
        for spec in host.volumes_from.as_deref().unwrap_or_default() {
            let (name, mode) = spec.split_once(':').unwrap_or((spec, ""));
            let read_only = match mode {
                "" => None,
                "ro" => Some(true),
                "rw" => Some(false),
                other => return Err(Error::InvalidArgument(format!("invalid mode: {other}"))),
            };
            let source = self.get(name)?;
            for mut point in source.record().mounts {
                if point.typ == Some(MountPointTypeEnum::TMPFS) {
                    continue;
                }
                if let Some(ro) = read_only {
                    point.rw = Some(!ro);
                    point.mode = Some(mode.to_string());
                }
                points.retain(|p| p.destination != point.destination);
                points.push(point);
            }
        }
        Ok(points)
    }

    /// Resolves a starting container's mounts to host paths: what was planned at create,
    /// with the details (bind options, subpath, tmpfs size) of the request for the same
    /// destination. Acquired volumes are released again on error.
    pub(super) fn resolve_mounts(&self, c: &Container, config: &ContainerConfig, host: &HostConfig) -> Result<Vec<ResolvedMount>> {
        let requests = berth_spec::mount_requests(config, host).map_err(spec_error)?;
        let mut points = c.record().mounts;
        if points.is_empty() && (!requests.is_empty() || host.volumes_from.as_ref().is_some_and(|v| !v.is_empty())) {
            // A container created before mounts were planned at create.
            points = self.plan_mounts(config, host)?;
            c.update(|r| r.mounts = points.clone())?;
        }
        let mut acquired: Vec<String> = vec![];
        let resolved = points.iter().map(|point| self.resolve_mount(c, point, &requests, &mut acquired)).collect::<Result<Vec<_>>>();
        if resolved.is_err() {
            for name in acquired {
                self.volumes.release(&name);
            }
        }
        resolved
    }

    fn resolve_mount(&self, c: &Container, point: &MountPoint, requests: &[MountRequest], acquired: &mut Vec<String>) -> Result<ResolvedMount> {
        let destination = point.destination.clone().unwrap_or_default();
        let request = requests.iter().find(|r| r.destination == destination);
        let read_only = point.rw == Some(false);
        let bind_options = request.map(|r| r.bind_options.clone()).unwrap_or_default();
        match point.typ {
            Some(MountPointTypeEnum::BIND) => {
                let path = std::path::PathBuf::from(point.source.clone().unwrap_or_default());
                if !path.exists() {
                    if !bind_options.create_mountpoint {
                        return Err(Error::InvalidArgument(format!(
                            "invalid mount config for type \"bind\": bind source path does not exist: {}",
                            path.display()
                        )));
                    }
                    std::fs::create_dir_all(&path).map_err(Error::io("create", &path))?;
                }
                let propagation = point.propagation.clone().filter(|p| !p.is_empty()).or_else(|| Some("rprivate".into()));
                Ok(ResolvedMount { destination, source: ResolvedSource::Path(path), read_only, propagation, bind_options })
            }
            Some(MountPointTypeEnum::VOLUME) => {
                let name = point.name.clone().unwrap_or_default();
                let data = self.volumes.acquire(&name)?;
                let attributes = [
                    ("driver", point.driver.clone().unwrap_or_default()),
                    ("container", c.id.clone()),
                    ("destination", destination.clone()),
                    ("read/write", (!read_only).to_string()),
                    ("propagation", point.propagation.clone().unwrap_or_default()),
                ];
                self.events.publish("volume", "mount", &name, attributes.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
                acquired.push(name);
                // Only the container's own volume requests copy the image's files in.
                let (nocopy, subpath) = match request.map(|r| &r.source) {
                    Some(MountSource::Volume { nocopy, subpath, .. }) => (*nocopy, subpath.clone()),
                    _ => (true, None),
                };
                if !nocopy {
                    copy_up(&c.rootfs(), &destination, &data)?;
                }
                let path = match subpath {
                    Some(s) => data.join(s),
                    None => data,
                };
                Ok(ResolvedMount { destination, source: ResolvedSource::Path(path), read_only, propagation: None, bind_options: BindOptions::default() })
            }
            _ => {
                let request = request
                    .filter(|r| matches!(r.source, MountSource::Tmpfs { .. }))
                    .ok_or_else(|| Error::Internal(format!("tmpfs at {destination}: its request is gone")))?;
                request.resolve(None).map_err(spec_error)
            }
        }
    }

    /// `--pid`, `--ipc`, `--network` of `container:<name>`: the namespaces of that
    /// container's init, which must be running.
    pub(super) fn namespace_paths(&self, host: &bollard_stubs::models::HostConfig) -> Result<berth_spec::NamespacePaths> {
        let path = |mode: Option<&str>, kind: &str| -> Result<Option<std::path::PathBuf>> {
            let Some(other) = mode.and_then(|m| m.strip_prefix("container:")) else { return Ok(None) };
            let c = self.get(other)?;
            let record = c.record();
            if !record.state.status.is_live() {
                return Err(Error::Conflict(format!("cannot join namespace of a non running container: container {} is not running", c.id)));
            }
            Ok(Some(std::path::PathBuf::from(format!("/proc/{}/ns/{kind}", record.state.pid))))
        };
        Ok(berth_spec::NamespacePaths {
            network: path(host.network_mode.as_deref(), "net")?,
            ipc: path(host.ipc_mode.as_deref(), "ipc")?,
            pid: path(host.pid_mode.as_deref(), "pid")?,
        })
    }

    /// Lets go of the volumes a stopped container had mounted.
    pub(super) fn release_volumes(&self, c: &Container) {
        for m in c.record().mounts {
            if m.typ == Some(MountPointTypeEnum::VOLUME) {
                if let Some(name) = m.name {
                    self.volumes.release(&name);
                    let attributes = [("driver", m.driver.unwrap_or_default()), ("container", c.id.clone())];
                    self.events.publish("volume", "unmount", &name, attributes.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
                }
            }
        }
    }

    /// Names of the containers that use a volume.
    pub fn volume_users(&self, volume: &str) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|c| c.with_record(|r| r.mounts.iter().any(|m| m.name.as_deref() == Some(volume))))
            .map(|c| c.id.clone())
            .collect()
    }

    /// With `rm -v`: the container's anonymous volumes that nothing else uses.
    pub(super) fn remove_anonymous_volumes(&self, mounts: &[MountPoint], container_id: &str) {
        for m in mounts {
            let Some(name) = &m.name else { continue };
            if !self.volumes.get(name).is_ok_and(|v| v.anonymous) {
                continue;
            }
            let users: Vec<String> = self.volume_users(name).into_iter().filter(|id| id != container_id).collect();
            if let Err(e) = self.volumes.remove(name, &users) {
                tracing::debug!("keeping volume {name}: {e}");
            }
        }
    }
}

/// Fills an empty volume with what the image has at `destination`, as docker does on
/// first use. The path is resolved inside the rootfs and nothing is followed out of it:
/// an image cannot make berthd copy host files.
fn copy_up(rootfs: &Path, destination: &str, volume: &Path) -> Result<()> {
    let is_empty = std::fs::read_dir(volume).map_err(Error::io("read", volume))?.next().is_none();
    if !is_empty {
        return Ok(());
    }
    let root = rustix::fs::open(rootfs, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::io("open", rootfs)(e.into()))?;
    let relative = destination.trim_start_matches('/');
    let source = match rustix::fs::openat2(
        &root,
        relative,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        // Nothing there (or not a directory): nothing to copy.
        Err(_) => return Ok(()),
    };
    let target = rustix::fs::open(volume, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::io("open", volume)(e.into()))?;
    copy_dir(&source, &target).map_err(|e| Error::io("copy image content into volume", volume)(e.into()))?;
    // The volume's root takes the directory's owner and mode.
    let st = rustix::fs::fstat(&source).map_err(|e| Error::io("stat", destination)(e.into()))?;
    let _ = rustix::fs::fchown(&target, Some(rustix::fs::Uid::from_raw(st.st_uid)), Some(rustix::fs::Gid::from_raw(st.st_gid)));
    let _ = rustix::fs::fchmod(&target, Mode::from_raw_mode(st.st_mode & 0o7777));
    Ok(())
}

/// Copies a directory's entries (files, directories, symlinks, owners, modes) with
/// *at calls on descriptors: no path is ever resolved twice or followed.
fn copy_dir(source: &OwnedFd, target: &OwnedFd) -> rustix::io::Result<()> {
    let mut dir = rustix::fs::Dir::read_from(source)?;
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let st = rustix::fs::statat(source, name, AtFlags::SYMLINK_NOFOLLOW)?;
        let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
        let (uid, gid) = (rustix::fs::Uid::from_raw(st.st_uid), rustix::fs::Gid::from_raw(st.st_gid));
        match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::Directory => {
                rustix::fs::mkdirat(target, name, mode)?;
                let from = rustix::fs::openat(source, name, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
                let to = rustix::fs::openat(target, name, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
                copy_dir(&from, &to)?;
                rustix::fs::fchown(&to, Some(uid), Some(gid))?;
                rustix::fs::fchmod(&to, mode)?;
            }
            rustix::fs::FileType::RegularFile => {
                let from = rustix::fs::openat(source, name, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
                let to = rustix::fs::openat(target, name, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC, mode)?;
                let mut from_file = std::fs::File::from(from);
                let mut to_file = std::fs::File::from(to);
                std::io::copy(&mut from_file, &mut to_file).map_err(|e| rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO))?;
                rustix::fs::fchown(to_file.as_fd(), Some(uid), Some(gid))?;
                rustix::fs::fchmod(to_file.as_fd(), mode)?;
            }
            rustix::fs::FileType::Symlink => {
                let link = rustix::fs::readlinkat(source, name, Vec::new())?;
                rustix::fs::symlinkat(link.as_c_str(), target, name)?;
                rustix::fs::chownat(target, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)?;
            }
            // Devices, fifos and sockets are not copied into volumes.
            _ => {}
        }
    }
    Ok(())
}
