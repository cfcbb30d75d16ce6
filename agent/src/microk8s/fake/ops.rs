//! The commands of the in-memory twin: [`Microk8s`] for [`FakeMicrok8s`].
//!
//! Each method records its redacted command line, then applies the microk8s rule it models
//! to the shared [`World`] under one lock; no lock is held across an `.await` (there is none).

use super::*;

/// Excerpt text for twin errors: the line the real CLI would print.
fn said(line: &str) -> String {
    format!("stdout: {line}")
}

impl FakeMicrok8s {
    /// The hostname this handle acts on.
    pub fn hostname(&self) -> &str {
        &self.host
    }

    /// Records the command and runs `f` on the world with this host's name and command line.
    fn exec<T: Send + 'static>(
        &self,
        args: &[&str],
        f: impl FnOnce(&mut World, &str, &CommandLine) -> Result<T, Microk8sError>,
    ) -> Microk8sFuture<'static, T> {
        let command = CommandLine::new("microk8s", args);
        let mut w = lock(&self.world);
        w.calls.push((self.host.clone(), command.clone()));
        let result = if w.hosts.contains_key(&self.host) {
            f(&mut w, &self.host, &command)
        } else {
            Err(Microk8sError::Spawn {
                command,
                program: "microk8s".into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "host removed from the model",
                ),
            })
        };
        Box::pin(std::future::ready(result))
    }
}

/// The host, which `exec` checked exists.
fn host<'w>(w: &'w World, name: &str) -> &'w Host {
    &w.hosts[name]
}

fn host_mut<'w>(w: &'w mut World, name: &str) -> &'w mut Host {
    w.hosts
        .get_mut(name)
        .unwrap_or_else(|| unreachable!("exec checked that host {name} exists"))
}

/// Stopped and worker hosts refuse control-plane commands alike.
fn control_plane_only(w: &World, name: &str, command: &CommandLine) -> Result<(), Microk8sError> {
    let h = host(w, name);
    if !h.running {
        Err(Microk8sError::Stopped {
            command: command.clone(),
        })
    } else if h.role == Role::Worker {
        Err(Microk8sError::WorkerNode {
            command: command.clone(),
        })
    } else {
        Ok(())
    }
}

fn add_node(
    w: &mut World,
    name: &str,
    command: &CommandLine,
    token: &JoinToken,
    ttl: TokenTtl,
) -> Result<AddNodeOutput, Microk8sError> {
    control_plane_only(w, name, command)?;
    let now = w.now;
    let h = host_mut(w, name);
    let expiry = match ttl {
        TokenTtl::SingleUse => None,
        TokenTtl::Expires(d) => Some(now + Duration::from_secs(d.as_secs().max(1))),
    };
    h.tokens.push((token.expose().to_owned(), expiry));
    let fp = fingerprint(name);
    let url = JoinUrl::new(
        h.ip.to_string(),
        CLUSTER_AGENT_PORT,
        token.clone(),
        Some(fp.clone()),
    );
    Ok(AddNodeOutput {
        token: token.clone(),
        fingerprint: Some(fp),
        urls: vec![url],
    })
}

