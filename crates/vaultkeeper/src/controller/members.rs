//! Which pods are members of a cluster. Members are handed unseal shares, the root token
//! and the operator's login, so a label is not enough: anyone who may create pods in the
//! namespace can copy the three selector labels. A pod is a member only when its
//! controller is the cluster's own StatefulSet, the one observed in the same pass (same
//! name, same UID), and that StatefulSet is controlled by this VaultCluster. Every other
//! pod with the labels is foreign: never exec'd into, counted nowhere, reported once.
//!
//! Kubernetes' StatefulSet controller also adopts orphans: a pod with no controller that
//! matches its selector and is named as one of its ordinals gets its controller reference.
//! So a pod someone created under such a name before the StatefulSet existed, or under a
//! departed ordinal, would become "controlled by our StatefulSet". A member must therefore
//! also be at an ordinal the StatefulSet runs (below its `replicas`: one above is being
//! removed by it, and may be such an adopted pod), and have been created no earlier than
//! the StatefulSet. The one exception is the
//! adoption of a Helm release (`adopt.rs`): while the VaultCluster asks for it, the
//! release's running pods, older than our StatefulSet, are members at the ordinals it
//! runs (`0..replicas`, names the release's pods hold, so nobody else could create them
//! while they run).
//!
//! Pure: the pods and the StatefulSet come in, the split goes out.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

/// The pods carrying a cluster's selector labels, split by who controls them.
#[derive(Debug, Default)]
pub(crate) struct Membership {
    /// Pods the cluster's StatefulSet controls.
    pub(crate) members: Vec<Pod>,
    /// Names of the other pods with the cluster's labels.
    pub(crate) foreign: Vec<String>,
}

/// Whether `meta`'s controller reference (the one with `controller: true`) is the object
/// of `api_version`/`kind` called `name` with `uid`.
pub(crate) fn controlled_by(
    meta: &ObjectMeta,
    api_version: &str,
    kind: &str,
    name: &str,
    uid: &str,
) -> bool {
    meta.owner_references.iter().flatten().any(|r| {
        r.controller == Some(true)
            && r.api_version == api_version
            && r.kind == kind
            && r.name == name
            && r.uid == uid
    })
}

/// Splits the labelled `pods` of the VaultCluster `cluster` (name, UID) into members and
/// foreign pods. `statefulset` is the cluster's StatefulSet as observed in this pass (by
/// name); without it, or when the VaultCluster does not control it, no pod is a member.
/// `adopting`: `Some(replicas)` while the VaultCluster asks to adopt a Helm release, so
/// pods older than the StatefulSet at ordinals below it are members too.
pub(crate) fn sort_pods(
    pods: Vec<Pod>,
    statefulset: Option<&StatefulSet>,
    cluster: Option<(&str, &str)>,
    adopting: Option<u32>,
) -> Membership {
    let born = statefulset.and_then(|s| s.metadata.creation_timestamp.clone());
    // Kubernetes' default when a StatefulSet leaves replicas out.
    let running = statefulset
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas)
        .map_or(1, |r| u32::try_from(r).unwrap_or(0));
    let owner = statefulset.zip(cluster).and_then(|(sts, (name, uid))| {
        let ours = controlled_by(
            &sts.metadata,
            "vaultkeeper.io/v1alpha1",
            "VaultCluster",
            name,
            uid,
        );
        let sts_uid = sts.metadata.uid.clone()?;
        ours.then(|| (sts.name_any(), sts_uid))
    });
    let mut membership = Membership::default();
    for pod in pods {
        let member = owner.as_ref().is_some_and(|(name, uid)| {
            controlled_by(&pod.metadata, "apps/v1", "StatefulSet", name, uid)
                && ordinal(name, &pod.name_any()).is_some_and(|o| o < running)
                && (created_since(&pod, born.as_ref())
                    || adopting.is_some_and(|replicas| {
                        ordinal(name, &pod.name_any()).is_some_and(|o| o < replicas)
                    }))
        });
        if member {
            membership.members.push(pod);
        } else {
            membership.foreign.push(pod.name_any());
        }
    }
    membership
}

/// Whether `pod` was created no earlier than `born` (the StatefulSet's creation); without
/// either time, it is not known to be.
fn created_since(
    pod: &Pod,
    born: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) -> bool {
    match (pod.metadata.creation_timestamp.as_ref(), born) {
        (Some(created), Some(born)) => created.0 >= born.0,
        _ => false,
    }
}

