//! Escrow of the keys off the cluster, end to end: real OpenBao pods, the in-process
//! operator, a real S3 server (moto) on loopback, and the real `vaultkeeper keys decrypt`
//! binary. The escrowed copy, decrypted with a key holder's identity, unseals a restarted
//! pod by hand; the next backup names the escrow object in its manifest; status and
//! `KeysEscrowed` tell where the copy is; a recipient that is not an age key, or a Secret
//! namespace the operator may not write to, is reported naming the field and the fix; and
//! no share or token reaches a log, an Event or an exec command line.

use std::process::{Command, Stdio};
use std::time::Duration;
use vaultkeeper_backup::store::ObjectStore as _;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use vaultkeeper_api::{VaultCluster, parse_manifests};
use vaultkeeper_e2e::moto::Moto;
use vaultkeeper_e2e::operator::{
    Operator, assert_no_secret_leaked, bao_at, bao_at_with_stdin, capture_logs, cluster_with_pods,
    condition, events, example, ready, secrets_of, stored_keys, vaultkeeper_binary, wait_for,
};
use vaultkeeper_vault::keys::InitKeys;
use vaultkeeper_vault::secret::ExposeSecret;

const S3_HOST: &str = "127.31.1.188";
const S3: &str = "127.31.1.188:5000";
const BUCKET: &str = "vault-escrow-e2e";

/// The escrow example, made to run here: one OpenBao pod, backups every minute to moto,
/// `recipient` instead of the example's keys.
fn escrow_cluster(namespace: &str, recipient: &str) -> VaultCluster {
    let mut vc = parse_manifests(&example("escrow"))
        .expect("the example parses")
        .remove(0);
    assert!(
        vaultkeeper_api::validate(&vc).is_ok(),
        "the example is valid as shipped"
    );
    vc.metadata.namespace = Some(namespace.into());
    vc.metadata.name = Some("openbao".into());
    vc.spec.replicas = 1;
    vc.spec.flavor = Some(vaultkeeper_api::Flavor::OpenBao);
    vc.spec.image = Some("quay.io/openbao/openbao:2.7.2".into());
    vc.spec.backup.schedule = "* * * * *".into();
    let s3 = vc.spec.backup.s3.as_mut().expect("the example backs up");
    s3.bucket = BUCKET.into();
    s3.region = "us-east-1".into();
    s3.endpoint = Some(format!("http://{S3}"));
    s3.force_path_style = true;
    s3.prefix = Some("e2e".into());
    s3.credentials_secret.as_mut().expect("credentials").name = "backup-s3".into();
    let escrow = vc.spec.keys.escrow.as_mut().expect("the example escrows");
    escrow.recipients = vec![recipient.to_owned()];
    escrow.secret.as_mut().expect("a Secret copy").namespace = format!("{namespace}-escrow");
    vc
}

/// The test bucket through the project's S3 client (moto refuses unsigned object reads).
async fn bucket() -> vaultkeeper_backup::s3::S3Store {
    let settings = vaultkeeper_backup::s3::S3Settings {
        bucket: BUCKET.into(),
        region: "us-east-1".into(),
        endpoint: Some(format!("http://{S3}")),
        force_path_style: true,
        credentials: vaultkeeper_backup::s3::S3Credentials::Static {
            access_key_id: "testing".into(),
            secret_access_key: vaultkeeper_vault::secret::secret_string("testing".into()),
            session_token: None,
        },
        ca_pem: None,
        checksums_when_required: true,
    };
    vaultkeeper_backup::s3::S3Store::connect(&settings)
        .await
        .expect("S3 settings")
}

/// `vaultkeeper keys ...` with `args`: exit code, stdout, stderr.
fn vaultkeeper(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(vaultkeeper_binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("vaultkeeper runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn escrowed(vc: &VaultCluster) -> Option<vaultkeeper_api::EscrowStatus> {
    vc.status
        .as_ref()
        .and_then(|s| s.keys.as_ref())
        .and_then(|k| k.escrow.clone())
}

fn keys_escrowed_message(vc: &VaultCluster) -> Option<(String, String, String)> {
    vc.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "KeysEscrowed")
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    })
}

