//! The workflow's peer RPC glue: election claims, join requests, reports and removal requests
//! between agents (`muster.v1.Peer`), converted to and from the pure cores' types, and the
//! client side of those calls ([`PeerClients`]). The server side is `api::peer`, which calls
//! the conversions here. Decoding never panics; what a peer sends that makes no sense becomes
//! an error that names it.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use muster_proto::v1 as pb;
use pb::peer_client::PeerClient;
use tonic::transport::{Channel, Endpoint};

use super::outcome::rpc_failure;
use muster_core::election::{Claim, ClaimReply, Refusal};
use muster_core::formation::{
    EntryRefusal, Failure, JoinResponse, JoinRole, Outcome, RolePreference, WaitReason,
};

/// Timeout of one call to a peer (and of connecting to it).
pub const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// What the entry point answers a join request: the coordinator's response and the cluster's
/// id, which a granted worker remembers (it cannot read the cluster's credentials itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinAnswer {
    /// The coordinator's response.
    pub response: JoinResponse,
    /// The entry point's cluster id (empty when unknown).
    pub cluster_id: String,
}

/// What this node asks the entry point in a join request.
#[derive(Clone, Debug)]
pub struct JoinAsk {
    /// This node's name.
    pub name: String,
    /// The address peers reach this node at.
    pub addr: SocketAddr,
    /// This node's wish.
    pub preference: RolePreference,
    /// Its microk8s `major.minor`, when known.
    pub version: Option<String>,
}

/// A call in flight, to be spawned by the driver.
pub type Call<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The calls this agent makes to other agents' `Peer` services. [`PeerClients`] makes them
/// over gRPC; tests put an in-memory twin in its place.
pub trait Peers: Send {
    /// Sends `claim` to the agent at `addr`; `None` when it did not answer.
    fn claim(&mut self, addr: &str, claim: &Claim) -> Call<Option<ClaimReply>>;
    /// Asks the entry point at `addr` for a join.
    fn request_join(&mut self, addr: &str, ask: &JoinAsk) -> Call<Result<JoinAnswer, Failure>>;
    /// Reports the outcome of this node's join to the entry point at `addr`.
    fn report(&mut self, addr: &str, outcome: &Outcome) -> Call<()>;
    /// Asks the entry point at `addr` to remove node `name` (after its `microk8s leave`).
    fn request_removal(&mut self, addr: &str, name: &str) -> Call<Result<(), Failure>>;
}

/// Clients of the other agents' `Peer` services over gRPC: one lazily connected channel per
/// address, every request stamped with this node's cluster and id.
#[derive(Debug)]
pub struct PeerClients {
    cluster: String,
    from: String,
    clients: HashMap<String, PeerClient<Channel>>,
}

impl PeerClients {
    /// Clients for node `from` of `cluster`.
    pub fn new(cluster: String, from: String) -> Self {
        PeerClients {
            cluster,
            from,
            clients: HashMap::new(),
        }
    }

    fn client(&mut self, addr: &str) -> Result<PeerClient<Channel>, Failure> {
        if let Some(c) = self.clients.get(addr) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| rpc_failure(true, format!("bad peer address {addr:?}: {e}")))?;
        let c = PeerClient::new(
            endpoint
                .connect_timeout(RPC_TIMEOUT)
                .timeout(RPC_TIMEOUT)
                .connect_lazy(),
        );
        self.clients.insert(addr.to_owned(), c.clone());
        Ok(c)
    }
}

impl Peers for PeerClients {
    fn claim(&mut self, addr: &str, claim: &Claim) -> Call<Option<ClaimReply>> {
        let client = self.client(addr);
        let req = claim_to_pb(&self.cluster, &self.from, claim);
        Box::pin(async move {
            let mut client = client.ok()?;
            client
                .claim(req)
                .await
                .ok()
                .map(|r| reply_from_pb(r.into_inner()))
        })
    }

