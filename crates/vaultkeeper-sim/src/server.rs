//! The HTTPS front of the API server: URL routing as the real server lays it out
//! (`/api/v1/namespaces/{ns}/{resource}/{name}/{subresource}`), bearer-token
//! authentication, RBAC, content negotiation (JSON, Table, PartialObjectMetadata,
//! aggregated discovery), watch streaming, the request log and fault injection, and the
//! special resources: TokenReview, SubjectAccessReview, TokenRequest, pods/binding,
//! pods/exec (websocket `v5.channel.k8s.io`/`v4.channel.k8s.io`) and pods/log.

use crate::auth::{self, Attributes, UserInfo};
use crate::core::{
    Core, DeleteOptions, Deleted, FieldValidation, ListOptions, PatchType, WriteOptions,
};
use crate::discovery;
use crate::error::SimError;
use crate::faults::Faults;
use crate::kinds::ResourceType;
use crate::podio::{ExecExit, ExecRequest, LogRequest, PodIo};
use crate::requests::{RequestLog, RequestRecord};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Change, EventType};
use crate::table::{self, IncludeObject};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Response body: a full buffer or a stream (watch, logs).
pub type Body = BoxBody<Bytes, std::io::Error>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// The HTTP-facing API server.
pub struct ApiServer {
    /// Storage rules.
    pub core: Arc<Core>,
    admin: SecretString,
    /// Every request answered.
    pub log: Arc<RequestLog>,
    /// Fault injection.
    pub faults: Arc<Faults>,
    podio: RwLock<Option<Arc<dyn PodIo>>>,
    bookmark_interval: Duration,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("admin", &self.admin)
            .finish()
    }
}

/// A parsed resource URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourcePath {
    /// Group.
    pub group: String,
    /// Version.
    pub version: String,
    /// Plural.
    pub plural: String,
    /// Namespace from the URL.
    pub namespace: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Subresource.
    pub subresource: Option<String>,
    /// Legacy `/watch/` prefix.
    pub legacy_watch: bool,
}

/// What a URL addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Discovery, version, OpenAPI, health.
    NonResource(String),
    /// A resource.
    Resource(ResourcePath),
}

/// Splits a URL path into a route (pure).
pub fn parse_path(path: &str) -> Route {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (g.to_string(), v.to_string(), rest),
        _ => return Route::NonResource(path.to_string()),
    };
    let (legacy_watch, rest) = match rest {
        ["watch", r @ ..] => (true, r),
        r => (false, r),
    };
    let mut p = ResourcePath {
        group,
        version,
        legacy_watch,
        ..Default::default()
    };
    match rest {
        ["namespaces", ns, "status" | "finalize"] => {
            p.plural = "namespaces".into();
            p.name = Some(ns.to_string());
            p.subresource = Some(rest[2].to_string());
        }
        ["namespaces", ns, res, tail @ ..] => {
            p.namespace = Some(ns.to_string());
            p.plural = res.to_string();
            p.name = tail.first().map(|s| s.to_string());
            p.subresource = tail.get(1).map(|s| s.to_string());
        }
        [res, tail @ ..] => {
            p.plural = res.to_string();
            p.name = tail.first().map(|s| s.to_string());
            p.subresource = tail.get(1).map(|s| s.to_string());
        }
        [] => return Route::NonResource(path.to_string()),
    }
    Route::Resource(p)
}

/// Query parameters (repeatable keys kept in order).
#[derive(Debug, Clone, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Self {
        Query(
            q.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        )
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }
}

/// How the client asked the response to be shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Object,
    Table,
    Metadata,
    /// `application/vnd.kubernetes.protobuf` and nothing the server prefers to it.
    Protobuf,
}

fn shape_of(headers: &HeaderMap) -> Result<Shape, SimError> {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.is_empty() {
        return Ok(Shape::Object);
    }
    // The first acceptable alternative wins, as in the real negotiation.
    for alt in accept.split(',') {
        let alt = alt.trim();
        if alt.contains("as=Table") {
            return Ok(Shape::Table);
        }
        if alt.contains("as=PartialObjectMetadata") {
            return Ok(Shape::Metadata);
        }
        if alt.starts_with("application/json")
            || alt.starts_with("*/*")
            || alt.starts_with("application/*")
            || alt.starts_with("application/yaml")
        {
            return Ok(Shape::Object);
        }
    }
    // Protobuf only when nothing JSON is acceptable: client-go lists JSON after protobuf,
    // and JSON answers every kind, protobuf only those `protobuf::SUPPORTED` names.
    if accept.split(',').any(crate::protobuf::is_protobuf) {
        return Ok(Shape::Protobuf);
    }
    Err(SimError::NotAcceptable(format!(
        "only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io, application/vnd.kubernetes.protobuf (asked for {accept:?})"
    )))
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The ObjectMeta schema that custom kinds' OpenAPI documents refer to, with the
/// definitions it refers to under `$defs`.
fn object_meta_schema() -> Value {
    let mut meta = serde_json::to_value(schemars::schema_for!(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta
    ))
    .unwrap_or(Value::Null);
    if let Value::Object(m) = &mut meta {
        m.remove("$schema");
        m.remove("title");
    }
    meta
}

/// Re-encodes a JSON answer as protobuf for a client that accepts nothing else; 406 when
/// the object's kind (or a list) has no protobuf mapping.
async fn protobuf_response(response: Response<Body>) -> Result<Response<Body>, SimError> {
    let (mut parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|e| SimError::Internal(format!("reading a response body: {e}")))?
        .to_bytes();
    let object: Value = serde_json::from_slice(&bytes)
        .map_err(|e| SimError::Internal(format!("a response body is not JSON: {e}")))?;
    let encoded = crate::protobuf::encode(&object).ok_or_else(|| {
        SimError::NotAcceptable(format!(
            "{} is not served as protobuf; accept application/json",
            crate::protobuf::kind_name(
                object["apiVersion"].as_str().unwrap_or_default(),
                object["kind"].as_str().unwrap_or_default()
            )
        ))
    })?;
    parts.headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(crate::protobuf::MEDIA_TYPE),
    );
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Ok(Response::from_parts(parts, full(encoded)))
}

