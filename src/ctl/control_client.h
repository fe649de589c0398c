/* control_client.h - the client side of the control protocol (control.h):
 * connect to the daemon's socket, send one command, read the whole reply
 * within a time limit and split it into "OK" + body or an ERROR.
 */
#ifndef MAB_CONTROL_CLIENT_H
#define MAB_CONTROL_CLIENT_H

#include <stddef.h>

/* Largest reply accepted: far above any status document. */
#define CONTROL_REPLY_MAX (64u << 20)

enum control_client_result {
	CONTROL_CLIENT_OK = 0,		/* a well-formed reply (OK or ERROR) */
	CONTROL_CLIENT_UNREACHABLE,	/* no daemon, or it went away or fell
					 * silent before replying */
	CONTROL_CLIENT_BAD_REPLY,	/* it answered outside the protocol */
	CONTROL_CLIENT_FORBIDDEN,	/* the socket's permissions refused us
					 * (EACCES, EPERM): a daemon may well be
					 * there, we may not talk to it */
};

struct control_reply {
	int code;		/* 0 for OK, else the ERROR code (400, 403, ...) */
	char *message;		/* the ERROR's message; NULL for OK */
	char *body;		/* OK's body, NUL-terminated (maybe ""); NULL for ERROR */
	size_t body_len;
};

/* A connected socket, or -1 with a message that says what to do about it:
 * "no such socket ... is mongo-azure-backupd running?" (ENOENT,
 * ECONNREFUSED) or "permission denied on PATH (are you in the control
 * group?)" (EACCES, EPERM).  errno is kept from connect(). */
int control_client_connect(const char *path, int timeout_ms, char *err, size_t errlen);

/* Sends "command\n" and reads the reply until the daemon closes the
 * connection, all within timeout_ms.  On CONTROL_CLIENT_OK the reply is
 * filled and must be released with control_reply_free(); otherwise err
 * says what went wrong.  (The daemon's own refusal of a command is an OK
 * result with reply code 403.) */
enum control_client_result control_request(const char *path, const char *command,
					   int timeout_ms, struct control_reply *reply,
					   char *err, size_t errlen);

/* Splits a complete reply; 0, or -1 with err set when it is malformed. */
int control_parse_reply(const char *data, size_t len, struct control_reply *reply,
			char *err, size_t errlen);
void control_reply_free(struct control_reply *reply);

#endif
