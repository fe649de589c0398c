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
  * Commands: hello/isMaster/ismaster, ping, buildInfo, getParameter
    (featureCompatibilityVersion, authSchemaVersion: 5, cursorTimeoutMillis,
    enableTimeoutOfInactiveSessionCursors), setParameter (those last two),
    saslStart, saslContinue, logout, getCmdLineOpts,
    serverStatus, whatsmyuri, connectionStatus, replSetGetStatus (standalone
    error), listDatabases, listCollections, create, drop, dropDatabase, count,
    aggregate, insert, delete, createIndexes, listIndexes, dropIndexes, find,
    getMore, killCursors, endSessions, collStats (size: the sum of the stored
    documents' BSON sizes, as mongod reports it; a missing collection is
    NamespaceNotFound), dbStats, and the user management commands below.
    Filters: equality, $eq $ne $gt $gte $lt $lte $in $nin $exists $and $or
    $nor.  find honours skip, limit, batchSize, singleBatch,
    sort/hint {$natural: 1|-1}; projection is ignored; other sorts are refused.
    Aggregation stages: $match $skip $limit $count, $group (constant _id, $sum),
    $project / $unset of top-level fields (1/0 only) and the time-series
    $_internalUnpackBucket; another mongod stage is refused ("fake_mongod:
    unsupported aggregation stage"), an unknown one fails like mongod (40324).
    Unknown commands fail like mongod (code 59 CommandNotFound).
  * Batches like mongod: first batch 101 documents unless batchSize says
    otherwise, getMore fills up to 16 MiB of documents (at least one); replies
    are built by concatenating the stored bytes (no per-reply re-encoding).
    listCollections and listIndexes answer through cursors too: everything
    (up to 16 MiB) in the first batch unless cursor.batchSize says otherwise
    (mongod has no 101 default there), the rest through getMore.
  * Collection options, stored and listed in mongod 6.0's form and order
    (CollectionOptions::appendBSON): capped (size rounded up to a multiple of
    256, size/max written as appendNumber does: int32 below 2^30, else int64;
    the oldest documents go when max or size is exceeded), clusteredIndex
    ({key: {_id: 1}, unique: true} listed as {v: 2, key, name: "_id_",
    unique: true}; no _id index: listCollections has no idIndex, listIndexes
    gives the cluster key with clustered: true), collation (filled in to
    mongod's full spec, ICU "57.1", for "simple" and the locales en en_US fr
    fr_CA de es it pt nl ru sv pl da; the _id index and new indexes carry it;
    an unknown locale fails like mongod, a valid one whose defaults are not
    modelled is refused), validator / validationLevel / validationAction
    (stored as given; inserts are validated when the validator uses only the
    query operators above, refused otherwise unless bypassDocumentValidation),
    expireAfterSeconds (listed as int64; nothing expires), storageEngine,
    indexOptionDefaults, changeStreamPreAndPostImages, idIndex.  Unknown
    options fail like mongod (40415).  String comparisons under a non-simple
    collation (filters, $match, unique indexes or string _ids under a
    collation that equates different bytes) are refused: the fake compares
    bytes.
  * Views, kept where mongod keeps them: create {viewOn, pipeline[, collation]}
    adds {_id: "db.view", viewOn, pipeline[, collation]} to db.system.views
    (created on the first view and listed as an ordinary collection);
    listCollections lists the view as {name, type: "view", options: {viewOn,
    pipeline[, collation]}, info: {readOnly: true}}.  find / count / aggregate
    run the view's pipeline (views on views resolved) over the source;
    listIndexes and collStats fail with 166 "Namespace db.v is a view, not a
    collection", insert / delete answer that as a write error, createIndexes
    with 166 "Cannot create indexes on a view"; drop removes the definition.
  * Time-series collections (create {timeseries: {timeField, metaField?,
    granularity?}, expireAfterSeconds?}): the view X ({_id: "db.X", viewOn:
    "system.buckets.X", pipeline: [{$_internalUnpackBucket: {timeField,
    metaField, bucketMaxSpanSeconds, exclude: []}}]} in system.views), listed
    as {type: "timeseries", options: {expireAfterSeconds?, timeseries:
    {timeField, metaField, granularity, bucketMaxSpanSeconds}}, info:
    {readOnly: false}}, and the clustered buckets collection system.buckets.X
    (options {validator: mongod's $jsonSchema, clusteredIndex: true,
    expireAfterSeconds?, timeseries}, info with uuid, no idIndex, no indexes).
    Inserts into X are bucketed in mongod's control.version 1 format {_id:
    ObjectId whose time is control.min.time, control: {version: 1, min, max},
    meta, data: {field: {"0": v, ...}}}: one open bucket per meta value; a
    bucket takes a measurement while it holds fewer than 1000, stays under
    125 KiB and the time is in [min, min + bucketMaxSpanSeconds), min being the
    first time rounded down to 60 s / 1 h / 1 day (granularity seconds /
    minutes / hours); an open bucket is rewritten in place.  Reading X unpacks
    buckets ({timeField, metaField, then the data columns}); reading
    system.buckets.X gives the stored bytes; bucket documents inserted there
    directly (mongorestore's way) are checked against the validator and then
    read through X.  Indexes on X map to bucket indexes (metaField -> meta,
    f: 1 -> control.min.f/control.max.f) and back in listIndexes.
    Simplified: buckets are never compressed (mongod 6.0 rewrites closed
    buckets as control.version 2 BSONColumn buckets; such buckets inserted
    directly are stored and served, but reading them through X is refused),
    buckets group measurements by the exact bytes of the meta value, the
    min/max of an object or array is the whole value's BSON order (mongod
    goes field by field), deletes on X are modelled for metaField queries
    only, and nothing expires.
  * Users and roles, kept where mongod keeps them: admin.system.users
    ({_id: "db.user", userId: UUID, user, db, credentials: {"SCRAM-SHA-1":
    {iterationCount: 10000, salt, storedKey, serverKey}, "SCRAM-SHA-256":
    {iterationCount: 15000, ...}}, customData?, roles: [{role, db}]}, real
    SCRAM values: SHA-1 over the MD5 hex of "user:mongo:pwd", SHA-256 over the
    SASLprep'ed password, base64 salts of 16 / 28 random bytes; unique index
    user_1_db_1), admin.system.roles ({_id: "db.role", role, db, privileges
    (merged per resource, actions in mongod's order), roles}; role_1_db_1) and
    admin.system.version ({_id: "authSchema", currentVersion: 5}, with the
    featureCompatibilityVersion document), created by the first user or role
    command, so admin lists from then on.  Commands: createUser, updateUser,
    dropUser, dropAllUsersFromDatabase, usersInfo (1, name, {user, db}, list,
    {forAllDBs: true}, showCredentials, showCustomData, filter), createRole,
    dropRole (pulled from users and roles), dropAllRolesFromDatabase,
    rolesInfo (1, name, {role, db}, list, showPrivileges, showBuiltinRoles,
    showAuthenticationRestrictions) and _mergeAuthzCollections as mongorestore
    sends it ({tempUsersCollection: "admin.tempusers", tempRolesCollection:
    "admin.temproles", drop, db: "" for all databases, writeConcern}): like
    mongod, an entry already present is kept without drop and replaced with
    drop, and drop removes the entries of db not in the temporary collection.
    Not modelled (refused): the privileges of built-in roles (an
    authenticated user may do anything), usersInfo showPrivileges.
  * TLS (FakeMongod(tls=...), --tls-certificate-key-file / --tls-dir): every
    connection must speak TLS (mongod's requireTLS; a plain client's
    connection is closed), with a server certificate from tests/tls.py's
    throwaway CA, which clients trust through tlsCAFile; no client
    certificates.  fakeStats counts tlsConnections, tlsHandshakeFailures.
  * Authentication, SCRAM-SHA-256 and SCRAM-SHA-1 (RFC 5802 / RFC 7677) as
    mongod runs it, against the credentials stored in admin.system.users
    (users from FakeMongod(users=...), --user/--password-file, or
    createUser): saslStart {mechanism, payload[, options: {skipEmptyExchange}]}
    -> {conversationId: 1, done: false, payload: server-first}; saslContinue
    with client-final -> server-final ("v=..."), done: true with
    skipEmptyExchange, else done: false and an empty third exchange ends it.
    hello answers saslSupportedMechs ("db.user": that user's mechanisms, left
    out for an unknown user) and speculativeAuthenticate (the handshake's
    saslStart, as libmongoc 1.23 and pymongo send it; left out when it
    fails).  Any failure (wrong password, unknown user, bad nonce, proof or
    message) answers 18 AuthenticationFailed "Authentication failed." and
    ends the conversation; saslContinue without one is 17 ProtocolError; a
    mechanism other than the two is 334 MechanismUnavailable.  With auth on
    (FakeMongod(auth=True), --auth; implied by users), once a user exists,
    every known command but hello/isMaster, saslStart/saslContinue, logout,
    ping, buildInfo, connectionStatus (and fakeFault / fakeStats) answers
    13 Unauthorized "Command NAME requires authentication" until the
    connection authenticated; before any user exists everything runs
    (mongod's localhost exception).  Auth is off by default: SCRAM then
    still works, nothing requires it.  connectionStatus names the user and
    its roles; fakeStats counts authSucceeded, authFailed,
    speculativeAuthSucceeded, unauthorized and lists authenticatedUsers.
  * Idle cursors time out like mongod's (CursorManager::cursorShouldTimeout):
    a cursor idle for cursorTimeoutMillis (default 600000, 10 min) or longer
    is dropped, and its getMore answers 43 CursorNotFound; not one opened
    with noCursorTimeout, nor one opened in a session (with an lsid, as
    drivers' implicit sessions do) unless
    enableTimeoutOfInactiveSessionCursors is true (default false, as in
    mongod 6.0, which leaves those to the session's 30 min expiry - not
    modelled).  Set at start (cursor_timeout_ms=, timeout_session_cursors=;
    --cursor-timeout-ms, --timeout-session-cursors) or at run time with
    setParameter; fakeStats counts cursorsTimedOut.
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
        [--close-on-insert N] [--error-on CMD[,CMD...]] [--no-topology-version]
        [--tls-certificate-key-file PEM [--tls-key-file PEM] | --tls-dir DIR]
        [--auth] [--user NAME --password-file FILE]
        [--cursor-timeout-ms MS] [--timeout-session-cursors] [-v]
  prints exactly one line "listening HOST:PORT" when ready; SIGTERM/SIGINT
  stop it with exit status 0.

  In-process:  srv = FakeMongod(port=0).start(); srv.uri; srv.stop()
               FakeMongod(tls=True, users={"u": "pw"}): TLS with a CA of its
               own (srv.tls_ca_file; srv.uri carries tls=true&tlsCAFile=...)
               and authentication required.

Needs Debian's python3-pymongo (its bson module): run it with /usr/bin/python3.
"""

import argparse
import base64
import bisect
import datetime
import hashlib
import hmac
import itertools
import os
import random
import select
import signal
import socket
import stringprep
import struct
import sys
import threading
import time
import traceback
import unicodedata
import uuid

import bson
from bson.binary import Binary, UuidRepresentation
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
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

# Options a time-series collection takes (and lists).
_TS_ALLOWED_OPTIONS = ("storageEngine", "indexOptionDefaults", "collation", "timeseries",
                       "expireAfterSeconds", "temp")

# The unique indexes mongod creates on admin.system.users / admin.system.roles.
_AUTHZ_INDEXES = {
    "system.users": SON([("v", 2), ("unique", True), ("key", SON([("user", 1), ("db", 1)])),
                         ("name", "user_1_db_1")]),
    "system.roles": SON([("v", 2), ("unique", True), ("key", SON([("role", 1), ("db", 1)])),
                         ("name", "role_1_db_1")]),
}

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


def _filter_supported(filt):
    """True when _matches can evaluate filt (no operators it lacks)."""
    if not isinstance(filt, dict):
        return False
    for key, cond in filt.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(cond, list) or not all(_filter_supported(f) for f in cond):
                return False
        elif key.startswith("$"):
            return False
        elif isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond):
            if any(op not in _QUERY_OPS for op in cond):
                return False
    return True


_QUERY_OPS = frozenset(("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"))


# --------------------------------------------------------------------------
# raw BSON building and comparison (time-series buckets, projections)


def _elem(key, etype, value):
    """Raw bytes of one element: type, key, value bytes."""
    return bytes((etype,)) + _cstr(key) + value


def _doc_bytes(parts):
    body = b"".join(parts)
    return _INT32.pack(len(body) + 5) + body + b"\x00"


def _raw_elements(raw, start=0):
    """[(key str, type, value bytes)] of the top-level elements of raw."""
    return [(k.decode("utf-8"), t, raw[vs:ve])
            for t, k, _es, vs, ve in _iter_elements(raw, start)]


# mongod's canonical type order (canonicalizeBSONType)
_TYPE_RANK = {0xFF: -1, 0x06: 0, 0x0A: 5, 0x01: 10, 0x10: 10, 0x12: 10, 0x13: 10,
              0x02: 15, 0x0E: 15, 0x03: 20, 0x04: 25, 0x05: 30, 0x07: 35, 0x08: 40,
              0x09: 45, 0x11: 47, 0x0B: 50, 0x0C: 55, 0x0D: 60, 0x0F: 65, 0x7F: 100}
_UINT64 = struct.Struct("<Q")


def _raw_number(t, v):
    if t == 0x10:
        return _INT32.unpack(v)[0]
    if t == 0x12:
        return _INT64.unpack(v)[0]
    if t == 0x01:
        return _DOUBLE.unpack(v)[0]
    return Decimal128(v).to_decimal()


def _sign(a, b):
    return (a > b) - (a < b)


def _raw_cmp(t1, v1, t2, v2):
    """Compare two raw BSON values the way mongod orders them (simple collation)."""
    r1, r2 = _TYPE_RANK.get(t1, 200), _TYPE_RANK.get(t2, 200)
    if r1 != r2:
        return -1 if r1 < r2 else 1
    if r1 == 10:
        a, b = _raw_number(t1, v1), _raw_number(t2, v2)
        an, bn = a != a, b != b  # NaN sorts below every number
        if an or bn:
            return 0 if an and bn else (-1 if an else 1)
        return _sign(a, b)
    if r1 in (15, 60):  # strings, code: by bytes
        return _sign(v1[4:-1], v2[4:-1])
    if r1 in (20, 25):
        e1, e2 = _raw_elements(v1), _raw_elements(v2)
        for (k1, s1, x1), (k2, s2, x2) in zip(e1, e2):
            c = _sign(_TYPE_RANK.get(s1, 200), _TYPE_RANK.get(s2, 200))
            if c:
                return c
            if r1 == 20:
                c = _sign(k1.encode("utf-8"), k2.encode("utf-8"))
                if c:
                    return c
            c = _raw_cmp(s1, x1, s2, x2)
            if c:
                return c
        return _sign(len(e1), len(e2))
    if r1 == 30:  # length, subtype, bytes
        return _sign((len(v1), v1[4], v1[5:]), (len(v2), v2[4], v2[5:]))
    if r1 == 45:
        return _sign(_INT64.unpack(v1)[0], _INT64.unpack(v2)[0])
    if r1 == 47:
        return _sign(_UINT64.unpack(v1)[0], _UINT64.unpack(v2)[0])
    if r1 == 50:
        return _sign(v1.split(b"\x00")[:2], v2.split(b"\x00")[:2])
    return _sign(v1, v2)  # oid, bool, dbpointer, code with scope; null etc. equal


_FMT_CODEC = CodecOptions(document_class=SON, uuid_representation=UuidRepresentation.STANDARD)


def _fmt_value(v):
    """A value the way mongod's BSONObj::toString writes it (common types)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"%s"' % v
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{ " + ", ".join("%s: %s" % (k, _fmt_value(x)) for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        if not v:
            return "[]"
        return "[ " + ", ".join(_fmt_value(x) for x in v) + " ]"
    if v is None:
        return "null"
    return str(v)


def _append_number(n):
    """BSONObjBuilder::appendNumber(long long): int32 when |n| < 2^30."""
    n = int(n)
    return n if -(1 << 30) <= n < (1 << 30) else Int64(n)


# --------------------------------------------------------------------------
# collation specs (mongod 6.0 bundles ICU 57.1)

_COLLATION_VERSION = "57.1"
_COLLATION_DEFAULTS = SON([
    ("caseLevel", False), ("caseFirst", "off"), ("strength", 3),
    ("numericOrdering", False), ("alternate", "non-ignorable"),
    ("maxVariable", "punct"), ("normalization", False), ("backwards", False),
])
# Locales whose ICU 57.1 defaults the fake knows; only the ones that differ
# from the root defaults list an override.
_COLLATION_LOCALES = {
    "en": {}, "en_US": {}, "fr": {}, "fr_CA": {"backwards": True}, "de": {},
    "es": {}, "it": {}, "pt": {}, "nl": {}, "ru": {}, "sv": {}, "pl": {},
    "da": {"caseFirst": "upper"},
}
# Locales mongod accepts whose defaults the fake does not model (refused with
# a fake_mongod message instead of mongod's "invalid locale" one).
_COLLATION_UNMODELLED = frozenset((
    "af", "sq", "am", "ar", "hy", "as", "az", "bn", "be", "bs", "bs_Cyrl", "bg",
    "my", "ca", "chr", "zh", "zh_Hant", "hr", "cs", "dz", "en_US_POSIX", "eo",
    "et", "ee", "fo", "fil", "fi", "gl", "ka", "el", "gu", "ha", "haw", "he",
    "hi", "hu", "is", "ig", "smn", "id", "ga", "ja", "kl", "kn", "kk", "km",
    "kok", "ko", "ky", "lk", "lo", "lv", "li", "lt", "dsb", "lb", "mk", "ms",
    "ml", "mt", "mr", "mn", "ne", "se", "nb", "nn", "or", "om", "ps", "fa",
    "fa_AF", "pa", "ro", "sr", "sr_Latn", "si", "sk", "sl", "es_ES", "sw",
    "ta", "te", "th", "bo", "to", "tr", "uk", "hsb", "ur", "ug", "vi", "wae",
    "cy", "yi", "yo", "zu",
))


def _collation_spec(spec, field="collation"):
    """mongod's full collation spec for a user's one, or None for "simple"."""
    if not isinstance(spec, dict):
        raise CommandError(14, "TypeMismatch", "BSON field '%s' is the wrong type '%s', expected type 'object'"
                           % (field, type(spec).__name__))
    for k in spec:
        if k != "locale" and k not in _COLLATION_DEFAULTS and k != "version":
            raise CommandError(40415, "Location40415", "BSON field '%s.%s' is an unknown field." % (field, k))
    if "locale" not in spec:
        raise CommandError(40414, "Location40414",
                           "BSON field '%s.locale' is missing but a required field" % field)
    locale = spec["locale"]
    if not isinstance(locale, str):
        raise CommandError(14, "TypeMismatch", "BSON field '%s.locale' is the wrong type" % field)
    if locale == "simple":
        if len(spec) > 1:
            raise _bad_value('If "locale" is "simple", then "collation" must not contain any other fields')
        return None
    if locale not in _COLLATION_LOCALES:
        if locale in _COLLATION_UNMODELLED or "@collation=" in locale:
            raise _bad_value("fake_mongod: the collation defaults of locale %r are not modelled "
                             "(modelled: %s)" % (locale, ", ".join(sorted(_COLLATION_LOCALES))))
        raise _bad_value("Field 'locale' is invalid in: %s" % _fmt_value(spec))
    out = SON([("locale", locale)])
    overrides = _COLLATION_LOCALES[locale]
    choices = {"caseFirst": ("upper", "lower", "off"), "alternate": ("non-ignorable", "shifted"),
               "maxVariable": ("punct", "space")}
    for k, default in _COLLATION_DEFAULTS.items():
        v = spec.get(k, overrides.get(k, default))
        if isinstance(default, bool):
            if not isinstance(v, bool):
                raise CommandError(14, "TypeMismatch", "BSON field '%s.%s' is the wrong type, expected type 'bool'"
                                   % (field, k))
        elif k == "strength":
            if not _is_num(v) or int(v) != v:
                raise CommandError(14, "TypeMismatch", "BSON field '%s.strength' is the wrong type" % field)
            v = int(v)
            if not 1 <= v <= 5:
                raise _bad_value("Enumeration value '%d' for field '%s.strength' is not a valid value." % (v, field))
        else:
            if v not in choices[k]:
                raise _bad_value("Enumeration value '%s' for field '%s.%s' is not a valid value." % (v, field, k))
        out[k] = v
    version = spec.get("version", _COLLATION_VERSION)
    if version != _COLLATION_VERSION:
        raise CommandError(161, "IncompatibleCollationVersion",
                           "Requested collation version %s but the only available collator version was %s"
                           % (version, _COLLATION_VERSION))
    out["version"] = _COLLATION_VERSION
    return out


def _has_string_operand(value):
    if isinstance(value, str):
        return True
    if isinstance(value, dict):
        return any(_has_string_operand(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_string_operand(v) for v in value)
    return False


def _check_collated_filter(collation, filt, what):
    """The fake compares strings byte by byte (the simple collation): a
    query that compares strings under another collation is refused."""
    if collation and filt and _has_string_operand(filt):
        raise _bad_value("fake_mongod: %s compares strings under the collation {locale: \"%s\"}; only the "
                         "simple (binary) collation is modelled" % (what, collation["locale"]))


def _collation_equality_differs(collation):
    """True when a collation makes strings equal that differ in bytes."""
    return bool(collation) and (collation["strength"] < 3 or collation["alternate"] == "shifted")


# --------------------------------------------------------------------------
# aggregation stages (the few the fake evaluates; others are refused)

# mongod 6.0's stage names: a known one the fake cannot run is refused as
# unsupported, an unknown one fails like mongod (code 40324).
_MONGOD_STAGES = frozenset((
    "$addFields", "$bucket", "$bucketAuto", "$changeStream", "$collStats", "$count",
    "$currentOp", "$densify", "$documents", "$facet", "$fill", "$geoNear", "$graphLookup",
    "$group", "$indexStats", "$limit", "$listLocalSessions", "$listSessions", "$lookup",
    "$match", "$merge", "$out", "$planCacheStats", "$project", "$redact", "$replaceRoot",
    "$replaceWith", "$sample", "$search", "$searchMeta", "$set", "$setWindowFields",
    "$skip", "$sort", "$sortByCount", "$unionWith", "$unset", "$unwind",
    "$_internalUnpackBucket", "$listCatalog", "$shardedDataDistribution",
))


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


def _project(docs, spec, stage="$project"):
    """$project/$unset of top-level fields on raw documents (bytes kept)."""
    if stage == "$unset":
        names = [spec] if isinstance(spec, str) else spec
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise CommandError(31002, "Location31002",
                               "$unset specification must be a string or an array containing only string values")
        spec = SON((n, 0) for n in names)
    if not isinstance(spec, dict) or not spec:
        raise CommandError(51272, "Location51272", "Invalid $project :: caused by :: projection specification must be an object")
    include, exclude = set(), set()
    keep_id = True
    for k, v in spec.items():
        if "." in k or k.startswith("$"):
            raise _bad_value("fake_mongod: %s supports top-level field names only, not %r" % (stage, k))
        if isinstance(v, bool) or _is_num(v):
            on = bool(v)
        else:
            raise _bad_value("fake_mongod: %s supports inclusion/exclusion (1/0) only, not %r" % (stage, v))
        if k == "_id":
            keep_id = on
        elif on:
            if exclude:
                raise CommandError(31253, "Location31253", "Invalid $project :: caused by :: Cannot do inclusion "
                                   "on field %s in exclusion projection" % k)
            include.add(k)
        else:
            if include:
                raise CommandError(31254, "Location31254", "Invalid $project :: caused by :: Cannot do exclusion "
                                   "on field %s in inclusion projection" % k)
            exclude.add(k)
    if list(spec) == ["_id"] and keep_id:  # {_id: 1}: an inclusion of _id alone
        include.add("_id")
    elif not keep_id and not include:
        exclude.add("_id")
    out = []
    for raw in docs:
        parts = []
        for t, k, es, vs, ve in _iter_elements(raw):
            name = k.decode("utf-8")
            if include:
                if name in include or (name == "_id" and keep_id):
                    parts.append(raw[es:ve])
            elif name not in exclude:
                parts.append(raw[es:ve])
        out.append(_doc_bytes(parts))
    return out


def _unpack_buckets(docs, spec):
    """$_internalUnpackBucket over raw control.version 1 buckets: each
    measurement is {timeField, metaField (if the bucket has meta), the other
    data columns in data order}, as mongod 6.0's BucketUnpacker builds it."""
    if not isinstance(spec, dict) or not isinstance(spec.get("timeField"), str):
        raise _bad_value("fake_mongod: $_internalUnpackBucket needs a timeField")
    for k, v in spec.items():
        if k in ("include", "exclude") and v:
            raise _bad_value("fake_mongod: $_internalUnpackBucket supports only exclude: []")
        if k not in ("timeField", "metaField", "bucketMaxSpanSeconds", "exclude", "include"):
            raise _bad_value("fake_mongod: unsupported $_internalUnpackBucket field %s" % k)
    time_field = spec["timeField"]
    meta_field = spec.get("metaField")
    tkey = _cstr(time_field)
    mkey = _cstr(meta_field) if meta_field is not None else None
    out = []
    for raw in docs:
        fields = dict((k, (t, v)) for k, t, v in _raw_elements(raw))
        version = fields.get("control")
        ver = None
        if version and version[0] == 0x03:
            for k, t, v in _raw_elements(version[1]):
                if k == "version" and t in (0x01, 0x10, 0x12):
                    ver = _raw_number(t, v)
        if ver != 1:
            raise _bad_value("fake_mongod: only control.version 1 (uncompressed) time-series buckets can be "
                             "unpacked; bucket %r has version %r" % (fields.get("_id", (0, b""))[1].hex(), ver))
        data = fields.get("data")
        if not data or data[0] != 0x03:
            continue
        meta = fields.get("meta")
        meta_elem = (bytes((meta[0],)) + mkey + meta[1]) if (meta is not None and mkey is not None) else b""
        time_col = None
        cols = []
        for k, t, v in _raw_elements(data[1]):
            if t != 0x03:
                continue
            if k == time_field:
                time_col = _raw_elements(v)
            else:
                cols.append([_cstr(k), _raw_elements(v), 0])
        if not time_col:
            continue
        for idx, tt, tv in time_col:
            parts = [bytes((tt,)) + tkey + tv]
            if meta_elem:
                parts.append(meta_elem)
            for col in cols:
                key, elems, pos = col
                if pos < len(elems) and elems[pos][0] == idx:
                    parts.append(bytes((elems[pos][1],)) + key + elems[pos][2])
                    col[2] = pos + 1
            out.append(_doc_bytes(parts))
    return out


def _run_pipeline(docs, pipeline):
    """Run the stages the fake supports over raw documents."""
    for stage in pipeline:
        if not isinstance(stage, dict) or len(stage) != 1:
            raise CommandError(40323, "Location40323",
                               "A pipeline stage specification object must contain exactly one field.")
        op, arg = next(iter(stage.items()))
        if op == "$match":
            if not isinstance(arg, dict):
                raise CommandError(15959, "Location15959", "the match filter must be an expression in an object")
            docs = _filter_raw(docs, arg)
        elif op == "$skip":
            docs = docs[int(arg):]
        elif op == "$limit":
            docs = docs[:int(arg)]
        elif op == "$count":
            docs = [_encode(SON([(arg, len(docs))]))] if docs else []
        elif op == "$group":
            docs = _group(docs, arg)
        elif op in ("$project", "$unset"):
            docs = _project(docs, arg, op)
        elif op == "$_internalUnpackBucket":
            docs = _unpack_buckets(docs, arg)
        elif op in _MONGOD_STAGES:
            raise _bad_value("fake_mongod: unsupported aggregation stage %s" % op)
        else:
            raise CommandError(40324, "Location40324", "Unrecognized pipeline stage name: '%s'" % op)
    return docs


def _check_pipeline_names(pipeline):
    """Validate a view pipeline's shape and stage names like mongod's parser."""
    if not isinstance(pipeline, list):
        raise CommandError(14, "TypeMismatch", "'pipeline' option must be specified as an array")
    for stage in pipeline:
        if not isinstance(stage, dict) or len(stage) != 1:
            raise CommandError(40323, "Location40323",
                               "A pipeline stage specification object must contain exactly one field.")
        op = next(iter(stage))
        if op not in _MONGOD_STAGES:
            raise CommandError(40324, "Location40324", "Unrecognized pipeline stage name: '%s'" % op)
        if op in ("$out", "$merge"):
            raise CommandError(167, "OptionNotSupportedOnView",
                               "%s cannot be used in a view definition" % op)


# --------------------------------------------------------------------------
# time-series collections (mongod 6.0 bucket format, control.version 1)

TS_GRANULARITY = {  # granularity -> (rounding seconds, bucketMaxSpanSeconds)
    "seconds": (60, 3600), "minutes": (3600, 86400), "hours": (86400, 2592000)}
TS_BUCKET_MAX_COUNT = 1000
TS_BUCKET_MAX_SIZE = 125 * 1024


def _ts_validator(time_field):
    """The $jsonSchema validator mongod 6.0 sets on system.buckets.X."""
    date = SON([("bsonType", "object"), ("required", [time_field]),
                ("properties", SON([(time_field, SON([("bsonType", "date")]))]))])
    control = SON([
        ("bsonType", "object"), ("required", ["version", "min", "max"]),
        ("properties", SON([
            ("version", SON([("bsonType", "number")])),
            ("min", date), ("max", SON(date)),
            ("closed", SON([("bsonType", "bool")])),
            ("count", SON([("bsonType", "number"), ("minimum", 1)])),
        ])),
        ("additionalProperties", False),
    ])
    return SON([("$jsonSchema", SON([
        ("bsonType", "object"), ("required", ["_id", "control", "data"]),
        ("properties", SON([
            ("_id", SON([("bsonType", "objectId")])), ("control", control),
            ("data", SON([("bsonType", "object")])), ("meta", SON()),
        ])),
        ("additionalProperties", False),
    ]))])


def _ts_view_pipeline(ts):
    spec = SON([("timeField", ts["timeField"])])
    if ts.get("metaField") is not None:
        spec["metaField"] = ts["metaField"]
    spec["bucketMaxSpanSeconds"] = ts["bucketMaxSpanSeconds"]
    spec["exclude"] = []
    return [SON([("$_internalUnpackBucket", spec)])]


def _bucket_schema_error(raw, time_field):
    """None when raw satisfies the bucket validator, else the reason."""
    try:
        fields = _raw_elements(raw)
    except (ValueError, IndexError, struct.error):
        return "invalid BSON"
    names = [k for k, _t, _v in fields]
    byname = dict((k, (t, v)) for k, t, v in fields)
    for k in names:
        if k not in ("_id", "control", "data", "meta"):
            return "additional property %s" % k
    for k in ("_id", "control", "data"):
        if k not in byname:
            return "missing required property %s" % k
    if byname["_id"][0] != 0x07:
        return "_id is not an objectId"
    if byname["data"][0] != 0x03:
        return "data is not an object"
    if byname["control"][0] != 0x03:
        return "control is not an object"
    control = dict((k, (t, v)) for k, t, v in _raw_elements(byname["control"][1]))
    for k in control:
        if k not in ("version", "min", "max", "closed", "count"):
            return "additional property control.%s" % k
    for k in ("version", "min", "max"):
        if k not in control:
            return "missing required property control.%s" % k
    if _TYPE_RANK.get(control["version"][0]) != 10:
        return "control.version is not a number"
    for k in ("min", "max"):
        t, v = control[k]
        if t != 0x03:
            return "control.%s is not an object" % k
        inner = dict((n, it) for n, it, _iv in _raw_elements(v))
        if inner.get(time_field) != 0x09:
            return "control.%s.%s is missing or not a date" % (k, time_field)
    if "closed" in control and control["closed"][0] != 0x08:
        return "control.closed is not a bool"
    if "count" in control and (_TYPE_RANK.get(control["count"][0]) != 10 or
                                _raw_number(*control["count"]) < 1):
        return "control.count is not a number >= 1"
    return None


class _Bucket(object):
    """An open bucket the fake may still add measurements to."""
    __slots__ = ("oid", "min_time", "count", "size", "meta", "columns", "mins", "maxs", "index")

    def __init__(self, min_time, meta):
        oid = ObjectId().binary
        self.oid = struct.pack(">I", (min_time // 1000) & 0xFFFFFFFF) + oid[4:]
        self.min_time = min_time  # rounded down, ms
        self.count = 0
        self.size = 0
        self.meta = meta          # (type, value bytes) or None
        self.columns = {}         # field -> [(index, type, value)] (insertion ordered)
        self.mins = {}            # field -> (type, value)
        self.maxs = {}
        self.index = None         # position in the bucket collection once stored

    def add(self, elems, time_field, size):
        i = self.count
        for k, t, v in elems:
            self.columns.setdefault(k, []).append((i, t, v))
            if k == time_field:
                cur = self.maxs.get(k)
                if cur is None or _raw_cmp(t, v, cur[0], cur[1]) > 0:
                    self.maxs[k] = (t, v)
                self.mins[k] = (0x09, _INT64.pack(self.min_time))
                continue
            cur = self.mins.get(k)
            if cur is None or _raw_cmp(t, v, cur[0], cur[1]) < 0:
                self.mins[k] = (t, v)
            cur = self.maxs.get(k)
            if cur is None or _raw_cmp(t, v, cur[0], cur[1]) > 0:
                self.maxs[k] = (t, v)
        self.count += 1
        self.size += size

    def encode(self):
        def minmax(d):
            return _doc_bytes(_elem(k, t, v) for k, (t, v) in d.items())
        control = _doc_bytes([_elem("version", 0x10, _INT32.pack(1)),
                              _elem("min", 0x03, minmax(self.mins)),
                              _elem("max", 0x03, minmax(self.maxs))])
        parts = [_elem("_id", 0x07, self.oid), _elem("control", 0x03, control)]
        if self.meta is not None:
            parts.append(_elem("meta", self.meta[0], self.meta[1]))
        data = _doc_bytes(_elem(k, 0x03, _doc_bytes(_elem(str(i), t, v) for i, t, v in col))
                          for k, col in self.columns.items())
        parts.append(_elem("data", 0x03, data))
        return _doc_bytes(parts)


def _ts_index_to_buckets(ts, key):
    """A time-series index key as the bucket collection's key (None: not supported)."""
    out = SON()
    meta = ts.get("metaField")
    for k, d in key.items():
        if meta is not None and (k == meta or k.startswith(meta + ".")):
            out["meta" + k[len(meta):]] = d
        elif d in (1, -1, 1.0, -1.0) and not isinstance(d, bool) and "." not in k and k != "_id":
            lo, hi = "control.min." + k, "control.max." + k
            if d > 0:
                out[lo], out[hi] = 1, 1
            else:
                out[hi], out[lo] = -1, -1
        else:
            return None
    return out


def _ts_index_from_buckets(ts, key):
    """The inverse of _ts_index_to_buckets (None for keys it cannot map back)."""
    out = SON()
    meta = ts.get("metaField")
    items = list(key.items())
    i = 0
    while i < len(items):
        k, d = items[i]
        if k == "meta" or k.startswith("meta."):
            if meta is None:
                return None
            out[meta + k[4:]] = d
            i += 1
            continue
        if i + 1 < len(items) and k.startswith("control."):
            k2, d2 = items[i + 1]
            if d == d2 and d in (1, -1):
                f1, f2 = k[len("control.min."):], k2[len("control.max."):]
                if d == 1 and k.startswith("control.min.") and k2.startswith("control.max.") and f1 == f2:
                    out[f1] = 1
                    i += 2
                    continue
                f1, f2 = k[len("control.max."):], k2[len("control.min."):]
                if d == -1 and k.startswith("control.max.") and k2.startswith("control.min.") and f1 == f2:
                    out[f1] = -1
                    i += 2
                    continue
        return None
    return out


# --------------------------------------------------------------------------
# users and roles (admin.system.users / admin.system.roles, mongod 6.0 shapes)

SCRAM_SHA1_ITERATIONS = 10000
SCRAM_SHA256_ITERATIONS = 15000
AUTH_SCHEMA_VERSION = 5

_BUILTIN_DB_ROLES = ("dbAdmin", "dbOwner", "read", "readWrite", "userAdmin")
_BUILTIN_ADMIN_ROLES = (
    "__queryableBackup", "__system", "backup", "clusterAdmin", "clusterManager",
    "clusterMonitor", "dbAdminAnyDatabase", "enableSharding", "hostManager",
    "readAnyDatabase", "readWriteAnyDatabase", "restore", "root", "userAdminAnyDatabase")

# ActionType names in the order mongod serializes an ActionSet.
_ACTION_TYPES = tuple("""
addShard advanceClusterTime allCollectionStats analyze analyzeShardKey anyAction
appendOplogNote applicationMessage auditConfigure auditLogRotate authCheck authenticate
authSchemaUpgrade bypassDocumentValidation bypassWriteBlockingMode changeCustomData
changePassword changeOwnPassword changeOwnCustomData changeStream checkFreeMonitoringStatus
checkMetadataConsistency cleanupOrphaned clearJumboFlag cleanupStructuredEncryptionData
closeAllDatabases collMod collStats compact compactStructuredEncryptionData
configureQueryAnalyzer connPoolStats connPoolSync convertToCapped cpuProfiler
createCollection createDatabase createIndex createRole createSearchIndexes createUser
dbCheck dbHash dbStats dropAllRolesFromDatabase dropAllUsersFromDatabase dropCollection
dropConnections dropDatabase dropIndex dropRole dropSearchIndex dropUser emptycapped
enableProfiler enableSharding exportCollection find flushRouterConfig forceUUID fsync
fsyncUnlock getClusterParameter getDatabaseVersion getDefaultRWConcern getCmdLineOpts
getLog getParameter getShardMap getShardVersion grantRole grantPrivilegesToRole
grantRolesToRole grantRolesToUser hostInfo impersonate importCollection indexStats inprog
insert internal invalidateUserCache issueDirectShardOperations killAnyCursor
killAnySession killCursors killop listCachedAndActiveUsers listCollections listCursors
listDatabases listIndexes listSampledQueries listSearchIndexes listSessions listShards
logRotate updateSearchIndex moveChunk moveCollection netstat oidcListKeys oidcRefreshKeys
oidReset operationMetrics planCacheIndexFilter planCacheRead planCacheWrite querySettings
queryStatsRead queryStatsReadTransformed refineCollectionShardKey reIndex remove
removeShard renameCollection renameCollectionSameDB repairDatabase replSetConfigure
replSetGetConfig replSetGetStatus replSetHeartbeat replSetReconfig replSetResizeOplog
replSetStateChange reshardCollection resync revokeRole revokePrivilegesFromRole
revokeRolesFromRole revokeRolesFromUser rotateCertificates runAsLessPrivilegedUser
runTenantMigration serverStatus setAuthenticationRestriction setClusterParameter
setDefaultRWConcern setFeatureCompatibilityVersion setFreeMonitoring setParameter
setUserWriteBlockMode shardCollection shardedDataDistribution shardingState shutdown
splitChunk splitVector storageDetails top touch trafficRecord
transitionFromDedicatedConfigServer transitionToDedicatedConfigServer unlock useTenant
useUUID update updateRole updateUser validate viewRole viewUser applyOps
setChangeStreamState getChangeStreamState
""".split())
_ACTION_ORDER = dict((a, i) for i, a in enumerate(_ACTION_TYPES))


def _is_builtin_role(role, db):
    return role in _BUILTIN_DB_ROLES or (db == "admin" and role in _BUILTIN_ADMIN_ROLES)


def _builtin_roles_for_db(db):
    names = list(_BUILTIN_DB_ROLES) + (list(_BUILTIN_ADMIN_ROLES) if db == "admin" else [])
    return sorted(names)


def _role_names(value, dbname, field="roles"):
    """Resolve a roles array ("name" or {role, db}) to [(role, db)]."""
    if not isinstance(value, list):
        raise CommandError(14, "TypeMismatch", "BSON field '%s' is the wrong type, expected type 'array'" % field)
    out = []
    for r in value:
        if isinstance(r, str):
            out.append((r, dbname))
        elif isinstance(r, dict):
            role, db = r.get("role"), r.get("db")
            if not isinstance(role, str) or not isinstance(db, str) or set(r) - {"role", "db"}:
                raise _bad_value("Role names must be either strings or objects of the form {role: roleName, db: databaseName}")
            out.append((role, db))
        else:
            raise _bad_value("Role names must be either strings or objects of the form {role: roleName, db: databaseName}")
    return out


def _role_docs(names):
    return [SON([("role", r), ("db", d)]) for r, d in names]


def _user_names(value, dbname, what="usersInfo"):
    items = value if isinstance(value, list) else [value]
    out = []
    for u in items:
        if isinstance(u, str):
            out.append((u, dbname))
        elif isinstance(u, dict) and isinstance(u.get("user"), str) and isinstance(u.get("db"), str):
            out.append((u["user"], u["db"]))
        else:
            raise _bad_value("User name must be either a string or an object of the form "
                             "{user: userName, db: databaseName}")
    return out


def _normalize_privileges(privs, role_db=None):
    """Privileges as mongod stores them: one entry per resource (actions merged
    and in ActionType order), resources as {db, collection} / {cluster} /
    {anyResource}."""
    if not isinstance(privs, list):
        raise CommandError(14, "TypeMismatch", "BSON field 'privileges' is the wrong type, expected type 'array'")
    merged = []  # [(resource key, resource SON, set of actions)]
    for p in privs:
        if not isinstance(p, dict) or set(p) - {"resource", "actions"}:
            raise _bad_value("Privilege documents must be objects with exactly 'resource' and 'actions'")
        res, actions = p.get("resource"), p.get("actions")
        if not isinstance(res, dict):
            raise CommandError(40414, "Location40414", "BSON field 'privilege.resource' is missing but a required field")
        if not isinstance(actions, list):
            raise CommandError(40414, "Location40414", "BSON field 'privilege.actions' is missing but a required field")
        if set(res) == {"cluster"} and res["cluster"] is True:
            rdoc, rkey = SON([("cluster", True)]), ("cluster",)
        elif set(res) == {"anyResource"} and res["anyResource"] is True:
            rdoc, rkey = SON([("anyResource", True)]), ("any",)
        elif set(res) == {"db", "collection"} and isinstance(res["db"], str) and isinstance(res["collection"], str):
            rdoc, rkey = SON([("db", res["db"]), ("collection", res["collection"])]), ("ns", res["db"], res["collection"])
        else:
            raise _bad_value("fake_mongod: unsupported privilege resource %s (use {db, collection}, "
                             "{cluster: true} or {anyResource: true})" % _fmt_value(res))
        if role_db is not None and role_db != "admin" and not (rkey[0] == "ns" and rkey[1] == role_db):
            raise CommandError(49, "InvalidRoleModification",
                               "Roles on the '%s' database cannot be granted privileges that target other "
                               "databases or the cluster" % role_db)
        acts = set()
        for a in actions:
            if not isinstance(a, str) or a not in _ACTION_ORDER:
                raise _bad_value("Unrecognized action privilege string: %s" % (a,))
            acts.add(a)
        for entry in merged:
            if entry[0] == rkey:
                entry[2].update(acts)
                break
        else:
            merged.append((rkey, rdoc, acts))
    return [SON([("resource", rdoc), ("actions", sorted(acts, key=_ACTION_ORDER.get))])
            for _k, rdoc, acts in merged]


def _saslprep(s):
    """RFC 4013 SASLprep of a stored string (mongod's icuSaslPrep)."""
    if all(ord(c) < 128 for c in s):
        return s  # printable ASCII is unchanged (control characters are checked below)
    mapped = []
    for c in s:
        if stringprep.in_table_c12(c):
            mapped.append(" ")
        elif not stringprep.in_table_b1(c):
            mapped.append(c)
    out = unicodedata.normalize("NFKC", "".join(mapped))
    prohibited = (stringprep.in_table_c12, stringprep.in_table_c21, stringprep.in_table_c22,
                  stringprep.in_table_c3, stringprep.in_table_c4, stringprep.in_table_c5,
                  stringprep.in_table_c6, stringprep.in_table_c7, stringprep.in_table_c8,
                  stringprep.in_table_c9, stringprep.in_table_a1)
    for c in out:
        if any(f(c) for f in prohibited):
            raise _bad_value("Error preparing SASL string: prohibited character")
    if any(stringprep.in_table_d1(c) for c in out):
        if any(stringprep.in_table_d2(c) for c in out) or not (
                stringprep.in_table_d1(out[0]) and stringprep.in_table_d1(out[-1])):
            raise _bad_value("Error preparing SASL string: invalid bidirectional text")
    return out


def _scram_credentials(hash_name, password, iterations):
    """{iterationCount, salt, storedKey, serverKey} as mongod's
    scram::Secrets<>::generateCredentials builds them (salt: hash length - 4
    random bytes; all base64)."""
    digest_size = hashlib.new(hash_name).digest_size
    salt = os.urandom(digest_size - 4)
    salted = hashlib.pbkdf2_hmac(hash_name, password, salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hash_name).digest()
    stored_key = hashlib.new(hash_name, client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hash_name).digest()
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return SON([("iterationCount", iterations), ("salt", b64(salt)),
                ("storedKey", b64(stored_key)), ("serverKey", b64(server_key))])


def _build_credentials(user, cmd):
    pwd = cmd.get("pwd")
    if pwd is None:
        return SON([("external", True)])
    if not isinstance(pwd, str):
        raise CommandError(14, "TypeMismatch", "BSON field 'pwd' is the wrong type, expected type 'string'")
    mechs = cmd.get("mechanisms")
    if mechs is None:
        mechs = ["SCRAM-SHA-1", "SCRAM-SHA-256"]
    if not isinstance(mechs, list):
        raise CommandError(14, "TypeMismatch", "BSON field 'mechanisms' is the wrong type, expected type 'array'")
    if not mechs:
        raise _bad_value("mechanisms field must not be empty")
    for m in mechs:
        if m not in ("SCRAM-SHA-1", "SCRAM-SHA-256"):
            raise _bad_value("Unknown auth mechanism '%s'" % (m,))
    digest = cmd.get("digestPassword", True)
    creds = SON()
    if "SCRAM-SHA-1" in mechs:
        hashed = (hashlib.md5(("%s:mongo:%s" % (user, pwd)).encode("utf-8")).hexdigest()
                  if digest else pwd)
        creds["SCRAM-SHA-1"] = _scram_credentials("sha1", hashed.encode("utf-8"), SCRAM_SHA1_ITERATIONS)
    if "SCRAM-SHA-256" in mechs:
        if not digest:
            raise _bad_value("Use of SCRAM-SHA-256 requires undigested passwords")
        creds["SCRAM-SHA-256"] = _scram_credentials("sha256", _saslprep(pwd).encode("utf-8"),
                                                    SCRAM_SHA256_ITERATIONS)
    return creds


def _check_auth_restrictions(ar):
    if not isinstance(ar, list) or not all(
            isinstance(r, dict) and set(r) <= {"clientSource", "serverAddress"} for r in ar):
        raise _bad_value("authenticationRestrictions must be an array of documents with "
                         "clientSource and/or serverAddress")
    return ar


# --------------------------------------------------------------------------
# authentication: SCRAM (RFC 5802, RFC 7677) as mongod's SASL commands run it

SCRAM_HASHES = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}
SCRAM_NONCE_BYTES = 24  # mongod's server nonce: 24 random bytes, base64

# Commands mongod runs before authentication (requiresAuth() false); every
# other one answers 13 Unauthorized while auth is on and users exist.  The
# fake's own fakeFault / fakeStats are let through too.
PREAUTH_COMMANDS = frozenset((
    "hello", "isMaster", "ismaster", "saslStart", "saslContinue", "logout",
    "ping", "buildInfo", "buildinfo", "connectionStatus", "fakeFault", "fakeStats",
))

DEFAULT_CURSOR_TIMEOUT_MS = 10 * 60 * 1000  # mongod's cursorTimeoutMillis


class _AuthFailed(Exception):
    """A SCRAM conversation that must end: mongod tells the client only
    "Authentication failed." (code 18), whatever the reason."""


def _auth_failed_error():
    return CommandError(18, "AuthenticationFailed", "Authentication failed.")


def _scram_fields(text):
    """[(attribute, value)] of a SCRAM message "a=v,b=w" (RFC 5802 section 7)."""
    out = []
    for part in text.split(","):
        if len(part) < 2 or part[1] != "=" or not part[0].isalpha():
            raise _AuthFailed("malformed SCRAM attribute %r" % part[:20])
        out.append((part[0], part[2:]))
    return out


def _scram_username(value):
    """saslname -> username: "=2C" is ",", "=3D" is "=", any other "=" is an error."""
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c == "=":
            esc = value[i:i + 3]
            if esc == "=2C":
                out.append(",")
            elif esc == "=3D":
                out.append("=")
            else:
                raise _AuthFailed("bad escape in SCRAM username")
            i += 3
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _sasl_payload(cmd):
    """The payload of saslStart / saslContinue as bytes (BinData or string)."""
    payload = cmd.get("payload", b"")
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    raise CommandError(14, "TypeMismatch", "BSON field 'payload' is the wrong type")


class _ScramConversation(object):
    """Server side of one SCRAM exchange.  first() takes client-first and
    returns server-first; final() takes client-final, checks the proof
    against the stored credentials and returns server-final.  Both raise
    _AuthFailed."""

    def __init__(self, mechanism, lookup):
        self.mechanism = mechanism
        self.hash_name = SCRAM_HASHES[mechanism]
        self._lookup = lookup  # username -> credentials document or None
        self.user = None
        self._stored_key = self._server_key = None
        self._bare = self._server_first = self._nonce = self._cbind = None

    def first(self, payload):
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise _AuthFailed("client-first is not UTF-8")
        parts = text.split(",", 2)
        if len(parts) != 3:
            raise _AuthFailed("malformed client-first message")
        flag, authzid, bare = parts
        if flag not in ("n", "y"):  # "p=...": channel binding, which mongod does not offer
            raise _AuthFailed("channel binding is not supported")
        if authzid and not authzid.startswith("a="):
            raise _AuthFailed("malformed authzid")
        fields = _scram_fields(bare)
        if len(fields) < 2 or fields[0][0] != "n" or fields[1][0] != "r" or not fields[1][1]:
            raise _AuthFailed("client-first needs n= then r=")
        if any(k == "m" for k, _v in fields):
            raise _AuthFailed("SCRAM extensions are not supported")
        self.user = _scram_username(fields[0][1])
        creds = self._lookup(self.user)
        if not creds:
            raise _AuthFailed("no such user, or no %s credentials" % self.mechanism)
        try:
            salt = creds["salt"]
            iterations = int(creds["iterationCount"])
            self._stored_key = base64.b64decode(creds["storedKey"])
            self._server_key = base64.b64decode(creds["serverKey"])
        except (KeyError, TypeError, ValueError):
            raise _AuthFailed("stored credentials are incomplete")
        self._cbind = base64.b64encode((flag + "," + authzid + ",").encode("utf-8")).decode("ascii")
        self._nonce = fields[1][1] + base64.b64encode(os.urandom(SCRAM_NONCE_BYTES)).decode("ascii")
        self._bare = bare
        self._server_first = "r=%s,s=%s,i=%d" % (self._nonce, salt, iterations)
        return self._server_first.encode("utf-8")

    def final(self, payload):
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise _AuthFailed("client-final is not UTF-8")
        cut = text.rfind(",p=")
        if cut < 0:
            raise _AuthFailed("client-final has no proof")
        fields = dict(_scram_fields(text[:cut]))
        if fields.get("c") != self._cbind:
            raise _AuthFailed("channel binding data differs from the gs2 header")
        if fields.get("r") != self._nonce:
            raise _AuthFailed("nonce mismatch")
        try:
            proof = base64.b64decode(text[cut + 3:], validate=True)
        except ValueError:
            raise _AuthFailed("proof is not base64")
        auth_message = ("%s,%s,%s" % (self._bare, self._server_first, text[:cut])).encode("utf-8")
        signature = hmac.new(self._stored_key, auth_message, self.hash_name).digest()
        if len(proof) != len(signature):
            raise _AuthFailed("proof has the wrong length")
        client_key = bytes(a ^ b for a, b in zip(proof, signature))
        if not hmac.compare_digest(hashlib.new(self.hash_name, client_key).digest(), self._stored_key):
            raise _AuthFailed("storedKey mismatch")  # wrong password
        server_sig = hmac.new(self._server_key, auth_message, self.hash_name).digest()
        return b"v=" + base64.b64encode(server_sig)


# --------------------------------------------------------------------------
# TLS


def _tls_module():
    """tests/tls.py (throwaway CA and server certificates), beside this file."""
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    import tls
    return tls


def _server_ssl_context(cert_file, key_file=None):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file or cert_file)
    return ctx


# --------------------------------------------------------------------------
# store


class Collection(object):
    def __init__(self, db, name, options=None, id_index=None, clustered=None):
        self.db = db
        self.name = name
        self.docs = []       # raw BSON bytes, insertion order (append-only list;
        self.cum = [0]       # replaced, never edited, on delete) + byte prefix sums
        self.ids = set()
        self.uuid = os.urandom(16)
        self.options = SON(options or {})
        self.clustered = clustered  # the clusteredIndex option (True: legacy/buckets)
        if clustered:
            self.indexes = []  # a clustered collection has no separate _id index
        else:
            self.indexes = [id_index or SON([("v", 2), ("key", SON([("_id", 1)])), ("name", "_id_")])]
        self.unique = {}     # unique index name -> (index spec, set of value keys)
        self.version = 0     # bumped on every change (view catalog cache)
        self.open_buckets = {}  # time-series bucket collections: meta key -> _Bucket

    @property
    def ns(self):
        return "%s.%s" % (self.db, self.name)

    @property
    def id_index(self):
        if self.indexes and self.indexes[0]["name"] == "_id_":
            return self.indexes[0]
        return None

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
        self.version += 1
        return raw

    def replace_docs(self, docs):
        """Replace the document list (after a delete) with fresh containers so
        open cursors keep their snapshot."""
        old_unique = self.unique
        self.docs, self.cum, self.ids = [], [0], set()
        self.unique = dict((n, (idx, set())) for n, (idx, _) in old_unique.items())
        self.open_buckets = {}
        for raw in docs:
            self.add(raw)
        self.version += 1

    def replace_at(self, i, raw):
        """Replace document i by raw (same _id) copy-on-write, so open cursors
        keep their snapshot; unique secondary keys are re-checked."""
        old = self.docs[i]
        if self.unique:
            decoded, old_decoded = _decode(raw), _decode(old)
            for name, (index, values) in self.unique.items():
                v, ov = self._unique_values(index, decoded), self._unique_values(index, old_decoded)
                if v is not None and v != ov and v in values:
                    kv = SON((f, _get_path(decoded, f)) for f in index["key"])
                    raise _DuplicateKey(name, index["key"], kv)
            for name, (index, values) in self.unique.items():
                ov, v = self._unique_values(index, old_decoded), self._unique_values(index, decoded)
                values.discard(ov)
                if v is not None:
                    values.add(v)
        docs = list(self.docs)
        docs[i] = raw
        delta = len(raw) - len(old)
        self.docs = docs
        self.cum = self.cum[:i + 1] + [c + delta for c in self.cum[i + 1:]]
        self.version += 1

    def find_id(self, key):
        """Index of the document whose _id has key (None if absent)."""
        if key not in self.ids:
            return None
        for i, raw in enumerate(self.docs):
            for etype, k, _es, vstart, vend in _iter_elements(raw):
                if k == b"_id" and _id_key(etype, raw[vstart:vend]) == key:
                    return i
                break
        return None

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

    def enforce_cap(self):
        """Capped collections: drop the oldest documents over max / size."""
        if not self.options.get("capped"):
            return
        size = int(self.options.get("size", 0))
        cap_max = int(self.options.get("max", 0)) or None
        n, k = len(self.docs), 0
        while k < n and ((cap_max is not None and n - k > cap_max) or
                         (size and self.cum[n] - self.cum[k] > size)):
            k += 1
        if k:
            self.replace_docs(self.docs[k:])

    def listing(self, name_only=False):
        """The listCollections entry of a collection."""
        if name_only:
            return SON([("name", self.name), ("type", "collection")])
        entry = SON([
            ("name", self.name), ("type", "collection"), ("options", self.options),
            ("info", SON([("readOnly", False), ("uuid", Binary(self.uuid, 4))])),
        ])
        if self.id_index is not None:
            entry["idIndex"] = self.id_index
        return entry

    info = listing

    def index_list(self):
        """listIndexes of a collection: a clustered collection (not a
        time-series bucket collection) lists its cluster key first."""
        out = []
        if isinstance(self.clustered, dict):
            spec = SON(self.clustered)
            if self.options.get("collation"):
                spec["collation"] = self.options["collation"]
            spec["clustered"] = True
            out.append(spec)
        return out + list(self.indexes)


def _fmt_key(kv):
    return "{ " + ", ".join("%s: %r" % (k, v) for k, v in kv.items()) + " }"


class Cursor(object):
    __slots__ = ("id", "ns", "docs", "cum", "pos", "end", "lock", "last_used",
                 "session", "no_timeout")

    def __init__(self, ns, docs, cum, pos, end):
        self.id = 0
        self.ns = ns
        self.docs = docs
        self.cum = cum
        self.pos = pos
        self.end = end
        self.lock = threading.Lock()
        self.last_used = 0.0     # time.monotonic() of its last use
        self.session = False     # opened with an lsid (a logical session)
        self.no_timeout = False  # find's noCursorTimeout

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
                 topology_version=True, tls=None, users=None, auth=None,
                 cursor_timeout_ms=DEFAULT_CURSOR_TIMEOUT_MS, timeout_session_cursors=False):
        """tls: None (plain TCP); True (a throwaway CA and server certificate
        made with tests/tls.py, removed by stop(); tls_ca_file names the CA);
        an object with cert_file, key_file (and ca_file), such as
        tls.TLSMaterial; a (cert_file, key_file) pair; or an ssl.SSLContext.
        Every connection must then speak TLS (mongod's requireTLS).

        users: {name: password} or [(name, password)]: created in admin with
        role root, as createUser makes them.  auth: require authentication
        (mongod --auth); default: whether users were given.

        cursor_timeout_ms: mongod's cursorTimeoutMillis (None: never);
        timeout_session_cursors: its enableTimeoutOfInactiveSessionCursors."""
        self.host = host
        self.topology_version = topology_version
        self._req_port = port
        self.port = None
        self.verbose = verbose
        self._store = {}  # db -> {name: Collection} (insertion ordered)
        self._store_lock = threading.RLock()
        self._view_cache = {}  # db -> ((system.views uuid, version), {name: definition})
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
        self._ctx = threading.local()  # the command the connection's thread runs
        self.cursor_timeout_ms = cursor_timeout_ms
        self.timeout_session_cursors = bool(timeout_session_cursors)
        self._last_reap = 0.0
        self._ssl_ctx = None
        self._own_tls = None
        self.tls_ca_file = None
        if tls is not None and tls is not False:
            self._setup_tls(tls)
        self.auth_required = bool(users) if auth is None else bool(auth)
        if isinstance(users, dict):
            users = list(users.items())
        for name, password in users or ():
            self.add_user(name, password)
        if faults:
            self.set_faults(faults)

    def _setup_tls(self, tls):
        import ssl
        if isinstance(tls, ssl.SSLContext):
            self._ssl_ctx = tls
            return
        if tls is True:
            tls = self._own_tls = _tls_module().TLSMaterial()
        if isinstance(tls, (tuple, list)):
            cert_file, key_file = tls
        else:
            cert_file, key_file = tls.cert_file, tls.key_file
            self.tls_ca_file = getattr(tls, "ca_file", None)
        self._ssl_ctx = _server_ssl_context(cert_file, key_file)

    def add_user(self, name, password, db="admin", roles=("root",), mechanisms=None):
        """Create a user as createUser does (SCRAM-SHA-1 and -256 credentials)."""
        cmd = SON([("createUser", name), ("pwd", password),
                   ("roles", [SON([("role", r), ("db", db)]) for r in roles])])
        if mechanisms:
            cmd["mechanisms"] = list(mechanisms)
        reply = self.cmd_create_user(db, cmd, {}, None, None)
        if not reply.get("ok"):
            raise ValueError("cannot create user %r: %s" % (name, reply.get("errmsg")))

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
        """mongodb://HOST:PORT/ (with ?tls=true[&tlsCAFile=CA] under TLS)."""
        host = "[%s]" % self.host if ":" in self.host else self.host
        uri = "mongodb://%s:%d/" % (host, self.port)
        if self._ssl_ctx is not None:
            uri += "?tls=true"
            if self.tls_ca_file:
                uri += "&tlsCAFile=" + self.tls_ca_file
        return uri

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
                # the plain socket's shutdown, also for a TLS one: SSLSocket's
                # would drop its TLS state under the thread reading it
                socket.socket.shutdown(c, socket.SHUT_RDWR)
            except OSError:
                pass
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except (OSError, TypeError):
                pass
        if self._own_tls is not None:
            self._own_tls.cleanup()

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
                "killCursors": 0, "faultsFired": 0, "tlsConnections": 0,
                "tlsHandshakeFailures": 0, "authSucceeded": 0, "authFailed": 0,
                "speculativeAuthSucceeded": 0, "unauthorized": 0, "cursorsTimedOut": 0,
                "authenticatedUsers": []}

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
        self._reap_cursors(force=True)
        with self._state_lock:
            st = dict(self._stats)
            st["commands"] = dict(st["commands"])
            st["authenticatedUsers"] = list(st["authenticatedUsers"])
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
        conn = {"id": conn_id, "addr": addr, "user": None}
        try:
            if self._ssl_ctx is not None:
                tsock = self._tls_handshake(sock, conn_id)
                if tsock is None:
                    return
                sock = tsock
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

    def _tls_handshake(self, sock, conn_id):
        """The TLS socket for an accepted one, or None when the client does
        not speak TLS (mongod's requireTLS closes such a connection)."""
        import ssl
        sock.settimeout(30)
        tsock = self._ssl_ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self._state_lock:
            self._conns[conn_id] = tsock
        try:
            tsock.do_handshake()
        except (ssl.SSLError, OSError) as e:
            self._log("connection %d: TLS handshake failed: %s" % (conn_id, e))
            with self._state_lock:
                self._stats["tlsHandshakeFailures"] += 1
            tsock.close()
            return None
        tsock.settimeout(None)
        with self._state_lock:
            self._stats["tlsConnections"] += 1
        return tsock

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
        self._ctx.cmd = cmd
        try:
            if (handler is not None and self.auth_required and conn is not None and
                    conn.get("user") is None and name not in PREAUTH_COMMANDS and
                    self._have_users()):
                with self._state_lock:
                    self._stats["unauthorized"] += 1
                raise CommandError(13, "Unauthorized", "Command %s requires authentication" % name)
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

    def _create_coll(self, db, name, options=None, id_index=None, clustered=None):
        if not isinstance(name, str) or not name or "\x00" in name or name.startswith("$"):
            raise CommandError(73, "InvalidNamespace", "Invalid collection name: %r" % (name,))
        if not isinstance(db, str) or not db or any(ch in db for ch in '/\\. "$\x00'):
            raise CommandError(73, "InvalidNamespace", "Invalid database name: %r" % (db,))
        coll = Collection(db, name, options, id_index=id_index, clustered=clustered)
        if db == "admin" and name in _AUTHZ_INDEXES:  # mongod's createSystemIndexes
            index = SON(_AUTHZ_INDEXES[name])
            coll.indexes.append(index)
            coll.add_unique_index(index)
        self._store.setdefault(db, {})[name] = coll
        return coll

    def _views(self, db):
        """{name: view definition} of a database, read from its system.views
        collection (where mongod keeps them), cached until it changes."""
        coll = self._get_coll(db, "system.views")
        if coll is None:
            return {}
        stamp = (coll.uuid, coll.version)
        cached = self._view_cache.get(db)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        views = {}
        prefix = db + "."
        for raw in coll.docs:
            try:
                d = bson.decode(raw, codec_options=_FMT_CODEC)
            except Exception:
                continue
            vid = d.get("_id")
            if isinstance(vid, str) and vid.startswith(prefix) and isinstance(d.get("viewOn"), str):
                views[vid[len(prefix):]] = d
        self._view_cache[db] = (stamp, views)
        return views

    def _lookup(self, db, name):
        """What a namespace is: ("collection", Collection), ("view", definition),
        ("timeseries", (definition, buckets Collection or None)) or (None, None)."""
        coll = self._get_coll(db, name)
        if coll is not None:
            return "collection", coll
        view = self._views(db).get(name)
        if view is None:
            return None, None
        if view["viewOn"] == "system.buckets." + name:
            buckets = self._get_coll(db, view["viewOn"])
            if buckets is None or "timeseries" in buckets.options:
                return "timeseries", (view, buckets)
        return "view", view

    def _resolve_view(self, db, name):
        """(underlying collection name, whole pipeline) of a view; views on views resolved."""
        pipeline, chain, cur = [], [name], name
        while True:
            kind, obj = self._lookup(db, cur)
            if kind not in ("view", "timeseries"):
                return cur, pipeline
            view = obj if kind == "view" else obj[0]
            pipeline = list(view.get("pipeline") or []) + pipeline
            cur = view["viewOn"]
            if cur in chain:
                raise CommandError(5, "GraphContainsCycle", "View cycle detected: [%s]" % ", ".join(
                    "%s.%s" % (db, c) for c in chain + [cur]))
            chain.append(cur)
            if len(chain) > 21:
                raise CommandError(165, "ViewDepthLimitExceeded",
                                   "View depth too deep or view cycle detected. Maximum depth is 20")

    @staticmethod
    def _not_a_collection(db, name):
        return CommandError(166, "CommandNotSupportedOnView",
                            "Namespace %s.%s is a view, not a collection" % (db, name))

    def _collation_for(self, db, name, spec=None):
        """The collation a query on db.name runs with: the one it gives, else
        the namespace's default (None: simple)."""
        if spec is not None:
            return _collation_spec(spec)
        kind, obj = self._lookup(db, name)
        if kind == "collection":
            return obj.options.get("collation")
        if kind == "view":
            return obj.get("collation")
        if kind == "timeseries" and obj[1] is not None:
            return obj[1].options.get("collation")
        return None

    def _check_query(self, db, name, filt, spec=None, pipeline=()):
        """Refuse what the fake would answer differently from mongod: string
        comparisons (filter, a view's or the request's $match stages) under a
        non-simple collation."""
        with self._store_lock:
            collation = self._collation_for(db, name, spec)
            if not collation:
                return
            stages = list(pipeline)
            if self._get_coll(db, name) is None and self._lookup(db, name)[0] is not None:
                stages = self._resolve_view(db, name)[1] + stages
        _check_collated_filter(collation, filt, "the query")
        for stage in stages:
            if isinstance(stage, dict) and "$match" in stage:
                _check_collated_filter(collation, stage["$match"], "a $match stage")

    def _register_cursor(self, cursor):
        cmd = getattr(self._ctx, "cmd", None) or {}
        cursor.session = "lsid" in cmd
        cursor.no_timeout = bool(cmd.get("noCursorTimeout"))
        cursor.last_used = time.monotonic()
        self._reap_cursors()
        with self._cursors_lock:
            while True:
                cid = random.getrandbits(63)
                if cid and cid not in self._cursors:
                    break
            cursor.id = cid
            self._cursors[cid] = cursor

    def _cursor_expired(self, cursor, now):
        """mongod's CursorManager::cursorShouldTimeout: idle for
        cursorTimeoutMillis or longer, unless noCursorTimeout, or opened in
        a session while enableTimeoutOfInactiveSessionCursors is off (mongod
        leaves those to the session's expiry, which the fake does not model)."""
        limit = self.cursor_timeout_ms
        if limit is None or cursor.no_timeout or (cursor.session and not self.timeout_session_cursors):
            return False
        return (now - cursor.last_used) * 1000.0 >= limit

    def _reap_cursors(self, force=False):
        """Drop timed-out cursors (mongod's ClientCursorMonitor; here at most
        once a second, when cursors are opened, killed or counted)."""
        if self.cursor_timeout_ms is None:
            return
        now = time.monotonic()
        if not force and now - self._last_reap < 1.0:
            return
        self._last_reap = now
        with self._cursors_lock:
            dead = [cid for cid, c in self._cursors.items() if self._cursor_expired(c, now)]
            for cid in dead:
                del self._cursors[cid]
        if dead:
            self._log("%d cursor(s) timed out" % len(dead))
            with self._state_lock:
                self._stats["cursorsTimedOut"] += len(dead)

    def _first_batch(self, cursor, batch_size, single_batch=False):
        i, j, nbytes = cursor.take(batch_size)
        if not cursor.exhausted and not single_batch:
            self._register_cursor(cursor)
        return _cursor_reply_parts("firstBatch", cursor.docs, i, j, nbytes,
                                   cursor.id, cursor.ns)

    def _list_cursor(self, ns, entries, batch_size):
        """A cursor over listing entries (listCollections, listIndexes): like
        mongod, everything (up to 16 MiB) in the first batch unless
        cursor.batchSize says otherwise; getMore continues it."""
        raws = [e if isinstance(e, bytes) else _encode(e) for e in entries]
        cursor = Cursor(ns, raws, _cumsizes(raws), 0, len(raws))
        return self._first_batch(cursor, batch_size)

    def _cursor_batch_size(self, cmd):
        cur = cmd.get("cursor")
        if cur is None:
            return None
        if not isinstance(cur, dict):
            raise CommandError(14, "TypeMismatch", "BSON field 'cursor' is the wrong type, expected type 'object'")
        return self._batch_size(cur.get("batchSize"))

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
        mechs = cmd.get("saslSupportedMechs")
        if isinstance(mechs, str) and "." in mechs:
            # "db.user": the mechanisms that user has credentials for (none: left out)
            found = self._find_user(mechs.split(".", 1)[1], mechs.split(".", 1)[0])
            if found is not None:
                reply["saslSupportedMechs"] = [m for m in found[1].get("credentials") or {}
                                               if m in SCRAM_HASHES]
        spec = cmd.get("speculativeAuthenticate")
        if isinstance(spec, dict) and conn is not None:
            # the handshake's saslStart (mongod 4.4+): answered here when it
            # goes through, left out when it does not (the client then
            # authenticates the usual way and is told why)
            started = self._speculative_auth(spec, conn)
            if started is not None:
                reply["speculativeAuthenticate"] = started
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
        if cmd.get("authSchemaVersion") or cmd.get("getParameter") == "*":
            reply["authSchemaVersion"] = AUTH_SCHEMA_VERSION
        if cmd.get("cursorTimeoutMillis") or cmd.get("getParameter") == "*":
            t = self.cursor_timeout_ms
            reply["cursorTimeoutMillis"] = Int64(t if t is not None else 2 ** 63 - 1)
        if cmd.get("enableTimeoutOfInactiveSessionCursors") or cmd.get("getParameter") == "*":
            reply["enableTimeoutOfInactiveSessionCursors"] = self.timeout_session_cursors
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
        users, roles = [], []
        who = conn.get("user") if conn else None
        if who is not None:
            users.append(SON([("user", who[0]), ("db", who[1])]))
            found = self._find_user(who[0], who[1])
            for r in (found[1].get("roles") or []) if found else []:
                roles.append(SON([("role", r.get("role")), ("db", r.get("db"))]))
        return SON([("authInfo", SON([("authenticatedUsers", users),
                                      ("authenticatedUserRoles", roles)])), ("ok", 1.0)])

    # ---- authentication

    def _have_users(self):
        coll = self._get_coll("admin", "system.users")
        return coll is not None and len(coll.docs) > 0

    def _sasl_start(self, db, cmd, conn, speculative=False):
        mech = cmd.get("mechanism")
        if mech not in SCRAM_HASHES:
            raise CommandError(334, "MechanismUnavailable",
                               "Received authentication for mechanism %s which is unknown or "
                               "not enabled" % (mech,))

        def lookup(user):
            found = self._find_user(user, db)
            return None if found is None else (found[1].get("credentials") or {}).get(mech)

        conv = _ScramConversation(mech, lookup)
        opts = cmd.get("options")
        conn["sasl"] = None
        try:
            out = conv.first(_sasl_payload(cmd))
        except _AuthFailed as e:
            self._auth_failed(conn, db, conv, e)
        conn["sasl"] = {"conv": conv, "db": db, "step": 1, "speculative": speculative,
                        "skip_empty": isinstance(opts, dict) and bool(opts.get("skipEmptyExchange"))}
        return SON([("conversationId", 1), ("done", False), ("payload", out), ("ok", 1.0)])

    def _auth_failed(self, conn, db, conv, why):
        """End the conversation as mongod does: log the reason, tell the
        client only "Authentication failed." (18)."""
        conn["sasl"] = None
        with self._state_lock:
            self._stats["authFailed"] += 1
        self._log("conn %d: %s authentication of %r on %s failed: %s"
                  % (conn["id"], conv.mechanism, conv.user, db, why))
        raise _auth_failed_error()

    def _speculative_auth(self, spec, conn):
        if "saslStart" not in spec:  # MONGODB-X509's {authenticate: 1}: not modelled
            return None
        db = spec.get("db") if isinstance(spec.get("db"), str) else "admin"
        try:
            reply = self._sasl_start(db, spec, conn, speculative=True)
        except CommandError:
            return None
        del reply["ok"]
        return reply

    def cmd_sasl_start(self, db, cmd, seqs, body_raw, conn):
        return self._sasl_start(db, cmd, conn)

    def cmd_sasl_continue(self, db, cmd, seqs, body_raw, conn):
        state = conn.get("sasl")
        if state is None:
            raise CommandError(17, "ProtocolError", "No SASL session state found")
        if cmd.get("conversationId") != 1:
            raise CommandError(17, "ProtocolError", "Invalid conversationId %r" % (cmd.get("conversationId"),))
        conv = state["conv"]
        payload = _sasl_payload(cmd)
        if state["step"] == 1:
            try:
                out = conv.final(payload)
            except _AuthFailed as e:
                self._auth_failed(conn, state["db"], conv, e)
            if not state["skip_empty"]:  # the empty third exchange comes next
                state["step"] = 2
                return SON([("conversationId", 1), ("done", False), ("payload", out), ("ok", 1.0)])
        else:
            if payload:
                self._auth_failed(conn, state["db"], conv, "the last SCRAM message is not empty")
            out = b""
        conn["sasl"] = None
        conn["user"] = (conv.user, state["db"])
        with self._state_lock:
            st = self._stats
            st["authSucceeded"] += 1
            if state["speculative"]:
                st["speculativeAuthSucceeded"] += 1
            name = "%s@%s" % (conv.user, state["db"])
            if name not in st["authenticatedUsers"]:
                st["authenticatedUsers"].append(name)
        self._log("conn %d: authenticated as %s@%s (%s)" % (conn["id"], conv.user, state["db"],
                                                            conv.mechanism))
        return SON([("conversationId", 1), ("done", True), ("payload", out), ("ok", 1.0)])

    def cmd_logout(self, db, cmd, seqs, body_raw, conn):
        conn["user"] = None
        conn["sasl"] = None
        return {"ok": 1.0}

    def cmd_set_parameter(self, db, cmd, seqs, body_raw, conn):
        if db != "admin":
            raise CommandError(13, "Unauthorized", "setParameter may only be run against the admin database.")
        names = [k for k in cmd if k != "setParameter" and k not in GENERIC_FIELDS]
        if not names:
            raise CommandError(72, "InvalidOptions", "no option found to set, use help:true to see options ")
        reply = SON()
        for k in names:
            v = cmd[k]
            if k == "cursorTimeoutMillis":
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise _bad_value("cursorTimeoutMillis must be a number")
                old, self.cursor_timeout_ms = self.cursor_timeout_ms, int(v)
                reply["was"] = Int64(old if old is not None else 2 ** 63 - 1)
            elif k == "enableTimeoutOfInactiveSessionCursors":
                old, self.timeout_session_cursors = self.timeout_session_cursors, bool(v)
                reply["was"] = old
            else:
                raise CommandError(72, "InvalidOptions", "attempted to set unrecognized parameter "
                                   "[%s], use help:true to see options " % k)
        reply["ok"] = 1.0
        return reply

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
        if not isinstance(filt, dict):
            raise CommandError(14, "TypeMismatch", "BSON field 'filter' is the wrong type, expected type 'object'")
        name_only = bool(cmd.get("nameOnly"))
        batch_size = self._cursor_batch_size(cmd)
        out = []

        def consider(entry):  # mongod matches the entry it would return
            if not filt or _matches(entry, filt):
                out.append(entry)

        with self._store_lock:
            views = self._views(db)
            listed = set()
            for coll in list(self._store.get(db, {}).values()):
                if coll.name.startswith("system.buckets.") and "timeseries" in coll.options:
                    vname = coll.name[len("system.buckets."):]
                    view = views.get(vname)
                    if view is not None and view["viewOn"] == coll.name:
                        # listed with its buckets collection's options, like mongod
                        consider(self._timeseries_listing(vname, coll, name_only))
                        listed.add(vname)
                consider(coll.listing(name_only))
            # mongod leaves views out for exactly {type: "collection"} (cloning)
            if filt != {"type": "collection"}:
                for vname, view in views.items():
                    if vname in listed:
                        continue
                    kind, obj = self._lookup(db, vname)
                    if kind == "timeseries":
                        consider(self._timeseries_listing(vname, None, name_only))
                    elif kind == "view":
                        consider(self._view_listing(vname, view, name_only))
        return self._list_cursor("%s.$cmd.listCollections" % db, out, batch_size)

    @staticmethod
    def _view_listing(name, view, name_only):
        entry = SON([("name", name), ("type", "view")])
        if name_only:
            return entry
        options = SON([("viewOn", view["viewOn"]), ("pipeline", view.get("pipeline") or [])])
        if view.get("collation"):
            options["collation"] = view["collation"]
        entry["options"] = options
        entry["info"] = SON([("readOnly", True)])
        return entry

    @staticmethod
    def _timeseries_listing(name, buckets, name_only):
        entry = SON([("name", name), ("type", "timeseries")])
        if name_only:
            return entry
        options = SON()
        if buckets is not None:
            options = SON((k, v) for k, v in buckets.options.items() if k in _TS_ALLOWED_OPTIONS)
        entry["options"] = options
        entry["info"] = SON([("readOnly", False)])
        return entry

    _CREATE_FIELDS = frozenset((
        "capped", "size", "max", "autoIndexId", "idIndex", "storageEngine", "validator",
        "validationLevel", "validationAction", "indexOptionDefaults", "viewOn", "pipeline",
        "collation", "recordPreImages", "changeStreamPreAndPostImages", "timeseries",
        "clusteredIndex", "expireAfterSeconds", "encryptedFields", "temp", "flags"))

    def cmd_create(self, db, cmd, seqs, body_raw, conn):
        name = cmd["create"]
        if not isinstance(name, str):
            raise CommandError(14, "TypeMismatch", "collection name has invalid type %s" % type(name).__name__)
        ns = "%s.%s" % (db, name)
        opts = SON()
        for k, v in cmd.items():
            if k == "create" or k in GENERIC_FIELDS:
                continue
            if k not in self._CREATE_FIELDS:
                raise CommandError(40415, "Location40415", "BSON field 'create.%s' is an unknown field." % k)
            opts[k] = v
        reply = SON()
        if "autoIndexId" in opts:
            reply["note"] = "The autoIndexId option is deprecated and will be removed in a future release"
            if not opts["autoIndexId"]:
                raise _bad_value("fake_mongod: autoIndexId: false (a collection without an _id index) "
                                 "is not modelled")
        clustered = opts.get("clusteredIndex")
        if clustered is None or clustered is False:
            if opts.get("capped") and "size" not in opts:
                raise CommandError(72, "InvalidOptions", "the 'size' field is required when 'capped' is true")
            if ("size" in opts or "max" in opts) and not opts.get("capped"):
                raise CommandError(72, "InvalidOptions", "the 'capped' field needs to be true when either "
                                   "the 'size' or 'max' fields are present")
        else:
            if opts.get("capped"):
                raise CommandError(6127800, "Location6127800", "Clustered capped collection only available "
                                   "with 'enableTestCommands' server parameter")
            if "size" in opts:
                raise CommandError(6049200, "Location6049200", "'size' field for capped collections is not "
                                   "allowed on clustered collections. Did you mean 'capped: true' with "
                                   "'expireAfterSeconds'?")
            if "max" in opts:
                raise CommandError(6049204, "Location6049204", "'max' field for capped collections is not "
                                   "allowed on clustered collections. Did you mean 'capped: true' with "
                                   "'expireAfterSeconds'?")
        if opts.get("temp"):
            raise CommandError(72, "InvalidOptions", "the 'temp' field is an invalid option")
        if "pipeline" in opts and "viewOn" not in opts:
            raise CommandError(72, "InvalidOptions", "'pipeline' requires 'viewOn' to also be specified")
        if "encryptedFields" in opts:
            raise CommandError(6346402, "Location6346402", "Encrypted collections are not supported on standalone")
        is_buckets = name.startswith("system.buckets.")
        ts = opts.get("timeseries")
        if ts is not None:
            for k, v in opts.items():
                if k == "capped" and not v:
                    continue
                if k in ("validator", "clusteredIndex") and is_buckets:
                    continue
                if k not in _TS_ALLOWED_OPTIONS:
                    raise CommandError(72, "InvalidOptions", "%s: 'timeseries' is not allowed with '%s'" % (ns, k))
            ts = self._timeseries_options(ns, ts)
        if "expireAfterSeconds" in opts:
            if ts is None and not clustered:
                raise CommandError(72, "InvalidOptions", "'expireAfterSeconds' is only supported on time-series "
                                   "collections or when the 'clusteredIndex' option is specified")
            eas = opts["expireAfterSeconds"]
            if not _is_num(eas) or eas != int(eas) or eas < 0:
                raise CommandError(72, "InvalidOptions", "TTL index 'expireAfterSeconds' option must be "
                                   "a non-negative integer, but found %r" % (eas,))
        if "idIndex" in opts and "viewOn" in opts:
            raise CommandError(72, "InvalidOptions", "'idIndex' is not allowed with 'viewOn': %s"
                               % _fmt_value(opts["idIndex"]))
        cs = opts.get("changeStreamPreAndPostImages")
        if cs is not None and (not isinstance(cs, dict) or set(cs) != {"enabled"} or
                               not isinstance(cs["enabled"], bool)):
            raise _bad_value("changeStreamPreAndPostImages must be {enabled: <bool>}")
        if opts.get("recordPreImages") and cs and cs["enabled"]:
            raise CommandError(72, "InvalidOptions", "'recordPreImages' and 'changeStreamPreAndPostImages.enabled' "
                               "can not be set to true simultaneously")
        collation = _collation_spec(opts["collation"]) if "collation" in opts else None
        with self._store_lock:
            self._check_ns_free(db, name)
            if "viewOn" in opts:
                self._create_view(db, name, opts, collation)
            elif ts is not None and not is_buckets:
                self._create_timeseries(db, name, opts, ts, collation)
            else:
                self._create_collection(db, name, opts, collation, ts)
        reply["ok"] = 1.0
        return reply

    def _check_ns_free(self, db, name):
        kind, _obj = self._lookup(db, name)
        if kind == "collection":
            raise CommandError(48, "NamespaceExists", "Collection %s.%s already exists." % (db, name))
        if kind == "timeseries":
            raise CommandError(48, "NamespaceExists", "A timeseries collection already exists. NS: %s.%s" % (db, name))
        if kind == "view":
            raise CommandError(48, "NamespaceExists", "A view already exists. NS: %s.%s" % (db, name))

    @staticmethod
    def _timeseries_options(ns, ts):
        """The timeseries option as mongod 6.0 stores it (defaults filled in)."""
        if not isinstance(ts, dict):
            raise CommandError(14, "TypeMismatch", "'timeseries' must be a document")
        for k in ts:
            if k not in ("timeField", "metaField", "granularity", "bucketMaxSpanSeconds"):
                raise CommandError(40415, "Location40415", "BSON field 'timeseries.%s' is an unknown field." % k)
        tf = ts.get("timeField")
        if tf is None:
            raise CommandError(40414, "Location40414", "BSON field 'timeseries.timeField' is missing but a required field")
        if not isinstance(tf, str):
            raise CommandError(14, "TypeMismatch", "BSON field 'timeseries.timeField' is the wrong type '%s', "
                               "expected type 'string'" % type(tf).__name__)
        if "." in tf:
            raise CommandError(72, "InvalidOptions", "%s: 'timeField' must be a top-level field and not contain a '.'" % ns)
        mf = ts.get("metaField")
        if mf is not None:
            if not isinstance(mf, str):
                raise CommandError(14, "TypeMismatch", "BSON field 'timeseries.metaField' is the wrong type '%s', "
                                   "expected type 'string'" % type(mf).__name__)
            if mf == "_id":
                raise CommandError(72, "InvalidOptions", "'metaField' cannot be \"_id\"")
            if mf == tf:
                raise CommandError(72, "InvalidOptions", "'metaField' cannot be the same as 'timeField'")
            if "." in mf:
                raise CommandError(72, "InvalidOptions", "%s: 'metaField' must be a top-level field and not contain a '.'" % ns)
        gran = ts.get("granularity", "seconds")
        if gran not in TS_GRANULARITY:
            raise _bad_value("Enumeration value '%s' for field 'timeseries.granularity' is not a valid value." % (gran,))
        span = TS_GRANULARITY[gran][1]
        given = ts.get("bucketMaxSpanSeconds")
        if given is not None and given != span:
            raise CommandError(5510500, "Location5510500", "Timeseries 'bucketMaxSpanSeconds' is not configurable "
                               "to a value other than the default of %d for the provided granularity" % span)
        out = SON([("timeField", tf)])
        if mf is not None:
            out["metaField"] = mf
        out["granularity"] = gran
        out["bucketMaxSpanSeconds"] = span
        return out

    @staticmethod
    def _clustered_option(name, value):
        """The clusteredIndex option as mongod lists it (None: not clustered)."""
        if isinstance(value, bool):
            if not value:
                return None
            if not name.startswith("system.buckets."):
                raise CommandError(5979703, "Location5979703", "The 'clusteredIndex' legacy format "
                                   "{clusteredIndex: <bool>} is only supported for specific internal "
                                   "collections and vice versa")
            return True
        if not isinstance(value, dict):
            raise CommandError(14, "TypeMismatch", "BSON field 'clusteredIndex' is the wrong type, "
                               "expected types '[bool, object]'")
        for k in value:
            if k not in ("v", "key", "name", "unique"):
                raise CommandError(40415, "Location40415", "BSON field 'clusteredIndex.%s' is an unknown field." % k)
        for k in ("key", "unique"):
            if k not in value:
                raise CommandError(40414, "Location40414",
                                   "BSON field 'clusteredIndex.%s' is missing but a required field" % k)
        if name.startswith("system.buckets."):
            raise CommandError(5979703, "Location5979703", "The 'clusteredIndex' legacy format "
                               "{clusteredIndex: <bool>} is only supported for specific internal "
                               "collections and vice versa")
        if value.get("v", 2) != 2:
            raise _bad_value("Invalid clusteredIndex 'v': only version 2 is supported")
        if not value["unique"]:
            raise CommandError(5979700, "Location5979700", "The clusteredIndex option requires unique: true")
        key = value["key"]
        if not isinstance(key, dict) or list(key) != ["_id"] or key["_id"] != 1:
            raise CommandError(5979701, "Location5979701", "The clusteredIndex option is only supported for key: {_id: 1}")
        name_ = value.get("name", "_id_")
        if not isinstance(name_, str):
            raise CommandError(14, "TypeMismatch", "BSON field 'clusteredIndex.name' is the wrong type")
        return SON([("v", 2), ("key", SON(key)), ("name", name_), ("unique", True)])

    def _canonical_options(self, name, opts, collation, ts):
        """Collection options in the order and form mongod 6.0 lists them
        (CollectionOptions::appendBSON): capped size rounded up to 256 bytes,
        numbers as appendNumber writes them, collation filled in."""
        out = SON()
        if opts.get("capped"):
            size = opts.get("size")
            if not _is_num(size):
                raise CommandError(14, "TypeMismatch", "BSON field 'size' is the wrong type, expected a number")
            size = int(size)
            if size < 0:
                raise _bad_value("size has to be >= 0")
            if size > 1 << 50:
                raise _bad_value("size cannot exceed 1 PB")
            out["capped"] = True
            out["size"] = _append_number((size + 0xFF) & ~0xFF)
            if "max" in opts:
                cap_max = opts["max"]
                if not _is_num(cap_max):
                    raise CommandError(14, "TypeMismatch", "BSON field 'max' is the wrong type, expected a number")
                cap_max = int(cap_max)
                if cap_max >= 1 << 31:
                    raise _bad_value("max in a capped collection has to be < 2^31 or not set")
                out["max"] = _append_number(cap_max if cap_max > 0 else 0x7FFFFFFF)
        if "autoIndexId" in opts:
            out["autoIndexId"] = bool(opts["autoIndexId"])
        if opts.get("recordPreImages"):
            out["recordPreImages"] = True
        cs = opts.get("changeStreamPreAndPostImages")
        if cs and cs.get("enabled"):
            out["changeStreamPreAndPostImages"] = SON([("enabled", True)])
        for k in ("storageEngine", "indexOptionDefaults", "validator"):
            if k in opts and not isinstance(opts[k], dict):
                raise CommandError(14, "TypeMismatch", "'%s' has to be a document." % k)
        if opts.get("storageEngine"):
            out["storageEngine"] = opts["storageEngine"]
        iod = opts.get("indexOptionDefaults")
        if iod:
            if set(iod) - {"storageEngine"}:
                raise CommandError(40415, "Location40415", "BSON field 'indexOptionDefaults.%s' is an unknown field."
                                   % sorted(set(iod) - {"storageEngine"})[0])
            if iod.get("storageEngine"):
                out["indexOptionDefaults"] = SON([("storageEngine", iod["storageEngine"])])
        if opts.get("validator"):
            out["validator"] = opts["validator"]
        for k, allowed in (("validationLevel", ("off", "strict", "moderate")),
                           ("validationAction", ("error", "warn"))):
            if k in opts:
                if opts[k] not in allowed:
                    raise _bad_value("Enumeration value '%s' for field '%s' is not a valid value." % (opts[k], k))
                out[k] = opts[k]
        if collation:
            out["collation"] = collation
        clustered = self._clustered_option(name, opts["clusteredIndex"]) if "clusteredIndex" in opts else None
        if clustered is not None:
            out["clusteredIndex"] = clustered
        if "expireAfterSeconds" in opts:
            out["expireAfterSeconds"] = Int64(int(opts["expireAfterSeconds"]))
        if ts is not None:
            out["timeseries"] = ts
        return out, clustered

    def _create_collection(self, db, name, opts, collation, ts=None):
        if ts is not None:  # a time-series buckets collection created directly (restores)
            opts = SON(opts)
            opts.setdefault("validator", _ts_validator(ts["timeField"]))
            opts.setdefault("clusteredIndex", True)
        options, clustered = self._canonical_options(name, opts, collation, ts)
        id_index = None
        if not clustered:
            spec = opts.get("idIndex")
            if spec is not None:
                if not isinstance(spec, dict) or not spec:
                    raise CommandError(9, "FailedToParse", "idIndex cannot be empty")
                if list(spec.get("key") or {}) != ["_id"] or spec.get("name", "_id_") != "_id_":
                    raise _bad_value("The _id index must have key {_id: 1} and name '_id_', got %s" % _fmt_value(spec))
                id_index = SON([("v", spec.get("v", 2)), ("key", SON(spec["key"])), ("name", "_id_")])
                for k, v in spec.items():
                    if k not in ("v", "key", "name", "ns", "collation"):
                        id_index[k] = v
                given = _collation_spec(spec["collation"]) if "collation" in spec else collation
                if given != collation:
                    raise _bad_value("'idIndex' must have the same collation as the collection.")
            else:
                id_index = SON([("v", 2), ("key", SON([("_id", 1)])), ("name", "_id_")])
            if collation:
                id_index["collation"] = collation
        return self._create_coll(db, name, options, id_index=id_index, clustered=clustered)

    def _create_view(self, db, name, opts, collation):
        for k in opts:
            if k not in ("viewOn", "pipeline", "collation"):
                raise CommandError(72, "InvalidOptions", "fake_mongod: option '%s' cannot be combined with 'viewOn'" % k)
        view_on = opts["viewOn"]
        if not isinstance(view_on, str):
            raise CommandError(14, "TypeMismatch", "BSON field 'create.viewOn' is the wrong type, expected type 'string'")
        if not view_on:
            raise _bad_value("'viewOn' cannot be empty.'")
        pipeline = opts.get("pipeline", [])
        _check_pipeline_names(pipeline)
        cur, chain = view_on, [name]
        while True:  # a view may not (indirectly) read itself
            if cur in chain:
                raise CommandError(5, "GraphContainsCycle", "View cycle detected: [%s]" % ", ".join(
                    "%s.%s" % (db, c) for c in chain + [cur]))
            kind, obj = self._lookup(db, cur)
            if kind not in ("view", "timeseries"):
                break
            chain.append(cur)
            cur = (obj if kind == "view" else obj[0])["viewOn"]
        doc = SON([("_id", "%s.%s" % (db, name)), ("viewOn", view_on), ("pipeline", pipeline)])
        if collation:
            doc["collation"] = collation
        self._add_view_doc(db, doc)

    def _add_view_doc(self, db, doc):
        coll = self._get_coll(db, "system.views")
        if coll is None:
            coll = self._create_coll(db, "system.views")
        coll.add(_encode(doc))

    def _remove_view(self, db, name):
        coll = self._get_coll(db, "system.views")
        if coll is None:
            return
        vid = "%s.%s" % (db, name)
        keep = [raw for raw in coll.docs if _decode(raw).get("_id") != vid]
        coll.replace_docs(keep)

    def _create_timeseries(self, db, name, opts, ts, collation):
        bname = "system.buckets." + name
        bopts = SON(opts)
        bopts["timeseries"] = ts
        bopts["validator"] = _ts_validator(ts["timeField"])
        bopts["clusteredIndex"] = True
        existing = self._get_coll(db, bname)
        if existing is not None:
            options, _c = self._canonical_options(bname, bopts, collation, ts)
            if list(existing.options.items()) != list(options.items()):
                raise CommandError(48, "NamespaceExists", "Bucket Collection already exists. NS: %s.%s. UUID: %s"
                                   % (db, bname, uuid.UUID(bytes=existing.uuid)))
        else:
            self._create_collection(db, bname, bopts, collation, ts)
        doc = SON([("_id", "%s.%s" % (db, name)), ("viewOn", bname), ("pipeline", _ts_view_pipeline(ts))])
        if collation:
            doc["collation"] = collation
        self._add_view_doc(db, doc)

    def cmd_drop(self, db, cmd, seqs, body_raw, conn):
        name = cmd["drop"]
        with self._store_lock:
            kind, obj = self._lookup(db, name)
            if kind is None:
                raise _ns_not_found()
            if kind == "collection":
                del self._store[db][name]
                if not self._store[db]:
                    del self._store[db]
                return SON([("nIndexesWas", len(obj.indexes)), ("ns", obj.ns), ("ok", 1.0)])
            self._remove_view(db, name)
            if kind == "timeseries" and obj[1] is not None:
                del self._store[db][obj[1].name]
        return SON([("ns", "%s.%s" % (db, name)), ("ok", 1.0)])

    def cmd_drop_database(self, db, cmd, seqs, body_raw, conn):
        with self._store_lock:
            self._store.pop(db, None)
        return SON([("dropped", db), ("ok", 1.0)])

    def _snapshot(self, db, name, filt=None, reverse=False):
        """(docs, cumulative sizes, n) of a namespace, filtered; a view's
        documents are computed by running its pipeline over its source
        (reverse: the source in reverse natural order).  (None, None, 0) when
        the namespace does not exist."""
        pipeline = None
        with self._store_lock:
            coll = self._get_coll(db, name)
            if coll is not None:
                docs, cum = coll.docs, coll.cum
                n = len(docs)
            else:
                kind, _obj = self._lookup(db, name)
                if kind is None:
                    return None, None, 0
                base, pipeline = self._resolve_view(db, name)
                source = self._get_coll(db, base)
                docs = list(source.docs) if source is not None else []
        if pipeline is not None:
            if reverse:
                docs.reverse()
            docs = _run_pipeline(docs, pipeline)
            if filt:
                docs = _filter_raw(docs, filt)
            return docs, _cumsizes(docs), len(docs)
        if reverse:
            docs = docs[:n][::-1]
            cum = _cumsizes(docs)
        if filt:
            docs = _filter_raw(docs[:n], filt)
            cum = _cumsizes(docs)
            n = len(docs)
        return docs, cum, n

    def cmd_count(self, db, cmd, seqs, body_raw, conn):
        name = cmd["count"]
        filt = cmd.get("query") or {}
        self._check_query(db, name, filt, cmd.get("collation"))
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
        self._check_query(db, name, None, cmd.get("collation"), pipeline)
        snap = self._snapshot(db, name)
        docs = [] if snap[0] is None else snap[0][:snap[2]]
        docs = _run_pipeline(docs, pipeline)
        batch_size = self._batch_size((cmd.get("cursor") or {}).get("batchSize"))
        cursor = Cursor("%s.%s" % (db, name), docs, _cumsizes(docs), 0, len(docs))
        return self._first_batch(cursor, DEFAULT_FIRST_BATCH if batch_size is None else batch_size)

    def _doc_check(self, coll, bypass):
        """A function raising the error mongod answers for a document the
        collection refuses (validator, capped size), or None."""
        checks = []
        size = coll.options.get("size") if coll.options.get("capped") else None
        if size:
            def capped_size(raw):
                if len(raw) > size:
                    raise _bad_value("object to insert exceeds cappedMaxSize")
            checks.append(capped_size)
        if _collation_equality_differs(coll.options.get("collation")):
            def string_id(raw):
                for etype, key, _es, _vs, _ve in _iter_elements(raw):
                    if key == b"_id" and etype == 0x02:
                        raise _bad_value("fake_mongod: string _id values under the collation %s are not "
                                         "modelled" % _fmt_value(coll.options["collation"]))
            checks.append(string_id)
        validator = coll.options.get("validator")
        if (validator and not bypass and coll.options.get("validationLevel", "strict") != "off" and
                coll.options.get("validationAction", "error") == "error"):
            ts = coll.options.get("timeseries")
            if ts is not None and validator == _ts_validator(ts["timeField"]):
                def valid(raw):
                    return _bucket_schema_error(raw, ts["timeField"]) is None
            elif _filter_supported(validator):
                def valid(raw):
                    return _matches(_decode(raw), validator)
            else:
                def valid(raw):
                    raise _bad_value("fake_mongod: cannot evaluate the validator of %s (it uses operators "
                                     "beyond %s); insert with bypassDocumentValidation: true"
                                     % (coll.ns, " ".join(sorted(_QUERY_OPS))))

            def validated(raw):
                if not valid(raw):
                    raw, _key = coll.prepare(raw)
                    raise CommandError(121, "DocumentValidationFailure", "Document failed validation",
                                       errInfo=SON([("failingDocumentId", _decode(raw).get("_id"))]))
            checks.append(validated)
        if not checks:
            return None

        def check(raw):
            for c in checks:
                c(raw)
        return check

    def cmd_insert(self, db, cmd, seqs, body_raw, conn):
        name = cmd["insert"]
        if "documents" in seqs:
            docs = seqs["documents"]
        else:
            docs = _raw_array_docs(body_raw, b"documents") if body_raw is not None else [
                _encode(d) for d in cmd.get("documents", [])]
        ordered = cmd.get("ordered", True)
        bypass = bool(cmd.get("bypassDocumentValidation"))
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
            kind, obj = self._lookup(db, name)
            if kind == "view" or (kind == "timeseries" and obj[1] is None):
                err = self._not_a_collection(db, name)
                for idx in range(len(docs) if not ordered else min(1, len(docs))):
                    errors.append(SON([("index", idx), ("code", err.code), ("errmsg", err.errmsg)]))
            elif kind == "timeseries":
                n, errors = self._timeseries_insert(obj[1], docs, ordered)
            else:
                coll = obj if kind == "collection" else self._create_coll(db, name)
                check = self._doc_check(coll, bypass)
                for idx, raw in enumerate(docs):
                    try:
                        if check is not None:
                            check(raw)
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
                        err = SON([("index", idx), ("code", e.code)])
                        err.update(e.extra)
                        err["errmsg"] = e.errmsg
                        errors.append(err)
                        if ordered:
                            break
                coll.enforce_cap()
        with self._state_lock:
            self._stats["insertedDocuments"] += n
        reply = SON([("n", n)])
        if errors:
            reply["writeErrors"] = errors
        reply["ok"] = 1.0
        return reply

    def _timeseries_insert(self, buckets, docs, ordered):
        """Bucket measurements into the buckets collection: one open bucket
        per metaField value; a bucket takes a measurement while it holds fewer
        than 1000, stays under 125 KiB and the time is within
        [control.min.time, control.min.time + bucketMaxSpanSeconds), where
        control.min.time is the first time rounded down to the granularity's
        rounding (60 s / 1 h / 1 day).  Buckets are rewritten in place as they
        fill (control.version 1, never compressed)."""
        ts = buckets.options["timeseries"]
        tf, mf = ts["timeField"], ts.get("metaField")
        rounding = TS_GRANULARITY[ts["granularity"]][0] * 1000
        span = int(ts["bucketMaxSpanSeconds"]) * 1000
        n, errors, dirty = 0, [], []
        for idx, raw in enumerate(docs):
            try:
                if len(raw) < 5 or _INT32.unpack_from(raw, 0)[0] != len(raw) or raw[-1] != 0:
                    raise _bad_value("invalid BSON document")
                try:
                    elems = _raw_elements(raw)
                except (ValueError, IndexError, struct.error, UnicodeDecodeError):
                    raise _bad_value("invalid BSON document")
                when, meta, rest = None, None, []
                for k, t, v in elems:
                    if mf is not None and k == mf:
                        meta = (t, v)
                        continue
                    if k == tf:
                        when = (t, v)
                    rest.append((k, t, v))
                if when is None or when[0] != 0x09:
                    raise _bad_value("'%s' must be present and contain a valid BSON UTC datetime value" % tf)
                t_ms = _INT64.unpack(when[1])[0]
                key = meta
                bucket = buckets.open_buckets.get(key)
                if bucket is not None and bucket.index is not None and not self._bucket_in_place(buckets, bucket):
                    bucket = None
                if bucket is not None and (bucket.count >= TS_BUCKET_MAX_COUNT or
                                           bucket.size + len(raw) > TS_BUCKET_MAX_SIZE or
                                           not bucket.min_time <= t_ms < bucket.min_time + span):
                    bucket = None
                if bucket is None:
                    bucket = _Bucket(t_ms - t_ms % rounding, meta)
                    buckets.open_buckets[key] = bucket
                bucket.add(rest, tf, len(raw))
                if bucket not in dirty:
                    dirty.append(bucket)
                n += 1
            except CommandError as e:
                errors.append(SON([("index", idx), ("code", e.code), ("errmsg", e.errmsg)]))
                if ordered:
                    break
        for bucket in dirty:
            raw = bucket.encode()
            if bucket.index is not None and self._bucket_in_place(buckets, bucket):
                buckets.replace_at(bucket.index, raw)
            else:
                buckets.add(raw)
                bucket.index = len(buckets.docs) - 1
        return n, errors

    @staticmethod
    def _bucket_in_place(coll, bucket):
        i = bucket.index
        return (i is not None and i < len(coll.docs) and coll.docs[i][4:9] == b"\x07_id\x00" and
                coll.docs[i][9:21] == bucket.oid)

    def cmd_delete(self, db, cmd, seqs, body_raw, conn):
        name = cmd["delete"]
        if "deletes" in seqs:
            deletes = [_decode(d) for d in seqs["deletes"]]
        else:
            deletes = cmd.get("deletes", [])
        total = 0
        with self._store_lock:
            self._stats["deletes"] += 1
            kind, obj = self._lookup(db, name)
            if kind == "view" or (kind == "timeseries" and obj[1] is None):
                err = self._not_a_collection(db, name)
                return SON([("n", 0), ("writeErrors", [SON([("index", 0), ("code", err.code),
                                                            ("errmsg", err.errmsg)])]), ("ok", 1.0)])
            coll = obj if kind == "collection" else None
            ts = None
            if kind == "timeseries":
                coll = obj[1]
                ts = coll.options["timeseries"]
                deletes = [self._timeseries_delete_spec(ts, spec) for spec in deletes]
            if coll is not None:
                for spec in deletes:
                    _check_collated_filter(self._collation_for(db, name, spec.get("collation")),
                                           spec.get("q"), "the delete")
                for spec in deletes:
                    q = spec.get("q") or {}
                    limit = int(spec.get("limit", 0))
                    if not q and limit == 0:
                        total += self._count_removed(coll.docs, ts) if kind == "timeseries" else len(coll.docs)
                        coll.replace_docs([])
                        continue
                    keep = []
                    removed = []
                    for raw in coll.docs:
                        if (limit == 0 or len(removed) < limit) and (not q or _matches(_decode(raw), q)):
                            removed.append(raw)
                        else:
                            keep.append(raw)
                    if removed:
                        coll.replace_docs(keep)
                    total += self._count_removed(removed, ts) if kind == "timeseries" else len(removed)
        return SON([("n", total), ("ok", 1.0)])

    @staticmethod
    def _timeseries_delete_spec(ts, spec):
        """A delete on a time-series collection as one on its buckets: only
        deletes of every measurement matching a metaField query are modelled."""
        meta = ts.get("metaField")

        def translate(filt):
            out = SON()
            for k, v in filt.items():
                if k in ("$and", "$or", "$nor") and isinstance(v, list):
                    out[k] = [translate(f) for f in v]
                elif meta is not None and (k == meta or k.startswith(meta + ".")):
                    out["meta" + k[len(meta):]] = v
                else:
                    raise _bad_value("fake_mongod: deletes on a time-series collection are modelled only with "
                                     "a query on the metaField (got field %r)" % k)
            return out
        if int(spec.get("limit", 0)) != 0:
            raise _bad_value("fake_mongod: deletes on a time-series collection are modelled only with limit: 0")
        out = SON(spec)
        out["q"] = translate(spec.get("q") or {})
        return out

    @staticmethod
    def _count_removed(buckets, ts):
        """Measurements held by bucket documents (version 1 buckets)."""
        try:
            return len(_unpack_buckets(buckets, SON([("timeField", ts["timeField"])])))
        except CommandError:
            return len(buckets)

    def cmd_create_indexes(self, db, cmd, seqs, body_raw, conn):
        name = cmd["createIndexes"]
        specs = cmd.get("indexes")
        if not isinstance(specs, list) or not specs:
            raise _bad_value("Must specify at least one index to create")
        with self._store_lock:
            kind, obj = self._lookup(db, name)
            if kind == "view":
                raise CommandError(166, "CommandNotSupportedOnView", "Cannot create indexes on a view")
            if kind == "timeseries":
                coll = obj[1]
                if coll is None:
                    raise CommandError(166, "CommandNotSupportedOnView", "Cannot create indexes on a view")
                specs = [self._timeseries_index_spec(coll.options["timeseries"], s) for s in specs]
                created = False
            else:
                coll = obj
                created = coll is None
                if created:
                    coll = self._create_coll(db, name)
            before = len(coll.indexes)
            collation = coll.options.get("collation")
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
                if isinstance(coll.clustered, dict) and list(key.items()) == [("_id", 1)]:
                    continue  # the cluster key is already the collection's order
                index = SON([("v", spec.get("v", 2)), ("key", SON(key)), ("name", iname)])
                for k, v in spec.items():
                    if k not in ("v", "key", "name"):
                        index[k] = v
                if "collation" in index:  # filled in, or dropped when "simple"
                    spec_collation = _collation_spec(index["collation"])
                    if spec_collation is None:
                        del index["collation"]
                    else:
                        index["collation"] = spec_collation
                elif collation:
                    index["collation"] = collation
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
                    if _collation_equality_differs(index.get("collation")):
                        raise _bad_value("fake_mongod: a unique index under the collation %s is not modelled "
                                         "(keys equal under it are not equal bytes)" % _fmt_value(index["collation"]))
                    coll.add_unique_index(index)
                coll.indexes.append(index)
            after = len(coll.indexes)
        reply = SON([("numIndexesBefore", before), ("numIndexesAfter", after),
                     ("createdCollectionAutomatically", created)])
        if before == after:
            reply["note"] = "all indexes already exist"
        reply["ok"] = 1.0
        return reply

    @staticmethod
    def _timeseries_index_spec(ts, spec):
        """An index spec on a time-series collection as its buckets collection
        holds it (metaField -> meta, a time/measurement field f: 1 ->
        control.min.f: 1, control.max.f: 1, -1 -> control.max.f: -1,
        control.min.f: -1)."""
        if not isinstance(spec, dict):
            return spec
        for k in spec:
            if k not in ("key", "name", "v", "background", "hidden"):
                raise _bad_value("fake_mongod: index option %r on a time-series collection is not modelled" % k)
        key = spec.get("key")
        if not isinstance(key, dict) or not key:
            return spec
        bkey = _ts_index_to_buckets(ts, key)
        if bkey is None:
            raise _bad_value("fake_mongod: time-series index key %s is not modelled (metaField paths, or "
                             "top-level time/measurement fields with 1 / -1)" % _fmt_value(key))
        out = SON(spec)
        out["key"] = bkey
        return out

    def cmd_list_indexes(self, db, cmd, seqs, body_raw, conn):
        name = cmd["listIndexes"]
        batch_size = self._cursor_batch_size(cmd)
        with self._store_lock:
            kind, obj = self._lookup(db, name)
            if kind is None or (kind == "timeseries" and obj[1] is None):
                raise _ns_not_found("ns does not exist: %s.%s" % (db, name))
            if kind == "view":
                raise self._not_a_collection(db, name)
            if kind == "timeseries":  # the buckets' indexes, as the user created them
                ts = obj[1].options["timeseries"]
                indexes = []
                for spec in obj[1].indexes:
                    key = _ts_index_from_buckets(ts, spec["key"])
                    if key is not None:
                        spec = SON(spec)
                        spec["key"] = key
                        indexes.append(spec)
            else:
                indexes = obj.index_list()
        return self._list_cursor("%s.%s" % (db, name), indexes, batch_size)

    def cmd_drop_indexes(self, db, cmd, seqs, body_raw, conn):
        name = cmd["dropIndexes"] if "dropIndexes" in cmd else cmd["deleteIndexes"]
        which = cmd.get("index")
        with self._store_lock:
            kind, obj = self._lookup(db, name)
            if kind is None or (kind == "timeseries" and obj[1] is None):
                raise _ns_not_found("ns not found %s.%s" % (db, name))
            if kind == "view":
                raise self._not_a_collection(db, name)
            coll = obj if kind == "collection" else obj[1]
            if kind == "timeseries" and isinstance(which, dict):
                which = _ts_index_to_buckets(coll.options["timeseries"], which) or which
            was = len(coll.indexes)
            if which == "*":
                coll.indexes = [i for i in coll.indexes if i["name"] == "_id_"]
                coll.unique = dict((n, u) for n, u in coll.unique.items() if n == "_id_")
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
            kind, obj = self._lookup(db, name)
            if kind is None:
                raise _ns_not_found("Collection [%s.%s] not found." % (db, name))
            if kind == "view":
                raise self._not_a_collection(db, name)
            coll = obj if kind == "collection" else obj[1]
            if coll is None:
                raise _ns_not_found("Collection [%s.system.buckets.%s] not found." % (db, name))
            count, size = len(coll.docs), coll.cum[-1]
            names = [i["name"] for i in coll.index_list()] if kind == "collection" else [
                i["name"] for i in coll.indexes]
            capped = bool(coll.options.get("capped"))
        reply = SON([("ns", "%s.%s" % (db, name))])
        if kind == "timeseries":  # mongod reports the buckets collection's storage
            reply["timeseries"] = SON([("bucketsNs", coll.ns), ("bucketCount", count),
                                       ("avgBucketSize", size // count if count else 0)])
        reply.update([("size", size), ("count", count),
                      ("avgObjSize", size // count if count else 0), ("storageSize", size),
                      ("capped", capped)])
        if capped:
            reply["max"] = _append_number(coll.options.get("max", 0))
            reply["maxSize"] = coll.options["size"]
        reply.update([("nindexes", len(names)), ("totalIndexSize", 0),
                      ("indexSizes", SON((n, 0) for n in names)), ("ok", 1.0)])
        return reply

    def cmd_db_stats(self, db, cmd, seqs, body_raw, conn):
        with self._store_lock:
            colls = list(self._store.get(db, {}).values())
            views = len(self._views(db))
            objects = sum(len(c.docs) for c in colls)
            size = sum(c.cum[-1] for c in colls)
            nidx = sum(len(c.index_list()) for c in colls)
        return SON([("db", db), ("collections", len(colls)), ("views", views),
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
        self._check_query(db, name, filt, cmd.get("collation"))
        docs, cum, n = self._snapshot(db, name, filt, reverse)
        if docs is None:
            docs, cum, n = [], [0], 0
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
        now = time.monotonic()
        timed_out = False
        with self._cursors_lock:
            cursor = self._cursors.get(cid)
            if cursor is not None and self._cursor_expired(cursor, now):
                del self._cursors[cid]
                cursor, timed_out = None, True
            elif cursor is not None:
                cursor.last_used = now  # in use: no reaping under this getMore
        if timed_out:
            with self._state_lock:
                self._stats["cursorsTimedOut"] += 1
        if cursor is None:
            raise CommandError(43, "CursorNotFound", "cursor id %d not found" % cid)
        if coll_name is not None and cursor.ns != "%s.%s" % (db, coll_name):
            raise CommandError(13, "Unauthorized",
                               "Requested getMore on namespace '%s.%s', but cursor belongs "
                               "to a different namespace %s" % (db, coll_name, cursor.ns))
        with cursor.lock:
            i, j, nbytes = cursor.take(batch_size)
            done = cursor.exhausted
            cursor.last_used = time.monotonic()
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
        self._reap_cursors(force=True)
        with self._cursors_lock:
            for cid in cmd.get("cursors", []):
                if self._cursors.pop(cid, None) is not None:
                    killed.append(Int64(cid))
                else:
                    missing.append(Int64(cid))
        return SON([("cursorsKilled", killed), ("cursorsNotFound", missing),
                    ("cursorsAlive", []), ("cursorsUnknown", []), ("ok", 1.0)])

    # ---- users and roles

    def _authz_docs(self, name):
        """[(index, decoded document)] of admin.<name>."""
        coll = self._get_coll("admin", name)
        if coll is None:
            return []
        return [(i, bson.decode(raw, codec_options=_FMT_CODEC)) for i, raw in enumerate(coll.docs)]

    def _ensure_auth_schema(self):
        """What mongod's user management commands write first: the auth schema
        version document {_id: "authSchema", currentVersion: 5} in
        admin.system.version (where a real server also keeps its
        featureCompatibilityVersion document, added here with it)."""
        coll = self._get_coll("admin", "system.version")
        if coll is None:
            coll = self._create_coll("admin", "system.version")
        have = set(d.get("_id") for _i, d in self._authz_docs("system.version"))
        if "featureCompatibilityVersion" not in have:
            coll.add(_encode(SON([("_id", "featureCompatibilityVersion"), ("version", "6.0")])))
        if "authSchema" not in have:
            coll.add(_encode(SON([("_id", "authSchema"), ("currentVersion", AUTH_SCHEMA_VERSION)])))

    def _find_user(self, user, db):
        for i, d in self._authz_docs("system.users"):
            if d.get("user") == user and d.get("db") == db:
                return i, d
        return None

    def _find_role(self, role, db):
        for i, d in self._authz_docs("system.roles"):
            if d.get("role") == role and d.get("db") == db:
                return i, d
        return None

    def _check_roles_exist(self, names, context=""):
        missing = [(r, d) for r, d in names if not _is_builtin_role(r, d) and self._find_role(r, d) is None]
        if missing:
            raise CommandError(31, "RoleNotFound", "%sCould not find role%s: %s" % (
                context, "s" if len(missing) > 1 else "", ", ".join("%s@%s" % m for m in missing)))

    @staticmethod
    def _check_fields(cmd, name, allowed):
        for k in cmd:
            if k != name and k not in allowed and k not in GENERIC_FIELDS:
                raise CommandError(40415, "Location40415", "BSON field '%s.%s' is an unknown field." % (name, k))

    def _remove_where(self, name, pred):
        coll = self._get_coll("admin", name)
        if coll is None:
            return 0
        keep, removed = [], 0
        for raw in coll.docs:
            if pred(bson.decode(raw, codec_options=_FMT_CODEC)):
                removed += 1
            else:
                keep.append(raw)
        if removed:
            coll.replace_docs(keep)
        return removed

    def _pull_roles(self, pred):
        """$pull every role entry pred(role, db) accepts from users' and roles' "roles"."""
        for name in ("system.users", "system.roles"):
            coll = self._get_coll("admin", name)
            for i, d in self._authz_docs(name):
                roles = d.get("roles")
                if isinstance(roles, list):
                    kept = [r for r in roles if not (isinstance(r, dict) and pred(r.get("role"), r.get("db")))]
                    if len(kept) != len(roles):
                        d["roles"] = kept
                        coll.replace_at(i, _encode(d))

    def cmd_create_user(self, db, cmd, seqs, body_raw, conn):
        user = cmd["createUser"]
        self._check_fields(cmd, "createUser", ("pwd", "customData", "roles", "digestPassword",
                                               "authenticationRestrictions", "mechanisms"))
        if not isinstance(user, str):
            raise CommandError(14, "TypeMismatch", "BSON field 'createUser.createUser' is the wrong type, "
                               "expected type 'string'")
        if db == "local":
            raise _bad_value("Cannot create users in the local database")
        if "\x00" in user:
            raise _bad_value("Username cannot contain NULL characters")
        if "roles" not in cmd:
            raise CommandError(40414, "Location40414", "BSON field 'createUser.roles' is missing but a required field")
        external = db == "$external"
        if "pwd" not in cmd and not external:
            raise _bad_value("Must provide a 'pwd' field for all user documents, except those with "
                             "'$external' as the user's source db")
        if "pwd" in cmd and external:
            raise _bad_value("Cannot set the password for users defined on the '$external' database")
        roles = _role_names(cmd["roles"], db, "createUser.roles")
        custom = cmd.get("customData")
        if custom is not None and not isinstance(custom, dict):
            raise CommandError(14, "TypeMismatch", "BSON field 'createUser.customData' is the wrong type, "
                               "expected type 'object'")
        restrictions = cmd.get("authenticationRestrictions")
        if restrictions is not None:
            _check_auth_restrictions(restrictions)
        doc = SON([("_id", "%s.%s" % (db, user)), ("userId", Binary(uuid.uuid4().bytes, 4)),
                   ("user", user), ("db", db), ("credentials", _build_credentials(user, cmd))])
        if restrictions:
            doc["authenticationRestrictions"] = restrictions
        if custom is not None:
            doc["customData"] = custom
        doc["roles"] = _role_docs(roles)
        with self._store_lock:
            self._ensure_auth_schema()
            self._check_roles_exist(roles)
            coll = self._get_coll("admin", "system.users") or self._create_coll("admin", "system.users")
            try:
                coll.add(_encode(doc))
            except _DuplicateKey:
                raise CommandError(51003, "Location51003", 'User "%s@%s" already exists' % (user, db))
        return SON([("ok", 1.0)])

    def cmd_update_user(self, db, cmd, seqs, body_raw, conn):
        user = cmd["updateUser"]
        self._check_fields(cmd, "updateUser", ("pwd", "customData", "roles", "digestPassword",
                                               "authenticationRestrictions", "mechanisms"))
        if "mechanisms" in cmd and not cmd["mechanisms"]:
            raise _bad_value("mechanisms field must not be empty")
        if not any(k in cmd for k in ("pwd", "customData", "roles", "authenticationRestrictions", "mechanisms")):
            raise _bad_value("Must specify at least one field to update in updateUser")
        if "pwd" in cmd and db == "$external":
            raise _bad_value("Cannot set the password for users defined on the '$external' database")
        creds = _build_credentials(user, cmd) if "pwd" in cmd else None
        roles = _role_names(cmd["roles"], db, "updateUser.roles") if "roles" in cmd else None
        with self._store_lock:
            self._ensure_auth_schema()
            if roles is not None:
                self._check_roles_exist(roles)
            found = self._find_user(user, db)
            if found is None:
                raise CommandError(11, "UserNotFound", "User %s@%s not found" % (user, db))
            i, doc = found
            if creds is not None:
                doc["credentials"] = creds
            elif "mechanisms" in cmd:
                have = doc.get("credentials") or {}
                for m in cmd["mechanisms"]:
                    if m not in have:
                        raise _bad_value("mechanisms field must be a subset of previously set mechanisms")
                doc["credentials"] = SON((k, v) for k, v in have.items() if k in cmd["mechanisms"])
            if "customData" in cmd:
                if not isinstance(cmd["customData"], dict):
                    raise CommandError(14, "TypeMismatch", "BSON field 'updateUser.customData' is the wrong type")
                doc["customData"] = cmd["customData"]
            if "authenticationRestrictions" in cmd:
                restrictions = _check_auth_restrictions(cmd["authenticationRestrictions"])
                if restrictions:
                    doc["authenticationRestrictions"] = restrictions
                else:
                    doc.pop("authenticationRestrictions", None)
            if roles is not None:
                doc["roles"] = _role_docs(roles)
            self._get_coll("admin", "system.users").replace_at(i, _encode(doc))
        return SON([("ok", 1.0)])

    def cmd_drop_user(self, db, cmd, seqs, body_raw, conn):
        user = cmd["dropUser"]
        self._check_fields(cmd, "dropUser", ())
        with self._store_lock:
            self._ensure_auth_schema()
            n = self._remove_where("system.users", lambda d: d.get("user") == user and d.get("db") == db)
        if not n:
            raise CommandError(11, "UserNotFound", "User '%s@%s' not found" % (user, db))
        return SON([("ok", 1.0)])

    def cmd_drop_all_users(self, db, cmd, seqs, body_raw, conn):
        self._check_fields(cmd, "dropAllUsersFromDatabase", ())
        with self._store_lock:
            self._ensure_auth_schema()
            n = self._remove_where("system.users", lambda d: d.get("db") == db)
        return SON([("n", n), ("ok", 1.0)])

    def cmd_users_info(self, db, cmd, seqs, body_raw, conn):
        arg = cmd["usersInfo"]
        self._check_fields(cmd, "usersInfo", ("showCredentials", "showCustomData", "showPrivileges",
                                              "showAuthenticationRestrictions", "filter"))
        if cmd.get("showPrivileges") or cmd.get("showAuthenticationRestrictions"):
            raise _bad_value("fake_mongod: usersInfo with showPrivileges / showAuthenticationRestrictions "
                             "is not modelled")
        if _is_num(arg) and not isinstance(arg, bool):
            if arg != 1:
                raise _bad_value("usersInfo must be 1, a user name, a {user, db} document or an array of them")
            select = lambda d: d.get("db") == db  # noqa: E731
        elif isinstance(arg, dict) and "forAllDBs" in arg:
            if arg != {"forAllDBs": True}:
                raise _bad_value("usersInfo: {forAllDBs: true} takes no other fields")
            select = lambda d: True  # noqa: E731
        else:
            wanted = set(_user_names(arg, db))
            select = lambda d: (d.get("user"), d.get("db")) in wanted  # noqa: E731
        filt = cmd.get("filter")
        with self._store_lock:
            docs = [d for _i, d in self._authz_docs("system.users") if select(d)]
        docs.sort(key=lambda d: (str(d.get("user")), str(d.get("db"))))
        out = []
        for d in docs:  # the aggregation mongod runs over system.users
            creds = d.get("credentials")
            d["mechanisms"] = list(creds) if isinstance(creds, dict) else None
            d.pop("authenticationRestrictions", None)
            if not cmd.get("showCredentials"):
                d.pop("credentials", None)
            if not cmd.get("showCustomData", True):
                d.pop("customData", None)
            if filt and not _matches(d, filt):
                continue
            out.append(d)
        return SON([("users", out), ("ok", 1.0)])

    def cmd_create_role(self, db, cmd, seqs, body_raw, conn):
        role = cmd["createRole"]
        self._check_fields(cmd, "createRole", ("privileges", "roles", "authenticationRestrictions"))
        if not isinstance(role, str):
            raise CommandError(14, "TypeMismatch", "BSON field 'createRole.createRole' is the wrong type, "
                               "expected type 'string'")
        if not role:
            raise _bad_value("Role name must be non-empty")
        if db == "local":
            raise _bad_value("Cannot create roles in the local database")
        if db == "$external":
            raise _bad_value("Cannot create roles in the $external database")
        if _is_builtin_role(role, db):
            raise _bad_value("Cannot create roles with the same name as a built-in role")
        for k in ("privileges", "roles"):
            if k not in cmd:
                raise CommandError(40414, "Location40414", "BSON field 'createRole.%s' is missing but a required field" % k)
        privileges = _normalize_privileges(cmd["privileges"])
        roles = _role_names(cmd["roles"], db, "createRole.roles")
        doc = SON([("_id", "%s.%s" % (db, role)), ("role", role), ("db", db),
                   ("privileges", privileges), ("roles", _role_docs(roles))])
        restrictions = cmd.get("authenticationRestrictions")
        if restrictions:
            doc["authenticationRestrictions"] = _check_auth_restrictions(restrictions)
        with self._store_lock:
            self._ensure_auth_schema()
            for r, d in roles:
                if (r, d) == (role, db):
                    raise CommandError(49, "InvalidRoleModification", "Cannot grant role %s@%s to itself." % (role, db))
                if db != "admin" and d != db:
                    raise CommandError(49, "InvalidRoleModification", "Roles on the '%s' database cannot be "
                                       "granted roles from other databases" % db)
            self._check_roles_exist(roles, "Cannot grant roles to '%s@%s': " % (role, db))
            _normalize_privileges(cmd["privileges"], role_db=db)
            coll = self._get_coll("admin", "system.roles") or self._create_coll("admin", "system.roles")
            try:
                coll.add(_encode(doc))
            except _DuplicateKey:
                raise CommandError(51002, "Location51002", 'Role "%s@%s" already exists' % (role, db))
        return SON([("ok", 1.0)])

    def cmd_drop_role(self, db, cmd, seqs, body_raw, conn):
        role = cmd["dropRole"]
        self._check_fields(cmd, "dropRole", ())
        if _is_builtin_role(role, db):
            raise _bad_value("%s@%s is a built-in role and cannot be modified" % (role, db))
        with self._store_lock:
            self._ensure_auth_schema()
            self._check_roles_exist([(role, db)])
            self._pull_roles(lambda r, d: (r, d) == (role, db))
            self._remove_where("system.roles", lambda d: d.get("role") == role and d.get("db") == db)
        return SON([("ok", 1.0)])

    def cmd_drop_all_roles(self, db, cmd, seqs, body_raw, conn):
        self._check_fields(cmd, "dropAllRolesFromDatabase", ())
        with self._store_lock:
            self._ensure_auth_schema()
            self._pull_roles(lambda r, d: d == db)
            n = self._remove_where("system.roles", lambda d: d.get("db") == db)
        return SON([("n", n), ("ok", 1.0)])

    def cmd_roles_info(self, db, cmd, seqs, body_raw, conn):
        arg = cmd["rolesInfo"]
        self._check_fields(cmd, "rolesInfo", ("showPrivileges", "showBuiltinRoles",
                                              "showAuthenticationRestrictions"))
        show_privs = cmd.get("showPrivileges", False)
        if show_privs == "asUserFragment":
            raise _bad_value("fake_mongod: rolesInfo showPrivileges: \"asUserFragment\" is not modelled")
        show_privs = bool(show_privs)
        show_ar = bool(cmd.get("showAuthenticationRestrictions"))
        all_on_db = _is_num(arg) and not isinstance(arg, bool)
        if all_on_db and arg != 1:
            raise _bad_value("rolesInfo must be 1, a role name, a {role, db} document or an array of them")
        out = []
        with self._store_lock:
            roles = dict(((d.get("role"), d.get("db")), d) for _i, d in self._authz_docs("system.roles"))
            if all_on_db:
                if cmd.get("showBuiltinRoles"):
                    for r in _builtin_roles_for_db(db):
                        if show_privs:
                            raise _bad_value("fake_mongod: the privileges of built-in roles are not modelled")
                        entry = SON([("role", r), ("db", db), ("isBuiltin", True), ("roles", []),
                                     ("inheritedRoles", [])])
                        if show_ar:
                            entry["authenticationRestrictions"] = []
                            entry["inheritedAuthenticationRestrictions"] = []
                        out.append(entry)
                for (r, d), doc in roles.items():
                    if d == db:
                        out.append(self._role_description(doc, roles, show_privs, show_ar, True))
            else:
                for r, d in _role_names(arg if isinstance(arg, list) else [arg], db, "rolesInfo"):
                    if _is_builtin_role(r, d):
                        if show_privs:
                            raise _bad_value("fake_mongod: the privileges of built-in roles are not modelled")
                        entry = SON([("db", d), ("role", r), ("roles", [])])
                        if show_ar:
                            entry["authenticationRestrictions"] = []
                        entry["inheritedRoles"] = []
                        if show_ar:
                            entry["inheritedAuthenticationRestrictions"] = []
                        entry["isBuiltin"] = True
                        out.append(entry)
                    elif (r, d) in roles:
                        out.append(self._role_description(roles[(r, d)], roles, show_privs, show_ar, False))
        return SON([("roles", out), ("ok", 1.0)])

    @staticmethod
    def _role_description(doc, roles, show_privs, show_ar, all_on_db):
        """A rolesInfo entry as mongod builds it: the stored role document
        (privileges only when asked), isBuiltin, then what it inherits."""
        out = SON()
        direct = []
        own_ar = None
        for k, v in doc.items():
            if k == "roles":
                direct = [(r.get("role"), r.get("db")) for r in v if isinstance(r, dict)]
            elif k == "privileges" and not show_privs:
                continue
            elif k == "authenticationRestrictions":
                own_ar = v
                if show_ar:
                    out[k] = [v]
                continue
            out[k] = v
        if show_ar and own_ar is None:
            out["authenticationRestrictions"] = []
        if all_on_db:
            out["isBuiltin"] = False
        inherited, privileges, restrictions = [], [], []
        frontier, seen = list(direct), set()
        for name in direct:
            if name not in inherited:
                inherited.append(name)
        while frontier:
            nxt = []
            for name in frontier:
                if name in seen:
                    continue
                seen.add(name)
                if _is_builtin_role(*name):
                    if show_privs:
                        raise _bad_value("fake_mongod: the privileges of built-in roles are not modelled")
                    continue
                sub = roles.get(name)
                if sub is None:
                    continue
                for r in sub.get("roles") or []:
                    sub_name = (r.get("role"), r.get("db"))
                    if sub_name not in seen:
                        nxt.append(sub_name)
                        if sub_name not in inherited:
                            inherited.append(sub_name)
                privileges.extend(sub.get("privileges") or [])
                if sub.get("authenticationRestrictions"):
                    restrictions.append(sub["authenticationRestrictions"])
            frontier = nxt
        out["inheritedRoles"] = _role_docs(inherited)
        if show_privs:
            out["inheritedPrivileges"] = list(doc.get("privileges") or []) + (
                _normalize_privileges(privileges) if privileges else [])
        if show_ar:
            out["inheritedAuthenticationRestrictions"] = ([own_ar] if own_ar else []) + restrictions
        if not all_on_db:
            out["isBuiltin"] = False
        return out

    def cmd_merge_authz_collections(self, db, cmd, seqs, body_raw, conn):
        """mongorestore's _mergeAuthzCollections: move the users / roles of the
        temporary collections into admin.system.users / admin.system.roles.
        As mongod: only entries of `db` when it is not "" (all databases);
        without drop an entry is inserted (one that already exists stays as
        it is, the failure ignored like mongod does); with drop an existing
        entry of the same name is replaced and the existing entries of `db`
        not in the temporary collection are removed."""
        self._check_fields(cmd, "_mergeAuthzCollections", ("tempUsersCollection", "tempRolesCollection",
                                                            "drop", "db"))
        if db != "admin":
            raise CommandError(13, "Unauthorized", "_mergeAuthzCollections may only be run against the admin database.")
        temp_users = cmd.get("tempUsersCollection", "")
        temp_roles = cmd.get("tempRolesCollection", "")
        for k, v in (("tempUsersCollection", temp_users), ("tempRolesCollection", temp_roles)):
            if not isinstance(v, str):
                raise CommandError(14, "TypeMismatch", "BSON field '_mergeAuthzCollections.%s' is the wrong type, "
                                   "expected type 'string'" % k)
        if "db" not in cmd:
            raise CommandError(40414, "Location40414",
                               "BSON field '_mergeAuthzCollections.db' is missing but a required field")
        target = cmd["db"]
        if not isinstance(target, str):
            raise CommandError(14, "TypeMismatch", "BSON field '_mergeAuthzCollections.db' is the wrong type, "
                               "expected type 'string'")
        drop = bool(cmd.get("drop", False))
        if not temp_users and not temp_roles:
            raise _bad_value('Must provide at least one of "tempUsersCollection" and "tempRolescollection"')
        with self._store_lock:
            self._ensure_auth_schema()
            if temp_users:
                self._merge_authz(temp_users, "system.users", "user", target, drop)
            if temp_roles:
                self._merge_authz(temp_roles, "system.roles", "role", target, drop)
        return SON([("ok", 1.0)])

    def _merge_authz(self, temp_ns, name, field, target, drop):
        tdb, _dot, tcoll = temp_ns.partition(".")
        temp = self._get_coll(tdb, tcoll)
        dest = self._get_coll("admin", name) or self._create_coll("admin", name)

        def entry_name(d):
            n, d_ = d.get(field), d.get("db")
            if not isinstance(n, str) or not isinstance(d_, str):
                raise CommandError(4, "NoSuchKey", 'Missing expected field "%s"' % (
                    field if not isinstance(n, str) else "db"))
            return n, d_

        to_drop = set()
        if drop:
            to_drop = set(entry_name(d) for _i, d in self._authz_docs(name)
                          if not target or d.get("db") == target)
        for raw in list(temp.docs) if temp is not None else []:
            d = bson.decode(raw, codec_options=_FMT_CODEC)
            if target and not _matches(d, {"db": target}):
                continue
            key = entry_name(d)
            if not isinstance(d.get("roles"), list):
                raise CommandError(14, "TypeMismatch", "'roles' field of %s@%s must be an array" % key)
            if field == "user" and not isinstance(d.get("credentials"), dict):
                raise CommandError(10065, "Location10065", "invalid parameter: expected an object (credentials)")
            if field == "role":
                _normalize_privileges(d.get("privileges") if "privileges" in d else [])
            if drop and key in to_drop:
                for i, cur in self._authz_docs(name):
                    if (cur.get(field), cur.get("db")) == key:
                        raw2, _k = dest.prepare(raw)
                        if _decode(raw2).get("_id") == cur.get("_id"):  # mongod: _id is immutable
                            try:
                                dest.replace_at(i, raw2)
                            except _DuplicateKey:
                                pass
                        break
            else:
                try:
                    dest.add(raw)
                except (_DuplicateKey, CommandError):
                    pass  # mongod logs the failure and goes on, "to match mongorestore"
            to_drop.discard(key)
        if to_drop:
            self._remove_where(name, lambda d: (d.get(field), d.get("db")) in to_drop)

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
        "setParameter": cmd_set_parameter,
        "saslStart": cmd_sasl_start, "saslContinue": cmd_sasl_continue, "logout": cmd_logout,
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
        "createUser": cmd_create_user, "updateUser": cmd_update_user, "dropUser": cmd_drop_user,
        "dropAllUsersFromDatabase": cmd_drop_all_users, "usersInfo": cmd_users_info,
        "createRole": cmd_create_role, "dropRole": cmd_drop_role,
        "dropAllRolesFromDatabase": cmd_drop_all_roles, "rolesInfo": cmd_roles_info,
        "_mergeAuthzCollections": cmd_merge_authz_collections,
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
    p.add_argument("--tls-certificate-key-file", "--tlsCertificateKeyFile", dest="tls_cert",
                   metavar="PEM", help="serve TLS only (requireTLS) with this certificate (chain) "
                   "and, unless --tls-key-file is given, its key")
    p.add_argument("--tls-key-file", dest="tls_key", metavar="PEM",
                   help="the private key of --tls-certificate-key-file")
    p.add_argument("--tls-dir", metavar="DIR",
                   help="serve TLS only with a throwaway CA and server certificate made in DIR "
                        "by tests/tls.py (clients trust DIR/ca.pem); left there at exit")
    p.add_argument("--auth", action="store_true",
                   help="require authentication (mongod --auth): once a user exists, commands "
                        "other than hello, ping, saslStart... answer 13 Unauthorized until the "
                        "connection authenticated")
    p.add_argument("--user", metavar="NAME",
                   help="create NAME in admin with role root (implies --auth); its password is "
                        "the first line of --password-file")
    p.add_argument("--password-file", metavar="FILE",
                   help="the password of --user (a file, so that it is on no command line)")
    p.add_argument("--cursor-timeout-ms", type=int, default=DEFAULT_CURSOR_TIMEOUT_MS, metavar="MS",
                   help="mongod's cursorTimeoutMillis: a cursor idle this long is dropped and its "
                        "getMore answers 43 CursorNotFound (default 600000; 0 or less: never)")
    p.add_argument("--timeout-session-cursors", action="store_true",
                   help="mongod's enableTimeoutOfInactiveSessionCursors: also time out cursors "
                        "opened in a session (with an lsid), as drivers' cursors are")
    p.add_argument("-v", "--verbose", action="store_true", help="log connections and commands to stderr")
    args = p.parse_args(argv)
    if args.tls_key and not args.tls_cert:
        p.error("--tls-key-file needs --tls-certificate-key-file")
    if args.tls_cert and args.tls_dir:
        p.error("--tls-certificate-key-file and --tls-dir exclude each other")
    if bool(args.user) != bool(args.password_file):
        p.error("--user and --password-file go together")
    return args


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
    tls = None
    if args.tls_cert:
        tls = (args.tls_cert, args.tls_key or args.tls_cert)
    elif args.tls_dir:
        tls = _tls_module().TLSMaterial(directory=args.tls_dir)
    users = None
    if args.user:
        with open(args.password_file, encoding="utf-8") as f:
            users = [(args.user, f.readline().rstrip("\r\n"))]
    timeout = args.cursor_timeout_ms if args.cursor_timeout_ms > 0 else None
    srv = FakeMongod(args.host, args.port, faults=faults, verbose=args.verbose,
                     topology_version=args.topology_version, tls=tls, users=users,
                     auth=True if (args.auth or users) else None, cursor_timeout_ms=timeout,
                     timeout_session_cursors=args.timeout_session_cursors)
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
