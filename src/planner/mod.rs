//! The planner: `plan(desired, state, observed) -> Plan`, pure and deterministic.
//!
//! Every decision is made here, none in the executor: what to create, update, replace,
//! delete, adopt into state or forget, why (the [`Reason`]s), which fields change
//! (`before -> after`, live against desired), which of them the API refuses to change in
//! place (`forces replacement`), what drifted (live against last applied, reported apart
//! from intended change), in which order the changes may run (`after`, and for a
//! replacement `destroy_after` for its delete half), which values the observations fill in
//! (an Ingress's load balancer hostname, an image tag's digest), and what would make
//! applying unsafe (the [`Blocker`]s: a bucket that still holds data, a name owned by
//! someone else, an adopted role that is missing or lacks a permission, an image tag that
//! does not exist, a dependency cycle).

pub mod order;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::model::deferred::{self, Placeholder};
use crate::model::kinds::ecr_repository;
use crate::model::kubernetes;
use crate::model::{
    Address, Adopted, Desired, Environment, FieldChange, Fields, Goal, Identity, Kind, Observation,
    Observed, Owner, Pending, Resource, diff_fields,
};
use crate::state::{State, Status};

/// Apply the configuration, or destroy everything owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Apply,
    Destroy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    /// Allow deleting what holds data (buckets' objects, repositories' images).
    pub delete_data: bool,
    /// Take over resources recorded by another state (lost, or another state dir).
    pub adopt: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    /// Delete the old resource, then create the new one.
    Replace,
    Delete,
    /// Exists and matches, but was not in state: record it.
    Adopt,
    /// Gone already: remove it from state, no API call.
    Forget,
    /// Would be deleted, but holds data and `--delete-data` was not given.
    Keep,
}

impl Action {
    /// Every action, in the order the plan's legend lists them.
    pub const ALL: [Action; 7] = [
        Action::Create,
        Action::Update,
        Action::Replace,
        Action::Delete,
        Action::Adopt,
        Action::Forget,
        Action::Keep,
    ];

    /// Creates or changes something that is wanted.
    pub fn is_upsert(self) -> bool {
        matches!(
            self,
            Action::Create | Action::Update | Action::Replace | Action::Adopt
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// Not in state and not found live.
    NotInState,
    /// A create was interrupted; it is finished now.
    IncompleteCreate,
    /// In state, but deleted outside comfyplat.
    DeletedOutside,
    /// Found live with this platform's ownership tag, but not in state.
    FoundOwned,
    /// platform.yaml changed one of its fields.
    ConfigChanged,
    /// It was changed outside comfyplat; the change is reverted.
    Drifted,
    /// Its name or region changed, which the API cannot change in place.
    IdentityChanged { before: Identity },
    /// A field the API refuses to change in place changed.
    CannotChangeInPlace { paths: Vec<String> },
    /// It stays bound to what it was bound to: replaced together with it.
    ReplacedWith { address: Address },
    /// It is no longer in platform.yaml.
    NotInConfig,
    /// `comfyplat destroy`.
    Destroying,
    /// It is already gone.
    AlreadyGone,
    /// It holds data and `--delete-data` was not given.
    HoldsData,
    /// An earlier apply started it and was interrupted; comfyplat waits for it.
    InProgress,
    /// It failed earlier (e.g. an add-on in `CREATE_FAILED`); trying again.
    FailedEarlier,
    /// A setting of something adopted: comfyplat never undoes it.
    LeftAsIs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub address: Address,
    pub action: Action,
    pub reasons: Vec<Reason>,
    pub identity: Identity,
    /// For a replacement: the identity that is deleted first (the same one when a field
    /// forced it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Identity>,
    pub fields: Vec<FieldChange>,
    /// The wanted resource, for creates, updates, replacements and adoptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// Changes that must finish first: for creates, updates and a replacement's create,
    /// the changes of what it depends on; for a delete, every change of what depends on it.
    #[serde(default)]
    pub after: Vec<Address>,
    /// For a replacement: the changes whose deletes must finish before its delete (what
    /// depends on it and goes too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destroy_after: Vec<Address>,
    /// An operation an earlier apply started: wait for it instead of starting another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

impl Change {
    /// The field paths that force this replacement.
    pub fn replace_paths(&self) -> Vec<String> {
        self.fields
            .iter()
            .filter(|f| f.forces_replacement)
            .map(|f| f.path.clone())
            .collect()
    }
}

/// A resource whose live fields differ from what comfyplat last applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub address: Address,
    pub identity: Identity,
    /// `before` = last applied, `after` = live. Empty when the resource is gone.
    pub fields: Vec<FieldChange>,
    pub gone: bool,
}

/// Something that makes the plan unsafe to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocker {
    pub address: Option<Address>,
    pub message: String,
    pub hint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub platform: String,
    pub account: String,
    pub region: String,
    pub mode: Mode,
    pub delete_data: bool,
    pub state_lineage: String,
    pub state_serial: u64,
    pub changes: Vec<Change>,
    pub drift: Vec<Drift>,
    pub blockers: Vec<Blocker>,
    /// Decisions and facts worth telling (e.g. IRSA instead of Pod Identity).
    #[serde(default)]
    pub notes: Vec<String>,
    /// What every observed identity looked like, to refuse a stale saved plan.
    pub fingerprints: Vec<(Identity, String)>,
}

/// Counts for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
    pub forget: usize,
    pub keep: usize,
}

