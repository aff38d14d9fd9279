//! The command table: docker's verbs, their flags and aliases, and dispatch to the
//! implementations.

mod images;
mod registry;

pub use images::print_out;
mod system;
mod transfer;

use std::collections::BTreeMap;

use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::flags::{self, Args, Command, Flag, Kind, Outcome, BIN};

/// What a command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Images,
    Pull,
    Push,
    Inspect,
    ImageInspect,
    History,
    Tag,
    Remove,
    Prune,
    Save,
    Load,
    Import,
    Login,
    Logout,
    Search,
    Df,
    Info,
    Version,
    Events,
    Check,
}

const FORMAT_HELP: &str = "Format output using a custom template:\n'table':            Print output in table format with column headers (default)\n'table TEMPLATE':   Print output in table format using the given Go template\n'json':             Print in JSON format\n'TEMPLATE':         Print output using the given Go template";
const INSPECT_FORMAT_HELP: &str = "Format output using a custom template:\n'json':             Print in JSON format\n'TEMPLATE':         Print output using the given Go template";

const IMAGES_FLAGS: &[Flag] = &[
    Flag::new(
        "all",
        Some('a'),
        Kind::Bool,
        "Show all images (default hides intermediate images)",
    ),
    Flag::new("digests", None, Kind::Bool, "Show digests"),
    Flag::new(
        "filter",
        Some('f'),
        Kind::Filter,
        "Filter output based on conditions provided",
    ),
    Flag::new("format", None, Kind::String, FORMAT_HELP),
    Flag::new("no-trunc", None, Kind::Bool, "Don't truncate output"),
    Flag::new("quiet", Some('q'), Kind::Bool, "Only show image IDs"),
];
const PULL_FLAGS: &[Flag] = &[
    Flag::new(
        "all-tags",
        Some('a'),
        Kind::Bool,
        "Download all tagged images in the repository",
    ),
    Flag::new(
        "platform",
        None,
        Kind::String,
        "Set platform if server is multi-platform capable",
    ),
    Flag::new("quiet", Some('q'), Kind::Bool, "Suppress verbose output"),
    Flag::new(
        "disable-content-trust",
        None,
        Kind::Bool,
        "Skip image verification (default true)",
    ),
];
const PUSH_FLAGS: &[Flag] = &[
    Flag::new(
        "all-tags",
        Some('a'),
        Kind::Bool,
        "Push all tags of an image to the repository",
    ),
    Flag::new(
        "platform",
        None,
        Kind::String,
        "Push a platform-specific manifest as a single-platform image to the registry",
    ),
    Flag::new("quiet", Some('q'), Kind::Bool, "Suppress verbose output"),
    Flag::new(
        "disable-content-trust",
        None,
        Kind::Bool,
        "Skip image signing (default true)",
    ),
];
const INSPECT_FLAGS: &[Flag] = &[
    Flag::new("format", Some('f'), Kind::String, INSPECT_FORMAT_HELP),
    Flag::new(
        "size",
        Some('s'),
        Kind::Bool,
        "Display total file sizes if the type is container",
    ),
    Flag::new(
        "type",
        None,
        Kind::String,
        "Only inspect objects of the given type",
    ),
];
const IMAGE_INSPECT_FLAGS: &[Flag] = &[
    Flag::new("format", Some('f'), Kind::String, INSPECT_FORMAT_HELP),
    Flag::new(
        "platform",
        None,
        Kind::String,
        "Inspect a specific platform of the multi-platform image",
    ),
];
const HISTORY_FLAGS: &[Flag] = &[
    Flag::new("format", None, Kind::String, FORMAT_HELP),
    Flag::new(
        "human",
        Some('H'),
        Kind::Bool,
        "Print sizes and dates in human readable format (default true)",
    ),
    Flag::new("no-trunc", None, Kind::Bool, "Don't truncate output"),
    Flag::new(
        "platform",
        None,
        Kind::String,
        "Show history for the given platform",
    ),
    Flag::new("quiet", Some('q'), Kind::Bool, "Only show image IDs"),
];
const REMOVE_FLAGS: &[Flag] = &[
    Flag::new("force", Some('f'), Kind::Bool, "Force removal of the image"),
    Flag::new(
        "no-prune",
        None,
        Kind::Bool,
        "Do not delete untagged parents",
    ),
    Flag::new(
        "platform",
        None,
        Kind::List,
        "Remove only the given platform variant",
    ),
];
const PRUNE_FLAGS: &[Flag] = &[
    Flag::new(
        "all",
        Some('a'),
        Kind::Bool,
        "Remove all unused images, not just dangling ones",
    ),
    Flag::new(
        "filter",
        None,
        Kind::Filter,
        "Provide filter values (e.g. \"until=<timestamp>\")",
    ),
    Flag::new(
        "force",
        Some('f'),
        Kind::Bool,
        "Do not prompt for confirmation",
    ),
];
const SAVE_FLAGS: &[Flag] = &[
    Flag::new(
        "output",
        Some('o'),
        Kind::String,
        "Write to a file, instead of STDOUT",
    ),
    Flag::new(
        "platform",
        None,
        Kind::String,
        "Save only the given platform variant",
    ),
];
const LOAD_FLAGS: &[Flag] = &[
    Flag::new(
        "input",
        Some('i'),
        Kind::String,
        "Read from tar archive file, instead of STDIN",
    ),
    Flag::new("quiet", Some('q'), Kind::Bool, "Suppress the load output"),
    Flag::new(
        "platform",
        None,
        Kind::String,
        "Load only the given platform variant",
    ),
];
const IMPORT_FLAGS: &[Flag] = &[
    Flag::new(
        "change",
        Some('c'),
        Kind::List,
        "Apply Dockerfile instruction to the created image",
    ),
    Flag::new(
        "message",
        Some('m'),
        Kind::String,
        "Set commit message for imported image",
    ),
    Flag::new(
        "platform",
        None,
        Kind::String,
        "Set platform if server is multi-platform capable",
    ),
];
const LOGIN_FLAGS: &[Flag] = &[
    Flag::new(
        "password",
        Some('p'),
        Kind::String,
        "Password or Personal Access Token (PAT)",
    ),
    Flag::new(
        "password-stdin",
        None,
        Kind::Bool,
        "Take the Password or Personal Access Token (PAT) from stdin",
    ),
    Flag::new("username", Some('u'), Kind::String, "Username"),
];
const SEARCH_FLAGS: &[Flag] = &[
    Flag::new(
        "filter",
        Some('f'),
        Kind::Filter,
        "Filter output based on conditions provided",
    ),
    Flag::new(
        "format",
        None,
        Kind::String,
        "Pretty-print search using a Go template",
    ),
    Flag::new("limit", None, Kind::Int, "Max number of search results"),
    Flag::new("no-trunc", None, Kind::Bool, "Don't truncate output"),
];
const CHECK_FLAGS: &[Flag] = &[
    Flag::new("repair", None, Kind::Bool, "Repair what can be repaired"),
    Flag::new("format", None, Kind::String, "Format output: 'json' prints the report as JSON"),
];

