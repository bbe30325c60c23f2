//! `vaultkeeper keys`: the people's side of key escrow. `generate-identity` makes an age
//! identity (so no one needs age installed); `decrypt` opens an escrow object (from a
//! file, the escrow Secret's `escrow.age`, or the bucket) with an identity file and prints
//! the key record, or a keys Secret manifest to `kubectl apply` for a restore.
//!
//! The record holds every unseal share: it is never printed to a terminal without
//! `--force` (scrollback and screen sharing keep it), files are created with mode 0600
//! and never overwritten, and no error message carries any of it.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;
use vaultkeeper_backup::naming::EscrowLocation;
use vaultkeeper_backup::s3::S3Store;
use vaultkeeper_backup::store::ObjectStore as _;
use vaultkeeper_backup::{S3Access, S3CredentialFiles};
use vaultkeeper_vault::secret::{ExposeSecret, SecretSlice, secret_bytes};

use crate::CliError;
use crate::custody::{INIT_KEY, keys_secret_labels};
use crate::escrow;

/// Largest escrow object read (a key record is a few KiB).
const MAX_ESCROW_OBJECT: u64 = 1024 * 1024;

/// `vaultkeeper keys`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum KeysCommand {
    /// Decrypt an escrow object with an age identity and print the key record (JSON), or
    /// a keys Secret manifest with --as-secret. See docs/custody.md.
    Decrypt(Box<DecryptArgs>),
    /// Create an age identity file (mode 0600) and print its public key, the `age1...`
    /// line to put in spec.keys.escrow.recipients.
    GenerateIdentity(GenerateIdentityArgs),
}

/// `vaultkeeper keys decrypt`.
#[derive(Debug, Clone, clap::Args)]
pub struct DecryptArgs {
    /// The age identity file (AGE-SECRET-KEY-1... lines) of one of the recipients.
    #[arg(long)]
    pub identity: PathBuf,
    /// The escrow object as a file (downloaded from the bucket, or the escrow Secret's
    /// escrow.age decoded), binary or armored; `-` reads stdin.
    #[arg(long, conflicts_with = "object")]
    pub input: Option<PathBuf>,
    /// The escrow object's key in the bucket (status.keys.escrow.object, or a backup
    /// manifest's keys_escrow), or `latest` for the newest of --cluster-name.
    #[arg(long)]
    pub object: Option<String>,
    /// The VaultCluster whose newest escrow object `--object latest` reads.
    #[arg(long)]
    pub cluster_name: Option<String>,
    /// The bucket, with the same flags as `vaultkeeper restore`; only with --object.
    #[command(flatten)]
    pub s3: BucketArgs,
    /// Write to this file (created with mode 0600; never overwritten) instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Print a Secret manifest with this name holding the record as init.json, ready for
    /// `kubectl apply` (see docs/custody.md, restoring the keys). When the object also
    /// holds the backup encryption key, the output is a List with that Secret too, under
    /// the name it had.
    #[arg(long, requires = "namespace")]
    pub as_secret: Option<String>,
    /// Also write the backup encryption key the object holds to this file (mode 0600,
    /// never overwritten): `vaultkeeper restore --key-file` reads it.
    #[arg(long)]
    pub backup_key_output: Option<PathBuf>,
    /// The namespace of the --as-secret manifest.
    #[arg(long, requires = "as_secret")]
    pub namespace: Option<String>,
    /// Print to a terminal even so.
    #[arg(long)]
    pub force: bool,
}

/// The bucket of an escrow object: `vaultkeeper restore`'s S3 flags, all optional here
/// because --input needs none of them.
#[derive(Debug, Clone, clap::Args)]
pub struct BucketArgs {
    /// Bucket name (spec.backup.s3.bucket).
    #[arg(long, requires = "object")]
    pub bucket: Option<String>,
    /// Key prefix inside the bucket (spec.backup.s3.prefix; default the namespace); used
    /// by --object latest.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Region.
    #[arg(long, default_value = "us-east-1")]
    pub s3_region: String,
    /// Endpoint of an S3-compatible server (MinIO, Ceph RGW…); AWS when absent.
    #[arg(long)]
    pub s3_endpoint: Option<String>,
    /// Path-style addressing (endpoint/bucket/key), which most S3-compatible servers need.
    #[arg(long)]
    pub s3_path_style: bool,
    /// File with the access key id; with --s3-secret-access-key-file. Without both, the
    /// SDK's default chain (env, web identity, instance metadata) is used.
    #[arg(long, requires = "s3_secret_access_key_file")]
    pub s3_access_key_id_file: Option<PathBuf>,
    /// File with the secret access key.
    #[arg(long, requires = "s3_access_key_id_file")]
    pub s3_secret_access_key_file: Option<PathBuf>,
    /// Extra PEM CA to trust for the S3 endpoint.
    #[arg(long)]
    pub s3_ca_cert: Option<PathBuf>,
}

