/* azure_request.c - build, sign and send one Azure REST request.
 *
 * libcurl is driven so that what is signed is exactly what is sent: the
 * header list handed to curl is the one the StringToSign is built from,
 * PUT bodies go through CURLOPT_UPLOAD with a known length (no chunked
 * encoding, no form Content-Type), "Expect:" is suppressed, no
 * Accept-Encoding is offered (a gzip blob must come back as stored), and
 * the path goes out as built, never normalised (CURLOPT_PATH_AS_IS).
 * Each failed attempt is judged in azure_outcome.c: retried or final, its
 * ERR_CLASS (azure_retry.c), and one line that says what to do about it.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "azure_request.h"
#include "azure_token.h"
#include "azure_xml.h"
#include "child_status.h"
#include "log.h"
int azure_query_add(char **query, const char *name, const char *value)
{
	char *enc = azure_pct_encode(value, 0), *q;
	size_t old = *query ? strlen(*query) : 0;
	size_t need = old + strlen(name) + strlen(enc ? enc : "") + 3;

	if (enc == NULL)
		return -1;
	q = realloc(*query, need);
	if (q == NULL) {
		free(enc);
		return -1;
	}
	snprintf(q + old, need - old, "%s%s=%s", old ? "&" : "", name, enc);
	*query = q;
	free(enc);
	return 0;
}

int azure_request_init(struct azure_request *req, struct azure_client *client,
		       const char *op, const char *verb, const char *blob,
		       const char *query)
{
	char *enc_container = NULL, *enc_blob = NULL;
	size_t need;
	int rc = -1;

	memset(req, 0, sizeof(*req));
	req->client = client;
	req->op = op;
	snprintf(req->verb, sizeof(req->verb), "%s", verb);
	req->resp.retry_after_ms = -1;

	enc_container = azure_pct_encode(client->container, 0);
	enc_blob = blob ? azure_pct_encode(blob, 1) : strdup("");
	if (enc_container == NULL || enc_blob == NULL)
		goto out;
	need = strlen(client->path_prefix) + strlen(enc_container) + strlen(enc_blob) + 3;
	req->path = malloc(need);
	if (req->path == NULL)
		goto out;
	snprintf(req->path, need, "%s/%s%s%s", client->path_prefix, enc_container,
		 blob ? "/" : "", enc_blob);

	need = strlen(client->container) + (blob ? strlen(blob) : 0) + 2;
	req->what = malloc(need);
	if (req->what == NULL)
		goto out;
	snprintf(req->what, need, "%s%s%s", client->container, blob ? "/" : "",
		 blob ? blob : "");

	req->query = strdup(query ? query : "");
	if (req->query == NULL)
		goto out;
	rc = 0;
out:
	free(enc_container);
	free(enc_blob);
	if (rc != 0)
		azure_request_cleanup(req);
	return rc;
}

void azure_request_add_header(struct azure_request *req, const char *name, const char *value)
{
	if (req->n_hdr == AZURE_REQ_MAX_HEADERS || strpbrk(value, "\r\n") != NULL) {
		req->hdr_failed = true;
		return;
	}
	char *n = strdup(name), *v = strdup(value);
	if (n == NULL || v == NULL) {
		free(n);
		free(v);
		req->hdr_failed = true;
		return;
	}
	req->hdr[req->n_hdr].name = n;
	req->hdr[req->n_hdr].value = v;
	req->n_hdr++;
}

void azure_request_set_body(struct azure_request *req, const void *body, size_t len)
{
	req->body = body;
	req->body_len = len;
	req->body_pos = 0;
}

static void response_reset(struct azure_response *r)
{
	for (size_t i = 0; i < r->n_meta; i++) {
		free(r->meta_names[i]);
		free(r->meta_values[i]);
	}
	free(r->meta_names);
	free(r->meta_values);
	memset(r, 0, sizeof(*r));
	r->retry_after_ms = -1;
}

static void attempt_reset(struct azure_request *req)
{
	curl_slist_free_all(req->slist);
	req->slist = NULL;
	free(req->url);
	req->url = NULL;
	response_reset(&req->resp);
	req->resp_body_len = 0;
	req->resp_body_truncated = false;
	req->errbuf[0] = '\0';
	req->body_pos = 0;
	req->sink_errno = 0;
}

void azure_request_cleanup(struct azure_request *req)
{
	attempt_reset(req);
	free(req->resp_body);
	for (size_t i = 0; i < req->n_hdr; i++) {
		free((char *)req->hdr[i].name);
		free((char *)req->hdr[i].value);
	}
	free(req->path);
	free(req->query);
	free(req->what);
	memset(req, 0, sizeof(*req));
}

static void trim_copy(char *dst, size_t size, const char *src, size_t len)
{
	while (len > 0 && (src[len - 1] == '\r' || src[len - 1] == '\n' ||
			   src[len - 1] == ' ' || src[len - 1] == '\t'))
		len--;
	while (len > 0 && (*src == ' ' || *src == '\t')) {
		src++;
		len--;
	}
	if (len >= size)
		len = size - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

static void add_meta(struct azure_response *r, const char *name, size_t name_len,
		     const char *value)
{
	char **names = realloc(r->meta_names, (r->n_meta + 1) * sizeof(char *));
	if (names != NULL)
		r->meta_names = names;
	char **values = realloc(r->meta_values, (r->n_meta + 1) * sizeof(char *));
	if (values != NULL)
		r->meta_values = values;
	if (names == NULL || values == NULL) {
		r->meta_failed = true;
		return;
	}
	r->meta_names[r->n_meta] = strndup(name, name_len);
	r->meta_values[r->n_meta] = strdup(value);
	if (r->meta_names[r->n_meta] == NULL || r->meta_values[r->n_meta] == NULL) {
		free(r->meta_names[r->n_meta]);
		free(r->meta_values[r->n_meta]);
		r->meta_failed = true;
		return;
	}
	r->n_meta++;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
	struct azure_request *req = ud;
	struct azure_response *r = &req->resp;
	size_t len = size * nitems;
	char value[512];

	if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		/* A new response (after a redirect or 1xx): forget the last one. */
		response_reset(r);
		const char *sp = memchr(buf, ' ', len);
		if (sp != NULL)
			r->status = strtol(sp + 1, NULL, 10);
		return len;
	}
	const char *colon = memchr(buf, ':', len);
	if (colon == NULL)
		return len;
	size_t name_len = (size_t)(colon - buf);
	const char *v = colon + 1;
	size_t vlen = len - name_len - 1;
