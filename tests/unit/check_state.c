/* check_state.c - the daemon's state file: round trip, atomic replacement,
 * and a damaged file moved aside instead of stopping the daemon. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

	make_dir();
	state_init(&st);
	st.last_run = BCON_NEW("run_id", BCON_UTF8("20261127T030000Z-1"),
			       "result", BCON_UTF8("partial"));
	st.last_run_started = 1795662007;
	st.last_run_finished = 1795662107;
	snprintf(st.last_complete_set, sizeof(st.last_complete_set), "backups/2026-11-26/");
	st.last_complete_finished = 1795575000;
	st.runs[RESULT_COMPLETE] = 7;
	st.runs[RESULT_PARTIAL] = 1;
	snprintf(st.breaker_state, sizeof(st.breaker_state), "open");
	st.breaker_failures = 5;
	st.breaker_transitions = 3;
	ck_assert_int_eq(state_save(dir, &st, err, sizeof(err)), 0);
	ck_assert_int_eq(state_load(dir, &back, err, sizeof(err)), 0);
	ck_assert_int_eq(back.last_run_started, 1795662007);
	ck_assert_int_eq(back.last_run_finished, 1795662107);
	ck_assert_str_eq(back.last_complete_set, "backups/2026-11-26/");
	ck_assert_int_eq(back.last_complete_finished, 1795575000);
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

Suite *state_suite(void)
{
	Suite *s = suite_create("state");
	TCase *tc = tcase_create("state");

	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, missing_file_is_an_empty_state);
	tcase_add_test(tc, garbage_is_moved_aside);
	tcase_add_test(tc, unknown_breaker_state_is_closed);
	suite_add_tcase(s, tc);
	return s;
}
