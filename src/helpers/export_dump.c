/* export_dump.c - export-collection's export: the collection looked up
 * (listCollections), its documents streamed as gzip'd BSON to stdout with
 * progress on --status-fd, or its metadata.json (options and indexes).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <mongoc/mongoc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "child_status.h"
#include "gzip_out.h"
#include "log.h"
#include "mab_config.h"
#include "no_core.h"
#include "xio.h"
#include "export_dump.h"

#define PROGRESS_INTERVAL_NS (250 * 1000 * 1000LL)

void report_error(const struct export_job *job, const char *class,
		  const char *fmt, ...)
{
	char text[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	msg_error("%s", text);
	if (job->status_fd >= 0)
		status_send(job->status_fd, "result error class=%s message=%s", class, text);
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* libmongoc errors never carry the URI password, only host names. */
const char *mongo_error_class(const bson_error_t *error)
{
	if (error->domain == MONGOC_ERROR_SERVER && error->code == 26)
		return ERR_CLASS_NOTFOUND;
	/* A refused login will not succeed on the next attempt either. */
	if (error->domain == MONGOC_ERROR_CLIENT &&
	    error->code == MONGOC_ERROR_CLIENT_AUTHENTICATE)
		return ERR_CLASS_AUTH;
	if (error->domain == MONGOC_ERROR_SERVER && (error->code == 13 || error->code == 18))
		return ERR_CLASS_AUTH;
	/* An untrusted certificate stays untrusted: a setting to fix (tlsCAFile),
	 * not an outage to wait out.  libmongoc says so only in its message,
	 * the server-selection error quoting the stream's. */
	if (strstr(error->message, "certificate verify failed") != NULL ||
	    strstr(error->message, "TLS handshake failed") != NULL)
		return ERR_CLASS_CONFIG;
	return ERR_CLASS_MONGO;
}

/* Finds the collection's listCollections entry: it tells us that the
 * collection exists, whether it is a view, and its uuid and options.
 * 0, or -1 with the reason in why and its ERR_CLASS_* in *class. */
int find_collection(struct export_job *job, const char **class, char *why,
		    size_t whylen)
{
	mongoc_database_t *db = mongoc_client_get_database(job->client, job->database);
	bson_t opts = BSON_INITIALIZER;
	bson_t filter;
	bson_error_t error;
	mongoc_cursor_t *cursor = NULL;
	const bson_t *doc;
	int r = -1;

	BSON_APPEND_DOCUMENT_BEGIN(&opts, "filter", &filter);
	BSON_APPEND_UTF8(&filter, "name", job->collection);
	bson_append_document_end(&opts, &filter);
	cursor = mongoc_database_find_collections_with_opts(db, &opts);
	if (mongoc_cursor_next(cursor, &doc)) {
		bson_copy_to(doc, &job->info);
		job->have_info = true;
	}
	if (mongoc_cursor_error(cursor, &error)) {
		*class = mongo_error_class(&error);
		snprintf(why, whylen, "listing collections of database '%s' failed: %s",
			 job->database, error.message);
		goto out;
	}
	if (!job->have_info) {
		*class = ERR_CLASS_NOTFOUND;
		snprintf(why, whylen, "collection '%s' does not exist in database '%s'",
			 job->collection, job->database);
		goto out;
	}
	bson_iter_t it;
	const char *type = "collection";
	if (bson_iter_init_find(&it, &job->info, "type") && BSON_ITER_HOLDS_UTF8(&it))
		type = bson_iter_utf8(&it, NULL);
	if (strcmp(type, "collection") != 0 && strcmp(type, "view") != 0 &&
	    strcmp(type, "timeseries") != 0) {
		*class = ERR_CLASS_NOTFOUND;
		snprintf(why, whylen, "'%s' in database '%s' is a %s, not a collection",
			 job->collection, job->database, type);
		goto out;
	}
	snprintf(job->type, sizeof(job->type), "%s", type);
	r = 0;
out:
	mongoc_cursor_destroy(cursor);
	bson_destroy(&opts);
	mongoc_database_destroy(db);
	return r;
}

int lookup_collection(struct export_job *job)
{
	const char *class = ERR_CLASS_MONGO;
	char why[640];

	if (find_collection(job, &class, why, sizeof(why)) == 0)
		return 0;
	report_error(job, class, "%s", why);
	return -1;
}

/* The documents of one query, gzip'd to stdout with progress records. */
static int export_query(struct export_job *job, mongoc_collection_t *coll,
			const bson_t *filter, bool natural);

