//! Default values of the VaultCluster spec, in one place. The CRD schema carries them too
//! (the API server fills them in), so the Rust defaults and the server's always agree.

/// The Vault image used when `spec.image` is empty and the flavor is Vault.
pub const VAULT_IMAGE: &str = "hashicorp/vault:2.0.4";
/// The OpenBao image used when `spec.image` is empty and the flavor is OpenBao.
pub const OPENBAO_IMAGE: &str = "quay.io/openbao/openbao:2.7.2";
/// The image of vaultkeeper itself, which runs the backup and metrics-token jobs.
pub const VAULTKEEPER_IMAGE: &str = "ghcr.io/vaultkeeper/vaultkeeper";

pub(crate) fn replicas() -> i32 {
    3
}
pub(crate) fn storage_size() -> String {
    "10Gi".to_owned()
}
pub(crate) fn cluster_domain() -> String {
    "cluster.local".to_owned()
}
pub(crate) fn issuer_kind() -> crate::IssuerKind {
    crate::IssuerKind::Issuer
}
pub(crate) fn issuer_group() -> String {
    "cert-manager.io".to_owned()
}
pub(crate) fn shamir_shares() -> i32 {
    5
}
pub(crate) fn shamir_threshold() -> i32 {
    3
}
pub(crate) fn transit_mount_path() -> String {
    "transit/".to_owned()
}
pub(crate) fn static_key_id() -> String {
    "k1".to_owned()
}
pub(crate) fn secret_key_token() -> String {
    "token".to_owned()
}
pub(crate) fn secret_key_key() -> String {
    "key".to_owned()
}
pub(crate) fn access_key_id_key() -> String {
    "AWS_ACCESS_KEY_ID".to_owned()
}
pub(crate) fn secret_access_key_key() -> String {
    "AWS_SECRET_ACCESS_KEY".to_owned()
}
pub(crate) fn azure_credential_key() -> String {
    "AZURE_STORAGE_KEY".to_owned()
}
pub(crate) fn s3_region() -> String {
    "us-east-1".to_owned()
}
pub(crate) fn backup_schedule() -> String {
    "0 */6 * * *".to_owned()
}
pub(crate) fn history_limit() -> i32 {
    3
}
pub(crate) fn backup_deadline_seconds() -> i64 {
    3600
}
pub(crate) fn keep_last() -> Option<i32> {
    Some(30)
}
pub(crate) fn token_renew_schedule() -> String {
    "0 13 * * 4".to_owned()
}
pub(crate) fn token_period() -> String {
    "336h".to_owned()
}
pub(crate) fn scrape_interval() -> String {
    "30s".to_owned()
}
pub(crate) fn ingress_path() -> String {
    "/".to_owned()
}
pub(crate) fn yes() -> bool {
    true
}
