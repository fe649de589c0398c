/* set_verify.c - stream every blob of a set through the checks, judge,
 * and write the verification record.
 *
 * The blobs are not trusted to be what the manifest says: a data blob is
 * decoded with the manifest's counts as limits and abandoned the moment it
 * goes past them (a decompression bomb costs one inflate chunk, not its
 * full size), and a metadata blob is held, inflated, up to
 * METADATA_JSON_MAX, one collection at a time.
 */
#include "config.h"

#include <bson/bson.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bson_stream.h"
#include "child_status.h"
#include "metadata_json.h"
#include "set_verify.h"

#define PROGRESS_INTERVAL_NS (250 * 1000 * 1000LL)

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int rank(const char *result)
{
	static const char *const order[] = { "ok", "incomplete", "corrupt", "missing", "error" };

	for (int i = 0; i < 5; i++)
		if (strcmp(result, order[i]) == 0)
			return i;
	return 4;
}

/* Records a finding; the verdict only gets worse. */
static void finding(struct coll_verdict *v, const char *result, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void finding(struct coll_verdict *v, const char *result, const char *fmt, ...)
{
	size_t used = strlen(v->problem);
	va_list ap;

	if (rank(result) > rank(v->result))
		v->result = result;
	if (used > 0 && used + 2 < sizeof(v->problem)) {
		memcpy(v->problem + used, "; ", 3);
		used += 2;
	}
	if (used + 1 >= sizeof(v->problem))
		return;
	va_start(ap, fmt);
	vsnprintf(v->problem + used, sizeof(v->problem) - used, fmt, ap);
	va_end(ap);
}

/* ---- metadata ----------------------------------------------------------- */

static void verify_metadata(struct azure_client *c, const struct set_coll *sc,
			    struct coll_verdict *v)
{
	struct azure_error err;
	char *gz = NULL, *json = NULL, why[512];
	size_t gz_len, json_len;
	int n;

	if (sc->metadata_blob == NULL) {
		finding(v, "missing", "the manifest names no metadata blob");
		return;
	}
	if (blob_fetch_small(c, sc->metadata_blob, METADATA_JSON_MAX, &gz, &gz_len, &err) != 0) {
		if (err.err_class != NULL && strcmp(err.err_class, ERR_CLASS_NOTFOUND) == 0)
			finding(v, "missing", "metadata blob %s does not exist", sc->metadata_blob);
		else
			finding(v, "error", "cannot read metadata blob %s: %s", sc->metadata_blob,
				err.message);
		return;
	}
	if (gunzip_buffer(gz, gz_len, METADATA_JSON_MAX, &json, &json_len, why, sizeof(why)) != 0) {
		finding(v, "corrupt", "metadata blob %s: %s", sc->metadata_blob, why);
		goto out;
	}
	n = metadata_check(json, json_len, why, sizeof(why));
	if (n < 0)
		finding(v, "corrupt", "metadata blob %s: %s", sc->metadata_blob, why);
	else
		v->indexes = n;
out:
	free(json);
	free(gz);
}

/* ---- data --------------------------------------------------------------- */

struct data_ctx {
	struct bson_stream bs;
	const struct set_coll *sc;
	const struct set_verify_hooks *hooks;
	long long next_progress;
};

static int data_sink(void *ctx, const void *data, size_t len)
{
	struct data_ctx *d = ctx;

	if (bson_stream_feed(&d->bs, data, len) != 0) {
		/* Past the manifest's counts: nothing further is worth reading. */
		errno = d->bs.over_limit ? EFBIG : ENOMEM;
		return -1;
	}
	if (d->hooks != NULL && d->hooks->progress != NULL) {
		long long t = now_ns();
		if (t >= d->next_progress) {
			d->next_progress = t + PROGRESS_INTERVAL_NS;
			d->hooks->progress(d->hooks->ctx, d->sc, d->bs.gzip_bytes, d->bs.documents);
		}
	}
	return 0;
}

static void compare_counts(const struct set_coll *sc, struct coll_verdict *v,
			   const struct bson_stream *bs, bool decoded)
{
	if (sc->gzip_bytes >= 0 && (uint64_t)sc->gzip_bytes != bs->gzip_bytes)
		finding(v, "corrupt", "the blob is %llu bytes, the manifest says %lld",
			(unsigned long long)bs->gzip_bytes, (long long)sc->gzip_bytes);
	/* Counts of a stream that broke off say nothing new. */
	if (!decoded)
		return;
	if (sc->documents < 0)
		finding(v, "corrupt", "the manifest records no document count");
	else if ((uint64_t)sc->documents != bs->documents)
		finding(v, "corrupt", "the blob holds %llu documents, the manifest says %lld",
			(unsigned long long)bs->documents, (long long)sc->documents);
	if (sc->bson_bytes >= 0 && (uint64_t)sc->bson_bytes != bs->bson_bytes)
		finding(v, "corrupt", "the blob holds %llu BSON bytes, the manifest says %lld",
			(unsigned long long)bs->bson_bytes, (long long)sc->bson_bytes);
}

static void compare_hashes(const struct set_coll *sc, struct coll_verdict *v,
			   const char *sha256, const char *md5, const char *content_md5)
{
	if (sc->sha256 == NULL)
		finding(v, "corrupt", "the manifest records no SHA-256");
	else if (strcasecmp(sc->sha256, sha256) != 0)
		finding(v, "corrupt", "SHA-256 of the blob is %s, the manifest says %s", sha256,
			sc->sha256);
	if (sc->md5 == NULL)
		finding(v, "corrupt", "the manifest records no MD5");
	else if (strcmp(sc->md5, md5) != 0)
		finding(v, "corrupt", "MD5 of the blob is %s, the manifest says %s", md5, sc->md5);
	if (content_md5 != NULL && *content_md5 && strcmp(content_md5, md5) != 0)
		finding(v, "corrupt", "the blob's Content-MD5 property is %s but its bytes hash "
			"to %s", content_md5, md5);
}

void set_verify_judge(const struct set_coll *sc, struct bson_stream *bs,
		      const char *content_md5, struct coll_verdict *v)
{
	char sha256[BSON_STREAM_SHA256_HEX], md5[BSON_STREAM_MD5_B64];
	bool recorded = strcmp(sc->result, "ok") == 0;
	bool decoded = bson_stream_finish(bs, sha256, md5) == 0;

	v->documents = bs->documents;
	v->bson_bytes = bs->bson_bytes;
	v->gzip_bytes = bs->gzip_bytes;
	if (!decoded)
		finding(v, "corrupt", "%s", bs->error);
	if (recorded) {
		compare_hashes(sc, v, sha256, md5, content_md5);
		compare_counts(sc, v, bs, decoded);
	} else if (decoded) {
		finding(v, "incomplete", "a data blob with %llu valid documents is there, but "
			"the manifest has nothing to check it against",
			(unsigned long long)bs->documents);
	}
}

void set_verify_begin(const struct set_coll *sc, struct coll_verdict *v)
{
	memset(v, 0, sizeof(*v));
	v->name = sc->name;
	v->database = sc->database;
	v->label = sc->label;
	v->result = "ok";
	v->indexes = -1;
	if (strcmp(sc->result, "ok") == 0)
		return;
	if (strcmp(sc->result, "failed") == 0)
		finding(v, "incomplete", "its backup failed%s%s", sc->error ? ": " : "",
			sc->error ? sc->error : "");
	else
		finding(v, "incomplete", "its backup never finished (manifest: %s)", sc->result);
}

static void verify_data(struct azure_client *c, const struct set_coll *sc,
			struct coll_verdict *v, const struct set_verify_hooks *hooks)
{
	struct data_ctx d = { .sc = sc, .hooks = hooks };
	struct azure_blob_item props = { 0 };
	struct azure_error err;

	if (bson_stream_init(&d.bs, true, NULL, NULL) != 0) {
		finding(v, "error", "out of memory");
		return;
	}
	/* Only what the run recorded as backed up has counts to hold it to. */
	if (strcmp(sc->result, "ok") == 0)
		bson_stream_limit(&d.bs, sc->documents, sc->bson_bytes, sc->gzip_bytes);
	d.next_progress = now_ns() + PROGRESS_INTERVAL_NS;
	if (azure_get_blob(c, sc->blob, 0, data_sink, &d, &props, &err) != 0) {
		if (d.bs.over_limit) {
			v->documents = d.bs.documents;
			v->bson_bytes = d.bs.bson_bytes;
			v->gzip_bytes = d.bs.gzip_bytes;
			finding(v, "corrupt", "stopped: %s", d.bs.error);
		} else if (err.err_class != NULL && strcmp(err.err_class, ERR_CLASS_NOTFOUND) == 0)
			finding(v, strcmp(sc->result, "ok") == 0 ? "missing" : "incomplete",
				"data blob %s does not exist", sc->blob);
		else
			finding(v, "error", "cannot read data blob %s after %llu bytes: %s",
				sc->blob, (unsigned long long)d.bs.gzip_bytes, err.message);
	} else {
		set_verify_judge(sc, &d.bs, props.content_md5, v);
	}
	azure_blob_item_free(&props);
	bson_stream_free(&d.bs);
}

static void verify_coll(struct azure_client *c, const struct set_coll *sc,
			struct coll_verdict *v, const struct set_verify_hooks *hooks)
{
	set_verify_begin(sc, v);
	/* A view is its definition (metadata) only; users and roles are
	 * documents only. */
	if (sc->blob != NULL)
		verify_data(c, sc, v, hooks);
	/* A collection the run did not finish has no metadata to expect. */
	if (strcmp(sc->result, "ok") == 0 && strcmp(sc->type, "users") != 0 &&
	    strcmp(sc->type, "roles") != 0)
		verify_metadata(c, sc, v);
}

/* ---- the set ------------------------------------------------------------ */

static void utc_now(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int set_verify(struct azure_client *c, const struct backup_set *s,
	       const struct set_verify_hooks *hooks, struct set_verdict *out)
{
	long long t0 = now_ns();
	int worst = 0;

	memset(out, 0, sizeof(*out));
	out->complete = s->loaded && s->complete;
	if (!s->loaded) {
		snprintf(out->problem, sizeof(out->problem), "%s",
			 s->load_error ? s->load_error : "the manifest was not read");
		out->result = "failed";
		goto done;
	}
	if (s->n_colls > 0 && (out->colls = calloc(s->n_colls, sizeof(*out->colls))) == NULL) {
		snprintf(out->problem, sizeof(out->problem), "out of memory");
		out->result = "error";
		goto done;
	}
	for (size_t i = 0; i < s->n_colls; i++) {
		if (hooks != NULL && hooks->begin != NULL)
			hooks->begin(hooks->ctx, &s->colls[i], i, s->n_colls);
		verify_coll(c, &s->colls[i], &out->colls[i], hooks);
		out->n++;
		if (rank(out->colls[i].result) > worst)
			worst = rank(out->colls[i].result);
		if (hooks != NULL && hooks->done != NULL)
			hooks->done(hooks->ctx, &out->colls[i]);
	}
	if (!s->complete)
		snprintf(out->problem, sizeof(out->problem), "the set is incomplete: its manifest "
			 "is not marked complete (%zu of %zu collections backed up)",
			 set_count_ok(s), s->n_colls);
	else if (s->n_colls == 0)
		snprintf(out->problem, sizeof(out->problem), "the manifest lists no collections");
	if (worst >= rank("error"))
		out->result = "error";
	else if (worst >= rank("corrupt"))
		out->result = "failed";
	else if (!s->complete || worst > 0)
		out->result = "incomplete";
	else
		out->result = "ok";
done:
	utc_now(out->verified_at, sizeof(out->verified_at));
	out->seconds = (double)(now_ns() - t0) / 1e9;
	return strcmp(out->result, "ok") == 0 ? 0 : 1;
}

void set_verdict_free(struct set_verdict *v)
{
	free(v->colls);
	v->colls = NULL;
	v->n = 0;
}

char *set_verdict_json(const struct backup_set *s, const struct set_verdict *v)
{
	bson_t doc = BSON_INITIALIZER, arr;
	char *json;

	BSON_APPEND_INT32(&doc, "format", 1);
	BSON_APPEND_UTF8(&doc, "tool", PACKAGE_NAME);
	BSON_APPEND_UTF8(&doc, "version", PACKAGE_VERSION);
	BSON_APPEND_UTF8(&doc, "set", s->folder);
	if (s->run_id != NULL)
		BSON_APPEND_UTF8(&doc, "run_id", s->run_id);
	BSON_APPEND_UTF8(&doc, "verified_at", v->verified_at);
	BSON_APPEND_DOUBLE(&doc, "seconds", (double)(long long)(v->seconds * 1000) / 1000);
	BSON_APPEND_UTF8(&doc, "result", v->result);
	BSON_APPEND_BOOL(&doc, "complete", v->complete);
	if (v->problem[0])
		BSON_APPEND_UTF8(&doc, "problem", v->problem);
	BSON_APPEND_ARRAY_BEGIN(&doc, "collections", &arr);
	for (size_t i = 0; i < v->n; i++) {
		const struct coll_verdict *cv = &v->colls[i];
		char key[16];
		const char *keyp;
		bson_t e;

		bson_uint32_to_string((uint32_t)i, &keyp, key, sizeof(key));
		BSON_APPEND_DOCUMENT_BEGIN(&arr, keyp, &e);
		BSON_APPEND_UTF8(&e, "database", cv->database);
		BSON_APPEND_UTF8(&e, "name", cv->name);
		BSON_APPEND_UTF8(&e, "result", cv->result);
		BSON_APPEND_INT64(&e, "documents", (int64_t)cv->documents);
		BSON_APPEND_INT64(&e, "bson_bytes", (int64_t)cv->bson_bytes);
		BSON_APPEND_INT64(&e, "gzip_bytes", (int64_t)cv->gzip_bytes);
		if (cv->indexes >= 0)
			BSON_APPEND_INT32(&e, "indexes", cv->indexes);
		if (cv->problem[0])
			BSON_APPEND_UTF8(&e, "problem", cv->problem);
		bson_append_document_end(&arr, &e);
	}
	bson_append_array_end(&doc, &arr);
	json = bson_as_relaxed_extended_json(&doc, NULL);
	bson_destroy(&doc);
	return json;
}

int set_verdict_record(struct azure_client *c, const struct backup_set *s,
		       const struct set_verdict *v, struct azure_error *err)
{
	struct azure_put_opts opts = { .content_type = "application/json" };
	char *json = set_verdict_json(s, v), *name = NULL;
	int r = -1;

	if (json == NULL || asprintf(&name, "%s%s", s->folder, SET_VERIFICATION) < 0) {
		name = NULL;
		azure_error_local(err, ENOMEM, "cannot encode the verification record");
		goto out;
	}
	r = azure_put_blob(c, name, json, strlen(json), &opts, err);
out:
	free(name);
	bson_free(json);
	return r;
}
