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

/* How long to stop accepting after the process ran out of descriptors: the
 * listening socket stays readable, and polling it would spin. */
#define ACCEPT_PAUSE_MS 1000
/* Connections accepted per control_handle() call, so a flood cannot starve
 * the rest of the event loop. */
#define ACCEPT_BURST 64
/* Refusals and evictions are logged at most this often (with a count of
 * the ones in between): a peer that reconnects in a loop must not flood
 * the log. */
#define PRESSURE_LOG_MS 60000

enum client_phase { CLIENT_FREE, CLIENT_READING, CLIENT_WRITING };

struct control_client {
	enum client_phase phase;
	int fd;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	bool privileged;		/* root or the daemon's user */
	uint64_t serial;		/* order of acceptance: lower is older */
	int64_t accepted;		/* monotonic ms */
	int64_t deadline;		/* monotonic ms */
	/* One byte more than a request may have, to see that it is too long. */
	char req[CONTROL_REQUEST_MAX + 1];
	size_t req_len;
	char *out;
	size_t out_len, out_done;
};

struct control_server {
	int fd;
	char *path;
	dev_t dev;
	ino_t ino;
	uid_t service_uid;
	bool have_group;
	gid_t gid;
	char *group;
	int timeout_ms;
	int64_t accept_paused_until;	/* monotonic ms, 0 when accepting */
	uint64_t next_serial;
	int64_t pressure_logged_at;	/* monotonic ms, 0: never */
	unsigned long pressure_unlogged;
	struct control_handlers h;
	struct control_client clients[CONTROL_MAX_CLIENTS];
};

/* A reply under construction: either a whole "OK\n..." buffer or the text
 * of an ERROR line. */
struct reply {
	int code;			/* 0 for OK */
	char message[256];
	char *body;			/* malloc'd, OK only */
};

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

static int64_t now_ms(void)
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

