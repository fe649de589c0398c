#!/usr/bin/python3
"""Self-test of tests/fake_mongod.py, driven through pymongo (Debian's
python3-pymongo) and a few hand-made wire messages.

Run:  /usr/bin/python3 tests/test_fake_mongod.py [-v]
Exits 0 when every test passes, 1 otherwise.  Prints the find throughput
measured for 300k small documents (informational, never asserted).
"""

import datetime
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bson  # noqa: E402
import pymongo  # noqa: E402
from bson.binary import Binary, UuidRepresentation  # noqa: E402
from bson.code import Code  # noqa: E402
from bson.codec_options import CodecOptions  # noqa: E402
from bson.decimal128 import Decimal128  # noqa: E402
from bson.int64 import Int64  # noqa: E402
from bson.max_key import MaxKey  # noqa: E402
from bson.min_key import MinKey  # noqa: E402
from bson.objectid import ObjectId  # noqa: E402
from bson.raw_bson import RawBSONDocument  # noqa: E402
from bson.regex import Regex  # noqa: E402
from bson.son import SON  # noqa: E402
from bson.timestamp import Timestamp  # noqa: E402
from pymongo import errors  # noqa: E402

import fake_mongod  # noqa: E402

FAKE = os.path.join(HERE, "fake_mongod.py")
RAW = CodecOptions(document_class=RawBSONDocument)
STD = CodecOptions(uuid_representation=UuidRepresentation.STANDARD)

SERVER = None


def setUpModule():
    global SERVER
    SERVER = fake_mongod.FakeMongod(port=0).start()


def tearDownModule():
    SERVER.stop()


def client(**kw):
    opts = dict(serverSelectionTimeoutMS=3000, connectTimeoutMS=3000,
                retryReads=False, retryWrites=False)
    opts.update(kw)
    return pymongo.MongoClient(SERVER.uri, **opts)


def all_types_doc(i):
    return SON([
        ("_id", ObjectId()),
        ("double", 1.5 + i),
        ("string", "héllo %d" % i),
        ("doc", SON([("a", 1), ("b", SON([("c", [1, 2])]))])),
        ("array", [1, "two", 3.0, None, SON([("x", 1)])]),
        ("bin0", Binary(b"\x00\x01binary", 0)),
        ("bin4", Binary(uuid.uuid4().bytes, 4)),
        ("bin5", Binary(b"0123456789abcdef", 5)),
        ("bin80", Binary(b"user defined", 0x80)),
        ("oid", ObjectId()),
        ("t", True),
        ("f", False),
        ("date", datetime.datetime(2021, 3, 4, 5, 6, 7, 123000)),
        ("date_pre_1970", datetime.datetime(1931, 1, 2, 3, 4, 5)),
        ("null", None),
        ("regex", Regex("^a.*b$", "im")),
        ("js", Code("function () { return 1; }")),
        ("js_scope", Code("function () { return x; }", {"x": 1})),
        ("int32", 42 + i),
        ("ts", Timestamp(1700000000, i + 1)),
        ("int64", Int64(2 ** 40 + i)),
        ("dec", Decimal128("1234.5678E-3")),
        ("min", MinKey()),
        ("max", MaxKey()),
    ])


def raw_doc(doc):
    return RawBSONDocument(bson.encode(doc, codec_options=STD))


# ---------------------------------------------------------------------------
# wire helpers for hand-made messages

def _crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def op_msg(req_id, body, seqs=(), flags=0, checksum=False):
    if checksum:
        flags |= 1
    payload = struct.pack("<I", flags) + b"\x00" + bson.encode(body)
    for ident, docs in seqs:
        sec = ident.encode() + b"\x00" + b"".join(bson.encode(d) for d in docs)
        payload += b"\x01" + struct.pack("<i", len(sec) + 4) + sec
    msg = struct.pack("<iiii", 16 + len(payload) + (4 if checksum else 0), req_id, 0, 2013) + payload
    if checksum:
        msg += struct.pack("<I", _crc32c(msg))
    return msg


