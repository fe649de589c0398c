#!/usr/bin/python3
"""test_checks.py - configuration checks, connection checks, and storage
failures that end a run at once.

  * `mongo-azure-backupd -t` refuses, each as FILE:LINE: with exit 2, a
    URI libmongoc does not parse (checked by `export-collection
    --check-uri`), an AccountKey that is not base64 (`upload-blob
    --check-config`), a config file readable by others while it holds the
    account key, a group-writable config file, a secret file others can
    read, and a [metrics] textfile in a missing directory;
  * `--check-connect` reaches MongoDB (ping, each collection) and the
    container (a probe blob written and deleted): one ok/FAIL line each,
    exit 0 only when all pass;
  * `--once` against a storage endpoint where nothing listens, a host name
    that does not resolve, https:// to a plain http port, a wrong account
    key (Azurite checks signatures: 403), or a missing container with
    create_container = no fails within
    seconds with exit 1 and the cause, instead of waiting for run_timeout;
    refused credentials in the middle of a run fail the run, not only the
    collection;
  * a storage that stops listening after it answered is an outage: the
    run waits for it (breaker) and completes when it is back;
  * mongo-azure-backupctl exits 4 for "not permitted" (the daemon's 403,
    or a socket it may not open), 3 for "not reachable".

The harness checks after every test that no process was left behind.
"""

import json
import os
import pwd
import grp
import re
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import harness as h  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402

SMALL_DOCS = 50
COLLS = ("small", "types", "more")
# "fails fast": upload-blob retries a never-answered endpoint once (about
# a second), the supervisor then ends the run.
FAST = 15
PROBE_RX = r"\.mongo-azure-backup-probe-[0-9a-f]+"


def setUpModule():
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


class CheckCase(h.BackupTestCase):

    def seed(self):
        self.db["small"].insert_many(list(h.gen_users(SMALL_DOCS, seed=31)))
        self.db["types"].insert_one(h.every_type_document())
        self.db["more"].insert_many(list(h.gen_users(SMALL_DOCS, seed=32)))

    def config(self, **kw):
        kw.setdefault("collections", ", ".join(COLLS))
        conf = self.write_config(**kw)
        os.chmod(conf, 0o600)
        return conf

    @staticmethod
    def line_of(path, needle):
        with open(path) as f:
            for i, line in enumerate(f, 1):
                if needle in line:
                    return i
        raise AssertionError("%r not in %s" % (needle, path))

    def assertFileLine(self, text, conf, line, rest=""):
        rx = r"(?m)^%s:%d: %s" % (re.escape(conf), line, rest)
        self.assertRegex(text, rx, "no %s:%d: %s in:\n%s" % (conf, line, rest, text))

    def check(self, conf, *args, timeout=60):
        """mongo-azure-backupd -t (or args) -c conf: (rc, stdout, stderr)."""
        argv = [h.DAEMON, "-c", conf] + (list(args) or ["-t"])
        rc, out, err, _ = h.run_program(argv, timeout=timeout)
        return rc, out.decode("utf-8", "replace"), err

    def assertFailsFast(self, conf, *patterns, timeout=60):
        rc, log, elapsed = self.run_backup(conf, timeout=timeout)
        self.assertExit(rc, 1, log)
        self.assertLess(elapsed, FAST, "took %.1f s: waited instead of failing\n%s"
                        % (elapsed, log))
        self.assertLogMatches(log, r"run \S+: FAILED", "saying the run FAILED")
        for p in patterns:
            self.assertLogMatches(log, p, "matching /%s/" % p)
        self.assertNotRegex(log, r"(?i)breaker: open", "the breaker counted it; log:\n" + log)
        self.assertNotRegex(log, r"(?i)queued again|trying again",
                            "the run waited for the storage; log:\n" + log)
        return log


# ---------------------------------------------------------------------------

