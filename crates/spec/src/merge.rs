//! Docker's merge of the image's config into a new container's config at create time.

use bollard_stubs::models::{ContainerConfig, HealthConfig, ImageConfig};

/// Fills what the create request left out from the image config, as Docker does:
/// - `Cmd` and `Entrypoint` come from the image only when the request gives no
///   entrypoint; a request with an entrypoint and no cmd runs without the image's CMD,
///   and `--entrypoint ""` (`[""]`) clears the entrypoint without taking the image's;
/// - `Env` is merged by key (the request wins), `Labels`, `Volumes` and `ExposedPorts`
///   are unions (the request wins);
/// - `User`, `WorkingDir`, `StopSignal` come from the image when unset;
/// - a `Healthcheck` in the request takes unset fields from the image's.
///
/// The image's `OnBuild`, `Shell`, `Hostname` and `Domainname` are not inherited.
pub fn merge_image_config(container: &mut ContainerConfig, image: &ImageConfig) {
    let empty = |s: &Option<String>| s.as_deref().is_none_or(str::is_empty);
    if empty(&container.user) {
        container.user = image.user.clone();
    }
    union(&mut container.exposed_ports, &image.exposed_ports);

    match (&mut container.env, &image.env) {
        (Some(env), Some(image_env)) if !env.is_empty() => {
            let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
            let ours: Vec<String> = env.iter().map(|e| key(e)).collect();
            for e in image_env {
                if !ours.contains(&key(e)) {
                    env.push(e.clone());
                }
            }
        }
        (env, image_env) => {
            if env.as_ref().is_none_or(Vec::is_empty) {
                *env = image_env.clone();
            }
        }
    }

    let labels = container.labels.get_or_insert_with(Default::default);
    for (k, v) in image.labels.iter().flatten() {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }

    if container.entrypoint.as_ref().is_none_or(Vec::is_empty) {
        if container.cmd.as_ref().is_none_or(Vec::is_empty) {
            container.cmd = image.cmd.clone();
        }
        // An empty (but present) entrypoint keeps the image's out, as in Docker.
        if container.entrypoint.is_none() {
            container.entrypoint = image.entrypoint.clone();
        }
    }

    if let Some(image_hc) = &image.healthcheck {
        match &mut container.healthcheck {
            None => container.healthcheck = Some(image_hc.clone()),
            Some(hc) => merge_healthcheck(hc, image_hc),
        }
    }

    if empty(&container.working_dir) {
        container.working_dir = image.working_dir.clone();
    }
    union(&mut container.volumes, &image.volumes);
    if empty(&container.stop_signal) {
        container.stop_signal = image.stop_signal.clone();
    }

    // `--entrypoint ""` means no entrypoint at all.
    if container
        .entrypoint
        .as_deref()
        .is_some_and(|e| e.len() == 1 && e[0].is_empty())
    {
        container.entrypoint = None;
    }
}

fn merge_healthcheck(hc: &mut HealthConfig, image: &HealthConfig) {
    if hc.test.as_ref().is_none_or(Vec::is_empty) {
        hc.test = image.test.clone();
    }
    let unset = |v: Option<i64>| v.is_none_or(|v| v == 0);
    for (ours, theirs) in [
        (&mut hc.interval, image.interval),
        (&mut hc.timeout, image.timeout),
        (&mut hc.start_period, image.start_period),
        (&mut hc.start_interval, image.start_interval),
        (&mut hc.retries, image.retries),
    ] {
        if unset(*ours) {
            *ours = theirs;
        }
    }
}

