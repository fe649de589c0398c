/* ctl_status.c - the commands that ask the daemon and print its answer:
 * status (with the current run's collections and the last run), metrics,
 * cancel.
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

/* One collection of the current run: "  users  running  120000/300000 docs
 * 45.1 MB  38.2 MB/s  ETA 7s", with a bar of `bar` cells (0: none). */
void current_line(const bson_t *coll, int bar, char *line, size_t len)
{
	char a[128], b[32], c[512];
	const char *state = j_str(coll, "state");
	long long docs = 0, estimate = 0, eta;
	double bson_bytes = 0, gzip_bytes = 0, rate;
	bool have_docs = j_int(coll, "documents", &docs);

	j_int(coll, "estimate", &estimate);
	j_num(coll, "bson_bytes", &bson_bytes);
	j_num(coll, "gzip_bytes", &gzip_bytes);
	snprintf(line, len, "  %-14s %-9s ", ctl_clean(j_str(coll, "name"), a, sizeof(a)),
		 ctl_clean(state != NULL ? state : "?", b, sizeof(b)));
	if (state != NULL && strcmp(state, "failed") == 0) {
		add(line, len, "%s", ctl_clean(j_str(coll, "error"), c, sizeof(c)));
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

void count_done(const bson_t *coll, void *arg)
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
	snprintf(line, sizeof(line), "  %-14s %-7s ", ctl_clean(j_str(coll, "name"), a, sizeof(a)),
		 ctl_clean(result != NULL ? result : "?", b, sizeof(b)));
	if (result != NULL && strcmp(result, "ok") == 0)
		add(line, sizeof(line), "%lld docs  %5.1f MB gzip  %s", docs, gzip_bytes / 1e6,
		    ctl_clean(j_str(coll, "blob"), c, sizeof(c)));
	else if (result != NULL && strcmp(result, "failed") == 0)
		add(line, sizeof(line), "%s", ctl_clean(j_str(coll, "error"), c, sizeof(c)));
	trim_right(line);
	puts(line);
}

/* "last run ID: complete, 2026-11-26 03:00:00 → 03:04:11 UTC" and a line
 * per collection. */
void print_last_run(const bson_t *run)
{
	char id[128], result[32], start[64], end[64];
	const char *finished = j_str(run, "finished");

	utc_text(j_str(run, "started"), start, sizeof(start));
	printf("last run %s: %s, %s", ctl_clean(j_str(run, "run_id"), id, sizeof(id)),
	       ctl_clean(j_str(run, "result") ? j_str(run, "result") : "?", result, sizeof(result)),
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
		printf("  error: %s\n", ctl_clean(j_str(run, "error"), why, sizeof(why)));
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

	printf("mongo-azure-backupd %s", ctl_clean(j_str(doc, "version") ? j_str(doc, "version") : "?",
					       a, sizeof(a)));
	if (j_int(doc, "pid", &pid))
		printf(", pid %lld", pid);
	if (j_int(doc, "uptime_seconds", &up))
		printf(", up %s", duration_text(up, a, sizeof(a)));
	putchar('\n');

	printf("state:        %s", ctl_clean(state != NULL ? state : "unknown", a, sizeof(a)));
	if (j_sub(doc, "current_run", &sub)) {
		size_t done = 0, total = each_object(&sub, "collections", count_done, &done);
		printf(" (run %s, %zu of %zu collection%s done)",
		       ctl_clean(j_str(&sub, "run_id"), a, sizeof(a)), done, total, total == 1 ? "" : "s");
	}
	putchar('\n');

	if (next != NULL) {
		printf("next run:     %s UTC", utc_text(next, a, sizeof(a)));
		if (local != NULL && tz != NULL && strcmp(tz, "UTC") != 0)
			printf(" (%s %s)", ctl_clean(local, b, sizeof(b)), ctl_clean(tz, c, sizeof(c)));
		putchar('\n');
	} else {
		printf("next run:     none\n");
	}

	if (j_sub(doc, "breaker", &sub)) {
		printf("breaker:      %s", ctl_clean(j_str(&sub, "state") ? j_str(&sub, "state") : "?",
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
		printf("last complete backup: %s (%s UTC)\n", ctl_clean(j_str(&sub, "set"), a, sizeof(a)),
		       utc_text(j_str(&sub, "finished"), d, sizeof(d)));
	else
		printf("last complete backup: none\n");
	if (j_sub(doc, "last_reload", &sub))
		printf("last reload:  %s UTC, %s: %s\n", utc_text(j_str(&sub, "at"), d, sizeof(d)),
		       ctl_clean(j_str(&sub, "result"), a, sizeof(a)),
		       ctl_clean(j_str(&sub, "message"), m, sizeof(m)));
	if (j_sub(doc, "last_problem", &sub))
		printf("last %s: %s UTC, %s\n", ctl_clean(j_str(&sub, "level"), a, sizeof(a)),
		       utc_text(j_str(&sub, "at"), d, sizeof(d)),
		       ctl_clean(j_str(&sub, "message"), m, sizeof(m)));

	if (j_sub(doc, "current_run", &sub)) {
		printf("current run:\n");
		each_object(&sub, "collections", print_current_coll, NULL);
	}
	if (j_sub(doc, "last_run", &sub))
		print_last_run(&sub);
}

/* ---- commands that ask the daemon -------------------------------------- */

int tool_cmd_status(struct ctl *c, bool json)
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

int tool_cmd_metrics(struct ctl *c)
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

int tool_cmd_cancel(struct ctl *c)
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
	printf("cancelling run %s\n", ctl_clean(j_str(doc, "run_id"), id, sizeof(id)));
out:
	if (doc != NULL)
		bson_destroy(doc);
	control_reply_free(&reply);
	return r;
}
