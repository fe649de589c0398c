/* backup_set.c - find backup sets, read their manifests, resolve names.
 *
 * Manifests are parsed with libbson's JSON reader, leniently about what is
 * missing (a manifest of an interrupted run has no counts yet) and
 * strictly about shape (a collection entry without a name or blob is not a
 * manifest we wrote).
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

/* ---- the listing -------------------------------------------------------- */

/* The folder part of "a/b/manifest.json" ("a/b/"), when name is a
 * file called leaf (at the root too). */
static char *folder_of(const char *name, const char *leaf)
{
	size_t n = strlen(name), m = strlen(leaf);

	if (n < m || strcmp(name + n - m, leaf) != 0)
		return NULL;
	if (n > m && name[n - m - 1] != '/')
		return NULL;
	return strndup(name, n - m);
}

static struct backup_set *find_folder(struct set_list *l, const char *folder)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->sets[i].folder, folder) == 0)
			return &l->sets[i];
	return NULL;
}

static struct backup_set *add_folder(struct set_list *l, char *folder)
{
	struct backup_set *p = realloc(l->sets, (l->n + 1) * sizeof(*p));

	if (p == NULL)
		return NULL;
	l->sets = p;
	p = &l->sets[l->n++];
	memset(p, 0, sizeof(*p));
	p->folder = folder;
	p->manifest_modified = (time_t)-1;
	return p;
}

struct scan {
	struct set_list *l;
	/* Verification records may be listed before their manifest (name
	 * order): remember them and match afterwards. */
	char **verified;
	size_t n_verified;
};

static int scan_item(void *ctx, const struct azure_blob_item *item)
{
	struct scan *sc = ctx;
	char *folder;

	if (item->is_prefix)
		return 0;
	if ((folder = folder_of(item->name, SET_MANIFEST)) != NULL) {
		struct backup_set *s = find_folder(sc->l, folder);
		if (s == NULL && (s = add_folder(sc->l, folder)) == NULL) {
			free(folder);
			return ENOMEM;
		}
		if (s->folder != folder)
			free(folder);
		s->manifest_modified = item->last_modified;
	} else if ((folder = folder_of(item->name, SET_VERIFICATION)) != NULL) {
		char **p = realloc(sc->verified, (sc->n_verified + 1) * sizeof(*p));
		if (p == NULL) {
			free(folder);
			return ENOMEM;
		}
		sc->verified = p;
		sc->verified[sc->n_verified++] = folder;
	}
	return 0;
}

int sets_scan(struct azure_client *c, struct set_list *out, struct azure_error *err)
{
	struct scan sc = { .l = out };
	int rc;

	memset(out, 0, sizeof(*out));
	rc = azure_list_blobs(c, NULL, NULL, scan_item, &sc, err);
	if (rc > 0)
		azure_error_local(err, rc, "listing container '%s': out of memory", c->container);
	for (size_t i = 0; i < sc.n_verified; i++) {
		struct backup_set *s = find_folder(out, sc.verified[i]);
		if (s != NULL)
			s->has_verification = true;
		free(sc.verified[i]);
	}
	free(sc.verified);
	if (rc != 0) {
		sets_free(out);
		return -1;
	}
	return 0;
}

static void coll_free(struct set_coll *c)
{
	free(c->name);
	free(c->result);
	free(c->blob);
	free(c->metadata_blob);
	free(c->sha256);
	free(c->md5);
	free(c->error);
}

static void set_clear_manifest(struct backup_set *s)
{
	for (size_t i = 0; i < s->n_colls; i++)
		coll_free(&s->colls[i]);
	free(s->colls);
	free(s->database);
	free(s->run_id);
	free(s->started);
	free(s->finished);
	free(s->version);
	s->colls = NULL;
	s->n_colls = 0;
	s->database = s->run_id = s->started = s->finished = s->version = NULL;
	s->loaded = false;
	s->complete = false;
}

void sets_free(struct set_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct backup_set *s = &l->sets[i];
		set_clear_manifest(s);
		free(s->folder);
		free(s->load_error);
		free(s->verified_at);
		free(s->verify_result);
	}
	free(l->sets);
	l->sets = NULL;
	l->n = 0;
}

/* ---- small blobs -------------------------------------------------------- */

struct membuf {
	char *data;
	size_t len, cap, max;
};

