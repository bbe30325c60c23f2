//! The rules of `spec.pod`'s workload settings and `spec.storage`'s volumes: what a
//! person who may write a VaultCluster, but not Pods, may ask of the Vault pods.
//!
//! Its own module because each of these fields reaches into the pod vaultkeeper renders
//! (its command line, ports, /etc/hosts, mounts), so each rule is also a security
//! boundary, documented in docs/security.md.

use super::SpecRule;

/// The container ports vaultkeeper renders on the Vault container (API, cluster,
/// replication); `spec.pod.extraPorts` may not reuse them.
pub const RENDERED_PORTS: &[i32] = &[8200, 8201, 8202];

/// The names of [`RENDERED_PORTS`] with and without TLS.
pub const RENDERED_PORT_NAMES: &[&str] =
    &["http", "https", "https-internal", "http-rep", "https-rep"];

/// The shape of one `spec.pod.extraArgs` entry: a flag, with its value after `=`.
pub const EXTRA_ARG_FORM: &str = "^--?[a-z][-a-z0-9]*(=.*)?$";

/// `vault server` flags vaultkeeper relies on not being given: a second configuration
/// file, the dev server and recovery mode.
pub const EXTRA_ARG_RESERVED: &str = "^--?(config|recovery|dev(-[-a-z0-9]*)?)(=.*)?$";

fn quoted_list<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every `spec.pod.extraArgs` entry is one flag (it is quoted into the start script, so
/// it cannot be anything else, but a bare word would be taken as a positional argument).
pub fn extra_args_form() -> SpecRule {
    SpecRule::new(
        "spec.pod.extraArgs",
        format!("!has(self.extraArgs) || self.extraArgs.all(a, a.matches('{EXTRA_ARG_FORM}'))"),
        "spec.pod.extraArgs must hold one flag per entry, written -flag or -flag=value (for \
         example -log-level=debug): split \"-log-level debug\" into \"-log-level=debug\"",
    )
    .at(".extraArgs")
}

/// `spec.pod.extraArgs` may not override what vaultkeeper passes to the server.
pub fn extra_args_not_reserved() -> SpecRule {
    SpecRule::new(
        "spec.pod.extraArgs",
        format!(
            "!has(self.extraArgs) || self.extraArgs.all(a, !a.matches('{EXTRA_ARG_RESERVED}'))"
        ),
        "spec.pod.extraArgs may not contain -config, -dev* or -recovery: vaultkeeper passes \
         the configuration it renders and relies on a normal server it can initialize, \
         unseal and join; put server settings in spec.config and remove the flag",
    )
    .at(".extraArgs")
}

/// `spec.pod.extraPorts` may not take the ports or port names vaultkeeper renders.
pub fn extra_ports_no_clash() -> SpecRule {
    SpecRule::new(
        "spec.pod.extraPorts",
        format!(
            "!has(self.extraPorts) || self.extraPorts.all(p, !(p.containerPort in [{}]) && \
             !(has(p.name) && p.name in [{}]))",
            RENDERED_PORTS
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            quoted_list(RENDERED_PORT_NAMES)
        ),
        format!(
            "spec.pod.extraPorts may not use the container ports {} or the names {}: \
             vaultkeeper renders those for the API, cluster and replication listeners; pick \
             another port and name",
            RENDERED_PORTS
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            RENDERED_PORT_NAMES.join(", ")
        ),
    )
    .at(".extraPorts")
}

/// `spec.pod.extraPorts` may not open a port on the node.
pub fn extra_ports_no_host_port() -> SpecRule {
    SpecRule::new(
        "spec.pod.extraPorts",
        "!has(self.extraPorts) || self.extraPorts.all(p, (!has(p.hostPort) || p.hostPort == 0) \
         && (!has(p.hostIP) || p.hostIP == ''))",
        "spec.pod.extraPorts may not set hostPort or hostIP: a port on the node's address \
         would reach Vault past its Services and NetworkPolicy; remove them and expose the \
         port through a Service",
    )
    .at(".extraPorts")
}

/// `spec.pod.hostAliases` may not shadow in-cluster names. The cluster's own Service and
/// pod names are checked by the operator too (the rule cannot know them).
pub fn host_aliases_not_in_cluster() -> SpecRule {
    SpecRule::new(
        "spec.pod.hostAliases",
        "!has(self.hostAliases) || self.hostAliases.all(h, !has(h.hostnames) || \
         h.hostnames.all(n, n != 'localhost' && !n.endsWith('.svc') && !n.contains('.svc.')))",
        HOST_ALIAS_MESSAGE,
    )
    .at(".hostAliases")
}

const HOST_ALIAS_MESSAGE: &str = "spec.pod.hostAliases may not name localhost, an in-cluster \
     Service (*.svc, *.svc.*) or this cluster's own Services and pods: the Vault pods reach \
     each other and their peers by those names; alias only names outside the cluster";

/// Whether `spec.pod.hostAliases` may map `hostname` (the CEL rule's check).
pub fn host_alias_allowed(hostname: &str) -> bool {
    hostname != "localhost" && !hostname.ends_with(".svc") && !hostname.contains(".svc.")
}

/// Whether `hostname` names one of this cluster's own Services or pods in a form the pods
/// resolve without `.svc` (which [`host_alias_allowed`] refuses already): a bare Service
/// name (`vault-active`), one qualified by a namespace (`vault-active.secrets`), or a pod
/// under the internal Service (`vault-0.vault-internal`, `vault-0.vault-internal.secrets`).
/// Operator-only: the CRD's rule cannot know the names.
pub fn host_alias_names_cluster(hostname: &str, names: &crate::ClusterNames) -> bool {
    let own = [
        names.service(),
        names.active_service(),
        names.standby_service(),
        names.internal_service(),
        names.ui_service(),
        names.statefulset(),
    ];
    let labels: Vec<&str> = hostname.split('.').collect();
    (labels.len() <= 2 && own.iter().any(|s| s == labels[0]))
        || labels.get(1) == Some(&names.internal_service().as_str())
}

/// The message of [`host_aliases_not_in_cluster`], for the operator's own check.
pub fn host_alias_message() -> &'static str {
    HOST_ALIAS_MESSAGE
}

