/* ctl_restore_mongo.c - restore into MongoDB, one collection at a time,
 * with the backup's own process shape:
 *
 *   download-blob BLOB ──stdout = pipe──▶ import-collection --database DB COLL
 *   (Get Blob, resumes with Range          (gunzip → check → unordered bulk
 *    on a reset, never repeats a byte)      inserts → createIndexes)
 *
 * Both are spawn_child()ren (spawn.h) in a process group of their own, under
 * the configuration's [limits].  The target URI reaches import-collection
 * in its environment (MONGODB_URI), set only around its spawn, never in an
 * argv; the collection's metadata.json goes to it as a sealed memfd on
 * fd 4 (read from storage for that spawn and let go once the memfd holds
 * it); the manifest's counts go with --expect, and import-collection stops
 * the moment the stream passes them.  We read import-collection's status
 * records (import_status.h) for progress and for exactly what was written,
 * and both children's stderr through pipes: warnings are passed on, the
 * last error names what went wrong in the report.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child_status.h"
#include "ctl_restore_mongo.h"
#include "import_status.h"
#include "spawn.h"
#include "xio.h"

#define POLL_MS 200
#define KILL_GRACE_MS 10000

struct child_log {
	const char *name;
	int fd;                       /* read end; -1 at EOF */
	char buf[4096];
	size_t len;
	char last_error[1024];
};

struct pair {
	pid_t import_pid, download_pid, pgid;
	int status_fd;                /* -1 at EOF */
	struct child_log log[2];      /* import, download */
	bool have_target, have_result, result_ok;
	bool target_exists;
	uint64_t target_documents;
	char result[STATUS_MSG_MAX + 1];
	size_t result_len;
	uint64_t documents, inserted, bson_bytes;
	bool terminated;              /* SIGTERM sent to the group */
	bool download_stopped;        /* SIGTERM sent to download-blob alone */
	long long kill_at;            /* SIGKILL after this (ms), 0: none */
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* ---- children ----------------------------------------------------------- */

/* spawn_child() gives a child our stderr; for the length of the call our
 * stderr is err_w, so the child's is a pipe we read. */
static pid_t spawn_logged(const struct spawn_request *req, int err_w)
{
	int saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 10);
	pid_t pid;
	int e;

	if (saved < 0)
		return -1;
	fflush(stderr);
	if (dup2(err_w, STDERR_FILENO) < 0) {
		e = errno;
		close(saved);
		errno = e;
		return -1;
	}
	pid = spawn_child(req);
	e = errno;
	/* Without our own stderr back nothing we say would be seen. */
	if (dup2(saved, STDERR_FILENO) < 0)
		abort();
	close(saved);
	errno = e;
	return pid;
}

/* The metadata as a sealed memory file: read-only for the child whatever
 * it does, and no temporary file on disk. */
static int metadata_memfd(const struct restore_item *it)
{
	int fd = memfd_create("metadata.json", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -1;
	if (xwrite_all(fd, it->metadata, it->metadata_len) != 0 ||
	    lseek(fd, 0, SEEK_SET) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static void limits_of(const struct mab_config *cfg, struct spawn_limits *l)
{
	l->address_space = cfg->child_memory;
	l->cpu_seconds = cfg->child_cpu_seconds;
	l->open_files = cfg->child_open_files;
}

static void describe_exit(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)%s", WTERMSIG(status),
			 strsignal(WTERMSIG(status)),
			 WTERMSIG(status) == SIGKILL || WTERMSIG(status) == SIGSEGV ?
			 "; is [limits] child_memory too small?" : "");
	else
		snprintf(buf, len, "ended with status %#x", (unsigned)status);
}

static int reap(pid_t pid)
{
	int status = 0;

	if (pid <= 0)
		return 0;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return status;
}

/* ---- what the children say ---------------------------------------------- */

static void log_line(struct restore *rs, struct child_log *cl, char *line)
{
	/* "2026-11-27T03:00:00Z download-blob[123]: warning: text" */
	char *p = strstr(line, "]: ");
	char clean[1200];

	if (p == NULL)
		return;
	p += 3;
	if (strncmp(p, "error: ", 7) == 0 || strncmp(p, "fatal: ", 7) == 0) {
		snprintf(cl->last_error, sizeof(cl->last_error), "%s", p + 7);
	} else if (strncmp(p, "warning: ", 9) == 0) {
		restore_clear_line(rs);
		fprintf(stderr, "  %s: %s\n", cl->name, ctl_clean(p, clean, sizeof(clean)));
	}
}

static void read_log(struct restore *rs, struct child_log *cl)
{
	ssize_t n = read(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - 1 - cl->len);
	char *nl;

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		if (cl->len > 0) {
			cl->buf[cl->len] = '\0';
			log_line(rs, cl, cl->buf);
			cl->len = 0;
		}
		close(cl->fd);
		cl->fd = -1;
		return;
	}
	cl->len += (size_t)n;
	cl->buf[cl->len] = '\0';
	while ((nl = strchr(cl->buf, '\n')) != NULL) {
		*nl = '\0';
		log_line(rs, cl, cl->buf);
		memmove(cl->buf, nl + 1, cl->len - (size_t)(nl + 1 - cl->buf) + 1);
		cl->len -= (size_t)(nl + 1 - cl->buf);
	}
	/* A line longer than the buffer: take what there is as one. */
	if (cl->len == sizeof(cl->buf) - 1) {
		log_line(rs, cl, cl->buf);
		cl->len = 0;
	}
}

