/* backup_run_pipeline.c - one collection's pipeline in a backup run:
 * export-collection | upload-blob, a status socket to each child, the
 * commit-or-abort decision (commit only when the producer exited 0,
 * reported "result ok" and the byte counts agree), and the pipelines' I/O
 * and reaping for the daemon's poll loop (backup_run_pollfds,
 * backup_run_handle_fds, backup_run_child_exited).
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

void describe_exit(int wait_status, char *out, size_t len)
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

/* export-collection [--metadata] | upload-blob */
int start_export_pipeline(struct backup_run *run, struct pipeline *pl,
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
