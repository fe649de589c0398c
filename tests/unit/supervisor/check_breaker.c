/* check_breaker.c - the storage circuit breaker's state machine. */
#include "config.h"

#include <check.h>

#include "breaker.h"
#include "unit_suites.h"

static int changes;

static void count_change(void *ctx)
{
	(void)ctx;
	changes++;
}

START_TEST(opens_after_threshold_consecutive_failures)
{
	struct breaker b;

	breaker_init(&b, 3, 30);
	ck_assert(breaker_allow(&b, 1000));
	breaker_failure(&b, 1000);
	breaker_failure(&b, 1001);
	ck_assert_int_eq(b.state, BREAKER_CLOSED);
	/* A success in between resets the count: failures must be consecutive. */
	breaker_success(&b);
	breaker_failure(&b, 1002);
	breaker_failure(&b, 1003);
	ck_assert_int_eq(b.state, BREAKER_CLOSED);
	breaker_failure(&b, 1004);
	ck_assert_int_eq(b.state, BREAKER_OPEN);
	ck_assert(!breaker_allow(&b, 1004));
	ck_assert(!breaker_allow(&b, 1033));
	ck_assert_int_eq(breaker_wait_seconds(&b, 1010), 24);
}
END_TEST

START_TEST(half_open_allows_exactly_one_trial)
{
	struct breaker b;

	breaker_init(&b, 1, 30);
	breaker_failure(&b, 1000);
	ck_assert_int_eq(b.state, BREAKER_OPEN);
	ck_assert(breaker_allow(&b, 1030));
	ck_assert_int_eq(b.state, BREAKER_HALF_OPEN);
	ck_assert(!breaker_allow(&b, 1030));
	ck_assert(!breaker_allow(&b, 1031));
	/* The trial ended without a verdict (e.g. MongoDB failed): another may go. */
	breaker_release(&b);
	ck_assert(breaker_allow(&b, 1032));
	breaker_success(&b);
	ck_assert_int_eq(b.state, BREAKER_CLOSED);
	ck_assert_int_eq(b.failures, 0);
	ck_assert(breaker_allow(&b, 1033));
	ck_assert(breaker_allow(&b, 1033));
}
END_TEST

START_TEST(failed_trial_opens_again)
{
	struct breaker b;

	breaker_init(&b, 5, 10);
	b.on_change = count_change;
	changes = 0;
	for (int i = 0; i < 5; i++)
		breaker_failure(&b, 2000);
	ck_assert_int_eq(b.state, BREAKER_OPEN);
	ck_assert(breaker_allow(&b, 2010));
	breaker_failure(&b, 2011);
	ck_assert_int_eq(b.state, BREAKER_OPEN);
	ck_assert(!breaker_allow(&b, 2015));
	ck_assert(breaker_allow(&b, 2021));
	ck_assert_uint_eq(b.transitions, 4);   /* open, half-open, open, half-open */
	ck_assert_int_ge(changes, 4);
}
END_TEST

START_TEST(names)
{
	ck_assert_str_eq(breaker_state_name(BREAKER_HALF_OPEN), "half-open");
	ck_assert_int_eq(breaker_state_from_name("open"), BREAKER_OPEN);
	ck_assert_int_eq(breaker_state_from_name("ajar"), -1);
}
END_TEST

Suite *breaker_suite(void)
{
	Suite *s = suite_create("breaker");
	TCase *tc = tcase_create("breaker");

	tcase_add_test(tc, opens_after_threshold_consecutive_failures);
	tcase_add_test(tc, half_open_allows_exactly_one_trial);
	tcase_add_test(tc, failed_trial_opens_again);
	tcase_add_test(tc, names);
	suite_add_tcase(s, tc);
	return s;
}
