//! What every command that talks to AWS does first: read platform.yaml (refusing bad input
//! before any network call), find the state, connect, check the account, observe, plan.

use std::path::PathBuf;

use anyhow::Context;

use crate::adapters::eks;
use crate::adapters::kube::Kube;
use crate::adapters::sts::{self, Caller};
use crate::adapters::{Apis, Aws};
use crate::cli::Global;
use crate::config::S3_CSI_DRIVER;
use crate::config::{self, Platform};
use crate::model::{self, AddonFacts, ClusterFacts, Desired, Environment, Observed, Pending};
use crate::observe;
use crate::planner::{self, Mode, Options, Plan};
use crate::state::State;
use crate::state::lock::StateLock;

use super::CommandError;

pub struct Session {
    pub platform: Platform,
    pub state_dir: PathBuf,
    /// `--quiet`: no spinners.
    pub quiet: bool,
    /// How to reach Kubernetes, with `--kubeconfig`/`--context` applied.
    pub kubernetes: crate::config::KubernetesAccess,
}

/// How long Kubernetes waits may take, and whether conflicts are forced (apply, destroy).
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
    /// Warnings of the preflight checks, shown with the plan.
    pub notes: Vec<String>,
}

impl Session {
    /// Reads and validates platform.yaml. No network.
    pub fn open(global: &Global) -> anyhow::Result<Session> {
        let platform = config::load(&global.file)?;
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

    /// Asks STS who the caller is and refuses any account other than the one named in
    /// platform.yaml or recorded in state.
    ///
    /// Then it reads the adopted cluster (it must exist and be ACTIVE; `destroy` goes on
    /// without it) and resolves the add-on versions, so that nothing is written when the
    /// cluster is not there.
    pub async fn connect(
        &self,
        state: &State,
        mode: Mode,
        kube_options: KubeOptions,
    ) -> anyhow::Result<Connected> {
        let aws = Aws::connect(&self.platform.region).await;
        let caller = sts::caller(&aws).await?;
        if let Some(expected) = &self.platform.account
            && expected != &caller.account
        {
            return Err(CommandError::WrongAccount {
                expected: expected.clone(),
                actual: caller.account.clone(),
                arn: caller.arn.clone(),
            }
            .into());
        }
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
        let cluster = self.preflight_cluster(&aws, &caller, state, mode).await?;
        let (addons, csi_installed) = match mode {
            Mode::Apply => self.resolve_addons(&aws, &cluster).await?,
            Mode::Destroy => (Vec::new(), false),
        };
        let mut notes = Vec::new();
        let kube = self
            .connect_kube(&aws, &cluster, &caller, state, mode, kube_options)
            .await?;
        if let Some(kube) = &kube
            && mode == Mode::Apply
            && self.platform.comfyui.is_some()
        {
            let preflight = kube.preflight(csi_installed).await?;
            if !preflight.problems.is_empty() {
                return Err(CommandError::KubernetesPreflight {
                    cluster: cluster.name.clone(),
                    problems: preflight.problems,
                }
                .into());
            }
            notes.extend(preflight.warnings);
        }
        let environment = Environment {
            account: caller.account.clone(),
            partition: caller.partition.clone(),
            region: self.platform.region.clone(),
            cluster,
            addons,
            distribution_reference: state.resources.values().find_map(|e| match &e.identity {
                model::Identity::CloudFrontDistribution { caller_reference } => {
                    Some(caller_reference.clone())
                }
                _ => None,
            }),
        };
        Ok(Connected {
            apis: Apis {
                aws,
                kube,
                force_conflicts: kube_options.force_conflicts,
                wait_timeout: kube_options.wait_timeout,
            },
            caller,
            environment,
            notes,
        })
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
        options: KubeOptions,
    ) -> anyhow::Result<Option<Kube>> {
        let in_state = state
            .resources
            .values()
            .any(|e| e.identity.kind() == model::Kind::K8sObject);
        let wanted = mode == Mode::Apply && self.platform.comfyui.is_some();
        if !(wanted || in_state) || cluster.endpoint.is_none() {
            return Ok(None);
        }
        let kube = match &self.kubernetes.kubeconfig {
            Some(path) => Kube::connect_kubeconfig(
                path,
                self.kubernetes.context.as_deref(),
                &cluster.name,
                cluster.endpoint.as_deref(),
                self.kubernetes.allow_other_endpoint,
                options.wait_timeout,
            )
            .await
            .map_err(CommandError::from)?,
            None => {
                Kube::connect_eks(aws, cluster, &caller.partition, options.wait_timeout).await?
            }
        };
        Ok(Some(kube))
    }

    async fn preflight_cluster(
        &self,
        aws: &Aws,
        caller: &Caller,
        state: &State,
        mode: Mode,
    ) -> anyhow::Result<ClusterFacts> {
        let name = &self.platform.cluster_name;
        let Some(cluster) = eks::describe_cluster(aws, name).await? else {
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
            .any(|entry| matches!(&entry.pending, Some(Pending::ClusterUpdate { cluster, .. }) if cluster == name));
        match cluster.status.as_str() {
            "ACTIVE" => Ok(cluster),
            "UPDATING" if resuming_update || mode == Mode::Destroy => Ok(cluster),
            _ => Err(CommandError::ClusterNotReady {
                cluster: name.clone(),
                status: cluster.status.clone(),
            }
            .into()),
        }
    }

    /// The version of each add-on: pinned (and available for the cluster's Kubernetes
    /// version), else the installed one (comfyplat never upgrades on its own), else the
    /// default for the cluster's Kubernetes version.
    /// Also says whether the Mountpoint S3 CSI driver add-on is installed already.
    async fn resolve_addons(
        &self,
        aws: &Aws,
        cluster: &ClusterFacts,
    ) -> anyhow::Result<(Vec<AddonFacts>, bool)> {
        let mut facts = Vec::new();
        let mut csi_installed = false;
        for addon in &self.platform.addons {
            let installed = eks::installed_addon_version(aws, &cluster.name, &addon.name).await?;
            if addon.name == S3_CSI_DRIVER && installed.is_some() {
                csi_installed = true;
            }
            let version = match (&addon.version, installed) {
                (Some(pinned), installed) => {
                    if installed.as_deref() != Some(pinned.as_str()) {
                        let available =
                            eks::addon_versions(aws, &addon.name, &cluster.version).await?;
                        if !available.iter().any(|(v, _)| v == pinned) {
                            return Err(CommandError::AddonVersionUnavailable {
                                addon: addon.name.clone(),
                                version: pinned.clone(),
                                kubernetes: cluster.version.clone(),
                                available: available.into_iter().map(|(v, _)| v).collect(),
                            }
                            .into());
                        }
                    }
                    pinned.clone()
                }
                (None, Some(installed)) => installed,
                (None, None) => {
                    let available = eks::addon_versions(aws, &addon.name, &cluster.version).await?;
                    match available
                        .iter()
                        .find(|(_, default)| *default)
                        .or(available.first())
                    {
                        Some((version, _)) => version.clone(),
                        None => {
                            return Err(CommandError::AddonVersionUnavailable {
                                addon: addon.name.clone(),
                                version: "(default)".to_string(),
                                kubernetes: cluster.version.clone(),
                                available: Vec::new(),
                            }
                            .into());
                        }
                    }
                }
            };
            let pod_identity = addon.name != S3_CSI_DRIVER
                || eks::supports_pod_identity(aws, &addon.name, &version).await?;
            facts.push(AddonFacts {
                name: addon.name.clone(),
                version,
                pod_identity,
            });
        }
        Ok((facts, csi_installed))
    }

    pub fn desired(&self, connected: &Connected) -> anyhow::Result<Desired> {
        Ok(model::desired(&self.platform, &connected.environment)?)
    }

    /// Observes everything the plan needs and plans.
    pub async fn plan(
        &self,
        connected: &Connected,
        state: &State,
        options: Options,
    ) -> anyhow::Result<(Desired, Observed, Plan)> {
        let desired = self.desired(connected)?;
        let identities = observe::identities(&desired, state);
        let _spinner = crate::ui::Spinner::start(
            &format!("reading the live state of {} resources", identities.len()),
            self.quiet,
        );
        let observed = observe::observe(&connected.apis, &desired, identities)
            .await
            .context("failed to read the live state of the platform")?;
        let mut plan = planner::plan(&desired, state, &observed, options, &connected.environment);
        plan.notes.extend(connected.notes.iter().cloned());
        Ok((desired, observed, plan))
    }
}
