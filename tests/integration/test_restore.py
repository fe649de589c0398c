#!/usr/bin/python3
"""test_restore.py - list, verify and restore, end to end.

A backup is made with mongo-azure-backupd --once (Azurite + MongoDB), then
`mongo-azure-backupctl list|verify|restore` and the import-collection and
verify-set helpers are run against it:

  * round trip: every BSON type, binary subtypes, decimal128, dates before
    1970, keys with '.' and '$', a document near 16 MiB, several index
    kinds and collection options, restored into a SECOND MongoDB (a second
    fake; with MAB_TEST_MONGODB_URI, another database of that server) and
    compared document by document, byte for byte, and index by index;
  * --to-dir: mongodump's layout, byte-identical .bson, metadata.json in
    mongodump's shape, never overwriting;
  * verify: a flipped byte, a truncated blob, a manifest whose count is off
    by one, a missing data blob, a missing metadata blob, an incomplete set;
    the verification record and `list` showing it;
  * restore under faults: the download reset mid-blob (a small truncating
    proxy below: tests/fault_proxy.py cannot cut a response body), the target
    dropping the connection (fakeFault close_on_insert), a corrupt blob, a
    missing metadata blob, a non-empty target without --drop, a duplicate
    key inside the stream (import-collection alone);
  * the target URI never in a child's argv, and not in the downloader's
    environment.

Fault tests need tests/fake_mongod.py and skip against a real mongod.
"""

import base64
import gzip
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402

CTL = h.CTL
TARGET = {"mongo": None}
BIG_DOC_BYTES = 16 * 1024 * 1024 - 4096


def setUpModule():
    h.setup_module_env()
    # The restore target: a second server when the source is the fake.
    if h.ENV["mongo"].is_fake:
        TARGET["mongo"] = h.Mongo().start()
    else:
        TARGET["mongo"] = h.ENV["mongo"]


def tearDownModule():
    t = TARGET["mongo"]
    if t is not None and t is not h.ENV["mongo"]:
        t.stop()
    TARGET["mongo"] = None
    h.teardown_module_env()


# --------------------------------------------------------------------------
# Data

def rich_documents():
    """Documents beyond every_type_document(): the shapes a restore must keep
    byte for byte."""
    from bson.binary import Binary
    from bson.decimal128 import Decimal128
    from bson.int64 import Int64
    from bson.objectid import ObjectId
    from bson.son import SON
    import datetime
    import uuid
    docs = [h.every_type_document()]
    nested = SON([("leaf", "bottom")])
    for i in range(60):
        nested = SON([("level", i), ("child", nested), ("list", [i, {"i": i}])])
    docs.append(SON([("_id", "deep"), ("nested", nested)]))
    docs.append(SON([
        ("_id", ObjectId("5f5e100000000000000000b1")),
        ("bin_function", Binary(b"\x01\x02", 1)),
        ("bin_old", Binary(b"\x00\x01\x02\x03", 2)),
        ("bin_uuid_old", Binary(uuid.UUID("00112233445566778899aabbccddeeff").bytes, 3)),
        ("bin_uuid", Binary(uuid.UUID("00112233445566778899aabbccddeeff").bytes, 4)),
        ("bin_md5", Binary(b"\x11" * 16, 5)),
        ("bin_encrypted", Binary(b"\x06secret", 6)),
        ("bin_column", Binary(b"\x07col", 7)),
        ("bin_user", Binary(bytes(range(256)), 0x80)),
        ("bin_user_other", Binary(b"\xff", 0x90)),
    ]))
    docs.append(SON([
        ("_id", Int64(-1)),
        ("d128", [Decimal128(x) for x in ("0", "-0", "0.1", "1E+6111", "-1E-6176",
                                          "9.999999999999999999999999999999999E+6144",
                                          "Infinity", "-NaN")]),
        ("dates", [datetime.datetime(1, 1, 1), datetime.datetime(1601, 1, 1),
                   datetime.datetime(1899, 12, 31, 23, 59, 59, 999000),
                   datetime.datetime(1969, 12, 31, 23, 59, 59, 999000),
                   datetime.datetime(9999, 12, 31, 23, 59, 59, 999000)]),
    ]))
    docs.append(SON([("_id", 2.5), ("unicode_key_ćčš", "🐘"), ("", "empty key")]))
    return docs


def raw_document(son):
    """son encoded without pymongo's key checks (keys with '.' and '$',
    which MongoDB 5+ stores and a restore must keep)."""
    import bson
    from bson.raw_bson import RawBSONDocument
    return RawBSONDocument(bson.BSON.encode(son, check_keys=False))