class TestCheckConfig(CheckCase):
    """-t: each problem as FILE:LINE:, exit 2; nothing on the network."""

    def test_good_config(self):
        conf = self.config()
        rc, out, err = self.check(conf)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("configuration OK", out)

    def test_bad_uri(self):
        conf = self.config(mongo_uri="notauri://@@@")
        rc, out, err = self.check(conf)
        self.assertEqual(rc, 2, out + err)
        self.assertFileLine(err, conf, self.line_of(conf, "uri = notauri"), r"uri: \S")
        # The helper parses it; the URI itself never reaches argv or output.
        self.assertNotIn("@@@", out + err)

    def test_uri_password_not_shown(self):
        conf = self.config(mongo_uri="mongodb://user:s3cretPassw0rd@localhost:27017/?bogusopt=1&"
                                     "tls=maybe")
        rc, out, err = self.check(conf)
        self.assertNotIn("s3cretPassw0rd", out + err)

    def test_bad_base64_key(self):
        cs = h.connection_string(self.azurite.port, key="not$base64!!")
        conf = self.config(connection_string=cs)
        rc, out, err = self.check(conf)
        self.assertEqual(rc, 2, out + err)
        self.assertFileLine(err, conf, self.line_of(conf, "connection_string_file"),
                            r"connection string: AccountKey is not valid base64")

    def test_bad_endpoint(self):
        cs = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=%s;"
              "BlobEndpoint=ftp://127.0.0.1:10000/devstoreaccount1" % h.DEV_KEY)
        conf = self.config(connection_string=cs)
        rc, out, err = self.check(conf)
        self.assertEqual(rc, 2, out + err)
        self.assertFileLine(err, conf, self.line_of(conf, "connection_string_file"),
                            r"connection string: BlobEndpoint must start with https://")
        # libcurl would only refuse these at the first request.
        for host, rx in (("bad..host", r"host 'bad\.\.host' is not a host name"),
                         ("-x.example", r"host '-x\.example' is not a host name"),
                         ("[fe80::1", r"bad IPv6 address")):
            cs = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=%s;"
                  "BlobEndpoint=http://%s:10000/devstoreaccount1" % (h.DEV_KEY, host))
            conf = self.config(connection_string=cs)
            rc, out, err = self.check(conf)
            self.assertEqual(rc, 2, out + err)
            self.assertFileLine(err, conf, self.line_of(conf, "connection_string_file"),
                                r"connection string: BlobEndpoint.*%s" % rx)
        cs = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=%s;"
              "BlobEndpoint=http://[::1]:%d/devstoreaccount1" % (h.DEV_KEY, self.azurite.port))
        rc, out, err = self.check(self.config(connection_string=cs))
        self.assertEqual(rc, 0, out + err)

    def test_inline_key_in_world_readable_file(self):
        conf = self.config(azure={"connection_string_file": None,
                                  "connection_string": h.connection_string(self.azurite.port)})
        os.chmod(conf, 0o644)
        rc, out, err = self.check(conf)
        self.assertEqual(rc, 2, out + err)
        self.assertFileLine(err, conf, self.line_of(conf, "connection_string ="),
                            r"connection_string holds the account key.*chmod 600")
        for i in range(0, len(h.DEV_KEY) - 12, 6):
            self.assertNotIn(h.DEV_KEY[i:i + 12], out + err, "the key was printed")
        # The same file, private: fine.
        os.chmod(conf, 0o600)
        rc, out, err = self.check(conf)
        self.assertEqual(rc, 0, out + err)

    def test_uri_password_in_readable_file(self):
        conf = self.config(mongo_uri="mongodb://backup:pw1234@127.0.0.1:1/")
        os.chmod(conf, 0o640)
        rc, out, err = self.check(conf)
        self.assertEqual(rc, 2, out + err)
        self.assertFileLine(err, conf, self.line_of(conf, "uri = "),
                            r"uri holds a password.*chmod 600")
        self.assertNotIn("pw1234", out + err)

    def test_group_writable_config(self):
        conf = self.config()
        os.chmod(conf, 0o620)
        rc, out, err = self.check(conf)
        self.assertEqual(rc, 2, out + err)
        self.assertFileLine(err, conf, 0, r"writable by group or others.*chmod go-w")

    def test_secret_file_readable_by_others(self):
        conf = self.config()
        secret = os.path.join(self.tmp, "conn")
        os.chmod(secret, 0o644)
        rc, out, err = self.check(conf)
        self.assertEqual(rc, 2, out + err)
        self.assertFileLine(err, conf, self.line_of(conf, "connection_string_file"),
                            r"Azure connection string %s: readable by group or others.*"
                            r"chmod 600" % re.escape(secret))
        # Reported once, by -t itself, not again by the helper.
        self.assertEqual(len(re.findall(r"readable by group", err)), 1, err)

    def test_secret_file_of_another_user(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to give a file to another user")
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no user nobody")
        conf = self.config()
        secret = os.path.join(self.tmp, "conn")
        os.chown(secret, nobody.pw_uid, -1)
        rc, out, err = self.check(conf)
        self.assertEqual(rc, 2, out + err)
        self.assertFileLine(err, conf, self.line_of(conf, "connection_string_file"),
                            r".*owned by uid %d.*chown root" % nobody.pw_uid)

    def test_metrics_directory(self):
        missing = os.path.join(self.tmp, "no", "such", "dir", "mab.prom")
        conf = self.config(metrics={"textfile": missing})
        rc, out, err = self.check(conf)
        self.assertEqual(rc, 2, out + err)
        self.assertFileLine(err, conf, self.line_of(conf, "textfile ="),
                            r"textfile: directory .*No such file")
        conf = self.config(metrics={"textfile": os.path.join(self.tmp, "mab.prom")})
        rc, out, err = self.check(conf)
        self.assertEqual(rc, 0, out + err)

    def test_every_problem_reported(self):
        conf = self.config(mongo_uri="notauri://@@@",
                           connection_string=h.connection_string(1, key="bad$key"))
        os.chmod(conf, 0o666)
        rc, out, err = self.check(conf)
        self.assertEqual(rc, 2, out + err)
        self.assertFileLine(err, conf, 0, r"writable by group or others")
        self.assertFileLine(err, conf, self.line_of(conf, "uri = "), r"uri: ")
        self.assertFileLine(err, conf, self.line_of(conf, "connection_string_file"),
                            r"connection string: AccountKey")

    def test_helpers_exit_2_on_their_own(self):
        conf = self.config(mongo_uri="notauri://@@@",
                           connection_string=h.connection_string(1, key="bad$key"))
        for prog, arg in (("export-collection", "--check-uri"),
                          ("upload-blob", "--check-config")):
            rc, out, err, _ = h.run_program([h.program(prog), "-c", conf, arg], timeout=30)
            self.assertEqual(rc, 2, "%s %s: %d %s" % (prog, arg, rc, err))
            self.assertRegex(err, r"(?m)^%s:\d+: " % re.escape(conf), err)


# ---------------------------------------------------------------------------

class TestCheckConnect(CheckCase):

    def test_all_ok(self):
        self.seed()
        conf = self.config()
        rc, out, err = self.check(conf, "--check-connect")
        self.assertEqual(rc, 0, out + err)
        self.assertRegex(out, r"(?m)^ok   config: ")
        self.assertRegex(out, r"(?m)^ok   mongodb: ping ")
        for c in COLLS:
            self.assertRegex(out, r"(?m)^ok   mongodb: collection '%s' of database '%s'"
                             % (c, self.database), out)
        self.assertRegex(out, r"(?m)^ok   azure: container '%s' at http://127\.0\.0\.1:%d/"
                         % (self.container, self.azurite.port), out)
        self.assertRegex(out, r"(?m)^ok   azure: container '%s' at .*: probe blob %s written"
                         % (self.container, PROBE_RX), out)
        self.assertRegex(out, r"(?m)^ok   azure: container '%s': probe blob %s deleted"
                         % (self.container, PROBE_RX), out)
        self.assertNotRegex(out, r"(?m)^FAIL", out)
        # Nothing left behind, and no backup set was touched.
        self.assertEqual(self.blobs.names(""), [])

    def test_missing_collection(self):
        self.seed()
        conf = self.config(collections="small, nosuchcoll, types")
        rc, out, err = self.check(conf, "--check-connect")
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(out, r"(?m)^FAIL mongodb: collection 'nosuchcoll' does not exist "
                         r"in database '%s'$" % self.database, out)
        for c in ("small", "types"):
            self.assertRegex(out, r"(?m)^ok   mongodb: collection '%s' " % c, out)
        # The storage is still checked.
        self.assertRegex(out, r"(?m)^ok   azure: .*probe blob .* deleted", out)

    def test_wrong_key(self):
        self.seed()
        wrong = h.base64.b64encode(os.urandom(64)).decode()
        conf = self.config(connection_string=h.connection_string(self.azurite.port, key=wrong))
        rc, out, err = self.check(conf, "--check-connect")
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(out, r"(?m)^ok   mongodb: ping", out)
        self.assertRegex(out, r"(?m)^FAIL azure: container '%s' at .*\b403\b" % self.container, out)
        for i in range(0, len(wrong) - 12, 6):
            self.assertNotIn(wrong[i:i + 12], out + err, "the key was printed")

    def test_missing_container(self):
        self.seed()
        conf = self.config(azure={"create_container": "no"})
        rc, out, err = self.check(conf, "--check-connect")
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(out, r"(?m)^FAIL azure: container '%s' at .*writing %s: .*"
                         r"does not exist.*create_container" % (self.container, PROBE_RX), out)
        self.assertFalse(self.blobs.exists(), "the container was created")

    def test_nothing_listens(self):
        self.seed()
        port = h.free_port()
        conf = self.config(connection_string=h.connection_string(port))
        rc, out, err = self.check(conf, "--check-connect")
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(out, r"(?m)^FAIL azure: .*nothing listens at http://127\.0\.0\.1:%d" % port,
                         out)

    def test_config_error_is_2(self):
        conf = self.config(mongo_uri="notauri://@@@")
        rc, out, err = self.check(conf, "--check-connect")
        self.assertEqual(rc, 2, out + err)
        self.assertFileLine(err, conf, self.line_of(conf, "uri = "), r"uri: ")
        self.assertNotRegex(out, r"(?m)^(ok|FAIL) +(mongodb|azure)", "connected anyway: " + out)


# ---------------------------------------------------------------------------

class TestFailFast(CheckCase):
    """Failures no retry mends end the run in seconds, with the cause;
    run_timeout is 6 h here, as by default."""

    def config(self, **kw):
        kw.setdefault("limits", {"run_timeout": "6h", "parallel": 1})
        kw.setdefault("breaker", {"failure_threshold": 1, "open_seconds": 30})
        return super().config(**kw)

    def test_nothing_listens(self):
        self.seed()
        port = h.free_port()
        conf = self.config(connection_string=h.connection_string(port))
        self.assertFailsFast(conf, r"nothing listens at http://127\.0\.0\.1:%d" % port,
                             r"check BlobEndpoint")
        self.assertEqual(self.blobs.names(""), [])

    def test_unresolvable_host(self):
        self.seed()
        cs = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=%s;"
              "BlobEndpoint=http://no-such-host.invalid:10000/devstoreaccount1" % h.DEV_KEY)
        conf = self.config(connection_string=cs)
        self.assertFailsFast(conf, r"no-such-host\.invalid.*does not resolve",
                             r"check BlobEndpoint")

    def test_https_to_a_plain_http_port(self):
        """https:// where the server speaks http (Azurite): no TLS
        handshake ever comes about - a wrong scheme, not an outage."""
        self.seed()
        cs = ("DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=%s;"
              "BlobEndpoint=https://127.0.0.1:%d/devstoreaccount1" % (h.DEV_KEY, self.azurite.port))
        conf = self.config(connection_string=cs)
        self.assertFailsFast(conf, r"no TLS handshake with https://127\.0\.0\.1:%d"
                             % self.azurite.port, r"check BlobEndpoint")

    def test_wrong_key(self):
        self.seed()
        wrong = h.base64.b64encode(os.urandom(64)).decode()
        conf = self.config(connection_string=h.connection_string(self.azurite.port, key=wrong))
        log = self.assertFailsFast(conf, r"refused the credentials \(403")
        self.assertEqual(self.blobs.names(""), [])
        for i in range(0, len(wrong) - 12, 6):
            self.assertNotIn(wrong[i:i + 12], log, "the key leaked into the log")

    def test_missing_container(self):
        self.seed()
        conf = self.config(azure={"create_container": "no"})
        self.assertFailsFast(conf, r"container '%s' does not exist.*create_container = yes"
                             % self.container)
        self.assertFalse(self.blobs.exists(), "the container was created")

    def test_credentials_refused_mid_run(self):
        """The set is claimed, then every data upload meets 403 (say, a key
        rotated under the run): the first failure ends the run; the other
        collections are not attempted, nothing waits for run_timeout."""
        self.seed()
        proxy = FaultProxy(upstream_port=self.azurite.port).start()
        self.addCleanup(proxy.stop)
        proxy.add_fault(kind="put_block", path="/tralivali_", status=403,
                        error_code="AuthenticationFailed", count=0)
        conf = self.config(connection_string=proxy.connection_string())
        log = self.assertFailsFast(conf, r"refused the credentials \(403",
                                   r"not attempted")
        st = proxy.stats()
        tried = {e["path"].rsplit("/", 1)[1] for e in st["log"]
                 if e["kind"] == "put_block" and "/tralivali_" in e["path"]}
        self.assertEqual(len(tried), 1, "more than one collection was tried: %r\n%s"
                         % (tried, log))
        # The final manifest says what happened to each collection.
        m = json.loads(self.blobs.download(h.manifest_blob_name(h.utc_today())))
        self.assertIs(m.get("complete"), False, m)
        results = {e["name"]: e.get("result") for e in m.get("collections", [])}
        self.assertEqual(set(results.values()), {"failed"}, m)


