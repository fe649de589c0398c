/* daemon_runs.c - the daemon's runs: the next scheduled time, a run
 * started and finished (its hook, state.json, the metrics text file), and
 * the circuit breaker's state kept in state.json.
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


double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void schedule_next(struct daemon *d, time_t after)
{
	char err[256], when[32];
	time_t next;
	int r = cron_next(&d->cron, d->cfg->timezone, after, &next, err, sizeof(err));

	if (r == 0) {
		d->next_run = next;
		format_utc(next, when, sizeof(when));
		msg_debug("schedule: next run at %s", when);
	} else {
		d->next_run = 0;
		msg_error("schedule: '%s' in %s has no further occurrence%s%s; no more "
			  "scheduled runs", d->cfg->cron, d->cfg->timezone, r < 0 ? ": " : "",
			  r < 0 ? err : "");
	}
}

/* ---- runs ---- */

int start_run(struct daemon *d, const char *why, char *err, size_t errlen)
{
	if (d->run_active) {
		d->coalesced++;
		snprintf(err, errlen, "run %s is already in progress", d->run.run_id);
		msg_notice("%s: coalesced: run %s is still in progress", why, d->run.run_id);
		return 1;
	}
	msg_info("%s: starting a backup run", why);
	d->run_active = true;
	if (backup_run_start(&d->run, d->cfg, &d->breaker, &d->run_as) != 0 &&
	    d->run.phase != RUN_FINISHED) {
		/* Could not even begin (e.g. the config file vanished): a failed run. */
		msg_error("cannot start the run: %s", d->run.failure);
		d->run.finish_wall = wall_now();
		d->run.phase = RUN_FINISHED;
	}
	return 0;
}

