/* metadata_json.c - parse and check a mongodump metadata.json. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "metadata_json.h"

static bool index_ok(bson_iter_t *arr)
{
	bson_iter_t idx;

	return BSON_ITER_HOLDS_DOCUMENT(arr) &&
	       bson_iter_recurse(arr, &idx) && bson_iter_find(&idx, "key") &&
	       BSON_ITER_HOLDS_DOCUMENT(&idx) &&
	       bson_iter_recurse(arr, &idx) && bson_iter_find(&idx, "name") &&
	       BSON_ITER_HOLDS_UTF8(&idx);
}

bson_t *metadata_parse(const char *json, size_t len, int *n_indexes, char *err,
		       size_t errlen)
{
	bson_error_t e;
	bson_iter_t it, arr;
	bson_t *doc;
	int n = 0;

	/* libbson would take a top-level array as a document too. */
	if (json[strspn(json, " \t\r\n")] != '{') {
		snprintf(err, errlen, "not a JSON object");
		return NULL;
	}
	doc = bson_new_from_json((const uint8_t *)json, (ssize_t)len, &e);
	if (doc == NULL) {
		snprintf(err, errlen, "not valid JSON: %s", e.message);
		return NULL;
	}
	if (!bson_iter_init_find(&it, doc, "indexes") || !BSON_ITER_HOLDS_ARRAY(&it) ||
	    !bson_iter_recurse(&it, &arr)) {
		snprintf(err, errlen, "no \"indexes\" array");
		goto fail;
	}
	while (bson_iter_next(&arr)) {
		if (!index_ok(&arr)) {
			snprintf(err, errlen, "index %d is not an object with a key and a name", n);
			goto fail;
		}
		n++;
	}
	if (bson_iter_init_find(&it, doc, "options") && !BSON_ITER_HOLDS_DOCUMENT(&it)) {
		snprintf(err, errlen, "\"options\" is not an object");
		goto fail;
	}
	*n_indexes = n;
	return doc;
fail:
	bson_destroy(doc);
	return NULL;
}

int metadata_check(const char *json, size_t len, char *err, size_t errlen)
{
	int n;
	bson_t *doc = metadata_parse(json, len, &n, err, errlen);

	if (doc == NULL)
		return -1;
	bson_destroy(doc);
	return n;
}

int metadata_buildable(const bson_t *meta)
{
	bson_iter_t it, arr, name;
	int n = 0;

	if (!bson_iter_init_find(&it, meta, "indexes") || !bson_iter_recurse(&it, &arr))
		return 0;
	while (bson_iter_next(&arr))
		if (!(bson_iter_recurse(&arr, &name) && bson_iter_find(&name, "name") &&
		      BSON_ITER_HOLDS_UTF8(&name) && strcmp(bson_iter_utf8(&name, NULL), "_id_") == 0))
			n++;
	return n;
}
