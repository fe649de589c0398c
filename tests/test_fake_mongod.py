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


SONOPTS = CodecOptions(document_class=SON, uuid_representation=UuidRepresentation.STANDARD)


def listing(db, name):
    """The listCollections entry of name (SON, so field order shows)."""
    docs = db.with_options(codec_options=SONOPTS).command(
        "listCollections", filter={"name": name})["cursor"]["firstBatch"]
    return docs[0] if docs else None


def indexes(db, name, **kw):
    return db.with_options(codec_options=SONOPTS).command("listIndexes", name, **kw)["cursor"]["firstBatch"]


def ts_utc(*a):
    return datetime.datetime(*a)


class TestViews(Base):
    def seed(self):
        self.db.src.insert_many([SON([("_id", i), ("a", i % 3), ("b", "x%d" % i)]) for i in range(30)])

    def test_create_view_listing_and_system_views(self):
        self.seed()
        pipeline = [{"$match": {"a": 1}}, {"$project": {"b": 1}}]
        self.assertEqual(self.db.command("create", "v", viewOn="src", pipeline=pipeline)["ok"], 1.0)
        entry = listing(self.db, "v")
        self.assertEqual(list(entry.keys()), ["name", "type", "options", "info"])  # no uuid, no idIndex
        self.assertEqual(entry["type"], "view")
        self.assertEqual(list(entry["options"].keys()), ["viewOn", "pipeline"])
        self.assertEqual(entry["options"]["viewOn"], "src")
        self.assertEqual(entry["options"]["pipeline"], pipeline)
        self.assertEqual(entry["info"], {"readOnly": True})
        # stored the way mongod stores it: a document in <db>.system.views, listed as a collection
        sv = listing(self.db, "system.views")
        self.assertEqual(sv["type"], "collection")
        self.assertIn("uuid", sv["info"])
        stored = list(self.db.get_collection("system.views", codec_options=SONOPTS).find())
        self.assertEqual(stored, [SON([("_id", "%s.v" % self.db.name), ("viewOn", "src"), ("pipeline", pipeline)])])
        self.assertEqual(list(stored[0].keys()), ["_id", "viewOn", "pipeline"])
        names = self.db.command("listCollections", nameOnly=True)["cursor"]["firstBatch"]
        self.assertIn({"name": "v", "type": "view"}, names)
        # {type: "collection"} leaves views out, as mongod does
        colls = self.db.command("listCollections", filter={"type": "collection"})["cursor"]["firstBatch"]
        self.assertEqual(sorted(c["name"] for c in colls), ["src", "system.views"])
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command("create", "v", viewOn="src")
        self.assertEqual((cm.exception.code, cm.exception.details["errmsg"]),
                         (48, "A view already exists. NS: %s.v" % self.db.name))

    def test_find_count_aggregate_through_view(self):
        self.seed()
        self.db.command("create", "v", viewOn="src", pipeline=[{"$match": {"a": 1}}, {"$project": {"b": 1}}])
        got = list(self.db.get_collection("v", codec_options=SONOPTS).find())
        self.assertEqual(got, [SON([("_id", i), ("b", "x%d" % i)]) for i in range(1, 30, 3)])
        self.assertEqual(self.db.v.count_documents({}), 10)
        self.assertEqual(self.db.v.count_documents({"_id": {"$gt": 20}}), 3)
        self.assertEqual([d["_id"] for d in self.db.v.find({"_id": {"$lt": 10}}, skip=1, limit=2)], [4, 7])
        r = self.db.command("find", "v", batchSize=4)
        self.assertEqual(r["cursor"]["ns"], "%s.v" % self.db.name)
        self.assertEqual(len(r["cursor"]["firstBatch"]), 4)
        self.assertEqual(len(list(self.db.v.find(batch_size=3))), 10)  # getMore through the view
        r = self.db.command("aggregate", "v", pipeline=[{"$match": {"_id": {"$gte": 13}}}, {"$count": "n"}],
                            cursor={})
        self.assertEqual(r["cursor"]["firstBatch"], [{"n": 6}])
        self.db.command("create", "ids", viewOn="src", pipeline=[{"$project": {"_id": 1}}, {"$limit": 2}])
        self.assertEqual(list(self.db.ids.find()), [{"_id": 0}, {"_id": 1}])
        # a view on a view, and an exclusion projection
        self.db.command("create", "vv", viewOn="v", pipeline=[{"$project": {"_id": 0}}, {"$limit": 2}])
        self.assertEqual(list(self.db.vv.find()), [{"b": "x1"}, {"b": "x4"}])
        # stored documents come through a $match-only view byte for byte
        self.db.command("create", "raw", viewOn="src", pipeline=[{"$match": {"a": 2}}])
        src = [d.raw for d in self.db.get_collection("src", codec_options=RAW).find({"a": 2})]
        self.assertEqual([d.raw for d in self.db.get_collection("raw", codec_options=RAW).find()], src)

    def test_view_errors(self):
        self.seed()
        self.db.command("create", "v", viewOn="src", pipeline=[{"$match": {}}])
        msg = "Namespace %s.v is a view, not a collection" % self.db.name
        for cmd in (SON([("listIndexes", "v")]), SON([("collStats", "v")])):
            with self.assertRaises(errors.OperationFailure) as cm:
                self.db.command(cmd)
            self.assertEqual((cm.exception.code, cm.exception.details["errmsg"],
                              cm.exception.details["codeName"]), (166, msg, "CommandNotSupportedOnView"))
        r = self.db.command("insert", "v", documents=[{"x": 1}, {"x": 2}])
        self.assertEqual((r["n"], r["writeErrors"]), (0, [{"index": 0, "code": 166, "errmsg": msg}]))
        r = self.db.command("delete", "v", deletes=[{"q": {}, "limit": 0}])
        self.assertEqual(r["writeErrors"][0]["code"], 166)
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command("createIndexes", "v", indexes=[{"key": {"a": 1}, "name": "a_1"}])
        self.assertEqual((cm.exception.code, cm.exception.details["errmsg"]),
                         (166, "Cannot create indexes on a view"))
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command("create", "bad", viewOn="src", pipeline=[{"$nope": {}}])
        self.assertEqual((cm.exception.code, cm.exception.details["errmsg"]),
                         (40324, "Unrecognized pipeline stage name: '$nope'"))
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command("create", "loop", viewOn="loop")
        self.assertEqual(cm.exception.code, 5)
        # a stage mongod has but the fake does not run: refused when read, not pretended
        self.db.command("create", "sorted", viewOn="src", pipeline=[{"$sort": {"b": 1}}])
        with self.assertRaises(errors.OperationFailure) as cm:
            list(self.db.sorted.find())
        self.assertIn("fake_mongod: unsupported aggregation stage $sort", str(cm.exception))

    def test_drop_view_and_list_databases(self):
        other = self.c["t_viewsonly"]
        self.c.drop_database(other.name)
        other.command("create", "v", viewOn="nothere")
        self.assertIn(other.name, self.c.list_database_names())  # a database of only views lists
        self.assertEqual(list(other.v.find()), [])
        self.assertEqual(other.command("drop", "v")["ns"], "%s.v" % other.name)
        self.assertEqual(list(other["system.views"].find()), [])
        self.assertEqual(other.list_collection_names(), ["system.views"])
        with self.assertRaises(errors.OperationFailure) as cm:
            other.command("drop", "v")
        self.assertEqual(cm.exception.code, 26)
        self.c.drop_database(other.name)

    def test_view_collation_listed_in_full(self):
        self.seed()
        self.db.command("create", "v", viewOn="src", pipeline=[], collation={"locale": "fr"})
        opts = listing(self.db, "v")["options"]
        self.assertEqual(list(opts.keys()), ["viewOn", "pipeline", "collation"])
        self.assertEqual(opts["collation"]["locale"], "fr")
        self.assertEqual(opts["collation"]["version"], "57.1")


