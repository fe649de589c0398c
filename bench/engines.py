#!/usr/bin/python3
"""engines.py - benchmark of export-collection's gzip engines on one collection.

Run by hand after `make` (it builds nothing of the project), with Debian's
python3:

    /usr/bin/python3 bench/engines.py --builddir build [--megabytes 200] [--json FILE]

What it does (docs/PERFORMANCE.md explains why and shows the results):

 1. compiles bench/gzip_floor.c with cc into a temporary directory (against
    -lz, and -ldeflate / -lisal when their headers exist);
 2. starts Azurite (in memory) and tests/fake_mongod.py, and seeds one
    collection, `messages`, of --megabytes of BSON with bench.py's chat
    application generator;
 3. in --repeats rounds, runs `mongo-azure-backupd -c CONF --once` once per
    case (engine, level, threads; "default" has no [compression] section),
    and `mongodump --gzip` from the same fake when it is there; every blob
    is downloaded with Microsoft's SDK, gunzipped (every member) and
    compared with what was seeded, and the manifest's compression record is
    read back;
 4. measures each setting's in-process floor: gzip_floor gzips the same
    BSON in one thread with the same engine, level and chunking as
    export-collection (zlib / isal with one thread: one streamed member fed
    256 KiB at a time; otherwise 1 MiB members), CPU time;
 5. prints tables of medians (min-max) and writes --json FILE, and says
    which targets were met.

The case rounds are interleaved (case 1..N, then again) so that a slow
moment of the machine spreads over all cases instead of hitting one.  Each
case's figures are the median of its --repeats runs.  On a shared machine
--wait-quiet MINUTES first waits for a 1-minute load average below 0.6 and
no test suite running, and then, before every measurement, for idle CPUs
(--idle-wait); every run still records what else ran (/proc/stat) and the
report warns when that exceeded 5 % of the CPU.

It exits 0 when it ran, whether or not targets were met; 1 when something
broke (a backup failed, data differed, a server did not start).
"""

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (bench.py: servers, seeding, passes, verification)
from bench import BenchError, LoadMeter, Server, log  # noqa: E402

from azure.storage.blob import BlobServiceClient  # noqa: E402  (bench.py checked it)

HERE = os.path.dirname(os.path.abspath(__file__))
FLOOR_SRC = os.path.join(HERE, "gzip_floor.c")
COLLECTION = "messages"
MEMBER_SIZE = 1024 * 1024
QUIET_LOAD = 0.6
LOAD_WARN = 0.05          # others + steal above 5 % of the CPU available: warn

# (label, engine, level, threads); None = no [compression] section at all.
CASES = [
    ("zlib 6 t1", "zlib", 6, "1"),
    ("zlib 1 t1", "zlib", 1, "1"),
    ("libdeflate 6 t1", "libdeflate", 6, "1"),
    ("libdeflate 6 auto", "libdeflate", 6, "auto"),
    ("libdeflate 1 auto", "libdeflate", 1, "auto"),
    ("libdeflate 4 auto", "libdeflate", 4, "auto"),
    ("isal 1 t1", "isal", 1, "1"),
    ("isal 1 auto", "isal", 1, "auto"),
    ("isal 3 auto", "isal", 3, "auto"),
    ("default", None, None, None),
]
# Floors measured for the recommendation only (no end-to-end case).
EXTRA_FLOORS = [("zlib", 9, "stream"), ("libdeflate", 9, "members"),
                ("libdeflate", 12, "members"), ("isal", 0, "stream"),
                ("isal", 3, "stream")]
LINKS = [("100 Mbit/s", 12.5), ("1 Gbit/s", 125.0), ("10 Gbit/s", 1250.0)]


def floor_mode(engine, threads):
    """How export-collection compresses: one streamed member or 1 MiB members."""
    return "stream" if threads == 1 and engine != "libdeflate" else "members"


def floor_key(engine, level, mode):
    return "%s %d %s" % (engine, level, mode)


def median_min_max(values):
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


# --------------------------------------------------------------------------
# The floor program

def header_exists(cc, header):
    r = subprocess.run([cc, "-E", "-x", "c", "-"], input="#include <%s>\n" % header,
                       capture_output=True, text=True)
    return r.returncode == 0


def compile_floor(tmp):
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise BenchError("no C compiler (%s) to build %s" % (cc, FLOOR_SRC))
    if not header_exists(cc, "zlib.h"):
        raise BenchError("zlib.h not found: install zlib1g-dev")
    engines = ["zlib"]
    cmd = [cc, "-O2", "-Wall", "-o", os.path.join(tmp, "gzip_floor"), FLOOR_SRC]
    libs = ["-lz"]
    if header_exists(cc, "libdeflate.h"):
        cmd.append("-DHAVE_LIBDEFLATE")
        libs.append("-ldeflate")
        engines.append("libdeflate")
    if header_exists(cc, "isa-l/igzip_lib.h"):
        cmd.append("-DHAVE_ISAL")
        libs.append("-lisal")
        engines.append("isal")
    cmd += libs
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError("compiling the floor failed: %s\n%s" % (" ".join(cmd), r.stderr))
    log("floor program: %s" % " ".join(cmd))
    return cmd[4], engines, " ".join(cmd)


def gunzip_sha256(path):
    h = hashlib.sha256()
    n = 0
    with gzip.open(path, "rb") as f:           # reads every member
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
            n += len(b)
    return n, h.hexdigest()


def measure_floor(prog, bson_path, engine, level, mode, tries, servers, tmp, want):
    """Run gzip_floor; keep the fastest try (a floor is a lower bound)."""
    out = os.path.join(tmp, "floor.gz")
    c0 = os.times()
    meter = LoadMeter(servers)
    r = subprocess.run([prog, "-o", out, bson_path, engine, str(level), mode, str(tries)],
                       capture_output=True, text=True)
    c1 = os.times()
    # The floor program is our child: its CPU is no other load.
    load = meter.stop(known=(c1.children_user - c0.children_user)
                      + (c1.children_system - c0.children_system))
    if r.returncode != 0:
        raise BenchError("gzip_floor %s %d %s failed: %s" % (engine, level, mode,
                                                             r.stderr.strip()))
    tries_rec = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    raw, sha = gunzip_sha256(out)
    os.unlink(out)
    best = min(tries_rec, key=lambda t: t["cpu_seconds"])
    return {"engine": engine, "level": level, "mode": mode,
            "cpu_seconds": best["cpu_seconds"], "wall_seconds": best["wall_seconds"],
            "bson_bytes": best["in_bytes"], "gzip_bytes": best["out_bytes"],
            "members": best["members"],
            "mb_s_cpu": best["in_bytes"] / 1e6 / best["cpu_seconds"],
            "mb_s_wall": best["in_bytes"] / 1e6 / best["wall_seconds"],
            "ratio": best["in_bytes"] / best["out_bytes"],
            "tries": tries_rec, "load": load,
            "output_gunzips_to_input": raw == want["bson_bytes"] and sha == want["sha256"]}


