/* backup_run_step.c - a backup run's phases, the top of backup_run_*.c:
 * backup_run_start, backup_run_step (listing, manifest, collections,
 * final manifest, verification, retention), and the poll loop's events
 * (backup_run_handle_fds, backup_run_child_exited) that move it on.
 */
#include "config.h"

#include <bson/bson.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backup_run.h"
#include "breaker.h"
#include "child_status.h"
#include "log.h"
#include "manifest.h"
#include "run_secrets.h"
#include "spawn.h"
#include "xio.h"
#include "backup_run_int.h"

static void finish_listing(struct backup_run *run);



void backup_run_step(struct backup_run *run)
{
	double now = monotonic_seconds();

	if (run->phase == RUN_FINISHED)
		return;
	if (!run->cancelled && run->deadline > 0 && monotonic_seconds() >= run->deadline) {
		run->timed_out = true;
		backup_run_cancel(run, "the run exceeded [limits] run_timeout");
	}
	if (run->cancelled && !run->killed && now >= run->kill_at) {
		run->killed = true;
		msg_warn("run %s: helpers still running %.0f s after SIGTERM; killing them "
			 "(SIGKILL)", run->run_id, KILL_GRACE_SECONDS);
		if (run->pgid > 0)
			kill(-run->pgid, SIGKILL);
		for (size_t i = 0; i < run->n_jobs; i++) {
			struct pipeline *pl = &run->jobs[i].pl;
			if (pl->producer.pid > 0)
				kill(pl->producer.pid, SIGKILL);
			if (pl->uploader.pid > 0)
				kill(pl->uploader.pid, SIGKILL);
		}
		if (run->manifest.uploader.pid > 0)
			kill(run->manifest.uploader.pid, SIGKILL);
	}

	switch (run->phase) {
	case RUN_LISTING:
		if (run->list_fd >= 0 || !side_done(&run->lister))
			return;
		if (run->cancelled) {
			finish_run(run);
			return;
		}
		finish_listing(run);
		return;
	case RUN_MANIFEST_START:
		if (manifest_step(run, false) != MANIFEST_WRITTEN)
			return;
		msg_info("run %s: starting: %zu collections of database %s into container %s, "
			 "set %s", run->run_id, run->n_jobs, run->cfg->database,
			 run->cfg->container, run->set_folder);
		run->phase = RUN_COLLECTIONS;
		/* fall through */
	case RUN_COLLECTIONS:
		if (run->cancelled) {
			for (size_t i = 0; i < run->n_jobs; i++)
				if (run->jobs[i].state == JOB_QUEUED)
					job_fail(run, &run->jobs[i], run->failure);
		} else {
			start_jobs(run);
		}
		if (!jobs_all_over(run))
			return;
		run->finish_wall = br_wall_seconds();
		/* However the run ended, its manifest now says what each
		 * collection did; a cancel bounds this by its SIGKILL grace. */
		run->phase = RUN_MANIFEST_END;
		run->manifest_started = false;
		/* fall through */
	case RUN_MANIFEST_END:
		if (manifest_step(run, true) == MANIFEST_PENDING)
			return;
		/* Retention only ever follows a complete run. */
		if (backup_run_exit_code(run) != 0 || run->cancelled) {
			if (start_newest_lookup(run) != 0)
				finish_run(run);
			return;
		}
		run->backup_complete = true;
		run->phase = RUN_VERIFY;
		if (run->cfg->verify_after_backup && start_verifier(run) != 0) {
			snprintf(run->verify_summary, sizeof(run->verify_summary),
				 "FAILED: could not start verify-set");
			msg_error("verify: could not start verify-set; the set is not verified");
		}
		/* fall through */
	case RUN_VERIFY:
		if (!side_done(&run->verifier))
			return;
		if (run->verifier.started)
			verification_over(run);
		if (!run->backup_complete) {
			if (start_newest_lookup(run) != 0)
				finish_run(run);
			return;
		}
		run->phase = RUN_RETENTION;
		if (start_pruner(run, false) != 0) {
			finish_run(run);
			return;
		}
		/* fall through */
	case RUN_RETENTION:
		if (!side_done(&run->pruner))
			return;
		retention_over(run);
		finish_run(run);
		return;
	case RUN_FINISHED:
		return;
	}
}

void backup_run_handle_fds(struct backup_run *run, const struct pollfd *fds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (fds[i].revents == 0)
			continue;
		if (fds[i].fd == run->lister.status_fd)
			side_read(&run->manifest, &run->lister, false);
		else if (fds[i].fd == run->list_fd)
			read_list(run);
		else if (fds[i].fd == run->pruner.status_fd)
			side_read(&run->manifest, &run->pruner, false);
		else if (fds[i].fd == run->verifier.status_fd)
			side_read(&run->manifest, &run->verifier, false);
	}
	pipeline_handle(&run->manifest, fds, n);
	for (size_t i = 0; i < run->n_jobs; i++) {
		pipeline_handle(&run->jobs[i].pl, fds, n);
		job_check(run, &run->jobs[i]);
	}
}

