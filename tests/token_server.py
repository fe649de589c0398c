#!/usr/bin/python3
"""token_server.py - a stand-in for the Microsoft Entra ID token sources, for
the tests of bearer-token authentication.

The daemon's `[azure] auth = managed_identity | service_principal |
workload_identity` fetches OAuth access tokens for Azure Storage from one of
three services; this server plays all three, on loopback ports of its own,
answering as Microsoft documents them (IMDS: "How to use managed identities
for Azure resources on an Azure VM to acquire an access token"; App Service:
"Managed identities for App Service", its REST endpoint reference; Entra:
"OAuth 2.0 client credentials flow" and "Certificate credentials"):

  * IMDS (managed identity on a VM), plain HTTP like the real one:
        GET /metadata/identity/oauth2/token?api-version=2018-02-01
            &resource=https://storage.azure.com/[&client_id=|&object_id=|&msi_res_id=]
        Metadata: true        (compared without regard to case)
    200 {"access_token", "client_id", "expires_in", "expires_on",
         "ext_expires_in", "not_before", "resource", "token_type"}
    with every number a string;
  * App Service / Functions, plain HTTP (the path in either case: the
    documentation writes /MSI/token):
        GET /msi/token?resource=...&api-version=2019-08-01[&client_id=|&principal_id=|&mi_res_id=]
        X-IDENTITY-HEADER: <the configured value>
    200 {"access_token", "expires_on", "resource", "token_type", "client_id"}
    (expires_on epoch seconds as a string; no expires_in, as documented);
  * the Entra ID v2.0 token endpoint, HTTPS (certificate from tests/tls.py):
        POST /{tenant}/oauth2/v2.0/token   (form-encoded)
        grant_type=client_credentials&client_id=..&scope=https://storage.azure.com/.default
        &client_secret=..   or
        &client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
        &client_assertion=<JWT>
    200 {"token_type": "Bearer", "expires_in": N, "ext_expires_in": N,
         "access_token"}  with numbers as numbers.
    A client assertion is either a certificate-signed JWT (RS256 with `x5t`
    = base64url SHA-1 of the DER certificate, or PS256 with `x5t#S256`),
    verified here with the registered certificate's public key: iss == sub
    == client_id, aud == this token endpoint's URL as the client reached it
    ("https://" + Host + path), nbf <= now < exp, exp - nbf <= 600 s, a jti
    never seen before - or a federated token (workload identity), accepted
    when it equals, as a string, one of the tokens registered for the app.

Issued access tokens are JWTs signed RS256 with a key made at start (Azurite
does not check the signature; verify_access_token() does), v1.0 claims as
Entra issues them for Storage: iss "https://sts.windows.net/<tenant>/", aud
the resource without its trailing slash ("https://storage.azure.com"), iat
and nbf `backdate` seconds (300, as Entra) before now, exp = now + lifetime,
appid, appidacr, oid, sub, tid, uti, ver "1.0".  The lifetime (default 3600
s) is settable, per source too; 5 s or less works, and 0 or less issues
tokens that are already expired (expires_in then is <= 0).

Errors, with the statuses and bodies of Microsoft's documentation and of
real answers quoted in Microsoft's issue trackers; AADSTS numbers change over
time (Microsoft says so), a client acts on the status and the "error" string
only.  Marked * : this server's choice where Microsoft documents nothing.

  IMDS (400 {"error", "error_description"}):
    no `Metadata: true` header     400 invalid_request "Required metadata header not specified"
    X-Forwarded-For present        400 invalid_request *
    no api-version                 400 invalid_request *
    no resource                    400 invalid_request "Required audience parameter not specified"
    unknown client_id/object_id/msi_res_id
                                   400 invalid_request "Identity not found"
    no id, several user-assigned identities, no system-assigned one
                                   400 invalid_request "Multiple user assigned
                                       identities exist, ..."
    several of client_id, object_id, msi_res_id
                                   400 invalid_request *
    resource not an https URI      400 invalid_resource AADSTS500011
    not GET                        405 *
  Any listener, another path: 404 {"error": "not_found"}.
  App Service (JSON {"statusCode", "message"}):
    X-IDENTITY-HEADER missing or wrong      401 *
    not GET                                 405 *
    api-version other than 2019-08-01       400 *
    no resource                             400 *
    unknown identity    400 "No User Assigned or Delegated Managed Identity found
                         for specified ClientId/ResourceId/PrincipalId."
  Entra (JSON {"error", "error_description": "AADSTSnnn: ...\\r\\nTrace ID: ..
         \\r\\nCorrelation ID: ..\\r\\nTimestamp: ..", "error_codes": [nnn],
         "timestamp", "trace_id", "correlation_id", "error_uri"}):
    not POST                          400 invalid_request        900561
    unknown tenant                    400 invalid_request        90002
    malformed tenant                  400 invalid_request        900023
    a parameter missing               400 invalid_request        900144
    grant_type not client_credentials 400 unsupported_grant_type 70003
    client_id not a GUID              400 invalid_request        700038
    unknown client_id (in the tenant) 400 unauthorized_client    700016
    scope without /.default           400 invalid_scope          1002012
    several scopes                    400 invalid_scope          70011
    resource not an https URI         400 invalid_resource       500011
    no secret, no assertion           401 invalid_client         7000218
    wrong secret (or none registered) 401 invalid_client         7000215
    both a secret and an assertion    400 invalid_request        * (no code)
    wrong client_assertion_type       400 invalid_request        * (no code)
    assertion not a JWT / claim missing / alg not RS256|PS256
                                      400 invalid_request        50027
    certificate unknown (x5t)         401 invalid_client         700027 "The key was not found."
    signature does not verify         401 invalid_client         700027 "The provided signature
                                                                  value did not match ..."
    iss or sub != client_id           401 invalid_client         700021
    aud != token endpoint URL         401 invalid_client         700023
    expired, not yet valid, longer than 10 min
                                      401 invalid_client         700024
    jti already used                  401 invalid_client         * (no code; Entra documents
                                                                  jti as unique, this server
                                                                  enforces it)
    federated token not registered    400 invalid_request        70021

Simplifications: one process plays every tenant; an identity's object id and
resource id are made up; tokens for any https resource are issued (Azurite
then refuses a wrong audience, as Storage would); IMDS does not cache tokens
unless imds_cache_refresh is set (then it returns the same token until fewer
than that many seconds remain, an approximation of IMDS's own cache); a federated
token is compared as a string, its signature and claims are not checked;
Azure Arc's challenge is not played.

Fault injection (add_fault(**FAULT), down(), the control endpoint), in the
style of tests/fault_proxy.py.  A FAULT:

    kind       "imds", "app_service", "entra_secret", "entra_certificate",
               "entra_federated", "entra_other" (an Entra request with no
               usable credential), "entra" (all Entra kinds), "any"
               (default), or a list of them
    client_id  only requests for this client id / identity
    action     "status"  answer `status` (default 503) with an error body
                         shaped like the source's (or `body`), and
                         `headers`; a 429 gets Retry-After: 1 unless
                         retry_after is given (None: no header)
               "reset"   read the request, then reset the connection
               "delay"   hold the request `delay` seconds, then answer it
               "refuse"  close the listening socket: connection refused
                         (ECONNREFUSED) until the fault ends; whole listeners
                         only (kind imds, app_service, entra or any), count 0
    status, headers, retry_after, body (str), content_type, error (the
               "error" string of the body), delay
    count      how many matching requests it fires on (default 1; 0: no
               limit while active)
    duration   seconds from installation it stays active (None: until spent
               or cleared)

stats() (and GET on the control endpoint):

    {"requests": {kind: n}, "statuses": {kind: {"200": n}},
     "issued": {kind: n}, "tokens_issued": n,
     "faults_fired": n, "fired": [{"id", "kind", "action", "client_id", "t"}],
     "faults": [active faults], "connections": {listener: n},
     "refusing": [listeners closed by a refuse fault],
     "tokens": [{"t", "kind", "client_id", "uti", "iat", "nbf", "exp", "aud"}],
     "log": [{"t", "listener", "method", "path", "kind", "client_id",
              "tenant", "credential", "outcome", "status", "error",
              "error_code", "fault", "jti", "x5t", "uti"}]}

    t: seconds since start; outcome "issued", "error", "not_found" or the
    fault's action; error the OAuth error ("invalid_client") or the message.
    Secrets and assertions never appear; a jti and a thumbprint may.

Used two ways:

  * as a module:

        from token_server import TokenServer
        ts = TokenServer(tls=tls_material, lifetime=5).start()
        app = ts.add_app(secret="s3cret")            # a client id
        ts.imds_endpoint, ts.authority_host, ts.app_service_endpoint
        ts.add_fault(kind="imds", status=410, count=2)
        ts.stats(); ts.clear(); ts.stop()

  * as a program:  token_server.py [--lifetime S] [--app CID] [--secret CID=S]
    ... prints "NAME VALUE" lines (imds, app_service, identity_header,
    authority_host, tenant_id, system_client_id, ca_file, control) and
    "ready", then serves until SIGTERM/SIGINT.  The control endpoint
    (http://127.0.0.1:PORT/__token_server__) takes:

        GET     -> stats (?nolog=1: without the log)
        DELETE  -> clear the faults (?stats=1: the counters too)
        POST    JSON: {"add": FAULT | [FAULT]}  {"set": [FAULT]}
                      {"clear": true, "stats": bool}
                      {"down": {"seconds", "mode", "kind"}}
                      {"lifetime": S, "kind": optional source}
                      {"identity": {"client_id", "object_id", "msi_res_id"}}
                      {"app": {"client_id", "secret", "certificate" (PEM),
                               "federated_token", "tenant_id"}}
                      {"federated_token": {"client_id", "token"}}
                      FAULT  (same as add)
"""

