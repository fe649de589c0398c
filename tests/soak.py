#!/usr/bin/python3
"""soak.py - many backup runs, each with a random fault, then the invariants.

    MAB_BUILDDIR=BUILD /usr/bin/python3 tests/soak.py [--runs 100] [--seed 1]
        [--mode service|once] [--users 30000] [--no-proxy] [--faults F,F,...]
        [--rss-slack-kb 4096] [--json FILE]

Starts its own Azurite, tests/fake_mongod.py (seeded once: the source never
changes) and, when tests/fault_proxy.py is there, the fault proxy in front of
Azurite.  Then N runs of the daemon: in service mode (default) one
`mongo-azure-backupd -f` triggered with `mongo-azure-backupctl run --wait`
(restarted after it is SIGKILLed), in once mode `mongo-azure-backupd --once`
per run.  Every run gets one fault, drawn so that each block of len(FAULTS)
runs holds every fault once, in a random order:

    none              nothing
    kill_export       SIGKILL a random export-collection after 0-1.2 s
    kill_upload       SIGKILL a random upload-blob after 0-1.2 s
    mongo_close       the fake closes the connection on getMore N
    mongo_half        the fake sends half a getMore reply, then closes
    mongo_hang        the fake never answers getMore N (socketTimeoutMS=2000
                      in the URI ends the wait)
    storage_503       a burst of 503/500/429 on Put Block / Put Block List
    storage_reset     connection resets (before / mid-body / after the answer,
                      i.e. a lost response) on Put Block / Put Block List
    storage_outage    every storage request refused or 503 for 2-4 s
    kill_supervisor   SIGKILL the daemon after 0-1 s (service mode: then
                      restarted)

The storage faults need the proxy; without it they are left out (said in
the report).  Each run starts in a new second, so with {time} in blob_path
each run is its own set.

After each run and at the end, these must hold (any violation: exit 1):

  * every committed data blob, in every set, equals the source documents
    byte for byte (gunzip vs. the raw BSON in $natural order);
  * every manifest marked complete is true: each collection ok, each blob
    present with its size, SHA-256, document and BSON byte counts; a run
    reported complete has a complete manifest and the other way round;
  * the outcome fits the fault: no fault and recoverable faults (MongoDB
    with export_retries, storage with retries and the breaker) complete;
    a child SIGKILLed while running fails its run; a killed export never
    leaves a blob;
  * no good set was deleted or changed later (blobs and ETags at the end);
  * no zombie and no helper left after each run, none after the end; the
    children of a SIGKILLed supervisor die with it;
  * service mode: the supervisor's open fds do not grow from run to run and
    its VmRSS stays flat (growth within one daemon beyond --rss-slack-kb).

Prints the figures (runs by fault and outcome, timings, RSS, fds).  Exit 0
clean, 1 violations, 2 usage, 77 prerequisites missing.
"""

import argparse
import collections
import gzip
import hashlib
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as h  # noqa: E402

try:
    from fault_proxy import FaultProxy
except ImportError:          # not there (yet): no storage faults
    FaultProxy = None

NEVER = "0 0 29 2 *"
BLOB_PATH = "backups/{date}/{time}/tralivali_{collection}.bson.gz"
HELPERS = ("export-collection", "upload-blob")
COLLS = ("users", "small", "types", "empty")

FAULTS = ("none", "kill_export", "kill_upload", "mongo_close", "mongo_half", "mongo_hang",
          "storage_503", "storage_reset", "storage_outage", "kill_supervisor")
STORAGE_FAULTS = ("storage_503", "storage_reset", "storage_outage")
# Faults the product must absorb: the run completes anyway.
RECOVERABLE = ("none", "mongo_close", "mongo_half", "mongo_hang") + STORAGE_FAULTS

RUN_TIMEOUT = 90          # [limits] run_timeout
WAIT_LIMIT = 150          # a run still going after this is a violation


def _alive(pid):
    st = h.proc_stat(pid)
    return st is not None and st[1] != "Z"


def vm_rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def fd_targets(pid):
    out = []
    try:
        for fd in sorted(os.listdir("/proc/%d/fd" % pid), key=int):
            try:
                out.append("%s -> %s" % (fd, os.readlink("/proc/%d/fd/%s" % (pid, fd))))
            except OSError:
                pass
    except OSError:
        pass
    return out


