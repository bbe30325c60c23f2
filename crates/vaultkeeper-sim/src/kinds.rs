//! The kinds the API server serves: the built-in ones (backed by the `k8s-openapi` types,
//! which is how the server decodes them the way the real one decodes into its Go structs)
//! and those that CustomResourceDefinitions add at run time.

use serde_json::Value;
use std::sync::Arc;

/// How an object of a kind is decoded, defaulted and validated.
#[derive(Clone)]
pub enum KindSource {
    /// A built-in kind: decoding round-trips through the `k8s-openapi` type, so unknown
    /// fields are found exactly as the real server's strict decoding finds them.
    Builtin {
        /// Decode into the typed struct and encode back.
        roundtrip: fn(Value) -> Result<Value, serde_json::Error>,
        /// The JSON schema of the type (for `/openapi/v3` and `kubectl explain`).
        schema: fn() -> Value,
    },
    /// A custom resource served from a CustomResourceDefinition.
    Custom(Arc<CustomKind>),
}

/// One served version of a custom kind (what a CustomResourceDefinition adds; `crd`
/// builds it, everything that serves or stores objects reads it).
#[derive(Debug)]
pub struct CustomKind {
    /// `metadata.name` of the CRD (`vaultclusters.vaultkeeper.io`).
    pub crd_name: String,
    /// Group.
    pub group: String,
    /// Served version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// `openAPIV3Schema` of this version.
    pub schema: Value,
    /// CEL rules compiled once.
    pub compiled: kube_cel::CompiledSchema,
    /// `additionalPrinterColumns` of this version.
    pub printer_columns: Vec<Value>,
    /// `subresources.scale` of this version.
    pub scale: Option<Value>,
}

/// A kind that is stored under another kind's storage and converted on the way in and
/// out. `events.k8s.io/v1` Events are the core/v1 Events seen differently, as in the real
/// API server, so `kubectl describe` (core/v1) sees events a `kube::runtime` recorder
/// (events.k8s.io/v1) wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Stored as it is served.
    Native,
    /// `events.k8s.io/v1` Event stored as a core/v1 Event.
    EventsV1,
}

/// One served resource: group/version/resource, kind and behaviour.
#[derive(Clone)]
pub struct ResourceType {
    /// API group (`""` for core).
    pub group: String,
    /// Version (`v1`, `v1alpha1`).
    pub version: String,
    /// Plural resource name used in URLs.
    pub plural: String,
    /// Lower-case singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names (`vc`, `po`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Served subresources (`status`, `scale`, `exec`, `log`, `token`, `binding`).
    pub subresources: Vec<String>,
    /// The verbs the resource supports.
    pub verbs: Vec<&'static str>,
    /// Key of the storage the objects live in (shared between views).
    pub storage: String,
    /// How it is stored relative to how it is served.
    pub view: View,
    /// Decoding and validation.
    pub source: KindSource,
}

impl std::fmt::Debug for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.qualified())
    }
}

impl ResourceType {
    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `statefulsets.apps`, or `pods` for the core group: how error messages name it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether the resource has the given subresource.
    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.iter().any(|s| s == sub)
    }

    /// Whether this is a custom resource.
    pub fn custom(&self) -> Option<&Arc<CustomKind>> {
        match &self.source {
            KindSource::Custom(c) => Some(c),
            KindSource::Builtin { .. } => None,
        }
    }

    /// Whether the status subresource splits writes of `status` from the main resource.
    pub fn has_status(&self) -> bool {
        self.has_subresource("status")
    }

    /// Whether create/update is the only verb (TokenReview, SubjectAccessReview).
    pub fn create_only(&self) -> bool {
        self.verbs == ["create"]
    }
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(
    v: Value,
) -> Result<Value, serde_json::Error> {
    serde_json::to_value(serde_json::from_value::<T>(v)?)
}

fn schema_of<T: schemars::JsonSchema>() -> Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null)
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    sub: &'static [&'static str],
    verbs: &'static [&'static str],
    storage: Option<&'static str>,
    view: View,
    roundtrip: fn(Value) -> Result<Value, serde_json::Error>,
    schema: fn() -> Value,
}

macro_rules! builtin {
    ($ty:ty, $ns:expr, [$($short:literal),*], [$($sub:literal),*]) => {
        builtin!($ty, $ns, [$($short),*], [$($sub),*], ALL_VERBS, None, View::Native)
    };
    ($ty:ty, $ns:expr, [$($short:literal),*], [$($sub:literal),*], $verbs:expr, $storage:expr, $view:expr) => {
        Builtin {
            group: <$ty as k8s_openapi::Resource>::GROUP,
            version: <$ty as k8s_openapi::Resource>::VERSION,
            plural: <$ty as k8s_openapi::Resource>::URL_PATH_SEGMENT,
            kind: <$ty as k8s_openapi::Resource>::KIND,
            namespaced: $ns,
            short: &[$($short),*],
            sub: &[$($sub),*],
            verbs: $verbs,
            storage: $storage,
            view: $view,
            roundtrip: roundtrip::<$ty>,
            schema: schema_of::<$ty>,
        }
    };
}

