//! Every command vector the exec transport runs, built in one place so that one review
//! (and one test) covers all of them.
//!
//! The rule: no secret in argv or in an environment given on a command line, because the
//! Kubernetes API server's audit log records exec argv (`command=` query parameters).
//! Secrets go over stdin:
//! - a share: `bao write -format=json sys/unseal key=-` reads it from stdin;
//! - a token: `sh -c '… read -r VAULT_TOKEN && … exec "$0" "$@"' bao …` reads the first
//!   stdin line into the environment of the CLI only;
//! - a request body: `bao write -format=json PATH -` reads JSON from (the rest of) stdin.
//!
//! The second rule: nothing in the container decides where a share or token goes. The
//! container's environment is user input (`spec.pod.env`, the image's own `ENV`), and the
//! CLI reads its address, TLS trust, proxy, response wrapping and namespace from it. So
//! every command runs through a constant shell prologue that unsets each variable that
//! steers the CLI ([`STEERING_ENV`]), and names its server (`-address`), the CA it trusts
//! (`-ca-cert`) and `-tls-skip-verify=false` as flags. The prologue is what holds: the
//! real CLI ranks `-address` and `-ca-cert` above its environment, but not
//! `VAULT_AGENT_ADDR` (it is sent to whatever `-address` says) nor `VAULT_SKIP_VERIFY`
//! (`-tls-skip-verify=false` does not turn it off), as `tests/hostile_env.rs` shows
//! against the real binary.
//!
//! Output is always `-format=json` and parsed as JSON, never as text.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::node::InitRequest;
use crate::secret::{ExposeSecret, KeyShare, SecretSlice, Token, secret_bytes};

/// The `unset` of every variable that steers the CLI, as shell text. A macro so that the
/// scripts below stay compile-time constants.
macro_rules! unset_steering_env {
    () => {
        "unset VAULT_ADDR BAO_ADDR VAULT_AGENT_ADDR BAO_AGENT_ADDR \
VAULT_CACERT BAO_CACERT VAULT_CACERT_BYTES BAO_CACERT_BYTES VAULT_CAPATH BAO_CAPATH \
VAULT_CLIENT_CERT BAO_CLIENT_CERT VAULT_CLIENT_CERT_BYTES BAO_CLIENT_CERT_BYTES \
VAULT_CLIENT_KEY BAO_CLIENT_KEY VAULT_CLIENT_KEY_BYTES BAO_CLIENT_KEY_BYTES \
VAULT_CLIENT_TIMEOUT BAO_CLIENT_TIMEOUT VAULT_SKIP_VERIFY BAO_SKIP_VERIFY \
VAULT_TLS_SERVER_NAME BAO_TLS_SERVER_NAME VAULT_WRAP_TTL BAO_WRAP_TTL VAULT_MFA BAO_MFA \
VAULT_NAMESPACE BAO_NAMESPACE VAULT_TOKEN BAO_TOKEN VAULT_TOKEN_PATH BAO_TOKEN_PATH \
VAULT_UNWRAP_TOKEN BAO_UNWRAP_TOKEN VAULT_HTTP_PROXY BAO_HTTP_PROXY VAULT_PROXY_ADDR \
BAO_PROXY_ADDR VAULT_MAX_RETRIES BAO_MAX_RETRIES VAULT_RATE_LIMIT BAO_RATE_LIMIT \
VAULT_SRV_LOOKUP BAO_SRV_LOOKUP VAULT_DISABLE_REDIRECTS BAO_DISABLE_REDIRECTS \
VAULT_CONFIG_PATH BAO_CONFIG_PATH VAULT_CLI_NO_COLOR BAO_CLI_NO_COLOR VAULT_FORMAT \
BAO_FORMAT VAULT_DETAILED BAO_DETAILED HTTP_PROXY http_proxy HTTPS_PROXY https_proxy \
ALL_PROXY all_proxy NO_PROXY no_proxy SSL_CERT_FILE SSL_CERT_DIR"
    };
}

