/* check_retention.c - the retention planner, layout parser and manifest
 * reader, on synthetic sets (no storage involved). */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "retention.h"

#define DEFAULT_PATH "backups/{date}/tralivali_{collection}.bson.gz"
#define TIME_PATH "b/{date}T{time}/{collection}.bson.gz"

static struct retention_layout layout;

static void use_layout(const char *blob_path)
{
	char err[256];

	ck_assert_msg(retention_layout_init(&layout, blob_path, err, sizeof(err)) == 0,
		      "%s: %s", blob_path, err);
}

static long day(const char *date)
{
	long d;

	ck_assert_msg(retention_parse_date(date, &d) == 0, "bad test date %s", date);
	return d;
}

/* Adds a set FOLDER (a rendered folder of the current layout) with a data
 * blob, and a manifest.json unless m is RETENTION_NO_MANIFEST. */
static void add_set(struct retention_sets *sets, const char *folder, enum retention_manifest m)
{
	const char *bases[] = { "tralivali_users.bson.gz", "tralivali_users.metadata.json.gz",
				"manifest.json" };
	size_t n = m == RETENTION_NO_MANIFEST ? 2 : 3;

	for (size_t i = 0; i < n; i++) {
		char name[BLOB_NAME_MAX];
		struct retention_name rn;
		snprintf(name, sizeof(name), "%s%s", folder, bases[i]);
		ck_assert_msg(retention_parse_name(&layout, name, &rn), "%s not ours", name);
		ck_assert_int_eq(retention_sets_add(sets, &rn, name, 1000), 0);
	}
	for (size_t i = 0; i < sets->n; i++) {
		if (strcmp(sets->v[i].folder, folder) == 0) {
			ck_assert(sets->v[i].has_manifest == (m != RETENTION_NO_MANIFEST));
			sets->v[i].manifest = m;
		}
	}
}

static void add_dated(struct retention_sets *sets, const char *date, enum retention_manifest m)
{
	char folder[64];

	snprintf(folder, sizeof(folder), "backups/%s/", date);
	add_set(sets, folder, m);
}

static struct retention_set *find(const struct retention_sets *sets, const char *date)
{
	char folder[64];

	snprintf(folder, sizeof(folder), "backups/%s/", date);
	for (size_t i = 0; i < sets->n; i++)
		if (strcmp(sets->v[i].folder, folder) == 0)
			return &sets->v[i];
	ck_abort_msg("no set %s", folder);
	return NULL;
}

static void expect(const struct retention_sets *sets, const char *date, bool remove,
		   const char *reason)
{
	const struct retention_set *s = find(sets, date);

	ck_assert_msg(s->remove == remove, "%s: %s, expected %s (%s)", date,
		      s->remove ? "delete" : "keep", remove ? "delete" : "keep", s->reason);
	if (reason != NULL)
		ck_assert_str_eq(s->reason, reason);
}

static struct retention_policy policy(const char *today, int days, int keep_min)
{
	struct retention_policy p = { .today = day(today), .days = days, .keep_min = keep_min };

	return p;
}

/* ---- dates -------------------------------------------------------------- */

START_TEST(dates)
{
	char out[RETENTION_DATE_SIZE];
	long d;

	ck_assert_int_eq(retention_parse_date("1970-01-01", &d), 0);
	ck_assert_int_eq(d, 0);
	/* 2026-11-26 03:00:07 UTC */
	ck_assert_int_eq(retention_day_of((time_t)1795662007), day("2026-11-26"));
	ck_assert_int_eq(day("2026-03-01") - day("2026-02-28"), 1);
	ck_assert_int_eq(day("2024-03-01") - day("2024-02-28"), 2);
	ck_assert_int_eq(day("2027-01-01") - day("2026-01-01"), 365);
	retention_format_date(day("2026-10-28"), out);
	ck_assert_str_eq(out, "2026-10-28");
	retention_format_date(day("2000-02-29"), out);
	ck_assert_str_eq(out, "2000-02-29");

	ck_assert_int_eq(retention_parse_date("2026-02-29", &d), -1);
	ck_assert_int_eq(retention_parse_date("1900-02-29", &d), -1);
	ck_assert_int_eq(retention_parse_date("2026-02-30", &d), -1);
	ck_assert_int_eq(retention_parse_date("2026-04-31", &d), -1);
	ck_assert_int_eq(retention_parse_date("2026-13-01", &d), -1);
	ck_assert_int_eq(retention_parse_date("2026-00-10", &d), -1);
	ck_assert_int_eq(retention_parse_date("2026-01-00", &d), -1);
	ck_assert_int_eq(retention_parse_date("0000-01-01", &d), -1);
	ck_assert_int_eq(retention_parse_date("2026-1-01", &d), -1);
	ck_assert_int_eq(retention_parse_date("2026-01-011", &d), -1);
	ck_assert_int_eq(retention_parse_date("2026/01/01", &d), -1);
	ck_assert_int_eq(retention_parse_date("", &d), -1);
}
END_TEST

