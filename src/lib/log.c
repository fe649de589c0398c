/* log.c - stderr, file or syslog output with a level filter.
 *
 * stderr and file lines carry a UTC timestamp, the program name and the
 * pid, so the interleaved output of the supervisor and its children stays
 * readable.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *log_ident = "mongo-azure-backup";
static enum log_target log_target = LOG_TARGET_STDERR;
static int log_max_priority = LOG_INFO;
static char log_path[4096];
static char last_problem[512];
static time_t last_problem_at;
static int last_problem_priority;

void log_open(const char *ident, enum log_target target, int max_priority)
{
	const char *inherited = getenv(LOG_TARGET_ENV);

	if (target == LOG_TARGET_STDERR && inherited != NULL && strcmp(inherited, "syslog") == 0)
		target = LOG_TARGET_SYSLOG;
	log_ident = ident;
	log_target = target;
	log_max_priority = max_priority;
	if (target == LOG_TARGET_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

/* Opens path for appending and puts it on fd 2. */
static int attach_file(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);

	if (fd < 0) {
		snprintf(err, errlen, "cannot open the log file %s: %s", path, strerror(errno));
		return -1;
	}
	if (dup2(fd, STDERR_FILENO) < 0) {
		snprintf(err, errlen, "cannot make %s stderr: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int log_open_file(const char *ident, const char *path, int max_priority, char *err,
		  size_t errlen)
{
	if (strlen(path) >= sizeof(log_path)) {
		snprintf(err, errlen, "log file name too long");
		return -1;
	}
	if (attach_file(path, err, errlen) != 0)
		return -1;
	snprintf(log_path, sizeof(log_path), "%s", path);
	log_ident = ident;
	log_target = LOG_TARGET_FILE;
	log_max_priority = max_priority;
	return 0;
}

int log_reopen(char *err, size_t errlen)
{
	if (log_target != LOG_TARGET_FILE)
		return 0;
	return attach_file(log_path, err, errlen);
}

bool log_syslog_listening(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

enum log_target log_current_target(void)
{
	return log_target;
}

const char *log_last_problem(time_t *when, int *priority)
{
	if (when != NULL)
		*when = last_problem_at;
	if (priority != NULL)
		*priority = last_problem_priority;
	return last_problem;
}

void log_set_level(int max_priority)
{
	log_max_priority = max_priority;
}

int log_level_from_name(const char *name)
{
	static const struct { const char *name; int priority; } levels[] = {
		{ "error", LOG_ERR }, { "warning", LOG_WARNING },
		{ "notice", LOG_NOTICE }, { "info", LOG_INFO },
		{ "debug", LOG_DEBUG },
	};
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (strcasecmp(name, levels[i].name) == 0)
			return levels[i].priority;
	return -1;
}

static const char *priority_word(int priority)
{
	switch (priority) {
	case LOG_EMERG: case LOG_ALERT: case LOG_CRIT: return "fatal";
	case LOG_ERR: return "error";
	case LOG_WARNING: return "warning";
	case LOG_NOTICE: return "notice";
	case LOG_INFO: return "info";
	default: return "debug";
	}
}

void msg_vlog(int priority, const char *fmt, va_list ap)
{
	int saved_errno = errno;

	if (priority <= LOG_WARNING) {
		va_list copy;
		va_copy(copy, ap);
		vsnprintf(last_problem, sizeof(last_problem), fmt, copy);
		va_end(copy);
		last_problem_at = time(NULL);
		last_problem_priority = priority;
	}
	if (priority > log_max_priority)
		goto out;
	if (log_target == LOG_TARGET_SYSLOG) {
		vsyslog(priority, fmt, ap);
		goto out;
	}

	char line[4096];
	char stamp[32] = "";
	struct timespec now;
	struct tm tm;
	int n;

	if (clock_gettime(CLOCK_REALTIME, &now) == 0 &&
	    gmtime_r(&now.tv_sec, &tm) != NULL)
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	n = snprintf(line, sizeof(line), "%s %s[%ld]: %s: ", stamp, log_ident,
		     (long)getpid(), priority_word(priority));
	if (n < 0 || (size_t)n >= sizeof(line))
		goto out;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	/* One write per line so lines from several processes do not mix. */
	size_t len = strlen(line);
	if (len < sizeof(line) - 1) {
		line[len++] = '\n';
	} else {
		line[sizeof(line) - 2] = '\n';
		len = sizeof(line) - 1;
	}
	ssize_t ignored = write(STDERR_FILENO, line, len);
	(void)ignored;
out:
	errno = saved_errno;
}

void msg_log(int priority, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	msg_vlog(priority, fmt, ap);
	va_end(ap);
}

void msg_fatal(int exit_code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	msg_vlog(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(exit_code);
}