class TestTimeseries(Base):
    T0 = ts_utc(2024, 1, 1, 12, 0, 30)

    def create(self, name="w", **ts):
        spec = {"timeField": "t", "metaField": "m"}
        spec.update(ts)
        return self.db.command("create", name, timeseries=spec)

    def test_listing_of_both_namespaces(self):
        self.db.command(SON([("create", "w"), ("timeseries", {"timeField": "t", "metaField": "m",
                                                                 "granularity": "minutes"}),
                             ("expireAfterSeconds", 600)]))
        view = listing(self.db, "w")
        self.assertEqual(list(view.keys()), ["name", "type", "options", "info"])
        self.assertEqual(view["type"], "timeseries")
        self.assertEqual(view["options"], SON([
            ("expireAfterSeconds", Int64(600)),
            ("timeseries", SON([("timeField", "t"), ("metaField", "m"), ("granularity", "minutes"),
                                ("bucketMaxSpanSeconds", 86400)]))]))
        self.assertEqual(list(view["options"]["timeseries"].keys()),
                         ["timeField", "metaField", "granularity", "bucketMaxSpanSeconds"])
        self.assertIsInstance(view["options"]["expireAfterSeconds"], Int64)
        self.assertEqual(view["info"], {"readOnly": False})
        buckets = listing(self.db, "system.buckets.w")
        self.assertEqual(list(buckets.keys()), ["name", "type", "options", "info"])  # clustered: no idIndex
        self.assertEqual(buckets["type"], "collection")
        self.assertEqual(list(buckets["options"].keys()),
                         ["validator", "clusteredIndex", "expireAfterSeconds", "timeseries"])
        self.assertIs(buckets["options"]["clusteredIndex"], True)
        schema = buckets["options"]["validator"]["$jsonSchema"]
        self.assertEqual(schema["required"], ["_id", "control", "data"])
        self.assertEqual(schema["properties"]["control"]["properties"]["min"],
                         {"bsonType": "object", "required": ["t"], "properties": {"t": {"bsonType": "date"}}})
        self.assertFalse(schema["additionalProperties"])
        self.assertEqual(list(buckets["info"].keys()), ["readOnly", "uuid"])
        # defaults filled in: granularity seconds, bucketMaxSpanSeconds 3600
        self.create("d", metaField=None)
        self.assertEqual(listing(self.db, "d")["options"]["timeseries"],
                         SON([("timeField", "t"), ("granularity", "seconds"), ("bucketMaxSpanSeconds", 3600)]))
        view_doc = self.db.get_collection("system.views", codec_options=SONOPTS).find_one({"_id": "%s.w" % self.db.name})
        self.assertEqual(view_doc["viewOn"], "system.buckets.w")
        self.assertEqual(list(view_doc["pipeline"][0]["$_internalUnpackBucket"].keys()),
                         ["timeField", "metaField", "bucketMaxSpanSeconds", "exclude"])
        self.assertEqual(indexes(self.db, "w"), [])
        self.assertEqual(indexes(self.db, "system.buckets.w"), [])

    def test_buckets_and_measurements(self):
        self.create()
        docs = [SON([("_id", i), ("t", self.T0 + datetime.timedelta(minutes=i)), ("m", {"s": i % 2}),
                     ("v", i * 1.5)]) for i in range(6)]
        docs[5]["extra"] = "only here"
        self.assertEqual(self.db.w.insert_many(docs).inserted_ids, list(range(6)))
        buckets = list(self.db.get_collection("system.buckets.w", codec_options=SONOPTS).find())
        self.assertEqual(len(buckets), 2)  # one per meta value
        b = buckets[0]
        self.assertEqual(list(b.keys()), ["_id", "control", "meta", "data"])
        self.assertEqual(list(b["control"].keys()), ["version", "min", "max"])
        self.assertEqual(b["control"]["version"], 1)
        self.assertEqual(b["meta"], {"s": 0})
        rounded = ts_utc(2024, 1, 1, 12, 0)  # seconds granularity: min rounded down to the minute
        self.assertEqual(b["control"]["min"], SON([("_id", 0), ("t", rounded), ("v", 0.0)]))
        self.assertEqual(b["control"]["max"], SON([("_id", 4), ("t", self.T0 + datetime.timedelta(minutes=4)),
                                                   ("v", 6.0)]))
        self.assertEqual(b["_id"].generation_time.replace(tzinfo=None), rounded)
        self.assertEqual(b["data"], SON([
            ("_id", SON([("0", 0), ("1", 2), ("2", 4)])),
            ("t", SON([(str(k), self.T0 + datetime.timedelta(minutes=i)) for k, i in enumerate((0, 2, 4))])),
            ("v", SON([("0", 0.0), ("1", 3.0), ("2", 6.0)]))]))
        self.assertEqual(buckets[1]["data"]["extra"], {"2": "only here"})  # a sparse column
        # measurements unpacked: time, meta, then the data columns
        got = list(self.db.get_collection("w", codec_options=SONOPTS).find())
        self.assertEqual(len(got), 6)
        self.assertEqual(list(got[0].keys()), ["t", "m", "_id", "v"])
        self.assertEqual(sorted(d["_id"] for d in got), list(range(6)))
        self.assertEqual(got[-1]["extra"], "only here")
        self.assertEqual(self.db.w.count_documents({}), 6)
        self.assertEqual(self.db.w.count_documents({"m.s": 1}), 3)
        self.assertEqual([d["_id"] for d in self.db.w.find({"v": {"$gte": 6}})], [4, 5])
        r = self.db.command("aggregate", "w", pipeline=[{"$match": {"m": {"s": 0}}}, {"$count": "n"}], cursor={})
        self.assertEqual(r["cursor"]["firstBatch"], [{"n": 3}])
        # later inserts go into the open bucket, which is rewritten in place
        self.db.w.insert_one({"_id": 6, "t": self.T0 + datetime.timedelta(minutes=6), "m": {"s": 0}, "v": 9.0})
        buckets = list(self.db.get_collection("system.buckets.w", codec_options=SONOPTS).find())
        self.assertEqual(len(buckets), 2)
        self.assertEqual(list(buckets[0]["data"]["_id"].values()), [0, 2, 4, 6])
        st = self.db.command("collStats", "w")
        self.assertEqual((st["ns"], st["count"], st["timeseries"]["bucketsNs"]),
                         ("%s.w" % self.db.name, 2, "%s.system.buckets.w" % self.db.name))

    def test_bucket_boundaries(self):
        self.create()
        t = self.T0
        self.db.w.insert_many([{"t": t + datetime.timedelta(seconds=i), "m": 1} for i in range(1001)])
        self.assertEqual(self.db["system.buckets.w"].count_documents({}), 2)  # 1000 per bucket
        self.db.w.insert_one({"t": t + datetime.timedelta(hours=2), "m": 1})  # beyond bucketMaxSpanSeconds
        self.db.w.insert_one({"t": t, "m": 2})  # another meta value
        self.db.w.insert_one({"t": t})  # no meta at all
        counts = [len(b["data"]["t"]) for b in self.db["system.buckets.w"].find()]
        self.assertEqual(counts, [1000, 1, 1, 1, 1])
        self.assertNotIn("meta", list(self.db["system.buckets.w"].find())[-1])
        self.assertEqual(self.db.w.count_documents({}), 1004)

    def test_buckets_restored_by_direct_insert(self):
        """mongorestore's way: create the collection with the listed options,
        insert the dumped bucket documents into system.buckets.X."""
        self.create()
        self.db.w.insert_many([{"t": self.T0 + datetime.timedelta(seconds=7 * i), "m": i % 3, "v": i}
                               for i in range(50)])
        dumped = [d.raw for d in self.db.get_collection("system.buckets.w", codec_options=RAW).find(
            hint=[("$natural", 1)])]
        options = listing(self.db, "w")["options"]
        dest = self.c["t_ts_restore"]
        self.c.drop_database(dest.name)
        dest.command(SON([("create", "w")] + list(options.items())))
        dest.get_collection("system.buckets.w", codec_options=RAW).insert_many(
            [RawBSONDocument(r) for r in dumped])
        back = [d.raw for d in dest.get_collection("system.buckets.w", codec_options=RAW).find()]
        self.assertEqual(back, dumped)  # byte for byte
        self.assertEqual([d.raw for d in dest.get_collection("w", codec_options=RAW).find()],
                         [d.raw for d in self.db.get_collection("w", codec_options=RAW).find()])
        # a compressed (control.version 2) bucket is stored and served, but not unpacked
        v2 = SON([("_id", ObjectId()), ("control", SON([("version", 2), ("min", {"t": self.T0}),
                                                        ("max", {"t": self.T0}), ("count", 1)])),
                  ("data", {"t": Binary(b"\x00", 7)})])
        dest["system.buckets.w"].insert_one(v2)
        self.assertEqual(dest["system.buckets.w"].find_one({"_id": v2["_id"]})["control"]["version"], 2)
        with self.assertRaises(errors.OperationFailure) as cm:
            list(dest.w.find())
        self.assertIn("control.version 1", str(cm.exception))
        # the buckets' validator: a document that is not a bucket is refused (121)
        with self.assertRaises(errors.WriteError) as cm:
            dest["system.buckets.w"].insert_one({"x": 1})
        self.assertEqual(cm.exception.code, 121)
        self.c.drop_database(dest.name)

    def test_timeseries_indexes_and_errors(self):
        self.create()
        self.assertEqual(self.db.w.create_index([("m", 1), ("t", -1)]), "m_1_t_-1")
        self.assertEqual(indexes(self.db, "w"), [SON([("v", 2), ("key", SON([("m", 1), ("t", -1)])),
                                                      ("name", "m_1_t_-1")])])
        self.assertEqual(indexes(self.db, "system.buckets.w"), [SON([
            ("v", 2), ("key", SON([("meta", 1), ("control.max.t", -1), ("control.min.t", -1)])),
            ("name", "m_1_t_-1")])])
        r = self.db.command("insert", "w", documents=[{"m": 1}])
        self.assertEqual((r["n"], r["writeErrors"][0]["code"], r["writeErrors"][0]["errmsg"]),
                         (0, 2, "'t' must be present and contain a valid BSON UTC datetime value"))
        cases = [({"timeField": "t", "bucketMaxSpanSeconds": 60}, 5510500),
                 ({"timeField": "t", "metaField": "t"}, 72),
                 ({"timeField": "t", "granularity": "days"}, 2),
                 ({"metaField": "m"}, 40414)]
        for spec, code in cases:
            with self.assertRaises(errors.OperationFailure) as cm:
                self.db.command("create", "bad", timeseries=spec)
            self.assertEqual(cm.exception.code, code, spec)
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command("create", "bad", timeseries={"timeField": "t"}, capped=True, size=4096)
        self.assertEqual(cm.exception.code, 72)
        with self.assertRaises(errors.OperationFailure) as cm:
            self.create()
        self.assertEqual(cm.exception.details["errmsg"], "A timeseries collection already exists. NS: %s.w"
                         % self.db.name)
        self.assertEqual(self.db.command("drop", "w")["ns"], "%s.w" % self.db.name)
        self.assertEqual(self.db.list_collection_names(), ["system.views"])


