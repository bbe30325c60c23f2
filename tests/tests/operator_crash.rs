//! The operator killed at every step of initialization, then started again with fresh
//! memory, as a new operator pod would be. Injected faults wrap the executor and
//! the key store: at the chosen step they tell the test and then hang, the test aborts
//! the operator task (a crash: no cleanup runs) and starts a new one without faults.
//!
//! Whatever the step, the restarted operator never runs a second `init`. Where the init
//! output reached the keys Secret, the cluster converges with those same keys; where it
//! did not (the crash came between `init` answering and the key write), the operator
//! reports `KeysMissing` (Degraded, phase Blocked) and does nothing else to the cluster.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use vaultkeeper::controller::faults::{Faults, NoFaults};
use vaultkeeper_e2e::operator::{
    Operator, apply_cluster, assert_no_secret_leaked, capture_logs, cluster_with_pods, condition,
    count_events, events, init_commands, ready, secrets_of, stored_keys, wait_for,
};
use vaultkeeper_vault::client::{ExecOutput, Executor};
use vaultkeeper_vault::commands::ExecRequest;
use vaultkeeper_vault::keys::{InitKeys, KeyStore, RawInit};
use vaultkeeper_vault::node::PodName;
use vaultkeeper_vault::secret::ExposeSecret;

const TIMEOUT: Duration = Duration::from_secs(300);

/// Where the operator dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// `operator init` answered; the output was never written anywhere.
    AfterInitBeforeKeyWrite,
    /// The keys Secret was written; nothing unsealed yet.
    AfterKeyWriteBeforeUnseal,
    /// One share of an unseal entered, the second never sent.
    AfterFirstShare,
    /// Bootstrap applied, the root token not yet revoked (the operator's first Kubernetes
    /// login, which the revocation starts with, never happens).
    BeforeRootRevocation,
}

struct CrashAt {
    step: Step,
    hit: watch::Sender<bool>,
    shares: Arc<AtomicUsize>,
}

impl CrashAt {
    async fn die(&self) -> ! {
        let _ = self.hit.send(true);
        // Hang until the test aborts this task.
        std::future::pending::<()>().await;
        unreachable!("pending never completes")
    }
}

struct CrashingExecutor {
    inner: Arc<dyn Executor>,
    crash: Arc<CrashAt>,
}

fn has(argv: &[String], word: &str) -> bool {
    argv.iter().any(|a| a == word)
}

#[async_trait]
impl Executor for CrashingExecutor {
    async fn exec(&self, pod: &PodName, request: &ExecRequest) -> Result<ExecOutput, String> {
        let argv = &request.argv;
        match self.crash.step {
            Step::AfterInitBeforeKeyWrite if has(argv, "operator") && has(argv, "init") => {
                let _ = self.inner.exec(pod, request).await;
                self.crash.die().await
            }
            Step::AfterFirstShare if has(argv, "sys/unseal") && has(argv, "key=-") => {
                if self.crash.shares.fetch_add(1, Ordering::SeqCst) == 1 {
                    self.crash.die().await
                }
                self.inner.exec(pod, request).await
            }
            Step::BeforeRootRevocation
                if argv.iter().any(|a| a.contains("auth/kubernetes/login")) =>
            {
                self.crash.die().await
            }
            _ => self.inner.exec(pod, request).await,
        }
    }
}

struct CrashingStore {
    inner: Arc<dyn KeyStore>,
    crash: Arc<CrashAt>,
}

#[async_trait]
impl KeyStore for CrashingStore {
    async fn load(&self) -> vaultkeeper_vault::Result<Option<InitKeys>> {
        self.inner.load().await
    }
    async fn store(&self, keys: &InitKeys) -> vaultkeeper_vault::Result<()> {
        let result = self.inner.store(keys).await;
        if self.crash.step == Step::AfterKeyWriteBeforeUnseal {
            self.crash.die().await
        }
        result
    }
    async fn store_raw(&self, raw: &RawInit) -> vaultkeeper_vault::Result<()> {
        self.inner.store_raw(raw).await
    }
}

struct CrashFaults(Arc<CrashAt>);

impl Faults for CrashFaults {
    fn executor(&self, inner: Arc<dyn Executor>) -> Arc<dyn Executor> {
        Arc::new(CrashingExecutor {
            inner,
            crash: self.0.clone(),
        })
    }
    fn key_store(&self, inner: Arc<dyn KeyStore>) -> Arc<dyn KeyStore> {
        Arc::new(CrashingStore {
            inner,
            crash: self.0.clone(),
        })
    }
}

fn manifest(name: &str) -> String {
    format!(
        r#"
apiVersion: vaultkeeper.io/v1alpha1
kind: VaultCluster
metadata:
  name: {name}
spec:
  flavor: OpenBao
  image: quay.io/openbao/openbao:2.7.2
  replicas: 1
  backup:
    enabled: false
"#
    )
}

