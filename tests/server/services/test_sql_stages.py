"""The stages of /v1/sql (server/services/sql_stages.py): which templates may answer, pure."""

from __future__ import annotations

from server.services.sql_stages import STAGES, answer_with_template, template_candidates, write_with_model
from server.sql.baseline import BaselineAnswer

COUNT = "SELECT COUNT(*) FROM customers WHERE country = 'France'"
LIST = "SELECT name FROM customers WHERE country = 'France'"


def test_the_templates_answer_before_the_model_writes():
    assert STAGES == (answer_with_template, write_with_model)


def test_only_complete_templates_are_candidates_in_retrieval_order():
    templates = [BaselineAnswer(COUNT, unfilled=1),  # a slot kept the neighbour's value
                 BaselineAnswer(LIST), BaselineAnswer(COUNT, unused=1)]  # leaves out a value the question names
    got = template_candidates(templates, "Which customers are in France?", "sqlite")
    assert [(c.sql, c.rank) for c in got] == [(LIST, 1)]


def test_cues_keep_the_templates_that_agree_with_the_question():
    templates = [BaselineAnswer(LIST), BaselineAnswer(COUNT)]
    got = template_candidates(templates, "How many customers are in France?", "sqlite")
    assert [c.sql for c in got] == [COUNT]  # "how many" wants a count, though the list was nearer


def test_agreeing_templates_stay_in_retrieval_order():
    templates = [BaselineAnswer(LIST), BaselineAnswer(COUNT), BaselineAnswer(LIST.replace("name", "city"))]
    got = template_candidates(templates, "Which customers are in France?", "sqlite")
    assert [c.rank for c in got] == [0, 2]  # the nearest first: no option reorders them
