/* daemon.c - the service loop of mongo-azure-backupd.
 *
 * One poll(2) loop serves everything: a signalfd (TERM, INT, HUP, CHLD), the
 * control socket, the current run's status sockets, and the timers (next
 * scheduled run, run deadline, hook deadlines).  Nothing in it blocks on the
 * network: the children do that.  Without -f the process detaches, and the
 * starting process exits only once the daemon has its pid file and socket
 * (or prints why it could not get them), as chronyd does.
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

#define MAX_POLL_FDS 1024
#define HOOK_EXIT_GRACE_SECONDS 5.0

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void schedule_next(struct daemon *d, time_t after)
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

static int start_run(struct daemon *d, const char *why, char *err, size_t errlen)
{
	if (d->run_active) {
		d->coalesced++;
		snprintf(err, errlen, "run %s is already in progress", d->run.run_id);
		msg_notice("%s: coalesced: run %s is still in progress", why, d->run.run_id);
		return 1;
	}
	msg_info("%s: starting a backup run", why);
	d->run_active = true;
	if (backup_run_start(&d->run, d->cfg, &d->breaker, &d->run_as, NULL, 0) != 0 &&
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

static void write_metrics_textfile(struct daemon *d)
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
	for (size_t i = 0; i < run->n_jobs; i++) {
		if (run->jobs[i].state == JOB_DONE)
			continue;
		int n = snprintf(failed + used, sizeof(failed) - used, "%s%s", used ? "," : "",
				 run->jobs[i].name);
		if (n < 0 || (size_t)n >= sizeof(failed) - used)
			break;
		used += (size_t)n;
	}
	if (asprintf(&env[0], "MAB_RUN_ID=%s", run->run_id) < 0 ||
	    asprintf(&env[1], "MAB_RESULT=%s", run_result_name(result)) < 0 ||
	    asprintf(&env[2], "MAB_FAILED_COLLECTIONS=%s", failed) < 0 ||
	    asprintf(&env[3], "MAB_SET=%s", run->set_folder) < 0 ||
	    asprintf(&env[4], "MAB_DATABASE=%s", d->cfg->database) < 0 ||
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

static void run_finished(struct daemon *d)
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

static void breaker_from_state(struct daemon *d)
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

/* ---- configuration reload ---- */

static void log_reload_problem(void *ctx, const char *message)
{
	(void)ctx;
	msg_error("reload: %s", message);
}

static void reload(struct daemon *d)
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

static char *handle_status(void *ctx, char *err, size_t errlen)
{
	char *json = daemon_status_json(ctx);

	if (json == NULL)
		snprintf(err, errlen, "out of memory");
	return json;
}

static char *handle_metrics(void *ctx, char *err, size_t errlen)
{
	char *text = daemon_metrics_text(ctx);

	if (text == NULL)
		snprintf(err, errlen, "out of memory");
	return text;
}

static int handle_run(void *ctx, char **body, char *err, size_t errlen)
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

static int handle_cancel(void *ctx, char **body, char *err, size_t errlen)
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

/* ---- start-up ---- */

/* mkdir -p; *created tells whether the last component is new. */
static int make_dir(const char *path, mode_t mode, bool *created, char *err, size_t errlen)
{
	char buf[PATH_MAX];

	*created = false;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		/* The daemon's umask is 077: a parent made here (/usr/local/var,
		 * .../run) must still be 0755, like one made by make install. */
		if (mkdir(buf, 0755) == 0) {
			if (chmod(buf, 0755) != 0) {
				snprintf(err, errlen, "cannot chmod %s: %s", buf, strerror(errno));
				return -1;
			}
		} else if (errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", buf, strerror(errno));
			return -1;
		}
		*p = '/';
	}
	if (mkdir(buf, mode) == 0) {
		*created = true;
		if (chmod(buf, mode) != 0) {
			snprintf(err, errlen, "cannot chmod %s: %s", buf, strerror(errno));
			return -1;
		}
	} else if (errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", buf, strerror(errno));
		return -1;
	}
	return 0;
}

