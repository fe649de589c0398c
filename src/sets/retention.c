/* retention.c - the layout parser, set grouping and retention planner. */
#include "config.h"

#include <bson/bson.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "set_layout.h"
#include "retention.h"

#define SECONDS_PER_DAY 86400L

/* ---- dates -------------------------------------------------------------- */

/* Proleptic Gregorian date to days since 1970-01-01 (H. Hinnant's
 * algorithm): no TZ, no timegm, so the result never depends on the host. */
static long days_from_civil(long y, unsigned m, unsigned d)
{
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned mp = m > 2 ? m - 3 : m + 9;
	unsigned doy = (153 * mp + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + (long)doe - 719468;
}

static bool is_leap(long y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool digits(const char *s, size_t n, long *out)
{
	long v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* The 10 characters at s as a date; never reads past a NUL. */
static bool match_date(const char *s, long *day)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	long y, m, d;

	if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &m) || s[7] != '-' ||
	    !digits(s + 8, 2, &d))
		return false;
	if (y < 1 || m < 1 || m > 12 || d < 1)
		return false;
	if (d > mdays[m - 1] + (m == 2 && is_leap(y)))
		return false;
	*day = days_from_civil(y, (unsigned)m, (unsigned)d);
	return true;
}

/* The 6 characters at s as HHMMSS. */
static bool match_time(const char *s, long *seconds)
{
	long h, m, sec;

	if (!digits(s, 2, &h) || !digits(s + 2, 2, &m) || !digits(s + 4, 2, &sec))
		return false;
	if (h > 23 || m > 59 || sec > 59)
		return false;
	*seconds = h * 3600 + m * 60 + sec;
	return true;
}

int retention_parse_date(const char *text, long *day)
{
	if (strlen(text) != 10)
		return -1;
	return match_date(text, day) ? 0 : -1;
}

void retention_format_date(long day, char out[RETENTION_DATE_SIZE])
{
	time_t t = (time_t)day * SECONDS_PER_DAY;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, RETENTION_DATE_SIZE, "%Y-%m-%d", &tm) == 0)
		snprintf(out, RETENTION_DATE_SIZE, "?");
}

long retention_day_of(time_t t)
{
	long day = (long)(t / SECONDS_PER_DAY);

	/* Division truncates towards zero; dates before 1970 round down. */
	if (t < 0 && t % SECONDS_PER_DAY != 0)
		day--;
	return day;
}

/* ---- layout ------------------------------------------------------------- */

int retention_layout_init(struct retention_layout *layout, const char *blob_path,
			  char *err, size_t errlen)
{
	const char *slash, *brace;
	size_t len;

	memset(layout, 0, sizeof(*layout));
	if (path_template_check(blob_path, err, errlen) != 0)
		return -1;
	/* path_template_check guarantees a '/' after {date} and no
	 * {collection} before the last '/'. */
	slash = strrchr(blob_path, '/');
	len = (size_t)(slash - blob_path) + 1;
	if (len >= sizeof(layout->folder)) {
		snprintf(err, errlen, "blob_path is too long");
		return -1;
	}
	memcpy(layout->folder, blob_path, len);
	layout->folder[len] = '\0';
	snprintf(layout->file, sizeof(layout->file), "%s", slash + 1);
	brace = strchr(layout->folder, '{');
	len = (size_t)(brace - layout->folder);
	memcpy(layout->prefix, layout->folder, len);
	layout->prefix[len] = '\0';
	layout->has_time = strstr(layout->folder, "{time}") != NULL;
	return 0;
}

/* ".N" ending a set folder's last segment (path_set_sequence): 2 to
 * PATH_SET_SEQ_MAX, no leading zero.  Advances *p past it. */
static bool match_sequence(const char **p, unsigned *seq)
{
	const char *s = *p + 1;
	unsigned long v = 0;

	if (*s < '1' || *s > '9')
		return false;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > PATH_SET_SEQ_MAX)
			return false;
		s++;
	}
	if (v < 2)
		return false;
	*seq = (unsigned)v;
	*p = s;
	return true;
}

/* Does name match the file part of blob_path?  {collection} and
 * {database} stand for a name escaped as path_template_render does (at
 * least one character). */
