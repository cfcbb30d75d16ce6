//! Argument parsing of the simulated `microk8s` commands, with the real tools' error texts.
//!
//! `add-node` and `status` use Python argparse (prefix matching, `usage:`/`error:` on stderr,
//! exit 2); `join`, `leave` and `remove-node` use click (`Usage:`/`Try … for help.`/`Error:`,
//! exit 2); `join` also validates the connection string (`Invalid connection: …`, exit 1).
//! Pure functions; what the commands then do is in `cli` and `ops`.

use std::net::IpAddr;

use super::tokens::TOKEN_MIN_LEN;

/// A parse outcome that ends the command: text for stdout or stderr and an exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Text for stdout.
    pub stdout: String,
    /// Text for stderr.
    pub stderr: String,
    /// Exit code.
    pub code: i32,
}

impl Exit {
    fn err(stderr: String, code: i32) -> Self {
        Self {
            stdout: String::new(),
            stderr,
            code,
        }
    }
    fn out(stdout: String, code: i32) -> Self {
        Self {
            stdout,
            stderr: String::new(),
            code,
        }
    }
}

struct Opt {
    names: &'static [&'static str],
    value: bool,
}

const ADD_NODE_USAGE: &str = "usage: microk8s add-node [-h] [--token-ttl TOKEN_TTL] [--token TOKEN]\n                         [--format {pretty,short,token,token-check,json,yaml}]\n";

/// `microk8s add-node --help` (argparse, Python 3.10).
pub const ADD_NODE_HELP: &str = "usage: microk8s add-node [-h] [--token-ttl TOKEN_TTL] [--token TOKEN]\n                         [--format {pretty,short,token,token-check,json,yaml}]\n\nProduce a connection string for a node to join the cluster.\n\noptions:\n  -h, --help            show this help message and exit\n  --token-ttl TOKEN_TTL, -l TOKEN_TTL\n                        Specify how long the token is valid, before it\n                        expires. Value of \"-1\" indicates that the token is\n                        usable only once (i.e. after joining a node, the token\n                        becomes invalid)\n  --token TOKEN, -t TOKEN\n                        Specify the bootstrap token to add, must be 32\n                        characters long. Auto generates when empty.\n  --format {pretty,short,token,token-check,json,yaml}\n                        Format the output of the token in pretty, short,\n                        token, or token-check\n";

const STATUS_USAGE: &str = "usage: microk8s status [-h] [--format {pretty,yaml,short}] [-w] [-t TIMEOUT]\n                       [-a ADDON] [--yaml]\n";

const STATUS_HELP: &str = "usage: microk8s status [-h] [--format {pretty,yaml,short}] [-w] [-t TIMEOUT]\n                       [-a ADDON] [--yaml]\n\nMicrok8s cluster status check.\n\noptions:\n  -h, --help            show this help message and exit\n  --format {pretty,yaml,short}\n                        print cluster and addon status, output can be in yaml,\n                        pretty or short\n  -w, --wait-ready      wait until the cluster is in ready state\n  -t TIMEOUT, --timeout TIMEOUT\n                        specify a timeout in seconds when waiting for the\n                        cluster to be ready.\n  -a ADDON, --addon ADDON\n                        check the status of an addon.\n  --yaml                DEPRECATED, use '--format yaml' instead\n";

