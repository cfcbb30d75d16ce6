//! Kubernetes objects of the simulated cluster as JSON, and kubectl's renderings of them.
//!
//! Owns the Node object layout (labels, addresses, Ready condition, nodeInfo), the `Table`
//! objects the API server returns to kubectl, the `kubectl get nodes` table and `-o json`
//! text, apimachinery's `HumanDuration`, and `Status` error objects. Serving them is
//! `kubeapi`'s job; deciding readiness is `replica`'s.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::replica::{NodeRecord, Readiness};

/// RFC 3339 UTC timestamp (seconds) of a Unix-millisecond time.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// apimachinery's `duration.HumanDuration`, as kubectl's AGE column prints it.
pub fn human_duration(ms: i64) -> String {
    // Go truncates toward zero: -1.5 s counts as -1 s, "almost now".
    let seconds = ms / 1000;
    if seconds < -1 {
        return "<invalid>".to_owned();
    } else if seconds < 0 {
        return "0s".to_owned();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// A Node object as the API server returns it.
pub fn node_object(n: &NodeRecord, readiness: Readiness, now_ms: u64) -> Value {
    let (status, reason, message) = match readiness {
        Readiness::Ready => ("True", "KubeletReady", "kubelet is posting ready status"),
        Readiness::Starting => (
            "False",
            "KubeletNotReady",
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
        ),
        Readiness::Lost => (
            "Unknown",
            "NodeStatusUnknown",
            "Kubelet stopped posting node status.",
        ),
    };
    let ts = rfc3339(now_ms);
    let created = rfc3339(n.created_ms);
    let mut spec = serde_json::Map::new();
    if n.unschedulable {
        spec.insert("unschedulable".into(), Value::Bool(true));
    }
    let mut annotations = serde_json::Map::new();
    annotations.insert("node.alpha.kubernetes.io/ttl".into(), json!("0"));
    annotations.insert(
        "volumes.kubernetes.io/controller-managed-attach-detach".into(),
        json!("true"),
    );
    for (k, v) in &n.annotations {
        annotations.insert(k.clone(), json!(v));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "annotations": annotations,
            "creationTimestamp": created,
            "labels": n.labels,
            "name": n.name,
            "resourceVersion": n.resource_version.to_string(),
            "uid": n.uid,
        },
        "spec": spec,
        "status": {
            "addresses": [
                {"address": n.ip.to_string(), "type": "InternalIP"},
                {"address": n.name, "type": "Hostname"},
            ],
            "conditions": [{
                "lastHeartbeatTime": ts,
                "lastTransitionTime": created,
                "message": message,
                "reason": reason,
                "status": status,
                "type": "Ready",
            }],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": n.labels.get("kubernetes.io/arch").cloned().unwrap_or_default(),
                "bootID": "",
                "containerRuntimeVersion": "containerd://1.6.28",
                "kernelVersion": "6.1.0-muster-sim",
                "kubeProxyVersion": n.version,
                "kubeletVersion": n.version,
                "machineID": "",
                "operatingSystem": "linux",
                "osImage": "Ubuntu 22.04.4 LTS",
                "systemUUID": "",
            },
        },
    })
}

/// The STATUS column of a node.
pub fn status_column(n: &NodeRecord, readiness: Readiness) -> String {
    let base = if readiness == Readiness::Ready {
        "Ready"
    } else {
        "NotReady"
    };
    if n.unschedulable {
        format!("{base},SchedulingDisabled")
    } else {
        base.to_owned()
    }
}

/// Cells of one node row: NAME STATUS ROLES AGE VERSION then the wide columns.
pub fn node_cells(n: &NodeRecord, readiness: Readiness, now_ms: u64) -> Vec<String> {
    vec![
        n.name.clone(),
        status_column(n, readiness),
        "<none>".to_owned(),
        human_duration(now_ms as i64 - n.created_ms as i64),
        n.version.clone(),
        n.ip.to_string(),
        "<none>".to_owned(),
        "Ubuntu 22.04.4 LTS".to_owned(),
        "6.1.0-muster-sim".to_owned(),
        "containerd://1.6.28".to_owned(),
    ]
}

/// Header names of [`node_cells`] (as kubectl prints them, uppercased).
pub const NODE_COLUMNS: [&str; 10] = [
    "Name",
    "Status",
    "Roles",
    "Age",
    "Version",
    "Internal-IP",
    "External-IP",
    "OS-Image",
    "Kernel-Version",
    "Container-Runtime",
];

