/* azure_token.c - fetching, keeping and renewing Entra ID tokens (see
 * azure_token.h).  The wire formats are Microsoft's: IMDS and App Service
 * answer GETs with numbers as strings; the v2.0 token endpoint answers a
 * form POST with numbers as numbers.  Both are read with libbson's JSON
 * parser.  The client assertion of a certificate is built in
 * azure_jwt.c.
 */
#include "config.h"

#include <bson/bson.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "azure_jwt.h"
#include "azure_retry.h"
#include "azure_token.h"
#include "child_status.h"
#include "log.h"
#include "xio.h"

#define STORAGE_RESOURCE "https://storage.azure.com/"
#define STORAGE_SCOPE "https://storage.azure.com/.default"
#define TOKEN_BODY_MAX (64 * 1024)
#define FEDERATED_TOKEN_MAX (64 * 1024)
/* Renew when this much is left, or at half the lifetime if sooner. */
#define RENEW_MARGIN_SECONDS 300

/* Managed identity has three homes; the environment says which. */
enum mi_flavour { MI_IMDS, MI_APP_SERVICE, MI_ARC };

struct azure_token_source {
	enum azure_token_kind kind;
	enum mi_flavour flavour;
	char *client_id, *tenant_id, *authority, *identity_endpoint;
	char *identity_header;          /* App Service: X-IDENTITY-HEADER */
	char *federated_token_file, *ca_file;
	char *secret;                   /* client secret */
	struct azure_jwt_signer *signer; /* certificate */
	char origin[200];
	struct azure_retry_policy retry;
	uint64_t rng;
	CURL *easy;

	char *token;
	time_t renew_at;
	int requests;
};

struct fetch {
	char *body;
	size_t len;
	bool truncated;
	long retry_after_ms;
	char www_authenticate[512];
};

time_t azure_token_renew_at(time_t now, long lifetime)
{
	long before_end = lifetime - RENEW_MARGIN_SECONDS;
	long half = lifetime / 2;

	if (lifetime <= 0)
		return now;
	return now + (before_end < half ? (before_end > 0 ? before_end : half) : half);
}

static char *dup_or_empty(const char *s)
{
	return strdup(s != NULL ? s : "");
}

static void strip_slash(char *url)
{
	size_t len = strlen(url);

	while (len > 0 && url[len - 1] == '/')
		url[--len] = '\0';
}

struct azure_token_source *azure_token_source_new(const struct azure_token_settings *s,
						  char *err, size_t errlen)
{
	struct azure_token_source *ts = calloc(1, sizeof(*ts));

	if (ts == NULL)
		goto nomem;
	ts->kind = s->kind;
	ts->client_id = dup_or_empty(s->client_id);
	ts->tenant_id = dup_or_empty(s->tenant_id);
	ts->authority = dup_or_empty(s->authority_host);
	ts->identity_endpoint = dup_or_empty(s->identity_endpoint);
	ts->federated_token_file = dup_or_empty(s->federated_token_file);
	ts->ca_file = dup_or_empty(s->ca_file);
	ts->easy = curl_easy_init();
	if (ts->client_id == NULL || ts->tenant_id == NULL || ts->authority == NULL ||
	    ts->identity_endpoint == NULL || ts->federated_token_file == NULL ||
	    ts->ca_file == NULL || ts->easy == NULL)
		goto nomem;
	strip_slash(ts->authority);
	azure_retry_policy_default(&ts->retry);
	ts->retry.max_retries = s->max_retries < 0 ? 0 : s->max_retries;
	ts->rng = azure_rng_seed();

	switch (s->kind) {
	case AZURE_TOKEN_MANAGED_IDENTITY: {
		const char *endpoint = getenv("IDENTITY_ENDPOINT");
		const char *header = getenv("IDENTITY_HEADER");
		const char *imds = getenv("IMDS_ENDPOINT");
		if (endpoint != NULL && *endpoint && header != NULL && *header) {
			ts->flavour = MI_APP_SERVICE;
			ts->identity_header = strdup(header);
		} else if (endpoint != NULL && *endpoint && imds != NULL && *imds) {
			ts->flavour = MI_ARC;
		}
		if (ts->flavour != MI_IMDS) {
			free(ts->identity_endpoint);
			ts->identity_endpoint = strdup(endpoint);
		}
		if (ts->identity_endpoint == NULL ||
		    (ts->flavour == MI_APP_SERVICE && ts->identity_header == NULL))
			goto nomem;
		snprintf(ts->origin, sizeof(ts->origin), "%s managed identity%s%s",
			 ts->flavour == MI_APP_SERVICE ? "App Service" :
			 ts->flavour == MI_ARC ? "Azure Arc" : "the VM's (IMDS)",
			 *ts->client_id ? " " : "", ts->client_id);
		break;
	}
	case AZURE_TOKEN_CLIENT_SECRET:
		ts->secret = strdup(s->credential != NULL ? s->credential : "");
		if (ts->secret == NULL)
			goto nomem;
		break;
	case AZURE_TOKEN_CLIENT_CERTIFICATE:
		ts->signer = azure_jwt_signer_new(s->credential != NULL ? s->credential : "",
						  err, errlen);
		if (ts->signer == NULL)
			goto fail;
		break;
	case AZURE_TOKEN_FEDERATED:
		break;
	}
	if (s->kind != AZURE_TOKEN_MANAGED_IDENTITY)
		snprintf(ts->origin, sizeof(ts->origin), "Entra ID (tenant %s, client %s)",
			 ts->tenant_id, ts->client_id);
	return ts;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	azure_token_source_free(ts);
	return NULL;
}

