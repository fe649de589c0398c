/* control_int.h - what the files of the control socket's server share
 * among themselves: control.c (one request: its checks, the permission
 * table, the commands), control_conn.c (connections: admission, eviction,
 * reading and writing, the poll loop's calls) and control_setup.c (the
 * socket opened and closed).  The daemon includes control.h only.
 */
#ifndef MAB_CONTROL_INT_H
#define MAB_CONTROL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "control.h"

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

/* control.c */
int64_t control_now_ms(void);
bool privileged(const struct control_server *srv, uid_t uid);
void process_request(struct control_server *srv, struct control_client *c,
		     struct reply *r);
void reply_error(struct reply *r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* control_conn.c */
void client_close(struct control_client *c);

#endif
