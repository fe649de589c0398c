#!/usr/bin/python3
"""test_installed_service.py - what an administrator does on a fresh VM,
following README.md "Run it as a service", against a real installation.

A scratch build of the source tree is configured with
--prefix=SCRATCH --with-init=sysv --with-initdir=SCRATCH/etc/init.d (and
--with-logrotatedir=SCRATCH/etc/logrotate.d, so that nothing is written to
the machine's /etc) and installed with `make install`, without DESTDIR: the
installed init script, daemon, admin tool and helpers use their real,
compiled-in paths (the configuration, the pid file, the control socket,
the state and the log file under SCRATCH; the helpers from
SCRATCH/libexec).  Nothing of the build directory is used.

Then, as README says: a service user (useradd --system), a control group
(groupadd --system) with an operator added to it (usermod -a -G), and a
stranger; the installed sample configuration edited (user, group, uri_file,
the connection string in a file of its own, root's and 0600 like the
configuration), pointing at the harness' Azurite and MongoDB, with a
schedule that never fires (0 0 29 2 *) and catch_up = no.  Checked:

  * `mongo-azure-backupd -t` says "configuration OK"; the script's start
    returns with the daemon (the installed one, as root) answering;
  * the socket's directory is 0750 root:control group;
  * during a run the installed helpers run as the service user (real,
    effective, saved and filesystem ids; no root group), the supervisor
    stays root (needs tests/fake_mongod.py's hang fault to catch them; with
    MAB_TEST_MONGODB_URI the log line is the proof);
  * `mongo-azure-backupctl run --wait` as root exits 0 and the set is in
    storage;
  * the operator (a member of the control group) gets status and metrics
    (exit 0) and `run` refused (exit 4); the stranger is refused
    everything (exit 4: the socket's directory keeps it out);
  * `restart` keeps the state: a new pid, the same run counts and last
    complete set;
  * a new schedule and the script's `reload`: status shows the new next
    run and last_reload ok, the same pid;
  * with [log] target = auto and no syslog, the run's lines are in
    SCRATCH/var/log/mongo-azure-backup.log;
  * `stop` leaves no process of the installation and no pid file.

Needs root (users, groups, the supervisor), start-stop-daemon and the
shadow tools; skips, saying which, otherwise.  Users and groups are
removed and SCRATCH deleted whatever happens.
"""

import grp
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402
from test_initscripts import SSD, make_env, run_make, shell_assignments  # noqa: E402

NEVER = "0 0 29 2 *"
# The clean environment an init system gives a script (no MAB_LIBEXECDIR:
# the installed daemon must find the installed helpers by itself).
INIT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TOOLS = ("useradd", "userdel", "usermod", "groupadd", "groupdel", "setpriv")


def setUpModule():
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


def clean_env(extra=None):
    env = {"PATH": INIT_PATH, "LC_ALL": "C", "LANG": "C"}
    env.update(extra or {})
    return env


def ids_of(pid):
    """{'Uid': [r, e, s, fs], 'Gid': [...], 'Groups': [...]} from /proc."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _sep, rest = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                out[key] = [int(x) for x in rest.split()]
    return out


def exe_of(pid):
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return None


def processes_under(root):
    """[(pid, exe)] of live processes whose executable is below root."""
    out = []
    for pid in h.all_pids():
        exe = exe_of(pid)
        if exe is not None and exe.startswith(root + "/"):
            st = h.proc_stat(pid)
            if st is not None and st[1] != "Z":
                out.append((pid, exe))
    return out


def set_ini(text, section, key, value):
    """text with `key = value` in [section]: the active line replaced (all of
    them removed when value is None), else added under the header."""
    lines = text.split("\n")
    out, sec, header_at, done = [], None, None, False
    for line in lines:
        m = re.match(r"^\s*\[\s*([^\]]+?)\s*\]", line)
        if m:
            sec = m.group(1)
            out.append(line)
            if sec == section:
                header_at = len(out)
            continue
        if sec == section and re.match(r"^\s*%s\s*=" % re.escape(key), line):
            if value is not None and not done:
                out.append("%s = %s" % (key, value))
                done = True
            continue
        out.append(line)
    if value is not None and not done:
        if header_at is None:
            out += ["", "[%s]" % section, "%s = %s" % (key, value)]
        else:
            out.insert(header_at, "%s = %s" % (key, value))
    return "\n".join(out)


def write_root_file(path, text, mode=0o600):
    """A file of root's, mode 0600 from the start (as under umask 077)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chown(path, 0, 0)
    os.chmod(path, mode)


