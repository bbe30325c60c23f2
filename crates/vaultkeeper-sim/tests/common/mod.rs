//! Shared test helpers: tool lookup and manifests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The workspace root, from this crate's manifest directory.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// kubectl: `VAULTKEEPER_KUBECTL`, else `/usr/bin/kubectl`.
pub fn kubectl() -> PathBuf {
    let p = std::env::var_os("VAULTKEEPER_KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/kubectl"));
    assert!(
        p.exists(),
        "kubectl not found at {} (set VAULTKEEPER_KUBECTL)",
        p.display()
    );
    p
}

/// The OpenBao binary: `VAULTKEEPER_BAO`, else `<workspace>/.tools/bin/bao`.
pub fn bao() -> PathBuf {
    let p = std::env::var_os("VAULTKEEPER_BAO")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools/bin/bao"));
    assert!(
        p.exists(),
        "bao not found at {}: run scripts/install-tools.sh (or set VAULTKEEPER_BAO)",
        p.display()
    );
    p
}

/// A CRD like the project's VaultCluster: printer columns, status subresource, defaults,
/// bounds, an enum, a required field and a CEL rule.
pub const VAULTCLUSTER_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: vaultclusters.vaultkeeper.io
spec:
  group: vaultkeeper.io
  scope: Namespaced
  names: {plural: vaultclusters, singular: vaultcluster, kind: VaultCluster, shortNames: [vc]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Phase, type: string, jsonPath: .status.phase}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        description: A Vault or OpenBao cluster run by vaultkeeper.
        properties:
          spec:
            type: object
            description: Desired state of the cluster.
            required: [image]
            x-kubernetes-validations:
            - {rule: "self.replicas % 2 == 1", message: "replicas must be odd"}
            properties:
              replicas: {type: integer, default: 3, minimum: 1, maximum: 7, description: Number of Vault pods.}
              image: {type: string, description: Container image.}
              flavor: {type: string, enum: [Vault, OpenBao]}
          status:
            type: object
            properties:
              phase: {type: string}
              replicas: {type: integer}
              conditions:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [type]
                items:
                  type: object
                  required: [type, status]
                  properties:
                    type: {type: string}
                    status: {type: string}
                    reason: {type: string}
                    message: {type: string}
                    lastTransitionTime: {type: string, format: date-time}
"#;
