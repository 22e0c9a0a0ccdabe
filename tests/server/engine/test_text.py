"""UTF-8 reassembly and stop strings across token boundaries."""

from server.engine.text import IncrementalText


def feed_all(pieces, stop=()):
    t = IncrementalText(stop)
    out = "".join(t.feed(p) for p in pieces)
    return out + t.flush(), t.stopped


def test_multibyte_character_split_across_tokens():
    euro = "€".encode()
    assert feed_all([b"price: ", euro[:1], euro[1:], b"5"]) == ("price: €5", False)


def test_stop_string_spanning_tokens_is_cut_and_not_returned():
    assert feed_all([b"one, tw", b"o, thr", b"ee"], stop=["two"]) == ("one, ", True)


def test_held_back_prefix_is_released_when_it_diverges():
    t = IncrementalText(["###"])
    assert t.feed(b"a #") == "a "
    assert t.feed(b"# b") == "## b"
    assert not t.stopped


def test_earliest_of_several_stops_wins():
    assert feed_all([b"x END y STOP"], stop=["STOP", "END"]) == ("x ", True)


def test_text_after_stop_is_dropped():
    t = IncrementalText(["."])
    assert t.feed(b"Hi. More") == "Hi"
    assert t.feed(b" text") == ""
    assert t.flush() == ""
