//! Byte-exact texts of the microk8s 1.28+/1.29+ CLI: `add-node` formats, `status` formats,
//! `config`, and the fixed messages of `join`, `leave`, `remove-node` and the wrappers.
//!
//! Pure string building, golden-tested here and in `tests/fixtures/sim/`. Parsing of arguments
//! lives in `args`; Kubernetes objects and the kubectl table in `nodes`.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::replica::Role;

/// `$SNAP` revision used in paths the real tools print.
pub const SNAP_REVISION: &str = "7229";

/// add-node on a worker (stdout, exit 1).
pub const ADD_NODE_ON_WORKER: &str = "This MicroK8s deployment is acting as a node in a cluster. Please use the microk8s add-node on the master.\n";
/// Wrappers' `exit_if_stopped` (stderr, exit 1).
pub const STOPPED: &str = "microk8s is not running, try microk8s start\n";
/// `add-node --token` shorter than 32 (stdout, exit 1; two spaces are upstream's).
pub const INVALID_TOKEN_SIZE: &str = "Invalid token size.  It must be 32 characters long.\n";
/// status on a worker (stdout, exit 0).
pub const STATUS_ON_WORKER: &str = "This MicroK8s deployment is acting as a node in a cluster.\nPlease use the control plane node.\n";
/// `status` not ready (pretty and short).
pub const NOT_RUNNING: &str =
    "microk8s is not running. Use microk8s inspect for a deeper inspection.";
/// kubectl on a worker (stdout, exit 0).
pub const KUBECTL_ON_WORKER: &str = "This MicroK8s deployment is acting as a node in a cluster. Please use the microk8s kubectl on the master.\n";
/// config on a worker (stdout, exit 0).
pub const CONFIG_ON_WORKER: &str = "This MicroK8s deployment is acting as a node in a cluster. Please use the microk8s config on the master.\n";
/// kubectl when the API server is down (stderr, exit 1).
pub const API_REFUSED: &str = "The connection to the server 127.0.0.1:16443 was refused - did you specify the right host or port?\n";
/// leave on a node that never clustered (stdout, exit 1).
pub const LEAVE_NOT_CLUSTERED: &str =
    "This MicroK8s deployment is not acting as a node in a cluster.\n";
/// leave by the only voter while others exist (stdout, exit 3).
pub const LEAVE_SOLE_VOTER: &str = "This node currently holds the only copy of the Kubernetes database so it cannot leave the cluster.\nTo remove this node you can either first remove all other nodes with 'microk8s remove-node' or\nform a highly available cluster by adding at least three nodes.\n";
/// remove-node on a worker (stdout, exit 1).
pub const REMOVE_ON_WORKER: &str =
    "This MicroK8s deployment is acting as a node in a cluster. Please use microk8s leave.\n";
/// remove-node without arguments (stdout, exit 1).
pub const REMOVE_NO_ARG: &str = "Please provide the node you want to remove.\n";
/// remove-node with a second argument that is not `--force` (stdout, exit 1).
pub const REMOVE_BAD_FORCE: &str = "Please provide the node and the optional --force flag.\n";
/// join's final line (1.29+).
pub const JOINED: &str = "Successfully joined the cluster.\n";
/// The worker join's closing block (printed before [`JOINED`]).
pub const WORKER_USAGE: &str = "\nThe node has joined the cluster and will appear in the nodes list in a few seconds.\n\nThis worker node gets automatically configured with the API server endpoints.\nIf the API servers are behind a loadbalancer please set the '--refresh-interval' to '0s' in:\n    /var/snap/microk8s/current/args/apiserver-proxy\nand replace the API server endpoints with the one provided by the loadbalancer in:\n    /var/snap/microk8s/current/args/traefik/provider.yaml\n\n";

/// `add-node --format` values.
pub const ADD_NODE_FORMATS: [&str; 6] = ["pretty", "short", "token", "token-check", "json", "yaml"];

