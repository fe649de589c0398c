/* daemon_status.c - the daemon's state as the status JSON object and as
 * Prometheus text, built fresh for every request from the live run and the
 * persisted state. */
#include "config.h"

#include <bson/bson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cron_tz.h"
#include "daemon.h"
#include "log.h"

void format_utc(time_t t, char *out, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "2026-11-28T04:00:00+01:00" in the schedule's zone. */
static void format_local(time_t t, const char *zone, char *out, size_t len)
{
	char err[128];
	const struct cron_tz *z = cron_tz_get(zone, err, sizeof(err));
	long offset = z != NULL ? cron_tz_offset(z, (int64_t)t) : 0;
	time_t shifted = t + offset;
	struct tm tm;
	char stamp[32];
	long a = offset < 0 ? -offset : offset;

	gmtime_r(&shifted, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, len, "%s%c%02ld:%02ld", stamp, offset < 0 ? '-' : '+', a / 3600,
		 (a % 3600) / 60);
}

enum run_result daemon_run_result(const struct backup_run *run)
{
	if (run->backup_complete)
		return RESULT_COMPLETE;
	if (run->cancelled && !run->timed_out)
		return RESULT_CANCELLED;
	if (backup_run_exit_code(run) == 0)
		return RESULT_COMPLETE;
	if (run->manifest_failed && run->n_ok == 0)
		return RESULT_FAILED;
	if (run->n_ok == 0 || run->verify_failed)
		return RESULT_FAILED;
	return RESULT_PARTIAL;
}

static const char *job_result(const struct collection_job *job)
{
	switch (job->state) {
	case JOB_DONE: return "ok";
	case JOB_FAILED: return "failed";
	case JOB_QUEUED: return "queued";
	default: return "running";
	}
}

bson_t *daemon_run_record(const struct backup_run *run, enum run_result result)
{
	bson_t *doc = bson_new();
	bson_t colls;
	char stamp[32];

	BSON_APPEND_UTF8(doc, "run_id", run->run_id);
	BSON_APPEND_UTF8(doc, "result", run_result_name(result));
	format_utc(run->start, stamp, sizeof(stamp));
	BSON_APPEND_UTF8(doc, "started", stamp);
	format_utc((time_t)run->finish_wall, stamp, sizeof(stamp));
	BSON_APPEND_UTF8(doc, "finished", stamp);
	BSON_APPEND_UTF8(doc, "set", run->set_folder);
	if (run->failure[0])
		BSON_APPEND_UTF8(doc, "error", run->failure);
	if (run->retention_summary[0])
		BSON_APPEND_UTF8(doc, "retention", run->retention_summary);
	if (run->verify_summary[0]) {
		BSON_APPEND_UTF8(doc, "verification", run->verify_summary);
		if (!run->verify_failed) {
			char when[32];
			format_utc((time_t)run->finish_wall, when, sizeof(when));
			BSON_APPEND_UTF8(doc, "verified_at", when);
		}
	}
	BSON_APPEND_ARRAY_BEGIN(doc, "collections", &colls);
	for (size_t i = 0; i < run->n_jobs; i++) {
		const struct collection_job *job = &run->jobs[i];
		char key[16];
		const char *keyp;
		bson_t c;

		bson_uint32_to_string((uint32_t)i, &keyp, key, sizeof(key));
		BSON_APPEND_DOCUMENT_BEGIN(&colls, keyp, &c);
		BSON_APPEND_UTF8(&c, "database", job->database);
		BSON_APPEND_UTF8(&c, "name", job->name);
		BSON_APPEND_UTF8(&c, "result", job->state == JOB_DONE ? "ok" :
				 job->state == JOB_FAILED ? "failed" : "pending");
		BSON_APPEND_INT64(&c, "documents", (int64_t)job->documents);
		BSON_APPEND_INT64(&c, "bson_bytes", (int64_t)job->bson_bytes);
		BSON_APPEND_INT64(&c, "gzip_bytes", (int64_t)job->gzip_bytes);
		BSON_APPEND_DOUBLE(&c, "seconds", job->seconds);
		BSON_APPEND_UTF8(&c, "blob", job->blob);
		if (job->state == JOB_DONE)
			BSON_APPEND_UTF8(&c, "sha256", job->sha256);
		if (job->error[0])
			BSON_APPEND_UTF8(&c, "error", job->error);
		bson_append_document_end(&colls, &c);
	}
	bson_append_array_end(doc, &colls);
	return doc;
}

static void append_current_run(bson_t *doc, const struct daemon *d)
{
	const struct backup_run *run = &d->run;
	bson_t cur, colls;
	char stamp[32];
	double now = monotonic_seconds();

	BSON_APPEND_DOCUMENT_BEGIN(doc, "current_run", &cur);
	BSON_APPEND_UTF8(&cur, "run_id", run->run_id);
	format_utc(run->start, stamp, sizeof(stamp));
	BSON_APPEND_UTF8(&cur, "started", stamp);
	BSON_APPEND_BOOL(&cur, "waiting_for_storage", d->breaker.state == BREAKER_OPEN);
	BSON_APPEND_UTF8(&cur, "phase", run->phase == RUN_LISTING ? "listing" :
			 run->phase == RUN_MANIFEST_START ? "starting" :
			 run->phase == RUN_COLLECTIONS ? "collections" :
			 run->phase == RUN_VERIFY ? "verifying" :
			 run->phase == RUN_RETENTION ? "retention" : "finishing");
	BSON_APPEND_ARRAY_BEGIN(&cur, "collections", &colls);
	for (size_t i = 0; i < run->n_jobs; i++) {
		const struct collection_job *job = &run->jobs[i];
		const struct side *p = &job->pl.producer;
		bool running = job->state == JOB_DATA || job->state == JOB_METADATA;
		uint64_t documents = running ? p->documents : job->documents;
		uint64_t bson_bytes = running ? p->bson_bytes : job->bson_bytes;
		uint64_t gzip_bytes = running ? p->gzip_bytes : job->gzip_bytes;
		double elapsed = running ? now - job->started : job->seconds;
		char key[16];
		const char *keyp;
		bson_t c;

		bson_uint32_to_string((uint32_t)i, &keyp, key, sizeof(key));
		BSON_APPEND_DOCUMENT_BEGIN(&colls, keyp, &c);
		BSON_APPEND_UTF8(&c, "database", job->database);
		BSON_APPEND_UTF8(&c, "name", job->name);
		BSON_APPEND_UTF8(&c, "state", job_result(job));
		BSON_APPEND_INT64(&c, "documents", (int64_t)documents);
		if (p->estimate >= 0)
			BSON_APPEND_INT64(&c, "estimate", p->estimate);
		BSON_APPEND_INT64(&c, "bson_bytes", (int64_t)bson_bytes);
		BSON_APPEND_INT64(&c, "gzip_bytes", (int64_t)gzip_bytes);
		if (elapsed > 0 && job->state != JOB_QUEUED) {
			BSON_APPEND_DOUBLE(&c, "mb_per_s", (double)bson_bytes / 1e6 / elapsed);
			if (running && p->estimate > (int64_t)documents && documents > 0) {
				double rate = (double)documents / elapsed;
				BSON_APPEND_INT64(&c, "eta_seconds",
						  (int64_t)((double)((uint64_t)p->estimate - documents) / rate));
			}
		}
		if (job->error[0])
			BSON_APPEND_UTF8(&c, "error", job->error);
		bson_append_document_end(&colls, &c);
	}
	bson_append_array_end(&cur, &colls);
	bson_append_document_end(doc, &cur);
}

/* What an operator asks after a reload or when something looks wrong: the
 * reload's verdict and the last warning or error, without reading logs. */
static void append_operations(bson_t *doc, const struct daemon *d)
{
	bson_t sub;
	char stamp[40];
	time_t at;
	int priority;
	const char *problem = log_last_problem(&at, &priority);

	if (d->last_reload_at > 0) {
		BSON_APPEND_DOCUMENT_BEGIN(doc, "last_reload", &sub);
		format_utc(d->last_reload_at, stamp, sizeof(stamp));
		BSON_APPEND_UTF8(&sub, "at", stamp);
		BSON_APPEND_UTF8(&sub, "result", d->last_reload_ok ? "ok" : "failed");
		BSON_APPEND_UTF8(&sub, "message", d->last_reload_message);
		bson_append_document_end(doc, &sub);
	} else {
		BSON_APPEND_NULL(doc, "last_reload");
	}
	if (problem[0] != '\0') {
		BSON_APPEND_DOCUMENT_BEGIN(doc, "last_problem", &sub);
		format_utc(at, stamp, sizeof(stamp));
		BSON_APPEND_UTF8(&sub, "at", stamp);
		BSON_APPEND_UTF8(&sub, "level", priority <= LOG_ERR ? "error" : "warning");
		BSON_APPEND_UTF8(&sub, "message", problem);
		bson_append_document_end(doc, &sub);
	} else {
		BSON_APPEND_NULL(doc, "last_problem");
	}
}

char *daemon_status_json(struct daemon *d)
{
	bson_t doc = BSON_INITIALIZER, breaker, runs, last;
	char stamp[40];
	char *json;

	BSON_APPEND_UTF8(&doc, "version", PACKAGE_VERSION);
	BSON_APPEND_INT64(&doc, "pid", (int64_t)getpid());
	BSON_APPEND_INT64(&doc, "uptime_seconds", (int64_t)(time(NULL) - d->started));
	BSON_APPEND_UTF8(&doc, "state", d->run_active ? "running" : "idle");
	if (d->next_run > 0) {
		format_utc(d->next_run, stamp, sizeof(stamp));
		BSON_APPEND_UTF8(&doc, "next_run", stamp);
		format_local(d->next_run, d->cfg->timezone, stamp, sizeof(stamp));
		BSON_APPEND_UTF8(&doc, "next_run_local", stamp);
	} else {
		BSON_APPEND_NULL(&doc, "next_run");
	}
	BSON_APPEND_UTF8(&doc, "schedule", d->cfg->cron);
	BSON_APPEND_UTF8(&doc, "timezone", d->cfg->timezone);
	BSON_APPEND_DOCUMENT_BEGIN(&doc, "breaker", &breaker);
	BSON_APPEND_UTF8(&breaker, "state", breaker_state_name(d->breaker.state));
	BSON_APPEND_INT32(&breaker, "failures", d->breaker.failures);
	BSON_APPEND_INT64(&breaker, "transitions", (int64_t)d->breaker.transitions);
	if (d->breaker.state == BREAKER_OPEN) {
		int wait = breaker_wait_seconds(&d->breaker, time(NULL));
		BSON_APPEND_INT32(&breaker, "retry_in_seconds", wait);
	}
	bson_append_document_end(&doc, &breaker);
	append_operations(&doc, d);
	if (d->state.last_complete_set[0]) {
		BSON_APPEND_DOCUMENT_BEGIN(&doc, "last_complete_set", &last);
		BSON_APPEND_UTF8(&last, "set", d->state.last_complete_set);
		format_utc(d->state.last_complete_finished, stamp, sizeof(stamp));
		BSON_APPEND_UTF8(&last, "finished", stamp);
		bson_append_document_end(&doc, &last);
	} else {
		BSON_APPEND_NULL(&doc, "last_complete_set");
	}
	if (d->run_active)
		append_current_run(&doc, d);
	else
		BSON_APPEND_NULL(&doc, "current_run");
	if (d->state.last_run != NULL)
		BSON_APPEND_DOCUMENT(&doc, "last_run", d->state.last_run);
	else
		BSON_APPEND_NULL(&doc, "last_run");
	BSON_APPEND_DOCUMENT_BEGIN(&doc, "runs", &runs);
	for (int i = 0; i < RESULT_COUNT; i++)
		BSON_APPEND_INT64(&runs, run_result_name((enum run_result)i),
				  (int64_t)d->state.runs[i]);
	bson_append_document_end(&doc, &runs);
	BSON_APPEND_INT64(&doc, "coalesced_triggers", (int64_t)d->coalesced);
	json = bson_as_relaxed_extended_json(&doc, NULL);
	bson_destroy(&doc);
	if (json == NULL)
		return NULL;
	/* Callers free() what they get; libbson's allocator is malloc here,
	 * but copy rather than rely on it. */
	char *out = strdup(json);
	bson_free(json);
	return out;
}

/* Prometheus label values escape backslash, double quote and newline. */
static void label_escape(const char *in, char *out, size_t len)
{
	size_t n = 0;

	for (; *in != '\0' && n + 3 < len; in++) {
		if (*in == '\\' || *in == '"') {
			out[n++] = '\\';
			out[n++] = *in;
		} else if (*in == '\n') {
			out[n++] = '\\';
			out[n++] = 'n';
		} else {
			out[n++] = *in;
		}
	}
	out[n] = '\0';
}

static int64_t record_int(const bson_t *doc, const char *path)
{
	bson_iter_t it, found;

	if (doc != NULL && bson_iter_init(&it, doc) &&
	    bson_iter_find_descendant(&it, path, &found) &&
	    (BSON_ITER_HOLDS_INT32(&found) || BSON_ITER_HOLDS_INT64(&found) ||
	     BSON_ITER_HOLDS_DOUBLE(&found)))
		return bson_iter_as_int64(&found);
	return 0;
}

char *daemon_metrics_text(struct daemon *d)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);
	const bson_t *last = d->state.last_run;
	static const char *const breaker_states[] = { "closed", "open", "half-open" };

	if (fp == NULL)
		return NULL;
	fprintf(fp, "# HELP mongo_azure_backup_runs_total Backup runs by result.\n"
		"# TYPE mongo_azure_backup_runs_total counter\n");
	for (int i = 0; i < RESULT_COUNT; i++)
		fprintf(fp, "mongo_azure_backup_runs_total{result=\"%s\"} %llu\n",
			run_result_name((enum run_result)i),
			(unsigned long long)d->state.runs[i]);
	fprintf(fp, "# HELP mongo_azure_backup_last_success_timestamp_seconds End of the "
		"last complete backup.\n"
		"# TYPE mongo_azure_backup_last_success_timestamp_seconds gauge\n"
		"mongo_azure_backup_last_success_timestamp_seconds %lld\n",
		(long long)d->state.last_complete_finished);
	fprintf(fp, "# HELP mongo_azure_backup_last_run_timestamp_seconds End of the last run.\n"
		"# TYPE mongo_azure_backup_last_run_timestamp_seconds gauge\n"
		"mongo_azure_backup_last_run_timestamp_seconds %lld\n",
		(long long)d->state.last_run_finished);
	fprintf(fp, "# HELP mongo_azure_backup_last_run_duration_seconds Wall time of the last run.\n"
		"# TYPE mongo_azure_backup_last_run_duration_seconds gauge\n"
		"mongo_azure_backup_last_run_duration_seconds %lld\n",
		(long long)(d->state.last_run_finished > d->state.last_run_started ?
			    d->state.last_run_finished - d->state.last_run_started : 0));
	fprintf(fp, "# HELP mongo_azure_backup_running Whether a backup run is in progress.\n"
		"# TYPE mongo_azure_backup_running gauge\n"
		"mongo_azure_backup_running %d\n", d->run_active ? 1 : 0);
	fprintf(fp, "# HELP mongo_azure_backup_next_run_timestamp_seconds Next scheduled run.\n"
		"# TYPE mongo_azure_backup_next_run_timestamp_seconds gauge\n"
		"mongo_azure_backup_next_run_timestamp_seconds %lld\n", (long long)d->next_run);

	static const struct { const char *name, *field, *help; } per_coll[] = {
		{ "collection_documents", "documents", "Documents in the last run's backup." },
		{ "collection_bson_bytes", "bson_bytes", "BSON bytes in the last run's backup." },
		{ "collection_gzip_bytes", "gzip_bytes", "Blob bytes in the last run's backup." },
		{ "collection_success", NULL, "1 if the collection was backed up in the last run." },
	};
	bson_iter_t it, arr;
	for (size_t m = 0; m < sizeof(per_coll) / sizeof(per_coll[0]); m++) {
		fprintf(fp, "# HELP mongo_azure_backup_%s %s\n# TYPE mongo_azure_backup_%s gauge\n",
			per_coll[m].name, per_coll[m].help, per_coll[m].name);
		if (last == NULL || !bson_iter_init_find(&it, last, "collections") ||
		    !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &arr))
			continue;
		while (bson_iter_next(&arr)) {
			uint32_t dlen;
			const uint8_t *data;
			bson_t c;
			bson_iter_t f;
			char name[600] = "", result[16] = "";

			if (!BSON_ITER_HOLDS_DOCUMENT(&arr))
				continue;
			bson_iter_document(&arr, &dlen, &data);
			if (!bson_init_static(&c, data, dlen))
				continue;
			if (bson_iter_init_find(&f, &c, "name") && BSON_ITER_HOLDS_UTF8(&f))
				label_escape(bson_iter_utf8(&f, NULL), name, sizeof(name));
			if (bson_iter_init_find(&f, &c, "result") && BSON_ITER_HOLDS_UTF8(&f))
				snprintf(result, sizeof(result), "%s", bson_iter_utf8(&f, NULL));
			long long value = per_coll[m].field != NULL ?
					  (long long)record_int(&c, per_coll[m].field) :
					  strcmp(result, "ok") == 0;
			fprintf(fp, "mongo_azure_backup_%s{collection=\"%s\"} %lld\n",
				per_coll[m].name, name, value);
		}
	}

	fprintf(fp, "# HELP mongo_azure_backup_breaker_state Storage circuit breaker state.\n"
		"# TYPE mongo_azure_backup_breaker_state gauge\n");
	for (size_t i = 0; i < 3; i++)
		fprintf(fp, "mongo_azure_backup_breaker_state{state=\"%s\"} %d\n",
			breaker_states[i],
			strcmp(breaker_state_name(d->breaker.state), breaker_states[i]) == 0);
	fprintf(fp, "# HELP mongo_azure_backup_breaker_transitions_total Breaker state changes.\n"
		"# TYPE mongo_azure_backup_breaker_transitions_total counter\n"
		"mongo_azure_backup_breaker_transitions_total %llu\n",
		(unsigned long long)d->breaker.transitions);
	fprintf(fp, "# HELP mongo_azure_backup_coalesced_triggers_total Scheduled runs folded "
		"into one already going.\n"
		"# TYPE mongo_azure_backup_coalesced_triggers_total counter\n"
		"mongo_azure_backup_coalesced_triggers_total %llu\n",
		(unsigned long long)d->coalesced);
	if (fclose(fp) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
