#!/usr/bin/python3
"""test_databases.py - several databases in one run.

[mongodb] databases = a, b (and = *) with [mongodb.NAME] collections, the
default blob_path's {database}: two databases with a collection of the
same name land in distinct blobs, one manifest lists every database and
collection with its type, and restore takes one database (--db), one
collection (--collection DB.COLL), another name (--to-db) or everything,
byte for byte; --to-dir writes mongodump's layout, one directory per
database.  Runs against the fake or a real mongod (MAB_TEST_MONGODB_URI).

The kinds mongodump knows: a view (its definition only), a time-series
collection (its buckets, system.buckets.NAME), capped, clustered and
collated collections (their options), users and roles (users_and_roles =
yes); system collections left out.  Where MongoDB's own mongodump and
mongorestore are found (MAB_MONGO_TOOLS=DIR, else PATH) our metadata is
compared with mongodump's field by field and our --to-dir output goes
through mongorestore; without them those checks skip.
"""
import gzip
import json
import os
import shutil
import subprocess
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
        # Each line names the database where the set has several.
        self.assertRegex(out, r"(?m)^  %s\.users +ok " % self.db_a)
        self.assertRegex(out, r"(?m)^  %s\.users +ok " % self.db_b)

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


def mongo_tool(name):
    d = os.environ.get("MAB_MONGO_TOOLS")
    path = os.path.join(d, name) if d else shutil.which(name)
    return path if path and os.access(path, os.X_OK) else None


