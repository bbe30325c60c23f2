//! The Kubernetes side of key custody and of the Exec transport: the keys Secret as a
//! [`KeyStore`], and pods/exec as an [`Executor`].

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, AttachParams, ObjectMeta, Patch, PatchParams};
use tokio::io::AsyncWriteExt;
use vaultkeeper_vault::bounded;
use vaultkeeper_vault::client::ExecRequest;
use vaultkeeper_vault::client::Wait;
use vaultkeeper_vault::client::{ExecOutput, Executor};
use vaultkeeper_vault::keys::{InitKeys, KeyStore, RawInit, Stored};
use vaultkeeper_vault::node::PodName;
use vaultkeeper_vault::secret::{ExposeSecret, secret_bytes};
use vaultkeeper_vault::{Error, Step};

/// The key in the keys Secret that holds the init output (a versioned JSON record).
pub const INIT_KEY: &str = "init.json";

/// The key in the keys Secret that holds the init answer exactly as it arrived, saved
/// before it is read. It is replaced by [`INIT_KEY`] once read; it stays only when the
/// answer cannot be read (see `docs/custody.md`).
pub const RAW_INIT_KEY: &str = "init-answer.json";

/// The field manager of the keys Secret, apart from everything else vaultkeeper applies.
const KEYS_FIELD_MANAGER: &str = "vaultkeeper-keys";

/// The annotation of the keys Secret that approves escrow recipients: the fingerprint of
/// the recipient list (`escrow::recipients_fingerprint`) the keys may be encrypted to.
/// The operator sets it once, when it creates the Secret at init, to the list the spec had
/// then; after that only someone who may write the keys Secret (and so can read the keys
/// anyway) changes it. Writing a VaultCluster alone never sends the keys to a new
/// recipient.
pub const ESCROW_APPROVAL_ANNOTATION: &str = "vaultkeeper.io/escrow-recipients";

/// The keys Secret. It has no owner reference, so garbage collection can never delete it
/// with the VaultCluster; it is labelled so a person finds it.
pub struct SecretKeyStore {
    api: Api<Secret>,
    name: String,
    cluster: String,
    escrow_approval: Option<String>,
}

impl SecretKeyStore {
    /// The store for `cluster`'s keys in the Secret `name`.
    pub fn new(client: kube::Client, namespace: &str, name: &str, cluster: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            cluster: cluster.to_owned(),
            escrow_approval: None,
        }
    }

    /// The same store, approving escrow to the recipient list with `fingerprint` when it
    /// creates the Secret (see [`ESCROW_APPROVAL_ANNOTATION`]).
    pub fn approving_escrow(mut self, fingerprint: Option<String>) -> Self {
        self.escrow_approval = fingerprint;
        self
    }

    /// A Secret labelled as another VaultCluster's is never read or written as this
    /// cluster's keys: otherwise a VaultCluster whose `spec.keys.secretName` names a
    /// neighbour's keys Secret would have the neighbour's shares sent to its own pods.
    fn refuse_foreign(&self, secret: &Secret, step: Step) -> Result<(), Error> {
        let owner = secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app.kubernetes.io/instance"));
        match owner {
            Some(owner) if *owner != self.cluster => Err(self.error(
                step,
                format!(
                    "holds the keys of VaultCluster {owner}, not {}: spec.keys.secretName must name this cluster's own keys Secret",
                    self.cluster
                ),
            )),
            _ => Ok(()),
        }
    }

    fn error(&self, step: Step, detail: String) -> Error {
        Error::KeyStore {
            step,
            reason: format!("Secret {}: {detail}", self.name),
        }
    }
}

/// Labels of the keys Secret.
pub fn keys_secret_labels(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/instance".to_owned(), cluster.to_owned()),
        ("app.kubernetes.io/component".to_owned(), "keys".to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "vaultkeeper".to_owned(),
        ),
        ("vaultkeeper.io/keys".to_owned(), "true".to_owned()),
    ])
}

