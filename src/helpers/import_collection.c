/* import_collection.c - import-collection: a gzip'd mongodump .bson stream
 * on stdin into one MongoDB collection.
 *
 *   MONGODB_URI=... import-collection --database DB [--status-fd N]
 *       [--metadata-fd N] [--expect documents=N,bson_bytes=N,gzip_bytes=N]
 *       [--drop] [--dry-run] [--no-indexes] COLLECTION
 *
 * The restore side of export-collection, and like it the only kind of
 * program here that links libmongoc.  The target URI comes from the
 * environment (MONGODB_URI), never from argv, and never from the
 * configuration: the configured [mongodb] uri is the backup's source, and
 * a restore must name its target on purpose.
 *
 * Before writing it looks at the target: a collection that holds documents
 * is refused unless --drop (which drops it first).  A missing collection
 * is created with the metadata's options.  Documents are checked
 * (bson_stream.h) and inserted as they are, unordered, in batches of at
 * most IMPORT_BATCH_DOCS / IMPORT_BATCH_BYTES; the first batch the server
 * refuses part of ends the import.  Then the metadata's indexes are built
 * (all but _id_).  The metadata comes on --metadata-fd as plain JSON.
 * --expect gives the manifest's counts for the blob: the stream is stopped
 * the moment it goes past any of them (a decompression bomb inserts
 * nothing beyond what the manifest promised, and usually nothing at all,
 * since a batch not yet sent is never sent after a failure).
 * Progress and one result record go to --status-fd (import_status.h),
 * saying exactly what was written.  Exit: 0 done, 1 failed, 2 usage,
 * 3 stopped by a signal.
 *
 * This file owns the command line and the start-up (metadata, connection);
 * the writing is in import_target.c (import_target.h).
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
#include "mongo_log.h"
#include "metadata_json.h"
#include "no_core.h"
#include "import_target.h"

static int read_metadata(struct import *im, int fd)
{
	char *buf = NULL, why[512];
	size_t len = 0, cap = 0;
	int n_indexes, r = -1;

	for (;;) {
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 65536;
			if (cap > METADATA_JSON_MAX + 65536) {
				import_fail(im, IMPORT_CLASS_META,
					    "the metadata is larger than %u bytes",
					    METADATA_JSON_MAX);
				goto out;
			}
			char *p = realloc(buf, cap + 1);
			if (p == NULL) {
				import_fail(im, ERR_CLASS_LOCAL,
					    "out of memory reading the metadata");
				goto out;
			}
			buf = p;
		}
		ssize_t got = read(fd, buf + len, cap - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			import_fail(im, ERR_CLASS_LOCAL, "cannot read the metadata from fd %d: %s",
				    fd,
				    strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	buf[len] = '\0';
	im->meta = metadata_parse(buf, len, &n_indexes, why, sizeof(why));
	if (im->meta == NULL) {
		import_fail(im, IMPORT_CLASS_META, "the metadata is unusable: %s", why);
		goto out;
	}
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

static int connect_target(struct import *im)
{
	char *uri_text = getenv("MONGODB_URI") ? strdup(getenv("MONGODB_URI")) : NULL;
	mongoc_uri_t *uri;
	bson_error_t error;

	/* Nothing we start could need it, and it should not linger. */
	unsetenv("MONGODB_URI");
	if (uri_text == NULL) {
		import_fail(im, ERR_CLASS_LOCAL, "no target: set MONGODB_URI in the environment");
		return -1;
	}
	uri = mongoc_uri_new_with_error(uri_text, &error);
	explicit_bzero(uri_text, strlen(uri_text));
	free(uri_text);
	if (uri == NULL) {
		import_fail(im, ERR_CLASS_LOCAL, "invalid MongoDB URI: %s", error.message);
		return -1;
	}
	im->client = mongoc_client_new_from_uri_with_error(uri, &error);
	mongoc_uri_destroy(uri);
	if (im->client == NULL) {
		import_fail(im, ERR_CLASS_LOCAL, "cannot create a MongoDB client: %s",
			    error.message);
		return -1;
	}
	mongoc_client_set_error_api(im->client, MONGOC_ERROR_API_VERSION_2);
	mongoc_client_set_appname(im->client, "mongo-azure-backup-restore");
	im->db = mongoc_client_get_database(im->client, im->database);
	im->coll = mongoc_client_get_collection(im->client, im->database, im->collection);
	if (im->kind == IMPORT_TIMESERIES) {
		/* mongorestore's way: the buckets go in as they were. */
		char buckets[600];
		snprintf(buckets, sizeof(buckets), "system.buckets.%s", im->collection);
		im->data_coll = mongoc_client_get_collection(im->client, im->database, buckets);
	} else if (im->kind == IMPORT_USERS || im->kind == IMPORT_ROLES) {
		im->data_coll = mongoc_client_get_collection(
			im->client, "admin", im->kind == IMPORT_USERS ? IMPORT_TEMP_USERS
								   : IMPORT_TEMP_ROLES);
	} else {
		im->data_coll = mongoc_collection_copy(im->coll);
	}
	return 0;
}

