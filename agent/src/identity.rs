//! This node's identity: a random node id persisted in the data dir (so a restart is the same
//! member, while a reinstalled machine is a new one), and its name (the lowercased hostname
//! unless configured).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Why the identity could not be established.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The data dir or the id file could not be created or read.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The id file holds something that is not an id.
    #[error("{} does not hold a node id (expected 32 hex digits); remove it to get a new id", path.display())]
    Corrupt {
        /// The path.
        path: PathBuf,
    },
}

/// Who this node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// 32 lowercase hex digits, stable across restarts.
    pub node_id: String,
    /// Node name (lowercase hostname unless configured).
    pub node_name: String,
}

/// Loads or creates the node id under `data_dir` and settles the node name.
pub fn establish(
    data_dir: &Path,
    configured_name: Option<&str>,
) -> Result<Identity, IdentityError> {
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| IdentityError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(data_dir).map_err(io("cannot create data dir", data_dir))?;
    let file = data_dir.join("node-id");
    let node_id = match std::fs::read_to_string(&file) {
        Ok(text) => {
            let id = text.trim().to_owned();
            if id.len() != 32
                || !id
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            {
                return Err(IdentityError::Corrupt { path: file });
            }
            id
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = hex::encode(rand::random::<[u8; 16]>());
            // Write then rename, so a crash never leaves a half-written id behind.
            let tmp = data_dir.join("node-id.tmp");
            let mut f = std::fs::File::create(&tmp).map_err(io("cannot write", &tmp))?;
            writeln!(f, "{id}").map_err(io("cannot write", &tmp))?;
            f.sync_all().map_err(io("cannot write", &tmp))?;
            std::fs::rename(&tmp, &file).map_err(io("cannot write", &file))?;
            id
        }
        Err(e) => return Err(io("cannot read", &file)(e)),
    };
    let node_name = match configured_name {
        Some(n) => n.to_owned(),
        None => hostname(),
    };
    Ok(Identity { node_id, node_name })
}

/// The kernel's hostname, lowercased as microk8s does.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_ascii_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| sysinfo::System::host_name().map(|h| h.to_ascii_lowercase()))
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_is_created_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("state");
        let a = establish(&data, Some("n1")).expect("first");
        let b = establish(&data, None).expect("second");
        assert_eq!(a.node_id, b.node_id);
        assert_eq!(a.node_id.len(), 32);
        assert_eq!(a.node_name, "n1");
        assert_eq!(b.node_name, hostname());
    }

    #[test]
    fn corrupt_id_file_is_reported_not_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("node-id"), "not an id\n").expect("write");
        let err = establish(dir.path(), None).expect_err("corrupt");
        assert!(err.to_string().contains("node-id"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("node-id")).expect("read"),
            "not an id\n"
        );
    }
}
