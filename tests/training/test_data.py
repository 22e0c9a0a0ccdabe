"""Loading and cleaning: formats, normalisation, exact and near duplicates, chunking."""

from __future__ import annotations

import json

from training.data import chunk_text, clean, dedup_near, load_chat, load_corpus, normalize


def test_load_corpus_reads_every_format(tmp_path):
    (tmp_path / "a.txt").write_text("Plain text file.")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("# Title\n\nMarkdown body.")
    (tmp_path / "c.html").write_text("<html><head><style>x{}</style></head><body><p>Hello <b>world</b></p>"
                                     "<script>alert(1)</script><p>Second &amp; last</p></body></html>")
    (tmp_path / "d.jsonl").write_text(json.dumps({"text": "from jsonl"}) + "\n")
    (tmp_path / "ignored.bin").write_bytes(b"\0\1")
    docs = load_corpus(tmp_path)
    by_id = {d["id"]: d["text"] for d in docs}
    assert set(by_id) == {"a.txt", "sub/b.md", "c.html", "d.jsonl:0"}
    html = normalize(by_id["c.html"])
    assert "Hello world" in html and "Second & last" in html and "alert" not in html and "x{}" not in html


def test_load_chat_accepts_messages_and_alpaca(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})
                    + "\n" + json.dumps({"instruction": "Add", "input": "1+1", "output": "2"}) + "\n")
    rows = load_chat(path)
    assert rows[1]["messages"] == [{"role": "user", "content": "Add\n\n1+1"}, {"role": "assistant", "content": "2"}]


def test_normalize():
    assert normalize("a\u00a0 b\r\n\r\n\r\n\r\nc\x07 ｆｕｌｌ") == "a b\n\nc full"


def test_exact_and_near_duplicates_removed_length_filtered():
    base = " ".join(f"Line {i}: the quarterly report shows revenue grew in region {i}, led by sales of paper."
                    for i in range(12)) + " Toner sales were flat."
    samples = [
        {"text": base, "source": "d", "id": "1"},
        {"text": base, "source": "d", "id": "2"},                              # exact copy
        {"text": base.replace("Toner", "Ink"), "source": "d", "id": "3"},      # near copy
        {"text": "A completely different document about warehouse safety rules and forklifts.", "source": "d", "id": "4"},
        {"text": "tiny", "source": "d", "id": "5"},
    ]
    kept, stats = clean(samples, min_chars=16)
    assert [s["id"] for s in kept] == ["1", "4"]
    assert stats["exact_duplicates"] == 1 and stats["near_duplicates"] == 1 and stats["too_short"] == 1


def test_near_dup_keeps_distinct_and_is_deterministic():
    docs = [{"text": f"Document number {i} talks about topic {i * 7} with words {' '.join(str(i * j) for j in range(30))}",
             "source": "d", "id": str(i)} for i in range(50)]
    a, removed = dedup_near(docs)
    b, _ = dedup_near(docs)
    assert removed == 0 and a == b


def test_chunking_respects_paragraphs_and_limit():
    text = "\n\n".join(f"Paragraph {i} " + "word " * 40 for i in range(10))
    chunks = chunk_text(text, 500)
    assert all(len(c) <= 500 for c in chunks) and len(chunks) >= 5
    assert all(c.startswith("Paragraph") for c in chunks)
    assert " ".join(" ".join(chunks).split()) == " ".join(text.split())


def test_a_served_prompt_is_never_dropped_for_its_length():
    schema = "CREATE TABLE FLIGHT (FLIGHT_ID INT, FROM_AIRPORT TEXT, TO_AIRPORT TEXT);\n" * 400  # ~30,000 chars
    msgs = [{"role": "user", "content": schema + "Question: which flights leave Boston?"},
            {"role": "assistant", "content": "SELECT FLIGHT_ID FROM FLIGHT WHERE FROM_AIRPORT = 'BOS'"}]
    kept, stats = clean([{"messages": msgs, "source": "sql", "id": "1", "verbatim": True},
                         {"messages": msgs, "source": "chat", "id": "2"}], max_chars=20000)
    assert [s["id"] for s in kept] == ["1"] and stats["too_long"] == 1
