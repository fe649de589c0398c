/* export_collection.c - export-collection: one MongoDB collection as a gzip
 * compressed mongodump .bson stream on stdout.
 *
 * Documents come off a libmongoc cursor in $natural order and go into zlib
 * as they are, without re-encoding, so the output is byte for byte what the
 * server holds.  With --metadata it writes the collection's mongodump
 * metadata.json (gzip compressed) instead.  With --status-fd it reports an
 * estimate, progress and a final result record to the supervisor
 * (child_status.h).  A reader that goes away (EPIPE) ends the export with
 * exit code 3; a MongoDB failure with exit code 1.
 *
 * Two modes serve `mongo-azure-backupd -t` and `--check-connect`, so that
 * the supervisor never links libmongoc: --check-uri parses the configured
 * URI as libmongoc does (problems as FILE:LINE: on stderr, exit 2), and
 * --check-connect pings the server and looks up every configured
 * collection, one "ok   ..." or "FAIL ..." line each on stdout (exit 0 when
 * all pass, 1 otherwise).
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

#define PROGRESS_INTERVAL_NS (250 * 1000 * 1000LL)

struct export_job {
	const char *collection;
	const char *database;
	int level;
	int status_fd;
	mongoc_client_t *client;
	mongoc_collection_t *coll;
	bson_t info;             /* listCollections entry */
	bool have_info;
};

