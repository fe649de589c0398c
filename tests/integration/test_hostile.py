#!/usr/bin/python3
"""test_hostile.py - restore and verify against hostile storage.

Someone who can write to the container (or a local user who can write
where a restore writes) attacks `mongo-azure-backupctl restore|verify`.
Every hostile set here is built with Microsoft's SDK (harness.Blobs), and
its manifest carries the right hashes and sizes for the blobs it names, so
only the content is hostile:

  * decompression bomb: 2000 valid 1 MB documents in 2 MB of gzip, the
    manifest saying 1 document of 100 bytes (or 3 documents): verify,
    restore --to-dir and --to-uri stop within one block of the manifest's
    counts, name the collection and the limit, and leave no file (only
    what restore made is removed);
  * metadata bomb: 30 manifest entries naming one 61 KB metadata blob that
    inflates to 60 MiB: refused at 16 MiB inflated, one collection at a
    time, the ctl's peak RSS (wait4's ru_maxrss) under 64 MiB; 30 entries
    naming one sound 4 MiB metadata blob restore with the same bound;
  * symbolic links under --to-dir (the database directory, a file, a
    .partial): nothing is written outside DIR;
  * a COLL.bson.partial (or .metadata.json.partial) that restore did not
    create survives a restore;
  * blob names with '..' (which curl would resolve, reading another
    container with the same credentials) or outside the set's folder are
    refused before any request (a recording proxy, tests/fault_proxy.py,
    sees no request for them), by the ctl and by download-blob;
  * database and collection names MongoDB or the file system would not
    take (empty, newline, backslash, space, '$', "system.", NUL, 300
    bytes, a file name past NAME_MAX) are refused before anything is
    written.

Peak RSS is GNU time's %M (wait4's ru_maxrss of the ctl and the helpers it
ran); in a sanitizer build it is not checked (ASan's quarantine holds
freed memory).  Timing: about 10 s.
"""

import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402

CTL = h.CTL
MIB = 1024 * 1024
RSS_LIMIT = 64 * MIB
DATE = "2026-11-27"


def setUpModule():
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


# --------------------------------------------------------------------------
# Data

def gz(data):
    return gzip.compress(data, 6, mtime=0)


def documents(n, seed=0):
    """n small BSON documents back to back."""
    import bson
    return b"".join(bson.encode({"_id": seed * 100000 + i, "name": "user %d" % i,
                                 "tags": ["a", "b"]}) for i in range(n))


def metadata(coll, pad=0):
    """A mongodump metadata.json (with `pad` bytes of an extra field)."""
    m = {"indexes": [{"v": {"$numberInt": "2"}, "key": {"_id": {"$numberInt": "1"}},
                      "name": "_id_"}],
         "uuid": "286a368ba6525d51a69536e438ad285b", "collectionName": coll,
         "type": "collection"}
    text = json.dumps(m)
    if pad:
        text = text[:-1] + ', "pad": "' + "a" * pad + '"}'
    return text.encode()


def bomb(n=2000):
    """(one document, the blob): n valid documents of 1 MB of zeros, each
    its own gzip member of about 1 KB (gzip(1) takes members back to back,
    and so does the restore's decoder)."""
    import bson
    from bson.binary import Binary
    from bson.son import SON
    doc = bson.encode(SON([("_id", 1), ("pad", Binary(b"\0" * 1000000))]))
    return doc, gzip.compress(doc, 9, mtime=0) * n


TIME = "/usr/bin/time"
_SANITIZED = {}


def sanitized(path):
    """True when path was built with ASan or UBSan: its allocator keeps
    freed memory in quarantine, so its RSS says nothing about ours."""
    if path not in _SANITIZED:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            data = b""
        _SANITIZED[path] = b"__asan_init" in data or b"__ubsan_handle_" in data
    return _SANITIZED[path]


