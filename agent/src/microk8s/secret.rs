//! Values that carry a join secret, and the redaction that keeps them out of logs and errors.
//!
//! Owns [`JoinToken`], [`JoinUrl`], [`TokenTtl`], [`Kubeconfig`] and [`redact`]. Every type
//! here prints `<redacted>` in place of its secret through both `Debug` and `Display`; the secret
//! is reachable only through an explicit `expose()` call, so a stray `{:?}` in a log line cannot
//! leak it. Does not decide where tokens come from or how long they live (the workflow does).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// What is printed in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// The port the microk8s cluster agent listens on (and the only one `add-node` prints).
pub const CLUSTER_AGENT_PORT: u16 = 25000;

/// Why a string is not usable as a join token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidToken {
    /// microk8s refuses tokens shorter than 32 characters.
    #[error("join token is {0} characters long; microk8s needs at least 32")]
    TooShort(usize),
    /// `/` splits the join string, `|` the token file, whitespace the command line, and any
    /// argument containing `help` makes `add-node` print its help instead of registering it.
    #[error(
        "join token contains a character or word microk8s cannot carry (`/`, `|`, whitespace or `help`)"
    )]
    Unusable,
}

/// A cluster join token (the secret part of `microk8s join <ip>:<port>/<token>/<check>`).
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken(String);

impl JoinToken {
    /// Wraps a token after checking the rules of microk8s `add-node` and `join`.
    pub fn new(token: impl Into<String>) -> Result<Self, InvalidToken> {
        let token = token.into();
        if token.len() < 32 {
            return Err(InvalidToken::TooShort(token.len()));
        }
        let unusable = token.contains(['/', '|'])
            || token.chars().any(char::is_whitespace)
            || token.to_ascii_lowercase().contains("help");
        if unusable {
            return Err(InvalidToken::Unusable);
        }
        Ok(Self(token))
    }

    /// A fresh token: 16 random bytes as 32 lowercase hex characters, the format microk8s
    /// itself generates. The caller owns the RNG so tests stay deterministic.
    pub fn generate<R: rand::Rng + ?Sized>(rng: &mut R) -> Self {
        use std::fmt::Write as _;
        let bytes: [u8; 16] = rng.random();
        let mut hex = String::with_capacity(32);
        for b in bytes {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{b:02x}");
        }
        Self(hex)
    }

    /// The secret itself, for the one place that must pass it on (a command argument or an
    /// authenticated reply to a follower). Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinToken({REDACTED})")
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// How long a token registered with `add-node` stays valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTtl {
    /// `--token-ttl -1`: consumed by the first join request that presents it, even one that
    /// fails later, so a retry needs a fresh token.
    SingleUse,
    /// Reusable by any number of joins until it expires (whole seconds, at least one).
    Expires(Duration),
}

impl TokenTtl {
    /// The value of `--token-ttl`.
    pub fn as_arg(self) -> String {
        match self {
            Self::SingleUse => "-1".to_owned(),
            // 0 would register a token that is expired at once.
            Self::Expires(d) => d.as_secs().max(1).to_string(),
        }
    }
}

/// Why a join string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidJoinUrl {
    /// Not `<host>:<port>/<token>[/<fingerprint>]`.
    #[error("join address is not <ip>:<port>/<token>[/<fingerprint>]")]
    Shape,
    /// The port is not a number in 1..=65535.
    #[error("join address has no valid port")]
    Port,
    /// The token part is unusable.
    #[error(transparent)]
    Token(#[from] InvalidToken),
}

/// One join address as `add-node` prints it: `<host>:<port>/<token>[/<fingerprint>]`.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinUrl {
    host: String,
    port: u16,
    token: JoinToken,
    fingerprint: Option<String>,
}