    fn request_join(&mut self, addr: &str, ask: &JoinAsk) -> Call<Result<JoinAnswer, Failure>> {
        let client = self.client(addr);
        let req = pb::JoinRequestMsg {
            cluster: self.cluster.clone(),
            from: self.from.clone(),
            name: ask.name.clone(),
            addr: ask.addr.to_string(),
            preference: preference_word(ask.preference).to_owned(),
            version: ask.version.clone().unwrap_or_default(),
        };
        Box::pin(async move {
            let reply = client?
                .request_join(req)
                .await
                .map_err(|e| status_failure(&e))?;
            response_from_pb(reply.into_inner()).map_err(|e| rpc_failure(false, e.to_string()))
        })
    }

    fn report(&mut self, addr: &str, outcome: &Outcome) -> Call<()> {
        let client = self.client(addr);
        let req = pb::JoinReportMsg {
            cluster: self.cluster.clone(),
            from: self.from.clone(),
            ok: outcome.is_ok(),
            detail: match outcome {
                Ok(()) => "microk8s join exited 0".to_owned(),
                Err(f) => f.detail.clone(),
            },
        };
        Box::pin(async move {
            if let Ok(mut client) = client {
                let _ = client.report_join(req).await;
            }
        })
    }

    fn request_removal(&mut self, addr: &str, name: &str) -> Call<Result<(), Failure>> {
        let client = self.client(addr);
        let req = pb::RemovalRequest {
            cluster: self.cluster.clone(),
            from: self.from.clone(),
            name: name.to_owned(),
        };
        Box::pin(async move {
            let call = async {
                client?
                    .request_removal(req)
                    .await
                    .map_err(|e| status_failure(&e))
            };
            match tokio::time::timeout(RPC_TIMEOUT, call).await {
                Ok(result) => result.map(drop),
                Err(_) => Err(rpc_failure(true, "the entry point did not answer")),
            }
        })
    }
}

/// A failed call: unreachable (transport, timeout, unavailable) or refused.
fn status_failure(s: &tonic::Status) -> Failure {
    let unreachable = matches!(
        s.code(),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
    );
    rpc_failure(unreachable, s.message())
}

/// A follower's report from the wire (the wire carries no failure kind).
pub fn report_from_pb(ok: bool, detail: String) -> Outcome {
    if ok {
        Ok(())
    } else {
        Err(Failure::new(
            muster_core::formation::FailureKind::Other,
            detail,
        ))
    }
}

/// A claim to its request.
pub fn claim_to_pb(cluster: &str, from: &str, c: &Claim) -> pb::ClaimRequest {
    pb::ClaimRequest {
        cluster: cluster.to_owned(),
        from: from.to_owned(),
        term: c.term,
        electorate_digest: c.electorate_digest,
        electorate_size: c.electorate_size,
    }
}

/// A request to a claim.
pub fn claim_from_pb(r: &pb::ClaimRequest) -> Claim {
    Claim {
        term: r.term,
        electorate_digest: r.electorate_digest,
        electorate_size: r.electorate_size,
    }
}

/// A reply to its response.
pub fn reply_to_pb(r: &ClaimReply) -> pb::ClaimResponse {
    use pb::claim_refusal::Kind;
    let refusal = r.refusal.as_ref().map(|x| pb::ClaimRefusal {
        kind: Some(match x {
            Refusal::StaleTerm { voted_term } => Kind::StaleTerm(*voted_term),
            Refusal::AlreadyVoted { voted_for } => Kind::AlreadyVotedFor(voted_for.clone()),
            Refusal::NotOurChoice { choice } => {
                Kind::NotOurChoice(choice.clone().unwrap_or_default())
            }
            Refusal::ElectorateMismatch { theirs, ours } => {
                Kind::ElectorateMismatch(pb::ElectorateSizes {
                    theirs: *theirs,
                    ours: *ours,
                })
            }
        }),
    });
    pb::ClaimResponse {
        term: r.term,
        granted: r.granted,
        seen_term: r.seen_term,
        refusal,
    }
}

