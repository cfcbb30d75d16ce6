//! Tests of the workflow driver: real workflow tasks on a paused tokio clock, each over its own
//! host of the in-memory microk8s twin, their peer calls routed in memory to each other's
//! handles, and a test mesh that carries the fields each one publishes to every other's view.
//! No sockets, no processes; every timer is virtual, so a formation takes milliseconds.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::events::EventBus;
use crate::mesh::MeshView;
use crate::mesh::driver::{Command, test_member};
use crate::mesh::handle::test_handle_with_view;
use crate::microk8s::{FakeMicrok8s, JoinFault, MemoryCluster};
use crate::workflow::outcome::rpc_failure;
use crate::workflow::rpc::{Call, JoinAnswer, JoinAsk, Peers};
use crate::workflow::{FormationStatus, WorkflowHandle, WorkflowSetup};
use muster_core::election::{Claim, ClaimReply, ElectionConfig};
use muster_core::formation::{
    Failure, FormationConfig, JoinRequest, JoinResponse, Outcome, WaitReason,
};
use muster_core::membership::{Member, Status, View};

/// The handles of every workflow, by the address its peers reach it at.
type Directory = Arc<Mutex<HashMap<String, WorkflowHandle>>>;

/// Peer calls delivered in memory to the callee's [`WorkflowHandle`], as `api::peer` would.
struct MemoryPeers {
    from: String,
    directory: Directory,
}

impl MemoryPeers {
    fn handle(&self, addr: &str) -> Option<WorkflowHandle> {
        self.directory.lock().expect("directory").get(addr).cloned()
    }
}

impl Peers for MemoryPeers {
    fn claim(&mut self, addr: &str, claim: &Claim) -> Call<Option<ClaimReply>> {
        let (handle, from, claim) = (self.handle(addr), self.from.clone(), claim.clone());
        Box::pin(async move { handle?.claim(from, claim).await.ok() })
    }

    fn request_join(&mut self, addr: &str, ask: &JoinAsk) -> Call<Result<JoinAnswer, Failure>> {
        let handle = self.handle(addr);
        let req = JoinRequest {
            follower: self.from.clone(),
            name: ask.name.clone(),
            addr: ask.addr.ip(),
            met_on: addr.parse::<SocketAddr>().ok().map(|a| a.ip()),
            preference: ask.preference,
            version: ask.version.clone(),
        };
        Box::pin(async move {
            let handle = handle.ok_or_else(|| rpc_failure(true, "no such peer"))?;
            handle
                .request_join(req)
                .await
                .map_err(|e| rpc_failure(true, e.to_string()))
        })
    }

    fn report(&mut self, addr: &str, outcome: &Outcome) -> Call<()> {
        let (handle, from, outcome) = (self.handle(addr), self.from.clone(), outcome.clone());
        Box::pin(async move {
            if let Some(h) = handle {
                let _ = h.report(from, outcome).await;
            }
        })
    }

    fn request_removal(&mut self, addr: &str, name: &str) -> Call<Result<(), Failure>> {
        let (handle, name) = (self.handle(addr), name.to_owned());
        Box::pin(async move {
            let handle = handle.ok_or_else(|| rpc_failure(true, "no such peer"))?;
            handle
                .removal(name)
                .await
                .map_err(|e| rpc_failure(true, e.to_string()))
        })
    }
}

/// Host `i`'s address.
fn ip(i: usize) -> IpAddr {
    IpAddr::from([198, 18, 0, u8::try_from(i).expect("small lab")])
}

