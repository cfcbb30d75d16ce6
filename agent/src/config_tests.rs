//! Tests of config loading and validation: defaults, one case per validation rule, parse
//! errors that name the field, and the origin of overridden values.

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    let path = Path::new("/etc/muster/muster.toml");
    let config = Config::from_toml(text, path)?;
    config.validate(&Origin::File(path.to_owned()))?;
    Ok(config)
}

#[test]
fn empty_file_gives_documented_defaults() {
    let c = parse("").expect("empty config is valid");
    assert_eq!(c, Config::default());
    assert_eq!(c.cluster, "muster");
    assert_eq!(c.node_name, None);
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/muster"));
    assert_eq!(c.socket, PathBuf::from("/run/muster/muster.sock"));
    assert_eq!(c.socket_group, "muster");
    assert_eq!(
        c.listen,
        "0.0.0.0:7440".parse::<SocketAddr>().expect("addr")
    );
    assert_eq!(c.microk8s, PathBuf::from("/snap/bin/microk8s"));
    assert_eq!(c.log_level, LogLevel::Info);
    assert_eq!(c.priority, 100);
    assert!(c.interfaces.is_empty());
    assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
}

#[test]
fn full_file_is_read() {
    let c = parse(
        r#"
cluster = "lab-7"
node_name = "gpu01.lab"
data_dir = "/srv/muster"
socket = "/tmp/m.sock"
socket_group = ""
listen = "198.18.0.1:7441"
microk8s = "/usr/local/bin/microk8s"
log_level = "debug"
priority = 5
interfaces = ["eno1", "eth0"]
shutdown_timeout = "2s 500ms"
"#,
    )
    .expect("valid config");
    assert_eq!(c.cluster, "lab-7");
    assert_eq!(c.node_name.as_deref(), Some("gpu01.lab"));
    assert_eq!(c.listen.port(), 7441);
    assert_eq!(c.log_level, LogLevel::Debug);
    assert_eq!(c.interfaces, vec!["eno1", "eth0"]);
    assert_eq!(c.shutdown_timeout, Duration::from_millis(2500));
}

#[test]
fn every_validation_rule_names_its_field() {
    let long_socket = format!("socket = \"/{}\"", "s".repeat(120));
    let cases: &[(&str, &str, &str)] = &[
        ("cluster = \"\"", "cluster", "1 to 63"),
        ("cluster = \"Lab\"", "cluster", "lowercase"),
        ("cluster = \"-lab\"", "cluster", "start or end"),
        (
            &format!("cluster = \"{}\"", "a".repeat(64)),
            "cluster",
            "1 to 63",
        ),
        ("node_name = \"\"", "node_name", "1 to 253"),
        ("node_name = \"Host_1\"", "node_name", "RFC 1123"),
        ("node_name = \"a..b\"", "node_name", "RFC 1123"),
        ("data_dir = \"var/lib\"", "data_dir", "absolute"),
        ("socket = \"m.sock\"", "socket", "absolute"),
        (&long_socket, "socket", "limited to 107"),
        ("socket_group = \"a b\"", "socket_group", "group name"),
        ("microk8s = \"\"", "microk8s", "executable"),
        ("interfaces = [\"\"]", "interfaces", "interface name"),
        (
            "interfaces = [\"averyveryverylongname0\"]",
            "interfaces",
            "interface name",
        ),
        ("interfaces = [\"eth0\", \"eth0\"]", "interfaces", "twice"),
        (
            "shutdown_timeout = \"10ms\"",
            "shutdown_timeout",
            "out of range",
        ),
        (
            "shutdown_timeout = \"11min\"",
            "shutdown_timeout",
            "out of range",
        ),
    ];
    for (text, field, needle) in cases {
        let err = parse(text).expect_err(text);
        let msg = err.to_string();
        match &err {
            ConfigError::Invalid { field: f, .. } => assert_eq!(f, field, "{text}: {msg}"),
            other => panic!("{text}: expected Invalid, got {other:?}"),
        }
        assert!(msg.contains("/etc/muster/muster.toml"), "{text}: {msg}");
        assert!(msg.contains(&format!("`{field}`")), "{text}: {msg}");
        assert!(msg.contains(needle), "{text}: {msg} lacks {needle:?}");
    }
}

#[test]
fn unknown_field_is_rejected_by_name() {
    let err = parse("cluster = \"a\"\nclustre = \"b\"\n").expect_err("unknown field");
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::Parse { .. }), "{msg}");
    assert!(msg.contains("clustre"), "{msg}");
    assert!(msg.contains("line 2"), "{msg}");
}

#[test]
fn wrong_type_names_field_and_line() {
    let cases: &[(&str, &str)] = &[
        ("priority = \"high\"", "priority"),
        ("listen = \"nowhere\"", "listen"),
        ("log_level = \"loud\"", "log_level"),
        ("shutdown_timeout = \"soon\"", "shutdown_timeout"),
        ("interfaces = \"eth0\"", "interfaces"),
    ];
    for (text, field) in cases {
        let err = parse(&format!("\n{text}\n")).expect_err(text);
        let msg = err.to_string();
        assert!(msg.contains(&format!("field `{field}`")), "{text}: {msg}");
        assert!(msg.contains("line 2"), "{text}: {msg}");
    }
}

#[test]
fn syntax_error_is_reported_with_line() {
    let err = parse("cluster = \"a\"\nlisten = \n").expect_err("syntax");
    let msg = err.to_string();
    assert!(msg.contains("syntax"), "{msg}");
    assert!(msg.contains("line 2"), "{msg}");
}

#[test]
fn explicit_missing_file_is_an_error() {
    let err = Config::load(
        Some(Path::new("/nonexistent/muster.toml")),
        &Overrides::default(),
    )
    .expect_err("missing");
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/muster.toml"));
}

#[test]
fn overrides_replace_and_are_blamed_for_bad_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("m.toml");
    std::fs::write(&file, "cluster = \"from-file\"\npriority = 7\n").expect("write");
    let overrides = Overrides {
        cluster: Some("from-flag".into()),
        listen: Some("127.0.0.1:0".parse().expect("addr")),
        ..Overrides::default()
    };
    let loaded = Config::load(Some(&file), &overrides).expect("valid");
    assert_eq!(loaded.config.cluster, "from-flag");
    assert_eq!(loaded.config.priority, 7);
    assert_eq!(loaded.config.listen.port(), 0);
    assert_eq!(loaded.origin, Origin::File(file.clone()));

    let bad = Overrides {
        node_name: Some("Not_Valid".into()),
        ..Overrides::default()
    };
    let err = Config::load(Some(&file), &bad).expect_err("bad flag");
    let msg = err.to_string();
    assert!(
        msg.starts_with("flag --node-name: field `node_name`"),
        "{msg}"
    );
}

#[test]
fn packaged_config_documents_the_defaults() {
    let text = include_str!("../../packaging/muster.toml");
    // Uncomment every `#key = value` line and `#[section]` header: each must parse, and all
    // but the examples of non-default values must equal the built-in defaults.
    let uncommented: String = text
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| {
            l.starts_with('[')
                || l.split_once('=')
                    .is_some_and(|(k, _)| !k.trim().contains(' '))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let c = parse(&uncommented).expect("packaged config parses");
    let expected = Config {
        node_name: Some("gpu01".into()),
        interfaces: vec!["eno1".into()],
        formation: muster_core::formation::FormationConfig {
            remove_after: Some(std::time::Duration::from_secs(1800)),
            ..Default::default()
        },
        ..Config::default()
    };
    assert_eq!(c, expected);
    assert_eq!(parse(text).expect("as shipped"), Config::default());
}
