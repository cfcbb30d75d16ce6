//! Join tokens in the real file formats, with the real validity and consumption rules.
//!
//! `credentials/cluster-tokens.txt` holds `TOKEN` (single use) or `TOKEN|EXPIRY` (reusable
//! until the Unix time EXPIRY) lines; `persistent-cluster-tokens.txt` holds tokens that never
//! expire and are never consumed and is checked first. The first line whose part before `|`
//! equals the (trimmed) request token decides. A valid single-use token is removed (the first
//! line starting with it) when the join request arrives, before any other check; TTL lines are
//! never removed. Tokens are node-local: each host has its own files. Owns only the files; who
//! calls it when is `agent`'s and `cli`'s business.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use rand::Rng;

/// Serialises consumption within one process (the Go agent holds a mutex for the same reason).
static TOKEN_FILE_LOCK: Mutex<()> = Mutex::new(());

/// Minimum token length accepted by `add-node --token` and `join`.
pub const TOKEN_MIN_LEN: usize = 32;

/// A host's token files.
#[derive(Debug, Clone)]
pub struct TokenStore {
    cluster: PathBuf,
    persistent: PathBuf,
}

/// A fresh token: 16 random bytes as 32 lowercase hex characters.
pub fn generate_token(rng: &mut impl Rng) -> String {
    hex::encode(rng.random::<[u8; 16]>())
}

/// The validity rule for one file's contents (Go agent `IsValidToken`).
/// Returns `(valid, has_ttl)`.
pub fn is_valid_token(contents: &str, token: &str, now_unix: i64) -> (bool, bool) {
    let token = token.trim();
    if token.is_empty() {
        return (false, false);
    }
    for line in contents.split('\n') {
        let mut parts = line.trim().splitn(2, '|');
        if parts.next() != Some(token) {
            continue;
        }
        return match parts.next() {
            None => (true, false),
            Some(expiry) => match expiry.parse::<i64>() {
                Ok(ts) => (now_unix < ts, true),
                Err(_) => (false, true),
            },
        };
    }
    (false, false)
}

impl TokenStore {
    /// A store over these two files.
    pub fn new(cluster: PathBuf, persistent: PathBuf) -> Self {
        Self {
            cluster,
            persistent,
        }
    }

    /// Appends a token line: `TOKEN` for ttl -1, else `TOKEN|round(now)+ttl`.
    pub fn add(&self, token: &str, ttl: i64, now_unix: i64) -> io::Result<()> {
        let _guard = TOKEN_FILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(parent) = self.cluster.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.cluster)?;
        if ttl == -1 {
            writeln!(f, "{token}")
        } else {
            writeln!(f, "{token}|{}", now_unix.saturating_add(ttl))
        }
    }

    /// Appends a persistent token (what a launch configuration's `persistentClusterToken` does).
    pub fn add_persistent(&self, token: &str) -> io::Result<()> {
        let _guard = TOKEN_FILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(parent) = self.persistent.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.persistent)?;
        writeln!(f, "{token}")
    }

    /// Validates `token` for a join request and consumes it if it is single-use.
    pub fn consume(&self, token: &str, now_unix: i64) -> io::Result<bool> {
        let _guard = TOKEN_FILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let read = |p: &PathBuf| match fs::read_to_string(p) {
            Ok(s) => Ok(s),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(e),
        };
        if is_valid_token(&read(&self.persistent)?, token, now_unix).0 {
            return Ok(true);
        }
        let contents = read(&self.cluster)?;
        let (valid, has_ttl) = is_valid_token(&contents, token, now_unix);
        if valid && !has_ttl {
            // Go's RemoveToken: drop the first line that starts with the token, rejoin with \n.
            let mut lines: Vec<&str> = contents.split('\n').collect();
            if let Some(i) = lines.iter().position(|l| l.starts_with(token)) {
                lines.remove(i);
            }
            fs::write(&self.cluster, lines.join("\n"))?;
        }
        Ok(valid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn store() -> (tempfile::TempDir, TokenStore) {
        let d = tempfile::tempdir().expect("tempdir");
        let s = TokenStore::new(
            d.path().join("cluster-tokens.txt"),
            d.path().join("persistent.txt"),
        );
        (d, s)
    }

    const T: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn generated_tokens_are_32_lowercase_hex() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let t = generate_token(&mut rng);
        assert_eq!(t.len(), 32);
        assert!(
            t.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn file_lines_use_the_real_format() {
        let (_d, s) = store();
        s.add(T, -1, 1000).expect("add");
        s.add("ffffffffffffffffffffffffffffffff", 60, 1000)
            .expect("add");
        let text = fs::read_to_string(&s.cluster).expect("read");
        assert_eq!(
            text,
            format!("{T}\nffffffffffffffffffffffffffffffff|1060\n")
        );
    }

    #[test]
    fn single_use_tokens_are_consumed_once() {
        let (_d, s) = store();
        s.add(T, -1, 0).expect("add");
        assert!(s.consume(T, 0).expect("io"));
        assert!(!s.consume(T, 0).expect("io"));
    }

    #[test]
    fn duplicate_single_use_lines_allow_two_joins() {
        let (_d, s) = store();
        s.add(T, -1, 0).expect("add");
        s.add(T, -1, 0).expect("add");
        assert!(s.consume(T, 0).expect("io"));
        assert!(s.consume(T, 0).expect("io"));
        assert!(!s.consume(T, 0).expect("io"));
    }

    #[test]
    fn ttl_tokens_are_reusable_until_expiry_and_never_removed() {
        let (_d, s) = store();
        s.add(T, 100, 1000).expect("add");
        assert!(s.consume(T, 1050).expect("io"));
        assert!(s.consume(T, 1099).expect("io"));
        assert!(!s.consume(T, 1100).expect("io"));
        assert!(fs::read_to_string(&s.cluster).expect("read").contains(T));
    }

    #[test]
    fn zero_ttl_is_expired_at_once_and_first_matching_line_decides() {
        let (_d, s) = store();
        s.add(T, 0, 1000).expect("add");
        s.add(T, -1, 1000).expect("add");
        assert!(!s.consume(T, 1000).expect("io"));
    }

    #[test]
    fn persistent_tokens_are_never_consumed() {
        let (_d, s) = store();
        s.add_persistent(T).expect("add");
        for _ in 0..3 {
            assert!(s.consume(T, 5).expect("io"));
        }
    }

    #[test]
    fn request_token_is_trimmed_and_empty_is_invalid() {
        assert_eq!(
            is_valid_token(&format!("{T}\n"), &format!(" {T}\n"), 0),
            (true, false)
        );
        assert_eq!(is_valid_token("\n", "", 0), (false, false));
        assert_eq!(is_valid_token(&format!("{T}|soon\n"), T, 0), (false, true));
    }
}
