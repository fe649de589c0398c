/* ctl_restore_item.h - the restore plan shared by `mongo-azure-backupctl
 * restore`'s parts, and what they do alike to one item of it
 * (ctl_restore_item.c): ctl_restore.c checks the set and the request and
 * prints the report, ctl_restore_mongo.c (ctl_restore_mongo.h) runs
 * download-blob | import-collection per collection, ctl_restore_dir.c
 * (ctl_restore_dir.h) writes mongodump's directory layout.  The three call
 * down to this file, never to each other upwards.
 *
 * What restore holds stays bounded whatever the manifest says: a
 * collection's metadata is read (at most METADATA_JSON_MAX inflated) when
 * it is checked and again when that collection is restored, and let go in
 * between, so N entries naming one huge metadata blob cost one at a time;
 * documents stream through with the manifest's counts as limits
 * (bson_stream_limit).
 */
#ifndef MAB_CTL_RESTORE_ITEM_H
#define MAB_CTL_RESTORE_ITEM_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backup_set.h"
#include "ctl_common.h"

struct restore_item {
	const struct set_coll *c;
	const char *to_db;            /* its database in the target */
	bool with_metadata;           /* restored with its metadata (not --no-indexes) */
	char *metadata;               /* plain metadata.json, only while it is used */
	size_t metadata_len;
	int n_indexes;                /* in the metadata, besides _id_ */

	/* The target before anything was written (Mongo targets). */
	bool target_checked;
	bool target_exists;
	uint64_t target_documents;

	/* What happened: result is NULL until tried, then "ok", "failed",
	 * "refused" or "interrupted". */
	const char *result;
	bool started;
	uint64_t documents;           /* read from the backup */
	uint64_t inserted, failed, uncertain;
	int indexes;                  /* created */
	bool dropped;
	uint64_t bson_bytes;          /* --to-dir: bytes written */
	char path[PATH_MAX];          /* --to-dir: the .bson file */
	char problem[1536];
};

struct restore {
	struct ctl_store *st;
	const struct backup_set *set;
	char *to_uri;                 /* owned; scrubbed when freed */
	const char *to_dir;
	const char *to_db;            /* the database of the items being worked on */
	const char *map_to_db;        /* --to-db */
	const char *only_db;          /* --db */
	bool drop, dry_run, no_indexes, users_and_roles;
	struct restore_item *items;
	size_t n;
	int tty;                      /* terminal width, 0: not a terminal */
	bool line_drawn;              /* a progress line is on screen */
};

/* Set by SIGINT/SIGTERM while a restore runs. */
extern volatile sig_atomic_t restore_interrupted;

/* Reads the item's metadata blob into it->metadata: gunzipped (at most
 * METADATA_JSON_MAX) and checked; n_indexes set.  0, or -1 with the reason
 * added to it->problem.  restore_free_metadata lets it go. */
int restore_load_metadata(struct restore *rs, struct restore_item *it);
void restore_free_metadata(struct restore_item *it);

/* Progress and verdict lines. */
void restore_progress(struct restore *rs, const struct restore_item *it, uint64_t documents,
		      uint64_t gzip_bytes, double seconds);
void restore_clear_line(struct restore *rs);
void restore_print_item(struct restore *rs, const struct restore_item *it);
/* Compares what a stream held with the manifest; adds findings to
 * it->problem.  true when everything matches. */
bool restore_matches_manifest(struct restore_item *it, uint64_t documents,
			      uint64_t bson_bytes, uint64_t gzip_bytes, const char *sha256,
			      const char *md5);
void restore_problem(struct restore_item *it, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
