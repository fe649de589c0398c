/* set_verify.h - verify one backup set against its manifest, and record
 * the verdict beside it.
 *
 * Every data blob is streamed once (bson_stream.h: no temporary file,
 * memory bounded by the largest document) and checked for: its SHA-256 and
 * MD5 against the manifest, its Content-MD5 property against its bytes,
 * whole gzip members with good CRCs, whole valid BSON documents, and the
 * document and byte counts the manifest recorded (a blob that goes past
 * them is stopped there: it is not the backup, and may be a decompression
 * bomb).  Each metadata blob must be gzip'd JSON with an "indexes" array,
 * at most METADATA_JSON_MAX once inflated.  Used by `mongo-azure-backupctl
 * verify` and by the verify-set helper (the daemon's [verify] after_backup).
 *
 * The record, SET/verification.json, is what `list` (and the daemon's
 * status) show as "verified at":
 *   {"format":1, "tool", "version", "set", "run_id" (the manifest's, so a
 *    set rewritten later is not taken as verified), "verified_at",
 *    "seconds", "result": "ok"|"incomplete"|"failed"|"error", "complete",
 *    "problem"?, "collections": [{"name", "result", "documents",
 *    "bson_bytes", "gzip_bytes", "indexes", "problem"?}]}
 */
#ifndef MAB_SET_VERIFY_H
#define MAB_SET_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "azure_blob.h"
#include "backup_set.h"
#include "bson_stream.h"

/* Per collection, worst first: "error" (could not be checked, e.g. storage
 * unreachable), "missing" (a blob is gone), "corrupt" (a blob does not
 * hold what the manifest says), "incomplete" (the run did not back it up),
 * "ok". */
struct coll_verdict {
	const char *name;             /* the manifest's */
	const char *database;
	const char *label;            /* name, or database.name (set_coll) */
	const char *result;
	uint64_t documents;           /* what the blob holds */
	uint64_t bson_bytes;
	uint64_t gzip_bytes;
	int indexes;                  /* in the metadata, -1 when unknown */
	char problem[1536];           /* findings joined with "; ", "" if none */
};

/* Whole set: "ok" (complete, every collection ok), "incomplete" (the
 * manifest is not complete, what is there is fine), "failed" (something
 * is corrupt or missing), "error" (something could not be checked). */
struct set_verdict {
	const char *result;
	bool complete;
	char verified_at[32];
	double seconds;
	char problem[1024];           /* about the set as a whole */
	struct coll_verdict *colls;
	size_t n;
};

struct set_verify_hooks {
	/* A collection is about to be checked (index i of n). */
	void (*begin)(void *ctx, const struct set_coll *c, size_t i, size_t n);
	/* Now and then while its data blob streams. */
	void (*progress)(void *ctx, const struct set_coll *c, uint64_t gzip_done,
			 uint64_t documents);
	/* Its verdict. */
	void (*done)(void *ctx, const struct coll_verdict *v);
	void *ctx;
};

/* Verifies a set that set_load() has read (or tried to).  0 when the set
 * verified "ok", 1 otherwise (out says why); out must be freed. */
int set_verify(struct azure_client *c, const struct backup_set *s,
	       const struct set_verify_hooks *hooks, struct set_verdict *out);
void set_verdict_free(struct set_verdict *v);

/* The record as JSON (malloc'd, bson_free it), and its upload to
 * SET/verification.json.  0, or -1 with err. */
char *set_verdict_json(const struct backup_set *s, const struct set_verdict *v);
int set_verdict_record(struct azure_client *c, const struct backup_set *s,
		       const struct set_verdict *v, struct azure_error *err);

/* The parts of one collection's check that need no storage, for the tests
 * too: begin fills v from the manifest entry alone; judge finishes a
 * stream that held the whole data blob and compares it (hashes, counts,
 * the blob's Content-MD5 property when given) with the entry. */
void set_verify_begin(const struct set_coll *sc, struct coll_verdict *v);
void set_verify_judge(const struct set_coll *sc, struct bson_stream *bs,
		      const char *content_md5, struct coll_verdict *v);

#endif
