#!/usr/bin/python3
"""test_storage_faults.py - the storage misbehaving, through tests/fault_proxy.py.

The daemon's connection string points its BlobEndpoint at a fault-injecting
proxy in front of Azurite.  What landed is always read directly from
Azurite with Microsoft's SDK (self.blobs), never through the proxy.

  * transient answers (503, 429 with Retry-After, 503 with
    x-ms-retry-after-ms), connection resets mid-body, a lost Put Block List
    answer and slow answers are absorbed by upload-blob's own retries;
  * an outage trips the supervisor's circuit breaker ([breaker]): uploads
    pause, one trial goes out after open_seconds, and the run completes once
    the storage is back - or, if it never comes back, [limits] run_timeout
    cancels the run cleanly;
  * non-retryable answers (403, 404 container, 409) fail at once, are not
    retried and do not count towards the breaker;
  * the breaker is visible in `mongo-azure-backupctl status --json`, in
    `metrics` and in the state file.

The harness checks after every test that no process was left behind.
"""

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import harness as h  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402

USERS_DOCS = 6000      # ~4.5 MB BSON, ~1.2 MB gzip: 2 blocks of 1 MiB
SMALL_DOCS = 50
COLLS = ("users", "small", "types")
EVERY_3S = "*/3 * * * * *"

BREAKER_OPEN = r"breaker\b.*\bopen\b(?!-)"
BREAKER_HALF_OPEN = r"breaker\b.*\bhalf-open\b"
BREAKER_CLOSED = r"breaker\b.*\bclosed\b"


def setUpModule():
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


class StorageFaultCase(h.BackupTestCase):

    def setUp(self):
        super().setUp()
        self.proxy = FaultProxy(upstream_port=self.azurite.port).start()
        self.addCleanup(self.proxy.stop)

    # data and configuration ------------------------------------------------
    def seed(self, users=True):
        if users:
            h.seed_users(self.db, "users", USERS_DOCS, seed=21)
        self.db["small"].insert_many(list(h.gen_users(SMALL_DOCS, seed=22)))
        self.db["types"].insert_one(h.every_type_document())

    def config(self, azure=None, breaker=None, limits=None, **kw):
        az = {"block_size": "1M", "max_retries": 4}
        az.update(azure or {})
        lim = {"parallel": 2, "run_timeout": "100s"}
        lim.update(limits or {})
        kw.setdefault("collections", ", ".join(COLLS))
        kw.setdefault("connection_string", self.proxy.connection_string())
        return self.write_config(azure=az, breaker=breaker or {}, limits=lim, **kw)

    # the proxy's view --------------------------------------------------------
    def requests(self, kind=None, path=None, st=None):
        st = st or self.proxy.stats()
        return [e for e in st["log"]
                if (kind is None or e["kind"] == kind) and (path is None or path in e["path"])]

    def fired(self, st=None):
        return (st or self.proxy.stats())["faults_fired"]

    def retry_of(self, entry, st):
        """The first later request with the same method, path and query."""
        for e in st["log"]:
            if (e["t"] > entry["t"] and e["method"] == entry["method"] and
                    e["path"] == entry["path"] and e["query"] == entry["query"]):
                return e
        return None

    # what landed (read directly from Azurite) ----------------------------------
    def set_date(self, log=""):
        dates = sorted({n.split("/")[1] for n in self.blobs.names("backups/")})
        self.assertEqual(len(dates), 1, "backup sets: %r; log:\n%s" % (dates, log))
        return dates[0]

    def assertIntact(self, coll, date, log):
        name = h.data_blob_name(coll, date)
        self.assertEqual(self.blobs.names(name), [name], "no blob %s; log:\n%s" % (name, log))
        blob = self.blobs.download(name)
        got = gzip.decompress(blob)
        want, ndocs = h.read_raw(self.db, coll)
        if got != want:
            self.fail("%s differs from the source: %s\nlog:\n%s"
                      % (name, h.describe_bson_difference(got, want), log))
        props = self.blobs.properties(name)
        self.assertEqual(props.size, len(blob))
        md5 = props.content_settings.content_md5
        self.assertIsNotNone(md5, "%s has no Content-MD5" % name)
        self.assertEqual(bytes(md5), h.hashlib.md5(blob).digest(), "%s Content-MD5" % name)
        meta = props.metadata or {}
        self.assertEqual(meta.get("sha256"), h.sha256_hex(blob), "%s metadata %r" % (name, meta))
        self.assertEqual(meta.get("documents"), str(ndocs), "%s metadata %r" % (name, meta))
        mname = h.metadata_blob_name(coll, date)
        self.assertEqual(self.blobs.names(mname), [mname], "no metadata blob %s; log:\n%s" % (mname, log))
        return name

    def manifest(self, date):
        name = h.manifest_blob_name(date)
        if name not in self.blobs.names(name):
            return None
        return json.loads(self.blobs.download(name))

    def assertComplete(self, log, colls=COLLS):
        date = self.set_date(log)
        for c in colls:
            self.assertIntact(c, date, log)
        m = self.manifest(date)
        self.assertIsNotNone(m, "no manifest; log:\n" + log)
        self.assertIs(m.get("complete"), True, "manifest not complete: %r" % m)
        entries = {e.get("name"): e for e in m.get("collections", [])}
        for c in colls:
            self.assertEqual(entries.get(c, {}).get("result"), "ok", m)
        self.assertLogMatches(log, r"run \S+: complete\b", "saying the run is complete")
        return date

    def assertNoCollectionBlobs(self, log):
        names = self.blobs.names("")
        hits = [n for n in names if n.endswith(".bson.gz") or n.endswith(".metadata.json.gz")]
        self.assertEqual(hits, [], "blobs committed by a failed run; log:\n" + log)
        for n in names:
            if n.endswith("manifest.json"):
                m = json.loads(self.blobs.download(n))
                self.assertIsNot(m.get("complete"), True, "a failed run left a complete manifest: %r" % m)

    def assertNoBreakerTrip(self, log):
        for line in log.splitlines():
            if re.search(BREAKER_OPEN, line, re.I) or re.search(BREAKER_HALF_OPEN, line, re.I):
                self.fail("the breaker tripped: %r\nlog:\n%s" % (line, log))

    def assertNoRequeue(self, log):
        """No transient-failure re-queue in a run that should not have had one."""
        self.assertNotRegex(log, r"(?im)^.*mongo-azure-backupd\[\d+\]:.*\b(again|re-?queue)",
                            "the supervisor re-queued work; log:\n" + log)


