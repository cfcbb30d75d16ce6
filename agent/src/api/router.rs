//! The gRPC server's services in one router: `muster.v1.Agent`, `muster.v1.Peer`,
//! `grpc.health.v1.Health` and server reflection (`v1` and `v1alpha`), so that any gRPC client
//! can list and call the API without our protos. The daemon serves this router on the unix
//! socket and on TCP.

use muster_proto::v1 as pb;
use tonic::transport::server::Router;
use tonic_health::server::HealthReporter;

use super::peer::PeerService;
use super::server::AgentService;

/// The reflection service could not be built from the descriptors.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the reflection service: {0}")]
pub struct ReflectionError(String);

/// The router with every service, and the health reporter that marks the agent serving (now)
/// or not serving ([`not_serving`], while it stops).
pub async fn router(
    agent: AgentService,
    peer: PeerService,
) -> Result<(Router, HealthReporter), ReflectionError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::agent_server::AgentServer<AgentService>>()
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(muster_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ReflectionError(e.to_string()))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(muster_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ReflectionError(e.to_string()))?;
    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(pb::agent_server::AgentServer::new(agent))
        .add_service(pb::peer_server::PeerServer::new(peer));
    Ok((router, health))
}

/// Marks the whole server not serving (health checks see the agent stopping).
pub async fn not_serving(health: &HealthReporter) {
    health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
}