fn error_response(e: &SimError) -> Response<Body> {
    let mut r = json_response(e.code(), &e.to_status());
    if e.code() == 429 {
        r.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn verb_of(method: &Method, p: &ResourcePath, q: &Query) -> &'static str {
    match *method {
        Method::GET if p.legacy_watch || q.flag("watch") => "watch",
        Method::GET if p.name.is_some() => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if p.name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => "",
    }
}

impl ApiServer {
    /// A server over `core`, accepting `admin` as the administrator's token.
    pub fn new(core: Arc<Core>, admin: SecretString, bookmark_interval: Duration) -> Self {
        ApiServer {
            core,
            admin,
            log: Arc::new(RequestLog::default()),
            faults: Arc::new(Faults::default()),
            podio: RwLock::new(None),
            bookmark_interval,
        }
    }

    /// Connects the kubelet's exec/log implementation.
    pub fn set_pod_io(&self, io: Arc<dyn PodIo>) {
        if let Ok(mut p) = self.podio.write() {
            *p = Some(io);
        }
    }

    fn pod_io(&self) -> Result<Arc<dyn PodIo>, SimError> {
        self.podio
            .read()
            .ok()
            .and_then(|p| p.clone())
            .ok_or_else(|| SimError::NotImplemented("this simulated cluster runs no kubelet: pods/exec and pods/log need one (start it with pods enabled)".into()))
    }

    /// Handles one HTTP request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let ua = user_agent(req.headers());
        let started = std::time::Instant::now();
        let mut record = RequestRecord {
            method: method.to_string(),
            path: path.clone(),
            query: req.uri().query().unwrap_or_default().to_string(),
            verb: String::new(),
            resource: String::new(),
            subresource: String::new(),
            namespace: String::new(),
            name: String::new(),
            user: "system:anonymous".into(),
            user_agent: ua,
            code: 0,
            started,
            finished: started,
            id: self.log.next_id(),
        };
        let resp = match self.clone().dispatch(req, &mut record).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        };
        record.code = resp.status().as_u16();
        record.finished = std::time::Instant::now();
        self.log.push(record);
        resp
    }

    async fn dispatch(
        self: Arc<Self>,
        req: Request<Incoming>,
        record: &mut RequestRecord,
    ) -> Result<Response<Body>, SimError> {
        let user = match bearer(req.headers()) {
            Some(t) => auth::authenticate(&self.core, &self.admin, Some(&t))?,
            None => UserInfo {
                username: "system:anonymous".into(),
                uid: String::new(),
                groups: vec!["system:unauthenticated".into()],
                extra: Default::default(),
            },
        };
        record.user = user.username.clone();
        let path = req.uri().path().to_string();
        let query = Query::parse(req.uri().query());
        match parse_path(&path) {
            Route::NonResource(p) => {
                let a = Attributes {
                    verb: req.method().as_str().to_ascii_lowercase(),
                    path: Some(p.clone()),
                    ..Default::default()
                };
                if !auth::allowed(&self.core, &user, &a) {
                    return Err(SimError::Forbidden(auth::forbidden_message(&user, &a)));
                }
                if p.starts_with("/api") && self.faults.discovery_fails() {
                    return Err(SimError::Internal(
                        "injected fault: discovery is unavailable".into(),
                    ));
                }
                self.non_resource(&p, req.headers())
            }
            Route::Resource(p) => {
                let verb = verb_of(req.method(), &p, &query);
                record.verb = verb.to_string();
                record.resource = p.plural.clone();
                record.subresource = p.subresource.clone().unwrap_or_default();
                record.namespace = p.namespace.clone().unwrap_or_default();
                record.name = p.name.clone().unwrap_or_default();
                let latency = self.faults.latency();
                if !latency.is_zero() {
                    tokio::time::sleep(latency).await;
                }
                if let Some(code) = self.faults.should_fail(
                    verb,
                    &p.plural,
                    p.name.as_deref().unwrap_or_default(),
                    crate::faults::sample(),
                ) {
                    return Err(match code {
                        429 => SimError::TooManyRequests(
                            "injected fault: too many requests, please try again later".into(),
                        ),
                        409 => SimError::Conflict {
                            resource: p.plural.clone(),
                            name: p.name.clone().unwrap_or_default(),
                            message: format!(
                                "Operation cannot be fulfilled on {} \"{}\": injected fault: the object has been modified; please apply your changes to the latest version and try again",
                                p.plural,
                                p.name.clone().unwrap_or_default()
                            ),
                            causes: Vec::new(),
                        },
                        _ => SimError::Internal("injected fault: internal error".into()),
                    });
                }
                self.resource(req, p, query, verb, &user, record.id).await
            }
        }
    }

    fn non_resource(&self, path: &str, headers: &HeaderMap) -> Result<Response<Body>, SimError> {
        let types = self.core.types();
        let groups = discovery::group_map(&types);
        let accept = headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let wants_aggregated = accept.split(',').next().is_some_and(|first| {
            first.contains("g=apidiscovery.k8s.io")
                && first.contains("v=v2")
                && !first.contains("v=v2beta1")
        });
        let aggregated = |core: bool| {
            let mut r = json_response(200, &discovery::aggregated(&groups, core));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                ),
            );
            r
        };
        let trimmed = path.trim_end_matches('/');
        let segs: Vec<&str> = trimmed.trim_start_matches('/').split('/').collect();
        let a = &self.core.addresses;
        Ok(match segs.as_slice() {
            ["api"] if wants_aggregated => aggregated(true),
            ["api"] => json_response(
                200,
                &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": format!("{}:{}", a.api_ip, a.api_port)}]}),
            ),
            ["apis"] if wants_aggregated => aggregated(false),
            ["apis"] => json_response(200, &discovery::api_group_list(&groups)),
            ["api", v] => {
                let ts = groups
                    .iter()
                    .find(|(g, _)| g.is_empty())
                    .and_then(|(_, vs)| vs.iter().find(|(x, _)| x == v))
                    .map(|(_, ts)| ts.clone());
                match ts {
                    Some(ts) => json_response(200, &discovery::resource_list(v, &ts)),
                    None => {
                        return Err(SimError::NotFound {
                            resource: String::new(),
                            name: path.to_string(),
                        });
                    }
                }
            }
            ["apis", g] => match groups.iter().find(|(x, _)| x == g) {
                Some((_, vs)) => json_response(200, &discovery::api_group(g, vs)),
                None => {
                    return Err(SimError::NotFound {
                        resource: String::new(),
                        name: path.to_string(),
                    });
                }
            },
            ["apis", g, v] => {
                let ts = groups
                    .iter()
                    .find(|(x, _)| x == g)
                    .and_then(|(_, vs)| vs.iter().find(|(x, _)| x == v))
                    .map(|(_, ts)| ts.clone());
                match ts {
                    Some(ts) => {
                        json_response(200, &discovery::resource_list(&format!("{g}/{v}"), &ts))
                    }
                    None => {
                        return Err(SimError::NotFound {
                            resource: String::new(),
                            name: path.to_string(),
                        });
                    }
                }
            }
            ["version"] => json_response(
                200,
                &json!({
                    "major": "1", "minor": "33", "gitVersion": "v1.33.0-vaultkeeper-sim", "gitCommit": "", "gitTreeState": "clean",
                    "buildDate": "2026-01-01T00:00:00Z", "goVersion": "", "compiler": "rustc", "platform": "linux/amd64"
                }),
            ),
            ["healthz"] | ["livez"] | ["readyz"] => {
                let mut r = Response::new(full("ok"));
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain"),
                );
                r
            }
            ["openapi", "v3"] => json_response(
                200,
                &discovery::openapi_v3_root(&groups, self.core.store().revision()),
            ),
            ["openapi", "v3", rest @ ..] => {
                let (g, v) = match rest {
                    ["api", v] => (String::new(), v.to_string()),
                    ["apis", g, v] => (g.to_string(), v.to_string()),
                    _ => {
                        return Err(SimError::NotFound {
                            resource: String::new(),
                            name: path.to_string(),
                        });
                    }
                };
                let ts = groups
                    .iter()
                    .find(|(x, _)| *x == g)
                    .and_then(|(_, vs)| vs.iter().find(|(x, _)| *x == v))
                    .map(|(_, ts)| ts.clone());
                let Some(ts) = ts else {
                    return Err(SimError::NotFound {
                        resource: String::new(),
                        name: path.to_string(),
                    });
                };
                json_response(
                    200,
                    &discovery::openapi_v3_gv(&g, &v, &ts, &object_meta_schema()),
                )
            }
            ["openapi", "v2"] | ["swagger.json"] => {
                // JSON, or gnostic's protobuf `openapi.v2.Document` for a client that
                // asks for it before JSON (client-go asks for nothing else).
                let accept = headers
                    .get(http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let doc = discovery::openapi_v2(&groups, &object_meta_schema());
                if accept.trim().is_empty() {
                    return Ok(json_response(200, &doc));
                }
                for a in accept.split(',').map(str::trim) {
                    if a.starts_with("application/json")
                        || a.starts_with("*/*")
                        || a.starts_with("application/*")
                    {
                        return Ok(json_response(200, &doc));
                    }
                    if crate::openapi_pb::is_openapi_protobuf(a) {
                        let mut r = Response::new(full(crate::openapi_pb::encode(&doc)));
                        r.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            HeaderValue::from_static(crate::openapi_pb::RESPONSE_MEDIA_TYPE),
                        );
                        return Ok(r);
                    }
                }
                return Err(SimError::NotAcceptable(format!(
                    "/openapi/v2 is served as application/json or {} (asked for {accept:?})",
                    crate::openapi_pb::MEDIA_TYPE
                )));
            }
            [".well-known", "openid-configuration"] => json_response(
                200,
                &json!({
                    "issuer": crate::pki::ISSUER,
                    "jwks_uri": format!("https://{}:{}/openid/v1/jwks", a.api_ip, a.api_port),
                    "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["ES256"]
                }),
            ),
            ["openid", "v1", "jwks"] => json_response(200, &self.core.signer.jwks()),
            _ => {
                return Err(SimError::NotFound {
                    resource: String::new(),
                    name: path.to_string(),
                });
            }
        })
    }

    async fn resource(
        self: Arc<Self>,
        req: Request<Incoming>,
        p: ResourcePath,
        q: Query,
        verb: &str,
        user: &UserInfo,
        request_id: u64,
    ) -> Result<Response<Body>, SimError> {
        let rt = self
            .core
            .resolve(&p.group, &p.version, &p.plural)
            .ok_or_else(|| SimError::NotFound {
                resource: String::new(),
                name: format!(
                    "the server could not find the requested resource ({} {})",
                    p.plural,
                    if p.group.is_empty() {
                        p.version.clone()
                    } else {
                        format!("{}/{}", p.group, p.version)
                    }
                ),
            })?;
        if let Some(sub) = &p.subresource
            && !rt.has_subresource(sub)
        {
            return Err(SimError::NotFound {
                resource: rt.qualified(),
                name: format!("{}/{sub}", p.name.clone().unwrap_or_default()),
            });
        }
        if !rt.namespaced && p.namespace.is_some() {
            return Err(SimError::NotFound {
                resource: rt.qualified(),
                name: p.name.clone().unwrap_or_default(),
            });
        }
        if rt.namespaced
            && p.namespace.is_none()
            && !matches!(verb, "list" | "watch")
            && !(rt.create_only() && rt.plural != "localsubjectaccessreviews")
        {
            return Err(SimError::NotFound {
                resource: rt.qualified(),
                name: p.name.clone().unwrap_or_default(),
            });
        }
        let attrs = Attributes {
            verb: verb.to_string(),
            group: rt.group.clone(),
            resource: rt.plural.clone(),
            subresource: p.subresource.clone().unwrap_or_default(),
            namespace: p.namespace.clone().unwrap_or_default(),
            name: p.name.clone().unwrap_or_default(),
            path: None,
        };
        let is_ws_exec = p.subresource.as_deref() == Some("exec");
        let authorized = if is_ws_exec {
            // Websocket exec arrives as GET: Kubernetes 1.33 authorizes it as `get`,
            // newer releases as `create` (AuthorizePodWebsocketUpgradeCreatePermission).
            // Both are required here, so a chart that works on one but not the other fails.
            let mut create = attrs.clone();
            create.verb = "create".into();
            let mut get = attrs.clone();
            get.verb = "get".into();
            auth::allowed(&self.core, user, &create) && auth::allowed(&self.core, user, &get)
        } else {
            auth::allowed(&self.core, user, &attrs)
        };
        if !authorized {
            let mut shown = attrs.clone();
            if is_ws_exec {
                shown.verb = "create".into();
            }
            return Err(SimError::Forbidden(auth::forbidden_message(user, &shown)));
        }
        let ns = p.namespace.clone().unwrap_or_default();
        let name = p.name.clone().unwrap_or_default();
        let shape = shape_of(req.headers())?;
        let manager_default = user_agent(req.headers())
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let write_opts = |q: &Query| -> Result<WriteOptions, SimError> {
            let explicit = q.get("fieldManager").map(str::to_string);
            Ok(WriteOptions {
                explicit_manager: explicit.is_some(),
                field_manager: explicit.unwrap_or_else(|| manager_default.clone()),
                dry_run: q.get("dryRun") == Some("All"),
                force: q.flag("force"),
                field_validation: match q.get("fieldValidation") {
                    None | Some("") => FieldValidation::Warn,
                    Some("Strict") => FieldValidation::Strict,
                    Some("Warn") => FieldValidation::Warn,
                    Some("Ignore") => FieldValidation::Ignore,
                    Some(other) => {
                        return Err(SimError::BadRequest(format!(
                            "fieldValidation: invalid value {other:?}: must be one of Ignore, Warn, Strict"
                        )));
                    }
                },
            })
        };
        match (rt.plural.as_str(), p.subresource.as_deref(), verb) {
            ("pods", Some("exec"), _) => return self.exec(req, &ns, &name, &q, request_id).await,
            ("pods", Some("log"), "get") => return self.logs(&ns, &name, &q).await,
            ("pods", Some("eviction"), _) => {
                return Err(SimError::NotImplemented("pods/eviction is not simulated: delete the pod instead (PodDisruptionBudgets are stored, not enforced)".into()));
            }
            _ => {}
        }
        let body = if matches!(
            verb,
            "create" | "update" | "patch" | "delete" | "deletecollection"
        ) {
            let content_type = req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            // CBOR is not served; 415 makes client-go fall back to JSON.
            if content_type.contains("cbor") {
                return Err(SimError::UnsupportedMediaType(format!(
                    "the body of the request was in an unknown format ({content_type}) - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf, application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
                )));
            }
            let bytes = req
                .into_body()
                .collect()
                .await
                .map_err(|e| SimError::BadRequest(format!("reading the request body: {e}")))?
                .to_bytes();
            // Protobuf bodies of the kinds client-go writes that way become the JSON the
            // rest of the server reads; any other kind is a 415 naming it.
            if crate::protobuf::is_protobuf(&content_type) {
                let object = crate::protobuf::decode(&bytes)?;
                Some((
                    "application/json".to_string(),
                    Bytes::from(object.to_string()),
                ))
            } else {
                Some((content_type, bytes))
            }
        } else {
            None
        };
        let decode = |b: &Bytes| -> Result<Value, SimError> {
            if b.is_empty() {
                return Ok(json!({}));
            }
            serde_json::from_slice(b).or_else(|_| {
                std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| serde_saphyr::from_str::<Value>(s).ok())
                    .ok_or_else(|| {
                        SimError::BadRequest("the request body is neither JSON nor YAML".into())
                    })
            })
        };
        if rt.group == "rbac.authorization.k8s.io"
            && matches!(verb, "create" | "update" | "patch")
            && !user.is_master()
            && let Some((_, b)) = &body
        {
            let written = decode(b)?;
            let existing = self.core.get_raw(&rt, &ns, &name);
            let name = if name.is_empty() {
                written["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            } else {
                name.clone()
            };
            if let Some(message) = crate::escalation::refused(
                &self.core,
                user,
                &rt.plural,
                &ns,
                &name,
                &written,
                existing.as_deref(),
            ) {
                return Err(SimError::Forbidden(message));
            }
        }
        let written = |w: crate::core::Written| {
            let mut r = json_response(if w.created { 201 } else { 200 }, &w.object);
            for warn in &w.warnings {
                if let Ok(v) =
                    HeaderValue::from_str(&format!("299 - \"{}\"", warn.replace('"', "\\\"")))
                {
                    r.headers_mut().append(http::header::WARNING, v);
                }
            }
            r
        };
        if shape == Shape::Protobuf && verb == "watch" {
            return Err(SimError::NotAcceptable(format!(
                "watch events are not served as protobuf; accept application/json (asked for {:?})",
                crate::protobuf::MEDIA_TYPE
            )));
        }
        let core = self.core.clone();
        let response = match verb {
            "get" => {
                let obj = match p.subresource.as_deref() {
                    Some("scale") => core.get_scale(&rt, &ns, &name)?,
                    _ => core.get(&rt, &ns, &name)?,
                };
                Ok(json_response(200, &self.shape_one(&rt, obj, shape, &q)))
            }
            "list" => {
                let opts = list_options(&rt, &q)?;
                let list = core.list(&rt, p.namespace.as_deref(), &opts)?;
                Ok(json_response(200, &self.shape_list(&rt, list, shape, &q)))
            }
            "watch" => {
                let mut opts = list_options(&rt, &q)?;
                if let Some(n) = &p.name {
                    opts.fields.0.push(crate::selectors::FieldRequirement {
                        field: "metadata.name".into(),
                        value: n.clone(),
                        negated: false,
                    });
                }
                self.watch(rt, p.namespace.clone(), opts, shape, q).await
            }
            "create" => {
                let Some((_, b)) = body else {
                    return Err(SimError::BadRequest("missing body".into()));
                };
                let obj = decode(&b)?;
                match (rt.plural.as_str(), p.subresource.as_deref()) {
                    ("tokenreviews", None) => Ok(json_response(201, &self.token_review(obj))),
                    ("subjectaccessreviews", None)
                    | ("selfsubjectaccessreviews", None)
                    | ("localsubjectaccessreviews", None) => Ok(json_response(
                        201,
                        &self.access_review(&rt, &ns, obj, user)?,
                    )),
                    ("serviceaccounts", Some("token")) => {
                        Ok(json_response(201, &self.token_request(&ns, &name, obj)?))
                    }
                    ("pods", Some("binding")) => {
                        self.bind_pod(&ns, &name, &obj)?;
                        Ok(json_response(
                            201,
                            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                        ))
                    }
                    (_, None) => Ok(written(core.create(&rt, &ns, obj, &write_opts(&q)?)?)),
                    (_, Some(sub)) => Err(SimError::MethodNotAllowed(format!(
                        "create is not supported on {}/{sub}",
                        rt.plural
                    ))),
                }
            }
            "update" => {
                let Some((_, b)) = body else {
                    return Err(SimError::BadRequest("missing body".into()));
                };
                let obj = decode(&b)?;
                if p.subresource.as_deref() == Some("finalize") {
                    return Ok(json_response(200, &self.finalize_namespace(&name, &obj)?));
                }
                let w = core.update(
                    &rt,
                    &ns,
                    &name,
                    obj,
                    p.subresource.as_deref(),
                    &write_opts(&q)?,
                )?;
                if p.subresource.as_deref() == Some("scale") {
                    return Ok(json_response(200, &core.get_scale(&rt, &ns, &name)?));
                }
                Ok(written(w))
            }
            "patch" => {
                let Some((ct, b)) = body else {
                    return Err(SimError::BadRequest("missing body".into()));
                };
                let ptype = match ct.split(';').next().unwrap_or_default().trim() {
                    "application/json-patch+json" => PatchType::Json,
                    "application/merge-patch+json" => PatchType::Merge,
                    "application/strategic-merge-patch+json" => PatchType::Strategic,
                    "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                        PatchType::Apply
                    }
                    other => {
                        return Err(SimError::UnsupportedMediaType(format!(
                            "the body of the request was in an unknown format ({other:?}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
                        )));
                    }
                };
                let w = core.patch(
                    &rt,
                    &ns,
                    &name,
                    ptype,
                    &b,
                    p.subresource.as_deref(),
                    &write_opts(&q)?,
                )?;
                if p.subresource.as_deref() == Some("scale") {
                    return Ok(json_response(200, &core.get_scale(&rt, &ns, &name)?));
                }
                Ok(written(w))
            }
            "delete" => {
                let b = body.map(|(_, b)| b).unwrap_or_default();
                let opts = delete_options(&q, &decode(&b)?)?;
                match core.delete(&rt, &ns, &name, &opts)? {
                    Deleted::Gone(obj) | Deleted::Pending(obj) => Ok(json_response(200, &obj)),
                }
            }
            "deletecollection" => {
                let b = body.map(|(_, b)| b).unwrap_or_default();
                let opts = delete_options(&q, &decode(&b)?)?;
                let list = list_options(&rt, &q)?;
                Ok(json_response(
                    200,
                    &core.delete_collection(&rt, p.namespace.as_deref(), &list, &opts)?,
                ))
            }
            _ => Err(SimError::MethodNotAllowed(format!(
                "the server does not allow this method on the requested resource ({})",
                rt.plural
            ))),
        };
        match shape {
            Shape::Protobuf => protobuf_response(response?).await,
            _ => response,
        }
    }

    fn shape_one(&self, rt: &ResourceType, obj: Value, shape: Shape, q: &Query) -> Value {
        match shape {
            Shape::Object | Shape::Protobuf => obj,
            Shape::Metadata => table::partial_metadata(&obj),
            Shape::Table => {
                let rv = obj["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                table::to_table(
                    rt,
                    &[obj],
                    &rv,
                    include_object(q),
                    self.core.clock.now(),
                    true,
                )
            }
        }
    }

    fn shape_list(&self, rt: &ResourceType, list: Value, shape: Shape, q: &Query) -> Value {
        match shape {
            Shape::Object | Shape::Protobuf => list,
            Shape::Metadata => {
                let items: Vec<Value> = list["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(table::partial_metadata)
                    .collect();
                json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list["metadata"], "items": items})
            }
            Shape::Table => {
                let items: Vec<Value> = list["items"].as_array().cloned().unwrap_or_default();
                let mut t = table::to_table(
                    rt,
                    &items,
                    list["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or_default(),
                    include_object(q),
                    self.core.clock.now(),
                    true,
                );
                if let Some(c) = list["metadata"].get("continue") {
                    t["metadata"]["continue"] = c.clone();
                }
                t
            }
        }
    }

    async fn watch(
        self: Arc<Self>,
        rt: Arc<ResourceType>,
        ns: Option<String>,
        opts: ListOptions,
        shape: Shape,
        q: Query,
    ) -> Result<Response<Body>, SimError> {
        let rv_param = q.get("resourceVersion").unwrap_or("").to_string();
        let send_initial = q.get("sendInitialEvents").map(|v| v == "true");
        let bookmarks = q.flag("allowWatchBookmarks");
        let timeout = q
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(1800));
        if send_initial == Some(true) && q.get("resourceVersionMatch") != Some("NotOlderThan") {
            return Err(SimError::Invalid {
                kind: "ListOptions".into(),
                group: "meta.k8s.io".into(),
                name: String::new(),
                causes: vec![crate::error::Cause::new(
                    "FieldValueInvalid",
                    "resourceVersionMatch",
                    "Invalid value: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                )],
            });
        }
        let exact: Option<u64> = match rv_param.as_str() {
            "" | "0" => None,
            v => Some(
                v.parse()
                    .map_err(|_| SimError::BadRequest(format!("invalid resource version {v:?}")))?,
            ),
        };
        let initial_state = exact.is_none() || send_initial == Some(true);
        let (changes, mut rx, current, initial, gone) = {
            let store = self.core.store();
            let rx = store.subscribe();
            let current = store.revision();
            let (changes, gone) = match exact {
                Some(rv) if !initial_state => match store.changes_since(rv) {
                    Ok(c) => (c, None),
                    Err(e) => (Vec::new(), Some(e)),
                },
                _ => (Vec::new(), None),
            };
            let initial: Vec<Arc<Value>> = if initial_state && send_initial != Some(false) {
                store.list(&rt.storage, ns.as_deref())
            } else {
                Vec::new()
            };
            (changes, rx, current, initial, gone)
        };
        let (tx, body_rx) = mpsc::channel::<Bytes>(256);
        let me = self.clone();
        let mut epoch = self.faults.watch_epoch();
        epoch.borrow_and_update();
        let include = include_object(&q);
        tokio::spawn(async move {
            let frame = |ty: &str, obj: Value| -> Bytes {
                let mut line = json!({"type": ty, "object": obj}).to_string();
                line.push('\n');
                Bytes::from(line)
            };
            let render = |obj: &Value, first: bool| -> Value {
                let v = Core::to_view(&rt, obj);
                match shape {
                    Shape::Object | Shape::Protobuf => v,
                    Shape::Metadata => table::partial_metadata(&v),
                    Shape::Table => {
                        let rv = v["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        table::to_table(&rt, &[v], &rv, include, me.core.clock.now(), first)
                    }
                }
            };
            if let Some(e) = gone {
                let _ = tx.send(frame("ERROR", e.to_status())).await;
                return;
            }
            let mut first = true;
            let mut last_rv = current;
            for o in &initial {
                let view = Core::to_view(&rt, o);
                if opts.labels.matches_object(&view) && opts.fields.matches(&rt.kind, o) {
                    if tx.send(frame("ADDED", render(o, first))).await.is_err() {
                        return;
                    }
                    first = false;
                }
            }
            if send_initial == Some(true) {
                let bm = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": current.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
                if tx.send(frame("BOOKMARK", bm)).await.is_err() {
                    return;
                }
            }
            for c in changes {
                if let Some((ty, obj)) = filter_change(&rt, ns.as_deref(), &opts, &c) {
                    last_rv = c.rv;
                    if tx.send(frame(ty, render(&obj, first))).await.is_err() {
                        return;
                    }
                    first = false;
                }
            }
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let mut tick = tokio::time::interval(me.bookmark_interval);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = &mut deadline => return,
                    _ = epoch.changed() => return,
                    _ = tick.tick(), if bookmarks => {
                        let rv = me.core.store().revision().max(last_rv);
                        let bm = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": rv.to_string()}});
                        if tx.send(frame("BOOKMARK", bm)).await.is_err() { return; }
                    }
                    msg = rx.recv() => match msg {
                        Ok(c) => {
                            if c.rv <= last_rv && c.rv <= current { continue; }
                            if let Some((ty, obj)) = filter_change(&rt, ns.as_deref(), &opts, &c) {
                                last_rv = c.rv;
                                if tx.send(frame(ty, render(&obj, first))).await.is_err() { return; }
                                first = false;
                            }
                        }
                        // A watcher too slow to keep up is closed, as the real cacher does;
                        // the client re-watches from its last resourceVersion.
                        Err(_) => return,
                    },
                }
            }
        });
        let stream = futures::stream::unfold(body_rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
        });
        let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r.headers_mut().insert(
            http::header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        Ok(r)
    }

    fn token_review(&self, obj: Value) -> Value {
        let token = obj["spec"]["token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let audiences: Vec<String> = obj["spec"]["audiences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        let mut spec = obj["spec"].clone();
        // The token is not echoed back: it never needs to travel twice.
        if let Value::Object(m) = &mut spec {
            m.remove("token");
        }
        let status = match auth::authenticate_jwt(&self.core, &token, &audiences) {
            Ok(u) => {
                let auds = if audiences.is_empty() {
                    vec![crate::pki::ISSUER.to_string()]
                } else {
                    audiences
                };
                json!({"authenticated": true, "user": u.to_json(), "audiences": auds})
            }
            Err(auth::TokenRejected(why)) => {
                json!({"authenticated": false, "user": {}, "error": why})
            }
        };
        json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {"creationTimestamp": null}, "spec": spec, "status": status})
    }

    fn access_review(
        &self,
        rt: &ResourceType,
        ns: &str,
        obj: Value,
        requester: &UserInfo,
    ) -> Result<Value, SimError> {
        let spec = &obj["spec"];
        let subject = if rt.plural == "selfsubjectaccessreviews" {
            requester.clone()
        } else {
            let user = spec["user"].as_str().unwrap_or_default().to_string();
            let groups: Vec<String> = spec["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect();
            if user.is_empty() && groups.is_empty() {
                return Err(SimError::Invalid {
                    kind: rt.kind.clone(),
                    group: rt.group.clone(),
                    name: String::new(),
                    causes: vec![crate::error::Cause::new(
                        "FieldValueRequired",
                        "spec.user",
                        "Invalid value: \"\": at least one of user or group must be specified",
                    )],
                });
            }
            UserInfo {
                username: user,
                uid: spec["uid"].as_str().unwrap_or_default().to_string(),
                groups,
                extra: Default::default(),
            }
        };
        let a = if let Some(ra) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
            Attributes {
                verb: ra["verb"].as_str().unwrap_or_default().to_string(),
                group: ra["group"].as_str().unwrap_or_default().to_string(),
                resource: ra["resource"].as_str().unwrap_or_default().to_string(),
                subresource: ra["subresource"].as_str().unwrap_or_default().to_string(),
                namespace: if rt.plural == "localsubjectaccessreviews" {
                    ns.to_string()
                } else {
                    ra["namespace"].as_str().unwrap_or_default().to_string()
                },
                name: ra["name"].as_str().unwrap_or_default().to_string(),
                path: None,
            }
        } else {
            let nra = &spec["nonResourceAttributes"];
            Attributes {
                verb: nra["verb"].as_str().unwrap_or_default().to_string(),
                path: Some(nra["path"].as_str().unwrap_or_default().to_string()),
                ..Default::default()
            }
        };
        let allowed = auth::allowed(&self.core, &subject, &a);
        let mut out = obj.clone();
        out["apiVersion"] = json!(rt.api_version());
        out["kind"] = json!(rt.kind);
        out["metadata"] = json!({"creationTimestamp": null});
        out["status"] = if allowed {
            json!({"allowed": true, "reason": "RBAC: allowed by a binding"})
        } else {
            json!({"allowed": false})
        };
        Ok(out)
    }

    fn token_request(&self, ns: &str, sa_name: &str, obj: Value) -> Result<Value, SimError> {
        let sa_t = self.core.core_type("serviceaccounts")?;
        let sa = self.core.get(&sa_t, ns, sa_name)?;
        let spec = &obj["spec"];
        let audiences: Vec<String> = spec["audiences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        let exp = spec["expirationSeconds"]
            .as_i64()
            .unwrap_or(auth::DEFAULT_TOKEN_SECONDS);
        if exp < 600 {
            return Err(SimError::Invalid {
                kind: "TokenRequest".into(),
                group: "authentication.k8s.io".into(),
                name: sa_name.to_string(),
                causes: vec![crate::error::Cause::new(
                    "FieldValueInvalid",
                    "spec.expirationSeconds",
                    "Invalid value: may not specify a duration less than 10 minutes",
                )],
            });
        }
        let pod = match spec["boundObjectRef"]["kind"].as_str() {
            Some("Pod") => {
                let pod_t = self.core.core_type("pods")?;
                let pname = spec["boundObjectRef"]["name"].as_str().unwrap_or_default();
                let pod = self.core.get(&pod_t, ns, pname)?;
                if let Some(uid) = spec["boundObjectRef"]["uid"].as_str()
                    && pod["metadata"]["uid"] != uid
                {
                    return Err(SimError::Conflict {
                        resource: "pods".into(),
                        name: pname.to_string(),
                        message: format!(
                            "the UID in the bound object reference ({uid}) does not match the UID in record"
                        ),
                        causes: Vec::new(),
                    });
                }
                Some(pod)
            }
            Some(other) if !other.is_empty() => {
                return Err(SimError::NotImplemented(format!(
                    "tokens bound to a {other} are not simulated (Pod only)"
                )));
            }
            _ => None,
        };
        let (token, expiry) =
            auth::issue_token(&self.core, ns, &sa, &audiences, exp, pod.as_ref())?;
        Ok(json!({
            "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": sa_name, "namespace": ns, "creationTimestamp": null},
            "spec": {"audiences": if audiences.is_empty() { vec![crate::pki::ISSUER.to_string()] } else { audiences }, "expirationSeconds": exp, "boundObjectRef": spec["boundObjectRef"]},
            "status": {"token": token.expose_secret(), "expirationTimestamp": expiry},
        }))
    }

    /// `pods/binding`: what the scheduler posts to place a pod on a node.
    pub fn bind_pod(&self, ns: &str, name: &str, binding: &Value) -> Result<(), SimError> {
        let pod_t = self.core.core_type("pods")?;
        let pod = self.core.get(&pod_t, ns, name)?;
        let node = binding["target"]["name"].as_str().unwrap_or_default();
        if let Some(existing) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            return Err(SimError::Conflict {
                resource: "pods".into(),
                name: name.to_string(),
                message: format!(
                    "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{existing}\""
                ),
                causes: Vec::new(),
            });
        }
        let patch = json!({"spec": {"nodeName": node}});
        let opts = WriteOptions {
            field_manager: "kube-scheduler".into(),
            ..Default::default()
        };
        self.core.patch(
            &pod_t,
            ns,
            name,
            PatchType::Merge,
            patch.to_string().as_bytes(),
            None,
            &opts,
        )?;
        let now = self.core.clock.now_rfc3339();
        let status = json!({"status": {"conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}]}});
        self.core.patch(
            &pod_t,
            ns,
            name,
            PatchType::Strategic,
            status.to_string().as_bytes(),
            Some("status"),
            &opts,
        )?;
        Ok(())
    }

    fn finalize_namespace(&self, name: &str, obj: &Value) -> Result<Value, SimError> {
        let ns_t = self.core.core_type("namespaces")?;
        let current = self.core.get(&ns_t, "", name)?;
        let mut new = current.clone();
        new["spec"]["finalizers"] = obj["spec"]["finalizers"].clone();
        if new["spec"]["finalizers"].is_null() {
            new["spec"]["finalizers"] = json!([]);
        }
        self.core.finalize_namespace(new)
    }

    async fn logs(&self, ns: &str, name: &str, q: &Query) -> Result<Response<Body>, SimError> {
        let pod_t = self.core.core_type("pods")?;
        let pod = self.core.get(&pod_t, ns, name)?;
        let container = container_for(&pod, q.get("container"))?;
        let io = self.pod_io()?;
        let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
        let stream = io
            .logs(LogRequest {
                namespace: ns.to_string(),
                pod: name.to_string(),
                container,
                follow: q.flag("follow"),
                previous: q.flag("previous"),
                timestamps: q.flag("timestamps"),
                tail_lines: num("tailLines"),
                since_seconds: num("sinceSeconds"),
                limit_bytes: num("limitBytes"),
            })
            .await?;
        // Forwarded through a channel: the response body must be Sync, the log stream is not.
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        tokio::spawn(async move {
            let mut stream = stream;
            while let Some(b) = stream.next().await {
                if tx.send(b).await.is_err() {
                    break;
                }
            }
        });
        let chunks = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
        });
        let body = BodyExt::boxed(StreamBody::new(chunks));
        let mut r = Response::new(body);
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        Ok(r)
    }

    async fn exec(
        &self,
        mut req: Request<Incoming>,
        ns: &str,
        name: &str,
        q: &Query,
        request_id: u64,
    ) -> Result<Response<Body>, SimError> {
        let headers = req.headers();
        let is_ws = headers
            .get(http::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        if !is_ws {
            return Err(SimError::NotImplemented(
                "pods/exec over SPDY is not simulated: use the websocket protocol (v5.channel.k8s.io or v4.channel.k8s.io), which kubectl 1.31+ and kube::Client speak".into(),
            ));
        }
        let offered: Vec<String> = headers
            .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
            .collect();
        let protocol = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
            .into_iter()
            .find(|p| offered.iter().any(|o| o == p))
            .ok_or_else(|| SimError::BadRequest(format!("unsupported websocket subprotocols {offered:?}: this server speaks v5.channel.k8s.io and v4.channel.k8s.io")))?;
        let key = headers
            .get(http::header::SEC_WEBSOCKET_KEY)
            .ok_or_else(|| SimError::BadRequest("missing Sec-WebSocket-Key".into()))?
            .as_bytes()
            .to_vec();
        let pod_t = self.core.core_type("pods")?;
        let pod = self.core.get(&pod_t, ns, name)?;
        let container = container_for(&pod, q.get("container"))?;
        let command = q.all("command");
        if command.is_empty() {
            return Err(SimError::BadRequest(
                "you must specify at least 1 command".into(),
            ));
        }
        let stdin = q.flag("stdin");
        let tty = q.flag("tty");
        let io = self.pod_io()?;
        let answer_fault = self.faults.exec_answer_for(name, &command);
        let streams = io
            .exec(ExecRequest {
                namespace: ns.to_string(),
                pod: name.to_string(),
                container,
                command,
                stdin,
                tty,
            })
            .await?;
        let streams = match answer_fault {
            Some(fault) => crate::podio::with_answer_fault(streams, fault),
            None => streams,
        };
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
        let upgrade = hyper::upgrade::on(&mut req);
        let v5 = protocol.starts_with("v5");
        let log = self.log.clone();
        tokio::spawn(async move {
            // The session's end is when the exec was done (see `requests`).
            struct Finished(Arc<RequestLog>, u64);
            impl Drop for Finished {
                fn drop(&mut self) {
                    self.0.finish(self.1, std::time::Instant::now());
                }
            }
            let _finished = Finished(log, request_id);
            let Ok(upgraded) = upgrade.await else { return };
            let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                hyper_util::rt::TokioIo::new(upgraded),
                tokio_tungstenite::tungstenite::protocol::Role::Server,
                None,
            )
            .await;
            relay_exec(ws, streams, v5).await;
        });
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = r.headers_mut();
        h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("Upgrade"),
        );
        if let Ok(v) = HeaderValue::from_str(&accept) {
            h.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
        }
        h.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(protocol),
        );
        Ok(r)
    }
}