def seed_rich(db):
    """Collections: types (rich), big (a document near 16 MiB), users (with
    several kinds of index), capped (collection options), empty (with an
    index).  Returns the collection names."""
    from bson.binary import Binary
    from bson.son import SON
    import pymongo
    db["types"].insert_many(rich_documents())
    try:
        db["types"].insert_one(raw_document(SON([
            ("_id", "odd keys"), ("a.b", 1), ("$dollar", 2),
            ("sub", SON([("x.y", SON([("$z", 3)]))]))])))
    except pymongo.errors.OperationFailure as e:
        # MongoDB stores such keys since 5.0 (and the fake does): only an
        # older server may refuse them, and the backup cannot be asked to
        # keep what was never stored.
        version = db.client.server_info().get("version", "0.0")
        major_minor = tuple(int(x) for x in version.split(".")[:2])
        if major_minor >= (5, 0):
            raise AssertionError("MongoDB %s refused keys with '.'/'$': %s" % (version, e))
        sys.stderr.write("note: MongoDB %s refused keys with '.'/'$': %s\n" % (version, e))
    db["big"].insert_one(SON([("_id", 1), ("pad", Binary(b"\x5a" * BIG_DOC_BYTES, 0))]))
    db["big"].insert_many([{"_id": i, "after": "big"} for i in range(2, 6)])
    db["users"].insert_many(list(h.gen_users(3000, seed=21)))
    db["users"].create_index("email", unique=True)
    db["users"].create_index([("address.city", pymongo.ASCENDING),
                              ("age", pymongo.DESCENDING)], name="city_age")
    db["users"].create_index("lastLogin", sparse=True)
    db["users"].create_index("createdAt", expireAfterSeconds=3600 * 24 * 365 * 100)
    db["users"].create_index("tags", partialFilterExpression={"active": True},
                             name="tags_active")
    db.create_collection("capped", capped=True, size=1 << 20)
    db["capped"].insert_many([{"_id": i, "msg": "log line %d" % i} for i in range(50)])
    db.create_collection("empty")
    db["empty"].create_index("never", unique=True)
    return ["types", "big", "users", "capped", "empty"]


def canon(doc):
    from bson import json_util
    return json.loads(json_util.dumps(doc, json_options=json_util.CANONICAL_JSON_OPTIONS))


def index_specs(db, coll):
    out = {}
    for spec in db[coll].list_indexes():
        c = canon(spec)
        c.pop("ns", None)
        out[c["name"]] = c
    return out


def collection_options(db, coll):
    for info in db.list_collections(filter={"name": coll}):
        return canon(info.get("options", {}))
    return None


# --------------------------------------------------------------------------
# A proxy that cuts a blob download mid-body, once