class TestCollectionOptions(Base):
    def test_capped(self):
        self.db.command("create", "c", capped=True, size=1000, max=5)
        opts = listing(self.db, "c")["options"]
        self.assertEqual(opts, SON([("capped", True), ("size", 1024), ("max", 5)]))  # size rounded up to 256
        self.assertEqual(list(opts.keys()), ["capped", "size", "max"])
        self.db.c.insert_many([{"_id": i} for i in range(10)])
        self.assertEqual([d["_id"] for d in self.db.c.find()], [5, 6, 7, 8, 9])  # oldest dropped
        self.db.command("create", "big", capped=True, size=3 << 30)
        self.assertIsInstance(listing(self.db, "big")["options"]["size"], Int64)  # appendNumber: >= 2^30
        self.db.command("create", "small", capped=True, size=300)
        self.db.small.insert_many([{"_id": i, "pad": "x" * 100} for i in range(10)])
        self.assertEqual(listing(self.db, "small")["options"]["size"], 512)
        self.assertEqual([d["_id"] for d in self.db.small.find()], [6, 7, 8, 9])  # 4 * 124 bytes <= 512
        st = self.db.command("collStats", "c")
        self.assertEqual((st["capped"], st["max"], st["maxSize"]), (True, 5, 1024))
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command("create", "x", capped=True)
        self.assertEqual(cm.exception.code, 72)

    def test_clustered(self):
        self.db.command("create", "k", clusteredIndex={"key": {"_id": 1}, "unique": True})
        entry = listing(self.db, "k")
        self.assertEqual(list(entry.keys()), ["name", "type", "options", "info"])  # no idIndex
        self.assertEqual(entry["options"], SON([("clusteredIndex", SON([
            ("v", 2), ("key", SON([("_id", 1)])), ("name", "_id_"), ("unique", True)]))]))
        self.assertEqual(indexes(self.db, "k"), [SON([("v", 2), ("key", SON([("_id", 1)])), ("name", "_id_"),
                                                      ("unique", True), ("clustered", True)])])
        self.db.k.insert_one({"_id": 1})
        with self.assertRaises(errors.DuplicateKeyError):
            self.db.k.insert_one({"_id": 1})
        self.db.k.create_index("a")
        self.assertEqual([i["name"] for i in indexes(self.db, "k")], ["_id_", "a_1"])
        for kw, code in (({"clusteredIndex": {"key": {"_id": 1}, "unique": False}}, 5979700),
                         ({"clusteredIndex": {"key": {"a": 1}, "unique": True}}, 5979701),
                         ({"clusteredIndex": True}, 5979703),
                         ({"clusteredIndex": {"key": {"_id": 1}, "unique": True}, "size": 10}, 6049200)):
            with self.assertRaises(errors.OperationFailure) as cm:
                self.db.command(SON([("create", "bad")] + list(kw.items())))
            self.assertEqual(cm.exception.code, code, kw)

    def test_collation(self):
        self.db.command("create", "fr", collation={"locale": "fr"})
        full = SON([("locale", "fr"), ("caseLevel", False), ("caseFirst", "off"), ("strength", 3),
                    ("numericOrdering", False), ("alternate", "non-ignorable"), ("maxVariable", "punct"),
                    ("normalization", False), ("backwards", False), ("version", "57.1")])
        entry = listing(self.db, "fr")
        self.assertEqual(entry["options"], SON([("collation", full)]))
        self.assertEqual(list(entry["options"]["collation"].keys()), list(full.keys()))
        id_index = SON([("v", 2), ("key", SON([("_id", 1)])), ("name", "_id_"), ("collation", full)])
        self.assertEqual(entry["idIndex"], id_index)
        self.db.fr.create_index("a")
        self.assertEqual(indexes(self.db, "fr"), [id_index, SON([("v", 2), ("key", SON([("a", 1)])),
                                                                  ("name", "a_1"), ("collation", full)])])
        self.db.command("create", "ca", collation={"locale": "fr_CA", "strength": 2})
        ca = listing(self.db, "ca")["options"]["collation"]
        self.assertEqual((ca["backwards"], ca["strength"]), (True, 2))
        self.db.command("create", "simple", collation={"locale": "simple"})
        self.assertEqual(listing(self.db, "simple")["options"], {})  # simple: no collation option
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command("create", "xx", collation={"locale": "xx"})
        self.assertEqual((cm.exception.code, cm.exception.details["errmsg"]),
                         (2, "Field 'locale' is invalid in: { locale: \"xx\" }"))
        with self.assertRaises(errors.OperationFailure) as cm:  # valid in mongod, not modelled: refused
            self.db.command("create", "zh", collation={"locale": "zh"})
        self.assertIn("fake_mongod", cm.exception.details["errmsg"])
        # the fake compares bytes: string comparisons under a collation are refused, not pretended
        self.db.fr.insert_many([{"_id": 1, "s": "a"}, {"_id": 2, "s": "B"}])
        self.assertEqual(self.db.fr.count_documents({"_id": {"$gte": 2}}), 1)  # no strings: fine
        for run in (lambda: list(self.db.fr.find({"s": "a"})),
                    lambda: self.db.fr.count_documents({"s": {"$in": ["a"]}}),
                    lambda: list(self.db.fr.aggregate([{"$match": {"s": {"$gt": "a"}}}])),
                    lambda: list(self.db.simple.find({"s": "a"}, collation={"locale": "fr"}))):
            with self.assertRaises(errors.OperationFailure) as cm:
                run()
            self.assertIn("only the simple (binary) collation is modelled", str(cm.exception))
        self.db.command("create", "ci", collation={"locale": "en", "strength": 2})
        with self.assertRaises(errors.OperationFailure):  # "A" == "a" there
            self.db.ci.insert_one({"_id": "A"})

    def test_validator(self):
        self.db.command(SON([("create", "val"), ("validationAction", "error"), ("validator", {"a": {"$gt": 0}}),
                             ("validationLevel", "moderate")]))
        self.assertEqual(listing(self.db, "val")["options"], SON([
            ("validator", SON([("a", SON([("$gt", 0)]))])), ("validationLevel", "moderate"),
            ("validationAction", "error")]))
        self.db.val.insert_one({"a": 1})
        with self.assertRaises(errors.WriteError) as cm:
            self.db.val.insert_one({"_id": 7, "a": 0})
        self.assertEqual((cm.exception.code, cm.exception.details["errInfo"]["failingDocumentId"]), (121, 7))
        self.db.val.insert_one({"a": 0}, bypass_document_validation=True)
        self.db.command("create", "warn", validator={"a": {"$gt": 0}}, validationAction="warn")
        self.db.warn.insert_one({"a": 0})
        self.db.command("create", "schema", validator={"$jsonSchema": {"required": ["a"]}})
        with self.assertRaises(errors.WriteError) as cm:  # cannot evaluate it: refuses, never pretends
            self.db.schema.insert_one({"a": 1})
        self.assertIn("bypassDocumentValidation", str(cm.exception))
        self.db.schema.insert_one({"a": 1}, bypass_document_validation=True)
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command("create", "bad", validationLevel="sometimes")
        self.assertEqual(cm.exception.code, 2)
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command("create", "bad", notAnOption=1)
        self.assertEqual((cm.exception.code, cm.exception.details["errmsg"]),
                         (40415, "BSON field 'create.notAnOption' is an unknown field."))