/// The add-node output for one token. `ips` is `hostname -I` order (default IP among them).
pub fn add_node(
    format: &str,
    token: &str,
    check: &str,
    default_ip: &str,
    ips: &[String],
    dqlite: bool,
) -> String {
    let port = super::state_dir::AGENT_PORT;
    let tc = format!("{token}/{check}");
    let mut s = String::new();
    match format {
        "short" => {
            let _ = writeln!(s, "microk8s join {default_ip}:{port}/{tc}");
            for ip in ips.iter().filter(|ip| *ip != default_ip) {
                let _ = writeln!(s, "microk8s join {ip}:{port}/{tc}");
            }
        }
        "token" => s = format!("{token}\n"),
        "token-check" => s = format!("{tc}\n"),
        "json" => {
            s.push_str("{\n");
            let _ = writeln!(s, "  \"token\": {},", json_str(&tc));
            if ips.is_empty() {
                s.push_str("  \"urls\": []\n");
            } else {
                s.push_str("  \"urls\": [\n");
                for (i, ip) in ips.iter().enumerate() {
                    let comma = if i + 1 < ips.len() { "," } else { "" };
                    let _ = writeln!(s, "    {}{comma}", json_str(&format!("{ip}:{port}/{tc}")));
                }
                s.push_str("  ]\n");
            }
            s.push_str("}\n");
        }
        "yaml" => {
            let _ = writeln!(s, "token: {tc}");
            if ips.is_empty() {
                s.push_str("urls: []\n");
            } else {
                s.push_str("urls:\n");
                for ip in ips {
                    let _ = writeln!(s, "- {ip}:{port}/{tc}");
                }
            }
            // print() after yaml.dump's own newline.
            s.push('\n');
        }
        _ => {
            s.push_str("From the node you wish to join to this cluster, run the following:\n");
            let _ = writeln!(s, "microk8s join {default_ip}:{port}/{tc}\n");
            if dqlite {
                s.push_str("Use the '--worker' flag to join a node as a worker not running the control plane, eg:\n");
                let _ = writeln!(s, "microk8s join {default_ip}:{port}/{tc} --worker\n");
            }
            s.push_str("If the node you are adding is not reachable through the default interface you can use one of the following:\n");
            for ip in ips {
                let _ = writeln!(s, "microk8s join {ip}:{port}/{tc}");
            }
        }
    }
    s
}

/// JSON string literal the way Python's `json.dumps` writes it (ASCII-escaped).
pub fn json_str(v: &str) -> String {
    let mut s = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(s, "\\u{unit:04x}");
                }
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// An addon of the core repository: name, description, version.
pub struct Addon {
    /// Name.
    pub name: &'static str,
    /// Description.
    pub description: &'static str,
    /// Version.
    pub version: &'static str,
}