#[async_trait]
impl KeyStore for SecretKeyStore {
    async fn load(&self) -> vaultkeeper_vault::Result<Option<InitKeys>> {
        // Transient API failures are repeated: a failed read ends the pass, and the keys
        // are read on every pass.
        let secret = crate::apply::with_retries(|| self.api.get_opt(&self.name))
            .await
            .map_err(|e| {
                self.error(
                    Step::KeyStoreLoad,
                    format!("cannot read: {}", api_error_summary(&e)),
                )
            })?;
        let Some(secret) = secret else {
            return Ok(None);
        };
        self.refuse_foreign(&secret, Step::KeyStoreLoad)?;
        // A Secret by that name without our record is not "no keys": somebody put it there,
        // and guessing would risk a second init. A raw answer alone is read now.
        let data = secret.data.as_ref();
        if let Some(record) = data.and_then(|d| d.get(INIT_KEY)) {
            return InitKeys::from_json(&record.0).map(Some);
        }
        if let Some(raw) = data.and_then(|d| d.get(RAW_INIT_KEY)) {
            return Stored::Raw(RawInit::from_json(&raw.0)?)
                .into_keys()
                .map(Some);
        }
        Err(self.error(
            Step::KeyStoreLoad,
            format!(
                "exists but has neither {INIT_KEY} nor {RAW_INIT_KEY}; vaultkeeper will not guess"
            ),
        ))
    }

    async fn store(&self, keys: &InitKeys) -> vaultkeeper_vault::Result<()> {
        self.write(INIT_KEY, keys.to_json()?, |_| Ok(())).await
    }

    async fn store_raw(&self, raw: &RawInit) -> vaultkeeper_vault::Result<()> {
        let refuse_a_second_answer = |existing: &Secret| {
            if existing
                .data
                .as_ref()
                .is_some_and(|d| d.contains_key(INIT_KEY))
            {
                Err(self.error(
                    Step::KeyStoreStore,
                    format!("already holds {INIT_KEY}; a second init answer is not saved over it"),
                ))
            } else {
                Ok(())
            }
        };
        self.write(RAW_INIT_KEY, raw.to_json()?, refuse_a_second_answer)
            .await
    }
}

impl SecretKeyStore {
    /// Writes `record` under `key` as the Secret's only data: one server-side apply by the
    /// keys field manager, so the other key it may have written before goes in the same
    /// request. `check` sees the live Secret first.
    async fn write(
        &self,
        key: &str,
        record: vaultkeeper_vault::secret::SecretSlice<u8>,
        check: impl Fn(&Secret) -> vaultkeeper_vault::Result<()>,
    ) -> vaultkeeper_vault::Result<()> {
        // Never take over another cluster's keys Secret (its labels would become ours).
        let existing = crate::apply::with_retries(|| self.api.get_opt(&self.name))
            .await
            .map_err(|e| {
                self.error(
                    Step::KeyStoreStore,
                    format!("cannot read before writing: {}", api_error_summary(&e)),
                )
            })?;
        if let Some(existing) = &existing {
            self.refuse_foreign(existing, Step::KeyStoreStore)?;
            check(existing)?;
        }
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(keys_secret_labels(&self.cluster)),
                annotations: Some(BTreeMap::from([(
                    "vaultkeeper.io/description".to_owned(),
                    format!(
                        "Init output of VaultCluster {}: unseal or recovery shares and the root \
                         token while it is kept. Keep a copy of the shares outside the cluster.",
                        self.cluster
                    ),
                )])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(BTreeMap::from([(
                key.to_owned(),
                ByteString(record.expose_secret().to_vec()),
            )])),
            ..Secret::default()
        };
        // One request: the API server commits it to etcd before answering, so Ok means
        // the keys are durable.
        let params = PatchParams::apply(KEYS_FIELD_MANAGER).force();
        let patch = Patch::Apply(&secret);
        crate::apply::with_retries(|| self.api.patch(&self.name, &params, &patch))
            .await
            .map_err(|e| {
                self.error(
                    Step::KeyStoreStore,
                    format!("cannot write: {}", api_error_summary(&e)),
                )
            })?;
        // Created now: approve the escrow recipients the spec has at init, in a merge patch
        // of its own, so the keys field manager never owns (nor removes) the annotation.
        // The keys are saved already; a failed approval only holds escrow back until a
        // person approves.
        if let (None, Some(fingerprint)) = (&existing, &self.escrow_approval) {
            let approval = Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                ESCROW_APPROVAL_ANNOTATION: fingerprint,
            }}}));
            if let Err(e) = self
                .api
                .patch(&self.name, &PatchParams::default(), &approval)
                .await
            {
                tracing::warn!(error = %api_error_summary(&e), "cannot approve the escrow recipients on the new keys Secret; escrow waits for a person's approval");
            }
        }
        Ok(())
    }
}

