//! The executor: carries out a [`Plan`] and makes no decision of its own.
//!
//! It walks the plan's steps in dependency order (a change is one step, a replacement two:
//! its delete, then its create; see `planner::order`), runs independent ones concurrently
//! up to `parallelism`, and persists state after every completed step: *before* a create
//! (so an interrupted create is recognised as ours), after a replacement's delete (the
//! resource is then being created again), and after every success. It retries nothing:
//! each client retries its own calls (see [`crate::adapters`]), and a wait that runs out of
//! time fails once, leaving what it waited for recorded as under way, so the next run
//! waits again. When a change fails, changes that wait for it are skipped and reported as
//! such, and independent branches go on. When asked to stop (Ctrl-C), it starts nothing
//! new and lets running steps finish.
//!
//! Secrets a resource needs (the CloudFront origin header) are generated here, saved to
//! state before any request carries them, and shown to nobody.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::adapters::{ApiError, Apis, ErrorClass};
use crate::model::kinds::k8s_object;
use crate::model::kubernetes::INGRESS_HOSTNAME;
use crate::model::{Address, Identity, Observation, Pending, Resource, deferred};
use crate::planner::{Action, Change, Plan, Reason, order};
use crate::state::{State, StateError};

/// What happens while a plan is applied.
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        address: Address,
        action: Action,
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

/// Where a step stands during the walk.
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
    Api(ApiError),
    State(StateError),
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Failure::Api(error)
    }
}

pub struct Executor<'a> {
    pub apis: &'a Apis,
    pub state: Mutex<&'a mut State>,
    pub state_path: &'a Path,
    pub reporter: &'a dyn Reporter,
    pub parallelism: usize,
    pub stop: &'a AtomicBool,
    /// `--no-wait`: do not wait for deployments that run on by themselves (CloudFront); the
    /// next plan shows them in progress until they are done.
    pub no_wait: bool,
}

