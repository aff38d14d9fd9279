//! The Docker Engine API over the engine's services: versioned routes, docker's JSON error
//! bodies and status codes, streamed progress. Handlers parse requests, call the engine and
//! shape its answers into docker's models; they hold no state of their own.

mod attach_ws;
mod container_files;
mod container_stats;
mod containers;
mod error;
mod images;
mod params;
mod stream;
mod system;
mod version;
mod volumes;

use std::sync::Arc;

use axum::Router;
use berth_engine::Engine;

pub use error::ApiError;
pub use version::{API_VERSION, MIN_API_VERSION};

/// The version of berth reported by `/version` and the `Server` header.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// All routes, without the version prefix (see [`service`]).
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .merge(system::routes())
        .merge(images::routes())
        .merge(containers::routes())
        .merge(container_stats::routes())
        .merge(container_files::routes())
        .merge(volumes::routes())
        .with_state(engine)
}

/// The router behind the version check that strips `/v1.xx` prefixes.
pub fn router_with_versions(engine: Arc<Engine>) -> Router {
    Router::new().fallback_service(router(engine)).layer(axum::middleware::from_fn(version::negotiate))
}

/// [`router_with_versions`], ready for `axum::serve`.
pub fn service(engine: Arc<Engine>) -> axum::routing::IntoMakeService<Router> {
    router_with_versions(engine).into_make_service()
}
