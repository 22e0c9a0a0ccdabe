"""Hearth's embedded sample database (a B2B office-supplies distributor) and its Text-to-SQL pairs.

generate.py builds the rows (ensure_sample_sqlite() writes the SQLite file the server uses),
load.py puts them on PostgreSQL / MariaDB, shapes_*.py hold question/SQL templates (shapes.py
gathers them) that questions.py fills from the data, and pairs.py splits them into
pairs/train.jsonl and pairs/test.jsonl. CLI: `python -m server.sql.sample build|load|pairs`
(= `hearth sample ...`).
"""
