/* ctl_daemon.c - what mongo-azure-backupctl's commands share: the
 * configuration (read only for [control] socket and [schedule] when the
 * daemon is asked), asking the daemon over its control socket, reading
 * its JSON replies, and formatting times, durations and names.
 */
#include "config.h"

#include <bson/bson.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control_client.h"
#include "cron.h"
#include "cron_tz.h"
#include "ctl_commands.h"
#include "iso8601.h"
#include "mab_config.h"
#include "no_core.h"
#include "ctl_common.h"
#include "ctl_tool.h"

/* Prints "PROG: message" and the --help hint; returns EXIT_USAGE. */
int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry '" PROG " --help'.\n", stderr);
	return EXIT_USAGE;
}

/* ---- configuration ----------------------------------------------------- */

static void print_problem(void *ctx, const char *message)
{
	(void)ctx;
	fprintf(stderr, PROG ": %s\n", message);
}

/* Loads the configuration once.  An unreadable default file silently means
 * the defaults; an unreadable -c file is an error. */
int load_config(struct ctl *c)
{
	int fd;

	if (c->cfg_loaded)
		return EXIT_OK;
	fd = open(c->conf_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (c->conf_explicit) {
			fprintf(stderr, PROG ": cannot read %s: %s\n", c->conf_path,
				strerror(errno));
			return EXIT_USAGE;
		}
		config_defaults(&c->cfg);
		c->cfg_loaded = true;
		return EXIT_OK;
	}
	close(fd);
	c->cfg_problems = config_load(c->conf_path, &c->cfg, print_problem, NULL);
	c->cfg_loaded = true;
	return EXIT_OK;
}

/* The socket to use: -s, else the configuration's.  A configuration with
 * problems is still good enough to find the daemon (which may be running
 * an older, good version of it), so those are warnings here. */
int resolve_socket(struct ctl *c)
{
	int r;

	if (c->socket != NULL)
		return EXIT_OK;
	r = load_config(c);
	if (r != EXIT_OK)
		return r;
	if (c->cfg_problems > 0)
		fprintf(stderr, PROG ": warning: %s has %d problem%s; using socket %s\n",
			c->conf_path, c->cfg_problems, c->cfg_problems == 1 ? "" : "s",
			c->cfg.control_socket);
	c->socket = c->cfg.control_socket;
	return EXIT_OK;
}

/* ---- talking to the daemon --------------------------------------------- */

/* EXIT_OK with reply filled (OK or ERROR), or the exit code after saying
 * what went wrong. */
int ask(const struct ctl *c, const char *command, struct control_reply *reply)
{
	char err[512];

	switch (control_request(c->socket, command, REQUEST_TIMEOUT_MS, reply, err,
				sizeof(err))) {
	case CONTROL_CLIENT_OK:
		return EXIT_OK;
	case CONTROL_CLIENT_UNREACHABLE:
		fprintf(stderr, PROG ": %s\n", err);
		return EXIT_UNREACHABLE;
	case CONTROL_CLIENT_FORBIDDEN:
		fprintf(stderr, PROG ": %s\n", err);
		return EXIT_FORBIDDEN;
	default:
		fprintf(stderr, PROG ": %s\n", err);
		return EXIT_FAILED;
	}
}


int report_error_reply(const char *command, const struct control_reply *reply)
{
	char msg[512];

	fprintf(stderr, PROG ": %s: %s (%d)\n", command, ctl_clean(reply->message, msg, sizeof(msg)),
		reply->code);
	/* The daemon refused the command to this user (control.c's
	 * permission table). */
	return reply->code == 403 ? EXIT_FORBIDDEN : EXIT_FAILED;
}

void print_body(const struct control_reply *reply)
{
	fwrite(reply->body, 1, reply->body_len, stdout);
	if (reply->body_len > 0 && reply->body[reply->body_len - 1] != '\n')
		putchar('\n');
}

/* ---- reading the JSON -------------------------------------------------- */

