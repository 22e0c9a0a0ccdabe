"""Blind human review of open-ended answers: the SQLite store behind GET /review and /v1/review."""
