//! Benchmark helper for `scripts/bench-backup.sh`: each sub-command is one stage that the
//! script runs under `/usr/bin/time` to get wall time and peak RSS.
//!
//! - `fill`: writes random KV data into Vault until the snapshot reaches a size.
//! - `streamed`: our pipeline, Vault snapshot → encryption → S3 multipart, no disk.
//! - `encrypt-file` / `upload-file`: the two stages after `bao operator raft snapshot
//!   save FILE` in the save-to-disk-then-upload baseline, with the same format, part size
//!   and upload concurrency so only the pipeline shape differs.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vaultkeeper_backup::EncryptionKey;
use vaultkeeper_backup::format::{self, StreamEncryptor};
use vaultkeeper_backup::manifest::SourceInfo;
use vaultkeeper_backup::naming::BackupLocation;
use vaultkeeper_backup::pipeline::{PipelineOptions, write_backup};
use vaultkeeper_backup::s3::{S3Credentials, S3Settings, S3Store};
use vaultkeeper_backup::secret::read_secret_file;
use vaultkeeper_vault::client::{HttpOptions, VaultHttp, tls_config};
use vaultkeeper_vault::secret::{ExposeSecret, Token, secret_string};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Vault {
    #[arg(long)]
    vault_addr: String,
    #[arg(long)]
    vault_ca_cert: PathBuf,
    #[arg(long)]
    token_file: PathBuf,
}

#[derive(clap::Args, Clone)]
struct S3 {
    #[arg(long)]
    s3_endpoint: String,
    #[arg(long)]
    bucket: String,
    #[arg(long)]
    encryption_key_file: PathBuf,
    #[arg(long, default_value_t = 8)]
    part_size_mib: usize,
    #[arg(long, default_value_t = 2)]
    parts_in_flight: usize,
}

#[derive(Subcommand)]
enum Command {
    /// Write `count` KV values of `size` random bytes, `parallel` at a time.
    Fill {
        #[command(flatten)]
        vault: Vault,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 512 * 1024)]
        size: usize,
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        #[arg(long, default_value = "bench")]
        prefix: String,
    },
    /// Vault snapshot → encryption → S3, streamed.
    Streamed {
        #[command(flatten)]
        vault: Vault,
        #[command(flatten)]
        s3: S3,
    },
    /// Encrypt a snapshot file into another file.
    EncryptFile {
        #[arg(long)]
        encryption_key_file: PathBuf,
        input: PathBuf,
        output: PathBuf,
    },
    /// Upload a file with the same multipart upload.
    UploadFile {
        #[command(flatten)]
        s3: S3,
        input: PathBuf,
    },
}

type Error = Box<dyn std::error::Error>;

fn key(path: &PathBuf) -> Result<EncryptionKey, Error> {
    Ok(EncryptionKey::from_file_contents(&std::fs::read(path)?)?)
}

async fn store(s3: &S3) -> Result<S3Store, Error> {
    Ok(S3Store::connect(&S3Settings {
        bucket: s3.bucket.clone(),
        region: "us-east-1".into(),
        endpoint: Some(s3.s3_endpoint.clone()),
        force_path_style: true,
        credentials: S3Credentials::Static {
            access_key_id: "bench".into(),
            secret_access_key: secret_string("bench".into()),
            session_token: None,
        },
        ca_pem: None,
        checksums_when_required: true,
    })
    .await?)
}

fn vault_client(v: &Vault) -> Result<(VaultHttp, Token), Error> {
    let tls = tls_config(Some(&std::fs::read(&v.vault_ca_cert)?))?;
    let client = VaultHttp::new(&v.vault_addr, Arc::new(tls), HttpOptions::job())?;
    let token = Token::from(read_secret_file("--token-file", &v.token_file)?);
    Ok((client, token))
}

fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    match Cli::parse().command {
        Command::Fill {
            vault,
            count,
            size,
            parallel,
            prefix,
        } => {
            let (client, token) = vault_client(&vault)?;
            let tls = tls_config(Some(&std::fs::read(&vault.vault_ca_cert)?))?;
            let http = reqwest::Client::builder()
                .tls_backend_preconfigured(tls)
                .build()?;
            let _ = client;
            let results = futures::stream::iter(0..count)
                .map(|i| {
                    let http = http.clone();
                    let token = token.clone();
                    let url = format!("{}/v1/secret/data/{prefix}/{i}", vault.vault_addr);
                    async move {
                        let mut bytes = vec![0u8; size];
                        getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
                        let value = base64::engine::general_purpose::STANDARD.encode(&bytes);
                        let resp = http
                            .post(url)
                            .header("X-Vault-Token", token.expose_secret())
                            .json(&serde_json::json!({"data": {"v": value}}))
                            .send()
                            .await
                            .map_err(|e| e.to_string())?;
                        if resp.status().is_success() {
                            Ok(())
                        } else {
                            Err(format!("write {i}: {}", resp.status()))
                        }
                    }
                })
                .buffer_unordered(parallel)
                .collect::<Vec<Result<(), String>>>()
                .await;
            if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                return Err(e.into());
            }
        }
        Command::Streamed { vault, s3 } => {
            let (client, token) = vault_client(&vault)?;
            let store = store(&s3).await?;
            let location = BackupLocation::new("bench-streamed", &unique_name("vault"))?;
            let snapshot = client
                .snapshot(&token)
                .await?
                .map_err(vaultkeeper_backup::Error::from);
            let manifest = write_backup(
                &store,
                &location,
                jiff::Timestamp::now(),
                snapshot,
                SourceInfo {
                    cluster: location.cluster().into(),
                    cluster_id: None,
                    vault_version: None,
                    raft_index: None,
                    node: client.addr().into(),
                    keys_escrow: None,
                },
                &key(&s3.encryption_key_file)?,
                PipelineOptions {
                    part_size: s3.part_size_mib * 1024 * 1024,
                    parts_in_flight: s3.parts_in_flight,
                    ..PipelineOptions::default()
                },
            )
            .await?;
            println!("{} {}", manifest.object, manifest.ciphertext.size);
        }
        Command::EncryptFile {
            encryption_key_file,
            input,
            output,
        } => {
            let key = key(&encryption_key_file)?;
            let mut reader = tokio::fs::File::open(input).await?;
            let mut writer = tokio::io::BufWriter::new(tokio::fs::File::create(output).await?);
            let mut encryptor = StreamEncryptor::new(
                &key,
                format::random_nonce_prefix()?,
                format::DEFAULT_CHUNK_SIZE,
            )?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut out = Vec::new();
            loop {
                let n = reader.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                encryptor.update(&buf[..n], &mut out)?;
                writer.write_all(&out).await?;
                out.clear();
            }
            encryptor.finish(&mut out)?;
            writer.write_all(&out).await?;
            writer.flush().await?;
            writer.get_ref().sync_all().await?;
        }
        Command::UploadFile { s3, input } => {
            let store = store(&s3).await?;
            let key = format!("bench-baseline/{}.vkb", unique_name("vault"));
            let mut upload = store.upload(
                &key,
                Default::default(),
                s3.part_size_mib * 1024 * 1024,
                s3.parts_in_flight,
            );
            let mut reader = tokio::fs::File::open(input).await?;
            let mut buf = vec![0u8; 256 * 1024];
            let result = async {
                loop {
                    let n = reader.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    upload.write(&Bytes::copy_from_slice(&buf[..n])).await?;
                }
                upload.finish().await?;
                Ok::<_, Error>(())
            }
            .await;
            if let Err(e) = result {
                return Err(upload
                    .abort(vaultkeeper_backup::Error::Spool(std::io::Error::other(
                        e.to_string(),
                    )))
                    .await
                    .into());
            }
            println!("{key}");
        }
    }
    Ok(())
}
