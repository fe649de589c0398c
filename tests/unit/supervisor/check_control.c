/* check_control.c - the control socket end to end, and the --from parser of
 * mongo-azure-backupctl.
 *
 * The server runs in the test process exactly as in the daemon (nonblocking,
 * driven by poll); each client is a forked child that talks over a real
 * socket, possibly after becoming nobody, and sends back through a pipe what
 * it saw.  Children never assert: only this process does.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "control_client.h"
#include "iso8601.h"
#include "log.h"

#define NOBODY 65534
#define NOGROUP 65534
#define BIG_BODY (1024 * 1024)

/* ---- stub daemon ------------------------------------------------------- */

static struct {
	int status, metrics, run, cancel;
	bool status_fails;
	size_t status_size;	/* 0: a small document */
} calls;

static char *stub_status(void *ctx, char *err, size_t errlen)
{
	char *body;

	(void)ctx;
	calls.status++;
	if (calls.status_fails) {
		snprintf(err, errlen, "state is\nbroken");
		return NULL;
	}
	if (calls.status_size == 0)
		return strdup("{\"state\": \"idle\"}\n");
	body = malloc(calls.status_size + 1);
	if (body == NULL)
		return NULL;
	for (size_t i = 0; i < calls.status_size; i++)
		body[i] = (char)('a' + i % 26);
	body[calls.status_size] = '\0';
	return body;
}

static char *stub_metrics(void *ctx, char *err, size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	calls.metrics++;
	return strdup("mab_runs_total 3\n");
}

static int stub_run(void *ctx, char **body, char *err, size_t errlen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	calls.run++;
	*body = strdup("{\"run_id\": \"r1\", \"coalesced\": false}\n");
	return 0;
}

static int stub_cancel(void *ctx, char **body, char *err, size_t errlen)
{
	(void)ctx;
	(void)body;
	calls.cancel++;
	snprintf(err, errlen, "no backup run is in progress");
	return 409;
}

static const struct control_handlers stubs = {
	.status_json = stub_status, .metrics_text = stub_metrics,
	.run = stub_run, .cancel = stub_cancel,
};

/* ---- fixture: a temp directory, a socket path in it -------------------- */

static char tmpdir[64];
static char sock_path[128];
static struct control_server *srv;

static void setup(void)
{
	memset(&calls, 0, sizeof(calls));
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_control.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	/* nobody must reach the socket for the permission tests. */
	ck_assert_int_eq(chmod(tmpdir, 0755), 0);
	snprintf(sock_path, sizeof(sock_path), "%s/control.sock", tmpdir);
	srv = NULL;
}

static void teardown(void)
{
	char cmd[128];

	if (srv != NULL)
		control_close(srv);
	srv = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
}

static struct control_server *open_server(const char *group)
{
	char err[512] = "";
	struct control_server *s = control_open(sock_path, group, geteuid(), &stubs, err,
						sizeof(err));

	ck_assert_msg(s != NULL, "control_open: %s", err);
	return s;
}

/* ---- clients in child processes ---------------------------------------- */

struct client {
	const char *req;	/* bytes to send; NULL sends nothing */
	size_t len;
	bool half_close;	/* shutdown(SHUT_WR) after sending */
	bool drop;		/* become nobody first */
	gid_t gid;		/* with drop: primary group */
	bool supplementary;	/* with drop: nogroup as supplementary group */
	bool close_early;	/* send, then close without reading */
	bool api;		/* use control_request() instead of raw I/O */
	bool busy;		/* fill every slot, then one more */
	void (*script)(int out);	/* runs as the whole client instead */
};

static void put(int out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(int out, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && write(out, buf, (size_t)n) < 0)
		_exit(99);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int raw_connect(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock_path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0)
		return -1;
	return fd;
}

/* Copies everything the server sends to out, then "|EOF after N ms". */
static void copy_reply(int fd, int out, int64_t t0)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) < 0)
			_exit(99);
	put(out, "|%s after %lld ms", n == 0 || errno == ECONNRESET ? "EOF" : "ERR",
	    (long long)(mono_ms() - t0));
}

static void become_nobody(const struct client *c)
{
	gid_t groups[1] = { NOGROUP };

	if (setgroups(c->supplementary ? 1 : 0, groups) != 0 || setgid(c->gid) != 0 ||
	    setuid(NOBODY) != 0)
		_exit(98);
}

