"""PDFs made by hand for tests and benchmarks: honest ones with a text layer, and bombs, small
on disk, that expand to far more than they look (one compressed content stream repeated, pages
sharing one stream, a form drawn thousands of times, a page of drawing operators). Standard
library only, so that a benchmark's parent process stays small (a child's peak memory is
measured from it).
"""
from __future__ import annotations

import zlib


def make_pdf(pages: list[str]) -> bytes:
    """A real PDF with a text layer: one page per string (Helvetica, one line per page).

    An empty string makes a page with no text at all, i.e. what a scan looks like to a
    text extractor. Written by hand (pypdf cannot typeset), with a correct xref table.
    """
    objects: list[bytes] = [b"", b""]  # 1: catalog, 2: pages (filled in below)
    font_id = 3
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    kids = []
    for text in pages:
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1") if text else b""
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        content_id = len(objects)
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                       b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (content_id, font_id))
        kids.append(len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    return pdf_from_objects(objects)


def pdf_from_objects(objects: list[bytes]) -> bytes:
    """A PDF file of `objects` (object n is `objects[n - 1]`, object 1 the catalog), with a correct xref table."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
SHOW = b"(" + b"A" * 1000 + b") Tj\n"  # one operator that shows 1,000 characters


def _stream(content: bytes, extra: bytes = b"") -> bytes:
    packed = zlib.compress(content, 9)
    return b"<< %s/Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (extra, len(packed), packed)


def _pages(kids: list[int]) -> bytes:
    return b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))


def _page(contents: int, resources: bytes = b"") -> bytes:
    return (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R >> %s >> >>" % (contents, resources))


def repeated_stream(shows: int) -> bytes:
    """One page whose compressed content stream shows `shows` x 1,000 characters."""
    return shared_stream(1, shows)


def shared_stream(pages: int, shows: int) -> bytes:
    """`pages` pages that all draw the same content stream, which shows `shows` x 1,000 characters."""
    return _sharing(pages, b"BT /F1 12 Tf 72 720 Td\n" + SHOW * shows + b"ET")


def drawing(pages: int, rectangles: int) -> bytes:
    """`pages` pages that all draw one content stream of `rectangles` rectangles and no text: five
    operands and operators each (`1 2 3 4 re`), which is what a parser pays for, in 11 bytes."""
    return _sharing(pages, b"1 2 3 4 re\n" * rectangles)


def letters(pages: int, shows: int) -> bytes:
    """`pages` pages that all draw one content stream showing `shows` one-letter strings (`(a) Tj`):
    the most operands and operators per byte that still show text."""
    return _sharing(pages, b"BT /F1 12 Tf\n" + b"(a) Tj " * shows + b"ET")


def _sharing(pages: int, content: bytes) -> bytes:
    kids = list(range(5, 5 + pages))
    return pdf_from_objects([b"<< /Type /Catalog /Pages 2 0 R >>", _pages(kids), FONT, _stream(content)]
                            + [_page(4) for _ in kids])


def form_bomb(invocations: int, shows: int = 900) -> bytes:
    """One page drawing, `invocations` times, a form that shows `shows` x 1,000 characters."""
    form = _stream(b"BT /F1 12 Tf 72 720 Td\n" + SHOW * shows + b"ET",
                   b"/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> ")
    page_content = _stream(b"/X0 Do\n" * invocations)
    return pdf_from_objects([b"<< /Type /Catalog /Pages 2 0 R >>", _pages([6]), FONT, page_content, form,
                             _page(4, b"/XObject << /X0 5 0 R >>")])
