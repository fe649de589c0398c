#!/usr/bin/python3
"""test_privileges.py - [daemon] user: the supervisor keeps root, its
children and hooks run as the service user, secrets stay root-only.

The daemon is started as root with [daemon] user = nobody and a connection
string in a 0600 root file inside a 0700 directory that nobody cannot even
enter.  A run must still complete (the helpers get the secrets from the
supervisor on a sealed memfd), and while it runs:

  * export-collection and upload-blob run as nobody (real, effective,
    saved and filesystem uids and gids, no supplementary root group);
  * the supervisor is still root, so it writes state.json and re-reads its
    0600 configuration on reload (a new schedule takes effect);
  * the on_success hook runs as nobody;
  * the run's state directory and the socket's directory were made with
    modes the control group can use, whatever the daemon's umask.

Needs root and the user nobody (skips, saying which, otherwise); the
helpers run from copies nobody can reach, wherever the checkout is.
"""

import grp
import json
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402

NEVER = "0 0 29 2 *"


def setUpModule():
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


def ids_of(pid):
    """{'Uid': [r, e, s, fs], 'Gid': [...], 'Groups': [...]} from /proc."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _sep, rest = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                out[key] = [int(x) for x in rest.split()]
    return out


def reachable_as(uid, gid, path):
    """Whether uid:gid may execute path (every directory on the way)."""
    p = subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups",
                        "test", "-x", path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p.returncode == 0


class TestPrivileges(h.BackupTestCase):

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("needs root: the daemon switches its children to another user")
        try:
            self.user = pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no user 'nobody'")
        if shutil.which("setpriv") is None:
            self.skipTest("no setpriv (util-linux)")
        # The helpers are exec'd as nobody: from copies nobody can reach,
        # since the build directory may not be (a checkout in /root).
        self.libexec = h.programs_for_others()
        helper = os.path.join(self.libexec, "export-collection")
        self.assertTrue(reachable_as(self.user.pw_uid, self.user.pw_gid, helper),
                        "nobody cannot execute %s" % helper)
        # Where the hook (running as nobody) may write.
        self.drop = tempfile.mkdtemp(prefix="mab-hook-")
        os.chmod(self.drop, 0o1777)
        self.addCleanup(shutil.rmtree, self.drop, True)

    def config(self, **kw):
        kw.setdefault("collections", "users, types")
        conf = self.write_config(
            daemon={"user": "nobody"},
            schedule={"cron": NEVER, "timezone": "UTC", "catch_up": "no"},
            notify={"on_success": "id -u > %s/uid; id -G > %s/groups" % (self.drop, self.drop)},
            **kw)
        for path in (conf, os.path.join(os.path.dirname(conf), "conn")):
            os.chmod(path, 0o600)
            self.assertEqual(os.stat(path).st_uid, 0)
        os.chmod(os.path.dirname(conf), 0o700)
        return conf

    def ctl(self, conf, *args, timeout=60):
        rc, out, err, _t = h.run_program([h.CTL, "-c", conf] + list(args), timeout=timeout)
        return rc, out.decode("utf-8", "replace"), str(err)

    def start_service(self, conf):
        r = self.start_backup(conf, args=["-f"], env={"MAB_LIBEXECDIR": self.libexec})
        self.addCleanup(r.kill)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if r.proc.poll() is not None:
                self.fail("the daemon exited with %s; log:\n%s" % (r.proc.returncode, r.log()))
            rc, _o, _e = self.ctl(conf, "status", "--json", timeout=10)
            if rc == 0:
                return r
            time.sleep(0.1)
        self.fail("the daemon does not answer; log:\n" + r.log())

    def test_children_and_hooks_run_as_the_service_user(self):
        self.require_faults()
        self.db["users"].insert_many(list(h.gen_users(300, seed=41)))
        self.db["types"].insert_one(h.every_type_document())
        conf = self.config()
        r = self.start_service(conf)
        nobody = self.user

        # A run whose users export hangs on its getMore: its children can
        # be looked at while they live.
        self.mongo.fault(hang_on_getmore=1)
        rc, out, err = self.ctl(conf, "run")
        self.assertEqual(rc, 0, out + err + r.log())
        exp = r.wait_for_child("export-collection", h.is_data_export("users"))
        upl = r.wait_for_child("upload-blob", h.is_data_upload("users"))
        for pid, name in ((exp, "export-collection"), (upl, "upload-blob")):
            ids = ids_of(pid)
            self.assertEqual(ids["Uid"], [nobody.pw_uid] * 4, "%s[%d]: %r" % (name, pid, ids))
            self.assertEqual(ids["Gid"], [nobody.pw_gid] * 4, "%s[%d]: %r" % (name, pid, ids))
            self.assertNotIn(0, ids["Groups"], "%s[%d] keeps group root: %r" % (name, pid, ids))
        sup = ids_of(r.pid)
        self.assertEqual(sup["Uid"][1], 0, "the supervisor dropped root: %r" % sup)
        # End the hung run, then a good one.
        self.mongo.clear_faults()
        os.kill(exp, signal.SIGKILL)
        deadline = time.monotonic() + 60
        st = None
        while time.monotonic() < deadline:
            rc, out, err = self.ctl(conf, "status", "--json")
            st = json.loads(out) if rc == 0 else None
            if st and st.get("state") == "idle" and st.get("last_run"):
                break
            time.sleep(0.2)
        self.assertEqual((st or {}).get("last_run", {}).get("result"), "partial",
                         "status %r\nlog:\n%s" % (st, r.log()))
        rc, out, err = self.ctl(conf, "run", "--wait", timeout=90)
        log = r.log()
        self.assertEqual(rc, 0, out + err + log)
        rc, out, err = self.ctl(conf, "status", "--json")
        st = json.loads(out)
        self.assertEqual(st.get("last_run", {}).get("result"), "complete",
                         "status %r\nlog:\n%s" % (st, log))
        self.assertRegex(log, r"helpers and hooks run as user 'nobody'")

        # The hook ran as nobody.
        deadline = time.monotonic() + 10
        uid_file = os.path.join(self.drop, "uid")
        while not os.path.exists(uid_file) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(os.path.exists(uid_file), "the on_success hook did not run:\n" + log)
        time.sleep(0.2)
        with open(uid_file) as f:
            self.assertEqual(f.read().strip(), str(nobody.pw_uid))
        with open(os.path.join(self.drop, "groups")) as f:
            self.assertNotIn("0", f.read().split(), "the hook kept group root")

        # state.json, written by the root supervisor.
        state_dir = os.path.join(os.path.dirname(conf), "state")
        with open(os.path.join(state_dir, "state.json")) as f:
            state = json.load(f)
        self.assertEqual(state.get("last_complete_set"), st["last_run"]["set"], state)

        # Reload re-reads the 0600 config: a new schedule is in force.
        text = open(conf).read().replace(NEVER, "17 4 * * *")
        with open(conf, "w") as f:
            f.write(text)
        os.kill(r.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "re-read" not in r.log():
            time.sleep(0.05)
        self.assertRegex(r.log(), r"reload: configuration .* re-read; schedule '17 4 \* \* \*'")
        rc, out, err = self.ctl(conf, "status", "--json")
        st = json.loads(out)
        self.assertRegex(st.get("next_run") or "", r"T04:17:00Z$", st)

        os.kill(r.pid, signal.SIGTERM)
        rc, log, _e = r.wait(30)
        self.assertExit(rc, 0, log)

    def test_directories_whatever_the_umask(self):
        """State and socket directories the daemon makes (with umask 077)
        are usable: parents 0755, the socket's directory 0750 with the
        control group."""
        group = grp.getgrgid(self.user.pw_gid).gr_name
        short = tempfile.mkdtemp(prefix="mab", dir="/tmp")    # sun_path is 108 bytes
        self.addCleanup(shutil.rmtree, short, True)
        base = os.path.join(short, "var")
        conf = self.config(state={"dir": os.path.join(base, "lib", "mab")},
                           control={"socket": os.path.join(base, "run", "mongo-azure-backup",
                                                           "control.sock"),
                                    "group": group})
        r = self.start_service(conf)
        os.chmod(short, 0o700)
        for path, mode, gid in ((base, 0o755, 0), (os.path.join(base, "lib"), 0o755, 0),
                                (os.path.join(base, "lib", "mab"), 0o755, 0),
                                (os.path.join(base, "run"), 0o755, 0),
                                (os.path.join(base, "run", "mongo-azure-backup"), 0o750,
                                 self.user.pw_gid)):
            st = os.stat(path)
            self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid), (mode, 0, gid),
                             "%s: mode %o uid %d gid %d" % (path, stat.S_IMODE(st.st_mode),
                                                            st.st_uid, st.st_gid))
        os.kill(r.pid, signal.SIGTERM)
        rc, log, _e = r.wait(30)
        self.assertExit(rc, 0, log)


if __name__ == "__main__":
    h.main()