/// argparse over `args`; returns (canonical name, value) pairs in order.
fn argparse(
    usage: &str,
    prog: &str,
    help: &str,
    opts: &[Opt],
    args: &[String],
) -> Result<Vec<(&'static str, Option<String>)>, Exit> {
    let fail = |msg: String| Exit::err(format!("{usage}{prog}: error: {msg}\n"), 2);
    let display = |o: &Opt| o.names.join("/");
    let mut out = Vec::new();
    let mut extras = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "-h" || a == "--help" {
            return Err(Exit::out(help.to_owned(), 0));
        }
        let is_negative_number =
            a.len() > 1 && a[1..].chars().all(|c| c.is_ascii_digit() || c == '.');
        if !a.starts_with('-') || a == "-" || is_negative_number {
            extras.push(a.clone());
            continue;
        }
        let (key, inline) = if a.starts_with("--") {
            match a.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (a.clone(), None),
            }
        } else if a.len() > 2 {
            (a[..2].to_owned(), Some(a[2..].to_owned()))
        } else {
            (a.clone(), None)
        };
        let exact = opts.iter().find(|o| o.names.contains(&key.as_str()));
        let opt = match exact {
            Some(o) => o,
            None if key.starts_with("--") => {
                let matches: Vec<&Opt> = opts
                    .iter()
                    .filter(|o| {
                        o.names
                            .iter()
                            .any(|n| n.starts_with("--") && n.starts_with(key.as_str()))
                    })
                    .collect();
                match matches.as_slice() {
                    [one] => *one,
                    [] => {
                        extras.push(a.clone());
                        continue;
                    }
                    many => {
                        let names: Vec<&str> = many
                            .iter()
                            .flat_map(|o| {
                                o.names
                                    .iter()
                                    .copied()
                                    .filter(|n| n.starts_with(key.as_str()))
                            })
                            .collect();
                        return Err(fail(format!(
                            "ambiguous option: {key} could match {}",
                            names.join(", ")
                        )));
                    }
                }
            }
            None => {
                extras.push(a.clone());
                continue;
            }
        };
        let canonical = opt.names[0];
        if !opt.value {
            if inline.is_some() && key.starts_with("--") {
                return Err(fail(format!(
                    "argument {}: ignored explicit argument '{}'",
                    display(opt),
                    inline.unwrap_or_default()
                )));
            }
            out.push((canonical, None));
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => match args.get(i) {
                Some(v)
                    if !v.starts_with('-')
                        || v.len() > 1 && v[1..].chars().all(|c| c.is_ascii_digit()) =>
                {
                    i += 1;
                    v.clone()
                }
                _ => {
                    return Err(fail(format!(
                        "argument {}: expected one argument",
                        display(opt)
                    )));
                }
            },
        };
        out.push((canonical, Some(value)));
    }
    if !extras.is_empty() {
        return Err(fail(format!(
            "unrecognized arguments: {}",
            extras.join(" ")
        )));
    }
    Ok(out)
}

fn python_int(s: &str) -> Option<i64> {
    let t = s.trim().replace('_', "");
    t.parse::<i64>().ok()
}

/// Parsed `add-node` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddNodeArgs {
    /// `--token-ttl` (-1 = single use).
    pub ttl: i64,
    /// `--token`.
    pub token: Option<String>,
    /// `--format`.
    pub format: String,
}

/// Parses `add-node` arguments (after the wrapper's `help` substring check).
pub fn add_node(args: &[String]) -> Result<AddNodeArgs, Exit> {
    let opts = [
        Opt {
            names: &["--token-ttl", "-l"],
            value: true,
        },
        Opt {
            names: &["--token", "-t"],
            value: true,
        },
        Opt {
            names: &["--format"],
            value: true,
        },
    ];
    let parsed = argparse(
        ADD_NODE_USAGE,
        "microk8s add-node",
        ADD_NODE_HELP,
        &opts,
        args,
    )?;
    let fail = |msg: String| {
        Exit::err(
            format!("{ADD_NODE_USAGE}microk8s add-node: error: {msg}\n"),
            2,
        )
    };
    let mut a = AddNodeArgs {
        ttl: -1,
        token: None,
        format: "pretty".into(),
    };
    for (k, v) in parsed {
        let v = v.unwrap_or_default();
        match k {
            "--token-ttl" => {
                a.ttl = python_int(&v).ok_or_else(|| {
                    fail(format!("argument --token-ttl/-l: invalid int value: '{v}'"))
                })?;
            }
            "--token" => a.token = Some(v),
            _ => {
                if !super::format::ADD_NODE_FORMATS.contains(&v.as_str()) {
                    return Err(fail(format!(
                        "argument --format: invalid choice: '{v}' (choose from 'pretty', 'short', 'token', 'token-check', 'json', 'yaml')"
                    )));
                }
                a.format = v;
            }
        }
    }
    Ok(a)
}

