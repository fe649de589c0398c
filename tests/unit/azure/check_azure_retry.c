/* check_azure_retry.c - which failures are retried, how long we wait, and
 * the error classes reported for final failures. */
#include "config.h"

#include <check.h>
#include <curl/curl.h>

#include "azure_retry.h"
#include "azure_token.h"
#include "azure_suites.h"
#include "child_status.h"

START_TEST(retryable_statuses)
{
	const long yes[] = { 408, 429, 500, 502, 503, 504 };
	const long no[] = { 200, 201, 304, 400, 401, 403, 404, 409, 412, 416, 501, 505 };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		ck_assert_msg(azure_retry_status(yes[i]), "%ld", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		ck_assert_msg(!azure_retry_status(no[i]), "%ld", no[i]);
}
END_TEST

START_TEST(retryable_transport)
{
	ck_assert(azure_retry_transport(CURLE_COULDNT_CONNECT));
	ck_assert(azure_retry_transport(CURLE_COULDNT_RESOLVE_HOST));
	ck_assert(azure_retry_transport(CURLE_OPERATION_TIMEDOUT));
	ck_assert(azure_retry_transport(CURLE_SEND_ERROR));
	ck_assert(azure_retry_transport(CURLE_RECV_ERROR));
	ck_assert(azure_retry_transport(CURLE_GOT_NOTHING));
	ck_assert(azure_retry_transport(CURLE_PARTIAL_FILE));
	ck_assert(!azure_retry_transport(CURLE_OK));
	ck_assert(!azure_retry_transport(CURLE_PEER_FAILED_VERIFICATION));
	ck_assert(!azure_retry_transport(CURLE_URL_MALFORMAT));
	ck_assert(!azure_retry_transport(CURLE_WRITE_ERROR));
	ck_assert(!azure_retry_transport(CURLE_UNSUPPORTED_PROTOCOL));
}
END_TEST

START_TEST(error_classes)
{
	for (int answered = 0; answered <= 1; answered++) {
		ck_assert_str_eq(azure_error_class(401, CURLE_OK, answered), ERR_CLASS_AUTH);
		ck_assert_str_eq(azure_error_class(403, CURLE_OK, answered), ERR_CLASS_AUTH);
		ck_assert_str_eq(azure_error_class(404, CURLE_OK, answered), ERR_CLASS_NOTFOUND);
		ck_assert_str_eq(azure_error_class(400, CURLE_OK, answered), ERR_CLASS_CLIENT);
		ck_assert_str_eq(azure_error_class(409, CURLE_OK, answered), ERR_CLASS_CLIENT);
		ck_assert_str_eq(azure_error_class(412, CURLE_OK, answered), ERR_CLASS_CLIENT);
		ck_assert_str_eq(azure_error_class(429, CURLE_OK, answered), ERR_CLASS_SERVER);
		ck_assert_str_eq(azure_error_class(408, CURLE_OK, answered), ERR_CLASS_SERVER);
		ck_assert_str_eq(azure_error_class(500, CURLE_OK, answered), ERR_CLASS_SERVER);
		ck_assert_str_eq(azure_error_class(503, CURLE_OK, answered), ERR_CLASS_SERVER);
		ck_assert_str_eq(azure_error_class(501, CURLE_OK, answered), ERR_CLASS_SERVER);
		ck_assert_str_eq(azure_error_class(200, CURLE_RECV_ERROR, answered),
				 ERR_CLASS_TRANSPORT);
		ck_assert_str_eq(azure_error_class(0, CURLE_OPERATION_TIMEDOUT, answered),
				 ERR_CLASS_TRANSPORT);
		ck_assert_str_eq(azure_error_class(0, CURLE_GOT_NOTHING, answered),
				 ERR_CLASS_TRANSPORT);
		ck_assert_str_eq(azure_error_class(200, CURLE_WRITE_ERROR, answered),
				 ERR_CLASS_LOCAL);
		/* Settings no retry mends, whenever they show. */
		ck_assert_str_eq(azure_error_class(0, CURLE_PEER_FAILED_VERIFICATION, answered),
				 ERR_CLASS_CONFIG);
		ck_assert_str_eq(azure_error_class(0, CURLE_SSL_CACERT_BADFILE, answered),
				 ERR_CLASS_CONFIG);
		ck_assert_str_eq(azure_error_class(0, CURLE_URL_MALFORMAT, answered),
				 ERR_CLASS_CONFIG);
	}
}
END_TEST

/* Nothing listening, a name that does not resolve, no TLS handshake: a
 * wrong endpoint when the storage never answered this client, an outage
 * when it did. */
START_TEST(never_connected)
{
	const int codes[] = { CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST,
			      CURLE_COULDNT_RESOLVE_PROXY, CURLE_SSL_CONNECT_ERROR };
	const int connected[] = { CURLE_OK, CURLE_OPERATION_TIMEDOUT, CURLE_RECV_ERROR,
				  CURLE_SEND_ERROR, CURLE_GOT_NOTHING,
				  CURLE_PEER_FAILED_VERIFICATION };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		ck_assert(azure_never_connected(codes[i]));
		ck_assert_str_eq(azure_error_class(0, codes[i], false), ERR_CLASS_UNREACHABLE);
		ck_assert_str_eq(azure_error_class(0, codes[i], true), ERR_CLASS_TRANSPORT);
		/* Retried once before any answer, the full budget after one. */
		ck_assert_int_eq(azure_retry_budget(5, codes[i], false), 1);
		ck_assert_int_eq(azure_retry_budget(0, codes[i], false), 0);
		ck_assert_int_eq(azure_retry_budget(1, codes[i], false), 1);
		ck_assert_int_eq(azure_retry_budget(5, codes[i], true), 5);
	}
	/* A status line arrived before the failure: something answers. */
	ck_assert_str_eq(azure_error_class(200, CURLE_SSL_CONNECT_ERROR, false),
			 ERR_CLASS_TRANSPORT);
	for (size_t i = 0; i < sizeof(connected) / sizeof(connected[0]); i++) {
		ck_assert(!azure_never_connected(connected[i]));
		ck_assert_int_eq(azure_retry_budget(5, connected[i], false), 5);
	}
}
END_TEST

