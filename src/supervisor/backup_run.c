/* backup_run.c - drive one backup run through its phases.
 *
 * Phases: upload the manifest marked incomplete; run up to [limits] parallel
 * collection pipelines (data blob, then metadata blob); upload the final
 * manifest.  Each pipeline is export-collection | upload-blob with a status
 * socket to each child.  upload-blob stages blocks and waits; it is told to
 * commit only when the producer exited 0, reported "result ok", and the
 * byte count the uploader received equals what the producer wrote.  Anything
 * else is an abort, so a failed export never becomes a committed blob.
 *
 * This file owns the phases (backup_run_step), the jobs and their
 * failures and retries, the timeout and cancel; the plan, the pipelines
 * and the commit are in backup_run_plan.c, backup_run_pipeline.c and
 * backup_run_commit.c (backup_run_int.h).
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

#define KILL_GRACE_SECONDS 10.0
#define DUE_RECHECK_SECONDS 0.25
#define EXPORT_RETRY_BASE_SECONDS 2

double monotonic_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double wall_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}


static int count_running(const struct backup_run *run)
{
	int n = 0;

	for (size_t i = 0; i < run->n_jobs; i++)
		if (run->jobs[i].state == JOB_DATA || run->jobs[i].state == JOB_METADATA)
			n++;
	return n;
}

static void job_fail(struct backup_run *run, struct collection_job *job, const char *why)
{
	snprintf(job->error, sizeof(job->error), "%s", why);
	job->state = JOB_FAILED;
	job->seconds = monotonic_seconds() - job->started;
	run->n_failed++;
	msg_error("collection %s: FAILED after %.1f s: %s; nothing committed for %s",
		  job->name, job->seconds, why, job->blob);
}

static void job_succeeded(struct backup_run *run, struct collection_job *job)
{
	double mb = (double)job->bson_bytes / 1e6;
	double ratio = job->bson_bytes ? 100.0 * (double)job->gzip_bytes /
					 (double)job->bson_bytes : 0.0;

	job->state = JOB_DONE;
	job->seconds = monotonic_seconds() - job->started;
	run->n_ok++;
	msg_info("collection %s: ok, %llu documents, %llu BSON bytes, %llu gzip bytes "
		 "(%.1f%%), %.1f s, %.1f MB/s, blob %s", job->name,
		 (unsigned long long)job->documents, (unsigned long long)job->bson_bytes,
		 (unsigned long long)job->gzip_bytes, ratio, job->seconds,
		 job->seconds > 0 ? mb / job->seconds : 0.0, job->blob);
}

/* Only MongoDB trouble is worth another attempt within the run; a missing
 * collection or a refused credential will not fix itself in seconds. */
static bool export_retryable(const struct pipeline *pl)
{
	return strcmp(pl->producer.error_class, ERR_CLASS_MONGO) == 0;
}

/* Whether any request of this run has reached the storage.  Claiming the
 * set folder is the run's first storage request, so a committed claim, a
 * folder found taken (409), or a claim attempt that was counted as a
 * transient failure (a 5xx, or a connection that was made and then lost)
 * all mean something answers at the endpoint. */
static bool storage_answered(const struct backup_run *run)
{
	return run->set_claimed || run->set_seq > 1 || run->manifest_failures > 0;
}

static bool uploader_failed_with(const struct pipeline *pl, const char *class)
{
	return pl->uploader.started && !side_succeeded(&pl->uploader) &&
	       strcmp(pl->uploader.error_class, class) == 0;
}

/* What an ended pipeline says about the storage: an outage, which the
 * breaker paces and run_timeout bounds.  "unreachable" (nothing listened,
 * the name did not resolve) is one only when the storage has answered this
 * run before; otherwise the endpoint is most likely wrong (below). */
