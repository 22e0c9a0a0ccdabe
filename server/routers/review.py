"""Blind review routes. HTTP only: the page, and the JSON API it calls (logic in services/review.py).

    GET /review                          the review page: static HTML with inline JS/CSS, public
    GET /v1/review/items?reviewer=NAME   every item (prompt, answer) with NAME's grade, if any
    PUT /v1/review/items/{id}/grade      save NAME's grade of one item (replaces an earlier one)

The page holds no data: it is the same few kilobytes for everyone, and the answers come from the
JSON API, which requires the API key like every /v1 route when keys are configured (the page
asks for it and keeps it in the tab's sessionStorage). So an unauthenticated visitor sees an
empty form and a 401 message, never an answer.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from ..dependencies import require_api_key, review_service
from ..protocol.openai import ErrorResponse
from ..protocol.review import Grade, GradeRequest, ReviewItemList
from ..review.store import MAX_REVIEWER_CHARS

PAGE = (Path(__file__).parents[1] / "review" / "page.html").read_text(encoding="utf-8")


def _csp(html: str) -> str:
    """Allow exactly the page's own inline script and style (by hash), and fetches to this origin."""
    def hashes(tag: str) -> str:
        bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in bodies)

    return (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
            "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")


PAGE_HEADERS = {"Content-Security-Policy": _csp(PAGE), "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}

page = APIRouter(tags=["review"])
ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 404, 500)}
api = APIRouter(prefix="/v1/review", tags=["review"], dependencies=[Depends(require_api_key)], responses=ERRORS)


@page.get("/review", response_class=HTMLResponse, summary="The blind review page (no data; it calls /v1/review)")
async def review_page() -> HTMLResponse:
    return HTMLResponse(PAGE, headers=PAGE_HEADERS)


@api.get("/items", response_model=ReviewItemList, summary="Review items with this reviewer's grades")
async def list_items(reviewer: str = Query(min_length=1, max_length=MAX_REVIEWER_CHARS,
                                           description="The reviewer's name."),
                     service=Depends(review_service)) -> ReviewItemList:
    return await service.items(reviewer)


@api.put("/items/{item_id}/grade", response_model=Grade, summary="Save (or replace) a reviewer's grade of an item")
async def put_grade(item_id: str, body: GradeRequest, service=Depends(review_service)) -> Grade:
    return await service.grade(item_id, body)


router = APIRouter()
router.include_router(page)
router.include_router(api)
