#!/usr/bin/env python3
"""A small Kubernetes API server for comfyplat's tests (stdlib only, JSON only, in memory).

    python kube_server.py --port 0 --ready-file PATH [--region us-west-2] [--tls] [--verbose]

Listens on 127.0.0.1 only (port 0 = pick a free port), threaded HTTP/1.1. When serving, writes
atomically
    {"port": N, "pid": PID, "endpoint": "http://127.0.0.1:N"}
to the ready file; runs until SIGTERM/SIGINT, then stops and exits 0.
--tls serves HTTPS instead: a fresh CA and a server certificate for IP 127.0.0.1/localhost
(CA:FALSE leaf signed by the CA, so rustls accepts it) are made with the `openssl` CLI in a
temp dir (removed on exit), and the ready file gets "endpoint": "https://127.0.0.1:N",
"ca_file" (PEM path) and "ca_data" (base64 PEM, the format of EKS certificateAuthority.data).
kubectl never sends bearer tokens over plain http (kubernetes/kubectl#744), so kubectl needs
--tls; other clients may use either.

As a library (aws_emulator.py serves the seeded EKS cluster's API this way, see eks_kube.py):
    server, info = kube_server.start(region, tls=True, port=0, store=Store(region, cloud, on_reset))
    ...  # info = {"port", "endpoint", "ca_file", "ca_data"}
    server.stop()  # also removes the TLS temp dir
Standalone (`python kube_server.py`) the Store has no `cloud`: the controller stand-ins then
act on nothing outside the store (fake ALB hostnames, node classes always Ready). Inside
aws_emulator.py `cloud` is moto (eks_kube.MotoCloud): see Controllers.

Implemented
-----------
Auth
  * Every API request needs `Authorization: Bearer k8s-aws-v1.<base64url, no padding>`
    whose decoded value is an `https://sts.<region>.amazonaws.com/?...` (or global
    `sts.amazonaws.com`) presigned GetCallerIdentity URL: query must carry
    Action=GetCallerIdentity, Version=2011-06-15, X-Amz-Algorithm, X-Amz-Credential,
    X-Amz-Signature, X-Amz-Expires (integer 1..900) and X-Amz-SignedHeaders containing
    `x-k8s-aws-id`. The signature is not verified, expiry is not enforced. Anything else:
    401 Status reason Unauthorized. `make_token()` builds a well-formed token.
Discovery (plain JSON; aggregated-discovery Accept headers are ignored, clients fall back)
  * /version, /api, /api/v1, /apis, /apis/{group}, /apis/{group}/{version}; APIResourceList
    entries carry name, singularName, namespaced, kind, verbs, shortNames, categories and
    subresources (deployments/scale with autoscaling/v1 Scale, */status, pods/log with verbs
    [get]).
  * /openapi/v3 (root + one document per group/version) holds only a PATCH operation per kind
    declaring the fieldValidation parameter (no schemas), and /openapi/v2 is an empty protobuf
    document: just enough for kubectl's validation step to pass (kubectl then sees that the server
    validates fields and sends fieldValidation=Strict, which is honoured: see fieldValidation).
Kinds
  * v1 Namespace, Node (cluster, shortName no, +status), Pod (shortName po, category all, +status,
    +log, see Pods and logs), ServiceAccount, Service, ConfigMap, Secret, PersistentVolume (cluster),
    PersistentVolumeClaim; apps/v1 Deployment (+scale, +status), DaemonSet (+status); networking.k8s.io/v1
    Ingress, IngressClass (cluster), NetworkPolicy; storage.k8s.io/v1 CSIDriver (cluster);
    apiextensions.k8s.io/v1 CustomResourceDefinition (cluster).
  * CRDs: creating one serves every `served` version of its group/plural (scope from
    spec.scope, status subresource when declared), shows it in discovery, and sets
    status.conditions NamesAccepted/Established=True, acceptedNames, storedVersions.
    The storage version's openAPIV3Schema is used for every served version: structural pruning
    (kube_schema.prune: undeclared fields dropped unless x-kubernetes-preserve-unknown-fields,
    apiVersion/kind/metadata kept at the root and in x-kubernetes-embedded-resource objects,
    unknown metadata fields dropped), then `default:` values (properties and items only). No
    other schema validation (types, patterns, enums, required), no conversion (objects are
    stored once per group/plural; apiVersion is rewritten to the version asked for). Custom
    resources are not canonicalised (int-or-string quantities are stored as given). Deleting a
    CRD stops serving it (404) and drops its objects at once.
CRUD
  * GET one; list (labelSelector: =, ==, !=, exists, !key, in, notin; fieldSelector with = or
    !=: metadata.name / metadata.namespace, else 400 `"x" is not a known field selector: only
    "metadata.name", "metadata.namespace"`; pods also spec.nodeName (spec.host is its alias),
    spec.restartPolicy, spec.schedulerName, spec.serviceAccountName, spec.hostNetwork,
    status.phase, status.podIP, status.nominatedNodeName, nodes metadata.name and
    spec.unschedulable, else 400 `field label not supported: x`; the same on watches) per
    namespace or across namespaces (e.g. /apis/apps/v1/deployments, /api/v1/pods); `limit` is
    ignored (no `continue` ever returned).
  * watch=true on list paths: chunked JSON lines {"type": ADDED|MODIFIED|DELETED|BOOKMARK,
    "object"}; resourceVersion (events after it; "" / "0" = current objects first),
    sendInitialEvents=true (initial ADDED + BOOKMARK with k8s.io/initial-events-end),
    timeoutSeconds (default 600); an ERROR event (410 Expired) for a resourceVersion from before
    the last reset. Each 0.1 s poll of a watch counts as a read (see Controllers).
  * POST (generateName supported; 409 AlreadyExists; 404 if the namespace is missing; 403 if
    it is terminating), PUT (409 Conflict on a stale metadata.resourceVersion; 404 when
    missing), DELETE (body DeleteOptions or query: preconditions uid/resourceVersion,
    propagationPolicy/gracePeriodSeconds accepted and ignored; with finalizers the object
    gets deletionTimestamp and stays until its finalizers are empty, answer 202 with the object
    (200 with the object when it is gone at once); deleting a Namespace deletes its objects and
    the Namespace goes when empty; propagationPolicy Orphan on a DaemonSet leaves its pods,
    without the ownerReference), DELETE on a collection
    (deletecollection, honours selectors). `dryRun=All` on every write: computed and
    returned, nothing stored, resourceVersion not bumped.
  * Every object: uid, creationTimestamp, resourceVersion (one global counter, bumped only
    when something changed: no-op writes return the object unchanged), generation (bumped
    when anything outside metadata/status changes, or on deletion). Main-resource writes of
    kinds with a status subresource ignore `status`; /status writes change only status.
  * Defaults: ports[].protocol TCP, Deployment spec.replicas 1, DaemonSet spec.updateStrategy
    {type: RollingUpdate, rollingUpdate {maxUnavailable: 1, maxSurge: 0}} and
    revisionHistoryLimit 10, CSIDriver spec attachRequired true, podInfoOnMount false,
    storageCapacity false, fsGroupPolicy ReadWriteOnceWithFSType, volumeLifecycleModes
    [Persistent], requiresRepublish false, seLinuxMount false, Service type ClusterIP +
    clusterIP(s), Namespace spec.finalizers/status.phase, Secret stringData -> data.
  * Defaults: PersistentVolume spec.persistentVolumeReclaimPolicy Retain and volumeMode
    Filesystem, PersistentVolumeClaim spec.volumeMode Filesystem. Pods (created through the API
    or by the DaemonSet stand-in): restartPolicy Always, terminationGracePeriodSeconds 30,
    dnsPolicy ClusterFirst, securityContext {}, schedulerName default-scheduler,
    serviceAccountName/serviceAccount default, enableServiceLinks true, priority (0;
    system-node-critical 2000001000, system-cluster-critical 2000000000), preemptionPolicy
    PreemptLowerPriority; containers imagePullPolicy (Always for :latest or no tag, else
    IfNotPresent), terminationMessagePath /dev/termination-log, terminationMessagePolicy File,
    resources {}. DaemonSet pod templates themselves are not defaulted.
  * Validation (422 Invalid, errors.NewInvalid's format: `<Kind>[.<group>] "<name>" is invalid:
    <field>: <error>` or `[<e1>, <e2>]`, details.causes {reason FieldValue*, message, field}):
    metadata.name required and DNS-1123 (label for namespaces), Pod spec.containers required,
    Deployment/DaemonSet
    spec.selector present and matching the template labels, CRD name == <plural>.<group>,
    scope Namespaced|Cluster, at least one version. 400 BadRequest for bad JSON,
    kind/apiVersion or name/namespace not matching the URL, bad selectors.
  * Immutable fields, checked on every update path (PUT, merge/JSON/strategic patches,
    server-side apply with or without force; not on /status or /scale), with upstream's paths
    and texts (kube_validation.py lists its sources): PersistentVolume spec.persistentvolumesource
    (the volume source: csi, hostPath, nfs, ...; Forbidden, message with a simplified go-cmp
    diff; setting csi.controllerExpandSecretRef where there was none is allowed), volumeMode and
    nodeAffinity once set (paths `volumeMode`/`nodeAffinity`, as upstream); claimRef,
    storageClassName, capacity, accessModes, mountOptions, reclaim policy may change.
    PersistentVolumeClaim spec (Forbidden `spec is immutable after creation except
    resources.requests and volumeAttributesClassName for bound claims` + diff) except
    volumeName once, storageClassName from unset, and for Bound claims resources.requests.storage
    (not below status.capacity) and volumeAttributesClassName (not back to nil/""); volumeMode.
    Deployment and DaemonSet spec.selector (`Invalid value: v1.LabelSelector{...}: field is
    immutable`). Service spec.clusterIPs[i] `may not change once set` (a changed clusterIP
    alone changes clusterIPs first, as normalizeClusterIPs does; an update that omits them
    keeps the allocated ones), ipFamilies, loadBalancerClass. ConfigMap/Secret data, binaryData
    and immutable when immutable is true, Secret type. IngressClass spec.controller. CSIDriver
    spec.attachRequired (path `spec.attachedRequired`, as upstream) and volumeLifecycleModes.
    CRD spec.group, spec.names.plural, and once Established spec.scope and spec.names.kind.
  * CEL transition rules of custom resources: x-kubernetes-validations rules that use oldSelf
    are evaluated on updates where the old value exists (objects correlated by property,
    map-lists by key), in the forms `self == oldSelf`, `self.a.b == oldSelf.a.b` and
    `has(self.x) == has(oldSelf.x)`; a failed rule is `<path>: Invalid value: "<schema type>":
    <message>` (reason/fieldPath honoured), a missing field `no such key: x evaluating rule:
    <message>`. Rules of other forms, and rules without oldSelf, are not evaluated.
  * Quantities (kube_quantity.py: apimachinery's parsing, rounding and canonical String(),
    checked against quantity_test.go's vectors): every write to a built-in kind stores the
    resource.Quantity fields in canonical form: resources.limits/requests of containers,
    initContainers, ephemeralContainers and pod-level resources, overhead, emptyDir.sizeLimit,
    resourceFieldRef.divisor, ephemeral volume claim templates (pod templates of Deployments and
    DaemonSets), PVC spec.resources.requests/limits and status.capacity/allocatedResources,
    PV spec.capacity (e.g. 0.5 -> 500m, 1024Mi -> 1Gi, 1.5Gi -> 1536Mi, 1e3 stays 1e3). An
    invalid one is refused as the decoder refuses it: POST/PUT 400 `<Kind> in version "v1"
    cannot be handled as a <Kind>: quantities must match the regular expression '...'`
    (or `unable to parse quantity's suffix`), patches 422 on the field `patch`, server-side
    apply 500 `failed to convert new object (...) to proper version: ...`.
  * fieldValidation (query parameter of POST/PUT/PATCH; absent = Warn, as upstream; another
    value: 422 `CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value:
    ...`). Unknown fields of built-in kinds (field names from the `kubernetes` client's models
    of the same Kubernetes version, kube_schema.py) and pruned fields of custom resources, and
    repeated JSON keys: Strict refuses them (POST/PUT 400 `<Kind> in version "<v>" cannot be
    handled as a <Kind>: strict decoding error: unknown field "spec.foo", duplicate field
    "x"`; merge/JSON/strategic patches 422 ` "" is invalid: patch: Invalid value: "<patched
    object JSON | %+v of the patch>": strict decoding error: ...`, JSON patch operations with
    unknown keys `json patch unknown field "foo"`), Warn stores the object without them and
    answers with one `Warning: 299 - "unknown field \"spec.foo\""` header each, Ignore drops
    them silently. Server-side apply refuses fields the type does not declare whatever the
    directive (structured-merge-diff): 500 without a reason, `failed to create typed patch
    object (<ns>/<name>; <group>/<version>, Kind=<Kind>): .spec.foo: field not declared in
    schema` (several: `errors:\n  .a: ...`).
  * Errors are v1 Status objects: NotFound 404, AlreadyExists 409, Conflict 409, Invalid
    422, BadRequest 400, Forbidden 403, MethodNotAllowed 405, UnsupportedMediaType 415,
    Unauthorized 401.
PATCH
  * application/merge-patch+json (RFC 7386); application/json-patch+json (RFC 6902, all
    six ops); application/strategic-merge-patch+json (built-in kinds only, 415 for custom
    resources as in k8s): lists merged by key for containers/initContainers/
    ephemeralContainers/env/volumes/imagePullSecrets (name), volumeMounts (mountPath),
    ports (containerPort or port), finalizers (union), other lists replaced; directives
    $patch: delete/replace, $retainKeys, $deleteFromPrimitiveList/; $setElementOrder ignored.
  * Server-side apply, application/apply-patch+yaml with a JSON body, `fieldManager`
    required (400 otherwise), `force`. metadata.managedFields entries {manager, operation
    Apply|Update, apiVersion, time, fieldsType FieldsV1, fieldsV1, subresource?} in the real
    `f:`/`k:`/`.` format. Apply sets the fields it names and owns them; fields this manager
    owned through Apply but no longer names are removed unless another manager owns them
    (or something under them); a named field whose value differs from the live one and is
    owned by another manager (other name, any operation) -> 409 reason Conflict,
    details.causes[{type: FieldManagerConflict, message, field}] and the message
    `Apply failed with 1 conflict: conflict with "mgr" using apps/v1: .spec.replicas` (several:
    `Apply failed with 2 conflicts: conflicts with "mgr" [with subresource "scale"] using
    apps/v1:\n- .spec.replicas ...`, grouped per manager, as the apiserver words it);
    force=true takes the fields over. Lists are atomic except those keyed lists:
    containers/initContainers/ephemeralContainers, env, volumes, imagePullSecrets by name,
    volumeMounts by mountPath, ports by (containerPort|port, protocol); LabelSelectors
    (matchLabels/matchExpressions) are atomic. Apply to a missing object creates it.
    Non-apply writes (POST, PUT, PATCH, scale, status) record the fields they change for
    `fieldManager` (default: User-Agent up to the first "/", else "unknown") with operation
    Update and take them from other managers. A write that changes metadata.managedFields
    itself (kubectl's client-side-apply -> SSA migration) is honoured as given.
Controllers (synchronous on write, or on reads: a "read" is a GET, a list item or a 0.1 s watch
poll of the object; the object returned by that read is the one from before the controller ran)
  * Deployment: on every write, status {observedGeneration, replicas, readyReplicas,
    availableReplicas, updatedReplicas = spec.replicas, conditions Available=True
    MinimumReplicasAvailable, Progressing=True NewReplicaSetAvailable}. Test hook: when a
    container or init container image ends with `:never-ready` (and replicas > 0) the pods never
    become available: status {observedGeneration, replicas, updatedReplicas,
    unavailableReplicas = spec.replicas} (readyReplicas/availableReplicas omitted, i.e. 0, as the
    apiserver omits zeros), Available=False MinimumReplicasUnavailable "Deployment does not have
    minimum availability.", Progressing=True ReplicaSetUpdated; `kubectl rollout status` then
    times out. Any other image makes it available again on the next write.
  * DaemonSet controller (synchronous after every write or removal of a DaemonSet, Node or Pod,
    including the /__control ones): for each DaemonSet (not terminating) and each Node, as
    NodeShouldRunDaemonPod decides it: every key=value of the pod template's nodeSelector must be
    among the node's labels, its required node affinity (matchExpressions In/NotIn/Exists/DoesNotExist/Gt/Lt,
    matchFields metadata.name) match, and every NoSchedule/NoExecute taint be tolerated by the
    template's tolerations plus the DaemonSet defaults (node.kubernetes.io/not-ready and
    unreachable NoExecute, disk-, memory-, pid-pressure and unschedulable NoSchedule,
    network-unavailable with hostNetwork). ToleratesTaint semantics: effect empty = any, key
    empty = any (with Exists), operator Exists, or Equal/empty with equal values;
    PreferNoSchedule is ignored. Such a node runs exactly one pod of the DaemonSet, named
    `<ds name>-<5 of bcdfghjklmnpqrstvwxz2456789>` (generateName `<ds name>-`), in the
    DaemonSet's namespace (not created while it terminates): labels = template labels +
    controller-revision-hash (a hash of the template) + pod-template-generation, the template's
    annotations, ownerReferences [{apiVersion apps/v1, kind DaemonSet, name, uid, controller
    true, blockOwnerDeletion true}], spec = the template spec + pod defaults, the default
    tolerations appended (when no toleration of that key and effect is there), affinity
    nodeAffinity required matchFields metadata.name In [node] (in every term), nodeName; status
    from the kubelet stand-in (see Pods and logs). A pod on a node that should not run it goes
    (node gone, labels or affinity no longer matching, an untolerated NoExecute taint; an
    untolerated NoSchedule taint added later leaves it running, counted misscheduled); so do
    duplicates. A changed template replaces every pod at once (new names, empty logs, readiness
    from scratch), except with updateStrategy OnDelete (an old pod stays until it is deleted).
    A deleted pod is recreated with a new name. Status, on every write and sync:
    currentNumberScheduled, numberMisscheduled, desiredNumberScheduled, numberReady,
    observedGeneration = generation, and when not 0 (omitempty) updatedNumberScheduled,
    numberAvailable (= ready: minReadySeconds is not honoured), numberUnavailable (desired -
    available). With no nodes that is {currentNumberScheduled 0, numberMisscheduled 0,
    desiredNumberScheduled 0, numberReady 0, observedGeneration}. `kubectl rollout status ds/x`
    waits until updated and available reach desired.
  * Garbage collection, for these pods only: a pod whose controlling DaemonSet (ownerReference
    controller true, kind DaemonSet, apps/v1) no longer exists is deleted at once; the pod GC
    deletes every pod whose spec.nodeName names a node that is gone.
  * Ingress with spec.ingressClassName alb (or annotation kubernetes.io/ingress.class: alb), as
    the AWS Load Balancer Controller: finalizer ingress.k8s.aws/resources on create (owned by
    manager aws-load-balancer-controller); the first read after creation answers without status
    and then sets status.loadBalancer.ingress[0].hostname. Standalone the hostname is
    k8s-<ns>-<name>-<10 hex>.<region>.elb.amazonaws.com and nothing else exists. With a cloud
    (inside aws_emulator.py) the read creates, in moto, what the controller creates: an
    application load balancer k8s-<ns 8>-<name 8>-<10 hex> (alnum only, <= 32 chars; scheme
    from alb.ingress.kubernetes.io/scheme, default internal; subnets from
    alb.ingress.kubernetes.io/subnets, else those of the cluster's VPC tagged
    kubernetes.io/role/internal-elb resp. kubernetes.io/role/elb, one per AZ, else the cluster's
    subnets; security groups from alb.ingress.kubernetes.io/security-groups, else a managed SG of
    the same name allowing TCP 80 from 0.0.0.0/0), one target group per backend service:port
    (HTTP, port = the service port number, target type from
    alb.ingress.kubernetes.io/target-type, default instance), an HTTP:80 listener (default
    action: forward to spec.defaultBackend, else fixed 404) with one rule per path (host-header
    + path-pattern: Prefix / -> /*, Prefix /p -> /p and /p/*, Exact -> the path). Every one is
    tagged elbv2.k8s.aws/cluster=<cluster>, ingress.k8s.aws/stack=<ns>/<name>,
    ingress.k8s.aws/resource= LoadBalancer | <ns>/<name>-<svc>:<port> (TGs) |
    ManagedLBSecurityGroup | 80 (listener) | 80:<priority> (rules), plus the k=v pairs of
    alb.ingress.kubernetes.io/tags. alb.ingress.kubernetes.io/conditions.<service> adds its
    conditions (e.g. an http-header match) to that service's path rules, before host-header and
    path-pattern, as the controller does. The hostname is the load balancer's DNSName. A change
    of the Ingress's spec or alb.ingress.kubernetes.io/* annotations is reconciled on the next
    read (tags replaced, target groups added/removed, the listener's default action and rules
    modified, created or deleted by priority, a new scheme = a new load balancer); a failure is
    logged to stderr (without annotation values) and retried when the Ingress changes.
    The first read after deletion still returns the object (deletionTimestamp set); then (with a
    cloud: after deleting the listener, load balancer, target groups and managed SG) the
    finalizer is removed and the object is gone. A read of a terminating namespace counts as a
    read of the terminating Ingresses in it (so waiting for the namespace to go ends).
  * NodePool (karpenter.sh, once its CRD exists): status.conditions [Ready=True] on every
    write; finalizer karpenter.sh/termination on create (owned by manager karpenter); the first
    read after deletion still returns the object (deletionTimestamp set), then the finalizer is
    removed and the object is gone.
  * EC2NodeClass (karpenter.k8s.aws): status.conditions as Karpenter v1 writes them, sorted by
    type: AMIsReady, InstanceProfileReady, Ready, SecurityGroupsReady, SubnetsReady,
    ValidationSucceeded, each {status, reason (= the type when True), message,
    observedGeneration, lastTransitionTime (kept while the status stays)}. Standalone: all
    True. With a cloud: spec.role must name an IAM role in moto (else InstanceProfileReady=False
    reason RoleNotFound, message 'role "X" not found: NoSuchEntity: The role with name X cannot
    be found.'), spec.instanceProfile an instance profile (else ValidationSucceeded=False
    InstanceProfileNotFound 'Instance profile "X" not found'); then Ready=False reason
    UnhealthyDependents message "<type>=False". Evaluated on every write and, with a cloud,
    again on every read (Karpenter requeues: a role created later makes the class Ready).
  * PersistentVolume / PersistentVolumeClaim (the PV controller, synchronous after every write or
    removal of either): a PV whose claimRef names an existing claim (without uid, or with that
    claim's uid) is Bound to it (claimRef gets kind, uid, apiVersion, resourceVersion; the
    claim gets spec.volumeName); a claim naming a PV without claimRef binds it; a PV whose
    claim is gone is Released and keeps its claimRef (old uid, Retain: nothing reclaims it), so
    a new claim of the same name stays Pending; other PVs are Available (status.phase,
    lastPhaseTransitionTime). Claims are Bound (status accessModes, capacity of the PV) when
    their volume's claimRef is them, else Pending.
  * Storage object in-use protection (StorageObjectInUseProtection admission, pvc-/pv-protection
    controllers): finalizer kubernetes.io/pvc-protection on every PVC and
    kubernetes.io/pv-protection on every PV at creation (not owned in managedFields). After a
    delete request, a read removes the PVC's finalizer once no Deployment with replicas > 0 and
    no DaemonSet in its namespace mounts it (volumes[].persistentVolumeClaim.claimName; the
    templates stand for the pods: Deployments have none here), and the PV's once it is not Bound (its
    claim is gone); the object then goes.
Pods and logs (the kubelet stand-in)
  * A pod that runs (a DaemonSet's, or one POSTed with spec.nodeName of an existing node; other
    POSTed pods stay {phase Pending, qosClass}: nothing schedules them) has status {phase
    Running, conditions [PodReadyToStartContainers, Initialized, Ready, ContainersReady,
    PodScheduled] ({type, status, lastProbeTime null, lastTransitionTime (kept while the status
    stays)}; Ready/ContainersReady False carry reason ContainersNotReady, message `containers with
    unready status: [a b]`), hostIP(s) (the node's InternalIP), podIP(s) (10.0.x.y from the pod
    uid; the host's with hostNetwork), startTime, containerStatuses sorted by name ({name, state
    {running {startedAt}}, lastState {}, ready, restartCount 0, image as containerd reports it
    (docker.io/library/x:latest), imageID, containerID containerd://..., started true}),
    initContainerStatuses terminated Completed, qosClass (BestEffort/Burstable/Guaranteed)}.
  * Readiness: a container with a readinessProbe starts not ready and stays so until the test
    says otherwise (POST /__control/pods/log "ready"); one without is ready at once. A pod is
    Ready when all its containers are; DaemonSet numberReady/numberAvailable follow.
  * Logs are kept per (pod uid, container), each appended line with its time (ns); they survive
    status changes and go with the pod (a recreated pod has a new uid and an empty log).
  * GET /api/v1/namespaces/{ns}/pods/{name}/log (other methods 405), text/plain, as kube-apiserver
    + kubelet answer it: PodLogOptions validated first (422 `PodLogOptions "<pod>" is invalid:
    tailLines: Invalid value: -1: must be greater than or equal to 0`, `limitBytes: Invalid value:
    0: must be greater than 0`, `sinceSeconds: Invalid value: 0: must be greater than 0`, `:
    Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified`; a non-integer
    400 `strconv.ParseInt: parsing "x": invalid syntax`); then the pod (404 `pods "x" not
    found`); then `container` (omitted with one container: that one; with none 400 `a container
    name must be specified for pod X`; with several 400 `a container name must be specified for
    pod X, choose one of: [i1 a b]` (init, regular, ephemeral containers, VisitContainers'
    order); unknown 400 `container Y is not valid for pod X`). A pod without nodeName answers an
    empty body. previous=true: 400 `previous terminated container "c" in pod "X" not found`
    (nothing ever restarts). sinceSeconds / sinceTime (RFC3339) keep the lines appended since;
    tailLines=N the last N lines (0: none); timestamps=true prefixes each line with its time in
    the kubelet's RFC3339Nano with 9 fraction digits (`2026-01-02T03:04:05.123456789Z line`);
    limitBytes cuts the output (timestamps included) after N bytes. Booleans as the apiserver
    converts query parameters ("false"/"0" false, any other value true). follow=true streams
    (chunked): the selected lines, then every line appended later, until the pod goes (e.g.
    deleted: `kubectl logs -f` then exits 0), limitBytes is reached, the client leaves or
    store.log_follow_timeout (10 s) passes.
Test control (no auth; errors are Status objects: 400 BadRequest for a bad body, 404, 409)
  * POST /__control/nodes {"nodes": [{"name": "...", "labels": {...}?, "taints": [{"key",
    "value"?, "effect": NoSchedule|PreferNoSchedule|NoExecute}]?, "capacity": {...}?}]}: creates
    each Node, or replaces the labels, taints and capacity of an existing one (same uid;
    unchanged = no write). A node: metadata.labels = kubernetes.io/hostname=<name>,
    kubernetes.io/os=linux, kubernetes.io/arch=amd64, beta.kubernetes.io/os and arch, then the
    given labels (they win); spec {providerID aws:///<topology.kubernetes.io/zone or
    <region>a>/i-<17 hex>, taints}; status {capacity = allocatable ({cpu 8, ephemeral-storage
    100Gi, memory 32Gi, pods 110} overlaid with the given capacity), conditions MemoryPressure,
    DiskPressure, PIDPressure False and Ready True (reason KubeletReady, message "kubelet is
    posting ready status"), addresses InternalIP (ip-10-0-1-23... names give 10.0.1.23, others
    10.0.x.y from the name) and Hostname, daemonEndpoints, nodeInfo (kubeletVersion = the
    server's, containerd, Amazon Linux 2023, amd64, linux)}. Answer {"nodes": [the Nodes]}.
    Nodes can also be created, labelled, tainted and deleted through the API (a Node POSTed
    without status gets the kubelet's); either way the DaemonSet controller follows.
  * DELETE /__control/nodes/<name>: removes the Node (404 NotFound Status if missing) and,
    through the pod GC, every pod bound to it; answers the Node as it was.
  * POST /__control/pods/log {"namespace"?, "node"?, "pod"?, "selector"?, "container"?,
    "append"?, "ready"?}: the one pod in `namespace` (any if omitted) bound to `node`, named
    `pod`, matching the label `selector` (each filter optional; no match 404, several 409
    Conflict naming them). "append" (text) is added to the log of `container` (may be omitted
    when the pod has one container; else 400 with the apiserver's "a container name must be
    specified" message; an unknown container 400 `container Y is not valid for pod X`), split
    into lines (a trailing part without newline is a line of its own), all with the current
    time; a follow=true reader gets them at once. "ready" (true/false) sets the readiness of
    `container`, or of every container when omitted (containerStatuses[].ready, the pod's
    Ready/ContainersReady conditions, then the DaemonSet's status); 409 if the pod is not
    running. At least one of append/ready. Answers the pod after the change.
  * POST /__control/reset: drops all objects (nodes, pods and logs too), CRD registrations,
    watch history and the request log; recreates namespaces default, kube-system, kube-public,
    kube-node-lease, then
    calls the Store's on_reset (inside aws_emulator.py: the seeded objects come back; objects of
    EKS add-ons do not).
  * GET /__control/requests: [{method, path, query (dict, last value wins), write (method is
    POST/PUT/PATCH/DELETE), dryRun (query dryRun=All)}] of every API request since
    start/reset, in order, including rejected (401) ones; /__control calls are not logged.

Not implemented
---------------
RBAC/impersonation; protobuf bodies (415) except a protobuf v1 Namespace on POST (what
`kubectl create namespace` sends: metadata name/generateName/labels/annotations decoded);
YAML bodies (400); protobuf/Table responses (always JSON; kubectl prints its own NAME/AGE
columns, so no STATUS column shows Terminating); real OpenAPI schemas; aggregated discovery
(kube-rs: use Discovery::run(), not run_aggregated()); replicasets, controllerrevisions, events
and every kind not listed above; pods of Deployments (their status is made up, see Controllers);
pods/exec, attach, portforward, proxy, eviction, binding, ephemeralcontainers, resize; pod
update validation (a pod's spec is mutable here), graceful pod deletion (pods go at once, no
deletionTimestamp), the kube-api-access projected volume, pod phases other than Pending/Running,
restarts and previous logs, log streams per stdout/stderr, log rotation; the node lifecycle
controller (nodes never become NotReady, no taint-based eviction timing, no
node.kubernetes.io/unschedulable taint for spec.unschedulable), node leases, heartbeats
(lastHeartbeatTime is the time of the last change); DaemonSet rollout pacing (maxUnavailable,
maxSurge, minReadySeconds), ControllerRevisions, collisionCount, conditions, adoption of
orphaned pods, managedFields entries of the controllers and the kubelet; admission webhooks; CRD schema validation beyond pruning, defaults and the
transition rules above (no type/pattern/enum/required checks, no other CEL rules, no
ratcheting), conversion; value type checks of built-in kinds (a string where an integer
belongs is stored as sent), Go's omitempty (empty strings are stored as sent); the
field-validation errors' order for patches (sorted here; the apiserver lists them in the
patched object's field order) and line numbers of duplicate keys in server-side apply bodies
(`error strict decoding YAML`, not reported); the go-cmp diff in the PV/PVC immutability
messages (simplified, see kube_validation.py) and the pointer address in the nodeAffinity
one (a fixed fake); the VolumeAttributesClass feature gate is taken as enabled; dynamic
provisioning and matching of claims to unbound PVs by class/size (only claimRef/volumeName
binding), reclaim policies Delete/Recycle, the "Lost" phase; scale subresource of CRs; apply
on subresources (treated as a merge patch); garbage collection/ownerReferences other than
DaemonSet pods; propagationPolicy semantics other than Orphan for DaemonSets; pagination (limit/continue); resourceVersion/
resourceVersionMatch on GET/list (always the latest); set-type lists (`v:` keys, e.g.
finalizers are one atomic field) and `i:` keys; conflicts between two entries of the same
manager name (an Apply never conflicts with its own manager's Update entry); ownership of
the fields controllers write (status, except the ALB and NodePool finalizers); maintenance of
the kubectl.kubernetes.io/last-applied-configuration annotation on server-side apply.
Controller stand-ins, not done: NodeClaims (Karpenter never launches anything: nodes come
from /__control/nodes or the API); EC2NodeClass finalizer karpenter.k8s.aws/termination, status.instanceProfile/amis/
subnets/securityGroups and the instance profile Karpenter would create in IAM; NodePool Ready
depending on its node class; the ALB controller's HTTPS/listen-ports/certificate-arn,
IngressGroups (group.name), the shared backend security group, target registration, events,
and subnet discovery failures (it falls back to the cluster's subnets).
Field sets are schema-less: a map gets its own "." entry only for list items, empty objects
and fields named labels/annotations/data/stringData/binaryData/nodeSelector/matchLabels/
limits/requests/capacity/volumeAttributes/selector/tags/parameters/hard/allocatable (other
objects are treated as structs, as the apiserver does for typed structs).
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime
import hashlib
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit, urlencode
from ready_file import write_json_atomic
from kube_quantity import QuantityError
from kube_schema import (Pairs, go_plus_v, go_quote, load_json, plain, prune, smd_error_text,
                         ssa_unknown_schema, ssa_unknown_typed, to_raw, typed_decode, typed_model,
                         typed_unknown_paths)
from kube_validation import go_string_map, transition_errors, validate_update
import kube_schema

# the kubernetes client's models of the kinds added here (unknown fields, quantities)
kube_schema.MODEL_OF_KIND.setdefault(("", "Pod"), "V1Pod")
kube_schema.MODEL_OF_KIND.setdefault(("", "Node"), "V1Node")

HOST = "127.0.0.1"
ALB_FINALIZER = "ingress.k8s.aws/resources"
ALB_MANAGER = "aws-load-balancer-controller"
KARPENTER_FINALIZER = "karpenter.sh/termination"
KARPENTER_MANAGER = "karpenter"
# (group, plural) -> (finalizer, manager) a controller adds on create and removes, after a
# deletion request, on the next read
CONTROLLER_FINALIZERS = {("networking.k8s.io", "ingresses"): (ALB_FINALIZER, ALB_MANAGER),
                         ("karpenter.sh", "nodepools"): (KARPENTER_FINALIZER, KARPENTER_MANAGER)}
# StorageObjectInUseProtection admission plugin / pvc- and pv-protection controllers
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
STORAGE_PROTECTION = {("", "persistentvolumeclaims"): PVC_PROTECTION, ("", "persistentvolumes"): PV_PROTECTION}
NEVER_READY_SUFFIX = ":never-ready"
MISSING = object()


# --------------------------------------------------------------------------
# tokens
# --------------------------------------------------------------------------


def make_token(cluster: str = "comfyplat", region: str = "us-west-2", *, expires: int = 60,
               signed_headers: str = "host;x-k8s-aws-id") -> str:
    """A well-formed (unsigned, never verified) EKS bearer token for tests."""
    q = {
        "Action": "GetCallerIdentity",
        "Version": "2011-06-15",
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"AKIAIOSFODNN7EXAMPLE/20261126/{region}/sts/aws4_request",
        "X-Amz-Date": "20261126T000000Z",
        "X-Amz-Expires": str(expires),
        "X-Amz-SignedHeaders": signed_headers,
        "X-Amz-Signature": hashlib.sha256(cluster.encode()).hexdigest(),
    }
    url = f"https://sts.{region}.amazonaws.com/?{urlencode(q)}"
    return "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def check_token(header: str | None, region: str) -> str | None:
    """None if the Authorization header holds a well-formed EKS token, else why not."""
    if not header or not header.startswith("Bearer "):
        return "missing bearer token"
    token = header[len("Bearer "):].strip()
    if not token.startswith("k8s-aws-v1."):
        return "token lacks the k8s-aws-v1. prefix"
    raw = token[len("k8s-aws-v1."):]
    if not raw or "=" in raw or not re.fullmatch(r"[A-Za-z0-9_-]+", raw):
        return "token is not base64url without padding"
    try:
        url = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except Exception:
        return "token does not decode"
    parts = urlsplit(url)
    if parts.scheme != "https" or parts.hostname not in (f"sts.{region}.amazonaws.com", "sts.amazonaws.com") \
            or parts.path not in ("", "/"):
        return "token is not an STS URL for this region"
    q = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    if q.get("Action") != "GetCallerIdentity" or q.get("Version") != "2011-06-15":
        return "token is not a GetCallerIdentity request"
    for k in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Expires", "X-Amz-SignedHeaders"):
        if not q.get(k):
            return f"token lacks {k}"
    if not q["X-Amz-Expires"].isdigit() or not 0 < int(q["X-Amz-Expires"]) <= 900:
        return "bad X-Amz-Expires"
    if "x-k8s-aws-id" not in q["X-Amz-SignedHeaders"].lower().split(";"):
        return "x-k8s-aws-id is not a signed header"
    return None


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict:
        s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": self.message, "reason": self.reason, "code": self.code}
        if not self.reason:  # StatusReasonUnknown is "" and omitted (errors that are no Status)
            del s["reason"]
        if self.details is not None:
            s["details"] = self.details
        return s


def not_found_path():
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def bad_request(msg):
    return ApiError(400, "BadRequest", msg)


FIELD_VALIDATION_VALUES = ("", "Ignore", "Strict", "Warn")


class FieldValidation:
    """The fieldValidation directive of one write (default Warn, as upstream) and the warnings it
    produced. Strict: `fail(text)` is raised for the strict decoding errors; Warn: one warning per
    error (deduplicated, as the apiserver's warning recorder does); Ignore: nothing."""

    def __init__(self, directive: str = "Warn"):
        self.directive = directive or "Warn"
        self.warnings: list = []

    def handle(self, errs, fail):
        if not errs:
            return
        if self.directive == "Strict":
            raise fail("strict decoding error: " + ", ".join(errs))
        if self.directive == "Warn":
            for e in errs:
                if e not in self.warnings:
                    self.warnings.append(e)


def warning_header(text: str) -> str:
    """net/http Warning header value as the apiserver writes it: 299 - "<text, \\ and \" escaped>"."""
    return '299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


CAUSE_TYPES = (("Required value", "FieldValueRequired"), ("Forbidden", "FieldValueForbidden"),
               ("Unsupported value", "FieldValueNotSupported"), ("Duplicate value", "FieldValueDuplicate"),
               ("Not found", "FieldValueNotFound"), ("Too long", "FieldValueTooLong"),
               ("Too many", "FieldValueTooMany"), ("Invalid value", "FieldValueInvalid"))


def invalid_status(group, kind, name, causes):
    """errors.NewInvalid: 422 reason Invalid, `<Kind>[.<group>] "<name>" is invalid: <errors>` (one
    error as is, several deduplicated in brackets), details.causes {reason, message, field}."""
    full = []
    for c in causes:
        reason = c.get("reason") or next((t for p, t in CAUSE_TYPES if c["message"].startswith(p)),
                                         "FieldValueInvalid")
        full.append({"reason": reason, "message": c["message"], "field": c["field"]})
    texts = []
    for c in full:
        t = f'{c["field"]}: {c["message"]}'
        if t not in texts:
            texts.append(t)
    agg = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    qual = f"{kind}.{group}" if group else kind
    details = {k: v for k, v in (("name", name), ("group", group), ("kind", kind)) if v}
    details["causes"] = full
    return ApiError(422, "Invalid", f'{qual} "{name}" is invalid: {agg}', details)


def invalid(res, name, causes):
    return invalid_status(res.group, res.kind, name, causes)


# --------------------------------------------------------------------------
# resources
# --------------------------------------------------------------------------

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass
class Res:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short: list = field(default_factory=list)
    categories: list = field(default_factory=list)
    status_sub: bool = False
    scale_sub: bool = False
    log_sub: bool = False
    crd: str | None = None
    singular: str = ""
    schema: dict | None = None

    @property
    def gv(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qual(self):
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def discovery(self):
        out = [{"name": self.plural, "singularName": self.singular or self.kind.lower(),
                "namespaced": self.namespaced, "kind": self.kind, "verbs": ALL_VERBS}]
        if self.short:
            out[0]["shortNames"] = self.short
        if self.categories:
            out[0]["categories"] = self.categories
        if self.status_sub:
            out.append({"name": f"{self.plural}/status", "singularName": "", "namespaced": self.namespaced,
                        "kind": self.kind, "verbs": ["get", "patch", "update"]})
        if self.log_sub:
            out.append({"name": f"{self.plural}/log", "singularName": "", "namespaced": self.namespaced,
                        "kind": self.kind, "verbs": ["get"]})
        if self.scale_sub:
            out.append({"name": f"{self.plural}/scale", "singularName": "", "namespaced": self.namespaced,
                        "group": "autoscaling", "version": "v1", "kind": "Scale",
                        "verbs": ["get", "patch", "update"]})
        return out


BUILTINS = [
    Res("", "v1", "namespaces", "Namespace", False, ["ns"], status_sub=True),
    Res("", "v1", "nodes", "Node", False, ["no"], status_sub=True),
    Res("", "v1", "pods", "Pod", True, ["po"], ["all"], status_sub=True, log_sub=True),
    Res("", "v1", "serviceaccounts", "ServiceAccount", True, ["sa"]),
    Res("", "v1", "services", "Service", True, ["svc"], ["all"], status_sub=True),
    Res("", "v1", "configmaps", "ConfigMap", True, ["cm"]),
    Res("", "v1", "secrets", "Secret", True),
    Res("", "v1", "persistentvolumes", "PersistentVolume", False, ["pv"], status_sub=True),
    Res("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ["pvc"], status_sub=True),
    Res("apps", "v1", "deployments", "Deployment", True, ["deploy"], ["all"], status_sub=True, scale_sub=True),
    Res("apps", "v1", "daemonsets", "DaemonSet", True, ["ds"], ["all"], status_sub=True),
    Res("networking.k8s.io", "v1", "ingresses", "Ingress", True, ["ing"], status_sub=True),
    Res("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
    Res("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ["netpol"]),
    Res("storage.k8s.io", "v1", "csidrivers", "CSIDriver", False),
    Res("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
        ["crd", "crds"], status_sub=True),
]
DEFAULT_NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease"]


def version_priority(v: str):
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (0, 0, 0, v)
    level = {"alpha": 1, "beta": 2, None: 3}[m.group(2)]
    return (1, level, int(m.group(1)), int(m.group(3) or 0))


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


DNS1123_SUB = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def parse_label_selector(s: str):
    reqs = []
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    for p in (x.strip() for x in parts):
        if not p:
            continue
        m = re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", p)
        if m:
            vals = {v.strip() for v in m.group(3).split(",") if v.strip()}
            reqs.append((m.group(2), m.group(1), vals))
            continue
        m = re.fullmatch(r"([\w./-]+)\s*(!=|==|=)\s*([\w./-]*)", p)
        if m:
            reqs.append(("!=" if m.group(2) == "!=" else "=", m.group(1), m.group(3)))
            continue
        m = re.fullmatch(r"(!?)\s*([\w./-]+)", p)
        if m:
            reqs.append(("!" if m.group(1) else "exists", m.group(2), None))
            continue
        raise bad_request(f"unable to parse requirement: {p!r}")
    return reqs


def match_labels(reqs, labels):
    for op, k, v in reqs:
        have = labels.get(k)
        if op == "=" and have != v:
            return False
        if op == "!=" and have == v:
            return False
        if op == "exists" and k not in labels:
            return False
        if op == "!" and k in labels:
            return False
        if op == "in" and have not in v:
            return False
        if op == "notin" and have in v:
            return False
    return True


def parse_field_selector(s: str, res=None):
    """(field path, negated, value) requirements. Pods and nodes have their own field labels
    (FIELD_LABELS, upstream's `field label not supported: X`); other kinds only metadata.name and
    metadata.namespace (DefaultMetaV1FieldSelectorConversion's message)."""
    labels = FIELD_LABELS.get((res.group, res.plural)) if res is not None else None
    reqs = []
    for p in (x.strip() for x in s.split(",")):
        if not p:
            continue
        m = re.fullmatch(r"([\w.]+)\s*(!=|==|=)\s*(.*)", p)
        if not m:
            raise bad_request(f"invalid selector: {p!r}")
        if labels is not None:
            if m.group(1) not in labels:
                raise bad_request(f"field label not supported: {m.group(1)}")
        elif m.group(1) not in ("metadata.name", "metadata.namespace"):
            raise bad_request(f'"{m.group(1)}" is not a known field selector: only "metadata.name", '
                              f'"metadata.namespace"')
        reqs.append((m.group(1), m.group(2) == "!=", m.group(3)))
    return reqs


def match_fields(reqs, obj):
    for path, neg, val in reqs:
        if (field_value(obj, path) == val) == neg:
            return False
    return True


# --------------------------------------------------------------------------
# patches
# --------------------------------------------------------------------------


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


SMP_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
            "volumes": "name", "imagePullSecrets": "name", "volumeMounts": "mountPath"}
SMP_PRIMITIVE_MERGE = {"finalizers"}


def _strip_directives(v):
    if isinstance(v, dict):
        return {k: _strip_directives(x) for k, x in v.items() if not k.startswith("$")}
    if isinstance(v, list):
        return [_strip_directives(x) for x in v if not (isinstance(x, dict) and "$patch" in x)]
    return v


def _smp_key(name, items):
    if name in SMP_KEYS:
        return SMP_KEYS[name]
    if name == "ports" and items and all(isinstance(i, dict) for i in items):
        return "containerPort" if any("containerPort" in i for i in items) else "port"
    return None


def strategic_merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return _strip_directives(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$patch", "$retainKeys"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            out[name] = [x for x in out.get(name) or [] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list):
            out[k] = _smp_list(out.get(k), v, k)
        elif isinstance(v, dict):
            if v.get("$patch") == "delete":
                out.pop(k, None)
            else:
                out[k] = strategic_merge_patch(out.get(k), v)
        else:
            out[k] = v
    if isinstance(patch.get("$retainKeys"), list):
        out = {k: v for k, v in out.items() if k in patch["$retainKeys"]}
    return out


def _smp_list(cur, items, name):
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in items):
        return _strip_directives(items)
    key = _smp_key(name, items)
    if key and isinstance(cur, list):
        result = copy.deepcopy(cur)
        for item in items:
            if not isinstance(item, dict) or key not in item:
                continue
            idx = next((i for i, x in enumerate(result) if isinstance(x, dict) and x.get(key) == item[key]), None)
            if item.get("$patch") == "delete":
                if idx is not None:
                    result.pop(idx)
            elif idx is None:
                result.append(_strip_directives(item))
            else:
                result[idx] = strategic_merge_patch(result[idx], item)
        return result
    if name in SMP_PRIMITIVE_MERGE and isinstance(cur, list):
        return cur + [x for x in items if x not in cur]
    return _strip_directives(items)


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _jp_parent(doc, tokens):
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list) and t.isdigit() and int(t) < len(cur):
            cur = cur[int(t)]
        else:
            raise ApiError(422, "Invalid", f"json patch: path /{'/'.join(tokens)} does not exist")
    return cur


def _jp_get(doc, tokens):
    if not tokens:
        return doc
    parent = _jp_parent(doc, tokens)
    t = tokens[-1]
    if isinstance(parent, dict) and t in parent:
        return parent[t]
    if isinstance(parent, list) and t.isdigit() and int(t) < len(parent):
        return parent[int(t)]
    raise ApiError(422, "Invalid", f"json patch: path /{'/'.join(tokens)} does not exist")


def _jp_remove(doc, tokens):
    parent = _jp_parent(doc, tokens)
    val = _jp_get(doc, tokens)
    if isinstance(parent, dict):
        del parent[tokens[-1]]
    else:
        parent.pop(int(tokens[-1]))
    return val


def _jp_add(doc, tokens, value):
    if not tokens:
        return value
    parent = _jp_parent(doc, tokens)
    t = tokens[-1]
    if isinstance(parent, dict):
        parent[t] = value
    elif isinstance(parent, list):
        if t == "-":
            parent.append(value)
        elif t.isdigit() and int(t) <= len(parent):
            parent.insert(int(t), value)
        else:
            raise ApiError(422, "Invalid", f"json patch: bad index {t}")
    else:
        raise ApiError(422, "Invalid", "json patch: parent is not a container")
    return doc


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "path" not in op:
            raise bad_request(f"invalid json patch operation {op!r}")
        kind, tokens = op.get("op"), _pointer(op["path"])
        if kind == "add":
            doc = _jp_add(doc, tokens, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _jp_remove(doc, tokens)
        elif kind == "replace":
            _jp_get(doc, tokens)
            if not tokens:
                doc = copy.deepcopy(op.get("value"))
            else:
                _jp_remove(doc, tokens)
                doc = _jp_add(doc, tokens, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            src = _pointer(op.get("from", ""))
            val = _jp_remove(doc, src) if kind == "move" else copy.deepcopy(_jp_get(doc, src))
            doc = _jp_add(doc, tokens, val)
        elif kind == "test":
            if _jp_get(doc, tokens) != op.get("value"):
                raise ApiError(422, "Invalid", f"the test operation on {op['path']} failed")
        else:
            raise bad_request(f"unknown json patch op {kind!r}")
    return doc


# --------------------------------------------------------------------------
# field sets (structured-merge-diff, schema-less approximation)
# --------------------------------------------------------------------------

ASSOC_KEYS = {"containers": ("name",), "initContainers": ("name",), "ephemeralContainers": ("name",),
              "env": ("name",), "volumes": ("name",), "imagePullSecrets": ("name",),
              "volumeMounts": ("mountPath",)}
MAP_FIELDS = {"labels", "annotations", "data", "stringData", "binaryData", "nodeSelector", "matchLabels",
              "limits", "requests", "capacity", "volumeAttributes", "selector", "tags", "parameters",
              "hard", "allocatable"}
META_STRIP = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
              "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink")


def assoc_keys(name, items):
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        return None
    keys = ASSOC_KEYS.get(name)
    if name == "ports":
        if all("containerPort" in i for i in items):
            keys = ("containerPort", "protocol")
        elif all("port" in i for i in items):
            keys = ("port", "protocol")
    if not keys or not all(keys[0] in i for i in items):
        return None
    seen = {item_key(i, keys) for i in items}
    return keys if len(seen) == len(items) else None


def item_key(item, keys):
    return "k:" + json.dumps({k: item[k] for k in keys if k in item}, sort_keys=True, separators=(",", ":"))


def is_atomic_dict(v):
    return isinstance(v, dict) and bool(v) and set(v) <= {"matchLabels", "matchExpressions"}


def default_ports(obj):
    """apiserver defaulting of ports[].protocol (TCP) anywhere in the object."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "ports" and isinstance(v, list):
                for p in v:
                    if isinstance(p, dict) and ("containerPort" in p or "port" in p) and "protocol" not in p:
                        p["protocol"] = "TCP"
            default_ports(v)
    elif isinstance(obj, list):
        for v in obj:
            default_ports(v)
    return obj


def fieldset(val, path=(), name=None, out=None):
    out = set() if out is None else out
    if isinstance(val, dict):
        if path and (not val or name in MAP_FIELDS or is_atomic_dict(val)):
            out.add(path)
        if is_atomic_dict(val):
            return out
        for k, v in val.items():
            fieldset(v, path + ("f:" + k,), k, out)
    elif isinstance(val, list):
        keys = assoc_keys(name, val)
        if keys is None:
            out.add(path)
        else:
            for item in val:
                kp = path + (item_key(item, keys),)
                out.add(kp)
                for k, v in item.items():
                    fieldset(v, kp + ("f:" + k,), k, out)
    else:
        out.add(path)
    return out


def get_at(obj, path):
    cur = obj
    for el in path:
        if el.startswith("f:"):
            if not isinstance(cur, dict) or el[2:] not in cur:
                return MISSING
            cur = cur[el[2:]]
        elif el.startswith("k:"):
            want = json.loads(el[2:])
            if not isinstance(cur, list):
                return MISSING
            cur = next((i for i in cur if isinstance(i, dict) and all(i.get(k) == v for k, v in want.items())),
                       MISSING)
            if cur is MISSING:
                return MISSING
        else:
            return MISSING
    return cur


def remove_at(obj, path):
    parent = get_at(obj, path[:-1])
    el = path[-1]
    if el.startswith("f:") and isinstance(parent, dict):
        parent.pop(el[2:], None)
    elif el.startswith("k:") and isinstance(parent, list):
        item = get_at(obj, path)
        if item is not MISSING:
            parent.remove(item)


def tree_to_paths(tree, prefix=()):
    out = set()
    for k, v in (tree or {}).items():
        if k == ".":
            out.add(prefix)
        elif isinstance(v, dict) and v:
            out |= tree_to_paths(v, prefix + (k,))
        else:
            out.add(prefix + (k,))
    return out


def paths_to_tree(paths):
    root = {}
    for p in sorted(paths, key=len):
        node = root
        for el in p:
            node = node.setdefault(el, {})
    for p in paths:
        node = root
        for el in p:
            node = node[el]
        if any(k != "." for k in node):
            node["."] = {}

    def ordered(node):  # the apiserver's order: ".", then the rest sorted
        return {k: ordered(node[k]) for k in sorted(node, key=lambda k: (k != ".", k))}

    return ordered(root)


def path_str(path):
    s = ""
    for el in path:
        if el.startswith("f:"):
            s += "." + el[2:]
        elif el.startswith("k:"):
            s += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(el[2:]).items()) + "]"
    return s


def is_node_member(path, pathset):
    n = len(path)
    return any(len(q) > n and q[:n] == path for q in pathset)


# --------------------------------------------------------------------------
# nodes, pods, the DaemonSet controller and the kubelet (stand-ins)
# --------------------------------------------------------------------------

# utilrand.String's alphabet (generateName suffixes, rand.SafeEncodeString): no vowels, no 0/1/3
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# the kinds whose changes the DaemonSet controller stand-in reacts to
DS_INPUTS = {("apps", "daemonsets"), ("", "nodes"), ("", "pods")}
# util.AddOrUpdateDaemonPodTolerations: every DaemonSet pod tolerates these (network-unavailable
# only with hostNetwork)
DS_DEFAULT_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]
DS_HOST_NETWORK_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                              "effect": "NoSchedule"}
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
PRIORITY_CLASSES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
NODE_CAPACITY = {"cpu": "8", "ephemeral-storage": "100Gi", "memory": "32Gi", "pods": "110"}
LOG_FOLLOW_TIMEOUT = 10.0  # seconds a follow=true log stream stays open at most
# field selectors of the kinds that have more than metadata.name/metadata.namespace
# (pkg/apis/core/v1/conversion.go); other fields: "field label not supported: X"
FIELD_LABELS = {
    ("", "pods"): {"metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy",
                   "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                   "status.podIP", "status.nominatedNodeName", "spec.host"},
    ("", "nodes"): {"metadata.name", "spec.unschedulable"},
}
FIELD_ALIASES = {"spec.host": "spec.nodeName"}


def rand_name(prefix: str, taken=()) -> str:
    while True:
        name = prefix + "".join(NAME_ALPHABET[b % len(NAME_ALPHABET)] for b in os.urandom(5))
        if name not in taken:
            return name


def revision_hash(template) -> str:
    """controller-revision-hash of a pod template: rand.SafeEncodeString of a 32-bit hash."""
    h = int(hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:8], 16)
    return "".join(NAME_ALPHABET[ord(c) % len(NAME_ALPHABET)] for c in str(h))


def ip_of(seed: str, prefix: str = "10.0") -> str:
    h = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
    return f"{prefix}.{h % 250 + 1}.{(h >> 8) % 250 + 1}"


def node_ip(name: str) -> str:
    """An EKS node's name is its private DNS name: ip-10-0-1-23.<region>.compute.internal -> 10.0.1.23."""
    m = re.match(r"ip-(\d{1,3})-(\d{1,3})-(\d{1,3})-(\d{1,3})(?:\.|$)", name)
    return ".".join(m.groups()) if m else ip_of("node/" + name)


def tolerates(tol, taint) -> bool:
    """v1.Toleration.ToleratesTaint."""
    if not isinstance(tol, dict):
        return False
    if tol.get("effect") and tol["effect"] != taint.get("effect"):
        return False
    if tol.get("key") and tol["key"] != taint.get("key"):
        return False
    op = tol.get("operator") or "Equal"
    if op == "Exists":
        return True
    return op == "Equal" and (tol.get("value") or "") == (taint.get("value") or "")


def _node_requirement(req, labels, name) -> bool:
    op, vals = req.get("operator"), req.get("values") or []
    have = name if req.get("_field") else labels.get(req.get("key"))
    present = have is not None
    if op == "In":
        return present and have in vals
    if op == "NotIn":
        return not present or have not in vals
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and len(vals) == 1:
        try:
            a, b = int(have), int(vals[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def node_should_run(pod_spec, node) -> tuple[bool, bool]:
    """The DaemonSet controller's NodeShouldRunDaemonPod: (shouldRun, shouldContinueRunning).
    Both need the template's nodeSelector (equality on the node's labels) and required node
    affinity to match and every NoExecute taint of the node to be tolerated (the template's
    tolerations plus the DaemonSet defaults); shouldRun also every NoSchedule taint (a pod
    already running on a node that gets an untolerated NoSchedule taint stays, misscheduled)."""
    pod_spec = pod_spec if isinstance(pod_spec, dict) else {}
    md = node.get("metadata") or {}
    labels = md.get("labels") or {}
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False, False
    req = ((((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
            .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms"))
    if req:
        def term_ok(t):
            exprs = list(t.get("matchExpressions") or []) + [
                {**f, "_field": True} for f in t.get("matchFields") or [] if f.get("key") == "metadata.name"]
            return bool(exprs) and all(_node_requirement(e, labels, md.get("name")) for e in exprs)
        if not any(isinstance(t, dict) and term_ok(t) for t in req):
            return False, False
    tols = list(pod_spec.get("tolerations") or []) + DS_DEFAULT_TOLERATIONS
    if pod_spec.get("hostNetwork"):
        tols.append(DS_HOST_NETWORK_TOLERATION)
    run = True
    for taint in (node.get("spec") or {}).get("taints") or []:
        if isinstance(taint, dict) and taint.get("effect") in ("NoSchedule", "NoExecute") \
                and not any(tolerates(t, taint) for t in tols):
            if taint["effect"] == "NoExecute":
                return False, False
            run = False
    return run, True


def node_status(name, capacity, previous=None):
    """What the kubelet posts for a healthy node."""
    t = now()
    prev = {c.get("type"): c for c in ((previous or {}).get("conditions") or []) if isinstance(c, dict)}

    def cond(ctype, status, reason, message):
        p = prev.get(ctype) or {}
        return {"type": ctype, "status": status, "lastHeartbeatTime": t,
                "lastTransitionTime": p.get("lastTransitionTime") if p.get("status") == status
                and p.get("lastTransitionTime") else t, "reason": reason, "message": message}

    h = hashlib.sha256(("node/" + name).encode()).hexdigest()
    cap = {**NODE_CAPACITY, **(capacity or {})}
    return {
        "capacity": dict(cap), "allocatable": dict(cap),
        "conditions": [cond("MemoryPressure", "False", "KubeletHasSufficientMemory",
                            "kubelet has sufficient memory available"),
                       cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                       cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                       cond("Ready", "True", "KubeletReady", "kubelet is posting ready status")],
        "addresses": [{"type": "InternalIP", "address": node_ip(name)}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {"machineID": h[:32], "systemUUID": f"ec2{h[3:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}",
                     "bootID": f"{h[32:40]}-{h[40:44]}-{h[44:48]}-{h[48:52]}-{h[52:64]}",
                     "kernelVersion": "6.1.141-155.222.amzn2023.x86_64", "osImage": "Amazon Linux 2023.7.20250623",
                     "containerRuntimeVersion": "containerd://1.7.27", "kubeletVersion": VERSION_INFO["gitVersion"],
                     "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"}}


def qos_class(spec) -> str:
    cs = [c for c in (spec.get("containers") or []) + (spec.get("initContainers") or []) if isinstance(c, dict)]
    res = [c.get("resources") or {} for c in cs]
    if not any((r.get("requests") or r.get("limits")) for r in res):
        return "BestEffort"
    for r in res:
        lim, req = r.get("limits") or {}, r.get("requests") or {}
        if not all(lim.get(k) and req.get(k, lim.get(k)) == lim[k] for k in ("cpu", "memory")):
            return "Burstable"
    return "Guaranteed"


def full_image(image: str) -> str:
    """The image reference as containerd reports it (docker.io/library/..., :latest)."""
    name = image or ""
    first = name.split("/")[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = "docker.io/" + (name if "/" in name else "library/" + name)
    if "@" not in name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def pod_defaults(spec):
    """SetDefaults_PodSpec / SetDefaults_Container, plus what the ServiceAccount and Priority
    admission plugins set (no kube-api-access volume)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", PRIORITY_CLASSES.get(spec.get("priorityClassName"), 0))
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    for kind in ("initContainers", "containers"):
        for c in spec.get(kind) or []:
            if not isinstance(c, dict):
                continue
            img = str(c.get("image") or "")
            tag = img.rsplit("/", 1)[-1]
            c.setdefault("imagePullPolicy", "Always" if "@" not in img and (":" not in tag or tag.endswith(":latest"))
                         else "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
    return spec


def pod_containers(spec, kinds=("initContainers", "containers", "ephemeralContainers")):
    """Container names in podutil.VisitContainers order (init, regular, ephemeral)."""
    return [c.get("name") for k in kinds for c in (spec.get(k) or []) if isinstance(c, dict)]


def pod_is_ready(pod) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in ((pod.get("status") or {}).get("conditions") or []) if isinstance(c, dict))


def kubelet_status(pod, ready=None, previous=None):
    """The status a kubelet posts for a running pod: phase Running, IPs, one running container
    status per container (ready from `ready` {name: bool}, else that of `previous`, else: ready
    at once unless it has a readinessProbe), init containers terminated Completed, conditions
    PodReadyToStartContainers, Initialized, Ready, ContainersReady, PodScheduled."""
    spec, md = pod.get("spec") or {}, pod["metadata"]
    t = now()
    prev = previous or {}
    prev_cs = {c.get("name"): c for c in prev.get("containerStatuses") or [] if isinstance(c, dict)}
    prev_cond = {c.get("type"): c for c in prev.get("conditions") or [] if isinstance(c, dict)}
    start = prev.get("startTime") or t
    host_ip = node_ip(spec.get("nodeName") or "")
    pod_ip = prev.get("podIP") or (host_ip if spec.get("hostNetwork") else ip_of("pod/" + md["uid"], "10.0"))

    def cid(name):
        return "containerd://" + hashlib.sha256(f'{md["uid"]}/{name}'.encode()).hexdigest()

    def image_id(image):
        return full_image(image).rsplit(":", 1)[0] + "@sha256:" + hashlib.sha256(image.encode()).hexdigest()

    statuses, unready = [], []
    for c in spec.get("containers") or []:
        if not isinstance(c, dict):
            continue
        name, image = c.get("name"), str(c.get("image") or "")
        p = prev_cs.get(name) or {}
        ok = (ready or {}).get(name, p.get("ready") if p else not c.get("readinessProbe"))
        if not ok:
            unready.append(name)
        statuses.append({"name": name, "state": {"running": {"startedAt": (p.get("state") or {}).get(
            "running", {}).get("startedAt", start)}}, "lastState": {}, "ready": bool(ok), "restartCount": 0,
            "image": full_image(image), "imageID": image_id(image), "containerID": cid(name), "started": True})
    init = [{"name": c.get("name"), "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                                             "startedAt": start, "finishedAt": start,
                                                             "containerID": cid(c.get("name"))}},
             "lastState": {}, "ready": True, "restartCount": 0, "image": full_image(str(c.get("image") or "")),
             "imageID": image_id(str(c.get("image") or "")), "containerID": cid(c.get("name")), "started": False}
            for c in spec.get("initContainers") or [] if isinstance(c, dict)]

    def cond(ctype, ok, reason=None, message=None):
        status = "True" if ok else "False"
        p = prev_cond.get(ctype) or {}
        c = {"type": ctype, "status": status, "lastProbeTime": None,
             "lastTransitionTime": p.get("lastTransitionTime") if p.get("status") == status
             and p.get("lastTransitionTime") else t}
        if not ok and reason:
            c.update(reason=reason, message=message)
        return c

    msg = f'containers with unready status: [{" ".join(unready)}]'
    st = {"phase": "Running",
          "conditions": [cond("PodReadyToStartContainers", True), cond("Initialized", True),
                         cond("Ready", not unready, "ContainersNotReady", msg),
                         cond("ContainersReady", not unready, "ContainersNotReady", msg),
                         cond("PodScheduled", True)],
          "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
          "startTime": start, "containerStatuses": sorted(statuses, key=lambda s: s["name"]),
          "qosClass": qos_class(spec)}
    if init:
        st["initContainerStatuses"] = init
    return st


def field_value(obj, path) -> str:
    """The selectable field `path` of an object as a string (fields.Set of ToSelectableFields)."""
    path = FIELD_ALIASES.get(path, path)
    if path in ("spec.hostNetwork", "spec.unschedulable"):
        return "true" if (obj.get("spec") or {}).get(path.split(".")[1]) else "false"
    cur = obj
    for p in path.split("."):
        cur = cur.get(p) if isinstance(cur, dict) else None
    return "" if cur is None else str(cur)


def log_timestamp(ns: int) -> str:
    """The kubelet's RFC3339Nano with a fixed 9-digit fraction (kuberuntime timeFormatOut)."""
    return datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S") + f".{ns % 10**9:09d}Z"


def render_log(entries, timestamps: bool) -> bytes:
    return "".join((log_timestamp(t) + " " if timestamps else "") + text for t, text in entries).encode()


@dataclass
class LogStream:
    """A pods/log answer: `data` now; with follow, then the entries appended to store.pod_logs[key]
    from index `next` on (limitBytes: `remaining`), until the pod goes, the client leaves or
    LOG_FOLLOW_TIMEOUT."""
    data: bytes
    follow: bool = False
    key: tuple | None = None
    next: int = 0
    remaining: int | None = None
    timestamps: bool = False
    pod_key: tuple | None = None


# --------------------------------------------------------------------------
# the store
# --------------------------------------------------------------------------


class Store:
    """All state of one API server. Callers hold `lock` around every method call.

    `cloud` (None when standalone) connects the controller stand-ins to an AWS emulator in the
    same process; it must provide
        ensure_alb(ingress) -> hostname   create/update the Ingress's ALB, return its DNS name
        delete_alb(ingress) -> None       delete the Ingress's ALB, listeners, TGs, managed SG
        nodeclass_problem(spec) -> None | (conditionType, reason, message)
    and may raise (the controller then leaves the object as it is, as a failing controller
    does). `on_reset` (optional) is called, with the lock held, after every reset."""

    def __init__(self, region: str, cloud=None, on_reset=None):
        self.region = region
        self.cloud = cloud
        self.on_reset = None
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = 0
        self.objects: dict = {}      # (group, plural, ns, name) -> obj
        self.resources: dict = {}    # (group, version, plural) -> Res
        self.events: list = []       # (rv, type, group, plural, ns, name, obj)
        self.event_base = 0
        self.requests: list = []
        self.alb_seen: dict = {}     # ingress key -> ((uid, fingerprint), ok) last reconciled with the cloud
        self.logged: dict = {}       # object key -> last controller error logged
        self.pod_logs: dict = {}     # (pod uid, container) -> [(time ns, text)] (kubelet stand-in)
        self._ds_syncing = False
        self.log_follow_timeout = LOG_FOLLOW_TIMEOUT
        self.reset()
        self.on_reset = on_reset
        if on_reset is not None:
            with self.lock:
                on_reset(self)

    # ---- registry ----------------------------------------------------
    def reset(self):
        with self.lock:
            self.objects.clear()
            self.events.clear()
            self.requests.clear()
            self.alb_seen.clear()
            self.pod_logs.clear()
            self.event_base = self.rv
            self.resources = {(r.group, r.version, r.plural): r for r in BUILTINS}
            for ns in DEFAULT_NAMESPACES:
                self._create_raw(self.resources[("", "v1", "namespaces")],
                                 {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            if self.on_reset is not None:
                self.on_reset(self)
            self.cond.notify_all()

    def _create_raw(self, res, obj):
        md = obj["metadata"]
        md.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        self._controllers(res, obj, None)
        self._put(res, obj, "ADDED")

    def groups(self):
        g: dict = {}
        for r in self.resources.values():
            g.setdefault(r.group, set()).add(r.version)
        return g

    def find_res(self, group, version, plural):
        r = self.resources.get((group, version, plural))
        if r is None:
            raise not_found_path()
        return r

    def _register_crd(self, crd):
        self._unregister_crd(crd["metadata"]["name"])
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        storage = next((v for v in spec.get("versions", []) if v.get("storage")), None)
        for v in spec.get("versions", []):
            if not v.get("served", True):
                continue
            self.resources[(spec["group"], v["name"], names["plural"])] = Res(
                spec["group"], v["name"], names["plural"], names["kind"], spec.get("scope") == "Namespaced",
                list(names.get("shortNames") or []), list(names.get("categories") or []),
                status_sub="status" in (v.get("subresources") or {}), crd=crd["metadata"]["name"],
                singular=names.get("singular") or names["kind"].lower(),
                schema=((storage or v).get("schema") or {}).get("openAPIV3Schema"))

    def _unregister_crd(self, name):
        for key in [k for k, r in self.resources.items() if r.crd == name]:
            del self.resources[key]

    # ---- storage primitives -------------------------------------------
    def _key(self, res, ns, name):
        return (res.group, res.plural, ns or "", name)

    def _bump(self):
        self.rv += 1
        return str(self.rv)

    def _put(self, res, obj, etype):
        md = obj["metadata"]
        md["resourceVersion"] = self._bump()
        key = self._key(res, md.get("namespace"), md["name"])
        self.objects[key] = obj
        self.events.append((self.rv, etype, res.group, res.plural, key[2], key[3], copy.deepcopy(obj)))
        self.cond.notify_all()

    def _remove(self, res, key):
        obj = self.objects.pop(key, None)
        if obj is None:
            return
        self._bump()
        snap = copy.deepcopy(obj)
        snap["metadata"]["resourceVersion"] = str(self.rv)
        self.events.append((self.rv, "DELETED", key[0], key[1], key[2], key[3], snap))
        if res is not None and res.group == "apiextensions.k8s.io" and res.plural == "customresourcedefinitions":
            self._drop_crd(obj)
        if key[:2] in STORAGE_PROTECTION:
            self._sync_volumes()
        if key[:2] == ("", "pods"):
            for k in [k for k in self.pod_logs if k[0] == obj["metadata"].get("uid")]:
                del self.pod_logs[k]
        if key[:2] in DS_INPUTS:
            self._sync_daemonsets()
        self.cond.notify_all()

    def _drop_crd(self, crd):
        spec = crd.get("spec", {})
        group, plural = spec.get("group"), spec.get("names", {}).get("plural")
        self._unregister_crd(crd["metadata"]["name"])
        for key in [k for k in self.objects if k[0] == group and k[1] == plural]:
            self._remove(None, key)

    # ---- the PV controller and the pv/pvc-protection controllers (stand-ins) ----
    def _sync_volumes(self):
        """Binding as the PV controller does it for pre-bound volumes and claims: a PV whose
        claimRef names an existing claim (no uid, or that claim's uid) is Bound to it (the uid,
        kind, apiVersion and resourceVersion are filled in, the claim gets spec.volumeName); a
        claim naming a PV without claimRef binds it; a PV whose bound claim is gone (claimRef uid
        of no existing claim) is Released and keeps its claimRef (Retain: nothing reclaims it), so
        a new claim of the same name stays Pending; other PVs are Available. Claims are Bound when
        their volume's claimRef is them (status accessModes/capacity from the PV), else Pending."""
        pv_res = self.resources[("", "v1", "persistentvolumes")]
        pvc_res = self.resources[("", "v1", "persistentvolumeclaims")]
        pvs = {k[3]: o for k, o in self.objects.items() if k[:2] == ("", "persistentvolumes")}
        pvcs = {(k[2], k[3]): o for k, o in self.objects.items() if k[:2] == ("", "persistentvolumeclaims")}

        def ref(c):
            cm = c["metadata"]
            return {"kind": "PersistentVolumeClaim", "namespace": cm.get("namespace", ""), "name": cm["name"],
                    "uid": cm["uid"], "apiVersion": "v1", "resourceVersion": cm["resourceVersion"]}

        for name in sorted(pvs):
            pv = pvs[name]
            new = copy.deepcopy(pv)
            spec = new.setdefault("spec", {})
            cr = spec.get("claimRef")
            if not isinstance(cr, dict) or not cr.get("name"):
                claim = next((c for _, c in sorted(pvcs.items()) if (c.get("spec") or {}).get("volumeName") == name
                              and not c["metadata"].get("deletionTimestamp")), None)
                if claim is not None:
                    spec["claimRef"] = ref(claim)
                phase = "Bound" if claim is not None else "Available"
            else:
                claim = pvcs.get((cr.get("namespace", ""), cr["name"]))
                if claim is not None and cr.get("uid") in (None, "", claim["metadata"]["uid"]):
                    if not cr.get("uid"):
                        spec["claimRef"] = {**ref(claim), **{k: v for k, v in cr.items() if k not in
                                                              ("uid", "resourceVersion")}}
                    phase = "Bound" if (claim.get("spec") or {}).get("volumeName") in (None, "", name) \
                        else "Available"
                else:
                    phase = "Released" if cr.get("uid") else "Available"
            st = new.get("status") if isinstance(new.get("status"), dict) else {}
            if st.get("phase") != phase:
                new["status"] = {**st, "phase": phase, "lastPhaseTransitionTime": now()}
            if new != pv:
                self._put(pv_res, new, "MODIFIED")
                pvs[name] = new
        for key in sorted(pvcs):
            c = pvcs[key]
            new = copy.deepcopy(c)
            spec = new.setdefault("spec", {})
            uid = c["metadata"]["uid"]

            def mine(pv):
                r = (pv.get("spec") or {}).get("claimRef") or {}
                return (r.get("namespace", ""), r.get("name")) == key and r.get("uid") == uid

            if not spec.get("volumeName"):
                pv_name = next((n for n in sorted(pvs) if mine(pvs[n])), None)
                if pv_name:
                    spec["volumeName"] = pv_name
            pv = pvs.get(spec.get("volumeName") or "")
            if pv is not None and mine(pv):
                ps = pv.get("spec") or {}
                status = {"phase": "Bound", "accessModes": ps.get("accessModes", []),
                          "capacity": ps.get("capacity", {})}
            else:
                status = {"phase": "Pending"}
            new["status"] = status
            if new != c:
                self._put(pvc_res, new, "MODIFIED")

    def _storage_in_use(self, key, obj):
        """pvc-protection: a claim is in use while a Deployment with replicas > 0 (or a DaemonSet)
        in its namespace mounts it (the server has no pods: their templates stand for them);
        pv-protection: a volume is in use while it is Bound."""
        if key[:2] == ("", "persistentvolumes"):
            return ((obj.get("status") or {}).get("phase")) == "Bound"
        for k, o in self.objects.items():
            if k[0] != "apps" or k[1] not in ("deployments", "daemonsets") or k[2] != key[2]:
                continue
            spec = o.get("spec") or {}
            if k[1] == "deployments" and not (spec.get("replicas", 1) or 0) > 0:
                continue
            vols = ((spec.get("template") or {}).get("spec") or {}).get("volumes") or []
            if any(isinstance(v, dict) and (v.get("persistentVolumeClaim") or {}).get("claimName") == key[3]
                   for v in vols):
                return True
        return False

    # ---- the DaemonSet controller, the pod garbage collectors and the kubelet (stand-ins) ----
    def _nodes(self):
        return {k[3]: o for k, o in self.objects.items() if k[:2] == ("", "nodes")}

    def _daemon_pods(self, uid):
        """(key, pod) of the pods whose controlling owner is the DaemonSet with this uid."""
        return sorted((k, o) for k, o in self.objects.items() if k[:2] == ("", "pods") and uid and any(
            isinstance(r, dict) and r.get("uid") == uid and r.get("controller")
            for r in o["metadata"].get("ownerReferences") or []))

    def _ds_status(self, ds):
        """DaemonSet status from the nodes and the DaemonSet's pods as they are (minReadySeconds
        is not honoured: a ready pod is available). Zero omitempty counts are omitted, as the
        apiserver omits them."""
        md = ds["metadata"]
        tmpl = (ds.get("spec") or {}).get("template") or {}
        want = revision_hash(tmpl)
        eligible = {n for n, node in self._nodes().items() if node_should_run(tmpl.get("spec"), node)[0]}
        by_node: dict = {}
        for _, p in self._daemon_pods(md.get("uid")):
            by_node.setdefault((p.get("spec") or {}).get("nodeName") or "", []).append(p)
        current = updated = ready = 0
        for n in eligible:
            pods = by_node.get(n) or []
            current += bool(pods)
            updated += any((p["metadata"].get("labels") or {}).get("controller-revision-hash") == want for p in pods)
            ready += any(pod_is_ready(p) for p in pods)
        st = {"currentNumberScheduled": current, "numberMisscheduled": sum(1 for n in by_node if n not in eligible),
              "desiredNumberScheduled": len(eligible), "numberReady": ready,
              "observedGeneration": md.get("generation", 1)}
        for k, v in (("updatedNumberScheduled", updated), ("numberAvailable", ready),
                     ("numberUnavailable", len(eligible) - ready)):
            if v > 0:
                st[k] = v
        return st

    def _sync_daemonsets(self):
        """Synchronous after every write or removal of a DaemonSet, Node or Pod: the pod GC (pods
        bound to a node that is gone), the garbage collector (pods whose controlling DaemonSet is
        gone), then per DaemonSet one pod of the current template on every node that should run
        it and none elsewhere, and its status."""
        if self._ds_syncing:
            return
        self._ds_syncing = True
        try:
            pod_res = self.resources[("", "v1", "pods")]
            ds_res = self.resources[("apps", "v1", "daemonsets")]
            nodes = self._nodes()
            dss = {o["metadata"]["uid"]: k for k, o in self.objects.items() if k[:2] == ("apps", "daemonsets")}
            for k, p in sorted((k, o) for k, o in self.objects.items() if k[:2] == ("", "pods")):
                node = (p.get("spec") or {}).get("nodeName")
                owner = next((r for r in p["metadata"].get("ownerReferences") or [] if isinstance(r, dict)
                              and r.get("controller") and r.get("kind") == "DaemonSet"
                              and r.get("apiVersion") == "apps/v1"), None)
                if (node and node not in nodes) or (owner is not None and owner.get("uid") not in dss):
                    self._remove(pod_res, k)
            for k in sorted(dss.values()):
                ds = self.objects.get(k)
                if ds is None:
                    continue
                if not ds["metadata"].get("deletionTimestamp"):
                    self._run_daemon_pods(k, ds, nodes, pod_res)
                ds = self.objects[k]
                st = self._ds_status(ds)
                if st != ds.get("status"):
                    new = copy.deepcopy(ds)
                    new["status"] = st
                    self._put(ds_res, new, "MODIFIED")
        finally:
            self._ds_syncing = False

    def _run_daemon_pods(self, key, ds, nodes, pod_res):
        tmpl = (ds.get("spec") or {}).get("template") or {}
        want = revision_hash(tmpl)
        nso = self.objects.get(("", "namespaces", "", key[2]))
        can_create = nso is not None and not nso["metadata"].get("deletionTimestamp")
        by_node: dict = {}
        for pk, p in self._daemon_pods(ds["metadata"]["uid"]):
            by_node.setdefault((p.get("spec") or {}).get("nodeName") or "", []).append((pk, p))
        on_delete = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("type") == "OnDelete"
        for n in sorted(nodes):
            runs, stays = node_should_run(tmpl.get("spec"), nodes[n])
            keep = None
            # the pod of the current template first; OnDelete keeps an old one until it is deleted
            pods = sorted(by_node.pop(n, []), key=lambda kp: (kp[1]["metadata"].get("labels") or {}).get(
                "controller-revision-hash") != want)
            for pk, p in pods:
                current = (p["metadata"].get("labels") or {}).get("controller-revision-hash") == want
                if stays and keep is None and (current or on_delete):
                    keep = pk
                else:  # not to run there, a duplicate, or of an old template (rolled at once)
                    self._remove(pod_res, pk)
            if runs and keep is None and can_create:
                self._put(pod_res, self._daemon_pod(ds, n, want), "ADDED")
        for pods in by_node.values():
            for pk, _ in pods:
                self._remove(pod_res, pk)

    def _daemon_pod(self, ds, node, rev):
        """The pod the DaemonSet controller creates for a node (the scheduler binds it, the
        kubelet runs it): template labels + controller-revision-hash and pod-template-generation,
        the controller ownerReference, the template spec with pod defaults, the DaemonSet's
        node affinity and tolerations and nodeName, a running status."""
        md = ds["metadata"]
        tmpl = copy.deepcopy((ds.get("spec") or {}).get("template") or {})
        tmd = tmpl.get("metadata") or {}
        taken = {k[3] for k in self.objects if k[:3] == ("", "pods", md["namespace"])}
        pmd = {"name": rand_name(md["name"] + "-", taken), "generateName": md["name"] + "-",
               "namespace": md["namespace"], "uid": str(uuid.uuid4()), "creationTimestamp": now(),
               "labels": {**(tmd.get("labels") or {}), "controller-revision-hash": rev,
                          "pod-template-generation": str(md.get("generation", 1))}}
        if tmd.get("annotations"):
            pmd["annotations"] = tmd["annotations"]
        pmd["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": md["name"],
                                   "uid": md["uid"], "controller": True, "blockOwnerDeletion": True}]
        spec = pod_defaults(tmpl.get("spec") if isinstance(tmpl.get("spec"), dict) else {})
        na = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
        terms = [t for t in ((na.get("requiredDuringSchedulingIgnoredDuringExecution") or {})
                             .get("nodeSelectorTerms") or []) if isinstance(t, dict)] or [{}]
        for t in terms:  # ReplaceDaemonSetPodNodeNameNodeAffinity
            t["matchFields"] = [{"key": "metadata.name", "operator": "In", "values": [node]}]
        na["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": terms}
        tols = spec.setdefault("tolerations", [])
        for t in DS_DEFAULT_TOLERATIONS + ([DS_HOST_NETWORK_TOLERATION] if spec.get("hostNetwork") else []):
            if not any(isinstance(x, dict) and (x.get("key"), x.get("effect")) == (t["key"], t["effect"])
                       for x in tols):
                tols.append(dict(t))
        spec["nodeName"] = node
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": pmd, "spec": spec}
        pod["status"] = kubelet_status(pod)
        return pod

    def _orphan_pods(self, uid):
        """DELETE of a DaemonSet with propagationPolicy Orphan: its pods lose the ownerReference."""
        pod_res = self.resources[("", "v1", "pods")]
        for k, p in self._daemon_pods(uid):
            new = copy.deepcopy(p)
            refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            self._put(pod_res, new, "MODIFIED")

    # ---- test control: nodes, pod logs and readiness ---------------------------
    def set_nodes(self, doc):
        """POST /__control/nodes {"nodes": [{"name", "labels"?, "taints"?, "capacity"?}]}: create or
        replace (same uid, labels/taints/capacity as given) Node objects; returns their views."""
        entries = doc.get("nodes") if isinstance(doc, dict) else None
        if not isinstance(entries, list) or not entries:
            raise bad_request('the body must be {"nodes": [{"name": ..., "labels": {...}, "taints": [...]}]}')
        for e in entries:
            name = e.get("name") if isinstance(e, dict) else None
            if not isinstance(name, str) or len(name) > 253 or not DNS1123_SUB.fullmatch(name):
                raise bad_request(f"node name {name!r} is not a DNS-1123 subdomain")
            for fld in ("labels", "capacity"):
                v = e.get(fld) or {}
                if not isinstance(v, dict) or not all(isinstance(a, str) and isinstance(b, str) for a, b in v.items()):
                    raise bad_request(f"node {name}: {fld} must be an object of strings")
            taints = e.get("taints") or []
            if not isinstance(taints, list) or not all(
                    isinstance(t, dict) and isinstance(t.get("key"), str) and t["key"]
                    and t.get("effect") in TAINT_EFFECTS and isinstance(t.get("value", ""), str)
                    and set(t) <= {"key", "value", "effect"} for t in taints):
                raise bad_request(f"node {name}: taints must be [{{key, value?, effect: NoSchedule | "
                                  f"PreferNoSchedule | NoExecute}}]")
        res = self.resources[("", "v1", "nodes")]
        out = []
        for e in entries:
            name = e["name"]
            labels = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                      "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                      **(e.get("labels") or {})}
            zone = labels.get("topology.kubernetes.io/zone") or f"{self.region}a"
            spec = {"providerID": f"aws:///{zone}/i-{hashlib.sha256(name.encode()).hexdigest()[:17]}"}
            if e.get("taints"):
                spec["taints"] = [{k: t[k] for k in ("key", "value", "effect") if t.get(k)} for t in e["taints"]]
            key = ("", "nodes", "", name)
            live = self.objects.get(key)
            if live is None:
                obj = {"apiVersion": "v1", "kind": "Node",
                       "metadata": {"name": name, "uid": str(uuid.uuid4()), "creationTimestamp": now(),
                                    "labels": labels},
                       "spec": spec, "status": node_status(name, e.get("capacity"))}
                self._put(res, obj, "ADDED")
            else:
                new = copy.deepcopy(live)
                new["metadata"]["labels"] = labels
                new["spec"] = spec
                cap = {**NODE_CAPACITY, **(e.get("capacity") or {})}
                if (live.get("status") or {}).get("capacity") != cap:
                    new["status"] = node_status(name, e.get("capacity"), live.get("status"))
                if new != live:
                    self._put(res, new, "MODIFIED")
            out.append(self._view(res, self.objects[key]))
        self._sync_daemonsets()
        return out

    def delete_node(self, name):
        """DELETE /__control/nodes/<name>: the node goes, and with it the pods bound to it."""
        res = self.resources[("", "v1", "nodes")]
        live = self.get(res, None, name)
        view = self._view(res, live)
        self._remove(res, self._key(res, None, name))
        return view

    def control_pod(self, doc):
        """POST /__control/pods/log: append to the log of one pod's container and/or set its
        readiness (as its readinessProbe would); returns the pod."""
        if not isinstance(doc, dict):
            raise bad_request("the body must be a JSON object")
        for k in ("namespace", "node", "pod", "selector", "container", "append"):
            if doc.get(k) is not None and not isinstance(doc[k], str):
                raise bad_request(f"{k} must be a string")
        if doc.get("ready") is not None and not isinstance(doc["ready"], bool):
            raise bad_request("ready must be true or false")
        unknown = set(doc) - {"namespace", "node", "pod", "selector", "container", "append", "ready"}
        if unknown:
            raise bad_request(f"unknown fields: {', '.join(sorted(unknown))}")
        if doc.get("append") is None and doc.get("ready") is None:
            raise bad_request("nothing to do: give append and/or ready")
        reqs = parse_label_selector(doc.get("selector") or "")
        ns, node, pname = doc.get("namespace"), doc.get("node"), doc.get("pod")
        found = [(k, o) for k, o in sorted(self.objects.items()) if k[:2] == ("", "pods")
                 and (not ns or k[2] == ns) and (not pname or k[3] == pname)
                 and (not node or (o.get("spec") or {}).get("nodeName") == node)
                 and match_labels(reqs, o["metadata"].get("labels") or {})]
        what = ", ".join(f"{k}={doc[k]}" for k in ("namespace", "node", "pod", "selector") if doc.get(k))
        if not found:
            raise ApiError(404, "NotFound", f"no pod matches {what or 'anything'}")
        if len(found) > 1:
            raise ApiError(409, "Conflict", f"{len(found)} pods match {what or 'anything'}: "
                                            + ", ".join(f"{k[2]}/{k[3]}" for k, _ in found))
        key, pod = found[0]
        spec = pod.get("spec") or {}
        regular = pod_containers(spec, ("containers",))
        container = doc.get("container")
        if container is not None and container not in pod_containers(spec):
            raise bad_request(f"container {container} is not valid for pod {key[3]}")
        if doc.get("append") is not None:
            c = container or (regular[0] if len(regular) == 1 else None)
            if c is None:
                raise bad_request(f"a container name must be specified for pod {key[3]}, choose one of: "
                                  f"[{' '.join(pod_containers(spec))}]")
            t = time.time_ns()
            self.pod_logs.setdefault((pod["metadata"]["uid"], c), []).extend(
                (t, line) for line in doc["append"].splitlines(keepends=True))
            self.cond.notify_all()
        if doc.get("ready") is not None:
            st = pod.get("status") or {}
            if st.get("phase") != "Running":
                raise ApiError(409, "Conflict", f"pod {key[3]} is not running")
            targets = [container] if container else regular
            new = copy.deepcopy(pod)
            new["status"] = kubelet_status(pod, {c: doc["ready"] for c in targets}, st)
            if new != pod:
                self._put(self.resources[("", "v1", "pods")], new, "MODIFIED")
                self._sync_daemonsets()
        return self._view(self.resources[("", "v1", "pods")], self.objects[key])

    def pod_log(self, ns, name, q):
        """GET /api/v1/namespaces/{ns}/pods/{name}/log (kube-apiserver's LogREST + the kubelet)."""
        def integer(k):
            v = q.get(k)
            if v is None:
                return None
            if not re.fullmatch(r"[+-]?\d+", v):
                raise bad_request(f'strconv.ParseInt: parsing {go_quote(v)}: invalid syntax')
            return int(v)

        def boolean(k):  # Convert_Slice_string_To_bool
            v = q.get(k)
            return v is not None and v != "0" and v.lower() != "false"

        tail, limit, since = integer("tailLines"), integer("limitBytes"), integer("sinceSeconds")
        since_time = None
        if q.get("sinceTime") is not None:
            try:
                since_time = datetime.datetime.fromisoformat(q["sinceTime"].replace("Z", "+00:00"))
                if since_time.tzinfo is None:
                    raise ValueError
            except ValueError:
                raise bad_request(f'parsing time {go_quote(q["sinceTime"])} as "2006-01-02T15:04:05Z07:00": '
                                  f'cannot parse {go_quote(q["sinceTime"])} as "2006"')
        causes = []
        if tail is not None and tail < 0:
            causes.append({"field": "tailLines", "message": f"Invalid value: {tail}: must be greater than or equal to 0"})
        if limit is not None and limit < 1:
            causes.append({"field": "limitBytes", "message": f"Invalid value: {limit}: must be greater than 0"})
        if since is not None and since_time is not None:
            causes.append({"field": "", "reason": "FieldValueForbidden",
                           "message": "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"})
        elif since is not None and since < 1:
            causes.append({"field": "sinceSeconds", "message": f"Invalid value: {since}: must be greater than 0"})
        if causes:
            raise invalid_status("", "PodLogOptions", name, causes)
        res = self.resources[("", "v1", "pods")]
        pod = self.get(res, ns, name)
        spec = pod.get("spec") or {}
        c = q.get("container") or ""
        if not c:
            regular = pod_containers(spec, ("containers",))
            if len(regular) == 1:
                c = regular[0]
            elif not regular:
                raise bad_request(f"a container name must be specified for pod {name}")
            else:
                raise bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                  f"[{' '.join(pod_containers(spec))}]")
        elif c not in pod_containers(spec):
            raise bad_request(f"container {c} is not valid for pod {name}")
        if not spec.get("nodeName"):
            return LogStream(b"")  # not scheduled: an empty location, an empty answer
        if boolean("previous"):
            raise bad_request(f'previous terminated container "{c}" in pod "{name}" not found')
        key = (pod["metadata"]["uid"], c)
        entries = list(self.pod_logs.get(key) or [])
        cut = None
        if since is not None:
            cut = time.time_ns() - since * 10**9
        elif since_time is not None:
            cut = int(since_time.timestamp()) * 10**9
        shown = [e for e in entries if cut is None or e[0] >= cut]
        if tail is not None:
            shown = shown[len(shown) - tail:] if tail else []
        ts = boolean("timestamps")
        data = render_log(shown, ts)
        if limit is not None:
            data = data[:limit]
        return LogStream(data, boolean("follow"), key, len(entries),
                         None if limit is None else limit - len(data), ts, self._key(res, ns, name))

    def _res_for_key(self, key):
        return next((r for r in self.resources.values() if (r.group, r.plural) == key[:2]), None)

    def _gc(self):
        """Remove objects whose deletion is complete (no finalizers; empty terminating namespaces)."""
        changed = True
        while changed:
            changed = False
            for key, obj in list(self.objects.items()):
                md = obj["metadata"]
                if not md.get("deletionTimestamp"):
                    continue
                if key[:2] == ("", "namespaces"):
                    if any(k[2] == key[3] for k in self.objects if k[:2] != ("", "namespaces")):
                        continue
                elif md.get("finalizers"):
                    continue
                self._remove(self._res_for_key(key), key)
                changed = True

    def _view(self, res, obj):
        out = copy.deepcopy(obj)
        out["apiVersion"] = res.gv
        out["kind"] = res.kind
        return out

    # ---- read hooks (lazy controllers) ---------------------------------
    def _on_read(self, key):
        """What the controllers do between two reads of an object (GET, list item, watch poll)."""
        obj = self.objects.get(key)
        if obj is None:
            return
        gp = key[:2]
        md = obj["metadata"]
        if gp == ("", "namespaces") and md.get("deletionTimestamp"):
            # waiting for a namespace to go lets the controllers finish its objects' deletion
            for k in [k for k in self.objects if k[2] == key[3] and (k[:2] in CONTROLLER_FINALIZERS
                                                                      or k[:2] in STORAGE_PROTECTION)]:
                self._on_read(k)
            self._gc()
            return
        if gp in STORAGE_PROTECTION:
            fin = STORAGE_PROTECTION[gp]
            if md.get("deletionTimestamp") and fin in (md.get("finalizers") or []) \
                    and not self._storage_in_use(key, obj):
                new = copy.deepcopy(obj)
                new["metadata"]["finalizers"] = [f for f in md["finalizers"] if f != fin]
                if not new["metadata"]["finalizers"]:
                    del new["metadata"]["finalizers"]
                self._put(self._res_for_key(key), new, "MODIFIED")
                self._gc()
            return
        if gp in CONTROLLER_FINALIZERS and md.get("deletionTimestamp"):
            fin = CONTROLLER_FINALIZERS[gp][0]
            if fin not in (md.get("finalizers") or []):
                return
            if gp == ("networking.k8s.io", "ingresses") and self.cloud is not None:
                try:
                    self.cloud.delete_alb(obj)
                except Exception as e:  # the finalizer stays until the cleanup works (retried on reads)
                    self._log_once(key, f"ALB controller: deleting the load balancer of {key[2]}/{key[3]} "
                                        f"failed: {e!r}")
                    return
                self.alb_seen.pop(key, None)
            new = copy.deepcopy(obj)
            new["metadata"]["finalizers"] = [f for f in md["finalizers"] if f != fin]
            if not new["metadata"]["finalizers"]:
                del new["metadata"]["finalizers"]
            self._put(self._res_for_key(key), new, "MODIFIED")
            self._gc()
            return
        if md.get("deletionTimestamp"):
            return
        if gp == ("networking.k8s.io", "ingresses") and is_alb(obj):
            self._reconcile_alb(key, obj)
        elif gp == ("karpenter.k8s.aws", "ec2nodeclasses") and self.cloud is not None:
            # Karpenter requeues node classes: an IAM role created later makes them Ready
            st = obj.get("status") if isinstance(obj.get("status"), dict) else {}
            conds = nodeclass_conditions(obj, st.get("conditions"), self._nodeclass_problem(obj))
            if [(c["type"], c["status"], c["reason"]) for c in conds] != \
                    [(c.get("type"), c.get("status"), c.get("reason")) for c in st.get("conditions") or []]:
                new = copy.deepcopy(obj)
                new["status"] = {**st, "conditions": conds}
                self._put(self._res_for_key(key), new, "MODIFIED")

    def _reconcile_alb(self, key, obj):
        md = obj["metadata"]
        host = ((((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [{}])[0]).get("hostname")
        if self.cloud is None:
            if host:
                return
            h = hashlib.sha1(md["uid"].encode()).hexdigest()[:10]
            host = f"k8s-{key[2]}-{key[3]}-{h}.{self.region}.elb.amazonaws.com"
        else:
            ann = {k: v for k, v in (md.get("annotations") or {}).items() if k.startswith("alb.ingress.kubernetes.io/")}
            seen = (md["uid"], json.dumps({"spec": obj.get("spec"), "annotations": ann}, sort_keys=True))
            last = self.alb_seen.get(key)
            if last == (seen, True) and host or last == (seen, False):
                return  # reconciled already; a failure is retried when the Ingress changes
            try:
                host = self.cloud.ensure_alb(obj)
            except Exception as e:
                self.alb_seen[key] = (seen, False)
                log(f"ALB controller: reconciling {key[2]}/{key[3]} failed: {e!r}")
                return
            self.alb_seen[key] = (seen, True)
            if host == ((((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [{}])[0]).get("hostname"):
                return
        new = copy.deepcopy(obj)
        new["status"] = {"loadBalancer": {"ingress": [{"hostname": host}]}}
        self._put(self._res_for_key(key), new, "MODIFIED")

    def _log_once(self, key, msg):
        if self.logged.get(key) != msg:
            self.logged[key] = msg
            log(msg)

    def _nodeclass_problem(self, obj):
        if self.cloud is None:
            return None
        try:
            return self.cloud.nodeclass_problem(obj.get("spec") if isinstance(obj.get("spec"), dict) else {})
        except Exception as e:
            return ("InstanceProfileReady", "InstanceProfileReconcileFailed", f"checking the node role: {e!r}")

    # ---- controllers on write ------------------------------------------
    def _controllers(self, res, obj, old):
        md = obj["metadata"]
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else None
        gk = (res.group, res.kind)
        if gk == ("apps", "Deployment"):
            spec = obj.setdefault("spec", {})
            spec.setdefault("replicas", 1)
            n = spec["replicas"]
            t = now()
            prev = {c.get("type"): c for c in ((old or {}).get("status") or {}).get("conditions") or []}

            def cond(ctype, status, reason, msg):
                p = prev.get(ctype) or {}
                same = p.get("status") == status
                return {"type": ctype, "status": status,
                        "lastUpdateTime": p.get("lastUpdateTime", t) if same and p.get("reason") == reason else t,
                        "lastTransitionTime": p.get("lastTransitionTime", t) if same else t,
                        "reason": reason, "message": msg}

            rs = f'ReplicaSet "{md["name"]}-{md["uid"][:10]}"'
            pod = (spec.get("template") or {}).get("spec") or {}
            never = n and any(isinstance(c, dict) and str(c.get("image") or "").endswith(NEVER_READY_SUFFIX)
                              for c in (pod.get("containers") or []) + (pod.get("initContainers") or []))
            if never:
                # the pods never become ready: zero counts are omitted, as the apiserver does
                obj["status"] = {"observedGeneration": md.get("generation", 1), "replicas": n, "updatedReplicas": n,
                                 "unavailableReplicas": n,
                                 "conditions": [cond("Available", "False", "MinimumReplicasUnavailable",
                                                     "Deployment does not have minimum availability."),
                                                cond("Progressing", "True", "ReplicaSetUpdated",
                                                     f"{rs} is progressing.")]}
            else:
                obj["status"] = {"observedGeneration": md.get("generation", 1), "replicas": n, "updatedReplicas": n,
                                 "readyReplicas": n, "availableReplicas": n,
                                 "conditions": [cond("Available", "True", "MinimumReplicasAvailable",
                                                     "Deployment has minimum availability."),
                                                cond("Progressing", "True", "NewReplicaSetAvailable",
                                                     f"{rs} has successfully progressed.")]}
                if n == 0:
                    for k in ("readyReplicas", "availableReplicas"):
                        obj["status"].pop(k)
        elif gk == ("apps", "DaemonSet"):
            spec = obj.setdefault("spec", {})
            us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
            if isinstance(us, dict) and us.get("type", "RollingUpdate") == "RollingUpdate":
                us.setdefault("type", "RollingUpdate")
                us.setdefault("rollingUpdate", {"maxUnavailable": 1, "maxSurge": 0})
            spec.setdefault("revisionHistoryLimit", 10)
            # counted from the nodes and pods as they are; _sync_daemonsets then runs the pods
            obj["status"] = self._ds_status(obj)
        elif gk == ("", "Node"):
            if not isinstance(obj.get("status"), dict) or not obj["status"].get("conditions"):
                obj["status"] = node_status(md.get("name") or "", None)  # the kubelet registers it
        elif gk == ("", "Pod") and spec is not None:
            if old is None:
                pod_defaults(spec)
                if spec.get("nodeName") and ("", "nodes", "", spec["nodeName"]) in self.objects:
                    obj["status"] = kubelet_status(obj)
                else:  # nothing schedules it
                    obj["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}
        elif gk == ("storage.k8s.io", "CSIDriver") and spec is not None:
            for k, v in (("attachRequired", True), ("podInfoOnMount", False), ("storageCapacity", False),
                         ("fsGroupPolicy", "ReadWriteOnceWithFSType"), ("volumeLifecycleModes", ["Persistent"]),
                         ("requiresRepublish", False), ("seLinuxMount", False)):
                spec.setdefault(k, copy.deepcopy(v))
        elif gk in (("networking.k8s.io", "Ingress"), ("karpenter.sh", "NodePool")):
            fin, manager = CONTROLLER_FINALIZERS[(res.group, res.plural)]
            if gk == ("karpenter.sh", "NodePool"):
                st = obj.get("status") if isinstance(obj.get("status"), dict) else {}
                prev = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), {})
                obj["status"] = {**st, "conditions": [
                    {"type": "Ready", "status": "True", "reason": "Ready", "message": "",
                     "observedGeneration": md.get("generation", 1),
                     "lastTransitionTime": prev.get("lastTransitionTime") or now()}]}
            if old is None and (gk != ("networking.k8s.io", "Ingress") or is_alb(obj)) \
                    and not md.get("deletionTimestamp"):
                fins = md.setdefault("finalizers", [])
                if fin not in fins:
                    fins.append(fin)
                    mf = md.setdefault("managedFields", [])
                    mf.append({"manager": manager, "operation": "Update", "apiVersion": res.gv, "time": now(),
                               "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:metadata": {"f:finalizers": {}}}})
        elif gk == ("karpenter.k8s.aws", "EC2NodeClass"):
            st = obj.get("status") if isinstance(obj.get("status"), dict) else {}
            obj["status"] = {**st, "conditions": nodeclass_conditions(obj, st.get("conditions"),
                                                                      self._nodeclass_problem(obj))}
        elif gk == ("", "Namespace"):
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Terminating" if md.get("deletionTimestamp") else "Active"}
        elif gk == ("", "Service") and spec is not None:
            spec.setdefault("type", "ClusterIP")
            osp = (old or {}).get("spec") or {}
            if old is not None and osp.get("clusterIP") and not spec.get("clusterIP"):
                # patchAllocatedValues: an update without the allocated IPs keeps them
                spec["clusterIP"] = osp["clusterIP"]
                if not spec.get("clusterIPs"):
                    spec["clusterIPs"] = osp.get("clusterIPs", [spec["clusterIP"]])
            if old is not None:
                # normalizeClusterIPs: a changed clusterIP with unchanged clusterIPs changes clusterIPs
                # (and is then refused by the update validation, as upstream does)
                if osp.get("clusterIPs") and not spec.get("clusterIPs") and osp.get("clusterIP") == spec.get(
                        "clusterIP"):
                    spec["clusterIPs"] = osp["clusterIPs"]
                if osp.get("clusterIP") != spec.get("clusterIP") and spec.get("clusterIP") and \
                        spec.get("clusterIPs") == osp.get("clusterIPs"):
                    spec["clusterIPs"] = [spec["clusterIP"]]
            if "clusterIP" not in spec:
                h = int(hashlib.sha1(md["uid"].encode()).hexdigest(), 16)
                spec["clusterIP"] = f"10.100.{h % 250 + 1}.{(h >> 8) % 250 + 1}"
            spec.setdefault("clusterIPs", [spec["clusterIP"]] if spec["clusterIP"] != "None" else ["None"])
            obj.setdefault("status", {"loadBalancer": {}})
        elif gk == ("", "Secret"):
            sd = obj.pop("stringData", None)
            if isinstance(sd, dict):
                data = obj.setdefault("data", {})
                for k, v in sd.items():
                    data[k] = base64.b64encode(str(v).encode()).decode()
            obj.setdefault("type", "Opaque")
        elif gk == ("", "PersistentVolume"):
            if spec is not None:  # SetDefaults_PersistentVolume
                spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
                spec.setdefault("volumeMode", "Filesystem")
            if old is None:
                obj["status"] = {"phase": "Pending"}  # the PV controller stand-in moves it on (_sync_volumes)
        elif gk == ("", "PersistentVolumeClaim"):
            if spec is not None:
                spec.setdefault("volumeMode", "Filesystem")
            if old is None:
                obj["status"] = {"phase": "Pending"}
        elif gk == ("apiextensions.k8s.io", "CustomResourceDefinition"):
            spec = obj.get("spec", {})
            t = next((c.get("lastTransitionTime") for c in ((old or {}).get("status") or {}).get("conditions") or []
                      if c.get("type") == "Established"), None) or now()
            obj["status"] = {
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": t},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": t}],
                "acceptedNames": spec.get("names", {}),
                "storedVersions": [v["name"] for v in spec.get("versions", []) if v.get("storage")]}
            for v in spec.get("versions", []):
                v.setdefault("served", True)
        if res.crd and res.schema:
            apply_schema_defaults(obj, res.schema)

    # ---- validation ------------------------------------------------------
    def _validate(self, res, obj):
        md = obj.get("metadata") or {}
        name = md.get("name") or ""
        causes = []
        rx = DNS1123_LABEL if res.plural == "namespaces" else DNS1123_SUB
        if not name:
            causes.append({"field": "metadata.name", "message": "Required value: name or generateName is required"})
        elif len(name) > 253 or not rx.fullmatch(name):
            causes.append({"field": "metadata.name",
                           "message": f'Invalid value: "{name}": a lowercase RFC 1123 name must consist of lower '
                                      "case alphanumeric characters, '-' or '.'"})
        if res.kind == "Pod" and not res.group:
            if not [c for c in (obj.get("spec") or {}).get("containers") or [] if isinstance(c, dict)]:
                causes.append({"field": "spec.containers", "message": "Required value"})
        if res.kind in ("Deployment", "DaemonSet") and res.group == "apps":
            spec = obj.get("spec") or {}
            sel = (spec.get("selector") or {}).get("matchLabels")
            labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            if not spec.get("selector"):
                causes.append({"field": "spec.selector", "message": "Required value"})
            elif sel and any(labels.get(k) != v for k, v in sel.items()):
                causes.append({"field": "spec.template.metadata.labels",
                               "message": f"Invalid value: {go_string_map(labels)}: `selector` does not match "
                                          "template `labels`"})
        if res.kind == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            names = spec.get("names") or {}
            if not spec.get("group") or not names.get("plural") or not names.get("kind"):
                causes.append({"field": "spec", "message": "Required value: group, names.plural and names.kind"})
            elif name != f'{names["plural"]}.{spec["group"]}':
                causes.append({"field": "metadata.name",
                               "message": f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'})
            if spec.get("scope") not in ("Namespaced", "Cluster"):
                causes.append({"field": "spec.scope", "message": 'Unsupported value: must be "Cluster" or '
                                                                 '"Namespaced"'})
            vs = spec.get("versions") or []
            if not vs or not all(isinstance(v, dict) and v.get("name") for v in vs):
                causes.append({"field": "spec.versions", "message": "Required value: must have at least one version"})
            elif sum(1 for v in vs if v.get("storage")) != 1:
                causes.append({"field": "spec.versions", "message": "Invalid value: must have exactly one version "
                                                                    "marked as storage version"})
        if causes:
            raise invalid(res, name, causes)

    # ---- managed fields --------------------------------------------------
    @staticmethod
    def _strip(res, obj, sub):
        o = copy.deepcopy(obj)
        o.pop("apiVersion", None)
        o.pop("kind", None)
        md = o.get("metadata")
        if isinstance(md, dict):
            for k in META_STRIP:
                md.pop(k, None)
            if not md:
                o.pop("metadata")
        if sub == "status":
            return {"status": o["status"]} if "status" in o else {}
        if res.status_sub:
            o.pop("status", None)
        return o

    @staticmethod
    def _entries(obj):
        out = []
        for e in (obj.get("metadata") or {}).get("managedFields") or []:
            e = dict(e)
            e["_set"] = tree_to_paths(e.get("fieldsV1") or {})
            out.append(e)
        return out

    @staticmethod
    def _store_entries(obj, entries, touched):
        t = now()
        mf = []
        for e in entries:
            if not e["_set"]:
                continue
            e = dict(e)
            s = e.pop("_set")
            if e.pop("_touched", False) or "time" not in e:
                e["time"] = t
            e["fieldsType"] = "FieldsV1"
            e["fieldsV1"] = paths_to_tree(s)
            order = ["manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1", "subresource"]
            mf.append({k: e[k] for k in order if k in e} | {k: v for k, v in e.items() if k not in order})
        md = obj.setdefault("metadata", {})
        if mf:
            md["managedFields"] = mf
        else:
            md.pop("managedFields", None)

    def _managed_update(self, res, old, new, manager, sub):
        """Ownership for a non-apply write (old may be None: create)."""
        given = (new.get("metadata") or {}).get("managedFields", MISSING)
        old_mf = ((old or {}).get("metadata") or {}).get("managedFields")
        if given is not MISSING and old is not None and given != old_mf:
            if given == [] or given is None:
                new["metadata"].pop("managedFields", None)
            return  # honoured as given
        if old is None and given not in (MISSING, None, []):
            return
        entries = self._entries(old) if old is not None else []
        old_s = fieldset(self._strip(res, old, sub)) if old is not None else set()
        new_clean = self._strip(res, new, sub)
        new_s = fieldset(new_clean)
        changed = set()
        for p in new_s:
            if p not in old_s:
                changed.add(p)
            elif not is_node_member(p, new_s) and get_at(new_clean, p) != get_at(self._strip(res, old, sub), p):
                changed.add(p)
        removed = old_s - new_s
        mine = None
        for e in entries:
            if e["manager"] == manager and e["operation"] == "Update" and e.get("subresource") == sub:
                mine = e
                continue
            before = e["_set"]
            e["_set"] = before - changed - removed
            if e["_set"] != before:
                e["_touched"] = True
        if changed:
            if mine is None:
                mine = {"manager": manager, "operation": "Update", "apiVersion": res.gv, "_set": set()}
                if sub:
                    mine["subresource"] = sub
                entries.append(mine)
            mine["_set"] = (mine["_set"] - removed) | changed
            mine["_touched"] = True
            mine["apiVersion"] = res.gv
        elif mine is not None:
            mine["_set"] = mine["_set"] - removed
        self._store_entries(new, entries, set())

    def _apply(self, res, live, cfg, manager, force):
        cfg = default_ports(copy.deepcopy(cfg))
        clean = self._strip(res, cfg, None)
        new_set = fieldset(clean)
        base = copy.deepcopy(live) if live is not None else {"metadata": {}}
        live_clean = self._strip(res, base, None)
        merged = apply_merge(base, clean)
        entries = self._entries(base)
        conflicts = []
        for e in entries:
            if e["manager"] == manager:
                continue
            for p in sorted(e["_set"] & new_set):
                if is_node_member(p, new_set):
                    continue
                if get_at(live_clean, p) is not MISSING and get_at(live_clean, p) != get_at(clean, p):
                    conflicts.append((e, p))
        if conflicts and not force:
            raise conflict_error(res, (live or cfg)["metadata"].get("name", ""), conflicts)
        for e, p in conflicts:
            e["_set"].discard(p)
            e["_touched"] = True
        mine = next((e for e in entries if e["manager"] == manager and e["operation"] == "Apply"
                     and not e.get("subresource")), None)
        others = set()
        for e in entries:
            if e is not mine:
                others |= e["_set"]
        if mine is not None:
            keep = others | new_set
            for p in sorted(mine["_set"] - new_set, key=len):
                if p in keep or is_node_member(p, keep):
                    continue
                remove_at(merged, p)
                prune_empty(merged, p[:-1], keep)
        else:
            mine = {"manager": manager, "operation": "Apply", "apiVersion": res.gv, "_set": set()}
            entries.append(mine)
        if mine["_set"] != new_set or mine.get("apiVersion") != res.gv:
            mine["_touched"] = True
        mine["_set"] = new_set
        mine["apiVersion"] = res.gv
        self._store_entries(merged, entries, set())
        merged["apiVersion"], merged["kind"] = res.gv, res.kind
        return merged

    # ---- the write pipeline ----------------------------------------------
    def _commit(self, res, old, new, dry, sub=None):
        """Finish a write: metadata invariants, defaults, validation, controllers, no-op detection."""
        md = new.setdefault("metadata", {})
        if old is not None:
            omd = old["metadata"]
            for k in ("uid", "creationTimestamp", "name", "namespace", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "generation", "resourceVersion"):
                if k in omd:
                    md[k] = omd[k]
                else:
                    md.pop(k, None)
            if sub is None and res.status_sub:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
        new["apiVersion"], new["kind"] = res.gv, res.kind
        default_ports(new)
        if old is None and (res.group, res.plural) in STORAGE_PROTECTION and not md.get("deletionTimestamp"):
            # StorageObjectInUseProtection admission: the finalizer is added on create
            fins = md.setdefault("finalizers", [])
            if STORAGE_PROTECTION[(res.group, res.plural)] not in fins:
                fins.append(STORAGE_PROTECTION[(res.group, res.plural)])
        self._validate(res, new)
        if old is not None and sub is None:
            # update validation sees the object after defaulting (the strategy's PrepareForUpdate)
            probe = copy.deepcopy(new)
            self._controllers(res, probe, old)
            causes = transition_errors(res.schema, probe, old) if res.crd else \
                validate_update(res.group, res.kind, old, probe)
            if causes:
                raise invalid(res, md.get("name") or "", causes)
        if old is not None and spec_part(new) != spec_part(old):
            md["generation"] = int(old["metadata"].get("generation", 1)) + 1
        self._controllers(res, new, old)
        if old is not None and new == old:
            return self._view(res, old)
        if dry:
            return self._view(res, new)
        self._put(res, new, "ADDED" if old is None else "MODIFIED")
        if res.kind == "CustomResourceDefinition" and res.group == "apiextensions.k8s.io":
            self._register_crd(new)
        if (res.group, res.plural) in STORAGE_PROTECTION:
            self._sync_volumes()
        if (res.group, res.plural) in DS_INPUTS:
            self._sync_daemonsets()
        self._gc()
        return self._view(res, self.objects.get(self._key(res, md.get("namespace"), md["name"]), new))

    # ---- decoding (fieldValidation, pruning, quantities) ----------------------
    def _decode(self, res, raw, fv, sub=None):
        """A POST/PUT body as the apiserver's decoder sees it: typed kinds lose unknown fields
        and get canonical quantities, custom resources are pruned; the strict decoding errors
        go to fv (Strict: 400 `<Kind> in version "<v>" cannot be handled as a <Kind>: strict
        decoding error: ...`, as transformDecodeError words it)."""
        if isinstance(raw, dict) and not isinstance(raw, Pairs):
            raw = to_raw(raw)
        if not isinstance(raw, Pairs):
            raise bad_request("the body must be a JSON object")
        errs: list = []
        if res.crd:
            obj = plain(raw, errs)
            if res.schema is not None:
                errs += [f'unknown field "{p}"' for p in prune(obj, res.schema)]
        else:
            model = "V1Scale" if sub == "scale" else typed_model(res.group, res.kind)
            try:
                obj = typed_decode(model, raw, errs) if model else plain(raw)
            except QuantityError as e:
                raise self._decode_error(res, raw, str(e))
        (fv or FieldValidation("Ignore")).handle(errs, lambda text: self._decode_error(res, raw, text))
        return obj

    @staticmethod
    def _decode_error(res, raw, text):
        body = dict(raw) if isinstance(raw, Pairs) else {}
        av = body.get("apiVersion") if isinstance(body.get("apiVersion"), str) else ""
        kind = body.get("kind") if isinstance(body.get("kind"), str) and body.get("kind") else res.kind
        version = av.split("/")[-1] if av else res.version
        return bad_request(f'{kind} in version "{version}" cannot be handled as a {res.kind}: {text}')

    def _decode_patched(self, res, patched, fv, value, applied_errs, sub=None):
        """The object a merge/JSON/strategic patch produced, decoded as the patch handler does:
        strict errors (and invalid quantities) are 422 Invalid on the field `patch` of an
        unnamed object: ` "" is invalid: patch: Invalid value: "<patched object or patch map>":
        strict decoding error: ...` (k8s.io/apiserver pkg/endpoints/handlers/patch.go)."""
        def fail(text):
            return invalid_status("", "", "", [{"field": "patch", "reason": "FieldValueInvalid",
                                                "message": f"Invalid value: {go_quote(value())}: {text}"}])
        errs = list(applied_errs)
        if res.crd:
            obj = copy.deepcopy(patched)
            if res.schema is not None:
                errs += [f'unknown field "{p}"' for p in prune(obj, res.schema)]
        else:
            model = "V1Scale" if sub == "scale" else typed_model(res.group, res.kind)
            if model is None:
                return patched
            try:
                obj, unknown = typed_unknown_paths(model, patched)
            except QuantityError as e:
                raise fail(str(e))
            errs += sorted(unknown)
        (fv or FieldValidation("Ignore")).handle(errs, fail)
        return obj

    def create(self, res, ns, obj, manager, dry, fv=None):
        obj = self._decode(res, obj, fv)
        check_type(res, obj)
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise bad_request("metadata must be an object")
        if res.namespaced:
            if md.get("namespace") and md["namespace"] != ns:
                raise bad_request("the namespace of the provided object does not match the namespace sent on "
                                  "the request")
            md["namespace"] = ns
            self._check_ns(ns)
        else:
            md.pop("namespace", None)
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + uuid.uuid4().hex[:5]
        name = md.get("name") or ""
        if name and self._key(res, ns, name) in self.objects:
            raise ApiError(409, "AlreadyExists", f'{res.qual} "{name}" already exists',
                           {"name": name, "group": res.group, "kind": res.plural})
        for k in ("uid", "resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            md.pop(k, None)
        md.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        if res.status_sub:
            obj.pop("status", None)
        default_ports(obj)
        self._managed_update(res, None, obj, manager, None)
        return self._commit(res, None, obj, dry)

    def _check_ns(self, ns):
        nso = self.objects.get(("", "namespaces", "", ns))
        if nso is None:
            raise ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                           {"name": ns, "kind": "namespaces"})
        if nso["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "Forbidden", f"unable to create new content in namespace {ns} because it is "
                                             "being terminated",
                           {"name": ns, "kind": "namespaces"})

    def get(self, res, ns, name):
        obj = self.objects.get(self._key(res, ns, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{res.qual} "{name}" not found',
                           {"name": name, "group": res.group, "kind": res.plural})
        return obj

    def read(self, res, ns, name):
        key = self._key(res, ns, name)
        obj = self.get(res, ns, name)
        view = self._view(res, obj)
        self._on_read(key)
        return view

    def update(self, res, ns, name, body, manager, dry, sub=None, fv=None, decoded=False):
        live = self.get(res, ns, name)
        if not decoded:
            body = self._decode(res, body, fv, sub)
        if sub == "scale":
            spec = body.get("spec") or {}
            new = copy.deepcopy(live)
            rv = (body.get("metadata") or {}).get("resourceVersion")
            if rv and rv != live["metadata"]["resourceVersion"]:
                raise self._rv_conflict(res, name)
            if "replicas" in spec:
                new["spec"]["replicas"] = spec["replicas"]
            self._managed_update(res, live, new, manager, "scale")
            return scale_of(self._commit(res, live, new, dry))
        if sub == "status":
            rv = (body.get("metadata") or {}).get("resourceVersion")
            if rv and rv != live["metadata"]["resourceVersion"]:
                raise self._rv_conflict(res, name)
            new = copy.deepcopy(live)
            if "status" in body:
                new["status"] = copy.deepcopy(body["status"])
            else:
                new.pop("status", None)
            self._managed_update(res, live, new, manager, "status")
            return self._commit(res, live, new, dry, "status")
        check_type(res, body)
        md = body.setdefault("metadata", {})
        if md.get("name") not in (None, name):
            raise bad_request(f"the name of the object ({md.get('name')}) does not match the name on the URL ({name})")
        if res.namespaced and md.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                              "request")
        rv = md.get("resourceVersion")
        if rv and rv != live["metadata"]["resourceVersion"]:
            raise self._rv_conflict(res, name)
        md["name"] = name
        if res.namespaced:
            md["namespace"] = ns
        new = copy.deepcopy(body)
        if sub != "status" and res.status_sub:
            if "status" in live:
                new["status"] = copy.deepcopy(live["status"])
            else:
                new.pop("status", None)
        if "managedFields" not in md and live["metadata"].get("managedFields"):
            new["metadata"]["managedFields"] = copy.deepcopy(live["metadata"]["managedFields"])
        default_ports(new)
        self._managed_update(res, live, new, manager, sub)
        return self._commit(res, live, new, dry, sub)

    @staticmethod
    def _rv_conflict(res, name):
        return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.qual} "{name}": the object has '
                                         "been modified; please apply your changes to the latest version and try "
                                         "again", {"name": name, "group": res.group, "kind": res.plural})

    def patch(self, res, ns, name, ctype, body, q, manager, dry, sub=None, fv=None):
        if ctype == "application/apply-patch+yaml" and sub is None:
            if not q.get("fieldManager"):
                raise bad_request("PATCH, application/apply-patch+yaml requests must supply a fieldManager")
            try:
                cfg = plain(load_json(body or b"null"))
            except ValueError:
                raise bad_request("this test server accepts only JSON bodies for application/apply-patch+yaml")
            if not isinstance(cfg, dict):
                raise bad_request("the apply body must be an object")
            check_type(res, cfg, required=True)
            md = cfg.get("metadata") or {}
            if md.get("name") not in (None, name):
                raise bad_request(f"the name of the object ({md.get('name')}) does not match the name on the URL "
                                  f"({name})")
            if res.namespaced and md.get("namespace") not in (None, "", ns):
                raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                                  "request")
            self._ssa_check_schema(res, cfg)
            force = q.get("force") in ("true", "1", "True")
            live = self.objects.get(self._key(res, ns, name))
            if live is None:
                if res.namespaced:
                    self._check_ns(ns)
                new = self._apply(res, None, cfg, q["fieldManager"], force)
                new = self._ssa_typed(res, cfg, new)
                new["metadata"].update(name=name, uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
                if res.namespaced:
                    new["metadata"]["namespace"] = ns
                if res.status_sub:
                    new.pop("status", None)
                return self._commit(res, None, new, dry)
            rv = md.get("resourceVersion")
            if rv and rv != live["metadata"]["resourceVersion"]:
                raise self._rv_conflict(res, name)
            new = self._apply(res, live, cfg, q["fieldManager"], force)
            new = self._ssa_typed(res, cfg, new)
            return self._commit(res, live, new, dry)
        live = self.get(res, ns, name)
        try:
            raw = load_json(body or b"null")
        except ValueError:
            raise bad_request("the patch body is not valid JSON")
        applied_errs: list = []
        if ctype == "application/json-patch+json":
            # strict decoding of the operations themselves (patch.go applyJSPatch)
            for op in raw if isinstance(raw, list) else []:
                if isinstance(op, Pairs):
                    seen = set()
                    for k, _ in op:
                        if k not in ("op", "path", "from", "value"):
                            applied_errs.append(f'json patch unknown field "{k}"')
                        elif k in seen:
                            applied_errs.append(f'json patch duplicate field "{k}"')
                        seen.add(k)
            doc = plain(raw)
        else:
            doc = plain(raw, applied_errs)  # kjson.UnmarshalStrict of the patch: repeated keys
        cur = scale_of(self._view(res, live)) if sub == "scale" else self._view(res, live)
        if ctype in ("application/merge-patch+json", "application/apply-patch+yaml"):
            patched = merge_patch(cur, doc)
        elif ctype == "application/strategic-merge-patch+json":
            if res.crd:
                raise ApiError(415, "UnsupportedMediaType", "strategic merge patch is not supported for custom "
                                                            "resources; use a merge patch or server-side apply")
            patched = strategic_merge_patch(cur, doc)
        elif ctype == "application/json-patch+json":
            patched = json_patch(cur, doc)
        else:
            raise ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - '
                                                        f'accepted media types include: application/json-patch+json, '
                                                        f'application/merge-patch+json, '
                                                        f'application/apply-patch+yaml')
        if not isinstance(patched, dict):
            raise bad_request("the patched object is not an object")
        if ctype == "application/strategic-merge-patch+json":
            def value():  # fmt.Sprintf("%+v", patchMap)
                return go_plus_v(doc)
        else:
            def value():  # string(patchedObjJS)
                return json.dumps(patched, separators=(",", ":"))
        patched = self._decode_patched(res, patched, fv, value, applied_errs, sub)
        prv = (patched.get("metadata") or {}).get("resourceVersion")
        if prv and prv != live["metadata"]["resourceVersion"]:
            raise self._rv_conflict(res, name)
        return self.update(res, ns, name, patched, manager, dry, sub, fv, decoded=True)

    @staticmethod
    def _gvknn(res, cfg):
        """objectGVKNN of structured-merge-diff's errors: <ns>/<name>; <group>/<version>, Kind=<Kind>."""
        md = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
        av = cfg.get("apiVersion") or res.gv
        group, _, version = av.rpartition("/")
        return f'{md.get("namespace", "")}/{md.get("name", "")}; {group}/{version}, Kind={cfg.get("kind") or res.kind}'

    def _ssa_check_schema(self, res, cfg):
        """Server-side apply refuses fields the type does not declare, whatever fieldValidation says
        (structured-merge-diff's typed conversion of the patch): HTTP 500 without a reason, as
        upstream answers it (kubernetes/kubernetes#122480)."""
        if res.crd:
            errs = ssa_unknown_schema(res.schema, cfg) if res.schema is not None else []
        else:
            model = typed_model(res.group, res.kind)
            errs = ssa_unknown_typed(model, cfg, assoc_keys) if model else []
        if errs:
            raise ApiError(500, "", f"failed to create typed patch object ({self._gvknn(res, cfg)}): "
                                    f"{smd_error_text(errs)}")

    def _ssa_typed(self, res, cfg, merged):
        """The applied result converted to the typed object (canonical quantities); an invalid
        quantity fails that conversion (500, structuredmerge.go's wording)."""
        model = None if res.crd else typed_model(res.group, res.kind)
        if model is None:
            return merged
        try:
            return typed_decode(model, to_raw(merged))
        except QuantityError as e:
            g = self._gvknn(res, cfg)
            gvk = g.split("; ", 1)[1]
            raise ApiError(500, "", f"failed to convert new object ({g}) to proper version: unable to convert "
                                    f"unstructured object to {gvk}: {e}")

    def delete(self, res, ns, name, opts, dry):
        key = self._key(res, ns, name)
        live = self.get(res, ns, name)
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != live["metadata"]["uid"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.qual} "{name}": Precondition '
                                            f'failed: UID in precondition: {pre["uid"]}, UID in object meta: '
                                            f'{live["metadata"]["uid"]}', {"name": name, "group": res.group,
                                                                            "kind": res.plural})
        if pre.get("resourceVersion") and pre["resourceVersion"] != live["metadata"]["resourceVersion"]:
            raise self._rv_conflict(res, name)
        pol = opts.get("propagationPolicy")
        if pol not in (None, "Orphan", "Background", "Foreground"):
            raise bad_request(f"unknown propagationPolicy {pol!r}")
        if res.plural == "namespaces" or live["metadata"].get("finalizers"):
            new = copy.deepcopy(live)
            if not new["metadata"].get("deletionTimestamp"):
                new["metadata"]["deletionTimestamp"] = now()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                new["metadata"]["generation"] = int(new["metadata"].get("generation", 1)) + 1
            self._controllers(res, new, live)
            if dry:
                return self._view(res, new)
            if new != live:
                self._put(res, new, "MODIFIED")
            if res.plural == "namespaces":
                for k in [k for k in self.objects if k[2] == name and k[:2] != ("", "namespaces")]:
                    r = self._res_for_key(k)
                    if r is not None and k in self.objects:
                        self.delete(r, k[2], k[3], {}, False)
                self._gc()
            return self._view(res, self.objects.get(key, new))
        view = self._view(res, live)
        if not dry:
            if (res.group, res.plural) == ("apps", "daemonsets") and pol == "Orphan":
                self._orphan_pods(live["metadata"]["uid"])
            self._remove(res, key)
            self._gc()
        return view

    def list(self, res, ns, q):
        labels = parse_label_selector(q.get("labelSelector", ""))
        fields = parse_field_selector(q.get("fieldSelector", ""), res)
        items = []
        for key in sorted(k for k in self.objects if k[:2] == (res.group, res.plural)):
            if res.namespaced and ns and key[2] != ns:
                continue
            obj = self.objects[key]
            if match_labels(labels, (obj["metadata"].get("labels") or {})) and match_fields(fields, obj):
                items.append((key, self._view(res, obj)))
        out = {"kind": res.kind + "List", "apiVersion": res.gv,
               "metadata": {"resourceVersion": str(self.rv)}, "items": [v for _, v in items]}
        for key, _ in items:
            self._on_read(key)
        return out


def log(msg):
    sys.stderr.write(f"kube_server: {msg}\n")
    sys.stderr.flush()


NODECLASS_CONDITIONS = ("AMIsReady", "InstanceProfileReady", "SecurityGroupsReady", "SubnetsReady",
                        "ValidationSucceeded")


def nodeclass_conditions(obj, previous, problem):
    """EC2NodeClass status.conditions as Karpenter v1 (operatorpkg) writes them, sorted by type:
    every dependent condition True (reason = its type) and Ready True; or, for
    problem = (type, reason, message), that condition False and Ready False with reason
    UnhealthyDependents and message "<type>=False"."""
    gen = obj["metadata"].get("generation", 1)
    prev = {c.get("type"): c for c in previous or [] if isinstance(c, dict)}
    t = now()

    def cond(ctype, ok, reason, message):
        status = "True" if ok else "False"
        p = prev.get(ctype) or {}
        return {"type": ctype, "status": status, "reason": reason, "message": message, "observedGeneration": gen,
                "lastTransitionTime": p.get("lastTransitionTime") if p.get("status") == status
                and p.get("lastTransitionTime") else t}

    out = []
    for ctype in NODECLASS_CONDITIONS:
        if problem and problem[0] == ctype:
            out.append(cond(ctype, False, problem[1], problem[2]))
        else:
            out.append(cond(ctype, True, ctype, ""))
    out.append(cond("Ready", False, "UnhealthyDependents", f"{problem[0]}=False") if problem
               else cond("Ready", True, "Ready", ""))
    return sorted(out, key=lambda c: c["type"])


def is_alb(obj):
    spec = obj.get("spec") or {}
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    return spec.get("ingressClassName") == "alb" or ann.get("kubernetes.io/ingress.class") == "alb"


def spec_part(obj):
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def check_type(res, obj, required=False):
    av, kind = obj.get("apiVersion"), obj.get("kind")
    if required and (not av or not kind):
        raise bad_request("apiVersion and kind are required")
    if av is not None and av != res.gv:
        # CRs may be sent with any served version of the group
        if not (res.group and av.startswith(res.group + "/")):
            raise bad_request(f"the API version in the data ({av}) does not match the expected API version "
                              f"({res.gv})")
    if kind is not None and kind != res.kind:
        raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({res.kind})")


def scale_of(dep):
    md = dep["metadata"]
    sel = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in md},
            "spec": {"replicas": (dep.get("spec") or {}).get("replicas", 1)},
            "status": {"replicas": (dep.get("status") or {}).get("replicas", 0),
                       "selector": ",".join(f"{k}={v}" for k, v in sorted(sel.items()))}}


def apply_merge(live, cfg, name=None):
    if isinstance(cfg, dict) and isinstance(live, dict) and not is_atomic_dict(cfg):
        out = dict(live)
        for k, v in cfg.items():
            out[k] = apply_merge(live[k], v, k) if k in live else copy.deepcopy(v)
        return out
    if isinstance(cfg, list) and isinstance(live, list):
        keys = assoc_keys(name, cfg)
        if keys and (not live or assoc_keys(name, live) == keys):
            result = copy.deepcopy(live)
            index = {item_key(x, keys): i for i, x in enumerate(result)}
            for item in cfg:
                k = item_key(item, keys)
                if k in index:
                    result[index[k]] = apply_merge(result[index[k]], item)
                else:
                    result.append(copy.deepcopy(item))
            return result
    return copy.deepcopy(cfg)


def prune_empty(obj, path, keep):
    while path:
        node = get_at(obj, path)
        if node != {} or path in keep or not path[-1].startswith("f:"):
            return
        remove_at(obj, path)
        path = path[:-1]


def apply_schema_defaults(obj, schema):
    if not isinstance(schema, dict) or not isinstance(obj, dict):
        return
    for k, sub in (schema.get("properties") or {}).items():
        if k in ("metadata", "apiVersion", "kind"):
            continue
        if k not in obj and isinstance(sub, dict) and "default" in sub:
            obj[k] = copy.deepcopy(sub["default"])
        if k in obj:
            if isinstance(obj[k], dict):
                apply_schema_defaults(obj[k], sub)
            elif isinstance(obj[k], list) and isinstance(sub.get("items"), dict):
                for it in obj[k]:
                    apply_schema_defaults(it, sub["items"])


def conflict_error(res, name, conflicts):
    by_mgr: dict = {}
    for e, p in conflicts:
        by_mgr.setdefault(e["manager"], []).append((e, p))
    causes = []
    for e, p in conflicts:
        ident = f'"{e["manager"]}"'
        if e.get("subresource"):
            ident += f' with subresource "{e["subresource"]}"'
        ident += f' using {e.get("apiVersion", res.gv)}'
        causes.append({"type": "FieldManagerConflict", "message": f"conflict with {ident}", "field": path_str(p)})
    if len(causes) == 1:
        body = f'{causes[0]["message"]}: {causes[0]["field"]}'
    else:
        lines = []
        seen = []
        for c in causes:
            if c["message"] not in seen:
                seen.append(c["message"])
        for m in seen:
            lines.append(m.replace("conflict with", "conflicts with", 1) + ":")
            lines += [f'- {c["field"]}' for c in causes if c["message"] == m]
        body = "\n".join(lines)
    n = len(causes)
    return ApiError(409, "Conflict", f"Apply failed with {n} conflict{'s' if n != 1 else ''}: {body}",
                    {"name": name, "group": res.group, "kind": res.plural, "causes": causes})


def _pb_fields(buf):
    """(field number, value) pairs of a protobuf message; value is int or bytes."""
    i, out = 0, []

    def varint():
        nonlocal i
        shift = val = 0
        while True:
            b = buf[i]
            i += 1
            val |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return val

    while i < len(buf):
        tag = varint()
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            out.append((num, varint()))
        elif wt == 2:
            n = varint()
            out.append((num, buf[i:i + n]))
            i += n
        elif wt == 1:
            i += 8
        elif wt == 5:
            i += 4
        else:
            raise bad_request("unsupported protobuf wire type")
    return out


def protobuf_namespace(body: bytes) -> dict:
    """JSON for a protobuf-encoded v1 Namespace (kubectl create namespace uses protobuf):
    metadata name/generateName/labels/annotations only."""
    if not body.startswith(b"k8s\x00"):
        raise ApiError(415, "UnsupportedMediaType", "not a kubernetes protobuf envelope")
    try:
        raw = next(v for n, v in _pb_fields(body[4:]) if n == 2)
        md = {}
        for n, v in _pb_fields(raw):
            if n != 1:
                continue
            for fn, fv in _pb_fields(v):
                if fn in (1, 2) and fv:
                    md["name" if fn == 1 else "generateName"] = fv.decode()
                elif fn in (11, 12):
                    kv = dict(_pb_fields(fv))
                    md.setdefault("labels" if fn == 11 else "annotations", {})[kv.get(1, b"").decode()] = \
                        kv.get(2, b"").decode()
    except (StopIteration, IndexError, UnicodeDecodeError):
        raise bad_request("cannot decode the protobuf Namespace")
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": md}


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------

VERSION_INFO = {"major": "1", "minor": "33", "gitVersion": "v1.33.5-eks-3025e55",
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2026-10-01T00:00:00Z", "goVersion": "go1.24.6", "compiler": "gc",
                "platform": "linux/amd64"}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# An empty OpenAPI v2 document (gnostic openapi_v2.Document protobuf: swagger "2.0", info
# {title, version}, nothing else). kubectl's client-side validation then skips every kind.
OPENAPI_V2 = b"\x0a\x032.0\x12\x0e\x0a\x0aKubernetes\x12\x00"


class Watch:
    def __init__(self, res, ns, q):
        self.res, self.ns, self.q = res, ns, q


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "comfyplat-kube-test-server"
    store: Store = None  # set in serve()
    verbose = False

    def log_message(self, fmt, *args):
        if self.verbose:
            sys.stderr.write("kube_server: " + (fmt % args) + "\n")

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")

    def _send(self, code, obj):
        ctype = "application/json"
        if isinstance(obj, bytes):
            data, ctype = obj, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        else:
            data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        fv = getattr(self, "fv", None)
        if fv is not None and code < 300:
            for w in fv.warnings:
                self.send_header("Warning", warning_header(w))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method):
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        q = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
        store = self.store
        if path.startswith("/__control/"):
            try:
                return self._control(method, path, body)
            except ApiError as e:
                return self._send(e.code, e.status())
        with store.lock:
            store.requests.append({"method": method, "path": path, "query": q, "write": method in WRITE_METHODS,
                                   "dryRun": q.get("dryRun") == "All"})
        why = check_token(self.headers.get("Authorization"), store.region)
        if why:
            return self._send(401, ApiError(401, "Unauthorized", "Unauthorized").status())
        try:
            with store.lock:
                self.fv = None
                result = self._dispatch(method, path, q, body)
            if isinstance(result, Watch):
                return self._watch(result)
            if isinstance(result, LogStream):
                return self._log(result)
            code, obj = result
            self._send(code, obj)
        except ApiError as e:
            self._send(e.code, e.status())
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # pragma: no cover - a bug in the server
            import traceback
            traceback.print_exc()
            self._send(500, ApiError(500, "InternalError", f"internal error: {e!r}").status())

    # ---- test control ---------------------------------------------------------
    def _control(self, method, path, body):
        store = self.store
        if path == "/__control/reset" and method == "POST":
            store.reset()
            return self._send(200, {"reset": True})
        if path == "/__control/requests" and method == "GET":
            with store.lock:
                return self._send(200, list(store.requests))
        doc = None
        if method == "POST":
            try:
                doc = json.loads(body or b"null")
            except ValueError:
                raise bad_request("the request body is not valid JSON")
        if path == "/__control/nodes" and method == "POST":
            with store.lock:
                return self._send(200, {"nodes": store.set_nodes(doc)})
        if path.startswith("/__control/nodes/") and method == "DELETE":
            with store.lock:
                return self._send(200, store.delete_node(path[len("/__control/nodes/"):]))
        if path == "/__control/pods/log" and method == "POST":
            with store.lock:
                return self._send(200, store.control_pod(doc))
        return self._send(404, not_found_path().status())

    # ---- routing ----------------------------------------------------------
    def _dispatch(self, method, path, q, body):
        store = self.store
        if method == "GET":
            d = self._discovery(path)
            if d is not None:
                return 200, d
        segs = path.strip("/").split("/")
        if segs[0] == "api" and len(segs) >= 3 and segs[1] == "v1":
            group, version, rest = "", "v1", segs[2:]
        elif segs[0] == "apis" and len(segs) >= 4:
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise not_found_path()
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            ns, rest = rest[1], rest[2:]
        res = store.find_res(group, version, rest[0])
        if ns is not None and not res.namespaced:
            raise not_found_path()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or (sub and not ((sub == "status" and res.status_sub) or (sub == "scale" and res.scale_sub)
                                          or (sub == "log" and res.log_sub))):
            raise not_found_path()
        if res.namespaced and name is not None and ns is None:
            raise not_found_path()
        if sub == "log":
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                                                        "resource")
            return store.pod_log(ns, name, q)
        dry = False
        if "dryRun" in q:
            if q["dryRun"] != "All":
                raise bad_request(f'Invalid dry run value {q["dryRun"]!r}: only "All" is supported')
            dry = True
        manager = q.get("fieldManager") or (self.headers.get("User-Agent") or "").split("/")[0][:128] or "unknown"
        if method in ("POST", "PUT", "PATCH"):
            directive = q.get("fieldValidation", "")
            if directive not in FIELD_VALIDATION_VALUES:
                opts = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions"}[method]
                raise invalid_status("meta.k8s.io", opts, "", [{
                    "field": "fieldValidation", "reason": "FieldValueNotSupported",
                    "message": f"Unsupported value: {go_quote(directive)}: supported values: "
                               + ", ".join(go_quote(v) for v in FIELD_VALIDATION_VALUES)}])
            self.fv = FieldValidation(directive)
        doc = None
        if method in ("POST", "PUT") or (method == "DELETE" and body):
            ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
            if ctype == "application/vnd.kubernetes.protobuf" and (group, rest[0]) == ("", "namespaces"):
                body, ctype = json.dumps(protobuf_namespace(body)).encode(), "application/json"
            if ctype not in ("application/json", "*/*"):
                raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                                                            f"accepted media types include: application/json")
            try:
                doc = load_json(body) if body else None
                if method == "DELETE":
                    doc = plain(doc)
            except ValueError:
                raise bad_request("the request body is not valid JSON")
        if name is None:
            if method == "GET":
                if q.get("watch") in ("true", "1"):
                    return Watch(res, ns, q)
                return 200, store.list(res, ns, q)
            if method == "POST":
                if res.namespaced and ns is None:
                    raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the "
                                                            "requested resource")
                obj = store.create(res, ns, doc, manager, dry, self.fv)
                return 201, obj
            if method == "DELETE":
                lst = store.list(res, ns, q)
                for item in lst["items"]:
                    md = item["metadata"]
                    if store._key(res, md.get("namespace"), md["name"]) in store.objects:
                        store.delete(res, md.get("namespace"), md["name"], {}, dry)
                return 200, lst
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                                                    "resource")
        if method == "GET":
            obj = store.read(res, ns, name)
            return 200, (scale_of(obj) if sub == "scale" else obj)
        if method == "PUT":
            return 200, store.update(res, ns, name, doc, manager, dry, sub, self.fv)
        if method == "PATCH":
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            return 200, store.patch(res, ns, name, ctype, body, q, manager, dry, sub, self.fv)
        if method == "DELETE" and sub is None:
            opts = doc if isinstance(doc, dict) else {}
            if "propagationPolicy" in q:
                opts.setdefault("propagationPolicy", q["propagationPolicy"])
            if opts.get("dryRun") and opts["dryRun"] != ["All"]:
                raise bad_request("Invalid dry run value")
            dry = dry or opts.get("dryRun") == ["All"]
            obj = store.delete(res, ns, name, opts, dry)
            pending = obj["metadata"].get("deletionTimestamp") and (
                dry or store._key(res, ns, name) in store.objects)
            return (202 if pending else 200), obj
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _discovery(self, path):
        store = self.store
        if path == "/version":
            return VERSION_INFO
        if path == "/api":
            port = self.server.server_address[1]
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": f"{HOST}:{port}"}]}
        if path == "/api/v1":
            return self._resource_list("", "v1")
        groups = store.groups()
        if path == "/apis":
            return {"kind": "APIGroupList", "apiVersion": "v1",
                    "groups": [self._group(g, groups[g]) for g in sorted(groups, key=self._group_order) if g]}
        segs = path.strip("/").split("/")
        if segs[0] == "apis" and len(segs) == 2:
            if segs[1] not in groups or not segs[1]:
                raise not_found_path()
            return {"kind": "APIGroup", "apiVersion": "v1", **self._group(segs[1], groups[segs[1]])}
        if segs[0] == "apis" and len(segs) == 3:
            if segs[2] not in groups.get(segs[1], ()):
                raise not_found_path()
            return self._resource_list(segs[1], segs[2])
        if path == "/openapi/v3":
            return {"paths": {gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={self._gv_hash(gv)}"}
                              for gv in self._gv_paths()}}
        if path.startswith("/openapi/v3/"):
            gv = path[len("/openapi/v3/"):]
            if gv not in self._gv_paths():
                raise not_found_path()
            return self._openapi_v3(gv)
        if path == "/openapi/v2":
            return OPENAPI_V2
        if path.startswith("/openapi"):
            raise not_found_path()
        return None

    def _gv_paths(self):
        return sorted({f"apis/{r.group}/{r.version}" if r.group else "api/v1" for r in self.store.resources.values()})

    def _gv_hash(self, gv):
        return hashlib.sha256(json.dumps(self._openapi_v3(gv), sort_keys=True).encode()).hexdigest()[:16].upper()

    def _openapi_v3(self, gv):
        """Just enough OpenAPI v3 for kubectl: one PATCH operation per kind that declares the
        fieldValidation query parameter, so kubectl relies on server-side validation (which
        this server does not do: fieldValidation is ignored). No schemas."""
        paths = {}
        for r in self.store.resources.values():
            if (f"apis/{r.group}/{r.version}" if r.group else "api/v1") != gv:
                continue
            ns = "namespaces/{namespace}/" if r.namespaced else ""
            paths[f"/{gv}/{ns}{r.plural}/{{name}}"] = {"patch": {
                "operationId": f"patch{r.kind}",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                               {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                               {"name": "dryRun", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK"}}}}
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": VERSION_INFO["gitVersion"]},
                "paths": paths, "components": {"schemas": {}}}

    @staticmethod
    def _group_order(g):
        builtin = [r.group for r in BUILTINS]
        return (0, builtin.index(g), g) if g in builtin else (1, 0, g)

    @staticmethod
    def _group(name, versions):
        vs = sorted(versions, key=version_priority, reverse=True)
        gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in vs]
        return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}

    def _resource_list(self, group, version):
        rs = [r for (g, v, _), r in self.store.resources.items() if g == group and v == version]
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": [d for r in rs for d in r.discovery()]}

    # ---- pods/log ---------------------------------------------------------------
    def _log(self, ls: LogStream):
        """text/plain; with follow a chunked stream of the lines appended later, until the pod
        goes, the client leaves, limitBytes is reached or store.log_follow_timeout."""
        if not ls.follow:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(ls.data)))
            self.end_headers()
            self.wfile.write(ls.data)
            return
        store = self.store
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def emit(data):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        deadline = time.monotonic() + store.log_follow_timeout
        remaining, nxt = ls.remaining, ls.next
        try:
            if ls.data:
                emit(ls.data)
            while time.monotonic() < deadline and (remaining is None or remaining > 0):
                with store.lock:
                    live = store.objects.get(ls.pod_key)
                    alive = live is not None and live["metadata"].get("uid") == ls.key[0]
                    new = (store.pod_logs.get(ls.key) or [])[nxt:]
                    if not new:
                        if not alive:
                            break
                        store.cond.wait(min(0.1, max(0.0, deadline - time.monotonic())))
                        new = (store.pod_logs.get(ls.key) or [])[nxt:]
                    nxt += len(new)
                data = render_log(new, ls.timestamps)
                if remaining is not None:
                    data = data[:remaining]
                    remaining -= len(data)
                if data:
                    emit(data)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        self.close_connection = True

    # ---- watch ----------------------------------------------------------------
    def _watch(self, w: Watch):
        store = self.store
        labels = parse_label_selector(w.q.get("labelSelector", ""))
        fields = parse_field_selector(w.q.get("fieldSelector", ""), w.res)
        timeout = float(w.q.get("timeoutSeconds") or 600)
        deadline = time.monotonic() + min(timeout, 3600)
        res = w.res

        def matches(obj):
            return match_labels(labels, obj["metadata"].get("labels") or {}) and match_fields(fields, obj)

        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def emit(ev):
            data = (json.dumps(ev) + "\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        rv_param = w.q.get("resourceVersion", "")
        initial = w.q.get("sendInitialEvents") in ("true", "1")
        pending = []
        with store.lock:
            if rv_param in ("", "0") or initial:
                for key in sorted(k for k in store.objects if k[:2] == (res.group, res.plural)):
                    if w.ns and key[2] != w.ns:
                        continue
                    obj = store.objects[key]
                    if matches(obj):
                        pending.append({"type": "ADDED", "object": store._view(res, obj)})
                last = store.rv
            else:
                last = int(rv_param) if rv_param.isdigit() else store.rv
                if last < store.event_base:
                    pending.append({"type": "ERROR", "object": ApiError(410, "Expired", "too old resource version")
                                    .status()})
            if initial:
                pending.append({"type": "BOOKMARK", "object": {
                    "kind": res.kind, "apiVersion": res.gv,
                    "metadata": {"resourceVersion": str(last),
                                 "annotations": {"k8s.io/initial-events-end": "true"}}}})
        try:
            for ev in pending:
                emit(ev)
            if pending and pending[-1]["type"] == "ERROR":
                raise BrokenPipeError
            while time.monotonic() < deadline:
                with store.lock:
                    if (res.group, res.version, res.plural) not in store.resources:
                        break
                    for key in [k for k in store.objects if k[:2] == (res.group, res.plural)
                                and (not w.ns or k[2] == w.ns)]:
                        store._on_read(key)
                    evs = [e for e in store.events if e[0] > last and e[2:4] == (res.group, res.plural)
                           and (not w.ns or e[4] == w.ns)]
                    if not evs:
                        store.cond.wait(0.1)
                        evs = [e for e in store.events if e[0] > last and e[2:4] == (res.group, res.plural)
                               and (not w.ns or e[4] == w.ns)]
                    if store.events:
                        last = max(last, store.events[-1][0])
                    out = [{"type": e[1], "object": store._view(res, e[6])} for e in evs if matches(e[6])]
                for ev in out:
                    emit(ev)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        self.close_connection = True


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------




def make_certs(directory: str) -> dict:
    """A throw-away CA and a 127.0.0.1/localhost server certificate signed by it (openssl CLI).

    A separate CA (not a self-signed leaf) because rustls/webpki refuses a CA certificate used
    as the end-entity certificate."""
    import subprocess

    def run(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650", "-subj", "/CN=kube-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(directory, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "tls.crt", "-days", "3650", "-extfile", "ext.cnf")
    with open(os.path.join(directory, "ca.crt"), "rb") as f:
        ca_pem = f.read()
    return {"ca_file": os.path.join(directory, "ca.crt"), "ca_data": base64.b64encode(ca_pem).decode(),
            "cert": os.path.join(directory, "tls.crt"), "key": os.path.join(directory, "tls.key")}


def serve_tls(server, directory: str) -> dict:
    """make_certs() in `directory`, then serve `server` (a socketserver, not yet serving) over TLS
    with them: HTTP/1.1 only (ALPN), handshake in the handler thread. Returns make_certs()'s dict."""
    import ssl

    certs = make_certs(directory)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs["cert"], certs["key"])
    ctx.set_alpn_protocols(["http/1.1"])
    server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    return certs


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5: a client opening many connections at once
    # (kube-rs with a concurrent first round, or the recording proxy, which opens one upstream
    # connection per request) overflows it and the kernel drops SYNs, which the client only
    # retransmits after a second. Real API servers listen with the kernel's full backlog.
    request_queue_size = 128
    verbose = False
    store: Store = None
    tmpdir = None
    thread = None

    def handle_error(self, request, client_address):
        # TLS handshake failures, clients going away: one line at most
        if self.verbose:
            sys.stderr.write(f"kube_server: connection error from {client_address}: {sys.exc_info()[1]!r}\n")

    def stop(self):
        """Stop serving, close the socket, remove the TLS temp dir."""
        if self.thread is not None:
            self.shutdown()
            self.thread = None
        self.server_close()
        if self.tmpdir:
            import shutil
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


def start(region: str = "us-west-2", *, tls: bool = True, port: int = 0, verbose: bool = False,
          store: Store | None = None) -> tuple[Server, dict]:
    """Serve on 127.0.0.1:port (0 = a free port) on a daemon thread; returns (server, info).

    info: {"port", "endpoint"} and, with tls, {"ca_file", "ca_data"} (the CA lives in a temp dir
    that server.stop() removes). `store` defaults to a fresh Store(region)."""
    store = store if store is not None else Store(region)
    handler = type("BoundHandler", (Handler,), {"store": store, "verbose": verbose})
    server = Server((HOST, port), handler)
    server.verbose = verbose
    server.store = store
    port = server.server_address[1]
    info = {"port": port, "endpoint": f"http://{HOST}:{port}"}
    if tls:
        import tempfile
        server.tmpdir = tempfile.mkdtemp(prefix="kube-server-tls-")
        try:
            certs = serve_tls(server, server.tmpdir)
        except BaseException:
            server.stop()
            raise
        info.update(endpoint=f"https://{HOST}:{port}", ca_file=certs["ca_file"], ca_data=certs["ca_data"])
    server.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                                     name=f"kube-server-{port}")
    server.thread.start()
    return server, info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--region", default="us-west-2")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--tls", action="store_true",
                        help="serve HTTPS with a fresh CA (kubectl sends tokens only over TLS)")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server, info = start(args.region, tls=args.tls, port=args.port, verbose=args.verbose)
    write_json_atomic(args.ready_file, {"port": info["port"], "pid": os.getpid(), **info})
    while not stop.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
