//! The election's durable state on disk: the term this node voted in and for whom
//! (`DATA_DIR/election-vote`, one line `TERM [ID]`). A vote must survive a restart, or a
//! restarted node could vote twice in one term.

use std::path::Path;

use muster_core::election::HardState;

/// The file's name in the data directory.
const FILE: &str = "election-vote";

/// The vote stored in `dir`; no vote when the file is missing or unreadable.
pub fn load(dir: &Path) -> HardState {
    let text = std::fs::read_to_string(dir.join(FILE)).unwrap_or_default();
    let mut words = text.split_whitespace();
    let voted_term = words.next().and_then(|t| t.parse().ok()).unwrap_or(0);
    HardState {
        voted_term,
        voted_for: words.next().map(str::to_owned),
    }
}

/// Stores `hs` in `dir`, atomically (write, then rename): the vote must be durable before the
/// reply that depends on it goes out.
pub fn save(dir: &Path, hs: &HardState) -> std::io::Result<()> {
    let text = format!(
        "{} {}\n",
        hs.voted_term,
        hs.voted_for.as_deref().unwrap_or_default()
    );
    let path = dir.join(FILE);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vote_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(load(dir.path()), HardState::default());
        let hs = HardState {
            voted_term: 4,
            voted_for: Some("n2".into()),
        };
        save(dir.path(), &hs).expect("saved");
        assert_eq!(load(dir.path()), hs);
    }
}
