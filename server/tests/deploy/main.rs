//! The deployment artifacts under `deploy/`, proven to work rather than only to look plausible:
//!
//! - `images`: the server and worker images built offline (debootstrap + `docker import`, then the
//!   binaries added with `deploy/Dockerfile`) and started under the local `dockerd`.
//! - `compose`: the full stack of `deploy/docker-compose.yml` brought up with offline-built images.
//! - `k8s`: the Kubernetes manifests rendered and validated against the Kubernetes schemas.
//! - `prometheus`: scrape config and rules through `promtool`, rule unit tests, and every metric a
//!   rule, dashboard or autoscaler names is one the server or worker exports.

#[path = "../support/mod.rs"]
mod support;

mod compose;
mod images;
mod k8s;
mod prometheus;
