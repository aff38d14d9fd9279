//! `commit`: a container's writable layer becomes a new image on top of its image. The
//! new image's config follows docker's rules: the request's config (else the container's),
//! `--change` instructions applied to it, then the container's config filling in what it
//! leaves unset. A running container is paused meanwhile unless asked otherwise.

use std::collections::HashMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use berth_distribution::reference::Reference;
use berth_shim_protocol::Request;
use bollard_stubs::models::ContainerConfig;
use serde_json::{json, Map, Value};

use super::record::{format_time, now_nanos, Status};
use super::{shim, Containers};
use crate::error::{Error, Result};
use crate::images::{import, parse_reference};

/// What `POST /commit` asks for.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// Repository to tag the image in; none when empty.
    pub repo: String,
    /// Tag in that repository (`latest` when empty).
    pub tag: String,
    pub comment: String,
    pub author: String,
    /// Freeze a running container while its layer is read.
    pub pause: bool,
    /// Dockerfile instructions applied to the config (`--change`).
    pub changes: Vec<String>,
    /// The config of the new image; the container's when none.
    pub config: Option<ContainerConfig>,
}

impl Containers {
    /// Makes an image of the container's filesystem; returns its id (`sha256:...`).
    pub async fn commit(&self, name_or_id: &str, options: CommitOptions) -> Result<String> {
        let c = self.get(name_or_id)?;
        let reference = commit_reference(&options.repo, &options.tag)?;
        let _guard = c.lifecycle.lock().await;
        let record = c.record();
        match record.state.status {
            Status::Removing => return Err(Error::Conflict(format!("You cannot commit container {} which is being removed", c.id))),
            Status::Dead => return Err(Error::Conflict(format!("You cannot commit container {} which is Dead", c.id))),
            _ => {}
        }
        let user = options.config.clone().unwrap_or_else(|| record.config.clone());
        let config = commit_config(user, &options.changes, &record.config)?;
        let parent = self.images.lookup(&record.image)?;
        let parent_config = self.images.view(&parent)?.config;

        let paused = options.pause && record.state.status == Status::Running;
        if paused {
            shim::call(&c.socket(), &Request::Pause).await?;
            c.update(|r| r.state.status = Status::Paused)?;
            self.publish(&c, "pause", &[]);
        }
        let images = self.images.clone();
        let upper = c.dir.join("rw/upper");
        let (id, author, comment) = (c.id.clone(), options.author.clone(), options.comment.clone());
        let tag = reference.clone();
        let made = tokio::task::spawn_blocking(move || {
            let make_config = |diff_id: &str, empty: bool| {
                let about = About { container_id: &id, author: &author, comment: &comment, diff_id, empty };
                image_config(&parent_config, &record.config, &config, &about)
            };
            std::thread::scope(|s| {
                let (reader, writer) = pipe();
                let writing = s.spawn(|| write_layer_into(&upper, writer));
                let made = images.create_child_image(&parent, reader, make_config, tag.as_ref());
                let _ = writing.join();
                made
            })
        })
        .await
        .map_err(|e| Error::Internal(format!("commit task: {e}")));
        if paused {
            // Thawed whatever happened: a failed commit must not leave it frozen.
            match shim::call(&c.socket(), &Request::Resume).await {
                Ok(()) => {
                    let _ = c.update(|r| r.state.status = Status::Running);
                    self.publish(&c, "unpause", &[]);
                }
                Err(e) => tracing::warn!("unpausing {} after commit: {e}", c.id),
            }
        }
        let image_id = made??;
        let image_ref = reference.map(|r| r.familiar_string()).unwrap_or_default();
        self.publish(&c, "commit", &[("comment", options.comment), ("imageID", image_id.clone()), ("imageRef", image_ref)]);
        Ok(image_id)
    }
}

/// The reference to tag a commit with: `repo` and `tag` as the API gives them.
fn commit_reference(repo: &str, tag: &str) -> Result<Option<Reference>> {
    let (repo, tag) = (repo.trim(), tag.trim());
    if repo.is_empty() {
        if !tag.is_empty() {
            return Err(Error::InvalidArgument(format!("tag {tag:?} given without a repository")));
        }
        return Ok(None);
    }
    let text = if tag.is_empty() { repo.to_string() } else { format!("{repo}:{tag}") };
    let reference = parse_reference(&text)?;
    if reference.digest().is_some() {
        return Err(Error::InvalidArgument("refusing to create a tag with a digest reference".into()));
    }
    Ok(Some(reference))
}