const DF_FLAGS: &[Flag] = &[
    Flag::new("format", None, Kind::String, FORMAT_HELP),
    Flag::new(
        "verbose",
        Some('v'),
        Kind::Bool,
        "Show detailed information on space usage",
    ),
];
const FORMAT_ONLY_FLAGS: &[Flag] = &[Flag::new(
    "format",
    Some('f'),
    Kind::String,
    INSPECT_FORMAT_HELP,
)];
const EVENTS_FLAGS: &[Flag] = &[
    Flag::new(
        "filter",
        Some('f'),
        Kind::Filter,
        "Filter output based on conditions provided",
    ),
    Flag::new("format", None, Kind::String, INSPECT_FORMAT_HELP),
    Flag::new(
        "since",
        None,
        Kind::String,
        "Show all events created since timestamp",
    ),
    Flag::new(
        "until",
        None,
        Kind::String,
        "Stream events until this timestamp",
    ),
];

/// Interface of a verb: usage, description, flags, arguments.
fn interface(verb: Verb) -> (&'static str, &'static str, &'static [Flag], Args) {
    match verb {
        Verb::Images => ("[OPTIONS] [REPOSITORY[:TAG]]", "List images", IMAGES_FLAGS, Args::Max(1)),
        Verb::Pull => ("[OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry", PULL_FLAGS, Args::Exact(1)),
        Verb::Push => ("[OPTIONS] NAME[:TAG]", "Upload an image to a registry", PUSH_FLAGS, Args::Exact(1)),
        Verb::Inspect => ("[OPTIONS] NAME|ID [NAME|ID...]", "Return low-level information on berth objects", INSPECT_FLAGS, Args::Min(1)),
        Verb::ImageInspect => ("[OPTIONS] IMAGE [IMAGE...]", "Display detailed information on one or more images", IMAGE_INSPECT_FLAGS, Args::Min(1)),
        Verb::History => ("[OPTIONS] IMAGE", "Show the history of an image", HISTORY_FLAGS, Args::Exact(1)),
        Verb::Tag => ("SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", &[], Args::Exact(2)),
        Verb::Remove => ("[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", REMOVE_FLAGS, Args::Min(1)),
        Verb::Prune => ("[OPTIONS]", "Remove unused images", PRUNE_FLAGS, Args::None),
        Verb::Save => ("[OPTIONS] IMAGE [IMAGE...]", "Save one or more images to a tar archive (streamed to STDOUT by default)", SAVE_FLAGS, Args::Min(1)),
        Verb::Load => ("[OPTIONS]", "Load an image from a tar archive or STDIN", LOAD_FLAGS, Args::None),
        Verb::Import => ("[OPTIONS] file|URL|- [REPOSITORY[:TAG]]", "Import the contents from a tarball to create a filesystem image", IMPORT_FLAGS, Args::Min(1)),
        Verb::Login => ("[OPTIONS] [SERVER]", "Authenticate to a registry.\nDefaults to Docker Hub if no server is specified.", LOGIN_FLAGS, Args::Max(1)),
        Verb::Logout => ("[SERVER]", "Log out from a registry.\nIf no server is specified, the default is defined by the daemon.", &[], Args::Max(1)),
        Verb::Search => ("[OPTIONS] TERM", "Search Docker Hub for images", SEARCH_FLAGS, Args::Exact(1)),
        Verb::Df => ("[OPTIONS]", "Show berth disk usage", DF_FLAGS, Args::None),
        Verb::Check => ("[OPTIONS]", "Verify the image store (blobs, layers, records) and repair it", CHECK_FLAGS, Args::None),
        Verb::Info => ("[OPTIONS]", "Display system-wide information", FORMAT_ONLY_FLAGS, Args::None),
        Verb::Version => ("[OPTIONS]", "Show the berth version information", FORMAT_ONLY_FLAGS, Args::None),
        Verb::Events => ("[OPTIONS]", "Get real time events from the server", EVENTS_FLAGS, Args::None),
    }
}

