"""OpenAI-compatible routes. HTTP only: parse, call the service, choose JSON or SSE."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from ..dependencies import chat_service, completion_service, embedding_service, model_pool, require_api_key
from ..protocol.openai import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    EmbeddingList,
    EmbeddingRequest,
    ErrorResponse,
    ModelList,
)

ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 404, 429, 500, 503)}
router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(require_api_key)], responses=ERRORS)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get("/models", response_model=ModelList, summary="List the configured models")
async def list_models(pool=Depends(model_pool)) -> ModelList:
    return pool.cards()


@router.post("/chat/completions", response_model=ChatCompletion, summary="Chat completion (JSON or SSE)")
async def chat_completions(body: ChatCompletionRequest, request: Request, service=Depends(chat_service)):
    if body.stream:
        return StreamingResponse(await service.stream(body), media_type="text/event-stream", headers=SSE_HEADERS)
    return await service.complete(body, request.is_disconnected)


@router.post("/completions", response_model=Completion, summary="Text completion (JSON or SSE)")
async def completions(body: CompletionRequest, request: Request, service=Depends(completion_service)):
    if body.stream:
        return StreamingResponse(await service.stream(body), media_type="text/event-stream", headers=SSE_HEADERS)
    return await service.complete(body, request.is_disconnected)


@router.post("/embeddings", response_model=EmbeddingList, summary="Embeddings")
async def embeddings(body: EmbeddingRequest, service=Depends(embedding_service)) -> EmbeddingList:
    return await service.embed(body)
