#!/usr/bin/python3
"""test_backup.py - the happy path, end to end.

mongo-azure-backupd --once against Azurite and MongoDB (the fake, or a real
mongod with MAB_TEST_MONGODB_URI): every blob, its properties and metadata,
the index metadata and the manifest are read back with Microsoft's SDK and
compared with what is in the database.  Across collections the largest
starts first (TestStartOrder), while the manifest keeps the configuration's
order.
"""

import gzip
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402

N_USERS = int(os.environ.get("MAB_TEST_USERS", "300000"))


def setUpModule():
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


def _uuid_hex(value):
    """listCollections info.uuid (uuid.UUID or Binary subtype 4) as hex."""
    if value is None:
        return None
    if hasattr(value, "hex") and not isinstance(value, (bytes, bytearray)):
        hx = value.hex
        return hx() if callable(hx) else hx
    return bytes(value).hex()


class BackupChecks(h.BackupTestCase):
    """Verification shared by the happy-path tests."""

    def source_indexes(self, coll):
        from bson import json_util
        out = {}
        for spec in self.db[coll].list_indexes():
            canon = json.loads(json_util.dumps(
                spec, json_options=json_util.CANONICAL_JSON_OPTIONS))
            out[canon["name"]] = canon
        return out

    def source_uuid(self, coll):
        for info in self.db.list_collections(filter={"name": coll}):
            return _uuid_hex(info.get("info", {}).get("uuid"))
        return None

    def load_manifest(self, date):
        name = h.manifest_blob_name(date)
        self.assertIn(name, self.blobs.names(name), "no manifest %s; blobs: %r"
                      % (name, self.blobs.names("backups/")))
        raw = self.blobs.download(name)
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError as e:
            self.fail("manifest %s is not JSON (%s): %r" % (name, e, raw[:500]))

    def check_manifest_header(self, m, log):
        self.assertIs(m.get("complete"), True, "manifest not complete: %r" % m)
        self.assertEqual(m.get("database"), self.database)
        self.assertIsInstance(m.get("run_id"), str)
        self.assertTrue(m["run_id"], "empty run_id")
        for k in ("started", "finished"):
            self.assertIn(k, m, "manifest has no %r: %r" % (k, m))
            self.assertTrue(m[k], "manifest %r is empty" % k)
        if isinstance(m["started"], str) and isinstance(m["finished"], str):
            # ISO 8601 UTC strings compare correctly as text
            self.assertLessEqual(m["started"], m["finished"])
        self.assertIsInstance(m.get("collections"), list)

    def manifest_entry(self, m, coll):
        entries = [e for e in m["collections"] if e.get("name") == coll]
        self.assertEqual(len(entries), 1, "manifest entries for %r: %r" % (coll, m["collections"]))
        return entries[0]

    def check_collection(self, coll, date, manifest, log):
        """Everything about one collection's blobs against the source."""
        name = h.data_blob_name(coll, date)
        self.assertIn(name, self.blobs.names(name),
                      "no blob %s; blobs: %r" % (name, self.blobs.names("backups/")))
        blob = self.blobs.download(name)
        want, ndocs = h.read_raw(self.db, coll)

        # gunzip(blob) == the source documents' bytes in $natural order
        try:
            got = gzip.decompress(blob)
        except (OSError, EOFError) as e:
            self.fail("%s is not a valid gzip stream: %s" % (name, e))
        if got != want:
            self.fail("%s: content differs from the source: %s"
                      % (name, h.describe_bson_difference(got, want)))

        # blob properties
        props = self.blobs.properties(name)
        self.assertEqual(props.size, len(blob))
        self.assertEqual(props.content_settings.content_type, "application/gzip", name)
        self.assertFalse(props.content_settings.content_encoding,
                         "%s has Content-Encoding %r" % (name, props.content_settings.content_encoding))
        md5 = props.content_settings.content_md5
        self.assertIsNotNone(md5, "%s has no Content-MD5" % name)
        self.assertEqual(bytes(md5), h.hashlib.md5(blob).digest(), "%s Content-MD5" % name)
        meta = props.metadata or {}
        self.assertEqual(meta.get("documents"), str(ndocs), "%s metadata %r" % (name, meta))
        self.assertEqual(meta.get("bsonbytes"), str(len(want)), "%s metadata %r" % (name, meta))
        self.assertEqual(meta.get("sha256"), h.sha256_hex(blob),
                         "%s metadata sha256 is not the SHA-256 of the blob: %r" % (name, meta))

        # index metadata, mongodump's format
        mname = h.metadata_blob_name(coll, date)
        self.assertIn(mname, self.blobs.names(mname), "no metadata blob %s" % mname)
        mblob = self.blobs.download(mname)
        mprops = self.blobs.properties(mname)
        self.assertEqual(mprops.content_settings.content_type, "application/gzip", mname)
        self.assertFalse(mprops.content_settings.content_encoding, mname)
        try:
            mdoc = json.loads(gzip.decompress(mblob).decode("utf-8"))
        except (OSError, EOFError, ValueError) as e:
            self.fail("%s: not gzip'd JSON: %s" % (mname, e))
        self.assertEqual(mdoc.get("collectionName"), coll, mdoc)
        self.assertEqual(mdoc.get("type"), "collection", mdoc)
        self.assertRegex(mdoc.get("uuid", ""), r"^[0-9a-f]{32}$", mdoc)
        src_uuid = self.source_uuid(coll)
        if src_uuid:
            self.assertEqual(mdoc["uuid"], src_uuid, "uuid is not the collection's")
        self.assertIsInstance(mdoc.get("indexes"), list, mdoc)
        got_idx = {ix.get("name"): ix for ix in mdoc["indexes"]}
        want_idx = self.source_indexes(coll)
        self.assertIn("_id_", got_idx, mdoc)
        self.assertEqual(sorted(got_idx), sorted(want_idx), "index names")
        for iname, spec in want_idx.items():
            self.assertEqual(got_idx[iname].get("key"), spec["key"],
                             "index %s key (canonical Extended JSON)" % iname)
            self.assertEqual(got_idx[iname].get("unique", False), spec.get("unique", False),
                             "index %s unique" % iname)
        self.assertEqual(got_idx["_id_"]["key"], {"_id": {"$numberInt": "1"}},
                         "_id_ key is not canonical Extended JSON")

        # manifest entry
        e = self.manifest_entry(manifest, coll)
        self.assertIn(e.get("blob"), (name, os.path.basename(name)), e)
        self.assertEqual(e.get("documents"), ndocs, e)
        self.assertEqual(e.get("bson_bytes"), len(want), e)
        self.assertEqual(e.get("gzip_bytes"), len(blob), e)
        self.assertEqual(e.get("sha256"), h.sha256_hex(blob), e)
        self.assertEqual(e.get("md5"), h.md5_b64(blob), e)

        # one summary line naming the collection with its document count
        count_rx = r"(?<![\d,.])%s(?![\d,.])" % re.escape(format(ndocs, ",")).replace(",", ",?")
        lines = [ln for ln in log.splitlines()
                 if re.search(r"\b%s\b" % re.escape(coll), ln) and re.search(count_rx, ln)
                 and re.search(r"\bdoc", ln, re.I)]
        self.assertTrue(lines, "no log line names %r with its %d documents:\n%s" % (coll, ndocs, log))
        return ndocs, len(want), len(blob)

    def run_ok(self, conf, timeout=180):
        before = h.utc_today()
        rc, log, elapsed = self.run_backup(conf, timeout=timeout)
        after = h.utc_today()
        self.assertExit(rc, 0, log)
        for d in sorted({before, after}):
            if self.blobs.names(h.manifest_blob_name(d)):
                return d, log, elapsed
        self.fail("no manifest for %s; blobs: %r\nlog:\n%s"
                  % (sorted({before, after}), self.blobs.names(), log))


