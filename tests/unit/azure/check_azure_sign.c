/* check_azure_sign.c - Shared Key vectors from azure-blob.md, and the
 * base64 / percent-encoding / date codecs. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "azure_sign.h"
#include "azure_suites.h"

#define DATE "Mon, 02 Jan 2023 03:04:05 GMT"

static void check_vector(const char *verb, unsigned long long len,
			 const struct azure_header *h, size_t n, const char *path,
			 const char *query, const char *want_sts, const char *want_sig)
{
	size_t key_len;
	unsigned char *key = azure_b64_decode(DEV_KEY, &key_len);
	char sig[AZURE_SIG_B64_SIZE];
	char *sts;

	ck_assert_ptr_nonnull(key);
	ck_assert_uint_eq(key_len, 64);
	sts = azure_string_to_sign(verb, len, h, n, "devstoreaccount1", path, query);
	ck_assert_ptr_nonnull(sts);
	ck_assert_str_eq(sts, want_sts);
	ck_assert_int_eq(azure_hmac_b64(key, key_len, sts, sig), 0);
	ck_assert_str_eq(sig, want_sig);
	free(sts);
	free(key);
}

START_TEST(vector_create_container)
{
	const struct azure_header h[] = {
		{ "x-ms-version", "2021-12-02" }, { "x-ms-date", DATE },
	};
	check_vector("PUT", 0, h, 2, "/devstoreaccount1/vectors", "restype=container",
		     "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:" DATE "\nx-ms-version:2021-12-02\n"
		     "/devstoreaccount1/devstoreaccount1/vectors\nrestype:container",
		     "9XQiv2+asvj+419dj54bqfFEEd2YltLh97/tLT090V8=");
}
END_TEST

START_TEST(vector_put_block)
{
	const struct azure_header h[] = {
		{ "x-ms-date", DATE }, { "x-ms-version", "2021-12-02" },
	};
	check_vector("PUT", 13, h, 2, "/devstoreaccount1/vectors/dir/a.gz",
		     "comp=block&blockid=YmxrLTAwMDAwMDA%3D",
		     "PUT\n\n\n13\n\n\n\n\n\n\n\n\nx-ms-date:" DATE "\nx-ms-version:2021-12-02\n"
		     "/devstoreaccount1/devstoreaccount1/vectors/dir/a.gz\n"
		     "blockid:YmxrLTAwMDAwMDA=\ncomp:block",
		     "TWpjtVtRtc+OkowwmGAq2nL3gIutI77oQ/twllTtx/k=");
}
END_TEST

START_TEST(vector_put_block_list)
{
	/* Deliberately unsorted, mixed case: the signer sorts and lowercases. */
	const struct azure_header h[] = {
		{ "X-Ms-Meta-Source", "host1" },
		{ "Content-Type", "application/xml" },
		{ "x-ms-blob-content-type", "application/gzip" },
		{ "x-ms-version", "2021-12-02" },
		{ "x-ms-blob-content-encoding", "gzip" },
		{ "x-ms-date", DATE },
	};
	check_vector("PUT", 94, h, 6, "/devstoreaccount1/vectors/dir/a.gz", "comp=blocklist",
		     "PUT\n\n\n94\n\napplication/xml\n\n\n\n\n\n\n"
		     "x-ms-blob-content-encoding:gzip\nx-ms-blob-content-type:application/gzip\n"
		     "x-ms-date:" DATE "\nx-ms-meta-source:host1\nx-ms-version:2021-12-02\n"
		     "/devstoreaccount1/devstoreaccount1/vectors/dir/a.gz\ncomp:blocklist",
		     "oclXHWOx+NDtk4sGB6Uu31RKzUrqbARTiwUatsYKulk=");
}
END_TEST

START_TEST(vector_list_blobs)
{
	const struct azure_header h[] = {
		{ "x-ms-date", DATE }, { "x-ms-version", "2021-12-02" },
	};
	const char *want =
		"GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:" DATE "\nx-ms-version:2021-12-02\n"
		"/devstoreaccount1/devstoreaccount1/vectors\ncomp:list\ninclude:metadata\n"
		"maxresults:10\nprefix:dir/\nrestype:container";
	const char *sig = "tvTS3b1Xps408taSIMEsWOwpKKvyAWEfQFDQqPjTMBg=";

	check_vector("GET", 0, h, 2, "/devstoreaccount1/vectors",
		     "restype=container&comp=list&prefix=dir/&include=metadata&maxresults=10",
		     want, sig);
	/* The same request with the prefix percent-encoded signs the same. */
	check_vector("GET", 0, h, 2, "/devstoreaccount1/vectors",
		     "restype=container&comp=list&prefix=dir%2F&include=metadata&maxresults=10",
		     want, sig);
}
END_TEST

