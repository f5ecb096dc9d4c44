//! Kubernetes objects: the Karpenter node class and pool and the ComfyUI workload, rendered
//! from the templates (see [`crate::model::kubernetes`] for the context and the flat field
//! view), with quantities in the API server's canonical form.
//!
//! Dependencies give the apply order and, reversed, the destroy order: the Ingress (its
//! ALB) goes before the workload, the workload before its claims, claims before their
//! volumes, the node pool before its node class, all of it before the AWS side.
//!
//! Replacement: the fields kube-apiserver refuses to change in place (a volume's source
//! and claim, a claim's spec but for its requests, a Deployment's selector, a Service's
//! cluster IP, an IngressClass's controller, a NodePool's node class group and kind) make
//! the object `-/+`. A claim is replaced with its volume (a bound claim never binds to a
//! new volume), and a workload with a claim its pods mount (the claim cannot go while pods
//! use it).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{eks_access_entry, eks_addon, eks_pod_identity_association, iam_role_policy};
use crate::config::S3_CSI_DRIVER;
use crate::model::kubernetes::{
    INGRESS_HOSTNAME, KINDS, MANIFEST, PLATFORM_LABEL, context, kind_info, object_address,
    object_fields,
};
use crate::model::{
    Address, Context, Desired, Live, ModelError, Output, Resource, ResourceKind, path_under,
    quantity,
};
use crate::templates::{self, TemplateError};

/// `namespace` is empty for cluster-scoped kinds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Id {
    pub api_version: String,
    #[serde(rename = "object_kind")]
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

