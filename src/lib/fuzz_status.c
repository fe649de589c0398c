/* fuzz_status.c - status_parse() on arbitrary status-channel messages, and
 * status_send() of the same text over a SOCK_SEQPACKET pair.
 *
 * Checks: a parsed record has a kind, at most STATUS_MAX_FIELDS fields, keys
 * without ' ' or '=', values without ' ' except the last "message"; every
 * key is found by status_get(); a sent message arrives whole, one line.
 */
#include "config.h"

#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include "child_status.h"
#include "fuzz.h"

static int pair[2] = { -1, -1 };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
		abort();
	return 0;
}

static void check_record(const struct status_record *rec)
{
	FUZZ_CHECK(rec->kind[0] != '\0' && strchr(rec->kind, ' ') == NULL, "kind '%s'",
		   rec->kind);
	FUZZ_CHECK(rec->n_fields <= STATUS_MAX_FIELDS, "%zu fields", rec->n_fields);
	for (size_t i = 0; i < rec->n_fields; i++) {
		const char *k = rec->keys[i], *v = rec->values[i];
		bool last_message = i + 1 == rec->n_fields && strcmp(k, "message") == 0;

		FUZZ_CHECK(k[0] != '\0' && strpbrk(k, " =") == NULL, "key '%s'", k);
		FUZZ_CHECK(last_message || strchr(v, ' ') == NULL, "value '%s' of %s", v, k);
		FUZZ_CHECK(strcmp(k, "message") != 0 || i + 1 == rec->n_fields,
			   "message is not last");
		FUZZ_CHECK(status_get(rec, k) != NULL, "%s not found", k);
		(void)status_get_u64(rec, k, 7);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct status_record rec;
	char buf[STATUS_MSG_MAX + 2];
	char *text;
	ssize_t n;

	if (size > 2 * STATUS_MSG_MAX)
		return 0;
	if (status_parse((const char *)data, size, &rec) == 0)
		check_record(&rec);

	/* Through the channel: newlines become spaces, long text is cut. */
	if (pair[0] < 0)
		LLVMFuzzerInitialize(NULL, NULL);
	text = fuzz_cstr(data, size);
	if (*text != '\0') {
		size_t want = strlen(text) > STATUS_MSG_MAX ? STATUS_MSG_MAX : strlen(text);
		FUZZ_CHECK(status_send(pair[0], "%s", text) == 0, "send failed");
		n = status_recv(pair[1], buf, sizeof(buf));
		FUZZ_CHECK(n == (ssize_t)want, "sent %zu, received %zd", want, n);
		FUZZ_CHECK(memchr(buf, '\n', (size_t)n) == NULL && memchr(buf, '\r', (size_t)n) == NULL,
			   "a line break arrived");
		if (status_parse(buf, (size_t)n, &rec) == 0)
			check_record(&rec);
	}
	free(text);
	return 0;
}
