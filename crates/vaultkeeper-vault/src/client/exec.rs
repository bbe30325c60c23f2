//! The exec transport: the `vault`/`bao` CLI inside the pod, through an [`Executor`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::{
    KubernetesAuthConfig, KubernetesRole, NodeClient, NodeStatus, TokenRole, Transport, wire,
};
use crate::commands;
pub use crate::commands::{Cli, ExecRequest, Wait};
use crate::error::{Error, Result, Step};
use crate::keys::{AnswerFormat, RawInit};
use crate::node::{
    AutopilotState, Health, InitRequest, LeaderStatus, PodName, RaftConfiguration, SealStatus,
    TokenInfo, UnsealProgress,
};
use crate::rotation::{self, RekeyAnswer, RekeyCall, RotationApi};
use crate::secret::{ExposeSecret, KeyShare, SecretSlice, SecretString, Token, secret_bytes};

/// What a command produced.
#[derive(Debug)]
pub struct ExecOutput {
    /// Exit status (`-1` when the process was killed by a signal).
    pub exit_code: i32,
    /// Standard output; may hold secrets (init output), so it is zeroized on drop.
    pub stdout: SecretSlice<u8>,
    /// Standard error, as text.
    pub stderr: String,
}

/// Runs a command inside a pod's Vault container. The Kubernetes implementation (pods/exec
/// over the API server) lives with the operator; [`LocalProcessExecutor`] runs commands on
/// this machine for tests.
#[async_trait]
pub trait Executor: Send + Sync {
    /// Runs `request.argv` with `request.stdin` as stdin. `Err` means the command could not
    /// be run at all (no such pod, the exec channel broke); a command that ran and failed is
    /// an `Ok` with a non-zero exit code. The error text must not contain stdin.
    async fn exec(
        &self,
        pod: &PodName,
        request: &ExecRequest,
    ) -> std::result::Result<ExecOutput, String>;
}

#[async_trait]
impl<E: Executor + ?Sized> Executor for Arc<E> {
    async fn exec(
        &self,
        pod: &PodName,
        request: &ExecRequest,
    ) -> std::result::Result<ExecOutput, String> {
        (**self).exec(pod, request).await
    }
}

/// The environment a pod's container gives the CLI. None of it is secret.
#[derive(Clone, Debug)]
struct PodEnvironment {
    vault_addr: String,
    ca_file: PathBuf,
}

impl PodEnvironment {
    /// `arg` as it means this node: the pod's loopback address and CA file (see
    /// [`LocalProcessExecutor`]).
    fn translate(&self, arg: &str) -> String {
        if arg.starts_with("-address=http://127.0.0.1:")
            || arg.starts_with("-address=https://127.0.0.1:")
        {
            format!("-address={}", self.vault_addr)
        } else if arg.starts_with("-ca-cert=") {
            format!("-ca-cert={}", self.ca_file.display())
        } else {
            arg.to_owned()
        }
    }
}

/// Runs commands as local processes with the environment a Vault pod's container would
/// give them (`VAULT_ADDR=https://<node address>:8200`, `VAULT_CACERT=<ca file>`), and
/// nothing else from this process's environment: a `VAULT_TOKEN` exported in the test
/// runner's shell must not leak into a command.
///
/// It stands in for the pod's own network and filesystem as well: in a pod the CLI's
/// `-address=…://127.0.0.1:8200` is the pod's server and `-ca-cert=<path>` a file of the
/// container; here every node has its own loopback address and CA file, so those two
/// flags are pointed at the registered ones (as the simulated cluster's runtime rewrites
/// a pod's connections to 127.0.0.1). Nothing else in argv changes.
pub struct LocalProcessExecutor {
    bin_dir: PathBuf,
    home: PathBuf,
    timeout: Duration,
    pods: Mutex<BTreeMap<PodName, PodEnvironment>>,
    container_env: Mutex<Vec<(String, String)>>,
}