class TestBackup(BackupChecks):

    def test_backup_collections(self):
        """users (many documents), empty, types (every BSON type) and a
        collection with a unique index: blobs, properties, metadata,
        manifest, log."""
        h.seed_users(self.db, "users", N_USERS, seed=7)
        h.create_empty_collection(self.db, "empty")
        self.db["types"].insert_one(h.every_type_document())
        self.db["indexed"].insert_many(list(h.gen_users(500, seed=11)))
        self.db["indexed"].create_index("email", unique=True)
        self.db["indexed"].create_index([("address.city", 1), ("age", -1)])
        colls = ["users", "empty", "types", "indexed"]

        conf = self.write_config(collections=", ".join(colls))
        date, log, elapsed = self.run_ok(conf, timeout=200)
        sys.stderr.write("backup of %d users took %.1f s\n" % (N_USERS, elapsed))

        manifest = self.load_manifest(date)
        self.check_manifest_header(manifest, log)
        self.assertEqual(sorted(e.get("name") for e in manifest["collections"]), sorted(colls))
        for coll in colls:
            with self.subTest(collection=coll):
                self.check_collection(coll, date, manifest, log)

        # nothing else in the set: 2 blobs per collection + the manifest
        expected = {h.manifest_blob_name(date)}
        for c in colls:
            expected |= {h.data_blob_name(c, date), h.metadata_blob_name(c, date)}
        self.assertEqual(set(self.blobs.names("backups/")), expected)

        # the unique index is in the metadata with "unique": true
        mdoc = json.loads(gzip.decompress(self.blobs.download(h.metadata_blob_name("indexed", date))))
        uniq = [ix for ix in mdoc["indexes"] if ix.get("name") == "email_1"]
        self.assertEqual(len(uniq), 1, mdoc)
        self.assertIs(uniq[0].get("unique"), True, uniq)
        self.assertEqual(uniq[0]["key"], {"email": {"$numberInt": "1"}})

        # the empty collection really is an empty (but valid) gzip stream
        self.assertEqual(gzip.decompress(self.blobs.download(h.data_blob_name("empty", date))), b"")

    def test_all_collections(self):
        """collections = * backs up every collection of the database."""
        self.db["alpha"].insert_many(list(h.gen_users(250, seed=3)))
        self.db["beta"].insert_one(h.every_type_document())
        h.create_empty_collection(self.db, "gamma")
        self.db["delta"].insert_many(list(h.gen_users(3, seed=4)))
        names = sorted(n for n in self.db.list_collection_names() if not n.startswith("system."))
        self.assertEqual(names, ["alpha", "beta", "delta", "gamma"])

        conf = self.write_config(collections="*")
        date, log, _ = self.run_ok(conf)
        manifest = self.load_manifest(date)
        self.check_manifest_header(manifest, log)
        self.assertEqual(sorted(e.get("name") for e in manifest["collections"]), names)
        for coll in names:
            with self.subTest(collection=coll):
                self.check_collection(coll, date, manifest, log)
        data_blobs = [n for n in self.blobs.names("backups/%s/" % date) if n.endswith(".bson.gz")]
        self.assertEqual(sorted(data_blobs), sorted(h.data_blob_name(c, date) for c in names))

    def test_verify_after_backup(self):
        """[verify] after_backup = yes reads the new set back and records it."""
        self.db["users"].insert_many(list(h.gen_users(500, seed=41)))
        conf = self.write_config(collections="users", verify={"after_backup": "yes"})
        date, log, _ = self.run_ok(conf)
        self.assertRegex(log, r"verify: set backups/%s/ read back and matches" % date)
        self.assertRegex(log, r"run \S+: complete .*, verified")
        record = json.loads(self.blobs.download("backups/%s/verification.json" % date))
        self.assertEqual(record.get("result"), "ok", record)
        manifest = self.load_manifest(date)
        self.assertEqual(record.get("run_id"), manifest.get("run_id"), record)

    def test_collection_names_that_need_escaping(self):
        """Names with '/', spaces, '%' and non-ASCII become one escaped blob
        name each, never extra folders; `collections = *` finds them."""
        odd = ["a/b", "with space", "100%", "caf\u00e9"]
        for i, name in enumerate(odd):
            self.db[name].insert_many(list(h.gen_users(20 + i, seed=30 + i)))
        conf = self.write_config(collections="*")
        date, log, _ = self.run_ok(conf)
        manifest = self.load_manifest(date)
        by_name = {e["name"]: e for e in manifest["collections"]}
        self.assertEqual(sorted(by_name), sorted(odd))
        escaped = {"a/b": "a%2Fb", "with space": "with%20space", "100%": "100%25",
                   "caf\u00e9": "caf%C3%A9"}
        names = self.blobs.names("backups/%s/" % date)
        for name, esc in escaped.items():
            blob = "backups/%s/tralivali_%s.bson.gz" % (date, esc)
            self.assertEqual(by_name[name]["blob"], blob)
            self.assertIn(blob, names)
            data = gzip.decompress(self.blobs.download(blob))
            self.assertEqual(data, h.read_raw(self.db, name)[0])
        # one folder only: the set
        self.assertEqual({n.split("/")[1] for n in names}, {date})
        self.assertTrue(all(n.count("/") == 2 for n in names), names)

    def test_run_twice_same_day(self):
        """A second run the same day writes a set of its own, DATE.2; the
        first set stays byte for byte, and a third run makes DATE.3."""
        self.db["users"].insert_many(list(h.gen_users(2000, seed=21)))
        self.db["types"].insert_one(h.every_type_document())
        conf = self.write_config(collections="users, types")

        date1, log1, _ = self.run_ok(conf)
        m1 = self.load_manifest(date1)
        first = {n: self.blobs.download(n) for n in self.blobs.names("backups/")}
        self.check_collection("users", date1, m1, log1)

        # change the data, run again
        self.db["users"].insert_many(list(h.gen_users(700, seed=21, start=2000)))
        date2, log2, _ = self.run_ok(conf)
        if date2 != date1:
            self.skipTest("the UTC date changed between the two runs")
        second = date2 + ".2"
        self.assertRegex(log2, r"backups/%s/ already holds a backup set.*writes backups/%s/"
                         % (re.escape(date1), re.escape(second)), "the log does not say why")
        m2 = self.load_manifest(second)
        self.check_manifest_header(m2, log2)
        self.assertEqual(m2.get("set"), "backups/%s/" % second)
        self.assertNotEqual(m1.get("run_id"), m2.get("run_id"), "same run_id for two runs")
        for coll in ("users", "types"):
            with self.subTest(collection=coll):
                self.check_collection(coll, second, m2, log2)
        self.assertEqual(self.manifest_entry(m2, "users")["documents"], 2700)
        # the first set: every blob as it was, and nothing added to it
        self.assertEqual(sorted(self.blobs.names("backups/%s/" % date1)), sorted(first))
        for name, data in first.items():
            self.assertEqual(self.blobs.download(name), data, "%s changed" % name)
        # the second set: the same names as the first, in its own folder
        self.assertEqual(sorted(n.split("/")[2] for n in self.blobs.names("backups/%s/" % second)),
                         sorted(n.split("/")[2] for n in first))

        date3, log3, _ = self.run_ok(conf)
        if date3 != date1:
            self.skipTest("the UTC date changed between the runs")
        m3 = self.load_manifest(date3 + ".3")
        self.check_manifest_header(m3, log3)
        self.assertEqual(self.load_manifest(second), m2)


