"""A deadline for a whole HTTP request: connecting, status line, headers and body.

``urlopen(timeout=t)`` bounds each socket operation, not their sum: a server that
sends its status line one byte every ``t - 1`` seconds never trips it, and the
request waits for ever inside ``urlopen``, before the caller has read anything.

``Watchdog`` closes that gap. Its ``opener()`` records the socket of every
connection it makes, as soon as the socket exists; a background thread waits for the
deadline and then shuts them all down. The read that was blocked returns at once
(end of file, or a connection error), and the caller, seeing ``watchdog.expired``,
reports the download as too slow::

    with Watchdog(deadline) as watchdog:
        with watchdog.opener().open(request, timeout=timeout) as response:
            ...

The sockets are kept, not reached through the connection: for a response that ends
the connection, urllib sets ``connection.sock`` to None while the response still
reads from the socket.
"""

from __future__ import annotations

import socket
import threading
import urllib.request


class Watchdog:
    """Shuts down the sockets of this opener's connections once ``deadline``
    seconds have passed since ``__enter__``."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.expired = False
        self._sockets = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="cnnumpy-download-deadline", daemon=True
        )

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def opener(self) -> urllib.request.OpenerDirector:
        """An opener like ``urlopen``'s whose HTTP(S) connections are watched."""
        return urllib.request.build_opener(_WatchedHTTP(self), _WatchedHTTPS(self))

    def watch(self, http_class):
        """``http_class`` (``http.client.HTTPConnection`` or a subclass), with the
        sockets of each connection it makes recorded."""

        def make(*args, **kwargs):
            connection = http_class(*args, **kwargs)
            self._watch_connection(connection)
            return connection

        return make

    def _watch_connection(self, connection) -> None:
        """Record the TCP socket as soon as it is made (so a TLS handshake is
        watched too), and ``connection.sock`` once connected (TLS wraps the TCP
        socket in a new object)."""
        create, connect = connection._create_connection, connection.connect

        def create_watched(*args, **kwargs):
            return self._add(create(*args, **kwargs))

        def connect_watched():
            connect()
            self._add(connection.sock)

        connection._create_connection = create_watched
        connection.connect = connect_watched

    def _add(self, sock):
        with self._lock:
            self._sockets.append(sock)
            late = self.expired
        if late:  # made after the deadline: shut at once
            _shut(sock)
        return sock

    def _run(self) -> None:
        if self._stop.wait(self.deadline):
            return  # finished in time
        with self._lock:  # from here on _add shuts new sockets itself
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock) -> None:
    """End the connection: a read blocked on ``sock`` returns at once."""
    try:
        # The plain socket's shutdown, also for TLS: the TLS layer then reads an
        # end of file (an OSError) instead of finding itself unwrapped.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class _WatchedHTTP(urllib.request.HTTPHandler):
    def __init__(self, watchdog: Watchdog):
        super().__init__()
        self.watchdog = watchdog

    def do_open(self, http_class, req, **http_conn_args):
        return super().do_open(self.watchdog.watch(http_class), req, **http_conn_args)


class _WatchedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, watchdog: Watchdog):
        super().__init__()
        self.watchdog = watchdog

    def do_open(self, http_class, req, **http_conn_args):
        return super().do_open(self.watchdog.watch(http_class), req, **http_conn_args)