impl LocalProcessExecutor {
    /// An executor that finds `bao`/`vault` in `bin_dir` and gives the CLI `home` as `HOME`
    /// (where its token helper would look; nothing is written there since tokens come from
    /// the environment).
    pub fn new(bin_dir: impl Into<PathBuf>, home: impl Into<PathBuf>) -> Self {
        LocalProcessExecutor {
            bin_dir: bin_dir.into(),
            home: home.into(),
            timeout: Duration::from_secs(30),
            pods: Mutex::new(BTreeMap::new()),
            container_env: Mutex::new(Vec::new()),
        }
    }

    /// Adds a variable every command sees, as a container's own environment would (e.g. a
    /// transit seal's `BAO_TOKEN`), to check that commands do not depend on its absence.
    /// It is set after the pod's `VAULT_ADDR` and `VAULT_CACERT`, so it can override them,
    /// as `spec.pod.env` could in a pod.
    pub fn set_container_env(&self, name: impl Into<String>, value: impl Into<String>) {
        if let Ok(mut env) = self.container_env.lock() {
            env.push((name.into(), value.into()));
        }
    }

    /// Registers (or replaces) a pod: the `VAULT_ADDR` and `VAULT_CACERT` its container has.
    pub fn add_pod(
        &self,
        pod: PodName,
        vault_addr: impl Into<String>,
        ca_file: impl Into<PathBuf>,
    ) {
        let environment = PodEnvironment {
            vault_addr: vault_addr.into(),
            ca_file: ca_file.into(),
        };
        if let Ok(mut pods) = self.pods.lock() {
            pods.insert(pod, environment);
        }
    }

    fn environment(&self, pod: &PodName) -> Option<PodEnvironment> {
        self.pods
            .lock()
            .ok()
            .and_then(|pods| pods.get(pod).cloned())
    }
}

