"""Memory taken by an oversized JSON body: peak RSS of the server process before and after.

Starts the API (no processor, no models) with uvicorn on a free port in this process, then sends
``--megabytes`` of JSON whitespace to ``POST /api/v1/tasks/from-link`` over a raw socket, once
with a declared ``Content-Length`` and once chunked, and prints the status line of each answer and
the growth of the process's peak RSS. Run it from the root of the checkout to measure
that checkout:

    python -m bench.body_limit --megabytes 300
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import tempfile
from pathlib import Path

from tests.conftest import isolated_settings
from tests.ops_support import app_for, serve

MIB = 1024 * 1024
ROUTE = b"/api/v1/tasks/from-link"


def send(port: int, megabytes: int, *, chunked: bool) -> str:
    """Send the body (stopping if the server closes the connection); the answer's status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % (megabytes * MIB + 2)
        sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n%s\r\n\r\n"
            % (ROUTE, framing)
        )
        piece = b" " * MIB
        sent = 0
        try:
            for index in range(megabytes + 2):
                data = b"{" if index == 0 else b"}" if index == megabytes + 1 else piece
                sock.sendall(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                sent += len(data)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError as exc:
            print(f"  the server stopped reading after {sent / MIB:.0f} MiB ({exc.strerror})")
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    return answer.split(b"\r\n", 1)[0].decode(errors="replace")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(megabytes: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="tingxie-bench-"))
    app = app_for(isolated_settings(root, root / "models"), role="api")
    async with serve(app) as url:
        port = int(url.rsplit(":", 1)[1])
        for chunked in (False, True):
            before = peak_rss_mib()
            status = await asyncio.to_thread(send, port, megabytes, chunked=chunked)
            print(
                f"{'chunked' if chunked else 'declared'} {megabytes} MiB: {status}; "
                f"peak RSS {before:.0f} -> {peak_rss_mib():.0f} MiB"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--megabytes", type=int, default=300)
    asyncio.run(main(parser.parse_args().megabytes))
