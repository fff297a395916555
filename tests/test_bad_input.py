"""Bad input in every format: a defined outcome for each case, never a traceback.

Each format gets a dump holding one of each bad case that applies to it (invalid UTF-8, a
BOM, CRLF line ends, NUL bytes, a binary file, an empty file, a truncated or corrupt
compressed file, a JSONL line that is not JSON or has no text, a ragged CSV row, a huge CSV
field, a record over --max-record-bytes, an empty article). With `--on-error skip` the run
succeeds, the rejects record holds exactly the bad records with their reasons, and the
report's counts add up; with `--on-error fail` it stops with exit code 1 and one line naming
the first bad record. The dumps are generated here from invented text.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import zstandard

from tests.conftest import read_jsonl, run

THRESHER = str(Path(sys.executable).with_name("thresher"))
MAX = 4000  # --max-record-bytes for every run here; a generated article is ~1.4 kB

_SYLLABLES = "ba ker mo lin ta ven dor sil ra pen hu gat lo mir ne fos"
SYLLABLES = _SYLLABLES.split()
DAYS = ["Monday", "Tuesday", "Friday", "Sunday"]


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))


def article(seed: int, paragraphs: int = 3) -> str:
    """An invented news article: distinct per seed (its content words are made up at random),
    plain enough that cleaning keeps it whole."""
    rng = random.Random(seed)
    return "\n".join(
        " ".join(
            f"The {_word(rng)} board in {_word(rng).title()} said on {rng.choice(DAYS)} that the "
            f"{_word(rng)} and the {_word(rng)} would be {_word(rng)}ed before the {_word(rng)} season, "
            f"after {rng.randint(10, 900)} residents asked about the {_word(rng)} {_word(rng)}."
            for _ in range(3)
        )
        for _ in range(paragraphs)
    )


def big_article(seed: int) -> str:
    text = article(seed, paragraphs=12)
    assert len(text.encode()) > MAX
    return text


def with_bad_byte(text: str) -> bytes:
    """The article as UTF-8 with one Latin-1 byte (invalid UTF-8) in its first sentence."""
    first, rest = text.split(" ", 1)
    return first.encode() + b" caf\xe9 " + rest.encode()


def with_nul(text: str) -> bytes:
    first, rest = text.split(" ", 1)
    return first.encode() + b"\x00 " + rest.encode()


def photo() -> bytes:
    """A 'binary file given by mistake': control bytes everywhere, like an image."""
    return b"\x89PNG\r\n\x1a\n" + random.Random(9).randbytes(6000)


def truncated_gzip(data: bytes) -> bytes:
    """Every byte of data is in there, but the stream's end marker (CRC, size) is cut off."""
    return gzip.compress(data)[:-8]


def truncated_zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)[:-6]


@dataclass
class Case:
    """One format's bad dump: the INPUT arguments and what thresher must make of them."""

    inputs: list[Path]
    rejects: list[tuple[str | None, str, int, str]]  # (id, file, record, reason), in order
    kept: list[str]  # ids in the corpus, in order
    first_bad: str  # the start of the --on-error fail message
    args: list[str] = field(default_factory=list)
    encoding_errors: dict[str, int] = field(default_factory=dict)  # id -> meta.encoding_errors


