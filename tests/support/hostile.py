"""Malicious and broken documents, built small in memory by the tests that use them.

Each is a few kB to a few MB on disk and attacks a parser the way real ones do: zip bombs under an office or
e-book name, XML entity expansion, nesting deep enough to exhaust a parser, PDFs whose structure loops or fans
out without end, text that is one enormous line, a type that is not what its name says.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from tests.conftest import DOCS

W_NS = b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
# The part each format's parser reads its text from, in the sample of that format.
MAIN_PARTS = {
    "docx": ("fake.docx", "word/document.xml"),
    "xlsx": ("2023-half-year-analyses-by-segment.xlsx", "xl/sharedStrings.xml"),
    "pptx": ("fake-power-point.pptx", "ppt/slides/slide1.xml"),
    "odt": ("simple.odt", "content.xml"),
    "epub": ("winter-sports.epub", "OEBPS/9010142969167985858_60153-h-0.htm.html"),
}
_XML_HEAD = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'


def sample(name: str) -> bytes:
    return (DOCS / name).read_bytes()


def rezip(original: bytes, replace: dict[str, bytes | list[bytes]]) -> bytes:
    """The archive with some parts replaced (or added); a part given as pieces is streamed in, so it may inflate to
    far more than the test holds in memory. The ODF/EPUB "mimetype" part stays first and stored, as detection
    expects."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        names = [info.filename for info in zin.infolist()]
        for name in names + [n for n in replace if n not in names]:
            method = zipfile.ZIP_STORED if name == "mimetype" else zipfile.ZIP_DEFLATED
            content = replace[name] if name in replace else zin.read(name)
            target = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            target.compress_type = method
            # Zip64 only for a streamed part: its size is not known before it is written.
            with zout.open(target, "w", force_zip64=not isinstance(content, bytes)) as part:
                for piece in [content] if isinstance(content, bytes) else content:
                    part.write(piece)
    return out.getvalue()


def zip_bomb(kind: str, inflated_bytes: int) -> bytes:
    """A complete document of `kind` whose main part is well-formed XML inflating to `inflated_bytes`."""
    sample_name, part = MAIN_PARTS[kind]
    filler = b"A" * (1 << 20)
    pieces = [_XML_HEAD, b"<root " + W_NS + b"><t>"]
    pieces += [filler] * (inflated_bytes // len(filler))
    pieces.append(b"</t></root>")
    return rezip(sample(sample_name), {part: pieces})


def lie_about_sizes(archive: bytes, part: str, claimed: int) -> bytes:
    """The zip with `part`'s uncompressed size rewritten to `claimed` in its local header and central directory:
    what zipfile trusts, not what the deflate stream inflates to (pandoc inflates to the stream's end)."""
    data = bytearray(archive)
    encoded = part.encode()
    at = 0
    while (at := data.find(b"PK\x03\x04", at)) >= 0:
        name_len = struct.unpack_from("<H", data, at + 26)[0]
        if data[at + 30 : at + 30 + name_len] == encoded:
            _rewrite_size(data, at + 22, at + 30 + name_len, claimed)
        at += 4
    at = 0
    while (at := data.find(b"PK\x01\x02", at)) >= 0:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + name_len] == encoded:
            _rewrite_size(data, at + 24, at + 46 + name_len, claimed)
        at += 4
    return bytes(data)


def _rewrite_size(data: bytearray, field: int, extra: int, claimed: int) -> None:
    if struct.unpack_from("<I", data, field)[0] == 0xFFFFFFFF:
        # Zip64: the real sizes are in the extra field (id 0x0001), uncompressed size first.
        struct.pack_into("<Q", data, extra + 4, claimed)
    else:
        struct.pack_into("<I", data, field, claimed)


def billion_laughs(kind: str, levels: int = 9) -> bytes:
    """A document of `kind` whose main part defines entities that expand ten-fold per level (10^9 "lol"s)."""
    sample_name, part = MAIN_PARTS[kind]
    entities = b'<!ENTITY lol "lol">' + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, levels + 1)
    )
    xml = b'<?xml version="1.0"?><!DOCTYPE root [' + entities + b"]><root " + W_NS + b"><t>&lol%d;</t></root>" % levels
    return rezip(sample(sample_name), {part: xml})


