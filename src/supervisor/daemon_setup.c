/* daemon_setup.c - the daemon's start-up: its directories made and handed
 * to the service user, the signalfd, whether a missed run is caught up,
 * and service_init (state, breaker, control socket).
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


/* ---- start-up ---- */

/* mkdir -p; *created tells whether the last component is new. */
int make_dir(const char *path, mode_t mode, bool *created, char *err, size_t errlen)
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

void parent_dir(const char *path, char *out, size_t len)
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

static void utc_text(time_t t, char *out, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Whether a backup was missed while the daemon was down.  yes: an
 * occurrence passed since the last run; auto: that, and the last complete
 * backup is older than one schedule period.  A missed run that is not
 * made up is said once, with the setting that decided it. */
bool should_catch_up(struct daemon *d, time_t now)
{
	time_t since = d->state.last_run_started, missed, a, b;
	char err[128], due[32], last[32];

	if (since == 0)
		return false;
	if (cron_next(&d->cron, d->cfg->timezone, since, &missed, err, sizeof(err)) != 0 ||
	    missed > now)
		return false;
	utc_text(missed, due, sizeof(due));
	if (d->cfg->catch_up == 0) {
		msg_notice("catch-up: the run due at %s was missed while the daemon was down; "
			   "catch_up = no, so it is not made up", due);
		return false;
	}
	if (d->cfg->catch_up == 1)
		return true;
	if (cron_next(&d->cron, d->cfg->timezone, now, &a, err, sizeof(err)) != 0 ||
	    cron_next(&d->cron, d->cfg->timezone, a, &b, err, sizeof(err)) != 0)
		return false;
	if (d->state.last_complete_finished == 0 ||
	    now - d->state.last_complete_finished > b - a)
		return true;
	utc_text(d->state.last_complete_finished, last, sizeof(last));
	msg_notice("catch-up: the run due at %s was missed while the daemon was down; "
		   "catch_up = auto and the last complete backup (%s) is within one schedule "
		   "period, so it is not made up", due, last);
	return false;
}

int service_init(struct daemon *d, char *err, size_t errlen)
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
