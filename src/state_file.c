/* state_file.c - load and save the daemon's state.json. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static int64_t get_int(const bson_t *doc, const char *path)
{
	bson_iter_t it, found;

	if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &found) &&
	    (BSON_ITER_HOLDS_INT32(&found) || BSON_ITER_HOLDS_INT64(&found) ||
	     BSON_ITER_HOLDS_DOUBLE(&found)))
		return bson_iter_as_int64(&found);
	return 0;
}

static void get_string(const bson_t *doc, const char *path, char *out, size_t len)
{
	bson_iter_t it, found;

	if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &found) &&
	    BSON_ITER_HOLDS_UTF8(&found))
		snprintf(out, len, "%s", bson_iter_utf8(&found, NULL));
}

int state_decode(const char *json, size_t len, struct daemon_state *st,
		 char *err, size_t errlen)
{
	bson_error_t error;
	bson_iter_t it;
	bson_t *doc = bson_new_from_json((const uint8_t *)json, (ssize_t)len, &error);

	state_init(st);
	if (doc == NULL) {
		snprintf(err, errlen, "not JSON: %s", error.message);
		return -1;
	}
	if (get_int(doc, "format") != 1) {
		snprintf(err, errlen, "unknown state format");
		bson_destroy(doc);
		return -1;
	}
	if (bson_iter_init_find(&it, doc, "last_run") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
		uint32_t dlen;
		const uint8_t *data;
		bson_iter_document(&it, &dlen, &data);
		st->last_run = bson_new_from_data(data, dlen);
	}
	st->last_run_started = (time_t)get_int(doc, "last_run_started");
	st->last_run_finished = (time_t)get_int(doc, "last_run_finished");
	get_string(doc, "last_complete_set", st->last_complete_set, sizeof(st->last_complete_set));
	st->last_complete_finished = (time_t)get_int(doc, "last_complete_finished");
	for (int i = 0; i < RESULT_COUNT; i++) {
		char path[32];
		snprintf(path, sizeof(path), "runs.%s", result_names[i]);
		int64_t v = get_int(doc, path);
		st->runs[i] = v > 0 ? (uint64_t)v : 0;
	}
	get_string(doc, "breaker.state", st->breaker_state, sizeof(st->breaker_state));
	if (strcmp(st->breaker_state, "closed") != 0 && strcmp(st->breaker_state, "open") != 0 &&
	    strcmp(st->breaker_state, "half-open") != 0)
		snprintf(st->breaker_state, sizeof(st->breaker_state), "closed");
	st->breaker_failures = (int)get_int(doc, "breaker.failures");
	st->breaker_opened = (time_t)get_int(doc, "breaker.opened");
	int64_t transitions = get_int(doc, "breaker.transitions");
	st->breaker_transitions = transitions > 0 ? (uint64_t)transitions : 0;
	bson_destroy(doc);
	return 0;
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
	if (state_decode(buf, (size_t)n, st, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto aside;
	}
	r = 0;
	goto out;
aside:
	/* Keep the evidence, start afresh: a bad state file must not stop
	 * backups. */
	snprintf(bad, sizeof(bad), "%s.bad", path);
	if (rename(path, bad) == 0) {
		size_t used = strlen(err);
		snprintf(err + used, errlen - used, "; moved aside to %s", bad);
	}
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
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		fsync(dfd);
	r = 0;
out:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	if (dfd >= 0)
		close(dfd);
	bson_free(json);
	return r;
}