/// Aliases shown in help, as docker lists them.
fn aliases(verb: Verb) -> &'static [&'static str] {
    match verb {
        Verb::Images => &["image ls", "image list", "images"],
        Verb::Pull => &["image pull", "pull"],
        Verb::Push => &["image push", "push"],
        Verb::ImageInspect | Verb::Inspect => &[],
        Verb::History => &["image history", "history"],
        Verb::Tag => &["image tag", "tag"],
        Verb::Remove => &["image rm", "image remove", "rmi"],
        Verb::Save => &["image save", "save"],
        Verb::Load => &["image load", "load"],
        Verb::Import => &["image import", "import"],
        Verb::Info => &["system info", "info"],
        Verb::Events => &["system events", "events"],
        _ => &[],
    }
}

/// Top-level verbs.
const TOP_LEVEL: &[(&str, Verb)] = &[
    ("images", Verb::Images),
    ("pull", Verb::Pull),
    ("push", Verb::Push),
    ("inspect", Verb::Inspect),
    ("history", Verb::History),
    ("tag", Verb::Tag),
    ("rmi", Verb::Remove),
    ("save", Verb::Save),
    ("load", Verb::Load),
    ("import", Verb::Import),
    ("login", Verb::Login),
    ("logout", Verb::Logout),
    ("search", Verb::Search),
    ("info", Verb::Info),
    ("version", Verb::Version),
    ("events", Verb::Events),
];

