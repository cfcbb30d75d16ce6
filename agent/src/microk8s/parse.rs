//! Pure parsers for every microk8s output the agent reads.
//!
//! Owns the text-to-value step for `status` (pretty, short and yaml; 1.19 and 1.28+),
//! `add-node` (json, yaml, pretty, short, token, token-check; 1.19's leading-space lines),
//! `kubectl get nodes -o json`, a successful `join`, `config` and `version`. No process, no
//! I/O: the same functions run over the fixtures in `tests/fixtures/microk8s/`, which double as
//! the contract the simulator must meet. Classifying *failed* commands lives in `classify`.

use std::net::IpAddr;

use serde::Deserialize;

use super::contract::{
    AddNodeOutput, ClusterStatus, DatastoreMember, DqliteRole, JoinOutcome, Microk8sVersion,
    NodeInfo, Readiness, Role, Status,
};
use super::secret::{JoinToken, JoinUrl, Kubeconfig};

/// Printed (first) by every command that refuses to run on a worker node.
pub const WORKER_MARK: &str = "is acting as a node in a cluster";
/// Printed by `status` (and others) after `microk8s stop`.
pub const STOPPED_MARK: &str = "microk8s is not running, try microk8s start";
/// Printed by `status` when the services are up but not ready.
pub const NOT_READY_MARK: &str = "microk8s is not running. Use microk8s inspect";
/// First line of a ready `status`.
pub const RUNNING_MARK: &str = "microk8s is running";
/// Label microk8s (1.23+) puts on control-plane nodes.
pub const CONTROL_PLANE_LABEL: &str = "node.kubernetes.io/microk8s-controlplane";
/// Label microk8s (1.23+) puts on worker nodes.
pub const WORKER_LABEL: &str = "node.kubernetes.io/microk8s-worker";

/// Output that does not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}: {detail}")]
pub struct ParseError {
    /// What the parser expected, e.g. "microk8s status output".
    pub expected: &'static str,
    /// What was wrong.
    pub detail: String,
}

fn err(expected: &'static str, detail: impl Into<String>) -> ParseError {
    ParseError {
        expected,
        detail: detail.into(),
    }
}

/// Parses `microk8s status` in any of its formats. Leading blank and `WARNING` lines are
/// skipped.
pub fn parse_status(stdout: &str) -> Result<Status, ParseError> {
    const WHAT: &str = "microk8s status output";
    let mut lines = stdout
        .lines()
        .skip_while(|l| l.trim().is_empty() || l.starts_with("WARNING"));
    let first = lines
        .next()
        .map(str::trim_end)
        .ok_or_else(|| err(WHAT, "no output"))?;
    if first.contains(WORKER_MARK) {
        Ok(Status::Worker)
    } else if first.contains(STOPPED_MARK) {
        Ok(Status::Stopped)
    } else if first.starts_with(NOT_READY_MARK) {
        Ok(Status::NotReady {
            datastore: Vec::new(),
        })
    } else if first == "microk8s:" {
        parse_status_yaml(lines)
    } else if first == RUNNING_MARK {
        parse_status_pretty(lines).map(Status::Running)
    } else {
        Err(err(WHAT, format!("unrecognised first line {first:?}")))
    }
}

fn members(list: &str, role: DqliteRole) -> Vec<DatastoreMember> {
    list.split_whitespace()
        .filter(|a| *a != "none")
        .map(|a| DatastoreMember {
            address: a.to_owned(),
            role,
        })
        .collect()
}

/// Strips the `core/` style repository prefix of the short format.
fn addon_name(name: &str) -> String {
    name.rsplit('/').next().unwrap_or(name).to_owned()
}

/// The pretty (`datastore master nodes: …`) and short (`core/dns: enabled`) formats.
fn parse_status_pretty<'a>(
    lines: impl Iterator<Item = &'a str>,
) -> Result<ClusterStatus, ParseError> {
    #[derive(PartialEq)]
    enum Section {
        Top,
        Etcd,
        Enabled,
        Disabled,
    }
    let mut status = ClusterStatus::default();
    let mut standby = Vec::new();
    let mut section = Section::Top;
    for line in lines {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(v) = t.strip_prefix("high-availability:") {
            status.high_availability = v.trim() == "yes";
        } else if let Some(v) = t.strip_prefix("datastore master nodes:") {
            status.datastore = members(v, DqliteRole::Voter);
        } else if let Some(v) = t.strip_prefix("datastore standby nodes:") {
            standby = members(v, DqliteRole::Standby);
        } else if t == "datastore endpoints:" {
            section = Section::Etcd;
        } else if t == "addons:" {
            section = Section::Top;
        } else if t == "enabled:" {
            section = Section::Enabled;
        } else if t == "disabled:" {
            section = Section::Disabled;
        } else if let Some(name) = t.strip_suffix(": enabled") {
            status.addons_enabled.push(addon_name(name));
        } else if t.ends_with(": disabled") {
            // Short format, disabled addon: nothing to record.
        } else if section == Section::Etcd {
            status.etcd_endpoints.push(t.to_owned());
        } else if section == Section::Enabled {
            let name = t.split_whitespace().next().unwrap_or(t);
            status.addons_enabled.push(name.to_owned());
        }
    }
    status.datastore.extend(standby);
    Ok(status)
}

