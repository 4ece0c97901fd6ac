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


def test_check_listed_file(tmp_path):
    from labelwise.files import check_listed_file, sha256_file

    f = tmp_path / "w.npy"
    f.write_bytes(b"weights")
    digest = sha256_file(f)
    check_listed_file(f, digest, listed_in="manifest.json")
    with pytest.raises(DataFormatError, match=r"w\.npy: sha256 mismatch: manifest.json says 0+"):
        check_listed_file(f, "0" * 64, listed_in="manifest.json")
    check_listed_file(f, "0" * 64, listed_in="manifest.json", verify=False)  # not read
    with pytest.raises(DataFormatError, match="file listed in pipeline.json is missing"):
        check_listed_file(tmp_path / "gone.npy", digest, listed_in="pipeline.json")