def shadow_tool(argv, timeout=60):
    """useradd & co.; retried while another process holds /etc/passwd's lock."""
    deadline = time.monotonic() + timeout
    while True:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=clean_env(), timeout=timeout)
        out = p.stdout.decode("utf-8", "replace")
        if p.returncode == 0 or "lock" not in out or time.monotonic() > deadline:
            return p.returncode, out
        time.sleep(0.2)


class TestInstalledService(h.BackupTestCase):
    """One scratch installation for the class; the admin's steps in order."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root: creates a service user and a control "
                                    "group, and the daemon runs as root")
        if SSD is None:
            raise unittest.SkipTest("start-stop-daemon is not installed (Debian's dpkg package)")
        missing = [t for t in TOOLS if shutil.which(t, path=INIT_PATH) is None]
        if missing:
            raise unittest.SkipTest("missing: %s (passwd, util-linux)" % ", ".join(missing))
        t0 = time.monotonic()
        # Short (the control socket's path must fit in sun_path) and
        # reachable by every user, like /usr/local: not under the harness'
        # 0700 temporary directory.
        cls.scratch = tempfile.mkdtemp(prefix="mab-inst-", dir="/tmp")
        cls.addClassCleanup(shutil.rmtree, cls.scratch, True)
        os.chmod(cls.scratch, 0o755)
        build = tempfile.mkdtemp(prefix="mab-inst-build-")
        cls.addClassCleanup(shutil.rmtree, build, True)
        s = cls.scratch
        args = ["--prefix=" + s, "--with-init=sysv", "--with-initdir=%s/etc/init.d" % s,
                "--with-logrotatedir=%s/etc/logrotate.d" % s]
        p = subprocess.run([os.path.join(h.SRCDIR, "configure"), "-q"] + args, cwd=build,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=make_env(), timeout=600)
        if p.returncode != 0:
            raise AssertionError("configure %s:\n%s" % (" ".join(args),
                                                       p.stdout.decode("utf-8", "replace")))
        run_make(build, "-j2", timeout=1200)
        run_make(build, "install", timeout=600)
        sys.stderr.write("NOTE: scratch configure, build and install: %.0f s\n"
                         % (time.monotonic() - t0))
        cls.script = s + "/etc/init.d/mongo-azure-backupd"
        cls.daemon = s + "/sbin/mongo-azure-backupd"
        cls.ctl_path = s + "/bin/mongo-azure-backupctl"
        cls.libexec = s + "/libexec/mongo-azure-backup"
        cls.confdir = s + "/etc/mongo-azure-backup"
        cls.conf = cls.confdir + "/mongo-azure-backup.conf"
        cls.rundir = s + "/var/run/mongo-azure-backup"
        cls.pidfile = cls.rundir + "/mongo-azure-backupd.pid"
        cls.logfile = s + "/var/log/mongo-azure-backup.log"

    # ---- users and groups ------------------------------------------------

    def add_group(self, name):
        rc, out = shadow_tool(["groupadd", "--system", name])
        self.assertEqual(rc, 0, "groupadd --system %s: %s" % (name, out))
        self.addCleanup(self.remove, "groupdel", name, lambda: grp.getgrnam(name))
        return grp.getgrnam(name)

    def add_user(self, name):
        rc, out = shadow_tool(["useradd", "--system", "--no-create-home",
                               "--shell", "/usr/sbin/nologin", name])
        self.assertEqual(rc, 0, "useradd --system %s: %s" % (name, out))
        self.addCleanup(self.remove, "userdel", name, lambda: pwd.getpwnam(name))
        return pwd.getpwnam(name)

    def remove(self, tool, name, lookup):
        rc, out = shadow_tool([tool, name])
        try:
            lookup()
        except KeyError:
            return
        self.fail("%s %s left it behind (exit %d): %s" % (tool, name, rc, out))

    # ---- running things --------------------------------------------------

    def sysv(self, action, timeout=120):
        """The installed script, as init runs it: a clean environment.
        MAB_DEFAULTS names a file that does not exist, so that a
        /etc/default/mongo-azure-backupd of this machine cannot change it."""
        env = clean_env({"MAB_DEFAULTS": self.scratch + "/etc/default/mongo-azure-backupd"})
        p = subprocess.run([self.script, action], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                           env=env, cwd="/")
        return p.returncode, p.stdout.decode("utf-8", "replace")

    def ctl(self, *args, user=None, timeout=60):
        """The installed mongo-azure-backupctl with no -c (its default
        configuration, which only root can read), as root or as user."""
        kw = {}
        if user is not None:
            kw = {"user": user.pw_uid, "group": user.pw_gid,
                  "extra_groups": os.getgrouplist(user.pw_name, user.pw_gid)}
        p = subprocess.run([self.ctl_path] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           env=clean_env(), cwd="/", **kw)
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))

    def status(self):
        rc, out, err = self.ctl("status", "--json")
        self.assertEqual(rc, 0, "status --json as root: %s%s" % (out, err))
        return json.loads(out)

    def daemon_pid(self):
        try:
            with open(self.pidfile) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def log_text(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_for(self, pred, timeout=30, interval=0.1):
        """pred()'s first true value, polled until timeout; else its last."""
        deadline = time.monotonic() + timeout
        while True:
            v = pred()
            if v or time.monotonic() > deadline:
                return v
            time.sleep(interval)

    def status_when(self, pred, timeout=30):
        """status --json once pred(status) holds; the last one at timeout."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if pred(st) or time.monotonic() > deadline:
                return st
            time.sleep(0.1)

    def gone(self, pid):
        st = h.proc_stat(pid)
        if st is None:
            return True
        if st[1] == "Z":                 # re-parented to us (a subreaper)
            if st[0] == os.getpid():
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            return True
        return False

    def stop_everything(self):
        """Cleanup: the script's stop, then whatever of SCRATCH still runs."""
        if self.daemon_pid() is not None or processes_under(self.scratch):
            try:
                self.sysv("stop", timeout=60)
            except subprocess.TimeoutExpired:
                pass
        for pid, _exe in processes_under(self.scratch):
            h.kill_tree(pid, grace=2)
        h._reap_orphans()

    def helpers_of(self, pid, name, pred):
        """[pid] of live processes below pid whose executable is the
        installed helper name and whose argv pred accepts."""
        want = os.path.join(self.libexec, name)
        return [p for p in h.descendants(pid)
                if exe_of(p) == want and pred(h.proc_cmdline(p))]

    # ---- the test --------------------------------------------------------

    def test_admin_installs_and_runs_the_service(self):
        s = self.scratch
        t0 = time.monotonic()
        # The installed script names the installed files (no DESTDIR, no
        # build directory).
        self.assertEqual(stat.S_IMODE(os.stat(self.script).st_mode), 0o755)
        with open(self.script) as f:
            a = shell_assignments(f.read())
        self.assertEqual((a.get("DAEMON"), a.get("CONF"), a.get("DEFAULT_PIDFILE")),
                         (self.daemon, self.conf, self.pidfile))
        for prog in (self.daemon, self.ctl_path, self.libexec + "/export-collection",
                     self.libexec + "/upload-blob"):
            self.assertTrue(os.access(prog, os.X_OK), "%s was not installed" % prog)
        self.assertFalse(processes_under(s), "something of the installation runs already")

        # Data to back up: more than a first batch, so that the users
        # export needs a getMore (where the fake can hold it).
        self.db["users"].insert_many(list(h.gen_users(300, seed=77)))
        self.db["types"].insert_one(h.every_type_document())

        # Users and groups, as README says.
        tag = uuid.uuid4().hex[:6]
        ctlgroup = self.add_group("mabt-ctl-" + tag)
        svc = self.add_user("mabt-svc-" + tag)
        member = self.add_user("mabt-op-" + tag)
        stranger = self.add_user("mabt-x-" + tag)
        rc, out = shadow_tool(["usermod", "-a", "-G", ctlgroup.gr_name, member.pw_name])
        self.assertEqual(rc, 0, "usermod -a -G: %s" % out)
        self.assertIn(ctlgroup.gr_gid, os.getgrouplist(member.pw_name, member.pw_gid))
        self.assertNotIn(ctlgroup.gr_gid, os.getgrouplist(stranger.pw_name, stranger.pw_gid))
        for u in (svc, member, stranger):
            p = subprocess.run(["setpriv", "--reuid=%d" % u.pw_uid, "--regid=%d" % u.pw_gid,
                                "--clear-groups", "test", "-x", self.ctl_path])
            self.assertEqual(p.returncode, 0, "%s cannot reach %s" % (u.pw_name, self.ctl_path))

        # The configuration: the installed sample (root's, 0600), edited;
        # the secrets in files of their own, root's and 0600.
        st = os.stat(self.conf)
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid), (0o600, 0),
                         "the installed sample configuration")
        with open(self.conf) as f:
            text = f.read()
        cs_file = self.confdir + "/azure-connection-string"
        uri_file = self.confdir + "/mongodb-uri"
        self.assertRegex(text, r"(?m)^connection_string_file = %s$" % re.escape(cs_file),
                         "the sample names the connection string file README writes")
        for sec, key, value in (
                ("schedule", "cron", NEVER), ("schedule", "timezone", "UTC"),
                ("schedule", "catch_up", "no"),
                ("mongodb", "uri", None), ("mongodb", "uri_file", uri_file),
                ("mongodb", "database", self.database),
                ("mongodb", "collections", "users, types"),
                ("azure", "container", self.container), ("azure", "max_retries", "2"),
                ("daemon", "user", svc.pw_name), ("control", "group", ctlgroup.gr_name),
                ("log", "target", "auto")):
            text = set_ini(text, sec, key, value)
        write_root_file(self.conf, text)
        write_root_file(uri_file, self.mongo.uri + "\n")
        write_root_file(cs_file, self.azurite.connection_string + "\n")

        p = subprocess.run([self.daemon, "-t"], stdin=subprocess.DEVNULL, capture_output=True,
                           env=clean_env(), cwd="/", timeout=60)
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, "mongo-azure-backupd -t:\n%s\n%s" % (out, text))
        self.assertIn("configuration OK", out)

        # Start.  (Cleanups run last first: the daemon is stopped before its
        # user and group are removed.)
        self.addCleanup(self.stop_everything)
        rc, out = self.sysv("status")
        self.assertEqual(rc, 3, "status before start: %s" % out)
        rc, out = self.sysv("start")
        self.assertEqual(rc, 0, "start: %s\nlog:\n%s" % (out, self.log_text()))
        pid = self.daemon_pid()
        self.assertIsNotNone(pid, "no pid file %s after start" % self.pidfile)
        self.assertEqual(exe_of(pid), self.daemon)
        self.assertEqual(ids_of(pid)["Uid"], [0] * 4, "the supervisor is root")
        self.assertIn((pid, self.daemon), processes_under(s))
        st = self.status()                   # start returned once it answers
        self.assertEqual(st["pid"], pid)
        self.assertEqual(st["schedule"], NEVER)
        self.assertRegex(st.get("next_run") or "", r"^\d{4}-02-29T00:00:00Z$", st)
        self.assertEqual(st["runs"].get("complete"), 0, st)
        rc, out = self.sysv("status")
        self.assertEqual(rc, 0, "status while running: %s" % out)
        d = os.stat(self.rundir)
        self.assertEqual((stat.S_IMODE(d.st_mode), d.st_uid, d.st_gid),
                         (0o750, 0, ctlgroup.gr_gid),
                         "%s: mode %o, %d:%d" % (self.rundir, stat.S_IMODE(d.st_mode),
                                                 d.st_uid, d.st_gid))

        # The helpers run as the service user: a run held by the fake
        # (the users export's first getMore never answered), looked at,
        # then cancelled.
        cancelled = 0
        if self.mongo.supports_faults:
            self.mongo.fault(hang_on_getmore=1)
            rc, out, err = self.ctl("run")
            self.assertEqual(rc, 0, "run as root: %s%s" % (out, err))
            exp = self.wait_for(lambda: self.helpers_of(pid, "export-collection",
                                                        h.is_data_export("users")))
            upl = self.wait_for(lambda: self.helpers_of(pid, "upload-blob",
                                                        h.is_data_upload("users", self.database)))
            self.assertTrue(exp and upl, "no installed helpers below the daemon (%d): %r\nlog:\n%s"
                            % (pid, [(p, exe_of(p)) for p in h.descendants(pid)],
                               self.log_text()))
            for hp, name in ((exp[0], "export-collection"), (upl[0], "upload-blob")):
                ids = ids_of(hp)
                self.assertEqual(ids["Uid"], [svc.pw_uid] * 4, "%s[%d]: %r" % (name, hp, ids))
                self.assertEqual(ids["Gid"], [svc.pw_gid] * 4, "%s[%d]: %r" % (name, hp, ids))
                self.assertNotIn(0, ids["Groups"], "%s[%d] keeps group root" % (name, hp))
            self.assertEqual(ids_of(pid)["Uid"], [0] * 4, "the supervisor dropped root")
            rc, out, err = self.ctl("cancel")
            self.assertEqual(rc, 0, "cancel as root: %s%s" % (out, err))
            st = self.status_when(lambda j: j["state"] == "idle" and j.get("last_run"))
            self.assertEqual((st["state"], (st.get("last_run") or {}).get("result")),
                             ("idle", "cancelled"), "status %r\nlog:\n%s" % (st, self.log_text()))
            self.mongo.clear_faults()
            cancelled = 1
        else:
            sys.stderr.write("NOTE: MAB_TEST_MONGODB_URI is set (no fault injection): the "
                             "helpers' ids are checked by the daemon's log line only\n")

        # A backup now, as root.
        rc, out, err = self.ctl("run", "--wait", timeout=180)
        self.assertEqual(rc, 0, "run --wait as root: %s%s\nlog:\n%s" % (out, err, self.log_text()))
        st = self.status()
        last = st.get("last_run") or {}
        self.assertEqual(last.get("result"), "complete", st)
        self.assertEqual((st.get("last_complete_set") or {}).get("set"), last.get("set"), st)
        self.assertEqual((st["runs"].get("complete"), st["runs"].get("cancelled")),
                         (1, cancelled), st)
        names = self.blobs.names()
        self.assertTrue([n for n in names if n.endswith("/%s_users.bson.gz" % self.database)], names)
        self.assertTrue([n for n in names if n.endswith("manifest.json")], names)

        # The operator: status and metrics, not run.
        rc, out, err = self.ctl("status", user=member)
        self.assertEqual(rc, 0, "status as a member of the control group: %s%s" % (out, err))
        self.assertIn("pid %d" % pid, out)
        self.assertRegex(out, r"(?m)^last complete backup: %s " % re.escape(last["set"]))
        rc, out, err = self.ctl("metrics", user=member)
        self.assertEqual(rc, 0, "metrics as a member of the control group: %s%s" % (out, err))
        self.assertRegex(out, r'(?m)^mongo_azure_backup_runs_total\{result="complete"\} 1$')
        rc, out, err = self.ctl("run", user=member)
        self.assertEqual(rc, 4, "run as a member of the control group: %s%s" % (out, err))
        self.assertIn("not permitted", err)
        # The stranger cannot even reach the socket (its directory is
        # 0750 root:control group): "not permitted", not "not running".
        for cmd in ("status", "metrics", "run"):
            rc, out, err = self.ctl(cmd, user=stranger)
            self.assertEqual(rc, 4, "%s as a stranger: %s%s" % (cmd, out, err))
            self.assertIn("permission denied", err)
        self.assertEqual(self.status()["runs"].get("complete"), 1, "a refused run ran")

        # The log: [log] target = auto without syslog is the default file.
        if h.syslog_listening():
            sys.stderr.write("NOTE: /dev/log accepts connections (a syslog daemon): [log] "
                             "target = auto means syslog here; %s not checked\n" % self.logfile)
        else:
            log = self.log_text()
            self.assertIn("helpers and hooks run as user '%s'" % svc.pw_name, log)
            self.assertRegex(log, r"mongo-azure-backupd\[%d\]: info: run %s: complete"
                             % (pid, re.escape(last["run_id"])))

        # Restart keeps the state.
        rc, out = self.sysv("restart")
        self.assertEqual(rc, 0, "restart: %s\nlog:\n%s" % (out, self.log_text()))
        pid2 = self.daemon_pid()
        self.assertIsNotNone(pid2)
        self.assertNotEqual(pid2, pid)
        self.assertTrue(self.wait_for(lambda: self.gone(pid), timeout=10),
                        "the old daemon %d is still there" % pid)
        st2 = self.status()
        self.assertEqual(st2["pid"], pid2)
        self.assertEqual(st2["runs"], st["runs"], "run counts after restart")
        self.assertEqual(st2.get("last_complete_set"), st.get("last_complete_set"))
        self.assertEqual((st2.get("last_run") or {}).get("run_id"), last["run_id"])
        self.assertIsNone(st2.get("last_reload"), st2)
        rc, out, err = self.ctl("status")
        self.assertEqual(rc, 0, out + err)
        self.assertRegex(out, r"(?m)^runs: +1 complete, 0 partial, 0 failed, %d cancelled$"
                         % cancelled)
        self.assertRegex(out, r"(?m)^last complete backup: %s " % re.escape(last["set"]))

        # A new schedule, and the script's reload.
        with open(self.conf) as f:
            text = f.read()
        new = set_ini(text, "schedule", "cron", "17 4 * * *")
        self.assertNotEqual(new, text)
        write_root_file(self.conf, new)
        rc, out = self.sysv("reload")
        self.assertEqual(rc, 0, "reload: %s" % out)
        st3 = self.status_when(lambda j: (j.get("next_run") or "").endswith("T04:17:00Z"), 15)
        self.assertRegex(st3.get("next_run") or "", r"T04:17:00Z$",
                         "no new next run after reload: %r\nlog:\n%s" % (st3, self.log_text()))
        self.assertEqual(st3["schedule"], "17 4 * * *")
        self.assertEqual((st3.get("last_reload") or {}).get("result"), "ok", st3)
        self.assertEqual(st3["pid"], pid2, "reload restarted the daemon")
        rc, out, err = self.ctl("status")
        self.assertEqual(rc, 0, out + err)
        self.assertRegex(out, r"(?m)^last reload: .* UTC, ok: ")

        # Stop: nothing of the installation left, no pid file.
        rc, out = self.sysv("stop")
        self.assertEqual(rc, 0, "stop: %s" % out)
        none_left = self.wait_for(lambda: not processes_under(s), timeout=30)
        self.assertTrue(none_left, "still running after stop: %r" % processes_under(s))
        self.assertTrue(self.wait_for(lambda: self.gone(pid2), timeout=5))
        self.assertFalse(os.path.exists(self.pidfile), "the pid file is left after stop")
        rc, out = self.sysv("status")
        self.assertEqual(rc, 3, "status after stop: %s" % out)
        rc, out, err = self.ctl("status")
        self.assertEqual(rc, 3, "ctl status after stop: %s%s" % (out, err))
        if not h.syslog_listening():
            self.assertIn("mongo-azure-backupd stopped", self.log_text())
        sys.stderr.write("NOTE: the admin's steps took %.0f s\n" % (time.monotonic() - t0))


if __name__ == "__main__":
    # The scratch configure and build come on top of the usual module time.
    h.MODULE_TIMEOUT = max(h.MODULE_TIMEOUT, 900)
    h.main()
