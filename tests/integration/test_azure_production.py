#!/usr/bin/python3
"""test_azure_production.py - production-style Azure, not only the
emulator's path-style shape.

Real Azure is https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB: the
account is in the host name, the path starts with the container, and Shared
Key signs /ACCOUNT/CONTAINER/BLOB.  Azurite answers that shape too, at
http://devstoreaccount1.blob.localhost:PORT/ (the account taken from the
host name), and checks the signature there.

  * TestProductionEndpoint: a backup with
    BlobEndpoint=http://devstoreaccount1.blob.localhost:PORT/ completes;
    its blobs are read back with Microsoft's Python SDK (byte for byte
    against the source, MD5 and SHA-256 against the manifest); list,
    verify and restore (--to-dir and --to-uri) work through the same
    endpoint; a wrong key there is refused (403), so the success is the
    signature's, not a lenient server's.  The name must resolve to
    127.0.0.1: when it does not and /etc/hosts is writable (root), this
    module appends one comment-marked line for the run and removes it at
    the end (only the line it added); otherwise these tests skip, saying why.

  * TestListPaging: List Blobs returns at most 5000 names per page.  More
    than 5000 blobs are put into a container with the SDK (real Azurite
    pages, not canned replies), arranged so that one backup set straddles
    the first page boundary (its manifest.json the last name of page 1, its
    data on page 2) and three lie wholly on page 2.  `mongo-azure-backupctl
    list --json` must find every set (through the production-style
    endpoint too, when it resolves: the marker goes back signed), and
    prune-sets (which lists the layout's prefix, backups/) must plan for
    every set and delete exactly the right ones.  Read only the first page
    and both fail: list shows 2 sets of 5; prune sees the same 2, keeps
    both as the newest complete ones and deletes nothing.  (Checked with a
    build whose azure_list_blobs stopped after the first page.)  The
    arrangement is checked with the SDK's own paging before the product
    runs.
"""

import atexit
import base64
import datetime
import fcntl
import gzip
import json
import os
import re
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402

CTL = h.CTL
PRUNE = h.program("prune-sets")
HOST = "%s.blob.localhost" % h.DEV_ACCOUNT
HOSTS_FILE = "/etc/hosts"
HOSTS_MARK = "# mongo-azure-backup tests/integration/test_azure_production.py pid "
PAGE = 5000          # List Blobs' maxresults (the product asks for 5000)

# Whether HOST resolves (None) or why not (the skip reason); the line this
# run added to /etc/hosts, if any.
HOSTS = {"skip": "not checked yet", "added": None}


# --------------------------------------------------------------------------
# /etc/hosts