bool storage_transient_failure(const struct backup_run *run,
			       const struct pipeline *pl)
{
	return uploader_failed_with(pl, ERR_CLASS_SERVER) ||
	       uploader_failed_with(pl, ERR_CLASS_TRANSPORT) ||
	       (uploader_failed_with(pl, ERR_CLASS_UNREACHABLE) && storage_answered(run));
}

/* A storage failure that no later attempt of this run can get past:
 * refused credentials, a missing container (upload-blob's notfound; it
 * creates the container itself when create_container = yes), settings no
 * retry mends (an untrusted certificate), or an endpoint that never
 * answered.  Returns advice to add to the child's message, or NULL. */
const char *storage_fatal_failure(const struct backup_run *run,
				  const struct pipeline *pl)
{
	if (uploader_failed_with(pl, ERR_CLASS_AUTH) ||
	    uploader_failed_with(pl, ERR_CLASS_NOTFOUND) ||
	    uploader_failed_with(pl, ERR_CLASS_CONFIG))
		return "";
	if (uploader_failed_with(pl, ERR_CLASS_UNREACHABLE) && !storage_answered(run))
		return "; no request of this run has reached the storage, so this is a "
		       "wrong endpoint rather than an outage: check BlobEndpoint (or "
		       "AccountName and EndpointSuffix) in the connection string";
	return NULL;
}

void tell_breaker(struct backup_run *run, const struct pipeline *pl)
{
	if (pipeline_succeeded(pl))
		breaker_success(run->breaker);
	else if (storage_transient_failure(run, pl))
		breaker_failure(run->breaker, time(NULL));
	else
		breaker_release(run->breaker);
}

int storage_retry_delay(int storage_failures)
{
	int shift = storage_failures < 5 ? storage_failures : 5;

	return 1 << shift;   /* 2, 4, ... 32 s; the breaker paces it further */
}

/* A storage failure no retry can mend ends the run now instead of at
 * run_timeout: this collection fails with the cause, every collection
 * still queued fails unattempted, and the cause is the run's.  Pipelines
 * already running end by themselves (they meet the same refusal); nothing
 * is cancelled, so whatever did commit stays committed and the final
 * manifest says so. */
static void fail_run_at_once(struct backup_run *run, struct collection_job *job,
			     const char *cause)
{
	int unattempted = 0;

	if (!run->failure[0])
		snprintf(run->failure, sizeof(run->failure), "%s", cause);
	job_fail(run, job, cause);
	for (size_t i = 0; i < run->n_jobs; i++) {
		struct collection_job *other = &run->jobs[i];
		if (other->state != JOB_QUEUED)
			continue;
		/* Not job_fail(): a job never started has no time to report. */
		other->state = JOB_FAILED;
		snprintf(other->error, sizeof(other->error), "%snot attempted: %s",
			 other->data_done ? "its metadata blob was " : "", cause);
		run->n_failed++;
		unattempted++;
	}
	if (unattempted > 0)
		msg_error("run %s: %d more collection%s not attempted: the storage will refuse "
			  "them the same way", run->run_id, unattempted,
			  unattempted == 1 ? "" : "s");
}

