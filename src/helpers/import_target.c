/* import_target.c - import-collection's writing side: the target
 * collection looked at, dropped or created with the metadata's options,
 * the documents checked and inserted in unordered batches (stopped at the
 * manifest's counts, or by a signal), the indexes built, progress and the
 * result record on --status-fd (import_status.h).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <mongoc/mongoc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bson_stream.h"
#include "child_status.h"
#include "import_status.h"
#include "log.h"
#include "metadata_json.h"
#include "no_core.h"
#include "import_target.h"

#define PROGRESS_INTERVAL_NS (250 * 1000 * 1000LL)
#define READ_CHUNK (256 * 1024)

static volatile sig_atomic_t stop_signal;

void on_signal(int sig)
{
	stop_signal = sig;
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Keeps the first failure: later ones are its consequences. */
void import_fail(struct import *im, const char *class, const char *fmt, ...)
{
	va_list ap;

	if (im->err_class != NULL)
		return;
	im->err_class = class;
	va_start(ap, fmt);
	vsnprintf(im->error, sizeof(im->error), fmt, ap);
	va_end(ap);
	msg_error("%s.%s: %s", im->database, im->collection, im->error);
}

/* libmongoc's messages name hosts, never the URI's password. */
static const char *mongo_class(const bson_error_t *e)
{
	if (e->domain == MONGOC_ERROR_CLIENT && e->code == MONGOC_ERROR_CLIENT_AUTHENTICATE)
		return ERR_CLASS_AUTH;
	if (e->domain == MONGOC_ERROR_SERVER && (e->code == 13 || e->code == 18))
		return ERR_CLASS_AUTH;
	return ERR_CLASS_MONGO;
}

void import_report(struct import *im, const char *sha256, const char *md5)
{
	const struct bson_stream *bs = &im->bs;

	if (im->err_class == NULL && im->dry_run) {
		if (im->status_fd >= 0)
			status_send(im->status_fd, "result ok dry_run=1");
		return;
	}
	if (im->err_class == NULL) {
		msg_info("restored %s.%s: %llu documents inserted, %d index%s created",
			 im->database, im->collection, (unsigned long long)im->inserted,
			 im->indexes, im->indexes == 1 ? "" : "es");
		if (im->status_fd >= 0)
			status_send(im->status_fd, "result ok documents=%llu inserted=%llu failed=0 "
				    "uncertain=0 indexes=%d gzip_bytes=%llu bson_bytes=%llu "
				    "sha256=%s md5=%s%s", (unsigned long long)bs->documents,
				    (unsigned long long)im->inserted, im->indexes,
				    (unsigned long long)bs->gzip_bytes,
				    (unsigned long long)bs->bson_bytes, sha256, md5,
				    im->dropped ? " dropped=1" : "");
		return;
	}
	if (im->status_fd >= 0)
		status_send(im->status_fd, "result error class=%s documents=%llu inserted=%llu "
			    "failed=%llu uncertain=%llu indexes=%d gzip_bytes=%llu bson_bytes=%llu"
			    "%s message=%s", im->err_class, (unsigned long long)bs->documents,
			    (unsigned long long)im->inserted, (unsigned long long)im->failed,
			    (unsigned long long)im->uncertain, im->indexes,
			    (unsigned long long)bs->gzip_bytes, (unsigned long long)bs->bson_bytes,
			    im->dropped ? " dropped=1" : "", im->error);
}

static void progress(struct import *im, bool force)
{
	long long t;

	if (im->status_fd < 0)
		return;
	t = now_ns();
	if (!force && t < im->next_progress)
		return;
	im->next_progress = t + PROGRESS_INTERVAL_NS;
	status_send(im->status_fd, "progress documents=%llu inserted=%llu gzip_bytes=%llu "
		    "bson_bytes=%llu", (unsigned long long)im->bs.documents,
		    (unsigned long long)im->inserted, (unsigned long long)im->bs.gzip_bytes,
		    (unsigned long long)im->bs.bson_bytes);
}