#define COPY(field) trim_copy(field, sizeof(field), v, vlen)
	trim_copy(value, sizeof(value), v, vlen);

#define IS(h) (name_len == sizeof(h) - 1 && strncasecmp(buf, h, name_len) == 0)
	if (IS("x-ms-error-code"))
		COPY(r->error_code);
	else if (IS("x-ms-request-id"))
		COPY(r->request_id);
	else if (IS("content-md5"))
		COPY(r->content_md5);
	else if (IS("x-ms-blob-content-md5"))
		COPY(r->blob_content_md5);
	else if (IS("content-type"))
		COPY(r->content_type);
	else if (IS("last-modified"))
		COPY(r->last_modified);
	else if (IS("etag"))
		COPY(r->etag);
	else if (IS("content-range"))
		COPY(r->content_range);
	else if (IS("content-length"))
		r->have_length = sscanf(value, "%" SCNu64, &r->content_length) == 1;
	else if (IS("x-ms-retry-after-ms") || IS("retry-after-ms"))
		r->retry_after_ms = azure_retry_after_header_ms(value, true, time(NULL));
	else if (IS("retry-after") && r->retry_after_ms < 0)
		r->retry_after_ms = azure_retry_after_header_ms(value, false, time(NULL));
	else if (req->want_meta && name_len > 10 && strncasecmp(buf, "x-ms-meta-", 10) == 0)
		add_meta(r, buf + 10, name_len - 10, value);
#undef COPY
#undef IS
	return len;
}

