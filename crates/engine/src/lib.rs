//! The daemon's services: images (store, pull, push, save/load, import), events and system
//! information. The API crate calls these; nothing here knows about HTTP.

mod error;
pub mod events;
pub mod images;
pub mod progress;
pub mod system;

pub use berth_distribution::auth::AuthConfig;
pub use berth_distribution::RegistryConfig;
pub use error::{Error, ErrorKind, Result};
pub use events::{Event, Events};
pub use images::{Filters, Images};
pub use progress::{Progress, ProgressMessage};

use std::path::PathBuf;
use std::sync::Arc;

/// What the daemon's configuration decides for the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub registry: RegistryConfig,
    pub max_concurrent_downloads: usize,
    pub max_concurrent_uploads: usize,
    pub debug: bool,
    pub live_restore: bool,
    pub insecure_registries: Vec<String>,
    pub registry_mirrors: Vec<String>,
}

/// The engine: every service, sharing one event bus.
pub struct Engine {
    pub config: EngineConfig,
    pub events: Events,
    pub images: Arc<Images>,
    pub started: std::time::SystemTime,
}

impl Engine {
    /// Opens the state under the data root, cleaning what an interrupted run left behind.
    pub fn open(config: EngineConfig) -> Result<Engine> {
        let events = Events::default();
        let images = Arc::new(Images::open(&config, events.clone())?);
        Ok(Engine { config, events, images, started: std::time::SystemTime::now() })
    }
}

/// Returns memory freed after a large operation (a pull's buffers) to the kernel, so the
/// idle daemon stays small: glibc keeps freed heap in its arenas otherwise.
pub fn release_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}
