/* cron.c - parse cron expressions and find their next occurrence.
 *
 * The search runs on the zone's wall clock, field by field: month, then the
 * days of that month that pass every day rule, then the first time of day.
 * Calendar patterns repeat every 400 years (146097 days, whole weeks), so
 * 4800 months without a match mean "never".  The wall-clock result is then
 * mapped to UTC with the daylight-saving rules described in cron.h.
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cron.h"
#include "cron_tz.h"

#define YEAR_MAX 9999
#define MONTHS_PER_CYCLE 4800
#define DAY 86400
/* 0001-01-01 and 10000-01-03 00:00 UTC: beyond any local year 1..9999. */
#define SEARCH_MIN (-62135596800LL)
#define SEARCH_MAX (253402473600LL)
#define TOKEN_QUOTE_MAX 64

enum field_id { F_SEC, F_MIN, F_HOUR, F_DOM, F_MONTH, F_DOW, F_COUNT };

struct field {
	const char *name;
	int lo, hi;		/* values accepted */
	int wrap_hi;		/* a reversed range wraps after this value */
	const char *names;	/* three letters each, the first for value name_base */
	int name_base;
	const char *name_range;
	bool interval;		/* '*', ranges and steps here make CRON_INTERVAL */
};

static const struct field fields[F_COUNT] = {
	[F_SEC] = { "second", 0, 59, 59, NULL, 0, NULL, true },
	[F_MIN] = { "minute", 0, 59, 59, NULL, 0, NULL, true },
	[F_HOUR] = { "hour", 0, 23, 23, NULL, 0, NULL, true },
	[F_DOM] = { "day-of-month", 1, 31, 31, NULL, 0, NULL, false },
	[F_MONTH] = { "month", 1, 12, 12, "JANFEBMARAPRMAYJUNJULAUGSEPOCTNOVDEC", 1, "JAN-DEC",
		      false },
	/* 7 is Sunday again, so reversed ranges wrap after Saturday. */
	[F_DOW] = { "day-of-week", 0, 7, 6, "SUNMONTUEWEDTHUFRISAT", 0, "SUN-SAT", false },
};

static const struct {
	const char *name;
	const char *expr;
} macros[] = {
	{ "every_second", "* * * * * *" },
	{ "every_minute", "* * * * *" },
	{ "hourly", "0 * * * *" },
	{ "daily", "0 0 * * *" },
	{ "midnight", "0 0 * * *" },
	{ "weekly", "0 0 * * 0" },
	{ "monthly", "0 0 1 * *" },
	{ "yearly", "0 0 1 1 *" },
	{ "annually", "0 0 1 1 *" },
};

/* Parsing one field: its definition, its text, where errors go. */
struct pctx {
	const struct field *f;
	const char *tok;
	size_t len;
	char *err;
	size_t errlen;
};