fn join(
    w: &mut World,
    joiner: &str,
    command: &CommandLine,
    url: &JoinUrl,
    role: Role,
) -> Result<JoinOutcome, Microk8sError> {
    let fail = |code, failure: JoinFailure, line: &str| Microk8sError::Join {
        command: command.clone(),
        code: Some(code),
        failure,
        excerpt: said(line),
    };
    let reject = |reason, status, message: &str| {
        let line = format!("Connection failed. {message} ({status}).");
        fail(
            6,
            JoinFailure::Rejected {
                reason,
                status: Some(status),
                message: message.to_owned(),
            },
            &line,
        )
    };
    let unreachable = || {
        let detail = "ConnectionRefusedError: [Errno 111] Connection refused";
        fail(
            1,
            JoinFailure::Unreachable {
                detail: detail.to_owned(),
            },
            detail,
        )
    };
    let fault = host_mut(w, joiner).join_fault.take();
    let joiner_ip = host(w, joiner).ip;
    let entry = match url.ip().and_then(|ip| w.host_by_ip(ip)) {
        Some((name, h)) if h.running && h.reachable && url.port() == CLUSTER_AGENT_PORT => {
            name.clone()
        }
        _ => return Err(unreachable()),
    };
    if fault == Some(JoinFault::Unreachable) {
        return Err(unreachable());
    }
    if let Some(fp) = url.fingerprint()
        && !fingerprint(&entry).starts_with(fp)
    {
        let line = format!(
            "Joining cluster failed. Could not verify the identity of {}.",
            url.host()
        );
        return Err(fail(
            4,
            JoinFailure::Fingerprint {
                detail: line.clone(),
            },
            &line,
        ));
    }
    // Check 1 consumes a single-use token before anything else can fail.
    let now = w.now;
    let e = host_mut(w, &entry);
    let valid = match e.tokens.iter().position(|(t, _)| t == url.token().expose()) {
        Some(i) => match e.tokens[i].1 {
            None => {
                e.tokens.remove(i);
                true
            }
            Some(expiry) => now < expiry,
        },
        None => false,
    };
    if !valid {
        return Err(reject(JoinRejection::InvalidToken, 500, "Invalid token"));
    }
    if let Some(JoinFault::Reject(reason)) = fault {
        return Err(reject(reason, 500, &format!("{reason:?} (injected)")));
    }
    let (entry_ip, cluster) = (host(w, &entry).ip, host(w, &entry).cluster);
    if joiner_ip == entry_ip {
        let m = format!("The joining node has the same IP ({joiner_ip}) as the node we contact");
        return Err(reject(JoinRejection::SameIp, 503, &m));
    }
    let joiner_addr = dqlite_addr(joiner_ip);
    let c = w
        .clusters
        .get_mut(&cluster)
        .unwrap_or_else(|| unreachable!("host cluster exists"));
    if c.dqlite.iter().any(|(a, _)| *a == joiner_addr) {
        let m = format!(
            "Failed to retrieve dqlite cluster nodes: the joining node ({joiner_ip}) is already known to dqlite"
        );
        return Err(reject(JoinRejection::AlreadyKnown, 500, &m));
    }
    // The first join re-binds the entry's dqlite to the contacted address.
    for (addr, _) in &mut c.dqlite {
        if addr.starts_with("127.0.0.1:") {
            *addr = dqlite_addr(entry_ip);
        }
    }
    host_mut(w, &entry).clustered = true;
    // The joiner discards its own state; an old multi-node cluster keeps it as a ghost.
    let old = host(w, joiner).cluster;
    if w.hosts.values().filter(|h| h.cluster == old).count() == 1 {
        w.clusters.remove(&old);
    }
    let silent = fault == Some(JoinFault::Silent);
    if role == Role::ControlPlane && !silent {
        let dq_role = w.next_role(cluster);
        if let Some(c) = w.clusters.get_mut(&cluster) {
            c.dqlite.push((joiner_addr, dq_role));
        }
    }
    if let Some(c) = w.clusters.get_mut(&cluster) {
        c.nodes.insert(
            joiner.to_lowercase(),
            NodeObj {
                ip: joiner_ip,
                role,
                host: joiner.to_owned(),
            },
        );
    }
    let j = host_mut(w, joiner);
    j.cluster = cluster;
    j.role = role;
    j.clustered = true;
    j.broken = silent;
    j.tokens.clear();
    Ok(JoinOutcome {
        confirmed: true,
        contacted: Some(entry_ip.to_string()),
        warnings: Vec::new(),
    })
}

