//! The Kubernetes API of the adopted cluster, through kube-rs.
//!
//! Connecting: by default straight to the EKS endpoint with the cluster's CA and a bearer
//! token presigned from the AWS credentials ([`token`]), made anew before it expires; or
//! through a kubeconfig, whose server must then be the cluster's endpoint.
//!
//! Objects are read and written as untyped JSON ([`DynamicObject`]) with the plural and
//! scope comfyplat knows for each kind it renders. Writes are server-side apply under field
//! manager `comfyplat`, with strict field validation (a field the API does not know, e.g.
//! a misspelt one in a template override, is refused instead of silently dropped).
//!
//! This module owns the retries of Kubernetes calls: throttling (429, after the server's
//! `retryAfterSeconds`), 5xx, an update conflict on a stale resourceVersion and lost
//! connections are retried with backoff, [`KUBE_ATTEMPTS`] attempts per call; field
//! manager conflicts and refusals are not. Like the AWS adapters, nothing here prints:
//! waits report through a callback.

mod pods;
mod token;

pub use pods::PodView;

use std::time::{Duration, Instant};

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use serde_json::Value;
use tokio::sync::Mutex;

use super::{ApiError, Aws, Backoff, ErrorClass, Poll, poll, status_class};
use crate::model::kinds::k8s_object::Id;
use crate::model::kubernetes::{KINDS, PLATFORM_LABEL, kind_info, object_fields};
use crate::model::{ClusterFacts, Goal, Live, Observation, Owner, Pending, Resource};

/// Attempts of one Kubernetes call on throttling, 5xx, conflicts and lost connections.
pub const KUBE_ATTEMPTS: u32 = 5;

/// The field manager of every write comfyplat makes.
pub const FIELD_MANAGER: &str = "comfyplat";

/// A connection to the cluster's Kubernetes API.
pub struct Kube {
    client: Mutex<(kube::Client, Instant)>,
    /// How to make a new client with a fresh token; `None` for a kubeconfig (kube-rs runs
    /// its exec plugin or token refresh itself).
    refresh: Option<Refresh>,
    /// The API server URL, for messages.
    pub server: String,
}

struct Refresh {
    config: aws_config::SdkConfig,
    cluster: String,
    region: String,
    partition: String,
    endpoint: http::Uri,
    roots: Vec<Vec<u8>>,
}

/// Time limits of every Kubernetes request (comfyplat reads and applies objects; it never
/// watches): 5 s to connect, 30 s for the answer and for sending the request. With the
/// adapter's bounded attempts, an API server that stops answering fails the command.
fn limit_time(config: &mut kube::Config) {
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(30));
    config.write_timeout = Some(Duration::from_secs(30));
}

impl Refresh {
    async fn client(&self) -> Result<kube::Client, ApiError> {
        let token =
            token::token(&self.config, &self.cluster, &self.region, &self.partition).await?;
        let mut config = kube::Config::new(self.endpoint.clone());
        config.root_cert = Some(self.roots.clone());
        config.auth_info.token = Some(secrecy::SecretString::from(token));
        limit_time(&mut config);
        kube::Client::try_from(config).map_err(|e| {
            ApiError::new(
                format!("failed to set up a Kubernetes client for {}", self.endpoint),
                ErrorClass::Rejected,
                e.to_string(),
            )
            .caused_by(e)
        })
    }
}

/// Why comfyplat cannot use a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("failed to read kubeconfig {path}: {message}")]
    Read { path: String, message: String },
    #[error(
        "kubeconfig {path} (context {context}) points at {server}, not at cluster `{cluster}` ({endpoint})"
    )]
    OtherCluster {
        path: String,
        context: String,
        server: String,
        cluster: String,
        endpoint: String,
    },
}