static bool match_file(const char *t, const char *p)
{
	long v;

	while (*t != '\0') {
		size_t ph = strncmp(t, "{collection}", 12) == 0 ? 12 :
			    strncmp(t, "{database}", 10) == 0 ? 10 : 0;
		if (ph > 0) {
			for (const char *q = p; *q != '\0'; q++) {
				bool ok = (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
					  (*q >= '0' && *q <= '9') || *q == '.' || *q == '_' ||
					  *q == '-' || *q == '%';
				if (!ok)
					return false;
				if (match_file(t + ph, q + 1))
					return true;
			}
			return false;
		}
		if (strncmp(t, "{date}", 6) == 0) {
			if (!match_date(p, &v))
				return false;
			t += 6;
			p += 10;
		} else if (strncmp(t, "{time}", 6) == 0) {
			if (!match_time(p, &v))
				return false;
			t += 6;
			p += 6;
		} else {
			if (*p != *t)
				return false;
			t++;
			p++;
		}
	}
	return *p == '\0';
}

/* The blobs a run writes into its set folder. */
static bool is_set_blob(const struct retention_layout *layout, const char *base)
{
	static const char meta_suffix[] = ".metadata.json.gz", data_suffix[] = ".bson.gz";
	char data[BLOB_NAME_MAX];
	size_t len = strlen(base), mlen = sizeof(meta_suffix) - 1;

	if (strcmp(base, MANIFEST_NAME) == 0 || strcmp(base, "verification.json") == 0)
		return true;
	if (match_file(layout->file, base))
		return true;
	if (len <= mlen || strcmp(base + len - mlen, meta_suffix) != 0 ||
	    len - mlen + sizeof(data_suffix) > sizeof(data))
		return false;
	memcpy(data, base, len - mlen);
	memcpy(data + len - mlen, data_suffix, sizeof(data_suffix));
	return match_file(layout->file, data);
}

/* Matches the folder template against the start of text; the end of the
 * folder (just after its '/') goes to *end.  A placeholder that occurs
 * twice must render the same both times. */
static bool match_folder(const struct retention_layout *layout, const char *text,
			 const char **end, struct retention_name *out)
{
	const char *t = layout->folder, *p = text;
	bool have_day = false, have_time = false;
	long day = 0, seconds = 0, v;
	unsigned seq = 1;

	while (*t != '\0') {
		if (strncmp(t, "{date}", 6) == 0) {
			if (!match_date(p, &v) || (have_day && v != day))
				return false;
			day = v;
			have_day = true;
			t += 6;
			p += 10;
		} else if (strncmp(t, "{time}", 6) == 0) {
			if (!match_time(p, &v) || (have_time && v != seconds))
				return false;
			seconds = v;
			have_time = true;
			t += 6;
			p += 6;
		} else {
			if (t[0] == '/' && t[1] == '\0' && *p == '.' && !match_sequence(&p, &seq))
				return false;
			if (*p != *t)
				return false;
			t++;
			p++;
		}
	}
	if (!have_day || (size_t)(p - text) >= sizeof(out->folder))
		return false;
	out->seq = seq;
	memcpy(out->folder, text, (size_t)(p - text));
	out->folder[p - text] = '\0';
	out->day = day;
	out->seconds = seconds;
	*end = p;
	return true;
}

bool retention_parse_name(const struct retention_layout *layout, const char *name,
			  struct retention_name *out)
{
	const char *rest;

	/* No run writes a longer name (nor does Azure hold one), and matching
	 * {database}_{collection} costs time quadratic in the length. */
	if (strlen(name) >= BLOB_NAME_MAX)
		return false;
	if (!match_folder(layout, name, &rest, out))
		return false;
	/* One segment below the folder, of a name a run writes: deeper names
	 * and anything else a person put there are not ours. */
	if (*rest == '\0' || strchr(rest, '/') != NULL || !is_set_blob(layout, rest))
		return false;
	out->base = rest;
	return true;
}

bool retention_parse_folder(const struct retention_layout *layout, const char *folder,
			    struct retention_name *out)
{
	char with_slash[BLOB_NAME_MAX];
	const char *rest;
	size_t len = strlen(folder);

	if (len == 0 || len + 2 > sizeof(with_slash))
		return false;
	memcpy(with_slash, folder, len + 1);
	if (folder[len - 1] != '/')
		strcpy(with_slash + len, "/");
	if (!match_folder(layout, with_slash, &rest, out) || *rest != '\0')
		return false;
	out->base = NULL;
	return true;
}

/* ---- sets --------------------------------------------------------------- */

static struct retention_set *find_set(struct retention_sets *sets, const char *folder)
{
	/* Listings come in name order, so a blob almost always belongs to the
	 * set before it: look there first. */
	if (sets->n > 0 && strcmp(sets->v[sets->n - 1].folder, folder) == 0)
		return &sets->v[sets->n - 1];
	for (size_t i = 0; i < sets->n; i++)
		if (strcmp(sets->v[i].folder, folder) == 0)
			return &sets->v[i];
	return NULL;
}

static struct retention_set *new_set(struct retention_sets *sets,
				     const struct retention_name *name)
{
	struct retention_set *s;

	if (sets->n == sets->cap) {
		size_t cap = sets->cap ? sets->cap * 2 : 16;
		struct retention_set *v = realloc(sets->v, cap * sizeof(*v));
		if (v == NULL)
			return NULL;
		sets->v = v;
		sets->cap = cap;
	}
	s = &sets->v[sets->n];
	memset(s, 0, sizeof(*s));
	s->folder = strdup(name->folder);
	if (s->folder == NULL)
		return NULL;
	s->day = name->day;
	s->seconds = name->seconds;
	s->seq = name->seq;
	s->manifest = RETENTION_NO_MANIFEST;
	s->finished = -1;
	sets->n++;
	return s;
}

int retention_sets_add(struct retention_sets *sets, const struct retention_name *name,
		       const char *blob, uint64_t size)
{
	struct retention_set *s = find_set(sets, name->folder);
	char *copy;

	if (s == NULL && (s = new_set(sets, name)) == NULL)
		goto nomem;
	if (s->n_blobs == s->cap_blobs) {
		size_t cap = s->cap_blobs ? s->cap_blobs * 2 : 8;
		char **v = realloc(s->blobs, cap * sizeof(*v));
		if (v == NULL)
			goto nomem;
		s->blobs = v;
		s->cap_blobs = cap;
	}
	copy = strdup(blob);
	if (copy == NULL)
		goto nomem;
	s->blobs[s->n_blobs++] = copy;
	if (name->base != NULL && strcmp(name->base, MANIFEST_NAME) == 0) {
		s->has_manifest = true;
		s->manifest_size = size;
	}
	return 0;
nomem:
	errno = ENOMEM;
	return -1;
}

void retention_sets_free(struct retention_sets *sets)
{
	for (size_t i = 0; i < sets->n; i++) {
		for (size_t j = 0; j < sets->v[i].n_blobs; j++)
			free(sets->v[i].blobs[j]);
		free(sets->v[i].blobs);
		free(sets->v[i].folder);
	}
	free(sets->v);
	memset(sets, 0, sizeof(*sets));
}

/* ---- manifest ----------------------------------------------------------- */

enum retention_manifest retention_manifest_parse(const char *json, size_t len,
						 char *why, size_t whylen)
{
	enum retention_manifest result = RETENTION_UNREADABLE;
	bson_error_t error;
	bson_iter_t it;
	bson_t *doc = NULL;
	size_t skip = 0;

	while (skip < len && (json[skip] == ' ' || json[skip] == '\t' || json[skip] == '\r' ||
			      json[skip] == '\n'))
		skip++;
	/* libbson would accept a top-level array as a document. */
	if (skip == len || json[skip] != '{') {
		snprintf(why, whylen, "not a JSON object");
		goto out;
	}
	doc = bson_new_from_json((const uint8_t *)json, (ssize_t)len, &error);
	if (doc == NULL) {
		/* libbson quotes the input, newlines and all: one log line. */
		snprintf(why, whylen, "not valid JSON: %s", error.message);
		for (char *c = why; whylen > 0 && *c != '\0'; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				*c = '?';
		goto out;
	}
	if (!bson_iter_init_find(&it, doc, "complete") || !BSON_ITER_HOLDS_BOOL(&it)) {
		snprintf(why, whylen, "no boolean \"complete\" field");
		goto out;
	}
	result = bson_iter_bool(&it) ? RETENTION_COMPLETE : RETENTION_INCOMPLETE;
out:
	if (doc != NULL)
		bson_destroy(doc);
	return result;
}

long long retention_manifest_finished(const char *json, size_t len)
{
	long long result = -1;
	bson_error_t error;
	bson_iter_t it;
	bson_t *doc;
	const char *text;
	long day, seconds;

	if (len == 0 || len > SSIZE_MAX)
		return -1;
	doc = bson_new_from_json((const uint8_t *)json, (ssize_t)len, &error);
	if (doc == NULL)
		return -1;
	if (bson_iter_init_find(&it, doc, "finished") && BSON_ITER_HOLDS_UTF8(&it)) {
		uint32_t text_len;
		text = bson_iter_utf8(&it, &text_len);
		/* "YYYY-MM-DDTHH:MM:SSZ", all of it: a NUL inside ends nothing. */
		if (text_len == 20 && strlen(text) == 20 && match_date(text, &day) &&
		    text[10] == 'T' &&
		    text[13] == ':' && text[16] == ':' && text[19] == 'Z') {
			char hms[7] = { text[11], text[12], text[14], text[15], text[17],
					text[18], '\0' };
			if (match_time(hms, &seconds))
				result = (long long)day * SECONDS_PER_DAY + seconds;
		}
	}
	bson_destroy(doc);
	return result;
}

const struct retention_set *retention_newest_complete(const struct retention_sets *sets,
						      bool include_removed)
{
	for (size_t i = sets->n; i > 0; i--) {
		const struct retention_set *s = &sets->v[i - 1];
		if (s->manifest == RETENTION_COMPLETE && (include_removed || !s->remove))
			return s;
	}
	return NULL;
}

const char *retention_manifest_text(enum retention_manifest m)
{
	switch (m) {
	case RETENTION_COMPLETE: return "complete";
	case RETENTION_INCOMPLETE: return "manifest says incomplete";
	case RETENTION_UNREADABLE: return "manifest unreadable";
	case RETENTION_NO_MANIFEST: break;
	}
	return "no manifest";
}

/* ---- planner ------------------------------------------------------------ */

static int oldest_first(const void *a, const void *b)
{
	const struct retention_set *x = a, *y = b;

	if (x->day != y->day)
		return x->day < y->day ? -1 : 1;
	if (x->seconds != y->seconds)
		return x->seconds < y->seconds ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return strcmp(x->folder, y->folder);
}

static void refuse(struct retention_sets *sets, const char *why)
{
	for (size_t i = 0; i < sets->n; i++) {
		sets->v[i].remove = false;
		snprintf(sets->v[i].reason, sizeof(sets->v[i].reason),
			 "nothing is deleted: %s", why);
	}
}

int retention_plan(struct retention_sets *sets, const struct retention_policy *policy,
		   char *err, size_t errlen)
{
	long cutoff = policy->today - policy->days;
	char cut[RETENTION_DATE_SIZE], date[RETENTION_DATE_SIZE];
	size_t protect_from = sets->n;   /* complete sets at or after this index */
	int found = 0;

	if (sets->n > 1)
		qsort(sets->v, sets->n, sizeof(sets->v[0]), oldest_first);

	if (policy->current_set != NULL) {
		const struct retention_set *cur = NULL;
		for (size_t i = 0; i < sets->n; i++)
			if (strcmp(sets->v[i].folder, policy->current_set) == 0)
				cur = &sets->v[i];
		if (cur == NULL) {
			snprintf(err, errlen, "the current set %s is not in the listing",
				 policy->current_set);
			refuse(sets, err);
			return -1;
		}
		if (cur->manifest != RETENTION_COMPLETE) {
			snprintf(err, errlen, "the current set %s is not complete (%s)",
				 policy->current_set, retention_manifest_text(cur->manifest));
			refuse(sets, err);
			return -1;
		}
	}

	/* The newest keep_min complete sets are protected whatever their age. */
	for (size_t i = sets->n; i > 0 && found < policy->keep_min; i--) {
		if (sets->v[i - 1].manifest == RETENTION_COMPLETE) {
			protect_from = i - 1;
			found++;
		}
	}

	retention_format_date(cutoff, cut);
	for (size_t i = 0; i < sets->n; i++) {
		struct retention_set *s = &sets->v[i];
		bool complete = s->manifest == RETENTION_COMPLETE;
		const char *state = retention_manifest_text(s->manifest);

		retention_format_date(s->day, date);
		s->remove = false;
		if (s->day >= cutoff) {
			snprintf(s->reason, sizeof(s->reason), "within %d days (%s >= %s)%s%s",
				 policy->days, date, cut, complete ? "" : "; ",
				 complete ? "" : state);
		} else if (policy->current_set != NULL &&
			   strcmp(s->folder, policy->current_set) == 0) {
			/* Only a clock gone wrong gets here; the run's own set
			 * stays whatever the dates say. */
			snprintf(s->reason, sizeof(s->reason), "the current run's set");
		} else if (complete && i >= protect_from) {
			if (policy->keep_min == 1)
				snprintf(s->reason, sizeof(s->reason), "the newest complete set "
					 "(%s is older than %d days)", date, policy->days);
			else
				snprintf(s->reason, sizeof(s->reason), "one of the newest %d "
					 "complete sets (%s is older than %d days)",
					 policy->keep_min, date, policy->days);
		} else {
			s->remove = true;
			if (complete)
				snprintf(s->reason, sizeof(s->reason), "%s is older than %d days",
					 date, policy->days);
			else
				snprintf(s->reason, sizeof(s->reason), "%s is older than %d days, "
					 "%s (not a complete backup)", date, policy->days, state);
		}
	}
	return 0;
}