def read_reply(sock):
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("connection closed")
            buf += chunk
        return buf
    hdr = exact(16)
    length, req_id, resp_to, opcode = struct.unpack("<iiii", hdr)
    data = exact(length - 16)
    if opcode == 2013:
        assert data[4] == 0
        return resp_to, opcode, bson.decode(data[5:])
    if opcode == 1:
        flags, cursor_id, start, nret = struct.unpack_from("<iqii", data, 0)
        return resp_to, opcode, bson.decode(data[20:])
    raise AssertionError("unexpected opcode %d" % opcode)


class Base(unittest.TestCase):
    def setUp(self):
        self.c = client()
        self.db = self.c["t_" + self.id().split(".")[-1]]
        self.c.drop_database(self.db.name)
        self.c.admin.command("fakeFault", clear=True)

    def tearDown(self):
        self.c.admin.command("fakeFault", clear=True)
        self.c.close()


# ---------------------------------------------------------------------------


class TestDocuments(Base):
    def test_all_bson_types_roundtrip_bytes(self):
        raws = [raw_doc(all_types_doc(i)) for i in range(50)]
        self.db.types.insert_many(raws)
        got = list(self.db.get_collection("types", codec_options=RAW).find())
        self.assertEqual(len(got), 50)
        for sent, back in zip(raws, got):
            self.assertEqual(sent.raw, back.raw)

    def test_roundtrip_across_batches(self):
        raws = [raw_doc(SON([("_id", i), ("pad", "x" * (i % 300))])) for i in range(5000)]
        self.db.many.insert_many(raws)
        got = [d.raw for d in self.db.get_collection("many", codec_options=RAW).find(batch_size=77)]
        self.assertEqual(got, [r.raw for r in raws])

    def test_missing_id_added_first_and_id_moved_to_front(self):
        coll = self.db.get_collection("ids", codec_options=RAW)
        coll.insert_one(RawBSONDocument(bson.encode(SON([("a", 1)]))))
        coll.insert_one(RawBSONDocument(bson.encode(SON([("a", 2), ("_id", 7)]))))
        docs = [bson.decode(d.raw, codec_options=CodecOptions(document_class=SON)) for d in coll.find()]
        self.assertEqual(list(docs[0].keys()), ["_id", "a"])
        self.assertIsInstance(docs[0]["_id"], ObjectId)
        self.assertEqual(docs[1], SON([("_id", 7), ("a", 2)]))
        self.assertEqual(list(docs[1].keys()), ["_id", "a"])

    def test_counts(self):
        coll = self.db.cnt
        self.assertEqual(coll.count_documents({}), 0)
        self.assertEqual(coll.estimated_document_count(), 0)
        coll.insert_many([{"_id": i, "even": i % 2 == 0, "n": i} for i in range(1234)])
        self.assertEqual(coll.estimated_document_count(), 1234)
        self.assertEqual(coll.count_documents({}), 1234)
        self.assertEqual(coll.count_documents({"even": True}), 617)
        self.assertEqual(coll.count_documents({"n": {"$gte": 1000}}), 234)
        self.assertEqual(coll.count_documents({}, skip=1200), 34)
        self.assertEqual(coll.count_documents({}, limit=10), 10)
        self.assertEqual(self.db.command("count", "cnt", query={"n": {"$in": [1, 2, 3000]}})["n"], 2)
        self.assertEqual(self.db.command("count", "nonexistent")["n"], 0)

    def test_coll_stats_size_is_the_bson_bytes(self):
        """collStats as mongod answers it: size is the sum of the stored
        documents' BSON sizes (an _id the server added included), count the
        documents; a missing collection is NamespaceNotFound."""
        coll = self.db.cs
        coll.insert_many([{"i": i, "pad": "x" * i} for i in range(50)])
        coll.insert_one(RawBSONDocument(bson.encode({"_id": 1, "a": [1, 2, 3]})))

        def stored_bytes():
            raws = coll.with_options(codec_options=RAW).find()
            return sum(len(d.raw) for d in raws)
        st = self.db.command("collStats", "cs")
        self.assertEqual(st["size"], stored_bytes())
        self.assertEqual(st["count"], 51)
        self.assertEqual(st["avgObjSize"], st["size"] // 51)
        coll.delete_many({"i": {"$lt": 25}})
        st = self.db.command("collStats", "cs")
        self.assertEqual(st["size"], stored_bytes())
        self.assertEqual(st["count"], 26)
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command("collStats", "missing")
        self.assertEqual(cm.exception.code, 26)

    def test_delete(self):
        coll = self.db.dl
        coll.insert_many([{"_id": i, "k": i % 3} for i in range(30)])
        self.assertEqual(coll.delete_one({"k": 1}).deleted_count, 1)
        self.assertEqual(coll.delete_many({"k": 1}).deleted_count, 9)
        self.assertEqual(coll.count_documents({}), 20)
        self.assertEqual(coll.delete_many({}).deleted_count, 20)
        self.assertEqual(coll.count_documents({}), 0)
        coll.insert_one({"_id": 1})  # _id set was cleared too
        self.assertEqual(coll.estimated_document_count(), 1)


class TestCollectionsAndIndexes(Base):
    def test_list_collections(self):
        self.db.a.insert_one({"x": 1})
        self.db.create_collection("b", capped=True, size=4096)
        self.assertEqual(sorted(self.db.list_collection_names()), ["a", "b"])
        infos = list(self.db.list_collections(filter={"name": "b"}))
        self.assertEqual(len(infos), 1)
        info = infos[0]
        self.assertEqual(info["name"], "b")
        self.assertEqual(info["type"], "collection")
        self.assertEqual(dict(info["options"]), {"capped": True, "size": 4096})
        self.assertFalse(info["info"]["readOnly"])
        self.assertEqual(info["idIndex"], {"v": 2, "key": {"_id": 1}, "name": "_id_"})
        raw = self.db.command("listCollections", filter={"name": "a"}, codec_options=RAW)
        uuid_elem = raw.raw[raw.raw.index(b"\x05uuid\x00"):][:11]
        self.assertEqual(uuid_elem[-5:], b"\x10\x00\x00\x00\x04")  # 16 bytes, subtype 4
        names = self.db.command("listCollections", nameOnly=True)["cursor"]["firstBatch"]
        self.assertEqual(sorted(names, key=lambda d: d["name"]),
                         [{"name": "a", "type": "collection"}, {"name": "b", "type": "collection"}])
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command("create", "b")
        self.assertEqual(cm.exception.code, 48)

    def test_list_databases_and_drop_database(self):
        self.db.x.insert_one({})
        self.assertIn(self.db.name, self.c.list_database_names())
        self.c.drop_database(self.db.name)
        self.assertNotIn(self.db.name, self.c.list_database_names())

    def test_indexes(self):
        coll = self.db.users
        coll.insert_one({"email": "a@example.com"})
        self.assertEqual(coll.create_index([("email", 1)], unique=True), "email_1")
        self.assertEqual(coll.create_index([("email", 1)], unique=True), "email_1")  # no-op again
        self.assertEqual(coll.create_index([("a", 1), ("b", -1)], name="ab", sparse=True), "ab")
        idx = list(coll.list_indexes())
        self.assertEqual([dict(i) for i in idx], [
            {"v": 2, "key": {"_id": 1}, "name": "_id_"},
            {"v": 2, "key": {"email": 1}, "name": "email_1", "unique": True},
            {"v": 2, "key": {"a": 1, "b": -1}, "name": "ab", "sparse": True},
        ])
        self.assertEqual(list(idx[2]["key"].keys()), ["a", "b"])
        with self.assertRaises(errors.DuplicateKeyError):
            coll.insert_one({"email": "a@example.com"})
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command("listIndexes", "nope")
        self.assertEqual(cm.exception.code, 26)
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command("createIndexes", "users", indexes=[{"key": {"z": 1}}])
        self.assertEqual(cm.exception.code, 9)
        self.db.command("createIndexes", "fresh", indexes=[{"key": {"z": 1}, "name": "z_1"}])
        self.assertIn("fresh", self.db.list_collection_names())

    def test_drop(self):
        self.db.d.insert_one({})
        res = self.db.command("drop", "d")
        self.assertEqual(res["ns"], "%s.d" % self.db.name)
        self.assertNotIn("d", self.db.list_collection_names())
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command("drop", "d")
        self.assertEqual(cm.exception.code, 26)
        self.assertEqual(cm.exception.details["codeName"], "NamespaceNotFound")
        self.db.drop_collection("d")  # pymongo ignores ns not found

    def test_duplicate_key(self):
        coll = self.db.dup
        coll.insert_one({"_id": 1})
        with self.assertRaises(errors.DuplicateKeyError) as cm:
            coll.insert_one({"_id": 1})
        self.assertEqual(cm.exception.code, 11000)
        self.assertIn("E11000 duplicate key error collection: %s.dup index: _id_" % self.db.name,
                      str(cm.exception))
        coll.insert_one({"_id": 1.5})
        with self.assertRaises(errors.DuplicateKeyError):
            coll.insert_one({"_id": Int64(1)})  # numbers compare by value, like mongod

    def test_insert_many_ordered_and_unordered(self):
        coll = self.db.bulk
        coll.insert_one({"_id": 2})
        with self.assertRaises(errors.BulkWriteError) as cm:
            coll.insert_many([{"_id": i} for i in range(5)])
        det = cm.exception.details
        self.assertEqual(det["nInserted"], 2)
        self.assertEqual([(e["index"], e["code"]) for e in det["writeErrors"]], [(2, 11000)])
        self.assertEqual(coll.count_documents({}), 3)
        with self.assertRaises(errors.BulkWriteError) as cm:
            coll.insert_many([{"_id": i} for i in range(10)], ordered=False)
        det = cm.exception.details
        self.assertEqual(det["nInserted"], 7)
        self.assertEqual(sorted(e["index"] for e in det["writeErrors"]), [0, 1, 2])
        self.assertEqual(coll.count_documents({}), 10)


class TestCommands(Base):
    def test_handshake_commands(self):
        for name in ("hello", "isMaster", "ismaster"):
            r = self.c.admin.command(name)
            self.assertEqual(r["maxWireVersion"], 17)
            self.assertEqual(r["minWireVersion"], 0)
            self.assertEqual(r["maxBsonObjectSize"], 16777216)
            self.assertEqual(r["maxMessageSizeBytes"], 48000000)
            self.assertEqual(r["maxWriteBatchSize"], 100000)
            self.assertEqual(r["logicalSessionTimeoutMinutes"], 30)
            self.assertTrue(r["helloOk"])
            self.assertTrue(r.get("isWritablePrimary") or r.get("ismaster"))
            self.assertIn("connectionId", r)
        bi = self.c.admin.command("buildInfo")
        self.assertEqual(bi["version"], "6.0.0")
        self.assertEqual(bi["versionArray"][:3], [6, 0, 0])
        self.assertEqual(self.c.admin.command("ping")["ok"], 1.0)
        self.c.admin.command("getParameter", featureCompatibilityVersion=1)
        self.c.admin.command("getCmdLineOpts")

    def test_awaitable_hello_waits(self):
        tv = self.c.admin.command("hello")["topologyVersion"]
        t0 = time.time()
        self.c.admin.command(SON([("hello", 1), ("topologyVersion", tv), ("maxAwaitTimeMS", 400)]))
        self.assertGreaterEqual(time.time() - t0, 0.35)
        stale = SON([("processId", ObjectId()), ("counter", Int64(0))])  # another server's
        t0 = time.time()
        self.c.admin.command(SON([("hello", 1), ("topologyVersion", stale), ("maxAwaitTimeMS", 5000)]))
        self.assertLess(time.time() - t0, 1.0)

    def test_unknown_command(self):
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command("bogusCommand")
        self.assertEqual(cm.exception.code, 59)
        self.assertEqual(cm.exception.details["errmsg"], "no such command: 'bogusCommand'")
        self.assertEqual(cm.exception.details["codeName"], "CommandNotFound")
        self.assertEqual(cm.exception.details["ok"], 0.0)


class TestFind(Base):
    def seed(self, n, size=0, name="f"):
        self.db[name].insert_many([raw_doc(SON([("_id", i), ("p", "x" * size)])) for i in range(n)])

    def test_batches(self):
        self.seed(250)
        r = self.db.command("find", "f")
        self.assertEqual(len(r["cursor"]["firstBatch"]), 101)
        cid = r["cursor"]["id"]
        self.assertGreater(cid, 0)
        self.assertEqual(r["cursor"]["ns"], "%s.f" % self.db.name)
        r = self.db.command("getMore", cid, collection="f", batchSize=40)
        self.assertEqual([d["_id"] for d in r["cursor"]["nextBatch"]], list(range(101, 141)))
        r = self.db.command("getMore", cid, collection="f")
        self.assertEqual(len(r["cursor"]["nextBatch"]), 109)
        self.assertEqual(r["cursor"]["id"], 0)
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command("getMore", cid, collection="f")
        self.assertEqual(cm.exception.code, 43)

    def test_16mib_cap(self):
        self.seed(40, size=1000000 - 30)
        r = self.db.command("find", "f", batchSize=1000)
        self.assertEqual(len(r["cursor"]["firstBatch"]), 16)
        cid = r["cursor"]["id"]
        r = self.db.command("getMore", cid, collection="f")
        self.assertEqual(len(r["cursor"]["nextBatch"]), 16)
        r = self.db.command("getMore", cid, collection="f")
        self.assertEqual(len(r["cursor"]["nextBatch"]), 8)
        self.assertEqual(r["cursor"]["id"], 0)
        self.db.big.insert_one(raw_doc(SON([("_id", 0), ("p", b"y" * (16 * 1024 * 1024 - 100))])))
        self.db.big.insert_one(raw_doc(SON([("_id", 1), ("p", b"z" * 100)])))
        r = self.db.command("find", "big")
        self.assertEqual(len(r["cursor"]["firstBatch"]), 1)  # at least one document

    def test_options(self):
        self.seed(50)
        f = self.db.f
        self.assertEqual([d["_id"] for d in f.find(skip=45)], [45, 46, 47, 48, 49])
        self.assertEqual([d["_id"] for d in f.find(limit=3)], [0, 1, 2])
        self.assertEqual([d["_id"] for d in f.find(skip=10, limit=3, batch_size=2)], [10, 11, 12])
        self.assertEqual([d["_id"] for d in f.find().sort("$natural", -1).limit(2)], [49, 48])
        self.assertEqual(len(list(f.find(hint=[("$natural", 1)]))), 50)
        self.assertEqual([d["_id"] for d in f.find({"_id": {"$lt": 3}})], [0, 1, 2])
        self.assertEqual(len(list(f.find({}, {"p": 0}))), 50)  # projection ignored, no error
        r = self.db.command("find", "f", batchSize=0)
        self.assertEqual(r["cursor"]["firstBatch"], [])
        self.assertNotEqual(r["cursor"]["id"], 0)
        self.db.command("killCursors", "f", cursors=[r["cursor"]["id"]])
        r = self.db.command("find", "f", singleBatch=True, batchSize=5)
        self.assertEqual((len(r["cursor"]["firstBatch"]), r["cursor"]["id"]), (5, 0))
        r = self.db.command("find", "nothere")
        self.assertEqual((r["cursor"]["firstBatch"], r["cursor"]["id"]), ([], 0))
        self.assertEqual(self.db.command("fakeStats")["openCursors"] >= 0, True)

    def test_aggregate_count(self):
        self.seed(10)
        r = self.db.command("aggregate", "f", pipeline=[{"$match": {}}, {"$group": {"_id": 1, "n": {"$sum": 1}}}],
                            cursor={})
        self.assertEqual(r["cursor"]["firstBatch"], [{"_id": 1, "n": 10}])
        r = self.db.command("aggregate", "none", pipeline=[{"$match": {}}, {"$group": {"_id": 1, "n": {"$sum": 1}}}],
                            cursor={})
        self.assertEqual(r["cursor"]["firstBatch"], [])

    def test_throughput_300k_small_docs(self):
        n = 300000
        raws = [raw_doc(SON([("_id", i), ("name", "user%06d" % i), ("v", i * 0.5)])) for i in range(n)]
        self.db.tp.insert_many(raws)
        coll = self.db.get_collection("tp", codec_options=RAW)
        t0 = time.time()
        total = count = 0
        for d in coll.find():
            total += len(d.raw)
            count += 1
        dt = time.time() - t0
        self.assertEqual(count, n)
        sys.stderr.write("\n    pymongo find: %d docs (%d bytes each), %.1f MB in %.2f s = %.1f MB/s, "
                         "%.0f docs/s ... " % (count, total // count, total / 1e6, dt, total / 1e6 / dt,
                                               count / dt))


class TestFaults(Base):
    def seed(self, n=100):
        self.db.fl.insert_many([{"_id": i} for i in range(n)])

    def fault(self, **kw):
        return self.c.admin.command(SON([("fakeFault", 1)] + list(kw.items())))

    def iterate(self, cl, batch_size=10):
        return [d["_id"] for d in cl[self.db.name].fl.find(batch_size=batch_size)]

    def test_close_on_getmore(self):
        self.seed()
        self.fault(close_on_getmore=3)
        with client() as cl:
            with self.assertRaises(errors.AutoReconnect):
                self.iterate(cl)
            self.assertEqual(len(self.iterate(cl)), 100)  # fires once
        st = self.c.admin.command("fakeStats")
        self.assertGreaterEqual(st["faultsFired"], 1)

    def test_half_reply_on_getmore(self):
        self.seed()
        self.fault(half_reply_on_getmore=1)
        with client() as cl:
            with self.assertRaises(errors.AutoReconnect):
                self.iterate(cl)

    def test_hang_on_getmore(self):
        self.seed()
        self.fault(hang_on_getmore=2)
        with client(socketTimeoutMS=700) as cl:
            t0 = time.time()
            with self.assertRaises(errors.NetworkTimeout):
                self.iterate(cl)
            self.assertGreaterEqual(time.time() - t0, 0.6)

    def test_cursor_not_found_on_getmore(self):
        self.seed()
        self.fault(cursor_not_found_on_getmore=1)
        with client() as cl:
            with self.assertRaises(errors.CursorNotFound) as cm:
                self.iterate(cl)
            self.assertEqual(cm.exception.code, 43)

    def test_error_on(self):
        self.seed()
        r = self.fault(error_on=["find", "listIndexes"])
        self.assertEqual(r["faults"]["error_on"], ["find", "listIndexes"])
        with client() as cl:
            with self.assertRaises(errors.OperationFailure) as cm:
                self.iterate(cl)
            self.assertEqual(cm.exception.code, 8000)
            self.assertEqual(cm.exception.details["errmsg"], "injected fault")
            with self.assertRaises(errors.OperationFailure):
                cl[self.db.name].command("listIndexes", "fl")
            self.assertEqual(cl[self.db.name].fl.count_documents({}), 100)
        self.fault(clear=True)
        with client() as cl:
            self.assertEqual(len(self.iterate(cl)), 100)

    def test_close_on_insert(self):
        self.fault(close_on_insert=2)
        with client() as cl:
            coll = cl[self.db.name].ins
            coll.insert_one({"_id": 1})
            with self.assertRaises(errors.AutoReconnect):
                coll.insert_one({"_id": 2})
            self.assertEqual(coll.count_documents({}), 1)  # nothing applied
            coll.insert_one({"_id": 3})

    def test_stats(self):
        self.c.admin.command("fakeStats", reset=True)
        self.seed(30)
        with client() as cl:
            list(cl[self.db.name].fl.find(batch_size=10))
            st = cl.admin.command("fakeStats")
        self.assertEqual(st["finds"], 1)
        self.assertEqual(st["getMores"], 2)
        self.assertEqual(st["inserts"], 1)
        self.assertEqual(st["insertedDocuments"], 30)
        self.assertGreaterEqual(st["connections"], 1)
        self.assertGreaterEqual(st["activeConnections"], 1)


class TestWire(unittest.TestCase):
    def setUp(self):
        self.sock = socket.create_connection(("127.0.0.1", SERVER.port), timeout=5)

    def tearDown(self):
        self.sock.close()

    def test_op_query_handshake(self):
        q = bson.encode(SON([("isMaster", 1), ("helloOk", True), ("client", {"driver": {"name": "t"}})]))
        body = struct.pack("<i", 0) + b"admin.$cmd\x00" + struct.pack("<ii", 0, -1) + q
        self.sock.sendall(struct.pack("<iiii", 16 + len(body), 7, 0, 2004) + body)
        resp_to, opcode, doc = read_reply(self.sock)
        self.assertEqual((resp_to, opcode), (7, 1))
        self.assertTrue(doc["ismaster"])
        self.assertTrue(doc["helloOk"])
        self.assertEqual(doc["maxWireVersion"], 17)

    def test_op_msg_kind1_checksum_and_more_to_come(self):
        db = "t_wire"
        self.sock.sendall(op_msg(1, {"dropDatabase": 1, "$db": db}))
        read_reply(self.sock)
        docs = [SON([("_id", i), ("v", "d%d" % i)]) for i in range(3)]
        self.sock.sendall(op_msg(2, {"insert": "w", "$db": db}, seqs=[("documents", docs)], checksum=True))
        resp_to, opcode, doc = read_reply(self.sock)
        self.assertEqual((resp_to, opcode, doc["n"], doc["ok"]), (2, 2013, 3, 1.0))
        # moreToCome: unacknowledged, no reply; the next reply must answer request 4
        self.sock.sendall(op_msg(3, {"insert": "w", "$db": db}, seqs=[("documents", [{"_id": 9}])], flags=2))
        self.sock.sendall(op_msg(4, {"count": "w", "$db": db}))
        resp_to, opcode, doc = read_reply(self.sock)
        self.assertEqual((resp_to, doc["n"]), (4, 4))
        # documents in the body array work as well
        self.sock.sendall(op_msg(5, {"insert": "w", "documents": [{"_id": 10}], "$db": db}))
        self.assertEqual(read_reply(self.sock)[2]["n"], 1)


class TestCli(unittest.TestCase):
    def start(self, *args):
        tmp = tempfile.mkdtemp()
        port_file = os.path.join(tmp, "port")
        p = subprocess.Popen(["/usr/bin/python3", FAKE, "--port", "0", "--port-file", port_file] + list(args),
                             stdout=subprocess.PIPE, text=True)
        self.addCleanup(p.stdout.close)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        line = p.stdout.readline()
        self.assertRegex(line, r"^listening 127\.0\.0\.1:\d+\n$")
        port = int(line.strip().rsplit(":", 1)[1])
        with open(port_file) as f:
            self.assertEqual(int(f.read()), port)
        return p, port

    def stop(self, p, sig=signal.SIGTERM):
        t0 = time.time()
        p.send_signal(sig)
        self.assertEqual(p.wait(5), 0)
        self.assertLess(time.time() - t0, 1.0)
        self.assertEqual(p.stdout.read(), "")  # exactly one line was printed

    def test_start_stop(self):
        p, port = self.start()
        with pymongo.MongoClient("127.0.0.1", port, serverSelectionTimeoutMS=3000) as cl:
            cl.t.c.insert_many([{"_id": i} for i in range(1000)])
            self.assertEqual(cl.t.c.count_documents({}), 1000)
            self.stop(p)

    def test_sigint(self):
        p, port = self.start()
        self.stop(p, signal.SIGINT)

    def test_fault_flags(self):
        p, port = self.start("--close-on-getmore", "2", "--error-on", "listIndexes")
        with pymongo.MongoClient("127.0.0.1", port, serverSelectionTimeoutMS=3000, retryReads=False) as cl:
            cl.t.c.insert_many([{"_id": i} for i in range(100)])
            with self.assertRaises(errors.AutoReconnect):
                list(cl.t.c.find(batch_size=10))
            self.assertEqual(len(list(cl.t.c.find(batch_size=10))), 100)
            with self.assertRaises(errors.OperationFailure) as cm:
                cl.t.command("listIndexes", "c")
            self.assertEqual(cm.exception.code, 8000)
        self.stop(p)


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2 if "-v" in sys.argv else 1)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