bool backup_run_child_exited(struct backup_run *run, pid_t pid, int wait_status,
			     const struct rusage *usage)
{
	if (pid > 0 && pid == run->verifier.pid) {
		side_reaped(&run->verifier, pid, wait_status);
		if (run->verifier.status_fd >= 0)
			side_read(&run->manifest, &run->verifier, false);
		return true;
	}
	if (pid > 0 && pid == run->pruner.pid) {
		side_reaped(&run->pruner, pid, wait_status);
		if (run->pruner.status_fd >= 0)
			side_read(&run->manifest, &run->pruner, false);
		return true;
	}
	if (pid > 0 && pid == run->lister.pid) {
		side_reaped(&run->lister, pid, wait_status);
		if (run->lister.status_fd >= 0)
			side_read(&run->manifest, &run->lister, false);
		return true;
	}
	if (pipeline_reaped(&run->manifest, pid, wait_status, usage))
		return true;
	for (size_t i = 0; i < run->n_jobs; i++) {
		if (pipeline_reaped(&run->jobs[i].pl, pid, wait_status, usage)) {
			job_check(run, &run->jobs[i]);
			return true;
		}
	}
	return false;
}

/* The jobs are made and in start order: claim the set folder, then run. */
static int begin_collections(struct backup_run *run)
{
	msg_debug("run %s: %zu collections of database %s; claiming set %s", run->run_id,
		  run->n_jobs, run->cfg->database, run->set_folder);
	run->phase = RUN_MANIFEST_START;
	run->manifest_started = false;
	backup_run_step(run);
	return run->phase == RUN_FINISHED ? -1 : 0;
}

/* The configuration's own list, for when the lister could not tell:
 * every database and collection named (kinds unknown: collections),
 * with users and roles.  NULL when something is found only at run time
 * (a * somewhere) or memory ran out; the count in *n. */
static struct job_entry *configured_entries(const struct mab_config *cfg, size_t *n)
{
	struct job_entry *e = NULL;
	size_t count = 0, k = 0;

	*n = 0;
	if (cfg->all_databases)
		return NULL;
	for (size_t i = 0; i < cfg->n_scopes; i++) {
		if (cfg->scopes[i].collections.all)
			return NULL;
		count += cfg->scopes[i].collections.n + (cfg->users_and_roles ? 2 : 0);
	}
	e = calloc(count ? count : 1, sizeof(*e));
	if (e == NULL)
		return NULL;
	for (size_t i = 0; i < cfg->n_scopes; i++) {
		const struct mongo_scope *sc = &cfg->scopes[i];
		for (size_t c = 0; c < sc->collections.n; c++)
			e[k++] = (struct job_entry){ sc->database, sc->collections.names[c],
						     KIND_COLLECTION };
		if (cfg->users_and_roles) {
			e[k++] = (struct job_entry){ sc->database, "$admin.system.roles", KIND_ROLES };
			e[k++] = (struct job_entry){ sc->database, "$admin.system.users", KIND_USERS };
		}
	}
	*n = k;
	return e;
}

/* The lister's entries: database, name, kind, each NUL-terminated.  NULL
 * with why set when the list is cut or holds an unknown kind. */
