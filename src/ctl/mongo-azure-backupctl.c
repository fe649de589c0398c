/* mongo-azure-backupctl.c - the admin tool: asks the daemon over its control
 * socket (status, run, cancel, metrics); shows a schedule (next-runs),
 * prunes, lists, verifies and restores backup sets without one (those live
 * in ctl_*.c and the helper programs).
 *
 * For the daemon commands the configuration is read only for [control]
 * socket and [schedule]; an operator in the control group usually cannot
 * read it (mode 0600), so an unreadable default file means the compiled-in
 * defaults.  Exit codes: 0
 * done, 1 the operation (or the awaited run) failed, 2 usage or
 * configuration, 3 no daemon to talk to, 4 not permitted (the socket's
 * permissions, or the daemon's 403 for the command): a script can tell
 * "ask an administrator" from "the daemon is down".
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

#define PROG "mongo-azure-backupctl"

enum exit_code {
	EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3,
	EXIT_FORBIDDEN = 4,
};

#define REQUEST_TIMEOUT_MS 10000
#define WAIT_POLL_MS 500
/* Consecutive ERROR 500 replies (e.g. "busy") tolerated while waiting. */
#define WAIT_MAX_ERRORS 20

struct ctl {
	const char *conf_path;
	bool conf_explicit;
	const char *socket;		/* -s, or the configuration's */
	struct mab_config cfg;
	bool cfg_loaded;
	int cfg_problems;
};

static void usage(FILE *fp)
{
	fprintf(fp,
		"Usage: " PROG " [-c CONF] [-s SOCKET] COMMAND [ARGS]\n"
		"Administers mongo-azure-backupd through its control socket.\n\n"
		"  status [--json]      what the daemon is doing, its schedule and last run\n"
		"  run [--wait]         start a backup now (or join the one in progress);\n"
		"                       --wait shows progress and exits 1 unless it completes\n"
		"  cancel               stop the backup in progress\n"
		"  metrics              Prometheus metrics\n"
		"  next-runs [--tz ZONE] [--from ISO8601] [--count N] [EXPR]\n"
		"                       the next N (default 5, at most 1000) times EXPR (default:\n"
		"                       the configured schedule) fires after --from (default now;\n"
		"                       2026-03-08T01:30:00, local to ZONE unless it ends in Z\n"
		"                       or +HH:MM); needs no daemon\n"
		"  prune [--dry-run]    delete the backup sets [retention] says are too old\n"
		"                       (--dry-run: only print the plan); needs no daemon\n"
		"  list [--json]        the backup sets in storage, newest first\n"
		"  verify [--no-record] [SET|latest|all]\n"
		"                       read a set back and check it against its manifest;\n"
		"                       records the verdict beside it\n"
		"  restore SET (--to-uri URI | --to-uri-file FILE | --to-dir DIR)\n"
		"          [--collection C]... [--to-db DB] [--drop] [--no-indexes] [--dry-run]\n"
		"                       restore a set into MongoDB, or into mongodump's layout\n"
		"                       (list, verify, prune and restore need no daemon)\n\n"
		"  -c, --config CONF    configuration file (default %s)\n"
		"  -s, --socket SOCKET  control socket (default: [control] socket)\n"
		"  -h, --help           this text\n"
		"      --version        print the version and exit\n\n"
		"Exit status: 0 done, 1 failed, 2 usage or configuration error,\n"
		"3 the daemon is not reachable, 4 not permitted.\n",
		MAB_DEFAULT_CONFIG);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry '" PROG " --help'.\n", stderr);
	return EXIT_USAGE;
}

