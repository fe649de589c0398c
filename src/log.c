/* log.c - stderr or syslog output with a level filter.
 *
 * stderr lines carry a UTC timestamp, the program name and the pid, so the
 * interleaved output of the supervisor and its children stays readable.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *log_ident = "mongo-azure-backup";
static enum log_target log_target = LOG_TARGET_STDERR;
static int log_max_priority = LOG_INFO;

void log_open(const char *ident, enum log_target target, int max_priority)
{
	log_ident = ident;
	log_target = target;
	log_max_priority = max_priority;
	if (target == LOG_TARGET_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
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