static int write_file_atomically(const char *path, const char *text, char *err, size_t errlen)
{
	char tmp[PATH_MAX];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	if (xwrite_all(fd, text, strlen(text)) != 0 || close(fd) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	/* node_exporter reads whole files: the rename makes it see old or new. */
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

void write_metrics_textfile(struct daemon *d)
{
	char err[512];
	char *text;

	if (d->cfg->metrics_textfile[0] == '\0')
		return;
	text = daemon_metrics_text(d);
	if (text == NULL) {
		msg_warn("metrics: out of memory");
		return;
	}
	if (write_file_atomically(d->cfg->metrics_textfile, text, err, sizeof(err)) != 0)
		msg_warn("metrics: %s", err);
	free(text);
}

static void breaker_to_state(struct daemon *d)
{
	snprintf(d->state.breaker_state, sizeof(d->state.breaker_state), "%s",
		 breaker_state_name(d->breaker.state));
	d->state.breaker_failures = d->breaker.failures;
	d->state.breaker_opened = d->breaker.opened_at;
	d->state.breaker_transitions = d->breaker.transitions;
}

static void save_state(struct daemon *d)
{
	char err[512];

	breaker_to_state(d);
	if (state_save(d->cfg->state_dir, &d->state, err, sizeof(err)) != 0)
		msg_error("state: %s; the last run will be forgotten at restart", err);
}

static void run_hook(struct daemon *d, const struct backup_run *run, enum run_result result)
{
	const char *command = result == RESULT_COMPLETE ? d->cfg->on_success : d->cfg->on_failure;
	const char *what = result == RESULT_COMPLETE ? "on_success" : "on_failure";
	char failed[2048] = "";
	size_t used = 0;
	char *env[8] = { NULL };
	struct hook *slot = NULL;

	if (command[0] == '\0')
		return;
	for (size_t i = 0; i < HOOK_MAX; i++)
		if (d->hooks[i].pid == 0)
			slot = &d->hooks[i];
	if (slot == NULL) {
		msg_warn("notify: %d hooks still running; not starting %s", HOOK_MAX, what);
		return;
	}
	/* The run's databases, comma-separated, each once. */
	char databases[1024] = "";
	size_t dused = 0;
	for (size_t i = 0; i < run->n_jobs; i++) {
		if (!job_first_of_database(run, i))
			continue;
		int n = snprintf(databases + dused, sizeof(databases) - dused, "%s%s",
				 dused ? "," : "", run->jobs[i].database);
		if (n < 0 || (size_t)n >= sizeof(databases) - dused)
			break;
		dused += (size_t)n;
	}
	for (size_t i = 0; i < run->n_jobs; i++) {
		if (run->jobs[i].state == JOB_DONE)
			continue;
		int n = snprintf(failed + used, sizeof(failed) - used, "%s%s", used ? "," : "",
				 run->jobs[i].label);
		if (n < 0 || (size_t)n >= sizeof(failed) - used)
			break;
		used += (size_t)n;
	}
	if (asprintf(&env[0], "MAB_RUN_ID=%s", run->run_id) < 0 ||
	    asprintf(&env[1], "MAB_RESULT=%s", run_result_name(result)) < 0 ||
	    asprintf(&env[2], "MAB_FAILED_COLLECTIONS=%s", failed) < 0 ||
	    asprintf(&env[3], "MAB_SET=%s", run->set_folder) < 0 ||
	    asprintf(&env[4], "MAB_DATABASE=%s", databases) < 0 ||
	    asprintf(&env[5], "MAB_CONTAINER=%s", d->cfg->container) < 0 ||
	    asprintf(&env[6], "MAB_ERROR=%s", run->failure) < 0) {
		msg_warn("notify: out of memory; %s not run", what);
		goto out;
	}
	if (hook_start(slot, what, command, env, d->cfg->hook_timeout, &d->run_as) != 0)
		msg_warn("notify: cannot start the %s hook: %s", what, strerror(errno));
out:
	for (size_t i = 0; i < 7; i++)
		free(env[i]);
}

void run_finished(struct daemon *d)
{
	struct backup_run *run = &d->run;
	enum run_result result = daemon_run_result(run);
	const char *newest;
	int64_t newest_finished;

	if (d->state.last_run != NULL)
		bson_destroy(d->state.last_run);
	d->state.last_run = daemon_run_record(run, result);
	d->state.runs[result]++;
	d->state.last_run_started = run->start;
	d->state.last_run_finished = (time_t)run->finish_wall;
	if (backup_run_newest_complete(run, &newest, &newest_finished)) {
		/* What prune-sets found in storage after the run. */
		snprintf(d->state.last_complete_set, sizeof(d->state.last_complete_set), "%s",
			 newest);
		d->state.last_complete_finished = newest[0] ? (time_t)newest_finished : 0;
	} else if (result == RESULT_COMPLETE) {
		snprintf(d->state.last_complete_set, sizeof(d->state.last_complete_set), "%s",
			 run->set_folder);
		d->state.last_complete_finished = (time_t)run->finish_wall;
	}
	save_state(d);
	write_metrics_textfile(d);
	run_hook(d, run, result);
	d->once_exit = backup_run_exit_code(run);
	backup_run_free(run);
	d->run_active = false;
	if (d->retired_cfg != NULL) {
		config_free(d->retired_cfg);
		free(d->retired_cfg);
		d->retired_cfg = NULL;
	}
}

static void breaker_changed(void *ctx)
{
	struct daemon *d = ctx;

	/* Persisted at once: a restart during an outage must not forget it. */
	save_state(d);
	write_metrics_textfile(d);
}

void breaker_from_state(struct daemon *d)
{
	int s = breaker_state_from_name(d->state.breaker_state);

	breaker_init(&d->breaker, d->cfg->failure_threshold, d->cfg->open_seconds);
	d->breaker.state = s < 0 ? BREAKER_CLOSED : (enum breaker_state)s;
	/* A half-open trial died with the old process: open again, and let the
	 * clock decide when to try. */
	if (d->breaker.state == BREAKER_HALF_OPEN)
		d->breaker.state = BREAKER_OPEN;
	d->breaker.failures = d->state.breaker_failures;
	d->breaker.opened_at = d->state.breaker_opened;
	d->breaker.transitions = d->state.breaker_transitions;
	d->breaker.on_change = breaker_changed;
	d->breaker.ctx = d;
	if (d->breaker.state != BREAKER_CLOSED)
		msg_notice("breaker: %s since the last start (%d consecutive failures)",
			   breaker_state_name(d->breaker.state), d->breaker.failures);
}
