/* azure_request.h - one Azure Blob REST exchange over libcurl (internal).
 *
 * A request is described once (verb, path, query, headers, body) and can be
 * attempted many times: every attempt gets a fresh x-ms-date and signature
 * but sends the identical body bytes.  The same request runs synchronously
 * (azure_request_perform: retries and sleeps) or inside a curl multi handle
 * driven by block_upload.c (azure_request_setup + azure_request_finish).
 * Error messages built here never contain the key, the SAS or the
 * Authorization header.
 */
#ifndef MAB_AZURE_REQUEST_H
#define MAB_AZURE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "azure_retry.h"
#include "azure_sign.h"
#include "connstr.h"

#define AZURE_API_VERSION "2021-12-02"
#define AZURE_REQ_MAX_HEADERS 48
/* Most of a non-2xx body we keep: Azure error documents are tiny. */
#define AZURE_ERROR_BODY_MAX (64 * 1024)
/* Most of a 2xx body we keep (List Blobs pages: 5000 entries). */
#define AZURE_LIST_BODY_MAX (256 * 1024 * 1024)

struct azure_error {
	long status;              /* HTTP status of the last attempt, 0 if none */
	int curl_code;            /* CURLcode of the last attempt */
	int attempts;
	int sys_errno;            /* for local failures (EPIPE from a sink) */
	const char *err_class;    /* ERR_CLASS_* from child_status.h */
	char code[96];            /* Azure error code, "" if none */
	char request_id[80];
	char message[768];        /* one line for logs; never a secret */
};

struct azure_token_source;

struct azure_client {
	struct azure_conn conn;
	char *container;
	char *origin;             /* scheme://host[:port] */
	char *path_prefix;        /* "" or "/devstoreaccount1" (path-style) */
	char *b64_key;            /* the key as text, only to redact messages */
	struct azure_retry_policy retry;
	long connect_timeout_s;
	long low_speed_bytes;     /* abort below this many bytes/s ... */
	long low_speed_time_s;    /* ... sustained for this long */
	CURL *easy;               /* for synchronous requests */
	CURLSH *share;            /* DNS and TLS sessions for every handle */
	uint64_t rng;
	char user_agent[64];
	struct azure_token_source *tokens;  /* bearer tokens instead of key/SAS */
	char *ca_file;            /* NULL: the system's CAs */
	/* Some request of this client got an HTTP answer: from then on a
	 * refused connection is an outage, before it a likely wrong endpoint
	 * (azure_error_class). */
	bool answered;
};

/* Receives a 2xx response body; 0 to continue, -1 to stop (errno kept). */
typedef int (*azure_sink_fn)(void *ctx, const void *data, size_t len);

struct azure_response {
	long status;
	char error_code[96];
	char request_id[80];
	char content_md5[40];
	char blob_content_md5[40];
	char content_type[160];
	char last_modified[40];
	char etag[100];
	char content_range[100];
	uint64_t content_length;
	bool have_length;
	long retry_after_ms;      /* -1 none */
	char **meta_names;        /* x-ms-meta-*, when want_meta */
	char **meta_values;
	size_t n_meta;
	bool meta_failed;
};

enum azure_outcome { AZURE_DONE, AZURE_RETRY, AZURE_FAILED };

struct azure_request {
	struct azure_client *client;
	const char *op;           /* "Put Block": for messages */
	char verb[8];
	char *path;               /* as sent: percent-encoded, starts with '/' */
	char *query;              /* as sent, without the SAS */
	char *what;               /* "container/blob" for messages */
	struct azure_header hdr[AZURE_REQ_MAX_HEADERS];  /* owned strings */
	size_t n_hdr;
	bool hdr_failed;

	const unsigned char *body;
	size_t body_len;
	size_t body_pos;

	azure_sink_fn sink;
	void *sink_ctx;
	int sink_errno;
	uint64_t sink_bytes;
	bool keep_body;           /* keep a 2xx body (List Blobs) */
	bool want_meta;

	/* Per attempt. */
	struct curl_slist *slist;
	char *url;
	char errbuf[CURL_ERROR_SIZE];
	struct azure_response resp;
	char *resp_body;
	size_t resp_body_len;
	size_t resp_body_cap;
	bool resp_body_truncated;

	int attempts;
	bool token_renewed;       /* a refused token was renewed once already */
	long last_delay_ms;
	long next_delay_ms;       /* set when azure_request_finish says RETRY */
	void *user;               /* for the caller (block_upload: its slot) */
};

/* Describes a request on blob (or on the container when blob is NULL).
 * query is already encoded (see azure_query_add).  -1 on ENOMEM/EINVAL. */
int azure_request_init(struct azure_request *req, struct azure_client *client,
		       const char *op, const char *verb, const char *blob,
		       const char *query);
void azure_request_add_header(struct azure_request *req, const char *name,
			      const char *value);
void azure_request_set_body(struct azure_request *req, const void *body, size_t len);
void azure_request_cleanup(struct azure_request *req);

/* Prepares easy for the next attempt (resets it first).  -1 with err
 * filled: out of memory, or no token (then err says why and its class is
 * the token endpoint's: an outage, or refused credentials). */
int azure_request_setup(struct azure_request *req, CURL *easy, struct azure_error *err);
/* Judges an attempt.  AZURE_RETRY sets req->next_delay_ms; AZURE_FAILED
 * fills err.  A request that already fed bytes to its sink is never
 * retried here (the caller resumes with a Range instead). */
enum azure_outcome azure_request_finish(struct azure_request *req, CURLcode result,
					struct azure_error *err);
/* Synchronous: attempts, sleeps and retries on the client's easy handle.
 * 0 on a 2xx answer, -1 with err filled. */
int azure_request_perform(struct azure_request *req, struct azure_error *err);

/* Appends name=value (value percent-encoded) to *query.  -1 on ENOMEM. */
int azure_query_add(char **query, const char *name, const char *value);

/* Fills err for a failure on our side (no HTTP exchange involved). */
void azure_error_local(struct azure_error *err, int sys_errno, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Replaces every secret the client knows (and any sig=...) with "[REDACTED]". */
void azure_redact(const struct azure_client *client, char *text, size_t size);

/* Sleeps ms milliseconds, resuming after signals. */
void azure_sleep_ms(long ms);

#endif
