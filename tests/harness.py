"""harness.py - shared support for the Python integration tests.

What it provides (stdlib unittest + Debian's python3-pymongo and
python3-azure-storage; run with /usr/bin/python3):

  * where the build is: MAB_BUILDDIR (automake build dir; programs under
    src/), MAB_SRCDIR (default: the parent of tests/);
  * Azurite (blob only, in memory) started from tests/azurite/node_modules,
    one per test module, stopped by pid whatever happens;
  * MongoDB: the server named by MAB_TEST_MONGODB_URI, or tests/fake_mongod.py
    started per module; a unique database per test;
  * seeding through the wire protocol only (pymongo insert_many /
    create_index), deterministic document generators, raw read-back in
    $natural order;
  * write_config() for the daemon, run_backup() / start_backup() to run
    `mongo-azure-backupd -c CONF --once`, and /proc helpers to find its
    children;
  * the Azure side read with Microsoft's SDK only;
  * after every test: no process started by the test may be left alive.

A test module ends with `harness.main()`, which exits 0 (pass), 1 (fail) or
77 (skipped: prerequisites missing, or every test skipped), as automake's
test driver expects.
"""

import atexit
import base64
import ctypes
import datetime
import faulthandler
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid

SKIP = 77

# --------------------------------------------------------------------------
# Locations

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.abspath(os.environ.get("MAB_SRCDIR") or os.path.dirname(TESTS_DIR))
BUILDDIR = os.path.abspath(os.environ.get("MAB_BUILDDIR") or SRCDIR)
PROGDIR = os.path.join(BUILDDIR, "src")

AZURITE_DIR = os.path.join(SRCDIR, "tests", "azurite")
AZURITE_MAIN = os.path.join(AZURITE_DIR, "node_modules", "azurite", "dist",
                            "src", "blob", "main.js")
FAKE_MONGOD = os.path.join(SRCDIR, "tests", "fake_mongod.py")

DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
           "K1SZFPTOtr/KBHBeksoGMGw==")

CHILD_PROGRAMS = ("export-collection", "upload-blob", "download-blob",
                  "import-collection", "verify-set", "prune-sets")


def program(name):
    """Path of a built program (daemon, ctl or helper)."""
    return os.path.join(PROGDIR, name)


DAEMON = program("mongo-azure-backupd")
CTL = program("mongo-azure-backupctl")
# One request on a control socket from another process (run it with
# sys.executable -I -c PEER_CLIENT SOCKET LINE, as some user): prints the
# reply, or "CONNECT-ERROR why".
PEER_CLIENT = r'''
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
except OSError as e:
    sys.stdout.write("CONNECT-ERROR %s\n" % e)
    sys.exit(0)
s.sendall(sys.argv[2].encode() + b"\n")
data = b""
while True:
    try:
        b = s.recv(65536)
    except ConnectionResetError:
        break
    if not b:
        break
    data += b
sys.stdout.write(data.decode("utf-8", "replace"))
'''


def syslog_listening():
    """Whether a syslog daemon accepts on /dev/log (Debian 12 installs none)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.connect("/dev/log")
        return True
    except OSError:
        return False
    finally:
        s.close()


HELPERS = ("export-collection", "upload-blob", "download-blob", "import-collection",
           "prune-sets", "verify-set")


def programs_for_others(names=("mongo-azure-backupctl",) + HELPERS):
    """A directory every user can reach holding copies of the named built
    programs, for tests that run them as another user: the build directory
    may not be searchable by others (a checkout under /root, mode 0700).
    Our programs link only system shared libraries, so a copy runs as is.
    Made once per module, under ENV["tmp"] (made searchable, 0711)."""
    cached = ENV.get("programs_for_others")
    if cached and all(os.path.exists(os.path.join(cached, n)) for n in names):
        return cached
    os.chmod(ENV["tmp"], 0o711)
    d = os.path.join(ENV["tmp"], "programs")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    for name in names:
        dst = os.path.join(d, name)
        shutil.copy(program(name), dst + ".tmp")
        os.chmod(dst + ".tmp", 0o755)
        os.rename(dst + ".tmp", dst)
    ENV["programs_for_others"] = d
    return d

def recording_helpers(tmpdir):
    """A libexec dir (for MAB_LIBEXECDIR) whose helpers append their argv
    ("name [arg] [arg]") and environment to two files, then exec the real
    ones: (dir, argv log path, env log path).  A collection's export and
    upload start together: each wrapper writes under a lock, else their
    lines interleave (seen: "upload-blobexport-collection [-c] [-c] ...")."""
    d = os.path.join(tmpdir, "libexec")
    os.makedirs(d)
    logp = os.path.join(tmpdir, "argv.log")
    envp = os.path.join(tmpdir, "env.log")
    lockp = os.path.join(tmpdir, "record.lock")
    for name in CHILD_PROGRAMS:
        real = program(name)
        if not os.path.exists(real):
            continue
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write('#!/bin/sh\n'
                    '(\n'
                    '  flock 9 || exit 1\n'
                    '  line="%s"\n'
                    '  for a in "$@"; do line="$line [$a]"; done\n'
                    '  printf "%%s\\n" "$line" >> "%s"\n'
                    '  env >> "%s"\n'
                    ') 9>> "%s" || exit 1\n'
                    'exec "%s" "$@"\n' % (name, logp, envp, lockp, real))
        os.chmod(path, 0o755)
    return d, logp, envp


# Seconds a whole test module may take before the watchdog kills everything.
MODULE_TIMEOUT = int(os.environ.get("MAB_TEST_MODULE_TIMEOUT", "280"))


def connection_string(port, account=DEV_ACCOUNT, key=DEV_KEY, host="127.0.0.1"):
    return ("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;"
            "BlobEndpoint=http://%s:%d/%s;" % (account, key, host, port, account))


def utc_today():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def data_blob_name(coll, date):
    return "backups/%s/tralivali_%s.bson.gz" % (date, coll)


def metadata_blob_name(coll, date):
    return "backups/%s/tralivali_%s.metadata.json.gz" % (date, coll)


def manifest_blob_name(date):
    return "backups/%s/manifest.json" % date


def unique_name(prefix):
    """Lowercase letters and digits only: valid as container and db name."""
    return prefix + uuid.uuid4().hex[:16]


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------
# Process bookkeeping.  The test process is made a child subreaper, so
# anything our children leave behind (grandchildren of a daemon that exited)
# is re-parented to us and can be found and killed.

_PR_SET_CHILD_SUBREAPER = 36
_registered = []          # long-lived servers: Popen objects, killed at exit
_registered_lock = threading.Lock()


def _become_subreaper():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except OSError:
        pass


def counters_files():
    """libmongoc's /dev/shm/mongoc-PID files as they are now, by name, with
    what tells a new file from an old one of the same name (a pid reused:
    earlier runs on this machine may have left some)."""
    found = {}
    try:
        names = os.listdir("/dev/shm")
    except FileNotFoundError:
        return found
    for name in names:
        if name.startswith("mongoc-"):
            try:
                st = os.stat(os.path.join("/dev/shm", name))
            except FileNotFoundError:
                continue
            found[name] = (st.st_ino, st.st_mtime_ns)
    return found


def left_counters_file(pid, before):
    """True when /dev/shm/mongoc-PID is there now and was not, as it is,
    in the snapshot 'before' (from counters_files())."""
    name = "mongoc-%d" % pid
    now = counters_files()
    return name in now and before.get(name) != now[name]


def proc_stat(pid):
    """(ppid, state, comm) of pid, or None when gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    lpar, rpar = data.find("("), data.rfind(")")
    comm = data[lpar + 1:rpar]
    rest = data[rpar + 2:].split()
    return int(rest[1]), rest[0], comm