impl Kube {
    /// Connects with the cluster's endpoint and CA from DescribeCluster and an EKS token.
    pub async fn connect_eks(
        aws: &Aws,
        cluster: &ClusterFacts,
        partition: &str,
    ) -> Result<Kube, ApiError> {
        let operation = format!(
            "failed to reach the Kubernetes API of cluster `{}`",
            cluster.name
        );
        let (Some(endpoint), Some(ca)) = (&cluster.endpoint, &cluster.certificate_authority) else {
            return Err(ApiError::new(
                operation,
                ErrorClass::Rejected,
                "DescribeCluster gave no endpoint or certificate authority",
            ));
        };
        let endpoint_uri: http::Uri = endpoint.parse().map_err(|e: http::uri::InvalidUri| {
            ApiError::new(&operation, ErrorClass::Rejected, e.to_string())
        })?;
        let roots = certificates(ca).ok_or_else(|| {
            ApiError::new(
                &operation,
                ErrorClass::Rejected,
                "the cluster's certificate authority is not base64 PEM",
            )
        })?;
        let refresh = Refresh {
            config: aws.config.clone(),
            cluster: cluster.name.clone(),
            region: aws.region.clone(),
            partition: partition.to_string(),
            endpoint: endpoint_uri,
            roots,
        };
        let client = refresh.client().await?;
        Ok(Kube {
            client: Mutex::new((client, Instant::now())),
            refresh: Some(refresh),
            server: endpoint.clone(),
        })
    }

