//! What every command that talks to AWS does first: read platform.yaml and the template
//! overrides (refusing bad input before any network call), find the state, connect, check
//! the account, read the facts the desired resources depend on, observe, plan.
//!
//! The facts are read concurrently: the caller's identity, the cluster and the add-ons in
//! one round (a pinned add-on version's configuration too), so that a no-op plan makes few
//! sequential round trips. Nothing is written before the account is known to be the right
//! one.

use std::path::PathBuf;

use anyhow::Context;

use crate::adapters::eks;
use crate::adapters::kube::Kube;
use crate::adapters::sts::{self, Caller};
use crate::adapters::{ApiError, Apis, Aws};
use crate::cli::Global;
use crate::config::{self, AddonSettings, Platform, S3_CSI_DRIVER};
use crate::model::kinds::{cloudfront_distribution, eks_addon};
use crate::model::{
    self, AddonFacts, ClusterFacts, Context as ModelContext, Desired, Environment, Identity, Kind,
    Observed,
};
use crate::observe;
use crate::planner::{self, Mode, Options, Plan};
use crate::state::State;
use crate::state::lock::StateLock;
use crate::templates::{self, Sources};

use super::CommandError;

pub struct Session {
    pub platform: Platform,
    pub state_dir: PathBuf,
    /// `--quiet`: no spinners.
    pub quiet: bool,
    /// How to reach Kubernetes, with `--kubeconfig`/`--context` applied.
    pub kubernetes: crate::config::KubernetesAccess,
    /// The templates, with platform.yaml's overrides read.
    pub templates: Sources,
}

/// How long waits may take, and whether conflicts are forced (apply, destroy).
#[derive(Debug, Clone, Copy)]
pub struct KubeOptions {
    pub wait_timeout: std::time::Duration,
    pub force_conflicts: bool,
}

impl Default for KubeOptions {
    fn default() -> Self {
        KubeOptions {
            wait_timeout: std::time::Duration::from_secs(15 * 60),
            force_conflicts: false,
        }
    }
}

/// A session connected to an account that passed the guards.
pub struct Connected {
    pub apis: Apis,
    pub caller: Caller,
    pub environment: Environment,
    /// Whether the Mountpoint S3 CSI driver add-on is installed and created (its CSIDriver
    /// must then be there).
    pub csi_installed: bool,
    /// Whether the Kubernetes preflight applies: the platform has a workload to apply.
    pub check_kubernetes: bool,
}

/// What DescribeAddon and a pinned version's configuration said, per add-on.
struct AddonLookup {
    installed: Option<String>,
    /// Its status when installed (`CREATING` while EKS is still at it).
    status: Option<String>,
    /// Whether the pinned version supports Pod Identity (read in the first round).
    pinned_pod_identity: Option<bool>,
}

impl Session {
    /// Reads and validates platform.yaml and the template overrides. No network.
    pub fn open(global: &Global) -> anyhow::Result<Session> {
        let path = &global.file;
        let bytes = config::read_file(path)?;
        let platform = config::from_bytes(path, &bytes)?;
        super::check_paths(global, &platform, &bytes)?;
        let templates = templates::load(platform.templates_dir.as_deref())?;
        let state_dir = global
            .state_dir
            .clone()
            .unwrap_or_else(|| platform.default_state_dir());
        let mut kubernetes = platform.kubernetes.clone();
        if let Some(path) = &global.kubeconfig {
            kubernetes.kubeconfig = Some(path.clone());
            kubernetes.context = global.context.clone();
        }
        Ok(Session {
            platform,
            state_dir,
            quiet: global.quiet,
            kubernetes,
            templates,
        })
    }

    pub fn state_path(&self) -> PathBuf {
        self.platform.state_file(&self.state_dir)
    }

    pub fn lock(&self, operation: &str) -> anyhow::Result<StateLock> {
        let path = self.state_dir.join(format!("{}.lock", self.platform.name));
        Ok(StateLock::acquire(&path, operation)?)
    }

    pub fn load_state(&self) -> anyhow::Result<State> {
        Ok(State::load(
            &self.state_path(),
            &self.platform.name,
            &self.platform.region,
        )?)
    }