static void client_main(const struct client *c, int out)
{
	int64_t t0 = mono_ms();
	int fd;

	if (c->script != NULL) {
		c->script(out);
		return;
	}
	if (c->drop)
		become_nobody(c);
	if (c->api) {
		struct control_reply reply;
		char err[512] = "";
		int r = control_request(sock_path, c->req, 5000, &reply, err, sizeof(err));
		if (r != CONTROL_CLIENT_OK) {
			put(out, "rc=%d err=%s", r, err);
			return;
		}
		put(out, "code=%d ", reply.code);
		if (reply.code != 0) {
			put(out, "msg=%s", reply.message);
		} else {
			/* The big body is checked here: a pipe is a poor place for it. */
			bool pattern = reply.body_len == BIG_BODY;
			for (size_t i = 0; pattern && i < reply.body_len; i++)
				pattern = reply.body[i] == (char)('a' + i % 26);
			put(out, "len=%zu%s body=%.200s", reply.body_len, pattern ? " pattern" : "",
			    reply.body);
		}
		control_reply_free(&reply);
		return;
	}
	if (c->busy) {
		int fds[CONTROL_MAX_CLIENTS];
		for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
			fds[i] = raw_connect();
			if (fds[i] < 0) {
				put(out, "connect %d: %s", i, strerror(errno));
				return;
			}
		}
		fd = raw_connect();
		if (fd < 0) {
			put(out, "connect extra: %s", strerror(errno));
			return;
		}
		copy_reply(fd, out, t0);
		put(out, "|");
		/* The ones holding a slot are still served. */
		if (send(fds[0], "ping\n", 5, MSG_NOSIGNAL) != 5)
			_exit(97);
		copy_reply(fds[0], out, t0);
		return;
	}
	fd = raw_connect();
	if (fd < 0) {
		put(out, "connect: %s", strerror(errno));
		return;
	}
	if (c->req != NULL && send(fd, c->req, c->len, MSG_NOSIGNAL) != (ssize_t)c->len) {
		put(out, "send: %s", strerror(errno));
		return;
	}
	if (c->half_close)
		shutdown(fd, SHUT_WR);
	if (c->close_early) {
		close(fd);
		put(out, "closed");
		return;
	}
	copy_reply(fd, out, t0);
}

/* Runs the client in a child while serving here; returns what it reported
 * (malloc'd).  Fails the test if the exchange takes over 10 s. */
static char *exchange(const struct client *c)
{
	int p[2];
	pid_t pid;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int64_t deadline = mono_ms() + 10000;
	int status;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		client_main(c, p[1]);
		_exit(0);
	}
	close(p[1]);
	for (;;) {
		struct pollfd fds[64];
		size_t n;
		int timeout;

		ck_assert_msg(mono_ms() < deadline, "exchange hangs");
		fds[0] = (struct pollfd){ .fd = p[0], .events = POLLIN };
		n = 1 + control_pollfds(srv, fds + 1, 63);
		timeout = control_timeout_ms(srv);
		if (timeout < 0 || timeout > 100)
			timeout = 100;
		if (poll(fds, n, timeout) < 0)
			ck_assert_int_eq(errno, EINTR);
		if (fds[0].revents) {
			if (len + 4096 > cap) {
				cap = cap ? cap * 2 : 8192;
				buf = realloc(buf, cap);
				ck_assert_ptr_nonnull(buf);
			}
			ssize_t got = read(p[0], buf + len, cap - len - 1);
			if (got <= 0)
				break;
			len += (size_t)got;
		}
		control_handle(srv, fds + 1, n - 1);
	}
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "client child failed (status %d)", status);
	if (buf == NULL)
		buf = strdup("");
	else
		buf[len] = '\0';
	return buf;
}

static char *raw(const char *req, size_t len)
{
	struct client c = { .req = req, .len = len };

	return exchange(&c);
}

static void expect_raw(const char *req, size_t len, const char *want_prefix)
{
	char *got = raw(req, len);

	ck_assert_msg(strncmp(got, want_prefix, strlen(want_prefix)) == 0,
		      "request '%.40s': got '%.200s', want '%s...'", req, got, want_prefix);
	free(got);
}

static char *api(const char *command, bool drop, gid_t gid, bool supplementary)
{
	struct client c = { .req = command, .api = true, .drop = drop, .gid = gid,
			    .supplementary = supplementary };

	return exchange(&c);
}

static void expect_api(const char *command, const char *want)
{
	char *got = api(command, false, 0, false);

	ck_assert_msg(strstr(got, want) != NULL, "'%s': got '%.300s', want '%s'", command, got,
		      want);
	free(got);
}

/* ---- dispatch ---------------------------------------------------------- */

START_TEST(every_command_dispatched)
{
	srv = open_server(NULL);
	expect_raw("ping\n", 5, "OK\npong\n|EOF");
	expect_raw("status\n", 7, "OK\n{\"state\": \"idle\"}\n|EOF");
	expect_raw("metrics\n", 8, "OK\nmab_runs_total 3\n|EOF");
	expect_raw("run\n", 4, "OK\n{\"run_id\": \"r1\", \"coalesced\": false}\n|EOF");
	expect_raw("cancel\n", 7, "ERROR 409 no backup run is in progress\n|EOF");
	ck_assert_int_eq(calls.status, 1);
	ck_assert_int_eq(calls.metrics, 1);
	ck_assert_int_eq(calls.run, 1);
	ck_assert_int_eq(calls.cancel, 1);
	/* Through the client library too. */
	expect_api("ping", "code=0 len=5 body=pong");
	expect_api("run", "\"run_id\": \"r1\"");
	expect_api("cancel", "code=409 msg=no backup run is in progress");
}
END_TEST

START_TEST(handler_failure_is_500_on_one_line)
{
	srv = open_server(NULL);
	calls.status_fails = true;
	expect_raw("status\n", 7, "ERROR 500 state is?broken\n|EOF");
}
END_TEST

