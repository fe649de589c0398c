/* control.c - the server side of the control socket (protocol in control.h).
 *
 * Everything here runs inside the supervisor's poll loop and never blocks:
 * the listening socket and every client are nonblocking, a request is read
 * into a fixed buffer, and the reply is queued and written as the socket
 * accepts it.  Each connection carries one request through a fixed order of
 * checks (length, one line, printable, known command, no arguments, the
 * permission table) before any handler sees it, as OpenSSH's monitor and
 * chrony's cmdmon do.  Peers are identified by SO_PEERCRED when they connect.
 *
 * The slots are shared fairly (limits in control.h): a member of the control
 * group may only read, but it could hold every slot with idle connections
 * and starve root's run and cancel; so other uids get a few slots each and
 * never the reserved ones, and a connection that sits idle while others
 * wait is the first to go.
 *
 * This file owns one request: its checks, the permission table and the
 * commands.  Connections are in control_conn.c, opening and closing the
 * socket in control_setup.c (control_int.h).
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "control_int.h"

typedef void (*command_fn)(struct control_server *srv, struct reply *r);

static void cmd_ping(struct control_server *srv, struct reply *r);
static void cmd_status(struct control_server *srv, struct reply *r);
static void cmd_metrics(struct control_server *srv, struct reply *r);
static void cmd_run(struct control_server *srv, struct reply *r);
static void cmd_cancel(struct control_server *srv, struct reply *r);

/* The permission table: a command not in it does not exist, and one that
 * is not read-only is for root and the daemon's own user only. */
static const struct command {
	const char *name;
	command_fn handler;
	bool read_only;
} commands[] = {
	{ "ping", cmd_ping, true },
	{ "status", cmd_status, true },
	{ "metrics", cmd_metrics, true },
	{ "run", cmd_run, false },
	{ "cancel", cmd_cancel, false },
};

int64_t control_now_ms(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail on Linux; a zero time only makes every
	 * deadline look expired, which is safe. */
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Messages go on one protocol line: no control bytes may reach the peer. */
static void make_printable(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}


void reply_error(struct reply *r, int code, const char *fmt, ...)
{
	va_list ap;

	free(r->body);
	r->body = NULL;
	r->code = code;
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
	make_printable(r->message);
}

/* ---- commands ---------------------------------------------------------- */

static void cmd_ping(struct control_server *srv, struct reply *r)
{
	(void)srv;
	r->body = strdup("pong\n");
	if (r->body == NULL)
		reply_error(r, 500, "out of memory");
}

static void body_or_error(struct reply *r, char *body, const char *what, const char *err)
{
	if (body != NULL) {
		r->body = body;
		return;
	}
	reply_error(r, 500, "%s", err[0] ? err : what);
}

static void cmd_status(struct control_server *srv, struct reply *r)
{
	char err[256] = "";

	if (srv->h.status_json == NULL) {
		reply_error(r, 500, "status is not available");
		return;
	}
	body_or_error(r, srv->h.status_json(srv->h.ctx, err, sizeof(err)),
		      "status is not available", err);
}

static void cmd_metrics(struct control_server *srv, struct reply *r)
{
	char err[256] = "";

	if (srv->h.metrics_text == NULL) {
		reply_error(r, 500, "metrics are not available");
		return;
	}
	body_or_error(r, srv->h.metrics_text(srv->h.ctx, err, sizeof(err)),
		      "metrics are not available", err);
}

/* run and cancel share their calling convention: 0, 409 or -1. */
static void call_action(struct reply *r, const char *name,
			int (*fn)(void *, char **, char *, size_t), void *ctx)
{
	char err[256] = "";
	char *body = NULL;
	int rc;

	if (fn == NULL) {
		reply_error(r, 500, "%s is not available", name);
		return;
	}
	rc = fn(ctx, &body, err, sizeof(err));
	if (rc == 0) {
		r->body = body != NULL ? body : strdup("");
		if (r->body == NULL)
			reply_error(r, 500, "out of memory");
		return;
	}
	free(body);
	if (rc == 409)
		reply_error(r, 409, "%s", err[0] ? err : "conflict");
	else
		reply_error(r, 500, "%s", err[0] ? err : "internal error");
}

static void cmd_run(struct control_server *srv, struct reply *r)
{
	call_action(r, "run", srv->h.run, srv->h.ctx);
}

static void cmd_cancel(struct control_server *srv, struct reply *r)
{
	call_action(r, "cancel", srv->h.cancel, srv->h.ctx);
}

/* ---- who may ask ------------------------------------------------------- */

/* Whether the line "Uid:\t<r>\t<e>..." names euid as effective uid: the pid
 * of SO_PEERCRED may have been reused since the peer connected, and another
 * user's process must not lend its groups. */
static bool status_uid_matches(const char *line, uid_t euid)
{
	unsigned long real, eff;

	if (sscanf(line + 4, "%lu %lu", &real, &eff) != 2)
		return false;
	return (uid_t)eff == euid;
}

static bool groups_line_has(const char *line, gid_t gid)
{
	const char *p = line + 7;

	for (;;) {
		char *end;
		unsigned long v;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p < '0' || *p > '9')
			return false;
		errno = 0;
		v = strtoul(p, &end, 10);
		if (errno != 0)
			return false;
		if ((gid_t)v == gid)
			return true;
		p = end;
	}
}

