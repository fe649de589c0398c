#!/usr/bin/python3
"""test_local_users.py - what other local users can do to the daemon and
its processes.

  * Control socket fairness: a member of [control] group (nobody, in
    nogroup) opens as many connections to the socket as it can, holds them
    idle and reconnects whenever the daemon closes one.  Root's `run`,
    `status` and `cancel` are still answered promptly (each within 2 s, by
    the command, not "busy"); another member is still served; the flooding
    member never holds more than its 4 connections and gets
    "ERROR 500 busy: uid 65534 has 4 connections open already".
  * No core dumps: every program (the daemon, the ctl, the helpers) runs
    with "Max core file size 0 0" in /proc/PID/limits and is non-dumpable.
    Non-dumpable shows from outside as /proc/PID files owned by root even
    when the process runs as another user (checked for every program run
    as nobody and left waiting on a FIFO, and for the daemon's helpers
    under [daemon] user).  The daemon and `ctl run --wait` are root, whose
    files are root's anyway: they are started without CAP_SYS_PTRACE, and
    another root process without it must be refused their /proc/PID/mem,
    which it may open for a dumpable process started the same way (checked
    first, or that part is left out with a note).

Needs root, the user nobody and the group nogroup, setpriv(1), and the
build directory reachable by nobody; skips, saying which, otherwise.
"""

import grp
import json
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402

NEVER = "0 0 29 2 *"
MAX_PER_UID = 4           # CONTROL_MAX_PER_UID in src/supervisor/control.h
PROMPT = 2.0              # seconds root may wait for an answer under the flood
OTHER_MEMBER_UID = 40123  # no passwd entry needed: a uid with nogroup as its group


def setUpModule():
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


