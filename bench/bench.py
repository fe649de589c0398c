#!/usr/bin/python3
"""bench.py - throughput and memory benchmark of mongo-azure-backup.

Run by hand after `make` (it builds nothing), with Debian's python3:

    /usr/bin/python3 bench/bench.py --builddir build [--gigabytes 1.0] [--json FILE]

What it does (docs/PERFORMANCE.md explains why):

 1. starts Azurite (in memory) and tests/fake_mongod.py on free ports;
 2. seeds >= --gigabytes of BSON through the wire protocol (pymongo
    insert_many) into four collections shaped like a chat application's:
    users, conversations, messages and messages_small (1/10 of messages,
    same shape: to show that peak RSS does not grow with collection size);
 3. runs `mongo-azure-backupd -c CONF --once` twice: a sequential pass
    ([limits] parallel = 1) and a parallel pass (parallel = number of CPUs),
    with [compression] engine = zlib, threads = 1 (one streamed gzip member,
    what the floor below does; bench/engines.py compares the engines) and
    [log] level = debug, and parses what the supervisor logs: per child
    CPU time and peak RSS, per collection BSON bytes, seconds and MB/s;
 4. runs export-collection alone for the largest collection into /dev/null
    (cursor + zlib without upload and supervisor), to locate lost time;
 5. downloads every data blob with Microsoft's Python SDK, gunzips it and
    checks it is byte for byte what was seeded (documents, bytes, SHA-256);
 6. measures the floor: the same BSON compressed with Python's zlib (the
    same libz) at the same level, gzip wrapper, 256 KiB chunks, one process,
    one core, CPU time from time.process_time();
 7. prints a table (and --json FILE) of pipeline MB/s against the floor,
    CPU seconds of our processes, of Azurite and the fake, and of anything
    else running (from /proc/stat: the figures are only as good as the
    machine is quiet), peak RSS of every process, and which targets were met.

--daemon-env NAME=VALUE passes extra environment to mongo-azure-backupd only
(experiments, e.g. an LD_PRELOAD shim); the report says so at the top.

It exits 0 when it ran, whether or not targets were met; 1 when something
broke (a backup failed, data differed, a server did not start).
"""

import argparse
import datetime
import hashlib
import itertools
import json
import mmap
import os
import platform
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

try:
    import bson
    import pymongo
    from bson.objectid import ObjectId
    from bson.int64 import Int64
    from bson.raw_bson import RawBSONDocument
    from azure.storage.blob import BlobServiceClient
except ImportError as e:  # pragma: no cover
    sys.exit("bench.py: %s: run it with Debian's /usr/bin/python3 "
             "(python3-pymongo, python3-azure-storage)" % e)

SRCDIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AZURITE_MAIN = os.path.join(SRCDIR, "tests", "azurite", "node_modules", "azurite",
                            "dist", "src", "blob", "main.js")
FAKE_MONGOD = os.path.join(SRCDIR, "tests", "fake_mongod.py")
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
           "K1SZFPTOtr/KBHBeksoGMGw==")
DATABASE = "tralivali"
MIB = 1024 * 1024
RSS_TARGET_KIB = 64 * 1024
RSS_GROWTH_KIB = 8 * 1024
CHUNK = 256 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Shares of --gigabytes; messages_small is extra (1/10 of messages).
SHARES = [("users", 0.12), ("conversations", 0.28), ("messages", 0.60)]
SMALL = "messages_small"


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------
# Realistic documents

WORDS = """
the be to of and a in that have I it for not on with he as you do at this but his
by from they we say her she or an will my one all would there their what so up out
if about who get which go me when make can like time no just him know take people
into year your good some could them see other than then now look only come its over
think also back after use two how our work first well way even new want because any
these give day most us is are was were been has had did said message chat group team
meeting tomorrow today tonight yesterday morning evening week weekend project deadline
update call later thanks thank please sorry okay ok sure great nice cool yes yeah lol
haha really maybe probably send sent file photo picture video link document review
check let know sounds plan lunch dinner coffee office home train bus car late early
soon minutes hour right left here where why what's I'm don't can't it's that's we're
you're they're let's invoice budget client customer release version bug fix deploy
server database backup report draft slides agenda notes question answer idea problem
issue ticket support account password login email phone number address street city
birthday party holiday trip flight hotel booking ticket price order delivery package
store shop money pay paid transfer bank card weather rain sun cold warm hot snow
football match game score win lost play music song concert movie book read watch
""".split()

FIRST = """Ana Marko Ivana Luka Petra Nikola Jelena Stefan Milica Filip Maja Nemanja
Sara Dusan Teodora Aleksa Katarina Vuk Jovana Lazar Mila Andrej Tamara Pavle Nina
Ognjen Anja Bojan Sofija Uros Emma Liam Olivia Noah Mia Lucas Hannah Felix Lena Jonas
Marta Tomislav Ivan Josip Lucija Matej Klara David Laura Daniel""".split()

LAST = """Jovanovic Petrovic Nikolic Markovic Djordjevic Stojanovic Ilic Stankovic
Pavlovic Milosevic Horvat Kovacevic Babic Maric Juric Novak Kovac Vukovic Knezevic
Mueller Schmidt Schneider Fischer Weber Meyer Wagner Becker Hoffmann Smith Johnson
Brown Taylor Wilson Davies Evans Thomas Roberts Popovic Radovanovic Kostic Lukic
Mitrovic Zivkovic Tomic Savic Simic Obradovic Lazic""".split()

CITIES = ["Belgrade", "Novi Sad", "Nis", "Kragujevac", "Zagreb", "Split", "Ljubljana",
          "Sarajevo", "Podgorica", "Skopje", "Vienna", "Berlin", "Munich", "London",
          "Amsterdam", "Budapest", "Prague", "Zurich", "Milan", "Paris"]
COUNTRIES = ["RS", "HR", "SI", "BA", "ME", "MK", "AT", "DE", "GB", "NL", "HU", "CZ",
             "CH", "IT", "FR"]
DOMAINS = ["gmail.com", "outlook.com", "yahoo.com", "example.com", "proton.me",
           "tralivali.app", "mail.rs", "t-com.hr"]
TAGS = ["work", "family", "friends", "sport", "travel", "music", "gaming", "books",
        "tech", "food", "vip", "beta", "premium", "support", "sales"]
EMOJI = ["\U0001f44d", "\u2764\ufe0f", "\U0001f602", "\U0001f62e", "\U0001f622",
         "\U0001f389", "\U0001f525", "\U0001f44f"]
CONTENT_TYPES = [("image/jpeg", "jpg"), ("image/png", "png"), ("application/pdf", "pdf"),
                 ("video/mp4", "mp4"), ("application/vnd.openxmlformats-officedocument."
                                        "wordprocessingml.document", "docx")]
CLIENTS = [("android", "4.12.1"), ("android", "4.11.0"), ("ios", "4.12.0"),
           ("ios", "4.10.3"), ("web", "2026.11.2"), ("desktop", "3.4.0")]
EPOCH = datetime.datetime(1970, 1, 1)
SENTENCE_LENGTHS = [3, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 10, 11, 12, 14, 17]
PUNCT = [".", ".", ".", ".", "!", "?", ",", "..."]


def _zipf_cum(n, s=1.05):
    return list(itertools.accumulate(1.0 / (i + 1) ** s for i in range(n)))


