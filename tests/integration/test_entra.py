#!/usr/bin/python3
"""test_entra.py - backing up with Microsoft Entra ID tokens instead of a key.

Azurite runs over HTTPS with --oauth basic (it checks each bearer token's
issuer, audience and lifetime), tests/token_server.py plays IMDS, App
Service and Entra ID's token endpoint.  For each source: a backup, then
verify and restore through our own tools, with the blobs read back through
Microsoft's SDK; tokens that live two seconds during a longer run; a wrong
secret, an unknown identity, a token endpoint down for a while (the run
waits and completes) and one that never comes back (run_timeout); the
secret in no output.
"""

import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness as h  # noqa: E402


def setUpModule():
    h.setup_oauth_env()


def tearDownModule():
    h.teardown_oauth_env()


class EntraTestCase(h.OAuthBackupTestCase):

    def seed(self, users=300):
        self.db["users"].insert_many(list(h.gen_users(users, seed=31)))
        self.db["types"].insert_one(h.every_type_document())

    def ctl(self, conf, *args, env=None):
        rc, out, err, _t = h.run_program([h.CTL, "-c", conf] + list(args), timeout=180,
                                         env=env)
        return rc, out.decode("utf-8", "replace"), err

    def assertBackedUp(self, log, colls=("users", "types")):
        date = h.utc_today()
        m = json.loads(self.blobs.download(h.manifest_blob_name(date)))
        self.assertIs(m.get("complete"), True, "manifest %r; log:\n%s" % (m, log))
        import gzip
        for coll in colls:
            want, _n = h.read_raw(self.db, coll)
            got = gzip.decompress(self.blobs.download(h.data_blob_name(coll, date)))
            self.assertTrue(got == want, "%s differs from the source" % coll)

    def assertVerifyAndRestore(self, conf, env=None):
        rc, out, err = self.ctl(conf, "verify", "latest", env=env)
        self.assertEqual(rc, 0, "verify: %s\n%s" % (out, err))
        out_dir = os.path.join(self.tmp, "restored")
        rc, out, err = self.ctl(conf, "restore", "latest", "--to-dir", out_dir, env=env)
        self.assertEqual(rc, 0, "restore: %s\n%s" % (out, err))
        want, _n = h.read_raw(self.db, "users")
        with open(os.path.join(out_dir, self.database, "users.bson"), "rb") as f:
            self.assertTrue(f.read() == want, "restored users.bson differs")

    def issued(self):
        return self.tokens.stats(log=False)["tokens_issued"]

    def check_config(self, conf, env=None):
        rc, out, err, _t = h.run_program([h.DAEMON, "-t", "-c", conf], timeout=60, env=env)
        return rc, out.decode("utf-8", "replace") + err


class TestSources(EntraTestCase):

    def test_managed_identity_imds(self):
        self.seed()
        conf = self.write_oauth_config("managed_identity", collections="users, types")
        rc, out = self.check_config(conf)
        self.assertEqual(rc, 0, out)
        rc, log, _e = self.run_backup(conf)
        self.assertExit(rc, 0, log)
        self.assertBackedUp(log)
        self.assertGreaterEqual(self.issued(), 1)
        self.assertVerifyAndRestore(conf)
        reqs = self.tokens.stats()["log"]
        self.assertTrue(reqs and all(r["kind"] == "imds" for r in reqs), reqs[:3])

    def test_managed_identity_user_assigned(self):
        self.seed()
        cid = self.tokens.add_identity()
        conf = self.write_oauth_config("managed_identity", client_id=cid,
                                       collections="users, types")
        rc, log, _e = self.run_backup(conf)
        self.assertExit(rc, 0, log)
        self.assertBackedUp(log)
        self.assertTrue(all(r.get("client_id") == cid for r in self.tokens.stats()["log"]),
                        self.tokens.stats()["log"][:3])

    def test_app_service(self):
        self.seed()
        env = self.tokens.app_service_env()
        conf = self.write_oauth_config("managed_identity", collections="users, types")
        rc, log, _e = self.run_backup(conf, env=env)
        self.assertExit(rc, 0, log)
        self.assertBackedUp(log)
        kinds = {r["kind"] for r in self.tokens.stats()["log"]}
        self.assertEqual(kinds, {"app_service"}, self.tokens.stats()["log"][:3])

    def test_service_principal_secret(self):
        self.seed()
        secret = "s3cret-" + h.uuid.uuid4().hex
        app = self.tokens.add_app(secret=secret)
        conf = self.write_oauth_config("service_principal", client_id=app, secret=secret,
                                       collections="users, types")
        rc, log, _e = self.run_backup(conf)
        self.assertExit(rc, 0, log)
        self.assertBackedUp(log)
        self.assertNotIn(secret, log)
        self.assertVerifyAndRestore(conf)

    def test_service_principal_certificate(self):
        self.seed()
        cert = h.ENV["tls"].client_certificate("sp-%s" % h.uuid.uuid4().hex[:8])
        app = self.tokens.add_app(certificate=cert)
        conf = self.write_oauth_config("service_principal", client_id=app,
                                       certificate_file=cert.pem_file,
                                       collections="users, types")
        os.chmod(cert.pem_file, 0o600)
        rc, out = self.check_config(conf)
        self.assertEqual(rc, 0, out)
        rc, log, _e = self.run_backup(conf)
        self.assertExit(rc, 0, log)
        self.assertBackedUp(log)
        with open(cert.pem_file) as f:
            key_lines = [ln for ln in f.read().splitlines() if ln and "-----" not in ln]
        self.assertFalse([ln for ln in key_lines[:5] if ln in log], "PEM lines in the log")

    def test_workload_identity(self):
        self.seed()
        token = self.tokens.make_federated_token()
        app = self.tokens.add_app(federated_token=token)
        conf = self.write_oauth_config("workload_identity", client_id=app,
                                       federated_token=token, collections="users, types")
        rc, log, _e = self.run_backup(conf)
        self.assertExit(rc, 0, log)
        self.assertBackedUp(log)
        self.assertNotIn(token, log)

    def test_workload_identity_from_the_environment(self):
        """What the AKS webhook sets: client, tenant and token file."""
        self.seed()
        token = self.tokens.make_federated_token()
        app = self.tokens.add_app(federated_token=token)
        path = os.path.join(self.tmp, "aks-token")
        with open(path, "w") as f:
            f.write(token)
        conf = self.write_oauth_config("workload_identity", collections="users, types",
                                       azure={"client_id": None, "tenant_id": None})
        env = {"AZURE_CLIENT_ID": app, "AZURE_TENANT_ID": self.tokens.tenant_id,
               "AZURE_FEDERATED_TOKEN_FILE": path}
        rc, log, _e = self.run_backup(conf, env=env)
        self.assertExit(rc, 0, log)
        self.assertBackedUp(log)