static int keep_bytes(struct azure_request *req, const char *data, size_t len, size_t max)
{
	if (req->resp_body_len + len > max) {
		req->resp_body_truncated = true;
		len = max > req->resp_body_len ? max - req->resp_body_len : 0;
	}
	if (req->resp_body_len + len + 1 > req->resp_body_cap) {
		size_t cap = req->resp_body_cap ? req->resp_body_cap : 4096;
		while (cap < req->resp_body_len + len + 1)
			cap *= 2;
		char *p = realloc(req->resp_body, cap);
		if (p == NULL)
			return -1;
		req->resp_body = p;
		req->resp_body_cap = cap;
	}
	memcpy(req->resp_body + req->resp_body_len, data, len);
	req->resp_body_len += len;
	req->resp_body[req->resp_body_len] = '\0';
	return 0;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
	struct azure_request *req = ud;
	size_t len = size * nmemb;
	bool ok = req->resp.status >= 200 && req->resp.status < 300;

	if (ok && req->sink != NULL) {
		if (req->sink(req->sink_ctx, data, len) != 0) {
			req->sink_errno = errno ? errno : EIO;
			return 0;
		}
		req->sink_bytes += len;
		return len;
	}
	if (keep_bytes(req, data, len, ok && req->keep_body ? AZURE_LIST_BODY_MAX
							  : AZURE_ERROR_BODY_MAX) != 0) {
		req->sink_errno = ENOMEM;
		return 0;
	}
	if (ok && req->keep_body && req->resp_body_truncated) {
		req->sink_errno = EFBIG;
		return 0;
	}
	return len;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
	struct azure_request *req = ud;
	size_t want = size * nitems, left = req->body_len - req->body_pos;

	if (want > left)
		want = left;
	if (want > 0)
		memcpy(buf, req->body + req->body_pos, want);
	req->body_pos += want;
	return want;
}

/* libcurl rewinds when it must resend on a reused connection. */
static int on_seek(void *ud, curl_off_t offset, int origin)
{
	struct azure_request *req = ud;

	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > req->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	req->body_pos = (size_t)offset;
	return CURL_SEEKFUNC_OK;
}

static int slist_add(struct curl_slist **list, const char *name, const char *value)
{
	size_t need = strlen(name) + strlen(value) + 3;
	char *line = malloc(need);
	struct curl_slist *l;

	if (line == NULL)
		return -1;
	/* "Name:" with nothing after it removes a header curl would add. */
	snprintf(line, need, "%s:%s%s", name, *value ? " " : "", value);
	l = curl_slist_append(*list, line);
	free(line);
	if (l == NULL)
		return -1;
	*list = l;
	return 0;
}

