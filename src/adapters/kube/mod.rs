//! The Kubernetes API of the adopted cluster, through kube-rs.
//!
//! Connecting: by default straight to the EKS endpoint with the cluster's CA and a bearer
//! token presigned from the AWS credentials ([`token`]), made anew before it expires; or
//! through a kubeconfig, whose server must then be the cluster's endpoint.
//!
//! Objects are read and written as untyped JSON ([`DynamicObject`]) with the plural and
//! scope comfyplat knows for each kind it renders. Writes are server-side apply under field
//! manager `comfyplat`. Like the AWS adapters, nothing here prints: waits report through a
//! callback.

mod token;

use std::time::{Duration, Instant};

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use serde_json::Value;
use tokio::sync::Mutex;

use super::{ApiError, Aws, Backoff, ErrorClass, Poll, poll, status_class};
use crate::model::kubernetes::{KINDS, PLATFORM_LABEL, kind_info, object_fields};
use crate::model::{
    ClusterFacts, Identity, Live, ObjectGoal, Observation, Owner, Pending, Resource,
};

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
    /// How long a wait for readiness or deletion may take.
    pub wait_timeout: Duration,
}

struct Refresh {
    config: aws_config::SdkConfig,
    cluster: String,
    region: String,
    partition: String,
    endpoint: http::Uri,
    roots: Vec<Vec<u8>>,
}