/* After getopt's own message. */
static int usage_hint(void)
{
	fputs("Try '" PROG " --help'.\n", stderr);
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
static int load_config(struct ctl *c)
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
static int resolve_socket(struct ctl *c)
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
static int ask(const struct ctl *c, const char *command, struct control_reply *reply)
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

static const char *clean(const char *s, char *buf, size_t len);

static int report_error_reply(const char *command, const struct control_reply *reply)
{
	char msg[512];

	fprintf(stderr, PROG ": %s: %s (%d)\n", command, clean(reply->message, msg, sizeof(msg)),
		reply->code);
	/* The daemon refused the command to this user (control.c's
	 * permission table). */
	return reply->code == 403 ? EXIT_FORBIDDEN : EXIT_FAILED;
}

static void print_body(const struct control_reply *reply)
{
	fwrite(reply->body, 1, reply->body_len, stdout);
	if (reply->body_len > 0 && reply->body[reply->body_len - 1] != '\n')
		putchar('\n');
}

/* ---- reading the JSON -------------------------------------------------- */

static bson_t *parse_json(const struct control_reply *reply)
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

static const char *j_str(const bson_t *doc, const char *key)
{
	bson_iter_t it;

	if (!find(doc, key, &it) || !BSON_ITER_HOLDS_UTF8(&it))
		return NULL;
	return bson_iter_utf8(&it, NULL);
}

static bool j_num(const bson_t *doc, const char *key, double *out)
{
	bson_iter_t it;

	if (!find(doc, key, &it) || !BSON_ITER_HOLDS_NUMBER(&it))
		return false;
	*out = bson_iter_as_double(&it);
	return true;
}

static bool j_int(const bson_t *doc, const char *key, long long *out)
{
	bson_iter_t it;

	if (!find(doc, key, &it) || !BSON_ITER_HOLDS_NUMBER(&it))
		return false;
	*out = (long long)bson_iter_as_int64(&it);
	return true;
}

static bool j_bool(const bson_t *doc, const char *key)
{
	bson_iter_t it;

	return find(doc, key, &it) && BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it);
}

/* A sub-document (object or array) as a static bson_t over the parent's
 * bytes. */
