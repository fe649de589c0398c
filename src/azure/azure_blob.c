/* azure_blob.c - client setup and the Blob Storage operations.
 *
 * Each operation describes one request (azure_request.c does the signing,
 * sending and retrying) and turns Azure's answers into the few outcomes the
 * callers act on: 409 ContainerAlreadyExists is success, a 404 on delete is
 * "already gone", an immutable blob is reported distinctly so retention
 * skips it instead of failing every night.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "azure_blob.h"
#include "child_status.h"
#include "log.h"

/* ~61 bytes per id in the Put Block List body. */
#define BLOCK_LIST_ENTRY "<Latest></Latest>"

static void global_init(void)
{
	static bool done;

	/* Children exec fresh, so once per process is once per program. */
	if (!done) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		azure_xml_init();
		done = true;
	}
}

bool azure_valid_container_name(const char *name)
{
	size_t len = strlen(name);

	if (strcmp(name, "$root") == 0 || strcmp(name, "$web") == 0)
		return true;
	if (len < 3 || len > 63 || name[0] == '-' || name[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
			return false;
		if (ch == '-' && name[i + 1] == '-')
			return false;
	}
	return true;
}

bool azure_valid_blob_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > 1024 || name[0] == '/' || name[len - 1] == '/' ||
	    name[len - 1] == '.')
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '\\')
			return false;
	return true;
}

bool azure_valid_meta_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > 64 || name[0] < 'a' || name[0] > 'z')
		return false;
	for (size_t i = 1; i < len; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9')))
			return false;
	return true;
}

bool azure_valid_meta_value(const char *value)
{
	size_t len = strlen(value);

	/* Azure trims and folds spaces before signing; refusing them keeps
	 * what we sign equal to what Azure rebuilds. */
	if (len > 4096 || (len > 0 && (value[0] == ' ' || value[len - 1] == ' ')))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (value[i] < 0x20 || value[i] > 0x7e)
			return false;
		if (value[i] == ' ' && value[i + 1] == ' ')
			return false;
	}
	return true;
}

void azure_block_id(uint64_t nonce, uint64_t index, char out[AZURE_BLOCK_ID_SIZE])
{
	char raw[AZURE_BLOCK_ID_RAW_LEN + 1];

	snprintf(raw, sizeof(raw), "%012" PRIx64 "-%019" PRIu64,
		 (uint64_t)(nonce & 0xffffffffffffULL),
		 (uint64_t)(index % 10000000000000000000ULL));
	azure_b64_encode(raw, AZURE_BLOCK_ID_RAW_LEN, out);
}

struct azure_client *azure_client_new(const char *connection_string, const char *container,
				      char *err, size_t errlen)
{
	struct azure_client_settings s = {
		.connection_string = connection_string, .container = container,
	};

	return azure_client_new_with(&s, err, errlen);
}

