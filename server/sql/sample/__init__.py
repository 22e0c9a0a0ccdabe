"""Hearth's embedded sample database (a B2B office-supplies distributor) and its Text-to-SQL pairs.

generate.py builds the rows, load.py puts them on PostgreSQL / MariaDB, questions.py turns
templates into question/SQL pairs (pairs/train.jsonl, pairs/test.jsonl). CLI: `python -m
server.sql.sample build|pairs`.
"""
