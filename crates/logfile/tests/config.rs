//! `--log-driver` / `--log-opt` validation, defaults, and the attributes options produce.

use std::collections::HashMap;

use berth_logfile::{parse_max_size, ContainerInfo, Driver, Error, ErrorKind, LogConfig};

fn parse(driver: &str, opts: &[(&str, &str)]) -> Result<LogConfig, Error> {
    let opts: HashMap<String, String> = opts
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    LogConfig::parse(driver, &opts)
}

/// Parsing fails with an invalid-argument error whose message contains every `needle`.
fn refused(driver: &str, opts: &[(&str, &str)], needles: &[&str]) {
    let err = parse(driver, opts)
        .err()
        .unwrap_or_else(|| panic!("{driver} {opts:?} was accepted"));
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let message = err.to_string();
    for needle in needles {
        assert!(
            message.contains(needle),
            "{message:?} does not mention {needle:?}"
        );
    }
    assert!(!message.ends_with('.'), "{message:?}");
}

#[test]
fn rotation_is_on_by_default() {
    for driver in ["json-file", ""] {
        let config = parse(driver, &[]).expect("valid");
        assert_eq!(config, LogConfig::default());
        assert_eq!(
            (
                config.driver,
                config.max_size,
                config.max_file,
                config.compress
            ),
            (Driver::JsonFile, Some(20 << 20), 5, false)
        );
    }
    let local = parse("local", &[]).expect("valid");
    assert_eq!(
        (local.driver, local.max_size, local.max_file, local.compress),
        (Driver::Local, Some(20 << 20), 5, true)
    );
}

#[test]
fn partial_rotation_options() {
    // A size alone keeps one file, as in docker; a file count alone gets the default size.
    let c = parse("json-file", &[("max-size", "10m")]).expect("valid");
    assert_eq!((c.max_size, c.max_file), (Some(10_000_000), 1));
    let c = parse("json-file", &[("max-file", "3")]).expect("valid");
    assert_eq!((c.max_size, c.max_file), (Some(20 << 20), 3));
    // -1: no limit, docker's unbounded default.
    let c = parse("json-file", &[("max-size", "-1")]).expect("valid");
    assert_eq!(c.max_size, None);
    // local: each option defaults on its own; compression only where there is rotation.
    let c = parse("local", &[("max-file", "1")]).expect("valid");
    assert_eq!((c.max_file, c.compress), (1, false));
    let c = parse("local", &[("max-size", "1k"), ("compress", "false")]).expect("valid");
    assert_eq!((c.max_size, c.max_file, c.compress), (Some(1000), 5, false));
}

#[test]
fn sizes_in_docker_units() {
    for (text, bytes) in [
        ("1", 1),
        ("10k", 10_000),
        ("10K", 10_000),
        ("20m", 20_000_000),
        ("1g", 1_000_000_000),
        ("1.5m", 1_500_000),
        ("20MB", 20_000_000),
        ("5kib", 5_000),
        ("3 k", 3_000),
        ("2t", 2_000_000_000_000),
        ("123b", 123),
    ] {
        assert_eq!(parse_max_size(text).expect(text), Some(bytes), "{text}");
    }
    for text in [
        "", "k", "10x", "1.2.3m", "-5", "0", "0.1", "10 mm", ".5m", "1e3", " 10k", "10k ",
    ] {
        let err = parse_max_size(text)
            .err()
            .unwrap_or_else(|| panic!("{text:?} was accepted"));
        assert!(err.to_string().contains("max-size"), "{err}");
    }
}