    /// The desired resources in `environment`.
    pub fn desired(&self, environment: &Environment) -> anyhow::Result<Desired> {
        Ok(model::desired(&ModelContext {
            platform: &self.platform,
            environment,
            templates: &self.templates,
        })?)
    }

    /// Asks STS who the caller is and refuses any account other than the one named in
    /// platform.yaml or recorded in state; reads the adopted cluster (it must exist and be
    /// ACTIVE; `destroy` goes on without it) and resolves the add-on versions, so that
    /// nothing is written when the cluster is not there. The reads of the first round go
    /// out together; only reads happen before the account is checked.
    pub async fn connect(
        &self,
        state: &State,
        mode: Mode,
        kube_options: KubeOptions,
    ) -> anyhow::Result<Connected> {
        let aws = Aws::connect(&self.platform.region, waiting_notify()).await;
        let name = &self.platform.cluster_name;
        let lookups = async {
            if mode == Mode::Destroy && !state.resources.is_empty() {
                // State knows the add-ons it installed; without state they are found here.
                return Ok(Vec::new());
            }
            futures::future::try_join_all(
                self.platform
                    .addons
                    .iter()
                    .map(|addon| lookup_addon(&aws, name, addon)),
            )
            .await
        };
        let (caller, cluster, lookups, instance_types) = tokio::join!(
            sts::caller(&aws),
            eks::describe_cluster(&aws, name),
            lookups,
            check_instance_types(&aws, &self.platform, mode)
        );
        let caller = caller?;
        check_account(&self.platform, &caller)?;
        if let Some(state_account) = &state.account
            && state_account != &caller.account
        {
            return Err(CommandError::StateAccountMismatch {
                platform: self.platform.name.clone(),
                state_account: state_account.clone(),
                actual: caller.account.clone(),
            }
            .into());
        }
        let instance_type_notes = instance_types?;
        let cluster = self
            .preflight_cluster(&aws, &caller, cluster?, state, mode)
            .await?;
        let lookups = lookups?;
        let csi_installed = self
            .platform
            .addons
            .iter()
            .zip(&lookups)
            // One still being created has no CSIDriver yet: the apply waits for it.
            .any(|(addon, lookup)| {
                addon.name == S3_CSI_DRIVER
                    && lookup.installed.is_some()
                    && lookup.status.as_deref() != Some("CREATING")
            });
        let addons = match mode {
            Mode::Apply => self.resolve_addons(&aws, &cluster, lookups).await?,
            // Only which are installed matters to destroy them: their versions as they are.
            Mode::Destroy => installed_addons(&self.platform.addons, lookups),
        };
        let kube = self
            .connect_kube(&aws, &cluster, &caller, state, mode)
            .await?;
        let apis = Apis {
            aws,
            kube,
            force_conflicts: kube_options.force_conflicts,
            wait_timeout: kube_options.wait_timeout,
            platform: self.platform.name.clone(),
            account: caller.account.clone(),
            partition: caller.partition.clone(),
            cluster: self.platform.cluster_name.clone(),
        };
        let distribution_reference = self.distribution_reference(&apis, state).await?;
        let environment = Environment {
            account: caller.account.clone(),
            partition: caller.partition.clone(),
            region: self.platform.region.clone(),
            cluster,
            addons,
            distribution_reference,
            state_lineage: state.lineage.clone(),
            notes: instance_type_notes,
        };
        Ok(Connected {
            apis,
            caller,
            environment,
            csi_installed,
            check_kubernetes: mode == Mode::Apply && self.platform.comfyui.is_some(),
        })
    }

    /// The AWS clients, the caller (account checked as for plan) and the cluster's
    /// Kubernetes API, for the commands that read without a plan (`models status`); the
    /// cluster must exist.
    pub async fn connect_cluster(&self) -> anyhow::Result<(Aws, Caller, Kube)> {
        let (aws, caller) = connect_account(&self.platform).await?;
        let name = &self.platform.cluster_name;
        let cluster = match eks::describe_cluster(&aws, name).await? {
            Some(cluster) => cluster,
            None => {
                return Err(CommandError::ClusterNotFound {
                    cluster: name.clone(),
                    account: caller.account.clone(),
                    region: self.platform.region.clone(),
                    existing: eks::list_clusters(&aws).await?,
                }
                .into());
            }
        };
        let kube = self.kube(&aws, &cluster, &caller).await?;
        Ok((aws, caller, kube))
    }