/* ---- layout ------------------------------------------------------------- */

START_TEST(layout_parts)
{
	char err[256];

	use_layout(DEFAULT_PATH);
	ck_assert_str_eq(layout.prefix, "backups/");
	ck_assert_str_eq(layout.folder, "backups/{date}/");
	ck_assert(!layout.has_time);
	use_layout(TIME_PATH);
	ck_assert_str_eq(layout.prefix, "b/");
	ck_assert_str_eq(layout.folder, "b/{date}T{time}/");
	ck_assert(layout.has_time);
	use_layout("{date}/{collection}.bson.gz");
	ck_assert_str_eq(layout.prefix, "");
	use_layout("x/y/{date}/daily/{time}_{collection}.bson.gz");
	ck_assert_str_eq(layout.prefix, "x/y/");
	ck_assert_str_eq(layout.folder, "x/y/{date}/daily/");
	ck_assert(!layout.has_time);
	ck_assert_int_eq(retention_layout_init(&layout, "backups/{collection}.bson.gz", err,
					       sizeof(err)), -1);
}
END_TEST

START_TEST(names_under_the_default_layout)
{
	struct retention_name rn;

	use_layout(DEFAULT_PATH);
	ck_assert(retention_parse_name(&layout, "backups/2026-11-26/tralivali_users.bson.gz",
				       &rn));
	ck_assert_str_eq(rn.folder, "backups/2026-11-26/");
	ck_assert_str_eq(rn.base, "tralivali_users.bson.gz");
	ck_assert_int_eq(rn.day, day("2026-11-26"));
	ck_assert(retention_parse_name(&layout, "backups/2026-11-26/manifest.json", &rn));
	ck_assert(retention_parse_name(&layout, "backups/2026-11-26/verification.json", &rn));
	ck_assert_int_eq(rn.seq, 1);
	/* The .NET worker's blobs have the same names. */
	ck_assert(retention_parse_name(&layout, "backups/2026-11-01/tralivali_x.bson.gz", &rn));
	ck_assert(retention_parse_name(&layout, "backups/2024-02-29/tralivali_x.bson.gz", &rn));
	ck_assert(retention_parse_name(&layout,
				       "backups/2024-02-29/tralivali_a%2Fb.metadata.json.gz", &rn));
	ck_assert_str_eq(rn.base, "tralivali_a%2Fb.metadata.json.gz");
}
END_TEST

/* The default since several databases: {database}_{collection}. */
START_TEST(names_with_a_database)
{
	struct retention_name rn;

	use_layout("backups/{date}/{database}_{collection}.bson.gz");
	ck_assert(retention_parse_name(&layout, "backups/2026-11-26/app_users.bson.gz", &rn));
	ck_assert(retention_parse_name(&layout, "backups/2026-11-26/tralivali_users.bson.gz", &rn));
	ck_assert(retention_parse_name(&layout,
				       "backups/2026-11-26/app_system.buckets.ts.bson.gz", &rn));
	ck_assert(retention_parse_name(&layout,
				       "backups/2026-11-26/app_%24admin.system.users.bson.gz", &rn));
	ck_assert(retention_parse_name(&layout, "backups/2026-11-26/app_v.metadata.json.gz", &rn));
	/* Both placeholders need a name. */
	ck_assert(!retention_parse_name(&layout, "backups/2026-11-26/_users.bson.gz", &rn));
	ck_assert(!retention_parse_name(&layout, "backups/2026-11-26/app_.bson.gz", &rn));
	ck_assert(!retention_parse_name(&layout, "backups/2026-11-26/notes.txt", &rn));
}
END_TEST

