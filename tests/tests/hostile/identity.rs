//! The operator's identity never leaves the operator (finding 1 of the trust-boundary
//! review). Whoever may create a VaultCluster chooses the image its pods run, and the
//! operator sends its Vault login to those pods (on the stdin of the CLI inside them, or
//! over HTTP). Here that image is hostile: it records the environment and stdin of every
//! CLI call, then runs the real `bao` so the cluster still comes up and the operator logs
//! in. Nothing it records may be a token the Kubernetes API server accepts.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};
use secrecy::SecretString;
use vaultkeeper_api::login::VAULT_LOGIN_AUDIENCE;
use vaultkeeper_api::names::vault::{KUBERNETES_AUTH_MOUNT, OPERATOR_ROLE};
use vaultkeeper_api::{VaultCluster, parse_manifests};
use vaultkeeper_e2e::hostile::{ATTACKER_NAMESPACE, attacker};
use vaultkeeper_e2e::install::{OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT};
use vaultkeeper_e2e::operator::{
    Operator, apply_cluster, bao_at_with_stdin, cluster_with_images, cluster_with_pods, example,
    kubectl, ready, stored_keys, wait_for,
};
use vaultkeeper_sim::SimCluster;
use vaultkeeper_sim::runtime::{DEFAULT_PATH, IMAGE_BIN_DIR, ImageFile, ImageRule};

const READY_TIMEOUT: Duration = Duration::from_secs(300);

/// The attacker's image: a repository no standard rule serves.
const RECORDING_IMAGE: &str = "registry.team-a.example/recording-vault:1.0";
/// Where the recording image writes what it saw (inside the pod).
const RECORD: &str = "/tmp/recorded-by-the-image";

/// The hostile image: `vault` and `bao` are a shell script that appends its environment
/// and stdin to [`RECORD`], then runs the real `bao` on the same stdin. The server process
/// is recorded too (its environment), and run directly.
fn recording_image() -> ImageRule {
    let script = format!(
        "#!/bin/sh\n\
         # A hostile Vault image: keeps a copy of everything it is handed.\n\
         real={IMAGE_BIN_DIR}/bao-real\n\
         if [ \"$1\" = server ]; then\n\
         \x20 {{ echo '=== server'; env; }} >> {RECORD}\n\
         \x20 exec \"$real\" \"$@\"\n\
         fi\n\
         input=$(mktemp /tmp/stdin.XXXXXX)\n\
         cat > \"$input\"\n\
         {{ echo \"=== $*\"; env; echo '--- stdin'; cat \"$input\"; echo; }} >> {RECORD}\n\
         exec \"$real\" \"$@\" < \"$input\"\n"
    );
    let wrapper = |name: &str| ImageFile {
        path: format!("{IMAGE_BIN_DIR}/{name}"),
        contents: script.clone().into_bytes(),
        mode: 0o755,
    };
    ImageRule {
        repository: "recording-vault".into(),
        binary: vaultkeeper_e2e::operator::tool("bao", "VAULTKEEPER_BAO"),
        names: vec!["bao-real".into()],
        entrypoint: vec!["bao".into()],
        cmd: vec!["server".into(), "-dev".into()],
        env: vec![("PATH".into(), DEFAULT_PATH.into())],
        user: 0,
        files: vec![wrapper("vault"), wrapper("bao")],
        shell: None,
    }
}

/// Every JWT-shaped string in `text` (three base64url segments, the first a JSON object:
/// `eyJ…`), wherever it sits: a JSON field, an environment variable, a bare line.
fn jwts_in(text: &str) -> Vec<String> {
    let segment_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("eyJ") {
        let candidate = &rest[start..];
        let end = candidate
            .find(|c: char| !(segment_char(c) || c == '.'))
            .unwrap_or(candidate.len());
        let parts: Vec<&str> = candidate[..end].split('.').collect();
        if parts.len() >= 3 && parts[..3].iter().all(|p| !p.is_empty()) {
            found.push(parts[..3].join("."));
        }
        rest = &candidate[end.max(3)..];
    }
    found.sort();
    found.dedup();
    found
}

/// Whether the API server authenticates `token`: anything but 401 (an authenticated
/// identity may still be forbidden a given request by RBAC, which is not the question).
async fn api_server_accepts(sim: &SimCluster, token: &str) -> bool {
    let client = sim
        .client_with_token(&SecretString::from(token.to_owned()))
        .expect("a client with the token");
    let namespaces: Api<Namespace> = Api::all(client);
    match namespaces.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => status.code != 401,
        _ => true,
    }
}

