//! How far the demo cluster has come, from the agents' status answers: pure.
//!
//! Owns [`NodeSnapshot`] (what one `muster status` said), [`Role`], [`Observed`] (a node and
//! its latest snapshot, if it answered) and [`Progress`], derived by [`assess`] from one round
//! of observations: how many agents answer, how far discovery got, whether exactly one entry
//! point is followed, how many nodes joined and were verified, and, when the cluster has not
//! formed, [`Progress::missing`] says in words what is missing. Asking the agents and drawing
//! the line on a terminal are the driver's business (`super::driver`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A node's role, as `muster status` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The confirmed entry point (runs `add-node`).
    EntryPoint,
    /// A control plane of the cluster.
    ControlPlane,
    /// A worker of the cluster.
    Worker,
    /// Between a join request and a verified join.
    Joining,
    /// Not in any multi-node cluster.
    Unclustered,
    /// A word this demo does not know (a newer agent).
    Other(String),
}

impl Role {
    /// Parses the role word; `entry point`, `entry-point` and `entry_point` are the same.
    pub fn parse(word: &str) -> Role {
        let norm: String = word
            .trim()
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c == '-' || c == '_' { ' ' } else { c })
            .collect();
        match norm.as_str() {
            "entry point" => Role::EntryPoint,
            "control plane" => Role::ControlPlane,
            "worker" => Role::Worker,
            "joining" => Role::Joining,
            "unclustered" | "" => Role::Unclustered,
            _ => Role::Other(word.trim().to_owned()),
        }
    }

    /// The word shown to people and in `--json` (`entry-point`, `control-plane`, …).
    pub fn as_str(&self) -> &str {
        match self {
            Role::EntryPoint => "entry-point",
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
            Role::Joining => "joining",
            Role::Unclustered => "unclustered",
            Role::Other(word) => word,
        }
    }

    /// Whether a node with this role is a member of the cluster (the entry point included).
    pub fn is_clustered(&self) -> bool {
        matches!(self, Role::EntryPoint | Role::ControlPlane | Role::Worker)
    }
}

/// What one agent's `muster status` said, reduced to what the demo follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSnapshot {
    /// Its role.
    pub role: Role,
    /// Members it sees alive, itself included.
    pub members_alive: u32,
    /// The entry point it follows (empty: none).
    pub entry_point: String,
    /// Whether its membership of the cluster was verified (Ready, in the datastore).
    pub verified: bool,
    /// Whether the cluster it is in is HA.
    pub ha: bool,
    /// Size of the cluster it is in, as it knows it.
    pub size: u32,
    /// A conflict it reports (two clusters among the members); empty when none.
    pub conflict: String,
}

impl NodeSnapshot {
    /// Whether this node counts as joined: its role says it is in the cluster.
    pub fn joined(&self) -> bool {
        self.role.is_clustered()
    }

    /// Whether this node counts as verified. The entry point is where the cluster started,
    /// so it counts as verified by definition; every other node must report `verified`.
    pub fn counts_verified(&self) -> bool {
        self.joined() && (self.verified || self.role == Role::EntryPoint)
    }
}

/// One node of the demo and its latest answer (`None`: its agent has not answered yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The node's name (`hN`).
    pub name: String,
    /// Its latest status, if it answered.
    pub snapshot: Option<NodeSnapshot>,
}

/// Which entry point the nodes follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Election {
    /// No node names an entry point yet.
    Pending,
    /// Every node that names one names this one.
    Agreed {
        /// The entry point.
        name: String,
        /// How many nodes follow it.
        followers: usize,
    },
    /// Nodes name different entry points: entry point → the nodes that follow it.
    Disagree(BTreeMap<String, Vec<String>>),
}

/// How far the cluster has come; see [`assess`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Nodes the demo started.
    pub nodes: usize,
    /// Agents that answered.
    pub answering: usize,
    /// Members every node sees alive: the minimum over all nodes (0 for a silent one).
    pub discovered: usize,
    /// The entry point situation.
    pub election: Election,
    /// Nodes in the cluster (the entry point included).
    pub joined: usize,
    /// Nodes in the cluster and verified (see [`NodeSnapshot::counts_verified`]).
    pub verified: usize,
    /// What is missing before the cluster counts as formed; empty once it has.
    missing: Vec<String>,
}

/// Derives the [`Progress`] of `nodes` from one round of observations.
pub fn assess(nodes: &[Observed]) -> Progress {
    let n = nodes.len();
    let answered: Vec<(&str, &NodeSnapshot)> = nodes
        .iter()
        .filter_map(|o| o.snapshot.as_ref().map(|s| (o.name.as_str(), s)))
        .collect();
    let discovered = if answered.len() < n {
        0
    } else {
        answered
            .iter()
            .map(|(_, s)| s.members_alive as usize)
            .min()
            .unwrap_or(0)
            .min(n)
    };
    let mut followers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, s) in &answered {
        if !s.entry_point.is_empty() {
            followers
                .entry(s.entry_point.clone())
                .or_default()
                .push((*name).to_owned());
        }
    }
    let election = match followers.len() {
        0 => Election::Pending,
        1 => {
            let (name, by) = followers
                .iter()
                .next()
                .map_or_else(|| (String::new(), 0), |(name, by)| (name.clone(), by.len()));
            Election::Agreed {
                name,
                followers: by,
            }
        }
        _ => Election::Disagree(followers),
    };
    let joined = answered.iter().filter(|(_, s)| s.joined()).count();
    let verified = answered.iter().filter(|(_, s)| s.counts_verified()).count();
    let missing = missing(nodes, n, &election);
    Progress {
        nodes: n,
        answering: answered.len(),
        discovered,
        election,
        joined,
        verified,
        missing,
    }
}