/* What a person put into a set folder is not the set's. */
START_TEST(other_blobs_in_a_set_folder)
{
	static const char *const other[] = {
		"backups/2026-08-01/notes.txt",
		"backups/2026-08-01/x",
		"backups/2026-08-01/tralivali_.bson.gz",
		"backups/2026-08-01/tralivali_a b.bson.gz",
		"backups/2026-08-01/tralivali_users.bson",
		"backups/2026-08-01/tralivali_users.bson.gz.bak",
		"backups/2026-08-01/other_users.bson.gz",
		"backups/2026-08-01/tralivali_users.metadata.json",
		"backups/2026-08-01/manifest.json.old",
		"backups/2026-08-01.2/README",
	};
	struct retention_name rn;

	use_layout(DEFAULT_PATH);
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		ck_assert_msg(!retention_parse_name(&layout, other[i], &rn), "'%s' parsed as ours",
			      other[i]);
}
END_TEST

/* A second run of a day writes DATE.2, a third DATE.3 (path_set_sequence). */
START_TEST(numbered_set_folders)
{
	static const char *const bad[] = {
		"backups/2026-11-26.1/manifest.json",
		"backups/2026-11-26.0/manifest.json",
		"backups/2026-11-26.02/manifest.json",
		"backups/2026-11-26./manifest.json",
		"backups/2026-11-26.2x/manifest.json",
		"backups/2026-11-26.10000/manifest.json",
		"backups/2026-11-26.-2/manifest.json",
	};
	struct retention_name rn;
	char out[BLOB_NAME_MAX];

	use_layout(DEFAULT_PATH);
	ck_assert(retention_parse_name(&layout, "backups/2026-11-26.2/manifest.json", &rn));
	ck_assert_str_eq(rn.folder, "backups/2026-11-26.2/");
	ck_assert_int_eq(rn.seq, 2);
	ck_assert_int_eq(rn.day, day("2026-11-26"));
	ck_assert(retention_parse_name(&layout, "backups/2026-11-26.9999/tralivali_u.bson.gz",
				       &rn));
	ck_assert_int_eq(rn.seq, 9999);
	ck_assert(retention_parse_folder(&layout, "backups/2026-11-26.17", &rn));
	ck_assert_str_eq(rn.folder, "backups/2026-11-26.17/");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!retention_parse_name(&layout, bad[i], &rn), "'%s' parsed", bad[i]);

	/* What the run writes is what retention reads. */
	ck_assert_int_eq(path_set_sequence("backups/2026-11-26/tralivali_u.bson.gz", 12, out,
					   sizeof(out)), 0);
	ck_assert_str_eq(out, "backups/2026-11-26.12/tralivali_u.bson.gz");
	ck_assert(retention_parse_name(&layout, out, &rn));
	ck_assert_int_eq(rn.seq, 12);
	ck_assert_int_eq(path_set_sequence("backups/2026-11-26/", 2, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "backups/2026-11-26.2/");
	ck_assert_int_eq(path_set_sequence("backups/2026-11-26/", 1, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "backups/2026-11-26/");
	ck_assert_int_eq(path_set_sequence("backups/2026-11-26/", 2, out, 21), -1);

	/* With {time} the sequence follows the whole last segment. */
	use_layout(TIME_PATH);
	ck_assert(retention_parse_name(&layout, "b/2026-11-26T030007.3/c.bson.gz", &rn));
	ck_assert_int_eq(rn.seq, 3);
	ck_assert_int_eq(rn.seconds, 3 * 3600 + 7);
}
END_TEST

START_TEST(foreign_names)
{
	static const char *const foreign[] = {
		"backups/notes.txt",
		"backups/2026-13-01/tralivali_x.bson.gz",
		"backups/2026-02-30/tralivali_x.bson.gz",
		"backups/2026-02-29/tralivali_x.bson.gz",
		"backups/2026-11-00/tralivali_x.bson.gz",
		"other/2026-01-01/tralivali_x.bson.gz",
		"backups/2026-11-01",
		"backups/2026-11-01/",
		"backups/2026-11-01/sub/tralivali_x.bson.gz",
		"backups/2026-11-01x/tralivali_y.bson.gz",
		"backups/2026-1-01/tralivali_x.bson.gz",
		"backups/ 2026-11-01/tralivali_x.bson.gz",
		"backups/2026-11-0a/tralivali_x.bson.gz",
		"Backups/2026-11-01/x",
		"backups//2026-11-01/tralivali_x.bson.gz",
		"backups/2026-11-01T030000/tralivali_x.bson.gz",
		"backups",
		"",
	};
	struct retention_name rn;

	use_layout(DEFAULT_PATH);
	for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
		bool ours = retention_parse_name(&layout, foreign[i], &rn);
		ck_assert_msg(!ours, "'%s' parsed as ours", foreign[i]);
	}
}
END_TEST

