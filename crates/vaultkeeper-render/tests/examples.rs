//! Every manifest in examples/ renders, and its rendering is pinned by a golden file:
//! a change to what vaultkeeper applies shows up as a readable YAML diff in review.
//! Key material is random, so Secret data is replaced by `<redacted>` in the snapshot.

use std::path::PathBuf;

use serde_json::Value;
use time::OffsetDateTime;
use vaultkeeper_api::{TlsMode, VaultCluster, parse_manifests, validate};
use vaultkeeper_render::{Manifest, RenderContext, pki, render, to_yaml_stream};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn examples() -> Vec<(String, VaultCluster)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(examples_dir()).expect("examples/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("example reads");
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_owned();
        // A VaultRestore, not a cluster: applied by tests/tests/restore.rs.
        if stem == "restore" {
            continue;
        }
        for cluster in parse_manifests(&text).unwrap_or_else(|e| panic!("{stem}: {e}")) {
            found.push((stem.clone(), cluster));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

fn render_example(cluster: &VaultCluster) -> Vec<Manifest> {
    let namespace = cluster
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let material = (cluster.spec.tls.mode == TlsMode::SelfSigned)
        .then(|| pki::issue_new(cluster, &namespace, OffsetDateTime::now_utc()).expect("pki"));
    let mut ctx = RenderContext::new(&namespace, material.as_ref());
    ctx.operator_image = "ghcr.io/vaultkeeper/vaultkeeper:test";
    ctx.owner_uid = Some("00000000-0000-4000-8000-000000000000");
    render(cluster, &ctx).expect("renders")
}

fn redacted(manifests: &[Manifest]) -> Vec<Manifest> {
    manifests
        .iter()
        .cloned()
        .map(|mut m| {
            if let Some(Value::Object(data)) = m.object.get_mut("data")
                && m.kind == "Secret"
            {
                for value in data.values_mut() {
                    *value = Value::String("<redacted>".into());
                }
            }
            m
        })
        .collect()
}

#[test]
fn there_are_examples_and_each_is_valid() {
    let all = examples();
    assert!(
        all.len() >= 6,
        "expected the documented examples, found {}",
        all.len()
    );
    for (name, cluster) in &all {
        validate(cluster).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn every_example_matches_its_golden_rendering() {
    for (name, cluster) in examples() {
        let yaml = to_yaml_stream(&redacted(&render_example(&cluster))).expect("yaml");
        insta::assert_snapshot!(name, yaml);
    }
}

#[test]
fn rendering_is_deterministic_apart_from_key_material() {
    for (name, cluster) in examples() {
        let first = redacted(&render_example(&cluster));
        let second = redacted(&render_example(&cluster));
        assert_eq!(first, second, "{name}");
    }
}

fn find<'a>(manifests: &'a [Manifest], kind: &str, name: &str) -> &'a Value {
    &manifests
        .iter()
        .find(|m| m.kind == kind && m.name == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .object
}

#[test]
fn objects_are_named_and_selected_as_the_vault_helm_chart_does() {
    let (_, cluster) = examples()
        .into_iter()
        .find(|(n, _)| n == "ha-raft")
        .expect("ha-raft");
    let manifests = render_example(&cluster);
    let sts = find(&manifests, "StatefulSet", "vault");
    assert_eq!(sts["spec"]["serviceName"], "vault-internal");
    assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel");
    assert_eq!(sts["spec"]["updateStrategy"]["type"], "OnDelete");
    let selector = &sts["spec"]["selector"]["matchLabels"];
    assert_eq!(selector["app.kubernetes.io/name"], "vault");
    assert_eq!(selector["app.kubernetes.io/instance"], "vault");
    assert_eq!(selector["component"], "server");

    assert_eq!(
        find(&manifests, "Service", "vault-active")["spec"]["selector"]["vault-active"],
        "true"
    );
    assert_eq!(
        find(&manifests, "Service", "vault-standby")["spec"]["selector"]["vault-active"],
        "false"
    );
    let internal = find(&manifests, "Service", "vault-internal");
    assert_eq!(internal["spec"]["clusterIP"], "None");
    assert_eq!(internal["spec"]["publishNotReadyAddresses"], true);
    find(&manifests, "Service", "vault-ui");
    find(&manifests, "ConfigMap", "vault-config");
    find(&manifests, "Role", "vault-discovery-role");
    find(&manifests, "RoleBinding", "vault-discovery-rolebinding");
    assert_eq!(
        find(&manifests, "PodDisruptionBudget", "vault")["spec"]["maxUnavailable"],
        1
    );
    find(&manifests, "Secret", "vault-ca-internal");
    find(&manifests, "Secret", "vault-server-tls");
    let crb = manifests
        .iter()
        .find(|m| m.kind == "ClusterRoleBinding")
        .expect("auth delegator");
    assert_eq!(crb.object["roleRef"]["name"], "system:auth-delegator");
    assert_eq!(crb.namespace, None);
}

#[test]
fn openbao_services_select_the_label_openbao_writes() {
    let (_, cluster) = examples()
        .into_iter()
        .find(|(n, _)| n == "openbao")
        .expect("openbao");
    let manifests = render_example(&cluster);
    let active = find(&manifests, "Service", "openbao-active");
    assert_eq!(active["spec"]["selector"]["openbao-active"], "true");
    assert_eq!(
        active["spec"]["selector"]["app.kubernetes.io/name"],
        "openbao"
    );
    let sts = find(&manifests, "StatefulSet", "openbao");
    let container = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "openbao");
    let env: Vec<&str> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(
        env.contains(&"BAO_ADDR") && env.contains(&"BAO_RAFT_NODE_ID"),
        "{env:?}"
    );
    let config =
        find(&manifests, "ConfigMap", "openbao-config")["data"]["extraconfig-from-values.hcl"]
            .as_str()
            .expect("config");
    assert!(
        !config.contains("disable_mlock"),
        "OpenBao dropped disable_mlock:\n{config}"
    );
    assert!(config.contains("/openbao/data"));
}

#[test]
fn every_namespaced_object_is_owned_by_the_cluster_and_labelled() {
    for (name, cluster) in examples() {
        for m in render_example(&cluster) {
            let labels = &m.object["metadata"]["labels"];
            assert_eq!(
                labels["app.kubernetes.io/managed-by"], "vaultkeeper",
                "{name} {} {}",
                m.kind, m.name
            );
            assert_eq!(
                labels["app.kubernetes.io/instance"],
                cluster.metadata.name.as_deref().unwrap_or_default()
            );
            let owners = &m.object["metadata"]["ownerReferences"];
            if m.namespace.is_some() {
                assert_eq!(
                    owners[0]["kind"], "VaultCluster",
                    "{name} {} {}",
                    m.kind, m.name
                );
                assert_eq!(owners[0]["controller"], true);
            } else {
                assert!(
                    owners.is_null(),
                    "cluster-scoped {} cannot have a namespaced owner",
                    m.name
                );
            }
        }
    }
}

#[test]
fn no_seal_credential_ever_lands_in_the_configuration() {
    let (_, cluster) = examples()
        .into_iter()
        .find(|(n, _)| n == "auto-unseal-transit")
        .expect("transit example");
    let manifests = render_example(&cluster);
    let config =
        find(&manifests, "ConfigMap", "vault-config")["data"]["extraconfig-from-values.hcl"]
            .as_str()
            .expect("config");
    assert!(config.contains("seal \"transit\""), "{config}");
    assert!(
        !config.contains("token"),
        "the transit token goes through the environment:\n{config}"
    );
    let env = &find(&manifests, "StatefulSet", "vault")["spec"]["template"]["spec"]["containers"]
        [0]["env"];
    let token = env
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "VAULT_TOKEN")
        .expect("VAULT_TOKEN");
    assert_eq!(
        token["valueFrom"]["secretKeyRef"]["name"],
        "vault-transit-token"
    );
    assert!(token.get("value").is_none());
}

#[test]
fn scaling_changes_the_replica_count_and_nothing_a_running_pod_sees() {
    // A scale must start or stop pods, never roll the ones that run: the pod template and
    // the server configuration may not depend on spec.replicas.
    let (_, cluster) = examples()
        .into_iter()
        .find(|(n, _)| n == "openbao")
        .expect("openbao");
    let shape = |replicas: i32| {
        let mut scaled = cluster.clone();
        scaled.spec.replicas = replicas;
        let manifests = redacted(&render_example(&scaled));
        let sts = find(&manifests, "StatefulSet", "openbao").clone();
        let config = find(&manifests, "ConfigMap", "openbao-config")["data"].clone();
        (
            sts["spec"]["replicas"].clone(),
            sts["spec"]["template"].clone(),
            config,
        )
    };
    let (three, template_3, config_3) = shape(3);
    for replicas in [1, 5, 7] {
        let (count, template, config) = shape(replicas);
        assert_eq!(count, replicas, "spec.replicas reaches the StatefulSet");
        assert_eq!(
            template, template_3,
            "pod template differs at {replicas} vs {three}"
        );
        assert_eq!(
            config, config_3,
            "server config differs at {replicas} vs {three}"
        );
    }
}