impl BucketArgs {
    fn access(&self, bucket: &str) -> S3Access {
        S3Access {
            bucket: bucket.to_owned(),
            prefix: self.prefix.clone(),
            region: self.s3_region.clone(),
            endpoint: self.s3_endpoint.clone(),
            path_style: self.s3_path_style,
            credential_files: self
                .s3_access_key_id_file
                .clone()
                .zip(self.s3_secret_access_key_file.clone())
                .map(|(access_key_id, secret_access_key)| S3CredentialFiles {
                    access_key_id,
                    secret_access_key,
                }),
            ca_cert: self.s3_ca_cert.clone(),
            checksums_when_required: self.s3_endpoint.is_some(),
        }
    }
}

/// `vaultkeeper keys generate-identity`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateIdentityArgs {
    /// Where to write the identity (created with mode 0600; never overwritten). Keep it
    /// off the cluster, offline if you can.
    #[arg(long)]
    pub output: PathBuf,
}

/// Runs `vaultkeeper keys ...`.
pub async fn run(command: KeysCommand) -> Result<(), CliError> {
    match command {
        KeysCommand::Decrypt(args) => decrypt(&args).await,
        KeysCommand::GenerateIdentity(args) => generate_identity(&args),
    }
}

fn generate_identity(args: &GenerateIdentityArgs) -> Result<(), CliError> {
    let (secret, public) = escrow::generate_identity();
    let text = zeroize::Zeroizing::new(format!(
        "# created: {}\n# public key: {public}\n{}\n",
        jiff::Timestamp::now(),
        secret.expose_secret()
    ));
    write_private_file("--output", &args.output, text.as_bytes())?;
    eprintln!(
        "wrote the identity to {}; its public key (for spec.keys.escrow.recipients):",
        args.output.display()
    );
    println!("{public}");
    Ok(())
}

async fn decrypt(args: &DecryptArgs) -> Result<(), CliError> {
    // Refuse before reading anything secret.
    if args.output.is_none() && std::io::stdout().is_terminal() && !args.force {
        return Err(CliError::Input(
            "--output: refusing to print the key record to a terminal, where scrollback keeps \
             it: give --output FILE, pipe the output, or add --force"
                .into(),
        ));
    }
    let identity_text = std::fs::File::open(&args.identity)
        .and_then(|f| escrow::read_identity(std::io::BufReader::new(f)))
        .map_err(|e| {
            CliError::Input(format!(
                "--identity: cannot read {}: {e}",
                args.identity.display()
            ))
        })?;
    let identities = escrow::parse_identities("--identity", &identity_text)
        .map_err(|e| CliError::Input(e.to_string()))?;
    let ciphertext = read_ciphertext(args).await?;
    let plaintext = escrow::decrypt(&ciphertext, &identities).map_err(|e| match e {
        escrow::EscrowError::NoMatchingIdentity => CliError::Input(format!("--identity: {e}")),
        other => CliError::Input(format!(
            "--input/--object: {other}; give the escrow object (a .age file) itself"
        )),
    })?;
    let opened = escrow::payload::open(plaintext.expose_secret()).map_err(|e| {
        CliError::Input(format!(
            "the decrypted object is not a vaultkeeper escrow record ({e}): give an escrow object"
        ))
    })?;
    let summary = opened.keys.summary();
    eprintln!(
        "escrow record {} (status.keys.escrow.fingerprint): {} {:?} shares, threshold {}, root token {}; backup key {}",
        escrow::fingerprint(plaintext.expose_secret()),
        summary.shares,
        summary.kind,
        summary.threshold,
        if summary.root_token_kept {
            "kept"
        } else {
            "revoked"
        },
        opened
            .backup_key
            .as_ref()
            .map_or("not included".to_owned(), |k| format!(
                "of Secret {}",
                k.secret
            )),
    );
    if let Some(path) = &args.backup_key_output {
        let key = opened.backup_key.as_ref().ok_or_else(|| {
            CliError::Input(
                "--backup-key-output: this escrow object holds no backup key (the cluster took no backups when it was written)".into(),
            )
        })?;
        write_private_file("--backup-key-output", path, key.value.expose_secret())?;
    }
    let output = match (&args.as_secret, &args.namespace) {
        (Some(name), Some(namespace)) => secret_manifest(
            name,
            namespace,
            args.cluster_name.as_deref(),
            &opened.record,
            opened.backup_key.as_ref(),
        )?,
        _ => opened.record,
    };
    match &args.output {
        Some(path) => write_private_file("--output", path, output.expose_secret()),
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(output.expose_secret())
                .and_then(|()| stdout.write_all(b"\n"))
                .and_then(|()| stdout.flush())
                .map_err(|e| CliError::Internal(format!("cannot write to stdout: {e}")))
        }
    }
}