START_TEST(names_under_a_time_layout)
{
	struct retention_name rn;

	use_layout(TIME_PATH);
	ck_assert(retention_parse_name(&layout, "b/2026-11-26T030007/c.bson.gz", &rn));
	ck_assert_str_eq(rn.folder, "b/2026-11-26T030007/");
	ck_assert_int_eq(rn.day, day("2026-11-26"));
	ck_assert_int_eq(rn.seconds, 3 * 3600 + 7);
	ck_assert(retention_parse_name(&layout, "b/2026-11-26T235959/manifest.json", &rn));
	ck_assert(!retention_parse_name(&layout, "b/2026-11-26T240000/c.bson.gz", &rn));
	ck_assert(!retention_parse_name(&layout, "b/2026-11-26T036000/c.bson.gz", &rn));
	ck_assert(!retention_parse_name(&layout, "b/2026-11-26T0300/c.bson.gz", &rn));
	ck_assert(!retention_parse_name(&layout, "b/2026-11-26/c.bson.gz", &rn));
	ck_assert(!retention_parse_name(&layout, "b/2026-11-26T03000x/c.bson.gz", &rn));
	ck_assert(!retention_parse_name(&layout, "b/2026-02-30T030000/c.bson.gz", &rn));
}
END_TEST

START_TEST(repeated_placeholders_must_agree)
{
	struct retention_name rn;

	use_layout("b/{date}/{date}/{collection}.bson.gz");
	ck_assert(retention_parse_name(&layout, "b/2026-11-26/2026-11-26/c.bson.gz", &rn));
	ck_assert(!retention_parse_name(&layout, "b/2026-11-26/2026-11-27/c.bson.gz", &rn));
}
END_TEST

START_TEST(folders)
{
	struct retention_name rn;

	use_layout(DEFAULT_PATH);
	ck_assert(retention_parse_folder(&layout, "backups/2026-11-26/", &rn));
	ck_assert_str_eq(rn.folder, "backups/2026-11-26/");
	ck_assert(retention_parse_folder(&layout, "backups/2026-11-26", &rn));
	ck_assert_str_eq(rn.folder, "backups/2026-11-26/");
	ck_assert(!retention_parse_folder(&layout, "backups/2026-11-26/tralivali_x.bson.gz", &rn));
	ck_assert(!retention_parse_folder(&layout, "backups/", &rn));
	ck_assert(!retention_parse_folder(&layout, "backups/2026-02-30/", &rn));
	ck_assert(!retention_parse_folder(&layout, "", &rn));
}
END_TEST

/* ---- manifests ---------------------------------------------------------- */

static enum retention_manifest parse(const char *json)
{
	char why[256] = "";
	enum retention_manifest m = retention_manifest_parse(json, strlen(json), why,
							     sizeof(why));

	if (m == RETENTION_UNREADABLE)
		ck_assert_msg(*why != '\0', "no reason for '%s'", json);
	return m;
}

START_TEST(manifest_texts)
{
	ck_assert_int_eq(parse("{\"format\": 1, \"complete\": true, \"collections\": []}"),
			 RETENTION_COMPLETE);
	ck_assert_int_eq(parse("\n  {\"complete\": false}"), RETENTION_INCOMPLETE);
	ck_assert_int_eq(parse(""), RETENTION_UNREADABLE);
	ck_assert_int_eq(parse("not json at all"), RETENTION_UNREADABLE);
	ck_assert_int_eq(parse("{\"complete\": true"), RETENTION_UNREADABLE);
	ck_assert_int_eq(parse("[true]"), RETENTION_UNREADABLE);
	ck_assert_int_eq(parse("{}"), RETENTION_UNREADABLE);
	ck_assert_int_eq(parse("{\"complete\": \"true\"}"), RETENTION_UNREADABLE);
	ck_assert_int_eq(parse("{\"complete\": 1}"), RETENTION_UNREADABLE);
	ck_assert_int_eq(parse("{\"done\": true}"), RETENTION_UNREADABLE);
	/* Only len bytes count: a cut-off text is not a manifest. */
	ck_assert_int_eq(retention_manifest_parse("{\"complete\": true}", 10, NULL, 0),
			 RETENTION_UNREADABLE);
}
END_TEST