fn container_for(pod: &Value, requested: Option<&str>) -> Result<String, SimError> {
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    match requested.filter(|c| !c.is_empty()) {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(SimError::BadRequest(format!(
            "container {c} is not valid for pod {}",
            pod["metadata"]["name"].as_str().unwrap_or_default()
        ))),
        None => names
            .first()
            .map(|s| s.to_string())
            .ok_or_else(|| SimError::BadRequest("the pod has no containers".into())),
    }
}

/// Relays an exec between the websocket and the process, in the channel protocol:
/// byte 0 of each binary message is the stream (0 stdin, 1 stdout, 2 stderr, 3 error
/// status, 4 resize); v5 adds `[255, n]` to close stream n.
async fn relay_exec<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    streams: crate::podio::ExecStreams,
    v5: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tokio_tungstenite::tungstenite::Message;
    let (mut sink, mut source) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let crate::podio::ExecStreams {
        stdin,
        mut stdout,
        mut stderr,
        exit,
    } = streams;
    let pump = |mut r: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
                ch: u8,
                tx: mpsc::Sender<Message>| async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut m = Vec::with_capacity(n + 1);
                    m.push(ch);
                    m.extend_from_slice(&buf[..n]);
                    if tx.send(Message::Binary(m.into())).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let out_task = tokio::spawn(pump(
        std::mem::replace(&mut stdout, Box::pin(tokio::io::empty())),
        1,
        out_tx.clone(),
    ));
    let err_task = tokio::spawn(pump(
        std::mem::replace(&mut stderr, Box::pin(tokio::io::empty())),
        2,
        out_tx.clone(),
    ));
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let reader = tokio::spawn(async move {
        let mut stdin = stdin;
        while let Some(Ok(msg)) = source.next().await {
            let data = match msg {
                Message::Binary(b) => b.to_vec(),
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Close(_) => break,
                _ => continue,
            };
            match data.first() {
                Some(0) => {
                    if let Some(s) = stdin.as_mut()
                        && s.write_all(&data[1..]).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Some(255) if v5 && data.get(1) == Some(&0) => {
                    if let Some(mut s) = stdin.take() {
                        let _ = s.shutdown().await;
                    }
                }
                _ => {}
            }
        }
        if let Some(mut s) = stdin.take() {
            let _ = s.shutdown().await;
        }
    });
    let code = exit.await;
    let _ = out_task.await;
    let _ = err_task.await;
    let status = match code {
        ExecExit::Code(0) => json!({"metadata": {}, "status": "Success"}),
        ExecExit::Code(c) => {
            json!({"metadata": {}, "status": "Failure", "message": format!("command terminated with non-zero exit code: exit status {c}"), "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": c.to_string()}]}})
        }
        ExecExit::Signal(s) => {
            json!({"metadata": {}, "status": "Failure", "message": format!("command terminated by signal {s}"), "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": (128 + s).to_string()}]}})
        }
    };
    let mut m = vec![3u8];
    m.extend_from_slice(status.to_string().as_bytes());
    let _ = out_tx.send(Message::Binary(m.into())).await;
    // A normal close (1000): kubectl treats a close without a status code as an error.
    let _ = out_tx
        .send(Message::Close(Some(
            tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
                reason: "".into(),
            },
        )))
        .await;
    drop(out_tx);
    let _ = writer.await;
    reader.abort();
}

