#!/usr/bin/python3
"""test_promises.py - smaller promises of the README and the man pages.

- With neither [mongodb] uri nor uri_file, MONGODB_URI from the environment
  is used; with neither [azure] connection_string nor _file,
  AZURE_STORAGE_CONNECTION_STRING is; the secrets reach no argv.
- SIGINT stops a --once run like SIGTERM: the run is cancelled, its final
  manifest says so, nothing half-written is committed, exit 1, and no
  helper is left behind.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402


def setUpModule():
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


class TestPromises(h.BackupTestCase):

    def test_secrets_from_the_environment(self):
        self.db["users"].insert_many(list(h.gen_users(200, seed=61)))
        conf = self.write_config(collections="users",
                                 mongodb={"uri": None},
                                 azure={"connection_string_file": None})
        with open(conf) as f:
            text = f.read()
        self.assertNotIn("uri =", text)
        self.assertNotIn("connection_string", text)
        env = {"MONGODB_URI": self.mongo.uri,
               "AZURE_STORAGE_CONNECTION_STRING": self.azurite.connection_string}
        run = self.start_backup(conf, env=env)
        seen = []
        while run.proc.poll() is None:
            for pid, _name, argv in run.children():
                seen.append(" ".join(argv))
            time.sleep(0.01)
        rc, log, _e = run.wait(60)
        self.assertExit(rc, 0, log)
        date = h.utc_today()
        want, _n = h.read_raw(self.db, "users")
        import gzip
        self.assertTrue(gzip.decompress(self.blobs.download(h.data_blob_name("users", date)))
                        == want, "users differs from the source")
        self.assertFalse([a for a in seen if "AccountKey" in a or "mongodb://" in a], seen[:3])
        # Without it, the run fails (exit 1: it was 0 before, with nothing
        # backed up) and says where the connection string is looked for.
        rc, log, _e = self.run_backup(conf, env={"MONGODB_URI": self.mongo.uri})
        self.assertExit(rc, 1, log)
        self.assertRegex(log, r"cannot start the run: .*AZURE_STORAGE_CONNECTION_STRING")

    def test_sigint_cancels_a_once_run(self):
        h.seed_users(self.db, "big", 60000, seed=62)
        conf = self.write_config(collections="big",
                                 compression={"engine": "zlib", "level": 9, "threads": 1})
        # Held mid-export where the fake can hold it, so the signal lands
        # while the data is still on its way whatever the machine's speed.
        if self.mongo.supports_faults:
            self.mongo.fault(hang_on_getmore=1)
        run = self.start_backup(conf)
        run.wait_for_child("upload-blob", h.is_data_upload("big"), timeout=30)
        if not self.mongo.supports_faults:
            time.sleep(0.3)
        os.kill(run.pid, signal.SIGINT)
        rc, log, elapsed = run.wait(60)
        self.assertExit(rc, 1, log)
        self.assertRegex(log, r"SIGINT: stopping")
        date = h.utc_today()
        m = json.loads(self.blobs.download(h.manifest_blob_name(date)))
        self.assertIs(m.get("complete"), False, m)
        self.assertTrue(m.get("finished"), "the final manifest was not written: %r" % m)
        self.assertEqual([c["result"] for c in m["collections"]], ["failed"], m)
        self.assertIn("SIGINT", json.dumps(m))
        self.assertNotIn(h.data_blob_name("big", date), self.blobs.names("backups/"))

    def test_sigkill_for_a_helper_that_ignores_sigterm(self):
        """SIGTERM during a --once run whose export-collection ignores
        SIGTERM (and hangs on its getMore): after the grace of 10 s the
        daemon says so and SIGKILLs it, then ends; nothing of the data is
        committed."""
        self.require_faults()
        h.seed_users(self.db, "big", 3000, seed=63)
        libexec = os.path.join(self.tmp, "libexec")
        os.makedirs(libexec)
        for name in h.HELPERS:
            os.symlink(h.program(name), os.path.join(libexec, name))
        wrapper = os.path.join(libexec, "export-collection")
        os.unlink(wrapper)
        with open(wrapper, "w") as f:
            # An ignored signal stays ignored across exec.
            f.write("#!/bin/sh\ntrap '' TERM\nexec '%s' \"$@\"\n"
                    % h.program("export-collection"))
        os.chmod(wrapper, 0o755)
        conf = self.write_config(collections="big")
        self.mongo.fault(hang_on_getmore=1)
        before = h.counters_files()
        run = self.start_backup(conf, env={"MAB_LIBEXECDIR": libexec})
        pid = run.wait_for_child("export-collection", h.is_data_export("big"), timeout=30)
        with open("/proc/%d/status" % pid) as f:
            ign = int([ln for ln in f if ln.startswith("SigIgn:")][0].split()[1], 16)
        self.assertTrue(ign & (1 << (signal.SIGTERM - 1)), "the helper does not ignore SIGTERM")
        t0 = time.monotonic()
        os.kill(run.pid, signal.SIGTERM)
        rc, log, _e = run.wait(90)
        took = time.monotonic() - t0
        self.assertExit(rc, 1, log)
        self.assertLogMatches(log, r"helpers still running 10 s after SIGTERM; killing them",
                              "saying it escalated to SIGKILL")
        self.assertGreaterEqual(took, 9.5, "ended %.1f s after SIGTERM, before the grace; "
                                "log:\n%s" % (took, log))
        self.assertLess(took, 60, log)
        self.assertFalse(h.proc_stat(pid) is not None and h.proc_stat(pid)[1] != "Z",
                         "the helper outlived the run")
        # libmongoc's counters file of a killed helper would stay for ever.
        self.assertFalse(h.left_counters_file(pid, before),
                         "the killed helper left /dev/shm/mongoc-%d behind" % pid)
        self.assertNotIn(h.data_blob_name("big", h.utc_today()), self.blobs.names(""))

    def test_sighup_during_a_run_keeps_its_configuration(self):
        """SIGHUP while a run is held at its commit (the proxy holds the
        answer): the reload is accepted and logged, the running run keeps
        the configuration it started with (its container, its
        collections), and the next run takes the new one."""
        from fault_proxy import FaultProxy
        h.seed_users(self.db, "users", 50, seed=64)
        h.seed_users(self.db, "other", 10, seed=65)
        proxy = FaultProxy(upstream_port=self.azurite.port).start()
        self.addCleanup(proxy.stop)
        never = {"cron": "0 0 29 2 *", "timezone": "UTC", "catch_up": "no"}
        old_conf = dict(collections="users", schedule=never,
                        connection_string=proxy.connection_string())
        conf = self.write_config(**old_conf)
        new_container = h.unique_name("mabnew")
        self.addCleanup(lambda: h.Blobs(new_container).exists() and
                        h.Blobs(new_container).container.delete_container())
        r = self.start_backup(conf, args=["-f"])
        self.addCleanup(lambda: r.proc.poll() is None and (os.kill(r.pid, signal.SIGTERM),
                                                         r.proc.wait(20)))
        ctl = [h.CTL, "-c", conf]
        deadline = time.monotonic() + 20
        while h.run_program(ctl + ["status"], timeout=10)[0] != 0:
            self.assertLess(time.monotonic(), deadline, r.log())
            time.sleep(0.1)
        proxy.add_fault(kind="put_block_list", path="/tralivali_users.bson.gz",
                        action="delay", delay=4)
        rc, out, err, _t = h.run_program(ctl + ["run"], timeout=20)
        self.assertEqual(rc, 0, (out, err))
        proxy.wait_fired(1, timeout=30)
        # The new configuration: another container, another collection.
        self.write_config(**dict(old_conf, collections="other", container=new_container))
        os.kill(r.pid, signal.SIGHUP)
        deadline = time.monotonic() + 60
        while "reload: configuration" not in r.log() or \
                json.loads(h.run_program(ctl + ["status", "--json"], timeout=10)[1])[
                    "state"] != "idle":
            self.assertLess(time.monotonic(), deadline, r.log())
            time.sleep(0.2)
        log = r.log()
        self.assertRegex(log, r"reload: configuration \S+ re-read")
        date = h.utc_today()
        self.assertIn(h.data_blob_name("users", date), self.blobs.names(""), log)
        self.assertNotIn(h.data_blob_name("other", date), self.blobs.names(""), log)
        self.assertEqual(h.Blobs(new_container).names(""), [],
                         "the running run wrote with the new configuration")
        st = json.loads(h.run_program(ctl + ["status", "--json"], timeout=10)[1])
        self.assertEqual(st["last_run"]["result"], "complete", st)
        self.assertEqual(st["last_reload"]["result"], "ok", st)
        # The next run: the new container and collection.
        rc, out, err, _t = h.run_program(ctl + ["run", "--wait"], timeout=90)
        self.assertEqual(rc, 0, (out, err, r.log()))
        names = h.Blobs(new_container).names("")
        self.assertTrue([n for n in names if n.endswith("/tralivali_other.bson.gz")], names)
        self.assertFalse([n for n in names if n.endswith("/tralivali_users.bson.gz")], names)

    def test_syslog_target(self):
        """[log] target = syslog: the daemon and its helpers log through
        syslog(3) to /dev/log - here a socket of the test's, in a mount
        namespace of the run's own (a /dev of its own, as root) - as
        facility daemon with the program's name and pid; nothing goes to
        stderr, and no secret to the log."""
        if os.geteuid() != 0:
            self.skipTest("needs root: the run gets a /dev of its own in a mount namespace")
        unshare = shutil.which("unshare")
        if unshare is None:
            self.skipTest("unshare (util-linux) not found")
        # unshare makes every mount of the new namespace private first, so
        # nothing mounted there reaches the host; where it cannot (a chroot
        # whose / is no mount point) the test cannot run safely.
        probe = subprocess.run([unshare, "-m", "true"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        if probe.returncode != 0:
            self.skipTest("no private mount namespace here (unshare -m: %s)"
                          % probe.stderr.decode().strip())
        import socket
        h.seed_users(self.db, "users", 30, seed=66)
        sock_path = os.path.join(self.tmp, "log.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.bind(sock_path)
        os.chmod(sock_path, 0o666)
        self.addCleanup(listener.close)
        listener.settimeout(0.2)
        conf = self.write_config(collections="users", log={"target": "syslog", "level": "info"})
        olddev = os.path.join(self.tmp, "olddev")
        os.makedirs(olddev)
        setup = ("set -e; mount --make-rprivate /; mount --bind /dev '%s'; "
                 "mount -t tmpfs -o mode=755 devtmp /dev; "
                 "for n in null zero full random urandom tty; do "
                 "[ -e '%s'/$n ] || continue; touch /dev/$n; mount --bind '%s'/$n /dev/$n; done; "
                 "ln -s /proc/self/fd /dev/fd; ln -s '%s' /dev/log; "
                 "exec \"$@\"" % (olddev, olddev, olddev, sock_path))
        argv = [unshare, "-m", "sh", "-c", setup, "sh", h.DAEMON, "--once", "-c", conf]
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120, env=h.daemon_env())
        messages = []
        while True:
            try:
                messages.append(listener.recv(65536).decode("utf-8", "replace"))
            except socket.timeout:
                break
        text = "\n".join(messages)
        self.assertEqual(p.returncode, 0, "exit %d\nstderr:\n%s\nsyslog:\n%s"
                         % (p.returncode, p.stderr.decode(), text))
        # This /dev has no shm: libmongoc warns about it, and its warning
        # goes where ours go, not to stderr.
        self.assertEqual(p.stderr.decode().strip(), "", "stderr with target = syslog")
        # <30>: facility daemon (3 * 8), priority info (6).
        self.assertRegex(text, r"<30>.*mongo-azure-backupd\[\d+\]: .*run \S+: complete")
        self.assertRegex(text, r"mongo-azure-backupd\[\d+\]: .*collection users: ok")
        # Helpers log as facility daemon too (24..31: the priorities).
        self.assertRegex(text, r"<(2[4-9]|3[01])>\w{3} [ \d]\d [\d:]{8} "
                         r"(upload-blob|prune-sets|export-collection)\[\d+\]: ",
                         "no helper logged through syslog:\n" + text)
        key = h.DEV_KEY
        self.assertNotIn(key, text)
        date = h.utc_today()
        self.assertIn(h.data_blob_name("users", date), self.blobs.names(""))


class TestCatchUp(h.BackupTestCase):
    """[schedule] catch_up at start, from the state a previous daemon left:
    its last run started two days ago, so at least one daily run was
    missed.  yes makes it up; no does not, and says so; auto makes it up
    only when the last complete backup is older than one period (a day)."""

    def start(self, catch_up, last_complete_age):
        import datetime
        h.seed_users(self.db, "users", 10, seed=67)
        now = int(time.time())
        # Daily, at a time that is not now: nothing fires during the test.
        due = datetime.datetime.fromtimestamp(now + 6 * 3600, datetime.timezone.utc)
        conf = self.write_config(collections="users", schedule={
            "cron": "%d %d * * *" % (due.minute, due.hour), "timezone": "UTC",
            "catch_up": catch_up})
        state_dir = h.read_config_value(conf, "state", "dir")
        with open(os.path.join(state_dir, "state.json"), "w") as f:
            json.dump({"format": 1, "last_run_started": now - 2 * 86400,
                       "last_run_finished": now - 2 * 86400 + 60,
                       "last_complete_set": "backups/old/",
                       "last_complete_finished": now - last_complete_age,
                       "runs": {"complete": 1, "partial": 0, "failed": 0, "cancelled": 0},
                       "breaker": {"state": "closed", "failures": 0, "opened": 0,
                                   "transitions": 0}}, f)
        r = self.start_backup(conf, args=["-f"])
        self.addCleanup(lambda: r.proc.poll() is None and (os.kill(r.pid, signal.SIGTERM),
                                                         r.proc.wait(20)))
        return conf, r

    def wait_log(self, r, pattern, timeout=60):
        import re
        deadline = time.monotonic() + timeout
        while not re.search(pattern, r.log()):
            self.assertIsNone(r.proc.poll(), "the daemon exited; log:\n" + r.log())
            self.assertLess(time.monotonic(), deadline, "no /%s/ in the log:\n%s"
                            % (pattern, r.log()))
            time.sleep(0.1)

    def status(self, conf):
        rc, out, err, _t = h.run_program([h.CTL, "-c", conf, "status", "--json"], timeout=10)
        self.assertEqual(rc, 0, (out, err))
        return json.loads(out)

    def assertNoRunAtStart(self, conf, r, why):
        # The decision is made before the control socket answers: once it
        # does, a catch-up run would already be running or counted.
        self.wait_log(r, why)
        deadline = time.monotonic() + 20
        while h.run_program([h.CTL, "-c", conf, "status"], timeout=10)[0] != 0:
            self.assertLess(time.monotonic(), deadline, r.log())
            time.sleep(0.1)
        st = self.status(conf)
        self.assertEqual(st["state"], "idle", st)
        self.assertNotIn("catch-up (a scheduled run", r.log())
        self.assertEqual(self.blobs.names(""), [], "a run wrote blobs")

    def test_yes_makes_the_missed_run_up(self):
        conf, r = self.start("yes", 3600)
        self.wait_log(r, r"run \S+: complete after")
        self.assertIn("catch-up (a scheduled run was missed while the daemon was down)", r.log())

    def test_no_says_it_is_not_made_up(self):
        conf, r = self.start("no", 2 * 86400)
        self.assertNoRunAtStart(conf, r, r"catch-up: the run due at \S+ was missed while the "
                                r"daemon was down; catch_up = no")

    def test_auto_with_a_recent_complete_backup(self):
        conf, r = self.start("auto", 3600)
        self.assertNoRunAtStart(conf, r, r"catch_up = auto and the last complete backup "
                                r"\(\S+\) is within one schedule period")

    def test_auto_with_an_old_complete_backup(self):
        conf, r = self.start("auto", 2 * 86400)
        self.wait_log(r, r"run \S+: complete after")
        self.assertIn("catch-up (a scheduled run was missed while the daemon was down)", r.log())


if __name__ == "__main__":
    h.main()
