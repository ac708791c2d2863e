"""Clean text out of the parser: each case on a shared document that has it, else on a realistic fixture.

The shared documents hold line-break hyphens, ligatures and a detached accent (PDFs), UTF-8 read as Latin-1
(norwich-city.txt), tabs and double spaces (DOCX), links (example-10k-1p.html) and code blocks (codeblock.md).
None holds a Sphinx permalink mark or a spacing diaeresis: those cases are built here as their sources look.
"""

from __future__ import annotations

import html
import re
from functools import cache
from pathlib import Path

import pytest

from ingestion.parse import ParsedElement, parse_document
from ingestion.parse.clean import clean_texts
from ingestion.parse.nlp import english_words

DOCS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "docs"

# Shaped like Sphinx's HTML output (the Python documentation): permalink anchors after headings and in an
# API signature, links whose text is the sentence's object, a highlighted code block and a table.
SPHINX_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>5. Data Structures</title></head><body>
<div class="body" role="main">
<section id="more-on-lists">
<h1>5.1. More on Lists<a class="headerlink" href="#more-on-lists" title="Link to this heading">¶</a></h1>
<p>The list data type has some more methods. An introduction can be found in
<a class="reference internal" href="../tutorial/index.html#tut"><span class="std std-ref">the tutorial</span></a>,
and the style of the examples follows <a class="pep reference external" href="https://peps.python.org/pep-0008/">
<strong>PEP 8</strong></a>.</p>
<dl class="py method">
<dt class="sig sig-object py" id="list.append"><span class="sig-prename descclassname"><span class="pre">list.\
</span></span><span class="sig-name descname"><span class="pre">append</span></span><span class="sig-paren">(</span>\
<em class="sig-param"><span class="n"><span class="pre">x</span></span></em><span class="sig-paren">)</span>\
<a class="headerlink" href="#list.append" title="Link to this definition">¶</a></dt>
<dd><p>Add an item to the end of the list.</p></dd>
</dl>
<section id="using-lists-as-stacks">
<h2>5.1.1. Using Lists as Stacks<a class="headerlink" href="#using-lists-as-stacks"
title="Link to this heading">¶</a></h2>
<p>Can a list contain another list?<a class="headerlink" href="#p1" title="Link to this paragraph">¶</a></p>
<p>Section ¶ 12 of the style guide covers nesting.</p>
<div class="highlight-python3 notranslate"><div class="highlight"><pre><span></span>\
<span class="c1"># Headings end in a permalink mark: ¶</span>
<span class="k">def</span> <span class="nf">strip_mark</span>(title):
    <span class="k">return</span> title.removesuffix(<span class="s2">"¶"</span>)
</pre></div></div>
<table class="docutils align-default"><thead><tr><th><p>Operation</p></th><th><p>Result</p></th></tr></thead>
<tbody><tr><td><p><code class="docutils literal notranslate">x   in   s</code></p></td>
<td><p>True if an item of s is x</p></td></tr>
<tr><td><p>permalink</p></td><td><p>¶</p></td></tr></tbody></table>
</section></section></div></body></html>
"""

# Plain text as it comes out of a PDF: words hyphenated at line ends, accents as separate characters.
PDF_LIKE_TEXT = """Notes on the survey

