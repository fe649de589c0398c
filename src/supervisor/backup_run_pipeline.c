/* backup_run_pipeline.c - the collections' jobs and their pipelines:
 * export-collection | upload-blob started with a status socket to each
 * child, the jobs started up to [limits] parallel, retried or failed as
 * their pipelines end, and the pipelines' I/O (status lines, the
 * uploader's commands, reaping) for the poll loop.
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

#define DATA_PIPE_SIZE (1024 * 1024)


/* export-collection [--metadata] | upload-blob */
static int start_export_pipeline(struct backup_run *run, struct pipeline *pl,
				 const struct collection_job *job, bool metadata, char *err,
				 size_t errlen)
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
	/* 64 KiB, the default, is a context switch per 64 KiB between the
	 * compressor and the uploader; 1 MiB (the unprivileged maximum) lets
	 * each run a whole gzip member's worth.  Only a speed-up: a refusal
	 * leaves the default, which works. */
	if (!metadata)
		(void)fcntl(data[1], F_SETPIPE_SZ, DATA_PIPE_SIZE);
	if (start_uploader(run, pl, data[0], "application/gzip", false, &limits) != 0) {
		snprintf(err, errlen, "cannot start %s/upload-blob: %s", helper_dir(),
			 strerror(errno));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/export-collection", helper_dir());
	char *argv[] = { "export-collection", "-c", run->config_path, "--status-fd", "3",
			 "--database", job->database, job->name, NULL, NULL };
	if (metadata) {
		argv[7] = "--metadata";
		argv[8] = job->name;
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

static int count_running(const struct backup_run *run)
{
	int n = 0;

	for (size_t i = 0; i < run->n_jobs; i++)
		if (run->jobs[i].state == JOB_DATA || run->jobs[i].state == JOB_METADATA)
			n++;
	return n;
}

void job_fail(struct backup_run *run, struct collection_job *job, const char *why)
{
	snprintf(job->error, sizeof(job->error), "%s", why);
	job->state = JOB_FAILED;
	job->seconds = monotonic_seconds() - job->started;
	run->n_failed++;
	msg_error("collection %s: FAILED after %.1f s: %s; nothing committed for %s",
		  job->label, job->seconds, why, job->blob[0] ? job->blob : job->metadata_blob);
}

static void job_succeeded(struct backup_run *run, struct collection_job *job)
{
	double mb = (double)job->bson_bytes / 1e6;
	double ratio = job->bson_bytes ? 100.0 * (double)job->gzip_bytes /
					 (double)job->bson_bytes : 0.0;

	job->state = JOB_DONE;
	job->seconds = monotonic_seconds() - job->started;
	run->n_ok++;
	if (job->kind == KIND_VIEW) {
		msg_info("view %s: ok, its definition in %s", job->label, job->metadata_blob);
		return;
	}
	msg_info("%s %s: ok, %llu documents, %llu BSON bytes, %llu gzip bytes "
		 "(%.1f%%), %.1f s, %.1f MB/s, blob %s",
		 job->kind == KIND_USERS ? "users of" : job->kind == KIND_ROLES ? "roles of" :
		 "collection", job->kind == KIND_USERS || job->kind == KIND_ROLES ?
		 job->database : job->label,
		 (unsigned long long)job->documents, (unsigned long long)job->bson_bytes,
		 (unsigned long long)job->gzip_bytes, ratio, job->seconds,
		 job->seconds > 0 ? mb / job->seconds : 0.0, job->blob);
}

/* A storage failure no retry can mend ends the run now instead of at
 * run_timeout: this collection fails with the cause, every collection
 * still queued fails unattempted, and the cause is the run's.  Pipelines
 * already running end by themselves (they meet the same refusal); nothing
 * is cancelled, so whatever did commit stays committed and the final
 * manifest says so. */
static void fail_run_at_once(struct backup_run *run, struct collection_job *job,
			     const char *cause, const char *refuser)
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
		msg_error("run %s: %d more collection%s not attempted: %s will refuse "
			  "them the same way", run->run_id, unattempted,
			  unattempted == 1 ? "" : "s", refuser);
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
			fail_run_at_once(run, job, cause, "the storage");
			return;
		}
		/* MongoDB refused the login, or its certificate is not trusted:
		 * every other collection would meet the same refusal. */
		if (!run->cancelled && (strcmp(pl->producer.error_class, ERR_CLASS_AUTH) == 0 ||
					strcmp(pl->producer.error_class, ERR_CLASS_CONFIG) == 0)) {
			fail_run_at_once(run, job, why, "MongoDB");
			return;
		}
		if (!run->cancelled && storage_transient_failure(run, pl) &&
		    strcmp(pl->producer.error_class, ERR_CLASS_MONGO) != 0) {
			/* An outage delays the backup; only run_timeout ends it. */
			int delay = storage_retry_delay(++job->storage_failures);
			msg_warn("collection %s: the storage failed (%s); queued again, next "
				 "attempt in %d s or when the breaker allows", job->label, why, delay);
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
				 job->label, job->attempts, why, delay);
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
		job->gzip = pl->producer.gzip;
		snprintf(job->md5, sizeof(job->md5), "%s", pl->md5);
		snprintf(job->sha256, sizeof(job->sha256), "%s", pl->sha256);
		job->data_done = true;
		/* Users and roles have no metadata. */
		if (job->metadata_blob[0] == '\0') {
			job_succeeded(run, job);
			return;
		}
		/* The metadata blob waits its turn like any upload. */
		job->attempts = 0;
		job->state = JOB_QUEUED;
		job->not_before = 0;
		return;
	}
	job_succeeded(run, job);
}