fn include_object(q: &Query) -> IncludeObject {
    match q.get("includeObject") {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    }
}

fn list_options(rt: &ResourceType, q: &Query) -> Result<ListOptions, SimError> {
    let kind = if rt.custom().is_some() {
        ""
    } else {
        rt.kind.as_str()
    };
    Ok(ListOptions {
        labels: LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?,
        fields: FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), kind)?,
        limit: q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0),
        continue_token: q
            .get("continue")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
        resource_version: q.get("resourceVersion").map(str::to_string),
        resource_version_match: q.get("resourceVersionMatch").map(str::to_string),
    })
}

fn delete_options(q: &Query, body: &Value) -> Result<DeleteOptions, SimError> {
    let mut propagation = body["propagationPolicy"]
        .as_str()
        .or(q.get("propagationPolicy"))
        .map(str::to_string);
    if propagation.is_none()
        && let Some(orphan) = body["orphanDependents"]
            .as_bool()
            .or(q.get("orphanDependents").map(|v| v == "true"))
    {
        propagation = Some(if orphan { "Orphan" } else { "Background" }.to_string());
    }
    let grace = body["gracePeriodSeconds"]
        .as_i64()
        .or_else(|| q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()));
    if grace.is_some_and(|g| g < 0) {
        return Err(SimError::BadRequest(
            "gracePeriodSeconds must be non-negative".into(),
        ));
    }
    let dry = body["dryRun"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "All"))
        || q.get("dryRun") == Some("All");
    Ok(DeleteOptions {
        grace_period: grace,
        propagation,
        precondition_uid: body["preconditions"]["uid"].as_str().map(str::to_string),
        precondition_rv: body["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
        dry_run: dry,
    })
}

