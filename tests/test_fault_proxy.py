#!/usr/bin/python3
"""Self-test of tests/fault_proxy.py: Microsoft's SDK (python3-azure-storage)
through the proxy to Azurite, with every kind of fault; what really landed
is read directly from Azurite, not through the proxy.

Run:  /usr/bin/python3 tests/test_fault_proxy.py [-v]
Exits 0 (pass), 1 (fail) or 77 (Azurite or the SDK missing).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness as h  # noqa: E402
import fault_proxy  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402

AZ = None


def setUpModule():
    global AZ
    why = h.Azurite.available()
    if why:
        raise unittest.SkipTest(why)
    AZ = h.Azurite().start()


def tearDownModule():
    if AZ is not None:
        AZ.stop()


def sdk(cs, retries=0):
    """A service client that does not retry on its own (retries=0), or
    retries quickly."""
    from azure.storage.blob import BlobServiceClient, LinearRetry
    pol = LinearRetry(backoff=0.1, random_jitter_range=0, retry_total=retries)
    return BlobServiceClient.from_connection_string(
        cs, retry_policy=pol, connection_timeout=10, read_timeout=30)


class ProxyTest(unittest.TestCase):

    def setUp(self):
        self.proxy = FaultProxy(upstream_port=AZ.port).start()
        self.addCleanup(self.proxy.stop)
        self.cname = "fp" + uuid.uuid4().hex[:12]
        self.direct = sdk(AZ.connection_string).get_container_client(self.cname)
        self.direct.create_container()
        self.via = sdk(self.proxy.connection_string()).get_container_client(self.cname)
        self.proxy.reset_stats()

    def blob(self, name):
        return self.via.get_blob_client(name)

    def assertFired(self, n, action=None):
        st = self.proxy.stats()
        # The request log says what happened instead, when a fault did not fire.
        self.assertEqual(st["faults_fired"], n, "fired %r; requests %r"
                         % (st["fired"], st.get("log", [])[-8:]))
        if action:
            self.assertTrue(all(f["action"] == action for f in st["fired"]), st["fired"])
        return st

    # --------------------------------------------------------------------
    def test_pass_through_and_kinds(self):
        from azure.storage.blob import BlobBlock
        b = self.blob("dir/a.bin")
        b.upload_blob(b"hello world", overwrite=True)                     # put_blob
        c = self.blob("dir/b.bin")
        c.stage_block("YmxrMDA=", b"x" * 1000)                            # put_block
        c.stage_block("YmxrMDE=", b"y" * 2000)
        c.commit_block_list([BlobBlock("YmxrMDA="), BlobBlock("YmxrMDE=")])  # put_block_list
        self.assertEqual(b.download_blob().readall(), b"hello world")      # get
        self.assertEqual(sorted(x.name for x in self.via.list_blobs()), ["dir/a.bin", "dir/b.bin"])
        self.assertEqual(c.get_blob_properties().size, 3000)              # head
        b.delete_blob()                                                   # delete
        self.assertEqual([x.name for x in self.direct.list_blobs()], ["dir/b.bin"])
        self.assertEqual(self.direct.get_blob_client("dir/b.bin").download_blob().readall(),
                         b"x" * 1000 + b"y" * 2000)
        other = sdk(self.proxy.connection_string()).get_container_client("fp" + uuid.uuid4().hex[:12])
        other.create_container()                                          # create_container
        other.delete_container()                                          # delete
        st = self.proxy.stats()
        req = st["requests"]
        self.assertEqual(req.get("put_blob"), 1, req)
        self.assertEqual(req.get("put_block"), 2, req)
        self.assertEqual(req.get("put_block_list"), 1, req)
        self.assertEqual(req.get("list"), 1, req)
        self.assertEqual(req.get("head"), 1, req)
        self.assertEqual(req.get("create_container"), 1, req)
        self.assertEqual(req.get("delete"), 2, req)
        self.assertGreaterEqual(req.get("get", 0), 1, req)
        self.assertEqual(st["requests"], st["forwarded"])
        self.assertEqual(st["faults_fired"], 0)
        self.assertEqual(st["statuses"]["put_block"], {"201": 2})
        # keep-alive: far fewer connections than requests
        self.assertLess(st["connections"], sum(req.values()) / 2, st)

    def test_classify(self):
        c = fault_proxy.classify
        self.assertEqual(c("PUT", "/a/c/b?comp=block&blockid=QQ%3D%3D"), "put_block")
        self.assertEqual(c("PUT", "/a/c/b?blockid=QQ%3D%3D&comp=block"), "put_block")
        self.assertEqual(c("PUT", "/a/c/b?comp=blocklist"), "put_block_list")
        self.assertEqual(c("GET", "/a/c?restype=container&comp=list&prefix=x"), "list")
        self.assertEqual(c("GET", "/a?comp=list"), "list")
        self.assertEqual(c("DELETE", "/a/c/b"), "delete")
        self.assertEqual(c("GET", "/a/c/b"), "get")
        self.assertEqual(c("HEAD", "/a/c/b"), "head")
        self.assertEqual(c("PUT", "/a/c?restype=container"), "create_container")
        self.assertEqual(c("PUT", "/a/c/b"), "put_blob")
        self.assertEqual(c("PUT", "/a/c/b?comp=metadata"), "other")
        self.assertEqual(c("GET", "/a/c?restype=container"), "other")

    def test_status_count_and_headers(self):
        from azure.core.exceptions import HttpResponseError
        self.proxy.add_fault(kind="put_blob", action="status", status=503, count=2,
                             headers={"Retry-After": "1"})
        b = self.blob("s.bin")
        for _ in range(2):
            with self.assertRaises(HttpResponseError) as cm:
                b.upload_blob(b"abc", overwrite=True)
            self.assertEqual(cm.exception.status_code, 503)
            self.assertEqual(cm.exception.error_code, "ServerBusy")
            self.assertEqual(cm.exception.response.headers.get("Retry-After"), "1")
        self.assertEqual([x.name for x in self.direct.list_blobs()], [])
        b.upload_blob(b"abc", overwrite=True)                             # third: through
        self.assertEqual(self.direct.get_blob_client("s.bin").download_blob().readall(), b"abc")
        st = self.assertFired(2, "status")
        self.assertEqual(st["statuses"]["put_blob"], {"503": 2, "201": 1})
        self.assertEqual(st["forwarded"].get("put_blob"), 1)
        self.assertEqual(st["faults"], [], "a spent fault is still listed")

    def test_429_ms_header_and_sdk_retry(self):
        from azure.core.exceptions import HttpResponseError
        self.proxy.add_fault(kind="get", status=429, headers={"x-ms-retry-after-ms": "700"})
        self.direct.get_blob_client("g.bin").upload_blob(b"data")
        with self.assertRaises(HttpResponseError) as cm:
            self.blob("g.bin").download_blob().readall()
        self.assertEqual(cm.exception.status_code, 429)
        self.assertEqual(cm.exception.response.headers.get("x-ms-retry-after-ms"), "700")
        # A retrying client gets through the next one.
        self.proxy.add_fault(kind="get", status=500)
        retrying = sdk(self.proxy.connection_string(), retries=2).get_container_client(self.cname)
        self.assertEqual(retrying.get_blob_client("g.bin").download_blob().readall(), b"data")
        self.assertFired(2, "status")

    def test_nth_only(self):
        from azure.core.exceptions import HttpResponseError
        self.proxy.add_fault(kind="put_block", nth=2, status=500)
        b = self.blob("n.bin")
        b.stage_block("MDA=", b"a")
        with self.assertRaises(HttpResponseError) as cm:
            b.stage_block("MDE=", b"b")
        self.assertEqual(cm.exception.status_code, 500)
        self.assertEqual(cm.exception.error_code, "InternalError")
        b.stage_block("MDE=", b"b")
        b.stage_block("MDI=", b"c")
        st = self.assertFired(1)
        self.assertEqual(st["statuses"]["put_block"], {"201": 3, "500": 1})
        # (the SDK base64-encodes block ids once more: MDE= -> TURFPQ==)
        self.assertIn("blockid=TURFPQ%3D%3D", st["fired"][0]["query"])

    def test_path_filter(self):
        from azure.core.exceptions import HttpResponseError
        self.proxy.add_fault(kind="put_blob", path="/victim", status=503, count=0)
        self.blob("bystander").upload_blob(b"1")
        with self.assertRaises(HttpResponseError):
            self.blob("victim").upload_blob(b"2")
        self.assertEqual([x.name for x in self.direct.list_blobs()], ["bystander"])

    def assertTransportError(self, fn):
        from azure.core.exceptions import ServiceRequestError, ServiceResponseError
        with self.assertRaises((ServiceRequestError, ServiceResponseError)):
            fn()

    def test_reset_before(self):
        self.proxy.add_fault(kind="put_blob", action="reset_before")
        self.assertTransportError(lambda: self.blob("r.bin").upload_blob(b"z" * 100))
        self.assertEqual([x.name for x in self.direct.list_blobs()], [])
        st = self.assertFired(1, "reset_before")
        self.assertEqual(st["forwarded"].get("put_blob", 0), 0)
        self.blob("r.bin").upload_blob(b"z" * 100)                       # next: fine
        self.assertEqual([x.name for x in self.direct.list_blobs()], ["r.bin"])

    def test_reset_mid_body(self):
        self.proxy.add_fault(kind="put_block", action="reset_mid_body")
        big = os.urandom(4 << 20)
        b = self.blob("m.bin")
        self.assertTransportError(lambda: b.stage_block("MDA=", big))
        st = self.assertFired(1, "reset_mid_body")
        self.assertEqual(st["forwarded"].get("put_block", 0), 0)
        _committed, uncommitted = self.direct.get_blob_client("m.bin").get_block_list("all") \
            if self._blob_has_blocks("m.bin") else ([], [])
        self.assertEqual(uncommitted, [], "a reset request body reached Azurite")
        b.stage_block("MDA=", big)
        b.commit_block_list(["MDA="])
        self.assertEqual(self.direct.get_blob_client("m.bin").download_blob().readall(), big)

    def _blob_has_blocks(self, name):
        from azure.core.exceptions import ResourceNotFoundError
        try:
            self.direct.get_blob_client(name).get_block_list("all")
            return True
        except ResourceNotFoundError:
            return False

    def test_reset_after_lost_response(self):
        """The upstream applies the Put Block List, the client hears a reset;
        committing the same list again works (Azure accepts it)."""
        b = self.blob("l.bin")
        b.stage_block("MDA=", b"first-")
        b.stage_block("MDE=", b"second")
        self.proxy.add_fault(kind="put_block_list", action="reset_after")
        self.assertTransportError(lambda: b.commit_block_list(["MDA=", "MDE="]))
        st = self.assertFired(1, "reset_after")
        self.assertEqual(st["forwarded"].get("put_block_list"), 1)
        self.assertEqual(self.direct.get_blob_client("l.bin").download_blob().readall(),
                         b"first-second", "the lost commit was not applied upstream")
        b.commit_block_list(["MDA=", "MDE="])
        self.assertEqual(self.direct.get_blob_client("l.bin").download_blob().readall(),
                         b"first-second")

    def test_delay(self):
        self.direct.get_blob_client("d.bin").upload_blob(b"slow")
        self.proxy.add_fault(kind="get", action="delay", delay=1.5)
        t0 = time.monotonic()
        self.assertEqual(self.blob("d.bin").download_blob().readall(), b"slow")
        self.assertGreaterEqual(time.monotonic() - t0, 1.4)
        t0 = time.monotonic()
        self.assertEqual(self.blob("d.bin").download_blob().readall(), b"slow")
        self.assertLess(time.monotonic() - t0, 1.0, "the delay fired twice")
        self.assertFired(1, "delay")

    def test_outage_window(self):
        from azure.core.exceptions import HttpResponseError
        self.proxy.outage(1.5)
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 1.2:
            with self.assertRaises(HttpResponseError) as cm:
                self.blob("o%d" % n).upload_blob(b"o")
            self.assertEqual(cm.exception.status_code, 503)
            n += 1
        time.sleep(max(0, 1.6 - (time.monotonic() - t0)))
        self.blob("after").upload_blob(b"ok")
        self.assertEqual([x.name for x in self.direct.list_blobs()], ["after"])
        self.assertFired(n, "status")
        self.assertGreater(n, 2)

    def test_outage_reset_until_cleared(self):
        self.proxy.outage(None, mode="reset")
        for _ in range(3):
            self.assertTransportError(lambda: self.blob("x").upload_blob(b"x"))
        self.proxy.clear()
        self.blob("x").upload_blob(b"x")
        st = self.proxy.stats()
        self.assertGreaterEqual(st["faults_fired"], 3)
        self.assertEqual(st["forwarded"].get("put_blob"), 1)

    def test_outage_refuse(self):
        self.proxy.outage(None, mode="refuse")
        self.assertTransportError(lambda: self.blob("y").upload_blob(b"y"))
        self.proxy.clear()
        self.blob("y").upload_blob(b"y")
        self.assertGreaterEqual(self.proxy.stats()["faults_fired"], 1)

    def test_idle_upstream_connection(self):
        """Azurite closes idle keep-alive connections after ~5 s; the proxy
        must not turn that into an error for the client."""
        self.direct.get_blob_client("i.bin").upload_blob(b"idle")
        b = self.blob("i.bin")
        self.assertEqual(b.download_blob().readall(), b"idle")
        time.sleep(6)
        self.assertEqual(b.download_blob().readall(), b"idle")
        st = self.proxy.stats()
        self.assertFalse([e for e in st["log"] if e["outcome"] != "forwarded"], st["log"])

    def test_control_path(self):
        port = self.proxy.port
        r = fault_proxy.control(port, {"add": {"kind": "put_blob", "status": 503, "count": 1}})
        self.assertTrue(r["ok"])
        self.assertEqual(len(r["ids"]), 1)
        st = fault_proxy.control(port)
        self.assertEqual(len(st["faults"]), 1)
        fault_proxy.control(port, {"clear": True})
        self.assertEqual(fault_proxy.control(port)["faults"], [])
        fault_proxy.control(port, {"set": [{"kind": "get", "status": 500}, {"kind": "list", "status": 429}]})
        self.assertEqual(len(fault_proxy.control(port)["faults"]), 2)
        fault_proxy.control(port, method="DELETE", body=None)
        self.assertEqual(fault_proxy.control(port)["faults"], [])
        for bad in ({"add": {"kind": "nonsense"}}, {"add": {"action": "explode"}},
                    {"add": {"kind": "get", "bogus": 1}}):
            with self.assertRaises(RuntimeError) as cm:
                fault_proxy.control(port, bad)
            self.assertIn("400", str(cm.exception))
        st = self.proxy.stats()
        self.assertEqual(st["requests"], {}, "control requests were counted as storage requests")
        self.assertEqual(st["forwarded"], {})

    def test_stop(self):
        port = self.proxy.port
        self.blob("s").upload_blob(b"s")        # a kept-alive connection exists
        self.proxy.stop()
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        alive = [t for t in threading.enumerate() if t.name.startswith("fault-proxy")]
        self.assertEqual(alive, [], "proxy threads still alive after stop()")

    def test_loopback_only(self):
        with self.assertRaises(ValueError):
            FaultProxy(upstream_port=AZ.port, host="0.0.0.0")


class CliTest(unittest.TestCase):

    def test_program(self):
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "fault_proxy.py"),
                              "--upstream", "127.0.0.1:%d" % AZ.port],
                             stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        try:
            line = p.stdout.readline().decode()
            self.assertRegex(line, r"^listening 127\.0\.0\.1:\d+$")
            port = int(line.strip().rsplit(":", 1)[1])
            fault_proxy.control(port, {"kind": "create_container", "status": 503})
            cname = "fp" + uuid.uuid4().hex[:12]
            cs = h.connection_string(port)
            from azure.core.exceptions import HttpResponseError
            cc = sdk(cs).get_container_client(cname)
            with self.assertRaises(HttpResponseError):
                cc.create_container()
            cc.create_container()
            st = fault_proxy.control(port)
            self.assertEqual(st["faults_fired"], 1)
            self.assertEqual(st["requests"].get("create_container"), 2)
            self.assertTrue(sdk(AZ.connection_string).get_container_client(cname).exists())
            # plain urllib against the control path
            with urllib.request.urlopen("http://127.0.0.1:%d/__fault__?nolog=1" % port,
                                        timeout=5) as resp:
                self.assertNotIn("log", json.loads(resp.read()))
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                self.fail("fault_proxy.py did not exit on SIGTERM")
            p.stdout.close()
        self.assertEqual(rc, 0)


def main():
    h.server_selftest_main(h.Azurite.available)


if __name__ == "__main__":
    main()