/// Kubernetes refuses a liveness probe whose successThreshold is not 1.
pub fn liveness_success_threshold() -> SpecRule {
    SpecRule::new(
        "spec.pod.livenessProbe.successThreshold",
        "!has(self.livenessProbe) || !has(self.livenessProbe.successThreshold) || \
         self.livenessProbe.successThreshold == 1",
        "spec.pod.livenessProbe.successThreshold must be 1: Kubernetes accepts no other \
         value for a liveness probe; remove it or set 1",
    )
    .at(".livenessProbe.successThreshold")
}

/// A probe path is an absolute HTTP path.
pub fn probe_path_absolute() -> SpecRule {
    SpecRule::new(
        "spec.pod.readinessProbe.path",
        "!has(self.path) || self.path.startsWith('/')",
        "spec.pod.readinessProbe.path and spec.pod.livenessProbe.path must start with /, for \
         example /v1/sys/health?standbyok=true",
    )
    .at(".path")
}

/// The `vaultkeeper.io/` annotation prefix is the operator's.
pub fn statefulset_annotations_not_reserved() -> SpecRule {
    SpecRule::new(
        "spec.pod.statefulSetAnnotations",
        "!has(self.statefulSetAnnotations) || \
         self.statefulSetAnnotations.all(k, !k.startsWith('vaultkeeper.io/'))",
        "spec.pod.statefulSetAnnotations may not use keys under vaultkeeper.io/: that prefix \
         is vaultkeeper's own; choose another prefix",
    )
    .at(".statefulSetAnnotations")
}

/// Directories a volume may not be mounted at, over or under: what vaultkeeper mounts
/// (configuration, Secrets, HOME, for both flavors) and the ServiceAccount token's
/// directory.
pub const RESERVED_MOUNT_DIRS: &[&str] = &[
    "/vault/config",
    "/vault/userconfig",
    "/home/vault",
    "/openbao/config",
    "/openbao/userconfig",
    "/home/openbao",
    "/var/run/secrets",
    "/run/secrets",
];

/// An absolute path of plain segments (no `.` or `..`, no empty segment, no trailing `/`).
pub const MOUNT_PATH_FORM: &str = "^(/[^/]+)+$";

/// A `.` or `..` segment.
pub const MOUNT_PATH_DOTS: &str = "(^|/)[.][.]?(/|$)";

