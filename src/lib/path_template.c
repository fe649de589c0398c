/* path_template.c - render and check [azure] blob_path. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "path_template.h"

#define DATA_SUFFIX ".bson.gz"
#define METADATA_SUFFIX ".metadata.json.gz"

static const char *const placeholders[] = { "{date}", "{time}", "{collection}", "{database}" };

int path_template_check(const char *tmpl, char *err, size_t errlen)
{
	const char *last_slash = strrchr(tmpl, '/');
	const char *coll = strstr(tmpl, "{collection}");
	const char *date = strstr(tmpl, "{date}");
	const char *db = strstr(tmpl, "{database}");
	size_t len = strlen(tmpl);

	if (len == 0 || len > 512) {
		snprintf(err, errlen, "must be 1 to 512 characters");
		return -1;
	}
	if (tmpl[0] == '/' || strstr(tmpl, "//") != NULL) {
		snprintf(err, errlen, "'%s' has an empty path segment", tmpl);
		return -1;
	}
	for (const char *p = tmpl; (p = strchr(p, '{')) != NULL; p++) {
		bool known = false;
		for (size_t i = 0; i < sizeof(placeholders) / sizeof(placeholders[0]); i++)
			if (strncmp(p, placeholders[i], strlen(placeholders[i])) == 0)
				known = true;
		if (!known) {
			snprintf(err, errlen, "unknown placeholder at '%.20s' (known: {date}, "
				 "{time}, {collection}, {database})", p);
			return -1;
		}
	}
	for (const char *seg = tmpl; seg != NULL; seg = strchr(seg, '/')) {
		if (*seg == '/')
			seg++;
		if (strncmp(seg, "..", 2) == 0 && (seg[2] == '/' || seg[2] == '\0')) {
			snprintf(err, errlen, "'..' is not allowed as a path segment");
			return -1;
		}
		if (seg[0] == '.' && (seg[1] == '/' || seg[1] == '\0')) {
			snprintf(err, errlen, "'.' is not allowed as a path segment");
			return -1;
		}
	}
	if (coll == NULL || strstr(coll + 1, "{collection}") != NULL ||
	    (last_slash != NULL && coll < last_slash)) {
		snprintf(err, errlen, "'%s' must contain {collection} once, in its last "
			 "segment", tmpl);
		return -1;
	}
	if (db != NULL && (strstr(db + 1, "{database}") != NULL ||
			   (last_slash != NULL && db < last_slash))) {
		snprintf(err, errlen, "'%s' may contain {database} once, in its last "
			 "segment (a set holds every database of a run)", tmpl);
		return -1;
	}
	if (date == NULL || last_slash == NULL || date > last_slash) {
		snprintf(err, errlen, "'%s' must contain {date} in a folder before the "
			 "last segment, so each day is one backup set", tmpl);
		return -1;
	}
	if (len < strlen(DATA_SUFFIX) ||
	    strcmp(tmpl + len - strlen(DATA_SUFFIX), DATA_SUFFIX) != 0) {
		snprintf(err, errlen, "'%s' must end in %s", tmpl, DATA_SUFFIX);
		return -1;
	}
	return 0;
}

int path_escape_collection(const char *collection, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)collection; *p; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-';
		if (n + (plain ? 1 : 3) >= outlen)
			return -1;
		if (plain) {
			out[n++] = (char)*p;
		} else {
			out[n++] = '%';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		}
	}
	if (n >= outlen)
		return -1;
	out[n] = '\0';
	return 0;
}

int path_template_render(const char *tmpl, const char *database, const char *collection,
			 time_t run_start, char *out, size_t outlen)
{
	char date[16], clock[16], escaped[BLOB_NAME_MAX], escaped_db[256];
	struct tm tm;
	size_t n = 0;

	if (gmtime_r(&run_start, &tm) == NULL)
		return -1;
	strftime(date, sizeof(date), "%Y-%m-%d", &tm);
	strftime(clock, sizeof(clock), "%H%M%S", &tm);
	if (path_escape_collection(collection, escaped, sizeof(escaped)) != 0 ||
	    path_escape_collection(database, escaped_db, sizeof(escaped_db)) != 0)
		return -1;

	for (const char *p = tmpl; *p != '\0';) {
		const char *piece = NULL;
		size_t skip = 1, piece_len = 1;
		if (strncmp(p, "{date}", 6) == 0) {
			piece = date; skip = 6;
		} else if (strncmp(p, "{time}", 6) == 0) {
			piece = clock; skip = 6;
		} else if (strncmp(p, "{collection}", 12) == 0) {
			piece = escaped; skip = 12;
		} else if (strncmp(p, "{database}", 10) == 0) {
			piece = escaped_db; skip = 10;
		} else {
			piece = p;
		}
		if (piece != p)
			piece_len = strlen(piece);
		if (n + piece_len >= outlen)
			return -1;
		memcpy(out + n, piece, piece_len);
		n += piece_len;
		p += skip;
	}
	out[n] = '\0';
	return 0;
}

int path_metadata_name(const char *blob_name, char *out, size_t outlen)
{
	size_t len = strlen(blob_name), slen = strlen(DATA_SUFFIX);

	if (len < slen || strcmp(blob_name + len - slen, DATA_SUFFIX) != 0)
		return -1;
	if (len - slen + strlen(METADATA_SUFFIX) >= outlen)
		return -1;
	memcpy(out, blob_name, len - slen);
	strcpy(out + len - slen, METADATA_SUFFIX);
	return 0;
}

int path_set_folder(const char *blob_name, char *out, size_t outlen)
{
	const char *slash = strrchr(blob_name, '/');
	size_t len;

	if (slash == NULL)
		return -1;
	len = (size_t)(slash - blob_name) + 1;
	if (len >= outlen)
		return -1;
	memcpy(out, blob_name, len);
	out[len] = '\0';
	return 0;
}

int path_set_sequence(const char *name, unsigned seq, char *out, size_t outlen)
{
	const char *slash = strrchr(name, '/');
	int n;

	if (seq < 2) {
		n = snprintf(out, outlen, "%s", name);
		return n < 0 || (size_t)n >= outlen ? -1 : 0;
	}
	if (slash == NULL)
		return -1;
	n = snprintf(out, outlen, "%.*s.%u%s", (int)(slash - name), name, seq, slash);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}