class DocGen:
    """Deterministic (seeded) documents of one collection, as raw BSON."""

    USERS_EST = 200_000
    CONVS_EST = 300_000

    def __init__(self, kind, seed):
        self.kind = kind
        self.rng = random.Random("%s/%d" % (kind, seed))
        self.i = 0
        # Every "client process" has its own 5 random bytes, like real ObjectIds.
        self.oid_process = self.rng.getrandbits(40).to_bytes(5, "big")
        self.words_cum = _zipf_cum(len(WORDS))
        self.t0 = 1_700_000_000  # Nov 2023
        self.encode = bson.encode

    # -- pieces
    def text(self, lo, hi):
        rng = self.rng
        n = rng.randint(lo, hi)
        words = rng.choices(WORDS, cum_weights=self.words_cum, k=n)
        out, pos = [], 0
        while pos < n:
            ln = rng.choice(SENTENCE_LENGTHS)
            s = " ".join(words[pos:pos + ln])
            pos += ln
            out.append(s[:1].upper() + s[1:] + (rng.choice(PUNCT) if pos < n else ""))
        return " ".join(out)

    @staticmethod
    def ref_oid(kind_byte, n, t0):
        """The ObjectId of the n-th document of another collection."""
        return ObjectId((t0 + n * 7).to_bytes(4, "big") + bytes([kind_byte]) * 5
                        + (n & 0xFFFFFF).to_bytes(3, "big"))

    def user_id(self, n):
        return self.ref_oid(0x11, n, self.t0)

    def conv_id(self, n):
        return self.ref_oid(0x22, n, self.t0 + 1000)

    def own_oid(self, ts):
        return ObjectId(int(ts).to_bytes(4, "big") + self.oid_process
                        + (self.i & 0xFFFFFF).to_bytes(3, "big"))

    def when(self, ts):
        return EPOCH + datetime.timedelta(milliseconds=int(ts * 1000))

    def name(self):
        return self.rng.choice(FIRST), self.rng.choice(LAST)

    # -- collections
    def user(self):
        rng, i = self.rng, self.i
        first, last = self.name()
        created = self.t0 + i * 7 + rng.random()
        uname = "%s.%s%d" % (first.lower(), last.lower(), i % 1000)
        doc = {
            "_id": self.user_id(i),
            "username": uname,
            "email": "%s.%s%d@%s" % (first.lower(), last.lower(), i, rng.choice(DOMAINS)),
            "displayName": "%s %s" % (first, last),
            "firstName": first,
            "lastName": last,
            "phone": "+381 6%d %03d %04d" % (rng.randrange(10), rng.randrange(1000),
                                             rng.randrange(10000)),
            "createdAt": self.when(created),
            "lastLoginAt": self.when(created + rng.randrange(86400 * 365)),
            "isActive": rng.random() < 0.85,
            "emailVerified": rng.random() < 0.7,
            "roles": ["user"] + (["admin"] if rng.random() < 0.02 else []),
            "profile": {
                "bio": self.text(5, 60),
                "location": {"city": rng.choice(CITIES), "country": rng.choice(COUNTRIES)},
                "avatarUrl": "https://cdn.tralivali.app/avatars/%s/%d.jpg"
                             % (uname, rng.randrange(1, 6)),
                "language": rng.choice(["sr", "hr", "en", "de", "sl"]),
                "birthYear": rng.randrange(1950, 2010),
            },
            "settings": {
                "theme": rng.choice(["dark", "light", "system"]),
                "notifications": {"email": rng.random() < 0.5, "push": rng.random() < 0.8,
                                  "sound": rng.random() < 0.6},
                "privacy": {"lastSeen": rng.choice(["everyone", "contacts", "nobody"]),
                            "readReceipts": rng.random() < 0.8},
            },
            "devices": [{"platform": c[0], "appVersion": c[1],
                         "pushToken": "%032x" % rng.getrandbits(128),
                         "lastSeenAt": self.when(created + rng.randrange(86400 * 400))}
                        for c in rng.sample(CLIENTS, rng.randint(1, 3))],
            "stats": {"messagesSent": Int64(rng.randrange(100000)),
                      "conversations": rng.randrange(300)},
            "tags": rng.sample(TAGS, rng.randint(0, 4)),
        }
        return doc

    def conversation(self):
        rng, i = self.rng, self.i
        created = self.t0 + 1000 + i * 7 + rng.random()
        group = rng.random() < 0.35
        n = rng.randint(3, 14) if group else 2
        members = [rng.randrange(self.USERS_EST) for _ in range(n)]
        updated = created + rng.randrange(86400 * 200)
        doc = {
            "_id": self.conv_id(i),
            "type": "group" if group else "direct",
            "title": self.text(1, 5) if group else None,
            "description": self.text(0, 40) if group else "",
            "createdBy": self.user_id(members[0]),
            "participants": [{"userId": self.user_id(m),
                              "role": "owner" if k == 0 else ("admin" if rng.random() < 0.1
                                                              else "member"),
                              "joinedAt": self.when(created + k * rng.randrange(1, 5000)),
                              "lastReadAt": self.when(updated - rng.randrange(86400)),
                              "muted": rng.random() < 0.1}
                             for k, m in enumerate(members)],
            "createdAt": self.when(created),
            "updatedAt": self.when(updated),
            "lastMessage": {"messageId": ObjectId(int(updated).to_bytes(4, "big")
                                                  + bytes([0x33]) * 5
                                                  + rng.getrandbits(24).to_bytes(3, "big")),
                            "senderId": self.user_id(rng.choice(members)),
                            "preview": self.text(3, 25),
                            "sentAt": self.when(updated)},
            "messageCount": rng.randrange(1, 20000),
            "isArchived": rng.random() < 0.1,
            "settings": {"retentionDays": rng.choice([None, 30, 90, 365]),
                         "allowInvites": rng.random() < 0.5},
            "tags": rng.sample(TAGS, rng.randint(0, 3)),
        }
        return doc

    def message(self):
        rng, i = self.rng, self.i
        sent = self.t0 + 5000 + i * 0.9 + rng.random()
        sender = rng.randrange(self.USERS_EST)
        kind = rng.random()
        doc = {
            "_id": self.own_oid(sent),
            "conversationId": self.conv_id(rng.randrange(self.CONVS_EST)),
            "senderId": self.user_id(sender),
            "type": "text" if kind < 0.85 else ("image" if kind < 0.95 else "file"),
            "body": self.text(2, 70) if rng.random() < 0.8 else self.text(10, 160),
            "sentAt": self.when(sent),
            "clientMessageId": "%08x-%04x-4%03x-%04x-%012x" % (
                rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12),
                rng.getrandbits(16), rng.getrandbits(48)),
            "status": rng.choice(["sent", "delivered", "read", "read", "read"]),
            "client": dict(zip(("platform", "version"), rng.choice(CLIENTS))),
        }
        if rng.random() < 0.08:
            doc["editedAt"] = self.when(sent + rng.randrange(10, 3600))
        if rng.random() < 0.15:
            doc["replyTo"] = self.own_oid(sent - rng.randrange(1, 86400))
        doc["readBy"] = [{"userId": self.user_id(rng.randrange(self.USERS_EST)),
                          "readAt": self.when(sent + rng.randrange(1, 7200))}
                         for _ in range(rng.randint(0, 4))]
        if rng.random() < 0.3:
            doc["reactions"] = [{"emoji": rng.choice(EMOJI),
                                 "userId": self.user_id(rng.randrange(self.USERS_EST))}
                                for _ in range(rng.randint(1, 3))]
        if kind >= 0.85:
            ctype, ext = rng.choice(CONTENT_TYPES)
            fname = "%s_%d.%s" % (rng.choice(WORDS), rng.randrange(10000), ext)
            doc["attachments"] = [{
                "fileId": ObjectId(int(sent).to_bytes(4, "big") + bytes([0x44]) * 5
                                   + rng.getrandbits(24).to_bytes(3, "big")),
                "fileName": fname, "contentType": ctype,
                "size": rng.randrange(10_000, 20_000_000),
                "url": "https://files.tralivali.app/%08x/%s" % (rng.getrandbits(32), fname),
                "sha256": "%064x" % rng.getrandbits(256)}]
        if rng.random() < 0.1:
            doc["mentions"] = [self.user_id(rng.randrange(self.USERS_EST))
                               for _ in range(rng.randint(1, 2))]
        return doc

    def next_raw(self):
        if self.kind == "users":
            doc = self.user()
        elif self.kind == "conversations":
            doc = self.conversation()
        else:
            doc = self.message()
        self.i += 1
        return self.encode(doc)


