//! The claim round's messages and the voter's decision.
//!
//! Owns: [`Claim`], [`ClaimReply`], [`HardState`] (what a voter must keep across restarts),
//! [`Refusal`] and [`vote`], the one function that decides whether a claim is acknowledged.
//! Does not own: sending (the driver carries these over gRPC) or counting acks (`machine.rs`).

use super::view::{NodeId, Term};

/// "Acknowledge me as entry point for `term`", sent by a claimant to every up voter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The term claimed; higher than any the claimant has seen.
    pub term: Term,
    /// [`Electorate::digest`](super::view::Electorate::digest) of the claimant's electorate.
    pub electorate_digest: u64,
    /// Its size (for messages: the digest alone decides).
    pub electorate_size: u32,
}

/// A voter's answer to a [`Claim`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimReply {
    /// The term of the claim answered.
    pub term: Term,
    /// The voter acknowledges the claimant for that term.
    pub granted: bool,
    /// The highest term the voter has seen, so that a claimant behind can catch up.
    pub seen_term: Term,
    /// Why not, when not granted.
    pub refusal: Option<Refusal>,
}

/// The vote a node has cast: it must survive a restart, or the node could acknowledge two
/// claimants in one term. The driver persists it whenever the election emits
/// [`Output::Persist`](super::Output::Persist), before carrying out the outputs after it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// Highest term this node has acknowledged (its own claims included).
    pub voted_term: Term,
    /// Whom it acknowledged in `voted_term`.
    pub voted_for: Option<NodeId>,
}

/// Why a voter refuses a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The voter has acknowledged a higher term.
    StaleTerm {
        /// That term.
        voted_term: Term,
    },
    /// The voter has acknowledged someone else in this very term.
    AlreadyVoted {
        /// Whom.
        voted_for: NodeId,
    },
    /// The voter's own rules choose another node, or none.
    NotOurChoice {
        /// The node the voter's rules choose.
        choice: Option<NodeId>,
    },
    /// Claimant and voter count different voters.
    ElectorateMismatch {
        /// The claimant's electorate size.
        theirs: u32,
        /// The voter's.
        ours: u32,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::StaleTerm { voted_term } => {
                write!(f, "already acknowledged the higher term {voted_term}")
            }
            Refusal::AlreadyVoted { voted_for } => {
                write!(f, "already acknowledged {voted_for} in this term")
            }
            Refusal::NotOurChoice { choice: Some(c) } => write!(f, "our rules choose {c}"),
            Refusal::NotOurChoice { choice: None } => write!(f, "our rules choose nobody"),
            Refusal::ElectorateMismatch { theirs, ours } => {
                write!(f, "electorates differ ({theirs} voters there, {ours} here)")
            }
        }
    }
}

/// What a voter knows when a claim arrives.
#[derive(Clone, Copy, Debug)]
pub struct VoteContext<'a> {
    /// Its cast vote.
    pub hard: &'a HardState,
    /// The node its own rules choose on its own view.
    pub choice: Option<&'a str>,
    /// Its own electorate digest and size.
    pub electorate: (u64, u32),
}

