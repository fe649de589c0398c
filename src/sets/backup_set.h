/* backup_set.h - the backup sets in a container, as list, verify and
 * restore see them.
 *
 * A set is a folder holding a manifest.json (manifest.h); wherever
 * [azure] blob_path put it, a scan of the whole container finds it, so sets
 * written under an older blob_path are still found.  A set may also hold a
 * verification.json (set_verify.h) saying when it was last verified.
 * Everything here only reads, except nothing: writers live elsewhere.
 *
 * A manifest is data from storage, and whoever can write to the container
 * can write it: it is checked as hostile input before anything acts on it.
 * Every blob it names must lie inside its set's folder with no empty, "."
 * or ".." segment (a server or client that resolves dot segments would
 * otherwise read another folder or container with our credentials), and
 * its database and collection names must be names MongoDB accepts (they
 * become directories and files under restore --to-dir).  A manifest that
 * breaks any of that is not usable at all: ours never does.
 */
#ifndef MAB_BACKUP_SET_H
#define MAB_BACKUP_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "azure_blob.h"

#define SET_MANIFEST "manifest.json"
#define SET_VERIFICATION "verification.json"
/* Manifests and verification records are a few KB; anything near this is
 * not one of ours. */
#define SET_JSON_MAX (16u << 20)

struct set_coll {
	char *database;           /* its own, or (format 1) the set's */
	char *name;
	char *type;               /* collection, view, timeseries, users, roles */
	char *label;              /* for people: name, or database.name in a set of
				   * several databases */
	char *result;             /* "ok", "failed", "pending" (the run's word) */
	char *blob;               /* full blob name; NULL for a view */
	char *metadata_blob;      /* full blob name, NULL when not recorded */
	char *sha256;             /* hex, NULL when not recorded */
	char *md5;                /* base64, NULL when not recorded */
	char *error;              /* why the backup of it failed */
	int64_t documents;        /* -1: not recorded */
	int64_t bson_bytes;
	int64_t gzip_bytes;
};

struct backup_set {
	char *folder;             /* "backups/2026-11-27/"; "" for the root */
	bool has_verification;    /* a verification.json was listed */
	time_t manifest_modified; /* from the listing, -1 if unknown */

	bool loaded;              /* manifest read and understood */
	char *load_error;         /* else why not */
	bool complete;
	char *database;           /* the one database, or NULL when several */
	char *run_id, *started, *finished, *version;
	struct set_coll *colls;
	size_t n_colls;

	/* From verification.json, when it is about this manifest's run (a
	 * record left from an earlier run into the same folder is ignored). */
	char *verified_at;
	char *verify_result;
};

struct set_list {
	struct backup_set *sets;
	size_t n;
};

/* Lists the container and collects every folder with a manifest.json.
 * 0, or -1 with err. */
int sets_scan(struct azure_client *c, struct set_list *out, struct azure_error *err);
void sets_free(struct set_list *l);

/* Reads the set's manifest (and verification record, when listed).  0 when
 * loaded; -1 with s->load_error set (an unreadable or missing manifest is
 * a finding about the set, not a failure of the caller). */
int set_load(struct azure_client *c, struct backup_set *s);
/* set_load on every set, then newest first (manifest start time, else the
 * manifest blob's date, then folder name). */
void sets_load_all(struct azure_client *c, struct set_list *l);
/* Newest first, as sets_load_all leaves them; sets of one start second by
 * their folders' sequence numbers (DATE.10/ before DATE.9/ before DATE/). */
void sets_sort(struct set_list *l);

/* Parses manifest.json text into s, and checks every name in it (below).
 * 0, or -1 with a reason in err. */
int set_parse_manifest(struct backup_set *s, const char *json, size_t len, char *err,
		       size_t errlen);

/* The entries of a database's users and roles (mongodump's names). */
#define SET_AUTH_USERS "$admin.system.users"
#define SET_AUTH_ROLES "$admin.system.roles"

/* MongoDB's limit on "database.collection", in bytes. */
#define SET_NAMESPACE_MAX 255

/* The checks the manifest's names get; each true, or false with a reason
 * in why.
 *
 * A database name as MongoDB takes it on any platform (what [mongodb]
 * database is held to): not empty, under 64 bytes, none of / \ . space
 * " $ * < > : | ? and, because it becomes a directory, no control
 * character. */
bool set_valid_database(const char *name, char *why, size_t len);
/* A collection name as MongoDB takes it (not empty, no '$', not a
 * "system." collection but system.js and admin's, which mongodump keeps)
 * whose namespace in database db fits SET_NAMESPACE_MAX. */
bool set_valid_collection(const char *db, const char *name, char *why, size_t len);
/* A blob name inside folder ("" is the container's root): a valid blob
 * name below the folder whose every segment is neither empty nor "." or
 * "..". */
bool set_blob_in_folder(const char *folder, const char *blob, char *why, size_t len);
/* A set folder as found in a listing: "" or segments ending in '/', none
 * empty, "." or "..". */
bool set_valid_folder(const char *folder);

/* Finds the set an operator named: "latest" (newest; with only_complete,
 * newest complete), a folder ("backups/2026-11-27/", slash optional) or
 * whole segments of one ("2026-11-27"), which must then name only one set.
 * The index, or -1 with a message (naming the candidates when several). */
long sets_resolve(const struct set_list *l, const char *name, bool only_complete,
		  char *err, size_t errlen);

/* Number of collections the manifest records as "ok". */
size_t set_count_ok(const struct backup_set *s);

/* Downloads a small blob whole (at most max bytes) into a malloc'd,
 * NUL-terminated buffer.  0, or -1 with err (ERR_CLASS_NOTFOUND when it
 * does not exist). */
int blob_fetch_small(struct azure_client *c, const char *blob, size_t max, char **data,
		     size_t *len, struct azure_error *err);

/* "2026-11-27T03:00:00Z" -> time_t; -1 when it is not that shape. */
time_t set_parse_utc(const char *iso);

#endif
