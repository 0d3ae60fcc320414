"""The API's listening sockets, bound before `gitopsd serve` opens its store or starts work.

Binding inside uvicorn happens only once the server starts, after the daemon has begun
applying: a taken port then failed mid-run and left a run `running`. Bound first, the same
mistake stops the command with one line naming the setting to change, and nothing begun.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from gitopsd.errors import GitopsdError


class ListenError(GitopsdError):
    """The listen address cannot be bound: taken by another process, not an address of this
    host, or a port the user may not open."""


def listen(host: str, port: int) -> list[socket.socket]:
    """Sockets listening on every address `host` resolves to (`localhost`: IPv4 and IPv6), as
    uvicorn would bind them itself; the first failure closes the others and says which
    setting picks another address."""
    bound: list[socket.socket] = []
    try:
        for family, address in _addresses(host, port):
            bound.append(socket.create_server(address, family=family))
    except OSError as error:
        for sock in bound:
            sock.close()
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise ListenError(
            f"cannot listen on {shown}: {_reason(error)};"
            " choose another address with --listen HOST:PORT or GITOPSD_LISTEN"
        ) from None
    return bound


def _addresses(host: str, port: int) -> list[tuple[socket.AddressFamily, tuple[Any, ...]]]:
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return list(dict.fromkeys((family, address) for family, _, _, _, address in found))


def _reason(error: OSError) -> str:
    """The system's words for the failure, without the address that create_server appends
    (a name that does not resolve has a negative errno: its own message says it)."""
    if isinstance(error, socket.gaierror) or not error.errno:
        return str(error.strerror or error)
    return os.strerror(error.errno)
