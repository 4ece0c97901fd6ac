import hashlib

import pytest

from labelwise import DataFormatError
from labelwise.files import read_json_object, sha256_file


def test_sha256_file_matches_hashlib(tmp_path):
    p = tmp_path / "b.bin"
    data = bytes(range(256)) * 9000  # 2.3 MB: three 1 MiB blocks
    p.write_bytes(data)
    assert sha256_file(p) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"a": 1,\n "b": }', "x.json:2: malformed JSON"),
        ("[1, 2]", "x.json:1: expected a JSON object"),
        (b"\xff\xfe{}", "x.json: not UTF-8 text"),
    ],
)
def test_read_json_object_names_the_place(tmp_path, content, message):
    p = tmp_path / "x.json"
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content)
    with pytest.raises(DataFormatError) as e:
        read_json_object(p)
    assert message in str(e.value)
    assert read_json_object(_write(tmp_path / "ok.json", '{"k": [1]}')) == {"k": [1]}
    with pytest.raises(DataFormatError, match="missing"):
        read_json_object(tmp_path / "nope.json")


def _write(p, text):
    p.write_text(text)
    return p