def _resolves_to_loopback(name):
    try:
        infos = socket.getaddrinfo(name, 80, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    return any(ai[4][0] == "127.0.0.1" for ai in infos)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _edit_hosts(edit):
    """Rewrites /etc/hosts in place (it may be a bind mount: no rename),
    under an exclusive lock so concurrent runs of this module do not lose
    each other's lines.  edit(lines) -> new lines."""
    with open(HOSTS_FILE, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            lines = f.read().splitlines(keepends=True)
            new = edit(lines)
            if new != lines:
                f.seek(0)
                f.write("".join(new))
                f.truncate()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _drop_stale_lines(lines):
    """Our lines left by a run that died without cleaning up (the module
    watchdog ends with os._exit)."""
    out = []
    for ln in lines:
        m = re.search(re.escape(HOSTS_MARK) + r"(\d+)\s*$", ln)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            continue
        out.append(ln)
    return out


def hosts_setup():
    if os.access(HOSTS_FILE, os.W_OK):
        try:
            _edit_hosts(_drop_stale_lines)
        except OSError:
            pass
    if _resolves_to_loopback(HOST):
        HOSTS["skip"] = None
        return
    if not os.access(HOSTS_FILE, os.W_OK):
        HOSTS["skip"] = ("%s does not resolve to 127.0.0.1 and %s is not writable "
                         "(run as root, or add '127.0.0.1 %s' to it)"
                         % (HOST, HOSTS_FILE, HOST))
        return
    line = "127.0.0.1 %s %s%d\n" % (HOST, HOSTS_MARK, os.getpid())

    def add(lines):
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        return lines + [line]
    try:
        _edit_hosts(add)
    except OSError as e:
        HOSTS["skip"] = "cannot add '%s' to %s: %s" % (line.strip(), HOSTS_FILE, e)
        return
    HOSTS["added"] = line
    atexit.register(hosts_teardown)     # also on KeyboardInterrupt/SIGTERM
    if not _resolves_to_loopback(HOST):
        hosts_teardown()
        HOSTS["skip"] = ("%s still does not resolve to 127.0.0.1 with a line in %s "
                         "(the resolver does not read it?)" % (HOST, HOSTS_FILE))
        return
    HOSTS["skip"] = None


def hosts_teardown():
    line = HOSTS.get("added")
    if not line:
        return
    HOSTS["added"] = None
    try:
        _edit_hosts(lambda lines: [ln for ln in lines if ln != line])
    except OSError as e:
        sys.stderr.write("could not remove %r from %s: %s\n" % (line, HOSTS_FILE, e))


def setUpModule():
    h.setup_module_env()
    hosts_setup()


def tearDownModule():
    hosts_teardown()
    h.teardown_module_env()


def host_connection_string(port, key=h.DEV_KEY):
    """Production-style: the account in the host name, no path; the
    trailing '/' as users paste it."""
    return ("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;"
            "BlobEndpoint=http://%s:%d/" % (h.DEV_ACCOUNT, key, HOST, port))


def today():
    return datetime.datetime.now(datetime.timezone.utc).date()


def ago(days, base):
    return (base - datetime.timedelta(days=days)).strftime("%Y-%m-%d")


class ProductionCase(h.BackupTestCase):

    def ctl(self, conf, *args, timeout=120):
        rc, out, err, _t = h.run_program([CTL, "-c", conf] + list(args), timeout=timeout)
        return rc, out.decode("utf-8", "replace"), err

    def assertOk(self, rc, out, err, what):
        self.assertEqual(rc, 0, "%s: exit %s\nstdout:\n%s\nstderr:\n%s" % (what, rc, out, err))

    def list_json(self, conf):
        rc, out, err = self.ctl(conf, "list", "--json")
        self.assertOk(rc, out, err, "list --json")
        return json.loads(out)["sets"]

    def write_config_in(self, sub, cs, **kw):
        """A second config for the same container and database, in a
        directory of its own (write_config names its files after it)."""
        kw.setdefault("database", self.database)
        kw.setdefault("container", self.container)
        return h.write_config(os.path.join(self.tmp, sub), connection_string=cs, **kw)


# --------------------------------------------------------------------------
# A backup, list, verify and restore through the production-style endpoint

class TestProductionEndpoint(ProductionCase):

    def setUp(self):
        super().setUp()
        if HOSTS["skip"]:
            self.skipTest(HOSTS["skip"])
        self.cs = host_connection_string(self.azurite.port)
        # The SDK through the production-style endpoint too.
        self.hblobs = h.Blobs(self.container, conn=self.cs)

    def test_backup_list_verify_restore(self):
        colls = ["users", "types", "empty"]
        self.db["users"].insert_many(list(h.gen_users(1500, seed=61)))
        self.db["users"].create_index("email", unique=True)
        self.db["types"].insert_one(h.every_type_document())
        h.create_empty_collection(self.db, "empty")
        conf = self.write_config(connection_string=self.cs, collections=", ".join(colls))

        before = h.utc_today()
        rc, log, _e = self.run_backup(conf, timeout=150)
        after = h.utc_today()
        self.assertExit(rc, 0, log)

        # What the SDK sees, both ways in: the same container.
        names = self.hblobs.names()
        self.assertEqual(names, self.blobs.names(), "host-style and path-style listings differ")
        manifests = [n for n in names if n.endswith("/manifest.json")]
        self.assertEqual(len(manifests), 1, names)
        date = manifests[0].split("/")[1]
        self.assertIn(date, (before, after))
        folder = "backups/%s/" % date
        manifest = json.loads(self.hblobs.download(manifests[0]))
        self.assertIs(manifest.get("complete"), True, manifest)
        entries = {e["name"]: e for e in manifest["collections"]}
        self.assertEqual(sorted(entries), sorted(colls))
        for coll in colls:
            with self.subTest(collection=coll):
                name = h.data_blob_name(coll, date)
                blob = self.hblobs.download(name)
                want, ndocs = h.read_raw(self.db, coll)
                got = gzip.decompress(blob)
                if got != want:
                    self.fail("%s differs from the source: %s"
                              % (name, h.describe_bson_difference(got, want)))
                props = self.hblobs.properties(name)
                self.assertEqual(bytes(props.content_settings.content_md5),
                                 h.hashlib.md5(blob).digest(), name)
                self.assertEqual(props.content_settings.content_type, "application/gzip")
                e = entries[coll]
                self.assertEqual((e.get("documents"), e.get("sha256"), e.get("md5")),
                                 (ndocs, h.sha256_hex(blob), h.md5_b64(blob)), e)
                self.assertIn(h.metadata_blob_name(coll, date), names)

        # list
        sets = self.list_json(conf)
        self.assertEqual([(s["set"], s["complete"], s["collections"]) for s in sets],
                         [(folder, True, 3)])
        self.assertEqual(sets[0]["documents"], 1501)

        # verify, and its record read back through the SDK
        rc, out, err = self.ctl(conf, "verify")
        self.assertOk(rc, out, err, "verify")
        self.assertRegex(out, r"(?m)^%s: ok" % re.escape(folder))
        rec = json.loads(self.hblobs.download(folder + "verification.json"))
        self.assertEqual((rec["result"], rec["set"]), ("ok", folder))
        self.assertEqual(self.list_json(conf)[0]["verification"], "ok")

        # restore --to-dir: mongodump's .bson, byte for byte
        out_dir = os.path.join(self.tmp, "dump")
        rc, out, err = self.ctl(conf, "restore", "latest", "--to-dir", out_dir)
        self.assertOk(rc, out, err, "restore --to-dir")
        for coll in colls:
            with open(os.path.join(out_dir, self.database, coll + ".bson"), "rb") as f:
                got = f.read()
            want, _n = h.read_raw(self.db, coll)
            if got != want:
                self.fail("%s.bson differs: %s" % (coll, h.describe_bson_difference(got, want)))

        # restore --to-uri into another database of the same server
        target = h.unique_name("rs")
        self.addCleanup(self.mongo.drop_database, target)
        rc, out, err = self.ctl(conf, "restore", "latest", "--to-uri", self.mongo.uri,
                                "--to-db", target)
        self.assertOk(rc, out, err, "restore --to-uri")
        tdb = self.mongo.client()[target]
        for coll in colls:
            want, n = h.read_raw(self.db, coll)
            got, m = h.read_raw(tdb, coll)
            if got != want:
                self.fail("%s: restored documents differ (%d vs %d): %s"
                          % (coll, m, n, h.describe_bson_difference(got, want)))
        self.assertIn("email_1", tdb["users"].index_information())

    def test_wrong_key_is_refused(self):
        """The endpoint checks signatures: the same URL with another key
        fails (so the backup above passed on a correct signature)."""
        self.hblobs.create_container()
        self.hblobs.upload("backups/x/manifest.json", b"{}")
        other_key = base64.b64encode(bytes(range(64))).decode()
        conf = self.write_config(connection_string=host_connection_string(
            self.azurite.port, key=other_key))
        rc, out, err = self.ctl(conf, "list", "--json")
        self.assertNotEqual(rc, 0, "list with a wrong key succeeded:\n%s\n%s" % (out, err))
        self.assertRegex(err, r"\b403 (AuthenticationFailed|AuthorizationFailure)\b")
        self.assertIn("http://%s:%d" % (HOST, self.azurite.port), err)
        conf = self.write_config(connection_string=self.cs)
        self.assertEqual([s["set"] for s in self.list_json(conf)], ["backups/x/"])


# --------------------------------------------------------------------------
# List Blobs paging past 5000 blobs

FILLER = "backups/1999-filler/"          # not a date: never part of a set


class TestListPaging(ProductionCase):
    """One container: set A (1990, complete, page 1), 4996 filler blobs,
    then B (60 days ago, complete; its manifest is name 5000, its data on
    page 2), C (50 days, complete), D (10 days, incomplete), E (1 day,
    complete).  Retention: 30 days, keep_min 2."""

    COLLS = ("users",)

    def make_set(self, date, complete):
        names, entries = [], []
        for coll in self.COLLS:
            data, meta = h.data_blob_name(coll, date), h.metadata_blob_name(coll, date)
            names += [data, meta]
            entries.append({"name": coll, "result": "ok", "blob": data, "metadata_blob": meta,
                            "documents": 1})
        body = json.dumps({"format": 1, "tool": "mongo-azure-backup",
                           "set": "backups/%s/" % date, "database": self.database,
                           "complete": complete, "collections": entries}).encode()
        return [(n, gzip.compress(b"x" * 64), "application/gzip") for n in names] + \
               [(h.manifest_blob_name(date), body, "application/json")]

    def upload_all(self, items):
        cc = self.blobs.container
        from azure.storage.blob import ContentSettings

        def put(item):
            name, data, ctype = item
            cc.get_blob_client(name).upload_blob(
                data, overwrite=True, content_settings=ContentSettings(content_type=ctype))
        with ThreadPoolExecutor(8) as ex:
            for _ in ex.map(put, items):
                pass

    def first_page(self, prefix=None):
        pages = self.blobs.container.list_blobs(name_starts_with=prefix,
                                                results_per_page=PAGE).by_page()
        return [b.name for b in next(pages)]

    def test_sets_beyond_the_first_page(self):
        self.blobs.create_container()
        day = today()
        dates = {"A": "1990-01-01", "B": ago(60, day), "C": ago(50, day),
                 "D": ago(10, day), "E": ago(1, day)}
        complete = {"A": True, "B": True, "C": True, "D": False, "E": True}
        per_set = 2 * len(self.COLLS) + 1
        n_filler = PAGE - per_set - 1        # B's manifest is name PAGE
        sets = {k: self.make_set(dates[k], complete[k]) for k in dates}
        filler = [(FILLER + "f%05d" % i, b"f", "application/octet-stream")
                  for i in range(n_filler)]
        self.upload_all([it for k in dates for it in sets[k]] + filler)
        all_names = sorted(self.blobs.names())
        self.assertEqual(len(all_names), 5 * per_set + n_filler)
        self.assertGreater(len(all_names), PAGE)

        # The arrangement, by Azurite's own pages: B's manifest ends page 1,
        # B's data and C, D, E are beyond it.  (Azurite lists in name order;
        # within a folder manifest.json sorts before tralivali_*.)
        folder = {k: "backups/%s/" % dates[k] for k in dates}
        for prefix in (None, "backups/"):
            page1 = self.first_page(prefix)
            self.assertEqual(len(page1), PAGE)
            self.assertEqual(page1[-1], folder["B"] + "manifest.json")
            self.assertIn(folder["A"] + "manifest.json", page1)
            for k in "CDE":
                self.assertFalse([n for n in page1 if n.startswith(folder[k])], k)
            self.assertFalse([n for n in page1 if n.startswith(folder["B"] + "tralivali_")])

        # list --json, path-style and (when it resolves) production-style,
        # where the second request carries the marker, signed: every set,
        # each read (no error) and complete or not as its manifest says.
        retention = {"days": 30, "keep_min": 2}
        confs = [self.write_config(retention=retention)]
        if not HOSTS["skip"]:
            confs.append(self.write_config_in(
                "host", host_connection_string(self.azurite.port), retention=retention))
        want = sorted((folder[k], complete[k], None, len(self.COLLS)) for k in dates)
        for conf in confs:
            got = sorted((s["set"], s["complete"], s.get("error"), s.get("collections"))
                         for s in self.list_json(conf))
            self.assertEqual(got, want, "list --json (%s)" % conf)

        # prune-sets (production-style when it resolves): a plan line for
        # every set, one 'leave' line for every filler blob.
        conf = confs[-1]
        rc, out, err = self.prune(conf, "--dry-run", "-v", "--today", day.strftime("%Y-%m-%d"))
        leaves = [ln for ln in out.splitlines() if ln.startswith("leave ")]
        shown = "\n".join(ln for ln in out.splitlines() if not ln.startswith("leave ")) + \
            "\n(%d 'leave' lines)\n%s" % (len(leaves), err)
        self.assertEqual(rc, 0, "prune --dry-run: %s" % shown)
        plan = {}
        for ln in out.splitlines():
            m = re.match(r"^(keep|delete) (\S+): ", ln)
            if m:
                plan[m.group(2)] = m.group(1)
        self.assertEqual(plan, {folder["A"]: "delete", folder["B"]: "delete",
                                folder["C"]: "keep", folder["D"]: "keep",
                                folder["E"]: "keep"}, shown)
        self.assertEqual(len(leaves), n_filler, "not every foreign blob was seen")

        # ... and the real run deletes exactly A and B.
        rc, out, err = self.prune(conf, "--today", day.strftime("%Y-%m-%d"))
        self.assertEqual(rc, 0, "prune: %s\n%s" % (out, err))
        gone = {n for k in "AB" for n, _d, _t in sets[k]}
        self.assertEqual(self.blobs.names(), sorted(set(all_names) - gone))
        self.assertEqual(sorted(s["set"] for s in self.list_json(conf)),
                         sorted(folder[k] for k in "CDE"))

    def prune(self, conf, *args):
        p = subprocess.run([PRUNE, "-c", conf] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120, env=h.daemon_env())
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))


if __name__ == "__main__":
    h.main()
