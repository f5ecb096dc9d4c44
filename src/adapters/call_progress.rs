//! Progress of AWS calls that take long: every retry of a call is reported with the call's
//! name, its attempt and how long it has been going, so a throttled or silent endpoint is
//! never a silent wait. An SDK interceptor on every client; it reports through a callback
//! (adapters never print).

use std::sync::Arc;
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// Where the lines go: the command prints them.
pub type Notify = Arc<dyn Fn(String) + Send + Sync>;

#[derive(Clone)]
pub struct CallProgress {
    pub notify: Notify,
    pub attempts: u32,
}

impl std::fmt::Debug for CallProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallProgress").finish_non_exhaustive()
    }
}

/// When the call started (kept in the call's config bag).
#[derive(Debug, Clone, Copy)]
struct Started(Instant);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

impl Intercept for CallProgress {
    fn name(&self) -> &'static str {
        "comfyplat::CallProgress"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Started(Instant::now()));
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let attempt = cfg
            .load::<RequestAttempts>()
            .map(|a| a.attempts())
            .unwrap_or(1);
        if attempt < 2 {
            return Ok(());
        }
        let elapsed = cfg
            .load::<Started>()
            .map(|started| started.0.elapsed().as_secs())
            .unwrap_or_default();
        let call = cfg
            .load::<Metadata>()
            .map(|m| format!("{} {}", m.service(), m.name()))
            .unwrap_or_else(|| "an AWS call".to_string());
        (self.notify)(format!(
            "{call}: no good answer yet after {elapsed} s; attempt {attempt} of {}",
            self.attempts
        ));
        Ok(())
    }
}
