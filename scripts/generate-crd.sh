#!/usr/bin/env bash
# Regenerates the CRDs from the Rust types into crds/ and the two copies the Helm chart
# and the kustomize base ship (each directory must be self-contained).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
for kind in vaultcluster vaultpolicy vaultrestore; do
  cargo run -q --locked -p vaultkeeper -- crd --kind "$kind" > "crds/$kind.yaml"
  cp "crds/$kind.yaml" "charts/vaultkeeper/crds/$kind.yaml"
  cp "crds/$kind.yaml" "deploy/crds/$kind.yaml"
  echo "crds/$kind.yaml and its copies are up to date"
done
