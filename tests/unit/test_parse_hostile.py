"""Malicious documents, generated here, fail with a reason a person can act on: never "internal error".

These call the parser in-process for its reasons; `test_parse_sandbox.py` runs the ones that only a killable
process bounds (a parse that never ends, a parser that dies), and `tests/integration/test_hostile_uploads.py`
sends them through the service.
"""

from __future__ import annotations

import pytest

from ingestion.parse import ParseLimits, detect_kind, parse_document
from ingestion.parse import archive as archive_module
from kernel.errors import DocumentError
from tests.support import hostile

MB = 1024 * 1024
# Small limits keep the generated bombs small; the real-size DOCX below runs with the defaults.
SMALL = ParseLimits(max_unpacked_bytes=4 * MB, max_chars=200_000)
ZIP_KINDS = ("docx", "xlsx", "pptx", "odt", "epub")


def refused(data: bytes, name: str, limits: ParseLimits | None = None) -> str:
    with pytest.raises(DocumentError) as caught:
        parse_document(data, name, limits)
    message = caught.value.message
    assert message.startswith(name), message
    assert "internal error" not in message
    return message


def test_a_docx_whose_document_inflates_to_200_mb_names_the_zip_bomb() -> None:
    # Found by attacking the service: unpacked whole in memory, it failed as "internal error (XMLSyntaxError: Text
    # node too long)".
    message = refused(hostile.zip_bomb("docx", 200 * MB), "report.docx")
    assert "unpacks to more than 104,857,600 bytes" in message
    assert "RAG_INGESTION__MAX_UNPACKED_BYTES" in message


@pytest.mark.parametrize("kind", ZIP_KINDS)
def test_zip_bombs_under_any_office_or_ebook_name_are_refused(kind: str) -> None:
    message = refused(hostile.zip_bomb(kind, 8 * MB), f"bomb.{kind}", SMALL)
    assert "unpacks to more than 4,194,304 bytes" in message
    assert "zip bomb" in message


@pytest.mark.parametrize("kind", ["odt", "epub", "docx"])
def test_a_zip_directory_that_understates_a_part_does_not_hide_the_bomb(kind: str) -> None:
    # zipfile stops at the size the directory declares; pandoc (ODT, EPUB) inflates the stream to its end.
    part = hostile.MAIN_PARTS[kind][1]
    lying = hostile.lie_about_sizes(hostile.zip_bomb(kind, 8 * MB), part, 1000)
    message = refused(lying, f"liar.{kind}", SMALL)
    assert f"{part} alone inflates past the limit" in message


@pytest.mark.parametrize("kind", ZIP_KINDS)
def test_entity_expansion_is_named(kind: str) -> None:
    # Found by attacking the service: a billion-laughs DOCX was reported as "internal error".
    message = refused(hostile.billion_laughs(kind), f"laughs.{kind}")
    assert "declares XML entities" in message
    assert "billion laughs" in message


def test_entity_expansion_that_reaches_the_xml_parser_is_named_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the archive check, lxml refuses the expansion itself; its error is a SyntaxError, which read as a bug
    # of ours.
    monkeypatch.setattr("ingestion.parse.check_archive", lambda *args: None)
    message = refused(hostile.billion_laughs("docx"), "laughs.docx")
    assert "expands XML entities" in message


def test_a_text_run_too_long_for_xml_parsing_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ingestion.parse.check_archive", lambda *args: None)
    message = refused(hostile.zip_bomb("docx", 12 * MB), "long-run.docx")
    assert "longer than XML parsing allows" in message


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("deep.docx", hostile.deep_docx(), "nests XML elements deeper than XML parsing allows"),
        ("deep.json", hostile.deep_json(), "JSON nested too deeply"),
        ("deep.html", hostile.deep_html(), "nests HTML elements deeper than they can be read"),
    ],
)
def test_deep_nesting_is_refused(name: str, data: bytes, reason: str) -> None:
    assert reason in refused(data, name)


def test_a_pdf_whose_xref_chain_loops_is_refused() -> None:
    assert "loops back on itself or is nested too deeply" in refused(hostile.pdf_xref_loop(), "loop.pdf")


def test_a_pdf_whose_page_tree_contains_itself_still_parses() -> None:
    elements = parse_document(hostile.pdf_page_tree_loop(), "tree.pdf")
    assert "Looping tree" in " ".join(e.text for e in elements)


def test_a_truncated_pdf_is_refused() -> None:
    assert "could not be read as PDF" in refused(hostile.simple_pdf()[:300], "cut.pdf")


def test_a_huge_single_line_is_refused_by_its_length() -> None:
    message = refused(hostile.one_line(300_000), "line.txt", SMALL)
    assert "has 300,000 characters of text; the limit is 200,000" in message
    assert "RAG_INGESTION__MAX_DOCUMENT_CHARS" in message


def test_a_long_single_line_within_the_limit_is_parsed_whole() -> None:
    # unstructured's type heuristics used to run spaCy on up to 1,000,000 characters of one element (a 2 MB line
    # took 80 s and 3.5 GB); they now read a prefix, and the text itself is kept whole.
    line = hostile.one_line(150_000)
    elements = parse_document(line, "line.txt", SMALL)
    assert [e.text for e in elements] == [line.decode().strip()]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("bomb.txt", hostile.zip_bomb("docx", MB)),  # an archive is no text file
        ("report.pdf", hostile.sample("fake.docx")),  # a zip under a PDF name
        ("sheet.xlsx", b"<html><body>not a spreadsheet</body></html>"),
        ("notes.md", b"MZ\x90\x00" + bytes(200)),  # an executable
        ("memo.html", hostile.sample("CantinaBand3.wav")),
    ],
)
def test_wrong_extensions_are_not_supported_documents(name: str, data: bytes) -> None:
    assert detect_kind(name, data[:8192]) is None
    assert "is not a supported document type" in refused(data, name)


def test_a_pdf_under_an_office_name_is_read_as_the_pdf_it_is() -> None:
    elements = parse_document(hostile.simple_pdf(b"Honest words inside"), "renamed.docx")
    assert "Honest words inside" in " ".join(e.text for e in elements)


def test_a_zip_of_too_many_parts_is_refused() -> None:
    many = hostile.rezip(hostile.sample("fake.docx"), {f"junk/{i}.xml": b"<a/>" for i in range(50)})
    message = refused(many, "parts.docx", ParseLimits(max_archive_entries=40))
    assert "parts; no real document has more than 40" in message


def test_real_documents_pass_the_archive_check() -> None:
    for kind, (name, _) in hostile.MAIN_PARTS.items():
        archive_module.check_archive(kind, hostile.sample(name), name, ParseLimits())