void azure_token_source_free(struct azure_token_source *ts)
{
	if (ts == NULL)
		return;
	if (ts->easy != NULL)
		curl_easy_cleanup(ts->easy);
	if (ts->secret != NULL)
		explicit_bzero(ts->secret, strlen(ts->secret));
	if (ts->token != NULL)
		explicit_bzero(ts->token, strlen(ts->token));
	if (ts->identity_header != NULL)
		explicit_bzero(ts->identity_header, strlen(ts->identity_header));
	azure_jwt_signer_free(ts->signer);
	free(ts->secret);
	free(ts->token);
	free(ts->identity_header);
	free(ts->client_id);
	free(ts->tenant_id);
	free(ts->authority);
	free(ts->identity_endpoint);
	free(ts->federated_token_file);
	free(ts->ca_file);
	free(ts);
}

const char *azure_token_origin(const struct azure_token_source *ts)
{
	return ts->origin;
}

int azure_token_requests(const struct azure_token_source *ts)
{
	return ts->requests;
}

void azure_token_invalidate(struct azure_token_source *ts)
{
	ts->renew_at = 0;
}

/* ---- one HTTP exchange ---- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct fetch *f = ud;
	size_t n = size * nmemb;

	if (f->len + n > TOKEN_BODY_MAX) {
		f->truncated = true;
		return n;
	}
	char *grown = realloc(f->body, f->len + n + 1);
	if (grown == NULL)
		return 0;
	f->body = grown;
	memcpy(f->body + f->len, data, n);
	f->len += n;
	f->body[f->len] = '\0';
	return n;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
	struct fetch *f = ud;
	size_t n = size * nitems;
	char line[600];
	size_t len = n < sizeof(line) - 1 ? n : sizeof(line) - 1;

	memcpy(line, buf, len);
	line[len] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if (strncasecmp(line, "Retry-After:", 12) == 0)
		f->retry_after_ms = azure_retry_after_header_ms(line + 12, false, time(NULL));
	else if (strncasecmp(line, "WWW-Authenticate:", 17) == 0)
		snprintf(f->www_authenticate, sizeof(f->www_authenticate), "%s", line + 17);
	return n;
}

static CURLcode exchange(struct azure_token_source *ts, const char *url,
			 struct curl_slist *headers, const char *post, struct fetch *f,
			 long *status)
{
	CURL *e = ts->easy;
	CURLcode rc = CURLE_OK;

	free(f->body);
	memset(f, 0, sizeof(*f));
	f->retry_after_ms = -1;
	*status = 0;
	curl_easy_reset(e);
#define SET(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val); } while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_CONNECTTIMEOUT, 10L);
	SET(CURLOPT_TIMEOUT, 60L);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_HTTPHEADER, headers);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, f);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, f);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
	SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	if (*ts->ca_file)
		SET(CURLOPT_CAINFO, ts->ca_file);
	/* IMDS and the other identity endpoints are link-local or local: a
	 * proxy must not see the request (Microsoft says so for IMDS). */
	if (ts->kind == AZURE_TOKEN_MANAGED_IDENTITY)
		SET(CURLOPT_NOPROXY, "*");
	if (post != NULL) {
		SET(CURLOPT_POSTFIELDS, post);
		SET(CURLOPT_POSTFIELDSIZE, (long)strlen(post));
	}
#undef SET
	if (rc != CURLE_OK)
		return rc;
	ts->requests++;
	rc = curl_easy_perform(e);
	if (rc == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
	return rc;
}