int azure_request_setup(struct azure_request *req, CURL *easy, struct azure_error *err)
{
	struct azure_client *c = req->client;
	struct azure_header all[AZURE_REQ_MAX_HEADERS + 2];
	char date[AZURE_DATE_SIZE];
	char sig[AZURE_SIG_B64_SIZE];
	char *sts = NULL;
	size_t n = 0, need;
	bool put = strcmp(req->verb, "PUT") == 0;
	bool has_type = false;
	int rc = -1;

	attempt_reset(req);
	if (req->hdr_failed)
		goto out;
	azure_http_date(time(NULL), date);
	for (size_t i = 0; i < req->n_hdr; i++) {
		all[n++] = req->hdr[i];
		if (strcasecmp(req->hdr[i].name, "Content-Type") == 0)
			has_type = true;
	}
	all[n++] = (struct azure_header){ "x-ms-date", date };
	all[n++] = (struct azure_header){ "x-ms-version", AZURE_API_VERSION };
	for (size_t i = 0; i < n; i++)
		if (slist_add(&req->slist, all[i].name, all[i].value) != 0)
			goto out;
	if (slist_add(&req->slist, "Expect", "") != 0)
		goto out;
	if (!has_type && slist_add(&req->slist, "Content-Type", "") != 0)
		goto out;

	if (c->tokens != NULL) {
		const char *token = azure_token_get(c->tokens, err);
		char *auth;
		if (token == NULL) {
			/* err says why; the op and blob make it findable. */
			char why[sizeof(err->message)];
			snprintf(why, sizeof(why), "%s", err->message);
			snprintf(err->message, sizeof(err->message), "%s '%s': %s", req->op,
				 req->what, why);
			return -1;
		}
		if (asprintf(&auth, "Bearer %s", token) < 0)
			goto out;
		rc = slist_add(&req->slist, "Authorization", auth);
		explicit_bzero(auth, strlen(auth));
		free(auth);
		if (rc != 0)
			goto out;
		rc = -1;
	} else if (c->conn.key != NULL) {
		char auth[256];
		sts = azure_string_to_sign(req->verb, put ? req->body_len : 0, all, n,
					   c->conn.account, req->path, req->query);
		if (sts == NULL || azure_hmac_b64(c->conn.key, c->conn.key_len, sts, sig) != 0)
			goto out;
		snprintf(auth, sizeof(auth), "SharedKey %s:%s", c->conn.account, sig);
		rc = slist_add(&req->slist, "Authorization", auth);
		explicit_bzero(auth, sizeof(auth));
		explicit_bzero(sig, sizeof(sig));
		if (rc != 0)
			goto out;
		rc = -1;
	}

	need = strlen(c->origin) + strlen(req->path) + strlen(req->query) +
	       (c->conn.sas ? strlen(c->conn.sas) : 0) + 3;
	req->url = malloc(need);
	if (req->url == NULL)
		goto out;
	snprintf(req->url, need, "%s%s%s%s%s%s", c->origin, req->path,
		 (*req->query || c->conn.sas) ? "?" : "", req->query,
		 (*req->query && c->conn.sas) ? "&" : "", c->conn.sas ? c->conn.sas : "");

	curl_easy_reset(easy);
	CURLcode e = CURLE_OK;
#define SET(opt, val) do { if (e == CURLE_OK) e = curl_easy_setopt(easy, opt, val); } while (0)
	SET(CURLOPT_URL, req->url);
	/* A blob name is a name, not a path: curl must not resolve "." and
	 * ".." segments in it (RFC 3986 dot-segment removal), or a name such
	 * as "set/../../other/x" would be sent, signed, to another container. */
	SET(CURLOPT_PATH_AS_IS, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, c->conn.http ? "http,https" : "https");
#else
	SET(CURLOPT_PROTOCOLS, c->conn.http ? (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)
					    : (long)CURLPROTO_HTTPS);
#endif
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_CONNECTTIMEOUT, c->connect_timeout_s);
	SET(CURLOPT_LOW_SPEED_LIMIT, c->low_speed_bytes);
	SET(CURLOPT_LOW_SPEED_TIME, c->low_speed_time_s);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_USERAGENT, c->user_agent);
	SET(CURLOPT_ERRORBUFFER, req->errbuf);
	SET(CURLOPT_HTTPHEADER, req->slist);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, req);
	SET(CURLOPT_WRITEFUNCTION, on_write);
	SET(CURLOPT_WRITEDATA, req);
	SET(CURLOPT_PRIVATE, req);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	if (c->share != NULL)
		SET(CURLOPT_SHARE, c->share);
	if (c->ca_file != NULL)
		SET(CURLOPT_CAINFO, c->ca_file);
	if (put) {
		SET(CURLOPT_UPLOAD, 1L);
		SET(CURLOPT_READFUNCTION, on_read);
		SET(CURLOPT_READDATA, req);
		SET(CURLOPT_SEEKFUNCTION, on_seek);
		SET(CURLOPT_SEEKDATA, req);
		SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
	} else if (strcmp(req->verb, "HEAD") == 0) {
		SET(CURLOPT_NOBODY, 1L);
	} else if (strcmp(req->verb, "GET") != 0) {
		SET(CURLOPT_CUSTOMREQUEST, req->verb);
	}
#undef SET
	if (e != CURLE_OK)
		goto out;
	req->attempts++;
	rc = 0;
out:
	free(sts);
	if (rc != 0)
		azure_error_local(err, ENOMEM, "%s '%s': cannot prepare the request "
				  "(out of memory or a bad header)", req->op, req->what);
	return rc;
}

void azure_sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int azure_request_perform(struct azure_request *req, struct azure_error *err)
{
	for (;;) {
		CURLcode result;

		if (azure_request_setup(req, req->client->easy, err) != 0)
			return -1;
		result = curl_easy_perform(req->client->easy);
		switch (azure_request_finish(req, result, err)) {
		case AZURE_DONE:
			return 0;
		case AZURE_FAILED:
			return -1;
		case AZURE_RETRY:
			azure_sleep_ms(req->next_delay_ms);
			break;
		}
	}
}
