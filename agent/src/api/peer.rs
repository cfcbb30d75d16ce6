//! The agent-to-agent `Peer` service: identity pings, the membership protocol (`Stream`, served
//! by [`crate::mesh::serve`], and the one-shot `Exchange`, which hands one envelope to the mesh
//! driver and returns its immediate answers) and the formation calls of the workflow, whose
//! protobuf messages become domain values here (conversions in `workflow::rpc`) and whose
//! typed errors become gRPC statuses.

use std::net::{IpAddr, SocketAddr};

use muster_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::mesh::{DeliverError, MeshHandle, serve};
use crate::workflow::rpc::{
    claim_from_pb, preference_from, reply_to_pb, report_from_pb, response_to_pb,
};
use crate::workflow::{WorkflowError, WorkflowHandle};
use muster_core::formation::JoinRequest;

/// Serves other agents.
#[derive(Clone, Debug)]
pub struct PeerService {
    node_id: String,
    cluster: String,
    mesh: MeshHandle,
    workflow: WorkflowHandle,
}

/// A workflow error as a gRPC status: the workflow is (momentarily) unavailable.
fn status_of(e: WorkflowError) -> Status {
    Status::unavailable(e.to_string())
}

impl PeerService {
    /// Refuses a request of another cluster.
    fn check_cluster(&self, theirs: &str) -> Result<(), Status> {
        if theirs == self.cluster {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "this agent belongs to cluster {:?}, not {theirs:?}",
                self.cluster
            )))
        }
    }

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
        self.check_cluster(&request.get_ref().cluster)?;
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
        let req = request.into_inner();
        self.check_cluster(&req.cluster)?;
        let claim = claim_from_pb(&req);
        let reply = self
            .workflow
            .claim(req.from, claim)
            .await
            .map_err(status_of)?;
        Ok(Response::new(reply_to_pb(&reply)))
    }

    async fn request_join(
        &self,
        request: Request<pb::JoinRequestMsg>,
    ) -> Result<Response<pb::JoinResponseMsg>, Status> {
        // Where the request came from and which of our addresses it reached: the entry point
        // answers with the join URL on that network.
        let seen_from = request.remote_addr().map(|a| a.ip());
        let met_on = request.local_addr().map(|a| a.ip());
        let req = request.into_inner();
        self.check_cluster(&req.cluster)?;
        let addr = seen_from
            .or_else(|| req.addr.parse::<SocketAddr>().ok().map(|a| a.ip()))
            .or_else(|| req.addr.parse::<IpAddr>().ok())
            .ok_or_else(|| {
                Status::invalid_argument(format!("bad follower address {:?}", req.addr))
            })?;
        let join = JoinRequest {
            follower: req.from,
            name: req.name,
            addr,
            met_on,
            preference: preference_from(&req.preference),
            version: Some(req.version).filter(|v| !v.is_empty()),
        };
        let answer = self.workflow.request_join(join).await.map_err(status_of)?;
        Ok(Response::new(response_to_pb(
            &answer.response,
            &answer.cluster_id,
        )))
    }

    async fn report_join(
        &self,
        request: Request<pb::JoinReportMsg>,
    ) -> Result<Response<pb::JoinReportAck>, Status> {
        let req = request.into_inner();
        self.check_cluster(&req.cluster)?;
        self.workflow
            .report(req.from, report_from_pb(req.ok, req.detail))
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::JoinReportAck {}))
    }

    async fn request_removal(
        &self,
        request: Request<pb::RemovalRequest>,
    ) -> Result<Response<pb::RemovalResponse>, Status> {
        let req = request.into_inner();
        self.check_cluster(&req.cluster)?;
        let message = format!("removal of {} queued", req.name);
        self.workflow.removal(req.name).await.map_err(status_of)?;
        Ok(Response::new(pb::RemovalResponse { message }))
    }
}
