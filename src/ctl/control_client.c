/* control_client.c - one request over the control socket, as
 * mongo-azure-backupctl makes it: connect, send the command line, read until
 * the daemon closes, split the reply.  Blocking, but never longer than the
 * caller's time limit.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control_client.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int control_client_connect(const char *path, int timeout_ms, char *err, size_t errlen)
{
	struct sockaddr_un addr;
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	int fd, saved;

	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	if (path[0] == '\0' || strlen(path) >= sizeof(addr.sun_path)) {
		snprintf(err, errlen, "control socket path '%s' is empty or too long", path);
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* A unix connect() only waits when the daemon's backlog is full; the
	 * send timeout bounds that wait. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
		snprintf(err, errlen, "setsockopt: %s", strerror(errno));
		goto fail;
	}
	while (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		if (errno == EINTR)
			continue;
		switch (errno) {
		case ENOENT:
		case ENOTDIR:
			snprintf(err, errlen, "%s: no such socket — is mongo-azure-backupd running?",
				 path);
			break;
		case ECONNREFUSED:
			snprintf(err, errlen, "%s: nobody is listening — is mongo-azure-backupd "
				 "running?", path);
			break;
		case EACCES:
		case EPERM:
			snprintf(err, errlen, "permission denied on %s (are you in the control "
				 "group?)", path);
			break;
		case EAGAIN:
		case EINPROGRESS:
			snprintf(err, errlen, "%s: the daemon did not accept the connection in "
				 "time (too busy?)", path);
			break;
		default:
			snprintf(err, errlen, "cannot connect to %s: %s", path, strerror(errno));
			break;
		}
		goto fail;
	}
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

void control_reply_free(struct control_reply *reply)
{
	free(reply->message);
	free(reply->body);
	memset(reply, 0, sizeof(*reply));
}

/* For error messages that quote what the daemon sent. */
static void quote_start(const char *data, size_t len, char *out, size_t outlen)
{
	size_t n = 0;

	for (size_t i = 0; i < len && data[i] != '\n' && n + 1 < outlen && i < 60; i++)
		out[n++] = (unsigned char)data[i] >= 0x20 && (unsigned char)data[i] < 0x7f ?
			   data[i] : '?';
	out[n] = '\0';
}

int control_parse_reply(const char *data, size_t len, struct control_reply *reply,
			char *err, size_t errlen)
{
	const char *nl = memchr(data, '\n', len);
	char shown[64];
	size_t line_len;

	memset(reply, 0, sizeof(*reply));
	quote_start(data, len, shown, sizeof(shown));
	if (nl == NULL) {
		snprintf(err, errlen, "incomplete reply from the daemon: '%s'", shown);
		return -1;
	}
	line_len = (size_t)(nl - data);
	if (line_len == 2 && memcmp(data, "OK", 2) == 0) {
		reply->body_len = len - 3;
		reply->body = malloc(reply->body_len + 1);
		if (reply->body == NULL)
			goto oom;
		memcpy(reply->body, data + 3, reply->body_len);
		reply->body[reply->body_len] = '\0';
		return 0;
	}
	/* "ERROR ddd message" */
	if (line_len < 9 || memcmp(data, "ERROR ", 6) != 0 ||
	    data[6] < '1' || data[6] > '5' || data[7] < '0' || data[7] > '9' ||
	    data[8] < '0' || data[8] > '9' || (line_len > 9 && data[9] != ' ')) {
		snprintf(err, errlen, "unexpected reply from the daemon: '%s'", shown);
		return -1;
	}
	reply->code = (data[6] - '0') * 100 + (data[7] - '0') * 10 + (data[8] - '0');
	reply->message = line_len > 10 ? strndup(data + 10, line_len - 10) : strdup("");
	if (reply->message == NULL)
		goto oom;
	return 0;
oom:
	control_reply_free(reply);
	snprintf(err, errlen, "out of memory");
	return -1;
}

/* Reads until EOF; 0, or -1 with err set. */
static enum control_client_result read_reply(int fd, int64_t deadline, char **data,
					     size_t *len, char *err, size_t errlen)
{
	size_t cap = 0;

	*data = NULL;
	*len = 0;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - now_ms();
		ssize_t n;
		int rc;

		if (left <= 0) {
			snprintf(err, errlen, "no complete reply from the daemon in time");
			return CONTROL_CLIENT_UNREACHABLE;
		}
		rc = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (rc < 0 && errno != EINTR) {
			snprintf(err, errlen, "poll: %s", strerror(errno));
			return CONTROL_CLIENT_UNREACHABLE;
		}
		if (rc <= 0)
			continue;
		if (*len + 4096 > cap) {
			size_t ncap = cap == 0 ? 16384 : cap * 2;
			char *nd;
			if (ncap > CONTROL_REPLY_MAX + 1) {
				snprintf(err, errlen, "the daemon's reply is larger than %u bytes",
					 CONTROL_REPLY_MAX);
				return CONTROL_CLIENT_BAD_REPLY;
			}
			nd = realloc(*data, ncap);
			if (nd == NULL) {
				snprintf(err, errlen, "out of memory");
				return CONTROL_CLIENT_BAD_REPLY;
			}
			*data = nd;
			cap = ncap;
		}
		n = recv(fd, *data + *len, cap - *len - 1, 0);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			/* The daemon closes right after a reply; if our request was
			 * still unread there, the close arrives as a reset. */
			if (errno == ECONNRESET && *len > 0)
				break;
			snprintf(err, errlen, "reading the reply: %s", strerror(errno));
			return CONTROL_CLIENT_UNREACHABLE;
		}
		if (n == 0)
			break;
		*len += (size_t)n;
	}
	if (*len == 0) {
		snprintf(err, errlen, "the daemon closed the connection without a reply");
		return CONTROL_CLIENT_UNREACHABLE;
	}
	(*data)[*len] = '\0';
	return CONTROL_CLIENT_OK;
}

enum control_client_result control_request(const char *path, const char *command,
					   int timeout_ms, struct control_reply *reply,
					   char *err, size_t errlen)
{
	int64_t deadline = now_ms() + timeout_ms;
	enum control_client_result r = CONTROL_CLIENT_UNREACHABLE;
	char line[300];
	char *data = NULL;
	size_t len = 0, done = 0;
	int fd, n;

	memset(reply, 0, sizeof(*reply));
	n = snprintf(line, sizeof(line), "%s\n", command);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		snprintf(err, errlen, "command too long");
		return CONTROL_CLIENT_BAD_REPLY;
	}
	fd = control_client_connect(path, timeout_ms, err, errlen);
	if (fd < 0)
		return errno == EACCES || errno == EPERM ? CONTROL_CLIENT_FORBIDDEN
							 : CONTROL_CLIENT_UNREACHABLE;
	while (done < (size_t)n) {
		ssize_t w = send(fd, line + done, (size_t)n - done, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			/* Closed already (e.g. "busy"): the reply may still be there. */
			if (errno == EPIPE || errno == ECONNRESET)
				break;
			snprintf(err, errlen, "sending the request: %s", strerror(errno));
			goto out;
		}
		done += (size_t)w;
	}
	r = read_reply(fd, deadline, &data, &len, err, errlen);
	if (r != CONTROL_CLIENT_OK)
		goto out;
	if (control_parse_reply(data, len, reply, err, errlen) != 0)
		r = CONTROL_CLIENT_BAD_REPLY;
out:
	free(data);
	close(fd);
	return r;
}
