/* backup_run_plan.c - a backup run's plan: the configuration snapshot
 * handed to the children, the collection listing (export-collection
 * --list) started and read, and the jobs with their blob names for the
 * run's set folder and their start order.
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



static const char *const kind_names[] = {
	[KIND_COLLECTION] = "collection", [KIND_VIEW] = "view",
	[KIND_TIMESERIES] = "timeseries", [KIND_USERS] = "users", [KIND_ROLES] = "roles",
};

const char *job_kind_name(enum job_kind kind)
{
	return kind_names[kind];
}

bool job_first_of_database(const struct backup_run *run, size_t i)
{
	for (size_t k = 0; k < i; k++)
		if (strcmp(run->jobs[k].database, run->jobs[i].database) == 0)
			return false;
	return true;
}

int job_kind_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
		if (strcmp(name, kind_names[i]) == 0)
			return (int)i;
	return -1;
}

/* One blob name of a job: blob_path rendered for database and name, in
 * the run's (numbered) set folder. */
static int render_blob(struct backup_run *run, const struct collection_job *job,
		       const char *name, bool metadata, char *out, size_t outlen)
{
	char rendered[BLOB_NAME_MAX], numbered[BLOB_NAME_MAX];

	if (path_template_render(run->cfg->blob_path, job->database, name, run->start,
				 rendered, sizeof(rendered)) != 0 ||
	    path_set_sequence(rendered, run->set_seq, numbered, sizeof(numbered)) != 0)
		return -1;
	if (metadata)
		return path_metadata_name(numbered, out, outlen);
	return snprintf(out, outlen, "%s", numbered) < (int)outlen ? 0 : -1;
}

static int by_blob_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Two jobs writing one blob would lose one of them: a template without
 * {database}, or names such as "a_b" + "c" and "a" + "b_c" that render
 * alike.  -1 with the failure set when two names meet. */
static int blob_names_distinct(struct backup_run *run)
{
	const char **names = calloc(2 * run->n_jobs + 1, sizeof(char *));
	size_t n = 0;
	int r = 0;

	if (names == NULL)
		return 0;   /* only a check: the run is not stopped for it */
	for (size_t i = 0; i < run->n_jobs; i++) {
		if (run->jobs[i].blob[0])
			names[n++] = run->jobs[i].blob;
		if (run->jobs[i].metadata_blob[0])
			names[n++] = run->jobs[i].metadata_blob;
	}
	qsort(names, n, sizeof(char *), by_blob_name);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(names[i - 1], names[i]) != 0)
			continue;
		const char *who[2] = { NULL, NULL };
		for (size_t k = 0, w = 0; k < run->n_jobs && w < 2; k++)
			if (strcmp(run->jobs[k].blob, names[i]) == 0 ||
			    strcmp(run->jobs[k].metadata_blob, names[i]) == 0)
				who[w++] = run->jobs[k].label;
		snprintf(run->failure, sizeof(run->failure), "%s and %s would both be written "
			 "to %s: blob_path (%s) does not tell them apart", who[0] ? who[0] : "?",
			 who[1] ? who[1] : "?", names[i], run->cfg->blob_path);
		r = -1;
		break;
	}
	free(names);
	return r;
}

/* Names every blob of the run for its set folder: blob_path rendered, with
 * the folder numbered when set_seq > 1.  A time-series collection's data
 * is named by its buckets (mongodump's system.buckets.NAME), its metadata
 * by the collection. */