# --------------------------------------------------------------------------
# Processes

class Server:
    def __init__(self, name, argv, pattern, cwd, logdir):
        self.name = name
        self.argv = argv
        self.pattern = re.compile(pattern)
        self.cwd = cwd
        self.out = os.path.join(logdir, name + ".out")
        self.proc = None
        self.port = None

    def start(self, timeout=60):
        with open(self.out, "wb") as f:
            self.proc = subprocess.Popen(self.argv, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                         stdout=f, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.out, "rb") as f:
                m = self.pattern.search(f.read().decode("utf-8", "replace"))
            if m:
                self.port = int(m.group(1))
                log("%s pid %d listens on 127.0.0.1:%d" % (self.name, self.proc.pid, self.port))
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise BenchError("%s did not start; its output (%s):\n%s" % (
            self.name, self.out, open(self.out, errors="replace").read()[-2000:]))

    def cpu_seconds(self):
        return proc_cpu_seconds(self.proc.pid) if self.alive() else None

    def peak_rss_kib(self):
        return proc_status_kib(self.proc.pid, "VmHWM") if self.alive() else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """Stop by PID: SIGTERM, then SIGKILL after 15 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass


def proc_cpu_seconds(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state): utime = field 14, stime = field 15
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def system_cpu_seconds():
    """Per-category CPU seconds of all CPUs since boot (/proc/stat line 'cpu')."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return {k: x / CLK_TCK for k, x in zip(STAT_FIELDS, v)}


def cpu_delta(a, b):
    d = {k: b[k] - a[k] for k in STAT_FIELDS}
    # Time processes were charged for; interrupts and the host's steal are apart.
    d["tasks"] = d["user"] + d["nice"] + d["system"]
    return d


class LoadMeter:
    """What else ran on the machine while we measured something (/proc/stat)."""

    def __init__(self, servers):
        self.servers = servers
        self.t0 = time.monotonic()
        self.stat0 = system_cpu_seconds()
        self.self0 = time.process_time()
        self.srv0 = {s.name: s.cpu_seconds() for s in servers}

    def stop(self, known=0.0):
        """known: CPU seconds of our own children in the interval."""
        wall = time.monotonic() - self.t0
        d = cpu_delta(self.stat0, system_cpu_seconds())
        srv = 0.0
        for s in self.servers:
            now = s.cpu_seconds()
            if now is not None and self.srv0.get(s.name) is not None:
                srv += now - self.srv0[s.name]
        mine = time.process_time() - self.self0
        return {"wall_seconds": wall,
                "available_cpu_seconds": wall * len(os.sched_getaffinity(0)),
                "other_cpu_seconds": max(0.0, d["tasks"] - known - mine - srv),
                "steal_cpu_seconds": d["steal"],
                "idle_cpu_seconds": d["idle"] + d["iowait"]}


