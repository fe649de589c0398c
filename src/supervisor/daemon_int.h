/* daemon_int.h - what the files of mongo-azure-backupd's service share
 * among themselves.  They call one way, top to bottom:
 *
 *   daemon.c          the poll loop, signals, detaching, daemon_main
 *   daemon_setup.c    start-up: directories, signals, the control socket
 *   daemon_control.c  what the operator asks: reload, the socket's handlers
 *   daemon_runs.c     runs scheduled, started and finished; hooks, state,
 *                     the breaker's record, the metrics text file
 *
 * (daemon_status.c, the status JSON and metrics, is used by them all.)
 */
#ifndef MAB_DAEMON_INT_H
#define MAB_DAEMON_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "daemon.h"

/* daemon_runs.c */
void breaker_from_state(struct daemon *d);
void run_finished(struct daemon *d);
void schedule_next(struct daemon *d, time_t after);
int start_run(struct daemon *d, const char *why, char *err, size_t errlen);
double wall_now(void);
void write_metrics_textfile(struct daemon *d);

/* daemon_control.c */
int handle_cancel(void *ctx, char **body, char *err, size_t errlen);
char *handle_metrics(void *ctx, char *err, size_t errlen);
int handle_run(void *ctx, char **body, char *err, size_t errlen);
char *handle_status(void *ctx, char *err, size_t errlen);
void reload(struct daemon *d);

/* daemon_setup.c */
int make_dir(const char *path, mode_t mode, bool *created, char *err, size_t errlen);
void parent_dir(const char *path, char *out, size_t len);
int service_init(struct daemon *d, char *err, size_t errlen);
bool should_catch_up(struct daemon *d, time_t now);

#endif