/// Every environment variable the prologue removes before the CLI runs: the CLI's
/// connection, TLS trust, proxy, authentication, wrapping, namespace, retry and output
/// settings in both spellings (`BAO_*` is what OpenBao reads first, `VAULT_*` its
/// fallback and Vault's), the generic proxy variables and Go's CA overrides.
pub const STEERING_ENV: &str = unset_steering_env!();

/// The shell script every command without a token runs through: remove the steering
/// variables, then run the CLI with the arguments that follow (`$0 "$@"`, so nothing is
/// ever interpolated into shell text).
pub const CLEAN_ENV: &str = concat!(unset_steering_env!(), r#" && exec "$0" "$@""#);

/// The shell script that removes the steering variables, moves a token from stdin into the
/// CLI's environment and then runs the CLI with the remaining arguments. Constant:
/// arguments follow as `$0 "$@"`, so nothing is ever interpolated into shell text. Both
/// `VAULT_TOKEN` and `BAO_TOKEN` are set because the OpenBao CLI prefers `BAO_TOKEN`, and a
/// container may already carry one (the transit seal's token), which would otherwise be
/// used instead of ours.
pub const TOKEN_FROM_STDIN: &str = concat!(
    unset_steering_env!(),
    r#" && read -r VAULT_TOKEN && BAO_TOKEN="$VAULT_TOKEN" && export VAULT_TOKEN BAO_TOKEN && exec "$0" "$@""#
);

/// Which CLI runs, where it finds its own server and which CA it trusts: never taken from
/// the container's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cli {
    binary: &'static str,
    address: String,
    ca_cert: Option<String>,
}

impl Cli {
    /// The CLI `binary` (`vault` or `bao`) talking to the server in its own container at
    /// `https://127.0.0.1:<port>` (which the server certificate carries), trusting only the
    /// CA file at `ca_cert` (a path inside the container).
    pub fn tls(binary: &'static str, port: u16, ca_cert: impl Into<String>) -> Self {
        Cli {
            binary,
            address: format!("https://127.0.0.1:{port}"),
            ca_cert: Some(ca_cert.into()),
        }
    }

    /// The CLI talking to a server without TLS at `http://127.0.0.1:<port>` (spec.tls.mode
    /// Disabled: development only). Loopback traffic never leaves the pod.
    pub fn plaintext(binary: &'static str, port: u16) -> Self {
        Cli {
            binary,
            address: format!("http://127.0.0.1:{port}"),
            ca_cert: None,
        }
    }

    /// The binary.
    pub fn binary(&self) -> &'static str {
        self.binary
    }

    /// The address the CLI is given.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `binary verb… <connection flags> args…`: the flags go right after the subcommand,
    /// where the CLI reads them.
    fn argv(&self, verb: &[&str], args: &[&str]) -> Vec<String> {
        let mut argv = vec![self.binary.to_owned()];
        argv.extend(verb.iter().map(|s| (*s).to_owned()));
        // No flag outranks VAULT_AGENT_ADDR / BAO_AGENT_ADDR (the real CLI sends to the
        // agent address even with -address and -agent-address given): only the prologue's
        // unset removes it.
        argv.push(format!("-address={}", self.address));
        if let Some(ca) = &self.ca_cert {
            argv.push(format!("-ca-cert={ca}"));
        }
        argv.push("-tls-skip-verify=false".to_owned());
        argv.extend(args.iter().map(|s| (*s).to_owned()));
        argv
    }
}

/// One command to run inside a pod.
#[derive(Clone, Debug)]
pub struct ExecRequest {
    /// The argument vector; never holds a secret.
    pub argv: Vec<String>,
    /// Bytes for the command's stdin (shares, tokens, request bodies).
    pub stdin: Option<SecretSlice<u8>>,
    /// How long the executor waits for the command.
    pub wait: Wait,
    /// How many leading bytes of `stdin` are secret, when not all are: the rest is a
    /// request body known to hold nothing secret (a policy's text), which error messages
    /// may quote. `None`: all of it is secret.
    pub secret_prefix: Option<usize>,
}