/// The `--format yaml` output. Parsed line by line: microk8s prints it with `print`, not a YAML
/// library, and addon descriptions are not quoted.
fn parse_status_yaml<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Status, ParseError> {
    const WHAT: &str = "microk8s status yaml";
    let mut top = "microk8s";
    let mut running = None;
    let mut datastore = Vec::new();
    let mut pending_address: Option<String> = None;
    let mut addon: Option<String> = None;
    let mut addons_enabled = Vec::new();
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            top = line.trim_end().trim_end_matches(':');
            continue;
        }
        let t = line.trim().trim_start_matches("- ");
        let (key, value) = t.split_once(':').map_or((t, ""), |(k, v)| (k, v.trim()));
        match (top, key) {
            ("microk8s", "running") => running = Some(value.eq_ignore_ascii_case("true")),
            ("high-availability", "address") => pending_address = Some(value.to_owned()),
            ("high-availability", "role") => {
                let role = match value {
                    "voter" => DqliteRole::Voter,
                    "standby" => DqliteRole::Standby,
                    "spare" => DqliteRole::Spare,
                    other => return Err(err(WHAT, format!("unknown dqlite role {other:?}"))),
                };
                let address = pending_address
                    .take()
                    .ok_or_else(|| err(WHAT, "role without address"))?;
                datastore.push(DatastoreMember { address, role });
            }
            ("addons", "name") => addon = Some(value.to_owned()),
            ("addons", "status") if value == "enabled" => addons_enabled.extend(addon.take()),
            _ => {}
        }
    }
    match running {
        Some(true) => {
            let voters = datastore
                .iter()
                .filter(|m| m.role == DqliteRole::Voter)
                .count();
            Ok(Status::Running(ClusterStatus {
                high_availability: voters >= 3,
                datastore,
                etcd_endpoints: Vec::new(),
                addons_enabled,
            }))
        }
        Some(false) => Ok(Status::NotReady { datastore }),
        None => Err(err(WHAT, "no `running:` line")),
    }
}

#[derive(Deserialize)]
struct AddNodeJson {
    token: String,
    urls: Vec<String>,
}

/// Parses `microk8s add-node` output in any format. With the pretty and short formats the
/// default-route address comes first; duplicates are dropped.
pub fn parse_add_node(stdout: &str) -> Result<AddNodeOutput, ParseError> {
    const WHAT: &str = "microk8s add-node output";
    let text = stdout.trim();
    let (token_check, url_strs): (Option<String>, Vec<String>) = if text.starts_with('{') {
        let j: AddNodeJson =
            serde_json::from_str(text).map_err(|e| err(WHAT, format!("bad json: {e}")))?;
        (Some(j.token), j.urls)
    } else if let Some(rest) = text.strip_prefix("token:") {
        let mut lines = rest.lines();
        let token = lines.next().map(|l| l.trim().to_owned());
        let urls = lines
            .filter_map(|l| l.trim().strip_prefix("- "))
            .map(|u| u.trim().to_owned())
            .collect();
        (token, urls)
    } else if text.contains("microk8s join ") {
        let urls = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("microk8s join "))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .collect();
        (None, urls)
    } else if !text.is_empty() && !text.contains(char::is_whitespace) {
        (Some(text.to_owned()), Vec::new())
    } else {
        return Err(err(WHAT, "no token and no `microk8s join` line"));
    };

    let mut urls: Vec<JoinUrl> = Vec::new();
    for s in &url_strs {
        let url = JoinUrl::parse(s).map_err(|e| err(WHAT, format!("bad join address: {e}")))?;
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    let (token, fingerprint) = match (&token_check, urls.first()) {
        (Some(tc), _) => {
            let (t, c) = tc
                .split_once('/')
                .map_or((tc.as_str(), None), |(t, c)| (t, Some(c.to_owned())));
            (JoinToken::new(t).map_err(|e| err(WHAT, e.to_string()))?, c)
        }
        (None, Some(u)) => (u.token().clone(), u.fingerprint().map(str::to_owned)),
        (None, None) => return Err(err(WHAT, "no join address")),
    };
    if urls
        .iter()
        .any(|u| u.token() != &token || u.fingerprint() != fingerprint.as_deref())
    {
        return Err(err(
            WHAT,
            "join addresses carry different tokens or fingerprints",
        ));
    }
    Ok(AddNodeOutput {
        token,
        fingerprint,
        urls,
    })
}

#[derive(Deserialize)]
struct NodeListJson {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    items: Vec<NodeJson>,
}

