/* fuzz_retention.c - what the retention planner reads from storage: blob
 * names of the container's listing (retention_parse_name) under a few
 * blob_path layouts, set folders with their ".N" sequence numbers
 * (retention_parse_folder), and a set's manifest.json text
 * (retention_manifest_parse, retention_manifest_finished).  Every input is
 * tried as all of them, so a seed is a plain blob name, folder or manifest.
 *
 * Checks, for a name that parses under a layout: the same answer when
 * asked again; its folder is a prefix of the name ending in '/', starts
 * with the layout's fixed prefix and has as many segments as the layout's
 * folder; what follows is one segment a run writes (the manifest, the
 * verification record, a data or a metadata blob), of the bytes
 * path_template_render writes; the date lies in years 1 to 9999, the time
 * of day in 0..86399 (0 without {time}), the sequence number in
 * 1..PATH_SET_SEQ_MAX and written as ".N" exactly when it is 2 or more;
 * rendering blob_path for that date, time and number gives the folder back
 * (years 1000 and up: strftime writes fewer than four digits before); the
 * folder parses as a folder with the same fields, its manifest.json name as
 * a name, the same blob one folder deeper does not; a data blob's metadata
 * blob parses and the other way round.  A folder that parses is the input
 * (with its '/').  A manifest text is complete, incomplete or unreadable
 * (with a reason of one line, only then); a "finished" it yields lies in
 * years 1 to 9999 and is the manifest's "finished" string, formatted back.
 * A name of 1024 bytes or more is never ours (the matcher's time grows
 * with the square of the length).
 */
#include "config.h"

#include <bson/bson.h>
#include <stdbool.h>

#include "fuzz.h"
#include "path_template.h"
#include "retention.h"
#include "set_layout.h"

static const char *const layouts[] = {
	"backups/{date}/{database}_{collection}.bson.gz",	/* the default */
	"backups/{date}/tralivali_{collection}.bson.gz",	/* the .NET worker's */
	"b/{date}T{time}/{collection}.bson.gz",			/* {time} in the folder */
	"x/y/{date}/daily/{time}_{collection}.bson.gz",		/* {time} in the file */
	"{date}/{collection}.bson.gz",				/* no fixed prefix */
	"b/{date}/{date}/{collection}.bson.gz",			/* {date} twice */
};
#define N_LAYOUTS (sizeof(layouts) / sizeof(layouts[0]))
#define DAY 86400L

static struct retention_layout layout[N_LAYOUTS];
static long day_min, day_max;		/* 0001-01-01 and 9999-12-31 */
static long day_1000;			/* 1000-01-01 */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];

	(void)argc;
	(void)argv;
	for (size_t i = 0; i < N_LAYOUTS; i++)
		FUZZ_CHECK(retention_layout_init(&layout[i], layouts[i], err, sizeof(err)) == 0,
			   "%s: %s", layouts[i], err);
	FUZZ_CHECK(retention_parse_date("0001-01-01", &day_min) == 0 &&
		   retention_parse_date("9999-12-31", &day_max) == 0 &&
		   retention_parse_date("1000-01-01", &day_1000) == 0, "dates");
	return 0;
}

static size_t count_char(const char *s, char c)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += *s == c;
	return n;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The bytes path_template_render puts in a file name of our layouts. */
static bool rendered_bytes(const char *s)
{
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("._-%", *s) != NULL))
			return false;
	return true;
}

static void same_name(const struct retention_name *a, const struct retention_name *b,
		      const char *what)
{
	FUZZ_CHECK(strcmp(a->folder, b->folder) == 0 && a->day == b->day &&
		   a->seconds == b->seconds && a->seq == b->seq,
		   "%s: folder %s day %ld time %ld seq %u, then folder %s day %ld time %ld "
		   "seq %u", what, a->folder, a->day, a->seconds, a->seq, b->folder, b->day,
		   b->seconds, b->seq);
}

