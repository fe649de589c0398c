/* set_manifest.c - a set's manifest.json read and parsed (leniently about
 * what is missing, strictly about shape, every name checked), with the
 * set's verification record beside it: set_parse_manifest, set_load,
 * sets_load_all.
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

/* ---- manifest ----------------------------------------------------------- */

/* A string member, or NULL when it is missing or not a string; *nul when
 * it holds a NUL byte (JSON's \u0000), which no name of ours does and a
 * C string would silently cut. */
static char *dup_utf8(const bson_t *doc, const char *key, bool *nul)
{
	bson_iter_t it;
	const char *v;
	uint32_t n;

	if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_UTF8(&it))
		return NULL;
	v = bson_iter_utf8(&it, &n);
	if (memchr(v, '\0', n) != NULL) {
		*nul = true;
		return NULL;
	}
	return strndup(v, n);
}

static int64_t get_int(const bson_t *doc, const char *key)
{
	bson_iter_t it;

	if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_NUMBER(&it))
		return -1;
	return bson_iter_as_int64(&it);
}

/* Blob names are stored whole; a bare name is taken as inside the set. */
static char *full_name(const char *folder, const char *name)
{
	char *out;

	if (name == NULL)
		return NULL;
	if (strchr(name, '/') != NULL || *folder == '\0')
		return strdup(name);
	if (asprintf(&out, "%s%s", folder, name) < 0)
		return NULL;
	return out;
}

/* The entry's names, checked before anything requests a blob or makes a
 * file from them. */
static int check_coll(const struct backup_set *s, const struct set_coll *c, char *err,
		      size_t errlen)
{
	char why[256], a[80], b[200];
	bool auth = strcmp(c->type, "users") == 0 || strcmp(c->type, "roles") == 0;

	if (!set_valid_database(c->database, why, sizeof(why))) {
		snprintf(err, errlen, "collection '%s': database '%s': %s",
			 set_show_name(c->name, a, sizeof(a)),
			 set_show_name(c->database, b, sizeof(b)), why);
		return -1;
	}
	if (strcmp(c->type, "collection") != 0 && strcmp(c->type, "view") != 0 &&
	    strcmp(c->type, "timeseries") != 0 && !auth) {
		snprintf(err, errlen, "collection '%s': unknown type '%s'",
			 set_show_name(c->name, a, sizeof(a)), set_show_name(c->type, b, sizeof(b)));
		return -1;
	}
	if (auth ? strcmp(c->name, strcmp(c->type, "users") == 0 ? SET_AUTH_USERS
							       : SET_AUTH_ROLES) != 0
		 : !set_valid_collection(c->database, c->name, why, sizeof(why))) {
		snprintf(err, errlen, "collection '%s': %s", set_show_name(c->name, a, sizeof(a)),
			 auth ? "not the name of a database's users or roles" : why);
		return -1;
	}
	if ((c->blob == NULL) != (strcmp(c->type, "view") == 0)) {
		snprintf(err, errlen, "collection '%s': %s", set_show_name(c->name, a, sizeof(a)),
			 c->blob == NULL ? "no data blob" : "a view with a data blob");
		return -1;
	}
	if (c->blob != NULL && !set_blob_in_folder(s->folder, c->blob, why, sizeof(why))) {
		snprintf(err, errlen, "collection '%s': data blob '%s' is refused: %s",
			 set_show_name(c->name, a, sizeof(a)), set_show_name(c->blob, b, sizeof(b)),
			 why);
		return -1;
	}
	if (c->metadata_blob != NULL &&
	    !set_blob_in_folder(s->folder, c->metadata_blob, why, sizeof(why))) {
		snprintf(err, errlen, "collection '%s': metadata blob '%s' is refused: %s",
			 set_show_name(c->name, a, sizeof(a)),
			 set_show_name(c->metadata_blob, b, sizeof(b)), why);
		return -1;
	}
	if (c->metadata_blob == NULL && strcmp(c->type, "view") == 0) {
		snprintf(err, errlen, "view '%s' has no metadata blob",
			 set_show_name(c->name, a, sizeof(a)));
		return -1;
	}
	for (size_t i = 0; i < s->n_colls; i++)
		if (strcmp(s->colls[i].name, c->name) == 0 &&
		    strcmp(s->colls[i].database, c->database) == 0) {
			snprintf(err, errlen, "collection '%s.%s' is listed twice",
				 set_show_name(c->database, b, sizeof(b)),
				 set_show_name(c->name, a, sizeof(a)));
			return -1;
		}
	return 0;
}