/* ---- the target --------------------------------------------------------- */

static int target_exists(struct import *im, bool *exists)
{
	bson_t opts = BSON_INITIALIZER, filter;
	bson_error_t error;
	mongoc_cursor_t *cursor;
	const bson_t *doc;
	int r = 0;

	BSON_APPEND_DOCUMENT_BEGIN(&opts, "filter", &filter);
	BSON_APPEND_UTF8(&filter, "name", im->collection);
	bson_append_document_end(&opts, &filter);
	BSON_APPEND_BOOL(&opts, "nameOnly", true);
	cursor = mongoc_database_find_collections_with_opts(im->db, &opts);
	*exists = mongoc_cursor_next(cursor, &doc);
	if (mongoc_cursor_error(cursor, &error)) {
		import_fail(im, mongo_class(&error),
			    "cannot list the collections of database '%s': %s",
			    im->database, error.message);
		r = -1;
	}
	mongoc_cursor_destroy(cursor);
	bson_destroy(&opts);
	return r;
}

/* Whether the collection holds a document: one find, not a count, so a
 * huge collection costs nothing. */
static int target_has_documents(struct import *im, bool *any)
{
	bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
	bson_error_t error;
	mongoc_cursor_t *cursor;
	const bson_t *doc;
	int r = 0;

	BSON_APPEND_INT64(&opts, "limit", 1);
	BSON_APPEND_BOOL(&opts, "singleBatch", true);
	cursor = mongoc_collection_find_with_opts(im->coll, &filter, &opts, NULL);
	*any = mongoc_cursor_next(cursor, &doc);
	if (mongoc_cursor_error(cursor, &error)) {
		import_fail(im, mongo_class(&error), "cannot read collection %s.%s: %s",
			    im->database, im->collection, error.message);
		r = -1;
	}
	mongoc_cursor_destroy(cursor);
	bson_destroy(&filter);
	bson_destroy(&opts);
	return r;
}

/* The create command with the backup's options as they are, like
 * mongorestore: the server judges them, not a client-side list. */
static int create_collection(struct import *im)
{
	bson_t cmd = BSON_INITIALIZER, reply;
	bson_iter_t it;
	bson_error_t error;
	bool with_options = false;
	int r = 0;

	BSON_APPEND_UTF8(&cmd, "create", im->collection);
	if (im->meta != NULL && bson_iter_init_find(&it, im->meta, "options") &&
	    BSON_ITER_HOLDS_DOCUMENT(&it)) {
		bson_iter_t opt;
		bson_iter_recurse(&it, &opt);
		while (bson_iter_next(&opt)) {
			/* Our own command field cannot come from the data. */
			if (strcmp(bson_iter_key(&opt), "create") == 0)
				continue;
			bson_append_iter(&cmd, NULL, 0, &opt);
			with_options = true;
		}
	}
	if (!mongoc_database_write_command_with_opts(im->db, &cmd, NULL, &reply, &error)) {
		import_fail(im, mongo_class(&error), "cannot create collection %s.%s%s: %s",
			    im->database, im->collection,
			    with_options ? " with the backup's options" : "", error.message);
		r = -1;
	}
	bson_destroy(&reply);
	bson_destroy(&cmd);
	return r;
}

