/* fuzz_iso8601.c - the ISO 8601 date-times we read: iso8601_parse() with
 * iso8601_instant() and iso8601_format() (mongo-azure-backupctl next-runs
 * --from, the times status shows), and the two readers of a manifest's
 * times in storage: set_parse_utc() ("started", which orders sets in list
 * and restore) and retention_manifest_finished() ("finished", which
 * prune-sets reports to the daemon for the newest complete set).
 *
 * The input is the text.  An independent reading of the documented form
 * ("YYYY-MM-DDTHH:MM:SS", then nothing, "Z" or "+HH:MM"/"-HH:MM"; a real
 * date of years 0001 to 9999, hours 00-23, minutes and seconds 00-59, an
 * offset of at most 23:59) is the oracle.  Checks: iso8601_parse accepts
 * exactly what the oracle accepts, with its fields, and says why otherwise;
 * an accepted text means the instant the oracle computes and formats back
 * to itself ("Z" and "-00:00" written "+00:00"; no offset: UTC, or in two
 * zones with daylight saving time the local time shown at the instant, the
 * first of two, a skipped one read with the offset before the jump);
 * retention_manifest_finished reads a "finished" string exactly when the
 * oracle accepts it with "Z", as the same instant; set_parse_utc reads a
 * text the oracle accepts without offset or with "Z" as the same instant,
 * and never one with an offset.
 * set_parse_utc refuses all the oracle refuses (February 30th, second 60,
 * one-digit fields, blanks, text after the "Z").
 */
#include "config.h"

#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup_set.h"
#include "cron_tz.h"
#include "fuzz.h"
#include "iso8601.h"
#include "retention.h"

static char dir[64];
static const char *const zones[] = { "UTC", "Fuzz/East", "Fuzz/West" };

/* A TZif (version 2) file of no transitions: footer decides all. */
static void write_zone(const char *name, long std_off, const char *abbr, const char *rule)
{
	unsigned char block[44 + 6 + 4];
	char path[128];
	FILE *f;

	memset(block, 0, sizeof(block));
	memcpy(block, "TZif2", 5);
	block[39] = 1;			/* typecnt */
	block[43] = 4;			/* charcnt */
	for (int i = 0; i < 4; i++)
		block[44 + i] = (unsigned char)((unsigned long)std_off >> (24 - 8 * i));
	memcpy(block + 50, abbr, 3);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(block, sizeof(block), 1, f) != 1 ||
	    fwrite(block, sizeof(block), 1, f) != 1 || fprintf(f, "\n%s\n", rule) < 0 ||
	    fclose(f) != 0)
		abort();
}

