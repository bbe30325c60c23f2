//! Every command vector the exec transport runs, built in one place so that one review
//! (and one test) covers all of them.
//!
//! The rule: no secret in argv or in an environment given on a command line, because the
//! Kubernetes API server's audit log records exec argv (`command=` query parameters).
//! Secrets go over stdin:
//! - a share: `bao write -format=json sys/unseal key=-` reads it from stdin;
//! - a token: `sh -c 'read -r VAULT_TOKEN && BAO_TOKEN="$VAULT_TOKEN" && export VAULT_TOKEN BAO_TOKEN && exec "$0" "$@"' bao …`
//!   reads the first stdin line into the environment of the CLI only;
//! - a request body: `bao write -format=json PATH -` reads JSON from (the rest of) stdin.
//!
//! Output is always `-format=json` and parsed as JSON, never as text.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::node::InitRequest;
use crate::secret::{ExposeSecret, KeyShare, SecretSlice, Token, secret_bytes};

/// The shell script that moves a token from stdin into the CLI's environment and then runs
/// the CLI with the remaining arguments. Constant: arguments follow as `$0 "$@"`, so nothing
/// is ever interpolated into shell text. Both `VAULT_TOKEN` and `BAO_TOKEN` are set because
/// the OpenBao CLI prefers `BAO_TOKEN`, and a container may already carry one (the transit
/// seal's token), which would otherwise be used instead of ours.
pub const TOKEN_FROM_STDIN: &str = r#"read -r VAULT_TOKEN && BAO_TOKEN="$VAULT_TOKEN" && export VAULT_TOKEN BAO_TOKEN && exec "$0" "$@""#;

/// One command to run inside a pod.
#[derive(Clone, Debug)]
pub struct ExecRequest {
    /// The argument vector; never holds a secret.
    pub argv: Vec<String>,
    /// Bytes for the command's stdin (shares, tokens, request bodies).
    pub stdin: Option<SecretSlice<u8>>,
}

impl ExecRequest {
    fn plain(argv: Vec<String>) -> Self {
        ExecRequest { argv, stdin: None }
    }
}

