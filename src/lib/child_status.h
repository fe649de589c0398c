/* child_status.h - the status channel between the supervisor and a child.
 *
 * Each child gets one end of a SOCK_SEQPACKET socketpair on a fixed fd
 * (--status-fd N, normally 3).  Every message is one line of text,
 *     KIND key=value key=value ... [message=free text to end of line]
 * at most STATUS_MSG_MAX bytes, sent with one write so it arrives whole.
 * Records a child sends:
 *   export-collection:  estimate documents=N
 *                       progress documents=N bson_bytes=N gzip_bytes=N
 *                       result ok documents=N bson_bytes=N gzip_bytes=N
 *                       result error class=C message=...
 *     with --list:      size index=I bson_bytes=N | documents=N (per name)
 *   upload-blob:        progress bytes=N blocks=N
 *                       staged bytes=N blocks=N md5=B64 sha256=HEX
 *                       result ok bytes=N blocks=N md5=B64 sha256=HEX
 *                       result error class=C [status=N] [code=X] message=...
 * Records the supervisor sends to upload-blob after "staged":
 *   commit documents=N bson_bytes=N      abort
 * EOF on the channel means the peer is gone: a child aborts, and the
 * supervisor treats the child as failed.
 */
#ifndef MAB_CHILD_STATUS_H
#define MAB_CHILD_STATUS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STATUS_MSG_MAX 1024
#define STATUS_MAX_FIELDS 16
#define CHILD_STATUS_FD 3

/* Exit codes shared by the child programs. */
enum child_exit {
	CHILD_EXIT_OK = 0,
	CHILD_EXIT_FAILED = 1,     /* the operation failed; see the result record */
	CHILD_EXIT_USAGE = 2,      /* bad arguments or configuration */
	CHILD_EXIT_PEER_GONE = 3,  /* EPIPE, abort, or the supervisor vanished */
};

/* Error classes in "result error class=..." records. */
#define ERR_CLASS_AUTH      "auth"       /* 401/403: wrong key, SAS, clock */
#define ERR_CLASS_CLIENT    "client"     /* other 4xx that retrying cannot fix */
#define ERR_CLASS_SERVER    "server"     /* retryable status after all retries */
#define ERR_CLASS_TRANSPORT "transport"  /* connect/reset/timeout after retries */
#define ERR_CLASS_MONGO     "mongo"      /* MongoDB unreachable or cursor lost */
#define ERR_CLASS_NOTFOUND  "notfound"   /* collection or container missing */
#define ERR_CLASS_LOCAL     "local"      /* our own side: memory, pipe, I/O */
#define ERR_CLASS_ABORTED   "aborted"    /* told to abort, or peer went away */
#define ERR_CLASS_EXISTS    "exists"     /* a create-only commit found the blob there */
/* Storage failures no retry can mend, whatever the breaker says: the
 * supervisor fails the whole run at once instead of waiting for
 * run_timeout.  (auth and, from upload-blob, notfound - the container is
 * missing - are treated the same way.) */
#define ERR_CLASS_CONFIG    "config"     /* TLS verification, malformed URL: fix the settings */
/* This process never reached the storage: the connection was refused, the
 * host name did not resolve, or no TLS handshake came about.  Not retried
 * by the helper.  The supervisor decides: an outage when an earlier
 * request of the same run reached the storage, else a wrong endpoint. */
#define ERR_CLASS_UNREACHABLE "unreachable"

struct status_record {
	char kind[16];
	size_t n_fields;
	const char *keys[STATUS_MAX_FIELDS];
	const char *values[STATUS_MAX_FIELDS];
	char buf[STATUS_MSG_MAX + 1];
};

/* Formats and sends one record; newlines in the text become spaces.
 * Returns 0, or -1 with errno (EPIPE when the peer is gone). */
int status_send(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses one received message (need not be NUL-terminated).  -1 if malformed. */
int status_parse(const char *msg, size_t len, struct status_record *rec);
const char *status_get(const struct status_record *rec, const char *key);
/* Field as unsigned integer; returns dflt when absent or malformed. */
uint64_t status_get_u64(const struct status_record *rec, const char *key, uint64_t dflt);
/* Receives one message (blocking); returns length, 0 on EOF, -1 on error. */
ssize_t status_recv(int fd, char *buf, size_t size);

#endif
