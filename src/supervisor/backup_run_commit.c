/* backup_run_commit.c - how a backup run ends: the manifest uploaded
 * first incomplete and last complete (in a set folder of its own), the
 * run's result logged, then verification and retention run through their
 * helpers (verify-set, prune-sets).
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



static int start_manifest_upload(struct backup_run *run, bool final)
{
	int data[2];
	struct spawn_limits limits;
	char blob[BLOB_NAME_MAX];

	bson_free(run->manifest_json);
	run->manifest_json = manifest_encode(run, final);
	if (run->manifest_json == NULL) {
		snprintf(run->failure, sizeof(run->failure), "cannot encode the manifest");
		return -1;
	}
	snprintf(blob, sizeof(blob), "%s", run->manifest_blob);
	pipeline_init(&run->manifest, blob);
	run->manifest.self_produced = true;
	run->manifest.buffer = run->manifest_json;
	run->manifest.buffer_len = strlen(run->manifest_json);
	run_limits(run, &limits);
	if (pipe2(data, O_CLOEXEC) != 0) {
		snprintf(run->failure, sizeof(run->failure), "cannot create a pipe: %s",
			 strerror(errno));
		return -1;
	}
	/* The first manifest claims the set folder: it must not exist yet. */
	if (start_uploader(run, &run->manifest, data[0], "application/json", !final,
			   &limits) != 0) {
		snprintf(run->failure, sizeof(run->failure), "cannot start %s/upload-blob: %s",
			 helper_dir(), strerror(errno));
		close(data[0]);
		close(data[1]);
		return -1;
	}
	close(data[0]);
	fd_set_nonblock(data[1], 1);
	run->manifest.buffer_fd = data[1];
	return 0;
}

static void log_run_result(struct backup_run *run)
{
	double seconds = monotonic_seconds() - run->start_mono;

	if (run->manifest_failed || run->failure[0] || run->n_ok == 0) {
		if (!run->failure[0])
			snprintf(run->failure, sizeof(run->failure), "every collection failed");
		msg_error("run %s: FAILED after %.1f s: %s (%d of %zu collections backed up)",
			  run->run_id, seconds, run->failure, run->n_ok, run->n_jobs);
	} else if (run->n_failed > 0) {
		char names[400] = "";
		size_t used = 0;
		for (size_t i = 0; i < run->n_jobs && used < sizeof(names) - 1; i++) {
			if (run->jobs[i].state != JOB_FAILED)
				continue;
			int n = snprintf(names + used, sizeof(names) - used, "%s%s",
					 used ? ", " : "", run->jobs[i].name);
			if (n > 0)
				used += (size_t)n;
		}
		msg_error("run %s: PARTIAL after %.1f s: %d of %zu collections failed (%s); "
			  "set %s is marked incomplete", run->run_id, seconds, run->n_failed,
			  run->n_jobs, names, run->set_folder);
	} else {
		msg_info("run %s: complete after %.1f s: %zu collections, set %s%s%s%s",
			 run->run_id, seconds, run->n_jobs, run->set_folder,
			 run->verify_summary[0] ? ", verified" : "",
			 run->retention_summary[0] ? "; retention: " : "", run->retention_summary);
	}
}

void finish_run(struct backup_run *run)
{
	run->phase = RUN_FINISHED;
	if (run->finish_wall == 0)
		run->finish_wall = br_wall_seconds();
	log_run_result(run);
}

/* prune-sets, after a complete run, through the breaker like any storage
 * work.  Its failure is logged but does not undo the backup: the run stays
 * complete, and the next run prunes again. */
/* Starts a helper that only talks on its status socket (prune-sets,
 * verify-set), with the run's configuration and limits. */
static int start_status_helper(struct backup_run *run, struct side *side, char *const argv[])
{
	char path[PATH_MAX];
	int sv[2];
	struct spawn_limits limits;

	side_init(side);
	run_limits(run, &limits);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		msg_error("%s: cannot create a socket: %s", argv[0], strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", helper_dir(), argv[0]);
	struct spawn_request req = {
		.path = path, .argv = argv, .stdin_fd = -1, .stdout_fd = -1,
		.status_fd = sv[1], .config_fd = run->config_fd, .secrets_fd = run->secrets_fd,
		.run_as = run->run_as, .pgid = &run->pgid,
		.limits = &limits,
	};
	pid_t pid = spawn_child(&req);
	int saved = errno;
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		msg_error("cannot start %s: %s", path, strerror(saved));
		return -1;
	}
	fd_set_nonblock(sv[0], 1);
	side->pid = pid;
	side->started = true;
	side->status_fd = sv[0];
	return 0;
}

/* prune-sets, after a complete run, through the breaker like any storage
 * work.  Its failure is logged but does not undo the backup: the run stays
 * complete, and the next run prunes again. */
