/* check_cron.c - the cron engine: syntax, day rules, daylight saving time,
 * zone files.
 *
 * Expected occurrences were worked out by hand from the calendar (2026-01-01
 * is a Thursday) and from `zdump -v` for the zone transitions; comments give
 * the wall-clock times.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cron.h"

#define NY "America/New_York"
#define LH "Australia/Lord_Howe"

static time_t utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	return timegm(&tm);
}

/* A wall-clock time at UTC offset off_min minutes, e.g. 01:30-04 is
 * wall(..., 1, 30, -240). */
static time_t wall(int y, int mo, int d, int h, int mi, int off_min)
{
	return utc(y, mo, d, h, mi, 0) - (time_t)off_min * 60;
}

static const char *show(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
	return buf;
}

static void parse_ok(const char *text, struct cron_expr *e)
{
	char err[256] = "";

	ck_assert_msg(cron_parse(text, e, err, sizeof(err)) == 0, "'%s' rejected: %s", text, err);
}

static void expect_seq(const char *text, const char *tz, time_t from, const time_t *want,
		       size_t n)
{
	struct cron_expr e;
	char err[256] = "", a[32], b[32], c[32];

	parse_ok(text, &e);
	for (size_t i = 0; i < n; i++) {
		time_t got = 0;
		int r = cron_next(&e, tz, from, &got, err, sizeof(err));

		ck_assert_msg(r == 0, "'%s' in %s after %s: returned %d (%s)", text, tz,
			      show(from, a, sizeof(a)), r, err);
		ck_assert_msg(got == want[i], "'%s' in %s, occurrence %zu after %s: got %s, want %s",
			      text, tz, i + 1, show(from, a, sizeof(a)), show(got, b, sizeof(b)),
			      show(want[i], c, sizeof(c)));
		from = got;
	}
}

#define EXPECT(text, tz, from, ...) do { \
		const time_t want_[] = { __VA_ARGS__ }; \
		expect_seq(text, tz, from, want_, sizeof(want_) / sizeof(want_[0])); \
	} while (0)

static void expect_none(const char *text, const char *tz, time_t from)
{
	struct cron_expr e;
	char err[256] = "", a[32], b[32];
	time_t got = 0;
	int r;

	parse_ok(text, &e);
	r = cron_next(&e, tz, from, &got, err, sizeof(err));
	ck_assert_msg(r == 1, "'%s' after %s: returned %d (%s), wanted none", text,
		      show(from, a, sizeof(a)), r, r == 0 ? show(got, b, sizeof(b)) : err);
}

/* Rejected, with a message containing `part` (the field's name). */
static void expect_invalid(const char *text, const char *part)
{
	struct cron_expr e;
	char err[256] = "";

	ck_assert_msg(cron_parse(text, &e, err, sizeof(err)) == -1, "'%s' accepted", text);
	ck_assert_msg(strstr(err, part) != NULL, "'%s': message '%s' lacks '%s'", text, err, part);
}

static uint64_t bits(int lo, int hi)
{
	uint64_t b = 0;

	for (int v = lo; v <= hi; v++)
		b |= 1ULL << v;
	return b;
}

/* Syntax */

START_TEST(five_and_six_fields)
{
	struct cron_expr e;

	parse_ok("*/15 * * * *", &e);
	ck_assert_uint_eq(e.second, 1);
	ck_assert_uint_eq(e.minute, 1ULL << 0 | 1ULL << 15 | 1ULL << 30 | 1ULL << 45);
	EXPECT("*/15 * * * *", "UTC", utc(2026, 1, 1, 0, 0, 0),
	       utc(2026, 1, 1, 0, 15, 0), utc(2026, 1, 1, 0, 30, 0));
	EXPECT("*/20 * * * * *", "UTC", utc(2026, 1, 1, 0, 0, 0),
	       utc(2026, 1, 1, 0, 0, 20), utc(2026, 1, 1, 0, 0, 40), utc(2026, 1, 1, 0, 1, 0));
	EXPECT("30 15 10 * * *", "UTC", utc(2026, 1, 1, 10, 15, 30), utc(2026, 1, 2, 10, 15, 30));
}
END_TEST

START_TEST(lists_ranges_steps)
{
	EXPECT("0 0 1,15 * *", "UTC", utc(2026, 1, 1, 0, 0, 0),
	       utc(2026, 1, 15, 0, 0, 0), utc(2026, 2, 1, 0, 0, 0));
	EXPECT("0 9-11 * * *", "UTC", utc(2026, 1, 1, 11, 30, 0),
	       utc(2026, 1, 2, 9, 0, 0), utc(2026, 1, 2, 10, 0, 0), utc(2026, 1, 2, 11, 0, 0));
	/* 5/20: from 5 to the end, every 20. */
	EXPECT("5/20 * * * *", "UTC", utc(2026, 1, 1, 0, 25, 0),
	       utc(2026, 1, 1, 0, 45, 0), utc(2026, 1, 1, 1, 5, 0));
	EXPECT("0 0 10-20/5 * *", "UTC", utc(2026, 1, 10, 0, 0, 0),
	       utc(2026, 1, 15, 0, 0, 0), utc(2026, 1, 20, 0, 0, 0), utc(2026, 2, 10, 0, 0, 0));
	EXPECT("1,3-4,50-51 0 * * *", "UTC", utc(2026, 1, 1, 0, 1, 0),
	       utc(2026, 1, 1, 0, 3, 0), utc(2026, 1, 1, 0, 4, 0), utc(2026, 1, 1, 0, 50, 0),
	       utc(2026, 1, 1, 0, 51, 0), utc(2026, 1, 2, 0, 1, 0));
	/* Leading zeros are fine within two digits. */
	EXPECT("05 07 * * *", "UTC", utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 1, 7, 5, 0));
}
END_TEST