fn cli_args(cli: &str, args: &[&str]) -> Vec<String> {
    std::iter::once(cli)
        .chain(args.iter().copied())
        .map(str::to_string)
        .collect()
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

/// `bao read -format=json sys/seal-status` (answers in every state, exit 0).
pub fn seal_status(cli: &str) -> ExecRequest {
    ExecRequest::plain(cli_args(cli, &["read", "-format=json", "sys/seal-status"]))
}

/// `bao read -format=json sys/health …` with every state remapped to 200, so a standby,
/// sealed or uninitialized node answers instead of failing.
pub fn health(cli: &str) -> ExecRequest {
    ExecRequest::plain(cli_args(
        cli,
        &[
            "read",
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
pub fn init_status(cli: &str) -> ExecRequest {
    ExecRequest::plain(cli_args(cli, &["read", "-format=json", "sys/init"]))
}

/// `bao read -format=json sys/leader`.
pub fn leader(cli: &str) -> ExecRequest {
    ExecRequest::plain(cli_args(cli, &["read", "-format=json", "sys/leader"]))
}

/// `bao operator init -format=json …`: the share counts are not secret; the output is.
pub fn init(cli: &str, request: &InitRequest) -> ExecRequest {
    let mut argv = cli_args(cli, &["operator", "init", "-format=json"]);
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
    ExecRequest::plain(argv)
}

/// `bao write -format=json sys/unseal key=-` with the share on stdin.
pub fn unseal(cli: &str, share: &KeyShare) -> ExecRequest {
    ExecRequest {
        argv: cli_args(cli, &["write", "-format=json", "sys/unseal", "key=-"]),
        stdin: Some(secret_bytes(share.expose_secret().as_bytes().to_vec())),
    }
}

/// `bao write -format=json sys/unseal -` with `{"reset": true}` on stdin. Not
/// `reset=true` on the command line: the CLI sends every `k=v` as a JSON string, and the
/// server refuses `"reset": "true"` with 400 "failed to decode JSON input".
pub fn unseal_reset(cli: &str) -> ExecRequest {
    ExecRequest {
        argv: cli_args(cli, &["write", "-format=json", "sys/unseal", "-"]),
        stdin: Some(secret_bytes(br#"{"reset":true}"#.to_vec())),
    }
}

fn token_line(token: &Token) -> Vec<u8> {
    let mut stdin = Vec::with_capacity(token.expose_secret().len() + 1);
    stdin.extend_from_slice(token.expose_secret().as_bytes());
    stdin.push(b'\n');
    stdin
}

fn with_token(cli: &str, args: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "sh".to_string(),
        "-c".to_string(),
        TOKEN_FROM_STDIN.to_string(),
    ];
    argv.extend(cli_args(cli, args));
    argv
}

/// `sh -c '<token from stdin>' bao read -format=json PATH`.
pub fn read(cli: &str, path: &str, token: &Token) -> Result<ExecRequest> {
    let path = checked_path(path)?;
    Ok(ExecRequest {
        argv: with_token(cli, &["read", "-format=json", path]),
        stdin: Some(secret_bytes(token_line(token))),
    })
}

/// `sh -c '<token from stdin>' bao write -format=json PATH -` with the JSON body after
/// the token on stdin; without a body, `bao write -format=json -force PATH`.
pub fn write(cli: &str, path: &str, body: Option<&Value>, token: &Token) -> Result<ExecRequest> {
    let path = checked_path(path)?;
    let mut stdin = token_line(token);
    let argv = match body {
        Some(body) => {
            serde_json::to_writer(&mut stdin, body).map_err(|e| {
                Error::invalid("request body", e.to_string(), "report this as a bug")
            })?;
            with_token(cli, &["write", "-format=json", path, "-"])
        }
        None => with_token(cli, &["write", "-format=json", "-force", path]),
    };
    Ok(ExecRequest {
        argv,
        stdin: Some(secret_bytes(stdin)),
    })
}

/// `bao write -format=json PATH -` with a JSON body on stdin and no token (logins).
pub fn write_unauthenticated(cli: &str, path: &str, body: &Value) -> Result<ExecRequest> {
    let path = checked_path(path)?;
    let stdin = serde_json::to_vec(body)
        .map_err(|e| Error::invalid("request body", e.to_string(), "report this as a bug"))?;
    Ok(ExecRequest {
        argv: cli_args(cli, &["write", "-format=json", path, "-"]),
        stdin: Some(secret_bytes(stdin)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "s.Zm9vYmFyYmF6cXV4c2VjcmV0";

    #[test]
    fn the_unseal_reset_sends_a_json_boolean() {
        let request = unseal_reset("bao");
        assert_eq!(
            request.argv,
            ["bao", "write", "-format=json", "sys/unseal", "-"]
        );
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
            seal_status("bao"),
            health("bao"),
            init_status("bao"),
            leader("bao"),
            init(
                "bao",
                &InitRequest::Shamir {
                    shares: 5,
                    threshold: 3,
                },
            ),
            init(
                "vault",
                &InitRequest::Recovery {
                    shares: 5,
                    threshold: 3,
                },
            ),
            unseal("bao", &share),
            unseal_reset("bao"),
            read("bao", "sys/storage/raft/configuration", &token)?,
            write("bao", "sys/policies/acl/backup", Some(&body), &token)?,
            write("bao", "sys/step-down", None, &token)?,
            write_unauthenticated("bao", "auth/kubernetes/login", &body)?,
        ])
    }

    #[test]
    fn no_command_vector_carries_a_secret_and_secrets_reach_stdin() -> Result<()> {
        for request in every_command()? {
            for arg in &request.argv {
                assert!(!arg.contains(SECRET), "secret in argv: {:?}", request.argv);
            }
        }
        let share_cmd = unseal("bao", &KeyShare::new(SECRET.into()));
        assert_eq!(
            share_cmd.argv,
            ["bao", "write", "-format=json", "sys/unseal", "key=-"]
        );
        assert_eq!(
            share_cmd.stdin.as_ref().map(|s| s.expose_secret().to_vec()),
            Some(SECRET.as_bytes().to_vec())
        );
        let token_cmd = read("bao", "sys/leader", &Token::new(SECRET.into()))?;
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
