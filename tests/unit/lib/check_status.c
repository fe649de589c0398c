/* check_status.c - status channel records: framing and parsing. */
#include "config.h"

#include <check.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "child_status.h"
#include "unit_suites.h"

START_TEST(send_and_parse_over_seqpacket)
{
	int sv[2];
	char buf[STATUS_MSG_MAX + 1];
	struct status_record rec;
	ssize_t n;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	ck_assert_int_eq(status_send(sv[0], "staged bytes=%d blocks=%d md5=%s sha256=%s",
				     1234, 1, "AAAA+/==", "abcd"), 0);
	ck_assert_int_eq(status_send(sv[0], "result error class=auth status=403 message=%s",
				     "Azure said:\nno"), 0);
	n = status_recv(sv[1], buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(status_parse(buf, (size_t)n, &rec), 0);
	ck_assert_str_eq(rec.kind, "staged");
	ck_assert_uint_eq(status_get_u64(&rec, "bytes", 0), 1234);
	ck_assert_str_eq(status_get(&rec, "md5"), "AAAA+/==");
	ck_assert_ptr_null(status_get(&rec, "missing"));

	/* One record per message, and the free text keeps its spaces. */
	n = status_recv(sv[1], buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	ck_assert_ptr_null(memchr(buf, '\n', (size_t)n));
	close(sv[0]);
	ck_assert_int_eq(status_recv(sv[1], buf, sizeof(buf)), 0);
	close(sv[1]);
}
END_TEST

START_TEST(message_takes_the_rest_of_the_line)
{
	struct status_record rec;
	const char *m = "result class=mongo message=reading failed: a=b c";

	ck_assert_int_eq(status_parse(m, strlen(m), &rec), 0);
	ck_assert_str_eq(status_get(&rec, "class"), "mongo");
	ck_assert_str_eq(status_get(&rec, "message"), "reading failed: a=b c");
}
END_TEST

START_TEST(malformed_records)
{
	struct status_record rec;
	char big[STATUS_MSG_MAX + 10];

	ck_assert_int_eq(status_parse("", 0, &rec), -1);
	ck_assert_int_eq(status_parse("progress noequals", 17, &rec), -1);
	ck_assert_int_eq(status_parse("progress =v", 11, &rec), -1);
	ck_assert_int_eq(status_parse("a\0b x=1", 7, &rec), -1);
	ck_assert_int_eq(status_parse("averyveryverylongkindname x=1", 29, &rec), -1);
	memset(big, 'a', sizeof(big));
	ck_assert_int_eq(status_parse(big, sizeof(big), &rec), -1);
	ck_assert_int_eq(status_parse("p a=1 b=2 c=3 d=4 e=5 f=6 g=7 h=8 i=9 j=1 k=1 l=1 "
				      "m=1 n=1 o=1 p=1 q=1", 67, &rec), -1);
	ck_assert_int_eq(status_parse("p n=12x", 7, &rec), 0);
	ck_assert_uint_eq(status_get_u64(&rec, "n", 99), 99);
}
END_TEST

START_TEST(send_to_a_closed_peer_is_epipe)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	close(sv[1]);
	ck_assert_int_eq(status_send(sv[0], "progress x=1"), -1);
	close(sv[0]);
}
END_TEST

Suite *status_suite(void)
{
	Suite *s = suite_create("status");
	TCase *tc = tcase_create("status");

	tcase_add_test(tc, send_and_parse_over_seqpacket);
	tcase_add_test(tc, message_takes_the_rest_of_the_line);
	tcase_add_test(tc, malformed_records);
	tcase_add_test(tc, send_to_a_closed_peer_is_epipe);
	suite_add_tcase(s, tc);
	return s;
}