/// Several workflows over one in-memory microk8s, with a test mesh between them.
struct Lab {
    twin: MemoryCluster,
    hosts: Vec<FakeMicrok8s>,
    handles: Vec<WorkflowHandle>,
    status: Vec<watch::Receiver<FormationStatus>>,
    stops: Vec<CancellationToken>,
    /// The members as the test mesh holds them, shared with its task.
    members: Arc<Mutex<Vec<Member>>>,
    /// Changes for the test mesh.
    mesh: mpsc::UnboundedSender<MeshChange>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Lab {
    /// `n` nodes `h1`…`hn` with fast formation settings; `h1` has the best priority.
    fn new(n: usize) -> Self {
        let twin = MemoryCluster::new();
        let directory: Directory = Arc::default();
        let members: Arc<Mutex<Vec<Member>>> = Arc::default();
        let (fields_tx, fields_rx) = mpsc::unbounded_channel();
        let mut views = Vec::new();
        let mut lab = Lab {
            twin: twin.clone(),
            hosts: Vec::new(),
            handles: Vec::new(),
            status: Vec::new(),
            stops: Vec::new(),
            members: members.clone(),
            mesh: fields_tx.clone(),
            _dirs: Vec::new(),
        };
        let tracker = TaskTracker::new();
        for i in 1..=n {
            let name = format!("h{i}");
            let addr = SocketAddr::new(ip(i), 7440);
            let host = twin.add_host(&name, ip(i));
            let mut member = test_member(&name);
            let mut meta = (*member.meta).clone();
            meta.addr = addr.to_string();
            meta.addresses = vec![ip(i).to_string()];
            member.meta = Arc::new(meta);
            members.lock().expect("members").push(member.clone());
            let (mesh, mut commands, _, view_tx) = test_handle_with_view("lab", member);
            views.push(view_tx);
            // The test mesh hears of the fields this node publishes.
            let forward = fields_tx.clone();
            let index = i - 1;
            tokio::spawn(async move {
                while let Some(cmd) = commands.recv().await {
                    if let Command::SetFields(f) = cmd {
                        let _ = forward.send(MeshChange::Fields(index, f));
                    }
                }
            });
            let dir = tempfile::tempdir().expect("tempdir");
            let setup = WorkflowSetup {
                cluster: "lab".into(),
                node_id: name.clone(),
                node_name: name.clone(),
                advertise: addr,
                priority: u32::try_from(i).expect("small"),
                data_dir: dir.path().to_owned(),
                election: ElectionConfig::default(),
                formation: FormationConfig {
                    verify_timeout: Duration::from_secs(20),
                    ..FormationConfig::default()
                },
                microk8s: Arc::new(host.clone()),
            };
            let peers = MemoryPeers {
                from: name.clone(),
                directory: directory.clone(),
            };
            let stop = CancellationToken::new();
            let handle = super::spawn_with(
                setup,
                Box::new(peers),
                i as u64,
                mesh,
                EventBus::new(),
                stop.clone(),
                &tracker,
            )
            .expect("valid settings");
            directory
                .lock()
                .expect("directory")
                .insert(addr.to_string(), handle.clone());
            lab.status.push(handle.status());
            lab.handles.push(handle);
            lab.hosts.push(host);
            lab.stops.push(stop);
            lab._dirs.push(dir);
        }
        tokio::spawn(run_mesh(members, views, fields_rx));
        lab.mesh.send(MeshChange::Republish).expect("mesh runs");
        lab
    }

    /// Waits (on the paused clock) until `done` holds, at most `limit` of virtual time.
    async fn until(&self, what: &str, limit: Duration, done: impl Fn(&Lab) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what} not within {limit:?}; statuses: {:#?}; microk8s calls: {:#?}",
                self.statuses(),
                self.twin.calls()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn statuses(&self) -> Vec<FormationStatus> {
        self.status.iter().map(|s| s.borrow().clone()).collect()
    }

    /// Every node sees one verified cluster of `n` with one entry point.
    fn formed(&self, n: u32) -> bool {
        let s = self.statuses();
        s.iter().filter(|s| s.role == "entry-point").count() == 1
            && s.iter().all(|s| s.cluster.verified && s.cluster.size == n)
    }

    /// Marks node `i` (0-based) dead in every view and stops its workflow and microk8s.
    fn kill(&self, i: usize) {
        self.stops[i].cancel();
        self.twin.stop(&format!("h{}", i + 1));
        {
            let mut members = self.members.lock().expect("members");
            members[i].status = Status::Dead;
            members[i].incarnation += 1;
        }
        self.mesh.send(MeshChange::Republish).expect("mesh runs");
    }
}

/// What the test mesh is told.
enum MeshChange {
    /// Node `index` publishes these fields (merged over its others, as the mesh does).
    Fields(usize, BTreeMap<String, String>),
    /// The test changed the members: publish every view again.
    Republish,
}

/// The test mesh: merges published fields into the members and publishes every node's view.
async fn run_mesh(
    members: Arc<Mutex<Vec<Member>>>,
    views: Vec<watch::Sender<MeshView>>,
    mut changes: mpsc::UnboundedReceiver<MeshChange>,
) {
    let epoch = Instant::now();
    while let Some(change) = changes.recv().await {
        let all = {
            let mut members = members.lock().expect("members");
            if let MeshChange::Fields(i, f) = change {
                let mut meta = (*members[i].meta).clone();
                muster_core::membership::fields::merge(&mut meta.fields, f);
                meta.meta_version += 1;
                members[i].meta = Arc::new(meta);
            }
            members.clone()
        };
        for (i, tx) in views.iter().enumerate() {
            let mut others: Vec<Member> = all
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, m)| m.clone())
                .collect();
            others.sort_by(|a, b| a.id().cmp(b.id()));
            tx.send_replace(MeshView {
                view: View {
                    local: all[i].clone(),
                    members: others,
                },
                epoch,
            });
        }
    }
}