static void usage(FILE *fp)
{
	fprintf(fp,
		"Usage: import-collection --database DB [--status-fd N] [--metadata-fd N]\n"
		"                         [--expect documents=N,bson_bytes=N,gzip_bytes=N]\n"
		"                         [--drop] [--dry-run] [--no-indexes]\n"
		"                         [--kind collection|view|timeseries|users|roles]\n"
		"                         COLLECTION\n"
		"Inserts the gzip-compressed mongodump .bson stream on stdin into DB.COLLECTION\n"
		"of the MongoDB named by the MONGODB_URI environment variable, then builds the\n"
		"indexes of the metadata.json read from --metadata-fd.  A collection that holds\n"
		"documents is refused unless --drop.  --dry-run only reports the target.\n"
		"--expect: the backup's counts; a stream that goes past one is stopped there.\n"
		"--kind: a view is created from the metadata alone (no stream); a time-series\n"
		"collection is created, then its buckets inserted into system.buckets.COLL;\n"
		"users or roles ($admin.system.users / $admin.system.roles) go through\n"
		"admin.tempusers / admin.temproles and _mergeAuthzCollections, for DB only.\n");
}

/* "documents=N,bson_bytes=N,gzip_bytes=N", any of them, in any order; a
 * negative N (the manifest did not record it) sets no limit.  0, or -1. */
static int parse_expect(struct import *im, const char *text)
{
	const char *p = text;

	while (*p != '\0') {
		size_t key = strcspn(p, "=,");
		int64_t *to;
		char *end;
		long long v;

		if (key == 9 && strncmp(p, "documents", 9) == 0)
			to = &im->expect_documents;
		else if (key == 10 && strncmp(p, "bson_bytes", 10) == 0)
			to = &im->expect_bson_bytes;
		else if (key == 10 && strncmp(p, "gzip_bytes", 10) == 0)
			to = &im->expect_gzip_bytes;
		else
			return -1;
		if (p[key] != '=')
			return -1;
		errno = 0;
		v = strtoll(p + key + 1, &end, 10);
		if (errno != 0 || end == p + key + 1 || (*end != ',' && *end != '\0'))
			return -1;
		*to = v < 0 ? -1 : v;
		p = *end == ',' ? end + 1 : end;
	}
	return 0;
}

static int parse_fd(const char *text)
{
	char *end;
	long v = strtol(text, &end, 10);

	return (*text == '\0' || *end != '\0' || v < 0 || v > 65535) ? -1 : (int)v;
}

