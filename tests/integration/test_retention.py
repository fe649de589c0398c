#!/usr/bin/python3
"""test_retention.py - retention against Azurite: prune-sets and
`mongo-azure-backupctl prune`.

Backup sets are made directly in the container with Microsoft's SDK, dated
relative to today (UTC): data and metadata blobs, and a manifest.json that
says complete, incomplete, is garbage, or is missing (the .NET worker's
sets), next to blobs that are not under the layout at all.  The plan
printed by --dry-run is compared line by line, and after a real run the
exact set of remaining blob names is.  One test prunes around a set made by
a real backup run.
"""

import datetime
import gzip
import json
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402

PRUNE = h.program("prune-sets")
COLLS = ("users", "messages")
DAYS = 30
KEEP_MIN = 3

# Never under the default layout backups/{date}/...; never touched.
FOREIGN = [
    "backups/notes.txt",
    "backups/2026-13-01/tralivali_users.bson.gz",
    "backups/2026-02-30/tralivali_users.bson.gz",
    "backups/2020-01-01",
    "backups/2020-01-02T000000/tralivali_users.bson.gz",
    "backups/20200103/manifest.json",
    "other/2020-01-01/tralivali_users.bson.gz",
    "readme.txt",
]


def setUpModule():
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


def today():
    return datetime.datetime.now(datetime.timezone.utc).date()


def ago(days, base=None):
    return ((base or today()) - datetime.timedelta(days=days)).strftime("%Y-%m-%d")


def folder(date):
    return "backups/%s/" % date