/// How long an executor waits for a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// The executor's own timeout: a pod that does not answer is unreachable this pass.
    Bounded,
    /// As long as the command runs: for `operator init`, whose answer is the only copy of
    /// the keys and must never be cut off by a client deadline.
    UntilDone,
}

impl ExecRequest {
    fn plain(argv: Vec<String>) -> Self {
        ExecRequest {
            argv,
            stdin: None,
            wait: Wait::Bounded,
            secret_prefix: None,
        }
    }

    fn with_stdin(argv: Vec<String>, stdin: SecretSlice<u8>) -> Self {
        ExecRequest {
            argv,
            stdin: Some(stdin),
            wait: Wait::Bounded,
            secret_prefix: None,
        }
    }
}

/// The script `operator init` runs through: the steering variables removed, then the CLI's
/// own HTTP timeout (`BAO_CLIENT_TIMEOUT` / `VAULT_CLIENT_TIMEOUT`, default 60 s; the
/// subcommand has no flag for it) set long enough never to end an init a server is still
/// working on. Constant, like the others.
pub const INIT_ENV: &str = concat!(
    unset_steering_env!(),
    r#" && VAULT_CLIENT_TIMEOUT=8760h && BAO_CLIENT_TIMEOUT=8760h && export VAULT_CLIENT_TIMEOUT BAO_CLIENT_TIMEOUT && exec "$0" "$@""#
);

/// A command without a token: `sh -c '<clean env>' bao verb… <flags> args…`.
fn cli_args(cli: &Cli, verb: &[&str], args: &[&str]) -> Vec<String> {
    let mut argv = vec!["sh".to_owned(), "-c".to_owned(), CLEAN_ENV.to_owned()];
    argv.extend(cli.argv(verb, args));
    argv
}

/// Checks an API path before it becomes an argument: it must look like a path and can
/// never be read as a flag (`-x`), a file reference (`@file`) or a key/value pair.
pub fn checked_path(path: &str) -> Result<&str> {
    let valid = !path.is_empty()
        && !path.starts_with(['-', '/', '@'])
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.'));
    if valid {
        Ok(path)
    } else {
        Err(Error::invalid(
            "API path",
            format!("{path:?} contains characters that are not allowed"),
            "use names made of letters, digits, '-', '_' and '.'",
        ))
    }
}

/// `bao status -format=json`: the seal status and, for an unsealed node, what
/// `sys/leader` says, in one command. Exits 0 unsealed, 2 sealed (same JSON), 1 on error.
pub fn status(cli: &Cli) -> ExecRequest {
    ExecRequest::plain(cli_args(cli, &["status"], &["-format=json"]))
}

/// `bao read -format=json sys/seal-status` (answers in every state, exit 0).
pub fn seal_status(cli: &Cli) -> ExecRequest {
    ExecRequest::plain(cli_args(
        cli,
        &["read"],
        &["-format=json", "sys/seal-status"],
    ))
}

/// `bao read -format=json sys/health …` with every state remapped to 200, so a standby,
/// sealed or uninitialized node answers instead of failing.
pub fn health(cli: &Cli) -> ExecRequest {
    ExecRequest::plain(cli_args(
        cli,
        &["read"],
        &[
            "-format=json",
            "sys/health",
            "standbycode=200",
            "performancestandbycode=200",
            "sealedcode=200",
            "uninitcode=200",
        ],
    ))
}

/// `bao read -format=json sys/init`.
pub fn init_status(cli: &Cli) -> ExecRequest {
    ExecRequest::plain(cli_args(cli, &["read"], &["-format=json", "sys/init"]))
}