/// docker's config of a commit: `user` with the changes applied, then `container` filling
/// in what `user` leaves unset (docker's `merge`).
pub fn commit_config(user: ContainerConfig, changes: &[String], container: &ContainerConfig) -> Result<ContainerConfig> {
    let mut value = serde_json::to_value(&user).map_err(|e| Error::Internal(format!("encode container config: {e}")))?;
    import::apply_changes(&mut value, changes)?;
    let mut user: ContainerConfig = serde_json::from_value(value).map_err(|e| Error::InvalidArgument(format!("invalid config after changes: {e}")))?;
    let fill = |mine: &mut Option<String>, theirs: &Option<String>| {
        if mine.as_deref().unwrap_or("").is_empty() {
            mine.clone_from(theirs);
        }
    };
    fill(&mut user.user, &container.user);
    fill(&mut user.working_dir, &container.working_dir);
    fill(&mut user.stop_signal, &container.stop_signal);
    if let Some(theirs) = &container.exposed_ports {
        let ports = user.exposed_ports.get_or_insert_with(HashMap::new);
        for (port, v) in theirs {
            ports.entry(port.clone()).or_insert_with(|| v.clone());
        }
    }
    match &mut user.env {
        Some(mine) if !mine.is_empty() => {
            let key = |e: &str| e.split('=').next().unwrap_or("").to_string();
            for e in container.env.iter().flatten() {
                if !mine.iter().any(|m| key(m) == key(e)) {
                    mine.push(e.clone());
                }
            }
        }
        mine => mine.clone_from(&container.env),
    }
    let labels = user.labels.get_or_insert_with(HashMap::new);
    for (k, v) in container.labels.iter().flatten() {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if user.entrypoint.as_ref().is_none_or(|e| e.is_empty()) {
        if user.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            user.cmd.clone_from(&container.cmd);
            user.args_escaped = container.args_escaped;
        }
        if user.entrypoint.is_none() {
            user.entrypoint.clone_from(&container.entrypoint);
        }
    }
    if let Some(theirs) = &container.healthcheck {
        match &mut user.healthcheck {
            None => user.healthcheck = Some(theirs.clone()),
            Some(mine) => {
                if mine.test.as_ref().is_none_or(|t| t.is_empty()) {
                    mine.test.clone_from(&theirs.test);
                }
                for (m, t) in [
                    (&mut mine.interval, theirs.interval),
                    (&mut mine.timeout, theirs.timeout),
                    (&mut mine.start_period, theirs.start_period),
                    (&mut mine.start_interval, theirs.start_interval),
                    (&mut mine.retries, theirs.retries),
                ] {
                    if m.unwrap_or(0) == 0 {
                        *m = t;
                    }
                }
            }
        }
    }
    match (&mut user.volumes, &container.volumes) {
        (Some(mine), Some(theirs)) if !mine.is_empty() => mine.extend(theirs.iter().map(|(k, v)| (k.clone(), v.clone()))),
        (mine, theirs) => mine.clone_from(theirs),
    }
    Ok(user)
}

/// What the new image records about where it came from.
struct About<'a> {
    container_id: &'a str,
    author: &'a str,
    comment: &'a str,
    diff_id: &'a str,
    /// The layer changes nothing: no diff id, an empty-layer history entry.
    empty: bool,
}

/// The new image's config: the parent's with the new config, the container's config, one
/// more history entry and one more diff id.
fn image_config(parent: &Value, container: &ContainerConfig, config: &ContainerConfig, about: &About<'_>) -> Result<Vec<u8>> {
    let encode = |v: &ContainerConfig| serde_json::to_value(v).map_err(|e| Error::Internal(format!("encode container config: {e}")));
    let created = format_time(now_nanos());
    let mut image = parent.as_object().cloned().unwrap_or_default();
    // Legacy v1 fields of the parent describe the parent.
    image.remove("id");
    image.remove("parent");
    image.insert("config".into(), encode(config)?);
    image.insert("container_config".into(), encode(container)?);
    image.insert("container".into(), json!(about.container_id));
    image.insert("created".into(), json!(created));
    let mut entry = Map::new();
    entry.insert("created".into(), json!(created));
    for (key, value) in [("author", about.author), ("comment", about.comment)] {
        if value.is_empty() {
            image.remove(key);
        } else {
            image.insert(key.into(), json!(value));
            entry.insert(key.into(), json!(value));
        }
    }
    entry.insert("created_by".into(), json!(container.cmd.clone().unwrap_or_default().join(" ")));
    if about.empty {
        entry.insert("empty_layer".into(), json!(true));
    }
    let mut history = image.get("history").and_then(Value::as_array).cloned().unwrap_or_default();
    history.push(Value::Object(entry));
    image.insert("history".into(), Value::Array(history));
    let mut diff_ids = image.get("rootfs").and_then(|r| r.get("diff_ids")).and_then(Value::as_array).cloned().unwrap_or_default();
    if !about.empty {
        diff_ids.push(json!(about.diff_id));
    }
    image.insert("rootfs".into(), json!({ "type": "layers", "diff_ids": diff_ids }));
    serde_json::to_vec(&Value::Object(image)).map_err(|e| Error::Internal(format!("encode image config: {e}")))
}