class TestOutageStillWaits(CheckCase):

    def test_stops_listening_after_answering(self):
        """The storage answered (the set is claimed), then nothing listens
        for a few seconds: an outage, not a wrong endpoint - the run waits
        (re-queue, breaker) and completes once it listens again."""
        self.seed()
        proxy = FaultProxy(upstream_port=self.azurite.port).start()
        port = proxy.port
        proxies = [proxy]
        self.addCleanup(lambda: [p.stop() for p in proxies])
        # Hold the first data upload so the run is mid-way when it goes.
        proxy.add_fault(kind="put_block", path="/tralivali_", action="delay", delay=2)
        conf = self.config(connection_string=proxy.connection_string(),
                           azure={"max_retries": 1},
                           breaker={"failure_threshold": 2, "open_seconds": 2},
                           limits={"run_timeout": "90s", "parallel": 1})
        r = self.start_backup(conf)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            claimed = [e for e in proxy.stats()["log"]
                       if e["kind"] == "put_block_list" and e["path"].endswith("/manifest.json")
                       and e["status"] == 201]
            if claimed:
                break
            time.sleep(0.05)
        self.assertTrue(claimed, "the set was never claimed; log:\n" + r.log())
        proxy.stop()
        time.sleep(5)
        proxies.append(FaultProxy(upstream_port=self.azurite.port, port=port).start())
        rc, log, _ = r.wait(100)
        self.assertExit(rc, 0, log)
        self.assertLogMatches(log, r"run \S+: complete", "saying the run is complete")
        self.assertLogMatches(log, r"queued again|trying again", "saying it waited for the storage")
        self.assertNotRegex(log, r"check BlobEndpoint", "an outage was taken for a wrong endpoint")