/* ---- planner ------------------------------------------------------------ */

/* Today 2026-11-27, 30 days: the cutoff is 2026-10-28. */
START_TEST(plan_by_age_and_keep_min)
{
	struct retention_sets sets = { 0 };
	struct retention_policy p = policy("2026-11-27", 30, 3);
	char err[256];

	use_layout(DEFAULT_PATH);
	add_dated(&sets, "2026-09-01", RETENTION_COMPLETE);
	add_dated(&sets, "2026-11-27", RETENTION_COMPLETE);
	add_dated(&sets, "2026-08-01", RETENTION_NO_MANIFEST);
	add_dated(&sets, "2026-11-20", RETENTION_COMPLETE);
	add_dated(&sets, "2026-11-01", RETENTION_NO_MANIFEST);
	add_dated(&sets, "2026-10-28", RETENTION_INCOMPLETE);
	add_dated(&sets, "2026-10-27", RETENTION_COMPLETE);
	add_dated(&sets, "2026-10-20", RETENTION_INCOMPLETE);
	add_dated(&sets, "2026-10-10", RETENTION_UNREADABLE);
	ck_assert_int_eq(retention_plan(&sets, &p, err, sizeof(err)), 0);

	expect(&sets, "2026-11-27", false, "within 30 days (2026-11-27 >= 2026-10-28)");
	expect(&sets, "2026-11-20", false, "within 30 days (2026-11-20 >= 2026-10-28)");
	expect(&sets, "2026-11-01", false,
	       "within 30 days (2026-11-01 >= 2026-10-28); no manifest");
	/* Exactly at the cutoff is still within. */
	expect(&sets, "2026-10-28", false,
	       "within 30 days (2026-10-28 >= 2026-10-28); manifest says incomplete");
	/* The third newest complete set, one day too old. */
	expect(&sets, "2026-10-27", false,
	       "one of the newest 3 complete sets (2026-10-27 is older than 30 days)");
	expect(&sets, "2026-10-20", true, "2026-10-20 is older than 30 days, manifest says "
	       "incomplete (not a complete backup)");
	expect(&sets, "2026-10-10", true, "2026-10-10 is older than 30 days, manifest "
	       "unreadable (not a complete backup)");
	expect(&sets, "2026-09-01", true, "2026-09-01 is older than 30 days");
	expect(&sets, "2026-08-01", true, "2026-08-01 is older than 30 days, no manifest "
	       "(not a complete backup)");

	/* Planned oldest first. */
	for (size_t i = 1; i < sets.n; i++)
		ck_assert_int_lt(sets.v[i - 1].day, sets.v[i].day);
	retention_sets_free(&sets);
}
END_TEST

/* More complete sets than keep_min, but the newest complete ones are all
 * older than the window: exactly keep_min of them survive, the newest. */
START_TEST(newest_complete_sets_are_all_old)
{
	struct retention_sets sets = { 0 };
	struct retention_policy p = policy("2026-11-27", 30, 3);
	char date[16], err[256];

	use_layout(DEFAULT_PATH);
	for (int d = 1; d <= 10; d++) {
		snprintf(date, sizeof(date), "2026-01-%02d", d);
		add_dated(&sets, date, RETENTION_COMPLETE);
	}
	/* Newer but not complete: they never count towards keep_min. */
	add_dated(&sets, "2026-06-01", RETENTION_INCOMPLETE);
	add_dated(&sets, "2026-07-01", RETENTION_NO_MANIFEST);
	add_dated(&sets, "2026-08-01", RETENTION_UNREADABLE);
	add_dated(&sets, "2026-11-26", RETENTION_INCOMPLETE);
	add_dated(&sets, "2026-11-27", RETENTION_NO_MANIFEST);
	ck_assert_int_eq(retention_plan(&sets, &p, err, sizeof(err)), 0);

	for (int d = 1; d <= 10; d++) {
		snprintf(date, sizeof(date), "2026-01-%02d", d);
		expect(&sets, date, d <= 7, NULL);
	}
	expect(&sets, "2026-01-08", false,
	       "one of the newest 3 complete sets (2026-01-08 is older than 30 days)");
	expect(&sets, "2026-06-01", true, NULL);
	expect(&sets, "2026-07-01", true, NULL);
	expect(&sets, "2026-08-01", true, NULL);
	expect(&sets, "2026-11-26", false, NULL);
	expect(&sets, "2026-11-27", false, NULL);
	retention_sets_free(&sets);
}
END_TEST