/// What the recording image wrote in `pod`, read as the cluster admin.
fn recorded(sim: &SimCluster, pod: &str) -> String {
    kubectl(
        sim,
        &["exec", "-n", ATTACKER_NAMESPACE, pod, "--", "cat", RECORD],
    )
    .unwrap_or_else(|e| panic!("reading the record in {pod}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vault_image_that_records_its_input_gets_no_token_the_api_server_accepts() {
    let sim = cluster_with_images(170, vec![recording_image()]).await;
    let _operator = Operator::install_and_start(&sim).await;
    let mallory = attacker(&sim)
        .await
        .expect("the attacker's namespace and account");

    let manifest = format!(
        "apiVersion: vaultkeeper.io/v1alpha1\n\
         kind: VaultCluster\n\
         metadata:\n  name: recorded\n  namespace: {ATTACKER_NAMESPACE}\n\
         spec:\n  flavor: OpenBao\n  image: {RECORDING_IMAGE}\n  replicas: 1\n  \
         transport: Exec\n  backup:\n    enabled: false\n"
    );
    let cluster: VaultCluster = parse_manifests(&manifest)
        .expect("the manifest parses")
        .remove(0);
    Api::<VaultCluster>::namespaced(mallory, ATTACKER_NAMESPACE)
        .create(&PostParams::default(), &cluster)
        .await
        .expect("the attacker may create a VaultCluster in their namespace");

    // The operator initializes, unseals, bootstraps, proves its own login and revokes the
    // root token: from then on every privileged call goes through that login.
    wait_for(
        &sim,
        ATTACKER_NAMESPACE,
        "recorded",
        READY_TIMEOUT,
        "Ready",
        ready,
    )
    .await;
    let keys = stored_keys(&sim, ATTACKER_NAMESPACE, "recorded-unseal-keys")
        .await
        .expect("the keys Secret");
    assert!(
        keys.root_token.is_none(),
        "the root token is revoked, so the operator logged in with its own identity"
    );

    let record = recorded(&sim, "recorded-0");
    assert!(
        record.contains("auth/kubernetes/login"),
        "the image saw the operator's login (the record has {} bytes)",
        record.len()
    );
    let tokens = jwts_in(&record);
    assert!(
        !tokens.is_empty(),
        "the operator's login JWT went through the image and was recorded"
    );
    for (i, token) in tokens.iter().enumerate() {
        assert!(
            !api_server_accepts(&sim, token).await,
            "recorded JWT #{i} of {} is accepted by the API server",
            tokens.len()
        );
    }

    // The control: the same extraction and check flag the token the operator used to send
    // (its API-audience token), so the assertions above can fail.
    let api_token = sim
        .service_account_token(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT)
        .expect("an API token of the operator");
    let leaked = format!(
        "=== write auth/kubernetes/login\n--- stdin\n{{\"jwt\":\"{}\",\"role\":\"{OPERATOR_ROLE}\"}}\n",
        secrecy::ExposeSecret::expose_secret(&api_token)
    );
    let control = jwts_in(&leaked);
    assert_eq!(
        control.len(),
        1,
        "the extraction finds a JWT in a login body"
    );
    assert!(
        api_server_accepts(&sim, &control[0]).await,
        "the API server accepts the operator's API token: the check can tell"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operators_api_token_is_refused_by_its_vault_role() {
    let sim = cluster_with_pods(171).await;
    let _operator = Operator::install_and_start(&sim).await;
    let yaml = example("openbao").replace("replicas: 3", "replicas: 1");
    apply_cluster(&sim, &yaml, "openbao").await;
    wait_for(&sim, "openbao", "openbao", READY_TIMEOUT, "Ready", ready).await;

    let login = |jwt: SecretString| {
        let sim = &sim;
        async move {
            let body = format!(
                "{{\"role\":\"{OPERATOR_ROLE}\",\"jwt\":\"{}\"}}",
                secrecy::ExposeSecret::expose_secret(&jwt)
            );
            bao_at_with_stdin(
                sim,
                "openbao",
                "openbao-0",
                "",
                &[
                    "write",
                    "-format=json",
                    &format!("auth/{KUBERNETES_AUTH_MOUNT}/login"),
                    "-",
                ],
                Some(&body),
            )
            .await
        }
    };
    let lifetime = Duration::from_secs(600);
    let api_token = sim
        .service_account_token_for(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, &[], lifetime)
        .expect("an API token of the operator");
    let refused = login(api_token).await;
    let refusal = refused
        .err()
        .unwrap_or_else(|| panic!("Vault accepted the operator's API token"));
    assert!(
        refusal.contains("invalid audience"),
        "refused for its audience: {refusal}"
    );

    // The control: the same account with the Vault-login audience logs in, so the refusal
    // is about the audience and nothing else.
    let vault_token = sim
        .service_account_token_for(
            OPERATOR_NAMESPACE,
            OPERATOR_SERVICE_ACCOUNT,
            &[VAULT_LOGIN_AUDIENCE],
            lifetime,
        )
        .expect("a Vault-login token of the operator");
    let answer = login(vault_token)
        .await
        .unwrap_or_else(|e| panic!("the Vault-login token is refused: {e}"));
    assert!(answer.contains("client_token"), "the login answers a token");
}

#[test]
fn jwt_extraction_finds_tokens_in_json_environment_and_bare_lines() {
    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
    for text in [
        format!("{{\"jwt\":\"{jwt}\"}}"),
        format!("VAULT_JWT={jwt}\nPATH=/bin"),
        format!("{jwt}\n"),
    ] {
        assert_eq!(jwts_in(&text), vec![jwt.to_owned()], "{text}");
    }
    assert!(jwts_in("eyJ only a prefix. and.dots").is_empty());
}
