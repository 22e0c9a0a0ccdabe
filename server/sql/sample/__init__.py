"""Hearth's embedded sample database (a B2B office-supplies distributor) and its Text-to-SQL pairs.

Runtime: generate.py builds the rows (ensure_sample_sqlite() writes the SQLite file the server
uses; orders.py and words.py feed it, ddl.py is its schema), load.py puts them on PostgreSQL /
MariaDB, paths.py and location.py say where things are, and pairs/*.jsonl are the committed
pairs. build/ holds the tools that wrote those pairs. CLI: `python -m server.sql.sample
build|load|pairs` (= `hearth sample ...`).
"""
