#!/usr/bin/python3
"""test_failures.py - what a run does when things break.

Every failure must end with the right exit code, a clear log line, no
committed partial blob (and the previous good blob of the same name
untouched), and no process left behind (checked after every test by the
harness).  Fault injection needs tests/fake_mongod.py; those tests skip
against a real mongod (MAB_TEST_MONGODB_URI).
"""

import base64
import gzip
import json
import os
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402

BIG_DOCS = 30000      # ~23 MB of BSON: more than one 16 MiB getMore batch
SMALL_DOCS = 50       # fits the first batch (101): no getMore, unaffected by faults


def setUpModule():
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


class FailureTestCase(h.BackupTestCase):

    def seed(self, big=True):
        if big:
            h.seed_users(self.db, "big", BIG_DOCS, seed=5)
        self.db["small"].insert_many(list(h.gen_users(SMALL_DOCS, seed=6)))
        self.db["types"].insert_one(h.every_type_document())

    def blob_names(self):
        return self.blobs.names("backups/")

    def assertNoDataBlob(self, coll, log):
        hits = [n for n in self.blob_names() if n.endswith("/tralivali_%s.bson.gz" % coll)]
        self.assertEqual(hits, [], "a blob was committed for %s; log:\n%s" % (coll, log))

    def assertBackedUp(self, coll, date, log):
        name = h.data_blob_name(coll, date)
        self.assertIn(name, self.blob_names(), "no blob for %s; log:\n%s" % (coll, log))
        got = gzip.decompress(self.blobs.download(name))
        want, _n = h.read_raw(self.db, coll)
        if got != want:
            self.fail("%s differs from the source: %s" % (name, h.describe_bson_difference(got, want)))

    def assertFailureLogged(self, log, coll):
        self.assertLogMatches(log, r"\b%s\b.*\b(fail|failed|error)\b" % re.escape(coll),
                              "saying collection %s failed" % coll)

    def manifest(self, date):
        name = h.manifest_blob_name(date)
        if name not in self.blobs.names(name):
            return None
        return json.loads(self.blobs.download(name))

    def assertManifestNotComplete(self, date):
        """The run's set has a manifest (the run claimed its folder with it)
        and it does not say complete."""
        m = self.manifest(date)
        self.assertIsNotNone(m, "no manifest in backups/%s/; blobs %r" % (date, self.blob_names()))
        self.assertIs(m.get("complete"), False, "a failed run left a complete manifest: %r" % m)
        return m

    def plant_previous(self, coll, date):
        """A previous good backup of coll under today's name, via the SDK."""
        if not self.blobs.exists():
            self.blobs.create_container()
        name = h.data_blob_name(coll, date)
        data = gzip.compress(b"previous good backup of " + coll.encode())
        self.blobs.upload(name, data, metadata={"planted": "yes"}, content_type="application/gzip")
        return name, data, self.blobs.properties(name).etag

    def assertUntouched(self, name, data, etag, log):
        self.assertIn(name, self.blob_names(), "the previous blob %s is gone; log:\n%s" % (name, log))
        self.assertEqual(self.blobs.download(name), data, "%s was overwritten; log:\n%s" % (name, log))
        self.assertEqual(self.blobs.properties(name).etag, etag, "%s was rewritten" % name)

    def wait_fault_fired(self, n=1, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.mongo.stats().get("faultsFired", 0) >= n:
                return
            time.sleep(0.05)
        self.fail("the injected fault never fired: %r" % self.mongo.stats())


class TestChildFailures(FailureTestCase):

    def _stalled_run(self, **conf_overrides):
        """Start a run of big, small, types with big's export stalled on its
        first getMore; returns (run, date)."""
        self.require_faults()
        self.seed()
        conf = self.write_config(collections="big, small, types", **conf_overrides)
        self.mongo.fault(hang_on_getmore=1)
        date = h.utc_today()
        run = self.start_backup(conf)
        run.wait_for_child("export-collection", h.is_data_export("big"))
        self.wait_fault_fired()
        return run, date

    def test_export_killed(self):
        """SIGKILL the exporter mid-stream: exit 1, others still backed up,
        manifest incomplete with big failed, previous blob untouched."""
        self.require_faults()
        date = h.utc_today()
        prev = self.plant_previous("big", date)
        run, date = self._stalled_run()
        pid = run.wait_for_child("export-collection", h.is_data_export("big"))
        time.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        rc, log, _ = run.wait(timeout=45)
        self.assertLess(time.monotonic() - t_kill, 30, "the run took too long after the kill")
        self.assertExit(rc, 1, log)
        self.assertFailureLogged(log, "big")
        self.assertUntouched(*prev, log)
        for coll in ("small", "types"):
            self.assertBackedUp(coll, date, log)
        m = self.manifest(date)
        self.assertIsNotNone(m, "no manifest; blobs %r" % self.blob_names())
        self.assertIs(m.get("complete"), False, m)
        entries = {e.get("name"): e for e in m.get("collections", [])}
        self.assertEqual(entries.get("big", {}).get("result"), "failed", m)
        self.assertEqual(entries.get("small", {}).get("result"), "ok", m)
        self.assertTrue(entries["big"].get("error"), "no error text for big: %r" % m)

    def _kill_uploader(self, **conf_overrides):
        run, date = self._stalled_run(**conf_overrides)
        pid = run.wait_for_child("upload-blob", h.is_data_upload("big"))
        time.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        rc, log, _ = run.wait(timeout=45)
        self.assertLess(time.monotonic() - t_kill, 30,
                        "the run took too long after upload-blob[%d] died (stalled exporter not "
                        "stopped?)" % pid)
        # upload-blob is to blame, not the exporter that lost its reader
        self.assertLogMatches(log, r"collection big: .*upload-blob was killed by signal 9",
                              "blaming upload-blob[%d]" % pid)
        self.assertNotRegex(log, r"collection big: .*(export-collection|Broken pipe|EPIPE)",
                            "the exporter was blamed for upload-blob[%d]'s death" % pid)
        return rc, log, date

    def test_upload_killed_is_retried(self):
        """SIGKILL the uploader while the export is stalled: the exporter is
        stopped, the collection is tried again and the run completes."""
        rc, log, date = self._kill_uploader()
        self.assertExit(rc, 0, log)
        self.assertLogMatches(log, r"collection big: attempt 1 failed: upload-blob was killed "
                              r"by signal 9.*retrying", "a retry of big")
        for coll in ("big", "small", "types"):
            self.assertBackedUp(coll, date, log)
        m = self.manifest(date)
        self.assertIs(m.get("complete"), True, m)

    def test_upload_killed_without_retries(self):
        """With export_retries = 0 the death of upload-blob fails the
        collection: exit 1, no blob, the manifest says why."""
        rc, log, date = self._kill_uploader(limits={"export_retries": 0})
        self.assertExit(rc, 1, log)
        self.assertFailureLogged(log, "big")
        self.assertNoDataBlob("big", log)
        self.assertBackedUp("small", date, log)
        m = self.assertManifestNotComplete(date)
        entries = {e.get("name"): e for e in m.get("collections", [])}
        self.assertEqual(entries["big"].get("result"), "failed", m)
        self.assertIn("upload-blob was killed by signal 9", entries["big"].get("error", ""), m)
        self.assertEqual(entries["small"].get("result"), "ok", m)


class TestMongoFailures(FailureTestCase):

    def _dropped(self, fault, retries):
        self.require_faults()
        self.seed()
        over = {} if retries is None else {"limits": {"export_retries": retries}}
        conf = self.write_config(collections="big, small", **over)
        self.mongo.fault(**{fault: 1})
        date = h.utc_today()
        rc, log, elapsed = self.run_backup(conf, timeout=120)
        self.assertGreaterEqual(self.mongo.stats().get("faultsFired", 0), 1,
                                "the %s fault never fired; log:\n%s" % (fault, log))
        return rc, log, date

    def _no_retry(self, fault):
        rc, log, date = self._dropped(fault, retries=0)
        self.assertExit(rc, 1, log)
        self.assertFailureLogged(log, "big")
        self.assertNoDataBlob("big", log)
        self.assertManifestNotComplete(date)

    def _retried(self, fault):
        rc, log, date = self._dropped(fault, retries=None)
        self.assertExit(rc, 0, log)
        self.assertLogMatches(log, r"\bbig\b.*retr", "saying the export of big is retried")
        self.assertBackedUp("big", date, log)
        self.assertBackedUp("small", date, log)
        m = self.manifest(date)
        self.assertIs(m and m.get("complete"), True, m)

    def test_close_on_getmore_no_retry(self):
        self._no_retry("close_on_getmore")

    def test_half_reply_on_getmore_no_retry(self):
        self._no_retry("half_reply_on_getmore")

    def test_close_on_getmore_retried(self):
        self._retried("close_on_getmore")

    def test_half_reply_on_getmore_retried(self):
        self._retried("half_reply_on_getmore")

    def test_unknown_collection(self):
        self.seed(big=False)
        conf = self.write_config(collections="small, nosuchcoll")
        rc, log, _ = self.run_backup(conf, timeout=60)
        self.assertExit(rc, 1, log)
        self.assertLogMatches(log, r"\bnosuchcoll\b", "naming the missing collection")
        self.assertLogMatches(log, r"\bnosuchcoll\b.*(not found|does not exist|no such|missing|unknown)",
                              "saying nosuchcoll does not exist")
        self.assertNoDataBlob("nosuchcoll", log)
        self.assertManifestNotComplete(h.utc_today())


class TestAzureFailures(FailureTestCase):

    def test_wrong_account_key(self):
        self.seed(big=False)
        wrong_key = base64.b64encode(os.urandom(64)).decode()
        cs = h.connection_string(self.azurite.port, key=wrong_key)
        conf = self.write_config(collections="small, types", connection_string=cs)
        rc, log, elapsed = self.run_backup(conf, timeout=60)
        self.assertExit(rc, 1, log)
        self.assertLess(elapsed, 10, "took %.1f s: retry storm on 403?\n%s" % (elapsed, log))
        self.assertLogMatches(log, r"\b403\b", "with the HTTP status 403")
        self.assertLogMatches(log, r"(credential|authenticat|authoriz|account key|refused|forbidden)",
                              "saying the credentials were refused")
        for key in (wrong_key, h.DEV_KEY):
            for i in range(0, len(key) - 12, 6):
                self.assertNotIn(key[i:i + 12], log, "the account key leaked into the log")
        self.assertEqual(self.blob_names(), [])

    def test_azure_never_reached(self):
        """Nothing ever answers at the endpoint: a wrong BlobEndpoint, not an
        outage (test_storage_faults.py has those): the run fails at once,
        says so, and does not wait for run_timeout or open the breaker."""
        self.seed(big=False)
        port = h.free_port()
        cs = h.connection_string(port)
        conf = self.write_config(collections="small, types", connection_string=cs,
                                 limits={"run_timeout": "1h"},
                                 breaker={"failure_threshold": 2, "open_seconds": 2})
        rc, log, elapsed = self.run_backup(conf, timeout=120)
        self.assertExit(rc, 1, log)
        self.assertLess(elapsed, 15, "took %.1f s against a closed port\n%s" % (elapsed, log))
        self.assertLogMatches(log, r"nothing listens at http://127\.0\.0\.1:%d" % port,
                              "naming the endpoint that does not answer")
        self.assertLogMatches(log, r"check BlobEndpoint", "saying what to check")
        self.assertNotRegex(log, r"breaker: open", "an endpoint never reached opened the breaker")
        self.assertEqual(self.blob_names(), [])


class TestConfig(FailureTestCase):

    @staticmethod
    def line_of(path, needle):
        with open(path) as f:
            for i, line in enumerate(f, 1):
                if needle in line:
                    return i
        raise AssertionError("%s not in %s" % (needle, path))

    def assertFileLine(self, text, conf, line):
        rx = r"(%s|%s):%d:" % (re.escape(conf), re.escape(os.path.basename(conf)), line)
        self.assertRegex(text, rx, "no FILE:%d: in:\n%s" % (line, text))

    def test_unknown_key_exit_2(self):
        conf = self.write_config(limits={"bogus_key": 1})
        line = self.line_of(conf, "bogus_key")
        rc, log, elapsed = self.run_backup(conf, timeout=30)
        self.assertExit(rc, 2, log)
        self.assertFileLine(log, conf, line)
        self.assertIn("bogus_key", log)
        self.assertEqual(self.blob_names(), [])

    def test_check_config(self):
        good = self.write_config()
        rc, out, err, _ = h.run_program([h.DAEMON, "-t", "-c", good], timeout=30)
        self.assertEqual(rc, 0, "-t on a good config: %s\n%s%s" % (rc, out.decode(), err))

        bad = self.write_config(limits={"bogus_key": 1, "parallel": "lots"},
                                raw="\n[nosuchsection]\nfoo = bar\n")
        rc, out, err, _ = h.run_program([h.DAEMON, "-t", "-c", bad], timeout=30)
        text = out.decode("utf-8", "replace") + err
        self.assertEqual(rc, 2, "-t on a bad config: %s\n%s" % (rc, text))
        self.assertFileLine(text, bad, self.line_of(bad, "bogus_key"))
        self.assertFileLine(text, bad, self.line_of(bad, "parallel = lots"))
        # an unknown section: its header line or its first key's line
        sec = self.line_of(bad, "[nosuchsection]")
        self.assertTrue(any(re.search(r"%s:%d:.*nosuchsection" % (re.escape(bad), ln), text)
                            for ln in (sec, sec + 1)), text)


class TestSecrets(FailureTestCase):

    def wrappers(self):
        """A libexec dir whose helpers record their argv, then exec the
        real ones; returns (dir, argv log path)."""
        return h.recording_helpers(self.tmp)

    def scan_proc(self, secrets, stop, hits):
        """Scan every process's cmdline until stop is set."""
        while not stop.is_set():
            for pid in h.all_pids():
                argv = " ".join(h.proc_cmdline(pid))
                for s in secrets:
                    if s in argv:
                        hits.append((pid, argv))
            time.sleep(0.01)

    def run_scanned(self, conf, secrets, timeout=120):
        libexec, logp, envp = self.wrappers()
        stop, hits = threading.Event(), []
        t = threading.Thread(target=self.scan_proc, args=(secrets, stop, hits), daemon=True)
        t.start()
        try:
            rc, log, _ = self.run_backup(conf, timeout=timeout, env={"MAB_LIBEXECDIR": libexec})
        finally:
            stop.set()
            t.join(5)
        with open(logp) if os.path.exists(logp) else open(os.devnull) as f:
            argv_log = f.read()
        with open(envp) if os.path.exists(envp) else open(os.devnull) as f:
            env_log = f.read()
        return rc, log, argv_log, env_log, hits

    def check_clean(self, secret, log, argv_log, env_log, hits, what):
        self.assertEqual(hits, [], "%s visible in /proc/PID/cmdline: %r" % (what, hits[:3]))
        self.assertNotIn(secret, argv_log, "%s on a child's command line" % what)
        self.assertNotIn(secret, log, "%s in the daemon's log" % what)
        # Secrets reach the helpers on a sealed memfd (MAB_SECRETS_FD), never
        # in the environment, which /proc/PID/environ shows to the same user.
        self.assertNotIn(secret, env_log, "%s in a child's environment" % what)

    def test_account_key_not_exposed(self):
        self.seed()
        conf = self.write_config(collections="big, small, types")
        rc, log, argv_log, env_log, hits = self.run_scanned(conf, [h.DEV_KEY])
        self.assertExit(rc, 0, log)
        self.assertIn("export-collection", argv_log, "the wrappers were not used:\n" + log)
        self.assertIn("upload-blob", argv_log)
        self.check_clean(h.DEV_KEY, log, argv_log, env_log, hits, "the account key")

    def test_mongodb_password_not_exposed(self):
        real = os.environ.get("MAB_TEST_MONGODB_URI")
        m = re.match(r"^mongodb(?:\+srv)?://[^:/@]+:([^@/]+)@", real or "")
        real_credentials = bool(real and m)
        if real_credentials:
            uri, password = real, m.group(1)
        else:
            password = "Pw" + h.uuid.uuid4().hex
            uri = self.mongo.uri_with_credentials("backupuser", password)
        self.seed(big=False)
        conf = self.write_config(collections="small, types", mongo_uri=uri,
                                 limits={"export_retries": 0})
        rc, log, argv_log, env_log, hits = self.run_scanned(conf, [password])
        self.assertIn("export-collection", argv_log,
                      "export-collection was never started; log:\n" + log)
        self.check_clean(password, log, argv_log, env_log, hits, "the MongoDB password")
        if real_credentials:
            self.assertExit(rc, 0, log)
        else:
            # Made-up credentials: neither the fake nor a real server knows
            # the user, so the login must fail, and say so.
            self.assertExit(rc, 1, log)
            self.assertLogMatches(log, r"\b(small|types)\b.*(auth|sasl|credential)",
                                  "saying the login was refused")


if __name__ == "__main__":
    h.main()
