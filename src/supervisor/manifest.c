/* manifest.c - encode a run as manifest.json. */
#include "config.h"

#include <bson/bson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backup_run.h"
#include "manifest.h"

static void append_time(bson_t *doc, const char *key, double wall)
{
	char text[40];
	time_t t = (time_t)wall;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
	BSON_APPEND_UTF8(doc, key, text);
}

static const char *job_result(const struct collection_job *job)
{
	switch (job->state) {
	case JOB_DONE: return "ok";
	case JOB_FAILED: return "failed";
	default: return "pending";
	}
}

char *manifest_encode(const struct backup_run *run, bool final)
{
	bson_t doc = BSON_INITIALIZER;
	bson_t colls;
	char host[256] = "";
	char *json;
	bool complete = final && run->n_failed == 0 && run->n_ok == (int)run->n_jobs;

	if (gethostname(host, sizeof(host) - 1) != 0)
		host[0] = '\0';
	BSON_APPEND_INT32(&doc, "format", MANIFEST_FORMAT);
	BSON_APPEND_UTF8(&doc, "tool", PACKAGE_NAME);
	BSON_APPEND_UTF8(&doc, "version", PACKAGE_VERSION);
	BSON_APPEND_UTF8(&doc, "run_id", run->run_id);
	BSON_APPEND_UTF8(&doc, "host", host);
	/* "database": the run's one database (what format 1 readers need);
	 * every entry names its own. */
	bool one_db = run->n_jobs > 0;
	for (size_t i = 1; i < run->n_jobs; i++)
		one_db &= strcmp(run->jobs[i].database, run->jobs[0].database) == 0;
	if (one_db)
		BSON_APPEND_UTF8(&doc, "database", run->jobs[0].database);
	bson_t dbs;
	BSON_APPEND_ARRAY_BEGIN(&doc, "databases", &dbs);
	uint32_t n_dbs = 0;
	for (size_t i = 0; i < run->n_jobs; i++) {
		if (!job_first_of_database(run, i))
			continue;
		char key[16];
		const char *keyp;
		bson_uint32_to_string(n_dbs++, &keyp, key, sizeof(key));
		BSON_APPEND_UTF8(&dbs, keyp, run->jobs[i].database);
	}
	bson_append_array_end(&doc, &dbs);
	BSON_APPEND_UTF8(&doc, "set", run->set_folder);
	append_time(&doc, "started", (double)run->start);
	if (final)
		append_time(&doc, "finished", run->finish_wall);
	else
		BSON_APPEND_NULL(&doc, "finished");
	BSON_APPEND_BOOL(&doc, "complete", complete);

	BSON_APPEND_ARRAY_BEGIN(&doc, "collections", &colls);
	for (size_t i = 0; i < run->n_jobs; i++) {
		const struct collection_job *job = &run->jobs[i];
		char key[16];
		const char *keyp;
		bson_t c;

		bson_uint32_to_string((uint32_t)i, &keyp, key, sizeof(key));
		BSON_APPEND_DOCUMENT_BEGIN(&colls, keyp, &c);
		BSON_APPEND_UTF8(&c, "database", job->database);
		BSON_APPEND_UTF8(&c, "name", job->name);
		BSON_APPEND_UTF8(&c, "type", job_kind_name(job->kind));
		BSON_APPEND_UTF8(&c, "result", final ? job_result(job) : "pending");
		if (job->blob[0])
			BSON_APPEND_UTF8(&c, "blob", job->blob);
		if (job->metadata_blob[0])
			BSON_APPEND_UTF8(&c, "metadata_blob", job->metadata_blob);
		if (final && job->state == JOB_DONE && job->kind == KIND_VIEW) {
			BSON_APPEND_DOUBLE(&c, "seconds", job->seconds);
		} else if (final && job->state == JOB_DONE) {
			BSON_APPEND_INT64(&c, "documents", (int64_t)job->documents);
			BSON_APPEND_INT64(&c, "bson_bytes", (int64_t)job->bson_bytes);
			BSON_APPEND_INT64(&c, "gzip_bytes", (int64_t)job->gzip_bytes);
			BSON_APPEND_UTF8(&c, "sha256", job->sha256);
			BSON_APPEND_UTF8(&c, "md5", job->md5);
			BSON_APPEND_DOUBLE(&c, "seconds", job->seconds);
			if (job->gzip.engine[0] != '\0') {
				/* Readers need none of it (gzip is gzip); it
				 * tells an operator how each blob was made. */
				bson_t z;
				BSON_APPEND_DOCUMENT_BEGIN(&c, "compression", &z);
				BSON_APPEND_UTF8(&z, "engine", job->gzip.engine);
				BSON_APPEND_INT32(&z, "level", job->gzip.level);
				BSON_APPEND_INT32(&z, "threads", job->gzip.threads);
				BSON_APPEND_INT64(&z, "members", (int64_t)job->gzip.members);
				bson_append_document_end(&c, &z);
			}
		}
		if (final && job->state == JOB_FAILED)
			BSON_APPEND_UTF8(&c, "error", job->error);
		bson_append_document_end(&colls, &c);
	}
	bson_append_array_end(&doc, &colls);

	json = bson_as_relaxed_extended_json(&doc, NULL);
	bson_destroy(&doc);
	return json;
}
