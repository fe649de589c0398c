/* set_names.c - the names a manifest may hold, checked as hostile input:
 * set folders, database and collection names by MongoDB's rules, and data
 * blobs kept inside their own set's folder.
 */
#include "config.h"

#include <bson/bson.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup_set.h"
#include "child_status.h"
#include "backup_set_int.h"

/* ---- names in a manifest ----------------------------------------------- */

/* A name from a manifest as an error message shows it: printable ASCII,
 * the rest as \xNN, cut short with "..." (messages go to terminals and
 * into JSON, and a cut must not split a UTF-8 sequence). */
const char *set_show_name(const char *name, char *buf, size_t len)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (n + 8 >= len) {
			memcpy(buf + n, "...", 4);
			return buf;
		}
		if (*p >= 0x20 && *p < 0x7f && *p != '\\')
			buf[n++] = (char)*p;
		else
			n += (size_t)snprintf(buf + n, len - n, "\\x%02x", *p);
	}
	buf[n] = '\0';
	return buf;
}

/* Why a segment of a path-like name is unusable, or NULL. */
static const char *bad_segment(const char *seg, size_t n)
{
	if (n == 0)
		return "an empty segment";
	if (n == 1 && seg[0] == '.')
		return "a '.' segment";
	if (n == 2 && seg[0] == '.' && seg[1] == '.')
		return "a '..' segment";
	return NULL;
}

/* Every '/'-separated segment of name[0..n) usable. */
static const char *bad_segments(const char *name, size_t n)
{
	size_t start = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && name[i] != '/')
			continue;
		const char *why = bad_segment(name + start, i - start);
		if (why != NULL)
			return why;
		start = i + 1;
	}
	return NULL;
}

bool set_valid_folder(const char *folder)
{
	size_t n = strlen(folder);

	if (n == 0)
		return true;
	return folder[n - 1] == '/' && bad_segments(folder, n - 1) == NULL;
}

bool set_valid_database(const char *name, char *why, size_t len)
{
	size_t n = strlen(name);

	if (n == 0) {
		snprintf(why, len, "the database name is empty");
		return false;
	}
	if (n >= 64) {
		snprintf(why, len, "the database name is %zu bytes long; MongoDB takes fewer than "
			 "64", n);
		return false;
	}
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			snprintf(why, len, "the database name holds a control character (0x%02x)",
				 *p);
			return false;
		}
		/* Windows' list too: [mongodb] database is held to it, so no
		 * backup of ours has another. */
		if (strchr("/\\. \"$*<>:|?", *p) != NULL) {
			snprintf(why, len, "the database name holds '%c', which MongoDB does not "
				 "allow in one", *p);
			return false;
		}
	}
	return true;
}

bool set_valid_collection(const char *db, const char *name, char *why, size_t len)
{
	size_t n = strlen(name);

	if (n == 0) {
		snprintf(why, len, "the collection name is empty");
		return false;
	}
	/* mongodump's rule (config_collection_skipped): system.js is data,
	 * and admin's system collections are backed up when admin is. */
	if (strncmp(name, "system.", 7) == 0 && strcmp(name, "system.js") != 0 &&
	    strcmp(db, "admin") != 0) {
		snprintf(why, len, "\"system.\" collections are MongoDB's own and never backed up");
		return false;
	}
	if (strchr(name, '$') != NULL) {
		snprintf(why, len, "the collection name holds '$', which MongoDB reserves");
		return false;
	}
	if (strlen(db) + 1 + n > SET_NAMESPACE_MAX) {
		snprintf(why, len, "the collection name is %zu bytes long: with database '%s' "
			 "that is more than MongoDB's %d-byte namespace", n, db, SET_NAMESPACE_MAX);
		return false;
	}
	return true;
}

bool set_blob_in_folder(const char *folder, const char *blob, char *why, size_t len)
{
	size_t f = strlen(folder), n = strlen(blob);
	const char *bad;

	if (!azure_valid_blob_name(blob)) {
		snprintf(why, len, "it is not a valid blob name");
		return false;
	}
	if (strncmp(blob, folder, f) != 0 || n == f) {
		snprintf(why, len, "it is not inside the set's folder %s", f ? folder : "(the root)");
		return false;
	}
	if ((bad = bad_segments(blob, n)) != NULL) {
		snprintf(why, len, "it has %s", bad);
		return false;
	}
	return true;
}
