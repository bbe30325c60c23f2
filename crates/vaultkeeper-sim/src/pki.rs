//! The cluster's own PKI: a CA, the API server's serving certificate (with the in-cluster
//! `kubernetes.default.svc` names), and the key that signs service-account tokens (ES256
//! JWTs, the format the real token controller issues).

use crate::error::SimError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
};
use secrecy::{SecretSlice, SecretString};
use serde_json::{Value, json};
use std::net::IpAddr;

/// The issuer every service-account token names (the real default).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The CA and serving certificate of the API server.
pub struct ServerPki {
    /// CA certificate (PEM): what kubeconfig and pods' `ca.crt` carry.
    pub ca_pem: String,
    /// Serving certificate chain (DER).
    pub cert_der: Vec<u8>,
    /// Serving key (PKCS#8 DER), wiped on drop.
    pub key_der: SecretSlice<u8>,
}

impl std::fmt::Debug for ServerPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerPki")
            .field("key_der", &self.key_der)
            .finish()
    }
}

impl ServerPki {
    /// Generates a CA and a serving certificate for `ip` plus the in-cluster names.
    pub fn generate(ip: IpAddr) -> Result<Self, SimError> {
        let err = |e: rcgen::Error| SimError::Setup(format!("generating the API server PKI: {e}"));
        let ca_key = rcgen::KeyPair::generate().map_err(err)?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "vaultkeeper-sim-ca");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let key = rcgen::KeyPair::generate().map_err(err)?;
        let mut names = vec![
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
            "kubernetes.default.svc.cluster.local".to_string(),
            "localhost".to_string(),
            ip.to_string(),
        ];
        if ip.to_string() != "127.0.0.1" {
            names.push("127.0.0.1".to_string());
        }
        let mut params = rcgen::CertificateParams::new(names).map_err(err)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kube-apiserver");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &issuer).map_err(err)?;
        Ok(ServerPki {
            ca_pem: ca_cert.pem(),
            cert_der: cert.der().to_vec(),
            key_der: SecretSlice::from(key.serialize_der()),
        })
    }
}

/// Signs and verifies service-account tokens.
pub struct TokenSigner {
    key: EcdsaKeyPair,
    key_id: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl TokenSigner {
    /// A fresh P-256 signing key.
    pub fn generate() -> Result<Self, SimError> {
        let rng = SystemRandom::new();
        let err = |_| SimError::Setup("generating the service-account signing key failed".into());
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(err)?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| {
                SimError::Setup("loading the service-account signing key failed".into())
            })?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        let key_id = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
        Ok(TokenSigner { key, key_id, rng })
    }

    /// Signs a JWT with these claims.
    pub fn sign(&self, claims: &Value) -> Result<SecretString, SimError> {
        let header = json!({"alg": "ES256", "kid": self.key_id});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| SimError::Internal("signing a service-account token failed".into()))?;
        Ok(SecretString::from(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        )))
    }

    /// Verifies a JWT's signature and returns its claims (expiry is the caller's check,
    /// since the time is passed in there).
    pub fn verify(&self, token: &str) -> Option<Value> {
        let mut parts = token.split('.');
        let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
        let public = ring::signature::UnparsedPublicKey::new(
            &ECDSA_P256_SHA256_FIXED,
            self.key.public_key().as_ref(),
        );
        public.verify(format!("{h}.{c}").as_bytes(), &sig).ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()
    }

    /// The public key as a JWK set (`/openid/v1/jwks`).
    pub fn jwks(&self) -> Value {
        let pk = self.key.public_key().as_ref();
        // Uncompressed point: 0x04 || X (32) || Y (32).
        let (x, y) = if pk.len() == 65 {
            (&pk[1..33], &pk[33..65])
        } else {
            (&pk[0..0], &pk[0..0])
        };
        json!({"keys": [{
            "use": "sig", "kty": "EC", "kid": self.key_id, "crv": "P-256", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)
        }]})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn signed_tokens_verify_and_tampered_ones_do_not() {
        let s = TokenSigner::generate().unwrap();
        let t = s
            .sign(&json!({"sub": "system:serviceaccount:a:b"}))
            .unwrap();
        assert_eq!(
            s.verify(t.expose_secret()).unwrap()["sub"],
            "system:serviceaccount:a:b"
        );
        let mut bad = t.expose_secret().to_string();
        bad.push('x');
        assert!(s.verify(&bad).is_none());
        let other = TokenSigner::generate().unwrap();
        assert!(other.verify(t.expose_secret()).is_none());
    }

    #[test]
    fn serving_cert_generates() {
        let p = ServerPki::generate("127.20.0.1".parse().unwrap()).unwrap();
        assert!(p.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!p.cert_der.is_empty());
    }

    #[test]
    fn secrets_print_redacted_and_are_wiped_on_drop() {
        fn wiped_on_drop<T: secrecy::zeroize::ZeroizeOnDrop + ?Sized>() {}
        wiped_on_drop::<SecretString>();
        wiped_on_drop::<SecretSlice<u8>>();

        let s = TokenSigner::generate().unwrap();
        let t = s
            .sign(&json!({"sub": "system:serviceaccount:a:b"}))
            .unwrap();
        let printed = format!("{t:?}");
        assert!(printed.contains("REDACTED"), "{printed}");
        assert!(!printed.contains(t.expose_secret()), "{printed}");

        let p = ServerPki::generate("127.20.0.1".parse().unwrap()).unwrap();
        let printed = format!("{p:?}");
        assert!(printed.contains("REDACTED"), "{printed}");
        assert!(!printed.contains(&format!("{:?}", p.key_der.expose_secret())));
    }
}
