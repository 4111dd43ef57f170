"""GET /metrics in the Prometheus text format."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from service.api.deps import metrics
from service.metrics import Metrics

router = APIRouter(tags=["operations"])
_TEXT = {"type": "string"}


@router.get(
    "/metrics",
    summary="Prometheus metrics: request counts and latency by endpoint, model size and status",
    response_class=Response,
    responses={200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": _TEXT}}}},
)
async def prometheus(collected: Annotated[Metrics, Depends(metrics)]) -> Response:
    return Response(collected.render(), media_type=collected.content_type)
