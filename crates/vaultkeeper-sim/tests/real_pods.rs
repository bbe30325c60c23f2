//! Real OpenBao pods on the simulated cluster: a StatefulSet of 3 `bao` servers from a
//! Helm-equivalent fixture comes up; OpenBao's own `service_registration "kubernetes"`
//! labels the pods through the API server; the `-active` Service's endpoints follow the
//! leader; Kubernetes auth login with a pod's service-account token succeeds (TokenReview
//! through RBAC); a killed container restarts and a deleted pod comes back with its PVC
//! data. Needs root and `scripts/install-tools.sh`. Loopback slot 127.20.70.x / 127.21.70.x.

mod common;

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use kube::api::{Api, AttachParams, DeleteParams, ListParams, Patch, PatchParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::{Discovery, Scope};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vaultkeeper_sim::kubelet::KubeletConfig;
use vaultkeeper_sim::runtime::Backoff;
use vaultkeeper_sim::{SimCluster, SimConfig};

const NS: &str = "vault";

async fn apply_yaml(client: &kube::Client, yaml: &str) {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    for doc in yaml.split("\n---\n") {
        let obj: Value = serde_saphyr::from_str(doc).expect("fixture YAML");
        if obj.is_null() {
            continue;
        }
        let av = obj["apiVersion"].as_str().unwrap();
        let (g, v) = av.rsplit_once('/').unwrap_or(("", av));
        let gvk = GroupVersionKind::gvk(g, v, obj["kind"].as_str().unwrap());
        let (ar, caps) = discovery.resolve_gvk(&gvk).expect("kind served");
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                obj["metadata"]["namespace"].as_str().unwrap_or("default"),
                &ar,
            ),
            Scope::Cluster => Api::all_with(client.clone(), &ar),
        };
        let name = obj["metadata"]["name"].as_str().unwrap();
        api.patch(
            name,
            &PatchParams::apply("vaultkeeper-test"),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {name}: {e}"));
    }
}

struct ExecResult {
    stdout: String,
    stderr: String,
    code: i32,
}

async fn exec(pods: &Api<Pod>, pod: &str, argv: &[&str], stdin: Option<&[u8]>) -> ExecResult {
    let ap = AttachParams::default()
        .container("vault")
        .stdin(stdin.is_some())
        .stdout(true)
        .stderr(true);
    let mut attached = pods
        .exec(
            pod,
            argv.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &ap,
        )
        .await
        .expect("exec starts");
    if let Some(input) = stdin {
        let mut w = attached.stdin().expect("stdin");
        w.write_all(input).await.unwrap();
        w.shutdown().await.unwrap();
        drop(w);
    }
    let mut out = String::new();
    let mut err = String::new();
    let mut o = attached.stdout().expect("stdout");
    let mut e = attached.stderr().expect("stderr");
    let status = attached.take_status().expect("status");
    let (_, _, status) = tokio::join!(
        o.read_to_string(&mut out),
        e.read_to_string(&mut err),
        status
    );
    let code = match status {
        Some(s) if s.status.as_deref() == Some("Success") => 0,
        Some(s) => s
            .details
            .and_then(|d| {
                d.causes
                    .into_iter()
                    .flatten()
                    .find(|c| c.reason.as_deref() == Some("ExitCode"))
            })
            .and_then(|c| c.message?.parse().ok())
            .unwrap_or(-1),
        None => -1,
    };
    ExecResult {
        stdout: out,
        stderr: err,
        code,
    }
}

async fn eventually<F, Fut, T>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn label(p: &Pod, k: &str) -> Option<String> {
    p.metadata.labels.as_ref()?.get(k).cloned()
}

