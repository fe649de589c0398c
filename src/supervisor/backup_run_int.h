/* backup_run_int.h - what the files of one backup run share among
 * themselves and nobody else: backup_run.c (the phases and the jobs),
 * backup_run_plan.c (a run's plan: listing, naming, jobs, start and free),
 * backup_run_pipeline.c (one collection's export | upload pipeline, its
 * I/O and its end) and backup_run_commit.c (the manifest, verification,
 * retention and the run's result).  The daemon includes backup_run.h only.
 */
#ifndef MAB_BACKUP_RUN_INT_H
#define MAB_BACKUP_RUN_INT_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "backup_run.h"
#include "spawn.h"

enum manifest_progress { MANIFEST_PENDING, MANIFEST_WRITTEN, MANIFEST_GAVE_UP };

/* backup_run.c */
void job_pipeline_over(struct backup_run *run, struct collection_job *job);
const char *storage_fatal_failure(const struct backup_run *run,
				  const struct pipeline *pl);
int storage_retry_delay(int storage_failures);
bool storage_transient_failure(const struct backup_run *run,
			       const struct pipeline *pl);
void tell_breaker(struct backup_run *run, const struct pipeline *pl);
double wall_seconds(void);

/* backup_run_pipeline.c */
void describe_exit(int wait_status, char *out, size_t len);
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
int start_export_pipeline(struct backup_run *run, struct pipeline *pl,
			  const char *collection, bool metadata, char *err, size_t errlen);
int start_uploader(struct backup_run *run, struct pipeline *pl, int stdin_fd,
		   const char *content_type, bool create_only,
		   struct spawn_limits *limits);
bool uploader_died(const struct pipeline *pl);

/* backup_run_commit.c */
void finish_run(struct backup_run *run);
enum manifest_progress manifest_step(struct backup_run *run, bool final);
void retention_over(struct backup_run *run);
int start_newest_lookup(struct backup_run *run);
int start_pruner(struct backup_run *run, bool dry_run);
int start_verifier(struct backup_run *run);
void verification_over(struct backup_run *run);

/* backup_run_plan.c */
void finish_listing(struct backup_run *run);
int name_blobs(struct backup_run *run);
void read_list(struct backup_run *run);

#endif