/// `image` subcommands: name, aliases, verb.
const IMAGE_GROUP: &[(&str, &[&str], Verb)] = &[
    ("history", &[], Verb::History),
    ("import", &[], Verb::Import),
    ("inspect", &[], Verb::ImageInspect),
    ("load", &[], Verb::Load),
    ("ls", &["list"], Verb::Images),
    ("prune", &[], Verb::Prune),
    ("pull", &[], Verb::Pull),
    ("push", &[], Verb::Push),
    ("rm", &["rmi", "remove"], Verb::Remove),
    ("save", &[], Verb::Save),
    ("tag", &[], Verb::Tag),
];

/// `system` subcommands.
const SYSTEM_GROUP: &[(&str, &[&str], Verb)] = &[
    ("check", &[], Verb::Check),
    ("df", &[], Verb::Df),
    ("events", &[], Verb::Events),
    ("info", &[], Verb::Info),
];

/// Docker verbs this version does not implement yet.
const NOT_YET: &[&str] = &[
    "run",
    "exec",
    "ps",
    "build",
    "builder",
    "buildx",
    "checkpoint",
    "container",
    "context",
    "manifest",
    "network",
    "plugin",
    "trust",
    "volume",
    "config",
    "node",
    "secret",
    "service",
    "stack",
    "swarm",
    "attach",
    "commit",
    "cp",
    "create",
    "diff",
    "export",
    "kill",
    "logs",
    "pause",
    "port",
    "rename",
    "restart",
    "rm",
    "start",
    "stats",
    "stop",
    "top",
    "unpause",
    "update",
    "wait",
    "compose",
];

fn command(path: &str, verb: Verb) -> Command {
    let (usage, short, flags, args) = interface(verb);
    Command {
        path: path.to_string(),
        usage,
        short,
        aliases: aliases(verb).iter().map(|a| format!("{BIN} {a}")).collect(),
        flags,
        args,
        interspersed: verb != Verb::Tag,
    }
}

/// Finds the command for `words` (the arguments after the global flags) and runs it.
pub async fn run(cli: &mut Cli, words: &[String]) -> Result<()> {
    let Some(first) = words.first() else {
        print_out(&root_help())?;
        return Ok(());
    };
    let group = match first.as_str() {
        "image" => Some(("image", "Manage images", IMAGE_GROUP)),
        "system" => Some(("system", "Manage berth", SYSTEM_GROUP)),
        _ => None,
    };
    if let Some((name, short, members)) = group {
        let rest = &words[1..];
        let Some(sub) = rest.first() else {
            print_out(&group_help(name, short, members))?;
            return Ok(());
        };
        if sub == "--help" || sub == "-h" || sub == "help" {
            print_out(&group_help(name, short, members))?;
            return Ok(());
        }
        let Some((sub_name, _, verb)) = members
            .iter()
            .find(|(n, aliases, _)| n == sub || aliases.contains(&sub.as_str()))
        else {
            if sub.starts_with('-') {
                return Err(Error::Flags(format!(
                    "unknown flag: {sub}\n\nUsage:  {BIN} {name} COMMAND\n\nRun '{BIN} {name} --help' for more information"
                )));
            }
            return Err(Error::Usage(format!(
                "{BIN}: unknown command: {BIN} {name} {sub}\n\nUsage:  {BIN} {name}\n\nRun '{BIN} {name} --help' for more information"
            )));
        };
        let cmd = command(&format!("{name} {sub_name}"), *verb);
        return execute(cli, &cmd, *verb, &rest[1..]).await;
    }
    if first == "help" {
        print_out(&root_help())?;
        return Ok(());
    }
    if let Some((name, verb)) = TOP_LEVEL.iter().find(|(n, _)| n == first) {
        let cmd = command(name, *verb);
        return execute(cli, &cmd, *verb, &words[1..]).await;
    }
    if NOT_YET.contains(&first.as_str()) {
        return Err(Error::Usage(format!(
            "{BIN}: '{first}' is not supported yet by this version of {BIN}\n\nRun '{BIN} --help' for more information"
        )));
    }
    Err(Error::Usage(format!(
        "{BIN}: unknown command: {BIN} {first}\n\nRun '{BIN} --help' for more information"
    )))
}