# ---------------------------------------------------------------------------

class TestTransientRetried(StorageFaultCase):
    """Faults upload-blob absorbs itself: the run succeeds, nothing is
    re-queued, the breaker stays closed, the data is intact."""

    def test_503_and_429_on_put_blocks(self):
        self.seed()
        conf = self.config()
        users = "/tralivali_users.bson.gz"
        small = "/tralivali_small.bson.gz"
        types = "/tralivali_types.bson.gz"
        self.proxy.add_fault(kind="put_block", path=users, status=503, count=2)
        f429 = self.proxy.add_fault(kind="put_block", path=small, status=429,
                                    headers={"Retry-After": "1"})
        fms = self.proxy.add_fault(kind="put_block", path=types, status=503,
                                   headers={"x-ms-retry-after-ms": "2500"})
        rc, log, elapsed = self.run_backup(conf, timeout=90)
        st = self.proxy.stats()
        self.assertEqual(self.fired(st), 4, "not every fault fired: %r\nlog:\n%s" % (st["fired"], log))
        self.assertExit(rc, 0, log)
        self.assertComplete(log)
        self.assertLogMatches(log, r"upload-blob\[\d+\]:.*tralivali_users\.bson\.gz.*\b(503|ServerBusy)\b.*\bretry",
                              "saying users' Put Block is retried after a 503")
        self.assertNoBreakerTrip(log)
        self.assertNoRequeue(log)
        by_id = {e["fault"]: e for e in st["log"] if e["fault"] is not None}
        for fid, lo, hi in ((f429, 0.95, 3.5), (fms, 2.4, 4.0)):
            e = by_id[fid]
            again = self.retry_of(e, st)
            self.assertIsNotNone(again, "the refused Put Block %s was never sent again" % e["query"])
            self.assertEqual(again["status"], 201, again)
            gap = again["t"] - e["t"]
            self.assertGreaterEqual(gap, lo, "retried after %.2f s, the answer asked for %.1f s" % (gap, lo))
            self.assertLess(gap, hi, "retried only after %.2f s" % gap)
        # Every refused Put Block of users was sent again and accepted.
        for e in st["log"]:
            if e["fault"] is not None and users in e["path"]:
                again = self.retry_of(e, st)
                self.assertTrue(again is not None, "Put Block %s never retried" % e["query"])

    def test_reset_mid_body_on_put_block(self):
        self.seed()
        conf = self.config()
        users = "/tralivali_users.bson.gz"
        fid = self.proxy.add_fault(kind="put_block", path=users, action="reset_mid_body",
                                   after_bytes=100000)
        self.proxy.add_fault(kind="put_block", path="/manifest.json", action="reset_before")
        rc, log, _ = self.run_backup(conf, timeout=90)
        st = self.proxy.stats()
        self.assertEqual(self.fired(st), 2, "not every fault fired: %r\nlog:\n%s" % (st["fired"], log))
        self.assertExit(rc, 0, log)
        self.assertComplete(log)
        e = [x for x in st["log"] if x["fault"] == fid][0]
        again = self.retry_of(e, st)
        self.assertIsNotNone(again, "the reset Put Block was never sent again")
        self.assertEqual(again["status"], 201, again)
        self.assertNoBreakerTrip(log)
        self.assertNoRequeue(log)

    def test_lost_put_block_list_answer(self):
        """Azurite commits, the answer is lost (reset): upload-blob sends the
        same list again, which Azure accepts; the blob is committed once,
        with the right content and blocks."""
        self.seed()
        conf = self.config()
        users = "/tralivali_users.bson.gz"
        self.proxy.add_fault(kind="put_block_list", path=users, action="reset_after")
        rc, log, _ = self.run_backup(conf, timeout=90)
        st = self.proxy.stats()
        self.assertEqual(self.fired(st), 1, "the fault never fired: %r\nlog:\n%s" % (st, log))
        self.assertExit(rc, 0, log)
        date = self.assertComplete(log)
        commits = self.requests("put_block_list", users, st)
        self.assertGreaterEqual(len(commits), 2, "the lost commit was not sent again: %r" % commits)
        self.assertEqual(commits[0]["outcome"], "reset_after", commits)
        self.assertEqual(commits[0]["upstream_status"], 201, "Azurite did not apply the first commit")
        self.assertEqual(commits[-1]["status"], 201, commits)
        self.assertTrue(all(c["outcome"] == "forwarded" for c in commits[1:]), commits)
        # Exactly the staged blocks, once each: not doubled, not lost.
        staged = {e["query"] for e in self.requests("put_block", users, st) if e["status"] == 201}
        name = h.data_blob_name("users", date)
        committed, uncommitted = self.blobs.container.get_blob_client(name).get_block_list("all")
        self.assertEqual(len(committed), len(staged), "committed %r, staged %r" % (committed, staged))
        self.assertEqual(len({b.id for b in committed}), len(committed), "a block committed twice")
        self.assertGreaterEqual(len(committed), 2, "users fits one block: the test proves less")
        self.assertNoBreakerTrip(log)
        self.assertNoRequeue(log)

    def test_slow_answers(self):
        """Answers held back 3 s are waited for, not abandoned.  (upload-blob
        has no configurable request timeout: it gives up on a request only
        when under 1 byte/s flows for 120 s - CURLOPT_LOW_SPEED_TIME in
        src/azure/azure_blob.c - so a delay past it would take minutes; a 3 s
        delay the client tolerates is tested instead.)"""
        self.seed()
        conf = self.config()
        users = "/tralivali_users.bson.gz"
        self.proxy.add_fault(kind="put_block", path=users, action="delay", delay=3)
        self.proxy.add_fault(kind="put_block_list", path=users, action="delay", delay=3)
        self.proxy.add_fault(kind="create_container", action="delay", delay=3)
        rc, log, elapsed = self.run_backup(conf, timeout=90)
        st = self.proxy.stats()
        self.assertEqual(self.fired(st), 3, "not every delay fired: %r\nlog:\n%s" % (st["fired"], log))
        self.assertExit(rc, 0, log)
        self.assertComplete(log)
        self.assertGreaterEqual(elapsed, 6, "the delays did not hold the run up: %.1f s" % elapsed)
        for e in st["log"]:
            if e["fault"] is not None:
                self.assertEqual(e["status"], 201, e)
                if e["kind"] == "create_container":
                    continue          # every upload sends the same one
                again = self.retry_of(e, st)
                self.assertIsNone(again, "a slow request was abandoned and sent again: %r" % e)
        self.assertNoBreakerTrip(log)


