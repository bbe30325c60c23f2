//! Adoption of a running Vault Helm release: whether a VaultCluster may take over the
//! objects of its names that already exist and are not its own, and how.
//!
//! A VaultCluster renders the chart's names (`<name>`, `<name>-internal`, …), so naming a
//! VaultCluster after an existing release points it at that release's StatefulSet,
//! Services and volumes. Server-side apply with force would silently take them over, and
//! with them the pods' template and the data volumes. So nobody gets objects by naming
//! them: the rules, in order.
//!
//! 1. No object of this cluster's rendered names exists that this VaultCluster does not
//!    control: nothing to decide.
//! 2. Without the annotation `vaultkeeper.io/adopt: helm-release/<release>` nothing of
//!    them is touched, and nothing else is written either; a condition names them.
//! 3. Every one of them must be the named release's: labelled
//!    `app.kubernetes.io/managed-by: Helm` and annotated by Helm with the release's name
//!    and namespace. One that is not refuses the whole adoption.
//! 4. The StatefulSet must select exactly the pods this VaultCluster selects, and name its
//!    raft nodes after their pods (`VAULT_RAFT_NODE_ID`, the chart's
//!    `server.ha.raft.setNodeId`), as vaultkeeper does: a node that comes back under
//!    another id would not be the raft peer it was.
//! 5. The keys Secret must hold a key record: the release was initialized by hand, and
//!    vaultkeeper never initializes again. Only someone who holds the shares and may write
//!    Secrets can create it, so writing a VaultCluster is not enough to take over a
//!    release.
//! 6. Then the StatefulSet is deleted with `propagationPolicy: Orphan` (the pods and
//!    claims stay, the pods keep running) and the next pass creates this cluster's own,
//!    which adopts the pods by selector; the rolling update that follows replaces each
//!    pod once, under the operation lock. It is always replaced, never applied over: its
//!    claim templates are immutable and differ, and an apply over the chart's template
//!    would keep every field the chart set that vaultkeeper does not. The other objects
//!    are applied over in place, and Helm's release annotations are removed from them.
//!
//! Pure: the objects come in as JSON, the decision goes out.

use serde_json::Value;
use vaultkeeper_render::Manifest;

/// The annotation on a VaultCluster that asks for a Helm release's objects to be adopted.
pub(crate) const ANNOTATION: &str = "vaultkeeper.io/adopt";

/// The prefix of the annotation's value; the release name follows it.
const HELM_RELEASE: &str = "helm-release/";

/// The annotations Helm puts on every object of a release.
pub(crate) const HELM_RELEASE_NAME: &str = "meta.helm.sh/release-name";
/// See [`HELM_RELEASE_NAME`].
pub(crate) const HELM_RELEASE_NAMESPACE: &str = "meta.helm.sh/release-namespace";

/// The StatefulSet fields Kubernetes refuses to change.
const IMMUTABLE_STATEFULSET_FIELDS: [&str; 4] = [
    "selector",
    "serviceName",
    "volumeClaimTemplates",
    "podManagementPolicy",
];

/// What a pass does about existing objects of this cluster's names that are not its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Adoption {
    /// Every object of this cluster's names is its own, or missing.
    Nothing,
    /// Nothing is written this pass; a person must act.
    Refused {
        /// The condition's reason.
        reason: &'static str,
        /// What is wrong and the fix.
        message: String,
    },
    /// The release's objects are taken over.
    TakeOver(TakeOver),
}

/// The takeover of a Helm release, as one pass carries it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TakeOver {
    /// The Helm release.
    pub(crate) release: String,
    /// Every object taken over, as `Kind/name`.
    pub(crate) objects: Vec<String>,
    /// The objects applied over in place this pass (kind, name): Helm's release
    /// annotations are removed from them afterwards.
    pub(crate) in_place: Vec<(String, String)>,
    /// The release's StatefulSet (name, UID) to delete with `propagationPolicy: Orphan`.
    pub(crate) orphan_statefulset: Option<(String, String)>,
    /// Its fields Kubernetes would refuse to change to what this cluster renders.
    pub(crate) immutable_differences: Vec<&'static str>,
    /// The release's StatefulSet is being deleted: this cluster's own is created once it
    /// is gone.
    pub(crate) statefulset_going: bool,
}