int export_documents(struct export_job *job)
{
	mongoc_collection_t *buckets = NULL;
	bson_t filter = BSON_INITIALIZER;
	char name[512];
	int r;

	if (strcmp(job->type, "view") == 0) {
		report_error(job, ERR_CLASS_NOTFOUND, "'%s' in database '%s' is a view: only "
			     "its definition (--metadata) is backed up, as mongodump does",
			     job->collection, job->database);
		return CHILD_EXIT_FAILED;
	}
	if (strcmp(job->type, "timeseries") != 0)
		return export_query(job, job->coll, &filter, true);
	/* A time-series collection's data is its buckets, as mongodump (before
	 * MongoDB 8.3) and mongorestore keep them. */
	snprintf(name, sizeof(name), "system.buckets.%s", job->collection);
	buckets = mongoc_client_get_collection(job->client, job->database, name);
	r = export_query(job, buckets, &filter, true);
	mongoc_collection_destroy(buckets);
	return r;
}

/* mongodump --dumpDbUsersAndRoles: the database's users or roles, as
 * admin.system.users / admin.system.roles hold them. */
int export_auth(struct export_job *job)
{
	bool users = strcmp(job->collection, AUTH_USERS_NAME) == 0;
	mongoc_collection_t *coll = mongoc_client_get_collection(
		job->client, "admin", users ? "system.users" : "system.roles");
	bson_t filter = BSON_INITIALIZER;
	int r;

	BSON_APPEND_UTF8(&filter, "db", job->database);
	r = export_query(job, coll, &filter, false);
	bson_destroy(&filter);
	mongoc_collection_destroy(coll);
	return r;
}

static int export_query(struct export_job *job, mongoc_collection_t *coll,
			const bson_t *query, bool natural)
{
	struct gzip_out gz;
	bson_t opts = BSON_INITIALIZER;
	bson_t hint;
	bson_error_t error;
	mongoc_cursor_t *cursor = NULL;
	const bson_t *doc;
	uint64_t documents = 0;
	long long next_progress = now_ns() + PROGRESS_INTERVAL_NS;
	int r = CHILD_EXIT_FAILED;

	if (gzip_out_init(&gz, STDOUT_FILENO, &job->gzip) != 0) {
		report_error(job, ERR_CLASS_LOCAL, "cannot start gzip (%s level %d): %s",
			     gzip_engine_name(job->gzip.engine), job->gzip.level, strerror(errno));
		goto out_nogz;
	}

	int64_t estimate = natural ? mongoc_collection_estimated_document_count(
		coll, NULL, NULL, NULL, &error) : -1;
	if (estimate >= 0 && job->status_fd >= 0)
		status_send(job->status_fd, "estimate documents=%lld", (long long)estimate);

	/* mongodump's read: the natural order, no sort, no index. */
	if (natural) {
		BSON_APPEND_DOCUMENT_BEGIN(&opts, "hint", &hint);
		BSON_APPEND_INT32(&hint, "$natural", 1);
		bson_append_document_end(&opts, &hint);
	}
	cursor = mongoc_collection_find_with_opts(coll, query, &opts, NULL);

	while (mongoc_cursor_next(cursor, &doc)) {
		if (gzip_out_write(&gz, bson_get_data(doc), doc->len) != 0)
			goto write_failed;
		documents++;
		if ((documents & 255) == 0 && job->status_fd >= 0) {
			long long t = now_ns();
			if (t >= next_progress) {
				next_progress = t + PROGRESS_INTERVAL_NS;
				status_send(job->status_fd,
					    "progress documents=%llu bson_bytes=%llu gzip_bytes=%llu",
					    (unsigned long long)documents,
					    (unsigned long long)gz.bytes_in,
					    (unsigned long long)gz.bytes_out);
			}
		}
	}
	if (mongoc_cursor_error(cursor, &error)) {
		report_error(job, mongo_error_class(&error),
			     "reading collection '%s' failed after %llu documents: %s",
			     job->collection, (unsigned long long)documents, error.message);
		goto out;
	}
	if (gzip_out_finish(&gz) != 0)
		goto write_failed;
	if (job->status_fd >= 0)
		status_send(job->status_fd,
			    "result ok documents=%llu bson_bytes=%llu gzip_bytes=%llu "
			    "engine=%s level=%d threads=%d members=%llu",
			    (unsigned long long)documents, (unsigned long long)gz.bytes_in,
			    (unsigned long long)gz.bytes_out, gzip_engine_name(gz.settings.engine),
			    gz.settings.level, gz.settings.threads,
			    (unsigned long long)gz.members);
	msg_debug("exported %s.%s: %llu documents, %llu BSON bytes, %llu gzip bytes "
		  "(%s level %d, %d threads, %llu members)",
		  job->database, job->collection, (unsigned long long)documents,
		  (unsigned long long)gz.bytes_in, (unsigned long long)gz.bytes_out,
		  gzip_engine_name(gz.settings.engine), gz.settings.level, gz.settings.threads,
		  (unsigned long long)gz.members);
	r = CHILD_EXIT_OK;
	goto out;

write_failed:
	if (errno == EPIPE) {
		report_error(job, ERR_CLASS_ABORTED, "the reader of the export of '%s' went "
			     "away after %llu documents", job->collection,
			     (unsigned long long)documents);
		r = CHILD_EXIT_PEER_GONE;
	} else {
		report_error(job, ERR_CLASS_LOCAL, "writing the export of '%s' failed: %s",
			     job->collection, strerror(errno));
	}
out:
	mongoc_cursor_destroy(cursor);
	bson_destroy(&opts);
	gzip_out_free(&gz);
out_nogz:
	return r;
}

