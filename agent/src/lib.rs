//! muster: turns the Ubuntu machines of one LAN into one MicroK8s cluster that runs Dask workers.
//!
//! The crate is the library behind the `muster` binary: the drivers around the pure cores of
//! `muster-core` (membership, election, formation) and everything that touches the machine:
//! sockets, processes, timers, the journal, protobuf. Nothing depends on it but the tests.
//!
//! Layout:
//! - [`cli`], [`config`], [`daemon`]: the binary's arguments, the one config struct, the
//!   agent's lifecycle (start-up, shutdown with a deadline).
//! - [`api`]: the gRPC services; the only place (with the mesh codec and the peer RPC glue)
//!   where protobuf meets domain types.
//! - [`mesh`]: the driver of the membership core (transport, codec, routes).
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
