#!/usr/bin/python3
"""test_process_faults.py - processes dying at bad moments.

  * the supervisor SIGKILLed in the middle of a scheduled run (service mode):
    its children die with it (PR_SET_PDEATHSIG), nothing of the stalled
    collection is committed, the set's manifest is not complete, and the
    restarted daemon (catch_up = yes) makes the run up at start;
  * a random export-collection or upload-blob SIGKILLed at a random moment
    of a --once run, for several seeds: exit 1 (0 only when the kill
    missed), every committed blob equal to its source, the manifest
    complete only when every collection is ok, no process left;
  * the MongoDB server closing, half-answering, forgetting the cursor or
    hanging in the middle of a cursor while the daemon runs as a service:
    without export retries the collection fails cleanly and the daemon
    goes on answering; with retries the run completes.

Needs tests/fake_mongod.py (fault injection): every test here skips against
a real mongod (MAB_TEST_MONGODB_URI).
"""

import datetime
import gzip
import hashlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402

NEVER = "0 0 29 2 *"          # Feb 29th: never fires during a test
SET_PATH = "backups/{date}T{time}/tralivali_{collection}.bson.gz"
HELPERS = ("export-collection", "upload-blob")


def setUpModule():
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


def ping(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(path)
        s.sendall(b"ping\n")
        data = b""
        while True:
            b = s.recv(4096)
            if not b:
                return data
            data += b
    except OSError:
        return b""
    finally:
        s.close()


def alive(pid):
    st = h.proc_stat(pid)
    return st is not None and st[1] != "Z"


class ProcessFaultCase(h.BackupTestCase):

    def setUp(self):
        super().setUp()
        self.require_faults()
        self.sock = os.path.join(self.tmp, "control.sock")
        self._raw = {}

    # ---------------------------------------------------------------- data
    def source(self, coll):
        if coll not in self._raw:
            self._raw[coll] = h.read_raw(self.db, coll)
        return self._raw[coll]

    # -------------------------------------------------------------- daemon
    def start_daemon(self, conf):
        r = self.start_backup(conf, args=["-f"])
        self.addCleanup(self._stop_quietly, r)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if r.proc.poll() is not None:
                self.fail("the daemon exited with %s at start; log:\n%s"
                          % (r.proc.returncode, r.log()))
            if ping(self.sock).startswith(b"OK"):
                return r
            time.sleep(0.05)
        self.fail("the daemon does not answer on %s; log:\n%s" % (self.sock, r.log()))

    @staticmethod
    def _stop_quietly(r):
        if r.proc.poll() is None:
            try:
                os.kill(r.pid, signal.SIGTERM)
                r.proc.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                r.kill()

    def stop_daemon(self, r):
        os.kill(r.pid, signal.SIGTERM)
        rc, log, _ = r.wait(30)
        self.assertExit(rc, 0, log)

    def ctl(self, *args, timeout=60):
        p = subprocess.run([h.CTL, "-s", self.sock] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           env=h.daemon_env())
        return p.returncode, p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")

    def status(self, r=None):
        rc, out = self.ctl("status", "--json", timeout=15)
        self.assertEqual(rc, 0, "status --json exited %d: %s%s"
                         % (rc, out, ("\nlog:\n" + r.log()) if r else ""))
        return json.loads(out)

    def wait_status(self, pred, what, r, timeout=30):
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            st = self.status(r)
            if pred(st):
                return st
            if r.proc.poll() is not None:
                self.fail("the daemon exited while waiting for %s; log:\n%s" % (what, r.log()))
            time.sleep(0.1)
        self.fail("no status with %s after %s s; last %s\nlog:\n%s"
                  % (what, timeout, json.dumps(st, indent=1), r.log()))

    def fired(self):
        return self.mongo.stats().get("faultsFired", 0)

    def arm(self, **fault):
        """Install a MongoDB fault (replacing any); faultsFired is cumulative
        over the module, so remember where it stood."""
        self._fired_base = self.fired()
        self.mongo.fault(clear=True, **fault)

    def wait_fault_fired(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.fired() > self._fired_base:
                return
            time.sleep(0.05)
        self.fail("the injected fault never fired: %r" % self.mongo.stats())

    # -------------------------------------------------------------- checks
    def helpers_left(self):
        """Live export-collection / upload-blob processes below the test
        (the test process is a subreaper: orphans land here)."""
        return [(pid, argv) for pid, argv in h.stray_processes()
                if argv and os.path.basename(argv[0]) in HELPERS]

    def assertHelpersGone(self, pids, log, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            h._reap_orphans()
            left = [p for p in pids if alive(p)] + [p for p, _a in self.helpers_left()]
            if not left:
                return
            time.sleep(0.1)
        self.fail("helpers outlived their supervisor by %s s: %r; log:\n%s"
                  % (timeout, [(p, h.proc_cmdline(p)) for p in sorted(set(left))], log))

    def folders(self):
        """{set folder ("backups/...T.../"): [blob names]}."""
        out = {}
        for n in self.blobs.names(""):
            folder, _slash, _base = n.rpartition("/")
            out.setdefault(folder + "/", []).append(n)
        return out

    def manifest(self, folder):
        name = folder + "manifest.json"
        if name not in self.blobs.names(name):
            return None
        raw = self.blobs.download(name)
        try:
            return json.loads(raw)
        except ValueError as e:
            self.fail("%s is not JSON (%s): %r" % (name, e, raw[:300]))

    def assertBlobIsSource(self, name, coll, log=""):
        got = gzip.decompress(self.blobs.download(name))
        want, _n = self.source(coll)
        if got != want:
            self.fail("%s differs from the source: %s\nlog:\n%s"
                      % (name, h.describe_bson_difference(got, want), log))

    def assertDataBlobsAreSource(self, folder, colls, log=""):
        """Every data blob committed in folder is its collection, exactly."""
        for name in self.blobs.names(folder):
            m = re.match(r"^.*/tralivali_(.+)\.bson\.gz$", name)
            if m:
                self.assertIn(m.group(1), colls, "a blob of an unknown collection: %s" % name)
                self.assertBlobIsSource(name, m.group(1), log)

    def assertCompleteManifest(self, folder, colls, log=""):
        """The manifest in folder says complete and everything it claims is
        in Azure: each blob present, its size and SHA-256, its documents."""
        m = self.manifest(folder)
        self.assertIsNotNone(m, "no manifest in %s: %r" % (folder, self.blobs.names(folder)))
        self.assertIs(m.get("complete"), True, json.dumps(m, indent=1))
        entries = {e.get("name"): e for e in m.get("collections") or []}
        self.assertEqual(sorted(entries), sorted(colls), json.dumps(m, indent=1))
        names = set(self.blobs.names(folder))
        for coll, e in entries.items():
            self.assertEqual(e.get("result"), "ok", e)
            self.assertIn(e.get("blob"), names, "%s: data blob missing; log:\n%s" % (coll, log))
            self.assertIn(e.get("metadata_blob"), names, "%s: metadata blob missing" % coll)
            data = self.blobs.download(e["blob"])
            self.assertEqual(e.get("gzip_bytes"), len(data), e)
            self.assertEqual(e.get("sha256"), hashlib.sha256(data).hexdigest(), e)
            raw = gzip.decompress(data)
            want, n = self.source(coll)
            self.assertEqual(e.get("bson_bytes"), len(want), e)
            self.assertEqual(e.get("documents"), n, e)
            if raw != want:
                self.fail("%s differs from the source: %s" % (e["blob"], h.describe_bson_difference(raw, want)))
            json.loads(gzip.decompress(self.blobs.download(e["metadata_blob"])))
        return m


# --------------------------------------------------------------------------

class TestSupervisorKilled(ProcessFaultCase):

    def test_sigkill_mid_run_then_catch_up(self):
        self.db["small"].insert_many(list(h.gen_users(20, seed=31)))
        self.db["types"].insert_one(h.every_type_document())
        h.seed_users(self.db, "big", 300, seed=32)        # > 101: needs a getMore
        colls = ["big", "small", "types"]

        # The schedule: once a day, at X = a few seconds from now.  Catch-up
        # at start needs "an occurrence since the last run started" in
        # state.json, and state.json records a run only when it ends - a run
        # killed with its supervisor is never recorded.  So:
        #   1. `ctl run --wait` before X: a finished run, started at T0 < X;
        #   2. at X the scheduled run starts; big's export hangs (getMore
        #      never answered) and the supervisor is SIGKILLed mid-run;
        #   3. at restart the last recorded start is T0 and the occurrence X
        #      lies between T0 and now: catch_up = yes makes the run up at
        #      once.  The next occurrence is a day away, so nothing else
        #      fires during the test.
        x = (datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
             + datetime.timedelta(seconds=7))
        cron = "%d %d %d * * *" % (x.second, x.minute, x.hour)
        conf = self.write_config(collections=", ".join(colls),
                                 schedule={"cron": cron, "timezone": "UTC", "catch_up": "yes"},
                                 azure={"blob_path": SET_PATH})
        r = self.start_daemon(conf)
        rc, out = self.ctl("run", "--wait")
        self.assertEqual(rc, 0, "run --wait: %s\nlog:\n%s" % (out, r.log()))
        st = self.status(r)
        first = st["last_run"]
        self.assertEqual(first.get("result"), "complete", st)
        self.assertLess(datetime.datetime.now(datetime.timezone.utc), x,
                        "the manual run ended after the scheduled time; the test's timing is off")

        # 2. The scheduled run, stalled on big's first getMore.
        self.arm(hang_on_getmore=1)
        st = self.wait_status(lambda s: s.get("state") == "running", "the scheduled run", r,
                              timeout=20)
        run_id = st["current_run"]["run_id"]
        self.assertNotEqual(run_id, first["run_id"])
        r.wait_for_child("export-collection", h.is_data_export("big"))
        r.wait_for_child("upload-blob", h.is_data_upload("big"))
        self.wait_fault_fired()
        time.sleep(0.5)                  # let small and types move along
        kids = [pid for pid, _n, _a in r.children()]
        self.assertTrue(kids)
        os.kill(r.pid, signal.SIGKILL)
        r.proc.wait(10)
        log1 = r.log()

        # Children die with it.
        self.assertHelpersGone(kids, log1)

        # Nothing of big committed outside the first set; the killed set's
        # manifest (if the set has anything at all) is not complete.
        sets = self.folders()
        self.assertIn(first["set"], sets)
        killed = [f for f in sets if f != first["set"]]
        self.assertLessEqual(len(killed), 1, "more sets than runs: %r" % sorted(sets))
        for f in killed:
            self.assertNotIn(f + "tralivali_big.bson.gz", sets[f],
                             "the stalled collection was committed after SIGKILL; log:\n" + log1)
            m = self.manifest(f)
            self.assertIsNotNone(m, "set %s has blobs %r but no manifest" % (f, sets[f]))
            self.assertIs(m.get("complete"), False, json.dumps(m, indent=1))
            self.assertEqual(m.get("run_id"), run_id, m)
            self.assertDataBlobsAreSource(f, colls, log1)
        self.assertCompleteManifest(first["set"], colls, log1)

        # 3. Restart: the catch-up run happens at start and completes.
        self.mongo.clear_faults()
        # A set is named by its start second: restart in a later second than
        # the killed run's, so that its set stays apart and can be re-checked.
        time.sleep(1.1)
        t_restart = time.monotonic()
        r2 = self.start_daemon(conf)
        st = self.wait_status(
            lambda s: s.get("state") == "idle" and (s.get("last_run") or {}).get("run_id")
            not in (None, first["run_id"]), "a finished catch-up run", r2, timeout=40)
        self.assertLess(time.monotonic() - t_restart, 30)
        log2 = r2.log()
        self.assertRegex(log2, r"(?i)catch-up", "the log does not say the run is a catch-up")
        last = st["last_run"]
        self.assertEqual(last.get("result"), "complete", json.dumps(st, indent=1) + "\n" + log2)
        self.assertNotEqual(last["run_id"], run_id)
        self.assertNotIn(last["set"], (first["set"],) + tuple(killed),
                         "the catch-up run wrote into an earlier run's set\nfirst log:\n%s\nlog:\n%s"
                         % (log1, log2))
        self.assertCompleteManifest(last["set"], colls, log2)
        self.assertDataBlobsAreSource(last["set"], colls, log2)
        for f in killed:                # the restart did not touch the killed set
            self.assertIs(self.manifest(f).get("complete"), False, f)
            self.assertNotIn(f + "tralivali_big.bson.gz", self.blobs.names(f))
        entries = {c["name"]: c for c in last.get("collections") or []}
        self.assertEqual(sorted(entries), colls, last)
        for coll in colls:
            self.assertEqual(entries[coll].get("result"), "ok", entries[coll])
            self.assertEqual(entries[coll].get("blob"), last["set"] + "tralivali_%s.bson.gz" % coll)
        # Once only: no second catch-up, nothing else running.
        self.assertEqual(sum(v for v in (st.get("runs") or {}).values() if isinstance(v, int)), 2, st)
        self.stop_daemon(r2)


# --------------------------------------------------------------------------

def _wchan(pid):
    try:
        with open("/proc/%d/wchan" % pid) as f:
            return f.read().strip() or "-"
    except OSError:
        return "?"


class TestChildKilled(ProcessFaultCase):

    SEEDS = (1, 2, 3, 4, 5, 6, 7)
    USERS = 60000       # ~45 MB of BSON: with zlib on one thread a run takes ~2 s

    def test_random_child_sigkill(self):
        h.seed_users(self.db, "users", self.USERS, seed=41)
        self.db["small"].insert_many(list(h.gen_users(50, seed=42)))
        self.db["types"].insert_one(h.every_type_document())
        colls = ["users", "small", "types"]
        for c in colls:
            self.source(c)
        hits = 0
        report = []
        for seed in self.SEEDS:
            with self.subTest(seed=seed):
                hit = self.one_kill(seed, colls, report)
                hits += bool(hit)
        sys.stderr.write("child kills: %s\n" % "; ".join(report))
        # The kills must have landed mostly, or this tested nothing.
        self.assertGreaterEqual(hits, len(self.SEEDS) // 2,
                                "too few kills hit a running child: %s" % report)

    def one_kill(self, seed, colls, report):
        rng = random.Random(seed)
        target = rng.choice(HELPERS)
        delay = rng.uniform(0.0, 0.5)
        prefix = "seed%d/" % seed
        # zlib on one thread: the run lasts long enough to be hit, however
        # fast the default engine makes it.
        conf = self.write_config(collections=", ".join(colls), limits={"export_retries": 0},
                                 azure={"blob_path": prefix + SET_PATH},
                                 compression={"engine": "zlib", "threads": 1})
        run = self.start_backup(conf)
        # The kill lands a random moment after the first target child is
        # seen, so it hits whatever the machine's speed.
        t0 = time.monotonic()
        deadline = t0 + 10
        while not run.children((target,)) and time.monotonic() < deadline and \
                run.proc.poll() is None:
            time.sleep(0.01)
        time.sleep(delay)
        delay = time.monotonic() - t0      # when the kill came, for the report
        victim, hit = None, False
        # The daemon's own children only.  In a sanitizer build a helper
        # that exits clones a LeakSanitizer tracer with the same command
        # line; killing that tracer leaves the helper spinning at its exit
        # for ever - the "hang" this test used to report, a harm no real
        # deployment can suffer.
        tree = h.process_tree()
        kids = sorted(k for k in run.children((target,))
                      if k[0] in tree and tree[k[0]][0] == run.pid)
        if kids:
            pid, _name, argv = rng.choice(kids)
            st = h.proc_stat(pid)
            if st is not None and st[1] != "Z":
                try:
                    os.kill(pid, signal.SIGKILL)
                    victim, hit = (pid, argv), True
                except ProcessLookupError:
                    pass
        # Said now, not only in the report: a run that hangs must name its
        # victim and what was still running.
        sys.stderr.write("seed %d: %s at %.2f s after the run started\n"
                         % (seed, "killed %s (pid %d)" % (" ".join(victim[1]), victim[0])
                            if hit else "no %s to kill" % target, delay))
        deadline = time.monotonic() + 85
        while run.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        left = []
        if run.proc.poll() is None:
            # What the stuck run was waiting for, before the stop kills it.
            left = ["%d %s state %s wchan %s" % (pid, " ".join(argv),
                                                 (h.proc_stat(pid) or ("", "?"))[1], _wchan(pid))
                    for pid, _name, argv in run.children()]
        try:
            rc, log, elapsed = run.wait(timeout=5)
        except AssertionError as e:
            raise AssertionError("seed %d, victim %s: %s\nstill running after 85 s: %s"
                                 % (seed, victim, e, left or "nothing")) from None
        what = "missed" if not hit else "%s %s" % (victim[1][0], victim[1][-1])
        report.append("seed %d: %s after %.2f s -> %s, exit %d in %.1f s"
                      % (seed, target, delay, what, rc, elapsed))
        ctx = "seed %d, %s killed after %.2f s (%s); log:\n%s" % (seed, target, delay, what, log)

        self.assertIn(rc, (0, 1), ctx)
        lister = hit and "--list" in victim[1]
        if lister:
            # The collections are named: a lost listing costs only the
            # largest-first order, never the run.
            self.assertEqual(rc, 0, "the lister was killed and the run failed: " + ctx)
            self.assertRegex(log, r"warning: .*(--list|listing|order)", ctx)
        elif hit:
            self.assertEqual(rc, 1, "a child was SIGKILLed mid-run, yet exit 0: " + ctx)
        self.assertHelpersGone([], log)

        folders = [f for f in self.folders() if f.startswith(prefix)]
        self.assertLessEqual(len(folders), 1, "%s: sets %r; %s" % (prefix, folders, ctx))
        vcoll, vkind = self.victim_of(victim[1]) if hit else (None, None)
        if not folders:
            # Nothing at all in Azure: only when the first (incomplete)
            # manifest could not be written, so no collection was started.
            self.assertEqual(vkind, "manifest", "no set at all: " + ctx)
            self.assertEqual(rc, 1, ctx)
            return hit
        folder = folders[0]
        self.assertDataBlobsAreSource(folder, colls, ctx)
        m = self.manifest(folder)
        self.assertIsNotNone(m, "a set without a manifest: %r; %s" % (self.blobs.names(folder), ctx))
        entries = {e.get("name"): e for e in m.get("collections") or []}
        self.assertEqual(sorted(entries), sorted(colls), m)
        all_ok = all(e.get("result") == "ok" for e in entries.values())
        self.assertIs(m.get("complete"), all_ok, "complete flag vs results: %s\n%s"
                      % (json.dumps(m, indent=1), ctx))
        self.assertEqual(rc == 0, all_ok, "exit %d with results %r; %s"
                         % (rc, {k: e.get("result") for k, e in entries.items()}, ctx))
        if all_ok:
            self.assertCompleteManifest(folder, colls, ctx)
        if vkind == "manifest":
            self.assertIs(m.get("complete"), False, ctx)
        elif hit and not lister:
            # The victim's collection failed; a killed data export never
            # leaves a committed blob.
            self.assertIn(vcoll, colls, "cannot tell the victim's collection: %r" % (victim,))
            self.assertEqual(entries[vcoll].get("result"), "failed", ctx)
            self.assertTrue(entries[vcoll].get("error"), entries[vcoll])
            if vkind == "data-export":
                self.assertNotIn(folder + "tralivali_%s.bson.gz" % vcoll, self.blobs.names(folder),
                                 "the killed export's blob was committed: " + ctx)
        return hit


    @staticmethod
    def victim_of(argv):
        """(collection, kind) of a helper's argv: kind is data-export,
        metadata-export, data-upload, metadata-upload or manifest."""
        name, last = argv[0], argv[-1]
        if name == "export-collection" and "--list" in argv:
            return None, "list"
        if name == "export-collection":
            return last, "metadata-export" if "--metadata" in argv else "data-export"
        if last.endswith("/manifest.json"):
            return None, "manifest"
        m = re.match(r"^.*/tralivali_(.+?)\.(bson|metadata\.json)\.gz$", last)
        if not m:
            return None, None
        return m.group(1), "data-upload" if m.group(2) == "bson" else "metadata-upload"


# --------------------------------------------------------------------------

class TestMongoMidCursor(ProcessFaultCase):

    BIG = 300

    def seed(self):
        h.seed_users(self.db, "big", self.BIG, seed=51)
        self.db["small"].insert_many(list(h.gen_users(20, seed=52)))

    def config(self, retries):
        # socketTimeoutMS ends a hung getMore; the fake answers everything
        # else at once.
        uri = self.mongo.uri.rstrip("/") + "/?socketTimeoutMS=2000&connectTimeoutMS=2000"
        return self.write_config(collections="big, small", mongo_uri=uri,
                                 schedule={"cron": NEVER, "timezone": "UTC", "catch_up": "no"},
                                 limits={"export_retries": retries},
                                 azure={"blob_path": SET_PATH})

    def faulted_run(self, r, fault, want_rc):
        self.arm(**{fault: 1})
        if fault == "hang_on_getmore":
            self.assertEqual(self.ctl("run")[0], 0)
            self.wait_fault_fired()
            # The daemon answers while an export hangs.
            t0 = time.monotonic()
            st = self.status(r)
            self.assertLess(time.monotonic() - t0, 2)
            self.assertEqual(st.get("state"), "running", st)
            self.wait_status(lambda s: s.get("state") == "idle", "the end of the run", r, 60)
            rc = 0 if self.status(r)["last_run"]["result"] == "complete" else 1
        else:
            rc, out = self.ctl("run", "--wait")
        self.assertGreater(self.fired(), self._fired_base, "the %s fault never fired" % fault)
        st = self.status(r)
        self.assertExit(rc, want_rc, r.log())
        self.assertIsNone(r.proc.poll(), "the daemon died: " + r.log())
        self.assertEqual(st.get("state"), "idle", st)
        self.assertEqual(self.helpers_left(), [])
        time.sleep(1.05)                 # the next run gets its own {time} folder
        return st["last_run"]

    def test_without_retries_fails_cleanly(self):
        self.seed()
        r = self.start_daemon(self.config(0))
        for fault in ("close_on_getmore", "half_reply_on_getmore", "hang_on_getmore",
                      "cursor_not_found_on_getmore"):
            with self.subTest(fault=fault):
                last = self.faulted_run(r, fault, 1)
                entries = {c["name"]: c for c in last["collections"]}
                self.assertEqual(last["result"], "partial", last)
                self.assertEqual(entries["big"]["result"], "failed", last)
                self.assertTrue(entries["big"].get("error"), last)
                self.assertEqual(entries["small"]["result"], "ok", last)
                names = self.blobs.names(last["set"])
                self.assertNotIn(last["set"] + "tralivali_big.bson.gz", names,
                                 "%s: a blob of the failed export was committed" % fault)
                self.assertIn(last["set"] + "tralivali_small.bson.gz", names)
                self.assertDataBlobsAreSource(last["set"], ["big", "small"], r.log())
                m = self.manifest(last["set"])
                self.assertIs(m.get("complete"), False, m)
        self.mongo.clear_faults()
        rc, out = self.ctl("run", "--wait")
        self.assertEqual(rc, 0, "a clean run after the faults: %s\n%s" % (out, r.log()))
        self.assertCompleteManifest(self.status(r)["last_run"]["set"], ["big", "small"], r.log())
        self.stop_daemon(r)

    def test_with_retries_completes(self):
        self.seed()
        r = self.start_daemon(self.config(2))
        for fault in ("close_on_getmore", "hang_on_getmore", "cursor_not_found_on_getmore"):
            with self.subTest(fault=fault):
                last = self.faulted_run(r, fault, 0)
                self.assertEqual(last["result"], "complete", last)
                self.assertCompleteManifest(last["set"], ["big", "small"], r.log())
        self.assertRegex(r.log(), r"\bbig\b.*retr", "no retry of big was logged")
        self.stop_daemon(r)


if __name__ == "__main__":
    h.main()
