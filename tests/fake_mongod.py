#!/usr/bin/python3
"""fake_mongod.py - a small in-memory server that speaks the MongoDB wire protocol.

Debian 12 packages no mongod, so the test suite runs the export/restore
children (libmongoc 1.23) and the pymongo fixtures against this fake.  It is
NOT a database: it implements just what mongo-azure-backup and its tests use,
with mongod's reply shapes and error codes.

What it implements
  * Wire protocol: OP_QUERY (legacy isMaster/hello handshake on DB.$cmd,
    answered with OP_REPLY) and OP_MSG (flagBits, kind 0 body, kind 1 document
    sequences, optional CRC-32C checksum which is skipped, moreToCome requests
    get no reply).  No compression is offered.
  * A standalone server reporting wire versions 0..17 ("6.0.0"), helloOk,
    logical sessions and a topologyVersion; awaitable hello (topologyVersion +
    maxAwaitTimeMS) waits like mongod before answering, so pooled libmongoc
    monitors stream without spinning (mongoc_client_pool_destroy then takes
    ~0.5 s, as against mongod; --no-topology-version makes pools poll instead
    and return at once).
  * In-memory store: database -> collection -> raw BSON documents in
    insertion order.  Documents are stored and served as the exact bytes the
    client sent (mongod's only rewrites are copied: a missing _id is added as
    an ObjectId and an _id that is not the first field is moved to the front).
    Each collection has a uuid (listCollections info.uuid, binary subtype 4),
    options and index specs; _id is unique (E11000, code 11000) and so is any
    index created with unique:true on top-level/dotted fields.
  * Commands: hello/isMaster/ismaster, ping, buildInfo, getParameter,
    getCmdLineOpts, serverStatus, whatsmyuri, connectionStatus,
    replSetGetStatus (standalone error), listDatabases, listCollections,
    create, drop, dropDatabase, count, aggregate ($match/$skip/$limit/$count/
    $group with constant _id and $sum), insert, delete, createIndexes,
    listIndexes, dropIndexes, find, getMore, killCursors, endSessions,
    collStats (size: the sum of the stored documents' BSON sizes, as mongod
    reports it; a missing collection is NamespaceNotFound), dbStats.
    Filters: equality, $eq $ne $gt $gte $lt $lte $in $nin $exists $and $or
    $nor.  find honours skip, limit, batchSize, singleBatch,
    sort/hint {$natural: 1|-1}; projection is ignored; other sorts are refused.
    Unknown commands fail like mongod (code 59 CommandNotFound).
  * Batches like mongod: first batch 101 documents unless batchSize says
    otherwise, getMore fills up to 16 MiB of documents (at least one); replies
    are built by concatenating the stored bytes (no per-reply re-encoding).
  * Fault injection, from the command line (--close-on-getmore N ...) or at
    run time with {fakeFault: 1, ...} (any database, usually admin):
        close_on_getmore: N        close the connection on the Nth getMore
        half_reply_on_getmore: N   send half of the Nth getMore reply, close
        hang_on_getmore: N         never answer the Nth getMore
        cursor_not_found_on_getmore: N   answer the Nth getMore with code 43
        close_on_insert: N         close the connection on the Nth insert
        error_on: "find" | [...]   answer those commands with ok:0 code 8000
        clear: true                remove all faults first
    getMores/inserts are counted across the server since the last fakeFault
    command (or since start for command-line faults); each N fires once.
    {fakeFault: 1} merges into the current faults and returns them.
    {fakeStats: 1[, reset: true]} returns counters (connections, commands,
    finds, getMores, inserts, insertedDocuments, ...).

Tests seed their data through the wire protocol (inserts, createIndexes), not
through this module's internals, so the same tests run unchanged against a
real mongod when MAB_TEST_MONGODB_URI is set (fault tests need the fake and
skip themselves there).

Usage
  /usr/bin/python3 tests/fake_mongod.py --port 0 [--host 127.0.0.1]
        [--port-file FILE] [--close-on-getmore N] [--half-reply-on-getmore N]
        [--hang-on-getmore N] [--cursor-not-found-on-getmore N]
        [--close-on-insert N] [--error-on CMD[,CMD...]] [--no-topology-version] [-v]
  prints exactly one line "listening HOST:PORT" when ready; SIGTERM/SIGINT
  stop it with exit status 0.

  In-process:  srv = FakeMongod(port=0).start(); srv.uri; srv.stop()

Needs Debian's python3-pymongo (its bson module): run it with /usr/bin/python3.
"""

import argparse
import bisect
import datetime
import itertools
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback

import bson
from bson.binary import Binary, UuidRepresentation
from bson.codec_options import CodecOptions
from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.son import SON

__all__ = ["FakeMongod", "main"]

OP_REPLY = 1
OP_QUERY = 2004
OP_COMPRESSED = 2012
OP_MSG = 2013

MSG_CHECKSUM_PRESENT = 1 << 0
MSG_MORE_TO_COME = 1 << 1

MAX_BSON_SIZE = 16 * 1024 * 1024
MAX_MESSAGE_SIZE = 48000000
MAX_WRITE_BATCH = 100000
MAX_WIRE_VERSION = 17
DEFAULT_FIRST_BATCH = 101
VERSION = "6.0.0"

CODEC = CodecOptions(uuid_representation=UuidRepresentation.STANDARD)

_INT32 = struct.Struct("<i")
_UINT32 = struct.Struct("<I")
_INT64 = struct.Struct("<q")
_DOUBLE = struct.Struct("<d")
_HEADER = struct.Struct("<iiii")
_REPLY_PREFIX = struct.Struct("<iqii")

# Fields of a command that are not part of its meaning (ignored everywhere).
GENERIC_FIELDS = frozenset((
    "$db", "lsid", "$clusterTime", "$readPreference", "readConcern",
    "writeConcern", "txnNumber", "autocommit", "startTransaction",
    "apiVersion", "apiStrict", "apiDeprecationErrors", "maxTimeMS",
    "comment", "$audit", "$client", "$configServerState", "$gleStats",
    "$oplogQueryData", "$replData", "$queryOptions", "bypassDocumentValidation",
))

FAULT_INT_KEYS = ("close_on_getmore", "half_reply_on_getmore", "hang_on_getmore",
                  "cursor_not_found_on_getmore", "close_on_insert")


def _encode(doc):
    return bson.encode(doc, codec_options=CODEC)


def _decode(data):
    return bson.decode(data, codec_options=CODEC)


# --------------------------------------------------------------------------
# errors and connection actions


class CommandError(Exception):
    """A command failure answered with {ok: 0, errmsg, code, codeName}."""

    def __init__(self, code, code_name, errmsg, **extra):
        Exception.__init__(self, errmsg)
        self.code = code
        self.code_name = code_name
        self.errmsg = errmsg
        self.extra = extra

    def reply(self):
        doc = SON([("ok", 0.0), ("errmsg", self.errmsg), ("code", self.code),
                   ("codeName", self.code_name)])
        doc.update(self.extra)
        return doc


class _CloseConnection(Exception):
    pass


class _Hang(Exception):
    pass


class _HalfReply(Exception):
    pass


class _DuplicateKey(Exception):
    def __init__(self, index_name, key_pattern, key_value):
        Exception.__init__(self, index_name)
        self.index_name = index_name
        self.key_pattern = key_pattern
        self.key_value = key_value


