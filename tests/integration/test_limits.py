#!/usr/bin/python3
"""test_limits.py - what [limits] promises, seen from /proc while a run goes.

Every helper runs with the configured rlimits (RLIMIT_AS = child_memory,
RLIMIT_NOFILE = open_files, RLIMIT_CPU = child_cpu, no core files), and no
more than [limits] parallel collections are exported at once.
"""

import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402


def setUpModule():
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


def read_limits(pid):
    """{"Max open files": (soft, hard), ...} from /proc/PID/limits, or None."""
    try:
        with open("/proc/%d/limits" % pid) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return None
    out = {}
    for line in lines:
        m = re.match(r"^(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)", line)
        if m:
            out[m.group(1)] = (m.group(2), m.group(3))
    return out


def sanitized(program):
    """Whether program was built with AddressSanitizer, which cannot run
    under RLIMIT_AS (spawn.c leaves that one limit out then)."""
    with open(program, "rb") as f:
        return b"libasan.so" in f.read()


class Sampler:
    """Samples the daemon's children every 5 ms until stopped: the largest
    number seen at once per (name, kind), and each child's rlimits."""

    def __init__(self, run):
        self.run = run
        self.most = {}
        self.limits = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(5)

    def _loop(self):
        while not self._stop.is_set():
            now = {}
            tree = h.process_tree()
            for pid, name, argv in self.run.children():
                # The daemon's own children only: LeakSanitizer's tracer, a
                # clone of a helper at its exit, is not another helper.
                if pid not in tree or tree[pid][0] != self.run.pid:
                    continue
                kind = "list" if "--list" in argv else \
                    "metadata" if "--metadata" in argv else "data"
                key = (name, kind) if name == "export-collection" else (name, "any")
                now[key] = now.get(key, 0) + 1
                if pid not in self.limits:
                    lim = read_limits(pid)
                    if lim:
                        self.limits[pid] = (name, lim)
            for k, v in now.items():
                self.most[k] = max(self.most.get(k, 0), v)
            time.sleep(0.005)


class TestLimits(h.BackupTestCase):

    def seed(self, colls, users):
        for i, c in enumerate(colls):
            h.seed_users(self.db, c, users, seed=50 + i)

    def test_children_run_with_the_configured_rlimits(self):
        colls = ["a", "b"]
        self.seed(colls, 20000)
        conf = self.write_config(collections=", ".join(colls),
                                 limits={"child_memory": "768M", "open_files": 200,
                                         "child_cpu": "1h"},
                                 compression={"engine": "zlib", "threads": 1})
        run = self.start_backup(conf)
        with Sampler(run) as s:
            rc, log, _e = run.wait(120)
        self.assertExit(rc, 0, log)
        names = {name for name, _lim in s.limits.values()}
        self.assertTrue({"export-collection", "upload-blob"} <= names,
                        "children not observed: %r" % names)
        as_expected = str(768 << 20)
        for pid, (name, lim) in s.limits.items():
            with self.subTest(pid=pid, program=name):
                self.assertEqual(lim["Max open files"], ("200", "200"), lim)
                self.assertEqual(lim["Max cpu time"], ("3600", "3600"), lim)
                self.assertEqual(lim["Max core file size"], ("0", "0"), lim)
                if sanitized(h.program(name)):
                    self.assertEqual(lim["Max address space"][0], "unlimited", lim)
                else:
                    self.assertEqual(lim["Max address space"], (as_expected, as_expected),
                                     lim)

    def test_parallel_caps_the_running_exports(self):
        colls = ["c%d" % i for i in range(4)]
        self.seed(colls, 15000)
        for parallel, most in ((1, 1), (2, 2)):
            with self.subTest(parallel=parallel):
                conf = self.write_config(collections=", ".join(colls),
                                         limits={"parallel": parallel},
                                         compression={"engine": "zlib", "threads": 1},
                                         azure={"blob_path": "p%d/{date}/{collection}.bson.gz"
                                                % parallel})
                run = self.start_backup(conf)
                with Sampler(run) as s:
                    rc, log, _e = run.wait(180)
                self.assertExit(rc, 0, log)
                data = s.most.get(("export-collection", "data"), 0)
                self.assertLessEqual(data, most, s.most)
                self.assertLessEqual(s.most.get(("upload-blob", "any"), 0), most, s.most)
                # The sampler saw the cap reached, or it proved nothing.
                self.assertEqual(data, most, s.most)


if __name__ == "__main__":
    h.main()