def text_case(tmp: Path, compressed: bool = False) -> Case:
    arts = {i: article(i) for i in range(1, 8)}
    parts = [
        b"\xef\xbb\xbf===== good-1\n" + arts[1].encode() + b"\n",
        b"===== latin-2\n" + with_bad_byte(arts[2]) + b"\n",
        b"===== crlf-3\r\n" + arts[3].replace("\n", "\r\n").encode() + b"\r\n",
        b"===== nul-4\n" + with_nul(arts[4]) + b"\n",
        b"===== empty-5\n\n",
        b"===== big-6\n" + big_article(6).encode() + b"\n",
        b"===== after-7\n" + arts[7].encode() + b"\n",
    ]
    data = b"".join(parts)
    empty_offset = len(b"".join(parts[:4]))
    if compressed:
        dump = tmp / "dump.txt.gz"
        dump.write_bytes(gzip.compress(data))
    else:
        dump = tmp / "dump.txt"
        dump.write_bytes(data)
    empty = tmp / "empty.txt"
    empty.write_bytes(b"")
    binary = tmp / "photo.txt"
    binary.write_bytes(photo())
    inputs = [dump, empty, binary]
    rejects = [
        ("empty-5", str(dump), 5, "empty_article"),
        ("big-6", str(dump), 6, "too_large"),
        (None, str(empty), 0, "empty_file"),
        (None, str(binary), 1, "binary_file"),
    ]
    kept = ["good-1", "latin-2", "crlf-3", "nul-4", "after-7"]
    if compressed:
        cut_data = ("===== cut-8\n" + article(8) + "\n===== cut-9\n" + article(9) + "\n").encode()
        cut_gz = tmp / "cut.txt.gz"
        cut_gz.write_bytes(truncated_gzip(cut_data))
        cut_zst = tmp / "cut.txt.zst"
        cut_zst.write_bytes(truncated_zstd(cut_data.replace(b"cut-", b"zcut-")))
        corrupt = tmp / "corrupt.txt.gz"
        good = gzip.compress(cut_data)
        corrupt.write_bytes(good[:12] + b"\xff" * 40 + good[52:])
        inputs += [cut_gz, cut_zst, corrupt]
        rejects += [
            ("cut-9", str(cut_gz), 2, "truncated_input"),
            (None, str(cut_zst), 1, "truncated_input"),  # zstd gives nothing of an unfinished block
            (None, str(corrupt), 1, "corrupt_input"),
        ]
        kept += ["cut-8"]
    return Case(inputs, rejects, kept, f"Error: {dump}: record 5 (byte {empty_offset}): empty_article: ",
                encoding_errors={"latin-2": 1})


def folder_case(tmp: Path) -> Case:
    folder = tmp / "articles"
    folder.mkdir()
    (folder / "a_good.txt").write_text(article(1) + "\n")
    (folder / "b_latin.txt").write_bytes(with_bad_byte(article(2)))
    (folder / "c_bom_crlf.txt").write_bytes(b"\xef\xbb\xbf" + article(3).replace("\n", "\r\n").encode() + b"\r\n")
    (folder / "d_empty.txt").write_bytes(b"")
    (folder / "e_photo.txt").write_bytes(photo())
    (folder / "f_nul.txt").write_bytes(with_nul(article(4)))
    (folder / "g_big.txt").write_text(big_article(5))
    (folder / "h_blank.txt").write_text("\n   \n\n")
    (folder / "notes.md").write_text("not an article")
    f = lambda name: str(folder / name)  # noqa: E731
    return Case(
        [folder],
        [
            ("d_empty", f("d_empty.txt"), 1, "empty_article"),
            (None, f("e_photo.txt"), 1, "binary_file"),
            ("g_big", f("g_big.txt"), 1, "too_large"),
            ("h_blank", f("h_blank.txt"), 1, "empty_article"),
        ],
        ["a_good", "b_latin", "c_bom_crlf", "f_nul"],
        f"Error: {f('d_empty.txt')}: record 1 (byte 0): empty_article: ",
        encoding_errors={"b_latin": 1},
    )