static void reply_error(struct reply *r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reply_error(struct reply *r, int code, const char *fmt, ...)
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

static bool privileged(const struct control_server *srv, uid_t uid)
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
static void process_request(struct control_server *srv, struct control_client *c,
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

/* ---- connections ------------------------------------------------------- */

static void client_close(struct control_client *c)
{
	if (c->phase == CLIENT_FREE)
		return;
	if (close(c->fd) != 0 && errno != EINTR)
		msg_debug("control: close: %s", strerror(errno));
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->phase = CLIENT_FREE;
}

/* Sends what the socket takes now; closes the client when all is sent or
 * the peer went away. */
static void client_flush(struct control_server *srv, struct control_client *c)
{
	while (c->out_done < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_done, c->out_len - c->out_done,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* EPIPE, ECONNRESET: the peer left early; nothing to do. */
			msg_debug("control: peer pid %ld: %s", (long)c->pid, strerror(errno));
			client_close(c);
			return;
		}
		c->out_done += (size_t)n;
		/* A reader that keeps reading keeps its connection. */
		c->deadline = now_ms() + srv->timeout_ms;
	}
	client_close(c);
}

static void client_reply(struct control_server *srv, struct control_client *c,
			 struct reply *r)
{
	char line[sizeof(r->message) + 32];
	size_t body_len;
	int n;

	if (r->code == 0) {
		body_len = strlen(r->body);
		c->out = malloc(body_len + 3);
		if (c->out == NULL) {
			reply_error(r, 500, "out of memory");
		} else {
			memcpy(c->out, "OK\n", 3);
			memcpy(c->out + 3, r->body, body_len);
			c->out_len = body_len + 3;
		}
	}
	if (r->code != 0) {
		n = snprintf(line, sizeof(line), "ERROR %d %s\n", r->code, r->message);
		c->out = strdup(line);
		if (n < 0 || c->out == NULL) {
			client_close(c);
			return;
		}
		c->out_len = strlen(c->out);
	}
	free(r->body);
	r->body = NULL;
	c->out_done = 0;
	c->phase = CLIENT_WRITING;
	c->deadline = now_ms() + srv->timeout_ms;
	client_flush(srv, c);
}

static void client_read(struct control_server *srv, struct control_client *c)
{
	struct reply r = { 0 };
	bool eof = false;

	for (;;) {
		ssize_t n = recv(c->fd, c->req + c->req_len, sizeof(c->req) - c->req_len,
				 MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			msg_debug("control: peer pid %ld: %s", (long)c->pid, strerror(errno));
			client_close(c);
			return;
		}
		if (n == 0) {
			eof = true;
			break;
		}
		c->req_len += (size_t)n;
		if (memchr(c->req, '\n', c->req_len) != NULL || c->req_len >= CONTROL_REQUEST_MAX)
			break;
	}
	if (memchr(c->req, '\n', c->req_len) == NULL && c->req_len < CONTROL_REQUEST_MAX) {
		if (!eof)
			return;
		/* Gone without a word: nothing to answer. */
		if (c->req_len == 0) {
			client_close(c);
			return;
		}
	}
	process_request(srv, c, &r);
	client_reply(srv, c, &r);
}

/* "ERROR 500 busy: why" on a connection that is about to be closed.  A
 * fresh or idle socket's buffer holds this line; if not, the peer gets EOF,
 * which says as much. */
static void busy_reply(int fd, const char *why)
{
	char line[256];
	int n = snprintf(line, sizeof(line), "ERROR 500 busy: %s\n", why);

	if (n < 0 || (size_t)n >= sizeof(line))
		n = snprintf(line, sizeof(line), "ERROR 500 busy\n");
	if (n > 0 && send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		msg_debug("control: busy reply: %s", strerror(errno));
}

static void note_pressure(struct control_server *srv, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A refused or evicted connection: a notice now and then, debug always. */
static void note_pressure(struct control_server *srv, const char *fmt, ...)
{
	int64_t now = now_ms();
	char msg[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (srv->pressure_logged_at != 0 && now - srv->pressure_logged_at < PRESSURE_LOG_MS) {
		srv->pressure_unlogged++;
		msg_debug("control: %s", msg);
		return;
	}
	if (srv->pressure_unlogged > 0)
		msg_notice("control: %s (and %lu more refused or closed connections since the "
			   "last such message)", msg, srv->pressure_unlogged);
	else
		msg_notice("control: %s", msg);
	srv->pressure_logged_at = now;
	srv->pressure_unlogged = 0;
}

/* Closes c to give its slot to a newcomer, telling c why if it has not
 * been answered yet (a reply half sent is just cut). */
static void evict(struct control_server *srv, struct control_client *c, uid_t for_uid)
{
	char why[128];

	snprintf(why, sizeof(why), "idle connection closed to make room for uid %lu",
		 (unsigned long)for_uid);
	if (c->phase == CLIENT_READING)
		busy_reply(c->fd, why);
	note_pressure(srv, "closed a connection of uid %lu pid %ld (%s, %lld ms old) to make "
		      "room for uid %lu", (unsigned long)c->uid, (long)c->pid,
		      c->phase == CLIENT_READING ? "no request yet" : "reply not taken",
		      (long long)(now_ms() - c->accepted), (unsigned long)for_uid);
	client_close(c);
}

/* The connection to close for a newcomer when no slot is left: never a
 * privileged peer's.  For a privileged newcomer, the oldest connection of
 * another uid, one still waiting for its request before one being
 * answered; for another uid, only one that has been connected for
 * CONTROL_IDLE_EVICT_MS without sending its request, which no client that
 * means to ask anything does.  NULL if there is none. */
static struct control_client *eviction_victim(struct control_server *srv, bool privileged_peer)
{
	struct control_client *best = NULL;
	int64_t idle_before = now_ms() - CONTROL_IDLE_EVICT_MS;

	for (size_t k = 0; k < CONTROL_MAX_CLIENTS; k++) {
		struct control_client *c = &srv->clients[k];

		if (c->phase == CLIENT_FREE || c->privileged)
			continue;
		if (!privileged_peer && (c->phase != CLIENT_READING || c->accepted > idle_before))
			continue;
		if (best == NULL ||
		    (c->phase == CLIENT_READING && best->phase != CLIENT_READING) ||
		    (c->phase == best->phase && c->serial < best->serial))
			best = c;
	}
	return best;
}

/* A slot for a peer with this uid, or NULL with the reason in why. */
static struct control_client *admit(struct control_server *srv, uid_t uid, bool priv,
				    char *why, size_t whylen)
{
	struct control_client *slot = NULL, *victim;
	size_t same_uid = 0, unprivileged = 0;

	for (size_t k = 0; k < CONTROL_MAX_CLIENTS; k++) {
		struct control_client *c = &srv->clients[k];

		if (c->phase == CLIENT_FREE) {
			if (slot == NULL)
				slot = c;
			continue;
		}
		if (c->uid == uid)
			same_uid++;
		if (!c->privileged)
			unprivileged++;
	}
	if (!priv && same_uid >= CONTROL_MAX_PER_UID) {
		/* Its own connections are its problem: no eviction for it. */
		snprintf(why, whylen, "uid %lu has %zu connections open already (at most %d per "
			 "user)", (unsigned long)uid, same_uid, CONTROL_MAX_PER_UID);
		return NULL;
	}
	if (priv ? slot != NULL :
		   slot != NULL && unprivileged < CONTROL_MAX_CLIENTS - CONTROL_RESERVED_CLIENTS)
		return slot;
	victim = eviction_victim(srv, priv);
	if (victim != NULL) {
		evict(srv, victim, uid);
		return victim;
	}
	snprintf(why, whylen, "%s", priv ? "every connection is taken by root or the daemon's user" :
		 "too many connections from users other than root and the daemon's");
	return NULL;
}

static void accept_clients(struct control_server *srv)
{
	for (int i = 0; i < ACCEPT_BURST; i++) {
		struct control_client *c;
		struct ucred cred;
		socklen_t len = sizeof(cred);
		char why[160];
		bool priv;
		int fd = accept4(srv->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				msg_warn("control: cannot accept: %s; pausing for %d ms",
					 strerror(errno), ACCEPT_PAUSE_MS);
				srv->accept_paused_until = now_ms() + ACCEPT_PAUSE_MS;
			} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
				msg_warn("control: accept: %s", strerror(errno));
			}
			return;
		}
		/* Who it is decides whether it gets a slot. */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
		    len != sizeof(cred)) {
			/* Without credentials nothing can be permitted. */
			msg_warn("control: SO_PEERCRED: %s", strerror(errno));
			close(fd);
			continue;
		}
		priv = privileged(srv, cred.uid);
		c = admit(srv, cred.uid, priv, why, sizeof(why));
		if (c == NULL) {
			note_pressure(srv, "refused a connection from uid %lu pid %ld: %s",
				      (unsigned long)cred.uid, (long)cred.pid, why);
			busy_reply(fd, why);
			close(fd);
			continue;
		}
		memset(c, 0, sizeof(*c));
		c->phase = CLIENT_READING;
		c->fd = fd;
		c->pid = cred.pid;
		c->uid = cred.uid;
		c->gid = cred.gid;
		c->privileged = priv;
		c->serial = srv->next_serial++;
		c->accepted = now_ms();
		c->deadline = c->accepted + srv->timeout_ms;
	}
}

/* Deadlines are enforced here and from control_pollfds(), so they hold even
 * in a loop that skips control_handle() when poll() times out. */
static void expire_clients(struct control_server *srv)
{
	int64_t now = now_ms();

	for (size_t k = 0; k < CONTROL_MAX_CLIENTS; k++) {
		struct control_client *c = &srv->clients[k];
		if (c->phase != CLIENT_FREE && c->deadline <= now) {
			msg_debug("control: peer pid %ld timed out", (long)c->pid);
			client_close(c);
		}
	}
}

size_t control_pollfds(struct control_server *srv, struct pollfd *fds, size_t max)
{
	size_t n = 0;

	if (srv == NULL)
		return 0;
	expire_clients(srv);
	if (srv->accept_paused_until != 0 && now_ms() >= srv->accept_paused_until)
		srv->accept_paused_until = 0;
	if (n < max && srv->accept_paused_until == 0)
		fds[n++] = (struct pollfd){ .fd = srv->fd, .events = POLLIN };
	for (size_t i = 0; i < CONTROL_MAX_CLIENTS && n < max; i++) {
		const struct control_client *c = &srv->clients[i];
		if (c->phase == CLIENT_FREE)
			continue;
		fds[n++] = (struct pollfd){
			.fd = c->fd,
			.events = c->phase == CLIENT_READING ? POLLIN : POLLOUT,
		};
	}
	return n;
}

int control_timeout_ms(const struct control_server *srv)
{
	int64_t now, nearest = -1;

	if (srv == NULL)
		return -1;
	now = now_ms();
	if (srv->accept_paused_until != 0)
		nearest = srv->accept_paused_until;
	for (size_t i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		const struct control_client *c = &srv->clients[i];
		if (c->phase != CLIENT_FREE && (nearest < 0 || c->deadline < nearest))
			nearest = c->deadline;
	}
	if (nearest < 0)
		return -1;
	if (nearest <= now)
		return 0;
	return nearest - now > INT_MAX ? INT_MAX : (int)(nearest - now);
}

void control_handle(struct control_server *srv, const struct pollfd *fds, size_t n)
{
	bool listen_ready = false;

	if (srv == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		if (fds[i].revents == 0)
			continue;
		if (fds[i].fd == srv->fd) {
			listen_ready = true;
			continue;
		}
		for (size_t k = 0; k < CONTROL_MAX_CLIENTS; k++) {
			struct control_client *c = &srv->clients[k];
			if (c->phase == CLIENT_FREE || c->fd != fds[i].fd)
				continue;
			if (c->phase == CLIENT_READING)
				client_read(srv, c);
			else
				client_flush(srv, c);
			break;
		}
	}
	expire_clients(srv);
	/* Accept last: a new connection may reuse a descriptor number that
	 * appears above as a client just closed. */
	if (listen_ready)
		accept_clients(srv);
}

/* ---- setup ------------------------------------------------------------- */

static int lookup_group(const char *name, gid_t *gid, char *err, size_t errlen)
{
	struct group gr, *found = NULL;
	long size = sysconf(_SC_GETGR_R_SIZE_MAX);
	char *buf = NULL;
	int r = -1, rc;

	if (size <= 0)
		size = 16384;
	for (;;) {
		char *nbuf = realloc(buf, (size_t)size);
		if (nbuf == NULL) {
			snprintf(err, errlen, "group '%s': out of memory", name);
			goto out;
		}
		buf = nbuf;
		rc = getgrnam_r(name, &gr, buf, (size_t)size, &found);
		if (rc != ERANGE || size > (1L << 24))
			break;
		size *= 2;
	}
	if (found == NULL) {
		if (rc != 0 && rc != ENOENT && rc != ESRCH)
			snprintf(err, errlen, "cannot look up group '%s' ([control] group): %s",
				 name, strerror(rc));
		else
			snprintf(err, errlen, "unknown group '%s' ([control] group)", name);
		goto out;
	}
	*gid = gr.gr_gid;
	r = 0;
out:
	free(buf);
	return r;
}

/* Creates the socket's directory if it is missing: 0770, owned by the
 * service user and the control group, so that only they reach the socket.
 * An existing directory is left as the administrator made it (it may be
 * /run itself), with a warning when it locks the control group out. */
static int make_socket_dir(const char *path, uid_t uid, bool have_group, gid_t gid,
			   char *err, size_t errlen)
{
	char *copy = strdup(path);
	const char *dir;
	struct stat st;
	int r = -1;

	if (copy == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	dir = dirname(copy);
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "control socket directory %s is not a directory", dir);
			goto out;
		}
		if (have_group && st.st_gid != gid && (st.st_mode & S_IXOTH) == 0)
			msg_warn("control: %s belongs to gid %lu, not the control group (gid %lu): "
				 "its members cannot reach %s", dir, (unsigned long)st.st_gid,
				 (unsigned long)gid, path);
		r = 0;
		goto out;
	}
	if (errno != ENOENT) {
		snprintf(err, errlen, "control socket directory %s: %s", dir, strerror(errno));
		goto out;
	}
	if (mkdir(dir, 0700) != 0) {
		snprintf(err, errlen, "cannot create control socket directory %s: %s", dir,
			 strerror(errno));
		goto out;
	}
	/* Owner and group first, then the mode: the directory is never open
	 * to a group it was not meant for. */
	if ((uid != geteuid() || have_group) &&
	    chown(dir, uid != geteuid() ? uid : (uid_t)-1, have_group ? gid : (gid_t)-1) != 0) {
		snprintf(err, errlen, "cannot set owner of %s: %s", dir, strerror(errno));
		goto out;
	}
	if (chmod(dir, 0770) != 0) {
		snprintf(err, errlen, "cannot set mode of %s: %s", dir, strerror(errno));
		goto out;
	}
	r = 0;