int start_pruner(struct backup_run *run, bool dry_run)
{
	if (!breaker_allow(run->breaker, time(NULL))) {
		if (dry_run)
			return -1;
		msg_warn("retention: skipped, the storage breaker is open; the next run "
			 "prunes instead");
		snprintf(run->retention_summary, sizeof(run->retention_summary),
			 "skipped: the storage breaker is open");
		return -1;
	}
	char *argv[] = { "prune-sets", "-c", run->config_path, "--status-fd", "3",
			 "--current-set", run->set_folder, NULL };
	if (dry_run) {
		argv[5] = "--dry-run";
		argv[6] = NULL;
	}
	run->pruner_dry_run = dry_run;
	if (start_status_helper(run, &run->pruner, argv) != 0) {
		breaker_release(run->breaker);
		return -1;
	}
	return 0;
}

/* After a run that did not end complete: prune-sets --dry-run deletes
 * nothing but finds the newest complete set in storage, so status tells
 * the truth about the last good backup.  Not when cancelled (a stop must
 * not wait on the storage).  0 when started (phase RUN_RETENTION). */
int start_newest_lookup(struct backup_run *run)
{
	if (run->cancelled || start_pruner(run, true) != 0)
		return -1;
	run->phase = RUN_RETENTION;
	return 0;
}

/* [verify] after_backup: read the new set back and check it against its
 * manifest before anything old is pruned. */
int start_verifier(struct backup_run *run)
{
	char *argv[] = { "verify-set", "-c", run->config_path, "--status-fd", "3",
			 run->set_folder, NULL };

	return start_status_helper(run, &run->verifier, argv);
}

void verification_over(struct backup_run *run)
{
	struct side *v = &run->verifier;
	char how[96];

	if (side_succeeded(v)) {
		snprintf(run->verify_summary, sizeof(run->verify_summary), "verified");
		msg_info("verify: set %s read back and matches its manifest", run->set_folder);
		return;
	}
	br_describe_exit(v->wait_status, how, sizeof(how));
	snprintf(run->verify_summary, sizeof(run->verify_summary), "FAILED: %s",
		 v->error[0] ? v->error : how);
	/* A set that does not read back is not a good backup, and nothing old
	 * may be pruned on its account. */
	run->backup_complete = false;
	run->verify_failed = true;
	snprintf(run->failure, sizeof(run->failure), "verification of %s failed: %s",
		 run->set_folder, v->error[0] ? v->error : how);
}

void retention_over(struct backup_run *run)
{
	struct side *p = &run->pruner;

	if (run->pruner_dry_run) {
		if (side_succeeded(p))
			breaker_success(run->breaker);
		else
			breaker_release(run->breaker);
		if (!side_succeeded(p))
			msg_warn("could not learn the newest complete set from the storage: %s",
				 p->error[0] ? p->error : "prune-sets --dry-run failed");
		return;
	}
	run->retention_done = true;
	if (side_succeeded(p)) {
		breaker_success(run->breaker);
		snprintf(run->retention_summary, sizeof(run->retention_summary),
			 "%llu sets deleted (%llu blobs), %llu kept",
			 (unsigned long long)p->documents, (unsigned long long)p->bson_bytes,
			 (unsigned long long)p->gzip_bytes);
		msg_info("retention: %s", run->retention_summary);
		return;
	}
	/* The run reached the storage before retention, so "unreachable" now
	 * is an outage like the others. */
	if (strcmp(p->error_class, ERR_CLASS_SERVER) == 0 ||
	    strcmp(p->error_class, ERR_CLASS_TRANSPORT) == 0 ||
	    strcmp(p->error_class, ERR_CLASS_UNREACHABLE) == 0)
		breaker_failure(run->breaker, time(NULL));
	else
		breaker_release(run->breaker);
	char how[96];
	br_describe_exit(p->wait_status, how, sizeof(how));
	snprintf(run->retention_summary, sizeof(run->retention_summary), "failed: %s",
		 p->error[0] ? p->error : how);
	msg_error("retention: %s; no backup set was lost, the next run tries again",
		  run->retention_summary + 8);
}

/* The first manifest found its folder taken by an earlier set: move the
 * run to the next numbered folder.  -1 when there is none left. */
static int next_set_folder(struct backup_run *run)
{
	char taken[BLOB_NAME_MAX];

	snprintf(taken, sizeof(taken), "%s", run->set_folder);
	if (run->set_seq >= PATH_SET_SEQ_MAX) {
		snprintf(run->failure, sizeof(run->failure), "%s and its %u numbered siblings "
			 "already hold backup sets", taken, PATH_SET_SEQ_MAX - 1);
		return -1;
	}
	run->set_seq++;
	if (name_blobs(run) != 0)
		return -1;
	msg_info("run %s: %s already holds a backup set, which stays as it is; this run "
		 "writes %s", run->run_id, taken, run->set_folder);
	return 0;
}

