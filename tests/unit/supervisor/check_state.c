/* check_state.c - the daemon's state file: round trip, atomic replacement,
 * and a damaged file moved aside instead of stopping the daemon. */
#include "config.h"

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "state_file.h"
#include "unit_suites.h"

static char dir[64];

static void make_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/check_state.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/state.json", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/state.json.bad", dir);
	unlink(path);
	rmdir(dir);
}

static void write_state_file(const char *text)
{
	char path[128];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/state.json", dir);
	fp = fopen(path, "w");
	ck_assert_ptr_nonnull(fp);
	fputs(text, fp);
	fclose(fp);
}

START_TEST(round_trip)
{
	struct daemon_state st, back;
	char err[256];
	time_t now;

	make_dir();
	state_init(&st);
	st.last_run = BCON_NEW("run_id", BCON_UTF8("20261127T030000Z-1"),
			       "result", BCON_UTF8("partial"));
	/* Recent times: a time in the future would be refused on load. */
	now = time(NULL);
	st.last_run_started = now - 3600;
	st.last_run_finished = now - 3500;
	snprintf(st.last_complete_set, sizeof(st.last_complete_set), "backups/2026-11-26/");
	st.last_complete_finished = now - 90000;
	st.runs[RESULT_COMPLETE] = 7;
	st.runs[RESULT_PARTIAL] = 1;
	snprintf(st.breaker_state, sizeof(st.breaker_state), "open");
	st.breaker_failures = 5;
	st.breaker_transitions = 3;
	ck_assert_int_eq(state_save(dir, &st, err, sizeof(err)), 0);
	ck_assert_int_eq(state_load(dir, &back, err, sizeof(err)), 0);
	ck_assert_int_eq(back.last_run_started, now - 3600);
	ck_assert_int_eq(back.last_run_finished, now - 3500);
	ck_assert_str_eq(back.last_complete_set, "backups/2026-11-26/");
	ck_assert_int_eq(back.last_complete_finished, now - 90000);
	ck_assert_uint_eq(back.runs[RESULT_COMPLETE], 7);
	ck_assert_uint_eq(back.runs[RESULT_PARTIAL], 1);
	ck_assert_uint_eq(back.runs[RESULT_FAILED], 0);
	ck_assert_str_eq(back.breaker_state, "open");
	ck_assert_int_eq(back.breaker_failures, 5);
	ck_assert_uint_eq(back.breaker_transitions, 3);
	ck_assert_ptr_nonnull(back.last_run);
	bson_iter_t it;
	ck_assert(bson_iter_init_find(&it, back.last_run, "result"));
	ck_assert_str_eq(bson_iter_utf8(&it, NULL), "partial");

	/* No temporary file is left behind. */
	char tmp[128];
	snprintf(tmp, sizeof(tmp), "%s/.state.json.tmp", dir);
	ck_assert_int_ne(access(tmp, F_OK), 0);
	state_free(&st);
	state_free(&back);
	remove_dir();
}
END_TEST

START_TEST(missing_file_is_an_empty_state)
{
	struct daemon_state st;
	char err[256];

	make_dir();
	ck_assert_int_eq(state_load(dir, &st, err, sizeof(err)), 0);
	ck_assert_ptr_null(st.last_run);
	ck_assert_str_eq(st.breaker_state, "closed");
	ck_assert_int_eq(st.last_run_started, 0);
	state_free(&st);
	remove_dir();
}
END_TEST

START_TEST(garbage_is_moved_aside)
{
	struct daemon_state st;
	char err[256], bad[128];
	static const char *const garbage[] = {
		"{not json", "", "[1,2,3]", "{\"format\": 2}", "\x01\x02\xff",
	};

	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		make_dir();
		write_state_file(garbage[i]);
		ck_assert_int_eq(state_load(dir, &st, err, sizeof(err)), 1);
		ck_assert_msg(strstr(err, "moved aside") != NULL, "%s", err);
		snprintf(bad, sizeof(bad), "%s/state.json.bad", dir);
		ck_assert_int_eq(access(bad, F_OK), 0);
		ck_assert_ptr_null(st.last_run);
		state_free(&st);
		remove_dir();
	}
}
END_TEST

START_TEST(unknown_breaker_state_is_closed)
{
	struct daemon_state st;
	char err[256];
	const char *json = "{\"format\": 1, \"breaker\": {\"state\": \"sideways\"}, "
			   "\"runs\": {\"complete\": -4}}";

	ck_assert_int_eq(state_decode(json, strlen(json), &st, err, sizeof(err)), 0);
	ck_assert_str_eq(st.breaker_state, "closed");
	ck_assert_uint_eq(st.runs[RESULT_COMPLETE], 0);
	state_free(&st);
}
END_TEST