/// Go's `text/tabwriter` as kubectl configures it (minwidth 6, padding 3; last cell unpadded).
pub fn tabwrite(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                widths[i] = widths[i].max((cell.chars().count() + 3).max(6));
            }
        }
    }
    let mut s = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                let _ = write!(s, "{cell:<w$}", w = widths[i]);
            } else {
                s.push_str(cell);
            }
        }
        s.push('\n');
    }
    s
}

/// `kubectl get nodes [-o wide]` text. `rows` are [`node_cells`].
pub fn nodes_table(rows: &[Vec<String>], wide: bool) -> String {
    let n = if wide { NODE_COLUMNS.len() } else { 5 };
    let mut all = vec![
        NODE_COLUMNS[..n]
            .iter()
            .map(|c| c.to_uppercase())
            .collect::<Vec<_>>(),
    ];
    all.extend(rows.iter().map(|r| r[..n].to_vec()));
    tabwrite(&all)
}

/// kubectl's JSON printing: 4-space indent, sorted keys, trailing newline.
pub fn kubectl_json(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if serde::Serialize::serialize(v, &mut ser).is_err() {
        return String::from("{}\n");
    }
    let mut s = String::from_utf8_lossy(&buf).into_owned();
    s.push('\n');
    s
}

/// The `List` kubectl prints for `get nodes -o json`.
pub fn list_object(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}})
}

/// A `Status` failure object.
pub fn status_failure(
    code: u16,
    reason: &str,
    message: &str,
    details: Option<(&str, &str)>,
) -> Value {
    let mut v = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some((kind, name)) = details {
        v["details"] = json!({"name": name, "kind": kind});
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::{NodeKind, node_labels};

    fn rec(name: &str, ip: &str, created_ms: u64) -> NodeRecord {
        NodeRecord {
            name: name.to_owned(),
            ip: ip.parse().expect("ip"),
            kind: NodeKind::ControlPlane,
            labels: node_labels(name, NodeKind::ControlPlane),
            annotations: Default::default(),
            created_ms,
            ready_at_ms: 0,
            uid: "u".into(),
            resource_version: 7,
            unschedulable: false,
            version: "v1.32.3".into(),
        }
    }

    #[test]
    fn human_duration_matches_apimachinery() {
        let s = 1000;
        for (ms, want) in [
            (-3 * s, "<invalid>"),
            (-1500, "0s"),
            (0, "0s"),
            (119 * s, "119s"),
            (120 * s, "2m"),
            (150 * s, "2m30s"),
            (11 * 60 * s, "11m"),
            (3 * 3600 * s, "3h"),
            (3 * 3600 * s + 60 * s, "3h1m"),
            (9 * 3600 * s, "9h"),
            (50 * 3600 * s, "2d2h"),
            (10 * 86_400 * s, "10d"),
            (800 * 86_400 * s, "2y70d"),
        ] {
            assert_eq!(human_duration(ms), want, "{ms}");
        }
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199_000), "2024-02-29T23:59:59Z");
    }

    #[test]
    fn nodes_table_pads_like_kubectl() {
        let now = 10 * 60 * 1000;
        let rows = vec![
            node_cells(&rec("alpha", "10.0.0.1", 0), Readiness::Ready, now),
            node_cells(&rec("b", "10.0.0.2", now - 5000), Readiness::Lost, now),
        ];
        assert_eq!(
            nodes_table(&rows, false),
            include_str!("../tests/fixtures/sim/kubectl_get_nodes.txt")
        );
    }

    #[test]
    fn node_object_carries_labels_addresses_and_ready_condition() {
        let v = node_object(&rec("alpha", "10.0.0.1", 0), Readiness::Lost, 1000);
        assert_eq!(v["metadata"]["labels"]["microk8s.io/cluster"], "true");
        assert_eq!(
            v["metadata"]["labels"]["node.kubernetes.io/microk8s-controlplane"],
            "microk8s-controlplane"
        );
        assert_eq!(
            v["status"]["addresses"][0],
            json!({"address": "10.0.0.1", "type": "InternalIP"})
        );
        assert_eq!(v["status"]["conditions"][0]["type"], "Ready");
        assert_eq!(v["status"]["conditions"][0]["status"], "Unknown");
        assert_eq!(v["status"]["nodeInfo"]["kubeletVersion"], "v1.32.3");
        let text = kubectl_json(&list_object(vec![v]));
        assert!(text.starts_with("{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n        {\n"));
        assert!(text.ends_with("    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}\n"));
    }
}
