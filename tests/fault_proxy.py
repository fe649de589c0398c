#!/usr/bin/python3
"""fault_proxy.py - a fault-injecting HTTP/1.1 reverse proxy for the tests.

Sits between a client (upload-blob, Microsoft's SDK) and Azurite and
forwards request by request, keeping client connections alive (one upstream
connection per client connection).  Requests carry Content-Length bodies
(chunked request bodies are refused with 411; Azurite refuses them too);
responses may be Content-Length, chunked or read-to-close.  Loopback only.

Used two ways:

  * as a module:

        from fault_proxy import FaultProxy
        p = FaultProxy(upstream_port=azurite_port).start()
        cs = p.connection_string()              # BlobEndpoint at the proxy
        p.add_fault(kind="put_block", action="status", status=503, count=2)
        p.outage(10)                            # everything 503 for 10 s
        p.stats(); p.clear(); p.stop()

  * as a program:  fault_proxy.py --upstream 127.0.0.1:10000 [--port 0]
    prints "listening 127.0.0.1:PORT" and is driven over HTTP on the same
    port through the control path, which never reaches the upstream:

        POST   /__fault__   JSON body, one of
                              {"add": FAULT or [FAULT, ...]}   -> {"ids": [...]}
                              {"set": [FAULT, ...]}            (replace all)
                              {"clear": true[, "stats": true]} (faults; and stats)
                              FAULT                            (same as add)
        GET    /__fault__   -> the stats object (below), JSON
        DELETE /__fault__   -> clear the faults (?stats=1: the stats too)

Request kinds (from method and query):

    put_block         PUT  ?comp=block
    put_block_list    PUT  ?comp=blocklist
    list              GET  ?comp=list          (containers or blobs)
    delete            DELETE                   (blob or container)
    get               GET  of a blob (no restype, no comp)
    head              HEAD of anything
    create_container  PUT  ?restype=container  (no comp)
    put_blob          PUT  with no comp and no restype
    other             anything else (GET container properties, comp=metadata, ...)

A FAULT is a JSON object:

    kind        a kind above, "any" (default), or a list of kinds
    path        optional substring the request path must contain
    action      "status"       answer with `status` (default 503) instead of
                               forwarding (the request body is read first)
                "reset_before" reset the connection after reading the request
                               head, before any of the body; nothing forwarded
                "reset_mid_body" read part of the body (`after_bytes`, default
                               half of it, at most 64 KiB), then reset;
                               nothing forwarded
                "reset_after"  forward the request, read the upstream's whole
                               answer, then reset instead of answering (the
                               upstream applied it, the client never hears)
                "delay"        forward, then hold the answer `delay` seconds
                               before sending it
                "refuse"       close the connection as soon as it is accepted
                               (with kind "any" only; for outages)
    status      HTTP status for "status" (503, 500, 429, ...)
    headers     extra response headers for "status", e.g.
                {"Retry-After": "1"} or {"x-ms-retry-after-ms": "2500"}
    error_code  x-ms-error-code / <Code> for "status" (a sensible default
                per status: ServerBusy, InternalError, ...)
    delay       seconds, for "delay"
    count       how many matching requests it fires on (default 1;
                0 or null: unlimited while active)
    nth         fire only on the nth matching request seen since the fault
                was installed (1-based); then the fault is spent
    duration    seconds from installation during which the fault is active
                (null: until cleared or spent) - an outage is
                {"kind": "any", "action": "status", "status": 503,
                 "count": 0, "duration": 10}
    after_bytes for "reset_mid_body": body bytes read before the reset

Faults are tried in installation order; every active fault whose kind and
path match counts the request as "seen" (for nth); the first that decides
to fire handles it.  A fault that fired `count` times, or its nth, or
whose duration passed, is spent and removed.

Stats (stats() / GET /__fault__):

    {"requests":  {kind: n}        every request received, faulted or not,
     "forwarded": {kind: n}        sent to the upstream,
     "statuses":  {kind: {"201": n}}  answers the client got (injected too),
     "faults_fired": n,
     "fired": [{"id", "kind", "action", "method", "path", "query", "t"}],
     "faults": [active faults, with "fired" and "seen"],
     "connections": n accepted,
     "log": [{"t", "method", "kind", "path", "query", "outcome", "status",
              "fault", "conn"}]}
        t: seconds since the proxy started (when the request head arrived);
        outcome: "forwarded", an action name, "upstream_error"; status: what
        the client got (null when it got nothing); fault: the id that
        fired; conn: the client connection's number; for reset_after also
        upstream_status (what the upstream answered).  The last 20000.
"""