def scram_check(test, creds, hash_name, password, iterations, salt_len):
    """Recompute storedKey / serverKey from the stored salt (RFC 5802)."""
    import base64
    import hashlib
    import hmac
    test.assertEqual(list(creds.keys()), ["iterationCount", "salt", "storedKey", "serverKey"])
    test.assertEqual(creds["iterationCount"], iterations)
    test.assertNotIsInstance(creds["iterationCount"], Int64)
    salt = base64.b64decode(creds["salt"])
    test.assertEqual(len(salt), salt_len)
    salted = hashlib.pbkdf2_hmac(hash_name, password, salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hash_name).digest()
    test.assertEqual(base64.b64decode(creds["storedKey"]), hashlib.new(hash_name, client_key).digest())
    test.assertEqual(base64.b64decode(creds["serverKey"]), hmac.new(salted, b"Server Key", hash_name).digest())


class TestUsersAndRoles(Base):
    def setUp(self):
        Base.setUp(self)
        self.c.drop_database("admin")
        self.other = self.c["t_other"]
        self.c.drop_database(self.other.name)

    def users(self, **filt):
        return list(self.c.admin.get_collection("system.users", codec_options=SONOPTS).find(filt))

    def roles(self, **filt):
        return list(self.c.admin.get_collection("system.roles", codec_options=SONOPTS).find(filt))

    def test_create_user_stored_like_mongod(self):
        import hashlib
        self.db.command(SON([("createUser", "alice"), ("pwd", "s3cret"), ("customData", {"team": "ops"}),
                             ("roles", ["readWrite", {"role": "read", "db": "t_other"}])]))
        [u] = self.users()
        self.assertEqual(list(u.keys()), ["_id", "userId", "user", "db", "credentials", "customData", "roles"])
        self.assertEqual((u["_id"], u["user"], u["db"]), ("%s.alice" % self.db.name, "alice", self.db.name))
        self.assertIsInstance(u["userId"], uuid.UUID)  # binary subtype 4
        self.assertEqual(u["roles"], [SON([("role", "readWrite"), ("db", self.db.name)]),
                                      SON([("role", "read"), ("db", "t_other")])])
        self.assertEqual(list(u["credentials"].keys()), ["SCRAM-SHA-1", "SCRAM-SHA-256"])
        sha1_pwd = hashlib.md5(b"alice:mongo:s3cret").hexdigest().encode()
        scram_check(self, u["credentials"]["SCRAM-SHA-1"], "sha1", sha1_pwd, 10000, 16)
        scram_check(self, u["credentials"]["SCRAM-SHA-256"], "sha256", b"s3cret", 15000, 28)
        raw = self.c.admin.get_collection("system.users", codec_options=RAW).find_one().raw
        self.assertIn(b"\x05userId\x00\x10\x00\x00\x00\x04", raw)
        # only the mechanisms asked for
        self.db.command("createUser", "bob", pwd="pw", roles=[], mechanisms=["SCRAM-SHA-256"])
        self.assertEqual(list(self.users(user="bob")[0]["credentials"].keys()), ["SCRAM-SHA-256"])
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command("createUser", "alice", pwd="x", roles=[])
        self.assertEqual((cm.exception.code, cm.exception.details["errmsg"]),
                         (51003, 'User "alice@%s" already exists' % self.db.name))
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command("createUser", "carl", pwd="x", roles=["nosuchrole"])
        self.assertEqual((cm.exception.code, cm.exception.details["errmsg"]),
                         (31, "Could not find role: nosuchrole@%s" % self.db.name))
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command("createUser", "dan", roles=[])
        self.assertEqual(cm.exception.code, 2)

    def test_scram_matches_pymongo_password_preparation(self):
        """The passwords the SCRAM values are computed from, checked against
        pymongo's own client-side preparation (what authentication uses)."""
        from pymongo.auth import _password_digest
        from pymongo.saslprep import saslprep
        pwd = "p\u00e4ss\u00a0w\u00ad\u2168"  # NBSP -> space, soft hyphen dropped, NFKC
        self.db.command("createUser", "\u00fcser", pwd=pwd, roles=[])
        creds = self.users()[0]["credentials"]
        scram_check(self, creds["SCRAM-SHA-1"], "sha1",
                    _password_digest("\u00fcser", pwd).encode(), 10000, 16)
        scram_check(self, creds["SCRAM-SHA-256"], "sha256", saslprep(pwd).encode("utf-8"), 15000, 28)

    def test_admin_collections_and_queries(self):
        self.db.command("createUser", "a", pwd="x", roles=[])
        self.other.command("createUser", "b", pwd="x", roles=[])
        # users live in admin: admin lists, a database holding nothing but its users does not
        self.assertIn("admin", self.c.list_database_names())
        self.assertNotIn(self.other.name, self.c.list_database_names())
        self.assertEqual(sorted(self.c.admin.list_collection_names()),
                         ["system.users", "system.version"])
        self.assertEqual([d["user"] for d in self.users(db=self.db.name)], ["a"])
        found = self.c.admin["system.users"].find({"db": {"$in": [self.db.name, self.other.name]}})
        self.assertEqual(sorted(d["user"] for d in found), ["a", "b"])
        self.assertEqual(self.c.admin["system.version"].find_one({"_id": "authSchema"}),
                         {"_id": "authSchema", "currentVersion": 5})
        self.assertEqual(self.c.admin.command("getParameter", 1, authSchemaVersion=1)["authSchemaVersion"], 5)
        self.assertEqual([i["name"] for i in indexes(self.c.admin, "system.users")], ["_id_", "user_1_db_1"])
        self.db.command("createRole", "r", privileges=[], roles=[])
        self.assertIn("system.roles", self.c.admin.list_collection_names())

    def test_users_info(self):
        self.db.command("createUser", "b", pwd="x", roles=["read"], customData={"k": 1})
        self.db.command("createUser", "a", pwd="x", roles=[])
        self.other.command("createUser", "c", pwd="x", roles=[])
        info = self.db.with_options(codec_options=SONOPTS).command("usersInfo", 1)["users"]
        self.assertEqual([u["user"] for u in info], ["a", "b"])  # sorted by user, db
        self.assertEqual(list(info[1].keys()), ["_id", "userId", "user", "db", "customData", "roles", "mechanisms"])
        self.assertEqual(info[1]["mechanisms"], ["SCRAM-SHA-1", "SCRAM-SHA-256"])
        self.assertEqual([u["user"] for u in self.db.command("usersInfo", "b")["users"]], ["b"])
        one = self.db.command("usersInfo", {"user": "c", "db": self.other.name})["users"]
        self.assertEqual([u["user"] for u in one], ["c"])
        both = self.db.command("usersInfo", ["a", {"user": "c", "db": self.other.name}])["users"]
        self.assertEqual([u["user"] for u in both], ["a", "c"])
        every = self.db.command("usersInfo", {"forAllDBs": True})["users"]
        self.assertEqual([u["user"] for u in every], ["a", "b", "c"])
        creds = self.db.command("usersInfo", "a", showCredentials=True)["users"][0]
        self.assertEqual(list(creds["credentials"].keys()), ["SCRAM-SHA-1", "SCRAM-SHA-256"])
        self.assertNotIn("customData", self.db.command("usersInfo", "b", showCustomData=False)["users"][0])
        self.assertEqual(self.db.command("usersInfo", "nobody")["users"], [])

    def test_roles(self):
        privs = [{"resource": {"db": self.db.name, "collection": "c"}, "actions": ["insert", "find"]},
                 {"resource": {"db": self.db.name, "collection": "c"}, "actions": ["find", "collStats"]}]
        self.db.command("createRole", "base", privileges=privs, roles=[])
        self.db.command("createRole", "top", privileges=[], roles=["base"])
        [base] = self.roles(role="base")
        self.assertEqual(list(base.keys()), ["_id", "role", "db", "privileges", "roles"])
        self.assertEqual(base["_id"], "%s.base" % self.db.name)
        self.assertEqual(base["privileges"], [SON([  # one entry per resource, actions in mongod's order
            ("resource", SON([("db", self.db.name), ("collection", "c")])),
            ("actions", ["collStats", "find", "insert"])])])
        info = self.db.with_options(codec_options=SONOPTS).command("rolesInfo", 1)["roles"]
        self.assertEqual([r["role"] for r in info], ["base", "top"])  # no built-in roles by default
        self.assertEqual(list(info[1].keys()), ["_id", "role", "db", "roles", "isBuiltin", "inheritedRoles"])
        top = self.db.with_options(codec_options=SONOPTS).command(
            "rolesInfo", "top", showPrivileges=True)["roles"][0]
        self.assertEqual(list(top.keys()), ["_id", "role", "db", "privileges", "roles", "inheritedRoles",
                                            "inheritedPrivileges", "isBuiltin"])
        self.assertEqual(top["inheritedRoles"], [{"role": "base", "db": self.db.name}])
        self.assertEqual(top["inheritedPrivileges"], base["privileges"])
        read = self.db.with_options(codec_options=SONOPTS).command("rolesInfo", "read")["roles"]
        self.assertEqual(read, [SON([("db", self.db.name), ("role", "read"), ("roles", []),
                                     ("inheritedRoles", []), ("isBuiltin", True)])])
        builtin = self.db.command("rolesInfo", 1, showBuiltinRoles=True)["roles"]
        self.assertIn({"role": "read", "db": self.db.name, "isBuiltin": True, "roles": [], "inheritedRoles": []},
                      builtin)
        self.db.command("createUser", "u", pwd="x", roles=["top", "read"])
        self.db.command("dropRole", "top")  # pulled from the users that had it
        self.assertEqual(self.users(user="u")[0]["roles"], [{"role": "read", "db": self.db.name}])
        for cmd, code in ((SON([("dropRole", "top")]), 31), (SON([("dropUser", "nobody")]), 11),
                          (SON([("createRole", "base"), ("privileges", []), ("roles", [])]), 51002),
                          (SON([("createRole", "read"), ("privileges", []), ("roles", [])]), 2),
                          (SON([("createRole", "x"), ("privileges", [{"resource": {"cluster": True},
                                                                      "actions": ["shutdown"]}]),
                                ("roles", [])]), 49)):
            with self.assertRaises(errors.OperationFailure) as cm:
                self.db.command(cmd)
            self.assertEqual(cm.exception.code, code, cmd)
        self.assertEqual(self.db.command("dropAllRolesFromDatabase", 1)["n"], 1)
        self.db.command("createUser", "v", pwd="x", roles=[])
        self.assertEqual(self.db.command("dropAllUsersFromDatabase", 1)["n"], 2)
        self.assertEqual(self.users(), [])

    def test_update_and_drop_user(self):
        self.db.command("createUser", "u", pwd="old", roles=[])
        before = self.users()[0]["credentials"]
        self.db.command("updateUser", "u", pwd="new", customData={"x": 1}, roles=["read"])
        u = self.users()[0]
        self.assertNotEqual(u["credentials"], before)
        scram_check(self, u["credentials"]["SCRAM-SHA-256"], "sha256", b"new", 15000, 28)
        self.assertEqual((u["customData"], u["roles"]), ({"x": 1}, [{"role": "read", "db": self.db.name}]))
        self.assertEqual(list(u.keys())[-1], "customData")  # $set of a new field appends it
        self.db.command("dropUser", "u")
        self.assertEqual(self.users(), [])

    def temp_users(self, *docs):
        self.c.admin.drop_collection("tempusers")
        if docs:
            self.c.admin["tempusers"].insert_many(docs)

    def test_merge_authz_collections(self):
        self.db.command("createUser", "keep", pwd="x", roles=[], customData={"v": "old"})
        self.other.command("createUser", "o", pwd="x", roles=[])
        dumped = self.users(user="keep")[0]
        changed = SON(dumped)
        changed["customData"] = {"v": "new"}
        new_user = SON([("_id", "%s.fresh" % self.db.name), ("userId", Binary(uuid.uuid4().bytes, 4)),
                        ("user", "fresh"), ("db", self.db.name), ("credentials", dumped["credentials"]),
                        ("roles", [])])
        elsewhere = SON([("_id", "t_third.z"), ("user", "z"), ("db", "t_third"), ("credentials", {}), ("roles", [])])
        self.temp_users(changed, new_user, elsewhere)

        def merge(**kw):
            cmd = SON([("_mergeAuthzCollections", 1), ("tempUsersCollection", "admin.tempusers")])
            cmd.update(kw)
            cmd.setdefault("writeConcern", {"w": "majority"})
            return self.c.admin.command(cmd)
        # drop: false, db: this database: inserts what is new; an existing user stays as it was
        self.assertEqual(merge(drop=False, db=self.db.name)["ok"], 1.0)
        self.assertEqual(sorted(u["user"] for u in self.users()), ["fresh", "keep", "o"])
        self.assertEqual(self.users(user="keep")[0]["customData"], {"v": "old"})
        # drop: true: replaces same-named users of db, removes db's users not in the temp collection
        self.db.command("createUser", "gone", pwd="x", roles=[])
        merge(drop=True, db=self.db.name)
        self.assertEqual(sorted(u["user"] for u in self.users()), ["fresh", "keep", "o"])
        self.assertEqual(self.users(user="keep")[0]["customData"], {"v": "new"})
        # db: "" means every database: t_third's user comes in too; drop then removes o
        merge(drop=False, db="")
        self.assertEqual(sorted(u["user"] for u in self.users()), ["fresh", "keep", "o", "z"])
        merge(drop=True, db="")
        self.assertEqual(sorted(u["user"] for u in self.users()), ["fresh", "keep", "z"])
        # roles, through tempRolesCollection
        self.db.command("createRole", "r1", privileges=[], roles=[])
        role = self.roles()[0]
        self.c.admin.drop_collection("temproles")
        self.c.admin["temproles"].insert_one(SON([("_id", "%s.r2" % self.db.name), ("role", "r2"),
                                                  ("db", self.db.name), ("privileges", []), ("roles", [])]))
        self.c.admin.command(SON([("_mergeAuthzCollections", 1), ("tempRolesCollection", "admin.temproles"),
                                  ("drop", True), ("db", self.db.name)]))
        self.assertEqual([r["role"] for r in self.roles()], ["r2"])
        self.assertNotEqual(role["role"], "r2")
        with self.assertRaises(errors.OperationFailure) as cm:
            self.db.command(SON([("_mergeAuthzCollections", 1), ("tempUsersCollection", "admin.tempusers"),
                                 ("drop", False), ("db", "")]))
        self.assertEqual(cm.exception.code, 13)
        with self.assertRaises(errors.OperationFailure) as cm:
            merge(drop=False, db="", tempUsersCollection="")
        self.assertEqual(cm.exception.code, 2)


