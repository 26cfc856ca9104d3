"""A loopback HTTP file server with ``Range`` support, for tests/test_stac.py.

``python range_server.py ROOT LOG``: serves the folder ROOT on 127.0.0.1 at a free port
(printed on the first line of stdout), answers ``HEAD`` (with ``ETag`` and
``Last-Modified``) and ``GET`` with a single ``Range: bytes=a-b`` (206; without a
``Range`` header, the whole file), and appends each request to LOG as a JSON line
``[method, path, first byte, length]``. Python's ``SimpleHTTPRequestHandler`` ignores
``Range``, which a COG reader needs. Runs until terminated.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_LOCK = threading.Lock()


class RangeHandler(SimpleHTTPRequestHandler):
    """GET with a single byte range, HEAD with ETag; logs every request to ``log_file``."""

    log_file: Path

    def log_message(self, *args: object) -> None:  # the JSON log is enough
        pass

    def _log(self, method: str, start: int, length: int) -> None:
        with _LOCK, self.log_file.open("a") as fh:
            fh.write(json.dumps([method, self.path, start, length]) + "\n")

    def _file(self) -> Path | None:
        path = Path(self.translate_path(self.path))
        return path if path.is_file() else None

    def _headers(self, path: Path, code: int, length: int) -> None:
        st = path.stat()
        self.send_response(code)
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{st.st_size:x}-{st.st_mtime_ns:x}"')
        self.send_header("Last-Modified", self.date_time_string(int(st.st_mtime)))

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        path = self._file()
        self._log("HEAD", 0, 0)
        if path is None:
            self.send_error(404)
            return
        self._headers(path, 200, path.stat().st_size)
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        path = self._file()
        if path is None:
            self._log("GET", 0, 0)
            self.send_error(404)
            return
        size = path.stat().st_size
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        start, end = (0, size - 1) if m is None else (int(m[1]), int(m[2] or size - 1))
        end = min(end, size - 1)
        self._log("GET", start, end - start + 1)
        self._headers(path, 200 if m is None else 206, end - start + 1)
        if m is not None:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        with path.open("rb") as fh:
            fh.seek(start)
            self.wfile.write(fh.read(end - start + 1))


def main(root: str, log_file: str) -> None:
    """Serve ``root`` until terminated; print the port first."""
    handler = type("Handler", (RangeHandler,), {"log_file": Path(log_file)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=root))
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
