//! The executor: carries out a [`Plan`] and makes no decision of its own.
//!
//! It walks the changes in dependency order (a change starts once every change in its
//! `after` list succeeded), runs independent ones concurrently up to `parallelism`, retries
//! transient failures with jittered exponential backoff (on top of the SDK's own retries),
//! and persists state after every completed step: *before* a create (so an interrupted
//! create is recognised as ours) and after every success. When a change fails, changes that
//! wait for it are skipped and reported as such, and independent branches go on. When asked
//! to stop (Ctrl-C), it starts nothing new and lets running steps finish.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::adapters::{ApiError, Apis};
use crate::model::{Address, Identity, Observation, Pending, Resource, deferred};
use crate::planner::{Action, Change, Plan, Reason};
use crate::state::{State, StateError};

/// Attempts of one step on transient errors (each attempt already includes the SDK's retries).
const STEP_ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// What happens while a plan is applied.
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        address: Address,
        action: Action,
    },
    Retrying {
        address: Address,
        attempt: u32,
        delay: Duration,
        error: String,
    },
    Finished {
        address: Address,
        action: Action,
        elapsed: Duration,
    },
    Failed {
        address: Address,
        action: Action,
        error: String,
    },
    Skipped {
        address: Address,
        action: Action,
        because: Address,
    },
    Kept {
        address: Address,
    },
    /// A long operation's current status (e.g. an add-on `CREATING`).
    Progress {
        address: Address,
        status: String,
    },
    /// Done, but with something the user should know.
    Warning {
        address: Address,
        message: String,
    },
}

/// Receives events; the ui implements it.
pub trait Reporter: Sync {
    fn event(&self, event: Event);
}

/// How each change ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeResult {
    Done,
    Failed(String),
    Skipped {
        because: Address,
    },
    Kept,
    /// Not started: the apply was interrupted or stopped first.
    NotStarted,
}

/// Where a change stands during the walk.
enum Slot {
    Waiting,
    Running,
    Ended(ChangeResult),
}

/// The end of an apply.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub results: Vec<(Address, Action, ChangeResult)>,
    pub interrupted: bool,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        !self.interrupted
            && self
                .results
                .iter()
                .all(|(_, _, result)| matches!(result, ChangeResult::Done | ChangeResult::Kept))
    }

    pub fn count(&self, wanted: fn(&ChangeResult) -> bool) -> usize {
        self.results.iter().filter(|(_, _, r)| wanted(r)).count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error(transparent)]
    State(#[from] StateError),
}

enum Failure {
    Aws(ApiError),
    State(StateError),
}

pub struct Executor<'a> {
    pub apis: &'a Apis,
    pub state: Mutex<&'a mut State>,
    pub state_path: &'a Path,
    pub reporter: &'a dyn Reporter,
    pub parallelism: usize,
    pub stop: &'a AtomicBool,
    /// `--no-wait`: do not wait for CloudFront to deploy a change (the next plan shows it in
    /// progress until it has).
    pub no_wait: bool,
}

