"""Read one JPEG out of a ``multipart/x-mixed-replace`` (MJPEG) HTTP stream.

A stream looks like::

    --myboundary\\r\\n
    Content-Type: image/jpeg\\r\\n
    Content-Length: 48213\\r\\n
    \\r\\n
    <48213 bytes of JPEG>\\r\\n
    --myboundary\\r\\n
    ...

Cameras disagree on details — the boundary parameter may or may not carry the leading ``--``, a
part may lack ``Content-Length``, there may be a preamble — so all three are handled. Without a
length the part ends where the next boundary line starts.
"""

from __future__ import annotations

import re
from typing import BinaryIO

_MAX_HEADER_LINE = 8192
_MAX_PREAMBLE_LINES = 64
_BOUNDARY = re.compile(r'boundary\s*=\s*"?([^";]+)"?', re.IGNORECASE)


def boundary_of(content_type: str) -> bytes:
    """The boundary token of a multipart content type, without leading dashes.

    Raises:
        ValueError: There is no ``boundary`` parameter.
    """
    match = _BOUNDARY.search(content_type)
    if not match:
        raise ValueError(f"multipart stream without a boundary ({content_type!r})")
    return match.group(1).strip().lstrip("-").encode("latin-1")


class _LineReader:
    """Buffered ``readline``/``read`` over a stream, reading only what has arrived.

    ``urllib3``'s ``read(n)`` blocks until ``n`` bytes arrive, which on a live stream means waiting
    for the next frame; ``read1`` returns what is already there.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._read1 = getattr(stream, "read1", None)

    def _fill(self) -> bool:
        chunk = self._read1(64 * 1024) if self._read1 is not None else self._stream.read(4096)
        if not chunk:
            return False
        self._buffer += chunk
        return True

    def readline(self, limit: int) -> bytes:
        """Up to and including the next ``\\n``, at most ``limit`` bytes; ``b""`` at the end."""
        while True:
            end = self._buffer.find(b"\n", 0, limit)
            if end >= 0 or len(self._buffer) >= limit or not self._fill():
                size = end + 1 if end >= 0 else min(limit, len(self._buffer))
                line = bytes(self._buffer[:size])
                del self._buffer[:size]
                return line

    def read_exact(self, size: int) -> bytes:
        """Exactly ``size`` bytes; raises ValueError if the stream ends first."""
        while len(self._buffer) < size:
            if not self._fill():
                raise ValueError(f"MJPEG stream ended {size - len(self._buffer)} bytes short of a {size}-byte part")
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


def _readline(reader: _LineReader) -> bytes:
    line = reader.readline(_MAX_HEADER_LINE)
    if not line:
        raise ValueError("MJPEG stream ended before a complete part")
    return line


def _read_until_boundary(reader: _LineReader, boundary: bytes, max_bytes: int) -> bytes:
    data = bytearray()
    while True:
        line = reader.readline(64 * 1024)
        if not line:
            raise ValueError("MJPEG stream ended before the part's closing boundary")
        if line.startswith(b"--") and line.rstrip(b"\r\n").lstrip(b"-") == boundary:
            break
        data += line
        if len(data) > max_bytes:
            raise ValueError(f"MJPEG part exceeds {max_bytes} bytes")
    if data.endswith(b"\r\n"):
        del data[-2:]
    elif data.endswith(b"\n"):
        del data[-1:]
    return bytes(data)


def read_first_part(stream: BinaryIO, content_type: str, max_bytes: int) -> bytes:
    """Return the body of the first complete part of an MJPEG stream.

    Args:
        stream: The response body as a file object (``response.raw``); only what one part needs
            is read, the caller closes the connection afterwards.
        content_type: The response's ``Content-Type``, carrying the boundary.
        max_bytes: Refuse parts larger than this.

    Raises:
        ValueError: No boundary, the stream ended early, or the part is too large.
    """
    boundary = boundary_of(content_type)
    reader = _LineReader(stream)
    for _ in range(_MAX_PREAMBLE_LINES):
        line = _readline(reader).rstrip(b"\r\n")
        if line.lstrip(b"-") == boundary:
            break
    else:
        raise ValueError("no boundary line at the start of the MJPEG stream")
    headers: dict[str, str] = {}
    while True:
        line = _readline(reader).rstrip(b"\r\n")
        if not line:
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length", "")
    if length.isdigit():
        if int(length) > max_bytes:
            raise ValueError(f"MJPEG part of {length} bytes exceeds {max_bytes}")
        return reader.read_exact(int(length))
    return _read_until_boundary(reader, boundary, max_bytes)