/* Nothing complete anywhere: keep_min cannot be met by incomplete sets, so
 * they go by age alone. */
START_TEST(only_old_incomplete_sets)
{
	struct retention_sets sets = { 0 };
	struct retention_policy p = policy("2026-11-27", 30, 3);
	char err[256];

	use_layout(DEFAULT_PATH);
	add_dated(&sets, "2026-01-01", RETENTION_NO_MANIFEST);
	add_dated(&sets, "2026-02-01", RETENTION_INCOMPLETE);
	add_dated(&sets, "2026-03-01", RETENTION_UNREADABLE);
	add_dated(&sets, "2026-04-01", RETENTION_NO_MANIFEST);
	ck_assert_int_eq(retention_plan(&sets, &p, err, sizeof(err)), 0);
	for (size_t i = 0; i < sets.n; i++)
		ck_assert_msg(sets.v[i].remove, "%s kept: %s", sets.v[i].folder,
			      sets.v[i].reason);
	retention_sets_free(&sets);
}
END_TEST

START_TEST(keep_min_one_wording)
{
	struct retention_sets sets = { 0 };
	struct retention_policy p = policy("2026-11-27", 7, 1);
	char err[256];

	use_layout(DEFAULT_PATH);
	add_dated(&sets, "2026-10-01", RETENTION_COMPLETE);
	add_dated(&sets, "2026-10-02", RETENTION_COMPLETE);
	add_dated(&sets, "2026-11-26", RETENTION_INCOMPLETE);
	ck_assert_int_eq(retention_plan(&sets, &p, err, sizeof(err)), 0);
	expect(&sets, "2026-10-01", true, "2026-10-01 is older than 7 days");
	expect(&sets, "2026-10-02", false,
	       "the newest complete set (2026-10-02 is older than 7 days)");
	expect(&sets, "2026-11-26", false, NULL);
	retention_sets_free(&sets);
}
END_TEST

/* The run just made an incomplete set: nothing at all may go. */
START_TEST(incomplete_current_set_refuses)
{
	struct retention_sets sets = { 0 };
	struct retention_policy p = policy("2026-11-27", 30, 1);
	char err[256] = "";

	use_layout(DEFAULT_PATH);
	add_dated(&sets, "2026-01-01", RETENTION_COMPLETE);
	add_dated(&sets, "2026-01-02", RETENTION_NO_MANIFEST);
	add_dated(&sets, "2026-01-03", RETENTION_COMPLETE);
	add_dated(&sets, "2026-11-27", RETENTION_INCOMPLETE);
	p.current_set = "backups/2026-11-27/";
	ck_assert_int_eq(retention_plan(&sets, &p, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "backups/2026-11-27/") && strstr(err, "not complete"),
		      "message: %s", err);
	for (size_t i = 0; i < sets.n; i++)
		ck_assert_msg(!sets.v[i].remove, "%s planned for deletion", sets.v[i].folder);
	expect(&sets, "2026-01-01", false, NULL);
	ck_assert_ptr_nonnull(strstr(find(&sets, "2026-01-01")->reason, "nothing is deleted"));

	/* An unreadable manifest, or a set not listed at all: the same. */
	find(&sets, "2026-11-27")->manifest = RETENTION_UNREADABLE;
	ck_assert_int_eq(retention_plan(&sets, &p, err, sizeof(err)), -1);
	p.current_set = "backups/2026-11-28/";
	ck_assert_int_eq(retention_plan(&sets, &p, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "not in the listing"));
	for (size_t i = 0; i < sets.n; i++)
		ck_assert(!sets.v[i].remove);

	/* Once complete, the plan goes ahead. */
	find(&sets, "2026-11-27")->manifest = RETENTION_COMPLETE;
	p.current_set = "backups/2026-11-27/";
	ck_assert_int_eq(retention_plan(&sets, &p, err, sizeof(err)), 0);
	expect(&sets, "2026-01-01", true, NULL);
	expect(&sets, "2026-01-02", true, NULL);
	expect(&sets, "2026-01-03", true, NULL);
	expect(&sets, "2026-11-27", false, NULL);

	/* The run's own set is never deleted, even when a clock makes it old. */
	p = policy("2027-06-01", 30, 1);
	p.current_set = "backups/2026-01-01/";
	ck_assert_int_eq(retention_plan(&sets, &p, err, sizeof(err)), 0);
	expect(&sets, "2026-01-01", false, "the current run's set");
	expect(&sets, "2026-01-03", true, NULL);
	expect(&sets, "2026-11-27", false,
	       "the newest complete set (2026-11-27 is older than 30 days)");
	retention_sets_free(&sets);
}
END_TEST