def proc_cmdline(pid):
    """argv of pid as a list of str (empty for zombies / gone)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0")[:-1]]


def proc_environ(pid):
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def process_tree():
    """{pid: (ppid, state, comm)} for every visible process."""
    tree = {}
    for pid in all_pids():
        st = proc_stat(pid)
        if st is not None:
            tree[pid] = st
    return tree


def descendants(root, tree=None):
    """Pids below root (not root itself)."""
    tree = tree if tree is not None else process_tree()
    children = {}
    for pid, (ppid, _state, _comm) in tree.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def program_name(pid):
    """Base name of argv[0] (comm is cut at 15 characters)."""
    argv = proc_cmdline(pid)
    if argv:
        return os.path.basename(argv[0])
    st = proc_stat(pid)
    return st[2] if st else ""


def _server_pids():
    """Our long-lived servers and everything below them."""
    keep = set()
    tree = process_tree()
    with _registered_lock:
        servers = [p.pid for p in _registered if p.poll() is None]
    for pid in servers:
        keep.add(pid)
        keep.update(descendants(pid, tree))
    return keep


_tracked_pids = set()    # our own Popen children: never reaped behind Popen's back


def _reap_orphans(exclude=()):
    """Reap zombies re-parented to us (we are a subreaper)."""
    me = os.getpid()
    with _registered_lock:
        skip = set(exclude) | _tracked_pids | {p.pid for p in _registered}
    for pid, (ppid, state, _c) in process_tree().items():
        if ppid == me and state == "Z" and pid not in skip:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def stray_processes(exclude=()):
    """Live processes below the test process that are not our servers and
    not in exclude: [(pid, argv)]."""
    keep = _server_pids() | set(exclude)
    tree = process_tree()
    out = []
    for pid in descendants(os.getpid(), tree):
        if pid in keep or tree[pid][1] == "Z":
            continue
        out.append((pid, proc_cmdline(pid) or [tree[pid][2]]))
    return out


def kill_tree(pid, grace=3.0):
    """SIGTERM pid and its descendants, SIGKILL what is left after grace."""
    pids = [pid] + descendants(pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            alive = [p for p in pids
                     if proc_stat(p) is not None and proc_stat(p)[1] != "Z"]
            if not alive:
                return
            time.sleep(0.05)


def _stop_popen(p, grace=5.0):
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        try:
            p.terminate()
        except ProcessLookupError:
            pass
    try:
        p.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            p.kill()
        p.wait(5)


def register(p):
    with _registered_lock:
        _registered.append(p)


def unregister(p):
    with _registered_lock:
        if p in _registered:
            _registered.remove(p)


def cleanup_everything():
    """Kill every process we started: servers and anything below us."""
    with _registered_lock:
        servers = list(_registered)
    for pid, _argv in stray_processes():
        kill_tree(pid, grace=1.0)
    for p in servers:
        try:
            _stop_popen(p)
        except Exception:
            pass
        unregister(p)
    _reap_orphans()


def _on_signal(signum, _frame):
    # Turn SIGTERM/SIGHUP into an exception: finally blocks, tearDownModule
    # and atexit still run, so no server is orphaned.
    raise KeyboardInterrupt("signal %d" % signum)


def _watchdog_fire():
    sys.stderr.write("\n*** test module exceeded %d s: killing everything\n"
                     % MODULE_TIMEOUT)
    faulthandler.dump_traceback(all_threads=True)
    try:
        cleanup_everything()
    finally:
        os._exit(1)


# --------------------------------------------------------------------------
# Servers


class ServerError(Exception):
    pass


def _wait_for_line(path, pattern, proc, timeout, what):
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, "r", errors="replace") as f:
                text = f.read()
        except OSError:
            text = ""
        m = rx.search(text)
        if m:
            return m
        if proc.poll() is not None:
            raise ServerError("%s exited with %s before it was ready:\n%s"
                              % (what, proc.returncode, text))
        time.sleep(0.05)
    raise ServerError("%s not ready after %s s:\n%s" % (what, timeout, text))


class Azurite:
    """Azurite blob service on 127.0.0.1:<random port>, in memory."""

    def __init__(self):
        self.proc = None
        self.port = None
        self.dir = None

    @staticmethod
    def available():
        if shutil.which("node") is None:
            return "node is not installed"
        if not os.path.exists(AZURITE_MAIN):
            return ("Azurite is not installed (%s missing): run "
                    "`npm ci --prefix tests/azurite`" % AZURITE_MAIN)
        return None

    def start(self, timeout=30):
        self.dir = tempfile.mkdtemp(prefix="mab-azurite-")
        out = os.path.join(self.dir, "azurite.out")
        # --location cannot be combined with --inMemoryPersistence; run in
        # a private directory instead so nothing lands in the tree.
        with open(out, "wb") as f:
            self.proc = subprocess.Popen(
                ["node", AZURITE_MAIN, "--blobHost", "127.0.0.1",
                 "--blobPort", "0", "--inMemoryPersistence", "--silent",
                 "--disableTelemetry"],
                cwd=self.dir, stdin=subprocess.DEVNULL, stdout=f,
                stderr=subprocess.STDOUT, start_new_session=True)
        register(self.proc)
        m = _wait_for_line(out, r"listens on http://127\.0\.0\.1:(\d+)",
                           self.proc, timeout, "Azurite")
        self.port = int(m.group(1))
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(
                    "http://127.0.0.1:%d/%s?comp=list" % (self.port, DEV_ACCOUNT),
                    timeout=2)
                break
            except urllib.error.HTTPError:
                break          # any HTTP answer (403 unsigned) means it is up
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise ServerError("Azurite does not answer on port %d"
                                      % self.port)
                time.sleep(0.1)
        return self

    @property
    def connection_string(self):
        return connection_string(self.port)

    def stop(self):
        if self.proc is not None:
            _stop_popen(self.proc)
            unregister(self.proc)
            self.proc = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


class Mongo:
    """The MongoDB side: a real server (MAB_TEST_MONGODB_URI) or the fake."""

    def __init__(self):
        self.real_uri = os.environ.get("MAB_TEST_MONGODB_URI") or None
        self.proc = None
        self.port = None
        self.dir = None
        self._client = None

    @property
    def is_fake(self):
        return self.real_uri is None

    @property
    def supports_faults(self):
        return self.is_fake

    @staticmethod
    def available():
        try:
            import pymongo  # noqa: F401
            import bson  # noqa: F401
        except ImportError as e:
            return "python3-pymongo is not importable (%s); use /usr/bin/python3" % e
        if not os.environ.get("MAB_TEST_MONGODB_URI") and not os.path.exists(FAKE_MONGOD):
            return "%s is missing and MAB_TEST_MONGODB_URI is not set" % FAKE_MONGOD
        return None

    def start(self, timeout=30):
        if self.real_uri:
            self.uri = self.real_uri
            return self
        self.dir = tempfile.mkdtemp(prefix="mab-fake-mongod-")
        out = os.path.join(self.dir, "fake_mongod.out")
        with open(out, "wb") as f:
            self.proc = subprocess.Popen(
                [sys.executable, FAKE_MONGOD, "--port", "0"],
                cwd=self.dir, stdin=subprocess.DEVNULL, stdout=f,
                stderr=subprocess.STDOUT, start_new_session=True)
        register(self.proc)
        m = _wait_for_line(out, r"listening 127\.0\.0\.1:(\d+)", self.proc,
                           timeout, "fake_mongod.py")
        self.port = int(m.group(1))
        self.uri = "mongodb://127.0.0.1:%d/" % self.port
        return self

    def uri_with_credentials(self, user, password):
        """self.uri with user:password@ inserted."""
        m = re.match(r"^(mongodb(?:\+srv)?://)(?:[^@/]*@)?(.*)$", self.uri)
        return "%s%s:%s@%s" % (m.group(1), user, password, m.group(2))

    def client(self):
        import pymongo
        if self._client is None:
            self._client = pymongo.MongoClient(
                self.uri, serverSelectionTimeoutMS=10000, connect=True)
        return self._client

    def output(self):
        if not self.dir:
            return ""
        try:
            with open(os.path.join(self.dir, "fake_mongod.out"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # Fault injection (fake only).
    def fault(self, **kw):
        cmd = {"fakeFault": 1}
        cmd.update(kw)
        return self.client().admin.command(cmd)

    def clear_faults(self):
        if self.supports_faults and self.proc is not None and self.proc.poll() is None:
            return self.client().admin.command({"fakeFault": 1, "clear": True})

    def stats(self):
        return self.client().admin.command({"fakeStats": 1})

    def drop_database(self, name):
        try:
            self.client().drop_database(name)
        except Exception:
            pass

    def stop(self):
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                pass
            self._client = None
        if self.proc is not None:
            _stop_popen(self.proc)
            unregister(self.proc)
            self.proc = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


# --------------------------------------------------------------------------
# Module environment (one Azurite + one MongoDB per test module)

ENV = {"azurite": None, "mongo": None, "tmp": None}


def setup_module_env():
    """Call from setUpModule()."""
    _become_subreaper()
    for why in (Azurite.available(), Mongo.available(), build_available()):
        if why:
            raise unittest.SkipTest(why)
    ENV["tmp"] = tempfile.mkdtemp(prefix="mab-tests-")
    try:
        ENV["azurite"] = Azurite().start()
        ENV["mongo"] = Mongo().start()
    except BaseException:
        teardown_module_env()
        raise


def _stop_servers(keys):
    """Stops the servers ENV holds under keys, reporting (not raising) a
    failure, so one that cannot stop does not keep the others running."""
    for key in keys:
        srv = ENV.get(key)
        if srv is not None:
            try:
                srv.stop()
            except Exception as e:
                sys.stderr.write("stopping %s: %s\n" % (key, e))
            ENV[key] = None


def teardown_module_env():
    """Call from tearDownModule() (also runs from atexit)."""
    _stop_servers(("mongo", "azurite"))
    if ENV.get("tmp") and not os.environ.get("MAB_KEEP_TMP"):
        shutil.rmtree(ENV["tmp"], ignore_errors=True)
    ENV["tmp"] = None
    cleanup_everything()


def build_available():
    # Only the daemon: a missing helper makes the tests that need it fail.
    missing = [p for p in (DAEMON,) if not os.access(p, os.X_OK)]
    if missing:
        hint = "" if os.environ.get("MAB_BUILDDIR") else " (set MAB_BUILDDIR to the build directory)"
        return "programs not built: %s%s" % (", ".join(missing), hint)
    return None


# --------------------------------------------------------------------------
# Test data

FIRST = ["Ana", "Bojan", "Chiara", "Dmitri", "Eun-ji", "Farah", "Goran",
         "Hana", "Ivo", "Jelena", "Kwame", "Lucía", "Marko", "Nadia", "Oskar",
         "Petra", "Quentin", "Rada", "Søren", "Tamara", "Uroš", "Vesna",
         "Wei", "Xenia", "Yusuf", "Zoë"]
LAST = ["Horvat", "Kovačević", "Novak", "Müller", "García", "Nguyen",
        "O'Brien", "Petrović", "Rossi", "Smith", "Tanaka", "Ivanova",
        "Jovanović", "Dubois", "Andersen", "Kowalski"]
CITIES = ["Beograd", "Zagreb", "Ljubljana", "Sarajevo", "Skopje", "Podgorica",
          "Novi Sad", "Split", "Niš", "Maribor", "Wien", "München"]
WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do "
         "eiusmod tempor incididunt ut labore et dolore magna aliqua enim ad "
         "minim veniam quis nostrud exercitation ullamco laboris nisi aliquip "
         "ex ea commodo consequat duis aute irure in reprehenderit voluptate "
         "velit esse cillum fugiat nulla pariatur excepteur sint occaecat "
         "cupidatat non proident sunt culpa qui officia deserunt mollit anim "
         "id est laborum").split()
TAGS = ["admin", "beta", "mobile", "web", "premium", "trial", "verified",
        "muted", "archived", "moderator", "bot", "guest"]

_EPOCH = datetime.datetime(1970, 1, 1)


def _object_id(rng, ts):
    from bson.objectid import ObjectId
    return ObjectId(ts.to_bytes(4, "big") + rng.getrandbits(64).to_bytes(8, "big"))


def gen_users(n, seed=1, start=0):
    """Yield n realistic user documents (~0.5-1 KB each), deterministic from
    seed; start lets a caller generate in chunks (same seed, later start)."""
    from bson.int64 import Int64
    base_ts = 1600000000
    for i in range(start, start + n):
        rng = random.Random(seed * 1000003 + i)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        created = _EPOCH + datetime.timedelta(
            milliseconds=(base_ts + i * 37) * 1000 + rng.randrange(1000))
        n_words = rng.randrange(8, 70)
        doc = {
            "_id": _object_id(rng, base_ts + i),
            "seq": i,
            "username": "%s.%s%d" % (first.lower(), last.lower(), i),
            "displayName": "%s %s" % (first, last),
            "email": "%s.%s.%d@example.%s" % (first.lower(), last.lower(), i,
                                             rng.choice(["com", "org", "rs", "hr"])),
            "age": rng.randrange(16, 90),
            "balance": round(rng.uniform(-500, 50000), 2),
            "messagesSent": Int64(rng.getrandbits(40)),
            "active": rng.random() < 0.8,
            "createdAt": created,
            "lastLogin": (created + datetime.timedelta(seconds=rng.randrange(10**7))
                          if rng.random() < 0.9 else None),
            "address": {
                "street": "%s %d" % (rng.choice(WORDS).title(), rng.randrange(1, 300)),
                "city": rng.choice(CITIES),
                "zip": "%05d" % rng.randrange(100000),
                "geo": {"lat": rng.uniform(-90, 90), "lon": rng.uniform(-180, 180)},
            },
            "tags": rng.sample(TAGS, rng.randrange(0, 5)),
            "scores": [rng.randrange(1000) for _ in range(rng.randrange(0, 8))],
            "settings": {"theme": rng.choice(["dark", "light", "system"]),
                         "notifications": {"email": rng.random() < 0.5,
                                           "push": rng.random() < 0.5},
                         "language": rng.choice(["sr", "hr", "en", "de", "sl"])},
            "bio": " ".join(rng.choice(WORDS) for _ in range(n_words)),
        }
        yield doc


def every_type_document():
    """One document holding every BSON type pymongo can write."""
    from bson.binary import Binary
    from bson.code import Code
    from bson.dbref import DBRef
    from bson.decimal128 import Decimal128
    from bson.int64 import Int64
    from bson.max_key import MaxKey
    from bson.min_key import MinKey
    from bson.objectid import ObjectId
    from bson.regex import Regex
    from bson.son import SON
    from bson.timestamp import Timestamp
    return SON([
        ("_id", ObjectId("5f5e100000000000000000a1")),
        ("double", 3.141592653589793),
        ("double_neg_zero", -0.0),
        ("double_inf", float("inf")),
        ("double_nan", float("nan")),
        ("string", "plain ascii"),
        ("string_utf8", "ćčšđž ЖЯ 日本語 🐘"),
        ("string_empty", ""),
        ("string_nul", "before\x00after"),
        ("document", SON([("a", 1), ("b", SON([("c", "deep")]))])),
        ("document_empty", {}),
        ("array", [1, "two", 3.0, [4], {"five": 5}, None]),
        ("array_empty", []),
        ("binary_generic", Binary(b"\x00\x01\x02\xffbinary", 0)),
        ("binary_uuid", Binary(uuid.UUID("0123456789abcdef0123456789abcdef").bytes, 4)),
        ("binary_md5", Binary(hashlib.md5(b"x").digest(), 5)),
        ("binary_user", Binary(b"user-defined", 0x80)),
        ("binary_empty", Binary(b"", 0)),
        ("objectid", ObjectId("000102030405060708090a0b")),
        ("bool_true", True),
        ("bool_false", False),
        ("datetime", datetime.datetime(2024, 2, 29, 12, 34, 56, 789000)),
        ("datetime_epoch", datetime.datetime(1970, 1, 1)),
        ("datetime_before_1970", datetime.datetime(1969, 7, 20, 20, 17, 40)),
        ("datetime_1900", datetime.datetime(1900, 1, 1)),
        ("null", None),
        ("regex", Regex(r"^ab+c.*\d$", "imsx")),
        ("code", Code("function () { return 42; }")),
        ("code_with_scope", Code("function () { return x + y; }", {"x": 1, "y": "z"})),
        ("int32", 2147483647),
        ("int32_min", -2147483648),
        ("timestamp", Timestamp(1700000000, 7)),
        ("int64", Int64(9223372036854775807)),
        ("int64_small", Int64(1)),
        ("decimal128", Decimal128("1234567890.123456789012345678901234")),
        ("decimal128_nan", Decimal128("NaN")),
        ("decimal128_neg_inf", Decimal128("-Infinity")),
        ("minkey", MinKey()),
        ("maxkey", MaxKey()),
        ("dbref", DBRef("users", ObjectId("5f5e100000000000000000a2"), "otherdb")),
    ])


def seed_users(db, coll, n, seed=1, chunk=5000):
    """Insert n generated users (through the wire protocol)."""
    done = 0
    while done < n:
        k = min(chunk, n - done)
        db[coll].insert_many(list(gen_users(k, seed=seed, start=done)), ordered=True)
        done += k


def create_empty_collection(db, coll):
    db.create_collection(coll)


def read_raw(db, coll):
    """(concatenated raw BSON of every document in $natural order, count)."""
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument
    c = db.get_collection(coll, codec_options=CodecOptions(document_class=RawBSONDocument))
    parts = [d.raw for d in c.find({}).hint([("$natural", 1)])]
    return b"".join(parts), len(parts)


def split_bson(data):
    """Split concatenated BSON into a list of document byte strings (raises
    ValueError when the stream is not a whole number of documents)."""
    out, off = [], 0
    while off < len(data):
        if len(data) - off < 5:
            raise ValueError("trailing %d bytes at offset %d" % (len(data) - off, off))
        n = int.from_bytes(data[off:off + 4], "little")
        if n < 5 or off + n > len(data) or data[off + n - 1] != 0:
            raise ValueError("bad document length %d at offset %d" % (n, off))
        out.append(data[off:off + n])
        off += n
    return out


def describe_bson_difference(got, want):
    """Human-readable first difference between two BSON streams."""
    if got == want:
        return "identical"
    try:
        g, w = split_bson(got), split_bson(want)
    except ValueError as e:
        return "backup is not a valid BSON stream: %s (len %d vs %d)" % (e, len(got), len(want))
    for i, (a, b) in enumerate(zip(g, w)):
        if a != b:
            return "document %d differs: got %r... want %r..." % (i, a[:80], b[:80])
    return "document count differs: got %d, want %d" % (len(g), len(w))


# --------------------------------------------------------------------------
# Configuration

def _format_value(v):
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return str(v)


def write_config(tmpdir, **overrides):
    """Write TMPDIR/mab.conf and return its path.

    Overrides:
      mongo_uri=, database=, container=, connection_string= (the secret
        written to TMPDIR/conn with mode 0600), collections=;
      SECTION={key: value or None (removes the key)}, e.g.
        limits={"export_retries": 0};
      SECTION__KEY=value, e.g. limits__export_retries=0;
      raw="text appended verbatim" (for deliberate mistakes).
    """
    az, mg = ENV.get("azurite"), ENV.get("mongo")
    os.makedirs(tmpdir, exist_ok=True)
    cs = overrides.pop("connection_string", None)
    if cs is None:
        cs = az.connection_string if az else connection_string(10000)
    conn_path = os.path.join(tmpdir, "conn")
    fd = os.open(conn_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(cs + "\n")
    os.chmod(conn_path, 0o600)
    state = os.path.join(tmpdir, "state")
    os.makedirs(state, mode=0o700, exist_ok=True)

    sections = {
        "mongodb": {
            "uri": overrides.pop("mongo_uri", None) or (mg.uri if mg else "mongodb://127.0.0.1:27017/"),
            "database": overrides.pop("database", "tralivali"),
            "collections": overrides.pop("collections", "users, empty, types"),
        },
        "azure": {
            "connection_string_file": conn_path,
            "container": overrides.pop("container", None) or unique_name("mab"),
            # The tests name blobs as the seed's one-database layout did
            # (tralivali_ whatever the database); the multi-database tests
            # take the default, {database}_{collection}.
            "blob_path": "backups/{date}/tralivali_{collection}.bson.gz",
            "max_retries": 2,
        },
        "limits": {"parallel": 2},
        "state": {"dir": state},
        "control": {"socket": os.path.join(tmpdir, "control.sock")},
        "daemon": {"pid_file": os.path.join(tmpdir, "mongo-azure-backupd.pid")},
        "log": {"target": "stderr", "level": "info"},
    }
    raw = overrides.pop("raw", "")
    for key, value in list(overrides.items()):
        if "__" in key:
            sec, k = key.split("__", 1)
            sections.setdefault(sec, {})[k] = value
        elif isinstance(value, dict):
            sec = sections.setdefault(key, {})
            sec.update(value)
        else:
            raise TypeError("write_config: unknown override %r" % key)
    lines = ["# written by tests/harness.py"]
    for sec, kv in sections.items():
        kv = {k: v for k, v in kv.items() if v is not None}
        if not kv:
            continue
        lines.append("")
        lines.append("[%s]" % sec)
        for k, v in kv.items():
            lines.append("%s = %s" % (k, _format_value(v)))
    text = "\n".join(lines) + "\n" + (raw if raw else "")
    path = os.path.join(tmpdir, "mab.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def read_config_value(path, section, key):
    """Tiny INI reader for what write_config wrote."""
    sec = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                sec = line[1:-1]
            elif "=" in line and sec == section:
                k, v = line.split("=", 1)
                if k.strip() == key:
                    return v.strip()
    return None


# --------------------------------------------------------------------------
# Running the daemon

def daemon_env(extra=None):
    env = dict(os.environ)
    for k in ("AZURE_STORAGE_CONNECTION_STRING", "MONGODB_URI"):
        env.pop(k, None)
    env["MAB_LIBEXECDIR"] = PROGDIR
    env["LC_ALL"] = "C"
    if extra:
        env.update(extra)
    return env


class BackupRun:
    """A running `mongo-azure-backupd -c CONF --once` (or other args)."""

    def __init__(self, conf, args=None, env=None, workdir=None):
        self.conf = conf
        workdir = workdir or os.path.dirname(conf)
        fd, self.stderr_path = tempfile.mkstemp(prefix="daemon-", suffix=".log", dir=workdir)
        self.argv = [DAEMON, "-c", conf] + (list(args) if args is not None else ["--once"])
        self.started = time.monotonic()
        with os.fdopen(fd, "wb") as errf:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=errf, stderr=errf,
                                         env=daemon_env(env), cwd=workdir)
        self.pid = self.proc.pid
        with _registered_lock:
            _tracked_pids.add(self.pid)
        self.elapsed = None

    def log(self):
        with open(self.stderr_path, "r", errors="replace") as f:
            return f.read()

    def children(self, names=("export-collection", "upload-blob")):
        """[(pid, name, argv)] of live processes below the daemon whose
        argv[0] is one of names."""
        out = []
        tree = process_tree()
        for pid in descendants(self.pid, tree):
            if tree[pid][1] == "Z":
                continue
            argv = proc_cmdline(pid)
            name = os.path.basename(argv[0]) if argv else tree[pid][2]
            if name in names:
                out.append((pid, name, argv))
        return out

    def wait_for_child(self, name, pred=None, timeout=30):
        """Wait until a live child `name` (argv[0] base name) exists below
        the daemon and, when given, pred(argv) is true; returns its pid."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pid, n, argv in self.children((name,)):
                if pred is None or pred(argv):
                    return pid
            if self.proc.poll() is not None:
                raise AssertionError("daemon exited (%s) before the %s child started:\n%s"
                                     % (self.proc.returncode, name, self.log()))
            time.sleep(0.02)
        raise AssertionError("no matching %s child after %s s; children: %r\n%s"
                             % (name, timeout, self.children(), self.log()))

    def wait(self, timeout=120):
        """(exit code, stderr text, elapsed seconds); kills on timeout and
        raises AssertionError."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_tree(self.pid)
            self.proc.wait(10)
            raise AssertionError("daemon did not finish within %s s; log:\n%s"
                                 % (timeout, self.log()))
        self.elapsed = time.monotonic() - self.started
        return rc, self.log(), self.elapsed

    def kill(self):
        if self.proc.poll() is None:
            kill_tree(self.pid)
            self.proc.wait(10)


def is_data_export(coll):
    """pred for wait_for_child: the export-collection streaming coll's data."""
    return lambda argv: coll in argv[1:] and "--metadata" not in argv