/* "result ok k=v ..." / "result error k=v ...": the second word is the
 * outcome, and not a key=value pair status_parse() would take. */
static int parse_result(const char *msg, size_t len, struct status_record *rec, bool *ok)
{
	char copy[STATUS_MSG_MAX + 1], rebuilt[STATUS_MSG_MAX + 8];
	const char *rest;

	if (len > STATUS_MSG_MAX)
		len = STATUS_MSG_MAX;
	memcpy(copy, msg, len);
	copy[len] = '\0';
	*ok = strncmp(copy, "result ok", 9) == 0 && (copy[9] == ' ' || copy[9] == '\0');
	if (*ok)
		rest = copy + 9;
	else if (strncmp(copy, "result error", 12) == 0 && (copy[12] == ' ' || copy[12] == '\0'))
		rest = copy + 12;
	else
		return -1;
	snprintf(rebuilt, sizeof(rebuilt), "result%s", rest);
	return status_parse(rebuilt, strlen(rebuilt), rec);
}

static void read_status(struct pair *p)
{
	char msg[STATUS_MSG_MAX + 1];
	struct status_record rec;
	ssize_t n = status_recv(p->status_fd, msg, sizeof(msg) - 1);

	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		close(p->status_fd);
		p->status_fd = -1;
		return;
	}
	if (n >= 7 && strncmp(msg, "result ", 7) == 0) {
		bool ok;
		/* Kept as text: parsed again when judging (a record points into
		 * its own buffer). */
		if (parse_result(msg, (size_t)n, &rec, &ok) != 0)
			return;
		memcpy(p->result, msg, (size_t)n);
		p->result_len = (size_t)n;
		p->have_result = true;
		p->result_ok = ok;
		return;
	}
	if (status_parse(msg, (size_t)n, &rec) != 0)
		return;
	if (strcmp(rec.kind, "progress") == 0) {
		p->documents = status_get_u64(&rec, "documents", p->documents);
		p->inserted = status_get_u64(&rec, "inserted", p->inserted);
		p->bson_bytes = status_get_u64(&rec, "bson_bytes", p->bson_bytes);
	} else if (strcmp(rec.kind, "target") == 0) {
		p->have_target = true;
		p->target_exists = status_get_u64(&rec, "exists", 0) != 0;
		p->target_documents = status_get_u64(&rec, "documents", 0);
	}
}

/* ---- one collection ----------------------------------------------------- */

static void stop_children(struct pair *p, bool escalate)
{
	if (p->pgid <= 0)
		return;
	if (!p->terminated) {
		kill(-p->pgid, SIGTERM);
		p->terminated = true;
		p->kill_at = now_ms() + KILL_GRACE_MS;
	} else if (escalate && p->kill_at > 0 && now_ms() >= p->kill_at) {
		kill(-p->pgid, SIGKILL);
		p->kill_at = 0;
	}
}

