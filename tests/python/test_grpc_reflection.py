"""A plain grpcio client that knows nothing of muster's protos finds and calls its API
through server reflection, and sees health SERVING."""

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def _call(channel, pool, service, method, request_fields=None):
    svc = pool.FindServiceByName(service)
    m = svc.FindMethodByName(method)
    req_cls = message_factory.GetMessageClass(m.input_type)
    resp_cls = message_factory.GetMessageClass(m.output_type)
    stub = channel.unary_unary(
        f"/{service}/{method}",
        request_serializer=req_cls.SerializeToString,
        response_deserializer=resp_cls.FromString,
    )
    return stub(req_cls(**(request_fields or {})), timeout=10)


def test_reflection_lists_services_and_status_answers(agent):
    with grpc.insecure_channel(agent.tcp) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = set(db.get_services())
        assert {"muster.v1.Agent", "muster.v1.Peer", "grpc.health.v1.Health"} <= services
        pool = descriptor_pool.DescriptorPool(db)
        status = _call(channel, pool, "muster.v1.Agent", "Status")
        assert status.cluster == agent.cluster
        assert status.node.name == "py-node"
        assert status.node.resources.cpus >= 1
        assert status.node.resources.memory_total_bytes > 0
        members = _call(channel, pool, "muster.v1.Agent", "Members")
        assert [m.name for m in members.members] == ["py-node"]
        alive = pool.FindEnumTypeByName("muster.v1.MemberStatus").values_by_name["MEMBER_STATUS_ALIVE"]
        assert members.members[0].status == alive.number


def test_health_is_serving(agent):
    with grpc.insecure_channel(agent.tcp) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "muster.v1.Agent"):
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_peer_ping_refuses_other_cluster(agent):
    with grpc.insecure_channel(agent.tcp) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        ok = _call(channel, pool, "muster.v1.Peer", "Ping", {"from": "x", "cluster": agent.cluster})
        assert ok.node_id == agent.status["node"]["id"]
        try:
            _call(channel, pool, "muster.v1.Peer", "Ping", {"from": "x", "cluster": "other"})
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "other" in e.details()
        else:
            raise AssertionError("a ping from another cluster was accepted")
