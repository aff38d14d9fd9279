//! Integration tests of the registry client against the reference registry (Debian's
//! docker-registry), skopeo, a token issuer, a cutting proxy and lying test servers.

mod auth;
mod lying;
mod mirrors;
mod pull;
mod push;
mod resume;
mod support;
