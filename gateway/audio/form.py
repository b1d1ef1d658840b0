"""A multipart/form-data body (RFC 7578) read once into its parts.

The body is already in memory (the pipeline read it within the route's size limit); it goes
through one pass of the `multipart` push parser, each part kept as its bytes, a file's as the
client sent them. A body that is not multipart, has no boundary, or breaks off is a 400 naming
what is wrong.
"""

from __future__ import annotations

from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header

from gateway.errors import GatewayError
from llmgw.contracts import ErrorCode, ErrorType, UploadPart

MAX_PARTS = 128  # fields and files in one form (OpenAI's forms have about a dozen)
MAX_PART_HEADERS = 8


def bad_form(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, ErrorType.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, param)


def boundary_of(content_type: str | None) -> str:
    """The boundary of a `multipart/form-data` Content-Type header."""
    if not content_type:
        raise bad_form("The request has no Content-Type: send the upload as multipart/form-data.")
    kind, options = parse_options_header(content_type)
    if kind != "multipart/form-data":
        raise bad_form(f"Invalid Content-Type {kind!r}: send the upload as multipart/form-data.")
    boundary = options.get("boundary")
    if not boundary:
        raise bad_form("The multipart/form-data Content-Type names no boundary.")
    return str(boundary)


def parse_form(content_type: str | None, body: bytes) -> list[UploadPart]:
    """The form's parts in order; a part with a filename is a file."""
    boundary = boundary_of(content_type)
    parts: list[UploadPart] = []
    segment: MultipartSegment | None = None
    chunks: list[bytes] = []
    try:
        parser = PushMultipartParser(
            boundary, len(body), max_header_count=MAX_PART_HEADERS, max_segment_count=MAX_PARTS, strict=True
        )
        with parser:
            for event in parser.parse(body):
                if isinstance(event, MultipartSegment):
                    segment, chunks = event, []
                elif event is None:
                    assert segment is not None  # (the parser opens every part with its segment)
                    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                    parts.append(UploadPart(segment.name or "", data, segment.filename, segment.content_type))
                else:
                    chunks.append(bytes(event))
    except MultipartError as exc:
        raise bad_form(f"The multipart/form-data body could not be read: {exc}.") from None
    return parts


def text_of(part: UploadPart) -> str:
    """A field's value as text (UTF-8)."""
    try:
        return part.data.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_form(f"The field `{part.name}` is not UTF-8 text.", part.name) from None