/* Looks, reports, then refuses, drops or creates as the options say. */
int prepare_target(struct import *im)
{
	bson_error_t error;
	bool exists, any = false;
	int64_t count = 0;

	if (target_exists(im, &exists) != 0)
		return -1;
	if (exists && im->kind == IMPORT_VIEW) {
		/* A view holds no documents of its own: it is there or not. */
		any = true;
		count = 0;
	} else if (exists) {
		if (target_has_documents(im, &any) != 0)
			return -1;
		count = mongoc_collection_estimated_document_count(im->coll, NULL, NULL, NULL,
								   &error);
		/* An estimate of 0 for a collection with a document is stale. */
		if (count < 1 && any)
			count = 1;
	}
	if (im->status_fd >= 0)
		status_send(im->status_fd, "target exists=%d documents=%lld", exists ? 1 : 0,
			    (long long)(any ? count : 0));
	if (im->dry_run)
		return 0;
	if (any && !im->drop && im->kind == IMPORT_VIEW) {
		import_fail(im, IMPORT_CLASS_REFUSED, "view %s.%s already exists; restore does "
			    "not replace it (--drop does)", im->database, im->collection);
		return -1;
	}
	if (any && !im->drop) {
		import_fail(im, IMPORT_CLASS_REFUSED,
			    "collection %s.%s already holds documents (about "
			    "%lld); restore does not add to a collection that is not empty (--drop "
			    "replaces it)", im->database, im->collection, (long long)count);
		return -1;
	}
	if (exists && im->drop) {
		if (!mongoc_collection_drop_with_opts(im->coll, NULL, &error) &&
		    !(error.domain == MONGOC_ERROR_SERVER && error.code == 26)) {
			import_fail(im, mongo_class(&error), "cannot drop %s.%s: %s", im->database,
				    im->collection, error.message);
			return -1;
		}
		im->dropped = true;
		exists = false;
	}
	/* Created first, so the options apply and an empty collection comes
	 * back as one. */
	if (!exists && create_collection(im) != 0)
		return -1;
	return 0;
}

/* ---- users and roles ---------------------------------------------------- */

static const char *temp_name(const struct import *im)
{
	return im->kind == IMPORT_USERS ? IMPORT_TEMP_USERS : IMPORT_TEMP_ROLES;
}

static int drop_temp(struct import *im)
{
	bson_error_t error;

	if (!mongoc_collection_drop_with_opts(im->data_coll, NULL, &error) &&
	    !(error.domain == MONGOC_ERROR_SERVER && error.code == 26)) {
		import_fail(im, mongo_class(&error), "cannot drop admin.%s: %s", temp_name(im),
			    error.message);
		return -1;
	}
	return 0;
}

int prepare_auth(struct import *im)
{
	if (im->status_fd >= 0)
		status_send(im->status_fd, "target exists=0 documents=0");
	if (im->dry_run)
		return 0;
	return drop_temp(im);
}

/* As mongorestore --restoreDbUsersAndRoles: the server merges the
 * temporary collection into its own, for this database only (a document
 * of another database in the backup changes nothing), replacing users or
 * roles of the same name; --drop also removes the database's others. */
int merge_auth(struct import *im)
{
	bson_t cmd = BSON_INITIALIZER, reply;
	bson_error_t error;
	mongoc_database_t *admin = mongoc_client_get_database(im->client, "admin");
	char ns[64];
	int r = 0;

	snprintf(ns, sizeof(ns), "admin.%s", temp_name(im));
	BSON_APPEND_INT32(&cmd, "_mergeAuthzCollections", 1);
	BSON_APPEND_UTF8(&cmd, im->kind == IMPORT_USERS ? "tempUsersCollection"
							 : "tempRolesCollection", ns);
	BSON_APPEND_BOOL(&cmd, "drop", im->drop);
	BSON_APPEND_UTF8(&cmd, "db", im->database);
	if (!mongoc_database_write_command_with_opts(admin, &cmd, NULL, &reply, &error)) {
		import_fail(im, mongo_class(&error), "merging the %s of %s failed: %s",
			    im->kind == IMPORT_USERS ? "users" : "roles", im->database,
			    error.message);
		r = -1;
	}
	bson_destroy(&reply);
	bson_destroy(&cmd);
	mongoc_database_destroy(admin);
	if (drop_temp(im) != 0)
		r = -1;
	return r;
}

/* ---- documents ---------------------------------------------------------- */