import argparse
import base64
import copy
import datetime
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import tls as tlsmod  # noqa: E402

CONTROL_PATH = "/__token_server__"
IMDS_PATH = "/metadata/identity/oauth2/token"
APP_SERVICE_PATH = "/msi/token"
STORAGE_RESOURCE = "https://storage.azure.com/"
STORAGE_SCOPE = "https://storage.azure.com/.default"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FEDERATED_AUDIENCE = "api://AzureADTokenExchange"
ASSERTION_MAX_LIFETIME = 600

KINDS = ("imds", "app_service", "entra_secret", "entra_certificate",
         "entra_federated", "entra_other", "other")
FAULT_KINDS = KINDS[:-1] + ("entra", "any")
LISTENERS = ("imds", "app_service", "entra")
ACTIONS = ("status", "reset", "delay", "refuse")
LOG_MAX = 20000
GUID_RX = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{12}$")
DOMAIN_RX = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
ENTRA_PATH_RX = re.compile(r"^/([^/]+)/oauth2/v2\.0/token/?$")
DOCS_CERT = "https://learn.microsoft.com/entra/identity-platform/certificate-credentials"

_MISSING = object()


# ------------------------------------------------------------------ JWT

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    if isinstance(text, str):
        text = text.encode("ascii")
    if not re.fullmatch(rb"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def decode_jwt(token):
    """(header, claims, signing input bytes, signature bytes) of a compact
    JWS; no check of anything.  ValueError when it is not one."""
    if not isinstance(token, str):
        raise ValueError("a JWT is a string")
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("a JWT has three dot-separated parts, this has %d" % len(parts))
    header = json.loads(b64url_decode(parts[0]))
    claims = json.loads(b64url_decode(parts[1]))
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("JWT header and claims must be JSON objects")
    return header, claims, (parts[0] + "." + parts[1]).encode("ascii"), b64url_decode(parts[2])


def encode_jwt(header, claims, key=None):
    """A compact JWS: RS256 with key (an RSA private key), or alg none."""
    header = dict(header)
    header.setdefault("typ", "JWT")
    header["alg"] = "RS256" if key is not None else "none"
    si = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
          b64url(json.dumps(claims, separators=(",", ":")).encode()))
    sig = b"" if key is None else key.sign(si.encode("ascii"), padding.PKCS1v15(),
                                           hashes.SHA256())
    return si + "." + b64url(sig)


def _verify_signature(public_key, alg, signing_input, signature):
    """Raises InvalidSignature (or ValueError for a key/alg mismatch)."""
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ValueError("only RSA certificates are supported")
    if alg == "RS256":
        public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "PS256":
        public_key.verify(signature, signing_input,
                          padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                      salt_length=padding.PSS.DIGEST_LENGTH),
                          hashes.SHA256())
    else:
        raise ValueError("unsupported alg %r" % alg)


# ------------------------------------------------------------------ errors

