//! Declarative self-initialization: the stanza reaches pod -0 only, and only until the
//! cluster is initialized.

use vaultkeeper_api::parse_manifests;
use vaultkeeper_render::{RenderContext, SELF_INIT_KEY, render};

const SELF_INIT: &str = "apiVersion: vaultkeeper.io/v1alpha1\nkind: VaultCluster\nmetadata: {name: bao, namespace: sec}\nspec:\n  flavor: OpenBao\n  tls: {mode: Disabled}\n  keys: {initialization: SelfInit}\n  unseal: {type: Static, static: {keySecret: {name: seal-key}}}\n  backup: {enabled: false}\n";

#[test]
fn the_stanza_is_a_configmap_key_that_only_pod_zero_appends() {
    let cluster = parse_manifests(SELF_INIT).expect("manifest").remove(0);
    let mut ctx = RenderContext::new("sec", None);
    let stanza = "initialize \"vaultkeeper-operator-identity\" {}\n";
    ctx.self_init_stanza = Some(stanza);
    let manifests = render(&cluster, &ctx).expect("renders");
    let config = manifests
        .iter()
        .find(|m| m.kind == "ConfigMap")
        .expect("config map");
    assert_eq!(config.object["data"][SELF_INIT_KEY], stanza);
    let main = config.object["data"]["extraconfig-from-values.hcl"]
        .as_str()
        .expect("main config");
    assert!(
        !main.contains("initialize"),
        "the shared configuration must not carry it:\n{main}"
    );
    let sts = manifests
        .iter()
        .find(|m| m.kind == "StatefulSet")
        .expect("statefulset");
    let script = sts.object["spec"]["template"]["spec"]["containers"][0]["args"][0]
        .as_str()
        .expect("script");
    assert!(
        script.contains(&format!("*-0) [ -f /openbao/config/{SELF_INIT_KEY} ] && cat /openbao/config/{SELF_INIT_KEY} >> /tmp/storageconfig.hcl")),
        "{script}"
    );

    // Once initialized, the operator renders without it: the key disappears, the pod
    // template (and so the running pods) stays the same.
    ctx.self_init_stanza = None;
    let later = render(&cluster, &ctx).expect("renders");
    let config = later
        .iter()
        .find(|m| m.kind == "ConfigMap")
        .expect("config map");
    assert!(config.object["data"].get(SELF_INIT_KEY).is_none());
    let later_sts = later
        .iter()
        .find(|m| m.kind == "StatefulSet")
        .expect("statefulset");
    assert_eq!(
        later_sts.object["spec"]["template"],
        sts.object["spec"]["template"]
    );
}

#[test]
fn operator_initialized_clusters_carry_no_stanza_even_if_one_is_given() {
    let cluster = parse_manifests(&SELF_INIT.replace(
        "keys: {initialization: SelfInit}",
        "keys: {initialization: Operator}",
    ))
    .expect("manifest")
    .remove(0);
    let mut ctx = RenderContext::new("sec", None);
    ctx.self_init_stanza = Some("initialize \"x\" {}\n");
    let manifests = render(&cluster, &ctx).expect("renders");
    let config = manifests
        .iter()
        .find(|m| m.kind == "ConfigMap")
        .expect("config map");
    assert!(config.object["data"].get(SELF_INIT_KEY).is_none());
}