class TestOutage(StorageFaultCase):

    def test_outage_opens_breaker_and_run_completes(self):
        """503 on everything for 10 s, max_retries = 1, failure_threshold = 2,
        open_seconds = 2: the breaker opens, goes half-open and closes; the
        run waits the outage out (here the first manifest meets it, so no
        collection starts before it ends) and completes with every blob
        intact.  The gating itself is checked by the next test."""
        self.seed()
        conf = self.config(azure={"max_retries": 1},
                           breaker={"failure_threshold": 2, "open_seconds": 2},
                           limits={"run_timeout": "100s"})
        outage = 10
        t_end = self.proxy.now() + outage
        self.proxy.outage(outage)
        rc, log, elapsed = self.run_backup(conf, timeout=110)
        st = self.proxy.stats()
        self.assertExit(rc, 0, log)
        self.assertGreaterEqual(elapsed, outage - 1, "a run this fast cannot have waited the outage out")
        self.assertGreater(self.fired(st), 0)
        self.assertLogMatches(log, BREAKER_OPEN, "saying the breaker opened")
        self.assertLogMatches(log, BREAKER_HALF_OPEN, "saying the breaker went half-open")
        self.assertLogMatches(log, BREAKER_CLOSED, "saying the breaker closed again")
        self.assertNotRegex(log, r"(?im)collection \S+: FAILED",
                            "a collection failed instead of waiting; log:\n" + log)
        self.assertComplete(log)
        # Every request after the outage went through; during it nothing did.
        after = [e for e in st["log"] if e["t"] >= t_end + 0.2]
        self.assertTrue(after, "nothing was sent after the outage")
        self.assertTrue(all(e["outcome"] == "forwarded" for e in after), after)

    def test_data_outage_collections_wait(self):
        """Only the collections' blobs fail (the first manifest gets
        through) for 8 s: their uploads count towards the breaker, the
        collections wait queued instead of failing, are exported again and
        the run completes."""
        self.seed()
        conf = self.config(azure={"max_retries": 1}, log={"level": "debug"},
                           breaker={"failure_threshold": 2, "open_seconds": 2},
                           limits={"run_timeout": "100s"})
        outage = 8
        t_end = self.proxy.now() + outage
        self.proxy.add_fault(kind=["put_block", "put_block_list"], path="/tralivali_",
                             status=503, count=0, duration=outage)
        rc, log, elapsed = self.run_backup(conf, timeout=110)
        st = self.proxy.stats()
        self.assertExit(rc, 0, log)
        refused = {e["path"].rsplit("/", 1)[1] for e in st["log"] if e["fault"] is not None}
        self.assertGreaterEqual(len(refused), 2, "fewer than 2 blobs met the outage: %r" % refused)
        self.assertLogMatches(log, BREAKER_OPEN, "saying the breaker opened")
        self.assertLogMatches(log, BREAKER_CLOSED, "saying the breaker closed again")
        self.assertNotRegex(log, r"(?im)collection \S+: FAILED",
                            "a collection failed instead of waiting; log:\n" + log)
        self.assertComplete(log)
        for name in refused:
            ok = [e for e in st["log"] if e["path"].endswith("/" + name) and e["t"] >= t_end
                  and e["kind"] == "put_block_list" and e["status"] == 201]
            self.assertTrue(ok, "%s was not committed after the outage" % name)
        self.check_breaker_gating(log)

    def check_breaker_gating(self, log):
        """From the supervisor's own lines (one process, so their order is
        the order of events; needs [log] level = debug for "collection X:
        starting ..."): no collection upload starts between 'breaker: open'
        and 'half-open', and exactly one (the trial) between 'half-open'
        and the breaker's next change."""
        events = []
        for line in log.splitlines():
            if not re.search(r"mongo-azure-backupd\[\d+\]:", line):
                continue
            if re.search(r"collection \S+: starting", line, re.I):
                events.append(("start", line))
            elif re.search(r"\bbreaker\b", line, re.I):
                if re.search(BREAKER_HALF_OPEN, line, re.I):
                    events.append(("half-open", line))
                elif re.search(BREAKER_OPEN, line, re.I):
                    events.append(("open", line))
                elif re.search(BREAKER_CLOSED, line, re.I):
                    events.append(("closed", line))
        self.assertTrue(any(e == "start" for e, _l in events),
                        "no 'collection X: starting' debug line; log:\n" + log)
        windows = []          # (state, [start lines]) for each complete period
        state, starts = None, []
        for kind, line in events:
            if kind == "start":
                starts.append(line)
                continue
            if kind == state:
                continue      # a repeated "open" (more failures) keeps the period
            if state in ("open", "half-open"):
                windows.append((state, starts))
            state, starts = kind, []
        opens = [s for st, s in windows if st == "open"]
        trials = [s for st, s in windows if st == "half-open"]
        self.assertTrue(opens, "no complete open period in the log:\n" + log)
        self.assertTrue(trials, "no complete half-open period in the log:\n" + log)
        for s in opens:
            self.assertEqual(s, [], "uploads started while the breaker was open; log:\n" + log)
        for s in trials:
            self.assertEqual(len(s), 1, "%d uploads started while half-open (want exactly the "
                             "trial): %r; log:\n%s" % (len(s), s, log))

    def test_outage_longer_than_run_timeout(self):
        """The storage never comes back: run_timeout = 15s cancels the run,
        exit 1 within about run_timeout plus the kill grace, nothing
        committed, no process left."""
        self.seed(users=False)
        conf = self.config(collections="small, types", azure={"max_retries": 1},
                           breaker={"failure_threshold": 2, "open_seconds": 2},
                           limits={"run_timeout": "15s"})
        self.proxy.outage(None)                 # until cleared (after the test)
        rc, log, elapsed = self.run_backup(conf, timeout=60)
        self.proxy.clear()
        self.assertExit(rc, 1, log)
        self.assertGreaterEqual(elapsed, 14, "gave up after %.1f s, before run_timeout; log:\n%s"
                                % (elapsed, log))
        self.assertLess(elapsed, 15 + 12, "took %.1f s with run_timeout = 15s; log:\n%s" % (elapsed, log))
        self.assertLogMatches(log, r"run \S+: FAILED", "saying the run FAILED")
        self.assertLogMatches(log, r"run_timeout|timed? ?out|time limit", "naming the timeout")
        self.assertLogMatches(log, BREAKER_OPEN, "saying the breaker opened")
        self.assertNoCollectionBlobs(log)
        self.assertGreater(self.fired(), 0)


