#!/usr/bin/python3
"""test_databases.py - several databases in one run.

[mongodb] databases = a, b (and = *) with [mongodb.NAME] collections, the
default blob_path's {database}: two databases with a collection of the
same name land in distinct blobs, one manifest lists every database and
collection with its type, and restore takes one database (--db), one
collection (--collection DB.COLL), another name (--to-db) or everything,
byte for byte; --to-dir writes mongodump's layout, one directory per
database.  Runs against the fake or a real mongod (MAB_TEST_MONGODB_URI).
"""
import gzip
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import harness as h  # noqa: E402


def setUpModule():
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


class DatabasesCase(h.BackupTestCase):

    def setUp(self):
        super().setUp()
        self.db_a = self.database
        self.db_b = h.unique_name("dbb")
        self.addCleanup(self.mongo.drop_database, self.db_b)
        client = self.mongo.client()
        # users in both, with different documents; events only in b.
        h.seed_users(client[self.db_a], "users", 40, seed=1)
        h.seed_users(client[self.db_b], "users", 25, seed=2)
        h.seed_users(client[self.db_b], "events", 30, seed=3)
        self.src = {(db, c): h.read_raw(client[db], c)
                    for db, c in ((self.db_a, "users"), (self.db_b, "users"),
                                  (self.db_b, "events"))}
        self.assertNotEqual(self.src[(self.db_a, "users")][0],
                            self.src[(self.db_b, "users")][0])

    def config(self, **kw):
        mongodb = {"database": None, "collections": None,
                   "databases": "%s, %s" % (self.db_a, self.db_b)}
        mongodb.update(kw.pop("mongodb", {}))
        azure = {"blob_path": None}
        azure.update(kw.pop("azure", {}))
        return self.write_config(mongodb=mongodb, azure=azure, **kw)

    def backup(self, conf):
        rc, log, _e = self.run_backup(conf, timeout=120)
        self.assertExit(rc, 0, log)
        sets = [n for n in self.blobs.names("") if n.endswith("/manifest.json")]
        self.assertEqual(len(sets), 1, sets)
        folder = sets[0][:-len("manifest.json")]
        return folder, json.loads(self.blobs.download(sets[0])), log

    def ctl(self, conf, *args):
        rc, out, err, _t = h.run_program([h.CTL, "-c", conf] + list(args), timeout=180)
        return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace") \
            if isinstance(err, bytes) else err

    def assertDir(self, out_dir, want):
        """want: {(db, coll)}; each DIR/DB/COLL.bson byte-equal to the source."""
        for db, coll in want:
            path = os.path.join(out_dir, db, coll + ".bson")
            self.assertTrue(os.path.exists(path), "%s missing; have %r"
                            % (path, sorted(os.walk(out_dir))))
            with open(path, "rb") as f:
                self.assertEqual(f.read(), self.src[(db, coll)][0], path)
            self.assertTrue(os.path.exists(os.path.join(out_dir, db, coll + ".metadata.json")))
        found = {(os.path.basename(d), f[:-5]) for d, _s, files in os.walk(out_dir)
                 for f in files if f.endswith(".bson")}
        self.assertEqual(found, set(want))


