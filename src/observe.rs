//! Reads the live state of every identity a plan needs, concurrently and bounded.
//!
//! Which identities: everything desired, everything in state (including the old identity of
//! a resource being renamed), and every adopted thing. Each identity is observed by its
//! adapter; the adapters run their own calls for one resource concurrently too, so a no-op
//! plan takes about as long for 50 buckets as for 3.

use std::collections::BTreeSet;

use futures::stream::{self, StreamExt, TryStreamExt};

use crate::adapters::{ApiError, Apis};
use crate::model::{Desired, Identity, Observed};
use crate::state::State;

/// How many resources are observed at once.
pub const OBSERVE_CONCURRENCY: usize = 16;

/// Every identity a plan over `desired` and `state` looks at.
pub fn identities(desired: &Desired, state: &State) -> Vec<Identity> {
    let all: BTreeSet<Identity> = desired
        .resources
        .iter()
        .map(|r| r.identity.clone())
        .chain(state.resources.values().map(|e| e.identity.clone()))
        .collect();
    all.into_iter().collect()
}

pub async fn observe(
    apis: &Apis,
    desired: &Desired,
    mut identities: Vec<Identity>,
) -> Result<Observed, ApiError> {
    let labelled = match &apis.kube {
        Some(kube) => kube.list_owned(&desired.platform).await?,
        None => Vec::new(),
    };
    for identity in &labelled {
        if !identities.contains(identity) {
            identities.push(identity.clone());
        }
    }
    let resources = stream::iter(identities)
        .map(|identity| async move {
            let observation = apis.observe(&identity).await?;
            Ok::<_, ApiError>((identity, observation))
        })
        .buffer_unordered(OBSERVE_CONCURRENCY)
        .try_collect();
    let adopted = stream::iter(desired.adopted.iter().cloned())
        .map(|adopted| async move {
            let exists = apis.adopted_exists(&adopted).await?;
            Ok::<_, ApiError>((adopted, exists))
        })
        .buffered(OBSERVE_CONCURRENCY)
        .try_collect();
    let (resources, adopted) = tokio::try_join!(resources, adopted)?;
    Ok(Observed {
        resources,
        adopted,
        labelled,
    })
}