impl Plan {
    /// Whether applying would call any API or write state.
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::Keep)
    }

    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for change in &self.changes {
            match change.action {
                Action::Create => summary.add += 1,
                Action::Update | Action::Adopt => summary.change += 1,
                Action::Replace => {
                    summary.add += 1;
                    summary.destroy += 1;
                }
                Action::Delete => summary.destroy += 1,
                Action::Forget => summary.forget += 1,
                Action::Keep => summary.keep += 1,
            }
        }
        summary
    }
}

/// Fingerprint of one observation.
pub fn fingerprint(observation: &Observation) -> String {
    let text = serde_json::to_string(observation).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn plan(
    desired: &Desired,
    state: &State,
    observed: &Observed,
    options: Options,
    environment: &Environment,
) -> Plan {
    let mut planner = Planner {
        desired,
        state,
        observed,
        options,
        environment,
        changes: Vec::new(),
        drift: Vec::new(),
        blockers: Vec::new(),
        notes: desired.notes.clone(),
    };
    planner.check_adopted();
    let mut handled = BTreeSet::new();
    let mut resolved = Vec::new();
    if options.mode == Mode::Apply {
        for resource in &desired.resources {
            let resource = planner.resolve(resource);
            planner.plan_wanted(&resource);
            handled.insert(resource.address.clone());
            resolved.push(resource);
        }
        planner.replace_together(&resolved);
    }
    for (address, entry) in &state.resources {
        if !handled.contains(address) {
            planner.plan_unwanted(address, &entry.identity, entry.status);
            handled.insert(address.clone());
        }
    }
    // Kubernetes objects with this platform's label that neither platform.yaml nor state
    // knows (state lost, or written by another copy of comfyplat): pruned.
    for identity in &observed.labelled {
        if let Identity::K8sObject(id) = identity
            && handled.insert(id.address())
        {
            planner.plan_unwanted(&id.address(), identity, Status::Applied);
        }
    }
    if options.mode == Mode::Destroy {
        // Owned resources that state lost track of (e.g. state deleted) are destroyed too.
        for resource in &desired.resources {
            // Settings of adopted things are never undone, so there is nothing to find.
            if handled.contains(&resource.address) || resource.identity.kind().is_setting() {
                continue;
            }
            if let Some(Observation::Present(live)) = observed.resources.get(&resource.identity)
                && planner.is_owned(&live.owner)
            {
                planner.plan_unwanted(&resource.address, &resource.identity, Status::Applied);
            }
        }
    }
    if options.mode == Mode::Apply && !options.adopt {
        planner.check_lineage();
    }
    if options.mode == Mode::Destroy {
        // Found by the platform's tag, neither desired nor in state (state lost, and gone
        // from platform.yaml since): destroyed too, under an address that says so.
        for identity in &observed.discovered {
            let known = state.resources.values().any(|e| &e.identity == identity)
                || desired.resources.iter().any(|r| &r.identity == identity);
            let address = Address::new(format!("found.{}.{identity}", identity.kind().name()));
            if !known && handled.insert(address.clone()) {
                planner.plan_unwanted(&address, identity, Status::Applied);
            }
        }
    }
    let mut changes = planner.changes;
    if let Err(cycle) = order::order(&mut changes, desired, state) {
        planner.blockers.push(Blocker {
            address: cycle.first().cloned(),
            message: format!(
                "the changes depend on each other in a cycle: {}",
                cycle
                    .iter()
                    .chain(cycle.first())
                    .map(Address::to_string)
                    .collect::<Vec<_>>()
                    .join(" -> ")
            ),
            hint: "this is a bug in the resources' dependencies (or in a template override that makes an object depend on itself); report it with the plan".to_string(),
        });
    }
    let fingerprints = observed
        .resources
        .iter()
        .map(|(identity, observation)| (identity.clone(), fingerprint(observation)))
        .collect();
    Plan {
        platform: desired.platform.clone(),
        account: environment.account.clone(),
        region: environment.region.clone(),
        mode: options.mode,
        delete_data: options.delete_data,
        state_lineage: state.lineage.clone(),
        state_serial: state.serial,
        changes,
        drift: planner.drift,
        blockers: planner.blockers,
        notes: planner.notes,
        fingerprints,
    }
}

struct Planner<'a> {
    desired: &'a Desired,
    state: &'a State,
    observed: &'a Observed,
    options: Options,
    environment: &'a Environment,
    changes: Vec<Change>,
    drift: Vec<Drift>,
    blockers: Vec<Blocker>,
    notes: Vec<String>,
}