int name_blobs(struct backup_run *run)
{
	for (size_t i = 0; i < run->n_jobs; i++) {
		struct collection_job *job = &run->jobs[i];
		char buckets[600];
		const char *data_name = job->name;
		int r = 0;

		job->blob[0] = job->metadata_blob[0] = '\0';
		if (job->kind == KIND_TIMESERIES) {
			snprintf(buckets, sizeof(buckets), "system.buckets.%s", job->name);
			data_name = buckets;
		}
		if (job->kind != KIND_VIEW)
			r |= render_blob(run, job, data_name, false, job->blob, sizeof(job->blob));
		if (job->kind != KIND_USERS && job->kind != KIND_ROLES)
			r |= render_blob(run, job, job->name, true, job->metadata_blob,
					 sizeof(job->metadata_blob));
		if (r != 0) {
			snprintf(run->failure, sizeof(run->failure),
				 "blob name for %s '%s' is too long", job_kind_name(job->kind),
				 job->label);
			return -1;
		}
		pipeline_init(&job->pl, job->blob[0] ? job->blob : job->metadata_blob);
		/* A view has only its definition to back up. */
		job->data_done = job->kind == KIND_VIEW;
	}
	const struct collection_job *first = &run->jobs[0];
	path_set_folder(first->blob[0] ? first->blob : first->metadata_blob, run->set_folder,
			sizeof(run->set_folder));
	snprintf(run->manifest_blob, sizeof(run->manifest_blob), "%s%s", run->set_folder,
		 MANIFEST_NAME);
	return blob_names_distinct(run);
}

/* Sets up one job per entry, with its blob names. */
int create_jobs(struct backup_run *run, const struct job_entry *entries, size_t n)
{
	bool several = false;

	run->jobs = calloc(n ? n : 1, sizeof(*run->jobs));
	if (run->jobs == NULL) {
		snprintf(run->failure, sizeof(run->failure), "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		several |= strcmp(entries[i].database, entries[0].database) != 0;
	for (size_t i = 0; i < n; i++) {
		struct collection_job *job = &run->jobs[i];
		job->database = strdup(entries[i].database);
		job->name = strdup(entries[i].name);
		if (several)
			(void)!asprintf(&job->label, "%s.%s", entries[i].database, entries[i].name);
		else
			job->label = strdup(entries[i].name);
		if (job->database == NULL || job->name == NULL || job->label == NULL) {
			snprintf(run->failure, sizeof(run->failure), "out of memory");
			run->n_jobs = i + 1;
			return -1;
		}
		job->kind = entries[i].kind;
		run->n_jobs++;
		job->estimate = -1;
	}
	if (n == 0) {
		snprintf(run->failure, sizeof(run->failure), "no collections to back up%s",
			 run->cfg->all_databases ? " in any database" : "");
		return -1;
	}
	run->set_seq = 1;
	return name_blobs(run);
}

int start_lister(struct backup_run *run)
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
	run->lister.wants_sizes = true;
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

void read_list(struct backup_run *run)
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

/* Puts the jobs in start order by the lister's estimates: the largest
 * first, the unknown last in configuration order.  Without estimates (or
 * memory for the order) the configuration's order stays: the order only
 * speeds a run up, it never stops one. */
void order_jobs(struct backup_run *run, bool use_sizes)
{
	struct side *l = &run->lister;
	struct job_rank *ranks = NULL;
	char size[64];

	if (!use_sizes || l->n_sizes == 0 || run->n_jobs == 0)
		goto out;
	ranks = calloc(run->n_jobs, sizeof(*ranks));
	if (ranks == NULL) {
		msg_warn("run %s: out of memory; the collections start in configuration order",
			 run->run_id);
		goto out;
	}
	for (size_t i = 0; i < run->n_jobs; i++)
		ranks[i] = (struct job_rank){ .index = i, .size = { SIZE_UNKNOWN, 0 } };
	for (size_t k = 0; k < l->n_sizes; k++)
		if (l->sizes[k].index < run->n_jobs)
			ranks[l->sizes[k].index].size = l->sizes[k].size;
	job_rank_sort(ranks, run->n_jobs);
	for (size_t k = 0; k < run->n_jobs; k++)
		msg_debug("run %s: start %zu: collection %s, estimated %s", run->run_id, k + 1,
			  run->jobs[ranks[k].index].name,
			  job_size_describe(&ranks[k].size, size, sizeof(size)));
	run->start_order = ranks;
out:
	free(l->sizes);
	l->sizes = NULL;
	l->n_sizes = l->sizes_cap = 0;
}

/* The children read the configuration the supervisor accepted, not the
 * file as it is now: a later edit, valid or not, reaches no run until a
 * reload accepts it.  A sealed memfd, passed as fd 4, holds that text. */
int snapshot_config(struct backup_run *run)
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
