#!/usr/bin/python3
"""Self-test of tests/token_server.py, tests/tls.py and harness.AzuriteOAuth.

The independent client is Microsoft's SDK (python3-azure-storage): a token
from each source of the token server - IMDS (system- and user-assigned),
App Service, Entra ID with a secret, with a certificate-signed assertion
built here (with python3-cryptography, not with the server's code) and with
a federated token - must let it create a container, upload, list and
download a blob on Azurite running over HTTPS with `--oauth basic`, TLS
verified against the throwaway CA.  An expired token must be refused by
Azurite (403 AuthenticationFailed).  Every error path of the token server is
checked against the documented status and body, every fault kind fires and
is counted, and the program mode is driven over its control endpoint.

Run:  /usr/bin/python3 tests/test_token_server.py [-v] [-k NAME]
Exits 0 (pass), 1 (fail) or 77 (Azurite, the SDK or python3-cryptography
missing).
"""

import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness as h  # noqa: E402

TLS = None      # tls.TLSMaterial shared by Azurite and the token servers
AZ = None       # harness.AzuriteOAuth
STORAGE = "https://storage.azure.com/"
SCOPE = "https://storage.azure.com/.default"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"



NO_LOCALHOST = "the name localhost does not resolve here (no /etc/hosts entry)"


def localhost_resolves():
    """A minimal root (debootstrap --variant=minbase) has no /etc/hosts."""
    try:
        socket.getaddrinfo("localhost", None)
        return True
    except OSError:
        return False

def setUpModule():
    global TLS, AZ
    why = h.AzuriteOAuth.available()
    if why:
        raise unittest.SkipTest(why)
    import tls
    TLS = tls.TLSMaterial()
    AZ = h.AzuriteOAuth(TLS).start()


def tearDownModule():
    if AZ is not None:
        AZ.stop()
    if TLS is not None:
        TLS.cleanup()
    h.cleanup_everything()


# ------------------------------------------------------------------ clients

def request(url, method="GET", headers=None, body=None, context=None, timeout=15):
    """(status, {header: value} lower-cased, JSON or raw bytes); TLS is
    verified with the test CA unless another context is given."""
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout,
                                           context=context or TLS.client_context())
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, u.path + ("?" + u.query if u.query else ""), body=body,
                     headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()
    try:
        return r.status, hdrs, json.loads(data)
    except ValueError:
        return r.status, hdrs, data


def imds(ts, client_id=None, headers=None, query=None, **params):
    q = {"api-version": "2018-02-01", "resource": STORAGE}
    if client_id:
        q["client_id"] = client_id
    q.update(params)
    q = {k: v for k, v in q.items() if v is not None}
    hd = {"Metadata": "true"} if headers is None else headers
    return request(ts.imds_endpoint + "?" + (query if query is not None else
                                             urllib.parse.urlencode(q)), headers=hd)


def app_service(ts, header=True, **params):
    q = {"resource": STORAGE, "api-version": "2019-08-01"}
    q.update(params)
    q = {k: v for k, v in q.items() if v is not None}
    hd = {}
    if header is True:
        hd["X-IDENTITY-HEADER"] = ts.identity_header
    elif header:
        hd["X-IDENTITY-HEADER"] = header
    return request(ts.app_service_endpoint + "?" + urllib.parse.urlencode(q), headers=hd)


def entra(ts, form, tenant=None, host=None, method="POST", ctype=None):
    form = {k: v for k, v in form.items() if v is not None}
    return request(ts.token_endpoint(tenant, host), method=method,
                   body=urllib.parse.urlencode(form) if method == "POST" else None,
                   headers={"Content-Type": ctype or "application/x-www-form-urlencoded"})


def sp_form(app, **kw):
    """The form of a client-credentials request for app (kw: more fields;
    None drops one)."""
    f = {"grant_type": "client_credentials", "client_id": app, "scope": SCOPE}
    f.update(kw)
    return f


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unpadded_json(b64):
    return json.loads(base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)))


def jwt_claims(token):
    return unpadded_json(token.split(".")[1])


def make_assertion(cert, client_id, aud, alg="RS256", thumb=None, key=None, lifetime=600,
                   nbf=None, claims=None, drop=(), jti=None):
    """A client assertion as a service principal builds it, written here
    independently of token_server.py: thumbprints from the certificate's
    DER (ssl.PEM_cert_to_DER_cert), signed with cryptography."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    with open(cert.cert_file) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    thumb = thumb or ("x5t#S256" if alg == "PS256" else "x5t")
    header = {"alg": alg, "typ": "JWT"}
    if thumb in ("x5t", "both"):
        header["x5t"] = b64url(hashlib.sha1(der).digest())
    if thumb in ("x5t#S256", "both"):
        header["x5t#S256"] = b64url(hashlib.sha256(der).digest())
    now = int(time.time())
    nbf = now if nbf is None else nbf
    c = {"aud": aud, "iss": client_id, "sub": client_id, "jti": jti or str(uuid.uuid4()),
         "nbf": nbf, "iat": nbf, "exp": nbf + lifetime}
    c.update(claims or {})
    for d in drop:
        c.pop(d, None)
    si = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(c).encode())).encode()
    key = key or cert.key
    if alg == "RS256":
        sig = key.sign(si, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "PS256":
        sig = key.sign(si, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                       hashes.SHA256())
    else:
        sig = b""
    return si.decode() + "." + b64url(sig)


def fake_token(**kw):
    """An unsigned JWT for probing Azurite's checks directly."""
    now = int(time.time())
    c = {"aud": "https://storage.azure.com", "iss": "https://sts.windows.net/%s/" % uuid.uuid4(),
         "iat": now - 300, "nbf": now - 300, "exp": now + 600}
    c.update(kw)
    c = {k: v for k, v in c.items() if v is not None}
    return (b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode()) + "." +
            b64url(json.dumps(c).encode()) + ".")


