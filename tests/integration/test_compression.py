#!/usr/bin/python3
"""test_compression.py - every gzip engine built in, end to end.

For each engine (zlib always; libdeflate and ISA-L when configure found
them), streamed in one member and in parallel members: the blob read back
with Microsoft's SDK gunzips (Python's gzip, an independent reader) to
exactly the collection's BSON, the member count is the one the layout
promises, the manifest records engine and level, and our own verify and
restore --to-dir accept the blob.  A MongoDB failure in the middle of a
collection, after several members were uploaded, commits nothing in any
engine.
"""

import gzip
import json
import os
import re
import subprocess
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402

MEMBER = 1 << 20      # GZIP_MEMBER_SIZE in src/lib/gzip_engine.h
DOCS = 5000           # ~4 MB of BSON: several members


def setUpModule():
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


def engines_built_in():
    """What export-collection --help says it has."""
    out = subprocess.run([h.program("export-collection"), "--help"], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"engines built in: ([a-z, ]+)\)", out)
    if not m:
        raise AssertionError("export-collection --help names no engines:\n" + out)
    return [e.strip() for e in m.group(1).split(",")]


def gzip_members(data):
    """The number of gzip members in data (each checked by zlib), or an
    exception when any is bad or data ends inside one."""
    n = 0
    while data:
        d = zlib.decompressobj(16 + 15)
        d.decompress(data)
        if not d.eof:
            raise ValueError("gzip member %d is truncated" % (n + 1))
        data = d.unused_data
        n += 1
    return n


class CompressionTestCase(h.BackupTestCase):

    def seed(self):
        h.seed_users(self.db, "big", DOCS, seed=8)
        self.db["small"].insert_many(list(h.gen_users(40, seed=9)))
        self.db.create_collection("empty")

    def fresh_container(self):
        """The next case's own container: each run starts with none."""
        self.container = h.unique_name("mab")
        self.blobs = h.Blobs(self.container)

    def backup(self, engine, threads, level=None):
        comp = {"engine": engine, "threads": threads}
        if level is not None:
            comp["level"] = level
        conf = self.write_config(collections="big, small, empty", compression=comp)
        rc, log, _e = self.run_backup(conf, timeout=200)
        return conf, rc, log

    def ctl(self, conf, *args):
        rc, out, err, _t = h.run_program([h.CTL, "-c", conf] + list(args), timeout=180)
        return rc, out.decode("utf-8", "replace"), err


class TestEngines(CompressionTestCase):

    def check_engine(self, engine, threads, level, want_level):
        date = h.utc_today()
        conf, rc, log = self.backup(engine, threads, level)
        self.assertExit(rc, 0, log)
        manifest = json.loads(self.blobs.download(h.manifest_blob_name(date)))
        self.assertIs(manifest.get("complete"), True, manifest)
        entries = {c["name"]: c for c in manifest["collections"]}
        for coll in ("big", "small", "empty"):
            blob = self.blobs.download(h.data_blob_name(coll, date))
            want, _n = h.read_raw(self.db, coll)
            got = gzip.decompress(blob)
            if got != want:
                self.fail("%s (%s, %d threads) differs from the source: %s"
                          % (coll, engine, threads, h.describe_bson_difference(got, want)))
            members = gzip_members(blob)
            if threads > 1 or engine == "libdeflate":
                expect = max(1, -(-len(want) // MEMBER))
            else:
                expect = 1
            self.assertEqual(members, expect, "%s: %d gzip members for %d BSON bytes"
                             % (coll, members, len(want)))
            comp = entries[coll].get("compression")
            self.assertEqual(comp, {"engine": engine, "level": want_level,
                                    "threads": threads, "members": expect}, entries[coll])
        # Our own readers, on the same blobs.
        rc, out, err = self.ctl(conf, "verify", "latest")
        self.assertEqual(rc, 0, "verify: %s\n%s" % (out, err))
        out_dir = os.path.join(self.tmp, "dump-%s-%d-%s" % (engine, threads, level))
        rc, out, err = self.ctl(conf, "restore", "latest", "--to-dir", out_dir)
        self.assertEqual(rc, 0, "restore --to-dir: %s\n%s" % (out, err))
        want, _n = h.read_raw(self.db, "big")
        with open(os.path.join(out_dir, self.database, "big.bson"), "rb") as f:
            self.assertTrue(f.read() == want, "restored big.bson differs")

    def engine_cases(self, engine, level, want_level):
        if engine not in engines_built_in():
            self.skipTest("%s is not built in (configure did not find it)" % engine)
        if not self.db.list_collection_names():
            self.seed()
        for threads in (1, 3):
            with self.subTest(threads=threads):
                self.fresh_container()
                self.check_engine(engine, threads, level, want_level)

    def test_zlib(self):
        self.engine_cases("zlib", None, 6)

    def test_zlib_level_1(self):
        self.engine_cases("zlib", 1, 1)

    def test_libdeflate(self):
        self.engine_cases("libdeflate", None, 6)

    def test_libdeflate_level_12(self):
        self.engine_cases("libdeflate", 12, 12)

    def test_isal(self):
        self.engine_cases("isal", None, 1)

    def test_isal_level_0_and_3(self):
        self.engine_cases("isal", 0, 0)
        self.engine_cases("isal", 3, 3)

    def test_default_engine(self):
        """No [compression] at all: libdeflate when built in, else zlib,
        at level 6, threads = the CPUs (at most 8)."""
        self.seed()
        date = h.utc_today()
        conf = self.write_config(collections="big")
        rc, log, _e = self.run_backup(conf, timeout=200)
        self.assertExit(rc, 0, log)
        manifest = json.loads(self.blobs.download(h.manifest_blob_name(date)))
        comp = manifest["collections"][0]["compression"]
        engine = "libdeflate" if "libdeflate" in engines_built_in() else "zlib"
        self.assertEqual((comp["engine"], comp["level"]), (engine, 6), comp)
        self.assertEqual(comp["threads"], min(os.cpu_count(), 8), comp)


class TestFailureCommitsNothing(CompressionTestCase):

    def test_mongodb_fails_mid_collection(self):
        """The second getMore (after ~16 MB, many members, at least one
        8 MiB block staged) closes the connection: no blob in any engine."""
        self.require_faults()
        h.seed_users(self.db, "big", 30000, seed=5)
        for engine in engines_built_in():
            for threads in (1, 2):
                with self.subTest(engine=engine, threads=threads):
                    self.fresh_container()
                    self.mongo.clear_faults()
                    fired = self.mongo.stats().get("faultsFired", 0)
                    self.mongo.fault(close_on_getmore=2)
                    conf = self.write_config(collections="big",
                                             compression={"engine": engine,
                                                          "threads": threads},
                                             limits={"export_retries": 0})
                    rc, log, _e = self.run_backup(conf, timeout=200)
                    self.assertGreater(self.mongo.stats().get("faultsFired", 0), fired,
                                            "the fault never fired; log:\n%s" % log)
                    self.assertExit(rc, 1, log)
                    hits = [n for n in self.blobs.names("backups/")
                            if n.endswith("/tralivali_big.bson.gz")]
                    self.assertEqual(hits, [], "a blob was committed; log:\n%s" % log)


if __name__ == "__main__":
    h.main()