async fn execute(cli: &mut Cli, cmd: &Command, verb: Verb, argv: &[String]) -> Result<()> {
    let parsed = match flags::parse(cmd, argv)? {
        Outcome::Help => {
            print_out(&cmd.help())?;
            return Ok(());
        }
        Outcome::Run(parsed) => parsed,
    };
    cmd.check_args(&parsed.args)?;
    match verb {
        Verb::Images => images::list(cli, &parsed, cmd.path == "images").await,
        Verb::Inspect => images::inspect(cli, &parsed, true).await,
        Verb::ImageInspect => images::inspect(cli, &parsed, false).await,
        Verb::History => images::history(cli, &parsed).await,
        Verb::Tag => images::tag(cli, &parsed).await,
        Verb::Remove => images::remove(cli, &parsed).await,
        Verb::Prune => images::prune(cli, &parsed).await,
        Verb::Pull => transfer::pull(cli, &parsed).await,
        Verb::Push => transfer::push(cli, &parsed).await,
        Verb::Save => transfer::save(cli, &parsed).await,
        Verb::Load => transfer::load(cli, &parsed).await,
        Verb::Import => transfer::import(cli, &parsed).await,
        Verb::Login => registry::login(cli, &parsed).await,
        Verb::Logout => registry::logout(cli, &parsed).await,
        Verb::Search => registry::search(cli, &parsed).await,
        Verb::Df => system::df(cli, &parsed).await,
        Verb::Info => system::info(cli, &parsed).await,
        Verb::Version => system::version(cli, &parsed).await,
        Verb::Events => system::events(cli, &parsed).await,
        Verb::Check => system::check(cli, &parsed).await,
    }
}

/// docker's filter flags as the API's `filters` JSON: `{"name":{"value":true}}`, names
/// lower-cased and trimmed, values trimmed.
pub fn filters_json(filters: &[String]) -> Option<String> {
    let mut map: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for filter in filters {
        if let Some((name, value)) = filter.split_once('=') {
            map.entry(name.trim().to_lowercase())
                .or_default()
                .insert(value.trim().to_string(), true);
        }
    }
    if map.is_empty() {
        None
    } else {
        serde_json::to_string(&map).ok()
    }
}

/// An `os[/arch[/variant]]` platform as the JSON object the API takes.
pub fn platform_json(platform: &str) -> Result<String> {
    let parts: Vec<&str> = platform.split('/').collect();
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(Error::InvalidArgument(format!(
            "invalid platform: \"{platform}\": unknown operating system or architecture"
        )));
    }
    let mut object = serde_json::Map::new();
    object.insert("os".into(), parts[0].to_lowercase().into());
    if let Some(arch) = parts.get(1) {
        object.insert("architecture".into(), arch.to_lowercase().into());
    }
    if let Some(variant) = parts.get(2) {
        object.insert("variant".into(), variant.to_lowercase().into());
    }
    Ok(serde_json::Value::Object(object).to_string())
}

