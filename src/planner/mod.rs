//! The planner: `plan(desired, state, observed) -> Plan`, pure and deterministic.
//!
//! Every decision is made here, none in the executor: what to create, update, replace,
//! delete, adopt into state or forget, why (the [`Reason`]s), which fields change
//! (`before -> after`, live against desired), what drifted (live against last applied,
//! reported apart from intended change), in which order the changes may run (`after`), and
//! what would make applying unsafe (the [`Blocker`]s: a bucket that still holds data, a name
//! owned by someone else, an adopted role that is missing).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::model::{
    Address, Adopted, Desired, DistributionGoal, Environment, Fields, Identity, Kind, Observation,
    Observed, Owner, Pending, Resource, deferred, kubernetes,
};
use crate::state::{State, Status};

pub const PLAN_FORMAT_VERSION: u32 = 1;

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
    /// Allow deleting buckets that hold objects (their objects are deleted first).
    pub delete_data: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    /// Delete the old identity, then create the new one.
    Replace,
    Delete,
    /// Exists and matches, but was not in state: record it.
    Adopt,
    /// Gone already: remove it from state, no API call.
    Forget,
    /// Would be deleted, but holds data and `--delete-data` was not given.
    Keep,
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
    /// Its name or region changed, which AWS cannot change in place.
    IdentityChanged { before: Identity },
    /// It is no longer in platform.yaml.
    NotInConfig,
    /// `comfyplat destroy`.
    Destroying,
    /// It is already gone.
    AlreadyGone,
    /// It holds objects and `--delete-data` was not given.
    HoldsData,
    /// An earlier apply started it and was interrupted; comfyplat waits for it.
    InProgress,
    /// It failed earlier (e.g. an add-on in `CREATE_FAILED`); trying again.
    FailedEarlier,
    /// A setting of something adopted: comfyplat never undoes it.
    LeftAsIs,
}

/// One field's change: `before` is the live value, `after` the desired one (absent = unset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// It can never be changed back (e.g. an EKS cluster's authentication mode).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub irreversible: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub address: Address,
    pub action: Action,
    pub reasons: Vec<Reason>,
    pub identity: Identity,
    /// For a replacement: the identity that is deleted first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Identity>,
    pub fields: Vec<FieldChange>,
    /// The wanted resource, for creates, updates, replacements and adoptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// Changes that must finish first.
    #[serde(default)]
    pub after: Vec<Address>,
    /// An operation an earlier apply started: wait for it instead of starting another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
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
    pub format_version: u32,
    pub comfyplat_version: String,
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

/// The tag keys a change removes (`tags.<key>` fields that end up unset).
pub fn removed_tags(changes: &[FieldChange]) -> Vec<String> {
    changes
        .iter()
        .filter(|c| c.after.is_none())
        .filter_map(|c| c.path.strip_prefix("tags.").map(str::to_string))
        .collect()
}