bson_t *parse_json(const struct control_reply *reply)
{
	bson_error_t error;
	const char *p = reply->body + strspn(reply->body, " \t\r\n");
	bson_t *doc;

	/* libbson would take a top-level array as a document too. */
	if (*p != '{') {
		fprintf(stderr, PROG ": the daemon's reply is not a JSON object\n");
		return NULL;
	}
	doc = bson_new_from_json((const uint8_t *)reply->body, (ssize_t)reply->body_len, &error);
	if (doc == NULL)
		fprintf(stderr, PROG ": the daemon's reply is not valid JSON: %s\n", error.message);
	return doc;
}

/* Every field is optional: a missing or null one reads as absent. */
static bool find(const bson_t *doc, const char *key, bson_iter_t *it)
{
	return doc != NULL && bson_iter_init_find(it, doc, key) &&
	       bson_iter_type(it) != BSON_TYPE_NULL;
}

const char *j_str(const bson_t *doc, const char *key)
{
	bson_iter_t it;

	if (!find(doc, key, &it) || !BSON_ITER_HOLDS_UTF8(&it))
		return NULL;
	return bson_iter_utf8(&it, NULL);
}

bool j_num(const bson_t *doc, const char *key, double *out)
{
	bson_iter_t it;

	if (!find(doc, key, &it) || !BSON_ITER_HOLDS_NUMBER(&it))
		return false;
	*out = bson_iter_as_double(&it);
	return true;
}

bool j_int(const bson_t *doc, const char *key, long long *out)
{
	bson_iter_t it;

	if (!find(doc, key, &it) || !BSON_ITER_HOLDS_NUMBER(&it))
		return false;
	*out = (long long)bson_iter_as_int64(&it);
	return true;
}

bool j_bool(const bson_t *doc, const char *key)
{
	bson_iter_t it;

	return find(doc, key, &it) && BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it);
}

/* A sub-document (object or array) as a static bson_t over the parent's
 * bytes. */
bool j_sub(const bson_t *doc, const char *key, bson_t *out)
{
	bson_iter_t it;
	const uint8_t *data;
	uint32_t len;

	if (!find(doc, key, &it))
		return false;
	if (BSON_ITER_HOLDS_DOCUMENT(&it))
		bson_iter_document(&it, &len, &data);
	else if (BSON_ITER_HOLDS_ARRAY(&it))
		bson_iter_array(&it, &len, &data);
	else
		return false;
	return bson_init_static(out, data, len);
}

/* Calls fn for every object in array `key` of doc. */
size_t each_object(const bson_t *doc, const char *key,
			  void (*fn)(const bson_t *item, void *arg), void *arg)
{
	bson_t array, item;
	bson_iter_t it;
	size_t n = 0;

	if (!j_sub(doc, key, &array) || !bson_iter_init(&it, &array))
		return 0;
	while (bson_iter_next(&it)) {
		const uint8_t *data;
		uint32_t len;

		if (!BSON_ITER_HOLDS_DOCUMENT(&it))
			continue;
		bson_iter_document(&it, &len, &data);
		if (!bson_init_static(&item, data, len))
			continue;
		if (fn != NULL)
			fn(&item, arg);
		n++;
	}
	return n;
}

/* ---- formatting -------------------------------------------------------- */


/* "2026-11-26T03:04:11Z" -> "2026-11-26 03:04:11" (UTC); the text itself if
 * it does not parse. */
const char *utc_text(const char *iso, char *buf, size_t len)
{
	struct iso8601 t;
	char err[256];
	int64_t when;

	if (iso == NULL)
		return ctl_clean("?", buf, len);
	if (iso8601_parse(iso, &t, err, sizeof(err)) != 0 ||
	    iso8601_instant(&t, "UTC", &when, err, sizeof(err)) != 0)
		return ctl_clean(iso, buf, len);
	iso8601_format(when, 0, buf, len);
	if (strlen(buf) >= 19) {
		buf[10] = ' ';
		buf[19] = '\0';
	}
	return buf;
}

const char *duration_text(long long s, char *buf, size_t len)
{
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(buf, len, "%llds", s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm %llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%lldh %lldm", s / 3600, s / 60 % 60);
	else
		snprintf(buf, len, "%lldd %lldh", s / 86400, s / 3600 % 24);
	return buf;
}

/* Appends to a line buffer, ignoring what does not fit. */

void add(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

void trim_right(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && s[n - 1] == ' ')
		s[--n] = '\0';
}