/* ---- building the request of each kind ---- */

static int add_param(char **buf, size_t *len, CURL *e, const char *name, const char *value)
{
	char *esc = curl_easy_escape(e, value, 0);
	size_t add;
	char *grown;

	if (esc == NULL)
		return -1;
	add = strlen(name) + strlen(esc) + 2;
	grown = realloc(*buf, *len + add + 1);
	if (grown == NULL) {
		curl_free(esc);
		return -1;
	}
	*buf = grown;
	snprintf(*buf + *len, add + 1, "%s%s=%s", *len ? "&" : "", name, esc);
	*len += strlen(*buf + *len);
	explicit_bzero(esc, strlen(esc));
	curl_free(esc);
	return 0;
}

/* The federated token, read afresh each time: it is rotated under us. */
static char *read_federated(const char *path, char *why, size_t whylen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	ssize_t n;

	if (fd < 0) {
		snprintf(why, whylen, "cannot read the federated token %s: %s", path,
			 strerror(errno));
		return NULL;
	}
	buf = malloc(FEDERATED_TOKEN_MAX + 1);
	if (buf == NULL) {
		close(fd);
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	n = xread_full(fd, buf, FEDERATED_TOKEN_MAX + 1);
	close(fd);
	if (n <= 0 || n > FEDERATED_TOKEN_MAX) {
		snprintf(why, whylen, "the federated token %s is %s", path,
			 n == 0 ? "empty" : n < 0 ? "unreadable" : "larger than 64 KiB");
		free(buf);
		return NULL;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	return buf;
}

/* url and post (NULL for a GET) for the next request; -1 with why. */
static int build_request(struct azure_token_source *ts, char **url, char **post,
			 struct curl_slist **headers, const char *arc_secret, char *why,
			 size_t whylen)
{
	size_t plen = 0;
	char *q = NULL;
	size_t qlen = 0;
	struct curl_slist *h = NULL;
	int r = -1;

	*url = *post = NULL;
	*headers = NULL;
	if (ts->kind == AZURE_TOKEN_MANAGED_IDENTITY) {
		const char *version = ts->flavour == MI_APP_SERVICE ? "2019-08-01"
			: ts->flavour == MI_ARC ? "2020-06-01" : "2018-02-01";
		if (add_param(&q, &qlen, ts->easy, "api-version", version) != 0 ||
		    add_param(&q, &qlen, ts->easy, "resource", STORAGE_RESOURCE) != 0 ||
		    (*ts->client_id && add_param(&q, &qlen, ts->easy, "client_id",
						  ts->client_id) != 0))
			goto nomem;
		if (asprintf(url, "%s%s%s", ts->identity_endpoint,
			     strchr(ts->identity_endpoint, '?') ? "&" : "?", q) < 0) {
			*url = NULL;
			goto nomem;
		}
		if (ts->flavour == MI_APP_SERVICE) {
			char line[600];
			snprintf(line, sizeof(line), "X-IDENTITY-HEADER: %s", ts->identity_header);
			h = curl_slist_append(h, line);
			explicit_bzero(line, sizeof(line));
		} else {
			h = curl_slist_append(h, "Metadata: true");
		}
		if (h != NULL && arc_secret != NULL) {
			char *line;
			if (asprintf(&line, "Authorization: Basic %s", arc_secret) < 0)
				goto nomem;
			struct curl_slist *more = curl_slist_append(h, line);
			explicit_bzero(line, strlen(line));
			free(line);
			if (more == NULL)
				goto nomem;
			h = more;
		}
		if (h == NULL)
			goto nomem;
		r = 0;
		goto out;
	}

	if (asprintf(url, "%s/%s/oauth2/v2.0/token", ts->authority, ts->tenant_id) < 0) {
		*url = NULL;
		goto nomem;
	}
	if (add_param(post, &plen, ts->easy, "client_id", ts->client_id) != 0 ||
	    add_param(post, &plen, ts->easy, "scope", STORAGE_SCOPE) != 0 ||
	    add_param(post, &plen, ts->easy, "grant_type", "client_credentials") != 0)
		goto nomem;
	if (ts->kind == AZURE_TOKEN_CLIENT_SECRET) {
		if (add_param(post, &plen, ts->easy, "client_secret", ts->secret) != 0)
			goto nomem;
	} else {
		char *assertion;
		if (ts->kind == AZURE_TOKEN_FEDERATED)
			assertion = read_federated(ts->federated_token_file, why, whylen);
		else
			assertion = azure_jwt_assertion(ts->signer, ts->client_id, *url, why,
							whylen);
		if (assertion == NULL)
			goto out;
		int rc = add_param(post, &plen, ts->easy, "client_assertion_type",
				   "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
		if (rc == 0)
			rc = add_param(post, &plen, ts->easy, "client_assertion", assertion);
		explicit_bzero(assertion, strlen(assertion));
		free(assertion);
		if (rc != 0)
			goto nomem;
	}
	h = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
	if (h == NULL)
		goto nomem;
	r = 0;
	goto out;
nomem:
	snprintf(why, whylen, "out of memory");
out:
	free(q);
	if (r != 0) {
		free(*url);
		if (*post != NULL)
			explicit_bzero(*post, strlen(*post));
		free(*post);
		*url = *post = NULL;
		curl_slist_free_all(h);
		h = NULL;
	}
	*headers = h;
	return r;
}

/* ---- reading the answer ---- */

/* A JSON member that may be a string or a number (IMDS sends strings). */
static long json_long(const bson_t *doc, const char *key)
{
	bson_iter_t it;

	if (!bson_iter_init_find(&it, doc, key))
		return -1;
	if (BSON_ITER_HOLDS_UTF8(&it))
		return strtol(bson_iter_utf8(&it, NULL), NULL, 10);
	if (BSON_ITER_HOLDS_NUMBER(&it))
		return (long)bson_iter_as_int64(&it);
	return -1;
}

static const char *json_str(const bson_t *doc, const char *key)
{
	bson_iter_t it;

	if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
		return bson_iter_utf8(&it, NULL);
	return NULL;
}

/* The token from a 200 answer; -1 with why. */
static int take_token(struct azure_token_source *ts, const struct fetch *f, char *why,
		      size_t whylen)
{
	bson_error_t error;
	bson_t *doc = f->body ? bson_new_from_json((const uint8_t *)f->body, (ssize_t)f->len,
						   &error) : NULL;
	const char *token;
	long lifetime, expires_on;
	time_t now = time(NULL);
	int r = -1;

	if (doc == NULL) {
		snprintf(why, whylen, "the token endpoint's answer is not JSON");
		return -1;
	}
	token = json_str(doc, "access_token");
	if (token == NULL || *token == '\0' || strpbrk(token, " \r\n\t") != NULL) {
		snprintf(why, whylen, "the token endpoint's answer has no usable access_token");
		goto out;
	}
	lifetime = json_long(doc, "expires_in");
	expires_on = json_long(doc, "expires_on");
	if (lifetime <= 0 && expires_on > now)
		lifetime = expires_on - now;
	if (lifetime <= 0) {
		snprintf(why, whylen, "the token endpoint's answer says no lifetime "
			 "(expires_in / expires_on)");
		goto out;
	}
	if (ts->token != NULL) {
		explicit_bzero(ts->token, strlen(ts->token));
		free(ts->token);
	}
	ts->token = strdup(token);
	if (ts->token == NULL) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	ts->renew_at = azure_token_renew_at(now, lifetime);
	msg_debug("token from %s: valid %ld s, renewed after %ld s", ts->origin, lifetime,
		  (long)(ts->renew_at - now));
	r = 0;
out:
	bson_destroy(doc);
	return r;
}

/* Entra's and IMDS' error answer, in one line: code and description,
 * which quote neither the secret nor the assertion. */
static void describe_refusal(const struct fetch *f, long status, char *out, size_t len)
{
	bson_error_t error;
	bson_t *doc = f->body ? bson_new_from_json((const uint8_t *)f->body, (ssize_t)f->len,
						   &error) : NULL;
	const char *code = doc ? json_str(doc, "error") : NULL;
	const char *desc = doc ? json_str(doc, "error_description") : NULL;

	if (code != NULL)
		snprintf(out, len, "HTTP %ld %s%s%.300s", status, code, desc ? ": " : "",
			 desc ? desc : "");
	else
		snprintf(out, len, "HTTP %ld", status);
	/* A description is one line in a log. */
	for (char *p = out; *p; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	if (doc != NULL)
		bson_destroy(doc);
}

/* Whether a refused token request may succeed if tried again. */
static bool transient_status(const struct azure_token_source *ts, long status)
{
	if (status == 429 || status == 408 || status >= 500)
		return true;
	/* IMDS: 404 while the identity is being set up, 410 while it is
	 * updated (for up to about 70 s). */
	return ts->kind == AZURE_TOKEN_MANAGED_IDENTITY && (status == 404 || status == 410);
}

/* Arc's first answer is 401 with the path of a key file; its content is
 * the password of the second request. */
static char *arc_key(const struct fetch *f, char *why, size_t whylen)
{
	const char *realm = strstr(f->www_authenticate, "realm=");
	char path[400];

	if (realm == NULL) {
		snprintf(why, whylen, "Azure Arc answered 401 without a key file");
		return NULL;
	}
	snprintf(path, sizeof(path), "%s", realm + 6);
	path[strcspn(path, " ,\"")] = '\0';
	if (strncmp(path, "/var/opt/azcmagent/tokens/", 26) != 0 || strstr(path, "..")) {
		snprintf(why, whylen, "Azure Arc named a key file outside its directory");
		return NULL;
	}
	return read_federated(path, why, whylen);
}

static int fetch_token(struct azure_token_source *ts, struct azure_error *err)
{
	struct fetch f = { 0 };
	char why[600] = "";
	char *arc_secret = NULL;
	long last_delay = 0;
	int r = -1;

	for (int attempt = 1;; attempt++) {
		char *url = NULL, *post = NULL;
		struct curl_slist *headers = NULL;
		long status = 0;
		CURLcode rc;

		if (build_request(ts, &url, &post, &headers, arc_secret, why, sizeof(why)) != 0) {
			azure_error_local(err, 0, "no token from %s: %s", ts->origin, why);
			err->err_class = ERR_CLASS_CONFIG;
			goto out;
		}
		rc = exchange(ts, url, headers, post, &f, &status);
		curl_slist_free_all(headers);
		free(url);
		if (post != NULL)
			explicit_bzero(post, strlen(post));
		free(post);

		if (rc == CURLE_OK && status == 200) {
			if (take_token(ts, &f, why, sizeof(why)) == 0) {
				r = 0;
				goto out;
			}
			azure_error_local(err, 0, "no token from %s: %s", ts->origin, why);
			err->err_class = ERR_CLASS_SERVER;
			goto out;
		}
		if (rc == CURLE_OK && status == 401 && ts->flavour == MI_ARC &&
		    ts->kind == AZURE_TOKEN_MANAGED_IDENTITY && arc_secret == NULL) {
			arc_secret = arc_key(&f, why, sizeof(why));
			if (arc_secret == NULL) {
				azure_error_local(err, 0, "no token from %s: %s", ts->origin, why);
				err->err_class = ERR_CLASS_AUTH;
				goto out;
			}
			attempt--;
			continue;
		}
		bool transient = rc != CURLE_OK ? azure_retry_transport(rc)
						: transient_status(ts, status);
		if (rc != CURLE_OK)
			snprintf(why, sizeof(why), "%s", curl_easy_strerror(rc));
		else
			describe_refusal(&f, status, why, sizeof(why));
		if (transient && attempt <= ts->retry.max_retries) {
			long delay = azure_retry_backoff_ms(&ts->retry, attempt - 1, last_delay,
							    &ts->rng);
			if (f.retry_after_ms >= 0)
				delay = f.retry_after_ms;
			last_delay = delay;
			msg_warn("token from %s: %s; retry %d of %d in %.1f s", ts->origin, why,
				 attempt, ts->retry.max_retries, (double)delay / 1000);
			azure_sleep_ms(delay);
			continue;
		}
		memset(err, 0, sizeof(*err));
		err->status = status;
		err->curl_code = rc;
		err->attempts = attempt;
		if (transient)
			err->err_class = rc != CURLE_OK ? ERR_CLASS_TRANSPORT : ERR_CLASS_SERVER;
		else if (rc != CURLE_OK)
			err->err_class = ERR_CLASS_CONFIG;  /* TLS, a bad URL: the settings */
		else
			err->err_class = ERR_CLASS_AUTH;
		snprintf(err->code, sizeof(err->code), "%s", "TokenRequestFailed");
		snprintf(err->message, sizeof(err->message), "no token from %s: %s%s",
			 ts->origin, why, transient ? "" :
			 rc != CURLE_OK ? " (check identity_endpoint / authority_host and ca_file)" :
			 " (check client_id, tenant_id and the credential)");
		goto out;
	}
out:
	free(f.body);
	if (arc_secret != NULL) {
		explicit_bzero(arc_secret, strlen(arc_secret));
		free(arc_secret);
	}
	return r;
}

const char *azure_token_get(struct azure_token_source *ts, struct azure_error *err)
{
	if (ts->token != NULL && time(NULL) < ts->renew_at)
		return ts->token;
	if (fetch_token(ts, err) != 0)
		return NULL;
	return ts->token;
}
