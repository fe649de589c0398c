#!/usr/bin/python3
"""test_daemon.py - the scheduled daemon, its control socket and
mongo-azure-backupctl.

The daemon runs with `-f` (foreground, log on stderr) under the harness
(Azurite + fake_mongod.py, one container and database per test), except in
the detached-mode tests.  Everything is observed from the outside: the
admin tool run as a subprocess with -s SOCKET, raw requests on the socket,
the blobs through Microsoft's SDK, hook output files, /proc.  After every
test no process may be left (checked by the harness).

Needs root for the socket permission test (skipped otherwise) and
tests/fake_mongod.py for the tests that stall an export (skipped against a
real mongod).
"""

import datetime
import grp
import json
import os
import pwd
import random
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402

# A schedule that does not fire during a test: runs come from `ctl run`.
NEVER = "0 0 29 2 *"
EVERY_4S = "*/4 * * * * *"
BIG_DOCS = 300           # more than the first batch (101): needs a getMore
SMALL_DOCS = 20


def setUpModule():
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


# --------------------------------------------------------------------------
# Helpers

def sock_request(path, data, timeout=10.0):
    """Send data on a fresh connection to the control socket and read the
    whole reply (until the server closes)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass                      # the server may answer before reading it all
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break                 # closed with our unread bytes queued
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        s.close()


def ping(path):
    try:
        return sock_request(path, b"ping\n", timeout=5)
    except OSError:
        return b""


def parse_utc(text):
    """'2026-11-27T03:00:00Z' (or with an offset) -> aware datetime."""
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    d = datetime.datetime.fromisoformat(t)
    if d.tzinfo is None:
        raise ValueError("no zone in %r" % text)
    return d.astimezone(datetime.timezone.utc)


def utc(y, mo, d, hh=0, mi=0, ss=0):
    return datetime.datetime(y, mo, d, hh, mi, ss, tzinfo=datetime.timezone.utc)


_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")


def instants_in(text):
    """The instants listed one per line in text (next-runs output).  A line
    may show the same instant twice (UTC and local); naive timestamps are
    ambiguous and ignored."""
    out = []
    for line in text.splitlines():
        seen = []
        for m in _ISO.findall(line):
            s = m.replace(" ", "T")
            if not (s.endswith("Z") or re.search(r"[+-]\d{2}:?\d{2}$", s)):
                continue
            if re.search(r"[+-]\d{4}$", s):
                s = s[:-2] + ":" + s[-2:]
            seen.append(parse_utc(s))
        if seen:
            if any(x != seen[0] for x in seen):
                raise AssertionError("line shows different instants: %r" % line)
            out.append(seen[0])
    return out


def find_processes(argv):
    """Pids of live processes whose argv is exactly argv (anywhere)."""
    out = []
    for pid in h.all_pids():
        st = h.proc_stat(pid)
        if st is None or st[1] == "Z":
            continue
        if h.proc_cmdline(pid) == list(argv):
            out.append(pid)
    return out


def wait_gone(pid, timeout):
    """Wait until pid has exited; reap it when it is our child (we are a
    subreaper, so a detached daemon is).  Returns its exit status when we
    reaped it, True when it is gone otherwise, False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = h.proc_stat(pid)
        if st is None:
            return True
        if st[1] == "Z":
            if st[0] == os.getpid():
                try:
                    _p, status = os.waitpid(pid, 0)
                    return os.waitstatus_to_exitcode(status)
                except ChildProcessError:
                    return True
            return True
        time.sleep(0.05)
    return False


PROM_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^{}]*\})?[ \t]+(\S+)([ \t]+-?\d+)?$")
PROM_PREFIXES = ("mongo_azure_backup_", "mab_")