/* ---- every field checked on its own ------------------------------------ */

/* The fields of a state file, each with a value that is valid (relative to
 * now, since a time in the future is refused).  A case replaces one of
 * them and expects exactly that one refused, named with its value in the
 * report, set to its default, and every other field kept. */
enum field {
	F_LAST_RUN, F_STARTED, F_FINISHED, F_SET, F_SET_FINISHED,
	F_COMPLETE, F_PARTIAL, F_FAILED, F_CANCELLED,
	F_BREAKER_STATE, F_FAILURES, F_OPENED, F_TRANSITIONS, F_COUNT
};

static const char *const field_names[F_COUNT] = {
	"last_run", "last_run_started", "last_run_finished", "last_complete_set",
	"last_complete_finished", "runs.complete", "runs.partial", "runs.failed",
	"runs.cancelled", "breaker.state", "breaker.failures", "breaker.opened",
	"breaker.transitions",
};

#define GOOD_RUN "{\"run_id\": \"20261127T030000Z-1\", \"result\": \"partial\", " \
		 "\"collections\": [{\"name\": \"users\", \"result\": \"ok\"}]}"
#define GOOD_SET "backups/2026-11-26/"

static time_t now;

static void good_value(enum field f, char *out, size_t len)
{
	switch (f) {
	case F_LAST_RUN: snprintf(out, len, "%s", GOOD_RUN); break;
	case F_STARTED: snprintf(out, len, "%lld", (long long)(now - 7200)); break;
	case F_FINISHED: snprintf(out, len, "%lld", (long long)(now - 7100)); break;
	case F_SET: snprintf(out, len, "\"%s\"", GOOD_SET); break;
	case F_SET_FINISHED: snprintf(out, len, "%lld", (long long)(now - 90000)); break;
	case F_COMPLETE: snprintf(out, len, "7"); break;
	case F_PARTIAL: snprintf(out, len, "1"); break;
	case F_FAILED: snprintf(out, len, "2"); break;
	case F_CANCELLED: snprintf(out, len, "3"); break;
	case F_BREAKER_STATE: snprintf(out, len, "\"open\""); break;
	case F_FAILURES: snprintf(out, len, "5"); break;
	case F_OPENED: snprintf(out, len, "%lld", (long long)(now - 60)); break;
	case F_TRANSITIONS: snprintf(out, len, "4"); break;
	case F_COUNT: break;
	}
}

/* The whole file with field `bad` (F_COUNT: none) set to value. */
static char *state_text(enum field bad, const char *value)
{
	char v[F_COUNT][4096];
	char *text;

	for (int f = 0; f < F_COUNT; f++) {
		if ((enum field)f == bad)
			snprintf(v[f], sizeof(v[f]), "%s", value);
		else
			good_value((enum field)f, v[f], sizeof(v[f]));
	}
	ck_assert_int_gt(asprintf(&text, "{\"format\": 1, \"last_run\": %s, "
				  "\"last_run_started\": %s, \"last_run_finished\": %s, "
				  "\"last_complete_set\": %s, \"last_complete_finished\": %s, "
				  "\"runs\": {\"complete\": %s, \"partial\": %s, \"failed\": %s, "
				  "\"cancelled\": %s}, \"breaker\": {\"state\": %s, "
				  "\"failures\": %s, \"opened\": %s, \"transitions\": %s}}",
				  v[F_LAST_RUN], v[F_STARTED], v[F_FINISHED], v[F_SET],
				  v[F_SET_FINISHED], v[F_COMPLETE], v[F_PARTIAL], v[F_FAILED],
				  v[F_CANCELLED], v[F_BREAKER_STATE], v[F_FAILURES], v[F_OPENED],
				  v[F_TRANSITIONS]), 0);
	return text;
}