static bool j_sub(const bson_t *doc, const char *key, bson_t *out)
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
static size_t each_object(const bson_t *doc, const char *key,
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

/* The daemon's strings go to a terminal: no escape sequences through. */
static const char *clean(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	if (s == NULL)
		s = "";
	for (; *s && n + 1 < len; s++)
		buf[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
	buf[n] = '\0';
	return buf;
}

/* "2026-11-26T03:04:11Z" -> "2026-11-26 03:04:11" (UTC); the text itself if
 * it does not parse. */
static const char *utc_text(const char *iso, char *buf, size_t len)
{
	struct iso8601 t;
	char err[256];
	int64_t when;

	if (iso == NULL)
		return clean("?", buf, len);
	if (iso8601_parse(iso, &t, err, sizeof(err)) != 0 ||
	    iso8601_instant(&t, "UTC", &when, err, sizeof(err)) != 0)
		return clean(iso, buf, len);
	iso8601_format(when, 0, buf, len);
	if (strlen(buf) >= 19) {
		buf[10] = ' ';
		buf[19] = '\0';
	}
	return buf;
}

static const char *duration_text(long long s, char *buf, size_t len)
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
static void add(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void add(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

static void trim_right(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && s[n - 1] == ' ')
		s[--n] = '\0';
}

#define BAR_MAX 30
#define BAR_MIN 5
/* What a bar adds besides its cells: "[] 100%  ". */
#define BAR_EXTRA 9

/* One collection of the current run: "  users  running  120000/300000 docs
 * 45.1 MB  38.2 MB/s  ETA 7s", with a bar of `bar` cells (0: none). */
static void current_line(const bson_t *coll, int bar, char *line, size_t len)
{
	char a[128], b[32], c[512];
	const char *state = j_str(coll, "state");
	long long docs = 0, estimate = 0, eta;
	double bson_bytes = 0, gzip_bytes = 0, rate;
	bool have_docs = j_int(coll, "documents", &docs);

	j_int(coll, "estimate", &estimate);
	j_num(coll, "bson_bytes", &bson_bytes);
	j_num(coll, "gzip_bytes", &gzip_bytes);
	snprintf(line, len, "  %-14s %-9s ", clean(j_str(coll, "name"), a, sizeof(a)),
		 clean(state != NULL ? state : "?", b, sizeof(b)));
	if (state != NULL && strcmp(state, "failed") == 0) {
		add(line, len, "%s", clean(j_str(coll, "error"), c, sizeof(c)));
	} else if (state != NULL && strcmp(state, "ok") == 0) {
		add(line, len, "%lld docs  %5.1f MB gzip", docs, gzip_bytes / 1e6);
	} else if (state != NULL && strcmp(state, "running") == 0) {
		if (bar > 0 && estimate > 0) {
			double f = (double)docs / (double)estimate;
			int fill = f >= 1 ? bar : (int)(f * bar);
			add(line, len, "[");
			for (int i = 0; i < bar; i++)
				add(line, len, "%c", i < fill ? '#' : '-');
			add(line, len, "] %3d%%  ", f >= 1 ? 100 : (int)(f * 100));
		}
		if (estimate > 0)
			add(line, len, "%lld/%lld docs", docs, estimate);
		else if (have_docs)
			add(line, len, "%lld docs", docs);
		add(line, len, "  %.1f MB", bson_bytes / 1e6);
		if (j_num(coll, "mb_per_s", &rate))
			add(line, len, "  %.1f MB/s", rate);
		if (j_int(coll, "eta_seconds", &eta))
			add(line, len, "  ETA %s", duration_text(eta, b, sizeof(b)));
	}
	trim_right(line);
}

static void print_current_coll(const bson_t *coll, void *arg)
{
	char line[1024];

	(void)arg;
	current_line(coll, 0, line, sizeof(line));
	puts(line);
}

static void count_done(const bson_t *coll, void *arg)
{
	const char *state = j_str(coll, "state");

	if (state != NULL && (strcmp(state, "ok") == 0 || strcmp(state, "failed") == 0))
		++*(size_t *)arg;
}

static void print_result_coll(const bson_t *coll, void *arg)
{
	char a[128], b[32], c[1024], line[2048];
	const char *result = j_str(coll, "result");
	long long docs = 0;
	double gzip_bytes = 0;

	(void)arg;
	j_int(coll, "documents", &docs);
	j_num(coll, "gzip_bytes", &gzip_bytes);
	snprintf(line, sizeof(line), "  %-14s %-7s ", clean(j_str(coll, "name"), a, sizeof(a)),
		 clean(result != NULL ? result : "?", b, sizeof(b)));
	if (result != NULL && strcmp(result, "ok") == 0)
		add(line, sizeof(line), "%lld docs  %5.1f MB gzip  %s", docs, gzip_bytes / 1e6,
		    clean(j_str(coll, "blob"), c, sizeof(c)));
	else if (result != NULL && strcmp(result, "failed") == 0)
		add(line, sizeof(line), "%s", clean(j_str(coll, "error"), c, sizeof(c)));
	trim_right(line);
	puts(line);
}

/* "last run ID: complete, 2026-11-26 03:00:00 → 03:04:11 UTC" and a line
 * per collection. */
static void print_last_run(const bson_t *run)
{
	char id[128], result[32], start[64], end[64];
	const char *finished = j_str(run, "finished");

	utc_text(j_str(run, "started"), start, sizeof(start));
	printf("last run %s: %s, %s", clean(j_str(run, "run_id"), id, sizeof(id)),
	       clean(j_str(run, "result") ? j_str(run, "result") : "?", result, sizeof(result)),
	       start);
	if (finished != NULL) {
		utc_text(finished, end, sizeof(end));
		/* Same day: the time alone reads better. */
		bool same_day = strlen(start) == 19 && strlen(end) == 19 &&
				strncmp(start, end, 11) == 0;
		printf(" → %s", same_day ? end + 11 : end);
	}
	printf(" UTC\n");
	/* Why a run failed as a whole (e.g. a helper would not start). */
	if (j_str(run, "error") != NULL) {
		char why[1024];
		printf("  error: %s\n", clean(j_str(run, "error"), why, sizeof(why)));
	}
	each_object(run, "collections", print_result_coll, NULL);
}

static void print_status(const bson_t *doc)
{
	char a[128], b[128], c[128], d[128], m[600];
	const char *state = j_str(doc, "state"), *tz = j_str(doc, "timezone");
	const char *next = j_str(doc, "next_run"), *local = j_str(doc, "next_run_local");
	long long pid, up, failures;
	bson_t sub;

	printf("mongo-azure-backupd %s", clean(j_str(doc, "version") ? j_str(doc, "version") : "?",
					       a, sizeof(a)));
	if (j_int(doc, "pid", &pid))
		printf(", pid %lld", pid);
	if (j_int(doc, "uptime_seconds", &up))
		printf(", up %s", duration_text(up, a, sizeof(a)));
	putchar('\n');

	printf("state:        %s", clean(state != NULL ? state : "unknown", a, sizeof(a)));
	if (j_sub(doc, "current_run", &sub)) {
		size_t done = 0, total = each_object(&sub, "collections", count_done, &done);
		printf(" (run %s, %zu of %zu collection%s done)",
		       clean(j_str(&sub, "run_id"), a, sizeof(a)), done, total, total == 1 ? "" : "s");
	}
	putchar('\n');

	if (next != NULL) {
		printf("next run:     %s UTC", utc_text(next, a, sizeof(a)));
		if (local != NULL && tz != NULL && strcmp(tz, "UTC") != 0)
			printf(" (%s %s)", clean(local, b, sizeof(b)), clean(tz, c, sizeof(c)));
		putchar('\n');
	} else {
		printf("next run:     none\n");
	}

	if (j_sub(doc, "breaker", &sub)) {
		printf("breaker:      %s", clean(j_str(&sub, "state") ? j_str(&sub, "state") : "?",
					       a, sizeof(a)));
		if (j_int(&sub, "failures", &failures) && failures > 0)
			printf(" (%lld failure%s)", failures, failures == 1 ? "" : "s");
		putchar('\n');
	}

	if (j_sub(doc, "runs", &sub)) {
		static const char *const results[] = { "complete", "partial", "failed", "cancelled" };
		const char *sep = "";
		long long count;
		printf("runs:         ");
		for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++) {
			if (j_int(&sub, results[i], &count)) {
				printf("%s%lld %s", sep, count, results[i]);
				sep = ", ";
			}
		}
		putchar('\n');
	}

	if (j_sub(doc, "last_complete_set", &sub))
		printf("last complete backup: %s (%s UTC)\n", clean(j_str(&sub, "set"), a, sizeof(a)),
		       utc_text(j_str(&sub, "finished"), d, sizeof(d)));
	else
		printf("last complete backup: none\n");
	if (j_sub(doc, "last_reload", &sub))
		printf("last reload:  %s UTC, %s: %s\n", utc_text(j_str(&sub, "at"), d, sizeof(d)),
		       clean(j_str(&sub, "result"), a, sizeof(a)),
		       clean(j_str(&sub, "message"), m, sizeof(m)));
	if (j_sub(doc, "last_problem", &sub))
		printf("last %s: %s UTC, %s\n", clean(j_str(&sub, "level"), a, sizeof(a)),
		       utc_text(j_str(&sub, "at"), d, sizeof(d)),
		       clean(j_str(&sub, "message"), m, sizeof(m)));

	if (j_sub(doc, "current_run", &sub)) {
		printf("current run:\n");
		each_object(&sub, "collections", print_current_coll, NULL);
	}
	if (j_sub(doc, "last_run", &sub))
		print_last_run(&sub);
}

/* ---- commands that ask the daemon -------------------------------------- */

static int cmd_status(struct ctl *c, bool json)
{
	struct control_reply reply;
	bson_t *doc = NULL;
	int r;

	r = ask(c, "status", &reply);
	if (r != EXIT_OK)
		return r;
	if (reply.code != 0) {
		r = report_error_reply("status", &reply);
		goto out;
	}
	if (json) {
		print_body(&reply);
		goto out;
	}
	doc = parse_json(&reply);
	if (doc == NULL) {
		r = EXIT_FAILED;
		goto out;
	}
	print_status(doc);
out:
	if (doc != NULL)
		bson_destroy(doc);
	control_reply_free(&reply);
	if (fflush(stdout) != 0 && r == EXIT_OK)
		r = EXIT_FAILED;
	return r;
}

static int cmd_metrics(struct ctl *c)
{
	struct control_reply reply;
	int r = ask(c, "metrics", &reply);

	if (r != EXIT_OK)
		return r;
	if (reply.code != 0)
		r = report_error_reply("metrics", &reply);
	else
		fwrite(reply.body, 1, reply.body_len, stdout);
	control_reply_free(&reply);
	if (fflush(stdout) != 0 && r == EXIT_OK)
		r = EXIT_FAILED;
	return r;
}

static int cmd_cancel(struct ctl *c)
{
	struct control_reply reply;
	bson_t *doc = NULL;
	char id[128];
	int r = ask(c, "cancel", &reply);

	if (r != EXIT_OK)
		return r;
	if (reply.code != 0) {
		r = report_error_reply("cancel", &reply);
		goto out;
	}
	doc = parse_json(&reply);
	if (doc == NULL) {
		r = EXIT_FAILED;
		goto out;
	}
	printf("cancelling run %s\n", clean(j_str(doc, "run_id"), id, sizeof(id)));
out:
	if (doc != NULL)
		bson_destroy(doc);
	control_reply_free(&reply);
	return r;
}

/* ---- run --wait -------------------------------------------------------- */

struct progress {
	bool tty;
	int width;		/* terminal columns */
	int drawn;		/* lines of the block now on screen */
	char **names;		/* plain output: last state shown per collection */
	char **states;
	size_t n;
};

static void progress_clear(struct progress *p)
{
	if (!p->tty || p->drawn == 0)
		return;
	printf("\033[%dA", p->drawn);
	for (int i = 0; i < p->drawn; i++)
		printf("\r\033[2K\n");
	printf("\033[%dA", p->drawn);
	p->drawn = 0;
	fflush(stdout);
}

/* Cuts a line to the terminal width (counting UTF-8 characters, not
 * bytes), so that no line wraps and the redraw count stays right. */
static void fit(char *line, int width)
{
	int cols = 0;

	for (char *s = line; *s; s++) {
		if (((unsigned char)*s & 0xc0) == 0x80)
			continue;
		if (++cols >= width) {
			*s = '\0';
			return;
		}
	}
}

struct draw_ctx {
	struct progress *p;
	int lines;
};

static void draw_coll(const bson_t *coll, void *arg)
{
	struct draw_ctx *dc = arg;
	char line[1024];

	/* The bar gets what room the line leaves on the terminal. */
	current_line(coll, 0, line, sizeof(line));
	int bar = dc->p->width - 1 - (int)strlen(line) - BAR_EXTRA;
	if (bar >= BAR_MIN)
		current_line(coll, bar > BAR_MAX ? BAR_MAX : bar, line, sizeof(line));
	fit(line, dc->p->width);
	printf("\r\033[2K%s\n", line);
	dc->lines++;
}

static void remember(struct progress *p, const char *name, const char *state,
		     const bson_t *coll)
{
	char line[1024];
	size_t i;

	for (i = 0; i < p->n; i++)
		if (strcmp(p->names[i], name) == 0)
			break;
	if (i < p->n && strcmp(p->states[i], state) == 0)
		return;
	if (i == p->n) {
		char **nn = realloc(p->names, (p->n + 1) * sizeof(*nn));
		if (nn == NULL)
			return;
		p->names = nn;
		char **ns = realloc(p->states, (p->n + 1) * sizeof(*ns));
		if (ns == NULL)
			return;
		p->states = ns;
		p->names[i] = strdup(name);
		p->states[i] = NULL;
		if (p->names[i] == NULL)
			return;
		p->n++;
	}
	free(p->states[i]);
	p->states[i] = strdup(state);
	current_line(coll, 0, line, sizeof(line));
	puts(line);
}

static void plain_coll(const bson_t *coll, void *arg)
{
	const char *name = j_str(coll, "name"), *state = j_str(coll, "state");

	if (name != NULL && state != NULL)
		remember(arg, name, state, coll);
}

static void progress_show(struct progress *p, const bson_t *run)
{
	char id[128], line[256];
	size_t done = 0, total;

	if (!p->tty) {
		each_object(run, "collections", plain_coll, p);
		fflush(stdout);
		return;
	}
	total = each_object(run, "collections", count_done, &done);
	if (p->drawn > 0)
		printf("\033[%dA", p->drawn);
	snprintf(line, sizeof(line), "run %s: %zu of %zu collection%s done",
		 clean(j_str(run, "run_id"), id, sizeof(id)), done, total, total == 1 ? "" : "s");
	fit(line, p->width);
	printf("\r\033[2K%s\n", line);
	struct draw_ctx dc = { .p = p, .lines = 1 };
	each_object(run, "collections", draw_coll, &dc);
	/* Fewer lines than last time: blank the rest and come back up. */
	for (int i = dc.lines; i < p->drawn; i++)
		printf("\r\033[2K\n");
	if (p->drawn > dc.lines)
		printf("\033[%dA", p->drawn - dc.lines);
	p->drawn = dc.lines;
	fflush(stdout);
}

static void progress_free(struct progress *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->names[i]);
		free(p->states[i]);
	}
	free(p->names);
	free(p->states);
}

