//! `microk8s kubectl`: the node commands muster and remove-node rely on are built in
//! (`get nodes|node|no [NAME…] [-o json|wide|name]`, `delete node NAME…`); anything else is
//! handed to a real `kubectl` on PATH with a kubeconfig for this host's simulated API server.

use std::process::Stdio;

use super::control::Output;
use super::daemon::Daemon;
use super::format;
use super::nodes;
use super::ops::node_objects;
use super::state_dir::API_PORT;

enum Verb {
    Get {
        names: Vec<String>,
        output: Option<String>,
    },
    Delete {
        names: Vec<String>,
    },
}

fn parse(args: &[String]) -> Option<Verb> {
    let (verb, rest) = args.split_first()?;
    let mut positional = Vec::new();
    let mut output = None;
    let mut i = 0;
    while i < rest.len() {
        let a = &rest[i];
        i += 1;
        if a == "-o" || a == "--output" {
            output = Some(rest.get(i)?.clone());
            i += 1;
        } else if let Some(v) = a
            .strip_prefix("--output=")
            .or_else(|| a.strip_prefix("-o="))
        {
            output = Some(v.to_owned());
        } else if let Some(v) = a.strip_prefix("-o").filter(|v| !v.is_empty()) {
            output = Some(v.to_owned());
        } else if a.starts_with('-') {
            return None;
        } else {
            positional.push(a.clone());
        }
    }
    let (resource, names) = positional.split_first()?;
    let mut names = names.to_vec();
    let resource = match resource.split_once('/') {
        Some((r, n)) => {
            names.insert(0, n.to_owned());
            r
        }
        None => resource.as_str(),
    };
    if !matches!(resource, "nodes" | "node" | "no") {
        return None;
    }
    match verb.as_str() {
        "get"
            if output
                .as_deref()
                .is_none_or(|o| ["json", "wide", "name"].contains(&o)) =>
        {
            Some(Verb::Get { names, output })
        }
        "delete" if output.is_none() && !names.is_empty() => Some(Verb::Delete { names }),
        _ => None,
    }
}

/// Runs `microk8s kubectl ARGS`.
pub async fn run(d: &std::sync::Arc<Daemon>, args: &[String], o: &Output) -> i32 {
    let api_up = {
        let g = d.lock();
        d.running(&g)
    };
    if !api_up {
        o.err(format::API_REFUSED);
        return 1;
    }
    match parse(args) {
        Some(Verb::Get { names, output }) => get(d, &names, output.as_deref(), o),
        Some(Verb::Delete { names }) => {
            let mut code = 0;
            for name in names {
                let n = name.clone();
                match d.write(move |c, _, _| c.nodes.remove(&n).is_some()) {
                    Ok(true) => o.out(format!("node \"{name}\" deleted\n")),
                    Ok(false) => {
                        o.err(format::node_not_found(&name));
                        code = 1;
                    }
                    Err(_) => {
                        o.err("Error from server (Timeout): Timeout: request did not complete within requested timeout - context deadline exceeded\n");
                        code = 1;
                    }
                }
            }
            code
        }
        None => external(d, args, o).await,
    }
}

fn get(d: &Daemon, names: &[String], output: Option<&str>, o: &Output) -> i32 {
    let all = node_objects(d);
    let mut code = 0;
    let mut picked = Vec::new();
    if names.is_empty() {
        picked = all;
    } else {
        for name in names {
            match all
                .iter()
                .find(|(v, _)| v["metadata"]["name"] == name.as_str())
            {
                Some(p) => picked.push(p.clone()),
                None => {
                    o.err(format::node_not_found(name));
                    code = 1;
                }
            }
        }
    }
    match output {
        Some("json") => {
            if names.len() == 1 {
                if let Some((v, _)) = picked.first() {
                    o.out(nodes::kubectl_json(v));
                }
            } else {
                let items = picked.into_iter().map(|(v, _)| v).collect();
                o.out(nodes::kubectl_json(&nodes::list_object(items)));
            }
        }
        Some("name") => {
            for (v, _) in &picked {
                o.out(format!(
                    "node/{}\n",
                    v["metadata"]["name"].as_str().unwrap_or_default()
                ));
            }
        }
        other => {
            if picked.is_empty() {
                if names.is_empty() {
                    o.err("No resources found\n");
                }
            } else {
                let rows: Vec<Vec<String>> = picked.into_iter().map(|(_, r)| r).collect();
                o.out(nodes::nodes_table(&rows, other == Some("wide")));
            }
        }
    }
    code
}

async fn external(d: &Daemon, args: &[String], o: &Output) -> i32 {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|dir| dir.join("kubectl"))
            .find(|f| f.is_file())
    });
    let Some(kubectl) = found else {
        o.err("microk8s-sim: only `kubectl get nodes` and `kubectl delete node` are built in; install kubectl for other commands\n");
        return 1;
    };
    let cfg_path = d.dir.path("credentials/kubectl.config");
    let text = d.dir.client_config().unwrap_or_default().replace(
        &format!("127.0.0.1:{API_PORT}"),
        &format!("{}:{API_PORT}", d.host.default_ip()),
    );
    if let Err(e) = std::fs::write(&cfg_path, text) {
        o.err(format!("microk8s-sim: {}: {e}\n", cfg_path.display()));
        return 1;
    }
    let out = tokio::process::Command::new(kubectl)
        .arg(format!("--kubeconfig={}", cfg_path.display()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await;
    match out {
        Ok(out) => {
            o.out(String::from_utf8_lossy(&out.stdout).into_owned());
            o.err(String::from_utf8_lossy(&out.stderr).into_owned());
            out.status.code().unwrap_or(1)
        }
        Err(e) => {
            o.err(format!("microk8s-sim: running kubectl: {e}\n"));
            1
        }
    }
}
