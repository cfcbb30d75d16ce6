//! muster: turns the Ubuntu machines of one LAN into one MicroK8s cluster that runs Dask workers.
//!
//! The crate is the library behind the `muster` binary: the drivers around the pure cores of
//! `muster-core` (membership, election, formation) and everything that touches the machine:
//! sockets, processes, timers, the journal, protobuf. Nothing depends on it but the tests.
//!
//! Layout:
//! - [`cli`], [`config`], [`daemon`]: the binary's arguments, the one config struct, the
//!   agent's lifecycle (start-up, shutdown with a deadline).
//! - [`api`]: the gRPC services; the only place (with the mesh's wire code and the peer RPC
//!   glue, `workflow::rpc`) where protobuf meets domain types. Internal channels carry domain
//!   values; a test below keeps protobuf out of every other module.
//! - [`mesh`]: the driver of the membership core, which sees only core messages, and its wire
//!   (handle, codec, transport, served streams, routes).
//! - [`workflow`]: the driver of the election and formation cores.
//! - [`microk8s`]: the adapter (the narrow trait, the CLI implementation, the in-memory twin).
//! - [`discovery`] (mDNS), [`resources`], [`netinfo`], [`identity`]: what the machine is.
//! - [`journal`], [`events`], [`notify`]: what the agent tells the journal, watchers, systemd.
//! - [`demo`]: `muster demo`, on the `muster-lab` labs with the `microk8s-sim` binary.

pub mod api;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod discovery;
pub mod events;
pub mod identity;
pub mod journal;
pub mod mesh;
pub mod microk8s;
pub mod netinfo;
pub mod notify;
pub mod resources;
pub mod workflow;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Where protobuf may appear: the API, the peer RPC glue and the mesh's wire (with the
    /// tests that are their children).
    const WIRE: &[&str] = &[
        "api/",
        "workflow/rpc.rs",
        "mesh/codec.rs",
        "mesh/handle.rs",
        "mesh/header.rs",
        "mesh/routes.rs",
        "mesh/serve.rs",
        "mesh/serve_tests.rs",
        "mesh/transport.rs",
        "mesh/transport_tests.rs",
        // The workflow simulation (test-only) carries peer calls as the real clients encode
        // them: its in-memory network is a wire.
        "workflow/sim/mod.rs",
    ];

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("source dir readable") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn protobuf_appears_only_at_the_wire() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&root, &mut files);
        let offenders: Vec<String> = files
            .iter()
            .filter_map(|f| {
                let rel = f.strip_prefix(&root).ok()?.to_string_lossy().into_owned();
                if WIRE.iter().any(|w| rel.starts_with(w)) {
                    return None;
                }
                let text = std::fs::read_to_string(f).ok()?;
                // Split so that this file does not name what it looks for.
                let needles = [concat!("muster", "_proto"), concat!("pb", "::")];
                needles.iter().any(|n| text.contains(n)).then_some(rel)
            })
            .collect();
        assert!(
            offenders.is_empty(),
            "protobuf outside the wire (convert at the API or in the mesh's wire code): {offenders:?}"
        );
    }
}
