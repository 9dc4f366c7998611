"""Open Inference Protocol v2 gRPC modules generated at build time by grpcio-tools.

``grpc_predict_v2_pb2`` (messages) and ``grpc_predict_v2_pb2_grpc`` (service stubs)
come from ``protos/grpc_predict_v2.proto``. They register ``inference.*`` in protobuf's
default descriptor pool, so they are imported only by tests and clients that want
generated classes; the engine's own path uses the codec in ``engine.oip``.
"""