def _bad_value(msg):
    return CommandError(2, "BadValue", msg)


def _ns_not_found(msg="ns not found"):
    return CommandError(26, "NamespaceNotFound", msg)


# --------------------------------------------------------------------------
# raw BSON helpers (no decoding of documents)


def _cstring_end(data, pos):
    return data.index(b"\x00", pos)


def _element_value_end(data, etype, pos):
    """End offset of the value of an element of type etype starting at pos."""
    if etype in (0x01, 0x09, 0x11, 0x12):  # double, datetime, timestamp, int64
        return pos + 8
    if etype in (0x02, 0x0D, 0x0E):  # string, javascript, symbol
        return pos + 4 + _INT32.unpack_from(data, pos)[0]
    if etype in (0x03, 0x04, 0x0F):  # document, array, code w/ scope
        return pos + _INT32.unpack_from(data, pos)[0]
    if etype == 0x05:  # binary
        return pos + 5 + _INT32.unpack_from(data, pos)[0]
    if etype in (0x06, 0x0A, 0xFF, 0x7F):  # undefined, null, minkey, maxkey
        return pos
    if etype == 0x07:
        return pos + 12
    if etype == 0x08:
        return pos + 1
    if etype == 0x0B:  # regex: two cstrings
        return _cstring_end(data, _cstring_end(data, pos) + 1) + 1
    if etype == 0x0C:  # dbpointer
        return pos + 4 + _INT32.unpack_from(data, pos)[0] + 12
    if etype == 0x10:
        return pos + 4
    if etype == 0x13:
        return pos + 16
    raise ValueError("unknown BSON element type 0x%02x" % etype)


def _iter_elements(data, start=0):
    """Yield (type, key bytes, element start, value start, element end) for the
    top-level elements of the BSON document at data[start:]."""
    size = _INT32.unpack_from(data, start)[0]
    end = start + size - 1
    pos = start + 4
    while pos < end:
        etype = data[pos]
        kend = _cstring_end(data, pos + 1)
        vstart = kend + 1
        vend = _element_value_end(data, etype, vstart)
        yield etype, data[pos + 1:kend], pos, vstart, vend
        pos = vend


def _id_key(etype, raw_value):
    """Hashable identity of an _id value (numbers compare by value)."""
    if etype == 0x10:
        return ("n", _INT32.unpack(raw_value)[0])
    if etype == 0x12:
        return ("n", _INT64.unpack(raw_value)[0])
    if etype == 0x01:
        v = _DOUBLE.unpack(raw_value)[0]
        if v == v and v.is_integer():
            return ("n", int(v))
        return ("n", v)
    return (etype, raw_value)


