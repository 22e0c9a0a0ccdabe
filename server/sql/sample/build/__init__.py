"""Build tools of the sample's Text-to-SQL pairs (not needed to serve): shapes_*.py hold
question/SQL templates (shapes.py gathers them) that questions.py fills from the generated data,
and pairs.py splits them into ../pairs/train.jsonl and test.jsonl, which are committed.
`python -m server.sql.sample pairs [--check]` (= `hearth sample pairs`) runs them."""