impl Executor<'_> {
    pub async fn run(&self, plan: &Plan) -> Result<Outcome, ExecuteError> {
        let changes = &plan.changes;
        let steps: Vec<(usize, order::Step)> = changes
            .iter()
            .enumerate()
            .flat_map(|(i, c)| order::steps(c.action).iter().map(move |s| (i, *s)))
            .collect();
        let waits: Vec<Vec<usize>> = steps
            .iter()
            .map(|&(i, step)| {
                order::waits(changes, i, step)
                    .into_iter()
                    .filter_map(|w| steps.iter().position(|s| *s == w))
                    .collect()
            })
            .collect();
        let mut slots: Vec<Slot> = steps.iter().map(|_| Slot::Waiting).collect();
        let mut started = vec![None; changes.len()];
        let mut running = FuturesUnordered::new();
        let mut fatal: Option<StateError> = None;
        let mut interrupted = false;
        for (n, &(i, _)) in steps.iter().enumerate() {
            if changes[i].action == Action::Keep {
                self.reporter.event(Event::Kept {
                    address: changes[i].address.clone(),
                });
                slots[n] = Slot::Ended(ChangeResult::Kept);
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
                for n in 0..steps.len() {
                    if !matches!(slots[n], Slot::Waiting) {
                        continue;
                    }
                    let (i, step) = steps[n];
                    let change = &changes[i];
                    let blocking = waits[n].iter().find(|w| {
                        matches!(
                            slots[**w],
                            Slot::Ended(ChangeResult::Failed(_) | ChangeResult::Skipped { .. })
                        )
                    });
                    if let Some(&blocking) = blocking {
                        let because = match &slots[blocking] {
                            Slot::Ended(ChangeResult::Skipped { because }) => because.clone(),
                            _ => changes[steps[blocking].0].address.clone(),
                        };
                        if because != change.address {
                            self.reporter.event(Event::Skipped {
                                address: change.address.clone(),
                                action: change.action,
                                because: because.clone(),
                            });
                        }
                        slots[n] = Slot::Ended(ChangeResult::Skipped { because });
                        progressed = true;
                        continue;
                    }
                    let ready = waits[n].iter().all(|w| {
                        matches!(
                            slots[*w],
                            Slot::Ended(ChangeResult::Done | ChangeResult::Kept)
                        )
                    });
                    if ready
                        && !interrupted
                        && fatal.is_none()
                        && running.len() < self.parallelism.max(1)
                    {
                        slots[n] = Slot::Running;
                        if started[i].is_none() {
                            started[i] = Some(Instant::now());
                            self.reporter.event(Event::Started {
                                address: change.address.clone(),
                                action: change.action,
                            });
                        }
                        running.push(async move {
                            (n, self.run_step(change, step, plan.delete_data).await)
                        });
                    }
                }
            }
            let Some((n, result)) = running.next().await else {
                break;
            };
            let (i, _) = steps[n];
            let change = &changes[i];
            slots[n] = Slot::Ended(match result {
                Ok(()) => {
                    let last = steps.iter().rposition(|(c, _)| *c == i) == Some(n);
                    if last {
                        self.reporter.event(Event::Finished {
                            address: change.address.clone(),
                            action: change.action,
                            elapsed: started[i].map(|s| s.elapsed()).unwrap_or_default(),
                        });
                    }
                    ChangeResult::Done
                }
                Err(Failure::Api(error)) => {
                    let text = self.redact(&crate::errors::chain(&error));
                    self.reporter.event(Event::Failed {
                        address: change.address.clone(),
                        action: change.action,
                        error: text.clone(),
                    });
                    ChangeResult::Failed(text)
                }
                Err(Failure::State(error)) => {
                    let text = crate::errors::chain(&error);
                    fatal = Some(error);
                    ChangeResult::Failed(text)
                }
            });
        }
        if let Some(error) = fatal {
            return Err(error.into());
        }
        let results = changes
            .iter()
            .enumerate()
            .map(|(i, change)| {
                let mut result = ChangeResult::Done;
                for (n, _) in steps.iter().enumerate().filter(|(_, (c, _))| *c == i) {
                    let step = match &slots[n] {
                        Slot::Ended(result) => result.clone(),
                        Slot::Waiting | Slot::Running => ChangeResult::NotStarted,
                    };
                    if step != ChangeResult::Done {
                        result = step;
                        break;
                    }
                }
                (change.address.clone(), change.action, result)
            })
            .collect::<Vec<_>>();
        // An interrupt that arrived when nothing was left to start changed nothing: the
        // outcome is the normal one.
        let interrupted = interrupted
            && results
                .iter()
                .any(|(_, _, result)| *result == ChangeResult::NotStarted);
        Ok(Outcome {
            results,
            interrupted,
        })
    }

    async fn run_step(
        &self,
        change: &Change,
        step: order::Step,
        delete_data: bool,
    ) -> Result<(), Failure> {
        match (change.action, step, &change.resource) {
            (Action::Create | Action::Update, _, Some(resource)) => {
                if let Some(pending) = &change.pending {
                    // An earlier apply started this and was interrupted: only wait.
                    self.await_pending(change, pending).await?;
                    return self.persist(|state| state.record_applied(resource));
                }
                let (resource, request) = self.prepare(resource).await?;
                let pending = if change.action == Action::Create {
                    self.persist(|state| state.mark_creating(&resource))?;
                    self.apis.create(&request).await?
                } else {
                    let repair = change.reasons.contains(&Reason::Drifted);
                    self.apis.update(&request, &change.fields, repair).await?
                };
                self.finish(change, &resource, pending).await
            }
            (Action::Adopt, _, Some(resource)) => {
                if let Some(pending) = &change.pending {
                    // Found still being created: wait for it before what depends on it.
                    self.await_pending(change, pending).await?;
                }
                self.persist(|state| state.record_applied(resource))
            }
            (Action::Replace, order::Step::Destroy, Some(resource)) => {
                let pending = match (&change.pending, &change.previous) {
                    // An earlier apply started the delete and was interrupted: only wait.
                    (Some(pending), _) => Some(pending.clone()),
                    (None, Some(previous)) => self.apis.delete(previous, delete_data).await?,
                    (None, None) => None,
                };
                if let (Some(previous), Some(pending)) = (&change.previous, pending) {
                    self.persist(|state| {
                        state.set_pending(&change.address, Some(pending.clone()))
                    })?;
                    self.await_pending_of(change, previous, &pending).await?;
                }
                // Gone: what is recorded now is the resource being created again.
                self.persist(|state| state.mark_creating(resource))
            }
            (Action::Replace, order::Step::Upsert, Some(resource)) => {
                let (resource, request) = self.prepare(resource).await?;
                self.persist(|state| state.mark_creating(&resource))?;
                let pending = self.apis.create(&request).await?;
                self.finish(change, &resource, pending).await
            }
            (Action::Delete, _, _) => {
                let pending = match &change.pending {
                    Some(pending) => Some(pending.clone()),
                    None => self.apis.delete(&change.identity, delete_data).await?,
                };
                if let Some(pending) = pending {
                    self.persist(|state| {
                        state.set_pending(&change.address, Some(pending.clone()))
                    })?;
                    self.await_pending(change, &pending).await?;
                }
                self.persist(|state| {
                    state.resources.remove(&change.address);
                })
            }
            (Action::Forget, _, _) => self.persist(|state| {
                state.resources.remove(&change.address);
            }),
            (Action::Keep, _, _) => Ok(()),
            (action, _, None) => Err(Failure::Api(ApiError::new(
                format!("failed to {action:?} `{}`", change.address),
                ErrorClass::Rejected,
                "the plan carries no resource for this change (a damaged plan file?)",
            ))),
        }
    }

    /// After a create or update call: records what is under way, waits for it (unless
    /// `--no-wait` may leave it running), and records the resource as applied.
    async fn finish(
        &self,
        change: &Change,
        resource: &Resource,
        pending: Option<Pending>,
    ) -> Result<(), Failure> {
        let mut left_running = None;
        if let Some(pending) = pending {
            self.persist(|state| state.record_pending(resource, pending.clone()))?;
            if self.no_wait && pending.may_run_on(resource.identity.kind()) {
                self.reporter.event(Event::Warning {
                    address: change.address.clone(),
                    message: format!(
                        "not waiting for {} (--no-wait); the next plan shows it in progress until it is done",
                        pending.describe(&resource.identity)
                    ),
                });
                left_running = Some(pending);
            } else {
                self.await_pending(change, &pending).await?;
            }
        }
        self.persist(|state| {
            state.record_applied(resource);
            state.set_pending(&resource.address, left_running);
        })
    }

    /// The resource to record (after-apply values filled in, secrets as placeholders) and
    /// the one to send (secrets revealed). A secret used for the first time is generated and
    /// saved to state before any request carries it.
    async fn prepare(&self, resource: &Resource) -> Result<(Resource, Resource), Failure> {
        let mut recorded = resource.clone();
        let mut ingresses = Vec::new();
        for value in recorded.fields.values() {
            if let Some(deferred::Placeholder::IngressHostname { namespace, name }) =
                deferred::placeholder(value)
            {
                ingresses.push((namespace, name));
            }
        }
        for (namespace, name) in ingresses {
            let hostname = self.ingress_hostname(&namespace, &name).await?;
            for value in recorded.fields.values_mut() {
                deferred::fill(value, &mut |p| match p {
                    deferred::Placeholder::IngressHostname {
                        namespace: n,
                        name: m,
                    } if *n == namespace && *m == name => Some(hostname.clone()),
                    _ => None,
                });
            }
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
                    state.secrets.insert(name, crate::state::generate_secret());
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

    /// The load balancer hostname of an Ingress comfyplat applied (and waited for until it
    /// had one).
    async fn ingress_hostname(&self, namespace: &str, name: &str) -> Result<String, ApiError> {
        let identity: Identity =
            k8s_object::Id::new("networking.k8s.io/v1", "Ingress", namespace, name).into();
        let hostname = match self.apis.observe(&identity).await? {
            Observation::Present(live) => live
                .attributes
                .get(INGRESS_HOSTNAME)
                .and_then(serde_json::Value::as_str)
                .map(str::to_string),
            _ => None,
        };
        hostname.filter(|h| !h.is_empty()).ok_or_else(|| {
            ApiError::new(
                format!("failed to read the load balancer hostname of {identity}"),
                ErrorClass::Rejected,
                "the Ingress has no load balancer hostname (is the AWS Load Balancer Controller running?)",
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

    async fn await_pending(&self, change: &Change, pending: &Pending) -> Result<(), Failure> {
        self.await_pending_of(change, &change.identity, pending)
            .await
    }

    /// Waits for an operation under way on `identity`, reporting its status and any
    /// warning. If the operation ended badly, the next apply must try again, not wait
    /// again; if the wait ran out of time, the operation goes on and the next apply waits.
    async fn await_pending_of(
        &self,
        change: &Change,
        identity: &Identity,
        pending: &Pending,
    ) -> Result<(), Failure> {
        let progress = |status: String| {
            self.reporter.event(Event::Progress {
                address: change.address.clone(),
                status,
            })
        };
        match self.apis.wait(identity, pending, &progress).await {
            Ok(warnings) => {
                for message in warnings {
                    self.reporter.event(Event::Warning {
                        address: change.address.clone(),
                        message,
                    });
                }
                Ok(())
            }
            Err(error) => {
                if !error.is_transient() && error.class != ErrorClass::Timeout {
                    self.persist(|state| state.set_pending(&change.address, None))?;
                }
                Err(Failure::Api(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::Aws;
    use crate::planner::Mode;

    struct Silent;

    impl Reporter for Silent {
        fn event(&self, _: Event) {}
    }

    fn plan() -> Plan {
        Plan {
            platform: "studio".to_string(),
            account: "123456789012".to_string(),
            region: "us-west-2".to_string(),
            mode: Mode::Apply,
            delete_data: false,
            state_lineage: String::new(),
            state_serial: 0,
            changes: Vec::new(),
            drift: Vec::new(),
            blockers: Vec::new(),
            notes: Vec::new(),
            fingerprints: Vec::new(),
        }
    }

    /// A Ctrl-C that arrives when nothing is left to start is not an interrupted apply:
    /// the outcome is the normal one (exit 0, no "run it again").
    #[tokio::test]
    async fn an_interrupt_after_everything_finished_is_not_an_interruption() {
        let apis = Apis {
            // Never called: the plan has nothing to do. No network is reached.
            aws: Aws::connect("us-west-2", std::sync::Arc::new(|_: String| {})).await,
            kube: None,
            force_conflicts: false,
            wait_timeout: Duration::from_secs(1),
            platform: "studio".to_string(),
            account: "123456789012".to_string(),
            partition: "aws".to_string(),
            cluster: "comfyui".to_string(),
        };
        let directory = tempfile::tempdir().expect("a temporary directory");
        let state_path = directory.path().join("studio.json");
        let mut state = State::new("studio", "us-west-2");
        let stop = AtomicBool::new(true);
        let executor = Executor {
            apis: &apis,
            state: Mutex::new(&mut state),
            state_path: &state_path,
            reporter: &Silent,
            parallelism: 1,
            stop: &stop,
            no_wait: false,
        };
        let outcome = executor.run(&plan()).await.expect("no state error");
        assert!(!outcome.interrupted, "{outcome:?}");
        assert!(outcome.succeeded(), "{outcome:?}");
    }
}
