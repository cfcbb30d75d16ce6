//! Namespaces and ConfigMaps of the simulated API server: list, get, create, replace, patch
//! and delete, stored as JSON objects in the replicated cluster state. Routing, discovery,
//! nodes and the shared helpers are in the parent module.

use super::*;

fn namespace_objects(c: &ClusterState) -> Vec<Value> {
    // Built-in namespaces are as old as the oldest node (the cluster's creation).
    let born = c.nodes.values().map(|n| n.created_ms).min().unwrap_or(0);
    let mut all: Vec<Value> = BUILTIN_NAMESPACES
        .iter()
        .filter(|n| !c.namespaces.contains_key(**n))
        .map(|n| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "creationTimestamp": rfc3339(born), "x-created-ms": born, "uid": format!("ns-{n}"), "resourceVersion": "1", "labels": {"kubernetes.io/metadata.name": n}}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}))
        .collect();
    all.extend(c.namespaces.values().cloned());
    all.sort_by(|a, b| {
        a["metadata"]["name"]
            .as_str()
            .cmp(&b["metadata"]["name"].as_str())
    });
    all
}

fn snapshot(d: &Daemon) -> Option<ClusterState> {
    d.lock().cluster.clone()
}

fn age_cell(obj: &Value) -> Value {
    Value::String(match obj["metadata"]["x-created-ms"].as_u64() {
        Some(ms) => human_duration(now_ms() as i64 - ms as i64),
        None => "<unknown>".to_owned(),
    })
}

fn strip_private(mut v: Value) -> Value {
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("x-created-ms");
    }
    v
}

fn objects_answer(
    h: &HeaderMap,
    p: &HashMap<String, String>,
    kind: &str,
    objs: Vec<Value>,
    rv: u64,
    cells: fn(&Value) -> Vec<Value>,
    cols: &[(&str, &str, u8)],
) -> Response {
    let objs: Vec<Value> = objs.into_iter().filter(|o| selected(p, o)).collect();
    if wants_table(h) {
        let include = p.get("includeObject").is_some_and(|v| v == "Object");
        let rows = objs
            .into_iter()
            .map(|o| (cells(&o), strip_private(o)))
            .collect();
        return axum::Json(table(cols, rows, include, rv)).into_response();
    }
    axum::Json(list(
        kind,
        rv,
        objs.into_iter().map(strip_private).collect(),
    ))
    .into_response()
}

fn ns_cells(o: &Value) -> Vec<Value> {
    vec![o["metadata"]["name"].clone(), json!("Active"), age_cell(o)]
}

fn cm_cells(o: &Value) -> Vec<Value> {
    let n = o["data"].as_object().map_or(0, |m| m.len())
        + o["binaryData"].as_object().map_or(0, |m| m.len());
    vec![o["metadata"]["name"].clone(), json!(n), age_cell(o)]
}

const NS_COLS: [(&str, &str, u8); 3] = [
    ("Name", "string", 0),
    ("Status", "string", 0),
    ("Age", "string", 0),
];
const CM_COLS: [(&str, &str, u8); 3] = [
    ("Name", "string", 0),
    ("Data", "string", 0),
    ("Age", "string", 0),
];

pub(super) async fn list_namespaces(
    State(d): State<Arc<Daemon>>,
    h: HeaderMap,
    Query(p): Params,
) -> Response {
    if let Some(r) = watch_refused(&p) {
        return r;
    }
    let Some(c) = snapshot(&d) else {
        return timeout();
    };
    objects_answer(
        &h,
        &p,
        "NamespaceList",
        namespace_objects(&c),
        c.resource_version,
        ns_cells,
        &NS_COLS,
    )
}

pub(super) async fn get_namespace(
    State(d): State<Arc<Daemon>>,
    h: HeaderMap,
    Query(p): Params,
    Path(ns): Path<String>,
) -> Response {
    let Some(c) = snapshot(&d) else {
        return timeout();
    };
    match namespace_objects(&c)
        .into_iter()
        .find(|o| o["metadata"]["name"] == ns.as_str())
    {
        Some(o) if wants_table(&h) => objects_answer(
            &h,
            &p,
            "NamespaceList",
            vec![o],
            c.resource_version,
            ns_cells,
            &NS_COLS,
        ),
        Some(o) => axum::Json(strip_private(o)).into_response(),
        None => not_found("namespaces", &ns),
    }
}

