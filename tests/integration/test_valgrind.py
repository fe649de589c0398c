#!/usr/bin/python3
"""test_valgrind.py - one backup with every process under valgrind memcheck.

`mongo-azure-backupd --once` of a small database (the MongoDB-wire fake, or
MAB_TEST_MONGODB_URI, and Azurite) runs under
`valgrind --trace-children=yes`, so the supervisor and every helper it
starts (export-collection, upload-blob) are checked.  Each process writes
its own log; the test passes when the backup is complete, the daemon exits
0 (an error in any process makes that process exit 99, and the daemon then
fails the run), and no log reports an error, an invalid access or a
definitely or indirectly lost block.  Still-reachable blocks (libmongoc,
libcurl and OpenSSL keep some until exit) do not count.

Skipped (77) when valgrind is not installed, and in a sanitizer build
(ASan and valgrind cannot run together).  Timing: about 20-40 s.
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402

VALGRIND = shutil.which("valgrind")
TIMEOUT = int(os.environ.get("MAB_TEST_VALGRIND_TIMEOUT", "240"))
N_USERS = 300


def sanitized(path):
    """True when path was built with ASan or UBSan."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"__ubsan_handle_" in data


def setUpModule():
    if VALGRIND is None:
        raise unittest.SkipTest("valgrind is not installed (apt-get install valgrind)")
    if sanitized(h.DAEMON):
        raise unittest.SkipTest("%s is built with a sanitizer; valgrind cannot run it"
                                % h.DAEMON)
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


# What a clean log says, and what must never appear in one.
SUMMARY = re.compile(r"ERROR SUMMARY: (\d+) errors")
LOST = re.compile(r"(definitely|indirectly) lost: ([\d,]+) bytes")
BAD = re.compile(r"Invalid (read|write|free)|uninitialised|Mismatched free|"
                 r"Syscall param|Source and destination overlap|Jump to the invalid")
COMMAND = re.compile(r"^==\d+== Command: (\S+)", re.M)


class TestValgrind(h.BackupTestCase):

    def read_logs(self, vgdir):
        """[(program base name, log text)] of every process that ran."""
        out = []
        for path in sorted(glob.glob(os.path.join(vgdir, "vg.*.log"))):
            with open(path, errors="replace") as f:
                text = f.read()
            m = COMMAND.search(text)
            out.append((os.path.basename(m.group(1)) if m else "?", path, text))
        return out

    def test_backup_under_memcheck(self):
        h.seed_users(self.db, "users", N_USERS)
        self.db["users"].create_index("email", unique=True)
        h.create_empty_collection(self.db, "empty")
        self.db["types"].insert_one(h.every_type_document())
        # No address-space limit: valgrind's own mappings do not fit in 1G.
        conf = self.write_config(collections="users, empty, types",
                                 limits={"parallel": 2, "child_memory": 0})
        vgdir = os.path.join(self.tmp, "valgrind")
        os.makedirs(vgdir)
        argv = [VALGRIND, "--trace-children=yes", "--leak-check=full",
                "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
                "--track-fds=no", "--num-callers=30",
                "--log-file=%s/vg.%%p.log" % vgdir,
                h.DAEMON, "-c", conf, "--once"]
        errpath = os.path.join(self.tmp, "daemon.log")
        with open(errpath, "wb") as errf:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=errf,
                                 stderr=errf, env=h.daemon_env(), cwd=self.tmp)
            try:
                rc = p.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                h.kill_tree(p.pid)
                p.wait(10)
                rc = None
        with open(errpath, errors="replace") as f:
            daemon_log = f.read()
        logs = self.read_logs(vgdir)

        problems = []
        for prog, path, text in logs:
            m = SUMMARY.search(text)
            if m is None:
                # A process that exec'd (the forked child before its helper
                # started) or was killed has no summary; valgrind then logs
                # nothing else for it.
                if BAD.search(text) or LOST.search(text):
                    problems.append("%s (%s): errors without a summary" % (prog, path))
                continue
            if int(m.group(1)) != 0:
                problems.append("%s (%s): %s errors" % (prog, path, m.group(1)))
            for kind, amount in LOST.findall(text):
                if amount.replace(",", "") != "0":
                    problems.append("%s (%s): %s lost: %s bytes" % (prog, path, kind, amount))
            if BAD.search(text):
                problems.append("%s (%s): %s" % (prog, path, BAD.search(text).group(0)))
        if problems:
            details = "\n\n".join("---- %s\n%s" % (path, text[-6000:])
                                  for _prog, path, text in logs
                                  if any(path in pr for pr in problems))
            self.fail("valgrind found problems:\n  %s\n\n%s\n---- daemon log\n%s"
                      % ("\n  ".join(problems), details, daemon_log[-4000:]))
        self.assertIsNotNone(rc, "the backup did not finish within %d s under valgrind;"
                             " log:\n%s" % (TIMEOUT, daemon_log[-4000:]))
        self.assertExit(rc, 0, daemon_log)

        # Every kind of process was really checked, with a summary.
        summarised = {prog for prog, _path, text in logs if SUMMARY.search(text)}
        for prog in ("mongo-azure-backupd", "export-collection", "upload-blob"):
            self.assertIn(prog, summarised, "no valgrind summary from %s; logs: %r"
                          % (prog, [(p, os.path.basename(x)) for p, x, _t in logs]))

        # And the backup is complete.
        names = self.blobs.names("backups/")
        manifests = [n for n in names if n.endswith("/manifest.json")]
        self.assertEqual(len(manifests), 1, "blobs: %r" % names)
        import json
        manifest = json.loads(self.blobs.download(manifests[0]).decode("utf-8"))
        self.assertIs(manifest.get("complete"), True, "manifest: %r" % manifest)
        self.assertEqual(sorted(e.get("name") for e in manifest["collections"]),
                         ["empty", "types", "users"])


if __name__ == "__main__":
    h.main()
