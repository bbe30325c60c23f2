//! A second OpenBao serving the `transit` secrets engine, for a real transit auto-unseal.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use super::bao::Server;
use super::pki::Pki;
use super::raw::Raw;

pub struct TransitServer {
    pub server: Server,
    pub address: String,
    /// A periodic token allowed to encrypt/decrypt with the unseal key, nothing else.
    pub token: String,
    pub key_name: String,
    /// Secrets of the transit server itself, for the leak scan.
    pub secrets: Vec<String>,
}

impl TransitServer {
    pub async fn start(dir: &Path, ip: Ipv4Addr, pki: &Pki) -> TransitServer {
        let config = format!(
            "api_addr = \"https://{ip}:8200\"\ncluster_addr = \"https://{ip}:8201\"\nlistener \"tcp\" {{\n  address = \"{ip}:8200\"\n  cluster_address = \"{ip}:8201\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n}}\nstorage \"raft\" {{\n  path = \"{}\"\n  node_id = \"transit\"\n}}\n",
            pki.cert_file.display(),
            pki.key_file.display(),
            dir.join("data").display()
        );
        let mut server = Server::new(dir.to_path_buf(), &config, SocketAddr::new(ip.into(), 8200));
        server.start();
        server.wait_listening();
        let raw = Raw::new(&pki.ca_pem);
        let init = raw
            .call(
                reqwest::Method::PUT,
                ip,
                "sys/init",
                None,
                Some(json!({"secret_shares": 1, "secret_threshold": 1})),
            )
            .await;
        assert_eq!(init.status, 200, "transit init: {}", init.json);
        let key = init.json["keys_base64"][0]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let root = init.json["root_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let unseal = raw
            .call(
                reqwest::Method::PUT,
                ip,
                "sys/unseal",
                None,
                Some(json!({ "key": key })),
            )
            .await;
        assert_eq!(unseal.status, 200);
        let deadline = Instant::now() + Duration::from_secs(30);
        while raw.get(ip, "sys/health", None).await.status != 200 {
            assert!(
                Instant::now() < deadline,
                "transit server never became active"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let root_ref = Some(root.as_str());
        assert_eq!(
            raw.post(
                ip,
                "sys/mounts/transit",
                root_ref,
                json!({"type": "transit"})
            )
            .await
            .status,
            204
        );
        assert!(
            raw.post(ip, "transit/keys/autounseal", root_ref, json!({}))
                .await
                .status
                < 300
        );
        let policy = "path \"transit/encrypt/autounseal\" { capabilities = [\"update\"] }\npath \"transit/decrypt/autounseal\" { capabilities = [\"update\"] }\n";
        assert_eq!(
            raw.post(
                ip,
                "sys/policy/autounseal",
                root_ref,
                json!({ "policy": policy })
            )
            .await
            .status,
            204
        );
        let token = raw
            .post(
                ip,
                "auth/token/create",
                root_ref,
                json!({"policies": ["autounseal"], "no_parent": true, "period": "24h"}),
            )
            .await;
        assert_eq!(token.status, 200, "{}", token.json);
        let token = token.json["auth"]["client_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        TransitServer {
            server,
            address: format!("https://{ip}:8200"),
            secrets: vec![key, root, token.clone()],
            token,
            key_name: "autounseal".into(),
        }
    }
}
