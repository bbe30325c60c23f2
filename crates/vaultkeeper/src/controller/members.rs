//! Which pods are members of a cluster. Members are handed unseal shares, the root token
//! and the operator's login, so a label is not enough: anyone who may create pods in the
//! namespace can copy the three selector labels. A pod is a member only when its
//! controller is the cluster's own StatefulSet, the one observed in the same pass (same
//! name, same UID), and that StatefulSet is controlled by this VaultCluster. Every other
//! pod with the labels is foreign: never exec'd into, counted nowhere, reported once.
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
pub(crate) fn sort_pods(
    pods: Vec<Pod>,
    statefulset: Option<&StatefulSet>,
    cluster: Option<(&str, &str)>,
) -> Membership {
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
        });
        if member {
            membership.members.push(pod);
        } else {
            membership.foreign.push(pod.name_any());
        }
    }
    membership
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

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

    fn statefulset(owners: Vec<OwnerReference>) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: Some("vault".to_owned()),
                uid: Some(STS_UID.to_owned()),
                owner_references: Some(owners),
                ..ObjectMeta::default()
            },
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
        Pod {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
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
        let split = sort_pods(pods, Some(&sts), Some(("vault", CLUSTER_UID)));
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
            let split = sort_pods(pods(), sts.as_ref(), cluster);
            assert!(split.members.is_empty(), "{case}");
            assert_eq!(split.foreign, ["vault-0"], "{case}");
        }
    }
}