#[derive(Deserialize)]
struct NodeJson {
    metadata: MetaJson,
    #[serde(default)]
    spec: SpecJson,
    #[serde(default)]
    status: NodeStatusJson,
}

#[derive(Deserialize)]
struct MetaJson {
    name: String,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
struct SpecJson {
    #[serde(default)]
    unschedulable: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct NodeStatusJson {
    #[serde(default)]
    addresses: Vec<TypedJson>,
    #[serde(default)]
    conditions: Vec<ConditionJson>,
    #[serde(default)]
    node_info: Option<NodeSystemInfoJson>,
}

#[derive(Deserialize)]
struct TypedJson {
    #[serde(rename = "type")]
    kind: String,
    address: String,
}

#[derive(Deserialize)]
struct ConditionJson {
    #[serde(rename = "type")]
    kind: String,
    status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeSystemInfoJson {
    #[serde(default)]
    kubelet_version: Option<String>,
}

impl From<NodeJson> for NodeInfo {
    fn from(n: NodeJson) -> Self {
        let readiness = match n
            .status
            .conditions
            .iter()
            .find(|c| c.kind == "Ready")
            .map(|c| c.status.as_str())
        {
            Some("True") => Readiness::Ready,
            Some("False") => Readiness::NotReady,
            _ => Readiness::Unknown,
        };
        let internal_ip = n
            .status
            .addresses
            .iter()
            .filter(|a| a.kind == "InternalIP")
            .find_map(|a| a.address.parse::<IpAddr>().ok());
        let role = if n.metadata.labels.contains_key(CONTROL_PLANE_LABEL) {
            Some(Role::ControlPlane)
        } else if n.metadata.labels.contains_key(WORKER_LABEL) {
            Some(Role::Worker)
        } else {
            None
        };
        Self {
            name: n.metadata.name,
            readiness,
            internal_ip,
            role,
            kubelet_version: n.status.node_info.and_then(|i| i.kubelet_version),
            unschedulable: n.spec.unschedulable,
        }
    }
}

/// Parses `kubectl get nodes -o json` (a `List`) or `kubectl get node <n> -o json` (a `Node`).
pub fn parse_nodes(stdout: &str) -> Result<Vec<NodeInfo>, ParseError> {
    const WHAT: &str = "kubectl node list json";
    let value: serde_json::Value =
        serde_json::from_str(stdout).map_err(|e| err(WHAT, format!("bad json: {e}")))?;
    if value.get("kind").and_then(|k| k.as_str()) == Some("Node") {
        let node: NodeJson = serde_json::from_value(value).map_err(|e| err(WHAT, e.to_string()))?;
        return Ok(vec![node.into()]);
    }
    let list: NodeListJson = serde_json::from_value(value).map_err(|e| err(WHAT, e.to_string()))?;
    if !matches!(list.kind.as_str(), "List" | "NodeList") {
        return Err(err(WHAT, format!("kind {:?}", list.kind)));
    }
    Ok(list.items.into_iter().map(NodeInfo::from).collect())
}

/// Reads what a `join` that exited 0 printed.
pub fn parse_join_success(stdout: &str) -> JoinOutcome {
    let mut outcome = JoinOutcome::default();
    for line in stdout.lines().map(str::trim) {
        if let Some(ip) = line.strip_prefix("Contacting cluster at ") {
            outcome.contacted = Some(ip.trim().to_owned());
        } else if line.starts_with("WARNING:") {
            outcome.warnings.push(line.to_owned());
        } else if line == "Successfully joined the cluster." {
            outcome.confirmed = true;
        }
    }
    outcome
}

/// Checks that `microk8s config` printed a kubeconfig.
pub fn parse_kubeconfig(stdout: &str) -> Result<Kubeconfig, ParseError> {
    let has = |key: &str| stdout.lines().any(|l| l.starts_with(key));
    if has("apiVersion:") && has("clusters:") && has("users:") {
        Ok(Kubeconfig::new(stdout))
    } else {
        // The text may hold credentials: describe it without quoting it.
        Err(err(
            "a kubeconfig",
            format!(
                "{} lines without apiVersion/clusters/users",
                stdout.lines().count()
            ),
        ))
    }
}

/// Parses `MicroK8s v1.32.3 revision 7964`.
pub fn parse_version(stdout: &str) -> Result<Microk8sVersion, ParseError> {
    const WHAT: &str = "`MicroK8s <version> revision <n>`";
    let line = stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("MicroK8s "))
        .ok_or_else(|| err(WHAT, "no MicroK8s line"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut version = words
        .get(1)
        .and_then(|v| Microk8sVersion::parse(v))
        .ok_or_else(|| err(WHAT, line.to_owned()))?;
    if words.get(2) == Some(&"revision") {
        version.revision = words.get(3).map(|r| (*r).to_owned());
    }
    Ok(version)
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