/// Decides a claim from `claimant`. Granted iff all of:
/// 1. `term > voted_term`, or `term == voted_term` and the vote already went to `claimant`
///    (one vote per term; a repeated claim is answered the same);
/// 2. the voter's own rules, on its own view, choose `claimant`;
/// 3. the claimant's electorate digest equals the voter's.
///
/// Rule 1 gives safety (see the module doc of `election`); rules 2 and 3 make a confirmed
/// entry point one that a majority agrees with, and make the majority count the same voters.
pub fn vote(ctx: VoteContext<'_>, claimant: &str, claim: &Claim) -> Result<(), Refusal> {
    let hard = ctx.hard;
    if claim.term < hard.voted_term {
        return Err(Refusal::StaleTerm {
            voted_term: hard.voted_term,
        });
    }
    if claim.term == hard.voted_term {
        match hard.voted_for.as_deref() {
            Some(v) if v == claimant => {}
            Some(v) => {
                return Err(Refusal::AlreadyVoted {
                    voted_for: v.to_owned(),
                });
            }
            // Term 0 with no vote is the initial state; nobody claims term 0.
            None => {
                return Err(Refusal::StaleTerm {
                    voted_term: hard.voted_term,
                });
            }
        }
    }
    if ctx.choice != Some(claimant) {
        return Err(Refusal::NotOurChoice {
            choice: ctx.choice.map(str::to_owned),
        });
    }
    if claim.electorate_digest != ctx.electorate.0 {
        return Err(Refusal::ElectorateMismatch {
            theirs: claim.electorate_size,
            ours: ctx.electorate.1,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(term: Term, digest: u64) -> Claim {
        Claim {
            term,
            electorate_digest: digest,
            electorate_size: 3,
        }
    }

    fn hard(term: Term, who: Option<&str>) -> HardState {
        HardState {
            voted_term: term,
            voted_for: who.map(str::to_owned),
        }
    }

    /// One row: the voter's state, the claim, and the expected answer.
    struct Case {
        name: &'static str,
        hard: HardState,
        choice: Option<&'static str>,
        claimant: &'static str,
        claim: Claim,
        want: Result<(), Refusal>,
    }

    #[test]
    fn vote_rules_table() {
        let cases = [
            Case {
                name: "higher term for our choice is granted",
                hard: hard(3, Some("b")),
                choice: Some("a"),
                claimant: "a",
                claim: claim(4, 7),
                want: Ok(()),
            },
            Case {
                name: "first claim ever is granted",
                hard: HardState::default(),
                choice: Some("a"),
                claimant: "a",
                claim: claim(1, 7),
                want: Ok(()),
            },
            Case {
                name: "same term same claimant is granted again",
                hard: hard(4, Some("a")),
                choice: Some("a"),
                claimant: "a",
                claim: claim(4, 7),
                want: Ok(()),
            },
            Case {
                name: "same term other claimant is refused",
                hard: hard(4, Some("b")),
                choice: Some("a"),
                claimant: "a",
                claim: claim(4, 7),
                want: Err(Refusal::AlreadyVoted {
                    voted_for: "b".into(),
                }),
            },
            Case {
                name: "lower term is refused",
                hard: hard(5, Some("a")),
                choice: Some("a"),
                claimant: "a",
                claim: claim(4, 7),
                want: Err(Refusal::StaleTerm { voted_term: 5 }),
            },
            Case {
                name: "claimant our rules do not choose is refused",
                hard: hard(1, Some("a")),
                choice: Some("b"),
                claimant: "a",
                claim: claim(2, 7),
                want: Err(Refusal::NotOurChoice {
                    choice: Some("b".into()),
                }),
            },
            Case {
                name: "claim while our rules choose nobody is refused",
                hard: HardState::default(),
                choice: None,
                claimant: "a",
                claim: claim(2, 7),
                want: Err(Refusal::NotOurChoice { choice: None }),
            },
            Case {
                name: "different electorate is refused",
                hard: HardState::default(),
                choice: Some("a"),
                claimant: "a",
                claim: claim(2, 8),
                want: Err(Refusal::ElectorateMismatch { theirs: 3, ours: 3 }),
            },
            Case {
                name: "term zero is never granted",
                hard: HardState::default(),
                choice: Some("a"),
                claimant: "a",
                claim: claim(0, 7),
                want: Err(Refusal::StaleTerm { voted_term: 0 }),
            },
        ];
        for c in cases {
            let ctx = VoteContext {
                hard: &c.hard,
                choice: c.choice,
                electorate: (7, 3),
            };
            assert_eq!(vote(ctx, c.claimant, &c.claim), c.want, "case: {}", c.name);
        }
    }

    #[test]
    fn refusals_read_as_sentences() {
        let r = Refusal::ElectorateMismatch { theirs: 4, ours: 5 };
        assert_eq!(r.to_string(), "electorates differ (4 voters there, 5 here)");
    }
}
