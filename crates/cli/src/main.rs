//! `berth`: a docker-compatible command line client that speaks the Docker Engine API to
//! berthd (or any daemon serving that API).

mod cli;
mod client;
mod commands;
mod config;
mod error;
mod flags;
mod format;
mod reference;
mod term;

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::flags::{Args, Command, Flag, Kind, Outcome, BIN};

const GLOBAL_FLAGS: &[Flag] = &[
    Flag::new(
        "config",
        None,
        Kind::String,
        "Location of client config files",
    ),
    Flag::new("debug", Some('D'), Kind::Bool, "Enable debug mode"),
    Flag::new("host", Some('H'), Kind::List, "Daemon socket to connect to"),
    Flag::new(
        "log-level",
        Some('l'),
        Kind::String,
        "Set the logging level",
    ),
    Flag::new(
        "version",
        Some('v'),
        Kind::Bool,
        "Print version information and quit",
    ),
];

fn root_command() -> Command {
    Command {
        path: String::new(),
        usage: "[OPTIONS] COMMAND",
        short: "A container engine speaking the Docker Engine API",
        aliases: Vec::new(),
        flags: GLOBAL_FLAGS,
        args: Args::Any,
        interspersed: false,
    }
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn run(argv: &[String]) -> Result<()> {
    let root = root_command();
    let parsed = match flags::parse(&root, argv)? {
        Outcome::Help => {
            return commands_help();
        }
        Outcome::Run(parsed) => parsed,
    };
    if parsed.bool("version") {
        return commands::print_out(&format!(
            "{BIN} version {}, build {}\n",
            env!("CARGO_PKG_VERSION"),
            build_id()
        ));
    }
    let level = parsed.string("log-level");
    if !level.is_empty()
        && !["debug", "info", "warn", "error", "fatal", "panic", "trace"].contains(&level.as_str())
    {
        return Err(Error::Flags(format!(
            "Unable to parse logging level: {level}"
        )));
    }
    let hosts = parsed.list("host");
    if hosts.len() > 1 {
        return Err(Error::InvalidArgument(format!(
            "Failed to initialize: unable to resolve {BIN} endpoint: Specify only one -H"
        )));
    }
    let host = hosts
        .into_iter()
        .next()
        .or_else(|| env("BERTH_HOST"))
        .unwrap_or_else(|| client::DEFAULT_HOST.to_string());
    let config_dir = match parsed.string("config") {
        dir if !dir.is_empty() => PathBuf::from(dir),
        _ => env("BERTH_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| home_dir().join(".berth")),
    };
    let docker_config_dir = env("DOCKER_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| home_dir().join(".docker"));
    let client = client::Client::new(&host, env("BERTH_API_VERSION"))?;
    let mut cli = cli::Cli::new(
        client,
        config_dir,
        Some(docker_config_dir),
        parsed.bool("debug"),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|source| Error::Io {
            operation: "starting runtime",
            source,
        })?;
    runtime.block_on(commands::run(&mut cli, &parsed.args))
}

fn commands_help() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|source| Error::Io {
            operation: "starting runtime",
            source,
        })?;
    let client = client::Client::new(client::DEFAULT_HOST, None)?;
    let mut cli = cli::Cli::new(client, home_dir().join(".berth"), None, false);
    rt.block_on(commands::run(&mut cli, &[]))
}

/// The build identifier printed by `--version`.
fn build_id() -> &'static str {
    option_env!("BERTH_GIT_COMMIT").unwrap_or("unknown")
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&argv) {
        // Like docker (killed by SIGPIPE), stop quietly when the reader of our output
        // went away, e.g. `berth images | head -1`. SIGPIPE itself stays ignored so that
        // a credential helper closing its stdin early is an error, not our death.
        if e.is_broken_pipe() {
            std::process::exit(128 + libc::SIGPIPE);
        }
        let message = e.to_string();
        if !message.is_empty() {
            eprintln!("{message}");
        }
        std::process::exit(e.exit_code());
    }
}
