/* backup_run.c - drive one backup run through its phases.
 *
 * Phases: upload the manifest marked incomplete; run up to [limits] parallel
 * collection pipelines (data blob, then metadata blob); upload the final
 * manifest.  Each pipeline is export-collection | upload-blob with a status
 * socket to each child.  upload-blob stages blocks and waits; it is told to
 * commit only when the producer exited 0, reported "result ok", and the
 * byte count the uploader received equals what the producer wrote.  Anything
 * else is an abort, so a failed export never becomes a committed blob.
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

#define KILL_GRACE_SECONDS 10.0
#define DUE_RECHECK_SECONDS 0.25
#define EXPORT_RETRY_BASE_SECONDS 2

double monotonic_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void read_list(struct backup_run *run);
static void finish_listing(struct backup_run *run);
static int name_blobs(struct backup_run *run);

static void side_init(struct side *s)
{
	memset(s, 0, sizeof(*s));
	s->status_fd = -1;
	s->estimate = -1;
	s->newest_finished = -1;
}

static void pipeline_init(struct pipeline *pl, const char *blob)
{
	memset(pl, 0, sizeof(*pl));
	snprintf(pl->blob, sizeof(pl->blob), "%s", blob);
	side_init(&pl->producer);
	side_init(&pl->uploader);
	pl->buffer_fd = -1;
}

static bool side_done(const struct side *s)
{
	return !s->started || (s->exited && s->status_fd < 0);
}

static bool pipeline_done(const struct pipeline *pl)
{
	if (pl->self_produced && pl->buffer_fd >= 0)
		return false;
	return side_done(&pl->producer) && side_done(&pl->uploader);
}

static void describe_exit(int wait_status, char *out, size_t len)
{
	if (WIFEXITED(wait_status))
		snprintf(out, len, "exited with status %d", WEXITSTATUS(wait_status));
	else if (WIFSIGNALED(wait_status))
		snprintf(out, len, "was killed by signal %d (%s)", WTERMSIG(wait_status),
			 strsignal(WTERMSIG(wait_status)));
	else
		snprintf(out, len, "ended with wait status %d", wait_status);
}

static bool side_succeeded(const struct side *s)
{
	return s->exited && WIFEXITED(s->wait_status) &&
	       WEXITSTATUS(s->wait_status) == 0 && s->result_ok;
}

/* upload-blob ended without saying why: killed, or crashed.  The
 * producer's error (a broken pipe) is then only a consequence. */
static bool uploader_died(const struct pipeline *pl)
{
	const struct side *u = &pl->uploader;

	return u->started && u->exited && !u->result_ok && u->error[0] == '\0';
}

/* The most useful explanation of a failed pipeline: a dead uploader, then
 * a real error reported by a child beats "aborted", which beats a bare exit
 * status. */
static void pipeline_failure(const struct pipeline *pl, const char *producer_name,
			     char *out, size_t len)
{
	const struct side *p = &pl->producer, *u = &pl->uploader;
	char how[96];
	bool p_real = p->error[0] && strcmp(p->error_class, ERR_CLASS_ABORTED) != 0;
	bool u_real = u->error[0] && strcmp(u->error_class, ERR_CLASS_ABORTED) != 0;

	if (uploader_died(pl)) {
		describe_exit(u->wait_status, how, sizeof(how));
		snprintf(out, len, "upload-blob %s", how);
	} else if (p_real) {
		snprintf(out, len, "%s", p->error);
	} else if (u_real) {
		snprintf(out, len, "%s", u->error);
	} else if (p->started && p->exited && !side_succeeded(p)) {
		describe_exit(p->wait_status, how, sizeof(how));
		snprintf(out, len, "%s %s", producer_name, how);
	} else if (u->exited && !side_succeeded(u)) {
		describe_exit(u->wait_status, how, sizeof(how));
		snprintf(out, len, "upload-blob %s", how);
	} else if (p->error[0]) {
		snprintf(out, len, "%s", p->error);
	} else if (u->error[0]) {
		snprintf(out, len, "%s", u->error);
	} else {
		snprintf(out, len, "the upload was not committed");
	}
}

static bool pipeline_succeeded(const struct pipeline *pl)
{
	return pl->committed && side_succeeded(&pl->uploader) &&
	       (pl->self_produced || side_succeeded(&pl->producer));
}