def jsonl_line(obj: dict) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def jsonl_case(tmp: Path, compressed: bool = False) -> Case:
    lines = [
        b"\xef\xbb\xbf" + jsonl_line({"id": "j-good", "text": article(1)}) + b"\r\n",
        b'{"id": "j-latin", "text": "' + with_bad_byte(article(2)).replace(b"\n", b"\\n") + b'"}\n',
        b'{"id": "j-nul", "text": "' + with_nul(article(3)).replace(b"\n", b"\\n") + b'"}\n',
        b"\n",
        b"{not json at all\n",
        jsonl_line({"id": "j-notext", "body": article(4)}) + b"\n",
        jsonl_line({"id": "j-empty", "text": ""}) + b"\n",
        jsonl_line({"id": "j-big", "text": big_article(5)}) + b"\n",
        jsonl_line({"id": None, "text": article(6)}) + b"\n",
        jsonl_line({"text": article(7), "lang": "en"}) + b"\n",
    ]
    data = b"".join(lines)
    name = "docs.jsonl.gz" if compressed else "docs.jsonl"
    docs = tmp / name
    docs.write_bytes(gzip.compress(data) if compressed else data)
    inputs = [docs]
    rejects = [
        (None, str(docs), 4, "bad_json"),
        (None, str(docs), 5, "missing_text"),
        ("j-empty", str(docs), 6, "empty_article"),
        (None, str(docs), 7, "too_large"),
    ]
    stem = "docs"
    kept = ["j-good", "j-latin", "j-nul", f"{stem}:8", f"{stem}:9"]
    if compressed:
        cut = tmp / "cut.jsonl.gz"
        cut.write_bytes(truncated_gzip(lines[0][3:] + lines[1]))
        inputs.append(cut)
        rejects += [
            ("j-good", str(cut), 1, "duplicate_id"),  # the same ids again, from another file
            ("j-latin", str(cut), 2, "duplicate_id"),
            (None, str(cut), 3, "truncated_input"),
        ]
    bad_offset = len(b"".join(lines[:4]))
    return Case(inputs, rejects, kept, f"Error: {docs}: record 4 (byte {bad_offset}): bad_json: not JSON",
                encoding_errors={"j-latin": 1})


def csv_case(tmp: Path, sep: str = ",", compressed: bool = False) -> Case:
    q = lambda text: '"' + text + '"'  # noqa: E731  (the articles hold commas and newlines, no quotes)
    s = sep.encode()
    rows = [
        b"\xef\xbb\xbfid" + s + b"text" + s + b"section\r\n",
        b"c-good" + s + q(article(1)).encode() + s + b"world\r\n",
        b"c-latin" + s + b'"' + with_bad_byte(article(2)) + b'"' + s + b"world\r\n",
        b"c-nul" + s + b'"' + with_nul(article(3)) + b'"' + s + b"world\r\n",
        b"c-ragged" + s + q(article(4)).encode() + s + b"world" + s + b"extra\r\n",
        b"c-huge" + s + q(big_article(5)).encode() + s + b"world\r\n",
        b"c-empty" + s + s + b"world\r\n",
        b"c-after" + s + q(article(6)).encode() + s + b"world\r\n",
        b"c-open" + s + b'"' + article(7).encode() + b"\r\n",
    ]
    data = b"".join(rows)
    suffix = ".csv" if sep == "," else ".tsv"
    docs = tmp / f"docs{suffix}{'.gz' if compressed else ''}"
    docs.write_bytes(gzip.compress(data) if compressed else data)
    inputs = [docs]
    rejects = [
        (None, str(docs), 4, "ragged_row"),
        (None, str(docs), 5, "too_large"),
        ("c-empty", str(docs), 6, "empty_article"),
        (None, str(docs), 8, "bad_row"),
    ]
    kept = ["c-good", "c-latin", "c-nul", "c-after"]
    if compressed:
        cut = tmp / f"cut{suffix}.gz"
        cut.write_bytes(truncated_gzip(b"".join(rows[:2]) + rows[2][:300]))
        inputs.append(cut)
        rejects += [
            ("c-good", str(cut), 1, "duplicate_id"),  # the same id again, from another file
            (None, str(cut), 2, "truncated_input"),
        ]
    return Case(inputs, rejects, kept, f"Error: {docs}: record 4: ragged_row: ", encoding_errors={"c-latin": 1})


CASES = {
    "text": lambda tmp: text_case(tmp),
    "text-compressed": lambda tmp: text_case(tmp, compressed=True),
    "folder": folder_case,
    "jsonl": lambda tmp: jsonl_case(tmp),
    "jsonl-gz": lambda tmp: jsonl_case(tmp, compressed=True),
    "csv": lambda tmp: csv_case(tmp),
    "csv-gz": lambda tmp: csv_case(tmp, compressed=True),
    "tsv": lambda tmp: csv_case(tmp, sep="\t"),
}


