/* azure_blob.h - the Azure Blob Storage operations this project uses.
 *
 * A client is one account + one container.  Every call is synchronous,
 * retries transient failures itself (azure_retry.h) and reports a final
 * failure in struct azure_error: an ERR_CLASS_* class, the HTTP status, the
 * Azure error code and one log-ready line that never holds a secret.
 * Streaming uploads with many blocks in flight live in block_upload.h.
 */
#ifndef MAB_AZURE_BLOB_H
#define MAB_AZURE_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "azure_request.h"
#include "azure_token.h"
#include "azure_xml.h"

/* Raw block ids are 32 characters: 12 hex digits of a per-upload nonce,
 * '-', and a 19-digit block counter.  All ids of a blob must have the same
 * length, and the nonce keeps two uploaders of one blob from mixing blocks. */
#define AZURE_BLOCK_ID_RAW_LEN 32
#define AZURE_BLOCK_ID_SIZE 45           /* base64 of the raw id, plus NUL */
#define AZURE_MAX_BLOCK_SIZE (4000ULL << 20)
#define AZURE_MAX_BLOCKS 50000
#define AZURE_META_MAX_TOTAL 8192

struct azure_meta {
	const char *name;                /* [a-z][a-z0-9]* */
	const char *value;               /* printable ASCII, single spaces */
};

/* What Put Block List / Put Blob set on the blob. */
struct azure_put_opts {
	const char *content_type;        /* NULL: application/octet-stream */
	const char *content_md5;         /* base64 MD5 of the whole blob, or NULL */
	const struct azure_meta *meta;
	size_t n_meta;
	/* Put Block List only: commit only if no blob of that name exists
	 * (If-None-Match: *); one that does is ERR_CLASS_EXISTS, unless it is
	 * this very content (content_md5), committed by an attempt whose
	 * answer was lost. */
	bool create_only;
};

enum azure_delete_result {
	AZURE_DELETE_FAILED = -1,
	AZURE_DELETED = 0,
	AZURE_DELETE_NOT_FOUND,          /* already gone: counts as done */
	AZURE_DELETE_IMMUTABLE,          /* 409 BlobImmutableDueTo...: skip it */
};

/* Parses the connection string and prepares a client for container.
 * NULL with a message (never containing the secret) in err. */
struct azure_client *azure_client_new(const char *connection_string, const char *container,
				      char *err, size_t errlen);

/* What a client is made from: a connection string (its key or SAS signs),
 * or an account URL and a token source. */
struct azure_client_settings {
	const char *connection_string;   /* NULL with account_url */
	const char *account_url;
	const char *container;
	/* NULL: the connection string's own credential; else bearer tokens. */
	const struct azure_token_settings *token;
	/* With a connection string: 1 it must hold an AccountKey, 2 a SAS,
	 * 0 either (auth = shared_key, sas, auto). */
	int require;
	const char *ca_file;             /* NULL or "": the system's CAs */
};
struct azure_client *azure_client_new_with(const struct azure_client_settings *s,
					   char *err, size_t errlen);
void azure_client_free(struct azure_client *client);
void azure_client_set_max_retries(struct azure_client *client, int max_retries);
/* scheme://host[:port][/prefix] for messages: no secrets in it. */
const char *azure_client_endpoint(const struct azure_client *client);

bool azure_valid_container_name(const char *name);
bool azure_valid_blob_name(const char *name);
bool azure_valid_meta_name(const char *name);
bool azure_valid_meta_value(const char *value);

/* base64 of the fixed-width raw id for block index of an upload. */
void azure_block_id(uint64_t nonce, uint64_t index, char out[AZURE_BLOCK_ID_SIZE]);

/* PUT ?restype=container.  0 also when it exists (*created = false). */
int azure_container_create(struct azure_client *c, bool *created, struct azure_error *err);

/* Describes a Put Block request on req without sending it (block_upload
 * runs it in a curl multi).  data must stay untouched until it is done. */
int azure_put_block_request(struct azure_request *req, struct azure_client *c,
			    const char *blob, const char *block_id, const void *data,
			    size_t len, const char *md5_b64);
int azure_put_block(struct azure_client *c, const char *blob, const char *block_id,
		    const void *data, size_t len, const char *md5_b64,
		    struct azure_error *err);
/* Commits ids (in order) as the blob's content.  n == 0 makes an empty blob.
 * Safe to repeat after a lost answer, create_only included. */
int azure_put_block_list(struct azure_client *c, const char *blob,
			 const char *const *ids, size_t n,
			 const struct azure_put_opts *opts, struct azure_error *err);
/* Single-request upload for small blobs (manifests). */
int azure_put_blob(struct azure_client *c, const char *blob, const void *data, size_t len,
		   const struct azure_put_opts *opts, struct azure_error *err);

/* HEAD: size, Content-MD5, Content-Type, ETag, Last-Modified, metadata.
 * A missing blob is -1 with err->err_class ERR_CLASS_NOTFOUND. */
int azure_get_properties(struct azure_client *c, const char *blob,
			 struct azure_blob_item *out, struct azure_error *err);

/* Streams the blob from byte offset to sink.  Transport failures resume
 * with a Range request (and If-Match on the first ETag) from the first byte
 * the sink has not had, so no byte is delivered twice.  props (optional)
 * gets the blob's size, MD5, type and ETag from the first answer.  An
 * offset equal to the size is success with nothing delivered. */
int azure_get_blob(struct azure_client *c, const char *blob, uint64_t offset,
		   azure_sink_fn sink, void *ctx, struct azure_blob_item *props,
		   struct azure_error *err);

/* Lists blobs whose names start with prefix (NULL = all), with metadata,
 * following NextMarker.  With a delimiter, BlobPrefix entries come too.
 * Returns 0, the callback's non-zero value, or -1 with err. */
int azure_list_blobs(struct azure_client *c, const char *prefix, const char *delimiter,
		     azure_list_fn fn, void *ctx, struct azure_error *err);

/* DELETE with x-ms-delete-snapshots: include. */
enum azure_delete_result azure_delete_blob(struct azure_client *c, const char *blob,
					   struct azure_error *err);

#endif
