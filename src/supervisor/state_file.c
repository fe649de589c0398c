/* state_file.c - load and save the daemon's state.json. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "state_file.h"
#include "xio.h"

#define STATE_NAME "state.json"
#define STATE_MAX (4 << 20)

static const char *const result_names[RESULT_COUNT] = {
	"complete", "partial", "failed", "cancelled",
};

const char *run_result_name(enum run_result r)
{
	return r < RESULT_COUNT ? result_names[r] : "unknown";
}

void state_init(struct daemon_state *st)
{
	memset(st, 0, sizeof(*st));
	snprintf(st->breaker_state, sizeof(st->breaker_state), "closed");
}

void state_free(struct daemon_state *st)
{
	if (st->last_run != NULL)
		bson_destroy(st->last_run);
	st->last_run = NULL;
}

char *state_encode(const struct daemon_state *st)
{
	bson_t doc = BSON_INITIALIZER, runs, breaker;
	char *json;

	BSON_APPEND_INT32(&doc, "format", 1);
	if (st->last_run != NULL)
		BSON_APPEND_DOCUMENT(&doc, "last_run", st->last_run);
	BSON_APPEND_INT64(&doc, "last_run_started", (int64_t)st->last_run_started);
	BSON_APPEND_INT64(&doc, "last_run_finished", (int64_t)st->last_run_finished);
	BSON_APPEND_UTF8(&doc, "last_complete_set", st->last_complete_set);
	BSON_APPEND_INT64(&doc, "last_complete_finished", (int64_t)st->last_complete_finished);
	BSON_APPEND_DOCUMENT_BEGIN(&doc, "runs", &runs);
	for (int i = 0; i < RESULT_COUNT; i++)
		BSON_APPEND_INT64(&runs, result_names[i], (int64_t)st->runs[i]);
	bson_append_document_end(&doc, &runs);
	BSON_APPEND_DOCUMENT_BEGIN(&doc, "breaker", &breaker);
	BSON_APPEND_UTF8(&breaker, "state", st->breaker_state);
	BSON_APPEND_INT32(&breaker, "failures", st->breaker_failures);
	BSON_APPEND_INT64(&breaker, "opened", (int64_t)st->breaker_opened);
	BSON_APPEND_INT64(&breaker, "transitions", (int64_t)st->breaker_transitions);
	bson_append_document_end(&doc, &breaker);
	json = bson_as_relaxed_extended_json(&doc, NULL);
	bson_destroy(&doc);
	return json;
}

/* ---- decoding, one field at a time ------------------------------------ */

/* Bounds of what a state file may say.  The file is ours, but it outlives
 * the process that wrote it: a disk error, a hand edit or a file from
 * another machine must not become a negative counter, a breaker that
 * stays open for a century or a catch-up that never comes.  Like the
 * configuration, a value out of bounds is refused and named in a warning;
 * unlike it, only that field falls back to its default, so one bad value
 * does not throw away the run history. */

/* Counters: anything a double holds exactly (JSON readers of status and
 * Prometheus see doubles), which no daemon ever reaches by counting. */
#define COUNTER_MAX ((INT64_C(1) << 53) - 1)
/* Consecutive failures: far beyond any outage, and far enough from INT_MAX
 * that the breaker can go on counting without overflowing its int. */
#define FAILURES_MAX 1000000000
/* Times: 0 means never; otherwise not before this program existed
 * (2000-01-01T00:00:00Z) and not more than a day of clock skew ahead of
 * now.  A time in the future would hold the breaker open or suppress the
 * catch-up run until then. */
#define TIME_MIN INT64_C(946684800)
#define TIME_SKEW_MAX (24 * 3600)
/* run_id of the last run: "20261127T030000Z-1" and the like. */
#define RUN_ID_MAX 128

struct decoder {
	const bson_t *doc;
	state_report_fn report;
	void *ctx;
	int64_t time_max;
	int rejected;
};

/* A value for a message: numbers as they are, strings quoted, cut at a
 * character boundary after 40 bytes and with control bytes as '?' (the
 * message goes to a log line), anything else by its type. */