START_TEST(missing_handler_is_500)
{
	struct control_handlers none = { 0 };
	char err[256];

	srv = control_open(sock_path, NULL, geteuid(), &none, err, sizeof(err));
	ck_assert_msg(srv != NULL, "%s", err);
	expect_raw("status\n", 7, "ERROR 500 ");
	expect_raw("run\n", 4, "ERROR 500 ");
	expect_raw("ping\n", 5, "OK\npong\n");
}
END_TEST

/* ---- garbage ----------------------------------------------------------- */

START_TEST(garbage_is_400)
{
	char big[1000], line256[CONTROL_REQUEST_MAX], line257[CONTROL_REQUEST_MAX + 1];

	srv = open_server(NULL);
	expect_raw("\x01\xff\x00garbage\n", 11, "ERROR 400 request is not printable ASCII\n|EOF");
	expect_raw("\n", 1, "ERROR 400 empty request\n|EOF");
	expect_raw("ping\nping\n", 10, "ERROR 400 more than one line\n|EOF");
	expect_raw("reboot\n", 7, "ERROR 400 unknown command 'reboot'\n|EOF");
	expect_raw("STATUS\n", 7, "ERROR 400 unknown command 'STATUS'\n|EOF");
	expect_raw("status now\n", 11, "ERROR 400 'status' takes no arguments\n|EOF");
	expect_raw("run --force\n", 12, "ERROR 400 'run' takes no arguments\n|EOF");
	expect_raw("status\r\n", 8, "ERROR 400 request is not printable ASCII\n|EOF");
	expect_raw(" status\n", 8, "ERROR 400 unknown command ''\n|EOF");

	/* No newline, then the client says it is done. */
	struct client c = { .req = "status", .len = 6, .half_close = true };
	char *got = exchange(&c);
	ck_assert_msg(strncmp(got, "ERROR 400 request does not end with a newline\n|EOF", 50) == 0,
		      "got '%s'", got);
	free(got);

	/* The longest request is CONTROL_REQUEST_MAX bytes with its newline. */
	memset(line256, 'x', sizeof(line256));
	line256[sizeof(line256) - 1] = '\n';
	expect_raw(line256, sizeof(line256), "ERROR 400 unknown command 'xxxx");
	memset(line257, 'x', sizeof(line257));
	line257[sizeof(line257) - 1] = '\n';
	expect_raw(line257, sizeof(line257), "ERROR 400 request too long\n|EOF");
	/* Too long without any newline: answered without waiting for one. */
	memset(big, 'y', sizeof(big));
	expect_raw(big, sizeof(big), "ERROR 400 request too long\n|EOF");
	expect_raw(big, CONTROL_REQUEST_MAX, "ERROR 400 request too long\n|EOF");

	/* None of it reached a handler, and the server still works. */
	ck_assert_int_eq(calls.status + calls.run + calls.cancel + calls.metrics, 0);
	expect_raw("ping\n", 5, "OK\npong\n|EOF");
}
END_TEST

START_TEST(silent_client_is_closed)
{
	struct client silent = { 0 };
	struct client partial = { .req = "sta", .len = 3 };
	long long ms;
	char *got;

	srv = open_server(NULL);
	control_set_timeout_ms(srv, 300);
	got = exchange(&silent);
	ck_assert_msg(sscanf(got, "|EOF after %lld ms", &ms) == 1, "got '%s'", got);
	ck_assert_msg(ms >= 250 && ms < 3000, "closed after %lld ms", ms);
	free(got);
	got = exchange(&partial);
	ck_assert_msg(sscanf(got, "|EOF after %lld ms", &ms) == 1, "got '%s'", got);
	ck_assert_msg(ms >= 250 && ms < 3000, "closed after %lld ms", ms);
	free(got);
	ck_assert_int_eq(control_timeout_ms(srv), -1);
}
END_TEST

START_TEST(large_body_arrives_whole)
{
	srv = open_server(NULL);
	calls.status_size = BIG_BODY;
	expect_api("status", "code=0 len=1048576 pattern body=abcdefghijklmnopqrstuvwxyzabc");
}
END_TEST

START_TEST(early_disconnect_is_dropped)
{
	struct client c = { .req = "status\n", .len = 7, .close_early = true };
	char *got;

	/* SIGPIPE left at its default: a plain write would kill us here. */
	signal(SIGPIPE, SIG_DFL);
	srv = open_server(NULL);
	calls.status_size = 4 * BIG_BODY;
	got = exchange(&c);
	ck_assert_str_eq(got, "closed");
	free(got);
	/* Whatever is left of that reply goes nowhere; serve until it is gone. */
	for (int i = 0; i < 50 && control_timeout_ms(srv) >= 0; i++) {
		struct pollfd fds[8];
		size_t n = control_pollfds(srv, fds, 8);
		poll(fds, n, 20);
		control_handle(srv, fds, n);
	}
	ck_assert_int_eq(control_timeout_ms(srv), -1);
	calls.status_size = 0;
	expect_raw("ping\n", 5, "OK\npong\n|EOF");
}
END_TEST

START_TEST(busy_beyond_max_clients)
{
	struct client c = { .busy = true };
	char *got;

	srv = open_server(NULL);
	got = exchange(&c);
	ck_assert_msg(strncmp(got, "ERROR 500 busy: every connection is taken by root or the "
			      "daemon's user\n|EOF", 73) == 0, "got '%s'", got);
	ck_assert_msg(strstr(got, "ms|OK\npong\n|EOF") != NULL, "got '%s'", got);
	free(got);
}
END_TEST

