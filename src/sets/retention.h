/* retention.h - which backup sets retention deletes, decided without I/O.
 *
 * Owns three pure pieces, so every rule can be tested without storage:
 *   - the layout: which blob names are ours at all.  Only names whose folder
 *     matches the folder part of [azure] blob_path strictly ({date} a real
 *     calendar date, {time} a real HHMMSS; its last segment may carry a
 *     set's sequence number, ".2" and up, see path_template.h), and whose
 *     last segment is one a run writes there (a data blob of the file part
 *     of blob_path, its metadata blob, manifest.json, verification.json),
 *     belong to a set; everything else (a person's notes.txt) is never
 *     touched or counted;
 *   - grouping those names into sets (one rendered folder = one set) and
 *     reading a set's manifest.json text as complete / incomplete /
 *     unreadable;
 *   - the planner: keep or delete per set, with the reason.
 *
 * The rules (see DESIGN.md, "Blob layout" and peers.md item 2):
 *   - a set dated D is kept while D >= today - days (UTC dates);
 *   - the newest keep_min COMPLETE sets are kept however old;
 *   - a set without a manifest, or whose manifest is incomplete or
 *     unreadable, never counts as complete and goes by age alone;
 *   - given the current run's set, nothing at all is deleted unless that
 *     set is listed and complete.
 */
#ifndef MAB_RETENTION_H
#define MAB_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "path_template.h"

#define RETENTION_REASON_MAX 256
#define RETENTION_DATE_SIZE 11          /* "YYYY-MM-DD" + NUL */

/* The layout derived from blob_path. */
struct retention_layout {
	char folder[BLOB_NAME_MAX];     /* blob_path up to its last '/', inclusive */
	char prefix[BLOB_NAME_MAX];     /* fixed text before the first placeholder */
	char file[BLOB_NAME_MAX];       /* blob_path after its last '/' */
	bool has_time;                  /* the folder holds {time} */
};

/* A blob name (or a folder) that parsed under the layout. */
struct retention_name {
	char folder[BLOB_NAME_MAX];     /* "backups/2026-11-26/" */
	long day;                       /* days since 1970-01-01 */
	long seconds;                   /* {time} as seconds of the day; 0 without */
	unsigned seq;                   /* the folder's sequence number; 1 without */
	const char *base;               /* what follows the folder in the name */
};

enum retention_manifest {
	RETENTION_NO_MANIFEST,          /* none listed (e.g. the .NET worker's sets) */
	RETENTION_INCOMPLETE,           /* "complete": false */
	RETENTION_UNREADABLE,           /* not JSON, no boolean "complete", too big */
	RETENTION_COMPLETE,             /* "complete": true */
};

struct retention_set {
	char *folder;
	long day;
	long seconds;
	unsigned seq;
	char **blobs;                   /* full names, as listed */
	size_t n_blobs;
	size_t cap_blobs;
	bool has_manifest;              /* FOLDER/manifest.json was listed */
	uint64_t manifest_size;         /* its size from the listing */
	enum retention_manifest manifest;  /* filled by the caller after reading it */
	long long finished;             /* its "finished" (Unix time), -1 unknown */

	/* Set by retention_plan(). */
	bool remove;
	char reason[RETENTION_REASON_MAX];
};

struct retention_sets {
	struct retention_set *v;
	size_t n;
	size_t cap;
};

struct retention_policy {
	long today;                     /* days since 1970-01-01, UTC */
	int days;                       /* [retention] days, >= 0 */
	int keep_min;                   /* [retention] keep_min, >= 0 */
	const char *current_set;        /* the run's folder with '/', or NULL */
};

/* 0, or -1 with the reason in err when blob_path is not a usable layout. */
int retention_layout_init(struct retention_layout *layout, const char *blob_path,
			  char *err, size_t errlen);
/* true when name is a blob of a set under the layout. */
bool retention_parse_name(const struct retention_layout *layout, const char *name,
			  struct retention_name *out);
/* true when folder (trailing '/' optional) is a set folder under the layout;
 * out->folder gets it with its '/'. */
bool retention_parse_folder(const struct retention_layout *layout, const char *folder,
			    struct retention_name *out);

/* Strict YYYY-MM-DD (a real calendar date) to days since 1970-01-01. */
int retention_parse_date(const char *text, long *day);
void retention_format_date(long day, char out[RETENTION_DATE_SIZE]);
/* The UTC date of t as days since 1970-01-01. */
long retention_day_of(time_t t);

/* Adds a parsed blob to its set (creating the set); size is the blob's
 * size from the listing.  -1 on ENOMEM. */
int retention_sets_add(struct retention_sets *sets, const struct retention_name *name,
		       const char *blob, uint64_t size);
void retention_sets_free(struct retention_sets *sets);

/* What a manifest.json text says; why gets the reason when it is
 * RETENTION_UNREADABLE. */
enum retention_manifest retention_manifest_parse(const char *json, size_t len,
						 char *why, size_t whylen);
/* A manifest's "finished" time ("YYYY-MM-DDTHH:MM:SSZ") as Unix time; -1
 * when it has none or the text is not a manifest. */
long long retention_manifest_finished(const char *json, size_t len);
/* "complete", "manifest says incomplete", "no manifest", "manifest unreadable". */
const char *retention_manifest_text(enum retention_manifest m);

/* The newest complete set that stays (all of them with include_removed),
 * or NULL; call after retention_plan. */
const struct retention_set *retention_newest_complete(const struct retention_sets *sets,
						      bool include_removed);

/* Sorts the sets oldest first and decides each one.  Returns 0, or -1 when
 * the current set is missing or not complete: then every set is kept and
 * err says why. */
int retention_plan(struct retention_sets *sets, const struct retention_policy *policy,
		   char *err, size_t errlen);

#endif