def is_data_upload(coll, prefix="tralivali"):
    """pred for wait_for_child: the upload-blob writing coll's data blob
    (PREFIX_COLL.bson.gz: tralivali_ as write_config's blob_path names
    them, the database with the default blob_path)."""
    suffix = "%s_%s.bson.gz" % (prefix, coll)
    return lambda argv: any(a.endswith(suffix) for a in argv[1:])


def start_backup(conf, args=None, env=None):
    return BackupRun(conf, args=args, env=env)


def run_backup(conf, timeout=120, args=None, env=None):
    """Run the daemon to completion: (exit code, stderr text, elapsed s)."""
    return BackupRun(conf, args=args, env=env).wait(timeout)


def run_program(argv, timeout=60, env=None, input=None):
    """Run any program: (exit code, stdout bytes, stderr text, elapsed)."""
    t0 = time.monotonic()
    p = subprocess.run(argv, input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=daemon_env(env))
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"), time.monotonic() - t0


# --------------------------------------------------------------------------
# Azure side (Microsoft's SDK only)

class Blobs:
    def __init__(self, container, conn=None):
        from azure.storage.blob import BlobServiceClient
        self.conn = conn or ENV["azurite"].connection_string
        self.service = BlobServiceClient.from_connection_string(self.conn)
        self.container_name = container
        self.container = self.service.get_container_client(container)

    def create_container(self):
        self.container.create_container()

    def exists(self):
        from azure.core.exceptions import ResourceNotFoundError
        try:
            self.container.get_container_properties()
            return True
        except ResourceNotFoundError:
            return False

    def names(self, prefix=""):
        from azure.core.exceptions import ResourceNotFoundError
        try:
            return sorted(b.name for b in self.container.list_blobs(name_starts_with=prefix))
        except ResourceNotFoundError:
            return []

    def download(self, name):
        return self.container.get_blob_client(name).download_blob().readall()

    def properties(self, name):
        return self.container.get_blob_client(name).get_blob_properties()

    def upload(self, name, data, metadata=None, content_type=None):
        from azure.storage.blob import ContentSettings
        cs = ContentSettings(content_type=content_type) if content_type else None
        self.container.get_blob_client(name).upload_blob(
            data, overwrite=True, metadata=metadata, content_settings=cs)