/* Field f as decoded equals its good value (kept) or its default. */
static bool field_is(const struct daemon_state *st, enum field f, bool kept)
{
	bson_iter_t it;

	switch (f) {
	case F_LAST_RUN:
		if (!kept)
			return st->last_run == NULL;
		return st->last_run != NULL && bson_iter_init_find(&it, st->last_run, "run_id") &&
		       strcmp(bson_iter_utf8(&it, NULL), "20261127T030000Z-1") == 0;
	case F_STARTED: return st->last_run_started == (kept ? now - 7200 : 0);
	case F_FINISHED: return st->last_run_finished == (kept ? now - 7100 : 0);
	case F_SET: return strcmp(st->last_complete_set, kept ? GOOD_SET : "") == 0;
	case F_SET_FINISHED: return st->last_complete_finished == (kept ? now - 90000 : 0);
	case F_COMPLETE: return st->runs[RESULT_COMPLETE] == (kept ? 7u : 0u);
	case F_PARTIAL: return st->runs[RESULT_PARTIAL] == (kept ? 1u : 0u);
	case F_FAILED: return st->runs[RESULT_FAILED] == (kept ? 2u : 0u);
	case F_CANCELLED: return st->runs[RESULT_CANCELLED] == (kept ? 3u : 0u);
	case F_BREAKER_STATE: return strcmp(st->breaker_state, kept ? "open" : "closed") == 0;
	case F_FAILURES: return st->breaker_failures == (kept ? 5 : 0);
	case F_OPENED: return st->breaker_opened == (kept ? now - 60 : 0);
	case F_TRANSITIONS: return st->breaker_transitions == (kept ? 4u : 0u);
	case F_COUNT: break;
	}
	return false;
}

struct reports {
	char text[8192];
	int n;
};

static void collect(void *ctx, const char *msg)
{
	struct reports *r = ctx;
	size_t used = strlen(r->text);

	snprintf(r->text + used, sizeof(r->text) - used, "%s\n", msg);
	r->n++;
}

/* Decodes text; the number of fields refused (checked against the reports). */
static int decode(const char *text, struct daemon_state *st, struct reports *r)
{
	char err[256] = "";
	int n;

	memset(r, 0, sizeof(*r));
	n = state_decode_report(text, strlen(text), st, collect, r, err, sizeof(err));
	ck_assert_msg(n >= 0, "refused as a whole (%s): %s", err, text);
	ck_assert_int_eq(n, r->n);
	return n;
}

/* Field bad set to value: refused with a report that starts with
 * "FIELD: SHOWN" and says what is used instead; the rest kept. */
static void expect_refused_as(enum field bad, const char *reported, const char *value,
			      const char *shown)
{
	struct daemon_state st;
	struct reports r;
	char want[512];
	char *text = state_text(bad, value);

	snprintf(want, sizeof(want), "%s: %s", reported, shown);
	ck_assert_msg(decode(text, &st, &r) == 1, "%s = %.80s: %d reports:\n%s",
		      field_names[bad], value, r.n, r.text);
	ck_assert_msg(strncmp(r.text, want, strlen(want)) == 0,
		      "%s = %.80s: report '%s' does not start with '%s'", field_names[bad],
		      value, r.text, want);
	ck_assert_msg(strstr(r.text, "; using ") != NULL, "no default named: %s", r.text);
	ck_assert_msg(strlen(r.text) < 400, "report too long: %s", r.text);
	for (int f = 0; f < F_COUNT; f++)
		ck_assert_msg(field_is(&st, (enum field)f, (enum field)f != bad),
			      "%s = %.80s: %s is not %s", field_names[bad], value, field_names[f],
			      (enum field)f == bad ? "its default" : "kept");
	state_free(&st);
	free(text);
}

static void expect_refused(enum field bad, const char *value, const char *shown)
{
	expect_refused_as(bad, field_names[bad], value, shown);
}

static void expect_accepted(enum field f, const char *value)
{
	struct daemon_state st;
	struct reports r;
	char *text = state_text(f, value);

	ck_assert_msg(decode(text, &st, &r) == 0, "%s = %.80s refused: %s", field_names[f],
		      value, r.text);
	state_free(&st);
	free(text);
}

START_TEST(valid_state_has_no_reports)
{
	struct daemon_state st;
	struct reports r;
	char *text;

	now = time(NULL);
	text = state_text(F_COUNT, NULL);
	ck_assert_int_eq(decode(text, &st, &r), 0);
	for (int f = 0; f < F_COUNT; f++)
		ck_assert_msg(field_is(&st, (enum field)f, true), "%s not kept", field_names[f]);
	state_free(&st);
	free(text);
}
END_TEST

