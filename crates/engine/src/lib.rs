//! The daemon's services: images (store, pull, push, save/load, import), events and system
//! information. The API crate calls these; nothing here knows about HTTP.

pub mod containers;
mod error;
pub mod events;
pub mod images;
pub mod progress;
pub mod system;
pub mod volumes;

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
    pub volumes: Arc<volumes::Volumes>,
    pub containers: Arc<containers::Containers>,
    pub started: std::time::SystemTime,
}

impl Engine {
    /// Opens the state under the data root, cleaning what an interrupted run left behind.
    pub fn open(config: EngineConfig) -> Result<Engine> {
        let events = Events::default();
        let images = Arc::new(Images::open(&config, events.clone())?);
        let volumes = Arc::new(volumes::Volumes::open(&config.data_root, events.clone())?);
        let containers = Arc::new(containers::Containers::open(&config.data_root, &config.exec_root, images.clone(), volumes.clone(), events.clone())?);
        let users = containers.clone();
        images.set_in_use(Box::new(move |image_id| users.image_users(image_id)));
        Ok(Engine { config, events, images, volumes, containers, started: std::time::SystemTime::now() })
    }

    /// Reconnects to the containers that kept running while berthd was down, and learns
    /// the exits it missed. Call once, inside the runtime, before serving.
    pub async fn restore(&self) {
        self.containers.restore().await;
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