import argparse
import copy
import http.client
import json
import socket
import struct
import sys
import threading
import time
import urllib.parse

CONTROL_PATH = "/__fault__"
KINDS = ("put_block", "put_block_list", "list", "delete", "get", "head",
         "create_container", "put_blob", "other")
ACTIONS = ("status", "reset_before", "reset_mid_body", "reset_after", "delay",
           "refuse")
DEFAULT_ERROR_CODES = {
    500: "InternalError", 502: "BadGateway", 503: "ServerBusy",
    504: "GatewayTimeout", 408: "OperationTimedOut", 429: "TooManyRequests",
    403: "AuthenticationFailed", 404: "ResourceNotFound", 409: "Conflict",
}
MAX_HEAD = 64 * 1024
LOG_MAX = 20000
IO_TIMEOUT = 300.0


class _Reset(Exception):
    """The connection to the client is to be (or was) dropped."""


class _NoAnswer(ValueError):
    """The upstream closed the connection before any byte of an answer."""


def _peer_closed(sock):
    """True when a kept-alive socket has been closed by its peer."""
    import select
    try:
        r, _w, _x = select.select([sock], [], [], 0)
        if not r:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def classify(method, target):
    """Request kind of METHOD TARGET (TARGET = path?query)."""
    parts = urllib.parse.urlsplit(target)
    q = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    comp = (q.get("comp") or [""])[0].lower()
    restype = (q.get("restype") or [""])[0].lower()
    method = method.upper()
    if method == "DELETE":
        return "delete"
    if method == "HEAD":
        return "head"
    if method == "PUT":
        if comp == "block":
            return "put_block"
        if comp == "blocklist":
            return "put_block_list"
        if restype == "container" and not comp:
            return "create_container"
        if not comp and not restype:
            return "put_blob"
        return "other"
    if method == "GET":
        if comp == "list":
            return "list"
        if not comp and not restype:
            return "get"
        return "other"
    return "other"