/* With {time}, several sets a day: the newest complete by date and time. */
START_TEST(time_layout_plan)
{
	struct retention_sets sets = { 0 };
	struct retention_policy p = policy("2026-11-27", 30, 2);
	char err[256];

	use_layout(TIME_PATH);
	add_set(&sets, "b/2026-01-01T230000/", RETENTION_COMPLETE);
	add_set(&sets, "b/2026-01-01T010000/", RETENTION_COMPLETE);
	add_set(&sets, "b/2026-01-01T020000/", RETENTION_COMPLETE);
	add_set(&sets, "b/2026-01-02T000000/", RETENTION_INCOMPLETE);
	add_set(&sets, "b/2026-11-27T030000/", RETENTION_NO_MANIFEST);
	ck_assert_int_eq(retention_plan(&sets, &p, err, sizeof(err)), 0);
	ck_assert_str_eq(sets.v[0].folder, "b/2026-01-01T010000/");
	ck_assert(sets.v[0].remove);
	ck_assert_str_eq(sets.v[1].folder, "b/2026-01-01T020000/");
	ck_assert(!sets.v[1].remove);
	ck_assert_str_eq(sets.v[2].folder, "b/2026-01-01T230000/");
	ck_assert(!sets.v[2].remove);
	ck_assert_str_eq(sets.v[2].reason,
			 "one of the newest 2 complete sets (2026-01-01 is older than 30 days)");
	ck_assert_str_eq(sets.v[3].folder, "b/2026-01-02T000000/");
	ck_assert(sets.v[3].remove);
	ck_assert_str_eq(sets.v[4].folder, "b/2026-11-27T030000/");
	ck_assert(!sets.v[4].remove);
	retention_sets_free(&sets);
}
END_TEST

/* Several sets of one day: DATE, DATE.2, DATE.10 are in that order, and the
 * newest complete one is what status reports. */
START_TEST(numbered_sets_plan)
{
	struct retention_sets sets = { 0 };
	struct retention_policy p = policy("2026-11-27", 30, 2);
	char err[256];

	use_layout(DEFAULT_PATH);
	add_set(&sets, "backups/2026-01-01.10/", RETENTION_INCOMPLETE);
	add_set(&sets, "backups/2026-01-01.2/", RETENTION_COMPLETE);
	add_set(&sets, "backups/2026-01-01/", RETENTION_COMPLETE);
	add_set(&sets, "backups/2026-01-01.3/", RETENTION_COMPLETE);
	add_set(&sets, "backups/2026-11-27.2/", RETENTION_INCOMPLETE);
	add_set(&sets, "backups/2026-11-27/", RETENTION_NO_MANIFEST);
	ck_assert_int_eq(retention_plan(&sets, &p, err, sizeof(err)), 0);
	ck_assert_str_eq(sets.v[0].folder, "backups/2026-01-01/");
	ck_assert(sets.v[0].remove);
	ck_assert_str_eq(sets.v[1].folder, "backups/2026-01-01.2/");
	ck_assert(!sets.v[1].remove);
	ck_assert_str_eq(sets.v[2].folder, "backups/2026-01-01.3/");
	ck_assert(!sets.v[2].remove);
	ck_assert_str_eq(sets.v[3].folder, "backups/2026-01-01.10/");
	ck_assert(sets.v[3].remove);
	ck_assert_str_eq(sets.v[4].folder, "backups/2026-11-27/");
	ck_assert_str_eq(sets.v[5].folder, "backups/2026-11-27.2/");
	ck_assert_str_eq(retention_newest_complete(&sets, false)->folder, "backups/2026-01-01.3/");

	/* keep_min 0: every old set goes, and then nothing complete stays. */
	p.keep_min = 0;
	ck_assert_int_eq(retention_plan(&sets, &p, err, sizeof(err)), 0);
	ck_assert_ptr_null(retention_newest_complete(&sets, false));
	ck_assert_str_eq(retention_newest_complete(&sets, true)->folder, "backups/2026-01-01.3/");
	retention_sets_free(&sets);
	ck_assert_ptr_null(retention_newest_complete(&sets, true));
}
END_TEST

