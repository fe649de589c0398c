#!/usr/bin/python3
"""test_initscripts.py - the init scripts and the logrotate snippet under init/.

The SysV script is generated from its .in with the same sed expressions as
the build (paths pointing into a temporary prefix and at the build's
daemon) and driven through start, status, reload, restart and stop with
Debian's start-stop-daemon, the daemon running detached against the
harness' Azurite and MongoDB.  OpenRC cannot run here: its script is
checked with `sh -n` and its functions are run with stand-ins for
OpenRC's helpers.  The systemd unit is checked with `systemd-analyze
verify`, the scripts with shellcheck (tools/deps.sh installs both; a
missing one fails the test).

Installation: scratch builds are configured with each --with-init (and
--with-initdir, --with-logrotatedir) and `make install-data DESTDIR=...`
must put the script or unit where that init system reads it, whatever the
prefix, and nothing else outside the prefix; a DESTDIR install of this
build must name, in every script, files it installed and the daemon's own
defaults.  The logrotate snippet must name the daemon's log and pid files,
and its postrotate must signal the daemon and nothing else.
"""

import datetime
import json
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402


def required_tool(name):
    """The path of a checker the suite relies on; tools/deps.sh installs
    every one, so a missing one fails the test instead of passing it
    unchecked."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError("%s is not installed (Debian: sh tools/deps.sh installs it)"
                             % name)
    return path

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


def make_env():
    """The environment for a make of our own: none of the outer make's
    flags (TESTS=, -j, the jobserver) and no DESTDIR from the caller."""
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR", "TESTS"):
        env.pop(k, None)
    env["LC_ALL"] = "C"
    return env


def run_make(builddir, *args, timeout=300):
    p = subprocess.run(["make", "-s", "-C", builddir] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=make_env(),
                       timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("make %s in %s failed:\n%s"
                             % (" ".join(args), builddir, p.stdout.decode("utf-8", "replace")))
    return p.stdout.decode("utf-8", "replace")


def make_vars(builddir, names):
    """The values make gives the variables names (e.g. sbindir) in builddir."""
    fd, mk = tempfile.mkstemp(suffix=".mk")
    with os.fdopen(fd, "w") as f:
        f.write("print-vars-for-test:\n")
        for n in names:
            f.write("\t@echo '%s=$(%s)'\n" % (n, n))
    try:
        out = run_make(builddir, "-f", "Makefile", "-f", mk, "print-vars-for-test")
    finally:
        os.unlink(mk)
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {n: values[n] for n in names}


def files_under(root):
    """Every file and symlink below root, as absolute paths inside it."""
    out = []
    for d, _dirs, files in os.walk(root):
        for name in files:
            out.append("/" + os.path.relpath(os.path.join(d, name), root))
    return sorted(out)


def shell_assignments(text):
    """NAME=value lines of a shell script (first wins), quotes removed."""
    out = {}
    for m in re.finditer(r"^([A-Z_]+)=(\S*)$", text, re.M):
        out.setdefault(m.group(1), m.group(2).strip('"'))
    return out


def logrotate_snippet(text):
    """(log file, directives, postrotate body) of the snippet."""
    m = re.search(r"^(/\S+)\s*\{\n(.*?)^\}", text, re.M | re.S)
    if not m:
        raise AssertionError("no `PATH {` block in the logrotate snippet:\n" + text)
    block = m.group(2)
    pm = re.search(r"^\s*postrotate\n(.*?)^\s*endscript$", block, re.M | re.S)
    if not pm:
        raise AssertionError("no postrotate ... endscript in the logrotate snippet")
    outside = block[:pm.start()] + block[pm.end():]
    directives = [line.strip() for line in outside.splitlines()
                  if line.strip() and not line.strip().startswith("#")]
    return m.group(1), directives, pm.group(1)


def postrotate_pidfile(body):
    m = re.search(r"^\s*pidfile=(\S+)$", body, re.M)
    if not m:
        raise AssertionError("postrotate names no pidfile=:\n" + body)
    return m.group(1)


def binary_has_string(path, text):
    """Whether the C string text (NUL-terminated) is compiled into path."""
    with open(path, "rb") as f:
        return text.encode() + b"\0" in f.read()


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

    def test_logrotate_with_the_daemon(self):
        """The daemon started by the script, logging to the file the
        logrotate snippet names, with the pid file it names: a rotation
        leaves the daemon running, and it writes on in a new file."""
        log = self.dirs["localstatedir"] + "/log/mongo-azure-backup.log"
        self.pidfile = self.dirs["runstatedir"] + "/mongo-azure-backup/mongo-azure-backupd.pid"
        os.makedirs(os.path.dirname(log), exist_ok=True)
        conf = self.config(log={"target": "file", "file": log},
                           daemon={"pid_file": self.pidfile})
        p = subprocess.run([h.DAEMON, "-t", "-c", conf], capture_output=True, env=h.daemon_env())
        if p.returncode != 0:
            self.skipTest("the daemon does not take [log] target = file yet: %s"
                          % p.stderr.decode("utf-8", "replace").strip())
        snippet = generate("mongo-azure-backup.logrotate.in",
                           os.path.join(self.tmp, "logrotate.conf"), self.dirs)
        os.chmod(snippet, 0o644)
        with open(snippet) as f:
            named, _d, body = logrotate_snippet(f.read())
        self.assertEqual((named, postrotate_pidfile(body)), (log, self.pidfile))

        def log_has(path, text, timeout=10):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    with open(path) as f:
                        if text in f.read():
                            return True
                except OSError:
                    pass
                time.sleep(0.1)
            return False

        rc, out = self.sysv("start", conf)
        self.assertEqual(rc, 0, out)
        pid = self.daemon_pid()
        self.assertIsNotNone(pid)
        self.assertTrue(log_has(log, "started"), "nothing logged to %s" % log)
        if shutil.which("logrotate"):
            p = subprocess.run(["logrotate", "-f", "-s", os.path.join(self.tmp, "lr.state"), snippet],
                               capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, (p.stdout + p.stderr).decode("utf-8", "replace"))
        else:
            os.rename(log, log + ".1")
            p = subprocess.run(["/bin/sh", "-c", body], capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
        time.sleep(0.5)
        self.assertEqual(self.daemon_pid(), pid)
        st = h.proc_stat(pid)
        self.assertTrue(st is not None and st[1] != "Z", "SIGUSR1 killed the daemon")
        self.assertTrue(log_has(log + ".1", "started"))
        rc, out = self.sysv("reload", conf)
        self.assertEqual(rc, 0, out)
        self.assertTrue(log_has(log, "re-read"),
                        "the daemon did not reopen %s after SIGUSR1 (the reload went elsewhere)" % log)
        rc, out = self.sysv("stop", conf)
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
        self.assertEqual(header.get("Required-Start"), ["$remote_fs", "$network"])
        self.assertEqual(header.get("Required-Stop"), ["$remote_fs", "$network"])
        # Without a syslog daemon the daemon logs to its file: syslog is
        # only wanted, so insserv does not refuse the script.
        self.assertEqual(header.get("Should-Start"), ["$syslog"])
        self.assertEqual(header.get("Default-Start"), ["2", "3", "4", "5"])
        self.assertEqual(header.get("Default-Stop"), ["0", "1", "6"])
        self.assertTrue(header.get("Short-Description"))
        self.assertIn("%s/mongo-azure-backupd" % h.PROGDIR, text)
        # The daemon's start is not silenced: its start-up errors, and its
        # log when it is told to log to stderr, are not sent to /dev/null.
        starts = re.findall(r"^\s*start-stop-daemon --start (?!--test)(?:.*\\\n)*.*$", text, re.M)
        self.assertTrue(starts, "no start-stop-daemon --start in the script")
        for cmd in starts:
            self.assertNotIn("/dev/null", cmd)
            self.assertNotIn("--background", cmd)
        # -t before start, restart and reload.
        for action in ("start", "restart", "reload|force-reload"):
            body = re.search(r"^%s\)\n(.*?);;" % re.escape(action), text, re.M | re.S)
            self.assertTrue(body, "no %s) in the case" % action)
            self.assertIn("check_config", body.group(1), "%s does not check the configuration" % action)
        # The daemon makes its run and state directories, with the modes
        # [daemon] user and [control] group need: the script makes none.
        self.assertNotRegex(text, r"(?m)^[^#]*\b(mkdir|install -d|chmod|chown)\b")
        p = subprocess.run([required_tool("shellcheck"), "-s", "sh", "-S", "warning", path],
                           capture_output=True)
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
        p = subprocess.run([required_tool("shellcheck"), "-S", "warning", script],
                           capture_output=True)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
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
        # The ExecStartPre that makes the state and run directories outside
        # the sandbox, run as systemd would with UMask=0077: parents 0755 (the
        # service user and the control group pass through), they 0750.
        self.assertEqual(keys.get("UMask"), ["0077"])
        mkdirs = [v for v in keys["ExecStartPre"] if "mkdir" in v]
        self.assertEqual(len(mkdirs), 1, keys["ExecStartPre"])
        self.assertTrue(mkdirs[0].startswith("+"), "must run outside the sandbox: %s" % mkdirs[0])
        argv = shlex.split(mkdirs[0][1:].replace("$$", "$"))
        old_umask = os.umask(0o077)
        try:
            p = subprocess.run(argv, capture_output=True, timeout=30)
        finally:
            os.umask(old_umask)
        self.assertEqual(p.returncode, 0, p.stderr)
        var, run = self.dirs["localstatedir"], self.dirs["runstatedir"]
        for d, mode in ((self.prefix, 0o755), (var, 0o755), (var + "/lib", 0o755), (run, 0o755),
                        (var + "/lib/mongo-azure-backup", 0o750),
                        (run + "/mongo-azure-backup", 0o750)):
            self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), mode, "mode of %s" % d)
        # The sandbox leaves them writable.
        rw = " ".join(keys.get("ReadWritePaths", []))
        self.assertIn("-%s/lib/mongo-azure-backup" % var, rw)
        self.assertIn("-%s/mongo-azure-backup" % run, rw)
        p = subprocess.run([required_tool("systemd-analyze"), "verify", "--man=no", unit],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())


class TestLogrotate(InitTestCase):
    """The logrotate snippet: the files it names and its postrotate."""

    def snippet(self):
        path = generate("mongo-azure-backup.logrotate.in",
                        os.path.join(self.tmp, "logrotate.conf"), self.dirs)
        # logrotate ignores a configuration others may write, and wants no x.
        os.chmod(path, 0o644)
        with open(path) as f:
            return path, f.read()

    def test_names_the_daemons_files(self):
        path, text = self.snippet()
        log, directives, body = logrotate_snippet(text)
        self.assertEqual(log, self.dirs["localstatedir"] + "/log/mongo-azure-backup.log")
        for d in ("weekly", "rotate 8", "compress", "delaycompress", "missingok", "notifempty"):
            self.assertIn(d, directives)
        # The pid file the init scripts use, which is the daemon's default.
        pidfile = postrotate_pidfile(body)
        self.assertEqual(pidfile,
                         self.dirs["runstatedir"] + "/mongo-azure-backup/mongo-azure-backupd.pid")
        sysv = generate("mongo-azure-backupd.sysv.in", os.path.join(self.tmp, "sysv"), self.dirs)
        with open(sysv) as f:
            self.assertEqual(shell_assignments(f.read()).get("DEFAULT_PIDFILE"), pidfile)
        self.assertIn("kill -USR1", body)
        p = subprocess.run(["/bin/sh", "-n", "-c", body], capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        script = os.path.join(self.tmp, "postrotate.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\n" + body)
        p = subprocess.run([required_tool("shellcheck"), "-s", "sh", "-S", "warning", script],
                           capture_output=True)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        if shutil.which("logrotate"):
            p = subprocess.run(["logrotate", "-d", "-s", os.path.join(self.tmp, "lr.state"), path],
                               capture_output=True, timeout=30)
            out = (p.stdout + p.stderr).decode("utf-8", "replace")
            self.assertEqual(p.returncode, 0, out)
            self.assertNotRegex(out, r"(?i)error|unknown|bad ", out)

    def fake_daemon(self, marker):
        """A process whose argv[0] is .../mongo-azure-backupd (as /proc
        shows it) and that records each SIGUSR1 in marker."""
        code = ("import signal, sys, time\n"
                "def usr1(_s, _f):\n"
                "    with open(sys.argv[1], 'a') as f: f.write('USR1\\n')\n"
                "signal.signal(signal.SIGUSR1, usr1)\n"
                "print('ready', flush=True)\n"
                "while True: time.sleep(1)\n")
        p = subprocess.Popen(["/opt/test/sbin/mongo-azure-backupd", "-c", code, marker],
                             executable=sys.executable, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE)
        self.addCleanup(lambda: (p.kill(), p.wait()))
        self.assertEqual(p.stdout.readline(), b"ready\n")
        return p

    def write_pidfile(self, pidfile, pid):
        os.makedirs(os.path.dirname(pidfile), exist_ok=True)
        with open(pidfile, "w") as f:
            f.write("%s\n" % pid)

    def wait_for_marker(self, marker, count, timeout=5):
        deadline = time.monotonic() + timeout
        got = 0
        while time.monotonic() < deadline:
            try:
                with open(marker) as f:
                    got = f.read().count("USR1")
            except OSError:
                got = 0
            if got >= count:
                break
            time.sleep(0.05)
        return got

    def test_postrotate_signals_only_the_daemon(self):
        path, text = self.snippet()
        log, _d, body = logrotate_snippet(text)
        pidfile = postrotate_pidfile(body)

        def postrotate():
            p = subprocess.run(["/bin/sh", "-c", body, "postrotate", log], capture_output=True,
                               timeout=30)
            return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")

        # No pid file (the daemon is not running), or rubbish in it: nothing
        # to signal, and logrotate must not report an error.
        self.assertEqual(postrotate(), (0, ""))
        self.write_pidfile(pidfile, "not a pid")
        self.assertEqual(postrotate(), (0, ""))

        marker = os.path.join(self.tmp, "usr1")
        fake = self.fake_daemon(marker)
        self.write_pidfile(pidfile, fake.pid)
        self.assertEqual(postrotate(), (0, ""))
        self.assertEqual(self.wait_for_marker(marker, 1), 1, "the daemon got no SIGUSR1")

        # A stale pid file naming some other process: left alone (USR1
        # would kill it).
        other = subprocess.Popen(["sleep", "60"])
        self.addCleanup(lambda: (other.kill(), other.wait()))
        self.write_pidfile(pidfile, other.pid)
        self.assertEqual(postrotate(), (0, ""))
        time.sleep(0.3)
        self.assertIsNone(other.poll(), "postrotate signalled a process that is not the daemon")

        # The whole rotation, by logrotate itself.
        if not shutil.which("logrotate"):
            sys.stderr.write("NOTE: logrotate not installed; rotation not run\n")
            return
        self.write_pidfile(pidfile, fake.pid)
        os.makedirs(os.path.dirname(log), exist_ok=True)
        with open(log, "w") as f:
            f.write("a line\n")
        p = subprocess.run(["logrotate", "-f", "-s", os.path.join(self.tmp, "lr.state"), path],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, (p.stdout + p.stderr).decode("utf-8", "replace"))
        self.assertTrue(os.path.exists(log + ".1"), "not rotated: %s" % os.listdir(os.path.dirname(log)))
        self.assertEqual(self.wait_for_marker(marker, 2), 2, "no SIGUSR1 after logrotate's rotation")


class TestInstall(InitTestCase):
    """make install with each --with-init, into a scratch root (DESTDIR)."""

    PREFIX = "/opt/mab-test"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cache = os.path.join(h.ENV["tmp"], "config.cache")

    def configure(self, *args):
        """A scratch build configured with args, --prefix=PREFIX; its dir."""
        build = tempfile.mkdtemp(prefix="build-", dir=self.tmp)
        p = subprocess.run([os.path.join(h.SRCDIR, "configure"), "-q", "--prefix=" + self.PREFIX,
                            "--cache-file=" + self.cache] + list(args),
                           cwd=build, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=make_env(), timeout=180)
        self.assertEqual(p.returncode, 0, "configure %s:\n%s"
                         % (" ".join(args), p.stdout.decode("utf-8", "replace")))
        return build

    def install_data(self, build):
        """make install-data into a fresh root: everything but the programs
        (which need compiling and go under the prefix anyway)."""
        root = tempfile.mkdtemp(prefix="root-", dir=self.tmp)
        run_make(build, "install-data", "DESTDIR=" + root)
        return root

    def outside_prefix(self, root):
        return [f for f in files_under(root) if not f.startswith(self.PREFIX + "/")]

    def check_paths(self, build, kind, text):
        """The paths the installed script names are those the build
        installs to (no DESTDIR in them, no placeholder left)."""
        v = make_vars(build, ["sbindir", "sysconfdir", "localstatedir", "runstatedir"])
        self.assertTrue(v["sbindir"].startswith(self.PREFIX + "/"), v)
        daemon = v["sbindir"] + "/mongo-azure-backupd"
        conf = v["sysconfdir"] + "/mongo-azure-backup/mongo-azure-backup.conf"
        self.assertNotRegex(text, r"@[a-zA-Z_]+@")
        self.assertNotIn(self.tmp, text, "DESTDIR or the build dir inside the script")
        if kind == "sysv":
            a = shell_assignments(text)
            self.assertEqual(a["DAEMON"], daemon)
            self.assertEqual(a["CONF"], conf)
            self.assertEqual(a["DEFAULT_PIDFILE"],
                             v["runstatedir"] + "/mongo-azure-backup/mongo-azure-backupd.pid")
        elif kind == "openrc":
            self.assertIn('"${MAB_CONF:=%s}"' % conf, text)
            self.assertIn('"${MAB_DAEMON:=%s}"' % daemon, text)
        else:
            self.assertIn("Environment=MAB_CONF=%s\n" % conf, text)
            self.assertIn("ExecStart=%s -f -c ${MAB_CONF}\n" % daemon, text)
            self.assertIn("-%s/mongo-azure-backup" % v["runstatedir"], text)
            self.assertIn("-%s/lib/mongo-azure-backup" % v["localstatedir"], text)

    def check_logrotate(self, build, root, where):
        path = root + where + "/mongo-azure-backup"
        self.assertTrue(os.path.isfile(path), "no logrotate snippet %s; installed: %s"
                        % (where, files_under(root)))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o644)
        v = make_vars(build, ["localstatedir", "runstatedir"])
        with open(path) as f:
            log, _d, body = logrotate_snippet(f.read())
        self.assertEqual(log, v["localstatedir"] + "/log/mongo-azure-backup.log")
        self.assertEqual(postrotate_pidfile(body),
                         v["runstatedir"] + "/mongo-azure-backup/mongo-azure-backupd.pid")

    def test_each_init_system(self):
        want = {"sysv": ("/etc/init.d/mongo-azure-backupd", 0o755),
                "openrc": ("/etc/init.d/mongo-azure-backupd", 0o755),
                "systemd": ("/lib/systemd/system/mongo-azure-backupd.service", 0o644)}
        for kind, (where, mode) in want.items():
            with self.subTest(init=kind):
                build = self.configure("--with-init=" + kind)
                root = self.install_data(build)
                self.assertEqual(self.outside_prefix(root),
                                 sorted([where, "/etc/logrotate.d/mongo-azure-backup"]))
                self.assertEqual(stat.S_IMODE(os.stat(root + where).st_mode), mode)
                with open(root + where) as f:
                    self.check_paths(build, kind, f.read())
                self.check_logrotate(build, root, "/etc/logrotate.d")

    def test_without_init(self):
        """--with-init=none (the default): nothing outside the prefix, the
        snippet in SYSCONFDIR/logrotate.d."""
        build = self.configure()
        root = self.install_data(build)
        self.assertEqual(self.outside_prefix(root), [])
        self.assertFalse([f for f in files_under(root) if "init.d" in f or "systemd" in f],
                         files_under(root))
        self.check_logrotate(build, root, self.PREFIX + "/etc/logrotate.d")

    def test_dir_overrides(self):
        build = self.configure("--with-init=sysv", "--with-initdir=/srv/rc/init.d",
                               "--with-logrotatedir=/srv/logrotate.d")
        root = self.install_data(build)
        self.assertEqual(self.outside_prefix(root),
                         ["/srv/logrotate.d/mongo-azure-backup", "/srv/rc/init.d/mongo-azure-backupd"])
        build = self.configure("--with-init=systemd", "--with-initdir=/usr/lib/systemd/system")
        root = self.install_data(build)
        self.assertEqual(self.outside_prefix(root),
                         ["/etc/logrotate.d/mongo-azure-backup",
                          "/usr/lib/systemd/system/mongo-azure-backupd.service"])
        # Relative to the prefix, as distcheck configures.
        build = self.configure("--with-init=openrc", "--with-initdir=${prefix}/init",
                               "--with-logrotatedir=${sysconfdir}/logrotate.d")
        root = self.install_data(build)
        self.assertEqual(self.outside_prefix(root), [])
        self.assertTrue(os.path.isfile(root + self.PREFIX + "/init/mongo-azure-backupd"))
        self.assertTrue(os.path.isfile(root + self.PREFIX + "/etc/logrotate.d/mongo-azure-backup"))
        p = subprocess.run([os.path.join(h.SRCDIR, "configure"), "--with-init=upstart"],
                           cwd=tempfile.mkdtemp(dir=self.tmp), capture_output=True, env=make_env())
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"--with-init must be", p.stderr)

    def test_installed_paths_exist(self):
        """A full DESTDIR install of this build: what each script names as
        the daemon and its configuration was installed, and its pid file,
        run and state directories are the daemon's compiled-in defaults."""
        root = os.path.join(self.tmp, "root")
        run_make(h.BUILDDIR, "install", "DESTDIR=" + root)
        outputs = {"sysv": "init/sysv/mongo-azure-backupd",
                   "openrc": "init/openrc/mongo-azure-backupd",
                   "systemd": "init/systemd/mongo-azure-backupd.service",
                   "logrotate": "init/logrotate/mongo-azure-backup"}
        run_make(h.BUILDDIR, *outputs.values())
        v = make_vars(h.BUILDDIR, ["sbindir", "bindir", "sysconfdir", "localstatedir",
                                    "runstatedir", "logrotatedir"])
        daemon = v["sbindir"] + "/mongo-azure-backupd"
        self.assertTrue(os.access(root + daemon, os.X_OK), "%s not installed" % daemon)
        self.assertTrue(os.access(root + v["bindir"] + "/mongo-azure-backupctl", os.X_OK))
        conf = v["sysconfdir"] + "/mongo-azure-backup/mongo-azure-backup.conf"
        self.assertTrue(os.path.isfile(root + conf), "%s not installed" % conf)
        self.assertTrue(os.path.isfile(root + v["logrotatedir"] + "/mongo-azure-backup"))
        pidfile = v["runstatedir"] + "/mongo-azure-backup/mongo-azure-backupd.pid"
        for what in (pidfile, v["runstatedir"] + "/mongo-azure-backup/control.sock",
                     v["localstatedir"] + "/lib/mongo-azure-backup", conf):
            self.assertTrue(binary_has_string(root + daemon, what),
                            "the daemon's defaults do not include %s" % what)
        texts = {}
        for kind, out in outputs.items():
            with open(os.path.join(h.BUILDDIR, out)) as f:
                texts[kind] = f.read()
        for kind in ("sysv", "openrc", "systemd"):
            with self.subTest(init=kind):
                self.assertNotRegex(texts[kind], r"@[a-zA-Z_]+@")
                self.assertIn(daemon, texts[kind])
                self.assertIn(conf, texts[kind])
        self.assertIn(pidfile, texts["sysv"])
        log, _d, body = logrotate_snippet(texts["logrotate"])
        self.assertEqual(postrotate_pidfile(body), pidfile)
        self.assertEqual(log, v["localstatedir"] + "/log/mongo-azure-backup.log")
        # The daemon's default log file, once it has one ([log] file).
        with open(root + daemon, "rb") as f:
            binary = f.read()
        if b"/mongo-azure-backup.log\0" in binary:
            self.assertTrue(binary_has_string(root + daemon, log),
                            "the daemon's default [log] file is not %s" % log)
        else:
            sys.stderr.write("NOTE: the daemon has no default log file yet; %s not checked\n" % log)


if __name__ == "__main__":
    h.main()
