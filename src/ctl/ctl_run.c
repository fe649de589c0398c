/* ctl_run.c - `mongo-azure-backupctl run [--wait]`: asks the daemon for a
 * run and, with --wait, follows it (a progress display on a terminal,
 * plain lines otherwise) until it ends; the run's result is the exit code.
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
		 ctl_clean(j_str(run, "run_id"), id, sizeof(id)), done, total, total == 1 ? "" : "s");
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

int tool_cmd_run(struct ctl *c, bool wait)
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
	ctl_clean(rid, id, sizeof(id));
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