class TestSeveralDatabases(DatabasesCase):

    def test_named_databases_distinct_blobs_one_manifest(self):
        conf = self.config()
        folder, m, log = self.backup(conf)
        blobs = set(self.blobs.names(folder))
        for db, coll in self.src:
            blob = "%s%s_%s.bson.gz" % (folder, db, coll)
            self.assertIn(blob, blobs, log)
            self.assertEqual(gzip.decompress(self.blobs.download(blob)), self.src[(db, coll)][0])
        self.assertEqual(m["format"], 2)
        self.assertEqual(m["databases"], [self.db_a, self.db_b])
        self.assertNotIn("database", m, "one database named for a set of two")
        entries = {(e["database"], e["name"]): e for e in m["collections"]}
        self.assertEqual(set(entries), set(self.src))
        for e in entries.values():
            self.assertEqual((e["type"], e["result"]), ("collection", "ok"), e)
        # The log tells the two users collections apart.
        self.assertIn("collection %s.users: ok" % self.db_a, log)
        self.assertIn("collection %s.users: ok" % self.db_b, log)
        rc, out, err = self.ctl(conf, "verify", "latest")
        self.assertEqual(rc, 0, out + err)

    def test_per_database_collections(self):
        conf = self.config(raw="[mongodb.%s]\ncollections = events\n" % self.db_b)
        folder, m, log = self.backup(conf)
        self.assertEqual({(e["database"], e["name"]) for e in m["collections"]},
                         {(self.db_a, "users"), (self.db_b, "events")}, log)

    def test_all_databases(self):
        conf = self.config(mongodb={"databases": "*"})
        folder, m, log = self.backup(conf)
        names = set(self.mongo.client().list_database_names()) - {"admin", "local", "config"}
        self.assertIn(self.db_a, m["databases"])
        self.assertIn(self.db_b, m["databases"])
        self.assertTrue(set(m["databases"]) <= names, (m["databases"], names))
        for key in self.src:
            self.assertIn(key, {(e["database"], e["name"]) for e in m["collections"]})

    def test_restore_choices(self):
        conf = self.config()
        folder, m, log = self.backup(conf)
        tmp = self.tmp
        # Everything, mongodump's layout.
        rc, out, err = self.ctl(conf, "restore", "latest", "--to-dir", os.path.join(tmp, "all"))
        self.assertEqual(rc, 0, out + err)
        self.assertDir(os.path.join(tmp, "all"), set(self.src))
        # One database.
        rc, out, err = self.ctl(conf, "restore", "latest", "--db", self.db_b,
                                "--to-dir", os.path.join(tmp, "b"))
        self.assertEqual(rc, 0, out + err)
        self.assertDir(os.path.join(tmp, "b"), {(self.db_b, "users"), (self.db_b, "events")})
        # One collection, by DB.COLL; a bare name two databases share is refused.
        rc, out, err = self.ctl(conf, "restore", "latest", "--collection",
                                "%s.users" % self.db_a, "--to-dir", os.path.join(tmp, "one"))
        self.assertEqual(rc, 0, out + err)
        self.assertDir(os.path.join(tmp, "one"), {(self.db_a, "users")})
        rc, out, err = self.ctl(conf, "restore", "latest", "--collection", "users",
                                "--to-dir", os.path.join(tmp, "amb"))
        self.assertEqual(rc, 2, out + err)
        self.assertIn("in 2 databases", err)
        self.assertFalse(os.path.exists(os.path.join(tmp, "amb")))
        # --to-db takes one database.
        rc, out, err = self.ctl(conf, "restore", "latest", "--to-db", "x",
                                "--to-dir", os.path.join(tmp, "x"))
        self.assertEqual(rc, 2, out + err)
        self.assertIn("--to-db takes one database", err)
        # Into MongoDB under another name, byte for byte.
        target = h.unique_name("dbr")
        self.addCleanup(self.mongo.drop_database, target)
        rc, out, err = self.ctl(conf, "restore", "latest", "--db", self.db_b, "--to-db",
                                target, "--to-uri", self.mongo.uri)
        self.assertEqual(rc, 0, out + err)
        client = self.mongo.client()
        for coll in ("users", "events"):
            self.assertEqual(h.read_raw(client[target], coll)[0], self.src[(self.db_b, coll)][0])


class TestDatabaseConfig(DatabasesCase):

    def test_check_refuses_template_without_database(self):
        conf = self.config(azure={"blob_path": "backups/{date}/{collection}.bson.gz"})
        rc, out, err, _t = h.run_program([h.DAEMON, "-t", "-c", conf], timeout=60)
        text = "".join(x.decode("utf-8", "replace") if isinstance(x, bytes) else x
                       for x in (out, err))
        self.assertEqual(rc, 2, text)
        self.assertIn("has no {database}", text)


if __name__ == "__main__":
    h.main()