def proc_status_kib(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


# --------------------------------------------------------------------------
# Seeding

def seed(uri, targets, seed_value, batch_bytes=8 * MIB):
    """Insert generated raw documents; return {coll: {documents, bson_bytes, sha256}}."""
    client = pymongo.MongoClient(uri, document_class=RawBSONDocument)
    db = client[DATABASE]
    db.client.drop_database(DATABASE)
    seeded = {}
    for coll, kind, target in targets:
        gen = DocGen(kind, seed_value if coll != SMALL else seed_value + 1)
        h = hashlib.sha256()
        n = size = 0
        t0 = time.monotonic()
        c = db[coll]
        while size < target:
            batch, bsize = [], 0
            while bsize < batch_bytes and size + bsize < target:
                raw = gen.next_raw()
                batch.append(raw)
                bsize += len(raw)
            for raw in batch:
                h.update(raw)
            c.insert_many([RawBSONDocument(r) for r in batch], ordered=True)
            n += len(batch)
            size += bsize
        if coll == "users":
            c.create_index("email", unique=True)
        elif coll in ("messages", SMALL):
            c.create_index([("conversationId", 1), ("sentAt", 1)])
        dt = time.monotonic() - t0
        seeded[coll] = {"documents": n, "bson_bytes": size, "sha256": h.hexdigest(),
                        "seed_seconds": round(dt, 1)}
        log("seeded %-15s %9d documents %13d BSON bytes (%.1f MB, avg %.0f B/doc) in %.1f s"
            % (coll, n, size, size / 1e6, size / max(n, 1), dt))
    client.close()
    return seeded


# --------------------------------------------------------------------------
# Backup passes

USAGE_RE = re.compile(
    r"(export-collection|upload-blob)\[(\d+)\] for (.+?) "
    r"(exited with status (\d+)|was killed by signal [^:]*|ended with wait status \d+): "
    r"([\d.]+) s user, ([\d.]+) s system CPU, peak RSS (\d+) KiB")
OK_RE = re.compile(
    r"collection (\S+): ok, (\d+) documents, (\d+) BSON bytes, (\d+) gzip bytes "
    r"\(([\d.]+)%\), ([\d.]+) s, ([\d.]+) MB/s, blob (\S+)")
FAILED_RE = re.compile(r"collection (\S+): FAILED (.*)")
SUPER_RSS_RE = re.compile(r"mongo-azure-backupd: peak RSS (\d+) KiB")


def write_config(path, conn_file, uri_file, container, collections, parallel, level, tmp,
                 engine="zlib", threads="1"):
    """engine None: no [compression] section (the program's defaults)."""
    compression = ("" if engine is None else
                   "[compression]\nengine = %s\nlevel = %d\nthreads = %s\n\n"
                   % (engine, level, threads))
    text = """# written by bench/bench.py
[mongodb]
uri_file = {uri_file}
database = {db}
collections = {colls}

[azure]
connection_string_file = {conn}
container = {container}
block_size = 8M
upload_concurrency = 4

[limits]
parallel = {parallel}

{compression}[state]
dir = {state}

[control]
socket = {sock}

[daemon]
pid_file = {pid}

[log]
level = debug
target = stderr
""".format(uri_file=uri_file, db=DATABASE, colls=", ".join(collections), conn=conn_file,
           container=container, parallel=parallel, compression=compression,
           state=os.path.join(tmp, "state"), sock=os.path.join(tmp, "control.sock"),
           pid=os.path.join(tmp, "mab.pid"))
    os.makedirs(os.path.join(tmp, "state"), mode=0o700, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def write_secret(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)


def run_pass(name, builddir, conf, logpath, servers, timeout, extra_env=None):
    daemon = os.path.join(builddir, "src", "mongo-azure-backupd")
    env = dict(os.environ)
    for k in ("AZURE_STORAGE_CONNECTION_STRING", "MONGODB_URI"):
        env.pop(k, None)
    env["MAB_LIBEXECDIR"] = os.path.join(builddir, "src")
    env["LC_ALL"] = "C"
    env.update(extra_env or {})
    before = {s.name: s.cpu_seconds() for s in servers}
    stat0, self0 = system_cpu_seconds(), time.process_time()
    log("%s pass: %s -c %s --once" % (name, daemon, conf))
    t0 = time.monotonic()
    with open(logpath, "wb") as lf:
        p = subprocess.Popen([daemon, "-c", conf, "--once"], stdin=subprocess.DEVNULL,
                             stdout=lf, stderr=lf, env=env, cwd=os.path.dirname(conf))
    status = ru = None
    hwm = None
    try:
        deadline = t0 + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                break
            # The supervisor's own high-water mark (see parse_log on ru_maxrss).
            h = proc_status_kib(p.pid, "VmHWM")
            if h is not None:
                hwm = h
            if time.monotonic() > deadline:
                log("%s pass: still running after %d s: SIGTERM to %d" % (name, timeout, p.pid))
                p.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + 60
                timeout = None
                continue
            time.sleep(0.05)
    finally:
        if status is None:            # interrupted: let the supervisor clean up
            try:
                p.send_signal(signal.SIGTERM)
                os.wait4(p.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    after = {s.name: s.cpu_seconds() for s in servers}
    stat = cpu_delta(stat0, system_cpu_seconds())
    bench_self = time.process_time() - self0
    res = parse_log(logpath)
    res["name"] = name
    res["exit_status"] = p.returncode
    res["wall_seconds"] = wall
    # wait4 returns the supervisor's own usage plus that of the children it reaped.
    tree_cpu = ru.ru_utime + ru.ru_stime
    res["tree_cpu_seconds"] = tree_cpu
    res["supervisor_cpu_seconds"] = max(0.0, tree_cpu - res["children_cpu_seconds"])
    res["supervisor_vmhwm_kib"] = hwm
    res["server_cpu_seconds"] = {
        k: (after[k] - before[k]) if after.get(k) is not None and before.get(k) is not None
        else None for k in before}
    known = tree_cpu + bench_self + sum(v for v in res["server_cpu_seconds"].values() if v)
    res["system_cpu_seconds"] = stat
    res["other_cpu_seconds"] = max(0.0, stat["tasks"] - known)
    log("%s pass: exit status %d after %.1f s; of %.1f CPU s: idle %.1f, processes %.1f "
        "(%.1f not ours/Azurite/fake), irq+softirq %.1f, steal %.1f"
        % (name, p.returncode, wall, wall * len(os.sched_getaffinity(0)),
           stat["idle"] + stat["iowait"], stat["tasks"], res["other_cpu_seconds"],
           stat["irq"] + stat["softirq"], stat["steal"]))
    return res


def parse_log(path):
    with open(path, errors="replace") as f:
        text = f.read()
    children, collections, failed = [], {}, {}
    sup_rss = None
    for line in text.splitlines():
        m = USAGE_RE.search(line)
        if m:
            children.append({"program": m.group(1), "pid": int(m.group(2)),
                             "blob": m.group(3), "how": m.group(4),
                             "ok": m.group(5) == "0",
                             "user": float(m.group(6)), "system": float(m.group(7)),
                             "rss_kib": int(m.group(8))})
            continue
        m = OK_RE.search(line)
        if m:
            collections[m.group(1)] = {
                "documents": int(m.group(2)), "bson_bytes": int(m.group(3)),
                "gzip_bytes": int(m.group(4)), "gzip_percent": float(m.group(5)),
                "seconds": float(m.group(6)), "logged_mb_s": float(m.group(7)),
                "blob": m.group(8)}
            continue
        m = FAILED_RE.search(line)
        if m:
            failed[m.group(1)] = m.group(2)
            continue
        m = SUPER_RSS_RE.search(line)
        if m:
            # ru_maxrss: on Linux it keeps the high-water mark of the image
            # that exec'd the supervisor (here: this Python process after
            # seeding), so run_pass samples /proc/PID/status VmHWM instead.
            sup_rss = int(m.group(1))
    # Attribute children to collections by blob name.
    for cname, c in collections.items():
        data_blob = c["blob"]
        meta_blob = re.sub(r"\.bson\.gz$", ".metadata.json.gz", data_blob)
        for role, blob in (("data", data_blob), ("metadata", meta_blob)):
            for prog in ("export-collection", "upload-blob"):
                runs = [ch for ch in children if ch["blob"] == blob and ch["program"] == prog]
                key = "%s_%s" % (role, "export" if prog == "export-collection" else "upload")
                c[key] = {"runs": len(runs),
                          "cpu_seconds": sum(r["user"] + r["system"] for r in runs),
                          "user": sum(r["user"] for r in runs),
                          "system": sum(r["system"] for r in runs),
                          "rss_kib": max([r["rss_kib"] for r in runs] or [0])}
        c["mb_s"] = c["bson_bytes"] / 1e6 / c["seconds"] if c["seconds"] > 0 else None
    return {"collections": collections, "failed": failed, "children": children,
            "children_cpu_seconds": sum(ch["user"] + ch["system"] for ch in children),
            "supervisor_rss_kib": sup_rss,
            "log": path}


def export_alone(builddir, conf, coll, logpath, servers):
    """export-collection COLL > /dev/null: the cursor and zlib without the upload."""
    prog = os.path.join(builddir, "src", "export-collection")
    env = dict(os.environ, LC_ALL="C")
    env.pop("MONGODB_URI", None)
    before = {s.name: s.cpu_seconds() for s in servers}
    meter = LoadMeter(servers)
    log("export alone: %s -c %s %s > /dev/null" % (prog, conf, coll))
    t0 = time.monotonic()
    with open(os.devnull, "wb") as null, open(logpath, "wb") as lf:
        p = subprocess.Popen([prog, "-c", conf, coll], stdin=subprocess.DEVNULL,
                             stdout=null, stderr=lf, env=env)
    try:
        _, status, ru = os.wait4(p.pid, 0)
    except BaseException:
        p.kill()
        p.wait()
        raise
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    after = {s.name: s.cpu_seconds() for s in servers}
    load = meter.stop(ru.ru_utime + ru.ru_stime)
    return {"collection": coll, "exit_status": p.returncode, "wall_seconds": wall,
            "load": load,
            "user": ru.ru_utime, "system": ru.ru_stime,
            "cpu_seconds": ru.ru_utime + ru.ru_stime,
            "server_cpu_seconds": {k: (after[k] - before[k]) if after.get(k) is not None
                                   and before.get(k) is not None else None for k in before},
            "log": logpath}


# --------------------------------------------------------------------------
# Verification and the zlib floor

def download_bson(svc, container, blob, outpath):
    """Download a blob, gunzip it into outpath; return (gzip bytes, bson bytes, sha256)."""
    bc = svc.get_blob_client(container, blob)
    h = hashlib.sha256()
    d = zlib.decompressobj(31)
    gz = raw = 0
    with open(outpath, "wb") as out:
        for chunk in bc.download_blob(max_concurrency=1).chunks():
            gz += len(chunk)
            while chunk:
                data = d.decompress(chunk)
                h.update(data)
                out.write(data)
                raw += len(data)
                if d.eof:                      # concatenated gzip members
                    chunk = d.unused_data
                    d = zlib.decompressobj(31)
                else:
                    chunk = b""
        data = d.flush()
        h.update(data)
        out.write(data)
        raw += len(data)
    return gz, raw, h.hexdigest()


def count_documents(path):
    size = os.path.getsize(path)
    if size == 0:
        return 0, True
    n = pos = 0
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        unpack = struct.Struct("<i").unpack_from
        while pos + 5 <= size:
            ln = unpack(m, pos)[0]
            if ln < 5 or pos + ln > size or m[pos + ln - 1] != 0:
                return n, False
            pos += ln
            n += 1
    return n, pos == size


def zlib_floor(path, level):
    """CPU seconds to gzip the file at `level` in CHUNK pieces, one core."""
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    cpu = 0.0
    out = 0
    with open(path, "rb") as f:
        while True:
            buf = f.read(CHUNK)
            if not buf:
                break
            t = time.process_time()
            out += len(comp.compress(buf))
            cpu += time.process_time() - t
        t = time.process_time()
        out += len(comp.flush())
        cpu += time.process_time() - t
    return cpu, out


def verify_pass(res, svc, container, seeded, workdir, keep_files):
    problems = []
    files = {}
    for coll, want in seeded.items():
        c = res["collections"].get(coll)
        if c is None:
            problems.append("%s: no 'ok' line in the %s pass" % (coll, res["name"]))
            continue
        path = os.path.join(workdir, "%s-%s.bson" % (res["name"], coll))
        gz, raw, sha = download_bson(svc, container, c["blob"], path)
        ndocs, whole = count_documents(path)
        v = {"blob_gzip_bytes": gz, "bson_bytes": raw, "documents": ndocs,
             "sha256": sha, "framing_ok": whole}
        v["matches_seed"] = (raw == want["bson_bytes"] and ndocs == want["documents"]
                             and sha == want["sha256"] and whole)
        v["matches_log"] = (raw == c["bson_bytes"] and ndocs == c["documents"]
                            and gz == c["gzip_bytes"])
        c["verify"] = v
        if not v["matches_seed"]:
            problems.append("%s pass, %s: downloaded %d documents / %d bytes / sha256 %s..., "
                            "seeded %d / %d / %s..." % (res["name"], coll, ndocs, raw, sha[:12],
                                                        want["documents"], want["bson_bytes"],
                                                        want["sha256"][:12]))
        if not v["matches_log"]:
            problems.append("%s pass, %s: blob has %d gzip bytes, %d BSON bytes, %d documents; "
                            "the log said %d, %d, %d" % (res["name"], coll, gz, raw, ndocs,
                                                         c["gzip_bytes"], c["bson_bytes"],
                                                         c["documents"]))
        if keep_files:
            files[coll] = path
        else:
            os.unlink(path)
    return problems, files


# --------------------------------------------------------------------------
# Report

def fmt_kib(k):
    return "-" if k is None else "%.1f MiB" % (k / 1024)


def pct(a, b):
    return None if not a or not b else 100.0 * a / b


def build_report(args, machine, seeded, seq, par, floor, servers_info, problems, alone):
    cores = machine["cpus"]
    colls = list(seeded)
    rows = []
    for coll in colls:
        s = seq["collections"].get(coll, {})
        f = floor.get(coll, {})
        rows.append({
            "collection": coll,
            "documents": seeded[coll]["documents"],
            "bson_bytes": seeded[coll]["bson_bytes"],
            "gzip_bytes": s.get("gzip_bytes"),
            "gzip_percent": s.get("gzip_percent"),
            "seq_seconds": s.get("seconds"),
            "seq_mb_s": s.get("mb_s"),
            "floor_mb_s": f.get("mb_s"),
            "floor_cpu_seconds": f.get("cpu_seconds"),
            "floor_gzip_bytes": f.get("gzip_bytes"),
            "ratio_percent": pct(s.get("mb_s"), f.get("mb_s")),
            "export_cpu_seconds": s.get("data_export", {}).get("cpu_seconds"),
            "export_user": s.get("data_export", {}).get("user"),
            "export_system": s.get("data_export", {}).get("system"),
            "upload_cpu_seconds": s.get("data_upload", {}).get("cpu_seconds"),
            "upload_user": s.get("data_upload", {}).get("user"),
            "upload_system": s.get("data_upload", {}).get("system"),
            "metadata_cpu_seconds": (s.get("metadata_export", {}).get("cpu_seconds", 0)
                                     + s.get("metadata_upload", {}).get("cpu_seconds", 0)),
            "export_mb_per_cpu_s": (seeded[coll]["bson_bytes"] / 1e6
                                    / s["data_export"]["cpu_seconds"]
                                    if s.get("data_export", {}).get("cpu_seconds") else None),
            "export_rss_kib": s.get("data_export", {}).get("rss_kib"),
            "upload_rss_kib": s.get("data_upload", {}).get("rss_kib"),
            "par_seconds": par["collections"].get(coll, {}).get("seconds"),
            "par_mb_s": par["collections"].get(coll, {}).get("mb_s"),
            "par_export_rss_kib": par["collections"].get(coll, {}).get("data_export", {}).get("rss_kib"),
            "par_upload_rss_kib": par["collections"].get(coll, {}).get("data_upload", {}).get("rss_kib"),
        })
    total_bson = sum(seeded[c]["bson_bytes"] for c in colls)
    floor_cpu = sum(floor[c]["cpu_seconds"] for c in colls if c in floor)
    floor_1core = total_bson / 1e6 / floor_cpu if floor_cpu else None
    n_par = min(cores, len(colls))
    passes = {}
    for res in (seq, par):
        passes[res["name"]] = {
            "parallel": res["parallel"],
            "exit_status": res["exit_status"],
            "wall_seconds": res["wall_seconds"],
            "bson_mb_s": total_bson / 1e6 / res["wall_seconds"],
            "children_cpu_seconds": res["children_cpu_seconds"],
            "supervisor_cpu_seconds": res["supervisor_cpu_seconds"],
            "our_cpu_seconds": res["tree_cpu_seconds"],
            "supervisor_rss_kib": res["supervisor_vmhwm_kib"],
            "supervisor_logged_rss_kib": res["supervisor_rss_kib"],
            "azurite_cpu_seconds": res["server_cpu_seconds"].get("azurite"),
            "fake_mongod_cpu_seconds": res["server_cpu_seconds"].get("fake_mongod"),
            "system_cpu_seconds": res["system_cpu_seconds"],
            "idle_cpu_seconds": res["system_cpu_seconds"]["idle"]
                                + res["system_cpu_seconds"]["iowait"],
            "irq_cpu_seconds": res["system_cpu_seconds"]["irq"]
                               + res["system_cpu_seconds"]["softirq"],
            "steal_cpu_seconds": res["system_cpu_seconds"]["steal"],
            "other_cpu_seconds": res["other_cpu_seconds"],
            "max_child_rss_kib": max([ch["rss_kib"] for ch in res["children"]] or [0]),
            "log": res["log"],
        }
    par_p = passes["parallel"]
    par_target = floor_1core * n_par if floor_1core else None
    # One process per collection: the largest collection alone bounds the wall time.
    longest = max((floor[c]["cpu_seconds"] for c in colls if c in floor), default=0)
    bound_wall = max(longest, floor_cpu / n_par) if floor_cpu else None
    par_bound = total_bson / 1e6 / bound_wall if bound_wall else None
    a = dict(alone)
    a["mb_s"] = a["bson_bytes"] / 1e6 / a["wall_seconds"]
    a["mb_per_cpu_s"] = a["bson_bytes"] / 1e6 / a["cpu_seconds"] if a["cpu_seconds"] else None
    a["floor_mb_s"] = floor.get(a["collection"], {}).get("mb_s")
    a["ratio_percent"] = pct(a["mb_s"], a["floor_mb_s"])

    # Targets
    targets = []
    for r in rows:
        ok = r["ratio_percent"] is not None and r["ratio_percent"] >= 90.0
        targets.append({"target": "%s: sequential pipeline >= 90%% of zlib floor" % r["collection"],
                        "value": r["ratio_percent"], "met": ok})
    par_ratio = pct(par_p["bson_mb_s"], par_target)
    targets.append({"target": "parallel total close to (>= 80%% of) floor x min(cores, "
                              "collections) = %.1f MB/s" % (par_target or 0),
                    "value": par_ratio, "met": par_ratio is not None and par_ratio >= 80.0})
    all_rss = []
    for res in (seq, par):
        for ch in res["children"]:
            all_rss.append((res["name"], ch["program"], ch["blob"], ch["rss_kib"]))
        if res["supervisor_vmhwm_kib"] is not None:
            all_rss.append((res["name"], "mongo-azure-backupd", "-", res["supervisor_vmhwm_kib"]))
    worst = max(all_rss, key=lambda x: x[3]) if all_rss else None
    targets.append({"target": "every process of ours < 64 MiB peak RSS",
                    "value": worst[3] / 1024 if worst else None,
                    "worst": list(worst) if worst else None,
                    "met": bool(all_rss) and worst[3] < RSS_TARGET_KIB})
    big = next((r for r in rows if r["collection"] == "messages"), None)
    small = next((r for r in rows if r["collection"] == SMALL), None)
    rss_growth = None
    if big and small and big["export_rss_kib"] and small["export_rss_kib"]:
        # Same document shape, 10x the data: a streaming pipeline's peak RSS
        # must stay flat (its buffers are fixed: one cursor batch, a few blocks).
        # Both passes count: take the larger peak of each.
        def peak(r, key):
            return max(r[key] or 0, r["par_" + key] or 0)
        g_exp = peak(big, "export_rss_kib") - peak(small, "export_rss_kib")
        g_up = peak(big, "upload_rss_kib") - peak(small, "upload_rss_kib")
        rss_growth = {"data_factor": big["bson_bytes"] / small["bson_bytes"],
                      "export_growth_kib": g_exp, "upload_growth_kib": g_up,
                      "allowed_growth_kib": RSS_GROWTH_KIB}
        met = (g_exp < RSS_GROWTH_KIB and g_up < RSS_GROWTH_KIB
               and peak(big, "export_rss_kib") < RSS_TARGET_KIB
               and peak(big, "upload_rss_kib") < RSS_TARGET_KIB)
        targets.append({"target": "peak RSS independent of size: messages has %.1fx the data "
                                  "of %s; each child grows < %d MiB"
                                  % (rss_growth["data_factor"], SMALL, RSS_GROWTH_KIB // 1024),
                        "value": {"export_growth_mib": g_exp / 1024,
                                  "upload_growth_mib": g_up / 1024},
                        "met": met})
    verified = {}
    for res in (seq, par):
        for coll in colls:
            v = res["collections"].get(coll, {}).get("verify")
            verified["%s/%s" % (res["name"], coll)] = bool(v and v["matches_seed"]
                                                           and v["matches_log"])
    same_size = {r["collection"]: r["gzip_bytes"] == r["floor_gzip_bytes"] for r in rows}
    return {
        "machine": machine,
        "verified": verified,
        "floor_gzip_size_equals_blob": same_size,
        "settings": {"gigabytes": args.gigabytes, "level": args.level, "seed": args.seed,
                     "daemon_env": args.daemon_env, "floor_repeats": args.floor_repeats,
                     "block_size": "8M", "upload_concurrency": 4, "chunk": CHUNK},
        "seeded": seeded,
        "total_bson_bytes": total_bson,
        "rows": rows,
        "passes": passes,
        "floor": {"per_collection": floor, "cpu_seconds": floor_cpu,
                  "one_core_mb_s": floor_1core, "parallel_streams": n_par,
                  "parallel_target_mb_s": par_target,
                  "parallel_bound_mb_s": par_bound,
                  "parallel_bound_ratio_percent": pct(passes["parallel"]["bson_mb_s"],
                                                      par_bound)},
        "export_alone": a,
        "rss_growth": rss_growth,
        "servers": servers_info,
        "targets": targets,
        "problems": problems,
    }


def print_report(rep, out=sys.stdout):
    w = out.write
    m = rep["machine"]
    w("\n== mongo-azure-backup benchmark ==\n")
    w("machine: %d CPUs (%s), %.1f GiB RAM; zlib %s, libmongoc %s, Azurite %s, node %s\n"
      % (m["cpus"], m["cpu_model"], m["mem_gib"], m["zlib"], m["libmongoc"], m["azurite"],
         m["node"]))
    w("settings: zlib level %d, threads 1, block_size 8M, upload_concurrency 4; "
      "total %.1f MB BSON\n" % (rep["settings"]["level"], rep["total_bson_bytes"] / 1e6))
    if rep["settings"]["daemon_env"]:
        w("EXPERIMENT: mongo-azure-backupd ran with %s\n" % " ".join(rep["settings"]["daemon_env"]))
    w("\n")

    w("Sequential pass ([limits] parallel = 1), per collection\n")
    hdr = "%-15s %8s %7s %5s %6s %6s %6s %6s %7s %7s %6s %9s %9s\n"
    w(hdr % ("collection", "docs", "BSON", "gz", "secs", "pipe", "floor", "ratio",
             "exp CPU", "upl CPU", "exp", "exp RSS", "upl RSS"))
    w(hdr % ("", "", "MB", "%", "", "MB/s", "MB/s", "", "s", "s", "MB/cs", "", ""))

    def f(v, fmt):
        return "-" if v is None else fmt % v
    for r in rep["rows"]:
        w(hdr % (
            r["collection"], r["documents"], "%.1f" % (r["bson_bytes"] / 1e6),
            f(r["gzip_percent"], "%.1f"), f(r["seq_seconds"], "%.1f"),
            f(r["seq_mb_s"], "%.1f"), f(r["floor_mb_s"], "%.1f"),
            f(r["ratio_percent"], "%.0f%%"), f(r["export_cpu_seconds"], "%.2f"),
            f(r["upload_cpu_seconds"], "%.2f"), f(r["export_mb_per_cpu_s"], "%.1f"),
            fmt_kib(r["export_rss_kib"]), fmt_kib(r["upload_rss_kib"])))
    w("(secs and pipe MB/s: the supervisor's 'collection ... ok' line, export start to "
      "metadata blob committed; exp MB/cs: BSON MB per CPU second of export-collection)\n")
    w("\nParallel pass, per collection (collections share the cores)\n")
    w("%-15s %7s %8s %9s %9s\n" % ("collection", "secs", "MB/s", "exp RSS", "upl RSS"))
    for r in rep["rows"]:
        w("%-15s %7s %8s %9s %9s\n" % (
            r["collection"], "-" if r["par_seconds"] is None else "%.1f" % r["par_seconds"],
            "-" if r["par_mb_s"] is None else "%.1f" % r["par_mb_s"],
            fmt_kib(r["par_export_rss_kib"]), fmt_kib(r["par_upload_rss_kib"])))

    fl = rep["floor"]
    w("\nTotals (wall time of mongo-azure-backupd --once, start to exit)\n")
    hdr = "%-10s %3s %6s %6s %6s %5s | %5s %5s %5s %5s %6s %5s %5s %5s | %8s\n"
    w(hdr % ("pass", "par", "wall s", "MB/s", "target", "ratio", "ours", "sup", "Azur", "fake",
             "others", "irq", "steal", "idle", "sup RSS"))
    for name in ("sequential", "parallel"):
        p = rep["passes"][name]
        target = fl["one_core_mb_s"] * (1 if name == "sequential" else fl["parallel_streams"])
        w(hdr % (
            name, p["parallel"], "%.1f" % p["wall_seconds"], "%.1f" % p["bson_mb_s"],
            "%.1f" % target, "%.0f%%" % (pct(p["bson_mb_s"], target) or 0),
            "%.1f" % p["our_cpu_seconds"], "%.1f" % p["supervisor_cpu_seconds"],
            f(p["azurite_cpu_seconds"], "%.1f"), f(p["fake_mongod_cpu_seconds"], "%.1f"),
            "%.1f" % p["other_cpu_seconds"], "%.1f" % p["irq_cpu_seconds"],
            "%.1f" % p["steal_cpu_seconds"], "%.1f" % p["idle_cpu_seconds"],
            fmt_kib(p["supervisor_rss_kib"])))
    fo = sum(v["load"]["other_cpu_seconds"] + v["load"]["steal_cpu_seconds"]
             for v in fl["per_collection"].values())
    fa = sum(v["load"]["available_cpu_seconds"] for v in fl["per_collection"].values())
    w("zlib floor (fastest of %d tries each): %.1f CPU s for all collections = %.1f MB/s "
      "on one core; target for the "
      "parallel pass = %.1f MB/s x %d\n" % (rep["settings"]["floor_repeats"],
                                           fl["cpu_seconds"], fl["one_core_mb_s"],
                                           fl["one_core_mb_s"], fl["parallel_streams"]))
    w("  (while the floor was measured, other processes and the VM host took %.1f of %.1f "
      "CPU s)\n" % (fo, fa))
    w("(CPU seconds during the pass, wall x %d available. ours = supervisor + all its "
      "children, from wait4; sup = the supervisor alone;\n"
      " Azur, fake = Azurite and fake_mongod, from /proc/PID/stat; from /proc/stat: others = "
      "process time of anything else, irq = irq + softirq,\n"
      " steal = taken by the VM host, idle = idle + iowait;\n"
      " sup RSS = supervisor VmHWM sampled from /proc: its logged ru_maxrss includes the "
      "RSS of the process that exec'd it)\n" % m["cpus"])
    w("With one process per collection the largest collection bounds the wall time: "
      "best case %.1f MB/s; the parallel pass reached %.0f%% of that\n"
      % (fl["parallel_bound_mb_s"], fl["parallel_bound_ratio_percent"] or 0))
    a = rep["export_alone"]
    w("\nexport-collection alone (%s -> /dev/null, no upload, no supervisor): %.1f s, "
      "%.1f MB/s = %.0f%% of its floor %.1f MB/s; CPU %.2f s user + %.2f s system "
      "(%.1f MB/cs); fake_mongod CPU %s s\n"
      % (a["collection"], a["wall_seconds"], a["mb_s"], a["ratio_percent"] or 0,
         a["floor_mb_s"] or 0, a["user"], a["system"], a["mb_per_cpu_s"] or 0,
         f(a["server_cpu_seconds"].get("fake_mongod"), "%.1f")))
    w("  (meanwhile other processes and the VM host took %.1f of %.1f CPU s)\n"
      % (a["load"]["other_cpu_seconds"] + a["load"]["steal_cpu_seconds"],
         a["load"]["available_cpu_seconds"]))
    bad = [k for k, ok in rep["verified"].items() if not ok]
    w("\nVerification: %s\n" % (
        "every blob of both passes gunzips to exactly the seeded BSON (documents, bytes, "
        "SHA-256)" if not bad else "MISMATCH in " + ", ".join(bad)))
    diff = [c for c, ok in rep["floor_gzip_size_equals_blob"].items() if not ok]
    w("Floor output: %s\n" % ("same gzip size as the blob for every collection" if not diff
                               else "gzip size differs from the blob for " + ", ".join(diff)))
    s = rep["servers"]
    w("Not ours: Azurite peak RSS %s, fake_mongod peak RSS %s\n" % (
        fmt_kib(s.get("azurite_peak_rss_kib")), fmt_kib(s.get("fake_mongod_peak_rss_kib"))))
    if rep["rss_growth"]:
        g = rep["rss_growth"]
        w("RSS vs size: messages has %.1fx the data of %s; export RSS %+.1f MiB, upload RSS "
          "%+.1f MiB\n" % (g["data_factor"], SMALL, g["export_growth_kib"] / 1024,
                           g["upload_growth_kib"] / 1024))

    for name in ("sequential", "parallel"):
        p = rep["passes"][name]
        cap = p["wall_seconds"] * m["cpus"]
        lost = p["other_cpu_seconds"] + p["steal_cpu_seconds"]
        if lost > 0.05 * cap:
            w("WARNING: other processes and the VM host took %.1f of the %.1f CPU seconds "
              "available during the %s pass (%.0f%%): its MB/s are pessimistic; rerun on a "
              "quiet machine\n" % (lost, cap, name, 100 * lost / cap))

    w("\nTargets\n")
    for t in rep["targets"]:
        v = t["value"]
        if isinstance(v, float):
            vs = "%.1f" % v
        elif isinstance(v, dict):
            vs = ", ".join("%s %.1f" % kv for kv in v.items())
        else:
            vs = str(v)
        extra = ""
        if t.get("worst"):
            extra = " (largest: %s pass, %s for %s)" % tuple(t["worst"][:3])
        w("  [%s] %s: %s%s\n" % ("met   " if t["met"] else "MISSED", t["target"], vs, extra))
    if rep["problems"]:
        w("\nProblems\n")
        for p in rep["problems"]:
            w("  - %s\n" % p)
    w("\n")


def machine_info(builddir):
    def sh(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=20,
                                  shell=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = proc_meminfo("MemTotal")
    try:
        with open(os.path.join(SRCDIR, "tests", "azurite", "node_modules", "azurite",
                               "package.json")) as f:
            azv = json.load(f).get("version")
    except OSError:
        azv = None
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "mem_gib": (mem_kib or 0) / 1024 / 1024,
        "kernel": platform.release(),
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "libmongoc": sh("pkg-config --modversion libmongoc-1.0") or None,
        "libcurl": sh("pkg-config --modversion libcurl") or None,
        "azurite": azv,
        "node": sh("node --version") or None,
        "python": platform.python_version(),
        "pymongo": pymongo.version,
        "builddir": os.path.abspath(builddir),
        "version": sh("%s --version" % os.path.join(builddir, "src", "mongo-azure-backupd")),
    }


def proc_meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--builddir", default=os.path.join(SRCDIR, "build"),
                    help="configured and built tree (default: %(default)s)")
    ap.add_argument("--gigabytes", type=float, default=1.0,
                    help="BSON to seed in users + conversations + messages, in 10^9 bytes "
                         "(messages_small adds 1/10 of messages) (default: %(default)s)")
    ap.add_argument("--level", type=int, default=6, choices=range(1, 10),
                    help="zlib level for the backup and the floor (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=1, help="RNG seed (default: %(default)s)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--timeout", type=int, default=3600,
                    help="seconds a pass may take before it is stopped (default: %(default)s)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (logs, configs) and print its path")
    ap.add_argument("--floor-repeats", type=int, default=2, metavar="N",
                    help="compress each collection N times for the floor and keep the "
                         "fastest (default: %(default)s)")
    ap.add_argument("--daemon-env", metavar="NAME=VALUE", action="append", default=[],
                    help="extra environment for mongo-azure-backupd only (repeatable; "
                         "for experiments, e.g. LD_PRELOAD=...); shown in the report")
    args = ap.parse_args()
    if args.floor_repeats < 1:
        ap.error("--floor-repeats must be at least 1")
    extra_env = {}
    for kv in args.daemon_env:
        if "=" not in kv:
            ap.error("--daemon-env wants NAME=VALUE, not %r" % kv)
        k, v = kv.split("=", 1)
        extra_env[k] = v

    builddir = os.path.abspath(args.builddir)
    for prog in ("mongo-azure-backupd", "export-collection", "upload-blob"):
        if not os.access(os.path.join(builddir, "src", prog), os.X_OK):
            sys.exit("bench.py: %s is missing: configure and `make` first"
                     % os.path.join(builddir, "src", prog))
    if not os.path.exists(AZURITE_MAIN):
        sys.exit("bench.py: %s is missing: `npm ci --prefix tests/azurite`" % AZURITE_MAIN)

    def on_term(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_term)

    work = tempfile.mkdtemp(prefix="mab-bench-")
    os.chmod(work, 0o700)
    machine = machine_info(builddir)
    machine["loadavg_at_start"] = os.getloadavg()
    log("work directory %s; %d CPUs, %s; load average %.2f %.2f %.2f" % (
        (work, machine["cpus"], machine["cpu_model"]) + machine["loadavg_at_start"]))
    azdir = os.path.join(work, "azurite")
    os.makedirs(azdir)
    azurite = Server("azurite", ["node", AZURITE_MAIN, "--blobHost", "127.0.0.1",
                                 "--blobPort", "0", "--inMemoryPersistence", "--silent",
                                 "--disableTelemetry"],
                     r"listens on http://127\.0\.0\.1:(\d+)", azdir, work)
    fake = Server("fake_mongod", ["/usr/bin/python3", FAKE_MONGOD, "--port", "0"],
                  r"listening 127\.0\.0\.1:(\d+)", work, work)
    servers = [azurite, fake]
    problems = []
    rc = 0
    try:
        azurite.start()
        fake.start()
        uri = "mongodb://127.0.0.1:%d/" % fake.port
        conn = ("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;"
                "BlobEndpoint=http://127.0.0.1:%d/%s;" % (DEV_ACCOUNT, DEV_KEY, azurite.port,
                                                          DEV_ACCOUNT))
        conn_file = os.path.join(work, "azure-connection-string")
        uri_file = os.path.join(work, "mongodb-uri")
        write_secret(conn_file, conn)
        write_secret(uri_file, uri)

        gb = args.gigabytes * 1e9
        targets = [(c, c, int(gb * share)) for c, share in SHARES]
        targets.append((SMALL, "messages", int(gb * dict(SHARES)["messages"] / 10)))
        log("seeding %.2f GB of BSON through the wire protocol" % (sum(t[2] for t in targets) / 1e9))
        seeded = seed(uri, targets, args.seed)
        colls = list(seeded)

        results = {}
        for name, parallel in (("sequential", 1), ("parallel", machine["cpus"])):
            conf = os.path.join(work, "%s.conf" % name)
            container = "bench-%s" % name[:3]
            write_config(conf, conn_file, uri_file, container, colls, parallel, args.level,
                         os.path.join(work, name))
            res = run_pass(name, builddir, conf, os.path.join(work, "%s.log" % name),
                           servers, args.timeout, extra_env)
            res["parallel"] = parallel
            res["container"] = container
            results[name] = res
            if res["exit_status"] != 0:
                problems.append("%s pass: mongo-azure-backupd exited with status %d (log %s)"
                                % (name, res["exit_status"], res["log"]))
            for coll, why in res["failed"].items():
                problems.append("%s pass: collection %s FAILED %s" % (name, coll, why))

        largest = max(colls, key=lambda c: seeded[c]["bson_bytes"])
        alone = export_alone(builddir, os.path.join(work, "sequential.conf"), largest,
                             os.path.join(work, "export-alone.log"), servers)
        alone["bson_bytes"] = seeded[largest]["bson_bytes"]
        if alone["exit_status"] != 0:
            problems.append("export-collection %s alone exited with status %d (log %s)"
                            % (largest, alone["exit_status"], alone["log"]))

        svc = BlobServiceClient.from_connection_string(conn)
        # Verify both passes; keep the sequential pass's BSON for the floor.
        floor = {}
        for name in ("sequential", "parallel"):
            res = results[name]
            log("%s pass: downloading, gunzipping and comparing with what was seeded" % name)
            p, files = verify_pass(res, svc, res["container"], seeded, work,
                                   keep_files=(name == "sequential"))
            problems.extend(p)
            if name == "sequential":
                for coll in colls:
                    if coll not in files:
                        continue
                    log("zlib floor: %s" % coll)
                    meter = LoadMeter(servers)
                    # A floor is a lower bound: keep the least CPU of a few tries.
                    tries = [zlib_floor(files[coll], args.level)
                             for _ in range(args.floor_repeats)]
                    cpu, gzb = min(tries)
                    load = meter.stop()
                    size = os.path.getsize(files[coll])
                    floor[coll] = {"cpu_seconds": cpu, "gzip_bytes": gzb, "bson_bytes": size,
                                   "mb_s": size / 1e6 / cpu if cpu > 0 else None,
                                   "tries_cpu_seconds": [t[0] for t in tries],
                                   "load": load}
                    os.unlink(files[coll])
            try:
                svc.delete_container(res["container"])   # free Azurite's memory
            except Exception as e:  # noqa: BLE001 - informative only
                log("could not delete container %s: %s" % (res["container"], e))
        servers_info = {"azurite_peak_rss_kib": azurite.peak_rss_kib(),
                        "fake_mongod_peak_rss_kib": fake.peak_rss_kib(),
                        "azurite_total_cpu_seconds": azurite.cpu_seconds(),
                        "fake_mongod_total_cpu_seconds": fake.cpu_seconds()}
        if len(floor) != len(colls):
            problems.append("the zlib floor is missing for some collections (download failed)")
        if not floor or any(c not in results["sequential"]["collections"] for c in colls):
            for p in problems:
                log("problem: " + p)
            log("backup did not complete: no table; logs are in %s" % work)
            args.keep = True
            return 1
        rep = build_report(args, machine, seeded, results["sequential"], results["parallel"],
                           floor, servers_info, problems, alone)
        print_report(rep)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rep, f, indent=2, default=str)
                f.write("\n")
            log("wrote %s" % args.json)
        if problems:
            rc = 1
            args.keep = True
    except BenchError as e:
        log(str(e))
        args.keep = True
        rc = 1
    except KeyboardInterrupt as e:
        log("interrupted (%s)" % (e or "SIGINT"))
        rc = 130
    finally:
        for s in servers:
            s.stop()
        if args.keep:
            log("work directory kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
