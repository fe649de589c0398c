/* job_order.h - the order a run starts its collections in: the largest
 * first, by the estimates export-collection --list sends as "size"
 * records, so that the longest export does not run alone at the end.
 * Only the start order: the manifest, the status and the blob names keep
 * the configuration's.
 */
#ifndef MAB_JOB_ORDER_H
#define MAB_JOB_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "child_status.h"

/* What an estimate counts.  Bytes and documents do not compare, so a
 * byte count ranks above any document count, which ranks above none. */
enum size_unit { SIZE_UNKNOWN, SIZE_DOCUMENTS, SIZE_BSON_BYTES };

struct size_estimate {
	enum size_unit unit;
	uint64_t value;
};

/* A collection's place in the configuration (or the listing) and its
 * estimate. */
struct job_rank {
	size_t index;
	struct size_estimate size;
};

/* "size index=I bson_bytes=N" or "size index=I documents=N": 0 with *out
 * set; -1 when rec is not such a record. */
int job_size_record(const struct status_record *rec, struct job_rank *out);

/* Sorts ranks into start order: byte counts largest first, then document
 * counts largest first, then the unknown; equals keep their index order. */
void job_rank_sort(struct job_rank *ranks, size_t n);

/* The estimate for the log: "N BSON bytes", "N documents" or "unknown". */
const char *job_size_describe(const struct size_estimate *size, char *buf, size_t len);

#endif
