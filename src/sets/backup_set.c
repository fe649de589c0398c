/* backup_set.c - find backup sets, read their manifests, resolve names.
 *
 * Manifests are parsed with libbson's JSON reader, leniently about what is
 * missing (a manifest of an interrupted run has no counts yet) and
 * strictly about shape (a collection entry without a name or blob is not a
 * manifest we wrote).
 *
 * This file owns the listing of sets, small blobs, set times and order,
 * and resolving a set's name; manifests are parsed in set_manifest.c and
 * their names checked in set_names.c (backup_set_int.h).
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

void coll_free(struct set_coll *c)
{
	free(c->database);
	free(c->type);
	free(c->label);
	free(c->name);
	free(c->result);
	free(c->blob);
	free(c->metadata_blob);
	free(c->sha256);
	free(c->md5);
	free(c->error);
}

void set_clear_manifest(struct backup_set *s)
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

/* Exactly YYYY-MM-DDTHH:MM:SS, then "Z" or nothing, every field in its
 * range (the form we write): strptime would take February 30th as March
 * 2nd, second 60, one-digit fields, blanks and trailing text, and this
 * time orders the sets in list and restore. */
time_t set_parse_utc(const char *iso)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	int v[6] = { 0 };
	struct tm tm, back;
	time_t t;

	if (iso == NULL)
		return (time_t)-1;
	for (size_t i = 0; i < sizeof(shape) - 1; i++) {
		bool digit = iso[i] >= '0' && iso[i] <= '9';
		if (shape[i] == 'd' ? !digit : iso[i] != shape[i])
			return (time_t)-1;
	}
	if (!(iso[19] == '\0' || (iso[19] == 'Z' && iso[20] == '\0')))
		return (time_t)-1;
	static const int at[6] = { 0, 5, 8, 11, 14, 17 }, width[6] = { 4, 2, 2, 2, 2, 2 };
	for (int f = 0; f < 6; f++)
		for (int k = 0; k < width[f]; k++)
			v[f] = v[f] * 10 + (iso[at[f] + k] - '0');
	if (v[0] < 1 || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[3] > 23 || v[4] > 59 || v[5] > 59)
		return (time_t)-1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = v[0] - 1900;
	tm.tm_mon = v[1] - 1;
	tm.tm_mday = v[2];
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5];
	t = timegm(&tm);
	/* A day past its month's end comes back as another date. */
	if (gmtime_r(&t, &back) == NULL || back.tm_mday != v[2] || back.tm_mon != v[1] - 1)
		return (time_t)-1;
	return t;
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

size_t set_count_ok(const struct backup_set *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n_colls; i++)
		if (strcmp(s->colls[i].result, "ok") == 0)
			n++;
	return n;
}
