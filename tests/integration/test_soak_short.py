#!/usr/bin/python3
"""test_soak_short.py - a short run of tests/soak.py for `make check`.

12 service-mode runs, each with one fault (every fault of soak.FAULTS at
least once: kills of export-collection, upload-blob and the supervisor,
MongoDB close/half-reply/hang mid-cursor, and - through tests/fault_proxy.py
- storage 503 bursts, resets and a short outage), then soak.py's invariants:
committed blobs equal to the source, complete manifests true, no good set
deleted or rewritten, no zombie or leftover process, the daemon's fds and
VmRSS flat.  The full soak is `tests/soak.py --runs 100`.

Needs tests/fake_mongod.py (skipped against a real mongod).
"""

import io
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import harness as h  # noqa: E402
import soak  # noqa: E402

RUNS = int(os.environ.get("MAB_SOAK_RUNS", "12"))
SEED = int(os.environ.get("MAB_SOAK_SEED", "7"))


def setUpModule():
    h.setup_module_env()


def tearDownModule():
    h.teardown_module_env()


class TestSoakShort(h.BackupTestCase):

    def test_soak(self):
        self.require_faults()
        out = io.StringIO()

        class Tee:
            def write(self, s):
                out.write(s)
                sys.stderr.write(s)

            def flush(self):
                sys.stderr.flush()

        s = soak.Soak(runs=RUNS, seed=SEED, mode="service", users=30000, out=Tee(),
                      workdir=self.tmp)
        fig = s.run()
        s.print_figures(fig)
        self.assertEqual(s.violations, [], "soak violations:\n" + "\n".join(s.violations))

        # The soak did what it claims: every fault drawn, runs recorded.
        self.assertEqual(fig["runs"], RUNS)
        want = set(soak.FAULTS) if s.use_proxy else set(soak.FAULTS) - set(soak.STORAGE_FAULTS)
        self.assertEqual(set(fig["by_fault"]), want, fig["by_fault"])
        if not s.use_proxy:
            sys.stderr.write("NOTE: tests/fault_proxy.py missing: no storage faults\n")
        # Recoverable faults completed (soak also flags it; this keeps the
        # figures honest), and at least one kill landed in a running run.
        for f in soak.RECOVERABLE:
            for outcome in fig["by_fault"].get(f, {}):
                self.assertEqual(outcome, "complete", (f, fig["by_fault"][f]))
        self.assertTrue(any(v for k, v in fig["kills"].items() if k.endswith(" hit")),
                        "no kill hit a running run: %r" % fig["kills"])
        self.assertGreaterEqual(fig["good_sets"], 1)
        # Service mode: fds and RSS were sampled after each run.
        self.assertTrue(fig["daemons"])
        for d in fig["daemons"]:
            self.assertIsNotNone(d["fds"]["last"], d)
            self.assertIsNotNone(d["rss_kb"]["last"], d)


if __name__ == "__main__":
    h.main()