#[tokio::test(start_paused = true)]
async fn three_nodes_form_one_verified_cluster_with_one_entry_point() {
    let lab = Lab::new(3);
    lab.until("a 3-node cluster", Duration::from_secs(120), |l| {
        l.formed(3)
    })
    .await;
    let s = lab.statuses();
    assert_eq!(s[0].role, "entry-point", "h1 has the best priority");
    assert!(s[1..].iter().all(|s| s.role == "control-plane"), "{s:#?}");
    assert!(s.iter().all(|s| s.cluster.entry_point == "h1"));
    let mut members = lab.twin.cluster_members("h1");
    members.sort();
    assert_eq!(members, ["h1", "h2", "h3"]);
    // Serialised: every add-node and join ran on the expected host, one join per follower.
    let joins: Vec<String> = lab
        .twin
        .calls()
        .into_iter()
        .filter(|(_, c)| c.as_str().contains(" join "))
        .map(|(host, _)| host)
        .collect();
    assert_eq!(joins.len(), 2, "{joins:?}");
    assert!(joins.contains(&"h2".to_owned()) && joins.contains(&"h3".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn a_join_that_never_completes_is_reset_with_leave_and_retried() {
    let lab = Lab::new(2);
    // h2's first join prints success, exits 0 and never completes.
    lab.twin.set_join_fault("h2", JoinFault::Silent);
    lab.until(
        "h2 resets its half-joined microk8s",
        Duration::from_secs(60),
        |l| {
            l.twin
                .calls()
                .iter()
                .any(|(host, c)| host == "h2" && c.as_str().ends_with(" leave"))
        },
    )
    .await;
    lab.until("the retry joins", Duration::from_secs(300), |l| l.formed(2))
        .await;
    let joins = lab
        .twin
        .calls()
        .iter()
        .filter(|(host, c)| host == "h2" && c.as_str().contains(" join "))
        .count();
    assert_eq!(joins, 2, "one silent failure, one retry");
}

#[tokio::test(start_paused = true)]
async fn a_node_that_is_not_the_entry_point_tells_followers_to_ask_again() {
    let lab = Lab::new(2);
    lab.until("a 2-node cluster", Duration::from_secs(120), |l| {
        l.formed(2)
    })
    .await;
    let answer = lab.handles[1]
        .request_join(JoinRequest {
            follower: "h9".into(),
            name: "h9".into(),
            addr: ip(9),
            met_on: None,
            preference: Default::default(),
            version: None,
        })
        .await
        .expect("answers");
    assert!(
        matches!(
            answer.response,
            JoinResponse::Wait {
                reason: WaitReason::NotEntry,
                ..
            }
        ),
        "{answer:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_queued_follower_is_answered_by_the_long_poll_when_its_grant_exists() {
    let lab = Lab::new(2);
    lab.until("a 2-node cluster", Duration::from_secs(120), |l| {
        l.formed(2)
    })
    .await;
    // A stranger to the mesh asks h1 (the entry point) directly; its join is granted on the
    // held call itself, without asking again.
    let _stranger = lab.twin.add_host("h9", ip(9));
    let started = Instant::now();
    let answer = lab.handles[0]
        .request_join(JoinRequest {
            follower: "h9".into(),
            name: "h9".into(),
            addr: ip(9),
            met_on: Some(ip(1)),
            preference: Default::default(),
            version: None,
        })
        .await
        .expect("answers");
    assert!(
        matches!(answer.response, JoinResponse::Granted { .. }),
        "{answer:?}"
    );
    assert!(
        started.elapsed() < muster_core::formation::pacing::JOIN_HOLD,
        "answered within the hold"
    );
    assert!(!answer.cluster_id.is_empty(), "a grant names the cluster");
}

#[tokio::test(start_paused = true)]
async fn muster_leave_leaves_microk8s_and_the_entry_point_removes_the_node() {
    let lab = Lab::new(3);
    lab.until("a 3-node cluster", Duration::from_secs(120), |l| {
        l.formed(3)
    })
    .await;
    let message = lab.handles[2].leave().await;
    assert!(message.contains("h1 removes this node"), "{message}");
    lab.until("h3 removed", Duration::from_secs(60), |l| {
        !l.twin.cluster_members("h1").contains(&"h3".to_owned())
    })
    .await;
    assert!(
        lab.twin
            .calls()
            .iter()
            .any(|(host, c)| host == "h1" && c.as_str().contains("remove-node h3")),
        "the entry point ran remove-node"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dead_entry_point_is_replaced_and_status_follows() {
    let lab = Lab::new(4);
    lab.until("a 4-node cluster", Duration::from_secs(120), |l| {
        l.formed(4)
    })
    .await;
    lab.kill(0);
    lab.until("a new entry point", Duration::from_secs(120), |l| {
        let s = l.statuses();
        s[1..].iter().filter(|s| s.role == "entry-point").count() == 1
            && s[1..].iter().all(|s| s.cluster.entry_point == "h2")
    })
    .await;
    let s = lab.statuses();
    assert!(s[1].cluster.term > s[0].cluster.term, "{s:#?}");
    // The dead voter is still registered: joins are blocked and status says so.
    assert!(
        s[1].warnings.iter().any(|w| w.contains("h1")),
        "{:?}",
        s[1].warnings
    );
}