    /// The cluster's Kubernetes API: through the kubeconfig named, else with an EKS token.
    async fn kube(
        &self,
        aws: &Aws,
        cluster: &ClusterFacts,
        caller: &Caller,
    ) -> anyhow::Result<Kube> {
        Ok(match &self.kubernetes.kubeconfig {
            Some(path) => Kube::connect_kubeconfig(
                path,
                self.kubernetes.context.as_deref(),
                &cluster.name,
                cluster.endpoint.as_deref(),
                self.kubernetes.allow_other_endpoint,
            )
            .await
            .map_err(CommandError::from)?,
            None => Kube::connect_eks(aws, cluster, &caller.partition).await?,
        })
    }

    /// The CloudFront CallerReference: the one state holds; else that of the distribution
    /// carrying this platform's comment and tag (state was lost: the platform keeps its
    /// distribution and URL instead of getting a twin); else a new one (generated here, not
    /// in the model, which draws no random numbers). Two distributions claiming the
    /// platform are refused.
    async fn distribution_reference(&self, apis: &Apis, state: &State) -> anyhow::Result<String> {
        let in_state = state.resources.values().find_map(|e| match &e.identity {
            Identity::CloudfrontDistribution(id) => Some(id.caller_reference.clone()),
            _ => None,
        });
        if let Some(reference) = in_state {
            return Ok(reference);
        }
        // Without `cdn` no distribution is desired: no reference is needed, nothing to find
        // (destroy finds a distribution left from earlier by its tag, in observation).
        let found = match &self.platform.cdn {
            Some(_) => {
                crate::adapters::kinds::cloudfront_distribution::platform_distributions(apis)
                    .await?
            }
            None => Vec::new(),
        };
        match found.as_slice() {
            [] => Ok(format!(
                "{}{}-{}",
                cloudfront_distribution::CALLER_REFERENCE_PREFIX,
                self.platform.name,
                uuid::Uuid::new_v4().simple()
            )),
            [(reference, _)] => Ok(reference.caller_reference.clone()),
            several => Err(CommandError::TwinDistributions {
                platform: self.platform.name.clone(),
                ids: several.iter().map(|(_, id)| id.clone()).collect(),
            }
            .into()),
        }
    }

    /// Connects to the cluster's Kubernetes API when the platform has (or had) objects
    /// there. On destroy a cluster that is gone took them along: no connection.
    async fn connect_kube(
        &self,
        aws: &Aws,
        cluster: &ClusterFacts,
        caller: &Caller,
        state: &State,
        mode: Mode,
    ) -> anyhow::Result<Option<Kube>> {
        let in_state = state
            .resources
            .values()
            .any(|e| e.identity.kind() == Kind::K8sObject);
        // Destroy connects too when state has nothing: the objects are found by label.
        let wanted =
            self.platform.comfyui.is_some() && (mode == Mode::Apply || state.resources.is_empty());
        if !(wanted || in_state) || cluster.endpoint.is_none() {
            return Ok(None);
        }
        Ok(Some(self.kube(aws, cluster, caller).await?))
    }

    async fn preflight_cluster(
        &self,
        aws: &Aws,
        caller: &Caller,
        cluster: Option<ClusterFacts>,
        state: &State,
        mode: Mode,
    ) -> anyhow::Result<ClusterFacts> {
        let name = &self.platform.cluster_name;
        let Some(cluster) = cluster else {
            if mode == Mode::Destroy {
                // Gone already: what comfyplat made on it went with it; the rest is destroyed.
                return Ok(ClusterFacts {
                    name: name.clone(),
                    ..ClusterFacts::default()
                });
            }
            return Err(CommandError::ClusterNotFound {
                cluster: name.clone(),
                account: caller.account.clone(),
                region: self.platform.region.clone(),
                existing: eks::list_clusters(aws).await?,
            }
            .into());
        };
        let resuming_update = state
            .resources
            .values()
            .any(|entry| entry.identity.kind() == Kind::EksAccessConfig && entry.pending.is_some());
        // An authentication-mode update started by an apply that was stopped before it
        // could record it: the plan waits for it, as for one state knows.
        let unrecorded_update = cluster.status == "UPDATING"
            && !resuming_update
            && mode == Mode::Apply
            && eks::access_update_in_progress(aws, name, "failed to read the cluster's updates")
                .await?
                .is_some();
        match cluster.status.as_str() {
            "ACTIVE" => Ok(cluster),
            "UPDATING" if resuming_update || unrecorded_update || mode == Mode::Destroy => {
                Ok(cluster)
            }
            _ => Err(CommandError::ClusterNotReady {
                cluster: name.clone(),
                status: cluster.status.clone(),
            }
            .into()),
        }
    }

