/* fuzz_cron.c - cron_parse() and, for what parses, cron_next() in a few
 * zones (UTC, America/New_York and Australia/Lord_Howe, whose DST moves the
 * clock by 30 minutes).
 *
 * Input: the expression up to the first newline; 8 bytes after it, when
 * present, are one more starting instant (int64, little-endian).  Checks:
 * parsed fields stay in their ranges; the next occurrence is strictly after
 * the start, before year 10000, and the same when asked again from one
 * second before it; in UTC, without L/W/#, it matches every field.
 */
#include "config.h"

#include <stdbool.h>
#include <time.h>

#include "cron.h"
#include "fuzz.h"

static const char *const zones[] = { "UTC", "America/New_York", "Australia/Lord_Howe" };

/* 2023-11-14; New York's spring-forward and fall-back days of 2024; the
 * last second of 9999. */
static const int64_t starts[] = { 1700000000, 1710054000, 1730613600, 253402300799LL };

static bool bit(uint64_t mask, int v)
{
	return (mask >> v) & 1;
}

static void check_expr(const struct cron_expr *e)
{
	FUZZ_CHECK(e->second != 0 && e->second >> 60 == 0, "second %#llx",
		   (unsigned long long)e->second);
	FUZZ_CHECK(e->minute != 0 && e->minute >> 60 == 0, "minute %#llx",
		   (unsigned long long)e->minute);
	FUZZ_CHECK(e->hour != 0 && e->hour >> 24 == 0, "hour %#x", e->hour);
	FUZZ_CHECK((e->dom & 1) == 0, "dom %#x", e->dom);
	FUZZ_CHECK(e->month != 0 && (e->month & 1) == 0 && e->month >> 13 == 0, "month %#x",
		   e->month);
	FUZZ_CHECK(e->dow >> 7 == 0, "dow %#x", e->dow);
	FUZZ_CHECK(e->dom != 0 || (e->flags & (CRON_DOM_LAST | CRON_DOM_NEAREST)),
		   "no day of month");
	FUZZ_CHECK(e->dow != 0 || (e->flags & (CRON_DOW_LAST | CRON_DOW_NTH)), "no weekday");
}

/* In UTC a plain expression's occurrence has every field in its sets. */
static void check_match_utc(const struct cron_expr *e, time_t t)
{
	struct tm tm;

	if (e->flags & (CRON_DOM_LAST | CRON_DOM_NEAREST | CRON_DOW_LAST | CRON_DOW_NTH))
		return;
	FUZZ_CHECK(gmtime_r(&t, &tm) != NULL, "gmtime %lld", (long long)t);
	FUZZ_CHECK(bit(e->second, tm.tm_sec) && bit(e->minute, tm.tm_min) &&
		   bit(e->hour, tm.tm_hour) && bit(e->dom, tm.tm_mday) &&
		   bit(e->month, tm.tm_mon + 1) && bit(e->dow, tm.tm_wday),
		   "%lld (%04d-%02d-%02d %02d:%02d:%02d wday %d) does not match",
		   (long long)t, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		   tm.tm_min, tm.tm_sec, tm.tm_wday);
}

static void next_in(const struct cron_expr *e, const char *zone, int64_t start)
{
	char err[256] = "";
	time_t next = 0, again = 0;
	int rc = cron_next(e, zone, (time_t)start, &next, err, sizeof(err));

	if (rc == -1 && strcmp(zone, "UTC") != 0)
		return;		/* no tzdata here */
	FUZZ_CHECK(rc == 0 || rc == 1, "cron_next in %s: %d: %s", zone, rc, err);
	if (rc != 0)
		return;
	FUZZ_CHECK((int64_t)next > start, "next %lld not after %lld in %s", (long long)next,
		   (long long)start, zone);
	FUZZ_CHECK((int64_t)next < 253402473600LL, "next %lld beyond year 9999",
		   (long long)next);
	if (strcmp(zone, "UTC") == 0)
		check_match_utc(e, next);
	rc = cron_next(e, zone, next - 1, &again, err, sizeof(err));
	FUZZ_CHECK(rc == 0 && again == next,
		   "in %s from %lld: next %lld, but from %lld: rc %d, %lld", zone,
		   (long long)start, (long long)next, (long long)(next - 1), rc, (long long)again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t len = nl != NULL ? (size_t)(nl - data) : size;
	struct cron_expr e;
	char err[256];
	char *text;
	int64_t extra = 0;
	bool have_extra = false;

	if (size > 4096)
		return 0;
	if (nl != NULL && size - len - 1 >= sizeof(extra)) {
		memcpy(&extra, nl + 1, sizeof(extra));
		have_extra = true;
	}
	text = fuzz_cstr(data, len);
	memset(err, 0x55, sizeof(err));
	if (cron_parse(text, &e, err, sizeof(err)) != 0) {
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0',
			   "no error message");
		free(text);
		return 0;
	}
	check_expr(&e);
	for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
		for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++)
			next_in(&e, zones[z], starts[i]);
		if (have_extra)
			next_in(&e, zones[z], extra);
	}
	free(text);
	return 0;
}
