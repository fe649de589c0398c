/* check_azure_block.c - block ids, block-size growth, in-flight limits,
 * name checks and secret redaction. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "azure_blob.h"
#include "block_upload.h"
#include "azure_suites.h"

START_TEST(block_ids_fixed_width)
{
	char a[AZURE_BLOCK_ID_SIZE], b[AZURE_BLOCK_ID_SIZE], c[AZURE_BLOCK_ID_SIZE];
	size_t len;
	unsigned char *raw;

	azure_block_id(0x1234, 0, a);
	azure_block_id(0x1234, 49999, b);
	azure_block_id(0xffffffffffffffffULL, 9999999999999ULL, c);
	ck_assert_uint_eq(strlen(a), 44);
	ck_assert_uint_eq(strlen(b), 44);
	ck_assert_uint_eq(strlen(c), 44);
	ck_assert_str_ne(a, b);
	raw = azure_b64_decode(b, &len);
	ck_assert_uint_eq(len, AZURE_BLOCK_ID_RAW_LEN);
	ck_assert_int_eq(memcmp(raw, "000000001234-0000000000000049999", len), 0);
	free(raw);

	/* In the query the id is percent-encoded ('+', '/', '=' included). */
	char *q = NULL;
	ck_assert_int_eq(azure_query_add(&q, "blockid", "ab+/c="), 0);
	ck_assert_str_eq(q, "blockid=ab%2B%2Fc%3D");
	free(q);
}
END_TEST

START_TEST(block_size_growth)
{
	const uint64_t MiB = 1 << 20;
	uint64_t total = 0;

	ck_assert_uint_eq(block_upload_block_size(8 * MiB, 0), 8 * MiB);
	ck_assert_uint_eq(block_upload_block_size(8 * MiB, 4999), 8 * MiB);
	ck_assert_uint_eq(block_upload_block_size(8 * MiB, 5000), 16 * MiB);
	ck_assert_uint_eq(block_upload_block_size(8 * MiB, 10000), 32 * MiB);
	ck_assert_uint_eq(block_upload_block_size(8 * MiB, 49999), 4000 * MiB);
	ck_assert_uint_eq(block_upload_block_size(8 * MiB, 1000000), 4000 * MiB);
	ck_assert_uint_eq(block_upload_block_size(5000 * MiB, 0), 4000 * MiB);
	/* 50,000 blocks hold well over 4 TiB even from 1 MiB blocks. */
	for (uint64_t i = 0; i < AZURE_MAX_BLOCKS; i++)
		total += block_upload_block_size(1 * MiB, i);
	ck_assert_uint_gt(total, 4ULL << 40);
}
END_TEST

START_TEST(in_flight_shrinks_with_block_size)
{
	const uint64_t MiB = 1 << 20;

	ck_assert_int_eq(block_upload_max_inflight(4, 8 * MiB, 8 * MiB), 4);
	ck_assert_int_eq(block_upload_max_inflight(4, 8 * MiB, 16 * MiB), 2);
	ck_assert_int_eq(block_upload_max_inflight(4, 8 * MiB, 32 * MiB), 1);
	ck_assert_int_eq(block_upload_max_inflight(4, 8 * MiB, 4000 * MiB), 1);
	ck_assert_int_eq(block_upload_max_inflight(6, 8 * MiB, 16 * MiB), 3);
	ck_assert_int_eq(block_upload_max_inflight(1, 8 * MiB, 8 * MiB), 1);
}
END_TEST