/// The core addons of a 1.28+ snap, sorted by name as `status` sorts them.
pub const ADDONS: [Addon; 23] = [
    Addon {
        name: "cert-manager",
        description: "Cloud native certificate management",
        version: "1.8.0",
    },
    Addon {
        name: "cis-hardening",
        description: "Apply CIS K8s hardening",
        version: "1.0.0",
    },
    Addon {
        name: "community",
        description: "The community addons repository",
        version: "",
    },
    Addon {
        name: "dashboard",
        description: "The Kubernetes dashboard",
        version: "2.7.0",
    },
    Addon {
        name: "dns",
        description: "CoreDNS",
        version: "1.10.1",
    },
    Addon {
        name: "gpu",
        description: "Automatic enablement of Nvidia CUDA",
        version: "1.11.0",
    },
    Addon {
        name: "ha-cluster",
        description: "Configure high availability on the current node",
        version: "0.1.0",
    },
    Addon {
        name: "helm",
        description: "Helm - the package manager for Kubernetes",
        version: "3.9.1",
    },
    Addon {
        name: "helm3",
        description: "Helm 3 - the package manager for Kubernetes",
        version: "3.9.1",
    },
    Addon {
        name: "host-access",
        description: "Allow Pods connecting to Host services smoothly",
        version: "1.0.0",
    },
    Addon {
        name: "hostpath-storage",
        description: "Storage class; allocates storage from host directory",
        version: "1.1.0",
    },
    Addon {
        name: "ingress",
        description: "Ingress controller for external access",
        version: "1.8.0",
    },
    Addon {
        name: "kube-ovn",
        description: "An advanced network fabric for Kubernetes",
        version: "1.12.0",
    },
    Addon {
        name: "mayastor",
        description: "OpenEBS MayaStor",
        version: "2.0.0",
    },
    Addon {
        name: "metallb",
        description: "Loadbalancer for your Kubernetes cluster",
        version: "0.13.10",
    },
    Addon {
        name: "metrics-server",
        description: "K8s Metrics Server for API access to service metrics",
        version: "0.6.3",
    },
    Addon {
        name: "minio",
        description: "MinIO object storage",
        version: "4.5.1",
    },
    Addon {
        name: "observability",
        description: "A lightweight observability stack for logs, traces and metrics",
        version: "0.1.0",
    },
    Addon {
        name: "prometheus",
        description: "Prometheus operator for monitoring and logging",
        version: "0.1.0",
    },
    Addon {
        name: "rbac",
        description: "Role-Based Access Control for authorisation",
        version: "",
    },
    Addon {
        name: "registry",
        description: "Private image registry exposed on localhost:32000",
        version: "2.8.1",
    },
    Addon {
        name: "rook-ceph",
        description: "Distributed Ceph storage using Rook",
        version: "1.11.9",
    },
    Addon {
        name: "storage",
        description: "Alias to hostpath-storage add-on, deprecated",
        version: "1.1.0",
    },
];

/// Addons a default install has enabled.
pub fn addon_enabled(name: &str) -> bool {
    matches!(name, "dns" | "ha-cluster" | "helm" | "helm3")
}

/// What `status` needs to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusView {
    /// API reachable and some node Ready.
    pub ready: bool,
    /// `var/lock/ha-cluster` exists.
    pub ha_enabled: bool,
    /// dqlite members (address, role) in membership order; empty when the datastore does not
    /// answer (then the lists print `none`).
    pub members: Vec<(String, Role)>,
}

/// `status --format pretty|short|yaml` (and `--yaml`, as `short-yaml`).
pub fn status(format: &str, v: &StatusView) -> String {
    let mut s = String::new();
    let enabled: Vec<&Addon> = ADDONS.iter().filter(|a| addon_enabled(a.name)).collect();
    let disabled: Vec<&Addon> = ADDONS.iter().filter(|a| !addon_enabled(a.name)).collect();
    let py = |b: bool| if b { "True" } else { "False" };
    match format {
        "short" => {
            if v.ready {
                s.push_str("microk8s is running\naddons:\n");
                for a in &enabled {
                    let _ = writeln!(s, "core/{}: enabled", a.name);
                }
                for a in &disabled {
                    let _ = writeln!(s, "core/{}: disabled", a.name);
                }
            } else {
                let _ = writeln!(s, "{NOT_RUNNING}");
            }
        }
        "short-yaml" => {
            let _ = writeln!(s, "microk8s:\n  running: {}", py(v.ready));
            if v.ready {
                s.push_str("addons:\n");
                for a in &enabled {
                    let _ = writeln!(s, "  core/{}: enabled", a.name);
                }
                for a in &disabled {
                    let _ = writeln!(s, "  core/{}: disabled", a.name);
                }
            } else {
                let _ = writeln!(s, "  message: {NOT_RUNNING}");
            }
        }
        "yaml" => {
            let _ = writeln!(s, "microk8s:\n  running: {}", py(v.ready));
            let _ = writeln!(s, "high-availability:\n  enabled: {}", py(v.ha_enabled));
            if v.ha_enabled {
                s.push_str("  nodes:\n");
                for (addr, role) in &v.members {
                    let _ = writeln!(s, "    - address: {addr}\n      role: {}", role.name());
                }
            }
            if v.ready {
                s.push_str("addons:\n");
                for (list, state) in [(&enabled, "enabled"), (&disabled, "disabled")] {
                    for a in list.iter() {
                        let _ = writeln!(
                            s,
                            "  - name: {}\n    repository: core\n    description: {}\n    version: {}\n    status: {state}",
                            a.name, a.description, a.version
                        );
                    }
                }
            } else {
                let _ = writeln!(s, "  message: {NOT_RUNNING}");
            }
        }
        _ => {
            if !v.ready {
                let _ = writeln!(s, "{NOT_RUNNING}");
                return s;
            }
            s.push_str("microk8s is running\n");
            if !v.ha_enabled {
                s.push_str("high-availability: no\n");
            } else {
                let voters: Vec<&str> = list(v, Role::Voter);
                let standby: Vec<&str> = list(v, Role::Standby);
                let ha = if voters.len() > 2 { "yes" } else { "no" };
                let _ = writeln!(s, "high-availability: {ha}");
                let _ = writeln!(s, "  datastore master nodes: {}", none_or_join(&voters));
                let _ = writeln!(s, "  datastore standby nodes: {}", none_or_join(&standby));
            }
            s.push_str("addons:\n");
            for (list, title) in [(&enabled, "enabled"), (&disabled, "disabled")] {
                if !list.is_empty() {
                    let _ = writeln!(s, "  {title}:");
                    for a in list.iter() {
                        let _ = writeln!(s, "    {:<20} # (core) {}", a.name, a.description);
                    }
                }
            }
        }
    }
    s
}

