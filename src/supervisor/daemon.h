/* daemon.h - mongo-azure-backupd as a service: schedule, runs, control
 * socket, state, hooks, signals, all from one poll(2) loop. */
#ifndef MAB_DAEMON_H
#define MAB_DAEMON_H

#include <stdbool.h>
#include <time.h>

#include "backup_run.h"
#include "breaker.h"
#include "cron.h"
#include "hook.h"
#include "run_as.h"
#include "mab_config.h"
#include "state_file.h"

struct control_server;

struct daemon {
	char *conf_path;
	struct mab_config *cfg;          /* in force */
	struct mab_config *retired_cfg;  /* replaced by a reload, still used by a run */
	struct cron_expr cron;
	time_t next_run;                 /* 0: none */
	time_t started;
	bool foreground;
	struct backup_run run;
	bool run_active;
	uint64_t coalesced;
	struct daemon_state state;
	struct breaker breaker;          /* mirrored into state, which persists it */
	struct control_server *control;
	int pid_fd;
	int signal_fd;
	bool stopping;
	struct hook hooks[HOOK_MAX];
	struct run_as run_as;            /* [daemon] user: who the children run as */
	bool once;                       /* --once: one run, then exit with its code */
	int once_exit;
	time_t last_reload_at;           /* 0: no reload since the start */
	bool last_reload_ok;
	char last_reload_message[512];
};

/* Where the daemon logs: [log] target, with auto meaning stderr in the
 * foreground and, in the background, syslog when it listens, else [log]
 * file.  0, or -1 with err. */
int daemon_log_open(const struct mab_config *cfg, bool background, char *err,
		    size_t errlen);

/* Runs the service; takes ownership of cfg.  Returns the exit code.  With
 * once, one run now in the foreground, then the exit code of that run
 * (backup_run_exit_code). */
int daemon_main(const char *conf_path, struct mab_config *cfg, bool foreground, bool once);

/* daemon_status.c: what the control socket serves. */
char *daemon_status_json(struct daemon *d);
char *daemon_metrics_text(struct daemon *d);
/* The status-shaped record of a finished run, for state and status. */
bson_t *daemon_run_record(const struct backup_run *run, enum run_result result);
enum run_result daemon_run_result(const struct backup_run *run);
/* "2026-11-27T03:00:00Z" */
void format_utc(time_t t, char *out, size_t len);

#endif