/// Writes the upper directory as a layer tar into the pipe; a failure reaches the reader
/// as an error, so a layer cut short is never stored as if it ended there.
fn write_layer_into(upper: &Path, writer: PipeWriter) {
    let errors = writer.tx.clone();
    let mut out = BufWriter::with_capacity(1 << 20, writer);
    let written = berth_snapshot::write_layer(upper, &mut out).map_err(|e| io::Error::other(e.to_string())).and_then(|_| out.flush());
    if let Err(e) = written {
        let _ = errors.send(Err(e));
    }
}

/// A pipe between two threads that carries the writer's error to the reader.
fn pipe() -> (PipeReader, PipeWriter) {
    let (tx, rx) = sync_channel(4);
    (PipeReader { rx, chunk: Vec::new(), pos: 0 }, PipeWriter { tx })
}

struct PipeWriter {
    tx: SyncSender<io::Result<Vec<u8>>>,
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.tx.send(Ok(data.to_vec())).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "layer reader stopped"))?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct PipeReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // Every writer is gone: the end.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn changes_then_container_config_fill_in() {
        let container = ContainerConfig {
            cmd: strings(&["sh"]),
            env: strings(&["PATH=/bin", "A=1"]),
            working_dir: Some("/w".into()),
            labels: Some(HashMap::from([("a".into(), "1".into())])),
            ..Default::default()
        };
        let changes = vec![r#"CMD ["cat", "/x"]"#.to_string(), "ENV A=2 B=3".into(), "LABEL b=2".into(), "EXPOSE 80".into()];
        let got = commit_config(container.clone(), &changes, &container).unwrap();
        assert_eq!(got.cmd, strings(&["cat", "/x"]));
        assert_eq!(got.env, strings(&["PATH=/bin", "A=2", "B=3"]));
        assert_eq!(got.working_dir.as_deref(), Some("/w"));
        assert_eq!(got.labels.unwrap().len(), 2);
        assert!(got.exposed_ports.unwrap().contains_key("80/tcp"));

        // An entrypoint given by a change drops the inherited command.
        let got = commit_config(container.clone(), &["ENTRYPOINT [\"/e\"]".to_string()], &container).unwrap();
        assert_eq!((got.entrypoint, got.cmd), (strings(&["/e"]), None));

        // A config in the request is completed from the container's.
        let user = ContainerConfig { env: strings(&["A=9"]), ..Default::default() };
        let got = commit_config(user, &[], &container).unwrap();
        assert_eq!(got.env, strings(&["A=9", "PATH=/bin"]));
        assert_eq!(got.cmd, strings(&["sh"]));

        // A container without an environment keeps the one the changes set.
        let bare = ContainerConfig { cmd: strings(&["sh"]), ..Default::default() };
        let got = commit_config(ContainerConfig::default(), &["ENV X=1".to_string()], &bare).unwrap();
        assert_eq!(got.env, strings(&["X=1"]));

        assert!(commit_config(container.clone(), &["RUN true".to_string()], &container).is_err());
    }

    #[test]
    fn history_and_layers_grow_by_one() {
        let parent = json!({
            "architecture": "amd64", "os": "linux", "id": "old",
            "rootfs": { "type": "layers", "diff_ids": ["sha256:a"] },
            "history": [{ "created_by": "base" }],
        });
        let container = ContainerConfig { cmd: strings(&["sh", "-c", "touch /x"]), ..Default::default() };
        let about = About { container_id: "c1", author: "me", comment: "why", diff_id: "sha256:b", empty: false };
        let config: Value = serde_json::from_slice(&image_config(&parent, &container, &container, &about).unwrap()).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"], json!(["sha256:a", "sha256:b"]));
        assert_eq!(config["history"][1]["created_by"], json!("sh -c touch /x"));
        assert_eq!(config["history"][1]["comment"], json!("why"));
        assert_eq!((config["author"].clone(), config["container"].clone(), config.get("id")), (json!("me"), json!("c1"), None));
        let empty = About { empty: true, author: "", ..about };
        let config: Value = serde_json::from_slice(&image_config(&parent, &container, &container, &empty).unwrap()).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"], json!(["sha256:a"]));
        assert_eq!(config["history"][1]["empty_layer"], json!(true));
        assert!(config.get("author").is_none());
    }

    #[test]
    fn writer_errors_reach_the_reader() {
        let (mut reader, mut writer) = pipe();
        let errors = writer.tx.clone();
        std::thread::spawn(move || {
            writer.write_all(b"abc").unwrap();
            errors.send(Err(io::Error::other("disk gone"))).unwrap();
        });
        let mut out = Vec::new();
        let e = reader.read_to_end(&mut out).unwrap_err();
        assert_eq!(out, b"abc");
        assert_eq!(e.to_string(), "disk gone");
    }
}