# --------------------------------------------------------------------------
# End-to-end cases

def write_case_config(path, conn_file, uri_file, container, case, tmp):
    """bench.py's configuration with this case's [compression] section (none: default)."""
    _label, engine, level, threads = case
    bench.write_config(path, conn_file, uri_file, container, [COLLECTION], 1, level, tmp,
                       engine=engine, threads=threads)


def manifest_compression(svc, container):
    """The compression record of COLLECTION in the run's manifest.json."""
    cc = svc.get_container_client(container)
    names = [b.name for b in cc.list_blobs() if b.name.endswith("/manifest.json")
             or b.name == "manifest.json"]
    if len(names) != 1:
        return None, "%d manifest.json blobs in %s" % (len(names), container)
    doc = json.loads(cc.download_blob(names[0]).readall())
    for c in doc.get("collections", []):
        if c.get("name") == COLLECTION:
            return c.get("compression"), None
    return None, "no %s in %s" % (COLLECTION, names[0])


def run_case(i, rnd, case, a, env):
    """One `--once` of one case; return its record (and problems)."""
    label = case[0]
    name = "c%02d-r%d" % (i, rnd)
    tmp = os.path.join(env["work"], name)
    os.makedirs(tmp)
    conf = os.path.join(tmp, "mab.conf")
    container = "eng-%s" % name
    write_case_config(conf, env["conn_file"], env["uri_file"], container, case, tmp)
    res = bench.run_pass(name, a.builddir, conf, os.path.join(tmp, "daemon.log"),
                         env["servers"], a.timeout)
    problems = []
    if res["exit_status"] != 0:
        problems.append("%s, round %d: mongo-azure-backupd exited with status %d (log %s)"
                        % (label, rnd, res["exit_status"], res["log"]))
    for coll, why in res["failed"].items():
        problems.append("%s, round %d: collection %s FAILED %s" % (label, rnd, coll, why))
    c = res["collections"].get(COLLECTION)
    rec = {"case": label, "round": rnd, "exit_status": res["exit_status"],
           "once_wall_seconds": res["wall_seconds"], "log": res["log"]}
    keep = env.get("bson_path") is None
    if c is not None:
        p, files = bench.verify_pass(res, env["svc"], container, env["seeded"], env["work"],
                                     keep_files=keep)
        problems.extend("%s, round %d: %s" % (label, rnd, x) for x in p)
        if COLLECTION in files:
            if not p:
                env["bson_path"] = files[COLLECTION]   # for the floors
            else:
                os.unlink(files[COLLECTION])
        comp, why = manifest_compression(env["svc"], container)
        if why:
            problems.append("%s, round %d: manifest: %s" % (label, rnd, why))
        v = c.get("verify", {})
        bson_b = c["bson_bytes"]
        children = res["children"]
        rec.update({
            "bson_bytes": bson_b, "gzip_bytes": c["gzip_bytes"],
            "ratio": bson_b / c["gzip_bytes"] if c["gzip_bytes"] else None,
            # The ok line's MB/s comes from the exact time; its seconds are
            # rounded to 0.1 s, too coarse for a collection that takes 2 s.
            "collection_mb_s": c["logged_mb_s"],
            "collection_seconds": (bson_b / 1e6 / c["logged_mb_s"] if c["logged_mb_s"]
                                   else c["seconds"]),
            "once_mb_s": bson_b / 1e6 / res["wall_seconds"],
            "verified": bool(v.get("matches_seed") and v.get("matches_log")),
            "manifest_compression": comp,
            "cpu": {"ours": res["tree_cpu_seconds"],
                    "export": c["data_export"]["cpu_seconds"],
                    "upload": c["data_upload"]["cpu_seconds"],
                    "metadata": c["metadata_export"]["cpu_seconds"]
                    + c["metadata_upload"]["cpu_seconds"],
                    "supervisor": res["supervisor_cpu_seconds"],
                    "azurite": res["server_cpu_seconds"].get("azurite"),
                    "fake_mongod": res["server_cpu_seconds"].get("fake_mongod")},
            "rss_kib": {"export-collection": c["data_export"]["rss_kib"],
                        "upload-blob": c["data_upload"]["rss_kib"],
                        "export-collection (metadata)": c["metadata_export"]["rss_kib"],
                        "upload-blob (metadata)": c["metadata_upload"]["rss_kib"],
                        "mongo-azure-backupd": res["supervisor_vmhwm_kib"],
                        "max_child": max([ch["rss_kib"] for ch in children] or [0])},
        })
    rec["load"] = {"available_cpu_seconds": res["wall_seconds"] * env["cpus"],
                   "other_cpu_seconds": res["other_cpu_seconds"],
                   "steal_cpu_seconds": res["system_cpu_seconds"]["steal"],
                   "idle_cpu_seconds": res["system_cpu_seconds"]["idle"]
                   + res["system_cpu_seconds"]["iowait"]}
    try:
        env["svc"].delete_container(container)      # free Azurite's memory
    except Exception as e:  # noqa: BLE001 - informative only
        log("could not delete container %s: %s" % (container, e))
    if a.export_alone and c is not None:
        # The same export into /dev/null: the cursor and the compression
        # without upload-blob, Azurite and the supervisor.
        al = bench.export_alone(a.builddir, conf, COLLECTION,
                                os.path.join(tmp, "export-alone.log"), env["servers"])
        if al["exit_status"] != 0:
            problems.append("%s, round %d: export-collection alone exited with status %d "
                            "(log %s)" % (label, rnd, al["exit_status"], al["log"]))
        else:
            rec["export_alone"] = {
                "wall_seconds": al["wall_seconds"], "cpu_seconds": al["cpu_seconds"],
                "mb_s": rec["bson_bytes"] / 1e6 / al["wall_seconds"],
                "fake_mongod_cpu_seconds": al["server_cpu_seconds"].get("fake_mongod"),
                "load": al["load"]}
    if c is not None:
        log("%-18s round %d: %.2f s, %.1f MB/s (collection), %.1f MB/s (--once), ratio %.2f, "
            "%s" % (label, rnd, rec["collection_seconds"], rec["collection_mb_s"] or 0, rec["once_mb_s"],
                    rec["ratio"] or 0, "verified" if rec["verified"] else "NOT VERIFIED"))
    return rec, problems


