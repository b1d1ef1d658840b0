"""An upload written out again as a multipart/form-data body (RFC 7578) for the deployment: the
upstream's model name first, then the client's parts in their order, a file's bytes untouched."""

from __future__ import annotations

import os

from llmgw.contracts import AudioUpload, UploadPart

# Characters a field name or filename cannot carry as they are in a Content-Disposition header,
# escaped as browsers do (the HTML standard's multipart/form-data encoding).
_ESCAPES = str.maketrans({'"': "%22", "\r": "%0D", "\n": "%0A"})


def _disposition(part: UploadPart) -> bytes:
    header = f'Content-Disposition: form-data; name="{part.name.translate(_ESCAPES)}"'
    if part.filename is not None:
        header += f'; filename="{part.filename.translate(_ESCAPES)}"'
    if part.content_type:
        header += f"\r\nContent-Type: {part.content_type.translate(_ESCAPES)}"
    return header.encode("utf-8")


def multipart_body(upload: AudioUpload, upstream_model: str) -> tuple[str, bytes]:
    """(Content-Type header, body) of the upload with `upstream_model` as its `model`. The
    boundary is random (128 bits), so it cannot be met in the file by chance."""
    boundary = f"llmgw-{os.urandom(16).hex()}".encode()
    pieces: list[bytes] = []
    for part in [UploadPart("model", upstream_model.encode("utf-8")), *upload.parts]:
        pieces += [b"--", boundary, b"\r\n", _disposition(part), b"\r\n\r\n", part.data, b"\r\n"]
    pieces += [b"--", boundary, b"--\r\n"]
    return f"multipart/form-data; boundary={boundary.decode()}", b"".join(pieces)