impl Refresh {
    async fn client(&self) -> Result<kube::Client, ApiError> {
        let token =
            token::token(&self.config, &self.cluster, &self.region, &self.partition).await?;
        let mut config = kube::Config::new(self.endpoint.clone());
        config.root_cert = Some(self.roots.clone());
        config.auth_info.token = Some(secrecy::SecretString::from(token));
        config.connect_timeout = Some(Duration::from_secs(10));
        config.read_timeout = Some(Duration::from_secs(60));
        kube::Client::try_from(config).map_err(|e| {
            ApiError::new(
                format!("failed to set up a Kubernetes client for {}", self.endpoint),
                ErrorClass::Rejected,
                crate::ui::error_chain(&e),
            )
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
        wait_timeout: Duration,
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
            wait_timeout,
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
        wait_timeout: Duration,
    ) -> Result<Kube, KubeconfigError> {
        let shown = path.display().to_string();
        let read_error = |message: String| KubeconfigError::Read {
            path: shown.clone(),
            message,
        };
        let kubeconfig = kube::config::Kubeconfig::read_from(path)
            .map_err(|e| read_error(crate::ui::error_chain(&e)))?;
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
            .map_err(|e| read_error(crate::ui::error_chain(&e)))?;
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
        let client =
            kube::Client::try_from(config).map_err(|e| read_error(crate::ui::error_chain(&e)))?;
        Ok(Kube {
            client: Mutex::new((client, Instant::now())),
            refresh: None,
            server,
            wait_timeout,
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

    async fn api(&self, identity: &Identity) -> Result<(Api<DynamicObject>, String), ApiError> {
        let Identity::K8sObject {
            api_version,
            kind,
            namespace,
            name,
        } = identity
        else {
            return Err(ApiError::new(
                format!("`{identity}` is not a Kubernetes object"),
                ErrorClass::Rejected,
                "internal error",
            ));
        };
        let client = self.client().await?;
        let resource = api_resource(api_version, kind);
        let api = if namespace.is_empty() {
            Api::all_with(client, &resource)
        } else {
            Api::namespaced_with(client, namespace, &resource)
        };
        Ok((api, name.clone()))
    }

    /// The live object, in the model's terms.
    pub async fn observe(&self, identity: &Identity) -> Result<Observation, ApiError> {
        let (api, name) = self.api(identity).await?;
        let object = api
            .get_opt(&name)
            .await
            .map_err(|e| kube_error(format!("failed to read {identity}"), e))?;
        let Some(object) = object else {
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

    /// Server-side apply of the resource's manifest. `force` takes over fields another
    /// manager set (drift being reverted, or `--force-conflicts`).
    pub async fn apply(
        &self,
        resource: &Resource,
        force: bool,
    ) -> Result<Option<Pending>, ApiError> {
        let identity = &resource.identity;
        let Some(manifest) = resource.parameters.get(crate::model::kubernetes::MANIFEST) else {
            return Err(ApiError::new(
                format!("failed to apply {identity}"),
                ErrorClass::Rejected,
                "the plan carries no manifest for it (a damaged plan file?)",
            ));
        };
        let (api, name) = self.api(identity).await?;
        let mut params = PatchParams::apply(FIELD_MANAGER);
        params.force = force;
        api.patch(&name, &params, &Patch::Apply(manifest))
            .await
            .map_err(|e| kube_error(format!("failed to apply {identity}"), e))?;
        Ok(needs_wait(identity).then(|| Pending::Kubernetes {
            object: identity.clone(),
            goal: ObjectGoal::Ready,
        }))
    }

    /// Deletes the object; its finalizers (the ALB controller's, Karpenter's) are waited for.
    pub async fn delete(&self, identity: &Identity) -> Result<Option<Pending>, ApiError> {
        let (api, name) = self.api(identity).await?;
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(None),
            Err(e) => return Err(kube_error(format!("failed to delete {identity}"), e)),
        }
        Ok(Some(Pending::Kubernetes {
            object: identity.clone(),
            goal: ObjectGoal::Deleted,
        }))
    }

    /// Waits until the object is ready or gone, within the wait timeout, naming what it
    /// waits for and the object's last condition.
    pub async fn wait(
        &self,
        object: &Identity,
        goal: ObjectGoal,
        progress: &(dyn Fn(String) + Sync),
    ) -> Result<Vec<String>, ApiError> {
        let backoff = Backoff {
            first: Duration::from_millis(200),
            longest: Duration::from_secs(5),
            limit: self.wait_timeout,
        };
        let check = || async move {
            let (api, name) = self.api(object).await?;
            let live = api
                .get_opt(&name)
                .await
                .map_err(|e| kube_error(format!("failed to read {object}"), e))?;
            let (done, status) = match (goal, &live) {
                (ObjectGoal::Ready, None) => (false, "not found".to_string()),
                (ObjectGoal::Ready, Some(live)) => {
                    readiness(object, &serde_json::to_value(live).unwrap_or(Value::Null))
                }
                (ObjectGoal::Deleted, None) => (true, "deleted".to_string()),
                (ObjectGoal::Deleted, Some(live)) => (false, deletion_status(object, live)),
            };
            Ok(if done {
                Poll::Done(Vec::new())
            } else {
                Poll::Waiting(status)
            })
        };
        let what = match goal {
            ObjectGoal::Ready => "to become ready",
            ObjectGoal::Deleted => "to be deleted",
        };
        poll(backoff, progress, check, |status| {
            ApiError::new(
                format!(
                    "timed out after {} waiting for {object} {what}",
                    humantime::format_duration(Duration::from_secs(self.wait_timeout.as_secs()))
                ),
                ErrorClass::Rejected,
                format!("last seen: {status}"),
            )
        })
        .await
    }

    /// Objects of `platform` found by its label, of every kind comfyplat renders whose API
    /// the cluster serves.
    pub async fn list_owned(&self, platform: &str) -> Result<Vec<Identity>, ApiError> {
        let client = self.client().await?;
        let selector = format!("{PLATFORM_LABEL}={platform}");
        let mut found = Vec::new();
        for (api_version, kind, _, namespaced) in KINDS {
            let resource = api_resource(api_version, kind);
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            let list = match api.list(&ListParams::default().labels(&selector)).await {
                Ok(list) => list,
                Err(kube::Error::Api(status)) if status.code == 404 => continue,
                Err(e) => {
                    return Err(kube_error(
                        format!("failed to list {kind} objects labelled {selector}"),
                        e,
                    ));
                }
            };
            for object in list.items {
                found.push(Identity::K8sObject {
                    api_version: api_version.to_string(),
                    kind: kind.to_string(),
                    namespace: if *namespaced {
                        object.metadata.namespace.clone().unwrap_or_default()
                    } else {
                        String::new()
                    },
                    name: object.metadata.name.clone().unwrap_or_default(),
                });
            }
        }
        Ok(found)
    }

    /// What the cluster must run for the platform: each problem is one line saying what is
    /// missing and how to install it; warnings do not stop the plan.
    pub async fn preflight(&self, csi_addon_installed: bool) -> Result<Preflight, ApiError> {
        let client = self.client().await?;
        let mut report = Preflight::default();
        for (group, kind, install) in [
            ("karpenter.sh", "NodePool", "NodePool"),
            ("karpenter.k8s.aws", "EC2NodeClass", "EC2NodeClass"),
        ] {
            let gvk = GroupVersionKind::gvk(group, "v1", kind);
            match kube::discovery::pinned_kind(&client, &gvk).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 401 || status.code == 403 => {
                    return Err(kube_error(
                        format!("failed to read the APIs of cluster {}", self.server),
                        kube::Error::Api(status),
                    ));
                }
                Err(kube::Error::Api(_) | kube::Error::Discovery(_)) => {
                    let served: Vec<String> = kube::discovery::group(&client, group)
                        .await
                        .map(|g| g.versions().map(str::to_string).collect())
                        .unwrap_or_default();
                    report.problems.push(if served.is_empty() {
                        format!(
                            "Karpenter is not installed: the cluster serves no `{group}/v1` {install}; install Karpenter 1.x (https://karpenter.sh/docs/getting-started/)"
                        )
                    } else {
                        format!(
                            "Karpenter serves only `{group}/{}`: comfyplat needs `{group}/v1` {install}; upgrade Karpenter to 1.1 or later (https://karpenter.sh/docs/upgrading/v1-migration/)",
                            served.join("`, `")
                        )
                    });
                }
                Err(e) => return Err(kube_error("failed to read the cluster's APIs", e)),
            }
        }
        let ingress_class = api_resource("networking.k8s.io/v1", "IngressClass");
        let classes: Api<DynamicObject> = Api::all_with(client.clone(), &ingress_class);
        if classes
            .get_opt("alb")
            .await
            .map_err(|e| kube_error("failed to read IngressClass alb", e))?
            .is_none()
        {
            report.problems.push("IngressClass `alb` not found: install the AWS Load Balancer Controller (https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/deploy/installation/)".to_string());
        }
        let csi = api_resource("storage.k8s.io/v1", "CSIDriver");
        let drivers: Api<DynamicObject> = Api::all_with(client.clone(), &csi);
        let has_driver = drivers
            .get_opt("s3.csi.aws.com")
            .await
            .map_err(|e| kube_error("failed to read CSIDriver s3.csi.aws.com", e))?
            .is_some();
        if !has_driver && csi_addon_installed {
            report.problems.push("CSIDriver `s3.csi.aws.com` not found although the aws-mountpoint-s3-csi-driver add-on is installed: check the add-on's health (`aws eks describe-addon`) and its pods in kube-system".to_string());
        }
        let daemonsets = api_resource("apps/v1", "DaemonSet");
        let all: Api<DynamicObject> = Api::all_with(client, &daemonsets);
        let has_plugin = match all.list(&ListParams::default()).await {
            Ok(list) => list.items.iter().any(|ds| {
                ds.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.contains("nvidia-device-plugin"))
            }),
            Err(kube::Error::Api(status)) if status.code == 404 => false,
            Err(e) => return Err(kube_error("failed to list DaemonSets", e)),
        };
        if !has_plugin {
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

fn needs_wait(identity: &Identity) -> bool {
    matches!(identity, Identity::K8sObject { kind, .. }
        if matches!(kind.as_str(), "Deployment" | "Ingress" | "EC2NodeClass" | "NodePool"))
}

/// Whether an object is ready, and what to say about it.
fn readiness(identity: &Identity, object: &Value) -> (bool, String) {
    let Identity::K8sObject { kind, .. } = identity else {
        return (true, String::new());
    };
    let status = object.get("status").unwrap_or(&Value::Null);
    match kind.as_str() {
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

fn deletion_status(identity: &Identity, object: &DynamicObject) -> String {
    let finalizers = object.metadata.finalizers.clone().unwrap_or_default();
    if finalizers.is_empty() {
        return "deleting".to_string();
    }
    let who = match identity {
        Identity::K8sObject { kind, .. } if kind == "Ingress" => {
            " (the AWS Load Balancer Controller deletes the ALB)"
        }
        Identity::K8sObject { kind, .. } if kind == "NodePool" => {
            " (Karpenter terminates the pool's nodes)"
        }
        _ => "",
    };
    format!("waiting for finalizers {}{who}", finalizers.join(", "))
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

/// A kube-rs error as an [`ApiError`]: Status codes map to classes like AWS errors do.
fn kube_error(operation: impl Into<String>, error: kube::Error) -> ApiError {
    let operation = operation.into();
    match error {
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
            let mut error = ApiError::new(operation, class, cause);
            error.code = Some(status.reason.clone());
            error
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => ApiError::new(
            operation,
            ErrorClass::Unreachable,
            crate::ui::error_chain(&error),
        ),
        other => ApiError::new(
            operation,
            ErrorClass::Rejected,
            crate::ui::error_chain(&other),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Identity {
        Identity::K8sObject {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "comfyui".into(),
            name: "comfyui".into(),
        }
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