# --------------------------------------------------------------------------
# mongodump

def default_mongodump():
    """$MONGODUMP, else the mongodump on PATH, else that name (then the
    comparison is skipped with a note)."""
    return os.environ.get("MONGODUMP") or shutil.which("mongodump") or "mongodump"


def mongodump_version(path):
    try:
        r = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return None, str(e)
    if r.returncode != 0:
        return None, (r.stderr or r.stdout).strip()
    first = (r.stdout.splitlines() or [""])[0]
    go = re.search(r"Go version: (\S+)", r.stdout)
    return first + (" (%s)" % go.group(1) if go else ""), None


def run_mongodump(path, rnd, env, timeout):
    out = os.path.join(env["work"], "mongodump-r%d" % rnd)
    logpath = out + ".log"
    argv = [path, "--uri", env["uri"], "--db", bench.DATABASE, "--collection", COLLECTION,
            "--gzip", "--out", out]
    srv0 = {s.name: s.cpu_seconds() for s in env["servers"]}
    meter = LoadMeter(env["servers"])
    t0 = time.monotonic()
    with open(logpath, "wb") as lf:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf)
    hwm = status = ru = None
    try:
        deadline = t0 + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                break
            h = bench.proc_status_kib(p.pid, "VmHWM")
            if h is not None:
                hwm = h
            if time.monotonic() > deadline:
                p.kill()
            time.sleep(0.05)
    finally:
        if status is None:
            p.kill()
            p.wait()
    wall = time.monotonic() - t0
    cpu = ru.ru_utime + ru.ru_stime
    load = meter.stop(known=cpu)
    srv = {s.name: (s.cpu_seconds() - srv0[s.name]) if srv0.get(s.name) is not None
           and s.cpu_seconds() is not None else None for s in env["servers"]}
    rc = os.waitstatus_to_exitcode(status)
    gz = os.path.join(out, bench.DATABASE, COLLECTION + ".bson.gz")
    rec = {"round": rnd, "exit_status": rc, "wall_seconds": wall, "cpu_seconds": cpu,
           "peak_rss_kib": hwm, "server_cpu_seconds": srv, "log": logpath, "argv": argv,
           "load": load}
    problems = []
    if rc != 0 or not os.path.exists(gz):
        problems.append("mongodump round %d exited with status %d (log %s)" % (rnd, rc, logpath))
        return rec, problems
    raw, sha = gunzip_sha256(gz)
    want = env["seeded"][COLLECTION]
    rec.update({"gzip_bytes": os.path.getsize(gz), "bson_bytes": raw,
                "verified": raw == want["bson_bytes"] and sha == want["sha256"],
                "mb_s": raw / 1e6 / wall})
    rec["ratio"] = raw / rec["gzip_bytes"]
    if not rec["verified"]:
        problems.append("mongodump round %d: its .bson.gz gunzips to %d bytes, sha256 %s...; "
                        "seeded %d, %s..." % (rnd, raw, sha[:12], want["bson_bytes"],
                                               want["sha256"][:12]))
    shutil.rmtree(out, ignore_errors=True)
    log("mongodump --gzip     round %d: %.1f s, %.1f MB/s, ratio %.2f, %s"
        % (rnd, wall, rec["mb_s"], rec["ratio"], "verified" if rec["verified"]
           else "NOT VERIFIED"))
    return rec, problems


# --------------------------------------------------------------------------
# Waiting for a quiet machine

TEST_RE = re.compile(r"(^|/)(tests?/\S*\.py|test_\S+\.py|soak\.py|harness\.py|pytest|"
                     r"test\.sh|check_\w+|fuzz[-_][\w-]+|valgrind)$")


def busy_processes(ours=()):
    """Test suites of other people: `make check`, test scripts, unit tests, fuzzers.
    `ours`: PIDs to leave out (our own Azurite and fake_mongod)."""
    found = []
    skip = {os.getpid()} | set(ours)
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in skip:
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = [x.decode("utf-8", "replace") for x in f.read().split(b"\0") if x]
        except OSError:
            continue
        if not argv:
            continue
        prog = os.path.basename(argv[0])
        if prog in ("make", "gmake") and any(x == "check" or x.startswith("check")
                                             for x in argv[1:]):
            found.append("%s: %s" % (d, " ".join(argv)[:120]))
        elif any(TEST_RE.search(x) for x in argv[:3]):
            found.append("%s: %s" % (d, " ".join(argv)[:120]))
    return found


def wait_quiet(minutes, poll=30):
    """Wait for load average < QUIET_LOAD and no test processes, at most `minutes`."""
    t0 = time.monotonic()
    while True:
        load1 = os.getloadavg()[0]
        busy = busy_processes()
        waited = time.monotonic() - t0
        if load1 < QUIET_LOAD and not busy:
            log("machine quiet after %.0f s: load average %.2f, no test processes"
                % (waited, load1))
            return {"quiet": True, "waited_seconds": waited, "loadavg1": load1}
        if waited >= minutes * 60:
            log("machine NOT quiet after %.0f min (load %.2f, %d test processes): running "
                "anyway" % (minutes, load1, len(busy)))
            return {"quiet": False, "waited_seconds": waited, "loadavg1": load1,
                    "busy": busy[:20]}
        log("waiting for a quiet machine: load average %.2f, %d test processes%s"
            % (load1, len(busy), (" (" + busy[0] + ")") if busy else ""))
        time.sleep(poll)


