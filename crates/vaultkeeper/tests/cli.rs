//! The `vaultkeeper crd` and `vaultkeeper render` commands, run as a user runs them.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn vaultkeeper(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vaultkeeper"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vaultkeeper runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("vaultkeeper finishes")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn crd_prints_the_committed_crd() {
    let output = vaultkeeper(&["crd"], None);
    assert!(output.status.success(), "{}", stderr(&output));
    let committed = std::fs::read(root().join("crds/vaultcluster.yaml")).expect("committed CRD");
    assert_eq!(output.stdout, committed);
}

#[test]
fn crd_prints_the_committed_restore_crd() {
    let output = vaultkeeper(&["crd", "--kind", "VaultRestore"], None);
    assert!(output.status.success(), "{}", stderr(&output));
    let committed = std::fs::read(root().join("crds/vaultrestore.yaml")).expect("committed CRD");
    assert_eq!(output.stdout, committed);
    let refused = vaultkeeper(&["crd", "--kind", "Nothing"], None);
    assert!(!refused.status.success());
}

#[test]
fn render_prints_every_object_of_an_example() {
    let example = root().join("examples/ha-raft.yaml");
    let output = vaultkeeper(&["render", "-f", example.to_str().expect("path")], None);
    assert!(output.status.success(), "{}", stderr(&output));
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&String::from_utf8_lossy(&output.stdout)).expect("YAML stream");
    let kinds: Vec<&str> = documents
        .iter()
        .filter_map(|d| d["kind"].as_str())
        .collect();
    for kind in [
        "StatefulSet",
        "ConfigMap",
        "Service",
        "Secret",
        "PodDisruptionBudget",
        "Role",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert!(
        documents
            .iter()
            .all(|d| d["metadata"]["namespace"] == "vault" || d["kind"] == "ClusterRoleBinding")
    );
}

#[test]
fn render_reads_stdin_and_takes_the_namespace_flag() {
    let manifest = "apiVersion: vaultkeeper.io/v1alpha1\nkind: VaultCluster\nmetadata: {name: kv}\nspec: {backup: {enabled: false}}\n";
    let output = vaultkeeper(
        &["render", "-f", "-", "--namespace", "team-a"],
        Some(manifest),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("namespace: team-a"));
    assert!(text.contains("name: kv-active"));
}

#[test]
fn an_invalid_manifest_fails_with_the_field_and_the_fix() {
    let manifest = "apiVersion: vaultkeeper.io/v1alpha1\nkind: VaultCluster\nmetadata: {name: vault}\nspec: {replicas: 2}\n";
    let output = vaultkeeper(&["render", "-f", "-"], Some(manifest));
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("spec.replicas"), "{err}");
    assert!(err.contains("1, 3, 5 or 7"), "{err}");
    // Backups are on by default: the same run also says what to do about them.
    assert!(err.contains("spec.backup.s3.bucket"), "{err}");
    assert!(
        output.stdout.is_empty(),
        "nothing is rendered for an invalid manifest"
    );
}

#[test]
fn a_typo_or_a_wrong_type_is_named() {
    let typo = "apiVersion: vaultkeeper.io/v1alpha1\nkind: VaultCluster\nmetadata: {name: vault}\nspec: {replica: 3}\n";
    let output = vaultkeeper(&["render", "-f", "-"], Some(typo));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("unknown field spec.replica"),
        "{}",
        stderr(&output)
    );

    let wrong_type = "apiVersion: vaultkeeper.io/v1alpha1\nkind: VaultCluster\nmetadata: {name: vault}\nspec: {replicas: three}\n";
    let output = vaultkeeper(&["render", "-f", "-"], Some(wrong_type));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("spec.replicas: invalid type"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_missing_file_is_an_input_error_not_a_crash() {
    let output = vaultkeeper(&["render", "-f", "/nonexistent/vault.yaml"], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("cannot read /nonexistent/vault.yaml"));
}