void job_pipeline_over(struct backup_run *run, struct collection_job *job)
{
	struct pipeline *pl = &job->pl;
	char why[600];

	tell_breaker(run, pl);
	if (!pipeline_succeeded(pl)) {
		/* Cancelled: the children died of the supervisor's signals, and
		 * the reason for the cancel is the one to record. */
		if (run->cancelled && run->failure[0])
			snprintf(why, sizeof(why), "%s", run->failure);
		else
			pipeline_failure(pl, "export-collection", why, sizeof(why));
		const char *advice = run->cancelled ? NULL : storage_fatal_failure(run, pl);
		if (advice != NULL) {
			char cause[sizeof(why) + 300];
			snprintf(cause, sizeof(cause), "%s%s", why, advice);
			fail_run_at_once(run, job, cause);
			return;
		}
		if (!run->cancelled && storage_transient_failure(run, pl) &&
		    strcmp(pl->producer.error_class, ERR_CLASS_MONGO) != 0) {
			/* An outage delays the backup; only run_timeout ends it. */
			int delay = storage_retry_delay(++job->storage_failures);
			msg_warn("collection %s: the storage failed (%s); queued again, next "
				 "attempt in %d s or when the breaker allows", job->name, why, delay);
			job->state = JOB_QUEUED;
			job->not_before = time(NULL) + delay;
			return;
		}
		/* A dead upload-blob is a local accident (memory limit, OOM
		 * killer, an operator's kill): another attempt may well pass. */
		if (!run->cancelled && (export_retryable(pl) || uploader_died(pl)) &&
		    job->attempts <= run->cfg->export_retries) {
			int delay = EXPORT_RETRY_BASE_SECONDS << (job->attempts - 1);
			msg_warn("collection %s: attempt %d failed: %s; retrying in %d s",
				 job->name, job->attempts, why, delay);
			job->state = JOB_QUEUED;
			job->not_before = time(NULL) + delay;
			return;
		}
		job_fail(run, job, why);
		return;
	}
	if (job->state == JOB_DATA) {
		job->documents = pl->producer.documents;
		job->bson_bytes = pl->producer.bson_bytes;
		job->gzip_bytes = pl->uploaded_bytes;
		snprintf(job->md5, sizeof(job->md5), "%s", pl->md5);
		snprintf(job->sha256, sizeof(job->sha256), "%s", pl->sha256);
		/* The metadata blob waits its turn like any upload. */
		job->data_done = true;
		job->attempts = 0;
		job->state = JOB_QUEUED;
		job->not_before = 0;
		return;
	}
	job_succeeded(run, job);
}

static void start_jobs(struct backup_run *run)
{
	time_t now = time(NULL);

	for (size_t i = 0; i < run->n_jobs && count_running(run) < run->cfg->parallel; i++) {
		struct collection_job *job = &run->jobs[i];
		char err[256];

		if (job->state != JOB_QUEUED || job->not_before > now)
			continue;
		/* While the breaker is open nothing new talks to the storage. */
		if (!breaker_allow(run->breaker, now))
			return;
		/* Attempts count per blob: the metadata's own retries are not
		 * spent by the data's. */
		job->attempts++;
		if (job->started == 0)
			job->started = monotonic_seconds();
		pipeline_init(&job->pl, job->data_done ? job->metadata_blob : job->blob);
		job->state = job->data_done ? JOB_METADATA : JOB_DATA;
		msg_debug("collection %s: starting %s to %s (attempt %d)", job->name,
			  job->data_done ? "metadata export" : "export", job->pl.blob,
			  job->attempts);
		if (start_export_pipeline(run, &job->pl, job->name, job->data_done, err,
					  sizeof(err)) != 0) {
			snprintf(job->pl.producer.error, sizeof(job->pl.producer.error), "%s", err);
			snprintf(job->pl.producer.error_class,
				 sizeof(job->pl.producer.error_class), "%s", ERR_CLASS_LOCAL);
			if (pipeline_done(&job->pl)) {
				breaker_release(run->breaker);
				job_fail(run, job, err);
			}
		}
	}
}

static bool jobs_all_over(const struct backup_run *run)
{
	for (size_t i = 0; i < run->n_jobs; i++)
		if (run->jobs[i].state != JOB_DONE && run->jobs[i].state != JOB_FAILED)
			return false;
	return true;
}

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
		run->finish_wall = wall_seconds();
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

/* Seconds until work that is due at not_before may start: not before then,
 * nor while the breaker is open.  Work already due waits for a free slot or
 * a half-open trial's end (events), so it gets a quarter-second recheck as
 * a safety net instead of a zero timeout that would spin the loop. */
