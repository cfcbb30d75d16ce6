//! How the CLI shows API answers: aligned tables for people (like `serf members`), stable
//! JSON for scripts. JSON field names are part of the interface; change them only additively.

use muster_proto::v1 as pb;
use serde_json::{Value, json};

/// `alive`, `suspect`, `dead`, `left` or `unknown`.
pub fn status_word(status: i32) -> &'static str {
    match pb::MemberStatus::try_from(status) {
        Ok(pb::MemberStatus::Alive) => "alive",
        Ok(pb::MemberStatus::Suspect) => "suspect",
        Ok(pb::MemberStatus::Dead) => "dead",
        Ok(pb::MemberStatus::Left) => "left",
        _ => "unknown",
    }
}

fn resources_json(r: Option<&pb::Resources>) -> Value {
    let r = r.cloned().unwrap_or_default();
    json!({
        "cpus": r.cpus,
        "memory_total_bytes": r.memory_total_bytes,
        "memory_available_bytes": r.memory_available_bytes,
        "gpus": r.gpus.iter().map(|g| json!({
            "vendor": g.vendor, "model": g.model, "memory_bytes": g.memory_bytes,
        })).collect::<Vec<_>>(),
    })
}

/// One member as a JSON object.
pub fn member_value(m: &pb::Member) -> Value {
    let fields: serde_json::Map<String, Value> = m
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "name": m.name,
        "id": m.id,
        "addr": m.addr,
        "status": status_word(m.status),
        "incarnation": m.incarnation,
        "role": m.role,
        "version": m.version,
        "resources": resources_json(m.resources.as_ref()),
        "addresses": m.addresses,
        "fields": fields,
        "meta_version": m.meta_version,
        "local": m.local,
    })
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    s.push('\n');
    s
}

