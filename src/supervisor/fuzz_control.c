/* fuzz_control.c - the control socket's request handling, end to end.
 *
 * The request checks (process_request() in control.c) are static, so the
 * input goes where a client's bytes go: a server made with control_open()
 * on a socket in a private directory, a client that connects, sends the
 * input and shuts down its sending side, and the server driven through
 * control_pollfds()/control_handle() until the client has the whole reply.
 * The client is the daemon's own uid, so every command is permitted.
 *
 * Checks: a reply is "OK\n..." or exactly one printable "ERROR <code> ...\n"
 * line with a known code; OK only for exactly "ping\n", "status\n",
 * "metrics\n" or "run\n" ("cancel\n" gets the stub's 409); an empty input
 * gets no reply; the server always finishes within a second.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "fuzz.h"
#include "log.h"

static struct control_server *srv;
static char dir[64], sock_path[128];

static char *stub_status(void *ctx, char *err, size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	return strdup("{\"state\": \"idle\"}\n");
}

static char *stub_metrics(void *ctx, char *err, size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	return strdup("mab_runs_total 3\n");
}

static int stub_run(void *ctx, char **body, char *err, size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	*body = strdup("{\"run_id\": \"fuzz\", \"coalesced\": false}\n");
	return 0;
}

static int stub_cancel(void *ctx, char **body, char *err, size_t errlen)
{
	(void)ctx;
	(void)body;
	snprintf(err, errlen, "no run to cancel");
	return 409;
}

static void cleanup(void)
{
	control_close(srv);
	srv = NULL;
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const struct control_handlers h = {
		.status_json = stub_status, .metrics_text = stub_metrics,
		.run = stub_run, .cancel = stub_cancel,
	};
	char err[256];

	(void)argc;
	(void)argv;
	log_set_level(LOG_ERR);
	snprintf(dir, sizeof(dir), "/tmp/mab-fuzz-control-XXXXXX");
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(sock_path, sizeof(sock_path), "%s/control.sock", dir);
	srv = control_open(sock_path, NULL, geteuid(), &h, err, sizeof(err));
	if (srv == NULL) {
		fprintf(stderr, "fuzz_control: %s\n", err);
		abort();
	}
	atexit(cleanup);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The server's fds and the client's, polled together until the client
 * reads EOF; the reply in out (NUL-terminated), its length returned. */
static size_t exchange(int cfd, char *out, size_t cap)
{
	struct pollfd fds[CONTROL_MAX_CLIENTS + 2];
	size_t len = 0;
	int64_t deadline = now_ms() + 1000;

	for (;;) {
		size_t n = control_pollfds(srv, fds, CONTROL_MAX_CLIENTS + 1);
		fds[n] = (struct pollfd){ .fd = cfd, .events = POLLIN };
		FUZZ_CHECK(now_ms() < deadline, "no complete reply within a second (%zu bytes)",
			   len);
		if (poll(fds, n + 1, 100) < 0 && errno != EINTR)
			abort();
		control_handle(srv, fds, n);
		if (fds[n].revents != 0) {
			ssize_t got = recv(cfd, out + len, cap - 1 - len, MSG_DONTWAIT);
			if (got == 0)
				break;
			if (got < 0 && errno != EAGAIN && errno != EINTR)
				break;	/* ECONNRESET: the server closed on unread data */
			if (got > 0)
				len += (size_t)got;
			FUZZ_CHECK(len < cap - 1, "reply too long");
		}
	}
	out[len] = '\0';
	return len;
}

static bool is_command(const uint8_t *data, size_t size, const char *line)
{
	return size == strlen(line) && memcmp(data, line, size) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char reply[4096];
	size_t len;
	int cfd;

	if (size > 2048)
		return 0;
	if (srv == NULL)
		LLVMFuzzerInitialize(NULL, NULL);
	memcpy(addr.sun_path, sock_path, strlen(sock_path) + 1);
	cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cfd < 0 || connect(cfd, (struct sockaddr *)&addr, sizeof(addr)) != 0)
		abort();
	if (size > 0 && send(cfd, data, size, MSG_NOSIGNAL) != (ssize_t)size)
		abort();
	shutdown(cfd, SHUT_WR);
	len = exchange(cfd, reply, sizeof(reply));
	close(cfd);

	if (size == 0) {
		FUZZ_CHECK(len == 0, "a reply to nothing: %s", reply);
		return 0;
	}
	FUZZ_CHECK(len > 0, "no reply");
	if (strncmp(reply, "OK\n", 3) == 0) {
		FUZZ_CHECK(is_command(data, size, "ping\n") || is_command(data, size, "status\n") ||
			   is_command(data, size, "metrics\n") || is_command(data, size, "run\n"),
			   "OK for a request that is not a command line");
		if (is_command(data, size, "ping\n"))
			FUZZ_CHECK(strcmp(reply, "OK\npong\n") == 0, "ping: %s", reply);
		return 0;
	}
	FUZZ_CHECK(strncmp(reply, "ERROR ", 6) == 0, "neither OK nor ERROR: %s", reply);
	FUZZ_CHECK(reply[len - 1] == '\n' && strchr(reply, '\n') == reply + len - 1,
		   "the ERROR reply is not one line: %s", reply);
	for (size_t i = 0; i + 1 < len; i++)
		FUZZ_CHECK(reply[i] >= 0x20 && reply[i] < 0x7f, "unprintable byte %#x in: %s",
			   (unsigned char)reply[i], reply);
	int code = atoi(reply + 6);
	FUZZ_CHECK(code == 400 || (code == 409 && is_command(data, size, "cancel\n")),
		   "unexpected code in: %s", reply);
	FUZZ_CHECK(!is_command(data, size, "ping\n") && !is_command(data, size, "status\n") &&
		   !is_command(data, size, "metrics\n") && !is_command(data, size, "run\n"),
		   "a valid command refused: %s", reply);
	return 0;
}
