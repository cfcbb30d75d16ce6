//! muster: turns the Ubuntu machines of one LAN into one MicroK8s cluster that runs Dask workers.
//!
//! The crate is the library behind the `muster` binary. Pure state machines (membership,
//! election, sizing) live beside thin drivers that own sockets, processes, timers and the journal.

pub mod api;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod discovery;
pub mod election;
pub mod events;
pub mod formation;
pub mod identity;
pub mod journal;
pub mod lab;
pub mod membership;
pub mod mesh;
pub mod netinfo;
pub mod notify;
pub mod resources;
pub mod rng;
pub mod sim;
pub mod workflow;