/// Fails like docker when the daemon's API is older than a feature needs.
pub async fn require_api(cli: &mut Cli, min: &str, feature: &str) -> Result<()> {
    let version = cli.client().api_version().await?;
    if crate::client::version_less(&version, min) {
        return Err(Error::InvalidArgument(format!(
            "\"{feature}\" requires API version {min}, but the {BIN} daemon API version is {version}"
        )));
    }
    Ok(())
}

fn root_help() -> String {
    let mut out = format!(
        "\nUsage:  {BIN} [OPTIONS] COMMAND\n\nA container engine speaking the Docker Engine API\n\nCommon Commands:\n"
    );
    let common = [
        ("pull", "Download an image from a registry"),
        ("push", "Upload an image to a registry"),
        ("images", "List images"),
        ("login", "Authenticate to a registry"),
        ("logout", "Log out from a registry"),
        ("search", "Search Docker Hub for images"),
        ("version", "Show the berth version information"),
        ("info", "Display system-wide information"),
    ];
    for (name, text) in common {
        out.push_str(&format!("  {name:<11} {text}\n"));
    }
    out.push_str("\nManagement Commands:\n  image       Manage images\n  system      Manage berth\n\nCommands:\n");
    let others = [
        ("events", "Get real time events from the server"),
        ("history", "Show the history of an image"),
        (
            "import",
            "Import the contents from a tarball to create a filesystem image",
        ),
        ("inspect", "Return low-level information on berth objects"),
        ("load", "Load an image from a tar archive or STDIN"),
        ("rmi", "Remove one or more images"),
        (
            "save",
            "Save one or more images to a tar archive (streamed to STDOUT by default)",
        ),
        (
            "tag",
            "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
        ),
    ];
    for (name, text) in others {
        out.push_str(&format!("  {name:<11} {text}\n"));
    }
    out.push_str(&format!(
        "\nGlobal Options:\n      --config string      Location of client config files (default \"~/.berth\")\n  -D, --debug              Enable debug mode\n  -H, --host string        Daemon socket to connect to\n  -l, --log-level string   Set the logging level (\"debug\"|\"info\"|\"warn\"|\"error\"|\"fatal\") (default \"info\")\n  -v, --version            Print version information and quit\n\nRun '{BIN} COMMAND --help' for more information on a command.\n"
    ));
    out
}

fn group_help(name: &str, short: &str, members: &[(&str, &[&str], Verb)]) -> String {
    let mut out = format!("\nUsage:  {BIN} {name} COMMAND\n\n{short}\n\nCommands:\n");
    for (sub, _, verb) in members {
        let (_, text, _, _) = interface(*verb);
        let text = text.lines().next().unwrap_or("");
        out.push_str(&format!("  {sub:<11} {text}\n"));
    }
    out.push_str(&format!(
        "\nRun '{BIN} {name} COMMAND --help' for more information on a command.\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_encode_like_docker() {
        let f = filters_json(&[
            "dangling=true".into(),
            " Label = a=b ".into(),
            "label=c".into(),
        ]);
        assert_eq!(
            f.as_deref(),
            Some(r#"{"dangling":{"true":true},"label":{"a=b":true,"c":true}}"#)
        );
        assert_eq!(filters_json(&[]), None);
    }

    #[test]
    fn platforms() {
        assert_eq!(
            platform_json("linux/AMD64").unwrap(),
            r#"{"architecture":"amd64","os":"linux"}"#
        );
        assert!(platform_json("linux//x").is_err());
    }

    #[test]
    fn every_group_member_has_an_interface() {
        for (name, _, verb) in IMAGE_GROUP.iter().chain(SYSTEM_GROUP) {
            let cmd = command(name, *verb);
            assert!(!cmd.short.is_empty());
        }
        assert!(root_help().contains("images"));
    }
}