/// An existing object of one of this cluster's names, as the API server has it.
fn kind_and_name(object: &Value) -> (String, String) {
    (
        object["kind"].as_str().unwrap_or_default().to_owned(),
        object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// Decides about `namesakes`: the existing objects of this cluster's names that it does
/// not control. `annotation` is the VaultCluster's [`ANNOTATION`], `wanted` what it
/// renders, `keys_secret` the keys Secret's name and whether it holds a key record
/// (`None`: not read).
pub(crate) fn decide(
    annotation: Option<&str>,
    namespace: &str,
    namesakes: &[Value],
    wanted: &[Manifest],
    keys_secret: (&str, Option<bool>),
) -> Adoption {
    // Only the objects this cluster would write count: a chart's object it does not
    // render (its UI Service, say) is left as it is.
    let rendered = |object: &&Value| {
        let (kind, name) = kind_and_name(object);
        wanted.iter().any(|m| m.kind == kind && m.name == name)
    };
    let namesakes: Vec<&Value> = namesakes.iter().filter(rendered).collect();
    if namesakes.is_empty() {
        return Adoption::Nothing;
    }
    let named: Vec<String> = namesakes
        .iter()
        .map(|o| {
            let (kind, name) = kind_and_name(o);
            format!("{kind}/{name}")
        })
        .collect();
    let listed = named.join(", ");
    let Some(annotation) = annotation else {
        return Adoption::Refused {
            reason: "ObjectsNotOurs",
            message: format!(
                "{listed} already exist and are not this VaultCluster's, so vaultkeeper writes nothing. If they are a Vault Helm release to hand over, annotate the VaultCluster `{ANNOTATION}: {HELM_RELEASE}<release>` and put the release's key record in Secret {} (docs/migrating-from-helm.md, \"Adopt a running release\"); otherwise give the VaultCluster another name",
                keys_secret.0
            ),
        };
    };
    let release = match annotation.strip_prefix(HELM_RELEASE) {
        Some(release) if !release.is_empty() => release.to_owned(),
        _ => {
            return Adoption::Refused {
                reason: "AdoptAnnotationInvalid",
                message: format!(
                    "annotation {ANNOTATION} is {annotation:?}; the only form is `{HELM_RELEASE}<release>`, the name of the Helm release whose objects are {listed}"
                ),
            };
        }
    };
    let not_the_release: Vec<String> = namesakes
        .iter()
        .zip(&named)
        .filter(|(o, _)| !of_release(o, &release, namespace))
        .map(|(_, n)| n.clone())
        .collect();
    if !not_the_release.is_empty() {
        return Adoption::Refused {
            reason: "NotTheHelmRelease",
            message: format!(
                "{} {} not part of Helm release {release} in namespace {namespace} (labelled app.kubernetes.io/managed-by: Helm, annotated {HELM_RELEASE_NAME}: {release} and {HELM_RELEASE_NAMESPACE}: {namespace}), so nothing is adopted. Check the release name in annotation {ANNOTATION}, or remove the VaultCluster",
                not_the_release.join(", "),
                if not_the_release.len() == 1 {
                    "is"
                } else {
                    "are"
                }
            ),
        };
    }
    let statefulset = namesakes.iter().find(|o| o["kind"] == "StatefulSet");
    let ours = wanted.iter().find(|m| m.kind == "StatefulSet");
    if let (Some(live), Some(ours)) = (statefulset, ours) {
        let (live_selector, our_selector) =
            (&live["spec"]["selector"], &ours.object["spec"]["selector"]);
        if live_selector != our_selector {
            return Adoption::Refused {
                reason: "SelectorDiffers",
                message: format!(
                    "StatefulSet/{} selects {} and this VaultCluster's selects {}, so its pods would not be adopted. Name the VaultCluster as the chart named the release's objects, and use the chart's flavor (OpenBao for the OpenBao chart)",
                    ours.name,
                    compact(live_selector),
                    compact(our_selector)
                ),
            };
        }
        if !names_raft_nodes_after_pods(live) {
            return Adoption::Refused {
                reason: "RaftNodeIdsDiffer",
                message: format!(
                    "StatefulSet/{} does not set VAULT_RAFT_NODE_ID, so its raft nodes have generated ids; vaultkeeper names each node after its pod, and a pod restarted under another id would not be the raft peer it was. Adopting such a release is not supported: move the data with a raft snapshot instead (docs/migrating-from-helm.md)",
                    ours.name
                ),
            };
        }
    }
    if keys_secret.1 != Some(true) {
        return Adoption::Refused {
            reason: "KeysMissing",
            message: format!(
                "Helm release {release} is initialized by hand, and vaultkeeper never initializes again: put its key record (the unseal shares, the threshold and the root token) in Secret {} as docs/custody.md (\"write the key record by hand\") shows; nothing is adopted before",
                keys_secret.0
            ),
        };
    }
    let mut takeover = TakeOver {
        release,
        objects: named,
        in_place: Vec::new(),
        orphan_statefulset: None,
        immutable_differences: Vec::new(),
        statefulset_going: false,
    };
    for object in namesakes {
        let (kind, name) = kind_and_name(object);
        if kind != "StatefulSet" {
            takeover.in_place.push((kind, name));
        } else if !object["metadata"]["deletionTimestamp"].is_null() {
            takeover.statefulset_going = true;
        } else {
            let uid = object["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            takeover.orphan_statefulset = Some((name, uid));
            if let Some(ours) = ours {
                takeover.immutable_differences = immutable_fields_differ(object, &ours.object);
            }
        }
    }
    Adoption::TakeOver(takeover)
}

/// Whether `object` is Helm release `release`'s in `namespace`, as Helm marks its objects.
fn of_release(object: &Value, release: &str, namespace: &str) -> bool {
    let meta = &object["metadata"];
    meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        && meta["annotations"][HELM_RELEASE_NAME] == release
        && meta["annotations"][HELM_RELEASE_NAMESPACE] == namespace
}

/// Whether the server container of a StatefulSet sets `VAULT_RAFT_NODE_ID` to the pod's
/// name, as vaultkeeper does.
fn names_raft_nodes_after_pods(statefulset: &Value) -> bool {
    statefulset["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["env"].as_array().into_iter().flatten())
        .any(|e| {
            e["name"] == "VAULT_RAFT_NODE_ID"
                && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        })
}

/// The fields Kubernetes refuses to change that applying `ours` over `live` would change.
/// The takeover replaces the StatefulSet either way; the Event says which.
fn immutable_fields_differ(live: &Value, ours: &Value) -> Vec<&'static str> {
    IMMUTABLE_STATEFULSET_FIELDS
        .into_iter()
        .filter(|field| !crate::apply::is_subset(&ours["spec"][field], &live["spec"][field]))
        .collect()
}

fn compact(value: &Value) -> String {
    serde_json::to_string(&value["matchLabels"]).unwrap_or_default()
}

#[cfg(test)]
#[path = "adopt_tests.rs"]
mod tests;