/* ---- permissions ------------------------------------------------------- */

static void require_root(void)
{
	if (geteuid() != 0)
		fprintf(stderr, "check_control: not root, permission tests pass trivially\n");
}

START_TEST(socket_and_directory_modes)
{
	struct stat st;
	char err[256];

	require_root();
	if (geteuid() != 0)
		return;
	snprintf(sock_path, sizeof(sock_path), "%s/run/control.sock", tmpdir);
	srv = open_server("nogroup");
	ck_assert_int_eq(stat(sock_path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0660);
	ck_assert_int_eq(st.st_gid, NOGROUP);
	snprintf(err, sizeof(err), "%s/run", tmpdir);
	ck_assert_int_eq(stat(err, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0770);
	ck_assert_int_eq(st.st_gid, NOGROUP);
	ck_assert_int_eq(st.st_uid, 0);
	/* The group reaches it through the directory; others do not. */
	char *got = api("status", true, NOGROUP, false);
	ck_assert_msg(strncmp(got, "code=0", 6) == 0, "got '%s'", got);
	free(got);
	got = api("status", true, 12345, false);
	ck_assert_msg(strstr(got, "rc=3 err=permission denied on") != NULL &&
		      strstr(got, "(are you in the control group?)") != NULL, "got '%s'", got);
	free(got);
}
END_TEST

START_TEST(unknown_group_refused)
{
	char err[256] = "";

	srv = control_open(sock_path, "no-such-group-here", geteuid(), &stubs, err, sizeof(err));
	ck_assert_ptr_null(srv);
	ck_assert_msg(strstr(err, "unknown group 'no-such-group-here'") != NULL, "%s", err);
}
END_TEST

/* Opens the socket to everyone, so that the permission table alone decides. */
static void open_to_all(void)
{
	ck_assert_int_eq(chmod(sock_path, 0666), 0);
}

static void expect_as_nobody(const char *command, gid_t gid, bool supplementary,
			     const char *want)
{
	char *got = api(command, true, gid, supplementary);

	ck_assert_msg(strstr(got, want) != NULL, "%s as nobody (gid %u%s): got '%s', want '%s'",
		      command, (unsigned)gid, supplementary ? " +nogroup" : "", got, want);
	free(got);
}

START_TEST(permission_table_group_member)
{
	require_root();
	if (geteuid() != 0)
		return;
	srv = open_server("nogroup");
	open_to_all();
	/* Primary group nogroup. */
	expect_as_nobody("status", NOGROUP, false, "code=0 ");
	expect_as_nobody("metrics", NOGROUP, false, "code=0 ");
	expect_as_nobody("ping", NOGROUP, false, "code=0 ");
	expect_as_nobody("run", NOGROUP, false,
			 "code=403 msg='run' is not permitted for uid 65534");
	expect_as_nobody("cancel", NOGROUP, false,
			 "code=403 msg='cancel' is not permitted for uid 65534");
	/* nogroup only as a supplementary group: read from /proc. */
	expect_as_nobody("status", 12345, true, "code=0 ");
	expect_as_nobody("run", 12345, true, "code=403 ");
	/* Not a member at all. */
	expect_as_nobody("status", 12345, false,
			 "code=403 msg='status' is not permitted for uid 65534: not a member "
			 "of group 'nogroup'");
	ck_assert_int_eq(calls.run, 0);
	ck_assert_int_eq(calls.cancel, 0);
	ck_assert_int_eq(calls.status, 2);
	/* Root may do everything. */
	expect_api("run", "code=0 ");
}
END_TEST

START_TEST(permission_table_no_group)
{
	require_root();
	if (geteuid() != 0)
		return;
	srv = open_server(NULL);
	open_to_all();
	expect_as_nobody("status", NOGROUP, false,
			 "code=403 msg='status' is not permitted for uid 65534: no [control] "
			 "group is configured");
	expect_as_nobody("run", NOGROUP, false, "code=403 msg='run' is not permitted for uid "
			 "65534");
	ck_assert_int_eq(calls.status + calls.run, 0);
}
END_TEST

/* ---- fair shares of the slots ------------------------------------------- */

/* Scripts for a client child that is root: SO_PEERCRED takes the effective
 * ids at connect(), so one process can hold connections of several users
 * by switching its effective uid (and gid: nogroup, the control group)
 * around each connect. */
static int connect_as(uid_t uid)
{
	int fd;

	if (uid != 0 && (setegid(NOGROUP) != 0 || seteuid(uid) != 0))
		_exit(96);
	fd = raw_connect();
	if (uid != 0 && (seteuid(0) != 0 || setegid(0) != 0))
		_exit(96);
	if (fd < 0)
		_exit(95);
	return fd;
}

/* What the server sent on fd within ms ("" if nothing), "|EOF" appended if
 * it closed the connection. */
static void peek_reply(int fd, int ms, char *out, size_t len)
{
	size_t used = 0;
	int64_t deadline = mono_ms() + ms;

	out[0] = '\0';
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - mono_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return;
		n = recv(fd, out + used, len - 1 - used, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			snprintf(out + used, len - used, "|EOF");
			return;
		}
		if (n < 0)
			return;
		used += (size_t)n;
		out[used] = '\0';
		if (used + 1 >= len)
			return;
		/* The rest comes at once: wait a little more for the EOF. */
		deadline = mono_ms() + 200;
	}
}

/* Sends line on fd and reports the whole reply as "name=<reply>;". */
static void ask(int out, const char *name, int fd, const char *line)
{
	char reply[512];

	if (send(fd, line, strlen(line), MSG_NOSIGNAL) != (ssize_t)strlen(line)) {
		put(out, "%s=send failed: %s;", name, strerror(errno));
		return;
	}
	peek_reply(fd, 3000, reply, sizeof(reply));
	put(out, "%s=%s;", name, reply);
}

static void report(int out, const char *name, int fd, int ms)
{
	char reply[512];

	peek_reply(fd, ms, reply, sizeof(reply));
	put(out, "%s=%s;", name, reply);
}

#define HOG 40001

/* The case from the field: a member of the control group holds 40 idle
 * connections; root's run and cancel must still be answered, by their
 * handlers, not with "busy". */
static void script_member_hogs(int out)
{
	int hog[40], held = 0, refused = 0;
	char reply[512], first_refusal[256] = "";

	for (int i = 0; i < 40; i++)
		hog[i] = connect_as(NOBODY);
	/* Root asks while they are all there (the server takes them in the
	 * order they came, so they are accepted or refused by then). */
	for (int i = 0; i < 6; i++) {
		struct control_reply r;
		char err[256] = "";
		int64_t t0 = mono_ms();
		const char *cmd = i % 2 ? "cancel" : "run";
		int rc = control_request(sock_path, cmd, 5000, &r, err, sizeof(err));

		put(out, "%s:%d:%d:%lld:%s;", cmd, rc, rc == CONTROL_CLIENT_OK ? r.code : -1,
		    (long long)(mono_ms() - t0), rc == CONTROL_CLIENT_OK && r.message ?
		    r.message : err);
		if (rc == CONTROL_CLIENT_OK)
			control_reply_free(&r);
	}
	/* A refusal was sent at once; a held connection has nothing. */
	for (int i = 0; i < 40; i++) {
		peek_reply(hog[i], 200, reply, sizeof(reply));
		if (reply[0] == '\0') {
			held++;
		} else if (strncmp(reply, "ERROR 500 busy: ", 16) == 0) {
			refused++;
			if (first_refusal[0] == '\0')
				snprintf(first_refusal, sizeof(first_refusal), "%s", reply);
		}
	}
	put(out, "held=%d refused=%d first=%s;", held, refused, first_refusal);
	/* The member's own held connections still work for it. */
	ask(out, "member", hog[0], "status\n");
	for (int i = 0; i < 40; i++)
		close(hog[i]);
}

START_TEST(member_cannot_starve_root)
{
	struct client c = { .script = script_member_hogs };
	char *got, *p;
	int held, refused, runs = 0, cancels = 0;

	require_root();
	if (geteuid() != 0)
		return;
	srv = open_server("nogroup");
	open_to_all();
	got = exchange(&c);
	p = strstr(got, "held=");
	ck_assert_msg(p != NULL && sscanf(p, "held=%d refused=%d", &held, &refused) == 2, "%s",
		      got);
	ck_assert_msg(held == CONTROL_MAX_PER_UID && refused == 40 - CONTROL_MAX_PER_UID,
		      "a member got %d connections, %d refused: %s", held, refused, got);
	ck_assert_msg(strstr(got, "first=ERROR 500 busy: uid 65534 has 4 connections open "
			     "already (at most 4 per user)\n|EOF;") != NULL, "%s", got);
	for (p = got; (p = strstr(p, "run:")) != NULL; p++) {
		long long ms;
		int rc, code;
		ck_assert_msg(sscanf(p, "run:%d:%d:%lld:", &rc, &code, &ms) == 3, "%s", p);
		ck_assert_msg(rc == CONTROL_CLIENT_OK && code == 0 && ms < 1000, "run: %s", p);
		runs++;
	}
	for (p = got; (p = strstr(p, "cancel:")) != NULL; p++) {
		long long ms;
		int rc, code;
		ck_assert_msg(sscanf(p, "cancel:%d:%d:%lld:", &rc, &code, &ms) == 3, "%s", p);
		/* 409 is the stub's answer: nothing to cancel. */
		ck_assert_msg(rc == CONTROL_CLIENT_OK && code == 409 && ms < 1000, "cancel: %s", p);
		cancels++;
	}
	ck_assert_int_eq(runs, 3);
	ck_assert_int_eq(cancels, 3);
	ck_assert_int_eq(calls.run, 3);
	ck_assert_int_eq(calls.cancel, 3);
	ck_assert_msg(strstr(got, "member=OK\n{\"state\": \"idle\"}\n|EOF;") != NULL, "%s", got);
	free(got);
}
END_TEST

/* Every rule in one sequence, with users HOG.. (not root, in nogroup):
 * per-uid limit, the share of other users, the reserved slots, eviction
 * for root, and eviction of an idle connection for another user. */
static void script_fair_shares(int out)
{
	int conn[6][CONTROL_MAX_PER_UID], extra, root[CONTROL_RESERVED_CLIENTS], fd;
	int share = (CONTROL_MAX_CLIENTS - CONTROL_RESERVED_CLIENTS) / CONTROL_MAX_PER_UID;

	/* 6 users x 4: every slot other users may have. */
	for (int u = 0; u < share; u++)
		for (int k = 0; k < CONTROL_MAX_PER_UID; k++)
			conn[u][k] = connect_as(HOG + u);
	/* A fifth of one user's; then a seventh user, while nothing is idle
	 * for long: both refused. */
	extra = connect_as(HOG);
	report(out, "fifth", extra, 2000);
	close(extra);
	extra = connect_as(HOG + share);
	report(out, "seventh", extra, 2000);
	close(extra);
	/* The reserved slots are root's. */
	for (int k = 0; k < CONTROL_RESERVED_CLIENTS; k++)
		root[k] = connect_as(0);
	/* Every slot is taken now: root's request evicts the oldest
	 * connection of another user, and is answered. */
	fd = connect_as(0);
	ask(out, "root1", fd, "ping\n");
	close(fd);
	report(out, "victim1", conn[0][0], 2000);
	report(out, "spared1", conn[0][1], 100);
	/* The slot freed by the eviction: another user may have it. */
	extra = connect_as(HOG + share);
	report(out, "seventh_again", extra, 300);
	/* After CONTROL_IDLE_EVICT_MS, connections that never asked anything
	 * make room for another user too; the oldest goes first. */
	usleep((CONTROL_IDLE_EVICT_MS + 200) * 1000);
	fd = connect_as(HOG + share + 1);
	ask(out, "eighth", fd, "ping\n");
	close(fd);
	report(out, "victim2", conn[0][1], 2000);
	report(out, "spared2", conn[0][2], 100);
	for (int u = 0; u < share; u++)
		for (int k = 0; k < CONTROL_MAX_PER_UID; k++)
			close(conn[u][k]);
	for (int k = 0; k < CONTROL_RESERVED_CLIENTS; k++)
		close(root[k]);
	close(extra);
}

START_TEST(fair_shares_and_eviction)
{
	struct client c = { .script = script_fair_shares };
	char *got;

	require_root();
	if (geteuid() != 0)
		return;
	srv = open_server("nogroup");
	open_to_all();
	got = exchange(&c);
	ck_assert_msg(strstr(got, "fifth=ERROR 500 busy: uid 40001 has 4 connections open "
			     "already (at most 4 per user)\n|EOF;") != NULL, "%s", got);
	ck_assert_msg(strstr(got, "seventh=ERROR 500 busy: too many connections from users "
			     "other than root and the daemon's\n|EOF;") != NULL, "%s", got);
	ck_assert_msg(strstr(got, "root1=OK\npong\n|EOF;") != NULL, "%s", got);
	ck_assert_msg(strstr(got, "victim1=ERROR 500 busy: idle connection closed to make room "
			     "for uid 0\n|EOF;") != NULL, "%s", got);
	ck_assert_msg(strstr(got, "spared1=;") != NULL, "%s", got);
	ck_assert_msg(strstr(got, "seventh_again=;") != NULL, "%s", got);
	ck_assert_msg(strstr(got, "eighth=OK\npong\n|EOF;") != NULL, "%s", got);
	ck_assert_msg(strstr(got, "victim2=ERROR 500 busy: idle connection closed to make room "
			     "for uid 40008\n|EOF;") != NULL, "%s", got);
	ck_assert_msg(strstr(got, "spared2=;") != NULL, "%s", got);
	free(got);
}
END_TEST

/* ---- the socket file --------------------------------------------------- */

static void make_stale_socket(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	close(fd);
}

START_TEST(stale_socket_replaced)
{
	make_stale_socket(sock_path);
	srv = open_server(NULL);
	expect_raw("ping\n", 5, "OK\npong\n|EOF");
}
END_TEST

START_TEST(live_socket_refused)
{
	char err[512] = "", want[256];
	struct control_server *second;

	srv = open_server(NULL);
	second = control_open(sock_path, NULL, geteuid(), &stubs, err, sizeof(err));
	ck_assert_ptr_null(second);
	snprintf(want, sizeof(want), "another mongo-azure-backupd is already listening on %s",
		 sock_path);
	ck_assert_str_eq(err, want);
	/* The first one is untouched. */
	expect_raw("ping\n", 5, "OK\npong\n|EOF");
}
END_TEST

START_TEST(non_socket_refused)
{
	char err[512] = "";
	int fd = open(sock_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	close(fd);
	srv = control_open(sock_path, NULL, geteuid(), &stubs, err, sizeof(err));
	ck_assert_ptr_null(srv);
	ck_assert_msg(strstr(err, "is not a socket") != NULL, "%s", err);
	ck_assert_int_eq(access(sock_path, F_OK), 0);
}
END_TEST

START_TEST(close_unlinks)
{
	srv = open_server(NULL);
	ck_assert_int_eq(access(sock_path, F_OK), 0);
	control_close(srv);
	srv = NULL;
	ck_assert_int_eq(access(sock_path, F_OK), -1);
}
END_TEST

/* ---- the client's errors ----------------------------------------------- */

START_TEST(client_missing_socket)
{
	struct control_reply reply;
	char err[512] = "";
	int fd;

	fd = control_client_connect(sock_path, 1000, err, sizeof(err));
	ck_assert_int_eq(fd, -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_msg(strstr(err, "no such socket") != NULL &&
		      strstr(err, "is mongo-azure-backupd running?") != NULL, "%s", err);
	ck_assert_int_eq(control_request(sock_path, "ping", 1000, &reply, err, sizeof(err)),
			 CONTROL_CLIENT_UNREACHABLE);

	make_stale_socket(sock_path);
	fd = control_client_connect(sock_path, 1000, err, sizeof(err));
	ck_assert_int_eq(fd, -1);
	ck_assert_int_eq(errno, ECONNREFUSED);
	ck_assert_msg(strstr(err, "is mongo-azure-backupd running?") != NULL, "%s", err);
}
END_TEST

START_TEST(client_parses_replies)
{
	struct control_reply r;
	char err[256];

	ck_assert_int_eq(control_parse_reply("OK\nbody\n", 8, &r, err, sizeof(err)), 0);
	ck_assert_int_eq(r.code, 0);
	ck_assert_str_eq(r.body, "body\n");
	ck_assert_uint_eq(r.body_len, 5);
	control_reply_free(&r);
	ck_assert_int_eq(control_parse_reply("OK\n", 3, &r, err, sizeof(err)), 0);
	ck_assert_str_eq(r.body, "");
	control_reply_free(&r);
	ck_assert_int_eq(control_parse_reply("ERROR 403 'run' is not permitted\n", 33, &r, err,
					     sizeof(err)), 0);
	ck_assert_int_eq(r.code, 403);
	ck_assert_str_eq(r.message, "'run' is not permitted");
	ck_assert_ptr_null(r.body);
	control_reply_free(&r);
	ck_assert_int_eq(control_parse_reply("ERROR 500\n", 10, &r, err, sizeof(err)), 0);
	ck_assert_int_eq(r.code, 500);
	ck_assert_str_eq(r.message, "");
	control_reply_free(&r);

	ck_assert_int_eq(control_parse_reply("OK", 2, &r, err, sizeof(err)), -1);
	ck_assert_int_eq(control_parse_reply("HELLO\n", 6, &r, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "'HELLO'") != NULL, "%s", err);
	ck_assert_int_eq(control_parse_reply("ERROR 4x3 m\n", 12, &r, err, sizeof(err)), -1);
	ck_assert_int_eq(control_parse_reply("ERROR 4033 m\n", 13, &r, err, sizeof(err)), -1);
	ck_assert_int_eq(control_parse_reply("OKAY\n", 5, &r, err, sizeof(err)), -1);
}
END_TEST

/* ---- --from ------------------------------------------------------------ */

static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
			 .tm_hour = h, .tm_min = mi, .tm_sec = s };

	return (int64_t)timegm(&tm);
}

static int64_t instant(const char *text, const char *tz)
{
	struct iso8601 t;
	char err[256] = "";
	int64_t when = 0;

	ck_assert_msg(iso8601_parse(text, &t, err, sizeof(err)) == 0, "'%s': %s", text, err);
	ck_assert_msg(iso8601_instant(&t, tz, &when, err, sizeof(err)) == 0, "%s", err);
	return when;
}

static void expect_bad(const char *text, const char *why)
{
	struct iso8601 t;
	char err[256] = "";

	ck_assert_msg(iso8601_parse(text, &t, err, sizeof(err)) == -1, "'%s' accepted", text);
	ck_assert_msg(strstr(err, why) != NULL, "'%s': '%s' lacks '%s'", text, err, why);
}

START_TEST(iso_parse_forms)
{
	ck_assert_int_eq(instant("2026-03-08T01:30:00Z", "UTC"), utc(2026, 3, 8, 1, 30, 0));
	ck_assert_int_eq(instant("2026-03-08T01:30:00", "UTC"), utc(2026, 3, 8, 1, 30, 0));
	ck_assert_int_eq(instant("2026-03-08T01:30:00+01:00", "America/New_York"),
			 utc(2026, 3, 8, 0, 30, 0));
	ck_assert_int_eq(instant("2026-03-08T01:30:00-05:30", "UTC"), utc(2026, 3, 8, 7, 0, 0));
	ck_assert_int_eq(instant("2024-02-29T23:59:59Z", "UTC"), utc(2024, 2, 29, 23, 59, 59));
	ck_assert_int_eq(instant("1969-12-31T23:59:59Z", "UTC"), -1);
}
END_TEST

START_TEST(iso_parse_local_time)
{
	/* EST, -05:00. */
	ck_assert_int_eq(instant("2026-03-08T01:30:00", "America/New_York"),
			 utc(2026, 3, 8, 6, 30, 0));
	/* Skipped (02:00 -> 03:00): read with the offset before the jump. */
	ck_assert_int_eq(instant("2026-03-08T02:30:00", "America/New_York"),
			 utc(2026, 3, 8, 7, 30, 0));
	/* Shown twice (02:00 EDT -> 01:00 EST): the first, EDT. */
	ck_assert_int_eq(instant("2026-11-01T01:30:00", "America/New_York"),
			 utc(2026, 11, 1, 5, 30, 0));
	ck_assert_int_eq(instant("2026-07-01T12:00:00", "Europe/Berlin"),
			 utc(2026, 7, 1, 10, 0, 0));
}
END_TEST

START_TEST(iso_parse_rejects)
{
	struct iso8601 t;
	char err[256];

	expect_bad("", "expected YYYY-MM-DDTHH:MM:SS");
	expect_bad("2026-03-08 01:30:00", "expected");
	expect_bad("2026-3-8T01:30:00", "expected");
	expect_bad("2026-03-08T01:30", "expected");
	expect_bad("2026-03-08T01:30:00.5Z", "expected");
	expect_bad("2026-03-08T01:30:00z", "expected");
	expect_bad("2026-03-08T01:30:00+0100", "expected");
	expect_bad("2026-03-08T01:30:00+1:00", "expected");
	expect_bad("2026-03-08T01:30:00Z ", "expected");
	expect_bad("+2026-03-08T01:30:00", "expected");
	expect_bad("2026-02-29T00:00:00", "no such day");
	expect_bad("2026-04-31T00:00:00", "no such day");
	expect_bad("2026-13-01T00:00:00", "month");
	expect_bad("2026-00-01T00:00:00", "month");
	expect_bad("0000-01-01T00:00:00", "year");
	expect_bad("2026-03-08T24:00:00", "hour");
	expect_bad("2026-03-08T23:60:00", "minute");
	expect_bad("2026-03-08T23:59:60", "second");
	expect_bad("2026-03-08T01:30:00+24:00", "offset");
	ck_assert_int_eq(iso8601_parse("2026-03-08T01:30:00+23:59", &t, err, sizeof(err)), 0);
	ck_assert_int_eq(t.offset, 23 * 3600 + 59 * 60);
}
END_TEST

START_TEST(iso_format)
{
	char buf[64];

	iso8601_format(utc(2026, 11, 28, 3, 0, 0), 3600, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2026-11-28T04:00:00+01:00");
	iso8601_format(utc(2026, 11, 28, 3, 0, 0), 0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2026-11-28T03:00:00+00:00");
	iso8601_format(utc(2026, 3, 8, 7, 0, 0), -5 * 3600, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2026-03-08T02:00:00-05:00");
	iso8601_format(utc(2026, 1, 1, 0, 0, 0), -(9 * 3600 + 30 * 60), buf, sizeof(buf));
	ck_assert_str_eq(buf, "2025-12-31T14:30:00-09:30");
	iso8601_format(-1, 0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1969-12-31T23:59:59+00:00");
	/* Local mean time: Amsterdam 1900, +00:19:32. */
	iso8601_format(utc(1900, 1, 1, 0, 0, 0), 19 * 60 + 32, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1900-01-01T00:19:32+00:19:32");
	iso8601_format(utc(9999, 12, 31, 23, 59, 59), 0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "9999-12-31T23:59:59+00:00");
}
END_TEST

static Suite *control_suite(void)
{
	Suite *s = suite_create("control");
	TCase *proto = tcase_create("protocol");
	TCase *perm = tcase_create("permissions");
	TCase *file = tcase_create("socket file");
	TCase *client = tcase_create("client");
	TCase *iso = tcase_create("iso8601");

	tcase_add_checked_fixture(proto, setup, teardown);
	tcase_set_timeout(proto, 30);
	tcase_add_test(proto, every_command_dispatched);
	tcase_add_test(proto, handler_failure_is_500_on_one_line);
	tcase_add_test(proto, missing_handler_is_500);
	tcase_add_test(proto, garbage_is_400);
	tcase_add_test(proto, silent_client_is_closed);
	tcase_add_test(proto, large_body_arrives_whole);
	tcase_add_test(proto, early_disconnect_is_dropped);
	tcase_add_test(proto, busy_beyond_max_clients);
	suite_add_tcase(s, proto);

	tcase_add_checked_fixture(perm, setup, teardown);
	tcase_set_timeout(perm, 30);
	tcase_add_test(perm, socket_and_directory_modes);
	tcase_add_test(perm, unknown_group_refused);
	tcase_add_test(perm, permission_table_group_member);
	tcase_add_test(perm, permission_table_no_group);
	tcase_add_test(perm, member_cannot_starve_root);
	tcase_add_test(perm, fair_shares_and_eviction);
	suite_add_tcase(s, perm);

	tcase_add_checked_fixture(file, setup, teardown);
	tcase_add_test(file, stale_socket_replaced);
	tcase_add_test(file, live_socket_refused);
	tcase_add_test(file, non_socket_refused);
	tcase_add_test(file, close_unlinks);
	suite_add_tcase(s, file);

	tcase_add_checked_fixture(client, setup, teardown);
	tcase_add_test(client, client_missing_socket);
	tcase_add_test(client, client_parses_replies);
	suite_add_tcase(s, client);

	tcase_add_test(iso, iso_parse_forms);
	tcase_add_test(iso, iso_parse_local_time);
	tcase_add_test(iso, iso_parse_rejects);
	tcase_add_test(iso, iso_format);
	suite_add_tcase(s, iso);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(control_suite());
	int failed;

	/* What the server logs (refusals, stale sockets) would clutter the report. */
	log_open("check_control", LOG_TARGET_STDERR, LOG_CRIT);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
