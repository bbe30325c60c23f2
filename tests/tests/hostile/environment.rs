//! Steering the CLI that carries the shares through the container environment: the API
//! server refuses a VaultCluster whose `spec.pod.env` sets a name the Vault or OpenBao CLI
//! reads, naming the entry, so no such pod is ever rendered. (That the CLI is also given its
//! address and CA explicitly, with the steering variables cleared, whatever the image's own
//! environment says, is shown against the real CLI in
//! `crates/vaultkeeper-vault/tests/hostile_env.rs`.)

use kube::api::{Api, PostParams};
use vaultkeeper_api::VaultCluster;
use vaultkeeper_e2e::hostile::{ATTACKER_NAMESPACE, attacker, small_cluster};
use vaultkeeper_e2e::install::install_operator_rbac_watching;
use vaultkeeper_sim::{SimCluster, SimConfig};

fn with_env(name: &str, env: &str) -> VaultCluster {
    small_cluster(
        name,
        &format!("  pod:\n    env:\n    - name: VAULT_LOG_LEVEL\n      value: debug\n{env}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_that_would_redirect_the_cli_is_refused_naming_the_entry() {
    let sim = SimCluster::start(SimConfig::for_slot(184))
        .await
        .expect("the simulated cluster starts");
    install_operator_rbac_watching(&sim, &[ATTACKER_NAMESPACE])
        .await
        .expect("the default install");
    let mallory = attacker(&sim).await.expect("the attacker's account");
    let api: Api<VaultCluster> = Api::namespaced(mallory, ATTACKER_NAMESPACE);
    for (i, variable) in [
        "VAULT_ADDR",
        "BAO_ADDR",
        "VAULT_SKIP_VERIFY",
        "BAO_SKIP_VERIFY",
        "VAULT_AGENT_ADDR",
        "VAULT_CACERT",
        "VAULT_TOKEN",
    ]
    .iter()
    .enumerate()
    {
        let env = format!("    - name: {variable}\n      value: https://attacker.example.com:8200");
        let refused = api
            .create(
                &PostParams::default(),
                &with_env(&format!("redirect-{i}"), &env),
            )
            .await
            .expect_err("refused by the API server");
        let kube::Error::Api(status) = refused else {
            panic!("{variable}: expected a 422, got {refused}");
        };
        assert_eq!(status.code, 422, "{variable}");
        assert!(
            status.message.contains("spec.pod.env"),
            "{variable}: the message names the field: {}",
            status.message
        );
    }
    // Positive control: the server's own log settings are allowed, so the refusals above
    // are the rule and not a blanket one.
    api.create(&PostParams::default(), &with_env("quiet", ""))
        .await
        .expect("VAULT_LOG_LEVEL is the server's own setting");
}
