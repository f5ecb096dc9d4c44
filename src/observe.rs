//! Reads the live state of every identity a plan needs, concurrently.
//!
//! Which identities: everything desired, everything in state (including the old identity of
//! a resource being renamed), every adopted thing, and the Kubernetes objects that carry
//! the platform's label. They are all read at once (the label listing too), and each
//! adapter reads its resource in as few rounds as it can, so a no-op plan costs a few
//! round trips however many resources there are.

use std::collections::BTreeSet;

use futures::stream::{self, StreamExt, TryStreamExt};

use crate::adapters::{ApiError, Apis, iam};
use crate::model::{Adopted, Desired, Identity, Kind, Observed};
use crate::state::State;

/// How many resources are read at once: enough for every resource of a large platform to
/// be in flight together (each read is a handful of calls).
pub const OBSERVE_CONCURRENCY: usize = 128;

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

/// Reads `identities`, the adopted things and the labelled Kubernetes objects. With
/// `discover` (destroy), also everything of every kind that carries the platform's tag or
/// label, so that what state does not know is destroyed too.
pub async fn observe(
    apis: &Apis,
    desired: &Desired,
    identities: Vec<Identity>,
    discover: bool,
) -> Result<Observed, ApiError> {
    let labelled = async {
        match &apis.kube {
            Some(kube) => kube.list_owned(&desired.platform).await,
            None => Ok(Vec::new()),
        }
    };
    let read = |identities: Vec<Identity>| {
        stream::iter(identities)
            .map(|identity| async move {
                let observation = apis.observe(&identity).await?;
                Ok::<_, ApiError>((identity, observation))
            })
            .buffer_unordered(OBSERVE_CONCURRENCY)
            .try_collect::<Vec<_>>()
    };
    let adopted = stream::iter(desired.adopted.iter().cloned())
        .map(|adopted| async move {
            let found = match &adopted {
                Adopted::IamRole {
                    name, must_allow, ..
                } => iam::adopted_role(&apis.aws, name, must_allow).await?,
            };
            Ok::<_, ApiError>((adopted, found))
        })
        .buffered(OBSERVE_CONCURRENCY)
        .try_collect();
    let discovered = async {
        if !discover {
            return Ok(Vec::new());
        }
        let found = futures::future::try_join_all(
            Kind::ALL
                .iter()
                .filter(|kind| **kind != Kind::K8sObject)
                .map(|kind| apis.discover(*kind)),
        )
        .await?;
        Ok::<_, ApiError>(found.into_iter().flatten().flatten().collect::<Vec<_>>())
    };
    let (labelled, resources, adopted, discovered) =
        tokio::try_join!(labelled, read(identities.clone()), adopted, discovered)?;
    let labelled: Vec<Identity> = labelled.into_iter().map(Identity::from).collect();
    // Found by label or tag, neither desired nor in state: read them too (they will be
    // pruned or destroyed).
    let extra: Vec<Identity> = labelled
        .iter()
        .chain(&discovered)
        .filter(|identity| !identities.contains(identity))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut resources = resources;
    if !extra.is_empty() {
        resources.extend(read(extra).await?);
    }
    Ok(Observed {
        resources: resources.into_iter().collect(),
        adopted,
        labelled,
        discovered,
    })
}