impl Id {
    pub fn new(api_version: &str, kind: &str, namespace: &str, name: &str) -> Id {
        Id {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    pub fn address(&self) -> Address {
        object_address(&self.api_version, &self.kind, &self.namespace, &self.name)
    }
}

/// The persistent volume sources of a PersistentVolume's spec: immutable once created.
const VOLUME_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

impl ResourceKind for Id {
    const NOUN: &'static str = "Kubernetes object";
    const OUTPUTS_NEED_LIVE: bool = true;

    fn forces_replacement(&self, path: &str) -> bool {
        match self.kind.as_str() {
            "PersistentVolume" => {
                VOLUME_SOURCES
                    .iter()
                    .any(|source| path_under(path, &format!("spec.{source}")))
                    || ["spec.claimRef", "spec.volumeMode", "spec.nodeAffinity"]
                        .iter()
                        .any(|prefix| path_under(path, prefix))
            }
            "PersistentVolumeClaim" => {
                path_under(path, "spec")
                    && !path_under(path, "spec.resources")
                    && !path_under(path, "spec.volumeAttributesClassName")
            }
            "Deployment" | "DaemonSet" | "StatefulSet" => path_under(path, "spec.selector"),
            "Service" => {
                path_under(path, "spec.clusterIP") || path_under(path, "spec.clusterIPs")
            }
            "IngressClass" => path_under(path, "spec.controller"),
            "NodePool" => {
                path_under(path, "spec.template.spec.nodeClassRef.group")
                    || path_under(path, "spec.template.spec.nodeClassRef.kind")
            }
            _ => false,
        }
    }

    fn desired(context_: &Context, desired: &mut Desired) -> Result<(), ModelError> {
        let Some(values) = context(context_.platform, context_.environment) else {
            return Ok(());
        };
        let rendered = templates::render(&values, context_.templates)?;
        let aws: BTreeSet<Address> = desired.resources.iter().map(|r| r.address.clone()).collect();
        let mut objects = Vec::new();
        for item in rendered {
            objects.push(resource(item, &context_.platform.name)?);
        }
        link(&mut objects, &aws);
        desired.resources.extend(objects);
        Ok(())
    }

    fn outputs(&self, _address: &Address, live: Option<&Live>) -> Vec<Output> {
        if self.kind != "Ingress" {
            return Vec::new();
        }
        let Some(live) = live else {
            return Vec::new();
        };
        let Some(hostname) = live
            .attributes
            .get(INGRESS_HOSTNAME)
            .and_then(Value::as_str)
        else {
            return Vec::new();
        };
        let cloudfront_only = live
            .fields
            .keys()
            .any(|k| k.starts_with("metadata.annotations.alb.ingress.kubernetes.io/conditions."));
        vec![
            Output::new("load_balancer.hostname", hostname),
            Output::new("load_balancer.url", format!("http://{hostname}")).url(2),
            Output::new("load_balancer.cloudfront_only", cloudfront_only),
        ]
    }
}

/// A rendered object as a resource, checked to be a kind comfyplat manages and to carry
/// the platform's label.
fn resource(item: templates::Rendered, platform: &str) -> Result<Resource, ModelError> {
    let mut object = item.object;
    quantity::canonicalize_object(&mut object);
    let text = |path: &str| {
        object
            .pointer(path)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let api_version = text("/apiVersion");
    let kind = text("/kind");
    let name = text("/metadata/name");
    let refused = |message: String| {
        ModelError::Template(TemplateError {
            template: item.template.clone(),
            line: None,
            message,
        })
    };
    let Some((_, namespaced)) = kind_info(&api_version, &kind) else {
        return Err(refused(format!(
            "comfyplat does not manage `{kind}` objects of `{api_version}`; it manages {}",
            KINDS
                .iter()
                .map(|(v, k, _, _)| format!("{k} ({v})"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let namespace = if namespaced {
        let namespace = text("/metadata/namespace");
        if namespace.is_empty() {
            return Err(refused(format!("{kind} `{name}` has no metadata.namespace")));
        }
        namespace
    } else {
        String::new()
    };
    if object
        .pointer("/metadata/labels")
        .and_then(|l| l.get(PLATFORM_LABEL))
        .and_then(Value::as_str)
        != Some(platform)
    {
        return Err(refused(format!(
            "{kind} `{name}` lacks the label `{PLATFORM_LABEL}: {platform}`; comfyplat finds its objects by it"
        )));
    }
    let id = Id::new(&api_version, &kind, &namespace, &name);
    let mut resource = Resource::new(id.address(), id, object_fields(&object));
    resource.parameters.insert(MANIFEST.to_string(), object);
    Ok(resource)
}

/// Dependencies, and what is replaced together.
fn link(resources: &mut [Resource], aws: &BTreeSet<Address>) {
    // (address, kind, name, namespace) of every object.
    let all: Vec<(Address, String, String, String)> = resources
        .iter()
        .filter_map(|r| match &r.identity {
            crate::model::Identity::K8sObject(id) => Some((
                r.address.clone(),
                id.kind.clone(),
                id.name.clone(),
                id.namespace.clone(),
            )),
            _ => None,
        })
        .collect();
    let find = |kind: &str, name: &str, namespace: &str| -> Vec<Address> {
        all.iter()
            .filter(|(_, k, n, ns)| k == kind && n == name && (namespace.is_empty() || ns == namespace))
            .map(|(a, ..)| a.clone())
            .collect()
    };
    let of_kind = |kind: &str| -> Vec<Address> {
        all.iter()
            .filter(|(_, k, ..)| k == kind)
            .map(|(a, ..)| a.clone())
            .collect()
    };
    let known = |names: &[Address]| -> Vec<Address> {
        names.iter().filter(|a| aws.contains(a)).cloned().collect()
    };
    let buckets: Vec<Address> = aws
        .iter()
        .filter(|a| a.0.starts_with("s3.bucket."))
        .cloned()
        .collect();
    for resource in resources.iter_mut() {
        let crate::model::Identity::K8sObject(id) = &resource.identity else {
            continue;
        };
        let manifest = resource.parameters.get(MANIFEST).cloned().unwrap_or(Value::Null);
        let mut depends: Vec<Address> = Vec::new();
        let mut replaced_with: Vec<Address> = Vec::new();
        if !id.namespace.is_empty() {
            depends.extend(find("Namespace", &id.namespace, ""));
        }
        match id.kind.as_str() {
            "EC2NodeClass" => depends.extend(known(&[Address::new(
                eks_access_entry::NODE_ACCESS_ENTRY,
            )])),
            "DaemonSet" => {
                // The model agent: its service account, script and bucket access first.
                depends.extend(of_kind("ServiceAccount"));
                depends.extend(of_kind("ConfigMap"));
                depends.extend(of_kind("NodePool"));
                depends.extend(known(&[
                    Address::new(eks_pod_identity_association::AGENT_ASSOCIATION),
                    Address::new(iam_role_policy::AGENT_POLICY),
                ]));
            }
            "NodePool" => depends.extend(of_kind("EC2NodeClass")),
            "PersistentVolume" => {
                depends.extend(known(&[
                    eks_addon::address(S3_CSI_DRIVER),
                    Address::new(iam_role_policy::CSI_POLICY),
                ]));
                depends.extend(buckets.iter().cloned());
            }
            "PersistentVolumeClaim" => {
                // Its own volume only, so that removing another one changes nothing here.
                let volume = manifest
                    .pointer("/spec/volumeName")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let volumes = find("PersistentVolume", volume, "");
                depends.extend(volumes.iter().cloned());
                replaced_with.extend(volumes);
            }
            "Deployment" => {
                depends.extend(of_kind("ServiceAccount"));
                depends.extend(of_kind("NodePool"));
                // Its pods wait for the model agent's first sync on their node.
                depends.extend(of_kind("DaemonSet"));
                let claims: Vec<Address> = manifest
                    .pointer("/spec/template/spec/volumes")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.pointer("/persistentVolumeClaim/claimName"))
                    .filter_map(Value::as_str)
                    .flat_map(|claim| find("PersistentVolumeClaim", claim, &id.namespace))
                    .collect();
                depends.extend(claims.iter().cloned());
                replaced_with.extend(claims);
            }
            "Ingress" => {
                depends.extend(of_kind("Service"));
                depends.extend(of_kind("Deployment"));
            }
            _ => {}
        }
        depends.retain(|d| d != &resource.address);
        depends.sort();
        depends.dedup();
        replaced_with.sort();
        replaced_with.dedup();
        resource.depends_on = depends;
        resource.replaced_with = replaced_with;
    }
}

/// The Ingress among the resources so far, for the kinds that front it.
pub fn ingress(desired: &Desired) -> Option<&Resource> {
    desired.resources.iter().find(
        |r| matches!(&r.identity, crate::model::Identity::K8sObject(id) if id.kind == "Ingress"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: &str) -> Id {
        Id::new("v1", kind, "comfyui", "x")
    }

    #[test]
    fn the_fields_the_api_server_refuses_to_change_force_replacement() {
        let pv = object("PersistentVolume");
        assert!(pv.forces_replacement("spec.csi.volumeAttributes.bucketName"));
        assert!(pv.forces_replacement("spec.claimRef.name"));
        assert!(!pv.forces_replacement("spec.capacity.storage"));
        assert!(!pv.forces_replacement("spec.mountOptions"));
        assert!(!pv.forces_replacement("spec.csiX"));
        let pvc = object("PersistentVolumeClaim");
        assert!(pvc.forces_replacement("spec.volumeName"));
        assert!(pvc.forces_replacement("spec.accessModes"));
        assert!(!pvc.forces_replacement("spec.resources.requests.storage"));
        assert!(!pvc.forces_replacement("metadata.labels.team"));
        let deployment = Id::new("apps/v1", "Deployment", "comfyui", "x");
        assert!(deployment.forces_replacement("spec.selector.matchLabels.app"));
        assert!(!deployment.forces_replacement("spec.replicas"));
        let pool = Id::new("karpenter.sh/v1", "NodePool", "", "x");
        assert!(pool.forces_replacement("spec.template.spec.nodeClassRef.group"));
        assert!(!pool.forces_replacement("spec.template.spec.nodeClassRef.name"));
    }
}