static bool same_id(const bson_t *run, const char *id)
{
	const char *rid = j_str(run, "run_id");

	return rid != NULL && strcmp(rid, id) == 0;
}

/* The last run before ours, to tell it apart from ours should both carry
 * the same id (ids have a resolution of one second). */
struct before {
	char id[128];
	char finished[64];
};

static void snapshot_last_run(const struct ctl *c, struct before *b)
{
	struct control_reply reply;
	char err[512];
	bson_t *doc;
	bson_t run;

	memset(b, 0, sizeof(*b));
	if (control_request(c->socket, "status", REQUEST_TIMEOUT_MS, &reply, err,
			    sizeof(err)) != CONTROL_CLIENT_OK)
		return;
	if (reply.code == 0 && reply.body[strspn(reply.body, " \t\r\n")] == '{' &&
	    (doc = bson_new_from_json((const uint8_t *)reply.body, (ssize_t)reply.body_len,
				      NULL)) != NULL) {
		if (j_sub(doc, "last_run", &run)) {
			snprintf(b->id, sizeof(b->id), "%s", j_str(&run, "run_id") ?
				 j_str(&run, "run_id") : "");
			snprintf(b->finished, sizeof(b->finished), "%s", j_str(&run, "finished") ?
				 j_str(&run, "finished") : "");
		}
		bson_destroy(doc);
	}
	control_reply_free(&reply);
}