out:
	free(copy);
	return r;
}

static int fill_addr(struct sockaddr_un *addr, const char *path, char *err, size_t errlen)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (path[0] == '\0' || strlen(path) >= sizeof(addr->sun_path)) {
		snprintf(err, errlen, "control socket path '%s' is empty or longer than %zu bytes",
			 path, sizeof(addr->sun_path) - 1);
		return -1;
	}
	memcpy(addr->sun_path, path, strlen(path) + 1);
	return 0;
}

/* Removes a socket file nobody listens on; refuses to touch one somebody
 * answers on, or anything that is not a socket. */
static int clear_stale_socket(const struct sockaddr_un *addr, char *err, size_t errlen)
{
	const char *path = addr->sun_path;
	struct stat st;
	int fd = -1, r = -1;

	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto out;
	}
	if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0 ||
	    errno == EAGAIN || errno == EINPROGRESS) {
		/* EAGAIN: a listener whose backlog is full is still a listener. */
		snprintf(err, errlen, "another mongo-azure-backupd is already listening on %s",
			 path);
		goto out;
	}
	if (errno != ECONNREFUSED) {
		snprintf(err, errlen, "cannot check control socket %s: %s", path, strerror(errno));
		goto out;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove stale control socket %s: %s", path,
			 strerror(errno));
		goto out;
	}
	msg_info("control: removed stale socket %s", path);
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

