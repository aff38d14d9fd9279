//! Go's typed view of API objects for `inspect --format`. docker runs an inspect template
//! first over its Go struct (field names like `ID`, nil slices printing `[]`, `json`
//! writing struct field order with `omitempty`) and only when that fails over the raw
//! JSON; this module describes the structs so templates see what docker's do.

use std::collections::HashMap;

use gtmpl::Value;

use super::json::{write_go_string, Json};
use super::units::LocalTime;

/// A Go type, as far as templates can tell types apart.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Str,
    Int,
    Bool,
    /// `time.Duration`: an integer in JSON, "1m30s" when printed.
    Duration,
    /// `time.Time`: RFC 3339 in JSON, "2006-01-02 15:04:05 +0000 UTC" when printed.
    Time,
    /// `[]string`.
    Strings,
    /// `map[string]string`.
    StrMap,
    /// `map[string]struct{}`.
    Set,
    /// `*int`.
    IntPtr,
    /// `*bool`.
    BoolPtr,
    /// Anything else, kept as the daemon sent it.
    Raw,
    Struct(&'static [Field]),
    /// A pointer to a struct (`<nil>` when null).
    Ptr(&'static [Field]),
    /// An embedded struct: its fields are promoted into the parent.
    Embed(&'static [Field]),
    /// A slice of structs.
    Structs(&'static [Field]),
}

/// A struct field: Go name, JSON name, type, `omitempty`.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub go: &'static str,
    pub json: &'static str,
    pub ty: Ty,
    pub omitempty: bool,
}

const fn f(go: &'static str, ty: Ty) -> Field {
    Field {
        go,
        json: go,
        ty,
        omitempty: false,
    }
}

const fn o(go: &'static str, ty: Ty) -> Field {
    Field {
        go,
        json: go,
        ty,
        omitempty: true,
    }
}

const fn named(go: &'static str, json: &'static str, ty: Ty, omitempty: bool) -> Field {
    Field {
        go,
        json,
        ty,
        omitempty,
    }
}

const HEALTHCHECK: &[Field] = &[
    o("Test", Ty::Strings),
    o("Interval", Ty::Duration),
    o("Timeout", Ty::Duration),
    o("StartPeriod", Ty::Duration),
    o("StartInterval", Ty::Duration),
    o("Retries", Ty::Int),
];

/// `container.Config`.
const CONTAINER_CONFIG: &[Field] = &[
    f("Hostname", Ty::Str),
    f("Domainname", Ty::Str),
    f("User", Ty::Str),
    f("AttachStdin", Ty::Bool),
    f("AttachStdout", Ty::Bool),
    f("AttachStderr", Ty::Bool),
    o("ExposedPorts", Ty::Set),
    f("Tty", Ty::Bool),
    f("OpenStdin", Ty::Bool),
    f("StdinOnce", Ty::Bool),
    f("Env", Ty::Strings),
    f("Cmd", Ty::Strings),
    o("Healthcheck", Ty::Ptr(HEALTHCHECK)),
    o("ArgsEscaped", Ty::Bool),
    f("Image", Ty::Str),
    f("Volumes", Ty::Set),
    f("WorkingDir", Ty::Str),
    f("Entrypoint", Ty::Strings),
    o("NetworkDisabled", Ty::Bool),
    o("MacAddress", Ty::Str),
    f("OnBuild", Ty::Strings),
    f("Labels", Ty::StrMap),
    o("StopSignal", Ty::Str),
    o("StopTimeout", Ty::IntPtr),
    o("Shell", Ty::Strings),
];

/// OCI `ImageConfig`.
const OCI_IMAGE_CONFIG: &[Field] = &[
    o("User", Ty::Str),
    o("ExposedPorts", Ty::Set),
    o("Env", Ty::Strings),
    o("Entrypoint", Ty::Strings),
    o("Cmd", Ty::Strings),
    o("Volumes", Ty::Set),
    o("WorkingDir", Ty::Str),
    o("Labels", Ty::StrMap),
    o("StopSignal", Ty::Str),
    o("ArgsEscaped", Ty::Bool),
];

const DOCKER_IMAGE_CONFIG_EXT: &[Field] = &[
    o("Healthcheck", Ty::Ptr(HEALTHCHECK)),
    o("OnBuild", Ty::Strings),
    o("Shell", Ty::Strings),
];

/// `dockerspec.DockerOCIImageConfig`.
const DOCKER_IMAGE_CONFIG: &[Field] = &[
    named("ImageConfig", "", Ty::Embed(OCI_IMAGE_CONFIG), false),
    named(
        "DockerOCIImageConfigExt",
        "",
        Ty::Embed(DOCKER_IMAGE_CONFIG_EXT),
        false,
    ),
];

const PLATFORM: &[Field] = &[
    named("Architecture", "architecture", Ty::Str, false),
    named("OS", "os", Ty::Str, false),
    named("OSVersion", "os.version", Ty::Str, true),
    named("OSFeatures", "os.features", Ty::Strings, true),
    named("Variant", "variant", Ty::Str, true),
];

const DESCRIPTOR: &[Field] = &[
    named("MediaType", "mediaType", Ty::Str, false),
    named("Digest", "digest", Ty::Str, false),
    named("Size", "size", Ty::Int, false),
    named("URLs", "urls", Ty::Strings, true),
    named("Annotations", "annotations", Ty::StrMap, true),
    named("Data", "data", Ty::Raw, true),
    named("Platform", "platform", Ty::Ptr(PLATFORM), true),
    named("ArtifactType", "artifactType", Ty::Str, true),
];

/// `image.InspectResponse` of API 1.45 clients.
pub const IMAGE_INSPECT: &[Field] = &[
    named("ID", "Id", Ty::Str, false),
    f("RepoTags", Ty::Strings),
    f("RepoDigests", Ty::Strings),
    f("Parent", Ty::Str),
    f("Comment", Ty::Str),
    o("Created", Ty::Str),
    o("Container", Ty::Str),
    o("ContainerConfig", Ty::Ptr(CONTAINER_CONFIG)),
    f("DockerVersion", Ty::Str),
    f("Author", Ty::Str),
    f("Config", Ty::Ptr(DOCKER_IMAGE_CONFIG)),
    f("Architecture", Ty::Str),
    o("Variant", Ty::Str),
    f("Os", Ty::Str),
    o("OsVersion", Ty::Str),
    f("Size", Ty::Int),
    o("VirtualSize", Ty::Int),
    f(
        "GraphDriver",
        Ty::Struct(&[f("Data", Ty::StrMap), f("Name", Ty::Str)]),
    ),
    f(
        "RootFS",
        Ty::Struct(&[o("Type", Ty::Str), o("Layers", Ty::Strings)]),
    ),
    f("Metadata", Ty::Struct(&[o("LastTagTime", Ty::Time)])),
    o("Descriptor", Ty::Ptr(DESCRIPTOR)),
    o("Manifests", Ty::Raw),
];

const MOUNT_POINT: &[Field] = &[
    o("Type", Ty::Str),
    o("Name", Ty::Str),
    f("Source", Ty::Str),
    f("Destination", Ty::Str),
    o("Driver", Ty::Str),
    f("Mode", Ty::Str),
    f("RW", Ty::Bool),
    f("Propagation", Ty::Str),
];

const HEALTH: &[Field] = &[
    f("Status", Ty::Str),
    f("FailingStreak", Ty::Int),
    f("Log", Ty::Raw),
];

/// `container.State`.
const CONTAINER_STATE: &[Field] = &[
    f("Status", Ty::Str),
    f("Running", Ty::Bool),
    f("Paused", Ty::Bool),
    f("Restarting", Ty::Bool),
    f("OOMKilled", Ty::Bool),
    f("Dead", Ty::Bool),
    f("Pid", Ty::Int),
    f("ExitCode", Ty::Int),
    f("Error", Ty::Str),
    f("StartedAt", Ty::Str),
    f("FinishedAt", Ty::Str),
    o("Health", Ty::Ptr(HEALTH)),
];

/// `container.Resources`, embedded in `HostConfig`.
const RESOURCES: &[Field] = &[
    named("CPUShares", "CpuShares", Ty::Int, false),
    f("Memory", Ty::Int),
    named("NanoCPUs", "NanoCpus", Ty::Int, false),
    f("CgroupParent", Ty::Str),
    f("BlkioWeight", Ty::Int),
    f("BlkioWeightDevice", Ty::Raw),
    f("BlkioDeviceReadBps", Ty::Raw),
    f("BlkioDeviceWriteBps", Ty::Raw),
    f("BlkioDeviceReadIOps", Ty::Raw),
    f("BlkioDeviceWriteIOps", Ty::Raw),
    named("CPUPeriod", "CpuPeriod", Ty::Int, false),
    named("CPUQuota", "CpuQuota", Ty::Int, false),
    named("CPURealtimePeriod", "CpuRealtimePeriod", Ty::Int, false),
    named("CPURealtimeRuntime", "CpuRealtimeRuntime", Ty::Int, false),
    f("CpusetCpus", Ty::Str),
    f("CpusetMems", Ty::Str),
    f("Devices", Ty::Raw),
    f("DeviceCgroupRules", Ty::Strings),
    f("DeviceRequests", Ty::Raw),
    o("KernelMemory", Ty::Int),
    o("KernelMemoryTCP", Ty::Int),
    f("MemoryReservation", Ty::Int),
    f("MemorySwap", Ty::Int),
    f("MemorySwappiness", Ty::IntPtr),
    f("OomKillDisable", Ty::BoolPtr),
    f("PidsLimit", Ty::IntPtr),
    f("Ulimits", Ty::Raw),
    named("CPUCount", "CpuCount", Ty::Int, false),
    named("CPUPercent", "CpuPercent", Ty::Int, false),
    f("IOMaximumIOps", Ty::Int),
    f("IOMaximumBandwidth", Ty::Int),
];

/// `container.HostConfig`.
const HOST_CONFIG: &[Field] = &[
    f("Binds", Ty::Strings),
    f("ContainerIDFile", Ty::Str),
    f(
        "LogConfig",
        Ty::Struct(&[f("Type", Ty::Str), f("Config", Ty::StrMap)]),
    ),
    f("NetworkMode", Ty::Str),
    f("PortBindings", Ty::Raw),
    f(
        "RestartPolicy",
        Ty::Struct(&[f("Name", Ty::Str), f("MaximumRetryCount", Ty::Int)]),
    ),
    f("AutoRemove", Ty::Bool),
    f("VolumeDriver", Ty::Str),
    f("VolumesFrom", Ty::Strings),
    f("ConsoleSize", Ty::Raw),
    o("Annotations", Ty::StrMap),
    f("CapAdd", Ty::Strings),
    f("CapDrop", Ty::Strings),
    f("CgroupnsMode", Ty::Str),
    named("DNS", "Dns", Ty::Strings, false),
    named("DNSOptions", "DnsOptions", Ty::Strings, false),
    named("DNSSearch", "DnsSearch", Ty::Strings, false),
    f("ExtraHosts", Ty::Strings),
    f("GroupAdd", Ty::Strings),
    f("IpcMode", Ty::Str),
    f("Cgroup", Ty::Str),
    f("Links", Ty::Strings),
    f("OomScoreAdj", Ty::Int),
    f("PidMode", Ty::Str),
    f("Privileged", Ty::Bool),
    f("PublishAllPorts", Ty::Bool),
    f("ReadonlyRootfs", Ty::Bool),
    f("SecurityOpt", Ty::Strings),
    o("StorageOpt", Ty::StrMap),
    o("Tmpfs", Ty::StrMap),
    f("UTSMode", Ty::Str),
    f("UsernsMode", Ty::Str),
    f("ShmSize", Ty::Int),
    o("Sysctls", Ty::StrMap),
    o("Runtime", Ty::Str),
    f("Isolation", Ty::Str),
    named("Resources", "", Ty::Embed(RESOURCES), false),
    o("Mounts", Ty::Raw),
    f("MaskedPaths", Ty::Strings),
    f("ReadonlyPaths", Ty::Strings),
    o("Init", Ty::BoolPtr),
];

/// `container.NetworkSettings` (base and default settings embedded).
const NETWORK_SETTINGS: &[Field] = &[
    named(
        "NetworkSettingsBase",
        "",
        Ty::Embed(&[
            f("Bridge", Ty::Str),
            f("SandboxID", Ty::Str),
            f("SandboxKey", Ty::Str),
            f("Ports", Ty::Raw),
            f("HairpinMode", Ty::Bool),
            f("LinkLocalIPv6Address", Ty::Str),
            f("LinkLocalIPv6PrefixLen", Ty::Int),
            f("SecondaryIPAddresses", Ty::Raw),
            f("SecondaryIPv6Addresses", Ty::Raw),
        ]),
        false,
    ),
    named(
        "DefaultNetworkSettings",
        "",
        Ty::Embed(&[
            f("EndpointID", Ty::Str),
            f("Gateway", Ty::Str),
            f("GlobalIPv6Address", Ty::Str),
            f("GlobalIPv6PrefixLen", Ty::Int),
            f("IPAddress", Ty::Str),
            f("IPPrefixLen", Ty::Int),
            f("IPv6Gateway", Ty::Str),
            f("MacAddress", Ty::Str),
        ]),
        false,
    ),
    f("Networks", Ty::Raw),
];

/// `container.ContainerJSONBase`, embedded in the inspect response.
const CONTAINER_BASE: &[Field] = &[
    named("ID", "Id", Ty::Str, false),
    f("Created", Ty::Str),
    f("Path", Ty::Str),
    f("Args", Ty::Strings),
    f("State", Ty::Ptr(CONTAINER_STATE)),
    f("Image", Ty::Str),
    f("ResolvConfPath", Ty::Str),
    f("HostnamePath", Ty::Str),
    f("HostsPath", Ty::Str),
    f("LogPath", Ty::Str),
    f("Name", Ty::Str),
    f("RestartCount", Ty::Int),
    f("Driver", Ty::Str),
    f("Platform", Ty::Str),
    f("MountLabel", Ty::Str),
    f("ProcessLabel", Ty::Str),
    f("AppArmorProfile", Ty::Str),
    f("ExecIDs", Ty::Strings),
    f("HostConfig", Ty::Ptr(HOST_CONFIG)),
    f(
        "GraphDriver",
        Ty::Struct(&[f("Data", Ty::StrMap), f("Name", Ty::Str)]),
    ),
    o("SizeRw", Ty::IntPtr),
    o("SizeRootFs", Ty::IntPtr),
];

/// `container.InspectResponse`.
pub const CONTAINER_INSPECT: &[Field] = &[
    named("ContainerJSONBase", "", Ty::Embed(CONTAINER_BASE), false),
    f("Mounts", Ty::Structs(MOUNT_POINT)),
    f("Config", Ty::Ptr(CONTAINER_CONFIG)),
    f("NetworkSettings", Ty::Ptr(NETWORK_SETTINGS)),
    o("ImageManifestDescriptor", Ty::Ptr(DESCRIPTOR)),
];

/// `volume.Volume`.
pub const VOLUME: &[Field] = &[
    o("ClusterVolume", Ty::Raw),
    o("CreatedAt", Ty::Str),
    f("Driver", Ty::Str),
    f("Labels", Ty::StrMap),
    f("Mountpoint", Ty::Str),
    f("Name", Ty::Str),
    f("Options", Ty::StrMap),
    f("Scope", Ty::Str),
    o("Status", Ty::Raw),
    o("UsageData", Ty::Raw),
];

/// `events.Message`.
pub const EVENT_MESSAGE: &[Field] = &[
    named("Status", "status", Ty::Str, true),
    named("ID", "id", Ty::Str, true),
    named("From", "from", Ty::Str, true),
    f("Type", Ty::Str),
    f("Action", Ty::Str),
    f(
        "Actor",
        Ty::Struct(&[f("ID", Ty::Str), f("Attributes", Ty::StrMap)]),
    ),
    named("Scope", "scope", Ty::Str, true),
    named("Time", "time", Ty::Int, true),
    named("TimeNano", "timeNano", Ty::Int, true),
];

const COMPONENT_VERSION: &[Field] = &[
    f("Name", Ty::Str),
    f("Version", Ty::Str),
    o("Details", Ty::StrMap),
];

/// `types.Version`, the daemon's part of `version`.
const SERVER_VERSION: &[Field] = &[
    f("Platform", Ty::Struct(&[f("Name", Ty::Str)])),
    o("Components", Ty::Structs(COMPONENT_VERSION)),
    f("Version", Ty::Str),
    named("APIVersion", "ApiVersion", Ty::Str, false),
    o("MinAPIVersion", Ty::Str),
    f("GitCommit", Ty::Str),
    f("GoVersion", Ty::Str),
    f("Os", Ty::Str),
    f("Arch", Ty::Str),
    o("KernelVersion", Ty::Str),
    o("Experimental", Ty::Bool),
    o("BuildTime", Ty::Str),
];

/// The client's part of `version`.
const CLIENT_VERSION: &[Field] = &[
    o("Platform", Ty::Ptr(&[o("Name", Ty::Str)])),
    o("Version", Ty::Str),
    named("APIVersion", "ApiVersion", Ty::Str, true),
    o("DefaultAPIVersion", Ty::Str),
    o("GitCommit", Ty::Str),
    o("GoVersion", Ty::Str),
    o("Os", Ty::Str),
    o("Arch", Ty::Str),
    o("BuildTime", Ty::Str),
    f("Context", Ty::Str),
];

/// What `version --format` runs over.
pub const VERSION_INFO: &[Field] = &[
    f("Client", Ty::Struct(CLIENT_VERSION)),
    f("Server", Ty::Ptr(SERVER_VERSION)),
];

const COMMIT: &[Field] = &[f("ID", Ty::Str), o("Expected", Ty::Str)];

/// `swarm.Info`.
const SWARM_INFO: &[Field] = &[
    f("NodeID", Ty::Str),
    f("NodeAddr", Ty::Str),
    f("LocalNodeState", Ty::Str),
    f("ControlAvailable", Ty::Bool),
    f("Error", Ty::Str),
    f("RemoteManagers", Ty::Raw),
    o("Nodes", Ty::Int),
    o("Managers", Ty::Int),
    o("Cluster", Ty::Raw),
    o("Warnings", Ty::Strings),
];

/// `system.Info`.
const SYSTEM_INFO: &[Field] = &[
    f("ID", Ty::Str),
    f("Containers", Ty::Int),
    f("ContainersRunning", Ty::Int),
    f("ContainersPaused", Ty::Int),
    f("ContainersStopped", Ty::Int),
    f("Images", Ty::Int),
    f("Driver", Ty::Str),
    f("DriverStatus", Ty::Raw),
    o("SystemStatus", Ty::Raw),
    f(
        "Plugins",
        Ty::Struct(&[
            f("Volume", Ty::Strings),
            f("Network", Ty::Strings),
            f("Authorization", Ty::Strings),
            f("Log", Ty::Strings),
        ]),
    ),
    f("MemoryLimit", Ty::Bool),
    f("SwapLimit", Ty::Bool),
    o("KernelMemory", Ty::Bool),
    o("KernelMemoryTCP", Ty::Bool),
    named("CPUCfsPeriod", "CpuCfsPeriod", Ty::Bool, false),
    named("CPUCfsQuota", "CpuCfsQuota", Ty::Bool, false),
    f("CPUShares", Ty::Bool),
    f("CPUSet", Ty::Bool),
    f("PidsLimit", Ty::Bool),
    f("IPv4Forwarding", Ty::Bool),
    f("Debug", Ty::Bool),
    f("NFd", Ty::Int),
    f("OomKillDisable", Ty::Bool),
    f("NGoroutines", Ty::Int),
    f("SystemTime", Ty::Str),
    f("LoggingDriver", Ty::Str),
    f("CgroupDriver", Ty::Str),
    o("CgroupVersion", Ty::Str),
    f("NEventsListener", Ty::Int),
    f("KernelVersion", Ty::Str),
    f("OperatingSystem", Ty::Str),
    f("OSVersion", Ty::Str),
    f("OSType", Ty::Str),
    f("Architecture", Ty::Str),
    f("IndexServerAddress", Ty::Str),
    f("RegistryConfig", Ty::Raw),
    f("NCPU", Ty::Int),
    f("MemTotal", Ty::Int),
    f("GenericResources", Ty::Raw),
    f("DockerRootDir", Ty::Str),
    named("HTTPProxy", "HttpProxy", Ty::Str, false),
    named("HTTPSProxy", "HttpsProxy", Ty::Str, false),
    f("NoProxy", Ty::Str),
    f("Name", Ty::Str),
    f("Labels", Ty::Strings),
    f("ExperimentalBuild", Ty::Bool),
    f("ServerVersion", Ty::Str),
    f("Runtimes", Ty::Raw),
    f("DefaultRuntime", Ty::Str),
    f("Swarm", Ty::Struct(SWARM_INFO)),
    f("LiveRestoreEnabled", Ty::Bool),
    f("Isolation", Ty::Str),
    f("InitBinary", Ty::Str),
    f("ContainerdCommit", Ty::Struct(COMMIT)),
    f("RuncCommit", Ty::Struct(COMMIT)),
    f("InitCommit", Ty::Struct(COMMIT)),
    f("SecurityOptions", Ty::Strings),
    o("ProductLicense", Ty::Str),
    o("DefaultAddressPools", Ty::Raw),
    o("FirewallBackend", Ty::Raw),
    f("CDISpecDirs", Ty::Strings),
    o("DiscoveredDevices", Ty::Raw),
    o("Containerd", Ty::Raw),
    f("Warnings", Ty::Strings),
];

/// The client's part of `info` (docker's `clientInfo`).
const CLIENT_INFO: &[Field] = &[
    f("Debug", Ty::Bool),
    named("clientVersion", "", Ty::Embed(CLIENT_VERSION), false),
    f("Plugins", Ty::Raw),
    f("Warnings", Ty::Strings),
];

/// What `info --format` runs over (docker's `dockerInfo`).
pub const DOCKER_INFO: &[Field] = &[
    named("Info", "", Ty::Embed(SYSTEM_INFO), false),
    o("ServerErrors", Ty::Strings),
    o("ClientInfo", Ty::Ptr(CLIENT_INFO)),
    o("ClientErrors", Ty::Strings),
];

/// The client-only view docker tries first, to skip asking the daemon when a template
/// needs nothing from it.
pub const CLIENT_ONLY_INFO: &[Field] = &[
    o("ClientInfo", Ty::Ptr(CLIENT_INFO)),
    o("ClientErrors", Ty::Strings),
];

/// A decoded Go value.
#[derive(Debug, Clone)]
enum GoValue {
    Nil,
    Str(String),
    Number(serde_json::Number),
    Bool(bool),
    Duration(i64),
    Time(String),
    /// `None` is a nil slice.
    Slice(Option<Vec<GoValue>>),
    /// `None` is a nil map; entries sorted by key.
    Map(Option<Vec<(String, GoValue)>>),
    Struct(&'static [Field], Vec<GoValue>),
    Raw(Json),
}

fn decode(json: Option<&Json>, ty: Ty) -> GoValue {
    let json = json.filter(|j| !matches!(j, Json::Null));
    match ty {
        Ty::Str => GoValue::Str(json.map(|j| j.str().to_string()).unwrap_or_default()),
        Ty::Int => GoValue::Number(match json {
            Some(Json::Number(n)) => n.clone(),
            _ => 0.into(),
        }),
        Ty::Bool => GoValue::Bool(json.is_some_and(Json::bool)),
        Ty::Duration => GoValue::Duration(json.map_or(0, Json::int)),
        Ty::Time => GoValue::Time(
            json.map(|j| j.str().to_string())
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string()),
        ),
        Ty::Strings => GoValue::Slice(json.map(|j| {
            j.items()
                .iter()
                .map(|s| GoValue::Str(s.str().to_string()))
                .collect()
        })),
        Ty::StrMap | Ty::Set => GoValue::Map(json.map(|j| {
            let mut entries: Vec<(String, GoValue)> = j
                .fields()
                .iter()
                .map(|(k, v)| {
                    let value = match ty {
                        Ty::Set => GoValue::Struct(&[], Vec::new()),
                        _ => GoValue::Str(v.str().to_string()),
                    };
                    (k.clone(), value)
                })
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries
        })),
        Ty::IntPtr => match json {
            Some(Json::Number(n)) => GoValue::Number(n.clone()),
            _ => GoValue::Nil,
        },
        // A pointer is only empty when nil, so a set `false` stays (kept as raw JSON).
        Ty::BoolPtr => match json {
            Some(b @ Json::Bool(_)) => GoValue::Raw(b.clone()),
            _ => GoValue::Nil,
        },
        Ty::Raw => GoValue::Raw(json.cloned().unwrap_or(Json::Null)),
        Ty::Struct(fields) | Ty::Embed(fields) => decode_struct(json, fields),
        Ty::Ptr(fields) => match json {
            Some(j @ Json::Object(_)) => decode_struct(Some(j), fields),
            _ => GoValue::Nil,
        },
        Ty::Structs(fields) => GoValue::Slice(json.map(|j| {
            j.items()
                .iter()
                .map(|item| decode_struct(Some(item), fields))
                .collect()
        })),
    }
}

fn decode_struct(json: Option<&Json>, fields: &'static [Field]) -> GoValue {
    let values = fields
        .iter()
        .map(|field| match field.ty {
            // Embedded structs read their fields from the same JSON object.
            Ty::Embed(_) => decode(json, field.ty),
            _ => decode(json.and_then(|j| j.get(field.json)), field.ty),
        })
        .collect();
    GoValue::Struct(fields, values)
}

impl GoValue {
    fn is_empty(&self) -> bool {
        match self {
            GoValue::Nil => true,
            GoValue::Str(s) => s.is_empty(),
            GoValue::Number(n) => n.as_f64() == Some(0.0),
            GoValue::Bool(b) => !b,
            GoValue::Duration(d) => *d == 0,
            GoValue::Slice(s) => s.as_ref().is_none_or(Vec::is_empty),
            GoValue::Map(m) => m.as_ref().is_none_or(Vec::is_empty),
            GoValue::Raw(j) => match j {
                Json::Null => true,
                Json::Array(items) => items.is_empty(),
                Json::Object(fields) => fields.is_empty(),
                _ => false,
            },
            GoValue::Time(_) | GoValue::Struct(..) => false,
        }
    }

    /// `encoding/json` output, without HTML escaping.
    fn to_json(&self, out: &mut String) {
        match self {
            GoValue::Nil | GoValue::Slice(None) | GoValue::Map(None) => out.push_str("null"),
            GoValue::Str(s) | GoValue::Time(s) => write_go_string(out, s, false),
            GoValue::Number(n) => out.push_str(&n.to_string()),
            GoValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            GoValue::Duration(d) => out.push_str(&d.to_string()),
            GoValue::Slice(Some(items)) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.to_json(out);
                }
                out.push(']');
            }
            GoValue::Map(Some(entries)) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_go_string(out, k, false);
                    out.push(':');
                    v.to_json(out);
                }
                out.push('}');
            }
            GoValue::Struct(..) => {
                out.push('{');
                let mut first = true;
                self.struct_fields_json(out, &mut first);
                out.push('}');
            }
            GoValue::Raw(j) => out.push_str(&j.to_go_json(false)),
        }
    }

    fn struct_fields_json(&self, out: &mut String, first: &mut bool) {
        let GoValue::Struct(fields, values) = self else {
            return;
        };
        for (field, value) in fields.iter().zip(values) {
            if let Ty::Embed(_) = field.ty {
                value.struct_fields_json(out, first);
                continue;
            }
            if field.omitempty && value.is_empty() {
                continue;
            }
            if !*first {
                out.push(',');
            }
            *first = false;
            write_go_string(out, field.json, false);
            out.push(':');
            value.to_json(out);
        }
    }

    /// `fmt`'s `%v`.
    fn go_text(&self) -> String {
        match self {
            GoValue::Nil => "<nil>".to_string(),
            GoValue::Str(s) => s.clone(),
            GoValue::Number(n) => n.to_string(),
            GoValue::Bool(b) => b.to_string(),
            GoValue::Duration(d) => go_duration(*d),
            GoValue::Time(s) => go_time(s),
            GoValue::Slice(items) => {
                let parts: Vec<String> = items.iter().flatten().map(|v| v.go_text()).collect();
                format!("[{}]", parts.join(" "))
            }
            GoValue::Map(entries) => {
                let parts: Vec<String> = entries
                    .iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}:{}", v.go_text()))
                    .collect();
                format!("map[{}]", parts.join(" "))
            }
            GoValue::Struct(_, values) => {
                let parts: Vec<String> = values.iter().map(|v| v.go_text()).collect();
                format!("{{{}}}", parts.join(" "))
            }
            GoValue::Raw(j) => j.go_text(),
        }
    }

    /// The template value, registering the JSON and print forms of structs, slices and
    /// maps along the way.
    fn to_value(&self, forms: &mut Forms) -> Value {
        let value = match self {
            GoValue::Nil => return Value::Nil,
            GoValue::Str(s) => return Value::String(s.clone()),
            GoValue::Number(n) => {
                return match n.as_i64() {
                    Some(i) => Value::from(i),
                    None => Value::from(n.as_f64().unwrap_or(0.0)),
                }
            }
            GoValue::Bool(b) => return Value::Bool(*b),
            GoValue::Duration(_) | GoValue::Time(_) => {
                // Printed through the print forms; compared as strings.
                let v = Value::String(self.go_text());
                let mut json = String::new();
                self.to_json(&mut json);
                forms.json.push((v.clone(), json));
                return v;
            }
            GoValue::Slice(items) => Value::Array(
                items
                    .iter()
                    .flatten()
                    .map(|item| item.to_value(forms))
                    .collect(),
            ),
            GoValue::Map(entries) => Value::Map(
                entries
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.to_value(forms)))
                    .collect::<HashMap<_, _>>(),
            ),
            GoValue::Struct(..) => {
                let mut map = HashMap::new();
                self.promote_fields(&mut map, forms);
                let value = Value::Object(map);
                forms.print.push((value.clone(), self.go_text()));
                value
            }
            GoValue::Raw(j) => return super::template::map_value(j, forms),
        };
        // Empty slices and maps are left out: a nil and an empty one are the same value
        // here but encode differently, so they take the generic encoding.
        let empty = matches!(&value, Value::Array(a) if a.is_empty())
            || matches!(&value, Value::Map(m) if m.is_empty());
        if !empty {
            let mut json = String::new();
            self.to_json(&mut json);
            forms.json.push((value.clone(), json));
        }
        value
    }

    fn promote_fields(&self, map: &mut HashMap<String, Value>, forms: &mut Forms) {
        let GoValue::Struct(fields, values) = self else {
            return;
        };
        for (field, value) in fields.iter().zip(values) {
            if let Ty::Embed(_) = field.ty {
                map.insert(field.go.to_string(), value.to_value(forms));
                value.promote_fields(map, forms);
            } else {
                map.insert(field.go.to_string(), value.to_value(forms));
            }
        }
    }
}