START_TEST(retry_after_headers)
{
	const time_t now = 1672628645;   /* Mon, 02 Jan 2023 03:04:05 GMT */

	ck_assert_int_eq(azure_retry_after_header_ms("5", false, now), 5000);
	ck_assert_int_eq(azure_retry_after_header_ms(" 0 ", false, now), 0);
	ck_assert_int_eq(azure_retry_after_header_ms("250", true, now), 250);
	ck_assert_int_eq(azure_retry_after_header_ms("Mon, 02 Jan 2023 03:04:15 GMT", false, now),
			 10000);
	ck_assert_int_eq(azure_retry_after_header_ms("Mon, 02 Jan 2023 03:00:00 GMT", false, now), 0);
	ck_assert_int_eq(azure_retry_after_header_ms("999999", false, now), AZURE_RETRY_AFTER_MAX_MS);
	ck_assert_int_eq(azure_retry_after_header_ms("99999999999999999999", true, now),
			 AZURE_RETRY_AFTER_MAX_MS);
	ck_assert_int_eq(azure_retry_after_header_ms("-1", false, now), -1);
	ck_assert_int_eq(azure_retry_after_header_ms("soon", false, now), -1);
	ck_assert_int_eq(azure_retry_after_header_ms("", false, now), -1);
	ck_assert_int_eq(azure_retry_after_header_ms("1.5", false, now), -1);
	ck_assert_int_eq(azure_retry_after_header_ms(NULL, false, now), -1);
	/* An HTTP date is not milliseconds. */
	ck_assert_int_eq(azure_retry_after_header_ms("Mon, 02 Jan 2023 03:04:15 GMT", true, now), -1);
}
END_TEST