def core_limits(pid):
    """(soft, hard) of "Max core file size" in /proc/PID/limits, as text."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max core file size"):
                fields = line[len("Max core file size"):].split()
                return fields[0], fields[1]
    raise AssertionError("no core file size in /proc/%d/limits" % pid)


def ids_of(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _sep, rest = line.partition(":")
            if key in ("Uid", "Gid"):
                out[key] = [int(x) for x in rest.split()]
            elif key in ("SigBlk", "SigIgn", "SigCgt"):
                out[key] = int(rest.strip(), 16)
    return out


def reachable_as(uid, gid, path):
    p = subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups",
                        "test", "-x", path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p.returncode == 0


# Runs a program without CAP_SYS_PTRACE: in it, and in what it execs.
NO_PTRACE = ["setpriv", "--bounding-set=-sys_ptrace"]

# Tries to open /proc/PID/mem of each pid in argv: {pid: "ok" or the errno's name}.
OPEN_MEM = r'''
import errno, json, sys
out = {}
for pid in sys.argv[1:]:
    try:
        open("/proc/%s/mem" % pid, "rb").close()
        out[pid] = "ok"
    except OSError as e:
        out[pid] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(out))
'''


# A member of the control group that holds as many connections as it can:
# it keeps up to TARGET sockets open, replaces each one the daemon answers
# or closes, and reads commands on stdin ("stop").  It prints READY once it
# has opened that many, and at the end a JSON summary.
HOG = r'''
import json, select, socket, sys, time
path, target = sys.argv[1], int(sys.argv[2])
socks = {}
stats = {"opened": 0, "refused": 0, "evicted": 0, "timed_out": 0, "connect_errors": 0,
         "reasons": {}, "max_silent": 0}

def drain(block):
    if not socks:
        return
    ready, _, _ = select.select(list(socks), [], [], block)
    for s in ready:
        try:
            data = s.recv(512)
        except OSError:
            data = b""
        text = data.decode("utf-8", "replace").strip()
        if text.startswith("ERROR 500 busy: "):
            why = text[len("ERROR 500 busy: "):]
            stats["reasons"][why] = stats["reasons"].get(why, 0) + 1
            if why.startswith("idle connection closed"):
                stats["evicted"] += 1
            else:
                stats["refused"] += 1
        elif not text:
            stats["timed_out"] += 1
        else:
            stats["reasons"][text] = stats["reasons"].get(text, 0) + 1
        s.close()
        del socks[s]

said_ready = False
while True:
    r, _, _ = select.select([sys.stdin], [], [], 0)
    if r and sys.stdin.readline().strip() == "stop":
        break
    drain(0)
    now = time.monotonic()
    silent = sum(1 for t in socks.values() if now - t > 0.5)
    stats["max_silent"] = max(stats["max_silent"], silent)
    for _ in range(50):
        if len(socks) >= target:
            break
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(path)
        except OSError:
            stats["connect_errors"] += 1
            s.close()
            break
        s.setblocking(False)
        socks[s] = time.monotonic()
        stats["opened"] += 1
    if not said_ready and stats["opened"] >= target:
        print("READY", flush=True)
        said_ready = True
    time.sleep(0.02)
# No new connections: whatever the daemon has to say to the open ones
# arrives now; what stays silent is what it holds for us.
deadline = time.monotonic() + 1.0
while time.monotonic() < deadline:
    drain(0.1)
stats["held_at_end"] = len(socks)
print(json.dumps(stats), flush=True)
'''


class LocalUsersCase(h.BackupTestCase):

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("needs root: the test runs peers and programs as other users")
        try:
            self.nobody = pwd.getpwnam("nobody")
            self.nogroup = grp.getgrnam("nogroup")
        except KeyError:
            self.skipTest("no user nobody / group nogroup")
        if shutil.which("setpriv") is None:
            self.skipTest("no setpriv (util-linux)")
        # nobody must be able to get through the test's directories.
        os.chmod(h.ENV["tmp"], 0o711)
        os.chmod(self.tmp, 0o711)
        self.sock = os.path.join(self.tmp, "control.sock")

    def as_nobody(self, uid=None):
        return dict(user=self.nobody.pw_uid if uid is None else uid,
                    group=self.nogroup.gr_gid, extra_groups=[self.nogroup.gr_gid])

    def config(self, **kw):
        sched = {"cron": NEVER, "timezone": "UTC", "catch_up": "no"}
        kw.setdefault("collections", "big, small")
        return self.write_config(schedule=sched, **kw)

    def seed(self):
        self.db["small"].insert_many(list(h.gen_users(20, seed=11)))
        h.seed_users(self.db, "big", 300, seed=12)    # more than a batch: a getMore

    def start_daemon(self, conf, env=None):
        r = self.start_backup(conf, args=["-f"], env=env)
        self.addCleanup(self._stop_quietly, r)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if r.proc.poll() is not None:
                self.fail("the daemon exited with %s; log:\n%s" % (r.proc.returncode, r.log()))
            if self.raw("ping").startswith("OK"):
                return r
            time.sleep(0.05)
        self.fail("the daemon does not answer on %s; log:\n%s" % (self.sock, r.log()))

    def _stop_quietly(self, r):
        if r.proc.poll() is None:
            try:
                os.kill(r.pid, signal.SIGTERM)
                r.proc.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                r.kill()

    def raw(self, line, timeout=10.0):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.sock)
            s.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                try:
                    b = s.recv(65536)
                except ConnectionResetError:
                    break
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks).decode("utf-8", "replace")
        except OSError as e:
            return "CONNECT-ERROR %s" % e
        finally:
            s.close()

    def ctl(self, *args, timeout=30):
        p = subprocess.run([h.CTL, "-s", self.sock] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           env=h.daemon_env())
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))

    def timed_ctl(self, *args):
        t0 = time.monotonic()
        rc, out, err = self.ctl(*args)
        return rc, out, err, time.monotonic() - t0

    def stall_run(self, r):
        """A run whose export of big hangs on its first getMore."""
        self.mongo.fault(hang_on_getmore=1)
        rc, out, err, took = self.timed_ctl("run")
        self.assertEqual(rc, 0, "run: %s%s\n%s" % (out, err, r.log()))
        self.assertLess(took, PROMPT, "run took %.2f s" % took)
        exp = r.wait_for_child("export-collection", h.is_data_export("big"))
        deadline = time.monotonic() + 30
        while self.mongo.stats().get("faultsFired", 0) < 1:
            self.assertLess(time.monotonic(), deadline, "the fault never fired")
            time.sleep(0.05)
        return exp


class TestControlFairness(LocalUsersCase):

    def test_member_cannot_crowd_out_root(self):
        self.require_faults()
        self.seed()
        gid = self.nogroup.gr_gid
        rundir = os.path.join(self.tmp, "run")
        os.mkdir(rundir)
        os.chown(rundir, 0, gid)
        os.chmod(rundir, 0o770)
        self.sock = os.path.join(rundir, "control.sock")
        conf = self.config(control={"socket": self.sock, "group": "nogroup"})
        r = self.start_daemon(conf)

        hog = subprocess.Popen([sys.executable, "-I", "-c", HOG, self.sock, "200"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd="/", **self.as_nobody())
        self.addCleanup(h.kill_tree, hog.pid, 1.0)
        ready = select.select([hog.stdout], [], [], 20)[0]
        line = hog.stdout.readline().decode() if ready else ""
        if line.strip() != "READY":
            hog.kill()
            self.fail("the flooding member did not get going (%r); its stderr: %s\nlog:\n%s"
                      % (line, hog.stderr.read().decode(), r.log()))

        # Under the flood: root starts a run, asks for status, joins the run
        # again and cancels it, each answered by the command within PROMPT.
        self.stall_run(r)
        for i in range(6):
            rc, out, err, took = self.timed_ctl("status", "--json")
            self.assertEqual(rc, 0, "status #%d: %s%s" % (i + 1, out, err))
            self.assertLess(took, PROMPT, "status #%d took %.2f s" % (i + 1, took))
            self.assertEqual(json.loads(out).get("state"), "running", out)
            rc, out, err, took = self.timed_ctl("run")
            self.assertEqual(rc, 0, "run #%d: %s%s" % (i + 1, out, err))
            self.assertLess(took, PROMPT, "run #%d took %.2f s" % (i + 1, took))
            self.assertRegex(out + err, r"(?i)coalesc|already", "run #%d" % (i + 1))
            t0 = time.monotonic()
            reply = self.raw("status")
            self.assertTrue(reply.startswith("OK\n"), "raw status #%d: %r" % (i + 1, reply))
            self.assertLess(time.monotonic() - t0, PROMPT)
        # Another member of the group is served as well.
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, "-I", "-c", h.PEER_CLIENT, self.sock, "status"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, cwd="/",
                           **self.as_nobody(OTHER_MEMBER_UID))
        other = p.stdout.decode() + p.stderr.decode()
        self.assertTrue(other.startswith("OK\n"), "status from uid %d: %r"
                        % (OTHER_MEMBER_UID, other))
        self.assertLess(time.monotonic() - t0, PROMPT + 1)   # + the interpreter's start
        rc, out, err, took = self.timed_ctl("cancel")
        self.assertEqual(rc, 0, "cancel: %s%s\nlog:\n%s" % (out, err, r.log()))
        self.assertLess(took, PROMPT, "cancel took %.2f s" % took)

        # The member: refused beyond its share, never more than its share held.
        out, err = hog.communicate(b"stop\n", timeout=30)
        try:
            stats = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            self.fail("no summary from the flooding member: %r %r" % (out, err))
        self.assertGreater(stats["refused"], 0, stats)
        self.assertIn("uid %d has %d connections open already (at most %d per user)"
                      % (self.nobody.pw_uid, MAX_PER_UID, MAX_PER_UID),
                      stats["reasons"], stats)
        self.assertLessEqual(stats["held_at_end"], MAX_PER_UID, stats)
        self.assertEqual(stats["connect_errors"], 0, stats)
        log = r.log()
        self.assertRegex(log, r"control: refused a connection from uid %d pid \d+: uid %d has "
                         r"%d connections open already" % (self.nobody.pw_uid, self.nobody.pw_uid,
                                                           MAX_PER_UID))
        # Rate-limited: not one line per refused connection.
        self.assertLess(log.count("control: refused a connection"), 5, log[-3000:])

        st = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st = json.loads(self.ctl("status", "--json")[1])
            if st.get("state") == "idle":
                break
            time.sleep(0.1)
        self.assertEqual((st.get("last_run") or {}).get("result"), "cancelled", st)
        os.kill(r.pid, signal.SIGTERM)
        rc, log, _e = r.wait(30)
        self.assertExit(rc, 0, log)


class TestNoCoreDumps(LocalUsersCase):

    def setUp(self):
        super().setUp()
        # Programs run as nobody, and helpers exec'd as [daemon] user, come
        # from copies nobody can reach: the build directory may not be (a
        # checkout under /root, mode 0700, as on a fresh machine).
        self.libexec = h.programs_for_others(("mongo-azure-backupd", "mongo-azure-backupctl") +
                                             h.HELPERS)
        for name in ("export-collection", "mongo-azure-backupctl", "mongo-azure-backupd"):
            path = self.prog(name)
            self.assertTrue(reachable_as(self.nobody.pw_uid, self.nobody.pw_gid, path),
                            "nobody cannot reach the copy %s" % path)

    def prog(self, name):
        return os.path.join(self.libexec, name)

    def assertAlive(self, name, p):
        """p has not exited (which would make /proc/PID someone else's)."""
        if p.poll() is not None:
            self.fail("%s exited with %s: %s" % (name, p.returncode, p.stderr.read()))

    def assertNoCores(self, pid, what):
        self.assertEqual(core_limits(pid), ("0", "0"),
                         "%s[%d]: core file size limit (soft, hard)" % (what, pid))

    def assertNotDumpable(self, pid, what, timeout=5.0):
        """pid runs as nobody: its /proc files belong to root only if it is
        non-dumpable.  exec makes a process dumpable again until its main()
        says otherwise (its first call), so a process just started gets a
        moment; once non-dumpable it stays so."""
        ids = ids_of(pid)
        self.assertEqual(ids["Uid"][1], self.nobody.pw_uid, "%s[%d]: %r" % (what, pid, ids))
        deadline = time.monotonic() + timeout
        while True:
            owners = {name: os.stat("/proc/%d/%s" % (pid, name))
                      for name in ("environ", "fd", "mem")}
            if all((st.st_uid, st.st_gid) == (0, 0) for st in owners.values()) or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.01)
        for name, st in owners.items():
            self.assertEqual((st.st_uid, st.st_gid), (0, 0),
                             "%s[%d]: /proc/%d/%s is owned by %d:%d %.0f s after it was seen: "
                             "the process is dumpable" % (what, pid, pid, name, st.st_uid,
                                                          st.st_gid, timeout))

    def test_every_program_as_a_user(self):
        """Every program, run as nobody and left waiting on its
        configuration (a FIFO nobody writes to): limit 0 0, non-dumpable."""
        fifo_dir = tempfile.mkdtemp(prefix="mab-fifo-")
        self.addCleanup(shutil.rmtree, fifo_dir, True)
        os.chmod(fifo_dir, 0o755)
        fifo = os.path.join(fifo_dir, "conf")
        os.mkfifo(fifo, 0o666)
        os.chmod(fifo, 0o666)
        programs = [
            [self.prog("mongo-azure-backupd"), "-c", fifo, "-f"],
            [self.prog("mongo-azure-backupctl"), "-c", fifo, "status"],
            [self.prog("export-collection"), "-c", fifo, "users"],
            [self.prog("upload-blob"), "-c", fifo, "some/blob"],
            [self.prog("download-blob"), "-c", fifo, "some/blob"],
            [self.prog("prune-sets"), "-c", fifo],
            [self.prog("verify-set"), "-c", fifo, "latest"],
            # No configuration: it waits for the metadata on stdin instead.
            [self.prog("import-collection"), "-d", "db", "--metadata-fd", "0", "users"],
        ]
        procs = []
        before = h.counters_files()
        try:
            for argv in programs:
                p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, cwd="/",
                                     env=h.daemon_env({"MAB_LIBEXECDIR": self.libexec}),
                                     **self.as_nobody())
                procs.append((os.path.basename(argv[0]), p))
            for name, p in procs:
                # It waits in open(2) or read(2), after main() began.
                deadline = time.monotonic() + 10
                while True:
                    self.assertAlive(name, p)
                    st = os.stat("/proc/%d/environ" % p.pid)
                    if st.st_uid == 0 or time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
                self.assertNotDumpable(p.pid, name)
                self.assertNoCores(p.pid, name)
                self.assertAlive(name, p)
            # Run by hand (no MONGOC_DISABLE_SHM), the helpers that link
            # libmongoc have dropped its counters file by now: killed
            # below, they leave nothing in /dev/shm.
            for name, p in procs:
                self.assertFalse(h.left_counters_file(p.pid, before),
                                 "%s[%d] keeps /dev/shm/mongoc-%d" % (name, p.pid, p.pid))
        finally:
            for _name, p in procs:
                p.kill()
                p.wait(10)
                p.stdin.close()
                p.stderr.close()

    def test_running_service(self):
        """The daemon (root), its helpers (as [daemon] user) and `ctl run
        --wait` (root) while a run is going: limits 0 0, all non-dumpable."""
        self.require_faults()
        self.seed()
        conf = self.config(daemon={"user": "nobody"})
        # The daemon and the ctl are root: their /proc files are root's
        # anyway.  Without CAP_SYS_PTRACE (on them too, or the kernel
        # refuses for the capabilities alone), another root process may
        # open a dumpable one's /proc/PID/mem, and not a non-dumpable one's.
        wrapper = os.path.join(self.tmp, "daemon-without-ptrace")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec %s %s \"$@\"\n" % (" ".join(NO_PTRACE), h.DAEMON))
        os.chmod(wrapper, 0o755)
        daemon = h.DAEMON
        h.DAEMON = wrapper
        try:
            r = self.start_daemon(conf, env={"MAB_LIBEXECDIR": self.libexec})
        finally:
            h.DAEMON = daemon
        self.assertEqual(os.path.realpath("/proc/%d/exe" % r.pid), os.path.realpath(daemon))
        self.assertNoCores(r.pid, "mongo-azure-backupd")
        exp = self.stall_run(r)
        upl = r.wait_for_child("upload-blob", h.is_data_upload("big"))
        for pid, name in ((exp, "export-collection"), (upl, "upload-blob")):
            self.assertNotDumpable(pid, name)
            self.assertNoCores(pid, name)

        waiter = subprocess.Popen(NO_PTRACE + [h.CTL, "-s", self.sock, "run", "--wait"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=h.daemon_env())
        self.addCleanup(lambda: waiter.poll() is None and waiter.kill())
        control = subprocess.Popen(NO_PTRACE + ["sleep", "60"])
        self.addCleanup(lambda: control.poll() is None and control.kill())
        time.sleep(1.0)
        self.assertAlive("mongo-azure-backupctl run --wait", waiter)
        self.assertEqual(os.path.realpath("/proc/%d/exe" % waiter.pid), os.path.realpath(h.CTL))
        self.assertNoCores(waiter.pid, "mongo-azure-backupctl run --wait")

        p = subprocess.run(NO_PTRACE + [sys.executable, "-I", "-c", OPEN_MEM,
                                        str(control.pid), str(r.pid), str(waiter.pid)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        opened = json.loads(p.stdout.decode() or "{}")
        self.assertEqual(len(opened), 3, p.stderr.decode())
        if opened[str(control.pid)] != "ok":
            sys.stderr.write("note: this kernel refuses /proc/PID/mem of a dumpable process "
                             "too (%s): the daemon's and the ctl's dumpability not checked\n"
                             % opened[str(control.pid)])
        else:
            for pid, what in ((r.pid, "mongo-azure-backupd"),
                              (waiter.pid, "mongo-azure-backupctl run --wait")):
                self.assertIn(opened[str(pid)], ("EACCES", "EPERM"),
                              "%s[%d] is dumpable: another root process without "
                              "CAP_SYS_PTRACE opened its /proc/PID/mem" % (what, pid))
        control.kill()
        control.wait(10)

        # The end: SIGTERM cancels the run, the waiting ctl reports it.
        os.kill(r.pid, signal.SIGTERM)
        rc, log, _e = r.wait(30)
        self.assertExit(rc, 0, log)
        out, err = waiter.communicate(timeout=30)
        self.assertNotEqual(waiter.returncode, 0, "run --wait: %s%s" % (out, err))


if __name__ == "__main__":
    h.main()
