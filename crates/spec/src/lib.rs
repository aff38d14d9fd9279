//! berth-spec: a Docker container configuration (`ContainerConfig` + `HostConfig` from
//! the Engine API) turned into the OCI runtime spec `berth-runtime` runs, with Docker's
//! default isolation and Docker's handling of every `docker run` option.
//!
//! The engine's flow for a new container:
//! 1. [`merge_image_config`] fills the request from the image config;
//! 2. [`validate`] rejects bad requests with Docker's messages;
//! 3. [`mount_requests`] lists the mounts; the engine resolves volumes to host paths;
//! 4. [`resolve_user`] reads the user from the image's /etc/passwd and /etc/group;
//! 5. [`hosts_file`] and [`resolv_conf`] give the /etc files to write;
//! 6. [`build`] assembles the spec.
//!
//! Pure library: no async, no process state; it reads only files inside the given
//! rootfs, host device nodes named by the request, and a few host facts ([`HostInfo`]).

mod build;
mod caps;
mod error;
mod etc;
mod host;
mod merge;
mod mounts;
mod seccomp;
mod user;
mod validate;

pub use build::{build, build_with, Context, EtcFiles, NamespacePaths};
pub use caps::{known as known_capabilities, DEFAULT as DEFAULT_CAPABILITIES};
pub use error::{Error, ErrorKind, Result};
pub use etc::{hosts_file, resolv_conf};
pub use host::HostInfo;
pub use merge::merge_image_config;
pub use mounts::{
    mount_requests, BindOptions, MountRequest, MountSource, ResolvedMount, ResolvedSource,
};
pub use seccomp::{to_oci as seccomp_profile, DEFAULT_PROFILE as DEFAULT_SECCOMP_PROFILE};
pub use user::{resolve_user, User};
pub use validate::validate;
