"""server/sql/lexicon.py: the values a database's own pairs imply for words its questions use."""

from __future__ import annotations

import json

import sqlglot

from server.sql.grounding import Grounding, compared_literals
from server.sql.lexicon import PairLexicon
from server.sql.prompt import Example

# Upper-case names, as classic text-to-SQL sets write them: "major" always means a population
# above 150000, "united" the code 'UA'; the city names are spelled by the questions.
PAIRS = [
    Example("what are the major cities in texas", "SELECT CITY_NAME FROM CITY WHERE POPULATION > 150000 AND STATE_NAME = 'texas'"),
    Example("how many major cities are in ohio", "SELECT COUNT(*) FROM CITY WHERE POPULATION > 150000 AND STATE_NAME = 'ohio'"),
    Example("major cities of utah", "SELECT CITY_NAME FROM CITY WHERE POPULATION > 150000.0 AND STATE_NAME = 'utah'"),
    Example("what cities are in texas", "SELECT CITY_NAME FROM CITY WHERE STATE_NAME = 'texas'"),
    Example("how many cities does ohio have", "SELECT COUNT(*) FROM CITY WHERE STATE_NAME = 'ohio'"),
    Example("which cities in utah are the largest", "SELECT CITY_NAME FROM CITY WHERE STATE_NAME = 'utah' "
            "ORDER BY POPULATION DESC LIMIT 1"),
    Example("list united flights from boston", "SELECT FLIGHT_ID FROM FLIGHT WHERE AIRLINE_CODE = 'UA' AND FROM_CITY = 'boston'"),
    Example("united flights to denver", "SELECT FLIGHT_ID FROM FLIGHT WHERE AIRLINE_CODE = 'UA' AND TO_CITY = 'denver'"),
    Example("flights from boston to denver", "SELECT FLIGHT_ID FROM FLIGHT WHERE FROM_CITY = 'boston' AND TO_CITY = 'denver'"),
    Example("flights from denver to boston", "SELECT FLIGHT_ID FROM FLIGHT WHERE FROM_CITY = 'denver' AND TO_CITY = 'boston'"),
    Example("delta flights to denver in the evening", "SELECT FLIGHT_ID FROM FLIGHT WHERE AIRLINE_CODE = 'DL' "
            "AND TO_CITY = 'denver' AND DEPARTURE_TIME > 1800"),
]


def _refused(lexicon: PairLexicon, question: str, sql: str) -> list[str]:
    g = Grounding.of(question, None, lexicon.implied(question))
    return [lit.sql() for lit, _ in compared_literals(sqlglot.parse_one(sql)) if not g.supports(lit)]


def test_a_value_the_pairs_always_use_for_a_word_is_implied_by_that_word() -> None:
    lexicon = PairLexicon.learn(PAIRS)
    sql = "SELECT CITY_NAME FROM CITY WHERE POPULATION > 150000 AND STATE_NAME = 'iowa'"
    assert _refused(PairLexicon(), "major cities in iowa", sql) == ["150000"]  # the plain rule refuses it
    assert _refused(lexicon, "major cities in iowa", sql) == []
    assert _refused(lexicon, "which towns are in iowa", sql) == ["150000"]  # no word of the question predicts it
    assert lexicon.explain("n:150000.0")[0] == ("major", 3, 3)
    united = "SELECT FLIGHT_ID FROM FLIGHT WHERE AIRLINE_CODE = 'UA' AND TO_CITY = 'dallas'"
    assert _refused(lexicon, "show me united flights to dallas", united) == []
    assert _refused(lexicon, "show me flights to dallas", united) == ["'UA'"]


def test_one_pair_is_an_anecdote_not_knowledge() -> None:
    # 'DL' and 1800 come from a single pair: its words ("delta", "evening") predict nothing yet.
    lexicon = PairLexicon.learn(PAIRS)
    sql = "SELECT FLIGHT_ID FROM FLIGHT WHERE AIRLINE_CODE = 'DL' AND DEPARTURE_TIME > 1800"
    assert _refused(lexicon, "delta flights in the evening", sql) == ["'DL'", "1800"]
    assert "s:dl" not in lexicon.implied("delta flights in the evening")


def test_a_word_most_of_whose_pairs_do_without_the_value_does_not_imply_it() -> None:
    # "cities": 3 of its 6 pairs use 150000 (0.5, enough); one more plain one and it is not.
    lexicon = PairLexicon.learn(PAIRS)
    assert "n:150000.0" in lexicon.implied("cities in iowa")
    lexicon = PairLexicon.learn(PAIRS + [Example("cities of iowa", "SELECT CITY_NAME FROM CITY WHERE STATE_NAME = 'iowa'")])
    assert "n:150000.0" not in lexicon.implied("cities in iowa")
    assert "n:150000.0" in lexicon.implied("major cities in iowa")


def test_pairs_that_name_their_values_teach_nothing(data_dir) -> None:
    # The sample's 558 training pairs name every value they use: the lexicon is empty, and the
    # copied value of the day-one failure ('Netherlands' for "customers in each segment") stays refused.
    from server.settings import ServerSettings
    from server.sql.mentions import ValueIndex
    from server.sql.sample.paths import PAIRS_DIR, ensure_sample_database, sample_sqlite_path

    ensure_sample_database(ServerSettings().databases)
    values = ValueIndex.from_sqlite(sample_sqlite_path())
    pairs = [Example(r["question"], r["sql"]) for r in map(json.loads, (PAIRS_DIR / "train.jsonl").open())]
    lexicon = PairLexicon.learn(pairs, values)
    assert len(pairs) == 558 and len(lexicon) == 0
    question = "How many customers are in each segment?"
    g = Grounding.of(question, values, lexicon.implied(question))
    sql = "SELECT segment, COUNT(*) FROM customers WHERE country = 'Netherlands' GROUP BY segment"
    assert [lit.sql() for lit, _ in compared_literals(sqlglot.parse_one(sql)) if not g.supports(lit)] == ["'Netherlands'"]


def test_unparsable_pairs_are_skipped_and_their_words_still_counted() -> None:
    lexicon = PairLexicon.learn([Example("major oops", "SELEC nonsense ((("), *PAIRS[:3]])
    assert lexicon.word_pairs["major"] == 4
    assert ("major", 3, 4) in lexicon.explain("n:150000.0")