struct azure_client *azure_client_new_with(const struct azure_client_settings *s,
					   char *err, size_t errlen)
{
	struct azure_client *c = calloc(1, sizeof(*c));
	const char *container = s->container;
	const char *host, *slash;

	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	global_init();
	if (s->connection_string != NULL) {
		if (connstr_parse(s->connection_string, &c->conn, err, errlen) != 0)
			goto fail;
		if (s->require == 1 && c->conn.key == NULL) {
			snprintf(err, errlen, "auth = shared_key, but the connection string has "
				 "no AccountKey");
			goto fail;
		}
		if (s->require == 2 && c->conn.sas == NULL) {
			snprintf(err, errlen, "auth = sas, but the connection string has no "
				 "SharedAccessSignature");
			goto fail;
		}
	} else if (connstr_from_account_url(s->account_url ? s->account_url : "", &c->conn,
					    err, errlen) != 0) {
		goto fail;
	}
	if (s->token != NULL) {
		/* A token replaces whatever credential the string held. */
		if (c->conn.key != NULL)
			explicit_bzero(c->conn.key, c->conn.key_len);
		free(c->conn.key);
		c->conn.key = NULL;
		if (c->conn.sas != NULL)
			explicit_bzero(c->conn.sas, strlen(c->conn.sas));
		free(c->conn.sas);
		c->conn.sas = NULL;
		if (c->conn.http) {
			snprintf(err, errlen, "a bearer token must not travel over http://");
			goto fail;
		}
		c->tokens = azure_token_source_new(s->token, err, errlen);
		if (c->tokens == NULL)
			goto fail;
	}
	if (s->ca_file != NULL && *s->ca_file != '\0' && (c->ca_file = strdup(s->ca_file)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (container == NULL || !azure_valid_container_name(container)) {
		snprintf(err, errlen, "container name '%s' is not valid (3-63 characters: "
			 "lowercase letters, digits, single hyphens)", container ? container : "");
		goto fail;
	}
	c->container = strdup(container);
	host = strstr(c->conn.endpoint, "://") + 3;
	slash = strchr(host, '/');
	c->origin = slash ? strndup(c->conn.endpoint, (size_t)(slash - c->conn.endpoint))
			  : strdup(c->conn.endpoint);
	c->path_prefix = strdup(slash ? slash : "");
	if (c->conn.key != NULL) {
		c->b64_key = malloc((c->conn.key_len + 2) / 3 * 4 + 1);
		if (c->b64_key != NULL)
			azure_b64_encode(c->conn.key, c->conn.key_len, c->b64_key);
	}
	c->easy = curl_easy_init();
	c->share = curl_share_init();
	if (c->container == NULL || c->origin == NULL || c->path_prefix == NULL ||
	    c->easy == NULL || c->share == NULL || (c->conn.key != NULL && c->b64_key == NULL)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	azure_retry_policy_default(&c->retry);
	c->connect_timeout_s = 30;
	c->low_speed_bytes = 1;
	c->low_speed_time_s = 120;
	c->rng = azure_rng_seed();
	snprintf(c->user_agent, sizeof(c->user_agent), "%s/%s", PACKAGE_NAME, PACKAGE_VERSION);
	return c;
fail:
	azure_client_free(c);
	return NULL;
}

void azure_client_free(struct azure_client *c)
{
	if (c == NULL)
		return;
	if (c->easy != NULL)
		curl_easy_cleanup(c->easy);
	if (c->share != NULL)
		curl_share_cleanup(c->share);
	if (c->b64_key != NULL) {
		explicit_bzero(c->b64_key, strlen(c->b64_key));
		free(c->b64_key);
	}
	connstr_free(&c->conn);
	azure_token_source_free(c->tokens);
	free(c->ca_file);
	free(c->container);
	free(c->origin);
	free(c->path_prefix);
	free(c);
}

void azure_client_set_max_retries(struct azure_client *c, int max_retries)
{
	c->retry.max_retries = max_retries < 0 ? 0 : max_retries;
}

const char *azure_client_endpoint(const struct azure_client *c)
{
	return c->conn.endpoint;
}

static int oom(struct azure_error *err, const char *op)
{
	azure_error_local(err, ENOMEM, "%s: out of memory", op);
	return -1;
}

int azure_container_create(struct azure_client *c, bool *created, struct azure_error *err)
{
	struct azure_request req;
	int rc;

	*created = false;
	if (azure_request_init(&req, c, "Create Container", "PUT", NULL,
			       "restype=container") != 0)
		return oom(err, "Create Container");
	rc = azure_request_perform(&req, err);
	if (rc == 0)
		*created = true;
	else if (err->status == 409 && strcmp(err->code, "ContainerAlreadyExists") == 0)
		rc = 0;
	azure_request_cleanup(&req);
	return rc;
}

int azure_put_block_request(struct azure_request *req, struct azure_client *c,
			    const char *blob, const char *block_id, const void *data,
			    size_t len, const char *md5_b64)
{
	char *query = NULL;
	int rc = -1;

	if (azure_query_add(&query, "comp", "block") != 0 ||
	    azure_query_add(&query, "blockid", block_id) != 0)
		goto out;
	if (azure_request_init(req, c, "Put Block", "PUT", blob, query) != 0)
		goto out;
	if (md5_b64 != NULL)
		azure_request_add_header(req, "Content-MD5", md5_b64);
	azure_request_set_body(req, data, len);
	rc = 0;
out:
	free(query);
	return rc;
}

int azure_put_block(struct azure_client *c, const char *blob, const char *block_id,
		    const void *data, size_t len, const char *md5_b64,
		    struct azure_error *err)
{
	struct azure_request req;
	int rc;

	if (azure_put_block_request(&req, c, blob, block_id, data, len, md5_b64) != 0)
		return oom(err, "Put Block");
	rc = azure_request_perform(&req, err);
	azure_request_cleanup(&req);
	return rc;
}

static void add_put_headers(struct azure_request *req, const struct azure_put_opts *opts,
			    bool block_list)
{
	char name[80];

	azure_request_add_header(req, "x-ms-blob-content-type",
				 opts && opts->content_type ? opts->content_type
							    : "application/octet-stream");
	if (opts && opts->content_md5)
		azure_request_add_header(req, block_list ? "x-ms-blob-content-md5"
							 : "Content-MD5", opts->content_md5);
	for (size_t i = 0; opts && i < opts->n_meta; i++) {
		if (!azure_valid_meta_name(opts->meta[i].name) ||
		    !azure_valid_meta_value(opts->meta[i].value)) {
			req->hdr_failed = true;
			return;
		}
		snprintf(name, sizeof(name), "x-ms-meta-%s", opts->meta[i].name);
		azure_request_add_header(req, name, opts->meta[i].value);
	}
}

/* A create-only commit was refused because the blob exists.  When a retry
 * (ours, or the caller's with a new process) follows an attempt whose
 * answer was lost, what exists is that attempt's commit: the same
 * Content-MD5 says so.  0 then; else -1 with ERR_CLASS_EXISTS. */
static int create_conflict(struct azure_client *c, const char *blob,
			   const struct azure_put_opts *opts, struct azure_error *err)
{
	struct azure_blob_item props;
	struct azure_error head_err;
	int rc = -1;

	if (opts->content_md5 != NULL &&
	    azure_get_properties(c, blob, &props, &head_err) == 0) {
		if (props.content_md5 && strcmp(props.content_md5, opts->content_md5) == 0)
			rc = 0;
		azure_blob_item_free(&props);
	}
	if (rc == 0)
		return 0;
	err->err_class = ERR_CLASS_EXISTS;
	snprintf(err->message, sizeof(err->message), "Put Block List '%s': the blob already "
		 "exists (a create-only commit)", blob);
	return -1;
}

int azure_put_block_list(struct azure_client *c, const char *blob,
			 const char *const *ids, size_t n,
			 const struct azure_put_opts *opts, struct azure_error *err)
{
	static const char head[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>";
	static const char tail[] = "</BlockList>";
	struct azure_request req;
	size_t cap = sizeof(head) + sizeof(tail) + n * (sizeof(BLOCK_LIST_ENTRY) + AZURE_BLOCK_ID_SIZE);
	char *body = malloc(cap), *p;
	int rc = -1;

	if (body == NULL)
		return oom(err, "Put Block List");
	p = body + snprintf(body, cap, "%s", head);
	for (size_t i = 0; i < n; i++)
		p += snprintf(p, cap - (size_t)(p - body), "<Latest>%s</Latest>", ids[i]);
	p += snprintf(p, cap - (size_t)(p - body), "%s", tail);

	if (azure_request_init(&req, c, "Put Block List", "PUT", blob, "comp=blocklist") != 0) {
		free(body);
		return oom(err, "Put Block List");
	}
	azure_request_add_header(&req, "Content-Type", "application/xml");
	if (opts && opts->create_only)
		azure_request_add_header(&req, "If-None-Match", "*");
	add_put_headers(&req, opts, true);
	azure_request_set_body(&req, body, (size_t)(p - body));
	if (req.hdr_failed)
		azure_error_local(err, EINVAL, "Put Block List '%s': bad content type or "
				  "metadata", req.what);
	else
		rc = azure_request_perform(&req, err);
	azure_request_cleanup(&req);
	free(body);
	if (rc != 0 && opts && opts->create_only && (err->status == 409 || err->status == 412))
		rc = create_conflict(c, blob, opts, err);
	return rc;
}

int azure_put_blob(struct azure_client *c, const char *blob, const void *data, size_t len,
		   const struct azure_put_opts *opts, struct azure_error *err)
{
	struct azure_request req;
	int rc = -1;

	if (azure_request_init(&req, c, "Put Blob", "PUT", blob, NULL) != 0)
		return oom(err, "Put Blob");
	azure_request_add_header(&req, "x-ms-blob-type", "BlockBlob");
	add_put_headers(&req, opts, false);
	azure_request_set_body(&req, data, len);
	if (req.hdr_failed)
		azure_error_local(err, EINVAL, "Put Blob '%s': bad content type or metadata",
				  req.what);
	else
		rc = azure_request_perform(&req, err);
	azure_request_cleanup(&req);
	return rc;
}

/* Fills item from the response headers of a HEAD or GET. */
static int props_from_response(const struct azure_response *r, const char *blob,
			       uint64_t size, struct azure_blob_item *item)
{
	memset(item, 0, sizeof(*item));
	item->name = strdup(blob);
	item->size = size;
	item->content_md5 = strdup(r->blob_content_md5[0] ? r->blob_content_md5
							   : r->content_md5);
	item->content_type = strdup(r->content_type);
	item->etag = strdup(r->etag);
	item->last_modified = r->last_modified[0] ? azure_parse_http_date(r->last_modified)
						  : (time_t)-1;
	if (item->name == NULL || item->content_md5 == NULL || item->content_type == NULL ||
	    item->etag == NULL)
		goto fail;
	if (r->n_meta > 0) {
		item->meta_names = calloc(r->n_meta, sizeof(char *));
		item->meta_values = calloc(r->n_meta, sizeof(char *));
		if (item->meta_names == NULL || item->meta_values == NULL)
			goto fail;
		for (size_t i = 0; i < r->n_meta; i++) {
			item->meta_names[i] = strdup(r->meta_names[i]);
			item->meta_values[i] = strdup(r->meta_values[i]);
			item->n_meta++;
			if (item->meta_names[i] == NULL || item->meta_values[i] == NULL)
				goto fail;
		}
	}
	return 0;
fail:
	azure_blob_item_free(item);
	return -1;
}

int azure_get_properties(struct azure_client *c, const char *blob,
			 struct azure_blob_item *out, struct azure_error *err)
{
	struct azure_request req;
	int rc;

	memset(out, 0, sizeof(*out));
	if (azure_request_init(&req, c, "Get Blob Properties", "HEAD", blob, NULL) != 0)
		return oom(err, "Get Blob Properties");
	req.want_meta = true;
	rc = azure_request_perform(&req, err);
	if (rc == 0 && props_from_response(&req.resp, blob, req.resp.content_length, out) != 0)
		rc = oom(err, "Get Blob Properties");
	azure_request_cleanup(&req);
	return rc;
}

/* Total size from "bytes START-END/TOTAL"; false when absent or odd. */
static bool range_total(const char *content_range, uint64_t *total)
{
	const char *slash = strchr(content_range, '/');

	return slash != NULL && sscanf(slash + 1, "%" SCNu64, total) == 1;
}

int azure_get_blob(struct azure_client *c, const char *blob, uint64_t offset,
		   azure_sink_fn sink, void *ctx, struct azure_blob_item *props,
		   struct azure_error *err)
{
	uint64_t pos = offset, total = 0;
	bool have_total = false, have_props = false;
	char etag[100] = "";
	int resumes = 0, rc = -1;

	if (props != NULL)
		memset(props, 0, sizeof(*props));
	for (;;) {
		struct azure_request req;
		char range[48];

		if (azure_request_init(&req, c, "Get Blob", "GET", blob, NULL) != 0)
			return oom(err, "Get Blob");
		if (pos > 0) {
			snprintf(range, sizeof(range), "bytes=%" PRIu64 "-", pos);
			azure_request_add_header(&req, "x-ms-range", range);
		}
		/* A blob replaced under us must not be stitched together. */
		if (*etag)
			azure_request_add_header(&req, "If-Match", etag);
		req.sink = sink;
		req.sink_ctx = ctx;
		req.want_meta = props != NULL;
		rc = azure_request_perform(&req, err);

		if (req.resp.status == 200 || req.resp.status == 206) {
			uint64_t t;
			if (req.resp.status == 206 && range_total(req.resp.content_range, &t)) {
				total = t;
				have_total = true;
			} else if (req.resp.status == 200 && req.resp.have_length) {
				total = req.resp.content_length;
				have_total = true;
			}
			if (!*etag)
				snprintf(etag, sizeof(etag), "%s", req.resp.etag);
			if (props != NULL && !have_props) {
				if (props_from_response(&req.resp, blob, total, props) != 0) {
					azure_request_cleanup(&req);
					return oom(err, "Get Blob");
				}
				have_props = true;
			}
		}
		pos += req.sink_bytes;
		bool progressed = req.sink_bytes > 0;
		azure_request_cleanup(&req);

		if (rc == 0) {
			if (have_total && pos != total) {
				azure_error_local(err, EIO, "Get Blob '%s/%s': got %" PRIu64
						  " of %" PRIu64 " bytes", c->container, blob,
						  pos, total);
				err->err_class = ERR_CLASS_TRANSPORT;
				return -1;
			}
			return 0;
		}
		if (err->status == 416 && pos > 0) {
			/* Asked from the very end: fine if that is the size. */
			struct azure_blob_item p;
			if (azure_get_properties(c, blob, &p, err) != 0)
				return -1;
			bool at_end = p.size == pos;
			if (props != NULL && !have_props) {
				*props = p;
			} else {
				azure_blob_item_free(&p);
			}
			if (at_end)
				return 0;
			azure_error_local(err, EINVAL, "Get Blob '%s/%s': offset %" PRIu64
					  " is beyond the end of the blob", c->container, blob, pos);
			err->err_class = ERR_CLASS_CLIENT;
			return -1;
		}
		if (!progressed || err->sys_errno != 0 ||
		    !azure_retry_transport(err->curl_code) || ++resumes > 1000)
			return -1;
		/* Progress was made: resume at once from the first missing byte. */
		msg_warn("%s; resuming at byte %" PRIu64, err->message, pos);
	}
}

int azure_list_blobs(struct azure_client *c, const char *prefix, const char *delimiter,
		     azure_list_fn fn, void *ctx, struct azure_error *err)
{
	char *marker = NULL;
	int rc = -1;

	do {
		struct azure_request req;
		char *query = NULL, perr[256];
		char *next = NULL;

		if (azure_query_add(&query, "restype", "container") != 0 ||
		    azure_query_add(&query, "comp", "list") != 0 ||
		    (prefix && *prefix && azure_query_add(&query, "prefix", prefix) != 0) ||
		    (delimiter && azure_query_add(&query, "delimiter", delimiter) != 0) ||
		    azure_query_add(&query, "include", "metadata") != 0 ||
		    azure_query_add(&query, "maxresults", "5000") != 0 ||
		    (marker && azure_query_add(&query, "marker", marker) != 0) ||
		    azure_request_init(&req, c, "List Blobs", "GET", NULL, query) != 0) {
			free(query);
			rc = oom(err, "List Blobs");
			goto out;
		}
		free(query);
		req.keep_body = true;
		rc = azure_request_perform(&req, err);
		if (rc == 0) {
			rc = azure_parse_blob_list(req.resp_body, req.resp_body_len, fn, ctx,
						   &next, perr, sizeof(perr));
			if (rc == -1) {
				azure_error_local(err, EINVAL, "List Blobs '%s': %s", c->container,
						  perr);
				err->err_class = ERR_CLASS_SERVER;
				err->status = req.resp.status;
			}
		}
		azure_request_cleanup(&req);
		free(marker);
		marker = next;
		if (rc != 0)
			goto out;
	} while (marker != NULL);
out:
	free(marker);
	return rc;
}

enum azure_delete_result azure_delete_blob(struct azure_client *c, const char *blob,
					   struct azure_error *err)
{
	struct azure_request req;
	enum azure_delete_result result = AZURE_DELETE_FAILED;

	if (azure_request_init(&req, c, "Delete Blob", "DELETE", blob, NULL) != 0) {
		oom(err, "Delete Blob");
		return AZURE_DELETE_FAILED;
	}
	azure_request_add_header(&req, "x-ms-delete-snapshots", "include");
	if (azure_request_perform(&req, err) == 0)
		result = AZURE_DELETED;
	else if (err->status == 404)
		result = AZURE_DELETE_NOT_FOUND;
	else if (err->status == 409 && strncmp(err->code, "BlobImmutable", 13) == 0)
		result = AZURE_DELETE_IMMUTABLE;
	azure_request_cleanup(&req);
	return result;
}
