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
 * This file, the bottom of backup_run_*.c (backup_run_int.h), owns the
 * run's parts: sides and pipelines and their verdicts, the storage
 * failures and the breaker, the timeout, cancel, the exit code and free.
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



double monotonic_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double br_wall_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}


void side_init(struct side *s)
{
	memset(s, 0, sizeof(*s));
	s->status_fd = -1;
	s->estimate = -1;
	s->newest_finished = -1;
}

void pipeline_init(struct pipeline *pl, const char *blob)
{
	memset(pl, 0, sizeof(*pl));
	snprintf(pl->blob, sizeof(pl->blob), "%s", blob);
	side_init(&pl->producer);
	side_init(&pl->uploader);
	pl->buffer_fd = -1;
}

bool side_done(const struct side *s)
{
	return !s->started || (s->exited && s->status_fd < 0);
}

bool pipeline_done(const struct pipeline *pl)
{
	if (pl->self_produced && pl->buffer_fd >= 0)
		return false;
	return side_done(&pl->producer) && side_done(&pl->uploader);
}

void br_describe_exit(int wait_status, char *out, size_t len)
{
	if (WIFEXITED(wait_status))
		snprintf(out, len, "exited with status %d", WEXITSTATUS(wait_status));
	else if (WIFSIGNALED(wait_status))
		snprintf(out, len, "was killed by signal %d (%s)", WTERMSIG(wait_status),
			 strsignal(WTERMSIG(wait_status)));
	else
		snprintf(out, len, "ended with wait status %d", wait_status);
}

bool side_succeeded(const struct side *s)
{
	return s->exited && WIFEXITED(s->wait_status) &&
	       WEXITSTATUS(s->wait_status) == 0 && s->result_ok;
}

/* upload-blob ended without saying why: killed, or crashed.  The
 * producer's error (a broken pipe) is then only a consequence. */
bool uploader_died(const struct pipeline *pl)
{
	const struct side *u = &pl->uploader;

	return u->started && u->exited && !u->result_ok && u->error[0] == '\0';
}

/* The most useful explanation of a failed pipeline: a dead uploader, then
 * a real error reported by a child beats "aborted", which beats a bare exit
 * status. */
void pipeline_failure(const struct pipeline *pl, const char *producer_name,
		      char *out, size_t len)
{
	const struct side *p = &pl->producer, *u = &pl->uploader;
	char how[96];
	bool p_real = p->error[0] && strcmp(p->error_class, ERR_CLASS_ABORTED) != 0;
	bool u_real = u->error[0] && strcmp(u->error_class, ERR_CLASS_ABORTED) != 0;

	if (uploader_died(pl)) {
		br_describe_exit(u->wait_status, how, sizeof(how));
		snprintf(out, len, "upload-blob %s", how);
	} else if (p_real) {
		snprintf(out, len, "%s", p->error);
	} else if (u_real) {
		snprintf(out, len, "%s", u->error);
	} else if (p->started && p->exited && !side_succeeded(p)) {
		br_describe_exit(p->wait_status, how, sizeof(how));
		snprintf(out, len, "%s %s", producer_name, how);
	} else if (u->exited && !side_succeeded(u)) {
		br_describe_exit(u->wait_status, how, sizeof(how));
		snprintf(out, len, "upload-blob %s", how);
	} else if (p->error[0]) {
		snprintf(out, len, "%s", p->error);
	} else if (u->error[0]) {
		snprintf(out, len, "%s", u->error);
	} else {
		snprintf(out, len, "the upload was not committed");
	}
}

bool pipeline_succeeded(const struct pipeline *pl)
{
	return pl->committed && side_succeeded(&pl->uploader) &&
	       (pl->self_produced || side_succeeded(&pl->producer));
}

void send_to_uploader(struct pipeline *pl, const char *what)
{
	if (pl->uploader.status_fd < 0)
		return;
	if (status_send(pl->uploader.status_fd, "%s", what) != 0)
		msg_warn("%s: cannot reach upload-blob: %s", pl->blob, strerror(errno));
}

/* The two-phase commit decision, taken once both facts are in. */
void pipeline_decide(struct pipeline *pl)
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

int start_uploader(struct backup_run *run, struct pipeline *pl, int stdin_fd,
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

void run_limits(const struct backup_run *run, struct spawn_limits *limits)
{
	limits->address_space = run->cfg->child_memory;
	limits->cpu_seconds = run->cfg->child_cpu_seconds;
	limits->open_files = run->cfg->child_open_files;
}

/* Only MongoDB trouble is worth another attempt within the run; a missing
 * collection or a refused credential will not fix itself in seconds. */
bool export_retryable(const struct pipeline *pl)
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
	/* No jobs: the run never got going (no secrets, nothing listed). */
	if (run->n_jobs == 0 || run->manifest_failed || run->cancelled || run->n_failed > 0 ||
	    run->n_ok != (int)run->n_jobs)
		return 1;
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
		free(run->jobs[i].database);
		free(run->jobs[i].label);
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
	free(run->lister.sizes);
	free(run->start_order);
	if (run->config_fd >= 0)
		close(run->config_fd);
	if (run->secrets_fd >= 0)
		close(run->secrets_fd);
	bson_free(run->manifest_json);
	memset(run, 0, sizeof(*run));
}