    /// Connects through a kubeconfig; refuses one whose server is not `expected` (the
    /// cluster's EKS endpoint) unless `allow_other` says so.
    pub async fn connect_kubeconfig(
        path: &std::path::Path,
        context: Option<&str>,
        cluster: &str,
        expected: Option<&str>,
        allow_other: bool,
    ) -> Result<Kube, KubeconfigError> {
        let shown = path.display().to_string();
        let read_error = |message: String| KubeconfigError::Read {
            path: shown.clone(),
            message,
        };
        // kube's read error names the kubeconfig and its path again: only its cause is said.
        let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| {
            read_error(match &e {
                kube::config::KubeconfigError::ReadConfig(cause, _) => cause.to_string(),
                other => crate::errors::chain(other),
            })
        })?;
        let chosen = context
            .map(str::to_string)
            .or_else(|| kubeconfig.current_context.clone())
            .unwrap_or_default();
        let options = kube::config::KubeConfigOptions {
            context: context.map(str::to_string),
            cluster: None,
            user: None,
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| read_error(crate::errors::chain(&e)))?;
        let server = config.cluster_url.to_string();
        if let Some(expected) = expected
            && !allow_other
            && normalize(&server) != normalize(expected)
        {
            return Err(KubeconfigError::OtherCluster {
                path: shown,
                context: chosen,
                server,
                cluster: cluster.to_string(),
                endpoint: expected.to_string(),
            });
        }
        let mut config = config;
        limit_time(&mut config);
        let client =
            kube::Client::try_from(config).map_err(|e| read_error(crate::errors::chain(&e)))?;
        Ok(Kube {
            client: Mutex::new((client, Instant::now())),
            refresh: None,
            server,
        })
    }

    /// A client whose token is still good.
    async fn client(&self) -> Result<kube::Client, ApiError> {
        let mut guard = self.client.lock().await;
        if let Some(refresh) = &self.refresh
            && guard.1.elapsed() > token::TOKEN_LIFETIME
        {
            *guard = (refresh.client().await?, Instant::now());
        }
        Ok(guard.0.clone())
    }

    /// A call with the retries this module owns: `call` gets a client with a fresh token on
    /// every attempt.
    async fn call<T, F, Fut>(&self, operation: &str, mut call: F) -> Result<T, ApiError>
    where
        F: FnMut(kube::Client) -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            let client = self.client().await?;
            match call(client).await {
                Ok(value) => return Ok(value),
                Err(error) if attempt < KUBE_ATTEMPTS && retryable(&error) => {
                    let wait = match &error {
                        kube::Error::Api(status) => status
                            .details
                            .as_ref()
                            .map(|d| Duration::from_secs(u64::from(d.retry_after_seconds)))
                            .filter(|d| !d.is_zero())
                            .unwrap_or(delay),
                        _ => delay,
                    };
                    tracing::debug!(operation, attempt, ?wait, "retrying: {error}");
                    tokio::time::sleep(wait.min(Duration::from_secs(30))).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                Err(error) => return Err(kube_error(operation, error)),
            }
        }
    }

    /// The object, or `None`.
    async fn get(&self, id: &Id) -> Result<Option<DynamicObject>, ApiError> {
        self.call(&format!("failed to read {id}"), |client| async move {
            api(client, id).get_opt(&id.name).await
        })
        .await
    }

    /// The live object, in the model's terms.
    pub async fn observe(&self, id: &Id) -> Result<Observation, ApiError> {
        let Some(object) = self.get(id).await? else {
            return Ok(Observation::Absent);
        };
        let value = serde_json::to_value(&object).unwrap_or(Value::Null);
        let owner = object
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(PLATFORM_LABEL))
            .cloned();
        let status = object
            .metadata
            .deletion_timestamp
            .as_ref()
            .map(|_| "DELETING".to_string());
        Ok(Observation::Present(Live {
            fields: object_fields(&value),
            owner: Owner::Tag(owner),
            holds_objects: None,
            status,
            attributes: attributes(&value),
        }))
    }

    /// Server-side apply of the resource's manifest, strictly validated. `force` takes over
    /// fields another manager set (drift being reverted, or `--force-conflicts`).
    pub async fn apply(
        &self,
        id: &Id,
        resource: &Resource,
        force: bool,
    ) -> Result<Option<Pending>, ApiError> {
        let Some(manifest) = resource.parameters.get(crate::model::kubernetes::MANIFEST) else {
            return Err(ApiError::new(
                format!("failed to apply {id}"),
                ErrorClass::Rejected,
                "the plan carries no manifest for it (a damaged plan file?)",
            ));
        };
        let mut params = PatchParams::apply(FIELD_MANAGER).validation_strict();
        params.force = force;
        let params = &params;
        self.call(&format!("failed to apply {id}"), |client| async move {
            api(client, id)
                .patch(&id.name, params, &Patch::Apply(manifest))
                .await
        })
        .await?;
        Ok(needs_wait(id).then(Pending::ready))
    }

    /// Deletes the object; its finalizers (the ALB controller's, Karpenter's, the claim
    /// protection) are waited for.
    pub async fn delete(&self, id: &Id) -> Result<Option<Pending>, ApiError> {
        let deleted = self
            .call(&format!("failed to delete {id}"), |client| async move {
                match api(client, id)
                    .delete(&id.name, &DeleteParams::background())
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
                    Err(error) => Err(error),
                }
            })
            .await?;
        Ok(deleted.then(Pending::deleted))
    }

    /// Waits until the object is ready or gone, within `limit`, naming what it waits for
    /// and the object's last condition.
    pub async fn wait(
        &self,
        id: &Id,
        goal: Goal,
        limit: Duration,
        progress: &(dyn Fn(String) + Sync),
    ) -> Result<Vec<String>, ApiError> {
        let backoff = Backoff {
            first: Duration::from_millis(200),
            longest: Duration::from_secs(5),
            limit,
        };
        let check = || async move {
            let live = self.get(id).await?;
            let (done, status) = match (goal, &live) {
                (Goal::Ready, None) => (false, "not found".to_string()),
                (Goal::Ready, Some(live)) => {
                    readiness(id, &serde_json::to_value(live).unwrap_or(Value::Null))
                }
                (Goal::Deleted, None) => (true, "deleted".to_string()),
                (Goal::Deleted, Some(live)) => (false, deletion_status(id, live)),
            };
            Ok(if done {
                Poll::Done(Vec::new())
            } else {
                Poll::Waiting(status)
            })
        };
        let what = match goal {
            Goal::Ready => "to become ready",
            Goal::Deleted => "to be deleted",
        };
        poll(backoff, progress, check, |status| {
            ApiError::new(
                format!(
                    "timed out after {} waiting for {id} {what}",
                    humantime::format_duration(Duration::from_secs(limit.as_secs()))
                ),
                ErrorClass::Timeout,
                format!("last seen: {status}"),
            )
        })
        .await
    }

    /// Objects of `platform` found by its label, of every kind comfyplat renders whose API
    /// the cluster serves; the kinds are listed at once.
    pub async fn list_owned(&self, platform: &str) -> Result<Vec<Id>, ApiError> {
        let selector = format!("{PLATFORM_LABEL}={platform}");
        let selector = selector.as_str();
        let lists = KINDS
            .iter()
            .map(|(api_version, kind, _, namespaced)| async move {
                let operation = format!("failed to list {kind} objects labelled {selector}");
                let list = self
                    .call(&operation, |client| async move {
                        let resource = api_resource(api_version, kind);
                        let api: Api<DynamicObject> = Api::all_with(client, &resource);
                        match api.list(&ListParams::default().labels(selector)).await {
                            Ok(list) => Ok(list.items),
                            Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
                            Err(error) => Err(error),
                        }
                    })
                    .await?;
                Ok::<_, ApiError>(
                    list.into_iter()
                        .map(|object| {
                            let namespace = if *namespaced {
                                object.metadata.namespace.clone().unwrap_or_default()
                            } else {
                                String::new()
                            };
                            Id::new(
                                api_version,
                                kind,
                                &namespace,
                                &object.metadata.name.clone().unwrap_or_default(),
                            )
                        })
                        .collect::<Vec<_>>(),
                )
            });
        Ok(futures::future::try_join_all(lists)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    /// What the cluster must run for the platform: each problem is one line saying what is
    /// missing and how to install it; warnings do not stop the plan. The checks run at once.
    pub async fn preflight(&self, csi_addon_installed: bool) -> Result<Preflight, ApiError> {
        let karpenter = |group: &'static str, kind: &'static str| async move {
            let served = self
                .call("failed to read the cluster's APIs", |client| async move {
                    let gvk = GroupVersionKind::gvk(group, "v1", kind);
                    match kube::discovery::pinned_kind(&client, &gvk).await {
                        Ok(_) => Ok(None),
                        Err(kube::Error::Api(status)) if status.code != 404 => {
                            Err(kube::Error::Api(status))
                        }
                        Err(kube::Error::Api(_) | kube::Error::Discovery(_)) => {
                            let versions: Vec<String> = kube::discovery::group(&client, group)
                                .await
                                .map(|g| g.versions().map(str::to_string).collect())
                                .unwrap_or_default();
                            Ok(Some(versions))
                        }
                        Err(error) => Err(error),
                    }
                })
                .await?;
            Ok::<_, ApiError>(served.map(|served| {
                if served.is_empty() {
                    format!(
                        "Karpenter is not installed: the cluster serves no `{group}/v1` {kind}; install Karpenter 1.x (https://karpenter.sh/docs/getting-started/)"
                    )
                } else {
                    format!(
                        "Karpenter serves only `{group}/{}`: comfyplat needs `{group}/v1` {kind}; upgrade Karpenter to 1.1 or later (https://karpenter.sh/docs/upgrading/v1-migration/)",
                        served.join("`, `")
                    )
                }
            }))
        };
        let exists = |api_version: &'static str, kind: &'static str, name: &'static str| async move {
            let operation = format!("failed to read {kind} {name}");
            self.call(&operation, |client| async move {
                let resource = api_resource(api_version, kind);
                let api: Api<DynamicObject> = Api::all_with(client, &resource);
                api.get_opt(name).await.map(|found| found.is_some())
            })
            .await
        };
        let device_plugin = self.call("failed to list DaemonSets", |client| async move {
            let resource = api_resource("apps/v1", "DaemonSet");
            let all: Api<DynamicObject> = Api::all_with(client, &resource);
            match all.list(&ListParams::default()).await {
                Ok(list) => Ok(list.items.iter().any(|ds| {
                    ds.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| n.contains("nvidia-device-plugin"))
                })),
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
                Err(error) => Err(error),
            }
        });
        let (pools, classes, ingress_class, driver, plugin) = tokio::try_join!(
            karpenter("karpenter.sh", "NodePool"),
            karpenter("karpenter.k8s.aws", "EC2NodeClass"),
            exists("networking.k8s.io/v1", "IngressClass", "alb"),
            exists("storage.k8s.io/v1", "CSIDriver", "s3.csi.aws.com"),
            device_plugin,
        )?;
        let mut report = Preflight::default();
        report.problems.extend(pools);
        report.problems.extend(classes);
        if !ingress_class {
            report.problems.push("IngressClass `alb` not found: install the AWS Load Balancer Controller (https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/deploy/installation/)".to_string());
        }
        if !driver && csi_addon_installed {
            report.problems.push("CSIDriver `s3.csi.aws.com` not found although the aws-mountpoint-s3-csi-driver add-on is installed: check the add-on's health (`aws eks describe-addon`) and its pods in kube-system".to_string());
        }
        if !plugin {
            report.warnings.push("no NVIDIA device plugin DaemonSet found: GPU pods would stay Pending; install it (https://github.com/NVIDIA/k8s-device-plugin#deployment-via-helm) or the NVIDIA GPU Operator".to_string());
        }
        Ok(report)
    }
}