class TestKinds(h.BackupTestCase):
    """One database with every kind mongodump treats apart."""

    def setUp(self):
        super().setUp()
        db = self.db
        h.seed_users(db, "users", 30, seed=5)
        db.command("create", "adults", viewOn="users",
                   pipeline=[{"$match": {"age": {"$gte": 18}}}])
        db.create_collection("capped", capped=True, size=65536, max=500)
        db["capped"].insert_many([{"i": i} for i in range(20)])
        db.create_collection("clustered", clusteredIndex={"key": {"_id": 1}, "unique": True})
        db["clustered"].insert_many([{"_id": i, "x": i * i} for i in range(10)])
        from pymongo.collation import Collation
        db.create_collection("collated", collation=Collation(locale="fr"))
        db["collated"].insert_many([{"_id": i, "n": i} for i in range(5)])
        try:
            db.create_collection("ts", timeseries={"timeField": "t", "metaField": "m",
                                                   "granularity": "seconds"})
        except Exception as e:   # a server or fake without time-series
            self.skipTest("no time-series collections here: %s" % e)
        import datetime
        t0 = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
        db["ts"].insert_many([{"t": t0 + datetime.timedelta(seconds=i), "m": i % 3, "v": i}
                              for i in range(50)])
        db.command("createRole", "reader", privileges=[
            {"resource": {"db": self.database, "collection": "users"}, "actions": ["find"]}],
            roles=[])
        db.command("createUser", "alice", pwd="s3cret-alice",
                   roles=[{"role": "reader", "db": self.database}])
        self.addCleanup(self._drop_auth)

    def _drop_auth(self):
        db = self.mongo.client()[self.database]
        for cmd in ("dropAllUsersFromDatabase", "dropAllRolesFromDatabase"):
            try:
                db.command(cmd, 1)
            except Exception:
                pass

    def auth_docs(self, coll):
        admin = self.mongo.client()["admin"]
        return sorted((d for d in admin[coll].find({"db": self.database})),
                      key=lambda d: d["_id"])

    def config(self, **kw):
        return self.write_config(collections=None, azure={"blob_path": None},
                                 mongodb={"users_and_roles": "yes"}, **kw)

    def backup(self, conf):
        rc, log, _e = self.run_backup(conf, timeout=120)
        self.assertExit(rc, 0, log)
        name = [n for n in self.blobs.names("") if n.endswith("/manifest.json")][0]
        folder = name[:-len("manifest.json")]
        return folder, json.loads(self.blobs.download(name)), log

    def test_backup_and_restore_every_kind(self):
        conf = self.config()
        folder, m, log = self.backup(conf)
        db = self.database
        kinds = {e["name"]: e for e in m["collections"]}
        self.assertEqual({n: e["type"] for n, e in kinds.items()},
                         {"users": "collection", "adults": "view", "capped": "collection",
                          "clustered": "collection", "collated": "collection",
                          "ts": "timeseries", "$admin.system.users": "users",
                          "$admin.system.roles": "roles"}, log)
        self.assertNotIn("blob", kinds["adults"])
        self.assertEqual(kinds["ts"]["blob"], "%s%s_system.buckets.ts.bson.gz" % (folder, db))
        self.assertEqual(kinds["ts"]["metadata_blob"], "%s%s_ts.metadata.json.gz" % (folder, db))
        self.assertEqual(kinds["$admin.system.users"]["documents"], 1)
        self.assertEqual(kinds["$admin.system.roles"]["documents"], 1)
        names = [n for n in self.blobs.names(folder)]
        self.assertFalse([n for n in names if "system.views" in n], names)

        meta = {n: json.loads(gzip.decompress(self.blobs.download(e["metadata_blob"])))
                for n, e in kinds.items() if e.get("metadata_blob")}
        self.assertEqual(meta["adults"]["type"], "view")
        self.assertEqual(meta["adults"]["indexes"], [])
        self.assertEqual(meta["adults"]["options"]["viewOn"], "users")
        self.assertEqual(meta["ts"]["type"], "timeseries")
        self.assertEqual(meta["ts"]["options"]["timeseries"]["timeField"], "t")
        self.assertIs(meta["capped"]["options"]["capped"], True)
        self.assertEqual(meta["clustered"]["options"]["clusteredIndex"]["key"],
                         {"_id": {"$numberInt": "1"}})  # canonical Extended JSON
        self.assertEqual(meta["collated"]["options"]["collation"]["locale"], "fr")
        # The buckets, byte for byte.
        raw_buckets, n_buckets = h.read_raw(self.db, "system.buckets.ts")
        self.assertGreater(n_buckets, 0)
        self.assertEqual(gzip.decompress(self.blobs.download(kinds["ts"]["blob"])), raw_buckets)

        rc, out, err, _t = h.run_program([h.CTL, "-c", conf, "verify", "latest"], timeout=120)
        self.assertEqual(rc, 0, out + (err if isinstance(err, bytes) else err.encode()))

        # --to-dir: mongodump's layout.
        out_dir = os.path.join(self.tmp, "dir")
        rc, out, err, _t = h.run_program([h.CTL, "-c", conf, "restore", "latest",
                                          "--users-and-roles", "--to-dir", out_dir], timeout=120)
        self.assertEqual(rc, 0, out + (err if isinstance(err, bytes) else err.encode()))
        files = sorted(os.listdir(os.path.join(out_dir, db)))
        self.assertEqual(files, sorted([
            "$admin.system.roles.bson", "$admin.system.users.bson", "adults.metadata.json",
            "capped.bson", "capped.metadata.json", "system.buckets.ts.bson",
            "clustered.bson", "clustered.metadata.json", "collated.bson",
            "collated.metadata.json",
            "ts.metadata.json", "users.bson", "users.metadata.json"]))
        with open(os.path.join(out_dir, db, "system.buckets.ts.bson"), "rb") as f:
            self.assertEqual(f.read(), raw_buckets)

        # Into MongoDB: drop what is there, then restore everything.
        before_users, before_roles = self.auth_docs("system.users"), self.auth_docs("system.roles")
        src_users = h.read_raw(self.db, "users")[0]
        self._drop_auth()
        src_clustered = h.read_raw(self.db, "clustered")[0]
        for coll in ("users", "adults", "capped", "ts", "clustered", "collated"):
            self.db.drop_collection(coll)
        self.assertEqual(self.auth_docs("system.users"), [])
        rc, out, err, _t = h.run_program([h.CTL, "-c", conf, "restore", "latest",
                                          "--users-and-roles", "--to-uri", self.mongo.uri],
                                         timeout=120)
        self.assertEqual(rc, 0, out + (err if isinstance(err, bytes) else err.encode()))
        self.assertEqual(self.auth_docs("system.users"), before_users)
        self.assertEqual(self.auth_docs("system.roles"), before_roles)
        self.assertEqual(h.read_raw(self.db, "users")[0], src_users)
        self.assertEqual(h.read_raw(self.db, "system.buckets.ts")[0], raw_buckets)
        info = {c["name"]: c for c in self.db.list_collections()}
        self.assertEqual(info["adults"]["type"], "view")
        self.assertEqual(info["adults"]["options"]["viewOn"], "users")
        self.assertEqual(info["ts"]["type"], "timeseries")
        self.assertIs(info["capped"]["options"].get("capped"), True)
        self.assertIn("clusteredIndex", info["clustered"]["options"])
        self.assertEqual(h.read_raw(self.db, "clustered")[0], src_clustered)
        self.assertEqual(info["collated"]["options"]["collation"]["locale"], "fr")
        self.assertEqual(sorted(d["age"] for d in self.db["adults"].find()),
                         sorted(d["age"] for d in self.db["users"].find()
                                if d.get("age", 0) >= 18))

    def test_users_and_roles_need_asking(self):
        conf = self.config()
        self.backup(conf)
        out_dir = os.path.join(self.tmp, "dir")
        rc, out, err, _t = h.run_program([h.CTL, "-c", conf, "restore", "latest",
                                          "--to-dir", out_dir], timeout=120)
        self.assertEqual(rc, 0, out)
        self.assertFalse([f for f in os.listdir(os.path.join(out_dir, self.database))
                          if f.startswith("$admin")])
        rc, out, err, _t = h.run_program([h.CTL, "-c", conf, "restore", "latest",
                                          "--users-and-roles", "--to-db", "elsewhere",
                                          "--to-uri", self.mongo.uri], timeout=120)
        self.assertEqual(rc, 1, out)
        self.assertIn(b"users and roles belong to database", out + (
            err if isinstance(err, bytes) else err.encode()))

    def test_metadata_as_mongodump_writes_it(self):
        """Field by field against mongodump's own files, for each kind;
        then mongorestore reads our --to-dir output."""
        mongodump, mongorestore = mongo_tool("mongodump"), mongo_tool("mongorestore")
        if mongodump is None or mongorestore is None:
            self.skipTest("mongodump/mongorestore not found (MAB_MONGO_TOOLS or PATH)")
        conf = self.config()
        self.backup(conf)
        ours = os.path.join(self.tmp, "ours")
        rc, out, err, _t = h.run_program([h.CTL, "-c", conf, "restore", "latest",
                                          "--to-dir", ours], timeout=120)
        self.assertEqual(rc, 0, out)
        theirs = os.path.join(self.tmp, "theirs")
        p = subprocess.run([mongodump, "--uri", self.mongo.uri, "--db", self.database,
                            "--out", theirs], capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        db = self.database
        for name in ("users", "adults", "capped", "ts", "clustered", "collated"):
            with open(os.path.join(theirs, db, name + ".metadata.json")) as f:
                want = json.load(f)
            with open(os.path.join(ours, db, name + ".metadata.json")) as f:
                got = json.load(f)
            self.assertEqual(got, want, name)
        for name in ("users.bson", "capped.bson", "system.buckets.ts.bson", "clustered.bson",
                     "collated.bson"):
            with open(os.path.join(theirs, db, name), "rb") as f, \
                    open(os.path.join(ours, db, name), "rb") as g:
                self.assertEqual(g.read(), f.read(), name)
        # bsondump reads each of our files, document for document.
        bsondump = mongo_tool("bsondump")
        if bsondump is not None:
            for name in ("users", "capped", "clustered"):
                p = subprocess.run([bsondump, "--quiet", os.path.join(ours, db, name + ".bson")],
                                   capture_output=True, timeout=60)
                self.assertEqual(p.returncode, 0, p.stderr.decode())
                want = self.db[name].count_documents({})
                self.assertEqual(len(p.stdout.decode().splitlines()), want, name)
        target = h.unique_name("dbm")
        self.addCleanup(self.mongo.drop_database, target)
        p = subprocess.run([mongorestore, "--uri", self.mongo.uri, "--nsFrom", db + ".*",
                            "--nsTo", target + ".*", os.path.join(ours)],
                           capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        client = self.mongo.client()
        self.assertEqual(h.read_raw(client[target], "users")[0], h.read_raw(self.db, "users")[0])


class TestFoundAtEachRun(DatabasesCase):
    """databases = * and collections = * are resolved at each run: what
    came or went since the daemon's previous run is logged, not an error,
    and each manifest lists what its run found."""

    def test_new_and_gone_collections_are_reported(self):
        import signal
        import time
        sock_conf = self.config(mongodb={"databases": "*"},
                                schedule={"cron": "0 0 29 2 *", "catch_up": "no"})
        r = self.start_backup(sock_conf, args=["-f"])
        self.addCleanup(lambda: r.proc.poll() is None and (os.kill(r.pid, signal.SIGTERM),
                                                         r.proc.wait(20)))
        deadline = time.monotonic() + 20
        while self.ctl(sock_conf, "status")[0] != 0 and time.monotonic() < deadline:
            time.sleep(0.1)

        def run_once():
            rc, out, err = self.ctl(sock_conf, "run", "--wait")
            self.assertEqual(rc, 0, "%s%s\n%s" % (out, err, r.log()))
            names = [n for n in self.blobs.names("") if n.endswith("/manifest.json")]
            newest = max(names, key=lambda n: json.loads(self.blobs.download(n))["started"]
                         + n)
            return json.loads(self.blobs.download(newest))

        m1 = run_once()
        found1 = {(e["database"], e["name"]) for e in m1["collections"]}
        self.assertIn((self.db_b, "events"), found1)
        client = self.mongo.client()
        client[self.db_b].drop_collection("events")
        h.seed_users(client[self.db_a], "orders", 5, seed=9)
        time.sleep(1.1)    # a set of its own, by its start second
        m2 = run_once()
        found2 = {(e["database"], e["name"]) for e in m2["collections"]}
        self.assertIn((self.db_a, "orders"), found2)
        self.assertNotIn((self.db_b, "events"), found2)
        self.assertTrue(m2["complete"], m2)
        log = r.log()
        self.assertRegex(log, r"notice: run \S+: \d+ new since the last run: .*%s\.orders"
                         % self.db_a)
        self.assertRegex(log, r"notice: run \S+: \d+ gone since the last run: .*%s\.events"
                         % self.db_b)


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