/* What holds for the folder of any parse. */
static void check_folder(size_t li, const struct retention_name *n)
{
	const struct retention_layout *l = &layout[li];
	size_t len = strlen(n->folder);
	char rendered[BLOB_NAME_MAX], folder[BLOB_NAME_MAX], seqd[BLOB_NAME_MAX];
	char suffix[16];

	FUZZ_CHECK(len > 0 && n->folder[len - 1] == '/', "%s: folder %s", layouts[li], n->folder);
	FUZZ_CHECK(strncmp(n->folder, l->prefix, strlen(l->prefix)) == 0,
		   "%s: folder %s outside %s", layouts[li], n->folder, l->prefix);
	FUZZ_CHECK(count_char(n->folder, '/') == count_char(l->folder, '/'),
		   "%s: folder %s has other segments than %s", layouts[li], n->folder, l->folder);
	FUZZ_CHECK(n->day >= day_min && n->day <= day_max, "%s: %s: day %ld", layouts[li],
		   n->folder, n->day);
	FUZZ_CHECK(n->seconds >= 0 && n->seconds < DAY && (l->has_time || n->seconds == 0),
		   "%s: %s: time of day %ld", layouts[li], n->folder, n->seconds);
	FUZZ_CHECK(n->seq >= 1 && n->seq <= PATH_SET_SEQ_MAX, "%s: %s: seq %u", layouts[li],
		   n->folder, n->seq);
	/* ".N/" ends the folder exactly when N >= 2. */
	snprintf(suffix, sizeof(suffix), ".%u/", n->seq);
	if (n->seq >= 2)
		FUZZ_CHECK(ends_with(n->folder, suffix), "%s: seq %u but folder %s", layouts[li],
			   n->seq, n->folder);
	if (n->day < day_1000)
		return;
	FUZZ_CHECK(path_template_render(layouts[li], "db", "coll",
					(time_t)n->day * DAY + n->seconds, rendered,
					sizeof(rendered)) == 0 &&
		   path_set_folder(rendered, folder, sizeof(folder)) == 0 &&
		   path_set_sequence(folder, n->seq, seqd, sizeof(seqd)) == 0,
		   "%s: cannot render %s", layouts[li], n->folder);
	FUZZ_CHECK(strcmp(seqd, n->folder) == 0, "%s: parsed %s (day %ld, time %ld, seq %u), "
		   "which renders as %s", layouts[li], n->folder, n->day, n->seconds, n->seq, seqd);
}

static void check_name(size_t li, const char *name)
{
	const struct retention_layout *l = &layout[li];
	struct retention_name a, b;
	char other[3 * BLOB_NAME_MAX];
	size_t flen, blen;
	bool ok = retention_parse_name(l, name, &a);

	FUZZ_CHECK(ok == retention_parse_name(l, name, &b), "%s: %s: a second parse disagrees",
		   layouts[li], name);
	if (!ok)
		return;
	same_name(&a, &b, "parsed twice");
	FUZZ_CHECK(a.base == b.base, "%s: %s: base moved", layouts[li], name);
	flen = strlen(a.folder);
	FUZZ_CHECK(strncmp(name, a.folder, flen) == 0 && a.base == name + flen,
		   "%s: folder %s is not the start of %s", layouts[li], a.folder, name);
	check_folder(li, &a);

	blen = strlen(a.base);
	FUZZ_CHECK(blen > 0 && strchr(a.base, '/') == NULL, "%s: %s: base '%s'", layouts[li],
		   name, a.base);
	FUZZ_CHECK(rendered_bytes(a.base), "%s: %s: '%s' has bytes no run writes", layouts[li],
		   name, a.base);
	FUZZ_CHECK(strcmp(a.base, MANIFEST_NAME) == 0 || strcmp(a.base, "verification.json") == 0 ||
		   ends_with(a.base, ".bson.gz") || ends_with(a.base, ".metadata.json.gz"),
		   "%s: %s: '%s' is no blob a run writes", layouts[li], name, a.base);

	/* The folder alone, with and without its '/'. */
	FUZZ_CHECK(retention_parse_folder(l, a.folder, &b) && b.base == NULL,
		   "%s: %s parses as a name but its folder %s does not", layouts[li], name,
		   a.folder);
	same_name(&a, &b, "name, then its folder");
	memcpy(other, a.folder, flen - 1);
	other[flen - 1] = '\0';
	FUZZ_CHECK(retention_parse_folder(l, other, &b), "%s: folder %s without its '/'",
		   layouts[li], a.folder);
	same_name(&a, &b, "name, then its folder without '/'");

	/* Its manifest is in the set; the same blob one folder deeper is not. */
	snprintf(other, sizeof(other), "%s%s", a.folder, MANIFEST_NAME);
	FUZZ_CHECK(retention_parse_name(l, other, &b), "%s: %s parses, %s does not", layouts[li],
		   name, other);
	same_name(&a, &b, "name, then the set's manifest");
	snprintf(other, sizeof(other), "%ssub/%s", a.folder, a.base);
	FUZZ_CHECK(!retention_parse_name(l, other, &b), "%s: %s parses, one folder deeper",
		   layouts[li], other);

	/* A data blob and its metadata blob go together. */
	if (ends_with(a.base, ".metadata.json.gz")) {
		snprintf(other, sizeof(other), "%.*s.bson.gz",
			 (int)(strlen(name) - strlen(".metadata.json.gz")), name);
		FUZZ_CHECK(retention_parse_name(l, other, &b), "%s: metadata %s but not data %s",
			   layouts[li], name, other);
	} else if (ends_with(a.base, ".bson.gz") &&
		   strlen(name) - strlen(".bson.gz") + strlen(".metadata.json.gz") < BLOB_NAME_MAX) {
		/* (A data name so long that its metadata name would pass the
		 * length Azure allows has no metadata blob to go with.) */
		FUZZ_CHECK(path_metadata_name(name, other, sizeof(other)) == 0 &&
			   retention_parse_name(l, other, &b), "%s: data %s but not metadata %s",
			   layouts[li], name, other);
	}
}