static int mem_sink(void *ctx, const void *data, size_t len)
{
	struct membuf *m = ctx;

	if (m->len + len > m->max) {
		errno = EFBIG;
		return -1;
	}
	if (m->len + len + 1 > m->cap) {
		size_t cap = m->cap ? m->cap : 4096;
		while (cap < m->len + len + 1)
			cap *= 2;
		char *p = realloc(m->data, cap);
		if (p == NULL)
			return -1;
		m->data = p;
		m->cap = cap;
	}
	memcpy(m->data + m->len, data, len);
	m->len += len;
	return 0;
}

int blob_fetch_small(struct azure_client *c, const char *blob, size_t max, char **data,
		     size_t *len, struct azure_error *err)
{
	struct membuf m = { .max = max };

	*data = NULL;
	*len = 0;
	if (azure_get_blob(c, blob, 0, mem_sink, &m, NULL, err) != 0) {
		if (err->sys_errno == EFBIG)
			azure_error_local(err, EFBIG, "'%s/%s' is larger than %zu bytes: not one "
					  "of ours", c->container, blob, max);
		free(m.data);
		return -1;
	}
	if (m.data == NULL && (m.data = malloc(1)) == NULL) {
		azure_error_local(err, ENOMEM, "out of memory");
		return -1;
	}
	m.data[m.len] = '\0';
	*data = m.data;
	*len = m.len;
	return 0;
}

/* ---- names in a manifest ----------------------------------------------- */

/* A name from a manifest as an error message shows it: printable ASCII,
 * the rest as \xNN, cut short with "..." (messages go to terminals and
 * into JSON, and a cut must not split a UTF-8 sequence). */
