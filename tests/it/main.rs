//! The integration tests: one test binary (linking the AWS SDK and kube-rs once), one
//! module per area. They drive the real `comfyplat` binary against local emulators on
//! 127.0.0.1 (moto with the project's extensions, the Kubernetes API test server, the
//! recording and fault-injecting proxy) and read back what it did with the AWS SDK, the
//! `aws` CLI and `kubectl`; see `support` for the harness.

mod support;

mod checks;
mod config_errors;
mod ecr;
mod edge;
mod eks;
mod faults;
mod hangs;
mod kubernetes;
mod lifecycle;
mod model_agent;
mod model_cache;
mod models;
mod plan_format;
mod replacement;
mod resilience;
mod state_loss;