/// Runs the operator until it dies at `step`, restarts it without faults, and returns
/// the simulated cluster, the operator and the keys stored at the moment of the crash.
async fn crash_and_restart(
    slot: u8,
    name: &str,
    step: Step,
) -> (vaultkeeper_sim::SimCluster, Operator, Option<InitKeys>) {
    let _logs = capture_logs();
    let sim = cluster_with_pods(slot).await;
    let (hit, mut hit_rx) = watch::channel(false);
    let crash = Arc::new(CrashAt {
        step,
        hit,
        shares: Arc::new(AtomicUsize::new(0)),
    });
    let mut operator =
        Operator::install_and_start_with(&sim, Arc::new(CrashFaults(crash.clone()))).await;
    apply_cluster(&sim, &manifest(name), name).await;
    tokio::time::timeout(TIMEOUT, hit_rx.wait_for(|h| *h))
        .await
        .unwrap_or_else(|_| panic!("{step:?} was never reached"))
        .expect("the hook reports");
    operator.crash();
    let at_crash = stored_keys(&sim, name, &format!("{name}-unseal-keys")).await;
    operator.set_faults(Arc::new(NoFaults));
    operator.start();
    (sim, operator, at_crash)
}

/// Where the keys were written: the restarted operator converges with the same keys and
/// never initializes again.
async fn converges_with_the_same_keys(slot: u8, name: &str, step: Step) {
    let (sim, mut operator, at_crash) = crash_and_restart(slot, name, step).await;
    let at_crash = at_crash.expect("the keys were written before the crash");
    let vc = wait_for(&sim, name, name, TIMEOUT, "Ready after the restart", ready).await;
    let status = vc.status.expect("status");
    assert!(status.initialized && status.bootstrapped, "{status:?}");
    assert_eq!(
        init_commands(&sim, name),
        1,
        "{step:?}: never a second init"
    );
    let now = stored_keys(&sim, name, &format!("{name}-unseal-keys"))
        .await
        .expect("the keys are still there");
    let shares = |k: &InitKeys| -> Vec<String> {
        k.shares
            .iter()
            .map(|s| s.expose_secret().to_owned())
            .collect()
    };
    assert_eq!(shares(&now), shares(&at_crash), "{step:?}: the same shares");
    assert!(
        now.root_token.is_none(),
        "{step:?}: the root token was revoked in the end"
    );
    // The Event of a pass that crashed before publishing is lost; a second one would mean
    // a second init.
    let initialized = count_events(&events(&sim, name).await, "Initialized");
    assert!(
        initialized <= 1,
        "{step:?}: {initialized} Initialized Events"
    );
    // The shares and the root token as stored before the crash: in no command line, no
    // Event, no log line of either operator.
    assert_no_secret_leaked(&sim, name, &secrets_of(&at_crash), &capture_logs().text()).await;
    operator.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_after_init_before_the_key_write_reports_keys_missing_and_stops() {
    let (sim, mut operator, at_crash) =
        crash_and_restart(145, "lost", Step::AfterInitBeforeKeyWrite).await;
    assert!(at_crash.is_none(), "the init output was never written");
    let vc = wait_for(&sim, "lost", "lost", TIMEOUT, "KeysMissing", |vc| {
        vc.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == "KeysMissing")
        })
    })
    .await;
    let status = vc.status.clone().expect("status");
    assert_eq!(
        status.phase,
        Some(vaultkeeper_api::Phase::Blocked),
        "{status:?}"
    );
    assert!(condition(&vc, "Degraded", "True"), "{status:?}");
    // It stays that way and does nothing else: no init, no unseal, over several passes.
    let execs_before = sim.exec_audit().len();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(init_commands(&sim, "lost"), 1, "never a second init");
    let unseals = sim
        .exec_audit()
        .iter()
        .filter(|r| r.argv.iter().any(|a| a == "sys/unseal"))
        .count();
    assert_eq!(unseals, 0, "nothing is unsealed without keys");
    let writes_after: Vec<String> = sim.exec_audit()[execs_before..]
        .iter()
        .filter(|r| r.argv.iter().any(|a| a == "write"))
        .map(|r| r.argv.join(" "))
        .collect();
    assert_eq!(
        writes_after,
        Vec::<String>::new(),
        "no write to Vault while blocked"
    );
    assert!(
        stored_keys(&sim, "lost", "lost-unseal-keys")
            .await
            .is_none(),
        "nothing invented in place of the lost keys"
    );
    operator.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_after_the_key_write_converges_with_the_stored_keys() {
    converges_with_the_same_keys(146, "stored", Step::AfterKeyWriteBeforeUnseal).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_after_the_first_share_converges() {
    converges_with_the_same_keys(147, "share", Step::AfterFirstShare).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_during_bootstrap_before_root_revocation_converges_and_revokes() {
    converges_with_the_same_keys(148, "boot", Step::BeforeRootRevocation).await;
}