static struct job_entry *listed_entries(struct backup_run *run, size_t *n, char *why,
					size_t whylen)
{
	size_t strings = 0, k = 0;
	struct job_entry *e;

	*n = 0;
	for (size_t i = 0; i < run->list_len; i++)
		strings += run->list_buf[i] == '\0';
	if (strings % 3 != 0 || (run->list_len > 0 && run->list_buf[run->list_len - 1] != '\0')) {
		snprintf(why, whylen, "the list export-collection wrote is cut short");
		return NULL;
	}
	e = calloc(strings / 3 + 1, sizeof(*e));
	if (e == NULL) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	for (size_t off = 0; off < run->list_len; k++) {
		const char *f[3];
		for (int m = 0; m < 3; m++) {
			f[m] = run->list_buf + off;
			off += strlen(f[m]) + 1;
		}
		int kind = job_kind_from_name(f[2]);
		if (kind < 0) {
			snprintf(why, whylen, "export-collection listed an unknown kind");
			free(e);
			return NULL;
		}
		e[k] = (struct job_entry){ f[0], f[1], (enum job_kind)kind };
	}
	*n = k;
	return e;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One line per change, the names joined up to a reasonable length. */
static void log_changes(const struct backup_run *run, const char *what, char **names,
			size_t n)
{
	char line[1024] = "";
	size_t used = 0, shown = 0;

	if (n == 0)
		return;
	for (; shown < n; shown++) {
		int w = snprintf(line + used, sizeof(line) - used, "%s%s", shown ? ", " : "",
				 names[shown]);
		if (w < 0 || (size_t)w >= sizeof(line) - used - 32)
			break;
		used += (size_t)w;
	}
	if (shown < n)
		snprintf(line + used, sizeof(line) - used, " and %zu more", n - shown);
	msg_notice("run %s: %zu %s since the last run: %s", run->run_id, n, what, line);
}

/* What was found against what the daemon's previous run found: a
 * collection that came or went (collections = *, databases = *) is news
 * for the log, not an error. */
static void report_changes(struct backup_run *run)
{
	static char **last;
	static size_t n_last;
	char **now = calloc(run->n_jobs + 1, sizeof(char *));
	char **added = calloc(run->n_jobs + 1, sizeof(char *));
	char **gone = calloc(n_last + 1, sizeof(char *));
	size_t n_now = 0, n_added = 0, n_gone = 0;

	if (now == NULL || added == NULL || gone == NULL)
		goto out;
	for (size_t i = 0; i < run->n_jobs; i++)
		if (asprintf(&now[n_now], "%s.%s", run->jobs[i].database, run->jobs[i].name) >= 0)
			n_now++;
	qsort(now, n_now, sizeof(char *), by_name);
	if (last != NULL) {
		size_t i = 0, k = 0;
		while (i < n_now || k < n_last) {
			int c = i == n_now ? 1 : k == n_last ? -1 : strcmp(now[i], last[k]);
			if (c < 0)
				added[n_added++] = now[i++];
			else if (c > 0)
				gone[n_gone++] = last[k++];
			else
				i++, k++;
		}
		log_changes(run, "new", added, n_added);
		log_changes(run, "gone", gone, n_gone);
	}
	for (size_t i = 0; i < n_last; i++)
		free(last[i]);
	free(last);
	last = now;
	n_last = n_now;
	now = NULL;
out:
	free(now);
	free(added);
	free(gone);
}

static void finish_listing(struct backup_run *run)
{
	struct job_entry *entries = NULL;
	char why[sizeof(run->lister.error)] = "";
	size_t n = 0;
	bool use_sizes = true;

	if (!side_succeeded(&run->lister) || run->lister.error[0]) {
		char how[96];
		br_describe_exit(run->lister.wait_status, how, sizeof(how));
		snprintf(why, sizeof(why), "%s", run->lister.error[0] ? run->lister.error : how);
	} else {
		entries = listed_entries(run, &n, why, sizeof(why));
	}
	if (entries == NULL) {
		/* With every database and collection named, the run does
		 * without the listing: it costs the start order (and a view or
		 * time-series collection named is exported as a collection,
		 * which its export refuses). */
		entries = configured_entries(run->cfg, &n);
		if (entries == NULL) {
			snprintf(run->failure, sizeof(run->failure),
				 "cannot list what to back up: %s", why);
			goto fail;
		}
		msg_warn("run %s: no size estimates (export-collection --list: %s); the "
			 "collections start in configuration order", run->run_id, why);
		use_sizes = false;
	}
	if (create_jobs(run, entries, n) != 0)
		goto fail;
	free(entries);
	report_changes(run);
	order_jobs(run, use_sizes);
	begin_collections(run);
	return;
fail:
	free(entries);
	run->n_failed = (int)run->n_jobs;
	run->finish_wall = br_wall_seconds();
	finish_run(run);
}

int backup_run_start(struct backup_run *run, const struct mab_config *cfg,
		     struct breaker *breaker, const struct run_as *run_as)
{
	struct tm tm;

	memset(run, 0, sizeof(*run));
	run->cfg = cfg;
	run->breaker = breaker;
	run->run_as = run_as;
	run->pgid = 0;
	run->list_fd = -1;
	run->config_fd = -1;
	run->secrets_fd = -1;
	run->start = time(NULL);
	run->start_mono = monotonic_seconds();
	run->deadline = run->start_mono + cfg->run_timeout;
	pipeline_init(&run->manifest, "");
	side_init(&run->lister);
	side_init(&run->pruner);
	side_init(&run->verifier);
	gmtime_r(&run->start, &tm);
	strftime(run->run_id, sizeof(run->run_id), "%Y%m%dT%H%M%SZ", &tm);
	/* The sequence keeps ids unique when two runs start in one second. */
	static unsigned run_sequence;
	snprintf(run->run_id + strlen(run->run_id), sizeof(run->run_id) - strlen(run->run_id),
		 "-%ld-%u", (long)getpid(), ++run_sequence);
	if (snapshot_config(run) != 0)
		return -1;
	/* Read now, as the supervisor: the helpers may not be able to. */
	run->secrets_fd = secrets_snapshot(cfg, run->failure, sizeof(run->failure));
	if (run->secrets_fd < 0)
		return -1;
	/* What to back up is listed at each run: databases and collections
	 * found, the kind of each, and their sizes for the start order. */
	run->phase = RUN_LISTING;
	if (start_lister(run) == 0)
		return 0;
	size_t n;
	struct job_entry *entries = configured_entries(cfg, &n);
	if (entries == NULL)
		return -1;
	msg_warn("run %s: no size estimates (%s); the collections start in configuration "
		 "order", run->run_id, run->failure);
	run->failure[0] = '\0';
	int r = create_jobs(run, entries, n);
	free(entries);
	if (r != 0) {
		finish_run(run);
		return -1;
	}
	/* It may have ended (and said so) on its own already. */
	return begin_collections(run);
}
