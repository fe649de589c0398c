/* backup_run_int.h - what the files of one backup run share among
 * themselves and nobody else.  They call one way, top to bottom:
 *
 *   backup_run_step.c      the phases: start, step, the poll loop's events
 *   backup_run_commit.c    the manifest, the result, verification, retention
 *   backup_run_pipeline.c  the collections' jobs and their pipelines' I/O
 *   backup_run_plan.c      the configuration snapshot, listing, blob names
 *   backup_run.c           the run's parts: sides and pipelines and their
 *                          verdicts, storage failures, timeout, cancel, free
 *
 * (commit uses plan; pipeline and plan use only backup_run.c).  The daemon
 * includes backup_run.h only.
 */
#ifndef MAB_BACKUP_RUN_INT_H
#define MAB_BACKUP_RUN_INT_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>

#include "backup_run.h"
#include "spawn.h"

/* Seconds from SIGTERM to SIGKILL for a cancelled run's children. */
#define KILL_GRACE_SECONDS 10.0
/* How often a waiting run looks again whether something is due. */
#define DUE_RECHECK_SECONDS 0.25
/* First back-off after a failed attempt; it doubles with each one. */
#define EXPORT_RETRY_BASE_SECONDS 2

enum manifest_progress { MANIFEST_PENDING, MANIFEST_WRITTEN, MANIFEST_GAVE_UP };

/* backup_run.c */
void br_describe_exit(int wait_status, char *out, size_t len);
bool export_retryable(const struct pipeline *pl);
void pipeline_decide(struct pipeline *pl);
bool pipeline_done(const struct pipeline *pl);
void pipeline_failure(const struct pipeline *pl, const char *producer_name,
		      char *out, size_t len);
void pipeline_init(struct pipeline *pl, const char *blob);
bool pipeline_succeeded(const struct pipeline *pl);
void run_limits(const struct backup_run *run, struct spawn_limits *limits);
void send_to_uploader(struct pipeline *pl, const char *what);
bool side_done(const struct side *s);
void side_init(struct side *s);
bool side_succeeded(const struct side *s);
int start_uploader(struct backup_run *run, struct pipeline *pl, int stdin_fd,
		   const char *content_type, bool create_only,
		   struct spawn_limits *limits);
const char *storage_fatal_failure(const struct backup_run *run,
				  const struct pipeline *pl);
int storage_retry_delay(int storage_failures);
bool storage_transient_failure(const struct backup_run *run,
			       const struct pipeline *pl);
void tell_breaker(struct backup_run *run, const struct pipeline *pl);
bool uploader_died(const struct pipeline *pl);
double br_wall_seconds(void);

/* backup_run_plan.c */
/* One thing a run backs up, as listed. */
struct job_entry {
	const char *database;
	const char *name;
	enum job_kind kind;
};
int create_jobs(struct backup_run *run, const struct job_entry *entries, size_t n);
int name_blobs(struct backup_run *run);
void order_jobs(struct backup_run *run, bool use_sizes);
void read_list(struct backup_run *run);
int snapshot_config(struct backup_run *run);
int start_lister(struct backup_run *run);

/* backup_run_pipeline.c */
void job_check(struct backup_run *run, struct collection_job *job);
void job_fail(struct backup_run *run, struct collection_job *job, const char *why);
bool jobs_all_over(const struct backup_run *run);
void pipeline_handle(struct pipeline *pl, const struct pollfd *fds, size_t n);
bool pipeline_reaped(struct pipeline *pl, pid_t pid, int wait_status,
		     const struct rusage *usage);
void side_read(struct pipeline *pl, struct side *s, bool is_uploader);
bool side_reaped(struct side *s, pid_t pid, int wait_status);
void start_jobs(struct backup_run *run);

/* backup_run_commit.c */
void finish_run(struct backup_run *run);
enum manifest_progress manifest_step(struct backup_run *run, bool final);
void retention_over(struct backup_run *run);
int start_newest_lookup(struct backup_run *run);
int start_pruner(struct backup_run *run, bool dry_run);
int start_verifier(struct backup_run *run);
void verification_over(struct backup_run *run);

#endif