#[test]
fn bad_options_are_named() {
    refused("syslog", &[], &["unknown logging driver", "\"syslog\""]);
    refused(
        "json-file",
        &[("max-size", "10m"), ("max-szie", "1")],
        &["max-szie", "json-file"],
    );
    refused("local", &[("mode", "non-blocking")], &["mode", "local"]);
    refused(
        "json-file",
        &[("max-size", "ten")],
        &["max-size", "\"ten\""],
    );
    refused("json-file", &[("max-size", "0")], &["max-size", "positive"]);
    refused(
        "json-file",
        &[("max-file", "0")],
        &["max-file", "at least 1"],
    );
    refused(
        "json-file",
        &[("max-file", "three")],
        &["max-file", "\"three\""],
    );
    refused(
        "json-file",
        &[("compress", "maybe")],
        &["compress", "\"maybe\""],
    );
    refused(
        "json-file",
        &[("max-size", "1m"), ("compress", "true")],
        &["compress", "max-file"],
    );
    refused(
        "json-file",
        &[("max-size", "-1"), ("max-file", "3"), ("compress", "true")],
        &["compress", "max-size"],
    );
    refused(
        "local",
        &[("max-file", "1"), ("compress", "true")],
        &["compress"],
    );
    refused("json-file", &[("env-regex", "(")], &["env-regex", "\"(\""]);
    refused("json-file", &[("labels-regex", "[a-")], &["labels-regex"]);
    refused("json-file", &[("tag", "{{.Nope}}")], &["tag", ".Nope"]);
    refused("json-file", &[("tag", "{{.Name")], &["tag", "unclosed"]);
    refused("json-file", &[("tag", "{{json .Name}}")], &["tag"]);
    // The same bad options always give the same error, whatever the map's order.
    for _ in 0..20 {
        let err =
            parse("json-file", &[("zz", "1"), ("aa", "1"), ("mm", "1")]).expect_err("refused");
        assert!(err.to_string().contains("\"aa\""), "{err}");
    }
}

#[test]
fn none_driver_ignores_options() {
    let config = parse("none", &[("max-size", "bogus"), ("whatever", "1")]).expect("valid");
    assert_eq!(config.driver, Driver::None);
    assert!(config.log_path(std::path::Path::new("/x"), "id").is_none());
}

#[test]
fn attributes_follow_docker() {
    let config = parse(
        "json-file",
        &[
            ("labels", "app,missing"),
            ("labels-regex", "^com\\."),
            ("env", "FOO,NOPE"),
            ("env-regex", "^BA"),
            (
                "tag",
                "{{.Name}}/{{.ID}} {{ .ImageName }}@{{.ImageID}} {{.DaemonName}} {{.FullID}}",
            ),
        ],
    )
    .expect("valid");
    let container = ContainerInfo {
        id: "bbeab18c63c5ae3262ca4bb417e0879c3d76d4d5a565010a286bf7e6e213e7d7".to_string(),
        name: "/web".to_string(),
        image_id: "sha256:ccbf6ad805bd71e5b2ce29d6cc80bf4e01a87647894ae2bf60e6316d3dfbe8be"
            .to_string(),
        image_name: "busybox:latest".to_string(),
        labels: [
            ("app", "shop"),
            ("other", "x"),
            ("com.example.team", "blue"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        env: vec![
            "FOO=bar".to_string(),
            "BAZ=q=x".to_string(),
            "BAR".to_string(),
            "OTHER=1".to_string(),
        ],
        daemon_name: "berth".to_string(),
        ..ContainerInfo::default()
    };
    let attrs = config.attributes(&container).expect("attributes");
    let expected: Vec<(&str, String)> = vec![
        ("BAZ", "q=x".to_string()),
        ("FOO", "bar".to_string()),
        ("app", "shop".to_string()),
        ("com.example.team", "blue".to_string()),
        (
            "tag",
            format!(
                "web/bbeab18c63c5 busybox:latest@ccbf6ad805bd berth {}",
                container.id
            ),
        ),
    ];
    assert_eq!(
        attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect::<Vec<_>>(),
        expected
    );
    assert!(LogConfig::default()
        .attributes(&container)
        .expect("attributes")
        .is_empty());
}

#[test]
fn config_round_trips_through_json() {
    // The daemon hands the validated config to the shim.
    let config = parse(
        "local",
        &[("max-size", "3m"), ("labels", "a,b"), ("tag", "{{.ID}}")],
    )
    .expect("valid");
    let json = serde_json::to_string(&config).expect("serialize");
    assert!(json.contains("\"driver\":\"local\""), "{json}");
    assert_eq!(
        serde_json::from_str::<LogConfig>(&json).expect("deserialize"),
        config
    );
}