START_TEST(counters)
{
	static const enum field counter_fields[] = { F_COMPLETE, F_PARTIAL, F_FAILED, F_CANCELLED,
					       F_TRANSITIONS };

	now = time(NULL);
	for (size_t i = 0; i < sizeof(counter_fields) / sizeof(counter_fields[0]); i++) {
		enum field f = counter_fields[i];
		expect_refused(f, "-4", "-4 is not a whole number from 0 to 9007199254740991");
		expect_refused(f, "1.5", "1.5 is not a whole number");
		expect_refused(f, "{\"$numberDouble\": \"NaN\"}", "nan is not a whole number");
		expect_refused(f, "{\"$numberDouble\": \"-Infinity\"}", "-inf is not a whole number");
		expect_refused(f, "1e300", "1.0000000000000001e+300 is not a whole number");
		expect_refused(f, "{\"$numberLong\": \"9007199254740992\"}",
			       "9007199254740992 is not a whole number");
		expect_refused(f, "{\"$numberLong\": \"-9223372036854775808\"}",
			       "-9223372036854775808 is not");
		expect_refused(f, "\"12\"", "'12' is not a number");
		expect_refused(f, "true", "true is not a number");
		expect_refused(f, "null", "null is not a number");
		expect_accepted(f, "0");
		expect_accepted(f, "9007199254740991");
		expect_accepted(f, "12.0");
	}
}
END_TEST

START_TEST(breaker_failures)
{
	now = time(NULL);
	expect_refused(F_FAILURES, "-3", "-3 is not a whole number from 0 to 1000000000");
	expect_refused(F_FAILURES, "1000000001", "1000000001 is not a whole number");
	expect_refused(F_FAILURES, "{\"$numberLong\": \"9223372036854775807\"}",
		       "9223372036854775807 is not a whole number");
	expect_refused(F_FAILURES, "4294967301", "4294967301 is not");
	expect_refused(F_FAILURES, "\"five\"", "'five' is not a number");
	expect_accepted(F_FAILURES, "0");
	expect_accepted(F_FAILURES, "1000000000");
}
END_TEST

START_TEST(breaker_state)
{
	now = time(NULL);
	expect_refused(F_BREAKER_STATE, "\"sideways\"",
		       "'sideways' is not closed, open or half-open; using 'closed'");
	expect_refused(F_BREAKER_STATE, "\"OPEN\"", "'OPEN' is not closed, open or half-open");
	expect_refused(F_BREAKER_STATE, "\"\"", "'' is not closed, open or half-open");
	expect_refused(F_BREAKER_STATE, "\"half-open-and-then-some\"",
		       "'half-open-and-then-some' is longer than 15 bytes");
	expect_refused(F_BREAKER_STATE, "\"open\\n\"", "'open?' contains a control character");
	expect_refused(F_BREAKER_STATE, "\"open\\u0000\"", "'open?' contains a control character");
	expect_refused(F_BREAKER_STATE, "2", "2 is not a string");
	expect_refused(F_BREAKER_STATE, "{\"state\": \"open\"}", "an object is not a string");
	expect_accepted(F_BREAKER_STATE, "\"closed\"");
	expect_accepted(F_BREAKER_STATE, "\"half-open\"");
}
END_TEST

START_TEST(times)
{
	static const enum field time_fields[] = { F_STARTED, F_FINISHED, F_SET_FINISHED, F_OPENED };
	char future[32], later[32], shown[64];

	now = time(NULL);
	snprintf(future, sizeof(future), "%lld", (long long)now + 10 * 86400);
	snprintf(later, sizeof(later), "%lld", (long long)now + 3600);
	for (size_t i = 0; i < sizeof(time_fields) / sizeof(time_fields[0]); i++) {
		enum field f = time_fields[i];
		expect_refused(f, "-1", "-1 is not 0 (never) or a time from 2000-01-01T00:00:00Z");
		expect_refused(f, "1", "1 is not 0 (never) or a time");
		expect_refused(f, "946684799", "946684799 is not 0 (never) or a time");
		snprintf(shown, sizeof(shown), "%s is not 0 (never) or a time", future);
		expect_refused(f, future, shown);
		expect_refused(f, "{\"$numberLong\": \"9223372036854775807\"}",
			       "9223372036854775807 is not 0 (never) or a time");
		expect_refused(f, "1.5e10", "15000000000 is not 0");
		expect_refused(f, "1795748400.5", "1795748400.5 is not a whole number");
		expect_refused(f, "\"yesterday\"", "'yesterday' is not a number");
		/* 0 is never; a little clock skew is no reason to refuse. */
		if (f != F_FINISHED) {
			expect_accepted(f, "0");
			expect_accepted(f, "946684800");
		}
		/* (A start after the finish is refused below.) */
		if (f != F_STARTED)
			expect_accepted(f, later);
	}
	/* A run that finished before it started. */
	snprintf(shown, sizeof(shown), "%lld is before last_run_started (%lld)",
		 (long long)(now - 7300), (long long)(now - 7200));
	snprintf(future, sizeof(future), "%lld", (long long)(now - 7300));
	expect_refused(F_FINISHED, future, shown);
}
END_TEST