class TestRenewal(EntraTestCase):

    def test_short_lived_tokens_during_a_long_run(self):
        """Tokens live 2 s; the run lasts several times that, in one
        upload of many blocks: each process renews its token as it goes,
        and no request is refused for an expired one."""
        h.seed_users(self.db, "users", 60000, seed=33)
        secret = "s-" + h.uuid.uuid4().hex
        app = self.tokens.add_app(secret=secret)
        self.tokens.set_lifetime(2, "entra")
        conf = self.write_oauth_config(
            "service_principal", client_id=app, secret=secret, collections="users",
            compression={"engine": "zlib", "level": 9, "threads": 1},
            azure={"block_size": "1M", "upload_concurrency": 1},
            log={"level": "debug"})
        t0 = time.monotonic()
        rc, log, _e = self.run_backup(conf, timeout=300)
        elapsed = time.monotonic() - t0
        self.assertExit(rc, 0, log)
        self.assertBackedUp(log, colls=("users",))
        # Outliving one token is enough: the renewal proper is proven below,
        # by one process fetching twice (a fixed longer bound was flaky).
        self.assertGreater(elapsed, 2, "the run was too short to outlive a token")
        # Renewals inside one process: its pid logged two token fetches.
        per_pid = {}
        for m in re.finditer(r"upload-blob\[(\d+)\].*token from .*valid", log):
            per_pid[m.group(1)] = per_pid.get(m.group(1), 0) + 1
        self.assertTrue(per_pid and max(per_pid.values()) >= 2,
                        "no upload-blob renewed its token: %r; log:\n%s" % (per_pid, log))
        self.assertNotRegex(log, r"renewing the token",
                            "a request was refused for an expired token")

    def bad_audience_answer(self):
        """A 200 from Entra whose token Azurite refuses (403
        AuthenticationFailed): its audience is another service's."""
        import base64

        def b64(obj):
            raw = json.dumps(obj).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        now = int(time.time())
        token = "%s.%s.%s" % (b64({"alg": "RS256", "typ": "JWT"}), b64({
            "iss": "https://sts.windows.net/%s/" % self.tokens.tenant_id,
            "aud": "https://vault.azure.net", "iat": now - 60, "nbf": now - 60,
            "exp": now + 3600}), "c2ln")
        return json.dumps({"token_type": "Bearer", "expires_in": 3600,
                           "ext_expires_in": 3600, "access_token": token})

    def test_refused_token_is_renewed_once(self):
        """The first token is refused by storage: the request renews it and
        goes through with the second; the run completes."""
        self.seed(users=20)
        secret = "s-" + h.uuid.uuid4().hex
        app = self.tokens.add_app(secret=secret)
        self.tokens.add_fault(kind="entra", status=200, body=self.bad_audience_answer(),
                              content_type="application/json", count=1)
        conf = self.write_oauth_config("service_principal", client_id=app, secret=secret,
                                       collections="users")
        rc, log, _e = self.run_backup(conf, timeout=120)
        self.assertExit(rc, 0, log)
        self.assertEqual(self.tokens.stats(log=False)["faults_fired"], 1)
        self.assertEqual(len(re.findall(r"renewing the token", log)), 1, log)
        self.assertBackedUp(log, colls=("users",))

    def test_always_refused_token_fails_after_one_renewal(self):
        """Every token is refused: one renewal per request, then the run
        fails at once saying the token was refused (no outage loop)."""
        self.seed(users=20)
        secret = "s-" + h.uuid.uuid4().hex
        app = self.tokens.add_app(secret=secret)
        self.tokens.add_fault(kind="entra", status=200, body=self.bad_audience_answer(),
                              content_type="application/json", count=0)
        conf = self.write_oauth_config("service_principal", client_id=app, secret=secret,
                                       collections="users")
        t0 = time.monotonic()
        rc, log, _e = self.run_backup(conf, timeout=120)
        self.assertExit(rc, 1, log)
        self.assertLess(time.monotonic() - t0, 30, log)
        self.assertRegex(log, r"refused the token")
        self.assertEqual(self.tokens.stats(log=False)["tokens_issued"], 0)
        # Each refused request fetched exactly two tokens: its own, one renewal.
        fetched = self.tokens.stats(log=False)["faults_fired"]
        renewals = len(re.findall(r"renewing the token", log))
        self.assertEqual(fetched, 2 * renewals, log)