static void watch(struct restore *rs, struct restore_item *it, struct pair *p, bool dry_run)
{
	long long t0 = now_ms(), last_draw = 0;

	while (p->status_fd >= 0 || p->log[0].fd >= 0 || p->log[1].fd >= 0) {
		struct pollfd pf[3];
		int map[3], n = 0;

		if (p->status_fd >= 0)
			pf[n] = (struct pollfd){ .fd = p->status_fd, .events = POLLIN }, map[n++] = 2;
		for (int i = 0; i < 2; i++)
			if (p->log[i].fd >= 0)
				pf[n] = (struct pollfd){ .fd = p->log[i].fd, .events = POLLIN },
				map[n++] = i;
		int rc = poll(pf, (nfds_t)n, POLL_MS);
		if (rc < 0 && errno != EINTR) {
			restore_problem(it, "poll failed: %s", strerror(errno));
			stop_children(p, false);
		}
		for (int i = 0; rc > 0 && i < n; i++) {
			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (map[i] == 2)
				read_status(p);
			else
				read_log(rs, &p->log[map[i]]);
		}
		if (restore_interrupted)
			stop_children(p, true);
		/* import-collection is gone and failed: the download has no
		 * reader left and need not wait for its next write to learn it. */
		if (p->status_fd < 0 && !p->result_ok && p->download_pid > 0 &&
		    !p->download_stopped) {
			kill(p->download_pid, SIGTERM);
			p->download_stopped = true;
		}
		if (!dry_run && now_ms() - last_draw >= POLL_MS) {
			last_draw = now_ms();
			restore_progress(rs, it, p->documents, p->bson_bytes,
					 (double)(last_draw - t0) / 1000.0);
		}
	}
}

/* Fills the item from the result record and the exit statuses. */
static void judge(struct restore *rs, struct restore_item *it, struct pair *p, int import_st,
		  int download_st, bool dry_run)
{
	struct status_record rec;
	char how[256];
	bool ok_word;
	bool parsed = p->have_result &&
		      parse_result(p->result, p->result_len, &rec, &ok_word) == 0;
	/* A downloader that lost its reader, or that we stopped because its
	 * reader failed, is a consequence, not a cause. */
	bool download_failed = !dry_run && it->c->blob != NULL &&
		!(WIFEXITED(download_st) && (WEXITSTATUS(download_st) == CHILD_EXIT_OK ||
					     WEXITSTATUS(download_st) == CHILD_EXIT_PEER_GONE)) &&
		!((p->download_stopped || p->terminated) && WIFSIGNALED(download_st));
	const char *class = parsed && !p->result_ok ? status_get(&rec, "class") : NULL;
	const char *message = parsed ? status_get(&rec, "message") : NULL;

	if (dry_run) {
		it->target_checked = p->have_target;
		it->target_exists = p->target_exists;
		it->target_documents = p->target_documents;
		if (!parsed || !p->result_ok) {
			describe_exit(import_st, how, sizeof(how));
			restore_problem(it, "cannot check the target: %s", message ? message :
					p->log[0].last_error[0] ? p->log[0].last_error : how);
			it->result = "failed";
		} else if (p->target_documents > 0 && !rs->drop) {
			it->result = "refused";
		}
		return;
	}

	it->started = true;
	if (parsed) {
		it->documents = status_get_u64(&rec, "documents", 0);
		it->inserted = status_get_u64(&rec, "inserted", 0);
		it->failed = status_get_u64(&rec, "failed", 0);
		it->uncertain = status_get_u64(&rec, "uncertain", 0);
		it->indexes = (int)status_get_u64(&rec, "indexes", 0);
		it->dropped = status_get_u64(&rec, "dropped", 0) != 0;
	} else {
		/* No result: what the last progress record said is all we know. */
		describe_exit(import_st, how, sizeof(how));
		it->documents = p->documents;
		it->inserted = p->inserted;
		it->uncertain = p->documents > p->inserted ? p->documents - p->inserted : 0;
		restore_problem(it, "import-collection %s without a report%s%s; at least %llu "
				"documents had been inserted", how,
				p->log[0].last_error[0] ? ": " : "", p->log[0].last_error,
				(unsigned long long)p->inserted);
	}
	if (download_failed) {
		describe_exit(download_st, how, sizeof(how));
		restore_problem(it, "downloading %s failed: %s", it->c->blob,
				p->log[1].last_error[0] ? p->log[1].last_error : how);
	}
	if (parsed && p->result_ok && it->c->blob == NULL) {
		it->result = "ok";      /* a view: created from its definition */
		return;
	}
	if (parsed && p->result_ok && !download_failed) {
		restore_matches_manifest(it, it->documents, status_get_u64(&rec, "bson_bytes", 0),
					 status_get_u64(&rec, "gzip_bytes", 0),
					 status_get(&rec, "sha256"), status_get(&rec, "md5"));
		it->result = it->problem[0] ? "failed" : "ok";
		if (it->problem[0])
			restore_problem(it, "the documents were inserted, but they are not what "
					"the backup recorded");
		return;
	}
	if (message != NULL)
		restore_problem(it, "%s", message);
	if (class != NULL && strcmp(class, IMPORT_CLASS_REFUSED) == 0)
		it->result = "refused";
	else if (restore_interrupted)
		it->result = "interrupted";
	else
		it->result = "failed";
}