static bool is_our_last_run(const bson_t *run, const char *id, const struct before *b)
{
	const char *finished = j_str(run, "finished");

	if (!same_id(run, id))
		return false;
	return strcmp(b->id, id) != 0 || strcmp(b->finished, finished ? finished : "") != 0;
}

/* Polls status until run `id` is the last run; its result decides. */
static int wait_for_run(struct ctl *c, const char *id, const struct before *b)
{
	struct progress p = { .tty = isatty(STDOUT_FILENO) == 1, .width = 80 };
	struct winsize ws;
	int errors = 0, r;

	if (p.tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		p.width = ws.ws_col;
	for (;;) {
		struct control_reply reply;
		bson_t *doc;
		bson_t run;
		char err[512];

		switch (control_request(c->socket, "status", REQUEST_TIMEOUT_MS, &reply, err,
					sizeof(err))) {
		case CONTROL_CLIENT_OK:
			break;
		case CONTROL_CLIENT_UNREACHABLE:
			progress_clear(&p);
			fprintf(stderr, PROG ": lost the daemon while waiting for run %s: %s\n", id,
				err);
			r = EXIT_UNREACHABLE;
			goto out;
		case CONTROL_CLIENT_FORBIDDEN:
			progress_clear(&p);
			fprintf(stderr, PROG ": %s\n", err);
			r = EXIT_FORBIDDEN;
			goto out;
		default:
			progress_clear(&p);
			fprintf(stderr, PROG ": %s\n", err);
			r = EXIT_FAILED;
			goto out;
		}
		if (reply.code != 0) {
			if (reply.code == 500 && ++errors < WAIT_MAX_ERRORS) {
				control_reply_free(&reply);
				goto next;
			}
			progress_clear(&p);
			r = report_error_reply("status", &reply);
			control_reply_free(&reply);
			goto out;
		}
		errors = 0;
		doc = parse_json(&reply);
		control_reply_free(&reply);
		if (doc == NULL) {
			progress_clear(&p);
			r = EXIT_FAILED;
			goto out;
		}
		if (j_sub(doc, "last_run", &run) && is_our_last_run(&run, id, b)) {
			const char *result = j_str(&run, "result");
			progress_clear(&p);
			print_last_run(&run);
			r = result != NULL && strcmp(result, "complete") == 0 ? EXIT_OK : EXIT_FAILED;
			bson_destroy(doc);
			goto out;
		}
		if (j_sub(doc, "current_run", &run) && same_id(&run, id))
			progress_show(&p, &run);
		bson_destroy(doc);
next:
		if (poll(NULL, 0, WAIT_POLL_MS) < 0 && errno != EINTR) {
			r = EXIT_FAILED;
			goto out;
		}
	}
out:
	progress_free(&p);
	fflush(stdout);
	return r;
}

static int cmd_run(struct ctl *c, bool wait)
{
	struct control_reply reply;
	struct before b;
	bson_t *doc = NULL;
	char id[128];
	const char *rid;
	int r;

	if (wait)
		snapshot_last_run(c, &b);
	r = ask(c, "run", &reply);
	if (r != EXIT_OK)
		return r;
	if (reply.code != 0) {
		r = report_error_reply("run", &reply);
		goto out;
	}
	doc = parse_json(&reply);
	if (doc == NULL) {
		r = EXIT_FAILED;
		goto out;
	}
	rid = j_str(doc, "run_id");
	if (rid == NULL) {
		fprintf(stderr, PROG ": the daemon's reply names no run\n");
		r = EXIT_FAILED;
		goto out;
	}
	clean(rid, id, sizeof(id));
	if (j_bool(doc, "coalesced"))
		printf("run %s was already in progress; the request was coalesced into it\n", id);
	else
		printf("started run %s\n", id);
	fflush(stdout);
	if (wait)
		r = wait_for_run(c, rid, &b);
out:
	if (doc != NULL)
		bson_destroy(doc);
	control_reply_free(&reply);
	return r;
}

/* ---- next-runs --------------------------------------------------------- */

struct next_args {
	const char *tz, *from, *count, *expr;
};

static int cmd_next_runs(struct ctl *c, struct next_args *a)
{
	struct cron_expr e;
	struct iso8601 from;
	char err[512], buf[64];
	const char *expr = a->expr, *tz = a->tz;
	int64_t after;
	long count = 5;
	int r;

	if (a->count != NULL) {
		char *end;
		errno = 0;
		count = strtol(a->count, &end, 10);
		if (errno != 0 || end == a->count || *end != '\0' || count < 1 || count > 1000)
			return usage_error("--count: '%s' is not a whole number from 1 to 1000",
					   a->count);
	}
	if (expr == NULL || tz == NULL) {
		r = load_config(c);
		if (r != EXIT_OK)
			return r;
		if (c->cfg_problems > 0) {
			fprintf(stderr, PROG ": %s: %d configuration problem%s\n", c->conf_path,
				c->cfg_problems, c->cfg_problems == 1 ? "" : "s");
			return EXIT_USAGE;
		}
		if (expr == NULL)
			expr = c->cfg.cron;
		if (tz == NULL)
			tz = c->cfg.timezone;
	}
	if (cron_zone_check(tz, err, sizeof(err)) != 0) {
		fprintf(stderr, PROG ": --tz: %s\n", err);
		return EXIT_USAGE;
	}
	if (cron_parse(expr, &e, err, sizeof(err)) != 0) {
		fprintf(stderr, PROG ": %s\n", err);
		return EXIT_USAGE;
	}
	if (a->from != NULL) {
		if (iso8601_parse(a->from, &from, err, sizeof(err)) != 0 ||
		    iso8601_instant(&from, tz, &after, err, sizeof(err)) != 0) {
			fprintf(stderr, PROG ": --from: %s\n", err);
			return EXIT_USAGE;
		}
	} else {
		after = (int64_t)time(NULL);
	}
	for (long i = 0; i < count; i++) {
		time_t next;
		const struct cron_tz *z;

		r = cron_next(&e, tz, (time_t)after, &next, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, PROG ": %s\n", err);
			return EXIT_USAGE;
		}
		if (r > 0) {
			fprintf(stderr, i == 0 ? "no occurrence\n" : "no further occurrence\n");
			return i == 0 ? EXIT_FAILED : EXIT_OK;
		}
		z = cron_tz_get(tz, err, sizeof(err));
		if (z == NULL) {
			fprintf(stderr, PROG ": %s\n", err);
			return EXIT_USAGE;
		}
		iso8601_format(next, cron_tz_offset(z, next), buf, sizeof(buf));
		puts(buf);
		after = next;
	}
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

/* ---- prune ------------------------------------------------------------- */

/* Runs the prune-sets helper, which does the work and prints the plan
 * straight to our stdout; its exit status (0, 1, 2) becomes ours.  Only
 * the configuration's path goes on its command line, never a secret. */
static int cmd_prune(const struct ctl *c, bool dry_run)
{
	const char *dir = getenv("MAB_LIBEXECDIR");
	char path[4096];
	char *argv[5];
	int n = 0, status;
	pid_t pid;

	if (dir == NULL || *dir == '\0')
		dir = PKGLIBEXECDIR;
	if ((size_t)snprintf(path, sizeof(path), "%s/prune-sets", dir) >= sizeof(path)) {
		fprintf(stderr, PROG ": %s: directory name too long\n", dir);
		return EXIT_FAILED;
	}
	argv[n++] = (char *)"prune-sets";
	argv[n++] = (char *)"-c";
	argv[n++] = (char *)c->conf_path;
	if (dry_run)
		argv[n++] = (char *)"--dry-run";
	argv[n] = NULL;

	/* Nothing buffered may be written twice, by the child too. */
	if (fflush(stdout) != 0 || fflush(stderr) != 0)
		return EXIT_FAILED;
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, PROG ": fork: %s\n", strerror(errno));
		return EXIT_FAILED;
	}
	if (pid == 0) {
		execv(path, argv);
		fprintf(stderr, PROG ": cannot run %s: %s\n", path, strerror(errno));
		_exit(EXIT_FAILED);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, PROG ": waiting for %s: %s\n", path, strerror(errno));
			return EXIT_FAILED;
		}
	}
	if (WIFSIGNALED(status)) {
		fprintf(stderr, PROG ": %s was killed by signal %d\n", path, WTERMSIG(status));
		return EXIT_FAILED;
	}
	/* 0, 1 and 2 mean the same for both; the helper's 3 (peer gone) is
	 * not our 3 (daemon unreachable). */
	if (!WIFEXITED(status) || WEXITSTATUS(status) > EXIT_USAGE)
		return EXIT_FAILED;
	return WEXITSTATUS(status);
}

