//! Rotation: a person asks for a rekey (and an encryption-key rotation) by setting a value
//! in `spec.keys.rotation`; the operator does it once, through the active pod, records it
//! in status with an Event, and from then on unseals every pod with the new shares. The
//! old shares no longer open the cluster, and they leave the keys Secret once every pod
//! has been unsealed with the new ones. The escrowed copy follows: it opens to the new
//! shares.

use std::time::Duration;

use serde_json::json;
use vaultkeeper_api::VaultCluster;
use vaultkeeper_e2e::operator::{
    DnsRefresher, Operator, apply_cluster, assert_no_secret_leaked, bao_at_with_stdin,
    capture_logs, cluster_with_pods, count_events, events, init_commands, patch_spec, ready,
    secrets_of, stored_keys, wait_for,
};
use vaultkeeper_vault::secret::ExposeSecret;

const TIMEOUT: Duration = Duration::from_secs(300);

/// Three pods; escrow to a Secret only (no bucket), to one recipient of the test's.
fn manifest(recipient: &str) -> String {
    format!(
        "apiVersion: vaultkeeper.io/v1alpha1
kind: VaultCluster
metadata:
  name: rotated
spec:
  flavor: OpenBao
  image: quay.io/openbao/openbao:2.7.2
  replicas: 3
  backup:
    enabled: false
  keys:
    escrow:
      recipients: [{recipient}]
      objectStore: false
      secret:
        namespace: rotated-escrow
        name: rotated-keys-escrow
"
    )
}

/// The shares the escrow Secret's copy opens to, once it exists.
async fn escrowed_shares(
    sim: &vaultkeeper_sim::SimCluster,
    identity: &vaultkeeper_vault::secret::SecretString,
) -> Option<Vec<String>> {
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(sim.client().expect("admin client"), "rotated-escrow");
    let secret = secrets.get_opt("rotated-keys-escrow").await.ok()??;
    let ciphertext = secret.data?.remove("escrow.age")?.0;
    let identities = vaultkeeper::escrow::parse_identities("test", identity).expect("identity");
    let plaintext = vaultkeeper::escrow::decrypt(&ciphertext, &identities).expect("decrypts");
    let opened = vaultkeeper::escrow::payload::open(plaintext.expose_secret()).expect("opens");
    Some(
        opened
            .keys
            .shares
            .iter()
            .map(|s| s.expose_secret().to_owned())
            .collect(),
    )
}

