#!/usr/bin/env bash
# Regenerates the VaultCluster and VaultRestore CRDs from the Rust types into crds/ and the two copies the
# Helm chart and the kustomize base ship (each directory must be self-contained).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo run -q --locked -p vaultkeeper -- crd > crds/vaultcluster.yaml
cp crds/vaultcluster.yaml charts/vaultkeeper/crds/vaultcluster.yaml
cp crds/vaultcluster.yaml deploy/crds/vaultcluster.yaml
cargo run -q --locked -p vaultkeeper -- crd --kind VaultRestore > crds/vaultrestore.yaml
cp crds/vaultrestore.yaml charts/vaultkeeper/crds/vaultrestore.yaml
cp crds/vaultrestore.yaml deploy/crds/vaultrestore.yaml
echo "crds/vaultcluster.yaml, crds/vaultrestore.yaml and their copies are up to date"
