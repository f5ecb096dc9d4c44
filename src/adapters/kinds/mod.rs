//! One adapter per resource kind, declared by the table in `src/kinds.rs`: each module
//! re-exports its kind's identity type as `Id` and implements [`Adapter`] for it, and the
//! dispatch on [`Apis`] below is generated from the table.

use super::{ApiError, Apis};
use crate::model::report::Finding;
use crate::model::{FieldChange, Identity, Kind, Observation, Pending, Resource, ResourceKind};

/// Status lines of a long operation, for the progress display.
pub type Progress<'a> = &'a (dyn Fn(String) + Sync);

/// Those of `candidates` whose live tags say they are the platform's, read concurrently
/// (for kinds whose listings do not filter by tag).
pub(crate) async fn owned<T, F, Fut>(
    apis: &Apis,
    candidates: Vec<T>,
    observe: F,
) -> Result<Vec<T>, ApiError>
where
    T: Clone,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<Observation, ApiError>>,
{
    let owner = crate::model::Owner::Tag(Some(apis.platform.clone()));
    let observations =
        futures::future::try_join_all(candidates.iter().cloned().map(observe)).await?;
    Ok(candidates
        .into_iter()
        .zip(observations)
        .filter(|(_, observation)| {
            matches!(observation, Observation::Present(live) if live.owner == owner)
        })
        .map(|(candidate, _)| candidate)
        .collect())
}

/// What a kind does through its API. Implemented for each kind's identity type in
/// `adapters/kinds/<kind>.rs`.
pub(crate) trait Adapter: ResourceKind {
    /// The live view of the resource.
    async fn observe(&self, apis: &Apis) -> Result<Observation, ApiError>;

    /// Creates the resource with every managed field set, or finishes an earlier create.
    /// Returns what is still under way, to [`Adapter::wait`] for.
    async fn create(&self, apis: &Apis, resource: &Resource) -> Result<Option<Pending>, ApiError>;

    /// Brings the changed fields to their desired values. `repair`: the change reverts
    /// drift the plan showed.
    async fn update(
        &self,
        apis: &Apis,
        resource: &Resource,
        changes: &[FieldChange],
        repair: bool,
    ) -> Result<Option<Pending>, ApiError>;

    /// Deletes the resource; succeeds if it is already gone. Data (objects, images) is
    /// deleted first only with `delete_data`; otherwise the service refuses.
    async fn delete(&self, apis: &Apis, delete_data: bool) -> Result<Option<Pending>, ApiError>;

    /// Waits for an operation under way, within `apis.wait_timeout`; returns warnings.
    async fn wait(
        &self,
        _apis: &Apis,
        _pending: &Pending,
        _progress: Progress<'_>,
    ) -> Result<Vec<String>, ApiError> {
        Ok(Vec::new())
    }

    /// Every resource of this kind that carries the platform's tag or label, state or not;
    /// `None` when the kind cannot be found that way (a setting of something adopted).
    async fn discover(_apis: &Apis) -> Result<Option<Vec<Self>>, ApiError> {
        Ok(None)
    }

    /// Billable things the cluster's controllers made for these resources (which were
    /// deleted) and left behind.
    async fn left_behind(_apis: &Apis, _deleted: &[&Self]) -> Result<Vec<Finding>, ApiError> {
        Ok(Vec::new())
    }
}

macro_rules! adapter_kinds {
    ($($variant:ident: $module:ident,)*) => {
        $(pub mod $module;)*

        impl Apis {
            pub async fn observe(&self, identity: &Identity) -> Result<Observation, ApiError> {
                match identity {
                    $(Identity::$variant(id) => id.observe(self).await,)*
                }
            }

            pub async fn create(&self, resource: &Resource) -> Result<Option<Pending>, ApiError> {
                match &resource.identity {
                    $(Identity::$variant(id) => id.create(self, resource).await,)*
                }
            }

            pub async fn update(
                &self,
                resource: &Resource,
                changes: &[FieldChange],
                repair: bool,
            ) -> Result<Option<Pending>, ApiError> {
                match &resource.identity {
                    $(Identity::$variant(id) => id.update(self, resource, changes, repair).await,)*
                }
            }

            pub async fn delete(
                &self,
                identity: &Identity,
                delete_data: bool,
            ) -> Result<Option<Pending>, ApiError> {
                match identity {
                    $(Identity::$variant(id) => id.delete(self, delete_data).await,)*
                }
            }

            pub async fn wait(
                &self,
                identity: &Identity,
                pending: &Pending,
                progress: Progress<'_>,
            ) -> Result<Vec<String>, ApiError> {
                match identity {
                    $(Identity::$variant(id) => id.wait(self, pending, progress).await,)*
                }
            }

            /// Everything of `kind` that carries the platform's tag or label; `None` when
            /// the kind cannot be found that way.
            pub async fn discover(&self, kind: Kind) -> Result<Option<Vec<Identity>>, ApiError> {
                Ok(match kind {
                    $(Kind::$variant => <$module::Id as Adapter>::discover(self)
                        .await?
                        .map(|found| found.into_iter().map(Identity::$variant).collect()),)*
                })
            }

            /// What the controllers left behind of the deleted resources of `kind`.
            pub async fn left_behind(
                &self,
                kind: Kind,
                deleted: &[&Identity],
            ) -> Result<Vec<Finding>, ApiError> {
                match kind {
                    $(Kind::$variant => {
                        let ids: Vec<&$module::Id> = deleted
                            .iter()
                            .filter_map(|identity| match identity {
                                Identity::$variant(id) => Some(id),
                                #[allow(unreachable_patterns)]
                                _ => None,
                            })
                            .collect();
                        <$module::Id as Adapter>::left_behind(self, &ids).await
                    })*
                }
            }
        }
    };
}

crate::kinds::for_each_kind!(adapter_kinds);