class TestFailures(EntraTestCase):

    def test_wrong_secret_fails_at_once(self):
        self.seed(users=20)
        app = self.tokens.add_app(secret="right-" + h.uuid.uuid4().hex)
        wrong = "wrong-" + h.uuid.uuid4().hex
        conf = self.write_oauth_config("service_principal", client_id=app, secret=wrong,
                                       collections="users")
        t0 = time.monotonic()
        rc, log, _e = self.run_backup(conf, timeout=120)
        self.assertExit(rc, 1, log)
        self.assertLess(time.monotonic() - t0, 30, "a refused secret was retried")
        self.assertRegex(log, r"invalid_client|AADSTS7000215")
        self.assertNotIn(wrong, log)
        self.assertEqual([n for n in self.blobs.names("backups/") if n.endswith(".bson.gz")]
                         if self.blobs.exists() else [], [])

    def test_unknown_identity_fails_at_once(self):
        self.seed(users=20)
        conf = self.write_oauth_config("managed_identity",
                                       client_id="00000000-0000-0000-0000-00000000beef",
                                       collections="users")
        t0 = time.monotonic()
        rc, log, _e = self.run_backup(conf, timeout=120)
        self.assertExit(rc, 1, log)
        self.assertLess(time.monotonic() - t0, 30, "an unknown identity was retried")
        self.assertRegex(log, r"Identity not found")

    def test_token_endpoint_down_for_a_while(self):
        """IMDS answers 503 for 8 s: the run waits (retries, the breaker)
        and completes when it is back."""
        self.seed(users=50)
        self.tokens.down(seconds=8, mode="503", kind="imds")
        conf = self.write_oauth_config("managed_identity", collections="users, types",
                                       breaker={"open_seconds": 2})
        rc, log, _e = self.run_backup(conf, timeout=200)
        self.assertExit(rc, 0, log)
        self.assertBackedUp(log)
        self.assertGreaterEqual(self.tokens.stats(log=False)["faults_fired"], 1)
        self.assertRegex(log, r"token from .*503")

    def test_token_endpoint_never_back(self):
        """A token endpoint that stays down ends the run at run_timeout
        with an incomplete set, not a hang and not a success."""
        self.seed(users=20)
        self.tokens.down(mode="503", kind="imds")
        conf = self.write_oauth_config("managed_identity", collections="users",
                                       limits={"run_timeout": "15s"},
                                       breaker={"open_seconds": 2})
        t0 = time.monotonic()
        rc, log, _e = self.run_backup(conf, timeout=120)
        self.assertExit(rc, 1, log)
        self.assertLess(time.monotonic() - t0, 90, log)
        self.assertRegex(log, r"token from .*503")


class TestChecks(EntraTestCase):

    def test_check_config_refuses_incomplete_sources(self):
        conf = self.write_oauth_config("service_principal", client_id="0000",
                                       azure={"tenant_id": None})
        rc, out = self.check_config(conf)
        self.assertEqual(rc, 2, out)
        self.assertIn("auth = service_principal needs tenant_id", out)

    def test_check_config_reads_the_certificate(self):
        path = os.path.join(self.tmp, "not-a-cert.pem")
        with open(path, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        os.chmod(path, 0o600)
        conf = self.write_oauth_config("service_principal", client_id="0000",
                                       certificate_file=path)
        rc, out = self.check_config(conf)
        self.assertEqual(rc, 2, out)
        self.assertIn("client_certificate_file", out)

    def test_check_connect_fetches_a_token(self):
        self.seed(users=5)
        conf = self.write_oauth_config("managed_identity", collections="users, types")
        before = self.issued()
        rc, out, err, _t = h.run_program([h.DAEMON, "--check-connect", "-c", conf],
                                         timeout=120)
        text = out.decode("utf-8", "replace") + err
        self.assertEqual(rc, 0, text)
        self.assertGreater(self.issued(), before, text)


if __name__ == "__main__":
    # Sixteen daemon runs, two of them waiting out a token endpoint that is
    # down: more than the usual module budget on a loaded machine.
    h.MODULE_TIMEOUT = max(h.MODULE_TIMEOUT, 600)
    h.main()