static int fail(const struct pctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Up to TOKEN_QUOTE_MAX bytes of configuration text for a message, control
 * bytes shown as '?'. */
static const char *quote(char *buf, const char *text, size_t len)
{
	size_t n = len > TOKEN_QUOTE_MAX ? TOKEN_QUOTE_MAX : len;

	for (size_t i = 0; i < n; i++)
		buf[i] = isprint((unsigned char)text[i]) ? text[i] : '?';
	strcpy(buf + n, len > n ? "..." : "");
	return buf;
}

static int fail(const struct pctx *c, const char *fmt, ...)
{
	char quoted[TOKEN_QUOTE_MAX + 4];
	va_list ap;
	int w;

	w = snprintf(c->err, c->errlen, "%s field: '%s': ", c->f->name,
		     quote(quoted, c->tok, c->len));
	if (w >= 0 && (size_t)w < c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err + w, c->errlen - (size_t)w, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* The complaint about a character where none of its kind may stand. */
static int unexpected(const struct pctx *c, char ch)
{
	int up = toupper((unsigned char)ch);

	if (c->f == &fields[F_DOM] && up == 'W')
		return fail(c, "W follows only a single day or L (15W, LW, L-3W)");
	if (c->f == &fields[F_DOM] && up == 'L')
		return fail(c, "L must be the whole field (L, L-3, LW, L-3W)");
	if (c->f == &fields[F_DOW] && (up == 'L' || ch == '#'))
		return fail(c, "%s must be the whole field (5L, 5#2)", up == 'L' ? "nL" : "n#k");
	if (ch == '*' || ch == '?')
		return fail(c, "'%c' must be the whole field, optionally with a step", ch);
	if (isprint((unsigned char)ch))
		return fail(c, "unexpected '%c'", ch);
	return fail(c, "unexpected byte 0x%02x", (unsigned char)ch);
}

/* Digits only, at most two, within lo..hi. */
static int parse_number(const struct pctx *c, const char **pp, const char *end, int lo, int hi,
			const char *what, int *out)
{
	const char *p = *pp;
	int v = 0, n = 0;

	for (; p < end && isdigit((unsigned char)*p); p++, n++)
		v = n < 3 ? v * 10 + (*p - '0') : v;
	if (n > 2)
		return fail(c, "numbers have at most 2 digits");
	if (n == 0 || v < lo || v > hi)
		return fail(c, "%s must be %d to %d", what, lo, hi);
	*pp = p;
	*out = v;
	return 0;
}

/* A value of the field: a number, or a three-letter name where the field
 * has names. */
static int parse_value(const struct pctx *c, const char **pp, const char *end, int *out)
{
	const struct field *f = c->f;
	const char *p = *pp;

	if (p < end && isdigit((unsigned char)*p)) {
		int v = 0, n = 0;

		for (; p < end && isdigit((unsigned char)*p); p++, n++)
			v = n < 3 ? v * 10 + (*p - '0') : v;
		if (n > 2)
			return fail(c, "numbers have at most 2 digits");
		if (v < f->lo || v > f->hi) {
			if (f->names != NULL)
				return fail(c, "value must be %d to %d or %s", f->lo, f->hi,
					    f->name_range);
			return fail(c, "value must be %d to %d", f->lo, f->hi);
		}
		*pp = p;
		*out = v;
		return 0;
	}
	if (p < end && isalpha((unsigned char)*p)) {
		size_t letters = 0, count = f->names != NULL ? strlen(f->names) / 3 : 0;

		while (p + letters < end && isalpha((unsigned char)p[letters]))
			letters++;
		if (f->names == NULL)
			return unexpected(c, *p);
		for (size_t i = 0; letters >= 3 && i < count; i++) {
			if (strncasecmp(p, f->names + 3 * i, 3) != 0)
				continue;
			/* Only "5L"-style suffixes may follow a name directly. */
			if (letters > 3 && !(f == &fields[F_DOW] && toupper((unsigned char)p[3]) == 'L'))
				break;
			*pp = p + 3;
			*out = f->name_base + (int)i;
			return 0;
		}
		return fail(c, "names have three letters (%s)", f->name_range);
	}
	if (p == end)
		return fail(c, "a value is missing");
	return unexpected(c, *p);
}

static int parse_step(const struct pctx *c, const char **pp, const char *end, int *step)
{
	return parse_number(c, pp, end, 1, c->f->hi, "step", step);
}

/* lo-hi/step; a reversed range runs on past wrap_hi and starts over at the
 * field's first value, the step counting across the wrap. */
static uint64_t range_bits(const struct field *f, int lo, int hi, int step)
{
	uint64_t bits = 0;
	int cycle = f->wrap_hi - f->lo + 1;

	if (lo <= hi) {
		for (int v = lo; v <= hi; v += step)
			bits |= 1ULL << v;
		return bits;
	}
	for (int v = lo; v <= hi + cycle; v += step)
		bits |= 1ULL << (v > f->wrap_hi ? v - cycle : v);
	return bits;
}

/* '*' or '?', with an optional step; p is past the star. */
static int parse_star(const struct pctx *c, const char *p, uint64_t *bits, bool *interval)
{
	const char *end = c->tok + c->len;
	int step = 1;

	if (p < end && *p == '/') {
		p++;
		if (parse_step(c, &p, end, &step) != 0)
			return -1;
	}
	if (p != end && !isprint((unsigned char)*p))
		return unexpected(c, *p);
	if (p != end)
		return fail(c, "'%c' must be the whole field, optionally with a step", c->tok[0]);
	*bits = range_bits(c->f, c->f->lo, c->f->hi, step);
	*interval = *interval || c->f->interval;
	return 0;
}

/* value[-value][/step][,...] */
static int parse_list(const struct pctx *c, uint64_t *bits, bool *interval)
{
	const char *p = c->tok, *end = c->tok + c->len;

	*bits = 0;
	for (;;) {
		int lo, hi, step = 1;
		bool ranged = false;

		if (parse_value(c, &p, end, &lo) != 0)
			return -1;
		hi = lo;
		if (p < end && *p == '-') {
			p++;
			if (parse_value(c, &p, end, &hi) != 0)
				return -1;
			ranged = true;
		}
		if (p < end && *p == '/') {
			p++;
			if (parse_step(c, &p, end, &step) != 0)
				return -1;
			if (!ranged)
				hi = c->f->hi;	/* 5/15 means 5-59/15 */
			ranged = true;
		}
		*bits |= range_bits(c->f, lo, hi, step);
		if (ranged && c->f->interval)
			*interval = true;
		if (p == end)
			return 0;
		if (*p != ',')
			return unexpected(c, *p);
		p++;
	}
}

static int parse_plain(const struct pctx *c, uint64_t *bits, bool *interval)
{
	if (c->tok[0] == '*' || c->tok[0] == '?')
		return parse_star(c, c->tok + 1, bits, interval);
	return parse_list(c, bits, interval);
}

/* *, a list, L[-n][W] or nW. */
static int parse_dom(const struct pctx *c, struct cron_expr *e, bool *interval)
{
	const char *p = c->tok, *end = c->tok + c->len;
	uint64_t bits;
	int day;

	if (toupper((unsigned char)*p) == 'L') {
		int offset = 0;

		p++;
		if (p < end && *p == '-') {
			p++;
			if (parse_number(c, &p, end, 0, 30, "n of L-n", &offset) != 0)
				return -1;
		}
		if (p < end && toupper((unsigned char)*p) == 'W') {
			p++;
			e->flags |= CRON_DOM_NEAREST;
		}
		if (p != end)
			return unexpected(c, *p);
		e->flags |= CRON_DOM_LAST;
		e->dom_offset = (uint8_t)offset;
		e->dom = (uint32_t)range_bits(c->f, 1, 31, 1);
		return 0;
	}
	if (isdigit((unsigned char)*p)) {
		const char *q = p;

		if (parse_value(c, &q, end, &day) != 0)
			return -1;
		if (q + 1 == end && toupper((unsigned char)*q) == 'W') {
			e->flags |= CRON_DOM_NEAREST;
			e->dom = 1U << day;
			return 0;
		}
	}
	if (parse_plain(c, &bits, interval) != 0)
		return -1;
	e->dom = (uint32_t)bits;
	return 0;
}

/* *, a list, nL or n#k. */
static int parse_dow(const struct pctx *c, struct cron_expr *e, bool *interval)
{
	const char *p = c->tok, *end = c->tok + c->len;
	uint64_t bits;
	int day, nth;

	if (*p != '*' && *p != '?') {
		if (parse_value(c, &p, end, &day) != 0)
			return -1;
		if (p + 1 == end && toupper((unsigned char)*p) == 'L') {
			e->flags |= CRON_DOW_LAST;
			bits = 1ULL << day;
			goto done;
		}
		if (p < end && *p == '#') {
			p++;
			if (parse_number(c, &p, end, 1, 5, "k of n#k", &nth) != 0)
				return -1;
			if (p != end)
				return unexpected(c, *p);
			e->flags |= CRON_DOW_NTH;
			e->dow_nth = (uint8_t)nth;
			bits = 1ULL << day;
			goto done;
		}
	}
	if (parse_plain(c, &bits, interval) != 0)
		return -1;
done:
	if (bits & (1ULL << 7))
		bits |= 1;	/* 7 is Sunday too */
	e->dow = (uint8_t)(bits & 0x7f);
	return 0;
}

static int parse_macro(const char *text, const char *p, struct cron_expr *out, char *err,
		       size_t errlen)
{
	const char *name = p + 1, *q = name;
	char quoted[TOKEN_QUOTE_MAX + 4];
	size_t len;

	while (*q != '\0' && !is_blank(*q))
		q++;
	len = (size_t)(q - name);
	while (is_blank(*q))
		q++;
	if (*q != '\0') {
		snprintf(err, errlen, "'%s': nothing may follow a macro",
			 quote(quoted, text, strlen(text)));
		return -1;
	}
	for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
		if (strlen(macros[i].name) == len && strncasecmp(name, macros[i].name, len) == 0)
			return cron_parse(macros[i].expr, out, err, errlen);
	snprintf(err, errlen, "unknown macro '@%s' (known: @every_second, @every_minute, "
		 "@hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually)",
		 quote(quoted, name, len));
	return -1;
}

int cron_parse(const char *text, struct cron_expr *out, char *err, size_t errlen)
{
	const char *tok[F_COUNT + 1];
	size_t len[F_COUNT + 1];
	const char *p = text;
	int n = 0, first;
	bool interval = false;
	struct cron_expr e;

	memset(&e, 0, sizeof(e));
	while (is_blank(*p))
		p++;
	if (*p == '@')
		return parse_macro(text, p, out, err, errlen);
	while (*p != '\0') {
		const char *start = p;

		while (*p != '\0' && !is_blank(*p))
			p++;
		if (n < F_COUNT + 1) {
			tok[n] = start;
			len[n] = (size_t)(p - start);
		}
		n++;
		while (is_blank(*p))
			p++;
	}
	if (n == 0) {
		snprintf(err, errlen, "empty cron expression");
		return -1;
	}
	if (n != 5 && n != 6) {
		snprintf(err, errlen, "expected 5 or 6 fields, found %d", n);
		return -1;
	}
	/* Five fields start at the minute; the second is then 0. */
	first = n == 6 ? F_SEC : F_MIN;
	if (first == F_MIN)
		e.second = 1;
	for (int f = first; f < F_COUNT; f++) {
		struct pctx c = { &fields[f], tok[f - first], len[f - first], err, errlen };
		uint64_t bits;
		int r;

		switch (f) {
		case F_DOM:
			r = parse_dom(&c, &e, &interval);
			break;
		case F_DOW:
			r = parse_dow(&c, &e, &interval);
			break;
		default:
			r = parse_plain(&c, &bits, &interval);
			if (f == F_SEC)
				e.second = bits;
			else if (f == F_MIN)
				e.minute = bits;
			else if (f == F_HOUR)
				e.hour = (uint32_t)bits;
			else
				e.month = (uint16_t)bits;
			break;
		}
		if (r != 0)
			return -1;
	}
	if (interval)
		e.flags |= CRON_INTERVAL;
	*out = e;
	return 0;
}

/* Searching */

static int next_bit(uint64_t mask, int from)
{
	if (from > 63)
		return -1;
	mask &= ~0ULL << from;
	return mask != 0 ? __builtin_ctzll(mask) : -1;
}

/* The days of month m of year y that pass the day-of-month and day-of-week
 * fields, as bits 1-31. */
static uint32_t day_mask(const struct cron_expr *e, int64_t y, int m)
{
	int ndays = cron_days_in_month(y, m);
	int wd1 = cron_weekday(cron_days_from_civil(y, m, 1));
	uint32_t days, out = 0;

	if (e->flags & CRON_DOM_LAST) {
		int d = ndays - e->dom_offset;

		if (d < 1)
			return 0;	/* L-30 in February */
		days = 1U << d;
	} else {
		days = e->dom & (uint32_t)(((2ULL << ndays) - 1) & ~1ULL);
	}
	if ((e->flags & CRON_DOM_NEAREST) && days != 0) {
		/* One day: move Saturday to Friday and Sunday to Monday, but
		 * stay in the month (1st Saturday -> Monday 3rd, last-day
		 * Sunday -> Friday). */
		int d = __builtin_ctz(days);
		int wd = (wd1 + d - 1) % 7;

		if (wd == 6)
			d = d == 1 ? 3 : d - 1;
		else if (wd == 0)
			d = d == ndays ? d - 2 : d + 1;
		days = 1U << d;
	}
	for (int d = next_bit(days, 1); d > 0; d = next_bit(days, d + 1)) {
		int wd = (wd1 + d - 1) % 7;

		if (!(e->dow & (1U << wd)))
			continue;
		if ((e->flags & CRON_DOW_LAST) && d + 7 <= ndays)
			continue;
		if ((e->flags & CRON_DOW_NTH) && (d - 1) / 7 + 1 != e->dow_nth)
			continue;
		out |= 1U << d;
	}
	return out;
}

/* The first time of day at or after h:m:s; false if none is left today. */
static bool time_at_or_after(const struct cron_expr *e, int h, int m, int s, int *oh, int *om,
			     int *os)
{
	for (int hh = next_bit(e->hour, h); hh >= 0; hh = next_bit(e->hour, hh + 1)) {
		for (int mm = next_bit(e->minute, hh == h ? m : 0); mm >= 0;
		     mm = next_bit(e->minute, mm + 1)) {
			int ss = next_bit(e->second, hh == h && mm == m ? s : 0);

			if (ss >= 0) {
				*oh = hh;
				*om = mm;
				*os = ss;
				return true;
			}
		}
	}
	return false;
}

/* The first matching wall-clock time at or after `from` (after it, unless
 * inclusive), in seconds since 1970-01-01 00:00 local; false if none up to
 * the end of year 9999. */
static bool local_find(const struct cron_expr *e, int64_t from, bool inclusive, int64_t *found)
{
	int64_t t = inclusive ? from : from + 1;
	int64_t days = t / DAY - (t % DAY < 0 ? 1 : 0);
	int secs = (int)(t - days * DAY);
	int h = secs / 3600, mi = secs / 60 % 60, s = secs % 60;
	int hh, mm, ss, mon, d, day = 0;
	int64_t y;

	cron_civil_from_days(days, &y, &mon, &d);
	for (int i = 0; i <= MONTHS_PER_CYCLE && y <= YEAR_MAX; i++) {
		if (e->month & (1U << mon)) {
			uint32_t mask = day_mask(e, y, mon);

			if (i == 0) {
				mask &= ~0U << d;
				if (mask & (1U << d)) {
					if (time_at_or_after(e, h, mi, s, &hh, &mm, &ss)) {
						day = d;
						goto found;
					}
					mask &= ~(1U << d);
				}
			}
			if (mask != 0) {
				day = __builtin_ctz(mask);
				hh = next_bit(e->hour, 0);
				mm = next_bit(e->minute, 0);
				ss = next_bit(e->second, 0);
				goto found;
			}
		}
		if (++mon > 12) {
			mon = 1;
			y++;
		}
	}
	return false;
found:
	*found = cron_days_from_civil(y, mon, day) * DAY + hh * 3600 + mm * 60 + ss;
	return true;
}

/* The instant of a wall-clock occurrence: in a gap, the jump; in a repeated
 * span, the first pass. */
static int64_t local_to_utc(const struct cron_tz *z, int64_t local)
{
	struct cron_tz_local r;

	cron_tz_local(z, local, &r);
	return r.count == 0 ? r.transition : r.when[0];
}

/* One search from `after`, as Cronos does it: when `after` falls in a
 * repeated span, finish its first pass, then (interval expressions only)
 * its second, then go on from the end of the span. */
static bool next_from(const struct cron_expr *e, const struct cron_tz *z, int64_t after,
		      int64_t *local_out, int64_t *utc_out)
{
	int64_t from = after + cron_tz_offset(z, after), f;
	bool inclusive = false;
	struct cron_tz_local r;

	cron_tz_local(z, from, &r);
	if (r.count == 2) {
		int64_t span_start = r.transition + r.offset[1];
		int64_t span_end = r.transition + r.offset[0];	/* exclusive */

		if (after == r.when[0]) {
			if (local_find(e, from, false, &f) && f < span_end) {
				*local_out = f;
				*utc_out = f - r.offset[0];
				return true;
			}
			from = span_start;
			inclusive = true;
		}
		if ((e->flags & CRON_INTERVAL) && local_find(e, from, inclusive, &f) &&
		    f < span_end) {
			*local_out = f;
			*utc_out = f - r.offset[1];
			return true;
		}
		from = span_end;
		inclusive = true;
	}
	if (!local_find(e, from, inclusive, &f))
		return false;
	*local_out = f;
	*utc_out = local_to_utc(z, f);
	return true;
}

int cron_next(const struct cron_expr *e, const char *tz, time_t after, time_t *next,
	      char *err, size_t errlen)
{
	const struct cron_tz *z = cron_tz_get(tz, err, errlen);
	int64_t from = after, local, utc;

	if (z == NULL)
		return -1;
	if (from >= SEARCH_MAX)
		return 1;
	if (from < SEARCH_MIN)
		from = SEARCH_MIN;
	if (!next_from(e, z, from, &local, &utc))
		return 1;
	/* Zones with odd histories could map a later wall-clock time to an
	 * instant not after `after`; look further on the wall clock. */
	for (int tries = 0; utc <= (int64_t)after; tries++) {
		if (tries == 16 || !local_find(e, local, false, &local))
			return 1;
		utc = local_to_utc(z, local);
	}
	*next = (time_t)utc;
	return 0;
}

int cron_zone_check(const char *tz, char *err, size_t errlen)
{
	return cron_tz_get(tz, err, errlen) != NULL ? 0 : -1;
}
