//! The command table: docker's verbs, their flags and aliases, and dispatch to the
//! implementations.

mod containers;
mod cp;
mod images;
mod registry;
mod run;
mod runopts;
mod stats;
mod stream;
mod volumes;

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
    Run,
    Create,
    Start,
    Stop,
    Restart,
    Kill,
    Pause,
    Unpause,
    Rm,
    Ps,
    Logs,
    Attach,
    Exec,
    Top,
    Stats,
    Wait,
    ContainerInspect,
    Rename,
    Update,
    Cp,
    Diff,
    Export,
    Commit,
    Port,
    ContainerPrune,
    VolumeCreate,
    VolumeLs,
    VolumeInspect,
    VolumeRm,
    VolumePrune,
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
    Flag::new(
        "format",
        None,
        Kind::String,
        "Format output: 'json' prints the report as JSON",
    ),
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

const START_FLAGS: &[Flag] = &[
    Flag::new(
        "attach",
        Some('a'),
        Kind::Bool,
        "Attach STDOUT/STDERR and forward signals",
    ),
    Flag::new(
        "interactive",
        Some('i'),
        Kind::Bool,
        "Attach container's STDIN",
    ),
    Flag::new(
        "detach-keys",
        None,
        Kind::String,
        "Override the key sequence for detaching a container",
    ),
    Flag::new(
        "checkpoint",
        None,
        Kind::String,
        "Restore from this checkpoint",
    )
    .hidden(),
    Flag::new(
        "checkpoint-dir",
        None,
        Kind::String,
        "Use a custom checkpoint storage directory",
    )
    .hidden(),
];
const STOP_FLAGS: &[Flag] = &[
    Flag::new(
        "signal",
        Some('s'),
        Kind::String,
        "Signal to send to the container",
    ),
    Flag::new(
        "timeout",
        Some('t'),
        Kind::Int,
        "Seconds to wait before killing the container",
    ),
    Flag::new(
        "time",
        None,
        Kind::Int,
        "Seconds to wait before killing the container (deprecated: use --timeout)",
    )
    .hidden(),
];
const KILL_FLAGS: &[Flag] = &[Flag::new(
    "signal",
    Some('s'),
    Kind::String,
    "Signal to send to the container",
)];
const RM_FLAGS: &[Flag] = &[
    Flag::new(
        "force",
        Some('f'),
        Kind::Bool,
        "Force the removal of a running container (uses SIGKILL)",
    ),
    Flag::new("link", Some('l'), Kind::Bool, "Remove the specified link"),
    Flag::new(
        "volumes",
        Some('v'),
        Kind::Bool,
        "Remove anonymous volumes associated with the container",
    ),
];
const PS_FLAGS: &[Flag] = &[
    Flag::new(
        "all",
        Some('a'),
        Kind::Bool,
        "Show all containers (default shows just running)",
    ),
    Flag::new(
        "filter",
        Some('f'),
        Kind::Filter,
        "Filter output based on conditions provided",
    ),
    Flag::new("format", None, Kind::String, FORMAT_HELP),
    Flag::new(
        "last",
        Some('n'),
        Kind::Int,
        "Show n last created containers (includes all states) (default -1)",
    ),
    Flag::new(
        "latest",
        Some('l'),
        Kind::Bool,
        "Show the latest created container (includes all states)",
    ),
    Flag::new("no-trunc", None, Kind::Bool, "Don't truncate output"),
    Flag::new("quiet", Some('q'), Kind::Bool, "Only display container IDs"),
    Flag::new("size", Some('s'), Kind::Bool, "Display total file sizes"),
];
const LOGS_FLAGS: &[Flag] = &[
    Flag::new("details", None, Kind::Bool, "Show extra details provided to logs"),
    Flag::new("follow", Some('f'), Kind::Bool, "Follow log output"),
    Flag::new("since", None, Kind::String, "Show logs since timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)"),
    Flag::new("tail", Some('n'), Kind::String, "Number of lines to show from the end of the logs (default \"all\")"),
    Flag::new("timestamps", Some('t'), Kind::Bool, "Show timestamps"),
    Flag::new("until", None, Kind::String, "Show logs before a timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)"),
];
const ATTACH_FLAGS: &[Flag] = &[
    Flag::new(
        "detach-keys",
        None,
        Kind::String,
        "Override the key sequence for detaching a container",
    ),
    Flag::new("no-stdin", None, Kind::Bool, "Do not attach STDIN"),
    Flag::new(
        "sig-proxy",
        None,
        Kind::Bool,
        "Proxy all received signals to the process (default true)",
    ),
];
const EXEC_FLAGS: &[Flag] = &[
    Flag::new(
        "detach",
        Some('d'),
        Kind::Bool,
        "Detached mode: run command in the background",
    ),
    Flag::new(
        "detach-keys",
        None,
        Kind::String,
        "Override the key sequence for detaching a container",
    ),
    Flag::new("env", Some('e'), Kind::List, "Set environment variables")
        .checked(runopts::check::env),
    Flag::new(
        "env-file",
        None,
        Kind::List,
        "Read in a file of environment variables",
    ),
    Flag::new(
        "interactive",
        Some('i'),
        Kind::Bool,
        "Keep STDIN open even if not attached",
    ),
    Flag::new(
        "privileged",
        None,
        Kind::Bool,
        "Give extended privileges to the command",
    ),
    Flag::new("tty", Some('t'), Kind::Bool, "Allocate a pseudo-TTY"),
    Flag::new(
        "user",
        Some('u'),
        Kind::String,
        "Username or UID (format: \"<name|uid>[:<group|gid>]\")",
    ),
    Flag::new(
        "workdir",
        Some('w'),
        Kind::String,
        "Working directory inside the container",
    ),
];
const STATS_FLAGS: &[Flag] = &[
    Flag::new(
        "all",
        Some('a'),
        Kind::Bool,
        "Show all containers (default shows just running)",
    ),
    Flag::new("format", None, Kind::String, FORMAT_HELP),
    Flag::new(
        "no-stream",
        None,
        Kind::Bool,
        "Disable streaming stats and only pull the first result",
    ),
    Flag::new("no-trunc", None, Kind::Bool, "Do not truncate output"),
];
const CONTAINER_INSPECT_FLAGS: &[Flag] = &[
    Flag::new("format", Some('f'), Kind::String, INSPECT_FORMAT_HELP),
    Flag::new("size", Some('s'), Kind::Bool, "Display total file sizes"),
];
const UPDATE_FLAGS: &[Flag] = &[
    Flag::typed(
        "blkio-weight",
        None,
        "uint16",
        "Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)",
        runopts::check::uint16,
    ),
    Flag::new(
        "cpu-period",
        None,
        Kind::Int,
        "Limit CPU CFS (Completely Fair Scheduler) period",
    ),
    Flag::new(
        "cpu-quota",
        None,
        Kind::Int,
        "Limit CPU CFS (Completely Fair Scheduler) quota",
    ),
    Flag::new(
        "cpu-rt-period",
        None,
        Kind::Int,
        "Limit the CPU real-time period in microseconds",
    ),
    Flag::new(
        "cpu-rt-runtime",
        None,
        Kind::Int,
        "Limit the CPU real-time runtime in microseconds",
    ),
    Flag::new(
        "cpu-shares",
        Some('c'),
        Kind::Int,
        "CPU shares (relative weight)",
    ),
    Flag::typed(
        "cpus",
        None,
        "decimal",
        "Number of CPUs",
        runopts::check::cpus,
    ),
    Flag::new(
        "cpuset-cpus",
        None,
        Kind::String,
        "CPUs in which to allow execution (0-3, 0,1)",
    ),
    Flag::new(
        "cpuset-mems",
        None,
        Kind::String,
        "MEMs in which to allow execution (0-3, 0,1)",
    ),
    Flag::typed(
        "kernel-memory",
        None,
        "bytes",
        "Kernel memory limit (deprecated)",
        runopts::check::bytes,
    )
    .hidden(),
    Flag::typed(
        "memory",
        Some('m'),
        "bytes",
        "Memory limit",
        runopts::check::bytes,
    ),
    Flag::typed(
        "memory-reservation",
        None,
        "bytes",
        "Memory soft limit",
        runopts::check::bytes,
    ),
    Flag::typed(
        "memory-swap",
        None,
        "bytes",
        "Swap limit equal to memory plus swap: -1 to enable unlimited swap",
        runopts::check::swap_bytes,
    ),
    Flag::new(
        "pids-limit",
        None,
        Kind::Int,
        "Tune container pids limit (set -1 for unlimited)",
    ),
    Flag::new(
        "restart",
        None,
        Kind::String,
        "Restart policy to apply when a container exits",
    ),
];
const CP_FLAGS: &[Flag] = &[
    Flag::new("archive", Some('a'), Kind::Bool, "Archive mode (copy all uid/gid information)"),
    Flag::new("follow-link", Some('L'), Kind::Bool, "Always follow symbol link in SRC_PATH"),
    Flag::new("quiet", Some('q'), Kind::Bool, "Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached"),
];
const EXPORT_FLAGS: &[Flag] = &[Flag::new(
    "output",
    Some('o'),
    Kind::String,
    "Write to a file, instead of STDOUT",
)];
const COMMIT_FLAGS: &[Flag] = &[
    Flag::new(
        "author",
        Some('a'),
        Kind::String,
        "Author (e.g., \"John Hannibal Smith <hannibal@a-team.com>\")",
    ),
    Flag::new(
        "change",
        Some('c'),
        Kind::List,
        "Apply Dockerfile instruction to the created image",
    ),
    Flag::new("message", Some('m'), Kind::String, "Commit message"),
    Flag::new(
        "pause",
        Some('p'),
        Kind::Bool,
        "Pause container during commit (default true)",
    ),
];
const CONTAINER_PRUNE_FLAGS: &[Flag] = &[
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
const VOLUME_CREATE_FLAGS: &[Flag] = &[
    Flag::new(
        "driver",
        Some('d'),
        Kind::String,
        "Specify volume driver name (default \"local\")",
    ),
    Flag::new("label", None, Kind::List, "Set metadata for a volume")
        .checked(runopts::check::label),
    Flag::new("name", None, Kind::String, "Specify volume name").hidden(),
    Flag::typed(
        "opt",
        Some('o'),
        "map",
        "Set driver specific options (default map[])",
        runopts::check::any,
    ),
];
const VOLUME_LS_FLAGS: &[Flag] = &[
    Flag::new(
        "filter",
        Some('f'),
        Kind::Filter,
        "Provide filter values (e.g. \"dangling=true\")",
    ),
    Flag::new("format", None, Kind::String, FORMAT_HELP),
    Flag::new("quiet", Some('q'), Kind::Bool, "Only display volume names"),
];
const VOLUME_RM_FLAGS: &[Flag] = &[Flag::new(
    "force",
    Some('f'),
    Kind::Bool,
    "Force the removal of one or more volumes",
)];
const VOLUME_PRUNE_FLAGS: &[Flag] = &[
    Flag::new(
        "all",
        Some('a'),
        Kind::Bool,
        "Remove all unused volumes, not just anonymous ones",
    ),
    Flag::new(
        "filter",
        None,
        Kind::Filter,
        "Provide filter values (e.g. \"label=<label>\")",
    ),
    Flag::new(
        "force",
        Some('f'),
        Kind::Bool,
        "Do not prompt for confirmation",
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
        Verb::Run => ("[OPTIONS] IMAGE [COMMAND] [ARG...]", "Create and run a new container from an image", runopts::RUN_FLAGS, Args::Min(1)),
        Verb::Create => ("[OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container", runopts::CREATE_FLAGS, Args::Min(1)),
        Verb::Start => ("[OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers", START_FLAGS, Args::Min(1)),
        Verb::Stop => ("[OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers", STOP_FLAGS, Args::Min(1)),
        Verb::Restart => ("[OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers", STOP_FLAGS, Args::Min(1)),
        Verb::Kill => ("[OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers", KILL_FLAGS, Args::Min(1)),
        Verb::Pause => ("CONTAINER [CONTAINER...]", "Pause all processes within one or more containers", &[], Args::Min(1)),
        Verb::Unpause => ("CONTAINER [CONTAINER...]", "Unpause all processes within one or more containers", &[], Args::Min(1)),
        Verb::Rm => ("[OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers", RM_FLAGS, Args::Min(1)),
        Verb::Ps => ("[OPTIONS]", "List containers", PS_FLAGS, Args::None),
        Verb::Logs => ("[OPTIONS] CONTAINER", "Fetch the logs of a container", LOGS_FLAGS, Args::Exact(1)),
        Verb::Attach => ("[OPTIONS] CONTAINER", "Attach local standard input, output, and error streams to a running container", ATTACH_FLAGS, Args::Exact(1)),
        Verb::Exec => ("[OPTIONS] CONTAINER COMMAND [ARG...]", "Execute a command in a running container", EXEC_FLAGS, Args::Min(2)),
        Verb::Top => ("CONTAINER [ps OPTIONS]", "Display the running processes of a container", &[], Args::Min(1)),
        Verb::Stats => ("[OPTIONS] [CONTAINER...]", "Display a live stream of container(s) resource usage statistics", STATS_FLAGS, Args::Any),
        Verb::Wait => ("CONTAINER [CONTAINER...]", "Block until one or more containers stop, then print their exit codes", &[], Args::Min(1)),
        Verb::ContainerInspect => ("[OPTIONS] CONTAINER [CONTAINER...]", "Display detailed information on one or more containers", CONTAINER_INSPECT_FLAGS, Args::Min(1)),
        Verb::Rename => ("CONTAINER NEW_NAME", "Rename a container", &[], Args::Exact(2)),
        Verb::Update => ("[OPTIONS] CONTAINER [CONTAINER...]", "Update configuration of one or more containers", UPDATE_FLAGS, Args::Min(1)),
        Verb::Cp => ("[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH", "Copy files/folders between a container and the local filesystem", CP_FLAGS, Args::Exact(2)),
        Verb::Diff => ("CONTAINER", "Inspect changes to files or directories on a container's filesystem", &[], Args::Exact(1)),
        Verb::Export => ("[OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive", EXPORT_FLAGS, Args::Exact(1)),
        Verb::Commit => ("[OPTIONS] CONTAINER [REPOSITORY[:TAG]]", "Create a new image from a container's changes", COMMIT_FLAGS, Args::Range(1, 2)),
        Verb::Port => ("CONTAINER [PRIVATE_PORT[/PROTO]]", "List port mappings or a specific mapping for the container", &[], Args::Range(1, 2)),
        Verb::ContainerPrune => ("[OPTIONS]", "Remove all stopped containers", CONTAINER_PRUNE_FLAGS, Args::None),
        Verb::VolumeCreate => ("[OPTIONS] [VOLUME]", "Create a volume", VOLUME_CREATE_FLAGS, Args::Max(1)),
        Verb::VolumeLs => ("[OPTIONS]", "List volumes", VOLUME_LS_FLAGS, Args::None),
        Verb::VolumeInspect => ("[OPTIONS] VOLUME [VOLUME...]", "Display detailed information on one or more volumes", FORMAT_ONLY_FLAGS, Args::Min(1)),
        Verb::VolumeRm => ("[OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes", VOLUME_RM_FLAGS, Args::Min(1)),
        Verb::VolumePrune => ("[OPTIONS]", "Remove unused local volumes", VOLUME_PRUNE_FLAGS, Args::None),
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
        Verb::Run => &["container run", "run"],
        Verb::Create => &["container create", "create"],
        Verb::Start => &["container start", "start"],
        Verb::Stop => &["container stop", "stop"],
        Verb::Restart => &["container restart", "restart"],
        Verb::Kill => &["container kill", "kill"],
        Verb::Pause => &["container pause", "pause"],
        Verb::Unpause => &["container unpause", "unpause"],
        Verb::Rm => &["container rm", "container remove", "rm"],
        Verb::Ps => &["container ls", "container list", "container ps", "ps"],
        Verb::Logs => &["container logs", "logs"],
        Verb::Attach => &["container attach", "attach"],
        Verb::Exec => &["container exec", "exec"],
        Verb::Top => &["container top", "top"],
        Verb::Stats => &["container stats", "stats"],
        Verb::Wait => &["container wait", "wait"],
        Verb::Rename => &["container rename", "rename"],
        Verb::Update => &["container update", "update"],
        Verb::Cp => &["container cp", "cp"],
        Verb::Diff => &["container diff", "diff"],
        Verb::Export => &["container export", "export"],
        Verb::Commit => &["container commit", "commit"],
        Verb::Port => &["container port", "port"],
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
    ("run", Verb::Run),
    ("create", Verb::Create),
    ("start", Verb::Start),
    ("stop", Verb::Stop),
    ("restart", Verb::Restart),
    ("kill", Verb::Kill),
    ("pause", Verb::Pause),
    ("unpause", Verb::Unpause),
    ("rm", Verb::Rm),
    ("ps", Verb::Ps),
    ("logs", Verb::Logs),
    ("attach", Verb::Attach),
    ("exec", Verb::Exec),
    ("top", Verb::Top),
    ("stats", Verb::Stats),
    ("wait", Verb::Wait),
    ("rename", Verb::Rename),
    ("update", Verb::Update),
    ("cp", Verb::Cp),
    ("diff", Verb::Diff),
    ("export", Verb::Export),
    ("commit", Verb::Commit),
    ("port", Verb::Port),
];

/// `container` subcommands.
const CONTAINER_GROUP: &[(&str, &[&str], Verb)] = &[
    ("attach", &[], Verb::Attach),
    ("commit", &[], Verb::Commit),
    ("cp", &[], Verb::Cp),
    ("create", &[], Verb::Create),
    ("diff", &[], Verb::Diff),
    ("exec", &[], Verb::Exec),
    ("export", &[], Verb::Export),
    ("inspect", &[], Verb::ContainerInspect),
    ("kill", &[], Verb::Kill),
    ("logs", &[], Verb::Logs),
    ("ls", &["list", "ps"], Verb::Ps),
    ("pause", &[], Verb::Pause),
    ("port", &[], Verb::Port),
    ("prune", &[], Verb::ContainerPrune),
    ("rename", &[], Verb::Rename),
    ("restart", &[], Verb::Restart),
    ("rm", &["remove"], Verb::Rm),
    ("run", &[], Verb::Run),
    ("start", &[], Verb::Start),
    ("stats", &[], Verb::Stats),
    ("stop", &[], Verb::Stop),
    ("top", &[], Verb::Top),
    ("unpause", &[], Verb::Unpause),
    ("update", &[], Verb::Update),
    ("wait", &[], Verb::Wait),
];

/// `volume` subcommands.
const VOLUME_GROUP: &[(&str, &[&str], Verb)] = &[
    ("create", &[], Verb::VolumeCreate),
    ("inspect", &[], Verb::VolumeInspect),
    ("ls", &["list"], Verb::VolumeLs),
    ("prune", &[], Verb::VolumePrune),
    ("rm", &["remove"], Verb::VolumeRm),
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
    "build",
    "builder",
    "buildx",
    "checkpoint",
    "context",
    "manifest",
    "network",
    "plugin",
    "trust",
    "config",
    "node",
    "secret",
    "service",
    "stack",
    "swarm",
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
        interspersed: !matches!(
            verb,
            Verb::Tag | Verb::Run | Verb::Create | Verb::Exec | Verb::Top | Verb::Commit
        ),
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
        "container" => Some(("container", "Manage containers", CONTAINER_GROUP)),
        "volume" => Some(("volume", "Manage volumes", VOLUME_GROUP)),
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
            // docker's `volume` command is declared as "volume COMMAND", the others
            // by their name alone, and their errors show that.
            let use_line = if name == "volume" {
                format!("{BIN} {name} COMMAND")
            } else {
                format!("{BIN} {name}")
            };
            if sub.starts_with('-') {
                return Err(Error::Flags(format!(
                    "unknown flag: {sub}\n\nUsage:  {use_line}\n\nRun '{BIN} {name} --help' for more information"
                )));
            }
            return Err(Error::Usage(format!(
                "{BIN}: unknown command: {BIN} {name} {sub}\n\nUsage:  {use_line}\n\nRun '{BIN} {name} --help' for more information"
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
    // `run` and `create` take `--help` as a flag of their own (`-h` is the host name).
    if parsed.bool("help") {
        print_out(&cmd.help())?;
        return Ok(());
    }
    cmd.check_args(&parsed.args)?;
    match verb {
        Verb::Images => images::list(cli, &parsed, cmd.path == "images").await,
        Verb::Inspect => containers::inspect(cli, &parsed, containers::InspectKind::Any).await,
        Verb::ImageInspect => images::inspect(cli, &parsed).await,
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
        Verb::Run => run::run(cli, &parsed).await,
        Verb::Create => run::create(cli, &parsed).await,
        Verb::Start => run::start(cli, &parsed).await,
        Verb::Attach => run::attach(cli, &parsed).await,
        Verb::Exec => run::exec(cli, &parsed).await,
        Verb::Stop => containers::stop(cli, &parsed).await,
        Verb::Restart => containers::restart(cli, &parsed).await,
        Verb::Kill => containers::kill(cli, &parsed).await,
        Verb::Pause => containers::pause(cli, &parsed, "pause").await,
        Verb::Unpause => containers::pause(cli, &parsed, "unpause").await,
        Verb::Rm => containers::remove(cli, &parsed).await,
        Verb::Ps => containers::list(cli, &parsed).await,
        Verb::Logs => containers::logs(cli, &parsed).await,
        Verb::Top => containers::top(cli, &parsed).await,
        Verb::Stats => stats::stats(cli, &parsed).await,
        Verb::Wait => containers::wait(cli, &parsed).await,
        Verb::ContainerInspect => {
            containers::inspect(cli, &parsed, containers::InspectKind::Container).await
        }
        Verb::Rename => containers::rename(cli, &parsed).await,
        Verb::Update => containers::update(cli, &parsed, parsed.count()).await,
        Verb::Cp => cp::cp(cli, &parsed).await,
        Verb::Diff => containers::diff(cli, &parsed).await,
        Verb::Export => containers::export(cli, &parsed).await,
        Verb::Commit => containers::commit(cli, &parsed).await,
        Verb::Port => containers::port(cli, &parsed).await,
        Verb::ContainerPrune => containers::prune(cli, &parsed).await,
        Verb::VolumeCreate => volumes::create(cli, &parsed).await,
        Verb::VolumeLs => volumes::list(cli, &parsed).await,
        Verb::VolumeInspect => {
            containers::inspect(cli, &parsed, containers::InspectKind::Volume).await
        }
        Verb::VolumeRm => volumes::remove(cli, &parsed).await,
        Verb::VolumePrune => volumes::prune(cli, &parsed).await,
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

/// Asks for confirmation (unless `force`), then posts a prune with `filters` to `path`;
/// returns the daemon's report.
pub async fn confirm_and_prune(cli: &mut Cli, force: bool, warning: &str, path: &str, filters: &[String]) -> Result<bytes::Bytes> {
    if !force {
        let confirmed = crate::term::confirm(&mut std::io::stdout(), warning)
            .map_err(|source| Error::Io { operation: "reading confirmation", source })?;
        if !confirmed {
            return Err(Error::Cancelled);
        }
    }
    let mut query = crate::client::Query::new();
    if let Some(f) = filters_json(filters) {
        query = query.add("filters", f);
    }
    let response = cli.client().request(http::Method::POST, path, &query, &[], crate::client::empty()).await?;
    crate::client::read_body(response).await
}

/// What `container prune` and `volume prune` print: the `heading` and the names the
/// report lists under `key`, then the space reclaimed.
pub fn prune_report(report: &crate::format::json::Json, key: &str, heading: &str) -> String {
    use crate::format::json::Json;
    let deleted = report.get(key).map(Json::items).unwrap_or(&[]);
    let mut text = String::new();
    let mut reclaimed = 0;
    if !deleted.is_empty() {
        text.push_str(heading);
        text.push('\n');
        for item in deleted {
            text.push_str(item.str());
            text.push('\n');
        }
        text.push('\n');
        reclaimed = report.get("SpaceReclaimed").map_or(0, Json::int);
    }
    text.push_str(&format!("Total reclaimed space: {}\n", crate::format::units::human_size(reclaimed as f64)));
    text
}

/// Parses a JSON answer of the daemon.
pub fn decode(raw: &[u8], operation: &'static str) -> Result<crate::format::json::Json> {
    crate::format::json::Json::parse(raw).map_err(|source| Error::Decode { operation, source })
}

/// The filters of a prune: the flags' plus `pruneFilters` from the configuration, except
/// where a flag already says the opposite about a label (docker's `PruneFilters`).
pub fn prune_filters(cli: &mut Cli, mut filters: Vec<String>) -> Result<Vec<String>> {
    for f in cli.configs()?.berth.prune_filters() {
        let Some((key, value)) = f.split_once('=') else {
            continue;
        };
        let conflicting = match key {
            "label" => format!("label!={value}"),
            "label!" => format!("label={value}"),
            _ => String::new(),
        };
        if conflicting.is_empty() || !filters.contains(&conflicting) {
            filters.push(f.clone());
        }
    }
    Ok(filters)
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
    let line = |name: &str, verb: Verb| {
        let (_, text, _, _) = interface(verb);
        format!("  {name:<11} {}\n", text.lines().next().unwrap_or(""))
    };
    let common = [
        ("run", Verb::Run),
        ("exec", Verb::Exec),
        ("ps", Verb::Ps),
        ("pull", Verb::Pull),
        ("push", Verb::Push),
        ("images", Verb::Images),
        ("login", Verb::Login),
        ("logout", Verb::Logout),
        ("search", Verb::Search),
        ("version", Verb::Version),
        ("info", Verb::Info),
    ];
    for (name, verb) in common {
        out.push_str(&line(name, verb));
    }
    out.push_str("\nManagement Commands:\n  container   Manage containers\n  image       Manage images\n  system      Manage berth\n  volume      Manage volumes\n\nCommands:\n");
    let others = [
        ("attach", Verb::Attach),
        ("commit", Verb::Commit),
        ("cp", Verb::Cp),
        ("create", Verb::Create),
        ("diff", Verb::Diff),
        ("events", Verb::Events),
        ("export", Verb::Export),
        ("history", Verb::History),
        ("import", Verb::Import),
        ("inspect", Verb::Inspect),
        ("kill", Verb::Kill),
        ("load", Verb::Load),
        ("logs", Verb::Logs),
        ("pause", Verb::Pause),
        ("port", Verb::Port),
        ("rename", Verb::Rename),
        ("restart", Verb::Restart),
        ("rm", Verb::Rm),
        ("rmi", Verb::Remove),
        ("save", Verb::Save),
        ("start", Verb::Start),
        ("stats", Verb::Stats),
        ("stop", Verb::Stop),
        ("tag", Verb::Tag),
        ("top", Verb::Top),
        ("unpause", Verb::Unpause),
        ("update", Verb::Update),
        ("wait", Verb::Wait),
    ];
    for (name, verb) in others {
        out.push_str(&line(name, verb));
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
        for (name, _, verb) in IMAGE_GROUP
            .iter()
            .chain(SYSTEM_GROUP)
            .chain(CONTAINER_GROUP)
            .chain(VOLUME_GROUP)
        {
            let cmd = command(name, *verb);
            assert!(!cmd.short.is_empty());
        }
        assert!(root_help().contains("images"));
    }
}