fn stamp(
    obj: &mut Value,
    (kind, name, ns): (&str, &str, Option<&str>),
    c: &mut ClusterState,
    rng: &mut rand::rngs::StdRng,
    now: u64,
    old: Option<&Value>,
) {
    let rv = c.next_rv();
    obj["apiVersion"] = json!("v1");
    obj["kind"] = json!(kind);
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    let m = &mut obj["metadata"];
    m["name"] = json!(name);
    if let Some(ns) = ns {
        m["namespace"] = json!(ns);
    }
    m["resourceVersion"] = json!(rv.to_string());
    match old {
        Some(old) => {
            m["uid"] = old["metadata"]["uid"].clone();
            m["creationTimestamp"] = old["metadata"]["creationTimestamp"].clone();
            m["x-created-ms"] = old["metadata"]["x-created-ms"].clone();
        }
        None => {
            m["uid"] = json!(random_uid(rng));
            m["creationTimestamp"] = json!(rfc3339(now));
            m["x-created-ms"] = json!(now);
        }
    }
    if let Some(mm) = m.as_object_mut() {
        mm.remove("managedFields");
        mm.remove("generateName");
    }
}

pub(super) async fn create_namespace(
    State(d): State<Arc<Daemon>>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let mut obj = match json_body(&h, &body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(name) = obj["metadata"]["name"].as_str().map(str::to_owned) else {
        return bad_request("metadata.name is required");
    };
    let r = d.write(move |c, rng, now| {
        if BUILTIN_NAMESPACES.contains(&name.as_str()) || c.namespaces.contains_key(&name) {
            return Err(name);
        }
        stamp(&mut obj, ("Namespace", &name, None), c, rng, now, None);
        obj["status"] = json!({"phase": "Active"});
        c.namespaces.insert(name, obj.clone());
        Ok(obj)
    });
    match r {
        Err(_) => timeout(),
        Ok(Err(name)) => reply(
            409,
            status_failure(
                409,
                "AlreadyExists",
                &format!("namespaces \"{name}\" already exists"),
                Some(("namespaces", &name)),
            ),
        ),
        Ok(Ok(obj)) => reply(201, strip_private(obj)),
    }
}

fn namespace_exists(c: &ClusterState, ns: &str) -> bool {
    BUILTIN_NAMESPACES.contains(&ns) || c.namespaces.contains_key(ns)
}

pub(super) async fn list_all_configmaps(
    State(d): State<Arc<Daemon>>,
    h: HeaderMap,
    Query(p): Params,
) -> Response {
    if let Some(r) = watch_refused(&p) {
        return r;
    }
    let Some(c) = snapshot(&d) else {
        return timeout();
    };
    objects_answer(
        &h,
        &p,
        "ConfigMapList",
        c.configmaps.values().cloned().collect(),
        c.resource_version,
        cm_cells,
        &CM_COLS,
    )
}

pub(super) async fn list_configmaps(
    State(d): State<Arc<Daemon>>,
    h: HeaderMap,
    Query(p): Params,
    Path(ns): Path<String>,
) -> Response {
    if let Some(r) = watch_refused(&p) {
        return r;
    }
    let Some(c) = snapshot(&d) else {
        return timeout();
    };
    let objs = c
        .configmaps
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{ns}/")))
        .map(|(_, v)| v.clone())
        .collect();
    objects_answer(
        &h,
        &p,
        "ConfigMapList",
        objs,
        c.resource_version,
        cm_cells,
        &CM_COLS,
    )
}

pub(super) async fn get_configmap(
    State(d): State<Arc<Daemon>>,
    h: HeaderMap,
    Query(p): Params,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let Some(c) = snapshot(&d) else {
        return timeout();
    };
    match c.configmaps.get(&format!("{ns}/{name}")) {
        Some(o) if wants_table(&h) => objects_answer(
            &h,
            &p,
            "ConfigMapList",
            vec![o.clone()],
            c.resource_version,
            cm_cells,
            &CM_COLS,
        ),
        Some(o) => axum::Json(strip_private(o.clone())).into_response(),
        None => not_found("configmaps", &name),
    }
}

enum CmError {
    NoNamespace,
    Exists,
    Missing,
    Conflict,
}

fn cm_error(e: CmError, ns: &str, name: &str) -> Response {
    match e {
        CmError::NoNamespace => not_found("namespaces", ns),
        CmError::Exists => reply(
            409,
            status_failure(
                409,
                "AlreadyExists",
                &format!("configmaps \"{name}\" already exists"),
                Some(("configmaps", name)),
            ),
        ),
        CmError::Missing => not_found("configmaps", name),
        CmError::Conflict => reply(
            409,
            status_failure(
                409,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on configmaps \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                ),
                Some(("configmaps", name)),
            ),
        ),
    }
}