static void describe(const bson_iter_t *it, char *out, size_t len)
{
	switch (bson_iter_type(it)) {
	case BSON_TYPE_INT32:
		snprintf(out, len, "%d", bson_iter_int32(it));
		return;
	case BSON_TYPE_INT64:
		snprintf(out, len, "%lld", (long long)bson_iter_int64(it));
		return;
	case BSON_TYPE_DOUBLE:
		snprintf(out, len, "%.17g", bson_iter_double(it));
		return;
	case BSON_TYPE_UTF8: {
		uint32_t n;
		const char *s = bson_iter_utf8(it, &n);
		char shown[48];
		size_t cut = n > 40 ? 40 : n;

		/* Never end on half a UTF-8 sequence. */
		while (cut < n && cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
			cut--;
		for (size_t i = 0; i < cut; i++)
			shown[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
		shown[cut] = '\0';
		if (cut < n)
			snprintf(out, len, "'%s...' (%lu bytes)", shown, (unsigned long)n);
		else
			snprintf(out, len, "'%s'", shown);
		return;
	}
	case BSON_TYPE_BOOL:
		snprintf(out, len, "%s", bson_iter_bool(it) ? "true" : "false");
		return;
	case BSON_TYPE_NULL:
		snprintf(out, len, "null");
		return;
	case BSON_TYPE_DOCUMENT:
		snprintf(out, len, "an object");
		return;
	case BSON_TYPE_ARRAY:
		snprintf(out, len, "an array");
		return;
	default:
		snprintf(out, len, "a value of BSON type %#x", (unsigned)bson_iter_type(it));
		return;
	}
}

static void reject(struct decoder *dc, const char *field, const bson_iter_t *it,
		   const char *fallback, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* "FIELD: VALUE WHY; using FALLBACK".  The message is made even when
 * nobody listens, so that the fuzzer runs this code too. */
static void reject(struct decoder *dc, const char *field, const bson_iter_t *it,
		   const char *fallback, const char *fmt, ...)
{
	char value[128], why[256], msg[512];
	va_list ap;

	describe(it, value, sizeof(value));
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(msg, sizeof(msg), "%s: %s %s; using %s", field, value, why, fallback);
	dc->rejected++;
	if (dc->report != NULL)
		dc->report(dc->ctx, msg);
}

/* The field at a dotted path, or false when absent (a default, no
 * warning: fields may be added, and an empty state is valid). */
static bool find(const struct decoder *dc, const char *path, bson_iter_t *found)
{
	bson_iter_t it;

	return bson_iter_init(&it, dc->doc) && bson_iter_find_descendant(&it, path, found);
}

/* A whole number in [min, max]; false (reported) for anything else: a
 * fraction, NaN, a number out of range, a string. */
static bool whole_number(struct decoder *dc, const char *path, const bson_iter_t *it,
			 int64_t min, int64_t max, const char *fallback, int64_t *out)
{
	int64_t v;

	switch (bson_iter_type(it)) {
	case BSON_TYPE_INT32:
		v = bson_iter_int32(it);
		break;
	case BSON_TYPE_INT64:
		v = bson_iter_int64(it);
		break;
	case BSON_TYPE_DOUBLE: {
		/* Converting a double outside int64 to an integer is undefined;
		 * compare as doubles first.  2^63 is exact as a double. */
		double d = bson_iter_double(it);
		if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) ||
		    d != (double)(int64_t)d) {
			reject(dc, path, it, fallback, "is not a whole number from %lld to %lld",
			       (long long)min, (long long)max);
			return false;
		}
		v = (int64_t)d;
		break;
	}
	default:
		reject(dc, path, it, fallback, "is not a number");
		return false;
	}
	if (v < min || v > max) {
		reject(dc, path, it, fallback, "is not a whole number from %lld to %lld",
		       (long long)min, (long long)max);
		return false;
	}
	*out = v;
	return true;
}

static void get_counter(struct decoder *dc, const char *path, uint64_t *out)
{
	bson_iter_t it;
	int64_t v;

	if (find(dc, path, &it) && whole_number(dc, path, &it, 0, COUNTER_MAX, "0", &v))
		*out = (uint64_t)v;
}

static void get_time(struct decoder *dc, const char *path, time_t *out)
{
	bson_iter_t it;
	int64_t v;

	if (!find(dc, path, &it) ||
	    !whole_number(dc, path, &it, INT64_MIN, INT64_MAX, "0 (never)", &v))
		return;
	if (v != 0 && (v < TIME_MIN || v > dc->time_max)) {
		char lo[32], hi[32];
		time_t t = (time_t)dc->time_max;
		struct tm tm;

		snprintf(lo, sizeof(lo), "2000-01-01T00:00:00Z");
		if (gmtime_r(&t, &tm) == NULL ||
		    strftime(hi, sizeof(hi), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
			snprintf(hi, sizeof(hi), "a day from now");
		reject(dc, path, &it, "0 (never)", "is not 0 (never) or a time from %s to %s "
		       "(a day from now)", lo, hi);
		return;
	}
	*out = (time_t)v;
}

/* A string of at most len - 1 bytes without control bytes (it reaches
 * status, the metrics and the log); false when absent or refused. */
static bool get_text(struct decoder *dc, const char *path, char *out, size_t len,
		     const char *fallback)
{
	bson_iter_t it;
	const char *s;
	uint32_t n;

	if (!find(dc, path, &it))
		return false;
	if (!BSON_ITER_HOLDS_UTF8(&it)) {
		reject(dc, path, &it, fallback, "is not a string");
		return false;
	}
	s = bson_iter_utf8(&it, &n);
	if (n > len - 1) {
		reject(dc, path, &it, fallback, "is longer than %lu bytes", (unsigned long)(len - 1));
		return false;
	}
	for (uint32_t i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			reject(dc, path, &it, fallback, "contains a control character");
			return false;
		}
	}
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

static bool known_result(const bson_iter_t *it)
{
	uint32_t n;
	const char *name;

	if (!BSON_ITER_HOLDS_UTF8(it))
		return false;
	name = bson_iter_utf8(it, &n);
	for (int i = 0; i < RESULT_COUNT; i++)
		if (n == strlen(result_names[i]) && memcmp(name, result_names[i], n) == 0)
			return true;
	return false;
}

/* last_run is shown as it is by status and walked by the metrics, which
 * take what they understand; what is checked here is what identifies the
 * run: its id, its result, and that collections is a list. */
static void get_last_run(struct decoder *dc, struct daemon_state *st)
{
	bson_iter_t it, f;
	uint32_t dlen;
	const uint8_t *data;
	bson_t run;

	if (!find(dc, "last_run", &it))
		return;
	if (BSON_ITER_HOLDS_NULL(&it))
		return;		/* what a daemon without runs would write */
	if (!BSON_ITER_HOLDS_DOCUMENT(&it)) {
		reject(dc, "last_run", &it, "none", "is not an object");
		return;
	}
	bson_iter_document(&it, &dlen, &data);
	if (!bson_init_static(&run, data, dlen)) {
		reject(dc, "last_run", &it, "none", "is not a valid document");
		return;
	}
	if (bson_iter_init_find(&f, &run, "run_id")) {
		uint32_t n = 0;
		const char *s = BSON_ITER_HOLDS_UTF8(&f) ? bson_iter_utf8(&f, &n) : NULL;
		bool ok = s != NULL && n > 0 && n <= RUN_ID_MAX;

		for (uint32_t i = 0; ok && i < n; i++)
			ok = (unsigned char)s[i] > 0x20 && s[i] != 0x7f;
		if (!ok) {
			reject(dc, "last_run.run_id", &f, "no last run",
			       "is not a run id (1 to %d printable characters)", RUN_ID_MAX);
			return;
		}
	}
	if (bson_iter_init_find(&f, &run, "result") && !known_result(&f)) {
		reject(dc, "last_run.result", &f, "no last run",
		       "is not one of complete, partial, failed, cancelled");
		return;
	}
	if (bson_iter_init_find(&f, &run, "collections") && !BSON_ITER_HOLDS_ARRAY(&f)) {
		reject(dc, "last_run.collections", &f, "no last run", "is not a list");
		return;
	}
	st->last_run = bson_new_from_data(data, dlen);
}

static void get_breaker_state(struct decoder *dc, struct daemon_state *st)
{
	char name[sizeof(st->breaker_state)];
	bson_iter_t it;

	if (!get_text(dc, "breaker.state", name, sizeof(name), "'closed'"))
		return;
	if (strcmp(name, "closed") != 0 && strcmp(name, "open") != 0 &&
	    strcmp(name, "half-open") != 0) {
		if (find(dc, "breaker.state", &it))
			reject(dc, "breaker.state", &it, "'closed'",
			       "is not closed, open or half-open");
		return;
	}
	memcpy(st->breaker_state, name, sizeof(name));
}

static bool is_format_1(const bson_iter_t *it)
{
	switch (bson_iter_type(it)) {
	case BSON_TYPE_INT32: return bson_iter_int32(it) == 1;
	case BSON_TYPE_INT64: return bson_iter_int64(it) == 1;
	case BSON_TYPE_DOUBLE: return bson_iter_double(it) == 1.0;
	default: return false;
	}
}

int state_decode_report(const char *json, size_t len, struct daemon_state *st,
			state_report_fn report, void *ctx, char *err, size_t errlen)
{
	bson_error_t error;
	bson_iter_t it;
	struct decoder dc = { .report = report, .ctx = ctx };
	int64_t v;
	bson_t *doc;

	state_init(st);
	if (len > (size_t)SSIZE_MAX) {
		snprintf(err, errlen, "too large");
		return -1;
	}
	doc = bson_new_from_json((const uint8_t *)json, (ssize_t)len, &error);
	if (doc == NULL) {
		snprintf(err, errlen, "not JSON: %s", error.message);
		return -1;
	}
	dc.doc = doc;
	if (!bson_iter_init_find(&it, doc, "format") || !is_format_1(&it)) {
		/* Not ours, or a later version's: nothing in it can be trusted. */
		snprintf(err, errlen, "unknown state format");
		bson_destroy(doc);
		return -1;
	}
	dc.time_max = (int64_t)time(NULL) + TIME_SKEW_MAX;

	get_last_run(&dc, st);
	get_time(&dc, "last_run_started", &st->last_run_started);
	get_time(&dc, "last_run_finished", &st->last_run_finished);
	if (st->last_run_started != 0 && st->last_run_finished != 0 &&
	    st->last_run_finished < st->last_run_started && find(&dc, "last_run_finished", &it)) {
		reject(&dc, "last_run_finished", &it, "0 (never)",
		       "is before last_run_started (%lld)", (long long)st->last_run_started);
		st->last_run_finished = 0;
	}
	get_text(&dc, "last_complete_set", st->last_complete_set,
		 sizeof(st->last_complete_set), "'' (none)");
	get_time(&dc, "last_complete_finished", &st->last_complete_finished);
	for (int i = 0; i < RESULT_COUNT; i++) {
		char path[32];
		snprintf(path, sizeof(path), "runs.%s", result_names[i]);
		get_counter(&dc, path, &st->runs[i]);
	}
	get_breaker_state(&dc, st);
	if (find(&dc, "breaker.failures", &it) &&
	    whole_number(&dc, "breaker.failures", &it, 0, FAILURES_MAX, "0", &v))
		st->breaker_failures = (int)v;
	get_time(&dc, "breaker.opened", &st->breaker_opened);
	get_counter(&dc, "breaker.transitions", &st->breaker_transitions);
	bson_destroy(doc);
	return dc.rejected;
}

int state_decode(const char *json, size_t len, struct daemon_state *st,
		 char *err, size_t errlen)
{
	int r = state_decode_report(json, len, st, NULL, NULL, err, errlen);

	return r < 0 ? -1 : 0;
}

struct load_report {
	const char *path;
};

static void log_rejected(void *ctx, const char *msg)
{
	const struct load_report *lr = ctx;

	msg_warn("state: %s: %s", lr->path, msg);
}

int state_load(const char *dir, struct daemon_state *st, char *err, size_t errlen)
{
	char path[PATH_MAX], bad[PATH_MAX];
	char *buf = NULL;
	struct stat sb;
	int fd, r = 1;

	state_init(st);
	snprintf(path, sizeof(path), "%s/%s", dir, STATE_NAME);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) != 0 || sb.st_size > STATE_MAX) {
		snprintf(err, errlen, "%s: unreadable or larger than %d bytes", path, STATE_MAX);
		goto aside;
	}
	buf = malloc((size_t)sb.st_size + 1);
	if (buf == NULL) {
		snprintf(err, errlen, "out of memory reading %s", path);
		goto aside;
	}
	ssize_t n = xread_full(fd, buf, (size_t)sb.st_size);
	if (n < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		goto aside;
	}
	char why[256];
	struct load_report lr = { .path = path };
	if (state_decode_report(buf, (size_t)n, st, log_rejected, &lr, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto aside;
	}
	r = 0;
	goto out;
aside:
	/* Keep the evidence, start afresh: a bad state file must not stop
	 * backups. */
	snprintf(bad, sizeof(bad), "%s.bad", path);
	{
		size_t used = strlen(err);
		if (rename(path, bad) == 0)
			snprintf(err + used, errlen - used, "; moved aside to %s", bad);
		else
			snprintf(err + used, errlen - used, "; cannot move it aside to %s: %s",
				 bad, strerror(errno));
	}
	state_free(st);
	state_init(st);
out:
	free(buf);
	close(fd);
	return r;
}

int state_save(const char *dir, const struct daemon_state *st, char *err, size_t errlen)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	char *json = state_encode(st);
	bool tmp_made = false;
	int fd = -1, dfd = -1, r = -1;

	if (json == NULL) {
		snprintf(err, errlen, "cannot encode the state");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, STATE_NAME);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, STATE_NAME);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	tmp_made = true;
	if (xwrite_all(fd, json, strlen(json)) != 0 || xwrite_all(fd, "\n", 1) != 0 ||
	    fsync(fd) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto out;
	}
	tmp_made = false;
	/* The rename is only durable once the directory is on disk; if that
	 * fails the new state is in place all the same, so it is a warning
	 * (the caller's error would say the state was not written). */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0)
		msg_warn("state: %s replaced, but cannot sync %s: %s; a crash may bring back "
			 "the previous state", path, dir, strerror(errno));
	r = 0;
out:
	/* Errors of these closes change nothing: the outcome is decided. */
	if (fd >= 0)
		close(fd);
	if (tmp_made && unlink(tmp) != 0 && errno != ENOENT)
		msg_debug("state: cannot remove %s: %s", tmp, strerror(errno));
	if (dfd >= 0)
		close(dfd);
	bson_free(json);
	return r;
}