START_TEST(names_question_mark_sunday)
{
	struct cron_expr a, b;

	/* 2026-02-01 is a Sunday: the first Monday of February is the 2nd. */
	EXPECT("0 0 * FEB MON", "UTC", utc(2026, 1, 1, 0, 0, 0), utc(2026, 2, 2, 0, 0, 0));
	EXPECT("0 0 ? feb mOn", "UTC", utc(2026, 1, 1, 0, 0, 0), utc(2026, 2, 2, 0, 0, 0));
	EXPECT("0 0 * JAN-MAR SAT-SUN", "UTC", utc(2026, 1, 1, 0, 0, 0),
	       utc(2026, 1, 3, 0, 0, 0), utc(2026, 1, 4, 0, 0, 0));
	/* 7 and 0 are both Sunday; the first Sunday of 2026 is the 4th. */
	EXPECT("0 0 * * 7", "UTC", utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 4, 0, 0, 0));
	parse_ok("0 0 * * 7", &a);
	parse_ok("0 0 * * SUN", &b);
	ck_assert_uint_eq(a.dow, 1);
	ck_assert_uint_eq(b.dow, 1);
	parse_ok("? ? ? ? ?", &a);
	parse_ok("* * * * *", &b);
	ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
	parse_ok("0 0 * * 1-7", &a);
	ck_assert_uint_eq(a.dow, 0x7f);
}
END_TEST

START_TEST(reversed_ranges_wrap)
{
	struct cron_expr e;

	parse_ok("57-5/3 * * * *", &e);
	ck_assert_uint_eq(e.minute, 1ULL << 57 | 1ULL << 0 | 1ULL << 3);
	EXPECT("57-5/3 * * * *", "UTC", utc(2026, 1, 1, 0, 0, 0),
	       utc(2026, 1, 1, 0, 3, 0), utc(2026, 1, 1, 0, 57, 0), utc(2026, 1, 1, 1, 0, 0),
	       utc(2026, 1, 1, 1, 3, 0));
	parse_ok("0 22-1 * * *", &e);
	ck_assert_uint_eq(e.hour, 1U << 22 | 1U << 23 | 1U << 0 | 1U << 1);
	EXPECT("0 22-1 * * *", "UTC", utc(2026, 1, 1, 1, 30, 0),
	       utc(2026, 1, 1, 22, 0, 0), utc(2026, 1, 1, 23, 0, 0), utc(2026, 1, 2, 0, 0, 0),
	       utc(2026, 1, 2, 1, 0, 0));
	parse_ok("59-58 * * * *", &e);
	ck_assert_uint_eq(e.minute, bits(0, 59));
	/* Day of month wraps at 31 whatever the month: 20,25,30,4. */
	parse_ok("0 0 20-5/5 * *", &e);
	ck_assert_uint_eq(e.dom, 1U << 20 | 1U << 25 | 1U << 30 | 1U << 4);
	EXPECT("0 0 20-5/5 * *", "UTC", utc(2026, 1, 31, 0, 0, 0),
	       utc(2026, 2, 4, 0, 0, 0), utc(2026, 2, 20, 0, 0, 0), utc(2026, 2, 25, 0, 0, 0),
	       utc(2026, 3, 4, 0, 0, 0));
	/* Day of week wraps after Saturday: 6-2/3 is Saturday and Tuesday. */
	parse_ok("0 0 * * 6-2/3", &e);
	ck_assert_uint_eq(e.dow, 1U << 6 | 1U << 2);
	EXPECT("0 0 * * 6-2/3", "UTC", utc(2026, 1, 1, 0, 0, 0),
	       utc(2026, 1, 3, 0, 0, 0), utc(2026, 1, 6, 0, 0, 0), utc(2026, 1, 10, 0, 0, 0));
	parse_ok("0 0 * * FRI-MON", &e);
	ck_assert_uint_eq(e.dow, 1U << 5 | 1U << 6 | 1U << 0 | 1U << 1);
	EXPECT("0 0 1 11-2 *", "UTC", utc(2026, 3, 1, 0, 0, 0),
	       utc(2026, 11, 1, 0, 0, 0), utc(2026, 12, 1, 0, 0, 0), utc(2027, 1, 1, 0, 0, 0),
	       utc(2027, 2, 1, 0, 0, 0), utc(2027, 11, 1, 0, 0, 0));
}
END_TEST

START_TEST(whitespace_and_case)
{
	struct cron_expr a, b;

	parse_ok("  0\t0   *  * \t*  ", &a);
	parse_ok("0 0 * * *", &b);
	ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
	parse_ok("0 0 lw * *", &a);
	parse_ok("0 0 LW * *", &b);
	ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
	parse_ok("0 0 27w * *", &a);
	parse_ok("0 0 * * mOnL", &a);
	parse_ok("0 0 * * MONL", &b);
	ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
	parse_ok("\t@DAILY  ", &a);
	parse_ok("0 0 * * *", &b);
	ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
}
END_TEST