static void send_to_uploader(struct pipeline *pl, const char *what)
{
	if (pl->uploader.status_fd < 0)
		return;
	if (status_send(pl->uploader.status_fd, "%s", what) != 0)
		msg_warn("%s: cannot reach upload-blob: %s", pl->blob, strerror(errno));
}

/* The two-phase commit decision, taken once both facts are in. */
static void pipeline_decide(struct pipeline *pl)
{
	char msg[128];

	if (pl->decided || !pl->uploader.started)
		return;
	bool producer_over = pl->self_produced ? pl->buffer_fd < 0 : side_done(&pl->producer);
	if (!producer_over)
		return;
	bool producer_ok = pl->self_produced ? pl->buffer_off == pl->buffer_len
					     : side_succeeded(&pl->producer);
	if (!producer_ok) {
		pl->decided = true;
		send_to_uploader(pl, "abort");
		return;
	}
	if (!pl->staged)
		return;
	pl->decided = true;
	uint64_t produced = pl->self_produced ? pl->buffer_len : pl->producer.gzip_bytes;
	if (pl->staged_bytes != produced) {
		snprintf(pl->producer.error, sizeof(pl->producer.error),
			 "upload-blob received %llu bytes but the producer wrote %llu; "
			 "not committed", (unsigned long long)pl->staged_bytes,
			 (unsigned long long)produced);
		snprintf(pl->producer.error_class, sizeof(pl->producer.error_class), "local");
		send_to_uploader(pl, "abort");
		return;
	}
	if (pl->self_produced)
		snprintf(msg, sizeof(msg), "commit documents=0 bson_bytes=%llu",
			 (unsigned long long)pl->buffer_len);
	else
		snprintf(msg, sizeof(msg), "commit documents=%llu bson_bytes=%llu",
			 (unsigned long long)pl->producer.documents,
			 (unsigned long long)pl->producer.bson_bytes);
	pl->committed = true;
	send_to_uploader(pl, msg);
}

static int start_uploader(struct backup_run *run, struct pipeline *pl, int stdin_fd,
			  const char *content_type, bool create_only,
			  struct spawn_limits *limits)
{
	char path[PATH_MAX];
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/upload-blob", helper_dir());
	char *argv[] = { "upload-blob", "-c", run->config_path, "--status-fd", "3",
			 "--content-type", (char *)content_type, pl->blob, NULL, NULL };
	if (create_only) {
		argv[7] = "--create-only";
		argv[8] = pl->blob;
	}
	struct spawn_request req = {
		.path = path, .argv = argv, .stdin_fd = stdin_fd, .stdout_fd = -1,
		.status_fd = sv[1], .config_fd = run->config_fd, .secrets_fd = run->secrets_fd,
		.run_as = run->run_as, .pgid = &run->pgid,
		.limits = limits,
	};
	pid = spawn_child(&req);
	int saved = errno;
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		errno = saved;
		return -1;
	}
	fd_set_nonblock(sv[0], 1);
	pl->uploader.pid = pid;
	pl->uploader.status_fd = sv[0];
	pl->uploader.started = true;
	return 0;
}

static void run_limits(const struct backup_run *run, struct spawn_limits *limits)
{
	limits->address_space = run->cfg->child_memory;
	limits->cpu_seconds = run->cfg->child_cpu_seconds;
	limits->open_files = run->cfg->child_open_files;
}

