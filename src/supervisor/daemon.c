/* daemon.c - the service loop of mongo-azure-backupd.
 *
 * One poll(2) loop serves everything: a signalfd (TERM, INT, HUP, CHLD), the
 * control socket, the current run's status sockets, and the timers (next
 * scheduled run, run deadline, hook deadlines).  Nothing in it blocks on the
 * network: the children do that.  Without -f the process detaches, and the
 * starting process exits only once the daemon has its pid file and socket
 * (or prints why it could not get them), as chronyd does.
 *
 * This file, the top of daemon*.c (daemon_int.h), owns the loop, the
 * signals, the log and detaching; start-up is in daemon_setup.c, reload
 * and the control handlers in daemon_control.c, the runs in daemon_runs.c.
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

#define MAX_POLL_FDS 1024
#define HOOK_EXIT_GRACE_SECONDS 5.0

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