static void cleanup(void)
{
	char path[128];

	for (size_t i = 1; i < sizeof(zones) / sizeof(zones[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, zones[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/Fuzz", dir);
	rmdir(path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char sub[96], err[512];

	(void)argc;
	(void)argv;
	snprintf(dir, sizeof(dir), "/tmp/mab-fuzz-iso8601-XXXXXX");
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(sub, sizeof(sub), "%s/Fuzz", dir);
	if (mkdir(sub, 0700) != 0 || setenv("TZDIR", dir, 1) != 0)
		abort();
	atexit(cleanup);
	write_zone("Fuzz/East", 3600, "CET", "CET-1CEST,M3.5.0,M10.5.0/3");
	write_zone("Fuzz/West", -18000, "EST", "EST5EDT,M3.2.0,M11.1.0");
	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
		FUZZ_CHECK(cron_tz_get(zones[i], err, sizeof(err)) != NULL, "%s", err);
	return 0;
}

/* ---- the oracle ---------------------------------------------------------- */

struct oracle {
	int year, month, day, hour, minute, second;
	char kind;		/* '\0': no offset, 'Z', or '+' for an explicit one */
	long offset;		/* seconds east */
};

static int num(const char *p, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

static bool oracle_parse(const char *t, struct oracle *o)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	size_t len = strlen(t);
	bool leap;

	memset(o, 0, sizeof(*o));
	if (len != 19 && len != 20 && len != 25)
		return false;
	if (t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' || t[16] != ':')
		return false;
	o->year = num(t, 4);
	o->month = num(t + 5, 2);
	o->day = num(t + 8, 2);
	o->hour = num(t + 11, 2);
	o->minute = num(t + 14, 2);
	o->second = num(t + 17, 2);
	if (o->year < 1 || o->month < 1 || o->month > 12 || o->day < 1 || o->hour < 0 ||
	    o->hour > 23 || o->minute < 0 || o->minute > 59 || o->second < 0 || o->second > 59)
		return false;
	leap = (o->year % 4 == 0 && o->year % 100 != 0) || o->year % 400 == 0;
	if (o->day > mdays[o->month - 1] + (o->month == 2 && leap))
		return false;
	if (len == 20) {
		o->kind = 'Z';
		return t[19] == 'Z';
	}
	if (len == 25) {
		int h = num(t + 20, 2), m = num(t + 23, 2);

		if ((t[19] != '+' && t[19] != '-') || t[22] != ':' || h < 0 || h > 23 || m < 0 ||
		    m > 59)
			return false;
		o->kind = '+';
		o->offset = (t[19] == '-' ? -1 : 1) * (long)(h * 3600 + m * 60);
	}
	return true;
}

/* Days since 1970-01-01 (H. Hinnant), written out here rather than taken
 * from the code under test. */
static int64_t oracle_days(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int64_t oracle_wall(const struct oracle *o)
{
	return oracle_days(o->year, o->month, o->day) * 86400 + o->hour * 3600 +
	       o->minute * 60 + o->second;
}

/* ---- the checks ---------------------------------------------------------- */

static void check_zone(const char *text, const struct iso8601 *t, int64_t wall,
		       const char *zone)
{
	const struct cron_tz *z;
	struct cron_tz_local loc;
	char err[512], out[64];
	int64_t when;
	long off;

	FUZZ_CHECK(iso8601_instant(t, zone, &when, err, sizeof(err)) == 0, "%s in %s: %s", text,
		   zone, err);
	z = cron_tz_get(zone, err, sizeof(err));
	FUZZ_CHECK(z != NULL, "%s: %s", zone, err);
	off = cron_tz_offset(z, when);
	iso8601_format(when, off, out, sizeof(out));
	cron_tz_local(z, wall, &loc);
	if (loc.count > 0) {
		FUZZ_CHECK(when == loc.when[0], "%s in %s: %lld, not the first instant %lld",
			   text, zone, (long long)when, (long long)loc.when[0]);
		FUZZ_CHECK(strncmp(out, text, 19) == 0, "%s in %s: %lld, shown as %s", text, zone,
			   (long long)when, out);
	} else {
		long before = cron_tz_offset(z, loc.transition - 1);

		FUZZ_CHECK(when == wall - before && when >= loc.transition,
			   "%s (skipped in %s): %lld, not read with the offset %ld before the jump "
			   "at %lld", text, zone, (long long)when, before, (long long)loc.transition);
		FUZZ_CHECK(strncmp(out, text, 19) > 0, "%s (skipped in %s): shown as %s", text,
			   zone, out);
	}
}

static void check_iso8601(const char *text, const struct oracle *o, bool valid)
{
	struct iso8601 t;
	char err[512], out[64], expect[64];
	int64_t when, wall;
	int rc;

	err[0] = '\0';
	rc = iso8601_parse(text, &t, err, sizeof(err));
	FUZZ_CHECK((rc == 0) == valid, "'%s': iso8601_parse %s, the form says %s", text,
		   rc == 0 ? "takes it" : err, valid ? "valid" : "invalid");
	if (rc != 0) {
		FUZZ_CHECK(err[0] == '\'', "refused without a quoted reason: %s", err);
		return;
	}
	FUZZ_CHECK(t.year == o->year && t.month == o->month && t.day == o->day &&
		   t.hour == o->hour && t.minute == o->minute && t.second == o->second &&
		   t.has_offset == (o->kind != '\0') && (!t.has_offset || t.offset == o->offset),
		   "'%s': fields %04d-%02d-%02d %02d:%02d:%02d offset %d %ld", text, t.year,
		   t.month, t.day, t.hour, t.minute, t.second, t.has_offset, t.offset);
	wall = oracle_wall(o);
	if (t.has_offset) {
		FUZZ_CHECK(iso8601_instant(&t, "Fuzz/East", &when, err, sizeof(err)) == 0 &&
			   when == wall - o->offset, "'%s': instant %lld, not %lld", text,
			   (long long)when, (long long)(wall - o->offset));
		iso8601_format(when, t.offset, out, sizeof(out));
		snprintf(expect, sizeof(expect), "%.19s%s", text,
			 o->offset == 0 ? "+00:00" : text + 19);
		FUZZ_CHECK(strcmp(out, expect) == 0, "'%s' formats back as %s", text, out);
		return;
	}
	FUZZ_CHECK(iso8601_instant(&t, "UTC", &when, err, sizeof(err)) == 0 && when == wall,
		   "'%s' in UTC: %lld, not %lld", text, (long long)when, (long long)wall);
	iso8601_format(when, 0, out, sizeof(out));
	snprintf(expect, sizeof(expect), "%s+00:00", text);
	FUZZ_CHECK(strcmp(out, expect) == 0, "'%s' formats back as %s", text, out);
	for (size_t i = 1; i < sizeof(zones) / sizeof(zones[0]); i++)
		check_zone(text, &t, wall, zones[i]);
}

/* {"finished": TEXT} with TEXT escaped as a JSON string. */
static void check_finished(const char *text, const struct oracle *o, bool valid)
{
	size_t len = strlen(text), n = 0;
	char *json = malloc(len * 6 + 32);
	long long got, want = -1;

	if (json == NULL)
		abort();
	n += (size_t)sprintf(json, "{\"finished\": \"");
	for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			n += (size_t)sprintf(json + n, "\\%c", *p);
		else if (*p < 0x20)
			n += (size_t)sprintf(json + n, "\\u%04x", *p);
		else
			json[n++] = (char)*p;
	}
	n += (size_t)sprintf(json + n, "\"}");
	got = retention_manifest_finished(json, n);
	if (valid && o->kind == 'Z')
		want = oracle_wall(o);
	FUZZ_CHECK(got == want, "\"finished\": \"%s\" read as %lld, not %lld", text, got, want);
	free(json);
}

static void check_started(const char *text, const struct oracle *o, bool valid)
{
	time_t got = set_parse_utc(text);

	if (valid && o->kind == '+')
		FUZZ_CHECK(got == (time_t)-1, "\"started\": \"%s\" read as %lld, its offset "
			   "ignored", text, (long long)got);
	else if (valid && oracle_wall(o) != -1)
		FUZZ_CHECK((int64_t)got == oracle_wall(o), "\"started\": \"%s\" read as %lld, not "
			   "%lld", text, (long long)got, (long long)oracle_wall(o));
	else if (!valid)
		FUZZ_CHECK(got == (time_t)-1, "\"started\": \"%s\" read as %lld, but it is no "
			   "date-time of the form", text, (long long)got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct oracle o;
	char *text;
	bool valid;

	if (size > 256)
		return 0;
	if (dir[0] == '\0')
		LLVMFuzzerInitialize(NULL, NULL);
	text = fuzz_cstr(data, size);
	valid = oracle_parse(text, &o);
	check_iso8601(text, &o, valid);
	check_finished(text, &o, valid);
	check_started(text, &o, valid);
	free(text);
	return 0;
}