fn list(v: &StatusView, role: Role) -> Vec<&str> {
    v.members
        .iter()
        .filter(|(_, r)| *r == role)
        .map(|(a, _)| a.as_str())
        .collect()
}

fn none_or_join(items: &[&str]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(" ")
    }
}

/// `microk8s config`: the stored client config with the first `127.0.0.1` of each line
/// replaced by the default IP (sed without `g`), then the wrapper's extra empty line.
pub fn config(client_config: &str, default_ip: &str, use_loopback: bool) -> String {
    let mut s = String::new();
    for line in client_config.split_inclusive('\n') {
        if use_loopback {
            s.push_str(line);
        } else {
            s.push_str(&line.replacen("127.0.0.1", default_ip, 1));
        }
    }
    s.push('\n');
    s
}

/// `Invalid connection: <reason>` (stdout, exit 1).
pub fn invalid_connection(reason: &str) -> String {
    format!("Invalid connection: {reason}\n")
}

/// Fingerprint mismatch (stdout, exit 4).
pub fn fingerprint_mismatch(ip: &str) -> String {
    format!(
        "Joining cluster failed. Could not verify the identity of {ip}. Use '--skip-verify' to skip server certificate check.\n"
    )
}

/// The agent's refusal (stdout, exit 6). `error` is the agent's `error` field, if any.
pub fn connection_failed(error: Option<&str>, status: u16) -> String {
    match error {
        Some(e) => format!("Connection failed. {e} ({status}).\n"),
        None => format!("Connection failed. ({status}).\n"),
    }
}

