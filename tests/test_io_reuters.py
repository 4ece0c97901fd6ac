"""Reuters-21578 reader: a hand-written SGML folder for each rule and error, and ModApte sizes."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_dataset_dir
from labelwise.errors import DataFormatError
from labelwise.io import detect_format, read
from labelwise.io.reuters import read_reuters


def doc(
    newid,
    topics,
    split="TRAIN",
    has="YES",
    date="26-FEB-1987 15:01:01.79",
    title="T",
    body="B",
    text_type="",
):
    d = "".join(f"<D>{t}</D>" for t in topics)
    if text_type == ' TYPE="UNPROC"':
        text = f"&#2; {body}&#3;"
    elif text_type == ' TYPE="BRIEF"':
        text = f"&#2;<TITLE>{title}</TITLE>&#3;"
    else:
        text = f"&#2;\n<TITLE>{title}</TITLE>\n<DATELINE> X, Feb 26 - </DATELINE><BODY>{body}\n Reuter\n&#3;</BODY>"
    return (
        f'<REUTERS TOPICS="{has}" LEWISSPLIT="{split}" CGISPLIT="TRAINING-SET" OLDID="1" NEWID="{newid}">\n'
        f"<DATE>{date}</DATE>\n<TOPICS>{d}</TOPICS>\n<PLACES><D>usa</D></PLACES>\n<PEOPLE></PEOPLE>\n"
        f"<ORGS></ORGS>\n<EXCHANGES></EXCHANGES>\n<COMPANIES></COMPANIES>\n<UNKNOWN> &#5;&#5;C T\n</UNKNOWN>\n"
        f"<TEXT{text_type}>{text}</TEXT>\n</REUTERS>\n"
    )


HEAD = '<!DOCTYPE lewis SYSTEM "lewis.dtd">\n'


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "reut2-000.sgm").write_bytes(
        (
            HEAD
            + "".join(
                [
                    doc(
                        1,
                        ["cocoa", "grain"],
                        title="COCOA &lt;ABC&gt; &amp; CO",
                        body="Caf\xe9 price rose.",
                    ),
                    doc(2, ["grain"], date=" 1-MAR-1987 01:00:00.00"),
                    doc(3, [], has="NO"),
                    doc(
                        4,
                        ["cocoa"],
                        split="TEST",
                        date="02-MAR-1987 10:00:00.00",
                        text_type=' TYPE="BRIEF"',
                        title="BRIEF ONE",
                    ),
                    doc(5, ["rare"], split="TRAIN"),
                ]
            )
        ).encode("latin-1")
    )
    (tmp_path / "reut2-001.sgm").write_bytes(
        (
            HEAD
            + "".join(
                [
                    doc(
                        6,
                        ["grain", "rare2"],
                        split="TEST",
                        text_type=' TYPE="UNPROC"',
                        body="raw text",
                    ),
                    doc(7, ["cocoa"], split="NOT-USED"),
                    doc(8, ["grain"], split="TEST", has="BYPASS"),
                ]
            )
        ).encode("latin-1")
    )
    return tmp_path


def test_modapte_r90_on_a_tiny_folder(folder):
    train = read_reuters(folder)
    # r90 = topics with >=1 ModApte train and >=1 test doc: cocoa, grain (rare/rare2 are one-sided)
    assert list(train.labels) == ["cocoa", "grain"]
    assert train.ids.tolist() == [1, 2] and train.ids.dtype == np.int64
    assert train.groups.tolist() == ["1987-02-26", "1987-03-01"]
    assert train.X[0] == "COCOA <ABC> & CO\nCafé price rose.\n Reuter"
    assert [train.label_names(i) for i in range(2)] == [["cocoa", "grain"], ["grain"]]
    test = read_reuters(folder, split="modapte-test")
    assert test.ids.tolist() == [4, 6] and list(test.labels) == ["cocoa", "grain"]
    assert test.X == ["BRIEF ONE", "raw text"]  # BRIEF: title only; UNPROC: the whole text
    assert test.label_names(1) == ["grain"]  # rare2 is not an R90 topic
    assert train.meta["split"] == "modapte-train"


def test_topics_all_and_r10_and_text_modes(folder):
    d = read_reuters(folder, topics="all")
    assert list(d.labels) == [
        "cocoa",
        "grain",
        "rare",
        "rare2",
    ]  # every topic in the files, by name
    assert d.ids.tolist() == [1, 2, 5]  # TOPICS="NO" and NOT-USED docs are outside ModApte train
    every = read_reuters(folder, split="all", topics="all")
    assert every.ids.tolist() == [1, 2, 3, 4, 5, 6, 7, 8] and every.label_names(2) == []
    r10 = read_reuters(folder, topics="r10")  # fewer than 10 train topics: all of them
    assert list(r10.labels) == ["cocoa", "grain", "rare"]
    assert read_reuters(folder, text="title").X[0] == "COCOA <ABC> & CO"
    assert read_reuters(folder, text="body").X[0] == "Café price rose.\n Reuter"
    for bad in ({"split": "train"}, {"topics": "r5"}, {"text": "all"}):
        with pytest.raises(DataFormatError, match="must be one of"):
            read_reuters(folder, **bad)


def test_single_file_and_detection(folder):
    d = read_reuters(folder / "reut2-000.sgm", topics="all")
    assert d.ids.tolist() == [1, 2, 5]
    assert detect_format(folder)[0] == "reuters"
    assert read(folder).ids.tolist() == [1, 2]
    (folder / "empty").mkdir()
    with pytest.raises(DataFormatError, match="no reut2-"):
        read_reuters(folder / "empty")
    with pytest.raises(DataFormatError, match="cannot read"):
        read_reuters(folder / "absent.sgm")


def test_repeated_topic_kept_once_with_warning(tmp_path):
    (tmp_path / "reut2-000.sgm").write_text(
        HEAD + doc(9, ["trade", "trade"]) + doc(10, ["trade"], split="TEST"), encoding="latin-1"
    )
    with pytest.warns(UserWarning, match=r"1 document\(s\) list a topic twice \(NEWID 9\)"):
        d = read_reuters(tmp_path)
    assert d.label_names(0) == ["trade"]


@pytest.mark.parametrize(
    ("broken", "line", "message"),
    [
        (lambda s: s.replace("</BODY>", "", 1), 16, "</TEXT> where </BODY> was expected"),
        (lambda s: s.replace("<TITLE>T", "<TITLE T", 1), 13, "'<' that starts no tag"),
        (lambda s: s.rstrip().removesuffix("</REUTERS>"), 18, "<REUTERS> is never closed"),
        (lambda s: s.replace("</REUTERS>", "", 1), 18, "<REUTERS> inside <REUTERS>"),
        (
            lambda s: s.replace("<TOPICS><D>grain</D>", "<TOPICS>grain<D>x</D>", 1),
            20,
            "only <D>..</D>",
        ),
        (lambda s: s.replace("26-FEB-1987", "Feb 26 87", 1), 3, "is not DD-MON-YYYY"),
        (lambda s: s.replace("<DATE>26-FEB-1987 15:01:01.79</DATE>", "", 1), 2, "has no <DATE>"),
        (lambda s: s.replace(' NEWID="1"', "", 1), 2, "without the NEWID attribute"),
        (lambda s: s.replace('NEWID="2"', 'NEWID="x"', 1), 18, "NEWID 'x' is not a number"),
        (lambda s: s.replace("<D>grain</D><D>", "<D></D><D>", 1), 20, "empty topic"),
        (lambda s: s + "<BODY>stray</BODY>\n", 34, "<BODY> outside a <REUTERS> element"),
        (lambda s: s + "text <", 34, "'<' that starts no tag"),
    ],
)
def test_malformed_sgml_names_file_and_line(tmp_path, broken, line, message):
    good = HEAD + doc(1, ["a"]) + doc(2, ["grain", "b"])
    assert read_reuters_text(tmp_path, good).n_samples == 0  # the good text parses
    with pytest.raises(DataFormatError, match=message) as e:
        read_reuters_text(tmp_path, broken(good))
    assert e.value.path.endswith("reut2-000.sgm") and e.value.line == line


def read_reuters_text(folder, text):
    (folder / "reut2-000.sgm").write_text(text, encoding="latin-1")
    return read_reuters(folder, split="modapte-test")


@pytest.mark.datasets
def test_modapte_sizes():
    root = shared_dataset_dir("reuters21578") / "original"
    with pytest.warns(UserWarning, match="NEWID 5467"):
        train = read_reuters(root)
    with pytest.warns(UserWarning, match="NEWID 19918"):
        test = read_reuters(root, split="modapte-test")
    assert (train.n_samples, test.n_samples, train.n_labels) == (7770, 3019, 90)
    assert list(train.labels) == list(test.labels) == sorted(train.labels)
    assert int(np.count_nonzero(np.diff(train.Y.indptr) == 0)) == 0
    assert train.ids[0] == 1 and train.groups[0] == "1987-02-26"
    assert train.X[0].startswith("BAHIA COCOA REVIEW\nShowers continued throughout the week in\n")
    assert not any("\x03" in t or "&lt;" in t for t in train.X)
    with pytest.warns(UserWarning, match="NEWID 5467"):
        full = read_reuters(root, topics="all")
    # ModApte train: 9,603 docs, 7,775 with a topic, 1,223 multi-label (README figures)
    per_row = np.diff(full.Y.indptr)
    assert (full.n_samples, int(np.count_nonzero(per_row)), int(np.count_nonzero(per_row > 1))) == (
        9603,
        7775,
        1223,
    )
    with pytest.warns(UserWarning, match="NEWID 19918"):
        assert read_reuters(root, split="modapte-test", topics="all").n_samples == 3299
    with pytest.warns(UserWarning):
        r10 = read_reuters(root, topics="r10")
    assert list(r10.labels) == sorted(
        ["earn", "acq", "money-fx", "grain", "crude", "trade", "interest", "wheat", "ship", "corn"]
    )
    assert r10.n_samples == 6490
