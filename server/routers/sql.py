"""Text-to-SQL routes. HTTP only: parse, call SqlService, return its answer.

A rejected statement is a 200 answer (`valid: false` / `status: "rejected"`) naming the failed
rule; see server/protocol/sql.py. Errors use OpenAI's shape like every other route.
"""

from fastapi import APIRouter, Depends, Request

from ..dependencies import audit_log, model_pool, require_api_key, sql_service
from ..protocol.openai import ErrorResponse
from ..protocol.sql import DatabaseInfo, DatabaseList, SqlRequest, SqlResponse, ValidateRequest, ValidateResponse

ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 404, 429, 500, 503, 504)}
router = APIRouter(prefix="/v1/sql", tags=["sql"], dependencies=[Depends(require_api_key)], responses=ERRORS)

# The same capability as an OpenAI function tool: put this in a chat request's `tools`, and
# when the model calls it, POST the call's arguments to /v1/sql unchanged.
SQL_TOOL = {
    "type": "function",
    "function": {
        "name": "query_database",
        "description": "Answer a question from a company database: Hearth writes read-only SQL, "
                       "validates it against the live schema, runs it and returns the rows.",
        "parameters": {
            "type": "object",
            "properties": {
                "question": {"type": "string", "description": "The question, in natural language."},
                "database": {"type": "string", "description": "Database name from GET /v1/sql/databases."},
            },
            "required": ["question"],
            "additionalProperties": False,
        },
    },
}


@router.post("", response_model=SqlResponse, summary="Answer a question with validated, read-only SQL")
async def generate_sql(body: SqlRequest, request: Request, service=Depends(sql_service),
                       pool=Depends(model_pool), audit=Depends(audit_log)) -> SqlResponse:
    async with audit.sql_request(request, "/v1/sql", body) as entry:  # one audit line (server/audit.py)
        entry.answer = await service.generate(body, pool, request.is_disconnected)
    return entry.answer


@router.post("/validate", response_model=ValidateResponse,
             summary="Check caller-written SQL with the same rules (200 with valid=false when rejected)")
async def validate_sql(body: ValidateRequest, request: Request, service=Depends(sql_service),
                       audit=Depends(audit_log)) -> ValidateResponse:
    async with audit.sql_request(request, "/v1/sql/validate", body) as entry:  # when it executes
        entry.answer = await service.validate(body)
    return entry.answer


@router.get("/databases", response_model=DatabaseList, summary="Configured databases and their schemas")
async def list_databases(service=Depends(sql_service)) -> DatabaseList:
    return await service.databases()


@router.post("/databases/{name}/refresh", response_model=DatabaseInfo, summary="Introspect a database again")
async def refresh_database(name: str, service=Depends(sql_service)) -> DatabaseInfo:
    return await service.refresh(name)


@router.get("/tool", summary="The Text-to-SQL capability as an OpenAI function tool definition")
async def sql_tool() -> dict:
    return SQL_TOOL