def _value_key(v):
    """Hashable identity of a decoded value, for unique secondary indexes."""
    if v is None:
        return ("null",)
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, (int, float)):
        if isinstance(v, float) and v == v and v.is_integer():
            return ("n", int(v))
        return ("n", v)
    if isinstance(v, str):
        return ("s", v)
    if isinstance(v, dict):
        return ("d", tuple((k, _value_key(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return ("a", tuple(_value_key(x) for x in v))
    try:
        hash(v)
        return (type(v).__name__, v)
    except TypeError:
        return (type(v).__name__, repr(v))


class _BatchKeys(object):
    """Pre-built array element prefixes b'\\x03<index>\\x00' and their
    cumulative lengths, grown on demand (shared, append-only)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.keys = []
        self.cum = [0]
        self._grow(4096)

    def _grow(self, n):
        keys, cum = self.keys, self.cum
        for i in range(len(keys), n):
            k = b"\x03%d\x00" % i
            keys.append(k)
            cum.append(cum[-1] + len(k))

    def ensure(self, n):
        if n > len(self.keys):
            with self.lock:
                self._grow(max(n, 2 * len(self.keys)))


_BATCH_KEYS = _BatchKeys()


def _cstr(s):
    return s.encode("utf-8") + b"\x00"


def _cursor_reply_parts(field, docs, i, j, doc_bytes, cursor_id, ns):
    """Return (total_length, parts) of {cursor: {field: [docs[i:j]], id, ns}, ok: 1}."""
    n = j - i
    _BATCH_KEYS.ensure(n)
    keys_len = _BATCH_KEYS.cum[n]
    arr_len = 4 + keys_len + doc_bytes + 1
    ns_b = ns.encode("utf-8")
    field_elem = b"\x04" + _cstr(field)
    id_elem = b"\x12id\x00" + _INT64.pack(cursor_id)
    ns_elem = b"\x02ns\x00" + _INT32.pack(len(ns_b) + 1) + ns_b + b"\x00"
    cur_len = 4 + len(field_elem) + arr_len + len(id_elem) + len(ns_elem) + 1
    tail = (b"\x00" + id_elem + ns_elem + b"\x00" +
            b"\x01ok\x00" + _DOUBLE.pack(1.0) + b"\x00")
    total = 4 + 8 + cur_len + 12 + 1  # len, "\x03cursor\0", cursor, ok elem, eoo
    head = (_INT32.pack(total) + b"\x03cursor\x00" + _INT32.pack(cur_len) +
            field_elem + _INT32.pack(arr_len))
    parts = [None] * (2 * n + 2)
    parts[0] = head
    if n:
        parts[1:2 * n:2] = _BATCH_KEYS.keys[:n]
        parts[2:2 * n + 1:2] = docs[i:j]
    parts[-1] = tail
    return total, parts


# --------------------------------------------------------------------------
# query matching (used only when a filter is not empty)

_MISSING = object()


def _get_path(doc, path):
    cur = doc
    for part in path.split("."):
        if isinstance(cur, dict):
            if part not in cur:
                return _MISSING
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
    return cur


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _same(a, b):
    if _is_num(a) and _is_num(b):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        if len(a) != len(b):
            return False
        return all(ka == kb and _same(va, vb)
                   for (ka, va), (kb, vb) in zip(a.items(), b.items()))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if type(a) is not type(b):
        return False
    return a == b


def _eq(val, cond):
    if val is _MISSING:
        return cond is None
    if _same(val, cond):
        return True
    if isinstance(val, list) and not isinstance(cond, list):
        return any(_same(v, cond) for v in val)
    return False


def _cmp(val, arg, op):
    vals = val if isinstance(val, list) else [val]
    for v in vals:
        if v is _MISSING:
            continue
        if not ((_is_num(v) and _is_num(arg)) or type(v) is type(arg)):
            continue
        try:
            if ((op == "$gt" and v > arg) or (op == "$gte" and v >= arg) or
                    (op == "$lt" and v < arg) or (op == "$lte" and v <= arg)):
                return True
        except TypeError:
            pass
    return False


def _op_matches(val, op, arg):
    if op == "$eq":
        return _eq(val, arg)
    if op == "$ne":
        return not _eq(val, arg)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return _cmp(val, arg, op)
    if op == "$in":
        return any(_eq(val, x) for x in arg)
    if op == "$nin":
        return not any(_eq(val, x) for x in arg)
    if op == "$exists":
        return (val is not _MISSING) == bool(arg)
    raise _bad_value("fake_mongod: unsupported query operator %s" % op)


def _matches(doc, filt):
    for key, cond in filt.items():
        if key == "$and":
            if not all(_matches(doc, f) for f in cond):
                return False
        elif key == "$or":
            if not any(_matches(doc, f) for f in cond):
                return False
        elif key == "$nor":
            if any(_matches(doc, f) for f in cond):
                return False
        elif key.startswith("$"):
            raise _bad_value("unknown top level operator: %s" % key)
        else:
            val = _get_path(doc, key)
            if (isinstance(cond, dict) and cond and
                    all(k.startswith("$") for k in cond)):
                for op, arg in cond.items():
                    if not _op_matches(val, op, arg):
                        return False
            elif not _eq(val, cond):
                return False
    return True


def _filter_raw(docs, filt):
    if not filt:
        return list(docs)
    return [d for d in docs if _matches(_decode(d), filt)]


def _cumsizes(docs):
    return [0] + list(itertools.accumulate(len(d) for d in docs))


# --------------------------------------------------------------------------
# store


class Collection(object):
    def __init__(self, db, name, options=None):
        self.db = db
        self.name = name
        self.docs = []       # raw BSON bytes, insertion order (append-only list;
        self.cum = [0]       # replaced, never edited, on delete) + byte prefix sums
        self.ids = set()
        self.uuid = os.urandom(16)
        self.options = SON(options or {})
        self.indexes = [SON([("v", 2), ("key", SON([("_id", 1)])), ("name", "_id_")])]
        self.unique = {}     # unique index name -> (index spec, set of value keys)

    @property
    def ns(self):
        return "%s.%s" % (self.db, self.name)

    def _unique_values(self, index, decoded):
        fields = list(index["key"].keys())
        vals = [_get_path(decoded, f) for f in fields]
        if index.get("sparse") and all(v is _MISSING for v in vals):
            return None
        return tuple(_value_key(None if v is _MISSING else v) for v in vals)

    def prepare(self, raw):
        """Validate a raw document; return (bytes to store, _id key)."""
        if len(raw) < 5 or _INT32.unpack_from(raw, 0)[0] != len(raw) or raw[-1] != 0:
            raise _bad_value("invalid BSON document")
        if len(raw) > MAX_BSON_SIZE:
            raise _bad_value("object to insert too large. size in bytes: %d, max size: %d"
                             % (len(raw), MAX_BSON_SIZE))
        try:
            elements = list(_iter_elements(raw))
        except (ValueError, IndexError, struct.error):
            raise _bad_value("invalid BSON document")
        first = True
        for etype, key, estart, vstart, vend in elements:
            if key == b"_id":
                if etype in (0x04, 0x0B, 0x06):
                    raise _bad_value("can't use a%s for _id" % (
                        "n array" if etype == 0x04 else
                        " regex" if etype == 0x0B else "n undefined"))
                key = _id_key(etype, raw[vstart:vend])
                if not first:  # mongod moves _id to the front
                    raw = raw[:4] + raw[estart:vend] + raw[4:estart] + raw[vend:]
                return raw, key
            first = False
        oid = ObjectId()
        raw = _INT32.pack(len(raw) + 17) + b"\x07_id\x00" + oid.binary + raw[4:]
        return raw, (0x07, oid.binary)

    def add(self, raw):
        raw, key = self.prepare(raw)
        if key in self.ids:
            raise _DuplicateKey("_id_", SON([("_id", 1)]),
                                SON([("_id", _decode(raw).get("_id"))]))
        uvals = None
        if self.unique:
            decoded = _decode(raw)
            uvals = {}
            for name, (index, values) in self.unique.items():
                v = self._unique_values(index, decoded)
                if v is not None and v in values:
                    kv = SON((f, _get_path(decoded, f)) for f in index["key"])
                    raise _DuplicateKey(name, index["key"], kv)
                uvals[name] = v
        self.ids.add(key)
        if uvals:
            for name, v in uvals.items():
                if v is not None:
                    self.unique[name][1].add(v)
        self.docs.append(raw)
        self.cum.append(self.cum[-1] + len(raw))

    def replace_docs(self, docs):
        """Replace the document list (after a delete) with fresh containers so
        open cursors keep their snapshot."""
        old_unique = self.unique
        self.docs, self.cum, self.ids = [], [0], set()
        self.unique = dict((n, (idx, set())) for n, (idx, _) in old_unique.items())
        for raw in docs:
            self.add(raw)

    def add_unique_index(self, index):
        values = set()
        name = index["name"]
        for raw in self.docs:
            decoded = _decode(raw)
            v = self._unique_values(index, decoded)
            if v is None:
                continue
            if v in values:
                kv = SON((f, _get_path(decoded, f)) for f in index["key"])
                raise CommandError(11000, "DuplicateKey",
                                   "Index build failed: E11000 duplicate key error "
                                   "collection: %s index: %s dup key: %s"
                                   % (self.ns, name, _fmt_key(kv)))
            values.add(v)
        self.unique[name] = (index, values)

    def info(self, name_only=False):
        if name_only:
            return SON([("name", self.name), ("type", "collection")])
        return SON([
            ("name", self.name), ("type", "collection"), ("options", self.options),
            ("info", SON([("readOnly", False), ("uuid", Binary(self.uuid, 4))])),
            ("idIndex", SON([("v", 2), ("key", SON([("_id", 1)])), ("name", "_id_")])),
        ])


def _fmt_key(kv):
    return "{ " + ", ".join("%s: %r" % (k, v) for k, v in kv.items()) + " }"


class Cursor(object):
    __slots__ = ("id", "ns", "docs", "cum", "pos", "end", "lock")

    def __init__(self, ns, docs, cum, pos, end):
        self.id = 0
        self.ns = ns
        self.docs = docs
        self.cum = cum
        self.pos = pos
        self.end = end
        self.lock = threading.Lock()

    def take(self, max_docs):
        """Advance over the next batch; return (i, j, bytes)."""
        i = self.pos
        stop = self.end if max_docs is None else min(self.end, i + max_docs)
        if stop <= i:
            return i, i, 0
        cum = self.cum
        base = cum[i]
        j = bisect.bisect_right(cum, base + MAX_BSON_SIZE, i, stop + 1) - 1
        if j <= i:
            j = i + 1
        self.pos = j
        return i, j, cum[j] - base

    @property
    def exhausted(self):
        return self.pos >= self.end


# --------------------------------------------------------------------------
# the server


class FakeMongod(object):
    """In-process fake server: FakeMongod(port=0).start() ... .stop()."""

    def __init__(self, host="127.0.0.1", port=0, faults=None, verbose=False,
                 topology_version=True):
        self.host = host
        self.topology_version = topology_version
        self._req_port = port
        self.port = None
        self.verbose = verbose
        self._store = {}  # db -> {name: Collection} (insertion ordered)
        self._store_lock = threading.RLock()
        self._cursors = {}
        self._cursors_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._faults = {}
        self._fault_getmores = 0
        self._fault_inserts = 0
        self._stats = self._zero_stats()
        self._conn_ids = itertools.count(1)
        self._req_ids = itertools.count(1)
        self._conns = {}
        self._active = 0
        self._stopping = threading.Event()
        self._listen = None
        self._wake_r = self._wake_w = None
        self._accept_thread = None
        self._process_id = ObjectId()
        self._start_time = time.time()
        if faults:
            self.set_faults(faults)

    # ---- lifecycle

    def start(self):
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self._req_port))
        s.listen(128)
        self._listen = s
        self.port = s.getsockname()[1]
        self._wake_r, self._wake_w = os.pipe()
        self._accept_thread = threading.Thread(target=self._accept_loop,
                                               name="fake_mongod-accept", daemon=True)
        self._accept_thread.start()
        return self

    @property
    def uri(self):
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "mongodb://%s:%d/" % (host, self.port)

    def stop(self):
        if self._stopping.is_set():
            return
        self._stopping.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._accept_thread is not None:
            self._accept_thread.join(1.0)
        with self._state_lock:
            conns = list(self._conns.values())
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except (OSError, TypeError):
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept_loop(self):
        listen = self._listen
        poller = select.poll()
        poller.register(listen.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        try:
            while not self._stopping.is_set():
                ready = [fd for fd, _ev in poller.poll()]
                if self._stopping.is_set():
                    break
                if listen.fileno() not in ready:
                    continue
                try:
                    sock, addr = listen.accept()
                except OSError:
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                t = threading.Thread(target=self._serve_conn, args=(sock, addr),
                                     name="fake_mongod-conn", daemon=True)
                t.start()
        finally:
            listen.close()

    # ---- faults and stats

    @staticmethod
    def _zero_stats():
        return {"connections": 0, "commands": {}, "finds": 0, "getMores": 0,
                "inserts": 0, "insertedDocuments": 0, "deletes": 0,
                "killCursors": 0, "faultsFired": 0}

    def set_faults(self, faults, clear=False):
        with self._state_lock:
            if clear:
                self._faults = {}
            for k, v in faults.items():
                if k in FAULT_INT_KEYS:
                    if v is None or v is False or int(v) <= 0:
                        self._faults.pop(k, None)
                    else:
                        self._faults[k] = int(v)
                elif k == "error_on":
                    if not v:
                        self._faults.pop(k, None)
                    else:
                        names = [v] if isinstance(v, str) else list(v)
                        names = [n.strip() for x in names for n in x.split(",") if n.strip()]
                        self._faults[k] = names
                else:
                    raise _bad_value("fakeFault: unknown fault %r" % k)
            self._fault_getmores = 0
            self._fault_inserts = 0
            return dict(self._faults)

    def stats(self):
        with self._state_lock:
            st = dict(self._stats)
            st["commands"] = dict(st["commands"])
            st["activeConnections"] = self._active
            st["faults"] = dict(self._faults)
            st["faultGetMores"] = self._fault_getmores
            st["faultInserts"] = self._fault_inserts
        with self._cursors_lock:
            st["openCursors"] = len(self._cursors)
        return st

    def _log(self, msg):
        if self.verbose:
            sys.stderr.write("fake_mongod: %s\n" % msg)
            sys.stderr.flush()

    # ---- connection handling

    def _serve_conn(self, sock, addr):
        conn_id = next(self._conn_ids)
        with self._state_lock:
            self._conns[conn_id] = sock
            self._active += 1
            self._stats["connections"] += 1
        self._log("connection %d from %s" % (conn_id, addr))
        conn = {"id": conn_id, "addr": addr}
        try:
            while not self._stopping.is_set():  # (also closes one accepted during stop())
                hdr = _recv_exact(sock, 16)
                if hdr is None:
                    break
                length, req_id, _resp_to, opcode = _HEADER.unpack(hdr)
                if length < 16 or length > MAX_MESSAGE_SIZE + 16 * 1024 * 1024:
                    break
                data = _recv_exact(sock, length - 16)
                if data is None:
                    break
                if opcode == OP_MSG:
                    out = self._handle_op_msg(bytes(data), req_id, conn)
                elif opcode == OP_QUERY:
                    out = self._handle_op_query(bytes(data), req_id, conn)
                else:
                    self._log("unsupported opcode %d, closing" % opcode)
                    break
                if out is not None:
                    sock.sendall(out)
        except _Hang:
            self._log("hanging connection %d" % conn_id)
            self._hang(sock)
        except _HalfReply as e:
            data = e.args[0]
            try:
                sock.sendall(data[:len(data) // 2])
            except OSError:
                pass
        except _CloseConnection:
            pass
        except OSError as e:
            self._log("connection %d: %r" % (conn_id, e))
        except Exception:  # protocol error or a bug: say so, drop the connection
            sys.stderr.write("fake_mongod: connection %d: closing after error:\n%s"
                             % (conn_id, traceback.format_exc()))
            sys.stderr.flush()
        finally:
            with self._state_lock:
                self._conns.pop(conn_id, None)
                self._active -= 1
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
            self._log("connection %d closed" % conn_id)

    def _hang(self, sock):
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        while not self._stopping.is_set():
            try:
                if poller.poll(500) and not sock.recv(65536):
                    return
            except (OSError, ValueError):
                return

    def _handle_op_msg(self, data, req_id, conn):
        flags = _UINT32.unpack_from(data, 0)[0]
        end = len(data) - (4 if flags & MSG_CHECKSUM_PRESENT else 0)
        pos = 4
        body = None
        seqs = {}
        while pos < end:
            kind = data[pos]
            pos += 1
            if kind == 0:
                blen = _INT32.unpack_from(data, pos)[0]
                body = data[pos:pos + blen]
                pos += blen
            elif kind == 1:
                slen = _INT32.unpack_from(data, pos)[0]
                sec_end = pos + slen
                p = pos + 4
                nul = data.index(b"\x00", p)
                ident = data[p:nul].decode("utf-8")
                p = nul + 1
                docs = seqs.setdefault(ident, [])
                while p < sec_end:
                    dlen = _INT32.unpack_from(data, p)[0]
                    docs.append(data[p:p + dlen])
                    p += dlen
                pos = sec_end
            else:
                raise ValueError("bad OP_MSG section kind %d" % kind)
        if body is None:
            raise ValueError("OP_MSG without a body section")
        cmd = _decode(body)
        db = cmd.get("$db", "admin")
        reply = self._run_command(db, cmd, seqs, body, conn)
        if flags & MSG_MORE_TO_COME:
            return None
        if isinstance(reply, tuple):
            total, parts = reply
        else:
            enc = reply if isinstance(reply, bytes) else _encode(reply)
            total, parts = len(enc), [enc]
        head = _HEADER.pack(16 + 5 + total, next(self._req_ids), req_id, OP_MSG) + b"\x00\x00\x00\x00\x00"
        parts.insert(0, head)
        out = b"".join(parts)
        if conn.pop("half_reply", False):
            raise _HalfReply(out)
        return out

    def _handle_op_query(self, data, req_id, conn):
        nul = data.index(b"\x00", 4)
        ns = data[4:nul].decode("utf-8")
        qstart = nul + 1 + 8
        qlen = _INT32.unpack_from(data, qstart)[0]
        query_raw = data[qstart:qstart + qlen]
        query = _decode(query_raw)
        flags = 0
        if not ns.endswith(".$cmd"):
            reply = SON([("$err", "fake_mongod: legacy OP_QUERY is only supported for commands"),
                         ("code", 2), ("ok", 0.0)])
            flags = 2  # QueryFailure
        else:
            db = ns[:-5]
            if "$query" in query:
                query = query["$query"]
                query_raw = None
            reply = self._run_command(db, query, {}, query_raw, conn)
        if isinstance(reply, tuple):
            reply = b"".join(reply[1])
        elif not isinstance(reply, bytes):
            reply = _encode(reply)
        out = (_HEADER.pack(16 + 20 + len(reply), next(self._req_ids), req_id, OP_REPLY) +
               _REPLY_PREFIX.pack(flags, 0, 0, 1) + reply)
        if conn.pop("half_reply", False):
            raise _HalfReply(out)
        return out

    # ---- command dispatch

    def _run_command(self, db, cmd, seqs, body_raw, conn):
        if not cmd:
            return CommandError(59, "CommandNotFound", "no such command: ''").reply()
        name = next(iter(cmd))
        with self._state_lock:
            c = self._stats["commands"]
            c[name] = c.get(name, 0) + 1
        if self.verbose:
            self._log("conn %d: %s.%s" % (conn["id"], db, name))
        handler = self._COMMANDS.get(name)
        try:
            if name not in ("fakeFault", "fakeStats"):
                with self._state_lock:
                    err = name in self._faults.get("error_on", ())
                    if err:
                        self._stats["faultsFired"] += 1
                if err:
                    raise CommandError(8000, "InjectedFault", "injected fault")
            if handler is None:
                raise CommandError(59, "CommandNotFound", "no such command: '%s'" % name)
            return handler(self, db, cmd, seqs, body_raw, conn)
        except CommandError as e:
            return e.reply()
        except (_CloseConnection, _Hang):
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, struct.error) as e:
            return CommandError(9, "FailedToParse",
                                "fake_mongod: bad %s command: %r" % (name, e)).reply()
        except Exception as e:  # a bug or a document bson cannot decode: answer, keep going
            sys.stderr.write("fake_mongod: %s failed:\n%s" % (name, traceback.format_exc()))
            return CommandError(1, "InternalError", "fake_mongod: %s failed: %r" % (name, e)).reply()

    # ---- helpers for commands

    def _get_coll(self, db, name):
        return self._store.get(db, {}).get(name)

    def _create_coll(self, db, name, options=None):
        if not isinstance(name, str) or not name or "\x00" in name or name.startswith("$"):
            raise CommandError(73, "InvalidNamespace", "Invalid collection name: %r" % (name,))
        if not isinstance(db, str) or not db or any(ch in db for ch in '/\\. "$\x00'):
            raise CommandError(73, "InvalidNamespace", "Invalid database name: %r" % (db,))
        coll = Collection(db, name, options)
        self._store.setdefault(db, {})[name] = coll
        return coll

    def _register_cursor(self, cursor):
        with self._cursors_lock:
            while True:
                cid = random.getrandbits(63)
                if cid and cid not in self._cursors:
                    break
            cursor.id = cid
            self._cursors[cid] = cursor

    def _first_batch(self, cursor, batch_size, single_batch=False):
        i, j, nbytes = cursor.take(batch_size)
        if not cursor.exhausted and not single_batch:
            self._register_cursor(cursor)
        return _cursor_reply_parts("firstBatch", cursor.docs, i, j, nbytes,
                                   cursor.id, cursor.ns)

    @staticmethod
    def _small_cursor(ns, docs):
        raws = [_encode(d) for d in docs]
        return _cursor_reply_parts("firstBatch", raws, 0, len(raws),
                                   sum(len(r) for r in raws), 0, ns)

    @staticmethod
    def _batch_size(value, what="batchSize"):
        if value is None:
            return None
        value = int(value)
        if value < 0:
            raise _bad_value("%s must be non-negative, but received: %d" % (what, value))
        return value

    # ---- commands

    def cmd_hello(self, db, cmd, seqs, body_raw, conn):
        tv = cmd.get("topologyVersion")
        if (isinstance(tv, dict) and tv.get("processId") == self._process_id and
                "maxAwaitTimeMS" in cmd):
            # awaitable hello from a client that knows this process: nothing
            # ever changes here, so answer after maxAwaitTimeMS like mongod
            wait = max(0, int(cmd["maxAwaitTimeMS"])) / 1000.0
            self._stopping.wait(wait)
            if self._stopping.is_set():
                raise _CloseConnection()
        name = next(iter(cmd))
        reply = SON()
        if name == "hello":
            reply["isWritablePrimary"] = True
        else:
            reply["ismaster"] = True
        reply["helloOk"] = True
        if self.topology_version:
            reply["topologyVersion"] = SON([("processId", self._process_id),
                                            ("counter", Int64(0))])
        reply["maxBsonObjectSize"] = MAX_BSON_SIZE
        reply["maxMessageSizeBytes"] = MAX_MESSAGE_SIZE
        reply["maxWriteBatchSize"] = MAX_WRITE_BATCH
        reply["localTime"] = datetime.datetime.utcnow()
        reply["logicalSessionTimeoutMinutes"] = 30
        reply["connectionId"] = conn["id"]
        reply["minWireVersion"] = 0
        reply["maxWireVersion"] = MAX_WIRE_VERSION
        reply["readOnly"] = False
        reply["ok"] = 1.0
        return reply

    def cmd_ping(self, db, cmd, seqs, body_raw, conn):
        return {"ok": 1.0}

    def cmd_build_info(self, db, cmd, seqs, body_raw, conn):
        return SON([("version", VERSION), ("gitVersion", "fake_mongod"),
                    ("modules", []), ("allocator", "system"),
                    ("javascriptEngine", "none"), ("sysInfo", "deprecated"),
                    ("versionArray", [6, 0, 0, 0]), ("bits", 64), ("debug", False),
                    ("maxBsonObjectSize", MAX_BSON_SIZE), ("storageEngines", ["fake"]),
                    ("ok", 1.0)])

    def cmd_get_parameter(self, db, cmd, seqs, body_raw, conn):
        reply = SON()
        if cmd.get("featureCompatibilityVersion") or cmd.get("getParameter") == "*":
            reply["featureCompatibilityVersion"] = {"version": "6.0"}
        reply["ok"] = 1.0
        return reply

    def cmd_get_cmd_line_opts(self, db, cmd, seqs, body_raw, conn):
        return SON([("argv", ["fake_mongod"]), ("parsed", {}), ("ok", 1.0)])

    def cmd_server_status(self, db, cmd, seqs, body_raw, conn):
        st = self.stats()
        return SON([("host", "%s:%d" % (self.host, self.port)), ("version", VERSION),
                    ("process", "mongod"), ("pid", Int64(os.getpid())),
                    ("uptime", float(time.time() - self._start_time)),
                    ("localTime", datetime.datetime.utcnow()),
                    ("connections", SON([("current", st["activeConnections"]),
                                         ("totalCreated", st["connections"])])),
                    ("ok", 1.0)])

    def cmd_whatsmyuri(self, db, cmd, seqs, body_raw, conn):
        addr = conn["addr"]
        return SON([("you", "%s:%d" % (addr[0], addr[1])), ("ok", 1.0)])

    def cmd_connection_status(self, db, cmd, seqs, body_raw, conn):
        return SON([("authInfo", SON([("authenticatedUsers", []),
                                      ("authenticatedUserRoles", [])])), ("ok", 1.0)])

    def cmd_repl_set_get_status(self, db, cmd, seqs, body_raw, conn):
        raise CommandError(76, "NoReplicationEnabled", "not running with --replSet")

    def cmd_end_sessions(self, db, cmd, seqs, body_raw, conn):
        return {"ok": 1.0}

    def cmd_list_databases(self, db, cmd, seqs, body_raw, conn):
        name_only = bool(cmd.get("nameOnly"))
        filt = cmd.get("filter") or {}
        out = []
        total = 0
        with self._store_lock:
            for dbname, colls in self._store.items():
                if not colls:
                    continue
                size = sum(c.cum[-1] for c in colls.values())
                total += size
                entry = SON([("name", dbname)]) if name_only else SON(
                    [("name", dbname), ("sizeOnDisk", float(size)), ("empty", False)])
                if filt and not _matches(entry, filt):
                    continue
                out.append(entry)
        reply = SON([("databases", out)])
        if not name_only:
            reply["totalSize"] = float(total)
            reply["totalSizeMb"] = Int64(total // (1024 * 1024))
        reply["ok"] = 1.0
        return reply

    def cmd_list_collections(self, db, cmd, seqs, body_raw, conn):
        filt = cmd.get("filter") or {}
        name_only = bool(cmd.get("nameOnly"))
        out = []
        with self._store_lock:
            for coll in self._store.get(db, {}).values():
                full = coll.info()
                if filt and not _matches(full, filt):
                    continue
                out.append(coll.info(name_only) if name_only else full)
        return self._small_cursor("%s.$cmd.listCollections" % db, out)

    def cmd_create(self, db, cmd, seqs, body_raw, conn):
        name = cmd["create"]
        options = SON((k, v) for k, v in cmd.items()
                      if k != "create" and k not in GENERIC_FIELDS)
        with self._store_lock:
            if self._get_coll(db, name) is not None:
                raise CommandError(48, "NamespaceExists",
                                   "Collection %s.%s already exists." % (db, name))
            self._create_coll(db, name, options)
        return {"ok": 1.0}

    def cmd_drop(self, db, cmd, seqs, body_raw, conn):
        name = cmd["drop"]
        with self._store_lock:
            coll = self._get_coll(db, name)
            if coll is None:
                raise _ns_not_found()
            del self._store[db][name]
            if not self._store[db]:
                del self._store[db]
        return SON([("nIndexesWas", len(coll.indexes)), ("ns", coll.ns), ("ok", 1.0)])

    def cmd_drop_database(self, db, cmd, seqs, body_raw, conn):
        with self._store_lock:
            self._store.pop(db, None)
        return SON([("dropped", db), ("ok", 1.0)])

    def _snapshot(self, db, name, filt=None):
        with self._store_lock:
            coll = self._get_coll(db, name)
            if coll is None:
                return None, None, 0
            docs, cum = coll.docs, coll.cum
            n = len(docs)
        if filt:
            docs = _filter_raw(docs[:n], filt)
            cum = _cumsizes(docs)
            n = len(docs)
        return docs, cum, n

    def cmd_count(self, db, cmd, seqs, body_raw, conn):
        name = cmd["count"]
        filt = cmd.get("query") or {}
        snap = self._snapshot(db, name, filt)
        n = 0 if snap[0] is None else snap[2]
        skip = int(cmd.get("skip") or 0)
        limit = int(cmd.get("limit") or 0)
        n = max(0, n - skip)
        if limit:
            n = min(n, abs(limit))
        return SON([("n", n), ("ok", 1.0)])

    def cmd_aggregate(self, db, cmd, seqs, body_raw, conn):
        name = cmd["aggregate"]
        if not isinstance(name, str):
            raise _bad_value("fake_mongod: only collection aggregates are supported")
        if "cursor" not in cmd and not cmd.get("explain"):
            raise CommandError(9, "FailedToParse",
                               "The 'cursor' option is required, except for aggregate with the explain argument")
        pipeline = cmd.get("pipeline")
        if not isinstance(pipeline, list):
            raise CommandError(14, "TypeMismatch", "'pipeline' option must be specified as an array")
        snap = self._snapshot(db, name)
        docs = [] if snap[0] is None else snap[0][:snap[2]]
        for stage in pipeline:
            if len(stage) != 1:
                raise CommandError(40323, "Location40323",
                                   "A pipeline stage specification object must contain exactly one field.")
            op, arg = next(iter(stage.items()))
            if op == "$match":
                docs = _filter_raw(docs, arg)
            elif op == "$skip":
                docs = docs[int(arg):]
            elif op == "$limit":
                docs = docs[:int(arg)]
            elif op == "$count":
                docs = [_encode(SON([(arg, len(docs))]))] if docs else []
            elif op == "$group":
                docs = self._group(docs, arg)
            else:
                raise _bad_value("fake_mongod: unsupported aggregation stage %s" % op)
        batch_size = self._batch_size((cmd.get("cursor") or {}).get("batchSize"))
        cursor = Cursor("%s.%s" % (db, name), docs, _cumsizes(docs), 0, len(docs))
        return self._first_batch(cursor, DEFAULT_FIRST_BATCH if batch_size is None else batch_size)

    @staticmethod
    def _group(docs, spec):
        gid = spec.get("_id")
        if isinstance(gid, (str, dict)) and (not isinstance(gid, str) or gid.startswith("$")):
            raise _bad_value("fake_mongod: $group supports only a constant _id")
        if not docs:
            return []
        out = SON([("_id", gid)])
        decoded = None
        for field, acc in spec.items():
            if field == "_id":
                continue
            if not isinstance(acc, dict) or list(acc) != ["$sum"]:
                raise _bad_value("fake_mongod: $group supports only $sum accumulators")
            arg = acc["$sum"]
            if _is_num(arg):
                out[field] = arg * len(docs)
            elif isinstance(arg, str) and arg.startswith("$"):
                if decoded is None:
                    decoded = [_decode(d) for d in docs]
                total = 0
                for d in decoded:
                    v = _get_path(d, arg[1:])
                    if _is_num(v):
                        total += v
                out[field] = total
            else:
                raise _bad_value("fake_mongod: unsupported $sum argument")
        return [_encode(out)]

    def cmd_insert(self, db, cmd, seqs, body_raw, conn):
        name = cmd["insert"]
        if "documents" in seqs:
            docs = seqs["documents"]
        else:
            docs = _raw_array_docs(body_raw, b"documents") if body_raw is not None else [
                _encode(d) for d in cmd.get("documents", [])]
        ordered = cmd.get("ordered", True)
        with self._state_lock:
            self._stats["inserts"] += 1
            self._fault_inserts += 1
            if self._faults.get("close_on_insert") == self._fault_inserts:
                self._stats["faultsFired"] += 1
                raise _CloseConnection()
        if len(docs) > MAX_WRITE_BATCH:
            raise CommandError(10, "InvalidLength",
                               "Write batch sizes must be between 1 and %d. Got %d operations."
                               % (MAX_WRITE_BATCH, len(docs)))
        n = 0
        errors = []
        with self._store_lock:
            coll = self._get_coll(db, name)
            if coll is None:
                coll = self._create_coll(db, name)
            for idx, raw in enumerate(docs):
                try:
                    coll.add(raw)
                    n += 1
                except _DuplicateKey as e:
                    errors.append(SON([
                        ("index", idx), ("code", 11000),
                        ("keyPattern", e.key_pattern), ("keyValue", e.key_value),
                        ("errmsg", "E11000 duplicate key error collection: %s index: %s dup key: %s"
                         % (coll.ns, e.index_name, _fmt_key(e.key_value)))]))
                    if ordered:
                        break
                except CommandError as e:
                    errors.append(SON([("index", idx), ("code", e.code), ("errmsg", e.errmsg)]))
                    if ordered:
                        break
        with self._state_lock:
            self._stats["insertedDocuments"] += n
        reply = SON([("n", n)])
        if errors:
            reply["writeErrors"] = errors
        reply["ok"] = 1.0
        return reply

    def cmd_delete(self, db, cmd, seqs, body_raw, conn):
        name = cmd["delete"]
        if "deletes" in seqs:
            deletes = [_decode(d) for d in seqs["deletes"]]
        else:
            deletes = cmd.get("deletes", [])
        total = 0
        with self._store_lock:
            self._stats["deletes"] += 1
            coll = self._get_coll(db, name)
            if coll is not None:
                for spec in deletes:
                    q = spec.get("q") or {}
                    limit = int(spec.get("limit", 0))
                    if not q and limit == 0:
                        total += len(coll.docs)
                        coll.replace_docs([])
                        continue
                    keep = []
                    removed = 0
                    for raw in coll.docs:
                        if (limit == 0 or removed < limit) and (not q or _matches(_decode(raw), q)):
                            removed += 1
                        else:
                            keep.append(raw)
                    if removed:
                        coll.replace_docs(keep)
                    total += removed
        return SON([("n", total), ("ok", 1.0)])

    def cmd_create_indexes(self, db, cmd, seqs, body_raw, conn):
        name = cmd["createIndexes"]
        specs = cmd.get("indexes")
        if not isinstance(specs, list) or not specs:
            raise _bad_value("Must specify at least one index to create")
        with self._store_lock:
            coll = self._get_coll(db, name)
            created = coll is None
            if created:
                coll = self._create_coll(db, name)
            before = len(coll.indexes)
            for spec in specs:
                key = spec.get("key")
                iname = spec.get("name")
                if not isinstance(key, dict) or not key:
                    raise CommandError(67, "CannotCreateIndex",
                                       "Error in specification %r :: caused by :: "
                                       "The 'key' field must be a non-empty object" % (spec,))
                if not isinstance(iname, str) or not iname:
                    raise CommandError(9, "FailedToParse",
                                       "Error in specification %r :: caused by :: "
                                       "The 'name' field is a required property of an index specification"
                                       % (spec,))
                index = SON([("v", spec.get("v", 2)), ("key", SON(key)), ("name", iname)])
                for k, v in spec.items():
                    if k not in ("v", "key", "name"):
                        index[k] = v
                dup = None
                for existing in coll.indexes:
                    same_key = list(existing["key"].items()) == list(key.items())
                    if existing["name"] == iname:
                        if not same_key:
                            raise CommandError(86, "IndexKeySpecsConflict",
                                               "An existing index has the same name as the requested "
                                               "index but different keys. Requested index: %r, "
                                               "existing index: %r" % (dict(index), dict(existing)))
                        dup = existing
                        break
                    if same_key and existing["name"] != iname and iname != "_id_":
                        raise CommandError(85, "IndexOptionsConflict",
                                           "Index already exists with a different name: %s"
                                           % existing["name"])
                if dup is not None:
                    continue
                if index.get("unique") and iname != "_id_":
                    coll.add_unique_index(index)
                coll.indexes.append(index)
            after = len(coll.indexes)
        reply = SON([("numIndexesBefore", before), ("numIndexesAfter", after),
                     ("createdCollectionAutomatically", created)])
        if before == after:
            reply["note"] = "all indexes already exist"
        reply["ok"] = 1.0
        return reply

    def cmd_list_indexes(self, db, cmd, seqs, body_raw, conn):
        name = cmd["listIndexes"]
        with self._store_lock:
            coll = self._get_coll(db, name)
            if coll is None:
                raise _ns_not_found("ns does not exist: %s.%s" % (db, name))
            indexes = list(coll.indexes)
        return self._small_cursor("%s.%s" % (db, name), indexes)

    def cmd_drop_indexes(self, db, cmd, seqs, body_raw, conn):
        name = cmd["dropIndexes"]
        which = cmd.get("index")
        with self._store_lock:
            coll = self._get_coll(db, name)
            if coll is None:
                raise _ns_not_found("ns not found %s.%s" % (db, name))
            was = len(coll.indexes)
            if which == "*":
                coll.indexes = coll.indexes[:1]
                coll.unique = {}
            else:
                names = which if isinstance(which, list) else [which]
                for n in names:
                    match = [i for i in coll.indexes
                             if (i["name"] == n if isinstance(n, str)
                                 else list(i["key"].items()) == list(dict(n).items()))]
                    if not match:
                        raise CommandError(27, "IndexNotFound", "index not found with name [%s]" % (n,))
                    if match[0]["name"] == "_id_":
                        raise CommandError(72, "InvalidOptions", "cannot drop _id index")
                    coll.indexes.remove(match[0])
                    coll.unique.pop(match[0]["name"], None)
        return SON([("nIndexesWas", was), ("ok", 1.0)])

    def cmd_coll_stats(self, db, cmd, seqs, body_raw, conn):
        name = cmd["collStats"]
        with self._store_lock:
            coll = self._get_coll(db, name)
            if coll is None:
                raise _ns_not_found("Collection [%s.%s] not found." % (db, name))
            count, size = len(coll.docs), coll.cum[-1]
            nindexes = len(coll.indexes)
            names = [i["name"] for i in coll.indexes]
        return SON([("ns", "%s.%s" % (db, name)), ("size", size), ("count", count),
                    ("avgObjSize", size // count if count else 0), ("storageSize", size),
                    ("nindexes", nindexes), ("totalIndexSize", 0),
                    ("indexSizes", SON((n, 0) for n in names)), ("ok", 1.0)])

    def cmd_db_stats(self, db, cmd, seqs, body_raw, conn):
        with self._store_lock:
            colls = list(self._store.get(db, {}).values())
            objects = sum(len(c.docs) for c in colls)
            size = sum(c.cum[-1] for c in colls)
            nidx = sum(len(c.indexes) for c in colls)
        return SON([("db", db), ("collections", len(colls)), ("views", 0),
                    ("objects", objects), ("avgObjSize", float(size) / objects if objects else 0.0),
                    ("dataSize", float(size)), ("storageSize", float(size)),
                    ("indexes", nidx), ("indexSize", 0.0), ("ok", 1.0)])

    def cmd_find(self, db, cmd, seqs, body_raw, conn):
        name = cmd["find"]
        if not isinstance(name, str):
            raise _bad_value("fake_mongod: find by UUID is not supported")
        with self._state_lock:
            self._stats["finds"] += 1
        filt = cmd.get("filter") or {}
        reverse = False
        for field in ("hint", "sort"):  # a $natural sort wins over a hint
            spec = cmd.get(field)
            if not spec:
                continue
            if isinstance(spec, str):
                if field == "hint" and spec in ("_id_", "$natural"):
                    continue
                raise _bad_value("fake_mongod: hint %r not supported" % spec)
            keys = list(spec.keys())
            if keys == ["$natural"]:
                reverse = spec["$natural"] < 0
            elif field == "hint" and keys == ["_id"]:
                continue
            else:
                raise _bad_value("fake_mongod: only {$natural: 1|-1} is supported as %s" % field)
        skip = int(cmd.get("skip") or 0)
        if skip < 0:
            raise _bad_value("skip value must be non-negative, but received: %d" % skip)
        limit = int(cmd.get("limit") or 0)
        if limit < 0:
            raise _bad_value("limit value must be non-negative, but received: %d" % limit)
        batch_size = self._batch_size(cmd.get("batchSize"))
        single = bool(cmd.get("singleBatch"))
        ns = "%s.%s" % (db, name)
        docs, cum, n = self._snapshot(db, name, filt)
        if docs is None:
            docs, cum, n = [], [0], 0
        if reverse:
            docs = docs[:n][::-1]
            cum = _cumsizes(docs)
        start = min(skip, n)
        end = n if not limit else min(n, start + limit)
        cursor = Cursor(ns, docs, cum, start, end)
        if batch_size is None:
            batch_size = DEFAULT_FIRST_BATCH
        if limit and batch_size:
            batch_size = min(batch_size, limit)
        return self._first_batch(cursor, batch_size, single)

    def cmd_get_more(self, db, cmd, seqs, body_raw, conn):
        cid = cmd["getMore"]
        coll_name = cmd.get("collection")
        with self._state_lock:
            self._stats["getMores"] += 1
            self._fault_getmores += 1
            nth = self._fault_getmores
            f = self._faults
            fire = None
            for key in ("close_on_getmore", "hang_on_getmore", "cursor_not_found_on_getmore",
                        "half_reply_on_getmore"):
                if f.get(key) == nth:
                    fire = key
                    self._stats["faultsFired"] += 1
                    break
        if fire == "close_on_getmore":
            raise _CloseConnection()
        if fire == "hang_on_getmore":
            raise _Hang()
        if fire == "cursor_not_found_on_getmore":
            with self._cursors_lock:
                self._cursors.pop(cid, None)
            raise CommandError(43, "CursorNotFound", "cursor id %d not found" % cid)
        if not isinstance(cid, int):
            raise CommandError(14, "TypeMismatch", "getMore must be an int64")
        batch_size = self._batch_size(cmd.get("batchSize"))
        if batch_size == 0:
            batch_size = None
        with self._cursors_lock:
            cursor = self._cursors.get(cid)
        if cursor is None:
            raise CommandError(43, "CursorNotFound", "cursor id %d not found" % cid)
        if coll_name is not None and cursor.ns != "%s.%s" % (db, coll_name):
            raise CommandError(13, "Unauthorized",
                               "Requested getMore on namespace '%s.%s', but cursor belongs "
                               "to a different namespace %s" % (db, coll_name, cursor.ns))
        with cursor.lock:
            i, j, nbytes = cursor.take(batch_size)
            done = cursor.exhausted
        if done:
            with self._cursors_lock:
                self._cursors.pop(cid, None)
        if fire == "half_reply_on_getmore":
            conn["half_reply"] = True
        return _cursor_reply_parts("nextBatch", cursor.docs, i, j, nbytes,
                                   0 if done else cid, cursor.ns)

    def cmd_kill_cursors(self, db, cmd, seqs, body_raw, conn):
        killed, missing = [], []
        with self._state_lock:
            self._stats["killCursors"] += 1
        with self._cursors_lock:
            for cid in cmd.get("cursors", []):
                if self._cursors.pop(cid, None) is not None:
                    killed.append(Int64(cid))
                else:
                    missing.append(Int64(cid))
        return SON([("cursorsKilled", killed), ("cursorsNotFound", missing),
                    ("cursorsAlive", []), ("cursorsUnknown", []), ("ok", 1.0)])

    def cmd_fake_fault(self, db, cmd, seqs, body_raw, conn):
        faults = dict((k, v) for k, v in cmd.items()
                      if k not in ("fakeFault", "clear") and k not in GENERIC_FIELDS)
        current = self.set_faults(faults, clear=bool(cmd.get("clear")))
        return SON([("faults", current), ("ok", 1.0)])

    def cmd_fake_stats(self, db, cmd, seqs, body_raw, conn):
        st = self.stats()
        if cmd.get("reset"):
            with self._state_lock:
                self._stats = self._zero_stats()
        reply = SON(st)
        reply["ok"] = 1.0
        return reply

    _COMMANDS = {
        "hello": cmd_hello, "isMaster": cmd_hello, "ismaster": cmd_hello,
        "ping": cmd_ping, "buildInfo": cmd_build_info, "buildinfo": cmd_build_info,
        "getParameter": cmd_get_parameter, "getCmdLineOpts": cmd_get_cmd_line_opts,
        "serverStatus": cmd_server_status, "whatsmyuri": cmd_whatsmyuri,
        "connectionStatus": cmd_connection_status,
        "replSetGetStatus": cmd_repl_set_get_status,
        "endSessions": cmd_end_sessions,
        "listDatabases": cmd_list_databases, "listCollections": cmd_list_collections,
        "create": cmd_create, "drop": cmd_drop, "dropDatabase": cmd_drop_database,
        "count": cmd_count, "aggregate": cmd_aggregate,
        "insert": cmd_insert, "delete": cmd_delete,
        "createIndexes": cmd_create_indexes, "listIndexes": cmd_list_indexes,
        "dropIndexes": cmd_drop_indexes, "deleteIndexes": cmd_drop_indexes,
        "collStats": cmd_coll_stats, "dbStats": cmd_db_stats,
        "find": cmd_find, "getMore": cmd_get_more, "killCursors": cmd_kill_cursors,
        "fakeFault": cmd_fake_fault, "fakeStats": cmd_fake_stats,
    }


def _recv_exact(sock, n):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            return None
        got += k
    return buf


def _raw_array_docs(body_raw, field):
    """Raw bytes of the documents in array `field` of a raw command body."""
    for etype, key, _es, vstart, vend in _iter_elements(body_raw):
        if key == field and etype == 0x04:
            out = []
            for t, _k, _e, s, e in _iter_elements(body_raw, vstart):
                if t != 0x03:
                    raise _bad_value("%s entries must be documents" % field.decode())
                out.append(body_raw[s:e])
            return out
    return []


# --------------------------------------------------------------------------
# command line


def _parse_args(argv):
    p = argparse.ArgumentParser(description="In-memory MongoDB wire-protocol fake for tests.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--port-file", help="write the port number to this file when ready")
    for key in FAULT_INT_KEYS:
        p.add_argument("--" + key.replace("_", "-"), "--" + key, dest=key, type=int,
                       metavar="N", default=None)
    p.add_argument("--error-on", "--error_on", dest="error_on", action="append",
                   metavar="CMD", help="fail CMD with code 8000 (repeatable, or comma-separated)")
    p.add_argument("--no-topology-version", dest="topology_version", action="store_false",
                   help="leave topologyVersion out of hello: pooled libmongoc clients then poll "
                        "instead of streaming, and mongoc_client_pool_destroy returns at once "
                        "instead of after ~0.5 s")
    p.add_argument("-v", "--verbose", action="store_true", help="log connections and commands to stderr")
    return p.parse_args(argv)


def main(argv=None):
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    faults = dict((k, getattr(args, k)) for k in FAULT_INT_KEYS if getattr(args, k))
    if args.error_on:
        faults["error_on"] = args.error_on
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    srv = FakeMongod(args.host, args.port, faults=faults, verbose=args.verbose,
                     topology_version=args.topology_version)
    try:
        srv.start()
    except OSError as e:
        sys.stderr.write("fake_mongod: cannot listen on %s:%d: %s\n" % (args.host, args.port, e))
        return 1
    if args.port_file:
        tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.port)
        os.rename(tmp, args.port_file)
    sys.stdout.write("listening %s:%d\n" % (args.host, srv.port))
    sys.stdout.flush()
    while not stop.wait(0.5):
        pass
    srv.stop()
    # Skip interpreter teardown: freeing a large in-memory store takes seconds.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