class TestListingCursors(Base):
    def test_list_collections_batches(self):
        for i in range(5):
            self.db.command("create", "c%d" % i)
        r = self.db.command("listCollections", cursor={"batchSize": 2})
        self.assertEqual(len(r["cursor"]["firstBatch"]), 2)
        self.assertEqual(r["cursor"]["ns"], "%s.$cmd.listCollections" % self.db.name)
        cid = r["cursor"]["id"]
        self.assertNotEqual(cid, 0)
        r = self.db.command("getMore", cid, collection="$cmd.listCollections", batchSize=2)
        self.assertEqual(len(r["cursor"]["nextBatch"]), 2)
        r = self.db.command("getMore", cid, collection="$cmd.listCollections", batchSize=2)
        self.assertEqual((len(r["cursor"]["nextBatch"]), r["cursor"]["id"]), (1, 0))
        self.assertEqual(sorted(self.db.list_collection_names()), ["c%d" % i for i in range(5)])
        self.assertEqual(len(list(self.db.list_collections(batch_size=2))), 5)  # pymongo follows the cursor
        r = self.db.command("listCollections", cursor={"batchSize": 5})
        self.assertEqual((len(r["cursor"]["firstBatch"]), r["cursor"]["id"]), (5, 0))

    def test_no_batch_size_means_one_batch(self):
        for i in range(150):  # mongod has no 101 default for listings
            self.db.command("create", "c%03d" % i)
        r = self.db.command("listCollections")
        self.assertEqual((len(r["cursor"]["firstBatch"]), r["cursor"]["id"]), (150, 0))

    def test_list_indexes_batches(self):
        for f in "abc":
            self.db.x.create_index(f)
        r = self.db.command("listIndexes", "x", cursor={"batchSize": 1})
        self.assertEqual([i["name"] for i in r["cursor"]["firstBatch"]], ["_id_"])
        self.assertEqual(r["cursor"]["ns"], "%s.x" % self.db.name)
        r = self.db.command("getMore", r["cursor"]["id"], collection="x")
        self.assertEqual([i["name"] for i in r["cursor"]["nextBatch"]], ["a_1", "b_1", "c_1"])
        self.assertEqual(r["cursor"]["id"], 0)
        self.assertEqual(len(list(self.db.x.list_indexes())), 4)


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