START_TEST(backoff_bounds)
{
	struct azure_retry_policy p;
	uint64_t rng = 42;
	long min_first = 1 << 30, max_first = 0;

	azure_retry_policy_default(&p);
	ck_assert_int_eq(p.max_retries, 5);
	ck_assert_int_eq(p.base_ms, 800);
	ck_assert_int_eq(p.cap_ms, 60000);
	for (int trial = 0; trial < 2000; trial++) {
		long prev = 0;
		for (int n = 0; n < 12; n++) {
			long d = azure_retry_backoff_ms(&p, n, prev, &rng);
			ck_assert_int_ge(d, 800);
			ck_assert_int_le(d, 60000);
			if (n == 0) {
				ck_assert_int_le(d, 1600);
				if (d < min_first)
					min_first = d;
				if (d > max_first)
					max_first = d;
			} else {
				ck_assert_int_le(d, 3 * prev);
			}
			prev = d;
		}
	}
	/* Jitter really spreads the first retry over [0.8 s, 1.6 s]. */
	ck_assert_int_lt(min_first, 900);
	ck_assert_int_gt(max_first, 1500);

	/* Sustained trouble reaches the cap: each wait feeds the next, and
	 * within a few dozen retries waits come within 10 % of the cap, never
	 * over it. */
	long d = 0, longest = 0;
	for (int n = 0; n < 200; n++) {
		d = azure_retry_backoff_ms(&p, n, d, &rng);
		ck_assert_int_le(d, 60000);
		if (d > longest)
			longest = d;
	}
	ck_assert_int_ge(longest, 54000);
	/* ... and from the cap it still jitters down as far as the base. */
	long lowest = 60000;
	for (int n = 0; n < 2000; n++) {
		long e = azure_retry_backoff_ms(&p, 30, 60000, &rng);
		ck_assert_int_ge(e, 800);
		if (e < lowest)
			lowest = e;
	}
	ck_assert_int_lt(lowest, 2000);
}
END_TEST

START_TEST(rng_differs)
{
	uint64_t a = azure_rng_seed(), b = azure_rng_seed();
	uint64_t a2 = a;

	/* Two seeds (two processes retrying together) must not march in
	 * step, and one sequence must not repeat itself. */
	ck_assert(a != b);
	ck_assert(azure_rng_next(&a) != azure_rng_next(&b));
	uint64_t first = azure_rng_next(&a2);
	ck_assert(first != azure_rng_next(&a2));
	/* The same state gives the same sequence: the generator is a pure
	 * function of its seed, so the tests above are repeatable. */
	uint64_t s1 = 42, s2 = 42;
	for (int i = 0; i < 100; i++)
		ck_assert(azure_rng_next(&s1) == azure_rng_next(&s2));
}
END_TEST

/* Tokens are renewed at half their life or 5 minutes before the end,
 * whichever comes first: an IMDS token (24 h) at 12 h, an Entra one (1 h)
 * at 30 min, a 400 s one 5 min early, a 5 s one (tests) at 2 s. */
START_TEST(token_renewal_time)
{
	time_t now = 1700000000;

	ck_assert_int_eq(azure_token_renew_at(now, 86399) - now, 43199);
	ck_assert_int_eq(azure_token_renew_at(now, 3599) - now, 1799);
	ck_assert_int_eq(azure_token_renew_at(now, 400) - now, 100);
	ck_assert_int_eq(azure_token_renew_at(now, 5) - now, 2);
	ck_assert_int_eq(azure_token_renew_at(now, 0) - now, 0);
}
END_TEST

Suite *azure_retry_suite(void)
{
	Suite *s = suite_create("azure_retry");
	TCase *tc = tcase_create("retry");

	tcase_add_test(tc, retryable_statuses);
	tcase_add_test(tc, retryable_transport);
	tcase_add_test(tc, error_classes);
	tcase_add_test(tc, never_connected);
	tcase_add_test(tc, retry_after_headers);
	tcase_add_test(tc, backoff_bounds);
	tcase_add_test(tc, rng_differs);
	tcase_add_test(tc, token_renewal_time);
	suite_add_tcase(s, tc);
	return s;
}
