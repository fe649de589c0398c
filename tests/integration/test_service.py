#!/usr/bin/python3
"""test_service.py - the daemon as a service runs it: where its lines go,
log rotation, and --once as a scheduled run.

  * [log] target = file: the daemon in the background (no -f) writes its
    own lines and its helpers' to [log] file; after the file is moved away,
    SIGUSR1 makes it write to a new one; status shows no problem;
  * [log] target = auto in the background with no syslog listening: the
    lines land in [log] file (Debian 12 installs no syslog daemon);
  * --once: hooks, metrics textfile and state.json as after a scheduled
    run, the run's exit code, and a refusal while the service runs.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402

NEVER = "0 0 29 2 *"


def setUpModule():
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


def pid_alive(pid):
    """The detached daemon is re-parented to the harness (a subreaper), so
    it is ours to reap once it exits."""
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


class TestService(h.BackupTestCase):

    def config(self, **kw):
        kw.setdefault("collections", "users, types")
        kw.setdefault("schedule", {"cron": NEVER, "timezone": "UTC", "catch_up": "no"})
        return self.write_config(**kw)

    def seed(self):
        self.db["users"].insert_many(list(h.gen_users(200, seed=51)))
        self.db["types"].insert_one(h.every_type_document())

    def ctl(self, conf, *args, timeout=90):
        rc, out, err, _t = h.run_program([h.CTL, "-c", conf] + list(args), timeout=timeout)
        return rc, out.decode("utf-8", "replace"), str(err)

    def start_background(self, conf):
        """mongo-azure-backupd without -f: it forks, detaches and answers
        once ready; returns the daemon's pid (from its pid file)."""
        p = subprocess.run([h.DAEMON, "-c", conf], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=h.daemon_env(), timeout=30)
        self.assertEqual(p.returncode, 0, "start: %r %r" % (p.stdout, p.stderr))
        pid_file = h.read_config_value(conf, "daemon", "pid_file")
        with open(pid_file) as f:
            pid = int(f.read().split()[0])
        self.addCleanup(self.stop_background, pid)
        return pid

    def stop_background(self, pid, timeout=30):
        if not pid_alive(pid):
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            self.fail("the daemon (pid %d) did not stop on SIGTERM" % pid)

    def test_log_file_and_reopen(self):
        self.seed()
        logfile = os.path.join(self.tmp, "log", "mab.log")
        conf = self.config(log={"target": "file", "file": logfile})
        pid = self.start_background(conf)
        self.assertTrue(os.path.exists(logfile), "no log file %s" % logfile)
        rc, out, err = self.ctl(conf, "run", "--wait")
        with open(logfile) as f:
            first = f.read()
        self.assertEqual(rc, 0, out + err + first)
        self.assertRegex(first, r"mongo-azure-backupd\[%d\]: info: run \S+: complete" % pid)
        # a helper's own line, through the stderr it inherited
        self.assertRegex(first, r"upload-blob\[\d+\]: notice: created container")

        os.rename(logfile, logfile + ".1")
        os.kill(pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not os.path.exists(logfile) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(os.path.exists(logfile), "SIGUSR1 did not reopen the log file")
        rc, out, err = self.ctl(conf, "run", "--wait")
        self.assertEqual(rc, 0, out + err)
        with open(logfile) as f:
            second = f.read()
        with open(logfile + ".1") as f:
            rotated = f.read()
        self.assertIn("SIGUSR1: log file reopened", second)
        self.assertEqual(len(re.findall(r"run \S+: complete", second)), 1, second)
        self.assertEqual(len(re.findall(r"run \S+: complete", rotated)), 1, rotated)
        st = json.loads(self.ctl(conf, "status", "--json")[1])
        self.assertIsNone(st.get("last_problem"), st)
        self.stop_background(pid)
        with open(logfile) as f:
            self.assertIn("mongo-azure-backupd stopped", f.read())

    def test_auto_without_syslog_goes_to_the_file(self):
        if h.syslog_listening():
            self.skipTest("a syslog daemon listens on /dev/log here: auto means syslog")
        logfile = os.path.join(self.tmp, "log", "auto.log")
        conf = self.config(log={"target": "auto", "file": logfile})
        pid = self.start_background(conf)
        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline:
            if os.path.exists(logfile):
                with open(logfile) as f:
                    text = f.read()
                if "started (pid %d)" % pid in text:
                    break
            time.sleep(0.05)
        self.assertIn("mongo-azure-backupd 0.1.0 started (pid %d)" % pid, text)

    def test_once_is_a_scheduled_run(self):
        """--once: the hook, the metrics textfile and state.json, as after
        a scheduled run; refused while the service holds the lock."""
        self.seed()
        out_dir = os.path.join(self.tmp, "hook")
        os.makedirs(out_dir)
        textfile = os.path.join(self.tmp, "metrics", "mab.prom")
        os.makedirs(os.path.dirname(textfile))
        conf = self.config(notify={"on_success": "env | grep ^MAB_ | sort > %s/env" % out_dir},
                           metrics={"textfile": textfile})
        rc, log, _e = self.run_backup(conf)
        self.assertExit(rc, 0, log)
        with open(os.path.join(out_dir, "env")) as f:
            env = dict(line.rstrip("\n").split("=", 1) for line in f)
        self.assertEqual(env.get("MAB_RESULT"), "complete", env)
        m = re.search(r"run (\S+): complete", log)
        self.assertTrue(m, log)
        self.assertEqual(env.get("MAB_RUN_ID"), m.group(1))
        with open(textfile) as f:
            metrics = f.read()
        self.assertRegex(metrics, r'(?m)^mongo_azure_backup_runs_total\{result="complete"\} 1$')
        with open(os.path.join(self.tmp, "state", "state.json")) as f:
            state = json.load(f)
        self.assertEqual(state.get("last_complete_set"), env.get("MAB_SET"), state)

        # A second --once counts on from the state the first left.
        rc, log, _e = self.run_backup(conf)
        self.assertExit(rc, 0, log)
        with open(textfile) as f:
            self.assertRegex(f.read(), r'(?m)^mongo_azure_backup_runs_total\{result="complete"\} 2$')

        # Not beside the service.
        r = self.start_backup(conf, args=["-f"])
        self.addCleanup(r.kill)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.ctl(conf, "status")[0] != 0:
            time.sleep(0.1)
        rc, log, _e = self.run_backup(conf)
        self.assertExit(rc, 1, log)
        self.assertRegex(log, r"already running \(pid %d" % r.pid)
        os.kill(r.pid, signal.SIGTERM)
        rc, log, _e = r.wait(30)
        self.assertExit(rc, 0, log)


if __name__ == "__main__":
    h.main()