/// A response to a reply.
pub fn reply_from_pb(r: pb::ClaimResponse) -> ClaimReply {
    use pb::claim_refusal::Kind;
    let refusal = r.refusal.and_then(|x| x.kind).map(|k| match k {
        Kind::StaleTerm(t) => Refusal::StaleTerm { voted_term: t },
        Kind::AlreadyVotedFor(v) => Refusal::AlreadyVoted { voted_for: v },
        Kind::NotOurChoice(c) => Refusal::NotOurChoice {
            choice: Some(c).filter(|c| !c.is_empty()),
        },
        Kind::ElectorateMismatch(s) => Refusal::ElectorateMismatch {
            theirs: s.theirs,
            ours: s.ours,
        },
    });
    ClaimReply {
        term: r.term,
        granted: r.granted,
        seen_term: r.seen_term,
        refusal,
    }
}

/// The wire word of a role.
pub fn role_word(r: JoinRole) -> &'static str {
    match r {
        JoinRole::ControlPlane => "control-plane",
        JoinRole::Worker => "worker",
    }
}

/// The wire word of a preference.
pub fn preference_word(p: RolePreference) -> &'static str {
    match p {
        RolePreference::Auto => "auto",
        RolePreference::ControlPlane => "control-plane",
        RolePreference::Worker => "worker",
    }
}

/// A preference from its word (unknown words mean "auto").
pub fn preference_from(word: &str) -> RolePreference {
    match word {
        "control-plane" => RolePreference::ControlPlane,
        "worker" => RolePreference::Worker,
        _ => RolePreference::Auto,
    }
}

fn wait_reason_word(r: &WaitReason) -> String {
    match r {
        WaitReason::Queued => "queued".to_owned(),
        WaitReason::Preparing => "preparing a token".to_owned(),
        WaitReason::Verifying => "verifying".to_owned(),
        WaitReason::Blocked(b) => format!("blocked: {b:?}"),
        WaitReason::NotEntry => "not the entry point".to_owned(),
    }
}

/// The entry point's answer on the wire, with its cluster id for granted followers.
pub fn response_to_pb(r: &JoinResponse, cluster_id: &str) -> pb::JoinResponseMsg {
    use pb::join_response_msg::Answer;
    let answer = match r {
        JoinResponse::Granted { url, role } => Answer::Granted(pb::JoinGrant {
            url: url.clone(),
            role: role_word(*role).to_owned(),
            cluster_id: cluster_id.to_owned(),
        }),
        JoinResponse::Wait {
            position,
            retry_after,
            reason,
        } => Answer::Wait(pb::JoinWait {
            position: *position,
            retry_after_ms: retry_after.as_millis() as u64,
            reason: wait_reason_word(reason),
        }),
        JoinResponse::Refused(why) => Answer::Refused(refusal_word(why)),
    };
    pb::JoinResponseMsg {
        answer: Some(answer),
    }
}

/// Why a join response could not be understood.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// No answer at all.
    #[error("the entry point sent an empty join response")]
    Empty,
    /// A grant with an unknown role.
    #[error("the entry point granted an unknown role {0:?}")]
    BadRole(String),
    /// A refusal this agent does not know.
    #[error("the entry point sent an unknown refusal {0:?}")]
    BadRefusal(String),
}

/// An entry refusal as `already-member`, `name-taken:NAME` or `mixed-versions:F:E`.
fn refusal_word(r: &EntryRefusal) -> String {
    match r {
        EntryRefusal::AlreadyMember => "already-member".to_owned(),
        EntryRefusal::NameTaken { name } => format!("name-taken:{name}"),
        EntryRefusal::MixedVersions { follower, entry } => {
            format!("mixed-versions:{follower}:{entry}")
        }
    }
}

