/* backup_run.h - one backup run: every configured collection exported by
 * export-collection and uploaded by upload-blob, then the set's manifest.
 *
 * The run is driven by the caller's event loop: it hands out the fds it
 * wants polled and a deadline, and is told about readable fds, child exits
 * and the passing of time.  It never blocks and never touches the network
 * itself; the helper programs do.
 */
#ifndef MAB_BACKUP_RUN_H
#define MAB_BACKUP_RUN_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "job_order.h"
#include "mab_config.h"
#include "path_template.h"

enum job_state { JOB_QUEUED, JOB_DATA, JOB_METADATA, JOB_DONE, JOB_FAILED };

/* How export-collection compressed a blob, as its result line says. */
struct gzip_used {
	char engine[16];          /* "" when the exporter did not say */
	int level, threads;
	uint64_t members;
};

/* One end of a pipeline: a child process and its status socket. */
struct side {
	pid_t pid;                /* 0 once reaped (or never started) */
	int status_fd;            /* -1 once at EOF */
	bool started;
	bool exited;
	int wait_status;
	bool result_ok;           /* sent "result ok" */
	char error_class[16];
	char error[512];
	uint64_t documents, bson_bytes, gzip_bytes;
	int64_t estimate;         /* documents the exporter expects, -1 unknown */
	struct gzip_used gzip;    /* export-collection's result */
	/* prune-sets: the newest complete set it found in storage */
	char newest_set[BLOB_NAME_MAX];
	int64_t newest_finished;  /* its manifest's "finished", -1 unknown */
	/* export-collection --list: its "size" records as they came */
	bool wants_sizes;
	struct job_rank *sizes;
	size_t n_sizes, sizes_cap;
};

/* A producer (export-collection, or the supervisor's own buffer for the
 * manifest) piped into upload-blob. */
struct pipeline {
	char blob[BLOB_NAME_MAX];
	struct side producer;
	struct side uploader;
	/* the supervisor as producer: */
	const char *buffer;
	size_t buffer_len, buffer_off;
	int buffer_fd;
	bool self_produced;
	/* upload-blob's two-phase commit */
	bool staged;
	uint64_t staged_bytes;
	bool decided;
	bool committed;
	char md5[32];
	char sha256[72];
	uint64_t uploaded_bytes;
};

/* What a job backs up, as mongodump dumps it: a collection's documents
 * and metadata; a view's definition only (metadata); a time-series
 * collection's buckets and metadata; a database's users or roles (data
 * only). */
enum job_kind { KIND_COLLECTION, KIND_VIEW, KIND_TIMESERIES, KIND_USERS, KIND_ROLES };

struct collection_job {
	char *database;
	char *name;
	char *label;              /* name, or database.name when a run has several */
	enum job_kind kind;
	char blob[BLOB_NAME_MAX];          /* "" for a view */
	char metadata_blob[BLOB_NAME_MAX]; /* "" for users and roles */
	enum job_state state;
	int attempts;
	time_t not_before;
	struct pipeline pl;
	/* progress and results */
	int64_t estimate;
	uint64_t documents, bson_bytes, gzip_bytes;
	struct gzip_used gzip;
	char md5[32];
	char sha256[72];
	double started, seconds;
	bool data_done;           /* data blob committed; metadata next */
	int storage_failures;     /* transient storage failures so far */
	char error[600];
};

enum run_phase { RUN_LISTING, RUN_MANIFEST_START, RUN_COLLECTIONS, RUN_MANIFEST_END,
		 RUN_VERIFY, RUN_RETENTION, RUN_FINISHED };

struct backup_run {
	const struct mab_config *cfg;
	char config_path[4096];   /* what the children are given with -c */
	int config_fd;            /* sealed memfd with the config text, or -1 */
	int secrets_fd;           /* sealed memfd with the run's secrets, or -1 */
	const struct run_as *run_as;  /* who the helpers run as (NULL: as we do) */
	char run_id[64];
	time_t start;
	double start_mono;
	double finish_wall;
	double deadline;          /* monotonic seconds: run_timeout */
	enum run_phase phase;
	struct collection_job *jobs;
	size_t n_jobs;
	char set_folder[BLOB_NAME_MAX];
	unsigned set_seq;         /* 1: the rendered folder; n: its ".n" sibling */
	bool set_claimed;         /* the first manifest is committed there */
	char manifest_blob[BLOB_NAME_MAX];
	struct pipeline manifest;
	char *manifest_json;
	bool manifest_started;
	time_t manifest_not_before;
	int manifest_failures;
	int manifest_deaths;       /* upload-blobs of the manifest that died */
	struct breaker *breaker;
	/* export-collection --list, NUL-separated names: for collections = *
	 * what to back up; for both, the collections' sizes */
	struct side lister;
	/* the order jobs start in, largest first (NULL: configuration order) */
	struct job_rank *start_order;
	/* retention after a complete run: prune-sets; after any other run
	 * prune-sets --dry-run, for the newest complete set in storage */
	struct side pruner;
	bool pruner_dry_run;
	bool retention_done;
	bool backup_complete;     /* every collection and the final manifest committed */
	/* [verify] after_backup: verify-set */
	struct side verifier;
	bool verify_failed;
	char verify_summary[600];
	char retention_summary[256];
	int list_fd;
	char *list_buf;
	size_t list_len;
	pid_t pgid;
	bool cancelled;
	bool timed_out;
	double kill_at;           /* monotonic time to escalate to SIGKILL */
	bool killed;
	bool manifest_failed;
	char failure[600];        /* why the run as a whole failed */
	int n_ok, n_failed;
};

struct breaker;
struct run_as;
/* Prepares a run over the given collection names (NULL: the config's list).
 * Every upload asks the storage breaker first and reports back to it; the
 * helpers run as run_as.  -1 with run->failure set when it cannot start
 * (an unreadable secret file, say). */
const char *job_kind_name(enum job_kind kind);
/* Whether job i is the first of its database in the run: for naming each
 * database once. */
bool job_first_of_database(const struct backup_run *run, size_t i);
int job_kind_from_name(const char *name);   /* -1 when unknown */

int backup_run_start(struct backup_run *run, const struct mab_config *cfg,
		     struct breaker *breaker, const struct run_as *run_as);
/* Fills up to max pollfds; returns how many. */
size_t backup_run_pollfds(struct backup_run *run, struct pollfd *fds, size_t max);
/* Milliseconds until the run wants to be woken without an event (-1: never). */
int backup_run_timeout_ms(const struct backup_run *run);
void backup_run_handle_fds(struct backup_run *run, const struct pollfd *fds, size_t n);
/* true if pid belonged to this run; usage (may be NULL) is logged at debug. */
struct rusage;
bool backup_run_child_exited(struct backup_run *run, pid_t pid, int wait_status,
			     const struct rusage *usage);
/* Starts what can start, checks timeouts; call after every event. */
void backup_run_step(struct backup_run *run);
bool backup_run_finished(const struct backup_run *run);
/* TERM to every child now, KILL after a grace period; nothing is committed. */
void backup_run_cancel(struct backup_run *run, const char *why);
/* The newest complete set in storage as prune-sets saw it after the run
 * ("" when there is none); false when the run did not learn it (the breaker
 * was open, the run was cancelled, prune-sets failed). */
bool backup_run_newest_complete(const struct backup_run *run, const char **set,
				int64_t *finished);
/* 0 all collections and the manifest committed, 1 otherwise. */
int backup_run_exit_code(const struct backup_run *run);
void backup_run_free(struct backup_run *run);

double monotonic_seconds(void);

#endif