int main(int argc, char **argv)
{
	static const struct option long_opts[] = {
		{ "database", required_argument, NULL, 'd' },
		{ "status-fd", required_argument, NULL, 's' },
		{ "metadata-fd", required_argument, NULL, 'm' },
		{ "expect", required_argument, NULL, 'e' },
		{ "drop", no_argument, NULL, 'D' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "no-indexes", no_argument, NULL, 'I' },
		{ "kind", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct import im = { .status_fd = -1, .expect_documents = -1, .expect_bson_bytes = -1,
			     .expect_gzip_bytes = -1 };
	char sha256[BSON_STREAM_SHA256_HEX] = "", md5[BSON_STREAM_MD5_B64] = "";
	struct sigaction sa;
	int metadata_fd = -1, opt, r = CHILD_EXIT_USAGE;
	bool mongoc_ready = false;

	mongo_forget_counters_file();
	/* Before anything can read a secret: no core file may hold it. */
	no_core_dumps();
	log_open("import-collection", LOG_TARGET_STDERR, LOG_INFO);
	while ((opt = getopt_long(argc, argv, "d:h", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'd': im.database = optarg; break;
		case 's':
			if ((im.status_fd = parse_fd(optarg)) < 0) {
				msg_error("--status-fd '%s' is not a file descriptor", optarg);
				return CHILD_EXIT_USAGE;
			}
			break;
		case 'm':
			if ((metadata_fd = parse_fd(optarg)) < 0) {
				msg_error("--metadata-fd '%s' is not a file descriptor", optarg);
				return CHILD_EXIT_USAGE;
			}
			break;
		case 'e':
			if (parse_expect(&im, optarg) != 0) {
				msg_error("--expect '%s' is not documents=N,bson_bytes=N,gzip_bytes=N",
					  optarg);
				return CHILD_EXIT_USAGE;
			}
			break;
		case 'D': im.drop = true; break;
		case 'n': im.dry_run = true; break;
		case 'I': im.no_indexes = true; break;
		case 'k': {
			static const char *const kinds[] = { "collection", "view", "timeseries",
							     "users", "roles" };
			int k = -1;
			for (int i = 0; i < 5; i++)
				if (strcmp(optarg, kinds[i]) == 0)
					k = i;
			if (k < 0) {
				msg_error("--kind '%s' is not collection, view, timeseries, users or "
					  "roles", optarg);
				return CHILD_EXIT_USAGE;
			}
			im.kind = (enum import_kind)k;
			break;
		}
		case 'h': usage(stdout); return CHILD_EXIT_OK;
		case 'V':
			printf("import-collection (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
			return CHILD_EXIT_OK;
		default: usage(stderr); return CHILD_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc || im.database == NULL || *im.database == '\0' ||
	    *argv[optind] == '\0') {
		usage(stderr);
		return CHILD_EXIT_USAGE;
	}
	im.collection = argv[optind];
	im.indexes = 0;

	/* A closed status socket or stdin writer must be an error we report,
	 * and a signal must end the import between batches, not inside one. */
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
		msg_error("cannot install signal handlers: %s", strerror(errno));
		return CHILD_EXIT_FAILED;
	}

	bson_init(&im.insert_opts);
	/* The documents are checked already, structure only; libmongoc's own
	 * check would refuse keys with '.' or '$' that mongod stores. */
	BSON_APPEND_BOOL(&im.insert_opts, "validate", false);
	if (bson_stream_init(&im.bs, true, add_document, &im) != 0) {
		import_fail(&im, ERR_CLASS_LOCAL, "out of memory");
		r = CHILD_EXIT_FAILED;
		goto out;
	}
	im.bs_ready = true;
	r = CHILD_EXIT_FAILED;
	if (metadata_fd >= 0 && read_metadata(&im, metadata_fd) != 0)
		goto out;
	mongo_log_to_ours();
	mongoc_init();
	mongoc_ready = true;
	bool auth = im.kind == IMPORT_USERS || im.kind == IMPORT_ROLES;
	if (connect_target(&im) != 0 || (auth ? prepare_auth(&im) : prepare_target(&im)) != 0)
		goto out;
	if (im.dry_run) {
		r = CHILD_EXIT_OK;
		goto out;
	}
	/* A view is its definition: created above, nothing to read. */
	if (im.kind != IMPORT_VIEW && import_documents(&im, sha256, md5) != 0)
		goto out;
	if (auth && merge_auth(&im) != 0)
		goto out;
	if (im.kind != IMPORT_VIEW && !auth && im.meta != NULL && !im.no_indexes &&
	    create_indexes(&im) != 0)
		goto out;
	r = CHILD_EXIT_OK;
out:
	if (r == CHILD_EXIT_FAILED && im.err_class != NULL &&
	    strcmp(im.err_class, ERR_CLASS_ABORTED) == 0)
		r = CHILD_EXIT_PEER_GONE;
	if (r != CHILD_EXIT_USAGE)
		import_report(&im, sha256, md5);
	if (im.bulk != NULL)
		mongoc_bulk_operation_destroy(im.bulk);
	if (im.coll != NULL)
		mongoc_collection_destroy(im.coll);
	if (im.data_coll != NULL)
		mongoc_collection_destroy(im.data_coll);
	if (im.db != NULL)
		mongoc_database_destroy(im.db);
	if (im.client != NULL)
		mongoc_client_destroy(im.client);
	if (mongoc_ready)
		mongoc_cleanup();
	if (im.meta != NULL)
		bson_destroy(im.meta);
	if (im.bs_ready)
		bson_stream_free(&im.bs);
	bson_destroy(&im.insert_opts);
	return r;
}