/// The result of [`Kube::preflight`].
#[derive(Debug, Default)]
pub struct Preflight {
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

/// Kinds that are waited for after an apply.
/// Read-only facts of a live object: an Ingress's load balancer hostname.
fn attributes(object: &Value) -> crate::model::Fields {
    let mut attributes = crate::model::Fields::new();
    if let Some(hostname) = object
        .pointer("/status/loadBalancer/ingress/0/hostname")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
    {
        attributes.insert(
            crate::model::kubernetes::INGRESS_HOSTNAME.to_string(),
            Value::String(hostname.to_string()),
        );
    }
    attributes
}

fn needs_wait(id: &Id) -> bool {
    matches!(
        id.kind.as_str(),
        "Deployment" | "Ingress" | "EC2NodeClass" | "NodePool"
    )
}

/// Whether an object is ready, and what to say about it.
fn readiness(id: &Id, object: &Value) -> (bool, String) {
    let status = object.get("status").unwrap_or(&Value::Null);
    match id.kind.as_str() {
        "Deployment" => {
            let number = |v: &Value, key: &str| v.get(key).and_then(Value::as_i64).unwrap_or(0);
            let spec = object.get("spec").unwrap_or(&Value::Null);
            let wanted = spec.get("replicas").and_then(Value::as_i64).unwrap_or(1);
            let generation = object
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let observed = number(status, "observedGeneration");
            let updated = number(status, "updatedReplicas");
            let available = number(status, "availableReplicas");
            let done = observed >= generation && updated >= wanted && available >= wanted;
            (
                done,
                format!(
                    "{available}/{wanted} available{}",
                    condition(status, "Available")
                        .map(|c| format!("; {c}"))
                        .unwrap_or_default()
                ),
            )
        }
        "Ingress" => {
            let hostname = status
                .pointer("/loadBalancer/ingress/0/hostname")
                .and_then(Value::as_str);
            match hostname {
                Some(host) => (true, format!("load balancer {host}")),
                None => (
                    false,
                    "waiting for the AWS Load Balancer Controller to give it a load balancer"
                        .to_string(),
                ),
            }
        }
        _ => match condition(status, "Ready") {
            Some(text) => (text.starts_with("Ready=True"), text),
            None => (false, "no Ready condition yet".to_string()),
        },
    }
}

/// `Type=Status (Reason): message` of a status condition.
fn condition(status: &Value, wanted: &str) -> Option<String> {
    let conditions = status.get("conditions")?.as_array()?;
    let found = conditions
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(wanted))?;
    let text = |key: &str| found.get(key).and_then(Value::as_str).unwrap_or_default();
    let mut line = format!("{wanted}={}", text("status"));
    if !text("reason").is_empty() {
        line.push_str(&format!(" ({})", text("reason")));
    }
    if !text("message").is_empty() {
        line.push_str(&format!(": {}", text("message")));
    }
    Some(line)
}

