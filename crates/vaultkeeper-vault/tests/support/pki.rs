//! A CA and one server certificate for every node address and DNS name a test uses.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

pub struct Pki {
    pub ca_pem: String,
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pki {
    /// Writes `ca.pem`, `server.pem`, `server-key.pem` into `dir`. The server certificate
    /// carries every 127.10.<subnet>.x address and the pod DNS names `vault-N.vault-internal`.
    pub fn new(dir: &Path, subnet: u8) -> Pki {
        let ca_key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "vaultkeeper test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .unwrap_or_else(|e| panic!("{e}"));
        let issuer = Issuer::new(ca_params, ca_key);

        let mut names: Vec<String> = (0..8)
            .map(|i| format!("vault-{i}.vault-internal"))
            .collect();
        names.push("localhost".into());
        let mut params = CertificateParams::new(names).unwrap_or_else(|e| panic!("{e}"));
        params.distinguished_name.push(DnType::CommonName, "vault");
        for host in 1..=40u8 {
            params
                .subject_alt_names
                .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(
                    127, 10, subnet, host,
                ))));
        }
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let cert = params
            .signed_by(&key, &issuer)
            .unwrap_or_else(|e| panic!("{e}"));

        let pki = Pki {
            ca_pem: ca_cert.pem(),
            ca_file: dir.join("ca.pem"),
            cert_file: dir.join("server.pem"),
            key_file: dir.join("server-key.pem"),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        std::fs::write(&pki.ca_file, &pki.ca_pem).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&pki.cert_file, &pki.cert_pem).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&pki.key_file, &pki.key_pem).unwrap_or_else(|e| panic!("{e}"));
        pki
    }
}
