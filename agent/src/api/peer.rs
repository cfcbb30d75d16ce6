//! The agent-to-agent `Peer` service: identity pings and the membership protocol's
//! `Exchange`, which hands each envelope to the mesh driver and returns its immediate answers.

use muster_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::mesh::{DeliverError, MeshHandle};

/// Serves other agents.
#[derive(Clone, Debug)]
pub struct PeerService {
    node_id: String,
    cluster: String,
    mesh: MeshHandle,
}

impl PeerService {
    /// A peer service for this node of `cluster`, feeding `mesh`.
    pub fn new(node_id: String, cluster: String, mesh: MeshHandle) -> Self {
        PeerService {
            node_id,
            cluster,
            mesh,
        }
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

    async fn exchange(
        &self,
        request: Request<pb::Envelope>,
    ) -> Result<Response<pb::Replies>, Status> {
        match self.mesh.deliver(request.into_inner()).await {
            Ok(envelopes) => Ok(Response::new(pb::Replies { envelopes })),
            Err(e @ DeliverError::WrongCluster { .. }) => {
                Err(Status::permission_denied(e.to_string()))
            }
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }
}