# ---------------------------------------------------------------------------

FAKE_DAEMON = r"""
import os, socket, sys
path, reply = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(4)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.sendall(reply.encode() + b"\n")
    c.close()
"""


class TestCtlNotPermitted(CheckCase):
    """Exit 4 is "not permitted", distinct from 3 "not reachable"."""

    def fake_daemon(self, path, reply):
        p = subprocess.Popen([sys.executable, "-I", "-c", FAKE_DAEMON, path, reply],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (p.kill(), p.wait()))
        self.assertEqual(p.stdout.readline().strip(), b"ready")
        return p

    def ctl(self, sock, *args, **kw):
        # As another user, a copy that user can reach (the checkout may be
        # under /root, mode 0700).
        ctl = os.path.join(h.programs_for_others(), "mongo-azure-backupctl") if "user" in kw \
            else h.CTL
        p = subprocess.run([ctl, "-s", sock] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                           env=h.daemon_env(), **kw)
        return p.returncode, p.stdout.decode() + p.stderr.decode()

    def test_daemon_says_403(self):
        sock = os.path.join(self.tmp, "c.sock")
        self.fake_daemon(sock, "ERROR 403 run is not permitted to uid 1234")
        for cmd in (["run"], ["cancel"], ["status"], ["metrics"], ["run", "--wait"]):
            rc, text = self.ctl(sock, *cmd)
            self.assertEqual(rc, 4, "%s: %d %s" % (cmd, rc, text))
            self.assertIn("403", text)
        # Any other refusal is a failed operation.
        sock2 = os.path.join(self.tmp, "d.sock")
        self.fake_daemon(sock2, "ERROR 409 no backup run is in progress")
        rc, text = self.ctl(sock2, "cancel")
        self.assertEqual(rc, 1, text)

    def test_socket_not_permitted(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to run the tool as nobody")
        try:
            nobody = pwd.getpwnam("nobody")
            nogroup = grp.getgrnam("nogroup")
        except KeyError:
            self.skipTest("no user nobody / group nogroup")
        os.chmod(h.ENV["tmp"], 0o711)
        os.chmod(self.tmp, 0o711)
        rundir = os.path.join(self.tmp, "run")
        os.mkdir(rundir, 0o700)
        sock = os.path.join(rundir, "c.sock")
        self.fake_daemon(sock, "OK\n{}")
        creds = dict(user=nobody.pw_uid, group=nogroup.gr_gid, extra_groups=[], cwd="/")
        rc, text = self.ctl(sock, "status", **creds)
        self.assertEqual(rc, 4, text)
        self.assertRegex(text, r"(?i)permission denied")
        # Nothing there at all: 3.
        rc, text = self.ctl(os.path.join(self.tmp, "none.sock"), "status", **creds)
        self.assertEqual(rc, 3, text)


if __name__ == "__main__":
    h.main()