def docx_with_document_xml(xml: bytes | list[bytes]) -> bytes:
    return rezip(sample("fake.docx"), {"word/document.xml": xml})


def deep_docx(depth: int = 100_000) -> bytes:
    body = b"<w:p>" * depth + b"</w:p>" * depth
    return docx_with_document_xml(_XML_HEAD + b"<w:document " + W_NS + b"><w:body>" + body + b"</w:body></w:document>")


def deep_json(depth: int = 50_000) -> bytes:
    return b'{"a": ' * depth + b'"x"' + b"}" * depth


def deep_html(depth: int = 5_000) -> bytes:
    return b"<html><body>" + b"<div>words " * depth + b"</div>" * depth + b"</body></html>"


def one_line(chars: int) -> bytes:
    """Text without a single line break: `chars` characters of words."""
    words = b"lorem ipsum dolor sit amet consectetur adipiscing elit "
    return (words * (chars // len(words) + 1))[:chars]


# ----- PDFs -------------------------------------------------------------------------------------------------------
_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
_PAGE = (
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >>%s >> >>"
)


def pdf(objects: list[bytes], trailer: bytes = b"") -> bytes:
    """A PDF of these objects (numbered from 1, the first is the catalog) with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, trailer, xref)
    return bytes(out)


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n%s\nendstream" % (len(data), extra, data)


def _text(words: bytes) -> bytes:
    return b"BT /F1 12 Tf 72 720 Td (%s) Tj ET" % words


def simple_pdf(words: bytes = b"A small honest PDF document") -> bytes:
    return pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            _PAGE % b"",
            _stream(_text(words)),
            _FONT,
        ]
    )


def pdf_xref_loop() -> bytes:
    """The trailer's /Prev points at its own cross-reference table: a reader following the chain never ends."""
    honest = simple_pdf()
    start = honest.rindex(b"startxref\n") + len(b"startxref\n")
    xref = int(honest[start : honest.index(b"\n", start)])
    return honest.replace(b"/Root 1 0 R ", b"/Root 1 0 R /Prev %d " % xref)


def pdf_page_tree_loop() -> bytes:
    """The page tree lists itself among its own kids."""
    pages = b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>"
    return pdf([b"<< /Type /Catalog /Pages 2 0 R >>", pages, _PAGE % b"", _stream(_text(b"Looping tree")), _FONT])


def pdf_form_fanout(levels: int = 40) -> bytes:
    """Form XObjects that each draw the next one twice: 2^40 drawings from 10 kB, a loop no parser finishes."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        _PAGE % b" /XObject << /X 6 0 R >>",
        _stream(_text(b"top") + b" /X Do"),
        _FONT,
    ]
    for level in range(levels):
        last = level == levels - 1
        resources = b"/Resources << /Font << /F1 5 0 R >>%s >> " % (
            b"" if last else b" /XObject << /X %d 0 R >>" % (7 + level)
        )
        body = _text(b"leaf") if last else _text(b"level") + b" /X Do /X Do"
        objects.append(_stream(body, b"/Type /XObject /Subtype /Form /BBox [0 0 612 792] " + resources))
    return pdf(objects)


def pdf_flate_bomb(inflated_bytes: int = 300_000_000) -> bytes:
    """A page whose content stream inflates from under 1 MB to `inflated_bytes` of drawing operators."""
    operators = b"BT /F1 12 Tf 72 720 Td (bomb) Tj ET\n"
    inflater = zlib.compressobj(9)
    chunk = operators * (1_000_000 // len(operators))
    packed = b"".join(inflater.compress(chunk) for _ in range(inflated_bytes // len(chunk))) + inflater.flush()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        _PAGE % b"",
        _stream(packed, b"/Filter /FlateDecode "),
        _FONT,
    ]
    return pdf(objects)
