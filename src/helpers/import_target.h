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

struct import {
	const char *database, *collection;
	int status_fd;
	int64_t expect_documents, expect_bson_bytes, expect_gzip_bytes;   /* -1: none */
	bool drop, dry_run, no_indexes;
	bson_t *meta;
	mongoc_client_t *client;
	mongoc_database_t *db;
	mongoc_collection_t *coll;
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
void import_report(struct import *im, const char *sha256, const char *md5);

#endif