class TestNotRetryable(StorageFaultCase):

    def test_wrong_key_403(self):
        self.seed(users=False)
        wrong = h.base64.b64encode(os.urandom(64)).decode()
        conf = self.config(collections="small, types",
                           connection_string=self.proxy.connection_string(key=wrong),
                           breaker={"failure_threshold": 1, "open_seconds": 30})
        rc, log, elapsed = self.run_backup(conf, timeout=60)
        st = self.proxy.stats()
        self.assertExit(rc, 1, log)
        self.assertLess(elapsed, 10, "took %.1f s: retry storm on 403?\n%s" % (elapsed, log))
        total = sum(st["requests"].values())
        self.assertGreater(total, 0, "nothing reached the proxy")
        self.assertLessEqual(total, 6, "%d requests for a 403: %r\nlog:\n%s" % (total, st["requests"], log))
        statuses = {s for d in st["statuses"].values() for s in d}
        self.assertEqual(statuses, {"403"}, st["statuses"])
        self.assertLogMatches(log, r"\b403\b", "with the status 403")
        self.assertNotRegex(log, r"(?i)retry \d+ of", "a 403 was retried; log:\n" + log)
        self.assertNoBreakerTrip(log)
        self.assertEqual(self.blobs.names(""), [])

    def test_missing_container_404(self):
        self.seed(users=False)
        conf = self.config(collections="small, types", azure={"create_container": "no"},
                           breaker={"failure_threshold": 1, "open_seconds": 30})
        rc, log, elapsed = self.run_backup(conf, timeout=60)
        st = self.proxy.stats()
        self.assertExit(rc, 1, log)
        self.assertLess(elapsed, 10, "took %.1f s for a missing container\n%s" % (elapsed, log))
        total = sum(st["requests"].values())
        self.assertGreater(total, 0)
        self.assertLessEqual(total, 6, "%d requests for a missing container: %r\nlog:\n%s"
                             % (total, st["requests"], log))
        self.assertEqual(st["requests"].get("create_container", 0), 0, st["requests"])
        self.assertLogMatches(log, r"\b404\b|ContainerNotFound|not found|does not exist",
                              "saying the container does not exist")
        self.assertNotRegex(log, r"(?i)retry \d+ of", "a 404 was retried; log:\n" + log)
        self.assertNoBreakerTrip(log)
        self.assertFalse(self.blobs.exists(), "the container was created with create_container = no")

    def test_409_fails_one_collection(self):
        """A 409 on small's data blob fails small at once (no retry, no
        re-queue, not a breaker failure); the others are backed up."""
        self.seed()
        conf = self.config(breaker={"failure_threshold": 1, "open_seconds": 30})
        small = "/tralivali_small.bson.gz"
        self.proxy.add_fault(kind="put_block", path=small, status=409,
                             error_code="BlobImmutableDueToPolicy", count=0)
        rc, log, elapsed = self.run_backup(conf, timeout=60)
        st = self.proxy.stats()
        self.assertExit(rc, 1, log)
        self.assertLess(elapsed, 20, "took %.1f s\n%s" % (elapsed, log))
        tries = self.requests("put_block", small, st)
        self.assertEqual(len(tries), 1, "small's Put Block was sent %d times: %r" % (len(tries), tries))
        self.assertLogMatches(log, r"collection small: FAILED", "saying small failed")
        self.assertLogMatches(log, r"run \S+: PARTIAL", "saying the run is partial")
        self.assertNoBreakerTrip(log)
        date = self.set_date(log)
        for c in ("users", "types"):
            self.assertIntact(c, date, log)
        self.assertEqual(self.blobs.names(h.data_blob_name("small", date)), [])
        m = self.manifest(date)
        self.assertIsNotNone(m, "no manifest; log:\n" + log)
        self.assertIs(m.get("complete"), False, m)