def busy_share(seconds=2.0):
    """Share of all CPUs that processes used over `seconds` (/proc/stat)."""
    a = bench.system_cpu_seconds()
    time.sleep(seconds)
    d = bench.cpu_delta(a, bench.system_cpu_seconds())
    total = sum(d[k] for k in bench.STAT_FIELDS)
    return (d["tasks"] + d["steal"]) / total if total > 0 else 0.0


def wait_idle(env, what):
    """Before one measurement: wait until no test suite runs and the CPUs are
    idle (< 10 % busy over 2 s; our servers sit idle then), at most
    env["idle_wait"] seconds.  Return the seconds waited."""
    spent = sum(x["seconds"] for x in env.get("idle_waits", []))
    limit = min(env.get("idle_wait", 0), env.get("idle_budget", 0) - spent)
    if limit <= 0:
        return 0.0
    t0 = time.monotonic()
    while True:
        share = busy_share()
        busy = busy_processes([sv.proc.pid for sv in env["servers"] if sv.proc is not None])
        waited = time.monotonic() - t0
        if share < 0.10 and not busy:
            break
        if waited >= limit:
            log("%s: machine still busy after %.0f s (CPU %.0f%% busy, %d test processes): "
                "measuring anyway" % (what, waited, 100 * share, len(busy)))
            break
        time.sleep(8)
    if waited >= 5:
        log("%s: waited %.0f s for an idle machine" % (what, waited))
    env.setdefault("idle_waits", []).append({"what": what, "seconds": waited})
    return waited


# --------------------------------------------------------------------------
# Report

def summarize(cases, runs):
    out = []
    for label, engine, level, threads in cases:
        rs = [r for r in runs if r["case"] == label and "collection_mb_s" in r]
        s = {"case": label, "engine": engine, "level": level, "threads": threads,
             "runs": len(rs)}
        if rs:
            s["collection_mb_s"] = median_min_max([r["collection_mb_s"] for r in rs])
            s["once_mb_s"] = median_min_max([r["once_mb_s"] for r in rs])
            s["collection_seconds"] = median_min_max([r["collection_seconds"] for r in rs])
            s["gzip_bytes"] = median_min_max([r["gzip_bytes"] for r in rs])
            s["ratio"] = median_min_max([r["ratio"] for r in rs])
            s["bson_bytes"] = rs[0]["bson_bytes"]
            s["cpu"] = {k: median_min_max([r["cpu"][k] for r in rs]) for k in rs[0]["cpu"]}
            s["rss_kib_max"] = {k: max([r["rss_kib"][k] or 0 for r in rs])
                                for k in rs[0]["rss_kib"]}
            s["verified"] = all(r["verified"] for r in rs)
            comps = [r["manifest_compression"] for r in rs]
            s["manifest_compression"] = comps[0]
            s["manifest_consistent"] = all(x == comps[0] for x in comps)
            lost = [(r["load"]["other_cpu_seconds"] + r["load"]["steal_cpu_seconds"])
                    / r["load"]["available_cpu_seconds"] for r in rs]
            s["others_fraction_max"] = max(lost)
            s["export_alone_mb_s"] = median_min_max(
                [r["export_alone"]["mb_s"] for r in rs if "export_alone" in r])
            s["blob_mb_s"] = median_min_max([r["gzip_bytes"] / 1e6 / r["collection_seconds"]
                                             for r in rs])
        out.append(s)
    return out


def fmt_mmm(m, fmt="%.1f"):
    if m is None:
        return "-"
    return (fmt + " (" + fmt + "-" + fmt + ")") % (m["median"], m["min"], m["max"])


def build_targets(summary, floors, md, zlib6_floor_key):
    by = {s["case"]: s for s in summary}
    targets = []

    def med(s, k):
        return s.get(k, {}).get("median") if s and s.get(k) else None

    # (1) isal 1 end to end >= 100 MB/s and >= 5x mongodump --gzip
    isal = [by[k] for k in ("isal 1 t1", "isal 1 auto") if med(by.get(k), "once_mb_s")]
    if isal:
        best = max(isal, key=lambda s: med(s, "once_mb_s"))
        v = med(best, "once_mb_s")
        dump = md["mb_s"]["median"] if md and md.get("mb_s") else None
        factor = v / dump if dump else None
        met = v >= 100.0 and factor is not None and factor >= 5.0
        why = "" if dump else " (mongodump not measured: the 5x part cannot be judged)"
        targets.append({
            "target": "isal level 1 end to end (--once wall) >= 100 MB/s and >= 5x mongodump "
                      "--gzip",
            "met": met,
            "value": "%s: %.1f MB/s; mongodump --gzip %s MB/s -> %s%s" % (
                best["case"], v, "%.1f" % dump if dump else "-",
                "%.1fx" % factor if factor else "-", why),
            "numbers": {"case": best["case"], "once_mb_s": v,
                        "collection_mb_s": med(best, "collection_mb_s"),
                        "mongodump_mb_s": dump, "factor": factor}})
    # (2) default >= 2x zlib 6 floor at <= 1.03x zlib 6's blob bytes
    d, z = by.get("default"), by.get("zlib 6 t1")
    zf = floors.get(zlib6_floor_key)
    if d and z and zf and med(d, "collection_mb_s"):
        v = med(d, "collection_mb_s")
        x = v / zf["mb_s_cpu"]
        size = med(d, "gzip_bytes") / med(z, "gzip_bytes")
        targets.append({
            "target": "default settings >= 2x the zlib 6 floor, at <= 1.03x zlib 6's blob "
                      "bytes",
            "met": x >= 2.0 and size <= 1.03,
            "value": "%s: %.1f MB/s (collection) = %.2fx the zlib 6 floor %.1f MB/s "
                     "(--once: %.2fx); blob %.4fx zlib 6's" % (
                         describe_comp(d), v, x, zf["mb_s_cpu"],
                         med(d, "once_mb_s") / zf["mb_s_cpu"], size),
            "numbers": {"collection_mb_s": v, "once_mb_s": med(d, "once_mb_s"),
                        "zlib6_floor_mb_s": zf["mb_s_cpu"], "factor": x,
                        "blob_bytes_vs_zlib6": size}})
    # (3) zlib 6 threads 1 >= 90 % of its floor
    if z and zf and med(z, "collection_mb_s"):
        v = med(z, "collection_mb_s")
        targets.append({
            "target": "zlib 6 threads 1: pipeline >= 90% of the zlib 6 floor",
            "met": v / zf["mb_s_cpu"] >= 0.90,
            "value": "%.1f of %.1f MB/s = %.0f%% (min %.0f%%, max %.0f%%)" % (
                v, zf["mb_s_cpu"], 100 * v / zf["mb_s_cpu"],
                100 * z["collection_mb_s"]["min"] / zf["mb_s_cpu"],
                100 * z["collection_mb_s"]["max"] / zf["mb_s_cpu"]),
            "numbers": {"collection_mb_s": v, "floor_mb_s": zf["mb_s_cpu"],
                        "percent": 100 * v / zf["mb_s_cpu"]}})
    # (4) every process < 64 MiB
    worst = None
    for s in summary:
        for prog, kib in (s.get("rss_kib_max") or {}).items():
            if prog == "max_child":
                continue
            if worst is None or kib > worst[2]:
                worst = (s["case"], prog, kib)
    if worst:
        targets.append({"target": "every process of ours < 64 MiB peak RSS",
                        "met": worst[2] < bench.RSS_TARGET_KIB,
                        "value": "largest %.1f MiB (%s, %s)" % (worst[2] / 1024, worst[1],
                                                               worst[0]),
                        "numbers": {"case": worst[0], "program": worst[1],
                                    "peak_rss_kib": worst[2]}})
    return targets