fn cm_write(
    d: &Arc<Daemon>,
    ns: String,
    name: String,
    code: u16,
    f: impl FnOnce(Option<&Value>) -> Result<Value, CmError> + Send + 'static,
) -> Response {
    let (ns2, name2) = (ns.clone(), name.clone());
    let r = d.write(move |c, rng, now| {
        if !namespace_exists(c, &ns2) {
            return Err(CmError::NoNamespace);
        }
        let key = format!("{ns2}/{name2}");
        let old = c.configmaps.get(&key).cloned();
        let mut obj = f(old.as_ref())?;
        stamp(
            &mut obj,
            ("ConfigMap", &name2, Some(&ns2)),
            c,
            rng,
            now,
            old.as_ref(),
        );
        c.configmaps.insert(key, obj.clone());
        Ok(obj)
    });
    match r {
        Err(_) => timeout(),
        Ok(Err(e)) => cm_error(e, &ns, &name),
        Ok(Ok(obj)) => reply(code, strip_private(obj)),
    }
}

pub(super) async fn create_configmap(
    State(d): State<Arc<Daemon>>,
    h: HeaderMap,
    Path(ns): Path<String>,
    body: Bytes,
) -> Response {
    let obj = match json_body(&h, &body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(name) = obj["metadata"]["name"].as_str().map(str::to_owned) else {
        return bad_request("metadata.name is required");
    };
    cm_write(&d, ns, name, 201, move |old| {
        if old.is_some() {
            Err(CmError::Exists)
        } else {
            Ok(obj)
        }
    })
}

pub(super) async fn put_configmap(
    State(d): State<Arc<Daemon>>,
    h: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let obj = match json_body(&h, &body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    cm_write(&d, ns, name, 200, move |old| {
        let old = old.ok_or(CmError::Missing)?;
        match obj["metadata"]["resourceVersion"].as_str() {
            Some(rv)
                if !rv.is_empty() && Some(rv) != old["metadata"]["resourceVersion"].as_str() =>
            {
                Err(CmError::Conflict)
            }
            _ => Ok(obj),
        }
    })
}

pub(super) async fn patch_configmap(
    State(d): State<Arc<Daemon>>,
    h: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (patch, apply) = match parse_body(&h, &body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    cm_write(&d, ns, name, 200, move |old| {
        let mut obj = match (old, apply) {
            (Some(o), _) => o.clone(),
            (None, true) => json!({}),
            (None, false) => return Err(CmError::Missing),
        };
        merge_patch(&mut obj, &patch);
        Ok(obj)
    })
}

pub(super) async fn delete_configmap(
    State(d): State<Arc<Daemon>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let key = format!("{ns}/{name}");
    match d.write(move |c, _, _| c.configmaps.remove(&key)) {
        Err(_) => timeout(),
        Ok(None) => not_found("configmaps", &name),
        Ok(Some(o)) => deleted(
            "configmaps",
            &name,
            o["metadata"]["uid"].as_str().unwrap_or_default(),
        ),
    }
}