static int hand_over(const char *dir, uid_t uid, gid_t gid, mode_t mode, char *err,
		     size_t errlen)
{
	if (chown(dir, uid, gid) != 0) {
		snprintf(err, errlen, "cannot hand %s to uid %ld gid %ld: %s", dir, (long)uid,
			 (long)gid, strerror(errno));
		return -1;
	}
	if (chmod(dir, mode) != 0) {
		snprintf(err, errlen, "cannot chmod %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

static void parent_dir(const char *path, char *out, size_t len)
{
	snprintf(out, len, "%s", path);
	char *slash = strrchr(out, '/');
	if (slash == out)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		snprintf(out, len, ".");
}

/* The supervisor keeps its identity (root, for a service): it reads the
 * configuration and the secret files, now and at every reload, and owns
 * the state, the pid file and the socket.  Only its children run as
 * [daemon] user (run_as.h).  The directories are made so that whoever
 * needs them can reach them whatever the umask: the state and the pid
 * file's directory 0755, the socket's directory 0750 with the control
 * group, so that its members can connect (the socket's own mode and the
 * permission table do the rest). */
static int prepare_dirs(const struct mab_config *cfg, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	bool created;
	gid_t control_gid = (gid_t)-1;

	if (cfg->control_group[0] != '\0') {
		struct group *gr = getgrnam(cfg->control_group);
		if (gr == NULL) {
			snprintf(err, errlen, "[control] group '%s' does not exist",
				 cfg->control_group);
			return -1;
		}
		control_gid = gr->gr_gid;
	}
	if (make_dir(cfg->state_dir, 0755, &created, err, errlen) != 0)
		return -1;

	/* Only a directory we made, or our own (.../mongo-azure-backup), is
	 * ever changed: never /run or /tmp. */
	parent_dir(cfg->control_socket, dir, sizeof(dir));
	if (make_dir(dir, 0750, &created, err, errlen) != 0)
		return -1;
	const char *base = strrchr(dir, '/');
	if (created || (base != NULL && strcmp(base + 1, "mongo-azure-backup") == 0)) {
		mode_t mode = control_gid != (gid_t)-1 ? 0750 : 0755;
		if (hand_over(dir, geteuid(), control_gid, mode, err, errlen) != 0) {
			if (geteuid() == 0)
				return -1;
			msg_warn("%s; members of the control group may not reach the socket", err);
		}
	}

	parent_dir(cfg->pid_file, dir, sizeof(dir));
	if (make_dir(dir, 0755, &created, err, errlen) != 0)
		return -1;
	return 0;
}

static int open_signals(struct daemon *d, char *err, size_t errlen)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0) {
		snprintf(err, errlen, "sigprocmask: %s", strerror(errno));
		return -1;
	}
	d->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (d->signal_fd < 0) {
		snprintf(err, errlen, "signalfd: %s", strerror(errno));
		return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* Whether a backup was missed while the daemon was down.  yes: an
 * occurrence passed since the last run; auto: that, and the last complete
 * backup is older than one schedule period. */
static bool should_catch_up(struct daemon *d, time_t now)
{
	time_t since = d->state.last_run_started, missed, a, b;
	char err[128];

	if (d->cfg->catch_up == 0 || since == 0)
		return false;
	if (cron_next(&d->cron, d->cfg->timezone, since, &missed, err, sizeof(err)) != 0 ||
	    missed > now)
		return false;
	if (d->cfg->catch_up == 1)
		return true;
	if (cron_next(&d->cron, d->cfg->timezone, now, &a, err, sizeof(err)) != 0 ||
	    cron_next(&d->cron, d->cfg->timezone, a, &b, err, sizeof(err)) != 0)
		return false;
	return d->state.last_complete_finished == 0 ||
	       now - d->state.last_complete_finished > b - a;
}

static int service_init(struct daemon *d, char *err, size_t errlen)
{
	char why[512];

	static const struct control_handlers handlers_template = {
		.status_json = handle_status, .metrics_text = handle_metrics,
		.run = handle_run, .cancel = handle_cancel,
	};
	static struct control_handlers handlers;

	if (cron_parse(d->cfg->cron, &d->cron, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s: cron: %s", d->conf_path, why);
		return -1;
	}
	if (run_as_resolve(d->cfg->user, &d->run_as, err, errlen) != 0 ||
	    prepare_dirs(d->cfg, err, errlen) != 0)
		return -1;
	d->pid_fd = pidfile_acquire(d->cfg->pid_file, err, errlen);
	if (d->pid_fd < 0)
		return -1;
	int r = state_load(d->cfg->state_dir, &d->state, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "state: %s", why);
		return -1;
	}
	if (r > 0)
		msg_warn("state: %s; starting with an empty state", why);
	breaker_from_state(d);
	handlers = handlers_template;
	handlers.ctx = d;
	d->control = control_open(d->cfg->control_socket, d->cfg->control_group,
				  d->run_as.active ? d->run_as.uid : geteuid(), &handlers, err,
				  errlen);
	if (d->control == NULL)
		return -1;
	if (open_signals(d, err, errlen) != 0)
		return -1;
	return 0;
}

/* ---- the loop ---- */

static void reap(struct daemon *d)
{
	for (;;) {
		int status;
		struct rusage usage;
		pid_t pid = wait4(-1, &status, WNOHANG, &usage);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
		bool known = false;
		for (size_t i = 0; i < HOOK_MAX && !known; i++)
			known = hook_reaped(&d->hooks[i], pid, status);
		if (!known && d->run_active)
			known = backup_run_child_exited(&d->run, pid, status, &usage);
		if (!known)
			msg_debug("reaped unknown child %ld", (long)pid);
	}
}

static void handle_signals(struct daemon *d)
{
	struct signalfd_siginfo si;

	while (read(d->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			if (!d->stopping)
				msg_notice("%s: stopping", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
			d->stopping = true;
			if (d->run_active)
				backup_run_cancel(&d->run, si.ssi_signo == SIGTERM ?
						  "the daemon is stopping (SIGTERM)" :
						  "the daemon is stopping (SIGINT)");
			break;
		case SIGHUP:
			msg_notice("SIGHUP: re-reading %s", d->conf_path);
			reload(d);
			break;
		case SIGUSR1: {
			/* logrotate moved the file away: write to a new one. */
			char err[512];
			if (log_reopen(err, sizeof(err)) != 0)
				msg_error("SIGUSR1: %s; still writing to the old file", err);
			else
				msg_info("SIGUSR1: log file reopened");
			break;
		}
		case SIGCHLD:
			break;
		}
	}
	reap(d);
}

static int min_timeout(int a, int b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

static int loop(struct daemon *d)
{
	struct pollfd fds[MAX_POLL_FDS];

	for (;;) {
		time_t now = time(NULL);

		if (!d->stopping && d->next_run > 0 && now >= d->next_run) {
			char err[256];
			start_run(d, "schedule", err, sizeof(err));
			schedule_next(d, now);
		}
		if (d->run_active) {
			backup_run_step(&d->run);
			if (backup_run_finished(&d->run))
				run_finished(d);
		}
		double mono = monotonic_seconds();
		for (size_t i = 0; i < HOOK_MAX; i++)
			hook_check(&d->hooks[i], mono);
		if ((d->stopping || d->once) && !d->run_active) {
			/* Hooks get a short grace to deliver their news when we
			 * are stopped (their whole timeout after --once), then go
			 * with their process groups: nothing outlives the daemon. */
			bool hooks_running = false;
			for (size_t i = 0; i < HOOK_MAX; i++) {
				struct hook *h = &d->hooks[i];
				if (h->pid <= 0)
					continue;
				hooks_running = true;
				if (d->stopping && h->deadline > mono + HOOK_EXIT_GRACE_SECONDS)
					h->deadline = mono + HOOK_EXIT_GRACE_SECONDS;
			}
			if (!hooks_running)
				return d->once ? d->once_exit : 0;
		}

		int timeout = -1;
		if (!d->stopping && d->next_run > 0) {
			double ms = ((double)d->next_run - wall_now()) * 1000.0;
			timeout = ms <= 0 ? 0 : ms > 3600e3 ? 3600 * 1000 : (int)ms + 1;
		}
		if (d->run_active)
			timeout = min_timeout(timeout, backup_run_timeout_ms(&d->run));
		timeout = min_timeout(timeout, control_timeout_ms(d->control));
		for (size_t i = 0; i < HOOK_MAX; i++)
			timeout = min_timeout(timeout, hook_timeout_ms(&d->hooks[i], mono));

		size_t n = 0;
		fds[n++] = (struct pollfd){ .fd = d->signal_fd, .events = POLLIN };
		size_t control_first = n;
		n += control_pollfds(d->control, fds + n, MAX_POLL_FDS - n);
		size_t run_first = n;
		if (d->run_active)
			n += backup_run_pollfds(&d->run, fds + n, MAX_POLL_FDS - n);

		int rc = poll(fds, n, timeout);
		if (rc < 0 && errno != EINTR) {
			msg_error("poll: %s", strerror(errno));
			return 1;
		}
		if (rc <= 0)
			continue;
		if (fds[0].revents)
			handle_signals(d);
		control_handle(d->control, fds + control_first, run_first - control_first);
		if (d->run_active)
			backup_run_handle_fds(&d->run, fds + run_first, n - run_first);
	}
}

int daemon_log_open(const struct mab_config *cfg, bool background, char *err,
		    size_t errlen)
{
	int target = cfg->log_target;
	char dir[PATH_MAX];
	bool created;

	if (target < 0) {
		/* auto: in the foreground (OpenRC's supervise-daemon, systemd,
		 * a terminal, --once from cron) stderr has a reader; in the
		 * background syslog, if one listens (Debian 12 installs none),
		 * else our own file. */
		if (!background)
			target = LOG_TARGET_STDERR;
		else
			target = log_syslog_listening() ? LOG_TARGET_SYSLOG : LOG_TARGET_FILE;
	}
	switch ((enum log_target)target) {
	case LOG_TARGET_SYSLOG:
		log_open("mongo-azure-backupd", LOG_TARGET_SYSLOG, cfg->log_level);
		/* The helpers' stderr is /dev/null in the background. */
		if (setenv(LOG_TARGET_ENV, "syslog", 1) != 0) {
			snprintf(err, errlen, "setenv: %s", strerror(errno));
			return -1;
		}
		return 0;
	case LOG_TARGET_FILE:
		parent_dir(cfg->log_file, dir, sizeof(dir));
		if (make_dir(dir, 0755, &created, err, errlen) != 0)
			return -1;
		unsetenv(LOG_TARGET_ENV);
		return log_open_file("mongo-azure-backupd", cfg->log_file, cfg->log_level, err,
				     errlen);
	case LOG_TARGET_STDERR:
		break;
	}
	unsetenv(LOG_TARGET_ENV);
	log_open("mongo-azure-backupd", LOG_TARGET_STDERR, cfg->log_level);
	return 0;
}

/* VmHWM, not ru_maxrss: the latter inherits the high-water mark of
 * whatever process exec'd us.  (bench/bench.py reads this line.) */
static void log_peak_rss(void)
{
	FILE *status = fopen("/proc/self/status", "re");
	char line[128];
	long kib;

	while (status != NULL && fgets(line, sizeof(line), status) != NULL)
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			msg_debug("mongo-azure-backupd: peak RSS %ld KiB", kib);
	if (status != NULL)
		fclose(status);
}

static void detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

/* The starting process: waits for the daemon's word. */
static int wait_for_ready(int fd, pid_t child)
{
	char msg[1024];
	ssize_t n = xread_full(fd, msg, sizeof(msg) - 1);

	close(fd);
	if (n > 0 && strncmp(msg, "ready", 5) == 0)
		return 0;
	if (n > 0) {
		msg[n] = '\0';
		fprintf(stderr, "mongo-azure-backupd: %s\n", msg);
	} else {
		int status;
		fprintf(stderr, "mongo-azure-backupd: the daemon exited during start-up\n");
		waitpid(child, &status, WNOHANG);
	}
	return 1;
}

int daemon_main(const char *conf_path, struct mab_config *cfg, bool foreground, bool once)
{
	struct daemon d;
	char err[1024];
	int ready_fd = -1, r = 1;

	memset(&d, 0, sizeof(d));
	d.conf_path = realpath(conf_path, NULL);
	if (d.conf_path == NULL)
		d.conf_path = strdup(conf_path);
	d.cfg = cfg;
	d.pid_fd = -1;
	d.signal_fd = -1;
	d.once = once;
	d.once_exit = 1;
	d.foreground = foreground || once;
	foreground = d.foreground;
	d.started = time(NULL);

	if (!foreground) {
		int pipefd[2];
		if (pipe2(pipefd, O_CLOEXEC) != 0) {
			fprintf(stderr, "mongo-azure-backupd: pipe: %s\n", strerror(errno));
			goto out;
		}
		pid_t pid = fork();
		if (pid < 0) {
			fprintf(stderr, "mongo-azure-backupd: fork: %s\n", strerror(errno));
			goto out;
		}
		if (pid > 0) {
			close(pipefd[1]);
			r = wait_for_ready(pipefd[0], pid);
			goto out_parent;
		}
		close(pipefd[0]);
		ready_fd = pipefd[1];
		if (setsid() < 0) {
			dprintf(ready_fd, "setsid: %s", strerror(errno));
			_exit(1);
		}
		if (chdir("/") != 0) {
			dprintf(ready_fd, "chdir /: %s", strerror(errno));
			_exit(1);
		}
	}

	if (service_init(&d, err, sizeof(err)) != 0) {
		if (ready_fd >= 0)
			dprintf(ready_fd, "%s", err);
		else
			msg_error("%s", err);
		goto out;
	}
	if (ready_fd >= 0) {
		detach_stdio();
		if (daemon_log_open(d.cfg, true, err, sizeof(err)) != 0) {
			dprintf(ready_fd, "%s", err);
			goto out;
		}
		if (xwrite_all(ready_fd, "ready", 5) != 0)
			msg_warn("could not tell the starting process that we are ready");
		close(ready_fd);
		ready_fd = -1;
	}
	msg_info("mongo-azure-backupd %s started (pid %ld), schedule '%s' (%s), control "
		 "socket %s", PACKAGE_VERSION, (long)getpid(), d.cfg->cron, d.cfg->timezone,
		 d.cfg->control_socket);
	if (d.run_as.active)
		msg_info("helpers and hooks run as user '%s' (uid %ld); the supervisor keeps "
			 "uid %ld", d.run_as.name, (long)d.run_as.uid, (long)geteuid());

	time_t now = time(NULL);
	if (once) {
		/* One run as the schedule would make it: the same state, hooks
		 * and metrics, and the same lock, so it never runs beside the
		 * service.  No schedule, no catch-up. */
		start_run(&d, "--once", err, sizeof(err));
		r = loop(&d);
		log_peak_rss();
		goto out;
	}
	schedule_next(&d, now);
	if (should_catch_up(&d, now)) {
		char why[256];
		start_run(&d, "catch-up (a scheduled run was missed while the daemon was down)",
			  why, sizeof(why));
	}
	write_metrics_textfile(&d);
	r = loop(&d);
	msg_info("mongo-azure-backupd stopped");
out:
	if (d.control != NULL)
		control_close(d.control);
	pidfile_release(d.pid_fd, d.cfg->pid_file);
	if (d.signal_fd >= 0)
		close(d.signal_fd);
	if (ready_fd >= 0)
		close(ready_fd);
	for (size_t i = 0; i < HOOK_MAX; i++)
		if (d.hooks[i].pid > 0)
			kill(-d.hooks[i].pid, SIGKILL);
	state_free(&d.state);
out_parent:
	if (d.retired_cfg != NULL) {
		config_free(d.retired_cfg);
		free(d.retired_cfg);
	}
	config_free(d.cfg);
	free(d.cfg);
	free(d.conf_path);
	return r;
}