/// Parsed `status` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusArgs {
    /// `pretty`, `yaml`, `short`, or `short-yaml` for the deprecated `--yaml`.
    pub format: String,
    /// `--wait-ready`.
    pub wait_ready: bool,
    /// `--timeout` seconds (0 = forever).
    pub timeout: i64,
    /// `--addon NAME`.
    pub addon: Option<String>,
}

/// Parses `status` arguments.
pub fn status(args: &[String]) -> Result<StatusArgs, Exit> {
    let opts = [
        Opt {
            names: &["--format"],
            value: true,
        },
        Opt {
            names: &["-w", "--wait-ready"],
            value: false,
        },
        Opt {
            names: &["-t", "--timeout"],
            value: true,
        },
        Opt {
            names: &["-a", "--addon"],
            value: true,
        },
        Opt {
            names: &["--yaml"],
            value: false,
        },
    ];
    let parsed = argparse(STATUS_USAGE, "microk8s status", STATUS_HELP, &opts, args)?;
    let fail = |msg: String| Exit::err(format!("{STATUS_USAGE}microk8s status: error: {msg}\n"), 2);
    let mut s = StatusArgs {
        format: "pretty".into(),
        wait_ready: false,
        timeout: 0,
        addon: None,
    };
    let mut yaml = false;
    for (k, v) in parsed {
        let v = v.unwrap_or_default();
        match k {
            "--format" => {
                if !["pretty", "yaml", "short"].contains(&v.as_str()) {
                    return Err(fail(format!(
                        "argument --format: invalid choice: '{v}' (choose from 'pretty', 'yaml', 'short')"
                    )));
                }
                s.format = v;
            }
            "-w" => s.wait_ready = true,
            "-t" => {
                s.timeout = python_int(&v).ok_or_else(|| {
                    fail(format!("argument -t/--timeout: invalid int value: '{v}'"))
                })?;
            }
            "-a" => s.addon = Some(v),
            _ => yaml = true,
        }
    }
    if yaml && s.format == "pretty" {
        s.format = "short-yaml".into();
    }
    Ok(s)
}

fn click_usage(usage: &str, help_flag: &str, cmd: &str, error: &str) -> Exit {
    Exit::err(
        format!(
            "Usage: microk8s {cmd} {usage}\nTry 'microk8s {cmd} {help_flag}' for help.\n\nError: {error}\n"
        ),
        2,
    )
}

fn extra_error(extra: &[String]) -> String {
    if extra.len() == 1 {
        format!("Got unexpected extra argument ({})", extra[0])
    } else {
        format!("Got unexpected extra arguments ({})", extra.join(" "))
    }
}

/// `microk8s join --help` (click).
pub const JOIN_HELP: &str = "Usage: microk8s join [OPTIONS] CONNECTION\n\n  Join the node to a cluster\n\n  CONNECTION: the cluster connection endpoint in format <master>:<port>/<token>\n\nOptions:\n  --worker                    Join as a worker only node.\n  --controlplane              Join running the control plane on HA clusters.\n                              (default)\n  --skip-verify               Skip the certificate verification of the node we\n                              are joining to. (default: false)\n  --disable-low-memory-guard  Disable the low memory guard. (default: false)\n  -h, --help                  Show this message and exit.\n";

/// A validated join request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinArgs {
    /// The whole connection string.
    pub connection: String,
    /// Entry IP.
    pub ip: IpAddr,
    /// Entry port.
    pub port: u16,
    /// The token part.
    pub token: String,
    /// The fingerprint part, if any.
    pub fingerprint: Option<String>,
    /// `--worker`.
    pub worker: bool,
    /// Not `--skip-verify`.
    pub verify: bool,
}