static double queued_wait(time_t not_before, time_t now, int breaker_wait)
{
	double w = (double)(not_before - now);

	if (w < breaker_wait)
		w = breaker_wait;
	return w > 0 ? w : DUE_RECHECK_SECONDS;
}

static void earliest(double *wait, bool *have_wait, double w)
{
	if (!*have_wait || w < *wait)
		*wait = w;
	*have_wait = true;
}

int backup_run_timeout_ms(const struct backup_run *run)
{
	double wait = 0;
	bool have_wait = false;
	time_t now = time(NULL);
	int breaker_wait = breaker_wait_seconds(run->breaker, now);

	if (run->phase == RUN_FINISHED)
		return -1;
	if (run->deadline > 0)
		earliest(&wait, &have_wait, run->deadline - monotonic_seconds());
	if (run->cancelled && !run->killed)
		earliest(&wait, &have_wait, run->kill_at - monotonic_seconds());
	if ((run->phase == RUN_MANIFEST_START || run->phase == RUN_MANIFEST_END) &&
	    !run->manifest_started)
		earliest(&wait, &have_wait,
			 queued_wait(run->manifest_not_before, now, breaker_wait));
	for (size_t i = 0; i < run->n_jobs; i++)
		if (run->jobs[i].state == JOB_QUEUED && run->phase == RUN_COLLECTIONS)
			earliest(&wait, &have_wait,
				 queued_wait(run->jobs[i].not_before, now, breaker_wait));
	if (!have_wait)
		return -1;
	if (wait <= 0)
		return 0;
	return wait > 3600 ? 3600 * 1000 : (int)(wait * 1000) + 1;
}

bool backup_run_finished(const struct backup_run *run)
{
	return run->phase == RUN_FINISHED;
}

static void signal_side(const struct side *s, int sig)
{
	if (s->pid > 0)
		kill(s->pid, sig);
}

void backup_run_cancel(struct backup_run *run, const char *why)
{
	if (run->cancelled || run->phase == RUN_FINISHED)
		return;
	run->cancelled = true;
	run->kill_at = monotonic_seconds() + KILL_GRACE_SECONDS;
	snprintf(run->failure, sizeof(run->failure), "%s", why);
	msg_warn("run %s: cancelling: %s", run->run_id, why);
	for (size_t i = 0; i < run->n_jobs; i++) {
		struct pipeline *pl = &run->jobs[i].pl;
		if (run->jobs[i].state != JOB_DATA && run->jobs[i].state != JOB_METADATA)
			continue;
		/* Abort first, so an uploader that already staged never commits. */
		if (!pl->decided || pl->committed) {
			if (!pl->committed) {
				pl->decided = true;
				send_to_uploader(pl, "abort");
			}
		}
		signal_side(&pl->producer, SIGTERM);
		if (!pl->committed)
			signal_side(&pl->uploader, SIGTERM);
	}
	signal_side(&run->lister, SIGTERM);
	signal_side(&run->pruner, SIGTERM);
	signal_side(&run->verifier, SIGTERM);
	if (run->phase == RUN_MANIFEST_START) {
		run->manifest.decided = true;
		send_to_uploader(&run->manifest, "abort");
		signal_side(&run->manifest.uploader, SIGTERM);
	}
}

bool backup_run_newest_complete(const struct backup_run *run, const char **set,
				int64_t *finished)
{
	if (!run->pruner.started || !side_succeeded(&run->pruner) ||
	    run->pruner.newest_finished < 0)
		return false;
	*set = run->pruner.newest_set;
	*finished = run->pruner.newest_finished;
	return true;
}

int backup_run_exit_code(const struct backup_run *run)
{
	/* A stop during retention does not undo a complete backup. */
	if (run->verify_failed)
		return 1;
	if (run->backup_complete)
		return 0;
	if (run->manifest_failed || run->cancelled || run->n_failed > 0 ||
	    run->n_ok != (int)run->n_jobs)
		return 1;
	return 0;
}