fn deletion_status(id: &Id, object: &DynamicObject) -> String {
    let finalizers = object.metadata.finalizers.clone().unwrap_or_default();
    if finalizers.is_empty() {
        return "deleting".to_string();
    }
    let who = match id.kind.as_str() {
        "Ingress" => " (the AWS Load Balancer Controller deletes the ALB)",
        "NodePool" => " (Karpenter terminates the pool's nodes)",
        "PersistentVolumeClaim" => " (pods still use the claim)",
        "PersistentVolume" => " (a claim is still bound to the volume)",
        _ => "",
    };
    format!("waiting for finalizers {}{who}", finalizers.join(", "))
}

/// The API of an object.
fn api(client: kube::Client, id: &Id) -> Api<DynamicObject> {
    let resource = api_resource(&id.api_version, &id.kind);
    if id.namespace.is_empty() {
        Api::all_with(client, &resource)
    } else {
        Api::namespaced_with(client, &id.namespace, &resource)
    }
}

/// Whether a failed call is worth another attempt: throttling, server errors, an update
/// conflict (not a field manager's), a lost connection.
fn retryable(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => match status.code {
            429 | 500 | 502 | 503 | 504 => true,
            409 => status.reason == "Conflict" && !status.message.starts_with("Apply failed"),
            _ => false,
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// The API resource of a kind comfyplat renders (or reads: IngressClass, CSIDriver, DaemonSet).
fn api_resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group.to_string(), version.to_string()),
        None => (String::new(), api_version.to_string()),
    };
    let plural = match kind_info(api_version, kind) {
        Some((plural, _)) => plural.to_string(),
        None => {
            let lower = kind.to_ascii_lowercase();
            if lower.ends_with('s') {
                format!("{lower}es")
            } else {
                format!("{lower}s")
            }
        }
    };
    ApiResource {
        group,
        version,
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        plural,
    }
}