impl JoinUrl {
    /// Builds a join address from its parts.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        token: JoinToken,
        fingerprint: Option<String>,
    ) -> Self {
        Self {
            host: host.into(),
            port,
            token,
            fingerprint,
        }
    }

    /// Parses `<host>:<port>/<token>[/<fingerprint>]`. The host is split at the last `:`, so
    /// the unbracketed IPv6 form that `add-node` prints survives (join itself refuses it).
    pub fn parse(s: &str) -> Result<Self, InvalidJoinUrl> {
        let mut parts = s.trim().split('/');
        let endpoint = parts.next().ok_or(InvalidJoinUrl::Shape)?;
        let token = parts.next().ok_or(InvalidJoinUrl::Shape)?;
        let fingerprint = parts.next().map(str::to_owned);
        if parts.next().is_some() || fingerprint.as_deref() == Some("") {
            return Err(InvalidJoinUrl::Shape);
        }
        let (host, port) = endpoint.rsplit_once(':').ok_or(InvalidJoinUrl::Shape)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(InvalidJoinUrl::Shape);
        }
        let port: u16 = port.parse().map_err(|_| InvalidJoinUrl::Port)?;
        if port == 0 {
            return Err(InvalidJoinUrl::Port);
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            token: JoinToken::new(token)?,
            fingerprint,
        })
    }

    /// The host part as printed (an IP address in practice; `none` when the entry has no
    /// default route).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host as an IP address, if it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The cluster agent port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The token.
    pub fn token(&self) -> &JoinToken {
        &self.token
    }

    /// The 12-hex-character certificate fingerprint (1.21+), if present.
    pub fn fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }

    /// The full join string including the token, for the `microk8s join` argument or an
    /// authenticated reply to a follower. Never log the result.
    pub fn expose(&self) -> String {
        let mut s = format!("{}:{}/{}", self.host, self.port, self.token.expose());
        if let Some(fp) = &self.fingerprint {
            s.push('/');
            s.push_str(fp);
        }
        s
    }
}

impl fmt::Display for JoinUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{REDACTED}", self.host, self.port)?;
        if let Some(fp) = &self.fingerprint {
            write!(f, "/{fp}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for JoinUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinUrl({self})")
    }
}

/// An admin kubeconfig as printed by `microk8s config`. It holds the admin credential, so its
/// `Debug` shows only the server address.
#[derive(Clone, PartialEq, Eq)]
pub struct Kubeconfig(String);

impl Kubeconfig {
    /// Wraps kubeconfig text (not validated; see `parse::parse_kubeconfig`).
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The `server:` URL of the first cluster, if any.
    pub fn server(&self) -> Option<&str> {
        self.0
            .lines()
            .find_map(|l| l.trim().strip_prefix("server:"))
            .map(str::trim)
    }

    /// The whole text, for writing to the local socket or an authenticated peer.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Kubeconfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Kubeconfig {{ server: {:?}, credentials: {REDACTED} }}",
            self.server()
        )
    }
}

/// YAML/JSON keys whose values are credentials in microk8s output.
const SECRET_KEYS: [&str; 6] = [
    "token",
    "\"token\"",
    "client-key-data",
    "password",
    "callback_token",
    "\"callback_token\"",
];

/// Removes secrets from command output before it goes into an error or a log line:
/// every string in `known` (tokens this process handed out or received), the token part of
/// anything shaped like a join address (`<ip>:<port>/<token>`), and the values of credential
/// keys (`token:`, `client-key-data:`, `"token":` ...).
pub fn redact(text: &str, known: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in known.iter().filter(|s| s.len() >= 8) {
        out = out.replace(secret, REDACTED);
    }
    let mut result = String::with_capacity(out.len());
    for (i, line) in out.split('\n').enumerate() {
        if i > 0 {
            result.push('\n');
        }
        result.push_str(&redact_line(line));
    }
    result
}

fn redact_line(line: &str) -> String {
    let trimmed = line.trim_start().trim_start_matches("- ");
    for key in SECRET_KEYS {
        if let Some(rest) = trimmed.strip_prefix(key)
            && rest.starts_with(':')
        {
            let keep = line.len() - rest.len() + 1;
            return format!("{} {REDACTED}", &line[..keep]);
        }
    }
    redact_join_addresses(line)
}