impl Executor<'_> {
    pub async fn run(&self, plan: &Plan) -> Result<Outcome, ExecuteError> {
        let index: BTreeMap<&Address, usize> = plan
            .changes
            .iter()
            .enumerate()
            .map(|(i, c)| (&c.address, i))
            .collect();
        let mut results: Vec<Slot> = plan.changes.iter().map(|_| Slot::Waiting).collect();
        let mut running = FuturesUnordered::new();
        let mut fatal: Option<StateError> = None;
        let mut interrupted = false;
        for (i, change) in plan.changes.iter().enumerate() {
            if change.action == Action::Keep {
                self.reporter.event(Event::Kept {
                    address: change.address.clone(),
                });
                results[i] = Slot::Ended(ChangeResult::Kept);
            }
        }
        loop {
            if self.stop.load(Ordering::SeqCst) {
                interrupted = true;
            }
            // Skip what waits for a failure; start what is ready.
            let mut progressed = true;
            while progressed {
                progressed = false;
                for (i, change) in plan.changes.iter().enumerate() {
                    if !matches!(results[i], Slot::Waiting) {
                        continue;
                    }
                    let waits: Vec<usize> = change
                        .after
                        .iter()
                        .filter_map(|a| index.get(a).copied())
                        .collect();
                    if let Some(blocking) = waits.iter().find(|w| {
                        matches!(
                            results[**w],
                            Slot::Ended(ChangeResult::Failed(_) | ChangeResult::Skipped { .. })
                        )
                    }) {
                        let because = match &results[*blocking] {
                            Slot::Ended(ChangeResult::Skipped { because }) => because.clone(),
                            _ => plan.changes[*blocking].address.clone(),
                        };
                        self.reporter.event(Event::Skipped {
                            address: change.address.clone(),
                            action: change.action,
                            because: because.clone(),
                        });
                        results[i] = Slot::Ended(ChangeResult::Skipped { because });
                        progressed = true;
                        continue;
                    }
                    let ready = waits.iter().all(|w| {
                        matches!(
                            results[*w],
                            Slot::Ended(ChangeResult::Done | ChangeResult::Kept)
                        )
                    });
                    if ready
                        && !interrupted
                        && fatal.is_none()
                        && running.len() < self.parallelism.max(1)
                    {
                        results[i] = Slot::Running;
                        running.push(async move {
                            (i, self.run_change(change, plan.delete_data).await)
                        });
                    }
                }
            }
            let Some((i, result)) = running.next().await else {
                break;
            };
            let change = &plan.changes[i];
            results[i] = Slot::Ended(match result {
                Ok(()) => ChangeResult::Done,
                Err(Failure::Aws(error)) => {
                    let text = self.redact(&crate::ui::error_chain(&error));
                    self.reporter.event(Event::Failed {
                        address: change.address.clone(),
                        action: change.action,
                        error: text.clone(),
                    });
                    ChangeResult::Failed(text)
                }
                Err(Failure::State(error)) => {
                    let text = crate::ui::error_chain(&error);
                    fatal = Some(error);
                    ChangeResult::Failed(text)
                }
            });
        }
        if let Some(error) = fatal {
            return Err(error.into());
        }
        let results = plan
            .changes
            .iter()
            .zip(results)
            .map(|(change, slot)| {
                let result = match slot {
                    Slot::Ended(result) => result,
                    Slot::Waiting | Slot::Running => ChangeResult::NotStarted,
                };
                (change.address.clone(), change.action, result)
            })
            .collect();
        Ok(Outcome {
            results,
            interrupted,
        })
    }

    async fn run_change(&self, change: &Change, delete_data: bool) -> Result<(), Failure> {
        let started = Instant::now();
        self.reporter.event(Event::Started {
            address: change.address.clone(),
            action: change.action,
        });
        match (change.action, &change.resource) {
            (Action::Create | Action::Update, Some(resource)) => {
                let mut left_running = None;
                match &change.pending {
                    // An earlier apply started this and was interrupted: only wait.
                    Some(pending) => self.await_pending(change, pending).await?,
                    None => {
                        let (resource, request) = self.prepare(change, resource).await?;
                        let pending = if change.action == Action::Create {
                            self.persist(|state| state.mark_creating(&resource))?;
                            self.retrying(change, || self.apis.create(&request)).await?
                        } else {
                            self.retrying(change, || {
                                self.apis.update(
                                    &request,
                                    &change.fields,
                                    change.reasons.contains(&Reason::Drifted),
                                )
                            })
                            .await?
                        };
                        if let Some(pending) = pending {
                            self.persist(|state| state.record_pending(&resource, pending.clone()))?;
                            if self.no_wait && pending.may_run_on() {
                                left_running = Some(pending);
                            } else {
                                self.await_pending(change, &pending).await?;
                            }
                        }
                        self.persist(|state| {
                            state.record_applied(&resource);
                            state.set_pending(&resource.address, left_running.clone());
                        })?;
                        self.finished(change, started, left_running);
                        return Ok(());
                    }
                }
                self.persist(|state| state.record_applied(resource))?;
            }
            (Action::Adopt, Some(resource)) => {
                self.persist(|state| state.record_applied(resource))?;
            }
            (Action::Replace, Some(resource)) => {
                if let Some(previous) = &change.previous
                    && let Some(pending) = self
                        .retrying(change, || self.apis.delete(previous, delete_data))
                        .await?
                {
                    self.await_pending(change, &pending).await?;
                }
                let (resource, request) = self.prepare(change, resource).await?;
                self.persist(|state| state.mark_creating(&resource))?;
                if let Some(pending) = self.retrying(change, || self.apis.create(&request)).await? {
                    self.persist(|state| state.record_pending(&resource, pending.clone()))?;
                    self.await_pending(change, &pending).await?;
                }
                self.persist(|state| state.record_applied(&resource))?;
            }
            (Action::Delete, _) => {
                let pending = match &change.pending {
                    Some(pending) => Some(pending.clone()),
                    None => {
                        self.retrying(change, || self.apis.delete(&change.identity, delete_data))
                            .await?
                    }
                };
                if let Some(pending) = pending {
                    self.persist(|state| {
                        state.set_pending(&change.address, Some(pending.clone()))
                    })?;
                    self.await_pending(change, &pending).await?;
                }
                self.persist(|state| {
                    state.resources.remove(&change.address);
                })?;
            }
            (Action::Forget, _) => {
                self.persist(|state| {
                    state.resources.remove(&change.address);
                })?;
            }
            (Action::Keep, _) => {}
            (action, None) => {
                return Err(Failure::Aws(ApiError::new(
                    format!("failed to {action:?} `{}`", change.address),
                    crate::adapters::ErrorClass::Rejected,
                    "the plan carries no resource for this change (a damaged plan file?)",
                )));
            }
        }
        self.finished(change, started, None);
        Ok(())
    }

    fn finished(&self, change: &Change, started: Instant, left_running: Option<Pending>) {
        if let Some(pending) = left_running {
            self.reporter.event(Event::Warning {
                address: change.address.clone(),
                message: format!(
                    "not waiting for {} (--no-wait); the next plan shows it in progress until it is done",
                    pending.describe()
                ),
            });
        }
        self.reporter.event(Event::Finished {
            address: change.address.clone(),
            action: change.action,
            elapsed: started.elapsed(),
        });
    }

    /// The resource to record (after-apply values filled in, secrets as placeholders) and
    /// the one to send (secrets revealed). A secret used for the first time is generated and
    /// saved to state before any request carries it.
    async fn prepare(
        &self,
        change: &Change,
        resource: &Resource,
    ) -> Result<(Resource, Resource), Failure> {
        let mut recorded = resource.clone();
        for value in recorded.fields.values_mut() {
            let Some(deferred::AfterApply::IngressHostname { namespace, name }) =
                deferred::after_apply(value)
            else {
                continue;
            };
            let hostname = self
                .retrying(change, || self.ingress_hostname(&namespace, &name))
                .await?;
            *value = serde_json::Value::String(hostname);
        }
        let mut names = Vec::new();
        for value in recorded.fields.values().chain(recorded.parameters.values()) {
            deferred::secrets_in(value, &mut names);
        }
        let missing: Vec<String> = {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            names
                .into_iter()
                .filter(|n| !state.secrets.contains_key(n))
                .collect()
        };
        if !missing.is_empty() {
            self.persist(|state| {
                for name in missing {
                    state.secrets.insert(name, deferred::generate_secret());
                }
            })?;
        }
        let secrets = self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .secrets
            .clone();
        let mut request = recorded.clone();
        request
            .fields
            .values_mut()
            .chain(request.parameters.values_mut())
            .for_each(|value| deferred::reveal(value, &secrets));
        Ok((recorded, request))
    }

    /// The load balancer hostname of an Ingress comfyplat applied (and waited for).
    async fn ingress_hostname(&self, namespace: &str, name: &str) -> Result<String, ApiError> {
        let identity = Identity::K8sObject {
            api_version: "networking.k8s.io/v1".to_string(),
            kind: "Ingress".to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let hostname = match self.apis.observe(&identity).await? {
            Observation::Present(live) => live
                .attributes
                .get(crate::model::kubernetes::INGRESS_HOSTNAME)
                .and_then(serde_json::Value::as_str)
                .map(str::to_string),
            _ => None,
        };
        hostname.filter(|h| !h.is_empty()).ok_or_else(|| {
            ApiError::new(
                format!("failed to read the load balancer hostname of {identity}"),
                crate::adapters::ErrorClass::Transient,
                "the Ingress has no load balancer hostname yet (is the AWS Load Balancer Controller running?)",
            )
        })
    }

    /// Masks secrets in text that is about to be shown.
    fn redact(&self, text: &str) -> String {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        deferred::mask_text(text, &state.secrets)
    }

    fn persist(&self, update: impl FnOnce(&mut State)) -> Result<(), Failure> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        update(&mut state);
        state.save(self.state_path).map_err(Failure::State)
    }

    /// Waits for an operation under way, reporting its status and any warning.
    async fn await_pending(&self, change: &Change, pending: &Pending) -> Result<(), Failure> {
        let progress = |status: String| {
            self.reporter.event(Event::Progress {
                address: change.address.clone(),
                status,
            })
        };
        let warnings = match self
            .retrying(change, || self.apis.wait(pending, &progress))
            .await
        {
            Ok(warnings) => warnings,
            Err(failure) => {
                // It ended, badly: the next apply must try again, not wait again.
                if matches!(&failure, Failure::Aws(error) if !error.is_transient()) {
                    self.persist(|state| state.set_pending(&change.address, None))?;
                }
                return Err(failure);
            }
        };
        for message in warnings {
            self.reporter.event(Event::Warning {
                address: change.address.clone(),
                message,
            });
        }
        Ok(())
    }

    async fn retrying<T, F, Fut>(&self, change: &Change, mut step: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut attempt = 1;
        loop {
            match step().await {
                Ok(value) => return Ok(value),
                Err(error) if error.is_transient() && attempt < STEP_ATTEMPTS => {
                    let base = FIRST_BACKOFF * 2u32.pow(attempt - 1);
                    let delay = base.mul_f64(0.5 + fastrand::f64());
                    self.reporter.event(Event::Retrying {
                        address: change.address.clone(),
                        attempt,
                        delay,
                        error: self.redact(&crate::ui::error_chain(&error)),
                    });
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(error) => return Err(Failure::Aws(error)),
            }
        }
    }
}