static int parse_coll(struct backup_set *s, const bson_t *e, struct set_coll *c, char *err,
		      size_t errlen)
{
	bool nul = false;
	char *blob = dup_utf8(e, "blob", &nul), *meta = dup_utf8(e, "metadata_blob", &nul);

	memset(c, 0, sizeof(*c));
	c->database = dup_utf8(e, "database", &nul);
	c->type = dup_utf8(e, "type", &nul);
	c->name = dup_utf8(e, "name", &nul);
	c->result = dup_utf8(e, "result", &nul);
	c->blob = full_name(s->folder, blob);
	c->metadata_blob = full_name(s->folder, meta);
	c->sha256 = dup_utf8(e, "sha256", &nul);
	c->md5 = dup_utf8(e, "md5", &nul);
	c->error = dup_utf8(e, "error", &nul);
	c->documents = get_int(e, "documents");
	c->bson_bytes = get_int(e, "bson_bytes");
	c->gzip_bytes = get_int(e, "gzip_bytes");
	free(blob);
	free(meta);
	if (nul) {
		snprintf(err, errlen, "a collection entry holds a string with a NUL byte");
		goto fail;
	}
	if (c->name == NULL) {
		snprintf(err, errlen, "a collection entry has no name");
		goto fail;
	}
	/* Format 1: one database for the set, every entry a collection. */
	if (c->database == NULL && s->database != NULL)
		c->database = strdup(s->database);
	if (c->type == NULL)
		c->type = strdup("collection");
	if (c->database == NULL || c->type == NULL) {
		snprintf(err, errlen, "a collection entry has no database");
		goto fail;
	}
	if (check_coll(s, c, err, errlen) != 0)
		goto fail;
	if (c->result == NULL && (c->result = strdup("unknown")) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return 0;
fail:
	coll_free(c);
	return -1;
}

int set_parse_manifest(struct backup_set *s, const char *json, size_t len, char *err,
		       size_t errlen)
{
	bson_error_t e;
	bson_t *doc;
	bson_iter_t it, arr;
	const char *p = json + strspn(json, " \t\r\n");
	char why[256], shown[300];
	bool nul = false;
	int r = -1;

	set_clear_manifest(s);
	/* libbson would take a top-level array as a document too. */
	if (*p != '{') {
		snprintf(err, errlen, "not a JSON object");
		return -1;
	}
	doc = bson_new_from_json((const uint8_t *)json, (ssize_t)len, &e);
	if (doc == NULL) {
		/* libbson quotes the offending input, newlines and all. */
		snprintf(err, errlen, "not valid JSON: %s",
			 set_show_name(e.message, shown, sizeof(shown)));
		return -1;
	}
	if (!bson_iter_init_find(&it, doc, "collections") || !BSON_ITER_HOLDS_ARRAY(&it) ||
	    !bson_iter_recurse(&it, &arr)) {
		snprintf(err, errlen, "no \"collections\" array");
		goto out;
	}
	if (bson_iter_init_find(&it, doc, "complete") && BSON_ITER_HOLDS_BOOL(&it))
		s->complete = bson_iter_bool(&it);
	s->database = dup_utf8(doc, "database", &nul);
	s->run_id = dup_utf8(doc, "run_id", &nul);
	s->started = dup_utf8(doc, "started", &nul);
	s->finished = dup_utf8(doc, "finished", &nul);
	s->version = dup_utf8(doc, "version", &nul);
	if (nul) {
		snprintf(err, errlen, "a string holds a NUL byte");
		goto out;
	}
	/* Checked first: the collections' namespaces are measured with it.
	 * A set of several databases names each in its entries. */
	if (s->database != NULL && !set_valid_database(s->database, why, sizeof(why))) {
		snprintf(err, errlen, "database '%s': %s",
			 set_show_name(s->database, shown, sizeof(shown)), why);
		goto out;
	}
	while (bson_iter_next(&arr)) {
		const uint8_t *data;
		uint32_t dlen;
		bson_t entry;
		struct set_coll *c;

		if (!BSON_ITER_HOLDS_DOCUMENT(&arr)) {
			snprintf(err, errlen, "a collection entry is not an object");
			goto out;
		}
		bson_iter_document(&arr, &dlen, &data);
		if (!bson_init_static(&entry, data, dlen)) {
			snprintf(err, errlen, "a collection entry is malformed");
			goto out;
		}
		c = realloc(s->colls, (s->n_colls + 1) * sizeof(*c));
		if (c == NULL) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		s->colls = c;
		if (parse_coll(s, &entry, &s->colls[s->n_colls], err, errlen) != 0)
			goto out;
		s->n_colls++;
	}
	bool several = false;
	for (size_t i = 1; i < s->n_colls; i++)
		several |= strcmp(s->colls[i].database, s->colls[0].database) != 0;
	for (size_t i = 0; i < s->n_colls; i++) {
		struct set_coll *sc = &s->colls[i];
		if (several ? asprintf(&sc->label, "%s.%s", sc->database, sc->name) < 0
			    : (sc->label = strdup(sc->name)) == NULL) {
			sc->label = NULL;
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	}
	s->loaded = true;
	r = 0;
out:
	if (r != 0)
		set_clear_manifest(s);
	bson_destroy(doc);
	return r;
}

static void load_verification(struct azure_client *c, struct backup_set *s)
{
	struct azure_error err;
	char *name = NULL, *data = NULL;
	size_t len;
	bson_t *doc = NULL;

	free(s->verified_at);
	free(s->verify_result);
	s->verified_at = s->verify_result = NULL;
	if (!s->has_verification || asprintf(&name, "%s%s", s->folder, SET_VERIFICATION) < 0)
		return;
	/* A record we cannot read only means "not known to be verified". */
	if (blob_fetch_small(c, name, SET_JSON_MAX, &data, &len, &err) == 0 &&
	    data[strspn(data, " \t\r\n")] == '{' &&
	    (doc = bson_new_from_json((const uint8_t *)data, (ssize_t)len, NULL)) != NULL) {
		bool nul = false;
		char *run_id = dup_utf8(doc, "run_id", &nul);
		if (run_id == NULL || s->run_id == NULL || strcmp(run_id, s->run_id) == 0) {
			s->verified_at = dup_utf8(doc, "verified_at", &nul);
			s->verify_result = dup_utf8(doc, "result", &nul);
		}
		free(run_id);
		bson_destroy(doc);
	}
	free(data);
	free(name);
}

int set_load(struct azure_client *c, struct backup_set *s)
{
	struct azure_error err;
	char *name = NULL, *data = NULL;
	char why[512];
	size_t len;
	int r = -1;

	free(s->load_error);
	s->load_error = NULL;
	/* The listing is storage's word too: a folder with dot segments
	 * would send the manifest's request elsewhere. */
	if (!set_valid_folder(s->folder)) {
		char shown[200];
		if (asprintf(&s->load_error, "set folder '%s' has an empty, '.' or '..' segment; "
			     "not read", set_show_name(s->folder, shown, sizeof(shown))) < 0)
			s->load_error = NULL;
		goto out;
	}
	if (asprintf(&name, "%s%s", s->folder, SET_MANIFEST) < 0) {
		s->load_error = strdup("out of memory");
		return -1;
	}
	if (blob_fetch_small(c, name, SET_JSON_MAX, &data, &len, &err) != 0) {
		s->load_error = strdup(err.message);
		goto out;
	}
	if (set_parse_manifest(s, data, len, why, sizeof(why)) != 0) {
		if (asprintf(&s->load_error, "%s is not a usable manifest: %s", name, why) < 0)
			s->load_error = NULL;
		/* A verdict on a broken set is still worth showing. */
		load_verification(c, s);
		goto out;
	}
	load_verification(c, s);
	r = 0;
out:
	if (r != 0 && s->load_error == NULL)
		s->load_error = strdup("cannot read the manifest");
	free(data);
	free(name);
	return r;
}

void sets_load_all(struct azure_client *c, struct set_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		set_load(c, &l->sets[i]);
	sets_sort(l);
}