/// JSON and print renderings of template values, looked up by value.
#[derive(Debug, Default)]
pub struct Forms {
    pub json: Vec<(Value, String)>,
    pub print: Vec<(Value, String)>,
}

/// The typed template value of a raw JSON document of struct type `fields`.
pub fn typed_value(doc: &Json, fields: &'static [Field]) -> (Value, Forms) {
    let mut forms = Forms::default();
    let go = decode_struct(Some(doc), fields);
    let value = go.to_value(&mut forms);
    (value, forms)
}

/// The document as docker would re-encode it after decoding it into the struct: every
/// field present (zero when the daemon left it out), `omitempty` fields dropped.
pub fn as_go_struct(doc: &Json, fields: &'static [Field]) -> Json {
    let mut text = String::new();
    decode_struct(Some(doc), fields).to_json(&mut text);
    Json::parse(text.as_bytes()).unwrap_or_else(|_| doc.clone())
}

/// `system.Info`, for code that reads the daemon's `/info` as docker does.
pub const INFO: &[Field] = SYSTEM_INFO;

/// Go's `time.Duration.String` for nanoseconds.
fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let ns = ns.unsigned_abs();
    if ns < 1_000 {
        return format!("{sign}{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{sign}{}µs", trim_fraction(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{sign}{}ms", trim_fraction(ns, 1_000_000));
    }
    let total_seconds = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    let (h, m, s) = (
        total_seconds / 3600,
        (total_seconds / 60) % 60,
        total_seconds % 60,
    );
    let seconds = if frac == 0 {
        s.to_string()
    } else {
        let digits = format!("{frac:09}");
        format!("{s}.{}", digits.trim_end_matches('0'))
    };
    if h > 0 {
        format!("{sign}{h}h{m}m{seconds}s")
    } else if m > 0 {
        format!("{sign}{m}m{seconds}s")
    } else {
        format!("{sign}{seconds}s")
    }
}

fn trim_fraction(value: u64, unit: u64) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Go's `time.Time.String` of an RFC 3339 timestamp, in the timestamp's own offset.
fn go_time(s: &str) -> String {
    match time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        Ok(t) => {
            let offset = i64::from(t.offset().whole_seconds());
            let utc = t.to_offset(time::UtcOffset::UTC);
            let mut local = LocalTime::utc(utc.unix_timestamp() + offset, t.nanosecond());
            local.offset = offset;
            if offset != 0 {
                local.zone = String::new();
            }
            local.go_string()
        }
        Err(_) => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::template::{Data, Template};

    const RAW: &str = r#"{"Id":"sha256:c1","RepoTags":["testimg:v1"],"RepoDigests":[],"Parent":"","Comment":"c","Created":"2026-11-22T20:04:03.417724438Z","Container":"","ContainerConfig":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null},"DockerVersion":"20.10.24","Author":"","Config":{"Hostname":"","Env":null,"Cmd":["sh"],"Labels":null,"Healthcheck":{"Test":["CMD","true"],"Interval":30000000000}},"Architecture":"amd64","Os":"linux","Size":1986676,"VirtualSize":1986676,"GraphDriver":{"Data":{"b":"2","a":"1"},"Name":"overlay2"},"RootFS":{"Type":"layers","Layers":["sha256:69"]},"Metadata":{"LastTagTime":"2026-11-22T20:04:03.41914161Z"}}"#;

    fn render(template: &str) -> String {
        let doc = Json::parse(RAW.as_bytes()).unwrap();
        Template::parse(template)
            .unwrap()
            .render(&Data::typed(&doc, IMAGE_INSPECT))
            .unwrap()
    }

    #[test]
    fn json_follows_go_structs() {
        assert_eq!(
            render("{{json .Config}}"),
            r#"{"Cmd":["sh"],"Healthcheck":{"Test":["CMD","true"],"Interval":30000000000}}"#
        );
        assert_eq!(render("{{json .GraphDriver.Data}}"), r#"{"a":"1","b":"2"}"#);
        assert_eq!(
            render("{{json .RootFS}}"),
            r#"{"Type":"layers","Layers":["sha256:69"]}"#
        );
        assert_eq!(render("{{json .RepoDigests}}"), "[]");
    }

    #[test]
    fn prints_like_go() {
        assert_eq!(
            render("{{.ContainerConfig}}"),
            "{   false false false map[] false false false [] [] <nil> false  map[]  [] false  [] map[]  <nil> []}"
        );
        assert_eq!(
            render("{{.Config.Labels}}|{{.Config.Env}}|{{.Config.Cmd}}|{{.Size}}|{{.ID}}"),
            "map[]|[]|[sh]|1986676|sha256:c1"
        );
        assert_eq!(render("{{.Config.Healthcheck.Interval}}"), "30s");
        assert_eq!(
            render("{{.Metadata.LastTagTime}}"),
            "2026-11-22 20:04:03.41914161 +0000 UTC"
        );
    }

    #[test]
    fn unknown_fields_fail_so_the_raw_view_is_used() {
        let doc = Json::parse(RAW.as_bytes()).unwrap();
        let t = Template::parse("{{.Id}}").unwrap();
        assert!(t.render(&Data::typed(&doc, IMAGE_INSPECT)).is_err());
        assert_eq!(t.render(&Data::raw(&doc)).unwrap(), "sha256:c1");
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(2_500_000), "2.5ms");
        assert_eq!(go_duration(750), "750ns");
    }
}
