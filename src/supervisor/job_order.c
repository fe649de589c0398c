/* job_order.c - the start order of a run's collections, largest first,
 * from the size records of export-collection --list (job_order.h).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_order.h"

/* A record with a field that is there but not a number is refused rather
 * than read as 0: a wrong estimate is worse than none. */
static int size_field(const struct status_record *rec, const char *key, uint64_t *value)
{
	if (status_get(rec, key) == NULL)
		return 1;
	*value = status_get_u64(rec, key, UINT64_MAX);
	return *value == UINT64_MAX ? -1 : 0;
}

int job_size_record(const struct status_record *rec, struct job_rank *out)
{
	uint64_t index, value;
	int r;

	if (strcmp(rec->kind, "size") != 0 || size_field(rec, "index", &index) != 0 ||
	    (uint64_t)(size_t)index != index)
		return -1;
	out->index = (size_t)index;
	r = size_field(rec, "bson_bytes", &value);
	if (r == 0) {
		out->size = (struct size_estimate){ SIZE_BSON_BYTES, value };
		return 0;
	}
	if (r < 0 || size_field(rec, "documents", &value) != 0)
		return -1;
	out->size = (struct size_estimate){ SIZE_DOCUMENTS, value };
	return 0;
}

static int rank_cmp(const void *pa, const void *pb)
{
	const struct job_rank *a = pa, *b = pb;

	if (a->size.unit != b->size.unit)
		return a->size.unit > b->size.unit ? -1 : 1;
	if (a->size.unit != SIZE_UNKNOWN && a->size.value != b->size.value)
		return a->size.value > b->size.value ? -1 : 1;
	/* qsort is not stable: the index keeps equals in configuration order. */
	return a->index < b->index ? -1 : a->index > b->index;
}

void job_rank_sort(struct job_rank *ranks, size_t n)
{
	if (n > 1)
		qsort(ranks, n, sizeof(*ranks), rank_cmp);
}

const char *job_size_describe(const struct size_estimate *size, char *buf, size_t len)
{
	switch (size->unit) {
	case SIZE_BSON_BYTES:
		snprintf(buf, len, "%" PRIu64 " BSON bytes", size->value);
		break;
	case SIZE_DOCUMENTS:
		snprintf(buf, len, "%" PRIu64 " documents", size->value);
		break;
	default:
		snprintf(buf, len, "unknown");
		break;
	}
	return buf;
}
