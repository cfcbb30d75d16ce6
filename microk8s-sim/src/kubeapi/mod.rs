//! A minimal Kubernetes API server on port 16443 of each running control plane (plain HTTP).
//!
//! Serves what muster (kube-rs) and Debian's kubectl 1.20 use, from this control plane's
//! replica: discovery (`/api`, `/apis`, `/api/v1`, `/version`), nodes (list, get, patch,
//! replace, delete), namespaces (list, get, create) and ConfigMaps (list, get, create, replace,
//! patch, delete), with `Table` answers for kubectl, label/field selectors on lists, merge and
//! strategic-merge patches (server-side apply is treated as a merge), resourceVersion
//! conflicts and `Status` errors. Writes go through `Daemon::write`, so a cluster without voter
//! quorum answers them with a 504 Timeout while reads keep working. No watches, no auth.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::daemon::{Daemon, now_ms};
use crate::nodes::{self, NODE_COLUMNS, human_duration, rfc3339, status_failure};
use crate::ops::node_objects;
use crate::replica::{ClusterState, random_uid};
use crate::state_dir::DEFAULT_VERSION;

mod objects;

type Params = Query<HashMap<String, String>>;

const BUILTIN_NAMESPACES: [&str; 4] = ["default", "kube-node-lease", "kube-public", "kube-system"];

fn reply(code: u16, v: Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(v)).into_response()
}

fn not_found(kind: &str, name: &str) -> Response {
    reply(
        404,
        status_failure(
            404,
            "NotFound",
            &format!("{kind} \"{name}\" not found"),
            Some((kind, name)),
        ),
    )
}

fn timeout() -> Response {
    reply(
        504,
        status_failure(
            504,
            "Timeout",
            "Timeout: request did not complete within requested timeout - context deadline exceeded",
            None,
        ),
    )
}

fn bad_request(msg: &str) -> Response {
    reply(400, status_failure(400, "BadRequest", msg, None))
}

/// The API server's routes.
pub fn router(d: Arc<Daemon>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/api", get(api_versions))
        .route(
            "/apis",
            get(|| async {
                axum::Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}))
            }),
        )
        .route("/api/v1", get(resources))
        .route("/api/v1/nodes", get(list_nodes))
        .route(
            "/api/v1/nodes/{name}",
            get(get_node)
                .patch(patch_node)
                .put(put_node)
                .delete(delete_node),
        )
        .route(
            "/api/v1/namespaces",
            get(objects::list_namespaces).post(objects::create_namespace),
        )
        .route("/api/v1/namespaces/{ns}", get(objects::get_namespace))
        .route("/api/v1/configmaps", get(objects::list_all_configmaps))
        .route(
            "/api/v1/namespaces/{ns}/configmaps",
            get(objects::list_configmaps).post(objects::create_configmap),
        )
        .route(
            "/api/v1/namespaces/{ns}/configmaps/{name}",
            get(objects::get_configmap)
                .put(objects::put_configmap)
                .patch(objects::patch_configmap)
                .delete(objects::delete_configmap),
        )
        .fallback(|| async {
            reply(
                404,
                status_failure(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                    None,
                ),
            )
        })
        .with_state(d)
}

async fn version() -> axum::Json<Value> {
    let minor = DEFAULT_VERSION.split('.').nth(1).unwrap_or("32");
    axum::Json(json!({
        "major": "1", "minor": minor, "gitVersion": DEFAULT_VERSION, "gitCommit": "",
        "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.6",
        "compiler": "gc", "platform": "linux/amd64",
    }))
}

async fn api_versions(State(d): State<Arc<Daemon>>) -> axum::Json<Value> {
    axum::Json(json!({
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": format!("{}:16443", d.host.default_ip())}],
    }))
}

async fn resources() -> axum::Json<Value> {
    let verbs_all = json!(["create", "delete", "get", "list", "patch", "update"]);
    axum::Json(json!({
        "kind": "APIResourceList", "groupVersion": "v1",
        "resources": [
            {"name": "configmaps", "singularName": "configmap", "namespaced": true, "kind": "ConfigMap", "verbs": verbs_all, "shortNames": ["cm"]},
            {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace", "verbs": ["create", "get", "list"], "shortNames": ["ns"]},
            {"name": "nodes", "singularName": "node", "namespaced": false, "kind": "Node", "verbs": ["delete", "get", "list", "patch", "update"], "shortNames": ["no"]},
        ],
    }))
}

fn wants_table(h: &HeaderMap) -> bool {
    h.get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

/// Label selector terms: `k=v`, `k==v`, `k!=v`, `k`, `!k`.
fn labels_match(selector: &str, labels: &Value) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            let get = |k: &str| labels.get(k.trim()).and_then(Value::as_str);
            if let Some((k, v)) = term.split_once("!=") {
                get(k) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                get(k) == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                get(k).is_none()
            } else {
                get(term).is_some()
            }
        })
}