/// The reasons the cluster has not formed, in the order a reader should fix them.
fn missing(nodes: &[Observed], n: usize, election: &Election) -> Vec<String> {
    let mut out = Vec::new();
    let names = |pick: &dyn Fn(&NodeSnapshot) -> bool| -> Vec<String> {
        nodes
            .iter()
            .filter_map(|o| {
                let s = o.snapshot.as_ref()?;
                pick(s).then(|| o.name.clone())
            })
            .collect()
    };
    let silent: Vec<&str> = nodes
        .iter()
        .filter(|o| o.snapshot.is_none())
        .map(|o| o.name.as_str())
        .collect();
    if !silent.is_empty() {
        out.push(format!("agents not answering: {}", silent.join(", ")));
    }
    let partial: Vec<String> = nodes
        .iter()
        .filter_map(|o| {
            let s = o.snapshot.as_ref()?;
            ((s.members_alive as usize) < n).then(|| format!("{} sees {}", o.name, s.members_alive))
        })
        .collect();
    if !partial.is_empty() {
        out.push(format!(
            "discovery incomplete ({} of {n} members alive)",
            partial.join(", ")
        ));
    }
    match election {
        Election::Pending => {
            if silent.len() < n {
                let mut roles: BTreeMap<&str, usize> = BTreeMap::new();
                for o in nodes {
                    if let Some(s) = &o.snapshot {
                        *roles.entry(s.role.as_str()).or_default() += 1;
                    }
                }
                let roles: Vec<String> = roles.iter().map(|(r, c)| format!("{c} {r}")).collect();
                out.push(format!(
                    "no entry point elected (no node names one; roles: {})",
                    roles.join(", ")
                ));
            } else {
                out.push("no entry point elected".to_owned());
            }
        }
        Election::Agreed { name, .. } => {
            let lost = names(&|s| s.entry_point != *name);
            if !lost.is_empty() {
                out.push(format!(
                    "not following entry point {name}: {}",
                    lost.join(", ")
                ));
            }
        }
        Election::Disagree(by) => {
            let mut text = String::from("entry points disagree:");
            for (entry, who) in by {
                let _ = write!(text, " {entry} (followed by {})", who.join(", "));
            }
            out.push(text);
        }
    }
    let unjoined: Vec<String> = nodes
        .iter()
        .filter_map(|o| {
            let s = o.snapshot.as_ref()?;
            (!s.joined()).then(|| format!("{} ({})", o.name, s.role.as_str()))
        })
        .collect();
    if !unjoined.is_empty() {
        out.push(format!("not joined: {}", unjoined.join(", ")));
    }
    let unverified = names(&|s| s.joined() && !s.counts_verified());
    if !unverified.is_empty() {
        out.push(format!(
            "joined but not verified: {}",
            unverified.join(", ")
        ));
    }
    for o in nodes {
        if let Some(s) = &o.snapshot
            && !s.conflict.is_empty()
        {
            out.push(format!("{} reports a conflict: {}", o.name, s.conflict));
        }
    }
    out
}

impl Progress {
    /// Whether the cluster has formed: every agent answers and follows the same entry point,
    /// every node is joined and verified, and no node reports a conflict.
    pub fn formed(&self) -> bool {
        self.nodes > 0 && self.missing.is_empty()
    }

    /// What is missing before the cluster counts as formed (empty once it has).
    pub fn missing(&self) -> &[String] {
        &self.missing
    }

    /// The agreed entry point, if there is one.
    pub fn entry_point(&self) -> Option<&str> {
        match &self.election {
            Election::Agreed { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The one-line summary: `discovered 5/5 · elected h1 · joined 3/5 (verified 3)`,
    /// preceded by `started k/N` while some agents do not answer yet.
    pub fn line(&self) -> String {
        let n = self.nodes;
        let mut parts = Vec::new();
        if self.answering < n {
            parts.push(format!("started {}/{n}", self.answering));
        }
        parts.push(format!("discovered {}/{n}", self.discovered));
        parts.push(match &self.election {
            Election::Pending => "electing".to_owned(),
            Election::Agreed { name, .. } => format!("elected {name}"),
            Election::Disagree(by) => {
                let names: Vec<&str> = by.keys().map(String::as_str).collect();
                format!("entry points disagree: {}", names.join(", "))
            }
        });
        parts.push(format!(
            "joined {}/{n} (verified {})",
            self.joined, self.verified
        ));
        if self.formed() {
            parts.push("formed".to_owned());
        }
        parts.join(" · ")
    }

    /// The failure message: `cluster did not form within 20s: no entry point elected …; …`.
    pub fn failure(&self, waited: &str) -> String {
        format!(
            "cluster did not form within {waited}: {}",
            if self.missing.is_empty() {
                "interrupted".to_owned()
            } else {
                self.missing.join("; ")
            }
        )
    }
}

#[cfg(test)]
#[path = "progress_tests.rs"]
mod tests;
