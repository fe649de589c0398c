/* control.h - the daemon's control socket: a unix stream socket served from
 * the supervisor's event loop, one request per connection.
 *
 * Protocol (also spoken by mongo-azure-backupctl):
 *   request:  one line "COMMAND\n", at most CONTROL_REQUEST_MAX bytes,
 *             printable ASCII, sent within CONTROL_REQUEST_TIMEOUT_MS.
 *             COMMAND is one of: ping, status, metrics, run, cancel.
 *   response: "OK\n" followed by the body, or "ERROR <code> <message>\n";
 *             then the server closes the connection.
 *             codes: 400 bad request, 403 forbidden, 409 conflict (a run is
 *             already going / nothing to cancel), 500 internal error.
 *   bodies:   ping -> "pong\n"; status -> one JSON object; metrics ->
 *             Prometheus text exposition; run -> {"run_id": ..., "coalesced": bool};
 *             cancel -> {"run_id": ...}.
 * Who may do what (SO_PEERCRED): ping, status and metrics: root, the
 * daemon's own uid, and members of [control] group; run and cancel: root and
 * the daemon's own uid only.  How many connections each may hold: below.
 */
#ifndef MAB_CONTROL_H
#define MAB_CONTROL_H

#include <poll.h>
#include <stddef.h>
#include <sys/types.h>

#define CONTROL_REQUEST_MAX 256
#define CONTROL_REQUEST_TIMEOUT_MS 5000
#define CONTROL_MAX_CLIENTS 32
/* Fairness (SO_PEERCRED uids): a uid other than root and the daemon's own
 * may hold at most CONTROL_MAX_PER_UID connections at once, and all such
 * uids together at most CONTROL_MAX_CLIENTS - CONTROL_RESERVED_CLIENTS, so
 * that root's run and cancel always find a slot.  When no slot is left for
 * root or the daemon's user, the oldest connection of another uid is closed
 * to make room (one still without a request before one being answered);
 * for another uid under its limit, the oldest connection of such a uid
 * that has been open CONTROL_IDLE_EVICT_MS without a request.  A refused
 * connection, and an evicted one without a request, get
 * "ERROR 500 busy: <why>" before the server closes it. */
#define CONTROL_MAX_PER_UID 4
#define CONTROL_RESERVED_CLIENTS 8
#define CONTROL_IDLE_EVICT_MS 1000

struct control_handlers {
	void *ctx;
	/* A malloc'd body, or NULL with a message in err (-> ERROR 500). */
	char *(*status_json)(void *ctx, char *err, size_t errlen);
	char *(*metrics_text)(void *ctx, char *err, size_t errlen);
	/* 0: body (malloc'd) set; 409: refused, message in err; -1: ERROR 500. */
	int (*run)(void *ctx, char **body, char *err, size_t errlen);
	int (*cancel)(void *ctx, char **body, char *err, size_t errlen);
};

struct control_server;

/* Creates the socket's directory (0770, owned by service_uid and group) if
 * needed, replaces a stale socket only after connect() is refused, binds
 * with a tight umask and listens.  NULL with a message on failure (e.g.
 * another daemon answers on that socket). */
struct control_server *control_open(const char *path, const char *group,
				    uid_t service_uid, const struct control_handlers *h,
				    char *err, size_t errlen);
size_t control_pollfds(struct control_server *srv, struct pollfd *fds, size_t max);
/* ms until the nearest client deadline, -1 if none. */
int control_timeout_ms(const struct control_server *srv);
void control_handle(struct control_server *srv, const struct pollfd *fds, size_t n);
/* Replaces CONTROL_REQUEST_TIMEOUT_MS (the deadline to send a request, and
 * the longest a reply may stall) for this server; tests use a short one. */
void control_set_timeout_ms(struct control_server *srv, int ms);
/* Closes every connection, unlinks the socket. */
void control_close(struct control_server *srv);

#endif
