/* check_job_order.c - the order a run starts its collections in: the
 * lister's size records read, and the largest first, unknown last. */
#include "config.h"

#include <check.h>
#include <string.h>

#include "child_status.h"
#include "job_order.h"
#include "unit_suites.h"

/* 0 with *out set, or -1, as job_size_record says of the text. */
static int parse(const char *text, struct job_rank *out)
{
	struct status_record rec;

	ck_assert_int_eq(status_parse(text, strlen(text), &rec), 0);
	return job_size_record(&rec, out);
}

START_TEST(size_records)
{
	struct job_rank r;

	ck_assert_int_eq(parse("size index=2 bson_bytes=207800", &r), 0);
	ck_assert_uint_eq(r.index, 2);
	ck_assert_int_eq(r.size.unit, SIZE_BSON_BYTES);
	ck_assert_uint_eq(r.size.value, 207800);
	ck_assert_int_eq(parse("size index=0 documents=0", &r), 0);
	ck_assert_uint_eq(r.index, 0);
	ck_assert_int_eq(r.size.unit, SIZE_DOCUMENTS);
	ck_assert_uint_eq(r.size.value, 0);
	/* bytes win when a record has both */
	ck_assert_int_eq(parse("size index=1 documents=5 bson_bytes=9", &r), 0);
	ck_assert_int_eq(r.size.unit, SIZE_BSON_BYTES);
	ck_assert_uint_eq(r.size.value, 9);
}
END_TEST

START_TEST(malformed_size_records)
{
	struct job_rank r;

	ck_assert_int_eq(parse("size bson_bytes=1", &r), -1);
	ck_assert_int_eq(parse("size index=1", &r), -1);
	ck_assert_int_eq(parse("size index=-1 bson_bytes=1", &r), -1);
	ck_assert_int_eq(parse("size index=x bson_bytes=1", &r), -1);
	/* a broken byte count is not read as 0, nor passed over for the count */
	ck_assert_int_eq(parse("size index=1 bson_bytes=12k documents=3", &r), -1);
	ck_assert_int_eq(parse("size index=1 documents=", &r), -1);
	ck_assert_int_eq(parse("estimate documents=5", &r), -1);
	ck_assert_int_eq(parse("sizes index=1 bson_bytes=1", &r), -1);
}
END_TEST

static struct job_rank rank(size_t index, enum size_unit unit, uint64_t value)
{
	return (struct job_rank){ .index = index, .size = { unit, value } };
}

START_TEST(largest_first_unknown_last_in_configuration_order)
{
	struct job_rank r[] = {
		rank(0, SIZE_UNKNOWN, 0),
		rank(1, SIZE_DOCUMENTS, 10),
		rank(2, SIZE_BSON_BYTES, 100),
		rank(3, SIZE_UNKNOWN, 0),
		rank(4, SIZE_BSON_BYTES, 5000),
		rank(5, SIZE_DOCUMENTS, 1000000),
		rank(6, SIZE_BSON_BYTES, 100),
		rank(7, SIZE_BSON_BYTES, 0),
		rank(8, SIZE_UNKNOWN, 0),
	};
	/* bytes largest first (ties in configuration order), then document
	 * counts, then the unknown as configured */
	const size_t want[] = { 4, 2, 6, 7, 5, 1, 0, 3, 8 };
	size_t n = sizeof(r) / sizeof(r[0]);

	job_rank_sort(r, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(r[i].index, want[i]);
}
END_TEST

START_TEST(nothing_known_keeps_configuration_order)
{
	struct job_rank r[40];

	for (size_t i = 0; i < 40; i++)
		r[i] = rank(i, SIZE_UNKNOWN, 40 - i);
	job_rank_sort(r, 40);
	for (size_t i = 0; i < 40; i++)
		ck_assert_uint_eq(r[i].index, i);
	job_rank_sort(r, 0);
	job_rank_sort(r, 1);
	ck_assert_uint_eq(r[0].index, 0);
}
END_TEST

START_TEST(describe)
{
	char buf[64];
	struct size_estimate bytes = { SIZE_BSON_BYTES, 12345 };
	struct size_estimate docs = { SIZE_DOCUMENTS, 7 };
	struct size_estimate none = { SIZE_UNKNOWN, 99 };

	ck_assert_str_eq(job_size_describe(&bytes, buf, sizeof(buf)), "12345 BSON bytes");
	ck_assert_str_eq(job_size_describe(&docs, buf, sizeof(buf)), "7 documents");
	ck_assert_str_eq(job_size_describe(&none, buf, sizeof(buf)), "unknown");
}
END_TEST

Suite *job_order_suite(void)
{
	Suite *s = suite_create("job_order");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, size_records);
	tcase_add_test(tc, malformed_size_records);
	tcase_add_test(tc, largest_first_unknown_last_in_configuration_order);
	tcase_add_test(tc, nothing_known_keeps_configuration_order);
	tcase_add_test(tc, describe);
	suite_add_tcase(s, tc);
	return s;
}