/// `muster members --json`: `{"members":[…]}`.
pub fn members_json(members: &[pb::Member]) -> String {
    pretty(&json!({ "members": members.iter().map(member_value).collect::<Vec<_>>() }))
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Left-aligned columns separated by two spaces.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `muster members`: one row per member.
pub fn members_table(members: &[pb::Member]) -> String {
    let mut rows = vec![
        [
            "NAME", "ADDRESS", "STATUS", "ROLE", "CPUS", "MEMORY", "GPUS", "VERSION",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for m in members {
        let r = m.resources.clone().unwrap_or_default();
        let role = if m.role.is_empty() {
            "-".to_owned()
        } else {
            m.role.clone()
        };
        rows.push(vec![
            if m.local {
                format!("{}*", m.name)
            } else {
                m.name.clone()
            },
            m.addr.clone(),
            status_word(m.status).to_owned(),
            role,
            r.cpus.to_string(),
            gib(r.memory_total_bytes),
            r.gpus.len().to_string(),
            m.version.clone(),
        ]);
    }
    table(&rows)
}

/// `muster status --json`.
pub fn status_json(s: &pb::StatusResponse) -> String {
    let c = s.cluster_state.clone().unwrap_or_default();
    pretty(&json!({
        "node": s.node.as_ref().map(member_value),
        "cluster": s.cluster,
        "role": s.role,
        "members_alive": s.members_alive,
        "members_total": s.members_total,
        "cluster_state": {
            "entry_point": c.entry_point,
            "size": c.size,
            "ha": c.ha,
            "voters": c.voters,
            "microk8s": c.microk8s,
            "term": c.term,
            "verified": c.verified,
            "conflict": c.conflict,
        },
        "warnings": s.warnings,
        "uptime_seconds": s.uptime_seconds,
        "listen": s.listen,
    }))
}

/// `muster status`: a short report for people.
pub fn status_text(s: &pb::StatusResponse) -> String {
    let node = s.node.clone().unwrap_or_default();
    let r = node.resources.clone().unwrap_or_default();
    let c = s.cluster_state.clone().unwrap_or_default();
    let or_dash = |v: &str| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.to_owned()
        }
    };
    let mut rows = vec![
        vec!["node:".to_owned(), format!("{} ({})", node.name, node.id)],
        vec!["version:".to_owned(), node.version.clone()],
        vec!["cluster:".to_owned(), s.cluster.clone()],
        vec!["role:".to_owned(), or_dash(&s.role)],
        vec![
            "members:".to_owned(),
            format!("{} alive of {} known", s.members_alive, s.members_total),
        ],
        vec!["entry point:".to_owned(), or_dash(&c.entry_point)],
        vec![
            "joined:".to_owned(),
            if c.verified {
                "verified".to_owned()
            } else {
                "not verified".to_owned()
            },
        ],
        vec![
            "microk8s:".to_owned(),
            format!(
                "{}; cluster of {} node(s), {} voter(s), HA {}",
                or_dash(&c.microk8s),
                c.size,
                c.voters,
                if c.ha { "yes" } else { "no" }
            ),
        ],
        vec![
            "resources:".to_owned(),
            format!(
                "{} CPUs, {} total, {} available, {} GPU(s)",
                r.cpus,
                gib(r.memory_total_bytes),
                gib(r.memory_available_bytes),
                r.gpus.len()
            ),
        ],
        vec!["listening:".to_owned(), s.listen.join(", ")],
        vec![
            "uptime:".to_owned(),
            humantime::format_duration(std::time::Duration::from_secs(s.uptime_seconds))
                .to_string(),
        ],
    ];
    for w in &s.warnings {
        rows.push(vec!["warning:".to_owned(), w.clone()]);
    }
    table(&rows)
}

/// One event as a JSON line.
pub fn event_json(e: &pb::Event) -> String {
    json!({
        "unix_ms": e.unix_ms,
        "event": e.event,
        "node": e.node,
        "message": e.message,
        "fields": e.fields,
    })
    .to_string()
}

/// One event for people: time, event, node, message.
pub fn event_text(e: &pb::Event) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.unix_ms);
    let node = if e.node.is_empty() {
        String::new()
    } else {
        format!(" [{}]", e.node)
    };
    format!(
        "{} {}{} {}",
        humantime::format_rfc3339_millis(t),
        e.event,
        node,
        e.message
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, status: pb::MemberStatus) -> pb::Member {
        pb::Member {
            id: format!("{name}-id"),
            name: name.into(),
            addr: "198.18.0.1:7440".into(),
            status: status as i32,
            incarnation: 3,
            version: "0.1.0".into(),
            resources: Some(pb::Resources {
                cpus: 4,
                memory_total_bytes: 16 << 30,
                memory_available_bytes: 8 << 30,
                gpus: vec![],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn members_json_has_the_scripted_shape() {
        let out = members_json(&[
            member("a", pb::MemberStatus::Alive),
            member("b", pb::MemberStatus::Left),
        ]);
        let v: Value = serde_json::from_str(&out).expect("json");
        let ms = v["members"].as_array().expect("array");
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0]["name"], "a");
        assert_eq!(ms[0]["addr"], "198.18.0.1:7440");
        assert_eq!(ms[0]["status"], "alive");
        assert_eq!(ms[0]["incarnation"], 3);
        assert_eq!(ms[0]["resources"]["cpus"], 4);
        assert_eq!(ms[1]["status"], "left");
    }

    #[test]
    fn members_table_aligns_columns() {
        let out = members_table(&[
            member("node-a", pb::MemberStatus::Alive),
            member("b", pb::MemberStatus::Dead),
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NAME    ADDRESS"), "{out}");
        assert!(
            lines[1].starts_with("node-a  198.18.0.1:7440  alive"),
            "{out}"
        );
        assert!(
            lines[2].starts_with("b       198.18.0.1:7440  dead"),
            "{out}"
        );
        assert!(lines[1].contains("16.0 GiB"), "{out}");
    }

    #[test]
    fn unknown_status_number_is_named_unknown() {
        assert_eq!(status_word(99), "unknown");
        assert_eq!(status_word(0), "unknown");
    }
}