/// The ordinal of `pod` in StatefulSet `statefulset` (`<statefulset>-<n>`).
fn ordinal(statefulset: &str, pod: &str) -> Option<u32> {
    pod.strip_prefix(statefulset)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::StatefulSetSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

    use super::*;

    const CLUSTER_UID: &str = "vc-uid";
    const STS_UID: &str = "sts-uid";

    fn owner(
        api_version: &str,
        kind: &str,
        name: &str,
        uid: &str,
        controller: bool,
    ) -> OwnerReference {
        OwnerReference {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
            uid: uid.to_owned(),
            controller: Some(controller),
            ..OwnerReference::default()
        }
    }

    /// A time `seconds` after the StatefulSet was created.
    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(1_800_000_000 + seconds).expect("a time"))
    }

    fn statefulset(owners: Vec<OwnerReference>) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: Some("vault".to_owned()),
                uid: Some(STS_UID.to_owned()),
                creation_timestamp: Some(at(0)),
                owner_references: Some(owners),
                ..ObjectMeta::default()
            },
            spec: Some(StatefulSetSpec {
                replicas: Some(3),
                ..StatefulSetSpec::default()
            }),
            ..StatefulSet::default()
        }
    }

    fn ours() -> StatefulSet {
        statefulset(vec![owner(
            "vaultkeeper.io/v1alpha1",
            "VaultCluster",
            "vault",
            CLUSTER_UID,
            true,
        )])
    }

    fn pod(name: &str, owners: Vec<OwnerReference>) -> Pod {
        pod_created(name, owners, at(1))
    }

    fn pod_created(name: &str, owners: Vec<OwnerReference>, created: Time) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                creation_timestamp: Some(created),
                owner_references: (!owners.is_empty()).then_some(owners),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }
    }

    fn by_sts(name: &str, uid: &str) -> Vec<OwnerReference> {
        vec![owner("apps/v1", "StatefulSet", name, uid, true)]
    }

    #[test]
    fn only_pods_our_statefulset_controls_are_members() {
        let sts = ours();
        // (pod, its owner references, member?)
        let table: Vec<(&str, Vec<OwnerReference>, bool)> = vec![
            ("vault-0", by_sts("vault", STS_UID), true),
            // Above the StatefulSet's replicas: it is removing the pod (and may have
            // adopted it from whoever created it under that name).
            ("vault-3", by_sts("vault", STS_UID), false),
            ("vault-copy-0", by_sts("vault", STS_UID), false),
            ("no-owner", vec![], false),
            ("other-uid", by_sts("vault", "a-deleted-statefulset"), false),
            ("other-name", by_sts("vault-copy", STS_UID), false),
            (
                "not-controller",
                vec![owner("apps/v1", "StatefulSet", "vault", STS_UID, false)],
                false,
            ),
            (
                "other-kind",
                vec![owner("apps/v1", "ReplicaSet", "vault", STS_UID, true)],
                false,
            ),
            (
                "other-group",
                vec![owner(
                    "example.com/v1",
                    "StatefulSet",
                    "vault",
                    STS_UID,
                    true,
                )],
                false,
            ),
            (
                "also-owned-by-us-but-controlled-elsewhere",
                vec![
                    owner("apps/v1", "StatefulSet", "vault", STS_UID, false),
                    owner("apps/v1", "ReplicaSet", "squatter", "x", true),
                ],
                false,
            ),
        ];
        let pods = table.iter().map(|(n, o, _)| pod(n, o.clone())).collect();
        let split = sort_pods(pods, Some(&sts), Some(("vault", CLUSTER_UID)), None);
        let members: Vec<String> = split.members.iter().map(|p| p.name_any()).collect();
        let expected_members: Vec<&str> = table.iter().filter(|r| r.2).map(|r| r.0).collect();
        let expected_foreign: Vec<&str> = table.iter().filter(|r| !r.2).map(|r| r.0).collect();
        assert_eq!(members, expected_members);
        assert_eq!(split.foreign, expected_foreign);
    }

    #[test]
    fn without_our_statefulset_no_pod_is_a_member() {
        let pods = || vec![pod("vault-0", by_sts("vault", STS_UID))];
        for (case, sts, cluster) in [
            (
                "no StatefulSet observed",
                None,
                Some(("vault", CLUSTER_UID)),
            ),
            (
                "a StatefulSet another VaultCluster controls",
                Some(statefulset(vec![owner(
                    "vaultkeeper.io/v1alpha1",
                    "VaultCluster",
                    "vault",
                    "another-cluster",
                    true,
                )])),
                Some(("vault", CLUSTER_UID)),
            ),
            (
                "a StatefulSet nobody controls",
                Some(statefulset(vec![])),
                Some(("vault", CLUSTER_UID)),
            ),
            ("a cluster without a UID", Some(ours()), None),
            (
                "a StatefulSet of a same-named cluster that was deleted",
                Some(ours()),
                Some(("vault", "the-new-cluster")),
            ),
        ] {
            let split = sort_pods(pods(), sts.as_ref(), cluster, None);
            assert!(split.members.is_empty(), "{case}");
            assert_eq!(split.foreign, ["vault-0"], "{case}");
        }
    }

    #[test]
    fn a_pod_older_than_our_statefulset_is_a_member_only_of_an_adopted_release() {
        // The StatefulSet controller adopts an orphan named as one of its ordinals: a pod
        // created under such a name before the StatefulSet (or at a departed ordinal) ends
        // up "controlled by" it. Only a Helm release's own pods, while the VaultCluster asks
        // to adopt it, at the ordinals the release runs, are members.
        let older = |name: &str| pod_created(name, by_sts("vault", STS_UID), at(-60));
        let pods = || {
            vec![
                older("vault-0"),
                older("vault-3"),
                pod("vault-1", by_sts("vault", STS_UID)),
            ]
        };
        let split = sort_pods(pods(), Some(&ours()), Some(("vault", CLUSTER_UID)), None);
        let members: Vec<String> = split.members.iter().map(|p| p.name_any()).collect();
        assert_eq!(members, ["vault-1"]);
        assert_eq!(split.foreign, ["vault-0", "vault-3"]);

        let split = sort_pods(pods(), Some(&ours()), Some(("vault", CLUSTER_UID)), Some(3));
        let members: Vec<String> = split.members.iter().map(|p| p.name_any()).collect();
        assert_eq!(members, ["vault-0", "vault-1"]);
        assert_eq!(split.foreign, ["vault-3"], "beyond the release's replicas");

        let unknown = Pod {
            metadata: ObjectMeta {
                creation_timestamp: None,
                ..pod("vault-2", by_sts("vault", STS_UID)).metadata
            },
            ..Pod::default()
        };
        let split = sort_pods(
            vec![unknown],
            Some(&ours()),
            Some(("vault", CLUSTER_UID)),
            None,
        );
        assert_eq!(
            split.foreign,
            ["vault-2"],
            "no creation time, not known to be ours"
        );
    }
}