fn rotated(kind: &'static str, request: &'static str) -> impl Fn(&VaultCluster) -> bool {
    move |vc| {
        let done = vc.status.as_ref().and_then(|s| s.rotation.as_ref());
        let record = match kind {
            "rekey" => done.and_then(|d| d.rekey.as_ref()),
            _ => done.and_then(|d| d.encryption_key.as_ref()),
        };
        record.is_some_and(|r| r.request == request) && ready(vc)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rekey_asked_for_in_the_spec_replaces_the_shares_and_only_the_new_ones_unseal() {
    let logs = capture_logs();
    let sim = cluster_with_pods(195).await;
    let dns = DnsRefresher::start(&sim, "vault");
    let mut operator = Operator::install_and_start(&sim).await;
    operator
        .restart_with(|s| s.escrow_secret_namespaces = vec!["rotated-escrow".into()])
        .await;
    let admin = sim.client().expect("admin client");
    vaultkeeper_e2e::install::apply_one(
        &admin,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rotated-escrow"}}),
        "e2e",
    )
    .await
    .expect("the escrow namespace");
    let (identity, recipient) = vaultkeeper::escrow::generate_identity();
    apply_cluster(&sim, &manifest(&recipient), "vault").await;
    wait_for(&sim, "vault", "rotated", TIMEOUT, "Ready", ready).await;
    let before = stored_keys(&sim, "vault", "rotated-unseal-keys")
        .await
        .expect("keys");

    patch_spec(
        &sim,
        "vault",
        "rotated",
        json!({"keys": {"rotation": {"rekey": "2026-12-06"}}}),
    )
    .await;
    wait_for(
        &sim,
        "vault",
        "rotated",
        TIMEOUT,
        "the rekey recorded in status",
        rotated("rekey", "2026-12-06"),
    )
    .await;
    let after = stored_keys(&sim, "vault", "rotated-unseal-keys")
        .await
        .expect("keys");
    let old: Vec<String> = before
        .shares
        .iter()
        .map(|s| s.expose_secret().to_owned())
        .collect();
    assert!(
        after
            .shares
            .iter()
            .all(|s| !old.contains(&s.expose_secret().to_owned())),
        "every share is new"
    );
    assert_eq!((after.shares.len(), after.threshold), (5, 3));
    assert_eq!(
        after.previous.as_ref().map(|p| p.pods_left.len()),
        Some(3),
        "the old shares wait for every pod"
    );
    assert_eq!(count_events(&events(&sim, "vault").await, "Rekeyed"), 1);

    // The escrowed copy follows the rekey.
    let new: Vec<String> = after
        .shares
        .iter()
        .map(|s| s.expose_secret().to_owned())
        .collect();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while escrowed_shares(&sim, &identity).await.as_ref() != Some(&new) {
        assert!(
            std::time::Instant::now() < deadline,
            "the escrow never caught up with the rekey"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The old shares no longer open a restarted pod (the operator is stopped meanwhile, so
    // only the test speaks to it).
    operator.stop().await;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(sim.client().expect("admin client"), "vault");
    pods.delete("rotated-2", &Default::default())
        .await
        .expect("the pod is deleted");
    let mut refused = None;
    for attempt in 0..120 {
        let mut outcome = Ok(String::new());
        for share in old.iter().take(3) {
            outcome = bao_at_with_stdin(
                &sim,
                "vault",
                "rotated-2",
                "",
                &["write", "-format=json", "sys/unseal", "key=-"],
                Some(share),
            )
            .await;
            if outcome.is_err() {
                break;
            }
        }
        match outcome {
            Err(e) if e.contains("message authentication failed") => {
                refused = Some(e);
                break;
            }
            _ if attempt < 119 => tokio::time::sleep(Duration::from_millis(500)).await,
            other => panic!("the old shares were not refused: {other:?}"),
        }
    }
    assert!(refused.is_some());

    // The operator unseals it with the new ones, then every other pod after a restart;
    // then the old shares leave the keys Secret.
    operator.start();
    wait_for(&sim, "vault", "rotated", TIMEOUT, "Ready", ready).await;
    for pod in ["rotated-0", "rotated-1"] {
        pods.delete(pod, &Default::default())
            .await
            .expect("the pod is deleted");
        tokio::time::sleep(Duration::from_secs(2)).await;
        wait_for(&sim, "vault", "rotated", TIMEOUT, "Ready", ready).await;
    }
    // Ready may still be the status from before a deletion was seen: wait for the keys
    // Secret itself to drop the old shares.
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let settled = stored_keys(&sim, "vault", "rotated-unseal-keys")
            .await
            .expect("keys");
        if settled.previous.is_none() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the old shares were never dropped: {settled:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The encryption key rotates on request too, once.
    patch_spec(
        &sim,
        "vault",
        "rotated",
        json!({"keys": {"rotation": {"rekey": "2026-12-06", "encryptionKey": "k2"}}}),
    )
    .await;
    wait_for(
        &sim,
        "vault",
        "rotated",
        TIMEOUT,
        "the encryption key rotation recorded in status",
        rotated("encryptionKey", "k2"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let seen = events(&sim, "vault").await;
    assert_eq!(count_events(&seen, "Rekeyed"), 1, "one request, one rekey");
    assert_eq!(count_events(&seen, "EncryptionKeyRotated"), 1);
    assert_eq!(init_commands(&sim, "vault"), 1);

    let mut secrets = secrets_of(&before);
    secrets.extend(secrets_of(&after));
    assert_no_secret_leaked(&sim, "vault", &secrets, &logs.text()).await;
    dns.stop().await;
}