fn leave(w: &mut World, name: &str, command: &CommandLine) -> Result<(), Microk8sError> {
    let fail = |code, failure, line: &str| Microk8sError::Leave {
        command: command.clone(),
        code: Some(code),
        failure,
        excerpt: said(line),
    };
    let h = host(w, name);
    if !h.running {
        return Err(Microk8sError::Stopped {
            command: command.clone(),
        });
    }
    if !h.clustered {
        return Err(fail(
            1,
            LeaveFailure::NotClustered,
            "This MicroK8s deployment is not acting as a node in a cluster.",
        ));
    }
    let (cluster, addr) = (h.cluster, dqlite_addr(h.ip));
    if h.role == Role::ControlPlane {
        let c = &w.clusters[&cluster];
        let voters: Vec<&String> = c
            .dqlite
            .iter()
            .filter(|(_, r)| *r == DqliteRole::Voter)
            .map(|(a, _)| a)
            .collect();
        if voters == [&addr] && c.dqlite.len() > 1 {
            let line = "This node currently holds the only copy of the Kubernetes database so it cannot leave the cluster.";
            return Err(fail(3, LeaveFailure::OnlyVoter, line));
        }
        if !w.has_quorum(cluster) {
            return Err(fail(
                2,
                LeaveFailure::NoQuorum,
                "Contacting node failed. Error:",
            ));
        }
        if let Some(c) = w.clusters.get_mut(&cluster) {
            c.dqlite.retain(|(a, _)| *a != addr);
        }
        w.rebalance(cluster);
    }
    // The Node object stays behind, NotReady, until remove-node.
    w.reset_host(name);
    Ok(())
}

fn remove_node(
    w: &mut World,
    name: &str,
    command: &CommandLine,
    target: &str,
    force: bool,
) -> Result<RemoveOutcome, Microk8sError> {
    control_plane_only(w, name, command)?;
    let fail = |code, failure, line: &str| Microk8sError::RemoveNode {
        command: command.clone(),
        code: Some(code),
        failure,
        excerpt: said(line),
    };
    let cluster = host(w, name).cluster;
    let c = &w.clusters[&cluster];
    let by_ip: Option<IpAddr> = target.parse().ok();
    let found = c
        .nodes
        .iter()
        .find(|(n, o)| n.as_str() == target.to_lowercase() || by_ip == Some(o.ip))
        .map(|(n, o)| (n.clone(), o.ip));
    let Some((node, ip)) = found else {
        let mut purged = false;
        if force {
            let prefix = format!("{target}:");
            let ghost = c.dqlite.iter().position(|(a, _)| {
                a.starts_with(&prefix) || a.starts_with(&format!("[{target}]:"))
            });
            if let Some(i) = ghost {
                if !w.has_quorum(cluster) {
                    return Err(fail(
                        2,
                        RemoveFailure::ContactFailed,
                        "Contacting node failed. Error:",
                    ));
                }
                if let Some(c) = w.clusters.get_mut(&cluster) {
                    c.dqlite.remove(i);
                }
                w.rebalance(cluster);
                purged = true;
            }
        }
        return Ok(RemoveOutcome::NotInKubernetes {
            dqlite_checked: force,
            purged_from_dqlite: purged,
        });
    };
    let addr = dqlite_addr(ip);
    if let Some(i) = c.dqlite.iter().position(|(a, _)| *a == addr) {
        if !force {
            let line = format!("Removal failed. Node {node} is registered with dqlite.");
            return Err(fail(1, RemoveFailure::RegisteredWithDqlite, &line));
        }
        if !w.has_quorum(cluster) {
            return Err(fail(
                2,
                RemoveFailure::ContactFailed,
                "Contacting node failed. Error:",
            ));
        }
        if let Some(c) = w.clusters.get_mut(&cluster) {
            c.dqlite.remove(i);
        }
        w.rebalance(cluster);
    }
    let Some(c) = w.clusters.get_mut(&cluster) else {
        return Ok(RemoveOutcome::Removed);
    };
    if let Some(obj) = c.nodes.remove(&node) {
        // A worker that never left re-registers its Node at once.
        let live_worker = w
            .hosts
            .get(&obj.host)
            .is_some_and(|h| h.cluster == cluster && h.running && h.role == Role::Worker);
        if live_worker && let Some(c) = w.clusters.get_mut(&cluster) {
            c.nodes.insert(node, obj);
        }
    }
    Ok(RemoveOutcome::Removed)
}

fn status(w: &World, name: &str) -> Status {
    let h = host(w, name);
    if !h.running {
        return Status::Stopped;
    }
    if h.role == Role::Worker {
        return Status::Worker;
    }
    let datastore: Vec<DatastoreMember> = w.clusters[&h.cluster]
        .dqlite
        .iter()
        .map(|(address, role)| DatastoreMember {
            address: address.clone(),
            role: *role,
        })
        .collect();
    if h.broken || !w.has_quorum(h.cluster) {
        return Status::NotReady { datastore };
    }
    let voters = datastore
        .iter()
        .filter(|m| m.role == DqliteRole::Voter)
        .count();
    Status::Running(ClusterStatus {
        high_availability: voters >= 3,
        datastore,
        etcd_endpoints: Vec::new(),
        addons_enabled: vec!["dns".into(), "ha-cluster".into()],
    })
}

