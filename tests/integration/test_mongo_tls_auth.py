#!/usr/bin/python3
"""test_mongo_tls_auth.py - backups from a MongoDB that speaks only TLS and
wants a SCRAM login, as a production mongod does.

The module starts a fake_mongod.py of its own (not the harness's shared
one) that serves TLS only, with a server certificate from a throwaway CA
(tests/tls.py), and requires authentication, with one user in admin whose
password it reads from a file (so that it is on no command line).  The
daemon gets the URI

    mongodb://USER:PASSWORD@127.0.0.1:PORT/?tls=true&tlsCAFile=CA&authSource=admin

from a [mongodb] uri_file.  Checked:

  * a --once run completes and every blob's content is the source's bytes;
    the fake saw TLS connections and SCRAM logins of that user;
  * the password is in no output: the daemon's log (stderr), a helper's
    command line or environment (recorded by wrappers as each starts, and
    /proc/PID/cmdline and environ read while they run), and, with the
    daemon run as a service, `mongo-azure-backupctl status` (--json and
    plain);
  * a wrong password ends the run with an authentication error, each
    collection tried once (no retries), and names neither password;
  * the server's certificate is really checked: without tlsCAFile the run
    fails on the certificate.

Needs the fake (TLS, SCRAM): skips when MAB_TEST_MONGODB_URI is set.
"""

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402

USER = "backupuser"
# The hex core is what the scans look for: any form of the password (raw,
# percent-encoded) that leaks holds it.  The rest needs percent-encoding in
# a URI, so the URI parsing of the helpers is exercised too.
SECRET_CORE = uuid.uuid4().hex
PASSWORD = "Pw-%s:s/e@c%%" % SECRET_CORE
WRONG_CORE = uuid.uuid4().hex
WRONG_PASSWORD = "Pw-%s" % WRONG_CORE
COLLECTIONS = ("users", "empty", "types")
USERS_DOCS = 700          # several batches: find + getMore over TLS
NEVER = "0 0 29 2 *"

TLS = None


class TLSAuthFake(h.Mongo):
    """tests/fake_mongod.py with --tls-certificate-key-file and --user: TLS
    only, authentication required.  client() logs in as USER."""

    def __init__(self, tls):
        super().__init__()
        self.real_uri = None
        self.tls = tls

    def start(self, timeout=30):
        self.dir = tempfile.mkdtemp(prefix="mab-fake-mongod-tls-")
        pwfile = os.path.join(self.dir, "password")
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(PASSWORD + "\n")
        out = os.path.join(self.dir, "fake_mongod.out")
        with open(out, "wb") as f:
            self.proc = subprocess.Popen(
                [sys.executable, h.FAKE_MONGOD, "--port", "0",
                 "--tls-certificate-key-file", self.tls.cert_file,
                 "--tls-key-file", self.tls.key_file,
                 "--user", USER, "--password-file", pwfile],
                cwd=self.dir, stdin=subprocess.DEVNULL, stdout=f,
                stderr=subprocess.STDOUT, start_new_session=True)
        h.register(self.proc)
        m = h._wait_for_line(out, r"listening 127\.0\.0\.1:(\d+)", self.proc,
                             timeout, "fake_mongod.py (TLS, auth)")
        self.port = int(m.group(1))
        self.uri = self.uri_for(None)
        return self

    def uri_for(self, password=PASSWORD, ca_file=True):
        """The URI the daemon gets; password None: without credentials."""
        cred = ""
        if password is not None:
            cred = "%s:%s@" % (urllib.parse.quote(USER, safe=""),
                               urllib.parse.quote(password, safe=""))
        opts = "tls=true"
        if ca_file:
            opts += "&tlsCAFile=" + self.tls.ca_file
        if password is not None:
            opts += "&authSource=admin"
        return "mongodb://%s127.0.0.1:%d/?%s" % (cred, self.port, opts)

    def client(self):
        import pymongo
        if self._client is None:
            self._client = pymongo.MongoClient(self.uri_for(), serverSelectionTimeoutMS=10000,
                                               connect=True)
        return self._client