/* 0 when the collection went (or, dry run, would go) as asked. */
static int run_pair(struct restore *rs, struct restore_item *it, bool dry_run)
{
	const struct mab_config *cfg = &rs->st->cfg;
	struct pair p = { .status_fd = -1 };
	struct spawn_limits limits;
	int data[2] = { -1, -1 }, sv[2] = { -1, -1 }, elog[2][2] = { { -1, -1 }, { -1, -1 } };
	int meta_fd = -1, import_st = 0, download_st = 0;
	char import_path[PATH_MAX], download_path[PATH_MAX];

	p.log[0] = (struct child_log){ .name = "import-collection", .fd = -1 };
	p.log[1] = (struct child_log){ .name = "download-blob", .fd = -1 };
	limits_of(cfg, &limits);
	snprintf(import_path, sizeof(import_path), "%s/import-collection", helper_dir());
	snprintf(download_path, sizeof(download_path), "%s/download-blob", helper_dir());

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0 ||
	    pipe2(elog[0], O_CLOEXEC) != 0 || pipe2(elog[1], O_CLOEXEC) != 0 ||
	    (!dry_run && it->c->blob != NULL && pipe2(data, O_CLOEXEC) != 0)) {
		restore_problem(it, "cannot create pipes: %s", strerror(errno));
		goto fail;
	}
	/* The dry run only looks at the target: no metadata needed. */
	if (!dry_run && it->with_metadata) {
		if (restore_load_metadata(rs, it) != 0)
			goto fail;
		meta_fd = metadata_memfd(it);
		int e = errno;
		restore_free_metadata(it);
		if (meta_fd < 0) {
			restore_problem(it, "cannot pass the metadata on: %s", strerror(e));
			goto fail;
		}
	}

	char *iargv[16], expect[128];
	int n = 0;
	iargv[n++] = "import-collection";
	iargv[n++] = "--database";
	iargv[n++] = (char *)rs->to_db;
	iargv[n++] = "--status-fd";
	iargv[n++] = "3";
	iargv[n++] = "--kind";
	iargv[n++] = it->c->type;
	if (!dry_run && it->c->blob != NULL) {
		snprintf(expect, sizeof(expect), "documents=%lld,bson_bytes=%lld,gzip_bytes=%lld",
			 (long long)it->c->documents, (long long)it->c->bson_bytes,
			 (long long)it->c->gzip_bytes);
		iargv[n++] = "--expect";
		iargv[n++] = expect;
	}
	if (meta_fd >= 0) {
		iargv[n++] = "--metadata-fd";
		iargv[n++] = "4";
	}
	if (rs->drop)
		iargv[n++] = "--drop";
	if (dry_run)
		iargv[n++] = "--dry-run";
	if (rs->no_indexes)
		iargv[n++] = "--no-indexes";
	iargv[n++] = "--";
	iargv[n++] = it->c->name;
	iargv[n] = NULL;
	struct spawn_request ireq = {
		.path = import_path, .argv = iargv, .stdin_fd = data[0], .stdout_fd = -1,
		.status_fd = sv[1], .config_fd = meta_fd, .pgid = &p.pgid, .limits = &limits,
	};
	/* In its environment for exactly one spawn: the downloader never has it. */
	if (setenv("MONGODB_URI", rs->to_uri, 1) != 0) {
		restore_problem(it, "cannot pass the target URI on: %s", strerror(errno));
		goto fail;
	}
	p.import_pid = spawn_logged(&ireq, elog[0][1]);
	int spawn_errno = errno;
	unsetenv("MONGODB_URI");
	if (p.import_pid < 0) {
		restore_problem(it, "cannot start %s: %s", import_path, strerror(spawn_errno));
		goto fail;
	}
	p.status_fd = sv[0];
	sv[0] = -1;
	p.log[0].fd = elog[0][0];
	elog[0][0] = -1;
	fd_set_nonblock(p.status_fd, 1);

	if (!dry_run && it->c->blob != NULL) {
		char *dargv[8];
		n = 0;
		dargv[n++] = "download-blob";
		if (rs->st->conf_read) {
			dargv[n++] = "-c";
			dargv[n++] = (char *)rs->st->conf_path;
		}
		dargv[n++] = "--";
		dargv[n++] = it->c->blob;
		dargv[n] = NULL;
		struct spawn_request dreq = {
			.path = download_path, .argv = dargv, .stdin_fd = -1, .stdout_fd = data[1],
			.status_fd = -1, .config_fd = -1, .pgid = &p.pgid, .limits = &limits,
		};
		p.download_pid = spawn_logged(&dreq, elog[1][1]);
		if (p.download_pid < 0)
			/* import-collection sees an empty stream and says so. */
			restore_problem(it, "cannot start %s: %s", download_path, strerror(errno));
		else
			p.log[1].fd = elog[1][0], elog[1][0] = -1;
	}
	/* Our copies must go: EOF reaches a child only when every write end
	 * is closed. */
	for (int i = 0; i < 2; i++) {
		if (data[i] >= 0)
			close(data[i]);
		if (sv[i] >= 0)
			close(sv[i]);
		for (int j = 0; j < 2; j++)
			if (elog[i][j] >= 0)
				close(elog[i][j]);
		data[i] = sv[i] = elog[i][0] = elog[i][1] = -1;
	}
	if (meta_fd >= 0)
		close(meta_fd);
	meta_fd = -1;
	for (int i = 0; i < 2; i++)
		if (p.log[i].fd >= 0)
			fd_set_nonblock(p.log[i].fd, 1);

	watch(rs, it, &p, dry_run);
	import_st = reap(p.import_pid);
	download_st = reap(p.download_pid);
	judge(rs, it, &p, import_st, download_st, dry_run);
	if (dry_run)
		return it->result == NULL ? 0 : -1;
	return it->result != NULL && strcmp(it->result, "ok") == 0 ? 0 : -1;

