/* control_conn.c - the control socket's connections, inside the
 * supervisor's poll loop and never blocking: accepting (paused when out of
 * descriptors, a burst at a time), slots shared fairly among uids with
 * room kept for root, eviction of idle connections, reading a request and
 * writing its reply, expiry; and the loop's calls control_pollfds,
 * control_timeout_ms, control_handle.
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

/* ---- connections ------------------------------------------------------- */

void client_close(struct control_client *c)
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
		c->deadline = control_now_ms() + srv->timeout_ms;
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
	c->deadline = control_now_ms() + srv->timeout_ms;
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
	int64_t now = control_now_ms();
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
		      (long long)(control_now_ms() - c->accepted), (unsigned long)for_uid);
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
	int64_t idle_before = control_now_ms() - CONTROL_IDLE_EVICT_MS;

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
				srv->accept_paused_until = control_now_ms() + ACCEPT_PAUSE_MS;
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
		c->accepted = control_now_ms();
		c->deadline = c->accepted + srv->timeout_ms;
	}
}

/* Deadlines are enforced here and from control_pollfds(), so they hold even
 * in a loop that skips control_handle() when poll() times out. */
static void expire_clients(struct control_server *srv)
{
	int64_t now = control_now_ms();

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
	if (srv->accept_paused_until != 0 && control_now_ms() >= srv->accept_paused_until)
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
	now = control_now_ms();
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