/* Writes the manifest through the breaker: first to claim the run's own set
 * folder (create-only, marked incomplete), last with every collection's
 * result.  A transient storage failure waits and tries again until the
 * run's deadline; anything else gives up at once.  A cancelled run still
 * writes its final manifest (one try, even with the breaker open), unless
 * the SIGKILL escalation came first or that try fails: then the first one,
 * which claims nothing, stays. */
enum manifest_progress manifest_step(struct backup_run *run, bool final)
{
	struct pipeline *pl = &run->manifest;
	char why[600];

	if (!run->manifest_started) {
		if (run->cancelled && (!final || run->killed)) {
			if (!run->failure[0])
				snprintf(run->failure, sizeof(run->failure), "cancelled");
			goto give_up_quietly;
		}
		if (!run->cancelled && time(NULL) < run->manifest_not_before)
			return MANIFEST_PENDING;
		/* A cancelled run's final manifest gets one try whatever the
		 * breaker says: an outage of the data uploads need not be one of
		 * the manifest's, and the set should say what became of each
		 * collection.  Its answer still tells the breaker. */
		if (!breaker_allow(run->breaker, time(NULL)) && !run->cancelled)
			return MANIFEST_PENDING;
		run->manifest_started = true;
		if (start_manifest_upload(run, final) != 0) {
			breaker_release(run->breaker);
			goto give_up_quietly;
		}
	}
	pipeline_decide(pl);
	if (!pipeline_done(pl))
		return MANIFEST_PENDING;
	tell_breaker(run, pl);
	if (pipeline_succeeded(pl)) {
		if (!final)
			run->set_claimed = true;
		return MANIFEST_WRITTEN;
	}
	pipeline_failure(pl, "the supervisor", why, sizeof(why));
	if (!final && !run->cancelled &&
	    strcmp(pl->uploader.error_class, ERR_CLASS_EXISTS) == 0) {
		if (next_set_folder(run) != 0)
			goto give_up_quietly;
		run->manifest_started = false;
		run->manifest_not_before = 0;
		pipeline_init(pl, run->manifest_blob);
		return manifest_step(run, final);
	}
	/* A killed upload-blob may have committed the manifest before it died:
	 * the final one is written whole again, and the first one's create-only
	 * retry recognises its own content.  Either way it is worth another try,
	 * as often as a collection's blob would get. */
	if (!run->cancelled && uploader_died(pl) &&
	    run->manifest_deaths < run->cfg->export_retries) {
		int delay = EXPORT_RETRY_BASE_SECONDS << run->manifest_deaths++;
		msg_warn("%s: %s; trying again in %d s", run->manifest_blob, why, delay);
		run->manifest_started = false;
		run->manifest_not_before = time(NULL) + delay;
		pipeline_init(pl, run->manifest_blob);
		return MANIFEST_PENDING;
	}
	if (!run->cancelled && storage_transient_failure(run, pl)) {
		int delay = storage_retry_delay(++run->manifest_failures);
		msg_warn("%s: the storage failed (%s); trying again in %d s or when the "
			 "breaker allows", run->manifest_blob, why, delay);
		run->manifest_started = false;
		run->manifest_not_before = time(NULL) + delay;
		pipeline_init(pl, run->manifest_blob);
		return MANIFEST_PENDING;
	}
	const char *advice = storage_fatal_failure(run, pl);
	if (run->cancelled)
		;	/* the reason for the cancel says more than "aborted" */
	else if (final && run->failure[0])
		/* A storage failure already ended the run; that is its cause. */
		msg_error("could not write the final %s: %s", run->manifest_blob, why);
	else if (final)
		snprintf(run->failure, sizeof(run->failure), "could not write the final %s: %s",
			 run->manifest_blob, why);
	else
		snprintf(run->failure, sizeof(run->failure),
			 "could not write %s, so no collection was exported: %s%s",
			 run->manifest_blob, why, advice ? advice : "");
give_up_quietly:
	run->manifest_failed = true;
	if (final && run->cancelled)
		msg_warn("%s: the final manifest was not written; the set stays marked "
			 "incomplete with every collection pending", run->manifest_blob);
	if (!final) {
		for (size_t i = 0; i < run->n_jobs; i++) {
			if (run->jobs[i].state == JOB_FAILED)
				continue;
			run->jobs[i].state = JOB_FAILED;
			snprintf(run->jobs[i].error, sizeof(run->jobs[i].error),
				 "not attempted: %s", run->failure);
		}
		run->n_failed = (int)run->n_jobs;
		run->phase = RUN_MANIFEST_END;
		finish_run(run);
	}
	return MANIFEST_GAVE_UP;
}
