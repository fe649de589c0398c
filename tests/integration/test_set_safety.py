#!/usr/bin/python3
"""test_set_safety.py - one set per run: a later run never spoils an earlier set.

Every run claims a set folder of its own: the folder blob_path renders
(backups/DATE/) when no manifest.json is there yet, else backups/DATE.2/,
.3/, ...  Its manifest is written first (every collection "pending") and
rewritten however the run ends, with "ok" only for what this run committed.

Here a first, complete run (A) is followed on the same day by a second run
(B) over DIFFERENT documents (other seeds, other counts: a set mixing the
two runs cannot compare equal to either), which ends badly:

  a) MongoDB fails one collection after the other was committed;
  b) the storage refuses the collections' blobs until run_timeout;
  c) `mongo-azure-backupctl cancel` on the service;
  d) SIGTERM of the service;
  e) SIGKILL of the supervisor (mongo-azure-backupd --once);
  f) SIGKILL of a data pipeline's upload-blob (retried: the run may
     complete, but the set is then all of B, never a mix).

After each: A's folder (manifest.json byte for byte, and its blobs) is
unchanged, B wrote only into A's folder + ".2", B's manifest is not
complete (but in f), it records ok/failed per collection (all pending after
e only), `verify latest` and `restore latest --to-dir` take the newest
complete set and give A's documents exactly; `list` shows both.  Then a
third, good run (C) the same day takes the next free folder, becomes latest
and restores exactly C's documents, with C's collection uuids in the
metadata: nothing in C's folder is left from an earlier run.

Also: a first run of a day that fails part-way keeps its committed
collection restorable by itself (restore SET --collection); retention
leaves alone a file a person put in a set folder (notes.txt), in old sets
it deletes and in sets it keeps.

Fault injection needs tests/fake_mongod.py: those tests skip against a real
mongod (MAB_TEST_MONGODB_URI).  The harness checks after every test that no
process is left.
"""

import datetime
import gzip
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import harness as h  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402

NEVER = "0 0 29 2 *"            # Feb 29th: the service never fires by itself
COLLS = ("users", "events")
# Per generation of data: (documents, seed) of users and of events.  users
# fits the first batch (101): no getMore, untouched by getMore faults;
# events needs one getMore, which is where the faults strike.
GENERATIONS = {
    "A": ((80, 101), (300, 102)),
    "B": ((60, 201), (260, 202)),
    "C": ((90, 301), (330, 302)),
}
# "run ID: starting: ... set FOLDER" (the folder ends with '/').
STARTING = re.compile(r"\brun (\S+): starting: [^\n]*?\bset (\S+/)", re.M)
PRUNE = h.program("prune-sets")


def setUpModule():
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


class Run:
    """A backup run as the tests know it: id, set folder, data generation."""

    def __init__(self, run_id, folder, gen, log=""):
        self.run_id, self.folder, self.gen, self.log = run_id, folder, gen, log

    def __repr__(self):
        return "run %s (data %s) in %s" % (self.run_id, self.gen, self.folder)


def suffixed(base, n):
    """backups/D/ for n == 1, backups/D.n/ after."""
    return base if n == 1 else "%s.%d/" % (base[:-1], n)


def uuid_hex(value):
    if isinstance(value, uuid.UUID):
        return value.hex
    return bytes(value).hex()