fn refusal_from(word: &str) -> Result<EntryRefusal, ResponseError> {
    let mut parts = word.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("already-member"), None, None) => Ok(EntryRefusal::AlreadyMember),
        (Some("name-taken"), Some(name), None) => Ok(EntryRefusal::NameTaken {
            name: name.to_owned(),
        }),
        (Some("mixed-versions"), Some(f), Some(e)) => Ok(EntryRefusal::MixedVersions {
            follower: f.to_owned(),
            entry: e.to_owned(),
        }),
        _ => Err(ResponseError::BadRefusal(word.chars().take(80).collect())),
    }
}

/// A response from the wire: the core's answer and the cluster id of a grant.
pub fn response_from_pb(r: pb::JoinResponseMsg) -> Result<JoinAnswer, ResponseError> {
    use pb::join_response_msg::Answer;
    let answer = |response| JoinAnswer {
        response,
        cluster_id: String::new(),
    };
    match r.answer.ok_or(ResponseError::Empty)? {
        Answer::Granted(g) => {
            let role = match g.role.as_str() {
                "control-plane" => JoinRole::ControlPlane,
                "worker" => JoinRole::Worker,
                other => return Err(ResponseError::BadRole(other.to_owned())),
            };
            Ok(JoinAnswer {
                response: JoinResponse::Granted { url: g.url, role },
                cluster_id: g.cluster_id,
            })
        }
        Answer::Wait(w) => Ok(answer(JoinResponse::Wait {
            position: w.position,
            retry_after: Duration::from_millis(w.retry_after_ms.clamp(10, 60_000)),
            reason: WaitReason::Queued,
        })),
        Answer::Refused(why) => Ok(answer(JoinResponse::Refused(refusal_from(&why)?))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_and_replies_round_trip() {
        let c = Claim {
            term: 7,
            electorate_digest: 0xdead_beef,
            electorate_size: 5,
        };
        assert_eq!(claim_from_pb(&claim_to_pb("lab", "a", &c)), c);
        for refusal in [
            None,
            Some(Refusal::StaleTerm { voted_term: 9 }),
            Some(Refusal::AlreadyVoted {
                voted_for: "b".into(),
            }),
            Some(Refusal::NotOurChoice {
                choice: Some("c".into()),
            }),
            Some(Refusal::NotOurChoice { choice: None }),
            Some(Refusal::ElectorateMismatch { theirs: 3, ours: 4 }),
        ] {
            let r = ClaimReply {
                term: 7,
                granted: refusal.is_none(),
                seen_term: 9,
                refusal,
            };
            assert_eq!(reply_from_pb(reply_to_pb(&r)), r);
        }
    }

    #[test]
    fn grants_carry_role_and_cluster() {
        let g = JoinResponse::Granted {
            url: "198.18.0.1:25000/t/f".into(),
            role: JoinRole::Worker,
        };
        let back = response_from_pb(response_to_pb(&g, "c1")).expect("valid");
        assert_eq!(back.response, g);
        assert_eq!(back.cluster_id, "c1");
        assert_eq!(
            response_from_pb(pb::JoinResponseMsg { answer: None }),
            Err(ResponseError::Empty)
        );
        let bad = pb::JoinResponseMsg {
            answer: Some(pb::join_response_msg::Answer::Granted(pb::JoinGrant {
                role: "boss".into(),
                ..Default::default()
            })),
        };
        assert_eq!(
            response_from_pb(bad),
            Err(ResponseError::BadRole("boss".into()))
        );
        for r in [
            EntryRefusal::AlreadyMember,
            EntryRefusal::NameTaken { name: "n1".into() },
            EntryRefusal::MixedVersions {
                follower: "1.31".into(),
                entry: "1.32".into(),
            },
        ] {
            let back = response_from_pb(response_to_pb(&JoinResponse::Refused(r.clone()), "c"))
                .expect("ok");
            assert_eq!(back.response, JoinResponse::Refused(r));
        }
    }
}