struct control_server *control_open(const char *path, const char *group,
				    uid_t service_uid, const struct control_handlers *h,
				    char *err, size_t errlen)
{
	struct control_server *srv = NULL;
	struct sockaddr_un addr;
	struct stat st;
	mode_t old_mask;
	bool bound = false;
	int rc;

	if (fill_addr(&addr, path, err, errlen) != 0)
		goto fail;
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	srv->fd = -1;
	srv->service_uid = service_uid;
	srv->timeout_ms = CONTROL_REQUEST_TIMEOUT_MS;
	if (h != NULL)
		srv->h = *h;
	for (size_t i = 0; i < CONTROL_MAX_CLIENTS; i++)
		srv->clients[i].fd = -1;
	srv->path = strdup(path);
	srv->group = strdup(group != NULL ? group : "");
	if (srv->path == NULL || srv->group == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (srv->group[0] != '\0') {
		if (lookup_group(srv->group, &srv->gid, err, errlen) != 0)
			goto fail;
		srv->have_group = true;
	}
	if (make_socket_dir(path, service_uid, srv->have_group, srv->gid, err, errlen) != 0)
		goto fail;
	if (clear_stale_socket(&addr, err, errlen) != 0)
		goto fail;

	srv->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (srv->fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto fail;
	}
	/* The socket file is born 0660: no moment where others could connect. */
	old_mask = umask(0117);
	rc = bind(srv->fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old_mask);
	if (rc != 0) {
		if (errno == EADDRINUSE)
			snprintf(err, errlen, "another mongo-azure-backupd is already listening on %s",
				 path);
		else
			snprintf(err, errlen, "cannot bind control socket %s: %s", path,
				 strerror(errno));
		goto fail;
	}
	bound = true;
	if ((service_uid != geteuid() || srv->have_group) &&
	    fchownat(AT_FDCWD, path, service_uid != geteuid() ? service_uid : (uid_t)-1,
		     srv->have_group ? srv->gid : (gid_t)-1, AT_SYMLINK_NOFOLLOW) != 0) {
		snprintf(err, errlen, "cannot set owner of %s: %s", path, strerror(errno));
		goto fail;
	}
	if (lstat(path, &st) != 0) {
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		goto fail;
	}
	srv->dev = st.st_dev;
	srv->ino = st.st_ino;
	if (listen(srv->fd, SOMAXCONN) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
		goto fail;
	}
	return srv;

fail:
	if (srv != NULL) {
		if (bound && unlink(path) != 0)
			msg_debug("control: unlink %s: %s", path, strerror(errno));
		if (srv->fd >= 0)
			close(srv->fd);
		free(srv->path);
		free(srv->group);
		free(srv);
	}
	return NULL;
}

void control_set_timeout_ms(struct control_server *srv, int ms)
{
	if (srv != NULL && ms > 0)
		srv->timeout_ms = ms;
}

void control_close(struct control_server *srv)
{
	struct stat st;

	if (srv == NULL)
		return;
	for (size_t i = 0; i < CONTROL_MAX_CLIENTS; i++)
		client_close(&srv->clients[i]);
	if (close(srv->fd) != 0)
		msg_debug("control: close: %s", strerror(errno));
	/* Only our own socket: a successor may already have replaced it. */
	if (lstat(srv->path, &st) == 0 && st.st_dev == srv->dev && st.st_ino == srv->ino &&
	    unlink(srv->path) != 0)
		msg_warn("control: cannot remove %s: %s", srv->path, strerror(errno));
	free(srv->path);
	free(srv->group);
	free(srv);
}