def parse_prometheus(text):
    """Check the text exposition format; returns ({family: type},
    [(name, labels, value)]).  Raises AssertionError on a bad line."""
    types, samples = {}, []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            m = re.match(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$", line)
            if m:
                types[m.group(1)] = m.group(2)
            elif not re.match(r"^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* ", line) and not line.startswith("# "):
                raise AssertionError("line %d: bad comment %r" % (n, line))
            continue
        m = PROM_SAMPLE.match(line)
        if not m:
            raise AssertionError("line %d: not a sample: %r" % (n, line))
        value = m.group(3)
        try:
            float(value)
        except ValueError:
            raise AssertionError("line %d: bad value %r" % (n, line))
        samples.append((m.group(1), m.group(2) or "", float(value)))
    return types, samples


def family_of(name, types):
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count", "_total", "_created"):
        if name.endswith(suffix) and name[:-len(suffix)] in types:
            return name[:-len(suffix)]
    return None


def read_env_file(path):
    env = {}
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
    return env


# A peer for the permission test: connect, send one line, print the reply.
PEER_CLIENT = h.PEER_CLIENT


class DaemonTestCase(h.BackupTestCase):

    def setUp(self):
        super().setUp()
        self.sock = os.path.join(self.tmp, "control.sock")       # harness default
        self.pidfile = os.path.join(self.tmp, "mongo-azure-backupd.pid")

    # data and configuration --------------------------------------------
    def seed(self, big=False):
        self.db["small"].insert_many(list(h.gen_users(SMALL_DOCS, seed=11)))
        self.db["types"].insert_one(h.every_type_document())
        if big:
            h.seed_users(self.db, "big", BIG_DOCS, seed=12)

    def config(self, schedule=None, **kw):
        sched = {"cron": NEVER, "timezone": "UTC", "catch_up": "no"}
        sched.update(schedule or {})
        kw.setdefault("collections", "small, types")
        return self.write_config(schedule=sched, **kw)

    # the daemon ---------------------------------------------------------
    def start_daemon(self, conf, args=("-f",), wait=True):
        r = self.start_backup(conf, args=list(args))
        self.addCleanup(self._stop_quietly, r)
        if wait:
            self.wait_ready(r)
        return r

    def _stop_quietly(self, r):
        if r.proc.poll() is None:
            try:
                os.kill(r.pid, signal.SIGTERM)
                r.proc.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                r.kill()

    def wait_ready(self, r, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if r.proc.poll() is not None:
                self.fail("the daemon exited with %s before it answered on %s; log:\n%s"
                          % (r.proc.returncode, self.sock, r.log()))
            if ping(self.sock).startswith(b"OK"):
                return
            time.sleep(0.05)
        self.fail("the daemon does not answer on %s after %s s; log:\n%s"
                  % (self.sock, timeout, r.log()))

    def stop_daemon(self, r, timeout=20):
        os.kill(r.pid, signal.SIGTERM)
        rc, log, _ = r.wait(timeout)
        self.assertExit(rc, 0, log)
        return log

    # the admin tool -----------------------------------------------------
    def ctl(self, *args, sock=None, timeout=30, conf=None, **popen):
        argv = [h.CTL]
        if conf:
            argv += ["-c", conf]
        argv += ["-s", sock or self.sock] + list(args)
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, env=h.daemon_env(), **popen)
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))

    def status(self, sock=None):
        rc, out, err = self.ctl("status", "--json", sock=sock)
        self.assertEqual(rc, 0, "status --json exited %d: %s%s" % (rc, out, err))
        try:
            st = json.loads(out)
        except ValueError as e:
            self.fail("status --json is not JSON (%s): %r" % (e, out))
        self.assertIsInstance(st, dict, out)
        return st

    def wait_status(self, pred, what, timeout=30, r=None):
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            st = self.status()
            if pred(st):
                return st
            if r is not None and r.proc.poll() is not None:
                self.fail("the daemon exited while waiting for %s; log:\n%s" % (what, r.log()))
            time.sleep(0.1)
        self.fail("no status with %s after %s s; last: %s%s"
                  % (what, timeout, json.dumps(st, indent=1),
                     ("\nlog:\n" + r.log()) if r else ""))

    @staticmethod
    def runs_done(st):
        """Finished runs as counted by status' "runs" (by result)."""
        runs = st.get("runs") or {}
        return sum(v for v in runs.values() if isinstance(v, int))

    def wait_runs_done(self, n, r=None, timeout=60):
        """Status once n runs have finished and the daemon is idle."""
        return self.wait_status(lambda st: st.get("state") == "idle" and self.runs_done(st) >= n,
                                "%d finished runs" % n, timeout, r)

    # assertions ---------------------------------------------------------
    def assertLastRunMatchesAzure(self, last_run, colls, log=""):
        """last_run.collections agree with the source and with the blobs."""
        self.assertEqual(last_run.get("result"), "complete", json.dumps(last_run, indent=1))
        entries = {c.get("name"): c for c in last_run.get("collections") or []}
        self.assertEqual(sorted(entries), sorted(colls), json.dumps(last_run, indent=1))
        names = self.blobs.names("")
        for coll in colls:
            e = entries[coll]
            self.assertEqual(e.get("result"), "ok", e)
            self.assertFalse(e.get("error"), e)
            _raw, n = h.read_raw(self.db, coll)
            self.assertEqual(e.get("documents"), n, "documents of %s: %r" % (coll, e))
            blob = e.get("blob") or ""
            match = [b for b in names if blob == b or blob.endswith("/" + self.container + "/" + b)]
            self.assertTrue(match, "status names blob %r for %s, not in Azurite: %r\n%s"
                            % (blob, coll, names, log))
            self.assertTrue(match[0].endswith("tralivali_%s.bson.gz" % coll), match)
            size = self.blobs.properties(match[0]).size
            self.assertEqual(e.get("gzip_bytes"), size,
                             "gzip_bytes of %s vs the blob's size: %r" % (coll, e))

    def assertNoDataBlob(self, coll, log=""):
        hits = [n for n in self.blobs.names("") if n.endswith("/tralivali_%s.bson.gz" % coll)]
        self.assertEqual(hits, [], "a blob was committed for %s; log:\n%s" % (coll, log))

    def wait_fault_fired(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.mongo.stats().get("faultsFired", 0) >= 1:
                return
            time.sleep(0.05)
        self.fail("the injected fault never fired: %r" % self.mongo.stats())

    def wait_log(self, r, pattern, what, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, r.log(), re.I | re.M):
                return r.log()
            time.sleep(0.1)
        self.fail("the log has no line %s (/%s/) after %s s; log:\n%s"
                  % (what, pattern, timeout, r.log()))

    def stalled_run(self, r):
        """Start a run through the socket whose export of big hangs on its
        first getMore; returns the run id from status."""
        self.mongo.fault(hang_on_getmore=1)
        rc, out, err = self.ctl("run")
        self.assertEqual(rc, 0, "run: %s%s\n%s" % (out, err, r.log()))
        r.wait_for_child("export-collection", h.is_data_export("big"))
        self.wait_fault_fired()
        st = self.wait_status(lambda s: s.get("state") == "running" and s.get("current_run"),
                              "state running", 10, r)
        run_id = (st.get("current_run") or {}).get("run_id")
        self.assertTrue(run_id, "current_run has no run_id: %r" % st)
        return run_id


# --------------------------------------------------------------------------

class TestSchedule(DaemonTestCase):

    def test_scheduled_runs_on_time(self):
        """*/4 s: runs start on the 4-second marks and status reports them,
        matching what Azurite holds."""
        self.seed()
        conf = self.config(schedule={"cron": EVERY_4S},
                           azure={"blob_path": "backups/{date}T{time}/tralivali_{collection}.bson.gz"})
        r = self.start_daemon(conf)
        st = self.status()
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertIn(st.get("state"), ("idle", "running"), st)
        self.assertIsInstance(st.get("next_run"), str, st)
        self.assertTrue(st["next_run"].endswith("Z"), st)
        nxt = parse_utc(st["next_run"])
        self.assertEqual(nxt.second % 4, 0, "next_run %s is not on a 4 s mark" % st["next_run"])
        self.assertGreater(nxt, now - datetime.timedelta(seconds=1), st)
        self.assertLessEqual(nxt, now + datetime.timedelta(seconds=5), st)
        self.assertEqual(st.get("pid"), r.pid, st)

        seen, last = set(), None
        deadline = time.monotonic() + 25
        while len(seen) < 2 and time.monotonic() < deadline:
            st = self.status()
            lr = st.get("last_run")
            if lr and lr.get("run_id") and lr["run_id"] not in seen:
                seen.add(lr["run_id"])
                last = st
            time.sleep(0.1)
        self.assertGreaterEqual(len(seen), 2, "fewer than 2 runs in 25 s; log:\n" + r.log())
        self.stop_daemon(r)

        lr = last["last_run"]
        self.assertLastRunMatchesAzure(lr, ["small", "types"], r.log())
        # One set per run, named by the run's start time: on the 4 s marks.
        # (A run cut short by the TERM above may have left a newer folder.)
        last_folder = lr["collections"][0]["blob"].rsplit("/", 1)[0]
        last_folder = last_folder[last_folder.index("backups/"):]
        folders = sorted({n.rsplit("/", 1)[0] for n in self.blobs.names("backups/")})
        self.assertIn(last_folder, folders)
        folders = [f for f in folders if f <= last_folder]
        self.assertGreaterEqual(len(folders), 2, folders)
        for f in folders:
            m = re.match(r"^backups/(\d{4}-\d{2}-\d{2})T(\d{2})(\d{2})(\d{2})$", f)
            self.assertTrue(m, "unexpected set folder %r" % f)
            self.assertIn(int(m.group(4)) % 4, (0, 1),
                          "set %s did not start on a 4 s mark (scheduled runs late?)" % f)
            names = self.blobs.names(f + "/")
            for coll in ("small", "types"):
                self.assertIn("%s/tralivali_%s.bson.gz" % (f, coll), names)
            manifest = json.loads(self.blobs.download(f + "/manifest.json"))
            self.assertIs(manifest.get("complete"), True, manifest)
        self.assertEqual(json.loads(self.blobs.download(last_folder + "/manifest.json")).get("run_id"),
                         lr["run_id"])


class TestControl(DaemonTestCase):

    def test_run_wait_and_status(self):
        self.seed()
        conf = self.config()
        r = self.start_daemon(conf)
        st = self.status()
        self.assertEqual(st.get("state"), "idle", st)
        self.assertIsNone(st.get("current_run"), st)
        self.assertIsNone(st.get("last_run"), "a run happened without a trigger: %r" % st)
        self.assertEqual(parse_utc(st.get("next_run") or "").month, 2, st)
        self.assertEqual(parse_utc(st["next_run"]).day, 29, st)
        self.assertEqual(st.get("pid"), r.pid, st)
        self.assertIsInstance(st.get("uptime_seconds"), int, st)
        self.assertGreaterEqual(st["uptime_seconds"], 0, st)
        self.assertEqual((st.get("breaker") or {}).get("state"), "closed", st)
        self.assertIn("runs", st)
        rc, out, _err, _ = h.run_program([h.DAEMON, "--version"])
        self.assertTrue(st.get("version") and st["version"] in out.decode(),
                        "version %r vs --version %r" % (st.get("version"), out))

        t0 = time.monotonic()
        rc, out, err = self.ctl("run", "--wait")
        self.assertEqual(rc, 0, "run --wait: %s%s\nlog:\n%s" % (out, err, r.log()))
        st = self.status()
        self.assertEqual(st.get("state"), "idle", st)
        self.assertIsNotNone(st.get("last_run"), "run --wait returned before the run ended: %r" % st)
        self.assertLastRunMatchesAzure(st["last_run"], ["small", "types"], r.log())
        run_id = st["last_run"]["run_id"]
        self.assertLess(time.monotonic() - t0, 60)

        # Human-readable status names the state and the last run.
        rc, out, err = self.ctl("status")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("idle", out)
        self.assertIn("complete", out)

        self.assertEqual(self.runs_done(st), 1, st)

        # run without --wait returns at once; the run happens.
        rc, out, err = self.ctl("run")
        self.assertEqual(rc, 0, out + err)
        st = self.wait_runs_done(2, r)
        self.assertEqual(st["last_run"]["result"], "complete", st)
        self.assertNotEqual(st["last_run"]["run_id"], run_id, "two runs share one run id")
        self.stop_daemon(r)

    def test_back_to_back_runs(self):
        """Runs one right after the other: each `run --wait` returns with
        its own run's result, and every run has its own id."""
        self.seed()
        r = self.start_daemon(self.config())
        ids = []
        for i in range(3):
            try:
                rc, out, err = self.ctl("run", "--wait", timeout=10)
            except subprocess.TimeoutExpired:
                self.fail("run --wait #%d did not return in 10 s (runs so far: %r); log:\n%s"
                          % (i + 1, ids, r.log()))
            self.assertEqual(rc, 0, out + err)
            ids.append(self.status()["last_run"]["run_id"])
        st = self.status()
        self.assertEqual(self.runs_done(st), 3, st)
        self.assertEqual(len(set(ids)), 3, "run ids are not unique: %r" % ids)
        self.stop_daemon(r)

    def test_coalesce_and_cancel(self):
        """run while a run is going: coalesced (reported, logged, exit 0,
        no second run); cancel: nothing partial committed."""
        self.require_faults()
        self.seed(big=True)
        conf = self.config(collections="big, small, types")
        r = self.start_daemon(conf)
        run_id = self.stalled_run(r)

        # Through the protocol: OK with the running run's id, coalesced.
        reply = sock_request(self.sock, b"run\n").decode("utf-8", "replace")
        self.assertTrue(reply.startswith("OK\n"), reply)
        body = json.loads(reply[3:])
        self.assertIs(body.get("coalesced"), True, body)
        self.assertEqual(body.get("run_id"), run_id, body)
        # Through the tool: exit 0 and says so.
        rc, out, err = self.ctl("run")
        self.assertEqual(rc, 0, out + err)
        self.assertRegex(out + err, r"(?i)(coalesc|already (in progress|running|going))",
                         "ctl run does not report the coalescing")
        self.assertIn(run_id, out + err)
        self.wait_log(r, r"coalesc", "about the coalesced trigger")
        st = self.status()
        self.assertEqual(st.get("state"), "running", st)
        self.assertEqual((st.get("current_run") or {}).get("run_id"), run_id, st)

        rc, out, err = self.ctl("cancel")
        self.assertEqual(rc, 0, out + err)
        st = self.wait_status(lambda s: s.get("state") == "idle", "state idle", 30, r)
        self.assertEqual(st["last_run"]["run_id"], run_id, st)
        self.assertEqual(st["last_run"]["result"], "cancelled", st)
        self.assertNoDataBlob("big", r.log())
        for name in self.blobs.names("backups/"):
            if name.endswith("manifest.json"):
                self.assertIsNot(json.loads(self.blobs.download(name)).get("complete"), True, name)
        self.assertEqual(r.children(), [], "children left after cancel")
        # nothing to cancel now: 409 -> exit 1
        rc, out, err = self.ctl("cancel")
        self.assertEqual(rc, 1, "cancel with no run: %d %s%s" % (rc, out, err))
        # the coalesced triggers did not become runs of their own
        time.sleep(2)
        st = self.status()
        self.assertEqual(st.get("state"), "idle", st)
        self.assertEqual(st["last_run"]["run_id"], run_id, "a second run happened: %r" % st)
        self.assertEqual(self.runs_done(st), 1, "a second run happened: %r" % st)
        self.stop_daemon(r)

    def test_garbage_on_socket(self):
        """Bad requests get ERROR replies; the daemon keeps serving."""
        self.seed()
        r = self.start_daemon(self.config())
        rng = random.Random(7)
        junk = bytes(rng.randrange(256) for _ in range(200)).replace(b"\n", b"\x01")
        cases = [
            ("random bytes", junk + b"\n"),
            ("oversize line", b"status" + b"x" * 5000 + b"\n"),
            ("oversize, no newline", b"a" * 1000),
            ("unknown command", b"frobnicate\n"),
            ("empty line", b"\n"),
            ("NUL inside", b"sta\x00tus\n"),
        ]
        for what, data in cases:
            reply = sock_request(self.sock, data)
            self.assertRegex(reply.decode("latin-1"), r"^ERROR 4\d\d ",
                             "%s: reply %r" % (what, reply[:200]))
            self.assertEqual(ping(self.sock), b"OK\npong\n", "no pong after %s" % what)
        # Silent clients do not block the others.
        idle = []
        try:
            for _ in range(8):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.sock)
                s.sendall(b"sta")            # half a request, then nothing
                idle.append(s)
            t0 = time.monotonic()
            self.assertEqual(ping(self.sock), b"OK\npong\n")
            self.status()
            self.assertLess(time.monotonic() - t0, 3, "requests waited behind idle clients")
        finally:
            for s in idle:
                s.close()
        # More connections than the server takes at once, dropped at once.
        many = []
        for _ in range(40):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(self.sock)
            except (BlockingIOError, OSError):
                pass
            many.append(s)
        for s in many:
            s.close()
        time.sleep(0.2)
        self.assertEqual(ping(self.sock), b"OK\npong\n")
        self.assertIsNone(r.proc.poll(), r.log())
        self.stop_daemon(r)

    def nobody_peer(self):
        """(credentials for subprocess, peer(line) -> reply) for a process
        running as nobody:nogroup; skips unless root."""
        if os.geteuid() != 0:
            self.skipTest("needs root to run a peer as nobody")
        try:
            nobody = pwd.getpwnam("nobody")
            nogroup = grp.getgrnam("nogroup")
        except KeyError:
            self.skipTest("no user nobody / group nogroup")
        # nobody must be able to get through the test's directories.
        os.chmod(h.ENV["tmp"], 0o711)
        os.chmod(self.tmp, 0o711)
        creds = dict(user=nobody.pw_uid, group=nogroup.gr_gid,
                     extra_groups=[nogroup.gr_gid], cwd="/")

        def peer(line):
            p = subprocess.run([sys.executable, "-I", "-c", PEER_CLIENT, self.sock, line],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                               **creds)
            return p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
        return creds, peer, nogroup.gr_gid

    def test_socket_permissions(self):
        """A peer that is not root and not the daemon's user, in [control]
        group: status yes; run and cancel: 403.  (The socket's directory is
        made by the administrator here, 0770 root:nogroup.)"""
        creds, peer, gid = self.nobody_peer()
        self.seed()
        rundir = os.path.join(self.tmp, "run")
        os.mkdir(rundir)
        os.chown(rundir, 0, gid)
        os.chmod(rundir, 0o770)
        self.sock = os.path.join(rundir, "control.sock")
        conf = self.config(control={"socket": self.sock, "group": "nogroup"})
        r = self.start_daemon(conf)
        out = peer("status")
        self.assertTrue(out.startswith("OK\n"), "status as a member of [control] group: %r" % out)
        for cmd in ("run", "cancel"):
            out = peer(cmd)
            self.assertTrue(out.startswith("ERROR 403 "), "%s as nobody: %r" % (cmd, out))
        # The built ctl may sit where nobody cannot reach it (a checkout in
        # /root, mode 0700): run a copy from the test's own directory.
        ctl_copy = os.path.join(h.programs_for_others(), "mongo-azure-backupctl")
        argv = [ctl_copy, "-s", self.sock, "run"]
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30, env=h.daemon_env(), **creds)
        rc, out, err = p.returncode, p.stdout.decode(), p.stderr.decode()
        self.assertEqual(rc, 4, "ctl run as nobody: exit %d (4: not permitted) %s%s"
                         % (rc, out, err))
        self.assertRegex(out + err, r"(?i)(403|forbidden|permission|not allowed|denied)")
        st = self.status()
        self.assertIsNone(st.get("last_run"), "nobody started a run: %r" % st)
        self.assertEqual(st.get("state"), "idle", st)
        # root may.
        rc, out, err = self.ctl("run", "--wait")
        self.assertEqual(rc, 0, out + err + r.log())
        self.stop_daemon(r)

    def test_socket_dir_made_for_group(self):
        """The daemon creates a missing socket directory 0750 root with
        [control] group, so that the group's members can reach the socket
        (and nobody else, and only root can put anything there)."""
        _creds, peer, gid = self.nobody_peer()
        rundir = os.path.join(self.tmp, "run")
        self.sock = os.path.join(rundir, "control.sock")
        conf = self.config(control={"socket": self.sock, "group": "nogroup"})
        r = self.start_daemon(conf)
        st = os.stat(rundir)
        out = peer("status")
        self.assertTrue(out.startswith("OK\n"),
                        "status from a member of [control] group: %r; %s is mode %o, gid %d; log:\n%s"
                        % (out, rundir, st.st_mode & 0o7777, st.st_gid, r.log()))
        self.assertEqual(st.st_mode & 0o7777, 0o750, "mode of %s" % rundir)
        self.assertEqual(st.st_uid, os.geteuid(), "owner of %s" % rundir)
        self.assertEqual(st.st_gid, gid, "group of %s" % rundir)
        self.stop_daemon(r)

    def test_ctl_without_daemon(self):
        """Exit 3 when nothing answers, 2 on usage errors."""
        rc, out, err = self.ctl("status", sock=os.path.join(self.tmp, "nothing.sock"))
        self.assertEqual(rc, 3, out + err)
        self.assertTrue(err.strip(), "no message on stderr")
        stale = os.path.join(self.tmp, "stale.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(stale)
        s.close()                       # the file stays, nobody listens
        for cmd in (["status"], ["run"], ["cancel"], ["metrics"]):
            rc, out, err = self.ctl(*cmd, sock=stale)
            self.assertEqual(rc, 3, "%s: %d %s%s" % (cmd, rc, out, err))
        for argv in (["frobnicate"], [], ["status", "--bogus"], ["run", "--wait", "extra"]):
            rc, out, err = self.ctl(*argv, sock=stale)
            self.assertEqual(rc, 2, "%r: %d %s%s" % (argv, rc, out, err))


class TestSignals(DaemonTestCase):

    def test_sighup_reload(self):
        """HUP re-reads the configuration; a broken one is reported with
        FILE:LINE and the previous one stays in force."""
        self.seed()
        conf = self.config()
        r = self.start_daemon(conf)
        self.assertEqual(parse_utc(self.status()["next_run"]).strftime("%m-%d"), "02-29")

        # A valid change takes effect.
        conf = self.config(schedule={"cron": "0 0 1 1 *"})
        os.kill(r.pid, signal.SIGHUP)
        st = self.wait_status(lambda s: parse_utc(s["next_run"]).strftime("%m-%d") == "01-01",
                              "the new schedule (Jan 1st)", 15, r)
        good_next = st["next_run"]
        year = datetime.datetime.now(datetime.timezone.utc).year + 1
        self.assertEqual(parse_utc(good_next), utc(year, 1, 1), st)
        self.assertEqual((st.get("last_reload") or {}).get("result"), "ok", st)
        self.assertIsNone(st.get("last_problem"), st)

        # A broken one does not.
        conf = self.config(schedule={"cron": "0 0 15 6 *"}, limits={"bogus_key": 1})
        with open(conf) as f:
            line = next(i for i, text in enumerate(f, 1) if "bogus_key" in text)
        os.kill(r.pid, signal.SIGHUP)
        log = self.wait_log(r, r"keeping the previous configuration", "keeping the old configuration")
        self.assertRegex(log, r"%s:%d:.*bogus_key" % (re.escape(conf), line))
        self.assertIsNone(r.proc.poll(), "the daemon exited on a bad reload:\n" + log)
        st = self.status()
        self.assertEqual(st["next_run"], good_next, "the schedule changed after a refused reload")
        self.assertEqual(st.get("pid"), r.pid)
        # status tells it without the log.
        reload = st.get("last_reload") or {}
        self.assertEqual(reload.get("result"), "failed", st)
        self.assertIn("keeping the previous configuration", reload.get("message", ""), st)
        problem = st.get("last_problem") or {}
        self.assertEqual(problem.get("level"), "error", st)
        self.assertIn("keeping the previous configuration", problem.get("message", ""), st)
        rc, out, err = self.ctl("status")
        self.assertEqual(rc, 0, out + err)
        self.assertRegex(out, r"(?m)^last reload: +[-0-9]+ [:0-9]+ UTC, failed: .*problem", out)
        self.assertRegex(out, r"(?m)^last error: +[-0-9]+ [:0-9]+ UTC, .*keeping the previous", out)
        # And it still works with the old configuration.
        rc, out, err = self.ctl("run", "--wait")
        self.assertEqual(rc, 0, out + err + r.log())
        self.stop_daemon(r)

    def test_sigterm_during_run(self):
        """TERM while an export hangs: exit 0 within the grace period, no
        blob for the stalled collection, no child left."""
        self.require_faults()
        self.seed(big=True)
        conf = self.config(collections="big, small, types")
        r = self.start_daemon(conf)
        self.stalled_run(r)
        r.wait_for_child("upload-blob", h.is_data_upload("big"))
        kids = h.descendants(r.pid)
        self.assertTrue(kids)
        t0 = time.monotonic()
        os.kill(r.pid, signal.SIGTERM)
        rc, log, _ = r.wait(timeout=40)
        elapsed = time.monotonic() - t0
        self.assertExit(rc, 0, log)
        self.assertLess(elapsed, 20, "TERM took %.1f s; log:\n%s" % (elapsed, log))
        self.assertNoDataBlob("big", log)
        for name in self.blobs.names("backups/"):
            if name.endswith("manifest.json"):
                self.assertIsNot(json.loads(self.blobs.download(name)).get("complete"), True, name)
        time.sleep(0.3)
        alive = [p for p in kids if h.proc_stat(p) is not None and h.proc_stat(p)[1] != "Z"]
        self.assertEqual(alive, [], "children of the daemon still alive: %r"
                         % [(p, h.proc_cmdline(p)) for p in alive])
        self.assertFalse(ping(self.sock).startswith(b"OK"), "the socket still answers")

    def test_second_instance_refused(self):
        self.seed()
        conf = self.config()
        r1 = self.start_daemon(conf)
        r2 = self.start_backup(conf, args=["-f"])
        rc, log2, _ = r2.wait(timeout=20)
        self.assertEqual(rc, 1, "second daemon: exit %s\n%s" % (rc, log2))
        self.assertIn("already running", log2)
        self.assertIsNone(r1.proc.poll(), r1.log())
        self.assertEqual(ping(self.sock), b"OK\npong\n", "the first daemon's socket is gone")
        with open(self.pidfile) as f:
            self.assertEqual(int(f.read().split()[0]), r1.pid)
        self.assertEqual(self.status().get("pid"), r1.pid)
        self.stop_daemon(r1)

    def start_detached(self, conf):
        """Run `mongo-azure-backupd -c CONF` (no -f) to its exit: (exit
        code, its output).  Output goes to a file, not a pipe, so a daemon
        that kept the starter's stderr cannot hang the test (checked apart)."""
        outp = os.path.join(self.tmp, "starter-%d.out" % len(os.listdir(self.tmp)))
        with open(outp, "wb") as f:
            p = subprocess.run([h.DAEMON, "-c", conf], stdin=subprocess.DEVNULL,
                               stdout=f, stderr=f, timeout=30, env=h.daemon_env())
        with open(outp, errors="replace") as f:
            return p.returncode, f.read(), outp

    def test_detached(self):
        """Without -f: the start command returns once the socket answers;
        TERM to the pid in the pid file stops it."""
        self.seed()
        conf = self.config(log={"target": "auto"})
        rc, out, outp = self.start_detached(conf)
        self.assertEqual(rc, 0, "detached start: %d %s" % (rc, out))
        # Ready when the starter returned: no retry.
        self.assertEqual(ping(self.sock), b"OK\npong\n", "the socket does not answer yet")
        with open(self.pidfile) as f:
            pid = int(f.read().split()[0])
        self.addCleanup(lambda: h.kill_tree(pid) if h.proc_stat(pid) else None)
        self.assertEqual(os.path.realpath("/proc/%d/exe" % pid), os.path.realpath(h.DAEMON))
        self.assertEqual(self.status().get("pid"), pid)
        # Detached for real: a new session, not holding the starter's output.
        self.assertEqual(os.getsid(pid), pid, "the daemon is not a session leader")
        held = [fd for fd in ("0", "1", "2")
                if os.path.realpath("/proc/%d/fd/%s" % (pid, fd)) == os.path.realpath(outp)]
        self.assertEqual(held, [], "the detached daemon keeps the starter's output open "
                         "(`$(service start)` would hang)")
        # A second detached start is refused and says why.
        rc2, out2, _ = self.start_detached(conf)
        self.assertEqual(rc2, 1, out2)
        self.assertIn("already running", out2)
        self.assertIsNotNone(h.proc_stat(pid), "the running daemon died")

        os.kill(pid, signal.SIGTERM)
        gone = wait_gone(pid, 20)
        self.assertIsNot(gone, False, "the daemon did not exit on TERM")
        if not isinstance(gone, bool):
            self.assertEqual(gone, 0, "exit status after TERM")
        rc, out, err = self.ctl("status")
        self.assertEqual(rc, 3, out + err)

    def test_detached_start_failures(self):
        """A config error: exit 2 with FILE:LINE; a socket that cannot be
        created: exit 1 with the reason.  Nothing left running."""
        conf = self.config(log={"target": "auto"}, limits={"bogus_key": 1})
        rc, out, _ = self.start_detached(conf)
        self.assertEqual(rc, 2, out)
        self.assertRegex(out, re.escape(conf) + r":\d+:.*bogus_key")

        blocker = os.path.join(self.tmp, "afile")
        with open(blocker, "w") as f:
            f.write("not a directory\n")
        conf = self.config(log={"target": "auto"},
                           control={"socket": os.path.join(blocker, "control.sock")})
        rc, out, _ = self.start_detached(conf)
        self.assertEqual(rc, 1, out)
        self.assertIn("afile", out, "the reason does not name the socket path")
        time.sleep(0.3)
        h._reap_orphans()
        self.assertEqual(h.stray_processes(), [])

    def test_state_persists_across_restart(self):
        self.seed()
        conf = self.config()
        r = self.start_daemon(conf)
        rc, out, err = self.ctl("run", "--wait")
        self.assertEqual(rc, 0, out + err + r.log())
        before = self.status()["last_run"]
        self.stop_daemon(r)
        state_dir = os.path.join(self.tmp, "state")
        files = os.listdir(state_dir)
        self.assertIn("state.json", files)
        self.assertEqual([f for f in files if f != "state.json" and not os.path.isdir(
            os.path.join(state_dir, f))], [], "leftover files in the state dir")
        with open(os.path.join(state_dir, "state.json")) as f:
            json.load(f)
        r2 = self.start_daemon(conf)
        st = self.status()
        self.assertEqual(st.get("pid"), r2.pid)
        self.assertIsNotNone(st.get("last_run"), "the last run was forgotten: %r" % st)
        self.assertEqual(st["last_run"].get("run_id"), before["run_id"], st)
        self.assertEqual(st["last_run"].get("result"), "complete", st)
        self.stop_daemon(r2)


class TestHooksAndMetrics(DaemonTestCase):

    def hook_config(self, **kw):
        out = os.path.join(self.tmp, "hooks")
        os.makedirs(out, exist_ok=True)
        notify = {
            "on_success": "env > %s/success.tmp && mv %s/success.tmp %s/success.env" % (out, out, out),
            "on_failure": "env > %s/failure.tmp && mv %s/failure.tmp %s/failure.env" % (out, out, out),
            "timeout": "10s",
        }
        notify.update(kw.pop("notify", {}))
        return self.config(notify=notify, **kw), out

    def wait_file(self, path, timeout=15, r=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path):
                return path
            time.sleep(0.05)
        self.fail("%s did not appear after %s s%s" % (path, timeout,
                                                       ("; log:\n" + r.log()) if r else ""))

    def wait_hook_finished(self, r, what, timeout=15):
        """Waits for the daemon to log the end of the run's one hook; after
        that no other hook of the run can start."""
        pattern = re.compile(r"notify: %s hook (finished|failed|was killed)" % what)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pattern.search(r.log()):
                return
            time.sleep(0.05)
        self.fail("the %s hook did not finish in %s s; log:\n%s" % (what, timeout, r.log()))

    def test_on_success(self):
        self.seed()
        conf, out = self.hook_config()
        r = self.start_daemon(conf)
        before = h.utc_today()
        rc, o, e = self.ctl("run", "--wait")
        self.assertEqual(rc, 0, o + e + r.log())
        after = h.utc_today()
        env = read_env_file(self.wait_file(os.path.join(out, "success.env"), r=r))
        st = self.status()
        self.assertEqual(env.get("MAB_RESULT"), "complete", env)
        self.assertEqual(env.get("MAB_RUN_ID"), st["last_run"]["run_id"], env)
        self.assertIn(env.get("MAB_SET"), ["backups/%s/" % d for d in {before, after}], env)
        self.assertEqual(env.get("MAB_DATABASE"), self.database, env)
        self.assertEqual(env.get("MAB_CONTAINER"), self.container, env)
        self.assertEqual(env.get("MAB_FAILED_COLLECTIONS", ""), "", env)
        self.wait_hook_finished(r, "on_success")
        self.assertNotIn("on_failure hook started", r.log())
        self.assertFalse(os.path.exists(os.path.join(out, "failure.env")),
                         "on_failure ran after a complete run")
        self.stop_daemon(r)

    def test_on_failure(self):
        self.seed()
        conf, out = self.hook_config(collections="small, nosuchcoll",
                                     limits={"export_retries": 0})
        r = self.start_daemon(conf)
        rc, o, e = self.ctl("run", "--wait")
        self.assertEqual(rc, 1, "run --wait of a partial run: %d %s%s" % (rc, o, e))
        env = read_env_file(self.wait_file(os.path.join(out, "failure.env"), r=r))
        st = self.status()
        self.assertEqual(st["last_run"]["result"], "partial", st)
        self.assertEqual(env.get("MAB_RESULT"), "partial", env)
        self.assertEqual(env.get("MAB_FAILED_COLLECTIONS"), "nosuchcoll", env)
        self.assertEqual(env.get("MAB_RUN_ID"), st["last_run"]["run_id"], env)
        entries = {c["name"]: c for c in st["last_run"]["collections"]}
        self.assertEqual(entries["nosuchcoll"]["result"], "failed", entries)
        self.assertTrue(entries["nosuchcoll"].get("error"), entries)
        self.assertEqual(entries["small"]["result"], "ok", entries)
        self.wait_hook_finished(r, "on_failure")
        self.assertNotIn("on_success hook started", r.log())
        self.assertFalse(os.path.exists(os.path.join(out, "success.env")),
                         "on_success ran after a partial run")
        self.stop_daemon(r)

    def test_hook_timeout(self):
        """A hook that never ends is killed after [notify] timeout, with
        whatever it started; the daemon answers meanwhile and goes on."""
        self.seed()
        marker = str(90000 + random.randrange(9999))
        conf, out = self.hook_config(notify={"on_success": "sleep %s" % marker, "timeout": "2s"})
        self.addCleanup(self.kill_hooks, marker)
        r = self.start_daemon(conf)
        rc, o, e = self.ctl("run", "--wait")
        self.assertEqual(rc, 0, o + e + r.log())
        deadline = time.monotonic() + 10
        while not find_processes(["sleep", marker]) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(find_processes(["sleep", marker]), "the hook never started; log:\n" + r.log())
        t0 = time.monotonic()
        st = self.status()                     # not blocked by the hook
        self.assertEqual(st.get("state"), "idle", st)
        self.assertLess(time.monotonic() - t0, 1.5)
        while find_processes(["sleep", marker]) and time.monotonic() - t0 < 15:
            time.sleep(0.1)
        lived = time.monotonic() - t0
        self.assertEqual(find_processes(["sleep", marker]), [],
                         "the hook's sleep is still running after %.1f s" % lived)
        self.assertGreater(lived, 0.5, "the hook was killed long before its timeout")
        self.assertLess(lived, 12, "the hook lived %.1f s with timeout = 2s" % lived)
        self.wait_log(r, r"(hook|on_success|notify).*(time|kill)", "about the killed hook")
        rc, o, e = self.ctl("run", "--wait")
        self.assertEqual(rc, 0, "the next run after a hung hook: %s%s\n%s" % (o, e, r.log()))
        self.assertIsNone(r.proc.poll())
        # The second run's hook is killed in time too.
        deadline = time.monotonic() + 12
        while find_processes(["sleep", marker]) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(find_processes(["sleep", marker]), [], "the second hook outlived its timeout")
        self.stop_daemon(r)

    @staticmethod
    def kill_hooks(marker):
        """After a failed check: no orphaned hook may stay behind."""
        for argv in (["sleep", marker], ["sh", "-c", "sleep " + marker],
                     ["/bin/sh", "-c", "sleep " + marker]):
            for pid in find_processes(argv):
                h.kill_tree(pid, grace=1)
        h._reap_orphans()

    def test_hook_does_not_outlive_timeout_after_exit(self):
        """TERM while a hook hangs: the daemon gives the hook at most the rest
        of its [notify] timeout (never more than 5 s), then ends it with its
        process group and exits: nothing is orphaned."""
        self.seed()
        marker = str(80000 + random.randrange(9999))
        conf, out = self.hook_config(notify={"on_success": "sleep %s" % marker, "timeout": "2s"})
        self.addCleanup(self.kill_hooks, marker)
        r = self.start_daemon(conf)
        rc, o, e = self.ctl("run", "--wait")
        self.assertEqual(rc, 0, o + e + r.log())
        deadline = time.monotonic() + 10
        while not find_processes(["sleep", marker]) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(find_processes(["sleep", marker]), "the hook never started; log:\n" + r.log())
        t0 = time.monotonic()
        log = self.stop_daemon(r)
        self.assertLess(time.monotonic() - t0, 3.5,
                        "the daemon waited for the hook past its 2 s timeout")
        time.sleep(0.3)
        self.assertEqual(find_processes(["sleep", marker]), [],
                         "a hook outlived the daemon; log:\n" + log)

    def runs_total(self, samples):
        return sum(v for name, _labels, v in samples
                   if re.match(r"^(mongo_azure_backup|mab)_runs_total$", name))

    def assertPrometheus(self, text, what):
        try:
            types, samples = parse_prometheus(text)
        except AssertionError as e:
            self.fail("%s: %s\n%s" % (what, e, text))
        self.assertTrue(types, "%s: no # TYPE lines:\n%s" % (what, text))
        self.assertTrue(samples, "%s: no samples" % what)
        for name, _labels, _v in samples:
            self.assertTrue(name.startswith(PROM_PREFIXES), "%s: metric %s lacks the prefix" % (what, name))
            self.assertIsNotNone(family_of(name, types), "%s: %s has no # TYPE" % (what, name))
        return types, samples

    def test_metrics(self):
        self.seed()
        mdir = os.path.join(self.tmp, "metrics")
        os.makedirs(mdir)
        textfile = os.path.join(mdir, "mongo-azure-backup.prom")
        conf = self.config(metrics={"textfile": textfile})
        r = self.start_daemon(conf)
        rc, o, e = self.ctl("run", "--wait")
        self.assertEqual(rc, 0, o + e + r.log())
        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline:
            if os.path.exists(textfile):
                with open(textfile) as f:
                    text = f.read()
                if re.search(r"runs_total", text):
                    break
            time.sleep(0.1)
        self.assertTrue(text, "no metrics textfile after a run; log:\n" + r.log())
        _types, samples = self.assertPrometheus(text, "textfile")
        first = self.runs_total(samples)
        self.assertGreaterEqual(first, 1, "no runs_total >= 1 in:\n" + text)
        self.assertEqual(os.listdir(mdir), ["mongo-azure-backup.prom"], "temporary files left")

        rc, out, err = self.ctl("metrics")
        self.assertEqual(rc, 0, out + err)
        self.assertRegex(out, r"(?m)^# TYPE mongo_azure_backup_")
        self.assertRegex(out, r"(?m)^mongo_azure_backup_")
        _t, live = self.assertPrometheus(out, "ctl metrics")
        self.assertEqual(self.runs_total(live), first)

        # Not in the same second as the first run: two runs of one second
        # share a run id (test_back_to_back_runs is about that).
        time.sleep(1.05)
        rc, o, e = self.ctl("run", "--wait")
        self.assertEqual(rc, 0, o + e)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(textfile) as f:
                text = f.read()
            if self.runs_total(parse_prometheus(text)[1]) == first + 1:
                break
            time.sleep(0.1)
        self.assertEqual(self.runs_total(parse_prometheus(text)[1]), first + 1,
                         "the textfile was not rewritten after the second run:\n" + text)
        self.stop_daemon(r)


class TestNextRuns(DaemonTestCase):
    """`mongo-azure-backupctl next-runs` (no daemon needed).  Expected values
    worked out by hand from Cronos' rules (/work/shared/reference/cron.md)."""

    def next_runs(self, *args, conf=None):
        rc, out, err = self.ctl("next-runs", *args, conf=conf)
        return rc, out, err

    def assertRuns(self, args, want, conf=None):
        rc, out, err = self.next_runs(*args, conf=conf)
        self.assertEqual(rc, 0, "next-runs %s: %d %s%s" % (" ".join(args), rc, out, err))
        got = instants_in(out)
        self.assertEqual([g.isoformat() for g in got], [w.isoformat() for w in want],
                         "next-runs %s printed:\n%s" % (" ".join(args), out))

    def test_spring_gap_new_york(self):
        # 2026-03-08 02:00 EST -> 03:00 EDT.  --from is local time in --tz:
        # 01:30 EST, then 02:30 does not exist and fires at the jump (03:00
        # EDT), then 03:30 EDT.
        self.assertRuns(["--tz", "America/New_York", "--from", "2026-03-08T01:00:00",
                         "--count", "3", "30 * * * *"],
                        [utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 7, 30)])
        # A fixed time in the gap fires once, at the jump.
        self.assertRuns(["--tz", "America/New_York", "--from", "2026-03-08T06:00:00Z",
                         "--count", "2", "0 30 2 * * *"],
                        [utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)])

    def test_autumn_repeat_new_york(self):
        # 2026-11-01 02:00 EDT -> 01:00 EST.  Interval expressions fire in
        # both passes of 01:xx ...
        self.assertRuns(["--tz", "America/New_York", "--from", "2026-11-01T05:00:00Z",
                         "--count", "4", "*/30 * * * *"],
                        [utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 0),
                         utc(2026, 11, 1, 6, 30), utc(2026, 11, 1, 7, 0)])
        # ... fixed times in the first (EDT) pass only.
        self.assertRuns(["--tz", "America/New_York", "--from", "2026-11-01T04:00:00Z",
                         "--count", "2", "0 30 1 * * *"],
                        [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)])
        # 02:00 exists once, in standard time.
        self.assertRuns(["--tz", "America/New_York", "--from", "2026-11-01T05:45:00Z",
                         "--count", "1", "0 0 2 * * *"],
                        [utc(2026, 11, 1, 7, 0)])

    def test_seconds_and_and_semantics(self):
        self.assertRuns(["--tz", "UTC", "--from", "2026-01-01T00:00:00Z", "--count", "3",
                         "*/5 * * * * *"],
                        [utc(2026, 1, 1, 0, 0, 5), utc(2026, 1, 1, 0, 0, 10),
                         utc(2026, 1, 1, 0, 0, 15)])
        # Day of month AND day of week (Cronos), not Vixie's OR.
        self.assertRuns(["--tz", "UTC", "--from", "2026-01-01T00:00:00Z", "--count", "3",
                         "0 0 13 * 5"],
                        [utc(2026, 2, 13), utc(2026, 3, 13), utc(2026, 11, 13)])

    def test_expression_and_zone_from_config(self):
        conf = self.config(schedule={"cron": "15 10 * * *", "timezone": "Europe/Belgrade"})
        self.assertRuns(["--from", "2026-01-01T00:00:00Z", "--count", "2"],
                        [utc(2026, 1, 1, 9, 15), utc(2026, 1, 2, 9, 15)], conf=conf)

    def test_errors(self):
        rc, out, err = self.next_runs("--tz", "UTC", "61 * * * *")
        self.assertEqual(rc, 2, out + err)
        self.assertRegex(err, r"(?i)minute", "the message does not name the field")
        rc, out, err = self.next_runs("--tz", "UTC", "0 24 * * *")
        self.assertEqual(rc, 2, out + err)
        self.assertRegex(err, r"(?i)hour")
        rc, out, err = self.next_runs("--tz", "UTC", "* * * * * * *")
        self.assertEqual(rc, 2, out + err)
        rc, out, err = self.next_runs("--tz", "Mars/Olympus_Mons", "0 3 * * *")
        self.assertEqual(rc, 2, out + err)
        rc, out, err = self.next_runs("--tz", "UTC", "--count", "many", "0 3 * * *")
        self.assertEqual(rc, 2, out + err)
        # Valid but never fires.
        rc, out, err = self.next_runs("--tz", "UTC", "--from", "2026-01-01T00:00:00Z",
                                      "0 0 30 2 *")
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(instants_in(out), [])
        self.assertTrue((out + err).strip(), "no message for an expression that never fires")


if __name__ == "__main__":
    h.main()