START_TEST(macros)
{
	time_t jan1 = utc(2026, 1, 1, 0, 0, 0);

	EXPECT("@every_second", "UTC", jan1, utc(2026, 1, 1, 0, 0, 1));
	EXPECT("@every_minute", "UTC", jan1, utc(2026, 1, 1, 0, 1, 0));
	EXPECT("@hourly", "UTC", jan1, utc(2026, 1, 1, 1, 0, 0));
	EXPECT("@daily", "UTC", jan1, utc(2026, 1, 2, 0, 0, 0));
	EXPECT("@midnight", "UTC", jan1, utc(2026, 1, 2, 0, 0, 0));
	/* Sunday 00:00; 2026-01-04 is the first Sunday. */
	EXPECT("@weekly", "UTC", jan1, utc(2026, 1, 4, 0, 0, 0), utc(2026, 1, 11, 0, 0, 0));
	EXPECT("@monthly", "UTC", jan1, utc(2026, 2, 1, 0, 0, 0));
	EXPECT("@yearly", "UTC", jan1, utc(2027, 1, 1, 0, 0, 0));
	EXPECT("@Annually", "UTC", jan1, utc(2027, 1, 1, 0, 0, 0));
}
END_TEST

/* Day rules */

START_TEST(last_day_and_offsets)
{
	EXPECT("0 0 L * *", "UTC", utc(2026, 2, 1, 0, 0, 0),
	       utc(2026, 2, 28, 0, 0, 0), utc(2026, 3, 31, 0, 0, 0), utc(2026, 4, 30, 0, 0, 0));
	EXPECT("0 0 L 2 *", "UTC", utc(2027, 3, 1, 0, 0, 0), utc(2028, 2, 29, 0, 0, 0));
	/* L-3: 31-3, 28-3, 31-3. */
	EXPECT("0 0 L-3 * *", "UTC", utc(2026, 1, 1, 0, 0, 0),
	       utc(2026, 1, 28, 0, 0, 0), utc(2026, 2, 25, 0, 0, 0), utc(2026, 3, 28, 0, 0, 0));
	/* L-30 is the 1st of 31-day months only; below 1 never matches. */
	EXPECT("0 0 L-30 * *", "UTC", utc(2026, 1, 1, 0, 0, 0),
	       utc(2026, 3, 1, 0, 0, 0), utc(2026, 5, 1, 0, 0, 0), utc(2026, 7, 1, 0, 0, 0),
	       utc(2026, 8, 1, 0, 0, 0));
}
END_TEST

START_TEST(nearest_weekday)
{
	/* LW: Jan 31 is a Saturday -> Fri 30; Feb 28 Saturday -> Fri 27;
	 * Mar 31 Tuesday; Apr 30 Thursday; May 31 Sunday -> Fri 29. */
	EXPECT("0 0 LW * *", "UTC", utc(2026, 1, 1, 0, 0, 0),
	       utc(2026, 1, 30, 0, 0, 0), utc(2026, 2, 27, 0, 0, 0), utc(2026, 3, 31, 0, 0, 0),
	       utc(2026, 4, 30, 0, 0, 0), utc(2026, 5, 29, 0, 0, 0));
	/* 15W: Feb 15 is a Sunday -> Mon 16; Aug 15 a Saturday -> Fri 14. */
	EXPECT("0 0 15W * *", "UTC", utc(2026, 2, 1, 0, 0, 0), utc(2026, 2, 16, 0, 0, 0));
	EXPECT("0 0 15W * *", "UTC", utc(2026, 8, 1, 0, 0, 0), utc(2026, 8, 14, 0, 0, 0));
	/* Once the 14th has passed, August is done: September 15 is a Tuesday. */
	EXPECT("0 0 15W * *", "UTC", utc(2026, 8, 14, 12, 0, 0), utc(2026, 9, 15, 0, 0, 0));
	/* Month edges: Aug 1 is a Saturday -> Mon 3, not July 31; Mar 1 a
	 * Sunday -> Mon 2. */
	EXPECT("0 0 1W * *", "UTC", utc(2026, 7, 15, 0, 0, 0),
	       utc(2026, 8, 3, 0, 0, 0), utc(2026, 9, 1, 0, 0, 0));
	EXPECT("0 0 1W * *", "UTC", utc(2026, 2, 15, 0, 0, 0), utc(2026, 3, 2, 0, 0, 0));
	/* 31W: May 31 Sunday -> Fri 29; 30-day months have no 31st. */
	EXPECT("0 0 31W * *", "UTC", utc(2026, 4, 1, 0, 0, 0), utc(2026, 5, 29, 0, 0, 0));
	/* L-3W: March 28 is a Saturday -> Fri 27. */
	EXPECT("0 0 L-3W * *", "UTC", utc(2026, 3, 1, 0, 0, 0), utc(2026, 3, 27, 0, 0, 0));
}
END_TEST

START_TEST(weekday_in_month)
{
	/* Last Friday: Jan 30, Feb 27. */
	EXPECT("0 0 * * 5L", "UTC", utc(2026, 1, 1, 0, 0, 0),
	       utc(2026, 1, 30, 0, 0, 0), utc(2026, 2, 27, 0, 0, 0));
	EXPECT("0 0 * * FRIL", "UTC", utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 30, 0, 0, 0));
	/* Fifth Tuesday: January and February 2026 have four; March 31 and
	 * June 30 are fifth Tuesdays, April and May have none. */
	EXPECT("0 0 * * 2#5", "UTC", utc(2026, 1, 1, 0, 0, 0),
	       utc(2026, 3, 31, 0, 0, 0), utc(2026, 6, 30, 0, 0, 0));
	/* Second Monday of January: the 12th. */
	EXPECT("0 0 * * MON#2", "UTC", utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 12, 0, 0, 0));
}
END_TEST