/// Field-by-field difference from `from` to `to`, in path order.
pub fn diff_fields(from: &Fields, to: &Fields) -> Vec<FieldChange> {
    let paths: BTreeSet<&String> = from.keys().chain(to.keys()).collect();
    paths
        .into_iter()
        .filter_map(|path| {
            let before = from.get(path);
            let after = to.get(path);
            (before != after).then(|| FieldChange {
                path: path.clone(),
                before: before.cloned(),
                after: after.cloned(),
                irreversible: false,
            })
        })
        .collect()
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
    if options.mode == Mode::Apply {
        for resource in &desired.resources {
            let resource = planner.resolve(resource);
            planner.plan_wanted(&resource);
            handled.insert(resource.address.clone());
        }
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
        if let Identity::K8sObject {
            api_version,
            kind,
            namespace,
            name,
        } = identity
        {
            let address = kubernetes::object_address(api_version, kind, namespace, name);
            if handled.insert(address.clone()) {
                planner.plan_unwanted(&address, identity, Status::Applied);
            }
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
    let mut changes = planner.changes;
    order(&mut changes, desired, state);
    let fingerprints = observed
        .resources
        .iter()
        .map(|(identity, observation)| (identity.clone(), fingerprint(observation)))
        .collect();
    Plan {
        format_version: PLAN_FORMAT_VERSION,
        comfyplat_version: env!("CARGO_PKG_VERSION").to_string(),
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

    /// The resource with the after-apply values the observations already know (an Ingress
    /// that has its load balancer hostname); the others stay `(known after apply)`.
    fn resolve<'r>(&self, resource: &'r Resource) -> std::borrow::Cow<'r, Resource> {
        if !deferred::has_after_apply(&resource.fields) {
            return std::borrow::Cow::Borrowed(resource);
        }
        let mut resolved = resource.clone();
        for value in resolved.fields.values_mut() {
            let Some(deferred::AfterApply::IngressHostname { namespace, name }) =
                deferred::after_apply(value)
            else {
                continue;
            };
            let ingress = self.desired.resources.iter().find(|r| {
                matches!(&r.identity, Identity::K8sObject { kind, namespace: ns, name: n, .. }
                    if kind == "Ingress" && *ns == namespace && *n == name)
            });
            let hostname = ingress
                .and_then(|i| match self.observation(&i.identity) {
                    Observation::Present(live) => live.attributes.get(kubernetes::INGRESS_HOSTNAME),
                    _ => None,
                })
                .and_then(Value::as_str)
                .filter(|h| !h.is_empty());
            if let Some(hostname) = hostname {
                *value = Value::String(hostname.to_string());
            }
        }
        std::borrow::Cow::Owned(resolved)
    }

    fn check_adopted(&mut self) {
        if self.options.mode != Mode::Apply {
            return;
        }
        for (adopted, exists) in &self.observed.adopted {
            if *exists {
                continue;
            }
            match adopted {
                Adopted::IamRole { name, setting } => self.blockers.push(Blocker {
                    address: None,
                    message: format!(
                        "IAM role `{name}` named by `{setting}` does not exist in account {}",
                        self.environment.account
                    ),
                    hint: "comfyplat builds on the role Karpenter gives its nodes and never creates it: install Karpenter first, or fix the role name in platform.yaml".to_string(),
                }),
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
            let action = if entry.status == Status::Creating {
                Action::Create
            } else {
                Action::Update
            };
            let fields = diff_fields(&live, &resource.fields);
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
            self.plan_replacement(resource, &entry.identity);
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
            Observation::Unavailable { reason } => self.blockers.push(Blocker {
                address: Some(resource.address.clone()),
                message: format!(
                    "{} `{}` cannot be used: {reason}",
                    resource.identity.kind().noun(),
                    resource.identity
                ),
                hint: "choose another name for it in platform.yaml".to_string(),
            }),
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
                if !fields.is_empty() || failed {
                    self.push(resource, Action::Update, reasons, fields, None);
                } else if !in_state || entry.is_some_and(|e| e.status == Status::Creating) {
                    self.push(resource, Action::Adopt, reasons, fields, None);
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
    /// itself, as the live status shows: a CloudFront deployment that is `Deployed`.
    fn finished(&self, pending: &Pending, identity: &Identity) -> bool {
        let Pending::Distribution {
            goal: DistributionGoal::Deployed,
            ..
        } = pending
        else {
            return false;
        };
        matches!(self.observation(identity), Observation::Present(live)
            if live.status.as_deref() == Some("Deployed"))
    }

    fn plan_replacement(&mut self, resource: &Resource, previous: &Identity) {
        match self.observation(&resource.identity).clone() {
            Observation::Present(live) if !self.is_owned(&live.owner) => {
                self.blockers.push(self.not_owned(resource, &live.owner));
                return;
            }
            Observation::Unavailable { reason } => {
                self.blockers.push(Blocker {
                    address: Some(resource.address.clone()),
                    message: format!(
                        "{} `{}` cannot be used: {reason}",
                        resource.identity.kind().noun(),
                        resource.identity
                    ),
                    hint: "choose another name for it in platform.yaml".to_string(),
                });
                return;
            }
            _ => {}
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
        let fields = diff_fields(&Fields::new(), &resource.fields);
        self.push(
            resource,
            Action::Replace,
            vec![Reason::IdentityChanged {
                before: previous.clone(),
            }],
            fields,
            Some(previous.clone()),
        );
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
        let fields = fields
            .into_iter()
            .map(|mut field| {
                field.irreversible = one_way.contains(&field.path.as_str());
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
        Blocker {
            address: Some(address.clone()),
            message: format!("{address} ({identity}) holds objects, and {what} the bucket"),
            hint: "keep it in platform.yaml, empty it yourself, or pass `--delete-data` to delete the bucket with its objects".to_string(),
        }
    }
}

/// Fills in `after` (what each change waits for) and sorts the changes into an order that
/// respects it: creates and updates after the changes of what they depend on; deletes after
/// every change of what depends on them.
fn order(changes: &mut Vec<Change>, desired: &Desired, state: &State) {
    let dependencies = |address: &Address| -> BTreeSet<Address> {
        let mut all = BTreeSet::new();
        if let Some(resource) = desired.get(address) {
            all.extend(resource.depends_on.iter().cloned());
        }
        if let Some(entry) = state.resources.get(address) {
            all.extend(entry.depends_on.iter().cloned());
        }
        all
    };
    let is_upsert = |action: Action| {
        matches!(
            action,
            Action::Create | Action::Update | Action::Replace | Action::Adopt
        )
    };
    let actions: BTreeMap<Address, Action> = changes
        .iter()
        .map(|c| (c.address.clone(), c.action))
        .collect();
    for change in changes.iter_mut() {
        change.after = match change.action {
            action if is_upsert(action) => dependencies(&change.address)
                .into_iter()
                .filter(|d| actions.get(d).is_some_and(|a| is_upsert(*a)))
                .collect(),
            Action::Delete => actions
                .iter()
                .filter(|(other, action)| {
                    **other != change.address
                        && !matches!(action, Action::Keep | Action::Forget)
                        && dependencies(other).contains(&change.address)
                })
                .map(|(other, _)| other.clone())
                .collect(),
            _ => Vec::new(),
        };
    }
    // A stable topological order for display and execution.
    let mut ordered: Vec<Change> = Vec::with_capacity(changes.len());
    let mut remaining: Vec<Change> = std::mem::take(changes);
    while !remaining.is_empty() {
        let placed: BTreeSet<Address> = ordered.iter().map(|c| c.address.clone()).collect();
        let ready = remaining
            .iter()
            .position(|c| c.after.iter().all(|a| placed.contains(a)))
            .unwrap_or(0);
        ordered.push(remaining.remove(ready));
    }
    *changes = ordered;
}

#[cfg(test)]
mod tests;