def _reset_socket(sock):
    """Close with RST (SO_LINGER 0) instead of FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Fault:
    _next_id = 1
    _id_lock = threading.Lock()

    def __init__(self, spec, now):
        if not isinstance(spec, dict):
            raise ValueError("a fault is a JSON object, not %r" % (spec,))
        unknown = set(spec) - {"kind", "path", "action", "status", "headers",
                               "error_code", "delay", "count", "nth", "duration",
                               "after_bytes", "id"}
        if unknown:
            raise ValueError("unknown fault keys: %s" % ", ".join(sorted(unknown)))
        kind = spec.get("kind", "any")
        kinds = [kind] if isinstance(kind, str) else list(kind)
        for k in kinds:
            if k != "any" and k not in KINDS:
                raise ValueError("unknown request kind %r (kinds: any, %s)" % (k, ", ".join(KINDS)))
        self.kinds = kinds
        self.path = spec.get("path")
        self.action = spec.get("action", "status")
        if self.action not in ACTIONS:
            raise ValueError("unknown action %r (actions: %s)" % (self.action, ", ".join(ACTIONS)))
        self.status = int(spec.get("status", 503))
        self.headers = dict(spec.get("headers") or {})
        self.error_code = spec.get("error_code") or DEFAULT_ERROR_CODES.get(self.status, "Error")
        self.delay = float(spec.get("delay", 0) or 0)
        self.count = spec.get("count", 1)
        self.count = int(self.count) if self.count else 0
        self.nth = int(spec["nth"]) if spec.get("nth") else None
        duration = spec.get("duration")
        self.until = (now + float(duration)) if duration is not None else None
        self.after_bytes = spec.get("after_bytes")
        with _Fault._id_lock:
            self.id = _Fault._next_id
            _Fault._next_id += 1
        self.spec = dict(spec)
        self.fired = 0
        self.seen = 0

    def active(self, now):
        if self.until is not None and now >= self.until:
            return False
        if self.nth is not None:
            return self.seen < self.nth
        return self.count == 0 or self.fired < self.count

    def matches(self, kind, path):
        if "any" not in self.kinds and kind not in self.kinds:
            return False
        if self.path and self.path not in path:
            return False
        return True

    def describe(self):
        d = dict(self.spec)
        d.update({"id": self.id, "fired": self.fired, "seen": self.seen})
        return d


class FaultProxy:
    """The proxy.  start() returns self; .port is the port it listens on."""

    def __init__(self, upstream_port, upstream_host="127.0.0.1", port=0,
                 host="127.0.0.1"):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fault proxy listens on loopback only")
        self.upstream = (upstream_host, int(upstream_port))
        self.host = "127.0.0.1" if host == "localhost" else host
        self.want_port = port
        self.port = None
        self._lock = threading.Lock()
        self._faults = []
        self._lsock = None
        self._stopping = threading.Event()
        self._conns = set()
        self._threads = []
        self._t0 = time.monotonic()
        self._reset_stats_locked()

    # ---------------------------------------------------------------- life
    def start(self):
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.want_port))
        s.listen(128)
        s.settimeout(0.2)
        self._lsock = s
        self.port = s.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name="fault-proxy-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stopping.set()
        if self._lsock is not None:
            try:
                self._lsock.close()
            except OSError:
                pass
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(2)
        self._lsock = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def connection_string(self, account="devstoreaccount1", key=None):
        """An explicit connection string whose BlobEndpoint is the proxy."""
        if key is None:
            key = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
                   "K1SZFPTOtr/KBHBeksoGMGw==")
        return ("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;"
                "BlobEndpoint=http://%s:%d/%s;" % (account, key, self.host, self.port, account))

    # -------------------------------------------------------------- faults
    def add_fault(self, **spec):
        """Install one fault (keywords as in the module doc); returns its id."""
        return self.add_faults([spec])[0]

    def add_faults(self, specs):
        now = time.monotonic()
        faults = [_Fault(s, now) for s in specs]
        with self._lock:
            self._faults.extend(faults)
        return [f.id for f in faults]

    def set_faults(self, specs):
        """Replace every installed fault with specs (a list of dicts)."""
        now = time.monotonic()
        faults = [_Fault(s, now) for s in specs]
        with self._lock:
            self._faults = faults
        return [f.id for f in faults]

    def outage(self, seconds=None, mode="503", kind="any"):
        """Every request fails for `seconds` from now (None: until cleared).
        mode: "503" / "500" / "429" (a status), "reset" (reset before
        forwarding) or "refuse" (close connections as they are accepted)."""
        if mode in ("reset", "reset_before"):
            spec = {"action": "reset_before"}
        elif mode == "refuse":
            spec = {"action": "refuse"}
        else:
            spec = {"action": "status", "status": int(mode)}
        spec.update({"kind": kind, "count": 0, "duration": seconds})
        return self.add_fault(**spec)

    def clear(self, stats=False):
        """Remove every fault (and with stats=True reset the counters)."""
        with self._lock:
            self._faults = []
            if stats:
                self._reset_stats_locked()

    def reset_stats(self):
        with self._lock:
            self._reset_stats_locked()

    def _reset_stats_locked(self):
        self._stats = {"requests": {}, "forwarded": {}, "statuses": {},
                       "faults_fired": 0, "fired": [], "connections": 0}
        self._log = []

    def stats(self, log=True):
        """A deep copy of the counters (see the module doc)."""
        with self._lock:
            st = copy.deepcopy(self._stats)
            now = time.monotonic()
            st["faults"] = [f.describe() for f in self._faults if f.active(now)]
            if log:
                st["log"] = copy.deepcopy(self._log)
        return st

    def now(self):
        """Seconds since the proxy started, the clock of stats' "t"."""
        return time.monotonic() - self._t0

    def wait_fired(self, n=1, timeout=30.0):
        """Wait until faults_fired >= n; returns the stats (raises
        TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats(log=False)
            if st["faults_fired"] >= n:
                return st
            if time.monotonic() > deadline:
                raise TimeoutError("%d fault(s) fired, wanted %d: %r"
                                   % (st["faults_fired"], n, st))
            time.sleep(0.02)

    def _pick_fault(self, kind, path):
        now = time.monotonic()
        with self._lock:
            chosen = None
            for f in self._faults:
                if not f.active(now) or not f.matches(kind, path):
                    continue
                f.seen += 1
                if chosen is not None:
                    continue
                if f.nth is not None and f.seen != f.nth:
                    continue
                f.fired += 1
                chosen = f
            self._faults = [f for f in self._faults if f.active(now)]
            return chosen

    def _refuse_fault(self):
        now = time.monotonic()
        with self._lock:
            for f in self._faults:
                if f.active(now) and f.action == "refuse":
                    f.seen += 1
                    f.fired += 1
                    self._stats["faults_fired"] += 1
                    self._stats["fired"].append({"id": f.id, "kind": None, "action": "refuse",
                                                 "method": None, "path": None, "query": None,
                                                 "t": round(self.now(), 3)})
                    return True
        return False

    # --------------------------------------------------------------- stats
    def _count(self, field, kind, status=None):
        with self._lock:
            if field == "statuses":
                d = self._stats["statuses"].setdefault(kind, {})
                d[str(status)] = d.get(str(status), 0) + 1
            else:
                self._stats[field][kind] = self._stats[field].get(kind, 0) + 1

    def _record_fired(self, entry, fault):
        # Counted before the fault acts: a client that sees the reset may
        # ask for the stats before this thread gets to run again.
        with self._lock:
            self._stats["faults_fired"] += 1
            self._stats["fired"].append({
                "id": fault.id, "kind": entry["kind"], "action": fault.action,
                "method": entry["method"], "path": entry["path"],
                "query": entry["query"], "t": entry["t"]})

    def _record(self, entry):
        with self._lock:
            self._log.append(entry)
            if len(self._log) > LOG_MAX:
                del self._log[:len(self._log) - LOG_MAX]

    # ------------------------------------------------------------- serving
    def _accept_loop(self):
        while not self._stopping.is_set():
            try:
                c, _addr = self._lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            with self._lock:
                self._stats["connections"] += 1
                conn_id = self._stats["connections"]
            if self._refuse_fault():
                _reset_socket(c)
                continue
            c.settimeout(IO_TIMEOUT)
            with self._lock:
                self._conns.add(c)
            t = threading.Thread(target=self._serve, args=(c, conn_id), name="fault-proxy-conn",
                                 daemon=True)
            t.start()
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)

    def _serve(self, client, conn_id):
        conn = {"up": None, "id": conn_id}   # this client's upstream connection
        buf = bytearray()
        try:
            while not self._stopping.is_set():
                head = _read_head(client, buf)
                if head is None:
                    break
                if not self._one_request(client, buf, head, conn):
                    break
        except (_Reset, OSError, ValueError):
            pass
        finally:
            with self._lock:
                self._conns.discard(client)
            try:
                client.close()
            except OSError:
                pass
            if conn["up"] is not None:
                try:
                    conn["up"].close()
                except OSError:
                    pass

    def _one_request(self, client, buf, head, conn):
        """Handle one request; returns whether to keep the connection."""
        request_line, headers = _parse_head(head)
        try:
            method, target, version = request_line.split(" ", 2)
        except ValueError:
            _send_simple(client, 400, b"bad request line\n", close=True)
            return False
        hmap = _header_map(headers)
        if "chunked" in hmap.get("transfer-encoding", "").lower():
            _send_simple(client, 411, b"chunked request bodies are not supported\n", close=True)
            return False
        length = int(hmap.get("content-length", "0") or 0)
        client_close = (hmap.get("connection", "").lower() == "close" or
                        version.upper() == "HTTP/1.0")
        path = urllib.parse.urlsplit(target).path
        query = urllib.parse.urlsplit(target).query

        if path == CONTROL_PATH or path.startswith(CONTROL_PATH + "/"):
            body = _read_exact(client, buf, length)
            self._control(client, method, target, body)
            return not client_close

        if hmap.get("expect", "").lower() == "100-continue":
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            headers = [(k, v) for k, v in headers if k.lower() != "expect"]

        kind = classify(method, target)
        entry = {"t": round(self.now(), 3), "method": method, "kind": kind, "path": path,
                 "query": query, "outcome": None, "status": None, "fault": None,
                 "conn": conn["id"]}
        self._count("requests", kind)
        fault = self._pick_fault(kind, path)
        if fault is not None:
            entry["fault"] = fault.id
            entry["outcome"] = fault.action
            self._record_fired(entry, fault)
        # Logged now, filled in as it goes (the log shares the dict): a
        # client that sees a reset may read the log before this thread ends.
        self._record(entry)
        return self._handle(client, buf, method, target, headers, length, kind,
                            fault, entry, conn, client_close)

    def _handle(self, client, buf, method, target, headers, length, kind, fault, entry,
                conn, client_close):
        action = fault.action if fault is not None else None
        if action == "reset_before":
            _reset_socket(client)
            raise _Reset()
        if action == "reset_mid_body":
            n = fault.after_bytes
            n = min(length // 2, 64 * 1024) if n is None else min(int(n), length)
            _read_exact(client, buf, n)
            _reset_socket(client)
            raise _Reset()
        body = _read_exact(client, buf, length)
        if action == "status":
            self._count("statuses", kind, fault.status)
            entry["status"] = fault.status
            _send_error(client, fault, method)
            return not client_close

        # Forward.  A kept-alive upstream connection may have been closed
        # by the upstream while idle: check first, and if it still fails
        # before any byte of an answer came back, try once on a fresh one.
        out = [("%s %s HTTP/1.1" % (method, target)).encode("latin-1")]
        for k, v in headers:
            out.append(("%s: %s" % (k, v)).encode("latin-1"))
        wire = b"\r\n".join(out) + b"\r\n\r\n" + body
        if conn["up"] is not None and _peer_closed(conn["up"]):
            conn["up"].close()
            conn["up"] = None
        for attempt in (0, 1):
            reused = conn["up"] is not None
            if conn["up"] is None:
                try:
                    conn["up"] = socket.create_connection(self.upstream, timeout=IO_TIMEOUT)
                except OSError:
                    entry["outcome"] = entry["outcome"] or "upstream_unreachable"
                    _reset_socket(client)
                    raise _Reset()
            up = conn["up"]
            upbuf = bytearray()
            try:
                try:
                    up.sendall(wire)
                except OSError as e:
                    raise _NoAnswer("sending to the upstream: %s" % e)
                raw, status, up_close = _read_response(up, upbuf, method)
                break
            except (OSError, ValueError) as e:
                up.close()
                conn["up"] = None
                if reused and attempt == 0 and isinstance(e, _NoAnswer):
                    continue
                # The upstream broke mid-answer: the client sees a reset.
                entry["outcome"] = entry["outcome"] or "upstream_error"
                _reset_socket(client)
                raise _Reset()
        self._count("forwarded", kind)
        entry["status"] = status
        if entry["outcome"] is None:
            entry["outcome"] = "forwarded"
        if up_close:
            up.close()
            conn["up"] = None
        if action == "reset_after":
            with self._lock:      # a new key: not while stats() copies the log
                entry["upstream_status"] = status
            entry["status"] = None
            _reset_socket(client)
            raise _Reset()
        if action == "delay" and fault.delay > 0:
            if self._stopping.wait(fault.delay):
                raise _Reset()
        self._count("statuses", kind, status)
        client.sendall(raw)
        return not (client_close or up_close)

    def _control(self, client, method, target, body):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)
        try:
            if method == "GET":
                reply = self.stats(log="nolog" not in query)
            elif method == "DELETE":
                self.clear(stats=bool(query.get("stats")))
                reply = {"ok": True}
            elif method in ("POST", "PUT"):
                req = json.loads(body.decode("utf-8") or "{}")
                if isinstance(req, dict) and "clear" in req:
                    self.clear(stats=bool(req.get("stats")))
                    reply = {"ok": True}
                elif isinstance(req, dict) and "set" in req:
                    reply = {"ok": True, "ids": self.set_faults(req["set"])}
                elif isinstance(req, dict) and "add" in req:
                    add = req["add"]
                    reply = {"ok": True, "ids": self.add_faults(add if isinstance(add, list) else [add])}
                elif isinstance(req, list):
                    reply = {"ok": True, "ids": self.add_faults(req)}
                else:
                    reply = {"ok": True, "ids": self.add_faults([req])}
            else:
                _send_simple(client, 405, b'{"error": "method not allowed"}\n', ctype="application/json")
                return
        except (ValueError, TypeError, KeyError) as e:
            _send_simple(client, 400, json.dumps({"error": str(e)}).encode() + b"\n",
                         ctype="application/json")
            return
        _send_simple(client, 200, json.dumps(reply).encode() + b"\n", ctype="application/json")


# ------------------------------------------------------------------ HTTP I/O

def _recv_more(sock, buf):
    data = sock.recv(65536)
    if not data:
        return False
    buf.extend(data)
    return True


def _read_head(sock, buf):
    """Bytes of one message head (without the blank line), consumed from
    buf; None on a clean EOF before any byte."""
    while True:
        i = buf.find(b"\r\n\r\n")
        if i >= 0:
            head = bytes(buf[:i])
            del buf[:i + 4]
            # tolerate stray CRLFs between keep-alive requests
            return head.lstrip(b"\r\n") if head.strip() else _read_head(sock, buf)
        if len(buf) > MAX_HEAD:
            raise ValueError("message head too long")
        if not _recv_more(sock, buf):
            if buf.strip():
                raise ValueError("EOF inside a message head")
            return None


def _parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and headers:
            k, v = headers[-1]
            headers[-1] = (k, v + " " + line.strip())
            continue
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    return lines[0], headers


def _header_map(headers):
    return {k.lower(): v for k, v in headers}


def _read_exact(sock, buf, n):
    while len(buf) < n:
        if not _recv_more(sock, buf):
            raise _Reset()
    data = bytes(buf[:n])
    del buf[:n]
    return data


def _read_line(sock, buf):
    while True:
        i = buf.find(b"\r\n")
        if i >= 0:
            line = bytes(buf[:i])
            del buf[:i + 2]
            return line
        if len(buf) > MAX_HEAD:
            raise ValueError("line too long")
        if not _recv_more(sock, buf):
            raise ValueError("EOF inside a line")


def _read_response(sock, buf, method):
    """One whole response from the upstream: (raw bytes, status, close?)."""
    while True:
        try:
            head = _read_head(sock, buf)
        except OSError as e:
            if not buf:
                raise _NoAnswer("upstream: %s" % e)
            raise
        if head is None:
            raise _NoAnswer("upstream closed without an answer")
        status_line, headers = _parse_head(head)
        parts = status_line.split(" ", 2)
        status = int(parts[1])
        if 100 <= status < 200 and status != 101:
            continue              # interim answers are not passed on
        break
    hmap = _header_map(headers)
    raw = bytearray(head + b"\r\n\r\n")
    close = hmap.get("connection", "").lower() == "close" or parts[0].upper() == "HTTP/1.0"
    if method.upper() == "HEAD" or status in (204, 304):
        return bytes(raw), status, close
    te = hmap.get("transfer-encoding", "").lower()
    if "chunked" in te:
        while True:
            line = _read_line(sock, buf)
            raw += line + b"\r\n"
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:               # trailers, then the blank line
                    t = _read_line(sock, buf)
                    raw += t + b"\r\n"
                    if not t:
                        break
                break
            raw += _read_exact_up(sock, buf, size + 2)
        return bytes(raw), status, close
    if "content-length" in hmap:
        raw += _read_exact_up(sock, buf, int(hmap["content-length"]))
        return bytes(raw), status, close
    # No framing: the body runs to the end of the connection.
    while _recv_more(sock, buf):
        pass
    raw += buf
    del buf[:]
    return bytes(raw), status, True


def _read_exact_up(sock, buf, n):
    while len(buf) < n:
        if not _recv_more(sock, buf):
            raise ValueError("upstream closed inside a body")
    data = bytes(buf[:n])
    del buf[:n]
    return data


def _send_simple(sock, status, body, ctype="text/plain", close=False):
    reason = http.client.responses.get(status, "Status")
    head = ["HTTP/1.1 %d %s" % (status, reason),
            "Content-Type: %s" % ctype,
            "Content-Length: %d" % len(body),
            "Connection: %s" % ("close" if close else "keep-alive")]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)


def _send_error(sock, fault, method):
    status = fault.status
    reason = http.client.responses.get(status, "Error")
    code = fault.error_code
    body = ('<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code>'
            '<Message>injected by fault_proxy.py (fault %d)</Message></Error>'
            % (code, fault.id)).encode()
    if method.upper() == "HEAD":
        payload = b""
    else:
        payload = body
    head = ["HTTP/1.1 %d %s" % (status, reason),
            "Content-Type: application/xml",
            "Content-Length: %d" % len(body if method.upper() != "HEAD" else b""),
            "x-ms-error-code: %s" % code,
            "x-ms-request-id: fault-proxy-%d" % fault.id,
            "x-ms-version: 2021-12-02",
            "Connection: keep-alive"]
    for k, v in fault.headers.items():
        head.append("%s: %s" % (k, v))
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)


# ------------------------------------------------------------------ control

def control(port, body=None, method=None, host="127.0.0.1", timeout=10):
    """Drive a proxy in another process: POST body (JSON) to /__fault__, or
    GET the stats when body is None; returns the decoded JSON answer."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        if method is None:
            method = "GET" if body is None else "POST"
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, CONTROL_PATH, body=data, headers=hdrs)
        resp = conn.getresponse()
        text = resp.read()
        if resp.status != 200:
            raise RuntimeError("fault proxy control: HTTP %d %s" % (resp.status, text[:200]))
        return json.loads(text)
    finally:
        conn.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description="fault-injecting HTTP/1.1 proxy (tests only)")
    ap.add_argument("--upstream", required=True, help="HOST:PORT to forward to (loopback)")
    ap.add_argument("--port", type=int, default=0, help="port to listen on (0: any)")
    args = ap.parse_args(argv)
    uh, _, up = args.upstream.rpartition(":")
    proxy = FaultProxy(upstream_port=int(up), upstream_host=uh or "127.0.0.1",
                       port=args.port).start()
    sys.stdout.write("listening 127.0.0.1:%d\n" % proxy.port)
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    main()