class Soak:
    """One soak: construct with the options, call run(); the result is in
    .violations (list of str) and .figures (dict).  Needs h.ENV set up
    (h.setup_module_env()) with the fake mongod."""

    def __init__(self, runs=100, seed=1, mode="service", users=30000, use_proxy=True,
                 rss_slack_kb=4096, out=sys.stdout, workdir=None, faults=None):
        self.runs = runs
        self.faults = tuple(faults or FAULTS)
        self.seed = seed
        self.mode = mode
        self.users = users
        self.rss_slack_kb = rss_slack_kb
        self.out = out
        self.rng = random.Random(seed)
        self.violations = []
        self.notes = []
        self.use_proxy = use_proxy and FaultProxy is not None
        if use_proxy and FaultProxy is None:
            self.notes.append("tests/fault_proxy.py not importable: no storage faults")
        self.workdir = workdir or tempfile.mkdtemp(prefix="mab-soak-", dir=h.ENV["tmp"])
        self.mongo = h.ENV["mongo"]
        self.azurite = h.ENV["azurite"]
        self.database = h.unique_name("soak")
        self.container = h.unique_name("soak")
        self.blobs = h.Blobs(self.container)
        self.proxy = None
        self.daemon = None           # the service's BackupRun
        self.instances = []          # per daemon: {"pid", "rss": [], "fds": []}
        self.records = []            # one dict per run
        self.good_sets = {}          # folder -> {blob name: etag}
        self.seen_folders = set()
        self.snapshot = {}           # blob name -> etag, as checked after its run
        self.source = {}             # coll -> (raw bytes, count, sha256 of raw)
        self.last_start = 0.0

    # ------------------------------------------------------------ logging
    def say(self, msg):
        self.out.write(msg + "\n")
        self.out.flush()

    def violation(self, run_no, msg):
        text = "run %s: %s" % (run_no, msg) if run_no is not None else msg
        self.violations.append(text)
        self.say("VIOLATION " + text)

    # -------------------------------------------------------------- setup
    def setup(self):
        if not self.mongo.supports_faults:
            raise RuntimeError("the soak needs tests/fake_mongod.py (MAB_TEST_MONGODB_URI is set)")
        db = self.mongo.client()[self.database]
        t0 = time.monotonic()
        h.seed_users(db, "users", self.users, seed=71)
        db["small"].insert_many(list(h.gen_users(50, seed=72)))
        db["types"].insert_one(h.every_type_document())
        h.create_empty_collection(db, "empty")
        db["users"].create_index("email", unique=True)
        for c in COLLS:
            raw, n = h.read_raw(db, c)
            self.source[c] = (raw, n)
        self.say("seeded %s in %.1f s: %s" % (self.database, time.monotonic() - t0, ", ".join(
            "%s %d docs / %d bytes" % (c, self.source[c][1], len(self.source[c][0])) for c in COLLS)))
        if self.use_proxy:
            self.proxy = FaultProxy(upstream_port=self.azurite.port).start()
            conn = self.proxy.connection_string()
        else:
            conn = self.azurite.connection_string
        uri = self.mongo.uri.rstrip("/") + "/?socketTimeoutMS=2000&connectTimeoutMS=2000"
        self.conf = h.write_config(
            self.workdir, mongo_uri=uri, database=self.database, container=self.container,
            collections=", ".join(COLLS), connection_string=conn,
            azure={"blob_path": BLOB_PATH, "max_retries": 2},
            schedule={"cron": NEVER, "timezone": "UTC", "catch_up": "no"},
            limits={"parallel": 2, "run_timeout": "%ds" % RUN_TIMEOUT, "export_retries": 2},
            breaker={"failure_threshold": 3, "open_seconds": 2})
        self.sock = os.path.join(self.workdir, "control.sock")

    def teardown(self):
        if self.daemon is not None and self.daemon.proc.poll() is None:
            self.daemon.kill()
        if self.proxy is not None:
            self.proxy.stop()
        self.mongo.drop_database(self.database)

    # ------------------------------------------------------------- daemon
    def ctl(self, *args, timeout=30):
        p = subprocess.run([h.CTL, "-s", self.sock] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           env=h.daemon_env())
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    def status(self):
        rc, out, err = self.ctl("status", "--json", timeout=15)
        if rc != 0:
            raise RuntimeError("status --json: exit %d %s%s" % (rc, out, err))
        return json.loads(out)

    def start_daemon(self):
        r = h.BackupRun(self.conf, args=["-f"], workdir=self.workdir)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if r.proc.poll() is not None:
                raise RuntimeError("the daemon exited with %s at start:\n%s"
                                   % (r.proc.returncode, r.log()))
            try:
                if self.status().get("pid") == r.pid:
                    break
            except (RuntimeError, ValueError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.05)
        else:
            r.kill()
            raise RuntimeError("the daemon does not answer:\n" + r.log())
        self.daemon = r
        self.instances.append({"pid": r.pid, "rss": [vm_rss_kb(r.pid)], "fds": [fd_count(r.pid)],
                               "fd_list": [fd_targets(r.pid)], "runs": 0})
        return r

    def stop_daemon(self):
        r = self.daemon
        if r is None or r.proc.poll() is not None:
            return None
        os.kill(r.pid, signal.SIGTERM)
        rc, _log, _ = r.wait(30)
        self.daemon = None
        return rc

    # ------------------------------------------------------------- faults
    def draw_faults(self):
        pool = [f for f in self.faults if self.use_proxy or f not in STORAGE_FAULTS]
        out = []
        while len(out) < self.runs:
            block = list(pool)
            self.rng.shuffle(block)
            out.extend(block)
        return out[:self.runs]

    def arm(self, fault, info):
        """Install a server-side fault before the run; returns nothing."""
        rng = self.rng
        if self.proxy is not None:
            info["proxy_base"] = self.proxy.stats(log=False)["faults_fired"]
        if fault in ("mongo_close", "mongo_half", "mongo_hang"):
            key = {"mongo_close": "close_on_getmore", "mongo_half": "half_reply_on_getmore",
                   "mongo_hang": "hang_on_getmore"}[fault]
            n = rng.randint(1, 2)          # users needs 2 getMores per attempt
            info["fired_base"] = self.mongo.stats().get("faultsFired", 0)
            self.mongo.fault(clear=True, **{key: n})
            info["detail"] = "%s=%d" % (key, n)
        elif fault == "storage_503":
            status = rng.choice([503, 503, 500, 429])
            kind = rng.choice(["put_block", "put_block_list", ["put_block", "put_block_list"]])
            count = rng.randint(1, 4)
            spec = {"kind": kind, "action": "status", "status": status, "count": count}
            if status == 429:
                spec["headers"] = {"Retry-After": "1"}
            self.proxy.add_fault(**spec)
            info["detail"] = "%d x%d on %s" % (status, count, kind)
        elif fault == "storage_reset":
            action = rng.choice(["reset_before", "reset_mid_body", "reset_after"])
            kind = rng.choice(["put_block", "put_block_list"])
            if action == "reset_mid_body":
                kind = "put_block"
            count = rng.randint(1, 2)
            self.proxy.add_fault(kind=kind, action=action, count=count, nth=None)
            info["detail"] = "%s x%d on %s" % (action, count, kind)
        elif fault == "storage_outage":
            secs = round(rng.uniform(2, 4), 1)
            mode = rng.choice(["503", "refuse", "reset"])
            self.proxy.outage(secs, mode=mode)
            info["detail"] = "%s for %.1f s" % (mode, secs)

    def fault_fired(self, fault, info):
        """Whether the injected server-side fault did fire (None: n/a)."""
        if fault.startswith("mongo_"):
            return self.mongo.stats().get("faultsFired", 0) > info["fired_base"]
        if fault in STORAGE_FAULTS:
            return self.proxy.stats(log=False)["faults_fired"] > info["proxy_base"]
        return None

    def disarm(self):
        try:
            self.mongo.clear_faults()
        except Exception as e:               # noqa: BLE001
            self.notes.append("clearing MongoDB faults: %s" % e)
        if self.proxy is not None:
            self.proxy.clear()

    def helpers_below(self, root):
        """[(pid, argv)] of live helpers below root."""
        tree = h.process_tree()
        out = []
        for pid in h.descendants(root, tree):
            if tree[pid][1] == "Z":
                continue
            argv = h.proc_cmdline(pid)
            if argv and os.path.basename(argv[0]) in HELPERS:
                out.append((pid, argv))
        return out

    def kill_child(self, root, name, delay, info, done):
        """After delay, SIGKILL a random live `name` below root (unless the
        run is over: done() true).  Fills info."""
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not done():
            time.sleep(0.01)
        info["hit"] = False
        info["victim"] = None
        # The daemon's own children only: in a sanitizer build a helper
        # that exits clones a LeakSanitizer tracer with the same command
        # line, and killing the tracer leaves the helper spinning in its
        # leak check, which the daemon rightly waits for (run_timeout).
        tree = h.process_tree()
        kids = sorted((pid, argv) for pid, argv in self.helpers_below(root)
                      if os.path.basename(argv[0]) == name and tree.get(pid, (0,))[0] == root)
        if not kids or done():
            return
        pid, argv = self.rng.choice(kids)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        info["hit"] = True
        info["victim"] = argv

    @staticmethod
    def victim_of(argv):
        """(collection, kind) of a helper's argv."""
        name, last = os.path.basename(argv[0]), argv[-1]
        if name == "export-collection":
            return last, "metadata-export" if "--metadata" in argv else "data-export"
        if last.endswith("/manifest.json"):
            return None, "manifest"
        m = re.match(r"^.*/tralivali_(.+?)\.(bson|metadata\.json)\.gz$", last)
        if not m:
            return None, None
        return m.group(1), "data-upload" if m.group(2) == "bson" else "metadata-upload"

    # ---------------------------------------------------------------- runs
    def next_second(self):
        """Wait until a later wall-clock second than the previous run's
        start: one set per run."""
        while int(time.time()) <= int(self.last_start):
            time.sleep(0.02)
        self.last_start = time.time()

    def one_run(self, no, fault):
        info = {"no": no, "fault": fault, "detail": "", "hit": None, "victim": None,
                "outcome": None, "seconds": None, "folder": None}
        self.run_log = ""
        self.arm(fault, info)
        self.next_second()
        t0 = time.monotonic()
        if self.mode == "service":
            self.service_run(no, fault, info)
        else:
            self.once_run(no, fault, info)
        info["seconds"] = round(time.monotonic() - t0, 2)
        info["fired"] = self.fault_fired(fault, info)
        if info["fired"] is False and info["outcome"] != "killed":
            self.violation(no, "the injected %s fault (%s) never fired: the run tested nothing"
                           % (fault, info["detail"]))
        self.disarm()
        self.check_run(no, fault, info)
        self.records.append(info)
        self.say("run %3d/%d %-15s %-26s -> %-9s %5.1f s%s%s" % (
            no, self.runs, fault, info["detail"][:26], info["outcome"], info["seconds"],
            ("  killed %s" % " ".join([os.path.basename(info["victim"][0])] + info["victim"][-1:]))
            if info.get("hit") and info.get("victim") else ("  (kill missed)" if info["hit"] is False else ""),
            self.instance_note()))

    def instance_note(self):
        if self.mode != "service" or not self.instances:
            return ""
        inst = self.instances[-1]
        return "  rss %s kB fds %s" % (inst["rss"][-1], inst["fds"][-1])

    def service_run(self, no, fault, info):
        r = self.daemon
        before = self.status()
        prev_id = (before.get("last_run") or {}).get("run_id")
        ctl = subprocess.Popen([h.CTL, "-s", self.sock, "run", "--wait"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=h.daemon_env())
        # Ours to reap: h._reap_orphans() must not take its exit status.
        with h._registered_lock:
            h._tracked_pids.add(ctl.pid)

        def done():
            return ctl.poll() is not None
        if fault in ("kill_export", "kill_upload"):
            name = "export-collection" if fault == "kill_export" else "upload-blob"
            self.kill_child(r.pid, name, self.rng.uniform(0, 1.2), info, done)
        elif fault == "kill_supervisor":
            delay = self.rng.uniform(0, 1.0)
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline and not done():
                time.sleep(0.01)
            info["hit"] = not done()
            if not info["hit"]:
                # The run is over (or run --wait gave up early): look at the
                # live daemon first, then kill it idle all the same.
                info["before_kill"] = self.status().get("last_run") or {}
            kids = [pid for pid, _a in self.helpers_below(r.pid)]
            os.kill(r.pid, signal.SIGKILL)
            info["victim"] = ["mongo-azure-backupd", "(%d children)" % len(kids)]
            self.check_children_died(no, kids)
        try:
            out, _ = ctl.communicate(timeout=WAIT_LIMIT)
        except subprocess.TimeoutExpired:
            ctl.kill()
            out, _ = ctl.communicate()
            self.violation(no, "ctl run --wait still waiting after %d s; log tail:\n%s"
                           % (WAIT_LIMIT, r.log()[-3000:]))
            self.ctl("cancel")
        with h._registered_lock:
            h._tracked_pids.discard(ctl.pid)
        info["ctl_rc"] = ctl.returncode
        info["ctl_out"] = out.decode("utf-8", "replace")[-2000:]

        if fault == "kill_supervisor":
            self.run_log = r.log()
            self.daemon = None
            self.start_daemon()
            last = self.status().get("last_run") or {}
            if info["hit"] and last.get("run_id") != prev_id:
                # The run had finished (and was saved) just before the kill
                # landed, but run --wait had not seen it yet.
                info["hit"] = False
                info["outcome"] = last.get("result")
                info["folder"] = last.get("set")
                info["last_run"] = last
                return
            if info["hit"]:
                info["outcome"] = "killed"
                if ctl.returncode not in (1, 3):
                    self.violation(no, "run --wait exited %s when the daemon was killed:\n%s"
                                   % (ctl.returncode, info["ctl_out"]))
                return
            before_kill = info["before_kill"]
            info["outcome"] = before_kill.get("result") or "lost"
            info["folder"] = before_kill.get("set")
            info["last_run"] = before_kill
            if before_kill.get("run_id") in (None, prev_id):
                self.violation(no, "run --wait exited %s while the daemon was alive and no run "
                               "had finished:\n%s\nlog tail:\n%s"
                               % (ctl.returncode, info["ctl_out"], self.run_log[-3000:]))
            elif ctl.returncode != (0 if before_kill.get("result") == "complete" else 1):
                self.violation(no, "run --wait exited %s for a %s run:\n%s"
                               % (ctl.returncode, before_kill.get("result"), info["ctl_out"]))
            if last.get("run_id") != before_kill.get("run_id"):
                self.violation(no, "a finished run was forgotten across SIGKILL: last run %s "
                               "before the kill, %s after the restart"
                               % (before_kill.get("run_id"), last.get("run_id")))
            return
        # Wait for idle (run --wait returns when the run is recorded).
        deadline = time.monotonic() + 20
        st = self.status()
        while (st.get("state") != "idle" or (st.get("last_run") or {}).get("run_id") == prev_id) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
            st = self.status()
        last = st.get("last_run") or {}
        if last.get("run_id") == prev_id or st.get("state") != "idle":
            self.violation(no, "no new finished run in status after run --wait (exit %s): %s"
                           % (ctl.returncode, json.dumps(st)[:1500]))
            info["outcome"] = "lost"
            return
        info["outcome"] = last.get("result")
        info["folder"] = last.get("set")
        info["last_run"] = last
        want_rc = 0 if last.get("result") == "complete" else 1
        if ctl.returncode != want_rc:
            self.violation(no, "run --wait exited %s for a %s run:\n%s"
                           % (ctl.returncode, last.get("result"), info["ctl_out"]))
        inst = self.instances[-1]
        inst["runs"] += 1
        # Zombies and helpers: none once the daemon is idle.
        deadline = time.monotonic() + 3
        while True:
            tree = h.process_tree()
            kids = h.descendants(r.pid, tree)
            zombies = [p for p in kids if tree[p][1] == "Z"]
            helpers = self.helpers_below(r.pid)
            if not zombies and not helpers:
                break
            if time.monotonic() > deadline:
                self.violation(no, "idle daemon has zombies %r / helpers %r" % (zombies, helpers))
                break
            time.sleep(0.05)
        inst["rss"].append(vm_rss_kb(r.pid))
        inst["fds"].append(fd_count(r.pid))
        inst["fd_list"].append(fd_targets(r.pid))
        self.run_log = r.log()

    def once_run(self, no, fault, info):
        r = h.BackupRun(self.conf, workdir=self.workdir)

        def done():
            return r.proc.poll() is not None
        if fault in ("kill_export", "kill_upload"):
            name = "export-collection" if fault == "kill_export" else "upload-blob"
            self.kill_child(r.pid, name, self.rng.uniform(0, 1.2), info, done)
        elif fault == "kill_supervisor":
            delay = self.rng.uniform(0, 1.0)
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline and not done():
                time.sleep(0.01)
            info["hit"] = not done()
            kids = [pid for pid, _a in self.helpers_below(r.pid)]
            if info["hit"]:
                os.kill(r.pid, signal.SIGKILL)
            info["victim"] = ["mongo-azure-backupd", "(%d children)" % len(kids)]
            if info["hit"]:
                r.proc.wait(10)
                self.check_children_died(no, kids)
        try:
            rc, log, _ = r.wait(WAIT_LIMIT)
        except AssertionError as e:
            self.violation(no, str(e)[:3000])
            info["outcome"] = "hung"
            return
        self.run_log = log
        info["rc"] = rc
        if fault == "kill_supervisor" and rc == -signal.SIGKILL:
            info["outcome"] = "killed"
            self.killed_log = log
            return
        if fault == "kill_supervisor":
            info["hit"] = False
        m = re.search(r"run \S+: (complete|PARTIAL|FAILED|cancelled)\b.*set (\S+/)", log)
        if not m:
            self.violation(no, "no result line in the log (exit %s):\n%s" % (rc, log[-3000:]))
            info["outcome"] = "lost"
            return
        info["outcome"] = m.group(1).lower()
        info["folder"] = m.group(2)
        if rc != (0 if info["outcome"] == "complete" else 1):
            self.violation(no, "exit %s for a %s run" % (rc, info["outcome"]))

    def check_children_died(self, no, kids):
        """After the supervisor was SIGKILLed (and reaped): its helpers die
        with it (PR_SET_PDEATHSIG), i.e. within moments, not when they are
        done with their work.  0.5 s is generous for a signal; a helper
        still working then was not killed."""
        t0 = time.monotonic()
        late = []
        while True:
            h._reap_orphans()
            left = [p for p in kids if _alive(p)] + [p for p, _a in self.stray_helpers()
                                                     if p not in kids]
            elapsed = time.monotonic() - t0
            if not left:
                break
            if elapsed > 0.5 and not late:
                late = [(p, h.proc_cmdline(p)) for p in left]
            if elapsed > 5:
                break
            time.sleep(0.02)
        if late:
            self.violation(no, "helpers outlived the SIGKILLed supervisor by 0.5 s%s: %r"
                           % (" (and 5 s)" if left else "", late))
        for p in left:
            h.kill_tree(p, grace=1)

    def stray_helpers(self):
        return [(pid, argv) for pid, argv in h.stray_processes()
                if argv and os.path.basename(argv[0]) in HELPERS
                and (self.daemon is None or pid not in h.descendants(self.daemon.pid))]

    # ------------------------------------------------------------- checks
    def folders(self):
        out = {}
        for b in self.blobs.container.list_blobs(name_starts_with="backups/"):
            folder = b.name.rpartition("/")[0] + "/"
            out.setdefault(folder, {})[b.name] = (b.etag, b.size)
        return out

    def manifest(self, folder):
        try:
            raw = self.blobs.download(folder + "manifest.json")
        except Exception:                     # noqa: BLE001 (not found)
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return {"__invalid__": raw[:200]}

    def check_blob(self, no, name, coll):
        data = self.blobs.download(name)
        try:
            raw = gzip.decompress(data)
        except (OSError, EOFError) as e:
            self.violation(no, "%s is not gzip: %s" % (name, e))
            return None
        want = self.source[coll][0]
        if raw != want:
            self.violation(no, "%s differs from the source: %s"
                           % (name, h.describe_bson_difference(raw, want)))
        return data

    def check_folder(self, no, folder, blobs, info):
        """Data blobs == source; a complete manifest is true.  Returns
        whether the set is a good (complete, verified) set."""
        n_viol = len(self.violations)
        data = {}
        for name in sorted(blobs):
            m = re.match(r"^.*/tralivali_(.+)\.bson\.gz$", name)
            if m:
                coll = m.group(1)
                if coll not in COLLS:
                    self.violation(no, "blob of an unknown collection: %s" % name)
                    continue
                data[name] = self.check_blob(no, name, coll)
        man = self.manifest(folder)
        if man is None:
            if blobs:
                self.violation(no, "set %s has blobs %r but no manifest" % (folder, sorted(blobs)))
            return False
        if "__invalid__" in man:
            self.violation(no, "%smanifest.json is not JSON: %r" % (folder, man["__invalid__"]))
            return False
        entries = {e.get("name"): e for e in man.get("collections") or []}
        if sorted(entries) != sorted(COLLS):
            self.violation(no, "%s manifest lists %r" % (folder, sorted(entries)))
        all_ok = all(e.get("result") == "ok" for e in entries.values())
        if man.get("complete") is True and not all_ok:
            self.violation(no, "%s manifest complete with results %r"
                           % (folder, {k: e.get("result") for k, e in entries.items()}))
        if man.get("complete") is not True:
            return False
        for coll, e in entries.items():
            for key in ("blob", "metadata_blob"):
                if e.get(key) not in blobs:
                    self.violation(no, "complete %s: %s %r missing" % (folder, key, e.get(key)))
            d = data.get(e.get("blob"))
            if d is None:
                continue
            if e.get("gzip_bytes") != len(d) or e.get("sha256") != hashlib.sha256(d).hexdigest():
                self.violation(no, "complete %s: %s size/sha256 %r/%r vs blob %d/%s"
                               % (folder, coll, e.get("gzip_bytes"), e.get("sha256"),
                                  len(d), hashlib.sha256(d).hexdigest()))
            if coll in self.source and (e.get("documents") != self.source[coll][1] or
                                        e.get("bson_bytes") != len(self.source[coll][0])):
                self.violation(no, "complete %s: %s documents/bson_bytes %r/%r, source %d/%d"
                               % (folder, coll, e.get("documents"), e.get("bson_bytes"),
                                  self.source[coll][1], len(self.source[coll][0])))
            if e.get("metadata_blob") in blobs:
                try:
                    json.loads(gzip.decompress(self.blobs.download(e["metadata_blob"])))
                except (OSError, EOFError, ValueError) as ex:
                    self.violation(no, "%s is not gzip'd JSON: %s" % (e["metadata_blob"], ex))
        return len(self.violations) == n_viol

    def check_run(self, no, fault, info):
        folders = self.folders()
        new = {f: b for f, b in folders.items() if f not in self.seen_folders}
        self.seen_folders.update(new)
        if info["folder"] and info["folder"] not in folders:
            if info["outcome"] not in ("failed",):
                self.violation(no, "the run's set %s is not in Azure (outcome %s)"
                               % (info["folder"], info["outcome"]))
        if info["folder"] and info["folder"] not in new and info["folder"] in folders:
            self.violation(no, "the run's set %s existed before the run" % info["folder"])
        others = [f for f in new if f != info["folder"]]
        if others and not (fault == "kill_supervisor" and info["outcome"] == "killed"
                           and len(others) == 1):
            self.violation(no, "unexpected new sets %r" % others)
        if info["folder"] is None and others:
            info["folder"] = others[0]
        for f, blobs in new.items():
            for name, (etag, _size) in blobs.items():
                self.snapshot[name] = etag
        goods = []
        for f, blobs in new.items():
            if self.check_folder(no, f, blobs, info):
                self.good_sets[f] = {n: etag for n, (etag, _s) in blobs.items()}
                goods.append(f)
        info["good"] = bool(goods)
        # The outcome against the fault.
        outcome = info["outcome"]
        if outcome == "complete" and info["folder"] not in goods:
            self.violation(no, "reported complete, but the set %s is not a good set" % info["folder"])
        if outcome in ("partial", "failed", "cancelled") and info["folder"] in goods:
            self.violation(no, "reported %s, but the set's manifest says complete" % outcome)
        if fault in RECOVERABLE and outcome != "complete":
            self.violation(no, "%s (%s) should have been absorbed, the run is %s; log tail:\n%s"
                           % (fault, info["detail"], outcome, self.run_log[-4000:]))
        if fault in ("kill_export", "kill_upload") and info["hit"]:
            coll, kind = self.victim_of(info["victim"])
            info["victim_kind"] = kind
            lr = info.get("last_run") or {}
            ent = {c.get("name"): c for c in lr.get("collections") or []}
            if kind.endswith("upload"):
                # A dead upload-blob is retried like any transient failure:
                # the run may complete (the set is then checked whole above),
                # but the log must blame upload-blob and show the retry.
                if not re.search(r"collection %s: attempt \d+ failed: upload-blob was killed "
                                 r"by signal 9" % re.escape(coll), self.run_log):
                    self.violation(no, "%s's %s was SIGKILLed, but the log does not blame "
                                   "upload-blob and retry" % (coll, kind))
            else:
                if outcome == "complete":
                    self.violation(no, "a %s (%s) was SIGKILLed, yet the run is complete"
                                   % (kind, coll))
                if coll in ent and ent[coll].get("result") != "failed":
                    self.violation(no, "%s's %s was SIGKILLed, yet it is %r"
                                   % (coll, kind, ent[coll].get("result")))
            if kind == "data-export" and info["folder"]:
                name = info["folder"] + "tralivali_%s.bson.gz" % coll
                if name in folders.get(info["folder"], {}):
                    self.violation(no, "the SIGKILLed export of %s was committed: %s" % (coll, name))
        if fault == "kill_supervisor" and outcome == "killed" and info["folder"]:
            man = self.manifest(info["folder"])
            if man is not None and man.get("complete") is True and info["folder"] not in goods:
                self.violation(no, "the killed run's set says complete but is not good")

    def final_checks(self):
        self.say("final checks ...")
        folders = self.folders()
        for f, etags in sorted(self.good_sets.items()):
            now = folders.get(f)
            if now is None:
                self.violation(None, "good set %s was deleted" % f)
                continue
            for name, etag in etags.items():
                if name not in now:
                    self.violation(None, "blob %s of good set %s was deleted" % (name, f))
                elif now[name][0] != etag:
                    self.violation(None, "blob %s of good set %s was rewritten" % (name, f))
        # Nothing committed after its run was over (an orphaned uploader).
        for f, blobs in sorted(folders.items()):
            for name, (etag, _size) in sorted(blobs.items()):
                if self.snapshot.get(name) != etag:
                    self.violation(None, "%s was %s after its run had ended" % (
                        name, "committed" if name not in self.snapshot else "rewritten"))
        unknown = sorted(set(folders) - self.seen_folders)
        if unknown:
            self.violation(None, "sets appeared outside any run: %r" % unknown)
        # Every complete manifest, once more, against the blobs as they are.
        for f, blobs in folders.items():
            man = self.manifest(f)
            if not man or man.get("complete") is not True:
                continue
            for e in man.get("collections") or []:
                b = blobs.get(e.get("blob"))
                if b is None or b[1] != e.get("gzip_bytes"):
                    self.violation(None, "complete %s: %s is %r, manifest says %r bytes"
                                   % (f, e.get("blob"), b, e.get("gzip_bytes")))
        # Processes.
        if self.mode == "service":
            rc = self.stop_daemon()
            if rc != 0:
                self.violation(None, "the daemon exited %s on SIGTERM" % rc)
        deadline = time.monotonic() + 5
        while True:
            h._reap_orphans()
            left = h.stray_processes()
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if left:
            self.violation(None, "processes left after the soak: %r" % left)
            for pid, _a in left:
                h.kill_tree(pid, grace=1)
        zombies = [pid for pid, (ppid, state, _c) in h.process_tree().items()
                   if state == "Z" and pid in h.descendants(os.getpid())]
        if zombies:
            self.violation(None, "zombies left: %r" % zombies)
        self.check_instances()

    def check_instances(self):
        for i, inst in enumerate(self.instances):
            fds = [x for x in inst["fds"] if x is not None]
            rss = [x for x in inst["rss"] if x is not None]
            # fds[0] is at start (before any run), fds[1] after the first run.
            if len(fds) >= 3:
                base = fds[1]
                grew = [(k, x) for k, x in enumerate(fds[2:], 2) if x > base]
                if grew:
                    k = grew[-1][0]
                    self.violation(None, "daemon #%d (pid %d): open fds grew from %d after its first "
                                   "run to %r; after run %d:\n  %s\nafter the first:\n  %s"
                                   % (i + 1, inst["pid"], base, fds, k,
                                      "\n  ".join(inst["fd_list"][k]),
                                      "\n  ".join(inst["fd_list"][1])))
            if len(rss) >= 12:
                base = max(rss[1:4])
                growth = rss[-1] - base
                if growth > self.rss_slack_kb:
                    self.violation(None, "daemon #%d (pid %d): VmRSS grew %d kB over %d runs "
                                   "(%d -> %d kB)" % (i + 1, inst["pid"], growth, len(rss) - 1,
                                                      base, rss[-1]))

    # ------------------------------------------------------------ figures
    def figures(self):
        by = collections.OrderedDict()
        for rec in self.records:
            by.setdefault(rec["fault"], collections.Counter())[rec["outcome"]] += 1
        times = collections.defaultdict(list)
        for rec in self.records:
            times[rec["fault"]].append(rec["seconds"])
        kills = collections.Counter()
        for rec in self.records:
            if rec["fault"].startswith("kill_"):
                kills[(rec["fault"], "hit" if rec["hit"] else "missed")] += 1
        inst = []
        for i in self.instances:
            rss = [x for x in i["rss"] if x is not None]
            fds = [x for x in i["fds"] if x is not None]
            inst.append({"pid": i["pid"], "runs": i["runs"],
                         "rss_kb": {"start": rss[0] if rss else None,
                                    "first": rss[1] if len(rss) > 1 else None,
                                    "last": rss[-1] if rss else None,
                                    "max": max(rss) if rss else None},
                         "fds": {"start": fds[0] if fds else None,
                                 "first": fds[1] if len(fds) > 1 else None,
                                 "last": fds[-1] if fds else None,
                                 "min": min(fds) if fds else None,
                                 "max": max(fds) if fds else None}})
        return {
            "runs": len(self.records), "mode": self.mode, "seed": self.seed,
            "proxy": self.use_proxy, "users": self.users,
            "by_fault": {f: dict(c) for f, c in by.items()},
            "by_outcome": dict(collections.Counter(r["outcome"] for r in self.records)),
            "kills": {"%s %s" % k: v for k, v in sorted(kills.items())},
            "seconds": {f: {"min": min(v), "median": round(statistics.median(v), 2),
                            "max": max(v), "total": round(sum(v), 1)}
                        for f, v in times.items()},
            "good_sets": len(self.good_sets), "sets": len(self.seen_folders),
            "daemons": inst, "violations": len(self.violations), "notes": self.notes,
        }

    def print_figures(self, fig):
        self.say("")
        self.say("soak: %d runs, mode %s, seed %d, users %d, fault proxy %s, %.0f s"
                 % (fig["runs"], fig["mode"], fig["seed"], fig["users"],
                    "yes" if fig["proxy"] else "no", fig.get("wall", 0)))
        outcomes = sorted(fig["by_outcome"])
        self.say("%-16s %s" % ("fault", " ".join("%9s" % o for o in outcomes))
                 + "   seconds min/median/max")
        for f, c in fig["by_fault"].items():
            s = fig["seconds"][f]
            self.say("%-16s %s   %.1f/%.1f/%.1f" % (f, " ".join("%9d" % c.get(o, 0) for o in outcomes),
                                                    s["min"], s["median"], s["max"]))
        self.say("%-16s %s" % ("total", " ".join("%9d" % fig["by_outcome"][o] for o in outcomes)))
        self.say("kills: %s" % ", ".join("%s %d" % kv for kv in fig["kills"].items()))
        self.say("sets: %d, good (complete and verified): %d" % (fig["sets"], fig["good_sets"]))
        for i, d in enumerate(fig["daemons"]):
            self.say("daemon #%d pid %d: %d runs; VmRSS kB start %s, after first run %s, last %s, "
                     "max %s; fds start %s, after first run %s, last %s, min %s, max %s"
                     % (i + 1, d["pid"], d["runs"], d["rss_kb"]["start"], d["rss_kb"]["first"],
                        d["rss_kb"]["last"], d["rss_kb"]["max"], d["fds"]["start"],
                        d["fds"]["first"], d["fds"]["last"], d["fds"]["min"], d["fds"]["max"]))
        for n in fig["notes"]:
            self.say("note: " + n)
        self.say("violations: %d" % len(self.violations))
        for v in self.violations:
            self.say("  - " + v.splitlines()[0][:300])

    # ---------------------------------------------------------------- run
    def run(self):
        t0 = time.monotonic()
        self.setup()
        try:
            if self.mode == "service":
                self.start_daemon()
            for no, fault in enumerate(self.draw_faults(), 1):
                self.one_run(no, fault)
            self.final_checks()
        finally:
            self.teardown()
        fig = self.figures()
        fig["wall"] = round(time.monotonic() - t0, 1)
        self.result = fig
        return fig


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mode", choices=("service", "once"), default="service")
    ap.add_argument("--users", type=int, default=30000, help="documents in the big collection")
    ap.add_argument("--no-proxy", action="store_true", help="no storage faults")
    ap.add_argument("--faults", help="comma-separated subset of: " + ", ".join(FAULTS))
    ap.add_argument("--rss-slack-kb", type=int, default=4096)
    ap.add_argument("--json", help="write the figures and violations to this file")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    faults = None
    if args.faults:
        faults = [f.strip() for f in args.faults.split(",") if f.strip()]
        bad = [f for f in faults if f not in FAULTS]
        if bad or not faults:
            ap.error("--faults: unknown %s (known: %s)" % (", ".join(bad), ", ".join(FAULTS)))

    h._become_subreaper()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, h._on_signal)
    for why in (h.Azurite.available(), h.Mongo.available(), h.build_available()):
        if why:
            print("SKIP: " + why)
            return h.SKIP
    try:
        h.setup_module_env()
    except Exception as e:                   # noqa: BLE001
        print("SKIP: %s" % e)
        return h.SKIP
    try:
        if not h.ENV["mongo"].supports_faults:
            print("SKIP: the soak needs tests/fake_mongod.py (unset MAB_TEST_MONGODB_URI)")
            return h.SKIP
        soak = Soak(runs=args.runs, seed=args.seed, mode=args.mode, users=args.users,
                    use_proxy=not args.no_proxy, rss_slack_kb=args.rss_slack_kb,
                    faults=faults)
        fig = soak.run()
        soak.print_figures(fig)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"figures": fig, "violations": soak.violations,
                           "runs": [{k: v for k, v in r.items() if k not in ("last_run", "ctl_out")}
                                    for r in soak.records]}, f, indent=1)
        return 1 if soak.violations else 0
    finally:
        h.teardown_module_env()


if __name__ == "__main__":
    sys.exit(main())