fn selected(p: &HashMap<String, String>, obj: &Value) -> bool {
    let labels_ok = p
        .get("labelSelector")
        .is_none_or(|s| labels_match(s, &obj["metadata"]["labels"]));
    let fields_ok = p.get("fieldSelector").is_none_or(|s| {
        s.split(',').all(|t| match t.split_once("!=") {
            Some((_, v)) if t.starts_with("metadata.name") => obj["metadata"]["name"] != v,
            _ => match t.split_once('=') {
                Some((k, v)) if k.trim_end_matches('=') == "metadata.name" => {
                    obj["metadata"]["name"] == v.trim_start_matches('=')
                }
                Some((k, v)) if k.trim_end_matches('=') == "metadata.namespace" => {
                    obj["metadata"]["namespace"] == v.trim_start_matches('=')
                }
                _ => true,
            },
        })
    });
    labels_ok && fields_ok
}

fn list(kind: &str, rv: u64, items: Vec<Value>) -> Value {
    let items: Vec<Value> = items
        .into_iter()
        .map(|mut v| {
            if let Some(m) = v.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            v
        })
        .collect();
    json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": rv.to_string()}, "items": items})
}

fn table(
    columns: &[(&str, &str, u8)],
    rows: Vec<(Vec<Value>, Value)>,
    include_object: bool,
    rv: u64,
) -> Value {
    let defs: Vec<Value> = columns
        .iter()
        .map(|(name, ty, prio)| {
            let format = if *name == "Name" { "name" } else { "" };
            json!({"name": name, "type": ty, "format": format, "description": "", "priority": prio})
        })
        .collect();
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|(cells, obj)| {
            let object = if include_object {
                obj
            } else {
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"].clone()})
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv.to_string()}, "columnDefinitions": defs, "rows": rows})
}

fn rv_of(d: &Daemon) -> u64 {
    d.lock().cluster.as_ref().map_or(0, |c| c.resource_version)
}

fn node_answer(
    h: &HeaderMap,
    p: &HashMap<String, String>,
    picked: Vec<(Value, Vec<String>)>,
    rv: u64,
    single: bool,
) -> Response {
    if wants_table(h) {
        let cols: Vec<(&str, &str, u8)> = NODE_COLUMNS
            .iter()
            .enumerate()
            .map(|(i, c)| (*c, "string", u8::from(i >= 5)))
            .collect();
        let rows = picked
            .into_iter()
            .map(|(obj, cells)| (cells.into_iter().map(Value::String).collect(), obj))
            .collect();
        let include = p.get("includeObject").is_some_and(|v| v == "Object");
        return axum::Json(table(&cols, rows, include, rv)).into_response();
    }
    if single {
        return match picked.into_iter().next() {
            Some((obj, _)) => axum::Json(obj).into_response(),
            None => not_found("nodes", ""),
        };
    }
    axum::Json(list(
        "NodeList",
        rv,
        picked.into_iter().map(|(o, _)| o).collect(),
    ))
    .into_response()
}

fn watch_refused(p: &HashMap<String, String>) -> Option<Response> {
    p.get("watch")
        .filter(|w| *w == "true" || *w == "1")
        .map(|_| bad_request("watch is not supported by the muster microk8s simulator"))
}

async fn list_nodes(State(d): State<Arc<Daemon>>, h: HeaderMap, Query(p): Params) -> Response {
    if let Some(r) = watch_refused(&p) {
        return r;
    }
    let picked: Vec<_> = node_objects(&d)
        .into_iter()
        .filter(|(o, _)| selected(&p, o))
        .collect();
    node_answer(&h, &p, picked, rv_of(&d), false)
}