fail:
	for (int i = 0; i < 2; i++) {
		if (data[i] >= 0)
			close(data[i]);
		if (sv[i] >= 0)
			close(sv[i]);
		for (int j = 0; j < 2; j++)
			if (elog[i][j] >= 0)
				close(elog[i][j]);
	}
	if (meta_fd >= 0)
		close(meta_fd);
	it->result = "failed";
	return -1;
}

size_t restore_mongo_preflight(struct restore *rs)
{
	size_t bad = 0;

	for (size_t i = 0; i < rs->n; i++) {
		struct restore_item *it = &rs->items[i];

		if (it->result != NULL)
			continue;       /* its blobs are already known to be bad */
		if (restore_interrupted) {
			restore_problem(it, "interrupted");
			it->result = "interrupted";
			bad++;
			continue;
		}
		if (run_pair(rs, it, true) == 0)
			continue;
		bad++;
		/* A server that cannot be reached for one collection cannot be
		 * for the next: do not wait out its timeout again. */
		if (strcmp(it->result, "failed") == 0) {
			for (size_t j = i + 1; j < rs->n; j++) {
				if (rs->items[j].result != NULL)
					continue;
				restore_problem(&rs->items[j], "not checked: the target could not be "
						"checked for %s", it->c->name);
				rs->items[j].result = "failed";
				bad++;
			}
			break;
		}
	}
	return bad;
}

size_t restore_mongo_run(struct restore *rs)
{
	size_t bad = 0;

	for (size_t i = 0; i < rs->n; i++) {
		struct restore_item *it = &rs->items[i];

		if (restore_interrupted) {
			restore_problem(it, "interrupted before it started");
			bad++;
			restore_print_item(rs, it);
			continue;
		}
		if (run_pair(rs, it, false) != 0)
			bad++;
		restore_print_item(rs, it);
	}
	return bad;
}
