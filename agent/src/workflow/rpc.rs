//! The workflow's messages on the wire: election claims and join requests between agents
//! (`muster.v1.Peer`), converted to and from the pure cores' types. Decoding never panics;
//! what a peer sends that makes no sense becomes an error that names it.

use std::time::Duration;

use muster_proto::v1 as pb;

use muster_core::election::{Claim, ClaimReply, Refusal};
use muster_core::formation::{EntryRefusal, JoinResponse, JoinRole, RolePreference, WaitReason};

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
pub fn response_from_pb(
    r: pb::JoinResponseMsg,
) -> Result<(JoinResponse, Option<String>), ResponseError> {
    use pb::join_response_msg::Answer;
    match r.answer.ok_or(ResponseError::Empty)? {
        Answer::Granted(g) => {
            let role = match g.role.as_str() {
                "control-plane" => JoinRole::ControlPlane,
                "worker" => JoinRole::Worker,
                other => return Err(ResponseError::BadRole(other.to_owned())),
            };
            Ok((
                JoinResponse::Granted { url: g.url, role },
                Some(g.cluster_id),
            ))
        }
        Answer::Wait(w) => Ok((
            JoinResponse::Wait {
                position: w.position,
                retry_after: Duration::from_millis(w.retry_after_ms.clamp(10, 60_000)),
                reason: WaitReason::Queued,
            },
            None,
        )),
        Answer::Refused(why) => Ok((JoinResponse::Refused(refusal_from(&why)?), None)),
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
        let (back, cluster) = response_from_pb(response_to_pb(&g, "c1")).expect("valid");
        assert_eq!(back, g);
        assert_eq!(cluster.as_deref(), Some("c1"));
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
            let (back, _) =
                response_from_pb(response_to_pb(&JoinResponse::Refused(r.clone()), "c"))
                    .expect("ok");
            assert_eq!(back, JoinResponse::Refused(r));
        }
    }
}