/// `bao read -format=json sys/leader`.
pub fn leader(cli: &Cli) -> ExecRequest {
    ExecRequest::plain(cli_args(cli, &["read"], &["-format=json", "sys/leader"]))
}

/// `bao operator init -format=json …`: the share counts are not secret; the output is.
/// Neither the CLI nor the executor puts a deadline on it.
pub fn init(cli: &Cli, request: &InitRequest) -> ExecRequest {
    let mut argv = vec!["sh".to_owned(), "-c".to_owned(), INIT_ENV.to_owned()];
    argv.extend(cli.argv(&["operator", "init"], &["-format=json"]));
    match *request {
        InitRequest::Shamir { shares, threshold } => {
            argv.push(format!("-key-shares={shares}"));
            argv.push(format!("-key-threshold={threshold}"));
        }
        InitRequest::Recovery { shares, threshold } => {
            argv.push(format!("-recovery-shares={shares}"));
            argv.push(format!("-recovery-threshold={threshold}"));
        }
    }
    ExecRequest {
        wait: Wait::UntilDone,
        ..ExecRequest::plain(argv)
    }
}

/// `bao write -format=json sys/unseal key=-` with the share on stdin.
pub fn unseal(cli: &Cli, share: &KeyShare) -> ExecRequest {
    ExecRequest::with_stdin(
        cli_args(cli, &["write"], &["-format=json", "sys/unseal", "key=-"]),
        secret_bytes(share.expose_secret().as_bytes().to_vec()),
    )
}

/// `bao write -format=json sys/unseal -` with `{"reset": true}` on stdin. Not
/// `reset=true` on the command line: the CLI sends every `k=v` as a JSON string, and the
/// server refuses `"reset": "true"` with 400 "failed to decode JSON input".
pub fn unseal_reset(cli: &Cli) -> ExecRequest {
    ExecRequest::with_stdin(
        cli_args(cli, &["write"], &["-format=json", "sys/unseal", "-"]),
        secret_bytes(br#"{"reset":true}"#.to_vec()),
    )
}

fn token_line(token: &Token) -> Vec<u8> {
    let mut stdin = Vec::with_capacity(token.expose_secret().len() + 1);
    stdin.extend_from_slice(token.expose_secret().as_bytes());
    stdin.push(b'\n');
    stdin
}

fn with_token(cli: &Cli, verb: &[&str], args: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        TOKEN_FROM_STDIN.to_owned(),
    ];
    argv.extend(cli.argv(verb, args));
    argv
}

/// `sh -c '<token from stdin>' bao read -format=json PATH`.
pub fn read(cli: &Cli, path: &str, token: &Token) -> Result<ExecRequest> {
    let path = checked_path(path)?;
    Ok(ExecRequest::with_stdin(
        with_token(cli, &["read"], &["-format=json", path]),
        secret_bytes(token_line(token)),
    ))
}

/// `sh -c '<token from stdin>' bao write -format=json PATH -` with the JSON body after
/// the token on stdin; without a body, `bao write -format=json -force PATH`.
pub fn write(cli: &Cli, path: &str, body: Option<&Value>, token: &Token) -> Result<ExecRequest> {
    let path = checked_path(path)?;
    let mut stdin = token_line(token);
    let argv = match body {
        Some(body) => {
            serde_json::to_writer(&mut stdin, body).map_err(|e| {
                Error::invalid("request body", e.to_string(), "report this as a bug")
            })?;
            with_token(cli, &["write"], &["-format=json", path, "-"])
        }
        None => with_token(cli, &["write"], &["-format=json", "-force", path]),
    };
    Ok(ExecRequest::with_stdin(argv, secret_bytes(stdin)))
}

/// [`write`] of a body that holds nothing secret (an ACL policy): only the token on stdin
/// is scrubbed from error messages, so Vault's complaint about the body reads whole.
pub fn write_public(cli: &Cli, path: &str, body: &Value, token: &Token) -> Result<ExecRequest> {
    let mut request = write(cli, path, Some(body), token)?;
    request.secret_prefix = Some(token_line(token).len());
    Ok(request)
}