/// An API error without any request body echoed back (the body may hold the keys).
fn api_error_summary(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} {}", status.code, status.reason),
        other => other.to_string(),
    }
}

/// Runs commands in a pod's Vault container through the pods/exec API. The command line
/// is visible in the API server's audit log, which is why the vault library never puts a
/// secret in it: secrets travel on stdin. What comes back is capped
/// ([`bounded::EXEC_STDOUT`], [`bounded::EXEC_STDERR`]): the pod's image is the user's
/// choice, and its output must not be able to fill the operator's memory.
pub struct KubeExecutor {
    api: Api<Pod>,
    container: String,
    timeout: Duration,
}

impl KubeExecutor {
    /// An executor for the pods of one namespace, in the container `container`.
    pub fn new(client: kube::Client, namespace: &str, container: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            container: container.to_owned(),
            timeout: Duration::from_secs(60),
        }
    }

    /// The same, with another timeout for bounded commands (never for `operator init`).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

#[async_trait]
impl Executor for KubeExecutor {
    async fn exec(&self, pod: &PodName, request: &ExecRequest) -> Result<ExecOutput, String> {
        let params = AttachParams::default()
            .container(self.container.clone())
            .stdin(request.stdin.is_some())
            .stdout(true)
            .stderr(true);
        let run = async {
            let mut process = self
                .api
                .exec(pod.as_str(), request.argv.clone(), &params)
                .await
                .map_err(|e| format!("exec in pod {}: {}", pod.as_str(), api_error_summary(&e)))?;
            if let (Some(input), Some(mut stdin)) = (&request.stdin, process.stdin()) {
                stdin
                    .write_all(input.expose_secret())
                    .await
                    .map_err(|e| format!("writing stdin to pod {}: {e}", pod.as_str()))?;
                stdin
                    .shutdown()
                    .await
                    .map_err(|e| format!("closing stdin of pod {}: {e}", pod.as_str()))?;
            }
            let stdout = process.stdout().ok_or("exec without stdout")?;
            let stderr = process.stderr().ok_or("exec without stderr")?;
            let status = process
                .take_status()
                .ok_or("exec without a status channel")?;
            // Both streams are capped; the first one over its limit ends the exec, and
            // dropping `process` closes the connection with the rest unread.
            let (out, err) = tokio::try_join!(
                capped_stream(stdout, bounded::EXEC_STDOUT, "stdout", pod),
                capped_stream(stderr, bounded::EXEC_STDERR, "stderr", pod),
            )?;
            let status = status.await;
            let exit_code = exit_code(status.as_ref());
            Ok::<_, String>(ExecOutput {
                exit_code,
                stdout: secret_bytes(out),
                stderr: String::from_utf8_lossy(&err).into_owned(),
            })
        };
        match request.wait {
            Wait::Bounded => tokio::time::timeout(self.timeout, run).await.map_err(|_| {
                format!(
                    "exec in pod {} timed out after {:?}",
                    pod.as_str(),
                    self.timeout
                )
            })?,
            // `operator init`: its answer is the only copy of the keys, so it is waited for.
            Wait::UntilDone => run.await,
        }
    }
}

/// Reads one output stream of an exec up to `limit`; the error names the pod, the stream
/// and the limit.
async fn capped_stream(
    stream: impl tokio::io::AsyncRead + Unpin,
    limit: bounded::Limit,
    name: &str,
    pod: &PodName,
) -> Result<Vec<u8>, String> {
    bounded::read_to_limit(stream, limit).await.map_err(|e| {
        let error = format!("reading {name} of pod {}: {e}", pod.as_str());
        // The pod shows as not answering; this says why, once per command.
        if matches!(e, bounded::CappedRead::TooLarge(_)) {
            tracing::warn!(pod = pod.as_str(), %error, "a command's output passed its cap");
        }
        error
    })
}

/// The exit code the exec protocol's status channel reports: `Success`, or `Failure`
/// with a cause `ExitCode` carrying the number.
fn exit_code(status: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>) -> i32 {
    let Some(status) = status else {
        return -1;
    };
    if status.status.as_deref() == Some("Success") {
        return 0;
    }
    status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
        })
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.parse().ok())
        .unwrap_or(1)
}