fn nodes(w: &World, name: &str, command: &CommandLine) -> Result<Vec<NodeInfo>, Microk8sError> {
    control_plane_only(w, name, command)?;
    let cluster = host(w, name).cluster;
    let version = w.version.clone();
    Ok(w.clusters[&cluster]
        .nodes
        .iter()
        .map(|(n, o)| NodeInfo {
            name: n.clone(),
            readiness: w.readiness(cluster, o),
            internal_ip: Some(o.ip),
            role: Some(o.role),
            kubelet_version: Some(version.clone()),
            unschedulable: false,
        })
        .collect())
}

fn kubeconfig(w: &World, name: &str, command: &CommandLine) -> Result<Kubeconfig, Microk8sError> {
    control_plane_only(w, name, command)?;
    let h = host(w, name);
    let text = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: ZmFrZS1jYS0{}\n    server: https://{}:16443\n  name: microk8s-cluster\ncontexts:\n- context:\n    cluster: microk8s-cluster\n    user: admin\n  name: microk8s\ncurrent-context: microk8s\nkind: Config\npreferences: {{}}\nusers:\n- name: admin\n  user:\n    client-certificate-data: ZmFrZQ==\n    client-key-data: ZmFrZS1rZXk=\n\n",
        h.cluster, h.ip
    );
    Ok(Kubeconfig::new(text))
}

impl Microk8s for FakeMicrok8s {
    fn status(&self, wait_ready: Option<Duration>) -> Microk8sFuture<'_, Status> {
        let args: &[&str] = if wait_ready.is_some() {
            &["status", "--format", "yaml", "--wait-ready"]
        } else {
            &["status", "--format", "yaml"]
        };
        self.exec(args, |w, name, _| Ok(status(w, name)))
    }

    fn add_node<'a>(
        &'a self,
        token: &'a JoinToken,
        ttl: TokenTtl,
    ) -> Microk8sFuture<'a, AddNodeOutput> {
        let ttl_arg = ttl.as_arg();
        let args = [
            "add-node",
            "--token",
            "<redacted>",
            "--token-ttl",
            &ttl_arg,
            "--format",
            "json",
        ];
        self.exec(&args, |w, name, cmd| add_node(w, name, cmd, token, ttl))
    }

    fn join<'a>(&'a self, url: &'a JoinUrl, role: Role) -> Microk8sFuture<'a, JoinOutcome> {
        let shown = url.to_string();
        let mut args = vec!["join", shown.as_str()];
        if role == Role::Worker {
            args.push("--worker");
        }
        self.exec(&args, |w, name, cmd| join(w, name, cmd, url, role))
    }

    fn leave(&self) -> Microk8sFuture<'_, ()> {
        self.exec(&["leave"], leave)
    }

    fn remove_node<'a>(&'a self, node: &'a str, force: bool) -> Microk8sFuture<'a, RemoveOutcome> {
        let mut args = vec!["remove-node", node];
        if force {
            args.push("--force");
        }
        self.exec(&args, |w, name, cmd| remove_node(w, name, cmd, node, force))
    }

    fn nodes(&self) -> Microk8sFuture<'_, Vec<NodeInfo>> {
        self.exec(
            &["kubectl", "get", "nodes", "-o", "json"],
            |w, name, cmd| nodes(w, name, cmd),
        )
    }

    fn kubeconfig(&self) -> Microk8sFuture<'_, Kubeconfig> {
        self.exec(&["config"], |w, name, cmd| kubeconfig(w, name, cmd))
    }

    fn version(&self) -> Microk8sFuture<'_, Option<Microk8sVersion>> {
        self.exec(&["version"], |w, _, _| {
            let mut v = Microk8sVersion::parse(&w.version);
            if let Some(v) = v.as_mut() {
                v.revision = Some("fake".into());
            }
            Ok(v)
        })
    }
}