def _poll_hwm(pid, peak, stop):
    """Samples VmHWM of pid and its descendants into peak[0] (bytes)."""
    while not stop.is_set():
        for p in [pid] + h.descendants(pid):
            try:
                with open("/proc/%d/status" % p) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak[0] = max(peak[0], int(line.split()[1]) * 1024)
            except OSError:
                pass
        time.sleep(0.005)


def run_measured(argv, timeout=120):
    """Runs argv; (exit code, stdout, stderr, peak RSS in bytes of it or
    any helper it ran, seconds).  The peak comes from GNU time (%M: the
    ru_maxrss wait4 reports, exact), else from sampling VmHWM.  Not from
    our own wait4: the ru_maxrss of a child we fork counts this Python
    process's pages, shared until the exec."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(mode="r") as rss_file:
        use_time = os.access(TIME, os.X_OK)
        if use_time:
            argv = [TIME, "-f", "%M", "-o", rss_file.name] + list(argv)
        peak, stop = [0], threading.Event()
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                             env=h.daemon_env())
        sampler = None
        if not use_time:
            sampler = threading.Thread(target=_poll_hwm, args=(p.pid, peak, stop), daemon=True)
            sampler.start()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            h.kill_tree(p.pid, grace=1)
            p.wait(10)
            raise AssertionError("%r did not finish in %s s" % (argv, timeout))
        finally:
            stop.set()
            if sampler is not None:
                sampler.join(5)
        elapsed = time.monotonic() - t0
        if use_time:
            rss_file.seek(0)
            peak[0] = int(rss_file.read().split()[-1]) * 1024
        out.seek(0)
        err.seek(0)
        return (p.returncode, out.read().decode("utf-8", "replace"),
                err.read().decode("utf-8", "replace"), peak[0], elapsed)


def files_under(root):
    """Every entry below root that is not a directory (links included)."""
    found = []
    for d, dirs, files in os.walk(root):
        found += [os.path.join(d, f) for f in files]
        found += [os.path.join(d, x) for x in dirs if os.path.islink(os.path.join(d, x))]
    return sorted(found)


# --------------------------------------------------------------------------
# Test case

class HostileTestCase(h.BackupTestCase):

    def setUp(self):
        super().setUp()
        self.blobs.create_container()
        self.conf = self.write_config(collections="users")
        self.target = h.ENV["mongo"]
        self.target_db_name = h.unique_name("rs")
        self.tdb = self.target.client()[self.target_db_name]
        self.addCleanup(self.target.drop_database, self.target_db_name)

    def put_set(self, colls, date=DATE, database=None, blobs=None):
        """Uploads a set: for each collection its data (gzip'd), its
        metadata (gzip'd; None: no metadata blob) and a manifest entry with
        the right hashes and sizes; the entry's counts, names and blob names
        may be given (documents, bson_bytes, blob, metadata_blob).  Returns
        the set's folder."""
        blobs = blobs or self.blobs
        folder = "backups/%s/" % date
        entries = []
        for c in colls:
            name = c["name"]
            safe = re.sub(r"[^A-Za-z0-9._-]", lambda m: "%%%02X" % ord(m.group()), name)[:60]
            data = c["data"]
            blob = c.get("blob", folder + "tralivali_%s.bson.gz" % safe)
            if c.get("upload", True):
                blobs.upload(blob, data, content_type="application/gzip")
            e = {"name": name, "result": "ok", "blob": blob,
                 "documents": c["documents"], "bson_bytes": c["bson_bytes"],
                 "gzip_bytes": len(data), "sha256": h.sha256_hex(data),
                 "md5": h.md5_b64(data), "seconds": 0.1}
            meta = c.get("meta", gz(metadata(name)))
            if meta is not None:
                mblob = c.get("metadata_blob", folder + "tralivali_%s.metadata.json.gz" % safe)
                if c.get("upload_meta", True):
                    blobs.upload(mblob, meta, content_type="application/gzip")
                e["metadata_blob"] = mblob
            entries.append(e)
        m = {"format": 1, "tool": "mongo-azure-backup", "version": "0.1.0",
             "run_id": "hostile-%s" % date, "host": "attacker",
             "database": self.database if database is None else database, "set": folder,
             "started": "%sT03:00:00Z" % date, "finished": "%sT03:01:00Z" % date,
             "complete": True, "collections": entries}
        blobs.upload(folder + "manifest.json", json.dumps(m).encode(),
                     content_type="application/json")
        return folder

    def plain(self, name, n=5, seed=0, **kw):
        raw = documents(n, seed)
        c = {"name": name, "data": gz(raw), "documents": n, "bson_bytes": len(raw)}
        c.update(kw)
        return c

    def ctl(self, *args, conf=None, timeout=120):
        rc, out, err, _t = h.run_program([CTL, "-c", conf or self.conf] + list(args),
                                         timeout=timeout)
        return rc, out.decode("utf-8", "replace"), err

    def assertLine(self, text, pattern, what):
        if not re.search(pattern, text, re.M):
            self.fail("no line %s (/%s/) in:\n%s" % (what, pattern, text))

    def assertSmall(self, rss, what):
        """Peak RSS under RSS_LIMIT (not measured in a sanitizer build)."""
        if sanitized(CTL):
            return
        self.assertLess(rss, RSS_LIMIT, "%s: peak RSS %.1f MiB" % (what, rss / MIB))

    def assertFailed(self, rc, out, err, what):
        self.assertEqual(rc, 1, "%s: exit %s\nstdout:\n%s\nstderr:\n%s" % (what, rc, out, err))


# --------------------------------------------------------------------------
# 1. Decompression bomb

class TestDecompressionBomb(HostileTestCase):
    """2000 valid 1 MB documents in 2 MB of gzip.  A: the manifest says 1
    document of 100 bytes, so the first document's length field is already
    too much; B: it says 3 documents of their true size, so the fourth is."""

    def put_bombs(self):
        doc, blob = bomb()
        self.doc_len = len(doc)
        self.blob_len = len(blob)
        self.put_set([{"name": "users", "data": blob, "documents": 1, "bson_bytes": 100}],
                     date="2026-11-01")
        self.put_set([{"name": "users", "data": blob, "documents": 3,
                       "bson_bytes": 3 * len(doc)}], date="2026-11-02")

    def limit_a(self):
        return (r"the blob holds more than the 100 BSON bytes its manifest entry records: "
                r"document 1, at BSON byte 0, is %d bytes long" % self.doc_len)

    def limit_b(self):
        return (r"the blob holds more than the 3 documents its manifest entry records: "
                r"document 4 starts at BSON byte %d" % (3 * self.doc_len))

    def test_verify_stops_at_the_manifests_counts(self):
        self.put_bombs()
        for date, limit, docs in (("2026-11-01", self.limit_a(), 0),
                                  ("2026-11-02", self.limit_b(), 3)):
            with self.subTest(set=date):
                rc, out, err, rss, secs = run_measured(
                    [CTL, "-c", self.conf, "verify", date])
                self.assertFailed(rc, out, err, "verify")
                self.assertLine(out, r"^\s+users\s+CORRUPT\s+stopped: %s" % limit,
                                "naming the collection and the limit")
                self.assertSmall(rss, "verify %s" % date)
                self.assertLess(secs, 30)
                rec = json.loads(self.blobs.download("backups/%s/verification.json" % date))
                c = rec["collections"][0]
                self.assertEqual((c["name"], c["result"], c["documents"]),
                                 ("users", "corrupt", docs))
                self.assertEqual(c["bson_bytes"], docs * self.doc_len)
                # Within one block: the decoder stopped in the chunk that
                # crossed the limit, not at the end of the 2 MB blob.
                self.assertLess(c["gzip_bytes"], 64 * 1024 + docs * 2048,
                                "read %d of %d compressed bytes" % (c["gzip_bytes"],
                                                                    self.blob_len))

    def test_restore_to_dir_stops_and_leaves_nothing(self):
        self.put_bombs()
        out_dir = os.path.join(self.tmp, "dump")
        dbdir = os.path.join(out_dir, self.database)
        os.makedirs(dbdir)
        # The operator's own file: restore removes only what it made.
        with open(os.path.join(dbdir, "notes.txt"), "w") as f:
            f.write("mine\n")
        for date, limit, docs in (("2026-11-01", self.limit_a(), 0),
                                  ("2026-11-02", self.limit_b(), 3)):
            with self.subTest(set=date):
                rc, out, err, rss, secs = run_measured(
                    [CTL, "-c", self.conf, "restore", date, "--to-dir", out_dir])
                self.assertFailed(rc, out, err, "restore --to-dir")
                self.assertLine(out, r"^\s+users\s+FAILED\s+nothing kept \(%d documents had "
                                r"been read; the partial file was removed\): stopped: %s"
                                % (docs, limit), "naming the collection and the limit")
                self.assertEqual(files_under(out_dir), [os.path.join(dbdir, "notes.txt")])
                self.assertSmall(rss, "restore --to-dir %s" % date)
                self.assertLess(secs, 30)
        with open(os.path.join(dbdir, "notes.txt")) as f:
            self.assertEqual(f.read(), "mine\n")

    def test_restore_to_uri_stops_and_inserts_nothing_more(self):
        self.put_bombs()
        for date, limit, docs in (("2026-11-01", self.limit_a(), 0),
                                  ("2026-11-02", self.limit_b(), 3)):
            with self.subTest(set=date):
                self.target.drop_database(self.target_db_name)
                rc, out, err, rss, secs = run_measured(
                    [CTL, "-c", self.conf, "restore", date, "--to-uri", self.target.uri,
                     "--to-db", self.target_db_name])
                self.assertFailed(rc, out, err, "restore --to-uri")
                m = re.search(r"^\s+users\s+FAILED\s+(\d+) inserted, 0 failed, 0 indexes "
                              r"created: stopped: %s" % limit, out, re.M)
                self.assertTrue(m, "no failure line naming the limit:\n%s\n%s" % (out, err))
                inserted = int(m.group(1))
                self.assertLessEqual(inserted, docs)
                self.assertEqual(self.tdb["users"].count_documents({}), inserted)
                self.assertSmall(rss, "restore --to-uri %s (ctl and helpers)" % date)
                self.assertLess(secs, 30)


# --------------------------------------------------------------------------
# 2. Memory bounded whatever the manifest names

class TestMetadataMemory(HostileTestCase):

    N = 30

    def test_metadata_bomb_named_thirty_times(self):
        """A 61 KB metadata blob that inflates to 60 MiB, named by 30
        entries: refused at 16 MiB, never held twice."""
        big = gz(metadata("x", pad=60 * MIB))
        self.assertLess(len(big), 100 * 1024)
        mblob = "backups/%s/tralivali_big.metadata.json.gz" % DATE
        self.blobs.upload(mblob, big, content_type="application/gzip")
        self.put_set([self.plain("c%02d" % i, n=1, seed=i, meta=big, metadata_blob=mblob,
                                 upload_meta=False) for i in range(self.N)])
        out_dir = os.path.join(self.tmp, "dump")
        refusal = (r"metadata blob %s: more than 16777216 bytes once uncompressed"
                   % re.escape(mblob))
        for what, args in (("--to-dir", ["--to-dir", out_dir]),
                           ("--to-uri", ["--to-uri", self.target.uri, "--to-db",
                                         self.target_db_name]),
                           ("verify", None)):
            with self.subTest(target=what):
                argv = [CTL, "-c", self.conf] + (["restore", DATE] + args if args else
                                                 ["verify", "--no-record", DATE])
                rc, out, err, rss, secs = run_measured(argv, timeout=180)
                self.assertFailed(rc, out, err, what)
                for i in range(self.N):
                    self.assertLine(out, r"^\s+c%02d\s.*%s" % (i, refusal),
                                    "refusing c%02d's metadata" % i)
                if args:
                    self.assertLine(out, r"^30 of 30 collections cannot be restored as asked; "
                                    r"nothing was written", "nothing written")
                self.assertSmall(rss, what)
        self.assertFalse(os.path.exists(out_dir))
        self.assertEqual(self.tdb.list_collection_names(), [])

    def test_thirty_collections_share_a_large_metadata(self):
        """One sound 4 MiB metadata.json named by 30 entries restores with
        the same bound: each collection's is read when its turn comes."""
        meta = gz(metadata("shared", pad=4 * MIB))
        mblob = "backups/%s/tralivali_shared.metadata.json.gz" % DATE
        self.blobs.upload(mblob, meta, content_type="application/gzip")
        self.put_set([self.plain("c%02d" % i, n=2, seed=i, meta=meta, metadata_blob=mblob,
                                 upload_meta=False) for i in range(self.N)])
        rc, out, err, rss, secs = run_measured(
            [CTL, "-c", self.conf, "restore", DATE, "--to-uri", self.target.uri, "--to-db",
             self.target_db_name], timeout=180)
        self.assertEqual(rc, 0, out + err)
        self.assertLine(out, r"^restored 30 of 30 collections", "all restored")
        self.assertEqual(len(self.tdb.list_collection_names()), self.N)
        self.assertSmall(rss, "restore --to-uri of 30 collections")


# --------------------------------------------------------------------------
# 3 and 4. What restore --to-dir finds below DIR

class TestTargetDirectory(HostileTestCase):

    def setUp(self):
        super().setUp()
        self.put_set([self.plain("users", n=20), self.plain("other", n=3, seed=1)])
        self.out = os.path.join(self.tmp, "dump")
        self.dbdir = os.path.join(self.out, self.database)
        self.elsewhere = os.path.join(self.tmp, "elsewhere")
        os.makedirs(self.elsewhere)
        os.makedirs(self.out)

    def restore_dir(self, *extra):
        return self.ctl("restore", DATE, "--to-dir", self.out, *extra)

    def test_database_directory_that_is_a_link(self):
        os.symlink(self.elsewhere, self.dbdir)
        for extra in (["--dry-run"], []):
            with self.subTest(args=extra):
                rc, out, err = self.restore_dir(*extra)
                self.assertFailed(rc, out, err, "restore")
                self.assertLine(out, r"^\s+users\s.*%s is a symbolic link; restore writes only "
                                r"into a directory of its own" % re.escape(self.dbdir),
                                "refusing the link")
                self.assertEqual(os.listdir(self.elsewhere), [], "written through the link")
        self.assertTrue(os.path.islink(self.dbdir))
        # A dangling one is no better.
        os.unlink(self.dbdir)
        os.symlink(os.path.join(self.elsewhere, "made-by-restore"), self.dbdir)
        rc, out, err = self.restore_dir()
        self.assertFailed(rc, out, err, "restore")
        self.assertLine(out, r"is a symbolic link", "refusing the dangling link")
        self.assertEqual(os.listdir(self.elsewhere), [])

    def test_files_that_are_links(self):
        os.makedirs(self.dbdir)
        os.symlink(os.path.join(self.elsewhere, "stolen.bson"),
                   os.path.join(self.dbdir, "users.bson"))
        os.symlink(os.path.join(self.elsewhere, "stolen.json"),
                   os.path.join(self.dbdir, "other.metadata.json"))
        rc, out, err = self.restore_dir()
        self.assertFailed(rc, out, err, "restore")
        self.assertLine(out, r"users\.bson exists; restore never overwrites a file", "users")
        self.assertLine(out, r"other\.metadata\.json exists; restore never overwrites a file",
                        "other")
        self.assertEqual(os.listdir(self.elsewhere), [])
        # A link in the place of the temporary file: O_EXCL follows no link.
        for n in ("users.bson", "other.metadata.json"):
            os.unlink(os.path.join(self.dbdir, n))
        os.symlink(os.path.join(self.elsewhere, "via-partial"),
                   os.path.join(self.dbdir, "users.bson.partial"))
        rc, out, err = self.restore_dir()
        self.assertFailed(rc, out, err, "restore")
        self.assertLine(out, r"^\s+users\s+FAILED\s+nothing written: cannot create "
                        r"\S+users\.bson\.partial: File exists", "refusing the link")
        self.assertLine(out, r"^\s+other\s+ok\s", "the other collection")
        self.assertEqual(os.listdir(self.elsewhere), [])
        self.assertTrue(os.path.islink(os.path.join(self.dbdir, "users.bson.partial")),
                        "restore removed a link it did not make")

    def test_planted_partial_files_survive(self):
        os.makedirs(self.dbdir)
        planted = os.path.join(self.dbdir, "users.bson.partial")
        with open(planted, "w") as f:
            f.write("not restore's\n")
        rc, out, err = self.restore_dir()
        self.assertFailed(rc, out, err, "restore")
        self.assertLine(out, r"^\s+users\s+FAILED\s+nothing written: cannot create "
                        r"\S+users\.bson\.partial: File exists \(not restore's to remove",
                        "the refusal")
        self.assertLine(out, r"^\s+other\s+ok\s", "the other collection")
        with open(planted) as f:
            self.assertEqual(f.read(), "not restore's\n", "the planted file changed")
        self.assertFalse(os.path.exists(os.path.join(self.dbdir, "users.bson")))

        # The metadata's temporary name: users.bson was linked by then,
        # and goes again (restore made it); the planted file stays.
        os.unlink(planted)
        for n in os.listdir(self.dbdir):
            os.unlink(os.path.join(self.dbdir, n))
        planted = os.path.join(self.dbdir, "users.metadata.json.partial")
        with open(planted, "w") as f:
            f.write("not restore's either\n")
        rc, out, err = self.restore_dir()
        self.assertFailed(rc, out, err, "restore")
        self.assertLine(out, r"^\s+users\s+FAILED\s+nothing kept .*cannot create "
                        r"\S+users\.metadata\.json\.partial: File exists", "the refusal")
        with open(planted) as f:
            self.assertEqual(f.read(), "not restore's either\n")
        self.assertEqual(sorted(os.listdir(self.dbdir)),
                         ["other.bson", "other.metadata.json", "users.metadata.json.partial"])


# --------------------------------------------------------------------------
# 5. Blob names that leave the set

class TestBlobNames(HostileTestCase):

    def setUp(self):
        super().setUp()
        self.proxy = FaultProxy(upstream_port=self.azurite.port).start()
        self.addCleanup(self.proxy.stop)
        self.pconf = self.write_config(collections="users",
                                       connection_string=self.proxy.connection_string())
        # Another container, holding what the attacker wants read.
        self.other = h.unique_name("backups")
        self.other_blobs = h.Blobs(self.other)
        self.other_blobs.create_container()
        self.secret = self.plain("users", n=7, seed=9)
        self.other_blobs.upload("backups/2026-12-04/tralivali_users.bson.gz",
                                self.secret["data"], content_type="application/gzip")

    def requests(self):
        return [(e["method"], e["path"]) for e in self.proxy.stats()["log"]]

    def check_refused(self, date, blob, why):
        out_dir = os.path.join(self.tmp, "dump-" + date)
        runs = (("verify", ["verify", date]),
                ("--to-dir", ["restore", date, "--to-dir", out_dir]),
                ("--to-uri", ["restore", date, "--to-uri", self.target.uri, "--to-db",
                              self.target_db_name]))
        for what, args in runs:
            with self.subTest(set=date, run=what):
                self.proxy.clear(stats=True)
                rc, out, err = self.ctl(*args, conf=self.pconf)
                self.assertFailed(rc, out, err, what)
                text = out + err
                self.assertIn("blob '%s' is refused: %s" % (blob, why), text)
                reqs = self.requests()
                self.assertTrue(reqs, "the proxy saw nothing at all")
                for method, path in reqs:
                    self.assertNotIn(self.other, path, "%s %s" % (method, path))
                    self.assertNotIn("..", path, "%s %s" % (method, path))
                    # A listing, the manifest, the verification record:
                    # nothing the manifest names was asked for.
                    self.assertTrue(path.endswith("/" + self.container) or
                                    path.endswith("/manifest.json") or
                                    path.endswith("/verification.json"),
                                    "requested %s %s" % (method, path))
        self.assertFalse(os.path.exists(out_dir))
        self.assertEqual(self.tdb.list_collection_names(), [])

    def test_dotdot_leaves_the_container(self):
        blob = "../%s/backups/2026-12-04/tralivali_users.bson.gz" % self.other
        self.put_set([dict(self.secret, blob=blob, upload=False)], date="2026-11-01")
        self.check_refused("2026-11-01", blob, "it is not inside the set's folder")

    def test_dotdot_inside_the_folder(self):
        blob = "backups/2026-11-02/../../../%s/backups/2026-12-04/tralivali_users.bson.gz" \
            % self.other
        self.put_set([dict(self.secret, blob=blob, upload=False)], date="2026-11-02")
        self.check_refused("2026-11-02", blob, "it has a '..' segment")

    def test_metadata_blob_and_other_sets(self):
        meta = "backups/2026-11-03/./tralivali_users.metadata.json.gz"
        self.put_set([self.plain("users", metadata_blob=meta, upload_meta=False)],
                     date="2026-11-03")
        self.check_refused("2026-11-03", meta, "it has a '.' segment")
        # Another set's blob, though it names no dot segment.
        blob = "backups/2026-11-01/tralivali_users.bson.gz"
        self.put_set([dict(self.plain("users"), blob=blob)], date="2026-11-04")
        self.check_refused("2026-11-04", blob, "it is not inside the set's folder")

    def test_download_blob_refuses_dot_segments(self):
        """The helper restore runs refuses such a name too, before any
        request (a server may resolve dot segments itself)."""
        for blob in ("backups/%s/../../../%s/backups/2026-12-04/tralivali_users.bson.gz"
                     % (DATE, self.other), "backups/./x", "backups//x"):
            with self.subTest(blob=blob):
                self.proxy.clear(stats=True)
                rc, out, err, _t = h.run_program([h.program("download-blob"), "-c", self.pconf,
                                                  "--", blob])
                self.assertEqual(rc, 2, err)
                self.assertIn("has an empty, '.' or '..' segment; refused", err)
                self.assertEqual(out, b"")
                self.assertEqual(self.requests(), [])

    def test_latest_says_it_passes_over_a_refused_set(self):
        self.put_set([self.plain("users", n=4)], date="2026-11-01")
        blob = "../%s/backups/2026-12-04/tralivali_users.bson.gz" % self.other
        self.put_set([dict(self.secret, blob=blob, upload=False)], date="2026-11-05")
        rc, out, err = self.ctl("verify", "--no-record", conf=self.pconf)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("warning: passing over backups/2026-11-05/", err)
        self.assertLine(out, r"^backups/2026-11-01/: ok", "verifying the older set")


# --------------------------------------------------------------------------
# 6. Names from a manifest

class TestNames(HostileTestCase):

    BAD_DATABASES = [
        ("", "the database name is empty"),
        ("trali\nvali", "the database name holds a control character (0x0a)"),
        ("trali\\vali", "the database name holds '\\'"),
        ("trali vali", "the database name holds ' '"),
        ("trali/vali", "the database name holds '/'"),
        ("..", "the database name holds '.'"),
        ("d" * 64, "the database name is 64 bytes long"),
    ]
    BAD_COLLECTIONS = [
        ("c" * 300, "the collection name is 300 bytes long"),
        ("a$b", "the collection name holds '$'"),
        ("system.views", "\"system.\" collections are MongoDB's own"),
        ("", "the collection name is empty"),
        ("us\u0000ers", "a collection entry holds a string with a NUL byte"),
    ]

    def assertRefusedBeforeWriting(self, date, why):
        out_dir = os.path.join(self.tmp, "dump-" + date)
        for what, args in (("--to-dir", ["--to-dir", out_dir]),
                           ("--to-uri", ["--to-uri", self.target.uri, "--to-db",
                                         self.target_db_name])):
            with self.subTest(set=date, target=what):
                rc, out, err = self.ctl("restore", date, *args)
                self.assertFailed(rc, out, err, what)
                self.assertIn(why, out + err)
                self.assertFalse(os.path.exists(out_dir), "%s was created" % out_dir)
                self.assertEqual(self.tdb.list_collection_names(), [])
        rc, out, err = self.ctl("verify", "--no-record", date)
        self.assertFailed(rc, out, err, "verify")
        self.assertIn(why, out + err)

    def test_bad_database_names(self):
        for i, (db, why) in enumerate(self.BAD_DATABASES):
            date = "2026-10-%02d" % (i + 1)
            self.put_set([self.plain("users")], date=date, database=db)
            self.assertRefusedBeforeWriting(date, why)
        # The database named on the command line is held to the same rules.
        self.put_set([self.plain("users")], date="2026-10-20")
        rc, out, err = self.ctl("restore", "2026-10-20", "--to-dir", self.tmp, "--to-db",
                                "trali vali")
        self.assertEqual(rc, 2, out + err)
        self.assertIn("--to-db: the database name holds ' '", err)

    def test_bad_collection_names(self):
        for i, (coll, why) in enumerate(self.BAD_COLLECTIONS):
            date = "2026-09-%02d" % (i + 1)
            self.put_set([self.plain("fine"), self.plain(coll, seed=1)], date=date)
            self.assertRefusedBeforeWriting(date, why)

    def test_names_the_file_system_cannot_take(self):
        """240 bytes pass MongoDB's namespace limit with a short database,
        but not NAME_MAX as COLL.metadata.json.partial: refused for
        --to-dir alone, before anything is written."""
        coll = "c" * 240
        self.put_set([self.plain("fine"), self.plain(coll, seed=1)], database="d")
        out_dir = os.path.join(self.tmp, "dump")
        rc, out, err = self.ctl("restore", DATE, "--to-dir", out_dir)
        self.assertFailed(rc, out, err, "--to-dir")
        self.assertLine(out, r"the collection name makes a file name of 262 bytes "
                        r"\(c+\.\.\.\.metadata\.json\.partial\), more than the 255 bytes",
                        "the NAME_MAX refusal")
        self.assertLine(out, r"^1 of 2 collections cannot be restored as asked; nothing was "
                        r"written", "nothing written")
        self.assertFalse(os.path.exists(out_dir))
        rc, out, err = self.ctl("restore", DATE, "--to-uri", self.target.uri, "--to-db",
                                "d", "--dry-run")
        self.assertEqual(rc, 0, out + err)
        # A longer target database makes the namespace too long.
        rc, out, err = self.ctl("restore", DATE, "--to-uri", self.target.uri, "--to-db",
                                "d" * 20, "--dry-run")
        self.assertFailed(rc, out, err, "--to-db of 20 bytes")
        self.assertIn("more than MongoDB's 255-byte namespace", out)


if __name__ == "__main__":
    h.main()