START_TEST(query_empty_params_and_duplicates)
{
	const struct azure_header h[] = { { "x-ms-date", DATE } };
	char *sts = azure_string_to_sign("GET", 0, h, 1, "a", "/c", "b=2&empty=&A=1&b=1");

	ck_assert_ptr_nonnull(sts);
	ck_assert_ptr_nonnull(strstr(sts, "/a/c\na:1\nb:1,2"));
	ck_assert_ptr_null(strstr(sts, "empty"));
	free(sts);
	/* A malformed escape is refused rather than signed wrongly. */
	ck_assert_ptr_null(azure_string_to_sign("GET", 0, h, 1, "a", "/c", "x=%zz"));
}
END_TEST

START_TEST(base64_roundtrip_and_strictness)
{
	char out[64];
	size_t len;
	unsigned char *d;

	azure_b64_encode("", 0, out);
	ck_assert_str_eq(out, "");
	azure_b64_encode("f", 1, out);
	ck_assert_str_eq(out, "Zg==");
	azure_b64_encode("fo", 2, out);
	ck_assert_str_eq(out, "Zm8=");
	azure_b64_encode("foobar", 6, out);
	ck_assert_str_eq(out, "Zm9vYmFy");
	d = azure_b64_decode("Zm8=", &len);
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(len, 2);
	ck_assert_int_eq(memcmp(d, "fo", 2), 0);
	free(d);
	d = azure_b64_decode("Zg==", &len);
	ck_assert_uint_eq(len, 1);
	free(d);

	ck_assert_ptr_null(azure_b64_decode("", &len));
	ck_assert_ptr_null(azure_b64_decode("Zm8", &len));      /* not a multiple of 4 */
	ck_assert_ptr_null(azure_b64_decode("Zm=8", &len));     /* padding inside */
	ck_assert_ptr_null(azure_b64_decode("Zm9v!mFy", &len)); /* bad character */
	ck_assert_ptr_null(azure_b64_decode("Zh==", &len));     /* stray bits */
	ck_assert_ptr_null(azure_b64_decode("Zm9vYmFy\n", &len));
	ck_assert_ptr_null(azure_b64_decode("====", &len));
}
END_TEST

START_TEST(percent_encoding)
{
	char *s = azure_pct_encode("a b/c+d=e~_.-", 0);

	ck_assert_str_eq(s, "a%20b%2Fc%2Bd%3De~_.-");
	free(s);
	s = azure_pct_encode("backups/2026-11-26/x y.gz", 1);
	ck_assert_str_eq(s, "backups/2026-11-26/x%20y.gz");
	free(s);
	s = azure_pct_decode("a%2Fb%3d+", 9);
	ck_assert_str_eq(s, "a/b=+");
	free(s);
	ck_assert_ptr_null(azure_pct_decode("%2", 2));
	ck_assert_ptr_null(azure_pct_decode("%g0", 3));
	ck_assert_ptr_null(azure_pct_decode("%00", 3));
}
END_TEST

START_TEST(http_dates)
{
	char buf[AZURE_DATE_SIZE];

	azure_http_date(1672628645, buf);
	ck_assert_str_eq(buf, DATE);
	ck_assert_int_eq(azure_parse_http_date(DATE), 1672628645);
	ck_assert_int_eq(azure_parse_http_date("Mon, 02 Jan 2023 03:04:05"), -1);
	ck_assert_int_eq(azure_parse_http_date("Mon, 02 Foo 2023 03:04:05 GMT"), -1);
	ck_assert_int_eq(azure_parse_http_date("garbage"), -1);
}
END_TEST

Suite *azure_sign_suite(void)
{
	Suite *s = suite_create("azure_sign");
	TCase *tc = tcase_create("sign");

	tcase_add_test(tc, vector_create_container);
	tcase_add_test(tc, vector_put_block);
	tcase_add_test(tc, vector_put_block_list);
	tcase_add_test(tc, vector_list_blobs);
	tcase_add_test(tc, query_empty_params_and_duplicates);
	tcase_add_test(tc, base64_roundtrip_and_strictness);
	tcase_add_test(tc, percent_encoding);
	tcase_add_test(tc, http_dates);
	suite_add_tcase(s, tc);
	return s;
}
