"""The schema grammar (GBNF) run through llama.cpp's own grammar sampler, token by token."""

from __future__ import annotations

import ctypes

import llama_cpp
import numpy as np
import pytest

from server.sql.grammar import sql_grammar
from server.sql.prompt import CANNOT_ANSWER, one_line
from server.sql.sample.ddl import database_schema
from server.sql.sample.pairs import load_pairs

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def accepts(embedded_engine):
    vocab = embedded_engine._vocab
    schema = database_schema("sqlite")

    def check(text: str, grammar: str | None = None) -> bool:
        grammar = grammar or sql_grammar(schema)
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
        assert sampler, "grammar did not parse"
        try:
            one = (llama_cpp.llama_token_data * 1)()
            arr = llama_cpp.llama_token_data_array(data=one, size=1, selected=-1, sorted=False)
            tokens = embedded_engine.tokenize(text, add_special=False, parse_special=False)
            for token in tokens + [llama_cpp.llama_vocab_eos(vocab)]:
                one[0].id, one[0].logit, arr.size = token, 1.0, 1
                llama_cpp.llama_sampler_apply(sampler, ctypes.byref(arr))
                if not np.isfinite(one[0].logit):
                    return False
                if token != llama_cpp.llama_vocab_eos(vocab):
                    llama_cpp.llama_sampler_accept(sampler, token)
            return True
        finally:
            llama_cpp.llama_sampler_free(sampler)

    return check


@pytest.mark.parametrize("sql", [
    "SELECT COUNT(*) FROM customers",
    "SELECT c.company_name, SUM(oi.quantity * oi.unit_price) AS revenue FROM customers c JOIN orders o "
    "ON o.customer_id = c.customer_id JOIN order_items oi ON oi.order_id = o.order_id "
    "WHERE o.order_date >= '2024-01-01' GROUP BY c.company_name HAVING COUNT(*) > 3 ORDER BY revenue DESC LIMIT 5",
    "SELECT product_name FROM products WHERE category_id IN (SELECT category_id FROM categories "
    "WHERE category_name = 'Desk Accessories') UNION SELECT 'x'",
    "SELECT city FROM customers EXCEPT SELECT city FROM suppliers;",
    CANNOT_ANSWER,
])
def test_accepts_real_queries(accepts, sql):
    assert accepts(sql)


@pytest.mark.parametrize("sql", [
    "SELECT nope FROM customers",                 # unknown column
    "SELECT * FROM secrets",                      # unknown table
    "SELECT orders.company_name FROM orders",     # a column of another table
    "SELECT made_up_alias.city FROM customers",   # a long name posing as an alias
    "DELETE FROM orders",                         # not a query
    "SELECT COUNT(*) FROM customers; DROP TABLE orders",
    "The answer is 42.",
])
def test_refuses_what_is_not_in_the_schema(accepts, sql):
    assert not accepts(sql)


def test_most_gold_queries_fit_the_grammar(accepts):
    # Gold SQL as written by people (CTEs and long aliases included) mostly fits; what does not
    # is the price of constraining, and bench/sql.py measures it on accuracy.
    pairs = load_pairs("train")[::10]
    fitting = sum(accepts(one_line(p["sql"])) for p in pairs)
    print(f"{fitting}/{len(pairs)} gold queries fit the grammar")
    assert fitting / len(pairs) >= 0.9, f"only {fitting}/{len(pairs)} gold queries fit"