    /// The version of each add-on, as [`eks_addon::choose_version`] decides from what the
    /// cluster has (the versions it offers are read only when the choice needs them), and
    /// whether the chosen version of the CSI driver supports Pod Identity.
    async fn resolve_addons(
        &self,
        aws: &Aws,
        cluster: &ClusterFacts,
        lookups: Vec<AddonLookup>,
    ) -> anyhow::Result<Vec<AddonFacts>> {
        futures::future::try_join_all(
            self.platform
                .addons
                .iter()
                .zip(lookups)
                .map(|(addon, lookup)| resolve_addon(aws, cluster, addon, lookup)),
        )
        .await
    }

    /// Observes everything the plan needs and plans. The cluster's preflight runs at the
    /// same time; its problems stop the plan. Secrets state lost are read back from the
    /// live resources that hold them into `state` (in memory: the executor saves them with
    /// the first change).
    pub async fn plan(
        &self,
        connected: &Connected,
        state: &mut State,
        options: Options,
    ) -> anyhow::Result<(Desired, Observed, Plan)> {
        let desired = self.desired(&connected.environment)?;
        let identities = observe::identities(&desired, state);
        let _spinner = crate::ui::Spinner::start(
            &format!("reading the live state of {} resources", identities.len()),
            self.quiet,
        );
        let observe = async {
            observe::observe(
                &connected.apis,
                &desired,
                identities,
                options.mode == Mode::Destroy,
            )
            .await
            .context("failed to read the live state of the platform")
        };
        let (warnings, observed) = tokio::try_join!(self.preflight(connected), observe)?;
        let mut environment = connected.environment.clone();
        let mut desired = desired;
        if let Some(lineage) = taken_over_lineage(state, &desired, &observed) {
            // A new state on a platform that exists: plan with the lineage its resources
            // record (the planner refuses it without --adopt), so the plan shows that
            // taking them over changes nothing.
            state.lineage = lineage.clone();
            environment.state_lineage = lineage;
            desired = self.desired(&environment)?;
        }
        let recovered =
            model::deferred::recovered_secrets(&desired, &observed.resources, &state.secrets);
        state.secrets.extend(recovered);
        let mut plan = planner::plan(&desired, state, &observed, options, &environment);
        plan.notes.extend(warnings);
        Ok((desired, observed, plan))
    }

    /// What the cluster must run for the platform (Karpenter v1, the load balancer
    /// controller, the CSI driver once its add-on is installed): a problem stops the command
    /// before any write; warnings are returned to show with the plan.
    pub async fn preflight(&self, connected: &Connected) -> anyhow::Result<Vec<String>> {
        let Some(kube) = connected
            .apis
            .kube
            .as_ref()
            .filter(|_| connected.check_kubernetes)
        else {
            return Ok(Vec::new());
        };
        let preflight = kube.preflight(connected.csi_installed).await?;
        if !preflight.problems.is_empty() {
            return Err(CommandError::KubernetesPreflight {
                cluster: self.platform.cluster_name.clone(),
                problems: preflight.problems,
            }
            .into());
        }
        Ok(preflight.warnings)
    }
}

/// For a state never saved, the lineage most of the platform's live resources record.
/// Where the AWS clients report calls that are slow to answer: stderr.
pub fn waiting_notify() -> crate::adapters::call_progress::Notify {
    std::sync::Arc::new(|line: String| eprintln!("waiting: {line}"))
}

/// The AWS clients and the caller, for the commands that read without a plan: the account
/// is checked against platform.yaml as for plan.
pub async fn connect_account(platform: &Platform) -> anyhow::Result<(Aws, Caller)> {
    let aws = Aws::connect(&platform.region, waiting_notify()).await;
    let caller = sts::caller(&aws).await?;
    check_account(platform, &caller)?;
    Ok((aws, caller))
}