async fn unseal(pods: &Api<Pod>, pod: &str, key: &str) {
    // The share travels on stdin, never on the command line.
    let r = exec(
        pods,
        pod,
        &["bao", "write", "-format=json", "sys/unseal", "key=-"],
        Some(key.as_bytes()),
    )
    .await;
    assert_eq!(r.code, 0, "unseal {pod}: {}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openbao_statefulset_registers_itself_follows_the_leader_and_survives_restarts() {
    let bao = common::bao();
    let mut cfg = SimConfig::for_slot(70);
    cfg.pods = Some(KubeletConfig {
        bao,
        vaultkeeper: None,
        backoff: Some(Backoff {
            initial: Duration::from_millis(300),
            max: Duration::from_secs(2),
            reset_after: Duration::from_secs(600),
        }),
        extra_images: Vec::new(),
    });
    let c = SimCluster::start(cfg)
        .await
        .expect("cluster with a kubelet (needs root)");
    eprintln!("kubeconfig: {}", c.kubeconfig_path().display());
    let client = c.client().unwrap();
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    nss.create(
        &Default::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": NS}})).unwrap(),
    )
    .await
    .unwrap();
    apply_yaml(&client, include_str!("fixtures/openbao-ha-raft.yaml")).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), NS);

    // 1. Three pods run; OpenBao's service registration labels each through the API.
    let names = ["vault-0", "vault-1", "vault-2"];
    for n in names {
        eventually(
            &format!("{n} registered as sealed and uninitialized"),
            90,
            || {
                let pods = pods.clone();
                async move {
                    let p = pods.get(n).await.ok()?;
                    (label(&p, "openbao-sealed").as_deref() == Some("true")
                        && label(&p, "openbao-initialized").as_deref() == Some("false"))
                    .then_some(())
                }
            },
        )
        .await;
    }
    let p0 = pods.get("vault-0").await.unwrap();
    assert_eq!(
        p0.status.as_ref().unwrap().phase.as_deref(),
        Some("Running")
    );
    assert!(label(&p0, "openbao-version").is_some());
    // The writes came from the pods' own identity, over JSON patch.
    let patches: Vec<_> = c
        .requests()
        .into_iter()
        .filter(|r| {
            r.verb == "patch"
                && r.resource == "pods"
                && r.user == "system:serviceaccount:vault:vault"
        })
        .collect();
    assert!(
        patches.len() >= 3,
        "service registration patched the pods as the vault service account"
    );

    // 2. Init once on vault-0, unseal every pod; retry_join joins the others.
    let init = exec(
        &pods,
        "vault-0",
        &[
            "bao",
            "operator",
            "init",
            "-key-shares=1",
            "-key-threshold=1",
            "-format=json",
        ],
        None,
    )
    .await;
    assert_eq!(init.code, 0, "init: {}", init.stderr);
    let init: Value = serde_json::from_str(&init.stdout).unwrap();
    let key = init["unseal_keys_b64"][0].as_str().unwrap().to_string();
    let root = init["root_token"].as_str().unwrap().to_string();
    unseal(&pods, "vault-0", &key).await;
    let ip0 = pods
        .get("vault-0")
        .await
        .unwrap()
        .status
        .unwrap()
        .pod_ip
        .unwrap();
    let active_ips = |eps: Api<Endpoints>| async move {
        let e = eps.get("vault-active").await.ok()?;
        Some(
            e.subsets
                .unwrap_or_default()
                .iter()
                .flat_map(|s| s.addresses.clone().unwrap_or_default())
                .map(|a| a.ip)
                .collect::<Vec<_>>(),
        )
    };
    eventually("vault-0 is the active endpoint", 60, || {
        let eps = eps.clone();
        let ip0 = ip0.clone();
        async move { (active_ips(eps).await? == vec![ip0]).then_some(()) }
    })
    .await;
    for n in ["vault-1", "vault-2"] {
        // A standby can be unsealed once it has joined raft (retry_join keeps trying).
        eventually(&format!("{n} joined"), 60, || {
            let pods = pods.clone();
            async move {
                let r = exec(&pods, n, &["bao", "status", "-format=json"], None).await;
                let s: Value = serde_json::from_str(&r.stdout).ok()?;
                (s["initialized"] == true).then_some(())
            }
        })
        .await;
        unseal(&pods, n, &key).await;
    }
    for n in names {
        eventually(&format!("{n} ready and unsealed"), 60, || {
            let pods = pods.clone();
            async move {
                let p = pods.get(n).await.ok()?;
                let ready = p
                    .status
                    .as_ref()?
                    .conditions
                    .as_ref()?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                (ready && label(&p, "openbao-sealed").as_deref() == Some("false")).then_some(())
            }
        })
        .await;
    }

    // 3. Kubernetes auth against the simulated API server, logging in with a pod's token.
    let setup = "read -r VAULT_TOKEN; export VAULT_TOKEN; \
        bao auth enable kubernetes >/dev/null && \
        bao write auth/kubernetes/config kubernetes_host=https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT >/dev/null && \
        bao write auth/kubernetes/role/app bound_service_account_names=vault bound_service_account_namespaces=vault token_policies=default ttl=1h >/dev/null && \
        bao secrets enable -path=secret kv-v2 >/dev/null && \
        bao kv put secret/probe value=kept >/dev/null";
    let r = exec(
        &pods,
        "vault-0",
        &["sh", "-c", setup],
        Some(format!("{root}\n").as_bytes()),
    )
    .await;
    assert_eq!(r.code, 0, "auth setup: {} {}", r.stdout, r.stderr);
    // Logged in on the active node, right after the configuration was written there.
    let login = exec(
        &pods,
        "vault-0",
        &[
            "bao",
            "write",
            "-format=json",
            "auth/kubernetes/login",
            "role=app",
            "jwt=@/var/run/secrets/kubernetes.io/serviceaccount/token",
        ],
        None,
    )
    .await;
    if login.code != 0 {
        let reviews: Vec<_> = c
            .requests()
            .into_iter()
            .filter(|r| r.resource == "tokenreviews")
            .collect();
        let log = pods
            .logs("vault-0", &Default::default())
            .await
            .unwrap_or_default();
        panic!(
            "login failed: {}\ntoken reviews: {reviews:?}\nvault-0 log tail: {}",
            login.stderr,
            &log[log.len().saturating_sub(3000)..]
        );
    }
    let login: Value = serde_json::from_str(&login.stdout).unwrap();
    assert_eq!(login["auth"]["metadata"]["service_account_name"], "vault");
    let reviews: Vec<_> = c
        .requests()
        .into_iter()
        .filter(|r| r.resource == "tokenreviews")
        .collect();
    assert!(
        reviews
            .iter()
            .any(|r| r.code == 201 && r.user == "system:serviceaccount:vault:vault"),
        "OpenBao reviewed the token with its own identity: {reviews:?}"
    );

    // 4. The active endpoint follows the leader. Autopilot first promotes the joined
    //    non-voters (after its stabilization time); a step-down before that re-elects vault-0.
    eventually("three raft voters", 90, || {
        let pods = pods.clone();
        let root = root.clone();
        async move {
            let r = exec(&pods, "vault-0", &["sh", "-c", "read -r VAULT_TOKEN; export VAULT_TOKEN; bao operator raft list-peers -format=json"], Some(format!("{root}\n").as_bytes())).await;
            let v: Value = serde_json::from_str(&r.stdout).ok()?;
            let voters = v["data"]["config"]["servers"].as_array()?.iter().filter(|s| s["voter"] == true).count();
            (voters == 3).then_some(())
        }
    })
    .await;
    let r = exec(
        &pods,
        "vault-0",
        &[
            "sh",
            "-c",
            "read -r VAULT_TOKEN; export VAULT_TOKEN; bao operator step-down",
        ],
        Some(format!("{root}\n").as_bytes()),
    )
    .await;
    assert_eq!(r.code, 0, "step-down: {}", r.stderr);
    let new_active = eventually("another pod becomes the active endpoint", 60, || {
        let eps = eps.clone();
        let ip0 = ip0.clone();
        async move {
            let ips = active_ips(eps).await?;
            (ips.len() == 1 && ips[0] != ip0).then(|| ips[0].clone())
        }
    })
    .await;
    let leader = pods
        .list(&ListParams::default().labels("openbao-active=true"))
        .await
        .unwrap()
        .items;
    assert_eq!(leader.len(), 1);
    assert_eq!(
        leader[0].status.as_ref().unwrap().pod_ip.as_deref(),
        Some(new_active.as_str())
    );

    // 5. A killed container is restarted in place.
    let standby = names
        .iter()
        .find(|n| **n != leader[0].metadata.name.as_deref().unwrap())
        .copied()
        .unwrap();
    c.kill_container(NS, standby, "vault").unwrap();
    eventually("restart counted", 60, || {
        let pods = pods.clone();
        async move {
            let p = pods.get(standby).await.ok()?;
            (p.status?.container_statuses?[0].restart_count >= 1).then_some(())
        }
    })
    .await;
    // 6. A deleted pod comes back from the StatefulSet with its claim: still initialized
    //    (raft data on the PVC), only sealed.
    let old_uid = pods.get(standby).await.unwrap().metadata.uid;
    pods.delete(standby, &DeleteParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let p = pods.get(standby).await.ok();
        if let Some(p) = &p
            && p.metadata.uid != old_uid
            && label(p, "openbao-sealed").as_deref() == Some("true")
        {
            // A fresh volume would say "not initialized"; the claim's raft data says otherwise.
            let r = exec(&pods, standby, &["bao", "status", "-format=json"], None).await;
            let st: Value = serde_json::from_str(&r.stdout).unwrap_or_default();
            if st["initialized"] == true && st["sealed"] == true {
                break;
            }
        }
        if tokio::time::Instant::now() > deadline {
            let log = pods
                .logs(standby, &Default::default())
                .await
                .unwrap_or_default();
            panic!(
                "{standby} not back as initialized and sealed: {:?}\nlog tail: {}",
                p.map(|p| (
                    p.metadata.uid,
                    p.metadata.labels,
                    p.status.and_then(|s| s.phase)
                )),
                &log[log.len().saturating_sub(2500)..]
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    unseal(&pods, standby, &key).await;
    let read = eventually("secret readable through the recreated pod", 60, || {
        let pods = pods.clone();
        let root = root.clone();
        async move {
            let r = exec(
                &pods,
                standby,
                &[
                    "sh",
                    "-c",
                    "read -r VAULT_TOKEN; export VAULT_TOKEN; bao kv get -field=value secret/probe",
                ],
                Some(format!("{root}\n").as_bytes()),
            )
            .await;
            (r.code == 0).then_some(r.stdout)
        }
    })
    .await;
    assert_eq!(read.trim(), "kept");

    // Logs are served, and no secret ever went onto a command line.
    let logs = pods.logs("vault-0", &Default::default()).await.unwrap();
    assert!(
        logs.contains("core: vault is unsealed") || logs.contains("vault is unsealed"),
        "server log: {}",
        &logs[logs.len().saturating_sub(2000)..]
    );
    let mut follow = pods
        .log_stream(
            "vault-0",
            &kube::api::LogParams {
                follow: true,
                tail_lines: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .lines();
    assert!(follow.try_next().await.unwrap().is_some());
    for rec in c.exec_audit() {
        let line = rec.argv.join(" ");
        assert!(
            !line.contains(&key) && !line.contains(&root),
            "a secret reached argv: {:?}",
            rec.argv
        );
    }
    c.shutdown().await;
}