START_TEST(day_of_month_and_week_both_match)
{
	/* Friday the 13th: Feb, Mar and Nov in 2026 (Vixie cron would also fire
	 * on every Friday and every 13th). */
	EXPECT("0 0 13 * 5", "UTC", utc(2026, 1, 1, 0, 0, 0),
	       utc(2026, 2, 13, 0, 0, 0), utc(2026, 3, 13, 0, 0, 0), utc(2026, 11, 13, 0, 0, 0));
}
END_TEST

START_TEST(unreachable_is_none_and_fast)
{
	struct timespec a, b;
	double ms;

	clock_gettime(CLOCK_MONOTONIC, &a);
	expect_none("0 0 30 2 *", "UTC", utc(2026, 1, 1, 0, 0, 0));
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	ck_assert_msg(ms < 10.0, "0 0 30 2 * took %.2f ms", ms);

	clock_gettime(CLOCK_MONOTONIC, &a);
	expect_none("* * 1 * SUN#2", NY, utc(2026, 1, 1, 0, 0, 0));
	expect_none("0 0 31 4,6,9,11 *", "UTC", utc(2026, 1, 1, 0, 0, 0));
	expect_none("0 0 L-30 2 *", "UTC", utc(2026, 1, 1, 0, 0, 0));
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	ck_assert_msg(ms < 30.0, "three unreachable expressions took %.2f ms", ms);
}
END_TEST

START_TEST(horizon_is_year_9999)
{
	/* 9996 is the last leap year before the horizon. */
	EXPECT("0 0 29 2 *", "UTC", utc(9995, 6, 1, 0, 0, 0), utc(9996, 2, 29, 0, 0, 0));
	expect_none("0 0 29 2 *", "UTC", utc(9996, 3, 1, 0, 0, 0));
	EXPECT("59 23 31 12 *", "UTC", utc(9999, 1, 1, 0, 0, 0), utc(9999, 12, 31, 23, 59, 0));
	expect_none("* * * * *", "UTC", utc(9999, 12, 31, 23, 59, 0));
}
END_TEST

START_TEST(invalid_forms_name_the_field)
{
	char err[256];
	struct cron_expr e;

	expect_invalid("*/60 * * * *", "minute field: '*/60': step must be 1 to 59");
	expect_invalid("0 0 1-2W * *", "day-of-month field: '1-2W'");
	expect_invalid("0 0 1,2W * *", "day-of-month field: '1,2W'");
	expect_invalid("0 0 1LW * *", "day-of-month field: '1LW'");
	expect_invalid("0 0 * * SUNDAY", "day-of-week field: 'SUNDAY'");
	expect_invalid("@every_hour", "@every_hour");
	expect_invalid("@yearly !", "@yearly !");
	expect_invalid("@", "unknown macro");
	expect_invalid("100 * * * *", "minute field: '100'");
	expect_invalid("0 0 001 * *", "day-of-month field: '001'");
	expect_invalid("0 0 * * */100", "day-of-week field");
	expect_invalid("* * * *", "expected 5 or 6 fields, found 4");
	expect_invalid("* * * * * * *", "expected 5 or 6 fields, found 7");
	expect_invalid("", "empty");
	expect_invalid(" \t ", "empty");
	expect_invalid("60 * * * * *", "second field: '60'");
	expect_invalid("* 24 * * *", "hour field: '24'");
	expect_invalid("0 0 0 * *", "day-of-month field: '0'");
	expect_invalid("0 0 32 * *", "day-of-month field: '32'");
	expect_invalid("0 0 * 13 *", "month field: '13'");
	expect_invalid("0 0 * JANUARY *", "month field");
	expect_invalid("0 0 * * 8", "day-of-week field: '8'");
	expect_invalid("0 0 * * 5#6", "day-of-week field: '5#6'");
	expect_invalid("0 0 * * 5#0", "day-of-week field");
	expect_invalid("0 0 * * 5#1,2", "day-of-week field");
	expect_invalid("0 0 * * 1-5L", "day-of-week field");
	expect_invalid("0 0 L-31 * *", "day-of-month field: 'L-31'");
	expect_invalid("0 0 L-3,5 * *", "day-of-month field");
	expect_invalid("0 0 15W,1 * *", "day-of-month field");
	expect_invalid("0 0 JAN * *", "day-of-month field");
	expect_invalid("*/0 * * * *", "minute field: '*/0'");
	expect_invalid("1- * * * *", "minute field: '1-'");
	expect_invalid("1,,2 * * * *", "minute field");
	expect_invalid("*,5 * * * *", "minute field: '*,5'");
	expect_invalid("1#2 * * * *", "minute field");
	expect_invalid("0 L * * *", "hour field");
	expect_invalid("0 0 * */13 *", "month field: '*/13'");
	expect_invalid("0 0 * * *\n", "day-of-week field");
	/* A failed parse leaves the output alone. */
	memset(&e, 0xa5, sizeof(e));
	ck_assert_int_eq(cron_parse("61 * * * *", &e, err, sizeof(err)), -1);
	ck_assert_uint_eq(e.dow, 0xa5);
}
END_TEST

