/* path_template.h - the blob layout: [azure] blob_path rendered per run and
 * collection, and the names derived from it (metadata blob, set folder).
 *
 * Placeholders: {date} (YYYY-MM-DD, UTC start of the run), {time} (HHMMSS
 * UTC), {database}, {collection}.  {collection} (and {database}, when
 * there) must be in the last segment and {date} in an earlier one, so one
 * folder is one backup set.
 *
 * Every run has a set of its own.  When the rendered folder already holds
 * one (a second run on the same day), the run's folder gets a sequence
 * number: backups/2026-11-27/ is the day's first set, backups/2026-11-27.2/
 * its second, and so on (PATH_SET_SEQ_MAX at most).
 */
#ifndef MAB_PATH_TEMPLATE_H
#define MAB_PATH_TEMPLATE_H

#include <stddef.h>
#include <time.h>

#define BLOB_NAME_MAX 1024

/* 0 if usable, else -1 with the reason in err. */
int path_template_check(const char *tmpl, char *err, size_t errlen);
/* Renders the data blob name; database and collection names are
 * percent-escaped outside [A-Za-z0-9._-] so that '/' or odd bytes never
 * create folders.  -1 when the result does not fit. */
int path_template_render(const char *tmpl, const char *database, const char *collection,
			 time_t run_start, char *out, size_t outlen);
/* "x/tralivali_users.bson.gz" -> "x/tralivali_users.metadata.json.gz". */
int path_metadata_name(const char *blob_name, char *out, size_t outlen);
/* The set folder of a rendered blob name, with its trailing '/'. */
int path_set_folder(const char *blob_name, char *out, size_t outlen);
#define PATH_SET_SEQ_MAX 9999

/* name (a blob in a set folder, or the folder itself with its '/') with the
 * folder's last segment numbered: "b/2026-11-27/x" and 2 ->
 * "b/2026-11-27.2/x".  seq 0 or 1 copies name.  -1 when it does not fit. */
int path_set_sequence(const char *name, unsigned seq, char *out, size_t outlen);
/* Escapes one collection name as path_template_render does. */
int path_escape_collection(const char *collection, char *out, size_t outlen);

#endif