/// Replaces `<token>` in every `...:<digits>/<token>` with [`REDACTED`].
fn redact_join_addresses(line: &str) -> String {
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b':' {
            let digits = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let slash = i + 1 + digits;
            if digits > 0 && bytes.get(slash) == Some(&b'/') {
                let start = slash + 1;
                let len = bytes[start..]
                    .iter()
                    .take_while(|b| !(b.is_ascii_whitespace() || matches!(b, b'/' | b'"' | b'\'')))
                    .count();
                if len > 0 {
                    out.push_str(&line[copied..start]);
                    out.push_str(REDACTED);
                    copied = start + len;
                    i = copied;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&line[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const T: &str = "3f2c1a9e8d7b6c5a4f3e2d1c0b9a8f7e";

    #[test]
    fn token_rules_follow_microk8s() {
        assert_eq!(JoinToken::new("short"), Err(InvalidToken::TooShort(5)));
        assert_eq!(
            JoinToken::new(format!("{T}/x")),
            Err(InvalidToken::Unusable)
        );
        assert_eq!(
            JoinToken::new(format!("{T}|9")),
            Err(InvalidToken::Unusable)
        );
        assert_eq!(
            JoinToken::new(format!("{T} x")),
            Err(InvalidToken::Unusable)
        );
        assert_eq!(
            JoinToken::new(format!("{T}HELP")),
            Err(InvalidToken::Unusable)
        );
        assert_eq!(
            JoinToken::new(T).map(|t| t.expose().to_owned()),
            Ok(T.to_owned())
        );
    }

    #[test]
    fn generated_tokens_are_32_lowercase_hex_and_seeded() {
        let mut a = rand::rngs::StdRng::seed_from_u64(7);
        let mut b = rand::rngs::StdRng::seed_from_u64(7);
        let ta = JoinToken::generate(&mut a);
        assert_eq!(ta, JoinToken::generate(&mut b));
        assert_eq!(ta.expose().len(), 32);
        assert!(
            ta.expose()
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
        assert!(JoinToken::new(ta.expose()).is_ok());
    }

    #[test]
    fn token_never_shows_in_debug_or_display() {
        let t = JoinToken::new(T).expect("valid");
        assert!(!format!("{t:?} {t}").contains(T));
        let u = JoinUrl::parse(&format!("10.0.0.1:25000/{T}/a1b2c3d4e5f6")).expect("valid");
        let shown = format!("{u:?} {u}");
        assert!(!shown.contains(T), "{shown}");
        assert!(
            shown.contains("10.0.0.1:25000/<redacted>/a1b2c3d4e5f6"),
            "{shown}"
        );
    }

    #[test]
    fn join_url_round_trips_and_splits_ipv6_at_the_last_colon() {
        let s = format!("10.0.0.1:25000/{T}/a1b2c3d4e5f6");
        let u = JoinUrl::parse(&s).expect("valid");
        assert_eq!(
            (u.host(), u.port(), u.fingerprint()),
            ("10.0.0.1", 25000, Some("a1b2c3d4e5f6"))
        );
        assert_eq!(u.expose(), s);
        let v6 = JoinUrl::parse(&format!("2001:db8::10:25000/{T}")).expect("valid");
        assert_eq!(v6.ip(), "2001:db8::10".parse().ok());
        assert_eq!(v6.fingerprint(), None);
        assert_eq!(JoinUrl::parse("10.0.0.1/x"), Err(InvalidJoinUrl::Shape));
        assert_eq!(
            JoinUrl::parse(&format!("10.0.0.1:0/{T}")),
            Err(InvalidJoinUrl::Port)
        );
        assert_eq!(
            JoinUrl::parse(&format!("10.0.0.1:x/{T}")),
            Err(InvalidJoinUrl::Port)
        );
        assert_eq!(
            JoinUrl::parse(&format!("h:1/{T}/a/b")),
            Err(InvalidJoinUrl::Shape)
        );
        assert!(matches!(
            JoinUrl::parse("h:1/short"),
            Err(InvalidJoinUrl::Token(_))
        ));
    }

    #[test]
    fn ttl_arguments() {
        assert_eq!(TokenTtl::SingleUse.as_arg(), "-1");
        assert_eq!(TokenTtl::Expires(Duration::from_secs(300)).as_arg(), "300");
        assert_eq!(TokenTtl::Expires(Duration::from_millis(10)).as_arg(), "1");
    }

    #[test]
    fn redact_removes_known_secrets_join_tokens_and_credential_values() {
        let text = format!(
            "microk8s join 10.0.0.1:25000/{T}/a1b2c3d4e5f6\n  \"token\": \"{T}/a1\",\n    token: abcdefgh\n    client-key-data: QUJD\nsecret-xyz-123 here"
        );
        let r = redact(&text, &["secret-xyz-123"]);
        assert!(
            !r.contains(T) && !r.contains("abcdefgh") && !r.contains("QUJD"),
            "{r}"
        );
        assert!(!r.contains("secret-xyz-123"), "{r}");
        assert!(r.contains("10.0.0.1:25000/<redacted>/a1b2c3d4e5f6"), "{r}");
        assert!(r.contains("    client-key-data: <redacted>"), "{r}");
        // Ordinary text with colons and numbers is left alone.
        assert_eq!(
            redact("dqlite at 10.0.0.1:19001 is up", &[]),
            "dqlite at 10.0.0.1:19001 is up"
        );
    }

    #[test]
    fn kubeconfig_debug_hides_credentials() {
        let k = Kubeconfig::new(
            "clusters:\n- cluster:\n    server: https://10.0.0.1:16443\nusers:\n- user:\n    token: SECRET\n",
        );
        assert_eq!(k.server(), Some("https://10.0.0.1:16443"));
        assert!(!format!("{k:?}").contains("SECRET"));
    }
}