/// Refuses credentials of another account than the one platform.yaml names.
pub fn check_account(platform: &Platform, caller: &Caller) -> Result<(), CommandError> {
    match &platform.account {
        Some(expected) if expected != &caller.account => Err(CommandError::WrongAccount {
            expected: expected.clone(),
            actual: caller.account.clone(),
            arn: caller.arn.clone(),
        }),
        _ => Ok(()),
    }
}

fn taken_over_lineage(state: &State, desired: &Desired, observed: &Observed) -> Option<String> {
    if state.serial != 0 || !state.resources.is_empty() {
        return None;
    }
    model::lineages(desired, &observed.resources)
        .into_iter()
        .max_by_key(|(_, addresses)| addresses.len())
        .map(|(lineage, _)| lineage)
}

/// The add-ons of platform.yaml that are installed, as they are (for destroy).
fn installed_addons(settings: &[AddonSettings], lookups: Vec<AddonLookup>) -> Vec<AddonFacts> {
    settings
        .iter()
        .zip(lookups)
        .filter_map(|(addon, lookup)| {
            Some(AddonFacts {
                name: addon.name.clone(),
                version: lookup.installed?,
                pod_identity: true,
            })
        })
        .collect()
}

/// The node pool's instance types as EC2 describes and offers them in the region, checked
/// by [`model::instance_types::check`]: its notes for the plan, or why the types cannot run
/// ComfyUI. Only when applying a platform with a workload (the node pool is rendered then).
async fn check_instance_types(
    aws: &Aws,
    platform: &Platform,
    mode: Mode,
) -> anyhow::Result<Vec<String>> {
    if mode != Mode::Apply || platform.comfyui.is_none() {
        return Ok(Vec::new());
    }
    let names = &platform.node_pool.instance_types;
    let (facts, offerings) = tokio::try_join!(
        crate::adapters::ec2::instance_types(aws, names),
        crate::adapters::ec2::offerings(aws, names)
    )?;
    Ok(model::instance_types::check(platform, &facts, &offerings)?)
}

/// What the first round reads of an add-on: its installed version, and for a pinned
/// version of the CSI driver whether that version supports Pod Identity.
async fn lookup_addon(
    aws: &Aws,
    cluster: &str,
    addon: &AddonSettings,
) -> Result<AddonLookup, ApiError> {
    let pinned = async {
        match (&addon.version, addon.name == S3_CSI_DRIVER) {
            (Some(version), true) => eks::supports_pod_identity(aws, &addon.name, version)
                .await
                .map(Some)
                // A pinned version the catalogue does not know: the choice reports it.
                .or_else(|e| {
                    if e.class == crate::adapters::ErrorClass::NotFound
                        || e.class == crate::adapters::ErrorClass::Rejected
                    {
                        Ok(None)
                    } else {
                        Err(e)
                    }
                }),
            _ => Ok(None),
        }
    };
    let (installed, pinned) = tokio::join!(eks::installed_addon(aws, cluster, &addon.name), pinned);
    let (installed, status) = installed?.unzip();
    Ok(AddonLookup {
        installed,
        status,
        pinned_pod_identity: pinned?,
    })
}

/// The version of one add-on, and for the CSI driver whether it supports Pod Identity.
async fn resolve_addon(
    aws: &Aws,
    cluster: &ClusterFacts,
    addon: &AddonSettings,
    lookup: AddonLookup,
) -> anyhow::Result<AddonFacts> {
    let installed = lookup.installed.as_deref();
    let available = if eks_addon::needs_versions(addon, installed) {
        eks::addon_versions(aws, &addon.name, &cluster.version).await?
    } else {
        Vec::new()
    };
    let version = eks_addon::choose_version(addon, installed, &available, &cluster.version)?;
    let pod_identity = match lookup.pinned_pod_identity {
        _ if addon.name != S3_CSI_DRIVER => true,
        Some(supported) if addon.version.as_deref() == Some(version.as_str()) => supported,
        _ => eks::supports_pod_identity(aws, &addon.name, &version).await?,
    };
    Ok(AddonFacts {
        name: addon.name.clone(),
        version,
        pod_identity,
    })
}