def sha256_hex(b):
    return hashlib.sha256(b).hexdigest()


def md5_b64(b):
    return base64.b64encode(hashlib.md5(b).digest()).decode()


# --------------------------------------------------------------------------
# Base class


class BackupTestCase(unittest.TestCase):
    """Per test: a temp dir, a fresh container, a unique database; afterwards
    the database is dropped, faults cleared and no process may be left."""

    maxDiff = 4000

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix=self._testMethodName[:40] + "-", dir=ENV["tmp"])
        self.container = unique_name("mab")
        self.database = unique_name("db")
        self.mongo = ENV["mongo"]
        self.azurite = ENV["azurite"]
        self.db = self.mongo.client()[self.database]
        self.blobs = Blobs(self.container)
        self.runs = []
        self.addCleanup(self._after_test)

    def _after_test(self):
        problems = []
        for r in self.runs:
            if r.proc.poll() is None:
                problems.append("daemon %d still running" % r.pid)
                r.kill()
        # Give children a moment to finish exiting after their parent.
        deadline = time.monotonic() + 3
        left = stray_processes()
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            _reap_orphans()
            left = stray_processes()
        for pid, argv in left:
            problems.append("left running: pid %d %s" % (pid, " ".join(argv)))
            kill_tree(pid, grace=1)
        _reap_orphans()
        try:
            if self.mongo.supports_faults:
                self.mongo.clear_faults()
        except Exception as e:
            problems.append("clearing faults failed: %s" % e)
        self.mongo.drop_database(self.database)
        if not os.environ.get("MAB_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        if problems:
            self.fail("after the test: " + "; ".join(problems))

    # helpers ------------------------------------------------------------
    def write_config(self, **overrides):
        overrides.setdefault("database", self.database)
        overrides.setdefault("container", self.container)
        return write_config(self.tmp, **overrides)

    def start_backup(self, conf, args=None, env=None):
        r = start_backup(conf, args=args, env=env)
        self.runs.append(r)
        return r

    def run_backup(self, conf, timeout=120, args=None, env=None):
        r = self.start_backup(conf, args=args, env=env)
        return r.wait(timeout)

    def require_faults(self):
        if not self.mongo.supports_faults:
            self.skipTest("needs fault injection (fakeFault), which only "
                          "tests/fake_mongod.py has; MAB_TEST_MONGODB_URI is set")

    def assertExit(self, rc, want, log):
        self.assertEqual(rc, want, "exit code %s, expected %s; daemon log:\n%s"
                         % (rc, want, log))

    def assertLogMatches(self, log, pattern, what):
        if not re.search(pattern, log, re.I | re.M):
            self.fail("log has no line %s (/%s/); log:\n%s" % (what, pattern, log))

    def today_candidates(self, before, after):
        return sorted({before, after})

    def find_data_blob(self, coll, dates):
        for d in dates:
            name = data_blob_name(coll, d)
            if name in self.blobs.names(name):
                return name, d
        return None, None


# --------------------------------------------------------------------------
# Bearer tokens: Azurite over HTTPS with --oauth basic, tests/token_server.py
# (IMDS, App Service, Entra ID) and tests/tls.py (a throwaway CA), for the
# tests of `[azure] auth = managed_identity | service_principal |
# workload_identity`.
#
#     def setUpModule():
#         h.setup_oauth_env()         # setup_module_env() + the three
#     def tearDownModule():
#         h.teardown_oauth_env()
#
#     class T(h.OAuthBackupTestCase):
#         def test_sp(self):
#             app = self.tokens.add_app(secret="s3cret")
#             conf = self.write_oauth_config("service_principal", client_id=app,
#                                            secret="s3cret")
#             rc, log, _ = self.run_backup(conf)
#
# Azurite (3.35) in this mode: a token must be a JWT with iss starting with
# https://sts.windows.net/ (or sts.chinacloudapi.cn, sts.microsoftonline.de,
# sts.windows-ppe.net), aud https://storage.azure.com[/], the Storage app id
# e406a681-f3d4-42a8-90b6-c2b029497af1 or https://devstoreaccount1.blob.core.
# windows.net[/] (not the local account URL), and nbf, iat and exp; its
# signature is not checked.  Expired, not yet valid, wrong issuer or audience:
# 403 AuthenticationFailed; no Authorization header at all: 403
# AuthorizationFailure; never 401, never a WWW-Authenticate challenge.

def _import_tls():
    if TESTS_DIR not in sys.path:
        sys.path.insert(0, TESTS_DIR)
    import tls
    return tls


def oauth_available():
    """Why the bearer-token tests cannot run, or None."""
    why = Azurite.available()
    if why:
        return why
    try:
        import cryptography  # noqa: F401
    except ImportError as e:
        return ("python3-cryptography is not importable (%s); use /usr/bin/python3 "
                "(sh tools/deps.sh installs it)" % e)
    return None


class AzuriteOAuth(Azurite):
    """Azurite blob service on https://127.0.0.1:<random port>, in memory,
    with `--oauth basic`: it takes bearer tokens as well as Shared Key.

    tls: a tests/tls.TLSMaterial whose server certificate Azurite serves
    (made, and removed at stop(), when not given); clients verify it with
    ca_file.  connection_string is Shared Key over HTTPS, for test setup
    through the SDK (pass connection_verify=ca_file; service_client() and
    blobs() do)."""

    def __init__(self, tls=None):
        super().__init__()
        self.tls = tls
        self._own_tls = tls is None

    @staticmethod
    def available():
        return oauth_available()

    def start(self, timeout=30):
        if self.tls is None:
            self.tls = _import_tls().TLSMaterial()
        self.dir = tempfile.mkdtemp(prefix="mab-azurite-oauth-")
        out = os.path.join(self.dir, "azurite.out")
        with open(out, "wb") as f:
            self.proc = subprocess.Popen(
                ["node", AZURITE_MAIN, "--blobHost", "127.0.0.1",
                 "--blobPort", "0", "--inMemoryPersistence", "--silent",
                 "--disableTelemetry", "--oauth", "basic",
                 "--cert", self.tls.cert_file, "--key", self.tls.key_file],
                cwd=self.dir, stdin=subprocess.DEVNULL, stdout=f,
                stderr=subprocess.STDOUT, start_new_session=True)
        register(self.proc)
        m = _wait_for_line(out, r"listens on https://127\.0\.0\.1:(\d+)",
                           self.proc, timeout, "Azurite (HTTPS, OAuth)")
        self.port = int(m.group(1))
        ctx = self.tls.client_context()
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen("%s?comp=list" % self.account_url, timeout=2,
                                       context=ctx)
                break
            except urllib.error.HTTPError:
                break          # any HTTP answer (403 unsigned) means it is up
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise ServerError("Azurite (HTTPS) does not answer on port %d"
                                      % self.port)
                time.sleep(0.1)
        return self

    @property
    def account_url(self):
        """https://127.0.0.1:PORT/devstoreaccount1 (the daemon's account_url)."""
        return "https://127.0.0.1:%d/%s" % (self.port, DEV_ACCOUNT)

    @property
    def connection_string(self):
        return ("DefaultEndpointsProtocol=https;AccountName=%s;AccountKey=%s;"
                "BlobEndpoint=%s;" % (DEV_ACCOUNT, DEV_KEY, self.account_url))

    @property
    def ca_file(self):
        return self.tls.ca_file

    def service_client(self, credential=None, retries=0):
        """A BlobServiceClient that verifies TLS with ca_file: Shared Key when
        credential is None, else a TokenCredential (anything with
        get_token()).  retries=0: the SDK does not retry on its own."""
        from azure.storage.blob import BlobServiceClient, LinearRetry
        pol = LinearRetry(backoff=0.1, random_jitter_range=0, retry_total=retries)
        if credential is None:
            return BlobServiceClient.from_connection_string(
                self.connection_string, connection_verify=self.ca_file, retry_policy=pol)
        return BlobServiceClient(self.account_url, credential=credential,
                                 connection_verify=self.ca_file, retry_policy=pol)

    def blobs(self, container):
        """A Blobs (the SDK helpers of the tests) on this Azurite."""
        return TLSBlobs(container, self)

    def stop(self):
        super().stop()
        if self._own_tls and self.tls is not None:
            self.tls.cleanup()
            self.tls = None


class TLSBlobs(Blobs):
    """Blobs on an AzuriteOAuth (Shared Key over HTTPS, TLS verified)."""

    def __init__(self, container, azurite):
        from azure.storage.blob import BlobServiceClient
        self.conn = azurite.connection_string
        self.service = BlobServiceClient.from_connection_string(
            self.conn, connection_verify=azurite.ca_file)
        self.container_name = container
        self.container = self.service.get_container_client(container)


class StaticTokenCredential:
    """The SDK's TokenCredential protocol around a token string (no
    azure-identity needed): get_token() returns it, whatever the scopes."""

    def __init__(self, token, expires_on=None):
        self.token = token
        self.expires_on = int(expires_on or time.time() + 3600)
        self.calls = 0

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken
        self.calls += 1
        return AccessToken(self.token, self.expires_on)


def _write_secret_file(tmpdir, name, text):
    path = os.path.join(tmpdir, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def entra_azure_section(tmpdir, auth, azurite, tokens, client_id=None, secret=None,
                        certificate_file=None, federated_token=None, tenant_id=None,
                        **extra):
    """The [azure] keys for write_config(azure=...) that make the daemon
    authenticate with a bearer token from tokens (a token_server.TokenServer)
    to azurite (an AzuriteOAuth).  connection_string_file is dropped.

      managed_identity    identity_endpoint = the IMDS token URL;
                          client_id only for a user-assigned identity
      service_principal   tenant_id, client_id, authority_host and
                          client_secret_file (secret, written 0600) or
                          client_certificate_file (certificate_file, e.g. a
                          tls.ClientCertificate's pem_file)
      workload_identity   tenant_id, client_id, authority_host and
                          federated_token_file (federated_token, written)
    Every kind gets account_url and ca_file; extra keys are added as is."""
    sec = {"connection_string_file": None, "auth": auth,
           "account_url": azurite.account_url, "ca_file": azurite.ca_file}
    if auth == "managed_identity":
        sec["identity_endpoint"] = tokens.imds_endpoint
        if client_id:
            sec["client_id"] = client_id
    elif auth in ("service_principal", "workload_identity"):
        sec.update({"tenant_id": tenant_id or tokens.tenant_id, "client_id": client_id,
                    "authority_host": tokens.authority_host})
        if auth == "service_principal":
            if secret is not None:
                sec["client_secret_file"] = _write_secret_file(tmpdir, "client-secret",
                                                               secret + "\n")
            if certificate_file is not None:
                sec["client_certificate_file"] = certificate_file
        elif federated_token is not None:
            sec["federated_token_file"] = _write_secret_file(tmpdir, "federated-token",
                                                             federated_token)
    else:
        raise ValueError("entra_azure_section: auth %r is not a bearer-token kind" % auth)
    sec.update(extra)
    return sec


def setup_oauth_env():
    """setUpModule() of a bearer-token test module: setup_module_env() (the
    plain Azurite, MongoDB), then one CA (ENV["tls"]), an AzuriteOAuth
    (ENV["azurite_oauth"]) and a TokenServer (ENV["token_server"])."""
    why = oauth_available()
    if why:
        raise unittest.SkipTest(why)
    setup_module_env()
    try:
        from token_server import TokenServer
        ENV["tls"] = _import_tls().TLSMaterial(os.path.join(ENV["tmp"], "tls"))
        ENV["azurite_oauth"] = AzuriteOAuth(ENV["tls"]).start()
        ENV["token_server"] = TokenServer(tls=ENV["tls"]).start()
    except BaseException:
        teardown_oauth_env()
        raise


def teardown_oauth_env():
    """tearDownModule() counterpart of setup_oauth_env()."""
    _stop_servers(("token_server", "azurite_oauth"))
    ENV["tls"] = None
    teardown_module_env()


class OAuthBackupTestCase(BackupTestCase):
    """BackupTestCase against the HTTPS Azurite with --oauth: self.azurite
    is the AzuriteOAuth, self.blobs reads it (Shared Key, TLS verified),
    self.tokens is the module's TokenServer, cleared (faults, counters,
    lifetime 3600 s) before every test."""

    def setUp(self):
        super().setUp()
        self.azurite = ENV["azurite_oauth"]
        self.blobs = TLSBlobs(self.container, self.azurite)
        self.tokens = ENV["token_server"]
        self.tokens.clear(stats=True)
        self.tokens.set_lifetime(3600)
        for kind in ("imds", "app_service", "entra"):
            self.tokens.set_lifetime(3600, kind)
        self.addCleanup(self.tokens.clear)

    def write_oauth_config(self, auth, azure=None, **kw):
        """write_config() with entra_azure_section(auth, ...) as [azure]:
        client_id, secret, certificate_file, federated_token and tenant_id go
        to it, azure= adds or overrides [azure] keys, the rest goes to
        write_config (limits=, collections=, SECTION__KEY=, ...)."""
        ent = {k: kw.pop(k) for k in ("client_id", "secret", "certificate_file",
                                      "federated_token", "tenant_id") if k in kw}
        sec = entra_azure_section(self.tmp, auth, self.azurite, self.tokens, **ent)
        sec.update(azure or {})
        return self.write_config(azure=sec, **kw)


# --------------------------------------------------------------------------
# Entry point

def _run_unittest_main(argv, requirements, watchdog_seconds=None):
    """Skips (77) with the first unmet requirement's reason or when the SDK
    is missing, runs the calling module's tests, exits 0 / 1 / 77."""
    for why in requirements:
        if why:
            print("SKIP: " + why)
            sys.exit(SKIP)
    try:
        import azure.storage.blob  # noqa: F401
    except ImportError as e:
        print("SKIP: python3-azure-storage is not importable (%s); use /usr/bin/python3" % e)
        sys.exit(SKIP)
    # Clients we do not own (the Azure SDK) leave sockets to the GC: keep
    # ResourceWarnings out of the test output, everything else as default.
    import warnings
    if not sys.warnoptions:
        sys.warnoptions.append("default")
        warnings.simplefilter("default")
        warnings.simplefilter("ignore", ResourceWarning)
    watchdog = None
    if watchdog_seconds:
        watchdog = threading.Timer(watchdog_seconds, _watchdog_fire)
        watchdog.daemon = True
        watchdog.start()
    try:
        prog = unittest.main(module="__main__", argv=argv, exit=False, verbosity=2)
    except KeyboardInterrupt:
        cleanup_everything()
        raise
    finally:
        if watchdog is not None:
            watchdog.cancel()
    res = prog.result
    if not res.wasSuccessful():
        sys.exit(1)
    if res.testsRun == 0 or len(res.skipped) >= res.testsRun:
        sys.exit(SKIP)
    sys.exit(0)


def main(argv=None):
    """Run the calling module's tests; exit 0 / 1 / 77."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    atexit.register(cleanup_everything)
    _become_subreaper()
    _run_unittest_main(argv, (Azurite.available(), Mongo.available(), build_available()),
                       MODULE_TIMEOUT)


def server_selftest_main(available):
    """main() of a test server's self-test (test_fault_proxy.py,
    test_token_server.py): needs only the SDK and what available() names."""
    atexit.register(cleanup_everything)
    _run_unittest_main(None, (available(),))
