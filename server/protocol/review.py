"""Schemas of the blind-review API: GET /v1/review/items and PUT /v1/review/items/{id}/grade.

Items carry an opaque id, the prompt and the answer, never the model variant that wrote it.
The reviewer is whoever the page says it is (a name typed in, kept in the browser); grades are
keyed by (item, reviewer), so saving again replaces that reviewer's earlier grade.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..review.store import MAX_REVIEWER_CHARS

Reviewer = Field(min_length=1, max_length=MAX_REVIEWER_CHARS, pattern=r"\S",
                 description="The reviewer's name, as typed on the review page.")


class GradeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reviewer: str = Reviewer
    score: int = Field(ge=1, le=5, description="1 (useless or wrong) to 5 (correct, complete and clear).")
    comment: str = Field("", max_length=4000, description="Why this score; free text.")


class Grade(BaseModel):
    item_id: str
    reviewer: str
    score: int
    comment: str
    updated_at: str = Field(description="When the grade was last saved (UTC, ISO 8601).")


class ReviewItem(BaseModel):
    id: str = Field(description="Opaque blind id; says nothing about the model variant.")
    position: int
    prompt: str
    system: str | None = None
    reference: str | None = Field(None, description="Notes for reviewers: what a good answer contains.")
    answer: str
    grade: Grade | None = Field(None, description="This reviewer's grade, if they saved one.")


class ReviewItemList(BaseModel):
    object: Literal["list"] = "list"
    reviewer: str
    graded: int = Field(description="Items this reviewer has graded.")
    total: int
    data: list[ReviewItem]