/// Every built-in kind the simulated API server serves.
pub fn builtin_types() -> Vec<ResourceType> {
    use k8s_openapi::api::{
        apps::v1 as apps, authentication::v1 as authn, authorization::v1 as authz,
        batch::v1 as batch, coordination::v1 as coord, core::v1 as core, discovery::v1 as disc,
        events::v1 as events, networking::v1 as net, policy::v1 as policy, rbac::v1 as rbac,
        scheduling::v1 as sched, storage::v1 as storage,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    const CREATE: &[&str] = &["create"];
    let list: Vec<Builtin> = vec![
        builtin!(core::Namespace, false, ["ns"], ["status", "finalize"]),
        builtin!(
            core::Pod,
            true,
            ["po"],
            ["status", "exec", "log", "binding", "eviction"]
        ),
        builtin!(core::Service, true, ["svc"], ["status"]),
        builtin!(core::Endpoints, true, ["ep"], []),
        builtin!(core::ConfigMap, true, ["cm"], []),
        builtin!(core::Secret, true, [], []),
        builtin!(core::ServiceAccount, true, ["sa"], ["token"]),
        builtin!(core::PersistentVolumeClaim, true, ["pvc"], ["status"]),
        builtin!(core::PersistentVolume, false, ["pv"], ["status"]),
        builtin!(core::Node, false, ["no"], ["status"]),
        builtin!(core::Event, true, ["ev"], []),
        builtin!(core::LimitRange, true, ["limits"], []),
        builtin!(core::ResourceQuota, true, ["quota"], ["status"]),
        builtin!(
            events::Event,
            true,
            ["ev"],
            [],
            ALL_VERBS,
            Some("/events"),
            View::EventsV1
        ),
        builtin!(disc::EndpointSlice, true, [], []),
        builtin!(apps::StatefulSet, true, ["sts"], ["status", "scale"]),
        builtin!(apps::Deployment, true, ["deploy"], ["status", "scale"]),
        builtin!(apps::ReplicaSet, true, ["rs"], ["status", "scale"]),
        builtin!(apps::DaemonSet, true, ["ds"], ["status"]),
        builtin!(apps::ControllerRevision, true, [], []),
        builtin!(batch::Job, true, [], ["status"]),
        builtin!(batch::CronJob, true, ["cj"], ["status"]),
        builtin!(policy::PodDisruptionBudget, true, ["pdb"], ["status"]),
        builtin!(rbac::Role, true, [], []),
        builtin!(rbac::RoleBinding, true, [], []),
        builtin!(rbac::ClusterRole, false, [], []),
        builtin!(rbac::ClusterRoleBinding, false, [], []),
        builtin!(coord::Lease, true, [], []),
        builtin!(net::Ingress, true, ["ing"], ["status"]),
        builtin!(net::IngressClass, false, [], []),
        builtin!(net::NetworkPolicy, true, ["netpol"], []),
        builtin!(storage::StorageClass, false, ["sc"], []),
        builtin!(sched::PriorityClass, false, ["pc"], []),
        builtin!(
            apiext::CustomResourceDefinition,
            false,
            ["crd", "crds"],
            ["status"]
        ),
        builtin!(
            authn::TokenReview,
            false,
            [],
            [],
            CREATE,
            None,
            View::Native
        ),
        builtin!(
            authz::SubjectAccessReview,
            false,
            [],
            [],
            CREATE,
            None,
            View::Native
        ),
        builtin!(
            authz::SelfSubjectAccessReview,
            false,
            [],
            [],
            CREATE,
            None,
            View::Native
        ),
        builtin!(
            authz::LocalSubjectAccessReview,
            true,
            [],
            [],
            CREATE,
            None,
            View::Native
        ),
    ];
    list.into_iter()
        .map(|b| {
            let storage = b
                .storage
                .map(str::to_string)
                .unwrap_or_else(|| format!("{}/{}", b.group, b.plural));
            ResourceType {
                group: b.group.to_string(),
                version: b.version.to_string(),
                plural: b.plural.to_string(),
                singular: b.kind.to_ascii_lowercase(),
                kind: b.kind.to_string(),
                namespaced: b.namespaced,
                short_names: b.short.iter().map(|s| s.to_string()).collect(),
                categories: if matches!(
                    b.kind,
                    "Pod"
                        | "Service"
                        | "StatefulSet"
                        | "Deployment"
                        | "ReplicaSet"
                        | "DaemonSet"
                        | "Job"
                        | "CronJob"
                ) {
                    vec!["all".to_string()]
                } else {
                    Vec::new()
                },
                subresources: b.sub.iter().map(|s| s.to_string()).collect(),
                verbs: b.verbs.to_vec(),
                storage,
                view: b.view,
                source: KindSource::Builtin {
                    roundtrip: b.roundtrip,
                    schema: b.schema,
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_and_event_views_share_storage() {
        let types = builtin_types();
        let core = types
            .iter()
            .find(|t| t.group.is_empty() && t.plural == "events")
            .map(|t| t.storage.clone());
        let v1 = types
            .iter()
            .find(|t| t.group == "events.k8s.io")
            .map(|t| t.storage.clone());
        assert_eq!(core, Some("/events".to_string()));
        assert_eq!(core, v1);
    }

    #[test]
    fn roundtrip_drops_unknown_fields_like_strict_decoding_finds_them() {
        let types = builtin_types();
        let cm = types
            .iter()
            .find(|t| t.kind == "ConfigMap")
            .map(|t| t.source.clone());
        let Some(KindSource::Builtin { roundtrip, .. }) = cm else {
            panic!("ConfigMap is built in");
        };
        let out = roundtrip(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "bogus": 1}))
            .unwrap();
        assert!(out.get("bogus").is_none());
        assert_eq!(out["metadata"]["name"], "a");
    }
}
