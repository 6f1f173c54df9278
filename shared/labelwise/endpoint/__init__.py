"""The embedding endpoint: an inference server honouring SageMaker's container contract
(:mod:`labelwise.endpoint.container`), the adapter the Lambda calls it with
(:mod:`labelwise.endpoint.client`) and the routing between it and in-process embedding
(:mod:`labelwise.endpoint.routing`). Wire format: :mod:`labelwise.endpoint.protocol`, docs/endpoint.md.
The backend a request used is tracked by :mod:`labelwise.request_context` (re-exported here).
"""

from labelwise.endpoint.client import EndpointEmbedder, HttpTransport, SageMakerTransport, Transport
from labelwise.endpoint.routing import RoutingEmbedder, endpoint_transport, image_router, routing_factory
from labelwise.request_context import BACKEND_HEADER, Backend, current_backend, track_backend

__all__ = [
    "BACKEND_HEADER",
    "Backend",
    "EndpointEmbedder",
    "HttpTransport",
    "RoutingEmbedder",
    "SageMakerTransport",
    "Transport",
    "current_backend",
    "endpoint_transport",
    "image_router",
    "routing_factory",
    "track_backend",
]