/// Maps a stored change onto the event a watcher with these selectors sees: an object
/// moving into the selection is ADDED, out of it DELETED (watch semantics of the cacher).
fn filter_change(
    rt: &ResourceType,
    ns: Option<&str>,
    opts: &ListOptions,
    c: &Change,
) -> Option<(&'static str, Value)> {
    if c.storage != rt.storage {
        return None;
    }
    if let Some(ns) = ns
        && rt.namespaced
        && c.namespace != ns
    {
        return None;
    }
    let matches = |o: &Value| {
        let view = Core::to_view(rt, o);
        opts.labels.matches_object(&view) && opts.fields.matches(&rt.kind, o)
    };
    let new_match = matches(&c.object);
    let old_match = c.old.as_ref().is_some_and(|o| matches(o));
    match c.kind {
        EventType::Added => new_match.then(|| ("ADDED", (*c.object).clone())),
        EventType::Deleted => old_match.then(|| ("DELETED", (*c.object).clone())),
        EventType::Modified => match (old_match, new_match) {
            (true, true) => Some(("MODIFIED", (*c.object).clone())),
            (false, true) => Some(("ADDED", (*c.object).clone())),
            (true, false) => Some(("DELETED", (*c.object).clone())),
            (false, false) => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_layout_table() {
        let r = |p: &str| match parse_path(p) {
            Route::Resource(r) => r,
            Route::NonResource(_) => panic!("{p} is a resource path"),
        };
        let p = r("/api/v1/namespaces/vault/pods/vault-0/exec");
        assert_eq!(
            (
                p.namespace.as_deref(),
                p.plural.as_str(),
                p.name.as_deref(),
                p.subresource.as_deref()
            ),
            (Some("vault"), "pods", Some("vault-0"), Some("exec"))
        );
        let p = r("/api/v1/namespaces/vault");
        assert_eq!(
            (p.namespace, p.plural.as_str(), p.name.as_deref()),
            (None, "namespaces", Some("vault"))
        );
        let p = r("/api/v1/namespaces/vault/finalize");
        assert_eq!(
            (
                p.plural.as_str(),
                p.name.as_deref(),
                p.subresource.as_deref()
            ),
            ("namespaces", Some("vault"), Some("finalize"))
        );
        let p = r("/apis/apps/v1/statefulsets");
        assert_eq!(
            (p.group.as_str(), p.plural.as_str(), p.name),
            ("apps", "statefulsets", None)
        );
        let p = r("/api/v1/watch/namespaces/a/pods");
        assert!(p.legacy_watch);
        assert_eq!(parse_path("/apis"), Route::NonResource("/apis".into()));
        assert_eq!(
            parse_path("/apis/apps/v1"),
            Route::NonResource("/apis/apps/v1".into())
        );
    }
}