/// Parses and validates `join` arguments.
pub fn join(args: &[String]) -> Result<JoinArgs, Exit> {
    let mut worker = false;
    let mut skip_verify = false;
    let mut positional = Vec::new();
    let mut rest = false;
    for a in args {
        if rest {
            positional.push(a.clone());
            continue;
        }
        match a.as_str() {
            "-h" | "--help" => return Err(Exit::out(JOIN_HELP.to_owned(), 0)),
            "--worker" => worker = true,
            "--controlplane" => worker = false,
            "--skip-verify" => skip_verify = true,
            "--disable-low-memory-guard" => {}
            "--" => rest = true,
            // ignore_unknown_options: unknown options become arguments.
            _ => positional.push(a.clone()),
        }
    }
    let usage = "[OPTIONS] CONNECTION";
    let connection = match positional.as_slice() {
        [] => {
            return Err(click_usage(
                usage,
                "-h",
                "join",
                "Missing argument 'CONNECTION'.",
            ));
        }
        [one] => one.clone(),
        [_, extra @ ..] => return Err(click_usage(usage, "-h", "join", &extra_error(extra))),
    };
    let invalid = |r: &str| Exit::out(super::format::invalid_connection(r), 1);
    let expected = "Expected format: <master_IP>:<master_PORT>/<token>[/<fingerprint>]";
    let parts: Vec<&str> = connection.split('/').collect();
    if parts.len() != 2 && parts.len() != 3 {
        return Err(invalid(expected));
    }
    let ep: Vec<&str> = parts[0].split(':').collect();
    if ep.len() != 2 {
        return Err(invalid(expected));
    }
    let ip: IpAddr = ep[0].parse().map_err(|_| invalid("Invalid master IP"))?;
    let port = python_int(ep[1]).ok_or_else(|| invalid("Master PORT not a number"))?;
    if !(1..=65535).contains(&port) {
        return Err(invalid("Master PORT not in range 1:65535"));
    }
    if parts[1].chars().count() < TOKEN_MIN_LEN {
        return Err(invalid("Cluster token size should be at least 32 bytes"));
    }
    if parts.len() == 3 && parts[2].chars().count() < 12 {
        return Err(invalid("Fingerprint should be at least 12 bytes"));
    }
    Ok(JoinArgs {
        ip,
        port: u16::try_from(port).unwrap_or(25000),
        token: parts[1].to_owned(),
        fingerprint: parts.get(2).map(|s| (*s).to_owned()),
        connection,
        worker,
        verify: !skip_verify,
    })
}

/// Parses `leave` arguments (only `-h/--help`).
pub fn leave(args: &[String]) -> Result<(), Exit> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Err(Exit::out(
            "Usage: microk8s leave [OPTIONS]\n\n  The node will depart from the cluster it is in.\n\nOptions:\n  -h, --help  Show this message and exit.\n".to_owned(),
            0,
        ));
    }
    if let Some(opt) = args.iter().find(|a| a.starts_with('-') && a.len() > 1) {
        return Err(click_usage(
            "[OPTIONS]",
            "-h",
            "leave",
            &format!("No such option: {opt}"),
        ));
    }
    if !args.is_empty() {
        return Err(click_usage("[OPTIONS]", "-h", "leave", &extra_error(args)));
    }
    Ok(())
}

/// Parses `remove-node` arguments, wrapper checks included: (node, force).
pub fn remove_node(args: &[String], ha_cluster: bool) -> Result<(String, bool), Exit> {
    if args.is_empty() {
        return Err(Exit::out(super::format::REMOVE_NO_ARG.to_owned(), 1));
    }
    if ha_cluster && args.len() == 2 && args[1] != "--force" {
        return Err(Exit::out(super::format::REMOVE_BAD_FORCE.to_owned(), 1));
    }
    let usage = "[OPTIONS] NODE";
    let mut force = false;
    let mut positional = Vec::new();
    for a in args {
        match a.as_str() {
            "--help" => {
                return Err(Exit::out(
                    "Usage: microk8s remove-node [OPTIONS] NODE\n\n  Remove a node from the cluster\n\nOptions:\n  --force  Force the node removal operation. (default: false)\n  --help   Show this message and exit.\n".to_owned(),
                    0,
                ));
            }
            "--force" => force = true,
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(click_usage(
                    usage,
                    "--help",
                    "remove-node",
                    &format!("No such option: {s}"),
                ));
            }
            _ => positional.push(a.clone()),
        }
    }
    match positional.as_slice() {
        [] => Err(click_usage(
            usage,
            "--help",
            "remove-node",
            "Missing argument 'NODE'.",
        )),
        [one] => Ok((one.clone(), force)),
        [_, extra @ ..] => Err(click_usage(
            usage,
            "--help",
            "remove-node",
            &extra_error(extra),
        )),
    }
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