static const char *show(const char *name, char *buf, size_t len)
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
	if (strchr(name, '$') != NULL) {
		snprintf(why, len, "the collection name holds '$', which MongoDB reserves");
		return false;
	}
	/* The exporter skips them and [mongodb] collections refuses them. */
	if (strncmp(name, "system.", 7) == 0) {
		snprintf(why, len, "\"system.\" collections are MongoDB's own and never backed up");
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

	if (!set_valid_collection(s->database, c->name, why, sizeof(why))) {
		snprintf(err, errlen, "collection '%s': %s", show(c->name, a, sizeof(a)), why);
		return -1;
	}
	if (!set_blob_in_folder(s->folder, c->blob, why, sizeof(why))) {
		snprintf(err, errlen, "collection '%s': data blob '%s' is refused: %s",
			 show(c->name, a, sizeof(a)), show(c->blob, b, sizeof(b)), why);
		return -1;
	}
	if (c->metadata_blob != NULL &&
	    !set_blob_in_folder(s->folder, c->metadata_blob, why, sizeof(why))) {
		snprintf(err, errlen, "collection '%s': metadata blob '%s' is refused: %s",
			 show(c->name, a, sizeof(a)), show(c->metadata_blob, b, sizeof(b)), why);
		return -1;
	}
	for (size_t i = 0; i < s->n_colls; i++)
		if (strcmp(s->colls[i].name, c->name) == 0) {
			snprintf(err, errlen, "collection '%s' is listed twice",
				 show(c->name, a, sizeof(a)));
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
	if (c->name == NULL || c->blob == NULL) {
		snprintf(err, errlen, "a collection entry has no %s",
			 c->name == NULL ? "name" : "blob");
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
		snprintf(err, errlen, "not valid JSON: %s", show(e.message, shown, sizeof(shown)));
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
	/* Checked first: the collections' namespaces are measured with it. */
	if (s->database == NULL) {
		snprintf(err, errlen, "no \"database\"");
		goto out;
	}
	if (!set_valid_database(s->database, why, sizeof(why))) {
		snprintf(err, errlen, "database '%s': %s", show(s->database, shown, sizeof(shown)),
			 why);
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
			     "not read", show(s->folder, shown, sizeof(shown))) < 0)
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

time_t set_parse_utc(const char *iso)
{
	struct tm tm;
	const char *end;

	if (iso == NULL)
		return (time_t)-1;
	memset(&tm, 0, sizeof(tm));
	end = strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end == NULL || (*end != 'Z' && *end != '\0'))
		return (time_t)-1;
	return timegm(&tm);
}

static time_t set_time(const struct backup_set *s)
{
	time_t t = set_parse_utc(s->started);

	return t != (time_t)-1 ? t : s->manifest_modified;
}

/* A set folder's sequence number (path_set_sequence): "b/2026-11-27.12/"
 * -> 12, "b/2026-11-27/" -> 1, and *stem = the length of "b/2026-11-27"
 * for both. */
static unsigned long folder_sequence(const char *folder, size_t *stem)
{
	size_t len = strlen(folder), i;
	unsigned long seq = 0, scale = 1;

	*stem = len;
	if (len < 3 || folder[len - 1] != '/')
		return 1;
	*stem = len - 1;
	for (i = len - 1; i > 0 && folder[i - 1] >= '0' && folder[i - 1] <= '9'; i--) {
		if (scale > 100000)
			return 1;
		seq += (unsigned long)(folder[i - 1] - '0') * scale;
		scale *= 10;
	}
	if (i == len - 1 || i < 2 || folder[i - 1] != '.' || folder[i] == '0' || seq < 2)
		return 1;
	*stem = i - 1;
	return seq;
}

/* Start times are whole seconds: two runs of one second, DATE/ and DATE.2/,
 * are told apart by their sequence numbers (DATE.10 after DATE.9). */
static int newest_first(const void *a, const void *b)
{
	const struct backup_set *x = a, *y = b;
	time_t tx = set_time(x), ty = set_time(y);
	size_t sx, sy;
	unsigned long qx = folder_sequence(x->folder, &sx), qy = folder_sequence(y->folder, &sy);

	if (tx != ty)
		return tx > ty ? -1 : 1;
	if (sx == sy && strncmp(x->folder, y->folder, sx) == 0 && qx != qy)
		return qx > qy ? -1 : 1;
	return -strcmp(x->folder, y->folder);
}

void sets_sort(struct set_list *l)
{
	if (l->n > 1)
		qsort(l->sets, l->n, sizeof(*l->sets), newest_first);
}

void sets_load_all(struct azure_client *c, struct set_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		set_load(c, &l->sets[i]);
	sets_sort(l);
}

/* ---- names -------------------------------------------------------------- */

/* Whether name (slashes at its ends optional) is a run of whole segments
 * of folder: "backups/2026-11-27/031500/" is named by itself, by
 * "2026-11-27", by "031500", by "2026-11-27/031500", ... */
static bool names_folder(const char *folder, const char *name)
{
	size_t f = strlen(folder), n;

	while (*name == '/')
		name++;
	n = strlen(name);
	while (n > 0 && name[n - 1] == '/')
		n--;
	if (n == 0)
		return false;
	for (size_t at = 0; at + n < f; at++) {
		if ((at == 0 || folder[at - 1] == '/') && strncmp(folder + at, name, n) == 0 &&
		    folder[at + n] == '/')
			return true;
	}
	return false;
}

static bool is_folder(const char *folder, const char *name)
{
	size_t f = strlen(folder), n = strlen(name);

	if (n > 0 && name[n - 1] == '/')
		n--;
	return n + 1 == f && strncmp(folder, name, n) == 0;
}

long sets_resolve(const struct set_list *l, const char *name, bool only_complete,
		  char *err, size_t errlen)
{
	long found = -1;
	size_t matches = 0;

	if (strcmp(name, "latest") == 0) {
		/* The list is newest first after sets_load_all. */
		for (size_t i = 0; i < l->n; i++)
			if (!only_complete || (l->sets[i].loaded && l->sets[i].complete))
				return (long)i;
		snprintf(err, errlen, only_complete ? "there is no complete backup set"
				      : "there is no backup set");
		return -1;
	}
	/* The whole folder wins over a part of another. */
	for (size_t i = 0; i < l->n; i++)
		if (is_folder(l->sets[i].folder, name))
			return (long)i;
	for (size_t i = 0; i < l->n; i++) {
		if (names_folder(l->sets[i].folder, name)) {
			if (matches++ == 0)
				found = (long)i;
		}
	}
	if (matches == 1)
		return found;
	if (matches == 0) {
		snprintf(err, errlen, "no backup set '%s' (a folder with a %s)", name,
			 SET_MANIFEST);
		return -1;
	}
	size_t used = (size_t)snprintf(err, errlen, "'%s' names %zu sets:", name, matches);
	for (size_t i = 0; i < l->n && used < errlen; i++)
		if (names_folder(l->sets[i].folder, name))
			used += (size_t)snprintf(err + used, errlen - used, " %s", l->sets[i].folder);
	return -1;
}

struct set_coll *set_find_coll(const struct backup_set *s, const char *name)
{
	for (size_t i = 0; i < s->n_colls; i++)
		if (strcmp(s->colls[i].name, name) == 0)
			return &s->colls[i];
	return NULL;
}

size_t set_count_ok(const struct backup_set *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n_colls; i++)
		if (strcmp(s->colls[i].result, "ok") == 0)
			n++;
	return n;
}
