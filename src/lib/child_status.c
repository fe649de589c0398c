/* child_status.c - format, send and parse status channel records.
 *
 * The "message" field is free text and always last, so error texts from
 * libraries can be passed on without escaping.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "child_status.h"

int status_send(int fd, const char *fmt, ...)
{
	char msg[STATUS_MSG_MAX + 1];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n > STATUS_MSG_MAX)
		n = STATUS_MSG_MAX;
	for (int i = 0; i < n; i++)
		if (msg[i] == '\n' || msg[i] == '\r')
			msg[i] = ' ';

	for (;;) {
		/* MSG_NOSIGNAL: a vanished supervisor must show up as EPIPE. */
		ssize_t sent = send(fd, msg, (size_t)n, MSG_NOSIGNAL);
		if (sent < 0 && errno == ENOTSOCK)
			sent = write(fd, msg, (size_t)n);
		if (sent < 0 && errno == EINTR)
			continue;
		if (sent < 0)
			return -1;
		if (sent != n) {
			errno = EMSGSIZE;
			return -1;
		}
		return 0;
	}
}

ssize_t status_recv(int fd, char *buf, size_t size)
{
	for (;;) {
		ssize_t n = recv(fd, buf, size, 0);
		if (n < 0 && errno == ENOTSOCK)
			n = read(fd, buf, size);
		if (n < 0 && errno == EINTR)
			continue;
		return n;
	}
}

int status_parse(const char *msg, size_t len, struct status_record *rec)
{
	char *p, *end;

	memset(rec, 0, sizeof(*rec) - sizeof(rec->buf));
	if (len == 0 || len > STATUS_MSG_MAX)
		return -1;
	memcpy(rec->buf, msg, len);
	rec->buf[len] = '\0';
	if (memchr(rec->buf, '\0', len) != NULL)
		return -1;

	p = rec->buf;
	end = p + strcspn(p, " ");
	if (end == p || (size_t)(end - p) >= sizeof(rec->kind))
		return -1;
	memcpy(rec->kind, p, (size_t)(end - p));
	rec->kind[end - p] = '\0';
	p = end;

	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		char *eq = strchr(p, '=');
		if (eq == NULL || eq == p || memchr(p, ' ', (size_t)(eq - p)) != NULL)
			return -1;
		if (rec->n_fields == STATUS_MAX_FIELDS)
			return -1;
		*eq = '\0';
		rec->keys[rec->n_fields] = p;
		char *value = eq + 1;
		rec->values[rec->n_fields] = value;
		rec->n_fields++;
		if (strcmp(p, "message") == 0)
			break;
		p = value + strcspn(value, " ");
		if (*p != '\0')
			*p++ = '\0';
	}
	return 0;
}

const char *status_get(const struct status_record *rec, const char *key)
{
	for (size_t i = 0; i < rec->n_fields; i++)
		if (strcmp(rec->keys[i], key) == 0)
			return rec->values[i];
	return NULL;
}

uint64_t status_get_u64(const struct status_record *rec, const char *key, uint64_t dflt)
{
	const char *v = status_get(rec, key);
	char *end;
	unsigned long long n;

	if (v == NULL || *v < '0' || *v > '9')
		return dflt;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0')
		return dflt;
	return (uint64_t)n;
}
