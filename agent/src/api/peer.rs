//! The agent-to-agent `Peer` service: identity pings, the membership protocol (`Stream`, served
//! by [`crate::mesh::serve`], and the one-shot `Exchange`, which hands one envelope to the mesh
//! driver and returns its immediate answers) and the formation calls of the workflow.

use muster_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::mesh::{DeliverError, MeshHandle, serve};
use crate::workflow::WorkflowHandle;

/// Serves other agents.
#[derive(Clone, Debug)]
pub struct PeerService {
    node_id: String,
    cluster: String,
    mesh: MeshHandle,
    workflow: WorkflowHandle,
}

impl PeerService {
    /// A peer service for this node of `cluster`, feeding `mesh` and `workflow`.
    pub fn new(
        node_id: String,
        cluster: String,
        mesh: MeshHandle,
        workflow: WorkflowHandle,
    ) -> Self {
        PeerService {
            node_id,
            cluster,
            mesh,
            workflow,
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

    type StreamStream = serve::Answers;

    async fn stream(
        &self,
        request: Request<tonic::Streaming<pb::Envelope>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        Ok(Response::new(serve::serve(
            self.mesh.clone(),
            self.node_id.clone(),
            request.into_inner(),
        )))
    }

    async fn claim(
        &self,
        request: Request<pb::ClaimRequest>,
    ) -> Result<Response<pb::ClaimResponse>, Status> {
        self.workflow
            .claim(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn request_join(
        &self,
        request: Request<pb::JoinRequestMsg>,
    ) -> Result<Response<pb::JoinResponseMsg>, Status> {
        // Where the request came from and which of our addresses it reached: the entry point
        // answers with the join URL on that network.
        let seen_from = request.remote_addr().map(|a| a.ip());
        let met_on = request.local_addr().map(|a| a.ip());
        self.workflow
            .request_join(request.into_inner(), seen_from, met_on)
            .await
            .map(Response::new)
    }

    async fn report_join(
        &self,
        request: Request<pb::JoinReportMsg>,
    ) -> Result<Response<pb::JoinReportAck>, Status> {
        self.workflow.report(request.into_inner()).await?;
        Ok(Response::new(pb::JoinReportAck {}))
    }

    async fn request_removal(
        &self,
        request: Request<pb::RemovalRequest>,
    ) -> Result<Response<pb::RemovalResponse>, Status> {
        let message = self.workflow.removal(request.into_inner()).await?;
        Ok(Response::new(pb::RemovalResponse { message }))
    }
}