def setUpModule():
    if os.environ.get("MAB_TEST_MONGODB_URI"):
        raise unittest.SkipTest("needs tests/fake_mongod.py's TLS and SCRAM on a server of its "
                                "own; MAB_TEST_MONGODB_URI is set")
    for why in (h.Azurite.available(), h.Mongo.available(), h.build_available()):
        if why:
            raise unittest.SkipTest(why)
    try:
        tls = h._import_tls()
    except ImportError as e:
        raise unittest.SkipTest("python3-cryptography is not importable (%s)" % e)
    global TLS
    h.ENV["tmp"] = tempfile.mkdtemp(prefix="mab-tests-")
    try:
        TLS = tls.TLSMaterial(directory=os.path.join(h.ENV["tmp"], "tls"))
        h.ENV["azurite"] = h.Azurite().start()
        h.ENV["mongo"] = TLSAuthFake(TLS).start()
    except BaseException:
        h.teardown_module_env()
        raise


def tearDownModule():
    h.teardown_module_env()


def control_request(path, line, timeout=10.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(line)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        s.close()


class TestMongoTLSAuth(h.BackupTestCase):

    def setUp(self):
        super().setUp()
        self.db["users"].insert_many(list(h.gen_users(USERS_DOCS, seed=41)))
        h.create_empty_collection(self.db, "empty")
        self.db["types"].insert_one(h.every_type_document())

    # configuration ------------------------------------------------------
    def conf(self, uri, **kw):
        """A config whose [mongodb] uri_file (mode 0600) holds uri."""
        path = os.path.join(self.tmp, "mongodb-uri")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(uri + "\n")
        return self.write_config(mongodb={"uri": None, "uri_file": path},
                                 collections=", ".join(COLLECTIONS), **kw)

    # watching the helpers -----------------------------------------------
    def wrappers(self):
        """A libexec dir whose helpers append their argv and environment
        to files, then exec the real ones: (dir, argv log, env log)."""
        return h.recording_helpers(self.tmp)

    def scan_proc(self, secrets, stop, hits, seen):
        """Until stop: every process's command line, and the environment
        of every process below this test (the daemon, its helpers)."""
        me = os.getpid()
        while not stop.is_set():
            below = set(h.descendants(me))
            for pid in h.all_pids():
                argv = h.proc_cmdline(pid)
                texts = [("cmdline", " ".join(argv))]
                if pid in below:
                    texts.append(("environ", "\n".join(h.proc_environ(pid))))
                    if argv:
                        seen.add(os.path.basename(argv[0]))
                for what, text in texts:
                    for s in secrets:
                        if s in text and (pid, what) not in [x[:2] for x in hits]:
                            at = text.index(s)
                            hits.append((pid, what, text[max(0, at - 120):at + 40]))
            time.sleep(0.01)

    def run_watched(self, conf, secrets, timeout=120):
        """run_backup with the wrappers and the /proc scan: (rc, log,
        elapsed, argv log, env log, hits, helper names seen running)."""
        libexec, logp, envp = self.wrappers()
        stop, hits, seen = threading.Event(), [], set()
        t = threading.Thread(target=self.scan_proc, args=(secrets, stop, hits, seen), daemon=True)
        t.start()
        try:
            rc, log, elapsed = self.run_backup(conf, timeout=timeout,
                                               env={"MAB_LIBEXECDIR": libexec})
        finally:
            stop.set()
            t.join(10)
        argv_log = open(logp).read() if os.path.exists(logp) else ""
        env_log = open(envp).read() if os.path.exists(envp) else ""
        return rc, log, elapsed, argv_log, env_log, hits, seen

    def assertSecretNowhere(self, secrets, log, argv_log, env_log, hits, what):
        if hits:
            self.fail("%s in /proc/PID/cmdline or environ of %d process(es): %r"
                      % (what, len(hits), hits[:3]))
        for s in secrets:
            self.assertNotIn(s, log, "%s in the daemon's log" % what)
            self.assertNotIn(s, argv_log, "%s on a helper's command line" % what)
            self.assertNotIn(s, env_log, "%s in a helper's environment" % what)

    # the source and the blobs -------------------------------------------
    def assertFakeDemandsTLSAndAuth(self):
        """The server under test refuses what the URI's options are for:
        a client without credentials, and one without TLS."""
        import pymongo
        from pymongo import errors
        with pymongo.MongoClient(self.mongo.uri_for(None), serverSelectionTimeoutMS=10000) as cl:
            with self.assertRaises(errors.OperationFailure) as cm:
                cl[self.database]["users"].find_one()
            self.assertEqual(cm.exception.code, 13, "the fake must require authentication")
        with pymongo.MongoClient("127.0.0.1", self.mongo.port, serverSelectionTimeoutMS=2000) as cl:
            with self.assertRaises(errors.ServerSelectionTimeoutError,
                               msg="the fake must refuse connections without TLS"):
                cl.admin.command("ping")

    def assertBlobsMatchSource(self, dates, log):
        for coll in COLLECTIONS:
            name, _date = self.find_data_blob(coll, dates)
            self.assertIsNotNone(name, "no data blob for %s; blobs %r; log:\n%s"
                                 % (coll, self.blobs.names(""), log))
            got = gzip.decompress(self.blobs.download(name))
            want, _n = h.read_raw(self.db, coll)
            if got != want:
                self.fail("%s differs from the source: %s"
                          % (name, h.describe_bson_difference(got, want)))
        self.assertEqual(h.read_raw(self.db, "users")[1], USERS_DOCS)

    def data_exports(self, argv_log):
        """{collection: number of data export-collection starts} from the argv log."""
        counts = {}
        for line in argv_log.splitlines():
            if not line.startswith("export-collection ") or "[--metadata]" in line:
                continue
            for coll in COLLECTIONS:
                if "[%s]" % coll in line:
                    counts[coll] = counts.get(coll, 0) + 1
        return counts

    # the tests ------------------------------------------------------------
    def test_backup_over_tls_with_scram(self):
        self.assertFakeDemandsTLSAndAuth()
        before_stats = self.mongo.stats()
        conf = self.conf(self.mongo.uri_for(PASSWORD))
        day0 = h.utc_today()
        rc, log, _el, argv_log, env_log, hits, seen = self.run_watched(conf, [SECRET_CORE])
        self.assertExit(rc, 0, log)
        self.assertBlobsMatchSource(self.today_candidates(day0, h.utc_today()), log)
        self.assertIn("export-collection", argv_log, "the wrappers were not used:\n" + log)
        self.assertIn("export-collection", seen, "the /proc scan never saw a helper run")
        self.assertSecretNowhere([SECRET_CORE], log, argv_log, env_log, hits, "the MongoDB password")
        # the helpers really went through TLS and logged in as USER
        st = self.mongo.stats()
        exports = sum(self.data_exports(argv_log).values())
        self.assertGreaterEqual(exports, len(COLLECTIONS), argv_log)
        self.assertGreaterEqual(st["authSucceeded"] - before_stats["authSucceeded"], exports, st)
        self.assertGreaterEqual(st["tlsConnections"] - before_stats["tlsConnections"], exports, st)
        self.assertEqual(st["authFailed"], before_stats["authFailed"], st)
        self.assertIn("%s@admin" % USER, st["authenticatedUsers"], st)

    def test_service_status_shows_no_password(self):
        self.assertFakeDemandsTLSAndAuth()
        stats0 = self.mongo.stats()
        conf = self.conf(self.mongo.uri_for(PASSWORD),
                         schedule={"cron": NEVER, "timezone": "UTC", "catch_up": "no"})
        sock = os.path.join(self.tmp, "control.sock")
        r = self.start_backup(conf, args=["-f"])
        self.addCleanup(lambda: r.proc.poll() is None and r.kill())
        deadline = time.monotonic() + 30
        while True:
            try:
                if control_request(sock, b"ping\n", timeout=5).startswith(b"OK"):
                    break
            except OSError:
                pass
            if r.proc.poll() is not None or time.monotonic() > deadline:
                self.fail("the daemon does not answer on %s; log:\n%s" % (sock, r.log()))
            time.sleep(0.05)

        def ctl(*args):
            p = subprocess.run([h.CTL, "-s", sock] + list(args), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                               env=h.daemon_env())
            return p.returncode, p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")

        day0 = h.utc_today()
        rc, out = ctl("run", "--wait")
        self.assertEqual(rc, 0, "run --wait: %s\nlog:\n%s" % (out, r.log()))
        rc, status_json = ctl("status", "--json")
        self.assertEqual(rc, 0, status_json)
        st = json.loads(status_json)
        self.assertEqual((st.get("last_run") or {}).get("result"), "complete", status_json)
        rc, status_text = ctl("status")
        self.assertEqual(rc, 0, status_text)
        self.assertBlobsMatchSource(self.today_candidates(day0, h.utc_today()), r.log())
        os.kill(r.pid, signal.SIGTERM)
        rc, log, _ = r.wait(30)
        self.assertExit(rc, 0, log)
        for what, text in (("status --json", status_json), ("status", status_text),
                           ("run --wait", out), ("the daemon's log", log)):
            self.assertNotIn(SECRET_CORE, text, "the MongoDB password in %s" % what)
        st = self.mongo.stats()
        self.assertGreaterEqual(st["authSucceeded"] - stats0["authSucceeded"], len(COLLECTIONS), st)
        self.assertEqual(st["authFailed"], stats0["authFailed"], st)

    def test_wrong_password_fails_at_once(self):
        stats0 = self.mongo.stats()
        # One at a time: the first refusal ends the run, the others are
        # never tried (MongoDB would refuse them the same way).
        conf = self.conf(self.mongo.uri_for(WRONG_PASSWORD), limits={"parallel": 1})
        rc, log, elapsed, argv_log, env_log, hits, _seen = self.run_watched(
            conf, [SECRET_CORE, WRONG_CORE])
        self.assertExit(rc, 1, log)
        self.assertLogMatches(log, r"collection \S+: FAILED .*authenticat",
                              "saying the login was refused")
        self.assertLogMatches(log, r"%d more collections not attempted: MongoDB will refuse "
                              r"them the same way" % (len(COLLECTIONS) - 1),
                              "ending the run at the first refusal")
        # a refused login is not retried: one data export per collection
        self.assertNotRegex(log, r"(?i)retrying", "a refused login was retried")
        attempts = self.data_exports(argv_log)
        self.assertEqual(sum(attempts.values()), 1,
                         "export attempts per collection: %r\n%s" % (attempts, log))
        self.assertSecretNowhere([SECRET_CORE, WRONG_CORE], log, argv_log, env_log, hits,
                                 "a MongoDB password")
        self.assertEqual([n for n in self.blobs.names("") if n.endswith(".bson.gz")], [],
                         "data blobs committed without a login")
        st = self.mongo.stats()
        self.assertGreater(st["authFailed"], stats0["authFailed"], st)
        sys.stderr.write("[wrong password: failed after %.1f s] " % elapsed)

    def test_certificate_is_checked(self):
        conf = self.conf(self.mongo.uri_for(PASSWORD, ca_file=False), limits={"parallel": 1})
        stats0 = self.mongo.stats()
        rc, log, _ = self.run_backup(conf)
        self.assertExit(rc, 1, log)
        self.assertLogMatches(log, r"(certificate|TLS|SSL)", "naming the TLS failure")
        # A setting to fix, not an outage: not retried, the run ends.
        self.assertNotRegex(log, r"(?i)retrying", "an untrusted certificate was retried")
        self.assertLogMatches(log, r"more collections? not attempted: MongoDB will refuse",
                              "ending the run at the first refusal")
        self.assertNotIn(SECRET_CORE, log)
        st = self.mongo.stats()
        self.assertGreater(st["tlsHandshakeFailures"], stats0["tlsHandshakeFailures"], st)
        self.assertEqual(st["authSucceeded"], stats0["authSucceeded"], st)


if __name__ == "__main__":
    h.main()