static void report_error(const struct export_job *job, const char *class,
			 const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void report_error(const struct export_job *job, const char *class,
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
static const char *mongo_error_class(const bson_error_t *error)
{
	if (error->domain == MONGOC_ERROR_SERVER && error->code == 26)
		return ERR_CLASS_NOTFOUND;
	/* A refused login will not succeed on the next attempt either. */
	if (error->domain == MONGOC_ERROR_CLIENT &&
	    error->code == MONGOC_ERROR_CLIENT_AUTHENTICATE)
		return ERR_CLASS_AUTH;
	if (error->domain == MONGOC_ERROR_SERVER && (error->code == 13 || error->code == 18))
		return ERR_CLASS_AUTH;
	return ERR_CLASS_MONGO;
}

/* --list: the names of the database's collections, NUL-terminated each (a
 * name may hold any byte but NUL), views and system collections left out,
 * as mongodump does for a database dump. */
static int list_collections(struct export_job *job)
{
	mongoc_database_t *db = mongoc_client_get_database(job->client, job->database);
	bson_t opts = BSON_INITIALIZER;
	bson_t filter;
	bson_error_t error;
	mongoc_cursor_t *cursor;
	const bson_t *doc;
	unsigned count = 0;
	int r = CHILD_EXIT_FAILED;

	BSON_APPEND_DOCUMENT_BEGIN(&opts, "filter", &filter);
	BSON_APPEND_UTF8(&filter, "type", "collection");
	bson_append_document_end(&opts, &filter);
	cursor = mongoc_database_find_collections_with_opts(db, &opts);
	while (mongoc_cursor_next(cursor, &doc)) {
		bson_iter_t it;
		const char *name;
		uint32_t len;

		if (!bson_iter_init_find(&it, doc, "name") || !BSON_ITER_HOLDS_UTF8(&it))
			continue;
		name = bson_iter_utf8(&it, &len);
		if (strncmp(name, "system.", 7) == 0 || memchr(name, '\0', len) != NULL)
			continue;
		if (xwrite_all(STDOUT_FILENO, name, (size_t)len + 1) != 0) {
			report_error(job, errno == EPIPE ? ERR_CLASS_ABORTED : ERR_CLASS_LOCAL,
				     "writing the collection list failed: %s", strerror(errno));
			goto out;
		}
		count++;
	}
	if (mongoc_cursor_error(cursor, &error)) {
		report_error(job, mongo_error_class(&error),
			     "listing collections of database '%s' failed: %s",
			     job->database, error.message);
		goto out;
	}
	if (job->status_fd >= 0)
		status_send(job->status_fd, "result ok documents=%u", count);
	r = CHILD_EXIT_OK;
out:
	mongoc_cursor_destroy(cursor);
	bson_destroy(&opts);
	mongoc_database_destroy(db);
	return r;
}

/* Finds the collection's listCollections entry: it tells us that the
 * collection exists, whether it is a view, and its uuid and options.
 * 0, or -1 with the reason in why and its ERR_CLASS_* in *class. */
static int find_collection(struct export_job *job, const char **class, char *why,
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
	if (bson_iter_init_find(&it, &job->info, "type") && BSON_ITER_HOLDS_UTF8(&it) &&
	    strcmp(bson_iter_utf8(&it, NULL), "collection") != 0) {
		*class = ERR_CLASS_NOTFOUND;
		snprintf(why, whylen, "'%s' in database '%s' is a %s, not a collection",
			 job->collection, job->database, bson_iter_utf8(&it, NULL));
		goto out;
	}
	r = 0;
out:
	mongoc_cursor_destroy(cursor);
	bson_destroy(&opts);
	mongoc_database_destroy(db);
	return r;
}

static int lookup_collection(struct export_job *job)
{
	const char *class = ERR_CLASS_MONGO;
	char why[640];

	if (find_collection(job, &class, why, sizeof(why)) == 0)
		return 0;
	report_error(job, class, "%s", why);
	return -1;
}

static int export_documents(struct export_job *job)
{
	struct gzip_out gz;
	bson_t filter = BSON_INITIALIZER;
	bson_t opts = BSON_INITIALIZER;
	bson_t hint;
	bson_error_t error;
	mongoc_cursor_t *cursor = NULL;
	const bson_t *doc;
	uint64_t documents = 0;
	long long next_progress = now_ns() + PROGRESS_INTERVAL_NS;
	int r = CHILD_EXIT_FAILED;

	if (gzip_out_init(&gz, STDOUT_FILENO, job->level) != 0) {
		report_error(job, ERR_CLASS_LOCAL, "cannot start gzip: %s", strerror(errno));
		goto out_nogz;
	}

	int64_t estimate = mongoc_collection_estimated_document_count(job->coll, NULL,
								       NULL, NULL, &error);
	if (estimate >= 0 && job->status_fd >= 0)
		status_send(job->status_fd, "estimate documents=%lld", (long long)estimate);

	/* mongodump's read: the natural order, no sort, no index. */
	BSON_APPEND_DOCUMENT_BEGIN(&opts, "hint", &hint);
	BSON_APPEND_INT32(&hint, "$natural", 1);
	bson_append_document_end(&opts, &hint);
	cursor = mongoc_collection_find_with_opts(job->coll, &filter, &opts, NULL);

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
			    "result ok documents=%llu bson_bytes=%llu gzip_bytes=%llu",
			    (unsigned long long)documents, (unsigned long long)gz.bytes_in,
			    (unsigned long long)gz.bytes_out);
	msg_debug("exported %s.%s: %llu documents, %llu BSON bytes, %llu gzip bytes",
		  job->database, job->collection, (unsigned long long)documents,
		  (unsigned long long)gz.bytes_in, (unsigned long long)gz.bytes_out);
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
	bson_destroy(&filter);
	bson_destroy(&opts);
	gzip_out_free(&gz);
out_nogz:
	return r;
}

/* mongodump's <coll>.metadata.json: options (left out when empty), indexes,
 * uuid as 32 hex digits, collectionName, type; canonical Extended JSON. */
static int export_metadata(struct export_job *job)
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
	cursor = mongoc_collection_find_indexes_with_opts(job->coll, NULL);
	while (mongoc_cursor_next(cursor, &doc)) {
		char key[16];
		const char *keyp;
		bson_uint32_to_string(idx++, &keyp, key, sizeof(key));
		bson_append_document(&indexes, keyp, -1, doc);
	}
	bson_append_array_end(&meta, &indexes);
	if (mongoc_cursor_error(cursor, &error)) {
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
	BSON_APPEND_UTF8(&meta, "type", "collection");

	json = bson_as_canonical_extended_json(&meta, &json_len);
	if (json == NULL) {
		report_error(job, ERR_CLASS_LOCAL, "cannot encode the metadata of '%s'",
			     job->collection);
		goto out;
	}
	if (gzip_out_init(&gz, STDOUT_FILENO, job->level) != 0) {
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
			    "gzip_bytes=%llu", idx, json_len,
			    (unsigned long long)gz.bytes_out);
	r = CHILD_EXIT_OK;
out:
	if (gz_ready)
		gzip_out_free(&gz);
	bson_free(json);
	mongoc_cursor_destroy(cursor);
	bson_destroy(&meta);
	return r;
}

/* ---- checks: mongo-azure-backupd -t and --check-connect ---------------- */

static void print_problem(void *ctx, const char *message)
{
	(void)ctx;
	fprintf(stderr, "%s\n", message);
}

/* Where the URI came from, for "FILE:LINE: WHERE: message". */
static void uri_source(const struct mab_config *cfg, int *line, char *where, size_t len)
{
	*line = 0;
	if (*cfg->mongo_uri_file) {
		*line = config_key_line(cfg, "mongodb", "uri_file");
		snprintf(where, len, "uri_file %s", cfg->mongo_uri_file);
	} else if (*cfg->mongo_uri) {
		*line = config_key_line(cfg, "mongodb", "uri");
		snprintf(where, len, "uri");
	} else {
		snprintf(where, len, "%s", getenv("MONGODB_URI") ? "MONGODB_URI" :
			 "the default URI");
	}
}

/* libmongoc's parse errors quote no credentials; should one ever quote
 * the password (user:PASSWORD@), the message is not shown at all. */
static bool quotes_password(const char *uri, const char *message)
{
	const char *p = strstr(uri, "://"), *at = NULL;

	if (p == NULL)
		return false;
	p += 3;
	for (const char *q = p; *q != '\0' && *q != '/'; q++)
		if (*q == '@')
			at = q;
	const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
	if (colon == NULL || at - colon - 1 < 3)
		return false;
	char *password = strndup(colon + 1, (size_t)(at - colon - 1));
	/* Out of memory: assume the worst. */
	bool found = password == NULL || strstr(message, password) != NULL;
	if (password != NULL) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	return found;
}

/* The URI as every export will parse it: 0 with *out set, or
 * CHILD_EXIT_USAGE after printing FILE:LINE: why.  mongoc_init() first. */
static int parse_uri(const struct mab_config *cfg, mongoc_uri_t **out)
{
	char err[512], where[600];
	bson_error_t error;
	int line;
	char *text = config_mongo_uri(cfg, err, sizeof(err));

	uri_source(cfg, &line, where, sizeof(where));
	if (text == NULL) {
		fprintf(stderr, "%s:%d: %s\n", cfg->path, line, err);
		return CHILD_EXIT_USAGE;
	}
	*out = mongoc_uri_new_with_error(text, &error);
	if (*out == NULL)
		fprintf(stderr, "%s:%d: %s: %s\n", cfg->path, line, where,
			quotes_password(text, error.message) ?
			"not a MongoDB URI (libmongoc's message is not shown: it quotes the "
			"password)" : error.message);
	explicit_bzero(text, strlen(text));
	free(text);
	return *out == NULL ? CHILD_EXIT_USAGE : 0;
}

static void check_line(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void check_line(bool ok, const char *fmt, ...)
{
	va_list ap;

	fputs(ok ? "ok   mongodb: " : "FAIL mongodb: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* The collections = * case: what a run would back up.  -1 on error. */
static long count_collections(struct export_job *job, bson_error_t *error)
{
	mongoc_database_t *db = mongoc_client_get_database(job->client, job->database);
	bson_t opts = BSON_INITIALIZER;
	bson_t filter;
	mongoc_cursor_t *cursor;
	const bson_t *doc;
	long n = 0;

	BSON_APPEND_DOCUMENT_BEGIN(&opts, "filter", &filter);
	BSON_APPEND_UTF8(&filter, "type", "collection");
	bson_append_document_end(&opts, &filter);
	cursor = mongoc_database_find_collections_with_opts(db, &opts);
	while (mongoc_cursor_next(cursor, &doc)) {
		bson_iter_t it;
		if (bson_iter_init_find(&it, doc, "name") && BSON_ITER_HOLDS_UTF8(&it) &&
		    strncmp(bson_iter_utf8(&it, NULL), "system.", 7) != 0)
			n++;
	}
	if (mongoc_cursor_error(cursor, error))
		n = -1;
	mongoc_cursor_destroy(cursor);
	bson_destroy(&opts);
	mongoc_database_destroy(db);
	return n;
}

/* One configured collection: it exists, is a collection, and a find (what
 * the export runs) is allowed.  true when all holds. */
static bool check_collection(struct export_job *job, const char *name)
{
	const char *class = ERR_CLASS_MONGO;
	bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
	bson_error_t error;
	const bson_t *doc;
	char why[640];
	bool ok = false;

	job->collection = name;
	if (job->have_info) {
		bson_destroy(&job->info);
		job->have_info = false;
	}
	if (find_collection(job, &class, why, sizeof(why)) != 0) {
		check_line(false, "%s", why);
		goto out;
	}
	mongoc_collection_t *coll = mongoc_client_get_collection(job->client, job->database,
								  name);
	BSON_APPEND_INT64(&opts, "limit", 1);
	mongoc_cursor_t *cursor = mongoc_collection_find_with_opts(coll, &filter, &opts, NULL);
	mongoc_cursor_next(cursor, &doc);
	ok = !mongoc_cursor_error(cursor, &error);
	if (ok)
		check_line(true, "collection '%s' of database '%s' exists and can be read",
			   name, job->database);
	else
		check_line(false, "collection '%s' of database '%s' cannot be read: %s", name,
			   job->database, error.message);
	mongoc_cursor_destroy(cursor);
	mongoc_collection_destroy(coll);
out:
	bson_destroy(&filter);
	bson_destroy(&opts);
	return ok;
}

/* --check-connect: ping, then every collection a run would export. */
static int check_connect(struct export_job *job, const struct mab_config *cfg,
			 const mongoc_uri_t *uri)
{
	bson_t ping = BSON_INITIALIZER, reply;
	bson_error_t error;
	char hosts[256] = "";
	size_t used = 0;
	int failed = 0;

	/* Host names and ports only: never the user information. */
	for (const mongoc_host_list_t *h = mongoc_uri_get_hosts(uri); h != NULL; h = h->next) {
		int n = snprintf(hosts + used, sizeof(hosts) - used, "%s%s", used ? "," : "",
				 h->host_and_port);
		if (n < 0 || (size_t)n >= sizeof(hosts) - used)
			break;
		used += (size_t)n;
	}
	if (used == 0 && mongoc_uri_get_srv_hostname(uri) != NULL)
		snprintf(hosts, sizeof(hosts), "%s (SRV)", mongoc_uri_get_srv_hostname(uri));

	BSON_APPEND_INT32(&ping, "ping", 1);
	bool pinged = mongoc_client_command_simple(job->client, "admin", &ping, NULL, &reply,
						   &error);
	bson_destroy(&reply);
	bson_destroy(&ping);
	if (!pinged) {
		check_line(false, "ping %s: %s (the collections were not checked)", hosts,
			   error.message);
		return CHILD_EXIT_FAILED;
	}
	check_line(true, "ping %s", hosts);

	if (cfg->all_collections) {
		long n = count_collections(job, &error);
		if (n < 0)
			check_line(false, "listing the collections of database '%s' failed: %s",
				   job->database, error.message);
		else if (n == 0)
			check_line(false, "database '%s' holds no collections (collections = *)",
				   job->database);
		else
			check_line(true, "database '%s' holds %ld collection%s to back up",
				   job->database, n, n == 1 ? "" : "s");
		failed += n <= 0;
	}
	for (size_t i = 0; i < cfg->n_collections; i++)
		failed += !check_collection(job, cfg->collections[i]);
	return failed ? CHILD_EXIT_FAILED : CHILD_EXIT_OK;
}

/* --check-uri and --check-connect: exit 0 all passed, 1 a connection check
 * failed, 2 the configuration (or the URI) is wrong. */
static int run_checks(struct export_job *job, const struct mab_config *cfg, bool connect)
{
	mongoc_uri_t *uri = NULL;
	bson_error_t error;
	int r;

	mongoc_init();
	r = parse_uri(cfg, &uri);
	if (r != 0 || !connect)
		goto out;
	job->client = mongoc_client_new_from_uri_with_error(uri, &error);
	if (job->client == NULL) {
		check_line(false, "cannot create a client: %s", error.message);
		r = CHILD_EXIT_FAILED;
		goto out;
	}
	mongoc_client_set_error_api(job->client, MONGOC_ERROR_API_VERSION_2);
	mongoc_client_set_appname(job->client, "mongo-azure-backup");
	r = check_connect(job, cfg, uri);
out:
	if (job->have_info)
		bson_destroy(&job->info);
	job->have_info = false;
	if (job->client != NULL)
		mongoc_client_destroy(job->client);
	job->client = NULL;
	if (uri != NULL)
		mongoc_uri_destroy(uri);
	mongoc_cleanup();
	return r;
}

static void usage(FILE *fp)
{
	fprintf(fp,
		"Usage: export-collection [-c CONF] [--status-fd N] [--metadata]\n"
		"                         [--database DB] [--level N] COLLECTION\n"
		"       export-collection [-c CONF] [--database DB] --list\n"
		"       export-collection [-c CONF] [--database DB] --check-uri | --check-connect\n"
		"Writes COLLECTION as a gzip-compressed mongodump .bson stream to stdout\n"
		"(with --metadata: its metadata.json, gzip-compressed; with --list: the\n"
		"database's collection names, each ending in a NUL byte).  The MongoDB URI\n"
		"comes from the config ([mongodb] uri or uri_file) or MONGODB_URI.\n"
		"  --check-uri      only parse the URI (FILE:LINE: problems, exit 2)\n"
		"  --check-connect  ping the server and check every configured collection,\n"
		"                   one ok/FAIL line each (exit 0 all ok, 1 any failed)\n");
}

int main(int argc, char **argv)
{
	static const struct option long_opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "status-fd", required_argument, NULL, 's' },
		{ "metadata", no_argument, NULL, 'm' },
		{ "list", no_argument, NULL, 'L' },
		{ "database", required_argument, NULL, 'd' },
		{ "level", required_argument, NULL, 'l' },
		{ "check-uri", no_argument, NULL, 'U' },
		{ "check-connect", no_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct export_job job = { .status_fd = -1, .level = -1 };
	struct mab_config cfg;
	const char *conf_path = MAB_DEFAULT_CONFIG;
	bool metadata = false, list = false, check_uri = false, check_connect = false;
	char err[512];
	char *uri_text = NULL;
	mongoc_uri_t *uri = NULL;
	bson_error_t error;
	int opt, r = CHILD_EXIT_USAGE;

	/* Before anything can read a secret: no core file may hold it. */
	no_core_dumps();
	log_open("export-collection", LOG_TARGET_STDERR, LOG_INFO);
	while ((opt = getopt_long(argc, argv, "c:h", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'c': conf_path = optarg; break;
		case 's': job.status_fd = atoi(optarg); break;
		case 'm': metadata = true; break;
		case 'L': list = true; break;
		case 'd': job.database = optarg; break;
		case 'l': job.level = atoi(optarg); break;
		case 'U': check_uri = true; break;
		case 'K': check_connect = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return CHILD_EXIT_USAGE;
		}
	}
	bool checking = check_uri || check_connect;
	if (optind != argc - (list || checking ? 0 : 1)) {
		usage(stderr);
		return CHILD_EXIT_USAGE;
	}
	job.collection = list || checking ? "" : argv[optind];

	/* A closed stdout must be an EPIPE we can report, not a silent death. */
	signal(SIGPIPE, SIG_IGN);

	if (checking) {
		/* Checks speak to a person: each problem as FILE:LINE: on stderr. */
		if (config_load(conf_path, &cfg, print_problem, NULL) != 0) {
			config_free(&cfg);
			return CHILD_EXIT_USAGE;
		}
		if (job.database == NULL)
			job.database = cfg.database;
		r = run_checks(&job, &cfg, check_connect);
		config_free(&cfg);
		return r;
	}
	if (config_load(conf_path, &cfg, NULL, NULL) != 0) {
		msg_error("%s: invalid configuration; run mongo-azure-backupd -t -c %s",
			  conf_path, conf_path);
		if (job.status_fd >= 0)
			status_send(job.status_fd, "result error class=local message="
				    "invalid configuration %s", conf_path);
		config_free(&cfg);
		return CHILD_EXIT_USAGE;
	}
	log_set_level(cfg.log_level);
	if (job.database == NULL)
		job.database = cfg.database;
	if (job.level < 0)
		job.level = cfg.compression_level;
	if (job.level < 1 || job.level > 9) {
		msg_error("--level must be from 1 to 9");
		goto out_cfg;
	}
	uri_text = config_mongo_uri(&cfg, err, sizeof(err));
	if (uri_text == NULL) {
		report_error(&job, ERR_CLASS_LOCAL, "%s", err);
		goto out_cfg;
	}

	mongoc_init();
	uri = mongoc_uri_new_with_error(uri_text, &error);
	explicit_bzero(uri_text, strlen(uri_text));
	if (uri == NULL) {
		/* libmongoc's message quotes no part of the URI's credentials. */
		report_error(&job, ERR_CLASS_LOCAL, "invalid MongoDB URI: %s", error.message);
		goto out_mongoc;
	}
	job.client = mongoc_client_new_from_uri_with_error(uri, &error);
	if (job.client == NULL) {
		report_error(&job, ERR_CLASS_LOCAL, "cannot create a MongoDB client: %s",
			     error.message);
		goto out_mongoc;
	}
	mongoc_client_set_error_api(job.client, MONGOC_ERROR_API_VERSION_2);
	mongoc_client_set_appname(job.client, "mongo-azure-backup");
	job.coll = mongoc_client_get_collection(job.client, job.database, job.collection);

	r = CHILD_EXIT_FAILED;
	if (list) {
		r = list_collections(&job);
		goto out_mongoc;
	}
	if (lookup_collection(&job) != 0)
		goto out_mongoc;
	r = metadata ? export_metadata(&job) : export_documents(&job);

out_mongoc:
	if (job.have_info)
		bson_destroy(&job.info);
	if (job.coll != NULL)
		mongoc_collection_destroy(job.coll);
	if (job.client != NULL)
		mongoc_client_destroy(job.client);
	if (uri != NULL)
		mongoc_uri_destroy(uri);
	mongoc_cleanup();
out_cfg:
	free(uri_text);
	config_free(&cfg);
	return r;
}