/* ---- command line ------------------------------------------------------ */

/* Options of one subcommand; optind restarts for its own argv. */
static int sub_getopt(int argc, char **argv, const struct option *opts)
{
	return getopt_long(argc, argv, "h", opts, NULL);
}

static int dispatch(struct ctl *c, int argc, char **argv)
{
	const char *cmd = argv[0];
	int opt, r;

	optind = 0;	/* glibc: start afresh on the subcommand's argv */
	argv[0] = (char *)PROG;	/* getopt's messages name the program */
	if (strcmp(cmd, "list") == 0)
		return ctl_list(c->conf_path, c->conf_explicit, argc, argv);
	if (strcmp(cmd, "verify") == 0)
		return ctl_verify(c->conf_path, c->conf_explicit, argc, argv);
	if (strcmp(cmd, "restore") == 0)
		return ctl_restore(c->conf_path, c->conf_explicit, argc, argv);
	if (strcmp(cmd, "prune") == 0) {
		static const struct option opts[] = {
			{ "dry-run", no_argument, NULL, 'n' },
			{ "help", no_argument, NULL, 'h' },
			{ NULL, 0, NULL, 0 },
		};
		bool dry_run = false;
		while ((opt = sub_getopt(argc, argv, opts)) != -1) {
			switch (opt) {
			case 'n': dry_run = true; break;
			case 'h': usage(stdout); return EXIT_OK;
			default: return usage_hint();
			}
		}
		if (optind < argc)
			return usage_error("prune: unexpected argument '%s'", argv[optind]);
		return cmd_prune(c, dry_run);
	}
	if (strcmp(cmd, "next-runs") == 0) {
		static const struct option opts[] = {
			{ "tz", required_argument, NULL, 'z' },
			{ "from", required_argument, NULL, 'f' },
			{ "count", required_argument, NULL, 'n' },
			{ "help", no_argument, NULL, 'h' },
			{ NULL, 0, NULL, 0 },
		};
		struct next_args a = { 0 };
		char *expr = NULL;
		while ((opt = sub_getopt(argc, argv, opts)) != -1) {
			switch (opt) {
			case 'z': a.tz = optarg; break;
			case 'f': a.from = optarg; break;
			case 'n': a.count = optarg; break;
			case 'h': usage(stdout); return EXIT_OK;
			default: return usage_hint();
			}
		}
		/* "next-runs 0 3 '*' '*' '*'" means the same as one quoted word. */
		for (int i = optind; i < argc; i++) {
			size_t old = expr != NULL ? strlen(expr) : 0;
			char *n = realloc(expr, old + strlen(argv[i]) + 2);
			if (n == NULL) {
				free(expr);
				fprintf(stderr, PROG ": out of memory\n");
				return EXIT_FAILED;
			}
			expr = n;
			sprintf(expr + old, "%s%s", old > 0 ? " " : "", argv[i]);
		}
		a.expr = expr;
		r = cmd_next_runs(c, &a);
		free(expr);
		return r;
	}

	bool json = false, wait = false;
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "wait", no_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool is_status = strcmp(cmd, "status") == 0, is_run = strcmp(cmd, "run") == 0;
	if (!is_status && !is_run && strcmp(cmd, "cancel") != 0 && strcmp(cmd, "metrics") != 0)
		return usage_error("unknown command '%s'", cmd);
	while ((opt = sub_getopt(argc, argv, opts)) != -1) {
		switch (opt) {
		case 'j':
			if (!is_status)
				return usage_error("%s: unknown option --json", cmd);
			json = true;
			break;
		case 'w':
			if (!is_run)
				return usage_error("%s: unknown option --wait", cmd);
			wait = true;
			break;
		case 'h': usage(stdout); return EXIT_OK;
		default: return usage_hint();
		}
	}
	if (optind < argc)
		return usage_error("%s: unexpected argument '%s'", cmd, argv[optind]);
	r = resolve_socket(c);
	if (r != EXIT_OK)
		return r;
	if (is_status)
		return cmd_status(c, json);
	if (is_run)
		return cmd_run(c, wait);
	if (strcmp(cmd, "cancel") == 0)
		return cmd_cancel(c);
	return cmd_metrics(c);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl c = { .conf_path = MAB_DEFAULT_CONFIG };
	int opt, r;

	/* Before anything can read a secret: no core file may hold it. */
	no_core_dumps();
	/* "+": options after the command belong to the command. */
	while ((opt = getopt_long(argc, argv, "+c:s:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': c.conf_path = optarg; c.conf_explicit = true; break;
		case 's': c.socket = optarg; break;
		case 'h': usage(stdout); return EXIT_OK;
		case 'V': printf(PROG " %s\n", PACKAGE_VERSION); return EXIT_OK;
		default: return usage_hint();
		}
	}
	if (optind >= argc)
		return usage_error("no command given");
	r = dispatch(&c, argc - optind, argv + optind);
	if (c.cfg_loaded)
		config_free(&c.cfg);
	return r;
}
