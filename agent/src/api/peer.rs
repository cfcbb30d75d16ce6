//! The agent-to-agent `Peer` service. It answers liveness pings now; the membership and
//! election drivers extend it.

use muster_proto::v1 as pb;
use tonic::{Request, Response, Status};

/// Serves other agents.
#[derive(Clone, Debug)]
pub struct PeerService {
    node_id: String,
    cluster: String,
}

impl PeerService {
    /// A peer service for this node of `cluster`.
    pub fn new(node_id: String, cluster: String) -> Self {
        PeerService { node_id, cluster }
    }
}

#[tonic::async_trait]
impl pb::peer_server::Peer for PeerService {
    async fn ping(
        &self,
        request: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        let req = request.into_inner();
        if req.cluster != self.cluster {
            return Err(Status::permission_denied(format!(
                "this agent belongs to cluster {:?}, not {:?}",
                self.cluster, req.cluster
            )));
        }
        Ok(Response::new(pb::PingResponse {
            node_id: self.node_id.clone(),
        }))
    }
}