START_TEST(last_complete_set)
{
	char *big = malloc(2100), shown[128];

	now = time(NULL);
	ck_assert_ptr_nonnull(big);
	big[0] = '"';
	memset(big + 1, 'a', 2000);
	snprintf(big + 2001, 10, "\"");
	snprintf(shown, sizeof(shown), "'%.40s...' (2000 bytes) is longer than 1023 bytes",
		 big + 1);
	expect_refused(F_SET, big, shown);
	/* Exactly the longest. */
	big[1024] = '"';
	big[1025] = '\0';
	expect_accepted(F_SET, big);
	big[1024] = 'a';
	big[1025] = '"';
	big[1026] = '\0';
	expect_refused(F_SET, big, "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' (1024 bytes)");
	free(big);
	expect_refused(F_SET, "\"backups/\\u0007/\"", "'backups/?/' contains a control character");
	expect_refused(F_SET, "\"backups/\\n# HELP x\"", "'backups/?# HELP x' contains a control");
	expect_refused(F_SET, "42", "42 is not a string");
	expect_refused(F_SET, "[\"backups/\"]", "an array is not a string");
	/* The cut never splits a character: 39 bytes, then a 2-byte one. */
	expect_refused(F_SET, "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\\u00e9\\u0001\"",
		       "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' (42 bytes) contains");
	expect_accepted(F_SET, "\"\"");
	expect_accepted(F_SET, "\"backups/2026-11-27.2/\\u00e9t\\u00e9/\"");
}
END_TEST

START_TEST(last_run)
{
	char *long_id;

	now = time(NULL);
	expect_refused(F_LAST_RUN, "[1, 2]", "an array is not an object; using none");
	expect_refused(F_LAST_RUN, "\"done\"", "'done' is not an object");
	expect_refused(F_LAST_RUN, "17", "17 is not an object");
	/* What identifies the run: reported as the sub-field, the whole
	 * record dropped. */
	expect_refused_as(F_LAST_RUN, "last_run.run_id",
			  "{\"run_id\": \"\", \"result\": \"complete\"}",
			  "'' is not a run id (1 to 128 printable characters); using no last run");
	expect_refused_as(F_LAST_RUN, "last_run.run_id", "{\"run_id\": \"a b\"}",
			  "'a b' is not a run id");
	expect_refused_as(F_LAST_RUN, "last_run.run_id", "{\"run_id\": 12}",
			  "12 is not a run id");
	ck_assert_int_gt(asprintf(&long_id, "{\"run_id\": \"%0200d\"}", 1), 0);
	expect_refused_as(F_LAST_RUN, "last_run.run_id", long_id,
			  "'0000000000000000000000000000000000000000...' (200 bytes) is not a run id");
	free(long_id);
	expect_refused_as(F_LAST_RUN, "last_run.result",
			  "{\"run_id\": \"r1\", \"result\": \"sideways\"}",
			  "'sideways' is not one of complete, partial, failed, cancelled");
	expect_refused_as(F_LAST_RUN, "last_run.result",
			  "{\"run_id\": \"r1\", \"result\": \"complete\\u0000x\"}",
			  "'complete?x' is not one of");
	expect_refused_as(F_LAST_RUN, "last_run.result", "{\"run_id\": \"r1\", \"result\": 1}",
			  "1 is not one of");
	expect_refused_as(F_LAST_RUN, "last_run.collections",
			  "{\"run_id\": \"r1\", \"collections\": {\"a\": 1}}",
			  "an object is not a list");
	expect_accepted(F_LAST_RUN, "null");
	expect_accepted(F_LAST_RUN, "{}");
}
END_TEST

/* The report says which field of which file; last_run is nested, so its
 * reports name the sub-field. */
START_TEST(report_names_nested_fields)
{
	struct daemon_state st;
	struct reports r;
	char *text;

	now = time(NULL);
	text = state_text(F_LAST_RUN, "{\"run_id\": \"r1\", \"result\": \"sideways\"}");
	ck_assert_int_eq(decode(text, &st, &r), 1);
	ck_assert_msg(strncmp(r.text, "last_run.result: 'sideways' ", 28) == 0, "%s", r.text);
	state_free(&st);
	free(text);
}
END_TEST

