"""``cnnumpy serve [RUNS_DIR]``: the playground, a local web page on the run folders.

    cnnumpy serve runs                  http://127.0.0.1:8000/
    cnnumpy serve runs --port 8080
    cnnumpy serve runs --host 0.0.0.0   (the whole network: a warning says so)

Ctrl+C (or SIGTERM) stops it within a few seconds, event streams open or not: a
training under way is stopped, its last complete epoch kept (the line printed gives
the command that continues it). The exit code after Ctrl+C is 130, as for every
``cnnumpy`` command interrupted; SIGTERM ends the process as that signal does.

Starlette and uvicorn are imported only when this command runs (``pip install
cnnumpy[serve]``).
"""

from __future__ import annotations

import errno
import importlib.util
import ipaddress
import socket
import sys
from pathlib import Path

from cnnumpy.cli.runs import UsageError

SERVER_MODULES = ("starlette", "uvicorn", "PIL")
INTERRUPTED = 130  # cnnumpy.cli.main's exit code for Ctrl+C
ANY_ADDRESS = ("0.0.0.0", "::")  # every interface of the machine


def serve(args) -> int:
    """Serve the playground for ``args.runs_dir`` until Ctrl+C."""
    _check_installed()
    folder = Path(args.runs_dir)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file, not a folder of runs")
    if not folder.exists():
        folder.mkdir(parents=True)
        print(f"created {folder}: the Train page writes its runs there")
    if not is_loopback(args.host):
        print(
            f"cnnumpy: warning: listening on {args.host}: anyone who can reach this "
            "machine can use the playground, and start trainings on it; "
            "--host 127.0.0.1 keeps it to this machine",
            file=sys.stderr,
        )
    check_port(args.host, args.port)
    from cnnumpy.serve import serve as run_server

    print(f"cnnumpy playground: {url(args.host, args.port)} (runs: {folder}; "
          "Ctrl+C stops)", flush=True)  # fmt: skip
    if args.host in ANY_ADDRESS:
        for address in network_addresses():
            print(f"  from other machines: {url(address, args.port)}", flush=True)
    try:
        run_server(folder, host=args.host, port=args.port)
    except KeyboardInterrupt:  # raised again by uvicorn once the server is down
        print("cnnumpy playground: stopped", file=sys.stderr)
        return INTERRUPTED
    return 0


def _check_installed() -> None:
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        names = ", ".join("pillow" if m == "PIL" else m for m in missing)
        raise UsageError(f"cnnumpy serve needs {names}: pip install cnnumpy[serve]")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and the loopback addresses (127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any address
        return False


def network_addresses() -> list[str]:
    """This machine's addresses that other machines may reach it by (the class's
    projector shows them): the address of the interface the default route leaves by,
    and those the host name resolves to, loopback ones left out.

    The route is found by "connecting" a UDP socket, which sends nothing.
    """
    found = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never reached
            found.append(probe.getsockname()[0])
    except OSError:  # no route: no network
        pass
    try:
        found += socket.gethostbyname_ex(socket.gethostname())[2]
    except OSError:
        pass
    return [a for a in dict.fromkeys(found) if not is_loopback(a) and a != "0.0.0.0"]


def url(host: str, port: int) -> str:
    """``http://HOST:PORT/``; an IPv6 address in brackets; the any-address shown as
    this machine's loopback name, which a browser can open."""
    if host in ANY_ADDRESS:
        host = "localhost"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def check_port(host: str, port: int) -> None:
    """Refuse, in one line, an address that cannot be listened on (a port another
    server holds, an address not of this machine) before the server starts."""
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.create_server((address, port), family=family):
            pass
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} on {host} is in use (another server?): "
                f"try --port {port + 1 if port < 65535 else 8000}"
            ) from None
        raise UsageError(f"cannot listen on {host} port {port}: {exc}") from None