# ---------------------------------------------------------------------------
# TLS, SCRAM authentication and cursor timeouts


def scram_client_first(user, nonce):
    """client-first-message (RFC 5802 section 7), without channel binding."""
    name = user.replace("=", "=3D").replace(",", "=2C")
    return "n,,n=%s,r=%s" % (name, nonce)


def scram_client_final(mechanism, user, password, client_first, server_first):
    """(client-final-message, the server-final the server must send), computed
    independently of the fake: the client side of RFC 5802 / RFC 7677 with
    MongoDB's password preparation (SCRAM-SHA-1: the MD5 digest of
    "user:mongo:password"; SCRAM-SHA-256: SASLprep, a no-op for ASCII)."""
    import base64
    import hashlib
    import hmac
    h = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}[mechanism]
    if mechanism == "SCRAM-SHA-1":
        password = hashlib.md5(("%s:mongo:%s" % (user, password)).encode()).hexdigest()
    fields = dict(kv.split("=", 1) for kv in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(h, password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
    client_key = hmac.new(salted, b"Client Key", h).digest()
    stored_key = hashlib.new(h, client_key).digest()
    without_proof = "c=biws,r=" + fields["r"]
    auth_message = ",".join((client_first[3:], server_first, without_proof)).encode()
    proof = bytes(a ^ b for a, b in zip(client_key, hmac.new(stored_key, auth_message, h).digest()))
    server_key = hmac.new(salted, b"Server Key", h).digest()
    server_final = "v=" + base64.b64encode(hmac.new(server_key, auth_message, h).digest()).decode()
    return without_proof + ",p=" + base64.b64encode(proof).decode(), server_final


class WireConn(object):
    """One connection speaking OP_MSG by hand (a command at a time)."""

    def __init__(self, port, ssl_context=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if ssl_context is not None:
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname="127.0.0.1")
        self.req = 0

    def command(self, db, body):
        self.req += 1
        doc = SON(body)
        doc["$db"] = db
        self.sock.sendall(op_msg(self.req, doc))
        resp_to, _opcode, reply = read_reply(self.sock)
        assert resp_to == self.req
        return reply

    def close(self):
        self.sock.close()


class TestTLS(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import tls
        cls.material = tls.TLSMaterial()
        cls.other = tls.TLSMaterial()  # a CA the server's certificate does not chain to
        cls.srv = fake_mongod.FakeMongod(tls=cls.material).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.material.cleanup()
        cls.other.cleanup()

    def test_uri_names_tls_and_the_ca(self):
        self.assertEqual(self.srv.uri, "mongodb://127.0.0.1:%d/?tls=true&tlsCAFile=%s"
                         % (self.srv.port, self.material.ca_file))

    def test_pymongo_over_tls(self):
        before = self.srv.stats()["tlsConnections"]
        with pymongo.MongoClient(self.srv.uri, serverSelectionTimeoutMS=10000) as cl:
            cl.t_tls.c.drop()
            cl.t_tls.c.insert_many([{"_id": i, "v": "x" * 100} for i in range(300)])
            self.assertEqual([d["_id"] for d in cl.t_tls.c.find(batch_size=50)], list(range(300)))
            self.assertEqual(cl.admin.command("ping")["ok"], 1.0)
        self.assertGreater(self.srv.stats()["tlsConnections"], before)

    def test_hand_made_tls_connection(self):
        c = WireConn(self.srv.port, self.material.client_context())
        try:
            self.assertEqual(c.command("admin", {"ping": 1})["ok"], 1.0)
            self.assertEqual(c.sock.version()[:4], "TLSv")
        finally:
            c.close()

    def test_plain_client_refused(self):
        failures = self.srv.stats()["tlsHandshakeFailures"]
        with pymongo.MongoClient("127.0.0.1", self.srv.port, serverSelectionTimeoutMS=2000) as cl:
            with self.assertRaises(errors.ServerSelectionTimeoutError):
                cl.admin.command("ping")
        self.assertGreater(self.srv.stats()["tlsHandshakeFailures"], failures)

    def test_untrusted_certificate_refused(self):
        uri = "mongodb://127.0.0.1:%d/?tls=true&tlsCAFile=%s" % (self.srv.port, self.other.ca_file)
        with pymongo.MongoClient(uri, serverSelectionTimeoutMS=2000) as cl:
            with self.assertRaises(errors.ServerSelectionTimeoutError) as cm:
                cl.admin.command("ping")
        self.assertIn("CERTIFICATE_VERIFY_FAILED", str(cm.exception))

    def test_own_throwaway_ca(self):
        srv = fake_mongod.FakeMongod(tls=True).start()
        try:
            self.assertTrue(os.path.isfile(srv.tls_ca_file))
            with pymongo.MongoClient(srv.uri, serverSelectionTimeoutMS=10000) as cl:
                self.assertEqual(cl.admin.command("ping")["ok"], 1.0)
        finally:
            srv.stop()
        self.assertFalse(os.path.exists(srv.tls_ca_file))


class TestAuth(unittest.TestCase):
    USER, PWD = "alice", "p@ss:w=rd,1"

    @classmethod
    def setUpClass(cls):
        cls.srv = fake_mongod.FakeMongod(users={cls.USER: cls.PWD}).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def client(self, user=None, password=None, **kw):
        opts = dict(serverSelectionTimeoutMS=5000, retryReads=False, retryWrites=False)
        if user is not None:
            opts.update(username=user, password=password, authSource="admin")
        opts.update(kw)
        return pymongo.MongoClient("127.0.0.1", self.srv.port, **opts)

    def wire(self):
        c = WireConn(self.srv.port)
        self.addCleanup(c.close)
        return c

    def test_scram_success_both_mechanisms(self):
        for mech in ("SCRAM-SHA-256", "SCRAM-SHA-1", None):
            before = self.srv.stats()["authSucceeded"]
            kw = {"authMechanism": mech} if mech else {}
            with self.client(self.USER, self.PWD, **kw) as cl:
                cl.t_auth.c.insert_one({"m": mech})
                self.assertGreaterEqual(cl.t_auth.c.count_documents({}), 1)
                info = cl.admin.command("connectionStatus")["authInfo"]
                self.assertEqual(info["authenticatedUsers"], [{"user": self.USER, "db": "admin"}])
                self.assertEqual(info["authenticatedUserRoles"], [{"role": "root", "db": "admin"}])
            st = self.srv.stats()
            self.assertGreater(st["authSucceeded"], before, mech)
            self.assertIn("%s@admin" % self.USER, st["authenticatedUsers"])

    def test_wrong_password_and_unknown_user_fail_like_mongod(self):
        for user, pwd in ((self.USER, "not-" + self.PWD), ("nobody", self.PWD)):
            for mech in ("SCRAM-SHA-256", "SCRAM-SHA-1"):
                before = self.srv.stats()["authFailed"]
                with self.client(user, pwd, authMechanism=mech) as cl:
                    with self.assertRaises(errors.OperationFailure) as cm:
                        cl.t_auth.c.find_one()
                self.assertEqual(cm.exception.code, 18, (user, mech))
                self.assertEqual(cm.exception.details["errmsg"], "Authentication failed.")
                self.assertEqual(cm.exception.details["codeName"], "AuthenticationFailed")
                self.assertNotIn(pwd, str(cm.exception.details))
                self.assertGreater(self.srv.stats()["authFailed"], before)

    def test_unauthorized_before_authentication(self):
        with self.client() as cl:
            for name in ("ping", "buildInfo", "connectionStatus", "hello", "isMaster"):
                self.assertEqual(cl.admin.command(name)["ok"], 1.0, name)
            self.assertEqual(cl.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"], [])
            for call, name in ((lambda: cl.t_auth.c.find_one(), "find"),
                               (lambda: cl.t_auth.c.insert_one({"x": 1}), "insert"),
                               (lambda: cl.list_database_names(), "listDatabases"),
                               (lambda: cl.t_auth.list_collection_names(), "listCollections"),
                               (lambda: cl.t_auth.command("getMore", Int64(5), collection="c"), "getMore"),
                               (lambda: cl.admin.command("createUser", "eve", pwd="x", roles=[]),
                                "createUser")):
                with self.assertRaises(errors.OperationFailure) as cm:
                    call()
                self.assertEqual((cm.exception.code, cm.exception.details["codeName"],
                                  cm.exception.details["errmsg"]),
                                 (13, "Unauthorized", "Command %s requires authentication" % name))
            with self.assertRaises(errors.OperationFailure) as cm:  # unknown before unauthorized
                cl.admin.command("noSuchCommand")
            self.assertEqual(cm.exception.code, 59)

    def test_hand_made_conversation_with_empty_last_exchange(self):
        for mech in ("SCRAM-SHA-256", "SCRAM-SHA-1"):
            c = self.wire()
            self.assertEqual(c.command("t_auth", {"find": "c"})["code"], 13)
            first = scram_client_first(self.USER, "fyko+d2lbbFgONRv9qkxdawL")
            r = c.command("admin", SON([("saslStart", 1), ("mechanism", mech),
                                        ("payload", first.encode()), ("autoAuthorize", 1)]))
            self.assertEqual((r["ok"], r["done"], r["conversationId"]), (1.0, False, 1), r)
            server_first = r["payload"].decode()
            self.assertTrue(server_first.startswith("r=fyko+d2lbbFgONRv9qkxdawL"), server_first)
            self.assertGreater(len(server_first.split(",")[0]), len("r=fyko+d2lbbFgONRv9qkxdawL") + 24)
            final, want = scram_client_final(mech, self.USER, self.PWD, first, server_first)
            r = c.command("admin", SON([("saslContinue", 1), ("conversationId", 1),
                                        ("payload", final.encode())]))
            # no skipEmptyExchange: server-final, then an empty exchange ends it
            self.assertEqual((r["ok"], r["done"], r["payload"].decode()), (1.0, False, want), mech)
            self.assertEqual(c.command("t_auth", {"find": "c"})["code"], 13)  # not yet done
            r = c.command("admin", SON([("saslContinue", 1), ("conversationId", 1), ("payload", b"")]))
            self.assertEqual((r["ok"], r["done"], r["payload"]), (1.0, True, b""), mech)
            self.assertEqual(c.command("t_auth", {"find": "c"})["ok"], 1.0)
            c.command("admin", {"logout": 1})
            self.assertEqual(c.command("t_auth", {"find": "c"})["code"], 13)

    def test_skip_empty_exchange_and_bad_messages(self):
        c = self.wire()
        first = scram_client_first(self.USER, "abcdefghijklmnopqrstuvwx")
        start = SON([("saslStart", 1), ("mechanism", "SCRAM-SHA-256"), ("payload", first.encode()),
                     ("options", {"skipEmptyExchange": True})])
        r = c.command("admin", start)
        final, want = scram_client_final("SCRAM-SHA-256", self.USER, self.PWD, first, r["payload"].decode())
        r = c.command("admin", SON([("saslContinue", 1), ("conversationId", 1), ("payload", final.encode())]))
        self.assertEqual((r["ok"], r["done"], r["payload"].decode()), (1.0, True, want))
        self.assertEqual(c.command("t_auth", {"find": "c"})["ok"], 1.0)
        # a tampered nonce, a wrong proof: 18; no conversation: 17; PLAIN: 334
        for tamper in (lambda f: f.replace("r=abc", "r=abd"), lambda f: f[:-6] + "AAAAA="):
            c2 = self.wire()
            r = c2.command("admin", start)
            final, _ = scram_client_final("SCRAM-SHA-256", self.USER, self.PWD, first, r["payload"].decode())
            r = c2.command("admin", SON([("saslContinue", 1), ("conversationId", 1),
                                         ("payload", tamper(final).encode())]))
            self.assertEqual((r["ok"], r["code"], r["errmsg"]), (0.0, 18, "Authentication failed."))
            r = c2.command("admin", SON([("saslContinue", 1), ("conversationId", 1), ("payload", b"")]))
            self.assertEqual((r["code"], r["codeName"]), (17, "ProtocolError"))
            self.assertEqual(c2.command("t_auth", {"find": "c"})["code"], 13)
        r = c.command("admin", SON([("saslStart", 1), ("mechanism", "PLAIN"), ("payload", b"\0a\0b")]))
        self.assertEqual((r["code"], r["codeName"]), (334, "MechanismUnavailable"))

    def test_hello_sasl_supported_mechs_and_speculative_authenticate(self):
        c = self.wire()
        r = c.command("admin", {"hello": 1, "saslSupportedMechs": "admin." + self.USER})
        self.assertEqual(r["saslSupportedMechs"], ["SCRAM-SHA-1", "SCRAM-SHA-256"])
        r = c.command("admin", {"hello": 1, "saslSupportedMechs": "admin.nobody"})
        self.assertNotIn("saslSupportedMechs", r)
        first = scram_client_first(self.USER, "speculativespeculative00")
        spec = SON([("saslStart", 1), ("mechanism", "SCRAM-SHA-256"), ("payload", first.encode()),
                    ("options", {"skipEmptyExchange": True}), ("db", "admin")])
        r = c.command("admin", {"hello": 1, "speculativeAuthenticate": spec})
        sa = r["speculativeAuthenticate"]
        self.assertEqual((sorted(sa), sa["conversationId"], sa["done"]),
                         (["conversationId", "done", "payload"], 1, False))
        before = self.srv.stats()["speculativeAuthSucceeded"]
        final, want = scram_client_final("SCRAM-SHA-256", self.USER, self.PWD, first, sa["payload"].decode())
        r = c.command("admin", SON([("saslContinue", 1), ("conversationId", 1), ("payload", final.encode())]))
        self.assertEqual((r["done"], r["payload"].decode()), (True, want))
        self.assertEqual(c.command("t_auth", {"find": "c"})["ok"], 1.0)
        self.assertEqual(self.srv.stats()["speculativeAuthSucceeded"], before + 1)
        # an unknown user: hello answers without speculativeAuthenticate
        spec["payload"] = scram_client_first("nobody", "n0nce").encode()
        r = self.wire().command("admin", {"hello": 1, "speculativeAuthenticate": spec})
        self.assertEqual(r["ok"], 1.0)
        self.assertNotIn("speculativeAuthenticate", r)

    def test_auth_without_users_then_created_user(self):
        """--auth with no user yet: everything runs (mongod's localhost
        exception); once createUser made one, authentication is required."""
        srv = fake_mongod.FakeMongod(auth=True).start()
        try:
            with pymongo.MongoClient(srv.uri, serverSelectionTimeoutMS=5000) as cl:
                cl.t.c.insert_one({"_id": 1})
                cl.admin.command("createUser", "bob", pwd="b0b", roles=["root"])
                with self.assertRaises(errors.OperationFailure) as cm:
                    cl.t.c.find_one()
                self.assertEqual(cm.exception.code, 13)
            with pymongo.MongoClient(srv.uri, username="bob", password="b0b",
                                     serverSelectionTimeoutMS=5000) as cl:
                self.assertEqual(cl.t.c.find_one(), {"_id": 1})
        finally:
            srv.stop()

    def test_no_auth_by_default(self):
        self.assertFalse(SERVER.auth_required)
        with client() as cl:  # the shared server: no user needed, SCRAM still works
            cl.admin.command("createUser", "carol", pwd="c4rol", roles=["root"])
            try:
                self.assertEqual(cl.t_noauth.c.count_documents({}), 0)
                with pymongo.MongoClient(SERVER.uri, username="carol", password="c4rol",
                                         serverSelectionTimeoutMS=5000) as cl2:
                    self.assertEqual(cl2.admin.command("connectionStatus")["authInfo"]
                                     ["authenticatedUsers"], [{"user": "carol", "db": "admin"}])
            finally:
                cl.admin.command("dropUser", "carol")


class TestTLSAndAuth(unittest.TestCase):
    def test_scram_over_tls(self):
        srv = fake_mongod.FakeMongod(tls=True, users=[("backup", "s3cret")]).start()
        try:
            uri = srv.uri.replace("mongodb://", "mongodb://backup:s3cret@") + "&authSource=admin"
            with pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000) as cl:
                cl.t.c.insert_one({"_id": 1})
                self.assertEqual(cl.t.c.find_one(), {"_id": 1})
            st = srv.stats()
            self.assertGreaterEqual(st["tlsConnections"], 1)
            self.assertGreaterEqual(st["authSucceeded"], 1)
        finally:
            srv.stop()


class TestCursorTimeout(unittest.TestCase):
    """Against a server of its own: setParameter changes its parameters."""

    def setUp(self):
        self.srv = fake_mongod.FakeMongod().start()
        self.addCleanup(self.srv.stop)
        self.cl = pymongo.MongoClient(self.srv.uri, serverSelectionTimeoutMS=5000, retryReads=False)
        self.addCleanup(self.cl.close)
        self.cl.t.c.insert_many([{"_id": i} for i in range(20)])

    def set_timeout(self, ms, sessions=None):
        cmd = SON([("setParameter", 1), ("cursorTimeoutMillis", ms)])
        if sessions is not None:
            cmd["enableTimeoutOfInactiveSessionCursors"] = sessions
        return self.cl.admin.command(cmd)

    def test_default_parameters_are_mongods(self):
        r = self.cl.admin.command("getParameter", 1, cursorTimeoutMillis=1,
                                  enableTimeoutOfInactiveSessionCursors=1)
        self.assertEqual((r["cursorTimeoutMillis"], r["enableTimeoutOfInactiveSessionCursors"]),
                         (600000, False))
        self.assertIsInstance(r["cursorTimeoutMillis"], Int64)
        with client() as cl:  # the shared server as well
            self.assertEqual(cl.admin.command("getParameter", 1, cursorTimeoutMillis=1)
                             ["cursorTimeoutMillis"], 600000)

    def test_idle_cursor_without_session_times_out(self):
        c = WireConn(self.srv.port)
        self.addCleanup(c.close)
        r = c.command("t", {"find": "c", "batchSize": 2})
        cid = r["cursor"]["id"]
        r = c.command("t", {"getMore": cid, "collection": "c", "batchSize": 2})
        self.assertEqual(len(r["cursor"]["nextBatch"]), 2)  # the 10 min default: alive
        self.assertEqual(self.set_timeout(100)["was"], 600000)
        time.sleep(0.5)
        r = c.command("t", {"getMore": cid, "collection": "c"})
        self.assertEqual((r["ok"], r["code"], r["codeName"], r["errmsg"]),
                         (0.0, 43, "CursorNotFound", "cursor id %d not found" % cid))
        self.assertGreaterEqual(self.srv.stats()["cursorsTimedOut"], 1)
        # noCursorTimeout: never; killCursors finds no timed-out cursor
        r = c.command("t", {"find": "c", "batchSize": 2, "noCursorTimeout": True})
        keep = r["cursor"]["id"]
        idle = c.command("t", {"find": "c", "batchSize": 2})["cursor"]["id"]
        time.sleep(0.5)
        self.assertEqual(len(c.command("t", {"getMore": keep, "collection": "c"})["cursor"]["nextBatch"]), 18)
        r = c.command("t", {"killCursors": "c", "cursors": [Int64(idle)]})
        self.assertEqual((r["cursorsKilled"], r["cursorsNotFound"]), ([], [idle]))

    def test_session_cursors_follow_enable_timeout_of_inactive_session_cursors(self):
        coll = self.cl.t.c
        self.set_timeout(100)
        cur = coll.find(batch_size=2)  # pymongo's implicit session: an lsid
        self.assertEqual(next(cur)["_id"], 0)
        time.sleep(0.5)
        self.assertEqual(len(list(cur)), 19)  # mongod leaves session cursors alone
        self.assertEqual(self.set_timeout(100, sessions=True)["was"], False)
        cur = coll.find(batch_size=2)
        next(cur)
        time.sleep(0.5)
        with self.assertRaises(errors.CursorNotFound) as cm:
            list(cur)
        self.assertEqual(cm.exception.code, 43)
        cur = coll.find(batch_size=2, no_cursor_timeout=True)
        next(cur)
        time.sleep(0.5)
        self.assertEqual(len(list(cur)), 19)

    def test_active_cursor_survives(self):
        """Only idleness counts: a cursor used more often than the timeout
        lives on however long it takes in all."""
        self.set_timeout(2000, sessions=True)
        seen = []
        for d in self.cl.t.c.find(batch_size=4):  # 5 batches, 0.5 s apart: 2.5 s in all
            seen.append(d["_id"])
            if d["_id"] % 4 == 3:
                time.sleep(0.5)
        self.assertEqual(seen, list(range(20)))

    def test_set_parameter_errors(self):
        with self.assertRaises(errors.OperationFailure) as cm:
            self.cl.admin.command("setParameter", 1, noSuchParameter=1)
        self.assertEqual(cm.exception.code, 72)
        with self.assertRaises(errors.OperationFailure) as cm:
            self.cl.t.command("setParameter", 1, cursorTimeoutMillis=5)
        self.assertEqual(cm.exception.code, 13)


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

    def test_tls_auth_and_cursor_timeout_flags(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(__import__("shutil").rmtree, tmp, True)
        pwfile = os.path.join(tmp, "pw")
        with open(pwfile, "w") as f:
            f.write("s3cret\n")
        tls_dir = os.path.join(tmp, "tls")
        p, port = self.start("--tls-dir", tls_dir, "--user", "admin", "--password-file", pwfile,
                             "--cursor-timeout-ms", "200", "--timeout-session-cursors")
        self.assertNotIn("s3cret", " ".join(p.args))
        base = "127.0.0.1:%d/?tls=true&tlsCAFile=%s" % (port, os.path.join(tls_dir, "ca.pem"))
        with pymongo.MongoClient("mongodb://admin:s3cret@" + base, serverSelectionTimeoutMS=10000,
                                 retryReads=False) as cl:
            cl.t.c.insert_many([{"_id": i} for i in range(10)])
            r = cl.admin.command("getParameter", 1, cursorTimeoutMillis=1,
                                 enableTimeoutOfInactiveSessionCursors=1)
            self.assertEqual((r["cursorTimeoutMillis"], r["enableTimeoutOfInactiveSessionCursors"]),
                             (200, True))
            cur = cl.t.c.find(batch_size=2)
            next(cur)
            time.sleep(1.0)
            with self.assertRaises(errors.CursorNotFound):
                list(cur)
        with pymongo.MongoClient("mongodb://" + base, serverSelectionTimeoutMS=10000) as cl:
            with self.assertRaises(errors.OperationFailure) as cm:
                cl.t.c.find_one()
            self.assertEqual(cm.exception.code, 13)
        with pymongo.MongoClient("mongodb://admin:wrong@" + base, serverSelectionTimeoutMS=10000) as cl:
            with self.assertRaises(errors.OperationFailure) as cm:
                cl.t.c.find_one()
            self.assertEqual(cm.exception.code, 18)
        self.stop(p)

    def test_tls_certificate_key_file(self):
        import tls
        material = tls.TLSMaterial()
        self.addCleanup(material.cleanup)
        p, port = self.start("--tls-certificate-key-file", material.chain_file,
                             "--tls-key-file", material.key_file)
        uri = "mongodb://127.0.0.1:%d/?tls=true&tlsCAFile=%s" % (port, material.ca_file)
        with pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000) as cl:
            self.assertEqual(cl.admin.command("ping")["ok"], 1.0)
        with pymongo.MongoClient("127.0.0.1", port, serverSelectionTimeoutMS=1500) as cl:
            with self.assertRaises(errors.ServerSelectionTimeoutError):
                cl.admin.command("ping")
        self.stop(p)

    def test_bad_flag_combinations(self):
        for args in (["--user", "x"], ["--tls-key-file", "k.pem"]):
            r = subprocess.run(["/usr/bin/python3", FAKE, "--port", "0"] + args,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertEqual(r.stdout, "")

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