class TestServiceBreaker(StorageFaultCase):
    """The service (-f, every 3 s) during an outage: status, metrics and the
    state file show the breaker; run_timeout ends the first run with the
    failure hook; after the outage the next run completes and it closes."""

    def ctl(self, *args, timeout=20):
        p = subprocess.run([h.CTL, "-s", self.sock] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           env=h.daemon_env())
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    def status(self):
        rc, out, err = self.ctl("status", "--json")
        self.assertEqual(rc, 0, "status --json exited %d: %s%s" % (rc, out, err))
        try:
            return json.loads(out)
        except ValueError as e:
            self.fail("status --json is not JSON (%s): %r" % (e, out))

    def wait_status(self, pred, what, timeout, r):
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            if r.proc.poll() is not None:
                self.fail("the daemon exited (%s) while waiting for %s; log:\n%s"
                          % (r.proc.returncode, what, r.log()))
            rc, out, _err = self.ctl("status", "--json")
            if rc == 0:
                st = json.loads(out)
                if pred(st):
                    return st
            time.sleep(0.1)
        self.fail("no status with %s after %s s; last: %s\nlog:\n%s"
                  % (what, timeout, json.dumps(st, indent=1), r.log()))

    def metrics(self):
        rc, out, err = self.ctl("metrics")
        self.assertEqual(rc, 0, "metrics exited %d: %s" % (rc, err))
        samples = {}
        for line in out.splitlines():
            m = re.match(r"^(mongo_azure_backup_breaker_\w+)(\{[^}]*\})?\s+(\S+)$", line)
            if m:
                samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
        return samples, out

    def breaker_gauges(self, samples, text):
        gauges = {s: samples.get('mongo_azure_backup_breaker_state{state="%s"}' % s)
                  for s in ("closed", "open", "half-open")}
        self.assertNotIn(None, gauges.values(), "breaker_state gauges missing:\n" + text)
        self.assertEqual(sum(gauges.values()), 1, "not exactly one breaker state: %r" % gauges)
        return [s for s, v in gauges.items() if v == 1][0]

    def test_breaker_in_status_metrics_and_state(self):
        self.seed(users=False)
        self.sock = os.path.join(self.tmp, "control.sock")
        hooks = os.path.join(self.tmp, "hooks")
        os.makedirs(hooks)
        conf = self.config(
            collections="small, types", azure={"max_retries": 1},
            breaker={"failure_threshold": 2, "open_seconds": 2},
            limits={"run_timeout": "12s"},
            schedule={"cron": EVERY_3S, "timezone": "UTC", "catch_up": "no"},
            notify={"on_failure": "env > %s/f.tmp && mv %s/f.tmp %s/failure.env" % (hooks, hooks, hooks),
                    "on_success": "env > %s/s.tmp && mv %s/s.tmp %s/success.env" % (hooks, hooks, hooks),
                    "timeout": "10s"})
        self.proxy.outage(None)
        r = self.start_backup(conf, args=["-f"])
        self.addCleanup(self._stop_quietly, r)

        # 1. open, in status, state file and metrics
        st = self.wait_status(lambda s: (s.get("breaker") or {}).get("state") == "open",
                              'breaker.state "open"', 30, r)
        with open(os.path.join(self.tmp, "state", "state.json")) as f:
            saved = json.load(f)
        self.assertIn((saved.get("breaker") or {}).get("state"), ("open", "half-open"),
                      "the state file does not have the breaker open: %r" % saved)
        samples, text = self.metrics()
        self.assertIn(self.breaker_gauges(samples, text), ("open", "half-open"), text)
        t1 = samples.get("mongo_azure_backup_breaker_transitions_total")
        self.assertIsNotNone(t1, "no breaker_transitions_total:\n" + text)
        self.assertGreaterEqual(t1, 1, text)
        self.assertEqual(st.get("state"), "running", "collections should wait queued in a running run: %r" % st)

        # 2. run_timeout ends the run: failure hook, nothing committed
        env_path = os.path.join(hooks, "failure.env")
        deadline = time.monotonic() + 12 + 20
        while not os.path.exists(env_path) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertTrue(os.path.exists(env_path), "on_failure did not run; log:\n" + r.log())
        with open(env_path) as f:
            env = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
        self.proxy.clear()
        self.assertIn(env.get("MAB_RESULT"), ("failed", "cancelled"), env)
        self.assertTrue(env.get("MAB_ERROR"), "no MAB_ERROR: %r" % env)
        self.assertFalse(os.path.exists(os.path.join(hooks, "success.env")))
        self.assertNoCollectionBlobs(r.log())

        # 3. the storage is back: a later run completes and the breaker closes
        st = self.wait_status(lambda s: (s.get("last_run") or {}).get("result") == "complete"
                              and (s.get("breaker") or {}).get("state") == "closed",
                              "a complete run and breaker closed", 40, r)
        samples, text = self.metrics()
        self.assertEqual(self.breaker_gauges(samples, text), "closed", text)
        t2 = samples.get("mongo_azure_backup_breaker_transitions_total")
        self.assertGreaterEqual(t2, 3, "closed->open->half-open->closed is 3 transitions:\n" + text)
        with open(os.path.join(self.tmp, "state", "state.json")) as f:
            saved = json.load(f)
        self.assertEqual((saved.get("breaker") or {}).get("state"), "closed", saved)
        log = r.log()
        for rx, what in ((BREAKER_OPEN, "open"), (BREAKER_HALF_OPEN, "half-open"),
                         (BREAKER_CLOSED, "closed")):
            self.assertLogMatches(log, rx, "saying the breaker is " + what)
        date = self.set_date(log)
        for c in ("small", "types"):
            self.assertIntact(c, date, log)
        os.kill(r.pid, signal.SIGTERM)
        rc, log, _ = r.wait(30)
        self.assertExit(rc, 0, log)

    def _stop_quietly(self, r):
        if r.proc.poll() is None:
            try:
                os.kill(r.pid, signal.SIGTERM)
                r.proc.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                r.kill()


if __name__ == "__main__":
    h.main()