class SetSafetyCase(h.BackupTestCase):

    def setUp(self):
        super().setUp()
        self.day0 = h.utc_today()
        self.src = {}           # generation -> {coll: (raw BSON, count, uuid hex)}
        self.sock = os.path.join(self.tmp, "control.sock")
        self._dirs = 0
        self._fired_base = 0

    # ------------------------------------------------------------- data
    def seed(self, gen):
        """Replace the collections with generation gen's documents and
        remember them (and the collections' uuids) as that generation."""
        for coll, (n, seed) in zip(COLLS, GENERATIONS[gen]):
            self.db.drop_collection(coll)
            h.seed_users(self.db, coll, n, seed=seed)
        src = {}
        for coll in COLLS:
            raw, n = h.read_raw(self.db, coll)
            info = list(self.db.list_collections(filter={"name": coll}))
            self.assertEqual(len(info), 1, info)
            src[coll] = (raw, n, uuid_hex(info[0]["info"]["uuid"]))
            self.assertEqual(n, dict(zip(COLLS, GENERATIONS[gen]))[coll][0])
        for other, data in self.src.items():
            for coll in COLLS:
                self.assertNotEqual(data[coll][0], src[coll][0],
                                    "generations %s and %s of %s are alike" % (other, gen, coll))
        self.src[gen] = src
        return src

    def config(self, tmpdir=None, **kw):
        kw.setdefault("collections", ", ".join(COLLS))
        kw.setdefault("schedule", {"cron": NEVER, "timezone": "UTC", "catch_up": "no"})
        limits = {"parallel": 2, "export_retries": 0}
        limits.update(kw.pop("limits", {}))
        kw["limits"] = limits
        if tmpdir is None:
            return self.write_config(**kw)
        kw.setdefault("database", self.database)
        kw.setdefault("container", self.container)
        return h.write_config(tmpdir, **kw)

    @staticmethod
    def next_second():
        """Wait for the next wall-clock second.  A manifest's "started" has
        whole seconds; a run started after this is newer by start time than
        every run before it, whatever the order of sets that started in the
        same second (which TestSameSecond looks at)."""
        t = time.time()
        time.sleep(math.floor(t) + 1 - t + 0.01)

    def check_same_day(self):
        if h.utc_today() != self.day0:
            self.skipTest("the test crossed midnight UTC (%s -> %s): set folder names "
                          "depend on the date" % (self.day0, h.utc_today()))

    # ----------------------------------------------------------- faults
    def arm(self, **fault):
        """Install a MongoDB fault (replacing any); faultsFired counts over
        the module, so remember where it stood."""
        self.require_faults()
        self._fired_base = self.mongo.stats().get("faultsFired", 0)
        self.mongo.fault(clear=True, **fault)

    def fault_fired(self):
        return self.mongo.stats().get("faultsFired", 0) > self._fired_base

    def wait_fault_fired(self, log_of, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.fault_fired():
                return
            time.sleep(0.05)
        self.fail("the injected MongoDB fault never fired: %r\nlog:\n%s"
                  % (self.mongo.stats(), log_of()))

    # ------------------------------------------------------------- runs
    def started(self, log):
        """[(run id, folder)] of the log's "run ID: starting: ... set F" lines."""
        return STARTING.findall(log)

    def run_once(self, conf, gen, want_rc, timeout=90):
        """mongo-azure-backupd --once to the end; its Run."""
        rc, log, _e = self.run_backup(conf, timeout=timeout)
        self.assertExit(rc, want_rc, log)
        return self.run_of_log(log, gen)

    def run_of_log(self, log, gen, run_id=None):
        runs = [r for r in self.started(log) if run_id is None or r[0] == run_id]
        self.assertEqual(len(runs), 1, "want exactly one line 'run %s: starting: ... set "
                         "FOLDER', got %r; log:\n%s" % (run_id or "ID", runs, log))
        return Run(runs[0][0], runs[0][1], gen, log)

    def wait_started(self, r, timeout=20):
        """The Run of a --once daemon still running, once it logged its start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.started(r.log())
            if runs:
                return runs[0]
            if r.proc.poll() is not None:
                self.fail("the daemon exited (%s) before its run started; log:\n%s"
                          % (r.proc.returncode, r.log()))
            time.sleep(0.05)
        self.fail("no 'run ID: starting: ... set FOLDER' line after %s s; log:\n%s"
                  % (timeout, r.log()))

    def wait_blob(self, name, what, log_of, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.blobs.names(name) == [name]:
                return
            time.sleep(0.1)
        self.fail("%s (%s) never appeared; blobs %r\nlog:\n%s"
                  % (name, what, self.blobs.names(""), log_of()))

    # ---------------------------------------------------------- service
    def start_service(self, conf):
        r = self.start_backup(conf, args=["-f"])
        self.addCleanup(self._stop_quietly, r)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if r.proc.poll() is not None:
                self.fail("the daemon exited with %s at start; log:\n%s"
                          % (r.proc.returncode, r.log()))
            rc, out, _err = self.ctl(conf, "status", "--json", timeout=10)
            if rc == 0:
                return r
            time.sleep(0.1)
        self.fail("the daemon does not answer on %s; log:\n%s" % (self.sock, r.log()))

    @staticmethod
    def _stop_quietly(r):
        if r.proc.poll() is None:
            try:
                os.kill(r.pid, signal.SIGTERM)
                r.proc.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                r.kill()

    def status(self, conf, r):
        rc, out, err = self.ctl(conf, "status", "--json", timeout=15)
        self.assertEqual(rc, 0, "status --json exited %d: %s%s\nlog:\n%s" % (rc, out, err, r.log()))
        return json.loads(out)

    def wait_status(self, conf, r, pred, what, timeout=30):
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            if r.proc.poll() is not None:
                self.fail("the daemon exited (%s) while waiting for %s; log:\n%s"
                          % (r.proc.returncode, what, r.log()))
            st = self.status(conf, r)
            if pred(st):
                return st
            time.sleep(0.1)
        self.fail("no status with %s after %s s; last %s\nlog:\n%s"
                  % (what, timeout, json.dumps(st, indent=1), r.log()))

    def service_run_ok(self, conf, r, gen):
        """`ctl run --wait` on the service: a complete run; its Run."""
        rc, out, err = self.ctl(conf, "run", "--wait", timeout=90)
        self.assertEqual(rc, 0, "run --wait: %s%s\nlog:\n%s" % (out, err, r.log()))
        last = self.status(conf, r)["last_run"]
        self.assertEqual(last.get("result"), "complete", last)
        run = self.run_of_log(r.log(), gen, last["run_id"])
        self.assertEqual(run.folder, last.get("set"), "the log and status disagree on the set")
        return run

    def stalled_service_run(self, conf, r):
        """B through `ctl run`, with events' export hung on its getMore and
        users committed (status says ok); returns B's run id."""
        self.arm(hang_on_getmore=1)
        self.next_second()
        rc, out, err = self.ctl(conf, "run")
        self.assertEqual(rc, 0, "run: %s%s\nlog:\n%s" % (out, err, r.log()))
        r.wait_for_child("export-collection", h.is_data_export("events"))
        self.wait_fault_fired(r.log)

        def users_ok(st):
            cur = st.get("current_run") or {}
            return any(c.get("name") == "users" and c.get("state") == "ok"
                       for c in cur.get("collections") or [])
        st = self.wait_status(conf, r, users_ok, "users committed in the running run")
        self.assertEqual(st.get("state"), "running", st)
        return st["current_run"]["run_id"]

    # -------------------------------------------------------- the ctl
    def ctl(self, conf, *args, timeout=120):
        rc, out, err, _t = h.run_program([h.CTL, "-c", conf] + list(args), timeout=timeout)
        return rc, out.decode("utf-8", "replace"), err

    def new_dir(self, what):
        self._dirs += 1
        return os.path.join(self.tmp, "%s%d" % (what, self._dirs))

    # ---------------------------------------------------------- storage
    def manifest_bytes(self, folder):
        name = folder + "manifest.json"
        if self.blobs.names(name) != [name]:
            return None
        return self.blobs.download(name)

    def manifest(self, folder):
        raw = self.manifest_bytes(folder)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError as e:
            self.fail("%smanifest.json is not JSON (%s): %r" % (folder, e, raw[:300]))

    def manifests(self):
        """{folder: manifest.json bytes} of every set in the container."""
        return {n[:-len("manifest.json")]: self.blobs.download(n)
                for n in self.blobs.names("") if n.endswith("/manifest.json")}

    def folders(self):
        out = {}
        for n in self.blobs.names(""):
            f, _s, _b = n.rpartition("/")
            out.setdefault(f + "/", []).append(n)
        return out

    def snapshot(self, folder):
        """{name: bytes} of a set's blobs, but verification.json (which
        `verify` may write beside any set)."""
        return {n: self.blobs.download(n) for n in self.blobs.names(folder)
                if not n.endswith("/verification.json")}

    def next_free(self, base):
        have = set(self.manifests())
        n = 1
        while suffixed(base, n) in have:
            n += 1
        return suffixed(base, n)

    @staticmethod
    def entries(m):
        return {e.get("name"): e for e in m.get("collections") or []}

    # ------------------------------------------------------- assertions
    def assertOkEntry(self, folder, e, gen, coll, ctx):
        raw, n, _u = self.src[gen][coll]
        self.assertEqual(e.get("result"), "ok", "%s: %r; %s" % (coll, e, ctx))
        self.assertEqual(e.get("blob"), folder + "tralivali_%s.bson.gz" % coll, ctx)
        self.assertEqual(e.get("metadata_blob"), folder + "tralivali_%s.metadata.json.gz" % coll,
                         ctx)
        data = self.blobs.download(e["blob"])
        got = gzip.decompress(data)
        if got != raw:
            self.fail("%s is not run %s's %s: %s; %s"
                      % (e["blob"], gen, coll, h.describe_bson_difference(got, raw), ctx))
        self.assertEqual(e.get("documents"), n, "%s: %r; %s" % (coll, e, ctx))
        self.assertEqual(e.get("gzip_bytes"), len(data), "%s: %r; %s" % (coll, e, ctx))
        self.assertEqual(e.get("sha256"), h.sha256_hex(data), "%s: %r; %s" % (coll, e, ctx))
        meta = json.loads(gzip.decompress(self.blobs.download(e["metadata_blob"])))
        self.assertEqual(meta.get("uuid"), self.src[gen][coll][2],
                         "%s's metadata is not of run %s's collection; %s" % (coll, gen, ctx))

    def assertFailedEntry(self, folder, e, coll, ctx):
        self.assertEqual(e.get("result"), "failed", "%s: %r; %s" % (coll, e, ctx))
        self.assertTrue(e.get("error"), "%s failed without an error text: %r; %s" % (coll, e, ctx))
        name = folder + "tralivali_%s.bson.gz" % coll
        self.assertEqual(self.blobs.names(name), [],
                         "the failed %s has a data blob in its set; %s" % (coll, ctx))

    def assertFinalManifest(self, run, want, ctx):
        """run's manifest after the run ended: not complete (unless every
        collection is ok), each collection as want says ("ok" or "failed")."""
        m = self.manifest(run.folder)
        self.assertIsNotNone(m, "no manifest in %s: %r; %s"
                             % (run.folder, self.blobs.names(run.folder), ctx))
        ctx = "%s\nmanifest: %s" % (ctx, json.dumps(m, indent=1))
        self.assertEqual(m.get("set"), run.folder, ctx)
        self.assertEqual(m.get("run_id"), run.run_id, ctx)
        entries = self.entries(m)
        self.assertEqual(sorted(entries), sorted(COLLS), ctx)
        for coll in COLLS:
            if want[coll] == "ok":
                self.assertOkEntry(run.folder, entries[coll], run.gen, coll, ctx)
            else:
                self.assertFailedEntry(run.folder, entries[coll], coll, ctx)
        self.assertIs(m.get("complete"), all(w == "ok" for w in want.values()), ctx)
        return m

    def assertFolderUnchanged(self, folder, before, ctx):
        after = self.snapshot(folder)
        self.assertEqual(sorted(after), sorted(before), "the blobs of %s changed; %s"
                         % (folder, ctx))
        for name, data in before.items():
            self.assertEqual(after[name], data, "%s was rewritten; %s" % (name, ctx))

    def assertListed(self, conf, want, ctx):
        """`list --json`: exactly the sets in want ({folder: complete})."""
        rc, out, err = self.ctl(conf, "list", "--json")
        self.assertEqual(rc, 0, "list --json: %s%s; %s" % (out, err, ctx))
        sets = {s["set"]: s["complete"] for s in json.loads(out)["sets"]}
        self.assertEqual(sets, want, "list --json:\n%s\n%s" % (out, ctx))

    def assertVerifyLatest(self, conf, run, ctx):
        """`verify latest` exits 0 and records its verdict beside run's set,
        and beside no other."""
        def records():
            return {n: self.blobs.properties(n).etag for n in self.blobs.names("")
                    if n.endswith("/verification.json")}
        # A subtest: when it fails, the test's other checks still run.
        with self.subTest(check="verify latest is %s" % run.folder):
            before = records()
            rc, out, err = self.ctl(conf, "verify", "latest")
            after = records()
            mine = run.folder + "verification.json"
            changed = sorted(n for n in after if before.get(n) != after[n])
            self.assertEqual(changed, [mine], "verify latest recorded its verdict beside %r, "
                             "want %s (%r):\n%s%s\n%s" % (changed, run.folder, run, out, err, ctx))
            self.assertEqual(rc, 0, "verify latest exited %d:\n%s%s\n%s" % (rc, out, err, ctx))
            rec = json.loads(self.blobs.download(mine))
            self.assertEqual((rec.get("set"), rec.get("run_id"), rec.get("result")),
                             (run.folder, run.run_id, "ok"), "%r\n%s" % (rec, ctx))

    def assertRestore(self, conf, set_name, gen, colls, ctx):
        """restore SET --to-dir (with --collection for each of colls unless
        it is all of them): mongodump's layout, gen's documents and
        collections exactly."""
        out_dir = self.new_dir("restore")
        args = ["restore", set_name, "--to-dir", out_dir]
        if sorted(colls) != sorted(COLLS):
            for c in colls:
                args += ["--collection", c]
        rc, out, err = self.ctl(conf, *args)
        self.assertEqual(rc, 0, "%s exited %d:\n%s%s\n%s" % (" ".join(args), rc, out, err, ctx))
        dbdir = os.path.join(out_dir, self.database)
        self.assertEqual(sorted(os.listdir(dbdir)),
                         sorted(["%s.bson" % c for c in colls] +
                                ["%s.metadata.json" % c for c in colls]),
                         "%s:\n%s%s\n%s" % (" ".join(args), out, err, ctx))
        for coll in colls:
            raw, _n, uhex = self.src[gen][coll]
            with open(os.path.join(dbdir, coll + ".bson"), "rb") as f:
                got = f.read()
            if got != raw:
                self.fail("%s: %s.bson is not run %s's: %s\n%s%s\n%s"
                          % (" ".join(args), coll, gen, h.describe_bson_difference(got, raw),
                             out, err, ctx))
            with open(os.path.join(dbdir, coll + ".metadata.json")) as f:
                meta = json.load(f)
            self.assertEqual(meta.get("uuid"), uhex, "%s: %s.metadata.json is not run %s's "
                             "collection\n%s" % (" ".join(args), coll, gen, ctx))

    # ------------------------------------------------- the shared story
    def first_run(self, conf, r=None):
        """Run A (complete) on today's plain folder; returns (A, snapshot)."""
        self.seed("A")
        a = self.service_run_ok(conf, r, "A") if r else self.run_once(conf, "A", 0)
        self.assertEqual(a.folder, "backups/%s/" % self.day0,
                         "the first run of the day is not in the plain date folder")
        self.assertFinalManifest(a, {c: "ok" for c in COLLS}, "run A")
        return a, self.snapshot(a.folder)

    def second_run_folder(self, a, snap_a, b, ctx):
        """B ran after A: A's set is as it was, B's folder is A's + ".2" and
        B wrote nothing anywhere else."""
        self.assertFolderUnchanged(a.folder, snap_a, ctx)
        self.check_same_day()
        self.assertEqual(b.folder, suffixed(a.folder, 2),
                         "the second run of the day did not claim %s; %s"
                         % (suffixed(a.folder, 2), ctx))
        self.assertEqual(sorted(self.folders()), sorted({a.folder, b.folder}),
                         "blobs outside the two runs' sets; %s" % ctx)

    def after_second_run(self, conf, a, snap_a, b, ctx, b_complete=False):
        """The checks after any ending of B: A untouched; B's set not
        complete; list, verify latest and restore latest about A."""
        self.assertFolderUnchanged(a.folder, snap_a, ctx)
        m = self.manifest(b.folder)
        if m is not None:
            self.assertIs(m.get("complete"), b_complete, "%s\nmanifest: %s"
                          % (ctx, json.dumps(m, indent=1)))
        listed = {a.folder: True}
        if m is not None:
            listed[b.folder] = b_complete
        self.assertListed(conf, listed, ctx)
        latest = b if b_complete else a
        self.assertRestore(conf, "latest", latest.gen, COLLS, ctx)
        # What B did commit restores from its suffixed folder by name.
        ok = [e.get("name") for e in (m or {}).get("collections") or []
              if e.get("result") == "ok"]
        if ok and not b_complete:
            self.assertRestore(conf, b.folder, "B", ok, ctx)
        self.assertVerifyLatest(conf, latest, ctx)
        # Nothing of the above touched A's manifest or data.
        self.assertFolderUnchanged(a.folder, snap_a, ctx)

    def third_run(self, conf, earlier, do_run, ctx):
        """C, a good run the same day after the others: the next free
        folder, complete, latest, exactly C's data, earlier sets untouched."""
        before = self.manifests()
        self.seed("C")
        want_folder = self.next_free(earlier[0].folder)
        self.next_second()
        c = do_run()
        self.check_same_day()
        ctx = "%s; then %r" % (ctx, c)
        self.assertEqual(c.folder, want_folder, "the third run did not claim the next free "
                         "folder; sets before it: %r; %s" % (sorted(before), ctx))
        self.assertNotIn(c.folder, before, ctx)
        self.assertFinalManifest(c, {coll: "ok" for coll in COLLS}, ctx)
        # Its folder holds its own blobs and nothing else.
        names = sorted(self.blobs.names(c.folder))
        want = sorted([c.folder + "manifest.json"] +
                      [c.folder + "tralivali_%s.bson.gz" % coll for coll in COLLS] +
                      [c.folder + "tralivali_%s.metadata.json.gz" % coll for coll in COLLS])
        self.assertEqual(names, want, ctx)
        after = self.manifests()
        for folder, raw in before.items():
            self.assertEqual(after.get(folder), raw, "%smanifest.json changed during the "
                             "third run; %s" % (folder, ctx))
        self.assertVerifyLatest(conf, c, ctx)
        self.assertRestore(conf, "latest", "C", COLLS, ctx)
        listed = {f: json.loads(raw)["complete"] for f, raw in after.items()}
        self.assertTrue(listed[c.folder], ctx)
        self.assertListed(conf, listed, ctx)
        return c


# --------------------------------------------------------------------------

class TestSecondRunEndings(SetSafetyCase):

    def test_a_mongodb_fails_after_one_collection_committed(self):
        """B: users committed, then events' getMore is refused (no
        retries); parallel 1, so events starts after users is done."""
        self.require_faults()
        conf = self.config(collections="users, events", limits={"parallel": 1})
        a, snap_a = self.first_run(conf)
        self.seed("B")
        self.arm(cursor_not_found_on_getmore=1)
        self.next_second()
        rc, log, _e = self.run_backup(conf, timeout=90)
        self.assertTrue(self.fault_fired(), "the getMore fault never fired; log:\n" + log)
        self.assertExit(rc, 1, log)
        b = self.run_of_log(log, "B")
        ctx = "A: %r; B: %r, ended by a MongoDB error on events; B's log:\n%s" % (a, b, log)
        self.second_run_folder(a, snap_a, b, ctx)
        self.assertFinalManifest(b, {"users": "ok", "events": "failed"}, ctx)
        self.after_second_run(conf, a, snap_a, b, ctx)
        self.mongo.clear_faults()
        self.third_run(conf, [a, b], lambda: self.run_once(conf, "C", 0), ctx)

    def test_b_storage_outage_past_run_timeout(self):
        """B through a proxy that answers 503 to every upload of a
        collection blob until after run_timeout (10 s, the least allowed);
        the manifest's own uploads get through."""
        conf = self.config()
        a, snap_a = self.first_run(conf)
        self.seed("B")
        proxy = FaultProxy(upstream_port=self.azurite.port).start()
        self.addCleanup(proxy.stop)
        bconf = self.config(tmpdir=os.path.join(self.tmp, "outage"),
                            connection_string=proxy.connection_string(),
                            azure={"max_retries": 1},
                            # Open for longer than the run may last: at
                            # run_timeout the breaker is open, and the final
                            # manifest must still be written.
                            breaker={"failure_threshold": 2, "open_seconds": 60},
                            limits={"run_timeout": "10s"})
        proxy.add_fault(kind=["put_block", "put_block_list", "put_blob"], path="/tralivali_",
                        status=503, count=0)
        self.next_second()
        rc, log, elapsed = self.run_backup(bconf, timeout=90)
        fired = proxy.stats(log=False)["faults_fired"]
        proxy.clear()
        self.assertGreater(fired, 0, "the outage never met an upload; log:\n" + log)
        self.assertExit(rc, 1, log)
        self.assertGreaterEqual(elapsed, 9.5, "the run gave up after %.1f s, before "
                                "run_timeout; log:\n%s" % (elapsed, log))
        self.assertLogMatches(log, r"run_timeout", "naming run_timeout")
        b = self.run_of_log(log, "B")
        ctx = ("A: %r; B: %r, storage outage (%d refused) until run_timeout, %.1f s; B's "
               "log:\n%s" % (a, b, fired, elapsed, log))
        self.second_run_folder(a, snap_a, b, ctx)
        self.assertFinalManifest(b, {c: "failed" for c in COLLS}, ctx)
        self.after_second_run(conf, a, snap_a, b, ctx)
        self.third_run(conf, [a, b], lambda: self.run_once(conf, "C", 0), ctx)

    def test_c_cancel_on_the_service(self):
        self.require_faults()
        conf = self.config()
        r = self.start_service(conf)
        a, snap_a = self.first_run(conf, r)
        self.seed("B")
        b_id = self.stalled_service_run(conf, r)
        rc, out, err = self.ctl(conf, "cancel")
        self.assertEqual(rc, 0, "cancel: %s%s\nlog:\n%s" % (out, err, r.log()))
        st = self.wait_status(conf, r, lambda s: s.get("state") == "idle", "the run's end")
        last = st["last_run"]
        self.assertEqual((last.get("run_id"), last.get("result")), (b_id, "cancelled"), last)
        b = self.run_of_log(r.log(), "B", b_id)
        self.assertEqual(b.folder, last.get("set"), "the log and status disagree on B's set")
        ctx = "A: %r; B: %r, cancelled by ctl; log:\n%s" % (a, b, r.log())
        self.assertEqual(r.children(), [], "helpers left after cancel; " + ctx)
        self.second_run_folder(a, snap_a, b, ctx)
        self.assertFinalManifest(b, {"users": "ok", "events": "failed"}, ctx)
        self.after_second_run(conf, a, snap_a, b, ctx)
        self.mongo.clear_faults()
        self.third_run(conf, [a, b], lambda: self.service_run_ok(conf, r, "C"), ctx)
        os.kill(r.pid, signal.SIGTERM)
        rc, log, _e = r.wait(30)
        self.assertExit(rc, 0, log)

    def test_d_sigterm_of_the_service(self):
        self.require_faults()
        conf = self.config()
        r = self.start_service(conf)
        a, snap_a = self.first_run(conf, r)
        self.seed("B")
        b_id = self.stalled_service_run(conf, r)
        kids = [(pid, name) for pid, name, _a in r.children()]
        os.kill(r.pid, signal.SIGTERM)
        rc, log, _e = r.wait(30)
        b = self.run_of_log(log, "B", b_id)
        ctx = ("A: %r; B: %r, SIGTERM to the service (pid %d; children then %r); log:\n%s"
               % (a, b, r.pid, kids, log))
        self.assertExit(rc, 0, log)
        self.assertLogMatches(log, r"SIGTERM", "saying SIGTERM stops it")
        self.second_run_folder(a, snap_a, b, ctx)
        self.assertFinalManifest(b, {"users": "ok", "events": "failed"}, ctx)
        self.after_second_run(conf, a, snap_a, b, ctx)
        self.mongo.clear_faults()
        self.third_run(conf, [a, b], lambda: self.run_once(conf, "C", 0), ctx)

    def test_e_sigkill_of_the_supervisor(self):
        """SIGKILL of mongo-azure-backupd --once while events' export hangs
        and users is committed in B's folder: B's manifest stays as first
        written (all pending); C then skips B's folder too."""
        self.require_faults()
        conf = self.config()
        a, snap_a = self.first_run(conf)
        self.seed("B")
        self.arm(hang_on_getmore=1)
        self.next_second()
        run = self.start_backup(conf)
        self.addCleanup(run.kill)
        b_id, b_folder = self.wait_started(run)
        self.assertNotEqual(b_folder, a.folder, "B claimed A's folder; log:\n" + run.log())
        run.wait_for_child("export-collection", h.is_data_export("events"))
        self.wait_fault_fired(run.log)
        self.wait_blob(b_folder + "tralivali_users.metadata.json.gz", "users committed in B",
                       run.log)
        kids = [(pid, name, argv) for pid, name, argv in run.children()]
        st = h.proc_stat(run.pid)
        self.assertTrue(st is not None and st[1] != "Z", "the supervisor is gone already: %r" % (st,))
        os.kill(run.pid, signal.SIGKILL)
        run.proc.wait(10)
        log = run.log()
        b = Run(b_id, b_folder, "B", log)
        ctx = ("A: %r; B: %r, SIGKILL hit the supervisor mongo-azure-backupd --once pid %d "
               "(its helpers then: %r); log:\n%s"
               % (a, b, run.pid, [(p, n) for p, n, _a in kids], log))
        self.assertEqual(run.proc.returncode, -signal.SIGKILL, ctx)
        deadline = time.monotonic() + 5
        left = kids
        while left and time.monotonic() < deadline:
            h._reap_orphans()
            left = [k for k in kids if h.proc_stat(k[0]) is not None
                    and h.proc_stat(k[0])[1] != "Z"]
            time.sleep(0.1)
        self.assertEqual(left, [], "helpers outlived the supervisor; " + ctx)
        self.second_run_folder(a, snap_a, b, ctx)
        m = self.manifest(b.folder)
        self.assertIsNotNone(m, "B's folder has no manifest; %s" % ctx)
        self.assertEqual((m.get("set"), m.get("run_id"), m.get("complete")),
                         (b.folder, b.run_id, False), ctx)
        self.assertEqual({e.get("name"): e.get("result") for e in m.get("collections") or []},
                         {c: "pending" for c in COLLS}, "%s\nmanifest: %s"
                         % (ctx, json.dumps(m, indent=1)))
        self.after_second_run(conf, a, snap_a, b, ctx)
        self.mongo.clear_faults()
        c = self.third_run(conf, [a, b], lambda: self.run_once(conf, "C", 0), ctx)
        self.assertEqual(c.folder, suffixed(a.folder, 3), ctx)

    def test_f_sigkill_of_upload_blob(self):
        """SIGKILL of events' data upload-blob while its export hangs: the
        log blames upload-blob, events is retried within the run; the set
        is then complete with B's data, or not complete - never a mix."""
        self.require_faults()
        conf = self.config(limits={"export_retries": 2}, log={"level": "debug"})
        a, snap_a = self.first_run(conf)
        self.seed("B")
        self.arm(hang_on_getmore=1)
        self.next_second()
        run = self.start_backup(conf)
        self.addCleanup(run.kill)
        run.wait_for_child("export-collection", h.is_data_export("events"))
        self.wait_fault_fired(run.log)
        pid = run.wait_for_child("upload-blob", h.is_data_upload("events"))
        victim = h.proc_cmdline(pid)
        st = h.proc_stat(pid)
        self.assertTrue(st is not None and st[1] != "Z", "upload-blob %d is gone already" % pid)
        os.kill(pid, signal.SIGKILL)
        rc, log, _e = run.wait(90)
        b = self.run_of_log(log, "B")
        ctx = ("A: %r; B: %r, SIGKILL hit upload-blob pid %d %r; exit %d; log:\n%s"
               % (a, b, pid, victim, rc, log))
        self.assertIn(rc, (0, 1), ctx)
        # The blame: each line saying an attempt of events failed names
        # upload-blob, and none names export-collection.
        fails = re.findall(r"^.*collection events: (?:attempt \d+ failed|FAILED)\b.*$", log, re.M)
        self.assertTrue(fails, "no line says an attempt of events failed; " + ctx)
        for line in fails:
            self.assertIn("upload-blob", line, "the failure is not blamed on upload-blob; " + ctx)
            self.assertNotIn("export-collection", line, "export-collection is blamed; " + ctx)
        self.assertLogMatches(log, r"upload-blob\b.*\b(killed by signal 9|signal 9|SIGKILL)",
                              "saying upload-blob was killed by signal 9")
        self.assertLogMatches(log, r"collection events: attempt 1 failed: .*retry",
                              "saying events is retried")
        self.assertLogMatches(log, r"collection events: starting export .*\(attempt 2\)",
                              "the second attempt of events' export starting")
        self.second_run_folder(a, snap_a, b, ctx)
        m = self.manifest(b.folder)
        self.assertIsNotNone(m, ctx)
        complete = m.get("complete") is True
        self.assertEqual(rc == 0, complete, ctx)
        want = {c: "ok" for c in COLLS}
        if not complete:
            want = {e.get("name"): e.get("result") for e in m.get("collections") or []}
            self.assertNotIn("pending", want.values(), ctx)
        self.assertFinalManifest(b, want, ctx)
        self.after_second_run(conf, a, snap_a, b, ctx, b_complete=complete)
        self.mongo.clear_faults()
        self.third_run(conf, [a, b], lambda: self.run_once(conf, "C", 0), ctx)


# --------------------------------------------------------------------------

class TestManifestUploadKilled(SetSafetyCase):
    """SIGKILL of the upload-blob writing B's manifest after the storage
    applied it but before upload-blob could say so (the proxy holds the
    answer).  The manifest is written again: the claim recognises its own
    content, the final one is rewritten whole; B ends complete and says so.
    (A random soak run once caught the final one: the run said "partial"
    of a set whose manifest said complete.)"""

    def _manifest_upload_killed(self, nth, applied):
        conf = self.config(limits={"export_retries": 2})
        a, snap_a = self.first_run(conf)
        self.seed("B")
        proxy = FaultProxy(upstream_port=self.azurite.port).start()
        self.addCleanup(proxy.stop)
        bconf = self.config(tmpdir=os.path.join(self.tmp, "via-proxy"),
                            connection_string=proxy.connection_string(),
                            limits={"export_retries": 2})
        b_folder = suffixed(a.folder, 2)
        proxy.add_fault(kind="put_block_list", path="/%smanifest.json" % b_folder,
                        action="delay", delay=20, nth=nth)
        self.next_second()
        run = self.start_backup(bconf)
        self.addCleanup(run.kill)
        proxy.wait_fired(1, timeout=60)
        pid = run.wait_for_child("upload-blob",
                                 lambda argv: any(x.endswith("/manifest.json") for x in argv[1:]))
        deadline = time.monotonic() + 15
        m = None
        while time.monotonic() < deadline:
            m = self.manifest(b_folder)
            if m is not None and applied(m):
                break
            time.sleep(0.05)
        else:
            self.fail("the held manifest never reached the storage: %r\nlog:\n%s"
                      % (m, run.log()))
        st = h.proc_stat(pid)
        self.assertTrue(st is not None and st[1] != "Z",
                        "upload-blob %d ended before the kill; log:\n%s" % (pid, run.log()))
        os.kill(pid, signal.SIGKILL)
        rc, log, _e = run.wait(90)
        b = self.run_of_log(log, "B")
        ctx = "A: %r; B: %r, manifest upload-blob %d killed; log:\n%s" % (a, b, pid, log)
        self.assertExit(rc, 0, log)
        self.assertLogMatches(log, r"manifest\.json: upload-blob was killed by signal 9\b.*; "
                              r"trying again", "the manifest written again")
        self.assertNotRegex(log, r"\bpartial\b|FAILED", ctx)
        self.assertEqual(b.folder, b_folder, ctx)
        self.second_run_folder(a, snap_a, b, ctx)
        self.assertFinalManifest(b, {c: "ok" for c in COLLS}, ctx)
        self.after_second_run(conf, a, snap_a, b, ctx, b_complete=True)

    def test_claim_killed(self):
        self._manifest_upload_killed(1, lambda m: m.get("complete") is False)

    def test_final_killed(self):
        self._manifest_upload_killed(2, lambda m: m.get("complete") is True)


# --------------------------------------------------------------------------

class TestFirstRunFails(SetSafetyCase):

    def test_committed_collection_restorable_alone(self):
        """The day's first run: users committed, events fails (MongoDB).
        users restores by itself from that set; latest has nothing complete;
        a good run later the same day takes .2 and becomes latest."""
        self.require_faults()
        conf = self.config(collections="users, events", limits={"parallel": 1})
        self.seed("A")
        self.arm(cursor_not_found_on_getmore=1)
        rc, log, _e = self.run_backup(conf, timeout=90)
        self.assertTrue(self.fault_fired(), "the getMore fault never fired; log:\n" + log)
        self.assertExit(rc, 1, log)
        a = self.run_of_log(log, "A")
        ctx = "A: %r, events failed; log:\n%s" % (a, log)
        self.check_same_day()
        self.assertEqual(a.folder, "backups/%s/" % self.day0, ctx)
        self.assertFinalManifest(a, {"users": "ok", "events": "failed"}, ctx)
        snap_a = self.snapshot(a.folder)
        self.assertListed(conf, {a.folder: False}, ctx)

        self.assertRestore(conf, a.folder, "A", ["users"], ctx)
        # Named by its date, as an operator would.
        self.assertRestore(conf, self.day0, "A", ["users"], ctx)
        out_dir = self.new_dir("restore")
        rc, out, err = self.ctl(conf, "restore", a.folder, "--collection", "events",
                                "--to-dir", out_dir)
        self.assertEqual(rc, 1, "restoring the failed collection: %s%s\n%s" % (out, err, ctx))
        self.assertFalse(os.path.exists(os.path.join(out_dir, self.database, "events.bson")), ctx)
        out_dir = self.new_dir("restore")
        rc, out, err = self.ctl(conf, "restore", "latest", "--to-dir", out_dir)
        self.assertEqual(rc, 1, "restore latest with no complete set: %s%s\n%s" % (out, err, ctx))
        self.assertFalse(os.path.exists(os.path.join(out_dir, self.database, "users.bson")), ctx)

        # A good run later that day: .2, latest; A as it was.
        self.mongo.clear_faults()
        self.seed("B")
        self.next_second()
        b = self.run_once(conf, "B", 0)
        ctx += "\nthen B: %r; log:\n%s" % (b, b.log)
        self.second_run_folder(a, snap_a, b, ctx)
        self.assertFinalManifest(b, {c: "ok" for c in COLLS}, ctx)
        self.assertFolderUnchanged(a.folder, snap_a, ctx)
        self.assertListed(conf, {a.folder: False, b.folder: True}, ctx)
        self.assertVerifyLatest(conf, b, ctx)
        self.assertRestore(conf, "latest", "B", COLLS, ctx)
        self.assertRestore(conf, a.folder, "A", ["users"], ctx)
        # The date names the day's first set; DATE.2 the second.
        self.assertRestore(conf, self.day0, "A", ["users"], ctx)
        self.assertRestore(conf, self.day0 + ".2", "B", ["users"], ctx)
        self.assertFolderUnchanged(a.folder, snap_a, ctx)


# --------------------------------------------------------------------------

class TestSameSecond(SetSafetyCase):

    def test_latest_is_the_last_of_runs_started_in_one_second(self):
        """Complete runs back to back from the start of a second, until the
        last two started in the same second (manifests have whole seconds):
        the last one, in the highest-numbered folder, is latest for list,
        verify and restore - not the day's first folder."""
        self.seed("A")
        conf = self.config()
        runs = []
        self.next_second()
        for _i in range(4):
            runs.append(self.run_once(conf, "A", 0))
            started = [self.manifest(r.folder).get("started") for r in runs[-2:]]
            if len(runs) >= 2 and started[0] == started[1]:
                break
        else:
            self.skipTest("no two runs started in the same second: %r"
                          % [(r.folder, self.manifest(r.folder).get("started")) for r in runs])
        self.check_same_day()
        last = runs[-1]
        ctx = "runs %r, the last two started at %s" % (runs, started[0])
        self.assertEqual([r.folder for r in runs],
                         [suffixed(runs[0].folder, n) for n in range(1, len(runs) + 1)], ctx)
        with self.subTest(check="restore latest"):
            out_dir = self.new_dir("restore")
            rc, out, err = self.ctl(conf, "restore", "latest", "--to-dir", out_dir)
            self.assertEqual(rc, 0, out + err)
            self.assertRegex(out, r"(?m)^restore %s " % re.escape(last.folder),
                             "restore latest did not take the last run's set; " + ctx)
        with self.subTest(check="list"):
            rc, out, err = self.ctl(conf, "list", "--json")
            self.assertEqual(rc, 0, out + err)
            self.assertEqual([s["set"] for s in json.loads(out)["sets"]],
                             [r.folder for r in reversed(runs)],
                             "list --json is not newest first:\n%s\n%s" % (out, ctx))
        self.assertVerifyLatest(conf, last, ctx)


# --------------------------------------------------------------------------

class TestStatusFromStorage(SetSafetyCase):

    def test_last_complete_set_is_what_storage_holds(self):
        """status, status --json, the metrics and state.json name the newest
        complete set found in storage after each run, not the daemon's
        memory: A and B complete, then B's manifest is demoted by hand, then
        a failing run C: the last complete set is A again."""
        self.require_faults()
        conf = self.config(limits={"parallel": 1})
        r = self.start_service(conf)
        a, _snap = self.first_run(conf, r)
        self.seed("B")
        self.next_second()
        b = self.service_run_ok(conf, r, "B")
        st = self.status(conf, r)
        self.assertEqual((st.get("last_complete_set") or {}).get("set"), b.folder, st)

        # B stops being a good backup behind the daemon's back.
        demoted = json.loads(self.manifest_bytes(b.folder))
        demoted["complete"] = False
        self.blobs.upload(b.folder + "manifest.json", json.dumps(demoted).encode(),
                          content_type="application/json")
        m_a = self.manifest(a.folder)

        self.seed("C")
        self.arm(cursor_not_found_on_getmore=1)
        self.next_second()
        rc, out, err = self.ctl(conf, "run", "--wait", timeout=90)
        self.assertEqual(rc, 1, "run --wait of a failing run: %s%s\nlog:\n%s" % (out, err, r.log()))
        self.assertTrue(self.fault_fired(), "the getMore fault never fired; log:\n" + r.log())
        st = self.status(conf, r)
        ctx = "A: %r; B: %r (demoted); status %s\nlog:\n%s" % (a, b, json.dumps(st, indent=1),
                                                               r.log())
        self.assertEqual(st["last_run"].get("result"), "partial", ctx)
        last = st.get("last_complete_set") or {}
        self.assertEqual(last.get("set"), a.folder, ctx)
        self.assertEqual(last.get("finished"), m_a["finished"], ctx)

        finished = datetime.datetime.strptime(m_a["finished"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        rc, out, err = self.ctl(conf, "metrics", timeout=15)
        self.assertEqual(rc, 0, out + str(err))
        self.assertRegex(out, r"(?m)^mongo_azure_backup_last_success_timestamp_seconds %d$"
                         % int(finished), ctx)
        rc, out, err = self.ctl(conf, "status", timeout=15)
        self.assertEqual(rc, 0, out + str(err))
        self.assertIn("last complete backup: %s" % a.folder, out, ctx)
        state_file = os.path.join(os.path.dirname(conf), "state", "state.json")
        with open(state_file) as f:
            state = json.load(f)
        self.assertEqual(state.get("last_complete_set"), a.folder, "state.json: %r" % state)
        self.assertEqual(state.get("last_complete_finished"), int(finished),
                         "state.json: %r" % state)
        os.kill(r.pid, signal.SIGTERM)
        rc, log, _e = r.wait(30)
        self.assertExit(rc, 0, log)


class TestRetentionLeavesOtherFiles(SetSafetyCase):

    OLD = "2020-08-01"

    def old_set(self, folder, complete):
        """A set made with the SDK: data, metadata, manifest,
        verification.json; returns its layout blobs."""
        names, entries = [], []
        for coll in COLLS:
            data = folder + "tralivali_%s.bson.gz" % coll
            meta = folder + "tralivali_%s.metadata.json.gz" % coll
            self.blobs.upload(data, gzip.compress(b"\x05\x00\x00\x00\x00"),
                              content_type="application/gzip")
            self.blobs.upload(meta, gzip.compress(b"{}"), content_type="application/gzip")
            names += [data, meta]
            entries.append({"name": coll, "result": "ok" if complete else "failed",
                            "blob": data, "metadata_blob": meta})
        manifest = {"format": 1, "tool": "mongo-azure-backup", "run_id": "old" + folder[-3:-1],
                    "set": folder, "started": self.OLD + "T03:00:00Z",
                    "finished": self.OLD + "T03:01:00Z", "complete": complete,
                    "collections": entries}
        self.blobs.upload(folder + "manifest.json", json.dumps(manifest).encode(),
                          content_type="application/json")
        self.blobs.upload(folder + "verification.json",
                          json.dumps({"set": folder, "result": "ok"}).encode(),
                          content_type="application/json")
        return names + [folder + "manifest.json", folder + "verification.json"]

    def prune_sets(self, conf, *args):
        p = subprocess.run([PRUNE, "-c", conf] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60, env=h.daemon_env())
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def test_notes_survive_prune(self):
        conf = self.config(retention={"days": 30, "keep_min": 1})
        self.seed("A")
        a = self.run_once(conf, "A", 0)
        self.seed("B")
        b = self.run_once(conf, "B", 0)
        self.check_same_day()
        self.assertEqual((a.folder, b.folder),
                         ("backups/%s/" % self.day0, suffixed(a.folder, 2)),
                         "two runs of a day: %r, %r" % (a, b))
        notes = {}
        old1, old2 = "backups/%s/" % self.OLD, "backups/%s.2/" % self.OLD
        for folder in (a.folder, b.folder, old1, old2):
            name = folder + "notes.txt"
            notes[name] = ("operator's notes about %s\n" % folder).encode()
            self.blobs.upload(name, notes[name], content_type="text/plain")
        old = self.old_set(old1, True) + self.old_set(old2, False)
        today_blobs = self.blobs.names(a.folder) + self.blobs.names(b.folder)
        before = self.blobs.names("")

        # 1. ctl prune: the 2020 sets are older than 30 days and not among
        # the newest complete one: their layout blobs go, the notes stay.
        p = subprocess.run([h.CTL, "-c", conf, "prune"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60, env=h.daemon_env())
        out = p.stdout.decode() + p.stderr.decode()
        self.assertEqual(p.returncode, 0, out)
        self.assertEqual(self.blobs.names(""), sorted(set(before) - set(old)),
                         "after ctl prune:\n" + out)
        for name, data in notes.items():
            self.assertEqual(self.blobs.download(name), data, name)

        # 2. Years later: keep_min keeps the newest complete set (B, whole,
        # notes and all); A's layout blobs go, its notes stay.
        later = (datetime.date.fromisoformat(self.day0) + datetime.timedelta(days=400)).isoformat()
        rc, out, err = self.prune_sets(conf, "--today", later)
        self.assertEqual(rc, 0, out + err)
        want = sorted(set(notes) | {n for n in today_blobs if n.startswith(b.folder)})
        self.assertEqual(self.blobs.names(""), want, "after prune-sets --today %s:\n%s%s"
                         % (later, out, err))
        for name, data in notes.items():
            self.assertEqual(self.blobs.download(name), data, name)

        # 3. Again: nothing more to do; B still restores whole.
        rc, out2, err2 = self.prune_sets(conf, "--today", later)
        self.assertEqual(rc, 0, out2 + err2)
        self.assertEqual(self.blobs.names(""), want, out2 + err2)
        self.assertRestore(conf, "latest", "B", COLLS, "after pruning:\n" + out + err)


if __name__ == "__main__":
    h.main()