class TestStartOrder(BackupChecks):
    """Across collections the largest starts first, so that with [limits]
    parallel the cores stay busy to the end; the manifest and the blobs
    keep the configuration's order and names."""

    # In the configuration smallest first: the order a run used to start in.
    SIZES = (("small", 20), ("medium", 400), ("large", 4000))
    LARGEST_FIRST = ["large", "medium", "small"]

    def seed_sizes(self):
        for i, (name, n) in enumerate(self.SIZES):
            self.db[name].insert_many(list(h.gen_users(n, seed=60 + i)))
        return [name for name, _ in self.SIZES]

    @staticmethod
    def started(log):
        """The collections in the order their data exports started, as the
        supervisor logged each start (at debug)."""
        order = []
        for m in re.finditer(r"collection (\S+): starting export to ", log):
            if m.group(1) not in order:
                order.append(m.group(1))
        return order

    def run_one_at_a_time(self, collections, env=None):
        conf = self.write_config(collections=collections, limits={"parallel": 1},
                                 log={"level": "debug"})
        before = h.utc_today()
        rc, log, _ = self.run_backup(conf, env=env)
        self.assertExit(rc, 0, log)
        date = next((d for d in sorted({before, h.utc_today()})
                     if self.blobs.names(h.manifest_blob_name(d))), None)
        self.assertIsNotNone(date, "no manifest; log:\n%s" % log)
        manifest = self.load_manifest(date)
        self.check_manifest_header(manifest, log)
        return date, log, manifest

    def check_all(self, colls, date, manifest, log):
        for coll in colls:
            with self.subTest(collection=coll):
                self.check_collection(coll, date, manifest, log)

    def test_largest_first(self):
        """Configured smallest first, with parallel = 1: the exports start
        largest first, the manifest lists the configuration's order."""
        colls = self.seed_sizes()
        date, log, manifest = self.run_one_at_a_time(", ".join(colls))
        self.assertEqual(self.started(log), self.LARGEST_FIRST, log)
        self.assertEqual([e.get("name") for e in manifest["collections"]], colls)
        self.check_all(colls, date, manifest, log)

    def test_largest_first_all_collections(self):
        """collections = *: the same, and the manifest keeps the order the
        database lists its collections in."""
        colls = self.seed_sizes()
        date, log, manifest = self.run_one_at_a_time("*")
        self.assertEqual(self.started(log), self.LARGEST_FIRST, log)
        listed = [n for n in self.db.list_collection_names() if not n.startswith("system.")]
        names = [e.get("name") for e in manifest["collections"]]
        self.assertEqual(sorted(names), sorted(colls))
        if self.mongo.is_fake:
            # The fake lists in creation order; mongod promises no order.
            self.assertEqual(names, listed)
        self.check_all(colls, date, manifest, log)

    def test_document_count_when_collstats_is_refused(self):
        """collStats refused (as to a user without the privilege): the
        document counts order the collections instead."""
        self.require_faults()
        colls = self.seed_sizes()
        self.mongo.fault(error_on=["collStats"])
        date, log, manifest = self.run_one_at_a_time(", ".join(colls))
        self.assertEqual(self.started(log), self.LARGEST_FIRST, log)
        self.check_all(colls, date, manifest, log)

    def test_no_estimates_configuration_order(self):
        """Neither collStats nor count answers: every size is unknown, the
        run starts the collections in configuration order and backs up
        every one of them."""
        self.require_faults()
        colls = self.seed_sizes()
        self.mongo.fault(error_on=["collStats", "count"])
        date, log, manifest = self.run_one_at_a_time(", ".join(colls))
        self.assertGreaterEqual(self.mongo.stats().get("faultsFired", 0), len(colls))
        self.assertEqual(self.started(log), colls, log)
        self.assertEqual([e.get("name") for e in manifest["collections"]], colls)
        self.check_all(colls, date, manifest, log)

    def test_lister_failure_configuration_order(self):
        """export-collection --list fails for a configured list: a warning,
        and the run backs up everything in configuration order."""
        colls = self.seed_sizes()
        libexec = os.path.join(self.tmp, "libexec")
        os.makedirs(libexec)
        for name in h.CHILD_PROGRAMS:
            path = os.path.join(libexec, name)
            with open(path, "w") as f:
                if name == "export-collection":
                    f.write('#!/bin/sh\n'
                            'for a in "$@"; do [ "$a" = --list ] && exit 1; done\n'
                            'exec "%s" "$@"\n' % h.program(name))
                else:
                    f.write('#!/bin/sh\nexec "%s" "$@"\n' % h.program(name))
            os.chmod(path, 0o755)
        date, log, manifest = self.run_one_at_a_time(", ".join(colls),
                                                     env={"MAB_LIBEXECDIR": libexec})
        self.assertLogMatches(log, r"warn.*no size estimates.*configuration order",
                              "warning that the sizes are unknown")
        self.assertEqual(self.started(log), colls, log)
        self.assertEqual([e.get("name") for e in manifest["collections"]], colls)
        self.check_all(colls, date, manifest, log)


if __name__ == "__main__":
    h.main()
