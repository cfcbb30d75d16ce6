//! The daemon-side commands: `status`, `leave`, `remove-node` and `kubectl` (join is in
//! `join`). Each writes the real tool's texts to an [`Output`] and returns its exit code.
//! Argument parsing and the wrappers' file checks ran already in `cli`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::agent::RemoveMember;
use super::control::{Output, Request};
use super::daemon::{Daemon, now_ms};
use super::format::{self, ADDONS, StatusView, addon_enabled};
use super::join::{self, JoinPlan};
use super::nodes;
use super::replica::{ClusterState, Member, NodeKind, Readiness, Role};
use super::state_dir::{LocalMembership, Lock};

/// Runs one CLI request.
pub async fn run(d: Arc<Daemon>, req: Request, o: &Output) -> i32 {
    match req {
        Request::Status {
            format,
            wait_ready,
            timeout,
            addon,
        } => status(&d, &format, wait_ready, timeout, addon.as_deref(), o).await,
        Request::Join {
            ip,
            port,
            token,
            fingerprint,
            worker,
            verify,
        } => {
            let Ok(ip) = ip.parse() else {
                o.out(format::invalid_connection("Invalid master IP"));
                return 1;
            };
            join::run(
                d,
                JoinPlan {
                    ip,
                    port,
                    token,
                    fingerprint,
                    worker,
                    verify,
                },
                o,
            )
            .await
        }
        Request::Leave => leave(&d, o).await,
        Request::RemoveNode { node, force } => remove_node(&d, node, force, o).await,
        Request::Kubectl { args } => super::kubectl::run(&d, &args, o).await,
    }
}

/// Ready as `status` defines it: the API answers and some node is Ready.
pub fn cluster_ready(d: &Daemon) -> bool {
    let g = d.lock();
    d.running(&g)
        && g.local.kind == NodeKind::ControlPlane
        && g.cluster.as_ref().is_some_and(|c| {
            c.nodes
                .values()
                .any(|n| d.readiness(&g, n) == Readiness::Ready)
        })
}