void start_jobs(struct backup_run *run)
{
	time_t now = time(NULL);

	for (size_t k = 0; k < run->n_jobs && count_running(run) < run->cfg->parallel; k++) {
		size_t i = run->start_order ? run->start_order[k].index : k;
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
		msg_debug("collection %s: starting %s to %s (attempt %d)", job->label,
			  job->data_done ? "metadata export" : "export", job->pl.blob,
			  job->attempts);
		if (start_export_pipeline(run, &job->pl, job, job->data_done, err,
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

bool jobs_all_over(const struct backup_run *run)
{
	for (size_t i = 0; i < run->n_jobs; i++)
		if (run->jobs[i].state != JOB_DONE && run->jobs[i].state != JOB_FAILED)
			return false;
	return true;
}

/* What a lister's size records may cost, at most: a million of them. */
#define LIST_SIZES_MAX (1 << 20)

/* export-collection --list: "size index=I bson_bytes=N | documents=N".
 * One that cannot be kept leaves its collection unknown, started last. */
static void side_size(struct side *s, const struct status_record *rec)
{
	struct job_rank r;

	if (job_size_record(rec, &r) != 0) {
		msg_warn("export-collection --list: malformed size record");
		return;
	}
	if (s->n_sizes == s->sizes_cap) {
		size_t cap = s->sizes_cap ? 2 * s->sizes_cap : 64;
		if (cap > LIST_SIZES_MAX)
			return;
		struct job_rank *grown = realloc(s->sizes, cap * sizeof(*grown));
		if (grown == NULL) {
			msg_warn("export-collection --list: out of memory for size estimates");
			return;
		}
		s->sizes = grown;
		s->sizes_cap = cap;
	}
	s->sizes[s->n_sizes++] = r;
}

static void side_record(struct pipeline *pl, struct side *s, bool is_uploader,
			const struct status_record *rec)
{
	if (s->wants_sizes && strcmp(rec->kind, "size") == 0) {
		side_size(s, rec);
		return;
	}
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
			const char *engine = status_get(&rec, "engine");
			snprintf(s->gzip.engine, sizeof(s->gzip.engine), "%s", engine ? engine : "");
			s->gzip.level = (int)status_get_u64(&rec, "level", 0);
			s->gzip.threads = (int)status_get_u64(&rec, "threads", 0);
			s->gzip.members = status_get_u64(&rec, "members", 0);
		}
		return;
	}
	const char *class = status_get(&rec, "class");
	const char *message = status_get(&rec, "message");
	snprintf(s->error_class, sizeof(s->error_class), "%s", class ? class : "local");
	snprintf(s->error, sizeof(s->error), "%s", message ? message : "unspecified error");
}

void side_read(struct pipeline *pl, struct side *s, bool is_uploader)
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

void pipeline_handle(struct pipeline *pl, const struct pollfd *fds, size_t n)
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

void job_check(struct backup_run *run, struct collection_job *job)
{
	if ((job->state == JOB_DATA || job->state == JOB_METADATA) && pipeline_done(&job->pl))
		job_pipeline_over(run, job);
}

bool side_reaped(struct side *s, pid_t pid, int wait_status)
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
	br_describe_exit(wait_status, how, sizeof(how));
	msg_debug("%s[%ld] for %s %s: %.2f s user, %.2f s system CPU, peak RSS %ld KiB",
		  program, (long)pid, pl->blob, how,
		  (double)usage->ru_utime.tv_sec + (double)usage->ru_utime.tv_usec / 1e6,
		  (double)usage->ru_stime.tv_sec + (double)usage->ru_stime.tv_usec / 1e6,
		  usage->ru_maxrss);
}

bool pipeline_reaped(struct pipeline *pl, pid_t pid, int wait_status,
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