class _Answer(Exception):
    """A complete answer, raised from deep inside a handler."""

    def __init__(self, status, body, headers=None, outcome="error", error=None,
                 error_code=None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.outcome = outcome
        self.error = error
        self.error_code = error_code


class _Reset(Exception):
    """Drop the connection with a TCP reset."""


def _utc_stamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def entra_error(status, error, code, message):
    """An _Answer shaped like Entra ID's token endpoint errors."""
    trace, corr, stamp = str(uuid.uuid4()), str(uuid.uuid4()), _utc_stamp()
    prefix = "AADSTS%d: " % code if code else ""
    body = {"error": error,
            "error_description": "%s%s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s"
                                 % (prefix, message, trace, corr, stamp),
            "error_codes": [code] if code else [],
            "timestamp": stamp, "trace_id": trace, "correlation_id": corr}
    if code:
        body["error_uri"] = "https://login.microsoftonline.com/error?code=%d" % code
    return _Answer(status, body, {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
                   error=error, error_code=code)


def imds_error(status, error, description):
    return _Answer(status, {"error": error, "error_description": description},
                   error=error)


def app_service_error(status, message):
    return _Answer(status, {"statusCode": status, "message": message}, error=message)


# ------------------------------------------------------------------ faults

class _Fault:
    _next_id = 1
    _id_lock = threading.Lock()
    KEYS = {"kind", "client_id", "action", "status", "headers", "retry_after", "body",
            "content_type", "error", "delay", "count", "duration", "id"}

    def __init__(self, spec, now):
        if not isinstance(spec, dict):
            raise ValueError("a fault is a JSON object, not %r" % (spec,))
        unknown = set(spec) - self.KEYS
        if unknown:
            raise ValueError("unknown fault keys: %s" % ", ".join(sorted(unknown)))
        kind = spec.get("kind", "any")
        self.kinds = [kind] if isinstance(kind, str) else list(kind)
        for k in self.kinds:
            if k not in FAULT_KINDS:
                raise ValueError("unknown kind %r (kinds: %s)" % (k, ", ".join(FAULT_KINDS)))
        self.client_id = spec.get("client_id")
        self.action = spec.get("action", "status")
        if self.action not in ACTIONS:
            raise ValueError("unknown action %r (actions: %s)" % (self.action, ", ".join(ACTIONS)))
        self.status = int(spec.get("status", 503))
        if not 100 <= self.status <= 599:
            raise ValueError("status %d is not an HTTP status" % self.status)
        self.headers = dict(spec.get("headers") or {})
        ra = spec.get("retry_after", _MISSING)
        if ra is _MISSING:
            ra = 1 if self.status == 429 else None
        if ra is not None:
            self.headers.setdefault("Retry-After", str(ra))
        self.body = spec.get("body")
        self.content_type = spec.get("content_type")
        self.error = spec.get("error")
        self.delay = float(spec.get("delay", 0) or 0)
        count = spec.get("count", 0 if self.action == "refuse" else 1)
        self.count = int(count) if count else 0
        duration = spec.get("duration")
        self.until = (now + float(duration)) if duration is not None else None
        if self.action == "refuse":
            if self.count:
                raise ValueError("a refuse fault closes a listener: it lasts for a duration "
                                 "or until cleared, count must be 0")
            if self.client_id:
                raise ValueError("a refuse fault cannot filter on client_id")
            for k in self.kinds:
                if k not in LISTENERS + ("any",):
                    raise ValueError("a refuse fault closes a whole listener: kind must be "
                                     "imds, app_service, entra or any, not %r" % k)
        with _Fault._id_lock:
            self.id = _Fault._next_id
            _Fault._next_id += 1
        self.spec = dict(spec)
        self.fired = 0

    def listeners(self):
        if "any" in self.kinds:
            return set(LISTENERS)
        return {k for k in self.kinds if k in LISTENERS}

    def active(self, now):
        if self.until is not None and now >= self.until:
            return False
        return self.count == 0 or self.fired < self.count

    def matches(self, kind, client_id):
        if self.action == "refuse":
            return False
        ok = ("any" in self.kinds or kind in self.kinds or
              ("entra" in self.kinds and kind.startswith("entra_")))
        if not ok:
            return False
        if self.client_id and (client_id or "").lower() != self.client_id.lower():
            return False
        return True

    def describe(self):
        d = dict(self.spec)
        d.update({"id": self.id, "fired": self.fired})
        return d


# ------------------------------------------------------------------ HTTP

class _Handler(http.server.BaseHTTPRequestHandler):
    """One connection; every request goes to TokenServer._dispatch."""

    protocol_version = "HTTP/1.1"
    server_version = "token_server.py"
    sys_version = ""
    timeout = 60

    def version_string(self):
        return self.server_version

    def log_message(self, *_args):
        pass

    def _any(self):
        self.server.ts._dispatch(self, self.server.name)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _any


def _reset_socket(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Listener:
    """A listening socket with its accept thread; close() and open() again
    on the same port (a refuse fault)."""

    def __init__(self, ts, name, host, port, ssl_ctx=None):
        self.ts, self.name, self.host = ts, name, host
        self.port = port
        self.ssl_ctx = ssl_ctx
        self.lsock = None
        self.thread = None
        self.conns = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    @property
    def is_open(self):
        return self.lsock is not None

    def open(self, attempts=50):
        last = None
        for _ in range(attempts):
            s = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((self.host, self.port or 0))
            except OSError as e:
                s.close()
                last = e
                time.sleep(0.05)
                continue
            s.listen(128)
            s.settimeout(0.1)
            self.port = s.getsockname()[1]
            self.stopping.clear()
            self.lsock = s
            self.thread = threading.Thread(target=self._accept_loop, args=(s,),
                                           name="token-server-%s" % self.name, daemon=True)
            self.thread.start()
            return
        raise OSError("token_server: cannot listen on %s:%s again: %s"
                      % (self.host, self.port, last))

    def close(self):
        """Stop listening and drop every connection of this listener."""
        s, self.lsock = self.lsock, None
        self.stopping.set()
        if s is not None:
            try:
                s.close()
            except OSError:
                pass
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(5)
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept_loop(self, lsock):
        while not self.stopping.is_set():
            try:
                c, addr = lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            self.ts._count_connection(self.name)
            t = threading.Thread(target=self._serve, args=(c, addr),
                                 name="token-server-%s-conn" % self.name, daemon=True)
            t.start()

    def _serve(self, conn, addr):
        with self.lock:
            self.conns.add(conn)
        sock = conn
        try:
            if self.ssl_ctx is not None:
                conn.settimeout(30)
                sock = self.ssl_ctx.wrap_socket(conn, server_side=True)
                with self.lock:
                    self.conns.add(sock)
            _Handler(sock, addr, self)
        except _Reset:
            _reset_socket(sock)
        except (OSError, ValueError, ssl.SSLError):
            pass
        finally:
            with self.lock:
                self.conns.discard(conn)
                self.conns.discard(sock)
            for s in (sock, conn):
                try:
                    s.close()
                except OSError:
                    pass


# ------------------------------------------------------------------ server

class TokenServer:
    """IMDS, App Service and Entra ID token endpoints on loopback ports.

    TokenServer(tls=None, tenant_id=None, lifetime=3600, system_assigned=True,
                identity_header=None, backdate=300, imds_cache_refresh=None,
                host="127.0.0.1", ports=None)
        tls: a tests/tls.TLSMaterial (its CA signs the Entra endpoint's
        certificate); made, and removed at stop(), when not given.
        ports: {"imds"|"app_service"|"entra"|"control": port} (default: any
        free port for each).
    """

    def __init__(self, tls=None, tenant_id=None, lifetime=3600, system_assigned=True,
                 identity_header=None, backdate=300, imds_cache_refresh=None,
                 host="127.0.0.1", ports=None):
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the token server listens on loopback only")
        self.host = "127.0.0.1" if host == "localhost" else host
        self._own_tls = tls is None
        self.tls = tls
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.tenants = {self.tenant_id.lower()}
        self.backdate = int(backdate)
        self.imds_cache_refresh = imds_cache_refresh
        self.identity_header = identity_header or uuid.uuid4().hex
        self._lifetimes = {None: int(lifetime)}
        self._lock = threading.Lock()
        self._reconcile_lock = threading.Lock()
        self._faults = []
        self._identities = {}       # client_id (lower) -> dict
        self._apps = {}             # client_id (lower) -> dict
        self._jti_seen = {}         # (client_id, jti) -> exp
        self._imds_cache = {}
        self._t0 = time.monotonic()
        self._want_ports = dict(ports or {})
        self._listeners = {}
        self._stopping = threading.Event()
        self._maint = None
        self.system_client_id = None
        if system_assigned:
            self.system_client_id = self.add_identity(system=True)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pub_der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = b64url(hashlib.sha1(pub_der).digest())
        self._reset_stats_locked()

    # ---------------------------------------------------------------- life
    def start(self):
        if self.tls is None:
            self.tls = tlsmod.TLSMaterial()
        ctx = self.tls.server_context()
        for name in LISTENERS + ("control",):
            lst = _Listener(self, name, self.host, self._want_ports.get(name, 0),
                            ctx if name == "entra" else None)
            lst.open()
            self._listeners[name] = lst
        self._maint = threading.Thread(target=self._maintain, name="token-server-maint",
                                       daemon=True)
        self._maint.start()
        return self

    def stop(self):
        self._stopping.set()
        with self._reconcile_lock:
            for lst in self._listeners.values():
                lst.close()
        if self._maint is not None:
            self._maint.join(2)
            self._maint = None
        if self._own_tls and self.tls is not None:
            self.tls.cleanup()
            self.tls = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---------------------------------------------------------------- where
    def port(self, listener):
        """Port of "imds", "app_service", "entra" or "control"."""
        return self._listeners[listener].port

    def _base(self, listener, scheme="http", host=None):
        h = host or self.host
        if ":" in h:
            h = "[%s]" % h
        return "%s://%s:%d" % (scheme, h, self.port(listener))

    @property
    def imds_base(self):
        """http://127.0.0.1:PORT - IMDS's address (169.254.169.254 in Azure)."""
        return self._base("imds")

    @property
    def imds_endpoint(self):
        """The IMDS token URL (identity_endpoint): .../metadata/identity/oauth2/token."""
        return self.imds_base + IMDS_PATH

    @property
    def app_service_endpoint(self):
        """IDENTITY_ENDPOINT of App Service: http://127.0.0.1:PORT/msi/token."""
        return self._base("app_service") + APP_SERVICE_PATH

    def app_service_env(self):
        """The environment App Service gives a process."""
        return {"IDENTITY_ENDPOINT": self.app_service_endpoint,
                "IDENTITY_HEADER": self.identity_header}

    @property
    def authority_host(self):
        """https://127.0.0.1:PORT (as https://login.microsoftonline.com)."""
        return self._base("entra", "https")

    def authority_host_for(self, host):
        """The authority host under another name, e.g. "localhost"."""
        return self._base("entra", "https", host)

    def token_endpoint(self, tenant_id=None, host=None):
        """The v2.0 token endpoint URL: the aud a client assertion needs."""
        return "%s/%s/oauth2/v2.0/token" % (self._base("entra", "https", host),
                                            tenant_id or self.tenant_id)

    @property
    def control_url(self):
        return self._base("control") + CONTROL_PATH

    @property
    def ca_file(self):
        """The CA bundle that verifies the Entra endpoint's certificate."""
        return self.tls.ca_file

    def now(self):
        """Seconds since start, the clock of the stats' "t"."""
        return time.monotonic() - self._t0

    # ---------------------------------------------------------------- identities
    def add_identity(self, client_id=None, object_id=None, msi_res_id=None, system=False):
        """A managed identity (user-assigned unless system=True) the IMDS and
        App Service endpoints know; returns its client id."""
        client_id = client_id or str(uuid.uuid4())
        ident = {"client_id": client_id, "object_id": object_id or str(uuid.uuid4()),
                 "msi_res_id": msi_res_id or (
                     "/subscriptions/%s/resourcegroups/mab-tests/providers/"
                     "Microsoft.ManagedIdentity/userAssignedIdentities/id-%s"
                     % (uuid.uuid4(), client_id[:8])),
                 "system": bool(system)}
        with self._lock:
            if system:
                for k in [k for k, v in self._identities.items() if v["system"]]:
                    del self._identities[k]
            self._identities[client_id.lower()] = ident
        return client_id

    def remove_identity(self, client_id):
        with self._lock:
            ident = self._identities.pop(client_id.lower(), None)
            if ident and ident["system"]:
                self.system_client_id = None

    def identity(self, client_id):
        """The identity record (client_id, object_id, msi_res_id, system)."""
        with self._lock:
            return dict(self._identities[client_id.lower()])

    def add_app(self, client_id=None, secret=None, certificate=None, federated_token=None,
                tenant_id=None):
        """An app registration (service principal) in tenant_id (default:
        the server's); secret, certificate and federated_token may each be
        one value or a list (a certificate: tls.ClientCertificate, an
        x509.Certificate, PEM/DER bytes or a PEM file path).  Returns the
        client id."""
        client_id = client_id or str(uuid.uuid4())
        tenant = (tenant_id or self.tenant_id).lower()
        app = {"client_id": client_id, "tenant": tenant, "object_id": str(uuid.uuid4()),
               "secrets": [], "certs": {}, "certs256": {}, "federated": []}
        with self._lock:
            self.tenants.add(tenant)
            self._apps[client_id.lower()] = app
        for s in _as_list(secret):
            self.add_secret(client_id, s)
        for c in _as_list(certificate):
            self.add_certificate(client_id, c)
        if federated_token is not None:
            self.set_federated_token(client_id, federated_token)
        return client_id

    def remove_app(self, client_id):
        with self._lock:
            self._apps.pop(client_id.lower(), None)

    def _app(self, client_id):
        app = self._apps.get(client_id.lower())
        if app is None:
            raise KeyError("no app %s" % client_id)
        return app

    def add_secret(self, client_id, secret):
        with self._lock:
            self._app(client_id)["secrets"].append(str(secret))

    def set_secrets(self, client_id, secrets):
        """Replace the app's secrets (a rotation)."""
        with self._lock:
            self._app(client_id)["secrets"] = [str(s) for s in _as_list(secrets)]

    def add_certificate(self, client_id, certificate):
        cert = getattr(certificate, "cert", certificate)
        cert = tlsmod.load_certificate(cert)
        t = tlsmod.thumbprints(cert)
        with self._lock:
            app = self._app(client_id)
            app["certs"][t["x5t"]] = cert
            app["certs256"][t["x5t#S256"]] = cert
        return t["x5t"]

    def remove_certificates(self, client_id):
        with self._lock:
            app = self._app(client_id)
            app["certs"], app["certs256"] = {}, {}

    def set_federated_token(self, client_id, token):
        """The federated token(s) the app accepts now (a str or a list: during
        a rotation both the old and the new one)."""
        with self._lock:
            self._app(client_id)["federated"] = [str(t).strip() for t in _as_list(token)]

    def make_federated_token(self, issuer="https://oidc.mab-tests.invalid/",
                             subject="system:serviceaccount:mab:backup",
                             audience=FEDERATED_AUDIENCE, lifetime=3600):
        """A JWT shaped like a Kubernetes service-account token (signed with
        this server's key), to register with set_federated_token() and write
        to the client's federated_token_file."""
        now = int(time.time())
        return encode_jwt({"kid": self.kid},
                          {"iss": issuer, "sub": subject, "aud": [audience], "iat": now,
                           "nbf": now, "exp": now + lifetime, "jti": str(uuid.uuid4())},
                          self.key)

    # ---------------------------------------------------------------- lifetime
    def set_lifetime(self, seconds, kind=None):
        """Lifetime of the tokens issued from now on, for every source or one
        ("imds", "app_service", "entra")."""
        if kind not in (None,) + LISTENERS:
            raise ValueError("kind is imds, app_service, entra or None")
        with self._lock:
            self._lifetimes[kind] = int(seconds)
            self._imds_cache.clear()

    def lifetime(self, kind=None):
        with self._lock:
            return self._lifetimes.get(kind, self._lifetimes[None])

    # ---------------------------------------------------------------- tokens
    def verify_access_token(self, token):
        """The claims of a token this server issued; ValueError when the
        signature does not verify."""
        header, claims, si, sig = decode_jwt(token)
        try:
            _verify_signature(self.key.public_key(), header.get("alg"), si, sig)
        except InvalidSignature:
            raise ValueError("signature does not verify")
        return claims

    def _issue(self, kind, source, client_id, object_id, resource, tenant, appidacr,
               extra=None):
        now = int(time.time())
        lifetime = self.lifetime(source)
        iss = "https://sts.windows.net/%s/" % tenant
        claims = {"aud": resource.rstrip("/") if resource.startswith("https://") else resource,
                  "iss": iss, "iat": now - self.backdate, "nbf": now - self.backdate,
                  "exp": now + lifetime, "aio": b64url(os.urandom(24)),
                  "appid": client_id, "appidacr": appidacr, "idp": iss,
                  "oid": object_id, "rh": b64url(os.urandom(12)), "sub": object_id,
                  "tid": tenant, "uti": b64url(os.urandom(16)), "ver": "1.0"}
        claims.update(extra or {})
        token = encode_jwt({"x5t": self.kid, "kid": self.kid}, claims, self.key)
        with self._lock:
            self._stats["issued"][kind] = self._stats["issued"].get(kind, 0) + 1
            self._stats["tokens_issued"] += 1
            self._tokens.append({"t": round(self.now(), 3), "kind": kind,
                                 "client_id": client_id, "uti": claims["uti"],
                                 "iat": claims["iat"], "nbf": claims["nbf"],
                                 "exp": claims["exp"], "aud": claims["aud"]})
            del self._tokens[:-LOG_MAX]
        return token, claims, now

    # ---------------------------------------------------------------- faults
    def add_fault(self, **spec):
        """Install one fault (keywords as in the module doc); returns its id."""
        return self.add_faults([spec])[0]

    def add_faults(self, specs):
        now = time.monotonic()
        faults = [_Fault(s, now) for s in specs]
        with self._lock:
            self._faults.extend(faults)
        self._reconcile()
        return [f.id for f in faults]

    def set_faults(self, specs):
        now = time.monotonic()
        faults = [_Fault(s, now) for s in specs]
        with self._lock:
            self._faults = faults
        self._reconcile()
        return [f.id for f in faults]

    def down(self, seconds=None, mode="503", kind="any", count=0, client_id=None):
        """The source(s) of kind fail: for `seconds` (None: until cleared), or
        for `count` requests.  mode: "refuse" (connection refused), "reset",
        or a status: "503", "500", "429" (with Retry-After: 1), "410" (IMDS
        updating), "404"."""
        if mode == "refuse":
            spec = {"action": "refuse"}
        elif mode == "reset":
            spec = {"action": "reset", "count": count}
        else:
            spec = {"action": "status", "status": int(mode), "count": count}
        spec.update({"kind": kind, "duration": seconds})
        if client_id:
            spec["client_id"] = client_id
        return self.add_fault(**spec)

    def clear(self, stats=False):
        """Remove every fault (listeners refused are opened again); with
        stats=True reset the counters and the log too."""
        with self._lock:
            self._faults = []
            if stats:
                self._reset_stats_locked()
        self._reconcile()

    def reset_stats(self):
        with self._lock:
            self._reset_stats_locked()

    def _reset_stats_locked(self):
        self._stats = {"requests": {}, "statuses": {}, "issued": {}, "tokens_issued": 0,
                       "faults_fired": 0, "fired": [], "connections": {}}
        self._log = []
        self._tokens = []

    def stats(self, log=True):
        """A deep copy of the counters (see the module doc)."""
        with self._lock:
            st = copy.deepcopy(self._stats)
            now = time.monotonic()
            st["faults"] = [f.describe() for f in self._faults if f.active(now)]
            st["tokens"] = copy.deepcopy(self._tokens)
            st["refusing"] = sorted(n for n, lst in self._listeners.items()
                                    if n != "control" and not lst.is_open)
            if log:
                st["log"] = copy.deepcopy(self._log)
        return st

    def wait_requests(self, kind, n=1, timeout=30.0):
        """Wait until `n` requests of kind (or "any") arrived; the stats."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats(log=False)
            got = (sum(st["requests"].values()) if kind == "any"
                   else st["requests"].get(kind, 0))
            if got >= n:
                return st
            if time.monotonic() > deadline:
                raise TimeoutError("%d %s request(s), wanted %d: %r" % (got, kind, n, st))
            time.sleep(0.02)

    def wait_fired(self, n=1, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats(log=False)
            if st["faults_fired"] >= n:
                return st
            if time.monotonic() > deadline:
                raise TimeoutError("%d fault(s) fired, wanted %d: %r"
                                   % (st["faults_fired"], n, st))
            time.sleep(0.02)

    def _pick_fault(self, kind, client_id):
        now = time.monotonic()
        with self._lock:
            chosen = None
            for f in self._faults:
                if f.active(now) and f.matches(kind, client_id):
                    f.fired += 1
                    chosen = f
                    break
            if chosen is not None:
                self._stats["faults_fired"] += 1
                self._stats["fired"].append({"id": chosen.id, "kind": kind,
                                             "action": chosen.action, "client_id": client_id,
                                             "t": round(self.now(), 3)})
            self._faults = [f for f in self._faults if f.active(now)]
            return chosen

    def _reconcile(self):
        """Close the listeners an active refuse fault names, open the others."""
        if not self._listeners:
            return
        with self._reconcile_lock:
            now = time.monotonic()
            with self._lock:
                self._faults = [f for f in self._faults if f.active(now)]
                down = set()
                for f in self._faults:
                    if f.action == "refuse":
                        down |= f.listeners()
                        if not f.fired:
                            f.fired = 1
                            self._stats["faults_fired"] += 1
                            self._stats["fired"].append({
                                "id": f.id, "kind": sorted(f.listeners()), "action": "refuse",
                                "client_id": None, "t": round(self.now(), 3)})
            for name in LISTENERS:
                lst = self._listeners.get(name)
                if lst is None or self._stopping.is_set():
                    continue
                if name in down and lst.is_open:
                    lst.close()
                elif name not in down and not lst.is_open:
                    lst.open()

    def _maintain(self):
        while not self._stopping.wait(0.05):
            try:
                self._reconcile()
            except OSError as e:
                sys.stderr.write("token_server: %s\n" % e)

    # ---------------------------------------------------------------- stats
    def _count_connection(self, listener):
        with self._lock:
            c = self._stats["connections"]
            c[listener] = c.get(listener, 0) + 1

    def _record(self, entry):
        with self._lock:
            k = entry["kind"]
            self._stats["requests"][k] = self._stats["requests"].get(k, 0) + 1
            self._log.append(entry)
            del self._log[:-LOG_MAX]

    def _count_status(self, kind, status):
        with self._lock:
            d = self._stats["statuses"].setdefault(kind, {})
            d[str(status)] = d.get(str(status), 0) + 1

    # ---------------------------------------------------------------- serving
    def _dispatch(self, h, listener):
        parts = urllib.parse.urlsplit(h.path)
        path = parts.path
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
            self._send(h, 411, {"error": "chunked request bodies are not supported"})
            h.close_connection = True
            return
        try:
            length = int(h.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > 1 << 20:
            self._send(h, 400, {"error": "bad Content-Length"})
            h.close_connection = True
            return
        body = h.rfile.read(length) if length else b""
        if len(body) != length:
            raise _Reset()
        if listener == "control":
            self._control(h, path, query, body)
            return

        form = {}
        if listener == "imds":
            kind = "imds" if path == IMDS_PATH else "other"
            client_id = _q(query, "client_id") or _q(query, "object_id") or _q(query, "msi_res_id")
        elif listener == "app_service":
            kind = "app_service" if path.lower().rstrip("/") == APP_SERVICE_PATH else "other"
            client_id = (_q(query, "client_id") or _q(query, "principal_id") or
                         _q(query, "mi_res_id"))
        else:
            m = ENTRA_PATH_RX.match(path)
            ctype = h.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype == "application/x-www-form-urlencoded":
                try:
                    form = {k: v[0] for k, v in urllib.parse.parse_qs(
                        body.decode("utf-8"), keep_blank_values=True).items()}
                except UnicodeDecodeError:
                    form = {}
            kind = _entra_kind(form) if m else "other"
            client_id = form.get("client_id")
        if client_id is not None and not client_id.startswith("/"):
            client_id = client_id.lower()
        if kind == "imds" and not client_id and self.system_client_id:
            client_id = self.system_client_id.lower()

        entry = {"t": round(self.now(), 3), "listener": listener, "method": h.command,
                 "path": path, "kind": kind, "client_id": client_id, "tenant": None,
                 "credential": kind[6:] if kind.startswith("entra_") else None,
                 "outcome": None, "status": None, "error": None, "error_code": None,
                 "fault": None, "jti": None, "x5t": None, "uti": None}
        if listener != "entra":
            entry["query"] = {k: v[0] for k, v in query.items()}
        fault = self._pick_fault(kind, client_id) if kind != "other" else None
        self._record(entry)
        if fault is not None:
            entry["fault"] = fault.id
            entry["outcome"] = fault.action
            if fault.action == "reset":
                raise _Reset()
            if fault.action == "status":
                ans = self._fault_answer(fault, listener)
                self._finish(h, kind, entry, ans, outcome=fault.action)
                return
            if fault.action == "delay" and fault.delay > 0:
                if self._stopping.wait(fault.delay):
                    raise _Reset()
        try:
            if kind == "other":
                raise _Answer(404, {"error": "not_found",
                                    "error_description": "no such endpoint: %s" % path},
                              outcome="not_found", error="not_found")
            if kind == "imds":
                ans = self._imds(h, query, entry)
            elif kind == "app_service":
                ans = self._app_service(h, query, entry)
            else:
                ans = self._entra(h, path, form, kind, entry)
        except _Answer as a:
            ans = a
        except (_Reset, OSError):
            raise
        except Exception as e:          # a bug here: visible, not a hang
            import traceback
            traceback.print_exc()
            ans = _Answer(500, {"error": "server_error",
                                "error_description": "token_server.py failed: %r" % (e,)},
                          error="server_error")
        self._finish(h, kind, entry, ans)

    def _finish(self, h, kind, entry, ans, outcome=None):
        with self._lock:
            entry["status"] = ans.status
            if outcome:
                entry["outcome"] = outcome
            elif entry["outcome"] == "delay":
                entry["outcome"] = "delay+" + ans.outcome
            else:
                entry["outcome"] = ans.outcome
            entry["error"] = ans.error
            entry["error_code"] = ans.error_code
        self._count_status(kind, ans.status)
        self._send(h, ans.status, ans.body, ans.headers)

    def _send(self, h, status, body, headers=None, content_type=None):
        if isinstance(body, (dict, list)):
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
            content_type = content_type or "application/json; charset=utf-8"
        else:
            data = body.encode("utf-8") if isinstance(body, str) else (body or b"")
            content_type = content_type or "text/plain; charset=utf-8"
        headers = dict(headers or {})
        content_type = headers.pop("Content-Type", content_type)
        h.send_response(status, http.client.responses.get(status, "Status"))
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            h.send_header(k, v)
        if h.close_connection:
            h.send_header("Connection", "close")
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)

    def _fault_answer(self, fault, listener):
        st = fault.status
        text = "injected by token_server.py (fault %d)" % fault.id
        headers = dict(fault.headers)
        if fault.content_type:
            headers["Content-Type"] = fault.content_type
        if fault.body is not None:
            return _Answer(st, fault.body, headers, error=fault.error)
        if listener == "entra":
            error = fault.error or ("temporarily_unavailable" if st in (429, 503)
                                    else "server_error" if st >= 500 else "invalid_request")
            ans = entra_error(st, error, 0, text)
            ans.headers.update(headers)
            return ans
        if listener == "app_service":
            return _Answer(st, {"statusCode": st, "message": fault.error or text}, headers,
                           error=fault.error)
        error = fault.error or {404: "not_found", 410: "gone", 429: "too_many_requests",
                                500: "server_error", 503: "temporarily_unavailable"}.get(
                                    st, "invalid_request")
        return _Answer(st, {"error": error, "error_description": text}, headers, error=error)

    # ---------------------------------------------------------------- IMDS
    def _find_identity(self, by, value):
        with self._lock:
            for ident in self._identities.values():
                if by == "client_id" and ident["client_id"].lower() == value.lower():
                    return dict(ident)
                if by == "object_id" and ident["object_id"].lower() == value.lower():
                    return dict(ident)
                if by == "msi_res_id" and ident["msi_res_id"].lower() == value.lower():
                    return dict(ident)
        return None

    def _default_identity(self):
        with self._lock:
            idents = list(self._identities.values())
        system = [i for i in idents if i["system"]]
        if system:
            return dict(system[0]), None
        if len(idents) == 1:
            return dict(idents[0]), None
        return None, len(idents)

    def _imds(self, h, query, entry):
        if h.command != "GET":
            raise imds_error(405, "invalid_request", "Method %s is not allowed" % h.command)
        if h.headers.get("X-Forwarded-For") is not None:
            raise imds_error(400, "invalid_request",
                             "Requests with an X-Forwarded-For header are refused")
        if (h.headers.get("Metadata") or "").strip().lower() != "true":
            raise imds_error(400, "invalid_request", "Required metadata header not specified")
        api = _q(query, "api-version")
        if not api or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", api) or api < "2018-02-01":
            raise imds_error(400, "invalid_request",
                             "api-version is invalid or was not specified in the request")
        resource = _q(query, "resource")
        if not resource:
            raise imds_error(400, "invalid_request", "Required audience parameter not specified")
        given = [(k, _q(query, k)) for k in ("client_id", "object_id", "msi_res_id")
                 if _q(query, k)]
        if len(given) > 1:
            raise imds_error(400, "invalid_request",
                             "Only one of client_id, object_id or msi_res_id may be given")
        if given:
            ident = self._find_identity(*given[0])
            if ident is None:
                raise imds_error(400, "invalid_request", "Identity not found")
        else:
            ident, n = self._default_identity()
            if ident is None:
                if n:
                    raise imds_error(400, "invalid_request",
                                     "Multiple user assigned identities exist, please specify "
                                     "the clientId / resourceId of the identity in the token "
                                     "request")
                raise imds_error(400, "invalid_request", "Identity not found")
        entry["client_id"] = ident["client_id"].lower()
        entry["tenant"] = self.tenant_id
        if not resource.startswith("https://"):
            raise imds_error(400, "invalid_resource",
                             "AADSTS500011: The resource principal named %s was not found in "
                             "the tenant named %s." % (resource, self.tenant_id))
        cache_key = (ident["client_id"].lower(), resource)
        now = time.time()
        cached = None
        with self._lock:
            if self.imds_cache_refresh is not None:
                c = self._imds_cache.get(cache_key)
                if c and c[1]["exp"] - now > self.imds_cache_refresh:
                    cached = c
        if cached:
            token, claims = cached
            entry["uti"] = claims["uti"]
            outcome = "cached"
        else:
            token, claims, _ = self._issue("imds", "imds", ident["client_id"],
                                           ident["object_id"], resource, self.tenant_id, "2",
                                           {"xms_mirid": ident["msi_res_id"]})
            entry["uti"] = claims["uti"]
            outcome = "issued"
            if self.imds_cache_refresh is not None:
                with self._lock:
                    self._imds_cache[cache_key] = (token, claims)
        expires_in = str(int(claims["exp"] - int(now)))
        body = {"access_token": token, "client_id": ident["client_id"],
                "expires_in": expires_in, "expires_on": str(claims["exp"]),
                "ext_expires_in": expires_in, "not_before": str(claims["nbf"]),
                "resource": resource, "token_type": "Bearer"}
        return _Answer(200, body, outcome=outcome)

    # ---------------------------------------------------------------- App Service
    def _app_service(self, h, query, entry):
        got = h.headers.get("X-IDENTITY-HEADER")
        if got is None or not hmac.compare_digest(got.encode(), self.identity_header.encode()):
            raise app_service_error(401, "Unauthorized: the X-IDENTITY-HEADER header is "
                                         "missing or does not match IDENTITY_HEADER")
        if h.command != "GET":
            raise app_service_error(405, "Method %s is not allowed" % h.command)
        if _q(query, "api-version") != "2019-08-01":
            raise app_service_error(400, "api-version %r is not supported: use 2019-08-01"
                                    % _q(query, "api-version"))
        resource = _q(query, "resource")
        if not resource:
            raise app_service_error(400, "The resource parameter is required")
        given = [(by, _q(query, k)) for k, by in (("client_id", "client_id"),
                                                 ("principal_id", "object_id"),
                                                 ("mi_res_id", "msi_res_id")) if _q(query, k)]
        nope = ("No User Assigned or Delegated Managed Identity found for specified "
                "ClientId/ResourceId/PrincipalId.")
        if len(given) > 1:
            raise app_service_error(400, nope)
        if given:
            ident = self._find_identity(*given[0])
        else:
            ident, _n = self._default_identity()
        if ident is None:
            raise app_service_error(400, nope)
        entry["client_id"] = ident["client_id"].lower()
        entry["tenant"] = self.tenant_id
        if not resource.startswith("https://"):
            raise app_service_error(400, "AADSTS500011: The resource principal named %s was "
                                         "not found in the tenant named %s."
                                    % (resource, self.tenant_id))
        token, claims, _ = self._issue("app_service", "app_service", ident["client_id"],
                                       ident["object_id"], resource, self.tenant_id, "2",
                                       {"xms_mirid": ident["msi_res_id"]})
        entry["uti"] = claims["uti"]
        return _Answer(200, {"access_token": token, "expires_on": str(claims["exp"]),
                             "resource": resource, "token_type": "Bearer",
                             "client_id": ident["client_id"]}, outcome="issued")

    # ---------------------------------------------------------------- Entra
    def _entra(self, h, path, form, kind, entry):
        tenant = ENTRA_PATH_RX.match(path).group(1)
        entry["tenant"] = tenant
        if h.command != "POST":
            raise entra_error(400, "invalid_request", 900561,
                              "The endpoint only accepts POST, OPTIONS requests. Received a "
                              "%s request." % h.command)
        if tenant.lower() not in self.tenants:
            if GUID_RX.match(tenant) or DOMAIN_RX.match(tenant):
                raise entra_error(400, "invalid_request", 90002,
                                  "Tenant '%s' not found. Check to make sure you have the "
                                  "correct tenant ID and are signing into the correct cloud."
                                  % tenant)
            raise entra_error(400, "invalid_request", 900023,
                              "Specified tenant identifier '%s' is neither a valid DNS name, "
                              "nor a valid external domain." % tenant)
        for p in ("grant_type", "client_id"):
            if not form.get(p):
                raise _missing(p)
        if form["grant_type"] != "client_credentials":
            raise entra_error(400, "unsupported_grant_type", 70003,
                              "The app requested an unsupported grant type '%s'."
                              % form["grant_type"])
        client_id = form["client_id"]
        if not GUID_RX.match(client_id):
            raise entra_error(400, "invalid_request", 700038,
                              "%s is not a valid application identifier." % client_id)
        if not form.get("scope"):
            raise _missing("scope")
        scopes = form["scope"].split()
        if len(scopes) != 1:
            raise entra_error(400, "invalid_scope", 70011,
                              "The provided value for the input parameter 'scope' is not "
                              "valid. The scope %s is not valid." % form["scope"])
        scope = scopes[0]
        if not scope.endswith("/.default"):
            raise entra_error(400, "invalid_scope", 1002012,
                              "The provided value for scope %s is not valid. Client credential "
                              "flows must have a scope value with /.default suffixed to the "
                              "resource identifier (application ID URI)." % scope)
        resource = scope[:-len(".default")]
        if resource.endswith("//"):
            resource = resource[:-1]
        with self._lock:
            app = self._apps.get(client_id.lower())
            app = copy.copy(app) if app else None
        if app is None or app["tenant"] != tenant.lower():
            raise entra_error(400, "unauthorized_client", 700016,
                              "Application with identifier '%s' was not found in the "
                              "directory '%s'. This can happen if the application has not "
                              "been installed by the administrator of the tenant or consented "
                              "to by any user in the tenant. You may have sent your "
                              "authentication request to the wrong tenant." % (client_id, tenant))
        if not resource.startswith("https://"):
            raise entra_error(400, "invalid_resource", 500011,
                              "The resource principal named %s was not found in the tenant "
                              "named %s." % (resource, tenant))
        secret = form.get("client_secret") or None          # empty: not given
        assertion = form.get("client_assertion") or None
        if secret is not None and assertion is not None:
            raise entra_error(400, "invalid_request", 0,
                              "Send either client_secret or client_assertion, not both.")
        if secret is None and assertion is None:
            raise entra_error(401, "invalid_client", 7000218,
                              "The request body must contain the following parameter: "
                              "'client_assertion' or 'client_secret'.")
        if secret is not None:
            entry["credential"] = "secret"
            if not any(hmac.compare_digest(secret.encode(), s.encode()) for s in app["secrets"]):
                raise entra_error(401, "invalid_client", 7000215,
                                  "Invalid client secret provided. Ensure the secret being "
                                  "sent in the request is the client secret value, not the "
                                  "client secret ID, for a secret added to app '%s'."
                                  % client_id)
            appidacr = "1"
        else:
            atype = form.get("client_assertion_type")
            if not atype:
                raise _missing("client_assertion_type")
            if atype != JWT_BEARER:
                raise entra_error(400, "invalid_request", 0,
                                  "client_assertion_type must be %s." % JWT_BEARER)
            if any(hmac.compare_digest(assertion.encode(), t.encode())
                   for t in app["federated"]):
                entry["credential"] = "federated"
            else:
                endpoint = "https://%s%s" % (h.headers.get("Host") or "%s:%d" % (
                    self.host, self.port("entra")), path)
                self._check_certificate_assertion(app, client_id, assertion, endpoint, entry)
            appidacr = "2"
        token, claims, now = self._issue(kind, "entra", app["client_id"], app["object_id"],
                                         resource, tenant.lower(), appidacr)
        entry["uti"] = claims["uti"]
        lifetime = claims["exp"] - now
        return _Answer(200, {"token_type": "Bearer", "expires_in": lifetime,
                             "ext_expires_in": lifetime, "access_token": token},
                       {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
                       outcome="issued")

    def _check_certificate_assertion(self, app, client_id, assertion, endpoint, entry):
        entry["credential"] = "certificate"
        try:
            header, claims, si, sig = decode_jwt(assertion)
        except (ValueError, UnicodeError) as e:
            if app["federated"] and not app["certs"]:
                entry["credential"] = "federated"
                raise _no_federated_match({})
            raise entra_error(400, "invalid_request", 50027,
                              "JWT token is invalid or malformed (%s)." % e)
        x5t, x5t256 = header.get("x5t"), header.get("x5t#S256")
        entry["x5t"] = x5t or x5t256
        if not x5t and not x5t256 and app["federated"]:
            entry["credential"] = "federated"
            raise _no_federated_match(claims)
        alg = header.get("alg")
        if alg not in ("RS256", "PS256"):
            raise entra_error(400, "invalid_request", 50027,
                              "JWT token is invalid or malformed: signing algorithm %r is not "
                              "supported." % (alg,))
        cert = None
        thumb_hex = None
        for value, table in ((x5t256, app["certs256"]), (x5t, app["certs"])):
            if value is None:
                continue
            try:
                thumb_hex = b64url_decode(value).hex().upper()
            except (ValueError, UnicodeError):
                thumb_hex = repr(value)
            found = table.get(value)
            if found is None or (cert is not None and found is not cert):
                cert = None
                break
            cert = found
        if cert is None:
            raise entra_error(401, "invalid_client", 700027,
                              "Client assertion failed signature validation. [Reason - The "
                              "key was not found., Thumbprint of key used by client: '%s']"
                              % (thumb_hex or ""))
        try:
            _verify_signature(cert.public_key(), alg, si, sig)
        except (InvalidSignature, ValueError):
            raise entra_error(401, "invalid_client", 700027,
                              "Client assertion failed signature validation. [Reason - The "
                              "provided signature value did not match the expected signature "
                              "value., Thumbprint of key used by client: '%s']" % thumb_hex)
        for c in ("aud", "iss", "sub", "exp", "nbf", "jti"):
            if c not in claims:
                raise entra_error(400, "invalid_request", 50027,
                                  "JWT token is invalid or malformed: the client assertion "
                                  "has no '%s' claim." % c)
        entry["jti"] = str(claims["jti"])[:80]
        if claims["iss"] != client_id or claims["sub"] != client_id:
            raise entra_error(401, "invalid_client", 700021,
                              "Client assertion application identifier doesn't match "
                              "'client_id' parameter. Review the documentation at %s ."
                              % DOCS_CERT)
        aud = claims["aud"]
        if not (aud == endpoint or (isinstance(aud, list) and endpoint in aud)):
            raise entra_error(401, "invalid_client", 700023,
                              "Client assertion audience claim does not match Realm issuer. "
                              "Review the documentation at %s ." % DOCS_CERT)
        exp, nbf = claims["exp"], claims["nbf"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (exp, nbf)):
            raise entra_error(400, "invalid_request", 50027,
                              "JWT token is invalid or malformed: nbf and exp must be numbers.")
        now = time.time()
        if not nbf <= now < exp or exp - nbf > ASSERTION_MAX_LIFETIME:
            raise entra_error(401, "invalid_client", 700024,
                              "Client assertion is not within its valid time range. Current "
                              "time: %s, assertion valid from %s, expiry time of assertion %s."
                              " Review the documentation at %s ."
                              % (_iso(now), _iso(nbf), _iso(exp), DOCS_CERT))
        key = (client_id.lower(), str(claims["jti"]))
        with self._lock:
            for k in [k for k, e in self._jti_seen.items() if e < now - 60]:
                del self._jti_seen[k]
            if key in self._jti_seen:
                raise entra_error(401, "invalid_client", 0,
                                  "The client assertion with jti '%s' was already used; a "
                                  "client assertion is good for one request."
                                  % str(claims["jti"])[:80])
            self._jti_seen[key] = exp

    # ---------------------------------------------------------------- control
    def _control(self, h, path, query, body):
        if path != CONTROL_PATH:
            self._send(h, 404, {"error": "the control path is %s" % CONTROL_PATH})
            return
        try:
            if h.command == "GET":
                reply = self.stats(log="nolog" not in query)
            elif h.command == "DELETE":
                self.clear(stats=bool(query.get("stats")))
                reply = {"ok": True}
            elif h.command in ("POST", "PUT"):
                reply = self._control_post(json.loads(body.decode("utf-8") or "{}"))
            else:
                self._send(h, 405, {"error": "method not allowed"})
                return
        except (ValueError, TypeError, KeyError) as e:
            self._send(h, 400, {"error": str(e)})
            return
        self._send(h, 200, reply)

    def _control_post(self, req):
        if isinstance(req, list):
            return {"ok": True, "ids": self.add_faults(req)}
        if not isinstance(req, dict):
            raise ValueError("a JSON object or list, please")
        if "clear" in req:
            self.clear(stats=bool(req.get("stats")))
            return {"ok": True}
        if "set" in req:
            return {"ok": True, "ids": self.set_faults(req["set"])}
        if "add" in req:
            add = req["add"]
            return {"ok": True, "ids": self.add_faults(add if isinstance(add, list) else [add])}
        if "down" in req:
            return {"ok": True, "ids": [self.down(**req["down"])]}
        if "lifetime" in req:
            self.set_lifetime(req["lifetime"], req.get("kind"))
            return {"ok": True}
        if "identity" in req:
            return {"ok": True, "client_id": self.add_identity(**req["identity"])}
        if "app" in req:
            spec = dict(req["app"])
            if isinstance(spec.get("certificate"), str):
                spec["certificate"] = spec["certificate"].encode()
            return {"ok": True, "client_id": self.add_app(**spec)}
        if "federated_token" in req:
            ft = req["federated_token"]
            self.set_federated_token(ft["client_id"], ft["token"])
            return {"ok": True}
        return {"ok": True, "ids": self.add_faults([req])}


# ------------------------------------------------------------------ helpers

def _as_list(v):
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _q(query, name):
    v = query.get(name)
    return v[0] if v else None


def _iso(t):
    try:
        return datetime.datetime.fromtimestamp(float(t), datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%S.0000000Z")
    except (OverflowError, ValueError, OSError):
        return repr(t)


def _missing(param):
    return entra_error(400, "invalid_request", 900144,
                       "The request body must contain the following parameter: '%s'." % param)


def _no_federated_match(claims):
    return entra_error(400, "invalid_request", 70021,
                       "No matching federated identity record found for presented assertion. "
                       "Assertion Issuer: '%s'. Assertion Subject: '%s'. Assertion Audience: "
                       "'%s'." % (claims.get("iss", ""), claims.get("sub", ""),
                                  claims.get("aud", "")))


def _entra_kind(form):
    """The kind of an Entra request from its form, before any check."""
    secret, assertion = form.get("client_secret"), form.get("client_assertion")
    if secret and not assertion:
        return "entra_secret"
    if assertion and not secret:
        try:
            header = decode_jwt(form["client_assertion"])[0]
        except (ValueError, UnicodeError):
            return "entra_certificate"
        if "x5t" in header or "x5t#S256" in header:
            return "entra_certificate"
        return "entra_federated"
    return "entra_other"


def control(where, body=None, method=None, timeout=10):
    """One request to a token server's control endpoint (a URL or the
    control port); returns the decoded JSON (RuntimeError on a non-2xx)."""
    url = where if isinstance(where, str) else "http://127.0.0.1:%d%s" % (where, CONTROL_PATH)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise RuntimeError("control: HTTP %d: %s" % (e.code, e.read().decode("utf-8", "replace")))


# ------------------------------------------------------------------ program

def _pairs(values, what):
    out = {}
    for v in values or []:
        if "=" not in v:
            raise SystemExit("--%s wants CLIENT_ID=VALUE, not %r" % (what, v))
        k, val = v.split("=", 1)
        out.setdefault(k, []).append(val)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="IMDS, App Service and Entra ID token endpoints "
                                             "for the tests (see the module doc).")
    ap.add_argument("--tenant-id")
    ap.add_argument("--lifetime", type=int, default=3600, help="token lifetime, seconds")
    ap.add_argument("--identity", action="append", default=[], metavar="CLIENT_ID",
                    help="a user-assigned managed identity (repeatable)")
    ap.add_argument("--no-system-assigned", action="store_true",
                    help="no system-assigned identity")
    ap.add_argument("--identity-header", help="X-IDENTITY-HEADER value (default: random)")
    ap.add_argument("--app", action="append", default=[], metavar="CLIENT_ID",
                    help="an app registration (repeatable)")
    ap.add_argument("--secret", action="append", metavar="CLIENT_ID=SECRET")
    ap.add_argument("--certificate", action="append", metavar="CLIENT_ID=PEM_FILE")
    ap.add_argument("--federated-token", action="append", metavar="CLIENT_ID=FILE",
                    help="the app accepts the token in FILE (read once)")
    ap.add_argument("--tls-dir", help="write the CA and the server certificate here "
                                      "(default: a temporary directory, removed at exit)")
    for name in LISTENERS + ("control",):
        ap.add_argument("--%s-port" % name.replace("_", "-"), type=int, default=0)
    args = ap.parse_args(argv)

    secrets = _pairs(args.secret, "secret")
    certs = _pairs(args.certificate, "certificate")
    feds = _pairs(args.federated_token, "federated-token")
    tls = tlsmod.TLSMaterial(args.tls_dir) if args.tls_dir else None
    ports = {n: getattr(args, "%s_port" % n) for n in LISTENERS + ("control",)}
    ts = TokenServer(tls=tls, tenant_id=args.tenant_id, lifetime=args.lifetime,
                     system_assigned=not args.no_system_assigned,
                     identity_header=args.identity_header, ports=ports)
    for cid in args.identity:
        ts.add_identity(cid)
    for cid in set(args.app) | set(secrets) | set(certs) | set(feds):
        fed = []
        for path in feds.get(cid, []):
            with open(path) as f:
                fed.append(f.read().strip())
        ts.add_app(cid, secret=secrets.get(cid), certificate=certs.get(cid),
                   federated_token=fed or None)

    stop = threading.Event()

    def on_signal(_sig, _frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ts.start()
    try:
        lines = [("imds", ts.imds_endpoint), ("app_service", ts.app_service_endpoint),
                 ("identity_header", ts.identity_header),
                 ("authority_host", ts.authority_host), ("tenant_id", ts.tenant_id),
                 ("system_client_id", ts.system_client_id or "-"),
                 ("ca_file", ts.ca_file), ("control", ts.control_url)]
        for name, value in lines:
            sys.stdout.write("%s %s\n" % (name, value))
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        ts.stop()
        if tls is not None and not args.tls_dir:
            tls.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