static void check_folder_input(size_t li, const char *text)
{
	struct retention_name a, b;
	char expect[BLOB_NAME_MAX + 2], name[BLOB_NAME_MAX + 32];
	size_t len = strlen(text);
	bool ok = retention_parse_folder(&layout[li], text, &a);

	FUZZ_CHECK(ok == retention_parse_folder(&layout[li], text, &b),
		   "%s: folder %s: a second parse disagrees", layouts[li], text);
	if (!ok)
		return;
	same_name(&a, &b, "folder parsed twice");
	FUZZ_CHECK(a.base == NULL, "%s: folder %s has a base", layouts[li], text);
	snprintf(expect, sizeof(expect), "%s%s", text, len > 0 && text[len - 1] == '/' ? "" : "/");
	FUZZ_CHECK(strcmp(a.folder, expect) == 0, "%s: folder %s came back as %s", layouts[li],
		   text, a.folder);
	check_folder(li, &a);
	snprintf(name, sizeof(name), "%s%s", a.folder, MANIFEST_NAME);
	FUZZ_CHECK(retention_parse_name(&layout[li], name, &b), "%s: folder %s, but not %s",
		   layouts[li], text, name);
	same_name(&a, &b, "folder, then its manifest");
}

/* Unix time to "YYYY-MM-DDTHH:MM:SSZ", with H. Hinnant's civil_from_days
 * written out here rather than taken from the code under test. */
static void format_utc(long long t, char out[32])
{
	long long days = t / DAY - (t % DAY < 0), secs = t - days * DAY;
	long long z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
	long long doe = z - era * 146097;
	long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
	long long d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
	long long y = yoe + era * 400 + (m <= 2);

	snprintf(out, 32, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ", y, m, d, secs / 3600,
		 secs / 60 % 60, secs % 60);
}

static void check_manifest(const uint8_t *data, size_t size)
{
	const char *json = (const char *)data;
	char why[256], why2[256], text[32];
	enum retention_manifest m, m2;
	long long finished;
	size_t i = 0;

	why[0] = why2[0] = '\0';
	m = retention_manifest_parse(json, size, why, sizeof(why));
	m2 = retention_manifest_parse(json, size, why2, sizeof(why2));
	FUZZ_CHECK(m == m2 && strcmp(why, why2) == 0, "parsed twice: %d (%s), then %d (%s)", m,
		   why, m2, why2);
	FUZZ_CHECK(m == RETENTION_COMPLETE || m == RETENTION_INCOMPLETE ||
		   m == RETENTION_UNREADABLE, "manifest state %d", m);
	FUZZ_CHECK((m == RETENTION_UNREADABLE) == (why[0] != '\0'),
		   "state %d with reason '%s'", m, why);
	FUZZ_CHECK(strchr(why, '\n') == NULL, "a reason of several lines: %s", why);
	if (m != RETENTION_UNREADABLE) {
		while (i < size && strchr(" \t\r\n", json[i]) != NULL && json[i] != '\0')
			i++;
		FUZZ_CHECK(i < size && json[i] == '{', "read as a manifest, but no object");
	}

	finished = retention_manifest_finished(json, size);
	FUZZ_CHECK(finished == retention_manifest_finished(json, size), "finished twice");
	FUZZ_CHECK(finished == -1 || (finished >= day_min * DAY && finished < (day_max + 1) * DAY),
		   "finished %lld", finished);
	if (finished >= 0) {
		bson_error_t error;
		bson_iter_t it;
		bson_t *doc = bson_new_from_json(data, (ssize_t)size, &error);
		uint32_t n = 0;

		FUZZ_CHECK(doc != NULL, "finished %lld from text libbson refuses", finished);
		FUZZ_CHECK(bson_iter_init_find(&it, doc, "finished") && BSON_ITER_HOLDS_UTF8(&it),
			   "finished %lld without a \"finished\" string", finished);
		format_utc(finished, text);
		FUZZ_CHECK(strcmp(bson_iter_utf8(&it, &n), text) == 0 &&
			   n == strlen(text),
			   "\"finished\": \"%s\" read as %lld, which is %s",
			   bson_iter_utf8(&it, NULL), finished, text);
		bson_destroy(doc);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size > 64 * 1024)
		return 0;
	if (layout[0].folder[0] == '\0')
		LLVMFuzzerInitialize(NULL, NULL);
	s = fuzz_cstr(data, size);
	for (size_t i = 0; i < N_LAYOUTS; i++) {
		check_name(i, s);
		check_folder_input(i, s);
	}
	free(s);
	check_manifest(data, size);
	return 0;
}
