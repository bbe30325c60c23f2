//! Protobuf bodies over HTTP, as client-go's typed clients send them
//! (<https://kubernetes.io/docs/reference/using-api/api-concepts/#protobuf-encoding>):
//! written objects of the mapped kinds are stored as their JSON twins, answers are protobuf
//! only when nothing else is accepted, and unmapped kinds are refused by name.
//! Slot 211.

use http_body_util::BodyExt as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use kube::api::Api;
use prost::Message as _;
use serde_json::{Value, json};
use vaultkeeper_sim::{SimCluster, SimConfig, protobuf};

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// Sends a request and returns the status, the content type and the body.
async fn send(client: &kube::Client, request: http::Request<Vec<u8>>) -> (u16, String, Vec<u8>) {
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .expect("the request is answered");
    let code = response.status().as_u16();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body is read")
        .to_bytes()
        .to_vec();
    (code, content_type, body)
}

fn wire(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let mut body = b"k8s\0".to_vec();
    body.extend(
        Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        }
        .encode_to_vec(),
    );
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_bodies_are_stored_answered_and_refused_by_kind() {
    let cluster = SimCluster::start(SimConfig::for_slot(211))
        .await
        .expect("cluster starts");
    let client = cluster.client().expect("client");
    let secrets_path = "/api/v1/namespaces/default/secrets";

    // Create a Secret as Helm's release storage does.
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "sh.helm.release.v1.vk.v1", "labels": {"owner": "helm", "name": "vk"}},
        "type": "helm.sh/release.v1",
        "data": {"release": "H4sIAAAAAAAA/wAAAP//"}
    });
    let body = protobuf::encode(&secret).expect("a Secret encodes");
    let request = http::Request::post(secrets_path)
        .header("Content-Type", PROTOBUF)
        .header("Accept", format!("{PROTOBUF}, application/json"))
        .body(body)
        .expect("request");
    let (code, content_type, answer) = send(&client, request).await;
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(
        content_type, "application/json",
        "JSON is listed, so JSON it is"
    );
    let created: Value = serde_json::from_slice(&answer).expect("JSON");
    assert_eq!(created["data"], secret["data"]);
    let stored = Api::<Secret>::default_namespaced(client.clone())
        .get("sh.helm.release.v1.vk.v1")
        .await
        .expect("stored");
    assert_eq!(stored.type_.as_deref(), Some("helm.sh/release.v1"));

    // Protobuf only: the answer is protobuf, and decodes to the stored object.
    let request = http::Request::get(format!("{secrets_path}/sh.helm.release.v1.vk.v1"))
        .header("Accept", PROTOBUF)
        .body(Vec::new())
        .expect("request");
    let (code, content_type, answer) = send(&client, request).await;
    assert_eq!(code, 200);
    assert_eq!(content_type, PROTOBUF);
    let decoded = protobuf::decode(&answer).expect("a protobuf Secret");
    assert_eq!(decoded["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(decoded["data"], secret["data"]);

    // A list has no protobuf mapping: 406, not a JSON body the client cannot read.
    let request = http::Request::get(secrets_path)
        .header("Accept", PROTOBUF)
        .body(Vec::new())
        .expect("request");
    let (code, _, answer) = send(&client, request).await;
    assert_eq!(code, 406, "{}", String::from_utf8_lossy(&answer));

    // A protobuf DeleteOptions is honoured: a wrong UID precondition is a 409.
    let options = meta::DeleteOptions {
        preconditions: Some(meta::Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let delete = |body: Vec<u8>| {
        http::Request::delete(format!("{secrets_path}/sh.helm.release.v1.vk.v1"))
            .header("Content-Type", PROTOBUF)
            .body(body)
            .expect("request")
    };
    let (code, _, answer) = send(
        &client,
        delete(wire("v1", "DeleteOptions", options.encode_to_vec())),
    )
    .await;
    assert_eq!(code, 409, "{}", String::from_utf8_lossy(&answer));
    let (code, _, _) = send(&client, delete(wire("v1", "DeleteOptions", Vec::new()))).await;
    assert_eq!(code, 200);

    // A kind without a mapping: 415 with a Status naming it.
    let request = http::Request::post("/apis/apps/v1/namespaces/default/deployments")
        .header("Content-Type", PROTOBUF)
        .body(wire("apps/v1", "Deployment", Vec::new()))
        .expect("request");
    let (code, content_type, answer) = send(&client, request).await;
    assert_eq!(code, 415);
    assert_eq!(content_type, "application/json");
    let status: Value = serde_json::from_slice(&answer).expect("a Status");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "UnsupportedMediaType");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("apps/v1, Kind=Deployment"), "{message}");
    cluster.shutdown().await;
}