def ingest(case: Case, tmp: Path, *extra: str):
    out, dups, rejects, report = (tmp / n for n in ("out.jsonl", "dups.jsonl", "rejects.jsonl", "report.json"))
    result = run("ingest", *map(str, case.inputs), *case.args, "-o", str(out), "--duplicates", str(dups),
                 "--rejects", str(rejects), "--report", str(report), "--max-record-bytes", str(MAX),
                 "--workers", "1", "-q", *extra)
    return result, out, dups, rejects, report


@pytest.mark.parametrize("name", list(CASES))
def test_skip_routes_each_bad_record_to_rejects_with_its_reason(tmp_path: Path, name: str) -> None:
    case = CASES[name](tmp_path)
    result, out, dups, rejects, report = ingest(case, tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    rejected = read_jsonl(rejects)
    assert [(r["id"], r["file"], r["record"], r["reason"]) for r in rejected] == case.rejects
    assert all(r["detail"] for r in rejected)
    corpus = read_jsonl(out)
    assert [r["id"] for r in corpus] == case.kept
    assert read_jsonl(dups) == []
    by_id = {r["id"]: r for r in corpus}
    for rid, n in case.encoding_errors.items():
        assert by_id[rid]["meta"]["encoding_errors"] == n
        assert "\ufffd" in by_id[rid]["text"]
    for r in corpus:
        assert r["text"].strip()
        assert not any(c in r["text"] for c in "\x00\r\ufeff")
        assert "encoding_errors" not in r["meta"] or r["id"] in case.encoding_errors
    counts = json.loads(report.read_text())["counts"]
    assert counts == {"read": len(case.kept) + len(case.rejects), "kept": len(case.kept), "duplicates": 0,
                      "rejected": len(case.rejects)}
    assert counts["read"] == counts["kept"] + counts["duplicates"] + counts["rejected"]
    assert sorted(p.name for p in tmp_path.iterdir() if ".thresher-tmp-" in p.name) == []


@pytest.mark.parametrize("name", list(CASES))
def test_fail_stops_at_the_first_bad_record_with_one_line(tmp_path: Path, name: str) -> None:
    case = CASES[name](tmp_path)
    result, out, dups, rejects, report = ingest(case, tmp_path, "--on-error", "fail")
    assert result.exit_code == 1
    assert result.stderr.startswith(case.first_bad), result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""
    names = {p.name for p in tmp_path.iterdir()}
    assert not names & {"out.jsonl", "dups.jsonl", "rejects.jsonl", "report.json"}
    assert not [n for n in names if ".thresher-tmp-" in n]


def test_all_formats_in_one_run_add_up(tmp_path: Path) -> None:
    inputs: list[Path] = []
    expected: list[tuple] = []
    kept = 0
    for name, build in CASES.items():
        folder = tmp_path / name
        folder.mkdir()
        case = build(folder)
        inputs += case.inputs
        expected += case.rejects
        kept += len(case.kept)
    # Ids repeat across the formats' dumps (c-good in csv and tsv, ...): later copies are duplicate_id rejects.
    combined = Case(inputs, [], [], "")
    result, out, dups, rejects, report = ingest(combined, tmp_path)
    assert result.exit_code == 0, result.output
    counts = json.loads(report.read_text())["counts"]
    rejected = read_jsonl(rejects)
    assert counts["read"] == counts["kept"] + counts["duplicates"] + counts["rejected"]
    assert counts["read"] == kept + len(expected)
    assert counts["rejected"] == len(rejected) and counts["kept"] == len(read_jsonl(out))
    assert set(expected) <= {(r["id"], r["file"], r["record"], r["reason"]) for r in rejected}


def test_delimiter_that_never_matches_is_a_reject(tmp_path: Path) -> None:
    dump = tmp_path / "dump.txt"
    dump.write_text("===== a-1\n" + article(1) + "\n")
    case = Case([dump], [(None, str(dump), 1, "delimiter_never_matched")], [], "", args=["--delimiter", "^#### "])
    result, out, dups, rejects, report = ingest(case, tmp_path)
    assert result.exit_code == 0
    (rej,) = read_jsonl(rejects)
    assert (rej["file"], rej["record"], rej["reason"]) == (str(dump), 1, "delimiter_never_matched")
    assert rej["raw"].startswith("===== a-1")
    assert read_jsonl(out) == []
    assert json.loads(report.read_text())["counts"] == {"read": 1, "kept": 0, "duplicates": 0, "rejected": 1}
    result, *_ = ingest(case, tmp_path, "--on-error", "fail")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {dump}: record 1 (byte 0): delimiter_never_matched: --delimiter")


def test_delimiter_that_does_not_compile_is_a_usage_error(tmp_path: Path) -> None:
    dump = tmp_path / "dump.txt"
    dump.write_text("===== a-1\n" + article(1) + "\n")
    result = run("ingest", str(dump), "--delimiter", "(?P<id>unclosed", "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 2
    assert "Invalid value for --delimiter: not a valid regex" in result.stderr
    assert list(tmp_path.iterdir()) == [dump]


def test_missing_input_is_exit_2_in_one_line(tmp_path: Path) -> None:
    dump = tmp_path / "dump.txt"
    dump.write_text("===== a-1\n" + article(1) + "\n")
    result = run("ingest", str(dump), str(tmp_path / "nope.txt"), "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 2
    assert result.stderr == f"Error: {tmp_path / 'nope.txt'}: no such file or folder; check the path\n"
    assert list(tmp_path.iterdir()) == [dump]


def test_folder_without_txt_files_is_exit_2_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("x")
    result = run("ingest", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "folder holds no .txt files" in result.stderr


@pytest.mark.parametrize("flag", ["-o", "--duplicates", "--rejects", "--report"])
def test_unwritable_output_is_exit_1_in_one_line_before_any_work(tmp_path: Path, flag: str) -> None:
    dump = tmp_path / "dump.txt"
    dump.write_text("===== a-1\n" + article(1) + "\n")
    others = {"-o": "out.jsonl", "--duplicates": "d.jsonl", "--rejects": "r.jsonl", "--report": "rep.json"}
    args = [a for f, n in others.items() if f != flag for a in (f, str(tmp_path / n))]
    target = tmp_path / "missing" / "x.jsonl"
    result = run("ingest", str(dump), *args, flag, str(target), "-q")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {target}: folder {str(target.parent)!r} does not exist; create it first\n"
    assert list(tmp_path.iterdir()) == [dump]  # no output, and no temporary file of the others


def test_output_that_is_a_folder_is_exit_1_in_one_line(tmp_path: Path) -> None:
    dump = tmp_path / "dump.txt"
    dump.write_text("===== a-1\n" + article(1) + "\n")
    result = run("ingest", str(dump), "-o", str(tmp_path), "-q")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {tmp_path}: is a folder; give a file name\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_output_without_permission_is_exit_1_in_one_line(tmp_path: Path) -> None:
    dump = tmp_path / "dump.txt"
    dump.write_text("===== a-1\n" + article(1) + "\n")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = run("ingest", str(dump), "-o", str(locked / "out.jsonl"), "-q")
    finally:
        locked.chmod(0o700)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "choose a writable location" in result.stderr


def test_two_outputs_with_one_name_is_a_usage_error(tmp_path: Path) -> None:
    dump = tmp_path / "dump.txt"
    dump.write_text("===== a-1\n" + article(1) + "\n")
    out = tmp_path / "out.jsonl"
    result = run("ingest", str(dump), "-o", str(out), "--rejects", str(out), "-q")
    assert result.exit_code == 2
    assert result.stderr == f"Error: -o and --rejects both name {str(out)!r}; give each output its own file\n"
    assert list(tmp_path.iterdir()) == [dump]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_disk_on_stdout_is_reported_not_swallowed(tmp_path: Path) -> None:
    dump = tmp_path / "dump.txt"
    dump.write_text("".join(f"===== a-{i}\n{article(i)}\n" for i in range(40)))
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([THRESHER, "ingest", str(dump), "-q"], stdout=full,
                              stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.decode() == ("Error: stdout: write failed (No space left on device); "
                                    "free some space or choose another location\n")


def test_a_real_process_prints_no_traceback(tmp_path: Path) -> None:
    case = text_case(tmp_path, compressed=True)
    for on_error, code in (("skip", 0), ("fail", 1)):
        proc = subprocess.run(
            [THRESHER, "ingest", *map(str, case.inputs), "-o", str(tmp_path / "o.jsonl"),
             "--max-record-bytes", str(MAX), "--on-error", on_error, "-q"],
            capture_output=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
        assert proc.returncode == code, proc.stderr
        assert b"Traceback" not in proc.stderr
        assert proc.stderr.count(b"\n") == code


# --- Bugs found in files owned by others: the tests state the right behaviour. ---------------


def test_input_fields_named_file_or_record_do_not_overwrite_provenance(tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_bytes(jsonl_line({"id": "a", "text": article(1), "file": "elsewhere.txt", "record": "seven"}) + b"\n"
                     + jsonl_line({"id": "b", "text": article(2), "record": "eight"}) + b"\n")
    result, out, dups, rejects, report = ingest(Case([docs], [], [], ""), tmp_path)
    assert result.exit_code == 0, result.output
    assert [(r["id"], r["meta"]["file"], r["meta"]["record"]) for r in read_jsonl(out)] == [
        ("a", str(docs), 1), ("b", str(docs), 2)]


def test_run_ingest_leaves_no_temporary_file_when_an_output_cannot_be_opened(tmp_path: Path) -> None:
    from ingest.pipeline import IngestOptions, Outputs, run_ingest
    from ingest.sources import expand_inputs
    from ingest.writers import OutputError

    dump = tmp_path / "dump.txt"
    dump.write_text("===== a-1\n" + article(1) + "\n")
    outputs = Outputs(corpus=str(tmp_path / "missing" / "out.jsonl"), rejects=str(tmp_path / "r.jsonl"))
    with pytest.raises(OutputError):
        run_ingest(list(expand_inputs([str(dump)], None)), IngestOptions(), outputs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dump.txt"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_rejects_and_reused_ids_inside_one_chunk_keep_input_order(tmp_path: Path, workers: str) -> None:
    """Rejects, reused ids and articles mixed inside one worker chunk (the parent takes a
    chunk's articles as columns): the rejects record keeps input order, the reused id's
    first record is the one kept, and the chunks after it are unaffected."""
    lines = [json.dumps({"id": "a", "text": article(1)}), "{not json", json.dumps({"id": "b", "text": article(2)}),
             json.dumps({"id": "a", "text": article(3)}), json.dumps({"id": "c"}),
             json.dumps({"id": "b", "text": article(4)})]
    lines += [json.dumps({"id": f"x{k}", "text": article(100 + k)}) for k in range(300)]  # more chunks
    src = tmp_path / "mixed.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out, rej = tmp_path / "out.jsonl", tmp_path / "rejects.jsonl"
    result = run("ingest", str(src), "-o", str(out), "--rejects", str(rej), "--workers", workers, "--quiet")
    assert result.exit_code == 0, result.output
    assert [(r["record"], r["reason"], r["id"]) for r in read_jsonl(rej)] == [
        (2, "bad_json", None), (4, "duplicate_id", "a"), (5, "missing_text", None), (6, "duplicate_id", "b")]
    kept = read_jsonl(out)
    assert [r["id"] for r in kept] == ["a", "b"] + [f"x{k}" for k in range(300)]
    assert kept[0]["meta"]["record"] == 1 and kept[1]["meta"]["record"] == 3