class TruncatingProxy:
    """Forwards each request to Azurite on a connection of its own; the
    first `cuts` GETs whose path ends with `suffix` get their answer's head
    and `after` bytes of body, then a reset.  tests/fault_proxy.py resets
    requests, not responses, and a download only resumes with Range after
    a body broke off partway."""

    def __init__(self, upstream_port, suffix, after, cuts=1, throttle=0):
        self.upstream = ("127.0.0.1", upstream_port)
        self.suffix, self.after, self.cuts = suffix, after, cuts
        self.throttle = throttle      # bytes/s for matching GETs, 0: full speed
        self.requests = []        # (method, path, x-ms-range or None)
        self.cut_done = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def connection_string(self):
        return h.connection_string(self.port)

    def stop(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _read_head(s, buf):
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                return None, buf
            buf += d
        i = buf.index(b"\r\n\r\n") + 4
        return buf[:i], buf[i:]

    @staticmethod
    def _read_n(s, buf, n):
        while len(buf) < n:
            d = s.recv(65536)
            if not d:
                raise OSError("short read")
            buf += d
        return buf[:n], buf[n:]

    def _serve(self, c):
        try:
            head, rest = self._read_head(c, b"")
            if head is None:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _v = lines[0].split(" ", 2)
            hdrs = [ln for ln in lines[1:] if ln and not ln.lower().startswith("connection:")]
            length = 0
            rng = None
            for ln in hdrs:
                k, _, v = ln.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
                if k.strip().lower() == "x-ms-range":
                    rng = v.strip()
            body, _ = self._read_n(c, rest, length)
            path = target.split("?", 1)[0]
            with self.lock:
                self.requests.append((method, path, rng))
            up = socket.create_connection(self.upstream, timeout=60)
            up.sendall(("\r\n".join([lines[0]] + hdrs + ["Connection: close", "", ""]))
                       .encode("latin-1") + body)
            rhead, rrest = self._read_head(up, b"")
            status = int(rhead.split(b" ", 2)[1])
            rlines = rhead.decode("latin-1").split("\r\n")
            clen = None
            for ln in rlines[1:]:
                k, _, v = ln.partition(":")
                if k.strip().lower() == "content-length":
                    clen = int(v.strip())
            if method == "HEAD" or status in (204, 304):
                rbody = b""
            elif clen is not None:
                rbody, _ = self._read_n(up, rrest, clen)
            else:
                rbody = rrest
                while True:
                    d = up.recv(65536)
                    if not d:
                        break
                    rbody += d
            up.close()
            cut = False
            with self.lock:
                if (method == "GET" and path.endswith(self.suffix) and status in (200, 206)
                        and self.cut_done < self.cuts and len(rbody) > self.after):
                    self.cut_done += 1
                    cut = True
            out_head = "\r\n".join([ln for ln in rlines if ln and not ln.lower()
                                    .startswith("connection:")] + ["Connection: close", "", ""])
            if cut:
                c.sendall(out_head.encode("latin-1") + rbody[:self.after])
                time.sleep(0.05)
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif self.throttle and method == "GET" and path.endswith(self.suffix):
                c.sendall(out_head.encode("latin-1"))
                step = max(1, self.throttle // 20)
                for i in range(0, len(rbody), step):
                    if self.stopping:
                        break
                    c.sendall(rbody[i:i + step])
                    time.sleep(0.05)
            else:
                c.sendall(out_head.encode("latin-1") + rbody)
        except OSError:
            pass
        finally:
            c.close()


# --------------------------------------------------------------------------
# Test case

class RestoreTestCase(h.BackupTestCase):

    def setUp(self):
        super().setUp()
        self.target = TARGET["mongo"]
        self.target_db_name = h.unique_name("rs")
        self.tdb = self.target.client()[self.target_db_name]
        self.addCleanup(self.target.drop_database, self.target_db_name)
        if self.target.supports_faults and self.target is not self.mongo:
            self.addCleanup(self.target.clear_faults)

    # running things -------------------------------------------------------
    def ctl(self, conf, *args, timeout=180, env=None):
        rc, out, err, _t = h.run_program([CTL, "-c", conf] + list(args), timeout=timeout,
                                         env=env)
        return rc, out.decode("utf-8", "replace"), err

    def restore(self, conf, *args, **kw):
        return self.ctl(conf, "restore", *args, **kw)

    def restore_to_target(self, conf, set_name="latest", *args, **kw):
        return self.restore(conf, set_name, "--to-uri", self.target.uri, "--to-db",
                            self.target_db_name, *args, **kw)

    def backup(self, colls, **conf_kw):
        """Runs one backup; (conf, the set's date, exit code, log)."""
        conf = self.write_config(collections=", ".join(colls), **conf_kw)
        rc, log, _e = self.run_backup(conf, timeout=200)
        manifests = [n for n in self.blobs.names("backups/") if n.endswith("/manifest.json")]
        if not manifests:
            self.fail("no manifest written; rc %s; log:\n%s" % (rc, log))
        return conf, manifests[-1].split("/")[1], rc, log

    def backup_ok(self, colls, **conf_kw):
        conf, date, rc, log = self.backup(colls, **conf_kw)
        self.assertExit(rc, 0, log)
        return conf, date

    def manifest(self, date):
        return json.loads(self.blobs.download(h.manifest_blob_name(date)))

    def put_manifest(self, date, m):
        self.blobs.upload(h.manifest_blob_name(date), json.dumps(m).encode(),
                          content_type="application/json")

    # checks ------------------------------------------------------------------
    def assertOk(self, rc, out, err, what):
        self.assertEqual(rc, 0, "%s: exit %s\nstdout:\n%s\nstderr:\n%s" % (what, rc, out, err))

    def assertLine(self, text, pattern, what):
        if not re.search(pattern, text, re.M):
            self.fail("no line %s (/%s/) in:\n%s" % (what, pattern, text))

    def assertSameCollection(self, coll, target_db=None):
        want, n = h.read_raw(self.db, coll)
        got, m = h.read_raw(target_db if target_db is not None else self.tdb, coll)
        if got != want:
            self.fail("%s: restored documents differ (%d vs %d): %s"
                      % (coll, m, n, h.describe_bson_difference(got, want)))

    def assertSameIndexes(self, coll, target_db=None):
        got = index_specs(target_db if target_db is not None else self.tdb, coll)
        want = index_specs(self.db, coll)
        self.assertEqual(sorted(got), sorted(want), "%s: index names" % coll)
        for name, spec in want.items():
            g = dict(got[name])
            w = dict(spec)
            self.assertEqual(g, w, "%s: index %s differs" % (coll, name))

    def target_collections(self):
        return sorted(self.tdb.list_collection_names())


# --------------------------------------------------------------------------

class TestRoundTrip(RestoreTestCase):

    def test_round_trip_every_type_into_a_second_mongodb(self):
        """Backup, restore into another server, compare everything; the URI
        never reaches a child's argv."""
        colls = seed_rich(self.db)
        conf, date = self.backup_ok(colls)

        argv = [CTL, "-c", conf, "restore", "latest", "--to-uri", self.target.uri,
                "--to-db", self.target_db_name]
        seen = {}
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=h.daemon_env())
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                for pid in h.descendants(p.pid):
                    name = h.program_name(pid)
                    if name in ("import-collection", "download-blob") and pid not in seen:
                        # Kept only once its environment could be read: a
                        # process that is gone leaves nothing to check.
                        env = h.proc_environ(pid)
                        if env:
                            seen[pid] = (name, h.proc_cmdline(pid), env,
                                         h.proc_cmdline(p.pid))
                time.sleep(0.005)
        t = threading.Thread(target=sample, daemon=True)
        t.start()
        out, err = p.communicate(timeout=240)
        stop.set()
        t.join(5)
        out, err = out.decode(), err.decode()
        self.assertOk(p.returncode, out, err, "restore")
        for coll in colls:
            with self.subTest(collection=coll):
                self.assertLine(out, r"^\s+%s\s+ok\s+\d+ inserted, 0 failed" % coll,
                                "saying %s was restored" % coll)
                self.assertSameCollection(coll)
                self.assertSameIndexes(coll)
        self.assertEqual(collection_options(self.tdb, "capped"),
                         collection_options(self.db, "capped"), "capped options")
        self.assertLine(out, r"^\s+users\s+ok\s+3000 inserted, 0 failed, 5 indexes created",
                        "with the users' count and its 5 indexes")
        self.assertLine(out, r"^restored 5 of 5 collections", "summing up")

        names = {v[0] for v in seen.values()}
        self.assertEqual(names, {"import-collection", "download-blob"},
                         "children not observed: %r" % seen)
        for pid, (name, cargv, cenv, ctl_argv) in seen.items():
            self.assertFalse([a for a in cargv if "mongodb://" in a],
                             "%s had the URI in argv: %r" % (name, cargv))
            has_uri = [e for e in cenv if e.startswith("MONGODB_URI=")]
            if name == "download-blob":
                self.assertFalse(has_uri, "download-blob got the target URI")
            if name == "import-collection":
                self.assertTrue(has_uri, "import-collection had no MONGODB_URI: %r" % cenv)
            self.assertFalse([a for a in ctl_argv if "mongodb://" in a],
                             "the ctl's own argv still showed the URI while children ran")

    def test_to_dir_is_mongodump_layout(self):
        """--to-dir: DIR/DB/COLL.bson byte-identical to the source, and
        COLL.metadata.json in mongodump's shape; never overwrites."""
        self.db["types"].insert_many(rich_documents())
        self.db["users"].insert_many(list(h.gen_users(2000, seed=4)))
        self.db["users"].create_index("email", unique=True)
        self.db.create_collection("empty")
        colls = ["types", "users", "empty"]
        conf, date = self.backup_ok(colls)
        out_dir = os.path.join(self.tmp, "dump")

        rc, out, err = self.restore(conf, date, "--to-dir", out_dir, "--dry-run")
        self.assertOk(rc, out, err, "dry run")
        self.assertFalse(os.path.exists(out_dir), "a dry run created %s" % out_dir)
        self.assertLine(out, r"^\s+users\s+2000 documents, [\d.]+ [kM]B BSON", "planning users")

        rc, out, err = self.restore(conf, date, "--to-dir", out_dir)
        self.assertOk(rc, out, err, "restore --to-dir")
        dbdir = os.path.join(out_dir, self.database)
        self.assertEqual(sorted(os.listdir(dbdir)),
                         sorted(["%s.bson" % c for c in colls] +
                                ["%s.metadata.json" % c for c in colls]))
        for coll in colls:
            with self.subTest(collection=coll):
                want, n = h.read_raw(self.db, coll)
                with open(os.path.join(dbdir, coll + ".bson"), "rb") as f:
                    got = f.read()
                if got != want:
                    self.fail("%s.bson differs: %s" % (coll, h.describe_bson_difference(got, want)))
                with open(os.path.join(dbdir, coll + ".metadata.json")) as f:
                    meta = json.load(f)
                self.assertEqual(set(meta) - {"options"},
                                 {"indexes", "uuid", "collectionName", "type"}, meta)
                self.assertEqual(meta["collectionName"], coll)
                self.assertEqual(meta["type"], "collection")
                self.assertRegex(meta["uuid"], r"^[0-9a-f]{32}$")
                names = {ix["name"]: ix for ix in meta["indexes"]}
                self.assertEqual(names["_id_"]["key"], {"_id": {"$numberInt": "1"}})
                self.assertEqual(sorted(names), sorted(index_specs(self.db, coll)))
                self.assertEqual(os.stat(os.path.join(dbdir, coll + ".bson")).st_mode & 0o777,
                                 0o600)
        self.assertEqual(json.load(open(os.path.join(dbdir, "users.metadata.json")))
                         ["indexes"][1]["unique"], True)

        # A second run refuses, and leaves the files as they were.
        before = {n: os.stat(os.path.join(dbdir, n)).st_mtime_ns for n in os.listdir(dbdir)}
        rc, out, err = self.restore(conf, date, "--to-dir", out_dir)
        self.assertEqual(rc, 1, out + err)
        self.assertLine(out, r"users\.bson exists; restore never overwrites a file",
                        "refusing to overwrite")
        self.assertEqual(before, {n: os.stat(os.path.join(dbdir, n)).st_mtime_ns
                                  for n in os.listdir(dbdir)})


class TestListVerify(RestoreTestCase):

    def test_list_verify_and_record(self):
        self.db["users"].insert_many(list(h.gen_users(500, seed=8)))
        self.db["types"].insert_one(h.every_type_document())
        conf, date = self.backup_ok(["users", "types"])
        folder = "backups/%s/" % date

        rc, out, err = self.ctl(conf, "list")
        self.assertOk(rc, out, err, "list")
        self.assertLine(out, r"^%s\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+complete\s+2/2\s+501\s+"
                        r"[\d.]+ [kM]?B\s+never$" % re.escape(folder), "for the set")

        # --no-record checks the same and leaves nothing beside the set.
        rc, out, err = self.ctl(conf, "verify", "--no-record")
        self.assertOk(rc, out, err, "verify --no-record")
        self.assertLine(out, r"^%s: ok" % re.escape(folder), "the verdict")
        self.assertNotIn(folder + "verification.json", self.blobs.names(folder))

        rc, out, err = self.ctl(conf, "verify")
        self.assertOk(rc, out, err, "verify")
        self.assertLine(out, r"^\s+users\s+ok\s+500 documents", "users ok")
        self.assertLine(out, r"^\s+types\s+ok\s+1 document,", "types ok")
        self.assertLine(out, r"^%s: ok" % re.escape(folder), "the verdict")

        rec = json.loads(self.blobs.download(folder + "verification.json"))
        m = self.manifest(date)
        self.assertEqual(rec["result"], "ok")
        self.assertEqual(rec["run_id"], m["run_id"])
        self.assertEqual(rec["set"], folder)
        self.assertEqual([c["result"] for c in rec["collections"]], ["ok", "ok"])
        self.assertRegex(rec["verified_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

        rc, out, err = self.ctl(conf, "list", "--json")
        self.assertOk(rc, out, err, "list --json")
        doc = json.loads(out)
        self.assertEqual(len(doc["sets"]), 1)
        s = doc["sets"][0]
        self.assertEqual((s["set"], s["complete"], s["collections"], s["documents"]),
                         (folder, True, 2, 501))
        self.assertEqual(s["gzip_bytes"], sum(c["gzip_bytes"] for c in m["collections"]))
        self.assertEqual(s["verified_at"], rec["verified_at"])
        self.assertEqual(s["verification"], "ok")

        rc, out, err = self.ctl(conf, "list")
        self.assertLine(out, r"%s\s+ok$" % re.escape(rec["verified_at"].replace("T", " ")[:19]),
                        "showing when it was verified")

    def test_verify_catches_every_kind_of_damage(self):
        names = ["flipped", "truncated", "miscounted", "missing", "nometa", "fine"]
        for i, n in enumerate(names):
            self.db[n].insert_many(list(h.gen_users(400, seed=30 + i)))
        conf, date = self.backup_ok(names)
        data = {n: h.data_blob_name(n, date) for n in names}

        blob = bytearray(self.blobs.download(data["flipped"]))
        blob[len(blob) // 2] ^= 0x01
        self.blobs.upload(data["flipped"], bytes(blob), content_type="application/gzip")
        blob = self.blobs.download(data["truncated"])
        self.blobs.upload(data["truncated"], blob[:len(blob) * 2 // 3],
                          content_type="application/gzip")
        m = self.manifest(date)
        for e in m["collections"]:
            if e["name"] == "miscounted":
                e["documents"] += 1
        self.put_manifest(date, m)
        self.blobs.container.delete_blob(data["missing"])
        self.blobs.container.delete_blob(h.metadata_blob_name("nometa", date))

        rc, out, err = self.ctl(conf, "verify", date)
        self.assertEqual(rc, 1, out + err)
        self.assertLine(out, r"^\s+flipped\s+CORRUPT\s+.*SHA-256 of the blob is [0-9a-f]{64}, "
                        r"the manifest says", "the flipped byte")
        self.assertLine(out, r"^\s+truncated\s+CORRUPT\s+.*(truncated|the blob is \d+ bytes)",
                        "the truncation")
        self.assertLine(out, r"^\s+miscounted\s+CORRUPT\s+the blob holds 400 documents, the "
                        r"manifest says 401$", "the count off by one")
        self.assertLine(out, r"^\s+missing\s+MISSING\s+data blob \S+tralivali_missing.bson.gz "
                        r"does not exist", "the missing blob")
        self.assertLine(out, r"^\s+nometa\s+MISSING\s+metadata blob \S+ does not exist",
                        "the missing metadata")
        self.assertLine(out, r"^\s+fine\s+ok\s+400 documents", "the good one")
        self.assertLine(out, r"FAILED \(5 of 6 collections not ok\)", "the verdict")
        rec = json.loads(self.blobs.download("backups/%s/verification.json" % date))
        self.assertEqual(rec["result"], "failed")
        self.assertEqual({c["name"]: c["result"] for c in rec["collections"]},
                         {"flipped": "corrupt", "truncated": "corrupt", "miscounted": "corrupt",
                          "missing": "missing", "nometa": "missing", "fine": "ok"})
        rc, out, err = self.ctl(conf, "list")
        self.assertLine(out, r"failed$", "list showing the failed verification")

    def test_incomplete_set(self):
        """A run that lost a collection: list and verify say so; restore
        refuses the set as a whole and restores what is named."""
        self.db["users"].insert_many(list(h.gen_users(300, seed=9)))
        conf, date, rc, log = self.backup(["users", "nosuch"])
        self.assertExit(rc, 1, log)
        rc, out, err = self.ctl(conf, "list")
        self.assertLine(out, r"INCOMPLETE\s+1/2\s+300", "the incomplete set")
        rc, out, err = self.ctl(conf, "verify", date)
        self.assertEqual(rc, 1, out + err)
        self.assertLine(out, r"^\s+users\s+ok", "users fine")
        self.assertLine(out, r"^\s+nosuch\s+INCOMPLETE\s+its backup failed", "nosuch")
        self.assertLine(out, r"the set is incomplete", "the set")
        self.assertLine(out, r": INCOMPLETE", "the verdict")

        rc, out, err = self.restore_to_target(conf, date)
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(err, r"is incomplete: .*nothing was restored.*--collection "
                         r"\(backed up: users\)")
        self.assertEqual(self.target_collections(), [])
        rc, out, err = self.restore_to_target(conf, date, "--collection", "nosuch")
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(err, r"nosuch: cannot be restored from \S+: its backup failed")
        rc, out, err = self.restore_to_target(conf, date, "--collection", "users")
        self.assertOk(rc, out, err, "restoring the good collection")
        self.assertSameCollection("users")
        # "latest" for restore means the newest complete set: there is none.
        rc, out, err = self.restore_to_target(conf, "latest", "--drop")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("no complete backup set", err)

    def test_latest_and_set_names(self):
        """Two sets a second apart: verify latest and restore latest both
        take the newest complete one; the incomplete one by its name."""
        self.db["users"].insert_many(list(h.gen_users(100, seed=12)))
        path = "backups/{date}/{time}/tralivali_{collection}.bson.gz"
        conf, _d = self.backup_ok(["users"], azure__blob_path=path)
        time.sleep(1.1)
        self.db["users"].insert_many(list(h.gen_users(5, seed=13, start=100)))
        conf, _d, rc, log = self.backup(["users", "nosuch"], azure__blob_path=path)
        rc, out, err = self.ctl(conf, "list", "--json")
        sets = json.loads(out)["sets"]
        self.assertEqual([s["complete"] for s in sets], [False, True], sets)
        self.assertEqual([s["documents"] for s in sets], [105, 100])
        rc, out, err = self.ctl(conf, "verify")
        self.assertOk(rc, out, err, "verify latest")
        self.assertIn("verifying %s" % sets[1]["set"], out)
        rc, out, err = self.ctl(conf, "verify", sets[0]["set"])
        self.assertEqual(rc, 1, out + err)
        self.assertIn("verifying %s" % sets[0]["set"], out)
        rc, out, err = self.restore_to_target(conf, "latest")
        self.assertOk(rc, out, err, "restore latest")
        self.assertIn(sets[1]["set"], out)
        self.assertEqual(self.tdb["users"].count_documents({}), 100)
        # The set by its last segment, and an ambiguous or unknown name.
        rc, out, err = self.ctl(conf, "verify", sets[1]["set"].split("/")[-2])
        self.assertOk(rc, out, err, "verify by time segment")
        rc, out, err = self.ctl(conf, "verify", sets[1]["set"].split("/")[1])
        self.assertEqual(rc, 1)
        self.assertIn("names 2 sets", err)
        rc, out, err = self.ctl(conf, "verify", "1999-01-01")
        self.assertEqual(rc, 1)
        self.assertIn("no backup set '1999-01-01'", err)
        rc, out, err = self.ctl(conf, "verify", "all")
        self.assertEqual(rc, 1)
        self.assertIn("1 of 2 backup sets verified ok", out)

    def test_verify_set_helper(self):
        """verify-set: the daemon's after_backup helper, with its status
        records."""
        self.db["users"].insert_many(list(h.gen_users(200, seed=14)))
        conf, date = self.backup_ok(["users"])

        def run(*args):
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            p = subprocess.Popen([h.program("verify-set"), "-c", conf, "--status-fd",
                                  str(b.fileno())] + list(args), pass_fds=(b.fileno(),),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env=h.daemon_env())
            b.close()
            records = []
            a.settimeout(60)
            while True:
                m = a.recv(2048)
                if not m:
                    break
                records.append(m.decode())
            a.close()
            _o, e = p.communicate(timeout=60)
            return p.returncode, records, e.decode()

        rc, recs, err = run(date)
        self.assertEqual(rc, 0, "%s\n%s" % (recs, err))
        self.assertTrue(any(r.startswith("collection name=users result=ok documents=200")
                            for r in recs), recs)
        self.assertRegex(recs[-1], r"^result ok set=backups%%2F%s%%2F verified_at=\S+ "
                         r"recorded=1 collections=1$" % date)
        name = h.data_blob_name("users", date)
        blob = bytearray(self.blobs.download(name))
        blob[-5] ^= 0xff
        self.blobs.upload(name, bytes(blob), content_type="application/gzip")
        rc, recs, err = run("latest")
        self.assertEqual(rc, 1, "%s\n%s" % (recs, err))
        self.assertRegex(recs[-1], r"^result error class=failed set=\S+ verified_at=\S+ "
                         r"recorded=1 message=.*1 of 1 collections not ok")
        self.assertEqual(json.loads(self.blobs.download(
            "backups/%s/verification.json" % date))["result"], "failed")

    def test_usage_errors(self):
        conf = self.write_config(collections="users")
        cases = [
            (["restore", "latest"], "exactly one target"),
            (["restore", "latest", "--to-dir", "/tmp/x", "--to-uri", "mongodb://h/"],
             "exactly one target"),
            (["restore", "--to-dir", "/tmp/x"], "which set"),
            (["restore", "latest", "--to-dir", "/tmp/x", "--drop"], "--drop is for"),
            (["list", "extra"], "unexpected argument"),
            (["verify", "a", "b"], "unexpected argument"),
            (["restore", "latest", "--bogus"], "unrecognized option"),
        ]
        for args, msg in cases:
            with self.subTest(args=args):
                rc, out, err = self.ctl(conf, *args)
                self.assertEqual(rc, 2, "%r: %s%s" % (args, out, err))
                self.assertIn(msg, err)
        rc, out, err = self.ctl(conf, "restore", "--help")
        self.assertEqual(rc, 0)
        self.assertIn("--to-uri", out)


class TestRestoreFailures(RestoreTestCase):

    def test_non_empty_target_refused_then_drop(self):
        self.db["users"].insert_many(list(h.gen_users(700, seed=15)))
        self.db["users"].create_index("email", unique=True)
        self.db["other"].insert_many([{"_id": i} for i in range(10)])
        conf, date = self.backup_ok(["users", "other"])
        # The target already holds one of the backup's documents: a
        # duplicate key waiting to happen.
        first = next(iter(self.db["users"].find().sort("$natural", 1)))
        self.tdb["users"].insert_one(first)

        rc, out, err = self.restore_to_target(conf, date, "--dry-run")
        self.assertEqual(rc, 1, out + err)
        self.assertLine(out, r"^\s+users\s+.*\(exists, 1 document: REFUSED without --drop\)",
                        "the dry run's refusal")
        rc, out, err = self.restore_to_target(conf, date)
        self.assertEqual(rc, 1, out + err)
        self.assertLine(out, r"REFUSED without --drop", "the refusal")
        self.assertLine(out, r"nothing was written", "saying nothing was written")
        self.assertEqual(self.tdb["users"].count_documents({}), 1)
        self.assertEqual(self.target_collections(), ["users"], "other was written anyway")

        # The URI from a file this time (what the runbook recommends).
        uri_file = os.path.join(self.tmp, "target-uri")
        with open(uri_file, "w") as f:
            f.write(self.target.uri + "\n")
        rc, out, err = self.restore(conf, date, "--to-uri-file", uri_file, "--to-db",
                                    self.target_db_name, "--drop")
        self.assertOk(rc, out, err, "restore --drop")
        self.assertLine(out, r"^\s+users\s+ok\s+700 inserted, 0 failed, 1 index created "
                        r"\(dropped first\)", "the drop")
        self.assertSameCollection("users")
        self.assertSameIndexes("users")
        self.assertSameCollection("other")

    def test_target_drops_the_connection(self):
        """fakeFault close_on_insert: a clear failure, exactly what was
        written, and the other collections still restored."""
        if not self.target.supports_faults:
            self.skipTest("needs fakeFault (tests/fake_mongod.py)")
        self.db["users"].insert_many(list(h.gen_users(3500, seed=16)))
        self.db["later"].insert_many([{"_id": i} for i in range(30)])
        conf, date = self.backup_ok(["users", "later"])
        self.target.fault(close_on_insert=3)
        rc, out, err = self.restore_to_target(conf, date)
        self.assertEqual(rc, 1, out + err)
        m = re.search(r"^\s+users\s+FAILED\s+(\d+) inserted, (\d+) failed, (\d+) uncertain "
                      r"\(sent, never acknowledged\), 0 indexes created: .*inserting a batch of "
                      r"\d+ documents failed: .*", out, re.M)
        self.assertTrue(m, "no failure line for users:\n%s\n%s" % (out, err))
        inserted, failed, uncertain = map(int, m.groups())
        self.assertEqual((inserted, failed, uncertain), (2000, 0, 1000))
        got = self.tdb["users"].count_documents({})
        self.assertTrue(inserted <= got <= inserted + uncertain,
                        "reported %d (+%d uncertain), the target holds %d"
                        % (inserted, uncertain, got))
        self.assertNotIn("downloading", m.group(0), "the download was blamed")
        self.assertLine(out, r"^\s+later\s+ok\s+30 inserted", "the next collection")
        self.assertLine(out, r"^RESTORE INCOMPLETE: 1 of 2 collections", "the summary")

    def test_corrupt_blob_says_what_was_written(self):
        self.db["users"].insert_many(list(h.gen_users(4000, seed=17)))
        conf, date = self.backup_ok(["users"])
        name = h.data_blob_name("users", date)
        blob = bytearray(self.blobs.download(name))
        blob[len(blob) * 3 // 4] ^= 0x10
        self.blobs.upload(name, bytes(blob), content_type="application/gzip")
        rc, out, err = self.restore_to_target(conf, date)
        self.assertEqual(rc, 1, out + err)
        m = re.search(r"^\s+users\s+FAILED\s+(\d+) inserted, 0 failed, 0 indexes created: "
                      r".*(gzip data error|not valid BSON|claims a length|SHA-256)", out, re.M)
        self.assertTrue(m, "no clear failure for users:\n%s\n%s" % (out, err))
        self.assertEqual(self.tdb["users"].count_documents({}), int(m.group(1)))
        self.assertEqual(index_specs(self.tdb, "users").keys(), {"_id_"},
                         "indexes built over a failed restore")

        out_dir = os.path.join(self.tmp, "dump")
        rc, out, err = self.restore(conf, date, "--to-dir", out_dir)
        self.assertEqual(rc, 1, out + err)
        self.assertLine(out, r"^\s+users\s+FAILED\s+nothing kept", "the to-dir failure")
        self.assertEqual(os.listdir(os.path.join(out_dir, self.database)), [],
                         "a partial file was left behind")

    def test_truncated_blob_and_lying_manifest(self):
        self.db["a"].insert_many(list(h.gen_users(1500, seed=18)))
        self.db["b"].insert_many(list(h.gen_users(300, seed=19)))
        conf, date = self.backup_ok(["a", "b"])
        name = h.data_blob_name("a", date)
        blob = self.blobs.download(name)
        m = self.manifest(date)
        # The manifest is made to agree with the cut blob's size, so the
        # restore starts and finds the truncation in the stream itself.
        cut = blob[:len(blob) // 2]
        for e in m["collections"]:
            if e["name"] == "a":
                e["gzip_bytes"] = len(cut)
            if e["name"] == "b":
                e["documents"] += 1
        self.put_manifest(date, m)
        self.blobs.upload(name, cut, content_type="application/gzip")
        rc, out, err = self.restore_to_target(conf, date)
        self.assertEqual(rc, 1, out + err)
        m1 = re.search(r"^\s+a\s+FAILED\s+(\d+) inserted, 0 failed, 0 indexes created: the "
                       r"backup stream is bad: truncated", out, re.M)
        self.assertTrue(m1, out + err)
        self.assertEqual(self.tdb["a"].count_documents({}), int(m1.group(1)))
        self.assertLine(out, r"^\s+b\s+FAILED\s+300 inserted, 0 failed, 0 indexes created: the "
                        r"blob held 300 documents, the manifest says 301; the documents were "
                        r"inserted, but they are not what the backup recorded", "the lie")

    def test_missing_blobs_refused_up_front(self):
        self.db["users"].insert_many(list(h.gen_users(100, seed=20)))
        self.db["gone"].insert_many([{"_id": 1}])
        conf, date = self.backup_ok(["users", "gone"])
        self.blobs.container.delete_blob(h.metadata_blob_name("users", date))
        self.blobs.container.delete_blob(h.data_blob_name("gone", date))
        rc, out, err = self.restore_to_target(conf, date)
        self.assertEqual(rc, 1, out + err)
        self.assertLine(out, r"^\s+users\s.*metadata blob \S+ does not exist \(--no-indexes "
                        r"restores the documents alone\)", "the missing metadata")
        self.assertLine(out, r"^\s+gone\s.*data blob \S+tralivali_gone.bson.gz does not exist",
                        "the missing data blob")
        self.assertLine(out, r"^2 of 2 collections cannot be restored as asked; nothing was "
                        r"written", "nothing written")
        self.assertEqual(self.target_collections(), [])
        rc, out, err = self.restore_to_target(conf, date, "--collection", "users",
                                              "--no-indexes")
        self.assertOk(rc, out, err, "--no-indexes")
        self.assertSameCollection("users")

    def test_download_reset_mid_blob(self):
        """A connection reset in the middle of the data blob: download-blob
        resumes with a Range request, nothing is written twice."""
        self.db["users"].insert_many(list(h.gen_users(6000, seed=22)))
        conf, date = self.backup_ok(["users"])
        proxy = TruncatingProxy(self.azurite.port, "/tralivali_users.bson.gz",
                                after=300 * 1000)
        self.addCleanup(proxy.stop)
        pconf = self.write_config(collections="users", connection_string=proxy.connection_string())
        rc, out, err = self.restore_to_target(pconf, date)
        self.assertOk(rc, out, err, "restore through the proxy")
        self.assertEqual(proxy.cut_done, 1, "the proxy never cut the download")
        gets = [r for r in proxy.requests if r[0] == "GET" and r[1].endswith("users.bson.gz")]
        self.assertTrue(any(r[2] and r[2].startswith("bytes=300000-") for r in gets),
                        "no resume from byte 300000: %r" % gets)
        self.assertIn("resuming at byte 300000", err)
        self.assertSameCollection("users")

    def test_interrupt_says_what_was_written(self):
        """SIGINT in the middle of a restore: the children are stopped, the
        report gives the exact count, nothing is left running."""
        self.db["users"].insert_many(list(h.gen_users(12000, seed=23)))
        self.db["after"].insert_many([{"_id": i} for i in range(5)])
        conf, date = self.backup_ok(["users", "after"])
        proxy = TruncatingProxy(self.azurite.port, "/tralivali_users.bson.gz", after=0,
                                cuts=0, throttle=400 * 1000)
        self.addCleanup(proxy.stop)
        pconf = self.write_config(collections="users", connection_string=proxy.connection_string())
        p = subprocess.Popen([CTL, "-c", pconf, "restore", date, "--to-uri", self.target.uri,
                              "--to-db", self.target_db_name], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=h.daemon_env())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.tdb["users"].count_documents({}) >= 1000:
                break
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        out, err = out.decode(), err.decode()
        self.assertEqual(p.returncode, 1, out + err)
        m = re.search(r"^\s+users\s+INTERRUPTED\s+(\d+) inserted, 0 failed(?:, (\d+) uncertain "
                      r"\(sent, never acknowledged\))?, 0 indexes created: .*stopped by signal",
                      out, re.M)
        self.assertTrue(m, out + err)
        inserted, uncertain = int(m.group(1)), int(m.group(2) or 0)
        got = self.tdb["users"].count_documents({})
        self.assertTrue(inserted <= got <= inserted + uncertain,
                        "reported %d (+%d uncertain), the target holds %d"
                        % (inserted, uncertain, got))
        self.assertLess(got, 12000)
        self.assertLine(out, r"^\s+after\s+NOT STARTED\s+nothing written: interrupted before "
                        r"it started", "the collection never started")
        self.assertLine(out, r"^RESTORE INCOMPLETE: 0 of 2 collections .*\(interrupted\)$",
                        "the summary")

    def test_import_collection_duplicate_key(self):
        """import-collection alone: a duplicate _id inside the stream is a
        write error naming the key, with exact counts."""
        import bson
        docs = [bson.BSON.encode({"_id": i, "v": "x" * 10}) for i in range(1500)]
        # In the first batch of 1000: 999 go in, the duplicate is refused,
        # and the import stops there.
        docs.insert(500, bson.BSON.encode({"_id": 7, "dup": True}))
        stream = gzip.compress(b"".join(docs))
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = h.daemon_env({"MONGODB_URI": self.target.uri})
        p = subprocess.Popen([h.program("import-collection"), "--database",
                              self.target_db_name, "--status-fd", str(b.fileno()), "dups"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, pass_fds=(b.fileno(),), env=env)
        b.close()
        _o, e = p.communicate(stream, timeout=60)
        a.settimeout(5)
        recs = []
        try:
            while True:
                m = a.recv(2048)
                if not m:
                    break
                recs.append(m.decode())
        finally:
            a.close()
        self.assertEqual(p.returncode, 1, e)
        self.assertRegex(recs[-1], r"^result error class=write documents=\d+ inserted=999 "
                         r"failed=1 uncertain=0 indexes=0 .*message=the server refused 1 of a "
                         r"batch of 1000 documents; the first: duplicate key \(code 11000\) "
                         r".*E11000")
        self.assertEqual(self.tdb["dups"].count_documents({}), 999)

    def test_import_collection_needs_the_uri_from_the_environment(self):
        rc, out, err, _t = h.run_program([h.program("import-collection"), "--database", "x",
                                          "c"], input=gzip.compress(b""))
        self.assertEqual(rc, 1, err)
        self.assertIn("set MONGODB_URI", err)


if __name__ == "__main__":
    h.main()
