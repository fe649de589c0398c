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

/* Only a list of exactly the configured collections, in their order, lets
 * the size records' indexes name the jobs. */
static bool listed_as_configured(const struct backup_run *run)
{
	const struct mab_config *cfg = run->cfg;
	size_t off = 0;

	for (size_t i = 0; i < cfg->n_collections; i++) {
		if (off >= run->list_len || strcmp(run->list_buf + off, cfg->collections[i]) != 0)
			return false;
		off += strlen(run->list_buf + off) + 1;
	}
	return off == run->list_len;
}

static void finish_listing(struct backup_run *run)
{
	char **names = NULL;
	char why[sizeof(run->lister.error)] = "";
	size_t n = 0;

	if (!side_succeeded(&run->lister) || run->lister.error[0] ||
	    (run->list_len > 0 && run->list_buf[run->list_len - 1] != '\0')) {
		char how[96];
		br_describe_exit(run->lister.wait_status, how, sizeof(how));
		snprintf(why, sizeof(why), "%s", run->lister.error[0] ? run->lister.error : how);
	}
	if (!run->cfg->all_collections) {
		/* The jobs are the configured ones: the listing only orders them,
		 * and a run never fails for the want of an order. */
		bool usable = why[0] == '\0' && listed_as_configured(run);
		if (why[0])
			msg_warn("run %s: no size estimates (export-collection --list: %s); the "
				 "collections start in configuration order", run->run_id, why);
		else if (!usable)
			msg_warn("run %s: export-collection --list did not list the configured "
				 "collections; they start in configuration order", run->run_id);
		order_jobs(run, usable);
		begin_collections(run);
		return;
	}
	if (why[0]) {
		snprintf(run->failure, sizeof(run->failure),
			 "cannot list the collections of database '%s': %s", run->cfg->database,
			 why);
		goto fail;
	}
	for (size_t i = 0; i < run->list_len; i++)
		if (run->list_buf[i] == '\0')
			n++;
	names = calloc(n + 1, sizeof(char *));
	if (names == NULL) {
		snprintf(run->failure, sizeof(run->failure), "out of memory");
		goto fail;
	}
	size_t k = 0;
	for (size_t off = 0; off < run->list_len; off += strlen(run->list_buf + off) + 1)
		names[k++] = run->list_buf + off;
	if (create_jobs(run, names, n) != 0)
		goto fail;
	free(names);
	order_jobs(run, true);
	begin_collections(run);
	return;
fail:
	free(names);
	run->n_failed = (int)run->n_jobs;
	run->finish_wall = br_wall_seconds();
	finish_run(run);
}

int backup_run_start(struct backup_run *run, const struct mab_config *cfg,
		     struct breaker *breaker, const struct run_as *run_as,
		     char *const *collections, size_t n_collections)
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
	if (collections == NULL && cfg->all_collections) {
		run->phase = RUN_LISTING;
		return start_lister(run);
	}
	if (collections == NULL) {
		collections = cfg->collections;
		n_collections = cfg->n_collections;
	}
	if (create_jobs(run, collections, n_collections) != 0) {
		finish_run(run);
		return -1;
	}
	/* The configured collections are listed too, for their sizes only:
	 * one query each, and the run goes on without them. */
	if (collections == cfg->collections) {
		run->phase = RUN_LISTING;
		if (start_lister(run) == 0)
			return 0;
		msg_warn("run %s: no size estimates (%s); the collections start in "
			 "configuration order", run->run_id, run->failure);
		run->failure[0] = '\0';
	}
	/* It may have ended (and said so) on its own already. */
	return begin_collections(run);
}
