//! Escrow of the init output off the cluster: the key record (the exact JSON the keys
//! Secret holds) encrypted with age to recipients people hold, written next to the backups
//! in the bucket and, when asked, to a Secret in another namespace.
//!
//! The operator only ever holds public keys, so it can write the copy but never read it.
//! A copy is written when the record (its SHA-256 fingerprint), the recipients or a
//! destination differ from what `status.keys.escrow` says is escrowed: after init, when
//! escrow is added to a running cluster, and after a rekey changes the record (the rekey
//! calls [`ensure`] with the new record). A failure never blocks anything else: it becomes
//! `KeysEscrowed=False` with the reason, a Warning Event, and a retry on the next pass.
//!
//! What an object holds is [`payload`]: the key record and the backup encryption key.
//!
//! Pure parts (fingerprints, encryption, the write decision) are separate from [`ensure`],
//! which performs the writes.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read, Write};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use vaultkeeper_api::{EscrowSpec, EscrowStatus, VaultCluster};
use vaultkeeper_backup::naming::EscrowLocation;
use vaultkeeper_backup::s3::{S3Credentials, S3Settings, S3Store};
use vaultkeeper_backup::store::ObjectStore as _;
use vaultkeeper_vault::keys::InitKeys;
use vaultkeeper_vault::secret::{ExposeSecret, SecretSlice, SecretString, secret_bytes};

pub mod payload;

/// The key of the escrow Secret that holds the ciphertext.
pub const SECRET_KEY: &str = "escrow.age";
/// The component label of an escrow Secret.
pub const COMPONENT: &str = "keys-escrow";
/// The label naming the namespace of the cluster an escrow Secret belongs to (the
/// instance label alone does not tell two namespaces' clusters apart).
pub const NAMESPACE_LABEL: &str = "vaultkeeper.io/escrow-of-namespace";
const FIELD_MANAGER: &str = "vaultkeeper-keys-escrow";
/// How long one write may take before the pass moves on (and retries next pass).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What can go wrong with escrow. Messages never carry key material: a record is only
/// ever referred to by its fingerprint.
#[derive(Debug, thiserror::Error)]
pub enum EscrowError {
    /// A recipient or identity is unusable; `field` says which input.
    #[error("{field}: {reason}")]
    Input {
        /// The flag or field.
        field: String,
        /// What is wrong and the fix.
        reason: String,
    },
    /// Encryption or decryption failed.
    #[error("{0}")]
    Crypto(String),
    /// The object to decrypt is not an age file (or is damaged).
    #[error("{0}")]
    NotAgeFile(String),
    /// None of the identities is a recipient of the object.
    #[error(
        "none of the identities can open this object: it was encrypted to other recipients \
         (check status.keys.escrow and spec.keys.escrow.recipients)"
    )]
    NoMatchingIdentity,
}