def describe_comp(s):
    c = s.get("manifest_compression") or {}
    if not c:
        return s["case"]
    return "%s (%s %s, %s thread%s)" % (s["case"], c.get("engine"), c.get("level"),
                                        c.get("threads"), "" if c.get("threads") == 1 else "s")


def print_report(rep, out=sys.stdout):
    w = out.write
    m = rep["machine"]
    st = rep["settings"]
    w("\n== mongo-azure-backup gzip engines benchmark ==\n")
    w("machine: %d CPUs (%s), %.1f GiB RAM, %s; zlib %s, libdeflate %s, isal %s; Azurite %s, "
      "node %s\n" % (m["cpus"], m["cpu_model"], m["mem_gib"], m["kernel"], m["zlib"],
                     m.get("libdeflate"), m.get("isal"), m["azurite"], m["node"]))
    w("program: %s (%s); mongodump: %s\n" % (m["version"], m["builddir"],
                                           rep["mongodump"]["version"] or "not measured ("
                                           + (rep["mongodump"]["note"] or "") + ")"))
    w("data: one collection, %s, %d documents, %.1f MB BSON (bench.py's chat generator, "
      "seed %d)\n" % (COLLECTION, rep["seeded"]["documents"],
                      rep["seeded"]["bson_bytes"] / 1e6, st["seed"]))
    w("settings: block_size 8M, upload_concurrency 4; %d rounds, cases interleaved; figures "
      "are median (min-max)\n" % st["repeats"])
    q = rep["quiet_wait"]
    if q:
        w("quiet wait: %s after %.0f s (1-min load average %.2f)\n" % (
            "quiet" if q["quiet"] else "NOT quiet, ran anyway", q["waited_seconds"],
            q["loadavg1"]))
    iw = rep["idle_waits"]
    if iw:
        n = sum(1 for x in iw if x["seconds"] >= 5)
        w("idle waits: before %d of %d measurements the machine was busy; %.0f s waited in "
          "all, longest %.0f s (limits %.0f s each, %.0f s in all)\n"
          % (n, len(iw), sum(x["seconds"] for x in iw), max(x["seconds"] for x in iw),
             st["idle_wait"], st["idle_budget"]))
    w("load average at start %s, at end %s\n" % (
        " ".join("%.2f" % x for x in m["loadavg_at_start"]),
        " ".join("%.2f" % x for x in m["loadavg_at_end"])))
    w("Azurite and fake_mongod run on the same %d cores as the programs measured.\n"
      % m["cpus"])

    fl = rep["floors"]
    z6 = fl[rep["zlib6_floor_key"]]["mb_s_cpu"]
    w("\nIn-process floors (gzip_floor: one thread, BSON in memory, fastest of %d tries; "
      "MB/s of BSON per CPU second and per wall second)\n" % st["floor_repeats"])
    hdr = "%-22s %7s %7s %7s %7s %12s %6s %7s %8s %8s %8s\n"
    w(hdr % ("engine level mode", "CPU s", "MB/s", "MB/s", "x zlib6", "gzip bytes", "ratio",
             "blob", "cores to", "cores to", "cores to"))
    w(hdr % ("", "", "CPU", "wall", "floor", "", "", "MB/s/c", "100Mbit", "1Gbit", "10Gbit"))
    for k, f in sorted(fl.items(), key=lambda kv: -kv[1]["mb_s_cpu"]):
        blob = f["mb_s_cpu"] / f["ratio"]
        w(hdr % (k, "%.2f" % f["cpu_seconds"], "%.1f" % f["mb_s_cpu"], "%.1f" % f["mb_s_wall"],
                 "%.2f" % (f["mb_s_cpu"] / z6), f["gzip_bytes"], "%.2f" % f["ratio"],
                 "%.1f" % blob, *["%.2f" % (mbps / blob) for _, mbps in LINKS]))
    w("(blob MB/s/c: gzip output per CPU second = what one core feeds the network; cores "
      "to LINK: cores compressing at the floor that fill a link of 12.5, 125, 1250 MB/s)\n")
    bad = [k for k, f in fl.items() if not f["output_gunzips_to_input"]]
    w("floor outputs: %s\n" % ("every one gunzips (Python gzip) to exactly the input"
                               if not bad else "MISMATCH for " + ", ".join(bad)))
    fo = sum(f["load"]["other_cpu_seconds"] + f["load"]["steal_cpu_seconds"]
             for f in fl.values())
    fa = sum(f["load"]["available_cpu_seconds"] for f in fl.values())
    w("(while the floors were measured, other processes and the VM host took %.1f of %.1f "
      "CPU s)\n" % (fo, fa))

    w("\nEnd to end: mongo-azure-backupd --once, one collection, %.1f MB BSON\n"
      % (rep["seeded"]["bson_bytes"] / 1e6))
    hdr = "%-18s %-14s %7s %-19s %-19s %6s %6s %6s %7s %6s %6s\n"
    w(hdr % ("case", "manifest", "members", "collection MB/s", "--once MB/s", "alone",
             "ratio", "x own", "x zlib6", "blob", "others"))
    w(hdr % ("", "engine lvl thr", "", "", "", "MB/s", "", "floor", "floor", "MB/s", "max"))
    for s in rep["cases"]:
        c = s.get("manifest_compression") or {}
        fk = s.get("floor_key")
        own = fl.get(fk, {}).get("mb_s_cpu") if fk else None
        cm = s.get("collection_mb_s", {}).get("median") if s.get("collection_mb_s") else None
        w(hdr % (s["case"],
                 "%s %s %s" % (c.get("engine", "?"), c.get("level", "?"), c.get("threads", "?")),
                 c.get("members", "-"), fmt_mmm(s.get("collection_mb_s")),
                 fmt_mmm(s.get("once_mb_s")),
                 "%.1f" % s["export_alone_mb_s"]["median"] if s.get("export_alone_mb_s")
                 else "-",
                 "%.3f" % s["ratio"]["median"] if s.get("ratio") else "-",
                 "%.2f" % (cm / own) if cm and own else "-",
                 "%.2f" % (cm / z6) if cm else "-",
                 "%.1f" % s["blob_mb_s"]["median"] if s.get("blob_mb_s") else "-",
                 "%.0f%%" % (100 * s["others_fraction_max"]) if "others_fraction_max" in s
                 else "-"))
    md = rep["mongodump"]
    if md.get("mb_s"):
        w(hdr % ("mongodump --gzip", "Go gzip 6 1", "1", "-", fmt_mmm(md["mb_s"]), "-",
                 "%.3f" % md["ratio"], "-", "%.2f" % (md["mb_s"]["median"] / z6), "-",
                 "%.0f%%" % (100 * md["others_fraction_max"])))
    else:
        w("mongodump --gzip: skipped (%s)\n" % md.get("note"))
    w("own floors: %s\n" % "; ".join("%s = %s" % (s["case"], s["floor_key"])
                                     for s in rep["cases"] if s.get("floor_key")))
    w("(collection MB/s: BSON bytes / seconds of the supervisor's 'collection ... ok' line, "
      "export start to metadata blob committed;\n --once MB/s: BSON bytes / wall time of the "
      "whole mongo-azure-backupd --once, start to exit (mongodump: its whole run);\n"
      " alone MB/s: the same export-collection with the same settings into /dev/null, no "
      "upload, no supervisor (median);\n"
      " ratio = BSON bytes / blob bytes; x own floor: collection MB/s / the one-thread floor "
      "of the same engine, level and chunking;\n x zlib6 floor: collection MB/s / the zlib 6 "
      "floor; blob MB/s: gzip bytes / collection seconds; others max: the largest share of "
      "the\n CPU that other processes and the VM host took during one run of the case)\n")

    w("\nCPU seconds per run (median) and peak RSS (largest over the runs)\n")
    hdr = "%-18s %6s %6s %6s %5s %5s %6s %6s %7s | %9s %9s %9s\n"
    w(hdr % ("case", "ours", "export", "upload", "meta", "sup", "Azur", "fake", "exp",
             "export", "upload", "sup"))
    w(hdr % ("", "", "", "", "", "", "", "", "MB/cs", "RSS", "RSS", "RSS"))
    for s in rep["cases"]:
        if not s.get("cpu"):
            continue
        cp = {k: (v["median"] if v else None) for k, v in s["cpu"].items()}
        r = s["rss_kib_max"]
        w(hdr % (s["case"], "%.2f" % cp["ours"], "%.2f" % cp["export"], "%.2f" % cp["upload"],
                 "%.2f" % cp["metadata"], "%.2f" % cp["supervisor"],
                 "%.2f" % (cp["azurite"] or 0), "%.2f" % (cp["fake_mongod"] or 0),
                 "%.1f" % (s["bson_bytes"] / 1e6 / cp["export"]) if cp["export"] else "-",
                 bench.fmt_kib(r["export-collection"]), bench.fmt_kib(r["upload-blob"]),
                 bench.fmt_kib(r["mongo-azure-backupd"])))
    if md.get("mb_s"):
        w(hdr % ("mongodump --gzip", "%.2f" % md["cpu_seconds"]["median"], "-", "-", "-", "-",
                 "-", "%.2f" % md["fake_cpu_seconds"]["median"],
                 "%.1f" % (rep["seeded"]["bson_bytes"] / 1e6 / md["cpu_seconds"]["median"]),
                 bench.fmt_kib(md["peak_rss_kib_max"]), "-", "-"))
    w("(ours = supervisor + all its children, from wait4; export, upload, meta = the data "
      "blob's export-collection and upload-blob and\n both metadata children, from the "
      "supervisor's log (wait4); sup = the supervisor alone; Azur, fake = Azurite and "
      "fake_mongod\n from /proc/PID/stat; exp MB/cs: BSON MB per CPU second of the data blob's export-collection (mongodump:\n of the whole mongodump); RSS: wait4's ru_maxrss of each child, the "
      "supervisor's VmHWM sampled from /proc)\n")

    ver = [s["case"] for s in rep["cases"] if not s.get("verified")]
    w("\nVerification: %s\n" % (
        "every blob of every run%s gunzips to exactly the seeded BSON (documents, bytes, "
        "SHA-256)" % (" (and every mongodump output)" if rep["mongodump"]["runs"] else "")
        if not ver and not rep["mongodump"].get("unverified")
        else "MISMATCH in " + ", ".join(ver + (["mongodump"] if rep["mongodump"].get(
            "unverified") else []))))
    same = rep["floor_size_equals_blob"]
    w("Floor output size vs blob size (same engine, level, chunking): %s\n" % ", ".join(
        "%s %s" % (k, "same" if v else "DIFFERENT") for k, v in same.items()))
    for wmsg in rep["warnings"]:
        w("WARNING: %s\n" % wmsg)

    w("\nTargets\n")
    for t in rep["targets"]:
        w("  [%s] %s: %s\n" % ("met   " if t["met"] else "MISSED", t["target"], t["value"]))
    if rep["problems"]:
        w("\nProblems\n")
        for p in rep["problems"]:
            w("  - %s\n" % p)
    w("\n")