/// The uncaught Python traceback when the TCP connect to the entry fails (stderr, exit 1).
/// `exception` is the last line, e.g. `ConnectionRefusedError: [Errno 111] Connection refused`.
pub fn connect_traceback(exception: &str) -> String {
    let snap = format!("/snap/microk8s/{SNAP_REVISION}");
    let click = format!("{snap}/usr/lib/python3/dist-packages/click/core.py");
    let lib = format!("{snap}/usr/lib/python3.10");
    format!(
        "Traceback (most recent call last):\n  File \"{snap}/scripts/wrappers/join.py\", line 703, in <module>\n    join(prog_name=\"microk8s join\")\n  File \"{click}\", line 1157, in __call__\n    return self.main(*args, **kwargs)\n  File \"{click}\", line 1078, in main\n    rv = self.invoke(ctx)\n  File \"{click}\", line 1434, in invoke\n    return ctx.invoke(self.callback, **ctx.params)\n  File \"{click}\", line 783, in invoke\n    return __callback(*args, **kwargs)\n  File \"{snap}/scripts/wrappers/join.py\", line 695, in join\n    join_dqlite(connection_parts, verify, worker)\n  File \"{snap}/scripts/wrappers/join.py\", line 491, in join_dqlite\n    info = get_connection_info(\n  File \"{snap}/scripts/wrappers/join.py\", line 150, in get_connection_info\n    conn.connect()\n  File \"{lib}/http/client.py\", line 1447, in connect\n    super().connect()\n  File \"{lib}/http/client.py\", line 941, in connect\n    self.sock = self._create_connection(\n  File \"{lib}/socket.py\", line 845, in create_connection\n    raise err\n  File \"{lib}/socket.py\", line 833, in create_connection\n    sock.connect(sa)\n{exception}\n"
    )
}

/// Python's exception line for a failed `connect()`.
pub fn python_os_error(err: &std::io::Error) -> String {
    let (class, errno, text) = match err.raw_os_error() {
        Some(111) => ("ConnectionRefusedError", 111, "Connection refused"),
        Some(110) => ("TimeoutError", 110, "Connection timed out"),
        Some(104) => ("ConnectionResetError", 104, "Connection reset by peer"),
        Some(113) => ("OSError", 113, "No route to host"),
        Some(101) => ("OSError", 101, "Network is unreachable"),
        Some(n) => return format!("OSError: [Errno {n}] {}", strip_os_suffix(err)),
        None if err.kind() == std::io::ErrorKind::TimedOut => {
            ("TimeoutError", 110, "Connection timed out")
        }
        None => return format!("OSError: {}", strip_os_suffix(err)),
    };
    format!("{class}: [Errno {errno}] {text}")
}

fn strip_os_suffix(err: &std::io::Error) -> String {
    let s = err.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// The `repr()` of the CalledProcessError that a failed dqlite `.remove` raises.
pub fn dqlite_remove_error(remove_address: &str) -> String {
    let data = format!("/var/snap/microk8s/{SNAP_REVISION}/var/kubernetes/backend");
    format!(
        "CalledProcessError(1, ['/snap/microk8s/{SNAP_REVISION}/bin/dqlite', '-s', 'file://{data}/cluster.yaml', '-c', '{data}/cluster.crt', '-k', '{data}/cluster.key', '-f', 'json', 'k8s', '.remove {remove_address}'])"
    )
}

/// `Contacting node <ep> failed. Error:` plus the repr (stdout, exit 2).
pub fn contacting_node_failed(endpoint: &str, remove_address: &str) -> String {
    format!(
        "Contacting node {endpoint} failed. Error:\n{}\n",
        dqlite_remove_error(remove_address)
    )
}

/// remove-node of a node that is still a dqlite member, without `--force` (stdout, exit 1).
pub fn removal_failed_registered(node: &str) -> String {
    format!(
        "Removal failed. Node {node} is registered with dqlite. Please, run first 'microk8s leave' on the departing node. \nIf the node is not available anymore and will never attempt to join the cluster in the future use the '--force' flag \nto unregister the node while removing it.\n"
    )
}

/// kubectl's NotFound for one node (stderr).
pub fn node_not_found(node: &str) -> String {
    format!("Error from server (NotFound): nodes \"{node}\" not found\n")
}

/// The join's progress line start; dots and the closing `" \n"` follow.
pub const WAITING_JOIN: &str = "Waiting for this node to finish joining the cluster. ";
/// leave's progress line start.
pub const WAITING_START: &str = "Waiting for node to start. ";

/// `Contacting cluster at <ip>`.
pub fn contacting(ip: &str) -> String {
    format!("Contacting cluster at {ip}\n")
}

/// Formats IPs for add-node (`hostname -I` strings).
pub fn ip_strings(ips: &[IpAddr]) -> Vec<String> {
    ips.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
