//! `crds/vaultcluster.yaml` is exactly what `vaultkeeper crd` prints: a change to the Rust
//! types that is not regenerated fails here, with the command that fixes it.

#[test]
fn committed_crd_matches_the_types() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds/vaultcluster.yaml");
    let committed = std::fs::read_to_string(&path).expect("crds/vaultcluster.yaml exists");
    let generated = vaultkeeper_api::crd_yaml().expect("the CRD serializes");
    assert!(
        committed == generated,
        "crds/vaultcluster.yaml is out of date with the Rust types; regenerate it and the \
         chart's and deploy's copies with scripts/generate-crd.sh"
    );
}

#[test]
fn crd_has_the_documented_names_columns_and_subresources() {
    let crd = vaultkeeper_api::crd();
    assert_eq!(crd.spec.group, "vaultkeeper.io");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["vc".to_owned()][..])
    );
    assert_eq!(
        crd.spec.names.categories.as_deref(),
        Some(&["vault".to_owned()][..])
    );
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<&str> = version
        .additional_printer_columns
        .as_ref()
        .expect("printer columns")
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Replicas",
            "Ready",
            "Sealed",
            "Active",
            "Version",
            "Phase",
            "Last Backup",
            "Age"
        ]
    );
}

#[test]
fn every_spec_field_is_documented_for_kubectl_explain() {
    let crd = serde_json::to_value(vaultkeeper_api::crd()).expect("json");
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut undocumented = Vec::new();
    walk(spec, "spec", &mut undocumented);
    assert!(
        undocumented.is_empty(),
        "fields without a description: {undocumented:?}"
    );
}

fn walk(node: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    if node
        .get("description")
        .and_then(|d| d.as_str())
        .is_none_or(str::is_empty)
    {
        out.push(path.to_owned());
    }
    if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
        for (name, child) in props {
            // Fields of embedded Kubernetes types carry upstream descriptions; walk only ours.
            if path.starts_with("spec.pod.")
                || path.contains("networkPolicy.apiFrom")
                || path.contains(".resources")
            {
                continue;
            }
            walk(child, &format!("{path}.{name}"), out);
        }
    }
    // List items of plain values are described by their list; objects need their own.
    if let Some(items) = node.get("items").filter(|i| i.get("properties").is_some()) {
        walk(items, &format!("{path}[]"), out);
    }
}

#[test]
fn committed_vaultpolicy_crd_matches_the_types() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds/vaultpolicy.yaml");
    let committed = std::fs::read_to_string(&path).expect("crds/vaultpolicy.yaml exists");
    let generated = vaultkeeper_api::kind_crd_yaml("vaultpolicy")
        .expect("a known kind")
        .expect("the CRD serializes");
    assert!(
        committed == generated,
        "crds/vaultpolicy.yaml is out of date with the Rust types; regenerate it and the \
         chart's and deploy's copies with scripts/generate-crd.sh"
    );
}

#[test]
fn vaultpolicy_crd_shows_cluster_synced_and_age() {
    use kube::CustomResourceExt;
    let crd = vaultkeeper_api::VaultPolicy::crd();
    assert_eq!(crd.spec.group, "vaultkeeper.io");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.plural, "vaultpolicies");
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<&str> = version
        .additional_printer_columns
        .as_ref()
        .expect("printer columns")
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Cluster", "Synced", "Path", "Age"]);
    assert!(vaultkeeper_api::kind_crd_yaml("vaultsomething").is_none());
}

#[test]
fn committed_restore_crd_matches_the_types() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds/vaultrestore.yaml");
    let committed = std::fs::read_to_string(&path).expect("crds/vaultrestore.yaml exists");
    let generated = vaultkeeper_api::restore_crd_yaml().expect("the CRD serializes");
    assert!(
        committed == generated,
        "crds/vaultrestore.yaml is out of date with the Rust types; regenerate it and the \
         chart's and deploy's copies with scripts/generate-crd.sh"
    );
    for copy in ["charts/vaultkeeper/crds", "deploy/crds"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../{copy}/vaultrestore.yaml"));
        let shipped = std::fs::read_to_string(&path).expect("the copy exists");
        assert!(
            shipped == generated,
            "{copy}/vaultrestore.yaml is out of date"
        );
    }
}

#[test]
fn restore_crd_has_the_documented_names_and_columns() {
    let crd = vaultkeeper_api::restore_crd();
    assert_eq!(crd.spec.group, "vaultkeeper.io");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "VaultRestore");
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<&str> = version
        .additional_printer_columns
        .as_ref()
        .expect("printer columns")
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Cluster", "Source", "Phase", "Age"]);
}