/* export-collection [--metadata] | upload-blob */
static int start_export_pipeline(struct backup_run *run, struct pipeline *pl,
				 const char *collection, bool metadata, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int data[2] = { -1, -1 }, sv[2] = { -1, -1 };
	struct spawn_limits limits;
	int r = -1;

	run_limits(run, &limits);
	if (pipe2(data, O_CLOEXEC) != 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		snprintf(err, errlen, "cannot create pipes: %s", strerror(errno));
		goto out;
	}
	if (start_uploader(run, pl, data[0], "application/gzip", false, &limits) != 0) {
		snprintf(err, errlen, "cannot start %s/upload-blob: %s", helper_dir(),
			 strerror(errno));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/export-collection", helper_dir());
	char *argv[] = { "export-collection", "-c", run->config_path, "--status-fd", "3",
			 (char *)collection, NULL, NULL };
	if (metadata) {
		argv[5] = "--metadata";
		argv[6] = (char *)collection;
	}
	struct spawn_request req = {
		.path = path, .argv = argv, .stdin_fd = -1, .stdout_fd = data[1],
		.status_fd = sv[1], .config_fd = run->config_fd, .secrets_fd = run->secrets_fd,
		.run_as = run->run_as, .pgid = &run->pgid,
		.limits = &limits,
	};
	pid_t pid = spawn_child(&req);
	if (pid < 0) {
		snprintf(err, errlen, "cannot start %s: %s", path, strerror(errno));
		/* The uploader sees EOF on stdin once we close our ends below. */
		goto out;
	}
	fd_set_nonblock(sv[0], 1);
	pl->producer.pid = pid;
	pl->producer.status_fd = sv[0];
	pl->producer.started = true;
	sv[0] = -1;
	r = 0;
out:
	/* Our copies must go, or upload-blob never sees EOF. */
	for (int i = 0; i < 2; i++) {
		if (data[i] >= 0)
			close(data[i]);
		if (sv[i] >= 0)
			close(sv[i]);
	}
	if (r != 0 && pl->uploader.started)
		pl->decided = true, send_to_uploader(pl, "abort");
	return r;
}

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
static bool storage_transient_failure(const struct backup_run *run,
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
static const char *storage_fatal_failure(const struct backup_run *run,
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

static void tell_breaker(struct backup_run *run, const struct pipeline *pl)
{
	if (pipeline_succeeded(pl))
		breaker_success(run->breaker);
	else if (storage_transient_failure(run, pl))
		breaker_failure(run->breaker, time(NULL));
	else
		breaker_release(run->breaker);
}

static int storage_retry_delay(int storage_failures)
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

static void job_pipeline_over(struct backup_run *run, struct collection_job *job)
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

static void finish_run(struct backup_run *run)
{
	run->phase = RUN_FINISHED;
	if (run->finish_wall == 0)
		run->finish_wall = wall_seconds();
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
static int start_pruner(struct backup_run *run, bool dry_run)
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
static int start_newest_lookup(struct backup_run *run)
{
	if (run->cancelled || start_pruner(run, true) != 0)
		return -1;
	run->phase = RUN_RETENTION;
	return 0;
}

/* [verify] after_backup: read the new set back and check it against its
 * manifest before anything old is pruned. */
static int start_verifier(struct backup_run *run)
{
	char *argv[] = { "verify-set", "-c", run->config_path, "--status-fd", "3",
			 run->set_folder, NULL };

	return start_status_helper(run, &run->verifier, argv);
}

static void verification_over(struct backup_run *run)
{
	struct side *v = &run->verifier;
	char how[96];

	if (side_succeeded(v)) {
		snprintf(run->verify_summary, sizeof(run->verify_summary), "verified");
		msg_info("verify: set %s read back and matches its manifest", run->set_folder);
		return;
	}
	describe_exit(v->wait_status, how, sizeof(how));
	snprintf(run->verify_summary, sizeof(run->verify_summary), "FAILED: %s",
		 v->error[0] ? v->error : how);
	/* A set that does not read back is not a good backup, and nothing old
	 * may be pruned on its account. */
	run->backup_complete = false;
	run->verify_failed = true;
	snprintf(run->failure, sizeof(run->failure), "verification of %s failed: %s",
		 run->set_folder, v->error[0] ? v->error : how);
}

static void retention_over(struct backup_run *run)
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
	describe_exit(p->wait_status, how, sizeof(how));
	snprintf(run->retention_summary, sizeof(run->retention_summary), "failed: %s",
		 p->error[0] ? p->error : how);
	msg_error("retention: %s; no backup set was lost, the next run tries again",
		  run->retention_summary + 8);
}

enum manifest_progress { MANIFEST_PENDING, MANIFEST_WRITTEN, MANIFEST_GAVE_UP };

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
 * writes its final manifest, unless the SIGKILL escalation came first or
 * the storage is out: then the first one, which claims nothing, stays. */
static enum manifest_progress manifest_step(struct backup_run *run, bool final)
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
		if (!breaker_allow(run->breaker, time(NULL))) {
			if (run->cancelled)
				goto give_up_quietly;
			return MANIFEST_PENDING;
		}
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

static void side_record(struct pipeline *pl, struct side *s, bool is_uploader,
			const struct status_record *rec)
{
	if (strcmp(rec->kind, "estimate") == 0) {
		s->estimate = (int64_t)status_get_u64(rec, "documents", 0);
		return;
	}
	if (strcmp(rec->kind, "progress") == 0) {
		if (!is_uploader) {
			s->documents = status_get_u64(rec, "documents", s->documents);
			s->bson_bytes = status_get_u64(rec, "bson_bytes", s->bson_bytes);
			s->gzip_bytes = status_get_u64(rec, "gzip_bytes", s->gzip_bytes);
		}
		return;
	}
	if (strcmp(rec->kind, "newest") == 0) {
		/* prune-sets: "newest found=1 finished=UNIXTIME set=FOLDER" */
		const char *set = status_get(rec, "set");
		bool found = status_get_u64(rec, "found", 0) == 1 && set != NULL;
		snprintf(s->newest_set, sizeof(s->newest_set), "%s", found ? set : "");
		s->newest_finished = found ? (int64_t)status_get_u64(rec, "finished", 0) : 0;
		return;
	}
	if (is_uploader && strcmp(rec->kind, "staged") == 0) {
		pl->staged = true;
		pl->staged_bytes = status_get_u64(rec, "bytes", 0);
		return;
	}
}

/* "result ok k=v" / "result error k=v": the second word is the outcome. */
static void side_result(struct pipeline *pl, struct side *s, bool is_uploader,
			const char *msg, size_t len)
{
	struct status_record rec;
	char copy[STATUS_MSG_MAX + 1];
	bool ok;

	if (len > STATUS_MSG_MAX)
		len = STATUS_MSG_MAX;
	memcpy(copy, msg, len);
	copy[len] = '\0';
	ok = strncmp(copy, "result ok", 9) == 0 && (copy[9] == ' ' || copy[9] == '\0');
	const char *rest = copy + (ok ? 9 : strncmp(copy, "result error", 12) == 0 ? 12 : 6);
	char rebuilt[STATUS_MSG_MAX + 8];
	snprintf(rebuilt, sizeof(rebuilt), "result%s", rest);
	if (status_parse(rebuilt, strlen(rebuilt), &rec) != 0) {
		msg_warn("%s: malformed result record from a child", pl->blob);
		return;
	}
	if (ok) {
		s->result_ok = true;
		if (is_uploader) {
			const char *md5 = status_get(&rec, "md5");
			const char *sha = status_get(&rec, "sha256");
			snprintf(pl->md5, sizeof(pl->md5), "%s", md5 ? md5 : "");
			snprintf(pl->sha256, sizeof(pl->sha256), "%s", sha ? sha : "");
			pl->uploaded_bytes = status_get_u64(&rec, "bytes", 0);
		} else if (status_get(&rec, "sets_deleted") != NULL) {
			/* prune-sets: kept in the same three counters */
			s->documents = status_get_u64(&rec, "sets_deleted", 0);
			s->bson_bytes = status_get_u64(&rec, "blobs_deleted", 0);
			s->gzip_bytes = status_get_u64(&rec, "sets_kept", 0);
		} else {
			s->documents = status_get_u64(&rec, "documents", 0);
			s->bson_bytes = status_get_u64(&rec, "bson_bytes", 0);
			s->gzip_bytes = status_get_u64(&rec, "gzip_bytes", 0);
		}
		return;
	}
	const char *class = status_get(&rec, "class");
	const char *message = status_get(&rec, "message");
	snprintf(s->error_class, sizeof(s->error_class), "%s", class ? class : "local");
	snprintf(s->error, sizeof(s->error), "%s", message ? message : "unspecified error");
}

static void side_read(struct pipeline *pl, struct side *s, bool is_uploader)
{
	char msg[STATUS_MSG_MAX + 1];

	for (;;) {
		ssize_t n = recv(s->status_fd, msg, sizeof(msg) - 1, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			/* EOF (or a broken socket): the child is gone or going. */
			close(s->status_fd);
			s->status_fd = -1;
			return;
		}
		if (strncmp(msg, "result", 6) == 0 && (msg[6] == ' ' || n == 6)) {
			side_result(pl, s, is_uploader, msg, (size_t)n);
			continue;
		}
		struct status_record rec;
		if (status_parse(msg, (size_t)n, &rec) != 0) {
			msg_warn("%s: malformed status record from a child", pl->blob);
			continue;
		}
		side_record(pl, s, is_uploader, &rec);
	}
}

static void pipeline_write_buffer(struct pipeline *pl)
{
	while (pl->buffer_off < pl->buffer_len) {
		ssize_t n = write(pl->buffer_fd, pl->buffer + pl->buffer_off,
				  pl->buffer_len - pl->buffer_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			/* EPIPE: the uploader died; its exit tells the story. */
			break;
		}
		pl->buffer_off += (size_t)n;
	}
	close(pl->buffer_fd);
	pl->buffer_fd = -1;
}

static size_t pipeline_pollfds(struct pipeline *pl, struct pollfd *fds, size_t max)
{
	size_t n = 0;

	if (pl->producer.status_fd >= 0 && n < max)
		fds[n++] = (struct pollfd){ .fd = pl->producer.status_fd, .events = POLLIN };
	if (pl->uploader.status_fd >= 0 && n < max)
		fds[n++] = (struct pollfd){ .fd = pl->uploader.status_fd, .events = POLLIN };
	if (pl->buffer_fd >= 0 && n < max)
		fds[n++] = (struct pollfd){ .fd = pl->buffer_fd, .events = POLLOUT };
	return n;
}

size_t backup_run_pollfds(struct backup_run *run, struct pollfd *fds, size_t max)
{
	size_t n = 0;

	if (run->lister.status_fd >= 0 && n < max)
		fds[n++] = (struct pollfd){ .fd = run->lister.status_fd, .events = POLLIN };
	if (run->list_fd >= 0 && n < max)
		fds[n++] = (struct pollfd){ .fd = run->list_fd, .events = POLLIN };
	if (run->pruner.status_fd >= 0 && n < max)
		fds[n++] = (struct pollfd){ .fd = run->pruner.status_fd, .events = POLLIN };
	if (run->verifier.status_fd >= 0 && n < max)
		fds[n++] = (struct pollfd){ .fd = run->verifier.status_fd, .events = POLLIN };
	n += pipeline_pollfds(&run->manifest, fds + n, max - n);

	for (size_t i = 0; i < run->n_jobs; i++)
		n += pipeline_pollfds(&run->jobs[i].pl, fds + n, max - n);
	return n;
}

static void pipeline_handle(struct pipeline *pl, const struct pollfd *fds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (fds[i].revents == 0)
			continue;
		if (fds[i].fd == pl->producer.status_fd)
			side_read(pl, &pl->producer, false);
		else if (fds[i].fd == pl->uploader.status_fd)
			side_read(pl, &pl->uploader, true);
		else if (fds[i].fd == pl->buffer_fd)
			pipeline_write_buffer(pl);
	}
	pipeline_decide(pl);
}

static void job_check(struct backup_run *run, struct collection_job *job)
{
	if ((job->state == JOB_DATA || job->state == JOB_METADATA) && pipeline_done(&job->pl))
		job_pipeline_over(run, job);
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

static bool side_reaped(struct side *s, pid_t pid, int wait_status)
{
	if (s->pid != pid || pid <= 0)
		return false;
	s->pid = 0;
	s->exited = true;
	s->wait_status = wait_status;
	return true;
}

static void log_usage(const struct pipeline *pl, const char *program, pid_t pid,
		      int wait_status, const struct rusage *usage)
{
	char how[96];

	if (usage == NULL)
		return;
	describe_exit(wait_status, how, sizeof(how));
	msg_debug("%s[%ld] for %s %s: %.2f s user, %.2f s system CPU, peak RSS %ld KiB",
		  program, (long)pid, pl->blob, how,
		  (double)usage->ru_utime.tv_sec + (double)usage->ru_utime.tv_usec / 1e6,
		  (double)usage->ru_stime.tv_sec + (double)usage->ru_stime.tv_usec / 1e6,
		  usage->ru_maxrss);
}

static bool pipeline_reaped(struct pipeline *pl, pid_t pid, int wait_status,
			    const struct rusage *usage)
{
	if (pid > 0 && pid == pl->producer.pid)
		log_usage(pl, "export-collection", pid, wait_status, usage);
	else if (pid > 0 && pid == pl->uploader.pid)
		log_usage(pl, "upload-blob", pid, wait_status, usage);
	if (side_reaped(&pl->producer, pid, wait_status)) {
		/* Records sent just before exit are still queued: read them now. */
		if (pl->producer.status_fd >= 0)
			side_read(pl, &pl->producer, false);
	} else if (side_reaped(&pl->uploader, pid, wait_status)) {
		if (pl->uploader.status_fd >= 0)
			side_read(pl, &pl->uploader, true);
		/* An exporter stuck in MongoDB would never notice EPIPE: with
		 * nobody left to take its output, it has to go. */
		if (pl->producer.pid > 0 && !side_succeeded(&pl->uploader))
			kill(pl->producer.pid, SIGTERM);
	} else {
		return false;
	}
	pipeline_decide(pl);
	return true;
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

/* Names every blob of the run for its set folder: blob_path rendered, with
 * the folder numbered when set_seq > 1. */
static int name_blobs(struct backup_run *run)
{
	char rendered[BLOB_NAME_MAX];

	for (size_t i = 0; i < run->n_jobs; i++) {
		struct collection_job *job = &run->jobs[i];
		if (path_template_render(run->cfg->blob_path, job->name, run->start, rendered,
					 sizeof(rendered)) != 0 ||
		    path_set_sequence(rendered, run->set_seq, job->blob, sizeof(job->blob)) != 0 ||
		    path_metadata_name(job->blob, job->metadata_blob,
				       sizeof(job->metadata_blob)) != 0) {
			snprintf(run->failure, sizeof(run->failure),
				 "blob name for collection '%s' is too long", job->name);
			return -1;
		}
		pipeline_init(&job->pl, job->blob);
	}
	path_set_folder(run->jobs[0].blob, run->set_folder, sizeof(run->set_folder));
	snprintf(run->manifest_blob, sizeof(run->manifest_blob), "%s%s", run->set_folder,
		 MANIFEST_NAME);
	return 0;
}

/* Sets up one job per collection name, with its blob names. */
static int create_jobs(struct backup_run *run, char *const *collections, size_t n)
{
	const struct mab_config *cfg = run->cfg;

	run->jobs = calloc(n ? n : 1, sizeof(*run->jobs));
	if (run->jobs == NULL) {
		snprintf(run->failure, sizeof(run->failure), "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct collection_job *job = &run->jobs[i];
		job->name = strdup(collections[i]);
		if (job->name == NULL) {
			snprintf(run->failure, sizeof(run->failure), "out of memory");
			return -1;
		}
		run->n_jobs++;
		job->estimate = -1;
	}
	if (n == 0) {
		snprintf(run->failure, sizeof(run->failure),
			 "no collections to back up in database '%s'", cfg->database);
		return -1;
	}
	run->set_seq = 1;
	return name_blobs(run);
}

static int begin_collections(struct backup_run *run, char *const *collections, size_t n)
{
	if (create_jobs(run, collections, n) != 0)
		return -1;
	msg_debug("run %s: %zu collections of database %s; claiming set %s", run->run_id,
		  run->n_jobs, run->cfg->database, run->set_folder);
	run->phase = RUN_MANIFEST_START;
	run->manifest_started = false;
	backup_run_step(run);
	return run->phase == RUN_FINISHED ? -1 : 0;
}

static int start_lister(struct backup_run *run)
{
	char path[PATH_MAX];
	int data[2] = { -1, -1 }, sv[2] = { -1, -1 };
	struct spawn_limits limits;
	int r = -1;

	run_limits(run, &limits);
	if (pipe2(data, O_CLOEXEC) != 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		snprintf(run->failure, sizeof(run->failure), "cannot create pipes: %s",
			 strerror(errno));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/export-collection", helper_dir());
	char *argv[] = { "export-collection", "-c", run->config_path, "--status-fd", "3",
			 "--list", NULL };
	struct spawn_request req = {
		.path = path, .argv = argv, .stdin_fd = -1, .stdout_fd = data[1],
		.status_fd = sv[1], .config_fd = run->config_fd, .secrets_fd = run->secrets_fd,
		.run_as = run->run_as, .pgid = &run->pgid,
		.limits = &limits,
	};
	pid_t pid = spawn_child(&req);
	if (pid < 0) {
		snprintf(run->failure, sizeof(run->failure), "cannot start %s: %s", path,
			 strerror(errno));
		goto out;
	}
	fd_set_nonblock(sv[0], 1);
	fd_set_nonblock(data[0], 1);
	run->lister.pid = pid;
	run->lister.started = true;
	run->lister.status_fd = sv[0];
	run->list_fd = data[0];
	sv[0] = data[0] = -1;
	r = 0;
out:
	for (int i = 0; i < 2; i++) {
		if (data[i] >= 0)
			close(data[i]);
		if (sv[i] >= 0)
			close(sv[i]);
	}
	return r;
}

#define LIST_MAX (16 << 20)

static void read_list(struct backup_run *run)
{
	char chunk[16384];

	for (;;) {
		ssize_t n = read(run->list_fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
			break;
		if (run->list_len + (size_t)n > LIST_MAX) {
			snprintf(run->lister.error, sizeof(run->lister.error),
				 "the collection list is larger than %d bytes", LIST_MAX);
			break;
		}
		char *grown = realloc(run->list_buf, run->list_len + (size_t)n + 1);
		if (grown == NULL) {
			snprintf(run->lister.error, sizeof(run->lister.error), "out of memory");
			break;
		}
		run->list_buf = grown;
		memcpy(run->list_buf + run->list_len, chunk, (size_t)n);
		run->list_len += (size_t)n;
	}
	close(run->list_fd);
	run->list_fd = -1;
}

static void finish_listing(struct backup_run *run)
{
	char **names = NULL;
	size_t n = 0;

	if (!side_succeeded(&run->lister) || run->lister.error[0] ||
	    (run->list_len > 0 && run->list_buf[run->list_len - 1] != '\0')) {
		char how[96];
		describe_exit(run->lister.wait_status, how, sizeof(how));
		snprintf(run->failure, sizeof(run->failure),
			 "cannot list the collections of database '%s': %s",
			 run->cfg->database, run->lister.error[0] ? run->lister.error : how);
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
	if (begin_collections(run, names, n) != 0)
		goto fail;
	free(names);
	return;
fail:
	free(names);
	run->n_failed = (int)run->n_jobs;
	run->finish_wall = wall_seconds();
	finish_run(run);
}

/* The children read the configuration the supervisor accepted, not the
 * file as it is now: a later edit, valid or not, reaches no run until a
 * reload accepts it.  A sealed memfd, passed as fd 4, holds that text. */
static int snapshot_config(struct backup_run *run)
{
	const struct mab_config *cfg = run->cfg;
	int fd = memfd_create("mongo-azure-backup.conf", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0 || cfg->text == NULL) {
		if (fd >= 0)
			close(fd);
		/* No memfd (very old kernel): fall back to the file itself. */
		if (realpath(cfg->path, run->config_path) == NULL) {
			snprintf(run->failure, sizeof(run->failure), "%s: %s", cfg->path,
				 strerror(errno));
			return -1;
		}
		return 0;
	}
	if (xwrite_all(fd, cfg->text, cfg->text_len) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
		snprintf(run->failure, sizeof(run->failure), "cannot keep a copy of the "
			 "configuration: %s", strerror(errno));
		close(fd);
		return -1;
	}
	run->config_fd = fd;
	snprintf(run->config_path, sizeof(run->config_path), "/dev/fd/%d", CHILD_CONFIG_FD);
	return 0;
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
	if (begin_collections(run, collections, n_collections) != 0) {
		/* It may have ended (and said so) on its own already. */
		if (run->phase != RUN_FINISHED)
			finish_run(run);
		return -1;
	}
	return 0;
}

void backup_run_free(struct backup_run *run)
{
	for (size_t i = 0; i < run->n_jobs; i++) {
		struct pipeline *pl = &run->jobs[i].pl;
		if (pl->producer.status_fd >= 0)
			close(pl->producer.status_fd);
		if (pl->uploader.status_fd >= 0)
			close(pl->uploader.status_fd);
		free(run->jobs[i].name);
	}
	if (run->manifest.uploader.status_fd >= 0)
		close(run->manifest.uploader.status_fd);
	if (run->manifest.buffer_fd >= 0)
		close(run->manifest.buffer_fd);
	free(run->jobs);
	if (run->lister.status_fd >= 0)
		close(run->lister.status_fd);
	if (run->pruner.status_fd >= 0)
		close(run->pruner.status_fd);
	if (run->verifier.status_fd >= 0)
		close(run->verifier.status_fd);
	if (run->list_fd >= 0)
		close(run->list_fd);
	free(run->list_buf);
	if (run->config_fd >= 0)
		close(run->config_fd);
	if (run->secrets_fd >= 0)
		close(run->secrets_fd);
	bson_free(run->manifest_json);
	memset(run, 0, sizeof(*run));
}