/// The DER certificates of a base64 PEM bundle (EKS `certificateAuthority.data`).
fn certificates(data: &str) -> Option<Vec<Vec<u8>>> {
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    let pem = String::from_utf8(engine.decode(data.trim()).ok()?).ok()?;
    let mut roots = Vec::new();
    let mut body: Option<String> = None;
    for line in pem.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN CERTIFICATE") {
            body = Some(String::new());
        } else if line.starts_with("-----END CERTIFICATE") {
            roots.push(engine.decode(body.take()?).ok()?);
        } else if let Some(body) = body.as_mut() {
            body.push_str(line);
        }
    }
    (!roots.is_empty()).then_some(roots)
}

fn normalize(url: &str) -> String {
    url.trim_end_matches('/').to_ascii_lowercase()
}

/// A kube-rs error as an [`ApiError`]: Status codes map to classes like AWS errors do; the
/// kube-rs error stays under the message.
fn kube_error(operation: impl Into<String>, error: kube::Error) -> ApiError {
    let operation = operation.into();
    match &error {
        kube::Error::Api(status) => {
            let class = match status.code {
                401 => ErrorClass::AccessDenied,
                code => status_class(code),
            };
            let mut cause = format!("{} ({})", status.message, status.reason);
            if status.code == 401 {
                cause.push_str(": the cluster does not know these AWS credentials; give the caller an EKS access entry (`access:` in platform.yaml, policy cluster-admin)");
            }
            if status.code == 409
                && status.reason == "Conflict"
                && status.message.starts_with("Apply failed")
            {
                cause.push_str("; another field manager changed these fields: run apply with `--force-conflicts` to take them back");
            }
            let code = Some(status.reason.clone());
            let mut error = ApiError::new(operation, class, cause).caused_by(error);
            error.code = code;
            error
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            let message = crate::errors::chain(&error);
            ApiError::new(operation, ErrorClass::Unreachable, message).caused_by(error)
        }
        _ => {
            let message = crate::errors::chain(&error);
            ApiError::new(operation, ErrorClass::Rejected, message).caused_by(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Id {
        Id::new("apps/v1", "Deployment", "comfyui", "comfyui")
    }

    #[test]
    fn deployments_are_ready_when_the_current_generation_is_available() {
        let object = json!({
            "metadata": {"generation": 2},
            "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 1,
                "conditions": [{"type": "Available", "status": "False",
                    "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."}]},
        });
        let (ready, status) = readiness(&deployment(), &object);
        assert!(!ready);
        assert_eq!(
            status,
            "1/2 available; Available=False (MinimumReplicasUnavailable): Deployment does not have minimum availability."
        );
        let object = json!({"metadata": {"generation": 3}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 3, "updatedReplicas": 1, "availableReplicas": 1}});
        assert!(readiness(&deployment(), &object).0);
    }

    #[test]
    fn pem_bundles_become_der_roots() {
        use base64::Engine;
        let der = [0x30u8, 0x82, 0x01, 0x0a];
        let b64 = base64::engine::general_purpose::STANDARD;
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            b64.encode(der)
        );
        let roots = certificates(&b64.encode(pem)).expect("roots");
        assert_eq!(roots, vec![der.to_vec()]);
        assert!(certificates("not base64!").is_none());
    }
}