/// `sh -c '<token from stdin>' bao delete PATH`.
pub fn delete(cli: &Cli, path: &str, token: &Token) -> Result<ExecRequest> {
    let path = checked_path(path)?;
    Ok(ExecRequest::with_stdin(
        with_token(cli, &["delete"], &[path]),
        secret_bytes(token_line(token)),
    ))
}

/// `bao write -format=json sys/storage/raft/join leader_api_addr=ADDR
/// [leader_ca_cert=@CA]`: the node asks the leader for a join challenge. No token and no
/// secret: the address and the CA file path are all it carries. The address must be an
/// `http(s)://host:port` URL, so it can never be read as a flag or a file reference.
pub fn raft_join(cli: &Cli, leader_api_addr: &str) -> Result<ExecRequest> {
    let valid = (leader_api_addr.starts_with("https://") || leader_api_addr.starts_with("http://"))
        && leader_api_addr.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'.' | b'-' | b'[' | b']')
        });
    if !valid {
        return Err(Error::invalid(
            "leader_api_addr",
            format!("{leader_api_addr:?} is not an http(s)://host:port address"),
            "report this as a bug: the operator builds this address from the pod names",
        ));
    }
    let addr = format!("leader_api_addr={leader_api_addr}");
    let ca = cli
        .ca_cert
        .as_ref()
        .map(|ca| format!("leader_ca_cert=@{ca}"));
    let mut args = vec!["-format=json", "sys/storage/raft/join", addr.as_str()];
    args.extend(ca.as_deref());
    Ok(ExecRequest::plain(cli_args(cli, &["write"], &args)))
}