async fn status(
    d: &Daemon,
    fmt: &str,
    wait_ready: bool,
    timeout: i64,
    addon: Option<&str>,
    o: &Output,
) -> i32 {
    let start = Instant::now();
    let ready = loop {
        let ready = cluster_ready(d);
        if ready
            || !wait_ready
            || (timeout > 0 && start.elapsed() > Duration::from_secs(timeout as u64))
        {
            break ready;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let view = {
        let g = d.lock();
        let ha_enabled = d.dir.has(Lock::HaCluster);
        // Without quorum the dqlite CLI finds no leader and status prints `none`.
        let members = match &g.cluster {
            Some(c) if ha_enabled && d.has_quorum(&g) => c
                .members
                .iter()
                .map(|m| (m.address.clone(), m.role))
                .collect(),
            _ => Vec::new(),
        };
        StatusView {
            ready,
            ha_enabled,
            members,
        }
    };
    match addon {
        Some(name) => {
            let found = ADDONS
                .iter()
                .any(|a| a.name == name || format!("core/{}", a.name) == name);
            let name = name.trim_start_matches("core/");
            let on = ready && found && addon_enabled(name);
            o.out(if on { "enabled\n" } else { "disabled\n" });
        }
        None => o.out(format::status(fmt, &view)),
    }
    i32::from(!ready)
}

fn split_endpoints(d: &Daemon, c: Option<&ClusterState>) -> (Vec<String>, Vec<String>) {
    let mut mine = Vec::new();
    let mut others = Vec::new();
    for m in c.map(|c| c.members.as_slice()).unwrap_or_default() {
        let local = m.ip().is_some_and(|ip| d.is_local_ip(&ip.to_string()));
        if local {
            mine.push(m.address.clone())
        } else {
            others.push(m.address.clone())
        }
    }
    (mine, others)
}

async fn pause(d: &Daemon, total: Duration, o: Option<&Output>) {
    let interval = d.cfg.latency.dot_interval();
    match o {
        Some(o) if !interval.is_zero() => {
            let mut waited = Duration::ZERO;
            while waited + interval <= total {
                tokio::time::sleep(interval).await;
                waited += interval;
                o.out(". ");
            }
            tokio::time::sleep(total - waited).await;
        }
        _ => tokio::time::sleep(total).await,
    }
}

/// Re-initialises this host as a fresh single-node cluster (end of `leave`).
fn reinit(d: &Daemon) {
    let mut g = d.lock();
    let state = ClusterState::standalone(&d.host, now_ms(), &mut g.rng);
    if let Err(e) = d.dir.reset_to(&state) {
        log::warn!(error:% = e; "sim: cannot reset the state directory");
    }
    g.local = LocalMembership {
        cluster_id: state.cluster_id.clone(),
        kind: NodeKind::ControlPlane,
        control_planes: Vec::new(),
        broken: false,
    };
    g.cluster = Some(state);
    g.last_seen.clear();
    for lock in [Lock::Clustered, Lock::NoK8sDqlite, Lock::NoCertReissue] {
        let _ = d.dir.clear(lock);
    }
}

fn mark_down(d: &Daemon) {
    let mut g = d.lock();
    g.local.broken = true;
    let local = g.local.clone();
    let _ = d.dir.save_local(&local);
}

async fn leave(d: &Arc<Daemon>, o: &Output) -> i32 {
    let half = {
        let mut g = d.lock();
        d.cfg.latency.leave(&mut g.rng) / 2
    };
    let (kind, cluster) = {
        let g = d.lock();
        (g.local.kind, g.cluster.clone())
    };
    if kind == NodeKind::Worker || d.dir.has(Lock::Clustered) {
        o.out("Configuring services.\n");
        mark_down(d);
        pause(d, half, None).await;
        o.out("Generating new cluster certificates.\n");
        if !d.dir.has(Lock::Clustered) {
            o.out("Not in clustering mode.\n");
            return 2;
        }
        reinit(d);
        o.out(format::WAITING_START);
        pause(d, half, Some(o)).await;
        o.out(" \n");
        return 0;
    }
    let c = cluster.as_ref();
    let voters = c.map_or(0, |c| c.with_role(Role::Voter).count());
    let (mine, others) = split_endpoints(d, c);
    let me_voter = c.is_some_and(|c| {
        c.members
            .iter()
            .any(|m| m.role == Role::Voter && mine.contains(&m.address))
    });
    let total = c.map_or(0, |c| c.members.len());
    if voters == 1 && me_voter && total > 1 {
        o.out(format::LEAVE_SOLE_VOTER);
        return 3;
    }
    // Services stop, then a 10 s sleep, then the dqlite `.remove` through another member.
    mark_down(d);
    pause(d, half, None).await;
    if let (Some(me), Some(target)) = (mine.first(), others.first())
        && !me.contains("127.0.0.1")
    {
        let ip: Option<IpAddr> = target
            .rsplit_once(':')
            .and_then(|(ip, _)| ip.trim_matches(['[', ']']).parse().ok());
        let ok = match ip {
            Some(ip) => d
                .call(
                    ip,
                    "POST",
                    "/sim/v1/remove-member",
                    &RemoveMember {
                        address: me.clone(),
                    },
                    Duration::from_secs(10),
                )
                .await
                .is_ok_and(|r| r.status == 200),
            None => false,
        };
        if !ok {
            o.out(format::contacting_node_failed(target, me));
            return 2;
        }
    }
    o.out("Generating new cluster certificates.\n");
    reinit(d);
    o.out(format::WAITING_START);
    pause(d, half, Some(o)).await;
    o.out(" \n");
    0
}

fn dqlite_delete(d: &Arc<Daemon>, ep: &str, mine: &[String], o: &Output) -> bool {
    if ep.contains("127.0.0.1") {
        return true;
    }
    let Some(via) = mine.first() else { return true };
    let ep_owned = ep.to_owned();
    match d.write(move |c, _, _| c.remove_member(&ep_owned)) {
        Ok(_) => true,
        Err(_) => {
            o.out(format::contacting_node_failed(via, ep));
            false
        }
    }
}

async fn remove_node(d: &Arc<Daemon>, arg: String, force: bool, o: &Output) -> i32 {
    let (cluster, api_up) = {
        let g = d.lock();
        (
            g.cluster.clone().unwrap_or_else(|| empty_cluster(&g.local)),
            d.running(&g),
        )
    };
    let mut node = arg;
    if node.parse::<IpAddr>().is_ok()
        && let Some(n) = cluster.node_by_ip(&node)
    {
        node = n.name.clone();
    }
    let (mine, others) = split_endpoints(d, Some(&cluster));
    let found = if api_up {
        cluster.nodes.get(&node)
    } else {
        None
    };
    let Some(rec) = found else {
        o.err(if api_up {
            format::node_not_found(&node)
        } else {
            format::API_REFUSED.to_owned()
        });
        o.out(format!("Node {node} does not exist in Kubernetes.\n"));
        if force {
            o.out(format!("Attempting to remove {node} from dqlite.\n"));
            let prefix = format!("{node}:");
            for ep in others.iter().filter(|ep| ep.starts_with(&prefix)) {
                o.out("Removing node entry found in dqlite.\n");
                if !dqlite_delete(d, ep, &mine, o) {
                    return 2;
                }
            }
        }
        return 1;
    };
    let prefix = format!("{}:", rec.ip);
    let node_ep = others.iter().rfind(|ep| ep.starts_with(&prefix)).cloned();
    if let Some(ep) = node_ep {
        if !force {
            o.out(format::removal_failed_registered(&node));
            return 1;
        }
        if !dqlite_delete(d, &ep, &mine, o) {
            return 2;
        }
    }
    let name = node.clone();
    if d.write(move |c, _, _| c.nodes.remove(&name)).is_err() {
        o.err(format!(
            "Error from server (Timeout): Timeout: request did not complete within requested timeout - context deadline exceeded\nTraceback (most recent call last):\n  File \"/snap/microk8s/{rev}/scripts/wrappers/remove_node.py\", line 204, in <module>\n    reset(prog_name=\"microk8s remove-node\")\nsubprocess.CalledProcessError: Command '['/snap/microk8s/{rev}/microk8s-kubectl.wrapper', 'delete', 'no', '{node}']' returned non-zero exit status 1.\n",
            rev = format::SNAP_REVISION
        ));
        return 1;
    }
    0
}

fn empty_cluster(local: &LocalMembership) -> ClusterState {
    ClusterState {
        cluster_id: local.cluster_id.clone(),
        version: 0,
        resource_version: 0,
        admin_token: String::new(),
        members: Vec::<Member>::new(),
        nodes: Default::default(),
        configmaps: Default::default(),
        namespaces: Default::default(),
    }
}

/// Node objects as this control plane serves them, sorted by name, with readiness.
pub fn node_objects(d: &Daemon) -> Vec<(serde_json::Value, Vec<String>)> {
    let g = d.lock();
    let now = now_ms();
    g.cluster
        .iter()
        .flat_map(|c| c.nodes.values())
        .map(|n| {
            let r = d.readiness(&g, n);
            (nodes::node_object(n, r, now), nodes::node_cells(n, r, now))
        })
        .collect()
}