def library_versions():
    def modversion(pkg):
        try:
            r = subprocess.run(["pkg-config", "--modversion", pkg], capture_output=True,
                               text=True, timeout=20)
            return r.stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            return None
    return {"libdeflate": modversion("libdeflate"), "isal": modversion("libisal")}


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--builddir", default=os.path.join(bench.SRCDIR, "build"),
                    help="configured and built tree (default: %(default)s)")
    ap.add_argument("--megabytes", type=float, default=200.0,
                    help="BSON to seed in the one collection, in 10^6 bytes "
                         "(default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=3, metavar="N",
                    help="runs of every end-to-end case and of mongodump, at least 2 "
                         "(default: %(default)s)")
    ap.add_argument("--floor-repeats", type=int, default=2, metavar="N",
                    help="tries of every floor; the fastest counts (default: %(default)s)")
    ap.add_argument("--no-extra-floors", action="store_true",
                    help="measure only the floors of the end-to-end cases, not the extra "
                         "levels for the recommendation")
    ap.add_argument("--mongodump", metavar="PATH", default=default_mongodump(),
                    help="mongodump to compare with; skipped when it is not there "
                         "(default: %(default)s)")
    ap.add_argument("--case", action="append", metavar="LABEL",
                    help="run only these cases (repeatable), e.g. 'zlib 6 t1'")
    ap.add_argument("--seed", type=int, default=1, help="RNG seed (default: %(default)s)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--timeout", type=int, default=900,
                    help="seconds one --once may take (default: %(default)s)")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="MINUTES",
                    help="first wait (polling every 30 s) until the 1-minute load average is "
                         "below %.1f and no test suites run, at most MINUTES; then run anyway"
                         % QUIET_LOAD)
    ap.add_argument("--idle-wait", type=float, default=None, metavar="SECONDS",
                    help="before every measurement wait until no test suite runs and the CPUs "
                         "are idle, at most SECONDS (default: 300 with --wait-quiet, else 0)")
    ap.add_argument("--idle-budget", type=float, default=2400, metavar="SECONDS",
                    help="at most SECONDS of --idle-wait in all (default: %(default)s)")
    ap.add_argument("--no-export-alone", dest="export_alone", action="store_false",
                    help="skip the export-collection > /dev/null run after every case")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (logs, configs) and print its path")
    a = ap.parse_args()
    if a.repeats < 2:
        ap.error("--repeats must be at least 2 (medians of one run say nothing)")
    if a.idle_wait is None:
        a.idle_wait = 300.0 if a.wait_quiet > 0 else 0.0
    if a.floor_repeats < 1:
        ap.error("--floor-repeats must be at least 1")
    cases = CASES
    if a.case:
        known = {c[0] for c in CASES}
        for c in a.case:
            if c not in known:
                ap.error("unknown case %r; cases: %s" % (c, ", ".join(known)))
        cases = [c for c in CASES if c[0] in a.case]
    a.builddir = os.path.abspath(a.builddir)
    for prog in ("mongo-azure-backupd", "export-collection", "upload-blob"):
        if not os.access(os.path.join(a.builddir, "src", prog), os.X_OK):
            sys.exit("engines.py: %s is missing: configure and `make` first"
                     % os.path.join(a.builddir, "src", prog))
    if not os.path.exists(bench.AZURITE_MAIN):
        sys.exit("engines.py: %s is missing: `npm ci --prefix tests/azurite`"
                 % bench.AZURITE_MAIN)

    def on_term(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_term)

    try:
        quiet = wait_quiet(a.wait_quiet) if a.wait_quiet > 0 else None
    except KeyboardInterrupt as e:
        log("interrupted (%s)" % (e or "SIGINT"))
        return 130
    work = tempfile.mkdtemp(prefix="mab-engines-")
    os.chmod(work, 0o700)
    machine = bench.machine_info(a.builddir)
    machine.update(library_versions())
    machine["loadavg_at_start"] = os.getloadavg()
    log("work directory %s; %d CPUs; load average %.2f %.2f %.2f"
        % ((work, machine["cpus"]) + machine["loadavg_at_start"]))
    mongodump = {"path": a.mongodump, "version": None, "note": None, "runs": []}
    if os.access(a.mongodump, os.X_OK):
        mongodump["version"], mongodump["note"] = mongodump_version(a.mongodump)
    else:
        mongodump["note"] = "%s is not there" % a.mongodump
    if mongodump["note"]:
        log("mongodump skipped: %s" % mongodump["note"])

    azdir = os.path.join(work, "azurite")
    os.makedirs(azdir)
    azurite = Server("azurite", ["node", bench.AZURITE_MAIN, "--blobHost", "127.0.0.1",
                                 "--blobPort", "0", "--inMemoryPersistence", "--silent",
                                 "--disableTelemetry"],
                     r"listens on http://127\.0\.0\.1:(\d+)", azdir, work)
    fake = Server("fake_mongod", ["/usr/bin/python3", bench.FAKE_MONGOD, "--port", "0"],
                  r"listening 127\.0\.0\.1:(\d+)", work, work)
    servers = [azurite, fake]
    problems, warnings = [], []
    rc = 0
    try:
        floor_prog, floor_engines, floor_cmd = compile_floor(work)
        azurite.start()
        fake.start()
        uri = "mongodb://127.0.0.1:%d/" % fake.port
        conn = ("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;"
                "BlobEndpoint=http://127.0.0.1:%d/%s;" % (bench.DEV_ACCOUNT, bench.DEV_KEY,
                                                          azurite.port, bench.DEV_ACCOUNT))
        env = {"work": work, "servers": servers, "uri": uri, "cpus": machine["cpus"],
               "conn_file": os.path.join(work, "azure-connection-string"),
               "uri_file": os.path.join(work, "mongodb-uri"),
               "svc": BlobServiceClient.from_connection_string(conn), "bson_path": None,
               "idle_wait": a.idle_wait, "idle_budget": a.idle_budget}
        bench.write_secret(env["conn_file"], conn)
        bench.write_secret(env["uri_file"], uri)
        log("seeding %.1f MB of BSON into %s" % (a.megabytes, COLLECTION))
        seeded = bench.seed(uri, [(COLLECTION, "messages", int(a.megabytes * 1e6))], a.seed)
        env["seeded"] = seeded

        runs = []
        for rnd in range(1, a.repeats + 1):
            for i, case in enumerate(cases, 1):
                wait_idle(env, "%s, round %d" % (case[0], rnd))
                rec, p = run_case(i, rnd, case, a, env)
                runs.append(rec)
                problems.extend(p)
            if mongodump["version"]:
                wait_idle(env, "mongodump, round %d" % rnd)
                rec, p = run_mongodump(a.mongodump, rnd, env, a.timeout)
                mongodump["runs"].append(rec)
                problems.extend(p)
        if env["bson_path"] is None:
            raise BenchError("no verified blob to measure the floors on; logs in %s" % work)

        summary = summarize(cases, runs)
        # The settings each case ran with, as its manifest recorded them.
        floor_keys = {}
        for s in summary:
            c = s.get("manifest_compression")
            if not c:
                continue
            if c.get("engine") not in floor_engines:
                problems.append("%s: engine %s is not in the floor program"
                                % (s["case"], c.get("engine")))
                continue
            k = floor_key(c["engine"], c["level"], floor_mode(c["engine"], c["threads"]))
            s["floor_key"] = k
            floor_keys[k] = (c["engine"], c["level"], floor_mode(c["engine"], c["threads"]))
            if s["engine"] is not None and (c["engine"], c["level"]) != (s["engine"], s["level"]):
                problems.append("%s: the manifest says %s %s" % (s["case"], c["engine"],
                                                                  c["level"]))
            if not s["manifest_consistent"]:
                problems.append("%s: the manifests of its runs differ" % s["case"])
        zk = floor_key("zlib", 6, "stream")
        floor_keys.setdefault(zk, ("zlib", 6, "stream"))
        if not a.no_extra_floors:
            for e, lv, mode in EXTRA_FLOORS:
                if e in floor_engines:
                    floor_keys.setdefault(floor_key(e, lv, mode), (e, lv, mode))
        floors = {}
        for k, (e, lv, mode) in floor_keys.items():
            log("floor: %s, %d tries" % (k, a.floor_repeats))
            wait_idle(env, "floor %s" % k)
            floors[k] = measure_floor(floor_prog, env["bson_path"], e, lv, mode,
                                      a.floor_repeats, servers, work, seeded[COLLECTION])
            if not floors[k]["output_gunzips_to_input"]:
                problems.append("floor %s: its output does not gunzip to the input" % k)
        same = {}
        for s in summary:
            if s.get("floor_key") in floors and s.get("gzip_bytes"):
                same[s["case"]] = (floors[s["floor_key"]]["gzip_bytes"]
                                   == s["gzip_bytes"]["median"]
                                   and s["gzip_bytes"]["min"] == s["gzip_bytes"]["max"])

        md = None
        if mongodump["runs"]:
            ok = [r for r in mongodump["runs"] if r.get("mb_s")]
            if ok:
                md = {"mb_s": median_min_max([r["mb_s"] for r in ok]),
                      "ratio": statistics.median([r["ratio"] for r in ok]),
                      "cpu_seconds": median_min_max([r["cpu_seconds"] for r in ok]),
                      "fake_cpu_seconds": median_min_max(
                          [r["server_cpu_seconds"].get("fake_mongod") for r in ok]),
                      "peak_rss_kib_max": max(r["peak_rss_kib"] or 0 for r in ok),
                      "others_fraction_max": max(
                          (r["load"]["other_cpu_seconds"] + r["load"]["steal_cpu_seconds"])
                          / r["load"]["available_cpu_seconds"] for r in ok)}
                mongodump.update(md)
                mongodump["unverified"] = not all(r.get("verified") for r in ok)

        for s in summary:
            if s.get("others_fraction_max", 0) > LOAD_WARN:
                warnings.append("during a run of %s other processes and the VM host took %.0f%% "
                                "of the CPU: its MB/s are pessimistic" % (
                                    s["case"], 100 * s["others_fraction_max"]))
        if md and md["others_fraction_max"] > LOAD_WARN:
            warnings.append("during a mongodump run other processes took %.0f%% of the CPU"
                            % (100 * md["others_fraction_max"]))
        fo = sum(f["load"]["other_cpu_seconds"] + f["load"]["steal_cpu_seconds"]
                 for f in floors.values())
        fa = sum(f["load"]["available_cpu_seconds"] for f in floors.values())
        if fa and fo > LOAD_WARN * fa:
            warnings.append("while the floors were measured other processes took %.0f%% of "
                            "the CPU" % (100 * fo / fa))
        if quiet and not quiet["quiet"]:
            warnings.append("the machine never got quiet (load average %.2f, test suites "
                            "running); ran anyway" % quiet["loadavg1"])
        if warnings:
            warnings.append("the machine was not quiet: rerun for figures to rely on")

        machine["loadavg_at_end"] = os.getloadavg()
        rep = {
            "machine": machine,
            "settings": {"megabytes": a.megabytes, "repeats": a.repeats,
                         "floor_repeats": a.floor_repeats, "seed": a.seed,
                         "idle_wait": a.idle_wait, "idle_budget": a.idle_budget,
                         "floor_compile": floor_cmd, "block_size": "8M",
                         "upload_concurrency": 4, "member_size": MEMBER_SIZE,
                         "stream_chunk": bench.CHUNK},
            "quiet_wait": quiet,
            "idle_waits": env.get("idle_waits", []),
            "seeded": seeded[COLLECTION],
            "cases": summary,
            "runs": runs,
            "floors": floors,
            "zlib6_floor_key": zk,
            "floor_size_equals_blob": same,
            "mongodump": mongodump,
            "warnings": warnings,
            "problems": problems,
        }
        rep["targets"] = build_targets(summary, floors, md, zk)
        print_report(rep)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(rep, f, indent=2, default=str)
                f.write("\n")
            log("wrote %s" % a.json)
        if problems:
            rc = 1
            a.keep = True
    except BenchError as e:
        log(str(e))
        a.keep = True
        rc = 1
    except KeyboardInterrupt as e:
        log("interrupted (%s)" % (e or "SIGINT"))
        rc = 130
    finally:
        for s in servers:
            s.stop()
        if a.keep:
            log("work directory kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
