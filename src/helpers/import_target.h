/* import_target.h - what import-collection's two files share: the
 * import's state (struct import), and what import_target.c does for
 * import_collection.c (main, options, start-up) to call.
 */
#ifndef MAB_IMPORT_TARGET_H
#define MAB_IMPORT_TARGET_H

#include <mongoc/mongoc.h>
#include <stdbool.h>
#include <stdint.h>

#include "bson_stream.h"

/* What is restored, as export-collection backed it up. */
enum import_kind { IMPORT_COLLECTION, IMPORT_VIEW, IMPORT_TIMESERIES, IMPORT_USERS,
		   IMPORT_ROLES };

/* Where users and roles wait for _mergeAuthzCollections (mongorestore's
 * names). */
#define IMPORT_TEMP_USERS "tempusers"
#define IMPORT_TEMP_ROLES "temproles"

struct import {
	const char *database, *collection;
	enum import_kind kind;
	int status_fd;
	int64_t expect_documents, expect_bson_bytes, expect_gzip_bytes;   /* -1: none */
	bool drop, dry_run, no_indexes;
	bson_t *meta;
	mongoc_client_t *client;
	mongoc_database_t *db;
	mongoc_collection_t *coll;
	/* where the documents go: coll, a time-series collection's buckets,
	 * or admin's temporary users or roles collection */
	mongoc_collection_t *data_coll;
	mongoc_bulk_operation_t *bulk;
	bson_t insert_opts;
	uint32_t batch_docs;
	size_t batch_bytes;
	uint64_t inserted, failed, uncertain;
	int indexes;
	bool dropped;
	struct bson_stream bs;
	bool bs_ready;
	long long next_progress;
	const char *err_class;        /* the first failure, NULL while none */
	char error[900];
};

/* import_target.c */
int add_document(void *ctx, const uint8_t *data, uint32_t len);
int create_indexes(struct import *im);
void import_fail(struct import *im, const char *class, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int import_documents(struct import *im, char *sha256, char *md5);
void on_signal(int sig);
int prepare_target(struct import *im);
/* users and roles: the temporary collection emptied first, then merged
 * into admin.system.users / system.roles for im->database only. */
int prepare_auth(struct import *im);
int merge_auth(struct import *im);
void import_report(struct import *im, const char *sha256, const char *md5);

#endif