#[async_trait]
impl Executor for LocalProcessExecutor {
    async fn exec(
        &self,
        pod: &PodName,
        request: &ExecRequest,
    ) -> std::result::Result<ExecOutput, String> {
        let environment = self
            .environment(pod)
            .ok_or_else(|| format!("pod {pod} is not known to the local executor"))?;
        let argv: Vec<String> = request
            .argv
            .iter()
            .map(|arg| environment.translate(arg))
            .collect();
        let (program, args) = argv.split_first().ok_or("empty command")?;
        let path = format!("{}:/usr/local/bin:/usr/bin:/bin", self.bin_dir.display());
        let container_env = self
            .container_env
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .env_clear()
            .env("PATH", path)
            .env("HOME", &self.home)
            .env("VAULT_ADDR", &environment.vault_addr)
            .env("VAULT_CACERT", &environment.ca_file)
            // After ours, as `spec.pod.env` comes after the rendered variables in a pod.
            .envs(container_env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            if let Some(bytes) = &request.stdin {
                stdin
                    .write_all(bytes.expose_secret())
                    .await
                    .map_err(|e| format!("cannot write stdin: {e}"))?;
            }
            // Dropping stdin closes it, so `key=-` and `read` see the end of input.
            drop(stdin);
        }
        let finished = child.wait_with_output();
        let output = match request.wait {
            Wait::Bounded => tokio::time::timeout(self.timeout, finished)
                .await
                .map_err(|_| format!("{program} did not finish within {:?}", self.timeout))?,
            Wait::UntilDone => finished.await,
        }
        .map_err(|e| format!("waiting for {program} failed: {e}"))?;
        Ok(ExecOutput {
            exit_code: output.status.code().unwrap_or(-1),
            stdout: secret_bytes(output.stdout),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// One command an executor was given: what a reviewer (or an audit log) sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedCommand {
    /// The pod.
    pub pod: PodName,
    /// The argument vector.
    pub argv: Vec<String>,
    /// How many bytes went over stdin (the bytes themselves are not kept).
    pub stdin_len: usize,
}

/// Wraps an executor and records every argv it is given, so tests (and the operator's own
/// audit, if it wants one) can check that no secret was ever in a command line.
pub struct RecordingExecutor<E> {
    inner: E,
    recorded: Arc<Mutex<Vec<RecordedCommand>>>,
}

impl<E> RecordingExecutor<E> {
    /// Wraps `inner`.
    pub fn new(inner: E) -> Self {
        RecordingExecutor {
            inner,
            recorded: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Every command so far, in order.
    pub fn recorded(&self) -> Vec<RecordedCommand> {
        self.recorded.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The wrapped executor.
    pub fn inner(&self) -> &E {
        &self.inner
    }
}

#[async_trait]
impl<E: Executor> Executor for RecordingExecutor<E> {
    async fn exec(
        &self,
        pod: &PodName,
        request: &ExecRequest,
    ) -> std::result::Result<ExecOutput, String> {
        if let Ok(mut recorded) = self.recorded.lock() {
            recorded.push(RecordedCommand {
                pod: pod.clone(),
                argv: request.argv.clone(),
                stdin_len: request
                    .stdin
                    .as_ref()
                    .map_or(0, |s| s.expose_secret().len()),
            });
        }
        self.inner.exec(pod, request).await
    }
}

/// The exec transport's node client.
pub struct ExecNodeClient<E> {
    executor: E,
    cli: Cli,
}

impl<E: Executor> ExecNodeClient<E> {
    /// A client running `cli` (the flavor's `vault` or `bao`, with the address and CA it
    /// must use) through `executor`.
    pub fn new(executor: E, cli: Cli) -> Self {
        ExecNodeClient { executor, cli }
    }

    /// The executor (e.g. to read what a [`RecordingExecutor`] recorded).
    pub fn executor(&self) -> &E {
        &self.executor
    }

    /// Runs a command; `Ok(None)` when the CLI said there is nothing at the path.
    async fn run(
        &self,
        pod: &PodName,
        step: Step,
        request: ExecRequest,
    ) -> Result<Option<SecretSlice<u8>>> {
        self.run_accepting(pod, step, request, &[0]).await
    }

    /// [`Self::run`], with the exit codes that mean an answer (not only 0).
    async fn run_accepting(
        &self,
        pod: &PodName,
        step: Step,
        request: ExecRequest,
        answered: &[i32],
    ) -> Result<Option<SecretSlice<u8>>> {
        let output =
            self.executor
                .exec(pod, &request)
                .await
                .map_err(|reason| Error::Unreachable {
                    pod: pod.clone(),
                    step,
                    reason: scrub_request(&reason, &request),
                })?;
        if answered.contains(&output.exit_code) {
            return Ok(Some(output.stdout));
        }
        let stderr = scrub_request(&output.stderr, &request);
        let code = http_code(&stderr);
        if stderr.contains("No value found at") || code == Some(404) {
            return Ok(None);
        }
        if code == Some(403) {
            return Err(Error::PermissionDenied {
                pod: pod.clone(),
                step,
            });
        }
        if code.is_none()
            && (stderr.contains("connection refused")
                || stderr.contains("dial tcp")
                || output.exit_code == 127)
        {
            return Err(Error::Unreachable {
                pod: pod.clone(),
                step,
                reason: error_lines(&stderr),
            });
        }
        Err(Error::Api {
            pod: pod.clone(),
            step,
            status: code.unwrap_or(u16::try_from(output.exit_code).unwrap_or(u16::MAX)),
            message: error_lines(&stderr),
        })
    }

    /// Runs a command that must answer with JSON.
    async fn run_json(
        &self,
        pod: &PodName,
        step: Step,
        request: ExecRequest,
    ) -> Result<Option<Value>> {
        match self.run(pod, step, request).await? {
            None => Ok(None),
            Some(stdout) => parse_json(pod, step, &stdout).map(Some),
        }
    }

    /// Runs a `read`/`write` whose answer is `{"data": …}` and returns the data.
    async fn run_data(
        &self,
        pod: &PodName,
        step: Step,
        request: ExecRequest,
    ) -> Result<Option<Value>> {
        Ok(self
            .run_json(pod, step, request)
            .await?
            .map(|mut v| v.get_mut("data").map(Value::take).unwrap_or(Value::Null)))
    }

    async fn required_data(
        &self,
        pod: &PodName,
        step: Step,
        request: ExecRequest,
    ) -> Result<Value> {
        self.run_data(pod, step, request)
            .await?
            .ok_or_else(|| Error::UnexpectedResponse {
                pod: pod.clone(),
                step,
                reason: "the CLI found no value at the path".into(),
            })
    }

    async fn write(
        &self,
        pod: &PodName,
        step: Step,
        path: &str,
        body: Option<&Value>,
        token: &Token,
    ) -> Result<()> {
        let request = commands::write(&self.cli, path, body, token)?;
        self.run(pod, step, request).await.map(|_| ())
    }
}

fn parse_json(pod: &PodName, step: Step, stdout: &SecretSlice<u8>) -> Result<Value> {
    if stdout.expose_secret().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(stdout.expose_secret()).map_err(|e| Error::UnexpectedResponse {
        pod: pod.clone(),
        step,
        reason: format!("the CLI output is not JSON: {e}"),
    })
}

/// The HTTP status the CLI reports in `Code: 403. Errors:`.
fn http_code(stderr: &str) -> Option<u16> {
    let rest = &stderr[stderr.find("Code: ")? + 6..];
    rest.get(..3).and_then(|c| c.parse().ok())
}

/// The server's error list (`* message` lines), or the last non-empty line.
fn error_lines(stderr: &str) -> String {
    let listed: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("* "))
        .collect();
    let message = if listed.is_empty() {
        stderr
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("no error text")
            .to_string()
    } else {
        listed.join("; ")
    };
    message.chars().take(500).collect()
}

/// [`scrub`] with the secret part of the request's stdin.
fn scrub_request(text: &str, request: &ExecRequest) -> String {
    match (&request.stdin, request.secret_prefix) {
        (Some(stdin), Some(len)) => {
            let bytes = stdin.expose_secret();
            let secret = secret_bytes(bytes[..len.min(bytes.len())].to_vec());
            scrub(text, Some(&secret))
        }
        (stdin, _) => scrub(text, stdin.as_ref()),
    }
}

/// Removes from `text` every word that was sent on stdin. The CLI does not echo its input,
/// but an error message is the last place a secret could slip out, so the text is cleaned
/// of anything we know to be secret before it becomes an error.
pub(crate) fn scrub(text: &str, stdin: Option<&SecretSlice<u8>>) -> String {
    let Some(stdin) = stdin else {
        return text.to_string();
    };
    let input = String::from_utf8_lossy(stdin.expose_secret());
    let mut cleaned = text.to_string();
    for word in input.split(|c: char| c.is_whitespace() || "\"{}[]:,\\".contains(c)) {
        if word.len() >= 6 && cleaned.contains(word) {
            cleaned = cleaned.replace(word, "<redacted>");
        }
    }
    cleaned
}

#[async_trait]
impl<E: Executor> NodeClient for ExecNodeClient<E> {
    fn transport(&self) -> Transport {
        Transport::Exec
    }

    async fn health(&self, pod: &PodName) -> Result<Health> {
        let data = self
            .required_data(pod, Step::Health, commands::health(&self.cli))
            .await?;
        Health::parse(pod, &data)
    }

    async fn node_status(&self, pod: &PodName) -> Result<NodeStatus> {
        // `status` exits 2 for a sealed node, with the same JSON on stdout.
        let stdout = self
            .run_accepting(pod, Step::SealStatus, commands::status(&self.cli), &[0, 2])
            .await?
            .ok_or_else(|| Error::UnexpectedResponse {
                pod: pod.clone(),
                step: Step::SealStatus,
                reason: "the CLI printed no status".into(),
            })?;
        let value = parse_json(pod, Step::SealStatus, &stdout)?;
        let seal = SealStatus::parse(pod, Step::SealStatus, &value)?;
        let leader = if seal.initialized && !seal.sealed {
            Some(LeaderStatus::parse(pod, &value)?)
        } else {
            None
        };
        Ok(NodeStatus { seal, leader })
    }

    async fn seal_status(&self, pod: &PodName) -> Result<SealStatus> {
        let data = self
            .required_data(pod, Step::SealStatus, commands::seal_status(&self.cli))
            .await?;
        SealStatus::parse(pod, Step::SealStatus, &data)
    }

    async fn init_status(&self, pod: &PodName) -> Result<bool> {
        let data = self
            .required_data(pod, Step::InitStatus, commands::init_status(&self.cli))
            .await?;
        wire::initialized(pod, &data)
    }

    async fn leader(&self, pod: &PodName) -> Result<LeaderStatus> {
        let data = self
            .required_data(pod, Step::Leader, commands::leader(&self.cli))
            .await?;
        LeaderStatus::parse(pod, &data)
    }

    async fn raft_configuration(&self, pod: &PodName, token: &Token) -> Result<RaftConfiguration> {
        let request = commands::read(&self.cli, "sys/storage/raft/configuration", token)?;
        let data = self
            .required_data(pod, Step::RaftConfiguration, request)
            .await?;
        RaftConfiguration::parse(pod, &data)
    }

    async fn autopilot_state(&self, pod: &PodName, token: &Token) -> Result<AutopilotState> {
        let request = commands::read(&self.cli, "sys/storage/raft/autopilot/state", token)?;
        let data = self
            .required_data(pod, Step::AutopilotState, request)
            .await?;
        AutopilotState::parse(pod, &data)
    }

    async fn init(&self, pod: &PodName, request: &InitRequest) -> Result<RawInit> {
        request.validate()?;
        let answer = self
            .run(pod, Step::Init, commands::init(&self.cli, request))
            .await?
            .ok_or_else(|| Error::UnexpectedResponse {
                pod: pod.clone(),
                step: Step::Init,
                reason: "the CLI printed nothing".into(),
            })?;
        Ok(RawInit {
            request: *request,
            format: AnswerFormat::Cli,
            answer,
        })
    }

    async fn rekey(
        &self,
        pod: &PodName,
        api: RotationApi,
        call: RekeyCall<'_>,
        token: &Token,
    ) -> Result<RekeyAnswer> {
        let step = Step::Rekey;
        let (segment, delete) = call.endpoint();
        let path = api.rekey_path(segment);
        let request = if delete {
            commands::delete(&self.cli, &path, token)?
        } else {
            let body = call.body();
            commands::write(&self.cli, &path, body.as_ref(), token)?
        };
        match self.run(pod, step, request).await? {
            Some(stdout) => rotation::rekey_answer(pod, stdout.expose_secret()),
            None => Ok(RekeyAnswer::default()),
        }
    }

    async fn rotate_keyring(&self, pod: &PodName, api: RotationApi, token: &Token) -> Result<()> {
        self.write(pod, Step::RotateKeyring, api.keyring_path(), None, token)
            .await
    }

    async fn unseal(&self, pod: &PodName, share: &KeyShare) -> Result<UnsealProgress> {
        let data = self
            .required_data(pod, Step::Unseal, commands::unseal(&self.cli, share))
            .await?;
        SealStatus::parse(pod, Step::Unseal, &data).map(|s| UnsealProgress::from(&s))
    }

    async fn unseal_reset(&self, pod: &PodName) -> Result<UnsealProgress> {
        let data = self
            .required_data(pod, Step::UnsealReset, commands::unseal_reset(&self.cli))
            .await?;
        SealStatus::parse(pod, Step::UnsealReset, &data).map(|s| UnsealProgress::from(&s))
    }

    async fn join_raft(&self, pod: &PodName, leader_api_addr: &str) -> Result<()> {
        let request = commands::raft_join(&self.cli, leader_api_addr)?;
        let data = self.required_data(pod, Step::RaftJoin, request).await?;
        wire::joined(pod, &data)
    }

    async fn remove_raft_peer(&self, pod: &PodName, node_id: &str, token: &Token) -> Result<()> {
        let body = json!({ "server_id": node_id });
        self.write(
            pod,
            Step::RemovePeer,
            "sys/storage/raft/remove-peer",
            Some(&body),
            token,
        )
        .await
    }

    async fn step_down(&self, pod: &PodName, token: &Token) -> Result<()> {
        self.write(pod, Step::StepDown, "sys/step-down", None, token)
            .await
    }

    async fn auth_mounts(&self, pod: &PodName, token: &Token) -> Result<BTreeMap<String, String>> {
        let request = commands::read(&self.cli, "sys/auth", token)?;
        let data = self.required_data(pod, Step::AuthMount, request).await?;
        wire::auth_mounts(pod, &data)
    }

    async fn enable_auth(
        &self,
        pod: &PodName,
        path: &str,
        kind: &str,
        token: &Token,
    ) -> Result<()> {
        let body = json!({ "type": kind });
        self.write(
            pod,
            Step::AuthMount,
            &format!("sys/auth/{path}"),
            Some(&body),
            token,
        )
        .await
    }

    async fn read_policy(
        &self,
        pod: &PodName,
        name: &str,
        token: &Token,
    ) -> Result<Option<String>> {
        let request = commands::read(&self.cli, &format!("sys/policy/{name}"), token)?;
        match self.run_data(pod, Step::Policy, request).await? {
            None => Ok(None),
            Some(data) => wire::policy_text(pod, &data).map(Some),
        }
    }

    async fn write_policy(
        &self,
        pod: &PodName,
        name: &str,
        rules: &str,
        token: &Token,
    ) -> Result<()> {
        let body = json!({ "policy": rules });
        let request =
            commands::write_public(&self.cli, &format!("sys/policy/{name}"), &body, token)?;
        self.run(pod, Step::Policy, request).await.map(|_| ())
    }

    async fn delete_policy(&self, pod: &PodName, name: &str, token: &Token) -> Result<()> {
        let request = commands::delete(&self.cli, &format!("sys/policy/{name}"), token)?;
        self.run(pod, Step::Policy, request).await.map(|_| ())
    }

    async fn read_kubernetes_auth_config(
        &self,
        pod: &PodName,
        mount: &str,
        token: &Token,
    ) -> Result<Option<KubernetesAuthConfig>> {
        let request = commands::read(&self.cli, &format!("auth/{mount}/config"), token)?;
        match self
            .run_data(pod, Step::KubernetesAuthConfig, request)
            .await?
        {
            None | Some(Value::Null) => Ok(None),
            Some(data) => wire::kubernetes_config(pod, &data).map(Some),
        }
    }

    async fn write_kubernetes_auth_config(
        &self,
        pod: &PodName,
        mount: &str,
        config: &KubernetesAuthConfig,
        token: &Token,
    ) -> Result<()> {
        let body = wire::kubernetes_config_body(config);
        self.write(
            pod,
            Step::KubernetesAuthConfig,
            &format!("auth/{mount}/config"),
            Some(&body),
            token,
        )
        .await
    }

    async fn read_kubernetes_role(
        &self,
        pod: &PodName,
        mount: &str,
        name: &str,
        token: &Token,
    ) -> Result<Option<KubernetesRole>> {
        let request = commands::read(&self.cli, &format!("auth/{mount}/role/{name}"), token)?;
        match self
            .run_data(pod, Step::KubernetesAuthRole, request)
            .await?
        {
            None => Ok(None),
            Some(data) => wire::kubernetes_role(pod, name, &data).map(Some),
        }
    }

    async fn write_kubernetes_role(
        &self,
        pod: &PodName,
        mount: &str,
        role: &KubernetesRole,
        token: &Token,
    ) -> Result<()> {
        let body = wire::kubernetes_role_body(role);
        self.write(
            pod,
            Step::KubernetesAuthRole,
            &format!("auth/{mount}/role/{}", role.name),
            Some(&body),
            token,
        )
        .await
    }

    async fn read_token_role(
        &self,
        pod: &PodName,
        name: &str,
        token: &Token,
    ) -> Result<Option<TokenRole>> {
        let request = commands::read(&self.cli, &format!("auth/token/roles/{name}"), token)?;
        match self.run_data(pod, Step::TokenRole, request).await? {
            None => Ok(None),
            Some(data) => wire::token_role(pod, name, &data).map(Some),
        }
    }

    async fn write_token_role(&self, pod: &PodName, role: &TokenRole, token: &Token) -> Result<()> {
        let body = wire::token_role_body(role);
        self.write(
            pod,
            Step::TokenRole,
            &format!("auth/token/roles/{}", role.name),
            Some(&body),
            token,
        )
        .await
    }

    async fn kubernetes_login(
        &self,
        pod: &PodName,
        mount: &str,
        role: &str,
        jwt: &SecretString,
    ) -> Result<Token> {
        let body = json!({ "role": role, "jwt": jwt.expose_secret() });
        let request =
            commands::write_unauthenticated(&self.cli, &format!("auth/{mount}/login"), &body)?;
        drop(body);
        let stdout = self
            .run(pod, Step::KubernetesLogin, request)
            .await?
            .ok_or_else(|| Error::UnexpectedResponse {
                pod: pod.clone(),
                step: Step::KubernetesLogin,
                reason: "the CLI printed nothing".into(),
            })?;
        wire::login_token(pod, stdout.expose_secret())
    }

    async fn lookup_self(&self, pod: &PodName, token: &Token) -> Result<TokenInfo> {
        let request = commands::read(&self.cli, "auth/token/lookup-self", token)?;
        let stdout = self
            .run(pod, Step::TokenLookup, request)
            .await?
            .ok_or_else(|| Error::UnexpectedResponse {
                pod: pod.clone(),
                step: Step::TokenLookup,
                reason: "the CLI found no value".into(),
            })?;
        // The lookup answer repeats the token (`id`); parse straight into the fields we
        // keep so the value never sits in a `Value` tree.
        #[derive(Deserialize)]
        struct Envelope {
            data: Value,
        }
        let envelope: Envelope = serde_json::from_slice(stdout.expose_secret()).map_err(|e| {
            Error::UnexpectedResponse {
                pod: pod.clone(),
                step: Step::TokenLookup,
                reason: format!("the CLI output is not JSON: {e}"),
            }
        })?;
        let mut data = envelope.data;
        if let Some(Value::String(mut id)) =
            data.as_object_mut().and_then(|object| object.remove("id"))
        {
            zeroize::Zeroize::zeroize(&mut id);
        }
        TokenInfo::parse(pod, &data)
    }

    async fn revoke_self(&self, pod: &PodName, token: &Token) -> Result<()> {
        self.write(
            pod,
            Step::TokenRevoke,
            "auth/token/revoke-self",
            None,
            token,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_write_error_keeps_the_policy_words_but_never_the_token() {
        let cli = Cli::plaintext("bao", 8200);
        let token = Token::new("s.rootTokenValue123".into());
        let body = json!({"policy": "path \"secret/data/x\" { capabilities = "});
        let request = commands::write_public(&cli, "sys/policy/team", &body, &token)
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = "Code: 400. Errors:\n* failed to parse policy: At 1:42: expected list; token s.rootTokenValue123";
        let cleaned = scrub_request(stderr, &request);
        assert!(cleaned.contains("failed to parse policy"), "{cleaned}");
        assert!(!cleaned.contains("s.rootTokenValue123"), "{cleaned}");
        // An ordinary write scrubs every word of the body, as before.
        let request = commands::write(&cli, "sys/policy/team", Some(&body), &token)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!scrub_request(stderr, &request).contains("parse policy"));
    }

    #[test]
    fn stderr_is_scrubbed_of_everything_sent_on_stdin() {
        let stdin =
            secret_bytes(b"s.rootTokenValue123\n{\"jwt\":\"eyJhbGciOi.payload.sig\"}".to_vec());
        let stderr =
            "Error: token s.rootTokenValue123 rejected; jwt eyJhbGciOi.payload.sig invalid";
        let cleaned = scrub(stderr, Some(&stdin));
        assert!(
            !cleaned.contains("s.rootTokenValue123") && !cleaned.contains("eyJhbGciOi.payload.sig"),
            "{cleaned}"
        );
    }

    #[test]
    fn cli_error_text_is_reduced_to_the_server_error_list() {
        let stderr = "Error writing data to sys/unseal: Error making API request.\n\nURL: PUT https://127.0.0.1:8200/v1/sys/unseal\nCode: 400. Errors:\n\n* 'key' must be a valid hex or base64 string\n";
        assert_eq!(http_code(stderr), Some(400));
        assert_eq!(
            error_lines(stderr),
            "'key' must be a valid hex or base64 string"
        );
        assert_eq!(http_code("No value found at sys/x"), None);
    }
}