START_TEST(manifest_finished_times)
{
	static const char good[] = "{\"complete\": true, \"finished\": \"2026-11-27T03:04:05Z\"}";
	static const char *const bad[] = {
		"{\"complete\": true, \"finished\": null}",
		"{\"complete\": true}",
		"{\"finished\": \"2026-11-27 03:04:05Z\"}",
		"{\"finished\": \"2026-11-27T03:04:05\"}",
		"{\"finished\": \"2026-11-27T24:04:05Z\"}",
		"{\"finished\": \"2026-02-30T03:04:05Z\"}",
		"{\"finished\": 1764212645}",
		"not json",
		"",
	};

	ck_assert_int_eq(retention_manifest_finished(good, strlen(good)),
			 (long long)day("2026-11-27") * 86400 + 3 * 3600 + 4 * 60 + 5);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(retention_manifest_finished(bad[i], strlen(bad[i])) == -1,
			      "'%s' has a time", bad[i]);
}
END_TEST

/* Blobs of one set arriving in any order end up in one set. */
START_TEST(grouping)
{
	static const char *const names[] = {
		"backups/2026-11-02/tralivali_b.bson.gz", "backups/2026-11-01/tralivali_a.bson.gz",
		"backups/2026-11-02/manifest.json", "backups/2026-11-01/tralivali_b.bson.gz",
		"backups/2026-11-02/tralivali_a.bson.gz",
	};
	struct retention_sets sets = { 0 };
	struct retention_name rn;

	use_layout(DEFAULT_PATH);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		ck_assert(retention_parse_name(&layout, names[i], &rn));
		ck_assert_int_eq(retention_sets_add(&sets, &rn, names[i], 7), 0);
	}
	ck_assert_int_eq(sets.n, 2);
	ck_assert_str_eq(sets.v[0].folder, "backups/2026-11-02/");
	ck_assert_int_eq(sets.v[0].n_blobs, 3);
	ck_assert(sets.v[0].has_manifest);
	ck_assert_int_eq(sets.v[0].manifest_size, 7);
	ck_assert_int_eq(sets.v[1].n_blobs, 2);
	ck_assert(!sets.v[1].has_manifest);
	ck_assert_int_eq(sets.v[1].manifest, RETENTION_NO_MANIFEST);
	retention_sets_free(&sets);
	ck_assert_int_eq(sets.n, 0);
}
END_TEST

static Suite *retention_suite(void)
{
	Suite *s = suite_create("retention");
	TCase *tc = tcase_create("layout");

	tcase_add_test(tc, dates);
	tcase_add_test(tc, layout_parts);
	tcase_add_test(tc, names_under_the_default_layout);
	tcase_add_test(tc, names_with_a_database);
	tcase_add_test(tc, other_blobs_in_a_set_folder);
	tcase_add_test(tc, numbered_set_folders);
	tcase_add_test(tc, foreign_names);
	tcase_add_test(tc, names_under_a_time_layout);
	tcase_add_test(tc, repeated_placeholders_must_agree);
	tcase_add_test(tc, folders);
	tcase_add_test(tc, manifest_texts);
	tcase_add_test(tc, grouping);
	suite_add_tcase(s, tc);

	tc = tcase_create("plan");
	tcase_add_test(tc, plan_by_age_and_keep_min);
	tcase_add_test(tc, newest_complete_sets_are_all_old);
	tcase_add_test(tc, only_old_incomplete_sets);
	tcase_add_test(tc, keep_min_one_wording);
	tcase_add_test(tc, incomplete_current_set_refuses);
	tcase_add_test(tc, time_layout_plan);
	tcase_add_test(tc, numbered_sets_plan);
	tcase_add_test(tc, manifest_finished_times);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(retention_suite());
	int failed;

	log_open("check_retention", LOG_TARGET_STDERR, LOG_CRIT);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