START_TEST(names)
{
	ck_assert(azure_valid_container_name("backups"));
	ck_assert(azure_valid_container_name("a-1"));
	ck_assert(azure_valid_container_name("$root"));
	ck_assert(!azure_valid_container_name("ab"));
	ck_assert(!azure_valid_container_name("Backups"));
	ck_assert(!azure_valid_container_name("a--b"));
	ck_assert(!azure_valid_container_name("-ab"));
	ck_assert(!azure_valid_container_name("ab-"));
	ck_assert(azure_valid_blob_name("backups/2026-11-26/tralivali_users.bson.gz"));
	ck_assert(azure_valid_blob_name("x y+z%.gz"));
	ck_assert(!azure_valid_blob_name(""));
	ck_assert(!azure_valid_blob_name("/abs"));
	ck_assert(!azure_valid_blob_name("dir/"));
	ck_assert(!azure_valid_blob_name("dot."));
	ck_assert(!azure_valid_blob_name("new\nline"));
	ck_assert(azure_valid_meta_name("documents"));
	ck_assert(azure_valid_meta_name("sha256"));
	ck_assert(!azure_valid_meta_name("bson_bytes"));
	ck_assert(!azure_valid_meta_name("Docs"));
	ck_assert(!azure_valid_meta_name("1st"));
	ck_assert(!azure_valid_meta_name(""));
	ck_assert(azure_valid_meta_value("host1"));
	ck_assert(azure_valid_meta_value("a b"));
	ck_assert(azure_valid_meta_value(""));
	ck_assert(!azure_valid_meta_value(" a"));
	ck_assert(!azure_valid_meta_value("a "));
	ck_assert(!azure_valid_meta_value("a  b"));
	ck_assert(!azure_valid_meta_value("a\r\nx-ms-evil: 1"));
	ck_assert(!azure_valid_meta_value("caf\xc3\xa9"));
}
END_TEST

START_TEST(redaction)
{
	char err[256];
	struct azure_client *c = azure_client_new(
		"BlobEndpoint=https://a.example.net;SharedAccessSignature=sv=2021-12-02&sp=r&"
		"sig=U0VDUkVUU0lHTkFUVVJF", "backups", err, sizeof(err));
	char text[160];

	ck_assert_msg(c != NULL, "%s", err);
	snprintf(text, sizeof(text), "failed: https://a.example.net/c?sv=2021-12-02&sp=r&"
		 "sig=U0VDUkVUU0lHTkFUVVJF (x)");
	azure_redact(c, text, sizeof(text));
	ck_assert_ptr_null(strstr(text, "U0VDUkVU"));
	ck_assert_ptr_nonnull(strstr(text, "[REDACTED]"));
	ck_assert_ptr_nonnull(strstr(text, "(x)"));
	/* Foreign signatures too, and short ones. */
	snprintf(text, sizeof(text), "a sig=abc&b sig=OTHERSIGNATUREVALUE123 end");
	azure_redact(c, text, sizeof(text));
	ck_assert_ptr_null(strstr(text, "abc"));
	ck_assert_ptr_null(strstr(text, "OTHERSIG"));
	ck_assert_ptr_nonnull(strstr(text, "end"));
	azure_client_free(c);

	c = azure_client_new("AccountName=a;AccountKey=" DEV_KEY, "backups", err, sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	/* A buffer too small for the mark still loses the secret. */
	char small[12];
	snprintf(small, sizeof(small), "x sig=abcd");
	azure_redact(c, small, sizeof(small));
	ck_assert_str_eq(small, "x sig=[REDA");
	snprintf(text, sizeof(text), "key %s!", DEV_KEY);
	azure_redact(c, text, sizeof(text));
	ck_assert_str_eq(text, "key [REDACTED]!");
	azure_client_free(c);
}
END_TEST

START_TEST(client_refuses_bad_input)
{
	char err[256];

	ck_assert_ptr_null(azure_client_new("AccountName=a;AccountKey=" DEV_KEY, "Bad_Name",
					    err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "container name"));
	ck_assert_ptr_null(azure_client_new("AccountName=a;AccountKey=abc", "backups", err,
					    sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "base64"));
}
END_TEST

Suite *azure_block_suite(void)
{
	Suite *s = suite_create("azure_block");
	TCase *tc = tcase_create("block");

	tcase_add_test(tc, block_ids_fixed_width);
	tcase_add_test(tc, block_size_growth);
	tcase_add_test(tc, in_flight_shrinks_with_block_size);
	tcase_add_test(tc, names);
	tcase_add_test(tc, redaction);
	tcase_add_test(tc, client_refuses_bad_input);
	suite_add_tcase(s, tc);
	return s;
}