/* Supplementary groups of the peer, from /proc/PID/status.  A pid that is
 * gone (or not visible from our pid namespace) is simply not a member. */
static bool peer_in_group(const struct control_client *c, gid_t gid)
{
	char path[64];
	char *line = NULL;
	size_t cap = 0;
	bool uid_ok = false, member = false;
	FILE *fp;

	if (c->gid == gid)
		return true;
	if (c->pid <= 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)c->pid);
	fp = fopen(path, "re");
	if (fp == NULL)
		return false;
	while (getline(&line, &cap, fp) > 0) {
		if (strncmp(line, "Uid:", 4) == 0)
			uid_ok = status_uid_matches(line, c->uid);
		else if (strncmp(line, "Groups:", 7) == 0)
			member = groups_line_has(line, gid);
	}
	/* A read error half way (the process exited) proves nothing. */
	if (ferror(fp))
		member = false;
	free(line);
	fclose(fp);
	return uid_ok && member;
}

bool privileged(const struct control_server *srv, uid_t uid)
{
	return uid == 0 || uid == srv->service_uid || uid == geteuid();
}

/* 0 if the peer may run cmd, else the 403 reply is set. */
static int check_permission(struct control_server *srv, const struct control_client *c,
			    const struct command *cmd, struct reply *r)
{
	if (privileged(srv, c->uid))
		return 0;
	if (!cmd->read_only) {
		reply_error(r, 403, "'%s' is not permitted for uid %lu: only root and the "
			    "daemon's user may do that", cmd->name, (unsigned long)c->uid);
		return -1;
	}
	if (!srv->have_group) {
		reply_error(r, 403, "'%s' is not permitted for uid %lu: no [control] group "
			    "is configured", cmd->name, (unsigned long)c->uid);
		return -1;
	}
	if (peer_in_group(c, srv->gid))
		return 0;
	reply_error(r, 403, "'%s' is not permitted for uid %lu: not a member of group '%s'",
		    cmd->name, (unsigned long)c->uid, srv->group);
	return -1;
}

/* ---- one request ------------------------------------------------------- */

/* Checks the request in c->req in a fixed order and runs it: fills r. */
void process_request(struct control_server *srv, struct control_client *c,
		     struct reply *r)
{
	char *nl = memchr(c->req, '\n', c->req_len);
	const struct command *cmd = NULL;
	size_t line_len, word_len;

	if (nl == NULL || (size_t)(nl - c->req) + 1 > CONTROL_REQUEST_MAX) {
		if (c->req_len >= CONTROL_REQUEST_MAX || nl != NULL)
			reply_error(r, 400, "request too long");
		else
			reply_error(r, 400, "request does not end with a newline");
		return;
	}
	line_len = (size_t)(nl - c->req);
	if (line_len + 1 != c->req_len) {
		reply_error(r, 400, "more than one line");
		return;
	}
	if (line_len == 0) {
		reply_error(r, 400, "empty request");
		return;
	}
	for (size_t i = 0; i < line_len; i++) {
		unsigned char ch = (unsigned char)c->req[i];
		if (ch < 0x20 || ch >= 0x7f) {
			reply_error(r, 400, "request is not printable ASCII");
			return;
		}
	}
	*nl = '\0';
	word_len = strcspn(c->req, " ");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strlen(commands[i].name) == word_len &&
		    memcmp(commands[i].name, c->req, word_len) == 0) {
			cmd = &commands[i];
			break;
		}
	}
	if (cmd == NULL) {
		reply_error(r, 400, "unknown command '%.*s'", (int)(word_len > 32 ? 32 : word_len),
			    c->req);
		return;
	}
	if (word_len != line_len) {
		reply_error(r, 400, "'%s' takes no arguments", cmd->name);
		return;
	}
	if (check_permission(srv, c, cmd, r) != 0) {
		msg_notice("control: refused '%s' from uid %lu pid %ld", cmd->name,
			   (unsigned long)c->uid, (long)c->pid);
		return;
	}
	if (!cmd->read_only)
		msg_info("control: '%s' from uid %lu pid %ld", cmd->name,
			 (unsigned long)c->uid, (long)c->pid);
	cmd->handler(srv, r);
}
