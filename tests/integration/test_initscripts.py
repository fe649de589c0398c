#!/usr/bin/python3
"""test_initscripts.py - the init scripts under init/.

The SysV script is generated from its .in with the same sed expressions as
the build (paths pointing into a temporary prefix and at the build's
daemon) and driven through start, status, reload, restart and stop with
Debian's start-stop-daemon, the daemon running detached against the
harness' Azurite and MongoDB.  OpenRC cannot run here: its script is
checked with `sh -n` and its functions are run with stand-ins for
OpenRC's helpers.  The systemd unit is checked with `systemd-analyze
verify` when that is available.
"""

import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402

INIT_DIR = os.path.join(h.SRCDIR, "init")
NEVER = "0 0 29 2 *"
SSD = shutil.which("start-stop-daemon") or (
    "/sbin/start-stop-daemon" if os.access("/sbin/start-stop-daemon", os.X_OK) else None)


def setUpModule():
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


def sock_request(path, data, timeout=10.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    except OSError:
        return b""
    finally:
        s.close()


def generate(template, out, dirs):
    """Fill in a template the way the build does (sed, @dir@ placeholders)."""
    argv = ["sed"]
    for name, value in dirs.items():
        argv += ["-e", "s|@%s[@]|%s|g" % (name, value)]
    argv.append(os.path.join(INIT_DIR, template))
    with open(out, "wb") as f:
        subprocess.run(argv, stdout=f, check=True)
    os.chmod(out, 0o755)
    with open(out) as f:
        text = f.read()
    left = re.findall(r"@[a-zA-Z_]+@", text)
    if left:
        raise AssertionError("%s: placeholders left after sed: %r" % (out, left))
    return out


class InitTestCase(h.BackupTestCase):

    def setUp(self):
        super().setUp()
        self.prefix = os.path.join(self.tmp, "prefix")
        self.dirs = {
            "sbindir": h.PROGDIR, "bindir": h.PROGDIR, "pkglibexecdir": h.PROGDIR,
            "sysconfdir": os.path.join(self.prefix, "etc"),
            "localstatedir": os.path.join(self.prefix, "var"),
            "runstatedir": os.path.join(self.prefix, "run"),
            "VERSION": "test",
        }
        self.sock = os.path.join(self.tmp, "control.sock")
        self.pidfile = os.path.join(self.tmp, "mongo-azure-backupd.pid")

    def config(self, cron=NEVER, **kw):
        kw.setdefault("collections", "small")
        kw.setdefault("log", {"target": "auto"})
        return self.write_config(schedule={"cron": cron, "timezone": "UTC", "catch_up": "no"}, **kw)

    def status_json(self):
        reply = sock_request(self.sock, b"status\n").decode("utf-8", "replace")
        self.assertTrue(reply.startswith("OK\n"), "status on the socket: %r" % reply)
        return json.loads(reply[3:])

    def daemon_pid(self):
        try:
            with open(self.pidfile) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def wait_gone(self, pid, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = h.proc_stat(pid)
            if st is None:
                return True
            if st[1] == "Z":
                if st[0] == os.getpid():
                    try:
                        os.waitpid(pid, 0)
                    except ChildProcessError:
                        pass
                return True
            time.sleep(0.05)
        return False


class TestSysV(InitTestCase):

    def setUp(self):
        super().setUp()
        if SSD is None:
            self.skipTest("start-stop-daemon is not installed (Debian's dpkg package)")
        self.script = generate("mongo-azure-backupd.sysv.in",
                               os.path.join(self.tmp, "mongo-azure-backupd"), self.dirs)
        self.addCleanup(self._kill_leftover)

    def _kill_leftover(self):
        pid = self.daemon_pid()
        if pid and h.proc_stat(pid) and h.proc_stat(pid)[1] != "Z":
            h.kill_tree(pid)
            self.wait_gone(pid, 5)

    def sysv(self, action, conf=None, env=None, timeout=90):
        e = {"MAB_DEFAULTS": os.path.join(self.tmp, "no-such-defaults")}
        if conf:
            e["MAB_CONF"] = conf
        e.update(env or {})
        p = subprocess.run(["/bin/sh", self.script, action], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                           env=h.daemon_env(e))
        return p.returncode, p.stdout.decode("utf-8", "replace")

    def test_start_status_stop(self):
        self.db["small"].insert_many(list(h.gen_users(5, seed=3)))
        conf = self.config()
        rc, out = self.sysv("status", conf)
        self.assertEqual(rc, 3, "status before start: %s" % out)
        rc, out = self.sysv("start", conf)
        self.assertEqual(rc, 0, "start: %s" % out)
        # start returns when the daemon is ready.
        self.assertTrue(sock_request(self.sock, b"ping\n").startswith(b"OK"),
                        "no answer on the socket right after start")
        pid = self.daemon_pid()
        self.assertIsNotNone(pid, "no pid file %s (the script read pid_file from the config?)"
                             % self.pidfile)
        self.assertEqual(self.status_json().get("pid"), pid)
        rc, out = self.sysv("status", conf)
        self.assertEqual(rc, 0, "status while running: %s" % out)
        self.assertIn(str(pid), out)
        # start while running: success, same daemon.
        rc, out = self.sysv("start", conf)
        self.assertEqual(rc, 0, "second start: %s" % out)
        self.assertIn("already running", out)
        self.assertEqual(self.daemon_pid(), pid)
        self.assertIsNotNone(h.proc_stat(pid))

        rc, out = self.sysv("stop", conf)
        self.assertEqual(rc, 0, "stop: %s" % out)
        self.assertTrue(self.wait_gone(pid, 5), "the daemon is still there after stop")
        rc, out = self.sysv("status", conf)
        self.assertEqual(rc, 3, "status after stop: %s" % out)
        rc, out = self.sysv("stop", conf)
        self.assertEqual(rc, 0, "stop when stopped: %s" % out)

    def test_reload(self):
        """reload checks the configuration, then sends HUP; a broken one is
        refused by the script and the daemon keeps the old one."""
        conf = self.config()
        rc, out = self.sysv("start", conf)
        self.assertEqual(rc, 0, out)
        pid = self.daemon_pid()
        self.assertEqual(parse_utc(self.status_json()["next_run"]).strftime("%m-%d"), "02-29")

        self.config(cron="0 0 1 1 *")
        rc, out = self.sysv("reload", conf)
        self.assertEqual(rc, 0, "reload: %s" % out)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            nxt = self.status_json()["next_run"]
            if parse_utc(nxt).strftime("%m-%d") == "01-01":
                break
            time.sleep(0.1)
        self.assertEqual(parse_utc(nxt).strftime("%m-%d"), "01-01",
                         "the daemon did not re-read its configuration (no HUP?)")
        self.assertEqual(self.daemon_pid(), pid, "reload restarted the daemon")

        bad = self.config(cron="0 0 15 6 *", limits={"bogus_key": 1})
        with open(bad) as f:
            line = next(i for i, t in enumerate(f, 1) if "bogus_key" in t)
        rc, out = self.sysv("reload", bad)
        self.assertEqual(rc, 1, "reload with a broken config: %s" % out)
        self.assertRegex(out, r"%s:%d:.*bogus_key" % (re.escape(bad), line))
        time.sleep(0.5)
        self.assertEqual(self.status_json()["next_run"], nxt)
        self.assertEqual(self.daemon_pid(), pid)
        rc, out = self.sysv("force-reload", bad)
        self.assertEqual(rc, 1, "force-reload with a broken config: %s" % out)

        self.config(cron="0 0 1 1 *")
        rc, out = self.sysv("stop", conf)
        self.assertEqual(rc, 0, out)
        self.assertTrue(self.wait_gone(pid))

    def test_restart_and_force_reload(self):
        conf = self.config()
        rc, out = self.sysv("force-reload", conf)          # not running: starts it
        self.assertEqual(rc, 0, out)
        pid1 = self.daemon_pid()
        self.assertIsNotNone(pid1)
        rc, out = self.sysv("restart", conf)
        self.assertEqual(rc, 0, "restart: %s" % out)
        pid2 = self.daemon_pid()
        self.assertNotEqual(pid1, pid2)
        self.assertTrue(self.wait_gone(pid1, 5))
        self.assertTrue(sock_request(self.sock, b"ping\n").startswith(b"OK"))
        # A restart with a broken config leaves the running daemon alone.
        bad = self.config(limits={"bogus_key": 1})
        rc, out = self.sysv("restart", bad)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("bogus_key", out)
        self.assertEqual(self.daemon_pid(), pid2)
        self.assertIsNotNone(h.proc_stat(pid2))
        self.config()
        rc, out = self.sysv("stop", conf)
        self.assertEqual(rc, 0, out)
        self.assertTrue(self.wait_gone(pid2))

    def test_start_refused_on_bad_config(self):
        conf = self.config(limits={"bogus_key": 1})
        rc, out = self.sysv("start", conf)
        self.assertEqual(rc, 6, "start with a broken config (LSB 6): %s" % out)
        self.assertIn("bogus_key", out)
        self.assertIsNone(self.daemon_pid())
        self.assertEqual(h.stray_processes(), [])

    def test_start_failure_reported(self):
        """A daemon that cannot start (its socket is taken by another one
        with another pid file): start exits 1 and shows the reason."""
        conf = self.config()
        rc, out = self.sysv("start", conf)
        self.assertEqual(rc, 0, out)
        pid = self.daemon_pid()
        other = os.path.join(self.tmp, "other")
        conf2 = h.write_config(other, database=self.database, container=self.container,
                               collections="small", log={"target": "auto"},
                               control={"socket": self.sock},
                               schedule={"cron": NEVER, "catch_up": "no"})
        rc, out = self.sysv("start", conf2)
        self.assertEqual(rc, 1, "start of a daemon that cannot start: %s" % out)
        self.assertRegex(out, r"(?i)already|in use|listening", "no reason shown: %s" % out)
        rc, out = self.sysv("status", conf2)
        self.assertEqual(rc, 3, out)
        self.assertIsNotNone(h.proc_stat(pid))
        self.assertTrue(sock_request(self.sock, b"ping\n").startswith(b"OK"))
        rc, out = self.sysv("stop", conf)
        self.assertEqual(rc, 0, out)
        self.assertTrue(self.wait_gone(pid))

    def test_stale_pidfile_and_usage(self):
        conf = self.config()
        p = subprocess.Popen(["true"])
        p.wait()
        with open(self.pidfile, "w") as f:
            f.write("%d\n" % p.pid)
        rc, out = self.sysv("status", conf)
        self.assertEqual(rc, 1, "status with a stale pid file (LSB 1): %s" % out)
        rc, out = self.sysv("frobnicate", conf)
        self.assertEqual(rc, 2, out)
        self.assertIn("Usage", out)
        rc, out = self.sysv("status", conf, env={"MAB_DAEMON": os.path.join(self.tmp, "nodaemon")})
        self.assertEqual(rc, 4, "status without the program: %s" % out)

    def test_defaults_file_and_pidfile_override(self):
        """/etc/default/mongo-azure-backupd (here MAB_DEFAULTS) sets CONF;
        MAB_PIDFILE overrides the pid file."""
        conf = self.config()
        defaults = os.path.join(self.tmp, "defaults")
        with open(defaults, "w") as f:
            f.write("CONF=%s\n" % conf)
        env = {"MAB_DEFAULTS": defaults}
        rc, out = self.sysv("start", env=env)
        self.assertEqual(rc, 0, out)
        pid = self.daemon_pid()
        self.assertIsNotNone(pid)
        rc, out = self.sysv("status", env=env)
        self.assertEqual(rc, 0, out)
        # The wrong pid file: the script cannot see the daemon.
        rc, out = self.sysv("status", env=dict(env, MAB_PIDFILE=os.path.join(self.tmp, "other.pid")))
        self.assertEqual(rc, 3, out)
        rc, out = self.sysv("status", env=dict(env, MAB_PIDFILE=self.pidfile))
        self.assertEqual(rc, 0, out)
        rc, out = self.sysv("stop", env=env)
        self.assertEqual(rc, 0, out)
        self.assertTrue(self.wait_gone(pid))


def parse_utc(text):
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    return datetime.datetime.fromisoformat(t).astimezone(datetime.timezone.utc)


class TestStatic(InitTestCase):
    """Checks that need no running daemon."""

    def test_sysv_script(self):
        path = generate("mongo-azure-backupd.sysv.in", os.path.join(self.tmp, "sysv"), self.dirs)
        p = subprocess.run(["/bin/sh", "-n", path], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(path) as f:
            text = f.read()
        self.assertTrue(text.startswith("#!/bin/sh\n"))
        m = re.search(r"^### BEGIN INIT INFO\n(.*?)^### END INIT INFO$", text, re.M | re.S)
        self.assertTrue(m, "no LSB header")
        header = {}
        for line in m.group(1).splitlines():
            mm = re.match(r"^# ([A-Za-z-]+):\s*(.*)$", line)
            if mm:
                header[mm.group(1)] = mm.group(2).split()
        self.assertEqual(header.get("Provides"), ["mongo-azure-backupd"])
        self.assertEqual(header.get("Required-Start"), ["$remote_fs", "$syslog", "$network"])
        self.assertEqual(header.get("Default-Start"), ["2", "3", "4", "5"])
        self.assertEqual(header.get("Default-Stop"), ["0", "1", "6"])
        self.assertTrue(header.get("Short-Description"))
        self.assertIn("%s/mongo-azure-backupd" % h.PROGDIR, text)
        if shutil.which("shellcheck"):
            p = subprocess.run(["shellcheck", "-s", "sh", "-S", "warning", path], capture_output=True)
            self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())

    def openrc_shell(self, conf, body, path_dir):
        """Source the OpenRC script in sh with stand-ins for openrc-run's
        helpers and run body; returns (rc, output)."""
        script = generate("mongo-azure-backupd.openrc.in", os.path.join(self.tmp, "openrc"),
                          self.dirs)
        harness_sh = (
            'ebegin() { echo "ebegin: $*"; }\n'
            'eend() { r=$1; shift; [ "$r" -eq 0 ] || echo "eend: $*"; return "$r"; }\n'
            'need() { echo "need $*"; }\n'
            'after() { echo "after $*"; }\n'
            'RC_SVCNAME=mongo-azure-backupd\n'
            'RC_CMD=${RC_CMD:-start}\n'
            '. "%s"\n%s\n' % (script, body))
        env = h.daemon_env({"MAB_CONF": conf, "PATH": path_dir + ":" + os.environ["PATH"]})
        p = subprocess.run(["/bin/sh", "-c", harness_sh], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=30)
        return p.returncode, p.stdout.decode("utf-8", "replace")

    def test_openrc_script(self):
        script = generate("mongo-azure-backupd.openrc.in", os.path.join(self.tmp, "openrc"),
                          self.dirs)
        p = subprocess.run(["/bin/sh", "-n", script], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(script) as f:
            self.assertTrue(f.readline().startswith("#!/sbin/openrc-run"))
        # A stand-in supervise-daemon that records how it was called.
        bindir = os.path.join(self.tmp, "fakebin")
        os.makedirs(bindir)
        calls = os.path.join(self.tmp, "calls")
        with open(os.path.join(bindir, "supervise-daemon"), "w") as f:
            f.write('#!/bin/sh\necho "$*" >> "%s"\n' % calls)
        os.chmod(os.path.join(bindir, "supervise-daemon"), 0o755)

        good = self.config()
        rc, out = self.openrc_shell(good, 'echo "supervisor=$supervisor"\n'
                                    'echo "command=$command"\necho "args=$command_args"\n'
                                    'echo "started=$extra_started_commands"\ndepend', bindir)
        self.assertEqual(rc, 0, out)
        self.assertIn("supervisor=supervise-daemon", out)
        self.assertIn("command=%s/mongo-azure-backupd" % h.PROGDIR, out)
        self.assertRegex(out, r"args=-f -c %s\b" % re.escape(good))
        self.assertIn("started=reload", out)
        self.assertIn("need net", out)
        self.assertIn("after logger", out)

        rc, out = self.openrc_shell(good, "checkconfig && start_pre && reload", bindir)
        self.assertEqual(rc, 0, out)
        with open(calls) as f:
            self.assertEqual(f.read().split("\n")[0].split(), ["mongo-azure-backupd", "--signal", "HUP"])
        os.unlink(calls)

        bad = self.config(limits={"bogus_key": 1})
        for fn in ("checkconfig", "start_pre", "reload"):
            rc, out = self.openrc_shell(bad, fn, bindir)
            self.assertNotEqual(rc, 0, "%s with a broken config: %s" % (fn, out))
            self.assertIn("bogus_key", out, "%s does not show the -t output" % fn)
        self.assertFalse(os.path.exists(calls), "reload signalled despite a broken config")

    def test_systemd_unit(self):
        unit = generate("mongo-azure-backupd.service.in",
                        os.path.join(self.tmp, "mongo-azure-backupd.service"), self.dirs)
        keys = {}
        with open(unit) as f:
            for line in f:
                if "=" in line and not line.startswith("#"):
                    k, v = line.rstrip("\n").split("=", 1)
                    keys.setdefault(k, []).append(v)
        self.assertEqual(keys["Type"], ["simple"])
        self.assertRegex(keys["ExecStart"][0], r"/mongo-azure-backupd -f -c ")
        self.assertTrue(any(" -t -c " in v for v in keys["ExecStartPre"]))
        self.assertIn("/bin/kill -HUP $MAINPID", keys["ExecReload"])
        self.assertEqual(keys["Restart"], ["on-failure"])
        for k, v in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                     ("RuntimeDirectory", "mongo-azure-backup"),
                     ("StateDirectory", "mongo-azure-backup")):
            self.assertEqual(keys.get(k), [v], k)
        analyze = shutil.which("systemd-analyze")
        if analyze:
            p = subprocess.run([analyze, "verify", "--man=no", unit], capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        else:
            sys.stderr.write("NOTE: systemd-analyze not installed; unit not verified\n")


if __name__ == "__main__":
    h.main()