async fn get_node(
    State(d): State<Arc<Daemon>>,
    h: HeaderMap,
    Query(p): Params,
    Path(name): Path<String>,
) -> Response {
    let picked: Vec<_> = node_objects(&d)
        .into_iter()
        .filter(|(o, _)| o["metadata"]["name"] == name.as_str())
        .collect();
    if picked.is_empty() {
        return not_found("nodes", &name);
    }
    node_answer(&h, &p, picked, rv_of(&d), true)
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Some(t) = target.as_object_mut() {
        for (k, v) in p {
            if k.starts_with("$") {
                continue; // strategic-merge directives
            }
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn parse_body(h: &HeaderMap, body: &[u8]) -> Result<(Value, bool), Box<Response>> {
    let ct = h
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if ct.starts_with("application/json-patch+json") {
        return Err(Box::new(reply(
            415,
            status_failure(
                415,
                "UnsupportedMediaType",
                "json-patch is not supported by the muster microk8s simulator; use a merge patch",
                None,
            ),
        )));
    }
    let apply = ct.starts_with("application/apply-patch+yaml");
    let v = if apply {
        serde_yaml::from_slice::<Value>(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<Value>(body).map_err(|e| e.to_string())
    };
    v.map(|v| (v, apply))
        .map_err(|e| Box::new(bad_request(&format!("error decoding patch: {e}"))))
}

/// A JSON request body; protobuf (what typed client-go clients send) is refused with 415.
fn json_body(h: &HeaderMap, body: &[u8]) -> Result<Value, Box<Response>> {
    let ct = h
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if ct.contains("protobuf") {
        return Err(Box::new(reply(
            415,
            status_failure(
                415,
                "UnsupportedMediaType",
                "the muster microk8s simulator only accepts JSON bodies",
                None,
            ),
        )));
    }
    serde_json::from_slice(body)
        .map_err(|e| Box::new(bad_request(&format!("error decoding body: {e}"))))
}

fn string_map(v: &Value) -> std::collections::BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Applies `update` (the node as an object) to a node's labels, annotations and
/// `spec.unschedulable`, the only fields the simulation keeps.
fn update_node(
    d: &Arc<Daemon>,
    name: &str,
    update: impl FnOnce(&mut Value) + Send + 'static,
    h: HeaderMap,
    p: HashMap<String, String>,
) -> Response {
    let name_owned = name.to_owned();
    let now = now_ms();
    let result = d.write(move |c, _, _| {
        let rv = c.next_rv();
        let node = c.nodes.get_mut(&name_owned)?;
        let mut obj = nodes::node_object(node, super::replica::Readiness::Ready, now);
        update(&mut obj);
        node.labels = string_map(&obj["metadata"]["labels"]);
        node.annotations = string_map(&obj["metadata"]["annotations"]);
        node.annotations.remove("node.alpha.kubernetes.io/ttl");
        node.annotations
            .remove("volumes.kubernetes.io/controller-managed-attach-detach");
        node.unschedulable = obj["spec"]["unschedulable"].as_bool().unwrap_or(false);
        node.resource_version = rv;
        Some(())
    });
    match result {
        Err(_) => timeout(),
        Ok(None) => not_found("nodes", name),
        Ok(Some(())) => {
            let picked: Vec<_> = node_objects(d)
                .into_iter()
                .filter(|(o, _)| o["metadata"]["name"] == name)
                .collect();
            node_answer(&h, &p, picked, rv_of(d), true)
        }
    }
}

async fn patch_node(
    State(d): State<Arc<Daemon>>,
    h: HeaderMap,
    Query(p): Params,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let (patch, _) = match parse_body(&h, &body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    update_node(&d, &name, move |obj| merge_patch(obj, &patch), h, p)
}

async fn put_node(
    State(d): State<Arc<Daemon>>,
    h: HeaderMap,
    Query(p): Params,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let new = match json_body(&h, &body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    update_node(
        &d,
        &name,
        move |obj| {
            obj["metadata"]["labels"] = new["metadata"]["labels"].clone();
            obj["metadata"]["annotations"] = new["metadata"]["annotations"].clone();
            obj["spec"] = new["spec"].clone();
        },
        h,
        p,
    )
}

fn deleted(kind: &str, name: &str, uid: &str) -> Response {
    axum::Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": {"name": name, "kind": kind, "uid": uid}})).into_response()
}

async fn delete_node(State(d): State<Arc<Daemon>>, Path(name): Path<String>) -> Response {
    let n = name.clone();
    match d.write(move |c, _, _| c.nodes.remove(&n)) {
        Err(_) => timeout(),
        Ok(None) => not_found("nodes", &name),
        Ok(Some(rec)) => deleted("nodes", &name, &rec.uid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
    }

    #[test]
    fn label_selectors_support_equality_inequality_and_existence() {
        let l = json!({"a": "1", "b": "2"});
        assert!(labels_match("a=1,b", &l));
        assert!(labels_match("a==1,!c", &l));
        assert!(!labels_match("a!=1", &l));
        assert!(!labels_match("c", &l));
    }
}