impl Planner<'_> {
    fn observation(&self, identity: &Identity) -> &Observation {
        self.observed
            .resources
            .get(identity)
            .unwrap_or(&Observation::Absent)
    }

    fn is_owned(&self, owner: &Owner) -> bool {
        match owner {
            Owner::Name => true,
            Owner::Tag(tag) => tag.as_deref() == Some(self.desired.platform.as_str()),
        }
    }

    /// The live fields to compare with the desired ones. For Kubernetes objects: only the
    /// paths comfyplat renders now or applied last time, never the server's defaults.
    /// Secrets are masked into their placeholders, and a live value where a secret belongs
    /// that is not the current secret reads `(sensitive)`: no secret ever reaches a plan.
    fn live_fields(&self, resource: &Resource, live: &Fields) -> Fields {
        let mut live = if resource.identity.kind() == Kind::K8sObject {
            let last = self
                .state
                .resources
                .get(&resource.address)
                .filter(|e| e.identity == resource.identity)
                .map(|e| &e.fields);
            kubernetes::comparable(live, &resource.fields, last)
        } else {
            live.clone()
        };
        for (path, value) in live.iter_mut() {
            deferred::mask(value, &self.state.secrets);
            let mut secrets = Vec::new();
            if let Some(wanted) = resource.fields.get(path) {
                deferred::secrets_in(wanted, &mut secrets);
            }
            if !secrets.is_empty() && Some(&*value) != resource.fields.get(path) {
                *value = Value::String(deferred::secret("unknown"));
            }
        }
        live
    }

    /// The resource with the values the observations already know filled in: an Ingress's
    /// load balancer hostname (else it stays `(known after apply)`), an image tag's digest
    /// (else the plan is blocked: a missing tag must stop it before any write).
    fn resolve<'r>(&mut self, resource: &'r Resource) -> std::borrow::Cow<'r, Resource> {
        if !deferred::has_placeholders(&resource.fields)
            && !deferred::has_placeholders(&resource.parameters)
        {
            return std::borrow::Cow::Borrowed(resource);
        }
        let mut resolved = resource.clone();
        let mut missing = Vec::new();
        let mut found = Vec::new();
        let mut fill = |placeholder: &Placeholder| match placeholder {
            Placeholder::IngressHostname { namespace, name } => {
                self.ingress_hostname(namespace, name).map(str::to_string)
            }
            Placeholder::EcrImage { repository, tag } => match self.image_digest(repository, tag) {
                Ok((uri, digest)) => {
                    found.push(format!(
                            "comfyui.image `{{repository}}:{tag}` is `{digest}` in ECR repository `{repository}`"
                        ));
                    Some(format!("{uri}@{digest}"))
                }
                Err(why) => {
                    missing.push((repository.clone(), tag.clone(), why));
                    None
                }
            },
        };
        for value in resolved
            .fields
            .values_mut()
            .chain(resolved.parameters.values_mut())
        {
            deferred::fill(value, &mut fill);
        }
        found.sort();
        found.dedup();
        for note in found {
            if !self.notes.contains(&note) {
                self.notes.push(note);
            }
        }
        missing.sort();
        missing.dedup();
        for (repository, tag, why) in missing {
            self.blockers.push(Blocker {
                address: Some(resource.address.clone()),
                message: format!("comfyui.image `{{repository}}:{tag}` cannot be used: {why}"),
                hint: format!(
                    "push the image first (`docker push <repository URI>:{tag}`; `comfyplat output` shows the URI once the repository `{repository}` exists), or choose a tag the repository has; to create the repository, apply once with another `comfyui.image`"
                ),
            });
        }
        std::borrow::Cow::Owned(resolved)
    }

    fn ingress_hostname(&self, namespace: &str, name: &str) -> Option<&str> {
        let ingress = self.desired.resources.iter().find(|r| {
            matches!(&r.identity, Identity::K8sObject(id)
                if id.kind == "Ingress" && id.namespace == namespace && id.name == name)
        })?;
        match self.observation(&ingress.identity) {
            Observation::Present(live) => live
                .attributes
                .get(kubernetes::INGRESS_HOSTNAME)
                .and_then(Value::as_str)
                .filter(|h| !h.is_empty()),
            _ => None,
        }
    }

    /// The URI of the platform's repository and the digest `tag` points at.
    fn image_digest(&self, repository: &str, tag: &str) -> Result<(String, String), String> {
        let wanted =
            self.desired.resources.iter().find(
                |r| matches!(&r.identity, Identity::EcrRepository(id) if id.name == repository),
            );
        let Some(wanted) = wanted else {
            return Err(format!(
                "there is no ECR repository `{repository}` in platform.yaml"
            ));
        };
        let Observation::Present(live) = self.observation(&wanted.identity) else {
            return Err(format!(
                "ECR repository `{repository}` does not exist yet, so it has no tag `{tag}`"
            ));
        };
        let digest = live
            .attributes
            .get(&format!("digests.{tag}"))
            .and_then(Value::as_str)
            .ok_or_else(|| format!("ECR repository `{repository}` has no image tagged `{tag}`"))?;
        let uri = live
            .attributes
            .get("uri")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| ecr_repository::uri(self.environment, repository));
        Ok((uri, digest.to_string()))
    }

    /// Resources applied from another state than this one are not taken over silently: a
    /// state dir that is new although the platform's resources exist (the command then
    /// plans with their lineage, so the plan shows what taking them over does), or
    /// resources that record another lineage than this state's. `--adopt` allows both.
    fn check_lineage(&mut self) {
        let ours = &self.environment.state_lineage;
        let fresh = self.state.serial == 0 && self.state.resources.is_empty();
        for (lineage, addresses) in crate::model::lineages(self.desired, &self.observed.resources) {
            let (message, hint) = if &lineage == ours && fresh {
                (
                    format!(
                        "this state is new, but {} of the platform's resources exist, applied from another state (lineage {lineage}): it was lost, or is kept in another state dir",
                        addresses.len()
                    ),
                    "if the state was lost, `comfyplat apply --adopt` takes them over (the plan above is what that does: nothing is created twice); if another state dir manages this platform, use that one (`--state-dir`)",
                )
            } else if &lineage != ours {
                (
                    format!(
                        "{} of the platform's resources were applied from another state (lineage {lineage}), not this one ({ours}): {}",
                        addresses.len(),
                        addresses
                            .iter()
                            .map(Address::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    "two state dirs for one platform would undo each other's changes: use the state dir that manages it (`--state-dir`), or pass `--adopt` to take these resources over into this one",
                )
            } else {
                continue;
            };
            self.blockers.push(Blocker {
                address: addresses.first().cloned(),
                message,
                hint: hint.to_string(),
            });
        }
    }

    fn check_adopted(&mut self) {
        if self.options.mode != Mode::Apply {
            return;
        }
        for (adopted, found) in &self.observed.adopted {
            match adopted {
                Adopted::IamRole {
                    name,
                    setting,
                    must_allow,
                } => {
                    if !found.exists {
                        self.blockers.push(Blocker {
                            address: None,
                            message: format!(
                                "IAM role `{name}` named by `{setting}` does not exist in account {}",
                                self.environment.account
                            ),
                            hint: "comfyplat builds on the role Karpenter gives its nodes and never creates it: install Karpenter first, or fix the role name in platform.yaml".to_string(),
                        });
                        continue;
                    }
                    for (purpose, actions) in &found.missing {
                        let policy = must_allow
                            .iter()
                            .find(|p| &p.purpose == purpose)
                            .and_then(|p| p.managed_policies.first())
                            .cloned()
                            .unwrap_or_default();
                        self.blockers.push(Blocker {
                            address: None,
                            message: format!(
                                "IAM role `{name}` named by `{setting}` may not {purpose}: no policy of it allows {}",
                                actions.join(", ")
                            ),
                            hint: format!(
                                "attach the AWS managed policy {policy}: `aws iam attach-role-policy --role-name {name} --policy-arn arn:{}:iam::aws:policy/{policy}` (comfyplat never changes the roles it adopts)",
                                self.environment.partition
                            ),
                        });
                    }
                }
            }
        }
    }

    fn plan_wanted(&mut self, resource: &Resource) {
        let entry = self.state.resources.get(&resource.address);
        if let Some(entry) = entry
            && let Some(pending) = &entry.pending
            && entry.identity == resource.identity
            && !self.finished(pending, &resource.identity)
        {
            let live = match self.observation(&resource.identity) {
                Observation::Present(live) => self.live_fields(resource, &live.fields),
                _ => Fields::new(),
            };
            let fields = diff_fields(&live, &resource.fields);
            if pending.goal == Goal::Deleted {
                // A replacement was interrupted while its old resource was going.
                self.push(
                    resource,
                    Action::Replace,
                    vec![Reason::InProgress],
                    fields,
                    Some(entry.identity.clone()),
                );
                if let Some(change) = self.changes.last_mut() {
                    change.pending = Some(pending.clone());
                }
                return;
            }
            let action = if entry.status == Status::Creating {
                Action::Create
            } else {
                Action::Update
            };
            self.push(resource, action, vec![Reason::InProgress], fields, None);
            if let Some(change) = self.changes.last_mut() {
                change.pending = Some(pending.clone());
            }
            return;
        }
        if let Some(entry) = entry
            && entry.identity != resource.identity
            && matches!(self.observation(&entry.identity), Observation::Present(_))
        {
            let fields = diff_fields(&Fields::new(), &resource.fields);
            let reason = Reason::IdentityChanged {
                before: entry.identity.clone(),
            };
            self.plan_replacement(resource, &entry.identity, reason, fields);
            return;
        }
        let all_new = diff_fields(&Fields::new(), &resource.fields);
        match self.observation(&resource.identity).clone() {
            Observation::Absent => {
                let reason = match entry.map(|e| (e.status, &e.identity)) {
                    Some((_, identity)) if identity != &resource.identity => {
                        Reason::IdentityChanged {
                            before: identity.clone(),
                        }
                    }
                    Some((Status::Applied, _)) => {
                        self.drift.push(Drift {
                            address: resource.address.clone(),
                            identity: resource.identity.clone(),
                            fields: Vec::new(),
                            gone: true,
                        });
                        Reason::DeletedOutside
                    }
                    Some((Status::Creating, _)) => Reason::IncompleteCreate,
                    None => Reason::NotInState,
                };
                self.push(resource, Action::Create, vec![reason], all_new, None);
            }
            Observation::Unavailable { reason } => {
                self.blockers.push(unavailable(resource, &reason));
            }
            Observation::Present(mut live) => {
                live.fields = self.live_fields(resource, &live.fields);
                let in_state = entry.is_some_and(|e| e.identity == resource.identity);
                if !in_state && !self.is_owned(&live.owner) {
                    if resource.yield_to_existing {
                        self.notes.push(format!(
                            "{}: {} `{}` exists and was not created by comfyplat; it is left as it is",
                            resource.address,
                            resource.identity.kind().noun(),
                            resource.identity
                        ));
                    } else {
                        self.blockers.push(self.not_owned(resource, &live.owner));
                    }
                    return;
                }
                let failed = live
                    .status
                    .as_deref()
                    .is_some_and(|s| s.ends_with("_FAILED"));
                let fields = diff_fields(&live.fields, &resource.fields);
                let forced: Vec<String> = fields
                    .iter()
                    .filter(|f| resource.identity.forces_replacement(&f.path))
                    .map(|f| f.path.clone())
                    .collect();
                if !forced.is_empty() {
                    let reason = Reason::CannotChangeInPlace { paths: forced };
                    self.plan_replacement(resource, &resource.identity, reason, fields);
                    return;
                }
                let mut reasons = Vec::new();
                match entry.filter(|_| in_state) {
                    // A setting or a comfyplat-named policy: nothing to adopt, just not recorded yet.
                    None if live.owner == Owner::Name => reasons.push(Reason::NotInState),
                    None => reasons.push(Reason::FoundOwned),
                    Some(entry) if entry.status == Status::Creating => {
                        reasons.push(Reason::IncompleteCreate)
                    }
                    Some(entry) => {
                        let drifted = diff_fields(&entry.fields, &live.fields);
                        if !drifted.is_empty() {
                            self.drift.push(Drift {
                                address: resource.address.clone(),
                                identity: resource.identity.clone(),
                                fields: drifted,
                                gone: false,
                            });
                        }
                        let intended = diff_fields(&entry.fields, &resource.fields);
                        if fields
                            .iter()
                            .any(|f| intended.iter().any(|i| i.path == f.path))
                        {
                            reasons.push(Reason::ConfigChanged);
                        }
                        if fields
                            .iter()
                            .any(|f| intended.iter().all(|i| i.path != f.path))
                        {
                            reasons.push(Reason::Drifted);
                        }
                    }
                }
                if failed {
                    reasons.push(Reason::FailedEarlier);
                }
                // Still being created (an apply killed while the service was at it): the
                // apply waits for it before what depends on it.
                let under_way = matches!(live.status.as_deref(), Some("CREATING" | "UPDATING"));
                if !fields.is_empty() || failed {
                    self.push(resource, Action::Update, reasons, fields, None);
                } else if !in_state || entry.is_some_and(|e| e.status == Status::Creating) {
                    if under_way {
                        reasons.push(Reason::InProgress);
                    }
                    self.push(resource, Action::Adopt, reasons, fields, None);
                    if let Some(change) = self.changes.last_mut().filter(|_| under_way) {
                        change.pending = Some(Pending::ready());
                    }
                } else if entry.is_some_and(|e| e.depends_on != resource.depends_on) {
                    // Nothing live changes, but state must learn the new dependencies.
                    self.push(
                        resource,
                        Action::Adopt,
                        vec![Reason::ConfigChanged],
                        fields,
                        None,
                    );
                }
            }
        }
    }

    /// Whether an operation an earlier apply left running (`--no-wait`) has finished by
    /// itself, as the live status shows: a deployment that may run on and is `Deployed`.
    fn finished(&self, pending: &Pending, identity: &Identity) -> bool {
        pending.goal == Goal::Ready
            && identity.kind().may_run_on()
            && matches!(self.observation(identity), Observation::Present(live)
                if live.status.as_deref() == Some("Deployed"))
    }

    /// A replacement of `resource`: `previous` (its old identity, or the same one when a
    /// field forced it) is deleted, then `resource` created.
    fn plan_replacement(
        &mut self,
        resource: &Resource,
        previous: &Identity,
        reason: Reason,
        fields: Vec<FieldChange>,
    ) {
        if previous != &resource.identity {
            match self.observation(&resource.identity).clone() {
                Observation::Present(live) if !self.is_owned(&live.owner) => {
                    self.blockers.push(self.not_owned(resource, &live.owner));
                    return;
                }
                Observation::Unavailable { reason } => {
                    self.blockers.push(unavailable(resource, &reason));
                    return;
                }
                _ => {}
            }
        }
        if let Observation::Present(old) = self.observation(previous)
            && old.holds_objects == Some(true)
            && !self.options.delete_data
        {
            self.blockers.push(self.holds_data(
                &resource.address,
                previous,
                "replacing it deletes",
            ));
        }
        self.push(
            resource,
            Action::Replace,
            vec![reason],
            fields,
            Some(previous.clone()),
        );
    }

    /// Resources that stay bound to something being replaced are replaced with it, until
    /// nothing more changes: a claim with its volume, a workload with a claim it mounts.
    fn replace_together(&mut self, resolved: &[std::borrow::Cow<Resource>]) {
        loop {
            let replaced: BTreeSet<Address> = self
                .changes
                .iter()
                .filter(|c| c.action == Action::Replace)
                .map(|c| c.address.clone())
                .collect();
            let next = resolved.iter().find_map(|resource| {
                let with = resource
                    .replaced_with
                    .iter()
                    .find(|a| replaced.contains(*a))?;
                let position = self
                    .changes
                    .iter()
                    .position(|c| c.address == resource.address);
                match position.map(|i| self.changes[i].action) {
                    Some(Action::Replace | Action::Create) => None,
                    _ if !matches!(
                        self.observation(&resource.identity),
                        Observation::Present(_)
                    ) =>
                    {
                        None
                    }
                    _ => Some((resource, with.clone(), position)),
                }
            });
            let Some((resource, with, position)) = next else {
                return;
            };
            let fields = position
                .map(|i| self.changes.remove(i).fields)
                .unwrap_or_default();
            let reason = Reason::ReplacedWith { address: with };
            let identity = resource.identity.clone();
            self.plan_replacement(resource, &identity, reason, fields);
        }
    }

    fn plan_unwanted(&mut self, address: &Address, identity: &Identity, status: Status) {
        let why = match self.options.mode {
            Mode::Apply => Reason::NotInConfig,
            Mode::Destroy => Reason::Destroying,
        };
        let entry = self.state.resources.get(address);
        let pending = entry.and_then(|e| e.pending.clone());
        let (action, reasons) = match self.observation(identity) {
            _ if identity.kind().is_setting() => (Action::Forget, vec![why, Reason::LeftAsIs]),
            _ if pending.is_some() => (Action::Delete, vec![why, Reason::InProgress]),
            Observation::Absent => (Action::Forget, vec![Reason::AlreadyGone]),
            Observation::Unavailable { reason } => {
                self.blockers.push(Blocker {
                    address: Some(address.clone()),
                    message: format!("{} `{identity}` cannot be deleted: {reason}", identity.kind().noun()),
                    hint: "check the credentials' permissions; comfyplat deletes only what it can see is its own".to_string(),
                });
                return;
            }
            Observation::Present(live) => {
                let owned = self.is_owned(&live.owner) || status == Status::Applied;
                if !owned {
                    // A create that never happened: the name is someone else's.
                    (Action::Forget, vec![why])
                } else if live.holds_objects == Some(true) && !self.options.delete_data {
                    match self.options.mode {
                        Mode::Destroy => (Action::Keep, vec![why, Reason::HoldsData]),
                        Mode::Apply => {
                            self.blockers.push(self.holds_data(
                                address,
                                identity,
                                "removing it from platform.yaml deletes",
                            ));
                            (Action::Delete, vec![why, Reason::HoldsData])
                        }
                    }
                } else {
                    (Action::Delete, vec![why])
                }
            }
        };
        self.changes.push(Change {
            address: address.clone(),
            action,
            reasons,
            identity: identity.clone(),
            previous: None,
            fields: Vec::new(),
            resource: None,
            after: Vec::new(),
            destroy_after: Vec::new(),
            pending: pending.filter(|_| action == Action::Delete),
        });
    }

    fn push(
        &mut self,
        resource: &Resource,
        action: Action,
        reasons: Vec<Reason>,
        fields: Vec<FieldChange>,
        previous: Option<Identity>,
    ) {
        let one_way = resource.identity.kind().one_way_fields();
        let replacing_in_place = previous.as_ref() == Some(&resource.identity);
        let fields = fields
            .into_iter()
            .map(|mut field| {
                field.irreversible = one_way.contains(&field.path.as_str());
                field.forces_replacement =
                    replacing_in_place && resource.identity.forces_replacement(&field.path);
                field
            })
            .collect();
        self.changes.push(Change {
            address: resource.address.clone(),
            action,
            reasons,
            identity: resource.identity.clone(),
            previous,
            fields,
            resource: Some(resource.clone()),
            after: Vec::new(),
            destroy_after: Vec::new(),
            pending: None,
        });
    }

    fn not_owned(&self, resource: &Resource, owner: &Owner) -> Blocker {
        let owner = match owner {
            Owner::Tag(Some(other)) => format!("it belongs to comfyplat platform `{other}`"),
            _ => "it was not created by comfyplat".to_string(),
        };
        Blocker {
            address: Some(resource.address.clone()),
            message: format!(
                "{} `{}` already exists and is not owned by platform `{}`: {owner}",
                resource.identity.kind().noun(),
                resource.identity,
                self.desired.platform
            ),
            hint: format!(
                "choose another name in platform.yaml, or, to hand it to comfyplat, tag it `{}={}`",
                crate::config::OWNER_TAG,
                self.desired.platform
            ),
        }
    }

    fn holds_data(&self, address: &Address, identity: &Identity, what: &str) -> Blocker {
        let noun = identity.kind().noun();
        let data = identity.data().unwrap_or("data");
        Blocker {
            address: Some(address.clone()),
            message: format!("{address} ({identity}) holds {data}, and {what} the {noun}"),
            hint: format!(
                "keep it in platform.yaml, empty it yourself, or pass `--delete-data` to delete it with its {data}"
            ),
        }
    }
}

/// A name comfyplat wants that exists and cannot be used (another account's bucket).
fn unavailable(resource: &Resource, reason: &str) -> Blocker {
    Blocker {
        address: Some(resource.address.clone()),
        message: format!(
            "{} `{}` cannot be used: {reason}",
            resource.identity.kind().noun(),
            resource.identity
        ),
        hint: "choose another name for it in platform.yaml".to_string(),
    }
}

#[cfg(test)]
mod tests;