/// A volume's `mountPath` is absolute and stays clear of what vaultkeeper mounts.
pub fn storage_mount_path(field: &'static str) -> SpecRule {
    SpecRule::new(
        field,
        format!(
            "!has(self.mountPath) || (self.mountPath.matches('{MOUNT_PATH_FORM}') && \
             !self.mountPath.matches('{MOUNT_PATH_DOTS}') && [{}].all(r, self.mountPath != r \
             && !self.mountPath.startsWith(r + '/') && !r.startsWith(self.mountPath + '/')))",
            quoted_list(RESERVED_MOUNT_DIRS)
        ),
        format!(
            "{field} must be an absolute path without . or .. segments or a trailing /, \
             and neither at, above nor below {}: vaultkeeper mounts the configuration, the \
             TLS and seal Secrets and HOME there; choose a path such as /vault/file",
            RESERVED_MOUNT_DIRS.join(", ")
        ),
    )
    .at(".mountPath")
}

/// Whether `path` passes [`storage_mount_path`] (the Rust side of the rule).
pub fn mount_path_allowed(path: &str) -> bool {
    let plain = !path.is_empty()
        && path.starts_with('/')
        && !path.ends_with('/')
        && path[1..]
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..");
    plain
        && RESERVED_MOUNT_DIRS.iter().all(|r| {
            path != *r && !path.starts_with(&format!("{r}/")) && !r.starts_with(&format!("{path}/"))
        })
}

/// The data and audit volumes need separate, non-nested mount points.
pub fn storage_mount_paths_distinct() -> SpecRule {
    SpecRule::new(
        "spec.storage.audit.mountPath",
        "!has(self.mountPath) || !has(self.audit) || !has(self.audit.mountPath) || \
         (self.mountPath != self.audit.mountPath && \
         !self.mountPath.startsWith(self.audit.mountPath + '/') && \
         !self.audit.mountPath.startsWith(self.mountPath + '/'))",
        STORAGE_DISTINCT_MESSAGE,
    )
    .at(".audit.mountPath")
}

const STORAGE_DISTINCT_MESSAGE: &str = "spec.storage.audit.mountPath and \
     spec.storage.mountPath must be separate directories, neither inside the other: the \
     audit log would land in the raft directory; choose another path for one of them";

/// The message of [`storage_mount_paths_distinct`], for the operator's check with the
/// flavor's default paths, which the rule cannot know.
pub fn storage_distinct_message() -> &'static str {
    STORAGE_DISTINCT_MESSAGE
}

/// Annotation prefixes Kubernetes' volume controllers write on claims.
pub const RESERVED_CLAIM_ANNOTATIONS: &[&str] = &[
    "pv.kubernetes.io/",
    "volume.kubernetes.io/",
    "volume.beta.kubernetes.io/",
];

/// A claim's annotations may not pose as the volume controllers' records.
pub fn claim_annotations_not_reserved(field: &'static str) -> SpecRule {
    SpecRule::new(
        field,
        format!(
            "!has(self.annotations) || self.annotations.all(k, {})",
            RESERVED_CLAIM_ANNOTATIONS
                .iter()
                .map(|p| format!("!k.startsWith('{p}')"))
                .collect::<Vec<_>>()
                .join(" && ")
        ),
        format!(
            "{field} may not use keys under {}: Kubernetes' volume controllers record \
             binding and provisioning there; set the StorageClass instead",
            RESERVED_CLAIM_ANNOTATIONS.join(", ")
        ),
    )
    .at(".annotations")
}

/// A disruption budget may not allow evictions past the raft quorum.
pub fn disruption_budget_keeps_quorum() -> SpecRule {
    SpecRule::new(
        "spec.pod.disruptionBudget.maxUnavailable",
        "!has(self.pod) || !has(self.pod.disruptionBudget) || \
         !has(self.pod.disruptionBudget.maxUnavailable) || \
         self.pod.disruptionBudget.maxUnavailable <= (self.replicas - 1) / 2",
        "spec.pod.disruptionBudget.maxUnavailable must be at most (replicas-1)/2, rounded \
         down (1 for 3 replicas, 2 for 5, 0 for 1): more would let a node drain evict a \
         raft quorum; lower it, or remove it for the default",
    )
    .at(".pod.disruptionBudget.maxUnavailable")
}