/// `sys/seal-status` of the pod (unauthenticated), as JSON text.
async fn seal_status(sim: &vaultkeeper_sim::SimCluster, namespace: &str) -> Result<String, String> {
    bao_at(
        sim,
        namespace,
        "openbao-0",
        "",
        &["read", "-format=json", "sys/seal-status"],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escrowed_keys_decrypt_with_a_holders_identity_unseal_a_restarted_pod_and_are_named_by_backups()
 {
    const NAMESPACE: &str = "escrow";
    let logs = capture_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let moto = Moto::start(dir.path(), S3_HOST);
    assert!(
        moto.request("PUT", &format!("/{BUCKET}"))
            .starts_with("HTTP/1.1 200")
    );

    // A key holder's identity, made with the CLI as docs/custody.md says.
    let identity = dir.path().join("alice.agekey");
    let identity_arg = identity.to_string_lossy().into_owned();
    let (code, recipient, stderr) =
        vaultkeeper(&["keys", "generate-identity", "--output", &identity_arg]);
    assert_eq!(code, 0, "{stderr}");
    let recipient = recipient.trim().to_owned();
    assert!(recipient.starts_with("age1"), "{recipient}");

    let sim = cluster_with_pods(188).await;
    let mut operator = Operator::install_and_start(&sim).await;
    // The platform lets this cluster's escrow copy go to the namespace next to it.
    operator
        .restart_with(|s| s.escrow_secret_namespaces = vec![format!("{NAMESPACE}-escrow")])
        .await;
    let admin = sim.client().expect("admin client");
    vaultkeeper_e2e::operator::create_namespace(&admin, NAMESPACE).await;
    vaultkeeper_e2e::operator::create_namespace(&admin, &format!("{NAMESPACE}-escrow")).await;
    vaultkeeper_e2e::moto::s3_credentials(&admin, NAMESPACE).await;
    let vc = escrow_cluster(NAMESPACE, &recipient);
    let api: Api<VaultCluster> = Api::namespaced(admin.clone(), NAMESPACE);
    api.create(&PostParams::default(), &vc)
        .await
        .expect("created");

    wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        Duration::from_secs(240),
        "Ready, bootstrapped and KeysEscrowed",
        |vc| {
            ready(vc)
                && condition(vc, "KeysEscrowed", "True")
                && vc.status.as_ref().is_some_and(|s| s.bootstrapped)
        },
    )
    .await;
    // Revoking the root token after bootstrap changes the record: the escrow follows it.
    let keys: InitKeys = stored_keys(&sim, NAMESPACE, "openbao-unseal-keys")
        .await
        .expect("the keys Secret");
    assert!(keys.root_token.is_none(), "the root token was revoked");
    let record = keys.to_json().expect("record");
    // What is escrowed: the record and the backup encryption key (docs/custody.md).
    let backup_key = Api::<Secret>::namespaced(admin.clone(), NAMESPACE)
        .get("openbao-backup-key")
        .await
        .expect("the backup key Secret")
        .data
        .and_then(|mut d| d.remove("key"))
        .expect("the backup key");
    let plaintext = vaultkeeper::escrow::payload::seal(
        &keys,
        Some(&vaultkeeper::escrow::payload::BackupKey {
            secret: "openbao-backup-key".into(),
            item: "key".into(),
            value: vaultkeeper_vault::secret::secret_bytes(backup_key.0),
        }),
    )
    .expect("the escrow plaintext");
    let current = vaultkeeper::escrow::fingerprint(plaintext.expose_secret());
    let vc = wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        Duration::from_secs(60),
        "the current record escrowed",
        |vc| {
            condition(vc, "KeysEscrowed", "True")
                && escrowed(vc).is_some_and(|e| e.fingerprint == current)
        },
    )
    .await;
    let escrow = escrowed(&vc).expect("status.keys.escrow");
    assert_eq!(escrow.fingerprint, current);
    assert_eq!(escrow.recipients, 1);
    assert!(escrow.written_at.is_some());
    assert_eq!(escrow.bucket.as_deref(), Some(BUCKET));
    let object = escrow.object.clone().expect("the object is named");
    assert!(
        object.starts_with("e2e/escrow/openbao/") && object.ends_with(".age"),
        "{object}"
    );
    assert!(object.contains(&escrow.fingerprint[..16]), "{object}");
    assert_eq!(
        escrow.secret.as_deref(),
        Some(&*format!("{NAMESPACE}-escrow/vault-keys-escrow"))
    );
    let (_, reason, message) = keys_escrowed_message(&vc).expect("KeysEscrowed");
    assert_eq!(reason, "Escrowed", "{message}");
    assert!(message.contains(&object), "{message}");

    // The object in the bucket, decrypted by the real CLI with the holder's identity.
    let store = bucket().await;
    let ciphertext = store.get_small(&object).await.expect("the escrow object");
    let escrow_objects = store.list("e2e/escrow/").await.expect("listing");
    // The object status names is listed, and nothing newer holds another payload: a pass
    // that read the VaultCluster before the status naming it landed may have escrowed the
    // same payload once more (its own status write is then refused as a conflict), which
    // is a second copy of the same record to the same recipients, not a different one.
    let named = escrow_objects
        .iter()
        .position(|o| o.key == object)
        .unwrap_or_else(|| panic!("{object} is not listed: {escrow_objects:?}"));
    assert!(
        escrow_objects[named..]
            .iter()
            .all(|o| o.key.contains(&escrow.fingerprint[..16])),
        "no newer escrow object holds another payload: {escrow_objects:?}"
    );
    for secret in secrets_of(&keys) {
        assert!(
            !String::from_utf8_lossy(&ciphertext).contains(&secret),
            "the escrow object holds no plaintext"
        );
    }
    let input = dir.path().join("escrow.age");
    std::fs::write(&input, &ciphertext).expect("write");
    let output = dir.path().join("record.json");
    let (code, _, stderr) = vaultkeeper(&[
        "keys",
        "decrypt",
        "--identity",
        &identity_arg,
        "--input",
        &input.to_string_lossy(),
        "--output",
        &output.to_string_lossy(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains(&escrow.fingerprint), "{stderr}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&output)
            .expect("output")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let decrypted = InitKeys::from_json(&std::fs::read(&output).expect("read")).expect("a record");
    assert_eq!(secrets_of(&decrypted), secrets_of(&keys));

    // The same through the bucket (`--object`), printed as a keys Secret manifest.
    let access_key = dir.path().join("access-key");
    std::fs::write(&access_key, "testing").expect("write");
    let (code, manifest, stderr) = vaultkeeper(&[
        "keys",
        "decrypt",
        "--identity",
        &identity_arg,
        "--object",
        "latest",
        "--cluster-name",
        "openbao",
        "--bucket",
        BUCKET,
        "--prefix",
        "e2e",
        "--s3-endpoint",
        &format!("http://{S3}"),
        "--s3-path-style",
        "--s3-access-key-id-file",
        &access_key.to_string_lossy(),
        "--s3-secret-access-key-file",
        &access_key.to_string_lossy(),
        "--as-secret",
        "openbao-unseal-keys",
        "--namespace",
        NAMESPACE,
    ]);
    assert_eq!(code, 0, "{stderr}");
    // A List: the keys Secret, and the backup key's Secret as the cluster has it (a
    // backup cannot be opened without it).
    let list: serde_json::Value = serde_json::from_str(&manifest).expect("a List manifest");
    assert_eq!(list["kind"], "List");
    let as_secret: Secret =
        serde_json::from_value(list["items"][0].clone()).expect("the keys Secret");
    let backup_key: Secret =
        serde_json::from_value(list["items"][1].clone()).expect("the backup key Secret");
    let live_backup_key = Api::<Secret>::namespaced(admin.clone(), NAMESPACE)
        .get(backup_key.metadata.name.as_deref().expect("a name"))
        .await
        .expect("the live backup key Secret");
    assert_eq!(backup_key.data, live_backup_key.data);
    let init = as_secret
        .data
        .as_ref()
        .and_then(|d| d.get("init.json"))
        .expect("init.json");
    assert_eq!(init.0, record.expose_secret().to_vec());
    assert_eq!(as_secret.metadata.namespace.as_deref(), Some(NAMESPACE));

    // The Secret copy in the other namespace holds only age ciphertext, of the same record.
    // A pass that read the VaultCluster before the status naming the object landed may
    // have escrowed the same payload once more (see above); age encryption is randomized,
    // so the copy's bytes may then differ from the named object's, never what it opens to.
    let copy = Api::<Secret>::namespaced(admin.clone(), &format!("{NAMESPACE}-escrow"))
        .get("vault-keys-escrow")
        .await
        .expect("the escrow Secret");
    let copied = copy
        .data
        .as_ref()
        .and_then(|d| d.get("escrow.age"))
        .expect("escrow.age");
    assert!(
        copied.0.starts_with(b"age-encryption.org/v1\n"),
        "the copy is age ciphertext"
    );
    if copied.0 != ciphertext {
        let holder = vaultkeeper_vault::secret::secret_string(
            std::fs::read_to_string(&identity).expect("the holder's identity file"),
        );
        let shares = secret_copy_opens_with(
            &admin,
            &format!("{NAMESPACE}-escrow"),
            "vault-keys-escrow",
            &holder,
        )
        .await
        .expect("the Secret copy opens with the holder's identity");
        let expected: Vec<String> = keys
            .shares
            .iter()
            .map(|s| s.expose_secret().to_owned())
            .collect();
        assert_eq!(shares, expected, "the copy holds the same shares");
    }
    assert_eq!(copy.data.as_ref().map(|d| d.len()), Some(1));

    // Wrong identity: exit 2, names the flag, no key material.
    let stranger = dir.path().join("mallory.agekey");
    let (code, _, _) = vaultkeeper(&[
        "keys",
        "generate-identity",
        "--output",
        &stranger.to_string_lossy(),
    ]);
    assert_eq!(code, 0);
    let (code, stdout, stderr) = vaultkeeper(&[
        "keys",
        "decrypt",
        "--identity",
        &stranger.to_string_lossy(),
        "--input",
        &input.to_string_lossy(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--identity") && stdout.is_empty(),
        "{stderr}"
    );

    // With the operator stopped, a restarted pod is unsealed by hand with the escrowed
    // shares: the copy really opens this cluster.
    operator.stop().await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    let old_uid = pods.get("openbao-0").await.expect("pod").metadata.uid;
    pods.delete("openbao-0", &DeleteParams::default())
        .await
        .expect("delete");
    let mut sealed = false;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(pod) = pods.get("openbao-0").await else {
            continue;
        };
        if pod.metadata.uid == old_uid {
            continue;
        }
        if let Ok(out) = seal_status(&sim, NAMESPACE).await
            && out.contains("\"sealed\": true")
        {
            sealed = true;
            break;
        }
    }
    assert!(sealed, "the restarted pod came up sealed");
    for share in decrypted
        .shares
        .iter()
        .take(usize::from(decrypted.threshold))
    {
        bao_at_with_stdin(
            &sim,
            NAMESPACE,
            "openbao-0",
            "",
            &["write", "-format=json", "sys/unseal", "key=-"],
            Some(share.expose_secret()),
        )
        .await
        .expect("an escrowed share is accepted");
    }
    let status = seal_status(&sim, NAMESPACE).await.expect("seal status");
    assert!(status.contains("\"sealed\": false"), "{status}");

    // The operator again: a backup taken now names the escrow object in its manifest.
    operator.start();
    let vc = wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        Duration::from_secs(200),
        "a successful backup",
        |vc| {
            vc.status
                .as_ref()
                .and_then(|s| s.backup.as_ref())
                .is_some_and(|b| b.last_object.is_some())
        },
    )
    .await;
    let backup = vc
        .status
        .as_ref()
        .and_then(|s| s.backup.as_ref())
        .and_then(|b| b.last_object.clone())
        .expect("backup object");
    let manifest = store
        .get_small(&format!("{backup}.manifest.json"))
        .await
        .expect("the manifest");
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest JSON");
    assert_eq!(
        manifest["source"]["keys_escrow"].as_str(),
        Some(object.as_str()),
        "{manifest}"
    );
    // The record did not change since, so nothing was written again.
    assert_eq!(escrowed(&vc).and_then(|e| e.object), Some(object.clone()));
    let listing = store.list("e2e/escrow/").await.expect("listing");
    assert_eq!(listing, escrow_objects, "nothing was escrowed again");

    let seen = events(&sim, NAMESPACE).await;
    assert!(seen.iter().any(|e| e.reason == "KeysEscrowed"), "{seen:?}");
    assert_no_secret_leaked(&sim, NAMESPACE, &secrets_of(&keys), &logs.text()).await;

    operator.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_recipient_or_a_namespace_the_operator_may_not_write_is_reported_with_the_fix() {
    const NAMESPACE: &str = "escrow-denied";
    let logs = capture_logs();
    let sim = cluster_with_pods(189).await;
    // The default, namespaced install: the operator manages this namespace only.
    let mut operator = Operator::install_and_start_watching(&sim, &[NAMESPACE]).await;
    let admin = sim.client().expect("admin client");
    vaultkeeper_e2e::operator::create_namespace(&admin, NAMESPACE).await;
    vaultkeeper_e2e::operator::create_namespace(&admin, "elsewhere").await;

    let mut vc = escrow_cluster(NAMESPACE, "age1notakey");
    vc.spec.backup.enabled = false;
    let escrow = vc.spec.keys.escrow.as_mut().expect("escrow");
    escrow.object_store = false;
    escrow.secret.as_mut().expect("secret").namespace = "elsewhere".into();
    let api: Api<VaultCluster> = Api::namespaced(admin.clone(), NAMESPACE);
    api.create(&PostParams::default(), &vc)
        .await
        .expect("created");
    let vc = wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        Duration::from_secs(60),
        "SpecValid=False",
        |vc| condition(vc, "SpecValid", "False"),
    )
    .await;
    let message = vc
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "SpecValid"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("spec.keys.escrow.recipients[0]") && message.contains("age-keygen"),
        "{message}"
    );
    assert!(
        Api::<Pod>::namespaced(admin.clone(), NAMESPACE)
            .get_opt("openbao-0")
            .await
            .expect("get")
            .is_none(),
        "an invalid spec starts nothing"
    );

    // A real recipient: the cluster comes up, and the escrow says why it cannot write.
    let (_, recipient) = vaultkeeper_e2e_recipient();
    api.patch(
        "openbao",
        &PatchParams::default(),
        &Patch::Merge(
            serde_json::json!({"spec": {"keys": {"escrow": {"recipients": [recipient]}}}}),
        ),
    )
    .await
    .expect("patch");
    let vc = wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        Duration::from_secs(240),
        "Ready with KeysEscrowed=False",
        |vc| ready(vc) && condition(vc, "KeysEscrowed", "False"),
    )
    .await;
    // First the platform's rule: a VaultCluster may not send its copy to another team's
    // namespace unless the operator is told it may.
    let (_, reason, message) = keys_escrowed_message(&vc).expect("KeysEscrowed");
    assert_eq!(reason, "SecretNamespaceNotAllowed", "{message}");
    assert!(
        message.contains("spec.keys.escrow.secret.namespace")
            && message.contains("--escrow-secret-namespace=elsewhere"),
        "{message}"
    );
    assert!(
        Api::<Secret>::namespaced(admin.clone(), "elsewhere")
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .is_empty(),
        "nothing was written to the other namespace"
    );

    // Allowed by the platform, the operator's RBAC still does not reach it.
    operator
        .restart_with(|s| s.escrow_secret_namespaces = vec!["elsewhere".into()])
        .await;
    let vc = wait_for(
        &sim,
        NAMESPACE,
        "openbao",
        Duration::from_secs(120),
        "KeysEscrowed=False: SecretForbidden",
        |vc| keys_escrowed_message(vc).is_some_and(|(_, reason, _)| reason == "SecretForbidden"),
    )
    .await;
    let (_, reason, message) = keys_escrowed_message(&vc).expect("KeysEscrowed");
    assert_eq!(reason, "SecretForbidden", "{message}");
    assert!(
        message.contains("elsewhere") && message.contains("deploy/watch/"),
        "{message}"
    );
    assert!(
        escrowed(&vc).is_none_or(|e| e.secret.is_none()),
        "nothing claimed"
    );
    let seen = events(&sim, NAMESPACE).await;
    assert!(
        seen.iter().any(|e| e.reason == "KeysEscrowFailed"),
        "{seen:?}"
    );
    let keys = stored_keys(&sim, NAMESPACE, "openbao-unseal-keys")
        .await
        .expect("keys");
    assert_no_secret_leaked(&sim, NAMESPACE, &secrets_of(&keys), &logs.text()).await;

    operator.stop().await;
    sim.shutdown().await;
}

/// A fresh identity's public key, from the CLI.
fn vaultkeeper_e2e_recipient() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("id.agekey");
    let (code, recipient, stderr) = vaultkeeper(&[
        "keys",
        "generate-identity",
        "--output",
        &path.to_string_lossy(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    (dir, recipient.trim().to_owned())
}

/// The shares the Secret copy opens to with `identity`, or `None` when it cannot open it.
async fn secret_copy_opens_with(
    admin: &kube::Client,
    namespace: &str,
    name: &str,
    identity: &vaultkeeper_vault::secret::SecretString,
) -> Option<Vec<String>> {
    let secret = Api::<Secret>::namespaced(admin.clone(), namespace)
        .get_opt(name)
        .await
        .ok()??;
    let ciphertext = secret.data?.remove("escrow.age")?.0;
    let identities = vaultkeeper::escrow::parse_identities("test", identity).ok()?;
    let plaintext = vaultkeeper::escrow::decrypt(&ciphertext, &identities).ok()?;
    let opened = vaultkeeper::escrow::payload::open(plaintext.expose_secret()).ok()?;
    Some(
        opened
            .keys
            .shares
            .iter()
            .map(|s| s.expose_secret().to_owned())
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_recipient_gets_nothing_until_someone_who_may_write_the_keys_approves_it() {
    const NAMESPACE: &str = "approval";
    let sim = cluster_with_pods(190).await;
    let _operator = Operator::install_and_start(&sim).await;
    let admin = sim.client().expect("admin client");
    vaultkeeper_e2e::operator::create_namespace(&admin, NAMESPACE).await;
    let (alice, alice_public) = vaultkeeper::escrow::generate_identity();
    let (mallory, mallory_public) = vaultkeeper::escrow::generate_identity();
    let manifest = vaultkeeper_e2e::hostile::small_cluster_yaml(
        "approved",
        &format!(
            "  keys:\n    escrow:\n      recipients: [{alice_public}]\n      objectStore: false\n      secret:\n        namespace: {NAMESPACE}\n        name: approved-escrow\n"
        ),
    );
    vaultkeeper_e2e::operator::apply_cluster(&sim, &manifest, NAMESPACE).await;
    wait_for(
        &sim,
        NAMESPACE,
        "approved",
        Duration::from_secs(240),
        "Ready and KeysEscrowed",
        |vc| ready(vc) && condition(vc, "KeysEscrowed", "True"),
    )
    .await;
    let keys = stored_keys(&sim, NAMESPACE, "approved-unseal-keys")
        .await
        .expect("keys");
    let shares: Vec<String> = keys
        .shares
        .iter()
        .map(|s| s.expose_secret().to_owned())
        .collect();
    assert_eq!(
        secret_copy_opens_with(&admin, NAMESPACE, "approved-escrow", &alice).await,
        Some(shares.clone())
    );

    // Someone who may only write the VaultCluster swaps in their own recipient.
    let api: Api<VaultCluster> = Api::namespaced(admin.clone(), NAMESPACE);
    api.patch(
        "approved",
        &PatchParams::default(),
        &Patch::Merge(
            serde_json::json!({"spec": {"keys": {"escrow": {"recipients": [mallory_public]}}}}),
        ),
    )
    .await
    .expect("patch");
    let vc = wait_for(
        &sim,
        NAMESPACE,
        "approved",
        Duration::from_secs(60),
        "KeysEscrowed=False: RecipientsNotApproved",
        |vc| {
            keys_escrowed_message(vc)
                .is_some_and(|(_, reason, _)| reason == "RecipientsNotApproved")
        },
    )
    .await;
    let (_, _, message) = keys_escrowed_message(&vc).expect("KeysEscrowed");
    let fingerprint =
        vaultkeeper::escrow::recipients_fingerprint(std::slice::from_ref(&mallory_public));
    assert!(
        message.contains("kubectl -n approval annotate secret approved-unseal-keys")
            && message.contains(&fingerprint),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        secret_copy_opens_with(&admin, NAMESPACE, "approved-escrow", &mallory).await,
        None,
        "the new recipient got nothing"
    );
    assert_eq!(
        secret_copy_opens_with(&admin, NAMESPACE, "approved-escrow", &alice).await,
        Some(shares.clone()),
        "the approved copy is left as it was"
    );

    // The owner of the keys approves: now the copy is for the new list.
    Api::<Secret>::namespaced(admin.clone(), NAMESPACE)
        .patch(
            "approved-unseal-keys",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                vaultkeeper::custody::ESCROW_APPROVAL_ANNOTATION: fingerprint,
            }}})),
        )
        .await
        .expect("approved");
    wait_for(
        &sim,
        NAMESPACE,
        "approved",
        Duration::from_secs(60),
        "KeysEscrowed again",
        |vc| condition(vc, "KeysEscrowed", "True"),
    )
    .await;
    assert_eq!(
        secret_copy_opens_with(&admin, NAMESPACE, "approved-escrow", &mallory).await,
        Some(shares)
    );
}
