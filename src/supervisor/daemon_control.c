/* daemon_control.c - what the operator asks of the running daemon: the
 * configuration reloaded on SIGHUP (what may change without a restart),
 * and the control socket's handlers (status, metrics, run, cancel).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "daemon.h"
#include "run_as.h"
#include "log.h"
#include "pidfile.h"
#include "xio.h"
#include "daemon_int.h"


/* ---- configuration reload ---- */

static void log_reload_problem(void *ctx, const char *message)
{
	(void)ctx;
	msg_error("reload: %s", message);
}

void reload(struct daemon *d)
{
	struct mab_config *fresh = calloc(1, sizeof(*fresh));
	struct cron_expr expr;
	char err[256];

	d->last_reload_at = time(NULL);
	d->last_reload_ok = false;
	if (fresh == NULL) {
		snprintf(d->last_reload_message, sizeof(d->last_reload_message), "out of memory");
		msg_error("reload: out of memory; keeping the previous configuration");
		return;
	}
	int problems = config_load(d->conf_path, fresh, log_reload_problem, NULL);
	if (problems == 0 && cron_parse(fresh->cron, &expr, err, sizeof(err)) != 0)
		problems = 1, msg_error("reload: cron: %s", err);
	if (problems != 0) {
		snprintf(d->last_reload_message, sizeof(d->last_reload_message),
			 "%s has %d problem%s (see the log); keeping the previous configuration",
			 d->conf_path, problems, problems == 1 ? "" : "s");
		msg_error("reload: %s", d->last_reload_message);
		config_free(fresh);
		free(fresh);
		return;
	}
	if (strcmp(fresh->control_socket, d->cfg->control_socket) != 0 ||
	    strcmp(fresh->pid_file, d->cfg->pid_file) != 0 ||
	    strcmp(fresh->state_dir, d->cfg->state_dir) != 0 ||
	    strcmp(fresh->user, d->cfg->user) != 0 ||
	    strcmp(fresh->control_group, d->cfg->control_group) != 0 ||
	    fresh->log_target != d->cfg->log_target ||
	    strcmp(fresh->log_file, d->cfg->log_file) != 0)
		msg_warn("reload: changes to [control], [daemon], [state] and [log] target and "
			 "file take effect at the next restart");
	/* A run keeps the configuration it started with. */
	if (d->run_active && d->run.cfg == d->cfg) {
		d->retired_cfg = d->cfg;
	} else {
		config_free(d->cfg);
		free(d->cfg);
	}
	d->cfg = fresh;
	d->cron = expr;
	d->breaker.threshold = fresh->failure_threshold;
	d->breaker.open_seconds = fresh->open_seconds;
	log_set_level(fresh->log_level);
	schedule_next(d, time(NULL));
	d->last_reload_ok = true;
	snprintf(d->last_reload_message, sizeof(d->last_reload_message),
		 "configuration re-read; schedule '%s' (%s)", fresh->cron, fresh->timezone);
	msg_info("reload: configuration %s re-read; schedule '%s' (%s)", d->conf_path,
		 fresh->cron, fresh->timezone);
}

/* ---- control socket handlers ---- */

char *handle_status(void *ctx, char *err, size_t errlen)
{
	char *json = daemon_status_json(ctx);

	if (json == NULL)
		snprintf(err, errlen, "out of memory");
	return json;
}

char *handle_metrics(void *ctx, char *err, size_t errlen)
{
	char *text = daemon_metrics_text(ctx);

	if (text == NULL)
		snprintf(err, errlen, "out of memory");
	return text;
}

int handle_run(void *ctx, char **body, char *err, size_t errlen)
{
	struct daemon *d = ctx;
	int r;

	if (d->stopping) {
		snprintf(err, errlen, "the daemon is stopping");
		return 409;
	}
	r = start_run(d, "control: run requested", err, errlen);
	if (asprintf(body, "{\"run_id\": \"%s\", \"coalesced\": %s}\n", d->run.run_id,
		     r == 1 ? "true" : "false") < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int handle_cancel(void *ctx, char **body, char *err, size_t errlen)
{
	struct daemon *d = ctx;

	if (!d->run_active || d->run.phase == RUN_FINISHED) {
		snprintf(err, errlen, "no backup run is in progress");
		return 409;
	}
	backup_run_cancel(&d->run, "cancelled through the control socket");
	if (asprintf(body, "{\"run_id\": \"%s\"}\n", d->run.run_id) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}