class RetentionTest(h.BackupTestCase):

    def setUp(self):
        super().setUp()
        self.blobs.create_container()
        self.today = today()

    # helpers ------------------------------------------------------------
    def config(self, **kw):
        kw.setdefault("retention", {"days": DAYS, "keep_min": KEEP_MIN})
        kw.setdefault("collections", "users")
        return self.write_config(**kw)

    def make_set(self, date, manifest):
        """A set at backups/DATE/: manifest True/False ("complete"),
        "garbage", or None (no manifest).  Returns its blob names."""
        names = []
        entries = []
        for coll in COLLS:
            data = h.data_blob_name(coll, date)
            meta = h.metadata_blob_name(coll, date)
            self.blobs.upload(data, gzip.compress(b"x" * 100), content_type="application/gzip")
            self.blobs.upload(meta, gzip.compress(b"{}"), content_type="application/gzip")
            names += [data, meta]
            entries.append({"name": coll, "result": "ok", "blob": data, "metadata_blob": meta})
        if manifest is not None:
            if manifest == "garbage":
                body = b"\x00\x01 this is not json {"
            else:
                body = json.dumps({"format": 1, "tool": "mongo-azure-backup",
                                   "set": folder(date), "complete": manifest,
                                   "collections": entries}).encode()
            name = h.manifest_blob_name(date)
            self.blobs.upload(name, body, content_type="application/json")
            names.append(name)
        return names

    def make_foreign(self):
        for name in FOREIGN:
            self.blobs.upload(name, b"not ours")
        return list(FOREIGN)

    def prune(self, conf, *args, status=False, timeout=60):
        """Run prune-sets: (rc, stdout text, stderr text, status records)."""
        argv = [PRUNE, "-c", conf] + list(args)
        records = []
        if not status:
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=timeout, env=h.daemon_env())
            return p.returncode, p.stdout.decode(), p.stderr.decode(), records
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv += ["--status-fd", str(theirs.fileno())]
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env=h.daemon_env(), pass_fds=(theirs.fileno(),))
            theirs.close()
            out, err = p.communicate(timeout=timeout)
            ours.settimeout(5)
            while True:
                msg = ours.recv(4096)
                if not msg:
                    break
                records.append(msg.decode())
        finally:
            ours.close()
            theirs.close()
        return p.returncode, out.decode(), err.decode(), records

    def assertPlan(self, out, expected, err=""):
        lines = [ln for ln in out.splitlines() if not ln.startswith("leave ")]
        self.assertEqual(lines, expected, "plan differs; stderr:\n%s" % err)

    # the standard scene -------------------------------------------------
    def scene(self):
        """Sets around the 30-day window; returns (names by age, expected
        plan lines, ages that must survive)."""
        kinds = [
            (1, True),          # newest complete
            (5, False),         # within, incomplete
            (10, None),         # within, no manifest
            (DAYS, False),      # exactly at the cutoff: kept
            (40, None),         # old, no manifest: not counted, deleted
            (45, "garbage"),    # old, unreadable manifest: deleted
            (50, True),         # 2nd newest complete: kept however old
            (60, False),        # old incomplete: deleted, not counted
            (70, True),         # 3rd newest complete: kept
            (80, True),         # 4th complete: deleted
            (400, None),        # the .NET worker's: deleted by age
        ]
        sets = {age: self.make_set(ago(age, self.today), m) for age, m in kinds}
        cut = ago(DAYS, self.today)
        old = "is older than %d days" % DAYS
        newest = "one of the newest %d complete sets" % KEEP_MIN

        def d(age):
            return ago(age, self.today)

        plan = [
            "delete %s: %s %s, no manifest (not a complete backup)" % (folder(d(400)), d(400), old),
            "delete %s: %s %s" % (folder(d(80)), d(80), old),
            "keep %s: %s (%s %s)" % (folder(d(70)), newest, d(70), old),
            "delete %s: %s %s, manifest says incomplete (not a complete backup)"
            % (folder(d(60)), d(60), old),
            "keep %s: %s (%s %s)" % (folder(d(50)), newest, d(50), old),
            "delete %s: %s %s, manifest unreadable (not a complete backup)"
            % (folder(d(45)), d(45), old),
            "delete %s: %s %s, no manifest (not a complete backup)" % (folder(d(40)), d(40), old),
            "keep %s: within %d days (%s >= %s); manifest says incomplete"
            % (folder(d(DAYS)), DAYS, d(DAYS), cut),
            "keep %s: within %d days (%s >= %s); no manifest" % (folder(d(10)), DAYS, d(10), cut),
            "keep %s: within %d days (%s >= %s); manifest says incomplete"
            % (folder(d(5)), DAYS, d(5), cut),
            "keep %s: within %d days (%s >= %s)" % (folder(d(1)), DAYS, d(1), cut),
        ]
        survivors = (1, 5, 10, DAYS, 50, 70)
        return sets, plan, survivors

    # tests --------------------------------------------------------------
    def test_dry_run_then_prune(self):
        conf = self.config()
        sets, plan, survivors = self.scene()
        foreign = self.make_foreign()
        # Deeper than one segment below a set folder: not ours either,
        # even inside a set that goes.
        nested = folder(ago(400, self.today)) + "sub/tralivali_users.bson.gz"
        self.blobs.upload(nested, b"nested")
        foreign.append(nested)
        before = self.blobs.names()
        day = self.today.strftime("%Y-%m-%d")

        rc, out, err, _ = self.prune(conf, "--dry-run", "-v", "--today", day)
        self.assertEqual(rc, 0, err)
        self.assertPlan(out, plan, err)
        leave = sorted(ln for ln in out.splitlines() if ln.startswith("leave "))
        # Only what was listed under the prefix "backups/" is reported.
        self.assertEqual(leave, sorted("leave %s: not under the layout" % n
                                       for n in foreign if n.startswith("backups/")))
        self.assertEqual(self.blobs.names(), before, "--dry-run deleted something")
        self.assertRegex(err, r"manifest\.json: not a usable manifest")

        rc, out, err, records = self.prune(conf, "--today", day, "--current-set",
                                           folder(ago(1, self.today)), status=True)
        self.assertEqual(rc, 0, err)
        self.assertPlan(out, plan, err)
        self.assertNotIn("leave ", out)
        want = sorted(foreign + [n for age in survivors for n in sets[age]])
        self.assertEqual(self.blobs.names(), want)
        deleted = [n for age in sets if age not in survivors for n in sets[age]]
        for name in deleted:
            self.assertRegex(err, r"deleted %s/%s\n" % (self.container, name.replace(".", r"\.")))
        self.assertEqual(records[-1], "result ok sets_deleted=5 blobs_deleted=%d sets_kept=6 "
                         "immutable=0" % len(deleted), "records: %r" % records)

        # A second run finds nothing more to do.
        rc, out, err, _ = self.prune(conf, "--today", day)
        self.assertEqual(rc, 0, err)
        self.assertEqual([ln.split(" ", 1)[0] for ln in out.splitlines()], ["keep"] * 6)
        self.assertEqual(self.blobs.names(), want)

    def test_ctl_prune_dry_run(self):
        conf = self.config()
        _sets, plan, _survivors = self.scene()
        self.make_foreign()
        before = self.blobs.names()

        p = subprocess.run([h.CTL, "-c", conf, "prune", "--dry-run"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60, env=h.daemon_env())
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 0, err)
        if today() == self.today:      # not across midnight UTC
            self.assertPlan(p.stdout.decode(), plan, err)
        rc, out, err2, _ = self.prune(conf, "--dry-run")
        self.assertEqual(rc, 0, err2)
        self.assertEqual(p.stdout.decode(), out)
        self.assertEqual(self.blobs.names(), before, "ctl prune --dry-run deleted something")
        self.assertIn("nothing was deleted", err)

    def test_ctl_prune_deletes_and_passes_exit_codes(self):
        conf = self.config(retention={"days": 7, "keep_min": 1})
        keep = self.make_set(ago(1), True)
        gone = self.make_set(ago(20), True)
        p = subprocess.run([h.CTL, "-c", conf, "prune"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60, env=h.daemon_env())
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn("delete %s:" % folder(ago(20)), p.stdout.decode())
        self.assertEqual(self.blobs.names(), sorted(keep))
        self.assertTrue(gone)

        p = subprocess.run([h.CTL, "-c", os.path.join(self.tmp, "missing.conf"), "prune"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                           env=h.daemon_env())
        self.assertEqual(p.returncode, 2, p.stderr.decode())
        p = subprocess.run([h.CTL, "-c", conf, "prune", "--bogus"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60, env=h.daemon_env())
        self.assertEqual(p.returncode, 2, p.stderr.decode())

    def test_refuses_when_current_set_incomplete(self):
        conf = self.config()
        self.make_set(ago(100), True)
        self.make_set(ago(200), None)
        self.make_set(ago(300), False)
        current = self.make_set(ago(0), False)
        self.assertTrue(current)
        before = self.blobs.names()

        rc, out, err, records = self.prune(conf, "--current-set", folder(ago(0)), status=True)
        self.assertEqual(rc, 1, err)
        self.assertEqual(out, "")
        self.assertRegex(err, r"refusing to prune: the current set %s is not complete "
                         r"\(manifest says incomplete\); nothing was deleted"
                         % folder(ago(0)))
        self.assertEqual(self.blobs.names(), before)
        self.assertTrue(records and records[-1].startswith("result error class=local "),
                        records)

        # Not listed at all: the same refusal.
        rc, out, err, _ = self.prune(conf, "--current-set", "backups/%s" % ago(-1))
        self.assertEqual(rc, 1, err)
        self.assertIn("not in the listing", err)
        self.assertEqual(self.blobs.names(), before)

        # Not a folder under the layout: a usage error.
        rc, out, err, _ = self.prune(conf, "--current-set", "elsewhere/x/")
        self.assertEqual(rc, 2, err)
        self.assertEqual(self.blobs.names(), before)

    def test_only_incomplete_sets(self):
        """Nothing complete anywhere: keep_min cannot hold incomplete sets,
        so the old ones go by age and the recent ones stay."""
        conf = self.config()
        recent = self.make_set(ago(2), False)
        for age, m in ((50, False), (60, None), (70, "garbage")):
            self.make_set(ago(age), m)
        rc, out, err, _ = self.prune(conf)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.blobs.names(), sorted(recent))

    def test_failed_delete_leaves_no_complete_looking_set(self):
        """Deletes refused (a SAS without 'd'): prune stops at the first
        set, says why on the status channel, and the set it started on no
        longer claims to be complete, while its data is still there."""
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas
        expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        sas = generate_container_sas(h.DEV_ACCOUNT, self.container, account_key=h.DEV_KEY,
                                     permission=ContainerSasPermissions(read=True, write=True,
                                                                        list=True),
                                     expiry=expiry)
        cs = "BlobEndpoint=http://127.0.0.1:%d/%s;SharedAccessSignature=%s" % (
            self.azurite.port, h.DEV_ACCOUNT, sas)
        conf = self.config(connection_string=cs, retention={"days": 30, "keep_min": 1})
        old = self.make_set(ago(100), True)
        self.make_set(ago(1), True)
        before = self.blobs.names()

        rc, out, err, records = self.prune(conf, status=True)
        self.assertEqual(rc, 1, err)
        self.assertTrue(records and records[-1].startswith("result error class=auth status=403"),
                        records)
        self.assertNotIn(sas.split("sig=")[-1], err + "".join(records))
        self.assertEqual(self.blobs.names(), before)
        manifest = json.loads(self.blobs.download(h.manifest_blob_name(ago(100))))
        self.assertIs(manifest["complete"], False, manifest)

        # With a key that may delete, the demoted set goes as an incomplete one.
        conf = self.config(retention={"days": 30, "keep_min": 1})
        rc, out, err, _ = self.prune(conf)
        self.assertEqual(rc, 0, err)
        self.assertIn("delete %s: %s is older than 30 days, manifest says incomplete"
                      % (folder(ago(100)), ago(100)), out)
        self.assertEqual(self.blobs.names(), sorted(set(before) - set(old)))

    def test_storage_not_listening_is_unreachable(self):
        """Nothing listens at the endpoint: class unreachable (the
        supervisor decides whether that is an outage or a wrong endpoint)."""
        conf = self.config(connection_string=h.connection_string(h.free_port()),
                           azure__max_retries=0)
        rc, out, err, records = self.prune(conf, status=True)
        self.assertEqual(rc, 1, err)
        self.assertEqual(out, "")
        self.assertTrue(records and records[-1].startswith("result error class=unreachable "),
                        records)

    def test_prune_after_real_backup(self):
        """A complete run prunes by itself, reading its own manifest as
        complete; pruning again afterwards finds nothing to do."""
        h.seed_users(self.db, "users", 50)
        conf = self.config(retention={"days": 7, "keep_min": 1})
        old = [self.make_set(ago(age), True) for age in (30, 31)]
        self.assertTrue(old)
        rc, log, _ = self.run_backup(conf)
        self.assertExit(rc, 0, log)
        self.assertRegex(log, r"retention: 2 sets deleted")
        names = self.blobs.names()
        made = sorted({n.split("/")[1] for n in names})
        self.assertEqual(len(made), 1, names)
        self.assertNotIn(ago(30), made)
        self.assertNotIn(ago(31), made)
        current = folder(made[0])
        self.assertIn(current + "manifest.json", names)

        rc, out, err, records = self.prune(conf, "--current-set", current, status=True)
        self.assertEqual(rc, 0, err)
        self.assertIn("keep %s: within 7 days" % current, out)
        self.assertEqual(self.blobs.names(), names)
        self.assertTrue(records[-1].startswith("result ok sets_deleted=0 "), records)

    def test_failed_run_prunes_nothing(self):
        """A run that is not complete never deletes anything."""
        h.seed_users(self.db, "users", 20)
        conf = self.config(retention={"days": 7, "keep_min": 1},
                           collections="users, no_such_collection")
        old = [self.make_set(ago(age), True) for age in (30, 31)]
        before = self.blobs.names()
        rc, log, _ = self.run_backup(conf)
        self.assertExit(rc, 1, log)
        self.assertNotRegex(log, r"retention: ")
        after = self.blobs.names()
        for name in before:
            self.assertIn(name, after)
        self.assertTrue(old)


class TestRetentionMeetsStorage(RetentionTest):
    """Through the fault proxy: what the storage refuses or cannot give."""

    def setUp(self):
        super().setUp()
        from fault_proxy import FaultProxy
        self.proxy = FaultProxy(upstream_port=self.azurite.port).start()
        self.addCleanup(self.proxy.stop)

    def proxied(self, **kw):
        return self.config(connection_string=self.proxy.connection_string(), **kw)

    def test_immutable_blob_keeps_what_it_must(self):
        """A WORM-protected data blob (409 BlobImmutableDueToPolicy on its
        Delete): prune goes on, that blob stays, the rest of its set and
        the other old set go, and the status counts one immutable set.  A
        set whose manifest is immutable is left whole."""
        conf = self.proxied(retention={"days": 30, "keep_min": 1})
        worm_blob_set = self.make_set(ago(100), True)
        worm_manifest_set = self.make_set(ago(95), True)
        plain_old = self.make_set(ago(90), True)
        self.make_set(ago(1), True)
        locked = h.data_blob_name("users", ago(100))
        self.proxy.add_fault(kind="delete", path="/" + locked, status=409,
                             error_code="BlobImmutableDueToPolicy", count=0)
        self.proxy.add_fault(kind=["put_blob", "put_block_list"],
                             path="/" + h.manifest_blob_name(ago(95)), status=409,
                             error_code="BlobImmutableDueToPolicy", count=0)
        rc, out, err, records = self.prune(conf, status=True)
        st = self.proxy.stats(log=False)
        self.assertEqual(st["faults_fired"] >= 2, True, st)
        self.assertEqual(rc, 0, err)
        self.assertRegex(err, r"%s is immutable \(BlobImmutableDueToPolicy\)" % locked)
        self.assertTrue(records and records[-1].startswith("result ok sets_deleted=1 "),
                        records)
        self.assertIn("immutable=2", records[-1])
        names = set(self.blobs.names())
        # The locked blob alone is left of its set; its manifest went last.
        self.assertEqual(names & set(worm_blob_set), {locked})
        # An immutable manifest: nothing of that set was touched.
        self.assertEqual(names & set(worm_manifest_set), set(worm_manifest_set))
        self.assertIs(json.loads(self.blobs.download(h.manifest_blob_name(ago(95))))
                      ["complete"], True)
        self.assertEqual(names & set(plain_old), set())

    def test_failed_verification_prunes_nothing(self):
        """[verify] after_backup = yes and the new set does not read back
        (every Get of its data blob answered 500): the run fails and
        nothing old is pruned on its account."""
        h.seed_users(self.db, "users", 20)
        conf = self.proxied(retention={"days": 7, "keep_min": 1},
                            verify={"after_backup": "yes"},
                            azure={"max_retries": 0})
        old = [self.make_set(ago(age), True) for age in (30, 31)]
        before = self.blobs.names()
        self.proxy.add_fault(kind="get", path="/tralivali_users.bson.gz", status=500, count=0)
        rc, log, _ = self.run_backup(conf)
        self.assertGreater(self.proxy.stats(log=False)["faults_fired"], 0, log)
        self.assertExit(rc, 1, log)
        self.assertRegex(log, r"verification of \S+ failed")
        self.assertNotRegex(log, r"retention: \d+ sets? deleted")
        after = self.blobs.names()
        for name in before:
            self.assertIn(name, after)
        self.assertTrue(old)


if __name__ == "__main__":
    h.main()
