"""The admin endpoints (``/admin/*``): each needs ``Authorization: Bearer <MICROEXP_ADMIN_TOKEN>``, and with no token
configured they are off (403)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from service.access import unauthorized
from service.api.deps import detectors, registry
from service.detect import Detectors
from service.errors import ApiError, ErrorCode, responses
from service.registry import ModelRegistry
from service.schemas import ReloadResponse, refused_versions

_bearer = HTTPBearer(auto_error=False, description="the admin token, MICROEXP_ADMIN_TOKEN")


async def admin_only(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
) -> None:
    token = request.app.state.admin_token
    if token is None:
        raise ApiError(
            403,
            ErrorCode.FORBIDDEN,
            "the admin endpoints are off: set MICROEXP_ADMIN_TOKEN (or MICROEXP_ADMIN_TOKEN_FILE) to turn them on",
        )
    if credentials is None:
        raise unauthorized("the admin endpoints need Authorization: Bearer <admin token>")
    if token.match(credentials.credentials) is None:
        raise unauthorized("the admin token is not valid")


router = APIRouter(prefix="/admin", tags=["operations"], dependencies=[Depends(admin_only)])


@router.post(
    "/reload",
    summary="Reload the model store now (it is also polled)",
    response_model=ReloadResponse,
    responses=responses(401, 403, 503),
)
async def reload(
    models: Annotated[ModelRegistry, Depends(registry)], available: Annotated[Detectors, Depends(detectors)]
) -> ReloadResponse:
    changed = await run_in_threadpool(models.reload)
    changed = await run_in_threadpool(available.refresh) or changed
    catalog = models.catalog
    return ReloadResponse(
        changed=changed,
        served=dict(catalog.served),
        defaults=dict(catalog.defaults),
        refused=refused_versions(catalog.refused),
    )