def azurite_put_container(token=None, name=None, scheme_headers=None):
    """Create Container on AZ with a raw request: (status, code, detail)."""
    import re
    hd = {"x-ms-version": "2021-08-06", "Content-Length": "0",
          "x-ms-date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())}
    if token is not None:
        hd["Authorization"] = "Bearer " + token
    hd.update(scheme_headers or {})
    st, _hd, body = request("%s/%s?restype=container" % (AZ.account_url,
                                                        name or h.unique_name("raw")),
                            method="PUT", headers=hd)
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    code = re.search(r"<Code>(.*?)</Code>", text)
    detail = re.search(r"<AuthenticationErrorDetail>(.*?)</AuthenticationErrorDetail>", text, re.S)
    return st, code and code.group(1), detail and detail.group(1)


class TokenServerCase(unittest.TestCase):
    maxDiff = 4000
    lifetime = 3600

    def setUp(self):
        from token_server import TokenServer
        self.ts = TokenServer(tls=TLS, lifetime=self.lifetime).start()
        self.addCleanup(self.ts.stop)

    def use_token(self, token, expires_on=None):
        """The SDK with this bearer token: create a container, upload, list,
        download; what landed is read back with Shared Key."""
        cred = h.StaticTokenCredential(token, expires_on)
        svc = AZ.service_client(cred)
        name = h.unique_name("tok")
        cc = svc.get_container_client(name)
        cc.create_container()
        data = os.urandom(3000)
        cc.get_blob_client("dir/blob.bin").upload_blob(data)
        self.assertEqual([b.name for b in cc.list_blobs()], ["dir/blob.bin"])
        self.assertEqual(cc.get_blob_client("dir/blob.bin").download_blob().readall(), data)
        self.assertEqual(AZ.blobs(name).download("dir/blob.bin"), data)
        self.assertGreaterEqual(cred.calls, 1, "the SDK never asked for the token")
        return name

    def assertSdkRefused(self, token, status=403, code="AuthenticationFailed", detail=None):
        from azure.core.exceptions import HttpResponseError
        svc = AZ.service_client(h.StaticTokenCredential(token))
        with self.assertRaises(HttpResponseError) as cm:
            svc.get_container_client(h.unique_name("no")).create_container()
        self.assertEqual(cm.exception.status_code, status)
        self.assertEqual(cm.exception.error_code, code)
        if detail:
            self.assertIn(detail, cm.exception.response.text())

    def assertEntraError(self, resp, status, error, code):
        st, hdrs, body = resp
        self.assertEqual(st, status, body)
        self.assertTrue(hdrs["content-type"].startswith("application/json"), hdrs)
        self.assertIsInstance(body, dict, body)
        self.assertEqual(body["error"], error, body)
        if code:
            self.assertEqual(body["error_codes"], [code], body)
            self.assertTrue(body["error_description"].startswith("AADSTS%d: " % code), body)
            self.assertEqual(body["error_uri"],
                             "https://login.microsoftonline.com/error?code=%d" % code)
        else:
            self.assertEqual(body["error_codes"], [], body)
        self.assertRegex(body["error_description"],
                         r"\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}\r\n"
                         r"Timestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$")
        for k in ("timestamp", "trace_id", "correlation_id"):
            self.assertIn(k, body)
        return body

    def assertImdsError(self, resp, status, error, description):
        st, hdrs, body = resp
        self.assertEqual(st, status, body)
        self.assertTrue(hdrs["content-type"].startswith("application/json"), hdrs)
        self.assertEqual(body["error"], error, body)
        if description:
            self.assertIn(description, body["error_description"])
        return body

    def checkToken(self, token, client_id, tenant=None):
        claims = self.ts.verify_access_token(token)
        self.assertEqual(claims["iss"],
                         "https://sts.windows.net/%s/" % (tenant or self.ts.tenant_id))
        self.assertEqual(claims["aud"], "https://storage.azure.com")
        self.assertEqual(claims["appid"], client_id)
        self.assertEqual(claims["tid"], tenant or self.ts.tenant_id)
        self.assertEqual(claims["ver"], "1.0")
        now = time.time()
        self.assertLessEqual(claims["nbf"], now)
        self.assertLessEqual(claims["iat"], now)
        self.assertGreater(claims["exp"], now)
        header = unpadded_json(token.split(".")[0])
        self.assertEqual(header["alg"], "RS256")
        return claims


# ------------------------------------------------------------------ sources

class SourcesTest(TokenServerCase):

    def test_imds_system_assigned(self):
        st, hdrs, body = imds(self.ts)
        self.assertEqual(st, 200, body)
        self.assertTrue(hdrs["content-type"].startswith("application/json"))
        self.assertEqual(sorted(body), ["access_token", "client_id", "expires_in", "expires_on",
                                        "ext_expires_in", "not_before", "resource",
                                        "token_type"])
        for k, v in body.items():
            self.assertIsInstance(v, str, "IMDS field %s is not a string: %r" % (k, v))
        self.assertEqual(body["token_type"], "Bearer")
        self.assertEqual(body["resource"], STORAGE)
        self.assertEqual(body["client_id"], self.ts.system_client_id)
        claims = self.checkToken(body["access_token"], self.ts.system_client_id)
        self.assertEqual(body["expires_on"], str(claims["exp"]))
        self.assertEqual(body["not_before"], str(claims["nbf"]))
        self.assertIn(int(body["expires_in"]), (3599, 3600))
        self.assertEqual(body["ext_expires_in"], body["expires_in"])
        self.assertAlmostEqual(int(body["expires_on"]), time.time() + 3600, delta=3)
        self.use_token(body["access_token"], int(body["expires_on"]))
        st = self.ts.stats()
        self.assertEqual(st["requests"], {"imds": 1})
        self.assertEqual(st["issued"], {"imds": 1})
        self.assertEqual(st["tokens_issued"], 1)
        self.assertEqual(st["statuses"], {"imds": {"200": 1}})
        self.assertEqual(st["tokens"][0]["uti"], claims["uti"])
        e = st["log"][0]
        self.assertEqual((e["kind"], e["outcome"], e["status"], e["client_id"]),
                         ("imds", "issued", 200, self.ts.system_client_id))

    def test_imds_user_assigned(self):
        uid = self.ts.add_identity()
        ident = self.ts.identity(uid)
        for how in ({"client_id": uid}, {"object_id": ident["object_id"]},
                    {"msi_res_id": ident["msi_res_id"]}, {"client_id": uid.upper()}):
            st, _hd, body = imds(self.ts, **how)
            self.assertEqual(st, 200, (how, body))
            self.assertEqual(body["client_id"], uid)
            claims = self.checkToken(body["access_token"], uid)
            self.assertEqual(claims["oid"], ident["object_id"])
            self.assertEqual(claims["xms_mirid"], ident["msi_res_id"])
        self.use_token(body["access_token"])
        # resource without the trailing slash: the same audience
        st, _hd, body = imds(self.ts, resource="https://storage.azure.com")
        self.assertEqual(st, 200)
        self.assertEqual(jwt_claims(body["access_token"])["aud"], "https://storage.azure.com")
        self.assertEqual(self.ts.stats()["issued"], {"imds": 5})

    def test_imds_only_user_assigned(self):
        from token_server import TokenServer
        ts = TokenServer(tls=TLS, system_assigned=False).start()
        self.addCleanup(ts.stop)
        self.assertImdsError(imds(ts), 400, "invalid_request", "Identity not found")
        only = ts.add_identity()
        st, _hd, body = imds(ts)                    # the one identity is used
        self.assertEqual((st, body["client_id"]), (200, only))
        ts.add_identity()
        self.assertImdsError(imds(ts), 400, "invalid_request",
                             "Multiple user assigned identities exist")

    def test_app_service(self):
        st, hdrs, body = app_service(self.ts)
        self.assertEqual(st, 200, body)
        self.assertEqual(sorted(body), ["access_token", "client_id", "expires_on", "resource",
                                        "token_type"])
        self.assertIsInstance(body["expires_on"], str)
        self.assertEqual(body["resource"], STORAGE)
        claims = self.checkToken(body["access_token"], self.ts.system_client_id)
        self.assertEqual(body["expires_on"], str(claims["exp"]))
        self.use_token(body["access_token"], int(body["expires_on"]))
        uid = self.ts.add_identity()
        st, _hd, body = app_service(self.ts, client_id=uid)
        self.assertEqual((st, body["client_id"]), (200, uid))
        st, _hd, body = app_service(self.ts, principal_id=self.ts.identity(uid)["object_id"])
        self.assertEqual((st, body["client_id"]), (200, uid))
        st, _hd, body = app_service(self.ts, mi_res_id=self.ts.identity(uid)["msi_res_id"])
        self.assertEqual((st, body["client_id"]), (200, uid))
        self.assertEqual(self.ts.app_service_env(),
                         {"IDENTITY_ENDPOINT": self.ts.app_service_endpoint,
                          "IDENTITY_HEADER": self.ts.identity_header})
        # the documented path is /MSI/token: either case is served
        st, _hd, _b = request(self.ts.app_service_endpoint.replace("/msi/", "/MSI/") +
                              "?resource=%s&api-version=2019-08-01" % STORAGE,
                              headers={"X-IDENTITY-HEADER": self.ts.identity_header})
        self.assertEqual(st, 200)
        self.assertEqual(self.ts.stats()["issued"], {"app_service": 5})

    def test_entra_secret(self):
        app = self.ts.add_app(secret="s3cret-value")
        st, hdrs, body = entra(self.ts, sp_form(app, client_secret="s3cret-value"))
        self.assertEqual(st, 200, body)
        self.assertEqual(sorted(body), ["access_token", "expires_in", "ext_expires_in",
                                        "token_type"])
        self.assertEqual(body["token_type"], "Bearer")
        self.assertIsInstance(body["expires_in"], int)
        self.assertIn(body["expires_in"], (3599, 3600))
        self.assertEqual(body["ext_expires_in"], body["expires_in"])
        self.assertIn("no-store", hdrs.get("cache-control", ""))
        claims = self.checkToken(body["access_token"], app)
        self.assertEqual(claims["appidacr"], "1")
        self.use_token(body["access_token"])
        # a rotation: the new secret works, the old one no longer
        self.ts.set_secrets(app, ["rotated"])
        self.assertEntraError(entra(self.ts, sp_form(app, client_secret="s3cret-value")),
                              401, "invalid_client", 7000215)
        self.assertEqual(entra(self.ts, sp_form(app, client_secret="rotated"))[0], 200)
        st = self.ts.stats()
        self.assertEqual(st["issued"], {"entra_secret": 2})
        self.assertEqual(st["statuses"]["entra_secret"], {"200": 2, "401": 1})
        self.assertNotIn("s3cret-value", json.dumps(st), "a secret in the stats")
        self.assertNotIn("rotated", json.dumps(st), "a secret in the stats")

    def test_entra_certificate_rs256(self):
        cert = TLS.client_certificate("sp-rs256")
        app = self.ts.add_app(certificate=cert)
        a = make_assertion(cert, app, self.ts.token_endpoint())
        st, _hd, body = entra(self.ts, sp_form(app, client_assertion_type=JWT_BEARER,
                                               client_assertion=a))
        self.assertEqual(st, 200, body)
        claims = self.checkToken(body["access_token"], app)
        self.assertEqual(claims["appidacr"], "2")
        self.use_token(body["access_token"])
        # reached as localhost (the certificate names it too): aud follows
        n = 1
        with self.subTest(host="localhost"):
            if not localhost_resolves():
                self.skipTest(NO_LOCALHOST)
            a = make_assertion(cert, app, self.ts.token_endpoint(host="localhost"))
            st, _hd, body = entra(self.ts, sp_form(app, client_assertion_type=JWT_BEARER,
                                                   client_assertion=a), host="localhost")
            self.assertEqual(st, 200, body)
            n = 2
        st = self.ts.stats()
        self.assertEqual(st["issued"], {"entra_certificate": n})
        log = [e for e in st["log"] if e["kind"] == "entra_certificate"]
        self.assertEqual([e["credential"] for e in log], ["certificate"] * n)
        self.assertEqual(log[0]["x5t"], cert.x5t)
        self.assertTrue(log[0]["jti"])
        self.assertNotIn(a.split(".")[2], json.dumps(st), "an assertion in the stats")

    def test_entra_certificate_ps256_and_pem_forms(self):
        """PS256 with x5t#S256; the certificate registered as PEM bytes, a
        path, a key-first PEM file."""
        cert = TLS.client_certificate("sp-ps256", key_first=True, traditional_key=True)
        with open(cert.pem_file, "rb") as f:
            pem = f.read()
        self.assertTrue(pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----"))
        for reg in (cert.pem_file, pem, cert.cert_file):
            ts_app = self.ts.add_app(certificate=reg)
            a = make_assertion(cert, ts_app, self.ts.token_endpoint(), alg="PS256")
            st, _hd, body = entra(self.ts, sp_form(ts_app, client_assertion_type=JWT_BEARER,
                                                   client_assertion=a))
            self.assertEqual(st, 200, (reg, body))
        a = make_assertion(cert, ts_app, self.ts.token_endpoint(), alg="RS256", thumb="both")
        st, _hd, body = entra(self.ts, sp_form(ts_app, client_assertion_type=JWT_BEARER,
                                               client_assertion=a))
        self.assertEqual(st, 200, body)
        self.use_token(body["access_token"])

    def test_entra_federated(self):
        app = self.ts.add_app()
        fed = self.ts.make_federated_token(subject="system:serviceaccount:mab:backup")
        self.ts.set_federated_token(app, fed)
        st, _hd, body = entra(self.ts, sp_form(app, client_assertion_type=JWT_BEARER,
                                               client_assertion=fed))
        self.assertEqual(st, 200, body)
        self.checkToken(body["access_token"], app)
        self.use_token(body["access_token"])
        # rotation: during the overlap both work, then only the new one
        new = self.ts.make_federated_token(subject="system:serviceaccount:mab:backup")
        self.ts.set_federated_token(app, [fed, new])
        for t in (fed, new):
            self.assertEqual(entra(self.ts, sp_form(app, client_assertion_type=JWT_BEARER,
                                                    client_assertion=t))[0], 200)
        self.ts.set_federated_token(app, new)
        body = self.assertEntraError(
            entra(self.ts, sp_form(app, client_assertion_type=JWT_BEARER, client_assertion=fed)),
            400, "invalid_request", 70021)
        self.assertIn("Assertion Subject: 'system:serviceaccount:mab:backup'",
                      body["error_description"])
        st = self.ts.stats()
        self.assertEqual(st["issued"], {"entra_federated": 3})
        self.assertEqual(st["requests"], {"entra_federated": 4})
        self.assertNotIn(fed.split(".")[2], json.dumps(st))

    def test_other_tenant(self):
        other = str(uuid.uuid4())
        app = self.ts.add_app(secret="x", tenant_id=other)
        st, _hd, body = entra(self.ts, sp_form(app, client_secret="x"), tenant=other)
        self.assertEqual(st, 200, body)
        self.checkToken(body["access_token"], app, tenant=other)
        self.assertEntraError(entra(self.ts, sp_form(app, client_secret="x")),
                              400, "unauthorized_client", 700016)

    def test_expired_token_refused_by_azurite(self):
        self.ts.set_lifetime(2)
        st, _hd, body = imds(self.ts)
        self.assertEqual(st, 200, body)
        self.assertIn(body["expires_in"], ("1", "2"))
        token, exp = body["access_token"], int(body["expires_on"])
        self.assertEqual(jwt_claims(token)["exp"], exp)
        self.assertEqual(azurite_put_container(token)[0], 201)     # valid now
        while time.time() <= exp + 1.2:
            time.sleep(0.1)
        self.assertEqual(azurite_put_container(token),
                         (403, "AuthenticationFailed",
                          "Lifetime validation failed. The token is expired."))
        self.assertSdkRefused(token, detail="The token is expired")
        st, _hd, body = imds(self.ts)                                # renewed
        self.assertNotEqual(body["access_token"], token)
        self.assertEqual(azurite_put_container(body["access_token"])[0], 201)
        self.assertEqual(self.ts.stats()["tokens_issued"], 2)

    def test_lifetime_per_source_and_already_expired(self):
        app = self.ts.add_app(secret="s")
        self.ts.set_lifetime(5, "entra")
        self.assertEqual(entra(self.ts, sp_form(app, client_secret="s"))[2]["expires_in"], 5)
        self.assertIn(int(imds(self.ts)[2]["expires_in"]), (3599, 3600))
        self.ts.set_lifetime(-30, "imds")
        body = imds(self.ts)[2]
        self.assertLessEqual(int(body["expires_in"]), -29)
        self.assertLess(int(body["expires_on"]), time.time())
        self.assertEqual(azurite_put_container(body["access_token"])[1], "AuthenticationFailed")
        with self.assertRaises(ValueError):
            self.ts.set_lifetime(5, "nonsense")

    def test_imds_cache(self):
        from token_server import TokenServer
        ts = TokenServer(tls=TLS, lifetime=6, imds_cache_refresh=2).start()
        self.addCleanup(ts.stop)
        first = imds(ts)[2]
        time.sleep(1.0)
        again = imds(ts)[2]
        self.assertEqual(again["access_token"], first["access_token"])
        self.assertLess(int(again["expires_in"]), int(first["expires_in"]))
        self.assertEqual(again["expires_on"], first["expires_on"])
        while time.time() < int(first["expires_on"]) - 1.9:
            time.sleep(0.05)
        fresh = imds(ts)[2]
        self.assertNotEqual(fresh["access_token"], first["access_token"])
        st = ts.stats()
        self.assertEqual(st["tokens_issued"], 2)
        self.assertEqual([e["outcome"] for e in st["log"]], ["issued", "cached", "issued"])

    def test_parallel_requests(self):
        app = self.ts.add_app(secret="p")
        errors = []

        def worker(i):
            try:
                for _ in range(10):
                    r = imds(self.ts) if i % 2 else entra(self.ts, sp_form(app, client_secret="p"))
                    if r[0] != 200:
                        errors.append(r)
            except Exception as e:          # noqa: BLE001 - reported below
                errors.append(repr(e))
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        st = self.ts.stats(log=False)
        self.assertEqual(st["tokens_issued"], 160)
        self.assertEqual(st["issued"], {"imds": 80, "entra_secret": 80})


# ------------------------------------------------------------------ Azurite

class AzuriteTest(TokenServerCase):
    """What Azurite 3.35 with --oauth basic accepts: the facts the token
    server and the daemon rely on (checked against Azurite directly)."""

    def test_accepted_audiences_and_issuers(self):
        for aud in ("https://storage.azure.com", "https://storage.azure.com/",
                    "e406a681-f3d4-42a8-90b6-c2b029497af1",
                    "https://devstoreaccount1.blob.core.windows.net"):
            self.assertEqual(azurite_put_container(fake_token(aud=aud))[0], 201, aud)
        for iss in ("https://sts.windows.net/x/", "https://sts.chinacloudapi.cn/x/"):
            self.assertEqual(azurite_put_container(fake_token(iss=iss))[0], 201, iss)

    def test_refused_tokens(self):
        cases = [
            (fake_token(aud=AZ.account_url), "Invalid token audience."),
            (fake_token(aud="https://other.blob.core.windows.net"), "Invalid token audience."),
            (fake_token(aud="https://management.azure.com/"), "Invalid token audience."),
            (fake_token(iss="https://login.microsoftonline.com/%s/v2.0" % uuid.uuid4()),
             "Invalid token issuer."),
            (fake_token(exp=int(time.time()) - 2),
             "Lifetime validation failed. The token is expired."),
            (fake_token(nbf=int(time.time()) + 60), "Lifetime validation failed."),
            (fake_token(iat=None), "Authentication scheme Bearer is not supported."),
            ("not-a-jwt", "Authentication scheme Bearer is not supported."),
        ]
        for token, detail in cases:
            self.assertEqual(azurite_put_container(token), (403, "AuthenticationFailed", detail),
                             jwt_claims(token) if token.count(".") == 2 else token)
        # no credentials at all: a different code
        self.assertEqual(azurite_put_container(None), (403, "AuthorizationFailure", None))

    def test_wrong_resource_token_refused(self):
        """The token server issues tokens for any https resource, as IMDS
        does; Azurite refuses the wrong audience, as Storage would."""
        st, _hd, body = imds(self.ts, resource="https://management.azure.com/")
        self.assertEqual(st, 200)
        self.assertEqual(jwt_claims(body["access_token"])["aud"], "https://management.azure.com")
        self.assertSdkRefused(body["access_token"], detail="Invalid token audience.")

    def test_tls_is_verified(self):
        from azure.core.exceptions import ServiceRequestError
        from azure.storage.blob import BlobServiceClient
        # Shared Key over HTTPS with the CA: fine
        name = h.unique_name("tls")
        AZ.service_client().get_container_client(name).create_container()
        self.assertTrue(AZ.blobs(name).exists())
        # the system trust store does not know the test CA
        plain = BlobServiceClient.from_connection_string(AZ.connection_string, retry_total=0)
        with self.assertRaises(ServiceRequestError) as cm:
            plain.get_container_client(name).get_container_properties()
        self.assertIn("CERTIFICATE_VERIFY_FAILED", str(cm.exception))
        with self.assertRaises(ssl.SSLCertVerificationError):
            request(self.ts.authority_host + "/x", context=ssl.create_default_context())
        # localhost is in the certificate as well
        for url in ("https://localhost:%d/devstoreaccount1?comp=list" % AZ.port,
                    self.ts.authority_host_for("localhost") + "/x"):
            with self.subTest(url=url):
                if not localhost_resolves():
                    self.skipTest(NO_LOCALHOST)
                self.assertIn(request(url)[0], (403, 404), url)
        self.assertTrue(AZ.account_url.startswith("https://127.0.0.1:"))
        self.assertIn("BlobEndpoint=%s;" % AZ.account_url, AZ.connection_string)


# ------------------------------------------------------------------ errors

class ImdsErrorsTest(TokenServerCase):

    def test_metadata_header(self):
        for hd in ({}, {"Metadata": "false"}, {"Metadata": ""}):
            self.assertImdsError(imds(self.ts, headers=hd), 400, "invalid_request",
                                 "Required metadata header not specified")
        self.assertEqual(imds(self.ts, headers={"Metadata": "True"})[0], 200)

    def test_parameters(self):
        self.assertImdsError(imds(self.ts, **{"api-version": None}), 400, "invalid_request",
                             "api-version")
        self.assertImdsError(imds(self.ts, **{"api-version": "2017-01-01"}), 400,
                             "invalid_request", "api-version")
        self.assertImdsError(imds(self.ts, resource=None), 400, "invalid_request",
                             "Required audience parameter not specified")
        self.assertImdsError(imds(self.ts, client_id=str(uuid.uuid4())), 400,
                             "invalid_request", "Identity not found")
        self.assertImdsError(imds(self.ts, object_id=str(uuid.uuid4())), 400,
                             "invalid_request", "Identity not found")
        uid = self.ts.add_identity()
        self.assertImdsError(imds(self.ts, client_id=uid,
                                  object_id=self.ts.identity(uid)["object_id"]),
                             400, "invalid_request", "Only one of")
        self.assertImdsError(imds(self.ts, resource="storage"), 400, "invalid_resource",
                             "AADSTS500011")
        self.assertImdsError(imds(self.ts, headers={"Metadata": "true",
                                                    "X-Forwarded-For": "10.0.0.1"}),
                             400, "invalid_request", "X-Forwarded-For")
        st = self.ts.stats()
        self.assertEqual(st["issued"], {})
        self.assertEqual(st["statuses"], {"imds": {"400": 8}})
        self.assertEqual({e["error"] for e in st["log"]}, {"invalid_request", "invalid_resource"})

    def test_method_and_path(self):
        st, _hd, body = request(self.ts.imds_endpoint + "?api-version=2018-02-01&resource=" +
                                STORAGE, method="POST", headers={"Metadata": "true"}, body="")
        self.assertEqual(st, 405, body)
        st, _hd, body = request(self.ts.imds_base + "/metadata/instance?api-version=2021-02-01",
                                headers={"Metadata": "true"})
        self.assertEqual((st, body["error"]), (404, "not_found"))
        self.assertEqual(self.ts.stats()["requests"], {"imds": 1, "other": 1})


class AppServiceErrorsTest(TokenServerCase):

    def test_errors(self):
        for header in (False, "wrong"):
            st, hdrs, body = app_service(self.ts, header=header)
            self.assertEqual(st, 401, body)
            self.assertEqual(body["statusCode"], 401)
            self.assertIn("X-IDENTITY-HEADER", body["message"])
        nope = ("No User Assigned or Delegated Managed Identity found for specified "
                "ClientId/ResourceId/PrincipalId.")
        self.assertEqual(app_service(self.ts, client_id=str(uuid.uuid4()))[:3:2],
                         (400, {"statusCode": 400, "message": nope}))
        st, _hd, body = app_service(self.ts, **{"api-version": "2017-09-01"})
        self.assertEqual((st, body["statusCode"]), (400, 400))
        st, _hd, body = app_service(self.ts, resource=None)
        self.assertEqual((st, body["statusCode"]), (400, 400))
        self.assertEqual(self.ts.stats()["statuses"], {"app_service": {"401": 2, "400": 3}})
        self.assertNotIn(self.ts.identity_header, json.dumps(self.ts.stats()))


class EntraErrorsTest(TokenServerCase):

    def setUp(self):
        super().setUp()
        self.secret = "the-secret-" + uuid.uuid4().hex
        self.cert = TLS.client_certificate("sp-err")
        self.app = self.ts.add_app(secret=self.secret, certificate=self.cert)

    def post(self, **kw):
        return entra(self.ts, sp_form(self.app, **kw))

    def assertion(self, **kw):
        kw.setdefault("client_id", self.app)
        kw.setdefault("aud", self.ts.token_endpoint())
        cert = kw.pop("cert", self.cert)
        return self.post(client_assertion_type=JWT_BEARER,
                         client_assertion=make_assertion(cert, **kw))

    def test_request_shape(self):
        E = self.assertEntraError
        E(entra(self.ts, {}, method="GET"), 400, "invalid_request", 900561)
        E(entra(self.ts, sp_form(self.app, client_secret=self.secret), tenant=str(uuid.uuid4())),
          400, "invalid_request", 90002)
        E(entra(self.ts, sp_form(self.app, client_secret=self.secret), tenant="not_a_tenant!"),
          400, "invalid_request", 900023)
        for missing in ("grant_type", "client_id", "scope"):
            body = E(self.post(client_secret=self.secret, **{missing: None}), 400,
                     "invalid_request", 900144)
            self.assertIn("'%s'" % missing, body["error_description"])
        body = E(self.post(client_secret=self.secret, grant_type="password"), 400,
                 "unsupported_grant_type", 70003)
        E(entra(self.ts, sp_form("not-a-guid", client_secret="x")), 400, "invalid_request",
          700038)
        body = E(entra(self.ts, sp_form(str(uuid.uuid4()), client_secret="x")), 400,
                 "unauthorized_client", 700016)
        self.assertIn("was not found in the directory '%s'" % self.ts.tenant_id,
                      body["error_description"])
        E(self.post(client_secret=self.secret, scope=STORAGE), 400, "invalid_scope", 1002012)
        E(self.post(client_secret=self.secret, scope=SCOPE + " openid"), 400, "invalid_scope",
          70011)
        E(self.post(client_secret=self.secret, scope="storage/.default"), 400,
          "invalid_resource", 500011)
        # not form-encoded: the parameters are not there
        E(entra(self.ts, sp_form(self.app, client_secret=self.secret), ctype="application/json"),
          400, "invalid_request", 900144)

    def test_credentials(self):
        E = self.assertEntraError
        E(self.post(), 401, "invalid_client", 7000218)
        E(self.post(client_secret=""), 401, "invalid_client", 7000218)
        body = E(self.post(client_secret="wrong"), 401, "invalid_client", 7000215)
        self.assertIn("app '%s'" % self.app, body["error_description"])
        bare = self.ts.add_app()
        E(entra(self.ts, sp_form(bare, client_secret="anything")), 401, "invalid_client", 7000215)
        E(self.post(client_secret=self.secret, client_assertion_type=JWT_BEARER,
                    client_assertion="x.y.z"), 400, "invalid_request", 0)
        E(self.post(client_assertion="x.y.z"), 400, "invalid_request", 900144)
        E(self.post(client_assertion_type="urn:other", client_assertion="x.y.z"), 400,
          "invalid_request", 0)
        st = self.ts.stats()
        self.assertEqual(st["issued"], {})
        self.assertNotIn(self.secret, json.dumps(st))
        self.assertNotIn("x.y.z", json.dumps(st))
        self.assertEqual(st["requests"], {"entra_other": 3, "entra_secret": 2,
                                          "entra_certificate": 2})

    def test_certificate_assertions(self):
        E = self.assertEntraError
        self.assertEqual(self.assertion()[0], 200)
        other = TLS.client_certificate("sp-other")
        # signed by a key the app does not have, naming a certificate it has not
        body = E(self.assertion(cert=other), 401, "invalid_client", 700027)
        self.assertIn("The key was not found.", body["error_description"])
        self.assertIn(other.thumbprint, body["error_description"])
        # naming the app's certificate, signed with another key
        body = E(self.assertion(key=other.key), 401, "invalid_client", 700027)
        self.assertIn("did not match the expected signature value", body["error_description"])
        # a claim changed after signing
        good = make_assertion(self.cert, self.app, self.ts.token_endpoint())
        h64, c64, s64 = good.split(".")
        claims = unpadded_json(c64)
        claims["exp"] += 60
        forged = h64 + "." + b64url(json.dumps(claims).encode()) + "." + s64
        E(self.post(client_assertion_type=JWT_BEARER, client_assertion=forged), 401,
          "invalid_client", 700027)
        E(self.assertion(alg="none", thumb="x5t"), 400, "invalid_request", 50027)
        E(self.post(client_assertion_type=JWT_BEARER, client_assertion="garbage"), 400,
          "invalid_request", 50027)
        E(self.assertion(claims={"iss": str(uuid.uuid4())}), 401, "invalid_client", 700021)
        E(self.assertion(claims={"sub": str(uuid.uuid4())}), 401, "invalid_client", 700021)
        E(self.assertion(aud=self.ts.token_endpoint(host="localhost")), 401, "invalid_client",
          700023)
        E(self.assertion(aud="https://login.microsoftonline.com/%s/oauth2/v2.0/token"
                         % self.ts.tenant_id), 401, "invalid_client", 700023)
        now = int(time.time())
        E(self.assertion(nbf=now - 700), 401, "invalid_client", 700024)           # expired
        E(self.assertion(nbf=now + 120), 401, "invalid_client", 700024)           # not yet
        E(self.assertion(lifetime=601), 401, "invalid_client", 700024)            # too long
        self.assertEqual(self.assertion(lifetime=600)[0], 200)
        for claim in ("jti", "nbf", "exp", "aud"):
            body = E(self.assertion(drop=(claim,)), 400, "invalid_request", 50027)
            self.assertIn("'%s'" % claim, body["error_description"])
        # a replayed assertion
        once = make_assertion(self.cert, self.app, self.ts.token_endpoint(), jti="jti-once")
        self.assertEqual(self.post(client_assertion_type=JWT_BEARER, client_assertion=once)[0],
                         200)
        body = E(self.post(client_assertion_type=JWT_BEARER, client_assertion=once), 401,
                 "invalid_client", 0)
        self.assertIn("jti 'jti-once' was already used", body["error_description"])
        # a certificate removed from the app
        self.ts.remove_certificates(self.app)
        E(self.assertion(), 401, "invalid_client", 700027)
        st = self.ts.stats()
        self.assertEqual(st["issued"], {"entra_certificate": 3})
        log = [e for e in st["log"] if e["status"] != 200]
        self.assertTrue(all(e["credential"] == "certificate" for e in log), log)
        self.assertNotIn(s64, json.dumps(st), "an assertion in the stats")

    def test_federated_errors(self):
        fed_app = self.ts.add_app(federated_token="the-federated-token")
        form = sp_form(fed_app, client_assertion_type=JWT_BEARER)
        self.assertEqual(entra(self.ts, dict(form, client_assertion="the-federated-token"))[0],
                         200)
        for wrong in ("the-federated-tokenX", self.ts.make_federated_token()):
            self.assertEntraError(entra(self.ts, dict(form, client_assertion=wrong)), 400,
                                  "invalid_request", 70021)
        # the federated token of another app
        other = self.ts.add_app(federated_token="other-token")
        self.assertEntraError(entra(self.ts, dict(form, client_assertion="other-token")), 400,
                              "invalid_request", 70021)
        self.assertEqual(entra(self.ts, sp_form(other, client_assertion_type=JWT_BEARER,
                                                client_assertion="other-token"))[0], 200)
        self.assertNotIn("the-federated-token", json.dumps(self.ts.stats()))


# ------------------------------------------------------------------ faults

class FaultsTest(TokenServerCase):

    def fired(self, n, action=None):
        st = self.ts.stats()
        self.assertEqual(st["faults_fired"], n, "fired %r; log %r" % (st["fired"], st["log"][-8:]))
        if action:
            self.assertTrue(all(f["action"] == action for f in st["fired"]), st["fired"])
        return st

    def test_status_count(self):
        self.ts.add_fault(kind="imds", status=503, count=2)
        for _ in range(2):
            st, hdrs, body = imds(self.ts)
            self.assertEqual(st, 503)
            self.assertEqual(body["error"], "temporarily_unavailable")
        self.assertEqual(imds(self.ts)[0], 200)
        st = self.fired(2, "status")
        self.assertEqual(st["statuses"], {"imds": {"503": 2, "200": 1}})
        self.assertEqual(st["issued"], {"imds": 1})
        self.assertEqual([e["outcome"] for e in st["log"]], ["status", "status", "issued"])
        self.assertEqual(st["faults"], [], "a spent fault is still listed")

    def test_429_retry_after_on_entra(self):
        app = self.ts.add_app(secret="s")
        self.ts.add_fault(kind="entra", status=429)
        st, hdrs, body = entra(self.ts, sp_form(app, client_secret="s"))
        self.assertEqual((st, hdrs.get("retry-after")), (429, "1"))
        self.assertEqual(body["error"], "temporarily_unavailable")
        self.ts.add_fault(kind="entra", status=429, retry_after=7)
        self.assertEqual(entra(self.ts, sp_form(app, client_secret="s"))[1]["retry-after"], "7")
        self.ts.add_fault(kind="entra", status=503, retry_after=None)
        st, hdrs, body = entra(self.ts, sp_form(app, client_secret="s"))
        self.assertEqual(st, 503)
        self.assertNotIn("retry-after", hdrs)
        self.assertEqual(entra(self.ts, sp_form(app, client_secret="s"))[0], 200)
        self.fired(3)

    def test_imds_410_for_a_while(self):
        self.ts.down(1.0, mode="410", kind="imds")
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 0.7:
            st, _hd, body = imds(self.ts)
            self.assertEqual(st, 410, body)
            n += 1
        self.assertEqual(app_service(self.ts)[0], 200, "the fault leaked to App Service")
        while time.monotonic() - t0 < 1.1:
            time.sleep(0.05)
        self.assertEqual(imds(self.ts)[0], 200)
        self.fired(n, "status")
        self.assertGreater(n, 2)

    def test_500_until_cleared(self):
        self.ts.down(None, mode="500", kind="app_service")
        for _ in range(3):
            st, _hd, body = app_service(self.ts)
            self.assertEqual((st, body["statusCode"]), (500, 500))
        self.assertEqual(len(self.ts.stats()["faults"]), 1)
        self.ts.clear()
        self.assertEqual(app_service(self.ts)[0], 200)
        self.fired(3)

    def test_down_for_n_requests(self):
        self.ts.down(mode="503", kind="imds", count=2)
        self.assertEqual([imds(self.ts)[0] for _ in range(3)], [503, 503, 200])

    def assertRefused(self, url):
        u = urllib.parse.urlsplit(url)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection((u.hostname, u.port), timeout=5).close()

    def test_refuse_for_a_while(self):
        app = self.ts.add_app(secret="s")
        self.ts.down(1.0, mode="refuse", kind="entra")
        t0 = time.monotonic()
        self.assertRefused(self.ts.authority_host)
        self.assertEqual(imds(self.ts)[0], 200, "IMDS went down with Entra")
        st = self.ts.stats()                    # the control endpoint stays up
        self.assertEqual(st["refusing"], ["entra"])
        self.assertEqual(st["fired"][0]["action"], "refuse")
        deadline = t0 + 10
        while True:
            try:
                r = entra(self.ts, sp_form(app, client_secret="s"))
                break
            except ConnectionRefusedError:
                self.assertLess(time.monotonic(), deadline, "still refused after 10 s")
                time.sleep(0.05)
        self.assertGreaterEqual(time.monotonic() - t0, 0.95)
        self.assertEqual(r[0], 200)
        self.assertEqual(self.ts.stats()["refusing"], [])

    def test_refuse_until_cleared_drops_kept_connections(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.ts.port("imds"), timeout=5)
        conn.request("GET", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
                     + STORAGE, headers={"Metadata": "true"})
        self.assertEqual(conn.getresponse().read()[:1], b"{")
        self.ts.down(mode="refuse", kind="any")
        for url in (self.ts.imds_endpoint, self.ts.app_service_endpoint, self.ts.authority_host):
            self.assertRefused(url)
        with self.assertRaises((ConnectionError, http.client.HTTPException, OSError)):
            conn.request("GET", "/metadata/identity/oauth2/token?api-version=2018-02-01"
                         "&resource=" + STORAGE, headers={"Metadata": "true"})
            conn.getresponse().read()
        conn.close()
        self.assertEqual(sorted(self.ts.stats()["refusing"]), ["app_service", "entra", "imds"])
        time.sleep(0.3)
        self.assertRefused(self.ts.imds_endpoint)
        self.ts.clear()
        self.assertEqual(imds(self.ts)[0], 200)
        self.assertEqual(app_service(self.ts)[0], 200)

    def test_reset(self):
        self.ts.add_fault(kind="app_service", action="reset")
        with self.assertRaises((ConnectionResetError, http.client.RemoteDisconnected)):
            app_service(self.ts)
        self.assertEqual(app_service(self.ts)[0], 200)
        st = self.fired(1, "reset")
        self.assertEqual([e["outcome"] for e in st["log"]], ["reset", "issued"])
        self.assertEqual(st["issued"], {"app_service": 1})

    def test_delay(self):
        self.ts.add_fault(kind="imds", action="delay", delay=1.2)
        t0 = time.monotonic()
        self.assertEqual(imds(self.ts)[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 1.15)
        t0 = time.monotonic()
        self.assertEqual(imds(self.ts)[0], 200)
        self.assertLess(time.monotonic() - t0, 1.0, "the delay fired twice")
        st = self.fired(1, "delay")
        self.assertEqual(st["log"][0]["outcome"], "delay+issued")

    def test_client_id_and_kind_filters(self):
        a = self.ts.add_app(secret="a")
        b = self.ts.add_app(secret="b", certificate=TLS.client_certificate("sp-flt"))
        self.ts.add_fault(kind="entra", client_id=b, status=500, count=0)
        self.assertEqual(entra(self.ts, sp_form(a, client_secret="a"))[0], 200)
        self.assertEqual(entra(self.ts, sp_form(b, client_secret="b"))[0], 500)
        self.assertEqual(imds(self.ts)[0], 200)
        self.ts.clear()
        self.ts.add_fault(kind="entra_certificate", status=503, count=0)
        self.assertEqual(entra(self.ts, sp_form(b, client_secret="b"))[0], 200)
        cert_b = TLS.client_certificate("sp-flt2")
        self.ts.add_certificate(b, cert_b)
        st, _hd, body = entra(self.ts, sp_form(b, client_assertion_type=JWT_BEARER,
                                               client_assertion=make_assertion(
                                                   cert_b, b, self.ts.token_endpoint())))
        self.assertEqual(st, 503, body)
        uid = self.ts.add_identity()
        self.ts.clear()
        self.ts.add_fault(kind="imds", client_id=uid, status=500)
        self.assertEqual(imds(self.ts)[0], 200)
        self.assertEqual(imds(self.ts, client_id=uid)[0], 500)
        self.fired(3)

    def test_custom_body(self):
        self.ts.add_fault(kind="imds", status=200, body='{"access_token": ',
                          content_type="application/json")
        st, hdrs, body = imds(self.ts)
        self.assertEqual((st, body), (200, b'{"access_token": '))
        self.assertEqual(hdrs["content-type"], "application/json")

    def test_bad_faults(self):
        for bad in ({"kind": "nonsense"}, {"action": "explode"}, {"bogus": 1},
                    {"action": "refuse", "count": 2}, {"action": "refuse", "kind": "entra_secret"},
                    {"action": "refuse", "client_id": "x"}, {"status": 999}):
            with self.assertRaises(ValueError, msg=bad):
                self.ts.add_fault(**bad)
        self.assertEqual(self.ts.stats()["faults"], [])

    def test_control_endpoint(self):
        from token_server import control
        url = self.ts.control_url
        r = control(url, {"add": {"kind": "imds", "status": 503}})
        self.assertTrue(r["ok"])
        self.assertEqual(len(control(url)["faults"]), 1)
        self.assertEqual(imds(self.ts)[0], 503)
        control(url, {"set": [{"kind": "imds", "status": 500, "count": 0},
                              {"kind": "entra", "status": 429}]})
        self.assertEqual(len(control(self.ts.port("control"))["faults"]), 2)
        control(url, method="DELETE")
        self.assertEqual(control(url)["faults"], [])
        control(url, {"kind": "app_service", "action": "reset"})      # a bare FAULT
        self.assertEqual(len(control(url)["faults"]), 1)
        control(url, {"clear": True, "stats": True})
        self.assertEqual(control(url)["requests"], {})
        control(url, {"lifetime": 42, "kind": "imds"})
        self.assertEqual(imds(self.ts)[2]["expires_in"], "42")
        uid = control(url, {"identity": {}})["client_id"]
        self.assertEqual(imds(self.ts, client_id=uid)[0], 200)
        cert = TLS.client_certificate("sp-ctl")
        with open(cert.cert_file) as f:
            app = control(url, {"app": {"secret": "cs", "certificate": f.read()}})["client_id"]
        self.assertEqual(entra(self.ts, sp_form(app, client_secret="cs"))[0], 200)
        a = make_assertion(cert, app, self.ts.token_endpoint())
        self.assertEqual(entra(self.ts, sp_form(app, client_assertion_type=JWT_BEARER,
                                                client_assertion=a))[0], 200)
        control(url, {"federated_token": {"client_id": app, "token": "ft"}})
        self.assertEqual(entra(self.ts, sp_form(app, client_assertion_type=JWT_BEARER,
                                                client_assertion="ft"))[0], 200)
        control(url, {"down": {"seconds": None, "mode": "refuse", "kind": "imds"}})
        self.assertRefused(self.ts.imds_endpoint)
        control(url, method="DELETE")
        self.assertEqual(imds(self.ts)[0], 200)
        self.assertNotIn("log", control(url + "?nolog=1"))
        for bad in ({"add": {"kind": "nonsense"}}, {"lifetime": 5, "kind": "x"}, "not json"):
            with self.assertRaises(RuntimeError) as cm:
                control(url, bad)
            self.assertIn("400", str(cm.exception))

    def test_wait_helpers_and_stop(self):
        threading.Timer(0.3, lambda: imds(self.ts)).start()
        st = self.ts.wait_requests("imds", 1, timeout=10)
        self.assertEqual(st["requests"]["imds"], 1)
        self.ts.add_fault(kind="imds", status=500)
        threading.Timer(0.3, lambda: imds(self.ts)).start()
        self.ts.wait_fired(1, timeout=10)
        ports = [self.ts.port(n) for n in ("imds", "app_service", "entra", "control")]
        self.ts.stop()
        for p in ports:
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", p), timeout=2).close()
        time.sleep(0.2)
        alive = [t.name for t in threading.enumerate()
                 if t.name.startswith("token-server") and not t.name.endswith("-conn")]
        self.assertEqual(alive, [], "token server threads alive after stop()")

    def test_loopback_only(self):
        from token_server import TokenServer
        with self.assertRaises(ValueError):
            TokenServer(tls=TLS, host="0.0.0.0")


# ------------------------------------------------------------------ harness

class HarnessTest(TokenServerCase):
    """harness.entra_azure_section: the [azure] keys for each kind."""

    def test_sections(self):
        import stat
        import tempfile
        d = tempfile.mkdtemp(prefix="mab-tsec-")
        self.addCleanup(lambda: __import__("shutil").rmtree(d, ignore_errors=True))
        mi = h.entra_azure_section(d, "managed_identity", AZ, self.ts)
        self.assertEqual(mi, {"connection_string_file": None, "auth": "managed_identity",
                              "account_url": AZ.account_url, "ca_file": AZ.ca_file,
                              "identity_endpoint": self.ts.imds_endpoint})
        uid = self.ts.add_identity()
        self.assertEqual(h.entra_azure_section(d, "managed_identity", AZ, self.ts,
                                               client_id=uid)["client_id"], uid)
        app = self.ts.add_app(secret="s3")
        sp = h.entra_azure_section(d, "service_principal", AZ, self.ts, client_id=app,
                                   secret="s3", max_retries=3)
        self.assertEqual((sp["tenant_id"], sp["client_id"], sp["authority_host"],
                          sp["max_retries"]),
                         (self.ts.tenant_id, app, self.ts.authority_host, 3))
        with open(sp["client_secret_file"]) as f:
            self.assertEqual(f.read(), "s3\n")
        self.assertEqual(stat.S_IMODE(os.stat(sp["client_secret_file"]).st_mode), 0o600)
        cert = TLS.client_certificate("sp-sec")
        spc = h.entra_azure_section(d, "service_principal", AZ, self.ts, client_id=app,
                                    certificate_file=cert.pem_file)
        self.assertEqual(spc["client_certificate_file"], cert.pem_file)
        self.assertNotIn("client_secret_file", spc)
        fed = self.ts.make_federated_token()
        wi = h.entra_azure_section(d, "workload_identity", AZ, self.ts, client_id=app,
                                   federated_token=fed)
        with open(wi["federated_token_file"]) as f:
            self.assertEqual(f.read(), fed)
        with self.assertRaises(ValueError):
            h.entra_azure_section(d, "shared_key", AZ, self.ts)


# ------------------------------------------------------------------ program

class CliTest(unittest.TestCase):

    def test_program(self):
        tenant = str(uuid.uuid4())
        app, uid = str(uuid.uuid4()), str(uuid.uuid4())
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "token_server.py"),
                              "--tenant-id", tenant, "--lifetime", "77", "--identity", uid,
                              "--app", app, "--secret", "%s=cli-secret" % app],
                             stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        try:
            info = {}
            while True:
                line = p.stdout.readline().decode()
                self.assertTrue(line, "token_server.py exited before 'ready'")
                if line.strip() == "ready":
                    break
                k, v = line.strip().split(" ", 1)
                info[k] = v
            self.assertEqual(sorted(info), ["app_service", "authority_host", "ca_file",
                                            "control", "identity_header", "imds",
                                            "system_client_id", "tenant_id"])
            self.assertEqual(info["tenant_id"], tenant)
            ca = ssl.create_default_context(cafile=info["ca_file"])
            st, _hd, body = request(info["imds"] + "?api-version=2018-02-01&client_id=%s"
                                    "&resource=%s" % (uid, STORAGE), headers={"Metadata": "true"})
            self.assertEqual((st, body["client_id"], body["expires_in"]), (200, uid, "77"))
            st, _hd, body = request(info["app_service"] + "?api-version=2019-08-01&resource="
                                    + STORAGE,
                                    headers={"X-IDENTITY-HEADER": info["identity_header"]})
            self.assertEqual((st, body["client_id"]), (200, info["system_client_id"]))
            st, _hd, body = request(
                "%s/%s/oauth2/v2.0/token" % (info["authority_host"], tenant), method="POST",
                body=urllib.parse.urlencode(sp_form(app, client_secret="cli-secret")),
                headers={"Content-Type": "application/x-www-form-urlencoded"}, context=ca)
            self.assertEqual((st, body["expires_in"]), (200, 77))
            self.assertEqual(azurite_put_container(body["access_token"])[0], 201)
            from token_server import control
            control(info["control"], {"kind": "imds", "status": 410})
            st, _hd, _b = request(info["imds"] + "?api-version=2018-02-01&resource=" + STORAGE,
                                  headers={"Metadata": "true"})
            self.assertEqual(st, 410)
            stats = control(info["control"])
            self.assertEqual(stats["faults_fired"], 1)
            self.assertEqual(stats["issued"], {"imds": 1, "app_service": 1, "entra_secret": 1})
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                self.fail("token_server.py did not exit on SIGTERM")
            p.stdout.close()
        self.assertEqual(rc, 0)
        self.assertFalse(os.path.exists(info["ca_file"]), "temporary TLS files left behind")


def main():
    h.server_selftest_main(h.AzuriteOAuth.available)


if __name__ == "__main__":
    main()