/// SHA-256 of `bytes`, lower-case hex. Of the key record, it tells copies apart without
/// revealing anything (the record is full of random shares).
pub fn fingerprint(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// The fingerprint of a recipient list: order and duplicates do not matter.
pub fn recipients_fingerprint(recipients: &[String]) -> String {
    let mut sorted: Vec<&str> = recipients.iter().map(|r| r.trim()).collect();
    sorted.sort_unstable();
    sorted.dedup();
    fingerprint(sorted.join("\n").as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Encrypts `plaintext` to every recipient (binary age format).
pub fn encrypt(plaintext: &[u8], recipients: &[String]) -> Result<Vec<u8>, EscrowError> {
    let parsed = recipients
        .iter()
        .enumerate()
        .map(|(i, r)| {
            vaultkeeper_api::parse_recipient(r).map_err(|reason| EscrowError::Input {
                field: format!("spec.keys.escrow.recipients[{i}]"),
                reason: reason.to_owned(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let encryptor =
        age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| EscrowError::Crypto(format!("cannot set up encryption: {e}")))?;
    let mut out = Vec::new();
    let mut writer = encryptor
        .wrap_output(&mut out)
        .map_err(|e| EscrowError::Crypto(format!("cannot start encryption: {e}")))?;
    writer
        .write_all(plaintext)
        .and_then(|()| writer.finish().map(|_| ()))
        .map_err(|e| EscrowError::Crypto(format!("cannot encrypt: {e}")))?;
    Ok(out)
}

/// Parses an age identity file: `AGE-SECRET-KEY-1...` lines, `#` comments and blank lines.
/// Errors name the line, never its text.
pub fn parse_identities(
    field: &str,
    text: &SecretString,
) -> Result<Vec<age::x25519::Identity>, EscrowError> {
    let mut identities = Vec::new();
    for (number, line) in text.expose_secret().lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let identity = line
            .parse::<age::x25519::Identity>()
            .map_err(|_| EscrowError::Input {
                field: field.to_owned(),
                reason: format!(
                    "line {} is not an age X25519 identity (AGE-SECRET-KEY-1...): give the file \
                     `age-keygen -o` or `vaultkeeper keys generate-identity --output` wrote",
                    number + 1
                ),
            })?;
        identities.push(identity);
    }
    if identities.is_empty() {
        return Err(EscrowError::Input {
            field: field.to_owned(),
            reason: "holds no AGE-SECRET-KEY-1... line: give an age identity file".into(),
        });
    }
    Ok(identities)
}

/// Decrypts an escrow object (binary or ASCII-armored age) with any of `identities`.
pub fn decrypt(
    ciphertext: &[u8],
    identities: &[age::x25519::Identity],
) -> Result<SecretSlice<u8>, EscrowError> {
    let decryptor = age::Decryptor::new(age::armor::ArmoredReader::new(ciphertext))
        .map_err(|e| EscrowError::NotAgeFile(format!("this is not an age file: {e}")))?;
    let mut stream = decryptor
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => EscrowError::NoMatchingIdentity,
            other => EscrowError::Crypto(format!("cannot decrypt: {other}")),
        })?;
    let mut plaintext = zeroize::Zeroizing::new(Vec::new());
    stream
        .read_to_end(&mut plaintext)
        .map_err(|e| EscrowError::NotAgeFile(format!("the object is damaged: {e}")))?;
    Ok(secret_bytes(std::mem::take(&mut *plaintext)))
}

/// A new identity: the secret (`AGE-SECRET-KEY-1...`) and its public recipient (`age1...`).
pub fn generate_identity() -> (SecretString, String) {
    let identity = age::x25519::Identity::generate();
    let secret = vaultkeeper_vault::secret::secret_string(
        age::secrecy::ExposeSecret::expose_secret(&identity.to_string()).to_owned(),
    );
    (secret, identity.to_public().to_string())
}

/// Where the current record must be escrowed, and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// SHA-256 of the key record.
    pub fingerprint: String,
    /// Fingerprint of the recipient list.
    pub recipients_fingerprint: String,
    /// How many recipients.
    pub recipients: i32,
    /// The bucket and escrow prefix (`{prefix}escrow/{cluster}/`), when the object store is
    /// a destination.
    pub object_store: Option<(String, String)>,
    /// `<namespace>/<name>` of the escrow Secret, when it is a destination.
    pub secret: Option<String>,
}

/// A place the escrow writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A new object in the bucket.
    Object,
    /// The escrow Secret.
    Secret,
}

/// Which writes bring `escrowed` (what status says) to `target`. A destination is up to
/// date when status says it holds this record for these recipients, at this place.
pub fn writes_needed(target: &Target, escrowed: Option<&EscrowStatus>) -> Vec<Destination> {
    let same = escrowed.filter(|e| {
        e.fingerprint == target.fingerprint
            && e.recipients_fingerprint == target.recipients_fingerprint
    });
    let mut writes = Vec::new();
    if let Some((bucket, prefix)) = &target.object_store {
        let held = same.is_some_and(|e| {
            e.bucket.as_deref() == Some(bucket.as_str())
                && e.object.as_deref().is_some_and(|o| o.starts_with(prefix))
        });
        if !held {
            writes.push(Destination::Object);
        }
    }
    if let Some(secret) = &target.secret
        && same.is_none_or(|e| e.secret.as_deref() != Some(secret.as_str()))
    {
        writes.push(Destination::Secret);
    }
    writes
}

/// What one escrow step found or did, for the status, the condition and the Events.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The new `status.keys.escrow` (`None`: keep what status says).
    pub escrowed: Option<EscrowStatus>,
    /// `KeysEscrowed`: whether every destination holds the current record.
    pub healthy: bool,
    /// The condition's reason.
    pub reason: &'static str,
    /// The sentence a person reads.
    pub message: String,
    /// What was written this pass (for a Normal Event), if anything.
    pub written: Vec<String>,
}

impl Report {
    /// A failure before anything could be compared or written.
    pub fn failed(reason: &'static str, message: String) -> Self {
        Report {
            escrowed: None,
            healthy: false,
            reason,
            message,
            written: Vec::new(),
        }
    }
}

/// Brings the escrow of `keys` up to date for `vc`: encrypts the record once, writes every
/// destination that does not hold it, and reports. `escrowed` is what status says now.
/// Nothing here fails the pass.
pub async fn ensure(
    client: &kube::Client,
    vc: &VaultCluster,
    spec: &EscrowSpec,
    escrowed: Option<&EscrowStatus>,
    keys: &InitKeys,
    backup_key: Option<&payload::BackupKey>,
    now: jiff::Timestamp,
) -> Report {
    let record = match payload::seal(keys, backup_key) {
        Ok(record) => record,
        Err(e) => return Report::failed("RecordUnreadable", e),
    };
    let namespace = vc.namespace().unwrap_or_default();
    let cluster = vc.name_any();
    let location = match escrow_location(vc) {
        Ok(location) => location,
        Err(message) => return Report::failed("ObjectStoreFailed", message),
    };
    let target = Target {
        fingerprint: fingerprint(record.expose_secret()),
        recipients_fingerprint: recipients_fingerprint(&spec.recipients),
        recipients: i32::try_from(spec.recipients.len()).unwrap_or(i32::MAX),
        object_store: location
            .as_ref()
            .map(|(bucket, l)| (bucket.clone(), l.list_prefix())),
        secret: spec
            .secret
            .as_ref()
            .map(|s| format!("{}/{}", s.namespace, s.name)),
    };
    let writes = writes_needed(&target, escrowed);
    let mut status = match escrowed {
        Some(e)
            if e.fingerprint == target.fingerprint
                && e.recipients_fingerprint == target.recipients_fingerprint =>
        {
            e.clone()
        }
        _ => EscrowStatus {
            fingerprint: target.fingerprint.clone(),
            recipients_fingerprint: target.recipients_fingerprint.clone(),
            recipients: target.recipients,
            ..EscrowStatus::default()
        },
    };
    let mut failures: Vec<(&'static str, String)> = Vec::new();
    let mut written = Vec::new();
    if !writes.is_empty() {
        // Encrypting needs randomness and the record: done once, for every destination.
        let ciphertext = match encrypt(record.expose_secret(), &spec.recipients) {
            Ok(c) => c,
            Err(e) => return Report::failed("EncryptionFailed", e.to_string()),
        };
        drop(record);
        for write in writes {
            match write {
                Destination::Object => {
                    let Some((bucket, location)) = &location else {
                        continue;
                    };
                    let key = location.object_key(now, &target.fingerprint);
                    match write_object(client, vc, bucket, &key, &ciphertext, &target).await {
                        Ok(()) => {
                            written.push(format!("s3://{bucket}/{key}"));
                            status.bucket = Some(bucket.clone());
                            status.object = Some(key);
                        }
                        Err(e) => failures.push(("ObjectStoreFailed", e)),
                    }
                }
                Destination::Secret => {
                    let Some(secret) = &spec.secret else {
                        continue;
                    };
                    let object = status.object.clone();
                    match write_secret(
                        client,
                        &namespace,
                        &cluster,
                        secret,
                        &ciphertext,
                        &target,
                        object.as_deref(),
                    )
                    .await
                    {
                        Ok(()) => {
                            let name = format!("{}/{}", secret.namespace, secret.name);
                            written.push(format!("Secret {name}"));
                            status.secret = Some(name);
                        }
                        Err(failure) => failures.push(failure),
                    }
                }
            }
        }
        if !written.is_empty() {
            status.written_at = Some(Time(now));
        }
    }
    let short = &target.fingerprint[..12.min(target.fingerprint.len())];
    let (healthy, reason, message) = match failures.first() {
        Some((reason, _)) => (
            false,
            *reason,
            format!(
                "the key record {short}… is not escrowed everywhere spec.keys.escrow asks, \
                 retrying every pass: {}",
                failures
                    .iter()
                    .map(|(_, m)| m.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
        None => {
            let mut places = Vec::new();
            if let (Some(bucket), Some(object)) = (&status.bucket, &status.object) {
                places.push(format!("s3://{bucket}/{object}"));
            }
            if let Some(secret) = &status.secret {
                places.push(format!("Secret {secret}"));
            }
            (
                true,
                "Escrowed",
                format!(
                    "the key record {short}… is escrowed, encrypted to {} age recipient(s), in {}",
                    target.recipients,
                    places.join(" and ")
                ),
            )
        }
    };
    // Status records only what is true: a destination that failed keeps no claim.
    let changed = escrowed != Some(&status);
    Report {
        escrowed: changed.then_some(status),
        healthy,
        reason,
        message,
        written,
    }
}

/// The bucket and escrow location `spec.backup.s3` gives (`None` when objectStore is off).
fn escrow_location(vc: &VaultCluster) -> Result<Option<(String, EscrowLocation)>, String> {
    let Some(escrow) = &vc.spec.keys.escrow else {
        return Ok(None);
    };
    if !escrow.object_store {
        return Ok(None);
    }
    let Some(s3) = &vc.spec.backup.s3 else {
        return Err("spec.keys.escrow.objectStore needs spec.backup.s3".into());
    };
    // The same default prefix the backup CronJob gets.
    let prefix = s3
        .prefix
        .clone()
        .unwrap_or_else(|| vc.namespace().unwrap_or_default());
    EscrowLocation::new(&prefix, &vc.name_any())
        .map(|l| Some((s3.bucket.clone(), l)))
        .map_err(|e| format!("spec.backup.s3.prefix: {e}"))
}

/// The S3 settings of `spec.backup.s3`, with the access key read from the credentials
/// Secret the backup Job uses (the values never leave this function but into the SDK).
pub(crate) async fn s3_settings(
    client: &kube::Client,
    vc: &VaultCluster,
) -> Result<S3Settings, String> {
    let s3 = vc
        .spec
        .backup
        .s3
        .as_ref()
        .ok_or("spec.backup.s3 is not set")?;
    let credentials = match &s3.credentials_secret {
        Some(reference) => {
            let api: Api<Secret> =
                Api::namespaced(client.clone(), &vc.namespace().unwrap_or_default());
            let secret = api
                .get_opt(&reference.name)
                .await
                .map_err(|e| {
                    format!(
                        "cannot read the S3 credentials Secret {}: {}",
                        reference.name,
                        api_error_summary(&e)
                    )
                })?
                .ok_or_else(|| {
                    format!(
                        "the S3 credentials Secret {} (spec.backup.s3.credentialsSecret) does not exist",
                        reference.name
                    )
                })?;
            let value = |key: &str| -> Result<SecretString, String> {
                // `stringData` is write-only: the API server folds it into `data`.
                secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .and_then(|v| String::from_utf8(v.0.clone()).ok())
                    .map(|v| vaultkeeper_vault::secret::secret_string(v.trim().to_owned()))
                    .ok_or_else(|| {
                        format!(
                            "the S3 credentials Secret {} has no UTF-8 key {key}",
                            reference.name
                        )
                    })
            };
            S3Credentials::Static {
                access_key_id: value(&reference.access_key_id_key)?
                    .expose_secret()
                    .to_owned(),
                secret_access_key: value(&reference.secret_access_key_key)?,
                session_token: None,
            }
        }
        None => S3Credentials::Ambient,
    };
    Ok(S3Settings {
        bucket: s3.bucket.clone(),
        region: s3.region.clone(),
        endpoint: s3.endpoint.clone(),
        force_path_style: s3.force_path_style,
        credentials,
        ca_pem: None,
        checksums_when_required: s3.endpoint.is_some(),
    })
}

async fn write_object(
    client: &kube::Client,
    vc: &VaultCluster,
    bucket: &str,
    key: &str,
    ciphertext: &[u8],
    target: &Target,
) -> Result<(), String> {
    let settings = s3_settings(client, vc).await?;
    let metadata = HashMap::from([
        ("vaultkeeper-cluster".to_owned(), vc.name_any()),
        (
            "vaultkeeper-namespace".to_owned(),
            vc.namespace().unwrap_or_default(),
        ),
        (
            "vaultkeeper-keys-fingerprint".to_owned(),
            target.fingerprint.clone(),
        ),
        (
            "vaultkeeper-recipients".to_owned(),
            target.recipients.to_string(),
        ),
    ]);
    let put = async {
        let store = S3Store::connect(&settings).await?;
        store
            .put_bytes(
                key,
                bytes::Bytes::copy_from_slice(ciphertext),
                "application/octet-stream",
                &metadata,
            )
            .await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, put).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot write s3://{bucket}/{key}: {e}")),
        Err(_) => Err(format!(
            "writing s3://{bucket}/{key} took over {}s",
            WRITE_TIMEOUT.as_secs()
        )),
    }
}

/// Labels of an escrow Secret: this cluster's, in its namespace.
pub fn secret_labels(namespace: &str, cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/instance".to_owned(), cluster.to_owned()),
        (
            "app.kubernetes.io/component".to_owned(),
            COMPONENT.to_owned(),
        ),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "vaultkeeper".to_owned(),
        ),
        (NAMESPACE_LABEL.to_owned(), namespace.to_owned()),
    ])
}

/// Whether an existing Secret is this cluster's escrow. Anything else (another cluster's
/// escrow, or a Secret someone else made) is never overwritten: the target namespace is
/// one the VaultCluster's author may not be able to write to themselves.
pub fn is_own_escrow(secret: &Secret, namespace: &str, cluster: &str) -> bool {
    let wanted = secret_labels(namespace, cluster);
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

async fn write_secret(
    client: &kube::Client,
    namespace: &str,
    cluster: &str,
    target_ref: &vaultkeeper_api::EscrowSecretRef,
    ciphertext: &[u8],
    target: &Target,
    object: Option<&str>,
) -> Result<(), (&'static str, String)> {
    let name = format!("{}/{}", target_ref.namespace, target_ref.name);
    let api: Api<Secret> = Api::namespaced(client.clone(), &target_ref.namespace);
    let forbidden = |e: &kube::Error| -> (&'static str, String) {
        match e {
            kube::Error::Api(s) if s.code == 403 => (
                "SecretForbidden",
                format!(
                    "the operator may not write Secrets in namespace {}: bind its ClusterRole \
                     there as for a watched namespace (deploy/watch/, or the chart's \
                     watchNamespaces), or remove spec.keys.escrow.secret",
                    target_ref.namespace
                ),
            ),
            other => (
                "SecretFailed",
                format!("cannot write Secret {name}: {}", api_error_summary(other)),
            ),
        }
    };
    let existing = api
        .get_opt(&target_ref.name)
        .await
        .map_err(|e| forbidden(&e))?;
    if let Some(existing) = &existing
        && !is_own_escrow(existing, namespace, cluster)
    {
        return Err((
            "SecretRefused",
            format!(
                "Secret {name} exists and is not the escrow of VaultCluster {namespace}/{cluster}; \
                 it is left alone: name another Secret in spec.keys.escrow.secret"
            ),
        ));
    }
    let mut annotations = BTreeMap::from([
        (
            "vaultkeeper.io/keys-fingerprint".to_owned(),
            target.fingerprint.clone(),
        ),
        (
            "vaultkeeper.io/description".to_owned(),
            format!(
                "The init output of VaultCluster {namespace}/{cluster}, encrypted with age to \
                 {} recipient(s). Decrypt with `vaultkeeper keys decrypt --identity FILE \
                 --input FILE`; see docs/custody.md.",
                target.recipients
            ),
        ),
    ]);
    if let Some(object) = object {
        annotations.insert("vaultkeeper.io/escrow-object".to_owned(), object.to_owned());
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(target_ref.name.clone()),
            namespace: Some(target_ref.namespace.clone()),
            labels: Some(secret_labels(namespace, cluster)),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            SECRET_KEY.to_owned(),
            ByteString(ciphertext.to_vec()),
        )])),
        ..Secret::default()
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&secret);
    let write = api.patch(&target_ref.name, &params, &patch);
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(forbidden(&e)),
        Err(_) => Err((
            "SecretFailed",
            format!(
                "writing Secret {name} took over {}s",
                WRITE_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// An API error without any request body echoed back.
fn api_error_summary(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} {}", status.code, status.reason),
        other => other.to_string(),
    }
}

/// Reads an identity file's text (for the CLI): the secret stays in a zeroizing string.
pub fn read_identity(reader: impl BufRead) -> std::io::Result<SecretString> {
    let mut text = zeroize::Zeroizing::new(String::new());
    let mut reader = reader.take(64 * 1024);
    reader.read_to_string(&mut text)?;
    Ok(vaultkeeper_vault::secret::secret_string(std::mem::take(
        &mut *text,
    )))
}

#[cfg(test)]
mod tests;