/// The escrow object's bytes, from --input or the bucket.
async fn read_ciphertext(args: &DecryptArgs) -> Result<Vec<u8>, CliError> {
    match (&args.input, &args.object) {
        (Some(path), _) => {
            let mut bytes = Vec::new();
            let read = if path == Path::new("-") {
                std::io::stdin()
                    .take(MAX_ESCROW_OBJECT)
                    .read_to_end(&mut bytes)
            } else {
                std::fs::File::open(path)
                    .and_then(|f| f.take(MAX_ESCROW_OBJECT).read_to_end(&mut bytes))
            };
            read.map_err(|e| {
                CliError::Input(format!("--input: cannot read {}: {e}", path.display()))
            })?;
            Ok(bytes)
        }
        (None, Some(object)) => {
            let s3 = &args.s3;
            let bucket = s3.bucket.as_deref().ok_or_else(|| {
                CliError::Input(
                    "--bucket: --object reads from a bucket: give --bucket (and --prefix, \
                     --s3-endpoint... as for `vaultkeeper restore`)"
                        .into(),
                )
            })?;
            let settings = vaultkeeper_backup::job::s3_settings(&s3.access(bucket))
                .map_err(|e| CliError::Input(e.to_string()))?;
            let store = S3Store::connect(&settings)
                .await
                .map_err(|e| CliError::Input(e.to_string()))?;
            let key = if object == "latest" {
                let cluster = args.cluster_name.as_deref().ok_or_else(|| {
                    CliError::Input(
                        "--cluster-name: --object latest needs the VaultCluster's name".into(),
                    )
                })?;
                let location = EscrowLocation::new(&s3.prefix, cluster)
                    .map_err(|e| CliError::Input(e.to_string()))?;
                let listed = store
                    .list(&location.list_prefix())
                    .await
                    .map_err(|e| CliError::Internal(e.to_string()))?;
                location
                    .newest(listed.iter().map(|o| o.key.as_str()))
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        CliError::Input(format!(
                            "--object latest: no escrow object under s3://{}/{}: check --prefix \
                             and --cluster-name",
                            bucket,
                            location.list_prefix()
                        ))
                    })?
            } else {
                object.clone()
            };
            store
                .get_small(&key)
                .await
                .map_err(|e| CliError::Internal(e.to_string()))
        }
        (None, None) => Err(CliError::Input(
            "--input: say where the escrow object is: --input FILE (or -), or --object KEY \
             with --bucket"
                .into(),
        )),
    }
}

/// A keys Secret holding `record` as init.json, as JSON that `kubectl apply -f` reads;
/// with a backup key, a List of it and the backup key's Secret.
fn secret_manifest(
    name: &str,
    namespace: &str,
    cluster: Option<&str>,
    record: &SecretSlice<u8>,
    backup_key: Option<&escrow::payload::BackupKey>,
) -> Result<SecretSlice<u8>, CliError> {
    let secret =
        |name: &str, labels, item: &str, value: &[u8]| -> Result<serde_json::Value, CliError> {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: Some(namespace.to_owned()),
                    labels,
                    ..ObjectMeta::default()
                },
                type_: Some("Opaque".to_owned()),
                data: Some(std::collections::BTreeMap::from([(
                    item.to_owned(),
                    ByteString(value.to_vec()),
                )])),
                ..Secret::default()
            };
            let mut value = serde_json::to_value(&secret)
                .map_err(|e| CliError::Internal(format!("cannot encode the Secret: {e}")))?;
            if let Some(object) = value.as_object_mut() {
                object.insert("apiVersion".into(), "v1".into());
                object.insert("kind".into(), "Secret".into());
            }
            Ok(value)
        };
    let keys = secret(
        name,
        cluster.map(keys_secret_labels),
        INIT_KEY,
        record.expose_secret(),
    )?;
    let value = match backup_key {
        None => keys,
        Some(key) => {
            let labels = cluster.map(|c| {
                let mut labels = keys_secret_labels(c);
                labels.insert("app.kubernetes.io/component".into(), "backup-key".into());
                labels.remove("vaultkeeper.io/keys");
                labels
            });
            let backup = secret(&key.secret, labels, &key.item, key.value.expose_secret())?;
            serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [keys, backup]})
        }
    };
    let text = serde_json::to_vec_pretty(&value)
        .map_err(|e| CliError::Internal(format!("cannot encode the Secret: {e}")))?;
    // The JSON value held the record in base64 in ordinary memory (serde_json does not
    // wipe); the bytes out are wiped on drop.
    drop(value);
    Ok(secret_bytes(text))
}

/// Creates `path` with mode 0600 and writes `bytes`; an existing file is never replaced.
fn write_private_file(flag: &str, path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            let fix = if e.kind() == std::io::ErrorKind::AlreadyExists {
                "it exists and is never overwritten: give a new path"
            } else {
                "give a path in a writable directory"
            };
            CliError::Input(format!(
                "{flag}: cannot create {}: {e}; {fix}",
                path.display()
            ))
        })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::Internal(format!("cannot write {}: {e}", path.display())))
}
