#!/usr/bin/env bash
# Regenerates the VaultCluster CRD from the Rust types into crds/ and the two copies the
# Helm chart and the kustomize base ship (each directory must be self-contained).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo run -q --locked -p vaultkeeper -- crd > crds/vaultcluster.yaml
cp crds/vaultcluster.yaml charts/vaultkeeper/crds/vaultcluster.yaml
cp crds/vaultcluster.yaml deploy/crds/vaultcluster.yaml
echo "crds/vaultcluster.yaml and its copies are up to date"