START_TEST(many_bad_fields_each_reported)
{
	struct daemon_state st;
	struct reports r;
	const char *json = "{\"format\": 1, \"runs\": {\"complete\": -1, \"failed\": 3}, "
			   "\"breaker\": {\"state\": \"ajar\", \"failures\": -2, "
			   "\"transitions\": 9}, \"last_run_started\": -7, "
			   "\"last_complete_set\": \"x\\ty\"}";

	now = time(NULL);
	ck_assert_int_eq(decode(json, &st, &r), 5);
	ck_assert_msg(strstr(r.text, "runs.complete: -1 ") != NULL, "%s", r.text);
	ck_assert_msg(strstr(r.text, "breaker.state: 'ajar' ") != NULL, "%s", r.text);
	ck_assert_msg(strstr(r.text, "breaker.failures: -2 ") != NULL, "%s", r.text);
	ck_assert_msg(strstr(r.text, "last_run_started: -7 ") != NULL, "%s", r.text);
	ck_assert_msg(strstr(r.text, "last_complete_set: 'x?y' ") != NULL, "%s", r.text);
	ck_assert_uint_eq(st.runs[RESULT_FAILED], 3);
	ck_assert_uint_eq(st.breaker_transitions, 9);
	ck_assert_uint_eq(st.runs[RESULT_COMPLETE], 0);
	ck_assert_str_eq(st.breaker_state, "closed");
	ck_assert_int_eq(st.breaker_failures, 0);
	ck_assert_int_eq(st.last_run_started, 0);
	ck_assert_str_eq(st.last_complete_set, "");
	/* Without a listener: the same values, no crash. */
	struct daemon_state quiet;
	char err[64];
	ck_assert_int_eq(state_decode(json, strlen(json), &quiet, err, sizeof(err)), 0);
	ck_assert_uint_eq(quiet.runs[RESULT_FAILED], 3);
	ck_assert_uint_eq(quiet.runs[RESULT_COMPLETE], 0);
	state_free(&st);
	state_free(&quiet);
}
END_TEST

/* state_load: a refused field is a warning naming the file, the field and
 * the value; the file is kept, not moved aside. */
START_TEST(load_warns_and_keeps_the_file)
{
	struct daemon_state st;
	char err[256] = "", bad[128], want[256];
	const char *msg;
	time_t when;
	int prio;

	make_dir();
	write_state_file("{\"format\": 1, \"runs\": {\"complete\": 5, \"partial\": -9}, "
			 "\"breaker\": {\"failures\": -3}}");
	ck_assert_int_eq(state_load(dir, &st, err, sizeof(err)), 0);
	ck_assert_uint_eq(st.runs[RESULT_COMPLETE], 5);
	ck_assert_uint_eq(st.runs[RESULT_PARTIAL], 0);
	ck_assert_int_eq(st.breaker_failures, 0);
	snprintf(bad, sizeof(bad), "%s/state.json.bad", dir);
	ck_assert_int_ne(access(bad, F_OK), 0);
	/* The last of the two warnings. */
	msg = log_last_problem(&when, &prio);
	snprintf(want, sizeof(want), "state: %s/state.json: breaker.failures: -3 is not a whole "
		 "number from 0 to 1000000000; using 0", dir);
	ck_assert_str_eq(msg, want);
	ck_assert_int_eq(prio, LOG_WARNING);
	state_free(&st);
	remove_dir();
}
END_TEST

Suite *state_suite(void)
{
	Suite *s = suite_create("state");
	TCase *tc = tcase_create("state");

	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, missing_file_is_an_empty_state);
	tcase_add_test(tc, garbage_is_moved_aside);
	tcase_add_test(tc, unknown_breaker_state_is_closed);
	tcase_add_test(tc, valid_state_has_no_reports);
	tcase_add_test(tc, counters);
	tcase_add_test(tc, breaker_failures);
	tcase_add_test(tc, breaker_state);
	tcase_add_test(tc, times);
	tcase_add_test(tc, last_complete_set);
	tcase_add_test(tc, last_run);
	tcase_add_test(tc, report_names_nested_fields);
	tcase_add_test(tc, many_bad_fields_each_reported);
	tcase_add_test(tc, load_warns_and_keeps_the_file);
	suite_add_tcase(s, tc);
	return s;
}