/// Adds the image's keys to the container's map (creating it when empty).
fn union<V: Clone>(
    ours: &mut Option<std::collections::HashMap<String, V>>,
    theirs: &Option<std::collections::HashMap<String, V>>,
) {
    let Some(theirs) = theirs else { return };
    match ours {
        Some(map) if !map.is_empty() => {
            for (k, v) in theirs {
                map.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        _ => *ours = Some(theirs.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn v(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    fn image() -> ImageConfig {
        ImageConfig {
            user: Some("app".into()),
            env: v(&["PATH=/usr/bin:/bin", "LANG=C.UTF-8"]),
            cmd: v(&["serve", "--port", "80"]),
            entrypoint: v(&["/entry.sh"]),
            working_dir: Some("/srv".into()),
            labels: Some(HashMap::from([
                ("a".into(), "image".into()),
                ("b".into(), "image".into()),
            ])),
            volumes: Some(HashMap::from([("/data".into(), HashMap::new())])),
            exposed_ports: Some(HashMap::from([("80/tcp".into(), HashMap::new())])),
            stop_signal: Some("SIGQUIT".into()),
            healthcheck: Some(HealthConfig {
                test: v(&["CMD", "check"]),
                interval: Some(30_000_000_000),
                timeout: Some(5_000_000_000),
                retries: Some(3),
                ..Default::default()
            }),
            on_build: v(&["RUN echo hi"]),
            shell: v(&["/bin/bash", "-c"]),
            hostname: Some("imagehost".into()),
            ..Default::default()
        }
    }

    fn merged(c: ContainerConfig) -> ContainerConfig {
        let mut c = c;
        merge_image_config(&mut c, &image());
        c
    }

    #[test]
    fn empty_request_takes_everything() {
        let c = merged(ContainerConfig::default());
        assert_eq!(c.user.as_deref(), Some("app"));
        assert_eq!(c.cmd, v(&["serve", "--port", "80"]));
        assert_eq!(c.entrypoint, v(&["/entry.sh"]));
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.env, v(&["PATH=/usr/bin:/bin", "LANG=C.UTF-8"]));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
        assert!(c.volumes.unwrap().contains_key("/data"));
        assert!(c.exposed_ports.unwrap().contains_key("80/tcp"));
        assert_eq!(c.labels.unwrap().len(), 2);
        assert_eq!(c.healthcheck.unwrap().retries, Some(3));
        assert_eq!(c.on_build, None, "ONBUILD is not inherited");
        assert_eq!(c.hostname, None);
    }

    #[test]
    fn cmd_without_entrypoint_keeps_image_entrypoint() {
        let c = merged(ContainerConfig {
            cmd: v(&["sh"]),
            ..Default::default()
        });
        assert_eq!((c.entrypoint, c.cmd), (v(&["/entry.sh"]), v(&["sh"])));
    }

    #[test]
    fn entrypoint_drops_image_cmd() {
        let c = merged(ContainerConfig {
            entrypoint: v(&["/bin/true"]),
            ..Default::default()
        });
        assert_eq!((c.entrypoint, c.cmd), (v(&["/bin/true"]), None));
    }

    #[test]
    fn empty_entrypoint_string_clears_everything() {
        let c = merged(ContainerConfig {
            entrypoint: v(&[""]),
            ..Default::default()
        });
        assert_eq!((c.entrypoint, c.cmd), (None, None));
        let c = merged(ContainerConfig {
            entrypoint: v(&[""]),
            cmd: v(&["ls"]),
            ..Default::default()
        });
        assert_eq!((c.entrypoint, c.cmd), (None, v(&["ls"])));
    }

    #[test]
    fn empty_entrypoint_list_takes_cmd_but_not_entrypoint() {
        let c = merged(ContainerConfig {
            entrypoint: Some(vec![]),
            ..Default::default()
        });
        assert_eq!(
            (c.entrypoint, c.cmd),
            (Some(vec![]), v(&["serve", "--port", "80"]))
        );
    }

    #[test]
    fn env_merges_by_key() {
        let c = merged(ContainerConfig {
            env: v(&["LANG=fr_FR", "EXTRA=1", "UNSET"]),
            ..Default::default()
        });
        assert_eq!(
            c.env,
            v(&["LANG=fr_FR", "EXTRA=1", "UNSET", "PATH=/usr/bin:/bin"])
        );
    }

    #[test]
    fn labels_and_maps_prefer_the_request() {
        let c = merged(ContainerConfig {
            labels: Some(HashMap::from([("a".into(), "mine".into())])),
            volumes: Some(HashMap::from([("/mine".into(), HashMap::new())])),
            ..Default::default()
        });
        let labels = c.labels.unwrap();
        assert_eq!(
            (labels["a"].as_str(), labels["b"].as_str()),
            ("mine", "image")
        );
        let vols = c.volumes.unwrap();
        assert!(vols.contains_key("/mine") && vols.contains_key("/data"));
    }

    #[test]
    fn healthcheck_partial_override() {
        let c = merged(ContainerConfig {
            healthcheck: Some(HealthConfig {
                interval: Some(1_000_000_000),
                ..Default::default()
            }),
            ..Default::default()
        });
        let hc = c.healthcheck.unwrap();
        assert_eq!(hc.test, v(&["CMD", "check"]));
        assert_eq!(hc.interval, Some(1_000_000_000));
        assert_eq!(hc.timeout, Some(5_000_000_000));
        assert_eq!(hc.retries, Some(3));
    }

    #[test]
    fn request_values_win() {
        let c = merged(ContainerConfig {
            user: Some("root".into()),
            working_dir: Some("/".into()),
            stop_signal: Some("SIGTERM".into()),
            ..Default::default()
        });
        assert_eq!(
            (
                c.user.as_deref(),
                c.working_dir.as_deref(),
                c.stop_signal.as_deref()
            ),
            (Some("root"), Some("/"), Some("SIGTERM"))
        );
    }
}