/// `bao write -format=json PATH -` with a JSON body on stdin and no token (logins).
pub fn write_unauthenticated(cli: &Cli, path: &str, body: &Value) -> Result<ExecRequest> {
    let path = checked_path(path)?;
    let stdin = serde_json::to_vec(body)
        .map_err(|e| Error::invalid("request body", e.to_string(), "report this as a bug"))?;
    Ok(ExecRequest::with_stdin(
        cli_args(cli, &["write"], &["-format=json", path, "-"]),
        secret_bytes(stdin),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "s.Zm9vYmFyYmF6cXV4c2VjcmV0";

    fn bao() -> Cli {
        Cli::tls("bao", 8200, "/openbao/userconfig/tls/ca.crt")
    }

    /// The words after the connection flags: what the command does.
    fn tail(argv: &[String]) -> Vec<&str> {
        let at = argv
            .iter()
            .position(|a| a == "-tls-skip-verify=false")
            .map_or(0, |i| i + 1);
        argv[at..].iter().map(String::as_str).collect()
    }

    #[test]
    fn the_unseal_reset_sends_a_json_boolean() {
        let request = unseal_reset(&bao());
        assert_eq!(tail(&request.argv), ["-format=json", "sys/unseal", "-"]);
        let body: Value = serde_json::from_slice(
            request
                .stdin
                .as_ref()
                .map(|s| s.expose_secret())
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        assert_eq!(
            body,
            json!({"reset": true}),
            "a boolean, not the string \"true\""
        );
    }

    fn every_command() -> Result<Vec<ExecRequest>> {
        let token = Token::new(SECRET.into());
        let share = KeyShare::new(SECRET.into());
        let body = json!({"jwt": SECRET, "policy": "path \"x\" {}"});
        Ok(vec![
            seal_status(&bao()),
            health(&bao()),
            init_status(&bao()),
            leader(&bao()),
            init(
                &bao(),
                &InitRequest::Shamir {
                    shares: 5,
                    threshold: 3,
                },
            ),
            init(
                &Cli::plaintext("vault", 8200),
                &InitRequest::Recovery {
                    shares: 5,
                    threshold: 3,
                },
            ),
            unseal(&bao(), &share),
            unseal_reset(&bao()),
            read(&bao(), "sys/storage/raft/configuration", &token)?,
            write(&bao(), "sys/policies/acl/backup", Some(&body), &token)?,
            write(&bao(), "sys/step-down", None, &token)?,
            write_unauthenticated(&bao(), "auth/kubernetes/login", &body)?,
        ])
    }

    #[test]
    fn no_command_vector_carries_a_secret_and_secrets_reach_stdin() -> Result<()> {
        for request in every_command()? {
            for arg in &request.argv {
                assert!(!arg.contains(SECRET), "secret in argv: {:?}", request.argv);
            }
        }
        let share_cmd = unseal(&bao(), &KeyShare::new(SECRET.into()));
        assert_eq!(
            tail(&share_cmd.argv),
            ["-format=json", "sys/unseal", "key=-"]
        );
        assert_eq!(
            share_cmd.stdin.as_ref().map(|s| s.expose_secret().to_vec()),
            Some(SECRET.as_bytes().to_vec())
        );
        let token_cmd = read(&bao(), "sys/leader", &Token::new(SECRET.into()))?;
        assert_eq!(token_cmd.argv[..3], ["sh", "-c", TOKEN_FROM_STDIN]);
        assert_eq!(
            token_cmd.stdin.map(|s| s.expose_secret().to_vec()),
            Some(format!("{SECRET}\n").into_bytes())
        );
        Ok(())
    }

    #[test]
    fn every_command_asks_for_json() -> Result<()> {
        for request in every_command()? {
            assert!(
                request.argv.iter().any(|a| a == "-format=json"),
                "{:?}",
                request.argv
            );
        }
        Ok(())
    }

    #[test]
    fn every_command_names_its_server_and_ca_and_clears_the_steering_environment() -> Result<()> {
        for request in every_command()? {
            let argv = &request.argv;
            assert_eq!(argv[..2], ["sh", "-c"], "{argv:?}");
            assert!(
                argv[2] == CLEAN_ENV || argv[2] == TOKEN_FROM_STDIN || argv[2] == INIT_ENV,
                "a constant prologue: {argv:?}"
            );
            assert!(argv[2].starts_with(STEERING_ENV), "{argv:?}");
            let flags = |prefix: &str| argv.iter().filter(|a| a.starts_with(prefix)).count();
            assert_eq!(flags("-address=http"), 1, "{argv:?}");
            assert_eq!(flags("-tls-skip-verify=false"), 1, "{argv:?}");
            let tls = argv.iter().any(|a| a == "-address=https://127.0.0.1:8200");
            assert_eq!(flags("-ca-cert=/"), usize::from(tls), "{argv:?}");
        }
        for name in [
            "VAULT_ADDR",
            "BAO_ADDR",
            "VAULT_AGENT_ADDR",
            "VAULT_SKIP_VERIFY",
            "BAO_SKIP_VERIFY",
            "VAULT_CACERT",
            "VAULT_CAPATH",
            "VAULT_CLIENT_CERT",
            "VAULT_TLS_SERVER_NAME",
            "VAULT_NAMESPACE",
            "VAULT_WRAP_TTL",
            "VAULT_MFA",
            "VAULT_HTTP_PROXY",
            "HTTPS_PROXY",
            "https_proxy",
            "VAULT_CLI_NO_COLOR",
            "BAO_CONFIG_PATH",
        ] {
            assert!(
                STEERING_ENV.split_whitespace().any(|w| w == name),
                "{name} is cleared"
            );
        }
        Ok(())
    }

    #[test]
    fn paths_that_could_be_read_as_flags_or_files_are_refused() {
        for bad in [
            "-force",
            "@/etc/passwd",
            "sys/policy x",
            "a=b",
            "",
            "/sys/health",
        ] {
            assert!(checked_path(bad).is_err(), "{bad:?}");
        }
        assert!(checked_path("auth/kubernetes/role/vaultkeeper-backup").is_ok());
    }
}