/* mongodump's <coll>.metadata.json: options (left out when empty), indexes,
 * uuid as 32 hex digits, collectionName, type; canonical Extended JSON. */
int export_metadata(struct export_job *job)
{
	bson_t meta = BSON_INITIALIZER;
	bson_t indexes;
	bson_error_t error;
	bson_iter_t it, info_it;
	mongoc_cursor_t *cursor = NULL;
	const bson_t *doc;
	char *json = NULL;
	size_t json_len = 0;
	struct gzip_out gz;
	bool gz_ready = false;
	int r = CHILD_EXIT_FAILED;
	uint32_t idx = 0;

	if (bson_iter_init_find(&it, &job->info, "options") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
		uint32_t len;
		const uint8_t *data;
		bson_t options;
		bson_iter_document(&it, &len, &data);
		if (bson_init_static(&options, data, len) && !bson_empty(&options))
			BSON_APPEND_DOCUMENT(&meta, "options", &options);
	}

	BSON_APPEND_ARRAY_BEGIN(&meta, "indexes", &indexes);
	/* A view has no indexes; mongodump does not ask. */
	bool view = strcmp(job->type, "view") == 0;
	cursor = view ? NULL : mongoc_collection_find_indexes_with_opts(job->coll, NULL);
	while (cursor != NULL && mongoc_cursor_next(cursor, &doc)) {
		char key[16];
		const char *keyp;
		bson_uint32_to_string(idx++, &keyp, key, sizeof(key));
		bson_append_document(&indexes, keyp, -1, doc);
	}
	bson_append_array_end(&meta, &indexes);
	if (cursor != NULL && mongoc_cursor_error(cursor, &error)) {
		report_error(job, mongo_error_class(&error),
			     "listing the indexes of '%s' failed: %s", job->collection,
			     error.message);
		goto out;
	}

	if (bson_iter_init_find(&it, &job->info, "info") &&
	    BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &info_it) &&
	    bson_iter_find(&info_it, "uuid") && BSON_ITER_HOLDS_BINARY(&info_it)) {
		bson_subtype_t subtype;
		uint32_t len;
		const uint8_t *bytes;
		char hex[65];
		bson_iter_binary(&info_it, &subtype, &len, &bytes);
		if (len <= 32) {
			for (uint32_t i = 0; i < len; i++)
				snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
			hex[2 * len] = '\0';
			BSON_APPEND_UTF8(&meta, "uuid", hex);
		}
	}
	BSON_APPEND_UTF8(&meta, "collectionName", job->collection);
	BSON_APPEND_UTF8(&meta, "type", job->type);

	json = bson_as_canonical_extended_json(&meta, &json_len);
	if (json == NULL) {
		report_error(job, ERR_CLASS_LOCAL, "cannot encode the metadata of '%s'",
			     job->collection);
		goto out;
	}
	/* A few kilobytes: threads would only cost their start. */
	struct gzip_settings one = job->gzip;
	one.threads = 1;
	if (gzip_out_init(&gz, STDOUT_FILENO, &one) != 0) {
		report_error(job, ERR_CLASS_LOCAL, "cannot start gzip: %s", strerror(errno));
		goto out;
	}
	gz_ready = true;
	if (gzip_out_write(&gz, json, json_len) != 0 || gzip_out_finish(&gz) != 0) {
		bool gone = errno == EPIPE;
		report_error(job, gone ? ERR_CLASS_ABORTED : ERR_CLASS_LOCAL,
			     "writing the metadata of '%s' failed: %s", job->collection,
			     strerror(errno));
		r = gone ? CHILD_EXIT_PEER_GONE : CHILD_EXIT_FAILED;
		goto out;
	}
	if (job->status_fd >= 0)
		status_send(job->status_fd, "result ok documents=%u bson_bytes=%zu "
			    "gzip_bytes=%llu engine=%s level=%d threads=1 members=%llu", idx,
			    json_len, (unsigned long long)gz.bytes_out,
			    gzip_engine_name(one.engine), one.level,
			    (unsigned long long)gz.members);
	r = CHILD_EXIT_OK;
out:
	if (gz_ready)
		gzip_out_free(&gz);
	bson_free(json);
	mongoc_cursor_destroy(cursor);
	bson_destroy(&meta);
	return r;
}