START_TEST(interval_classification)
{
	static const struct {
		const char *text;
		int interval;
	} cases[] = {
		{ "*/30 * * * *", 1 }, { "0 30 1-9 * * *", 1 }, { "? 0 1 * * *", 1 },
		{ "0 5/10 1 * * *", 1 }, { "0 * * * *", 1 }, { "@hourly", 1 },
		{ "0 0 1 * * *", 0 }, { "0 0,30 1 * * *", 0 }, { "30 1 * * *", 0 },
		{ "0 0 1 */2 * *", 0 }, { "0 0 1 * */2 1-5", 0 }, { "@daily", 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cron_expr e;

		parse_ok(cases[i].text, &e);
		ck_assert_msg(!!(e.flags & CRON_INTERVAL) == cases[i].interval,
			      "'%s': interval flag should be %d", cases[i].text, cases[i].interval);
	}
}
END_TEST

/* Daylight saving time.  New York 2026 (zdump): 2026-03-08 07:00Z, 02:00
 * EST -> 03:00 EDT; 2026-11-01 06:00Z, 02:00 EDT -> 01:00 EST. */

START_TEST(new_york_autumn)
{
	/* Interval: both passes of 01:00-02:00. */
	EXPECT("*/30 * * * *", NY, wall(2026, 11, 1, 0, 45, -240),
	       wall(2026, 11, 1, 1, 0, -240), wall(2026, 11, 1, 1, 30, -240),
	       wall(2026, 11, 1, 1, 0, -300), wall(2026, 11, 1, 1, 30, -300),
	       wall(2026, 11, 1, 2, 0, -300));
	EXPECT("0 30 1-9 * * *", NY, wall(2026, 11, 1, 0, 0, -240),
	       wall(2026, 11, 1, 1, 30, -240), wall(2026, 11, 1, 1, 30, -300),
	       wall(2026, 11, 1, 2, 30, -300));
	/* Fixed times: first pass only. */
	EXPECT("0 30 1 * * *", NY, wall(2026, 11, 1, 0, 0, -240),
	       wall(2026, 11, 1, 1, 30, -240), wall(2026, 11, 2, 1, 30, -300));
	EXPECT("0 0,30 1 * * *", NY, wall(2026, 11, 1, 0, 30, -240),
	       wall(2026, 11, 1, 1, 0, -240), wall(2026, 11, 1, 1, 30, -240),
	       wall(2026, 11, 2, 1, 0, -300));
	/* From inside the second pass, a fixed time goes on to tomorrow. */
	EXPECT("0 0 1 * * *", NY, wall(2026, 11, 1, 1, 10, -300), wall(2026, 11, 2, 1, 0, -300));
	/* 02:00 exists once, in standard time. */
	EXPECT("0 0 2 * * *", NY, wall(2026, 11, 1, 1, 45, -240), wall(2026, 11, 1, 2, 0, -300));
	EXPECT("0 0 2 * * *", NY, wall(2026, 11, 1, 1, 45, -300), wall(2026, 11, 1, 2, 0, -300));
	ck_assert_int_eq(wall(2026, 11, 1, 2, 0, -300), utc(2026, 11, 1, 7, 0, 0));
}
END_TEST

START_TEST(new_york_spring)
{
	/* 02:30 does not exist on March 8: it fires at the jump, 03:00 EDT. */
	EXPECT("30 2 * * *", NY, wall(2026, 3, 8, 0, 0, -300),
	       wall(2026, 3, 8, 3, 0, -240), wall(2026, 3, 9, 2, 30, -240));
	ck_assert_int_eq(wall(2026, 3, 8, 3, 0, -240), utc(2026, 3, 8, 7, 0, 0));
	/* Asked from one second before the jump, still the jump. */
	EXPECT("30 2 * * *", NY, utc(2026, 3, 8, 6, 59, 59), utc(2026, 3, 8, 7, 0, 0));
	/* 02:00 and 02:30 collapse into one run at 03:00, then 03:30. */
	EXPECT("*/30 * * * *", NY, wall(2026, 3, 8, 1, 30, -300),
	       wall(2026, 3, 8, 3, 0, -240), wall(2026, 3, 8, 3, 30, -240));
	EXPECT("0 0 * * *", NY, wall(2026, 3, 7, 12, 0, -300),
	       wall(2026, 3, 8, 0, 0, -300), wall(2026, 3, 9, 0, 0, -240));
}
END_TEST

/* Lord Howe shifts by 30 minutes (zdump): 2026-04-05 02:00 +11 -> 01:30
 * +1030 at 15:00Z on the 4th; 2026-10-04 02:00 +1030 -> 02:30 +11 at
 * 15:30Z on the 3rd. */
START_TEST(lord_howe)
{
	EXPECT("*/15 * * * *", LH, utc(2026, 4, 4, 14, 20, 0),
	       wall(2026, 4, 5, 1, 30, 660), wall(2026, 4, 5, 1, 45, 660),
	       wall(2026, 4, 5, 1, 30, 630), wall(2026, 4, 5, 1, 45, 630),
	       wall(2026, 4, 5, 2, 0, 630));
	ck_assert_int_eq(wall(2026, 4, 5, 1, 30, 630), utc(2026, 4, 4, 15, 0, 0));
	EXPECT("0 45 1 * * *", LH, utc(2026, 4, 4, 14, 0, 0),
	       wall(2026, 4, 5, 1, 45, 660), wall(2026, 4, 6, 1, 45, 630));
	EXPECT("0 0 2 * * *", LH, wall(2026, 4, 5, 1, 50, 660), wall(2026, 4, 5, 2, 0, 630));
	/* Spring: 02:00-02:30 is skipped. */
	EXPECT("15 2 * * *", LH, utc(2026, 10, 3, 12, 0, 0),
	       utc(2026, 10, 3, 15, 30, 0), wall(2026, 10, 5, 2, 15, 660));
	ck_assert_int_eq(wall(2026, 10, 4, 2, 30, 660), utc(2026, 10, 3, 15, 30, 0));
	EXPECT("*/15 * * * *", LH, wall(2026, 10, 4, 1, 45, 630),
	       wall(2026, 10, 4, 2, 30, 660), wall(2026, 10, 4, 2, 45, 660));
}
END_TEST

/* Midnight transitions (zdump): Santiago 2026-09-06 00:00 -04 -> 01:00 -03
 * at 04:00Z, 2026-04-05 00:00 -03 -> 23:00 -04 (Apr 4) at 03:00Z; Havana
 * 2026-03-08 00:00 CST -> 01:00 CDT at 05:00Z, 2026-11-01 01:00 CDT -> 00:00
 * CST at 05:00Z; Beirut 2026-03-29 00:00 EET -> 01:00 EEST at 22:00Z. */
START_TEST(midnight_transitions)
{
	/* No midnight on September 6 in Santiago: the jump instead. */
	EXPECT("0 0 * * *", "America/Santiago", utc(2026, 9, 5, 12, 0, 0),
	       utc(2026, 9, 6, 4, 0, 0), wall(2026, 9, 7, 0, 0, -180));
	/* April 4 23:00-24:00 happens twice; midnight itself once, at -04. */
	EXPECT("0 0 * * *", "America/Santiago", utc(2026, 4, 4, 12, 0, 0),
	       wall(2026, 4, 5, 0, 0, -240), wall(2026, 4, 6, 0, 0, -240));
	EXPECT("0 */30 23 * * *", "America/Santiago", utc(2026, 4, 5, 1, 45, 0),
	       wall(2026, 4, 4, 23, 0, -180), wall(2026, 4, 4, 23, 30, -180),
	       wall(2026, 4, 4, 23, 0, -240), wall(2026, 4, 4, 23, 30, -240),
	       wall(2026, 4, 5, 23, 0, -240));
	EXPECT("0 30 23 * * *", "America/Santiago", utc(2026, 4, 5, 1, 45, 0),
	       wall(2026, 4, 4, 23, 30, -180), wall(2026, 4, 5, 23, 30, -240));
	/* Havana repeats 00:00-01:00 on November 1: midnight fires once, in
	 * daylight time. */
	EXPECT("0 0 * * *", "America/Havana", utc(2026, 10, 31, 12, 0, 0),
	       wall(2026, 11, 1, 0, 0, -240), wall(2026, 11, 2, 0, 0, -300));
	EXPECT("0 0 * * *", "America/Havana", utc(2026, 3, 7, 12, 0, 0),
	       utc(2026, 3, 8, 5, 0, 0), wall(2026, 3, 9, 0, 0, -240));
	EXPECT("0 0 * * *", "Asia/Beirut", utc(2026, 3, 28, 12, 0, 0),
	       utc(2026, 3, 28, 22, 0, 0), wall(2026, 3, 30, 0, 0, 180));
}
END_TEST

/* After 2037 the zone files' tables end and their POSIX rules take over
 * (zdump): New York 2045-03-12 07:00Z and 2045-11-05 06:00Z; Lord Howe
 * 2045-04-01 15:00Z (02:00 +11 -> 01:30) and 2045-09-30 15:30Z. */
START_TEST(footer_rules)
{
	EXPECT("*/30 * * * *", NY, wall(2045, 11, 5, 0, 45, -240),
	       wall(2045, 11, 5, 1, 0, -240), wall(2045, 11, 5, 1, 30, -240),
	       wall(2045, 11, 5, 1, 0, -300), wall(2045, 11, 5, 1, 30, -300),
	       wall(2045, 11, 5, 2, 0, -300));
	EXPECT("30 2 * * *", NY, wall(2045, 3, 12, 0, 0, -300), utc(2045, 3, 12, 7, 0, 0));
	EXPECT("0 0 12 * * *", NY, utc(2045, 7, 1, 0, 0, 0), wall(2045, 7, 1, 12, 0, -240));
	EXPECT("0 0 12 * * *", NY, utc(2045, 12, 1, 0, 0, 0), wall(2045, 12, 1, 12, 0, -300));
	EXPECT("*/15 * * * *", LH, utc(2045, 4, 1, 14, 20, 0),
	       wall(2045, 4, 2, 1, 30, 660), wall(2045, 4, 2, 1, 45, 660),
	       wall(2045, 4, 2, 1, 30, 630), wall(2045, 4, 2, 1, 45, 630));
	EXPECT("15 2 * * *", LH, utc(2045, 9, 30, 12, 0, 0), utc(2045, 9, 30, 15, 30, 0));
}
END_TEST

/* Zone files made here: TZDIR points at a private directory. */

static char zdir[64];

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* A TZif file: version '2' (64-bit block and footer) or 0 (32-bit only),
 * one or two types, transitions alternating type 1, 0, 1... */
static void write_zone(const char *name, char version, int32_t off0, int32_t off1,
		       const int64_t *trans, uint32_t ntrans, uint32_t leaps, const char *footer)
{
	unsigned char buf[4096];
	size_t n = 0;
	char path[256];
	FILE *f;
	uint32_t ntypes = off1 != off0 ? 2 : 1;

	for (int block = 0; block < (version ? 2 : 1); block++) {
		size_t tsize = version && block == 1 ? 8 : 4;

		memset(buf + n, 0, 44);
		memcpy(buf + n, "TZif", 4);
		buf[n + 4] = (unsigned char)version;
		put_be32(buf + n + 28, leaps);
		put_be32(buf + n + 32, ntrans);
		put_be32(buf + n + 36, ntypes);
		put_be32(buf + n + 40, 4);
		n += 44;
		for (uint32_t i = 0; i < ntrans; i++) {
			if (tsize == 8) {
				put_be32(buf + n, (uint32_t)((uint64_t)trans[i] >> 32));
				put_be32(buf + n + 4, (uint32_t)trans[i]);
			} else {
				put_be32(buf + n, (uint32_t)trans[i]);
			}
			n += tsize;
		}
		for (uint32_t i = 0; i < ntrans; i++)
			buf[n++] = (unsigned char)((i + 1) % 2);
		for (uint32_t i = 0; i < ntypes; i++) {
			put_be32(buf + n, (uint32_t)(i == 0 ? off0 : off1));
			buf[n + 4] = (unsigned char)i;
			buf[n + 5] = 0;
			n += 6;
		}
		memcpy(buf + n, "ZZZ", 4);
		n += 4;
		for (uint32_t i = 0; i < leaps; i++) {
			memset(buf + n, 0, tsize + 4);
			n += tsize + 4;
		}
	}
	if (version)
		n += (size_t)snprintf((char *)buf + n, sizeof(buf) - n, "\n%s\n", footer);
	snprintf(path, sizeof(path), "%s/%s", zdir, name);
	mkdir(zdir, 0700);
	{
		char sub[256];
		char *slash;

		snprintf(sub, sizeof(sub), "%s", path);
		if ((slash = strrchr(sub, '/')) != NULL && slash > sub + strlen(zdir)) {
			*slash = '\0';
			mkdir(sub, 0700);
		}
	}
	ck_assert_ptr_nonnull(f = fopen(path, "wb"));
	ck_assert_uint_eq(fwrite(buf, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

static void zone_dir_setup(void)
{
	snprintf(zdir, sizeof(zdir), "/tmp/check_cron.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(zdir));
	setenv("TZDIR", zdir, 1);
}

static void zone_dir_teardown(void)
{
	char cmd[128];

	unsetenv("TZDIR");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", zdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", zdir);
}

START_TEST(rule_only_zones)
{
	/* No transitions at all: the footer governs every instant, so the
	 * 2026 cases of the real zones must come out the same. */
	write_zone("Rule/NY", '2', -18000, -18000, NULL, 0, 0, "EST5EDT,M3.2.0,M11.1.0");
	write_zone("Rule/LH", '2', 37800, 37800, NULL, 0, 0,
		   "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0");
	write_zone("Rule/IST", '2', 19800, 19800, NULL, 0, 0, "IST-5:30");
	EXPECT("*/30 * * * *", "Rule/NY", wall(2026, 11, 1, 0, 45, -240),
	       wall(2026, 11, 1, 1, 0, -240), wall(2026, 11, 1, 1, 30, -240),
	       wall(2026, 11, 1, 1, 0, -300), wall(2026, 11, 1, 1, 30, -300),
	       wall(2026, 11, 1, 2, 0, -300));
	EXPECT("0 30 1 * * *", "Rule/NY", wall(2026, 11, 1, 0, 0, -240),
	       wall(2026, 11, 1, 1, 30, -240), wall(2026, 11, 2, 1, 30, -300));
	EXPECT("30 2 * * *", "Rule/NY", wall(2026, 3, 8, 0, 0, -300), utc(2026, 3, 8, 7, 0, 0));
	EXPECT("*/15 * * * *", "Rule/LH", utc(2026, 4, 4, 14, 20, 0),
	       wall(2026, 4, 5, 1, 30, 660), wall(2026, 4, 5, 1, 45, 660),
	       wall(2026, 4, 5, 1, 30, 630), wall(2026, 4, 5, 1, 45, 630),
	       wall(2026, 4, 5, 2, 0, 630));
	EXPECT("15 2 * * *", "Rule/LH", utc(2026, 10, 3, 12, 0, 0), utc(2026, 10, 3, 15, 30, 0));
	/* Southern summer spans the new year (00:00Z is 11:00 +11). */
	EXPECT("0 0 12 * * *", "Rule/LH", utc(2026, 12, 31, 0, 0, 0),
	       wall(2026, 12, 31, 12, 0, 660), wall(2027, 1, 1, 12, 0, 660));
	EXPECT("0 0 12 * * *", "Rule/LH", utc(2026, 6, 30, 0, 0, 0),
	       wall(2026, 6, 30, 12, 0, 630));
	EXPECT("0 0 * * *", "Rule/IST", utc(2026, 1, 1, 0, 0, 0), wall(2026, 1, 2, 0, 0, 330));
}
END_TEST

START_TEST(version1_table)
{
	/* +01 standard, +02 from 2026-03-29 01:00Z to 2026-10-25 01:00Z,
	 * then the last type (+01) for ever. */
	const int64_t t[] = { 1774746000, 1792890000 };

	ck_assert_int_eq(t[0], utc(2026, 3, 29, 1, 0, 0));
	ck_assert_int_eq(t[1], utc(2026, 10, 25, 1, 0, 0));
	write_zone("Old/Zone", 0, 3600, 7200, t, 2, 0, NULL);
	EXPECT("30 2 * * *", "Old/Zone", utc(2026, 3, 28, 23, 0, 0),
	       utc(2026, 3, 29, 1, 0, 0), wall(2026, 3, 30, 2, 30, 120));
	EXPECT("*/30 2 * * *", "Old/Zone", utc(2026, 10, 24, 23, 45, 0),
	       wall(2026, 10, 25, 2, 0, 120), wall(2026, 10, 25, 2, 30, 120),
	       wall(2026, 10, 25, 2, 0, 60), wall(2026, 10, 25, 2, 30, 60));
	EXPECT("0 0 12 * * *", "Old/Zone", utc(2030, 7, 1, 0, 0, 0), wall(2030, 7, 1, 12, 0, 60));
}
END_TEST

START_TEST(zone_errors)
{
	struct cron_expr e;
	char err[256] = "";
	time_t next;

	parse_ok("0 0 * * *", &e);
	ck_assert_int_eq(cron_next(&e, "Nowhere/Atlantis", 0, &next, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "Nowhere/Atlantis") != NULL, "%s", err);
	ck_assert_int_eq(cron_next(&e, "../etc/passwd", 0, &next, err, sizeof(err)), -1);
	ck_assert_int_eq(cron_next(&e, "Europe/../../etc/passwd", 0, &next, err, sizeof(err)), -1);
	ck_assert_int_eq(cron_next(&e, "/etc/localtime", 0, &next, err, sizeof(err)), -1);
	ck_assert_int_eq(cron_next(&e, "", 0, &next, err, sizeof(err)), -1);
	write_zone("Bad/Leaps", '2', 0, 0, NULL, 0, 1, "UTC0");
	ck_assert_int_eq(cron_zone_check("Bad", err, sizeof(err)), -1);	/* a directory */
	ck_assert_int_eq(cron_zone_check("Bad/Leaps", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "leap") != NULL, "%s", err);
	write_zone("Bad/Footer", '2', 0, 0, NULL, 0, 0, "what is this");
	ck_assert_int_eq(cron_zone_check("Bad/Footer", err, sizeof(err)), -1);
	/* UTC needs no file, even with an empty TZDIR. */
	ck_assert_int_eq(cron_zone_check("UTC", err, sizeof(err)), 0);
	ck_assert_int_eq(cron_zone_check("Etc/UTC", err, sizeof(err)), 0);
	ck_assert_int_eq(cron_next(&e, "Etc/UTC", utc(2026, 1, 1, 0, 0, 0), &next, err,
				   sizeof(err)), 0);
	ck_assert_int_eq(next, utc(2026, 1, 2, 0, 0, 0));
}
END_TEST

START_TEST(zone_file_replaced)
{
	/* The cache notices a changed file. */
	write_zone("Swap/Me", '2', 3600, 3600, NULL, 0, 0, "<+01>-1");
	EXPECT("0 0 12 * * *", "Swap/Me", utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 1, 11, 0, 0));
	sleep(1);	/* a different mtime even on coarse file systems */
	write_zone("Swap/Me", '2', 7200, 7200, NULL, 0, 0, "<+0200>-2:00:00");
	EXPECT("0 0 12 * * *", "Swap/Me", utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 1, 10, 0, 0));
}
END_TEST

static Suite *cron_suite(void)
{
	Suite *s = suite_create("cron");
	TCase *syntax = tcase_create("syntax");
	TCase *days = tcase_create("days");
	TCase *dst = tcase_create("dst");
	TCase *files = tcase_create("zone files");

	tcase_add_test(syntax, five_and_six_fields);
	tcase_add_test(syntax, lists_ranges_steps);
	tcase_add_test(syntax, names_question_mark_sunday);
	tcase_add_test(syntax, reversed_ranges_wrap);
	tcase_add_test(syntax, whitespace_and_case);
	tcase_add_test(syntax, macros);
	tcase_add_test(syntax, invalid_forms_name_the_field);
	tcase_add_test(syntax, interval_classification);
	suite_add_tcase(s, syntax);

	tcase_add_test(days, last_day_and_offsets);
	tcase_add_test(days, nearest_weekday);
	tcase_add_test(days, weekday_in_month);
	tcase_add_test(days, day_of_month_and_week_both_match);
	tcase_add_test(days, unreachable_is_none_and_fast);
	tcase_add_test(days, horizon_is_year_9999);
	suite_add_tcase(s, days);

	tcase_add_test(dst, new_york_autumn);
	tcase_add_test(dst, new_york_spring);
	tcase_add_test(dst, lord_howe);
	tcase_add_test(dst, midnight_transitions);
	tcase_add_test(dst, footer_rules);
	suite_add_tcase(s, dst);

	tcase_add_checked_fixture(files, zone_dir_setup, zone_dir_teardown);
	tcase_add_test(files, rule_only_zones);
	tcase_add_test(files, version1_table);
	tcase_add_test(files, zone_errors);
	tcase_add_test(files, zone_file_replaced);
	suite_add_tcase(s, files);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cron_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