static void first_write_error(const bson_t *reply, int *count, char *msg, size_t len)
{
	bson_iter_t it, arr, e;

	*count = 0;
	msg[0] = '\0';
	if (!bson_iter_init_find(&it, reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY(&it) ||
	    !bson_iter_recurse(&it, &arr))
		return;
	while (bson_iter_next(&arr)) {
		if ((*count)++ > 0 || !bson_iter_recurse(&arr, &e))
			continue;
		int code = 0;
		const char *text = "";
		while (bson_iter_next(&e)) {
			if (strcmp(bson_iter_key(&e), "code") == 0 && BSON_ITER_HOLDS_NUMBER(&e))
				code = (int)bson_iter_as_int64(&e);
			else if (strcmp(bson_iter_key(&e), "errmsg") == 0 &&
				 BSON_ITER_HOLDS_UTF8(&e))
				text = bson_iter_utf8(&e, NULL);
		}
		snprintf(msg, len, "%s(code %d) %s", code == 11000 ? "duplicate key " : "", code,
			 text);
	}
}

static int flush_batch(struct import *im)
{
	bson_t reply;
	bson_error_t error;
	bson_iter_t it;
	uint32_t n = im->batch_docs;
	int64_t done = 0;
	int werrors;
	char first[600];
	int r = 0;

	if (im->bulk == NULL || n == 0)
		return 0;
	uint32_t ok = mongoc_bulk_operation_execute(im->bulk, &reply, &error);
	if (bson_iter_init_find(&it, &reply, "nInserted") && BSON_ITER_HOLDS_NUMBER(&it))
		done = bson_iter_as_int64(&it);
	first_write_error(&reply, &werrors, first, sizeof(first));
	im->inserted += (uint64_t)done;
	im->failed += (uint64_t)werrors;
	if (!ok) {
		/* What was neither acknowledged nor refused may or may not be
		 * on the server: say so instead of guessing. */
		if ((uint64_t)done + (uint64_t)werrors < n)
			im->uncertain += n - (uint64_t)done - (uint64_t)werrors;
		if (werrors > 0)
			import_fail(im, IMPORT_CLASS_WRITE,
				    "the server refused %d of a batch of %u "
				    "documents; the first: %s", werrors, n, first);
		else
			import_fail(im, mongo_class(&error),
				    "inserting a batch of %u documents failed: %s",
				    n, error.message);
		r = -1;
	}
	bson_destroy(&reply);
	mongoc_bulk_operation_destroy(im->bulk);
	im->bulk = NULL;
	im->batch_docs = 0;
	im->batch_bytes = 0;
	progress(im, false);
	return r;
}

int add_document(void *ctx, const uint8_t *data, uint32_t len)
{
	struct import *im = ctx;
	bson_error_t error = { 0 };
	bson_t doc;

	if (stop_signal) {
		import_fail(im, ERR_CLASS_ABORTED, "stopped by signal %d", (int)stop_signal);
		return -1;
	}
	if (im->batch_docs > 0 && (im->batch_docs >= IMPORT_BATCH_DOCS ||
				   im->batch_bytes + len > IMPORT_BATCH_BYTES) &&
	    flush_batch(im) != 0)
		return -1;
	if (im->bulk == NULL) {
		bson_t opts = BSON_INITIALIZER;
		BSON_APPEND_BOOL(&opts, "ordered", false);
		im->bulk = mongoc_collection_create_bulk_operation_with_opts(im->data_coll, &opts);
		bson_destroy(&opts);
	}
	if (!bson_init_static(&doc, data, len) ||
	    !mongoc_bulk_operation_insert_with_opts(im->bulk, &doc, &im->insert_opts, &error)) {
		import_fail(im, ERR_CLASS_LOCAL, "cannot queue document %llu for insertion: %s",
			    (unsigned long long)im->bs.documents, error.message);
		return -1;
	}
	im->batch_docs++;
	im->batch_bytes += len;
	return 0;
}

/* stdin -> bson_stream -> batches.  0 when the stream was whole and every
 * document is in. */
int import_documents(struct import *im, char *sha256, char *md5)
{
	static unsigned char buf[READ_CHUNK];
	int r = -1;

	im->next_progress = now_ns() + PROGRESS_INTERVAL_NS;
	bson_stream_limit(&im->bs, im->expect_documents, im->expect_bson_bytes,
			  im->expect_gzip_bytes);
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n < 0 && errno == EINTR && !stop_signal)
			continue;
		if (stop_signal) {
			import_fail(im, ERR_CLASS_ABORTED, "stopped by signal %d",
				    (int)stop_signal);
			goto out;
		}
		if (n < 0) {
			import_fail(im, ERR_CLASS_LOCAL, "reading the backup stream failed: %s",
				    strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (bson_stream_feed(&im->bs, buf, (size_t)n) != 0) {
			if (im->bs.over_limit)
				import_fail(im, IMPORT_CLASS_DATA, "stopped: %s", im->bs.error);
			else
				import_fail(im, ERR_CLASS_LOCAL, "%s", im->bs.error);
			goto out;
		}
		if (im->bs.data_error) {
			import_fail(im, IMPORT_CLASS_DATA, "the backup stream is bad: %s",
				    im->bs.error);
			goto out;
		}
		progress(im, false);
	}
	if (bson_stream_finish(&im->bs, sha256, md5) != 0) {
		/* Documents still waiting in the batch are not sent: what is
		 * reported as inserted is all there is. */
		import_fail(im, IMPORT_CLASS_DATA, "the backup stream is bad: %s", im->bs.error);
		return -1;
	}
	if (flush_batch(im) != 0)
		return -1;
	progress(im, true);
	return 0;
out:
	bson_stream_finish(&im->bs, sha256, md5);
	return r;
}

/* ---- indexes ------------------------------------------------------------ */

int create_indexes(struct import *im)
{
	bson_t cmd = BSON_INITIALIZER, arr, reply;
	bson_iter_t it, list;
	bson_error_t error;
	uint32_t n = 0;
	int r = 0;

	if (!bson_iter_init_find(&it, im->meta, "indexes") || !bson_iter_recurse(&it, &list))
		goto out;
	BSON_APPEND_UTF8(&cmd, "createIndexes", im->collection);
	BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &arr);
	while (bson_iter_next(&list)) {
		const uint8_t *data;
		uint32_t len;
		bson_t spec, copy;
		bson_iter_t name;
		char key[16];
		const char *keyp;

		bson_iter_document(&list, &len, &data);
		if (!bson_init_static(&spec, data, len))
			continue;
		/* _id_ comes with the collection. */
		if (bson_iter_init_find(&name, &spec, "name") && BSON_ITER_HOLDS_UTF8(&name) &&
		    strcmp(bson_iter_utf8(&name, NULL), "_id_") == 0)
			continue;
		/* "ns" (servers before 4.4 listed it) is refused by newer ones. */
		bson_init(&copy);
		bson_copy_to_excluding_noinit(&spec, &copy, "ns", NULL);
		bson_uint32_to_string(n++, &keyp, key, sizeof(key));
		BSON_APPEND_DOCUMENT(&arr, keyp, &copy);
		bson_destroy(&copy);
	}
	bson_append_array_end(&cmd, &arr);
	if (n == 0)
		goto out;
	if (!mongoc_database_write_command_with_opts(im->db, &cmd, NULL, &reply, &error)) {
		import_fail(im, error.domain == MONGOC_ERROR_SERVER ?
				    IMPORT_CLASS_INDEX : mongo_class(&error),
			    "the documents are in, but creating %u index%s failed: %s", n,
			    n == 1 ? "" : "es", error.message);
		r = -1;
	} else {
		bson_iter_t b, a;
		im->indexes = (int)n;
		if (bson_iter_init_find(&b, &reply, "numIndexesBefore") &&
		    bson_iter_init_find(&a, &reply, "numIndexesAfter") &&
		    BSON_ITER_HOLDS_NUMBER(&b) && BSON_ITER_HOLDS_NUMBER(&a))
			im->indexes = (int)(bson_iter_as_int64(&a) - bson_iter_as_int64(&b));
	}
	bson_destroy(&reply);
out:
	bson_destroy(&cmd);
	return r;
}

/* ---- start-up ----------------------------------------------------------- */