The two samples were found to be identi-
cal in every respect, and the method is well-
known. Results were sent by e-mail to the
Universit\u00a8at Z\u00a8urich and the Universita\u0308t Wien; identi- cal copies went
to the well-known pre- and post-processing teams, a Lucene- BM25 baseline included.
"""


@cache
def _parsed(name: str) -> tuple[ParsedElement, ...]:
    return tuple(parse_document((DOCS / name).read_bytes(), name))


def _joined(elements: tuple[ParsedElement, ...]) -> str:
    return " ".join(e.text for e in elements)


@cache
def _sphinx() -> tuple[ParsedElement, ...]:
    return tuple(parse_document(SPHINX_PAGE.encode(), "datastructures.html"))


@cache
def _pdf_like() -> str:
    return _joined(tuple(parse_document(PDF_LIKE_TEXT.encode(), "survey-notes.txt")))


# ---------------------------------------------------------------------------------------------- permalinks


def test_sphinx_permalink_marks_leave_headings_sections_and_signatures() -> None:
    elements = _sphinx()
    titles = [e.text for e in elements if e.type == "Title"]
    assert titles == ["5.1. More on Lists", "5.1.1. Using Lists as Stacks"]
    assert {e.section for e in elements} == set(titles)
    assert any(e.text == "list.append(x)" for e in elements), [e.text for e in elements]
    assert "Can a list contain another list?" in [e.text for e in elements]
    prose = [e.text for e in elements if e.type not in ("CodeSnippet", "Table")]
    assert [t for t in prose if "¶" in t] == ["Section ¶ 12 of the style guide covers nesting."]


# ---------------------------------------------------------------------------------------------- links


def test_link_text_stays_in_the_sentence() -> None:
    text = _joined(_sphinx())
    assert "An introduction can be found in the tutorial, and the style of the examples follows PEP 8." in text


def test_every_link_text_of_a_shared_page_survives() -> None:
    source = (DOCS / "example-10k-1p.html").read_text(encoding="utf-8")
    anchors = re.findall(r"<a\b[^>]*>(.*?)</a>", source, re.DOTALL)
    links = [" ".join(html.unescape(re.sub(r"<[^>]+>", "", a)).split()) for a in anchors]
    assert len(links) == 13
    text = _joined(_parsed("example-10k-1p.html"))
    assert [link for link in links if link not in text] == []


# ---------------------------------------------------------------------------------------------- hyphenation


@pytest.mark.parametrize(
    ("name", "mended", "broken"),
    [
        ("a1977-backus-p21.pdf", "recursive functions without a definition.", "defi- nition"),
        ("a1977-backus-p21.pdf", "laws for those forms could be employed", "em- ployed"),
        ("layout-parser-paper-fast.pdf", "the easy reuse of important innovations", "im- portant"),
        ("layout-parser-paper-fast.pdf", "full document digitization pipelines", "digiti- zation"),
        ("multi-column-2p.pdf", "practically implemented using dense representations", "us- ing"),
        ("multi-column-2p.pdf", "then fine-tuned using pairs of questions", "ﬁne- tuned"),
        ("multi-column-2p.pdf", "passages by a simple dual-encoder framework", "dual- encoder"),
        ("multi-column-2p.pdf", "forms a strong Lucene-BM25 system", "Lucene- BM25"),
        ("invalid-pdf-structure-pdfminer-one-page.pdf", "investments in privacy-preserving technology", None),
        ("invalid-pdf-structure-pdfminer-one-page.pdf", "Keith Kim (Analyst-in-charge)", None),
    ],
)
def test_pdf_line_break_hyphens_are_mended(name: str, mended: str, broken: str | None) -> None:
    text = _joined(_parsed(name))
    assert mended in text
    if broken:
        assert broken not in text


@pytest.mark.parametrize(
    "name",
    [
        "a1977-backus-p21.pdf",
        "layout-parser-paper-fast.pdf",
        "multi-column-2p.pdf",
        "invalid-pdf-structure-pdfminer-one-page.pdf",
    ],
)
def test_no_word_of_a_shared_pdf_stays_broken_at_a_line_end(name: str) -> None:
    assert re.findall(r"\w+- [a-z]\w*", _joined(_parsed(name))) == []


def test_hyphenation_in_text_joins_words_and_keeps_compounds() -> None:
    text = _pdf_like()
    assert text.count("identical") == 2
    assert "identi" not in text.replace("identical", "")
    # Real hyphens, written as such or broken at a line end, and a suspended one.
    assert "the method is well-known." in text
    assert "sent by e-mail to" in text
    assert "to the well-known pre- and post-processing teams" in text
    assert "a Lucene-BM25 baseline" in text


# ---------------------------------------------------------------------------------------------- accents


def test_detached_accent_of_a_shared_pdf_joins_its_letter() -> None:
    text = _joined(_parsed("multi-column-2p.pdf"))
    assert "Barlas Oğuz" in text
    assert "˘" not in text


def test_spacing_and_combining_accents_become_composed_letters() -> None:
    text = _pdf_like()
    assert "the Universität Zürich and the Universität Wien;" in text
    assert not re.search("[\u00a8\u0300-\u036f]", text)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Universit\u00a8at", "Universität"),  # TeX's order: the accent before its letter
        ("Universita\u00a8t", "Universität"),  # after it: t with a diaeresis is no letter of these languages
        ("Barlas O\u02d8guz", "Barlas Oğuz"),
        ("caf\u00b4e", "café"),
        ("Franc\u00b8ais", "Français"),
        ("it\u00b4s, don\u00b4t, we\u00b4ll", "it\u00b4s, don\u00b4t, we\u00b4ll"),  # an acute typed for an apostrophe
        ("http://example.org/\u02dcuser", "http://example.org/\u02dcuser"),  # a URL's ~ drawn by TeX
        ("25\u02daC", "25\u02daC"),  # no C with a ring: a degree sign
    ],
)
def test_accent_rules(raw: str, clean: str) -> None:
    assert clean_texts([("NarrativeText", raw)], english_words()) == [clean]


# ---------------------------------------------------------------------------------------------- characters


def test_ligatures_become_letters() -> None:
    text = _joined(_parsed("layout-parser-paper-fast.pdf"))
    assert "LayoutParser: A Unified Toolkit" in text
    assert "1. An off-the-shelf toolkit" in text
    assert not re.search("[\ufb00-\ufb06]", text)


def test_utf8_read_as_latin1_is_repaired() -> None:
    # The file itself is double-encoded: its en dashes and pound signs are stored as "â\x80\x93" and "Â£".
    assert b"\xc3\xa2\xc2\x80\xc2\x93" in (DOCS / "norwich-city.txt").read_bytes()
    text = _joined(_parsed("norwich-city.txt"))
    assert "first-team debut during the 1985–86 season" in text
    assert "for £275,000." in text
    assert not re.search("[\u0080-\u009f]|Â£|â\u0080", text)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("1985\u00e2\u0080\u009386", "1985–86"),  # read as Latin-1
        ("it\u00e2\u20ac\u2122s", "it’s"),  # read as Windows-1252
        ("\u00c2\u00a3300", "£300"),
        ("\u0093quoted\u0094 \u0096 so", "“quoted” – so"),  # Windows-1252 read as Latin-1
        ("„Gruß“", "„Gruß“"),  # ß and a quote are no broken character
        ("«CAFÉ»", "«CAFÉ»"),
    ],
)
def test_charset_repair_rules(raw: str, clean: str) -> None:
    assert clean_texts([("NarrativeText", raw)], english_words()) == [clean]


# ---------------------------------------------------------------------------------------------- whitespace


def test_tabs_double_spaces_and_wrapped_lines_become_single_spaces() -> None:
    handbook = _joined(_parsed("handbook-1p.docx"))
    assert "A. PURPOSE" in handbook
    assert "of the United States Code. 28 U.S.C. § 586(b)." in handbook
    assert not re.search(r"\t| {2}", handbook)
    sheet = [e.text for e in _parsed("2023-half-year-analyses-by-segment.xlsx") if e.type != "Table"]
    assert "3.4 Reconciliation from Underlying Trading operating profit to profit before taxes, associates" in (
        " ".join(sheet)
    )
    assert not [t for t in sheet if "\n" in t]


# ---------------------------------------------------------------------------------------------- verbatim


def test_code_blocks_of_a_shared_document_are_kept_as_written() -> None:
    source = (DOCS / "codeblock.md").read_text(encoding="utf-8")
    fenced = re.findall(r"```\w*\n(.*?)\n```", source, re.DOTALL)
    assert [e.text for e in _parsed("codeblock.md") if e.type == "CodeSnippet"] == fenced


def test_code_and_tables_only_lose_whitespace() -> None:
    elements = _sphinx()
    assert [e.text for e in elements if e.type == "CodeSnippet"] == [
        '# Headings end in a permalink mark: ¶\ndef strip_mark(title):\n    return title.removesuffix("¶")'
    ]
    assert [e.text for e in elements if e.type == "Table"] == [
        "Operation Result x in s True if an item of s is x permalink ¶"
    ]
