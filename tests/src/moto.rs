//! moto's S3 server on a loopback address, for the tests that need a real object store:
//! started per test on its own address, stopped (and waited for) when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::operator::tool;

/// A running moto server.
pub struct Moto {
    child: Child,
    address: String,
}

impl Moto {
    /// Starts moto on `host:5000`, logging to `dir/moto.log`, and waits until it listens.
    pub fn start(dir: &Path, host: &str) -> Moto {
        let log = std::fs::File::create(dir.join("moto.log")).expect("log file");
        let child = Command::new(tool("moto_server", "VAULTKEEPER_MOTO"))
            .args(["-H", host, "-p", "5000"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("moto_server starts");
        // Owned at once, so it is stopped (and waited for) whatever happens next.
        let moto = Moto {
            child,
            address: format!("{host}:5000"),
        };
        for _ in 0..200 {
            if TcpStream::connect(&moto.address).is_ok() {
                return moto;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto_server did not listen on {}", moto.address);
    }

    /// `host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// One plain HTTP request (moto accepts unsigned ones, e.g. a bucket creation): the
    /// whole response text.
    pub fn request(&self, method: &str, path: &str) -> String {
        let mut stream = TcpStream::connect(&self.address).expect("moto answers");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.address
        )
        .expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        response
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates the Secret `backup-s3` in `namespace` with moto's credentials (moto accepts
/// any; the examples' `spec.backup.s3.credentialsSecret` names this Secret).
pub async fn s3_credentials(admin: &kube::Client, namespace: &str) {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, PostParams};
    let credentials: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "backup-s3", "namespace": namespace},
        "stringData": {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    }))
    .expect("secret");
    Api::<Secret>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &credentials)
        .await
        .expect("credentials Secret");
}
